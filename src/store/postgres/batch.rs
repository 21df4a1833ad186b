//! Held rows: writes nobody reads back, sent in one statement per flush.

use super::*;

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
pub(super) struct Pending {
    /// `Table` bits with held-back rows.
    pub(super) tables: u16,
    pub(super) blob_sha: Vec<String>,
    pub(super) blob_size: Vec<i64>,
    pub(super) blob_data: Vec<Vec<u8>>,
    pub(super) event_ticket: Vec<i64>,
    pub(super) event_kind: Vec<&'static str>,
    pub(super) event_actor: Vec<Option<i64>>,
    pub(super) event_data: Vec<String>,
    pub(super) event_at: Vec<OffsetDateTime>,
    /// One entry per Message-ID, merged as consecutive upserts would have
    /// left it (one statement cannot upsert the same row twice).
    pub(super) refs: Vec<(String, i64, RefKind, OffsetDateTime)>,
    /// Position in `refs` by Message-ID: a batch holds hundreds.
    pub(super) ref_index: HashMap<String, usize>,
    pub(super) ticket_orgs: Vec<(i64, i64)>,
    /// `update_ticket` per ticket, merged: the later call wins, an absent
    /// Message-ID keeps the earlier one (as `COALESCE` would have).
    pub(super) ticket_updates: Vec<(i64, Status, Option<MessageId>, OffsetDateTime)>,
    pub(super) cursors: Vec<(String, i64, i64, OffsetDateTime)>,
    /// Rows whose id was drawn ahead (`PgTx::draw_id`), so nothing waits
    /// for their insert.
    pub(super) comments: Vec<HeldComment>,
    pub(super) outbox: Vec<HeldOutbox>,
    pub(super) log: Vec<HeldLog>,
    /// Followers of tickets created in this transaction (`Known::fresh`).
    pub(super) followers: Vec<(i64, i64, &'static str, OffsetDateTime)>,
    pub(super) users: Vec<HeldUser>,
    /// Automatic-reply claims decided from `Known::auto_replies`: on rows
    /// this transaction has locked, and on addresses that had none.
    pub(super) claims_seen: Vec<(String, OffsetDateTime)>,
    pub(super) claims_new: Vec<(String, OffsetDateTime)>,
    /// Tickets created in a look-ahead batch, their ids from the sequence.
    pub(super) new_tickets: Vec<HeldTicket>,
}

pub(super) struct HeldTicket {
    pub(super) id: i64,
    pub(super) subject: String,
    pub(super) status: Status,
    pub(super) requester_id: i64,
    pub(super) org_id: Option<i64>,
    pub(super) root: Option<String>,
    pub(super) last: Option<String>,
    pub(super) created_at: OffsetDateTime,
    pub(super) updated_at: OffsetDateTime,
}

pub(super) struct HeldUser {
    pub(super) id: i64,
    pub(super) email: String,
    pub(super) name: String,
    pub(super) role: &'static str,
    pub(super) org_id: Option<i64>,
    pub(super) locale: String,
    pub(super) at: OffsetDateTime,
}

pub(super) struct HeldComment {
    pub(super) id: i64,
    pub(super) ticket_id: i64,
    pub(super) author_id: i64,
    pub(super) body: String,
    pub(super) signature: Option<String>,
    pub(super) quoted: Option<String>,
    pub(super) internal: bool,
    pub(super) source: &'static str,
    pub(super) message_id: Option<String>,
    pub(super) ingest_id: Option<i64>,
    pub(super) at: OffsetDateTime,
}

pub(super) struct HeldOutbox {
    pub(super) id: i64,
    pub(super) ticket_id: Option<i64>,
    pub(super) template: String,
    pub(super) to: String,
    pub(super) to_user_id: Option<i64>,
    pub(super) reason: String,
    pub(super) message_id: String,
    pub(super) in_reply_to: Option<String>,
    pub(super) refs: Option<String>,
    pub(super) subject: String,
    pub(super) context: String,
    pub(super) at: OffsetDateTime,
    pub(super) locale: String,
    pub(super) comment_id: Option<i64>,
}

pub(super) struct HeldLog {
    pub(super) id: i64,
    pub(super) dedup_key: String,
    pub(super) message_id: Option<String>,
    pub(super) origin: String,
    pub(super) raw_sha256: String,
    pub(super) size: i64,
    pub(super) sender: Option<String>,
    pub(super) subject: Option<String>,
    pub(super) outcome: &'static str,
    pub(super) reason: Option<String>,
    pub(super) thread_reason: Option<String>,
    pub(super) ticket_id: Option<i64>,
    pub(super) comment_id: Option<i64>,
    pub(super) duplicate_of: Option<i64>,
    pub(super) notify: bool,
    pub(super) at: OffsetDateTime,
    pub(super) replay_of: Option<i64>,
}

/// One column of held rows, as the array `unnest` takes.
pub(super) fn col<R, T>(rows: &[R], f: impl Fn(&R) -> T) -> Vec<T> {
    rows.iter().map(f).collect()
}

/// Tables `Pending` holds rows for, as bits of `Pending::tables`.
pub(super) struct Table;

impl Table {
    pub(super) const BLOBS: u16 = 1;
    pub(super) const EVENTS: u16 = 2;
    pub(super) const REFS: u16 = 4;
    pub(super) const TICKET_ORGS: u16 = 8;
    pub(super) const TICKETS: u16 = 16;
    pub(super) const CURSORS: u16 = 32;
    pub(super) const COMMENTS: u16 = 64;
    pub(super) const OUTBOX: u16 = 128;
    pub(super) const LOG: u16 = 256;
    pub(super) const FOLLOWERS: u16 = 512;
    pub(super) const USERS: u16 = 1024;
    pub(super) const CLAIMS_SEEN: u16 = 2048;
    pub(super) const CLAIMS_NEW: u16 = 4096;
    /// Tickets created in a look-ahead batch (`PgTx::insert_ticket`).
    pub(super) const NEW_TICKETS: u16 = 8192;
    pub(super) const ALL: u16 = 16383;
    /// What a statement on `tickets`, or on a row that refers to a ticket,
    /// must see written first.
    pub(super) const ANY_TICKETS: u16 = Self::TICKETS | Self::NEW_TICKETS;
}

/// Blobs up to this size wait for the flush; larger ones (attachments) are
/// written at once rather than copied and held in memory.
pub(super) const HELD_BLOB_MAX: usize = 64 * 1024;

/// The flush: one data-modifying CTE per table that holds rows, each fed by
/// `unnest` over parallel arrays, in `Table` bit order. Only those tables:
/// every CTE costs the server an executor node, relation and index opens
/// and its foreign-key trigger setup even when its arrays are empty, which
/// made a six-part flush the most expensive statement of a delivery.
/// Foreign keys are checked at the end of the statement, so the order of
/// the CTEs does not matter. `{}` marks a parameter, numbered when built.
pub(super) const FLUSH_PARTS: [&str; 14] = [
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
pub(super) const LOG_INSERT: &str = "log AS (INSERT INTO ingest_log (dedup_key, message_id, origin, raw_sha256, size, sender, subject, outcome,
                                    reason, thread_reason, ticket_id, comment_id, duplicate_of, notify, received_at, replay_of)
             VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}) RETURNING id)
             SELECT id FROM log";

/// A ticket insert, as the last part of a `WITH` (subject, status,
/// requester, org, root Message-ID twice, time twice).
pub(super) const TICKET_INSERT: &str = "t AS (INSERT INTO tickets (subject, status, requester_id, org_id, root_message_id, last_message_id,
                                  created_at, updated_at)
             VALUES ({}, {}, {}, {}, {}, {}, {}, {}) RETURNING id)
             SELECT id FROM t";

/// What a flush statement ends in, after the held rows.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Tail {
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
pub(super) fn flush_sql(tables: u16, tail: Tail) -> &'static str {
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
    pub(super) fn put_blob(&mut self, sha256: &str, data: &[u8]) {
        self.tables |= Table::BLOBS;
        self.blob_sha.push(sha256.to_string());
        self.blob_size.push(data.len() as i64);
        self.blob_data.push(data.to_vec());
    }

    pub(super) fn event(&mut self, e: &NewEvent) {
        self.tables |= Table::EVENTS;
        self.event_ticket.push(e.ticket_id);
        self.event_kind.push(e.event.kind());
        self.event_actor.push(e.actor_id);
        self.event_data.push(e.event.data().to_string());
        self.event_at.push(e.now);
    }

    /// Same result as upserting one by one: the first insert of an id wins
    /// (ticket, time); a `referenced` entry is upgraded by the first later
    /// kind that is not `referenced`, and then stays.
    pub(super) fn remember_ref(
        &mut self,
        id: &str,
        ticket: i64,
        kind: RefKind,
        now: OffsetDateTime,
    ) {
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
    pub(super) fn held_ref(&self, id: &str) -> Option<i64> {
        self.ref_index.get(id).map(|&at| self.refs[at].1)
    }

    pub(super) fn comment(&mut self, id: i64, c: &NewComment<'_>) {
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

    pub(super) fn outbox(&mut self, id: i64, row: &NewOutbox) {
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

    pub(super) fn log(&mut self, id: i64, e: &NewLogEntry) {
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

    pub(super) fn new_ticket(&mut self, id: i64, t: &NewTicket) {
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

    pub(super) fn attach_org(&mut self, ticket: i64, org: i64) {
        self.tables |= Table::TICKET_ORGS;
        if !self.ticket_orgs.contains(&(ticket, org)) {
            self.ticket_orgs.push((ticket, org));
        }
    }

    pub(super) fn update_ticket(
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
    pub(super) fn overlay(&self, state: &mut TicketState) {
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
    pub(super) fn advance_cursor(
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
    pub(super) fn bind<'q>(
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
