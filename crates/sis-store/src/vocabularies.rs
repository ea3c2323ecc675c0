//! Hot-word vocabularies (SIS §10), per project, and the per-process cache
//! that recognition requests resolve a `vocabulary_id` through.
//!
//! Guarantees, on SQLite and PostgreSQL alike:
//! - names are unique per project (`StoreError::Conflict`);
//! - a project never holds more than the limit its creation is given
//!   (`StoreError::TooMany`), however many servers create at once: a
//!   creation first updates its project's row of `vocabulary_locks`, so
//!   creations of one project take turns;
//! - every change raises the row's `version`, and ids are never reused, so
//!   `(id, version)` names one content for good.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sis_core::HotWords;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{is_unique_violation, now_ms, Result, Store, StoreError};

/// A vocabulary as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vocabulary {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub language: String,
    pub contents: Vec<String>,
    /// 1 at creation, one more per update.
    pub version: i64,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// What a list shows of a vocabulary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VocabularySummary {
    pub id: String,
    pub name: String,
    pub description: String,
    pub language: String,
}

/// The fields a client sets (creation, or an update replacing them all).
#[derive(Clone, Copy, Debug)]
pub struct VocabularyFields<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub language: &'a str,
    pub contents: &'a [String],
}

/// Longest id worth looking up (ids are 36 bytes).
const MAX_ID_BYTES: usize = 64;

/// A new vocabulary's id: an upper-case UUID, as SIS shows them.
pub fn new_vocabulary_id() -> String {
    uuid::Uuid::new_v4()
        .hyphenated()
        .to_string()
        .to_ascii_uppercase()
}

fn vocabulary_row(r: &AnyRow) -> Result<Vocabulary> {
    let id: String = r.try_get("id")?;
    let contents: String = r.try_get("contents")?;
    let contents: Vec<String> = serde_json::from_str(&contents).map_err(|_| {
        StoreError::Invalid(format!(
            "vocabulary {id}: contents are not a JSON array of strings"
        ))
    })?;
    Ok(Vocabulary {
        project_id: r.try_get("project_id")?,
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        language: r.try_get("language")?,
        version: r.try_get("version")?,
        created_ms: r.try_get("created_ms")?,
        updated_ms: r.try_get("updated_ms")?,
        contents,
        id,
    })
}

fn contents_json(contents: &[String]) -> Result<String> {
    serde_json::to_string(contents)
        .map_err(|e| StoreError::Invalid(format!("vocabulary contents: {e}")))
}

fn name_taken(e: sqlx::Error, name: &str) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::Conflict(format!("vocabulary name {name}"))
    } else {
        e.into()
    }
}

impl Store {
    /// Creates a vocabulary of `project` with the id `id` (see
    /// [`new_vocabulary_id`]), unless the name is taken
    /// (`StoreError::Conflict`) or the project has `max_per_project`
    /// already (`StoreError::TooMany`).
    pub async fn create_vocabulary(
        &self,
        project_id: &str,
        id: &str,
        fields: VocabularyFields<'_>,
        max_per_project: usize,
    ) -> Result<()> {
        let contents = contents_json(fields.contents)?;
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO vocabulary_locks (project_id, creations) VALUES ($1, 0) \
             ON CONFLICT (project_id) DO NOTHING",
        )
        .bind(project_id)
        .execute(&mut *tx)
        .await?;
        // the project's turn: held until commit
        sqlx::query("UPDATE vocabulary_locks SET creations = creations + 1 WHERE project_id = $1")
            .bind(project_id)
            .execute(&mut *tx)
            .await?;
        let seq: i64 = sqlx::query("SELECT creations FROM vocabulary_locks WHERE project_id = $1")
            .bind(project_id)
            .fetch_one(&mut *tx)
            .await?
            .try_get("creations")?;
        let held: i64 = sqlx::query("SELECT COUNT(*) AS n FROM vocabularies WHERE project_id = $1")
            .bind(project_id)
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        if usize::try_from(held).unwrap_or(usize::MAX) >= max_per_project {
            tx.rollback().await?;
            return Err(StoreError::TooMany(format!(
                "project {project_id} has {held} vocabularies, the limit is {max_per_project}"
            )));
        }
        sqlx::query(
            "INSERT INTO vocabularies (id, project_id, name, description, language, contents, \
             version, seq, created_ms, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, $8)",
        )
        .bind(id)
        .bind(project_id)
        .bind(fields.name)
        .bind(fields.description)
        .bind(fields.language)
        .bind(&contents)
        .bind(seq)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| name_taken(e, fields.name))?;
        tx.commit().await?;
        Ok(())
    }

    /// Replaces every field of a vocabulary of `project` and raises its
    /// version; false when there is none with this id. A name another
    /// vocabulary of the project has is `StoreError::Conflict`.
    pub async fn update_vocabulary(
        &self,
        project_id: &str,
        id: &str,
        fields: VocabularyFields<'_>,
    ) -> Result<bool> {
        let contents = contents_json(fields.contents)?;
        let r = sqlx::query(
            "UPDATE vocabularies SET name = $3, description = $4, language = $5, contents = $6, \
             version = version + 1, updated_ms = $7 WHERE project_id = $1 AND id = $2",
        )
        .bind(project_id)
        .bind(id)
        .bind(fields.name)
        .bind(fields.description)
        .bind(fields.language)
        .bind(&contents)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(|e| name_taken(e, fields.name))?;
        Ok(r.rows_affected() == 1)
    }

    /// A vocabulary of `project`.
    pub async fn vocabulary(&self, project_id: &str, id: &str) -> Result<Option<Vocabulary>> {
        sqlx::query(
            "SELECT id, project_id, name, description, language, contents, version, created_ms, \
             updated_ms FROM vocabularies WHERE project_id = $1 AND id = $2",
        )
        .bind(project_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(vocabulary_row)
        .transpose()
    }

    /// The version of a vocabulary of `project`: what a cached copy is
    /// checked against.
    pub async fn vocabulary_version(&self, project_id: &str, id: &str) -> Result<Option<i64>> {
        let r = sqlx::query("SELECT version FROM vocabularies WHERE project_id = $1 AND id = $2")
            .bind(project_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(r.map(|r| r.try_get::<i64, _>("version")).transpose()?)
    }

    /// The vocabularies of `project` in the order they were created (at
    /// most as many as the project may hold).
    pub async fn list_vocabularies(&self, project_id: &str) -> Result<Vec<VocabularySummary>> {
        sqlx::query(
            "SELECT id, name, description, language FROM vocabularies WHERE project_id = $1 \
             ORDER BY seq",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(VocabularySummary {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                description: r.try_get("description")?,
                language: r.try_get("language")?,
            })
        })
        .collect()
    }

    /// Deletes a vocabulary of `project`; false when there is none.
    pub async fn delete_vocabulary(&self, project_id: &str, id: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM vocabularies WHERE project_id = $1 AND id = $2")
            .bind(project_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }
}

/// How long a cached vocabulary is used without asking the store whether it
/// changed: a change made on any server reaches new requests within this
/// (plus one store round trip).
pub const REVALIDATE_AFTER: Duration = Duration::from_millis(500);
/// Words the cache holds at most, over all its vocabularies (about 40 MB of
/// 32-byte words); the least recently used vocabularies go first.
pub const CACHE_MAX_WORDS: usize = 1_000_000;

/// The vocabularies recognition requests use, per process: a copy is used
/// as it is for [`REVALIDATE_AFTER`], then checked against the store's
/// version (one indexed read) and reloaded only when it changed. A request
/// keeps the [`HotWords`] it resolved (a real-time session, for its whole
/// life), whatever happens to the table afterwards.
pub struct VocabularyCache {
    store: Store,
    revalidate_after: Duration,
    max_words: usize,
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    map: HashMap<(String, String), Entry>,
    words: usize,
}

struct Entry {
    hot: HotWords,
    checked: Instant,
    used: Instant,
}

impl Entries {
    fn remove(&mut self, key: &(String, String)) {
        if let Some(e) = self.map.remove(key) {
            self.words -= e.hot.words.len();
        }
    }
}

impl VocabularyCache {
    pub fn new(store: Store) -> VocabularyCache {
        VocabularyCache::with_limits(store, REVALIDATE_AFTER, CACHE_MAX_WORDS)
    }

    pub fn with_limits(
        store: Store,
        revalidate_after: Duration,
        max_words: usize,
    ) -> VocabularyCache {
        VocabularyCache {
            store,
            revalidate_after,
            max_words,
            entries: Mutex::new(Entries::default()),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The vocabulary `id` of `project` as a request uses it, or `None`
    /// when the project has no such vocabulary.
    pub async fn resolve(&self, project_id: &str, id: &str) -> Result<Option<HotWords>> {
        // longer than any id this store makes: none, without asking
        if id.len() > MAX_ID_BYTES {
            return Ok(None);
        }
        let key = (project_id.to_string(), id.to_string());
        let now = Instant::now();
        let cached = {
            let mut entries = self.entries();
            match entries.map.get_mut(&key) {
                Some(e) if now.duration_since(e.checked) < self.revalidate_after => {
                    e.used = now;
                    return Ok(Some(e.hot.clone()));
                }
                Some(e) => Some(e.hot.version),
                None => None,
            }
        };
        if let Some(version) = cached {
            match self.store.vocabulary_version(project_id, id).await? {
                None => {
                    self.entries().remove(&key);
                    return Ok(None);
                }
                Some(current) if current == version => {
                    let mut entries = self.entries();
                    if let Some(e) = entries.map.get_mut(&key) {
                        if e.hot.version == version {
                            e.checked = now;
                            e.used = now;
                            return Ok(Some(e.hot.clone()));
                        }
                    }
                }
                Some(_) => {}
            }
        }
        let Some(v) = self.store.vocabulary(project_id, id).await? else {
            self.entries().remove(&key);
            return Ok(None);
        };
        let hot = HotWords {
            vocabulary_id: v.id,
            version: v.version,
            words: Arc::new(v.contents),
        };
        self.keep(key, hot.clone(), now);
        Ok(Some(hot))
    }

    /// Drops the copy of a vocabulary this server changed or deleted, so its
    /// next request reads the store.
    pub fn forget(&self, project_id: &str, id: &str) {
        self.entries()
            .remove(&(project_id.to_string(), id.to_string()));
    }

    fn keep(&self, key: (String, String), hot: HotWords, now: Instant) {
        let size = hot.words.len();
        let mut entries = self.entries();
        entries.remove(&key);
        if size > self.max_words {
            return;
        }
        while entries.words + size > self.max_words {
            let oldest = entries
                .map
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => entries.remove(&k),
                None => break,
            }
        }
        entries.words += size;
        entries.map.insert(
            key,
            Entry {
                hot,
                checked: now,
                used: now,
            },
        );
    }

    /// Vocabularies and words held (for tests).
    pub fn held(&self) -> (usize, usize) {
        let e = self.entries();
        (e.map.len(), e.words)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const P: &str = "0123456789abcdef0123456789abcdef";
    const Q: &str = "fedcba9876543210fedcba9876543210";

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    fn fields<'a>(name: &'a str, contents: &'a [String]) -> VocabularyFields<'a> {
        VocabularyFields {
            name,
            description: "d",
            language: "chinese_mandarin",
            contents,
        }
    }

    async fn sqlite() -> (tempfile::TempDir, Store) {
        let d = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", d.path().join("s.db").display());
        (d, Store::open(&url).await.unwrap())
    }

    /// The store's whole contract, on whichever store is given.
    fn project() -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }

    async fn contract(s: &Store) {
        // projects of their own: a PostgreSQL database may be used again
        let (p, q) = (&project(), &project());
        let w = words(&["华为云", "SIS|5", "花为=华为"]);
        let id = new_vocabulary_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id, id.to_ascii_uppercase());
        s.create_vocabulary(p, &id, fields("a", &w), 3)
            .await
            .unwrap();
        let v = s.vocabulary(p, &id).await.unwrap().unwrap();
        assert_eq!((v.name.as_str(), v.version), ("a", 1));
        assert_eq!(v.contents, w);
        assert_eq!(v.description, "d");
        assert_eq!(s.vocabulary_version(p, &id).await.unwrap(), Some(1));

        // names are unique per project, not across projects
        let taken = s
            .create_vocabulary(p, &new_vocabulary_id(), fields("a", &w), 3)
            .await;
        assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
        let other = new_vocabulary_id();
        s.create_vocabulary(q, &other, fields("a", &w), 3)
            .await
            .unwrap();

        // another project's id answers as a missing one, everywhere
        assert!(s.vocabulary(q, &id).await.unwrap().is_none());
        assert_eq!(s.vocabulary_version(q, &id).await.unwrap(), None);
        assert!(!s.update_vocabulary(q, &id, fields("x", &w)).await.unwrap());
        assert!(!s.delete_vocabulary(q, &id).await.unwrap());
        assert!(s
            .list_vocabularies(p)
            .await
            .unwrap()
            .iter()
            .all(|v| v.id != other));

        // an update replaces everything and raises the version
        let w2 = words(&["华为"]);
        assert!(s.update_vocabulary(p, &id, fields("b", &w2)).await.unwrap());
        let v = s.vocabulary(p, &id).await.unwrap().unwrap();
        assert_eq!(
            (v.name.as_str(), v.version, v.contents),
            ("b", 2, w2.clone())
        );
        let b2 = new_vocabulary_id();
        s.create_vocabulary(p, &b2, fields("c", &w2), 3)
            .await
            .unwrap();
        let renamed = s.update_vocabulary(p, &b2, fields("b", &w2)).await;
        assert!(
            matches!(renamed, Err(StoreError::Conflict(_))),
            "{renamed:?}"
        );
        // an update may keep its own name
        assert!(s.update_vocabulary(p, &b2, fields("c", &w)).await.unwrap());

        // the limit per project
        s.create_vocabulary(p, &new_vocabulary_id(), fields("d", &w), 3)
            .await
            .unwrap();
        let over = s
            .create_vocabulary(p, &new_vocabulary_id(), fields("e", &w), 3)
            .await;
        assert!(matches!(over, Err(StoreError::TooMany(_))), "{over:?}");
        let list = s.list_vocabularies(p).await.unwrap();
        let names: Vec<&str> = list.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["b", "c", "d"], "oldest first");

        // deleting frees a place
        assert!(s.delete_vocabulary(p, &id).await.unwrap());
        assert!(!s.delete_vocabulary(p, &id).await.unwrap());
        assert!(s.vocabulary(p, &id).await.unwrap().is_none());
        s.create_vocabulary(p, &new_vocabulary_id(), fields("e", &w), 3)
            .await
            .unwrap();
        assert_eq!(s.list_vocabularies(p).await.unwrap().len(), 3);

        // many creations at once never pass the limit
        let fresh = &project();
        let tries = (0..12).map(|i| {
            let s = s.clone();
            let w = w.clone();
            async move {
                s.create_vocabulary(fresh, &new_vocabulary_id(), fields(&format!("n{i}"), &w), 5)
                    .await
            }
        });
        let results = futures::future::join_all(tries).await;
        let made = results.iter().filter(|r| r.is_ok()).count();
        assert!(
            results
                .iter()
                .all(|r| r.is_ok() || matches!(r, Err(StoreError::TooMany(_)))),
            "{results:?}"
        );
        assert_eq!(made, 5);
        assert_eq!(s.list_vocabularies(fresh).await.unwrap().len(), 5);
    }

    #[tokio::test]
    async fn vocabularies_on_sqlite() {
        let (_d, s) = sqlite().await;
        contract(&s).await;
    }

    /// The same on PostgreSQL when `SIS_TEST_POSTGRES_URL` names a database
    /// (the integration suite drives the API on PostgreSQL as well:
    /// tests/integration/test_vocabularies.py).
    #[tokio::test]
    async fn vocabularies_on_postgres() {
        let Ok(url) = std::env::var("SIS_TEST_POSTGRES_URL") else {
            eprintln!("SIS_TEST_POSTGRES_URL not set: skipped");
            return;
        };
        let s = Store::open(&url).await.unwrap();
        contract(&s).await;
    }

    #[tokio::test]
    async fn the_cache_follows_the_store() {
        let (_d, s) = sqlite().await;
        let cache = VocabularyCache::with_limits(s.clone(), Duration::ZERO, 100);
        let id = new_vocabulary_id();
        assert_eq!(cache.resolve(P, &id).await.unwrap(), None);
        let w = words(&["华为"]);
        s.create_vocabulary(P, &id, fields("a", &w), 10)
            .await
            .unwrap();
        let first = cache.resolve(P, &id).await.unwrap().unwrap();
        assert_eq!((first.version, first.words.as_slice()), (1, w.as_slice()));
        assert_eq!(first.vocabulary_id, id);
        // unchanged: the same words, not a copy
        let again = cache.resolve(P, &id).await.unwrap().unwrap();
        assert!(Arc::ptr_eq(&first.words, &again.words));
        // another project never sees it, cached or not
        assert_eq!(cache.resolve(Q, &id).await.unwrap(), None);
        // changed in the store (by any server): the next resolve sees it
        let w2 = words(&["华为云"]);
        s.update_vocabulary(P, &id, fields("a", &w2)).await.unwrap();
        let changed = cache.resolve(P, &id).await.unwrap().unwrap();
        assert_eq!(
            (changed.version, changed.words.as_slice()),
            (2, w2.as_slice())
        );
        // what a request resolved before stays as it was
        assert_eq!(first.words.as_slice(), w.as_slice());
        s.delete_vocabulary(P, &id).await.unwrap();
        assert_eq!(cache.resolve(P, &id).await.unwrap(), None);
        assert_eq!(cache.held(), (0, 0));
    }

    #[tokio::test]
    async fn a_fresh_copy_is_used_without_asking_and_forgotten_on_change() {
        let (_d, s) = sqlite().await;
        let cache = VocabularyCache::with_limits(s.clone(), Duration::from_secs(3600), 100);
        let id = new_vocabulary_id();
        s.create_vocabulary(P, &id, fields("a", &words(&["华为"])), 10)
            .await
            .unwrap();
        assert_eq!(cache.resolve(P, &id).await.unwrap().unwrap().version, 1);
        s.update_vocabulary(P, &id, fields("a", &words(&["华为云"])))
            .await
            .unwrap();
        // within the revalidation interval the copy is used as it is
        assert_eq!(cache.resolve(P, &id).await.unwrap().unwrap().version, 1);
        // the server that made the change forgets its copy at once
        cache.forget(P, &id);
        assert_eq!(cache.resolve(P, &id).await.unwrap().unwrap().version, 2);
    }

    #[tokio::test]
    async fn the_cache_is_bounded_by_words() {
        let (_d, s) = sqlite().await;
        let cache = VocabularyCache::with_limits(s.clone(), Duration::from_secs(3600), 5);
        let ids: Vec<String> = (0..3).map(|_| new_vocabulary_id()).collect();
        for (i, id) in ids.iter().enumerate() {
            let w = words(&["华为", "SIS"]);
            s.create_vocabulary(P, id, fields(&format!("v{i}"), &w), 10)
                .await
                .unwrap();
            cache.resolve(P, id).await.unwrap().unwrap();
        }
        // 3 x 2 words do not fit in 5: the least recently used went
        assert_eq!(cache.held(), (2, 4));
        let big = new_vocabulary_id();
        let w = words(&["A", "B", "C", "D", "E", "F"]);
        s.create_vocabulary(P, &big, fields("big", &w), 10)
            .await
            .unwrap();
        // larger than the whole cache: served, not kept
        assert_eq!(
            cache.resolve(P, &big).await.unwrap().unwrap().words.len(),
            6
        );
        assert_eq!(cache.held(), (2, 4));
    }
}
