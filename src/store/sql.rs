//! Statements both backends run, written once with `$N` parameters, each
//! bound by its number on SQLite as on PostgreSQL (`sqlite` tests
//! `dollar_parameters_bind_by_number`). SQLite's delivery transaction binds
//! by position, so the ones it runs number their parameters in order of
//! first use (tested below).
//!
//! Only portable SQL: `CAST(x AS t)` rather than `x::t`, `TRUE` rather than
//! `1`. Times are bound and compared as each backend stores them (`read::Arg`).

/// The user columns `rows::user` reads.
macro_rules! user_columns {
    () => {
        "u.id, u.email, u.name, u.role, u.org_id, o.slug, u.locale, u.bouncing, u.active"
    };
}

/// The ticket list columns `rows::summary` reads.
macro_rules! summary_columns {
    () => {
        "t.id, t.subject, t.status, t.priority, u.email, o.slug, t.updated_at, u.name, o.name, \
         (SELECT ow.email FROM users ow WHERE ow.id = t.owner_id), t.response_due, t.responded_at, \
         t.resolve_due, t.close_reason"
    };
}

/// The ingest log columns `rows::log` reads.
macro_rules! log_columns {
    () => {
        "id, message_id, origin, sender, subject, outcome, reason, thread_reason, ticket_id, \
         comment_id, size, received_at, superseded, replay_of, raw_sha256, notify, discarded_at"
    };
}

/// The outbox columns `rows::outbox` reads.
macro_rules! outbox_columns {
    () => {
        "id, ticket_id, to_addr, to_user_id, locale, comment_id, template, subject, \
         message_id, status, attempts, reason, in_reply_to, refs, context"
    };
}

/// Claims due outbox rows; `$lock` is what the backend adds to the row
/// selection (PostgreSQL: `FOR UPDATE SKIP LOCKED`).
macro_rules! claim_outbox {
    ($lock:literal) => {
        concat!(
            "UPDATE outbox SET status = 'sending', lease_until = $1, attempts = attempts + 1
             WHERE id IN (SELECT id FROM outbox
                          WHERE (status IN ('queued', 'failed') AND next_attempt_at <= $2)
                             OR (status = 'sending' AND lease_until <= $2)
                          ORDER BY id LIMIT $3",
            $lock,
            ") RETURNING ",
            outbox_columns!()
        )
    };
}

pub const PING: &str = "SELECT 1";

/// The migrations sqlx recorded as applied (`Store::pending_migrations`).
pub const APPLIED_MIGRATIONS: &str = "SELECT version FROM _sqlx_migrations WHERE success";

pub const USER_BY_EMAIL: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM users u LEFT JOIN orgs o ON o.id = u.org_id WHERE u.email = $1"
);
pub const USER_BY_ID: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM users u LEFT JOIN orgs o ON o.id = u.org_id WHERE u.id = $1"
);
pub const LIST_USERS: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM users u LEFT JOIN orgs o ON o.id = u.org_id ORDER BY u.email"
);
pub const ORG_LEADS: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM org_leads l JOIN users u ON u.id = l.user_id LEFT JOIN orgs o ON o.id = u.org_id
     WHERE l.org_id = $1 ORDER BY u.email"
);
pub const STAFF_USERS: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM users u LEFT JOIN orgs o ON o.id = u.org_id
     WHERE u.role = 'staff' ORDER BY u.id"
);
/// `$1` the author's role, `$2` their org.
pub const REACHABLE_USERS: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM users u LEFT JOIN orgs o ON o.id = u.org_id
     WHERE $1 = 'staff'
        OR ($2 IS NOT NULL AND u.org_id = $2)
        OR u.id IN (SELECT user_id FROM org_leads WHERE org_id = $2)
     ORDER BY u.email"
);
pub const UPDATE_USER: &str =
    "UPDATE users SET name = COALESCE($2, name), role = COALESCE($3, role),
         locale = COALESCE($4, locale),
         org_id = CASE WHEN CAST($5 AS boolean) THEN CAST($6 AS bigint) ELSE org_id END,
         active = CASE WHEN CAST($7 AS boolean) THEN CAST($8 AS boolean) ELSE active END
     WHERE id = $1";

/// Every organization, with its domains and delivery leads, in three
/// statements (`Store::list_orgs`) rather than two per organization.
pub const ORGS: &str = "SELECT id, slug, name FROM orgs ORDER BY slug";
pub const ALL_ORG_DOMAINS: &str = "SELECT org_id, domain FROM org_domains ORDER BY org_id, domain";
pub const ALL_ORG_LEAD_EMAILS: &str =
    "SELECT l.org_id, u.email FROM org_leads l JOIN users u ON u.id = l.user_id
     ORDER BY l.org_id, u.email";
/// `TicketState` read outside a write (`Store::ticket_access`): the
/// ticket, its followers in the order they came, its organizations.
pub const TICKET_STATE: &str =
    "SELECT id, subject, status, priority, requester_id, root_message_id, last_message_id
     FROM tickets WHERE id = $1";
pub const TICKET_STATE_FOLLOWERS: &str =
    "SELECT f.user_id, u.email, u.name, u.locale, u.role, f.source, u.bouncing, u.active
     FROM followers f JOIN users u ON u.id = f.user_id
     WHERE f.ticket_id = $1 ORDER BY f.created_at, f.user_id";
pub const TICKET_STATE_ORGS: &str =
    "SELECT org_id FROM ticket_orgs WHERE ticket_id = $1 ORDER BY org_id";

/// By slug, name (any case) or id (`$2`, the key as a number).
pub const ORG_WHERE: &str =
    "SELECT id, slug, name FROM orgs WHERE slug = $1 OR lower(name) = lower($1) OR id = $2";
pub const ORG_DOMAINS: &str = "SELECT domain FROM org_domains WHERE org_id = $1 ORDER BY domain";
pub const ORG_LEAD_EMAILS: &str = "SELECT u.email FROM org_leads l JOIN users u ON u.id = l.user_id
     WHERE l.org_id = $1 ORDER BY u.email";
pub const ADD_ORG_LEAD: &str =
    "INSERT INTO org_leads (org_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING";
pub const REMOVE_ORG_LEAD: &str = "DELETE FROM org_leads WHERE org_id = $1 AND user_id = $2";

/// The head of every ticket list: `rows::summary`'s columns of `t`, with its
/// requester `u` and organization `o`. `list::tickets` adds the WHERE it
/// needs and the order.
pub const TICKET_SUMMARIES: &str = concat!(
    "SELECT ",
    summary_columns!(),
    " FROM tickets t JOIN users u ON u.id = t.requester_id LEFT JOIN orgs o ON o.id = t.org_id"
);
/// The time a ticket's next clock is due: the response's until the first
/// answer, then the resolution's; none once closed (docs/contract.md,
/// "Desk"). PostgreSQL orders by an output column's name only when it
/// stands alone, so the due order writes it out twice.
pub const NEXT_DUE: &str = "(CASE WHEN t.status IN ('closed', 'escalated') THEN NULL \
     WHEN t.responded_at IS NULL AND t.response_due IS NOT NULL THEN t.response_due \
     ELSE t.resolve_due END)";
/// The statuses of an open ticket, as an IN list: what the status indexes
/// look up, where `NOT IN` the closed ones would read every ticket.
macro_rules! open_statuses {
    () => {
        "('new', 'in_progress', 'blocked')"
    };
}
pub const OPEN_STATUSES: &str = open_statuses!();
/// Open tickets `$1` follows or `$2` (their org) is attached to, newest
/// first: the ids from their indexes (`followers_user`, `ticket_orgs_org`),
/// not a test of every ticket.
pub const OPEN_TICKETS_OF: &str = concat!(
    "SELECT ",
    summary_columns!(),
    " FROM tickets t JOIN users u ON u.id = t.requester_id LEFT JOIN orgs o ON o.id = t.org_id
     WHERE t.id IN (SELECT f.ticket_id FROM followers f WHERE f.user_id = $1
                    UNION ALL SELECT x.ticket_id FROM ticket_orgs x WHERE x.org_id = $2)
       AND t.status IN ",
    open_statuses!(),
    " ORDER BY t.updated_at DESC, t.id DESC LIMIT $3"
);

/// Open tickets for the staff's `#list`, latest update first: all of them,
/// the unassigned ones, or `$1`'s (an owner's id); `$N` the limit.
macro_rules! open_tickets_desk {
    ($($which:literal),*) => {
        concat!(
            "SELECT ",
            summary_columns!(),
            " FROM tickets t JOIN users u ON u.id = t.requester_id LEFT JOIN orgs o ON o.id = t.org_id
     WHERE t.status IN ",
            open_statuses!(),
            $($which),*
        )
    };
}
const OPEN_TICKETS_DESK: &str =
    open_tickets_desk!(" ORDER BY t.updated_at DESC, t.id DESC LIMIT $1");
const OPEN_TICKETS_UNASSIGNED: &str =
    open_tickets_desk!(" AND t.owner_id IS NULL ORDER BY t.updated_at DESC, t.id DESC LIMIT $1");
const OPEN_TICKETS_OWNED: &str =
    open_tickets_desk!(" AND t.owner_id = $1 ORDER BY t.updated_at DESC, t.id DESC LIMIT $2");

/// The `#list` statement for `owner`'s tickets (bound `[owner, limit]`),
/// the unassigned ones or all open ones (bound `[limit]`): one statement
/// each, so that each is planned with its own index (`tickets_owner`,
/// `tickets_status`) instead of testing every open ticket.
pub fn open_tickets_desk(owner: bool, unassigned: bool) -> &'static str {
    match (owner, unassigned) {
        (true, _) => OPEN_TICKETS_OWNED,
        (false, true) => OPEN_TICKETS_UNASSIGNED,
        (false, false) => OPEN_TICKETS_DESK,
    }
}

/// `rows::ticket_view`'s head.
pub const TICKET: &str =
    "SELECT t.id, t.subject, t.status, t.priority, u.email, o.slug, t.created_at, t.updated_at, t.release,
            (SELECT ow.email FROM users ow WHERE ow.id = t.owner_id), t.close_reason, t.merged_into,
            t.response_due, t.responded_at, t.resolve_due
     FROM tickets t JOIN users u ON u.id = t.requester_id LEFT JOIN orgs o ON o.id = t.org_id WHERE t.id = $1";
/// The desk's columns of a ticket, as `rows::desk` reads them.
pub const DESK: &str =
    "SELECT owner_id, close_reason, merged_into, created_at, updated_at, response_due,
            responded_at, resolve_due, resolve_spent, resolve_since, next_alarm_at
     FROM tickets WHERE id = $1";
/// Writes what `DESK` reads but the two times the ticket keeps itself.
pub const SET_DESK: &str = "UPDATE tickets SET owner_id = $2, close_reason = $3, merged_into = $4,
            response_due = $5, responded_at = $6, resolve_due = $7, resolve_spent = $8,
            resolve_since = $9, next_alarm_at = $10
     WHERE id = $1";
/// The claim of one alarm: the insert that takes the key sends it.
pub const CLAIM_ALARM: &str = "INSERT INTO ticket_alarms (ticket_id, kind, due_at, sent_at)
     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";
/// Open tickets by status and priority (`/metrics`), through `tickets_status`.
pub const OPEN_TICKET_COUNTS: &str = concat!(
    "SELECT status, priority, count(*) FROM tickets WHERE status IN ",
    open_statuses!(),
    " GROUP BY status, priority ORDER BY status, priority"
);
/// Tickets with an alarm due by `$1`, earliest first (`tickets_alarm`).
pub const DUE_ALARMS: &str =
    "SELECT id FROM tickets WHERE next_alarm_at <= $1 ORDER BY next_alarm_at, id LIMIT $2";
/// Tickets in status `$1` untouched since `$2`, oldest first, after
/// `($3, $4)` (`tickets_status`), whose quiet spell idle rule `$6` has not
/// fired on yet (its claim's `due_at` is the spell's start): what an idle
/// rule looks at, without a write for the tickets it already answered.
pub const IDLE_TICKETS: &str = "SELECT t.id, t.updated_at FROM tickets t
     WHERE t.status = $1 AND t.updated_at <= $2
       AND (t.updated_at > $3 OR (t.updated_at = $3 AND t.id > $4))
       AND NOT EXISTS (SELECT 1 FROM ticket_alarms a
                       WHERE a.ticket_id = t.id AND a.kind = $6 AND a.due_at = t.updated_at)
     ORDER BY t.updated_at, t.id LIMIT $5";
/// `Tx::merge_ticket`, in order: comments, followers (the requester of
/// `$1` follows `$2` as `follow`; one already there keeps their source),
/// organizations, then the Message-IDs that thread to `$1`.
pub const MERGE_COMMENTS: &str = "UPDATE comments SET ticket_id = $2 WHERE ticket_id = $1";
pub const MERGE_FOLLOWERS: &str = "INSERT INTO followers (ticket_id, user_id, source, created_at)
     SELECT $2, user_id, CASE WHEN source = 'creator' THEN 'follow' ELSE source END, $3
     FROM followers WHERE ticket_id = $1
     ON CONFLICT (ticket_id, user_id) DO NOTHING";
pub const MERGE_ORGS: &str = "INSERT INTO ticket_orgs (ticket_id, org_id)
     SELECT $2, org_id FROM ticket_orgs WHERE ticket_id = $1
     ON CONFLICT (ticket_id, org_id) DO NOTHING";
pub const MERGE_REFS: &str = "UPDATE message_refs SET ticket_id = $2 WHERE ticket_id = $1";
/// `rows::comment_place`.
pub const COMMENT_PLACE: &str = "SELECT ticket_id, author_id, internal FROM comments WHERE id = $1";
/// `Tx::move_comment`: the refs first, while the comment still names its
/// Message-ID's ticket, then the comment.
pub const MOVE_COMMENT_REFS: &str = "UPDATE message_refs SET ticket_id = $2
     WHERE (kind = 'received' AND message_id = (SELECT message_id FROM comments WHERE id = $1))
        OR (kind = 'sent' AND message_id IN (SELECT message_id FROM outbox WHERE comment_id = $1))";
pub const MOVE_COMMENT: &str = "UPDATE comments SET ticket_id = $2 WHERE id = $1";
pub const TICKET_ORGS: &str = "SELECT o.slug FROM ticket_orgs x JOIN orgs o ON o.id = x.org_id
     WHERE x.ticket_id = $1 ORDER BY o.slug";
pub const TICKET_FOLLOWERS: &str =
    "SELECT u.email, f.source, u.name FROM followers f JOIN users u ON u.id = f.user_id
     WHERE f.ticket_id = $1 ORDER BY f.created_at, f.user_id";
/// `CAST(body AS text)`: SQLite stores a body over 1 MB as a BLOB written in
/// place (see the SQLite `insert_comment`); read back, it is the same text.
pub const TICKET_COMMENTS: &str =
    "SELECT c.id, u.email, CAST(c.body AS text), c.signature, c.internal, c.source, c.message_id, c.created_at, u.name,
            (SELECT r.redacted_at FROM comment_redactions r WHERE r.comment_id = c.id)
     FROM comments c JOIN users u ON u.id = c.author_id WHERE c.ticket_id = $1 ORDER BY c.id";
/// The comments before `$2` (any, when NULL), newest first, `$3` of them:
/// a walk down `comments_ticket` that stops after a page.
pub const TICKET_COMMENTS_BEFORE: &str =
    "SELECT c.id, u.email, CAST(c.body AS text), c.signature, c.internal, c.source, c.message_id, c.created_at, u.name,
            (SELECT r.redacted_at FROM comment_redactions r WHERE r.comment_id = c.id)
     FROM comments c JOIN users u ON u.id = c.author_id
     WHERE c.ticket_id = $1 AND c.id < COALESCE(CAST($2 AS bigint), 9223372036854775807)
     ORDER BY c.id DESC LIMIT $3";
/// The attachments of a ticket's comments `$2` to `$3` (ids).
pub const TICKET_ATTACHMENTS_BETWEEN: &str =
    "SELECT a.id, a.comment_id, a.filename, a.content_type, a.size FROM attachments a
     JOIN comments c ON c.id = a.comment_id WHERE c.ticket_id = $1 AND c.id BETWEEN $2 AND $3 ORDER BY a.id";
/// The events from `$2` on (a page's first comment), and before `$3`.
pub const TICKET_EVENTS_FROM: &str = "SELECT e.kind, u.email, e.data, e.created_at FROM events e
     LEFT JOIN users u ON u.id = e.actor_id WHERE e.ticket_id = $1 AND e.created_at >= $2 ORDER BY e.id";
pub const TICKET_EVENTS_BETWEEN: &str = "SELECT e.kind, u.email, e.data, e.created_at FROM events e
     LEFT JOIN users u ON u.id = e.actor_id WHERE e.ticket_id = $1 AND e.created_at >= $2 AND e.created_at < $3
     ORDER BY e.id";
pub const COMMENT_CREATED: &str =
    "SELECT created_at FROM comments WHERE id = $1 AND ticket_id = $2";
pub const TICKET_ATTACHMENTS: &str =
    "SELECT a.id, a.comment_id, a.filename, a.content_type, a.size FROM attachments a
     JOIN comments c ON c.id = a.comment_id WHERE c.ticket_id = $1 ORDER BY a.id";
pub const TICKET_EVENTS: &str = "SELECT e.kind, u.email, e.data, e.created_at FROM events e
     LEFT JOIN users u ON u.id = e.actor_id WHERE e.ticket_id = $1 ORDER BY e.id";

/// `$1` outcome, `$2` after id, `$3` limit.
pub const LIST_LOG: &str = concat!(
    "SELECT ",
    log_columns!(),
    " FROM ingest_log WHERE (CAST($1 AS text) IS NULL OR outcome = $1) AND id > $2 ORDER BY id LIMIT $3"
);
pub const LOG_ROW: &str = concat!("SELECT ", log_columns!(), " FROM ingest_log WHERE id = $1");
/// Only a delivery still waiting for a decision: quarantined or rejected,
/// neither replayed nor discarded. `$2` now.
pub const DISCARD_LOG: &str = "UPDATE ingest_log SET discarded_at = $2
     WHERE id = $1 AND discarded_at IS NULL AND superseded = FALSE
       AND outcome IN ('quarantined', 'rejected')";

pub const BLOB: &str = "SELECT data FROM blobs WHERE sha256 = $1";
pub const ATTACHMENT: &str = "SELECT c.ticket_id, a.filename, a.content_type, b.data FROM attachments a
     JOIN comments c ON c.id = a.comment_id JOIN blobs b ON b.sha256 = a.blob_sha256 WHERE a.id = $1";
pub const COMMENT_FILES: &str = "SELECT a.filename, a.content_type, b.data FROM attachments a
     JOIN blobs b ON b.sha256 = a.blob_sha256 WHERE a.comment_id = $1 ORDER BY a.id";
pub const COMMENT_BODY: &str = "SELECT CAST(body AS text) FROM comments WHERE id = $1";
pub const SOURCE_CURSOR: &str = "SELECT validity, last_uid FROM source_cursors WHERE source = $1";

pub const CREATE_TOKEN: &str = "INSERT INTO api_tokens (user_id, token_sha256, label, created_at)
     VALUES ($1, $2, $3, $4) RETURNING id";
/// Tokens of user `$1`, or the one with id `$2`; either may be NULL (all).
pub const TOKENS_WHERE: &str =
    "SELECT t.id, u.email, t.label, t.created_at, t.last_used_at, t.revoked_at
     FROM api_tokens t JOIN users u ON u.id = t.user_id
     WHERE (CAST($1 AS bigint) IS NULL OR t.user_id = $1) AND (CAST($2 AS bigint) IS NULL OR t.id = $2)
     ORDER BY t.id";
pub const REVOKE_TOKEN: &str =
    "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";
/// A deactivated user's tokens stop working with them.
pub const LIVE_TOKEN: &str =
    "SELECT t.id, t.user_id FROM api_tokens t JOIN users u ON u.id = t.user_id
     WHERE t.token_sha256 = $1 AND t.revoked_at IS NULL AND u.active = TRUE";
/// Notes a token's use at `$2` unless it was noted after `$3` (a minute ago):
/// a busy API client must not turn every read into a disk sync.
pub const TOKEN_USED: &str = "UPDATE api_tokens SET last_used_at = $2
     WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $3)";

/// Runs on SQLite's write connection too (`Tx::insert_web_link`).
pub const INSERT_WEB_LINK: &str =
    "INSERT INTO web_links (token_hash, user_id, purpose, created_at, expires_at)
     VALUES ($1, $2, $3, $4, $5)";
/// The link an earlier attempt of a mail minted, unless it was used.
pub const DROP_UNUSED_WEB_LINK: &str =
    "DELETE FROM web_links WHERE token_hash = $1 AND used_at IS NULL";
pub const SET_OUTBOX_CONTEXT: &str = "UPDATE outbox SET context = $2 WHERE id = $1";
/// Single use: of two concurrent takes, the second finds `used_at` set (on
/// PostgreSQL it waits for the first one's row lock, then re-checks the row).
/// `$2` now.
pub const TAKE_WEB_LINK: &str = "UPDATE web_links SET used_at = $2
     WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING user_id";
/// `$4` now: created and last seen.
pub const CREATE_SESSION: &str =
    "INSERT INTO web_sessions (token_hash, user_id, csrf, created_at, expires_at, last_seen_at)
     VALUES ($1, $2, $3, $4, $5, $4)";
/// `$1` user, `$2` now: the first sign-in is kept (`portal_visitors`).
pub const NOTE_PORTAL_VISITOR: &str = "INSERT INTO portal_visitors (user_id, first_signed_in)
     VALUES ($1, $2) ON CONFLICT (user_id) DO NOTHING";
pub const HAS_SIGNED_IN: &str = "SELECT 1 FROM portal_visitors WHERE user_id = $1";
/// A session unexpired at `$2` of a user still active: its user
/// (`rows::user`), then csrf, last seen.
pub const LIVE_SESSION: &str = concat!(
    "SELECT ",
    user_columns!(),
    ", s.csrf, s.last_seen_at
     FROM web_sessions s JOIN users u ON u.id = s.user_id LEFT JOIN orgs o ON o.id = u.org_id
     WHERE s.token_hash = $1 AND s.expires_at > $2 AND u.active = TRUE"
);
/// Notes a session seen at `$2` unless it was after `$3` (a minute ago), as
/// `TOKEN_USED` does for tokens.
pub const SESSION_SEEN: &str = "UPDATE web_sessions SET last_seen_at = $2
     WHERE token_hash = $1 AND last_seen_at < $3";
pub const END_SESSION: &str = "DELETE FROM web_sessions WHERE token_hash = $1";
pub const PURGE_WEB_LINKS: &str = "DELETE FROM web_links WHERE expires_at <= $1";
pub const PURGE_WEB_SESSIONS: &str = "DELETE FROM web_sessions WHERE expires_at <= $1";

pub const CLAIM_OUTBOX: &str = claim_outbox!("");
/// SKIP LOCKED: rows another instance is claiming right now are left to it,
/// so two workers never take the same row and never wait on each other. The
/// lock lasts for this statement only; the lease protects the row during
/// delivery, and a lease that ran out (its sender died) makes the row due again.
pub const CLAIM_OUTBOX_SKIP_LOCKED: &str = claim_outbox!("\n FOR UPDATE SKIP LOCKED");
pub const LIST_OUTBOX: &str = concat!("SELECT ", outbox_columns!(), " FROM outbox ORDER BY id");
/// The rows not sent, by status, from `outbox_due` alone: sent rows are
/// most of the table and not counted.
pub const OUTBOX_COUNTS: &str = "SELECT status, count(*) FROM outbox
     WHERE status IN ('queued', 'sending', 'failed', 'dead') GROUP BY status";
/// Up to `$2` rows sent before `$1` (`outbox_sent`): a batch, so that a
/// large backlog never holds SQLite's writer for long.
pub const PURGE_SENT_OUTBOX: &str = "DELETE FROM outbox WHERE id IN
     (SELECT id FROM outbox WHERE status = 'sent' AND sent_at < $1 LIMIT $2)";
/// `$1` id, `$2` status, `$3` next attempt (NULL keeps it), `$4` error, `$5` now.
pub const RECORD_ATTEMPT: &str = "UPDATE outbox SET status = $2, next_attempt_at = COALESCE($3, next_attempt_at),
         lease_until = NULL, last_error = $4, sent_at = CASE WHEN $2 = 'sent' THEN $5 ELSE sent_at END
     WHERE id = $1";
/// A row claimed and never tried: `failed` again if it had failed before.
pub const RELEASE_OUTBOX: &str = "UPDATE outbox
     SET status = CASE WHEN last_error IS NULL THEN 'queued' ELSE 'failed' END,
         lease_until = NULL, attempts = attempts - 1
     WHERE id = $1 AND status = 'sending'";
pub const MARK_BOUNCING: &str = "UPDATE users SET bouncing = TRUE WHERE email = $1";

/// One statement: the conflict row is locked while its WHERE is checked, so
/// two instances racing for an expired lease cannot both win. `$3` expiry, `$4` now.
pub const ACQUIRE_LEASE: &str =
    "INSERT INTO mailbox_leases (name, holder, expires_at, acquired_at) VALUES ($1, $2, $3, $4)
     ON CONFLICT (name) DO UPDATE SET
         holder = excluded.holder,
         expires_at = excluded.expires_at,
         acquired_at = CASE WHEN mailbox_leases.holder = excluded.holder
                            THEN mailbox_leases.acquired_at ELSE excluded.acquired_at END
     WHERE mailbox_leases.expires_at <= $4 OR mailbox_leases.holder = $2";
pub const RELEASE_LEASE: &str = "DELETE FROM mailbox_leases WHERE name = $1 AND holder = $2";
pub const LEASE_HOLDER: &str = "SELECT holder, expires_at FROM mailbox_leases WHERE name = $1";

#[cfg(test)]
mod tests {
    use super::*;

    /// SQLite numbers `$N` parameters in order of first appearance, and the
    /// delivery transaction binds by position, so the statements it runs
    /// must number theirs so.
    #[test]
    fn write_connection_statements_number_parameters_in_order() {
        for sql in [
            USER_BY_EMAIL,
            USER_BY_ID,
            ORG_LEADS,
            STAFF_USERS,
            REACHABLE_USERS,
            ORG_WHERE,
            ORG_DOMAINS,
            ORG_LEAD_EMAILS,
            OPEN_TICKETS_OF,
            OPEN_TICKETS_DESK,
            OPEN_TICKETS_OWNED,
            OPEN_TICKETS_UNASSIGNED,
            INSERT_WEB_LINK,
        ] {
            let mut seen = 0;
            for (i, _) in sql.match_indices('$') {
                let n: usize = sql[i + 1..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
                    .parse()
                    .unwrap();
                assert!(n <= seen + 1, "${n} before ${} in {sql}", seen + 1);
                seen = seen.max(n);
            }
        }
    }
}
