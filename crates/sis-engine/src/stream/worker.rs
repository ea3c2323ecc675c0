//! A stream worker: owns the live sessions pinned to it, their decoder
//! state and their VADs. [`StreamWorker::run`] is its thread's loop; tests
//! drive [`StreamWorker::apply`] and [`StreamWorker::decode_ready`] directly.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, Sender};
use sis_audio::StreamResampler;
use sis_core::Transcript;

use super::{BatchStats, Batching, Cmd, EventSender, Segmentation, StreamEvent, StreamParams};
use crate::decoding::DecodingContext;
use crate::postprocess::{shift_words, Postprocessor};
use crate::registry::{AsrModel, VadSource};
use crate::sherpa::{self, LiveStream, RawResult, Vad, VadSettings};
use crate::EngineError;

/// Audio kept before the VAD reports speech, so a sentence's stream starts
/// before the detected onset.
const LEAD_S: f32 = 0.6;
/// A sentence is cut this long past the session's `max_seconds` if the VAD
/// has not ended it.
pub(super) const SENTENCE_SLACK_S: u64 = 1;
/// Offline packs: new audio in the open sentence between two interim re-decodes.
pub const INTERIM_STEP_S: f32 = 0.6;
/// Idle VADs a worker keeps for reuse, whatever their settings (a Silero VAD
/// is an onnxruntime session: loading one costs far more than resetting it;
/// each holds 5-10 MB with its buffer). Clients choose the settings
/// (vad_tail, max_seconds: thousands of combinations), so the bound is on all
/// of them together: per settings, a client cycling through them grew a
/// worker by about 20 MB/s with no session open.
pub(super) const VAD_POOL_TOTAL: usize = 8;
/// Commands a worker applies between two decode passes at most (so a flood
/// of audio cannot starve decoding).
const MAX_COMMANDS_PER_PASS: usize = 4096;

/// The open sentence's decoder state.
enum Decoding {
    Online(LiveStream),
    /// Offline pack: the sentence's audio so far; `decoded` is its length at
    /// the last interim decode.
    Offline {
        audio: Vec<f32>,
        decoded: usize,
    },
}

impl Decoding {
    fn accept(&mut self, rate: u32, samples: &[f32]) {
        match self {
            Decoding::Online(st) => st.accept(rate, samples),
            Decoding::Offline { audio, .. } => audio.extend_from_slice(samples),
        }
    }
}

/// VADs are pooled by the settings they were created with (all run at
/// [`sherpa::VAD_RATE`]).
type VadKey = (u32, u32);

struct Session {
    model: Arc<AsrModel>,
    p: StreamParams,
    /// The session's decoding choices, from its options.
    context: DecodingContext,
    events: EventSender,
    /// Samples received so far (session clock).
    received: u64,
    stream: Option<Decoding>,
    /// Session sample index where `stream` starts.
    stream_start: u64,
    vad: Option<(VadKey, Vad)>,
    /// VAD sessions whose audio is not at the VAD's rate: converts it on
    /// arrival, and the session runs at [`sherpa::VAD_RATE`] from there on
    /// (times in ms are the client's whatever the rate).
    resampler: Option<StreamResampler>,
    window: usize,
    pending: Vec<f32>,
    lead: VecDeque<f32>,
    in_speech: bool,
    /// Session sample index of the last sentence end (or 0).
    last_boundary: u64,
    /// Sentence mode: recognition stopped (first sentence done, or silence).
    stopped: bool,
    last_partial: String,
    /// When the open stream last became ready to decode (a full window
    /// buffered, or an interim re-decode due) and was not decoded since.
    ready_since: Option<Instant>,
}

impl Session {
    /// The open stream has work for the next decode pass: an online stream
    /// with a full window buffered; an offline pack's sentence with
    /// [`INTERIM_STEP_S`] of new audio when interim results are asked for.
    fn due(&self) -> bool {
        match &self.stream {
            Some(Decoding::Online(st)) => self.model.recognizer.live_ready(st),
            Some(Decoding::Offline { audio, decoded }) => {
                let step = (INTERIM_STEP_S * self.p.sample_rate as f32) as usize;
                self.p.interim && audio.len() >= decoded + step
            }
            None => false,
        }
    }
}

pub(super) struct StreamWorker {
    post: Arc<Postprocessor>,
    vad: Option<VadSource>,
    sessions: HashMap<u64, Session>,
    vads: HashMap<VadKey, Vec<Vad>>,
    batching: Batching,
    /// Sessions whose stream became ready since the last decode pass, in
    /// the order they did (ids of sessions closed since may remain).
    ready: Vec<(u64, Instant)>,
    /// Whole-stream sessions that ended, on any worker: whichever worker
    /// is free first decodes their tails (finals have a latency bound; a
    /// worker busy with a pass would make them wait).
    endings: (Sender<Ending>, Receiver<Ending>),
    stats: Arc<BatchStats>,
}

/// A whole-stream session on a streaming pack after END: its stream (with
/// its tail, input finished) and what its final result needs. No VAD, so
/// it may move to another worker.
pub(crate) struct Ending {
    model: Arc<AsrModel>,
    stream: LiveStream,
    events: EventSender,
    options: sis_core::RecognitionOptions,
    context: DecodingContext,
    rate: u32,
    /// Samples the session received.
    received: u64,
}

/// A fresh decoder for a sentence of `model`.
fn new_decoding(model: &AsrModel, context: &DecodingContext) -> Decoding {
    match model.recognizer.live_stream(context) {
        Some(st) => Decoding::Online(st),
        None => Decoding::Offline {
            audio: Vec::new(),
            decoded: 0,
        },
    }
}

impl StreamWorker {
    pub(super) fn new(
        post: Arc<Postprocessor>,
        vad: Option<VadSource>,
        batching: Batching,
        endings: (Sender<Ending>, Receiver<Ending>),
        stats: Arc<BatchStats>,
    ) -> StreamWorker {
        StreamWorker {
            post,
            vad,
            sessions: HashMap::new(),
            vads: HashMap::new(),
            batching,
            ready: Vec::new(),
            endings,
            stats,
        }
    }

    /// A decode pass is due: some stream is ready, and either
    /// [`Batching::max_batch`] are, or the first of them has waited
    /// [`Batching::wait`].
    pub(super) fn batch_due(&self) -> bool {
        match self.ready.first() {
            None => false,
            Some((_, since)) => {
                self.ready.len() >= self.batching.max_batch || since.elapsed() >= self.batching.wait
            }
        }
    }

    /// How long the loop may wait for more commands before a pass is due.
    fn wait_left(&self) -> Option<Duration> {
        self.ready
            .first()
            .map(|(_, since)| self.batching.wait.saturating_sub(since.elapsed()))
    }

    /// The server's VAD settings (before a session's own).
    fn vad_base(&self) -> VadSettings {
        self.vad.as_ref().map(|v| v.base).unwrap_or_default()
    }

    fn take_vad(&mut self, key: VadKey) -> Result<Vad, EngineError> {
        if let Some(v) = self.vads.get_mut(&key).and_then(|p| p.pop()) {
            return Ok(v);
        }
        let source = self
            .vad
            .as_ref()
            .ok_or_else(|| EngineError::Failed("no VAD pack installed".into()))?;
        let (tail_ms, max_s) = key;
        let settings = VadSettings {
            min_silence_s: tail_ms as f32 / 1000.0,
            max_speech_s: max_s as f32,
            ..source.base
        };
        source.load(settings, max_s as f32 + 5.0)
    }

    /// Sessions open on this worker.
    #[cfg(test)]
    pub(super) fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Idle VADs kept for reuse.
    #[cfg(test)]
    pub(super) fn pooled_vads(&self) -> usize {
        self.vads.values().map(Vec::len).sum()
    }

    /// Frees a session; its VAD goes back to the pool, reset.
    fn release(&mut self, s: Session) {
        if let Some((key, vad)) = s.vad {
            let pooled: usize = self.vads.values().map(Vec::len).sum();
            if pooled >= VAD_POOL_TOTAL {
                // make room by dropping an idle VAD of other settings, so the
                // settings in use now stay pooled
                if let Some(other) = self.vads.keys().find(|k| **k != key).copied() {
                    if let Some(p) = self.vads.get_mut(&other) {
                        p.pop();
                        if p.is_empty() {
                            self.vads.remove(&other);
                        }
                    }
                }
            }
            let pooled: usize = self.vads.values().map(Vec::len).sum();
            let pool = self.vads.entry(key).or_default();
            if pooled < VAD_POOL_TOTAL {
                vad.reset();
                pool.push(vad);
            }
        }
    }

    /// The thread's loop: applies commands as they come and runs a decode
    /// pass over the ready streams when [`StreamWorker::batch_due`], so that
    /// streams becoming ready within [`Batching::wait`] of each other share
    /// one multi-stream decode call.
    pub(super) fn run(mut self, rx: Receiver<Cmd>) {
        let endings = self.endings.1.clone();
        loop {
            // a command, an ended session (any worker's), or the time the
            // first ready stream may wait
            let wait = self.wait_left();
            let mut ended = Vec::new();
            let first = if wait.is_some_and(|w| w.is_zero()) {
                None
            } else {
                let wait = wait.unwrap_or(Duration::from_secs(3600));
                select! {
                    recv(rx) -> c => match c {
                        Ok(c) => Some(c),
                        Err(_) => return,
                    },
                    recv(endings) -> e => {
                        ended.extend(e.ok());
                        None
                    },
                    default(wait) => None,
                }
            };
            self.finish_endings(ended);
            if let Some(c) = first {
                self.apply(c);
            }
            // what is queued now (an END among it is decoded first)
            for _ in 0..MAX_COMMANDS_PER_PASS {
                match rx.try_recv() {
                    Ok(c) => self.apply(c),
                    Err(_) => break,
                }
            }
            if self.batch_due() {
                self.decode_ready();
            }
        }
    }

    pub(super) fn apply(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Open {
                id,
                model,
                params,
                events,
            } => match self.open(model, *params, events.clone()) {
                Ok(s) => {
                    self.sessions.insert(id, s);
                }
                Err(e) => {
                    events.send(StreamEvent::Failed(e.to_string()));
                }
            },
            Cmd::Audio {
                id,
                samples,
                backlog,
            } => {
                if let Some(mut s) = self.sessions.remove(&id) {
                    self.feed(&mut s, &samples);
                    if s.ready_since.is_none() && s.due() {
                        let now = Instant::now();
                        s.ready_since = Some(now);
                        self.ready.push((id, now));
                    }
                    self.sessions.insert(id, s);
                }
                backlog.fetch_sub(samples.len(), Ordering::SeqCst);
            }
            Cmd::End { id, cancel } => {
                if let Some(mut s) = self.sessions.remove(&id) {
                    if cancel {
                        self.release(s);
                        return;
                    }
                    if s.vad.is_none() && matches!(s.stream, Some(Decoding::Online(_))) {
                        if let Some(Decoding::Online(stream)) = s.stream.take() {
                            // decoded to its end by the first worker free
                            stream.end_of_input(s.p.sample_rate);
                            let _ = self.endings.0.send(Ending {
                                model: s.model.clone(),
                                stream,
                                events: s.events.clone(),
                                options: s.p.options.clone(),
                                context: s.context.clone(),
                                rate: s.p.sample_rate,
                                received: s.received,
                            });
                            self.release(s);
                            return;
                        }
                    }
                    self.finish(&mut s);
                    s.events.send(StreamEvent::Finished);
                    self.release(s);
                }
            }
            Cmd::Close { id } => {
                if let Some(s) = self.sessions.remove(&id) {
                    self.release(s);
                }
            }
        }
    }

    fn open(
        &mut self,
        model: Arc<AsrModel>,
        p: StreamParams,
        events: EventSender,
    ) -> Result<Session, EngineError> {
        let mut p = p;
        let context = DecodingContext::for_request(&p.options);
        let (stream, vad, resampler) = match p.segmentation {
            Segmentation::Whole => (Some(new_decoding(&model, &context)), None, None),
            _ => {
                let key = (p.vad_tail_ms.max(100), p.max_seconds);
                let resampler = (p.sample_rate != sherpa::VAD_RATE)
                    .then(|| StreamResampler::new(p.sample_rate, sherpa::VAD_RATE));
                p.sample_rate = sherpa::VAD_RATE;
                (None, Some((key, self.take_vad(key)?)), resampler)
            }
        };
        Ok(Session {
            model,
            context,
            resampler,
            window: sherpa::VAD_WINDOW,
            p,
            events,
            received: 0,
            stream,
            stream_start: 0,
            vad,
            pending: Vec::new(),
            lead: VecDeque::new(),
            in_speech: false,
            last_boundary: 0,
            stopped: false,
            last_partial: String::new(),
            ready_since: None,
        })
    }

    fn ms(s: &Session, samples: u64) -> u64 {
        samples * 1000 / s.p.sample_rate as u64
    }

    fn feed(&self, s: &mut Session, samples: &[f32]) {
        if s.vad.is_none() {
            s.received += samples.len() as u64;
            if let Some(st) = &mut s.stream {
                st.accept(s.p.sample_rate, samples);
            }
            return;
        }
        match s.resampler.as_mut() {
            Some(r) => r.push(samples, &mut s.pending),
            None => s.pending.extend_from_slice(samples),
        }
        let w = s.window;
        let full = s.pending.len() / w * w;
        let chunk: Vec<f32> = s.pending.drain(..full).collect();
        for win in chunk.chunks(w) {
            s.received += win.len() as u64;
            if s.stopped {
                continue;
            }
            self.vad_window(s, win);
        }
    }

    fn vad_window(&self, s: &mut Session, win: &[f32]) {
        let rate = s.p.sample_rate;
        let Some((_, vad)) = s.vad.as_ref() else {
            return;
        };
        vad.accept(win);
        if !s.in_speech && vad.detected() {
            s.in_speech = true;
            // the sentence's stream starts with the audio kept before the onset
            let mut st = new_decoding(&s.model, &s.context);
            let lead: Vec<f32> = s.lead.drain(..).collect();
            s.stream_start = s
                .received
                .saturating_sub(win.len() as u64 + lead.len() as u64);
            st.accept(rate, &lead);
            s.stream = Some(st);
            if s.p.segmentation == Segmentation::FirstSentence {
                // sherpa-onnx dates a segment's start about the minimum speech
                // duration, two windows and 40 ms before the window that
                // detected it (the 40 ms measured against its own segment
                // starts on 25 real clips: tests/integration/test_rasr_vad.py)
                let settings = self.vad_base();
                let back =
                    ((settings.min_speech_s + 0.04) * rate as f32) as u64 + 2 * s.window as u64;
                let onset = s.received.saturating_sub(back).max(s.last_boundary);
                s.events.send(StreamEvent::VoiceStart {
                    ms: Self::ms(s, onset),
                });
            }
        }
        if s.in_speech {
            if let Some(st) = &mut s.stream {
                st.accept(rate, win);
            }
        } else {
            s.lead.extend(win.iter().copied());
            let keep = (LEAD_S * s.p.sample_rate as f32) as usize;
            while s.lead.len() > keep {
                s.lead.pop_front();
            }
            // no speech within vad_head
            let silent_ms = Self::ms(s, s.received - s.last_boundary);
            if s.p.segmentation == Segmentation::FirstSentence
                && silent_ms >= s.p.vad_head_ms as u64
            {
                s.stopped = true;
                let ms = Self::ms(s, s.received);
                s.events.send(StreamEvent::ExceededSilence { ms });
                return;
            }
        }
        // A sentence the VAD never ends (babble, music) is cut past
        // max_seconds: sherpa-onnx's VAD only raises its threshold there, and
        // an open sentence's audio (and the VAD's own buffer) would otherwise
        // grow for as long as the session lasts.
        let cap = (s.p.max_seconds as u64 + SENTENCE_SLACK_S) * rate as u64;
        let too_long = s.in_speech && s.received.saturating_sub(s.stream_start) > cap;
        if too_long {
            // emits the open segment and frees the VAD's buffer; its sample
            // count goes on, so later segment times stay in the session's clock
            vad.flush();
        }
        // completed sentences
        let mut segs = vad.take_segments();
        if too_long && segs.is_empty() {
            segs.push((s.stream_start, s.received));
        }
        for (start, end) in segs {
            self.sentence_end(s, start, end);
            if s.stopped {
                break;
            }
        }
    }

    /// Final result of the open sentence [start, end) (session samples).
    fn sentence_end(&self, s: &mut Session, start: u64, end: u64) {
        let t = self.finalize_stream(s);
        s.in_speech = false;
        s.last_boundary = s.received;
        s.lead.clear();
        let (start_ms, end_ms) = (Self::ms(s, start), Self::ms(s, end));
        if s.p.segmentation == Segmentation::FirstSentence {
            s.stopped = true;
            if t.text.is_empty() {
                s.events.send(StreamEvent::ExceededSilence { ms: end_ms });
                return;
            }
            s.events.send(StreamEvent::VoiceEnd { ms: end_ms });
        }
        if !t.text.is_empty() {
            s.events.send(StreamEvent::Result {
                start_ms,
                end_ms,
                is_final: true,
                transcript: t,
            });
        }
    }

    /// Flushes and decodes the open stream to its end; returns its transcript
    /// with word times from the session start.
    fn finalize_stream(&self, s: &mut Session) -> Transcript {
        let Some(dec) = s.stream.take() else {
            return Transcript::default();
        };
        let rate = s.p.sample_rate;
        let rec = &s.model.recognizer;
        let raw = match dec {
            Decoding::Online(st) => rec.finish_live(&[&st], rate),
            Decoding::Offline { audio, .. } => rec.decode_batch(rate, &[(&s.context, &audio)]),
        }
        .pop()
        .unwrap_or_default();
        self.final_transcript(s, raw)
    }

    /// The transcript of the open stream's final decode `raw`, with word
    /// times from the session start.
    fn final_transcript(&self, s: &mut Session, raw: RawResult) -> Transcript {
        let rate = s.p.sample_rate;
        s.last_partial.clear();
        let offset = s.stream_start as f32 / rate as f32;
        let dur = (s.received - s.stream_start) as f32 / rate as f32;
        let mut t = self
            .post
            .transcript(&[(0.0, raw)], dur, &s.p.options, &s.context);
        shift_words(&mut t, (offset * 1000.0) as u32);
        t
    }

    fn finish(&self, s: &mut Session) {
        if s.vad.is_none() {
            if s.stream.is_some() {
                let t = self.finalize_stream(s);
                s.events.send(StreamEvent::Result {
                    start_ms: 0,
                    end_ms: Self::ms(s, s.received),
                    is_final: true,
                    transcript: t,
                });
            }
            return;
        }
        if s.stopped {
            return;
        }
        // the resampler's tail, the last partial window, then whatever the
        // VAD still holds
        if let Some(r) = s.resampler.as_mut() {
            r.finish(&mut s.pending);
        }
        self.feed(s, &[]);
        if !s.pending.is_empty() {
            let mut last = std::mem::take(&mut s.pending);
            s.received += last.len() as u64;
            last.resize(s.window, 0.0);
            self.vad_window(s, &last);
        }
        if s.stopped {
            return;
        }
        if let Some((_, vad)) = s.vad.as_ref() {
            vad.flush();
            for (start, end) in vad.take_segments() {
                if s.stopped {
                    break;
                }
                self.sentence_end(s, start, end.min(s.received));
            }
        }
        if s.stream.is_some() && !s.stopped {
            let start = s.stream_start;
            let end = s.received;
            self.sentence_end(s, start, end);
        }
    }

    /// One multi-stream decode per model over every ready stream, then
    /// interim results for sessions that asked for them.
    /// A decode pass: the streams of sessions that ended, to their end, in
    /// calls of their own (a final result has a latency bound; the interim
    /// ones of the rest can wait for it), then up to
    /// [`Batching::max_batch`] ready streams, the longest waiting first (the
    /// rest stay ready for the next pass, after the loop has taken the
    /// commands queued meanwhile).
    pub(super) fn decode_ready(&mut self) {
        self.finish_endings(Vec::new());
        let n = self.ready.len().min(self.batching.max_batch.max(1));
        let ids: Vec<u64> = self.ready.drain(..n).map(|(id, _)| id).collect();
        for id in &ids {
            if let Some(s) = self.sessions.get_mut(id) {
                s.ready_since = None;
            }
        }
        self.decode_pass(&ids);
    }

    /// One multi-stream decode per model over the streams of `ids`.
    fn decode_pass(&mut self, ids: &[u64]) {
        let mut by_model: HashMap<usize, (Arc<AsrModel>, Vec<u64>)> = HashMap::new();
        for id in ids {
            let Some(s) = self.sessions.get(id) else {
                continue;
            };
            if s.stream.is_some() {
                by_model
                    .entry(s.model.id)
                    .or_insert_with(|| (s.model.clone(), Vec::new()))
                    .1
                    .push(*id);
            }
        }
        for (_, (model, ids)) in by_model {
            let raws: Vec<(u64, RawResult)> = if model.recognizer.is_streaming() {
                self.decode_online(&model, &ids)
            } else {
                self.decode_offline(&model, &ids)
            };
            for (id, raw) in raws {
                if let Some(s) = self.sessions.get_mut(&id) {
                    interim(&self.post, s, raw);
                }
            }
        }
    }

    /// Decodes the tails of ended whole-stream sessions (`ended` and others
    /// queued, up to [`Batching::max_batch`] in all: the rest are left to
    /// the other workers or the next pass, so one worker does not hold its
    /// own sessions' commands while it finishes everyone's), together per
    /// model, and sends their final results.
    fn finish_endings(&mut self, mut ended: Vec<Ending>) {
        let room = self.batching.max_batch.max(1).saturating_sub(ended.len());
        ended.extend(self.endings.1.try_iter().take(room));
        while !ended.is_empty() {
            let id = ended[0].model.id;
            let (same, rest): (Vec<Ending>, Vec<Ending>) =
                ended.into_iter().partition(|e| e.model.id == id);
            ended = rest;
            let rec = &same[0].model.recognizer;
            let streams: Vec<&LiveStream> = same.iter().map(|e| &e.stream).collect();
            let (calls, decoded) = rec.decode_live(&streams);
            self.stats.record(calls, decoded);
            for e in &same {
                let raw = rec.live_result(&e.stream);
                let dur = e.received as f32 / e.rate as f32;
                let t = self
                    .post
                    .transcript(&[(0.0, raw)], dur, &e.options, &e.context);
                e.events.send(StreamEvent::Result {
                    start_ms: 0,
                    end_ms: e.received * 1000 / u64::from(e.rate.max(1)),
                    is_final: true,
                    transcript: t,
                });
                e.events.send(StreamEvent::Finished);
            }
        }
    }

    /// Runs every ready online stream of `ids`; returns the current results
    /// of the sessions that want interim results.
    fn decode_online(&mut self, model: &AsrModel, ids: &[u64]) -> Vec<(u64, RawResult)> {
        let rec = &model.recognizer;
        let streams: Vec<&LiveStream> = ids
            .iter()
            .filter_map(|id| match self.sessions.get(id)?.stream.as_ref()? {
                Decoding::Online(st) => Some(st),
                Decoding::Offline { .. } => None,
            })
            .collect();
        let (calls, decoded) = rec.decode_live(&streams);
        self.stats.record(calls, decoded);
        let mut out = Vec::new();
        for id in ids {
            let Some(s) = self.sessions.get_mut(id) else {
                continue;
            };
            if let (true, Some(Decoding::Online(st))) = (s.p.interim, &s.stream) {
                out.push((*id, rec.live_result(st)));
            }
        }
        out
    }

    /// Offline pack: re-decodes, in one batch, the open sentence of every
    /// session that wants interim results and has [`INTERIM_STEP_S`] of new audio.
    fn decode_offline(&mut self, model: &AsrModel, ids: &[u64]) -> Vec<(u64, RawResult)> {
        let mut due: Vec<u64> = Vec::new();
        for id in ids {
            let Some(s) = self.sessions.get_mut(id).filter(|s| s.due()) else {
                continue;
            };
            if let Some(Decoding::Offline { audio, decoded }) = &mut s.stream {
                *decoded = audio.len();
                due.push(*id);
            }
        }
        // sessions of one model may differ in rate (8 kHz properties)
        let mut by_rate: HashMap<u32, Vec<u64>> = HashMap::new();
        for id in due {
            if let Some(s) = self.sessions.get(&id) {
                by_rate.entry(s.p.sample_rate).or_default().push(id);
            }
        }
        let mut out = Vec::new();
        for (rate, ids) in by_rate {
            let audio: Vec<(&DecodingContext, &[f32])> = ids
                .iter()
                .filter_map(|id| {
                    let s = self.sessions.get(id)?;
                    match s.stream.as_ref()? {
                        Decoding::Offline { audio, .. } => Some((&s.context, audio.as_slice())),
                        Decoding::Online(_) => None,
                    }
                })
                .collect();
            if audio.len() != ids.len() {
                continue;
            }
            let raws = model.recognizer.decode_batch(rate, &audio);
            self.stats.record(1, audio.len());
            out.extend(ids.into_iter().zip(raws));
        }
        out
    }
}

/// Sends an interim result when the text changed.
fn interim(post: &Postprocessor, s: &mut Session, raw: RawResult) {
    let text: String = raw.tokens.concat();
    if text.is_empty() || text == s.last_partial {
        return;
    }
    s.last_partial = text;
    let rate = s.p.sample_rate as u64;
    let dur = (s.received - s.stream_start) as f32 / rate as f32;
    let mut t = post.partial(raw, dur, &s.p.options, &s.context);
    shift_words(&mut t, (s.stream_start * 1000 / rate) as u32);
    s.events.send(StreamEvent::Result {
        start_ms: s.stream_start * 1000 / rate,
        end_ms: s.received * 1000 / rate,
        is_final: false,
        transcript: t,
    });
}
