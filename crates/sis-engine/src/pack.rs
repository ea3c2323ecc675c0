//! Model packs: a directory with a `pack.toml` manifest and the files it lists.
//!
//! ```toml
//! name = "zh-tiny-ctc-offline"
//! kind = "offline_asr"          # offline_asr | streaming_asr | vad | punctuation
//! model_type = "nemo_ctc"       # see required_roles
//! language = "zh"
//! sample_rate = 16000
//! properties = ["chinese_16k_common", "chinese_8k_common"]
//! resample_8k = true            # 8 kHz properties served by this 16 kHz model
//! description = "..."
//! license = "Apache-2.0"        # optional
//! source = "https://... sha256 ..." # optional: where the files came from
//! test_only = true              # optional: recognises synthetic test speech only
//! [[files]]
//! path = "model.onnx"
//! sha256 = "..."
//! role = "model"               # optional for model.onnx / tokens.txt
//! ```
//!
//! `docs/PACKS.md` documents every field, the kinds, model types and roles.
//! The manifest itself is not hashed: editing it (e.g. `properties`) needs
//! no rehash; the files it lists are.
//!
//! A `test_only` pack (the committed packs under `testdata/models`) is
//! loaded like any other, but the server warns at start and in `/health`, and
//! `sisd models list` marks it, so nobody mistakes it for a real model; and a
//! real pack serving the same property wins over it (`registry.rs`).
//!
//! Checking a pack ([`Pack::check`]) never calls sherpa-onnx: it reads the
//! manifest, hashes the files, parses the ONNX metadata and the token table,
//! and rejects anything sherpa-onnx would reject by ending the process.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::onnx_meta;

pub const MANIFEST: &str = "pack.toml";

/// What the server says (log at start, `/health`) when it serves a
/// `test_only` pack.
pub const TEST_ONLY_WARNING: &str = "serving test packs that only recognise synthetic test speech";

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum PackKind {
    OfflineAsr,
    StreamingAsr,
    Vad,
    Punctuation,
}

impl PackKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PackKind::OfflineAsr => "offline_asr",
            PackKind::StreamingAsr => "streaming_asr",
            PackKind::Vad => "vad",
            PackKind::Punctuation => "punctuation",
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub path: String,
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// `pack.toml` (read here; written by the installer with `toml`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub kind: PackKind,
    pub model_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default = "default_rate")]
    pub sample_rate: u32,
    #[serde(default)]
    pub properties: Vec<String>,
    #[serde(default)]
    pub resample_8k: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The model's licence, as its publisher states it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// Where the files came from (a URL or a path, and the archive's sha256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// A pack that only recognises synthetic test speech (the committed
    /// test packs): loaded, but flagged everywhere it shows.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub test_only: bool,
    pub files: Vec<FileEntry>,
}

impl Manifest {
    /// The manifest as `pack.toml` text.
    pub fn to_toml(&self) -> Result<String, String> {
        toml::to_string(self).map_err(|e| format!("cannot write {MANIFEST}: {e}"))
    }
}

fn default_rate() -> u32 {
    16000
}

/// The files each model type needs, by role.
pub fn required_roles(kind: PackKind, model_type: &str) -> Option<&'static [&'static str]> {
    use PackKind::*;
    Some(match (kind, model_type) {
        (OfflineAsr, "nemo_ctc" | "zipformer_ctc" | "wenet_ctc" | "paraformer" | "sense_voice") => {
            &["model", "tokens"]
        }
        (OfflineAsr | StreamingAsr, "transducer") => &["encoder", "decoder", "joiner", "tokens"],
        (StreamingAsr, "nemo_ctc" | "zipformer2_ctc") => &["model", "tokens"],
        (StreamingAsr, "paraformer") => &["encoder", "decoder", "tokens"],
        (Vad, "silero_vad") => &["model"],
        (Punctuation, "ct_transformer") => &["model"],
        _ => return None,
    })
}

/// (role, integer keys, other keys).
type MetadataRule = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
);

/// Metadata sherpa-onnx reads from a model file of `role` with a reader that
/// ends the process when the key is missing (or, for the integers, not an
/// integer): (role, integer keys, other keys). Checked by [`Pack::check`].
/// (nemo_ctc has its own, stricter check below.)
fn required_metadata(kind: PackKind, model_type: &str) -> &'static [MetadataRule] {
    use PackKind::*;
    match (kind, model_type) {
        // offline-paraformer-model.cc
        (OfflineAsr, "paraformer") => &[(
            "model",
            &["vocab_size", "lfr_window_size", "lfr_window_shift"],
            &["neg_mean", "inv_stddev"],
        )],
        // offline-sense-voice-model.cc (the language and ITN ids: below)
        (OfflineAsr, "sense_voice") => &[(
            "model",
            &[
                "vocab_size",
                "lfr_window_size",
                "lfr_window_shift",
                "normalize_samples",
            ],
            &[],
        )],
        // online-transducer-model.cc picks the encoder's code by its
        // model_type; every transducer decoder reads these two
        (StreamingAsr, "transducer") => &[
            ("encoder", &[], &["model_type"]),
            ("decoder", &["vocab_size", "context_size"], &[]),
        ],
        (OfflineAsr, "transducer") => &[("decoder", &["vocab_size", "context_size"], &[])],
        // offline-ct-transformer-model.cc
        (Punctuation, "ct_transformer") => &[(
            "model",
            &["vocab_size"],
            &["tokens", "punctuations", "unk_symbol"],
        )],
        _ => &[],
    }
}

/// SenseVoice models other than FunASR-Nano exports also carry these.
const SENSE_VOICE_IDS: &[&str] = &[
    "with_itn",
    "without_itn",
    "lang_auto",
    "lang_zh",
    "lang_en",
    "lang_ja",
    "lang_ko",
    "lang_yue",
];

/// The encoder model types sherpa-onnx's online transducer knows; any other
/// ends the process.
pub const ONLINE_TRANSDUCER_TYPES: &[&str] = &[
    "conformer",
    "ebranchformer",
    "lstm",
    "zipformer",
    "zipformer2",
];

/// A pack whose manifest has been read (files not yet checked).
#[derive(Clone, Debug)]
pub struct Pack {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

#[derive(Debug, thiserror::Error)]
#[error("model pack {pack}: {problem}")]
pub struct PackError {
    pub pack: String,
    pub problem: String,
}

fn err(dir: &Path, problem: impl Into<String>) -> PackError {
    PackError {
        pack: dir.display().to_string(),
        problem: problem.into(),
    }
}

pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

impl Pack {
    /// Reads `dir/pack.toml`.
    pub fn open(dir: &Path) -> Result<Pack, PackError> {
        let text = fs::read_to_string(dir.join(MANIFEST))
            .map_err(|e| err(dir, format!("cannot read {MANIFEST}: {e}")))?;
        let manifest: Manifest =
            toml::from_str(&text).map_err(|e| err(dir, format!("invalid {MANIFEST}: {e}")))?;
        Ok(Pack {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// Path of the file with `role` (explicit, or inferred from the file name).
    pub fn file(&self, role: &str) -> Option<PathBuf> {
        let m = &self.manifest;
        let explicit = m.files.iter().find(|f| f.role.as_deref() == Some(role));
        let inferred = || {
            m.files.iter().find(|f| {
                f.role.is_none()
                    && match role {
                        "tokens" => f.path.ends_with("tokens.txt"),
                        "model" => f.path.ends_with(".onnx"),
                        _ => false,
                    }
            })
        };
        explicit.or_else(inferred).map(|f| self.dir.join(&f.path))
    }

    /// Everything short of loading: manifest sanity, files present with the
    /// right sha256, ONNX metadata and token table acceptable to sherpa-onnx.
    pub fn check(&self) -> Result<(), PackError> {
        let m = &self.manifest;
        let d = &self.dir;
        if m.name.is_empty() || m.name.contains(['/', '\\']) || m.name.starts_with('.') {
            return Err(err(d, format!("invalid pack name '{}'", m.name)));
        }
        if m.sample_rate != 8000 && m.sample_rate != 16000 {
            return Err(err(
                d,
                format!(
                    "sample_rate {} not supported (8000 or 16000)",
                    m.sample_rate
                ),
            ));
        }
        let roles = required_roles(m.kind, &m.model_type).ok_or_else(|| {
            err(
                d,
                format!(
                    "model_type '{}' is not supported for kind '{}'",
                    m.model_type,
                    m.kind.as_str()
                ),
            )
        })?;
        for p in &m.properties {
            let prop = sis_core::Property::parse(p)
                .ok_or_else(|| err(d, format!("invalid property '{p}'")))?;
            if prop.sample_rate() != m.sample_rate && !(m.resample_8k && prop.sample_rate() == 8000)
            {
                return Err(err(
                    d,
                    format!(
                        "property {p} is {} Hz but the model is {} Hz (set resample_8k = true to serve 8 kHz by resampling)",
                        prop.sample_rate(),
                        m.sample_rate
                    ),
                ));
            }
        }
        if matches!(m.kind, PackKind::OfflineAsr | PackKind::StreamingAsr)
            && m.properties.is_empty()
        {
            return Err(err(d, "an ASR pack must list the properties it serves"));
        }
        for f in &m.files {
            if f.path.contains("..") || Path::new(&f.path).is_absolute() {
                return Err(err(
                    d,
                    format!("file path '{}' must stay inside the pack", f.path),
                ));
            }
            let p = d.join(&f.path);
            let got = sha256_file(&p).map_err(|e| err(d, format!("file {}: {e}", f.path)))?;
            if !got.eq_ignore_ascii_case(&f.sha256) {
                return Err(err(
                    d,
                    format!(
                        "file {}: sha256 {got} does not match the manifest's {}",
                        f.path, f.sha256
                    ),
                ));
            }
        }
        for role in roles {
            if self.file(role).is_none() {
                return Err(err(
                    d,
                    format!("no '{role}' file listed for model_type {}", m.model_type),
                ));
            }
        }
        self.check_contents()
    }

    /// The ONNX metadata and inputs/outputs of the file with `role`.
    pub(crate) fn onnx(&self, role: &str) -> Result<onnx_meta::OnnxInfo, PackError> {
        let p = self
            .file(role)
            .ok_or_else(|| err(&self.dir, format!("no {role} file")))?;
        let bytes = fs::read(&p).map_err(|e| err(&self.dir, format!("{}: {e}", p.display())))?;
        onnx_meta::parse(&bytes).map_err(|e| {
            err(
                &self.dir,
                format!("{}: not a valid ONNX model: {e}", p.display()),
            )
        })
    }

    fn check_contents(&self) -> Result<(), PackError> {
        let m = &self.manifest;
        let d = &self.dir;
        let mut onnx_roles: Vec<&str> = vec![];
        if let Some(roles) = required_roles(m.kind, &m.model_type) {
            onnx_roles.extend(roles.iter().filter(|r| **r != "tokens"));
        }
        let mut infos = BTreeMap::new();
        for role in onnx_roles {
            infos.insert(role, self.onnx(role)?);
        }
        let tokens = match self.file("tokens") {
            Some(p) => Some(read_tokens(&p).map_err(|e| err(d, e))?),
            None => None,
        };
        let ctc = m.model_type.ends_with("ctc");
        if let Some(t) = &tokens {
            if ctc
                && !t.contains_key("<blk>")
                && !t.contains_key("<eps>")
                && !t.contains_key("<blank>")
            {
                return Err(err(
                    d,
                    "tokens.txt has no blank symbol (<blk>, <eps> or <blank>)",
                ));
            }
        }
        if m.model_type == "nemo_ctc" {
            let info = &infos["model"];
            let mut keys = vec!["vocab_size", "subsampling_factor"];
            let want_inputs = if m.kind == PackKind::StreamingAsr {
                keys.extend([
                    "window_size",
                    "chunk_shift",
                    "cache_last_channel_dim1",
                    "cache_last_channel_dim2",
                    "cache_last_channel_dim3",
                    "cache_last_time_dim1",
                    "cache_last_time_dim2",
                    "cache_last_time_dim3",
                ]);
                5
            } else {
                2
            };
            for k in &keys {
                match info.int(k) {
                    Some(v) if v > 0 => {}
                    Some(v) => {
                        return Err(err(
                            d,
                            format!("model metadata '{k}' = {v} must be positive"),
                        ))
                    }
                    None => {
                        return Err(err(
                            d,
                            format!("model metadata '{k}' missing or not an integer"),
                        ))
                    }
                }
            }
            if info.inputs.len() != want_inputs {
                return Err(err(
                    d,
                    format!(
                        "nemo_ctc model has {} inputs, expected {want_inputs}",
                        info.inputs.len()
                    ),
                ));
            }
            if let (Some(t), Some(v)) = (&tokens, info.int("vocab_size")) {
                if t.len() as i64 != v + 1 {
                    return Err(err(
                        d,
                        format!(
                            "tokens.txt has {} symbols but the model's vocab_size + blank is {}",
                            t.len(),
                            v + 1
                        ),
                    ));
                }
            }
        }
        for (role, ints, present) in required_metadata(m.kind, &m.model_type) {
            let Some(info) = infos.get(role) else {
                continue;
            };
            let mut ints: Vec<&str> = ints.to_vec();
            let mut present: Vec<&str> = present.to_vec();
            if m.model_type == "sense_voice" {
                let nano = info
                    .metadata
                    .get("comment")
                    .is_some_and(|c| c.contains("Nano"));
                if !nano {
                    ints.extend(SENSE_VOICE_IDS);
                    present.extend(["neg_mean", "inv_stddev"]);
                }
            }
            for k in ints {
                if info.int(k).is_none() {
                    return Err(err(
                        d,
                        format!("{role} model metadata '{k}' missing or not an integer"),
                    ));
                }
            }
            for k in present {
                if !info.metadata.contains_key(k) {
                    return Err(err(d, format!("{role} model metadata '{k}' missing")));
                }
            }
        }
        if (m.kind, m.model_type.as_str()) == (PackKind::StreamingAsr, "transducer") {
            let t = infos["encoder"]
                .metadata
                .get("model_type")
                .map(String::as_str);
            if !t.is_some_and(|t| ONLINE_TRANSDUCER_TYPES.contains(&t)) {
                return Err(err(
                    d,
                    format!(
                        "encoder metadata model_type {:?} is not a streaming transducer ({})",
                        t.unwrap_or(""),
                        ONLINE_TRANSDUCER_TYPES.join(", ")
                    ),
                ));
            }
        }
        if m.model_type == "ct_transformer" {
            // sherpa-onnx ends the process when the two disagree
            let info = &infos["model"];
            let n = info
                .metadata
                .get("tokens")
                .map_or(0, |t| t.split('|').count());
            if info.int("vocab_size") != Some(n as i64) {
                return Err(err(
                    d,
                    format!(
                        "model metadata has {n} tokens but vocab_size {:?}",
                        info.int("vocab_size")
                    ),
                ));
            }
        }
        if m.kind == PackKind::Vad {
            let info = &infos["model"];
            if info.inputs.is_empty() {
                return Err(err(d, "VAD model has no inputs"));
            }
        }
        Ok(())
    }
}

/// `symbol id` per line; ids unique.
pub fn read_tokens(path: &Path) -> Result<BTreeMap<String, i64>, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut map = BTreeMap::new();
    let mut ids = std::collections::BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (sym, id) = line
            .rsplit_once(' ')
            .ok_or_else(|| format!("tokens.txt line {}: expected 'symbol id'", n + 1))?;
        let id: i64 = id
            .trim()
            .parse()
            .map_err(|_| format!("tokens.txt line {}: id '{id}' is not an integer", n + 1))?;
        if !ids.insert(id) {
            return Err(format!("tokens.txt line {}: duplicate id {id}", n + 1));
        }
        map.insert(sym.to_string(), id);
    }
    if map.is_empty() {
        return Err("tokens.txt is empty".into());
    }
    // sherpa-onnx looks each emitted id up with a throwing accessor: a gap
    // would end the process on the first result that hits it (docs/NATIVE.md)
    if ids.first() != Some(&0) || ids.last() != Some(&(ids.len() as i64 - 1)) {
        return Err(format!(
            "tokens.txt ids must be 0..{} without gaps",
            ids.len() - 1
        ));
    }
    Ok(map)
}

/// Packs under a models directory: the directory itself if it holds a
/// manifest, otherwise its immediate subdirectories that do.
pub fn discover(dir: &Path) -> Result<Vec<PathBuf>, PackError> {
    if dir.join(MANIFEST).is_file() {
        return Ok(vec![dir.to_path_buf()]);
    }
    let rd =
        fs::read_dir(dir).map_err(|e| err(dir, format!("cannot read models directory: {e}")))?;
    let mut out: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        // hidden: the installer's staging area
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .filter(|p| p.join(MANIFEST).is_file())
        .collect();
    out.sort();
    Ok(out)
}
