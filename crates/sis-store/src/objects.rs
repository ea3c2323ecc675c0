//! Object storage for job audio and results: a directory (`file:///DIR`) or
//! an S3-compatible bucket (`s3://BUCKET[/PREFIX]`, endpoint and credentials
//! from the usual `AWS_*` environment: `AWS_ENDPOINT`, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ALLOW_HTTP`), through the
//! `object_store` crate. Keys are relative (`results/<job>/<lease>.json`).

use std::path::Path as FsPath;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload, WriteMultipart};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{Result, StoreError};

/// Parts of a multipart upload (S3 needs at least 5 MiB but the last).
const PART: usize = 8 << 20;

/// One object of [`Objects::list`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    pub modified_ms: i64,
}

#[derive(Clone)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    url: String,
}

impl std::fmt::Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Objects({})", self.url)
    }
}

fn err(e: object_store::Error) -> StoreError {
    StoreError::Objects(e.to_string())
}

impl Objects {
    /// Opens `file:///absolute/dir` (created if missing) or `s3://bucket[/prefix]`.
    pub fn open(url: &str) -> Result<Objects> {
        let bad = || StoreError::BadObjectsUrl(url.to_string());
        if let Some(dir) = url.strip_prefix("file://") {
            if !dir.starts_with('/') {
                return Err(bad());
            }
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Objects(format!("{dir}: {e}")))?;
            let fs = LocalFileSystem::new_with_prefix(dir).map_err(err)?;
            return Ok(Objects {
                store: Arc::new(fs),
                prefix: String::new(),
                url: url.to_string(),
            });
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad());
            }
            let s3 = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(err)?;
            let prefix = prefix.trim_matches('/');
            return Ok(Objects {
                store: Arc::new(s3),
                prefix: if prefix.is_empty() {
                    String::new()
                } else {
                    format!("{prefix}/")
                },
                url: url.to_string(),
            });
        }
        Err(bad())
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn path(&self, key: &str) -> Path {
        Path::from(format!("{}{key}", self.prefix))
    }

    pub async fn put(&self, key: &str, data: impl Into<Bytes>) -> Result<()> {
        self.store
            .put(&self.path(key), PutPayload::from(data.into()))
            .await
            .map_err(err)?;
        Ok(())
    }

    /// The object, or None when there is none.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        match self.store.get(&self.path(key)).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(err)?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(err(e)),
        }
    }

    /// Deletes an object; a missing one is not an error.
    pub async fn delete(&self, key: &str) -> Result<()> {
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(err(e)),
        }
    }

    /// Uploads a file in parts, without reading it whole into memory.
    pub async fn put_file(&self, key: &str, file: &FsPath) -> Result<()> {
        let mut f = tokio::fs::File::open(file)
            .await
            .map_err(|e| StoreError::Objects(format!("{}: {e}", file.display())))?;
        let upload = self
            .store
            .put_multipart(&self.path(key))
            .await
            .map_err(err)?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, PART);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match f.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    let _ = w.abort().await;
                    return Err(StoreError::Objects(format!("{}: {e}", file.display())));
                }
            };
            if n == 0 {
                break;
            }
            // at most two parts in flight
            w.wait_for_capacity(2).await.map_err(err)?;
            w.write(&buf[..n]);
        }
        w.finish().await.map_err(err)?;
        Ok(())
    }

    /// An object's size in bytes; `None` when there is none.
    pub async fn size(&self, key: &str) -> Result<Option<u64>> {
        match self.store.head(&self.path(key)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(err(e)),
        }
    }

    /// The objects whose keys start with the folder `prefix` (e.g.
    /// `uploads/p1`): each key (relative, as given to [`Objects::put`]),
    /// size and last-modified time in ms since the epoch.
    pub async fn list(&self, prefix: &str) -> Result<Vec<Listed>> {
        let folder = self.path(prefix.trim_end_matches('/'));
        let mut stream = self.store.list(Some(&folder));
        let mut out = Vec::new();
        while let Some(meta) = stream.next().await {
            let meta = match meta {
                Ok(m) => m,
                Err(object_store::Error::NotFound { .. }) => break,
                Err(e) => return Err(err(e)),
            };
            let full = meta.location.to_string();
            let key = full
                .strip_prefix(self.prefix.as_str())
                .unwrap_or(&full)
                .to_string();
            out.push(Listed {
                key,
                size: meta.size,
                modified_ms: meta.last_modified.timestamp_millis(),
            });
        }
        Ok(out)
    }

    /// Downloads an object into a file, streaming; false when there is none.
    pub async fn get_to_file(&self, key: &str, file: &FsPath) -> Result<bool> {
        let r = match self.store.get(&self.path(key)).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(err(e)),
        };
        let io = |e: std::io::Error| StoreError::Objects(format!("{}: {e}", file.display()));
        let mut out = tokio::fs::File::create(file).await.map_err(io)?;
        let mut stream = r.into_stream();
        while let Some(chunk) = stream.next().await {
            out.write_all(&chunk.map_err(err)?).await.map_err(io)?;
        }
        out.flush().await.map_err(io)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_directory_round_trip() {
        let dir = tempfile::tempdir().expect("objects");
        let o = Objects::open(&format!("file://{}", dir.path().display())).expect("objects");
        o.put("results/a/b.json", Bytes::from_static(b"{}"))
            .await
            .expect("objects");
        assert_eq!(
            o.get("results/a/b.json").await.expect("objects").as_deref(),
            Some(&b"{}"[..])
        );
        assert!(o.get("results/none").await.expect("objects").is_none());
        let src = dir.path().join("src.bin");
        let data: Vec<u8> = (0..(PART * 2 + 12345)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&src, &data).expect("objects");
        o.put_file("audio/x", &src).await.expect("objects");
        let back = dir.path().join("back.bin");
        assert!(o.get_to_file("audio/x", &back).await.expect("objects"));
        assert_eq!(std::fs::read(&back).expect("objects"), data);
        o.delete("audio/x").await.expect("objects");
        o.delete("audio/x").await.expect("objects");
        assert!(!o.get_to_file("audio/x", &back).await.expect("objects"));
        o.put("uploads/p1/a", Bytes::from_static(b"abc"))
            .await
            .expect("objects");
        o.put("uploads/p10/b", Bytes::from_static(b"d"))
            .await
            .expect("objects");
        let listed = o.list("uploads/p1").await.expect("objects");
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(
            (listed[0].key.as_str(), listed[0].size),
            ("uploads/p1/a", 3)
        );
        assert!(listed[0].modified_ms > 1_600_000_000_000);
        assert_eq!(o.list("uploads").await.expect("objects").len(), 2);
        assert!(o.list("none").await.expect("objects").is_empty());
    }

    #[test]
    fn urls() {
        assert!(Objects::open("file://relative").is_err());
        assert!(Objects::open("s3://").is_err());
        assert!(Objects::open("ftp://x").is_err());
    }
}
