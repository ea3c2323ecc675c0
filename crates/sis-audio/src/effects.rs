//! Speech synthesis's `speed`, `pitch` and `volume` as audio effects on mono
//! float samples, and the SIS curves that map the request's integers to them.
//!
//! The curves (SIS TTS: `speed` and `pitch` in [-500, 500], default 0;
//! `volume` in [0, 100], default 50):
//!
//! | parameter | factor | -500 / 0 | 0 / 50 | 500 / 100 |
//! | --- | --- | --- | --- | --- |
//! | `speed` | tempo 2^(speed/500) ([`speed_factor`]) | 0.5× | 1× | 2× |
//! | `pitch` | frequency 2^(pitch/1000) ([`pitch_factor`]) | −6 semitones | 0 | +6 semitones |
//! | `volume` | amplitude volume/50 ([`volume_gain`]) | 0 (silence) | 1 (0 dB) | 2 (+6 dB) |
//!
//! Tempo changes keep the pitch: they go through the `wsola` crate
//! (waveform-similarity overlap-add, a time-domain method made for speech,
//! MIT, pure Rust). Pitch changes keep the duration: a tempo change by the
//! inverse factor, then the crate's rubato resampler ([`crate::resample`])
//! back to the original length. Gain never clips: the peak is limited to
//! [`PEAK_LIMIT`].
//!
//! Every function here is total: empty input gives empty output, samples
//! that are not finite count as silence, factors out of range are clamped
//! and factors that are not numbers mean "unchanged". Nothing panics on any
//! input.

use std::num::{NonZeroU16, NonZeroU32};

use sis_core::Pcm;

/// The slowest and fastest tempo [`change_tempo`] applies.
pub const MIN_TEMPO: f64 = 0.25;
/// See [`MIN_TEMPO`].
pub const MAX_TEMPO: f64 = 4.0;
/// The lowest and highest frequency factor [`change_pitch`] applies (one
/// octave either way).
pub const MIN_PITCH: f64 = 0.5;
/// See [`MIN_PITCH`].
pub const MAX_PITCH: f64 = 2.0;
/// The largest absolute sample [`apply_gain`] leaves (full scale is 1.0).
pub const PEAK_LIMIT: f64 = 0.98;

/// WSOLA synthesis hop (half the Hann frame) and similarity-search half
/// range. 15 ms / 12 ms: the frame (30 ms) spans several pitch periods of
/// any voice and the search covers a full period down to 83 Hz.
const HOP_MS: f32 = 15.0;
const SEARCH_MS: f32 = 12.0;
/// The window geometry is computed at a rate in this range, so that a
/// nonsense rate (0, or billions) cannot ask for empty or huge frames.
const GEOMETRY_RATES: (u32, u32) = (1_000, 192_000);

/// The tempo multiplier of the SIS `speed`: 2^(speed/500), so -500 is half
/// speed (0.5), 0 unchanged (1.0) and 500 double speed (2.0); each 100 is
/// about 15 %. `speed` is clamped to [-500, 500] first.
pub fn speed_factor(speed: i32) -> f64 {
    2f64.powf(f64::from(speed.clamp(-500, 500)) / 500.0)
}

/// The frequency multiplier of the SIS `pitch`: 2^(pitch/1000), so ±500 is
/// a factor of 2^±0.5 (±6 semitones, half an octave), 0 unchanged and each
/// 100 about 1.2 semitones. `pitch` is clamped to [-500, 500] first.
pub fn pitch_factor(pitch: i32) -> f64 {
    2f64.powf(f64::from(pitch.clamp(-500, 500)) / 1000.0)
}

/// The linear amplitude gain of the SIS `volume`: volume/50, so 50 (the
/// default) is 1.0 (0 dB), 100 is 2.0 (+6 dB) and 0 is 0.0 (silence).
/// Values above 100 count as 100. [`apply_gain`] limits the result by the
/// peak, so loud input does not reach the full +6 dB at high volumes.
pub fn volume_gain(volume: u8) -> f64 {
    f64::from(volume.min(100)) / 50.0
}

/// A finite factor clamped to `[lo, hi]`; 1.0 for NaN (no change).
fn clamp_factor(factor: f64, lo: f64, hi: f64) -> f64 {
    if factor.is_nan() {
        1.0
    } else {
        factor.clamp(lo, hi)
    }
}

/// The input with samples that are not finite replaced by silence.
fn cleaned(samples: &[f32]) -> Vec<f32> {
    samples.iter().map(|&x| crate::finite(x)).collect()
}

/// Changes the tempo by `factor` (2.0: twice as fast, half as long) without
/// changing the pitch, by WSOLA (the `wsola` crate). The output has
/// `round(len / factor)` samples (at least one for non-empty input), aligned
/// with the input: what was at time t is at about t / factor.
///
/// `factor` is clamped to [[`MIN_TEMPO`], [`MAX_TEMPO`]]; NaN means 1.0.
/// At exactly 1.0 the output is a copy of the input. `rate` only sets the
/// window lengths (computed as if it were within 1 kHz ..= 192 kHz).
/// Samples that are not finite count as silence.
pub fn change_tempo(samples: &[f32], rate: u32, factor: f64) -> Vec<f32> {
    let factor = clamp_factor(factor, MIN_TEMPO, MAX_TEMPO);
    let input = cleaned(samples);
    if factor == 1.0 || input.is_empty() {
        return input;
    }
    let want = ((input.len() as f64 / factor).round() as usize).max(1);
    let geometry_rate = rate.clamp(GEOMETRY_RATES.0, GEOMETRY_RATES.1);
    let ms = |ms: f32| ((geometry_rate as f32 * ms / 1000.0).round() as usize).max(1);
    let (hop, search) = (ms(HOP_MS), ms(SEARCH_MS));
    let frame = 2 * hop;

    // A frame of silence in front takes the window's fade-in, so the first
    // samples keep their level; silence behind lets the last frames be placed.
    let lead = frame;
    let tail = 2 * (frame + search);
    let mut padded = Vec::with_capacity(lead + input.len() + tail);
    padded.resize(lead, 0.0);
    padded.extend_from_slice(&input);
    padded.resize(lead + input.len() + tail, 0.0);

    let (Some(sr), Some(mono)) = (NonZeroU32::new(geometry_rate), NonZeroU16::new(1)) else {
        return input;
    };
    let config = wsola::Config {
        hop_ms: HOP_MS,
        search_ms: SEARCH_MS,
    };
    let Ok(mut stretcher) = wsola::TimeStretch::with_config(sr, mono, config) else {
        return input;
    };
    stretcher.set_tempo(factor as f32);
    stretcher.push(&padded);
    stretcher.set_draining();

    let skip = (lead as f64 / factor).round() as usize;
    let needed = skip + want;
    let mut out: Vec<f32> = Vec::with_capacity(needed + frame);
    let mut block = vec![0f32; stretcher.min_output_buff_size() * 16];
    while out.len() < needed {
        match stretcher.pull(&mut block) {
            Ok(n) if n > 0 => out.extend_from_slice(&block[..n.min(block.len())]),
            _ => break,
        }
    }
    out.resize(needed.max(out.len()), 0.0);
    out.drain(..skip);
    out.truncate(want);
    for x in &mut out {
        *x = crate::finite(*x);
    }
    out
}

/// Changes the pitch by `factor` (2.0: an octave up) without changing the
/// duration: a tempo change by 1/`factor` ([`change_tempo`], which keeps the
/// pitch and makes the audio `factor` times as long), then the crate's
/// resampler ([`crate::resample`]) shrinks it back to the input's length,
/// which raises every frequency by `factor`. The output has exactly as many
/// samples as the input.
///
/// `factor` is clamped to [[`MIN_PITCH`], [`MAX_PITCH`]]; NaN means 1.0.
/// At exactly 1.0 the output is a copy of the input. Samples that are not
/// finite count as silence.
pub fn change_pitch(samples: &[f32], rate: u32, factor: f64) -> Vec<f32> {
    let factor = clamp_factor(factor, MIN_PITCH, MAX_PITCH);
    if factor == 1.0 || samples.is_empty() {
        return cleaned(samples);
    }
    let stretched = change_tempo(samples, rate, 1.0 / factor);
    // The resampler takes whole rates: the ratio factor : 1 as a ratio of
    // rates with a denominator of 1000 (error under 0.05 %), which keeps the
    // resampler's FFTs short whatever the factor.
    let from = (factor * 1000.0).round() as u32;
    let mut out = crate::resample(
        &Pcm {
            samples: stretched,
            sample_rate: from,
        },
        1000,
    )
    .samples;
    out.resize(samples.len(), 0.0);
    for x in &mut out {
        *x = crate::finite(*x);
    }
    out
}

/// Multiplies `samples` by `gain` without clipping: if the loudest sample
/// times `gain` would exceed [`PEAK_LIMIT`] (0.98 of full scale), the gain
/// becomes whatever puts that sample at exactly 0.98 instead. So above that
/// point the volume is limited by the peak: louder settings no longer make
/// the audio louder, and input already above 0.98 is brought down to it even
/// at a gain of 1.0.
///
/// `gain` below 0 counts as 0 (silence), NaN as 1.0, +∞ as "as loud as the
/// peak allows". Samples that are not finite become silence first.
pub fn apply_gain(samples: &mut [f32], gain: f64) {
    let gain = if gain.is_nan() { 1.0 } else { gain.max(0.0) };
    let mut peak = 0f64;
    for x in samples.iter_mut() {
        *x = crate::finite(*x);
        peak = peak.max(f64::from(x.abs()));
    }
    if peak == 0.0 {
        return;
    }
    let gain = gain.min(PEAK_LIMIT / peak);
    for x in samples.iter_mut() {
        *x = (f64::from(*x) * gain) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves() {
        assert_eq!(speed_factor(0), 1.0);
        assert_eq!(speed_factor(-500), 0.5);
        assert_eq!(speed_factor(500), 2.0);
        assert_eq!(speed_factor(i32::MAX), 2.0);
        assert_eq!(speed_factor(i32::MIN), 0.5);
        assert!((speed_factor(250) - 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(pitch_factor(0), 1.0);
        assert!((pitch_factor(500) - 2f64.sqrt()).abs() < 1e-12);
        assert!((pitch_factor(-500) - 1.0 / 2f64.sqrt()).abs() < 1e-12);
        // ±500 is ±6 semitones
        assert!((12.0 * pitch_factor(500).log2() - 6.0).abs() < 1e-9);
        assert_eq!(pitch_factor(9999), pitch_factor(500));
        assert_eq!(volume_gain(50), 1.0);
        assert_eq!(volume_gain(100), 2.0);
        assert_eq!(volume_gain(0), 0.0);
        assert_eq!(volume_gain(25), 0.5);
        assert_eq!(volume_gain(255), 2.0);
    }

    #[test]
    fn unity_is_a_copy() {
        let x: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.37).sin() * 0.8).collect();
        assert_eq!(change_tempo(&x, 16_000, 1.0), x);
        assert_eq!(change_pitch(&x, 16_000, 1.0), x);
        assert_eq!(change_tempo(&x, 16_000, f64::NAN), x);
        let mut y = x.clone();
        apply_gain(&mut y, 1.0);
        assert_eq!(y, x);
    }

    #[test]
    fn gain_limits_the_peak() {
        let mut x = vec![0.5, -0.7, 0.1];
        apply_gain(&mut x, 2.0);
        assert!((x[1] + 0.98).abs() < 1e-6, "{x:?}");
        assert!((x[0] - 0.7).abs() < 1e-6, "{x:?}");
        let mut y = vec![0.25, f32::NAN, f32::INFINITY];
        apply_gain(&mut y, 2.0);
        assert_eq!(y, vec![0.5, 0.0, 0.0]);
        let mut z = vec![0.25, -0.5];
        apply_gain(&mut z, f64::INFINITY);
        assert_eq!(z, vec![0.49, -0.98]);
        apply_gain(&mut z, -3.0);
        assert_eq!(z, vec![0.0, 0.0]);
    }
}
