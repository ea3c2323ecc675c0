//! What went wrong with a job, as this crate knows it. What a client is told
//! of each is the server's decision (`Jobs::public`).

use std::fmt;

use sis_audio::AudioError;
use sis_engine::EngineError;
use sis_fetch::FetchError;
use sis_protocol::ApiError;
use sis_store::StoreError;

#[derive(Debug)]
pub enum JobError {
    /// The create request as the protocol refused it (or, for a running job,
    /// its stored request).
    Request(ApiError),
    /// The create body is not UTF-8 (it is stored as text).
    NotUtf8,
    /// Unknown job id, another project's job, or one past its retention.
    NotFound,
    /// `config.vocabulary_id` names no vocabulary of the job's project (at
    /// creation, or deleted by the time the job ran).
    VocabularyNotFound(String),
    /// `need_analysis_info.diarization` on mono audio: that needs a
    /// diarization model, and there is none.
    DiarizationUnavailable,
    /// LEFT_AGENT/RIGHT_AGENT with diarization, but the file is mono.
    AgentChannelNeedsStereo,
    /// `what` (`data_url`, `callback_url`) refused or not fetched.
    Fetch {
        what: &'static str,
        error: FetchError,
    },
    /// The audio cannot be decoded, or is too long.
    Audio(AudioError),
    Engine(EngineError),
    /// The job's workers died this many times while running it.
    Interrupted {
        times: i64,
    },
    /// The engine worker recognising the file died this many times.
    EngineWorkerDied {
        times: u64,
    },
    /// `data_url` names an upload its project does not hold (any more).
    UploadNotFound(String),
    /// The project holds this many uploads, the limit.
    TooManyUploads(usize),
    /// The transcription thread panicked.
    Panicked,
    Store(StoreError),
    /// A finished job's result cannot be read from object storage (why).
    ResultUnavailable(String),
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::Request(e) => write!(f, "request refused: {e}"),
            JobError::NotUtf8 => write!(f, "body is not UTF-8"),
            JobError::NotFound => write!(f, "job not found"),
            JobError::VocabularyNotFound(id) => write!(f, "vocabulary {id} not found"),
            JobError::DiarizationUnavailable => write!(f, "diarization of mono audio"),
            JobError::AgentChannelNeedsStereo => write!(f, "agent channel of a mono file"),
            JobError::Fetch { what, error } => write!(f, "{what}: {error}"),
            JobError::Audio(e) => write!(f, "audio: {e}"),
            JobError::Engine(e) => write!(f, "engine: {e}"),
            JobError::Interrupted { times } => write!(f, "interrupted {times} times"),
            JobError::EngineWorkerDied { times } => write!(f, "engine worker died {times} times"),
            JobError::UploadNotFound(id) => write!(f, "upload {id} not found"),
            JobError::TooManyUploads(n) => write!(f, "the project holds {n} uploads"),
            JobError::Panicked => write!(f, "transcription panicked"),
            JobError::Store(e) => write!(f, "store: {e}"),
            JobError::ResultUnavailable(why) => write!(f, "result unavailable: {why}"),
        }
    }
}

impl std::error::Error for JobError {}
