//! A check of Ogg Vorbis setup headers before symphonia's Vorbis decoder sees
//! them. The decoder allocates each codebook's vector-quantisation table as
//! `entries × dimensions` floats straight from the header (up to 2^40 of
//! them), and a length-ordered codebook declares 2^24 entries in a few bits:
//! a file of a few hundred bytes asks for terabytes, and the failed
//! allocation aborts the process (not a panic; nothing can contain it). This
//! reassembles the first three packets of every Vorbis stream in the file
//! and reads each codebook as far as its lookup table, refusing tables larger
//! than any real encoder writes.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};

use crate::AudioError;

/// Largest `entries × dimensions` of a codebook with a lookup table
/// (libvorbis writes a few thousand; 2^24 floats is 64 MiB).
const MAX_LOOKUP: u64 = 1 << 24;
/// Header packets are looked for in this many bytes of pages.
const MAX_HEADER_BYTES: u64 = 16 << 20;

fn bad(msg: impl Into<String>) -> AudioError {
    AudioError::Corrupt(format!("vorbis: {}", msg.into()))
}

/// Reads bits least-significant first, as Vorbis packs them.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn read(&mut self, n: u32) -> Result<u64, AudioError> {
        let mut v = 0u64;
        for i in 0..n {
            let byte = self
                .data
                .get(self.pos / 8)
                .ok_or_else(|| bad("setup header ends early"))?;
            v |= (((byte >> (self.pos % 8)) & 1) as u64) << i;
            self.pos += 1;
        }
        Ok(v)
    }
}

fn ilog(x: u64) -> u32 {
    64 - x.leading_zeros()
}

/// The codebooks of a setup header packet (`\x05vorbis...`).
fn check_setup(packet: &[u8]) -> Result<(), AudioError> {
    let mut b = Bits {
        data: packet,
        pos: 7 * 8,
    };
    let books = b.read(8)? + 1;
    for _ in 0..books {
        if b.read(24)? != 0x564342 {
            // the decoder refuses it itself, allocating nothing
            return Ok(());
        }
        let dims = b.read(16)?;
        let entries = b.read(24)?;
        if b.read(1)? == 0 {
            let sparse = b.read(1)? == 1;
            for _ in 0..entries {
                if !sparse || b.read(1)? == 1 {
                    b.read(5)?;
                }
            }
        } else {
            b.read(5)?;
            let mut cur = 0u64;
            while cur < entries {
                cur += b.read(ilog(entries - cur))?;
            }
            if cur > entries {
                return Ok(());
            }
        }
        let lookup = b.read(4)?;
        if lookup == 1 || lookup == 2 {
            if entries.saturating_mul(dims) > MAX_LOOKUP {
                return Err(bad(format!(
                    "a codebook of {entries} entries × {dims} dimensions is larger than any encoder writes"
                )));
            }
            b.read(32)?;
            b.read(32)?;
            let value_bits = b.read(4)? + 1;
            b.read(1)?;
            let values = if lookup == 1 {
                lookup1_values(entries, dims)
            } else {
                entries * dims
            };
            for _ in 0..values {
                b.read(value_bits as u32)?;
            }
        }
    }
    Ok(())
}

/// The largest v with v^dims <= entries (Vorbis I, 9.2.3).
fn lookup1_values(entries: u64, dims: u64) -> u64 {
    if dims == 0 {
        return 0;
    }
    let mut v = (entries as f64).powf(1.0 / dims as f64).floor() as u64;
    while v > 0 && v.checked_pow(dims as u32).is_none_or(|p| p > entries) {
        v -= 1;
    }
    v
}

/// Checks every Vorbis setup header in the Ogg pages of the `len` bytes of
/// `r` from `start` on.
pub(crate) fn check<R: Read + Seek + ?Sized>(
    r: &mut R,
    start: u64,
    len: u64,
) -> Result<(), AudioError> {
    r.seek(SeekFrom::Start(start))
        .map_err(|e| AudioError::Io(e.to_string()))?;
    let limit = len.min(MAX_HEADER_BYTES);
    let mut data = Vec::new();
    (&mut *r)
        .take(limit)
        .read_to_end(&mut data)
        .map_err(|e| AudioError::Io(e.to_string()))?;
    r.seek(SeekFrom::Start(start))
        .map_err(|e| AudioError::Io(e.to_string()))?;
    // per logical stream: packets so far, and the one being assembled
    let mut streams: HashMap<u32, (usize, Vec<u8>)> = HashMap::new();
    let mut at = 0usize;
    while at + 27 <= data.len() {
        if &data[at..at + 4] != b"OggS" {
            // the demuxer resynchronises on garbage; so does this
            at += 1;
            continue;
        }
        let serial =
            u32::from_le_bytes([data[at + 14], data[at + 15], data[at + 16], data[at + 17]]);
        let segments = data[at + 26] as usize;
        let table = at + 27;
        let Some(lacing) = data.get(table..table + segments) else {
            break;
        };
        let mut body = table + segments;
        let (done, packet) = streams.entry(serial).or_insert((0, Vec::new()));
        for &lace in lacing {
            let Some(seg) = data.get(body..body + lace as usize) else {
                break;
            };
            body += lace as usize;
            if *done >= 3 {
                continue;
            }
            packet.extend_from_slice(seg);
            if lace < 255 {
                if packet.starts_with(b"\x05vorbis") {
                    check_setup(packet)?;
                }
                // a stream whose first packet is not Vorbis is not checked
                *done = if *done == 0 && !packet.starts_with(b"\x01vorbis") {
                    3
                } else {
                    *done + 1
                };
                packet.clear();
            }
        }
        at = body.max(at + 1);
        if !streams.is_empty() && streams.values().all(|(d, _)| *d >= 3) {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes bits least-significant first.
    struct W(Vec<u8>, usize);
    impl W {
        fn put(&mut self, v: u64, n: u32) {
            for i in 0..n {
                if self.1.is_multiple_of(8) {
                    self.0.push(0);
                }
                let last = self.0.len() - 1;
                self.0[last] |= (((v >> i) & 1) as u8) << (self.1 % 8);
                self.1 += 1;
            }
        }
    }

    fn setup(entries: u64, dims: u64) -> Vec<u8> {
        let mut w = W(b"\x05vorbis".to_vec(), 56);
        w.put(0, 8); // one codebook
        w.put(0x564342, 24);
        w.put(dims, 16);
        w.put(entries, 24);
        w.put(1, 1); // length-ordered
        w.put(0, 5);
        w.put(entries, ilog(entries)); // every entry of one length
        w.put(2, 4); // lookup type 2
        w.put(0, 32);
        w.put(0, 32);
        w.put(0, 4);
        w.put(0, 1);
        for _ in 0..(entries * dims).min(64) {
            w.put(0, 1);
        }
        w.0
    }

    #[test]
    fn huge_codebooks_are_refused() {
        assert!(check_setup(&setup((1 << 24) - 1, 1 << 15)).is_err());
        assert!(check_setup(&setup(16, 2)).is_ok());
        assert_eq!(lookup1_values(81, 4), 3);
        assert_eq!(lookup1_values(80, 4), 2);
    }
}
