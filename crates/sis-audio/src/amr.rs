//! AMR-NB and AMR-WB (RFC 4867 storage format) through opencore-amr.

use std::os::raw::c_void;

use sis_core::Pcm;

use crate::{check_len, AudioError, DecodeLimits};

mod ffi {
    use std::os::raw::{c_int, c_short, c_uchar, c_void};
    extern "C" {
        pub fn Decoder_Interface_init() -> *mut c_void;
        pub fn Decoder_Interface_exit(state: *mut c_void);
        pub fn Decoder_Interface_Decode(
            state: *mut c_void,
            input: *const c_uchar,
            out: *mut c_short,
            bfi: c_int,
        );
        pub fn D_IF_init() -> *mut c_void;
        pub fn D_IF_exit(state: *mut c_void);
        pub fn D_IF_decode(
            state: *mut c_void,
            bits: *const c_uchar,
            synth: *mut c_short,
            bfi: c_int,
        );
    }
}

/// Frame sizes in bytes including the one-byte frame header, by frame type.
/// `None`: a frame type the storage format must not contain.
const NB_SIZES: [Option<usize>; 16] = [
    Some(13),
    Some(14),
    Some(16),
    Some(18),
    Some(20),
    Some(21),
    Some(27),
    Some(32),
    Some(6),
    None,
    None,
    None,
    None,
    None,
    None,
    Some(1),
];
const WB_SIZES: [Option<usize>; 16] = [
    Some(18),
    Some(24),
    Some(33),
    Some(37),
    Some(41),
    Some(47),
    Some(51),
    Some(59),
    Some(61),
    Some(6),
    None,
    None,
    None,
    None,
    Some(1),
    Some(1),
];

pub(crate) struct Codec {
    pub(crate) magic: &'static [u8],
    sizes: &'static [Option<usize>; 16],
    pub(crate) frame_samples: usize,
    pub(crate) rate: u32,
    pub(crate) name: &'static str,
    init: unsafe extern "C" fn() -> *mut c_void,
    exit: unsafe extern "C" fn(*mut c_void),
    dec: unsafe extern "C" fn(*mut c_void, *const u8, *mut i16, i32),
}

pub(crate) static NB: Codec = Codec {
    magic: b"#!AMR\n",
    sizes: &NB_SIZES,
    frame_samples: 160,
    rate: 8000,
    name: "AMR-NB",
    init: ffi::Decoder_Interface_init,
    exit: ffi::Decoder_Interface_exit,
    dec: ffi::Decoder_Interface_Decode,
};
pub(crate) static WB: Codec = Codec {
    magic: b"#!AMR-WB\n",
    sizes: &WB_SIZES,
    frame_samples: 320,
    rate: 16000,
    name: "AMR-WB",
    init: ffi::D_IF_init,
    exit: ffi::D_IF_exit,
    dec: ffi::D_IF_decode,
};

/// The largest frame of either codec (header included), and of output samples.
pub(crate) const MAX_FRAME_BYTES: usize = 64;
pub(crate) const MAX_FRAME_SAMPLES: usize = 320;

impl Codec {
    /// The size of the frame (header byte included) that starts with `toc`,
    /// `at` being its offset in the file, for the error message.
    pub(crate) fn frame_size(&self, toc: u8, at: usize) -> Result<usize, AudioError> {
        if toc & 0x83 != 0 {
            return Err(AudioError::Corrupt(format!(
                "{}: bad frame header 0x{toc:02x} at byte {at}",
                self.name
            )));
        }
        let ft = ((toc >> 3) & 0x0F) as usize;
        self.sizes[ft]
            .ok_or_else(|| AudioError::Corrupt(format!("{}: invalid frame type {ft}", self.name)))
    }
}

/// One opencore decoder instance; frames go in one at a time.
pub(crate) struct FrameDecoder {
    codec: &'static Codec,
    state: *mut c_void,
    // The decoders may read up to the largest frame size; frames are copied into this padded buffer.
    frame_buf: [u8; MAX_FRAME_BYTES],
    out: [i16; MAX_FRAME_SAMPLES],
}

// SAFETY: the decoder state is plain heap memory owned by this value alone;
// opencore keeps no thread-local or global state, so it may move between threads.
unsafe impl Send for FrameDecoder {}

impl FrameDecoder {
    pub(crate) fn new(codec: &'static Codec) -> Result<Self, AudioError> {
        // SAFETY: init returns a fresh decoder state or null; Drop calls exit once.
        let state = unsafe { (codec.init)() };
        if state.is_null() {
            return Err(AudioError::Corrupt(format!(
                "{}: decoder init failed",
                codec.name
            )));
        }
        Ok(FrameDecoder {
            codec,
            state,
            frame_buf: [0; MAX_FRAME_BYTES],
            out: [0; MAX_FRAME_SAMPLES],
        })
    }

    /// Decodes one whole frame whose header `Codec::frame_size` accepted
    /// (`frame.len()` being that size) into `codec.frame_samples` samples.
    pub(crate) fn decode(&mut self, frame: &[u8]) -> &[i16] {
        let n = frame.len().min(MAX_FRAME_BYTES);
        self.frame_buf.fill(0);
        self.frame_buf[..n].copy_from_slice(&frame[..n]);
        // SAFETY: state is live, frame_buf holds a full frame (header checked) padded
        // to the largest frame size, out has room for one frame of samples.
        unsafe {
            (self.codec.dec)(
                self.state,
                self.frame_buf.as_ptr(),
                self.out.as_mut_ptr(),
                0,
            )
        };
        &self.out[..self.codec.frame_samples]
    }
}

impl Drop for FrameDecoder {
    fn drop(&mut self) {
        // SAFETY: state came from init and is not used after this.
        unsafe { (self.codec.exit)(self.state) };
    }
}

/// Walks the frames, checking each header and length before the decoder sees it.
fn frames<'a>(c: &Codec, bytes: &'a [u8]) -> Result<Vec<&'a [u8]>, AudioError> {
    let body = bytes.strip_prefix(c.magic).ok_or_else(|| {
        AudioError::Corrupt(format!(
            "{}: missing '{}' header",
            c.name,
            String::from_utf8_lossy(c.magic).trim()
        ))
    })?;
    let mut out = Vec::new();
    let mut at = 0;
    while at < body.len() {
        let size = c.frame_size(body[at], at + c.magic.len())?;
        if at + size > body.len() {
            return Err(AudioError::Corrupt(format!(
                "{}: truncated frame at byte {}",
                c.name,
                at + c.magic.len()
            )));
        }
        out.push(&body[at..at + size]);
        at += size;
    }
    Ok(out)
}

fn decode_with(c: &'static Codec, bytes: &[u8], limits: DecodeLimits) -> Result<Pcm, AudioError> {
    let frames = frames(c, bytes)?;
    check_len(frames.len() * c.frame_samples, c.rate, limits)?;
    let mut dec = FrameDecoder::new(c)?;
    let mut samples = Vec::with_capacity(frames.len() * c.frame_samples);
    for f in frames {
        samples.extend(dec.decode(f).iter().map(|&s| s as f32 / 32768.0));
    }
    Ok(Pcm {
        samples,
        sample_rate: c.rate,
    })
}

pub fn decode_nb(bytes: &[u8], limits: DecodeLimits) -> Result<Pcm, AudioError> {
    decode_with(&NB, bytes, limits)
}

pub fn decode_wb(bytes: &[u8], limits: DecodeLimits) -> Result<Pcm, AudioError> {
    decode_with(&WB, bytes, limits)
}

#[cfg(test)]
mod tests {
    use super::*;
    const L: DecodeLimits = DecodeLimits { max_ms: 60_000 };

    #[test]
    fn rejects_bad_streams() {
        assert!(matches!(
            decode_nb(b"garbage", L),
            Err(AudioError::Corrupt(_))
        ));
        // mode 7 frame header (0x3c) with a truncated body
        assert!(matches!(
            decode_nb(b"#!AMR\n\x3c\x00\x00", L),
            Err(AudioError::Corrupt(_))
        ));
        // reserved frame type 10
        assert!(matches!(
            decode_wb(b"#!AMR-WB\n\x54", L),
            Err(AudioError::Corrupt(_))
        ));
    }

    #[test]
    fn decodes_no_data_frames() {
        // NO_DATA frames (type 15) decode to comfort silence
        let p = decode_nb(b"#!AMR\n\x7c\x7c", L).unwrap();
        assert_eq!((p.samples.len(), p.sample_rate), (320, 8000));
        let p = decode_wb(b"#!AMR-WB\n\x7c", L).unwrap();
        assert_eq!((p.samples.len(), p.sample_rate), (320, 16000));
    }
}
