//! Uploaded audio for jobs (a sisd extension; SIS itself only fetches
//! `data_url`): a client whose file has no URL the server can reach uploads
//! it (`POST /v1/{project_id}/asr/transcriber/uploads`) and names it in a
//! job as `data_url: "upload://ID"`.
//!
//! - Uploads live in the job object storage when one is configured (every
//!   node sees them), else in `DATA_DIR/uploads` (one node), under
//!   `uploads/{project}/{id}`: a job can name only its own project's.
//! - At most [`MAX_PER_PROJECT`] at once per project, each at most the
//!   download limit (`--fetch-max-mb`); one is deleted by its owner or
//!   [`Jobs::purge_uploads`] once it is older than the job retention.

use std::path::Path;

use sis_store::Objects;

use crate::{now_ms, JobError, Jobs};

/// How a job's `data_url` names an upload.
pub const SCHEME: &str = "upload://";

/// Uploads one project may hold at once.
pub const MAX_PER_PROJECT: usize = 100;

/// A stored upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upload {
    pub id: String,
    pub size: u64,
    /// When it is deleted, in ms since the epoch.
    pub expires_ms: i64,
}

impl Upload {
    pub fn data_url(&self) -> String {
        format!("{SCHEME}{}", self.id)
    }
}

/// The upload id a `data_url` names, if it names one (the id itself is
/// checked by [`valid_id`]).
pub fn named(data_url: &str) -> Option<&str> {
    data_url.strip_prefix(SCHEME)
}

/// Whether `id` can be an upload id (what [`Jobs::upload`] makes: 32
/// lowercase hex digits); anything else names no upload.
pub fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn key(project: &str, id: &str) -> String {
    format!("uploads/{project}/{id}")
}

impl Jobs {
    fn uploads(&self) -> &Objects {
        &self.uploads
    }

    /// Stores the file at `file` (already complete and within the size
    /// limit) as a new upload of `project`.
    pub async fn upload(&self, project: &str, file: &Path) -> Result<Upload, JobError> {
        let held = self
            .uploads()
            .list(&format!("uploads/{project}"))
            .await
            .map_err(JobError::Store)?
            .len();
        if held >= MAX_PER_PROJECT {
            return Err(JobError::TooManyUploads(MAX_PER_PROJECT));
        }
        let size = tokio::fs::metadata(file)
            .await
            .map_err(|e| JobError::Store(sis_store::StoreError::Objects(e.to_string())))?
            .len();
        let id = uuid::Uuid::new_v4().simple().to_string();
        self.uploads()
            .put_file(&key(project, &id), file)
            .await
            .map_err(JobError::Store)?;
        tracing::info!(project, upload_id = id, size, "upload stored");
        Ok(Upload {
            id,
            size,
            expires_ms: now_ms() + self.config.retention_ms,
        })
    }

    /// Deletes an upload of `project`; [`JobError::UploadNotFound`] when it
    /// has none of that id.
    pub async fn delete_upload(&self, project: &str, id: &str) -> Result<(), JobError> {
        self.upload_size(project, id).await?;
        self.uploads()
            .delete(&key(project, id))
            .await
            .map_err(JobError::Store)
    }

    /// The size of an upload of `project`, or [`JobError::UploadNotFound`].
    pub(crate) async fn upload_size(&self, project: &str, id: &str) -> Result<u64, JobError> {
        let missing = || JobError::UploadNotFound(id.to_string());
        if !valid_id(id) {
            return Err(missing());
        }
        self.uploads()
            .size(&key(project, id))
            .await
            .map_err(JobError::Store)?
            .ok_or_else(missing)
    }

    /// Copies an upload of `project` to `dest` for its job.
    pub(crate) async fn fetch_upload(
        &self,
        project: &str,
        id: &str,
        dest: &Path,
    ) -> Result<(), JobError> {
        if !valid_id(id) {
            return Err(JobError::UploadNotFound(id.to_string()));
        }
        match self.uploads().get_to_file(&key(project, id), dest).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(JobError::UploadNotFound(id.to_string())),
            Err(e) => Err(JobError::Store(e)),
        }
    }

    /// Deletes the uploads older than the job retention; returns how many.
    pub async fn purge_uploads(&self) -> Result<usize, JobError> {
        let before = now_ms() - self.config.retention_ms;
        let mut n = 0;
        for o in self
            .uploads()
            .list("uploads")
            .await
            .map_err(JobError::Store)?
        {
            if o.modified_ms < before {
                self.uploads()
                    .delete(&o.key)
                    .await
                    .map_err(JobError::Store)?;
                n += 1;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_urls() {
        let id = uuid::Uuid::new_v4().simple().to_string();
        assert!(valid_id(&id));
        let u = Upload {
            id: id.clone(),
            size: 1,
            expires_ms: 0,
        };
        assert_eq!(named(&u.data_url()), Some(id.as_str()));
        assert_eq!(named("https://example.com/a.wav"), None);
        for bad in [
            "",
            "../x",
            &id.to_uppercase(),
            &id[1..],
            "g".repeat(32).as_str(),
        ] {
            assert!(!valid_id(bad), "{bad}");
        }
    }
}
