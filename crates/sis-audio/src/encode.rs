//! Encoders for speech synthesis's output: WAV and headerless 16-bit PCM
//! ([`encode_wav`], [`encode_pcm16`] of samples made by [`to_i16`]), and MP3
//! through LAME ([`encode_mp3`]).
//!
//! LAME is LGPL, so it is never compiled into our binaries: `build.rs`
//! links the system's shared `libmp3lame` (Debian: `libmp3lame-dev` to
//! build, `libmp3lame0` to run) and the declarations below are ours. Only
//! the handful of LAME calls this module needs are declared.

use std::os::raw::{c_int, c_void};
use std::sync::Mutex;

mod ffi {
    use std::os::raw::{c_int, c_short, c_uchar, c_void};
    extern "C" {
        pub fn lame_init() -> *mut c_void;
        pub fn lame_close(gfp: *mut c_void) -> c_int;
        pub fn lame_set_num_channels(gfp: *mut c_void, channels: c_int) -> c_int;
        pub fn lame_set_in_samplerate(gfp: *mut c_void, rate: c_int) -> c_int;
        pub fn lame_set_out_samplerate(gfp: *mut c_void, rate: c_int) -> c_int;
        /// `MPEG_mode`, an enum of C `int` size; 3 is `MONO`.
        pub fn lame_set_mode(gfp: *mut c_void, mode: c_int) -> c_int;
        pub fn lame_set_brate(gfp: *mut c_void, kbps: c_int) -> c_int;
        pub fn lame_set_quality(gfp: *mut c_void, quality: c_int) -> c_int;
        pub fn lame_set_bWriteVbrTag(gfp: *mut c_void, write: c_int) -> c_int;
        pub fn lame_init_params(gfp: *mut c_void) -> c_int;
        pub fn lame_encode_buffer(
            gfp: *mut c_void,
            left: *const c_short,
            right: *const c_short,
            samples: c_int,
            mp3buf: *mut c_uchar,
            mp3buf_size: c_int,
        ) -> c_int;
        pub fn lame_encode_flush(gfp: *mut c_void, mp3buf: *mut c_uchar, size: c_int) -> c_int;
        pub fn lame_get_lametag_frame(gfp: *mut c_void, buffer: *mut c_uchar, size: usize)
            -> usize;
    }
}

/// LAME's `MONO` mode.
const MONO: c_int = 3;
/// LAME's quality knob: 2 is its "near best" (0 best, 9 fastest).
const QUALITY: c_int = 2;
/// Samples handed to LAME per call.
const BLOCK: usize = 8192;

/// Why audio could not be encoded.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncodeError {
    #[error("no samples to encode")]
    Empty,
    #[error("mp3 cannot be encoded at {0} Hz")]
    UnsupportedRate(u32),
    #[error("the mp3 encoder failed: {0}")]
    Encoder(String),
}

/// The constant bit rate (kbit/s) for mono speech at `rate`, or `None` for a
/// rate MPEG audio does not have. MPEG-1 (32–48 kHz), MPEG-2 (16–24 kHz) and
/// MPEG-2.5 (8–12 kHz) each have their own set of bit rates. Each rate here
/// makes frames large enough for LAME's Info tag (169 bytes at MPEG-2/2.5,
/// 177 at MPEG-1: at 8 kHz 24 kbit/s is the least, at 16 kHz 40): LAME
/// leaves the tag out of smaller frames, and without it a decoder cannot
/// trim the encoder's delay and padding (about 0.14 s at 8 kHz).
fn bit_rate(rate: u32) -> Option<c_int> {
    match rate {
        8_000 => Some(24),
        11_025 | 12_000 => Some(32),
        16_000 => Some(48),
        22_050 | 24_000 | 32_000 | 44_100 | 48_000 => Some(64),
        _ => None,
    }
}

/// `lame_init_params` fills process-wide tables (with the same values each
/// time); two encoders must not fill them at once. Encoding itself only
/// reads them and runs in parallel (`tests/effects.rs` checks that parallel
/// encodes give the same bytes as serial ones).
static INIT: Mutex<()> = Mutex::new(());

/// One LAME encoder, closed on drop.
struct Lame(*mut c_void);

impl Drop for Lame {
    fn drop(&mut self) {
        // SAFETY: the pointer came from lame_init, is not null, and is
        // closed only here, once.
        unsafe {
            ffi::lame_close(self.0);
        }
    }
}

fn check(what: &str, code: c_int) -> Result<(), EncodeError> {
    if code < 0 {
        Err(EncodeError::Encoder(format!("{what} returned {code}")))
    } else {
        Ok(())
    }
}

/// Encodes mono 16-bit samples at `rate` Hz as MP3 (constant bit rate:
/// 24 kbit/s at 8 kHz, 32 at 11.025/12 kHz, 48 at 16 kHz, 64 at
/// 22.05–48 kHz), by LAME. The rates are those MPEG audio defines: 8000, 11025,
/// 12000, 16000, 22050, 24000, 32000, 44100 and 48000 Hz; anything else is
/// [`EncodeError::UnsupportedRate`], no samples [`EncodeError::Empty`].
///
/// The stream starts with a LAME "Info" frame that states the encoder's
/// delay and padding, so a gapless decoder (this crate's, through symphonia)
/// gives back exactly as many samples as went in.
pub fn encode_mp3(samples: &[i16], rate: u32) -> Result<Vec<u8>, EncodeError> {
    let kbps = bit_rate(rate).ok_or(EncodeError::UnsupportedRate(rate))?;
    if samples.is_empty() {
        return Err(EncodeError::Empty);
    }
    // SAFETY: lame_init has no preconditions; null is checked.
    let lame = Lame(unsafe { ffi::lame_init() });
    if lame.0.is_null() {
        return Err(EncodeError::Encoder("lame_init returned null".into()));
    }
    let gfp = lame.0;
    // SAFETY: `gfp` is a live encoder; these setters only store values.
    unsafe {
        check("lame_set_num_channels", ffi::lame_set_num_channels(gfp, 1))?;
        check(
            "lame_set_in_samplerate",
            ffi::lame_set_in_samplerate(gfp, rate as c_int),
        )?;
        check(
            "lame_set_out_samplerate",
            ffi::lame_set_out_samplerate(gfp, rate as c_int),
        )?;
        check("lame_set_mode", ffi::lame_set_mode(gfp, MONO))?;
        check("lame_set_brate", ffi::lame_set_brate(gfp, kbps))?;
        check("lame_set_quality", ffi::lame_set_quality(gfp, QUALITY))?;
        check("lame_set_bWriteVbrTag", ffi::lame_set_bWriteVbrTag(gfp, 1))?;
    }
    {
        let _guard = INIT.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: `gfp` is a live encoder, configured above.
        check("lame_init_params", unsafe { ffi::lame_init_params(gfp) })?;
    }

    // LAME's documented worst case per call: 1.25 × samples + 7200 bytes.
    let room = BLOCK + BLOCK / 4 + 7200;
    let mut buf = vec![0u8; room];
    let per_second = kbps as usize * 1000 / 8;
    let mut out = Vec::with_capacity((samples.len() / rate as usize + 1) * per_second + room);
    for block in samples.chunks(BLOCK) {
        // SAFETY: `block` holds `block.len()` (≤ BLOCK) samples and is read
        // as both channels (LAME reads only the left one in mono); `buf`
        // has `room` bytes, LAME's worst case for BLOCK samples.
        let n = unsafe {
            ffi::lame_encode_buffer(
                gfp,
                block.as_ptr(),
                block.as_ptr(),
                block.len() as c_int,
                buf.as_mut_ptr(),
                room as c_int,
            )
        };
        check("lame_encode_buffer", n)?;
        out.extend_from_slice(&buf[..(n as usize).min(room)]);
    }
    // SAFETY: `buf` has `room` (> 7200) bytes, enough for the last frames.
    let n = unsafe { ffi::lame_encode_flush(gfp, buf.as_mut_ptr(), room as c_int) };
    check("lame_encode_flush", n)?;
    out.extend_from_slice(&buf[..(n as usize).min(room)]);

    // The first frame was written as a placeholder; now that the stream is
    // complete, LAME fills it in (frame count, delay, padding).
    // SAFETY: `buf` has `room` bytes and LAME is told so; it writes at most
    // that many and returns the tag's size (0 when there is none).
    let tag = unsafe { ffi::lame_get_lametag_frame(gfp, buf.as_mut_ptr(), room) };
    if tag > 0 && tag <= room && tag <= out.len() {
        out[..tag].copy_from_slice(&buf[..tag]);
    }
    drop(lame);
    Ok(out)
}

/// Float samples as 16-bit integers: scaled by 32768 (the decoders' scale,
/// so decoded 16-bit audio comes back bit-exact), rounded, clamped to
/// [-32768, 32767]; samples that are not finite become 0.
pub fn to_i16(samples: &[f32]) -> Vec<i16> {
    samples
        .iter()
        .map(|&x| {
            (f64::from(crate::finite(x)) * 32768.0)
                .round()
                .clamp(-32768.0, 32767.0) as i16
        })
        .collect()
}

/// Headerless 16-bit little-endian PCM (SIS TTS `pcm`).
pub fn encode_pcm16(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

/// A RIFF/WAVE file of mono 16-bit PCM at `rate` Hz: the canonical 44-byte
/// header (`fmt ` of 16 bytes, `data`) and the samples. Audio beyond what a
/// WAV header can count (4 GiB) is cut at that size.
pub fn encode_wav(samples: &[i16], rate: u32) -> Vec<u8> {
    const MAX_DATA: usize = (u32::MAX as usize - 36) & !1;
    let n = samples.len().min(MAX_DATA / 2);
    let data = (n * 2) as u32;
    let mut out = Vec::with_capacity(44 + n * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&rate.saturating_mul(2).to_le_bytes()); // bytes per second
    out.extend_from_slice(&2u16.to_le_bytes()); // block align
    out.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data.to_le_bytes());
    for s in &samples[..n] {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::{read_bytes, FileFormat, StreamLimits};

    #[test]
    fn wav_and_pcm_read_back_exactly() {
        let x: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.05).sin() * 0.9).collect();
        let s = to_i16(&x);
        for rate in [8000, 16000, 22050] {
            let wav = encode_wav(&s, rate);
            assert_eq!(wav.len(), 44 + 2000);
            assert_eq!(&wav[44..], &encode_pcm16(&s)[..]);
            let (r, ch) = read_bytes(&wav, FileFormat::Auto, StreamLimits::default()).unwrap();
            assert_eq!((r, ch.len()), (rate, 1));
            assert_eq!(to_i16(&ch[0]), s);
        }
        assert_eq!(
            to_i16(&[2.0, -2.0, f32::NAN, 0.5]),
            vec![32767, -32768, 0, 16384]
        );
        assert_eq!(encode_wav(&[], 8000).len(), 44);
    }
}
