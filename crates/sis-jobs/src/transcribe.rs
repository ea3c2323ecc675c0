//! One run of a job's file through the decoder and the engine, and the
//! analysis SIS asks for (roles by channel, emotion, speed): decoding on a
//! blocking thread, the rest pure functions.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use sis_engine::file::FileSentence;
use sis_engine::EngineError;
use sis_pool::EnginePool;
use sis_protocol::transcriber::{
    self, AgentChannel, AnalysisRequest, FileFormat, FileSegment, TranscriberRequest,
};

use crate::JobError;

/// Longest audio a job may have (SIS: 5 h).
const MAX_AUDIO_MS: u64 = 5 * 3600 * 1000;

/// What the server can compute of `need_analysis_info`, checked at
/// creation; the rest is refused.
pub(crate) fn check_analysis(req: &TranscriberRequest) -> Result<(), JobError> {
    match req.analysis {
        Some(a) if a.diarization && a.channel == AgentChannel::Mono => {
            Err(JobError::DiarizationUnavailable)
        }
        _ => Ok(()),
    }
}

/// How one run of a file through the engine ended, short of an error.
#[derive(Debug)]
pub(crate) enum Transcribed {
    /// The result document, and the audio's length.
    Done { document: String, audio_ms: u64 },
    /// The lease went to another worker meanwhile.
    LeaseLost,
    /// The engine worker running it died: the run may be repeated.
    WorkerLost(String),
}

/// An engine error: a worker's death may be retried, any other ends the job.
fn engine_failed(e: EngineError) -> Result<FileRun, JobError> {
    match e {
        EngineError::WorkerLost(why) => Ok(FileRun::WorkerLost(why)),
        other => Err(JobError::Engine(other)),
    }
}

fn stream_format(format: FileFormat) -> sis_audio::stream::FileFormat {
    match format {
        FileFormat::Auto => sis_audio::stream::FileFormat::Auto,
        FileFormat::Raw(f) => sis_audio::stream::FileFormat::from_audio_format(f),
    }
}

/// How a file's channels are recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// One channel, or stereo mixed down (SIS: "auto-converted").
    Mixed,
    /// Each channel of a stereo file on its own, for roles by channel.
    PerChannel,
}

impl Layout {
    /// The layout for a file with `channels` channels and the analysis asked.
    pub(crate) fn of(
        channels: usize,
        analysis: Option<AnalysisRequest>,
    ) -> Result<Layout, JobError> {
        let by_channel = matches!(
            analysis.map(|a| a.channel),
            Some(AgentChannel::Left | AgentChannel::Right)
        );
        if by_channel && channels != 2 && analysis.is_some_and(|a| a.diarization) {
            return Err(JobError::AgentChannelNeedsStereo);
        }
        Ok(if channels == 2 && by_channel {
            Layout::PerChannel
        } else {
            Layout::Mixed
        })
    }
}

/// Recognised characters per second, to two decimals (0 for an empty span).
fn speed(text: &str, start_ms: u64, end_ms: u64) -> f64 {
    let chars = text.chars().filter(|c| c.is_alphanumeric()).count() as f64;
    let secs = end_ms.saturating_sub(start_ms) as f64 / 1000.0;
    if secs > 0.0 {
        (chars / secs * 100.0).round() / 100.0
    } else {
        0.0
    }
}

/// The segments of a result, with the analysis asked for: roles by channel
/// (diarization of a stereo file recognised per channel), emotion (always
/// UNKNOWN: there is no emotion model) and speed.
pub(crate) fn segments(
    sentences: Vec<FileSentence>,
    analysis: Option<AnalysisRequest>,
    layout: Layout,
) -> Vec<FileSegment> {
    sentences
        .into_iter()
        .map(|s| {
            let role = match analysis {
                Some(a) if a.diarization && layout == Layout::PerChannel => {
                    let agent = if a.channel == AgentChannel::Left {
                        0
                    } else {
                        1
                    };
                    Some(if s.channel == agent { "AGENT" } else { "USER" })
                }
                _ => None,
            };
            FileSegment {
                start_ms: s.start_ms,
                end_ms: s.end_ms,
                role,
                emotion: analysis.filter(|a| a.emotion).map(|_| "UNKNOWN"),
                speed: analysis
                    .filter(|a| a.speed)
                    .map(|_| speed(&s.transcript.text, s.start_ms, s.end_ms)),
                transcript: s.transcript,
            }
        })
        .collect()
}

fn duration_ms(samples: u64, rate: u32) -> u64 {
    samples * 1000 / rate.max(1) as u64
}

/// Which channels of a file are recognised, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channels {
    /// Every channel mixed down to one (channel 0 of the result).
    Mixed,
    /// Each channel on its own (its index is the sentence's channel).
    Each,
    /// The first channel only.
    First,
}

impl Channels {
    fn count(self) -> usize {
        match self {
            Channels::Each => 2,
            Channels::Mixed | Channels::First => 1,
        }
    }
}

/// How recognising a file ended, short of an error.
#[derive(Debug)]
pub enum FileRun {
    /// Its sentences in order of start time, the audio's length and the
    /// file's channel count.
    Done {
        sentences: Vec<FileSentence>,
        audio_ms: u64,
        channels: usize,
    },
    /// `stop` was set.
    Stopped,
    /// The engine worker recognising it died: the run may be repeated.
    WorkerLost(String),
}

/// A file to recognise: where it is, its format, and the longest audio it
/// may hold.
#[derive(Clone, Copy, Debug)]
pub struct AudioFile<'a> {
    pub path: &'a Path,
    pub format: sis_audio::stream::FileFormat,
    pub max_ms: u64,
}

/// Decodes the file at `path` as a stream (at most `max_ms` of audio) and
/// recognises the channels `plan` chooses for its channel count, in this
/// thread (call it on a blocking one); stops early when `stop` is set. The
/// one file path of jobs and flash recognition.
pub fn recognize_file(
    engine: &EnginePool,
    property: &sis_core::Property,
    options: &sis_core::RecognitionOptions,
    file: AudioFile<'_>,
    plan: impl FnOnce(usize) -> Result<Channels, JobError>,
    stop: &AtomicBool,
) -> Result<FileRun, JobError> {
    let limits = sis_audio::stream::StreamLimits {
        max_ms: file.max_ms,
        ..Default::default()
    };
    let mut stream =
        sis_audio::stream::open(file.path, file.format, limits).map_err(JobError::Audio)?;
    let rate = stream.sample_rate();
    let channels = stream.channels() as usize;
    let plan = plan(channels)?;
    let mut t = match engine.file_transcriber(property, rate, plan.count(), options.clone()) {
        Ok(t) => t,
        Err(e) => return engine_failed(e),
    };
    let mut samples: u64 = 0;
    while let Some(chunk) = stream.next_chunk().map_err(JobError::Audio)? {
        if stop.load(Ordering::SeqCst) {
            return Ok(FileRun::Stopped);
        }
        samples += chunk.frames() as u64;
        let pushed = match plan {
            _ if chunk.channels.len() == 1 => t.push(&chunk.channels),
            Channels::Each => t.push(&chunk.channels),
            Channels::First => t.push(&chunk.channels[..1]),
            Channels::Mixed => t.push(&[chunk.to_mono()]),
        };
        if let Err(e) = pushed {
            return engine_failed(e);
        }
    }
    match t.finish() {
        Ok(sentences) => Ok(FileRun::Done {
            sentences,
            audio_ms: duration_ms(samples, rate),
            channels,
        }),
        Err(e) => engine_failed(e),
    }
}

/// Decodes and recognises the file at `path`; stops early when `lost` is set
/// (the lease went elsewhere, or the server is stopping).
pub(crate) fn transcribe(
    engine: &EnginePool,
    req: &TranscriberRequest,
    path: &Path,
    lost: &AtomicBool,
) -> Result<Transcribed, JobError> {
    let mut layout = Layout::Mixed;
    let plan = |channels: usize| {
        layout = Layout::of(channels, req.analysis)?;
        Ok(match layout {
            Layout::PerChannel => Channels::Each,
            Layout::Mixed => Channels::Mixed,
        })
    };
    let run = recognize_file(
        engine,
        &req.property,
        &req.options,
        AudioFile {
            path,
            format: stream_format(req.format),
            max_ms: MAX_AUDIO_MS,
        },
        plan,
        lost,
    )?;
    match run {
        FileRun::Done {
            sentences,
            audio_ms,
            ..
        } => {
            let segments = segments(sentences, req.analysis, layout);
            Ok(Transcribed::Done {
                document: transcriber::result_document(
                    audio_ms,
                    &segments,
                    req.options.need_word_info,
                )
                .to_string(),
                audio_ms,
            })
        }
        FileRun::Stopped => Ok(Transcribed::LeaseLost),
        FileRun::WorkerLost(why) => Ok(Transcribed::WorkerLost(why)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sis_core::Transcript;

    fn analysis(diarization: bool, channel: AgentChannel) -> Option<AnalysisRequest> {
        Some(AnalysisRequest {
            diarization,
            channel,
            emotion: true,
            speed: true,
        })
    }

    fn sentence(channel: usize, start_ms: u64, end_ms: u64, text: &str) -> FileSentence {
        FileSentence {
            channel,
            start_ms,
            end_ms,
            transcript: Transcript {
                text: text.to_string(),
                score: Some(0.75),
                words: vec![],
            },
        }
    }

    #[test]
    fn diarization_of_mono_is_refused_at_creation() {
        let mut req = transcriber::parse_create(
            br#"{"data_url":"https://example.com/a.wav","config":{"audio_format":"auto","property":"chinese_16k_general"}}"#,
        )
        .expect("a valid request");
        assert!(check_analysis(&req).is_ok());
        req.analysis = analysis(true, AgentChannel::Mono);
        assert!(matches!(
            check_analysis(&req),
            Err(JobError::DiarizationUnavailable)
        ));
        req.analysis = analysis(false, AgentChannel::Mono);
        assert!(check_analysis(&req).is_ok());
        req.analysis = analysis(true, AgentChannel::Left);
        assert!(check_analysis(&req).is_ok());
    }

    #[test]
    fn layout_by_channels_and_analysis() {
        use AgentChannel::*;
        assert_eq!(Layout::of(1, None).ok(), Some(Layout::Mixed));
        // stereo without roles by channel is mixed down
        assert_eq!(Layout::of(2, None).ok(), Some(Layout::Mixed));
        assert_eq!(
            Layout::of(2, analysis(false, Mono)).ok(),
            Some(Layout::Mixed)
        );
        assert_eq!(
            Layout::of(2, analysis(true, Left)).ok(),
            Some(Layout::PerChannel)
        );
        assert_eq!(
            Layout::of(2, analysis(false, Right)).ok(),
            Some(Layout::PerChannel)
        );
        // roles by channel of a mono file: refused with diarization, mixed without
        assert!(matches!(
            Layout::of(1, analysis(true, Right)),
            Err(JobError::AgentChannelNeedsStereo)
        ));
        assert_eq!(
            Layout::of(1, analysis(false, Left)).ok(),
            Some(Layout::Mixed)
        );
    }

    #[test]
    fn roles_follow_the_agent_channel() {
        let sentences = || vec![sentence(0, 0, 1000, "一二"), sentence(1, 500, 1500, "三")];
        let roles = |a, layout| -> Vec<Option<&'static str>> {
            segments(sentences(), a, layout)
                .iter()
                .map(|s| s.role)
                .collect()
        };
        use AgentChannel::*;
        assert_eq!(
            roles(analysis(true, Left), Layout::PerChannel),
            vec![Some("AGENT"), Some("USER")]
        );
        assert_eq!(
            roles(analysis(true, Right), Layout::PerChannel),
            vec![Some("USER"), Some("AGENT")]
        );
        // no roles without diarization, or when the channels were mixed
        assert_eq!(
            roles(analysis(false, Left), Layout::PerChannel),
            vec![None, None]
        );
        assert_eq!(roles(analysis(true, Left), Layout::Mixed), vec![None, None]);
        assert_eq!(roles(None, Layout::PerChannel), vec![None, None]);
    }

    #[test]
    fn emotion_and_speed_only_when_asked() {
        let s = segments(
            vec![sentence(0, 1000, 3000, "你好，123 ok")],
            analysis(false, AgentChannel::Mono),
            Layout::Mixed,
        );
        assert_eq!(s[0].emotion, Some("UNKNOWN"));
        // 7 letters and digits (punctuation and spaces do not count) in 2 s
        assert_eq!(s[0].speed, Some(3.5));
        assert_eq!(s[0].transcript.text, "你好，123 ok");
        assert_eq!((s[0].start_ms, s[0].end_ms), (1000, 3000));
        let plain = segments(vec![sentence(0, 0, 10, "a")], None, Layout::Mixed);
        assert_eq!((plain[0].emotion, plain[0].speed), (None, None));
    }

    #[test]
    fn speed_rounds_and_survives_an_empty_span() {
        assert_eq!(speed("一二三", 0, 900), 3.33);
        assert_eq!(speed("一二三", 500, 500), 0.0);
        assert_eq!(speed("一二三", 900, 500), 0.0);
        assert_eq!(speed("", 0, 1000), 0.0);
    }

    #[test]
    fn result_document_of_assembled_segments() {
        let segs = segments(
            vec![sentence(0, 0, 1000, "一二"), sentence(1, 1000, 2000, "三")],
            analysis(true, AgentChannel::Left),
            Layout::PerChannel,
        );
        let doc = transcriber::result_document(duration_ms(32_000, 16_000), &segs, false);
        assert_eq!(doc["audio_duration"], 2000);
        let s = doc["segments"].as_array().expect("segments");
        assert_eq!(s.len(), 2);
        assert_eq!(s[0]["result"]["text"], "一二");
        assert_eq!(s[0]["result"]["analysis_info"]["role"], "AGENT");
        assert_eq!(s[1]["result"]["analysis_info"]["role"], "USER");
        assert_eq!(s[1]["result"]["analysis_info"]["emotion"], "UNKNOWN");
        assert!(s[0]["result"].get("word_info").is_none());
    }

    #[test]
    fn duration_of_samples() {
        assert_eq!(duration_ms(16_000, 16_000), 1000);
        assert_eq!(duration_ms(12_000, 8_000), 1500);
        assert_eq!(
            duration_ms(5, 0),
            5000,
            "a zero rate does not divide by zero"
        );
    }

    #[test]
    fn a_dead_engine_worker_may_be_retried_other_errors_end_the_job() {
        assert!(matches!(
            engine_failed(EngineError::WorkerLost("x".into())),
            Ok(FileRun::WorkerLost(_))
        ));
        assert!(matches!(
            engine_failed(EngineError::Failed("x".into())),
            Err(JobError::Engine(EngineError::Failed(_)))
        ));
    }

    #[test]
    fn raw_formats_keep_their_rate() {
        assert!(matches!(
            stream_format(FileFormat::Auto),
            sis_audio::stream::FileFormat::Auto
        ));
        let raw = stream_format(FileFormat::Raw(sis_core::AudioFormat::Pcm8k16bit));
        assert!(matches!(
            raw,
            sis_audio::stream::FileFormat::Raw {
                sample_rate: 8000,
                ..
            }
        ));
    }
}
