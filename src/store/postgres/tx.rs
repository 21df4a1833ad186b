//! `Tx` on PostgreSQL: one delivery's reads and writes.

use super::*;

pub struct PgTx {
    pub(super) tx: Transaction<'static, sqlx::Postgres>,
    /// Writes held back until a statement needs them (see `Pending`).
    pub(super) held: Pending,
    /// Tickets whose row this transaction has locked, or created (invisible
    /// to others until commit): reading their state again needs no lock
    /// statement first, so it is one round trip.
    pub(super) locked: HashSet<TicketId>,
    /// Answers about orgs, which no `Tx` method changes, asked once per
    /// transaction: a batch of mail from one org asks once, not per message.
    pub(super) domain_orgs: HashMap<String, Option<OrgId>>,
    pub(super) slugs: HashMap<OrgId, String>,
    pub(super) leads: HashMap<OrgId, Vec<User>>,
    pub(super) known: Known,
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
                    active: true,
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

    async fn desk(&mut self, ticket: TicketId) -> Result<Option<Desk>> {
        self.flush_if(Table::ANY_TICKETS).await?;
        crate::store::read::Conn::opt(&mut *self.tx, sql::DESK, &[ticket.into()])
            .await?
            .as_ref()
            .map(rows::desk)
            .transpose()
    }

    async fn set_desk(&mut self, ticket: TicketId, desk: &Desk) -> Result<()> {
        self.flush_if(Table::ANY_TICKETS).await?;
        crate::store::read::Conn::run(&mut *self.tx, sql::SET_DESK, &desk.args(ticket)).await?;
        Ok(())
    }

    async fn merge_ticket(
        &mut self,
        from: TicketId,
        into: TicketId,
        now: OffsetDateTime,
    ) -> Result<()> {
        // Every held comment, follower, org link and ref is written first,
        // so the statements below move them too.
        self.flush_if(Table::ALL).await?;
        let args = [from.into(), into.into()];
        crate::store::read::Conn::run(&mut *self.tx, sql::MERGE_COMMENTS, &args).await?;
        let with_now = [from.into(), into.into(), now.into()];
        crate::store::read::Conn::run(&mut *self.tx, sql::MERGE_FOLLOWERS, &with_now).await?;
        crate::store::read::Conn::run(&mut *self.tx, sql::MERGE_ORGS, &args).await?;
        crate::store::read::Conn::run(&mut *self.tx, sql::MERGE_REFS, &args).await?;
        self.forget_threading(&[from, into]);
        Ok(())
    }

    async fn comment_place(&mut self, comment: CommentId) -> Result<Option<CommentPlace>> {
        self.flush_if(Table::COMMENTS | Table::ANY_TICKETS | Table::USERS)
            .await?;
        crate::store::read::Conn::opt(&mut *self.tx, sql::COMMENT_PLACE, &[comment.into()])
            .await?
            .as_ref()
            .map(rows::comment_place)
            .transpose()
    }

    async fn move_comment(&mut self, comment: CommentId, to: TicketId) -> Result<()> {
        self.flush_if(Table::ALL).await?;
        let args = [comment.into(), to.into()];
        crate::store::read::Conn::run(&mut *self.tx, sql::MOVE_COMMENT_REFS, &args).await?;
        crate::store::read::Conn::run(&mut *self.tx, sql::MOVE_COMMENT, &args).await?;
        self.forget_threading(&[to]);
        Ok(())
    }

    async fn claim_alarm(
        &mut self,
        ticket: TicketId,
        kind: &str,
        due: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool> {
        let args = [ticket.into(), kind.into(), due.into(), now.into()];
        Ok(crate::store::read::Conn::run(&mut *self.tx, sql::CLAIM_ALARM, &args).await? == 1)
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
        let leads = sqlx::query(sql::ORG_LEADS)
            .bind(org)
            .fetch_all(&mut *self.tx)
            .await
            .q()?
            .iter()
            .map(rows::user)
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

    async fn has_signed_in(&mut self, user: UserId) -> Result<bool> {
        // Written by the portal outside any delivery: nothing pending to flush.
        let found = sqlx::query(sql::HAS_SIGNED_IN)
            .bind(user)
            .fetch_optional(&mut *self.tx)
            .await
            .q()?;
        Ok(found.is_some())
    }

    async fn user_by_id(&mut self, id: UserId) -> Result<Option<User>> {
        self.flush_if(Table::USERS).await?;
        user_where(&mut self.tx, None, Some(id)).await
    }

    async fn staff_users(&mut self) -> Result<Vec<User>> {
        self.flush_if(Table::USERS).await?;
        sqlx::query(sql::STAFF_USERS)
            .fetch_all(&mut *self.tx)
            .await
            .q()?
            .iter()
            .map(rows::user)
            .collect()
    }

    async fn reachable_users(&mut self, author: &User) -> Result<Vec<User>> {
        self.flush_if(Table::USERS).await?;
        sqlx::query(sql::REACHABLE_USERS)
            .bind(author.role.as_str())
            .bind(author.org_id)
            .fetch_all(&mut *self.tx)
            .await
            .q()?
            .iter()
            .map(rows::user)
            .collect()
    }

    async fn open_tickets_of(&mut self, user: &User, limit: i64) -> Result<Vec<TicketSummary>> {
        self.flush_if(Table::ANY_TICKETS | Table::TICKET_ORGS | Table::FOLLOWERS | Table::USERS)
            .await?;
        sqlx::query(sql::OPEN_TICKETS_OF)
            .bind(user.id)
            .bind(user.org_id)
            .bind(limit)
            .fetch_all(&mut *self.tx)
            .await
            .q()?
            .iter()
            .map(rows::summary)
            .collect()
    }

    async fn open_tickets_desk(
        &mut self,
        owner: Option<UserId>,
        unassigned: bool,
        limit: i64,
    ) -> Result<Vec<TicketSummary>> {
        self.flush_if(Table::ANY_TICKETS | Table::USERS).await?;
        let sql = sql::open_tickets_desk(owner.is_some(), unassigned);
        let args = match owner {
            Some(owner) => vec![owner.into(), limit.into()],
            None => vec![limit.into()],
        };
        crate::store::read::Conn::all(&mut *self.tx, sql, &args)
            .await?
            .iter()
            .map(rows::summary)
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
             WHERE id = $1 AND NOT superseded AND discarded_at IS NULL
               AND outcome IN ('quarantined', 'rejected')",
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

    async fn insert_web_link(&mut self, link: &NewWebLink) -> Result<()> {
        // The invited user may be one this transaction registered, held back
        // until a flush: the link's foreign key needs the row now.
        self.flush_if(Table::USERS).await?;
        sqlx::query(sql::INSERT_WEB_LINK)
            .bind(&link.token_hash)
            .bind(link.user)
            .bind(link.purpose.as_str())
            .bind(link.now)
            .bind(link.expires)
            .execute(&mut *self.tx)
            .await
            .q()?;
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<()> {
        self.flush_if(Table::ALL).await?;
        self.tx.commit().await.q()
    }
}
