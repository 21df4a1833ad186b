//! SQLite's one write transaction, on the write connection: a delivery
//! (`Tx`), the shared `Store`'s short writes (`SqliteConn`) and the admin
//! writes all begin, commit and roll back here.

use super::*;

pub struct SqliteTx {
    pub(super) conn: tokio::sync::OwnedMutexGuard<rusqlite::Connection>,
    /// Still inside BEGIN: dropping rolls back (also when the task is cancelled).
    pub(super) open: bool,
}

impl SqliteTx {
    /// Takes the write connection and begins (see `begin_immediate`).
    pub(super) async fn begin(writer: &Writer) -> Result<Self> {
        let mut conn = writer.clone().lock_owned().await;
        begin_immediate(&mut conn).await?;
        Ok(Self { conn, open: true })
    }

    /// [`SqliteTx::begin`], counted in `waiting` while it waits for another
    /// write to end (`SqliteStore::writers_waiting`).
    pub(super) async fn begin_counted(
        writer: &Writer,
        waiting: &std::sync::atomic::AtomicUsize,
    ) -> Result<Self> {
        let mut conn = match writer.clone().try_lock_owned() {
            Ok(conn) => conn,
            Err(_) => {
                let _counted = Counted::new(waiting);
                writer.clone().lock_owned().await
            }
        };
        begin_immediate(&mut conn).await?;
        Ok(Self { conn, open: true })
    }

    /// Commits. Inline: holding the write lock, COMMIT waits for nobody; its
    /// fsync (about a millisecond here) is shorter than handing the worker's
    /// other tasks to another thread, which `block_in_place` does.
    pub(super) fn finish(mut self) -> Result<()> {
        self.conn.execute_batch("COMMIT").r()?;
        self.open = false;
        Ok(())
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        if self.open
            && let Err(e) = self.conn.execute_batch("ROLLBACK")
        {
            tracing::warn!(error = %e, "sqlite rollback failed");
        }
    }
}

pub(super) fn user_by_email(
    conn: &rusqlite::Connection,
    email: &EmailAddress,
) -> Result<Option<User>> {
    row(conn, sql::USER_BY_EMAIL, [email.as_str()], rows::user)
}

pub(super) fn user_by_id(conn: &rusqlite::Connection, id: UserId) -> Result<Option<User>> {
    row(conn, sql::USER_BY_ID, [id], rows::user)
}

pub(super) fn insert_user(
    conn: &rusqlite::Connection,
    user: &NewUser,
    now: OffsetDateTime,
) -> Result<User> {
    let id = insert_id(
        conn,
        "INSERT INTO users (email, name, role, org_id, locale, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
        rusqlite::params![
            user.email.as_str(),
            user.name,
            user.role.as_str(),
            user.org_id,
            user.locale,
            format_ts(now)
        ],
    )?;
    user_by_id(conn, id)?.ok_or_else(|| StoreError::NotFound(format!("user {id}")))
}

pub(super) fn org_where(conn: &rusqlite::Connection, key: &str) -> Result<Option<Org>> {
    let found = row(
        conn,
        sql::ORG_WHERE,
        rusqlite::params![key, key.parse::<i64>().ok()],
        |r| Ok((r.i64_at(0)?, r.text_at(1)?, r.text_at(2)?)),
    )?;
    found
        .map(|(id, slug, name)| org_details(conn, id, slug, name))
        .transpose()
}

pub(super) fn org_details(
    conn: &rusqlite::Connection,
    id: OrgId,
    slug: String,
    name: String,
) -> Result<Org> {
    let domains = rows(conn, sql::ORG_DOMAINS, [id], |r| r.text_at(0))?;
    let leads = rows(conn, sql::ORG_LEAD_EMAILS, [id], |r| r.text_at(0))?;
    Ok(Org {
        id,
        slug,
        name,
        domains,
        leads,
    })
}

#[async_trait]
impl Tx for SqliteTx {
    async fn put_blob(&mut self, sha256: &str, data: &[u8]) -> Result<()> {
        if data.len() <= BLOB_INLINE {
            execute(
                &self.conn,
                "INSERT INTO blobs (sha256, size, data) VALUES (?1, ?2, ?3) ON CONFLICT (sha256) DO NOTHING",
                rusqlite::params![sha256, data.len() as i64, data],
            )?;
            return Ok(());
        }
        // A bound value is copied by SQLite (SQLITE_TRANSIENT) and again into
        // the row record; for a 25 MB attachment those copies are most of the
        // peak memory. Reserve the row with zeroblob() and write in place.
        let row_id = row(
            &self.conn,
            "INSERT INTO blobs (sha256, size, data) VALUES (?1, ?2, zeroblob(?2))
             ON CONFLICT (sha256) DO NOTHING RETURNING rowid",
            rusqlite::params![sha256, data.len() as i64],
            |r| r.i64_at(0),
        )?;
        let Some(row_id) = row_id else {
            return Ok(()); // already stored
        };
        let conn = &self.conn;
        may_block(|| {
            let mut blob = conn
                .blob_open(rusqlite::MAIN_DB, "blobs", "data", row_id, false)
                .r()?;
            for (i, chunk) in data.chunks(BLOB_INLINE).enumerate() {
                blob.write_at(chunk, i * BLOB_INLINE).r()?;
            }
            Ok(())
        })
    }

    async fn find_logged(&mut self, dedup_key: &str) -> Result<Option<LoggedMessage>> {
        row(
            &self.conn,
            "SELECT id, outcome, ticket_id, comment_id FROM ingest_log WHERE dedup_key = ?1 AND outcome IN ('ticket_created', 'comment_added', 'command_only')",
            [dedup_key],
            |r| {
                Ok(LoggedMessage {
                    id: r.i64_at(0)?,
                    outcome: r.parse_at(1)?,
                    ticket_id: r.opt_i64_at(2)?,
                    comment_id: r.opt_i64_at(3)?,
                })
            },
        )
    }

    async fn user_by_email(&mut self, email: &EmailAddress) -> Result<Option<User>> {
        user_by_email(&self.conn, email)
    }

    async fn org_for_domain(&mut self, domain: &str) -> Result<Option<OrgId>> {
        row(
            &self.conn,
            "SELECT org_id FROM org_domains WHERE domain = ?1",
            [domain.to_ascii_lowercase()],
            |r| r.i64_at(0),
        )
    }

    async fn insert_user(&mut self, user: &NewUser, now: OffsetDateTime) -> Result<User> {
        insert_user(&self.conn, user, now)
    }

    async fn tickets_of(&mut self, ids: &[MessageId]) -> Result<HashMap<MessageId, TicketId>> {
        let mut out = HashMap::new();
        for id in ids {
            if let Some(ticket) = row(
                &self.conn,
                "SELECT ticket_id FROM message_refs WHERE message_id = ?1",
                [id.as_str()],
                |r| r.i64_at(0),
            )? {
                out.insert(id.clone(), ticket);
            }
        }
        Ok(out)
    }

    async fn ticket_state(&mut self, id: TicketId) -> Result<Option<TicketState>> {
        let Some(mut state) = row(
            &self.conn,
            "SELECT id, subject, status, priority, requester_id, root_message_id, last_message_id
             FROM tickets WHERE id = ?1",
            [id],
            |r| {
                Ok(TicketState {
                    id: r.i64_at(0)?,
                    subject: r.text_at(1)?,
                    status: r.parse_at(2)?,
                    priority: r.opt_parse_at(3)?,
                    requester_id: r.i64_at(4)?,
                    root_message_id: r.opt_text_at(5)?.and_then(|t| MessageId::parse(&t).ok()),
                    last_message_id: r.opt_text_at(6)?.and_then(|t| MessageId::parse(&t).ok()),
                    followers: Vec::new(),
                    orgs: Vec::new(),
                })
            },
        )?
        else {
            return Ok(None);
        };
        state.followers = rows(
            &self.conn,
            "SELECT f.user_id, u.email, u.name, u.locale, u.role, f.source, u.bouncing, u.active
             FROM followers f JOIN users u ON u.id = f.user_id
             WHERE f.ticket_id = ?1 ORDER BY f.created_at, f.user_id",
            [id],
            |r| {
                Ok(Follower {
                    user: r.i64_at(0)?,
                    email: r.email_at(1)?,
                    name: r.text_at(2)?,
                    locale: r.text_at(3)?,
                    role: r.parse_at(4)?,
                    source: r.parse_at(5)?,
                    bouncing: r.bool_at(6)?,
                    active: r.bool_at(7)?,
                })
            },
        )?;
        state.orgs = rows(
            &self.conn,
            "SELECT org_id FROM ticket_orgs WHERE ticket_id = ?1 ORDER BY org_id",
            [id],
            |r| r.i64_at(0),
        )?;
        Ok(Some(state))
    }

    async fn insert_ticket(&mut self, t: &NewTicket) -> Result<TicketId> {
        insert_id(
            &self.conn,
            "INSERT INTO tickets (subject, status, requester_id, org_id, root_message_id, last_message_id, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?6) RETURNING id",
            rusqlite::params![
                t.subject,
                t.status.as_str(),
                t.requester_id,
                t.org_id,
                t.root_message_id.as_ref().map(MessageId::as_str),
                format_ts(t.now)
            ],
        )
    }

    async fn add_follower(
        &mut self,
        ticket: TicketId,
        user: UserId,
        source: FollowerSource,
        now: OffsetDateTime,
    ) -> Result<bool> {
        let n = execute(
            &self.conn,
            "INSERT INTO followers (ticket_id, user_id, source, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (ticket_id, user_id) DO NOTHING",
            rusqlite::params![ticket, user, source.as_str(), format_ts(now)],
        )?;
        Ok(n == 1)
    }

    async fn attach_org(&mut self, ticket: TicketId, org: OrgId) -> Result<()> {
        execute(
            &self.conn,
            "INSERT INTO ticket_orgs (ticket_id, org_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            [ticket, org],
        )?;
        Ok(())
    }

    async fn insert_comment(&mut self, c: &NewComment<'_>) -> Result<CommentId> {
        // A large body is reserved with zeroblob() and written in place, as
        // `put_blob` does: bound as text, SQLite would copy it twice (the
        // bound value, the record), and a 10 MB message would peak over 4x
        // its size (README "Hostile input"). Stored as a BLOB, it is read back through
        // CAST(body AS text) (store::sql).
        let large = c.body.len() > BLOB_INLINE;
        let (body, sql) = if large {
            (
                rusqlite::types::ToSqlOutput::from(c.body.len() as i64),
                "INSERT INTO comments (ticket_id, author_id, body, signature, quoted, internal, source, message_id, ingest_id, created_at)
                 VALUES (?1, ?2, zeroblob(?3), ?4, ?5, ?6, ?7, ?8, ?9, ?10) RETURNING id",
            )
        } else {
            (
                rusqlite::types::ToSqlOutput::from(c.body),
                "INSERT INTO comments (ticket_id, author_id, body, signature, quoted, internal, source, message_id, ingest_id, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) RETURNING id",
            )
        };
        let id = insert_id(
            &self.conn,
            sql,
            rusqlite::params![
                c.ticket_id,
                c.author_id,
                body,
                c.signature,
                c.quoted,
                c.internal,
                c.source.as_str(),
                c.message_id.as_ref().map(MessageId::as_str),
                c.ingest_id,
                format_ts(c.now)
            ],
        )?;
        if large {
            let conn = &self.conn;
            may_block(|| -> Result<()> {
                let mut blob = conn
                    .blob_open(rusqlite::MAIN_DB, "comments", "body", id, false)
                    .r()?;
                for (i, chunk) in c.body.as_bytes().chunks(BLOB_INLINE).enumerate() {
                    blob.write_at(chunk, i * BLOB_INLINE).r()?;
                }
                Ok(())
            })?;
        }
        Ok(id)
    }

    async fn insert_attachment(&mut self, a: &NewAttachment) -> Result<i64> {
        insert_id(
            &self.conn,
            "INSERT INTO attachments (comment_id, filename, content_type, size, blob_sha256) VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
            rusqlite::params![
                a.comment_id,
                a.filename,
                a.content_type,
                a.size as i64,
                a.sha256
            ],
        )
    }

    async fn insert_event(&mut self, e: &NewEvent) -> Result<()> {
        execute(
            &self.conn,
            "INSERT INTO events (ticket_id, kind, actor_id, data, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![
                e.ticket_id,
                e.event.kind(),
                e.actor_id,
                e.event.data().to_string(),
                format_ts(e.now)
            ],
        )?;
        Ok(())
    }

    async fn remember_refs(
        &mut self,
        ids: &[MessageId],
        ticket: TicketId,
        kind: RefKind,
        now: OffsetDateTime,
    ) -> Result<()> {
        let now = format_ts(now);
        for id in ids {
            // A reference seen first stays weak until the message itself arrives.
            execute(
                &self.conn,
                "INSERT INTO message_refs (message_id, ticket_id, kind, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (message_id) DO UPDATE SET kind = excluded.kind
                 WHERE message_refs.kind = 'referenced' AND excluded.kind <> 'referenced'",
                rusqlite::params![id.as_str(), ticket, kind.as_str(), now],
            )?;
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
        execute(
            &self.conn,
            "UPDATE tickets SET status = ?2, last_message_id = COALESCE(?3, last_message_id), updated_at = ?4 WHERE id = ?1",
            rusqlite::params![
                ticket,
                status.as_str(),
                last.map(MessageId::as_str),
                format_ts(now)
            ],
        )?;
        Ok(())
    }

    async fn desk(&mut self, ticket: TicketId) -> Result<Option<Desk>> {
        query(&self.conn, sql::DESK, &[ticket.into()], 1)?
            .first()
            .map(rows::desk)
            .transpose()
    }

    async fn set_desk(&mut self, ticket: TicketId, desk: &Desk) -> Result<()> {
        execute_args(&self.conn, sql::SET_DESK, &desk.args(ticket))?;
        Ok(())
    }

    async fn merge_ticket(
        &mut self,
        from: TicketId,
        into: TicketId,
        now: OffsetDateTime,
    ) -> Result<()> {
        let args = [from.into(), into.into()];
        execute_args(&self.conn, sql::MERGE_COMMENTS, &args)?;
        execute_args(
            &self.conn,
            sql::MERGE_FOLLOWERS,
            &[from.into(), into.into(), now.into()],
        )?;
        execute_args(&self.conn, sql::MERGE_ORGS, &args)?;
        execute_args(&self.conn, sql::MERGE_REFS, &args)?;
        Ok(())
    }

    async fn comment_place(&mut self, comment: CommentId) -> Result<Option<CommentPlace>> {
        query(&self.conn, sql::COMMENT_PLACE, &[comment.into()], 1)?
            .first()
            .map(rows::comment_place)
            .transpose()
    }

    async fn move_comment(&mut self, comment: CommentId, to: TicketId) -> Result<()> {
        let args = [comment.into(), to.into()];
        execute_args(&self.conn, sql::MOVE_COMMENT_REFS, &args)?;
        execute_args(&self.conn, sql::MOVE_COMMENT, &args)?;
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
        Ok(execute_args(&self.conn, sql::CLAIM_ALARM, &args)? == 1)
    }

    async fn set_priority(
        &mut self,
        ticket: TicketId,
        priority: Priority,
        now: OffsetDateTime,
    ) -> Result<()> {
        execute(
            &self.conn,
            "UPDATE tickets SET priority = ?2, updated_at = ?3 WHERE id = ?1",
            rusqlite::params![ticket, priority.as_str(), format_ts(now)],
        )?;
        Ok(())
    }

    async fn set_release(
        &mut self,
        ticket: TicketId,
        release: &str,
        now: OffsetDateTime,
    ) -> Result<()> {
        execute(
            &self.conn,
            "UPDATE tickets SET release = ?2, updated_at = ?3 WHERE id = ?1",
            rusqlite::params![ticket, release, format_ts(now)],
        )?;
        Ok(())
    }

    async fn remove_follower(&mut self, ticket: TicketId, user: UserId) -> Result<bool> {
        let n = execute(
            &self.conn,
            "DELETE FROM followers WHERE ticket_id = ?1 AND user_id = ?2",
            [ticket, user],
        )?;
        Ok(n == 1)
    }

    async fn detach_org(&mut self, ticket: TicketId, org: OrgId) -> Result<bool> {
        let n = execute(
            &self.conn,
            "DELETE FROM ticket_orgs WHERE ticket_id = ?1 AND org_id = ?2",
            [ticket, org],
        )?;
        Ok(n == 1)
    }

    async fn org_slugs(&mut self, ids: &[OrgId]) -> Result<Vec<String>> {
        // Nearly every ticket has one org or none: asked for directly, that is
        // a primary-key lookup instead of a `json_each` scan (7 µs a message).
        match ids {
            [] => return Ok(Vec::new()),
            [id] => {
                return rows(
                    &self.conn,
                    "SELECT slug FROM orgs WHERE id = ?1",
                    [id],
                    |r| r.text_at(0),
                );
            }
            _ => {}
        }
        let list = serde_json::to_string(ids).map_err(|e| StoreError::Invalid(e.to_string()))?;
        rows(
            &self.conn,
            "SELECT slug FROM orgs WHERE id IN (SELECT value FROM json_each(?1)) ORDER BY slug",
            [list],
            |r| r.text_at(0),
        )
    }

    async fn org_by_key(&mut self, name_or_slug: &str) -> Result<Option<Org>> {
        org_where(&self.conn, name_or_slug.trim())
    }

    async fn org_leads(&mut self, org: OrgId) -> Result<Vec<User>> {
        rows(&self.conn, sql::ORG_LEADS, [org], rows::user)
    }

    async fn has_signed_in(&mut self, user: UserId) -> Result<bool> {
        Ok(row(&self.conn, sql::HAS_SIGNED_IN, [user], |r| r.i64_at(0))?.is_some())
    }

    async fn user_by_id(&mut self, id: UserId) -> Result<Option<User>> {
        user_by_id(&self.conn, id)
    }

    async fn staff_users(&mut self) -> Result<Vec<User>> {
        rows(&self.conn, sql::STAFF_USERS, [], rows::user)
    }

    async fn reachable_users(&mut self, author: &User) -> Result<Vec<User>> {
        rows(
            &self.conn,
            sql::REACHABLE_USERS,
            rusqlite::params![author.role.as_str(), author.org_id],
            rows::user,
        )
    }

    async fn open_tickets_of(&mut self, user: &User, limit: i64) -> Result<Vec<TicketSummary>> {
        rows(
            &self.conn,
            sql::OPEN_TICKETS_OF,
            rusqlite::params![user.id, user.org_id, limit],
            rows::summary,
        )
    }

    async fn open_tickets_desk(
        &mut self,
        owner: Option<UserId>,
        unassigned: bool,
        limit: i64,
    ) -> Result<Vec<TicketSummary>> {
        let sql = sql::open_tickets_desk(owner.is_some(), unassigned);
        let args = match owner {
            Some(owner) => vec![owner.into(), limit.into()],
            None => vec![limit.into()],
        };
        query(&self.conn, sql, &args, usize::MAX)?
            .iter()
            .map(rows::summary)
            .collect()
    }

    async fn enqueue(&mut self, row: &NewOutbox) -> Result<i64> {
        let refs = row
            .references
            .iter()
            .map(MessageId::as_str)
            .collect::<Vec<_>>()
            .join(" ");
        insert_id(
            &self.conn,
            "INSERT INTO outbox (ticket_id, template, to_addr, to_user_id, reason, message_id, in_reply_to, refs, subject,
                                 context, status, attempts, next_attempt_at, created_at, locale, comment_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'queued', 0, ?11, ?11, ?12, ?13) RETURNING id",
            rusqlite::params![
                row.ticket_id,
                row.template,
                row.to.as_str(),
                row.to_user_id,
                row.reason,
                row.message_id.as_str(),
                row.in_reply_to.as_ref().map(MessageId::as_str),
                (!refs.is_empty()).then_some(refs),
                row.subject,
                row.context.to_string(),
                format_ts(row.now),
                row.locale,
                row.comment_id
            ],
        )
    }

    async fn claim_auto_reply(
        &mut self,
        address: &EmailAddress,
        now: OffsetDateTime,
        window: Duration,
    ) -> Result<bool> {
        self.claim_auto_reply_key(address.as_str(), now, window)
            .await
    }

    async fn claim_auto_reply_key(
        &mut self,
        address: &str,
        now: OffsetDateTime,
        window: Duration,
    ) -> Result<bool> {
        let n = execute(
            &self.conn,
            "INSERT INTO auto_replies (address, last_at) VALUES (?1, ?2)
             ON CONFLICT (address) DO UPDATE SET last_at = excluded.last_at WHERE auto_replies.last_at <= ?3",
            rusqlite::params![address, format_ts(now), format_ts(now - window)],
        )?;
        Ok(n == 1)
    }

    async fn outbox_recipient(
        &mut self,
        message_id: &MessageId,
    ) -> Result<Option<(TicketId, EmailAddress)>> {
        row(
            &self.conn,
            "SELECT ticket_id, to_addr FROM outbox WHERE message_id = ?1 AND ticket_id IS NOT NULL",
            [message_id.as_str()],
            |r| Ok((r.i64_at(0)?, r.email_at(1)?)),
        )
    }

    async fn set_bouncing(&mut self, email: &EmailAddress, bouncing: bool) -> Result<bool> {
        let n = execute(
            &self.conn,
            "UPDATE users SET bouncing = ?2 WHERE email = ?1 AND bouncing <> ?2",
            rusqlite::params![email.as_str(), bouncing],
        )?;
        Ok(n == 1)
    }

    async fn log_delivery(&mut self, e: &NewLogEntry) -> Result<i64> {
        insert_id(
            &self.conn,
            "INSERT INTO ingest_log (dedup_key, message_id, origin, raw_sha256, size, sender, subject, outcome, reason,
                                     thread_reason, ticket_id, comment_id, duplicate_of, notify, received_at, replay_of)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) RETURNING id",
            rusqlite::params![
                e.dedup_key,
                e.message_id.as_ref().map(MessageId::as_str),
                e.origin,
                e.raw_sha256,
                e.size as i64,
                e.sender,
                e.subject,
                e.outcome.as_str(),
                e.reason,
                e.thread_reason,
                e.ticket_id,
                e.comment_id,
                e.duplicate_of,
                e.notify,
                format_ts(e.now),
                e.replay_of
            ],
        )
    }

    async fn supersede_log(&mut self, id: i64) -> Result<bool> {
        let n = execute(
            &self.conn,
            "UPDATE ingest_log SET superseded = 1
             WHERE id = ?1 AND superseded = 0 AND discarded_at IS NULL
               AND outcome IN ('quarantined', 'rejected')",
            [id],
        )?;
        Ok(n == 1)
    }

    async fn advance_cursor(
        &mut self,
        source: &str,
        validity: i64,
        uid: i64,
        now: OffsetDateTime,
    ) -> Result<()> {
        execute(
            &self.conn,
            "INSERT INTO source_cursors (source, validity, last_uid, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (source) DO UPDATE SET
                 last_uid = CASE WHEN source_cursors.validity = excluded.validity
                                 THEN max(source_cursors.last_uid, excluded.last_uid) ELSE excluded.last_uid END,
                 validity = excluded.validity, updated_at = excluded.updated_at",
            rusqlite::params![source, validity, uid, format_ts(now)],
        )?;
        Ok(())
    }

    async fn insert_web_link(&mut self, link: &NewWebLink) -> Result<()> {
        execute(
            &self.conn,
            sql::INSERT_WEB_LINK,
            rusqlite::params![
                link.token_hash,
                link.user,
                link.purpose.as_str(),
                format_ts(link.now),
                format_ts(link.expires)
            ],
        )?;
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        self.finish()
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
