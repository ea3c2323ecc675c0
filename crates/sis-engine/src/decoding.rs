//! Per-request decoding choices. A request's [`DecodingContext`] is made
//! once, from its options ([`DecodingContext::for_request`]), carried by the
//! short-audio job, the real-time session or the file transcription, and
//! applied where its recognition stream is made (`sherpa::Recognizer`'s
//! `create_stream`, the only place): a new option (hot words next) touches
//! this file and that function.

use sis_core::RecognitionOptions;

/// How tokens are searched for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DecodingMethod {
    /// The best token at each step (every committed and catalog pack).
    #[default]
    Greedy,
}

impl DecodingMethod {
    /// sherpa-onnx's name for it.
    pub fn sherpa_name(self) -> &'static str {
        match self {
            DecodingMethod::Greedy => "greedy_search",
        }
    }
}

/// What one request asks of the decoder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecodingContext {
    pub method: DecodingMethod,
}

impl DecodingContext {
    /// The context of a request with `options`. Nothing in them changes
    /// decoding yet; `vocabulary_id` (hot words) will.
    pub fn for_request(_options: &RecognitionOptions) -> DecodingContext {
        DecodingContext::default()
    }
}
