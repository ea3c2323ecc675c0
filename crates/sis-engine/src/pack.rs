//! Model packs: a directory with a `pack.toml` manifest and the files it lists.
//!
//! ```toml
//! name = "zh-tiny-ctc-offline"
//! kind = "offline_asr"          # offline_asr | streaming_asr | vad | punctuation
//! model_type = "nemo_ctc"
//! language = "zh"
//! sample_rate = 16000
//! properties = ["chinese_16k_common", "chinese_8k_common"]
//! resample_8k = true            # 8 kHz properties served by this 16 kHz model
//! [[files]]
//! path = "model.onnx"
//! sha256 = "..."
//! role = "model"               # optional for model.onnx / tokens.txt
//! ```
//!
//! Checking a pack ([`Pack::check`]) never calls sherpa-onnx: it reads the
//! manifest, hashes the files, parses the ONNX metadata and the token table,
//! and rejects anything sherpa-onnx would reject by ending the process.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::onnx_meta;

pub const MANIFEST: &str = "pack.toml";

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash)]
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

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub path: String,
    pub sha256: String,
    #[serde(default)]
    pub role: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub kind: PackKind,
    pub model_type: String,
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default = "default_rate")]
    pub sample_rate: u32,
    #[serde(default)]
    pub properties: Vec<String>,
    #[serde(default)]
    pub resample_8k: bool,
    #[serde(default)]
    pub description: Option<String>,
    pub files: Vec<FileEntry>,
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

    fn onnx(&self, role: &str) -> Result<onnx_meta::OnnxInfo, PackError> {
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
        .filter(|p| p.join(MANIFEST).is_file())
        .collect();
    out.sort();
    Ok(out)
}
