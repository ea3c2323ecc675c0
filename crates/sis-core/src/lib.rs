//! Domain types of the speech service, shared by every crate.
//!
//! Architecture invariant: this crate knows nothing about JSON, HTTP or
//! sherpa-onnx. The wire format lives in `sis-protocol`; these are the values
//! the rest of the program reasons about once a request has been validated.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod hotwords;
pub mod time;
pub mod tts;

use std::fmt;

/// Audio encodings named by SIS `audio_format` strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AudioFormat {
    Pcm16k16bit,
    Pcm8k16bit,
    Ulaw16k8bit,
    Ulaw8k8bit,
    Alaw16k8bit,
    Alaw8k8bit,
    /// RIFF/WAVE, header decides (PCM 16-bit, A-law, mu-law; 8 or 16 kHz mono).
    Wav,
    /// AMR-NB, 8 kHz, RFC 4867 storage format (`#!AMR\n`).
    Amr,
    /// AMR-WB, 16 kHz, RFC 4867 storage format (`#!AMR-WB\n`).
    AmrWb,
    Mp3,
    /// AAC in ADTS or MP4/M4A.
    Aac,
    /// Container and codec detected from the bytes.
    Auto,
}

/// Raw sample encodings for headerless formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawEncoding {
    Pcm16Le,
    MuLaw,
    ALaw,
}

impl AudioFormat {
    pub const ALL: [AudioFormat; 12] = [
        AudioFormat::Pcm16k16bit,
        AudioFormat::Pcm8k16bit,
        AudioFormat::Ulaw16k8bit,
        AudioFormat::Ulaw8k8bit,
        AudioFormat::Alaw16k8bit,
        AudioFormat::Alaw8k8bit,
        AudioFormat::Wav,
        AudioFormat::Amr,
        AudioFormat::AmrWb,
        AudioFormat::Mp3,
        AudioFormat::Aac,
        AudioFormat::Auto,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AudioFormat::Pcm16k16bit => "pcm16k16bit",
            AudioFormat::Pcm8k16bit => "pcm8k16bit",
            AudioFormat::Ulaw16k8bit => "ulaw16k8bit",
            AudioFormat::Ulaw8k8bit => "ulaw8k8bit",
            AudioFormat::Alaw16k8bit => "alaw16k8bit",
            AudioFormat::Alaw8k8bit => "alaw8k8bit",
            AudioFormat::Wav => "wav",
            AudioFormat::Amr => "amr",
            AudioFormat::AmrWb => "amrwb",
            AudioFormat::Mp3 => "mp3",
            AudioFormat::Aac => "aac",
            AudioFormat::Auto => "auto",
        }
    }

    /// For headerless formats: the encoding and the sample rate the name declares.
    pub fn raw(self) -> Option<(RawEncoding, u32)> {
        match self {
            AudioFormat::Pcm16k16bit => Some((RawEncoding::Pcm16Le, 16000)),
            AudioFormat::Pcm8k16bit => Some((RawEncoding::Pcm16Le, 8000)),
            AudioFormat::Ulaw16k8bit => Some((RawEncoding::MuLaw, 16000)),
            AudioFormat::Ulaw8k8bit => Some((RawEncoding::MuLaw, 8000)),
            AudioFormat::Alaw16k8bit => Some((RawEncoding::ALaw, 16000)),
            AudioFormat::Alaw8k8bit => Some((RawEncoding::ALaw, 8000)),
            _ => None,
        }
    }
}

impl fmt::Display for AudioFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A SIS model `property`: `language_samplerate_domain`, e.g. `chinese_8k_common`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Property {
    name: String,
    language: String,
    sample_rate: u32,
    domain: String,
}

impl Property {
    /// Parses the shape of a property string. Whether a pack serves it is the
    /// engine's business.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.splitn(3, '_');
        let language = parts.next()?;
        let rate = parts.next()?;
        let domain = parts.next()?;
        let valid = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        if !valid(language) || !valid(domain) {
            return None;
        }
        let sample_rate = match rate {
            "8k" => 8000,
            "16k" => 16000,
            _ => return None,
        };
        Some(Property {
            name: s.to_string(),
            language: language.to_string(),
            sample_rate,
            domain: domain.to_string(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn language(&self) -> &str {
        &self.language
    }
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }
    pub fn domain(&self) -> &str {
        &self.domain
    }
}

impl fmt::Display for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// Post-processing a caller asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecognitionOptions {
    pub add_punc: bool,
    pub digit_norm: bool,
    pub need_word_info: bool,
    /// The `vocabulary_id` the request named (SIS §10), as given.
    pub vocabulary_id: Option<String>,
    /// That vocabulary, resolved from the store by the server (the request's
    /// project only) before the request reaches the engine.
    pub hot_words: Option<HotWords>,
}

/// A hot-word vocabulary as a request carries it to the engine: the table's
/// id, a version that changes whenever the table does (so compiled forms can
/// be cached by `(vocabulary_id, version)`), and its words as stored: each
/// one an entry that [`hotwords::parse_entry`] reads (a word, a weighted
/// word `词|5`, or a replacement `谐音=目标`; checked when stored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HotWords {
    pub vocabulary_id: String,
    pub version: i64,
    pub words: std::sync::Arc<Vec<String>>,
}

/// Mono audio as floats in [-1, 1].
#[derive(Clone, Debug, PartialEq)]
pub struct Pcm {
    pub samples: Vec<f32>,
    pub sample_rate: u32,
}

impl Pcm {
    pub fn duration_ms(&self) -> u64 {
        if self.sample_rate == 0 {
            return 0;
        }
        self.samples.len() as u64 * 1000 / self.sample_rate as u64
    }
}

/// One recognised unit with its time span, in ms from the start of the audio.
#[derive(Clone, Debug, PartialEq)]
pub struct WordTiming {
    pub word: String,
    pub start_ms: u32,
    pub end_ms: u32,
}

/// What the engine heard, after post-processing.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Transcript {
    pub text: String,
    /// Confidence in [0, 1] from the decoder's token probabilities; `None`
    /// when the pack's decoder reports none (then SIS responses leave
    /// `score` out).
    pub score: Option<f32>,
    pub words: Vec<WordTiming>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_format_round_trip() {
        for f in AudioFormat::ALL {
            assert_eq!(AudioFormat::parse(f.as_str()), Some(f));
        }
        assert_eq!(AudioFormat::parse("PCM16K16BIT"), None);
        assert_eq!(AudioFormat::parse("pcm16k8bit"), None);
    }

    #[test]
    fn property_shapes() {
        let p = Property::parse("chinese_8k_common").unwrap();
        assert_eq!(
            (p.language(), p.sample_rate(), p.domain()),
            ("chinese", 8000, "common")
        );
        let p = Property::parse("chinese_16k_general").unwrap();
        assert_eq!(p.sample_rate(), 16000);
        assert!(Property::parse("chinese_44k_common").is_none());
        assert!(Property::parse("chinese").is_none());
        assert!(Property::parse("chinese_16k_").is_none());
        assert!(Property::parse("Chinese_16k_common").is_none());
    }
}
