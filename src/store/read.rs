//! `Store` written once for both backends: a backend supplies connections,
//! binds `Arg`s and decodes rows (`Cols`); the statements (`sql`), their
//! arguments and the row mappers (`rows`) are the same. What differs for real
//! stays with the backend (`Backend`): migrations, the delivery transaction,
//! and SQLite's admin writes on its write connection.

use std::collections::HashMap;
use std::ops::DerefMut;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::rows::{self, Cols};
use super::*;

/// A value bound to a shared statement; each backend binds it as it stores it.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    Int(Option<i64>),
    Text(Option<&'a str>),
    /// Text from outside (mail, an API caller) being stored: PostgreSQL text
    /// cannot hold NUL, so it binds a cleaned copy (`postgres::clean`).
    Input(Option<&'a str>),
    Bool(bool),
    /// TEXT (`format_ts`) on SQLite, TIMESTAMPTZ on PostgreSQL.
    Time(Option<OffsetDateTime>),
    /// A LIMIT, `None` for none: SQLite binds -1, PostgreSQL NULL.
    Limit(Option<i64>),
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(Some(v))
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Arg::Text(v)
    }
}

impl From<bool> for Arg<'_> {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}

impl From<OffsetDateTime> for Arg<'_> {
    fn from(v: OffsetDateTime) -> Self {
        Arg::Time(Some(v))
    }
}

impl From<Option<OffsetDateTime>> for Arg<'_> {
    fn from(v: Option<OffsetDateTime>) -> Self {
        Arg::Time(v)
    }
}

/// One connection of a backend's pool (or its transaction).
#[async_trait]
pub trait Conn: Send {
    type Row: Cols + Send + Sync;
    async fn all(&mut self, sql: &'static str, args: &[Arg<'_>]) -> Result<Vec<Self::Row>>;
    async fn opt(&mut self, sql: &'static str, args: &[Arg<'_>]) -> Result<Option<Self::Row>>;
    /// Rows affected.
    async fn run(&mut self, sql: &'static str, args: &[Arg<'_>]) -> Result<u64>;
}

/// What a backend supplies for the shared `Store`. Its methods are named
/// apart from `Store`'s so that both traits can be in scope.
#[async_trait]
pub trait Backend: Send + Sync {
    type Conn: Conn;
    /// A pooled connection (`PoolConnection`).
    type Pooled: DerefMut<Target = Self::Conn> + Send;
    /// A short write transaction (`sqlx::Transaction`).
    type Write: DerefMut<Target = Self::Conn> + Send;
    /// `sql::CLAIM_OUTBOX`, or the PostgreSQL one that skips locked rows.
    const CLAIM_OUTBOX: &'static str;
    /// `Store::looks_ahead`.
    const LOOKS_AHEAD: bool;

    async fn conn(&self) -> Result<Self::Pooled>;
    async fn write(&self) -> Result<Self::Write>;
    async fn commit(write: Self::Write) -> Result<()>;

    async fn run_migrations(&self) -> Result<()>;
    /// The shipped migrations.
    fn migrator() -> sqlx::migrate::Migrator;
    /// Counts sqlx's `_sqlx_migrations` table in the catalogue (0 or 1):
    /// a database no migration ever ran on has none.
    const MIGRATIONS_TABLE_EXISTS: &'static str;
    /// `Store::backup_into`.
    async fn backup(&self, path: &std::path::Path) -> Result<()>;
    async fn begin_tx(&self) -> Result<Box<dyn Tx>>;
    async fn create_org(&self, name: &str, slug: &str, domains: &[String]) -> Result<Org>;
    async fn org_named(&self, name_or_slug: &str) -> Result<Option<Org>>;
    async fn create_user(&self, user: &NewUser) -> Result<User>;
    /// `Store::health`.
    fn store_health(&self) -> &crate::health::StoreHealth;
    /// After an erasure: no earlier copy of a changed page may stay on
    /// disk. True when that is done (or nothing needs doing).
    async fn drop_old_pages(&self) -> Result<bool> {
        Ok(true)
    }
}

/// A LIKE pattern (escape `\`) matching `text` anywhere, every character
/// of it literally.
pub(super) fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Maps every row.
pub(super) fn each<R: Cols, T>(rows: Vec<R>, map: impl Fn(&R) -> Result<T>) -> Result<Vec<T>> {
    rows.iter().map(map).collect()
}

#[async_trait]
impl<B: Backend> Store for B {
    async fn person_export(&self, email: &EmailAddress) -> Result<Option<people::PersonRecord>> {
        people::export(self, email).await
    }

    async fn person_erase(&self, plan: &people::ErasePlan) -> Result<Option<people::Erasure>> {
        people::erase(self, plan).await
    }

    async fn purge_raw(&self, before: OffsetDateTime, now: OffsetDateTime) -> Result<u64> {
        people::purge_raw(self, before, now).await
    }

    async fn purge_closed(&self, before: OffsetDateTime) -> Result<u64> {
        people::purge_closed(self, before).await
    }

    async fn claim_retention(&self, day: &str, holder: &str, now: OffsetDateTime) -> Result<bool> {
        people::claim_retention(self, day, holder, now).await
    }

    async fn record_retention(&self, day: &str, purged: &people::Purged) -> Result<()> {
        people::record_retention(self, day, purged).await
    }

    async fn retained_counts(&self) -> Result<Vec<people::RetainedCount>> {
        people::retained_counts(self).await
    }

    async fn migrate(&self) -> Result<()> {
        self.run_migrations().await
    }

    async fn backup_into(&self, path: &std::path::Path) -> Result<()> {
        self.backup(path).await
    }

    async fn pending_migrations(&self) -> Result<Vec<String>> {
        let mut conn = self.conn().await?;
        let tables = conn.all(B::MIGRATIONS_TABLE_EXISTS, &[]).await?;
        let applied: Vec<i64> = if tables.first().map(|r| r.i64_at(0)).transpose()? == Some(0) {
            Vec::new()
        } else {
            each(conn.all(sql::APPLIED_MIGRATIONS, &[]).await?, |r| {
                r.i64_at(0)
            })?
        };
        Ok(B::migrator()
            .iter()
            .filter(|m| m.migration_type.is_up_migration() && !applied.contains(&m.version))
            .map(|m| format!("{} {}", m.version, m.description))
            .collect())
    }

    async fn begin(&self) -> Result<Box<dyn Tx>> {
        self.begin_tx().await
    }

    fn health(&self) -> &crate::health::StoreHealth {
        self.store_health()
    }

    fn looks_ahead(&self) -> bool {
        B::LOOKS_AHEAD
    }

    async fn ping(&self) -> Result<()> {
        self.conn().await?.run(sql::PING, &[]).await?;
        Ok(())
    }

    async fn add_org(&self, name: &str, slug: &str, domains: &[String]) -> Result<Org> {
        self.create_org(name, slug, domains).await
    }

    async fn list_orgs(&self) -> Result<Vec<Org>> {
        let mut db = self.conn().await?;
        let mut by_id = HashMap::<OrgId, (Vec<String>, Vec<String>)>::new();
        for r in db.all(sql::ALL_ORG_DOMAINS, &[]).await? {
            by_id.entry(r.i64_at(0)?).or_default().0.push(r.text_at(1)?);
        }
        for r in db.all(sql::ALL_ORG_LEAD_EMAILS, &[]).await? {
            by_id.entry(r.i64_at(0)?).or_default().1.push(r.text_at(1)?);
        }
        let orgs = db.all(sql::ORGS, &[]).await?;
        orgs.iter()
            .map(|r| {
                let id = r.i64_at(0)?;
                let (domains, leads) = by_id.remove(&id).unwrap_or_default();
                Ok(Org {
                    id,
                    slug: r.text_at(1)?,
                    name: r.text_at(2)?,
                    domains,
                    leads,
                })
            })
            .collect()
    }

    async fn find_org(&self, name_or_slug: &str) -> Result<Option<Org>> {
        self.org_named(name_or_slug).await
    }

    async fn add_org_lead(&self, org: OrgId, user: UserId) -> Result<()> {
        let args = [org.into(), user.into()];
        self.conn().await?.run(sql::ADD_ORG_LEAD, &args).await?;
        Ok(())
    }

    async fn remove_org_lead(&self, org: OrgId, user: UserId) -> Result<bool> {
        let args = [org.into(), user.into()];
        Ok(self.conn().await?.run(sql::REMOVE_ORG_LEAD, &args).await? > 0)
    }

    async fn update_user(&self, id: UserId, change: &UserChange) -> Result<bool> {
        let args = [
            id.into(),
            change.name.as_deref().into(),
            change.role.map(|r| r.as_str()).into(),
            change.locale.as_deref().into(),
            change.org_id.is_some().into(),
            change.org_id.flatten().into(),
            change.active.is_some().into(),
            change.active.unwrap_or(true).into(),
        ];
        Ok(self.conn().await?.run(sql::UPDATE_USER, &args).await? > 0)
    }

    async fn add_user(&self, user: &NewUser) -> Result<User> {
        self.create_user(user).await
    }

    async fn find_user(&self, email: &EmailAddress) -> Result<Option<User>> {
        let args = [email.as_str().into()];
        let row = self.conn().await?.opt(sql::USER_BY_EMAIL, &args).await?;
        row.as_ref().map(rows::user).transpose()
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        each(
            self.conn().await?.all(sql::LIST_USERS, &[]).await?,
            rows::user,
        )
    }

    async fn list_staff(&self) -> Result<Vec<User>> {
        each(
            self.conn().await?.all(sql::STAFF_USERS, &[]).await?,
            rows::user,
        )
    }

    async fn list_tickets(&self, f: &TicketFilter) -> Result<Vec<TicketSummary>> {
        if f.text.as_ref().is_some_and(|t| t.len() > TEXT_FILTER_MAX) {
            return Err(StoreError::Invalid(format!(
                "ticket search text over {TEXT_FILTER_MAX} bytes"
            )));
        }
        let pattern = f.text.as_deref().map(contains_pattern);
        let (query, args) = super::list::tickets(f, pattern.as_deref());
        let found = self.conn().await?.all(query, &args).await?;
        each(found, rows::summary)
    }

    async fn open_ticket_counts(&self) -> Result<Vec<(Status, Option<Priority>, i64)>> {
        each(
            self.conn().await?.all(sql::OPEN_TICKET_COUNTS, &[]).await?,
            |r| Ok((r.parse_at(0)?, r.opt_parse_at(1)?, r.i64_at(2)?)),
        )
    }

    async fn due_alarms(&self, now: OffsetDateTime, limit: i64) -> Result<Vec<TicketId>> {
        let args = [now.into(), Arg::Limit(Some(limit))];
        each(self.conn().await?.all(sql::DUE_ALARMS, &args).await?, |r| {
            r.i64_at(0)
        })
    }

    async fn idle_tickets(
        &self,
        kind: &str,
        status: Status,
        before: OffsetDateTime,
        after: (OffsetDateTime, TicketId),
        limit: i64,
    ) -> Result<Vec<(TicketId, OffsetDateTime)>> {
        let args = [
            status.as_str().into(),
            before.into(),
            after.0.into(),
            after.1.into(),
            Arg::Limit(Some(limit)),
            kind.into(),
        ];
        each(
            self.conn().await?.all(sql::IDLE_TICKETS, &args).await?,
            |r| Ok((r.i64_at(0)?, r.time_at(1)?)),
        )
    }

    async fn ticket_view(&self, id: TicketId) -> Result<Option<TicketView>> {
        self.ticket_page(id, CommentPage::default()).await
    }

    async fn ticket_page(&self, id: TicketId, page: CommentPage) -> Result<Option<TicketView>> {
        let mut db = self.conn().await?;
        let args = [id.into()];
        let Some(ticket) = db.opt(sql::TICKET, &args).await? else {
            return Ok(None);
        };
        let orgs = each(db.all(sql::TICKET_ORGS, &args).await?, |r| r.text_at(0))?;
        let followers = each(db.all(sql::TICKET_FOLLOWERS, &args).await?, rows::follower)?;
        let whole = page == CommentPage::default();
        let (mut comments, earlier) = if whole {
            let all = each(db.all(sql::TICKET_COMMENTS, &args).await?, rows::comment)?;
            (all, false)
        } else {
            // One more than asked: whether there are earlier ones.
            let limit = page.limit.unwrap_or(i64::MAX - 1).max(0);
            let found = db
                .all(
                    sql::TICKET_COMMENTS_BEFORE,
                    &[id.into(), page.before.into(), Arg::Limit(Some(limit + 1))],
                )
                .await?;
            let mut newest_first = each(found, rows::comment)?;
            let earlier = newest_first.len() as i64 > limit;
            newest_first.truncate(limit as usize);
            newest_first.reverse();
            (newest_first, earlier)
        };
        let attachments = match (whole, comments.first(), comments.last()) {
            (true, _, _) => db.all(sql::TICKET_ATTACHMENTS, &args).await?,
            (false, Some(first), Some(last)) => {
                db.all(
                    sql::TICKET_ATTACHMENTS_BETWEEN,
                    &[id.into(), first.id.into(), last.id.into()],
                )
                .await?
            }
            _ => Vec::new(),
        };
        let at: HashMap<CommentId, usize> = comments
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id, i))
            .collect();
        for row in attachments {
            let (comment_id, attachment) = rows::attachment(&row)?;
            if let Some(&i) = at.get(&comment_id) {
                comments[i].attachments.push(attachment);
            }
        }
        // A page's history: from its first comment (from the start when
        // it is the first page) to the comment after it.
        let from = if earlier {
            comments.first().and_then(|c| parse_ts(&c.created_at))
        } else {
            None
        };
        let until = match page.before {
            Some(before) => db
                .opt(sql::COMMENT_CREATED, &[before.into(), id.into()])
                .await?
                .map(|r| r.time_at(0))
                .transpose()?,
            _ => None,
        };
        let events = match (from, until) {
            (None, None) => db.all(sql::TICKET_EVENTS, &args).await?,
            (from, None) => {
                let from = from.unwrap_or(OffsetDateTime::UNIX_EPOCH);
                db.all(sql::TICKET_EVENTS_FROM, &[id.into(), from.into()])
                    .await?
            }
            (from, Some(until)) => {
                let from = from.unwrap_or(OffsetDateTime::UNIX_EPOCH);
                db.all(
                    sql::TICKET_EVENTS_BETWEEN,
                    &[id.into(), from.into(), until.into()],
                )
                .await?
            }
        };
        let events = each(events, rows::event)?;
        let mut view = rows::ticket_view(&ticket, orgs, followers, comments, events)?;
        view.earlier_comments = earlier;
        Ok(Some(view))
    }

    async fn ticket_access(&self, id: TicketId) -> Result<Option<TicketState>> {
        let mut db = self.conn().await?;
        let args = [id.into()];
        let Some(row) = db.opt(sql::TICKET_STATE, &args).await? else {
            return Ok(None);
        };
        let mut state = rows::ticket_state(&row)?;
        let followers = db.all(sql::TICKET_STATE_FOLLOWERS, &args).await?;
        state.followers = each(followers, rows::state_follower)?;
        state.orgs = each(db.all(sql::TICKET_STATE_ORGS, &args).await?, |r| {
            r.i64_at(0)
        })?;
        Ok(Some(state))
    }

    async fn reachable_users(&self, author: &User) -> Result<Vec<User>> {
        let args = [author.role.as_str().into(), author.org_id.into()];
        each(
            self.conn().await?.all(sql::REACHABLE_USERS, &args).await?,
            rows::user,
        )
    }

    async fn list_log(&self, f: &LogFilter) -> Result<Vec<LogRow>> {
        let args = [
            f.outcome.map(Outcome::as_str).into(),
            f.after.unwrap_or(0).into(),
            Arg::Limit(f.limit),
        ];
        each(
            self.conn().await?.all(sql::LIST_LOG, &args).await?,
            rows::log,
        )
    }

    async fn discard_log(&self, id: i64, now: OffsetDateTime) -> Result<bool> {
        let args = [id.into(), now.into()];
        Ok(self.conn().await?.run(sql::DISCARD_LOG, &args).await? > 0)
    }

    async fn log_row(&self, id: i64) -> Result<Option<LogRow>> {
        let row = self.conn().await?.opt(sql::LOG_ROW, &[id.into()]).await?;
        row.as_ref().map(rows::log).transpose()
    }

    async fn claim_outbox(
        &self,
        now: OffsetDateTime,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<OutboxRow>> {
        let args = [(now + lease).into(), now.into(), limit.into()];
        let claimed = self.conn().await?.all(B::CLAIM_OUTBOX, &args).await?;
        let mut claimed = each(claimed, rows::outbox)?;
        claimed.sort_by_key(|r| r.id);
        Ok(claimed)
    }

    async fn record_attempts(&self, attempts: &[Attempt], now: OffsetDateTime) -> Result<()> {
        if attempts.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        for attempt in attempts {
            let (status, next, error) = match &attempt.result {
                AttemptResult::Sent => ("sent", None, None),
                AttemptResult::Retry { at, error } => ("failed", Some(*at), Some(error.as_str())),
                AttemptResult::Dead { error, .. } => ("dead", None, Some(error.as_str())),
            };
            let args = [
                attempt.id.into(),
                status.into(),
                next.into(),
                Arg::Input(error),
                now.into(),
            ];
            tx.run(sql::RECORD_ATTEMPT, &args).await?;
            if let AttemptResult::Dead {
                bouncing: Some(email),
                ..
            } = &attempt.result
            {
                tx.run(sql::MARK_BOUNCING, &[email.as_str().into()]).await?;
            }
        }
        B::commit(tx).await
    }

    async fn list_outbox(&self) -> Result<Vec<OutboxRow>> {
        each(
            self.conn().await?.all(sql::LIST_OUTBOX, &[]).await?,
            rows::outbox,
        )
    }

    async fn source_cursor(&self, source: &str) -> Result<Option<(i64, i64)>> {
        let row = self
            .conn()
            .await?
            .opt(sql::SOURCE_CURSOR, &[source.into()])
            .await?;
        row.map(|r| Ok((r.i64_at(0)?, r.i64_at(1)?))).transpose()
    }

    async fn comment_files(&self, comment: CommentId) -> Result<Vec<StoredFile>> {
        let args = [comment.into()];
        let files = self.conn().await?.all(sql::COMMENT_FILES, &args).await?;
        each(files, |r| rows::file(r, 0))
    }

    async fn comment_body(&self, comment: CommentId) -> Result<Option<String>> {
        let row = self
            .conn()
            .await?
            .opt(sql::COMMENT_BODY, &[comment.into()])
            .await?;
        row.map(|r| r.text_at(0)).transpose()
    }

    async fn attachment(&self, id: i64) -> Result<Option<(TicketId, StoredFile)>> {
        let row = self
            .conn()
            .await?
            .opt(sql::ATTACHMENT, &[id.into()])
            .await?;
        row.map(|r| Ok((r.i64_at(0)?, rows::file(&r, 1)?)))
            .transpose()
    }

    async fn blob(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        let row = self.conn().await?.opt(sql::BLOB, &[sha256.into()]).await?;
        row.map(|r| r.bytes_at(0)).transpose()
    }

    async fn outbox_counts(&self) -> Result<Vec<(OutboxStatus, i64)>> {
        let mut out = Vec::new();
        for r in self.conn().await?.all(sql::OUTBOX_COUNTS, &[]).await? {
            if let Some(s) = OutboxStatus::parse(&r.text_at(0)?) {
                out.push((s, r.i64_at(1)?));
            }
        }
        Ok(out)
    }

    async fn purge_sent_outbox(&self, before: OffsetDateTime, limit: i64) -> Result<u64> {
        let args = [before.into(), Arg::Limit(Some(limit))];
        self.conn().await?.run(sql::PURGE_SENT_OUTBOX, &args).await
    }

    async fn create_token(
        &self,
        user: UserId,
        sha256: &str,
        label: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<ApiToken> {
        let mut db = self.conn().await?;
        let args = [user.into(), sha256.into(), Arg::Input(label), now.into()];
        let id = db
            .opt(sql::CREATE_TOKEN, &args)
            .await?
            .ok_or_else(|| StoreError::Invalid("insert returned no id".into()))?
            .i64_at(0)?;
        let args = [Arg::Int(None), id.into()];
        let mut found = each(db.all(sql::TOKENS_WHERE, &args).await?, rows::token)?;
        found
            .pop()
            .ok_or_else(|| StoreError::NotFound(format!("token {id}")))
    }

    async fn list_tokens(&self, user: Option<UserId>) -> Result<Vec<ApiToken>> {
        let args = [user.into(), Arg::Int(None)];
        each(
            self.conn().await?.all(sql::TOKENS_WHERE, &args).await?,
            rows::token,
        )
    }

    async fn revoke_token(&self, id: i64, now: OffsetDateTime) -> Result<bool> {
        let args = [id.into(), now.into()];
        Ok(self.conn().await?.run(sql::REVOKE_TOKEN, &args).await? == 1)
    }

    async fn token_user(&self, sha256: &str, now: OffsetDateTime) -> Result<Option<User>> {
        let mut db = self.conn().await?;
        let Some(token) = db.opt(sql::LIVE_TOKEN, &[sha256.into()]).await? else {
            return Ok(None);
        };
        let (token_id, user_id) = (token.i64_at(0)?, token.i64_at(1)?);
        let minute_ago = now - Duration::from_secs(60);
        let args = [token_id.into(), now.into(), minute_ago.into()];
        db.run(sql::TOKEN_USED, &args).await?;
        let row = db.opt(sql::USER_BY_ID, &[user_id.into()]).await?;
        row.as_ref().map(rows::user).transpose()
    }

    async fn release_outbox(&self, ids: &[i64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        for id in ids {
            tx.run(sql::RELEASE_OUTBOX, &[(*id).into()]).await?;
        }
        B::commit(tx).await
    }

    async fn mint_web_link(
        &self,
        outbox_id: i64,
        previous: Option<&str>,
        link: &NewWebLink,
        context: &serde_json::Value,
    ) -> Result<()> {
        let mut tx = self.write().await?;
        if let Some(previous) = previous {
            tx.run(sql::DROP_UNUSED_WEB_LINK, &[previous.into()])
                .await?;
        }
        let args = [
            link.token_hash.as_str().into(),
            link.user.into(),
            link.purpose.as_str().into(),
            link.now.into(),
            link.expires.into(),
        ];
        tx.run(sql::INSERT_WEB_LINK, &args).await?;
        let context = context.to_string();
        let args = [outbox_id.into(), context.as_str().into()];
        tx.run(sql::SET_OUTBOX_CONTEXT, &args).await?;
        B::commit(tx).await
    }

    async fn take_web_link(&self, token_hash: &str, now: OffsetDateTime) -> Result<Option<User>> {
        let mut db = self.conn().await?;
        let args = [token_hash.into(), now.into()];
        let Some(taken) = db.opt(sql::TAKE_WEB_LINK, &args).await? else {
            return Ok(None);
        };
        let row = db.opt(sql::USER_BY_ID, &[taken.i64_at(0)?.into()]).await?;
        // A link mailed before its user was deactivated is used up for nothing.
        Ok(row
            .as_ref()
            .map(rows::user)
            .transpose()?
            .filter(|u| u.active))
    }

    async fn create_session(&self, s: &NewSession) -> Result<()> {
        let args = [
            s.token_hash.as_str().into(),
            s.user.into(),
            s.csrf.as_str().into(),
            s.now.into(),
            s.expires.into(),
        ];
        let mut db = self.conn().await?;
        db.run(sql::CREATE_SESSION, &args).await?;
        db.run(sql::NOTE_PORTAL_VISITOR, &[s.user.into(), s.now.into()])
            .await?;
        Ok(())
    }

    async fn session(
        &self,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<(User, String)>> {
        let mut db = self.conn().await?;
        let args = [token_hash.into(), now.into()];
        let Some(row) = db.opt(sql::LIVE_SESSION, &args).await? else {
            return Ok(None);
        };
        let (user, csrf, seen) = (rows::user(&row)?, row.text_at(9)?, row.time_at(10)?);
        let minute_ago = now - Duration::from_secs(60);
        if seen < minute_ago {
            let args = [token_hash.into(), now.into(), minute_ago.into()];
            db.run(sql::SESSION_SEEN, &args).await?;
        }
        Ok(Some((user, csrf)))
    }

    async fn end_session(&self, token_hash: &str) -> Result<bool> {
        let args = [token_hash.into()];
        Ok(self.conn().await?.run(sql::END_SESSION, &args).await? > 0)
    }

    async fn purge_web(&self, now: OffsetDateTime) -> Result<u64> {
        let mut tx = self.write().await?;
        let links = tx.run(sql::PURGE_WEB_LINKS, &[now.into()]).await?;
        let sessions = tx.run(sql::PURGE_WEB_SESSIONS, &[now.into()]).await?;
        B::commit(tx).await?;
        Ok(links + sessions)
    }

    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> Result<bool> {
        let args = [name.into(), holder.into(), (now + ttl).into(), now.into()];
        Ok(self.conn().await?.run(sql::ACQUIRE_LEASE, &args).await? == 1)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        let args = [name.into(), holder.into()];
        self.conn().await?.run(sql::RELEASE_LEASE, &args).await?;
        Ok(())
    }

    async fn lease_holder(&self, name: &str) -> Result<Option<(String, OffsetDateTime)>> {
        let row = self
            .conn()
            .await?
            .opt(sql::LEASE_HOLDER, &[name.into()])
            .await?;
        row.map(|r| Ok((r.text_at(0)?, r.time_at(1)?))).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::contains_pattern;

    #[test]
    fn a_search_text_is_matched_literally_anywhere() {
        for (text, pattern) in [
            ("printer", "%printer%"),
            ("100%", "%100\\%%"),
            ("a_b", "%a\\_b%"),
            ("C:\\tmp", "%C:\\\\tmp%"),
            ("", "%%"),
            ("火事", "%火事%"),
        ] {
            assert_eq!(contains_pattern(text), pattern, "{text}");
        }
    }
}
