//! A structural check of MP4/M4A files before symphonia's demuxer sees them.
//!
//! symphonia's ISO-BMFF reader sizes buffers from the file's own counts and
//! lengths (`Vec::with_capacity(entry_count)` for sample tables, a zeroed
//! buffer of an atom's declared length for handler and metadata atoms). A
//! count or a length that lies asks for up to 64 GiB at once, and a failed
//! allocation aborts the process: it is not a panic, so nothing can contain
//! it. This walk refuses such files first: every atom must fit inside its
//! parent (so no declared length exceeds the file), and every sample table's
//! entries must fit inside its atom (so no count exceeds what the file holds).
//! Allocations are then bounded by a small multiple of the file's size.

use std::io::{Read, Seek, SeekFrom};

use crate::AudioError;

/// Nesting deeper than this is refused (real files nest about 8 deep).
const MAX_DEPTH: usize = 16;
/// Atoms visited before the walk gives up (a file of millions of tiny atoms).
const MAX_ATOMS: usize = 100_000;

fn bad(msg: impl Into<String>) -> AudioError {
    AudioError::Corrupt(format!("mp4: {}", msg.into()))
}

struct Walker<'a, R: ?Sized> {
    r: &'a mut R,
    base: u64,
    atoms: usize,
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

    /// Checks the atoms in `[from, to)`; `items`: they are the metadata items
    /// of an `ilst`, each a container of `data` atoms.
    fn atoms(&mut self, from: u64, to: u64, depth: usize, items: bool) -> Result<(), AudioError> {
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
            if items {
                self.atoms(at + header, at + size, depth + 1, false)?;
            } else {
                self.atom(&kind, at + header, at + size, depth)?;
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
            | b"moof" | b"traf" | b"udta" | b"mfra" => self.atoms(p, end, depth + 1, false),
            b"ilst" => self.atoms(p, end, depth + 1, true),
            // full boxes holding atoms
            b"meta" => {
                if len < 4 {
                    return Err(bad("'meta' is too short"));
                }
                self.atoms(p + 4, end, depth + 1, false)
            }
            b"stsd" => {
                need(self, 8, 8)?;
                self.atoms(p + 8, end, depth + 1, false)
            }
            b"hdlr" if len < 24 => Err(bad("'hdlr' is too short")),
            // version/flags, entry count, entries
            b"stco" | b"stss" => need(self, 8, 4),
            b"co64" | b"stts" | b"ctts" => need(self, 8, 8),
            b"stsc" => need(self, 8, 12),
            b"stsz" => {
                if len < 12 {
                    return Err(bad("'stsz' is too short"));
                }
                let sample_size = self.u32(p + 4)?;
                need(self, 12, if sample_size == 0 { 4 } else { 0 })
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
        atoms: 0,
    };
    w.atoms(0, len, 0, false)?;
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
}
