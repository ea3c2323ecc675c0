//! Container recognition from the first bytes, never from a name: the one
//! detection behind `audio_format=auto` (short-audio), recorded-file jobs and
//! the check that a declared `audio_format` matches the content.

use sis_core::AudioFormat;

use crate::input::{read_at, Input};
use crate::AudioError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Container {
    Wav,
    AmrNb,
    AmrWb,
    Flac,
    Ogg,
    Mp4,
    Mp3,
    Adts,
}

impl Container {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Container::Wav => "wav",
            Container::AmrNb => "amr",
            Container::AmrWb => "amr-wb",
            Container::Flac => "flac",
            Container::Ogg => "ogg",
            Container::Mp4 => "mp4",
            Container::Mp3 => "mp3",
            Container::Adts => "aac",
        }
    }

    /// The SIS `audio_format` that names this container, if there is one
    /// (FLAC and Ogg have none; they are read as `auto`).
    pub(crate) fn audio_format(self) -> Option<AudioFormat> {
        match self {
            Container::Wav => Some(AudioFormat::Wav),
            Container::AmrNb => Some(AudioFormat::Amr),
            Container::AmrWb => Some(AudioFormat::AmrWb),
            Container::Mp3 => Some(AudioFormat::Mp3),
            Container::Adts | Container::Mp4 => Some(AudioFormat::Aac),
            Container::Flac | Container::Ogg => None,
        }
    }
}

/// What a declared container `audio_format` promises, for the error when the
/// content is something else; `None` for `auto` and the raw formats.
pub(crate) fn promise(declared: AudioFormat) -> Option<&'static str> {
    match declared {
        AudioFormat::Wav => Some("a RIFF/WAVE header"),
        AudioFormat::Amr => Some("the AMR-NB '#!AMR' header"),
        AudioFormat::AmrWb => Some("the AMR-WB '#!AMR-WB' header"),
        AudioFormat::Mp3 => Some("MP3 (MPEG audio layer III) frames"),
        AudioFormat::Aac => Some("AAC in ADTS or in MP4/M4A"),
        _ => None,
    }
}

/// The GUID that starts an ASF (WMA/WMV) file.
const ASF_GUID: [u8; 16] = [
    0x30, 0x26, 0xB2, 0x75, 0x8E, 0x66, 0xCF, 0x11, 0xA6, 0xD9, 0x00, 0xAA, 0x00, 0x62, 0xCE, 0x6C,
];

/// At most this many ID3v2 tags in a row are skipped.
const MAX_ID3_TAGS: usize = 4;

/// The container of the input and the offset where it starts (after any ID3v2 tags).
pub(crate) fn sniff(input: &mut dyn Input, len: u64) -> Result<(Container, u64), AudioError> {
    let mut start = 0u64;
    let mut tags = 0;
    loop {
        let mut head = [0u8; 16];
        let n = read_at(input, start, &mut head)?;
        let head = &head[..n];
        if let Some(tag_len) = id3_len(head) {
            tags += 1;
            start += tag_len;
            if start >= len {
                return Err(AudioError::Corrupt(
                    "an ID3 tag and no audio after it".into(),
                ));
            }
            if tags > MAX_ID3_TAGS {
                return Err(AudioError::Corrupt("too many ID3 tags".into()));
            }
            continue;
        }
        if n == 0 {
            return Err(AudioError::Empty);
        }
        return match classify(head) {
            Ok(c) => Ok((c, start)),
            // An ID3 tag announces MP3; the frames may follow some padding.
            Err(_) if tags > 0 => Ok((Container::Mp3, start)),
            Err(e) => Err(e),
        };
    }
}

/// Total length of the ID3v2 tag that starts `head`, if one does.
fn id3_len(head: &[u8]) -> Option<u64> {
    if head.len() < 10 || &head[0..3] != b"ID3" || head[3] == 0xFF || head[4] == 0xFF {
        return None;
    }
    // The size is "syncsafe": four 7-bit bytes.
    if head[6..10].iter().any(|b| b & 0x80 != 0) {
        return None;
    }
    let size = head[6..10]
        .iter()
        .fold(0u64, |acc, &b| (acc << 7) | b as u64);
    let footer = if head[5] & 0x10 != 0 { 10 } else { 0 };
    Some(10 + size + footer)
}

fn classify(h: &[u8]) -> Result<Container, AudioError> {
    let at = |range: std::ops::Range<usize>| h.get(range);
    if at(0..4) == Some(b"RIFF") && at(8..12) == Some(b"WAVE") {
        return Ok(Container::Wav);
    }
    if h.starts_with(b"#!AMR-WB\n") {
        return Ok(Container::AmrWb);
    }
    if h.starts_with(b"#!AMR\n") {
        return Ok(Container::AmrNb);
    }
    if h.starts_with(b"fLaC") {
        return Ok(Container::Flac);
    }
    if h.starts_with(b"OggS") {
        return Ok(Container::Ogg);
    }
    if at(4..8) == Some(b"ftyp") {
        return Ok(Container::Mp4);
    }
    if h.len() >= 3 && h[0] == 0xFF {
        // ADTS: 12-bit sync, layer 00, a valid sampling-frequency index.
        if h[1] & 0xF6 == 0xF0 && (h[2] >> 2) & 0x0F < 13 {
            return Ok(Container::Adts);
        }
        // MPEG audio: 11-bit sync, a version, layer III, a valid bit rate and sample rate.
        let version = (h[1] >> 3) & 0x03;
        let layer = (h[1] >> 1) & 0x03;
        let bitrate = h[2] >> 4;
        let rate = (h[2] >> 2) & 0x03;
        if h[1] & 0xE0 == 0xE0 && version != 1 && layer == 1 && bitrate != 15 && rate != 3 {
            return Ok(Container::Mp3);
        }
        if h[1] & 0xE0 == 0xE0 && version != 1 && (layer == 2 || layer == 3) {
            return Err(AudioError::Unsupported(
                "MPEG audio layer I/II (only layer III, MP3, is decoded)".into(),
            ));
        }
    }
    if h.starts_with(&ASF_GUID) {
        return Err(AudioError::Unsupported(
            "WMA/ASF: no WMA decoder is available".into(),
        ));
    }
    let unsupported = |what: &str| Err(AudioError::Unsupported(what.into()));
    if h.starts_with(b"RF64") || h.starts_with(b"BW64") {
        return unsupported("RF64 WAV (files over 4 GB)");
    }
    if h.starts_with(b"RIFF") {
        return unsupported("a RIFF file that is not WAVE");
    }
    if h.starts_with(b"FORM") {
        return unsupported("AIFF");
    }
    if h.starts_with(b"#!AMR") {
        return unsupported("multi-channel AMR");
    }
    if h.starts_with(b"\x1A\x45\xDF\xA3") {
        return unsupported("Matroska/WebM");
    }
    if h.starts_with(b"caff") {
        return unsupported("Core Audio Format (CAF)");
    }
    let hex: Vec<String> = h.iter().take(8).map(|b| format!("{b:02x}")).collect();
    Err(AudioError::Unsupported(format!(
        "unrecognised audio container (first bytes {})",
        hex.join(" ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_magic() {
        let c = |b: &[u8]| classify(b).ok();
        assert_eq!(c(b"RIFF\0\0\0\0WAVEfmt "), Some(Container::Wav));
        assert_eq!(c(b"#!AMR\n\x3c"), Some(Container::AmrNb));
        assert_eq!(c(b"#!AMR-WB\n"), Some(Container::AmrWb));
        assert_eq!(c(b"fLaC\0\0\0\x22"), Some(Container::Flac));
        assert_eq!(c(b"OggS\0\x02"), Some(Container::Ogg));
        assert_eq!(c(b"\0\0\0\x20ftypM4A "), Some(Container::Mp4));
        assert_eq!(c(&[0xFF, 0xF1, 0x50, 0x80]), Some(Container::Adts));
        assert_eq!(c(&[0xFF, 0xFB, 0x90, 0x64]), Some(Container::Mp3));
        assert_eq!(c(&[0xFF, 0xF3, 0x48, 0xC4]), Some(Container::Mp3)); // MPEG-2 layer III
        assert!(matches!(
            classify(&ASF_GUID),
            Err(AudioError::Unsupported(m)) if m.contains("WMA")
        ));
        assert!(matches!(
            classify(b"hello world"),
            Err(AudioError::Unsupported(_))
        ));
        assert!(matches!(classify(b""), Err(AudioError::Unsupported(_))));
    }

    #[test]
    fn id3_sizes() {
        // 10-byte header + syncsafe size 0x01 0x7F = 255
        assert_eq!(id3_len(b"ID3\x04\x00\x00\x00\x00\x01\x7F"), Some(265));
        assert_eq!(id3_len(b"ID3\x04\x00\x10\x00\x00\x00\x01"), Some(21));
        assert_eq!(id3_len(b"ID3\x04\x00\x00\x80\x00\x00\x00"), None);
        assert_eq!(id3_len(b"ID3"), None);
    }
}
