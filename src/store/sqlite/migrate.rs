//! SQLite's migrations on the write connection: the files `sqlx::migrate!`
//! embeds (`Backend::migrator`), recorded in sqlx's `_sqlx_migrations` table
//! as its SQLite driver records them (same table, rows and checksums, same
//! checks), so a database either made opens with the other, and
//! `Store::pending_migrations` reads both.

use std::collections::HashMap;
use std::time::Instant;

use sqlx::migrate::{MigrateError, Migration};

use super::*;
use crate::store::read::Backend;

/// sqlx-sqlite's table as it creates it, so that a new database has the
/// same schema as one it made.
const CREATE_TABLE: &str = "
CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    success BOOLEAN NOT NULL,
    checksum BLOB NOT NULL,
    execution_time BIGINT NOT NULL
);
";

/// Applies the shipped migrations up to `target` (all with `None`), each
/// with its row in one transaction; refuses, as sqlx does, a database with a
/// failed migration, or one that applied a migration not shipped or shipped
/// since changed (its checksum).
pub(super) async fn run(writer: &Writer, target: Option<i64>) -> Result<()> {
    let migrator = SqliteStore::migrator();
    let applied: Vec<(i64, Vec<u8>)> = {
        let tx = SqliteTx::begin(writer).await?;
        tx.conn.execute_batch(CREATE_TABLE).r()?;
        let dirty = row(
            &tx.conn,
            "SELECT version FROM _sqlx_migrations WHERE success = false ORDER BY version LIMIT 1",
            [],
            |r| r.i64_at(0),
        )?;
        if let Some(version) = dirty {
            return Err(MigrateError::Dirty(version).into());
        }
        let applied = rows(
            &tx.conn,
            "SELECT version, checksum FROM _sqlx_migrations ORDER BY version",
            [],
            |r| Ok((r.i64_at(0)?, r.bytes_at(1)?)),
        )?;
        tx.finish()?;
        applied
    };
    if let Some(&(missing, _)) = applied.iter().find(|(v, _)| !migrator.version_exists(*v)) {
        return Err(MigrateError::VersionMissing(missing).into());
    }
    let applied: HashMap<i64, Vec<u8>> = applied.into_iter().collect();
    for migration in migrator.iter() {
        if target.is_some_and(|t| t < migration.version) {
            break;
        }
        if migration.migration_type.is_down_migration() {
            continue;
        }
        match applied.get(&migration.version) {
            Some(checksum) if **checksum != *migration.checksum => {
                return Err(MigrateError::VersionMismatch(migration.version).into());
            }
            Some(_) => {}
            None => apply(writer, migration).await?,
        }
    }
    Ok(())
}

const RECORD: &str =
    "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
     VALUES (?1, ?2, TRUE, ?3, -1)";

async fn apply(writer: &Writer, migration: &Migration) -> Result<()> {
    let started = Instant::now();
    let version = migration.version;
    if migration.no_tx {
        let conn = writer.clone().lock_owned().await;
        may_block(|| conn.execute_batch(migration.sql.as_str()))
            .map_err(|e| migration_error(version, e))?;
        record(&conn, migration)?;
    } else {
        let tx = SqliteTx::begin(writer).await?;
        // Another process may have applied it since the list was read.
        if row(
            &tx.conn,
            "SELECT version FROM _sqlx_migrations WHERE version = ?1",
            [version],
            |r| r.i64_at(0),
        )?
        .is_some()
        {
            return Ok(());
        }
        may_block(|| tx.conn.execute_batch(migration.sql.as_str()))
            .map_err(|e| migration_error(version, e))?;
        record(&tx.conn, migration)?;
        tx.finish()?;
    }
    // After the commit, as sqlx does: only for the record.
    let tx = SqliteTx::begin(writer).await?;
    execute(
        &tx.conn,
        "UPDATE _sqlx_migrations SET execution_time = ?1 WHERE version = ?2",
        rusqlite::params![started.elapsed().as_nanos() as i64, version],
    )?;
    tx.finish()
}

fn record(conn: &rusqlite::Connection, migration: &Migration) -> Result<()> {
    execute(
        conn,
        RECORD,
        rusqlite::params![
            migration.version,
            &*migration.description,
            &*migration.checksum
        ],
    )?;
    Ok(())
}

/// Names the migration that failed, unless the failure is transient.
fn migration_error(version: i64, e: rusqlite::Error) -> StoreError {
    match map_rusqlite(e) {
        StoreError::Database(e) => {
            StoreError::Database(format!("while executing migration {version}: {e}").into())
        }
        other => other,
    }
}
