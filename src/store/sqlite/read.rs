//! `Store` on SQLite: pooled reads, admin writes.
use super::*;

pub(super) fn outbox_from_row(r: &SqliteRow) -> Result<OutboxRow> {
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

pub(super) const LOG_COLUMNS: &str = "id, message_id, origin, sender, subject, outcome, reason, thread_reason, ticket_id, \
     comment_id, size, received_at, superseded, replay_of, raw_sha256, notify";

pub(super) fn log_from_row(r: &SqliteRow) -> Result<LogRow> {
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
        received_at: r.try_get(11).q()?,
        superseded: r.try_get(12).q()?,
        replay_of: r.try_get(13).q()?,
        raw_sha256: r.try_get(14).q()?,
        notify: r.try_get(15).q()?,
    })
}

impl SqliteStore {
    /// Short admin work on the write connection (org and user records share
    /// their mappers with the delivery transaction).
    async fn with_writer<T>(
        &self,
        f: impl FnOnce(&mut rusqlite::Connection) -> Result<T>,
    ) -> Result<T> {
        let mut conn = self.writer.lock().await;
        may_block(|| f(&mut conn))
    }

    async fn tokens_where(&self, user: Option<UserId>, id: Option<i64>) -> Result<Vec<ApiToken>> {
        sqlx::query(
            "SELECT t.id, u.email, t.label, t.created_at, t.last_used_at, t.revoked_at
             FROM api_tokens t JOIN users u ON u.id = t.user_id
             WHERE (?1 IS NULL OR t.user_id = ?1) AND (?2 IS NULL OR t.id = ?2) ORDER BY t.id",
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
                created_at: r.try_get(3).q()?,
                last_used_at: r.try_get(4).q()?,
                revoked_at: r.try_get(5).q()?,
            })
        })
        .collect()
    }
}

pub(super) const OUTBOX_COLUMNS: &str = "id, ticket_id, to_addr, to_user_id, locale, comment_id, template, subject, \
     message_id, status, attempts, reason, in_reply_to, refs, context";

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("./migrations/sqlite")
            .run(&self.pool)
            .await?;
        Ok(())
    }

    async fn begin(&self) -> Result<Box<dyn Tx>> {
        let conn = self.writer.clone().lock_owned().await;
        begin_immediate(&conn)?;
        Ok(Box::new(SqliteTx { conn, open: true }))
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.q()?;
        Ok(())
    }

    async fn add_org(&self, name: &str, slug: &str, domains: &[String]) -> Result<Org> {
        self.with_writer(|conn| {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .r()?;
            let id = insert_id(
                &tx,
                "INSERT INTO orgs (slug, name, created_at) VALUES (?1, ?2, ?3) RETURNING id",
                rusqlite::params![slug, name, format_ts(OffsetDateTime::now_utc())],
            )?;
            for domain in domains {
                execute(
                    &tx,
                    "INSERT INTO org_domains (domain, org_id) VALUES (?1, ?2)",
                    rusqlite::params![domain.to_ascii_lowercase(), id],
                )?;
            }
            let org = org_details(&tx, id, slug.to_string(), name.to_string())?;
            tx.commit().r()?;
            Ok(org)
        })
        .await
    }

    async fn list_orgs(&self) -> Result<Vec<Org>> {
        self.with_writer(|conn| {
            let orgs = rows(
                conn,
                "SELECT id, slug, name FROM orgs ORDER BY slug",
                [],
                |r| Ok((r.i64_at(0)?, r.text_at(1)?, r.text_at(2)?)),
            )?;
            orgs.into_iter()
                .map(|(id, slug, name)| org_details(conn, id, slug, name))
                .collect()
        })
        .await
    }

    async fn find_org(&self, name_or_slug: &str) -> Result<Option<Org>> {
        self.with_writer(|conn| org_where(conn, name_or_slug.trim()))
            .await
    }

    async fn add_org_lead(&self, org: OrgId, user: UserId) -> Result<()> {
        sqlx::query(
            "INSERT INTO org_leads (org_id, user_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        )
        .bind(org)
        .bind(user)
        .execute(&self.pool)
        .await
        .q()?;
        Ok(())
    }

    async fn remove_org_lead(&self, org: OrgId, user: UserId) -> Result<bool> {
        let done = sqlx::query("DELETE FROM org_leads WHERE org_id = ?1 AND user_id = ?2")
            .bind(org)
            .bind(user)
            .execute(&self.pool)
            .await
            .q()?;
        Ok(done.rows_affected() > 0)
    }

    async fn update_user(&self, id: UserId, change: &UserChange) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE users SET name = COALESCE(?2, name), role = COALESCE(?3, role),
                 locale = COALESCE(?4, locale), org_id = CASE WHEN ?5 THEN ?6 ELSE org_id END
             WHERE id = ?1",
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
        self.with_writer(|conn| insert_user(conn, user, OffsetDateTime::now_utc()))
            .await
    }

    async fn find_user(&self, email: &EmailAddress) -> Result<Option<User>> {
        sqlx::query(USER_BY_EMAIL)
            .bind(email.as_str())
            .fetch_optional(&self.pool)
            .await
            .q()?
            .map(|r| user_from_row(&r))
            .transpose()
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
             WHERE (?1 IS NULL OR t.status = ?1)
               AND (?2 IS NULL OR EXISTS (SELECT 1 FROM ticket_orgs x JOIN orgs xo ON xo.id = x.org_id
                                          WHERE x.ticket_id = t.id AND (xo.slug = ?2 OR lower(xo.name) = lower(?2))))
               AND (?3 IS NULL OR u.email = ?3)
               AND t.id > ?4
             ORDER BY t.id LIMIT ?5",
        )
        .bind(f.status.map(Status::as_str))
        .bind(f.org.as_deref())
        .bind(f.requester.as_ref().map(EmailAddress::as_str))
        .bind(f.after.unwrap_or(0))
        .bind(f.limit.unwrap_or(-1))
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
             FROM tickets t JOIN users u ON u.id = t.requester_id LEFT JOIN orgs o ON o.id = t.org_id WHERE t.id = ?1",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .q()?
        else {
            return Ok(None);
        };
        let orgs = sqlx::query_scalar(
            "SELECT o.slug FROM ticket_orgs x JOIN orgs o ON o.id = x.org_id WHERE x.ticket_id = ?1 ORDER BY o.slug",
        )
        .bind(id)
        .fetch_all(&mut *conn)
        .await
        .q()?;
        let followers = sqlx::query(
            "SELECT u.email, f.source FROM followers f JOIN users u ON u.id = f.user_id WHERE f.ticket_id = ?1
             ORDER BY f.created_at, f.user_id",
        )
        .bind(id)
        .fetch_all(&mut *conn)
        .await
        .q()?
        .iter()
        .map(|r| Ok(FollowerView { email: r.try_get(0).q()?, source: r.parse_at(1)? }))
        .collect::<Result<Vec<_>>>()?;
        let mut comments = sqlx::query(
            "SELECT c.id, u.email, c.body, c.signature, c.internal, c.source, c.message_id, c.created_at
             FROM comments c JOIN users u ON u.id = c.author_id WHERE c.ticket_id = ?1 ORDER BY c.id",
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
                created_at: r.try_get(7).q()?,
                attachments: Vec::new(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let attachments = sqlx::query(
            "SELECT a.id, a.comment_id, a.filename, a.content_type, a.size FROM attachments a
             JOIN comments c ON c.id = a.comment_id WHERE c.ticket_id = ?1 ORDER BY a.id",
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
             WHERE e.ticket_id = ?1 ORDER BY e.id",
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
                created_at: r.try_get(3).q()?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let status: Status = t.parse_at(2)?;
        Ok(Some(TicketView {
            id: t.try_get(0).q()?,
            subject: t.try_get(1).q()?,
            status,
            status_label: status.default_label().to_string(),
            priority: t.opt_parse_at(3)?,
            requester: t.try_get(4).q()?,
            org: t.try_get(5).q()?,
            orgs,
            followers,
            comments,
            events,
            created_at: t.try_get(6).q()?,
            updated_at: t.try_get(7).q()?,
        }))
    }

    async fn list_log(&self, f: &LogFilter) -> Result<Vec<LogRow>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {LOG_COLUMNS} FROM ingest_log
             WHERE (?1 IS NULL OR outcome = ?1) AND id > ?2 ORDER BY id LIMIT ?3"
        )))
        .bind(f.outcome.map(Outcome::as_str))
        .bind(f.after.unwrap_or(0))
        .bind(f.limit.unwrap_or(-1))
        .fetch_all(&self.pool)
        .await
        .q()?
        .iter()
        .map(log_from_row)
        .collect()
    }

    async fn log_row(&self, id: i64) -> Result<Option<LogRow>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {LOG_COLUMNS} FROM ingest_log WHERE id = ?1"
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
        sqlx::query_scalar("SELECT data FROM blobs WHERE sha256 = ?1")
            .bind(sha256)
            .fetch_optional(&self.pool)
            .await
            .q()
    }

    async fn attachment(&self, id: i64) -> Result<Option<(TicketId, StoredFile)>> {
        let row = sqlx::query(
            "SELECT c.ticket_id, a.filename, a.content_type, b.data FROM attachments a
             JOIN comments c ON c.id = a.comment_id JOIN blobs b ON b.sha256 = a.blob_sha256 WHERE a.id = ?1",
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
            "INSERT INTO api_tokens (user_id, token_sha256, label, created_at) VALUES (?1, ?2, ?3, ?4) RETURNING id",
        )
        .bind(user)
        .bind(sha256)
        .bind(label)
        .bind(format_ts(now))
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
            "UPDATE api_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(format_ts(now))
        .execute(&self.pool)
        .await
        .q()?;
        Ok(done.rows_affected() == 1)
    }

    async fn token_user(&self, sha256: &str, now: OffsetDateTime) -> Result<Option<User>> {
        let mut conn = self.pool.acquire().await.q()?;
        let Some((token_id, user_id)): Option<(i64, i64)> = sqlx::query_as(
            "SELECT id, user_id FROM api_tokens WHERE token_sha256 = ?1 AND revoked_at IS NULL",
        )
        .bind(sha256)
        .fetch_optional(&mut *conn)
        .await
        .q()?
        else {
            return Ok(None);
        };
        // At most one write a minute per token: a busy API client must not
        // turn every read into a disk sync.
        sqlx::query(
            "UPDATE api_tokens SET last_used_at = ?2 WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?3)",
        )
        .bind(token_id)
        .bind(format_ts(now))
        .bind(format_ts(now - Duration::from_secs(60)))
        .execute(&mut *conn)
        .await
        .q()?;
        sqlx::query(USER_BY_ID)
            .bind(user_id)
            .fetch_optional(&mut *conn)
            .await
            .q()?
            .map(|r| user_from_row(&r))
            .transpose()
    }

    async fn claim_outbox(
        &self,
        now: OffsetDateTime,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<OutboxRow>> {
        let now_text = format_ts(now);
        let until = format_ts(now + lease);
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE outbox SET status = 'sending', lease_until = ?1, attempts = attempts + 1
             WHERE id IN (SELECT id FROM outbox
                          WHERE (status IN ('queued', 'failed') AND next_attempt_at <= ?2)
                             OR (status = 'sending' AND lease_until <= ?2)
                          ORDER BY id LIMIT ?3)
             RETURNING {OUTBOX_COLUMNS}"
        )))
        .bind(until)
        .bind(now_text)
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
        let now = format_ts(now);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.q()?;
        for attempt in attempts {
            let (status, next, error) = match &attempt.result {
                AttemptResult::Sent => ("sent", None, None),
                AttemptResult::Retry { at, error } => {
                    ("failed", Some(format_ts(*at)), Some(error.as_str()))
                }
                AttemptResult::Dead { error, .. } => ("dead", None, Some(error.as_str())),
            };
            sqlx::query(
                "UPDATE outbox SET status = ?2, next_attempt_at = COALESCE(?3, next_attempt_at), lease_until = NULL,
                        last_error = ?4, sent_at = CASE WHEN ?2 = 'sent' THEN ?5 ELSE sent_at END
                 WHERE id = ?1",
            )
            .bind(attempt.id)
            .bind(status)
            .bind(next)
            .bind(error)
            .bind(&now)
            .execute(&mut *tx)
            .await
            .q()?;
            if let AttemptResult::Dead {
                bouncing: Some(email),
                ..
            } = &attempt.result
            {
                sqlx::query("UPDATE users SET bouncing = 1 WHERE email = ?1")
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
             WHERE a.comment_id = ?1 ORDER BY a.id",
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
        sqlx::query_scalar("SELECT body FROM comments WHERE id = ?1")
            .bind(comment)
            .fetch_optional(&self.pool)
            .await
            .q()
    }

    async fn source_cursor(&self, source: &str) -> Result<Option<(i64, i64)>> {
        let row = sqlx::query("SELECT validity, last_uid FROM source_cursors WHERE source = ?1")
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
        let done = sqlx::query(
            "INSERT INTO mailbox_leases (name, holder, expires_at, acquired_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (name) DO UPDATE SET
                 holder = excluded.holder,
                 expires_at = excluded.expires_at,
                 acquired_at = CASE WHEN mailbox_leases.holder = excluded.holder
                                    THEN mailbox_leases.acquired_at ELSE excluded.acquired_at END
             WHERE mailbox_leases.expires_at <= ?4 OR mailbox_leases.holder = ?2",
        )
        .bind(name)
        .bind(holder)
        .bind(format_ts(now + ttl))
        .bind(format_ts(now))
        .execute(&self.pool)
        .await
        .q()?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM mailbox_leases WHERE name = ?1 AND holder = ?2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await
            .q()?;
        Ok(())
    }

    async fn lease_holder(&self, name: &str) -> Result<Option<(String, OffsetDateTime)>> {
        let row = sqlx::query("SELECT holder, expires_at FROM mailbox_leases WHERE name = ?1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .q()?;
        row.map(|r| {
            let expires: String = r.try_get(1).q()?;
            let expires = parse_ts(&expires)
                .ok_or_else(|| StoreError::Invalid(format!("lease expiry {expires}")))?;
            Ok((r.try_get(0).q()?, expires))
        })
        .transpose()
    }
}
