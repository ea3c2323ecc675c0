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

/// Sample-rate conversion of a stream that arrives in pieces: memory does not
/// grow with the stream's length. Output equals [`resample`] of the whole.
pub struct StreamResampler {
    r: Option<FftFixedIn<f32>>,
    from: u32,
    to: u32,
    pending: Vec<f32>,
    /// Output samples still to drop (the resampler's delay).
    skip: usize,
    consumed: u64,
    produced: u64,
}

impl StreamResampler {
    pub fn new(from: u32, to: u32) -> StreamResampler {
        let r = if from == to || from == 0 || to == 0 {
            None
        } else {
            FftFixedIn::<f32>::new(from as usize, to as usize, CHUNK, 2, 1).ok()
        };
        let skip = r.as_ref().map_or(0, |r| r.output_delay());
        StreamResampler {
            r,
            from,
            to,
            pending: Vec::new(),
            skip,
            consumed: 0,
            produced: 0,
        }
    }

    fn run(&mut self, block: &[f32], out: &mut Vec<f32>) {
        let Some(r) = self.r.as_mut() else { return };
        if let Ok(o) = r.process(&[block], None) {
            let o = &o[0];
            let drop = self.skip.min(o.len());
            self.skip -= drop;
            self.produced += (o.len() - drop) as u64;
            out.extend_from_slice(&o[drop..]);
        }
    }

    /// Converts `input`, appending what is ready to `out`.
    pub fn push(&mut self, input: &[f32], out: &mut Vec<f32>) {
        self.consumed += input.len() as u64;
        if self.r.is_none() {
            out.extend_from_slice(input);
            return;
        }
        self.pending.extend_from_slice(input);
        let whole = self.pending.len() / CHUNK * CHUNK;
        let blocks: Vec<f32> = self.pending.drain(..whole).collect();
        for b in blocks.chunks(CHUNK) {
            self.run(b, out);
        }
    }

    /// Flushes the rest: in total, `out` gets the input's duration at the new rate.
    pub fn finish(&mut self, out: &mut Vec<f32>) {
        if self.r.is_none() {
            return;
        }
        let want = (self.consumed * self.to as u64 / self.from as u64) as usize;
        let start = out.len();
        let mut guard = 0;
        while (self.produced as usize) < want && guard < 64 {
            let mut block = std::mem::take(&mut self.pending);
            block.resize(CHUNK, 0.0);
            self.run(&block, out);
            guard += 1;
        }
        let excess = (self.produced as usize).saturating_sub(want);
        out.truncate(out.len().saturating_sub(excess).max(start));
        self.produced -= excess as u64;
    }
}

#[cfg(test)]
mod stream_tests {
    use super::*;

    #[test]
    fn stream_equals_whole() {
        let samples: Vec<f32> = (0..44_100 * 2)
            .map(|i| (i as f32 * 440.0 * std::f32::consts::TAU / 44_100.0).sin() * 0.5)
            .collect();
        let whole = resample(
            &Pcm {
                samples: samples.clone(),
                sample_rate: 44_100,
            },
            16_000,
        );
        let mut r = StreamResampler::new(44_100, 16_000);
        let mut out = Vec::new();
        for piece in samples.chunks(3001) {
            r.push(piece, &mut out);
        }
        r.finish(&mut out);
        assert_eq!(out.len(), whole.samples.len());
        let diff = out
            .iter()
            .zip(&whole.samples)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff < 1e-4, "max difference {diff}");
        let mut same = StreamResampler::new(16_000, 16_000);
        let mut o = Vec::new();
        same.push(&[0.5; 10], &mut o);
        same.finish(&mut o);
        assert_eq!(o, vec![0.5; 10]);
    }
}
