//! Where the bytes of the one decode path come from: a file (recorded-file
//! jobs) or a slice held in memory (short-audio, RASR, flash). Everything
//! after this module reads through [`Input`] and cannot tell the two apart,
//! except symphonia, which must own its source (see [`Input::into_media_source`]).
//! Both read and seek as a `Cursor` over the bytes does, so nothing
//! downstream can tell them apart by how they fail either.

use std::fs::File;
use std::io::{self, BufReader, Cursor, Read, Seek, SeekFrom};

use symphonia::core::io::MediaSource;

use crate::AudioError;

/// A seekable byte source of known length.
pub(crate) trait Input: Read + Seek + Send {
    /// The bytes from `start` on (an ID3 tag skipped), `len` being the whole
    /// input's length, as a source symphonia's demuxers can own. A file is
    /// handed over as a window on it; a slice is copied once.
    fn into_media_source(
        self: Box<Self>,
        start: u64,
        len: u64,
    ) -> Result<Box<dyn MediaSource>, AudioError>;
}

pub(crate) fn io_error(e: io::Error) -> AudioError {
    AudioError::Io(e.to_string())
}

/// Reads up to `buf.len()` bytes at `at`; returns how many there were.
pub(crate) fn read_at(input: &mut dyn Input, at: u64, buf: &mut [u8]) -> Result<usize, AudioError> {
    input.seek(SeekFrom::Start(at)).map_err(io_error)?;
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error(e)),
        }
    }
    Ok(n)
}

/// The error `Cursor` gives for a seek before the start: files say the same,
/// so both inputs fail alike.
fn out_of_range() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "invalid seek to a negative or overflowing position",
    )
}

/// Where `to` leads from `pos` in `len` bytes.
fn seek_target(to: SeekFrom, pos: u64, len: u64) -> io::Result<u64> {
    match to {
        SeekFrom::Start(o) => Some(o),
        SeekFrom::End(o) => len.checked_add_signed(o),
        SeekFrom::Current(o) => pos.checked_add_signed(o),
    }
    .ok_or_else(out_of_range)
}

/// The `len` bytes of a file from `base` on, reading and seeking as a
/// `Cursor` over them would: any position may be sought (past the end too,
/// where reads give nothing), and nothing past them is read. Seeks only move
/// the position; the read that follows moves the file, within its buffer
/// when it can (the WAV chunk walk and the MP4 structure check seek often, a
/// few bytes apart).
pub(crate) struct FileInput {
    reader: BufReader<File>,
    base: u64,
    len: u64,
    pos: u64,
    /// Where in the file the buffered reader is.
    reader_at: u64,
}

impl FileInput {
    /// The whole file (`len` bytes), from its start.
    pub(crate) fn new(file: File, len: u64) -> FileInput {
        FileInput {
            reader: BufReader::with_capacity(64 * 1024, file),
            base: 0,
            len,
            pos: 0,
            reader_at: 0,
        }
    }
}

impl Read for FileInput {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len {
            return Ok(0);
        }
        let at = self.base + self.pos;
        if at != self.reader_at {
            let delta =
                i64::try_from(at as i128 - self.reader_at as i128).map_err(|_| out_of_range())?;
            self.reader.seek_relative(delta)?;
            self.reader_at = at;
        }
        let n = (buf.len() as u64).min(self.len - self.pos) as usize;
        let k = self.reader.read(&mut buf[..n])?;
        self.pos += k as u64;
        self.reader_at += k as u64;
        Ok(k)
    }
}

impl Seek for FileInput {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.pos = seek_target(to, self.pos, self.len)?;
        Ok(self.pos)
    }
}

impl Input for FileInput {
    fn into_media_source(
        self: Box<Self>,
        start: u64,
        len: u64,
    ) -> Result<Box<dyn MediaSource>, AudioError> {
        // the same file, from `start` on
        Ok(Box::new(FileInput {
            base: self.base + start,
            len: len.saturating_sub(start),
            pos: 0,
            ..*self
        }))
    }
}

impl MediaSource for FileInput {
    fn is_seekable(&self) -> bool {
        true
    }

    fn byte_len(&self) -> Option<u64> {
        Some(self.len)
    }
}

impl Input for Cursor<&[u8]> {
    fn into_media_source(
        self: Box<Self>,
        start: u64,
        _len: u64,
    ) -> Result<Box<dyn MediaSource>, AudioError> {
        let bytes = self.into_inner();
        let from = usize::try_from(start)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        Ok(Box::new(Cursor::new(bytes[from..].to_vec())))
    }
}
