//! What a transaction reads ahead and remembers (`Known`), and the ids it draws ahead.

use super::*;

/// The `keys` that `known` has no answer for yet, each once, sorted: what a
/// look-ahead read still has to ask the server.
pub(super) fn unasked<'k, V>(keys: &[&'k str], known: &HashMap<String, V>) -> Vec<&'k str> {
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
pub(super) fn logged_from_row(r: &PgRow, first: usize) -> Result<LoggedMessage> {
    Ok(LoggedMessage {
        id: r.try_get(first).q()?,
        outcome: parse_col(r, "outcome")?,
        ticket_id: r.try_get(first + 2).q()?,
        comment_id: r.try_get(first + 3).q()?,
    })
}

pub(super) async fn user_where(
    conn: &mut PgConnection,
    email: Option<&EmailAddress>,
    id: Option<UserId>,
) -> Result<Option<User>> {
    let row = sqlx::query(
        "SELECT u.id, u.email, u.name, u.role, u.org_id, o.slug, u.locale, u.bouncing, u.active
         FROM users u LEFT JOIN orgs o ON o.id = u.org_id
         WHERE u.email = $1 OR u.id = $2",
    )
    .bind(email.map(|e| e.as_str().to_string()))
    .bind(id)
    .fetch_optional(conn)
    .await
    .q()?;
    row.map(|r| rows::user(&r)).transpose()
}

/// What this transaction has read, kept current by its own writes, so a
/// batch reads each thing once (most of it in `look_ahead`) instead of once
/// per message. Rows other instances commit meanwhile are not seen; the ones
/// that matter cannot be missed: a second log row for a dedup key, or a
/// second user for an address, fails the commit on a unique index
/// (`Conflict`, and ingest records the batch one by one), and the tickets
/// read here are locked.
#[derive(Default)]
pub(super) struct Known {
    /// Dedup key: its logged accepted delivery, or `None` when there is none.
    pub(super) logged: HashMap<String, Option<LoggedMessage>>,
    /// Email address: its user, or `None`.
    pub(super) users: HashMap<String, Option<User>>,
    /// Message-ID: its ticket as the table had it (held refs are in `Pending`).
    pub(super) refs: HashMap<String, Option<TicketId>>,
    /// Locked tickets, as of this transaction's writes.
    pub(super) states: HashMap<TicketId, TicketState>,
    /// Address: when its last automatic reply went out, for the rows
    /// `look_ahead` locked, or `None` where it found no row.
    pub(super) auto_replies: HashMap<String, Option<OffsetDateTime>>,
    /// Senders `look_ahead` found unregistered: how many user ids to draw.
    pub(super) unknown_senders: usize,
    /// Tickets created in this transaction, whose followers are all known:
    /// when each was added, in the order of their `followers` (the table's
    /// order: by time, then user id).
    pub(super) fresh: HashMap<TicketId, Vec<OffsetDateTime>>,
    /// Deliveries announced by `look_ahead` and not logged yet: how many ids
    /// to draw at a time. Zero outside a look-ahead batch, where rows are
    /// inserted at once instead (no gaps in ids for one delivery).
    pub(super) deliveries_left: usize,
    /// Ids drawn ahead per `Seq`, the next one last.
    pub(super) ids: [Vec<i64>; 4],
}

/// Tables whose ids `PgTx::draw_id` draws ahead.
#[derive(Clone, Copy)]
pub(super) enum Seq {
    Log,
    Comments,
    Outbox,
    Users,
}

impl Seq {
    pub(super) fn table(self) -> &'static str {
        match self {
            Seq::Log => "ingest_log",
            Seq::Comments => "comments",
            Seq::Outbox => "outbox",
            Seq::Users => "users",
        }
    }
}

impl PgTx {
    pub(super) fn new(tx: Transaction<'static, sqlx::Postgres>) -> Self {
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
    pub(super) async fn draw_id(&mut self, seq: Seq) -> Result<Option<i64>> {
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
    pub(super) async fn log_now(&mut self, e: &NewLogEntry) -> Result<i64> {
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
    pub(super) async fn lock_and_read(&mut self, ids: &[TicketId]) -> Result<()> {
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
                    f.user_id, u.email, u.name, u.locale, u.role, f.source, u.bouncing, u.active
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
                    active: f.try_get("active").q()?,
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
    pub(super) fn add_fresh_follower(
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
                active: u.active,
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
    pub(super) async fn read_logged(&mut self, keys: &[&str]) -> Result<()> {
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
    pub(super) async fn read_users(&mut self, emails: &[&str]) -> Result<()> {
        self.flush_if(Table::USERS).await?;
        let emails = unasked(emails, &self.known.users);
        if emails.is_empty() {
            return Ok(());
        }
        let rows = sqlx::query(
            "SELECT u.id, u.email, u.name, u.role, u.org_id, o.slug, u.locale, u.bouncing, u.active
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
            let user = rows::user(&r)?;
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
    pub(super) async fn read_auto_replies(&mut self, addresses: &[&str]) -> Result<()> {
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
    pub(super) async fn read_refs(&mut self, ids: &[&str]) -> Result<()> {
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

    /// After a merge or a move: the cached states of `tickets` (followers,
    /// orgs) and every cached Message-ID's ticket may be wrong, so they are
    /// read again when next asked (the rows stay locked).
    pub(super) fn forget_threading(&mut self, tickets: &[TicketId]) {
        for t in tickets {
            self.known.states.remove(t);
            self.known.fresh.remove(t);
        }
        self.known.refs.clear();
    }

    /// The held refs are about to be stored: an id known to be absent will
    /// then have the held ticket. (An id not asked about yet is asked when
    /// it is; one already stored keeps its ticket.)
    pub(super) fn settle_refs(&mut self) {
        for (id, ticket, _, _) in &self.held.refs {
            if let Some(known @ None) = self.known.refs.get_mut(id) {
                *known = Some(*ticket);
            }
        }
    }

    /// Sends the held-back writes if any of them are to `tables`: called by
    /// every statement that reads or writes one of those tables (or refers
    /// to them by foreign key), so it sees what came before it.
    pub(super) async fn flush_if(&mut self, tables: u16) -> Result<()> {
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
