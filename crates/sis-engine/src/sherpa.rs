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
    GenerationConfig, OfflinePunctuation, OfflinePunctuationConfig, OfflinePunctuationModelConfig,
    OfflineRecognizer, OfflineRecognizerConfig, OfflineStream, OfflineTts, OfflineTtsConfig,
    OfflineTtsModelConfig, OfflineTtsVitsModelConfig, OnlineRecognizer, OnlineRecognizerConfig,
    OnlineStream, SileroVadModelConfig, VadModelConfig, VoiceActivityDetector,
};

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::decoding::{self, DecodingContext, DecodingMethod, HotWordSupport, MAX_ACTIVE_PATHS};
use crate::hotwords::{self, Lru, Vocabulary};
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
/// types differ, their field names do not. The search method comes from
/// [`decoding::hot_word_support`] (beam search only for transducers
/// sherpa-onnx biases); its parameters are set explicitly (the C API turns
/// a 0 into its own default); no recognizer-wide hot words, rule FSTs or
/// homophone replacer (`homophone_rule_fsts` refuses more than one FST);
/// `modeling_unit` and `bpe_vocab` stay unset, so hot words are split as
/// `cjkchar` (the C API's default), which needs no BPE model.
macro_rules! shared_settings {
    ($config:expr, $pack:expr, $threads:expr, $method:expr) => {{
        $config.decoding_method = Some($method.sherpa_name().into());
        $config.max_active_paths = MAX_ACTIVE_PATHS;
        $config.hotwords_file = None;
        $config.hotwords_score = hotwords::bias_score(hotwords::DEFAULT_WEIGHT);
        $config.rule_fsts = None;
        $config.rule_fars = None;
        $config.hr.lexicon = None;
        $config.hr.rule_fsts = decoding::homophone_rule_fsts(&[])?;
        $config.model_config.tokens = path($pack, "tokens")?;
        $config.model_config.num_threads = $threads;
        $config.model_config.provider = Some(PROVIDER.into());
        $config.model_config.modeling_unit = None;
        $config.model_config.bpe_vocab = None;
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
    /// Present exactly when `method` is beam search on a transducer that
    /// sherpa-onnx biases per stream ([`HotWordSupport::Biasing`]).
    biasing: Option<Biasing>,
    /// The decoder reports each token's probability (transducers only:
    /// sherpa-onnx's CTC, Paraformer and SenseVoice decoders keep none).
    confident: bool,
    /// Streaming packs: the silence that flushes a stream's last window.
    tail_ms: usize,
}

/// Hot-word lists written for one biasing recognizer's tokens, by
/// vocabulary (`None`: no word of it can be encoded with these tokens).
type ListCache = Mutex<Lru<(String, i64), Option<Arc<str>>>>;

/// Lists kept per recognizer (least recently used dropped).
const LISTS_PER_RECOGNIZER: usize = 64;

/// What a recognizer that sherpa-onnx biases needs to write a request's
/// hot-word list.
struct Biasing {
    /// The pack's token table: a phrase is sent only when each of its
    /// `cjkchar` pieces is a token (sherpa-onnx logs and drops the others on
    /// every stream).
    tokens: HashSet<String>,
    lists: ListCache,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Biasing {
    fn load(pack: &Pack) -> Result<Biasing, EngineError> {
        let file = pack
            .file("tokens")
            .ok_or_else(|| EngineError::Load(format!("{}: no tokens file", pack.name())))?;
        let tokens = crate::pack::read_tokens(&file)
            .map_err(EngineError::Load)?
            .into_keys()
            .collect();
        Ok(Biasing {
            tokens,
            lists: Mutex::new(Lru::new(LISTS_PER_RECOGNIZER)),
        })
    }

    /// The per-stream list of `v` for this recognizer, checked
    /// ([`hotwords::check_bias_list`]); written once per vocabulary.
    fn list(&self, v: &Vocabulary) -> Option<Arc<str>> {
        let key = (v.vocabulary_id.clone(), v.version);
        if let Some(list) = lock(&self.lists).get(&key) {
            return list;
        }
        let list: Option<Arc<str>> = v
            .bias_list(|t| self.tokens.contains(t))
            .filter(|l| match hotwords::check_bias_list(l) {
                Ok(()) => true,
                Err(why) => {
                    tracing::warn!(vocabulary_id = %v.vocabulary_id, "hot-word list refused: {why}");
                    false
                }
            })
            .map(Arc::from);
        lock(&self.lists).insert(key, list.clone());
        list
    }

    /// A phrase of up to two single-ideograph tokens, for the smoke decode.
    fn sample_phrase(&self) -> Option<String> {
        let mut chars: Vec<&str> = self
            .tokens
            .iter()
            .map(String::as_str)
            .filter(|t| {
                let mut cs = t.chars();
                cs.next().is_some_and(hotwords::is_cjk) && cs.next().is_none()
            })
            .collect();
        chars.sort_unstable();
        let phrase: String = chars.into_iter().take(2).collect();
        (!phrase.is_empty()).then_some(phrase)
    }
}

/// The plain twin of a stream that sherpa-onnx biases with a request's hot
/// words: it decodes the same audio without them, and the result is the
/// biased one checked against it ([`Vocabulary::verify_biased`]).
struct Twin<S> {
    plain: S,
    vocabulary: Arc<Vocabulary>,
}

impl<S> Twin<S> {
    fn of(plain: S, vocabulary: &Arc<Vocabulary>) -> Option<Twin<S>> {
        Some(Twin {
            plain,
            vocabulary: vocabulary.clone(),
        })
    }
}

/// A stream of either kind; made only by [`Recognizer::create_stream`],
/// biased by the request's hot words exactly when it has a [`Twin`].
enum Stream {
    Offline(OfflineStream, Option<Twin<OfflineStream>>),
    Online(OnlineStream, Option<Twin<OnlineStream>>),
}

/// A streaming recognizer's stream that audio is added to piece by piece
/// (a real-time sentence).
pub struct LiveStream {
    stream: OnlineStream,
    /// Present when `stream` is biased by the request's hot words.
    twin: Option<Twin<OnlineStream>>,
    /// Silence that flushes its last window ([`stream_tail_ms`]).
    tail_ms: usize,
}

impl LiveStream {
    /// More audio at `rate`; a stream must see one rate for its whole life.
    pub fn accept(&self, rate: u32, samples: &[f32]) {
        self.stream.accept_waveform(rate as i32, samples);
        if let Some(t) = &self.twin {
            t.plain.accept_waveform(rate as i32, samples);
        }
    }

    /// No more audio: silence so the last window fills
    /// ([`stream_tail_ms`]), and sherpa-onnx told the input is finished. Decoding it to its
    /// end ([`Recognizer::decode_live`]) then gives the final result.
    pub fn end_of_input(&self, rate: u32) {
        let tail = vec![0f32; (rate as usize * self.tail_ms) / 1000];
        self.accept(rate, &tail);
        self.natives().for_each(OnlineStream::input_finished);
    }

    /// Its sherpa-onnx streams (the twin's too).
    fn natives(&self) -> impl Iterator<Item = &OnlineStream> {
        std::iter::once(&self.stream).chain(self.twin.as_ref().map(|t| &t.plain))
    }
}

/// What sherpa-onnx can do with hot words for `pack`, from the ONNX
/// metadata that selects its implementation (transducers only, read again
/// from the file [`Pack::check`] already parsed: the encoder of an offline
/// pack, the decoder of a streaming one).
fn hot_word_support(pack: &Pack) -> Result<HotWordSupport, EngineError> {
    let m = &pack.manifest;
    let (mut encoder, mut decoder) = (None, None);
    if m.model_type == "transducer" {
        match m.kind {
            PackKind::OfflineAsr => encoder = Some(pack.onnx("encoder")?),
            PackKind::StreamingAsr => decoder = Some(pack.onnx("decoder")?),
            PackKind::Vad | PackKind::Punctuation | PackKind::Tts => {}
        }
    }
    Ok(decoding::hot_word_support(
        m.kind,
        &m.model_type,
        encoder.as_ref(),
        decoder.as_ref(),
    ))
}

impl Recognizer {
    /// Loads an offline or streaming ASR pack, with beam search and
    /// per-stream hot words when sherpa-onnx can bias it
    /// ([`decoding::hot_word_support`]), else greedy search.
    pub fn load(pack: &Pack, threads: i32) -> Result<Recognizer, EngineError> {
        let m = &pack.manifest;
        let support = hot_word_support(pack)?;
        let method = support.method();
        let biasing = match support {
            HotWordSupport::Biasing => Some(Biasing::load(pack)?),
            HotWordSupport::TextOnly => None,
        };
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
        debug_assert_eq!(
            biasing.is_some(),
            method == DecodingMethod::ModifiedBeamSearch,
            "hot-word streams exactly when the search is a beam"
        );
        Ok(Recognizer {
            native,
            method,
            biasing,
            confident: m.model_type == "transducer",
            tail_ms: match m.kind {
                PackKind::StreamingAsr => stream_tail_ms(pack),
                _ => STREAM_TAIL_MS,
            },
        })
    }

    /// The result of a decode that heard nothing.
    pub fn nothing(&self) -> RawResult {
        raw(None, self.confident)
    }

    pub fn is_streaming(&self) -> bool {
        matches!(self.native, Native::Online(_))
    }

    /// The search method the recognizer was loaded with.
    pub fn method(&self) -> DecodingMethod {
        self.method
    }

    /// Whether streams of requests with hot words are biased by sherpa-onnx.
    pub fn biases(&self) -> bool {
        self.biasing.is_some()
    }

    /// The one place a recognition stream is made: per-request decoding
    /// choices are applied here, for every path (short audio, real time,
    /// files). A request's hot words reach sherpa-onnx only for a recognizer
    /// it biases (loaded with beam search), only as a list that passed
    /// [`hotwords::check_bias_list`], and only when the list is not empty;
    /// every other stream is a plain one. A biased stream comes with its
    /// plain [`Twin`].
    fn create_stream(&self, context: &DecodingContext) -> Stream {
        // every field named: a new one does not compile until it is handled
        let DecodingContext { hot_words } = context;
        match (&self.biasing, hot_words) {
            (Some(b), Some(v)) => self.stream_with(b.list(v).as_deref().map(|l| (l, v))),
            _ => self.stream_with(None),
        }
    }

    /// A stream biased by the per-stream hot-word list (checked) of a
    /// vocabulary, with its plain twin; or a plain one.
    fn stream_with(&self, list: Option<(&str, &Arc<Vocabulary>)>) -> Stream {
        let list = list.filter(|_| self.biasing.is_some());
        match (&self.native, list) {
            (Native::Offline(r), Some((l, v))) => Stream::Offline(
                r.create_stream_with_hotwords(l),
                Twin::of(r.create_stream(), v),
            ),
            (Native::Offline(r), None) => Stream::Offline(r.create_stream(), None),
            (Native::Online(r), Some((l, v))) => Stream::Online(
                r.create_stream_with_hotwords(l),
                Twin::of(r.create_stream(), v),
            ),
            (Native::Online(r), None) => Stream::Online(r.create_stream(), None),
        }
    }

    /// For a biasing recognizer: decodes `samples` once through a stream
    /// with a hot-word list made of its own tokens, so the list encoder, the
    /// context graph and the beam search run before any client's do (the
    /// child-process probe runs this too). Nothing for other recognizers.
    pub fn smoke_hot_words(&self, rate: u32, samples: &[f32]) {
        let Some(phrase) = self.biasing.as_ref().and_then(Biasing::sample_phrase) else {
            return;
        };
        let list = format!(
            "{phrase} :{:.2}",
            hotwords::bias_score(hotwords::DEFAULT_WEIGHT)
        );
        if hotwords::check_bias_list(&list).is_err() {
            return;
        }
        let vocabulary = Arc::new(Vocabulary::compile(&sis_core::HotWords {
            vocabulary_id: "smoke".into(),
            version: 0,
            words: Arc::new(vec![phrase]),
        }));
        let stream = self.stream_with(Some((&list, &vocabulary)));
        match (&self.native, stream) {
            (Native::Offline(_), Stream::Offline(st, twin)) => {
                self.decode_offline(rate, vec![(st, twin, samples)]);
            }
            (Native::Online(_), Stream::Online(stream, twin)) => {
                let live = LiveStream {
                    stream,
                    twin,
                    tail_ms: self.tail_ms,
                };
                live.accept(rate, samples);
                self.finish_live(&[&live], rate);
            }
            _ => {}
        }
    }

    /// A stream for real-time audio; `None` for an offline model (its
    /// callers buffer the audio and use [`Recognizer::decode_batch`]).
    pub fn live_stream(&self, context: &DecodingContext) -> Option<LiveStream> {
        if !self.is_streaming() {
            return None;
        }
        match self.create_stream(context) {
            Stream::Online(stream, twin) => Some(LiveStream {
                stream,
                twin,
                tail_ms: self.tail_ms,
            }),
            Stream::Offline(..) => None,
        }
    }

    /// Decodes, in multi-stream calls, until no stream of `streams` has a
    /// full window buffered; returns (decode calls, streams decoded in them).
    pub fn decode_live(&self, streams: &[&LiveStream]) -> (usize, usize) {
        let Native::Online(r) = &self.native else {
            return (0, 0);
        };
        let (mut calls, mut decoded) = (0, 0);
        loop {
            let ready: Vec<&OnlineStream> = streams
                .iter()
                .flat_map(|s| s.natives())
                .filter(|s| r.is_ready(s))
                .collect();
            if ready.is_empty() {
                break;
            }
            r.decode_multiple_streams(&ready);
            calls += 1;
            decoded += ready.len();
        }
        (calls, decoded)
    }

    /// A live stream has a full window buffered (its twin, fed the same
    /// audio, is ready with it).
    pub fn live_ready(&self, stream: &LiveStream) -> bool {
        match &self.native {
            Native::Online(r) => r.is_ready(&stream.stream),
            Native::Offline(_) => false,
        }
    }

    /// A live stream's result so far (a biased one checked against its
    /// twin's).
    pub fn live_result(&self, stream: &LiveStream) -> RawResult {
        let Native::Online(r) = &self.native else {
            return RawResult::default();
        };
        let get = |s: &OnlineStream| raw(native::online(r, s), self.confident);
        verified(
            get(&stream.stream),
            stream.twin.as_ref().map(|t| (get(&t.plain), t)),
        )
    }

    /// Ends live streams whose audio was at `rate` and decodes them to their
    /// end. The recognizer only runs a window when a full one is buffered,
    /// so silence is appended first ([`stream_tail_ms`]).
    pub fn finish_live(&self, streams: &[&LiveStream], rate: u32) -> Vec<RawResult> {
        for s in streams {
            s.end_of_input(rate);
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
            Native::Offline(_) => {
                let streams = segments
                    .iter()
                    .filter_map(|(context, samples)| match self.create_stream(context) {
                        Stream::Offline(st, twin) => Some((st, twin, *samples)),
                        // never: an offline recognizer makes offline streams
                        Stream::Online(..) => None,
                    })
                    .collect();
                self.decode_offline(rate, streams)
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

/// An offline stream, its twin when biased, and its segment's audio.
type OfflineSegment<'a> = (OfflineStream, Option<Twin<OfflineStream>>, &'a [f32]);

impl Recognizer {
    /// Decodes offline streams (biased ones with their twins) of segments
    /// at `rate` in one multi-stream call.
    fn decode_offline(&self, rate: u32, streams: Vec<OfflineSegment<'_>>) -> Vec<RawResult> {
        let Native::Offline(r) = &self.native else {
            return Vec::new();
        };
        for (st, twin, samples) in &streams {
            let audio = padded(samples, rate);
            st.accept_waveform(rate as i32, &audio);
            if let Some(t) = twin {
                t.plain.accept_waveform(rate as i32, &audio);
            }
        }
        let refs: Vec<&OfflineStream> = streams
            .iter()
            .flat_map(|(st, twin, _)| std::iter::once(st).chain(twin.as_ref().map(|t| &t.plain)))
            .collect();
        if !refs.is_empty() {
            r.decode_multiple_streams(&refs);
        }
        let get = |s: &OfflineStream| raw(native::offline(s), self.confident);
        streams
            .iter()
            .map(|(st, twin, _)| verified(get(st), twin.as_ref().map(|t| (get(&t.plain), t))))
            .collect()
    }
}

/// The result of a stream: as decoded when it was plain; when it was
/// biased, checked against its twin's plain result
/// ([`Vocabulary::verify_biased`]), each token with its own time (kept in
/// order).
fn verified<S>(result: RawResult, twin: Option<(RawResult, &Twin<S>)>) -> RawResult {
    let Some((plain, twin)) = twin else {
        return result;
    };
    let picks = twin.vocabulary.verify_biased(&plain.tokens, &result.tokens);
    let timed = plain.timestamps.len() == plain.tokens.len()
        && result.timestamps.len() == result.tokens.len();
    let mut out = RawResult {
        biased: true,
        log_probs: (plain.log_probs.is_some() && result.log_probs.is_some()).then(Vec::new),
        ..RawResult::default()
    };
    let mut last = 0f32;
    for pick in picks {
        let (side, i) = match pick {
            hotwords::Pick::Plain(i) => (&plain, i),
            hotwords::Pick::Biased(j) => (&result, j),
        };
        let Some(token) = side.tokens.get(i) else {
            continue;
        };
        out.tokens.push(token.clone());
        if let (Some(all), Some(sides)) = (&mut out.log_probs, &side.log_probs) {
            all.push(sides.get(i).copied().unwrap_or(f32::NAN));
        }
        if timed {
            last = side.timestamps.get(i).copied().unwrap_or(last).max(last);
            out.timestamps.push(last);
        }
    }
    out
}

/// Silence appended before the last decode of a streaming model's stream,
/// so its look-ahead window is filled (ms).
const STREAM_TAIL_MS: usize = 800;

/// The silence that flushes a streaming pack's last window, in ms.
/// sherpa-onnx decodes a stream's next window when more than its window
/// (`T` feature frames of 10 ms, from the model's metadata: `T` for
/// transducers and zipformer2 CTC, `window_size` for NeMo CTC) is buffered
/// past what it decoded, and each decode moves on by the window's shift
/// (at most `T`). With F real frames and P frames of silence after them
/// (the input finished, so all F + P are ready), windows are decoded while
/// `processed + T < F + P`; with P = `T` + 2 they run until `processed >=
/// F + 2`, past every real frame whatever was decoded before the end (the
/// 2 frames cover the rounding of samples to frames). The transcripts of
/// the committed streaming packs are those of the old fixed 800 ms tail
/// (`tests/heldout_cer.rs`, `stream::tests`). Packs whose window is not
/// stated get [`STREAM_TAIL_MS`]; no tail exceeds it.
fn stream_tail_ms(pack: &Pack) -> usize {
    let (role, key) = match pack.manifest.model_type.as_str() {
        "transducer" => ("encoder", "T"),
        "nemo_ctc" => ("model", "window_size"),
        "zipformer2_ctc" => ("model", "T"),
        _ => return STREAM_TAIL_MS,
    };
    match pack.onnx(role).ok().and_then(|i| i.int(key)) {
        Some(t) if t > 0 => ((t as usize + 2) * 10).min(STREAM_TAIL_MS),
        _ => STREAM_TAIL_MS,
    }
}

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

    /// `text` with punctuation; `None` when the model returned nothing, or
    /// lost some of the text: sherpa-onnx 2.0.1 drops every token after a
    /// sentence end it finds inside the last window
    /// (`offline-punctuation-ct-transformer-impl.h`, tools/train/punct), so
    /// the answer must hold the same words as `text`, case, spaces and
    /// punctuation aside.
    pub fn punctuate(&self, text: &str) -> Option<String> {
        fn words(s: &str) -> Vec<char> {
            s.chars()
                .filter(|c| {
                    !c.is_whitespace()
                        && !c.is_ascii_punctuation()
                        && !"，。？！、；：".contains(*c)
                })
                .flat_map(char::to_lowercase)
                .collect()
        }
        self.0
            .add_punctuation(text)
            .filter(|out| words(out) == words(text))
    }
}

/// A sherpa-onnx TTS pack (VITS with a lexicon), loaded. Everything that
/// would end the process at load or at a synthesis is refused before the
/// call: the pack by `Pack::check` (`check_vits`), a request here (the
/// speaker id within the model's, a finite speed > 0, no NUL in the text).
pub struct Tts {
    native: OfflineTts,
    rate: u32,
    speakers: i32,
}

/// The most text one synthesis call is given (characters): one sentence,
/// as the synthesizer splits them, is far shorter.
pub const MAX_TTS_CHARS: usize = 2000;

impl Tts {
    pub fn load(pack: &Pack, threads: i32) -> Result<Tts, EngineError> {
        let m = &pack.manifest;
        if (m.kind, m.model_type.as_str()) != (PackKind::Tts, "vits") {
            return Err(unsupported("tts", &m.model_type));
        }
        let config = OfflineTtsConfig {
            model: OfflineTtsModelConfig {
                vits: OfflineTtsVitsModelConfig {
                    model: path(pack, "model")?,
                    tokens: path(pack, "tokens")?,
                    lexicon: path(pack, "lexicon")?,
                    ..Default::default()
                },
                num_threads: threads.max(1),
                provider: Some(PROVIDER.into()),
                ..Default::default()
            },
            max_num_sentences: 1,
            silence_scale: 0.2,
            ..Default::default()
        };
        let native = OfflineTts::create(&config).ok_or_else(|| {
            EngineError::Load(format!(
                "sherpa-onnx could not load TTS pack {}",
                pack.name()
            ))
        })?;
        let rate = u32::try_from(native.sample_rate()).unwrap_or(0);
        if rate != m.sample_rate {
            return Err(EngineError::Load(format!(
                "TTS pack {}: sherpa-onnx says {rate} Hz, the manifest {}",
                pack.name(),
                m.sample_rate
            )));
        }
        Ok(Tts {
            speakers: native.num_speakers().max(1),
            native,
            rate,
        })
    }

    /// The rate of what [`Tts::generate`] returns.
    pub fn sample_rate(&self) -> u32 {
        self.rate
    }

    /// `text` read by speaker `sid` at `speed` (1 = the model's own pace;
    /// durations scale by 1/speed): samples at [`Tts::sample_rate`].
    pub fn generate(&self, text: &str, sid: i32, speed: f32) -> Result<Vec<f32>, EngineError> {
        if sid < 0 || sid >= self.speakers {
            return Err(EngineError::Failed(format!(
                "speaker {sid} is not one of the model's {}",
                self.speakers
            )));
        }
        if !(speed.is_finite() && speed > 0.0) {
            return Err(EngineError::Failed(format!("speed {speed} is not > 0")));
        }
        if text.contains('\0') || text.chars().count() > MAX_TTS_CHARS {
            return Err(EngineError::Failed(
                "text with a NUL or too long for one synthesis".into(),
            ));
        }
        let config = GenerationConfig {
            sid,
            speed,
            ..Default::default()
        };
        let audio = self
            .native
            .generate_with_config::<fn(&[f32], f32) -> bool>(text, &config, None)
            .ok_or_else(|| EngineError::Failed("sherpa-onnx produced no audio".into()))?;
        Ok(audio.samples().to_vec())
    }
}

/// One recognised segment: tokens with start times (s, relative to the segment).
#[derive(Debug, Default, Clone)]
pub struct RawResult {
    pub tokens: Vec<String>,
    pub timestamps: Vec<f32>,
    /// The natural log of the probability the model gave each token when
    /// it chose it, one per token; `None` when the pack's decoder reports
    /// none (every model type but the transducers). NaN where sherpa-onnx
    /// wrote a value that is not a number.
    pub log_probs: Option<Vec<f32>>,
    /// sherpa-onnx decoded it with the request's hot words (so the
    /// post-processor only applies their exact spellings and the rules).
    pub biased: bool,
}

/// A plain decode's result ([`verified`] marks the biased ones), from what
/// sherpa-onnx's C API wrote; `confident`: the decoder reports per-token
/// probabilities.
fn raw(result: Option<native::Decoded>, confident: bool) -> RawResult {
    let Some(d) = result else {
        return RawResult {
            log_probs: confident.then(Vec::new),
            ..RawResult::default()
        };
    };
    // offline transducers write `ys_log_probs`, online ones `ys_probs`
    // (both natural logs); other decoders leave both empty
    let probs = if d.ys_log_probs.is_empty() {
        d.ys_probs
    } else {
        d.ys_log_probs
    };
    let log_probs = (confident && probs.len() == d.tokens.len())
        .then(|| probs.into_iter().map(|p| p.unwrap_or(f32::NAN)).collect());
    RawResult {
        tokens: d.tokens,
        timestamps: d.timestamps,
        log_probs,
        biased: false,
    }
}

/// What the crate's result types drop. sherpa-onnx's C API writes a
/// result as JSON with each token's log-probability for transducers
/// (`ys_log_probs` offline, `ys_probs` online: sherpa-onnx's
/// `OfflineRecognitionResult::AsJsonString` and
/// `OnlineRecognizerResult::AsJsonString`), but the crate parses that JSON
/// into structs without them, and keeps the C handles in private fields.
/// This module reads the handles and the JSON itself.
mod native {
    use serde::Deserialize;
    use sherpa_onnx::{OfflineStream, OnlineRecognizer, OnlineStream};
    use sherpa_onnx_sys as sys;
    use std::ffi::{c_char, CStr};
    use std::mem::size_of;

    // sherpa-onnx 2.0.1 (pinned with `=`) declares each of these handles
    // with one field, its C pointer. A struct the size of its only field
    // has that field at offset 0; these fail the build if a handle grows.
    const _: () = assert!(size_of::<OfflineStream>() == size_of::<*const sys::OfflineStream>());
    const _: () = assert!(size_of::<OnlineStream>() == size_of::<*const sys::OnlineStream>());
    const _: () =
        assert!(size_of::<OnlineRecognizer>() == size_of::<*const sys::OnlineRecognizer>());

    fn offline_stream(s: &OfflineStream) -> *const sys::OfflineStream {
        // SAFETY: the handle is its C pointer alone (asserted above)
        unsafe { *(s as *const OfflineStream).cast::<*const sys::OfflineStream>() }
    }

    fn online_stream(s: &OnlineStream) -> *const sys::OnlineStream {
        // SAFETY: as above
        unsafe { *(s as *const OnlineStream).cast::<*const sys::OnlineStream>() }
    }

    fn online_recognizer(r: &OnlineRecognizer) -> *const sys::OnlineRecognizer {
        // SAFETY: as above
        unsafe { *(r as *const OnlineRecognizer).cast::<*const sys::OnlineRecognizer>() }
    }

    /// A result's fields this crate uses. A value sherpa-onnx writes that
    /// JSON has no number for (`nan`, `inf`) arrives as `None`.
    #[derive(Debug, Deserialize)]
    pub(super) struct Decoded {
        #[serde(default)]
        pub tokens: Vec<String>,
        #[serde(default)]
        pub timestamps: Vec<f32>,
        #[serde(default)]
        pub ys_log_probs: Vec<Option<f32>>,
        #[serde(default)]
        pub ys_probs: Vec<Option<f32>>,
    }

    pub(super) fn offline(s: &OfflineStream) -> Option<Decoded> {
        // SAFETY: a live stream's handle; the string is freed below
        let p = unsafe { sys::SherpaOnnxGetOfflineStreamResultAsJson(offline_stream(s)) };
        let d = parse(p);
        if !p.is_null() {
            // SAFETY: the string sherpa-onnx made for this call
            unsafe { sys::SherpaOnnxDestroyOfflineStreamResultJson(p) };
        }
        d
    }

    pub(super) fn online(r: &OnlineRecognizer, s: &OnlineStream) -> Option<Decoded> {
        // SAFETY: live handles; the stream was made by this recognizer
        let p = unsafe {
            sys::SherpaOnnxGetOnlineStreamResultAsJson(online_recognizer(r), online_stream(s))
        };
        let d = parse(p);
        if !p.is_null() {
            // SAFETY: the string sherpa-onnx made for this call
            unsafe { sys::SherpaOnnxDestroyOnlineStreamResultJson(p) };
        }
        d
    }

    fn parse(p: *const c_char) -> Option<Decoded> {
        if p.is_null() {
            return None;
        }
        // SAFETY: sherpa-onnx returns a NUL-terminated string
        let text = unsafe { CStr::from_ptr(p) }.to_string_lossy();
        serde_json::from_str(&numbers_or_null(&text)).ok()
    }

    /// `json` with what C++ streams print for non-finite floats, outside
    /// strings, made JSON: `nan` and `-nan` become `null`, `-inf` and `inf`
    /// the most negative and most positive f32 (a log-probability of
    /// `-inf` is a probability of 0, and stays one).
    pub(super) fn numbers_or_null(json: &str) -> String {
        let mut out = String::with_capacity(json.len());
        let mut in_string = false;
        let mut escaped = false;
        let mut rest = json;
        while let Some(c) = rest.chars().next() {
            if in_string {
                match (escaped, c) {
                    (true, _) => escaped = false,
                    (false, '\\') => escaped = true,
                    (false, '"') => in_string = false,
                    _ => {}
                }
            } else if c == '"' {
                in_string = true;
            } else if let Some((word, json)) = [
                ("-nan", "null"),
                ("nan", "null"),
                ("-inf", "-3.4028235e38"),
                ("inf", "3.4028235e38"),
            ]
            .into_iter()
            .find(|(w, _)| {
                rest.get(..w.len())
                    .is_some_and(|h| h.eq_ignore_ascii_case(w))
            }) {
                out.push_str(json);
                rest = &rest[word.len()..];
                continue;
            }
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
        out
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
    use crate::testsupport;

    /// sherpa-onnx ends the process when a CTC recognizer is asked for a
    /// hot-word stream: requests with a vocabulary must get plain streams on
    /// the committed packs (offline and streaming), and the results say so.
    #[test]
    fn hot_words_on_the_ctc_packs_make_plain_streams() {
        let context = DecodingContext::for_request(&sis_core::RecognitionOptions {
            hot_words: Some(sis_core::HotWords {
                vocabulary_id: "sherpa-test".into(),
                version: 1,
                words: Arc::new(vec!["请问|10".into(), "张伟".into(), "谐音=目标".into()]),
            }),
            ..Default::default()
        });
        let clips = testsupport::sentences();
        let audio = testsupport::samples(&clips[0], 16000);
        let empty: [f32; 0] = [];
        for model in [testsupport::offline_model(), testsupport::streaming_model()] {
            let rec = &model.recognizer;
            assert!(!rec.biases());
            assert_eq!(rec.method(), DecodingMethod::Greedy);
            let out = rec.decode_batch(16000, &[(&context, &audio[..]), (&context, &empty[..])]);
            assert_eq!(out.len(), 2);
            assert!(out.iter().all(|r| !r.biased));
            assert!(!out[0].tokens.is_empty());
            // even a list handed straight to the stream maker is dropped
            let vocabulary = context.hot_words.clone().unwrap();
            assert!(matches!(
                rec.stream_with(Some(("请问 :1.50", &vocabulary))),
                Stream::Offline(_, None) | Stream::Online(_, None)
            ));
            // and the smoke decode does nothing
            rec.smoke_hot_words(16000, &audio);
            if let Some(live) = rec.live_stream(&context) {
                assert!(live.twin.is_none());
            }
        }
    }

    /// The committed VITS test pack through sherpa-onnx: speed scales the
    /// duration, every speaker reads, and what would end the process (a
    /// speaker past the model's, a NUL, a speed <= 0) is refused here;
    /// text the lexicon lacks still gives audio.
    #[test]
    fn the_vits_test_pack_reads_and_refuses_what_would_end_the_process() {
        let pack =
            Pack::open(&testsupport::root().join("testdata/tts-models/zh-tiny-vits-test")).unwrap();
        pack.check().unwrap();
        let tts = Tts::load(&pack, 1).unwrap();
        assert_eq!(tts.sample_rate(), 16000);
        let text = "你好，欢迎使用。";
        let base = tts.generate(text, 0, 1.0).unwrap();
        assert!(base.len() > 16000 / 2 && base.iter().all(|s| s.is_finite()));
        for (speed, want) in [(2.0f32, 0.5f64), (0.5, 2.0)] {
            let n = tts.generate(text, 0, speed).unwrap().len() as f64 / base.len() as f64;
            assert!((n - want).abs() / want < 0.1, "speed {speed}: {n}");
        }
        assert_ne!(tts.generate(text, 1, 1.0).unwrap(), base);
        for (sid, speed, t) in [
            (2, 1.0, text),
            (-1, 1.0, text),
            (0, 0.0, text),
            (0, -1.0, text),
            (0, f32::NAN, text),
            (0, 1.0, "你\0好"),
        ] {
            assert!(tts.generate(t, sid, speed).is_err(), "{sid} {speed} {t:?}");
        }
        for t in ["", "hello 😀", "。。。"] {
            assert!(tts.generate(t, 0, 1.0).is_ok(), "{t:?}");
        }
    }

    /// The committed punctuation test pack through sherpa-onnx on its 300
    /// held-out sentences (punctuation removed, then put back by the
    /// model): precision and recall of each mark printed and bounded; an
    /// answer that lost text (sherpa-onnx drops the tokens after a sentence
    /// end inside the last window) is refused, never returned.
    #[test]
    fn the_punctuation_test_pack_punctuates_held_out_sentences() {
        let dir = testsupport::root().join("testdata/punct-models/zh-tiny-punct");
        let pack = Pack::open(&dir).unwrap();
        pack.check().unwrap();
        let p = Punctuation::load(&pack).unwrap();
        let marks = ['，', '。', '？'];
        // (true positives, predicted, expected) per mark
        let mut counts = [(0usize, 0usize, 0usize); 3];
        let mut refused = 0;
        let tsv = std::fs::read_to_string(dir.join("heldout.tsv")).unwrap();
        let strip = |s: &str| -> String { s.chars().filter(|c| !marks.contains(c)).collect() };
        // the mark after each character (None: no mark)
        let after = |s: &str| -> Vec<Option<char>> {
            let mut out: Vec<Option<char>> = Vec::new();
            for c in s.chars() {
                if marks.contains(&c) {
                    if let Some(last) = out.last_mut() {
                        *last = Some(c);
                    }
                } else {
                    out.push(None);
                }
            }
            out
        };
        for line in tsv.lines().skip(1) {
            let want = line.split('\t').nth(1).unwrap();
            let Some(got) = p.punctuate(&strip(want)) else {
                refused += 1;
                continue;
            };
            assert_eq!(strip(&got), strip(want));
            for (w, g) in after(want).into_iter().zip(after(&got)) {
                for (k, m) in marks.iter().enumerate() {
                    let (w, g) = (w == Some(*m), g == Some(*m));
                    counts[k].0 += usize::from(w && g);
                    counts[k].1 += usize::from(g);
                    counts[k].2 += usize::from(w);
                }
            }
        }
        for (k, m) in marks.iter().enumerate() {
            let (tp, predicted, expected) = counts[k];
            let precision = tp as f64 / predicted.max(1) as f64;
            let recall = tp as f64 / expected.max(1) as f64;
            println!("{m}: precision {precision:.3}, recall {recall:.3} ({expected} expected)");
            assert!(
                precision >= 0.5 && recall >= 0.5,
                "{m}: {precision} {recall}"
            );
        }
        println!("answers refused for lost text: {refused} of 300");
        assert!(refused <= 5, "{refused}");
        // the input that loses 8 characters in sherpa-onnx 2.0.1
        assert_eq!(p.punctuate("经理哪天能换卡体育馆几点开门"), None);
    }

    #[test]
    fn non_numbers_sherpa_onnx_prints_become_null_outside_strings() {
        let json = r#"{"text": "nan inf \"-inf\"", "tokens":["nan", "-inf"], "ys_log_probs": [-0.5, -inf, nan, -nan, 1e-3, -INF], "timestamps": [0.00, 0.40]}"#;
        let fixed = native::numbers_or_null(json);
        assert!(fixed.contains(r#""text": "nan inf \"-inf\"""#), "{fixed}");
        assert!(fixed.contains(r#"["nan", "-inf"]"#), "{fixed}");
        let d: native::Decoded = serde_json::from_str(&fixed).expect("JSON");
        assert_eq!(d.tokens, ["nan", "-inf"]);
        assert_eq!(
            d.ys_log_probs,
            [
                Some(-0.5),
                Some(f32::MIN),
                None,
                None,
                Some(1e-3),
                Some(f32::MIN)
            ]
        );
        // a token count the probabilities do not match: no probabilities
        let r = raw(Some(d), true);
        assert_eq!(r.log_probs, None);
        // a decoder without them (CTC): none, whatever it wrote
        let d: native::Decoded =
            serde_json::from_str(r#"{"tokens": ["好"], "ys_log_probs": [-0.1]}"#).expect("JSON");
        assert_eq!(raw(Some(d), false).log_probs, None);
        // nothing heard: an empty list when the decoder reports them
        assert_eq!(raw(None, true).log_probs, Some(vec![]));
        assert_eq!(raw(None, false).log_probs, None);
    }

    /// A biased stream's result keeps each token's probability from the
    /// decode the token came from.
    #[test]
    fn verified_results_keep_each_tokens_own_probability() {
        let words = Arc::new(vec!["九五".to_string()]);
        let vocabulary = Arc::new(Vocabulary::compile(&sis_core::HotWords {
            vocabulary_id: "v".into(),
            version: 1,
            words,
        }));
        let twin = Twin::of((), &vocabulary).expect("a twin");
        let decoded = |tokens: &[&str], probs: Option<&[f32]>| RawResult {
            tokens: tokens.iter().map(|t| t.to_string()).collect(),
            timestamps: (0..tokens.len()).map(|i| i as f32 * 0.2).collect(),
            log_probs: probs.map(<[f32]>::to_vec),
            biased: false,
        };
        let biased = decoded(&["九", "五", "号"], Some(&[-0.1, -0.2, -0.3]));
        let plain = decoded(&["酒", "舞", "号"], Some(&[-1.0, -2.0, -3.0]));
        let out = verified(biased, Some((plain, &twin)));
        assert_eq!(out.tokens, ["九", "五", "号"]);
        // the hot word's tokens from the biased decode, the rest from the plain one
        assert_eq!(out.log_probs, Some(vec![-0.1, -0.2, -3.0]));
        // either side without probabilities: none
        let biased = decoded(&["九", "五"], None);
        let plain = decoded(&["酒", "舞"], Some(&[-1.0, -2.0]));
        assert_eq!(verified(biased, Some((plain, &twin))).log_probs, None);
    }

    /// `noise_db` of white noise relative to the clip's power (0: as loud
    /// as the speech), from a fixed seed.
    fn with_noise(audio: &[f32], noise_db: f32, seed: u64) -> Vec<f32> {
        let power = audio.iter().map(|s| s * s).sum::<f32>() / audio.len().max(1) as f32;
        let amplitude = (power * 10f32.powf(noise_db / 10.0) * 3.0).sqrt();
        let mut x = seed | 1;
        audio
            .iter()
            .map(|s| {
                // xorshift64: uniform in [-1, 1], variance 1/3 (hence the 3)
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let u = (x >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0;
                (s + amplitude * u).clamp(-1.0, 1.0)
            })
            .collect()
    }

    /// `score` is computed from the transducers' token probabilities:
    /// clean held-out speech scores higher than the same speech under
    /// heavy noise, offline and streaming, at 16 kHz and 8 kHz; the CTC
    /// packs report no probabilities, so no score.
    #[test]
    fn transducer_scores_fall_under_noise_and_ctc_packs_give_none() -> Result<(), EngineError> {
        let clips: Vec<_> = crate::testsupport::sentences()
            .into_iter()
            .take(12)
            .collect();
        for name in [
            "zh-tiny-transducer-offline",
            "zh-tiny-transducer-streaming",
            "zh-tiny-ctc-offline",
            "zh-tiny-ctc-streaming",
        ] {
            let dir = crate::testsupport::root()
                .join("testdata/models")
                .join(name);
            let pack = Pack::open(&dir).map_err(|e| EngineError::Load(e.to_string()))?;
            pack.check().map_err(|e| EngineError::Load(e.to_string()))?;
            let r = Recognizer::load(&pack, 1)?;
            let context = DecodingContext::default();
            for rate in [16000u32, 8000] {
                let clean: Vec<Vec<f32>> = clips
                    .iter()
                    .map(|c| crate::testsupport::samples(c, rate))
                    .collect();
                let noisy: Vec<Vec<f32>> = clean
                    .iter()
                    .enumerate()
                    .map(|(i, a)| with_noise(a, 0.0, i as u64 + 7))
                    .collect();
                let score = |audio: &[Vec<f32>]| -> Vec<Option<f32>> {
                    let segments: Vec<_> = audio.iter().map(|a| (&context, &a[..])).collect();
                    r.decode_batch(rate, &segments)
                        .into_iter()
                        .map(|raw| {
                            if let Some(p) = &raw.log_probs {
                                assert_eq!(p.len(), raw.tokens.len(), "{name}");
                                assert!(p.iter().all(|p| p.is_finite() && *p <= 0.0), "{p:?}");
                            }
                            crate::postprocess::confidence(&[(0.0, raw)])
                        })
                        .collect()
                };
                let (a, b) = (score(&clean), score(&noisy));
                println!("{name} {rate} Hz: clean {a:.3?}\n  noisy {b:.3?}");
                if name.contains("ctc") {
                    assert!(a.iter().chain(&b).all(Option::is_none), "{name}");
                    continue;
                }
                let a: Vec<f32> = a.into_iter().map(|s| s.expect("a score")).collect();
                let b: Vec<f32> = b.into_iter().map(|s| s.expect("a score")).collect();
                assert!(a.iter().chain(&b).all(|s| (0.0..=1.0).contains(s)));
                // every score is computed: no two clips alike
                let mut distinct = a.clone();
                distinct.sort_by(f32::total_cmp);
                distinct.dedup();
                assert!(distinct.len() >= a.len() - 1, "{name} {rate}: {a:?}");
                let higher = a.iter().zip(&b).filter(|(a, b)| a > b).count();
                let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
                println!(
                    "{name} {rate} Hz: clean mean {:.3}, noisy mean {:.3}, clean higher {higher}/{}",
                    mean(&a),
                    mean(&b),
                    a.len()
                );
                assert!(
                    higher * 10 >= a.len() * 9,
                    "{name} {rate}: {higher}/{}",
                    a.len()
                );
                assert!(mean(&a) > mean(&b) + 0.1, "{name} {rate}");
            }
        }
        Ok(())
    }

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
