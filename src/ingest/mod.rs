//! The ingest use case: raw bytes in, one recorded outcome out.
//!
//! Every decision is made by `domain`; this module looks up the facts those
//! decisions need and writes the result in ONE transaction: raw message, ticket,
//! comment, attachments, events, message refs, outbox rows and the ingest log.
//! A source acknowledges a message only after `ingest` returns `Ok`, so a crash
//! at any point re-delivers, and the ingest log turns re-delivery into `duplicate`.

use std::sync::{Arc, OnceLock};

mod decide;
mod notices;
mod policy;
mod prepare;

pub use policy::IntakePolicy;
use prepare::{Batch, Content, Prepared, read_ahead, thread_ids};

use serde::Serialize;
use time::OffsetDateTime;

use crate::domain::classify::{self, OwnIdentity};
use crate::domain::event::Event;
use crate::domain::ids::{CommentId, EmailAddress, MessageId, TicketId};
use crate::domain::lookalike;
use crate::domain::mail::{InboundMail, ParseError};
use crate::domain::mentions;
use crate::domain::template::{self, Notification};
use crate::tickets::cmd::{self as commands, Command};

use crate::domain::outcome::{Outcome, reason};
use crate::domain::reply;
use crate::source::{MailSink, SinkError};

use crate::domain::threading::{self, ThreadFacts};
use crate::domain::ticket::{self, Role};
use crate::metrics::Metrics;
use crate::store::{
    CommentSource, Lookahead, NewEvent, NewLogEntry, NewUser, RefKind, Store, StoreError,
    TicketState, Tx, User, sha256_hex,
};
pub use crate::tickets::ReplayRefusal;
use crate::tickets::notice::{self, Notice};
use crate::tickets::{self, ChangePolicy, Changes, Replay, Replayed};

pub use crate::source::{Delivery, SourceCursor};

#[async_trait::async_trait]
impl MailSink for Ingestor {
    async fn record(&self, deliveries: &[Delivery<'_>]) -> Result<Vec<Outcome>, SinkError> {
        let reports = match deliveries {
            [one] => self.ingest(*one).await.map(|r| vec![r]),
            _ => self.ingest_batch(deliveries).await,
        };
        match reports {
            Ok(reports) => Ok(reports.into_iter().map(|r| r.outcome).collect()),
            Err(e) => Err(SinkError {
                transient: e.is_transient(),
                disk_full: matches!(&e, IngestError::Store(s) if s.is_disk_full()),
                message: e.to_string(),
            }),
        }
    }

    fn limits(&self) -> crate::source::Limits {
        self.policy.limits()
    }

    fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }
}

/// The recorded outcome of one delivery (`ingest --json` prints this).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IngestReport {
    pub message_id: Option<String>,
    #[serde(skip)]
    pub origin: String,
    pub outcome: Outcome,
    pub ticket: Option<TicketId>,
    pub comment: Option<CommentId>,
    pub reason: Option<String>,
    #[serde(skip)]
    pub log_id: i64,
    #[serde(skip)]
    pub thread_reason: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A replay that cannot run; nothing was written.
    #[error(transparent)]
    Replay(#[from] ReplayRefusal),
}

impl IngestError {
    /// Worth delivering again later (the MTA gets EX_TEMPFAIL, the mailbox keeps the message).
    pub fn is_transient(&self) -> bool {
        match self {
            IngestError::Store(e) => e.is_transient(),
            IngestError::Replay(_) => false,
        }
    }
}

#[derive(Clone)]
pub struct Ingestor {
    store: Arc<dyn Store>,
    policy: Arc<IntakePolicy>,
    own: Arc<OwnIdentity>,
    sender: Arc<notice::Sender>,
    metrics: Arc<Metrics>,
    /// The ticket service every channel calls.
    tickets: tickets::Service,
}

/// Logged once the outcome is committed, never for a rolled-back attempt.
fn log_outcome(r: &IngestReport) {
    tracing::info!(
        origin = r.origin.as_str(),
        message_id = r.message_id.as_deref(),
        outcome = %r.outcome,
        reason = r.reason.as_deref(),
        ticket = r.ticket,
        "ingested"
    );
}

/// What a transaction decided, before the log row is written.
struct Decided {
    outcome: Outcome,
    reason: Option<String>,
    thread_reason: Option<String>,
    ticket: Option<TicketId>,
    comment: Option<CommentId>,
}

impl Decided {
    fn refused(outcome: Outcome, reason: &str) -> Self {
        Self {
            outcome,
            reason: Some(reason.to_string()),
            thread_reason: None,
            ticket: None,
            comment: None,
        }
    }
}

impl Ingestor {
    pub fn new(store: Arc<dyn Store>, mut policy: IntakePolicy) -> Self {
        let metrics = Arc::new(Metrics::new());
        policy.changes.metrics = Some(metrics.clone());
        let own = Arc::new(policy.own_identity());
        let sender = Arc::new(notice::Sender {
            domain: policy.domain.clone(),
            tag: policy.tag.clone(),
            portal: policy.portal.clone(),
        });
        let tickets = tickets::Service::new(
            store.clone(),
            sender.clone(),
            Arc::new(policy.changes.clone()),
        );
        Self {
            store,
            policy: Arc::new(policy),
            own,
            sender,
            metrics,
            tickets,
        }
    }

    /// Outcome counts and latencies of this process (`/metrics`).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn policy(&self) -> &IntakePolicy {
        &self.policy
    }

    /// The ticket service, for channels that act one request at a time.
    pub fn tickets(&self) -> &tickets::Service {
        &self.tickets
    }

    /// How notifications queued next to ingest are addressed and tagged.
    pub fn notice_sender(&self) -> &notice::Sender {
        &self.sender
    }

    /// Records one delivery. `Err` only for storage trouble (nothing was
    /// committed: deliver again); every input, however broken, gets an `Ok` outcome.
    pub async fn ingest(&self, delivery: Delivery<'_>) -> Result<IngestReport, IngestError> {
        let started = std::time::Instant::now();
        let prepared = self.prepare(&delivery);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.ingest_once(&delivery, &prepared).await {
                // A concurrent instance recorded the same message first; the next
                // attempt sees its row and records a duplicate.
                Err(IngestError::Store(StoreError::Conflict(what))) if attempt < 4 => {
                    tracing::debug!(%what, attempt, "write conflict, retrying");
                }
                Ok(report) => {
                    self.metrics
                        .record_ingest(report.outcome, started.elapsed());
                    return Ok(report);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Re-runs a quarantined or rejected delivery from its stored raw bytes
    /// (say, after its sender was registered). The old row stays, marked
    /// superseded; the new outcome is a new row pointing at it.
    pub async fn replay(&self, log_id: i64) -> Result<IngestReport, IngestError> {
        let row = self
            .store
            .log_row(log_id)
            .await?
            .ok_or(ReplayRefusal::NotFound(log_id))?;
        if row.superseded {
            return Err(ReplayRefusal::AlreadyReplayed(log_id).into());
        }
        if row.discarded_at.is_some() {
            return Err(ReplayRefusal::Discarded(log_id).into());
        }
        if !matches!(row.outcome, Outcome::Quarantined | Outcome::Rejected) {
            return Err(ReplayRefusal::NotReplayable {
                id: log_id,
                outcome: row.outcome.to_string(),
            }
            .into());
        }
        if row.raw_sha256 == crate::store::people::EMPTY_BLOB {
            return Err(ReplayRefusal::RawRemoved(log_id).into());
        }
        let raw = self
            .store
            .blob(&row.raw_sha256)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("raw message {}", row.raw_sha256)))?;
        if raw.len() as i64 != row.size {
            return Err(ReplayRefusal::HeadersOnly(log_id).into());
        }
        let origin = format!("replay:{log_id}");
        self.ingest(Delivery {
            raw: &raw,
            origin: &origin,
            notify: row.notify,
            replay_of: Some(log_id),
            ..Default::default()
        })
        .await
    }

    /// Records several deliveries in ONE transaction: one disk sync for the
    /// batch instead of one per message, which is what makes draining a
    /// mailbox fast. The guarantees are unchanged: the source acknowledges the
    /// batch only after this returns `Ok` (everything committed) and on `Err`
    /// nothing was. A write conflict with another instance rolls the batch
    /// back and records it message by message instead.
    pub async fn ingest_batch(
        &self,
        deliveries: &[Delivery<'_>],
    ) -> Result<Vec<IngestReport>, IngestError> {
        if deliveries.len() < 2 {
            return self.one_by_one(deliveries).await;
        }
        let started = std::time::Instant::now();
        let batch = Arc::new(Batch {
            slots: deliveries.iter().map(|_| OnceLock::new()).collect(),
        });
        read_ahead(&batch, deliveries, self.policy.max_message_size);
        match self.ingest_together(deliveries, &batch).await {
            Ok(reports) => {
                let took = started.elapsed();
                for r in &reports {
                    self.metrics.record_ingest(r.outcome, took);
                }
                Ok(reports)
            }
            Err(IngestError::Store(StoreError::Conflict(what))) => {
                tracing::debug!(%what, "write conflict in a batch, recording one by one");
                self.one_by_one(deliveries).await
            }
            Err(e) => Err(e),
        }
    }

    async fn one_by_one(
        &self,
        deliveries: &[Delivery<'_>],
    ) -> Result<Vec<IngestReport>, IngestError> {
        let mut out = Vec::with_capacity(deliveries.len());
        for d in deliveries {
            out.push(self.ingest(*d).await?);
        }
        Ok(out)
    }

    #[tracing::instrument(name = "deliveries", skip_all, fields(count = deliveries.len()))]
    async fn ingest_together(
        &self,
        deliveries: &[Delivery<'_>],
        batch: &Batch,
    ) -> Result<Vec<IngestReport>, IngestError> {
        let prepared = |i: usize| batch.slots[i].get_or_init(|| self.prepare(&deliveries[i]));
        let look_ahead = if self.store.looks_ahead() {
            // All of it parsed first: from the back, while the reader goes
            // from the front, so each parses about half.
            for i in (0..deliveries.len()).rev() {
                prepared(i);
            }
            Some(self.look_ahead((0..deliveries.len()).map(prepared)))
        } else {
            None
        };
        let mut tx = self.store.begin().await?;
        if let Some(look_ahead) = look_ahead {
            tx.look_ahead(&look_ahead).await?;
        }
        let mut reports = Vec::with_capacity(deliveries.len());
        for (i, d) in deliveries.iter().enumerate() {
            reports.push(self.record(tx.as_mut(), d, prepared(i)).await?);
        }
        tx.commit().await?;
        for r in &reports {
            log_outcome(r);
        }
        Ok(reports)
    }

    /// What `decide` will look up for these deliveries, for `Tx::look_ahead`.
    fn look_ahead<'p>(&self, prepared: impl ExactSizeIterator<Item = &'p Prepared>) -> Lookahead {
        let mut batch = Lookahead {
            deliveries: prepared.len(),
            ..Lookahead::default()
        };
        for p in prepared {
            batch.dedup_keys.push(p.dedup_key());
            let Some((mail, _)) = p.readable() else {
                continue;
            };
            batch.senders.extend(mail.sender().cloned());
            batch.message_ids.extend(thread_ids(mail));
            batch
                .tickets
                .extend(threading::subject_tag(&mail.subject, &self.policy.tag));
        }
        batch
    }

    /// Parsing and hashing: done once, outside any transaction and its retries.
    fn prepare(&self, delivery: &Delivery<'_>) -> Prepared {
        Prepared::new(
            delivery.raw,
            delivery.declared_size,
            self.policy.max_message_size,
            delivery.failed,
        )
    }

    /// One message in its own transaction; its log lines carry where it
    /// came from.
    #[tracing::instrument(name = "delivery", skip_all, fields(origin = delivery.origin))]
    async fn ingest_once(
        &self,
        delivery: &Delivery<'_>,
        prepared: &Prepared,
    ) -> Result<IngestReport, IngestError> {
        let mut tx = self.store.begin().await?;
        let report = self.record(tx.as_mut(), delivery, prepared).await?;
        tx.commit().await?;
        log_outcome(&report);
        Ok(report)
    }

    /// Everything one delivery writes, inside the caller's transaction.
    async fn record(
        &self,
        tx: &mut dyn Tx,
        delivery: &Delivery<'_>,
        prepared: &Prepared,
    ) -> Result<IngestReport, IngestError> {
        let Prepared {
            parsed,
            sha,
            too_large,
            too_complex,
            ..
        } = prepared;
        let (sha, too_large) = (sha.as_str(), *too_large);
        let now = OffsetDateTime::now_utc();
        let mail = parsed.as_ref().ok();
        let message_id = mail.and_then(|m| m.message_id.clone());
        let dedup_key = prepared.dedup_key();

        // The raw message is stored before anything else is decided about it.
        tx.put_blob(sha, delivery.raw).await?;
        if let Some(id) = delivery.replay_of
            && !tx.supersede_log(id).await?
        {
            return Err(ReplayRefusal::AlreadyReplayed(id).into());
        }

        let decided = if let Some(previous) = tx.find_logged(&dedup_key).await? {
            let mut d = Decided::refused(Outcome::Duplicate, reason::DUPLICATE);
            d.ticket = previous.ticket_id;
            d.comment = previous.comment_id;
            let entry = self.log_entry(delivery, mail, &dedup_key, sha, &d, Some(previous.id), now);
            let log_id = tx.log_delivery(&entry).await?;
            advance(tx, delivery, now).await?;
            return Ok(report(delivery.origin, message_id, d, log_id));
        } else {
            match (mail, too_large) {
                _ if delivery.failed => {
                    Decided::refused(Outcome::Rejected, reason::PROCESSING_FAILED)
                }
                (None, _) => Decided::refused(Outcome::Rejected, reason::UNPARSEABLE),
                // Read no further than its headers, like mail too large; not answered:
                // whoever sends it builds it to cost us, and From may be forged.
                (Some(_), _) if *too_complex => {
                    Decided::refused(Outcome::Rejected, reason::TOO_COMPLEX)
                }
                (Some(mail), true) => {
                    // Automatic mail is never answered, however large.
                    if classify::classify(mail, &self.own).is_none() {
                        self.refusal_notice(
                            tx,
                            mail,
                            reason::TOO_LARGE,
                            None,
                            delivery.notify,
                            now,
                        )
                        .await?;
                    }
                    Decided::refused(Outcome::Rejected, reason::TOO_LARGE)
                }
                (Some(mail), false) => match &prepared.content {
                    Some(content) => self.decide(tx, mail, content, delivery.notify, now).await?,
                    // Read past its headers means worked out (`Prepared::new`).
                    None => Decided::refused(Outcome::Rejected, reason::UNPARSEABLE),
                },
            }
        };
        if decided.outcome == Outcome::Quarantined {
            self.quarantine_alert(tx, delivery.notify, now).await?;
        }
        let entry = self.log_entry(delivery, mail, &dedup_key, sha, &decided, None, now);
        let log_id = tx.log_delivery(&entry).await?;
        advance(tx, delivery, now).await?;
        Ok(report(delivery.origin, message_id, decided, log_id))
    }

    #[allow(clippy::too_many_arguments)]
    fn log_entry(
        &self,
        delivery: &Delivery<'_>,
        mail: Option<&InboundMail>,
        dedup_key: &str,
        sha: &str,
        d: &Decided,
        duplicate_of: Option<i64>,
        now: OffsetDateTime,
    ) -> NewLogEntry {
        NewLogEntry {
            dedup_key: dedup_key.to_string(),
            message_id: mail.and_then(|m| m.message_id.clone()),
            origin: delivery.origin.to_string(),
            raw_sha256: sha.to_string(),
            size: delivery.declared_size.unwrap_or(delivery.raw.len() as u64),
            sender: mail.and_then(|m| m.sender()).map(|s| s.to_string()),
            subject: mail.map(|m| m.subject.clone()),
            outcome: d.outcome,
            reason: d.reason.clone(),
            thread_reason: d.thread_reason.clone(),
            ticket_id: d.ticket,
            comment_id: d.comment,
            duplicate_of,
            replay_of: delivery.replay_of,
            notify: delivery.notify,
            now,
        }
    }
}

/// Moves the source cursor with the delivery, in its transaction.
async fn advance(
    tx: &mut dyn Tx,
    delivery: &Delivery<'_>,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    match delivery.cursor {
        Some(c) => {
            tx.advance_cursor(c.source, i64::from(c.validity), i64::from(c.uid), now)
                .await
        }
        None => Ok(()),
    }
}

fn report(origin: &str, message_id: Option<MessageId>, d: Decided, log_id: i64) -> IngestReport {
    IngestReport {
        origin: origin.to_string(),
        message_id: message_id.map(String::from),
        outcome: d.outcome,
        ticket: d.ticket,
        comment: d.comment,
        reason: d.reason,
        log_id,
        thread_reason: d.thread_reason,
    }
}

/// The API's and the portal's replay (`src/tickets/replay.rs`).
#[async_trait::async_trait]
impl Replay for Ingestor {
    async fn replay(&self, log_id: i64) -> Result<Result<Replayed, ReplayRefusal>, StoreError> {
        match Ingestor::replay(self, log_id).await {
            Ok(r) => Ok(Ok(Replayed {
                log_id: r.log_id,
                outcome: r.outcome,
                ticket: r.ticket,
                comment: r.comment,
                reason: r.reason,
            })),
            Err(IngestError::Replay(refusal)) => Ok(Err(refusal)),
            Err(IngestError::Store(e)) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests;
