//! Decoding choices: per pack, what sherpa-onnx can do with hot words and so
//! how its recognizer searches ([`hot_word_support`], fixed at load: the
//! search method is per recognizer in sherpa-onnx), and per request, the
//! [`DecodingContext`]: made once from a request's options
//! ([`DecodingContext::for_request`]), carried by the short-audio job, the
//! real-time session or the file transcription, applied where its
//! recognition stream is made (`sherpa::Recognizer`'s `create_stream`, the
//! only place) and again by the post-processor (`postprocess.rs`). A new
//! option touches this file, that function and the post-processor.
//!
//! The decisions here are what keeps hot words from ending the process
//! (`docs/NATIVE.md`, hot words): sherpa-onnx exits on per-stream hot words
//! for a recognizer that cannot bias, and on `modified_beam_search` for one
//! that is not a transducer; it ignores a stream's hot words under
//! `greedy_search`. So a pack gets `modified_beam_search` exactly when its
//! sherpa-onnx implementation biases per stream, and only those packs'
//! streams are made with hot words.

use std::path::Path;
use std::sync::Arc;

use sis_core::RecognitionOptions;

use crate::hotwords::{self, Vocabulary};
use crate::onnx_meta::OnnxInfo;
use crate::pack::PackKind;
use crate::EngineError;

/// How tokens are searched for (per recognizer).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DecodingMethod {
    /// The best token at each step (every pack that cannot be biased).
    #[default]
    Greedy,
    /// A beam of hypotheses, which per-stream hot words bias (transducers
    /// only: sherpa-onnx ends the process when any other recognizer is
    /// configured with it).
    ModifiedBeamSearch,
}

impl DecodingMethod {
    /// sherpa-onnx's name for it.
    pub fn sherpa_name(self) -> &'static str {
        match self {
            DecodingMethod::Greedy => "greedy_search",
            DecodingMethod::ModifiedBeamSearch => "modified_beam_search",
        }
    }
}

/// Hypotheses kept by `modified_beam_search` (sherpa-onnx's default; the
/// C API would also turn 0 into 4).
pub const MAX_ACTIVE_PATHS: i32 = 4;

/// What a pack's recognizer does with a request's hot words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HotWordSupport {
    /// sherpa-onnx biases the search: the recognizer is loaded with
    /// [`DecodingMethod::ModifiedBeamSearch`] and streams of requests with
    /// hot words get a per-stream hot-word list.
    Biasing,
    /// The recognizer cannot be biased: it is loaded with
    /// [`DecodingMethod::Greedy`], its streams never get hot words, and the
    /// vocabulary is applied to the text after decoding (`hotwords.rs`).
    TextOnly,
}

impl HotWordSupport {
    /// The search method the recognizer is loaded with.
    pub fn method(self) -> DecodingMethod {
        match self {
            HotWordSupport::Biasing => DecodingMethod::ModifiedBeamSearch,
            HotWordSupport::TextOnly => DecodingMethod::Greedy,
        }
    }
}

/// Offline transducer encoders (`model_type` metadata) whose sherpa-onnx
/// implementation takes per-stream hot words under `modified_beam_search`:
/// icefall's (`OfflineRecognizerTransducerImpl`) and NeMo's RNN-T/TDT
/// (`OfflineRecognizerTransducerNeMoImpl`), chosen in
/// `offline-recognizer-impl.cc` by this key. Any other model type reaches an
/// implementation without biasing (or none, and the probe refuses the pack).
pub const OFFLINE_BIASING_ENCODERS: &[&str] = &[
    "conformer",
    "zipformer",
    "zipformer2",
    "EncDecHybridRNNTCTCBPEModel",
    "EncDecRNNTBPEModel",
];

/// The decoder metadata that selects sherpa-onnx's streaming Parakeet
/// implementation (greedy only, no biasing).
const PARAKEET_UNIFIED: (&str, &str) = ("streaming_model_type", "nemo_parakeet_unified_streaming");

/// What sherpa-onnx 2.0.1 can do with hot words for a pack of `kind` and
/// `model_type`, from the ONNX metadata that selects its implementation
/// (`encoder`, `decoder`: the transducer's files, when it is one):
///
/// - offline transducer: biasing when the encoder's `model_type` is one of
///   [`OFFLINE_BIASING_ENCODERS`];
/// - streaming transducer: biasing when the decoder has one output and is
///   not a unified Parakeet (`online-recognizer-impl.cc`: a decoder with more
///   outputs selects the NeMo implementation, which has neither biasing nor
///   `modified_beam_search` and exits on both);
/// - everything else (CTC of every kind, Paraformer, SenseVoice): text only.
pub fn hot_word_support(
    kind: PackKind,
    model_type: &str,
    encoder: Option<&OnnxInfo>,
    decoder: Option<&OnnxInfo>,
) -> HotWordSupport {
    if model_type != "transducer" {
        return HotWordSupport::TextOnly;
    }
    let biasing = match kind {
        PackKind::OfflineAsr => encoder
            .and_then(|e| e.metadata.get("model_type"))
            .is_some_and(|t| OFFLINE_BIASING_ENCODERS.contains(&t.as_str())),
        PackKind::StreamingAsr => decoder.is_some_and(|d| {
            d.outputs.len() == 1
                && d.metadata.get(PARAKEET_UNIFIED.0).map(String::as_str)
                    != Some(PARAKEET_UNIFIED.1)
        }),
        PackKind::Vad | PackKind::Punctuation | PackKind::Tts => false,
    };
    if biasing {
        HotWordSupport::Biasing
    } else {
        HotWordSupport::TextOnly
    }
}

/// The value of a homophone-replacer `rule_fsts` setting for `files`.
/// sherpa-onnx splits it at commas and ends the process when it names more
/// than one file (`homophone-replacer.cc`, `Validate`), so more than one
/// file, or a path with a comma, is refused here. The project passes none
/// (its hot words are applied by `hotwords.rs`); this is the one way such a
/// list is written.
pub fn homophone_rule_fsts(files: &[&Path]) -> Result<Option<String>, EngineError> {
    match files {
        [] => Ok(None),
        [one] => {
            let s = one.to_string_lossy();
            if s.is_empty() || s.contains(',') {
                return Err(EngineError::Load(format!(
                    "homophone rule FST path {s:?} is empty or has a comma"
                )));
            }
            Ok(Some(s.into_owned()))
        }
        _ => Err(EngineError::Load(format!(
            "{} homophone rule FSTs given; sherpa-onnx takes one",
            files.len()
        ))),
    }
}

/// What one request asks of the decoder.
#[derive(Clone, Debug, Default)]
pub struct DecodingContext {
    /// The request's vocabulary, compiled (shared through the process's
    /// cache by `(vocabulary_id, version)`).
    pub hot_words: Option<Arc<Vocabulary>>,
}

impl DecodingContext {
    /// The context of a request with `options`: its hot words compiled, or
    /// taken from the cache.
    pub fn for_request(options: &RecognitionOptions) -> DecodingContext {
        DecodingContext {
            hot_words: options.hot_words.as_ref().map(hotwords::lookup),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(meta: &[(&str, &str)], outputs: usize) -> OnnxInfo {
        OnnxInfo {
            metadata: meta
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            inputs: vec!["x".into()],
            outputs: (0..outputs).map(|i| format!("y{i}")).collect(),
            input_types: vec![Default::default()],
            output_types: vec![Default::default(); outputs],
        }
    }

    /// Every model type a pack can have that is not a transducer: sherpa-onnx
    /// ends the process on per-stream hot words or `modified_beam_search`
    /// for all of them, so none may get either, whatever its metadata says.
    #[test]
    fn no_pack_but_a_transducer_gets_hot_words_or_beam_search() {
        let types = [
            "nemo_ctc",
            "zipformer_ctc",
            "wenet_ctc",
            "paraformer",
            "sense_voice",
            "zipformer2_ctc",
            "silero_vad",
            "ct_transformer",
        ];
        let kinds = [
            PackKind::OfflineAsr,
            PackKind::StreamingAsr,
            PackKind::Vad,
            PackKind::Punctuation,
        ];
        // even metadata that would make a transducer biasable changes nothing
        let enc = info(&[("model_type", "zipformer2")], 1);
        let dec = info(&[], 1);
        for kind in kinds {
            for t in types {
                let s = hot_word_support(kind, t, Some(&enc), Some(&dec));
                assert_eq!(s, HotWordSupport::TextOnly, "{kind:?} {t}");
                assert_eq!(s.method(), DecodingMethod::Greedy);
            }
        }
    }

    #[test]
    fn streaming_ctc_is_greedy() {
        for t in ["nemo_ctc", "zipformer2_ctc", "paraformer"] {
            assert_eq!(
                hot_word_support(PackKind::StreamingAsr, t, None, None).method(),
                DecodingMethod::Greedy
            );
        }
        assert_eq!(DecodingMethod::default().sherpa_name(), "greedy_search");
    }

    #[test]
    fn offline_transducers_are_biased_by_encoder_type() {
        let dec = info(&[("vocab_size", "500"), ("context_size", "2")], 1);
        for t in OFFLINE_BIASING_ENCODERS {
            let enc = info(&[("model_type", t)], 1);
            let s = hot_word_support(PackKind::OfflineAsr, "transducer", Some(&enc), Some(&dec));
            assert_eq!(s, HotWordSupport::Biasing, "{t}");
            assert_eq!(s.method().sherpa_name(), "modified_beam_search");
        }
        // an encoder that selects a CTC implementation, an unknown one, none
        for enc in [
            Some(info(&[("model_type", "EncDecCTCModelBPE")], 1)),
            Some(info(&[("model_type", "whisper")], 1)),
            Some(info(&[], 1)),
            None,
        ] {
            assert_eq!(
                hot_word_support(PackKind::OfflineAsr, "transducer", enc.as_ref(), Some(&dec)),
                HotWordSupport::TextOnly
            );
        }
    }

    /// A streaming NeMo transducer (decoder with more than one output) exits
    /// on `modified_beam_search` and on per-stream hot words, so it stays
    /// greedy and its streams get none: no hot-word stream is ever decoded
    /// with `greedy_search`, nor a greedy-only recognizer given beam search.
    #[test]
    fn streaming_transducers_are_biased_only_where_the_native_code_can() {
        let enc = info(&[("model_type", "zipformer2")], 1);
        let icefall = info(&[("vocab_size", "500"), ("context_size", "2")], 1);
        assert_eq!(
            hot_word_support(
                PackKind::StreamingAsr,
                "transducer",
                Some(&enc),
                Some(&icefall)
            ),
            HotWordSupport::Biasing
        );
        let nemo = info(&[("vocab_size", "1024")], 3);
        let parakeet = info(&[PARAKEET_UNIFIED], 1);
        for dec in [Some(&nemo), Some(&parakeet), None] {
            let s = hot_word_support(PackKind::StreamingAsr, "transducer", Some(&enc), dec);
            assert_eq!(s, HotWordSupport::TextOnly);
            assert_eq!(s.method(), DecodingMethod::Greedy);
        }
    }

    #[test]
    fn at_most_one_homophone_rule_fst_without_a_comma() {
        assert_eq!(homophone_rule_fsts(&[]).unwrap(), None);
        assert_eq!(
            homophone_rule_fsts(&[Path::new("/m/rule.fst")]).unwrap(),
            Some("/m/rule.fst".into())
        );
        assert!(homophone_rule_fsts(&[Path::new("/m/a.fst"), Path::new("/m/b.fst")]).is_err());
        assert!(homophone_rule_fsts(&[Path::new("/m/a.fst,/m/b.fst")]).is_err());
        assert!(homophone_rule_fsts(&[Path::new("")]).is_err());
    }

    #[test]
    fn a_request_without_a_vocabulary_has_no_hot_words() {
        let c = DecodingContext::for_request(&RecognitionOptions::default());
        assert!(c.hot_words.is_none());
        let options = RecognitionOptions {
            hot_words: Some(sis_core::HotWords {
                vocabulary_id: "decoding-test".into(),
                version: 3,
                words: Arc::new(vec!["张伟".into()]),
            }),
            ..Default::default()
        };
        let c = DecodingContext::for_request(&options);
        let v = c.hot_words.unwrap();
        assert_eq!((v.vocabulary_id.as_str(), v.version), ("decoding-test", 3));
        assert_eq!(v.word_count(), 1);
    }
}
