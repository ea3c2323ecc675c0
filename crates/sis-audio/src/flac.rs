//! A check of FLAC metadata blocks before symphonia's FLAC demuxer sees them.
//!
//! symphonia reads a VORBIS_COMMENT block's comments and a PICTURE block's
//! MIME type, description and image by allocating the length each declares
//! (up to 4 GiB) before reading it, although the block holds at most 16 MiB;
//! a failed allocation aborts the process. This walks the metadata blocks of
//! a native FLAC stream and refuses any such length past the end of its
//! block, so what symphonia allocates is bounded by the block, and the block
//! by the input. (FLAC in Ogg carries the same blocks in packets: `ogg.rs`.)

use crate::input::{read_at, Input};
use crate::AudioError;

/// Metadata block types symphonia allocates from.
pub(crate) const VORBIS_COMMENT: u8 = 4;
pub(crate) const PICTURE: u8 = 6;
/// Blocks walked before giving up (a real file has a handful).
const MAX_BLOCKS: usize = 10_000;

/// Checks a PICTURE block's body (`data[at..]`, big-endian fields): the
/// MIME type, description and image lengths must fit in what follows.
/// Running out of bytes where a field should be is left to the reader,
/// which fails without allocating.
pub(crate) fn check_picture(data: &[u8], mut at: usize, what: &str) -> Result<(), AudioError> {
    let u32_at = |at: usize| -> Option<usize> {
        let b = data.get(at..at.checked_add(4)?)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    // picture type; then MIME type and description, each length-prefixed;
    // then width, height, depth and colours; then the image, length-prefixed
    at += 4;
    for skip in [0, 0, 16] {
        at += skip;
        let Some(n) = u32_at(at) else {
            return Ok(());
        };
        at += 4;
        let left = data.len().saturating_sub(at);
        if n > left {
            return Err(AudioError::Corrupt(format!(
                "{what}: a picture field declares {n} bytes, only {left} follow"
            )));
        }
        at += n;
    }
    Ok(())
}

/// Checks the metadata blocks of the native FLAC stream (`fLaC` ...) that
/// starts at `start` in the `len` bytes of `input`.
pub(crate) fn check(input: &mut dyn Input, start: u64, len: u64) -> Result<(), AudioError> {
    let mut at = start + 4;
    let mut body: Vec<u8> = Vec::new();
    for _ in 0..MAX_BLOCKS {
        let mut head = [0u8; 4];
        if read_at(input, at, &mut head)? < 4 {
            // the demuxer fails on the cut header itself
            return Ok(());
        }
        let kind = head[0] & 0x7F;
        let size = u32::from_be_bytes([0, head[1], head[2], head[3]]) as u64;
        at += 4;
        if kind == VORBIS_COMMENT || kind == PICTURE {
            // The reader is scoped to the block (at most 16 MiB), so lengths
            // are measured against the block even where the file ends first
            // (what is missing reads as zeros here).
            body.clear();
            body.resize(size as usize, 0);
            read_at(input, at, &mut body)?;
            if kind == VORBIS_COMMENT {
                crate::vorbis::check_comment(&body, 0, "flac")?;
            } else {
                check_picture(&body, 0, "flac")?;
            }
        }
        if head[0] & 0x80 != 0 {
            return Ok(());
        }
        at += size;
        if at >= len {
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn block(kind: u8, last: bool, body: &[u8]) -> Vec<u8> {
        let n = body.len() as u32;
        let mut v = vec![kind | if last { 0x80 } else { 0 }];
        v.extend_from_slice(&n.to_be_bytes()[1..]);
        v.extend_from_slice(body);
        v
    }

    fn run(bytes: &[u8]) -> Result<(), AudioError> {
        check(&mut Cursor::new(bytes), 0, bytes.len() as u64)
    }

    #[test]
    fn lying_lengths_are_refused() {
        let streaminfo = block(0, false, &[0; 34]);
        // one comment of 5 bytes: fits
        let mut comment = 3u32.to_le_bytes().to_vec();
        comment.extend_from_slice(b"abc");
        comment.extend_from_slice(&1u32.to_le_bytes());
        comment.extend_from_slice(&5u32.to_le_bytes());
        comment.extend_from_slice(b"A=bcd");
        let ok = [
            &b"fLaC"[..],
            &streaminfo,
            &block(VORBIS_COMMENT, true, &comment),
        ]
        .concat();
        assert!(run(&ok).is_ok());
        // the comment declares 4 GiB
        let n = comment.len();
        comment[n - 9..n - 5].copy_from_slice(&u32::MAX.to_le_bytes());
        let bad = [
            &b"fLaC"[..],
            &streaminfo,
            &block(VORBIS_COMMENT, true, &comment),
        ]
        .concat();
        assert!(matches!(run(&bad), Err(AudioError::Corrupt(m)) if m.contains("comment")));
        // a picture whose MIME type declares 3 GB
        let mut picture = 3u32.to_be_bytes().to_vec();
        picture.extend_from_slice(&3_000_000_000u32.to_be_bytes());
        let bad = [&b"fLaC"[..], &streaminfo, &block(PICTURE, true, &picture)].concat();
        assert!(matches!(run(&bad), Err(AudioError::Corrupt(m)) if m.contains("picture")));
        // a true picture passes
        let mut picture = 3u32.to_be_bytes().to_vec();
        picture.extend_from_slice(&9u32.to_be_bytes());
        picture.extend_from_slice(b"image/png");
        picture.extend_from_slice(&0u32.to_be_bytes());
        picture.extend_from_slice(&[0; 16]);
        picture.extend_from_slice(&2u32.to_be_bytes());
        picture.extend_from_slice(&[1, 2]);
        let ok = [&b"fLaC"[..], &streaminfo, &block(PICTURE, true, &picture)].concat();
        assert!(run(&ok).is_ok());
    }
}
