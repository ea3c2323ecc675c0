//! AMR-NB and AMR-WB (RFC 4867 storage format) through opencore-amr.

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

struct Codec {
    magic: &'static [u8],
    sizes: &'static [Option<usize>; 16],
    frame_samples: usize,
    rate: u32,
    name: &'static str,
}

const NB: Codec = Codec {
    magic: b"#!AMR\n",
    sizes: &NB_SIZES,
    frame_samples: 160,
    rate: 8000,
    name: "AMR-NB",
};
const WB: Codec = Codec {
    magic: b"#!AMR-WB\n",
    sizes: &WB_SIZES,
    frame_samples: 320,
    rate: 16000,
    name: "AMR-WB",
};

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
        let toc = body[at];
        if toc & 0x83 != 0 {
            return Err(AudioError::Corrupt(format!(
                "{}: bad frame header 0x{toc:02x} at byte {}",
                c.name,
                at + c.magic.len()
            )));
        }
        let ft = ((toc >> 3) & 0x0F) as usize;
        let size = c.sizes[ft]
            .ok_or_else(|| AudioError::Corrupt(format!("{}: invalid frame type {ft}", c.name)))?;
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

fn decode_with(
    c: &Codec,
    bytes: &[u8],
    limits: DecodeLimits,
    init: unsafe extern "C" fn() -> *mut std::os::raw::c_void,
    exit: unsafe extern "C" fn(*mut std::os::raw::c_void),
    dec: unsafe extern "C" fn(*mut std::os::raw::c_void, *const u8, *mut i16, i32),
) -> Result<Pcm, AudioError> {
    let frames = frames(c, bytes)?;
    check_len(frames.len() * c.frame_samples, c.rate, limits)?;
    // SAFETY: init returns a fresh decoder state or null; exit is called once.
    let state = unsafe { init() };
    if state.is_null() {
        return Err(AudioError::Corrupt(format!(
            "{}: decoder init failed",
            c.name
        )));
    }
    let mut samples = Vec::with_capacity(frames.len() * c.frame_samples);
    let mut buf = vec![0i16; c.frame_samples];
    // The decoders may read up to the largest frame size; give them a padded copy.
    let mut frame_buf = [0u8; 64];
    for f in frames {
        frame_buf.fill(0);
        frame_buf[..f.len()].copy_from_slice(f);
        // SAFETY: state is live, frame_buf holds a full frame (header checked),
        // buf has room for one frame of samples.
        unsafe { dec(state, frame_buf.as_ptr(), buf.as_mut_ptr(), 0) };
        samples.extend(buf.iter().map(|&s| s as f32 / 32768.0));
    }
    // SAFETY: state came from init and is not used after this.
    unsafe { exit(state) };
    Ok(Pcm {
        samples,
        sample_rate: c.rate,
    })
}

pub fn decode_nb(bytes: &[u8], limits: DecodeLimits) -> Result<Pcm, AudioError> {
    decode_with(
        &NB,
        bytes,
        limits,
        ffi::Decoder_Interface_init,
        ffi::Decoder_Interface_exit,
        ffi::Decoder_Interface_Decode,
    )
}

pub fn decode_wb(bytes: &[u8], limits: DecodeLimits) -> Result<Pcm, AudioError> {
    decode_with(
        &WB,
        bytes,
        limits,
        ffi::D_IF_init,
        ffi::D_IF_exit,
        ffi::D_IF_decode,
    )
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
