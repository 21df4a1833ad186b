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

use super::*;

#[derive(Clone)]
pub struct SqliteStore {
    /// Reads outside a delivery (lists, views, the outbox worker, tokens).
    pool: SqlitePool,
    writer: Writer,
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
fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then_some(path)
}

impl SqliteStore {
    /// Opens (creating if missing) the database at a `sqlite://PATH` URL.
    pub async fn connect(url: &str) -> Result<Self> {
        if let Some(parent) = sqlite_path(url).and_then(|p| Path::new(p).parent())
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::Unavailable(e.into()))?;
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Invalid(format!("database url: {e}")))?
            .create_if_missing(true)
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
        Ok(Self { pool, writer })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// The one write connection, used on the calling task's thread.
///
/// sqlx runs each SQLite connection on a worker thread, so every statement
/// costs a cross-thread round trip (measured at 43–50 µs idle, about 70 % of
/// ingest CPU in thread wake-ups). SQLite allows one writer at a time anyway,
/// so write transactions take this connection under an async mutex and run
/// their statements directly, each prepared once and kept in its cache.
type Writer = Arc<tokio::sync::Mutex<rusqlite::Connection>>;

/// How long a writer waits for another process's write lock (as the pool).
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Blobs above this size are written in pieces of this size (see `put_blob`).
const BLOB_INLINE: usize = 1 << 20;

/// More than the number of distinct statements a delivery uses, so none is
/// ever prepared twice.
const STATEMENT_CACHE: usize = 128;

/// Pages the write connection keeps in memory (KiB, as a negative
/// `cache_size`): enough for the indexes a batch touches, so they are not
/// re-read from the OS or spilled mid-transaction.
const WRITER_CACHE_KIB: i64 = 8 * 1024;

/// The write connection checkpoints by itself only past this many WAL pages
/// (40 MB); normally the checkpointer thread has long since done it.
const WRITER_AUTOCHECKPOINT_PAGES: i64 = 10_000;

/// How often the checkpointer thread looks at the WAL.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

fn open_writer(url: &str) -> Result<rusqlite::Connection> {
    let conn = open_rusqlite(url)?;
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)
        .r()?;
    // Commits leave checkpoints to the checkpointer thread: copying the WAL
    // back into the database (and its fsync) would otherwise land on whichever
    // delivery crossed SQLite's 1,000-page threshold. The high threshold kept
    // here bounds the WAL for short-lived processes (`ingest -`) that exit
    // before the checkpointer's first turn.
    conn.pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT_PAGES)
        .r()?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// Checkpoints the WAL beside the writer, PASSIVE so it never blocks a
/// commit or a reader. It stops when the last `SqliteStore` clone is gone.
fn spawn_checkpointer(
    url: &str,
    writer: std::sync::Weak<tokio::sync::Mutex<rusqlite::Connection>>,
) -> Result<()> {
    let conn = open_rusqlite(url)?;
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            while writer.strong_count() > 0 {
                std::thread::sleep(CHECKPOINT_EVERY);
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "sqlite checkpoint failed; will retry");
                }
            }
        })
        .map_err(|e| StoreError::Unavailable(e.into()))?;
    Ok(())
}

/// A connection with the settings every connection to the file shares.
fn open_rusqlite(url: &str) -> Result<rusqlite::Connection> {
    use rusqlite::OpenFlags;
    let path = sqlite_path(url)
        .ok_or_else(|| StoreError::Invalid(format!("database url {url}: need a file path")))?;
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .r()?;
    conn.busy_timeout(BUSY_TIMEOUT).r()?;
    // WAL is a property of the file (set when the pool opened it); synchronous
    // and foreign_keys are per connection and must match the pool's.
    conn.pragma_update(None, "journal_mode", "WAL").r()?;
    conn.pragma_update(None, "synchronous", "FULL").r()?;
    conn.pragma_update(None, "foreign_keys", "ON").r()?;
    Ok(conn)
}

/// `BEGIN IMMEDIATE`: tried at once on this thread; only when another process
/// holds the write lock is it retried where it may wait (`busy_timeout`).
fn begin_immediate(conn: &rusqlite::Connection) -> Result<()> {
    conn.busy_timeout(Duration::ZERO).r()?;
    let first = conn.execute_batch("BEGIN IMMEDIATE");
    conn.busy_timeout(BUSY_TIMEOUT).r()?;
    match first {
        Err(rusqlite::Error::SqliteFailure(f, _))
            if f.code == rusqlite::ErrorCode::DatabaseBusy =>
        {
            may_block(|| conn.execute_batch("BEGIN IMMEDIATE")).r()
        }
        other => other.r(),
    }
}

/// Runs a call that can take long: waiting out another process's write lock
/// (`busy_timeout`), writing a large blob, admin work. On the multi-threaded
/// runtime the worker hands its other tasks to another thread first.
fn may_block<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

fn map_rusqlite(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        // Extended codes: SQLITE_CONSTRAINT_PRIMARYKEY 1555, _UNIQUE 2067.
        if matches!(f.extended_code, 1555 | 2067) {
            return StoreError::Conflict(e.to_string());
        }
        if matches!(
            f.code,
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::SystemIoFailure
                | ErrorCode::DiskFull
                | ErrorCode::CannotOpen
        ) {
            return StoreError::Unavailable(e.into());
        }
    }
    StoreError::Database(e.into())
}

trait R<T> {
    fn r(self) -> Result<T>;
}

impl<T> R<T> for rusqlite::Result<T> {
    fn r(self) -> Result<T> {
        self.map_err(map_rusqlite)
    }
}

/// Column access shared by the sqlx rows (read side) and rusqlite rows (write
/// side), so each row mapper is written once.
trait Cols {
    fn i64_at(&self, i: usize) -> Result<i64>;
    fn opt_i64_at(&self, i: usize) -> Result<Option<i64>>;
    fn text_at(&self, i: usize) -> Result<String>;
    fn opt_text_at(&self, i: usize) -> Result<Option<String>>;
    fn bool_at(&self, i: usize) -> Result<bool>;

    fn parse_at<T: FromStr>(&self, i: usize) -> Result<T>
    where
        T::Err: std::fmt::Display,
    {
        let text = self.text_at(i)?;
        text.parse()
            .map_err(|e: T::Err| StoreError::Invalid(format!("column {i} ({text}): {e}")))
    }

    fn opt_parse_at<T: FromStr>(&self, i: usize) -> Result<Option<T>>
    where
        T::Err: std::fmt::Display,
    {
        self.opt_text_at(i)?
            .map(|t| {
                t.parse()
                    .map_err(|e: T::Err| StoreError::Invalid(format!("column {i} ({t}): {e}")))
            })
            .transpose()
    }

    fn email_at(&self, i: usize) -> Result<EmailAddress> {
        EmailAddress::parse(&self.text_at(i)?).map_err(|e| StoreError::Invalid(e.to_string()))
    }
}

impl Cols for SqliteRow {
    fn i64_at(&self, i: usize) -> Result<i64> {
        self.try_get(i).q()
    }
    fn opt_i64_at(&self, i: usize) -> Result<Option<i64>> {
        self.try_get(i).q()
    }
    fn text_at(&self, i: usize) -> Result<String> {
        self.try_get(i).q()
    }
    fn opt_text_at(&self, i: usize) -> Result<Option<String>> {
        self.try_get(i).q()
    }
    fn bool_at(&self, i: usize) -> Result<bool> {
        self.try_get(i).q()
    }
}

impl Cols for rusqlite::Row<'_> {
    fn i64_at(&self, i: usize) -> Result<i64> {
        self.get(i).r()
    }
    fn opt_i64_at(&self, i: usize) -> Result<Option<i64>> {
        self.get(i).r()
    }
    fn text_at(&self, i: usize) -> Result<String> {
        self.get(i).r()
    }
    fn opt_text_at(&self, i: usize) -> Result<Option<String>> {
        self.get(i).r()
    }
    fn bool_at(&self, i: usize) -> Result<bool> {
        self.get(i).r()
    }
}

/// Runs a prepared statement and maps each row; mapper errors and SQLite
/// errors come back alike.
fn rows<T>(
    conn: &rusqlite::Connection,
    sql: &str,
    params: impl rusqlite::Params,
    map: impl Fn(&rusqlite::Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql).r()?;
    let mut rows = stmt.query(params).r()?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().r()? {
        out.push(map(row)?);
    }
    Ok(out)
}

fn row<T>(
    conn: &rusqlite::Connection,
    sql: &str,
    params: impl rusqlite::Params,
    map: impl Fn(&rusqlite::Row<'_>) -> Result<T>,
) -> Result<Option<T>> {
    let mut stmt = conn.prepare_cached(sql).r()?;
    let mut rows = stmt.query(params).r()?;
    rows.next().r()?.map(map).transpose()
}

fn execute(conn: &rusqlite::Connection, sql: &str, params: impl rusqlite::Params) -> Result<usize> {
    conn.prepare_cached(sql).r()?.execute(params).r()
}

/// `INSERT … RETURNING id`.
fn insert_id(conn: &rusqlite::Connection, sql: &str, params: impl rusqlite::Params) -> Result<i64> {
    row(conn, sql, params, |r| r.i64_at(0))?
        .ok_or_else(|| StoreError::Invalid("insert returned no id".into()))
}

pub struct SqliteTx {
    conn: tokio::sync::OwnedMutexGuard<rusqlite::Connection>,
    /// Still inside BEGIN: dropping rolls back (also when the task is cancelled).
    open: bool,
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        if self.open
            && let Err(e) = self.conn.execute_batch("ROLLBACK")
        {
            tracing::warn!(error = %e, "sqlite rollback failed");
        }
    }
}

/// A row of `USER_COLUMNS`.
fn user_from_row(r: &impl Cols) -> Result<User> {
    Ok(User {
        id: r.i64_at(0)?,
        email: r.email_at(1)?,
        name: r.text_at(2)?,
        role: r.parse_at(3)?,
        org_id: r.opt_i64_at(4)?,
        org: r.opt_text_at(5)?,
        locale: r.text_at(6)?,
        bouncing: r.bool_at(7)?,
    })
}

/// A ticket list row: id, subject, status, priority, requester email, org slug, updated_at.
fn summary_from_row(r: &impl Cols) -> Result<TicketSummary> {
    Ok(TicketSummary {
        id: r.i64_at(0)?,
        subject: r.text_at(1)?,
        status: r.parse_at(2)?,
        priority: r.opt_parse_at(3)?,
        requester: r.text_at(4)?,
        org: r.opt_text_at(5)?,
        updated_at: r.text_at(6)?,
    })
}

/// Shared by the write connection and the pool's lookups (`user_from_row`).
const USER_BY_EMAIL: &str =
    "SELECT u.id, u.email, u.name, u.role, u.org_id, o.slug, u.locale, u.bouncing
     FROM users u LEFT JOIN orgs o ON o.id = u.org_id WHERE u.email = ?1";
const USER_BY_ID: &str =
    "SELECT u.id, u.email, u.name, u.role, u.org_id, o.slug, u.locale, u.bouncing
     FROM users u LEFT JOIN orgs o ON o.id = u.org_id WHERE u.id = ?1";

fn user_by_email(conn: &rusqlite::Connection, email: &EmailAddress) -> Result<Option<User>> {
    row(conn, USER_BY_EMAIL, [email.as_str()], |r| user_from_row(r))
}

fn user_by_id(conn: &rusqlite::Connection, id: UserId) -> Result<Option<User>> {
    row(conn, USER_BY_ID, [id], |r| user_from_row(r))
}

fn insert_user(conn: &rusqlite::Connection, user: &NewUser, now: OffsetDateTime) -> Result<User> {
    let id = insert_id(
        conn,
        "INSERT INTO users (email, name, role, org_id, locale, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
        rusqlite::params![
            user.email.as_str(),
            user.name,
            user.role.as_str(),
            user.org_id,
            user.locale,
            format_ts(now)
        ],
    )?;
    user_by_id(conn, id)?.ok_or_else(|| StoreError::NotFound(format!("user {id}")))
}

fn org_where(conn: &rusqlite::Connection, key: &str) -> Result<Option<Org>> {
    let found = row(
        conn,
        "SELECT id, slug, name FROM orgs WHERE slug = ?1 OR lower(name) = lower(?1) OR id = ?2",
        rusqlite::params![key, key.parse::<i64>().ok()],
        |r| Ok((r.i64_at(0)?, r.text_at(1)?, r.text_at(2)?)),
    )?;
    found
        .map(|(id, slug, name)| org_details(conn, id, slug, name))
        .transpose()
}

fn org_details(conn: &rusqlite::Connection, id: OrgId, slug: String, name: String) -> Result<Org> {
    let domains = rows(
        conn,
        "SELECT domain FROM org_domains WHERE org_id = ?1 ORDER BY domain",
        [id],
        |r| r.text_at(0),
    )?;
    let leads = rows(
        conn,
        "SELECT u.email FROM org_leads l JOIN users u ON u.id = l.user_id WHERE l.org_id = ?1 ORDER BY u.email",
        [id],
        |r| r.text_at(0),
    )?;
    Ok(Org {
        id,
        slug,
        name,
        domains,
        leads,
    })
}

#[async_trait]
impl Tx for SqliteTx {
    async fn put_blob(&mut self, sha256: &str, data: &[u8]) -> Result<()> {
        if data.len() <= BLOB_INLINE {
            execute(
                &self.conn,
                "INSERT INTO blobs (sha256, size, data) VALUES (?1, ?2, ?3) ON CONFLICT (sha256) DO NOTHING",
                rusqlite::params![sha256, data.len() as i64, data],
            )?;
            return Ok(());
        }
        // A bound value is copied by SQLite (SQLITE_TRANSIENT) and again into
        // the row record; for a 25 MB attachment those copies are most of the
        // peak memory. Reserve the row with zeroblob() and write in place.
        let row_id = row(
            &self.conn,
            "INSERT INTO blobs (sha256, size, data) VALUES (?1, ?2, zeroblob(?2))
             ON CONFLICT (sha256) DO NOTHING RETURNING rowid",
            rusqlite::params![sha256, data.len() as i64],
            |r| r.i64_at(0),
        )?;
        let Some(row_id) = row_id else {
            return Ok(()); // already stored
        };
        let conn = &self.conn;
        may_block(|| {
            let mut blob = conn
                .blob_open(rusqlite::MAIN_DB, "blobs", "data", row_id, false)
                .r()?;
            for (i, chunk) in data.chunks(BLOB_INLINE).enumerate() {
                blob.write_at(chunk, i * BLOB_INLINE).r()?;
            }
            Ok(())
        })
    }

    async fn find_logged(&mut self, dedup_key: &str) -> Result<Option<LoggedMessage>> {
        row(
            &self.conn,
            "SELECT id, outcome, ticket_id, comment_id FROM ingest_log WHERE dedup_key = ?1 AND outcome IN ('ticket_created', 'comment_added', 'command_only')",
            [dedup_key],
            |r| {
                Ok(LoggedMessage {
                    id: r.i64_at(0)?,
                    outcome: r.parse_at(1)?,
                    ticket_id: r.opt_i64_at(2)?,
                    comment_id: r.opt_i64_at(3)?,
                })
            },
        )
    }

    async fn user_by_email(&mut self, email: &EmailAddress) -> Result<Option<User>> {
        user_by_email(&self.conn, email)
    }

    async fn org_for_domain(&mut self, domain: &str) -> Result<Option<OrgId>> {
        row(
            &self.conn,
            "SELECT org_id FROM org_domains WHERE domain = ?1",
            [domain.to_ascii_lowercase()],
            |r| r.i64_at(0),
        )
    }

    async fn insert_user(&mut self, user: &NewUser, now: OffsetDateTime) -> Result<User> {
        insert_user(&self.conn, user, now)
    }

    async fn tickets_of(&mut self, ids: &[MessageId]) -> Result<HashMap<MessageId, TicketId>> {
        let mut out = HashMap::new();
        for id in ids {
            if let Some(ticket) = row(
                &self.conn,
                "SELECT ticket_id FROM message_refs WHERE message_id = ?1",
                [id.as_str()],
                |r| r.i64_at(0),
            )? {
                out.insert(id.clone(), ticket);
            }
        }
        Ok(out)
    }

    async fn ticket_state(&mut self, id: TicketId) -> Result<Option<TicketState>> {
        let Some(mut state) = row(
            &self.conn,
            "SELECT id, subject, status, priority, requester_id, root_message_id, last_message_id
             FROM tickets WHERE id = ?1",
            [id],
            |r| {
                Ok(TicketState {
                    id: r.i64_at(0)?,
                    subject: r.text_at(1)?,
                    status: r.parse_at(2)?,
                    priority: r.opt_parse_at(3)?,
                    requester_id: r.i64_at(4)?,
                    root_message_id: r.opt_text_at(5)?.and_then(|t| MessageId::parse(&t).ok()),
                    last_message_id: r.opt_text_at(6)?.and_then(|t| MessageId::parse(&t).ok()),
                    followers: Vec::new(),
                    orgs: Vec::new(),
                })
            },
        )?
        else {
            return Ok(None);
        };
        state.followers = rows(
            &self.conn,
            "SELECT f.user_id, u.email, u.name, u.locale, u.role, f.source, u.bouncing
             FROM followers f JOIN users u ON u.id = f.user_id
             WHERE f.ticket_id = ?1 ORDER BY f.created_at, f.user_id",
            [id],
            |r| {
                Ok(Follower {
                    user: r.i64_at(0)?,
                    email: r.email_at(1)?,
                    name: r.text_at(2)?,
                    locale: r.text_at(3)?,
                    role: r.parse_at(4)?,
                    source: r.parse_at(5)?,
                    bouncing: r.bool_at(6)?,
                })
            },
        )?;
        state.orgs = rows(
            &self.conn,
            "SELECT org_id FROM ticket_orgs WHERE ticket_id = ?1 ORDER BY org_id",
            [id],
            |r| r.i64_at(0),
        )?;
        Ok(Some(state))
    }

    async fn insert_ticket(&mut self, t: &NewTicket) -> Result<TicketId> {
        insert_id(
            &self.conn,
            "INSERT INTO tickets (subject, status, requester_id, org_id, root_message_id, last_message_id, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?6) RETURNING id",
            rusqlite::params![
                t.subject,
                t.status.as_str(),
                t.requester_id,
                t.org_id,
                t.root_message_id.as_ref().map(MessageId::as_str),
                format_ts(t.now)
            ],
        )
    }

    async fn add_follower(
        &mut self,
        ticket: TicketId,
        user: UserId,
        source: FollowerSource,
        now: OffsetDateTime,
    ) -> Result<bool> {
        let n = execute(
            &self.conn,
            "INSERT INTO followers (ticket_id, user_id, source, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (ticket_id, user_id) DO NOTHING",
            rusqlite::params![ticket, user, source.as_str(), format_ts(now)],
        )?;
        Ok(n == 1)
    }

    async fn attach_org(&mut self, ticket: TicketId, org: OrgId) -> Result<()> {
        execute(
            &self.conn,
            "INSERT INTO ticket_orgs (ticket_id, org_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            [ticket, org],
        )?;
        Ok(())
    }

    async fn insert_comment(&mut self, c: &NewComment<'_>) -> Result<CommentId> {
        insert_id(
            &self.conn,
            "INSERT INTO comments (ticket_id, author_id, body, signature, quoted, internal, source, message_id, ingest_id, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) RETURNING id",
            rusqlite::params![
                c.ticket_id,
                c.author_id,
                c.body,
                c.signature,
                c.quoted,
                c.internal,
                c.source.as_str(),
                c.message_id.as_ref().map(MessageId::as_str),
                c.ingest_id,
                format_ts(c.now)
            ],
        )
    }

    async fn insert_attachment(&mut self, a: &NewAttachment) -> Result<i64> {
        insert_id(
            &self.conn,
            "INSERT INTO attachments (comment_id, filename, content_type, size, blob_sha256) VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
            rusqlite::params![
                a.comment_id,
                a.filename,
                a.content_type,
                a.size as i64,
                a.sha256
            ],
        )
    }

    async fn insert_event(&mut self, e: &NewEvent) -> Result<()> {
        execute(
            &self.conn,
            "INSERT INTO events (ticket_id, kind, actor_id, data, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![
                e.ticket_id,
                e.kind,
                e.actor_id,
                e.data.to_string(),
                format_ts(e.now)
            ],
        )?;
        Ok(())
    }

    async fn remember_refs(
        &mut self,
        ids: &[MessageId],
        ticket: TicketId,
        kind: RefKind,
        now: OffsetDateTime,
    ) -> Result<()> {
        let now = format_ts(now);
        for id in ids {
            // A reference seen first stays weak until the message itself arrives.
            execute(
                &self.conn,
                "INSERT INTO message_refs (message_id, ticket_id, kind, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (message_id) DO UPDATE SET kind = excluded.kind
                 WHERE message_refs.kind = 'referenced' AND excluded.kind <> 'referenced'",
                rusqlite::params![id.as_str(), ticket, kind.as_str(), now],
            )?;
        }
        Ok(())
    }

    async fn update_ticket(
        &mut self,
        ticket: TicketId,
        status: Status,
        last: Option<&MessageId>,
        now: OffsetDateTime,
    ) -> Result<()> {
        execute(
            &self.conn,
            "UPDATE tickets SET status = ?2, last_message_id = COALESCE(?3, last_message_id), updated_at = ?4 WHERE id = ?1",
            rusqlite::params![
                ticket,
                status.as_str(),
                last.map(MessageId::as_str),
                format_ts(now)
            ],
        )?;
        Ok(())
    }

    async fn set_priority(
        &mut self,
        ticket: TicketId,
        priority: Priority,
        now: OffsetDateTime,
    ) -> Result<()> {
        execute(
            &self.conn,
            "UPDATE tickets SET priority = ?2, updated_at = ?3 WHERE id = ?1",
            rusqlite::params![ticket, priority.as_str(), format_ts(now)],
        )?;
        Ok(())
    }

    async fn set_release(
        &mut self,
        ticket: TicketId,
        release: &str,
        now: OffsetDateTime,
    ) -> Result<()> {
        execute(
            &self.conn,
            "UPDATE tickets SET release = ?2, updated_at = ?3 WHERE id = ?1",
            rusqlite::params![ticket, release, format_ts(now)],
        )?;
        Ok(())
    }

    async fn remove_follower(&mut self, ticket: TicketId, user: UserId) -> Result<bool> {
        let n = execute(
            &self.conn,
            "DELETE FROM followers WHERE ticket_id = ?1 AND user_id = ?2",
            [ticket, user],
        )?;
        Ok(n == 1)
    }

    async fn detach_org(&mut self, ticket: TicketId, org: OrgId) -> Result<bool> {
        let n = execute(
            &self.conn,
            "DELETE FROM ticket_orgs WHERE ticket_id = ?1 AND org_id = ?2",
            [ticket, org],
        )?;
        Ok(n == 1)
    }

    async fn org_slugs(&mut self, ids: &[OrgId]) -> Result<Vec<String>> {
        // Nearly every ticket has one org or none: asked for directly, that is
        // a primary-key lookup instead of a `json_each` scan (7 µs a message).
        match ids {
            [] => return Ok(Vec::new()),
            [id] => {
                return rows(
                    &self.conn,
                    "SELECT slug FROM orgs WHERE id = ?1",
                    [id],
                    |r| r.text_at(0),
                );
            }
            _ => {}
        }
        let list = serde_json::to_string(ids).map_err(|e| StoreError::Invalid(e.to_string()))?;
        rows(
            &self.conn,
            "SELECT slug FROM orgs WHERE id IN (SELECT value FROM json_each(?1)) ORDER BY slug",
            [list],
            |r| r.text_at(0),
        )
    }

    async fn org_by_key(&mut self, name_or_slug: &str) -> Result<Option<Org>> {
        org_where(&self.conn, name_or_slug.trim())
    }

    async fn org_leads(&mut self, org: OrgId) -> Result<Vec<User>> {
        rows(
            &self.conn,
            "SELECT u.id, u.email, u.name, u.role, u.org_id, o.slug, u.locale, u.bouncing
             FROM org_leads l JOIN users u ON u.id = l.user_id LEFT JOIN orgs o ON o.id = u.org_id
             WHERE l.org_id = ?1 ORDER BY u.email",
            [org],
            |r| user_from_row(r),
        )
    }

    async fn user_by_id(&mut self, id: UserId) -> Result<Option<User>> {
        user_by_id(&self.conn, id)
    }

    async fn staff_users(&mut self) -> Result<Vec<User>> {
        rows(
            &self.conn,
            "SELECT u.id, u.email, u.name, u.role, u.org_id, o.slug, u.locale, u.bouncing
             FROM users u LEFT JOIN orgs o ON o.id = u.org_id
             WHERE u.role = 'staff' ORDER BY u.id",
            [],
            |r| user_from_row(r),
        )
    }

    async fn reachable_users(&mut self, author: &User) -> Result<Vec<User>> {
        rows(
            &self.conn,
            "SELECT u.id, u.email, u.name, u.role, u.org_id, o.slug, u.locale, u.bouncing
             FROM users u LEFT JOIN orgs o ON o.id = u.org_id
             WHERE ?1 = 'staff'
                OR (?2 IS NOT NULL AND u.org_id = ?2)
                OR u.id IN (SELECT user_id FROM org_leads WHERE org_id = ?2)
             ORDER BY u.email",
            rusqlite::params![author.role.as_str(), author.org_id],
            |r| user_from_row(r),
        )
    }

    async fn open_tickets_of(&mut self, user: &User, limit: i64) -> Result<Vec<TicketSummary>> {
        rows(
            &self.conn,
            "SELECT t.id, t.subject, t.status, t.priority, u.email, o.slug, t.updated_at
             FROM tickets t JOIN users u ON u.id = t.requester_id LEFT JOIN orgs o ON o.id = t.org_id
             WHERE t.status NOT IN ('closed', 'escalated')
               AND (EXISTS (SELECT 1 FROM followers f WHERE f.ticket_id = t.id AND f.user_id = ?1)
                    OR (?2 IS NOT NULL AND EXISTS (SELECT 1 FROM ticket_orgs x WHERE x.ticket_id = t.id AND x.org_id = ?2)))
             ORDER BY t.updated_at DESC, t.id DESC LIMIT ?3",
            rusqlite::params![user.id, user.org_id, limit],
            |r| summary_from_row(r),
        )
    }

    async fn enqueue(&mut self, row: &NewOutbox) -> Result<i64> {
        let refs = row
            .references
            .iter()
            .map(MessageId::as_str)
            .collect::<Vec<_>>()
            .join(" ");
        insert_id(
            &self.conn,
            "INSERT INTO outbox (ticket_id, template, to_addr, to_user_id, reason, message_id, in_reply_to, refs, subject,
                                 context, status, attempts, next_attempt_at, created_at, locale, comment_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'queued', 0, ?11, ?11, ?12, ?13) RETURNING id",
            rusqlite::params![
                row.ticket_id,
                row.template,
                row.to.as_str(),
                row.to_user_id,
                row.reason,
                row.message_id.as_str(),
                row.in_reply_to.as_ref().map(MessageId::as_str),
                (!refs.is_empty()).then_some(refs),
                row.subject,
                row.context.to_string(),
                format_ts(row.now),
                row.locale,
                row.comment_id
            ],
        )
    }

    async fn claim_auto_reply(
        &mut self,
        address: &EmailAddress,
        now: OffsetDateTime,
        window: Duration,
    ) -> Result<bool> {
        self.claim_auto_reply_key(address.as_str(), now, window)
            .await
    }

    async fn claim_auto_reply_key(
        &mut self,
        address: &str,
        now: OffsetDateTime,
        window: Duration,
    ) -> Result<bool> {
        let n = execute(
            &self.conn,
            "INSERT INTO auto_replies (address, last_at) VALUES (?1, ?2)
             ON CONFLICT (address) DO UPDATE SET last_at = excluded.last_at WHERE auto_replies.last_at <= ?3",
            rusqlite::params![address, format_ts(now), format_ts(now - window)],
        )?;
        Ok(n == 1)
    }

    async fn outbox_recipient(
        &mut self,
        message_id: &MessageId,
    ) -> Result<Option<(TicketId, EmailAddress)>> {
        row(
            &self.conn,
            "SELECT ticket_id, to_addr FROM outbox WHERE message_id = ?1 AND ticket_id IS NOT NULL",
            [message_id.as_str()],
            |r| Ok((r.i64_at(0)?, r.email_at(1)?)),
        )
    }

    async fn set_bouncing(&mut self, email: &EmailAddress, bouncing: bool) -> Result<bool> {
        let n = execute(
            &self.conn,
            "UPDATE users SET bouncing = ?2 WHERE email = ?1 AND bouncing <> ?2",
            rusqlite::params![email.as_str(), bouncing],
        )?;
        Ok(n == 1)
    }

    async fn log_delivery(&mut self, e: &NewLogEntry) -> Result<i64> {
        insert_id(
            &self.conn,
            "INSERT INTO ingest_log (dedup_key, message_id, origin, raw_sha256, size, sender, subject, outcome, reason,
                                     thread_reason, ticket_id, comment_id, duplicate_of, notify, received_at, replay_of)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) RETURNING id",
            rusqlite::params![
                e.dedup_key,
                e.message_id.as_ref().map(MessageId::as_str),
                e.origin,
                e.raw_sha256,
                e.size as i64,
                e.sender,
                e.subject,
                e.outcome.as_str(),
                e.reason,
                e.thread_reason,
                e.ticket_id,
                e.comment_id,
                e.duplicate_of,
                e.notify,
                format_ts(e.now),
                e.replay_of
            ],
        )
    }

    async fn supersede_log(&mut self, id: i64) -> Result<bool> {
        let n = execute(
            &self.conn,
            "UPDATE ingest_log SET superseded = 1
             WHERE id = ?1 AND superseded = 0 AND outcome IN ('quarantined', 'rejected')",
            [id],
        )?;
        Ok(n == 1)
    }

    async fn advance_cursor(
        &mut self,
        source: &str,
        validity: i64,
        uid: i64,
        now: OffsetDateTime,
    ) -> Result<()> {
        execute(
            &self.conn,
            "INSERT INTO source_cursors (source, validity, last_uid, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (source) DO UPDATE SET
                 last_uid = CASE WHEN source_cursors.validity = excluded.validity
                                 THEN max(source_cursors.last_uid, excluded.last_uid) ELSE excluded.last_uid END,
                 validity = excluded.validity, updated_at = excluded.updated_at",
            rusqlite::params![source, validity, uid, format_ts(now)],
        )?;
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<()> {
        let conn = &self.conn;
        // Inline: holding the write lock, COMMIT waits for nobody; its fsync
        // (about a millisecond here) is shorter than handing the worker's
        // other tasks to another thread, which `block_in_place` does.
        conn.execute_batch("COMMIT").r()?;
        self.open = false;
        Ok(())
    }
}

fn outbox_from_row(r: &SqliteRow) -> Result<OutboxRow> {
    let status: String = r.try_get("status").q()?;
    let context: String = r.try_get("context").q()?;
    Ok(OutboxRow {
        id: r.try_get("id").q()?,
        ticket_id: r.try_get("ticket_id").q()?,
        to: r.try_get("to_addr").q()?,
        to_user_id: r.try_get("to_user_id").q()?,
        locale: r.try_get("locale").q()?,
        comment_id: r.try_get("comment_id").q()?,
        template: r.try_get("template").q()?,
        subject: r.try_get("subject").q()?,
        message_id: r.try_get("message_id").q()?,
        status: OutboxStatus::parse(&status)
            .ok_or_else(|| StoreError::Invalid(format!("outbox status {status}")))?,
        attempts: r.try_get("attempts").q()?,
        reason: r.try_get("reason").q()?,
        in_reply_to: r.try_get("in_reply_to").q()?,
        references: r.try_get("refs").q()?,
        context: serde_json::from_str(&context)
            .map_err(|e| StoreError::Invalid(format!("outbox context: {e}")))?,
    })
}

const LOG_COLUMNS: &str = "id, message_id, origin, sender, subject, outcome, reason, thread_reason, ticket_id, \
     comment_id, size, received_at, superseded, replay_of, raw_sha256, notify";

fn log_from_row(r: &SqliteRow) -> Result<LogRow> {
    Ok(LogRow {
        id: r.try_get(0).q()?,
        message_id: r.try_get(1).q()?,
        origin: r.try_get(2).q()?,
        sender: r.try_get(3).q()?,
        subject: r.try_get(4).q()?,
        outcome: r.try_get(5).q()?,
        reason: r.try_get(6).q()?,
        thread_reason: r.try_get(7).q()?,
        ticket: r.try_get(8).q()?,
        comment: r.try_get(9).q()?,
        size: r.try_get(10).q()?,
        received_at: r.try_get(11).q()?,
        superseded: r.try_get(12).q()?,
        replay_of: r.try_get(13).q()?,
        raw_sha256: r.try_get(14).q()?,
        notify: r.try_get(15).q()?,
    })
}

impl SqliteStore {
    /// Short admin work on the write connection (org and user records share
    /// their mappers with the delivery transaction).
    async fn with_writer<T>(
        &self,
        f: impl FnOnce(&mut rusqlite::Connection) -> Result<T>,
    ) -> Result<T> {
        let mut conn = self.writer.lock().await;
        may_block(|| f(&mut conn))
    }

    async fn tokens_where(&self, user: Option<UserId>, id: Option<i64>) -> Result<Vec<ApiToken>> {
        sqlx::query(
            "SELECT t.id, u.email, t.label, t.created_at, t.last_used_at, t.revoked_at
             FROM api_tokens t JOIN users u ON u.id = t.user_id
             WHERE (?1 IS NULL OR t.user_id = ?1) AND (?2 IS NULL OR t.id = ?2) ORDER BY t.id",
        )
        .bind(user)
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .q()?
        .iter()
        .map(|r| {
            Ok(ApiToken {
                id: r.try_get(0).q()?,
                user: r.try_get(1).q()?,
                label: r.try_get(2).q()?,
                created_at: r.try_get(3).q()?,
                last_used_at: r.try_get(4).q()?,
                revoked_at: r.try_get(5).q()?,
            })
        })
        .collect()
    }
}

const OUTBOX_COLUMNS: &str = "id, ticket_id, to_addr, to_user_id, locale, comment_id, template, subject, \
     message_id, status, attempts, reason, in_reply_to, refs, context";

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("./migrations/sqlite")
            .run(&self.pool)
            .await?;
        Ok(())
    }

    async fn begin(&self) -> Result<Box<dyn Tx>> {
        let conn = self.writer.clone().lock_owned().await;
        begin_immediate(&conn)?;
        Ok(Box::new(SqliteTx { conn, open: true }))
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.q()?;
        Ok(())
    }

    async fn add_org(&self, name: &str, slug: &str, domains: &[String]) -> Result<Org> {
        self.with_writer(|conn| {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .r()?;
            let id = insert_id(
                &tx,
                "INSERT INTO orgs (slug, name, created_at) VALUES (?1, ?2, ?3) RETURNING id",
                rusqlite::params![slug, name, format_ts(OffsetDateTime::now_utc())],
            )?;
            for domain in domains {
                execute(
                    &tx,
                    "INSERT INTO org_domains (domain, org_id) VALUES (?1, ?2)",
                    rusqlite::params![domain.to_ascii_lowercase(), id],
                )?;
            }
            let org = org_details(&tx, id, slug.to_string(), name.to_string())?;
            tx.commit().r()?;
            Ok(org)
        })
        .await
    }

    async fn list_orgs(&self) -> Result<Vec<Org>> {
        self.with_writer(|conn| {
            let orgs = rows(
                conn,
                "SELECT id, slug, name FROM orgs ORDER BY slug",
                [],
                |r| Ok((r.i64_at(0)?, r.text_at(1)?, r.text_at(2)?)),
            )?;
            orgs.into_iter()
                .map(|(id, slug, name)| org_details(conn, id, slug, name))
                .collect()
        })
        .await
    }

    async fn find_org(&self, name_or_slug: &str) -> Result<Option<Org>> {
        self.with_writer(|conn| org_where(conn, name_or_slug.trim()))
            .await
    }

    async fn add_org_lead(&self, org: OrgId, user: UserId) -> Result<()> {
        sqlx::query(
            "INSERT INTO org_leads (org_id, user_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        )
        .bind(org)
        .bind(user)
        .execute(&self.pool)
        .await
        .q()?;
        Ok(())
    }

    async fn remove_org_lead(&self, org: OrgId, user: UserId) -> Result<bool> {
        let done = sqlx::query("DELETE FROM org_leads WHERE org_id = ?1 AND user_id = ?2")
            .bind(org)
            .bind(user)
            .execute(&self.pool)
            .await
            .q()?;
        Ok(done.rows_affected() > 0)
    }

    async fn update_user(&self, id: UserId, change: &UserChange) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE users SET name = COALESCE(?2, name), role = COALESCE(?3, role),
                 locale = COALESCE(?4, locale), org_id = CASE WHEN ?5 THEN ?6 ELSE org_id END
             WHERE id = ?1",
        )
        .bind(id)
        .bind(change.name.as_deref())
        .bind(change.role.map(|r| r.as_str()))
        .bind(change.locale.as_deref())
        .bind(change.org_id.is_some())
        .bind(change.org_id.flatten())
        .execute(&self.pool)
        .await
        .q()?;
        Ok(done.rows_affected() > 0)
    }

    async fn add_user(&self, user: &NewUser) -> Result<User> {
        self.with_writer(|conn| insert_user(conn, user, OffsetDateTime::now_utc()))
            .await
    }

    async fn find_user(&self, email: &EmailAddress) -> Result<Option<User>> {
        sqlx::query(USER_BY_EMAIL)
            .bind(email.as_str())
            .fetch_optional(&self.pool)
            .await
            .q()?
            .map(|r| user_from_row(&r))
            .transpose()
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        sqlx::query(
            "SELECT u.id, u.email, u.name, u.role, u.org_id, o.slug, u.locale, u.bouncing
             FROM users u LEFT JOIN orgs o ON o.id = u.org_id ORDER BY u.email",
        )
        .fetch_all(&self.pool)
        .await
        .q()?
        .iter()
        .map(user_from_row)
        .collect()
    }

    async fn list_tickets(&self, f: &TicketFilter) -> Result<Vec<TicketSummary>> {
        sqlx::query(
            "SELECT t.id, t.subject, t.status, t.priority, u.email, o.slug, t.updated_at
             FROM tickets t JOIN users u ON u.id = t.requester_id LEFT JOIN orgs o ON o.id = t.org_id
             WHERE (?1 IS NULL OR t.status = ?1)
               AND (?2 IS NULL OR EXISTS (SELECT 1 FROM ticket_orgs x JOIN orgs xo ON xo.id = x.org_id
                                          WHERE x.ticket_id = t.id AND (xo.slug = ?2 OR lower(xo.name) = lower(?2))))
               AND (?3 IS NULL OR u.email = ?3)
               AND t.id > ?4
             ORDER BY t.id LIMIT ?5",
        )
        .bind(f.status.map(Status::as_str))
        .bind(f.org.as_deref())
        .bind(f.requester.as_ref().map(EmailAddress::as_str))
        .bind(f.after.unwrap_or(0))
        .bind(f.limit.unwrap_or(-1))
        .fetch_all(&self.pool)
        .await
        .q()?
        .iter()
        .map(summary_from_row)
        .collect()
    }

    async fn ticket_view(&self, id: TicketId) -> Result<Option<TicketView>> {
        let mut conn = self.pool.acquire().await.q()?;
        let Some(t) = sqlx::query(
            "SELECT t.id, t.subject, t.status, t.priority, u.email, o.slug, t.created_at, t.updated_at
             FROM tickets t JOIN users u ON u.id = t.requester_id LEFT JOIN orgs o ON o.id = t.org_id WHERE t.id = ?1",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .q()?
        else {
            return Ok(None);
        };
        let orgs = sqlx::query_scalar(
            "SELECT o.slug FROM ticket_orgs x JOIN orgs o ON o.id = x.org_id WHERE x.ticket_id = ?1 ORDER BY o.slug",
        )
        .bind(id)
        .fetch_all(&mut *conn)
        .await
        .q()?;
        let followers = sqlx::query(
            "SELECT u.email, f.source FROM followers f JOIN users u ON u.id = f.user_id WHERE f.ticket_id = ?1
             ORDER BY f.created_at, f.user_id",
        )
        .bind(id)
        .fetch_all(&mut *conn)
        .await
        .q()?
        .iter()
        .map(|r| Ok(FollowerView { email: r.try_get(0).q()?, source: r.parse_at(1)? }))
        .collect::<Result<Vec<_>>>()?;
        let mut comments = sqlx::query(
            "SELECT c.id, u.email, c.body, c.signature, c.internal, c.source, c.message_id, c.created_at
             FROM comments c JOIN users u ON u.id = c.author_id WHERE c.ticket_id = ?1 ORDER BY c.id",
        )
        .bind(id)
        .fetch_all(&mut *conn)
        .await
        .q()?
        .iter()
        .map(|r| {
            Ok(CommentView {
                id: r.try_get(0).q()?,
                author: r.try_get(1).q()?,
                body: r.try_get(2).q()?,
                signature: r.try_get(3).q()?,
                internal: r.try_get(4).q()?,
                source: r.try_get(5).q()?,
                message_id: r.try_get(6).q()?,
                created_at: r.try_get(7).q()?,
                attachments: Vec::new(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let attachments = sqlx::query(
            "SELECT a.id, a.comment_id, a.filename, a.content_type, a.size FROM attachments a
             JOIN comments c ON c.id = a.comment_id WHERE c.ticket_id = ?1 ORDER BY a.id",
        )
        .bind(id)
        .fetch_all(&mut *conn)
        .await
        .q()?;
        for a in &attachments {
            let comment_id: i64 = a.try_get(1).q()?;
            if let Some(c) = comments.iter_mut().find(|c| c.id == comment_id) {
                c.attachments.push(AttachmentView {
                    id: a.try_get(0).q()?,
                    filename: a.try_get(2).q()?,
                    content_type: a.try_get(3).q()?,
                    size: a.try_get(4).q()?,
                });
            }
        }
        let events = sqlx::query(
            "SELECT e.kind, u.email, e.data, e.created_at FROM events e LEFT JOIN users u ON u.id = e.actor_id
             WHERE e.ticket_id = ?1 ORDER BY e.id",
        )
        .bind(id)
        .fetch_all(&mut *conn)
        .await
        .q()?
        .iter()
        .map(|r| {
            let data: String = r.try_get(2).q()?;
            Ok(EventView {
                kind: r.try_get(0).q()?,
                actor: r.try_get(1).q()?,
                data: serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
                created_at: r.try_get(3).q()?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let status: Status = t.parse_at(2)?;
        Ok(Some(TicketView {
            id: t.try_get(0).q()?,
            subject: t.try_get(1).q()?,
            status,
            status_label: status.default_label().to_string(),
            priority: t.opt_parse_at(3)?,
            requester: t.try_get(4).q()?,
            org: t.try_get(5).q()?,
            orgs,
            followers,
            comments,
            events,
            created_at: t.try_get(6).q()?,
            updated_at: t.try_get(7).q()?,
        }))
    }

    async fn list_log(&self, f: &LogFilter) -> Result<Vec<LogRow>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {LOG_COLUMNS} FROM ingest_log
             WHERE (?1 IS NULL OR outcome = ?1) AND id > ?2 ORDER BY id LIMIT ?3"
        )))
        .bind(f.outcome.map(Outcome::as_str))
        .bind(f.after.unwrap_or(0))
        .bind(f.limit.unwrap_or(-1))
        .fetch_all(&self.pool)
        .await
        .q()?
        .iter()
        .map(log_from_row)
        .collect()
    }

    async fn log_row(&self, id: i64) -> Result<Option<LogRow>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {LOG_COLUMNS} FROM ingest_log WHERE id = ?1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .q()?
        .as_ref()
        .map(log_from_row)
        .transpose()
    }

    async fn blob(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        sqlx::query_scalar("SELECT data FROM blobs WHERE sha256 = ?1")
            .bind(sha256)
            .fetch_optional(&self.pool)
            .await
            .q()
    }

    async fn attachment(&self, id: i64) -> Result<Option<(TicketId, StoredFile)>> {
        let row = sqlx::query(
            "SELECT c.ticket_id, a.filename, a.content_type, b.data FROM attachments a
             JOIN comments c ON c.id = a.comment_id JOIN blobs b ON b.sha256 = a.blob_sha256 WHERE a.id = ?1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .q()?;
        row.map(|r| {
            Ok((
                r.try_get(0).q()?,
                StoredFile {
                    filename: r.try_get(1).q()?,
                    content_type: r.try_get(2).q()?,
                    data: r.try_get(3).q()?,
                },
            ))
        })
        .transpose()
    }

    async fn outbox_counts(&self) -> Result<Vec<(OutboxStatus, i64)>> {
        let rows = sqlx::query("SELECT status, count(*) FROM outbox GROUP BY status")
            .fetch_all(&self.pool)
            .await
            .q()?;
        let mut out = Vec::new();
        for r in rows {
            let status: String = r.try_get(0).q()?;
            if let Some(s) = OutboxStatus::parse(&status) {
                out.push((s, r.try_get(1).q()?));
            }
        }
        Ok(out)
    }

    async fn create_token(
        &self,
        user: UserId,
        sha256: &str,
        label: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<ApiToken> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO api_tokens (user_id, token_sha256, label, created_at) VALUES (?1, ?2, ?3, ?4) RETURNING id",
        )
        .bind(user)
        .bind(sha256)
        .bind(label)
        .bind(format_ts(now))
        .fetch_one(&self.pool)
        .await
        .q()?;
        self.tokens_where(None, Some(id))
            .await?
            .pop()
            .ok_or_else(|| StoreError::NotFound(format!("token {id}")))
    }

    async fn list_tokens(&self, user: Option<UserId>) -> Result<Vec<ApiToken>> {
        self.tokens_where(user, None).await
    }

    async fn revoke_token(&self, id: i64, now: OffsetDateTime) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(format_ts(now))
        .execute(&self.pool)
        .await
        .q()?;
        Ok(done.rows_affected() == 1)
    }

    async fn token_user(&self, sha256: &str, now: OffsetDateTime) -> Result<Option<User>> {
        let mut conn = self.pool.acquire().await.q()?;
        let Some((token_id, user_id)): Option<(i64, i64)> = sqlx::query_as(
            "SELECT id, user_id FROM api_tokens WHERE token_sha256 = ?1 AND revoked_at IS NULL",
        )
        .bind(sha256)
        .fetch_optional(&mut *conn)
        .await
        .q()?
        else {
            return Ok(None);
        };
        // At most one write a minute per token: a busy API client must not
        // turn every read into a disk sync.
        sqlx::query(
            "UPDATE api_tokens SET last_used_at = ?2 WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?3)",
        )
        .bind(token_id)
        .bind(format_ts(now))
        .bind(format_ts(now - Duration::from_secs(60)))
        .execute(&mut *conn)
        .await
        .q()?;
        sqlx::query(USER_BY_ID)
            .bind(user_id)
            .fetch_optional(&mut *conn)
            .await
            .q()?
            .map(|r| user_from_row(&r))
            .transpose()
    }

    async fn claim_outbox(
        &self,
        now: OffsetDateTime,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<OutboxRow>> {
        let now_text = format_ts(now);
        let until = format_ts(now + lease);
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE outbox SET status = 'sending', lease_until = ?1, attempts = attempts + 1
             WHERE id IN (SELECT id FROM outbox
                          WHERE (status IN ('queued', 'failed') AND next_attempt_at <= ?2)
                             OR (status = 'sending' AND lease_until <= ?2)
                          ORDER BY id LIMIT ?3)
             RETURNING {OUTBOX_COLUMNS}"
        )))
        .bind(until)
        .bind(now_text)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .q()?
        .iter()
        .map(outbox_from_row)
        .collect::<Result<Vec<_>>>()?;
        rows.sort_by_key(|r| r.id);
        Ok(rows)
    }

    async fn record_attempts(&self, attempts: &[Attempt], now: OffsetDateTime) -> Result<()> {
        if attempts.is_empty() {
            return Ok(());
        }
        let now = format_ts(now);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.q()?;
        for attempt in attempts {
            let (status, next, error) = match &attempt.result {
                AttemptResult::Sent => ("sent", None, None),
                AttemptResult::Retry { at, error } => {
                    ("failed", Some(format_ts(*at)), Some(error.as_str()))
                }
                AttemptResult::Dead { error, .. } => ("dead", None, Some(error.as_str())),
            };
            sqlx::query(
                "UPDATE outbox SET status = ?2, next_attempt_at = COALESCE(?3, next_attempt_at), lease_until = NULL,
                        last_error = ?4, sent_at = CASE WHEN ?2 = 'sent' THEN ?5 ELSE sent_at END
                 WHERE id = ?1",
            )
            .bind(attempt.id)
            .bind(status)
            .bind(next)
            .bind(error)
            .bind(&now)
            .execute(&mut *tx)
            .await
            .q()?;
            if let AttemptResult::Dead {
                bouncing: Some(email),
                ..
            } = &attempt.result
            {
                sqlx::query("UPDATE users SET bouncing = 1 WHERE email = ?1")
                    .bind(email.as_str())
                    .execute(&mut *tx)
                    .await
                    .q()?;
            }
        }
        tx.commit().await.q()
    }

    async fn comment_files(&self, comment: CommentId) -> Result<Vec<StoredFile>> {
        sqlx::query(
            "SELECT a.filename, a.content_type, b.data FROM attachments a JOIN blobs b ON b.sha256 = a.blob_sha256
             WHERE a.comment_id = ?1 ORDER BY a.id",
        )
        .bind(comment)
        .fetch_all(&self.pool)
        .await
        .q()?
        .iter()
        .map(|r| Ok(StoredFile { filename: r.try_get(0).q()?, content_type: r.try_get(1).q()?, data: r.try_get(2).q()? }))
        .collect()
    }

    async fn comment_body(&self, comment: CommentId) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT body FROM comments WHERE id = ?1")
            .bind(comment)
            .fetch_optional(&self.pool)
            .await
            .q()
    }

    async fn source_cursor(&self, source: &str) -> Result<Option<(i64, i64)>> {
        let row = sqlx::query("SELECT validity, last_uid FROM source_cursors WHERE source = ?1")
            .bind(source)
            .fetch_optional(&self.pool)
            .await
            .q()?;
        row.map(|r| Ok((r.try_get(0).q()?, r.try_get(1).q()?)))
            .transpose()
    }

    async fn list_outbox(&self) -> Result<Vec<OutboxRow>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox ORDER BY id"
        )))
        .fetch_all(&self.pool)
        .await
        .q()?
        .iter()
        .map(outbox_from_row)
        .collect()
    }

    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO mailbox_leases (name, holder, expires_at, acquired_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (name) DO UPDATE SET
                 holder = excluded.holder,
                 expires_at = excluded.expires_at,
                 acquired_at = CASE WHEN mailbox_leases.holder = excluded.holder
                                    THEN mailbox_leases.acquired_at ELSE excluded.acquired_at END
             WHERE mailbox_leases.expires_at <= ?4 OR mailbox_leases.holder = ?2",
        )
        .bind(name)
        .bind(holder)
        .bind(format_ts(now + ttl))
        .bind(format_ts(now))
        .execute(&self.pool)
        .await
        .q()?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM mailbox_leases WHERE name = ?1 AND holder = ?2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await
            .q()?;
        Ok(())
    }

    async fn lease_holder(&self, name: &str) -> Result<Option<(String, OffsetDateTime)>> {
        let row = sqlx::query("SELECT holder, expires_at FROM mailbox_leases WHERE name = ?1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .q()?;
        row.map(|r| {
            let expires: String = r.try_get(1).q()?;
            let expires = parse_ts(&expires)
                .ok_or_else(|| StoreError::Invalid(format!("lease expiry {expires}")))?;
            Ok((r.try_get(0).q()?, expires))
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
