//! The held-out synthetic set (`tools/heldout/make_heldout.py`, a pipeline
//! the test packs never trained on): `SIS_HELDOUT_DIR`, or `target/heldout`,
//! made on first use. Shared by the unit tests (`crate::testsupport`) and
//! `tests/heldout_cer.rs` (included there by path), so it uses nothing of
//! the crate.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use sis_core::AudioFormat;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One clip: its id, kind (`number` or `sentence`) and reference text.
#[derive(Clone, Debug)]
pub struct Clip {
    pub id: String,
    pub kind: String,
    pub text: String,
}

/// The set's directory, made if missing.
pub fn dir() -> PathBuf {
    if let Ok(d) = std::env::var("SIS_HELDOUT_DIR") {
        return PathBuf::from(d);
    }
    let dir = root().join("target/heldout");
    static MADE: OnceLock<()> = OnceLock::new();
    MADE.get_or_init(|| {
        if !dir.join("manifest.tsv").is_file() {
            let status = std::process::Command::new("python3")
                .arg(root().join("tools/heldout/make_heldout.py"))
                .arg(&dir)
                .status()
                .expect("run make_heldout.py");
            assert!(status.success(), "make_heldout.py failed");
        }
    });
    dir
}

/// Every clip, in the manifest's order.
pub fn clips() -> Vec<Clip> {
    let text = std::fs::read_to_string(dir().join("manifest.tsv")).expect("the manifest");
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.len() >= 3).then(|| Clip {
                id: f[0].to_string(),
                kind: f[1].to_string(),
                text: f[2].to_string(),
            })
        })
        .collect()
}

/// A clip's audio at `rate` (8000 or 16000), as the set stores it (0.4 s of
/// silence each side).
pub fn pcm(clip: &Clip, rate: u32) -> sis_core::Pcm {
    let sub = if rate == 8000 { "8k" } else { "16k" };
    let bytes =
        std::fs::read(dir().join(sub).join(format!("{}.wav", clip.id))).expect("a held-out clip");
    let pcm = sis_audio::decode(
        AudioFormat::Wav,
        &bytes,
        sis_audio::DecodeLimits { max_ms: 60_000 },
    )
    .expect("a valid wav");
    assert_eq!(pcm.sample_rate, rate);
    pcm
}
