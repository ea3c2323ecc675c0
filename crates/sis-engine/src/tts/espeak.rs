//! espeak-ng as a separate process. espeak-ng is GPL-3: it is never linked
//! into our binaries, only run, one process per sentence: the text on its
//! stdin, a WAV file on its stdout. Each run is bounded in time and in
//! output, and the process is killed when its run is dropped (a client that
//! went away, an error in another sentence).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::voices::Voice;
use super::TtsError;

/// The most WAV bytes one run may write: over four minutes at espeak-ng's
/// 22 050 Hz, far beyond what a sentence of 100 characters needs.
pub const MAX_WAV_BYTES: usize = 12 * 1024 * 1024;
/// The most stderr kept, for the log.
const MAX_STDERR_BYTES: usize = 2048;

/// How to run espeak-ng.
#[derive(Clone, Debug)]
pub struct Espeak {
    pub program: PathBuf,
    /// A run that takes longer is killed.
    pub timeout: Duration,
}

impl Espeak {
    /// Reads `text` (one sentence) with `voice`; the WAV file espeak-ng
    /// wrote, its header's sizes made true ([`fix_stream_header`]).
    pub async fn speak(&self, voice: &Voice, text: &str) -> Result<Vec<u8>, TtsError> {
        let mut child = tokio::process::Command::new(&self.program)
            .arg("-v")
            .arg(voice.espeak)
            .arg("-p")
            .arg(voice.espeak_pitch.to_string())
            // UTF-8 input, the WAV file on stdout, the text on stdin
            .args(["-b", "1", "--stdout"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| spawn_error(&self.program, &e))?;
        let (Some(mut stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(TtsError::Failed("espeak-ng's pipes are missing".into()));
        };
        let input = format!("{text}\n");
        let run = async {
            let write = async {
                // a process that exits early closes its stdin: its exit
                // status tells why
                let _ = stdin.write_all(input.as_bytes()).await;
                drop(stdin);
            };
            let (_, out, err) = tokio::join!(
                write,
                read_limited(stdout, MAX_WAV_BYTES),
                read_limited(stderr, MAX_STDERR_BYTES)
            );
            let status = child
                .wait()
                .await
                .map_err(|e| TtsError::Failed(format!("waiting for espeak-ng: {e}")))?;
            let err = String::from_utf8_lossy(&err.unwrap_or_default())
                .trim()
                .to_string();
            let out = match out {
                Ok(out) => out,
                Err(Limit::Exceeded) => {
                    return Err(TtsError::Failed(format!(
                        "espeak-ng wrote more than {MAX_WAV_BYTES} bytes"
                    )))
                }
                Err(Limit::Io(e)) => {
                    return Err(TtsError::Failed(format!("reading espeak-ng's output: {e}")))
                }
            };
            if !status.success() {
                return Err(TtsError::Failed(format!(
                    "espeak-ng -v {} exited with {status}: {err}",
                    voice.espeak
                )));
            }
            Ok(out)
        };
        // on a timeout `run` is dropped and the process killed (kill_on_drop)
        let mut wav = tokio::time::timeout(self.timeout, run)
            .await
            .map_err(|_| {
                TtsError::Failed(format!(
                    "espeak-ng took longer than {} s",
                    self.timeout.as_secs_f64()
                ))
            })??;
        fix_stream_header(&mut wav);
        Ok(wav)
    }
}

fn spawn_error(program: &Path, e: &std::io::Error) -> TtsError {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::NotFound | ErrorKind::PermissionDenied => {
            TtsError::Unavailable(format!("cannot run {}: {e}", program.display()))
        }
        _ => TtsError::Failed(format!("cannot start {}: {e}", program.display())),
    }
}

enum Limit {
    Exceeded,
    Io(std::io::Error),
}

/// Everything `r` gives until its end, or [`Limit::Exceeded`] as soon as it
/// gives more than `max` bytes (it is not read further).
async fn read_limited(r: impl AsyncRead + Unpin, max: usize) -> Result<Vec<u8>, Limit> {
    let mut out = Vec::new();
    let read = r
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .await
        .map_err(Limit::Io)?;
    if read > max {
        return Err(Limit::Exceeded);
    }
    Ok(out)
}

/// espeak-ng writes WAV to a pipe with a header it cannot go back to: its
/// RIFF and `data` sizes say about 2 GB. They are set to what is there, so
/// the WAV decoder (which refuses a header that claims more than the file
/// holds) reads it like any file. Bytes that are not RIFF/WAVE are left
/// alone (the decoder says what they are).
pub fn fix_stream_header(wav: &mut [u8]) {
    let len = wav.len();
    if len < 12 || &wav[0..4] != b"RIFF" || &wav[8..12] != b"WAVE" {
        return;
    }
    let set = |wav: &mut [u8], at: usize, value: usize| {
        let v = u32::try_from(value).unwrap_or(u32::MAX);
        wav[at..at + 4].copy_from_slice(&v.to_le_bytes());
    };
    set(wav, 4, len - 8);
    let mut at = 12;
    while at + 8 <= len {
        let size =
            u32::from_le_bytes([wav[at + 4], wav[at + 5], wav[at + 6], wav[at + 7]]) as usize;
        let body = at + 8;
        if &wav[at..at + 4] == b"data" {
            set(wav, at + 4, len - body);
            return;
        }
        // chunks are padded to even sizes
        at = body.saturating_add(size).saturating_add(size & 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_headers_get_true_sizes() {
        let mut wav = Vec::new();
        wav.extend_from_slice(b"RIFF\x24\xf0\xff\x7fWAVEfmt \x10\0\0\0");
        wav.extend_from_slice(&[1, 0, 1, 0, 0x22, 0x56, 0, 0, 0x44, 0xac, 0, 0, 2, 0, 16, 0]);
        wav.extend_from_slice(b"data\0\xf0\xff\x7f");
        wav.extend_from_slice(&[1, 0, 2, 0, 3, 0]);
        fix_stream_header(&mut wav);
        assert_eq!(
            u32::from_le_bytes([wav[4], wav[5], wav[6], wav[7]]),
            44 + 6 - 8
        );
        assert_eq!(u32::from_le_bytes([wav[40], wav[41], wav[42], wav[43]]), 6);
        let (rate, ch) = sis_audio::stream::read_bytes(
            &wav,
            sis_audio::stream::FileFormat::Auto,
            sis_audio::stream::StreamLimits::default(),
        )
        .unwrap();
        assert_eq!((rate, ch[0].len()), (22050, 3));
        // not WAV, truncated, no data chunk: left as they are
        for mut other in [
            b"OggS....WAVE".to_vec(),
            b"RIFF".to_vec(),
            b"RIFF\0\0\0\0WAVEjunk\xff\xff\xff\xff".to_vec(),
        ] {
            let before = other.clone();
            fix_stream_header(&mut other);
            assert_eq!(other[..4], before[..4]);
            assert_eq!(other.len(), before.len());
        }
    }
}
