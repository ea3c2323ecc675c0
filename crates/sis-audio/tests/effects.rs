//! Speech synthesis's effects and MP3 encoder, measured: duration follows
//! `speed`, F0 follows `pitch` (and not `speed`), RMS follows `volume`
//! without clipping, and MP3 comes back through the crate's own decoder.
//! Inputs: a synthetic voiced signal (a harmonic series whose F0 glides
//! between 120 and 220 Hz) and, when espeak-ng is installed, real (synthetic)
//! Mandarin speech. Run with `--nocapture` to see the figures.
#![allow(clippy::unwrap_used)]

use std::f64::consts::TAU;
use std::path::Path;

use sis_audio::effects::{
    apply_gain, change_pitch, change_tempo, pitch_factor, speed_factor, volume_gain, PEAK_LIMIT,
};
use sis_audio::stream::{self, FileFormat, StreamLimits};
use sis_audio::{decode, encode_mp3, resample, DecodeLimits, EncodeError};
use sis_core::{AudioFormat, Pcm};

const SPEEDS: [i32; 5] = [-500, -250, 0, 250, 500];
const PITCHES: [i32; 4] = [-500, -250, 250, 500];

/// `secs` of a voiced sound at `rate`: harmonics (amplitude 1/k, below
/// 0.45 × rate) of an F0 that glides as 170 + 50·sin(2π·0.4·t) Hz, with a
/// quarter second of silence at each end; scaled to the peak `amp`.
fn voiced(rate: u32, secs: f64, amp: f64) -> Vec<f32> {
    let n = (rate as f64 * secs) as usize;
    let edge = rate as usize / 4;
    let mut phase = 0f64;
    let mut x: Vec<f64> = (0..n)
        .map(|i| {
            let t = i as f64 / rate as f64;
            let f0 = 170.0 + 50.0 * (TAU * 0.4 * t).sin();
            phase += TAU * f0 / rate as f64;
            if i < edge || i >= n - edge {
                return 0.0;
            }
            (1..=40)
                .take_while(|&k| f0 * k as f64 <= 0.45 * rate as f64)
                .map(|k| (k as f64 * phase).sin() / k as f64)
                .sum()
        })
        .collect();
    let peak = x.iter().fold(0f64, |m, v| m.max(v.abs()));
    for v in &mut x {
        *v *= amp / peak;
    }
    x.into_iter().map(|v| v as f32).collect()
}

/// Mandarin from espeak-ng, decoded by the crate and resampled to 16 kHz;
/// `None` (the caller skips) when espeak-ng cannot be run.
fn speech(dir: &Path) -> Option<Vec<f32>> {
    let wav = dir.join("speech.wav");
    let ok = std::process::Command::new("espeak-ng")
        .args(["-v", "cmn-Latn-pinyin", "-w"])
        .arg(&wav)
        .arg("ni3 hao3, jin1 tian1 tian1 qi4 hen3 hao3, wo3 men5 qu4 gong1 yuan2 ba5")
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIPPED (speech): espeak-ng cannot be run");
        return None;
    }
    let mut s = stream::open(&wav, FileFormat::Auto, StreamLimits::default()).unwrap();
    let rate = s.sample_rate();
    let mut samples = Vec::new();
    while let Some(chunk) = s.next_chunk().unwrap() {
        samples.extend(chunk.to_mono());
    }
    let pcm = Pcm {
        samples,
        sample_rate: rate,
    };
    Some(resample(&pcm, 16_000).samples)
}

const HOP_MS: usize = 20;

/// F0 per 20 ms (40 ms window) by normalized autocorrelation, `None` where
/// the frame is unvoiced (quiet, or no clear period). The period is the
/// shortest lag whose peak is within 90 % of the best one, which keeps
/// octave errors out; parabolic interpolation refines it.
fn f0_track(x: &[f32], rate: u32) -> Vec<Option<f64>> {
    let rate_us = rate as usize;
    let (frame, hop) = (rate_us * 40 / 1000, rate_us * HOP_MS / 1000);
    let (lo, hi) = (rate_us / 500, rate_us / 50);
    let x: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    // energy of x[a..a + frame] from prefix sums of squares
    let mut squares = vec![0f64; x.len() + 1];
    for (i, v) in x.iter().enumerate() {
        squares[i + 1] = squares[i] + v * v;
    }
    let energy = |a: usize| squares[a + frame] - squares[a];
    let loudest = (0..x.len().saturating_sub(frame))
        .step_by(hop)
        .map(energy)
        .fold(0f64, f64::max);
    let mut track = Vec::new();
    let mut r = vec![0f64; hi + 2];
    let mut s = 0;
    while s + frame + hi < x.len() {
        let ea = energy(s);
        if ea < 0.01 * loudest || ea == 0.0 {
            track.push(None);
            s += hop;
            continue;
        }
        let a = &x[s..s + frame];
        for lag in lo - 1..=hi + 1 {
            let b = &x[s + lag..s + lag + frame];
            let mut dot = 0.0;
            for i in 0..frame {
                dot += a[i] * b[i];
            }
            r[lag] = dot / (ea * energy(s + lag)).sqrt().max(1e-12);
        }
        s += hop;
        let peaks: Vec<usize> = (lo..=hi)
            .filter(|&l| r[l] >= r[l - 1] && r[l] >= r[l + 1])
            .collect();
        let best = peaks.iter().map(|&l| r[l]).fold(0f64, f64::max);
        if best < 0.7 {
            track.push(None);
            continue;
        }
        let l = peaks.into_iter().find(|&l| r[l] >= 0.9 * best).unwrap();
        let (y0, y1, y2) = (r[l - 1], r[l], r[l + 1]);
        let den = y0 - 2.0 * y1 + y2;
        let d = if den.abs() > 1e-12 {
            0.5 * (y0 - y2) / den
        } else {
            0.0
        };
        track.push(Some(rate as f64 / (l as f64 + d)));
    }
    track
}

fn median(mut v: Vec<f64>) -> f64 {
    assert!(!v.is_empty(), "no voiced frame to compare");
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The median over voiced frames of F0(output frame j) / F0(input frame at
/// the same moment of the content), where output time t is input time
/// t × `time_scale`; and how many frames were compared.
fn f0_ratio(input: &[f32], output: &[f32], rate: u32, time_scale: f64) -> (f64, usize) {
    let (a, b) = (f0_track(input, rate), f0_track(output, rate));
    let ratios: Vec<f64> = b
        .iter()
        .enumerate()
        .filter_map(|(j, fb)| {
            let i = (j as f64 * time_scale).round() as usize;
            Some(fb.as_ref()? / a.get(i)?.as_ref()?)
        })
        .collect();
    let n = ratios.len();
    (median(ratios), n)
}

/// Samples between the first and the last 5 ms frame whose RMS is above a
/// tenth of the loudest frame's: the length of the sound itself.
fn active_span(x: &[f32], rate: u32) -> usize {
    let hop = rate as usize * 5 / 1000;
    let rms: Vec<f64> = x.chunks(hop).map(rms).collect();
    let top = rms.iter().cloned().fold(0f64, f64::max);
    let first = rms.iter().position(|&r| r > 0.1 * top).unwrap();
    let last = rms.iter().rposition(|&r| r > 0.1 * top).unwrap();
    (last + 1 - first) * hop
}

fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

fn peak(x: &[f32]) -> f32 {
    x.iter().fold(0f32, |m, v| m.max(v.abs()))
}

fn rel(a: f64, b: f64) -> f64 {
    a / b - 1.0
}

#[test]
fn duration_follows_speed() {
    for rate in [8_000, 16_000, 48_000] {
        let x = voiced(rate, 3.0, 0.5);
        let span_in = active_span(&x, rate) as f64;
        for speed in SPEEDS {
            let f = speed_factor(speed);
            let y = change_tempo(&x, rate, f);
            let len_err = rel(y.len() as f64, x.len() as f64 / f);
            let span_err = rel(active_span(&y, rate) as f64, span_in / f);
            println!(
                "duration {rate} Hz speed {speed:+4}: length {:+.2} %, sound {:+.2} %",
                len_err * 100.0,
                span_err * 100.0
            );
            assert!(len_err.abs() < 0.03, "{rate} Hz speed {speed}: {len_err}");
            assert!(span_err.abs() < 0.03, "{rate} Hz speed {speed}: {span_err}");
            assert!(peak(&y) <= 1.0);
        }
    }
}

#[test]
fn speed_keeps_f0() {
    for rate in [8_000, 16_000] {
        let x = voiced(rate, 3.0, 0.5);
        for speed in SPEEDS {
            let f = speed_factor(speed);
            let y = change_tempo(&x, rate, f);
            let (ratio, n) = f0_ratio(&x, &y, rate, f);
            println!(
                "speed F0 {rate} Hz speed {speed:+4}: F0 {:+.2} % ({n} frames)",
                rel(ratio, 1.0) * 100.0
            );
            assert!(n > 50, "{n} voiced frames");
            assert!(rel(ratio, 1.0).abs() < 0.03, "speed {speed}: {ratio}");
        }
    }
}

#[test]
fn f0_follows_pitch() {
    for rate in [8_000, 16_000] {
        let x = voiced(rate, 3.0, 0.5);
        for pitch in PITCHES {
            let f = pitch_factor(pitch);
            let y = change_pitch(&x, rate, f);
            assert_eq!(y.len(), x.len());
            let span_err = rel(active_span(&y, rate) as f64, active_span(&x, rate) as f64);
            let (ratio, n) = f0_ratio(&x, &y, rate, 1.0);
            let err = rel(ratio, f);
            println!(
                "pitch {rate} Hz pitch {pitch:+4}: F0 {:+.2} % of x{f:.3} ({n} frames), sound {:+.2} %",
                err * 100.0,
                span_err * 100.0
            );
            assert!(n > 50, "{n} voiced frames");
            assert!(err.abs() < 0.05, "pitch {pitch}: {ratio} for {f}");
            assert!(span_err.abs() < 0.01, "pitch {pitch}: {span_err}");
        }
    }
}

#[test]
fn speech_speed_and_pitch() {
    let dir = tempfile::tempdir().unwrap();
    let Some(x) = speech(dir.path()) else { return };
    let rate = 16_000;
    for speed in SPEEDS {
        let f = speed_factor(speed);
        let y = change_tempo(&x, rate, f);
        let len_err = rel(y.len() as f64, x.len() as f64 / f);
        let span_err = rel(
            active_span(&y, rate) as f64,
            active_span(&x, rate) as f64 / f,
        );
        let (ratio, n) = f0_ratio(&x, &y, rate, f);
        println!(
            "speech speed {speed:+4}: length {:+.2} %, sound {:+.2} %, F0 {:+.2} % ({n} frames)",
            len_err * 100.0,
            span_err * 100.0,
            rel(ratio, 1.0) * 100.0
        );
        assert!(
            len_err.abs() < 0.03 && span_err.abs() < 0.03,
            "speed {speed}"
        );
        assert!(rel(ratio, 1.0).abs() < 0.03, "speed {speed}: {ratio}");
    }
    for pitch in PITCHES {
        let f = pitch_factor(pitch);
        let y = change_pitch(&x, rate, f);
        assert_eq!(y.len(), x.len());
        let (ratio, n) = f0_ratio(&x, &y, rate, 1.0);
        println!(
            "speech pitch {pitch:+4}: F0 {:+.2} % of x{f:.3} ({n} frames)",
            rel(ratio, f) * 100.0
        );
        assert!(n > 30, "{n} voiced frames");
        assert!(rel(ratio, f).abs() < 0.05, "pitch {pitch}: {ratio} for {f}");
    }
}

#[test]
fn rms_follows_volume_without_clipping() {
    let quiet = voiced(16_000, 3.0, 0.3);
    for volume in [0u8, 10, 25, 50, 75, 100] {
        let g = volume_gain(volume);
        let mut y = quiet.clone();
        apply_gain(&mut y, g);
        let got = rms(&y) / rms(&quiet);
        println!("volume {volume:3}: RMS x{got:.4}, want x{g:.4}");
        if g == 0.0 {
            assert_eq!(got, 0.0);
        } else {
            assert!(rel(got, g).abs() < 0.02, "volume {volume}: {got} for {g}");
        }
        assert!(peak(&y) < 1.0);
    }
    // A loud input: volume 100 would double a 0.8 peak; the peak limit holds
    // it at 0.98, so the RMS grows by 0.98 / 0.8 only.
    let loud = voiced(16_000, 3.0, 0.8);
    let mut y = loud.clone();
    apply_gain(&mut y, volume_gain(100));
    let got = rms(&y) / rms(&loud);
    println!(
        "volume 100 on a 0.8 peak: peak {:.4}, RMS x{got:.4} (limited)",
        peak(&y)
    );
    assert!((f64::from(peak(&y)) - PEAK_LIMIT).abs() < 1e-6);
    assert!(rel(got, PEAK_LIMIT / 0.8).abs() < 0.02);
    // below the limit, the full gain
    let mut y = loud.clone();
    apply_gain(&mut y, volume_gain(60));
    assert!(rel(rms(&y) / rms(&loud), 1.2).abs() < 0.02);
    // after every effect, still no clipping
    for (speed, pitch) in [(500, 500), (-500, -500), (0, 500)] {
        let mut y = change_pitch(
            &change_tempo(&loud, 16_000, speed_factor(speed)),
            16_000,
            pitch_factor(pitch),
        );
        apply_gain(&mut y, volume_gain(100));
        assert!(f64::from(peak(&y)) <= PEAK_LIMIT + 1e-6, "{}", peak(&y));
    }
}

/// Normalized cross-correlation at the best lag within ±`max_lag`.
fn best_correlation(x: &[f32], y: &[f32], max_lag: usize) -> (f64, isize) {
    let mut best = (f64::MIN, 0isize);
    for lag in -(max_lag as isize)..=max_lag as isize {
        let (a, b) = if lag >= 0 {
            (x, &y[lag as usize..])
        } else {
            (&x[(-lag) as usize..], y)
        };
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        let dot: f64 = a
            .iter()
            .zip(b)
            .map(|(p, q)| f64::from(*p) * f64::from(*q))
            .sum();
        let c = dot / (rms(a) * rms(b) * n as f64).max(1e-12);
        if c > best.0 {
            best = (c, lag);
        }
    }
    best
}

#[test]
fn mp3_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    for rate in [
        8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000,
    ] {
        let x = voiced(rate, 2.0, 0.5);
        let pcm: Vec<i16> = x.iter().map(|v| (v * 32767.0) as i16).collect();
        let mp3 = encode_mp3(&pcm, rate).unwrap();
        let (got_rate, y) = if rate == 8_000 || rate == 16_000 {
            let p = decode(AudioFormat::Mp3, &mp3, DecodeLimits { max_ms: 60_000 }).unwrap();
            (p.sample_rate, p.samples)
        } else {
            let path = dir.path().join(format!("{rate}.mp3"));
            std::fs::write(&path, &mp3).unwrap();
            let mut s = stream::open(&path, FileFormat::Auto, StreamLimits::default()).unwrap();
            let mut y = Vec::new();
            while let Some(c) = s.next_chunk().unwrap() {
                y.extend(c.to_mono());
            }
            (s.sample_rate(), y)
        };
        let len_err = rel(y.len() as f64, x.len() as f64);
        let (corr, lag) = best_correlation(&x, &y, 64);
        println!(
            "mp3 {rate} Hz: {} bytes, length {:+.2} %, correlation {corr:.4} at lag {lag}",
            mp3.len(),
            len_err * 100.0
        );
        assert_eq!(got_rate, rate);
        assert!(len_err.abs() < 0.05, "{rate} Hz: {len_err}");
        // LAME's Info tag states the delay and padding, and the decoder
        // trims them: not only within 5 %, exact
        assert_eq!(y.len(), x.len(), "{rate} Hz");
        assert!(corr > 0.9, "{rate} Hz: {corr}");
    }
}

#[test]
fn mp3_parallel_encodes_match_serial() {
    let pcm: Vec<i16> = voiced(16_000, 1.0, 0.5)
        .iter()
        .map(|v| (v * 32767.0) as i16)
        .collect();
    let serial = encode_mp3(&pcm, 16_000).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let pcm = pcm.clone();
            std::thread::spawn(move || {
                (0..5)
                    .map(|_| encode_mp3(&pcm, 16_000).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for t in threads {
        for mp3 in t.join().unwrap() {
            assert!(mp3 == serial, "a parallel encode differs");
        }
    }
}

#[test]
fn mp3_edges() {
    assert_eq!(encode_mp3(&[], 16_000), Err(EncodeError::Empty));
    for rate in [0, 1, 7_999, 96_000, u32::MAX] {
        assert_eq!(
            encode_mp3(&[1, 2, 3], rate),
            Err(EncodeError::UnsupportedRate(rate))
        );
    }
    for n in [1, 575, 576, 577, 1152, 20_000] {
        let extreme: Vec<i16> = (0..n)
            .map(|i| if i % 2 == 0 { i16::MAX } else { i16::MIN })
            .collect();
        let mp3 = encode_mp3(&extreme, 8_000).unwrap();
        assert!(!mp3.is_empty());
        let p = decode(AudioFormat::Mp3, &mp3, DecodeLimits { max_ms: 60_000 });
        // a single sample may decode to nothing at all; never to an error
        // other than that
        match p {
            Ok(p) => assert!(p.samples.len() <= n + 1152, "{n}: {}", p.samples.len()),
            Err(e) => assert_eq!(e, sis_audio::AudioError::Empty, "{n}"),
        }
    }
}

#[test]
fn edge_inputs_never_panic() {
    let weird = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e30, -1e30, 0.5];
    let inputs: Vec<Vec<f32>> = vec![
        vec![],
        vec![0.3],
        vec![f32::NAN],
        weird.to_vec(),
        weird.iter().cycle().take(5_000).cloned().collect(),
        vec![0.0; 10],
        voiced(8_000, 0.05, 0.5),
    ];
    let factors = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -1.0,
        0.0,
        1e-9,
        0.25,
        0.5,
        1.0,
        2.0,
        4.0,
        1e9,
    ];
    for x in &inputs {
        for rate in [0, 1, 8_000] {
            for &f in &factors {
                let t = change_tempo(x, rate, f);
                let p = change_pitch(x, rate, f);
                assert!(t.iter().chain(&p).all(|v| v.is_finite()));
                assert_eq!(p.len(), x.len());
                if x.is_empty() {
                    assert!(t.is_empty());
                } else {
                    let clamped = if f.is_nan() { 1.0 } else { f.clamp(0.25, 4.0) };
                    let want = ((x.len() as f64 / clamped).round() as usize).max(1);
                    assert_eq!(t.len(), want, "len {} factor {f}", x.len());
                }
            }
            let mut g = x.clone();
            for gain in [f64::NAN, f64::INFINITY, -1.0, 0.0, 2.0, 1e300] {
                apply_gain(&mut g, gain);
                assert!(g.iter().all(|v| v.is_finite() && v.abs() <= 1.0));
            }
        }
    }
    // a nonsense rate changes only the window lengths
    let x = voiced(16_000, 0.5, 0.5);
    for rate in [0, u32::MAX] {
        assert_eq!(change_tempo(&x, rate, 2.0).len(), 4_000);
        assert_eq!(change_tempo(&x, rate, 0.25).len(), 32_000);
        assert_eq!(change_pitch(&x, rate, 2.0).len(), 8_000);
    }
}
