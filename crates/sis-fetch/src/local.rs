//! `file:` data URLs: files of one directory the operator names
//! ([`FetchPolicy::local_dir`](crate::FetchPolicy::local_dir)), read as if
//! downloaded.
//!
//! A `file:` URL is refused unless a directory is configured, and then
//! unless it names a regular file under it once every symbolic link is
//! resolved:
//!
//! - `file:///ABS/PATH` or `file://localhost/ABS/PATH`, no other host, no
//!   query or fragment, no `..` component (percent-decoded, so `%2F..%2F`
//!   is one), and the path as written must lie under the directory (as
//!   configured, or its canonical form), so nothing outside it is even
//!   looked at;
//! - the canonical path (links resolved) must still lie under the canonical
//!   directory: a link that leads out is refused;
//! - it must be a regular file (not a FIFO, device, socket or directory),
//!   checked with `lstat` on the canonical path before it is opened, and
//!   again with `fstat` on what was opened, which must be the same file
//!   (device and inode): a file swapped between the check and the opening
//!   is refused. It is opened with `O_NOFOLLOW | O_NONBLOCK`, so neither a
//!   link put in its place nor a FIFO can make the open wait;
//! - it must be at most [`FetchPolicy::max_bytes`](crate::FetchPolicy::max_bytes)
//!   long, by its size and counted while copied (a file that grows is cut).
//!
//! Messages name the path the client gave, never where a link points.

use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use url::Url;

use crate::error::FetchError;

/// The write buffer of a copy.
const COPY_BUFFER: usize = 256 * 1024;

/// The directory `file:` URLs may name files in.
#[derive(Clone, Debug)]
pub(crate) struct LocalDir {
    /// As configured, made absolute.
    given: PathBuf,
    /// With every link resolved.
    canonical: PathBuf,
}

fn refused(why: impl Into<String>) -> FetchError {
    FetchError::LocalFile(why.into())
}

impl LocalDir {
    /// `dir`, which must exist and be a directory.
    pub(crate) fn new(dir: &Path) -> Result<LocalDir, FetchError> {
        let invalid =
            |why: String| FetchError::InvalidPolicy(format!("local_dir {}: {why}", dir.display()));
        let given = std::path::absolute(dir).map_err(|e| invalid(e.to_string()))?;
        let canonical = std::fs::canonicalize(&given).map_err(|e| invalid(e.to_string()))?;
        if !canonical.is_dir() {
            return Err(invalid("not a directory".to_owned()));
        }
        Ok(LocalDir { given, canonical })
    }

    /// The canonical path of the file `url` names, and its metadata, once
    /// every rule but the size is checked.
    pub(crate) fn resolve(&self, url: &Url) -> Result<(PathBuf, std::fs::Metadata), FetchError> {
        let path = file_path(url)?;
        let shown = path.display().to_string();
        if !(path.starts_with(&self.given) || path.starts_with(&self.canonical)) {
            return Err(refused(format!(
                "{shown} is outside the directory of job files"
            )));
        }
        let canonical = std::fs::canonicalize(&path).map_err(|e| match e.kind() {
            ErrorKind::NotFound => refused(format!("{shown} does not exist")),
            _ => refused(format!("{shown} cannot be read")),
        })?;
        if canonical == self.canonical {
            return Err(refused(format!(
                "{shown} is not a regular file (a directory)"
            )));
        }
        if !canonical.starts_with(&self.canonical) {
            return Err(refused(format!(
                "{shown} leads outside the directory of job files (through a symbolic link)"
            )));
        }
        // the canonical path has no link left: lstat sees the file itself
        let meta = std::fs::symlink_metadata(&canonical)
            .map_err(|_| refused(format!("{shown} cannot be read")))?;
        if !meta.file_type().is_file() {
            return Err(refused(format!(
                "{shown} is not a regular file ({})",
                kind(&meta)
            )));
        }
        Ok((canonical, meta))
    }

    /// Checks `url` without reading the file.
    pub(crate) fn check(&self, url: &Url, max_bytes: u64) -> Result<(), FetchError> {
        let (_, meta) = self.resolve(url)?;
        if meta.len() > max_bytes {
            return Err(FetchError::TooLarge { limit: max_bytes });
        }
        Ok(())
    }

    /// Copies the file `url` names into `dest` (created or truncated);
    /// returns the bytes copied. On any error `dest` is removed.
    pub(crate) async fn copy(
        &self,
        url: &Url,
        dest: &Path,
        max_bytes: u64,
    ) -> Result<u64, FetchError> {
        let (canonical, meta) = self.resolve(url)?;
        let shown = file_path(url)?.display().to_string();
        let unreadable = || refused(format!("{shown} cannot be read"));
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&canonical)
            .await
            .map_err(|_| unreadable())?;
        let opened = file.metadata().await.map_err(|_| unreadable())?;
        if !opened.file_type().is_file() {
            return Err(refused(format!(
                "{shown} is not a regular file ({})",
                kind(&opened)
            )));
        }
        if (opened.dev(), opened.ino()) != (meta.dev(), meta.ino()) {
            return Err(refused(format!("{shown} changed while it was checked")));
        }
        if opened.len() > max_bytes {
            return Err(FetchError::TooLarge { limit: max_bytes });
        }
        let io = |e: std::io::Error| FetchError::Io(e.to_string());
        let out = tokio::fs::File::create(dest).await.map_err(io)?;
        let partial = crate::fetcher::PartialFile::new(dest);
        let mut out = BufWriter::with_capacity(COPY_BUFFER, out);
        // one byte past the limit tells a file that grew
        let mut limited = file.take(max_bytes.saturating_add(1));
        let copied = tokio::io::copy(&mut limited, &mut out)
            .await
            .map_err(|_| unreadable())?;
        if copied > max_bytes {
            return Err(FetchError::TooLarge { limit: max_bytes });
        }
        out.flush().await.map_err(io)?;
        out.into_inner().sync_all().await.map_err(io)?;
        partial.keep();
        Ok(copied)
    }
}

/// The absolute path a `file:` URL names, percent-decoded, without `..`.
fn file_path(url: &Url) -> Result<PathBuf, FetchError> {
    let bad = |why: &str| FetchError::BadUrl(format!("file URL: {why}"));
    match url.host_str() {
        None | Some("") => {}
        Some(h) if h.eq_ignore_ascii_case("localhost") => {}
        Some(_) => return Err(bad("only local files (no host, or localhost)")),
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("a query or fragment is not allowed"));
    }
    let path = url
        .to_file_path()
        .map_err(|()| bad("not an absolute local path"))?;
    if !path.is_absolute() {
        return Err(bad("not an absolute local path"));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(bad("'..' is not allowed"));
    }
    Ok(path)
}

/// What a file that is not a regular one is, for messages.
fn kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "not a file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("a URL")
    }

    #[test]
    fn file_urls_name_absolute_paths_without_parent_components() {
        assert_eq!(
            file_path(&url("file:///srv/jobs/a%20b.wav")).ok(),
            Some(PathBuf::from("/srv/jobs/a b.wav"))
        );
        assert_eq!(
            file_path(&url("file://localhost/srv/jobs/a.wav")).ok(),
            Some(PathBuf::from("/srv/jobs/a.wav"))
        );
        for bad in [
            "file://example.com/srv/jobs/a.wav",
            "file:///srv/jobs/a.wav?x=1",
            "file:///srv/jobs/a.wav#x",
            // the URL parser removes plain `..`; an encoded slash hides one
            "file:///srv/jobs/a%2F..%2F..%2Fetc%2Fpasswd",
        ] {
            let e = file_path(&url(bad)).expect_err(bad);
            assert_eq!(e.kind(), crate::FetchErrorKind::BadUrl, "{bad}: {e}");
        }
        // plain `..` is resolved by the parser before anything else sees it
        assert_eq!(
            file_path(&url("file:///srv/jobs/../../etc/passwd")).ok(),
            Some(PathBuf::from("/etc/passwd"))
        );
    }

    #[test]
    fn only_regular_files_under_the_directory() {
        let root = tempfile::tempdir().expect("temp dir");
        let outside = tempfile::tempdir().expect("temp dir");
        let dir = root.path().join("jobs");
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::write(dir.join("a.wav"), b"RIFF").expect("write");
        std::fs::create_dir(dir.join("sub")).expect("mkdir");
        std::fs::write(outside.path().join("secret"), b"x").expect("write");
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.join("escape"))
            .expect("symlink");
        std::os::unix::fs::symlink(dir.join("a.wav"), dir.join("inside")).expect("symlink");
        let made = std::process::Command::new("mkfifo")
            .arg(dir.join("fifo"))
            .status()
            .expect("mkfifo runs");
        assert!(made.success());
        let local = LocalDir::new(&dir).expect("a directory");
        let u = |p: &Path| Url::from_file_path(p).expect("absolute");

        assert!(local.check(&u(&dir.join("a.wav")), 100).is_ok());
        assert!(
            local.check(&u(&dir.join("inside")), 100).is_ok(),
            "a link that stays inside"
        );
        assert!(matches!(
            local.check(&u(&dir.join("a.wav")), 3),
            Err(FetchError::TooLarge { limit: 3 })
        ));
        for (p, says) in [
            (outside.path().join("secret"), "outside"),
            (dir.join("escape"), "leads outside"),
            (dir.join("fifo"), "a FIFO"),
            (dir.join("sub"), "a directory"),
            (dir.clone(), "a directory"),
            (dir.join("missing.wav"), "does not exist"),
        ] {
            let e = local.check(&u(&p), 100).expect_err(says);
            assert_eq!(e.kind(), crate::FetchErrorKind::LocalFile, "{e}");
            assert!(e.to_string().contains(says), "{e}");
            assert!(
                !e.to_string().contains("secret") || says == "outside",
                "{e}"
            );
        }
        assert!(LocalDir::new(&dir.join("a.wav")).is_err());
        assert!(LocalDir::new(&dir.join("missing")).is_err());
    }
}
