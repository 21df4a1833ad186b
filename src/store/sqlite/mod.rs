//! SQLite implementation of `Store`: the embedded default.
//!
//! WAL journal with `synchronous = FULL`: a commit is on disk before the source
//! is acknowledged (Maildir move, IMAP MOVE), so a power cut cannot lose a
//! message that the mailbox already gave up. Write transactions start with
//! `BEGIN IMMEDIATE` so concurrent writers wait on `busy_timeout` instead of
//! failing when a read transaction tries to upgrade.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};
use time::OffsetDateTime;

use super::rows::{self, Cols};
use super::*;

mod backend;
mod tx;
mod writer;

pub use tx::SqliteTx;
use tx::*;
use writer::*;

#[derive(Clone)]
pub struct SqliteStore {
    /// Reads outside a delivery (lists, views, the outbox worker, tokens).
    pool: SqlitePool,
    writer: Writer,
    /// Write transactions waiting for `writer` now (see `writers_waiting`).
    waiting: Arc<std::sync::atomic::AtomicUsize>,
    /// What mail sources and the outbox last met writing here (`/readyz`).
    health: crate::health::StoreHealth,
}

fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) => {
            if db.is_unique_violation() {
                return StoreError::Conflict(db.message().to_string());
            }
            // Primary result codes: BUSY 5, LOCKED 6, IOERR 10, FULL 13, CANTOPEN 14.
            let primary = db
                .code()
                .and_then(|c| c.parse::<i32>().ok())
                .map(|c| c & 0xff);
            match primary {
                Some(5 | 6 | 10 | 13 | 14) => StoreError::Unavailable(e.into()),
                _ => StoreError::Database(e.into()),
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.into()),
        _ => StoreError::Database(e.into()),
    }
}

trait Q<T> {
    fn q(self) -> Result<T>;
}

impl<T> Q<T> for std::result::Result<T, sqlx::Error> {
    fn q(self) -> Result<T> {
        self.map_err(map_err)
    }
}

/// The file behind a `sqlite://PATH` URL, so its folder can be created.
pub fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then_some(path)
}

impl SqliteStore {
    /// Opens (creating if missing) the database at a `sqlite://PATH` URL.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::open(url, Missing::Create).await
    }

    /// Opens the database at a `sqlite://PATH` URL; with [`Missing::Refuse`]
    /// a file that is not there is an error naming it, and nothing is made,
    /// so a mistyped path cannot answer as an empty database.
    pub async fn open(url: &str, missing: Missing) -> Result<Self> {
        if let Some(path) = sqlite_path(url) {
            let path = Path::new(path);
            match missing {
                Missing::Refuse if !path.exists() => {
                    return Err(StoreError::NotFound(format!(
                        "no database at {}: check [database] url (commands that only read never create one; `ticketgate migrate` does)",
                        path.display()
                    )));
                }
                Missing::Refuse => {}
                // A warning, so that a one-off command shows it too: a new
                // database where one was expected is a mistyped path.
                Missing::Create if !path.exists() => {
                    if let Some(parent) = path.parent()
                        && !parent.as_os_str().is_empty()
                    {
                        std::fs::create_dir_all(parent)
                            .map_err(|e| StoreError::Unavailable(e.into()))?;
                    }
                    tracing::warn!(path = %path.display(), "creating a new database");
                }
                Missing::Create => {}
            }
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Invalid(format!("database url: {e}")))?
            .create_if_missing(missing == Missing::Create)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .q()?;
        let writer = Arc::new(tokio::sync::Mutex::new(open_writer(url)?));
        spawn_checkpointer(url, Arc::downgrade(&writer))?;
        Ok(Self {
            pool,
            writer,
            waiting: Default::default(),
            health: Default::default(),
        })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// How many write transactions wait for another to end, so a test can
    /// see a second writer held up without giving it time to get through.
    pub fn writers_waiting(&self) -> usize {
        self.waiting.load(std::sync::atomic::Ordering::SeqCst)
    }
}

// Times stay the text SQLite stores (`Cols`' defaults).
rows::cols_by!(SqliteRow, |row, i| row.try_get(i).q());
rows::cols_by!(rusqlite::Row<'_>, |row, i| row.get(i).r());

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::read::Backend;

    /// The shared statements (`store::sql`) use `$N`: sqlx binds it by its
    /// number on SQLite too, even when `$2` comes first.
    #[tokio::test]
    async fn dollar_parameters_bind_by_number() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            SqliteStore::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
                .await
                .unwrap();
        let (text, n): (String, i64) = sqlx::query_as("SELECT $2 || $1, $3 + $3")
            .bind("a")
            .bind("b")
            .bind(20)
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!((text.as_str(), n), ("ba", 40));
    }

    /// The write connection waits for a write lock that the pool holds (an
    /// outbox batch, a purge) without blocking the runtime's thread: on a
    /// single-threaded runtime the pool's task must still reach its COMMIT.
    /// Blocking in SQLite's busy wait, both waited the whole 30 s timeout and
    /// the portal answered 500 ("database is locked").
    #[tokio::test]
    async fn the_writer_waits_for_the_pool_s_write_lock_without_blocking_the_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            SqliteStore::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
                .await
                .unwrap();
        Store::migrate(&store).await.unwrap();
        let held = store.write().await.unwrap();
        let committer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            SqliteStore::commit(held).await
        });
        let started = std::time::Instant::now();
        let tx = store
            .begin_tx()
            .await
            .expect("the writer begins once the pool commits");
        let waited = started.elapsed();
        drop(tx);
        committer.await.unwrap().unwrap();
        assert!(waited < Duration::from_secs(5), "waited {waited:?}");
        // And the admin writes on the write connection.
        let held = store.write().await.unwrap();
        let committer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            SqliteStore::commit(held).await
        });
        store
            .create_org("Acme", "acme", &["acme.test".into()])
            .await
            .unwrap();
        committer.await.unwrap().unwrap();
        assert!(store.org_named("acme").await.unwrap().is_some());
    }

    /// Migration 0004 rebuilds `message_refs` and `followers` WITHOUT ROWID:
    /// a database made before it keeps its threads and its followers.
    #[tokio::test]
    async fn clustering_refs_and_followers_keeps_an_existing_database_s_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = SqliteStore::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        sqlx::migrate!("./migrations/sqlite")
            .run_to(3, store.pool())
            .await
            .unwrap();
        let at = "2026-11-01T00:00:00Z";
        for sql in [
            "INSERT INTO users (id, email, name, role, created_at) VALUES (1, 'ann@customer.test', 'Ann', 'customer', ?1)",
            "INSERT INTO users (id, email, name, role, created_at) VALUES (2, 'bob@customer.test', 'Bob', 'customer', ?1)",
            "INSERT INTO tickets (id, subject, status, requester_id, created_at, updated_at) VALUES (7, 'Printer', 'new', 1, ?1, ?1)",
            "INSERT INTO followers (ticket_id, user_id, source, created_at) VALUES (7, 1, 'creator', ?1)",
            "INSERT INTO followers (ticket_id, user_id, source, created_at) VALUES (7, 2, 'cc', ?1)",
            "INSERT INTO message_refs (message_id, ticket_id, kind, created_at) VALUES ('<a@customer.test>', 7, 'received', ?1)",
            "INSERT INTO message_refs (message_id, ticket_id, kind, created_at) VALUES ('<b@customer.test>', 7, 'referenced', ?1)",
        ] {
            sqlx::query(sql)
                .bind(at)
                .execute(store.pool())
                .await
                .unwrap();
        }
        store.migrate().await.unwrap();

        let ids: Vec<MessageId> = [
            "<a@customer.test>",
            "<b@customer.test>",
            "<c@customer.test>",
        ]
        .iter()
        .map(|m| MessageId::parse(m).unwrap())
        .collect();
        let mut tx = store.begin().await.unwrap();
        let found = tx.tickets_of(&ids).await.unwrap();
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found.values().all(|&t| t == 7), "{found:?}");
        let state = tx.ticket_state(7).await.unwrap().unwrap();
        let followers: Vec<_> = state.followers.iter().map(|f| (f.user, f.source)).collect();
        assert_eq!(
            followers,
            [(1, FollowerSource::Creator), (2, FollowerSource::Cc)]
        );
        drop(tx);
        // The rebuilt tables have no rowid, and their secondary indexes are back.
        for table in ["message_refs", "followers"] {
            let sql = format!("SELECT rowid FROM {table}");
            assert!(
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .fetch_all(store.pool())
                    .await
                    .is_err(),
                "{table} still has a rowid"
            );
        }
        let indexes: Vec<(String,)> = sqlx::query_as(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name IN ('message_refs_ticket', 'followers_user') ORDER BY name",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        assert_eq!(indexes.len(), 2, "{indexes:?}");
    }

    /// Migration 0007 widens `comments.source`'s CHECK by moving the column,
    /// and the body after it: the body stays last (written in place, 0006),
    /// and the table keeps its ids, indexes, foreign keys and the rows that
    /// reference it.
    #[tokio::test]
    async fn widening_comment_sources_keeps_the_body_last_and_every_reference() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = SqliteStore::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        sqlx::migrate!("./migrations/sqlite")
            .run_to(6, store.pool())
            .await
            .unwrap();
        let at = "2026-11-01T00:00:00.000000Z";
        for sql in [
            "INSERT INTO users (id, email, name, role, created_at) VALUES (1, 'ann@customer.test', 'Ann', 'customer', ?1)",
            "INSERT INTO tickets (id, subject, status, requester_id, created_at, updated_at) VALUES (7, 'Printer', 'new', 1, ?1, ?1)",
            "INSERT INTO blobs (sha256, size, data) VALUES ('aa', 3, x'616263')",
            "INSERT INTO ingest_log (id, dedup_key, origin, raw_sha256, size, outcome, received_at) VALUES (3, '<a@x>', 'test', 'aa', 3, 'comment_added', ?1)",
            "INSERT INTO comments (id, ticket_id, author_id, body, signature, quoted, internal, source, message_id, ingest_id, created_at)
             VALUES (10, 7, 1, 'on fire', '-- Ann', '> earlier', 0, 'email', '<a@x>', 3, ?1)",
            "INSERT INTO comments (id, ticket_id, author_id, body, internal, source, created_at)
             VALUES (12, 7, 1, CAST('stored as a blob' AS BLOB), 1, 'api', ?1)",
            "INSERT INTO comments (id, ticket_id, author_id, body, internal, source, created_at) VALUES (13, 7, 1, 'rule', 0, 'system', ?1)",
            "UPDATE ingest_log SET ticket_id = 7, comment_id = 10",
            "INSERT INTO attachments (id, comment_id, filename, content_type, size, blob_sha256) VALUES (5, 10, 'a.txt', 'text/plain', 3, 'aa')",
            "INSERT INTO outbox (ticket_id, template, to_addr, reason, comment_id, message_id, subject, context, status, next_attempt_at, created_at)
             VALUES (7, 'ack', 'ann@customer.test', 'requester', 10, '<n@x>', 'Printer', '{}', 'queued', ?1, ?1)",
        ] {
            sqlx::query(sql)
                .bind(at)
                .execute(store.pool())
                .await
                .unwrap();
        }
        type Rows = Vec<(String, String, String)>;
        let comments = || {
            sqlx::query_as::<_, (i64, String, String, String, Option<String>, bool)>(
                "SELECT id, source, typeof(body), CAST(body AS text), signature, internal FROM comments ORDER BY id",
            )
            .fetch_all(store.pool())
        };
        // What the table has and what points at it.
        let shape = || {
            sqlx::query_as::<_, (String, String, String)>(
                "SELECT 'index', name, COALESCE(sql, '') FROM sqlite_master WHERE tbl_name = 'comments' AND type IN ('index', 'trigger')
                 UNION ALL SELECT 'references', p.\"table\", p.\"from\" || ' ' || p.\"to\" || ' ' || p.on_delete
                 FROM pragma_foreign_key_list('comments') p
                 UNION ALL SELECT 'referenced by', m.name, p.\"from\" || ' ' || p.on_delete
                 FROM sqlite_master m, pragma_foreign_key_list(m.name) p WHERE m.type = 'table' AND p.\"table\" = 'comments'
                 ORDER BY 1, 2, 3",
            )
            .fetch_all(store.pool())
        };
        let (rows_before, shape_before): (_, Rows) =
            (comments().await.unwrap(), shape().await.unwrap());
        assert!(shape_before.len() >= 6, "{shape_before:?}");

        store.migrate().await.unwrap();

        assert_eq!(comments().await.unwrap(), rows_before);
        assert_eq!(
            rows_before[1].2, "blob",
            "a body written in place stays a blob"
        );
        assert_eq!(shape().await.unwrap(), shape_before);
        let columns: Vec<(String,)> =
            sqlx::query_as("SELECT name FROM pragma_table_info('comments') ORDER BY cid")
                .fetch_all(store.pool())
                .await
                .unwrap();
        let columns: Vec<&str> = columns.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(
            columns,
            [
                "id",
                "ticket_id",
                "author_id",
                "signature",
                "quoted",
                "internal",
                "message_id",
                "ingest_id",
                "created_at",
                "source",
                "body"
            ]
        );
        let broken: Vec<(String,)> =
            sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check")
                .fetch_all(store.pool())
                .await
                .unwrap();
        assert!(broken.is_empty(), "{broken:?}");
        let attached: (i64, i64) =
            sqlx::query_as("SELECT comment_id, (SELECT count(*) FROM outbox WHERE comment_id = 10) FROM attachments WHERE id = 5")
                .fetch_one(store.pool())
                .await
                .unwrap();
        assert_eq!(attached, (10, 1));
        let insert = "INSERT INTO comments (ticket_id, author_id, body, internal, source, created_at) VALUES (7, 1, 'x', 0, ?1, ?2)";
        for (source, accepted) in [("web", true), ("email", true), ("bogus", false)] {
            let done = sqlx::query(insert)
                .bind(source)
                .bind(at)
                .execute(store.pool())
                .await;
            assert_eq!(done.is_ok(), accepted, "{source}: {done:?}");
        }
    }

    /// A page view reads its session; only the first one after a minute
    /// writes `last_seen_at`.
    #[tokio::test]
    async fn a_session_is_noted_as_seen_at_most_once_a_minute() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            SqliteStore::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
                .await
                .unwrap();
        store.migrate().await.unwrap();
        let ann = store
            .add_user(&NewUser {
                email: EmailAddress::parse("ann@customer.test").unwrap(),
                name: "Ann".into(),
                role: Role::Customer,
                org_id: None,
                locale: "en".into(),
            })
            .await
            .unwrap();
        let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        store
            .create_session(&NewSession {
                token_hash: "ab".repeat(32),
                user: ann.id,
                csrf: "c".into(),
                now: t0,
                expires: t0 + Duration::from_secs(3600),
            })
            .await
            .unwrap();
        for (after, seen) in [(0, 0), (30, 0), (59, 0), (61, 61), (90, 61), (125, 125)] {
            let now = t0 + Duration::from_secs(after);
            assert!(
                store
                    .session(&"ab".repeat(32), now)
                    .await
                    .unwrap()
                    .is_some()
            );
            let (last,): (String,) = sqlx::query_as("SELECT last_seen_at FROM web_sessions")
                .fetch_one(store.pool())
                .await
                .unwrap();
            assert_eq!(
                last,
                format_ts(t0 + Duration::from_secs(seen)),
                "seen at +{after}s"
            );
        }
    }

    /// Commits leave the WAL alone (below 40 MB); the checkpointer thread is
    /// what moves their pages into the database file.
    #[tokio::test]
    async fn the_checkpointer_moves_committed_pages_into_the_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = SqliteStore::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        tokio::time::sleep(CHECKPOINT_EVERY * 3).await;
        // Pages the migrations freed (dropped tables) are reused first.
        let (free, page): (i64, i64) = sqlx::query_as(
            "SELECT freelist_count, page_size FROM pragma_freelist_count, pragma_page_size",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        let before = std::fs::metadata(&path).unwrap().len() - (free * page) as u64;
        let data = vec![7u8; 2 << 20];
        let mut tx = store.begin().await.unwrap();
        tx.put_blob("ab", &data).await.unwrap();
        tx.commit().await.unwrap();
        let wal = path.with_extension("db-wal");
        assert!(
            std::fs::metadata(&wal).unwrap().len() >= 2 << 20,
            "the commit is in the WAL"
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::fs::metadata(&path).unwrap().len() < before + (2 << 20) {
            assert!(
                std::time::Instant::now() < deadline,
                "no checkpoint within 5 s: database file still {} bytes",
                std::fs::metadata(&path).unwrap().len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Written in place (zeroblob + incremental I/O) and read back whole;
        // storing it again is a no-op, not an error.
        let mut tx = store.begin().await.unwrap();
        tx.put_blob("ab", &data).await.unwrap();
        drop(tx);
        assert_eq!(store.blob("ab").await.unwrap().unwrap(), data);
    }
}
