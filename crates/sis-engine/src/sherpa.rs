//! The only module that calls sherpa-onnx. Every function here assumes its
//! pack passed [`Pack::check`](crate::pack::Pack::check): sherpa-onnx ends the
//! process on configurations it rejects, so nothing unchecked reaches it.
//!
//! The rest of the crate sees only the types below ([`Recognizer`],
//! [`LiveStream`], [`Vad`], [`Punctuation`], [`RawResult`]), whose sherpa-onnx
//! objects are private fields. `clippy.toml` forbids every sherpa-onnx type
//! and function outside this module, and `tests/sherpa_boundary.rs` fails on
//! any mention of the crate elsewhere.
#![allow(
    clippy::disallowed_types,
    clippy::disallowed_fields,
    clippy::disallowed_methods
)]

use sherpa_onnx::{
    OfflinePunctuation, OfflinePunctuationConfig, OfflinePunctuationModelConfig, OfflineRecognizer,
    OfflineRecognizerConfig, OfflineStream, OnlineRecognizer, OnlineRecognizerConfig, OnlineStream,
    SileroVadModelConfig, VadModelConfig, VoiceActivityDetector,
};

use crate::decoding::{DecodingContext, DecodingMethod};
use crate::pack::{Pack, PackKind};
use crate::EngineError;

/// Every model runs on the CPU.
const PROVIDER: &str = "cpu";

fn path(pack: &Pack, role: &str) -> Result<Option<String>, EngineError> {
    pack.file(role)
        .map(|p| Some(p.to_string_lossy().into_owned()))
        .ok_or_else(|| EngineError::Load(format!("{}: no {role} file", pack.name())))
}

/// The settings the offline and the online recognizer configs share: their
/// types differ, their field names do not.
macro_rules! shared_settings {
    ($config:expr, $pack:expr, $threads:expr, $method:expr) => {{
        $config.decoding_method = Some($method.sherpa_name().into());
        $config.model_config.tokens = path($pack, "tokens")?;
        $config.model_config.num_threads = $threads;
        $config.model_config.provider = Some(PROVIDER.into());
    }};
}

/// The three files of a transducer, in either config.
macro_rules! transducer_files {
    ($model:expr, $pack:expr) => {{
        $model.encoder = path($pack, "encoder")?;
        $model.decoder = path($pack, "decoder")?;
        $model.joiner = path($pack, "joiner")?;
    }};
}

fn unsupported(kind: &str, model_type: &str) -> EngineError {
    EngineError::Load(format!("unsupported {kind} model_type {model_type}"))
}

/// The sherpa-onnx recognizer of either kind.
enum Native {
    Offline(OfflineRecognizer),
    Online(OnlineRecognizer),
}

/// A loaded ASR model (offline or streaming).
pub struct Recognizer {
    native: Native,
    /// sherpa-onnx fixes the search method per recognizer, not per stream.
    method: DecodingMethod,
}

/// A stream of either kind; made only by [`Recognizer::create_stream`].
enum Stream {
    Offline(OfflineStream),
    Online(OnlineStream),
}

/// A streaming recognizer's stream that audio is added to piece by piece
/// (a real-time sentence).
pub struct LiveStream(OnlineStream);

impl LiveStream {
    /// More audio at `rate`; a stream must see one rate for its whole life.
    pub fn accept(&self, rate: u32, samples: &[f32]) {
        self.0.accept_waveform(rate as i32, samples);
    }
}

impl Recognizer {
    /// Loads an offline or streaming ASR pack with the search method of
    /// [`DecodingContext::default`].
    pub fn load(pack: &Pack, threads: i32) -> Result<Recognizer, EngineError> {
        let m = &pack.manifest;
        let method = DecodingContext::default().method;
        let fail = || EngineError::Load(format!("sherpa-onnx could not load pack {}", pack.name()));
        let native = match m.kind {
            PackKind::OfflineAsr => {
                let mut c = OfflineRecognizerConfig::default();
                shared_settings!(c, pack, threads, method);
                let mc = &mut c.model_config;
                match m.model_type.as_str() {
                    "nemo_ctc" => mc.nemo_ctc.model = path(pack, "model")?,
                    "zipformer_ctc" => mc.zipformer_ctc.model = path(pack, "model")?,
                    "wenet_ctc" => mc.wenet_ctc.model = path(pack, "model")?,
                    "paraformer" => mc.paraformer.model = path(pack, "model")?,
                    "sense_voice" => {
                        mc.sense_voice.model = path(pack, "model")?;
                        mc.sense_voice.language = Some("auto".into());
                        mc.sense_voice.use_itn = false;
                    }
                    "transducer" => transducer_files!(mc.transducer, pack),
                    t => return Err(unsupported("offline", t)),
                }
                Native::Offline(OfflineRecognizer::create(&c).ok_or_else(fail)?)
            }
            PackKind::StreamingAsr => {
                let mut c = OnlineRecognizerConfig::default();
                shared_settings!(c, pack, threads, method);
                let mc = &mut c.model_config;
                match m.model_type.as_str() {
                    "nemo_ctc" => mc.nemo_ctc.model = path(pack, "model")?,
                    "zipformer2_ctc" => mc.zipformer2_ctc.model = path(pack, "model")?,
                    "paraformer" => {
                        mc.paraformer.encoder = path(pack, "encoder")?;
                        mc.paraformer.decoder = path(pack, "decoder")?;
                    }
                    "transducer" => transducer_files!(mc.transducer, pack),
                    t => return Err(unsupported("streaming", t)),
                }
                Native::Online(OnlineRecognizer::create(&c).ok_or_else(fail)?)
            }
            _ => {
                return Err(EngineError::Load(format!(
                    "{} is not an ASR pack",
                    pack.name()
                )))
            }
        };
        Ok(Recognizer { native, method })
    }

    pub fn is_streaming(&self) -> bool {
        matches!(self.native, Native::Online(_))
    }

    /// The one place a recognition stream is made: per-request decoding
    /// choices (hot words next) are applied here, for every path (short
    /// audio, real time, files).
    fn create_stream(&self, context: &DecodingContext) -> Stream {
        // every field named: a new one does not compile until it is handled
        let DecodingContext { method } = context;
        debug_assert_eq!(*method, self.method, "one search method per recognizer");
        match &self.native {
            Native::Offline(r) => Stream::Offline(r.create_stream()),
            Native::Online(r) => Stream::Online(r.create_stream()),
        }
    }

    /// A stream for real-time audio; `None` for an offline model (its
    /// callers buffer the audio and use [`Recognizer::decode_batch`]).
    pub fn live_stream(&self, context: &DecodingContext) -> Option<LiveStream> {
        if !self.is_streaming() {
            return None;
        }
        match self.create_stream(context) {
            Stream::Online(s) => Some(LiveStream(s)),
            Stream::Offline(_) => None,
        }
    }

    /// Decodes, in multi-stream calls, until no stream of `streams` has a
    /// full window buffered.
    pub fn decode_live(&self, streams: &[&LiveStream]) {
        let Native::Online(r) = &self.native else {
            return;
        };
        loop {
            let ready: Vec<&OnlineStream> = streams
                .iter()
                .map(|s| &s.0)
                .filter(|s| r.is_ready(s))
                .collect();
            if ready.is_empty() {
                break;
            }
            r.decode_multiple_streams(&ready);
        }
    }

    /// A live stream's result so far.
    pub fn live_result(&self, stream: &LiveStream) -> RawResult {
        match &self.native {
            Native::Online(r) => raw(r.get_result(&stream.0).map(|r| (r.tokens, r.timestamps))),
            Native::Offline(_) => RawResult::default(),
        }
    }

    /// Ends live streams whose audio was at `rate` and decodes them to their
    /// end. The recognizer only runs a window when a full one is buffered,
    /// so [`STREAM_TAIL_MS`] of silence is appended first.
    pub fn finish_live(&self, streams: &[&LiveStream], rate: u32) -> Vec<RawResult> {
        let tail = vec![0f32; (rate as usize * STREAM_TAIL_MS) / 1000];
        for s in streams {
            s.accept(rate, &tail);
            s.0.input_finished();
        }
        self.decode_live(streams);
        streams.iter().map(|s| self.live_result(s)).collect()
    }

    /// Decodes several whole segments (each at `rate`, which sherpa-onnx
    /// converts to the model's rate, with its request's context) in one
    /// batch. Any length is safe, zero included.
    pub fn decode_batch(
        &self,
        rate: u32,
        segments: &[(&DecodingContext, &[f32])],
    ) -> Vec<RawResult> {
        match &self.native {
            Native::Offline(r) => {
                let streams: Vec<OfflineStream> = segments
                    .iter()
                    .filter_map(|(context, samples)| match self.create_stream(context) {
                        Stream::Offline(st) => {
                            st.accept_waveform(rate as i32, &padded(samples, rate));
                            Some(st)
                        }
                        // never: an offline recognizer makes offline streams
                        Stream::Online(_) => None,
                    })
                    .collect();
                let refs: Vec<&OfflineStream> = streams.iter().collect();
                if !refs.is_empty() {
                    r.decode_multiple_streams(&refs);
                }
                streams
                    .iter()
                    .map(|s| raw(s.get_result().map(|r| (r.tokens, r.timestamps))))
                    .collect()
            }
            Native::Online(_) => {
                // whole segments through the streaming model
                let streams: Vec<LiveStream> = segments
                    .iter()
                    .filter_map(|(context, samples)| {
                        let st = self.live_stream(context)?;
                        st.accept(rate, samples);
                        Some(st)
                    })
                    .collect();
                let refs: Vec<&LiveStream> = streams.iter().collect();
                self.finish_live(&refs, rate)
            }
        }
    }
}

/// Silence appended before the last decode of a streaming model's stream,
/// so its look-ahead window is filled (ms).
const STREAM_TAIL_MS: usize = 800;

/// Voice activity detection settings.
#[derive(Clone, Copy, Debug)]
pub struct VadSettings {
    pub threshold: f32,
    pub min_silence_s: f32,
    pub min_speech_s: f32,
    pub max_speech_s: f32,
}

impl Default for VadSettings {
    fn default() -> Self {
        VadSettings {
            threshold: 0.5,
            min_silence_s: 0.5,
            min_speech_s: 0.25,
            max_speech_s: 20.0,
        }
    }
}

/// The only rate the VAD runs at. sherpa-onnx 2.0.1 ends the process when a
/// Silero v5 model is configured with any window but 512 samples
/// (`silero-vad-model.cc`, `Init`), and a 512-sample window is only right at
/// 16 kHz: audio at other rates is resampled to 16 kHz before the VAD, and the
/// VAD's sample indices are 16 kHz indices (ms = index / 16).
pub const VAD_RATE: u32 = 16000;
/// Samples per VAD call (one model window at [`VAD_RATE`]).
pub const VAD_WINDOW: usize = 512;

/// A Silero VAD for audio at [`VAD_RATE`]; nothing else can be built.
pub struct Vad(VoiceActivityDetector);

impl Vad {
    /// The only constructor: [`VAD_RATE`], [`VAD_WINDOW`].
    pub fn load(pack: &Pack, s: VadSettings, buffer_s: f32) -> Result<Vad, EngineError> {
        let config = VadModelConfig {
            silero_vad: SileroVadModelConfig {
                model: path(pack, "model")?,
                threshold: s.threshold,
                min_silence_duration: s.min_silence_s,
                min_speech_duration: s.min_speech_s,
                window_size: VAD_WINDOW as i32,
                max_speech_duration: s.max_speech_s,
            },
            sample_rate: VAD_RATE as i32,
            num_threads: 1,
            provider: Some(PROVIDER.into()),
            debug: false,
            ..Default::default()
        };
        VoiceActivityDetector::create(&config, buffer_s)
            .map(Vad)
            .ok_or_else(|| {
                EngineError::Load(format!(
                    "sherpa-onnx could not load VAD pack {}",
                    pack.name()
                ))
            })
    }

    /// One window of audio at [`VAD_RATE`] (callers feed [`VAD_WINDOW`]
    /// samples at a time: sherpa-onnx 2.0.1 loses the start of speech when a
    /// single call carries many windows — measured: a 1 s chunk dropped the
    /// first 1.0 s of a 2.6 s utterance; 512-sample calls did not).
    pub fn accept(&self, window: &[f32]) {
        self.0.accept_waveform(window);
    }

    /// Whether the VAD is inside speech now.
    pub fn detected(&self) -> bool {
        self.0.detected()
    }

    /// Ends the open segment (if any) as if silence followed; the sample
    /// count goes on, so later segment times stay in the same clock.
    pub fn flush(&self) {
        self.0.flush();
    }

    /// Forgets everything, clock included (for reuse).
    pub fn reset(&self) {
        self.0.reset();
    }

    /// The completed speech segments, as `(start, end)` sample indices at
    /// [`VAD_RATE`] since the last reset, in order.
    pub fn take_segments(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        while let Some(seg) = self.0.front() {
            let start = seg.start().max(0) as u64;
            out.push((start, start + seg.n().max(0) as u64));
            self.0.pop();
        }
        out
    }

    /// Speech regions of a whole buffer of audio at [`VAD_RATE`], as sample
    /// ranges.
    pub fn segments(&self, samples: &[f32]) -> Vec<(usize, usize)> {
        self.reset();
        let mut out = Vec::new();
        for chunk in samples.chunks(VAD_WINDOW) {
            self.accept(chunk);
            out.extend(self.take_segments());
        }
        self.flush();
        out.extend(self.take_segments());
        out.into_iter()
            .map(|(s, e)| (s as usize, e as usize))
            .collect()
    }
}

/// A punctuation model.
pub struct Punctuation(OfflinePunctuation);

impl Punctuation {
    pub fn load(pack: &Pack) -> Result<Punctuation, EngineError> {
        let config = OfflinePunctuationConfig {
            model: OfflinePunctuationModelConfig {
                ct_transformer: path(pack, "model")?,
                num_threads: 1,
                debug: false,
                provider: Some(PROVIDER.into()),
            },
        };
        OfflinePunctuation::create(&config)
            .map(Punctuation)
            .ok_or_else(|| {
                EngineError::Load(format!(
                    "sherpa-onnx could not load punctuation pack {}",
                    pack.name()
                ))
            })
    }

    /// `text` with punctuation; `None` when the model returned nothing.
    pub fn punctuate(&self, text: &str) -> Option<String> {
        self.0.add_punctuation(text)
    }
}

/// One recognised segment: tokens with start times (s, relative to the segment).
#[derive(Debug, Default, Clone)]
pub struct RawResult {
    pub tokens: Vec<String>,
    pub timestamps: Vec<f32>,
}

fn raw(result: Option<(Vec<String>, Option<Vec<f32>>)>) -> RawResult {
    match result {
        Some((tokens, timestamps)) => RawResult {
            tokens,
            timestamps: timestamps.unwrap_or_default(),
        },
        None => RawResult::default(),
    }
}

/// Shortest audio an offline model is given, in seconds. Offline models
/// subsample their feature frames; fed fewer frames than that needs,
/// onnxruntime throws from inside the encoder (the committed nemo_ctc pack:
/// "Expand node ... invalid expand shape" under 560 samples at 16 kHz), and a
/// C++ exception cannot be caught across the FFI: the process aborts. Shorter
/// audio is padded with silence to this length (real models subsample by at
/// most 8 frames of 10 ms; 1 s leaves a wide margin and costs little).
pub const MIN_OFFLINE_S: f32 = 1.0;

/// `samples`, or a copy padded with silence to [`MIN_OFFLINE_S`] at `rate`.
fn padded(samples: &[f32], rate: u32) -> std::borrow::Cow<'_, [f32]> {
    let min = (MIN_OFFLINE_S * rate.max(1) as f32) as usize;
    if samples.len() >= min {
        return std::borrow::Cow::Borrowed(samples);
    }
    let mut v = samples.to_vec();
    v.resize(min, 0.0);
    std::borrow::Cow::Owned(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_offline_audio_is_padded_to_the_minimum() {
        for rate in [8000u32, 16000] {
            let min = (MIN_OFFLINE_S * rate as f32) as usize;
            for len in [0, 1, 559, min - 1] {
                let audio = vec![0.5; len];
                let p = padded(&audio, rate);
                assert_eq!(p.len(), min, "{len} samples at {rate} Hz");
                assert!(p[..len].iter().all(|&s| s == 0.5));
                assert!(p[len..].iter().all(|&s| s == 0.0));
            }
            assert!(matches!(
                padded(&vec![0.0; min], rate),
                std::borrow::Cow::Borrowed(_)
            ));
        }
    }

    /// The committed transducer test packs (`tools/train`) straight through
    /// the C API, as hot words will use them: both search methods, and
    /// streams made with hot words under `modified_beam_search`, offline and
    /// streaming. [`Recognizer::load`] builds greedy recognizers only, so
    /// this test builds its own configs; a process exit fails the test run.
    /// The clip is held-out number n022, 九五五二二六七五, which the committed
    /// packs read 九五二六七五 without hot words; with it as a hot word they
    /// read it right.
    #[test]
    fn transducer_packs_decode_with_both_searches_and_hot_words() -> Result<(), EngineError> {
        let clip = crate::testsupport::heldout::clips()
            .into_iter()
            .find(|c| c.id == "n022")
            .expect("held-out clip n022");
        let audio = crate::testsupport::samples(&clip, 16000);
        // the clip's text with its own score, another phrase, and one with a
        // character the tokens lack (sherpa-onnx logs and skips that one)
        let hot_words = format!("{} :3.0/您好/鑫", clip.text);
        let hot_words = hot_words.as_str();
        for name in ["zh-tiny-transducer-streaming", "zh-tiny-transducer-offline"] {
            let dir = crate::testsupport::root()
                .join("testdata/models")
                .join(name);
            let pack = Pack::open(&dir).map_err(|e| EngineError::Load(e.to_string()))?;
            pack.check().map_err(|e| EngineError::Load(e.to_string()))?;
            for method in ["greedy_search", "modified_beam_search"] {
                let mut texts = vec![];
                if pack.manifest.kind == PackKind::StreamingAsr {
                    let mut c = OnlineRecognizerConfig {
                        decoding_method: Some(method.into()),
                        ..Default::default()
                    };
                    c.model_config.tokens = path(&pack, "tokens")?;
                    c.model_config.num_threads = 1;
                    c.model_config.provider = Some(PROVIDER.into());
                    c.model_config.modeling_unit = Some("cjkchar".into());
                    transducer_files!(c.model_config.transducer, &pack);
                    let r = OnlineRecognizer::create(&c).expect("the streaming transducer loads");
                    let mut streams = vec![r.create_stream()];
                    if method == "modified_beam_search" {
                        streams.push(r.create_stream_with_hotwords(hot_words));
                    }
                    for s in &streams {
                        s.accept_waveform(16000, &audio);
                        s.accept_waveform(16000, &vec![0.0; 16000 * STREAM_TAIL_MS / 1000]);
                        s.input_finished();
                        while r.is_ready(s) {
                            r.decode(s);
                        }
                        texts.push(r.get_result(s).map(|r| r.text).unwrap_or_default());
                    }
                } else {
                    let mut c = OfflineRecognizerConfig {
                        decoding_method: Some(method.into()),
                        ..Default::default()
                    };
                    c.model_config.tokens = path(&pack, "tokens")?;
                    c.model_config.num_threads = 1;
                    c.model_config.provider = Some(PROVIDER.into());
                    c.model_config.modeling_unit = Some("cjkchar".into());
                    transducer_files!(c.model_config.transducer, &pack);
                    let r = OfflineRecognizer::create(&c).expect("the offline transducer loads");
                    let mut streams = vec![r.create_stream()];
                    if method == "modified_beam_search" {
                        streams.push(r.create_stream_with_hotwords(hot_words));
                    }
                    for s in &streams {
                        s.accept_waveform(16000, &audio);
                        r.decode(s);
                        texts.push(s.get_result().map(|r| r.text).unwrap_or_default());
                    }
                }
                println!("{name} {method}: {texts:?} (reference {})", clip.text);
                assert!(
                    texts.iter().all(|t| !t.is_empty()),
                    "{name} {method}: {texts:?}"
                );
                if let Some(hot) = texts.get(1) {
                    assert_eq!(hot, &clip.text, "{name}: the hot word wins");
                }
            }
        }
        Ok(())
    }
}
