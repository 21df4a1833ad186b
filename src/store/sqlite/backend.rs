//! SQLite under the shared `Store` (`store::read`): its statements on
//! `SqliteConn`, and org and user records on the write connection, whose
//! mappers the delivery transaction shares.

use super::*;
use crate::store::read::Backend;

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

    /// Short admin writes: `f` in one write transaction on the write
    /// connection, committed when it succeeds (rolled back by `SqliteTx`'s
    /// drop otherwise).
    async fn in_write_tx<T>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> Result<T>,
    ) -> Result<T> {
        let tx = SqliteTx::begin_counted(&self.writer, &self.waiting).await?;
        let value = may_block(|| f(&tx.conn))?;
        tx.finish()?;
        Ok(value)
    }
}

#[async_trait]
impl Backend for SqliteStore {
    type Conn = SqliteConn;
    type Pooled = Box<SqliteConn>;
    type Write = Box<SqliteConn>;
    const CLAIM_OUTBOX: &'static str = sql::CLAIM_OUTBOX;
    const LOOKS_AHEAD: bool = false;
    const MIGRATIONS_TABLE_EXISTS: &'static str =
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'";

    async fn conn(&self) -> Result<Self::Pooled> {
        Ok(Box::new(SqliteConn::new(self, None)))
    }

    async fn write(&self) -> Result<Self::Write> {
        let tx = SqliteTx::begin_counted(&self.writer, &self.waiting).await?;
        Ok(Box::new(SqliteConn::new(self, Some(tx))))
    }

    async fn commit(write: Self::Write) -> Result<()> {
        (*write).commit()
    }

    async fn run_migrations(&self) -> Result<()> {
        migrate::run(&self.writer, None).await
    }

    fn migrator() -> sqlx::migrate::Migrator {
        sqlx::migrate!("./migrations/sqlite")
    }

    async fn backup(&self, path: &std::path::Path) -> Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let target = path
            .to_str()
            .ok_or_else(|| StoreError::Invalid(format!("backup path {path:?} is not UTF-8")))?
            .to_string();
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
        // Its own connection on a blocking thread: it reads the whole file.
        let source = self.readers.path().to_string();
        let copied = tokio::task::spawn_blocking(move || {
            open_rusqlite(&source, false)?
                .execute("VACUUM INTO ?1", [target])
                .r()
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.into()))
        .and_then(|r| r);
        if copied.is_err() {
            std::fs::remove_file(path).ok();
        }
        copied.map(|_| ())
    }

    async fn begin_tx(&self) -> Result<Box<dyn Tx>> {
        Ok(Box::new(
            SqliteTx::begin_counted(&self.writer, &self.waiting).await?,
        ))
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

    async fn org_named(&self, name_or_slug: &str) -> Result<Option<Org>> {
        self.with_writer(|conn| org_where(conn, name_or_slug.trim()))
            .await
    }

    async fn create_user(&self, user: &NewUser) -> Result<User> {
        self.in_write_tx(|conn| insert_user(conn, user, OffsetDateTime::now_utc()))
            .await
    }

    /// A TRUNCATE checkpoint (https://sqlite.org/pragma.html#pragma_wal_checkpoint):
    /// the write-ahead log, which still holds pages as they were before the
    /// erasure, is copied into the file and emptied. False when a reader
    /// kept it from completing.
    async fn drop_old_pages(&self) -> Result<bool> {
        self.with_writer(|conn| {
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            })
            .r()
        })
        .await
        .map(|busy| busy == 0)
    }

    fn store_health(&self) -> &crate::health::StoreHealth {
        &self.health
    }
}
