//! The decode scheduler for whole utterances (short audio): requests become
//! jobs on a bounded queue; worker threads batch the queued jobs of one model
//! into one multi-stream decode call. A full queue refuses new work
//! ([`EngineError::Busy`]) instead of slowing everyone down. Long audio is
//! split at pauses by each worker's own VAD before decoding.

use std::collections::HashMap;
use std::sync::Arc;

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use sis_core::{Pcm, RecognitionOptions, Transcript};

use crate::decoding::DecodingContext;
use crate::observe::{Observation, Observer};
use crate::postprocess::Postprocessor;
use crate::registry::{AsrModel, VadSource};
use crate::sherpa::Vad;
use crate::EngineError;

/// How the scheduler runs (from `EngineConfig`).
pub struct SchedulerSettings {
    /// Decode worker threads.
    pub workers: usize,
    /// Jobs that may wait for a worker; more are refused.
    pub queue: usize,
    /// Jobs one worker decodes together in one call.
    pub max_batch: usize,
    /// Only audio at least this long is split by the VAD.
    pub vad_min_audio_s: f32,
}

struct Job {
    /// When it was queued.
    queued: std::time::Instant,
    model: Arc<AsrModel>,
    pcm: Pcm,
    options: RecognitionOptions,
    context: DecodingContext,
    reply: tokio::sync::oneshot::Sender<Result<Transcript, EngineError>>,
}

/// What every decode worker shares.
struct Worker {
    post: Arc<Postprocessor>,
    observer: Arc<Observer>,
    max_batch: usize,
    vad_min_audio_s: f32,
}

pub struct DecodeScheduler {
    tx: Option<Sender<Job>>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl DecodeScheduler {
    /// Starts the workers; each gets a VAD of its own from `vad` when given.
    pub fn start(
        settings: SchedulerSettings,
        post: Arc<Postprocessor>,
        vad: Option<&VadSource>,
        observer: Arc<Observer>,
    ) -> Result<DecodeScheduler, EngineError> {
        let (tx, rx) = bounded::<Job>(settings.queue.max(1));
        let shared = Arc::new(Worker {
            post,
            observer,
            max_batch: settings.max_batch,
            vad_min_audio_s: settings.vad_min_audio_s,
        });
        let mut workers = Vec::new();
        for i in 0..settings.workers.max(1) {
            let (shared, rx) = (shared.clone(), rx.clone());
            let vad = match vad {
                Some(v) => Some(v.load(v.base, 70.0)?),
                None => None,
            };
            let handle = std::thread::Builder::new()
                .name(format!("decode-{i}"))
                .spawn(move || shared.run(rx, vad))
                .map_err(|e| EngineError::Load(format!("cannot start decode worker: {e}")))?;
            workers.push(handle);
        }
        Ok(DecodeScheduler {
            tx: Some(tx),
            workers,
        })
    }

    /// Recognises a whole utterance with `model`.
    pub async fn recognize(
        &self,
        model: Arc<AsrModel>,
        pcm: Pcm,
        options: RecognitionOptions,
    ) -> Result<Transcript, EngineError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let tx = self.tx.as_ref().ok_or(EngineError::ShuttingDown)?;
        tx.try_send(Job {
            queued: std::time::Instant::now(),
            model,
            pcm,
            context: DecodingContext::for_request(&options),
            options,
            reply,
        })
        .map_err(|e| match e {
            TrySendError::Full(_) => EngineError::Busy,
            TrySendError::Disconnected(_) => EngineError::ShuttingDown,
        })?;
        rx.await
            .map_err(|_| EngineError::Failed("decode worker stopped".into()))?
    }
}

impl Drop for DecodeScheduler {
    fn drop(&mut self) {
        self.tx.take();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// Pads speech regions and joins those separated by short pauses, so words at
/// the edges are not clipped.
fn regions(raw: &[(usize, usize)], len: usize, rate: usize) -> Vec<(usize, usize)> {
    // Silero reports onsets late on soft starts (a leading 一 was clipped with
    // 250 ms), so the lead pad is longer than the tail pad.
    let lead = rate * 2 / 5;
    let pad = rate / 4;
    let join_gap = rate * 3 / 10;
    let mut out: Vec<(usize, usize)> = Vec::new();
    for &(s, e) in raw {
        let s = s.saturating_sub(lead);
        let e = (e + pad).min(len);
        match out.last_mut() {
            Some(last) if s <= last.1 + join_gap => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

impl Worker {
    fn run(&self, rx: Receiver<Job>, vad: Option<Vad>) {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            while batch.len() < self.max_batch {
                // Batch only what is already waiting: never delay a lone request.
                match rx.try_recv() {
                    Ok(j) => batch.push(j),
                    Err(_) => break,
                }
            }
            // Group by model so each group is one multi-stream decode.
            let mut groups: HashMap<usize, Vec<Job>> = HashMap::new();
            for j in batch {
                groups.entry(j.model.id).or_default().push(j);
            }
            for (_, jobs) in groups {
                self.run_group(jobs, vad.as_ref());
            }
        }
    }

    /// Decodes jobs of one model in one call.
    fn run_group(&self, jobs: Vec<Job>, vad: Option<&Vad>) {
        let Some(m) = jobs.first().map(|j| j.model.clone()) else {
            return;
        };
        let rate = m.sample_rate;
        // Audio at the model's rate, and the speech regions to decode.
        let prepared: Vec<(Pcm, Vec<(usize, usize)>)> = jobs
            .iter()
            .map(|j| {
                let audio = if j.pcm.sample_rate == rate {
                    j.pcm.clone()
                } else {
                    sis_audio::resample(&j.pcm, rate)
                };
                let len = audio.samples.len();
                let long_enough = len as f32 >= self.vad_min_audio_s * rate as f32;
                let regs = match vad {
                    // the VAD runs only at its own rate (sherpa::VAD_RATE)
                    Some(v) if rate == crate::sherpa::VAD_RATE && long_enough => {
                        regions(&v.segments(&audio.samples), len, rate as usize)
                    }
                    _ => vec![(0, len)],
                };
                (audio, regs)
            })
            .collect();
        let segments: Vec<(&DecodingContext, &[f32])> = jobs
            .iter()
            .zip(&prepared)
            .flat_map(|(j, (a, regs))| {
                regs.iter()
                    .map(move |&(s, e)| (&j.context, &a.samples[s..e]))
            })
            .collect();
        let started = std::time::Instant::now();
        for j in &jobs {
            let waited = started.saturating_duration_since(j.queued);
            self.observer
                .record(Observation::QueueWait(waited.as_secs_f32()));
        }
        let audio_s: usize = segments.iter().map(|(_, a)| a.len()).sum();
        let results = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            m.recognizer.decode_batch(rate, &segments)
        }));
        self.observer.record(Observation::UtteranceBatch(
            u32::try_from(segments.len()).unwrap_or(u32::MAX),
        ));
        if audio_s > 0 {
            let audio_s = audio_s as f32 / rate as f32;
            self.observer.record(Observation::RealTimeFactor(
                started.elapsed().as_secs_f32() / audio_s,
            ));
        }
        drop(segments);
        let mut results = match results {
            Ok(r) => r.into_iter(),
            Err(_) => {
                for j in jobs {
                    let _ = j
                        .reply
                        .send(Err(EngineError::Failed("decoder panicked".into())));
                }
                return;
            }
        };
        for (job, (audio, regs)) in jobs.into_iter().zip(prepared) {
            let mut pieces = Vec::new();
            for &(s, _) in &regs {
                let r = results.next().unwrap_or_default();
                pieces.push((s as f32 / rate as f32, r));
            }
            if pieces.is_empty() {
                // no speech: an empty decode, scored as this pack scores
                pieces.push((0.0, m.recognizer.nothing()));
            }
            let duration_s = audio.samples.len() as f32 / rate as f32;
            let t = self
                .post
                .transcript(&pieces, duration_s, &job.options, &job.context);
            let _ = job.reply.send(Ok(t));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::regions;

    #[test]
    fn regions_pad_and_join() {
        // 16 kHz: lead 6400, tail 4000 samples, join gaps under 4800
        let r = regions(
            &[(8000, 16000), (20000, 30000), (60000, 70000)],
            72000,
            16000,
        );
        assert_eq!(r, vec![(1600, 34000), (53600, 72000)]);
        assert!(regions(&[], 100, 16000).is_empty());
    }
}
