//! Installing packs into a models directory: from a local pack, a model
//! directory, a release archive or a single model file (`--from`), or from a
//! catalog entry's download (`sisd models install NAME`; the download itself
//! is `sisd`'s, this module takes the downloaded file).
//!
//! Every install is staged under `MODELS_DIR/.staging/` (which pack
//! discovery skips), checked with [`Pack::check`], then renamed into place:
//! a server starting meanwhile sees the whole pack or none of it.

pub mod catalog;
pub mod layout;

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

pub use catalog::{Catalog, CatalogEntry, CatalogFile, Payload, DEFAULT_BASE_URL};
pub use layout::{infer, Layout, KNOWN_LAYOUTS};

use crate::pack::{sha256_file, FileEntry, Manifest, Pack, PackError, PackKind, MANIFEST};

fn err(what: &Path, problem: impl Into<String>) -> PackError {
    PackError {
        pack: what.display().to_string(),
        problem: problem.into(),
    }
}

/// The installer's work area inside a models directory (downloads in
/// progress, `NAME.part`, unpacking, packs being assembled).
pub fn staging_dir(models_dir: &Path) -> PathBuf {
    models_dir.join(".staging")
}

/// Removes the staging area when nothing is left in it (a partial download
/// is, until it is resumed).
pub fn tidy(models_dir: &Path) {
    let _ = fs::remove_dir(staging_dir(models_dir));
}

/// Choices the operator makes for an inferred pack (`--name`,
/// `--properties`); a catalog entry's own values are not overridden.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub name: Option<String>,
    pub properties: Option<Vec<String>>,
}

/// An installed pack.
#[derive(Clone, Debug)]
pub struct Installed {
    pub dir: PathBuf,
    pub name: String,
    /// The catalog entry it was recognised as, if any.
    pub catalog: Option<String>,
}

/// The properties an inferred ASR pack serves, by language (16 kHz models;
/// the 8 kHz properties by resampling).
fn properties_for(language: Option<&str>) -> Vec<String> {
    let list: &[&str] = match language {
        Some("en") => &[
            "english_16k_general",
            "english_16k_common",
            "english_8k_common",
        ],
        _ => &[
            "chinese_16k_common",
            "chinese_16k_general",
            "chinese_8k_common",
            "chinese_8k_general",
        ],
    };
    list.iter().map(|s| s.to_string()).collect()
}

fn is_asr(kind: PackKind) -> bool {
    matches!(kind, PackKind::OfflineAsr | PackKind::StreamingAsr)
}

/// A pack name from a file or directory name: the archive extensions and
/// the `sherpa-onnx-` prefix dropped.
fn name_from(source: &Path) -> String {
    let base = source
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut n = base.as_str();
    for ext in [".tar.bz2", ".tar.gz", ".tgz", ".tar", ".onnx"] {
        if let Some(s) = n.strip_suffix(ext) {
            n = s;
            break;
        }
    }
    let n = n.strip_prefix("sherpa-onnx-").unwrap_or(n);
    let clean: String = n
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let clean = clean.trim_start_matches('.').to_string();
    if clean.is_empty() {
        "pack".into()
    } else {
        clean
    }
}

/// A pack being assembled in the staging area, renamed into place by
/// [`Stage::finish`] after [`Pack::check`] accepted it.
struct Stage {
    dir: PathBuf,
    dest: PathBuf,
}

impl Stage {
    fn new(models_dir: &Path, name: &str) -> Result<Stage, PackError> {
        let dest = models_dir.join(name);
        if dest.exists() {
            return Err(err(&dest, "already installed; remove it first"));
        }
        let staging = staging_dir(models_dir);
        let dir = staging.join(format!("{name}.installing"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).map_err(|e| err(&dir, e.to_string()))?;
        Ok(Stage { dir, dest })
    }

    /// Moves (or, across file systems or from the operator's own files,
    /// copies) `from` into the pack as `path`; returns its sha256.
    fn put(&self, from: &Path, path: &str, take: bool) -> Result<String, PackError> {
        let to = self.dir.join(path);
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).map_err(|e| err(&self.dir, e.to_string()))?;
        }
        if !(take && fs::rename(from, &to).is_ok()) {
            fs::copy(from, &to).map_err(|e| err(from, format!("cannot copy: {e}")))?;
        }
        sha256_file(&to).map_err(|e| err(&to, e.to_string()))
    }

    fn finish(self, manifest: &Manifest) -> Result<PathBuf, PackError> {
        let text = manifest.to_toml().map_err(|e| err(&self.dir, e))?;
        fs::write(self.dir.join(MANIFEST), text).map_err(|e| err(&self.dir, e.to_string()))?;
        self.finish_written()
    }

    fn finish_written(self) -> Result<PathBuf, PackError> {
        let checked = Pack::open(&self.dir).and_then(|p| p.check());
        if let Err(e) = checked {
            let _ = fs::remove_dir_all(&self.dir);
            return Err(e);
        }
        if self.dest.exists() {
            let _ = fs::remove_dir_all(&self.dir);
            return Err(err(&self.dest, "already installed; remove it first"));
        }
        fs::rename(&self.dir, &self.dest).map_err(|e| err(&self.dest, e.to_string()))?;
        Ok(self.dest)
    }
}

/// Copies a pack that has its own manifest.
fn copy_pack(src: &Pack, models_dir: &Path) -> Result<Installed, PackError> {
    src.check()?;
    let stage = Stage::new(models_dir, src.name())?;
    for f in &src.manifest.files {
        stage.put(&src.dir.join(&f.path), &f.path, false)?;
    }
    fs::copy(src.dir.join(MANIFEST), stage.dir.join(MANIFEST))
        .map_err(|e| err(&stage.dir, e.to_string()))?;
    let dir = stage.finish_written()?;
    Ok(Installed {
        dir,
        name: src.name().to_string(),
        catalog: None,
    })
}

/// The licence file of a release directory, if it has one.
fn license_file(dir: &Path) -> Option<String> {
    ["LICENSE", "LICENSE.txt", "LICENSE.md"]
        .into_iter()
        .find(|n| fs::symlink_metadata(dir.join(n)).is_ok_and(|m| m.is_file()))
        .map(str::to_string)
}

/// Installs files recognised by their layout, with an inferred manifest.
fn install_inferred(
    found: &Layout,
    source: &Path,
    models_dir: &Path,
    overrides: &Overrides,
    take: bool,
) -> Result<Installed, PackError> {
    let name = match (&overrides.name, found.kind) {
        (Some(n), _) => n.clone(),
        (None, PackKind::Vad) => "silero-vad".to_string(),
        (None, _) => name_from(&found.dir),
    };
    let stage = Stage::new(models_dir, &name)?;
    let mut files = Vec::new();
    for (path, role) in &found.files {
        let sha256 = stage.put(&found.dir.join(path), path, take)?;
        files.push(FileEntry {
            path: path.clone(),
            sha256,
            role: Some(role.clone()),
        });
    }
    if let Some(lic) = license_file(&found.dir) {
        let sha256 = stage.put(&found.dir.join(&lic), &lic, take)?;
        files.push(FileEntry {
            path: lic,
            sha256,
            role: Some("license".into()),
        });
    }
    let asr = is_asr(found.kind);
    let properties = match (&overrides.properties, asr) {
        (Some(p), _) => p.clone(),
        (None, true) => properties_for(found.language.as_deref()),
        (None, false) => Vec::new(),
    };
    let description = match found.kind {
        PackKind::Vad => "Silero VAD".to_string(),
        kind => format!(
            "{} ({}), recognised from its files",
            found.model_type,
            kind.as_str()
        ),
    };
    let manifest = Manifest {
        name: name.clone(),
        kind: found.kind,
        model_type: found.model_type.clone(),
        language: found.language.clone(),
        sample_rate: 16000,
        resample_8k: asr,
        properties,
        description: Some(description),
        license: None,
        source: Some(source.display().to_string()),
        test_only: false,
        speakers: Default::default(),
        files,
    };
    let dir = stage.finish(&manifest)?;
    Ok(Installed {
        dir,
        name,
        catalog: None,
    })
}

/// The directory (`dir` or one of its subdirectories) holding every file of
/// `entry`.
fn entry_dir(entry: &CatalogEntry, dir: &Path) -> Option<PathBuf> {
    let has_all = |d: &Path| {
        entry
            .files
            .iter()
            .all(|f| fs::symlink_metadata(d.join(&f.path)).is_ok_and(|m| m.is_file()))
    };
    if has_all(dir) {
        return Some(dir.to_path_buf());
    }
    let mut subs: Vec<PathBuf> = fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    subs.sort();
    subs.into_iter().find(|d| has_all(d))
}

/// Installs `entry` from `dir`, which holds its files (in it or in one
/// subdirectory), with the catalog's manifest values; each file with a
/// catalog sha256 must match it.
fn install_entry_files(
    entry: &CatalogEntry,
    dir: &Path,
    models_dir: &Path,
    source: String,
    take: bool,
) -> Result<Installed, PackError> {
    let found = entry_dir(entry, dir).ok_or_else(|| {
        let names: Vec<&str> = entry.files.iter().map(|f| f.path.as_str()).collect();
        err(
            dir,
            format!(
                "not the layout of catalog pack {}: expected {}",
                entry.name,
                names.join(", ")
            ),
        )
    })?;
    let stage = Stage::new(models_dir, &entry.name)?;
    let mut files = Vec::new();
    for f in &entry.files {
        let sha256 = stage.put(&found.join(&f.path), &f.path, take)?;
        if let Some(want) = &f.sha256 {
            if !want.eq_ignore_ascii_case(&sha256) {
                let _ = fs::remove_dir_all(&stage.dir);
                return Err(err(
                    &found,
                    format!(
                        "{}: sha256 {sha256} does not match the catalog's {want} for {}",
                        f.path, entry.name
                    ),
                ));
            }
        }
        files.push(FileEntry {
            path: f.path.clone(),
            sha256,
            role: Some(f.role.clone()),
        });
    }
    if let Some(lic) = license_file(&found) {
        if !entry.files.iter().any(|f| f.path == lic) {
            let sha256 = stage.put(&found.join(&lic), &lic, take)?;
            files.push(FileEntry {
                path: lic,
                sha256,
                role: Some("license".into()),
            });
        }
    }
    let manifest = Manifest {
        name: entry.name.clone(),
        kind: entry.kind,
        model_type: entry.model_type.clone(),
        language: entry.language.clone(),
        sample_rate: entry.sample_rate,
        properties: entry.properties.clone(),
        resample_8k: entry.resample_8k,
        description: Some(entry.description.clone()),
        license: Some(entry.license.clone()),
        source: Some(source),
        test_only: entry.test_only,
        speakers: entry.speakers.clone(),
        files,
    };
    let dir = stage.finish(&manifest)?;
    Ok(Installed {
        dir,
        name: entry.name.clone(),
        catalog: Some(entry.name.clone()),
    })
}

/// A temporary directory inside the staging area (same file system as the
/// packs, so files move into place by rename); removed when dropped.
fn scratch(models_dir: &Path, what: &str) -> Result<tempfile::TempDir, PackError> {
    let staging = staging_dir(models_dir);
    fs::create_dir_all(&staging).map_err(|e| err(&staging, e.to_string()))?;
    tempfile::Builder::new()
        .prefix(&format!("{what}."))
        .tempdir_in(&staging)
        .map_err(|e| err(&staging, e.to_string()))
}

fn mismatch(entry: &CatalogEntry, file: &Path, sha: &str) -> PackError {
    err(
        file,
        format!(
            "sha256 {sha} does not match the catalog's {} for {}: refused",
            entry.sha256, entry.name
        ),
    )
}

/// The sha256 of `file` when it is the catalog's for `entry`; else an error
/// that says both.
pub fn verify(entry: &CatalogEntry, file: &Path) -> Result<String, PackError> {
    let sha = sha256_file(file).map_err(|e| err(file, e.to_string()))?;
    if sha.eq_ignore_ascii_case(&entry.sha256) {
        Ok(sha)
    } else {
        Err(mismatch(entry, file, &sha))
    }
}

/// Installs a downloaded (or local) file of catalog `entry`: its sha256 must
/// be the catalog's (when it is not, nothing is installed and the error says
/// so; the caller decides what happens to the file), then the archive is
/// unpacked or the single file taken as it is. `known_sha256`: the file's
/// hash when the caller already computed it.
pub fn install_entry(
    entry: &CatalogEntry,
    file: &Path,
    models_dir: &Path,
    source: &str,
    known_sha256: Option<&str>,
) -> Result<Installed, PackError> {
    let result = install_entry_staged(entry, file, models_dir, source, known_sha256);
    tidy(models_dir);
    result
}

fn install_entry_staged(
    entry: &CatalogEntry,
    file: &Path,
    models_dir: &Path,
    source: &str,
    known_sha256: Option<&str>,
) -> Result<Installed, PackError> {
    let sha = match known_sha256 {
        Some(s) => s.to_string(),
        None => verify(entry, file)?,
    };
    if !sha.eq_ignore_ascii_case(&entry.sha256) {
        return Err(mismatch(entry, file, &sha));
    }
    let dest = models_dir.join(&entry.name);
    if dest.exists() {
        return Err(err(&dest, "already installed; remove it first"));
    }
    let source = format!("{source} (sha256 {sha})");
    let work = scratch(models_dir, &entry.name)?;
    match entry.payload() {
        Payload::File => {
            let f = entry
                .files
                .first()
                .ok_or_else(|| err(file, "catalog entry lists no file"))?;
            fs::copy(file, work.path().join(&f.path)).map_err(|e| err(file, e.to_string()))?;
        }
        Payload::Archive => unpack(file, work.path())?,
    }
    install_entry_files(entry, work.path(), models_dir, source, true)
}

/// The catalog entry whose files `dir` (or a subdirectory) holds, all with
/// the catalog's sha256s (entries that pin every file).
fn entry_for_dir<'c>(
    catalog: &'c Catalog,
    dir: &Path,
) -> Result<Option<&'c CatalogEntry>, PackError> {
    let mut hashes: HashMap<PathBuf, String> = HashMap::new();
    for entry in &catalog.entries {
        if entry.files.iter().any(|f| f.sha256.is_none()) {
            continue;
        }
        let Some(found) = entry_dir(entry, dir) else {
            continue;
        };
        let mut all = true;
        for f in &entry.files {
            let p = found.join(&f.path);
            let sha = match hashes.get(&p) {
                Some(s) => s.clone(),
                None => {
                    let s = sha256_file(&p).map_err(|e| err(&p, e.to_string()))?;
                    hashes.insert(p.clone(), s.clone());
                    s
                }
            };
            if f.sha256
                .as_deref()
                .is_none_or(|w| !w.eq_ignore_ascii_case(&sha))
            {
                all = false;
                break;
            }
        }
        if all {
            return Ok(Some(entry));
        }
    }
    Ok(None)
}

/// What a file is, by its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FileType {
    Bzip2,
    Gzip,
    Tar,
    Other,
}

fn file_type(path: &Path) -> Result<FileType, PackError> {
    let mut head = [0u8; 512];
    let mut f = fs::File::open(path).map_err(|e| err(path, e.to_string()))?;
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(err(path, e.to_string())),
        }
    }
    let head = &head[..n];
    Ok(if head.starts_with(b"BZh") {
        FileType::Bzip2
    } else if head.starts_with(&[0x1f, 0x8b]) {
        FileType::Gzip
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        FileType::Tar
    } else {
        FileType::Other
    })
}

/// Unpacks a .tar, .tar.gz or .tar.bz2 archive (told by its first bytes).
fn unpack(archive: &Path, to: &Path) -> Result<(), PackError> {
    let file = fs::File::open(archive).map_err(|e| err(archive, e.to_string()))?;
    let reader: Box<dyn Read> = match file_type(archive)? {
        FileType::Gzip => Box::new(flate2::read::GzDecoder::new(file)),
        FileType::Bzip2 => Box::new(bzip2::read::BzDecoder::new(file)),
        FileType::Tar => Box::new(file),
        FileType::Other => {
            return Err(err(
                archive,
                "not an archive this installer reads (.tar, .tar.gz, .tgz, .tar.bz2)",
            ))
        }
    };
    let mut ar = tar::Archive::new(reader);
    // tar's unpack refuses entries that escape the destination
    ar.unpack(to)
        .map_err(|e| err(archive, format!("cannot unpack: {e}")))
}

fn find_pack_root(dir: &Path) -> Option<PathBuf> {
    if dir.join(MANIFEST).is_file() {
        return Some(dir.to_path_buf());
    }
    let mut subs: Vec<PathBuf> = fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join(MANIFEST).is_file())
        .collect();
    subs.sort();
    subs.into_iter().next()
}

/// `sisd models install --from PATH`:
/// - a pack directory (with `pack.toml`): copied as it is;
/// - a directory of model files as published (an unpacked release archive,
///   a folder holding `silero_vad.onnx`): a catalog pack when every file
///   matches one, else its manifest inferred from the layout ([`infer`]);
/// - an archive (.tar, .tar.gz/.tgz, .tar.bz2): a catalog pack when its
///   sha256 is one's, else unpacked and taken as above;
/// - a single model file (`silero_vad.onnx`, a punctuation `model.onnx`):
///   a catalog pack when its sha256 is one's, else inferred.
pub fn install_from(
    path: &Path,
    models_dir: &Path,
    catalog: &Catalog,
    overrides: &Overrides,
) -> Result<Installed, PackError> {
    let result = install_from_staged(path, models_dir, catalog, overrides);
    tidy(models_dir);
    result
}

fn install_from_staged(
    path: &Path,
    models_dir: &Path,
    catalog: &Catalog,
    overrides: &Overrides,
) -> Result<Installed, PackError> {
    fs::create_dir_all(models_dir).map_err(|e| err(models_dir, e.to_string()))?;
    let source = path.display().to_string();
    if path.is_dir() {
        if path.join(MANIFEST).is_file() {
            return copy_pack(&Pack::open(path)?, models_dir);
        }
        if let Some(entry) = entry_for_dir(catalog, path)? {
            return install_entry_files(entry, path, models_dir, source, false);
        }
        let found = infer(path).map_err(|m| err(path, m))?;
        return install_inferred(&found, path, models_dir, overrides, false);
    }
    if !path.is_file() {
        return Err(err(path, "no such file or directory"));
    }
    let sha = sha256_file(path).map_err(|e| err(path, e.to_string()))?;
    if let Some(entry) = catalog.by_sha256(&sha) {
        return install_entry_staged(entry, path, models_dir, &source, Some(&sha));
    }
    let work = scratch(models_dir, "from")?;
    let kind = file_type(path)?;
    match kind {
        FileType::Other => {
            let name = path
                .file_name()
                .ok_or_else(|| err(path, "not a file name"))?;
            fs::copy(path, work.path().join(name)).map_err(|e| err(path, e.to_string()))?;
        }
        _ => {
            unpack(path, work.path())?;
            if let Some(root) = find_pack_root(work.path()) {
                return copy_pack(&Pack::open(&root)?, models_dir);
            }
        }
    }
    let found = infer(work.path()).map_err(|m| {
        // name the operator's archive or file, not the scratch directory
        let shown = match kind {
            FileType::Other => path.parent().unwrap_or(path),
            _ => path,
        };
        err(
            path,
            m.replace(
                &work.path().display().to_string(),
                &shown.display().to_string(),
            ),
        )
    })?;
    let mut overrides = overrides.clone();
    // files at the archive's top level: named after the archive (else after
    // the archive's own directory)
    if overrides.name.is_none() && found.kind != PackKind::Vad && found.dir == work.path() {
        overrides.name = Some(name_from(path));
    }
    install_inferred(&found, path, models_dir, &overrides, true)
}

#[cfg(test)]
mod tests;
