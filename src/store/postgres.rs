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

use super::*;

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
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

/// A TIMESTAMPTZ column as the text SQLite stores, so both backends show the same JSON.
fn ts_col(row: &PgRow, col: &str) -> Result<String> {
    let at: OffsetDateTime = row.try_get(col).q()?;
    Ok(format_ts(at))
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

const LOG_COLUMNS: &str = "id, message_id, origin, sender, subject, outcome, reason, thread_reason, ticket_id, \
     comment_id, size, received_at, superseded, replay_of, raw_sha256, notify";

fn log_from_row(r: &PgRow) -> Result<LogRow> {
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
        received_at: ts_col(r, "received_at")?,
        superseded: r.try_get(12).q()?,
        replay_of: r.try_get(13).q()?,
        raw_sha256: r.try_get(14).q()?,
        notify: r.try_get(15).q()?,
    })
}

fn opt_ts_col(row: &PgRow, col: &str) -> Result<Option<String>> {
    let at: Option<OffsetDateTime> = row.try_get(col).q()?;
    Ok(at.map(format_ts))
}

impl PgStore {
    async fn tokens_where(&self, user: Option<UserId>, id: Option<i64>) -> Result<Vec<ApiToken>> {
        sqlx::query(
            "SELECT t.id, u.email, t.label, t.created_at, t.last_used_at, t.revoked_at
             FROM api_tokens t JOIN users u ON u.id = t.user_id
             WHERE ($1::bigint IS NULL OR t.user_id = $1) AND ($2::bigint IS NULL OR t.id = $2) ORDER BY t.id",
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
                created_at: ts_col(r, "created_at")?,
                last_used_at: opt_ts_col(r, "last_used_at")?,
                revoked_at: opt_ts_col(r, "revoked_at")?,
            })
        })
        .collect()
    }

    /// Connects to a `postgres://` or `postgresql://` URL (the database must exist).
    pub async fn connect(url: &str) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Invalid(format!("database url: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .q()?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Writes whose result nobody reads, held back and sent together: one
/// statement per flush instead of one round trip each. A message's blob,
/// events, thread refs, org links, ticket touch and source cursor otherwise
/// cost a round trip apiece, and on a busy 2-core machine the round trip, not
/// the server's work, is what ingest waits for. In a look-ahead batch the
/// rows whose id is returned (comments, notifications, log rows, new users)
/// and the followers of new tickets are held too, so a batch's writes go out
/// in the commit's one statement.
///
/// Order is kept where it is visible: a statement that reads or writes a table
/// with held-back rows flushes first (`PgTx::flush_if`), and `commit` flushes
/// everything. Errors (a unique or foreign-key violation) surface from the
/// flush, still inside the transaction, so nothing commits past them.
#[derive(Default)]
struct Pending {
    /// `Table` bits with held-back rows.
    tables: u16,
    blob_sha: Vec<String>,
    blob_size: Vec<i64>,
    blob_data: Vec<Vec<u8>>,
    event_ticket: Vec<i64>,
    event_kind: Vec<&'static str>,
    event_actor: Vec<Option<i64>>,
    event_data: Vec<String>,
    event_at: Vec<OffsetDateTime>,
    /// One entry per Message-ID, merged as consecutive upserts would have
    /// left it (one statement cannot upsert the same row twice).
    refs: Vec<(String, i64, RefKind, OffsetDateTime)>,
    /// Position in `refs` by Message-ID: a batch holds hundreds.
    ref_index: HashMap<String, usize>,
    ticket_orgs: Vec<(i64, i64)>,
    /// `update_ticket` per ticket, merged: the later call wins, an absent
    /// Message-ID keeps the earlier one (as `COALESCE` would have).
    ticket_updates: Vec<(i64, Status, Option<MessageId>, OffsetDateTime)>,
    cursors: Vec<(String, i64, i64, OffsetDateTime)>,
    /// Rows whose id was drawn ahead (`PgTx::draw_id`), so nothing waits
    /// for their insert.
    comments: Vec<HeldComment>,
    outbox: Vec<HeldOutbox>,
    log: Vec<HeldLog>,
    /// Followers of tickets created in this transaction (`Known::fresh`).
    followers: Vec<(i64, i64, &'static str, OffsetDateTime)>,
    users: Vec<HeldUser>,
    /// Automatic-reply claims decided from `Known::auto_replies`: on rows
    /// this transaction has locked, and on addresses that had none.
    claims_seen: Vec<(String, OffsetDateTime)>,
    claims_new: Vec<(String, OffsetDateTime)>,
    /// Tickets created in a look-ahead batch, their ids from the sequence.
    new_tickets: Vec<HeldTicket>,
}

struct HeldTicket {
    id: i64,
    subject: String,
    status: Status,
    requester_id: i64,
    org_id: Option<i64>,
    root: Option<String>,
    last: Option<String>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

struct HeldUser {
    id: i64,
    email: String,
    name: String,
    role: &'static str,
    org_id: Option<i64>,
    locale: String,
    at: OffsetDateTime,
}

struct HeldComment {
    id: i64,
    ticket_id: i64,
    author_id: i64,
    body: String,
    signature: Option<String>,
    quoted: Option<String>,
    internal: bool,
    source: &'static str,
    message_id: Option<String>,
    ingest_id: Option<i64>,
    at: OffsetDateTime,
}

struct HeldOutbox {
    id: i64,
    ticket_id: Option<i64>,
    template: String,
    to: String,
    to_user_id: Option<i64>,
    reason: String,
    message_id: String,
    in_reply_to: Option<String>,
    refs: Option<String>,
    subject: String,
    context: String,
    at: OffsetDateTime,
    locale: String,
    comment_id: Option<i64>,
}

struct HeldLog {
    id: i64,
    dedup_key: String,
    message_id: Option<String>,
    origin: String,
    raw_sha256: String,
    size: i64,
    sender: Option<String>,
    subject: Option<String>,
    outcome: &'static str,
    reason: Option<String>,
    thread_reason: Option<String>,
    ticket_id: Option<i64>,
    comment_id: Option<i64>,
    duplicate_of: Option<i64>,
    notify: bool,
    at: OffsetDateTime,
    replay_of: Option<i64>,
}

/// One column of held rows, as the array `unnest` takes.
fn col<R, T>(rows: &[R], f: impl Fn(&R) -> T) -> Vec<T> {
    rows.iter().map(f).collect()
}

/// Tables `Pending` holds rows for, as bits of `Pending::tables`.
struct Table;

impl Table {
    const BLOBS: u16 = 1;
    const EVENTS: u16 = 2;
    const REFS: u16 = 4;
    const TICKET_ORGS: u16 = 8;
    const TICKETS: u16 = 16;
    const CURSORS: u16 = 32;
    const COMMENTS: u16 = 64;
    const OUTBOX: u16 = 128;
    const LOG: u16 = 256;
    const FOLLOWERS: u16 = 512;
    const USERS: u16 = 1024;
    const CLAIMS_SEEN: u16 = 2048;
    const CLAIMS_NEW: u16 = 4096;
    /// Tickets created in a look-ahead batch (`PgTx::insert_ticket`).
    const NEW_TICKETS: u16 = 8192;
    const ALL: u16 = 16383;
    /// What a statement on `tickets`, or on a row that refers to a ticket,
    /// must see written first.
    const ANY_TICKETS: u16 = Self::TICKETS | Self::NEW_TICKETS;
}

/// Blobs up to this size wait for the flush; larger ones (attachments) are
/// written at once rather than copied and held in memory.
const HELD_BLOB_MAX: usize = 64 * 1024;

/// The flush: one data-modifying CTE per table that holds rows, each fed by
/// `unnest` over parallel arrays, in `Table` bit order. Only those tables:
/// every CTE costs the server an executor node, relation and index opens
/// and its foreign-key trigger setup even when its arrays are empty, which
/// made a six-part flush the most expensive statement of a delivery.
/// Foreign keys are checked at the end of the statement, so the order of
/// the CTEs does not matter. `{}` marks a parameter, numbered when built.
const FLUSH_PARTS: [&str; 14] = [
    "held_blobs AS (INSERT INTO blobs (sha256, size, data)
     SELECT * FROM unnest({}::text[], {}::bigint[], {}::bytea[]) ON CONFLICT (sha256) DO NOTHING)",
    "held_events AS (INSERT INTO events (ticket_id, kind, actor_id, data, created_at)
     SELECT * FROM unnest({}::bigint[], {}::text[], {}::bigint[], {}::text[], {}::timestamptz[]))",
    "held_refs AS (INSERT INTO message_refs (message_id, ticket_id, kind, created_at)
     SELECT * FROM unnest({}::text[], {}::bigint[], {}::text[], {}::timestamptz[])
     ON CONFLICT (message_id) DO UPDATE SET kind = excluded.kind
     WHERE message_refs.kind = 'referenced' AND excluded.kind <> 'referenced')",
    "held_orgs AS (INSERT INTO ticket_orgs (ticket_id, org_id)
     SELECT * FROM unnest({}::bigint[], {}::bigint[]) ON CONFLICT DO NOTHING)",
    "held_tickets AS (UPDATE tickets SET status = u.status, last_message_id = COALESCE(u.last, tickets.last_message_id),
                                     updated_at = u.at
     FROM unnest({}::bigint[], {}::text[], {}::text[], {}::timestamptz[]) AS u (id, status, last, at)
     WHERE tickets.id = u.id)",
    "held_cursors AS (INSERT INTO source_cursors (source, validity, last_uid, updated_at)
     SELECT * FROM unnest({}::text[], {}::bigint[], {}::bigint[], {}::timestamptz[])
     ON CONFLICT (source) DO UPDATE SET
         last_uid = CASE WHEN source_cursors.validity = excluded.validity
                         THEN GREATEST(source_cursors.last_uid, excluded.last_uid) ELSE excluded.last_uid END,
         validity = excluded.validity, updated_at = excluded.updated_at)",
    "held_comments AS (INSERT INTO comments (id, ticket_id, author_id, body, signature, quoted, internal, source, message_id,
                                         ingest_id, created_at)
     SELECT * FROM unnest({}::bigint[], {}::bigint[], {}::bigint[], {}::text[], {}::text[], {}::text[], {}::bool[],
                          {}::text[], {}::text[], {}::bigint[], {}::timestamptz[]))",
    "held_outbox AS (INSERT INTO outbox (id, ticket_id, template, to_addr, to_user_id, reason, message_id, in_reply_to, refs,
                                     subject, context, status, attempts, next_attempt_at, created_at, locale, comment_id)
     SELECT r.id, r.ticket_id, r.template, r.to_addr, r.to_user_id, r.reason, r.message_id, r.in_reply_to, r.refs,
            r.subject, r.context, 'queued', 0, r.at, r.at, r.locale, r.comment_id
     FROM unnest({}::bigint[], {}::bigint[], {}::text[], {}::text[], {}::bigint[], {}::text[], {}::text[], {}::text[],
                 {}::text[], {}::text[], {}::text[], {}::timestamptz[], {}::text[], {}::bigint[])
          AS r (id, ticket_id, template, to_addr, to_user_id, reason, message_id, in_reply_to, refs, subject, context,
                at, locale, comment_id))",
    "held_log AS (INSERT INTO ingest_log (id, dedup_key, message_id, origin, raw_sha256, size, sender, subject, outcome,
                                      reason, thread_reason, ticket_id, comment_id, duplicate_of, notify, received_at,
                                      replay_of)
     SELECT * FROM unnest({}::bigint[], {}::text[], {}::text[], {}::text[], {}::text[], {}::bigint[], {}::text[],
                          {}::text[], {}::text[], {}::text[], {}::text[], {}::bigint[], {}::bigint[], {}::bigint[],
                          {}::bool[], {}::timestamptz[], {}::bigint[]))",
    "held_followers AS (INSERT INTO followers (ticket_id, user_id, source, created_at)
     SELECT * FROM unnest({}::bigint[], {}::bigint[], {}::text[], {}::timestamptz[]) ON CONFLICT DO NOTHING)",
    "held_users AS (INSERT INTO users (id, email, name, role, org_id, locale, created_at)
     SELECT * FROM unnest({}::bigint[], {}::text[], {}::text[], {}::text[], {}::bigint[], {}::text[], {}::timestamptz[]))",
    "held_claims_seen AS (UPDATE auto_replies SET last_at = c.at
     FROM unnest({}::text[], {}::timestamptz[]) AS c (address, at) WHERE auto_replies.address = c.address)",
    "held_claims_new AS (INSERT INTO auto_replies (address, last_at)
     SELECT * FROM unnest({}::text[], {}::timestamptz[]) ON CONFLICT (address) DO NOTHING RETURNING 1)",
    "held_new_tickets AS (INSERT INTO tickets (id, subject, status, requester_id, org_id, root_message_id, last_message_id,
                                           created_at, updated_at)
     SELECT * FROM unnest({}::bigint[], {}::text[], {}::text[], {}::bigint[], {}::bigint[], {}::text[], {}::text[],
                          {}::timestamptz[], {}::timestamptz[]))",
];

/// The ingest log insert, as the last part of a `WITH`.
const LOG_INSERT: &str = "log AS (INSERT INTO ingest_log (dedup_key, message_id, origin, raw_sha256, size, sender, subject, outcome,
                                    reason, thread_reason, ticket_id, comment_id, duplicate_of, notify, received_at, replay_of)
             VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}) RETURNING id)
             SELECT id FROM log";

/// A ticket insert, as the last part of a `WITH` (subject, status,
/// requester, org, root Message-ID twice, time twice).
const TICKET_INSERT: &str = "t AS (INSERT INTO tickets (subject, status, requester_id, org_id, root_message_id, last_message_id,
                                  created_at, updated_at)
             VALUES ({}, {}, {}, {}, {}, {}, {}, {}) RETURNING id)
             SELECT id FROM t";

/// What a flush statement ends in, after the held rows.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Tail {
    /// The count of new automatic-reply claims that took (see
    /// `PgTx::flush_if`), or 1 when it holds none.
    Count,
    /// `LOG_INSERT`, returning the log row's id.
    Log,
    /// `TICKET_INSERT`, returning the ticket's id.
    Ticket,
}

/// The statement that flushes `tables` (`Table` bits) and ends in `tail`,
/// whose parameters follow the held ones. Built once per combination and
/// kept: sqlx prepares each distinct text once per connection.
fn flush_sql(tables: u16, tail: Tail) -> &'static str {
    static BUILT: std::sync::LazyLock<std::sync::Mutex<HashMap<(u16, Tail), &'static str>>> =
        std::sync::LazyLock::new(Default::default);
    let tables = tables & Table::ALL;
    let mut built = BUILT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    built.entry((tables, tail)).or_insert_with(|| {
        let mut parts: Vec<&str> = (0..FLUSH_PARTS.len())
            .filter(|bit| tables & (1 << bit) != 0)
            .map(|bit| FLUSH_PARTS[bit])
            .collect();
        match tail {
            Tail::Log => parts.push(LOG_INSERT),
            Tail::Ticket => parts.push(TICKET_INSERT),
            Tail::Count => {}
        }
        let mut sql = String::from("WITH ");
        let mut n = 0;
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                sql.push_str(",\n ");
            }
            let mut pieces = part.split("{}");
            sql.push_str(pieces.next().unwrap_or_default());
            for piece in pieces {
                n += 1;
                sql.push_str(&format!("${n}"));
                sql.push_str(piece);
            }
        }
        if tail == Tail::Count {
            sql.push_str(if tables & Table::CLAIMS_NEW != 0 {
                " SELECT count(*) FROM held_claims_new"
            } else {
                " SELECT 1::bigint"
            });
        }
        // A few dozen combinations occur; each is kept for the process.
        Box::leak(sql.into_boxed_str())
    })
}

impl Pending {
    fn put_blob(&mut self, sha256: &str, data: &[u8]) {
        self.tables |= Table::BLOBS;
        self.blob_sha.push(sha256.to_string());
        self.blob_size.push(data.len() as i64);
        self.blob_data.push(data.to_vec());
    }

    fn event(&mut self, e: &NewEvent) {
        self.tables |= Table::EVENTS;
        self.event_ticket.push(e.ticket_id);
        self.event_kind.push(e.kind);
        self.event_actor.push(e.actor_id);
        self.event_data.push(e.data.to_string());
        self.event_at.push(e.now);
    }

    /// Same result as upserting one by one: the first insert of an id wins
    /// (ticket, time); a `referenced` entry is upgraded by the first later
    /// kind that is not `referenced`, and then stays.
    fn remember_ref(&mut self, id: &str, ticket: i64, kind: RefKind, now: OffsetDateTime) {
        self.tables |= Table::REFS;
        match self.ref_index.get(id) {
            Some(&at) => {
                let held = &mut self.refs[at];
                if held.2 == RefKind::Referenced && kind != RefKind::Referenced {
                    held.2 = kind;
                }
            }
            None => {
                self.ref_index.insert(id.to_string(), self.refs.len());
                self.refs.push((id.to_string(), ticket, kind, now));
            }
        }
    }

    /// The ticket a held ref gives `id`.
    fn held_ref(&self, id: &str) -> Option<i64> {
        self.ref_index.get(id).map(|&at| self.refs[at].1)
    }

    fn comment(&mut self, id: i64, c: &NewComment<'_>) {
        self.tables |= Table::COMMENTS;
        self.comments.push(HeldComment {
            id,
            ticket_id: c.ticket_id,
            author_id: c.author_id,
            body: clean(c.body).into_owned(),
            signature: oclean(c.signature).map(Cow::into_owned),
            quoted: oclean(c.quoted).map(Cow::into_owned),
            internal: c.internal,
            source: c.source.as_str(),
            message_id: c.message_id.as_ref().map(|m| m.as_str().to_string()),
            ingest_id: c.ingest_id,
            at: c.now,
        });
    }

    fn outbox(&mut self, id: i64, row: &NewOutbox) {
        self.tables |= Table::OUTBOX;
        self.outbox.push(HeldOutbox {
            id,
            ticket_id: row.ticket_id,
            template: row.template.clone(),
            to: row.to.as_str().to_string(),
            to_user_id: row.to_user_id,
            reason: clean(&row.reason).into_owned(),
            message_id: row.message_id.as_str().to_string(),
            in_reply_to: row.in_reply_to.as_ref().map(|m| m.as_str().to_string()),
            refs: outbox_refs(row),
            subject: clean(&row.subject).into_owned(),
            context: row.context.to_string(),
            at: row.now,
            locale: row.locale.clone(),
            comment_id: row.comment_id,
        });
    }

    fn log(&mut self, id: i64, e: &NewLogEntry) {
        self.tables |= Table::LOG;
        let owned = |s: Option<&str>| oclean(s).map(Cow::into_owned);
        self.log.push(HeldLog {
            id,
            dedup_key: e.dedup_key.clone(),
            message_id: e.message_id.as_ref().map(|m| m.as_str().to_string()),
            origin: clean(&e.origin).into_owned(),
            raw_sha256: e.raw_sha256.clone(),
            size: e.size as i64,
            sender: owned(e.sender.as_deref()),
            subject: owned(e.subject.as_deref()),
            outcome: e.outcome.as_str(),
            reason: owned(e.reason.as_deref()),
            thread_reason: owned(e.thread_reason.as_deref()),
            ticket_id: e.ticket_id,
            comment_id: e.comment_id,
            duplicate_of: e.duplicate_of,
            notify: e.notify,
            at: e.now,
            replay_of: e.replay_of,
        });
    }

    fn new_ticket(&mut self, id: i64, t: &NewTicket) {
        self.tables |= Table::NEW_TICKETS;
        let root = t.root_message_id.as_ref().map(|m| m.as_str().to_string());
        self.new_tickets.push(HeldTicket {
            id,
            subject: clean(&t.subject).into_owned(),
            status: t.status,
            requester_id: t.requester_id,
            org_id: t.org_id,
            last: root.clone(),
            root,
            created_at: t.now,
            updated_at: t.now,
        });
    }

    fn attach_org(&mut self, ticket: i64, org: i64) {
        self.tables |= Table::TICKET_ORGS;
        if !self.ticket_orgs.contains(&(ticket, org)) {
            self.ticket_orgs.push((ticket, org));
        }
    }

    fn update_ticket(
        &mut self,
        ticket: i64,
        status: Status,
        last: Option<&MessageId>,
        now: OffsetDateTime,
    ) {
        // A ticket not written yet is written as it ends up.
        if let Some(held) = self.new_tickets.iter_mut().find(|t| t.id == ticket) {
            held.status = status;
            if let Some(last) = last {
                held.last = Some(last.as_str().to_string());
            }
            held.updated_at = now;
            return;
        }
        self.tables |= Table::TICKETS;
        match self.ticket_updates.iter_mut().find(|u| u.0 == ticket) {
            Some(held) => {
                held.1 = status;
                if let Some(last) = last {
                    held.2 = Some(last.clone());
                }
                held.3 = now;
            }
            None => self
                .ticket_updates
                .push((ticket, status, last.cloned(), now)),
        }
    }

    /// Lays this ticket's held update and org links over `state` read from
    /// the table: what reading it after a flush would have returned (the
    /// update's `COALESCE` keeps the stored last Message-ID when it has none;
    /// orgs stay in id order, each once).
    fn overlay(&self, state: &mut TicketState) {
        if let Some((_, status, last, _)) = self.ticket_updates.iter().find(|u| u.0 == state.id) {
            state.status = *status;
            if let Some(last) = last {
                state.last_message_id = Some(last.clone());
            }
        }
        let before = state.orgs.len();
        state.orgs.extend(
            self.ticket_orgs
                .iter()
                .filter(|(ticket, _)| *ticket == state.id)
                .map(|(_, org)| *org),
        );
        if state.orgs.len() != before {
            state.orgs.sort_unstable();
            state.orgs.dedup();
        }
    }

    /// False when a held cursor of the same source has another UIDVALIDITY:
    /// merging across a validity change is not what two upserts do, so the
    /// caller flushes first.
    fn advance_cursor(
        &mut self,
        source: &str,
        validity: i64,
        uid: i64,
        now: OffsetDateTime,
    ) -> bool {
        match self.cursors.iter_mut().find(|c| c.0 == source) {
            Some(held) if held.1 != validity => return false,
            Some(held) => {
                held.2 = held.2.max(uid);
                held.3 = now;
            }
            None => self.cursors.push((source.to_string(), validity, uid, now)),
        }
        self.tables |= Table::CURSORS;
        true
    }

    /// Binds the held rows as the parameters of `flush_sql(tables, _)`, in
    /// the same table order, leaving `self` empty.
    fn bind<'q>(
        &mut self,
        mut q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        let p = std::mem::take(self);
        let (ref_ids, ref_tickets, ref_kinds, ref_at) = p.refs.into_iter().fold(
            (Vec::new(), Vec::new(), Vec::new(), Vec::new()),
            |mut v, (id, t, k, at)| {
                v.0.push(id);
                v.1.push(t);
                v.2.push(k.as_str());
                v.3.push(at);
                v
            },
        );
        let (org_tickets, org_ids): (Vec<i64>, Vec<i64>) = p.ticket_orgs.into_iter().unzip();
        let (upd_ids, upd_status, upd_last, upd_at) = p.ticket_updates.into_iter().fold(
            (Vec::new(), Vec::new(), Vec::new(), Vec::new()),
            |mut v, (id, s, last, at)| {
                v.0.push(id);
                v.1.push(s.as_str());
                v.2.push(last.map(|m| m.as_str().to_string()));
                v.3.push(at);
                v
            },
        );
        let (cur_source, cur_validity, cur_uid, cur_at) = p.cursors.into_iter().fold(
            (Vec::new(), Vec::new(), Vec::new(), Vec::new()),
            |mut v, (s, validity, uid, at)| {
                v.0.push(s);
                v.1.push(validity);
                v.2.push(uid);
                v.3.push(at);
                v
            },
        );
        if p.tables & Table::BLOBS != 0 {
            q = q.bind(p.blob_sha).bind(p.blob_size).bind(p.blob_data);
        }
        if p.tables & Table::EVENTS != 0 {
            q = q
                .bind(p.event_ticket)
                .bind(p.event_kind)
                .bind(p.event_actor)
                .bind(p.event_data)
                .bind(p.event_at);
        }
        if p.tables & Table::REFS != 0 {
            q = q
                .bind(ref_ids)
                .bind(ref_tickets)
                .bind(ref_kinds)
                .bind(ref_at);
        }
        if p.tables & Table::TICKET_ORGS != 0 {
            q = q.bind(org_tickets).bind(org_ids);
        }
        if p.tables & Table::TICKETS != 0 {
            q = q.bind(upd_ids).bind(upd_status).bind(upd_last).bind(upd_at);
        }
        if p.tables & Table::CURSORS != 0 {
            q = q
                .bind(cur_source)
                .bind(cur_validity)
                .bind(cur_uid)
                .bind(cur_at);
        }
        if p.tables & Table::COMMENTS != 0 {
            let c = &p.comments;
            q = q
                .bind(col(c, |r| r.id))
                .bind(col(c, |r| r.ticket_id))
                .bind(col(c, |r| r.author_id))
                .bind(col(c, |r| r.body.clone()))
                .bind(col(c, |r| r.signature.clone()))
                .bind(col(c, |r| r.quoted.clone()))
                .bind(col(c, |r| r.internal))
                .bind(col(c, |r| r.source))
                .bind(col(c, |r| r.message_id.clone()))
                .bind(col(c, |r| r.ingest_id))
                .bind(col(c, |r| r.at));
        }
        if p.tables & Table::OUTBOX != 0 {
            let o = &p.outbox;
            q = q
                .bind(col(o, |r| r.id))
                .bind(col(o, |r| r.ticket_id))
                .bind(col(o, |r| r.template.clone()))
                .bind(col(o, |r| r.to.clone()))
                .bind(col(o, |r| r.to_user_id))
                .bind(col(o, |r| r.reason.clone()))
                .bind(col(o, |r| r.message_id.clone()))
                .bind(col(o, |r| r.in_reply_to.clone()))
                .bind(col(o, |r| r.refs.clone()))
                .bind(col(o, |r| r.subject.clone()))
                .bind(col(o, |r| r.context.clone()))
                .bind(col(o, |r| r.at))
                .bind(col(o, |r| r.locale.clone()))
                .bind(col(o, |r| r.comment_id));
        }
        if p.tables & Table::LOG != 0 {
            let l = &p.log;
            q = q
                .bind(col(l, |r| r.id))
                .bind(col(l, |r| r.dedup_key.clone()))
                .bind(col(l, |r| r.message_id.clone()))
                .bind(col(l, |r| r.origin.clone()))
                .bind(col(l, |r| r.raw_sha256.clone()))
                .bind(col(l, |r| r.size))
                .bind(col(l, |r| r.sender.clone()))
                .bind(col(l, |r| r.subject.clone()))
                .bind(col(l, |r| r.outcome))
                .bind(col(l, |r| r.reason.clone()))
                .bind(col(l, |r| r.thread_reason.clone()))
                .bind(col(l, |r| r.ticket_id))
                .bind(col(l, |r| r.comment_id))
                .bind(col(l, |r| r.duplicate_of))
                .bind(col(l, |r| r.notify))
                .bind(col(l, |r| r.at))
                .bind(col(l, |r| r.replay_of));
        }
        if p.tables & Table::FOLLOWERS != 0 {
            let f = &p.followers;
            q = q
                .bind(col(f, |r| r.0))
                .bind(col(f, |r| r.1))
                .bind(col(f, |r| r.2))
                .bind(col(f, |r| r.3));
        }
        if p.tables & Table::USERS != 0 {
            let u = &p.users;
            q = q
                .bind(col(u, |r| r.id))
                .bind(col(u, |r| r.email.clone()))
                .bind(col(u, |r| r.name.clone()))
                .bind(col(u, |r| r.role))
                .bind(col(u, |r| r.org_id))
                .bind(col(u, |r| r.locale.clone()))
                .bind(col(u, |r| r.at));
        }
        if p.tables & Table::CLAIMS_SEEN != 0 {
            let c = &p.claims_seen;
            q = q.bind(col(c, |r| r.0.clone())).bind(col(c, |r| r.1));
        }
        if p.tables & Table::CLAIMS_NEW != 0 {
            let c = &p.claims_new;
            q = q.bind(col(c, |r| r.0.clone())).bind(col(c, |r| r.1));
        }
        if p.tables & Table::NEW_TICKETS != 0 {
            let t = &p.new_tickets;
            q = q
                .bind(col(t, |r| r.id))
                .bind(col(t, |r| r.subject.clone()))
                .bind(col(t, |r| r.status.as_str()))
                .bind(col(t, |r| r.requester_id))
                .bind(col(t, |r| r.org_id))
                .bind(col(t, |r| r.root.clone()))
                .bind(col(t, |r| r.last.clone()))
                .bind(col(t, |r| r.created_at))
                .bind(col(t, |r| r.updated_at));
        }
        q
    }
}

/// The `keys` that `known` has no answer for yet, each once, sorted: what a
/// look-ahead read still has to ask the server.
fn unasked<'k, V>(keys: &[&'k str], known: &HashMap<String, V>) -> Vec<&'k str> {
    let mut keys: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|k| !known.contains_key(*k))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// A logged delivery from `id, outcome, ticket_id, comment_id` at column `first`.
fn logged_from_row(r: &PgRow, first: usize) -> Result<LoggedMessage> {
    Ok(LoggedMessage {
        id: r.try_get(first).q()?,
        outcome: parse_col(r, "outcome")?,
        ticket_id: r.try_get(first + 2).q()?,
        comment_id: r.try_get(first + 3).q()?,
    })
}

async fn user_where(
    conn: &mut PgConnection,
    email: Option<&EmailAddress>,
    id: Option<UserId>,
) -> Result<Option<User>> {
    let row = sqlx::query(
        "SELECT u.id, u.email, u.name, u.role, u.org_id, o.slug, u.locale, u.bouncing
         FROM users u LEFT JOIN orgs o ON o.id = u.org_id
         WHERE u.email = $1 OR u.id = $2",
    )
    .bind(email.map(|e| e.as_str().to_string()))
    .bind(id)
    .fetch_optional(conn)
    .await
    .q()?;
    row.map(|r| user_from_row(&r)).transpose()
}

pub struct PgTx {
    tx: Transaction<'static, sqlx::Postgres>,
    /// Writes held back until a statement needs them (see `Pending`).
    held: Pending,
    /// Tickets whose row this transaction has locked, or created (invisible
    /// to others until commit): reading their state again needs no lock
    /// statement first, so it is one round trip.
    locked: HashSet<TicketId>,
    /// Answers about orgs, which no `Tx` method changes, asked once per
    /// transaction: a batch of mail from one org asks once, not per message.
    domain_orgs: HashMap<String, Option<OrgId>>,
    slugs: HashMap<OrgId, String>,
    leads: HashMap<OrgId, Vec<User>>,
    known: Known,
}

/// What this transaction has read, kept current by its own writes, so a
/// batch reads each thing once (most of it in `look_ahead`) instead of once
/// per message. Rows other instances commit meanwhile are not seen; the ones
/// that matter cannot be missed: a second log row for a dedup key, or a
/// second user for an address, fails the commit on a unique index
/// (`Conflict`, and ingest records the batch one by one), and the tickets
/// read here are locked.
#[derive(Default)]
struct Known {
    /// Dedup key: its logged accepted delivery, or `None` when there is none.
    logged: HashMap<String, Option<LoggedMessage>>,
    /// Email address: its user, or `None`.
    users: HashMap<String, Option<User>>,
    /// Message-ID: its ticket as the table had it (held refs are in `Pending`).
    refs: HashMap<String, Option<TicketId>>,
    /// Locked tickets, as of this transaction's writes.
    states: HashMap<TicketId, TicketState>,
    /// Address: when its last automatic reply went out, for the rows
    /// `look_ahead` locked, or `None` where it found no row.
    auto_replies: HashMap<String, Option<OffsetDateTime>>,
    /// Senders `look_ahead` found unregistered: how many user ids to draw.
    unknown_senders: usize,
    /// Tickets created in this transaction, whose followers are all known:
    /// when each was added, in the order of their `followers` (the table's
    /// order: by time, then user id).
    fresh: HashMap<TicketId, Vec<OffsetDateTime>>,
    /// Deliveries announced by `look_ahead` and not logged yet: how many ids
    /// to draw at a time. Zero outside a look-ahead batch, where rows are
    /// inserted at once instead (no gaps in ids for one delivery).
    deliveries_left: usize,
    /// Ids drawn ahead per `Seq`, the next one last.
    ids: [Vec<i64>; 4],
}

/// Tables whose ids `PgTx::draw_id` draws ahead.
#[derive(Clone, Copy)]
enum Seq {
    Log,
    Comments,
    Outbox,
    Users,
}

impl Seq {
    fn table(self) -> &'static str {
        match self {
            Seq::Log => "ingest_log",
            Seq::Comments => "comments",
            Seq::Outbox => "outbox",
            Seq::Users => "users",
        }
    }
}

impl PgTx {
    fn new(tx: Transaction<'static, sqlx::Postgres>) -> Self {
        Self {
            tx,
            held: Pending::default(),
            locked: HashSet::new(),
            domain_orgs: HashMap::new(),
            slugs: HashMap::new(),
            leads: HashMap::new(),
            known: Known::default(),
        }
    }

    /// An id for a row of `seq`'s table, drawn ahead from its sequence (one
    /// statement per block of the batch's remaining deliveries) so the row
    /// can be held for the flush; `None` outside a look-ahead batch. A block
    /// dies with the transaction, so ids order as before: by when a
    /// transaction drew them, not when it committed.
    async fn draw_id(&mut self, seq: Seq) -> Result<Option<i64>> {
        let pool = &mut self.known.ids[seq as usize];
        let n = match seq {
            _ if !pool.is_empty() => 0,
            // At most one per unregistered sender, drawn once.
            Seq::Users => std::mem::take(&mut self.known.unknown_senders),
            _ => self.known.deliveries_left,
        };
        if n > 0 {
            let mut ids: Vec<i64> = sqlx::query_scalar(
                "SELECT nextval(pg_get_serial_sequence($1, 'id')) FROM generate_series(1, $2)",
            )
            .bind(seq.table())
            .bind(i32::try_from(n).unwrap_or(i32::MAX))
            .fetch_all(&mut *self.tx)
            .await
            .q()?;
            ids.reverse();
            *pool = ids;
        }
        Ok(pool.pop())
    }

    /// Logs a delivery outside a look-ahead batch: the held-back writes ride
    /// along in the same statement (the log row's blob among them) instead
    /// of costing a flush of their own.
    async fn log_now(&mut self, e: &NewLogEntry) -> Result<i64> {
        // Claims need their count checked (`flush_if`).
        self.flush_if(Table::CLAIMS_NEW).await?;
        self.settle_refs();
        let sql = flush_sql(self.held.tables, Tail::Log);
        let q = self.held.bind(sqlx::query(sqlx::AssertSqlSafe(sql)));
        q.bind(&e.dedup_key)
            .bind(e.message_id.as_ref().map(MessageId::as_str))
            .bind(clean(&e.origin))
            .bind(&e.raw_sha256)
            .bind(e.size as i64)
            .bind(oclean(e.sender.as_deref()))
            .bind(oclean(e.subject.as_deref()))
            .bind(e.outcome.as_str())
            .bind(oclean(e.reason.as_deref()))
            .bind(oclean(e.thread_reason.as_deref()))
            .bind(e.ticket_id)
            .bind(e.comment_id)
            .bind(e.duplicate_of)
            .bind(e.notify)
            .bind(e.now)
            .bind(e.replay_of)
            .fetch_one(&mut *self.tx)
            .await
            .q()?
            .try_get(0)
            .q()
    }

    /// Locks `ids` (in id order, so two batches cannot deadlock on them) and
    /// reads their states into `known.states`.
    async fn lock_and_read(&mut self, ids: &[TicketId]) -> Result<()> {
        let mut ids: Vec<TicketId> = ids
            .iter()
            .copied()
            .filter(|id| !self.known.states.contains_key(id))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let lock: Vec<TicketId> = ids
            .iter()
            .copied()
            .filter(|id| !self.locked.contains(id))
            .collect();
        if !lock.is_empty() {
            // A separate statement before the read, as in `ticket_state`.
            let locked: Vec<TicketId> = sqlx::query_scalar(
                "SELECT id FROM tickets WHERE id = ANY($1) ORDER BY id FOR UPDATE",
            )
            .bind(&lock)
            .fetch_all(&mut *self.tx)
            .await
            .q()?;
            self.locked.extend(locked);
        }
        ids.retain(|id| self.locked.contains(id));
        if ids.is_empty() {
            return Ok(());
        }
        self.flush_if(Table::FOLLOWERS | Table::USERS | Table::NEW_TICKETS)
            .await?;
        // Each ticket, its orgs and one row per follower, in one round trip.
        // Every step is an index probe per ticket, whatever the statistics:
        // the generic plan (see `begin`) of plain joins over `t.id = ANY($1)`,
        // made while the tables were young and not yet analyzed, hashed a
        // sequential scan of all followers for every batch. `LIMIT 1` and
        // `OFFSET 0` keep the lateral subqueries parameterized.
        let rows = sqlx::query(
            "SELECT t.id, t.subject, t.status, t.priority, t.requester_id, t.root_message_id, t.last_message_id,
                    ARRAY(SELECT org_id FROM ticket_orgs WHERE ticket_id = t.id ORDER BY org_id) AS orgs,
                    f.user_id, u.email, u.name, u.locale, u.role, f.source, u.bouncing
             FROM unnest($1::bigint[]) AS k(id)
             CROSS JOIN LATERAL (SELECT * FROM tickets WHERE id = k.id LIMIT 1) t
             LEFT JOIN LATERAL (SELECT user_id, source, created_at FROM followers
                                WHERE ticket_id = t.id OFFSET 0) f ON true
             LEFT JOIN LATERAL (SELECT * FROM users WHERE id = f.user_id LIMIT 1) u ON true
             ORDER BY t.id, f.created_at, f.user_id",
        )
        .bind(&ids)
        .fetch_all(&mut *self.tx)
        .await
        .q()?;
        let mut at = 0;
        while let Some(r) = rows.get(at) {
            let id: TicketId = r.try_get(0).q()?;
            let mut followers = Vec::new();
            while let Some(f) = rows.get(at) {
                if f.try_get::<TicketId, _>(0).q()? != id {
                    break;
                }
                at += 1;
                let Some(user) = f.try_get::<Option<i64>, _>("user_id").q()? else {
                    continue;
                };
                followers.push(Follower {
                    user,
                    email: email_col(f, "email")?,
                    name: f.try_get("name").q()?,
                    locale: f.try_get("locale").q()?,
                    role: parse_col(f, "role")?,
                    source: parse_col(f, "source")?,
                    bouncing: f.try_get("bouncing").q()?,
                });
            }
            let mut state = TicketState {
                id,
                subject: r.try_get(1).q()?,
                status: parse_col(r, "status")?,
                priority: opt_parse_col(r, "priority")?,
                requester_id: r.try_get(4).q()?,
                root_message_id: opt_message_id(r, "root_message_id")?,
                last_message_id: opt_message_id(r, "last_message_id")?,
                followers,
                orgs: r.try_get("orgs").q()?,
            };
            // What the held writes will make of it.
            self.held.overlay(&mut state);
            self.known.states.insert(id, state);
        }
        Ok(())
    }

    /// Adds a follower to a ticket created in this transaction without a
    /// round trip: its followers are all known, so whether `user` is new is
    /// too. `None` when that does not hold (another ticket, or a user this
    /// transaction has not read): the caller inserts at once instead.
    fn add_fresh_follower(
        &mut self,
        ticket: TicketId,
        user: UserId,
        source: FollowerSource,
        now: OffsetDateTime,
    ) -> Option<bool> {
        let added_at = self.known.fresh.get_mut(&ticket)?;
        let state = self.known.states.get_mut(&ticket)?;
        if state.followers.iter().any(|f| f.user == user) {
            return Some(false);
        }
        let u = self.known.users.values().flatten().find(|u| u.id == user)?;
        let at = state
            .followers
            .iter()
            .zip(added_at.iter())
            .position(|(f, t)| (*t, f.user) > (now, user))
            .unwrap_or(state.followers.len());
        state.followers.insert(
            at,
            Follower {
                user,
                email: u.email.clone(),
                name: u.name.clone(),
                locale: u.locale.clone(),
                role: u.role,
                source,
                bouncing: u.bouncing,
            },
        );
        added_at.insert(at, now);
        self.held.tables |= Table::FOLLOWERS;
        self.held
            .followers
            .push((ticket, user, source.as_str(), now));
        Some(true)
    }

    /// The logged deliveries of `keys` not asked before, into `known.logged`.
    /// (Like the other look-ahead reads, one index probe per key: `LIMIT 1`
    /// keeps the lateral subquery a parameterized probe under the generic
    /// plan, see `begin`.)
    async fn read_logged(&mut self, keys: &[&str]) -> Result<()> {
        let keys = unasked(keys, &self.known.logged);
        if keys.is_empty() {
            return Ok(());
        }
        let rows = sqlx::query(
            "SELECT k.key, l.id, l.outcome, l.ticket_id, l.comment_id
             FROM unnest($1::text[]) AS k(key)
             CROSS JOIN LATERAL (SELECT id, outcome, ticket_id, comment_id FROM ingest_log
                                 WHERE dedup_key = k.key AND outcome IN ('ticket_created', 'comment_added', 'command_only')
                                 LIMIT 1) l",
        )
        .bind(&keys)
        .fetch_all(&mut *self.tx)
        .await
        .q()?;
        for key in keys {
            self.known.logged.insert(key.to_string(), None);
        }
        for r in rows {
            let logged = logged_from_row(&r, 1)?;
            self.known.logged.insert(r.try_get(0).q()?, Some(logged));
        }
        Ok(())
    }

    /// The users of `emails` not asked before, into `known.users`; counts
    /// the unregistered ones (`known.unknown_senders`).
    async fn read_users(&mut self, emails: &[&str]) -> Result<()> {
        self.flush_if(Table::USERS).await?;
        let emails = unasked(emails, &self.known.users);
        if emails.is_empty() {
            return Ok(());
        }
        let rows = sqlx::query(
            "SELECT u.id, u.email, u.name, u.role, u.org_id, o.slug, u.locale, u.bouncing
             FROM unnest($1::text[]) AS k(email)
             CROSS JOIN LATERAL (SELECT * FROM users WHERE email = k.email LIMIT 1) u
             LEFT JOIN orgs o ON o.id = u.org_id",
        )
        .bind(&emails)
        .fetch_all(&mut *self.tx)
        .await
        .q()?;
        let mut unknown: HashSet<&str> = emails.iter().copied().collect();
        for email in &emails {
            self.known.users.insert(email.to_string(), None);
        }
        for r in rows {
            let user = user_from_row(&r)?;
            unknown.remove(user.email.as_str());
            self.known
                .users
                .insert(user.email.as_str().to_string(), Some(user));
        }
        self.known.unknown_senders += unknown.len();
        Ok(())
    }

    /// When each of `addresses` was last answered automatically, into
    /// `known.auto_replies`; the rows found stay locked, so the answer
    /// holds until commit.
    async fn read_auto_replies(&mut self, addresses: &[&str]) -> Result<()> {
        let addresses = unasked(addresses, &self.known.auto_replies);
        if addresses.is_empty() {
            return Ok(());
        }
        let rows: Vec<(String, OffsetDateTime)> = sqlx::query_as(
            "SELECT address, last_at FROM auto_replies WHERE address = ANY($1) ORDER BY address FOR UPDATE",
        )
        .bind(&addresses)
        .fetch_all(&mut *self.tx)
        .await
        .q()?;
        for address in addresses {
            self.known.auto_replies.insert(address.to_string(), None);
        }
        for (address, at) in rows {
            self.known.auto_replies.insert(address, Some(at));
        }
        Ok(())
    }

    /// Message-ID to ticket as the table has it, for ids not asked before.
    async fn read_refs(&mut self, ids: &[&str]) -> Result<()> {
        let keys = unasked(ids, &self.known.refs);
        if keys.is_empty() {
            return Ok(());
        }
        // One index probe per key, as a scalar subquery that the planner
        // cannot turn into a join: the generic plan (see `begin`) of a join,
        // or of `= ANY($1)`, is made once and may scan once the table grows.
        let rows: Vec<(String, Option<i64>)> = sqlx::query_as(
            "SELECT k.id, (SELECT ticket_id FROM message_refs WHERE message_id = k.id)
             FROM unnest($1::text[]) AS k(id)",
        )
        .bind(&keys)
        .fetch_all(&mut *self.tx)
        .await
        .q()?;
        self.known.refs.extend(rows);
        Ok(())
    }

    /// The held refs are about to be stored: an id known to be absent will
    /// then have the held ticket. (An id not asked about yet is asked when
    /// it is; one already stored keeps its ticket.)
    fn settle_refs(&mut self) {
        for (id, ticket, _, _) in &self.held.refs {
            if let Some(known @ None) = self.known.refs.get_mut(id) {
                *known = Some(*ticket);
            }
        }
    }

    /// Sends the held-back writes if any of them are to `tables`: called by
    /// every statement that reads or writes one of those tables (or refers
    /// to them by foreign key), so it sees what came before it.
    async fn flush_if(&mut self, tables: u16) -> Result<()> {
        if self.held.tables & tables == 0 {
            return Ok(());
        }
        self.settle_refs();
        let claims = self.held.claims_new.len() as i64;
        let sql = flush_sql(self.held.tables, Tail::Count);
        let took: i64 = self
            .held
            .bind(sqlx::query(sqlx::AssertSqlSafe(sql)))
            .fetch_one(&mut *self.tx)
            .await
            .q()?
            .try_get(0)
            .q()?;
        if claims > 0 && took != claims {
            // Another transaction answered one of these addresses since
            // `look_ahead` found it had no row: roll back, and ingest
            // records the batch one by one, deciding on the committed row.
            return Err(StoreError::Conflict(
                "an automatic reply was claimed concurrently".into(),
            ));
        }
        Ok(())
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

/// A ticket list row: id, subject, status, priority, requester email, org slug, updated_at.
fn summary_from_row(r: &PgRow) -> Result<TicketSummary> {
    Ok(TicketSummary {
        id: r.try_get(0).q()?,
        subject: r.try_get(1).q()?,
        status: parse_col(r, "status")?,
        priority: opt_parse_col(r, "priority")?,
        requester: r.try_get(4).q()?,
        org: r.try_get(5).q()?,
        updated_at: ts_col(r, "updated_at")?,
    })
}

fn user_from_row(r: &PgRow) -> Result<User> {
    Ok(User {
        id: r.try_get(0).q()?,
        email: email_col(r, "email")?,
        name: r.try_get("name").q()?,
        role: parse_col(r, "role")?,
        org_id: r.try_get("org_id").q()?,
        org: r.try_get("slug").q()?,
        locale: r.try_get("locale").q()?,
        bouncing: r.try_get("bouncing").q()?,
    })
}

async fn insert_user(conn: &mut PgConnection, user: &NewUser, now: OffsetDateTime) -> Result<User> {
    // The new row with its org's slug in the same round trip.
    let row = sqlx::query(
        "WITH u AS (INSERT INTO users (email, name, role, org_id, locale, created_at) VALUES ($1, $2, $3, $4, $5, $6)
                    RETURNING id, email, name, role, org_id, locale, bouncing)
         SELECT u.id, u.email, u.name, u.role, u.org_id, o.slug, u.locale, u.bouncing
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
    user_from_row(&row)
}

async fn org_where(conn: &mut PgConnection, key: &str) -> Result<Option<Org>> {
    let row = sqlx::query(
        "SELECT id, slug, name FROM orgs WHERE slug = $1 OR lower(name) = lower($1) OR id = $2",
    )
    .bind(key)
    .bind(key.parse::<i64>().ok())
    .fetch_optional(&mut *conn)
    .await
    .q()?;
    match row {
        Some(r) => Ok(Some(
            org_details(
                conn,
                r.try_get(0).q()?,
                r.try_get(1).q()?,
                r.try_get(2).q()?,
            )
            .await?,
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
    let domains =
        sqlx::query_scalar("SELECT domain FROM org_domains WHERE org_id = $1 ORDER BY domain")
            .bind(id)
            .fetch_all(&mut *conn)
            .await
            .q()?;
    let leads = sqlx::query_scalar(
        "SELECT u.email FROM org_leads l JOIN users u ON u.id = l.user_id WHERE l.org_id = $1 ORDER BY u.email",
    )
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

#[async_trait]
impl Tx for PgTx {
    async fn put_blob(&mut self, sha256: &str, data: &[u8]) -> Result<()> {
        if data.len() <= HELD_BLOB_MAX {
            self.held.put_blob(sha256, data);
            return Ok(());
        }
        sqlx::query("INSERT INTO blobs (sha256, size, data) VALUES ($1, $2, $3) ON CONFLICT (sha256) DO NOTHING")
            .bind(sha256)
            .bind(data.len() as i64)
            .bind(data)
            .execute(&mut *self.tx)
            .await
            .q()?;
        Ok(())
    }

    async fn look_ahead(&mut self, batch: &Lookahead) -> Result<()> {
        self.known.deliveries_left = batch.deliveries;
        let keys: Vec<&str> = batch.dedup_keys.iter().map(String::as_str).collect();
        self.read_logged(&keys).await?;
        let senders: Vec<&str> = batch.senders.iter().map(EmailAddress::as_str).collect();
        self.read_users(&senders).await?;
        self.read_auto_replies(&senders).await?;
        let ids: Vec<&str> = batch.message_ids.iter().map(MessageId::as_str).collect();
        self.read_refs(&ids).await?;
        let mut tickets = batch.tickets.clone();
        tickets.extend(self.known.refs.values().flatten());
        self.lock_and_read(&tickets).await
    }

    async fn find_logged(&mut self, dedup_key: &str) -> Result<Option<LoggedMessage>> {
        // Every log row this transaction writes is in `known.logged`, so the
        // table is asked only about keys it has not seen.
        if let Some(known) = self.known.logged.get(dedup_key) {
            return Ok(known.clone());
        }
        let row = sqlx::query(
            "SELECT id, outcome, ticket_id, comment_id FROM ingest_log WHERE dedup_key = $1 AND outcome IN ('ticket_created', 'comment_added', 'command_only')",
        )
        .bind(dedup_key)
        .fetch_optional(&mut *self.tx)
        .await
        .q()?;
        let found = row.map(|r| logged_from_row(&r, 0)).transpose()?;
        self.known
            .logged
            .insert(dedup_key.to_string(), found.clone());
        Ok(found)
    }

    async fn user_by_email(&mut self, email: &EmailAddress) -> Result<Option<User>> {
        if let Some(known) = self.known.users.get(email.as_str()) {
            return Ok(known.clone());
        }
        self.flush_if(Table::USERS).await?;
        let user = user_where(&mut self.tx, Some(email), None).await?;
        self.known
            .users
            .insert(email.as_str().to_string(), user.clone());
        Ok(user)
    }

    async fn org_for_domain(&mut self, domain: &str) -> Result<Option<OrgId>> {
        let domain = domain.to_ascii_lowercase();
        if let Some(org) = self.domain_orgs.get(&domain) {
            return Ok(*org);
        }
        let org = sqlx::query_scalar("SELECT org_id FROM org_domains WHERE domain = $1")
            .bind(&domain)
            .fetch_optional(&mut *self.tx)
            .await
            .q()?;
        self.domain_orgs.insert(domain, org);
        Ok(org)
    }

    async fn insert_user(&mut self, user: &NewUser, now: OffsetDateTime) -> Result<User> {
        let user = match self.draw_id(Seq::Users).await? {
            // Held until the ticket insert or the flush; a second
            // registration of the address elsewhere fails the commit on the
            // unique email (`Conflict`), as the insert itself would have.
            Some(id) => {
                let org = match user.org_id {
                    Some(org) => self.org_slugs(&[org]).await?.pop(),
                    None => None,
                };
                let held = HeldUser {
                    id,
                    email: user.email.as_str().to_string(),
                    name: clean(&user.name).into_owned(),
                    role: user.role.as_str(),
                    org_id: user.org_id,
                    locale: user.locale.clone(),
                    at: now,
                };
                self.held.tables |= Table::USERS;
                let stored = User {
                    id,
                    email: user.email.clone(),
                    name: held.name.clone(),
                    role: user.role,
                    org_id: user.org_id,
                    org,
                    locale: user.locale.clone(),
                    bouncing: false,
                };
                self.held.users.push(held);
                stored
            }
            None => insert_user(&mut self.tx, user, now).await?,
        };
        self.known
            .users
            .insert(user.email.as_str().to_string(), Some(user.clone()));
        Ok(user)
    }

    async fn tickets_of(&mut self, ids: &[MessageId]) -> Result<HashMap<MessageId, TicketId>> {
        let keys: Vec<&str> = ids.iter().map(MessageId::as_str).collect();
        self.read_refs(&keys).await?;
        // A stored ref keeps its ticket when a held one names the same id
        // (the flush's upsert changes only its kind).
        Ok(ids
            .iter()
            .filter_map(|id| {
                let stored = self.known.refs.get(id.as_str()).copied().flatten();
                Some((
                    id.clone(),
                    stored.or_else(|| self.held.held_ref(id.as_str()))?,
                ))
            })
            .collect())
    }

    async fn ticket_state(&mut self, id: TicketId) -> Result<Option<TicketState>> {
        // No flush: the held ticket updates and org links are laid over what
        // the row says (`Pending::overlay`), as the flush would have left it.
        // The row lock serializes concurrent changes to one ticket: a second
        // transaction waits in `lock_and_read` and then reads what the first
        // committed (the read is a separate statement, so under READ
        // COMMITTED its snapshot is taken after the wait).
        self.lock_and_read(&[id]).await?;
        Ok(self.known.states.get(&id).cloned())
    }

    async fn insert_ticket(&mut self, nt: &NewTicket) -> Result<TicketId> {
        let id = if self.known.deliveries_left > 0 {
            // In a batch the row waits for the flush with the rows that refer
            // to it (its insert was about 190 µs of server time); only its
            // number is asked for now. Ticket numbers are shown to people, so
            // exactly one is drawn: none is lost unless the batch is, as an
            // insert's would be.
            let id: i64 =
                sqlx::query_scalar("SELECT nextval(pg_get_serial_sequence('tickets', 'id'))")
                    .fetch_one(&mut *self.tx)
                    .await
                    .q()?;
            self.held.new_ticket(id, nt);
            id
        } else {
            // Held users (the requester among them) go in the same statement;
            // the other held rows keep waiting for the flush.
            let mut users = Pending {
                tables: self.held.tables & Table::USERS,
                users: std::mem::take(&mut self.held.users),
                ..Pending::default()
            };
            self.held.tables &= !Table::USERS;
            let root = nt.root_message_id.as_ref().map(MessageId::as_str);
            users
                .bind(sqlx::query(sqlx::AssertSqlSafe(flush_sql(
                    users.tables,
                    Tail::Ticket,
                ))))
                .bind(clean(&nt.subject))
                .bind(nt.status.as_str())
                .bind(nt.requester_id)
                .bind(nt.org_id)
                .bind(root)
                .bind(root)
                .bind(nt.now)
                .bind(nt.now)
                .fetch_one(&mut *self.tx)
                .await
                .q()?
                .try_get(0)
                .q()?
        };
        self.locked.insert(id);
        // As the row reads back: followers and orgs are added separately.
        self.known.states.insert(
            id,
            TicketState {
                id,
                subject: clean(&nt.subject).into_owned(),
                status: nt.status,
                priority: None,
                requester_id: nt.requester_id,
                root_message_id: nt.root_message_id.clone(),
                last_message_id: nt.root_message_id.clone(),
                followers: Vec::new(),
                orgs: Vec::new(),
            },
        );
        self.known.fresh.insert(id, Vec::new());
        Ok(id)
    }

    async fn add_follower(
        &mut self,
        ticket: TicketId,
        user: UserId,
        source: FollowerSource,
        now: OffsetDateTime,
    ) -> Result<bool> {
        if let Some(added) = self.add_fresh_follower(ticket, user, source, now) {
            return Ok(added);
        }
        self.known.fresh.remove(&ticket);
        self.flush_if(Table::USERS | Table::NEW_TICKETS).await?;
        let done = sqlx::query(
            "INSERT INTO followers (ticket_id, user_id, source, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (ticket_id, user_id) DO NOTHING",
        )
        .bind(ticket)
        .bind(user)
        .bind(source.as_str())
        .bind(now)
        .execute(&mut *self.tx)
        .await
        .q()?;
        // Read again when asked (the row stays locked).
        self.known.states.remove(&ticket);
        Ok(done.rows_affected() == 1)
    }

    async fn attach_org(&mut self, ticket: TicketId, org: OrgId) -> Result<()> {
        self.held.attach_org(ticket, org);
        if let Some(state) = self.known.states.get_mut(&ticket)
            && !state.orgs.contains(&org)
        {
            state.orgs.push(org);
            state.orgs.sort_unstable();
        }
        Ok(())
    }

    async fn insert_comment(&mut self, c: &NewComment<'_>) -> Result<CommentId> {
        if let Some(id) = self.draw_id(Seq::Comments).await? {
            self.held.comment(id, c);
            return Ok(id);
        }
        self.flush_if(Table::USERS | Table::NEW_TICKETS).await?;
        sqlx::query_scalar(
            "INSERT INTO comments (ticket_id, author_id, body, signature, quoted, internal, source, message_id, ingest_id, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(c.ticket_id)
        .bind(c.author_id)
        .bind(clean(c.body))
        .bind(oclean(c.signature))
        .bind(oclean(c.quoted))
        .bind(c.internal)
        .bind(c.source.as_str())
        .bind(c.message_id.as_ref().map(MessageId::as_str))
        .bind(c.ingest_id)
        .bind(c.now)
        .fetch_one(&mut *self.tx)
        .await
        .q()
    }

    async fn insert_attachment(&mut self, a: &NewAttachment) -> Result<i64> {
        self.flush_if(Table::BLOBS | Table::COMMENTS).await?;
        sqlx::query_scalar(
            "INSERT INTO attachments (comment_id, filename, content_type, size, blob_sha256) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(a.comment_id)
        .bind(clean(&a.filename))
        .bind(clean(&a.content_type))
        .bind(a.size as i64)
        .bind(&a.sha256)
        .fetch_one(&mut *self.tx)
        .await
        .q()
    }

    async fn insert_event(&mut self, e: &NewEvent) -> Result<()> {
        self.held.event(e);
        Ok(())
    }

    async fn remember_refs(
        &mut self,
        ids: &[MessageId],
        ticket: TicketId,
        kind: RefKind,
        now: OffsetDateTime,
    ) -> Result<()> {
        for id in ids {
            self.held.remember_ref(id.as_str(), ticket, kind, now);
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
        self.held.update_ticket(ticket, status, last, now);
        if let Some(state) = self.known.states.get_mut(&ticket) {
            state.status = status;
            if let Some(last) = last {
                state.last_message_id = Some(last.clone());
            }
        }
        Ok(())
    }

    async fn set_priority(
        &mut self,
        ticket: TicketId,
        priority: Priority,
        now: OffsetDateTime,
    ) -> Result<()> {
        self.flush_if(Table::ANY_TICKETS).await?;
        sqlx::query("UPDATE tickets SET priority = $2, updated_at = $3 WHERE id = $1")
            .bind(ticket)
            .bind(priority.as_str())
            .bind(now)
            .execute(&mut *self.tx)
            .await
            .q()?;
        if let Some(state) = self.known.states.get_mut(&ticket) {
            state.priority = Some(priority);
        }
        Ok(())
    }

    async fn set_release(
        &mut self,
        ticket: TicketId,
        release: &str,
        now: OffsetDateTime,
    ) -> Result<()> {
        self.flush_if(Table::ANY_TICKETS).await?;
        sqlx::query("UPDATE tickets SET release = $2, updated_at = $3 WHERE id = $1")
            .bind(ticket)
            .bind(clean(release))
            .bind(now)
            .execute(&mut *self.tx)
            .await
            .q()?;
        Ok(())
    }

    async fn remove_follower(&mut self, ticket: TicketId, user: UserId) -> Result<bool> {
        self.flush_if(Table::FOLLOWERS | Table::NEW_TICKETS).await?;
        self.known.fresh.remove(&ticket);
        let done = sqlx::query("DELETE FROM followers WHERE ticket_id = $1 AND user_id = $2")
            .bind(ticket)
            .bind(user)
            .execute(&mut *self.tx)
            .await
            .q()?;
        if let Some(state) = self.known.states.get_mut(&ticket) {
            state.followers.retain(|f| f.user != user);
        }
        Ok(done.rows_affected() == 1)
    }

    async fn detach_org(&mut self, ticket: TicketId, org: OrgId) -> Result<bool> {
        self.flush_if(Table::TICKET_ORGS | Table::NEW_TICKETS)
            .await?;
        let done = sqlx::query("DELETE FROM ticket_orgs WHERE ticket_id = $1 AND org_id = $2")
            .bind(ticket)
            .bind(org)
            .execute(&mut *self.tx)
            .await
            .q()?;
        if let Some(state) = self.known.states.get_mut(&ticket) {
            state.orgs.retain(|o| *o != org);
        }
        Ok(done.rows_affected() == 1)
    }

    async fn org_slugs(&mut self, ids: &[OrgId]) -> Result<Vec<String>> {
        let missing: Vec<OrgId> = ids
            .iter()
            .copied()
            .filter(|id| !self.slugs.contains_key(id))
            .collect();
        if !missing.is_empty() {
            let rows: Vec<(i64, String)> =
                sqlx::query_as("SELECT id, slug FROM orgs WHERE id = ANY($1)")
                    .bind(&missing)
                    .fetch_all(&mut *self.tx)
                    .await
                    .q()?;
            self.slugs.extend(rows);
        }
        let mut found: Vec<OrgId> = ids.to_vec();
        found.sort_unstable();
        found.dedup();
        // Byte order, as the "C" collation of the column sorts.
        let mut slugs: Vec<String> = found
            .iter()
            .filter_map(|id| self.slugs.get(id).cloned())
            .collect();
        slugs.sort();
        Ok(slugs)
    }

    async fn org_by_key(&mut self, name_or_slug: &str) -> Result<Option<Org>> {
        org_where(&mut self.tx, name_or_slug.trim()).await
    }

    async fn org_leads(&mut self, org: OrgId) -> Result<Vec<User>> {
        if let Some(leads) = self.leads.get(&org) {
            return Ok(leads.clone());
        }
        self.flush_if(Table::USERS).await?;
        let leads = sqlx::query(
            "SELECT u.id, u.email, u.name, u.role, u.org_id, o.slug, u.locale, u.bouncing
             FROM org_leads l JOIN users u ON u.id = l.user_id LEFT JOIN orgs o ON o.id = u.org_id
             WHERE l.org_id = $1 ORDER BY u.email",
        )
        .bind(org)
        .fetch_all(&mut *self.tx)
        .await
        .q()?
        .iter()
        .map(user_from_row)
        .collect::<Result<Vec<_>>>()?;
        // Leads are often added as followers (`add_fresh_follower`).
        for lead in &leads {
            self.known
                .users
                .entry(lead.email.as_str().to_string())
                .or_insert_with(|| Some(lead.clone()));
        }
        self.leads.insert(org, leads.clone());
        Ok(leads)
    }

    async fn user_by_id(&mut self, id: UserId) -> Result<Option<User>> {
        self.flush_if(Table::USERS).await?;
        user_where(&mut self.tx, None, Some(id)).await
    }

    async fn staff_users(&mut self) -> Result<Vec<User>> {
        self.flush_if(Table::USERS).await?;
        sqlx::query(
            "SELECT u.id, u.email, u.name, u.role, u.org_id, o.slug, u.locale, u.bouncing
             FROM users u LEFT JOIN orgs o ON o.id = u.org_id
             WHERE u.role = 'staff' ORDER BY u.id",
        )
        .fetch_all(&mut *self.tx)
        .await
        .q()?
        .iter()
        .map(user_from_row)
        .collect()
    }

    async fn reachable_users(&mut self, author: &User) -> Result<Vec<User>> {
        self.flush_if(Table::USERS).await?;
        sqlx::query(
            "SELECT u.id, u.email, u.name, u.role, u.org_id, o.slug, u.locale, u.bouncing
             FROM users u LEFT JOIN orgs o ON o.id = u.org_id
             WHERE $1 = 'staff'
                OR ($2 IS NOT NULL AND u.org_id = $2)
                OR u.id IN (SELECT user_id FROM org_leads WHERE org_id = $2)
             ORDER BY u.email",
        )
        .bind(author.role.as_str())
        .bind(author.org_id)
        .fetch_all(&mut *self.tx)
        .await
        .q()?
        .iter()
        .map(user_from_row)
        .collect()
    }

    async fn open_tickets_of(&mut self, user: &User, limit: i64) -> Result<Vec<TicketSummary>> {
        self.flush_if(Table::ANY_TICKETS | Table::TICKET_ORGS | Table::FOLLOWERS | Table::USERS)
            .await?;
        sqlx::query(
            "SELECT t.id, t.subject, t.status, t.priority, u.email, o.slug, t.updated_at
             FROM tickets t JOIN users u ON u.id = t.requester_id LEFT JOIN orgs o ON o.id = t.org_id
             WHERE t.status NOT IN ('closed', 'escalated')
               AND (EXISTS (SELECT 1 FROM followers f WHERE f.ticket_id = t.id AND f.user_id = $1)
                    OR ($2 IS NOT NULL AND EXISTS (SELECT 1 FROM ticket_orgs x WHERE x.ticket_id = t.id AND x.org_id = $2)))
             ORDER BY t.updated_at DESC, t.id DESC LIMIT $3",
        )
        .bind(user.id)
        .bind(user.org_id)
        .bind(limit)
        .fetch_all(&mut *self.tx)
        .await
        .q()?
        .iter()
        .map(summary_from_row)
        .collect()
    }

    async fn enqueue(&mut self, row: &NewOutbox) -> Result<i64> {
        if let Some(id) = self.draw_id(Seq::Outbox).await? {
            self.held.outbox(id, row);
            return Ok(id);
        }
        self.flush_if(Table::USERS | Table::NEW_TICKETS).await?;
        sqlx::query_scalar(
            "INSERT INTO outbox (ticket_id, template, to_addr, to_user_id, reason, message_id, in_reply_to, refs, subject,
                                 context, status, attempts, next_attempt_at, created_at, locale, comment_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'queued', 0, $11, $11, $12, $13) RETURNING id",
        )
        .bind(row.ticket_id)
        .bind(&row.template)
        .bind(row.to.as_str())
        .bind(row.to_user_id)
        .bind(clean(&row.reason))
        .bind(row.message_id.as_str())
        .bind(row.in_reply_to.as_ref().map(MessageId::as_str))
        .bind(outbox_refs(row))
        .bind(clean(&row.subject))
        .bind(row.context.to_string())
        .bind(row.now)
        .bind(&row.locale)
        .bind(row.comment_id)
        .fetch_one(&mut *self.tx)
        .await
        .q()
    }

    async fn claim_auto_reply(
        &mut self,
        address: &EmailAddress,
        now: OffsetDateTime,
        window: Duration,
    ) -> Result<bool> {
        if let Some(&last) = self.known.auto_replies.get(address.as_str()) {
            // Decided on the row `look_ahead` locked, or on its absence
            // (checked when the claim is flushed).
            if last.is_some_and(|at| at > now - window) {
                return Ok(false);
            }
            let addr = address.as_str();
            // A row this batch inserts is not there to update until the flush.
            let new = last.is_none() || self.held.claims_new.iter().any(|c| c.0 == addr);
            let held = if new {
                self.held.tables |= Table::CLAIMS_NEW;
                &mut self.held.claims_new
            } else {
                self.held.tables |= Table::CLAIMS_SEEN;
                &mut self.held.claims_seen
            };
            match held.iter_mut().find(|c| c.0 == addr) {
                Some(claim) => claim.1 = now,
                None => held.push((addr.to_string(), now)),
            }
            self.known.auto_replies.insert(addr.to_string(), Some(now));
            return Ok(true);
        }
        self.claim_auto_reply_key(address.as_str(), now, window)
            .await
    }

    /// Keys other than senders are never read ahead: straight to the table.
    async fn claim_auto_reply_key(
        &mut self,
        key: &str,
        now: OffsetDateTime,
        window: Duration,
    ) -> Result<bool> {
        if let Ok(address) = EmailAddress::parse(key)
            && self.known.auto_replies.contains_key(address.as_str())
        {
            return self.claim_auto_reply(&address, now, window).await;
        }
        let done = sqlx::query(
            "INSERT INTO auto_replies (address, last_at) VALUES ($1, $2)
             ON CONFLICT (address) DO UPDATE SET last_at = excluded.last_at WHERE auto_replies.last_at <= $3",
        )
        .bind(key)
        .bind(now)
        .bind(now - window)
        .execute(&mut *self.tx)
        .await
        .q()?;
        Ok(done.rows_affected() == 1)
    }

    async fn outbox_recipient(
        &mut self,
        message_id: &MessageId,
    ) -> Result<Option<(TicketId, EmailAddress)>> {
        self.flush_if(Table::OUTBOX).await?;
        let row = sqlx::query(
            "SELECT ticket_id, to_addr FROM outbox WHERE message_id = $1 AND ticket_id IS NOT NULL",
        )
        .bind(message_id.as_str())
        .fetch_optional(&mut *self.tx)
        .await
        .q()?;
        row.map(|r| Ok((r.try_get(0).q()?, email_col(&r, "to_addr")?)))
            .transpose()
    }

    async fn set_bouncing(&mut self, email: &EmailAddress, bouncing: bool) -> Result<bool> {
        self.flush_if(Table::USERS).await?;
        // Cached leads, users and followers carry the flag.
        self.leads.clear();
        if let Some(Some(user)) = self.known.users.get_mut(email.as_str()) {
            user.bouncing = bouncing;
        }
        for state in self.known.states.values_mut() {
            for f in state.followers.iter_mut().filter(|f| f.email == *email) {
                f.bouncing = bouncing;
            }
        }
        let done =
            sqlx::query("UPDATE users SET bouncing = $2 WHERE email = $1 AND bouncing <> $2")
                .bind(email.as_str())
                .bind(bouncing)
                .execute(&mut *self.tx)
                .await
                .q()?;
        Ok(done.rows_affected() == 1)
    }

    async fn log_delivery(&mut self, e: &NewLogEntry) -> Result<i64> {
        let id = match self.draw_id(Seq::Log).await? {
            Some(id) => {
                self.known.deliveries_left = self.known.deliveries_left.saturating_sub(1);
                self.held.log(id, e);
                id
            }
            None => self.log_now(e).await?,
        };
        // Only accepted deliveries reserve their key (migration 0003).
        if e.outcome.is_accepted() {
            let logged = LoggedMessage {
                id,
                outcome: e.outcome,
                ticket_id: e.ticket_id,
                comment_id: e.comment_id,
            };
            self.known.logged.insert(e.dedup_key.clone(), Some(logged));
        }
        Ok(id)
    }

    async fn supersede_log(&mut self, id: i64) -> Result<bool> {
        self.flush_if(Table::LOG).await?;
        for known in self.known.logged.values_mut() {
            if known.as_ref().is_some_and(|l| l.id == id) {
                *known = None;
            }
        }
        let done = sqlx::query(
            "UPDATE ingest_log SET superseded = TRUE
             WHERE id = $1 AND NOT superseded AND outcome IN ('quarantined', 'rejected')",
        )
        .bind(id)
        .execute(&mut *self.tx)
        .await
        .q()?;
        Ok(done.rows_affected() == 1)
    }

    async fn advance_cursor(
        &mut self,
        source: &str,
        validity: i64,
        uid: i64,
        now: OffsetDateTime,
    ) -> Result<()> {
        if !self.held.advance_cursor(source, validity, uid, now) {
            self.flush_if(Table::CURSORS).await?;
            self.held.advance_cursor(source, validity, uid, now);
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<()> {
        self.flush_if(Table::ALL).await?;
        self.tx.commit().await.q()
    }
}

fn outbox_from_row(r: &PgRow) -> Result<OutboxRow> {
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

const OUTBOX_COLUMNS: &str = "id, ticket_id, to_addr, to_user_id, locale, comment_id, template, subject, \
     message_id, status, attempts, reason, in_reply_to, refs, context";

#[async_trait]
impl Store for PgStore {
    async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("./migrations/postgres")
            .run(&self.pool)
            .await?;
        Ok(())
    }

    fn looks_ahead(&self) -> bool {
        true
    }

    async fn begin(&self) -> Result<Box<dyn Tx>> {
        // Generic plans for the transaction's statements: each is a key
        // lookup or a single-row write, whose plan does not depend on the
        // values. Without this the server replans the first five executions
        // of every prepared statement, and any whose generic plan it costs
        // higher (the `email = $1 OR id = $2` user lookup, `= ANY($1)`),
        // on every execution: a tenth of a delivery's server time.
        let tx = self
            .pool
            .begin_with("BEGIN; SET LOCAL plan_cache_mode = force_generic_plan")
            .await
            .q()?;
        Ok(Box::new(PgTx::new(tx)))
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.q()?;
        Ok(())
    }

    async fn add_org(&self, name: &str, slug: &str, domains: &[String]) -> Result<Org> {
        let mut tx = self.pool.begin().await.q()?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO orgs (slug, name, created_at) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(slug)
        .bind(clean(name))
        .bind(OffsetDateTime::now_utc())
        .fetch_one(&mut *tx)
        .await
        .q()?;
        for domain in domains {
            sqlx::query("INSERT INTO org_domains (domain, org_id) VALUES ($1, $2)")
                .bind(domain.to_ascii_lowercase())
                .bind(id)
                .execute(&mut *tx)
                .await
                .q()?;
        }
        let org = org_details(&mut tx, id, slug.to_string(), name.to_string()).await?;
        tx.commit().await.q()?;
        Ok(org)
    }

    async fn list_orgs(&self) -> Result<Vec<Org>> {
        let mut conn = self.pool.acquire().await.q()?;
        let rows = sqlx::query("SELECT id, slug, name FROM orgs ORDER BY slug")
            .fetch_all(&mut *conn)
            .await
            .q()?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(
                org_details(
                    &mut conn,
                    r.try_get(0).q()?,
                    r.try_get(1).q()?,
                    r.try_get(2).q()?,
                )
                .await?,
            );
        }
        Ok(out)
    }

    async fn find_org(&self, name_or_slug: &str) -> Result<Option<Org>> {
        let mut conn = self.pool.acquire().await.q()?;
        org_where(&mut conn, name_or_slug.trim()).await
    }

    async fn add_org_lead(&self, org: OrgId, user: UserId) -> Result<()> {
        sqlx::query(
            "INSERT INTO org_leads (org_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(org)
        .bind(user)
        .execute(&self.pool)
        .await
        .q()?;
        Ok(())
    }

    async fn remove_org_lead(&self, org: OrgId, user: UserId) -> Result<bool> {
        let done = sqlx::query("DELETE FROM org_leads WHERE org_id = $1 AND user_id = $2")
            .bind(org)
            .bind(user)
            .execute(&self.pool)
            .await
            .q()?;
        Ok(done.rows_affected() > 0)
    }

    async fn update_user(&self, id: UserId, change: &UserChange) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE users SET name = COALESCE($2, name), role = COALESCE($3, role),
                 locale = COALESCE($4, locale),
                 org_id = CASE WHEN $5::boolean THEN $6::bigint ELSE org_id END
             WHERE id = $1",
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
        let mut conn = self.pool.acquire().await.q()?;
        insert_user(&mut conn, user, OffsetDateTime::now_utc()).await
    }

    async fn find_user(&self, email: &EmailAddress) -> Result<Option<User>> {
        let mut conn = self.pool.acquire().await.q()?;
        user_where(&mut conn, Some(email), None).await
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
             WHERE ($1 IS NULL OR t.status = $1)
               AND ($2 IS NULL OR EXISTS (SELECT 1 FROM ticket_orgs x JOIN orgs xo ON xo.id = x.org_id
                                          WHERE x.ticket_id = t.id AND (xo.slug = $2 OR lower(xo.name) = lower($2))))
               AND ($3 IS NULL OR u.email = $3)
               AND t.id > $4
             ORDER BY t.id LIMIT $5",
        )
        .bind(f.status.map(Status::as_str))
        .bind(f.org.as_deref())
        .bind(f.requester.as_ref().map(EmailAddress::as_str))
        .bind(f.after.unwrap_or(0))
        .bind(f.limit)
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
             FROM tickets t JOIN users u ON u.id = t.requester_id LEFT JOIN orgs o ON o.id = t.org_id WHERE t.id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .q()?
        else {
            return Ok(None);
        };
        let orgs = sqlx::query_scalar(
            "SELECT o.slug FROM ticket_orgs x JOIN orgs o ON o.id = x.org_id WHERE x.ticket_id = $1 ORDER BY o.slug",
        )
        .bind(id)
        .fetch_all(&mut *conn)
        .await
        .q()?;
        let followers = sqlx::query(
            "SELECT u.email, f.source FROM followers f JOIN users u ON u.id = f.user_id WHERE f.ticket_id = $1
             ORDER BY f.created_at, f.user_id",
        )
        .bind(id)
        .fetch_all(&mut *conn)
        .await
        .q()?
        .iter()
        .map(|r| Ok(FollowerView { email: r.try_get(0).q()?, source: parse_col(r, "source")? }))
        .collect::<Result<Vec<_>>>()?;
        let mut comments = sqlx::query(
            "SELECT c.id, u.email, c.body, c.signature, c.internal, c.source, c.message_id, c.created_at
             FROM comments c JOIN users u ON u.id = c.author_id WHERE c.ticket_id = $1 ORDER BY c.id",
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
                created_at: ts_col(r, "created_at")?,
                attachments: Vec::new(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let attachments = sqlx::query(
            "SELECT a.id, a.comment_id, a.filename, a.content_type, a.size FROM attachments a
             JOIN comments c ON c.id = a.comment_id WHERE c.ticket_id = $1 ORDER BY a.id",
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
             WHERE e.ticket_id = $1 ORDER BY e.id",
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
                created_at: ts_col(r, "created_at")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let status: Status = parse_col(&t, "status")?;
        Ok(Some(TicketView {
            id: t.try_get(0).q()?,
            subject: t.try_get(1).q()?,
            status,
            status_label: status.default_label().to_string(),
            priority: opt_parse_col(&t, "priority")?,
            requester: t.try_get(4).q()?,
            org: t.try_get(5).q()?,
            orgs,
            followers,
            comments,
            events,
            created_at: ts_col(&t, "created_at")?,
            updated_at: ts_col(&t, "updated_at")?,
        }))
    }

    async fn list_log(&self, f: &LogFilter) -> Result<Vec<LogRow>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {LOG_COLUMNS} FROM ingest_log
             WHERE ($1::text IS NULL OR outcome = $1) AND id > $2 ORDER BY id LIMIT $3"
        )))
        .bind(f.outcome.map(Outcome::as_str))
        .bind(f.after.unwrap_or(0))
        .bind(f.limit)
        .fetch_all(&self.pool)
        .await
        .q()?
        .iter()
        .map(log_from_row)
        .collect()
    }

    async fn log_row(&self, id: i64) -> Result<Option<LogRow>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {LOG_COLUMNS} FROM ingest_log WHERE id = $1"
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
        sqlx::query_scalar("SELECT data FROM blobs WHERE sha256 = $1")
            .bind(sha256)
            .fetch_optional(&self.pool)
            .await
            .q()
    }

    async fn attachment(&self, id: i64) -> Result<Option<(TicketId, StoredFile)>> {
        let row = sqlx::query(
            "SELECT c.ticket_id, a.filename, a.content_type, b.data FROM attachments a
             JOIN comments c ON c.id = a.comment_id JOIN blobs b ON b.sha256 = a.blob_sha256 WHERE a.id = $1",
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
            "INSERT INTO api_tokens (user_id, token_sha256, label, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(user)
        .bind(sha256)
        .bind(oclean(label))
        .bind(now)
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
            "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await
        .q()?;
        Ok(done.rows_affected() == 1)
    }

    async fn token_user(&self, sha256: &str, now: OffsetDateTime) -> Result<Option<User>> {
        let mut conn = self.pool.acquire().await.q()?;
        let Some((token_id, user_id)): Option<(i64, i64)> = sqlx::query_as(
            "SELECT id, user_id FROM api_tokens WHERE token_sha256 = $1 AND revoked_at IS NULL",
        )
        .bind(sha256)
        .fetch_optional(&mut *conn)
        .await
        .q()?
        else {
            return Ok(None);
        };
        // At most one write a minute per token, not one per request.
        sqlx::query(
            "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $3)",
        )
        .bind(token_id)
        .bind(now)
        .bind(now - Duration::from_secs(60))
        .execute(&mut *conn)
        .await
        .q()?;
        user_where(&mut conn, None, Some(user_id)).await
    }

    async fn claim_outbox(
        &self,
        now: OffsetDateTime,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<OutboxRow>> {
        // SKIP LOCKED: rows another instance is claiming right now are left to
        // it, so two workers never take the same row and never wait on each
        // other. The lock lasts for this statement only; the lease protects the
        // row during delivery, and a lease that ran out (its sender died) makes
        // the row due again.
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE outbox SET status = 'sending', lease_until = $1, attempts = attempts + 1
             WHERE id IN (SELECT id FROM outbox
                          WHERE (status IN ('queued', 'failed') AND next_attempt_at <= $2)
                             OR (status = 'sending' AND lease_until <= $2)
                          ORDER BY id LIMIT $3
                          FOR UPDATE SKIP LOCKED)
             RETURNING {OUTBOX_COLUMNS}"
        )))
        .bind(now + lease)
        .bind(now)
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
        let mut tx = self.pool.begin().await.q()?;
        for attempt in attempts {
            let (status, next, error) = match &attempt.result {
                AttemptResult::Sent => ("sent", None, None),
                AttemptResult::Retry { at, error } => ("failed", Some(*at), Some(error.as_str())),
                AttemptResult::Dead { error, .. } => ("dead", None, Some(error.as_str())),
            };
            sqlx::query(
                "UPDATE outbox SET status = $2, next_attempt_at = COALESCE($3, next_attempt_at), lease_until = NULL,
                        last_error = $4, sent_at = CASE WHEN $2 = 'sent' THEN $5 ELSE sent_at END
                 WHERE id = $1",
            )
            .bind(attempt.id)
            .bind(status)
            .bind(next)
            .bind(error.map(clean))
            .bind(now)
            .execute(&mut *tx)
            .await
            .q()?;
            if let AttemptResult::Dead {
                bouncing: Some(email),
                ..
            } = &attempt.result
            {
                sqlx::query("UPDATE users SET bouncing = TRUE WHERE email = $1")
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
             WHERE a.comment_id = $1 ORDER BY a.id",
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
        sqlx::query_scalar("SELECT body FROM comments WHERE id = $1")
            .bind(comment)
            .fetch_optional(&self.pool)
            .await
            .q()
    }

    async fn source_cursor(&self, source: &str) -> Result<Option<(i64, i64)>> {
        let row = sqlx::query("SELECT validity, last_uid FROM source_cursors WHERE source = $1")
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
        // One statement: the conflict row is locked while its WHERE is checked,
        // so two instances racing for an expired lease cannot both win.
        let done = sqlx::query(
            "INSERT INTO mailbox_leases (name, holder, expires_at, acquired_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO UPDATE SET
                 holder = excluded.holder,
                 expires_at = excluded.expires_at,
                 acquired_at = CASE WHEN mailbox_leases.holder = excluded.holder
                                    THEN mailbox_leases.acquired_at ELSE excluded.acquired_at END
             WHERE mailbox_leases.expires_at <= $4 OR mailbox_leases.holder = $2",
        )
        .bind(name)
        .bind(holder)
        .bind(now + ttl)
        .bind(now)
        .execute(&self.pool)
        .await
        .q()?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM mailbox_leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await
            .q()?;
        Ok(())
    }

    async fn lease_holder(&self, name: &str) -> Result<Option<(String, OffsetDateTime)>> {
        let row = sqlx::query("SELECT holder, expires_at FROM mailbox_leases WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .q()?;
        row.map(|r| Ok((r.try_get(0).q()?, r.try_get(1).q()?)))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::{Table, Tail, flush_sql};

    /// Parameters are numbered across the parts present, in `Table` bit
    /// order, with the log insert's after them: the order `Pending::bind`
    /// binds in.
    #[test]
    fn a_flush_numbers_only_the_parts_it_holds() {
        let sql = flush_sql(Table::BLOBS | Table::TICKETS, Tail::Log);
        assert!(!sql.contains("{}"));
        assert!(sql.contains("unnest($1::text[], $2::bigint[], $3::bytea[])"));
        assert!(sql.contains("unnest($4::bigint[], $5::text[], $6::text[], $7::timestamptz[])"));
        assert!(sql.contains("VALUES ($8, $9,") && sql.contains("$23) RETURNING id"));
        assert!(!sql.contains("held_events") && !sql.contains("$24"));

        let sql = flush_sql(Table::CURSORS, Tail::Count);
        assert!(sql.starts_with("WITH held_cursors AS"));
        assert!(sql.contains("$4::timestamptz[]") && !sql.contains("$5"));
        assert!(sql.ends_with(" SELECT 1::bigint"));

        // New claims are counted; a ticket insert follows the held users.
        let sql = flush_sql(Table::CLAIMS_NEW, Tail::Count);
        assert!(sql.ends_with("SELECT count(*) FROM held_claims_new"));
        let sql = flush_sql(Table::USERS, Tail::Ticket);
        assert!(!sql.contains("{}") && sql.contains("$7::timestamptz[]"));
        assert!(sql.contains("VALUES ($8, $9, $10, $11, $12, $13, $14, $15) RETURNING id"));
        let sql = flush_sql(0, Tail::Ticket);
        assert!(sql.starts_with("WITH t AS") && sql.contains("VALUES ($1,"));
    }
}
