//! A structural check of MP4/M4A files before symphonia's demuxer sees them.
//!
//! symphonia's ISO-BMFF reader sizes buffers from the file's own counts and
//! lengths (`Vec::with_capacity(entry_count)` for sample tables, a zeroed
//! buffer of an atom's declared length for handler and metadata atoms). A
//! count or a length that lies asks for up to 64 GiB at once, and a failed
//! allocation aborts the process: it is not a panic, so nothing can contain
//! it. This walk refuses such files first: every atom must fit inside its
//! parent (so no declared length exceeds the file), and every sample table's
//! entries must fit inside its atom (so no count exceeds what the file holds),
//! no sample may be larger than the file (the demuxer allocates each sample's
//! stated size, in `stsz`, `trex`, `tfhd` and `trun`, before reading it), and
//! the MPEG-4 descriptors of `esds` must fit in their parents (the decoder
//! configuration is allocated at its stated length). Allocations are then
//! bounded by a small multiple of the file's size. It also refuses what makes
//! the demuxer panic: a missing ES descriptor, atoms shorter than the fields
//! it subtracts from their length, a media timescale of 0.

use std::io::{Read, Seek, SeekFrom};

use crate::AudioError;

/// Nesting deeper than this is refused (real files nest about 8 deep).
const MAX_DEPTH: usize = 16;
/// Atoms visited before the walk gives up (a file of millions of tiny atoms).
const MAX_ATOMS: usize = 100_000;

fn bad(msg: impl Into<String>) -> AudioError {
    AudioError::Corrupt(format!("mp4: {}", msg.into()))
}

/// A sample size the demuxer allocates before reading the sample: no larger
/// than the `len` bytes of the file.
fn sample_fits(kind: &[u8; 4], size: u64, len: u64) -> Result<(), AudioError> {
    if size > len {
        return Err(bad(format!(
            "'{}' declares a sample of {size} bytes, more than the file holds",
            String::from_utf8_lossy(kind)
        )));
    }
    Ok(())
}

/// Where atoms are found.
#[derive(Clone, Copy)]
enum Within {
    /// In `ilst`: metadata items, each a container.
    Ilst,
    /// In a metadata item: `data`, `mean` and `name` atoms.
    Item,
    Other,
}

/// An atom of a metadata item, whose payload is `len` bytes: the demuxer
/// subtracts the fields of `data` (8 bytes), `mean` and `name` (4) from the
/// length it reads, so a shorter one would wrap around to an allocation of
/// some 2^64 bytes.
fn item_atom(kind: &[u8; 4], len: u64) -> Result<(), AudioError> {
    let fields = match kind {
        b"data" => 8,
        b"mean" | b"name" => 4,
        _ => 0,
    };
    if len < fields {
        return Err(bad(format!(
            "a metadata '{}' atom of {len} bytes",
            String::from_utf8_lossy(kind)
        )));
    }
    Ok(())
}

struct Walker<'a, R: ?Sized> {
    r: &'a mut R,
    base: u64,
    /// The bytes the walk covers: no sample is larger.
    len: u64,
    atoms: usize,
    /// The start of the last `moof`, and the data offset its `tfhd` states:
    /// what a `trun`'s data offset is relative to.
    moof_at: u64,
    fragment_base: Option<u64>,
}

impl<R: Read + Seek + ?Sized> Walker<'_, R> {
    fn read<const N: usize>(&mut self, at: u64) -> Result<[u8; N], AudioError> {
        let mut b = [0u8; N];
        self.r
            .seek(SeekFrom::Start(self.base + at))
            .and_then(|_| self.r.read_exact(&mut b))
            .map_err(|_| bad(format!("the file ends inside a header at byte {at}")))?;
        Ok(b)
    }

    fn u32(&mut self, at: u64) -> Result<u64, AudioError> {
        Ok(u32::from_be_bytes(self.read::<4>(at)?) as u64)
    }

    fn u8(&mut self, at: u64) -> Result<u64, AudioError> {
        Ok(self.read::<1>(at)?[0] as u64)
    }

    /// A sample size the demuxer will allocate before reading the sample.
    fn sample_size(&self, kind: &[u8; 4], size: u64) -> Result<(), AudioError> {
        sample_fits(kind, size, self.len)
    }

    /// The big-endian field of `width` bytes at `offset` in each of the
    /// `count` entries of `stride` bytes from `at`, read a block at a time,
    /// each passed to `check`.
    fn entries(
        &mut self,
        (at, count, stride): (u64, u64, u64),
        (offset, width): (usize, usize),
        mut check: impl FnMut(u64) -> Result<(), AudioError>,
    ) -> Result<(), AudioError> {
        const BLOCK: u64 = 4096;
        let mut buf = vec![0u8; (BLOCK * stride) as usize];
        let mut done = 0;
        while done < count {
            let n = (count - done).min(BLOCK);
            let bytes = &mut buf[..(n * stride) as usize];
            self.r
                .seek(SeekFrom::Start(self.base + at + done * stride))
                .and_then(|_| self.r.read_exact(bytes))
                .map_err(|_| bad("the file ends inside a table"))?;
            for e in bytes.chunks_exact(stride as usize) {
                let field = e[offset..offset + width]
                    .iter()
                    .fold(0u64, |a, &b| (a << 8) | b as u64);
                check(field)?;
            }
            done += n;
        }
        Ok(())
    }

    /// Each of `count` sample sizes (the 32-bit field at `offset` of entries
    /// of `stride` bytes from `at`).
    fn sample_sizes(
        &mut self,
        kind: &[u8; 4],
        at: u64,
        count: u64,
        stride: u64,
        offset: u64,
    ) -> Result<(), AudioError> {
        let len = self.len;
        self.entries((at, count, stride), (offset as usize, 4), |size| {
            sample_fits(kind, size, len)
        })
    }

    /// Each of `count` chunk offsets of `width` bytes from `at`: within the file.
    fn offsets(
        &mut self,
        kind: &[u8; 4],
        at: u64,
        count: u64,
        width: u64,
    ) -> Result<(), AudioError> {
        let len = self.len;
        self.entries((at, count, width), (0, width as usize), |offset| {
            if offset > len {
                return Err(bad(format!(
                    "'{}' places a chunk at byte {offset}, past the file",
                    String::from_utf8_lossy(kind)
                )));
            }
            Ok(())
        })
    }

    /// The MPEG-4 descriptors in `[at, end)` (an `esds` atom or a
    /// descriptor's body): each must fit, and the lengths symphonia reads
    /// before a descriptor's own fields (3 for ES, 13 for DecoderConfig)
    /// must be there; returns whether an ES descriptor was found.
    fn descriptors(&mut self, mut at: u64, end: u64, depth: usize) -> Result<bool, AudioError> {
        let mut es = false;
        while end.saturating_sub(at) > 2 {
            let tag = self.u8(at)?;
            let mut size = 0u64;
            let mut head = 1;
            for _ in 0..4 {
                let b = self.u8(at + head)?;
                head += 1;
                size = (size << 7) | (b & 0x7F);
                if b & 0x80 == 0 {
                    break;
                }
            }
            let body = at + head;
            if body > end || size > end - body {
                return Err(bad(
                    "an esds descriptor declares more than its parent holds",
                ));
            }
            match tag {
                3 if depth == 0 => {
                    if size < 3 {
                        return Err(bad("a short ES descriptor"));
                    }
                    es = true;
                    let flags = self.u8(body + 2)?;
                    let mut q = body + 3;
                    if flags & 0x80 != 0 {
                        q += 2;
                    }
                    if flags & 0x40 != 0 {
                        q += 1 + self.u8(q)?;
                    }
                    if flags & 0x20 != 0 {
                        q += 2;
                    }
                    // (symphonia scopes the rest to size - 3 from here on)
                    self.descriptors(q, (q + size - 3).min(end), 1)?;
                }
                4 if depth == 1 => {
                    if size < 13 {
                        return Err(bad("a short decoder config descriptor"));
                    }
                    self.descriptors(body + 13, body + size, 2)?;
                }
                _ => {}
            }
            at = body + size;
        }
        Ok(es)
    }

    /// Checks the atoms in `[from, to)`, found in `within`.
    fn atoms(
        &mut self,
        from: u64,
        to: u64,
        depth: usize,
        within: Within,
    ) -> Result<(), AudioError> {
        if depth > MAX_DEPTH {
            return Err(bad("atoms nested too deep"));
        }
        let mut at = from;
        while at + 8 <= to {
            self.atoms += 1;
            if self.atoms > MAX_ATOMS {
                return Err(bad("too many atoms"));
            }
            let size = self.u32(at)?;
            let kind = self.read::<4>(at + 4)?;
            let (header, size) = match size {
                // "to the end": symphonia reads the length of any other atom
                // as 0 and subtracts its fields from that
                0 if &kind != b"mdat" => {
                    return Err(bad(format!(
                        "atom '{}' at byte {at} has size 0",
                        String::from_utf8_lossy(&kind)
                    )))
                }
                0 => (8, to - at),
                1 => {
                    if at + 16 > to {
                        return Err(bad("a 64-bit atom size is cut off"));
                    }
                    (16, u64::from_be_bytes(self.read::<8>(at + 8)?))
                }
                n => (8, n),
            };
            if &kind == b"mdat" && size > to - at {
                // a cut-off file: the media data is read as it comes, never
                // sized up front, so what is there may still be decoded
                return Ok(());
            }
            if size < header || size > to - at {
                return Err(bad(format!(
                    "atom '{}' at byte {at} declares {size} bytes, more than its parent holds",
                    String::from_utf8_lossy(&kind)
                )));
            }
            if &kind == b"moof" {
                self.moof_at = at;
            }
            if &kind == b"traf" {
                self.fragment_base = None;
            }
            match within {
                Within::Ilst => self.atoms(at + header, at + size, depth + 1, Within::Item)?,
                Within::Item => item_atom(&kind, size - header)?,
                Within::Other => self.atom(&kind, at + header, at + size, depth)?,
            }
            at += size;
        }
        Ok(())
    }

    /// Checks the payload `[p, end)` of one atom.
    fn atom(&mut self, kind: &[u8; 4], p: u64, end: u64, depth: usize) -> Result<(), AudioError> {
        let len = end - p;
        let need = |w: &mut Self, fixed: u64, entry: u64| -> Result<(), AudioError> {
            if len < fixed {
                return Err(bad(format!(
                    "'{}' is too short",
                    String::from_utf8_lossy(kind)
                )));
            }
            let count = w.u32(p + fixed - 4)?;
            if count.saturating_mul(entry) > len - fixed {
                return Err(bad(format!(
                    "'{}' declares {count} entries, more than it holds",
                    String::from_utf8_lossy(kind)
                )));
            }
            Ok(())
        };
        match kind {
            b"moov" | b"trak" | b"mdia" | b"minf" | b"stbl" | b"edts" | b"dinf" | b"mvex"
            | b"moof" | b"traf" | b"udta" | b"mfra" => self.atoms(p, end, depth + 1, Within::Other),
            b"ilst" => self.atoms(p, end, depth + 1, Within::Ilst),
            // audio sample entries (in `stsd`): fields by version, then atoms
            b"mp4a" | b"alac" | b"fLaC" | b"Opus" | b"enca" if len >= 28 => {
                let version = u16::from_be_bytes(self.read::<2>(p + 8)?);
                let fields = match version {
                    0 => 28,
                    1 => 44,
                    _ => 64,
                };
                if len < fields {
                    // the demuxer subtracts the fields from the atom's length
                    return Err(bad("an audio sample entry shorter than its fields"));
                }
                self.atoms(p + fields, end, depth + 1, Within::Other)
            }
            // full boxes holding atoms
            b"meta" => {
                if len < 4 {
                    return Err(bad("'meta' is too short"));
                }
                self.atoms(p + 4, end, depth + 1, Within::Other)
            }
            b"stsd" => {
                need(self, 8, 8)?;
                self.atoms(p + 8, end, depth + 1, Within::Other)
            }
            b"hdlr" if len < 24 => Err(bad("'hdlr' is too short")),
            b"ftyp" if len < 8 => Err(bad("'ftyp' is too short")),
            // the track's time base is 1/timescale (0: a panic)
            b"mdhd" if len >= 4 => {
                let at = if self.u8(p)? == 1 { 20 } else { 12 };
                if at + 4 <= len && self.u32(p + at)? == 0 {
                    return Err(bad("'mdhd' states a timescale of 0"));
                }
                Ok(())
            }
            // version/flags, entry count, entries; chunk offsets within the
            // file (the demuxer seeks to them; past 2^63 is a panic)
            b"stco" => {
                need(self, 8, 4)?;
                let count = self.u32(p + 4)?;
                self.offsets(kind, p + 8, count, 4)
            }
            b"co64" => {
                need(self, 8, 8)?;
                let count = self.u32(p + 4)?;
                self.offsets(kind, p + 8, count, 8)
            }
            b"stss" => need(self, 8, 4),
            b"stts" | b"ctts" => need(self, 8, 8),
            b"stsc" => need(self, 8, 12),
            b"stsz" => {
                if len < 12 {
                    return Err(bad("'stsz' is too short"));
                }
                let sample_size = self.u32(p + 4)?;
                need(self, 12, if sample_size == 0 { 4 } else { 0 })?;
                if sample_size == 0 {
                    let count = self.u32(p + 8)?;
                    self.sample_sizes(kind, p + 12, count, 4, 0)
                } else {
                    self.sample_size(kind, sample_size)
                }
            }
            // fragments: default sizes and each run's sizes
            b"trex" if len >= 24 => {
                let size = self.u32(p + 16)?;
                self.sample_size(kind, size)
            }
            b"tfhd" if len >= 8 => {
                let flags = self.u32(p)? & 0xFF_FFFF;
                let mut q = p + 8;
                if flags & 0x1 != 0 && q + 8 <= end {
                    let base = u64::from_be_bytes(self.read::<8>(q)?);
                    if base > self.len {
                        return Err(bad("'tfhd' states a data offset past the file"));
                    }
                    self.fragment_base = Some(base);
                }
                for (flag, width) in [(0x1, 8), (0x2, 4), (0x8, 4)] {
                    if flags & flag != 0 {
                        q += width;
                    }
                }
                if flags & 0x10 != 0 && q + 4 <= end {
                    let size = self.u32(q)?;
                    self.sample_size(kind, size)?;
                }
                Ok(())
            }
            b"trun" if len >= 8 => {
                let flags = self.u32(p)? & 0xFF_FFFF;
                let count = self.u32(p + 4)?;
                // every sample has at least a byte of data in the file; the
                // demuxer walks a run's count even when the run stores no
                // per-sample fields (4 billion of them: a hang)
                if count > self.len {
                    return Err(bad(format!(
                        "'trun' states {count} samples in a file of {} bytes",
                        self.len
                    )));
                }
                let mut q = p + 8;
                if flags & 0x1 != 0 && q + 4 <= end {
                    // the run's data, relative to the fragment's base: the
                    // demuxer's subtraction must not wrap around, nor land
                    // past the file
                    let offset = self.u32(q)? as u32 as i32 as i64;
                    let base = self.fragment_base.unwrap_or(self.moof_at) as i64;
                    if !(0..=self.len as i64).contains(&(base + offset)) {
                        return Err(bad("'trun' places its data outside the file"));
                    }
                }
                if flags & 0x1 != 0 {
                    q += 4;
                }
                if flags & 0x4 != 0 {
                    // symphonia reads the first sample's flags as if they
                    // said whether its duration (0x4) and size (0x200) were
                    // stored, and then indexes those per-sample tables
                    // although the run stores none (a panic). Those bits lie
                    // in the degradation priority, which encoders leave 0.
                    if q + 4 <= end {
                        let first = self.u32(q)?;
                        if (first & 0x4 != 0 && flags & 0x100 == 0)
                            || (first & 0x200 != 0 && flags & 0x200 == 0)
                        {
                            return Err(bad(
                                "'trun' first-sample flags name per-sample fields it lacks",
                            ));
                        }
                    }
                    q += 4;
                }
                // per sample: duration, size, flags, composition offset
                let stride = 4 * (flags & 0xF00).count_ones() as u64;
                if flags & 0x200 == 0 || q > end {
                    return Ok(());
                }
                let offset = if flags & 0x100 != 0 { 4 } else { 0 };
                // as many entries as the atom holds (the reader stops there)
                let count = count.min((end - q) / stride);
                self.sample_sizes(kind, q, count, stride, offset)
            }
            b"esds" => {
                if len < 4 {
                    return Err(bad("'esds' is too short"));
                }
                // symphonia unwraps the ES descriptor: it must be there
                if !self.descriptors(p + 4, end, 0)? {
                    return Err(bad("'esds' without an ES descriptor"));
                }
                Ok(())
            }
            b"elst" => {
                let version = self.read::<1>(p)?[0];
                need(self, 8, if version == 1 { 20 } else { 12 })
            }
            _ => Ok(()),
        }
    }
}

/// Checks the MP4 structure of the `len` bytes of `r` from `start` on.
pub(crate) fn check<R: Read + Seek + ?Sized>(
    r: &mut R,
    start: u64,
    len: u64,
) -> Result<(), AudioError> {
    let mut w = Walker {
        r,
        base: start,
        len,
        atoms: 0,
        moof_at: 0,
        fragment_base: None,
    };
    w.atoms(0, len, 0, Within::Other)?;
    w.r.seek(SeekFrom::Start(start))
        .map_err(|e| AudioError::Io(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn atom(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut v = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(payload);
        v
    }

    fn run(bytes: &[u8]) -> Result<(), AudioError> {
        check(&mut Cursor::new(bytes), 0, bytes.len() as u64)
    }

    #[test]
    fn lying_counts_and_sizes_are_refused() {
        let ftyp = atom(b"ftyp", b"M4A \0\0\0\0");
        // stsc with 0xFFFFFFFF entries in a 16-byte table
        let mut stsc = vec![0, 0, 0, 0];
        stsc.extend_from_slice(&u32::MAX.to_be_bytes());
        stsc.extend_from_slice(&[0; 12]);
        let moov = atom(
            b"moov",
            &atom(b"trak", &atom(b"stbl", &atom(b"stsc", &stsc))),
        );
        let file = [ftyp.clone(), moov].concat();
        assert!(run(&file).is_err());
        // a truthful table passes
        let mut ok = vec![0, 0, 0, 0];
        ok.extend_from_slice(&1u32.to_be_bytes());
        ok.extend_from_slice(&[0; 12]);
        let moov = atom(b"moov", &atom(b"trak", &atom(b"stbl", &atom(b"stsc", &ok))));
        assert!(run(&[ftyp.clone(), moov].concat()).is_ok());
        // an atom larger than the file
        let mut big = ftyp.clone();
        big.extend_from_slice(&1000u32.to_be_bytes());
        big.extend_from_slice(b"moov");
        assert!(run(&big).is_err());
        // a 64-bit size of 2^40
        let mut huge = ftyp.clone();
        huge.extend_from_slice(&1u32.to_be_bytes());
        huge.extend_from_slice(b"udta");
        huge.extend_from_slice(&(1u64 << 40).to_be_bytes());
        assert!(run(&huge).is_err());
        // but media data cut off by a truncated download is left to the demuxer
        let mut cut = ftyp.clone();
        cut.extend_from_slice(&1000u32.to_be_bytes());
        cut.extend_from_slice(b"mdat\0\0");
        assert!(run(&cut).is_ok());
        // meta → ilst with a lying child
        let mut lie = 1_000_000u32.to_be_bytes().to_vec();
        lie.extend_from_slice(b"data");
        let meta = atom(b"meta", &[vec![0; 4], atom(b"ilst", &lie)].concat());
        assert!(run(&[ftyp, atom(b"moov", &atom(b"udta", &meta))].concat()).is_err());
    }

    #[test]
    fn what_the_demuxer_trusts_is_checked() {
        let ftyp = atom(b"ftyp", b"M4A \0\0\0\0");
        let with = |moov: Vec<u8>| [ftyp.clone(), moov].concat();
        // a sample of 1 GiB in a file of a few bytes (stsz, uniform size)
        let mut stsz = vec![0, 0, 0, 0];
        stsz.extend_from_slice(&(1u32 << 30).to_be_bytes());
        stsz.extend_from_slice(&1u32.to_be_bytes());
        let big = with(atom(b"moov", &atom(b"stbl", &atom(b"stsz", &stsz))));
        assert!(matches!(run(&big), Err(AudioError::Corrupt(m)) if m.contains("sample of")));
        // a media timescale of 0, and a true one
        let mut mdhd = vec![0u8; 24];
        let zero = with(atom(b"moov", &atom(b"mdia", &atom(b"mdhd", &mdhd))));
        assert!(matches!(run(&zero), Err(AudioError::Corrupt(m)) if m.contains("timescale")));
        mdhd[12..16].copy_from_slice(&16000u32.to_be_bytes());
        assert!(run(&with(atom(b"moov", &atom(b"mdia", &atom(b"mdhd", &mdhd))))).is_ok());
        // an esds without an ES descriptor (only a decoder config one)
        let esds = [vec![0; 4], vec![4, 13], vec![0; 13]].concat();
        let mut mp4a = vec![0u8; 28];
        mp4a.extend_from_slice(&atom(b"esds", &esds));
        let no_es = with(atom(
            b"moov",
            &atom(b"stsd", &[vec![0; 8], atom(b"mp4a", &mp4a)].concat()),
        ));
        assert!(matches!(run(&no_es), Err(AudioError::Corrupt(m)) if m.contains("ES descriptor")));
        // an atom of size 0 other than mdat, a metadata data atom without its fields
        let mut hdlr0 = 0u32.to_be_bytes().to_vec();
        hdlr0.extend_from_slice(b"hdlr");
        assert!(run(&with(atom(b"moov", &hdlr0))).is_err());
        let item = atom(b"\xa9too", &atom(b"data", &[0; 4]));
        let meta = atom(b"meta", &[vec![0; 4], atom(b"ilst", &item)].concat());
        assert!(run(&with(atom(b"moov", &atom(b"udta", &meta)))).is_err());
        // a chunk past the end of the file
        let mut stco = vec![0, 0, 0, 0];
        stco.extend_from_slice(&1u32.to_be_bytes());
        stco.extend_from_slice(&1_000_000u32.to_be_bytes());
        let far = with(atom(b"moov", &atom(b"stbl", &atom(b"stco", &stco))));
        assert!(matches!(run(&far), Err(AudioError::Corrupt(m)) if m.contains("past the file")));
        // a fragment's run placed before the start of the file
        let mut trun = vec![0, 0, 0, 1]; // data offset present
        trun.extend_from_slice(&0u32.to_be_bytes());
        trun.extend_from_slice(&(-100_000i32).to_be_bytes());
        let moof = atom(b"moof", &atom(b"traf", &atom(b"trun", &trun)));
        assert!(matches!(run(&with(moof)), Err(AudioError::Corrupt(m)) if m.contains("outside")));
        let mut trun = vec![0, 0, 0, 1];
        trun.extend_from_slice(&0u32.to_be_bytes());
        trun.extend_from_slice(&8i32.to_be_bytes());
        let moof = atom(b"moof", &atom(b"traf", &atom(b"trun", &trun)));
        assert!(run(&with(moof)).is_ok());
        // first-sample flags whose degradation priority symphonia reads as
        // "the first duration (0x4) or size (0x200) is stored" in a run that
        // stores no durations or sizes
        for (first, per_sample) in [(0x4u32, 0u32), (0x200, 0), (0x4, 0x100), (0x200, 0x200)] {
            let mut trun = (0x4 | per_sample).to_be_bytes().to_vec();
            trun.extend_from_slice(&1u32.to_be_bytes());
            trun.extend_from_slice(&first.to_be_bytes());
            trun.extend_from_slice(&[0; 4]);
            let moof = atom(b"moof", &atom(b"traf", &atom(b"trun", &trun)));
            let refused = matches!(run(&with(moof)), Err(AudioError::Corrupt(m)) if m.contains("first-sample"));
            assert_eq!(
                refused,
                per_sample == 0,
                "first {first:#x}, per sample {per_sample:#x}"
            );
        }
        // a run of 4 billion samples that stores no per-sample fields
        let mut trun = vec![0, 0, 0, 0];
        trun.extend_from_slice(&0xFF00_0019u32.to_be_bytes());
        let moof = atom(b"moof", &atom(b"traf", &atom(b"trun", &trun)));
        assert!(
            matches!(run(&with(moof)), Err(AudioError::Corrupt(m)) if m.contains("4278190105 samples"))
        );
    }
}
