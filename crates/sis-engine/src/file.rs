//! Recorded-file transcription: audio arrives in pieces (a streaming decoder
//! reads the file), each channel is resampled to the VAD's rate (16 kHz), split into
//! sentences by its own Silero VAD, and the sentences are decoded one by one.
//! Memory is bounded by the VAD's longest sentence and the queued batches,
//! not by the file's length.
//!
//! A [`FileTranscriber`] lives on one thread (it owns VADs, which may not
//! move between threads); the caller runs it on a blocking thread. Decoding
//! runs on a second thread of its own, fed through a bounded channel, so the
//! VAD (most of the work with a small model) and the recognizer overlap.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use sis_audio::StreamResampler;
use sis_core::{RecognitionOptions, Transcript};

use crate::decoding::DecodingContext;
use crate::postprocess::Postprocessor;
use crate::registry::{AsrModel, VadSource};
use crate::sherpa::{self, Vad, VadSettings};
use crate::EngineError;

#[cfg(test)]
mod tests;

/// Sentences handed to the decoding thread at a time. Each is decoded alone:
/// a multi-stream call pads every sentence to the longest of the batch, which
/// cost more (+15 % CPU per job with 8) than one call per sentence.
const BATCH: usize = 8;
/// Audio kept before a sentence's detected start, and after its end, when it
/// is cut for decoding (soft onsets and endings); every 0.1 s costs about 1.5 %
/// more decoding work on conversational speech.
const LEAD_S: f32 = 0.1;
const TAIL_S: f32 = 0.1;
/// Batches waiting for the decoding thread (bounds memory when it falls behind).
const QUEUED_BATCHES: usize = 2;
/// Longest sentence before the VAD forces a break.
pub(crate) const MAX_SENTENCE_S: f32 = 20.0;
/// Recent audio kept per channel: a sentence plus its margins.
const HISTORY_S: f32 = MAX_SENTENCE_S + 4.0;

/// One recognised sentence: times in ms from the start of the file.
#[derive(Clone, Debug)]
pub struct FileSentence {
    pub channel: usize,
    pub start_ms: u64,
    pub end_ms: u64,
    pub transcript: Transcript,
}

struct Channel {
    resampler: StreamResampler,
    vad: Vad,
    /// Resampled samples not yet a whole VAD window.
    window: Vec<f32>,
    /// The most recent resampled audio; `history_start` is the index of its first sample.
    history: VecDeque<f32>,
    history_start: u64,
    /// Samples given to the VAD so far.
    fed: u64,
}

struct Pending {
    channel: usize,
    /// Speech bounds (VAD), in samples at the VAD's rate.
    start: u64,
    end: u64,
    /// The audio decoded: the speech with its margins.
    audio: Vec<f32>,
    audio_start: u64,
}

pub struct FileTranscriber {
    rate: u32,
    channels: Vec<Channel>,
    pending: Vec<Pending>,
    to_decoder: Option<SyncSender<Vec<Pending>>>,
    decoder: Option<JoinHandle<Result<Vec<FileSentence>, EngineError>>>,
    recognised: Arc<AtomicUsize>,
}

/// What the decoding thread needs.
struct Decoder {
    model: Arc<AsrModel>,
    post: Arc<Postprocessor>,
    rate: u32,
    options: RecognitionOptions,
    context: DecodingContext,
    recognised: Arc<AtomicUsize>,
}

impl FileTranscriber {
    /// A transcriber for a file of `channels` channels at `input_rate` Hz,
    /// recognised with `model`, split into sentences by VADs from `vad`.
    pub(crate) fn start(
        model: Arc<AsrModel>,
        vad: &VadSource,
        post: Arc<Postprocessor>,
        input_rate: u32,
        channels: usize,
        options: RecognitionOptions,
    ) -> Result<FileTranscriber, EngineError> {
        // Every channel is brought to the VAD's rate (the only one it runs
        // at); sentences are decoded at that rate, which sherpa-onnx converts
        // to the model's own when they differ (an 8 kHz pack).
        let rate = sherpa::VAD_RATE;
        let settings = VadSettings {
            max_speech_s: MAX_SENTENCE_S,
            ..vad.base
        };
        let mut chans = Vec::new();
        for _ in 0..channels.max(1) {
            chans.push(Channel {
                resampler: StreamResampler::new(input_rate, rate),
                vad: vad.load(settings, MAX_SENTENCE_S + 5.0)?,
                window: Vec::new(),
                history: VecDeque::new(),
                history_start: 0,
                fed: 0,
            });
        }
        let recognised = Arc::new(AtomicUsize::new(0));
        let decoder = Decoder {
            model,
            post,
            rate,
            context: DecodingContext::for_request(&options),
            options,
            recognised: recognised.clone(),
        };
        let (tx, rx) = sync_channel::<Vec<Pending>>(QUEUED_BATCHES);
        let handle = std::thread::Builder::new()
            .name("file-decode".into())
            .spawn(move || {
                let mut done = Vec::new();
                // ends when the transcriber finishes or is dropped
                for batch in rx {
                    decoder.decode(batch, &mut done)?;
                }
                Ok(done)
            })
            .map_err(|e| EngineError::Failed(format!("cannot start a decoding thread: {e}")))?;
        Ok(FileTranscriber {
            rate,
            channels: chans,
            pending: Vec::new(),
            to_decoder: Some(tx),
            decoder: Some(handle),
            recognised,
        })
    }

    /// Feeds the next piece of audio: one slice per channel, at the input rate.
    pub fn push(&mut self, planar: &[Vec<f32>]) -> Result<(), EngineError> {
        for (c, samples) in planar.iter().enumerate().take(self.channels.len()) {
            let mut out = Vec::new();
            self.channels[c].resampler.push(samples, &mut out);
            self.feed(c, &out);
        }
        if self.pending.len() >= BATCH {
            self.decode_pending()?;
        }
        Ok(())
    }

    fn feed(&mut self, c: usize, samples: &[f32]) {
        let w = sherpa::VAD_WINDOW;
        let keep = (HISTORY_S * self.rate as f32) as usize;
        let ch = &mut self.channels[c];
        ch.history.extend(samples.iter().copied());
        if ch.history.len() > keep {
            let excess = ch.history.len() - keep;
            ch.history.drain(..excess);
            ch.history_start += excess as u64;
        }
        ch.window.extend_from_slice(samples);
        let whole = ch.window.len() / w * w;
        let blocks: Vec<f32> = ch.window.drain(..whole).collect();
        for b in blocks.chunks(w) {
            self.channels[c].vad.accept(b);
            self.channels[c].fed += b.len() as u64;
            self.take_segments(c);
        }
    }

    fn take_segments(&mut self, c: usize) {
        let lead = (LEAD_S * self.rate as f32) as u64;
        let tail = (TAIL_S * self.rate as f32) as u64;
        let ch = &self.channels[c];
        for (start, end) in ch.vad.take_segments() {
            let from = start.saturating_sub(lead).max(ch.history_start);
            let have = ch.history_start + ch.history.len() as u64;
            let to = (end + tail).min(have);
            let audio: Vec<f32> = if from < to {
                ch.history
                    .range((from - ch.history_start) as usize..(to - ch.history_start) as usize)
                    .copied()
                    .collect()
            } else {
                Vec::new()
            };
            self.pending.push(Pending {
                channel: c,
                start,
                end,
                audio,
                audio_start: from,
            });
        }
    }

    /// Hands the pending sentences to the decoding thread (waits while it
    /// has [`QUEUED_BATCHES`] queued).
    fn decode_pending(&mut self) -> Result<(), EngineError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.pending);
        let sent = match &self.to_decoder {
            Some(tx) => tx.send(batch).is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // the decoding thread stopped: its error says why
        self.to_decoder = None;
        match self.decoder.take().map(|h| h.join()) {
            Some(Ok(Err(e))) => Err(e),
            _ => Err(EngineError::Failed("the decoding thread stopped".into())),
        }
    }

    /// Ends the audio: flushes every channel and decodes what is left.
    /// Sentences are in order of start time.
    pub fn finish(mut self) -> Result<Vec<FileSentence>, EngineError> {
        for c in 0..self.channels.len() {
            let mut out = Vec::new();
            self.channels[c].resampler.finish(&mut out);
            let w = sherpa::VAD_WINDOW;
            let rest = self.channels[c].window.len() + out.len();
            if !rest.is_multiple_of(w) {
                out.resize(out.len() + (w - rest % w), 0.0);
            }
            self.feed(c, &out);
            self.channels[c].vad.flush();
            self.take_segments(c);
        }
        self.decode_pending()?;
        self.to_decoder = None;
        let mut done = match self.decoder.take().map(|h| h.join()) {
            Some(Ok(r)) => r?,
            Some(Err(_)) => return Err(EngineError::Failed("decoder panicked".into())),
            None => return Err(EngineError::Failed("the decoding thread stopped".into())),
        };
        done.sort_by_key(|s| (s.start_ms, s.channel));
        Ok(done)
    }

    /// Sentences recognised so far (for progress), not yet returned.
    pub fn recognised(&self) -> usize {
        self.recognised.load(Ordering::Relaxed)
    }
}

impl Decoder {
    fn decode(&self, batch: Vec<Pending>, done: &mut Vec<FileSentence>) -> Result<(), EngineError> {
        let rate = self.rate as f32;
        for p in batch {
            let raw = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.model
                    .recognizer
                    .decode_batch(self.rate, &[(&self.context, p.audio.as_slice())])
            }))
            .map_err(|_| EngineError::Failed("decoder panicked".into()))?
            .pop()
            .ok_or_else(|| EngineError::Failed("the decoder returned nothing".into()))?;
            let offset = p.audio_start as f32 / rate;
            let end_s = (p.audio_start + p.audio.len() as u64) as f32 / rate;
            let mut t = self
                .post
                .transcript(&[(offset, raw)], end_s, &self.options, &self.context);
            if t.text.is_empty() {
                continue;
            }
            self.recognised.fetch_add(1, Ordering::Relaxed);
            let start_ms = p.start * 1000 / self.rate as u64;
            let end_ms = p.end * 1000 / self.rate as u64;
            // the words were timed on the padded audio: keep them inside
            // the sentence the VAD found
            crate::postprocess::clamp_words(
                &mut t,
                u32::try_from(start_ms).unwrap_or(u32::MAX),
                u32::try_from(end_ms).unwrap_or(u32::MAX),
            );
            done.push(FileSentence {
                channel: p.channel,
                start_ms,
                end_ms,
                transcript: t,
            });
        }
        Ok(())
    }
}
