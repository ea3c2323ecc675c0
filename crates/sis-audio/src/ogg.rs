//! A walk over the Ogg pages of an input as symphonia's Ogg demuxer reads
//! them, checking the packets it hands to code that allocates what a header
//! declares before symphonia sees them: Vorbis setup headers (codebooks) and
//! comment headers, Opus comment headers (`OpusTags`), and the comment and
//! picture blocks of FLAC in Ogg (see `vorbis.rs` and `flac.rs` for what each
//! check refuses). A failed allocation aborts the process, so such inputs
//! must be refused first.
//!
//! The demuxer maps these packets wherever they come in a stream, not only
//! among the first ones, so every page is walked, the way the demuxer reads
//! it: pages found by their capture pattern, with a valid header and CRC
//! (others are skipped as it skips them), packets reassembled per logical
//! stream across continuation pages, a gap in the page sequence dropping the
//! partial packet, at most 16 MiB a packet. Only packets that start like one
//! of the checked headers are kept while they are assembled.

use std::collections::HashMap;

use crate::flac::{check_picture, PICTURE, VORBIS_COMMENT};
use crate::input::{read_at, Input};
use crate::vorbis::{check_comment, check_setup};
use crate::AudioError;

/// The demuxer's largest packet.
const MAX_PACKET: usize = 16 << 20;
/// The most bytes of checked header packets held at once, across streams.
const MAX_HELD: usize = 64 << 20;
/// Bytes read at a time while looking for a capture pattern.
const SCAN: usize = 4096;

/// CRC-32 of Ogg pages: polynomial 0x04c11db7, not reflected, initial 0.
const CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = (i as u32) << 24;
        let mut k = 0;
        while k < 8 {
            c = if c & 0x8000_0000 != 0 {
                (c << 1) ^ 0x04c1_1db7
            } else {
                c << 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

fn crc(mut c: u32, data: &[u8]) -> u32 {
    for &b in data {
        c = (c << 8) ^ CRC_TABLE[((c >> 24) as u8 ^ b) as usize];
    }
    c
}

/// What a logical stream carries, from its first packet.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Vorbis,
    Opus,
    Flac,
    Other,
}

impl Kind {
    fn of(first: &[u8]) -> Kind {
        if first.starts_with(b"\x01vorbis") {
            Kind::Vorbis
        } else if first.starts_with(b"OpusHead") {
            Kind::Opus
        } else if first.starts_with(b"\x7FFLAC") {
            Kind::Flac
        } else {
            Kind::Other
        }
    }

    /// Whether a packet starting with `head` is one the checks read.
    fn checked(self, head: &[u8]) -> bool {
        match self {
            Kind::Vorbis => {
                matches!(head.first(), Some(3 | 5)) && head.get(1..7) == Some(b"vorbis")
            }
            Kind::Opus => head.starts_with(b"OpusTags"),
            // FLAC packets that are not audio (0xFF) are metadata blocks
            Kind::Flac => match head.first() {
                Some(&b) if !matches!(b, 0x00 | 0x80 | 0xFF) => {
                    matches!(b & 0x7F, VORBIS_COMMENT | PICTURE)
                }
                _ => false,
            },
            Kind::Other => false,
        }
    }

    /// Checks a packet `checked` took; `ident`: the stream's first packet.
    fn check(self, packet: &[u8], ident: Option<&[u8]>) -> Result<(), AudioError> {
        match self {
            Kind::Vorbis if packet[0] == 5 => check_setup(packet, ident),
            Kind::Vorbis => check_comment(packet, 7, "ogg/vorbis"),
            Kind::Opus => check_comment(packet, 8, "ogg/opus"),
            // the block reader is not scoped: the packet bounds it
            Kind::Flac if packet[0] & 0x7F == VORBIS_COMMENT => {
                check_comment(packet, 4, "ogg/flac")
            }
            Kind::Flac => check_picture(packet, 4, "ogg/flac"),
            Kind::Other => Ok(()),
        }
    }
}

/// A logical stream being reassembled.
struct Stream {
    kind: Kind,
    /// The identification packet (Vorbis: channels and block sizes).
    ident: Vec<u8>,
    last_sequence: Option<u32>,
    /// Bytes of the packet begun on an earlier page (0: none).
    partial: usize,
    /// Those bytes, when the packet is one the checks read.
    held: Option<Vec<u8>>,
}

impl Stream {
    fn drop_partial(&mut self, held: &mut usize) {
        self.partial = 0;
        if let Some(h) = self.held.take() {
            *held -= h.len();
        }
    }

    /// A whole packet: what was begun earlier and `rest`.
    fn finish(&mut self, rest: &[u8], held: &mut usize) -> Result<(), AudioError> {
        let result = match self.held.take() {
            Some(mut packet) => {
                *held -= packet.len();
                packet.extend_from_slice(rest);
                self.kind.check(&packet, Some(&self.ident))
            }
            None if self.partial == 0 && self.kind.checked(rest) => {
                self.kind.check(rest, Some(&self.ident))
            }
            None => Ok(()),
        };
        self.partial = 0;
        result
    }

    /// The start or the continuation of a packet that goes on on a later
    /// page; `false` when the demuxer would fail here (packet too large).
    fn save(&mut self, piece: &[u8], held: &mut usize) -> Result<bool, AudioError> {
        if self.partial + piece.len() > MAX_PACKET {
            return Ok(false);
        }
        if self.partial == 0 && self.kind.checked(piece) {
            self.held = Some(Vec::new());
        }
        if let Some(h) = &mut self.held {
            *held += piece.len();
            if *held > MAX_HELD {
                return Err(AudioError::Corrupt(
                    "ogg: header packets larger than any encoder writes".into(),
                ));
            }
            h.extend_from_slice(piece);
        }
        self.partial += piece.len();
        Ok(true)
    }
}

/// Checks the Ogg pages of the `len` bytes of `input` from `start` on.
pub(crate) fn check(input: &mut dyn Input, start: u64, len: u64) -> Result<(), AudioError> {
    let end = start.saturating_add(len);
    let mut streams: HashMap<u32, Stream> = HashMap::new();
    let mut held = 0usize;
    let mut pos = start;
    let mut scan = vec![0u8; SCAN];
    let mut body = vec![0u8; 255 * 255];
    loop {
        // the next capture pattern
        let n = read_at(input, pos, &mut scan)?;
        let Some(found) = scan[..n].windows(4).position(|w| w == b"OggS") else {
            if n < 4 || pos + n as u64 >= end {
                return Ok(());
            }
            pos += (n - 3) as u64;
            continue;
        };
        let page = pos + found as u64;
        let mut head = [0u8; 27];
        if read_at(input, page, &mut head)? < 27 {
            return Ok(());
        }
        // an invalid header is skipped whole, as the demuxer skips it
        if head[4] != 0 || head[5] & 0xF8 != 0 {
            pos = page + 27;
            continue;
        }
        let segments = head[26] as usize;
        let mut lacing = [0u8; 255];
        if read_at(input, page + 27, &mut lacing[..segments])? < segments {
            return Ok(());
        }
        let lacing = &lacing[..segments];
        let size: usize = lacing.iter().map(|&l| l as usize).sum();
        let at = page + 27 + segments as u64;
        if read_at(input, at, &mut body[..size])? < size {
            // the demuxer stops at a page cut short
            return Ok(());
        }
        let body = &body[..size];
        let stated = u32::from_le_bytes([head[22], head[23], head[24], head[25]]);
        head[22..26].fill(0);
        if crc(crc(crc(0, &head), lacing), body) != stated {
            // a corrupt page: look again just past its capture pattern
            pos = page + 4;
            continue;
        }
        pos = at + size as u64;
        let serial = u32::from_le_bytes([head[14], head[15], head[16], head[17]]);
        let sequence = u32::from_le_bytes([head[18], head[19], head[20], head[21]]);
        let (continued, first) = (head[5] & 1 != 0, head[5] & 2 != 0);
        // complete packets, and the piece of one going on to the next page
        let mut packets = Vec::new();
        let mut from = 0;
        let mut run = 0;
        for &l in lacing {
            run += l as usize;
            if l < 255 {
                packets.push(&body[from..from + run]);
                from += run;
                run = 0;
            }
        }
        let partial = &body[from..];
        if first {
            // a stream begins: its first packet says what it carries (the
            // demuxer maps no packet of this page)
            if let Some(s) = streams.get_mut(&serial) {
                s.drop_partial(&mut held);
            }
            let first = packets.first().copied().unwrap_or_default();
            streams.insert(
                serial,
                Stream {
                    kind: Kind::of(first),
                    ident: first[..first.len().min(64)].to_vec(),
                    last_sequence: None,
                    partial: 0,
                    held: None,
                },
            );
            continue;
        }
        let Some(s) = streams.get_mut(&serial) else {
            continue;
        };
        if let Some(last) = s.last_sequence {
            if sequence < last || sequence - last > 1 {
                s.drop_partial(&mut held);
            }
        }
        s.last_sequence = Some(sequence);
        let mut packets = packets.into_iter();
        if !continued && s.partial > 0 {
            s.drop_partial(&mut held);
        }
        if continued && s.partial == 0 {
            // the rest of a packet whose start was lost
            if packets.next().is_none() {
                continue;
            }
        }
        for p in packets {
            s.finish(p, &mut held)?;
        }
        if !partial.is_empty() && !s.save(partial, &mut held)? {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// One page of `packets` (each ends on this page) for `serial`.
    fn page(serial: u32, sequence: u32, flags: u8, packets: &[&[u8]]) -> Vec<u8> {
        let mut lacing = Vec::new();
        for p in packets {
            lacing.extend(std::iter::repeat_n(255u8, p.len() / 255));
            lacing.push((p.len() % 255) as u8);
        }
        let mut v = b"OggS\0".to_vec();
        v.push(flags);
        v.extend_from_slice(&0u64.to_le_bytes());
        v.extend_from_slice(&serial.to_le_bytes());
        v.extend_from_slice(&sequence.to_le_bytes());
        v.extend_from_slice(&[0; 4]);
        v.push(lacing.len() as u8);
        v.extend_from_slice(&lacing);
        for p in packets {
            v.extend_from_slice(p);
        }
        let c = crc(0, &v);
        v[22..26].copy_from_slice(&c.to_le_bytes());
        v
    }

    fn tags(comment_len: u32) -> Vec<u8> {
        let mut t = b"OpusTags".to_vec();
        t.extend_from_slice(&0u32.to_le_bytes());
        t.extend_from_slice(&1u32.to_le_bytes());
        t.extend_from_slice(&comment_len.to_le_bytes());
        t.extend_from_slice(b"A=b");
        t
    }

    fn run(bytes: &[u8]) -> Result<(), AudioError> {
        check(&mut Cursor::new(bytes), 0, bytes.len() as u64)
    }

    #[test]
    fn crc_matches_the_bitwise_definition() {
        let data = b"OggS and some bytes";
        let mut c = 0u32;
        for &b in data {
            c ^= (b as u32) << 24;
            for _ in 0..8 {
                c = if c & 0x8000_0000 != 0 {
                    (c << 1) ^ 0x04c1_1db7
                } else {
                    c << 1
                };
            }
        }
        assert_eq!(crc(0, data), c);
    }

    #[test]
    fn lying_comments_are_refused_wherever_they_are() {
        let head = page(7, 0, 2, &[b"OpusHead\x01\x01\0\0\x80\xbb\0\0\0\0\0"]);
        let ok = [head.clone(), page(7, 1, 0, &[&tags(3)])].concat();
        assert!(run(&ok).is_ok());
        let bad = [head.clone(), page(7, 1, 0, &[&tags(u32::MAX)])].concat();
        assert!(matches!(run(&bad), Err(AudioError::Corrupt(m)) if m.contains("comment")));
        // far into the stream, after audio pages
        let audio = page(7, 2, 0, &[&[0xFC; 40]]);
        let late = [
            head.clone(),
            page(7, 1, 0, &[&tags(3)]),
            audio,
            page(7, 3, 0, &[&tags(1 << 30)]),
        ]
        .concat();
        assert!(run(&late).is_err());
        // split over two pages (a continued packet)
        let t = tags(1 << 30);
        let mut long = t.clone();
        long.resize(600, b'x');
        let mut first = page(7, 1, 0, &[]);
        // lacing: 255, 255 (the packet goes on), body the first 510 bytes
        first.truncate(26);
        first.extend_from_slice(&[2, 255, 255]);
        first.extend_from_slice(&long[..510]);
        first[22..26].fill(0);
        let c = crc(0, &first);
        first[22..26].copy_from_slice(&c.to_le_bytes());
        let second = page(7, 2, 1, &[&long[510..]]);
        let split = [head.clone(), first, second].concat();
        assert!(run(&split).is_err());
        // a corrupt page is skipped, as the demuxer skips it
        let mut corrupt = page(7, 1, 0, &[&tags(u32::MAX)]);
        corrupt[30] ^= 1;
        assert!(run(&[head.clone(), corrupt].concat()).is_ok());
        // a stream nobody maps is not read
        let other = [
            page(9, 0, 2, &[b"Speex   "]),
            page(9, 1, 0, &[&tags(u32::MAX)]),
        ]
        .concat();
        assert!(run(&other).is_ok());
    }
}
