//! Installing packs into a models directory: from a local directory or
//! archive (`--from`), or by name from the catalog of real sherpa-onnx packs.

use std::fs;
use std::path::{Path, PathBuf};

use crate::pack::{sha256_file, Pack, PackError, MANIFEST};

fn err(what: &Path, problem: impl Into<String>) -> PackError {
    PackError {
        pack: what.display().to_string(),
        problem: problem.into(),
    }
}

/// A real sherpa-onnx model archive, pinned by sha256. The archive is fetched
/// from `{base_url}/{release}/{archive}`; the base URL is the operator's
/// (`SIS_MODEL_BASE_URL`): this project names no download host.
pub struct CatalogEntry {
    pub name: &'static str,
    pub release: &'static str,
    pub archive: &'static str,
    pub archive_sha256: &'static str,
    pub archive_bytes: u64,
    /// Directory inside the archive.
    pub dir: &'static str,
    pub kind: &'static str,
    pub model_type: &'static str,
    pub language: &'static str,
    pub properties: &'static [&'static str],
    /// (path inside `dir`, role)
    pub files: &'static [(&'static str, &'static str)],
    pub description: &'static str,
}

pub const CATALOG: &[CatalogEntry] = &[CatalogEntry {
    name: "paraformer-zh-2023-09-14",
    release: "asr-models",
    archive: "sherpa-onnx-paraformer-zh-2023-09-14.tar.bz2",
    archive_sha256: "9c49fd9c6fb63de8e18c1054cf3d100f804741b7e608e187923cd8ff09fa9f03",
    archive_bytes: 234_051_698,
    dir: "sherpa-onnx-paraformer-zh-2023-09-14",
    kind: "offline_asr",
    model_type: "paraformer",
    language: "zh",
    properties: &[
        "chinese_16k_common",
        "chinese_16k_general",
        "chinese_8k_common",
        "chinese_8k_general",
    ],
    files: &[("model.int8.onnx", "model"), ("tokens.txt", "tokens")],
    description: "Paraformer (offline, Mandarin + English), int8",
}];

pub fn catalog_entry(name: &str) -> Option<&'static CatalogEntry> {
    CATALOG.iter().find(|e| e.name == name)
}

fn copy_pack(src: &Pack, models_dir: &Path) -> Result<PathBuf, PackError> {
    src.check()?;
    let dest = models_dir.join(src.name());
    if dest.exists() {
        return Err(err(&dest, "already installed; remove it first"));
    }
    let tmp = models_dir.join(format!(".installing-{}", src.name()));
    let _ = fs::remove_dir_all(&tmp);
    let io = |e: std::io::Error| err(&tmp, e.to_string());
    fs::create_dir_all(&tmp).map_err(io)?;
    for f in &src.manifest.files {
        let to = tmp.join(&f.path);
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).map_err(io)?;
        }
        fs::copy(src.dir.join(&f.path), &to).map_err(io)?;
    }
    fs::copy(src.dir.join(MANIFEST), tmp.join(MANIFEST)).map_err(io)?;
    let staged = Pack::open(&tmp)?;
    staged.check()?;
    fs::rename(&tmp, &dest).map_err(io)?;
    Ok(dest)
}

/// Writes a manifest for a directory that has none but is recognisable
/// (the Silero VAD release: `silero_vad.onnx`).
fn synthesize_manifest(dir: &Path) -> Result<Option<String>, PackError> {
    let vad = dir.join("silero_vad.onnx");
    if !vad.is_file() {
        return Ok(None);
    }
    let sha = sha256_file(&vad).map_err(|e| err(dir, e.to_string()))?;
    let mut m = String::from(
        "name = \"silero-vad\"\nkind = \"vad\"\nmodel_type = \"silero_vad\"\nsample_rate = 16000\n\
         description = \"Silero VAD v5\"\n\n",
    );
    m += &format!("[[files]]\npath = \"silero_vad.onnx\"\nsha256 = \"{sha}\"\nrole = \"model\"\n");
    if dir.join("LICENSE").is_file() {
        let sha = sha256_file(&dir.join("LICENSE")).map_err(|e| err(dir, e.to_string()))?;
        m += &format!("\n[[files]]\npath = \"LICENSE\"\nsha256 = \"{sha}\"\nrole = \"license\"\n");
    }
    Ok(Some(m))
}

/// `sisd models install --from PATH`: a pack directory, a recognisable model
/// directory, or a .tar/.tar.gz/.tgz/.tar.bz2 archive holding a pack.
pub fn install_from(path: &Path, models_dir: &Path) -> Result<PathBuf, PackError> {
    fs::create_dir_all(models_dir).map_err(|e| err(models_dir, e.to_string()))?;
    if path.is_dir() {
        if path.join(MANIFEST).is_file() {
            return copy_pack(&Pack::open(path)?, models_dir);
        }
        if let Some(manifest) = synthesize_manifest(path)? {
            let staging = tempfile::tempdir().map_err(|e| err(path, e.to_string()))?;
            for entry in fs::read_dir(path)
                .map_err(|e| err(path, e.to_string()))?
                .flatten()
            {
                if entry.path().is_file() {
                    fs::copy(entry.path(), staging.path().join(entry.file_name()))
                        .map_err(|e| err(path, e.to_string()))?;
                }
            }
            fs::write(staging.path().join(MANIFEST), manifest)
                .map_err(|e| err(path, e.to_string()))?;
            return copy_pack(&Pack::open(staging.path())?, models_dir);
        }
        return Err(err(
            path,
            format!("no {MANIFEST} and not a recognised model directory"),
        ));
    }
    if path.is_file() {
        let staging = tempfile::tempdir().map_err(|e| err(path, e.to_string()))?;
        unpack(path, staging.path())?;
        let root = find_pack_root(staging.path())
            .ok_or_else(|| err(path, format!("archive holds no directory with {MANIFEST}")))?;
        return copy_pack(&Pack::open(&root)?, models_dir);
    }
    Err(err(path, "no such file or directory"))
}

fn find_pack_root(dir: &Path) -> Option<PathBuf> {
    if dir.join(MANIFEST).is_file() {
        return Some(dir.to_path_buf());
    }
    fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join(MANIFEST).is_file())
}

fn unpack(archive: &Path, to: &Path) -> Result<(), PackError> {
    let name = archive.to_string_lossy().to_lowercase();
    let file = fs::File::open(archive).map_err(|e| err(archive, e.to_string()))?;
    let reader: Box<dyn std::io::Read> = if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else if name.ends_with(".tar.bz2") {
        Box::new(bzip2::read::BzDecoder::new(file))
    } else if name.ends_with(".tar") {
        Box::new(file)
    } else {
        return Err(err(
            archive,
            "unknown archive type (.tar, .tar.gz, .tgz, .tar.bz2)",
        ));
    };
    let mut ar = tar::Archive::new(reader);
    // tar's unpack refuses entries that escape the destination.
    ar.unpack(to)
        .map_err(|e| err(archive, format!("cannot unpack: {e}")))
}

/// `sisd models install NAME`: download the pinned archive, check its sha256,
/// write a manifest and install it.
pub fn install_catalog(
    name: &str,
    models_dir: &Path,
    base_url: &str,
) -> Result<PathBuf, PackError> {
    let e = catalog_entry(name).ok_or_else(|| {
        let names: Vec<&str> = CATALOG.iter().map(|e| e.name).collect();
        err(
            Path::new(name),
            format!("not in the catalog; known: {}", names.join(", ")),
        )
    })?;
    let staging = tempfile::tempdir().map_err(|x| err(models_dir, x.to_string()))?;
    let archive = staging.path().join(e.archive);
    let url = format!(
        "{}/{}/{}",
        base_url.trim_end_matches('/'),
        e.release,
        e.archive
    );
    let status = std::process::Command::new("curl")
        .args(["-fSL", "--retry", "3", "-o"])
        .arg(&archive)
        .arg(&url)
        .status()
        .map_err(|x| err(Path::new(&url), format!("cannot run curl: {x}")))?;
    if !status.success() {
        return Err(err(Path::new(&url), format!("download failed ({status})")));
    }
    let sha = sha256_file(&archive).map_err(|x| err(&archive, x.to_string()))?;
    if sha != e.archive_sha256 {
        return Err(err(
            &archive,
            format!(
                "sha256 {sha} does not match the catalog's {}",
                e.archive_sha256
            ),
        ));
    }
    unpack(&archive, staging.path())?;
    let dir = staging.path().join(e.dir);
    let mut m = format!(
        "name = \"{}\"\nkind = \"{}\"\nmodel_type = \"{}\"\nlanguage = \"{}\"\nsample_rate = 16000\nresample_8k = true\n\
         description = \"{}\"\nproperties = [{}]\n",
        e.name,
        e.kind,
        e.model_type,
        e.language,
        e.description,
        e.properties.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join(", ")
    );
    for (path, role) in e.files {
        let sha = sha256_file(&dir.join(path)).map_err(|x| err(&dir, format!("{path}: {x}")))?;
        m += &format!("\n[[files]]\npath = \"{path}\"\nsha256 = \"{sha}\"\nrole = \"{role}\"\n");
    }
    fs::write(dir.join(MANIFEST), m).map_err(|x| err(&dir, x.to_string()))?;
    fs::create_dir_all(models_dir).map_err(|x| err(models_dir, x.to_string()))?;
    copy_pack(&Pack::open(&dir)?, models_dir)
}
