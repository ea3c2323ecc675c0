//! Sample-rate conversion (rubato, FFT based), used where a pack's model rate
//! differs from the audio's (an 8 kHz property served by a 16 kHz model).

use rubato::{FftFixedIn, Resampler};
use sis_core::Pcm;

const CHUNK: usize = 1024;

/// Returns `pcm` at `to` Hz with the same duration.
pub fn resample(pcm: &Pcm, to: u32) -> Pcm {
    if pcm.sample_rate == to || pcm.samples.is_empty() {
        return Pcm {
            samples: pcm.samples.clone(),
            sample_rate: to,
        };
    }
    let want = (pcm.samples.len() as u64 * to as u64 / pcm.sample_rate as u64) as usize;
    let Ok(mut r) = FftFixedIn::<f32>::new(pcm.sample_rate as usize, to as usize, CHUNK, 2, 1)
    else {
        return linear(pcm, to, want);
    };
    let delay = r.output_delay();
    let mut out: Vec<f32> = Vec::with_capacity(want + delay + CHUNK * 2);
    let mut input = pcm.samples.as_slice();
    let mut block = vec![0f32; CHUNK];
    // Feed whole chunks, then zero-padded chunks until the delayed tail is out.
    while out.len() < want + delay {
        let n = input.len().min(CHUNK);
        block[..n].copy_from_slice(&input[..n]);
        block[n..].fill(0.0);
        input = &input[n..];
        match r.process(&[&block[..]], None) {
            Ok(mut o) => out.append(&mut o[0]),
            Err(_) => return linear(pcm, to, want),
        }
    }
    let samples = out[delay..delay + want].to_vec();
    Pcm {
        samples,
        sample_rate: to,
    }
}

/// Fallback that cannot fail.
fn linear(pcm: &Pcm, to: u32, want: usize) -> Pcm {
    let step = pcm.sample_rate as f64 / to as f64;
    let last = pcm.samples.len() - 1;
    let samples = (0..want)
        .map(|i| {
            let t = i as f64 * step;
            let k = (t as usize).min(last);
            let f = (t - k as f64) as f32;
            let b = pcm.samples[(k + 1).min(last)];
            pcm.samples[k] * (1.0 - f) + b * f
        })
        .collect();
    Pcm {
        samples,
        sample_rate: to,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_duration_and_frequency() {
        // 440 Hz tone at 8 kHz, 1.3 s
        let n = 10400;
        let x: Vec<f32> = (0..n)
            .map(|i| (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 8000.0).sin() * 0.5)
            .collect();
        let y = resample(
            &Pcm {
                samples: x,
                sample_rate: 8000,
            },
            16000,
        );
        assert_eq!(y.samples.len(), 20800);
        // zero crossings: 440 Hz over 1.3 s ≈ 1144 crossings
        let zc = y
            .samples
            .windows(2)
            .filter(|w| w[0] < 0.0 && w[1] >= 0.0)
            .count();
        assert!((566..=578).contains(&zc), "{zc}");
        // aligned: compare with the ideal tone in the middle
        let mid = 10000;
        let ideal = (2.0 * std::f32::consts::PI * 440.0 * mid as f32 / 16000.0).sin() * 0.5;
        assert!(
            (y.samples[mid] - ideal).abs() < 0.02,
            "{} vs {ideal}",
            y.samples[mid]
        );
    }
}
