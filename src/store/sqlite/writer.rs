//! The write connection, the settings every connection shares, the
//! checkpointer, and the statement helpers.

use super::*;

/// The one write connection, used on the calling task's thread.
///
/// A driver that runs each SQLite connection on a worker thread (sqlx) makes
/// every statement a cross-thread round trip (measured at 43–50 µs idle,
/// about 70 % of ingest CPU in thread wake-ups). SQLite allows one writer at a
/// time anyway, so every write takes this connection under an async mutex
/// and runs its statements directly, each prepared once and kept in its cache.
pub(super) type Writer = Arc<tokio::sync::Mutex<rusqlite::Connection>>;

/// How long a connection waits for another's lock (`busy_timeout`).
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Blobs above this size are written in pieces of this size (see `put_blob`).
pub(super) const BLOB_INLINE: usize = 1 << 20;

/// More than the number of distinct statements a delivery uses, so none is
/// ever prepared twice.
pub(super) const STATEMENT_CACHE: usize = 128;

/// Pages the write connection keeps in memory (KiB, as a negative
/// `cache_size`): enough for the indexes a batch touches, so they are not
/// re-read from the OS or spilled mid-transaction.
pub(super) const WRITER_CACHE_KIB: i64 = 8 * 1024;

/// The write connection checkpoints by itself only past this many WAL pages
/// (40 MB); normally the checkpointer thread has long since done it.
pub(super) const WRITER_AUTOCHECKPOINT_PAGES: i64 = 10_000;

/// How often the checkpointer thread looks at the WAL.
pub(super) const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// The write connection; the first one opened, so with `create` it makes the
/// file (and sets it to WAL).
pub(super) fn open_writer(path: &str, create: bool) -> Result<rusqlite::Connection> {
    let conn = open_rusqlite(path, create)?;
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
pub(super) fn spawn_checkpointer(
    path: &str,
    writer: std::sync::Weak<tokio::sync::Mutex<rusqlite::Connection>>,
) -> Result<()> {
    let conn = open_rusqlite(path, false)?;
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

/// A connection with the settings every connection to the file shares;
/// `create` makes the file if it is missing.
pub(super) fn open_rusqlite(path: &str, create: bool) -> Result<rusqlite::Connection> {
    use rusqlite::OpenFlags;
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = rusqlite::Connection::open_with_flags(path, flags).r()?;
    conn.busy_timeout(BUSY_TIMEOUT).r()?;
    // WAL is a property of the file (set by the first connection, kept for
    // good); synchronous and foreign_keys are per connection.
    conn.pragma_update(None, "journal_mode", "WAL").r()?;
    conn.pragma_update(None, "synchronous", "FULL").r()?;
    conn.pragma_update(None, "foreign_keys", "ON").r()?;
    // What is deleted is overwritten with zeros, free pages included
    // (https://sqlite.org/pragma.html#pragma_secure_delete): an erased
    // person's words and expired mail must not linger in the file.
    conn.pragma_update(None, "secure_delete", "ON").r()?;
    Ok(conn)
}

/// `BEGIN IMMEDIATE` on the write connection. While another connection holds
/// the write lock (another process: `ingest -` from the MTA, a second
/// `serve`, a CLI command), it is tried again after short sleeps
/// on the runtime, up to `BUSY_TIMEOUT`, instead of in SQLite's busy wait:
/// blocking this thread would, on a single-threaded runtime, also stop the
/// task that holds the lock from reaching its COMMIT, and both would wait
/// out the whole timeout.
pub(super) async fn begin_immediate(
    conn: &mut tokio::sync::OwnedMutexGuard<rusqlite::Connection>,
) -> Result<()> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    let mut pause = Duration::from_millis(1);
    conn.busy_timeout(Duration::ZERO).r()?;
    let begun = loop {
        match conn.execute_batch("BEGIN IMMEDIATE") {
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(25));
            }
            other => break other,
        }
    };
    conn.busy_timeout(BUSY_TIMEOUT).r()?;
    begun.r()
}

/// Runs a call that can take long: waiting out another process's write lock
/// (`busy_timeout`), writing a large blob, admin work. On the multi-threaded
/// runtime the worker hands its other tasks to another thread first.
pub(super) fn may_block<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

pub(super) fn map_rusqlite(e: rusqlite::Error) -> StoreError {
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

pub(super) trait R<T> {
    fn r(self) -> Result<T>;
}

impl<T> R<T> for rusqlite::Result<T> {
    fn r(self) -> Result<T> {
        self.map_err(map_rusqlite)
    }
}

/// Runs a prepared statement and maps each row; mapper errors and SQLite
/// errors come back alike.
pub(super) fn rows<T>(
    conn: &rusqlite::Connection,
    sql: &str,
    params: impl rusqlite::Params,
    map: impl Fn(&SqliteRow) -> Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql).r()?;
    let mut rows = stmt.query(params).r()?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().r()? {
        out.push(map(&SqliteRow::read(row)?)?);
    }
    Ok(out)
}

pub(super) fn row<T>(
    conn: &rusqlite::Connection,
    sql: &str,
    params: impl rusqlite::Params,
    map: impl Fn(&SqliteRow) -> Result<T>,
) -> Result<Option<T>> {
    let mut stmt = conn.prepare_cached(sql).r()?;
    let mut rows = stmt.query(params).r()?;
    rows.next()
        .r()?
        .map(|r| map(&SqliteRow::read(r)?))
        .transpose()
}

pub(super) fn execute(
    conn: &rusqlite::Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<usize> {
    conn.prepare_cached(sql).r()?.execute(params).r()
}

/// `INSERT … RETURNING id`.
pub(super) fn insert_id(
    conn: &rusqlite::Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<i64> {
    row(conn, sql, params, |r| r.i64_at(0))?
        .ok_or_else(|| StoreError::Invalid("insert returned no id".into()))
}
