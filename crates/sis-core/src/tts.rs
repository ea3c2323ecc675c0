//! Speech synthesis requests, as the rest of the program sees them once
//! `sis-protocol` has validated one (SIS-API.md §9).

use std::fmt;

/// The file a synthesis answers with (SIS `config.audio_format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TtsFormat {
    /// RIFF/WAVE, 16-bit PCM, mono, with its header.
    Wav,
    /// MPEG audio layer III, mono, constant bit rate.
    Mp3,
    /// Headerless 16-bit little-endian PCM, mono.
    Pcm,
}

impl TtsFormat {
    pub const ALL: [TtsFormat; 3] = [TtsFormat::Wav, TtsFormat::Mp3, TtsFormat::Pcm];

    pub fn parse(s: &str) -> Option<TtsFormat> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TtsFormat::Wav => "wav",
            TtsFormat::Mp3 => "mp3",
            TtsFormat::Pcm => "pcm",
        }
    }
}

impl fmt::Display for TtsFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The sample rates a synthesis may be asked for (SIS `config.sample_rate`).
pub const TTS_RATES: [u32; 2] = [8000, 16000];

/// One piece of what is to be read: text, or a pause (SSML `<break>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScriptPiece {
    /// Plain text, read as written (numbers and symbols are the engine's
    /// business).
    Text(String),
    /// Silence of this many milliseconds.
    Pause { ms: u32 },
}

/// A validated synthesis request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SynthesisRequest {
    /// What to read, in order (plain text is one piece).
    pub script: Vec<ScriptPiece>,
    /// The `property` (voice) as given; whether it is offered is the
    /// engine's business.
    pub voice: String,
    pub format: TtsFormat,
    /// 8000 or 16000.
    pub sample_rate: u32,
    /// [-500, 500]; 0 is the voice's own pace.
    pub speed: i32,
    /// [-500, 500]; 0 is the voice's own pitch.
    pub pitch: i32,
    /// [0, 100]; 50 leaves the level as the voice makes it.
    pub volume: u8,
}

impl SynthesisRequest {
    /// The text of every piece, for counting and logs.
    pub fn text_chars(&self) -> usize {
        self.script
            .iter()
            .map(|p| match p {
                ScriptPiece::Text(t) => t.chars().count(),
                ScriptPiece::Pause { .. } => 0,
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_round_trip() {
        for f in TtsFormat::ALL {
            assert_eq!(TtsFormat::parse(f.as_str()), Some(f));
        }
        assert_eq!(TtsFormat::parse("ogg"), None);
        assert_eq!(TtsFormat::parse("WAV"), None);
    }
}
