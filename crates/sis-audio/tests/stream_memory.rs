//! A long file streams in bounded memory: 20 minutes of audio, decoded chunk
//! by chunk, must not raise the process's peak resident memory (VmHWM) by
//! more than a few tens of MB, though the file and its decoded samples are
//! larger. Alone in its test binary so no other test moves VmHWM.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Instant;

use sis_audio::stream::{self, FileFormat, StreamLimits};

const MINUTES: u64 = 20;
const RATE: u32 = 16_000;
/// Allowed growth of the peak resident memory while decoding.
const MAX_GROWTH_KIB: u64 = 24 * 1024;

#[test]
fn twenty_minutes_in_bounded_memory() {
    require_ffmpeg!();
    let Some(start_hwm) = common::vm_hwm_kib() else {
        eprintln!("SKIPPED: no VmHWM in /proc/self/status");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let seconds = (MINUTES * 60) as f64;
    let files = [
        (
            "stereo 16-bit WAV",
            common::ffmpeg(
                dir.path(),
                "long-wav.dat",
                &common::tone(true, RATE, seconds),
                &["-c:a", "pcm_s16le", "-f", "wav"],
            ),
        ),
        (
            "stereo FLAC",
            common::ffmpeg(
                dir.path(),
                "long-flac.dat",
                &common::tone(true, RATE, seconds),
                &["-c:a", "flac", "-f", "flac"],
            ),
        ),
    ];
    eprintln!("VmHWM before: {start_hwm} KiB");
    for (what, path) in files {
        let file_mb = std::fs::metadata(&path).unwrap().len() as f64 / 1e6;
        let before = common::vm_hwm_kib().unwrap();
        let t = Instant::now();
        let mut s = stream::open(&path, FileFormat::Auto, StreamLimits::default()).unwrap();
        assert_eq!((s.sample_rate(), s.channels()), (RATE, 2));
        let (mut frames, mut chunks, mut largest) = (0u64, 0usize, 0usize);
        while let Some(c) = s.next_chunk().unwrap() {
            assert_eq!(c.start_frame, frames);
            frames += c.frames() as u64;
            largest = largest.max(c.frames());
            // Spot-check the content every 5 minutes.
            if chunks % 300 == 150 {
                let f = common::tone_frequency(&c.channels[1], RATE);
                assert!(
                    (f - 1000.0).abs() < 10.0,
                    "{what}: {f} Hz at chunk {chunks}"
                );
            }
            chunks += 1;
        }
        let after = common::vm_hwm_kib().unwrap();
        let growth = after.saturating_sub(before);
        let decoded_mb = frames as f64 * 2.0 * 4.0 / 1e6;
        eprintln!(
            "{what}: {file_mb:.1} MB file, {frames} frames ({decoded_mb:.0} MB as f32) in \
             {chunks} chunks of at most {largest} frames, {:.1} s; VmHWM {before} -> {after} KiB \
             (+{growth} KiB)",
            t.elapsed().as_secs_f64()
        );
        assert_eq!(frames, MINUTES * 60 * RATE as u64, "{what}");
        assert_eq!(largest, RATE as usize, "{what}: chunks are 1 s");
        assert!(
            growth < MAX_GROWTH_KIB,
            "{what}: peak memory grew by {growth} KiB while streaming"
        );
    }
}
