//! One decode path: the same bytes are accepted and refused identically
//! whichever API receives them — `sis_audio::decode` (in memory: short-audio,
//! RASR) or `sis_audio::stream::open` (a file: recorded-file jobs).
//!
//! Every row is a real input (speech from `../shared/audio`, encoded at test
//! time by ffmpeg and the repository's `amr-encode`; a synthetic tone when
//! the speech is missing) or a damaged copy of one: every container and
//! codec, mono and stereo, 8/16 kHz and others, lying WAV and MP4 headers,
//! truncation at several points, empty, one byte, garbage. For each row:
//!
//! 1. `decode(auto)` equals `stream::open(auto)` read to the end under
//!    short-audio's rules (one channel, 8 or 16 kHz, 60 s): the same error,
//!    or the same rate and bit-identical samples;
//! 2. `decode(declared)` equals `decode(auto)` when the content is the
//!    declared container, and is a "declared X, found Y" error otherwise;
//! 3. when both accept, the file streamed without short-audio's limits
//!    gives the same samples; chunks are contiguous, samples finite in [-1, 1]
//!    (these three are `fuzz::exercise`, which the decoder fuzz runs too);
//! 4. each API's outcome is the one the row expects, so both cannot agree
//!    on a wrong answer.
#![allow(clippy::unwrap_used)]

mod common;
mod fuzz;

use std::path::{Path, PathBuf};

use fuzz::{describe, Outcome};
use sis_audio::AudioError;
use sis_core::AudioFormat;

/// What a row expects of one API.
#[derive(Clone, Copy, Debug)]
enum Want {
    Ok {
        rate: u32,
        channels: usize,
    },
    Empty,
    /// `Corrupt` whose message contains this.
    Corrupt(&'static str),
    Unsupported,
    NotMono(u32),
    BadRate(u32),
    TooLong,
    /// `TooManyChannels` with this many found.
    TooMany(u32),
}

use Want::*;

const fn mono(rate: u32) -> Want {
    Ok { rate, channels: 1 }
}

const fn stereo(rate: u32) -> Want {
    Ok { rate, channels: 2 }
}

impl Want {
    fn matches(self, got: &Outcome) -> bool {
        match (self, got) {
            (Ok { rate, channels }, Result::Ok((r, c))) => {
                *r == rate && c.len() == channels && !c[0].is_empty()
            }
            (Empty, Err(AudioError::Empty)) => true,
            (Corrupt(s), Err(AudioError::Corrupt(m))) => m.contains(s),
            (Unsupported, Err(AudioError::Unsupported(_))) => true,
            (NotMono(n), Err(AudioError::NotMono(m))) => n == *m,
            (BadRate(n), Err(AudioError::BadSampleRate(m))) => n == *m,
            (TooLong, Err(AudioError::TooLong { .. })) => true,
            (TooMany(n), Err(AudioError::TooManyChannels { found, .. })) => n == *found,
            _ => false,
        }
    }
}

struct Row {
    name: String,
    bytes: Vec<u8>,
    /// The `audio_format` a short-audio client declares (`auto` for the
    /// containers SIS has no name for; a raw format for headerless audio).
    declared: AudioFormat,
    /// Expected of `decode` (short-audio's rules) and of `stream::open`
    /// (2 channels, 5 hours).
    short: Want,
    stream: Want,
}

/// Checks one row (the checks of the fuzz targets, `fuzz::exercise`, and
/// the row's expectations); returns its failures.
fn check(dir: &Path, row: &Row) -> Vec<String> {
    let v = fuzz::exercise(row.declared, &row.bytes, &dir.join("row.dat"), 1000);
    eprintln!(
        "{:34} | {:60} | {}",
        row.name,
        describe(&v.memory),
        describe(&v.stream)
    );
    let mut failures: Vec<String> = v
        .problems
        .iter()
        .map(|p| format!("{}: {p}", row.name))
        .collect();
    for (api, want, got) in [
        ("decode", row.short, &v.memory),
        ("the stream", row.stream, &v.stream),
    ] {
        if !want.matches(got) {
            failures.push(format!(
                "{}: {api} gives {}, expected {want:?}",
                row.name,
                describe(got)
            ));
        }
    }
    failures
}

/// An encoding of the source clip: ffmpeg output arguments (space-separated).
struct Encoding {
    name: &'static str,
    declared: AudioFormat,
    args: &'static str,
    short: Want,
    stream: Want,
}

const fn enc(
    name: &'static str,
    declared: AudioFormat,
    args: &'static str,
    short: Want,
    stream: Want,
) -> Encoding {
    Encoding {
        name,
        declared,
        args,
        short,
        stream,
    }
}

use AudioFormat::{Aac, Auto, Mp3, Wav};

// Stereo: "-af pan=stereo|c0=c0|c1=0.5*c0", the clip left, half of it right.
#[rustfmt::skip]
const ENCODINGS: &[Encoding] = &[
    enc("wav-pcm16-16k", Wav, "-ar 16000 -c:a pcm_s16le -f wav", mono(16000), mono(16000)),
    enc("wav-pcm16-8k", Wav, "-ar 8000 -c:a pcm_s16le -f wav", mono(8000), mono(8000)),
    enc("wav-pcm16-16k-stereo", Wav, "-ar 16000 -af pan=stereo|c0=c0|c1=0.5*c0 -c:a pcm_s16le -f wav", NotMono(2), stereo(16000)),
    enc("wav-pcm16-44k", Wav, "-ar 44100 -c:a pcm_s16le -f wav", BadRate(44100), mono(44100)),
    enc("wav-alaw-8k", Wav, "-ar 8000 -c:a pcm_alaw -f wav", mono(8000), mono(8000)),
    enc("wav-alaw-16k-stereo", Wav, "-ar 16000 -af pan=stereo|c0=c0|c1=0.5*c0 -c:a pcm_alaw -f wav", NotMono(2), stereo(16000)),
    enc("wav-ulaw-8k", Wav, "-ar 8000 -c:a pcm_mulaw -f wav", mono(8000), mono(8000)),
    enc("wav-ulaw-16k", Wav, "-ar 16000 -c:a pcm_mulaw -f wav", mono(16000), mono(16000)),
    enc("wav-float32-16k", Wav, "-ar 16000 -c:a pcm_f32le -f wav", mono(16000), mono(16000)),
    enc("wav-float64-8k", Wav, "-ar 8000 -c:a pcm_f64le -f wav", mono(8000), mono(8000)),
    // 24-bit: ffmpeg writes WAVE_FORMAT_EXTENSIBLE
    enc("wav-pcm24-16k", Wav, "-ar 16000 -c:a pcm_s24le -f wav", mono(16000), mono(16000)),
    enc("wav-pcm32-8k", Wav, "-ar 8000 -c:a pcm_s32le -f wav", mono(8000), mono(8000)),
    enc("wav-u8-8k", Wav, "-ar 8000 -c:a pcm_u8 -f wav", mono(8000), mono(8000)),
    enc("mp3-16k", Mp3, "-ar 16000 -c:a libmp3lame -b:a 32k -f mp3", mono(16000), mono(16000)),
    enc("mp3-8k", Mp3, "-ar 8000 -c:a libmp3lame -b:a 16k -f mp3", mono(8000), mono(8000)),
    enc("mp3-16k-stereo", Mp3, "-ar 16000 -af pan=stereo|c0=c0|c1=0.5*c0 -c:a libmp3lame -b:a 48k -f mp3", NotMono(2), stereo(16000)),
    enc("mp3-44k", Mp3, "-ar 44100 -c:a libmp3lame -b:a 64k -f mp3", BadRate(44100), mono(44100)),
    enc("aac-adts-16k", Aac, "-ar 16000 -c:a aac -b:a 48k -f adts", mono(16000), mono(16000)),
    enc("aac-adts-8k", Aac, "-ar 8000 -c:a aac -b:a 24k -f adts", mono(8000), mono(8000)),
    enc("aac-adts-16k-stereo", Aac, "-ar 16000 -af pan=stereo|c0=c0|c1=0.5*c0 -c:a aac -b:a 64k -f adts", NotMono(2), stereo(16000)),
    enc("aac-m4a-16k", Aac, "-ar 16000 -c:a aac -b:a 48k -f ipod", mono(16000), mono(16000)),
    enc("aac-m4a-16k-faststart", Aac, "-ar 16000 -c:a aac -b:a 48k -movflags +faststart -f ipod", mono(16000), mono(16000)),
    enc("aac-m4a-16k-fragmented", Aac, "-ar 16000 -c:a aac -b:a 48k -movflags frag_keyframe+empty_moov -f mp4", mono(16000), mono(16000)),
    enc("flac-16k", Auto, "-ar 16000 -c:a flac -f flac", mono(16000), mono(16000)),
    enc("flac-8k", Auto, "-ar 8000 -c:a flac -f flac", mono(8000), mono(8000)),
    enc("flac-16k-stereo", Auto, "-ar 16000 -af pan=stereo|c0=c0|c1=0.5*c0 -c:a flac -f flac", NotMono(2), stereo(16000)),
    enc("ogg-flac-8k", Auto, "-ar 8000 -c:a flac -f ogg", mono(8000), mono(8000)),
    enc("ogg-vorbis-16k", Auto, "-ar 16000 -c:a libvorbis -f ogg", mono(16000), mono(16000)),
    enc("ogg-vorbis-16k-stereo", Auto, "-ar 16000 -af pan=stereo|c0=c0|c1=0.5*c0 -c:a libvorbis -f ogg", NotMono(2), stereo(16000)),
    // Opus always decodes at 48 kHz: not a short-audio rate
    enc("ogg-opus-16k", Auto, "-ar 16000 -c:a libopus -b:a 24k -f ogg", BadRate(48000), mono(48000)),
];

/// Damage done to a copy of an input: how to make it, and what each API
/// must then say.
struct Damage {
    what: String,
    bytes: Vec<u8>,
    short: Want,
    stream: Want,
}

impl Damage {
    /// The row of this damage done to the input `of`, sent as `declared`.
    fn row(self, of: &str, declared: AudioFormat) -> Row {
        Row {
            name: format!("{of} {}", self.what),
            bytes: self.bytes,
            declared,
            short: self.short,
            stream: self.stream,
        }
    }
}

fn damage(what: impl Into<String>, bytes: Vec<u8>, short: Want, stream: Want) -> Damage {
    Damage {
        what: what.into(),
        bytes,
        short,
        stream,
    }
}

/// Cuts at fixed points and at fractions of the input.
fn cuts(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let n = bytes.len();
    let mut at = vec![1, 4, 12, 44, n / 4, n / 2, n * 99 / 100, n - 1];
    at.sort_unstable();
    at.dedup();
    at.into_iter()
        .filter(|&k| k > 0 && k < n)
        .map(|k| (format!("cut@{k}"), bytes[..k].to_vec()))
        .collect()
}

/// The byte offset of the first RIFF chunk `id` (at its header).
fn riff_chunk(bytes: &[u8], id: &[u8; 4]) -> usize {
    let mut at = 12;
    while at + 8 <= bytes.len() {
        if &bytes[at..at + 4] == id {
            return at;
        }
        let size = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        at += 8 + size + (size & 1);
    }
    panic!("no {:?} chunk", String::from_utf8_lossy(id));
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

/// Rewrites the `fmt ` body at `fmt` to a consistent header of `channels`
/// at `rate` Hz, 16-bit.
fn set_fmt(b: &mut [u8], fmt: usize, channels: u16, rate: u32) {
    put16(b, fmt + 2, channels);
    put32(b, fmt + 4, rate);
    put32(b, fmt + 8, rate * 2 * channels as u32);
    put16(b, fmt + 12, 2 * channels);
}

/// Lies a mono 16 kHz 16-bit WAV can tell, and what each API must say.
#[rustfmt::skip]
fn wav_lies(wav: &[u8]) -> Vec<Damage> {
    let fmt = riff_chunk(wav, b"fmt ") + 8;
    let data = riff_chunk(wav, b"data");
    let size = u32::from_le_bytes(wav[data + 4..data + 8].try_into().unwrap());
    let edit = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = wav.to_vec();
        f(&mut b);
        b
    };
    let long = {
        let mut b = wav.to_vec();
        let audio = wav[data + 8..].to_vec();
        while b.len() - data - 8 < 16000 * 2 * 61 {
            b.extend_from_slice(&audio);
        }
        let n = (b.len() - data - 8) as u32;
        put32(&mut b, data + 4, n);
        b
    };
    vec![
        damage("data size x2", edit(&|b| put32(b, data + 4, size * 2)), Corrupt("header declares"), Corrupt("header declares")),
        damage("data size /2", edit(&|b| put32(b, data + 4, size / 2)), mono(16000), mono(16000)),
        damage("data size 0 (to the end)", edit(&|b| put32(b, data + 4, 0)), mono(16000), mono(16000)),
        damage("data size ~0 (to the end)", edit(&|b| put32(b, data + 4, u32::MAX)), mono(16000), mono(16000)),
        damage("data size odd", edit(&|b| { put32(b, data + 4, size + 1); b.push(0x7F) }), mono(16000), mono(16000)),
        damage("RIFF size 0", edit(&|b| put32(b, 4, 0)), mono(16000), mono(16000)),
        damage("rate 8000, byte rate too", edit(&|b| set_fmt(b, fmt, 1, 8000)), mono(8000), mono(8000)),
        damage("rate 8000, byte rate not", edit(&|b| put32(b, fmt + 4, 8000)), Corrupt("inconsistent"), Corrupt("inconsistent")),
        damage("rate 22050", edit(&|b| set_fmt(b, fmt, 1, 22050)), BadRate(22050), mono(22050)),
        damage("rate 0", edit(&|b| set_fmt(b, fmt, 1, 0)), Corrupt("sample rate 0"), Corrupt("sample rate 0")),
        damage("2 channels", edit(&|b| set_fmt(b, fmt, 2, 16000)), NotMono(2), stereo(16000)),
        damage("3 channels", edit(&|b| set_fmt(b, fmt, 3, 16000)), NotMono(3), TooMany(3)),
        damage("0 channels", edit(&|b| put16(b, fmt + 2, 0)), Corrupt("0 channels"), Corrupt("0 channels")),
        damage("24 bits, rest not", edit(&|b| put16(b, fmt + 14, 24)), Corrupt("inconsistent"), Corrupt("inconsistent")),
        damage("format tag 2 (MS ADPCM)", edit(&|b| put16(b, fmt, 2)), Unsupported, Unsupported),
        damage("fmt size past the end", edit(&|b| put32(b, fmt - 4, 0x7FFF_FFF0)), Corrupt("declares"), Corrupt("declares")),
        damage("no fmt chunk", edit(&|b| b[fmt - 8..fmt - 4].copy_from_slice(b"fmu ")), Corrupt("before fmt"), Corrupt("before fmt")),
        damage("no data chunk", edit(&|b| b[data..data + 4].copy_from_slice(b"dat_")), Corrupt("no data chunk"), Corrupt("no data chunk")),
        damage("ID3 tag in front", [&b"ID3\x04\0\0\0\0\0\x05"[..], &[0; 5], wav].concat(), mono(16000), mono(16000)),
        damage("61 s (data repeated)", long, TooLong, mono(16000)),
    ]
}

fn find(bytes: &[u8], what: &[u8]) -> usize {
    bytes.windows(what.len()).position(|w| w == what).unwrap()
}

/// Lies in an MP4 whose index comes first.
fn mp4_lies(m4a: &[u8]) -> Vec<Damage> {
    let stsc = find(m4a, b"stsc");
    let moov = find(m4a, b"moov");
    let edit = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = m4a.to_vec();
        f(&mut b);
        b
    };
    vec![
        damage(
            "stsc count 2^32-1",
            edit(&|b| b[stsc + 8..stsc + 12].copy_from_slice(&u32::MAX.to_be_bytes())),
            Corrupt("entries"),
            Corrupt("entries"),
        ),
        damage(
            "moov size past the end",
            edit(&|b| b[moov - 4..moov].copy_from_slice(&0x7FFF_0000u32.to_be_bytes())),
            Corrupt("declares"),
            Corrupt("declares"),
        ),
    ]
}

fn amr_lies(amr: &[u8], magic: usize) -> Vec<Damage> {
    let mut bad = amr.to_vec();
    bad[magic] = 0x54; // frame type 10: reserved in both
    vec![
        damage("header only", amr[..magic].to_vec(), Empty, Empty),
        damage(
            "reserved frame type",
            bad,
            Corrupt("invalid frame type"),
            Corrupt("invalid frame type"),
        ),
    ]
}

/// Expected outcome of a cut of the input `name` to `k` bytes (`audio_at`:
/// where its first audio starts, or ends for ADTS).
fn cut_want(name: &str, k: usize, audio_at: usize) -> (Want, Want) {
    let both = |w: Want| (w, w);
    // a cut inside the magic leaves nothing to recognise
    let magic = match name {
        n if n.starts_with("wav") => 12,
        "mp3-16k" => 10,
        "aac-adts-16k" => 3,
        "aac-m4a-16k" | "aac-m4a-16k-faststart" => 8,
        "amr-nb" => 6,
        "amr-wb" => 9,
        _ => 4,
    };
    if k < magic {
        return both(Unsupported);
    }
    let rate = if name.contains("8k") || name == "amr-nb" {
        8000
    } else {
        16000
    };
    let ok = both(mono(rate));
    match name {
        n if n.starts_with("wav") => {
            if k < audio_at {
                both(Corrupt(""))
            } else {
                both(Corrupt("header declares"))
            }
        }
        // only the ID3 tag, or part of it
        "mp3-16k" if k < audio_at => both(Corrupt("ID3")),
        "mp3-16k" => ok,
        // inside the 7-byte frame header, then inside the first frame
        "aac-adts-16k" if k < 7 => both(Corrupt("inside a header")),
        "aac-adts-16k" if k < audio_at => both(Empty),
        "aac-adts-16k" => ok,
        // MP4 and FLAC state their length: any cut is found
        "aac-m4a-16k" | "aac-m4a-16k-faststart" | "flac-16k" => both(Corrupt("")),
        "ogg-vorbis-16k" | "ogg-opus-16k" if k < audio_at => both(Corrupt("")),
        "ogg-opus-16k" => (BadRate(48000), mono(48000)),
        "ogg-vorbis-16k" => ok,
        // cut inside a frame
        "amr-nb" | "amr-wb" => both(Corrupt("truncated frame")),
        other => panic!("no expectation for cuts of {other}"),
    }
}

#[test]
fn every_api_accepts_and_refuses_the_same_inputs() {
    require_ffmpeg!();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    // the source: 2.5 s of real speech, or a tone
    let src: PathBuf = match common::speech_clip() {
        Some(clip) => {
            eprintln!("source: {}", clip.display());
            common::ffmpeg_file(
                dir,
                "src.wav",
                &clip,
                &["-t", "2.5", "-ac", "1", "-c:a", "pcm_s16le", "-f", "wav"],
            )
        }
        None => {
            eprintln!("source: a 440 Hz tone (no speech in ../shared/audio)");
            common::ffmpeg(
                dir,
                "src.wav",
                &common::tone(false, 16000, 2.5),
                &["-f", "wav"],
            )
        }
    };
    let mut rows: Vec<Row> = Vec::new();
    let mut encoded: Vec<(&str, Vec<u8>)> = Vec::new();
    for e in ENCODINGS {
        let args: Vec<&str> = e.args.split_whitespace().collect();
        let path = common::ffmpeg_file(dir, &format!("{}.dat", e.name), &src, &args);
        let bytes = std::fs::read(&path).unwrap();
        encoded.push((e.name, bytes.clone()));
        rows.push(Row {
            name: e.name.to_string(),
            bytes,
            declared: e.declared,
            short: e.short,
            stream: e.stream,
        });
    }
    // AMR through the repository's encoder
    let mut amr_rows = 0;
    for (name, kind, rate, format) in [
        ("amr-nb", "nb", "8000", AudioFormat::Amr),
        ("amr-wb", "wb", "16000", AudioFormat::AmrWb),
    ] {
        let raw = common::ffmpeg_file(
            dir,
            &format!("{kind}.raw"),
            &src,
            &["-ar", rate, "-ac", "1", "-f", "s16le"],
        );
        let Some(path) = common::amr_encode(dir, &format!("{name}.dat"), kind, &raw) else {
            eprintln!("NOTE: amr-encode is not built (cargo build -p sis-testkit): no AMR rows");
            break;
        };
        let bytes = std::fs::read(&path).unwrap();
        let want = mono(rate.parse().unwrap());
        rows.push(Row {
            name: name.into(),
            bytes: bytes.clone(),
            declared: format,
            short: want,
            stream: want,
        });
        let magic = if kind == "nb" { 6 } else { 9 };
        rows.extend(
            amr_lies(&bytes, magic)
                .into_iter()
                .map(|d| d.row(name, format)),
        );
        encoded.push((name, bytes));
        amr_rows += 1;
    }
    // raw SIS formats (every byte is audio)
    for (format, muxer) in [
        (AudioFormat::Pcm16k16bit, "s16le"),
        (AudioFormat::Pcm8k16bit, "s16le"),
        (AudioFormat::Alaw16k8bit, "alaw"),
        (AudioFormat::Alaw8k8bit, "alaw"),
        (AudioFormat::Ulaw16k8bit, "mulaw"),
        (AudioFormat::Ulaw8k8bit, "mulaw"),
    ] {
        let (_, rate) = format.raw().unwrap();
        let path = common::ffmpeg_file(
            dir,
            &format!("{format}.raw"),
            &src,
            &["-ar", &rate.to_string(), "-ac", "1", "-f", muxer],
        );
        let bytes = std::fs::read(&path).unwrap();
        let raw_row = |what: &str, bytes: Vec<u8>, want: Want| Row {
            name: format!("{format} {what}"),
            bytes,
            declared: format,
            short: want,
            stream: want,
        };
        rows.push(raw_row("", bytes.clone(), mono(rate)));
        rows.push(raw_row(
            "1 byte",
            bytes[..1].to_vec(),
            if muxer == "s16le" {
                Corrupt("even")
            } else {
                mono(rate)
            },
        ));
        let odd = bytes.len() - 1 + bytes.len() % 2;
        rows.push(raw_row(
            "odd length",
            bytes[..odd].to_vec(),
            if muxer == "s16le" {
                Corrupt("even")
            } else {
                mono(rate)
            },
        ));
        rows.push(raw_row("empty", Vec::new(), Empty));
        if format == AudioFormat::Ulaw8k8bit {
            let long: Vec<u8> = bytes.iter().copied().cycle().take(8000 * 61).collect();
            rows.push(Row {
                stream: mono(rate),
                ..raw_row("61 s", long, TooLong)
            });
        }
    }
    // damage: lying headers and cuts
    let get = |name: &str| {
        encoded
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, b)| b.clone())
    };
    let declared_of = |name: &str| {
        ENCODINGS.iter().find(|e| e.name == name).map_or(
            if name == "amr-nb" {
                AudioFormat::Amr
            } else {
                AudioFormat::AmrWb
            },
            |e| e.declared,
        )
    };
    let wav = get("wav-pcm16-16k").unwrap();
    rows.extend(wav_lies(&wav).into_iter().map(|d| d.row("wav", Wav)));
    let m4a = get("aac-m4a-16k-faststart").unwrap();
    rows.extend(mp4_lies(&m4a).into_iter().map(|d| d.row("m4a", Aac)));
    for name in [
        "wav-pcm16-16k",
        "wav-alaw-8k",
        "mp3-16k",
        "aac-adts-16k",
        "aac-m4a-16k",
        "aac-m4a-16k-faststart",
        "flac-16k",
        "ogg-vorbis-16k",
        "ogg-opus-16k",
        "amr-nb",
        "amr-wb",
    ] {
        let Some(bytes) = get(name) else { continue };
        let header = match name {
            n if n.starts_with("wav") => riff_chunk(&bytes, b"data") + 8,
            // the ID3 tag's length (10-byte header + syncsafe size)
            "mp3-16k" if bytes.starts_with(b"ID3") => {
                10 + bytes[6..10]
                    .iter()
                    .fold(0usize, |a, &b| (a << 7) | b as usize)
            }
            // the end of the first frame (13 bits of frame length)
            "aac-adts-16k" => {
                ((bytes[3] as usize & 3) << 11)
                    | ((bytes[4] as usize) << 3)
                    | (bytes[5] as usize >> 5)
            }
            // the first page after the two header pages holds audio
            "ogg-vorbis-16k" | "ogg-opus-16k" => {
                let mut at = 0;
                for _ in 0..3 {
                    at += 4 + find(&bytes[at + 4..], b"OggS");
                }
                at
            }
            _ => 0,
        };
        for (what, cut) in cuts(&bytes) {
            let (short, stream) = cut_want(name, cut.len(), header);
            rows.push(Row {
                name: format!("{name} {what}"),
                bytes: cut,
                declared: declared_of(name),
                short,
                stream,
            });
        }
    }
    // garbage, alone and behind real magic
    let junk = common::noise(4096);
    let behind = |magic: &[u8]| [magic, &junk[..]].concat();
    for (name, bytes, declared, want) in [
        ("empty", Vec::new(), Auto, Empty),
        ("1 byte", vec![0x52], Auto, Unsupported),
        ("noise", junk.clone(), Auto, Unsupported),
        (
            "RIFF/WAVE + noise",
            behind(b"RIFF\x24\0\0\0WAVE"),
            Wav,
            Corrupt(""),
        ),
        ("fLaC + noise", behind(b"fLaC"), Auto, Corrupt("")),
        (
            "#!AMR + noise",
            behind(b"#!AMR\n"),
            AudioFormat::Amr,
            Corrupt(""),
        ),
        (
            "ftyp + noise",
            behind(b"\0\0\0\x20ftypM4A "),
            Aac,
            Corrupt(""),
        ),
        (
            "ID3 tag only",
            b"ID3\x04\0\0\0\0\0\x05\0\0\0\0\0".to_vec(),
            Mp3,
            Corrupt("ID3"),
        ),
        (
            "MPEG layer II sync",
            behind(&[0xFF, 0xFD, 0x90, 0x64]),
            Mp3,
            Unsupported,
        ),
        (
            "WMA/ASF",
            behind(&[
                0x30, 0x26, 0xB2, 0x75, 0x8E, 0x66, 0xCF, 0x11, 0xA6, 0xD9, 0x00, 0xAA, 0x00, 0x62,
                0xCE, 0x6C,
            ]),
            Auto,
            Unsupported,
        ),
    ] {
        rows.push(Row {
            name: name.into(),
            bytes,
            declared,
            short: want,
            stream: want,
        });
    }
    // a file longer than short-audio takes, compressed: found while decoding
    let long = common::ffmpeg_file(
        dir,
        "long.dat",
        &src,
        &[
            "-af",
            "aloop=loop=-1:size=40000",
            "-t",
            "61",
            "-ac",
            "1",
            "-ar",
            "16000",
            "-c:a",
            "libmp3lame",
            "-b:a",
            "16k",
            "-f",
            "mp3",
        ],
    );
    rows.push(Row {
        name: "mp3-16k 61 s".into(),
        bytes: std::fs::read(long).unwrap(),
        declared: Mp3,
        short: TooLong,
        stream: mono(16000),
    });

    eprintln!(
        "{:34} | {:60} | stream (2 channels, 5 h)",
        "row", "decode (short-audio rules)"
    );
    let failures: Vec<String> = rows.iter().flat_map(|r| check(dir, r)).collect();
    eprintln!(
        "{} rows ({} encodings, {amr_rows} AMR codecs), {} failures",
        rows.len(),
        ENCODINGS.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert!(rows.len() >= 150, "the table shrank to {} rows", rows.len());
}
