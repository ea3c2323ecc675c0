//! Speech synthesis (SIS TTS) with espeak-ng, run as a separate process
//! (espeak-ng is GPL-3 and is never linked into our binaries), or with an
//! installed sherpa-onnx TTS pack that reads the voice ([`PackVoices`]: the
//! server hands its engine workers each sentence). Nothing here touches
//! sherpa-onnx.
//!
//! A voice an installed pack reads (`[speakers]` of its `pack.toml`) is read
//! by the pack: its sentences are the normalised hanzi text
//! ([`text::pack_sentences`]), the tempo is the model's own (speed
//! 2^(speed/500) to sherpa-onnx), and steps 4-5 below are the same. Every
//! other voice is read by espeak-ng:
//!
//! The pipeline of [`Synthesizer::open`] (docs/TTS.md):
//! 1. the voice ([`voices`]) and its rates are checked;
//! 2. each text piece of the script becomes sentences for espeak-ng
//!    ([`text`]: Chinese text normalisation, sentence splitting, hanzi to
//!    pinyin with tone numbers);
//! 3. each sentence is read by its own espeak-ng process ([`espeak`]), up to
//!    `max_processes` at once over all requests, started in order and in
//!    parallel;
//! 4. each sentence's WAV is decoded by `sis-audio` (22 050 Hz), its tempo
//!    and pitch changed by the SIS curves (`sis_audio::effects`:
//!    2^(speed/500), 2^(pitch/1000)), resampled to the requested rate and
//!    its volume applied (gain volume/50, the sentence's peak held at 0.98),
//!    on the blocking pool while it holds its process slot
//!    ([`sentence_audio`]);
//! 5. the sentences and the pauses (SSML `<break>`) come out of
//!    [`Synthesis::next`] in order as 16-bit samples, each as soon as it is
//!    ready (real-time synthesis sends them so); [`Synthesizer::synthesize`]
//!    joins them and encodes the file: WAV, headerless 16-bit PCM or MP3.
//!    Every step works on one sentence alone, so the `pcm` file is exactly
//!    the parts one after the other.

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

/// One sentence read by a TTS pack: samples at the model's rate.
#[derive(Clone, Debug, Default)]
pub struct Voiced {
    pub samples: Vec<f32>,
    pub sample_rate: u32,
}

/// The future of one pack reading.
pub type Reading =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Voiced, TtsError>> + Send>>;

/// The installed sherpa-onnx TTS packs, as the synthesizer sees them (the
/// server's engine, which runs them in its worker processes).
pub trait PackVoices: Send + Sync {
    /// Whether a pack reads the SIS voice `voice`.
    fn reads(&self, voice: &str) -> bool;
    /// `text` (one sentence) read with `voice` at `speed` (1 = the model's
    /// own pace).
    fn read(&self, voice: &str, text: String, speed: f32) -> Reading;
}

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
    packs: Option<Arc<dyn PackVoices>>,
}

impl Synthesizer {
    /// Probes espeak-ng ([`probe`]) and is ready to synthesise if it runs;
    /// voices that `packs` reads are read by them.
    pub fn with_packs(settings: TtsSettings, packs: Arc<dyn PackVoices>) -> Synthesizer {
        Synthesizer {
            packs: Some(packs),
            ..Self::start(settings)
        }
    }

    /// Whether an installed pack reads `voice` (else espeak-ng does).
    pub fn pack_reads(&self, voice: &str) -> bool {
        self.packs.as_ref().is_some_and(|p| p.reads(voice))
    }

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
            packs: None,
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

    /// Starts synthesising `req` (see the module documentation): the
    /// checks and admission happen here, at once; the audio comes out of
    /// [`Synthesis::next`], part by part and in order, each part as soon as
    /// it is ready. The sentences are started in order, each as soon as a
    /// process slot is free, so later sentences are read while earlier
    /// ones are given out. Dropping the [`Synthesis`] aborts what is left
    /// and kills its espeak-ng processes. Needs a tokio runtime.
    pub fn open(&self, req: &SynthesisRequest) -> Result<Synthesis, TtsError> {
        let voice = Self::check(req)?;
        let pack = self.packs.clone().filter(|p| p.reads(voice.name));
        if let (None, Availability::Unavailable { reason }) = (&pack, &self.availability) {
            return Err(TtsError::Unavailable(reason.clone()));
        }
        let admitted = self
            .requests
            .clone()
            .try_acquire_owned()
            .map_err(|_| TtsError::Busy)?;
        let mut plan = Vec::new();
        for piece in &req.script {
            match piece {
                ScriptPiece::Pause { ms } => plan.push(Planned::Pause(*ms)),
                ScriptPiece::Text(t) => plan.extend(
                    match pack {
                        Some(_) => text::pack_sentences(t, voice.language),
                        None => text::sentences(t, voice.language),
                    }
                    .into_iter()
                    .map(Planned::Sentence),
                ),
            }
        }
        let job = Arc::new(Job {
            espeak: self.espeak.clone(),
            pack,
            voice,
            shaping: Shaping {
                speed: req.speed,
                pitch: req.pitch,
                rate: req.sample_rate,
                volume: req.volume,
            },
        });
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let driver = Aborting(tokio::spawn(drive(plan, job, self.processes.clone(), tx)));
        Ok(Synthesis {
            rate: req.sample_rate,
            parts: rx,
            current: None,
            given: 0,
            finished: false,
            _driver: driver,
            _admitted: admitted,
        })
    }

    /// Synthesises `req` into one file: the parts of [`Synthesizer::open`]
    /// one after the other, encoded. So the `pcm` answer is exactly the
    /// parts' samples, which real-time synthesis sends as they come.
    pub async fn synthesize(&self, req: &SynthesisRequest) -> Result<Synthesized, TtsError> {
        let mut synthesis = self.open(req)?;
        let mut samples: Vec<i16> = Vec::new();
        while let Some(part) = synthesis.next().await {
            samples.extend_from_slice(&part?);
        }
        // the admission is held through the encoding
        let (rate, format) = (req.sample_rate, req.format);
        let encoded = tokio::task::spawn_blocking(move || {
            let seconds = samples.len() as f64 / f64::from(rate);
            encode(&samples, rate, format).map(|audio| Synthesized { audio, seconds })
        })
        .await
        .map_err(|e| TtsError::Failed(format!("the encoding task failed: {e}")))?;
        drop(synthesis);
        encoded
    }
}

/// A part of the script, before its work starts.
enum Planned {
    /// A sentence for espeak-ng (already its input).
    Sentence(String),
    /// Silence, in milliseconds.
    Pause(u32),
}

/// A part whose work has started, in the order of the script.
enum Started {
    Sentence(Aborting<Result<Vec<i16>, TtsError>>),
    Pause(u32),
    /// No sentence can be started.
    Failed(String),
    /// Every part was started.
    End,
}

/// What every sentence of one synthesis shares.
struct Job {
    espeak: Espeak,
    /// The pack that reads the voice (else espeak-ng does).
    pack: Option<Arc<dyn PackVoices>>,
    voice: &'static Voice,
    shaping: Shaping,
}

/// What is done to each sentence's audio.
#[derive(Clone, Copy, Debug)]
pub struct Shaping {
    pub speed: i32,
    pub pitch: i32,
    /// The output rate.
    pub rate: u32,
    pub volume: u8,
}

/// A task aborted when dropped (its espeak-ng process, if any, is then
/// killed: `kill_on_drop`).
struct Aborting<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for Aborting<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts the parts in order: each sentence once it has a process slot.
/// Ends early when the [`Synthesis`] is gone.
async fn drive(
    plan: Vec<Planned>,
    job: Arc<Job>,
    processes: Arc<Semaphore>,
    tx: tokio::sync::mpsc::UnboundedSender<Started>,
) {
    for part in plan {
        let started = match part {
            Planned::Pause(ms) => Started::Pause(ms),
            Planned::Sentence(sentence) => {
                let Ok(slot) = processes.clone().acquire_owned().await else {
                    let _ = tx.send(Started::Failed("the synthesizer is closed".into()));
                    return;
                };
                let job = job.clone();
                Started::Sentence(Aborting(tokio::spawn(async move {
                    read_sentence(slot, &job, &sentence).await
                })))
            }
        };
        if tx.send(started).is_err() {
            return;
        }
    }
    let _ = tx.send(Started::End);
}

/// A synthesis under way ([`Synthesizer::open`]); it holds its admission
/// until dropped.
pub struct Synthesis {
    rate: u32,
    parts: tokio::sync::mpsc::UnboundedReceiver<Started>,
    /// The part being waited for.
    current: Option<Started>,
    /// Samples given out so far.
    given: usize,
    finished: bool,
    _driver: Aborting<()>,
    _admitted: tokio::sync::OwnedSemaphorePermit,
}

impl Synthesis {
    /// The rate of every part.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// The next part's 16-bit samples (a sentence, or a pause's silence;
    /// never empty), `None` after the last; after an error, `None`. A
    /// script with nothing to read gives 0.1 s of silence. Cancel-safe:
    /// a part waited for is kept for the next call.
    pub async fn next(&mut self) -> Option<Result<Vec<i16>, TtsError>> {
        while !self.finished {
            let current = match &mut self.current {
                Some(c) => c,
                None => {
                    let next = self.parts.recv().await.unwrap_or_else(|| {
                        Started::Failed("the synthesis stopped unexpectedly".into())
                    });
                    self.current.insert(next)
                }
            };
            let out = match current {
                Started::Pause(ms) => Ok(vec![0; samples_in(*ms, self.rate)]),
                Started::Sentence(task) => (&mut task.0)
                    .await
                    .unwrap_or_else(|e| Err(TtsError::Failed(format!("a sentence failed: {e}")))),
                Started::Failed(why) => Err(TtsError::Failed(std::mem::take(why))),
                Started::End => {
                    self.finished = true;
                    self.current = None;
                    if self.given == 0 {
                        return Some(Ok(vec![0; samples_in(EMPTY_MS, self.rate)]));
                    }
                    return None;
                }
            };
            self.current = None;
            match out {
                Ok(samples) if samples.is_empty() => continue,
                Ok(samples) => {
                    self.given += samples.len();
                    return Some(Ok(samples));
                }
                Err(e) => {
                    self.finished = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

/// Samples in `ms` milliseconds at `rate`.
fn samples_in(ms: u32, rate: u32) -> usize {
    (u64::from(ms) * u64::from(rate) / 1000) as usize
}

/// One sentence: espeak-ng reads it while the sentence holds its process
/// slot, which it keeps through the audio work on the blocking pool.
async fn read_sentence(
    _slot: tokio::sync::OwnedSemaphorePermit,
    job: &Job,
    sentence: &str,
) -> Result<Vec<i16>, TtsError> {
    let shaping = job.shaping;
    if let Some(pack) = &job.pack {
        let speed = effects::speed_factor(shaping.speed) as f32;
        let voiced = pack
            .read(job.voice.name, sentence.to_string(), speed)
            .await?;
        return tokio::task::spawn_blocking(move || {
            let mut samples = shape_samples(
                voiced.samples,
                voiced.sample_rate,
                0,
                shaping.pitch,
                shaping.rate,
            );
            effects::apply_gain(&mut samples, effects::volume_gain(shaping.volume));
            sis_audio::to_i16(&samples)
        })
        .await
        .map_err(|e| TtsError::Failed(format!("an audio task failed: {e}")));
    }
    let wav = job.espeak.speak(job.voice, sentence).await?;
    tokio::task::spawn_blocking(move || sentence_audio(&wav, shaping))
        .await
        .map_err(|e| TtsError::Failed(format!("an audio task failed: {e}")))?
}

/// One sentence's audio as every answer holds it: espeak-ng's WAV with the
/// request's tempo and pitch at its rate ([`shape`]), the volume applied
/// with the peak of *this sentence* held at 0.98 (`effects::apply_gain`),
/// as 16-bit samples. Nothing depends on the other sentences, so a
/// sentence sounds the same whether it is sent alone, streamed, or joined
/// into a file.
pub fn sentence_audio(wav: &[u8], shaping: Shaping) -> Result<Vec<i16>, TtsError> {
    let mut samples = shape(wav, shaping.speed, shaping.pitch, shaping.rate)?;
    effects::apply_gain(&mut samples, effects::volume_gain(shaping.volume));
    Ok(sis_audio::to_i16(&samples))
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
    Ok(shape_samples(samples, from, speed, pitch, rate))
}

/// `samples` at `from` Hz with the SIS tempo change `speed` (0: none; a
/// pack's reading has its tempo already) and pitch change `pitch`, at `rate`.
fn shape_samples(samples: Vec<f32>, from: u32, speed: i32, pitch: i32, rate: u32) -> Vec<f32> {
    let samples = effects::change_tempo(&samples, from, effects::speed_factor(speed));
    let samples = effects::change_pitch(&samples, from, effects::pitch_factor(pitch));
    sis_audio::resample(
        &Pcm {
            samples,
            sample_rate: from,
        },
        rate,
    )
    .samples
}

/// The samples as a file of `format`.
pub fn encode(pcm: &[i16], rate: u32, format: TtsFormat) -> Result<Vec<u8>, TtsError> {
    match format {
        TtsFormat::Wav => Ok(sis_audio::encode_wav(pcm, rate)),
        TtsFormat::Pcm => Ok(sis_audio::encode_pcm16(pcm)),
        TtsFormat::Mp3 => {
            sis_audio::encode_mp3(pcm, rate).map_err(|e| TtsError::Failed(format!("mp3: {e}")))
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
