//! The shared `Store`'s connections on SQLite (`read::Conn`): read
//! connections for SELECTs, the write connection for everything else, and
//! the rows both hand back.

use rusqlite::types::{FromSql, Value, ValueRef};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::*;
use crate::store::read::{Arg, Conn};

/// Read connections open at most at once: reads run on the calling thread,
/// so more than the runtime's threads would sit idle.
pub(super) const READERS: usize = 4;

/// How long a read waits for a free read connection.
const READER_WAIT: Duration = Duration::from_secs(30);

/// A row read out of its statement, so that it outlives it; every SQLite
/// mapper (`rows`, the delivery transaction's) reads these.
#[derive(Debug, Clone)]
pub struct SqliteRow(Vec<Value>);

impl SqliteRow {
    pub(super) fn read(row: &rusqlite::Row<'_>) -> Result<Self> {
        let n = row.as_ref().column_count();
        let mut values = Vec::with_capacity(n);
        for i in 0..n {
            values.push(match row.get_ref(i).r()? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(v) => Value::Integer(v),
                ValueRef::Real(v) => Value::Real(v),
                ValueRef::Text(t) => Value::Text(
                    std::str::from_utf8(t)
                        .map_err(|e| StoreError::Invalid(format!("column {i}: {e}")))?
                        .to_owned(),
                ),
                ValueRef::Blob(b) => Value::Blob(b.to_vec()),
            });
        }
        Ok(Self(values))
    }

    /// Column `i` as rusqlite converts it (`Row::get`'s rules).
    fn get<T: FromSql>(&self, i: usize) -> Result<T> {
        let value = self
            .0
            .get(i)
            .ok_or_else(|| StoreError::Invalid(format!("no column {i}")))?;
        T::column_result(ValueRef::from(value))
            .map_err(|e| StoreError::Database(format!("column {i}: {e}").into()))
    }
}

// Times stay the text SQLite stores (`Cols`' defaults).
rows::cols_by!(SqliteRow, |row, i| row.get(i));

/// Up to `READERS` read connections, opened when first needed and kept.
pub(super) struct Readers {
    path: String,
    idle: std::sync::Mutex<Vec<rusqlite::Connection>>,
    permits: Arc<Semaphore>,
}

impl Readers {
    pub(super) fn new(path: &str) -> Self {
        Self {
            path: path.to_string(),
            idle: Default::default(),
            permits: Arc::new(Semaphore::new(READERS)),
        }
    }

    pub(super) fn path(&self) -> &str {
        &self.path
    }

    async fn get(self: &Arc<Self>) -> Result<Reader> {
        let permit = tokio::time::timeout(READER_WAIT, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| StoreError::Unavailable("no free read connection within 30 s".into()))?
            .map_err(|e| StoreError::Unavailable(e.into()))?;
        let idle = self.idle.lock().expect("not poisoned").pop();
        let conn = match idle {
            Some(conn) => conn,
            None => open_reader(&self.path)?,
        };
        Ok(Reader {
            conn: Some(conn),
            readers: self.clone(),
            _permit: permit,
        })
    }
}

fn open_reader(path: &str) -> Result<rusqlite::Connection> {
    let conn = open_rusqlite(path, false)?;
    // A write routed here by mistake fails instead of waiting for the lock
    // on the runtime's thread.
    conn.pragma_update(None, "query_only", "ON").r()?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// A read connection, back to the idle list when dropped.
pub(super) struct Reader {
    conn: Option<rusqlite::Connection>,
    readers: Arc<Readers>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Reader {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.readers.idle.lock().expect("not poisoned").push(conn);
        }
    }
}

/// What a shared statement (`store::sql`) runs on. In a write transaction
/// (`Backend::write`) every statement runs in it. Outside one, a SELECT runs
/// on a read connection, taken at the first and kept for the next, and any
/// other statement in a write transaction of its own, so that nothing but
/// the write connection ever waits for the write lock.
pub struct SqliteConn {
    writer: Writer,
    readers: Arc<Readers>,
    reader: Option<Reader>,
    tx: Option<SqliteTx>,
}

impl SqliteConn {
    pub(super) fn new(store: &SqliteStore, tx: Option<SqliteTx>) -> Self {
        Self {
            writer: store.writer.clone(),
            readers: store.readers.clone(),
            reader: None,
            tx,
        }
    }

    /// Commits the write transaction this connection holds.
    pub(super) fn commit(mut self) -> Result<()> {
        match self.tx.take() {
            Some(tx) => tx.finish(),
            None => Ok(()),
        }
    }

    async fn on<T>(
        &mut self,
        sql: &'static str,
        f: impl FnOnce(&rusqlite::Connection) -> Result<T> + Send,
    ) -> Result<T> {
        if let Some(tx) = &self.tx {
            return f(&tx.conn);
        }
        if reads_only(sql) {
            if self.reader.is_none() {
                self.reader = Some(self.readers.get().await?);
            }
            let conn = self
                .reader
                .as_ref()
                .and_then(|r| r.conn.as_ref())
                .expect("taken above");
            return if reads_blobs(sql) {
                may_block(|| f(conn))
            } else {
                f(conn)
            };
        }
        // Given back first: no one holds a read connection while waiting
        // for the writer.
        self.reader = None;
        let tx = SqliteTx::begin(&self.writer).await?;
        let value = f(&tx.conn)?;
        tx.finish()?;
        Ok(value)
    }
}

/// A SELECT: the shared statements are plain SELECTs or writes, and
/// anything else goes to the write connection, which can run both.
fn reads_only(sql: &str) -> bool {
    sql.trim_start()
        .get(..6)
        .is_some_and(|w| w.eq_ignore_ascii_case("SELECT"))
}

/// The reads that copy stored mail (up to `[intake] max_message_size`) and
/// can take long enough to be worth handing the runtime's other tasks on.
fn reads_blobs(sql: &str) -> bool {
    [sql::BLOB, sql::ATTACHMENT, sql::COMMENT_FILES].contains(&sql)
}

/// `$1`…: SQLite numbers `$N` parameters in order of first use, so each is
/// bound by its name, as PostgreSQL binds it by its number.
const DOLLAR: [&str; 16] = [
    "$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8", "$9", "$10", "$11", "$12", "$13", "$14", "$15",
    "$16",
];

fn prepare<'c>(
    conn: &'c rusqlite::Connection,
    sql: &str,
    args: &[Arg<'_>],
) -> Result<rusqlite::CachedStatement<'c>> {
    let mut stmt = conn.prepare_cached(sql).r()?;
    if args.len() > DOLLAR.len() {
        return Err(StoreError::Invalid(format!("{} parameters", args.len())));
    }
    for (arg, name) in args.iter().zip(DOLLAR) {
        // A statement need not use every argument.
        let Some(i) = stmt.parameter_index(name).r()? else {
            continue;
        };
        match *arg {
            Arg::Int(v) => stmt.raw_bind_parameter(i, v),
            Arg::Text(v) | Arg::Input(v) => stmt.raw_bind_parameter(i, v),
            Arg::Bool(v) => stmt.raw_bind_parameter(i, v),
            Arg::Time(v) => stmt.raw_bind_parameter(i, v.map(format_ts)),
            Arg::Limit(v) => stmt.raw_bind_parameter(i, v.unwrap_or(-1)),
        }
        .r()?;
    }
    Ok(stmt)
}

/// Up to `limit` rows.
pub(super) fn query(
    conn: &rusqlite::Connection,
    sql: &str,
    args: &[Arg<'_>],
    limit: usize,
) -> Result<Vec<SqliteRow>> {
    let mut stmt = prepare(conn, sql, args)?;
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while out.len() < limit
        && let Some(row) = rows.next().r()?
    {
        out.push(SqliteRow::read(row)?);
    }
    Ok(out)
}

/// Runs a statement that returns no rows; the rows it changed.
pub(super) fn execute_args(
    conn: &rusqlite::Connection,
    sql: &str,
    args: &[Arg<'_>],
) -> Result<u64> {
    Ok(prepare(conn, sql, args)?.raw_execute().r()? as u64)
}

#[async_trait]
impl Conn for SqliteConn {
    type Row = SqliteRow;

    async fn all(&mut self, sql: &'static str, args: &[Arg<'_>]) -> Result<Vec<SqliteRow>> {
        self.on(sql, |c| query(c, sql, args, usize::MAX)).await
    }

    async fn opt(&mut self, sql: &'static str, args: &[Arg<'_>]) -> Result<Option<SqliteRow>> {
        Ok(self.on(sql, |c| query(c, sql, args, 1)).await?.pop())
    }

    async fn run(&mut self, sql: &'static str, args: &[Arg<'_>]) -> Result<u64> {
        self.on(sql, |c| {
            let mut stmt = prepare(c, sql, args)?;
            if stmt.column_count() == 0 {
                return Ok(stmt.raw_execute().r()? as u64);
            }
            // A SELECT (`sql::PING`): stepped through, nothing changed.
            let mut rows = stmt.raw_query();
            while rows.next().r()?.is_some() {}
            Ok(0)
        })
        .await
    }
}
