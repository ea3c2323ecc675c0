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

    /// Skips `n` bits.
    fn skip(&mut self, n: u64) -> Result<(), AudioError> {
        self.pos = self.pos.saturating_add(n as usize);
        if self.pos > self.data.len() * 8 {
            return Err(bad("setup header ends early"));
        }
        Ok(())
    }
}

fn ilog(x: u64) -> u32 {
    64 - x.leading_zeros()
}

/// A setup header packet (`\x05vorbis...`): its codebooks, then, with the
/// stream's identification header (`ident`: channels and block sizes), its
/// floors, residues, mappings and modes.
pub(crate) fn check_setup(packet: &[u8], ident: Option<&[u8]>) -> Result<(), AudioError> {
    let mut b = Bits {
        data: packet,
        pos: 7 * 8,
    };
    let books = b.read(8)? + 1;
    let mut book_entries = Vec::new();
    for _ in 0..books {
        if b.read(24)? != 0x564342 {
            // the decoder refuses it itself, allocating nothing
            return Ok(());
        }
        let dims = b.read(16)?;
        let entries = b.read(24)?;
        book_entries.push(entries);
        if dims == 0 {
            // residue decoding steps and divides by a book's dimensions
            return Err(bad("a codebook of 0 dimensions"));
        }
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
    match ident {
        // a header that ends early is refused by the decoder, which
        // allocates nothing for it
        Some(ident) => check_configurations(&mut b, &book_entries, ident).unwrap_or(Ok(())),
        None => Ok(()),
    }
}

/// Channels and the two block sizes of an identification header.
fn ident_fields(ident: &[u8]) -> Option<(u64, [u64; 2])> {
    let channels = *ident.get(11)? as u64;
    let sizes = *ident.get(28)?;
    Some((channels, [1 << (sizes & 0x0F), 1 << (sizes >> 4)]))
}

/// The rest of a setup header after the codebooks (Vorbis I, 4.2.4), as far
/// as it decides what symphonia's decoder indexes without checking: a floor1
/// X value of 0 (the implicit first point is 0: the line between them
/// divides by 0) or not below the half block size of a mode that uses the
/// floor (its curve is written past the block), an X value stated twice
/// (the same division), a floor whose decoded Y values can leave its range
/// (symphonia indexes its 256-entry dB table with them unchecked), and a
/// residue classbook that is no codebook. `None`: the header ends early.
fn check_configurations(
    b: &mut Bits,
    book_entries: &[u64],
    ident: &[u8],
) -> Option<Result<(), AudioError>> {
    let books = book_entries.len() as u64;
    let (channels, block_sizes) = ident_fields(ident)?;
    // time domain transforms (placeholders)
    for _ in 0..b.read(6).ok()? + 1 {
        b.read(16).ok()?;
    }
    // floors: for floor 1, the largest X value it states
    let mut floor_x = Vec::new();
    for _ in 0..b.read(6).ok()? + 1 {
        match b.read(16).ok()? {
            0 => {
                b.skip(8 + 16 + 16 + 6 + 8).ok()?;
                let n = b.read(4).ok()? + 1;
                b.skip(8 * n).ok()?;
                floor_x.push(None);
            }
            1 => {
                let partitions = b.read(5).ok()?;
                let mut classes = Vec::new();
                for _ in 0..partitions {
                    classes.push(b.read(4).ok()? as usize);
                }
                let count = classes.iter().max().map_or(0, |&c| c + 1);
                let mut dims = Vec::new();
                // the largest value any of the floor's subclass books decodes
                let mut largest = 0u64;
                for _ in 0..count {
                    dims.push(b.read(3).ok()? + 1);
                    let sub = b.read(2).ok()?;
                    if sub > 0 {
                        b.read(8).ok()?;
                    }
                    for _ in 0..1u32 << sub {
                        if let Some(book) = b.read(8).ok()?.checked_sub(1) {
                            let entries = book_entries.get(book as usize).copied().unwrap_or(0);
                            largest = largest.max(entries.saturating_sub(1));
                        }
                    }
                }
                // Y values are decoded within `range` (Vorbis I, 7.2.4) only
                // if every coded value is below it, and the two end points,
                // read in ilog(range - 1) bits, fit only when the multiplier
                // is not 3 (range 86, 7 bits): a stream breaking either is
                // malformed, and symphonia would index past its table
                let multiplier = b.read(2).ok()? + 1;
                let range = [256, 128, 86, 64][multiplier as usize - 1];
                if multiplier == 3 {
                    return Some(Err(bad("a floor of multiplier 3 (no encoder writes one)")));
                }
                if largest >= range {
                    return Some(Err(bad(format!(
                        "a floor codes Y values up to {largest}, past its range of {range}"
                    ))));
                }
                let bits = b.read(4).ok()? as u32;
                let mut max_x = 0;
                let mut seen = std::collections::HashSet::from([0u64]);
                for c in classes {
                    for _ in 0..dims[c] {
                        let x = b.read(bits).ok()?;
                        if !seen.insert(x) {
                            return Some(Err(bad(format!("a floor states the point {x} twice"))));
                        }
                        max_x = max_x.max(x);
                    }
                }
                floor_x.push(Some(max_x));
            }
            // the decoder refuses other types itself
            _ => return None,
        }
    }
    for _ in 0..b.read(6).ok()? + 1 {
        if b.read(16).ok()? > 2 {
            return None;
        }
        b.skip(24 + 24 + 24).ok()?;
        let classifications = b.read(6).ok()? + 1;
        let classbook = b.read(8).ok()?;
        if classbook >= books {
            return Some(Err(bad(format!(
                "a residue's classbook {classbook} is not one of the {books} codebooks"
            ))));
        }
        let mut cascade = Vec::new();
        for _ in 0..classifications {
            let low = b.read(3).ok()?;
            let high = if b.read(1).ok()? == 1 {
                b.read(5).ok()?
            } else {
                0
            };
            cascade.push(high << 3 | low);
        }
        for c in cascade {
            b.skip(8 * c.count_ones() as u64).ok()?;
        }
    }
    // mappings: the floors each uses
    let mut mapping_floors = Vec::new();
    for _ in 0..b.read(6).ok()? + 1 {
        if b.read(16).ok()? != 0 {
            return None;
        }
        let submaps = if b.read(1).ok()? == 1 {
            b.read(4).ok()? + 1
        } else {
            1
        };
        if b.read(1).ok()? == 1 {
            let width = ilog(channels.saturating_sub(1));
            for _ in 0..b.read(8).ok()? + 1 {
                b.skip(2 * width as u64).ok()?;
            }
        }
        b.read(2).ok()?;
        if submaps > 1 {
            b.skip(4 * channels).ok()?;
        }
        let mut floors = Vec::new();
        for _ in 0..submaps {
            b.read(8).ok()?;
            floors.push(b.read(8).ok()? as usize);
            b.read(8).ok()?;
        }
        mapping_floors.push(floors);
    }
    // modes: each floor's X values against the half block of its mode
    for _ in 0..b.read(6).ok()? + 1 {
        let long = b.read(1).ok()? as usize;
        b.skip(16 + 16).ok()?;
        let mapping = b.read(8).ok()? as usize;
        let half = block_sizes[long] / 2;
        let used = mapping_floors.get(mapping).map_or(&[][..], |f| &f[..]);
        for &f in used {
            if let Some(Some(x)) = floor_x.get(f) {
                if *x >= half {
                    return Some(Err(bad(format!(
                        "a floor states X {x}, past its block of {half}"
                    ))));
                }
            }
        }
    }
    Some(Ok(()))
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
        assert!(check_setup(&setup((1 << 24) - 1, 1 << 15), None).is_err());
        assert!(check_setup(&setup(16, 2), None).is_ok());
        // 16 codewords of 1 bit: no prefix code has them
        assert!(check_setup(&codebook(16, 2, 1, 2), None).is_err());
        // lookup type 1: 81 entries of 4 dimensions is 3^4, exact in f32;
        // 0 dimensions has no size at all
        assert!(check_setup(&codebook(81, 4, 7, 1), None).is_ok());
        assert!(check_setup(&codebook(81, 0, 7, 1), None).is_err());
        // 0 dimensions, whatever the lookup type
        assert!(check_setup(&codebook(16, 0, 4, 0), None).is_err());
        assert!(float_lookup1_holds(81, 4));
        assert!(!float_lookup1_holds(1, 40)); // 2^40 overflows
        assert_eq!(lookup1_values(81, 4), 3);
        assert_eq!(lookup1_values(80, 4), 2);
    }

    /// A whole setup header: one codebook (two 1-bit codewords), one floor 1
    /// with the single X value `x` (8 range bits), one residue with
    /// `classbook`, one mapping and one short-block mode.
    fn configured(x: u64, classbook: u64) -> Vec<u8> {
        floored(&[x], 2, None, classbook)
    }

    /// The same with the floor's X values `xs` (one partition class of
    /// `xs.len()` dimensions) and its `multiplier`; with `Some(entries)` the
    /// codebook has that many entries and is the class's one subclass book.
    fn floored(xs: &[u64], multiplier: u64, subbook: Option<u64>, classbook: u64) -> Vec<u8> {
        let mut w = W(b"\x05vorbis".to_vec(), 56);
        let entries = subbook.unwrap_or(2);
        let length = ilog(entries - 1);
        let head = [
            (0, 8),         // one codebook
            (0x564342, 24), // its sync
            (1, 16),        // 1 dimension
            (entries, 24),
            (1, 1), // length-ordered
            (u64::from(length) - 1, 5),
            (entries, ilog(entries)), // all of them that length
            (0, 4),                   // no lookup table
            (0, 6),                   // one time domain transform
            (0, 16),
            (0, 6),                            // one floor
            (1, 16),                           // of type 1
            (1, 5),                            // one partition
            (0, 4),                            // of class 0
            (xs.len() as u64 - 1, 3),          // its dimensions
            (0, 2),                            // no subclasses
            (u64::from(subbook.is_some()), 8), // subclass book: none or book 0
            (multiplier - 1, 2),
            (8, 4), // 8 range bits
        ];
        let tail = [
            (0, 6),  // one residue
            (0, 16), // of type 0
            (0, 24),
            (0, 24),
            (0, 24),
            (0, 6), // one classification
            (classbook, 8),
            (0, 3),
            (0, 1),
            (0, 6),  // one mapping
            (0, 16), // of type 0
            (0, 1),  // one submap
            (0, 1),  // no coupling
            (0, 2),
            (0, 8),
            (0, 8), // floor 0
            (0, 8), // residue 0
            (0, 6), // one mode
            (0, 1), // short blocks
            (0, 16),
            (0, 16),
            (0, 8), // mapping 0
        ];
        let xs = xs.iter().map(|&x| (x, 8));
        for (v, n) in head.into_iter().chain(xs).chain(tail) {
            w.put(v, n);
        }
        w.0
    }

    /// An identification header: mono, blocks of 256 samples (a floor
    /// covers 128).
    fn mono_ident() -> Vec<u8> {
        let mut ident = b"\x01vorbis\0\0\0\0\x01".to_vec();
        ident.resize(28, 0);
        ident.extend_from_slice(&[0x88, 1]);
        ident
    }

    #[test]
    fn floors_and_residues_are_checked_against_blocks_and_codebooks() {
        let ident = mono_ident();
        let check = |setup: Vec<u8>| check_setup(&setup, Some(&ident));
        assert!(check(configured(100, 0)).is_ok());
        let e = check(configured(0, 0)).unwrap_err();
        assert!(e.to_string().contains("point 0"), "{e}");
        let e = check(configured(180, 0)).unwrap_err();
        assert!(e.to_string().contains("past its block of 128"), "{e}");
        let e = check(configured(100, 5)).unwrap_err();
        assert!(e.to_string().contains("classbook 5"), "{e}");
        // without the identification header only the codebooks are checked
        assert!(check_setup(&configured(180, 5), None).is_ok());
        // X values stated twice divide by 0 as the point 0 does
        assert!(check(floored(&[10, 20, 30], 2, Some(2), 0)).is_ok());
        let e = check(floored(&[10, 20, 10], 2, Some(2), 0)).unwrap_err();
        assert!(e.to_string().contains("point 10 twice"), "{e}");
        // end points read in 7 bits, a range of 86: past the dB table
        let e = check(floored(&[10], 3, None, 0)).unwrap_err();
        assert!(e.to_string().contains("multiplier 3"), "{e}");
        for multiplier in [1, 2, 4] {
            assert!(check(floored(&[10], multiplier, Some(2), 0)).is_ok());
        }
    }

    #[test]
    fn floor_values_past_the_range_are_refused() {
        let ident = mono_ident();
        // a subclass book of 300 entries (values up to 299) against a range
        // of 128: the values symphonia decodes leave its 256-entry table
        let check = |setup: Vec<u8>| check_setup(&setup, Some(&ident));
        let e = check(floored(&[10], 2, Some(300), 0)).unwrap_err();
        assert!(
            e.to_string().contains("up to 299, past its range of 128"),
            "{e}"
        );
        assert!(check(floored(&[10], 2, Some(128), 0)).is_ok());
        assert!(check(floored(&[10], 2, Some(129), 0)).is_err());
        assert!(check(floored(&[10], 1, Some(256), 0)).is_ok());
        assert!(check(floored(&[10], 4, Some(65), 0)).is_err());
    }
}
