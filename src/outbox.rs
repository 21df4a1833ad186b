//! The outbox worker: claims due rows with a lease (never holding a transaction
//! across delivery), renders them, hands them to the mailer, and records the
//! result. Transient failures retry with exponential backoff; after
//! `max_attempts` a row is dead-lettered; permanent failures die at once.

use std::sync::Arc;
use std::time::Duration;

use lettre::Message;
use lettre::message::Mailbox;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::domain::ids::EmailAddress;
use crate::domain::reply::MARKER;
use crate::domain::ticket::Status;
use crate::domain::token;
use crate::mailer::{MailError, Mailer, Outgoing};
use crate::render::Renderer;
use crate::store::{OutboxRow, Store};

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
    /// Status labels from `[statuses]` (machine name → label).
    pub labels: Vec<(Status, String)>,
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
            labels: Status::ALL
                .iter()
                .map(|st| (*st, s.status_label(*st)))
                .collect(),
        }
    }

    fn label(&self, status: Status) -> String {
        self.labels
            .iter()
            .find(|(s, _)| *s == status)
            .map(|(_, l)| l.clone())
            .unwrap_or_else(|| status.default_label().to_string())
    }
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

const BATCH: i64 = 50;

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
        let mut stats = FlushStats::default();
        loop {
            let rows = self
                .store
                .claim_outbox(OffsetDateTime::now_utc(), self.policy.lease, BATCH)
                .await?;
            if rows.is_empty() {
                return Ok(stats);
            }
            for row in rows {
                self.deliver(row, &mut stats).await?;
            }
        }
    }

    /// Runs until cancelled; a store outage is logged and retried, never fatal.
    pub async fn run(&self, cancel: CancellationToken) {
        loop {
            if let Err(e) = self.flush().await {
                tracing::warn!(error = %format!("{e:#}"), "outbox flush failed; will retry");
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(self.policy.poll_interval) => {}
            }
        }
    }

    async fn deliver(&self, row: OutboxRow, stats: &mut FlushStats) -> anyhow::Result<()> {
        let now = OffsetDateTime::now_utc();
        let result = match self.compose(&row) {
            Ok(bytes) => {
                self.mailer
                    .send(Outgoing {
                        id: row.id,
                        to: &row.to,
                        bytes: &bytes,
                    })
                    .await
            }
            // A template that does not render will not render on retry either.
            Err(e) => Err(MailError::Permanent(format!("{e:#}"))),
        };
        match result {
            Ok(()) => {
                self.store
                    .mark_sent(row.id, OffsetDateTime::now_utc())
                    .await?;
                stats.sent += 1;
            }
            Err(e) if e.is_transient() && (row.attempts as u32) < self.policy.max_attempts => {
                let wait = self
                    .policy
                    .backoff
                    .saturating_mul(1u32 << (row.attempts.clamp(1, 16) - 1) as u32);
                let wait = wait.min(Duration::from_secs(6 * 3600));
                tracing::warn!(id = row.id, to = %row.to, attempts = row.attempts, error = %e, "notification failed; will retry");
                self.store
                    .mark_failed(row.id, &e.to_string(), Some(now + wait), now)
                    .await?;
                stats.failed += 1;
            }
            Err(e) => {
                tracing::error!(id = row.id, to = %row.to, attempts = row.attempts, error = %e, "notification dead-lettered");
                self.store
                    .mark_failed(row.id, &e.to_string(), None, now)
                    .await?;
                stats.dead += 1;
            }
        }
        Ok(())
    }

    /// The full RFC 5322 message of an outbox row.
    pub fn compose(&self, row: &OutboxRow) -> anyhow::Result<Vec<u8>> {
        let mut context = row.context.clone();
        let status = context
            .pointer("/ticket/status")
            .and_then(|s| s.as_str())
            .and_then(|s| s.parse::<Status>().ok())
            .unwrap_or(Status::New);
        if let Some(map) = context.as_object_mut() {
            map.insert("marker".into(), MARKER.into());
            map.insert(
                "support_name".into(),
                self.policy.support_name.clone().into(),
            );
            map.insert("status_label".into(), self.policy.label(status).into());
            let name = map
                .get("recipient_name")
                .and_then(|v| v.as_str())
                .map(str::to_string);
            map.insert(
                "recipient_name".into(),
                name.unwrap_or_else(|| "there".into()).into(),
            );
        }
        let text = self.renderer.text(&row.template, &context)?;

        let from = Mailbox::new(
            Some(self.policy.support_name.clone()),
            self.policy.support.as_str().parse()?,
        );
        let to: Mailbox = row.to.parse()?;
        let mut builder = Message::builder()
            .from(from)
            .to(to)
            .subject(row.subject.clone())
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
        let message = builder.header(ContentType::TEXT_PLAIN).body(text)?;
        Ok(message.formatted())
    }
}
