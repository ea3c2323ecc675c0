//! `amr-encode nb|wb IN.raw OUT` — encodes 16-bit little-endian mono PCM
//! (8 kHz for nb, 16 kHz for wb) into the RFC 4867 AMR storage format, with
//! the real encoders (opencore-amrnb, vo-amrwbenc). Used to make test clips.

use std::os::raw::{c_int, c_short, c_uchar, c_void};
use std::process::ExitCode;

#[link(name = "opencore-amrnb")]
extern "C" {
    fn Encoder_Interface_init(dtx: c_int) -> *mut c_void;
    fn Encoder_Interface_exit(state: *mut c_void);
    fn Encoder_Interface_Encode(
        state: *mut c_void,
        mode: c_int,
        speech: *const c_short,
        out: *mut c_uchar,
        force_speech: c_int,
    ) -> c_int;
}

#[link(name = "vo-amrwbenc")]
extern "C" {
    fn E_IF_init() -> *mut c_void;
    fn E_IF_exit(state: *mut c_void);
    fn E_IF_encode(
        state: *mut c_void,
        mode: c_int,
        speech: *const c_short,
        out: *mut c_uchar,
        dtx: c_int,
    ) -> c_int;
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 || !(args[1] == "nb" || args[1] == "wb") {
        eprintln!("usage: amr-encode nb|wb IN.raw OUT");
        return ExitCode::FAILURE;
    }
    let Ok(raw) = std::fs::read(&args[2]) else {
        eprintln!("cannot read {}", args[2]);
        return ExitCode::FAILURE;
    };
    let pcm: Vec<i16> = raw
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let wb = args[1] == "wb";
    let frame = if wb { 320 } else { 160 };
    let mut out: Vec<u8> = if wb {
        b"#!AMR-WB\n".to_vec()
    } else {
        b"#!AMR\n".to_vec()
    };
    let mut buf = [0u8; 128];
    // SAFETY: states are created, used and destroyed here; buffers are sized
    // for one frame of input and the largest encoded frame.
    unsafe {
        let state = if wb {
            E_IF_init()
        } else {
            Encoder_Interface_init(0)
        };
        if state.is_null() {
            eprintln!("encoder init failed");
            return ExitCode::FAILURE;
        }
        for chunk in pcm.chunks(frame) {
            let mut f = vec![0i16; frame];
            f[..chunk.len()].copy_from_slice(chunk);
            let n = if wb {
                E_IF_encode(state, 8, f.as_ptr(), buf.as_mut_ptr(), 0)
            } else {
                Encoder_Interface_Encode(state, 7, f.as_ptr(), buf.as_mut_ptr(), 0)
            };
            if n <= 0 || n as usize > buf.len() {
                eprintln!("encode failed");
                return ExitCode::FAILURE;
            }
            out.extend_from_slice(&buf[..n as usize]);
        }
        if wb {
            E_IF_exit(state)
        } else {
            Encoder_Interface_exit(state)
        }
    }
    if std::fs::write(&args[3], out).is_err() {
        eprintln!("cannot write {}", args[3]);
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
