//! Checks of Vorbis structures before symphonia sees them (the Ogg walk in
//! `ogg.rs` and the FLAC metadata walk in `flac.rs` find them):
//!
//! - setup headers: the Vorbis decoder allocates each codebook's
//!   vector-quantisation table as `entries × dimensions` floats straight from
//!   the header (up to 2^40 of them), and a length-ordered codebook declares
//!   2^24 entries in a few bits: a file of a few hundred bytes asks for
//!   terabytes. Each codebook is read as far as its lookup table, and tables
//!   larger than any real encoder writes are refused.
//! - comments (Vorbis, Opus, FLAC): the comment reader allocates each
//!   comment's declared length before reading it.
//!
//! A failed allocation aborts the process (not a panic; nothing can contain
//! it), so these inputs must be refused before the decoder runs.

use crate::AudioError;

/// Largest `entries × dimensions` of a codebook with a lookup table
/// (libvorbis writes a few thousand; 2^24 floats is 64 MiB).
const MAX_LOOKUP: u64 = 1 << 24;

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
pub(crate) fn check_setup(packet: &[u8]) -> Result<(), AudioError> {
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
        // Kraft sum of the codeword lengths, in units of 2^-32
        let mut kraft = 0u64;
        if b.read(1)? == 0 {
            let sparse = b.read(1)? == 1;
            for _ in 0..entries {
                if !sparse || b.read(1)? == 1 {
                    kraft += 1 << (32 - (b.read(5)? + 1));
                }
            }
        } else {
            let mut length = b.read(5)? + 1;
            let mut cur = 0u64;
            while cur < entries {
                let n = b.read(ilog(entries - cur))?;
                if n > 0 && length > 32 {
                    // the decoder indexes its codeword table by length
                    return Err(bad(format!("a codeword of {length} bits")));
                }
                kraft = kraft.saturating_add(n << (32 - length.min(32)));
                cur += n;
                length += 1;
            }
            if cur > entries {
                return Ok(());
            }
        }
        // more codewords than a prefix code of these lengths can have: the
        // decoder's tree walk runs off its table (a panic)
        if kraft > 1 << 32 {
            return Err(bad("a codebook is overspecified"));
        }
        let lookup = b.read(4)?;
        if lookup == 1 || lookup == 2 {
            if entries.saturating_mul(dims) > MAX_LOOKUP {
                return Err(bad(format!(
                    "a codebook of {entries} entries × {dims} dimensions is larger than any encoder writes"
                )));
            }
            if lookup == 1 && !float_lookup1_holds(entries, dims) {
                return Err(bad(format!(
                    "a codebook of {entries} entries × {dims} dimensions has no exact lookup table size"
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

/// Whether symphonia's lookup table size (computed in `f32`, then asserted
/// exact, a panic otherwise) comes out right for this codebook: the value
/// `v = floor(entries^(1/dims))` in `f32` must satisfy
/// `v^dims <= entries < (v+1)^dims` without overflowing 32 bits.
fn float_lookup1_holds(entries: u64, dims: u64) -> bool {
    let Ok(dims) = u32::try_from(dims) else {
        return false;
    };
    if dims == 0 {
        return false;
    }
    let v = (entries as f32).powf(1.0 / dims as f32).floor() as u32;
    let below = v.checked_pow(dims).is_some_and(|p| p as u64 <= entries);
    let above = v
        .checked_add(1)
        .and_then(|w| w.checked_pow(dims))
        .is_some_and(|p| p as u64 > entries);
    below && above
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

/// Checks a Vorbis comment structure (vendor string, then length-prefixed
/// comments, all little-endian) at `at` in `data`, the bytes symphonia's
/// comment reader may read (a packet, or a FLAC metadata block). That reader
/// allocates each comment's declared length before reading it (up to 4 GiB):
/// a length past the end of `data` is refused. Running out of bytes where a
/// field should be is left to the reader, which fails without allocating.
pub(crate) fn check_comment(data: &[u8], mut at: usize, what: &str) -> Result<(), AudioError> {
    let u32_at = |at: usize| -> Option<usize> {
        let b = data.get(at..at.checked_add(4)?)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let Some(vendor) = u32_at(at) else {
        return Ok(());
    };
    // the vendor string is skipped, never allocated
    at = match (at + 4).checked_add(vendor) {
        Some(end) if end <= data.len() => end,
        _ => return Ok(()),
    };
    let Some(count) = u32_at(at) else {
        return Ok(());
    };
    at += 4;
    for _ in 0..count {
        let Some(n) = u32_at(at) else {
            return Ok(());
        };
        at += 4;
        let left = data.len() - at;
        if n > left {
            return Err(AudioError::Corrupt(format!(
                "{what}: a comment declares {n} bytes, only {left} follow"
            )));
        }
        at += n;
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

    /// One length-ordered codebook, every entry `length` bits, lookup type
    /// `lookup`.
    fn codebook(entries: u64, dims: u64, length: u64, lookup: u64) -> Vec<u8> {
        let mut w = W(b"\x05vorbis".to_vec(), 56);
        w.put(0, 8); // one codebook
        w.put(0x564342, 24);
        w.put(dims, 16);
        w.put(entries, 24);
        w.put(1, 1); // length-ordered
        w.put(length - 1, 5);
        w.put(entries, ilog(entries)); // every entry of one length
        w.put(lookup, 4);
        w.put(0, 32);
        w.put(0, 32);
        w.put(0, 4);
        w.put(0, 1);
        for _ in 0..(entries * dims).min(64) {
            w.put(0, 1);
        }
        w.0
    }

    /// A codebook whose every entry has the shortest length that fits.
    fn setup(entries: u64, dims: u64) -> Vec<u8> {
        codebook(entries, dims, ilog(entries - 1).max(1) as u64, 2)
    }

    #[test]
    fn huge_codebooks_are_refused() {
        assert!(check_setup(&setup((1 << 24) - 1, 1 << 15)).is_err());
        assert!(check_setup(&setup(16, 2)).is_ok());
        // 16 codewords of 1 bit: no prefix code has them
        assert!(check_setup(&codebook(16, 2, 1, 2)).is_err());
        // lookup type 1: 81 entries of 4 dimensions is 3^4, exact in f32;
        // 0 dimensions has no size at all
        assert!(check_setup(&codebook(81, 4, 7, 1)).is_ok());
        assert!(check_setup(&codebook(81, 0, 7, 1)).is_err());
        assert!(float_lookup1_holds(81, 4));
        assert!(!float_lookup1_holds(1, 40)); // 2^40 overflows
        assert_eq!(lookup1_values(81, 4), 3);
        assert_eq!(lookup1_values(80, 4), 2);
    }
}
