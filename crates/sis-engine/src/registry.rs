//! The pack registry: which packs are loaded, and which one serves a
//! property for whole audio (short audio, files) and for real time. Also
//! how a pack gets loaded at all: checked, probed in a child process, loaded,
//! then run once on silence before any client audio reaches it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use sis_core::Property;

use crate::pack::{Pack, PackError, PackKind};
use crate::sherpa::{Punctuation, Recognizer, Tts, Vad, VadSettings, MIN_OFFLINE_S, VAD_RATE};
use crate::{EngineConfig, EngineError};

/// A loaded ASR pack, as the schedulers see it.
pub struct AsrModel {
    /// Its index in the registry (models are grouped by it for batching).
    pub id: usize,
    /// The rate the model decodes at.
    pub sample_rate: u32,
    pub recognizer: Recognizer,
}

/// Where VADs come from: the VAD pack and the server's base settings. Each
/// user builds its own VADs (they are per session, per file channel, per
/// decode worker).
#[derive(Clone)]
pub struct VadSource {
    pack: Pack,
    /// The server's settings; users override what they must.
    pub base: VadSettings,
}

impl VadSource {
    /// A VAD with `settings` and a buffer of `buffer_s` seconds.
    pub fn load(&self, settings: VadSettings, buffer_s: f32) -> Result<Vad, EngineError> {
        Vad::load(&self.pack, settings, buffer_s)
    }
}

/// Summary of a loaded pack, for `/health` and `models list`.
#[derive(Clone, Debug)]
pub struct PackSummary {
    pub name: String,
    pub kind: PackKind,
    pub model_type: String,
    pub properties: Vec<String>,
    /// Recognises synthetic test speech only (`pack.toml`'s `test_only`).
    pub test_only: bool,
    /// A TTS pack's voices: SIS voice `property` and speaker id.
    pub speakers: Vec<(String, i64)>,
}

impl PackSummary {
    /// The summary of a pack with manifest `m`.
    pub fn of(m: &crate::pack::Manifest) -> PackSummary {
        PackSummary {
            name: m.name.clone(),
            kind: m.kind,
            model_type: m.model_type.clone(),
            properties: m.properties.clone(),
            test_only: m.test_only,
            speakers: m.speakers.clone().into_iter().collect(),
        }
    }
}

/// A loaded TTS pack.
pub struct TtsModel {
    pub tts: Tts,
}

/// Which pack reads each SIS voice, from the packs' summaries: the voices
/// of their `[speakers]`, a real pack winning over a `test_only` one, else
/// the first listed. Voice → (index into `packs`, speaker id).
pub fn choose_voices(packs: &[PackSummary]) -> HashMap<String, (usize, i64)> {
    let mut out: HashMap<String, (usize, i64)> = HashMap::new();
    for (i, p) in packs.iter().enumerate() {
        if p.kind != PackKind::Tts {
            continue;
        }
        for (voice, sid) in &p.speakers {
            let better = match out.get(voice) {
                None => true,
                Some(&(j, _)) => packs[j].test_only && !p.test_only,
            };
            if better {
                out.insert(voice.clone(), (i, *sid));
            }
        }
    }
    out
}

/// What a property's model is chosen for.
#[derive(Clone, Copy)]
enum Purpose {
    /// Short audio and files.
    WholeAudio,
    /// Real-time sessions.
    RealTime,
}

impl Purpose {
    /// The kind that wins when packs of both kinds serve a property: an
    /// offline pack sees the whole audio at once, a streaming pack follows
    /// a live session without re-decoding.
    fn preferred(self) -> PackKind {
        match self {
            Purpose::WholeAudio => PackKind::OfflineAsr,
            Purpose::RealTime => PackKind::StreamingAsr,
        }
    }
}

/// What the choice of a model looks at.
#[derive(Clone, Copy, Debug)]
struct Offered {
    kind: PackKind,
    test_only: bool,
}

impl Offered {
    /// Higher is better: a real pack over a test pack, then the kind
    /// preferred for the purpose.
    fn rank(self, purpose: Purpose) -> (bool, bool) {
        (!self.test_only, self.kind == purpose.preferred())
    }
}

/// Property name → index of the model chosen for one purpose.
#[derive(Default)]
struct Selection(HashMap<String, usize>);

impl Selection {
    /// Offers model `idx` for `property`: taken when none was chosen yet, or
    /// when it ranks above the chosen one (a real pack over a test pack,
    /// then the preferred kind); among equals the first stays.
    fn offer(&mut self, purpose: Purpose, property: &str, idx: usize, offered: &[Offered]) {
        let better = match self.0.get(property) {
            None => true,
            Some(&j) => offered[idx].rank(purpose) > offered[j].rank(purpose),
        };
        if better {
            self.0.insert(property.to_string(), idx);
        }
    }

    fn get(&self, property: &Property) -> Option<usize> {
        self.0.get(property.name()).copied()
    }
}

/// The loaded packs and the choice of model per property.
pub struct Registry {
    models: Vec<Arc<AsrModel>>,
    whole: Selection,
    realtime: Selection,
    vad: Option<VadSource>,
    summaries: Vec<PackSummary>,
    tts: HashMap<String, Arc<TtsModel>>,
    voices: HashMap<String, (usize, i64)>,
}

impl Registry {
    /// Checks, probes and loads every pack of `config`. Any bad pack fails
    /// the whole load with a message naming it. Returns the punctuation
    /// model too, when a pack provides one.
    pub fn load(config: &EngineConfig) -> Result<(Registry, Option<Punctuation>), EngineError> {
        let mut reg = Registry {
            models: Vec::new(),
            whole: Selection::default(),
            realtime: Selection::default(),
            vad: None,
            summaries: Vec::new(),
            tts: HashMap::new(),
            voices: HashMap::new(),
        };
        let mut offered = Vec::new();
        let mut punctuation = None;
        for pack in check_packs(config)? {
            let m = &pack.manifest;
            reg.summaries.push(PackSummary::of(m));
            match m.kind {
                PackKind::OfflineAsr | PackKind::StreamingAsr => {
                    let id = reg.models.len();
                    offered.push(Offered {
                        kind: m.kind,
                        test_only: m.test_only,
                    });
                    for p in &m.properties {
                        reg.whole.offer(Purpose::WholeAudio, p, id, &offered);
                        reg.realtime.offer(Purpose::RealTime, p, id, &offered);
                    }
                    // smoked in this process too: with --no-probe nothing
                    // else runs the graph before the first client does
                    let recognizer = load_recognizer(&pack, config.threads_per_decode)?;
                    reg.models.push(Arc::new(AsrModel {
                        id,
                        sample_rate: m.sample_rate,
                        recognizer,
                    }));
                }
                PackKind::Vad => {
                    smoke_vad(&pack)?;
                    reg.vad = Some(VadSource {
                        pack,
                        base: config.vad,
                    });
                }
                PackKind::Punctuation => punctuation = Some(load_punctuation(&pack)?),
                PackKind::Tts => {
                    let tts = load_tts(&pack, config.threads_per_decode)?;
                    reg.tts.insert(m.name.clone(), Arc::new(TtsModel { tts }));
                }
            }
        }
        reg.voices = choose_voices(&reg.summaries);
        Ok((reg, punctuation))
    }

    /// The TTS pack that reads `voice`, and the speaker id.
    pub fn for_voice(&self, voice: &str) -> Option<(Arc<TtsModel>, i64)> {
        let (i, sid) = self.voices.get(voice)?;
        let name = &self.summaries.get(*i)?.name;
        Some((self.tts.get(name)?.clone(), *sid))
    }

    pub fn packs(&self) -> &[PackSummary] {
        &self.summaries
    }

    /// The VAD pack, when installed.
    pub fn vad(&self) -> Option<&VadSource> {
        self.vad.as_ref()
    }

    fn chosen(&self, sel: &Selection, property: &Property) -> Result<Arc<AsrModel>, EngineError> {
        sel.get(property)
            .and_then(|i| self.models.get(i))
            .cloned()
            .ok_or_else(|| EngineError::UnknownProperty(property.name().to_string()))
    }

    /// The model that recognises whole audio of `property`.
    pub fn for_whole_audio(&self, property: &Property) -> Result<Arc<AsrModel>, EngineError> {
        self.chosen(&self.whole, property)
    }

    /// The model that real-time sessions of `property` use: a streaming pack
    /// when one serves it, else an offline pack (VAD + re-decoding).
    pub fn for_realtime(&self, property: &Property) -> Result<Arc<AsrModel>, EngineError> {
        self.chosen(&self.realtime, property)
    }

    pub fn serves(&self, property: &Property) -> bool {
        self.whole.get(property).is_some()
    }

    pub fn serves_realtime(&self, property: &Property) -> bool {
        self.realtime.get(property).is_some()
    }

    pub fn realtime_is_streaming(&self, property: &Property) -> bool {
        self.for_realtime(property)
            .is_ok_and(|m| m.recognizer.is_streaming())
    }
}

/// Loads a checked pack in this process (used by the child-process probe).
pub fn probe_pack(pack: &Pack) -> Result<(), EngineError> {
    pack.check()?;
    match pack.manifest.kind {
        PackKind::OfflineAsr | PackKind::StreamingAsr => {
            load_recognizer(pack, 1)?;
        }
        PackKind::Vad => smoke_vad(pack)?,
        PackKind::Punctuation => {
            load_punctuation(pack)?;
        }
        PackKind::Tts => {
            load_tts(pack, 1)?;
        }
    }
    Ok(())
}

/// Loads a TTS pack and reads a test sentence with each of its speakers
/// (a bad graph or token table ends the process here, in the probe, not on
/// a client's text).
fn load_tts(pack: &Pack, threads: i32) -> Result<Tts, EngineError> {
    let tts = Tts::load(pack, threads)?;
    let mut sids: Vec<i64> = pack.manifest.speakers.values().copied().collect();
    sids.sort_unstable();
    sids.dedup();
    for sid in sids {
        let sid =
            i32::try_from(sid).map_err(|_| EngineError::Load("speaker id too large".into()))?;
        let samples = tts.generate("你好，一二三。", sid, 1.0)?;
        if samples.is_empty() || samples.iter().any(|s| !s.is_finite()) {
            return Err(EngineError::Load(format!(
                "TTS pack {} read a test sentence as {} samples, or not finite ones",
                pack.name(),
                samples.len()
            )));
        }
    }
    Ok(tts)
}

/// Loads a recognizer and decodes [`MIN_OFFLINE_S`] (1 s) of silence with
/// it: proves the graph runs, not only loads, before any client audio
/// reaches it (a bad configuration can end the process on the first decode
/// rather than at load), on the shortest audio any decode gives it. A
/// recognizer that takes per-stream hot words decodes it once more through
/// a hot-word stream (`docs/NATIVE.md`, hot words).
fn load_recognizer(pack: &Pack, threads: i32) -> Result<Recognizer, EngineError> {
    let rec = Recognizer::load(pack, threads)?;
    let rate = pack.manifest.sample_rate;
    let silence = vec![0f32; (MIN_OFFLINE_S * rate as f32) as usize];
    rec.decode_batch(rate, &[(&Default::default(), &silence)]);
    rec.smoke_hot_words(rate, &silence);
    tracing::debug!(
        pack = pack.name(),
        search = rec.method().sherpa_name(),
        hot_words = if rec.biases() { "biasing" } else { "text" },
        "recognizer loaded"
    );
    Ok(rec)
}

/// Loads a VAD with the default settings and runs it over 1 s of zeros.
fn smoke_vad(pack: &Pack) -> Result<(), EngineError> {
    let vad = Vad::load(pack, VadSettings::default(), 5.0)?;
    vad.segments(&vec![0f32; VAD_RATE as usize]);
    Ok(())
}

/// Loads the punctuation model and punctuates a test sentence with it.
fn load_punctuation(pack: &Pack) -> Result<Punctuation, EngineError> {
    let p = Punctuation::load(pack)?;
    p.punctuate("今天天气很好我们去公园 hello world 好吗")
        .ok_or_else(|| {
            EngineError::Load(format!(
                "punctuation pack {} returned nothing for a test sentence",
                pack.name()
            ))
        })?;
    Ok(p)
}

fn probe_in_child(exe: &Path, pack: &Pack) -> Result<(), EngineError> {
    let out = std::process::Command::new(exe)
        .args(["models", "probe"])
        .arg(&pack.dir)
        .output()
        .map_err(|e| EngineError::Load(format!("cannot run probe {}: {e}", exe.display())))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
    Err(EngineError::Pack(PackError {
        pack: pack.dir.display().to_string(),
        problem: format!(
            "sherpa-onnx rejected the pack in a probe process ({}): {}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        ),
    }))
}

/// What [`Registry::load`] does before it loads anything, without loading:
/// opens and checks every pack, and probes it in a child process when
/// `probe_exe` is set. Used by a server that loads its engines in worker
/// processes, so a broken pack stops it with the pack's name.
pub fn check_packs(config: &EngineConfig) -> Result<Vec<Pack>, EngineError> {
    let mut packs = Vec::new();
    for dir in &config.packs {
        let pack = Pack::open(dir)?;
        pack.check()?;
        if let Some(exe) = &config.probe_exe {
            probe_in_child(exe, &pack)?;
        }
        packs.push(pack);
    }
    Ok(packs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn real(kind: PackKind) -> Offered {
        Offered {
            kind,
            test_only: false,
        }
    }

    fn test_pack(kind: PackKind) -> Offered {
        Offered {
            kind,
            test_only: true,
        }
    }

    /// The chosen (whole audio, real time) of `offered`, in order.
    fn choose(offered: &[Offered]) -> (usize, usize) {
        let (mut whole, mut rt) = (Selection::default(), Selection::default());
        for id in 0..offered.len() {
            whole.offer(Purpose::WholeAudio, "chinese_16k_common", id, offered);
            rt.offer(Purpose::RealTime, "chinese_16k_common", id, offered);
        }
        let p = Property::parse("chinese_16k_common").unwrap();
        (whole.get(&p).unwrap(), rt.get(&p).unwrap())
    }

    #[test]
    fn offline_wins_whole_audio_and_streaming_wins_real_time() {
        use PackKind::*;
        // in either order of installation
        for kinds in [[OfflineAsr, StreamingAsr], [StreamingAsr, OfflineAsr]] {
            let offered = kinds.map(real);
            let (w, r) = choose(&offered);
            assert_eq!(kinds[w], OfflineAsr);
            assert_eq!(kinds[r], StreamingAsr);
        }
        // one kind only: it serves both; the first of a kind stays
        assert_eq!(choose(&[real(OfflineAsr), real(OfflineAsr)]), (0, 0));
    }

    #[test]
    fn a_real_pack_wins_over_a_test_pack_whatever_the_kind_and_order() {
        use PackKind::*;
        // the test packs sort after real ones by name today ("zh-tiny-...");
        // the choice must not depend on it
        let offered = [
            test_pack(OfflineAsr),
            test_pack(StreamingAsr),
            real(StreamingAsr),
        ];
        assert_eq!(choose(&offered), (2, 2));
        let offered = [
            real(OfflineAsr),
            test_pack(OfflineAsr),
            test_pack(StreamingAsr),
        ];
        assert_eq!(choose(&offered), (0, 0));
        // among test packs the usual preference holds
        let offered = [test_pack(OfflineAsr), test_pack(StreamingAsr)];
        assert_eq!(choose(&offered), (0, 1));
    }
}
