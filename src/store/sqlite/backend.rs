//! SQLite under the shared `Store` (`store::read`): sqlx pool connections for
//! reads, the write connection for org and user records, whose mappers the
//! delivery transaction shares.

use sqlx::pool::PoolConnection;
use sqlx::query::Query;
use sqlx::sqlite::SqliteArguments;
use sqlx::{Sqlite, SqliteConnection, Transaction};

use super::*;
use crate::store::read::{Arg, Backend, Conn};

fn bind<'q>(
    q: Query<'q, Sqlite, SqliteArguments>,
    arg: &Arg<'q>,
) -> Query<'q, Sqlite, SqliteArguments> {
    match *arg {
        Arg::Int(v) => q.bind(v),
        Arg::Text(v) | Arg::Input(v) => q.bind(v),
        Arg::Bool(v) => q.bind(v),
        Arg::Time(v) => q.bind(v.map(format_ts)),
        Arg::Limit(v) => q.bind(v.unwrap_or(-1)),
    }
}

fn query<'q>(sql: &'static str, args: &[Arg<'q>]) -> Query<'q, Sqlite, SqliteArguments> {
    args.iter().fold(sqlx::query(sql), bind)
}

#[async_trait]
impl Conn for SqliteConnection {
    type Row = SqliteRow;

    async fn all(&mut self, sql: &'static str, args: &[Arg<'_>]) -> Result<Vec<SqliteRow>> {
        query(sql, args).fetch_all(self).await.q()
    }

    async fn opt(&mut self, sql: &'static str, args: &[Arg<'_>]) -> Result<Option<SqliteRow>> {
        query(sql, args).fetch_optional(self).await.q()
    }

    async fn run(&mut self, sql: &'static str, args: &[Arg<'_>]) -> Result<u64> {
        Ok(query(sql, args).execute(self).await.q()?.rows_affected())
    }
}

impl SqliteStore {
    /// Short admin reads on the write connection (org and user records share
    /// their mappers with the delivery transaction).
    async fn with_writer<T>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> Result<T>,
    ) -> Result<T> {
        let conn = self.writer.lock().await;
        may_block(|| f(&conn))
    }

    /// A write transaction on the write connection (see `begin_immediate`).
    async fn begin_write(&self) -> Result<SqliteTx> {
        let mut conn = match self.writer.clone().try_lock_owned() {
            Ok(conn) => conn,
            Err(_) => {
                let _counted = Counted::new(&self.waiting);
                self.writer.clone().lock_owned().await
            }
        };
        begin_immediate(&mut conn).await?;
        Ok(SqliteTx { conn, open: true })
    }

    /// Short admin writes: `f` in one write transaction on the write
    /// connection, committed when it succeeds (rolled back by `SqliteTx`'s
    /// drop otherwise).
    async fn in_write_tx<T>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> Result<T>,
    ) -> Result<T> {
        let tx = Box::new(self.begin_write().await?);
        let value = may_block(|| f(&tx.conn))?;
        tx.commit().await?;
        Ok(value)
    }
}

/// One in a count while it lives (also when the waiting future is dropped).
struct Counted<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> Counted<'a> {
    fn new(count: &'a std::sync::atomic::AtomicUsize) -> Self {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[async_trait]
impl Backend for SqliteStore {
    type Conn = SqliteConnection;
    type Pooled = PoolConnection<Sqlite>;
    type Write = Transaction<'static, Sqlite>;
    const CLAIM_OUTBOX: &'static str = sql::CLAIM_OUTBOX;
    const LOOKS_AHEAD: bool = false;
    const MIGRATIONS_TABLE_EXISTS: &'static str =
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'";

    async fn conn(&self) -> Result<Self::Pooled> {
        self.pool.acquire().await.q()
    }

    async fn write(&self) -> Result<Self::Write> {
        self.pool.begin_with("BEGIN IMMEDIATE").await.q()
    }

    async fn commit(write: Self::Write) -> Result<()> {
        write.commit().await.q()
    }

    async fn run_migrations(&self) -> Result<()> {
        Self::migrator().run(&self.pool).await?;
        Ok(())
    }

    fn migrator() -> sqlx::migrate::Migrator {
        sqlx::migrate!("./migrations/sqlite")
    }

    async fn backup(&self, path: &std::path::Path) -> Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let target = path
            .to_str()
            .ok_or_else(|| StoreError::Invalid(format!("backup path {path:?} is not UTF-8")))?;
        // Made empty first, readable by its owner only (it holds everyone's
        // mail); `create_new` refuses to overwrite an earlier backup.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| StoreError::Invalid(format!("cannot create {}: {e}", path.display())))?;
        // VACUUM INTO copies one read transaction's snapshot, so writers go
        // on meanwhile and the copy is consistent (https://sqlite.org/lang_vacuum.html#vacuuminto).
        let copied = sqlx::query("VACUUM INTO ?1")
            .bind(target)
            .execute(&self.pool)
            .await
            .q();
        if copied.is_err() {
            std::fs::remove_file(path).ok();
        }
        copied.map(|_| ())
    }

    async fn begin_tx(&self) -> Result<Box<dyn Tx>> {
        Ok(Box::new(self.begin_write().await?))
    }

    async fn create_org(&self, name: &str, slug: &str, domains: &[String]) -> Result<Org> {
        self.in_write_tx(|tx| {
            let id = insert_id(
                tx,
                "INSERT INTO orgs (slug, name, created_at) VALUES (?1, ?2, ?3) RETURNING id",
                rusqlite::params![slug, name, format_ts(OffsetDateTime::now_utc())],
            )?;
            for domain in domains {
                execute(
                    tx,
                    "INSERT INTO org_domains (domain, org_id) VALUES (?1, ?2)",
                    rusqlite::params![domain.to_ascii_lowercase(), id],
                )?;
            }
            org_details(tx, id, slug.to_string(), name.to_string())
        })
        .await
    }

    async fn all_orgs(&self) -> Result<Vec<Org>> {
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

    async fn org_named(&self, name_or_slug: &str) -> Result<Option<Org>> {
        self.with_writer(|conn| org_where(conn, name_or_slug.trim()))
            .await
    }

    async fn create_user(&self, user: &NewUser) -> Result<User> {
        self.in_write_tx(|conn| insert_user(conn, user, OffsetDateTime::now_utc()))
            .await
    }

    fn store_health(&self) -> &crate::health::StoreHealth {
        &self.health
    }
}
