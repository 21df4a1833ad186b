//! SQLite implementation of `Store`: the embedded default, on rusqlite.
//!
//! WAL journal with `synchronous = FULL`: a commit is on disk before the source
//! is acknowledged (Maildir move, IMAP MOVE), so a power cut cannot lose a
//! message that the mailbox already gave up. Write transactions start with
//! `BEGIN IMMEDIATE` so concurrent writers wait on `busy_timeout` instead of
//! failing when a read transaction tries to upgrade.
//!
//! Every statement runs on the calling thread, prepared once per connection
//! and kept in its cache: writes on the one write connection (`writer`),
//! SELECTs outside a write on up to `READERS` read connections (`conn`).
//! Migrations are sqlx's files, recorded in sqlx's table (`migrate`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::rows::{self, Cols};
use super::*;

mod backend;
mod conn;
mod migrate;
mod tx;
mod writer;

use conn::*;
pub use conn::{SqliteConn, SqliteRow};
pub use tx::SqliteTx;
use tx::*;
use writer::*;

#[derive(Clone)]
pub struct SqliteStore {
    writer: Writer,
    /// Reads outside a write (lists, views, the outbox worker, tokens).
    readers: Arc<Readers>,
    /// Write transactions waiting for `writer` now (see `writers_waiting`).
    waiting: Arc<std::sync::atomic::AtomicUsize>,
    /// What mail sources and the outbox last met writing here (`/readyz`).
    health: crate::health::StoreHealth,
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
        let file = sqlite_path(url)
            .ok_or_else(|| StoreError::Invalid(format!("database url {url}: need a file path")))?;
        let path = Path::new(file);
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
        let writer = Arc::new(tokio::sync::Mutex::new(may_block(|| {
            open_writer(file, missing == Missing::Create)
        })?));
        spawn_checkpointer(file, Arc::downgrade(&writer))?;
        Ok(Self {
            writer,
            readers: Arc::new(Readers::new(file)),
            waiting: Default::default(),
            health: Default::default(),
        })
    }

    /// Applies the shipped migrations up to `version` only, as an earlier
    /// release left a database (tests of what upgrading keeps).
    pub async fn migrate_to(&self, version: i64) -> Result<()> {
        migrate::run(&self.writer, Some(version)).await
    }

    /// Direct SQL on the write connection, outside any transaction: for
    /// tests that set up states no command reaches.
    pub async fn with_connection<T>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let conn = self.writer.lock().await;
        may_block(|| f(&conn)).r()
    }

    /// How many write transactions wait for another to end, so a test can
    /// see a second writer held up without giving it time to get through.
    pub fn writers_waiting(&self) -> usize {
        self.waiting.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::read::Backend;

    /// Runs `sql` with `at` as its `?1`, if it has one.
    async fn exec(store: &SqliteStore, sql: &str, at: &str) -> Result<usize> {
        store
            .with_connection(|c| {
                let mut stmt = c.prepare(sql)?;
                match stmt.parameter_count() {
                    0 => stmt.execute([]),
                    _ => stmt.execute([at]),
                }
            })
            .await
    }

    async fn all<T>(
        store: &SqliteStore,
        sql: &str,
        map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        store
            .with_connection(|c| c.prepare(sql)?.query_map([], map)?.collect())
            .await
    }

    /// The shared statements (`store::sql`) use `$N`: each is bound by its
    /// number, even when `$2` comes first (SQLite numbers them in order of
    /// first use).
    #[tokio::test]
    async fn dollar_parameters_bind_by_number() {
        use crate::store::read::{Arg, Conn};
        let dir = tempfile::tempdir().unwrap();
        let store =
            SqliteStore::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
                .await
                .unwrap();
        let row = store
            .conn()
            .await
            .unwrap()
            .opt(
                "SELECT $2 || $1, $3 + $3",
                &[
                    Arg::Text(Some("a")),
                    Arg::Text(Some("b")),
                    Arg::Int(Some(20)),
                ],
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (row.text_at(0).unwrap().as_str(), row.i64_at(1).unwrap()),
            ("ba", 40)
        );
    }

    /// A write waits for the write lock without blocking the runtime: on a
    /// single-threaded runtime the task that holds it must still reach its
    /// COMMIT. Blocking in SQLite's busy wait, both waited the whole 30 s
    /// timeout and the portal answered 500 ("database is locked").
    #[tokio::test]
    async fn a_write_waits_for_the_write_lock_without_blocking_the_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = SqliteStore::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        Store::migrate(&store).await.unwrap();
        // Held by this process's other writes (an outbox batch, a purge).
        let held = store.write().await.unwrap();
        let committer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            SqliteStore::commit(held).await
        });
        let started = std::time::Instant::now();
        let tx = store
            .begin_tx()
            .await
            .expect("the delivery begins once the other write commits");
        let waited = started.elapsed();
        drop(tx);
        committer.await.unwrap().unwrap();
        assert!(waited < Duration::from_secs(5), "waited {waited:?}");
        // Held by another process (`ingest -`): the admin writes, the
        // shared `Store`'s single statements and deliveries wait for it too.
        for write in 0..3 {
            let other = open_rusqlite(path.to_str().unwrap(), false).unwrap();
            other.execute_batch("BEGIN IMMEDIATE").unwrap();
            let committer = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                other.execute_batch("COMMIT")
            });
            let started = std::time::Instant::now();
            match write {
                0 => {
                    store
                        .create_org("Acme", "acme", &["acme.test".into()])
                        .await
                        .unwrap();
                }
                1 => assert!(!store.end_session("nobody").await.unwrap()),
                _ => drop(store.begin_tx().await.unwrap()),
            }
            assert!(started.elapsed() < Duration::from_secs(5), "write {write}");
            committer.await.unwrap().unwrap();
        }
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
        store.migrate_to(3).await.unwrap();
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
            exec(&store, sql, at).await.unwrap();
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
                all(&store, &sql, |r| r.get::<_, i64>(0)).await.is_err(),
                "{table} still has a rowid"
            );
        }
        let indexes: Vec<String> = all(
            &store,
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name IN ('message_refs_ticket', 'followers_user') ORDER BY name",
            |r| r.get(0),
        )
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
        store.migrate_to(6).await.unwrap();
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
            exec(&store, sql, at).await.unwrap();
        }
        type Rows = Vec<(String, String, String)>;
        let comments = || {
            all(
                &store,
                "SELECT id, source, typeof(body), CAST(body AS text), signature, internal FROM comments ORDER BY id",
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, bool>(5)?,
                    ))
                },
            )
        };
        // What the table has and what points at it.
        let shape = || {
            all(
                &store,
                "SELECT 'index', name, COALESCE(sql, '') FROM sqlite_master WHERE tbl_name = 'comments' AND type IN ('index', 'trigger')
                 UNION ALL SELECT 'references', p.\"table\", p.\"from\" || ' ' || p.\"to\" || ' ' || p.on_delete
                 FROM pragma_foreign_key_list('comments') p
                 UNION ALL SELECT 'referenced by', m.name, p.\"from\" || ' ' || p.on_delete
                 FROM sqlite_master m, pragma_foreign_key_list(m.name) p WHERE m.type = 'table' AND p.\"table\" = 'comments'
                 ORDER BY 1, 2, 3",
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
        };
        let (rows_before, shape_before): (_, Rows) =
            (comments().await.unwrap(), shape().await.unwrap());
        assert!(shape_before.len() >= 6, "{shape_before:?}");

        store.migrate_to(7).await.unwrap();

        assert_eq!(comments().await.unwrap(), rows_before);
        assert_eq!(
            rows_before[1].2, "blob",
            "a body written in place stays a blob"
        );
        assert_eq!(shape().await.unwrap(), shape_before);
        let columns: Vec<String> = all(
            &store,
            "SELECT name FROM pragma_table_info('comments') ORDER BY cid",
            |r| r.get(0),
        )
        .await
        .unwrap();
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
        let broken: Vec<String> = all(
            &store,
            "SELECT \"table\" FROM pragma_foreign_key_check",
            |r| r.get(0),
        )
        .await
        .unwrap();
        assert!(broken.is_empty(), "{broken:?}");
        let attached: Vec<(i64, i64)> = all(
            &store,
            "SELECT comment_id, (SELECT count(*) FROM outbox WHERE comment_id = 10) FROM attachments WHERE id = 5",
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .await
        .unwrap();
        assert_eq!(attached, [(10, 1)]);
        let insert = "INSERT INTO comments (ticket_id, author_id, body, internal, source, created_at) VALUES (7, 1, 'x', 0, ?1, ?2)";
        for (source, accepted) in [("web", true), ("email", true), ("bogus", false)] {
            let done = store
                .with_connection(|c| c.execute(insert, [source, at]))
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
            let last: Vec<String> = all(&store, "SELECT last_seen_at FROM web_sessions", |r| {
                r.get(0)
            })
            .await
            .unwrap();
            assert_eq!(
                last[0],
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
        let (free, page): (i64, i64) = all(
            &store,
            "SELECT freelist_count, page_size FROM pragma_freelist_count, pragma_page_size",
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .await
        .unwrap()[0];
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
