//! Storage: the `Store` trait is the only door to SQL. Use cases hold a `Tx` for
//! the one transaction that records a delivery (raw message, ticket, comment,
//! events, outbox rows and ingest log commit together or not at all).
//!
//! `Store` is written once (`read`, with the statements in `sql` and the row
//! mappers in `rows`) over each backend's connections; a backend keeps what
//! differs: its `Tx`, migrations and a few admin writes. The rows here carry
//! no wire format: `api::wire` is the JSON of the API and the CLI.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use time::OffsetDateTime;

use crate::domain::ids::{CommentId, EmailAddress, MessageId, OrgId, TicketId, UserId};
use crate::domain::notify::Follower;
use crate::domain::outcome::Outcome;
use crate::domain::ticket::{CloseReason, FollowerSource, Priority, Role, Status};

mod list;
pub mod people;
pub mod postgres;
mod read;
mod rows;
mod sql;
pub mod sqlite;
pub(crate) mod time_text;

pub use time_text::{format_ts, parse_ts};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Busy, locked, I/O, pool exhaustion: worth retrying later.
    #[error("database temporarily unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// A uniqueness rule fired; the caller may retry and will see the winner.
    #[error("conflicting write: {0}")]
    Conflict(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Database(#[source] BoxError),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// What opening a database does when it is not there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// Commands that write (`serve`, `migrate`, `ingest`, adding people) make
    /// it, and its folder, so the quick start needs no set-up step.
    Create,
    /// Commands that only read refuse: an empty database made from a typo
    /// would answer "no tickets" and succeed.
    Refuse,
}

impl StoreError {
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Conflict(_))
    }

    /// No space is left for the database: SQLite's `SQLITE_FULL` (which it
    /// answers for ENOSPC), PostgreSQL's `disk_full` (SQLSTATE 53100), or
    /// ENOSPC/EDQUOT from the OS. The store's fault, never the message's.
    pub fn is_disk_full(&self) -> bool {
        let StoreError::Unavailable(e) = self else {
            return false;
        };
        let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e.as_ref());
        while let Some(err) = next {
            if let Some(e) = err.downcast_ref::<sqlx::Error>() {
                match e {
                    sqlx::Error::Database(db) if db.code().as_deref() == Some("53100") => {
                        return true;
                    }
                    sqlx::Error::Io(io) if no_space(io) => return true,
                    _ => {}
                }
            }
            if let Some(rusqlite::Error::SqliteFailure(f, _)) =
                err.downcast_ref::<rusqlite::Error>()
                && f.code == rusqlite::ErrorCode::DiskFull
            {
                return true;
            }
            if let Some(io) = err.downcast_ref::<std::io::Error>()
                && no_space(io)
            {
                return true;
            }
            next = err.source();
        }
        false
    }
}

/// ENOSPC or EDQUOT (Linux numbers: 28, 122).
fn no_space(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull || matches!(e.raw_os_error(), Some(28 | 122))
}

/// The driver's error (rusqlite on SQLite, sqlx on PostgreSQL).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Clone)]
pub struct Org {
    pub id: OrgId,
    pub slug: String,
    pub name: String,
    pub domains: Vec<String>,
    pub leads: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    pub email: EmailAddress,
    pub name: String,
    pub role: Role,
    pub org_id: Option<OrgId>,
    /// The org's slug, for display.
    pub org: Option<String>,
    pub locale: String,
    pub bouncing: bool,
    /// False once staff deactivated them: no sign-in, no session, no API
    /// token, and their mail is a stranger's. Only staff set it back.
    pub active: bool,
}

/// An edit of a registered user: `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    pub name: Option<String>,
    pub role: Option<Role>,
    pub locale: Option<String>,
    /// `Some(None)` takes the user out of their organization.
    pub org_id: Option<Option<OrgId>>,
    pub active: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: EmailAddress,
    pub name: String,
    pub role: Role,
    pub org_id: Option<OrgId>,
    pub locale: String,
}

/// What ingest needs to know about an existing ticket.
#[derive(Debug, Clone)]
pub struct TicketState {
    pub id: TicketId,
    pub subject: String,
    pub status: Status,
    pub priority: Option<Priority>,
    pub requester_id: UserId,
    pub root_message_id: Option<MessageId>,
    pub last_message_id: Option<MessageId>,
    pub followers: Vec<Follower>,
    pub orgs: Vec<OrgId>,
}

/// The desk's part of a ticket (docs/contract.md, "Desk"): its owner, why
/// it was closed, where it was merged, and its SLA clocks. Read and written
/// whole by the ticket service, apart from `TicketState`, which every
/// delivery reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Desk {
    pub owner: Option<UserId>,
    pub close_reason: Option<CloseReason>,
    pub merged_into: Option<TicketId>,
    /// Kept by the ticket itself; `set_desk` does not write them.
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub response_due: Option<OffsetDateTime>,
    pub responded_at: Option<OffsetDateTime>,
    pub resolve_due: Option<OffsetDateTime>,
    /// Business seconds used in earlier running spells of the resolution
    /// clock; with `resolve_since`, `None` means never touched (see
    /// migrations/sqlite/0011_desk.sql).
    pub resolve_spent: Option<i64>,
    pub resolve_since: Option<OffsetDateTime>,
    /// The next instant the scheduler has something to do here.
    pub next_alarm_at: Option<OffsetDateTime>,
}

impl Desk {
    /// The arguments of `sql::SET_DESK`.
    pub(crate) fn args(&self, ticket: TicketId) -> [read::Arg<'_>; 10] {
        [
            ticket.into(),
            self.owner.into(),
            self.close_reason.map(CloseReason::as_str).into(),
            self.merged_into.into(),
            self.response_due.into(),
            self.responded_at.into(),
            self.resolve_due.into(),
            self.resolve_spent.into(),
            self.resolve_since.into(),
            self.next_alarm_at.into(),
        ]
    }
}

/// Where a comment is (`Tx::comment_place`): what a move needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommentPlace {
    pub ticket: TicketId,
    pub author_id: UserId,
    pub internal: bool,
}

#[derive(Debug, Clone)]
pub struct NewTicket {
    pub subject: String,
    pub status: Status,
    pub requester_id: UserId,
    pub org_id: Option<OrgId>,
    pub root_message_id: Option<MessageId>,
    pub now: OffsetDateTime,
}

pub use crate::domain::ticket::CommentSource;

#[derive(Debug, Clone)]
/// Borrows its texts: a comment may be as large as the message, and the
/// caller already holds them (a copy here was 1x the message in peak memory).
pub struct NewComment<'a> {
    pub ticket_id: TicketId,
    pub author_id: UserId,
    pub body: &'a str,
    pub signature: Option<&'a str>,
    pub quoted: Option<&'a str>,
    pub internal: bool,
    pub source: CommentSource,
    pub message_id: Option<MessageId>,
    pub ingest_id: Option<i64>,
    pub now: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct NewAttachment {
    pub comment_id: CommentId,
    pub filename: String,
    pub content_type: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone)]
pub struct NewEvent {
    pub ticket_id: TicketId,
    pub event: crate::domain::event::Event,
    pub actor_id: Option<UserId>,
    pub now: OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefKind {
    Received,
    Sent,
    Referenced,
}

impl RefKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RefKind::Received => "received",
            RefKind::Sent => "sent",
            RefKind::Referenced => "referenced",
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewOutbox {
    pub ticket_id: Option<TicketId>,
    pub template: String,
    pub to: EmailAddress,
    pub to_user_id: Option<UserId>,
    pub locale: String,
    pub reason: String,
    pub comment_id: Option<CommentId>,
    pub message_id: MessageId,
    pub in_reply_to: Option<MessageId>,
    pub references: Vec<MessageId>,
    pub subject: String,
    pub context: serde_json::Value,
    pub now: OffsetDateTime,
}

/// One row of the ingest log, as written.
#[derive(Debug, Clone)]
pub struct NewLogEntry {
    pub dedup_key: String,
    pub message_id: Option<MessageId>,
    pub origin: String,
    pub raw_sha256: String,
    pub size: u64,
    pub sender: Option<String>,
    pub subject: Option<String>,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub thread_reason: Option<String>,
    pub ticket_id: Option<TicketId>,
    pub comment_id: Option<CommentId>,
    pub duplicate_of: Option<i64>,
    /// For a replay: the quarantined or rejected delivery it re-runs.
    pub replay_of: Option<i64>,
    pub notify: bool,
    pub now: OffsetDateTime,
}

/// One row of the ingest log, as read; `api::wire::LogRow` is its JSON.
#[derive(Debug, Clone)]
pub struct LogRow {
    pub id: i64,
    pub message_id: Option<String>,
    pub origin: String,
    pub sender: Option<String>,
    pub subject: Option<String>,
    pub outcome: crate::domain::outcome::Outcome,
    pub reason: Option<String>,
    pub thread_reason: Option<String>,
    pub ticket: Option<TicketId>,
    pub comment: Option<CommentId>,
    pub size: i64,
    pub received_at: String,
    /// A later replay of this delivery replaced it.
    pub superseded: bool,
    /// The delivery this row replays.
    pub replay_of: Option<i64>,
    pub raw_sha256: String,
    pub notify: bool,
    /// When staff discarded it: kept for the record, no longer pending.
    pub discarded_at: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub outcome: Option<Outcome>,
    pub limit: Option<i64>,
    pub after: Option<i64>,
}

/// The earlier accepted delivery of the same dedup key (refused and
/// duplicate rows reserve no key: `Outcome::is_accepted`).
#[derive(Debug, Clone)]
pub struct LoggedMessage {
    pub id: i64,
    pub outcome: Outcome,
    pub ticket_id: Option<TicketId>,
    pub comment_id: Option<CommentId>,
}

/// Which tickets `Store::list_tickets` lists: every field that is set must
/// hold; `limit` of them, in id order after the id `after`, or with
/// `newest_first` by last update, or with `by_due` by next due time,
/// skipping `skip`.
#[derive(Debug, Clone, Default)]
pub struct TicketFilter {
    pub status: Option<Status>,
    /// Open tickets only (`Some(true)`), closed ones only (Closed and
    /// Closed - Escalated, `Some(false)`), or both.
    pub open: Option<bool>,
    /// An attached organization, by slug or name (any case).
    pub org: Option<String>,
    pub requester: Option<EmailAddress>,
    pub priority: Option<Priority>,
    /// A piece of the subject, in any case (`%`, `_` and `\` match
    /// themselves). Case is folded by the database: ASCII only on SQLite.
    /// At most `TEXT_FILTER_MAX` bytes.
    pub text: Option<String>,
    /// Only the tickets this user may see as a customer (`None`: all).
    pub visible_to: Option<Visibility>,
    pub owner: Option<OwnerFilter>,
    /// Open tickets with a clock past due at this instant only.
    pub breached_at: Option<OffsetDateTime>,
    pub limit: Option<i64>,
    pub after: Option<TicketId>,
    /// Last update first (ties: higher id first), for numbered pages.
    pub newest_first: bool,
    /// Rows skipped in `newest_first` or `by_due` order.
    pub skip: i64,
    /// In `newest_first` order, only tickets after this one (its last
    /// update and id): a keyset page, which a ticket changing between two
    /// pages cannot shift as `skip` can.
    pub updated_before: Option<(OffsetDateTime, TicketId)>,
    /// Earliest next due time first (the response's until answered, then
    /// the resolution's), tickets without one last, for numbered pages;
    /// over `newest_first`.
    pub by_due: bool,
}

/// `TicketFilter::owner`: one staff member's tickets, or nobody's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerFilter {
    Is(EmailAddress),
    Nobody,
}

/// The longest `TicketFilter::text`: longer is `StoreError::Invalid`, on
/// both backends (SQLite refuses LIKE patterns over 50,000 bytes).
pub const TEXT_FILTER_MAX: usize = 1000;

/// The statement `Store::list_tickets` runs for `filter`, for the test
/// that reads its plan (tests/operator/store_contract.rs).
#[doc(hidden)]
pub fn ticket_list_statement(filter: &TicketFilter) -> &'static str {
    list::tickets(filter, filter.text.as_deref()).0
}

/// The other statements that list tickets, named, for the same test: the
/// `#list` answers, the scheduler's scans and the open-ticket counts.
#[doc(hidden)]
pub fn ticket_scan_statements() -> Vec<(&'static str, &'static str)> {
    vec![
        ("#list of a customer", sql::OPEN_TICKETS_OF),
        ("#list all", sql::open_tickets_desk(false, false)),
        ("#list unassigned", sql::open_tickets_desk(false, true)),
        ("#list mine", sql::open_tickets_desk(true, false)),
        ("due alarms", sql::DUE_ALARMS),
        ("idle tickets", sql::IDLE_TICKETS),
        ("open ticket counts", sql::OPEN_TICKET_COUNTS),
    ]
}

/// The tickets a customer sees (`domain::ticket::may_comment` without the
/// staff rule): those they requested or follow, and those attached to their
/// organization (`ticket_orgs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Visibility {
    pub user: UserId,
    pub org: Option<OrgId>,
}

#[derive(Debug, Clone)]
pub struct TicketSummary {
    pub id: TicketId,
    pub subject: String,
    pub status: Status,
    pub priority: Option<Priority>,
    pub requester: String,
    /// The organization's slug (what scripts and filters use).
    pub org: Option<String>,
    pub updated_at: String,
    /// What people read: the requester's name, the organization's name.
    pub requester_name: String,
    pub org_name: Option<String>,
    /// The owner's address.
    pub owner: Option<String>,
    pub response_due: Option<String>,
    /// When the first public staff comment stopped the response clock.
    pub responded_at: Option<String>,
    pub resolve_due: Option<String>,
    pub close_reason: Option<CloseReason>,
}

#[derive(Debug, Clone)]
pub struct FollowerView {
    pub email: String,
    pub source: FollowerSource,
    /// Shown beside the address on pages; not in the JSON.
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct AttachmentView {
    /// For `GET /api/attachments/{id}`.
    pub id: i64,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
}

#[derive(Debug, Clone)]
pub struct CommentView {
    pub id: CommentId,
    /// The author's address.
    pub author: String,
    /// The author's display name.
    pub author_name: String,
    pub body: String,
    pub signature: Option<String>,
    pub internal: bool,
    pub source: CommentSource,
    pub message_id: Option<String>,
    pub created_at: String,
    pub attachments: Vec<AttachmentView>,
    /// Its text and files were removed with its author's data.
    pub redacted: bool,
}

#[derive(Debug, Clone)]
pub struct EventView {
    pub event: crate::domain::event::Recorded,
    pub actor: Option<String>,
    pub created_at: String,
}

/// A ticket with its thread, as read; `api::wire::TicketView` is its JSON
/// (docs/contract.md, "Interfaces"), which the API and `ticket show --json` share.
#[derive(Debug, Clone)]
pub struct TicketView {
    pub id: TicketId,
    pub subject: String,
    pub status: Status,
    pub status_label: String,
    pub priority: Option<Priority>,
    pub requester: String,
    pub org: Option<String>,
    pub orgs: Vec<String>,
    /// The release the fix ships in (`#release`), once staff named it.
    pub release: Option<String>,
    /// The owner's address (docs/contract.md, "Desk").
    pub owner: Option<String>,
    pub close_reason: Option<CloseReason>,
    pub merged_into: Option<TicketId>,
    pub response_due: Option<String>,
    pub responded_at: Option<String>,
    pub resolve_due: Option<String>,
    pub followers: Vec<FollowerView>,
    pub comments: Vec<CommentView>,
    /// A page of comments (`Store::ticket_page`) left earlier ones out.
    pub earlier_comments: bool,
    pub events: Vec<EventView>,
    pub created_at: String,
    pub updated_at: String,
}

/// Which of a ticket's comments to read: the `limit` newest before comment
/// `before`; the default, every comment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommentPage {
    pub limit: Option<i64>,
    pub before: Option<CommentId>,
}

impl TicketView {
    /// The event each announcing comment (public, `source: system`) was
    /// written for, by comment id: one change records both, at one instant,
    /// by one actor, comment first. Pages render such a comment from its
    /// event in the reader's language (`Event::announcement`).
    pub fn announced(&self) -> HashMap<CommentId, &crate::domain::event::Event> {
        use crate::domain::locale::Locale;
        let mut events = self
            .events
            .iter()
            .filter_map(|e| Some((e, e.event.known()?)))
            .filter(|(_, event)| event.announcement(Locale::default()).is_some())
            .peekable();
        let mut found = HashMap::new();
        for c in self
            .comments
            .iter()
            .filter(|c| c.source == CommentSource::System && !c.internal)
        {
            // Skip announcements whose comment is gone or older than this one.
            while let Some((e, event)) = events.peek() {
                if e.created_at == c.created_at && e.actor.as_deref() == Some(c.author.as_str()) {
                    found.insert(c.id, *event);
                    events.next();
                    break;
                }
                if e.created_at > c.created_at {
                    break;
                }
                events.next();
            }
        }
        found
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxStatus {
    Queued,
    Sending,
    Sent,
    Failed,
    Dead,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Queued => "queued",
            OutboxStatus::Sending => "sending",
            OutboxStatus::Sent => "sent",
            OutboxStatus::Failed => "failed",
            OutboxStatus::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Queued,
            Self::Sending,
            Self::Sent,
            Self::Failed,
            Self::Dead,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

/// An outbox row with what the mailer needs; `api::wire::OutboxRow` is what
/// `outbox list --json` shows of it.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: i64,
    pub ticket_id: Option<TicketId>,
    pub to: String,
    pub to_user_id: Option<UserId>,
    pub locale: String,
    pub comment_id: Option<CommentId>,
    pub template: String,
    pub subject: String,
    pub message_id: String,
    pub status: OutboxStatus,
    pub attempts: i64,
    pub reason: String,
    pub in_reply_to: Option<String>,
    pub references: Option<String>,
    pub context: serde_json::Value,
}

/// What a batch of deliveries is about to look up: a store that pays a
/// round trip per statement (PostgreSQL) reads it all in a few statements
/// instead of several per message. A hint only: every `Tx` method answers
/// the same with or without it.
#[derive(Debug, Clone, Default)]
pub struct Lookahead {
    /// How many deliveries the transaction records (one log row each).
    pub deliveries: usize,
    pub dedup_keys: Vec<String>,
    pub senders: Vec<EmailAddress>,
    /// Message-IDs and ancestors the deliveries thread by.
    pub message_ids: Vec<MessageId>,
    /// Tickets named by subject tags.
    pub tickets: Vec<TicketId>,
}

/// The blob key of a stored message or attachment (`Tx::put_blob`): both
/// mail intake and the portal's uploads name content by it.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, data))
}

/// The writes and reads of one delivery, in one transaction.
#[async_trait]
pub trait Tx: Send {
    /// Reads ahead what `batch` will look up (see `Lookahead`); a no-op
    /// where lookups cost no round trip (SQLite, in-process).
    async fn look_ahead(&mut self, _batch: &Lookahead) -> Result<()> {
        Ok(())
    }
    /// Stores content under its SHA-256 (hex); storing it again is a no-op.
    async fn put_blob(&mut self, sha256: &str, data: &[u8]) -> Result<()>;
    /// The accepted delivery of `dedup_key`, if any: what makes a new one a duplicate.
    async fn find_logged(&mut self, dedup_key: &str) -> Result<Option<LoggedMessage>>;
    async fn user_by_email(&mut self, email: &EmailAddress) -> Result<Option<User>>;
    async fn org_for_domain(&mut self, domain: &str) -> Result<Option<OrgId>>;
    async fn insert_user(&mut self, user: &NewUser, now: OffsetDateTime) -> Result<User>;
    /// The ticket of each id the gateway has received, sent or seen referenced.
    async fn tickets_of(&mut self, ids: &[MessageId]) -> Result<HashMap<MessageId, TicketId>>;
    /// The ticket as of now; on PostgreSQL the row stays locked until commit,
    /// so two instances changing one ticket take turns instead of losing an update.
    async fn ticket_state(&mut self, id: TicketId) -> Result<Option<TicketState>>;
    async fn insert_ticket(&mut self, ticket: &NewTicket) -> Result<TicketId>;
    /// Adds a follower; `false` when they already followed (their source is kept).
    async fn add_follower(
        &mut self,
        ticket: TicketId,
        user: UserId,
        source: FollowerSource,
        now: OffsetDateTime,
    ) -> Result<bool>;
    async fn attach_org(&mut self, ticket: TicketId, org: OrgId) -> Result<()>;
    async fn insert_comment(&mut self, comment: &NewComment<'_>) -> Result<CommentId>;
    async fn insert_attachment(&mut self, attachment: &NewAttachment) -> Result<i64>;
    async fn insert_event(&mut self, event: &NewEvent) -> Result<()>;
    /// Remembers ids for threading; an id already known keeps its first ticket,
    /// except that a `received`/`sent` id replaces a mere `referenced` one.
    async fn remember_refs(
        &mut self,
        ids: &[MessageId],
        ticket: TicketId,
        kind: RefKind,
        now: OffsetDateTime,
    ) -> Result<()>;
    async fn set_priority(
        &mut self,
        ticket: TicketId,
        priority: Priority,
        now: OffsetDateTime,
    ) -> Result<()>;
    async fn set_release(
        &mut self,
        ticket: TicketId,
        release: &str,
        now: OffsetDateTime,
    ) -> Result<()>;
    /// `false` when they did not follow.
    async fn remove_follower(&mut self, ticket: TicketId, user: UserId) -> Result<bool>;
    /// `false` when the org was not attached.
    async fn detach_org(&mut self, ticket: TicketId, org: OrgId) -> Result<bool>;
    async fn org_by_key(&mut self, name_or_slug: &str) -> Result<Option<Org>>;
    /// The slugs of these organizations, in one statement (rules read them per delivery).
    async fn org_slugs(&mut self, ids: &[OrgId]) -> Result<Vec<String>>;
    async fn org_leads(&mut self, org: OrgId) -> Result<Vec<User>>;
    /// Whether `user` has ever signed in to the portal.
    async fn has_signed_in(&mut self, user: UserId) -> Result<bool>;
    /// The staff users: their names are no one else's to take, and with
    /// `notify_staff = "each"` each gets their own copy of team notices.
    async fn staff_users(&mut self) -> Result<Vec<User>>;
    async fn user_by_id(&mut self, id: UserId) -> Result<Option<User>>;
    /// Users `author` may mention or share with: staff, anyone registered;
    /// customers, their organization's members and its delivery leads.
    async fn reachable_users(&mut self, author: &User) -> Result<Vec<User>>;
    /// Open tickets `user` can see (followed, or of an attached org), newest first.
    async fn open_tickets_of(&mut self, user: &User, limit: i64) -> Result<Vec<TicketSummary>>;
    /// Open tickets as the desk lists them (`#list` from staff): owned by
    /// `owner`, unassigned, or (neither) all; newest update first.
    async fn open_tickets_desk(
        &mut self,
        owner: Option<UserId>,
        unassigned: bool,
        limit: i64,
    ) -> Result<Vec<TicketSummary>>;
    async fn update_ticket(
        &mut self,
        ticket: TicketId,
        status: Status,
        last_message_id: Option<&MessageId>,
        now: OffsetDateTime,
    ) -> Result<()>;
    /// The desk's part of a ticket (owner, close reason, clocks).
    async fn desk(&mut self, ticket: TicketId) -> Result<Option<Desk>>;
    async fn set_desk(&mut self, ticket: TicketId, desk: &Desk) -> Result<()>;
    /// Takes alarm `kind` due at `due` on `ticket`: `true` for the one
    /// transaction, of any instance, that does.
    async fn claim_alarm(
        &mut self,
        ticket: TicketId,
        kind: &str,
        due: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool>;
    /// Merges `from` into `into` (docs/contract.md, "Desk"): `from`'s
    /// comments (ids and times kept) and the Message-IDs it threads by move
    /// to `into`; its followers and organizations join `into` (a follower
    /// already there keeps their source; `from`'s requester follows as
    /// `follow`). `from` keeps its own followers, organizations and events;
    /// its status and `merged_into` are the service's to set.
    async fn merge_ticket(
        &mut self,
        from: TicketId,
        into: TicketId,
        now: OffsetDateTime,
    ) -> Result<()>;
    /// Where a comment is and who wrote it; `None` when there is no such comment.
    async fn comment_place(&mut self, comment: CommentId) -> Result<Option<CommentPlace>>;
    /// Puts `comment` on ticket `to` with the Message-IDs a reply to it
    /// threads by: its own (kind `received`) and those of the notifications
    /// that showed it (`sent`). Id, time and attachments are kept.
    async fn move_comment(&mut self, comment: CommentId, to: TicketId) -> Result<()>;
    async fn enqueue(&mut self, row: &NewOutbox) -> Result<i64>;
    /// Takes the one automatic answer `address` may get per `window`: `true`
    /// (and the time is recorded) when none was sent within it.
    async fn claim_auto_reply(
        &mut self,
        address: &EmailAddress,
        now: OffsetDateTime,
        window: Duration,
    ) -> Result<bool>;
    /// Like `claim_auto_reply`, for any key (the slots of `claim_capped`).
    async fn claim_auto_reply_key(
        &mut self,
        key: &str,
        now: OffsetDateTime,
        window: Duration,
    ) -> Result<bool>;
    /// Takes one of the `count` automatic answers `address` may get per
    /// `per` (`[intake] auto_reply_limit`): `count` slots, each claimed at
    /// most once per `per`, so no stretch of `per` holds more than `count`.
    /// `false`: the cap is reached and the answer is not sent.
    async fn claim_capped(
        &mut self,
        address: &EmailAddress,
        now: OffsetDateTime,
        count: u32,
        per: Duration,
    ) -> Result<bool> {
        for slot in 0..count {
            // A space never occurs in an address: no slot is someone's window.
            let key = format!("{address} #{slot}");
            if self.claim_auto_reply_key(&key, now, per).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }
    /// The recipient of the notification with this Message-ID, if we sent one.
    async fn outbox_recipient(
        &mut self,
        message_id: &MessageId,
    ) -> Result<Option<(TicketId, EmailAddress)>>;
    /// Marks a user's address as bouncing (or working again); `false` when no such user.
    async fn set_bouncing(&mut self, email: &EmailAddress, bouncing: bool) -> Result<bool>;
    async fn log_delivery(&mut self, entry: &NewLogEntry) -> Result<i64>;
    /// Marks a quarantined or rejected delivery as replaced by a replay;
    /// `false` when it is not one (any more), e.g. a concurrent replay won
    /// or staff discarded it.
    async fn supersede_log(&mut self, id: i64) -> Result<bool>;
    /// Records that `source` is done up to `uid` under `validity` (a new
    /// validity replaces the old cursor; under the same one it only moves forward).
    async fn advance_cursor(
        &mut self,
        source: &str,
        validity: i64,
        uid: i64,
        now: OffsetDateTime,
    ) -> Result<()>;
    /// Stores a one-time portal link by its token's hash. In the transaction
    /// because an invitation's link and the mail that carries it commit together.
    async fn insert_web_link(&mut self, link: &NewWebLink) -> Result<()>;
    async fn commit(self: Box<Self>) -> Result<()>;
}

#[async_trait]
pub trait Store: Send + Sync {
    async fn migrate(&self) -> Result<()>;
    /// The shipped migrations this database has not applied (`version
    /// description`), read without changing anything (`ticketgate check`).
    async fn pending_migrations(&self) -> Result<Vec<String>>;
    /// A consistent copy of the whole database, raw mail included, written
    /// to a new file at `path` while others keep reading and writing
    /// (SQLite's `VACUUM INTO`). PostgreSQL has `pg_dump` for that.
    async fn backup_into(&self, path: &std::path::Path) -> Result<()>;
    /// A write transaction; on SQLite it takes the write lock up front so two
    /// writers queue instead of failing on upgrade.
    async fn begin(&self) -> Result<Box<dyn Tx>>;
    /// Whether its transactions' `look_ahead` does anything. When not, a batch
    /// starts recording before the rest of it is parsed.
    fn looks_ahead(&self) -> bool {
        false
    }
    async fn ping(&self) -> Result<()>;
    /// What recording into this store last met (disk full, failing, ok):
    /// written by mail sources and the outbox, read by `/readyz`.
    fn health(&self) -> &crate::health::StoreHealth;

    async fn add_org(&self, name: &str, slug: &str, domains: &[String]) -> Result<Org>;
    /// Every organization with its domains and leads, by slug, in three
    /// statements, read outside any write.
    async fn list_orgs(&self) -> Result<Vec<Org>>;
    /// By slug or by name (case-insensitive).
    async fn find_org(&self, name_or_slug: &str) -> Result<Option<Org>>;
    async fn add_org_lead(&self, org: OrgId, user: UserId) -> Result<()>;
    /// False when the user was not a lead of the org.
    async fn remove_org_lead(&self, org: OrgId, user: UserId) -> Result<bool>;
    async fn add_user(&self, user: &NewUser) -> Result<User>;
    async fn find_user(&self, email: &EmailAddress) -> Result<Option<User>>;
    async fn list_users(&self) -> Result<Vec<User>>;
    /// The staff users (owners' names, the owner form), by the role's own
    /// statement rather than every user.
    async fn list_staff(&self) -> Result<Vec<User>>;
    /// Changes what `change` names and leaves the rest; false when there is no such user.
    async fn update_user(&self, id: UserId, change: &UserChange) -> Result<bool>;

    async fn list_tickets(&self, filter: &TicketFilter) -> Result<Vec<TicketSummary>>;
    /// Open tickets counted by status and priority.
    async fn open_ticket_counts(&self) -> Result<Vec<(Status, Option<Priority>, i64)>>;
    /// Tickets with a scheduler alarm due by `now`, at most `limit`.
    async fn due_alarms(&self, now: OffsetDateTime, limit: i64) -> Result<Vec<TicketId>>;
    /// Tickets in `status` last changed at or before `before`, oldest first,
    /// after the cursor `after` (last changed, id), at most `limit`, that
    /// alarm `kind` has not been claimed for since that change.
    async fn idle_tickets(
        &self,
        kind: &str,
        status: Status,
        before: OffsetDateTime,
        after: (OffsetDateTime, TicketId),
        limit: i64,
    ) -> Result<Vec<(TicketId, OffsetDateTime)>>;
    async fn ticket_view(&self, id: TicketId) -> Result<Option<TicketView>>;
    /// A ticket with one page of its comments and the history beside them,
    /// read at a cost bounded by the page, not the ticket.
    async fn ticket_page(&self, id: TicketId, page: CommentPage) -> Result<Option<TicketView>>;
    /// The ticket as `Tx::ticket_state` reads it, for deciding who may see
    /// it: read outside any write, and nothing locked.
    async fn ticket_access(&self, id: TicketId) -> Result<Option<TicketState>>;
    /// `Tx::reachable_users`, read outside any write (the mention list).
    async fn reachable_users(&self, author: &User) -> Result<Vec<User>>;
    async fn list_log(&self, filter: &LogFilter) -> Result<Vec<LogRow>>;

    /// Claims up to `limit` due rows: marks them `sending` with a lease, so a
    /// crashed sender's rows become due again when the lease runs out.
    async fn claim_outbox(
        &self,
        now: OffsetDateTime,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<OutboxRow>>;
    /// Records how a batch of claimed rows fared, in one transaction (one
    /// disk sync for the batch instead of one per message).
    async fn record_attempts(&self, attempts: &[Attempt], now: OffsetDateTime) -> Result<()>;
    /// Gives claimed rows that were never tried back to the queue (a worker
    /// that is stopping): due at once for the next worker, their claim not
    /// counted as an attempt.
    async fn release_outbox(&self, ids: &[i64]) -> Result<()>;
    async fn list_outbox(&self) -> Result<Vec<OutboxRow>>;
    /// Mints the one-time link of outbox row `outbox_id` as it is sent, in
    /// one transaction: stores `link` (its token's hash), drops the link an
    /// earlier attempt minted (`previous`, unless it was used) and writes the
    /// row's `context`, which names the new hash and never a token.
    async fn mint_web_link(
        &self,
        outbox_id: i64,
        previous: Option<&str>,
        link: &NewWebLink,
        context: &serde_json::Value,
    ) -> Result<()>;

    /// Where `source` stopped: `(validity, last uid)`.
    async fn source_cursor(&self, source: &str) -> Result<Option<(i64, i64)>>;
    /// Files of a comment with their content, for attaching to notifications.
    async fn comment_files(&self, comment: CommentId) -> Result<Vec<StoredFile>>;
    /// A comment's text: notifications about it carry its id, not a copy.
    async fn comment_body(&self, comment: CommentId) -> Result<Option<String>>;
    /// One attachment with its content, and the ticket it belongs to.
    async fn attachment(&self, id: i64) -> Result<Option<(TicketId, StoredFile)>>;
    async fn log_row(&self, id: i64) -> Result<Option<LogRow>>;
    /// Marks a quarantined or rejected delivery discarded at `now`; `false`
    /// when it is not one waiting for a decision (replayed, discarded, or
    /// another outcome). The row and its raw message stay.
    async fn discard_log(&self, id: i64, now: OffsetDateTime) -> Result<bool>;
    /// Stored content by SHA-256 (raw messages, attachments).
    async fn blob(&self, sha256: &str) -> Result<Option<Vec<u8>>>;
    /// Outbox rows not sent, per status (for metrics).
    async fn outbox_counts(&self) -> Result<Vec<(OutboxStatus, i64)>>;
    /// Deletes up to `limit` outbox rows sent before `before`, in one
    /// short transaction; how many went. Fewer than `limit`: none are left.
    async fn purge_sent_outbox(&self, before: OffsetDateTime, limit: i64) -> Result<u64>;

    /// Stores a new API token by its hash for a user.
    async fn create_token(
        &self,
        user: UserId,
        sha256: &str,
        label: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<ApiToken>;
    async fn list_tokens(&self, user: Option<UserId>) -> Result<Vec<ApiToken>>;
    /// `false` when there is no such token or it was already revoked.
    async fn revoke_token(&self, id: i64, now: OffsetDateTime) -> Result<bool>;
    /// The user of a live (unrevoked) token; notes when it was last used.
    async fn token_user(&self, sha256: &str, now: OffsetDateTime) -> Result<Option<User>>;

    /// Uses up a one-time portal link: its user, if the link is known, unused
    /// and unexpired at `now`; it is then used. One statement marks it, so of
    /// two concurrent takes exactly one gets the user; every later take, an
    /// expired and an unknown link give `None`.
    async fn take_web_link(&self, token_hash: &str, now: OffsetDateTime) -> Result<Option<User>>;
    /// Stores a portal session by its token's hash (`Conflict` if it exists).
    async fn create_session(&self, session: &NewSession) -> Result<()>;
    /// The user of a live (unexpired at `now`) session and its CSRF token.
    /// Notes `now` as last seen when that was over a minute ago, so most
    /// page views only read.
    async fn session(
        &self,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<(User, String)>>;
    /// Signs a session out; `false` when there was none.
    async fn end_session(&self, token_hash: &str) -> Result<bool>;
    /// Deletes the links and sessions expired at `now` (used, unexpired links
    /// stay until they expire); how many rows went.
    async fn purge_web(&self, now: OffsetDateTime) -> Result<u64>;

    /// Takes or renews the lease on mailbox `name` for `holder` until `now +
    /// ttl`, in one atomic upsert: `true` when the lease was free, expired, or
    /// already `holder`'s and is now `holder`'s; `false` while another holder's
    /// lease runs. Times are the caller's clock: instances must keep their
    /// clocks in sync to well under the lease.
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> Result<bool>;
    /// Gives the lease up if `holder` has it, so another instance can take
    /// over at once instead of waiting for it to expire.
    async fn release_lease(&self, name: &str, holder: &str) -> Result<()>;
    /// Who holds the lease on `name` and until when (expired leases included).
    async fn lease_holder(&self, name: &str) -> Result<Option<(String, OffsetDateTime)>>;

    /// Everything stored about the person with this address (`None`: no
    /// such user), for a subject access request.
    async fn person_export(&self, email: &EmailAddress) -> Result<Option<people::PersonRecord>>;
    /// Erases a person by redaction in one transaction (rolled back for a
    /// dry run): see `people`. `None`: no such user.
    async fn person_erase(&self, plan: &people::ErasePlan) -> Result<Option<people::Erasure>>;
    /// Removes raw mail received before `before`; the count removed.
    async fn purge_raw(&self, before: OffsetDateTime, now: OffsetDateTime) -> Result<u64>;
    /// Deletes tickets closed before `before`, counted in `retained_counts`.
    async fn purge_closed(&self, before: OffsetDateTime) -> Result<u64>;
    /// Claims retention's run for `day`; false when another run has it.
    async fn claim_retention(&self, day: &str, holder: &str, now: OffsetDateTime) -> Result<bool>;
    async fn record_retention(&self, day: &str, purged: &people::Purged) -> Result<()>;
    /// What deleted closed tickets left for reports.
    async fn retained_counts(&self) -> Result<Vec<people::RetainedCount>>;
}

/// What a one-time portal link does when taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPurpose {
    SignIn,
    /// Accepts an invitation (mailed with it, `Tx::insert_web_link`).
    Invite,
}

impl LinkPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkPurpose::SignIn => "sign_in",
            LinkPurpose::Invite => "invite",
        }
    }
}

/// A one-time portal link, as stored: never the token, only its hash.
#[derive(Debug, Clone)]
pub struct NewWebLink {
    /// SHA-256 (hex) of the token the link carries.
    pub token_hash: String,
    pub user: UserId,
    pub purpose: LinkPurpose,
    pub now: OffsetDateTime,
    pub expires: OffsetDateTime,
}

/// A portal session, as stored: the cookie's token only as its hash.
#[derive(Clone)]
pub struct NewSession {
    /// SHA-256 (hex) of the session cookie's token.
    pub token_hash: String,
    pub user: UserId,
    /// The session's CSRF token (random), which its forms carry.
    pub csrf: String,
    pub now: OffsetDateTime,
    pub expires: OffsetDateTime,
}

/// Leaves the CSRF token out of logs.
impl std::fmt::Debug for NewSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSession")
            .field("token_hash", &self.token_hash)
            .field("user", &self.user)
            .field("csrf", &"<redacted>")
            .field("now", &self.now)
            .field("expires", &self.expires)
            .finish()
    }
}

/// An API token as listed (never the token itself).
#[derive(Debug, Clone)]
pub struct ApiToken {
    pub id: i64,
    pub user: String,
    pub label: Option<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// The result of one delivery attempt of an outbox row.
#[derive(Debug, Clone)]
pub enum AttemptResult {
    Sent,
    /// Try again at `at`.
    Retry {
        at: OffsetDateTime,
        error: String,
    },
    /// Dead-lettered; `bouncing`: the user address to mark as bouncing (a 5xx).
    Dead {
        error: String,
        bouncing: Option<EmailAddress>,
    },
}

#[derive(Debug, Clone)]
pub struct Attempt {
    pub id: i64,
    pub result: AttemptResult,
}

#[derive(Debug, Clone)]
pub struct StoredFile {
    pub filename: String,
    pub content_type: String,
    pub data: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::sha256_hex;

    /// Blob keys are stored: a change of hash implementation must not change them
    /// (FIPS 180-2 test vectors).
    #[test]
    fn blob_keys_are_the_standard_sha256() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
