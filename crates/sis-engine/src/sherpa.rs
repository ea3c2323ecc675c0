//! The only module that calls sherpa-onnx. Every function here assumes its
//! pack passed [`Pack::check`](crate::pack::Pack::check): sherpa-onnx ends the
//! process on configurations it rejects, so nothing unchecked reaches it.

use sherpa_onnx::{
    OfflinePunctuation, OfflinePunctuationConfig, OfflinePunctuationModelConfig, OfflineRecognizer,
    OfflineRecognizerConfig, OnlineRecognizer, OnlineRecognizerConfig, SileroVadModelConfig,
    VadModelConfig, VoiceActivityDetector,
};

use crate::pack::{Pack, PackKind};
use crate::EngineError;

fn path(pack: &Pack, role: &str) -> Result<Option<String>, EngineError> {
    pack.file(role)
        .map(|p| Some(p.to_string_lossy().into_owned()))
        .ok_or_else(|| EngineError::Load(format!("{}: no {role} file", pack.name())))
}

pub enum Recognizer {
    Offline(OfflineRecognizer),
    Streaming(OnlineRecognizer),
}

pub fn load_recognizer(pack: &Pack, threads: i32) -> Result<Recognizer, EngineError> {
    let m = &pack.manifest;
    let fail = || EngineError::Load(format!("sherpa-onnx could not load pack {}", pack.name()));
    match m.kind {
        PackKind::OfflineAsr => {
            let mut c = OfflineRecognizerConfig::default();
            let mc = &mut c.model_config;
            mc.tokens = path(pack, "tokens")?;
            mc.num_threads = threads;
            mc.provider = Some("cpu".into());
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
                "transducer" => {
                    mc.transducer.encoder = path(pack, "encoder")?;
                    mc.transducer.decoder = path(pack, "decoder")?;
                    mc.transducer.joiner = path(pack, "joiner")?;
                }
                t => {
                    return Err(EngineError::Load(format!(
                        "unsupported offline model_type {t}"
                    )))
                }
            }
            c.decoding_method = Some("greedy_search".into());
            OfflineRecognizer::create(&c)
                .map(Recognizer::Offline)
                .ok_or_else(fail)
        }
        PackKind::StreamingAsr => {
            let mut c = OnlineRecognizerConfig::default();
            let mc = &mut c.model_config;
            mc.tokens = path(pack, "tokens")?;
            mc.num_threads = threads;
            mc.provider = Some("cpu".into());
            match m.model_type.as_str() {
                "nemo_ctc" => mc.nemo_ctc.model = path(pack, "model")?,
                "zipformer2_ctc" => mc.zipformer2_ctc.model = path(pack, "model")?,
                "paraformer" => {
                    mc.paraformer.encoder = path(pack, "encoder")?;
                    mc.paraformer.decoder = path(pack, "decoder")?;
                }
                "transducer" => {
                    mc.transducer.encoder = path(pack, "encoder")?;
                    mc.transducer.decoder = path(pack, "decoder")?;
                    mc.transducer.joiner = path(pack, "joiner")?;
                }
                t => {
                    return Err(EngineError::Load(format!(
                        "unsupported streaming model_type {t}"
                    )))
                }
            }
            c.decoding_method = Some("greedy_search".into());
            OnlineRecognizer::create(&c)
                .map(Recognizer::Streaming)
                .ok_or_else(fail)
        }
        _ => Err(EngineError::Load(format!(
            "{} is not an ASR pack",
            pack.name()
        ))),
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

/// A VAD for audio at [`VAD_RATE`]; nothing else can be built.
pub fn load_vad(
    pack: &Pack,
    s: VadSettings,
    buffer_s: f32,
) -> Result<VoiceActivityDetector, EngineError> {
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
        provider: Some("cpu".into()),
        debug: false,
        ..Default::default()
    };
    VoiceActivityDetector::create(&config, buffer_s).ok_or_else(|| {
        EngineError::Load(format!(
            "sherpa-onnx could not load VAD pack {}",
            pack.name()
        ))
    })
}

/// Speech regions of 16 kHz audio as sample ranges.
pub fn vad_segments(vad: &VoiceActivityDetector, samples: &[f32]) -> Vec<(usize, usize)> {
    vad.reset();
    let mut out = Vec::new();
    let drain = |out: &mut Vec<(usize, usize)>| {
        while let Some(seg) = vad.front() {
            let start = seg.start().max(0) as usize;
            out.push((start, start + seg.n().max(0) as usize));
            vad.pop();
        }
    };
    // Feed one model window at a time: sherpa-onnx 2.0.1 loses the start of
    // speech when a single call carries many windows (measured: a 1 s chunk
    // dropped the first 1.0 s of a 2.6 s utterance; 512-sample calls did not).
    for chunk in samples.chunks(VAD_WINDOW) {
        vad.accept_waveform(chunk);
        drain(&mut out);
    }
    vad.flush();
    drain(&mut out);
    out
}

pub fn load_punctuation(pack: &Pack) -> Result<OfflinePunctuation, EngineError> {
    let config = OfflinePunctuationConfig {
        model: OfflinePunctuationModelConfig {
            ct_transformer: path(pack, "model")?,
            num_threads: 1,
            debug: false,
            provider: Some("cpu".into()),
        },
    };
    OfflinePunctuation::create(&config).ok_or_else(|| {
        EngineError::Load(format!(
            "sherpa-onnx could not load punctuation pack {}",
            pack.name()
        ))
    })
}

/// The current result of a streaming recognizer's stream.
pub fn online_result(rec: &OnlineRecognizer, stream: &sherpa_onnx::OnlineStream) -> RawResult {
    raw(rec.get_result(stream).map(|r| (r.tokens, r.timestamps)))
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

/// Decodes several audio segments (at `rate`, which sherpa-onnx converts to
/// the model's rate) in one batch. Any length is safe, zero included.
pub fn decode_batch(rec: &Recognizer, rate: u32, segments: &[&[f32]]) -> Vec<RawResult> {
    match rec {
        Recognizer::Offline(r) => {
            let streams: Vec<_> = segments
                .iter()
                .map(|s| {
                    let st = r.create_stream();
                    st.accept_waveform(rate as i32, &padded(s, rate));
                    st
                })
                .collect();
            let refs: Vec<_> = streams.iter().collect();
            if !refs.is_empty() {
                r.decode_multiple_streams(&refs);
            }
            streams
                .iter()
                .map(|s| raw(s.get_result().map(|r| (r.tokens, r.timestamps))))
                .collect()
        }
        Recognizer::Streaming(r) => {
            // Whole segments through the streaming model: the recognizer only
            // runs a window when a full one is buffered, so append silence.
            let tail = vec![0f32; (rate as usize * 8) / 10];
            let streams: Vec<_> = segments
                .iter()
                .map(|s| {
                    let st = r.create_stream();
                    st.accept_waveform(rate as i32, s);
                    st.accept_waveform(rate as i32, &tail);
                    st.input_finished();
                    st
                })
                .collect();
            loop {
                let ready: Vec<_> = streams.iter().filter(|s| r.is_ready(s)).collect();
                if ready.is_empty() {
                    break;
                }
                r.decode_multiple_streams(&ready);
            }
            streams
                .iter()
                .map(|s| raw(r.get_result(s).map(|res| (res.tokens, res.timestamps))))
                .collect()
        }
    }
}
