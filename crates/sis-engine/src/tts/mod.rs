//! Speech synthesis (SIS TTS) with espeak-ng, run as a separate process
//! (espeak-ng is GPL-3 and is never linked into our binaries). Nothing here
//! touches sherpa-onnx.
//!
//! The pipeline of [`Synthesizer::synthesize`] (docs/TTS.md):
//! 1. the voice ([`voices`]) and its rates are checked;
//! 2. each text piece of the script becomes sentences for espeak-ng
//!    ([`text`]: Chinese text normalisation, sentence splitting, hanzi to
//!    pinyin with tone numbers);
//! 3. each sentence is read by its own espeak-ng process ([`espeak`]), up to
//!    `max_processes` at once over all requests, in parallel and put back
//!    in order;
//! 4. each sentence's WAV is decoded by `sis-audio` (22 050 Hz), its tempo
//!    and pitch changed by the SIS curves (`sis_audio::effects`:
//!    2^(speed/500), 2^(pitch/1000)) and resampled to the requested rate,
//!    on the blocking pool while it holds its process slot;
//! 5. the sentences and pauses (SSML `<break>`) are joined, the volume
//!    applied (gain volume/50, the peak held at 0.98) and the audio encoded:
//!    WAV, headerless 16-bit PCM or MP3.

pub mod espeak;
pub mod text;
pub mod voices;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sis_audio::effects;
use sis_audio::stream::{FileFormat, StreamLimits};
use sis_core::tts::{ScriptPiece, SynthesisRequest, TtsFormat};
use sis_core::Pcm;
use tokio::sync::Semaphore;

pub use espeak::Espeak;
pub use voices::{voice, Gender, Language, Voice, VOICES};

/// Why a synthesis was not made.
#[derive(Debug, thiserror::Error)]
pub enum TtsError {
    /// No voice of that `property`.
    #[error("voice {0} is not offered")]
    UnknownVoice(String),
    /// The voice is not offered at the rate asked for.
    #[error("voice {voice} is not offered at {rate} Hz")]
    RateNotOffered { voice: &'static str, rate: u32 },
    /// espeak-ng cannot be run on this server.
    #[error("speech synthesis is unavailable: {0}")]
    Unavailable(String),
    /// As many syntheses are running or waiting as are admitted.
    #[error("too many speech syntheses at once")]
    Busy,
    /// espeak-ng or a later step failed.
    #[error("speech synthesis failed: {0}")]
    Failed(String),
}

/// Validated synthesis settings (from the server's configuration).
#[derive(Clone, Debug)]
pub struct TtsSettings {
    /// The espeak-ng program: a path, or a name looked up on `PATH`.
    pub espeak: PathBuf,
    /// espeak-ng processes (and the audio work after each) at once, over
    /// every request.
    pub max_processes: usize,
    /// The longest one espeak-ng process may run.
    pub timeout: Duration,
}

impl TtsSettings {
    /// Requests admitted at once (running or waiting for a process slot);
    /// more get [`TtsError::Busy`].
    pub fn max_requests(&self) -> usize {
        self.max_processes.saturating_mul(8).max(16)
    }
}

/// Whether espeak-ng can be run, as found at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Availability {
    /// espeak-ng's `--version` line.
    Ready {
        version: String,
    },
    Unavailable {
        reason: String,
    },
}

/// A finished synthesis.
#[derive(Clone, Debug)]
pub struct Synthesized {
    /// The file, in the requested format.
    pub audio: Vec<u8>,
    /// Its length in seconds.
    pub seconds: f64,
}

/// The longest audio one sentence's WAV may decode to.
const MAX_SENTENCE_MS: u64 = 5 * 60 * 1000;
/// What a script with nothing to read answers: this much silence.
const EMPTY_MS: u32 = 100;

/// Speech synthesis: admission, the espeak-ng processes, the audio work.
pub struct Synthesizer {
    settings: TtsSettings,
    espeak: Espeak,
    availability: Availability,
    processes: Arc<Semaphore>,
    requests: Arc<Semaphore>,
}

impl Synthesizer {
    /// Probes espeak-ng ([`probe`]) and is ready to synthesise if it runs.
    pub fn start(settings: TtsSettings) -> Synthesizer {
        let availability = match probe(&settings.espeak, settings.timeout) {
            Ok(version) => Availability::Ready { version },
            Err(reason) => Availability::Unavailable { reason },
        };
        Synthesizer {
            espeak: Espeak {
                program: settings.espeak.clone(),
                timeout: settings.timeout,
            },
            processes: Arc::new(Semaphore::new(settings.max_processes.max(1))),
            requests: Arc::new(Semaphore::new(settings.max_requests())),
            availability,
            settings,
        }
    }

    pub fn availability(&self) -> &Availability {
        &self.availability
    }

    pub fn settings(&self) -> &TtsSettings {
        &self.settings
    }

    /// The voice and rate of `req`, checked.
    pub fn check(req: &SynthesisRequest) -> Result<&'static Voice, TtsError> {
        let v = voice(&req.voice).ok_or_else(|| TtsError::UnknownVoice(req.voice.clone()))?;
        if !v.offers(req.sample_rate) {
            return Err(TtsError::RateNotOffered {
                voice: v.name,
                rate: req.sample_rate,
            });
        }
        Ok(v)
    }

    /// Synthesises `req` (see the module documentation).
    pub async fn synthesize(&self, req: &SynthesisRequest) -> Result<Synthesized, TtsError> {
        let voice = Self::check(req)?;
        if let Availability::Unavailable { reason } = &self.availability {
            return Err(TtsError::Unavailable(reason.clone()));
        }
        let _admitted = self
            .requests
            .clone()
            .try_acquire_owned()
            .map_err(|_| TtsError::Busy)?;
        let rate = req.sample_rate;

        // Every sentence read at once, up to the process limit; dropping the
        // set (an error, the client gone) aborts the rest and kills their
        // processes.
        let mut parts: Vec<Part> = Vec::new();
        let mut tasks = tokio::task::JoinSet::new();
        for piece in &req.script {
            match piece {
                ScriptPiece::Pause { ms } => parts.push(Part::Pause(*ms)),
                ScriptPiece::Text(t) => {
                    for sentence in text::sentences(t, voice.language) {
                        let index = parts.len();
                        parts.push(Part::Pending);
                        let espeak = self.espeak.clone();
                        let processes = self.processes.clone();
                        let (speed, pitch) = (req.speed, req.pitch);
                        tasks.spawn(async move {
                            let out = read_sentence(
                                &espeak, processes, voice, &sentence, speed, pitch, rate,
                            )
                            .await;
                            (index, out)
                        });
                    }
                }
            }
        }
        while let Some(joined) = tasks.join_next().await {
            let (index, samples) =
                joined.map_err(|e| TtsError::Failed(format!("a synthesis task failed: {e}")))?;
            parts[index] = Part::Audio(samples?);
        }

        let volume = req.volume;
        let format = req.format;
        let encoded = tokio::task::spawn_blocking(move || {
            let mut samples = join(parts, rate);
            effects::apply_gain(&mut samples, effects::volume_gain(volume));
            let seconds = samples.len() as f64 / f64::from(rate);
            encode(&samples, rate, format).map(|audio| Synthesized { audio, seconds })
        })
        .await
        .map_err(|e| TtsError::Failed(format!("the encoding task failed: {e}")))?;
        encoded
    }
}

/// A part of the answer, in order.
enum Part {
    /// A sentence still being read.
    Pending,
    /// A sentence's samples at the requested rate.
    Audio(Vec<f32>),
    /// Silence, in milliseconds.
    Pause(u32),
}

/// The parts one after the other; some silence if there is nothing.
fn join(parts: Vec<Part>, rate: u32) -> Vec<f32> {
    let silence = |ms: u32| (u64::from(ms) * u64::from(rate) / 1000) as usize;
    let mut out = Vec::new();
    for part in parts {
        match part {
            Part::Audio(samples) => out.extend_from_slice(&samples),
            Part::Pause(ms) => out.resize(out.len() + silence(ms), 0.0),
            Part::Pending => {}
        }
    }
    if out.is_empty() {
        out.resize(silence(EMPTY_MS), 0.0);
    }
    out
}

/// One sentence: espeak-ng reads it while the sentence holds a process
/// slot, which it keeps through the audio work on the blocking pool.
async fn read_sentence(
    espeak: &Espeak,
    processes: Arc<Semaphore>,
    voice: &'static Voice,
    sentence: &str,
    speed: i32,
    pitch: i32,
    rate: u32,
) -> Result<Vec<f32>, TtsError> {
    let _slot = processes
        .acquire_owned()
        .await
        .map_err(|_| TtsError::Failed("the synthesizer is closed".into()))?;
    let wav = espeak.speak(voice, sentence).await?;
    tokio::task::spawn_blocking(move || shape(&wav, speed, pitch, rate))
        .await
        .map_err(|e| TtsError::Failed(format!("an audio task failed: {e}")))?
}

/// espeak-ng's WAV → samples with the request's tempo and pitch, at `rate`.
pub fn shape(wav: &[u8], speed: i32, pitch: i32, rate: u32) -> Result<Vec<f32>, TtsError> {
    let limits = StreamLimits {
        max_ms: MAX_SENTENCE_MS,
        max_channels: 1,
        ..StreamLimits::default()
    };
    let (from, mut channels) = sis_audio::stream::read_bytes(wav, FileFormat::Auto, limits)
        .map_err(|e| TtsError::Failed(format!("espeak-ng's output: {e}")))?;
    let samples = channels.pop().unwrap_or_default();
    let samples = effects::change_tempo(&samples, from, effects::speed_factor(speed));
    let samples = effects::change_pitch(&samples, from, effects::pitch_factor(pitch));
    Ok(sis_audio::resample(
        &Pcm {
            samples,
            sample_rate: from,
        },
        rate,
    )
    .samples)
}

/// The samples as a file of `format`.
pub fn encode(samples: &[f32], rate: u32, format: TtsFormat) -> Result<Vec<u8>, TtsError> {
    let pcm = sis_audio::to_i16(samples);
    match format {
        TtsFormat::Wav => Ok(sis_audio::encode_wav(&pcm, rate)),
        TtsFormat::Pcm => Ok(sis_audio::encode_pcm16(&pcm)),
        TtsFormat::Mp3 => {
            sis_audio::encode_mp3(&pcm, rate).map_err(|e| TtsError::Failed(format!("mp3: {e}")))
        }
    }
}

/// Whether espeak-ng runs and has the voices this table uses: its
/// `--version` line, or why not. Runs `program` (with `timeout` for each
/// call) in this thread, so it also serves `sisd models list`.
pub fn probe(program: &Path, timeout: Duration) -> Result<String, String> {
    let version = run_blocking(program, &["--version"], timeout)?;
    let version = version
        .lines()
        .next()
        .unwrap_or_default()
        .split("Data at")
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    let mut bases: Vec<&str> = VOICES
        .iter()
        .filter_map(|v| v.espeak.split('+').next())
        .collect();
    bases.sort_unstable();
    bases.dedup();
    for base in bases {
        run_blocking(program, &["-q", "-v", base, "a"], timeout)
            .map_err(|e| format!("espeak-ng has no voice {base}: {e}"))?;
    }
    Ok(version)
}

/// Runs `program args` to its end within `timeout`; its stdout, or why it
/// failed.
fn run_blocking(program: &Path, args: &[&str], timeout: Duration) -> Result<String, String> {
    use std::io::Read;
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{} did not finish within {} s",
                    program.display(),
                    timeout.as_secs_f64()
                ));
            }
            Err(e) => return Err(format!("waiting for {}: {e}", program.display())),
        }
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    if !status.success() {
        return Err(format!(
            "{} exited with {status}: {}",
            program.display(),
            err.trim()
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
