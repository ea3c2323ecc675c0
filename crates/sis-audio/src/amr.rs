//! AMR-NB and AMR-WB (RFC 4867 single-channel storage format) through
//! opencore-amr, frame by frame.

use std::io::{self, Read, Seek, SeekFrom};
use std::os::raw::c_void;

use crate::input::{io_error, Input};
use crate::stream::{Source, SourceInfo};
use crate::AudioError;

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
    magic: &'static [u8],
    sizes: &'static [Option<usize>; 16],
    frame_samples: usize,
    rate: u32,
    name: &'static str,
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
const MAX_FRAME_BYTES: usize = 64;
const MAX_FRAME_SAMPLES: usize = 320;

impl Codec {
    /// The size of the frame (header byte included) that starts with `toc`,
    /// `at` being its offset in the file, for the error message.
    fn frame_size(&self, toc: u8, at: u64) -> Result<usize, AudioError> {
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
struct FrameDecoder {
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
    fn new(codec: &'static Codec) -> Result<Self, AudioError> {
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
    fn decode(&mut self, frame: &[u8]) -> &[i16] {
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

/// AMR-NB/WB storage format, frame by frame: each frame's header and
/// length are checked before the decoder sees it.
struct AmrSource<'a> {
    info: SourceInfo,
    codec: &'static Codec,
    reader: Box<dyn Input + 'a>,
    decoder: FrameDecoder,
    /// Offset of the next frame, for error messages.
    at: u64,
}

/// Frames decoded per block (one second).
const BLOCK_FRAMES: usize = 50;

/// Opens the AMR input whose magic starts at `start` (after an ID3 tag).
pub(crate) fn open<'a>(
    mut input: Box<dyn Input + 'a>,
    start: u64,
    codec: &'static Codec,
) -> Result<Box<dyn Source + 'a>, AudioError> {
    let at = start + codec.magic.len() as u64;
    input.seek(SeekFrom::Start(at)).map_err(io_error)?;
    Ok(Box::new(AmrSource {
        info: SourceInfo {
            rate: codec.rate,
            channels: 1,
            codec: if codec.rate == 8000 { "amr" } else { "amr-wb" },
            total_frames: None,
            exact_length: false,
        },
        codec,
        reader: input,
        decoder: FrameDecoder::new(codec)?,
        at,
    }))
}

impl Source for AmrSource<'_> {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn read_block(&mut self, out: &mut [Vec<f32>]) -> Result<bool, AudioError> {
        let mut frame = [0u8; MAX_FRAME_BYTES];
        let mut decoded = 0;
        while decoded < BLOCK_FRAMES {
            match self.reader.read(&mut frame[..1]) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error(e)),
            }
            let size = self.codec.frame_size(frame[0], self.at)?;
            self.reader
                .read_exact(&mut frame[1..size])
                .map_err(|e| match e.kind() {
                    io::ErrorKind::UnexpectedEof => AudioError::Corrupt(format!(
                        "{}: truncated frame at byte {}",
                        self.codec.name, self.at
                    )),
                    _ => io_error(e),
                })?;
            self.at += size as u64;
            let samples = self.decoder.decode(&frame[..size]);
            if let Some(o) = out.first_mut() {
                o.extend(samples.iter().map(|&s| s as f32 / 32768.0));
            }
            decoded += 1;
        }
        Ok(decoded > 0)
    }
}

#[cfg(test)]
mod tests {
    use crate::{decode, AudioError, DecodeLimits};
    use sis_core::AudioFormat;

    const L: DecodeLimits = DecodeLimits { max_ms: 60_000 };

    fn nb(bytes: &[u8]) -> Result<sis_core::Pcm, AudioError> {
        decode(AudioFormat::Amr, bytes, L)
    }

    fn wb(bytes: &[u8]) -> Result<sis_core::Pcm, AudioError> {
        decode(AudioFormat::AmrWb, bytes, L)
    }

    #[test]
    fn rejects_bad_streams() {
        assert!(matches!(nb(b"garbage"), Err(AudioError::Corrupt(_))));
        // mode 7 frame header (0x3c) with a truncated body
        assert!(matches!(
            nb(b"#!AMR\n\x3c\x00\x00"),
            Err(AudioError::Corrupt(m)) if m.contains("truncated frame at byte 6")
        ));
        // reserved frame type 10
        assert!(matches!(
            wb(b"#!AMR-WB\n\x54"),
            Err(AudioError::Corrupt(m)) if m.contains("invalid frame type 10")
        ));
        // a header only: no frame, no sample
        assert_eq!(nb(b"#!AMR\n"), Err(AudioError::Empty));
    }

    #[test]
    fn decodes_no_data_frames() {
        // NO_DATA frames (type 15) decode to comfort silence
        let p = nb(b"#!AMR\n\x7c\x7c").unwrap();
        assert_eq!((p.samples.len(), p.sample_rate), (320, 8000));
        let p = wb(b"#!AMR-WB\n\x7c").unwrap();
        assert_eq!((p.samples.len(), p.sample_rate), (320, 16000));
    }
}
