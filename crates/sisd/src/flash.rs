//! `POST /v1/{project_id}/asr/flash` (SIS-API.md §8): flash recognition of
//! an object in a bucket the operator mapped (`--flash-bucket NAME=URL`),
//! answered synchronously. Every parameter is in the query
//! (`sis_protocol::flash`); the object is downloaded into the spool (at most
//! 100 MB), then decoded and recognised by the jobs' file path
//! (`sis_jobs::recognize_file`: at most 30 min, each channel on its own or
//! the first only), within `--flash-timeout-s`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::{Extension, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use sis_engine::EngineError;
use sis_jobs::{Channels, FileRun};
use sis_protocol::flash::{self, FlashSentence};

use crate::errors::{self, HandlerResult};
use crate::state::{AppState, Principal, RequestId, RequestLog};
use crate::vocabularies;

/// Deletes the spooled file when the request ends, however it ends.
pub struct Spooled(pub std::path::PathBuf);

impl Spooled {
    /// A new file name in the spool (`DATA_DIR/jobs`); nothing is created.
    pub fn new(state: &AppState, what: &str) -> Spooled {
        Spooled(
            state
                .flash
                .spool
                .join(format!("{what}-{}.audio", uuid::Uuid::new_v4())),
        )
    }
}

impl Drop for Spooled {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub async fn handler(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    id: Option<Extension<RequestId>>,
    log: Option<Extension<RequestLog>>,
    RawQuery(query): RawQuery,
) -> HandlerResult {
    // the download and the recognition together get --flash-timeout-s
    let deadline = tokio::time::Instant::now() + state.flash.timeout;
    let mut req = flash::parse_query(query.as_deref())?;
    if !state.engine.serves(&req.property) {
        return Err(errors::engine(EngineError::UnknownProperty(
            req.property.name().to_string(),
        )));
    }
    vocabularies::resolve(&state, &caller.project_id, &mut req.options).await?;
    vocabularies::note_used(log.as_ref().map(|Extension(l)| l), &req.options);
    let objects = state
        .flash
        .buckets
        .get(&req.bucket)
        .ok_or_else(|| errors::flash_bucket_unknown(&req.bucket))?;
    let not_found = errors::flash_no_object;
    let size = objects
        .size(&req.key)
        .await
        .map_err(|e| errors::store(&e))?
        .ok_or_else(not_found)?;
    if size == 0 || size > flash::MAX_OBJECT_BYTES {
        return Err(errors::flash_size(size).into());
    }
    let spooled = Spooled::new(&state, "flash");
    let downloaded = tokio::time::timeout_at(deadline, objects.get_to_file(&req.key, &spooled.0))
        .await
        .map_err(|_| errors::flash_timeout())?
        .map_err(|e| errors::store(&e))?;
    if !downloaded {
        return Err(not_found().into());
    }
    let (sentences, audio_ms, channels) = recognize_spooled(
        &state,
        &spooled.0,
        &req.property,
        &req.options,
        if req.first_channel_only {
            Channels::First
        } else {
            Channels::Each
        },
        flash::MAX_AUDIO_MS,
        deadline,
    )
    .await?;
    if let Some(Extension(log)) = &log {
        log.note(|n| n.audio_s = Some(audio_ms as f64 / 1000.0));
    }
    let outputs = if channels == 2 && !req.first_channel_only {
        2
    } else {
        1
    };
    let mut by_channel: Vec<Vec<FlashSentence>> = vec![Vec::new(); outputs];
    for s in sentences {
        if let Some(c) = by_channel.get_mut(s.channel) {
            c.push(FlashSentence {
                start_ms: s.start_ms,
                end_ms: s.end_ms,
                transcript: s.transcript,
            });
        }
    }
    let trace_id = match id {
        Some(Extension(RequestId(id))) => id,
        None => RequestId::generate().0,
    };
    let body = flash::response(&trace_id, audio_ms, &by_channel, req.options.need_word_info);
    Ok((
        StatusCode::OK,
        [("content-type", "application/json;charset=utf-8")],
        body.to_string(),
    )
        .into_response())
}

/// Recognises a spooled audio file (any format, at most `max_ms`) by the
/// jobs' file path on a blocking thread, by `deadline`: its sentences in
/// order, the audio's length, its channel count. A stereo file's channels
/// are recognised as `stereo` says; more channels are mixed. For flash and
/// the OpenAI-compatible transcriptions alike.
pub async fn recognize_spooled(
    state: &AppState,
    path: &std::path::Path,
    property: &sis_core::Property,
    options: &sis_core::RecognitionOptions,
    stereo: Channels,
    max_ms: u64,
    deadline: tokio::time::Instant,
) -> Result<(Vec<sis_engine::file::FileSentence>, u64, usize), errors::AppError> {
    let stop = Arc::new(AtomicBool::new(false));
    let run = {
        let (engine, stop, path) = (state.engine.clone(), stop.clone(), path.to_path_buf());
        let (property, options) = (property.clone(), options.clone());
        tokio::task::spawn_blocking(move || {
            let plan = |channels: usize| {
                Ok(match channels {
                    2 => stereo,
                    _ => Channels::Mixed,
                })
            };
            sis_jobs::recognize_file(
                &engine,
                &property,
                &options,
                sis_jobs::AudioFile {
                    path: &path,
                    format: sis_audio::stream::FileFormat::Auto,
                    max_ms,
                },
                plan,
                &stop,
            )
        })
    };
    let run = match tokio::time::timeout_at(deadline, run).await {
        Ok(joined) => joined.map_err(|_| errors::task_failed())?,
        Err(_) => {
            stop.store(true, Ordering::SeqCst);
            return Err(errors::flash_timeout().into());
        }
    };
    match run {
        Ok(FileRun::Done {
            sentences,
            audio_ms,
            channels,
        }) => Ok((sentences, audio_ms, channels)),
        Ok(FileRun::WorkerLost(why)) => Err(errors::engine(EngineError::WorkerLost(why))),
        Ok(FileRun::Stopped) => Err(errors::task_failed()),
        Err(e) => Err(errors::flash(&e).into()),
    }
}
