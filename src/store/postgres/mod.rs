//! PostgreSQL implementation of `Store`: the shared store when several
//! instances run against one database.
//!
//! Isolation: READ COMMITTED (the server default) plus explicit row locks,
//! not SERIALIZABLE. The writes that race between instances are all guarded:
//! - the same message taken twice: the partial unique index on the ingest log's
//!   dedup key (accepted outcomes only; a refusal is simply recorded twice) makes the second insert wait for the first commit and then fail
//!   with a unique violation (`Conflict`); ingest retries and records `duplicate`;
//! - two replies to one ticket: `Tx::ticket_state` reads the ticket `FOR UPDATE`,
//!   so the second transaction waits and then decides on the committed state
//!   (status, followers, last Message-ID) instead of overwriting it;
//! - auto-registration, followers, refs, auto-reply claims, cursors, leases:
//!   single-statement upserts, atomic under READ COMMITTED;
//! - a batch (`Tx::look_ahead`) decides from what it read at its start: the
//!   tickets it reads are locked (in id order), the automatic-reply rows too,
//!   and what it could not lock (a new user, a first log row for a
//!   Message-ID, a first automatic reply to an address) fails its commit as
//!   a `Conflict` when another transaction wrote it meanwhile; ingest then
//!   records that batch one message at a time;
//! - outbox rows: claimed with `FOR UPDATE SKIP LOCKED` in one statement, so
//!   concurrent workers split the due rows and never block on each other.
//!
//! SERIALIZABLE would also be correct but turns every overlapping read into a
//! possible serialization failure, which the sources would retry after a
//! reconnect; the row lock makes the one real conflict wait instead.
//! Deadlocks and serialization failures map to `Unavailable` (retry later).
//!
//! Times are TIMESTAMPTZ, bound and read as `OffsetDateTime`; views format
//! them with `store::format_ts`, so JSON is identical on both backends.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgConnection, PgPool, Row, Transaction};
use time::OffsetDateTime;

use super::rows::{self, Cols};
use super::*;

mod backend;
mod batch;
mod lookahead;
mod tx;

use batch::*;
use lookahead::*;
pub use tx::PgTx;

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// What mail sources and the outbox last met writing here (`/readyz`).
    health: crate::health::StoreHealth,
}

/// SQLSTATE classes and codes after which the same work can succeed later:
/// serialization failure, deadlock, lock timeout, connection exceptions (08),
/// insufficient resources (53), operator intervention (57: shutdown, restart).
fn transient_sqlstate(code: &str) -> bool {
    matches!(code, "40001" | "40P01" | "55P03")
        || code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57")
}

fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) => {
            if db.is_unique_violation() {
                return StoreError::Conflict(db.message().to_string());
            }
            if db.code().is_some_and(|c| transient_sqlstate(&c)) {
                StoreError::Unavailable(e.into())
            } else {
                StoreError::Database(e.into())
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.into()),
        _ => StoreError::Database(e.into()),
    }
}

/// PostgreSQL text cannot hold NUL, which mail can: it becomes U+FFFD so such
/// a message still gets an outcome instead of failing its transaction forever.
fn clean(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(s)
    }
}

fn oclean(s: Option<&str>) -> Option<Cow<'_, str>> {
    s.map(clean)
}

trait Q<T> {
    fn q(self) -> Result<T>;
}

impl<T> Q<T> for std::result::Result<T, sqlx::Error> {
    fn q(self) -> Result<T> {
        self.map_err(map_err)
    }
}

fn email_col(row: &PgRow, col: &str) -> Result<EmailAddress> {
    let text: String = row.try_get(col).q()?;
    EmailAddress::parse(&text).map_err(|e| StoreError::Invalid(e.to_string()))
}

fn parse_col<T: FromStr>(row: &PgRow, col: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    let text: String = row.try_get(col).q()?;
    text.parse()
        .map_err(|e: T::Err| StoreError::Invalid(format!("{col}: {e}")))
}

fn opt_parse_col<T: FromStr>(row: &PgRow, col: &str) -> Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    let text: Option<String> = row.try_get(col).q()?;
    text.map(|t| {
        t.parse()
            .map_err(|e: T::Err| StoreError::Invalid(format!("{col}: {e}")))
    })
    .transpose()
}

fn opt_message_id(row: &PgRow, col: &str) -> Result<Option<MessageId>> {
    let text: Option<String> = row.try_get(col).q()?;
    Ok(text.and_then(|t| MessageId::parse(&t).ok()))
}

impl PgStore {
    /// Connects to a `postgres://` or `postgresql://` URL (the database must exist).
    pub async fn connect(url: &str) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Invalid(format!("database url: {e}")))?
            // Grown tables push generic plans past jit_above_cost: compiled per run, 13-17 ms.
            .options([("jit", "off")]);
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .q()?;
        warn_if_encrypted(&pool).await;
        Ok(Self {
            pool,
            health: Default::default(),
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// sqlx 0.9.0 leaves Nagle's algorithm on (it sets no TCP_NODELAY; sqlx issue
/// 4335, fixed after that release). Over TLS a request goes out as several
/// small writes, so each round trip can wait for the server's delayed ACK
/// (40 ms on Linux): ingest measured 47 msg/s over TLS against 998 without
/// on the same loopback server (README, "Running several instances"). Said
/// once at start, with what to do.
async fn warn_if_encrypted(pool: &PgPool) {
    let encrypted: std::result::Result<Option<bool>, _> =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_optional(pool)
            .await;
    if let Ok(Some(true)) = encrypted {
        tracing::warn!(
            "the PostgreSQL connection uses TLS, which with this sqlx release waits up to 40 ms per \
             round trip (Nagle's algorithm is left on): on loopback or a trusted network add \
             ?sslmode=disable to database.url, or connect through the Unix socket \
             (?host=/var/run/postgresql); keep TLS where the network is not trusted"
        );
    }
}

/// The `refs` column: the References ids, space-separated.
fn outbox_refs(row: &NewOutbox) -> Option<String> {
    (!row.references.is_empty()).then(|| {
        row.references
            .iter()
            .map(MessageId::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    })
}

// Times are TIMESTAMPTZ, shown as the `format_ts` text SQLite stores.
rows::cols_by! {
    PgRow, |row, i| row.try_get(i).q(),
    fn ts_at(&self, i: usize) -> Result<String> {
        self.time_at(i).map(format_ts)
    }
    fn opt_ts_at(&self, i: usize) -> Result<Option<String>> {
        let at: Option<OffsetDateTime> = self.try_get(i).q()?;
        Ok(at.map(format_ts))
    }
    fn time_at(&self, i: usize) -> Result<OffsetDateTime> {
        self.try_get(i).q()
    }
    fn opt_time_at(&self, i: usize) -> Result<Option<OffsetDateTime>> {
        self.try_get(i).q()
    }
}

async fn insert_user(conn: &mut PgConnection, user: &NewUser, now: OffsetDateTime) -> Result<User> {
    // The new row with its org's slug in the same round trip.
    let row = sqlx::query(
        "WITH u AS (INSERT INTO users (email, name, role, org_id, locale, created_at) VALUES ($1, $2, $3, $4, $5, $6)
                    RETURNING id, email, name, role, org_id, locale, bouncing, active)
         SELECT u.id, u.email, u.name, u.role, u.org_id, o.slug, u.locale, u.bouncing, u.active
         FROM u LEFT JOIN orgs o ON o.id = u.org_id",
    )
    .bind(user.email.as_str())
    .bind(clean(&user.name))
    .bind(user.role.as_str())
    .bind(user.org_id)
    .bind(&user.locale)
    .bind(now)
    .fetch_one(&mut *conn)
    .await
    .q()?;
    rows::user(&row)
}

async fn org_where(conn: &mut PgConnection, key: &str) -> Result<Option<Org>> {
    let row = sqlx::query(sql::ORG_WHERE)
        .bind(key)
        .bind(key.parse::<i64>().ok())
        .fetch_optional(&mut *conn)
        .await
        .q()?;
    match row {
        Some(r) => Ok(Some(
            org_details(conn, r.i64_at(0)?, r.text_at(1)?, r.text_at(2)?).await?,
        )),
        None => Ok(None),
    }
}

async fn org_details(
    conn: &mut PgConnection,
    id: OrgId,
    slug: String,
    name: String,
) -> Result<Org> {
    let domains = sqlx::query_scalar(sql::ORG_DOMAINS)
        .bind(id)
        .fetch_all(&mut *conn)
        .await
        .q()?;
    let leads = sqlx::query_scalar(sql::ORG_LEAD_EMAILS)
        .bind(id)
        .fetch_all(&mut *conn)
        .await
        .q()?;
    Ok(Org {
        id,
        slug,
        name,
        domains,
        leads,
    })
}
