//! `sis_audio::stream` against real files made by ffmpeg from synthetic tones:
//! rate, channels, duration and content (the tone of each channel) for every
//! container and codec, and errors for truncated, garbage and over-limit input.
//! Files get neutral names (`.dat`): detection is by content.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use sis_audio::stream::{self, FileFormat, StreamLimits};
use sis_audio::AudioError;
use sis_core::{AudioFormat, RawEncoding};

struct Decoded {
    rate: u32,
    codec: &'static str,
    total_frames: Option<u64>,
    channels: Vec<Vec<f32>>,
}

impl Decoded {
    fn ms(&self) -> f64 {
        self.channels[0].len() as f64 * 1000.0 / self.rate as f64
    }
}

/// Decodes the whole stream, checking the chunking invariants on the way.
fn decode(path: &Path, format: FileFormat, limits: StreamLimits) -> Result<Decoded, AudioError> {
    let mut s = stream::open(path, format, limits)?;
    let n = s.channels() as usize;
    assert!(n == 1 || n == 2);
    let chunk_frames = (s.sample_rate() as u64 * limits.chunk_ms as u64 / 1000) as usize;
    let mut channels = vec![Vec::new(); n];
    let mut last_short = false;
    while let Some(chunk) = s.next_chunk()? {
        assert!(!last_short, "only the last chunk may be short");
        assert_eq!(chunk.start_frame, channels[0].len() as u64);
        assert_eq!(chunk.channels.len(), n);
        assert!(chunk.frames() > 0 && chunk.frames() <= chunk_frames);
        last_short = chunk.frames() < chunk_frames;
        for (all, c) in channels.iter_mut().zip(chunk.channels) {
            all.extend(c);
        }
    }
    // The end is sticky.
    assert!(s.next_chunk()?.is_none());
    Ok(Decoded {
        rate: s.sample_rate(),
        codec: s.codec(),
        total_frames: s.total_frames(),
        channels,
    })
}

struct Case {
    muxer_args: &'static [&'static str],
    stereo: bool,
    in_rate: u32,
    out_rate: u32,
    codec: &'static str,
    /// Allowed deviation from 3000 ms: (shorter by, longer by).
    tolerance_ms: (f64, f64),
}

const LOSSLESS: (f64, f64) = (0.5, 0.5);
/// MP3 (LAME header), Vorbis and Opus (granule positions) are trimmed gaplessly.
const GAPLESS: (f64, f64) = (30.0, 30.0);
/// AAC keeps the encoder's 1024 priming frames, plus up to one frame of padding.
fn aac_tolerance(rate: u32) -> (f64, f64) {
    (10.0, 2048.0 * 1000.0 / rate as f64 + 10.0)
}

fn check(dir: &Path, i: usize, case: &Case) {
    let source = common::tone(case.stereo, case.in_rate, 3.0);
    let name = format!("clip{i}.dat");
    let path = common::ffmpeg(dir, &name, &source, case.muxer_args);
    let d = decode(&path, FileFormat::Auto, StreamLimits::default())
        .unwrap_or_else(|e| panic!("{} ({:?}): {e}", case.codec, case.muxer_args));
    let what = format!("{} {:?}", case.codec, case.muxer_args);
    assert_eq!(d.codec, case.codec, "{what}");
    assert_eq!(d.rate, case.out_rate, "{what}");
    assert_eq!(d.channels.len(), if case.stereo { 2 } else { 1 }, "{what}");
    let ms = d.ms();
    let (short, long) = case.tolerance_ms;
    assert!(
        ms >= 3000.0 - short && ms <= 3000.0 + long,
        "{what}: {ms:.1} ms decoded"
    );
    let expected = [440.0, 1000.0];
    let (from, to) = (d.rate as usize / 2, d.rate as usize * 5 / 2);
    for (c, samples) in d.channels.iter().enumerate() {
        let mid = &samples[from..to];
        let f = common::tone_frequency(mid, d.rate);
        assert!(
            (f - expected[c]).abs() < expected[c] * 0.01,
            "{what}: channel {c} is {f:.1} Hz, expected {}",
            expected[c]
        );
        let level = common::rms(mid);
        assert!(
            (level - 0.177).abs() < 0.03,
            "{what}: channel {c} RMS {level:.3}"
        );
    }
    eprintln!(
        "{what}: {} Hz, {} ch, {ms:.1} ms (header: {:?} frames)",
        d.rate,
        d.channels.len(),
        d.total_frames
    );
}

fn run(cases: &[Case]) {
    let dir = tempfile::tempdir().unwrap();
    for (i, case) in cases.iter().enumerate() {
        check(dir.path(), i, case);
    }
}

#[test]
fn wav_every_sample_format() {
    require_ffmpeg!();
    let wav = |codec: &'static str, args: &'static [&'static str], stereo: bool, rate: u32| Case {
        muxer_args: args,
        stereo,
        in_rate: rate,
        out_rate: rate,
        codec,
        tolerance_ms: LOSSLESS,
    };
    run(&[
        wav(
            "wav/pcm_s16le",
            &["-c:a", "pcm_s16le", "-f", "wav"],
            false,
            16000,
        ),
        wav(
            "wav/pcm_s16le",
            &["-c:a", "pcm_s16le", "-f", "wav"],
            true,
            16000,
        ),
        // 24-bit: ffmpeg writes WAVE_FORMAT_EXTENSIBLE.
        wav(
            "wav/pcm_s24le",
            &["-c:a", "pcm_s24le", "-f", "wav"],
            true,
            48000,
        ),
        wav(
            "wav/pcm_s32le",
            &["-c:a", "pcm_s32le", "-f", "wav"],
            false,
            16000,
        ),
        wav("wav/pcm_u8", &["-c:a", "pcm_u8", "-f", "wav"], false, 8000),
        wav(
            "wav/pcm_f32le",
            &["-c:a", "pcm_f32le", "-f", "wav"],
            false,
            8000,
        ),
        wav(
            "wav/pcm_f32le",
            &["-c:a", "pcm_f32le", "-f", "wav"],
            true,
            44100,
        ),
        wav(
            "wav/pcm_f64le",
            &["-c:a", "pcm_f64le", "-f", "wav"],
            false,
            16000,
        ),
        wav(
            "wav/pcm_alaw",
            &["-c:a", "pcm_alaw", "-f", "wav"],
            false,
            8000,
        ),
        wav(
            "wav/pcm_mulaw",
            &["-c:a", "pcm_mulaw", "-f", "wav"],
            false,
            16000,
        ),
        wav(
            "wav/pcm_mulaw",
            &["-c:a", "pcm_mulaw", "-f", "wav"],
            true,
            8000,
        ),
    ]);
}

#[test]
fn mp3_aac_m4a() {
    require_ffmpeg!();
    let case = |codec, args, stereo, rate, tolerance_ms| Case {
        muxer_args: args,
        stereo,
        in_rate: rate,
        out_rate: rate,
        codec,
        tolerance_ms,
    };
    let mp3: &[&str] = &["-c:a", "libmp3lame", "-b:a", "64k", "-f", "mp3"];
    // (ffmpeg's AAC encoder distorts a 1 kHz tone at 64 kb/s stereo.)
    let adts: &[&str] = &["-c:a", "aac", "-b:a", "128k", "-f", "adts"];
    let m4a: &[&str] = &["-c:a", "aac", "-b:a", "128k", "-f", "ipod"];
    run(&[
        case("mp3", mp3, false, 16000, GAPLESS),
        case("mp3", mp3, true, 44100, GAPLESS),
        case("mp3", mp3, false, 8000, GAPLESS),
        case("aac", adts, false, 16000, aac_tolerance(16000)),
        case("aac", adts, true, 48000, aac_tolerance(48000)),
        case("mp4/aac", m4a, false, 16000, aac_tolerance(16000)),
        case("mp4/aac", m4a, true, 44100, aac_tolerance(44100)),
    ]);
}

#[test]
fn ogg_vorbis_opus_flac() {
    require_ffmpeg!();
    let case = |codec, args, stereo, in_rate, out_rate, tolerance_ms| Case {
        muxer_args: args,
        stereo,
        in_rate,
        out_rate,
        codec,
        tolerance_ms,
    };
    let vorbis: &[&str] = &["-c:a", "libvorbis", "-f", "ogg"];
    let opus: &[&str] = &["-c:a", "libopus", "-b:a", "48k", "-f", "ogg"];
    let opus_family1: &[&str] = &["-c:a", "libopus", "-mapping_family", "1", "-f", "ogg"];
    let flac: &[&str] = &["-c:a", "flac", "-f", "flac"];
    let ogg_flac: &[&str] = &["-c:a", "flac", "-f", "ogg"];
    run(&[
        case("ogg/vorbis", vorbis, false, 16000, 16000, GAPLESS),
        case("ogg/vorbis", vorbis, true, 44100, 44100, GAPLESS),
        // Opus always decodes at 48 kHz.
        case("ogg/opus", opus, false, 16000, 48000, GAPLESS),
        case("ogg/opus", opus, true, 48000, 48000, GAPLESS),
        // Channel mapping family 1 (one coupled stream): still a plain decoder.
        case("ogg/opus", opus_family1, true, 16000, 48000, GAPLESS),
        case("flac", flac, false, 16000, 16000, LOSSLESS),
        case("flac", flac, true, 48000, 48000, LOSSLESS),
        case("ogg/flac", ogg_flac, false, 8000, 8000, LOSSLESS),
    ]);
}

#[test]
fn raw_sis_formats() {
    require_ffmpeg!();
    let dir = tempfile::tempdir().unwrap();
    for (format, muxer) in [
        (AudioFormat::Pcm16k16bit, "s16le"),
        (AudioFormat::Pcm8k16bit, "s16le"),
        (AudioFormat::Ulaw16k8bit, "mulaw"),
        (AudioFormat::Ulaw8k8bit, "mulaw"),
        (AudioFormat::Alaw16k8bit, "alaw"),
        (AudioFormat::Alaw8k8bit, "alaw"),
    ] {
        let (_, rate) = format.raw().unwrap();
        let path = common::ffmpeg(
            dir.path(),
            &format!("{format}.dat"),
            &common::tone(false, rate, 3.0),
            &["-f", muxer],
        );
        let d = decode(&path, format.into(), StreamLimits::default()).unwrap();
        assert_eq!((d.rate, d.channels.len()), (rate, 1), "{format}");
        assert_eq!(d.channels[0].len(), 3 * rate as usize, "{format}");
        assert_eq!(d.total_frames, Some(3 * rate as u64));
        let f = common::tone_frequency(&d.channels[0], rate);
        assert!((f - 440.0).abs() < 4.0, "{format}: {f} Hz");
    }
    // Container names mean "look at the content".
    assert_eq!(FileFormat::from(AudioFormat::Mp3), FileFormat::Auto);
    assert_eq!(
        FileFormat::from(AudioFormat::Alaw8k8bit),
        FileFormat::Raw {
            encoding: RawEncoding::ALaw,
            sample_rate: 8000
        }
    );
    // An odd number of bytes is not 16-bit PCM.
    let odd = dir.path().join("odd.dat");
    std::fs::write(&odd, [0u8; 7]).unwrap();
    assert!(matches!(
        stream::open(
            &odd,
            AudioFormat::Pcm16k16bit.into(),
            StreamLimits::default()
        ),
        Err(AudioError::Corrupt(_))
    ));
}

#[test]
fn amr_nb_and_wb() {
    require_ffmpeg!();
    let Some(encoder) = common::amr_encoder() else {
        eprintln!(
            "SKIPPED: ffmpeg here has no AMR encoder and amr-encode is not built \
             (cargo build -p sis-testkit, or set AMR_ENCODE)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for (kind, rate, codec) in [("nb", 8000u32, "amr"), ("wb", 16000, "amr-wb")] {
        let raw = common::ffmpeg(
            dir.path(),
            &format!("{kind}.raw"),
            &common::tone(false, rate, 3.0),
            &["-f", "s16le"],
        );
        let path = dir.path().join(format!("{kind}.dat"));
        let status = std::process::Command::new(&encoder)
            .arg(kind)
            .arg(&raw)
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
        let d = decode(&path, FileFormat::Auto, StreamLimits::default()).unwrap();
        assert_eq!((d.codec, d.rate, d.channels.len()), (codec, rate, 1));
        // Whole 20 ms frames: 3 s exactly.
        assert!((d.ms() - 3000.0).abs() <= 20.0, "{codec}: {} ms", d.ms());
        let mid = &d.channels[0][rate as usize / 2..rate as usize * 5 / 2];
        let f = common::tone_frequency(mid, rate);
        assert!((f - 440.0).abs() < 4.4, "{codec}: {f} Hz");
        eprintln!("{codec}: {} Hz, {:.1} ms", d.rate, d.ms());

        // Cut inside a frame: an error, after the whole frames before it.
        let bytes = std::fs::read(&path).unwrap();
        let cut = dir.path().join(format!("{kind}-cut.dat"));
        std::fs::write(&cut, &bytes[..bytes.len() - 3]).unwrap();
        assert!(matches!(
            decode(&cut, FileFormat::Auto, StreamLimits::default()),
            Err(AudioError::Corrupt(m)) if m.contains("truncated")
        ));
    }
}

#[test]
fn chunk_length_follows_limits() {
    require_ffmpeg!();
    let dir = tempfile::tempdir().unwrap();
    let path = common::ffmpeg(
        dir.path(),
        "a.dat",
        &common::tone(true, 16000, 3.0),
        &["-c:a", "flac", "-f", "flac"],
    );
    let limits = StreamLimits {
        chunk_ms: 250,
        ..Default::default()
    };
    let mut s = stream::open(&path, FileFormat::Auto, limits).unwrap();
    let mut sizes = Vec::new();
    while let Some(c) = s.next_chunk().unwrap() {
        sizes.push(c.frames());
        let mono = c.to_mono();
        assert_eq!(mono.len(), c.frames());
        assert!((mono[10] - (c.channels[0][10] + c.channels[1][10]) / 2.0).abs() < 1e-6);
    }
    assert_eq!(sizes, vec![4000; 12]);
}

#[test]
fn limits_on_length_and_channels() {
    require_ffmpeg!();
    let dir = tempfile::tempdir().unwrap();
    let two_s = StreamLimits {
        max_ms: 2000,
        ..Default::default()
    };
    // The WAV header states its length: refused at open.
    let wav = common::ffmpeg(
        dir.path(),
        "a.dat",
        &common::tone(false, 16000, 3.0),
        &["-f", "wav"],
    );
    assert_eq!(
        stream::open(&wav, FileFormat::Auto, two_s).err(),
        Some(AudioError::TooLong { limit_ms: 2000 })
    );
    // MP3 is found too long while decoding; the error is sticky.
    let mp3 = common::ffmpeg(
        dir.path(),
        "b.dat",
        &common::tone(false, 16000, 3.0),
        &["-c:a", "libmp3lame", "-f", "mp3"],
    );
    let mut s = stream::open(&mp3, FileFormat::Auto, two_s).unwrap();
    let mut frames = 0;
    let err = loop {
        match s.next_chunk() {
            Ok(Some(c)) => frames += c.frames(),
            Ok(None) => panic!("no error past the limit"),
            Err(e) => break e,
        }
    };
    assert_eq!(err, AudioError::TooLong { limit_ms: 2000 });
    assert!(frames <= 32000);
    assert_eq!(s.next_chunk(), Err(AudioError::TooLong { limit_ms: 2000 }));

    // More than two channels: refused, for PCM and compressed alike.
    let three =
        "aevalsrc=0.1*sin(2*PI*440*t)|0.1*sin(2*PI*550*t)|0.1*sin(2*PI*660*t):s=16000:d=1:c=3.0";
    for (name, args) in [
        ("c.dat", &["-f", "wav"][..]),
        ("d.dat", &["-c:a", "flac", "-f", "flac"][..]),
        ("e.dat", &["-c:a", "libvorbis", "-f", "ogg"][..]),
        (
            "f.dat",
            &["-c:a", "libopus", "-mapping_family", "1", "-f", "ogg"][..],
        ),
    ] {
        let p = common::ffmpeg(dir.path(), name, three, args);
        assert_eq!(
            stream::open(&p, FileFormat::Auto, StreamLimits::default()).err(),
            Some(AudioError::TooManyChannels { found: 3, max: 2 }),
            "{args:?}"
        );
    }
    // A mono-only caller refuses stereo.
    let stereo = common::ffmpeg(
        dir.path(),
        "g.dat",
        &common::tone(true, 16000, 1.0),
        &["-c:a", "libmp3lame", "-f", "mp3"],
    );
    let mono_only = StreamLimits {
        max_channels: 1,
        ..Default::default()
    };
    assert_eq!(
        stream::open(&stereo, FileFormat::Auto, mono_only).err(),
        Some(AudioError::TooManyChannels { found: 2, max: 1 })
    );
}

/// Decodes to the end; returns the error if there is one.
fn decode_err(path: &Path) -> Option<AudioError> {
    decode(path, FileFormat::Auto, StreamLimits::default()).err()
}

#[test]
fn garbage_and_unsupported_input() {
    require_ffmpeg!();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    // Pseudo-random bytes (a fixed LCG, so failures reproduce).
    let noise = common::noise(65536);

    assert_eq!(decode_err(&write("empty", b"")), Some(AudioError::Empty));
    assert!(matches!(
        decode_err(&write("noise", &noise)),
        Some(AudioError::Unsupported(_))
    ));
    assert!(matches!(
        decode_err(&dir.path().join("does-not-exist")),
        Some(AudioError::Io(_))
    ));
    // Real magic, garbage after it: an error from every demuxer, never a panic.
    for magic in [
        &b"RIFF\x24\0\0\0WAVEfmt "[..],
        b"#!AMR\n",
        b"#!AMR-WB\n",
        b"fLaC",
        b"OggS",
        b"\0\0\0\x20ftypM4A ",
        b"ID3\x04\0\0\0\0\0\x10",
        &[0xFF, 0xFB, 0x90, 0x64],
        &[0xFF, 0xF1, 0x50, 0x80],
    ] {
        let mut bytes = magic.to_vec();
        bytes.extend(&noise);
        let e = decode_err(&write("magic", &bytes));
        assert!(
            matches!(
                e,
                Some(AudioError::Corrupt(_) | AudioError::Unsupported(_) | AudioError::Empty)
            ),
            "{:?}: {e:?}",
            String::from_utf8_lossy(magic)
        );
    }
    // A real WMA file: refused by name.
    let wma = common::ffmpeg(
        dir.path(),
        "wma.dat",
        &common::tone(false, 16000, 1.0),
        &["-c:a", "wmav2", "-f", "asf"],
    );
    assert!(matches!(
        decode_err(&wma),
        Some(AudioError::Unsupported(m)) if m.contains("WMA")
    ));
    // Real files of containers or codecs this module does not take.
    for (name, args) in [
        ("webm.dat", &["-c:a", "libopus", "-f", "webm"][..]),
        ("opus-mp4.dat", &["-c:a", "libopus", "-f", "mp4"][..]),
        ("mp2.dat", &["-c:a", "mp2", "-f", "mp2"][..]),
        ("aiff.dat", &["-f", "aiff"][..]),
    ] {
        let p = common::ffmpeg(dir.path(), name, &common::tone(false, 48000, 1.0), args);
        let e = decode_err(&p);
        eprintln!("{name}: {e:?}");
        assert!(
            matches!(e, Some(AudioError::Unsupported(_))),
            "{name}: {e:?}"
        );
    }
}

#[test]
fn truncated_files() {
    require_ffmpeg!();
    let dir = tempfile::tempdir().unwrap();
    let cut = |path: &Path, keep: f64| {
        let bytes = std::fs::read(path).unwrap();
        let p = path.with_extension("cut");
        std::fs::write(&p, &bytes[..(bytes.len() as f64 * keep) as usize]).unwrap();
        p
    };
    let src = common::tone(true, 16000, 3.0);

    // WAV: the header declares more data than the file holds.
    let wav = common::ffmpeg(dir.path(), "a.dat", &src, &["-f", "wav"]);
    assert!(
        matches!(decode_err(&cut(&wav, 0.5)), Some(AudioError::Corrupt(m)) if m.contains("declares"))
    );
    // WAV: cut inside the header.
    assert!(matches!(
        decode_err(&cut(&wav, 0.0005)),
        Some(AudioError::Corrupt(_))
    ));

    // FLAC: STREAMINFO states the length.
    let flac = common::ffmpeg(dir.path(), "b.dat", &src, &["-c:a", "flac", "-f", "flac"]);
    assert!(
        matches!(decode_err(&cut(&flac, 0.6)), Some(AudioError::Corrupt(m)) if m.contains("truncated"))
    );

    // M4A with the index at the end: cut, there is no index.
    let m4a = common::ffmpeg(dir.path(), "c.dat", &src, &["-c:a", "aac", "-f", "ipod"]);
    assert!(matches!(
        decode_err(&cut(&m4a, 0.6)),
        Some(AudioError::Corrupt(_))
    ));
    // M4A with the index first: the sample table states the length.
    let m4a = common::ffmpeg(
        dir.path(),
        "d.dat",
        &src,
        &["-c:a", "aac", "-movflags", "+faststart", "-f", "ipod"],
    );
    assert!(matches!(
        decode_err(&cut(&m4a, 0.6)),
        Some(AudioError::Corrupt(_))
    ));

    // Formats that do not state their length decode up to the cut (the
    // Vorbis headers take a large share of a small file, Ogg pages are ~1 s).
    for (name, args) in [
        ("e.dat", &["-c:a", "libmp3lame", "-f", "mp3"][..]),
        ("f.dat", &["-c:a", "aac", "-f", "adts"][..]),
        ("g.dat", &["-c:a", "libvorbis", "-f", "ogg"][..]),
        ("h.dat", &["-c:a", "libopus", "-f", "ogg"][..]),
    ] {
        let full = common::ffmpeg(dir.path(), name, &common::tone(true, 16000, 10.0), args);
        let d = decode(&cut(&full, 0.5), FileFormat::Auto, StreamLimits::default()).unwrap();
        eprintln!("{args:?}, 10 s cut at 50%: {:.0} ms decoded", d.ms());
        assert!(
            d.ms() > 2500.0 && d.ms() < 6000.0,
            "{args:?}: {} ms",
            d.ms()
        );
    }
}

#[test]
fn damaged_mp3_keeps_its_timeline() {
    require_ffmpeg!();
    let dir = tempfile::tempdir().unwrap();
    let mp3 = common::ffmpeg(
        dir.path(),
        "a.dat",
        &common::tone(false, 16000, 3.0),
        &["-c:a", "libmp3lame", "-f", "mp3"],
    );
    let mut bytes = std::fs::read(&mp3).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 400] {
        *b = 0x55;
    }
    std::fs::write(&mp3, &bytes).unwrap();
    let d = decode(&mp3, FileFormat::Auto, StreamLimits::default()).unwrap();
    eprintln!("damaged mp3: {:.1} ms", d.ms());
    assert!((d.ms() - 3000.0).abs() < 200.0, "{} ms", d.ms());
}

/// A real Vorbis file whose first codebook is rewritten to declare 2^24 - 1
/// entries of 31 dimensions with a lookup table: a few bits in the file, 2 GB
/// of floats for the decoder to allocate and fill (larger declarations make
/// the allocation fail, which aborts the process). The page CRC is fixed so
/// the demuxer takes it: the stream is refused before the decoder sees it.
#[test]
fn vorbis_codebook_bomb_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let source = common::tone(false, 16000, 1.0);
    let path = common::ffmpeg(
        dir.path(),
        "v.ogg",
        &source,
        &["-c:a", "libvorbis", "-f", "ogg"],
    );
    let mut bytes = std::fs::read(&path).unwrap();
    let setup = bytes
        .windows(7)
        .position(|w| w == b"\x05vorbis")
        .expect("setup header");
    // bits after the codebook count byte, least significant first
    let fields: &[(u64, u32)] = &[
        (0x564342, 24),      // sync
        (31, 16),            // dimensions
        ((1 << 24) - 1, 24), // entries
        (1, 1),              // length-ordered
        (0, 5),              // first length
        ((1 << 24) - 1, 24), // every entry that length
        (1, 4),              // lookup type 1
        (0, 32),
        (0, 32),
        (0, 4),
        (0, 1),
    ];
    // one codebook: the rest of the packet is not parsed as codebooks
    bytes[setup + 7] = 0;
    let mut pos = (setup + 8) * 8;
    for &(v, n) in fields {
        for i in 0..n {
            let byte = &mut bytes[pos / 8];
            let bit = 1u8 << (pos % 8);
            if (v >> i) & 1 == 1 {
                *byte |= bit;
            } else {
                *byte &= !bit;
            }
            pos += 1;
        }
    }
    let page = bytes[..setup]
        .windows(4)
        .rposition(|w| w == b"OggS")
        .expect("page");
    let segs = bytes[page + 26] as usize;
    let body: usize = bytes[page + 27..page + 27 + segs]
        .iter()
        .map(|&l| l as usize)
        .sum();
    let end = page + 27 + segs + body;
    bytes[page + 22..page + 26].fill(0);
    let crc = common::ogg_crc(&bytes[page..end]);
    bytes[page + 22..page + 26].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    match decode(&path, FileFormat::Auto, StreamLimits::default()) {
        Err(AudioError::Corrupt(m)) => assert!(m.contains("codebook"), "{m}"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("the bomb was decoded"),
    }
}
