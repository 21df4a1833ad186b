//! The ingest use case: raw bytes in, one recorded outcome out.
//!
//! Every decision is made by `domain`; this module looks up the facts those
//! decisions need and writes the result in ONE transaction: raw message, ticket,
//! comment, attachments, events, message refs, outbox rows and the ingest log.
//! A source acknowledges a message only after `ingest` returns `Ok`, so a crash
//! at any point re-delivers, and the ingest log turns re-delivery into `duplicate`.

use std::sync::{Arc, OnceLock};

use serde::Serialize;
use time::OffsetDateTime;

use crate::domain::classify::{self, OwnIdentity};
use crate::domain::commands::{self, Command};
use crate::domain::event::EventKind;
use crate::domain::ids::{CommentId, EmailAddress, MessageId, TicketId};
use crate::domain::lookalike;
use crate::domain::mail::{InboundMail, ParseError};
use crate::domain::mentions;
use crate::domain::template::Template;

use crate::domain::outcome::{Outcome, reason};
use crate::domain::reply;
use crate::source::{MailSink, SinkError};

use crate::domain::threading::{self, ThreadFacts};
use crate::domain::ticket::{self, Role, Status};
use crate::metrics::Metrics;
use crate::store::{
    CommentSource, Lookahead, NewEvent, NewLogEntry, NewUser, RefKind, Store, StoreError,
    TicketState, Tx, User,
};
use crate::tickets::notice::{self, Notice};
use crate::tickets::{self, ChangePolicy, Changes};

/// What intake needs from config, resolved once at start.
#[derive(Debug, Clone)]
pub struct IntakePolicy {
    pub support: EmailAddress,
    pub support_name: String,
    /// `support.domain`: Message-IDs of notifications are generated under it.
    pub domain: String,
    pub notify: Option<EmailAddress>,
    pub tag: String,
    pub secret: Vec<u8>,
    pub max_message_size: u64,
    /// `[intake] keep_oversize`: how much of a larger message a source keeps.
    pub keep_oversize: u64,
    pub allow_unknown_senders: bool,
    /// At most one automatic answer (acknowledgement, refusal) per sender per window.
    pub auto_reply_window: std::time::Duration,
    /// `[auth] trusted_authserv_id`: whose Authentication-Results count.
    pub trusted_authserv_id: String,
    /// Also holds the rules and the automatic-answer window.
    pub changes: ChangePolicy,
}

impl IntakePolicy {
    pub fn from_settings(
        settings: &crate::config::Settings,
    ) -> Result<Self, crate::config::ConfigError> {
        Ok(Self {
            support: settings.support_address(),
            support_name: settings.support.name.clone(),
            domain: settings.support.domain.trim().to_ascii_lowercase(),
            notify: settings.notify_address(),
            tag: settings.support.tag.clone(),
            secret: settings.reply_secret()?,
            max_message_size: settings.intake.max_message_size.0,
            keep_oversize: settings.intake.keep_oversize.0,
            allow_unknown_senders: settings.intake.allow_unknown_senders,
            auto_reply_window: settings.intake.auto_reply_window.0,
            trusted_authserv_id: settings.auth.trusted_authserv_id.clone(),
            changes: ChangePolicy {
                notify: settings.notify_address(),
                notify_each_staff: settings.support.notify_staff
                    == crate::config::NotifyStaff::Each,
                sla: settings.sla_table(),
                auto_follow_mentions: settings.mentions.auto_follow,
                labels: Status::ALL
                    .iter()
                    .map(|st| (*st, settings.status_label(*st)))
                    .collect(),
                rules: Arc::new(settings.rules()?),
                auto_reply_window: settings.intake.auto_reply_window.0,
                auto_reply_limit: settings.intake.auto_reply_limit,
                timezone: crate::domain::dates::Zone::parse(&settings.support.timezone).map_err(
                    |e| crate::config::ConfigError::Invalid {
                        key: "support.timezone".into(),
                        message: e.to_string(),
                    },
                )?,
            },
        })
    }

    /// How much of a message sources read (see `source::read_bounded`).
    pub fn limits(&self) -> crate::source::Limits {
        crate::source::Limits {
            max: self.max_message_size,
            keep: self.keep_oversize,
        }
    }

    fn own_identity(&self) -> OwnIdentity {
        let mut addresses = vec![self.support.clone()];
        addresses.extend(self.notify.clone());
        OwnIdentity {
            addresses,
            domain: self.domain.clone(),
        }
    }
}

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

/// Why a logged delivery cannot be replayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayRefusal {
    #[error("no message {0} in the ingest log")]
    NotFound(i64),
    #[error("message {id} was {outcome}: only quarantined or rejected messages are replayed")]
    NotReplayable { id: i64, outcome: String },
    #[error("message {0} was already replayed")]
    AlreadyReplayed(i64),
    /// Oversized IMAP mail is fetched by its headers only; its body never reached us.
    #[error("only the headers of message {0} were kept; deliver it again instead")]
    HeadersOnly(i64),
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

/// The blob key of a stored message or attachment.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, data))
}

#[derive(Clone)]
pub struct Ingestor {
    store: Arc<dyn Store>,
    policy: Arc<IntakePolicy>,
    own: Arc<OwnIdentity>,
    sender: Arc<notice::Sender>,
    metrics: Arc<Metrics>,
}

/// A delivery parsed and hashed, ready to record (possibly more than once).
struct Prepared {
    parsed: Result<InboundMail, crate::domain::mail::ParseError>,
    sha: String,
    too_large: bool,
    /// Too many MIME parts to parse (`mail::too_complex`): headers only.
    too_complex: bool,
    /// Worked out with the parse, for mail read past its headers. It takes
    /// the text and HTML out of `parsed` (nothing else reads them), so a
    /// large body is not held twice while it is stored.
    content: Option<Content>,
}

/// What a message says, from the message alone: the reply cut from its quote,
/// the commands in it, the comment body left, its @mentions and attachment
/// hashes. It depends on no stored state, so a batch works it out on the other
/// core while earlier messages are recorded (`read_ahead`).
struct Content {
    /// Its `reply` is moved into `body`.
    extracted: reply::Extracted,
    /// Its `rest` is moved into `body`.
    commands: commands::Parsed,
    /// The comment: the reply without its command lines.
    body: String,
    mentions: mentions::Found,
    /// SHA-256 of each attachment, in `mail.attachments` order.
    attachment_shas: Vec<String>,
}

impl Content {
    /// Takes `mail.text` and `mail.html` (left empty): the body is held once
    /// here (not as text, reply and rest besides), each step moving it on;
    /// `commands.rest` is left empty.
    fn of(mail: &mut InboundMail) -> Self {
        let full = std::mem::take(&mut mail.text);
        let html = mail.html.take();
        let mut extracted = match &html {
            Some(html) if mail.text_from_html => reply::extract_html(html),
            _ => reply::extract_text(&full),
        };
        drop(html);
        let text = if extracted.reply.trim().is_empty() {
            // All of it was quoted: keep what was sent, without a copy.
            trim_owned(full)
        } else {
            drop(full);
            std::mem::take(&mut extracted.reply)
        };
        let mut commands = commands::parse_owned(text);
        let body = std::mem::take(&mut commands.rest);
        Content {
            mentions: mentions::find(&body),
            attachment_shas: mail
                .attachments
                .iter()
                .map(|a| sha256_hex(&a.data))
                .collect(),
            extracted,
            commands,
            body,
        }
    }
}

/// `text.trim()`, in place: no second buffer for a large body.
fn trim_owned(mut text: String) -> String {
    text.truncate(text.trim_end().len());
    let start = text.len() - text.trim_start().len();
    text.drain(..start);
    text
}

impl Prepared {
    fn new(raw: &[u8], declared_size: Option<u64>, max_message_size: u64, failed: bool) -> Self {
        let too_large = declared_size.unwrap_or(raw.len() as u64) > max_message_size;
        // Oversized and failed mail is logged from its headers alone; its body is never decoded.
        let mut headers_only = too_large || failed;
        let mut parsed = if headers_only {
            InboundMail::parse_headers(raw)
        } else {
            InboundMail::parse(raw)
        };
        // So is mail of too many parts: the parser would take many times its size.
        let too_complex = matches!(parsed, Err(ParseError::TooComplex));
        if too_complex {
            parsed = InboundMail::parse_headers(raw);
            headers_only = true;
        }
        let content = match &mut parsed {
            Ok(mail) if !headers_only => Some(Content::of(mail)),
            _ => None,
        };
        Prepared {
            parsed,
            sha: sha256_hex(raw),
            too_large,
            too_complex,
            content,
        }
    }

    /// The Message-ID, or the content hash of mail without one.
    fn dedup_key(&self) -> String {
        match self
            .parsed
            .as_ref()
            .ok()
            .and_then(|m| m.message_id.as_ref())
        {
            Some(id) => id.as_str().to_string(),
            None => format!("sha256:{}", self.sha),
        }
    }

    /// The parsed mail and what it says, unless it is too large to be read
    /// past its headers. The mail's `text` and `html` are empty: read
    /// [`Content`].
    fn readable(&self) -> Option<(&InboundMail, &Content)> {
        let mail = self.parsed.as_ref().ok()?;
        Some((mail, self.content.as_ref()?))
    }
}

/// The `auto_replies` key of the quarantine alert's window (never an address).
const QUARANTINE_ALERT_KEY: &str = "quarantine alert";

/// At most this many bytes of a batch are copied for its reader thread (a
/// source's batch may hold 32 MB); deliveries past it are prepared where they
/// are recorded, without a copy.
const READ_AHEAD_BYTES: usize = 4 << 20;

/// A batch's deliveries, each prepared once, by whichever thread gets to it
/// first: the recording task or the batch's reader (`read_ahead`).
struct Batch {
    slots: Vec<OnceLock<Prepared>>,
}

/// Prepares a batch's deliveries and works out their `Content`, in order, on
/// a blocking-pool thread, so the other core does it while this one records
/// the earlier messages (parsing, reply extraction and @mentions were about
/// a quarter of ingest CPU). Recording takes each as it comes: done, being
/// done (it waits for that one), or not started (it does it itself). The
/// reader works on copies of the raw bytes, and stops once the batch is dropped.
fn read_ahead(batch: &Arc<Batch>, deliveries: &[Delivery<'_>], max_message_size: u64) {
    let mut budget = READ_AHEAD_BYTES;
    // Raw bytes, declared size and `failed` of each delivery within the budget.
    type Copy = (Vec<u8>, Option<u64>, bool);
    let copies: Vec<Option<Copy>> = deliveries
        .iter()
        .map(|d| {
            let fits = d.raw.len() <= budget;
            if fits {
                budget -= d.raw.len();
            }
            fits.then(|| (d.raw.to_vec(), d.declared_size, d.failed))
        })
        .collect();
    let batch = Arc::downgrade(batch);
    tokio::task::spawn_blocking(move || {
        for (slot, copy) in copies.into_iter().enumerate() {
            let Some(batch) = batch.upgrade() else {
                break;
            };
            let Some((raw, declared_size, failed)) = copy else {
                continue;
            };
            batch.slots[slot]
                .get_or_init(|| Prepared::new(&raw, declared_size, max_message_size, failed));
        }
    });
}

/// The ids a delivery threads by: its ancestors, then its own Message-ID.
fn thread_ids(mail: &InboundMail) -> Vec<MessageId> {
    let mut ids = mail.ancestors();
    ids.extend(mail.message_id.clone());
    ids
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
    pub fn new(store: Arc<dyn Store>, policy: IntakePolicy) -> Self {
        let own = Arc::new(policy.own_identity());
        let sender = Arc::new(notice::Sender {
            domain: policy.domain.clone(),
            tag: policy.tag.clone(),
        });
        Self {
            store,
            policy: Arc::new(policy),
            own,
            sender,
            metrics: Arc::new(Metrics::new()),
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
        if !matches!(row.outcome.as_str(), "quarantined" | "rejected") {
            return Err(ReplayRefusal::NotReplayable {
                id: log_id,
                outcome: row.outcome,
            }
            .into());
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

    /// The decisions for a parsed, non-duplicate, not oversized message.
    async fn decide(
        &self,
        tx: &mut dyn Tx,
        mail: &InboundMail,
        content: &Content,
        notify: bool,
        now: OffsetDateTime,
    ) -> Result<Decided, StoreError> {
        if let Some(auto) = classify::classify(mail, &self.own) {
            if auto == classify::Automatic::DeliveryReport {
                self.record_bounces(tx, mail, now).await?;
            }
            return Ok(Decided::refused(Outcome::Ignored, auto.as_str()));
        }
        if mail.from_fields > 1 {
            // Whose message it is is unknown (see `InboundMail::from_fields`):
            // nobody is registered, answered or acted for. A message on a
            // thread waits for staff; a new one is refused.
            let facts = ThreadFacts {
                known: tx.tickets_of(&thread_ids(mail)).await?,
                token: threading::find_token(mail, &self.policy.support, &self.policy.secret),
                tagged: None,
            };
            let decision = threading::resolve(mail, &facts);
            let ticket = match decision.ticket {
                Some(id) => tx.ticket_state(id).await?.map(|s| s.id),
                None => None,
            };
            let outcome = match ticket {
                Some(_) => Outcome::Quarantined,
                None => Outcome::Rejected,
            };
            return Ok(Decided {
                thread_reason: Some(decision.reason.describe()),
                ticket,
                ..Decided::refused(outcome, reason::MULTIPLE_FROM)
            });
        }
        let Some(sender) = mail.sender() else {
            return Ok(Decided::refused(Outcome::Rejected, reason::NO_SENDER));
        };
        let mut user = tx.user_by_email(sender).await?;
        if user.as_ref().is_some_and(|u| u.bouncing) {
            // A person writing from the address shows it receives mail again.
            tx.set_bouncing(sender, false).await?;
        }
        let registers = user.is_none()
            && (self.policy.allow_unknown_senders
                || tx.org_for_domain(sender.domain()).await?.is_some());
        if registers && lookalike::confusable_address(sender) {
            // It could pass for someone else's address: never registered
            // from mail; staff decide.
            self.tell_team_refused(tx, mail, sender, reason::CONFUSABLE_SENDER, notify, now)
                .await?;
            return Ok(Decided::refused(
                Outcome::Rejected,
                reason::CONFUSABLE_SENDER,
            ));
        }
        if user.is_none() {
            // Senders from an org's domain are registered as its members on first contact.
            if let Some(org) = tx.org_for_domain(sender.domain()).await? {
                let new = self.new_customer(tx, mail, sender, Some(org)).await?;
                user = Some(tx.insert_user(&new, now).await?);
            }
        }

        let mut facts = ThreadFacts {
            known: tx.tickets_of(&thread_ids(mail)).await?,
            token: threading::find_token(mail, &self.policy.support, &self.policy.secret),
            tagged: None,
        };
        if let (Some(user), Some(tagged)) = (
            &user,
            threading::subject_tag(&mail.subject, &self.policy.tag),
        ) && let Some(state) = tx.ticket_state(tagged).await?
            && ticket::may_comment(&tickets::actor(user), &tickets::access(&state))
        {
            facts.tagged = Some(tagged);
        }
        let decision = threading::resolve(mail, &facts);
        let thread_reason = Some(decision.reason.describe());

        let existing = match decision.ticket {
            Some(id) => tx.ticket_state(id).await?,
            None => None,
        };
        let mut decided = match existing {
            Some(state) => {
                let Some(user) = user else {
                    self.refusal_notice(tx, mail, reason::UNKNOWN_SENDER, None, notify, now)
                        .await?;
                    return Ok(Decided {
                        thread_reason,
                        ..Decided::refused(Outcome::Quarantined, reason::UNKNOWN_SENDER)
                    });
                };
                if !ticket::may_comment(&tickets::actor(&user), &tickets::access(&state)) {
                    self.refusal_notice(
                        tx,
                        mail,
                        reason::NOT_A_PARTICIPANT,
                        Some(&user),
                        notify,
                        now,
                    )
                    .await?;
                    return Ok(Decided {
                        thread_reason,
                        ticket: Some(state.id),
                        ..Decided::refused(Outcome::Quarantined, reason::NOT_A_PARTICIPANT)
                    });
                }
                self.add_comment(
                    tx,
                    mail,
                    content,
                    &user,
                    &state,
                    notify,
                    now,
                    &decision.reason,
                )
                .await?
            }
            None => {
                let user = match user {
                    Some(user) => user,
                    None if self.policy.allow_unknown_senders => {
                        let new = self.new_customer(tx, mail, sender, None).await?;
                        tx.insert_user(&new, now).await?
                    }
                    None => {
                        self.refusal_notice(tx, mail, reason::UNKNOWN_SENDER, None, notify, now)
                            .await?;
                        return Ok(Decided {
                            thread_reason,
                            ..Decided::refused(Outcome::Rejected, reason::UNKNOWN_SENDER)
                        });
                    }
                };
                self.create_ticket(tx, mail, content, &user, notify, now)
                    .await?
            }
        };
        decided.thread_reason = thread_reason;
        Ok(decided)
    }

    /// A user registered from their first mail. Their display name comes from
    /// From, unless it claims the support name or a staff member's name
    /// (`"Sam Staff (Example Support)" <helpdesk@customer.test>`): then the
    /// local part.
    async fn new_customer(
        &self,
        tx: &mut dyn Tx,
        mail: &InboundMail,
        sender: &EmailAddress,
        org: Option<i64>,
    ) -> Result<NewUser, StoreError> {
        let claimed = mail.from.as_ref().and_then(|f| f.name.clone());
        let name = match claimed {
            Some(name) if !name.trim().is_empty() => {
                let staff = tx.staff_users().await?;
                let protected = std::iter::once(self.policy.support_name.as_str())
                    .chain(staff.iter().map(|u| u.name.as_str()));
                if lookalike::claims_name(&name, protected) {
                    sender.local_part().to_string()
                } else {
                    name
                }
            }
            _ => sender.local_part().to_string(),
        };
        Ok(NewUser {
            email: sender.clone(),
            name,
            role: Role::Customer,
            org_id: org,
            locale: "en".into(),
        })
    }

    /// Tells the support team (`support.notify`) that a sender was refused.
    async fn tell_team_refused(
        &self,
        tx: &mut dyn Tx,
        mail: &InboundMail,
        sender: &EmailAddress,
        reason: &str,
        notify: bool,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let Some(team) = self.policy.notify.as_ref().filter(|_| notify) else {
            return Ok(());
        };
        let name = mail.from.as_ref().and_then(|f| f.name.clone());
        let notice = Notice::to_team(
            Template::SenderRefused.as_str(),
            team,
            serde_json::json!({ "reason": reason, "sender": sender, "name": name, "original_subject": mail.subject }),
        );
        notice::queue(tx, &self.sender, notice, now).await?;
        Ok(())
    }

    /// What the author of `mail` may prove about themselves: our MTA vouched
    /// for their domain, or they wrote to the reply address issued to them.
    fn proven(&self, mail: &InboundMail, user: &User, ticket: Option<TicketId>) -> bool {
        let token = threading::find_token(mail, &self.policy.support, &self.policy.secret);
        token.is_some_and(|t| t.user == user.id && Some(t.ticket) == ticket)
            || crate::domain::auth::sender_verified(
                &mail.authentication_results,
                &self.policy.trusted_authserv_id,
                user.email.domain(),
            )
    }

    fn changes<'a>(&'a self, tx: &'a mut dyn Tx, notify: bool, now: OffsetDateTime) -> Changes<'a> {
        Changes::new(tx, &self.sender, &self.policy.changes, now, notify)
    }

    async fn create_ticket(
        &self,
        tx: &mut dyn Tx,
        mail: &InboundMail,
        content: &Content,
        user: &User,
        notify: bool,
        now: OffsetDateTime,
    ) -> Result<Decided, StoreError> {
        let parsed = &content.commands;
        let only_questions = !parsed.commands.is_empty()
            && parsed
                .commands
                .iter()
                .all(|c| c.parsed.as_ref().is_ok_and(Command::is_question))
            && commands::only_pleasantries(&content.body)
            && mail.attachments.is_empty();
        if only_questions {
            // `#list`, `#help` (and a greeting): answers, not a ticket.
            let mut changes = self.changes(tx, notify, now);
            let mut asked = Vec::new();
            for c in &parsed.commands {
                if let Ok(command) = &c.parsed
                    && !asked.contains(command)
                {
                    asked.push(command.clone());
                }
            }
            for command in asked {
                match command {
                    Command::Help => changes.answer_help(user).await?,
                    _ => changes.answer_list(user).await?,
                }
            }
            return Ok(Decided {
                outcome: Outcome::CommandOnly,
                reason: None,
                thread_reason: None,
                ticket: None,
                comment: None,
            });
        }
        let subject = threading::ticket_subject(&mail.subject, &self.policy.tag);
        // Registered users in Cc of the creating message follow the ticket.
        let cc: Vec<EmailAddress> = mail
            .cc
            .iter()
            .map(|cc| cc.address.clone())
            .filter(|a| *a != user.email && *a != self.policy.support)
            .collect();
        let proven = self.proven(mail, user, None);
        let opening = tickets::Opening {
            written: self.written(mail, content, user, proven, None),
            subject: &subject,
            cc: &cc,
        };
        let mut changes = self.changes(tx, notify, now);
        let added = match changes.open_ticket(&opening).await? {
            Ok(added) => added,
            Err(refusal) => {
                drop(changes);
                return self
                    .refused_comment(tx, mail, user, None, refusal, notify, now)
                    .await;
            }
        };
        let ticket_id = added.state.id;
        if !added.failures.is_empty() {
            // The report names the ticket as the rules left it.
            let state = changes.reload(ticket_id).await?;
            changes
                .report_failures(user, Some(&state), &mail.subject, &added.failures)
                .await?;
        }
        changes.finish().await?;
        self.remember_thread(tx, mail, ticket_id, now).await?;
        Ok(Decided {
            outcome: Outcome::TicketCreated,
            reason: None,
            thread_reason: None,
            ticket: Some(ticket_id),
            comment: added.comment,
        })
    }

    /// What the message says, for the ticket service.
    fn written<'m>(
        &self,
        mail: &'m InboundMail,
        content: &'m Content,
        user: &'m User,
        proven: bool,
        thread: Option<&'m str>,
    ) -> tickets::Written<'m> {
        let commands = &content.commands.commands;
        tickets::Written {
            author: user,
            proven,
            source: CommentSource::Email,
            subject: &mail.subject,
            body: &content.body,
            signature: content.extracted.signature.as_deref(),
            quoted: content.extracted.quoted.as_deref(),
            internal: commands.iter().any(|c| c.parsed == Ok(Command::Internal)),
            attachments: &mail.attachments,
            attachment_shas: &content.attachment_shas,
            commands,
            mentions: &content.mentions,
            message_id: mail.message_id.as_ref(),
            thread,
            suppress_auto_response: mail.auto.suppress_auto_response,
        }
    }

    /// A comment or ticket the ticket service refused: the message waits in
    /// quarantine for staff, and its sender is told why (never published).
    #[allow(clippy::too_many_arguments)]
    async fn refused_comment(
        &self,
        tx: &mut dyn Tx,
        mail: &InboundMail,
        user: &User,
        ticket: Option<TicketId>,
        refusal: tickets::Refusal,
        notify: bool,
        now: OffsetDateTime,
    ) -> Result<Decided, StoreError> {
        let why = match refusal {
            tickets::Refusal::NotAParticipant => reason::NOT_A_PARTICIPANT,
            _ => reason::UNVERIFIED_INTERNAL,
        };
        self.refusal_notice(tx, mail, why, Some(user), notify, now)
            .await?;
        Ok(Decided {
            ticket,
            ..Decided::refused(Outcome::Quarantined, why)
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn add_comment(
        &self,
        tx: &mut dyn Tx,
        mail: &InboundMail,
        content: &Content,
        user: &User,
        state: &TicketState,
        notify: bool,
        now: OffsetDateTime,
        via: &threading::ThreadReason,
    ) -> Result<Decided, StoreError> {
        let proven = self.proven(mail, user, Some(state.id));
        let thread = via.describe();
        let written = self.written(mail, content, user, proven, Some(&thread));
        let mut changes = self.changes(tx, notify, now);
        let added = match changes.add_comment(state, &written).await? {
            Ok(added) => added,
            Err(refusal) => {
                drop(changes);
                return self
                    .refused_comment(tx, mail, user, Some(state.id), refusal, notify, now)
                    .await;
            }
        };
        changes
            .report_failures(user, Some(&added.state), &mail.subject, &added.failures)
            .await?;
        changes.finish().await?;
        self.remember_thread(tx, mail, state.id, now).await?;
        let outcome = if added.comment.is_some() {
            Outcome::CommentAdded
        } else {
            Outcome::CommandOnly
        };
        Ok(Decided {
            outcome,
            reason: None,
            thread_reason: None,
            ticket: Some(state.id),
            comment: added.comment,
        })
    }

    /// Every id of an accepted message joins its ticket's thread: its own as
    /// received, its ancestors as referenced (so their later arrival threads too).
    async fn remember_thread(
        &self,
        tx: &mut dyn Tx,
        mail: &InboundMail,
        ticket: TicketId,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        if let Some(id) = &mail.message_id {
            tx.remember_refs(std::slice::from_ref(id), ticket, RefKind::Received, now)
                .await?;
        }
        tx.remember_refs(&mail.ancestors(), ticket, RefKind::Referenced, now)
            .await
    }

    /// Staff hear of quarantined mail (its sender was told support will
    /// review it): at most one alert per `auto_reply_window` to the support
    /// team, due at the window's end; the outbox lists in it, when it is
    /// sent, every message quarantined since and not yet replayed, each with
    /// its replay command.
    async fn quarantine_alert(
        &self,
        tx: &mut dyn Tx,
        notify: bool,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let Some(team) = self.policy.notify.as_ref() else {
            tracing::warn!("mail was quarantined and [support] notify is empty: no one is alerted");
            return Ok(());
        };
        let window = self.policy.auto_reply_window;
        if !notify
            || !tx
                .claim_auto_reply_key(QUARANTINE_ALERT_KEY, now, window)
                .await?
        {
            return Ok(());
        }
        let notice = Notice::to_team(
            crate::outbox::QUARANTINE_ALERT,
            team,
            serde_json::json!({ "since": crate::store::time_text::format_ts(now) }),
        );
        // Queued to be sent when the window closes, with what arrived in it.
        notice::queue(tx, &self.sender, notice, now + window).await?;
        Ok(())
    }

    /// Tells the sender of a refused message why, once per rate-limit window.
    /// The answer goes to From, never Reply-To: a forged Reply-To must not
    /// turn the gateway into a mail cannon.
    async fn refusal_notice(
        &self,
        tx: &mut dyn Tx,
        mail: &InboundMail,
        reason: &str,
        user: Option<&User>,
        notify: bool,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let Some(sender) = mail.sender() else {
            return Ok(());
        };
        if !notify
            || mail.auto.suppress_auto_response
            || !tx
                .claim_auto_reply(sender, now, self.policy.auto_reply_window)
                .await?
        {
            return Ok(());
        }
        let limit = format!("{} MB", self.policy.max_message_size / (1024 * 1024));
        // To an unknown sender (who may be forged: backscatter) the notice says
        // nothing the sender wrote, neither display name nor subject, so it
        // cannot carry anyone's text to a third party.
        let original_subject = user.map(|_| mail.subject.as_str());
        let notice = Notice {
            template: Template::Refused.as_str(),
            to: sender,
            name: user.map(|u| u.name.as_str()),
            user: None,
            locale: user.map(|u| u.locale.as_str()),
            reason: "sender",
            ticket: None,
            comment: None,
            event: serde_json::json!({ "reason": reason, "original_subject": original_subject, "limit": limit }),
        };
        notice::queue(tx, &self.sender, notice, now).await?;
        Ok(())
    }

    /// A delivery report about one of our notifications marks its recipient as
    /// bouncing, so they are not mailed again until they write in themselves.
    async fn record_bounces(
        &self,
        tx: &mut dyn Tx,
        mail: &InboundMail,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        for id in &mail.auto.report_about {
            let Some((ticket, recipient)) = tx.outbox_recipient(id).await? else {
                continue;
            };
            // When the report names its failed recipients, believe only those.
            let failed = &mail.auto.report_recipients;
            if !failed.is_empty() && !failed.contains(&recipient) {
                continue;
            }
            if tx.set_bouncing(&recipient, true).await? {
                tx.insert_event(&NewEvent {
                    ticket_id: ticket,
                    kind: EventKind::RecipientBouncing.as_str(),
                    actor_id: None,
                    data: serde_json::json!({ "email": recipient, "message_id": id }),
                    now,
                })
                .await?;
            }
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::{Content, sha256_hex};
    use crate::domain::{commands, mail::InboundMail, reply};

    /// A large body is held once (issue 18 item 13): moved from the
    /// extracted reply through the command parse into the comment, with or
    /// without leading commands, not copied at each step; the comment is
    /// the text the copying steps made.
    #[test]
    fn content_holds_a_large_body_once() {
        let words = "word ".repeat(200_000);
        for (text, n_commands) in [
            (format!("{words}\r\n"), 0),
            (format!("#priority P2\r\n\r\n{words}\r\nthanks\r\n"), 1),
        ] {
            let raw = format!(
                "From: c1@customer.test\r\nTo: support@example.test\r\nSubject: long\r\n\
                 Content-Type: text/plain; charset=utf-8\r\n\r\n{text}"
            );
            let mail = InboundMail::parse(raw.as_bytes()).expect("parses");
            let copied = commands::parse(&reply::extract_mail(&mail).comment_text(&mail.text));
            let want = if copied.commands.is_empty() {
                reply::extract_mail(&mail).comment_text(&mail.text)
            } else {
                copied.rest
            };
            let mut mail = mail;
            let content = Content::of(&mut mail);
            assert_eq!(content.commands.commands.len(), n_commands);
            assert!(content.body.len() > 900_000, "{}", content.body.len());
            assert!(content.body == want, "the comment text changed");
            assert_eq!(content.extracted.reply.len(), 0, "the reply is a copy");
            assert_eq!(content.commands.rest.len(), 0, "the rest is a copy");
            assert!(mail.text.is_empty(), "the mail's text is a copy");
        }
    }

    /// Blob keys are stored: a change of hash implementation must not change them
    /// (FIPS 180-2 test vectors).
    #[test]
    fn blob_keys_are_the_standard_sha256() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
