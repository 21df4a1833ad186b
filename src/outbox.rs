//! The outbox worker: claims due rows with a lease (never holding a transaction
//! across delivery), renders them, hands them to the mailer, and records the
//! result. Transient failures retry with exponential backoff; after
//! `max_attempts` a row is dead-lettered; permanent failures (5xx) die at once
//! and mark the recipient as bouncing so they are not mailed again. Each
//! result is committed before its sending slot goes on, so a crash resends
//! at most the messages in flight; one-time portal links are minted here, as
//! their mail is sent, so the database never holds a usable one.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use lettre::Message;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::domain::ids::{CommentId, EmailAddress};
use crate::domain::locale::Locale;
use crate::domain::reply::MARKER;
use crate::domain::template::Template;
use crate::domain::terms::Terms;
use crate::domain::ticket::{CloseReason, Priority, Status};
use crate::domain::token;
use crate::mailer::{MailError, Mailer, Outgoing};
use crate::manage::{new_token, token_hash};
use crate::render::Renderer;
use crate::store::{Attempt, AttemptResult, LinkPurpose, NewWebLink, OutboxRow, Store, StoredFile};

/// What composing a notification needs from config.
#[derive(Debug, Clone)]
pub struct OutboxPolicy {
    pub support_name: String,
    pub support: EmailAddress,
    pub secret: Vec<u8>,
    pub max_attempts: u32,
    pub backoff: Duration,
    pub lease: Duration,
    pub poll_interval: Duration,
    /// Attachments of a comment ride along up to this many bytes in total.
    pub attach_max: u64,
    /// `[outbox] excerpt_max`: the most of a comment's text a mail carries.
    pub excerpt_max: usize,
    pub concurrency: usize,
    /// `[statuses]` and `[sla]` in every language: a mail is written in
    /// its recipient's, whatever the row recorded.
    pub terms: Terms,
    /// `[support] timezone`: a time in a mail (a clock's due time) is
    /// shown in it. Unparsable (refused at load anyway): UTC.
    pub timezone: crate::domain::dates::Zone,
}

impl OutboxPolicy {
    pub fn from_settings(s: &crate::config::Settings, secret: Vec<u8>) -> Self {
        Self {
            support_name: s.support.name.clone(),
            support: s.support_address(),
            secret,
            max_attempts: s.outbox.max_attempts.max(1),
            backoff: s.outbox.backoff.0,
            lease: s.outbox.lease.0,
            poll_interval: s.outbox.poll_interval.0,
            attach_max: s.outbox.attach_max.0,
            excerpt_max: usize::try_from(s.outbox.excerpt_max.0).unwrap_or(usize::MAX),
            concurrency: s.outbox.concurrency.max(1) as usize,
            timezone: crate::domain::dates::Zone::parse(&s.support.timezone).unwrap_or_default(),
            terms: s.terms(),
        }
    }
}

/// The staff alert about quarantined mail: its list is read when it is sent.
pub const QUARANTINE_ALERT: &str = crate::domain::template::Template::QuarantineAlert.as_str();

/// A delivery's result on its way to `record_groups`, with whom to tell
/// once it is committed.
type Pending = (Attempt, oneshot::Sender<Result<(), String>>);

/// How long messages already handed to the relay may take to finish once
/// the worker is told to stop (SIGTERM): a few seconds, not the backlog.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// At most this many quarantined messages are listed in one alert.
const ALERT_LIST_MAX: usize = 50;

/// Sent rows deleted per transaction: a backlog of them (a first run over
/// a large store) is deleted in short transactions, never holding SQLite's
/// writer for long.
const PURGE_BATCH: i64 = 1000;

/// Deletes the rows sent before `before`, a batch at a time, until none is
/// left or `cancel` fires; how many went. Several instances may run it at
/// once: a row is deleted once, whichever gets to it.
pub async fn purge_sent(
    store: &dyn Store,
    before: OffsetDateTime,
    cancel: &CancellationToken,
) -> anyhow::Result<u64> {
    let mut purged = 0;
    while !cancel.is_cancelled() {
        let n = store.purge_sent_outbox(before, PURGE_BATCH).await?;
        purged += n;
        if n < PURGE_BATCH as u64 {
            break;
        }
        // Writers waiting for the lock go first.
        tokio::task::yield_now().await;
    }
    Ok(purged)
}

/// Runs `purge_sent` for the rows sent more than `keep` ago, every `every`
/// from now until `cancel` fires; `keep` of 0 keeps them all. A failed pass
/// is logged, and the next one deletes what it left.
pub async fn purge_sent_every(
    store: Arc<dyn Store>,
    keep: Duration,
    every: Duration,
    cancel: CancellationToken,
) {
    if keep.is_zero() {
        return;
    }
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let Some(before) = time::Duration::try_from(keep)
            .ok()
            .and_then(|keep| OffsetDateTime::now_utc().checked_sub(keep))
        else {
            return;
        };
        match purge_sent(&*store, before, &cancel).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                rows = n,
                "sent notifications past [outbox] keep_sent deleted"
            ),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot delete sent notifications; trying again later")
            }
        }
    }
}

/// What a notification shows of its comment, read once per batch.
pub struct Comment {
    pub body: Option<String>,
    pub files: Vec<StoredFile>,
}

pub struct OutboxWorker {
    store: Arc<dyn Store>,
    mailer: Arc<dyn Mailer>,
    renderer: Arc<Renderer>,
    policy: OutboxPolicy,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FlushStats {
    pub sent: usize,
    pub failed: usize,
    pub dead: usize,
}

impl OutboxWorker {
    pub fn new(
        store: Arc<dyn Store>,
        mailer: Arc<dyn Mailer>,
        renderer: Arc<Renderer>,
        policy: OutboxPolicy,
    ) -> Self {
        Self {
            store,
            mailer,
            renderer,
            policy,
        }
    }

    /// Sends everything due now, batch by batch, then returns.
    pub async fn flush(&self) -> anyhow::Result<FlushStats> {
        self.flush_until(&CancellationToken::new()).await
    }

    /// Sends what is due, batch by batch, until nothing is left or `stop`
    /// fires. Each message's result is committed as soon as the relay has
    /// answered, before its sending slot takes the next row (the results of
    /// all slots commit together, `record_groups`): a crash resends at most
    /// the messages in flight (`[outbox] concurrency`), never a batch. Once
    /// `stop` fires no new message is started; those in flight get
    /// `STOP_GRACE` to finish, and the claimed rows not started go back to
    /// the queue at once (not after their lease), for the next start.
    pub async fn flush_until(&self, stop: &CancellationToken) -> anyhow::Result<FlushStats> {
        let mut stats = FlushStats::default();
        let batch = (self.policy.concurrency * 8).max(32) as i64;
        loop {
            if stop.is_cancelled() {
                return Ok(stats);
            }
            let mut rows = self
                .store
                .claim_outbox(OffsetDateTime::now_utc(), self.policy.lease, batch)
                .await?;
            for row in rows.iter_mut().filter(|r| r.template == QUARANTINE_ALERT) {
                self.list_quarantined(row).await?;
            }
            if rows.is_empty() {
                return Ok(stats);
            }
            // A fan-out is one comment to many recipients: read its text and
            // files once per batch, not once per recipient.
            let mut comments: HashMap<CommentId, Arc<Comment>> = HashMap::new();
            for id in rows.iter().filter_map(|r| r.comment_id) {
                if let Entry::Vacant(slot) = comments.entry(id) {
                    slot.insert(Arc::new(Comment {
                        body: self.store.comment_body(id).await?,
                        files: self.store.comment_files(id).await?,
                    }));
                }
            }
            let (records, pending) = mpsc::channel(self.policy.concurrency);
            let ((), (unstarted, failure)) = tokio::join!(
                self.record_groups(pending),
                self.send_batch(rows, &comments, stop, records, &mut stats),
            );
            if !unstarted.is_empty() {
                self.store.release_outbox(&unstarted).await?;
                tracing::info!(
                    released = unstarted.len(),
                    "outbox stopped; the rest stays queued"
                );
            }
            if let Some(e) = failure {
                return Err(e);
            }
        }
    }

    /// Sends a claimed batch over `[outbox] concurrency` slots; returns the
    /// rows it never started and the first failure to record a result.
    async fn send_batch(
        &self,
        rows: Vec<OutboxRow>,
        comments: &HashMap<CommentId, Arc<Comment>>,
        stop: &CancellationToken,
        records: mpsc::Sender<Pending>,
        stats: &mut FlushStats,
    ) -> (Vec<i64>, Option<anyhow::Error>) {
        let mut waiting = rows.into_iter();
        let mut in_flight = FuturesUnordered::new();
        let mut failure = None;
        let mut grace_ends = None;
        loop {
            while in_flight.len() < self.policy.concurrency
                && !stop.is_cancelled()
                && failure.is_none()
            {
                let Some(row) = waiting.next() else {
                    break;
                };
                let comment = row.comment_id.and_then(|c| comments.get(&c).cloned());
                in_flight.push(self.deliver_and_record(row, comment, records.clone()));
            }
            if in_flight.is_empty() {
                break;
            }
            if stop.is_cancelled() && grace_ends.is_none() {
                grace_ends = Some(tokio::time::Instant::now() + STOP_GRACE);
            }
            let grace = async {
                match grace_ends {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                done = in_flight.next() => match done {
                    Some(Ok(result)) => match result {
                        AttemptResult::Sent => stats.sent += 1,
                        AttemptResult::Retry { .. } => stats.failed += 1,
                        AttemptResult::Dead { .. } => stats.dead += 1,
                    },
                    Some(Err(e)) => {
                        failure.get_or_insert(e);
                    }
                    None => break,
                },
                _ = stop.cancelled(), if grace_ends.is_none() => {}
                _ = grace => {
                    // Their rows stay `sending` until the lease runs out,
                    // then are sent again: the relay may have taken them.
                    tracing::warn!(in_flight = in_flight.len(), "stopping: notifications still being sent were abandoned");
                    break;
                }
            }
        }
        (waiting.map(|r| r.id).collect(), failure)
    }

    /// Sends one row, then waits until its result is committed before its
    /// slot may take another: so at most one accepted message per slot is
    /// ever unrecorded.
    async fn deliver_and_record(
        &self,
        row: OutboxRow,
        comment: Option<Arc<Comment>>,
        records: mpsc::Sender<Pending>,
    ) -> anyhow::Result<AttemptResult> {
        let attempt = self.deliver(row, comment).await;
        let (id, result) = (attempt.id, attempt.result.clone());
        let (ack, committed) = oneshot::channel();
        records
            .send((attempt, ack))
            .await
            .map_err(|_| anyhow::anyhow!("the outbox recorder stopped"))?;
        committed
            .await
            .map_err(|_| anyhow::anyhow!("the outbox recorder stopped"))?
            .map_err(|e| anyhow::anyhow!("recording how outbox row {id} fared: {e}"))?;
        Ok(result)
    }

    /// Commits the results that slots hand in, together: whatever arrived
    /// while the previous commit ran goes in the next one (group commit),
    /// so a fan-out costs one disk sync per few messages instead of one per
    /// message, and no slot waits longer than about two commits.
    async fn record_groups(&self, mut pending: mpsc::Receiver<Pending>) {
        let mut group = Vec::new();
        while pending
            .recv_many(&mut group, self.policy.concurrency.max(1))
            .await
            > 0
        {
            let attempts: Vec<Attempt> = group.iter().map(|(a, _)| a.clone()).collect();
            let done = self
                .store
                .record_attempts(&attempts, OffsetDateTime::now_utc())
                .await
                .map_err(|e| e.to_string());
            for (_, ack) in group.drain(..) {
                let _ = ack.send(done.clone());
            }
        }
    }

    /// Fills a quarantine alert with what was quarantined since it was queued
    /// and is not yet replayed or discarded (`event.messages`, the latest `ALERT_LIST_MAX`;
    /// `event.more`: how many others).
    async fn list_quarantined(&self, row: &mut OutboxRow) -> anyhow::Result<()> {
        let since = row
            .context
            .pointer("/event/since")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut found = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .store
                .list_log(&crate::store::LogFilter {
                    outcome: Some(crate::domain::outcome::Outcome::Quarantined),
                    limit: Some(500),
                    after,
                })
                .await?;
            let Some(last) = page.last() else {
                break;
            };
            after = Some(last.id);
            // Stored timestamps are fixed-width UTC text: they compare as text.
            found.extend(
                page.into_iter().filter(|r| {
                    !r.superseded && r.discarded_at.is_none() && r.received_at >= since
                }),
            );
        }
        let portal = row
            .context
            .pointer("/event/portal")
            .and_then(Value::as_str)
            .map(str::to_string);
        let more = found.len().saturating_sub(ALERT_LIST_MAX);
        let messages: Vec<Value> = found[more..]
            .iter()
            .map(|r| {
                json!({
                    "id": r.id, "sender": r.sender, "subject": r.subject, "reason": r.reason,
                    "ticket": r.ticket, "replay": format!("ticketgate messages replay {}", r.id),
                    "url": portal.as_ref().map(|p| format!("{p}/staff/quarantine/{}", r.id)),
                })
            })
            .collect();
        if let Some(event) = row.context.get_mut("event").and_then(Value::as_object_mut) {
            event.insert("messages".into(), json!(messages));
            event.insert("more".into(), json!(more));
        }
        Ok(())
    }

    /// Runs until cancelled; a store outage is logged and retried, never fatal.
    pub async fn run(&self, cancel: CancellationToken) {
        loop {
            if let Err(e) = self.flush_until(&cancel).await {
                tracing::warn!(error = %format!("{e:#}"), "outbox flush failed; will retry");
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(self.policy.poll_interval) => {}
            }
        }
    }

    /// Mints the one-time portal link a sign-in or invitation mail carries,
    /// now that it is being sent: a fresh token, of which the store keeps
    /// only the hash (replacing the one an earlier, failed attempt minted),
    /// and the URL goes into `row`'s context for rendering alone. So no usable
    /// token rests in the database, neither before nor after sending; the
    /// delivered mail is the only copy. Rows queued with a finished URL (by
    /// an older version) are sent as they are.
    async fn mint_link(&self, row: &mut OutboxRow) -> anyhow::Result<()> {
        let purpose = match row.template.as_str() {
            t if t == Template::SignIn.as_str() => LinkPurpose::SignIn,
            t if t == Template::Invite.as_str() => LinkPurpose::Invite,
            _ => return Ok(()),
        };
        let Some(link) = row
            .context
            .pointer("/event/link")
            .and_then(Value::as_object)
        else {
            return Ok(());
        };
        let base_url = link
            .get("base_url")
            .and_then(Value::as_str)
            .context("link without base_url")?
            .to_string();
        let ttl = Duration::from_secs(link.get("ttl_secs").and_then(Value::as_u64).unwrap_or(0));
        // Checked as local when queued (`template::local_next`).
        let next = link
            .get("next")
            .and_then(Value::as_str)
            .map(|n| format!("?next={}", crate::domain::template::encode_path(n)))
            .unwrap_or_default();
        let previous = link.get("hash").and_then(Value::as_str).map(str::to_string);
        let user = row.to_user_id.context("a portal link for no user")?;
        let token = new_token().map_err(|e| anyhow::anyhow!("drawing a token: {e}"))?;
        let hash = token_hash(&token);
        let mut stored = row.context.clone();
        if let Some(link) = stored
            .pointer_mut("/event/link")
            .and_then(Value::as_object_mut)
        {
            link.insert("hash".into(), hash.clone().into());
        }
        let now = OffsetDateTime::now_utc();
        let link = NewWebLink {
            token_hash: hash,
            user,
            purpose,
            now,
            expires: now + ttl,
        };
        self.store
            .mint_web_link(row.id, previous.as_deref(), &link, &stored)
            .await
            .context("storing the link's hash")?;
        if let Some(event) = row.context.get_mut("event").and_then(Value::as_object_mut) {
            event.insert(
                "link".into(),
                format!("{base_url}/login/{token}{next}").into(),
            );
        }
        Ok(())
    }

    /// One delivery attempt. A crash after the server accepted the message and
    /// before its result is committed sends it again, with the same Message-ID.
    #[tracing::instrument(name = "send", skip_all, fields(outbox = row.id, template = %row.template, ticket = row.ticket_id))]
    async fn deliver(&self, mut row: OutboxRow, comment: Option<Arc<Comment>>) -> Attempt {
        let sent = match self.mint_link(&mut row).await {
            // A store that cannot take the link's hash now may later: retried
            // like a relay that is down.
            Err(e) => Err(MailError::Transient(format!(
                "minting its sign-in link: {e:#}"
            ))),
            Ok(()) => match self.compose(&row, comment.as_deref()) {
                Ok(bytes) => {
                    let outgoing = Outgoing {
                        id: row.id,
                        from: self.policy.support.as_str(),
                        to: &row.to,
                        bytes: &bytes,
                    };
                    self.mailer.send(outgoing).await
                }
                // A template that does not render will not render on retry
                // either; it says nothing about the recipient's address.
                Err(e) => {
                    tracing::error!(id = row.id, template = %row.template, error = %format!("{e:#}"), "notification cannot be composed");
                    let result = AttemptResult::Dead {
                        error: format!("{e:#}"),
                        bouncing: None,
                    };
                    return Attempt { id: row.id, result };
                }
            },
        };
        let result = match sent {
            Ok(()) => AttemptResult::Sent,
            Err(e) if e.is_transient() && (row.attempts as u32) < self.policy.max_attempts => {
                let exponent = row.attempts.clamp(1, 16) as u32 - 1;
                let wait = self
                    .policy
                    .backoff
                    .saturating_mul(1 << exponent)
                    .min(Duration::from_secs(6 * 3600));
                tracing::warn!(id = row.id, to = %row.to, attempts = row.attempts, error = %e, "notification failed; will retry");
                AttemptResult::Retry {
                    at: OffsetDateTime::now_utc() + wait,
                    error: e.to_string(),
                }
            }
            Err(e) => {
                tracing::error!(id = row.id, to = %row.to, attempts = row.attempts, error = %e, "notification dead-lettered");
                // Only a permanent refusal says the address is bad; running out of
                // retries says the path was.
                let bouncing = (!e.is_transient() && row.to_user_id.is_some())
                    .then(|| EmailAddress::parse(&row.to).ok())
                    .flatten();
                AttemptResult::Dead {
                    error: e.to_string(),
                    bouncing,
                }
            }
        };
        Attempt { id: row.id, result }
    }

    /// The template context: the row's snapshot plus what config and the
    /// attachments decide at send time.
    fn context(
        &self,
        row: &OutboxRow,
        body: Option<&str>,
        attached: &[String],
        listed: &[Value],
    ) -> Value {
        let mut context = row.context.clone();
        let Some(map) = context.as_object_mut() else {
            return context;
        };
        let recipient_name = map
            .get("recipient")
            .and_then(|r| r.get("name"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| Locale::of(&row.locale).nameless_reader(&row.to));
        map.insert("marker".into(), MARKER.into());
        map.insert(
            "support_name".into(),
            self.policy.support_name.clone().into(),
        );
        map.insert(
            "support_address".into(),
            self.policy.support.to_string().into(),
        );
        map.insert("locale".into(), row.locale.clone().into());
        map.insert("recipient_name".into(), recipient_name.into());
        let locale = Locale::of(&row.locale);
        let terms = &self.policy.terms;
        if let Some(ticket) = map.get_mut("ticket").and_then(Value::as_object_mut) {
            let status = ticket
                .get("status")
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<Status>().ok());
            if let Some(status) = status {
                ticket.insert("status_label".into(), terms.label(status, locale).into());
            }
        }
        if let Some(event) = map.get_mut("event").and_then(Value::as_object_mut) {
            for (field, label_field) in [("from", "from_label"), ("to", "to_label")] {
                let status = event
                    .get(field)
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse::<Status>().ok());
                if let Some(status) = status {
                    event.insert(label_field.into(), terms.label(status, locale).into());
                }
            }
            let due = event
                .get("due")
                .and_then(Value::as_str)
                .and_then(crate::store::parse_ts);
            if let Some(due) = due {
                let label =
                    crate::domain::dates::format(due, locale.as_str(), &self.policy.timezone);
                event.insert("due_label".into(), label.into());
            }
            let reason = event
                .get("reason")
                .and_then(Value::as_str)
                .and_then(|r| r.parse::<CloseReason>().ok());
            if let Some(reason) = reason {
                event.insert(
                    "reason_label".into(),
                    crate::domain::terms::close_reason_label(reason, locale).into(),
                );
            }
            // A priority's level and target were queued in the default
            // language (`priority_set`, `ticket_updated`).
            let priority = event
                .get("priority")
                .and_then(Value::as_str)
                .and_then(|p| p.parse::<Priority>().ok());
            let text = |field: &str| event.get(field).and_then(Value::as_str).map(str::to_string);
            let resolve = text("sla_resolve").filter(|r| !r.is_empty());
            if let (Some(priority), Some(name), Some(response)) =
                (priority, text("sla_name"), text("sla_response"))
            {
                let (name, response) = terms.sla_words(priority, &name, &response, locale);
                event.insert("sla_name".into(), name.into());
                event.insert("sla_response".into(), response.into());
                if let Some(resolve) = resolve {
                    event.insert(
                        "sla_resolve".into(),
                        terms.resolve_words(&resolve, locale).into(),
                    );
                }
            }
        }
        if let Some(comment) = map.get_mut("comment").and_then(Value::as_object_mut) {
            // Rows queued before the text moved out of the context still carry it.
            if !comment.contains_key("body") {
                comment.insert("body".into(), body.unwrap_or_default().into());
            }
            // A mail carries an excerpt of a long text; the ticket keeps all of it.
            if let Some(Value::String(text)) = comment.get_mut("body")
                && text.len() > self.policy.excerpt_max
            {
                text.truncate(excerpt_end(text, self.policy.excerpt_max));
                comment.insert("truncated".into(), true.into());
            }
            comment.insert("attachments".into(), json!(attached));
            comment.insert("attachments_listed".into(), json!(listed));
        }
        context
    }

    /// The full RFC 5322 message of an outbox row, with the text and files of
    /// its comment, if any.
    pub fn compose(&self, row: &OutboxRow, comment: Option<&Comment>) -> anyhow::Result<Vec<u8>> {
        let comment_files = comment.map_or(&[][..], |c| c.files.as_slice());
        // Attachments ride along while they fit in `attach_max`; the rest are listed.
        let mut files = Vec::new();
        let (mut attached, mut listed) = (Vec::new(), Vec::new());
        let mut budget = self.policy.attach_max;
        for file in comment_files {
            if (file.data.len() as u64) <= budget {
                budget -= file.data.len() as u64;
                attached.push(file.filename.clone());
                files.push(file);
            } else {
                listed.push(json!({ "filename": file.filename, "size": file.data.len() }));
            }
        }
        let body = comment.and_then(|c| c.body.as_deref());
        let context = self.context(row, body, &attached, &listed);
        let rendered = self.renderer.notification(
            &row.template,
            &row.locale,
            &context,
            row.subject.is_empty(),
        )?;
        let subject = rendered.subject.unwrap_or_else(|| row.subject.clone());

        let from = Mailbox::new(
            Some(self.policy.support_name.clone()),
            self.policy.support.as_str().parse()?,
        );
        let to_name = row
            .context
            .pointer("/recipient/name")
            .and_then(Value::as_str)
            .map(str::to_string);
        let to = Mailbox::new(to_name, row.to.parse()?);
        let mut builder = Message::builder()
            .from(from)
            .to(to)
            .subject(subject)
            .message_id(Some(row.message_id.clone()))
            .date_now()
            // RFC 3834 §5: automatic mail; Outlook's header asks clients not to auto-answer.
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("Auto-Submitted"),
                "auto-generated".into(),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("X-Auto-Response-Suppress"),
                "All".into(),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("X-Loop"),
                self.policy.support.to_string(),
            ));
        if let (Some(ticket), Some(user)) = (row.ticket_id, row.to_user_id) {
            let reply =
                token::reply_address(&self.policy.support, &self.policy.secret, ticket, user);
            builder = builder.reply_to(Mailbox::new(
                Some(self.policy.support_name.clone()),
                reply.parse()?,
            ));
        }
        if let Some(parent) = &row.in_reply_to {
            builder = builder.in_reply_to(parent.clone());
        }
        if let Some(refs) = &row.references {
            builder = builder.references(refs.clone());
        }
        let alternative = MultiPart::alternative()
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(crlf(rendered.text)),
            )
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .body(crlf(rendered.html)),
            );
        let message = if files.is_empty() {
            builder.multipart(alternative)?
        } else {
            let mut mixed = MultiPart::mixed().multipart(alternative);
            for file in files {
                let content_type = ContentType::parse(&file.content_type).unwrap_or_else(|_| {
                    ContentType::parse("application/octet-stream").expect("static type")
                });
                mixed = mixed.singlepart(
                    Attachment::new(file.filename.clone()).body(file.data.clone(), content_type),
                );
            }
            builder.multipart(mixed)?
        };
        Ok(message.formatted())
    }
}

/// Where an excerpt of at most `max` bytes of `text` ends: after the last
/// line break in its second half, else on the last character boundary.
fn excerpt_end(text: &str, max: usize) -> usize {
    let end = text.floor_char_boundary(max);
    match text[..end].rfind('\n') {
        Some(nl) if nl >= end / 2 => nl + 1,
        _ => end,
    }
}

/// `text` with CRLF line endings (RFC 5322 §2.3), built in one pass. lettre
/// converts a body itself by inserting a CR before each bare LF in place,
/// which is quadratic (an 8 MB comment took 30 s); given CRLF already, it
/// only scans.
fn crlf(text: String) -> String {
    let bare = text
        .bytes()
        .enumerate()
        .filter(|&(i, b)| b == b'\n' && (i == 0 || text.as_bytes()[i - 1] != b'\r'))
        .count();
    if bare == 0 {
        return text;
    }
    let mut out = String::with_capacity(text.len() + bare);
    let mut last = '\0';
    for c in text.chars() {
        if c == '\n' && last != '\r' {
            out.push('\r');
        }
        out.push(c);
        last = c;
    }
    out
}
