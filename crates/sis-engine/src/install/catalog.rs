//! The catalog of installable packs: `catalog.toml` (built in), plus an
//! operator's file (`--catalog FILE`, same format) whose entries add to it or
//! replace built-in ones of the same name (a private mirror's own packs; the
//! integration tests' packs served from loopback).

use std::path::Path;

use serde::Deserialize;

use crate::pack::{required_roles, PackKind};

/// Where the sherpa-onnx release assets live. `--base-url` replaces this
/// prefix with a mirror's.
pub const DEFAULT_BASE_URL: &str = "https://github.com/k2-fsa/sherpa-onnx/releases/download";

const BUILTIN: &str = include_str!("catalog.toml");

/// A file of a catalog pack: its path inside the archive's directory (or the
/// name a single downloaded file is installed under), its role, and its
/// sha256 when known (checked after unpacking).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogFile {
    pub path: String,
    pub role: String,
    #[serde(default)]
    pub sha256: Option<String>,
}

/// A real pack, pinned by the sha256 of what is downloaded (an archive, or a
/// single model file).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogEntry {
    pub name: String,
    /// The official download location.
    pub url: String,
    /// The path under a mirror's base URL; by default the part of `url`
    /// after [`DEFAULT_BASE_URL`] (`TAG/ARCHIVE`).
    #[serde(default)]
    pub mirror_path: Option<String>,
    pub sha256: String,
    pub bytes: u64,
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
    pub license: String,
    pub description: String,
    /// Part of the set `sisd models install --defaults` installs.
    #[serde(default)]
    pub default: bool,
    #[serde(default)]
    pub test_only: bool,
    /// A TTS pack's voices: SIS voice `property` → speaker id.
    #[serde(default)]
    pub speakers: std::collections::BTreeMap<String, i64>,
    pub files: Vec<CatalogFile>,
}

fn default_rate() -> u32 {
    16000
}

/// What is downloaded for an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload {
    /// A .tar, .tar.gz/.tgz or .tar.bz2 archive holding the files.
    Archive,
    /// The one model file itself (`files[0]`).
    File,
}

impl CatalogEntry {
    /// The path under a mirror's base URL.
    pub fn mirror_path(&self) -> Option<&str> {
        self.mirror_path.as_deref().or_else(|| {
            self.url
                .strip_prefix(DEFAULT_BASE_URL)
                .and_then(|p| p.strip_prefix('/'))
        })
    }

    /// Where to download from: `url`, or under `base` (a mirror) when given.
    pub fn url_under(&self, base: Option<&str>) -> Result<String, String> {
        match base {
            None => Ok(self.url.clone()),
            Some(base) => {
                let path = self.mirror_path().ok_or_else(|| {
                    format!(
                        "{}: no path under a mirror (set mirror_path in the catalog)",
                        self.name
                    )
                })?;
                Ok(format!("{}/{path}", base.trim_end_matches('/')))
            }
        }
    }

    /// The downloaded file's name (the last segment of the URL).
    pub fn file_name(&self) -> &str {
        let path = self.url.split(['?', '#']).next().unwrap_or_default();
        path.rsplit('/').next().unwrap_or_default()
    }

    pub fn payload(&self) -> Payload {
        let n = self.file_name().to_ascii_lowercase();
        if n.ends_with(".onnx") {
            Payload::File
        } else {
            Payload::Archive
        }
    }

    fn validate(&self) -> Result<(), String> {
        let fail = |what: String| Err(format!("catalog entry {}: {what}", self.name));
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            || self.name.starts_with('.')
        {
            return fail("a name is letters, digits, '-', '_' and '.'".into());
        }
        if self.sha256.len() != 64 || !self.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return fail(format!("sha256 '{}' is not 64 hex digits", self.sha256));
        }
        if !(self.url.starts_with("https://") || self.url.starts_with("http://")) {
            return fail(format!("url '{}' is not http(s)", self.url));
        }
        let Some(roles) = required_roles(self.kind, &self.model_type) else {
            return fail(format!(
                "model_type {} is not supported for kind {}",
                self.model_type,
                self.kind.as_str()
            ));
        };
        for role in roles {
            if !self.files.iter().any(|f| f.role == *role) {
                return fail(format!("no file with role {role}"));
            }
        }
        for f in &self.files {
            if f.path.is_empty()
                || f.path.contains("..")
                || f.path.starts_with('/')
                || f.path.contains('\\')
            {
                return fail(format!("file path '{}' must be relative", f.path));
            }
        }
        if self.payload() == Payload::File && self.files.len() != 1 {
            return fail("a single-file download lists exactly one file".into());
        }
        for p in &self.properties {
            if sis_core::Property::parse(p).is_none() {
                return fail(format!("invalid property '{p}'"));
            }
        }
        if (self.kind == PackKind::Tts) == self.speakers.is_empty() {
            return fail("a tts pack, and only one, lists [speakers]".into());
        }
        for voice in self.speakers.keys() {
            if crate::tts::voice(voice).is_none() {
                return fail(format!("{voice} is not a SIS voice"));
            }
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFileFormat {
    #[serde(default)]
    pack: Vec<CatalogEntry>,
}

/// The entries `sisd models install NAME` knows.
#[derive(Clone, Debug)]
pub struct Catalog {
    pub entries: Vec<CatalogEntry>,
}

impl Catalog {
    fn parse(text: &str, origin: &str) -> Result<Vec<CatalogEntry>, String> {
        let parsed: CatalogFileFormat =
            toml::from_str(text).map_err(|e| format!("catalog {origin}: {e}"))?;
        for e in &parsed.pack {
            e.validate().map_err(|m| format!("{origin}: {m}"))?;
        }
        Ok(parsed.pack)
    }

    /// The built-in catalog (`catalog.toml`, checked by the tests).
    pub fn builtin() -> Catalog {
        match Catalog::parse(BUILTIN, "(built in)") {
            Ok(entries) => Catalog { entries },
            // never: the tests parse it; an empty catalog is the safe failure
            Err(e) => {
                tracing::error!("{e}");
                Catalog {
                    entries: Vec::new(),
                }
            }
        }
    }

    /// The built-in catalog with the entries of `file` added (an entry of
    /// the same name replaces the built-in one).
    pub fn with_file(file: &Path) -> Result<Catalog, String> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read catalog {}: {e}", file.display()))?;
        let mut catalog = Catalog::builtin();
        for e in Catalog::parse(&text, &file.display().to_string())? {
            match catalog.entries.iter_mut().find(|x| x.name == e.name) {
                Some(slot) => *slot = e,
                None => catalog.entries.push(e),
            }
        }
        Ok(catalog)
    }

    pub fn find(&self, name: &str) -> Option<&CatalogEntry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// The entry whose download has this sha256.
    pub fn by_sha256(&self, sha256: &str) -> Option<&CatalogEntry> {
        self.entries
            .iter()
            .find(|e| e.sha256.eq_ignore_ascii_case(sha256))
    }

    /// The set `--defaults` installs.
    pub fn defaults(&self) -> impl Iterator<Item = &CatalogEntry> {
        self.entries.iter().filter(|e| e.default)
    }

    pub fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.name.as_str()).collect()
    }
}
