//! Real models and real speech for the unit tests: the committed packs in
//! `testdata/models`, the Silero VAD from `../shared/models/silero_vad`
//! (installed into `target/test-packs` as `sisd models install --from` does),
//! and clips of the held-out synthetic set (`heldout.rs`). Nothing is mocked.

pub mod heldout;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use sis_core::Property;

use crate::postprocess::Postprocessor;
use crate::registry::{AsrModel, Registry, VadSource};
use crate::EngineConfig;
pub use heldout::{root, Clip};

/// The Silero VAD, installed as a pack under `target/test-packs` (once;
/// later runs reuse it).
fn vad_pack_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let models = root().join("target/test-packs");
        let installed = models.join("silero-vad");
        if installed.join(crate::pack::MANIFEST).is_file() {
            return installed;
        }
        let src = root().join("../shared/models/silero_vad");
        crate::install::install_from(
            &src,
            &models,
            &crate::install::Catalog::builtin(),
            &Default::default(),
        )
        .map(|i| i.dir)
        .unwrap_or_else(|e| panic!("cannot install the VAD from {}: {e}", src.display()))
    })
}

/// A registry of one committed ASR pack (by directory name) and the VAD.
fn registry(pack: &str) -> Registry {
    let config = EngineConfig {
        packs: vec![
            root().join("testdata/models").join(pack),
            vad_pack_dir().to_path_buf(),
        ],
        ..Default::default()
    };
    let (registry, punctuation) = Registry::load(&config).expect("the test packs load");
    assert!(punctuation.is_none());
    registry
}

fn streaming_registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| registry("zh-tiny-ctc-streaming"))
}

fn offline_registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| registry("zh-tiny-ctc-offline"))
}

pub fn property(rate: u32) -> Property {
    let name = if rate == 8000 {
        "chinese_8k_common"
    } else {
        "chinese_16k_common"
    };
    Property::parse(name).expect("a valid property")
}

/// The streaming test pack (what real-time sessions use when it is installed).
pub fn streaming_model() -> Arc<AsrModel> {
    let m = streaming_registry()
        .for_realtime(&property(16000))
        .expect("served");
    assert!(m.recognizer.is_streaming());
    m
}

/// The offline test pack.
pub fn offline_model() -> Arc<AsrModel> {
    let m = offline_registry()
        .for_whole_audio(&property(16000))
        .expect("served");
    assert!(!m.recognizer.is_streaming());
    m
}

/// The Silero VAD with the default settings.
pub fn vad() -> VadSource {
    streaming_registry().vad().cloned().expect("the VAD pack")
}

/// Transcripts without a punctuation model (the fallback adds none unless asked).
pub fn post() -> Arc<Postprocessor> {
    Arc::new(Postprocessor::new(None))
}

/// The held-out sentences, in the manifest's order.
pub fn sentences() -> Vec<Clip> {
    heldout::clips()
        .into_iter()
        .filter(|c| c.kind == "sentence")
        .collect()
}

/// A clip's samples at `rate` (8000 or 16000).
pub fn samples(clip: &Clip, rate: u32) -> Vec<f32> {
    heldout::pcm(clip, rate).samples
}

/// `seconds` of silence at `rate`.
pub fn silence(seconds: f32, rate: u32) -> Vec<f32> {
    vec![0.0; (seconds * rate as f32) as usize]
}
