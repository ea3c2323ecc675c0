//! API keys of the OpenAI-compatible endpoints: an opaque bearer key that
//! an operator maps to one project. Stored as its SHA-256 digest only.

use sqlx::Row;

use crate::{now_ms, Result, Store, StoreError};

/// A key as listed (never the key itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub project_id: String,
    pub description: String,
    pub created_ms: i64,
    pub revoked_ms: Option<i64>,
}

impl Store {
    /// Records a key of `project_id` by its `id` (public prefix) and digest.
    pub async fn create_api_key(
        &self,
        id: &str,
        digest: &str,
        project_id: &str,
        description: &str,
    ) -> Result<()> {
        if self.project(project_id).await?.is_none() {
            return Err(StoreError::NotFound(format!("project {project_id}")));
        }
        sqlx::query(
            "INSERT INTO api_keys (id, digest, project_id, description, created_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(digest)
        .bind(project_id)
        .bind(description)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The project of the live key with this digest.
    pub async fn api_key_project(&self, digest: &str) -> Result<Option<String>> {
        let row =
            sqlx::query("SELECT project_id FROM api_keys WHERE digest = $1 AND revoked_ms IS NULL")
                .bind(digest)
                .fetch_optional(&self.pool)
                .await?;
        Ok(match row {
            Some(r) => Some(r.try_get("project_id")?),
            None => None,
        })
    }

    /// Every key (of `project_id`, when given), oldest first.
    pub async fn list_api_keys(&self, project_id: Option<&str>) -> Result<Vec<ApiKey>> {
        let rows = sqlx::query(
            "SELECT id, project_id, description, created_ms, revoked_ms FROM api_keys \
             WHERE $1 = '' OR project_id = $1 ORDER BY created_ms, id",
        )
        .bind(project_id.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ApiKey {
                    id: r.try_get("id")?,
                    project_id: r.try_get("project_id")?,
                    description: r.try_get("description")?,
                    created_ms: r.try_get("created_ms")?,
                    revoked_ms: r.try_get("revoked_ms")?,
                })
            })
            .collect()
    }

    /// Revokes the key `id`; whether it was live.
    pub async fn revoke_api_key(&self, id: &str) -> Result<bool> {
        let r =
            sqlx::query("UPDATE api_keys SET revoked_ms = $1 WHERE id = $2 AND revoked_ms IS NULL")
                .bind(now_ms())
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(r.rows_affected() > 0)
    }
}
