//! The service's store. SQLite (embedded, the default) or PostgreSQL, chosen
//! by URL, through one set of portable migrations.
//!
//! Invariant: every query that reads or changes data belonging to a project
//! takes the project id as a parameter; there is no "any project" accessor for
//! project data.

use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

mod api_keys;
mod jobs;
mod objects;
mod quotas;
mod vocabularies;
pub use api_keys::ApiKey;
pub use jobs::{CallbackLease, Job, JobStatus, Lease};
pub use objects::{Listed, Objects};
pub use quotas::{Quota, Refusal, ALL_SCOPE, DEFAULT_SCOPE};
pub use vocabularies::{
    new_vocabulary_id, Vocabulary, VocabularyCache, VocabularyFields, VocabularySummary,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The URL with any password replaced by `***` (in its user info, or a
/// `password=` query parameter), for messages and logs.
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut shown = match (base.find("://"), base.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &base[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => {
                    format!("{}{user}:***{}", &base[..scheme_end + 3], &base[at..])
                }
                None => base.to_string(),
            }
        }
        _ => base.to_string(),
    };
    if let Some(q) = query {
        let params: Vec<String> = q
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => p.to_string(),
            })
            .collect();
        shown.push('?');
        shown.push_str(&params.join("&"));
    }
    shown
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store URL {0}: expected sqlite://PATH or postgres://...")]
    BadUrl(String),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    /// A per-project limit reached (vocabularies).
    #[error("too many: {0}")]
    TooMany(String),
    #[error("store: {0}")]
    Db(#[from] sqlx::Error),
    #[error("objects URL {0}: expected file:///DIR or s3://BUCKET[/PREFIX]")]
    BadObjectsUrl(String),
    #[error("object storage: {0}")]
    Objects(String),
    #[error("store migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type Result<T> = std::result::Result<T, StoreError>;

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub id: String,
    pub name: String,
    pub domain: Domain,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub name: String,
    pub domain: Domain,
    pub password_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub access_key: String,
    pub project_id: String,
    pub secret_sealed: String,
    pub description: String,
    pub created_ms: i64,
    pub revoked_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub user: User,
    /// None for a domain-scoped token.
    pub project: Option<Project>,
    pub issued_ms: i64,
    pub expires_ms: i64,
    pub revoked_ms: Option<i64>,
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            d.is_unique_violation() || d.message().to_ascii_lowercase().contains("unique")
        }
        _ => false,
    }
}

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Lower-case 32 hex digits, the shape of SIS project ids.
pub fn is_project_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

const PROJECT_COLS: &str = "p.id, p.name, d.id AS d_id, d.name AS d_name";
const USER_COLS: &str = "u.id, u.name, u.password_hash, d.id AS d_id, d.name AS d_name";

fn project_of(r: &AnyRow) -> Result<Project> {
    Ok(Project {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        domain: Domain {
            id: r.try_get("d_id")?,
            name: r.try_get("d_name")?,
        },
    })
}

fn user_of(r: &AnyRow) -> Result<User> {
    Ok(User {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        password_hash: r.try_get("password_hash")?,
        domain: Domain {
            id: r.try_get("d_id")?,
            name: r.try_get("d_name")?,
        },
    })
}

fn credential_of(r: &AnyRow) -> Result<Credential> {
    Ok(Credential {
        access_key: r.try_get("access_key")?,
        project_id: r.try_get("project_id")?,
        secret_sealed: r.try_get("secret_sealed")?,
        description: r.try_get("description")?,
        created_ms: r.try_get("created_ms")?,
        revoked_ms: r.try_get("revoked_ms")?,
    })
}

#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
}

impl Store {
    /// Opens (creating an SQLite file if needed) and migrates.
    pub async fn open(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let (url, max_conn) = if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(StoreError::BadUrl(url.to_string()));
            }
            let sep = if path.contains('?') { '&' } else { '?' };
            (format!("sqlite://{path}{sep}mode=rwc"), 8)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (url.to_string(), 16)
        } else {
            return Err(StoreError::BadUrl(redact_url(url)));
        };
        let is_sqlite = url.starts_with("sqlite:");
        let pool = AnyPoolOptions::new()
            .max_connections(max_conn)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if is_sqlite {
                        // concurrent readers with one writer, and wait on locks
                        sqlx::query("PRAGMA journal_mode=WAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout=5000")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA foreign_keys=ON")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Store { pool })
    }

    async fn domain_named(&self, name: &str, create: bool) -> Result<Domain> {
        if let Some(r) = sqlx::query("SELECT id, name FROM domains WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
        {
            return Ok(Domain {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
            });
        }
        if !create {
            return Err(StoreError::NotFound(format!("domain {name}")));
        }
        let id = new_id();
        let res = sqlx::query("INSERT INTO domains (id, name, created_ms) VALUES ($1, $2, $3)")
            .bind(&id)
            .bind(name)
            .bind(now_ms())
            .execute(&self.pool)
            .await;
        match res {
            Ok(_) => Ok(Domain {
                id,
                name: name.to_string(),
            }),
            // created meanwhile by someone else
            Err(e) if is_unique_violation(&e) => Box::pin(self.domain_named(name, false)).await,
            Err(e) => Err(e.into()),
        }
    }

    // ---- projects ----

    pub async fn create_project(
        &self,
        domain: &str,
        name: &str,
        id: Option<&str>,
    ) -> Result<Project> {
        let id = match id {
            Some(i) if is_project_id(i) => i.to_string(),
            Some(i) => {
                return Err(StoreError::Invalid(format!(
                    "project id {i}: expected 32 lower-case hex digits"
                )))
            }
            None => new_id(),
        };
        let d = self.domain_named(domain, true).await?;
        sqlx::query(
            "INSERT INTO projects (id, domain_id, name, created_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(&id)
        .bind(&d.id)
        .bind(name)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict(format!("project {name} in domain {domain} (or id {id})"))
            } else {
                e.into()
            }
        })?;
        Ok(Project {
            id,
            name: name.to_string(),
            domain: d,
        })
    }

    pub async fn list_projects(&self) -> Result<Vec<Project>> {
        let q = format!("SELECT {PROJECT_COLS} FROM projects p JOIN domains d ON d.id = p.domain_id ORDER BY d.name, p.name");
        sqlx::query(&q)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(project_of)
            .collect()
    }

    pub async fn project(&self, id: &str) -> Result<Option<Project>> {
        let q = format!("SELECT {PROJECT_COLS} FROM projects p JOIN domains d ON d.id = p.domain_id WHERE p.id = $1");
        sqlx::query(&q)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(project_of)
            .transpose()
    }

    pub async fn project_named(&self, domain_id: &str, name: &str) -> Result<Option<Project>> {
        let q = format!("SELECT {PROJECT_COLS} FROM projects p JOIN domains d ON d.id = p.domain_id WHERE p.domain_id = $1 AND p.name = $2");
        sqlx::query(&q)
            .bind(domain_id)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(project_of)
            .transpose()
    }

    // ---- users ----

    pub async fn create_user(&self, domain: &str, name: &str, password_hash: &str) -> Result<User> {
        let d = self.domain_named(domain, true).await?;
        let id = new_id();
        sqlx::query("INSERT INTO users (id, domain_id, name, password_hash, created_ms) VALUES ($1, $2, $3, $4, $5)")
            .bind(&id)
            .bind(&d.id)
            .bind(name)
            .bind(password_hash)
            .bind(now_ms())
            .execute(&self.pool)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(format!("user {name} in domain {domain}"))
                } else {
                    e.into()
                }
            })?;
        Ok(User {
            id,
            name: name.to_string(),
            domain: d,
            password_hash: password_hash.to_string(),
        })
    }

    pub async fn list_users(&self) -> Result<Vec<User>> {
        let q = format!(
            "SELECT {USER_COLS} FROM users u JOIN domains d ON d.id = u.domain_id ORDER BY d.name, u.name"
        );
        sqlx::query(&q)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(user_of)
            .collect()
    }

    /// By domain name (or id) and user name.
    pub async fn user_named(&self, domain: &str, name: &str) -> Result<Option<User>> {
        let q = format!("SELECT {USER_COLS} FROM users u JOIN domains d ON d.id = u.domain_id WHERE (d.name = $1 OR d.id = $1) AND u.name = $2");
        sqlx::query(&q)
            .bind(domain)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(user_of)
            .transpose()
    }

    async fn user(&self, id: &str) -> Result<Option<User>> {
        let q = format!(
            "SELECT {USER_COLS} FROM users u JOIN domains d ON d.id = u.domain_id WHERE u.id = $1"
        );
        sqlx::query(&q)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(user_of)
            .transpose()
    }

    /// Deletes a user and revokes every token it holds.
    pub async fn delete_user(&self, domain: &str, name: &str) -> Result<()> {
        let u = self
            .user_named(domain, name)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("user {name} in domain {domain}")))?;
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE tokens SET revoked_ms = $1 WHERE user_id = $2 AND revoked_ms IS NULL")
            .bind(now_ms())
            .bind(&u.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(&u.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- credentials (AK/SK) ----

    pub async fn create_credential(
        &self,
        access_key: &str,
        project_id: &str,
        secret_sealed: &str,
        description: &str,
    ) -> Result<Credential> {
        if self.project(project_id).await?.is_none() {
            return Err(StoreError::NotFound(format!("project {project_id}")));
        }
        let created = now_ms();
        sqlx::query("INSERT INTO credentials (access_key, project_id, secret_sealed, description, created_ms) VALUES ($1, $2, $3, $4, $5)")
            .bind(access_key)
            .bind(project_id)
            .bind(secret_sealed)
            .bind(description)
            .bind(created)
            .execute(&self.pool)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(format!("access key {access_key}"))
                } else {
                    e.into()
                }
            })?;
        Ok(Credential {
            access_key: access_key.to_string(),
            project_id: project_id.to_string(),
            secret_sealed: secret_sealed.to_string(),
            description: description.to_string(),
            created_ms: created,
            revoked_ms: None,
        })
    }

    pub async fn credential(&self, access_key: &str) -> Result<Option<Credential>> {
        sqlx::query("SELECT * FROM credentials WHERE access_key = $1")
            .bind(access_key)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(credential_of)
            .transpose()
    }

    pub async fn list_credentials(&self, project_id: Option<&str>) -> Result<Vec<Credential>> {
        let rows = match project_id {
            Some(p) => sqlx::query(
                "SELECT * FROM credentials WHERE project_id = $1 ORDER BY created_ms, access_key",
            )
            .bind(p)
            .fetch_all(&self.pool)
            .await?,
            None => {
                sqlx::query("SELECT * FROM credentials ORDER BY created_ms, access_key")
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(credential_of).collect()
    }

    /// Revokes an access key; false if it does not exist or was revoked before.
    pub async fn revoke_credential(&self, access_key: &str) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE credentials SET revoked_ms = $1 WHERE access_key = $2 AND revoked_ms IS NULL",
        )
        .bind(now_ms())
        .bind(access_key)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    // ---- tokens ----

    pub async fn insert_token(
        &self,
        digest: &str,
        user_id: &str,
        project_id: Option<&str>,
        issued_ms: i64,
        expires_ms: i64,
    ) -> Result<()> {
        sqlx::query("INSERT INTO tokens (digest, user_id, project_id, issued_ms, expires_ms) VALUES ($1, $2, $3, $4, $5)")
            .bind(digest)
            .bind(user_id)
            .bind(project_id)
            .bind(issued_ms)
            .bind(expires_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The token with this digest, if its user still exists.
    pub async fn token(&self, digest: &str) -> Result<Option<Token>> {
        let Some(r) = sqlx::query(
            "SELECT user_id, project_id, issued_ms, expires_ms, revoked_ms FROM tokens WHERE digest = $1",
        )
        .bind(digest)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let user_id: String = r.try_get("user_id")?;
        let project_id: Option<String> = r.try_get("project_id")?;
        let Some(user) = self.user(&user_id).await? else {
            return Ok(None);
        };
        let project = match project_id {
            Some(p) => match self.project(&p).await? {
                Some(p) => Some(p),
                None => return Ok(None),
            },
            None => None,
        };
        Ok(Some(Token {
            user,
            project,
            issued_ms: r.try_get("issued_ms")?,
            expires_ms: r.try_get("expires_ms")?,
            revoked_ms: r.try_get("revoked_ms")?,
        }))
    }

    pub async fn revoke_token(&self, digest: &str) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE tokens SET revoked_ms = $1 WHERE digest = $2 AND revoked_ms IS NULL",
        )
        .bind(now_ms())
        .bind(digest)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    async fn store() -> (tempfile::TempDir, Store) {
        let d = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", d.path().join("s.db").display());
        let s = Store::open(&url).await.unwrap();
        // opening twice runs no migration again
        Store::open(&url).await.unwrap();
        (d, s)
    }

    #[tokio::test]
    async fn tenancy_round_trip() {
        let (_d, s) = store().await;
        let p = s.create_project("acme", "cn-north-4", None).await.unwrap();
        assert!(is_project_id(&p.id));
        assert!(matches!(
            s.create_project("acme", "cn-north-4", None).await,
            Err(StoreError::Conflict(_))
        ));
        let fixed = "0123456789abcdef0123456789abcdef";
        let p2 = s
            .create_project("other", "cn-north-4", Some(fixed))
            .await
            .unwrap();
        assert_eq!(p2.id, fixed);
        assert!(matches!(
            s.create_project("x", "y", Some("NOTHEX")).await,
            Err(StoreError::Invalid(_))
        ));
        assert_eq!(s.list_projects().await.unwrap().len(), 2);
        assert_eq!(
            s.project_named(&p.domain.id, "cn-north-4")
                .await
                .unwrap()
                .unwrap()
                .id,
            p.id
        );

        let u = s.create_user("acme", "alice", "$argon2id$x").await.unwrap();
        assert!(s.create_user("acme", "alice", "h").await.is_err());
        assert_eq!(
            s.user_named("acme", "alice").await.unwrap().unwrap().id,
            u.id
        );
        assert_eq!(
            s.user_named(&u.domain.id, "alice")
                .await
                .unwrap()
                .unwrap()
                .id,
            u.id
        );
        assert!(s.user_named("other", "alice").await.unwrap().is_none());

        let c = s
            .create_credential("AK1", &p.id, "v1:sealed", "ci")
            .await
            .unwrap();
        assert_eq!(s.credential("AK1").await.unwrap().unwrap(), c);
        assert!(s.create_credential("AK1", &p.id, "v1:x", "").await.is_err());
        assert!(s
            .create_credential("AK2", fixed.replace('0', "f").as_str(), "v1:x", "")
            .await
            .is_err());
        assert_eq!(s.list_credentials(Some(&p2.id)).await.unwrap().len(), 0);
        assert!(s.revoke_credential("AK1").await.unwrap());
        assert!(!s.revoke_credential("AK1").await.unwrap());
        assert!(s
            .credential("AK1")
            .await
            .unwrap()
            .unwrap()
            .revoked_ms
            .is_some());

        s.insert_token("d1", &u.id, Some(&p.id), 1, 2)
            .await
            .unwrap();
        s.insert_token("d2", &u.id, None, 1, 2).await.unwrap();
        let t = s.token("d1").await.unwrap().unwrap();
        assert_eq!(t.project.unwrap().id, p.id);
        assert_eq!(t.expires_ms, 2);
        assert!(s.token("d2").await.unwrap().unwrap().project.is_none());
        assert!(s.revoke_token("d1").await.unwrap());
        assert!(s.token("d1").await.unwrap().unwrap().revoked_ms.is_some());
        s.delete_user("acme", "alice").await.unwrap();
        assert!(s.token("d2").await.unwrap().is_none());
        assert!(s.delete_user("acme", "alice").await.is_err());
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact_url("postgres://sis:s3cret@db:5432/sis"),
            "postgres://sis:***@db:5432/sis"
        );
        assert_eq!(redact_url("postgres://db/sis"), "postgres://db/sis");
        assert_eq!(redact_url("sqlite://a/b.db"), "sqlite://a/b.db");
        assert_eq!(
            redact_url("postgres://sis:p@ss@db/sis?sslmode=require&Password=x&a=b"),
            "postgres://sis:***@db/sis?sslmode=require&Password=***&a=b"
        );
        assert_eq!(
            redact_url("sqlite:///x/b.db?mode=ro"),
            "sqlite:///x/b.db?mode=ro"
        );
    }

    #[tokio::test]
    async fn bad_urls() {
        assert!(matches!(
            Store::open("mysql://x").await,
            Err(StoreError::BadUrl(_))
        ));
        assert!(matches!(
            Store::open("sqlite://").await,
            Err(StoreError::BadUrl(_))
        ));
    }
}
