//! People's data in the store (docs/contract.md, "People's data"): what is
//! kept about one person (export), erasure by redaction, and retention of raw
//! mail and closed tickets. Written once for both backends, like `read`.
//!
//! Erasure keeps the shape of the desk (tickets, statuses, times, counts,
//! other people's comments) and removes the person: their name and address
//! become a pseudonym everywhere they were written, their own words, files
//! and raw mail are gone, and quoted copies of their words in other people's
//! comments are dropped.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::Serialize;
use time::OffsetDateTime;

use super::read::{Arg, Backend, Conn, contains_pattern, each};
use super::rows::{self, Cols};
use super::{Result, sql};
use crate::domain::event::Event;
use crate::domain::ids::{EmailAddress, TicketId, UserId};

/// SHA-256 of no bytes: the blob a log row names once its raw message is
/// removed (inserted by the migration that added `raw_removed_at`).
pub const EMPTY_BLOB: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Rows changed per write transaction while purging, so retention never
/// holds the writer for long.
const PURGE_BATCH: i64 = 500;

/// Everything stored about one person (`ticketgate person export`).
#[derive(Debug, Clone, Serialize)]
pub struct PersonRecord {
    pub user: PersonUser,
    pub organizations: Vec<Membership>,
    pub tickets: Vec<PersonTicket>,
    pub comments: Vec<PersonComment>,
    pub events: Vec<PersonEvent>,
    pub notifications: Vec<PersonNotification>,
    pub api_tokens: Vec<PersonToken>,
    pub sessions: Vec<PersonSession>,
    pub raw_messages: Vec<RawMessage>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PersonUser {
    pub email: String,
    pub name: String,
    pub role: String,
    pub locale: String,
    pub active: bool,
    pub bouncing: bool,
    pub created_at: String,
    pub first_signed_in: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Membership {
    pub org: String,
    pub name: String,
    /// `member` (the user's organization) or `lead` (delivery lead).
    pub role: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct PersonTicket {
    pub id: TicketId,
    pub subject: String,
    pub status: String,
    pub created_at: String,
    /// `requester`, `owner`, or `follower (<source>)`.
    pub relations: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PersonComment {
    pub id: i64,
    pub ticket: TicketId,
    pub created_at: String,
    pub source: String,
    pub internal: bool,
    pub body: String,
    pub signature: Option<String>,
    pub attachments: Vec<PersonFile>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PersonFile {
    pub id: i64,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    #[serde(skip)]
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PersonEvent {
    pub id: i64,
    pub ticket: TicketId,
    pub kind: String,
    pub data: serde_json::Value,
    pub created_at: String,
    /// True when the person made the change, false when it names them.
    pub by_them: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct PersonNotification {
    pub id: i64,
    pub ticket: Option<TicketId>,
    pub template: String,
    pub subject: String,
    pub status: String,
    pub created_at: String,
    pub sent_at: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PersonToken {
    pub id: i64,
    pub label: Option<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PersonSession {
    pub created_at: String,
    pub last_seen_at: String,
    pub expires_at: String,
}

/// One message they sent, as received (lossy UTF-8 for the JSON document;
/// the zip keeps the bytes).
#[derive(Debug, Clone, Serialize)]
pub struct RawMessage {
    pub log_id: i64,
    pub received_at: String,
    pub outcome: String,
    pub message_id: Option<String>,
    pub text: String,
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

/// What an erasure did, or would do with `dry_run`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Erasure {
    pub dry_run: bool,
    pub pseudonym: String,
    pub pseudonym_email: String,
    pub tickets: u64,
    pub comments_redacted: u64,
    pub attachments_removed: u64,
    pub raw_messages_removed: u64,
    pub quotes_dropped: u64,
    pub texts_rewritten: u64,
    pub events_rewritten: u64,
    pub notifications_removed: u64,
    pub follows_removed: u64,
    pub sign_ins_removed: u64,
    /// Earlier copies of the changed pages are gone from disk (SQLite's
    /// write-ahead log emptied); false when a reader kept that from
    /// completing, and running the erasure again finishes it.
    pub old_pages_dropped: bool,
}

/// Who the person becomes, and who erased them.
#[derive(Debug, Clone)]
pub struct ErasePlan {
    pub email: EmailAddress,
    pub pseudonym: String,
    pub pseudonym_email: EmailAddress,
    /// The staff member who ran it (the API), or `None` (the operator's CLI).
    pub by: Option<UserId>,
    pub now: OffsetDateTime,
    pub dry_run: bool,
}

/// The closed tickets removed by retention, counted for reports.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Purged {
    pub raw_messages: u64,
    pub closed_tickets: u64,
}

/// A row of `retention_counts`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RetainedCount {
    pub month: String,
    pub org: Option<String>,
    pub state: String,
    pub tickets: i64,
}

/// A LIKE pattern (escape `\`) for `text` anywhere, lower-cased, to match
/// `lower(column)`.
fn like(text: &str) -> String {
    contains_pattern(&text.to_lowercase())
}

/// `text` with every case-insensitive occurrence of each `(from, to)`
/// replaced; `None` when nothing matched. Linear in the text per pair.
pub fn replace_all_ci(text: &str, pairs: &[(&str, &str)]) -> Option<String> {
    let mut out = text.to_string();
    let mut changed = false;
    for (from, to) in pairs {
        if from.is_empty() {
            continue;
        }
        let folded = out.to_lowercase();
        let needle = from.to_lowercase();
        // Lower-casing can change byte lengths outside ASCII; where it did,
        // offsets into `folded` are not offsets into `out`, so only an exact
        // replacement is safe.
        if folded.len() != out.len() {
            if out.contains(*from) {
                out = out.replace(*from, to);
                changed = true;
            }
            continue;
        }
        let mut next = String::with_capacity(out.len());
        let mut last = 0;
        for (at, _) in folded.match_indices(&needle) {
            next.push_str(&out[last..at]);
            next.push_str(to);
            last = at + needle.len();
        }
        if last > 0 {
            next.push_str(&out[last..]);
            out = next;
            changed = true;
        }
    }
    changed.then_some(out)
}

/// A display name worth searching other people's text for: a one- or
/// two-letter name would rewrite ordinary words.
fn searchable_name(name: &str) -> Option<&str> {
    let name = name.trim();
    (name.chars().count() >= 4).then_some(name)
}

/// Lines of their own words long enough that finding one in a quote means
/// the quote copies them.
fn telling_lines(bodies: &[String]) -> Vec<String> {
    let mut lines: BTreeSet<String> = BTreeSet::new();
    for body in bodies {
        for line in body.lines() {
            let line = line.trim();
            if line.chars().count() >= 16 {
                lines.insert(line.to_string());
            }
        }
    }
    lines.into_iter().take(500).collect()
}

pub(super) async fn export<B: Backend>(
    store: &B,
    email: &EmailAddress,
) -> Result<Option<PersonRecord>> {
    let mut c = store.conn().await?;
    let Some(row) = c.opt(sql::USER_BY_EMAIL, &[email.as_str().into()]).await? else {
        return Ok(None);
    };
    let user = rows::user(&row)?;
    let id: i64 = user.id;
    let me = [Arg::from(id)];
    let extra = c.opt(PERSON_EXTRA, &me).await?;
    let (created_at, first_signed_in) = match &extra {
        Some(r) => (r.ts_at(0)?, r.opt_ts_at(1)?),
        None => (String::new(), None),
    };
    let organizations = each(c.all(PERSON_ORGS, &me).await?, |r| {
        Ok(Membership {
            org: r.text_at(0)?,
            name: r.text_at(1)?,
            role: if r.i64_at(2)? == 1 { "lead" } else { "member" },
        })
    })?;
    let mut tickets: Vec<PersonTicket> = Vec::new();
    for r in c.all(PERSON_TICKETS, &me).await? {
        let ticket = r.i64_at(0)?;
        let relation = r.text_at(4)?;
        match tickets.last_mut() {
            Some(last) if last.id == ticket => last.relations.push(relation),
            _ => tickets.push(PersonTicket {
                id: ticket,
                subject: r.text_at(1)?,
                status: r.text_at(2)?,
                created_at: r.ts_at(3)?,
                relations: vec![relation],
            }),
        }
    }
    let mut comments = each(c.all(PERSON_COMMENTS, &me).await?, |r| {
        Ok(PersonComment {
            id: r.i64_at(0)?,
            ticket: r.i64_at(1)?,
            created_at: r.ts_at(2)?,
            source: r.text_at(3)?,
            internal: r.bool_at(4)?,
            body: r.text_at(5)?,
            signature: r.opt_text_at(6)?,
            attachments: Vec::new(),
        })
    })?;
    let at: HashMap<i64, usize> = comments
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id, i))
        .collect();
    for r in c.all(PERSON_FILES, &me).await? {
        if let Some(&i) = at.get(&r.i64_at(1)?) {
            comments[i].attachments.push(PersonFile {
                id: r.i64_at(0)?,
                filename: r.text_at(2)?,
                content_type: r.text_at(3)?,
                size: r.i64_at(4)?,
                sha256: r.text_at(5)?,
            });
        }
    }
    let address = like(email.as_str());
    let events = c
        .all(PERSON_EVENTS, &[id.into(), Arg::Text(Some(&address))])
        .await?;
    let events = each(events, |r| {
        let data = r.text_at(3)?;
        Ok(PersonEvent {
            id: r.i64_at(0)?,
            ticket: r.i64_at(1)?,
            kind: r.text_at(2)?,
            data: serde_json::from_str(&data).unwrap_or(serde_json::Value::String(data)),
            created_at: r.ts_at(4)?,
            by_them: r.i64_at(5)? == 1,
        })
    })?;
    let notifications = c
        .all(PERSON_NOTIFICATIONS, &[id.into(), email.as_str().into()])
        .await?;
    let notifications = each(notifications, |r| {
        Ok(PersonNotification {
            id: r.i64_at(0)?,
            ticket: r.opt_i64_at(1)?,
            template: r.text_at(2)?,
            subject: r.text_at(3)?,
            status: r.text_at(4)?,
            created_at: r.ts_at(5)?,
            sent_at: r.opt_ts_at(6)?,
        })
    })?;
    let api_tokens = each(c.all(PERSON_TOKENS, &me).await?, |r| {
        Ok(PersonToken {
            id: r.i64_at(0)?,
            label: r.opt_text_at(1)?,
            created_at: r.ts_at(2)?,
            last_used_at: r.opt_ts_at(3)?,
            revoked_at: r.opt_ts_at(4)?,
        })
    })?;
    let sessions = each(c.all(PERSON_SESSIONS, &me).await?, |r| {
        Ok(PersonSession {
            created_at: r.ts_at(0)?,
            last_seen_at: r.ts_at(1)?,
            expires_at: r.ts_at(2)?,
        })
    })?;
    let mut raw_messages = Vec::new();
    let mut seen = HashSet::new();
    for r in c
        .all(PERSON_RAW, &[email.as_str().into(), id.into()])
        .await?
    {
        let sha = r.text_at(4)?;
        if sha == EMPTY_BLOB || !seen.insert(sha.clone()) {
            continue;
        }
        let Some(blob) = c.opt(BLOB_DATA, &[sha.as_str().into()]).await? else {
            continue;
        };
        let bytes = blob.bytes_at(0)?;
        raw_messages.push(RawMessage {
            log_id: r.i64_at(0)?,
            received_at: r.ts_at(1)?,
            outcome: r.text_at(2)?,
            message_id: r.opt_text_at(3)?,
            text: String::from_utf8_lossy(&bytes).into_owned(),
            bytes,
        });
    }
    Ok(Some(PersonRecord {
        user: PersonUser {
            email: user.email.to_string(),
            name: user.name,
            role: user.role.as_str().to_string(),
            locale: user.locale,
            active: user.active,
            bouncing: user.bouncing,
            created_at,
            first_signed_in,
        },
        organizations,
        tickets,
        comments,
        events,
        notifications,
        api_tokens,
        sessions,
        raw_messages,
    }))
}

pub(super) async fn erase<B: Backend>(store: &B, plan: &ErasePlan) -> Result<Option<Erasure>> {
    let mut w = store.write().await?;
    let Some(row) = w
        .opt(sql::USER_BY_EMAIL, &[plan.email.as_str().into()])
        .await?
    else {
        return Ok(None);
    };
    let user = rows::user(&row)?;
    let id: i64 = user.id;
    let me = [Arg::from(id)];
    // Already erased (this is the pseudonym's address): nothing is left to
    // change; only what the last run could not finish on disk.
    if w.opt(ERASED, &me).await?.is_some() {
        drop(w);
        let old_pages_dropped = plan.dry_run || store.drop_old_pages().await?;
        return Ok(Some(Erasure {
            dry_run: plan.dry_run,
            pseudonym: user.name,
            pseudonym_email: user.email.to_string(),
            old_pages_dropped,
            ..Erasure::default()
        }));
    }
    let mut done = Erasure {
        dry_run: plan.dry_run,
        pseudonym: plan.pseudonym.clone(),
        pseudonym_email: plan.pseudonym_email.to_string(),
        ..Erasure::default()
    };
    let address = plan.email.as_str();
    let name = searchable_name(&user.name).map(str::to_string);
    let mut pairs: Vec<(&str, &str)> = vec![(address, plan.pseudonym_email.as_str())];
    if let Some(name) = &name {
        pairs.push((name, &plan.pseudonym));
    }
    let address_like = like(address);
    let name_like = name.as_deref().map(like);

    // The tickets they were on, for the erasure's event.
    let mut tickets = BTreeSet::new();
    for r in w.all(PERSON_TICKETS, &me).await? {
        tickets.insert(r.i64_at(0)?);
    }
    let mut bodies = Vec::new();
    for r in w.all(PERSON_COMMENTS, &me).await? {
        tickets.insert(r.i64_at(1)?);
        bodies.push(r.text_at(5)?);
        if let Some(signature) = r.opt_text_at(6)? {
            bodies.push(signature);
        }
    }
    done.tickets = tickets.len() as u64;

    // Quotes of their words in other people's comments on those tickets.
    let lines = telling_lines(&bodies);
    if !lines.is_empty() {
        for ticket in &tickets {
            for r in w
                .all(QUOTES_ON_TICKET, &[(*ticket).into(), id.into()])
                .await?
            {
                let quoted = r.text_at(1)?;
                if lines.iter().any(|l| quoted.contains(l.as_str())) {
                    w.run(DROP_QUOTE, &[r.i64_at(0)?.into()]).await?;
                    done.quotes_dropped += 1;
                }
            }
        }
    }

    // Their own words and files.
    let mut blobs: BTreeSet<String> = BTreeSet::new();
    for r in w.all(PERSON_FILES, &me).await? {
        blobs.insert(r.text_at(5)?);
    }
    done.attachments_removed = w.run(DELETE_PERSON_FILES, &me).await?;
    done.comments_redacted = w
        .run(REDACT_COMMENTS, &[id.into(), plan.now.into()])
        .await?;
    w.run(CLEAR_COMMENTS, &me).await?;

    // Their raw mail, and the log rows' sender and subject.
    for r in w.all(PERSON_RAW, &[address.into(), id.into()]).await? {
        let sha = r.text_at(4)?;
        if sha != EMPTY_BLOB {
            blobs.insert(sha);
            done.raw_messages_removed += 1;
        }
    }
    w.run(
        SCRUB_PERSON_LOG,
        &[
            address.into(),
            id.into(),
            plan.pseudonym_email.as_str().into(),
            EMPTY_BLOB.into(),
            plan.now.into(),
        ],
    )
    .await?;
    // Other people's raw mail on their tickets that quotes or names them:
    // the comments made of it stay, the copy of their words goes.
    let name_lower = name.as_deref().map(str::to_lowercase);
    let lines_lower: Vec<String> = lines.iter().map(|l| l.to_lowercase()).collect();
    for ticket in &tickets {
        for r in w
            .all(RAW_ON_TICKET, &[(*ticket).into(), EMPTY_BLOB.into()])
            .await?
        {
            let sha = r.text_at(1)?;
            let Some(blob) = w.opt(BLOB_DATA, &[sha.as_str().into()]).await? else {
                continue;
            };
            let text = String::from_utf8_lossy(&blob.bytes_at(0)?).to_lowercase();
            if text.contains(address)
                || name_lower.as_deref().is_some_and(|n| text.contains(n))
                || lines_lower.iter().any(|l| text.contains(l.as_str()))
            {
                w.run(
                    REMOVE_RAW,
                    &[r.i64_at(0)?.into(), EMPTY_BLOB.into(), plan.now.into()],
                )
                .await?;
                blobs.insert(sha);
                done.raw_messages_removed += 1;
            }
        }
    }
    for sha in &blobs {
        w.run(
            DELETE_ORPHAN_BLOB,
            &[sha.as_str().into(), EMPTY_BLOB.into()],
        )
        .await?;
    }

    // Their name and address in everything else written about them.
    // (find, update, whether the rows are history entries)
    let scans: [(&'static str, &'static str, bool); 4] = [
        (COMMENT_TEXTS_NAMING, UPDATE_COMMENT_TEXTS, false),
        (SUBJECTS_NAMING, UPDATE_SUBJECT, false),
        (LOG_TEXTS_NAMING, UPDATE_LOG_TEXTS, false),
        (EVENTS_NAMING, UPDATE_EVENT_DATA, true),
    ];
    for (find, update, history) in scans {
        let found = w
            .all(
                find,
                &[
                    Arg::Text(Some(&address_like)),
                    Arg::Text(name_like.as_deref()),
                ],
            )
            .await?;
        for r in found {
            let row_id = r.i64_at(0)?;
            let texts: Vec<Option<String>> =
                (1..=3).map(|k| r.opt_text_at(k).ok().flatten()).collect();
            let rewritten: Vec<Option<String>> = texts
                .iter()
                .map(|t| {
                    t.as_deref()
                        .map(|t| replace_all_ci(t, &pairs).unwrap_or_else(|| t.to_string()))
                })
                .collect();
            if rewritten == texts {
                continue;
            }
            let mut args = vec![Arg::from(row_id)];
            args.extend(rewritten.iter().map(|t| Arg::Input(t.as_deref())));
            w.run(update, &args).await?;
            if history {
                done.events_rewritten += 1;
            } else {
                done.texts_rewritten += 1;
            }
        }
    }

    // Mail about them or their words, queued or kept as sent.
    done.notifications_removed = w
        .run(
            DELETE_PERSON_OUTBOX,
            &[
                id.into(),
                Arg::Text(Some(&address_like)),
                Arg::Text(name_like.as_deref()),
            ],
        )
        .await?;

    // Their places, ways in and the person themselves.
    done.follows_removed = w.run(DELETE_FOLLOWS, &me).await?;
    let mut sign_ins = 0;
    for statement in SIGN_INS {
        sign_ins += w.run(statement, &me).await?;
    }
    done.sign_ins_removed = sign_ins;
    w.run(DELETE_LEADS, &me).await?;
    w.run(DELETE_AUTO_REPLY, &[Arg::Text(Some(&address_like))])
        .await?;
    w.run(CLEAR_OPEN_OWNER, &me).await?;
    w.run(
        PSEUDONYMIZE,
        &[
            id.into(),
            plan.pseudonym_email.as_str().into(),
            plan.pseudonym.as_str().into(),
            plan.now.into(),
        ],
    )
    .await?;
    let event = Event::PersonErased {
        person: plan.pseudonym_email.clone(),
    };
    let data = event.data().to_string();
    for ticket in &tickets {
        w.run(
            INSERT_EVENT,
            &[
                (*ticket).into(),
                event.kind().into(),
                plan.by.into(),
                data.as_str().into(),
                plan.now.into(),
            ],
        )
        .await?;
    }
    if !plan.dry_run {
        B::commit(w).await?;
        done.old_pages_dropped = store.drop_old_pages().await?;
    }
    Ok(Some(done))
}

/// Removes the raw mail received before `before`, a batch per transaction.
pub(super) async fn purge_raw<B: Backend>(
    store: &B,
    before: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<u64> {
    let (mut removed, mut after) = (0, 0);
    loop {
        let mut w = store.write().await?;
        let found = w
            .all(
                OLD_RAW,
                &[
                    before.into(),
                    Arg::Limit(Some(PURGE_BATCH)),
                    EMPTY_BLOB.into(),
                    after.into(),
                ],
            )
            .await?;
        if let Some(last) = found.last() {
            after = last.i64_at(0)?;
        }
        let mut blobs = BTreeSet::new();
        for r in &found {
            w.run(
                REMOVE_RAW,
                &[r.i64_at(0)?.into(), EMPTY_BLOB.into(), now.into()],
            )
            .await?;
            blobs.insert(r.text_at(1)?);
        }
        for sha in &blobs {
            w.run(
                DELETE_ORPHAN_BLOB,
                &[sha.as_str().into(), EMPTY_BLOB.into()],
            )
            .await?;
        }
        B::commit(w).await?;
        removed += found.len() as u64;
        if (found.len() as i64) < PURGE_BATCH {
            return Ok(removed);
        }
    }
}

/// Deletes tickets closed (last changed) before `before` with everything
/// that hangs off them, counting each in `retention_counts` first.
pub(super) async fn purge_closed<B: Backend>(store: &B, before: OffsetDateTime) -> Result<u64> {
    let mut removed = 0;
    loop {
        let mut w = store.write().await?;
        let found = w
            .all(
                OLD_CLOSED,
                &[before.into(), Arg::Limit(Some(PURGE_BATCH / 10))],
            )
            .await?;
        for r in &found {
            let ticket = r.i64_at(0)?;
            let t = [Arg::from(ticket)];
            let month: String = r.ts_at(2)?.chars().take(7).collect();
            let org = r.opt_text_at(3)?.unwrap_or_default();
            w.run(
                COUNT_RETAINED,
                &[
                    month.as_str().into(),
                    org.as_str().into(),
                    r.text_at(1)?.as_str().into(),
                ],
            )
            .await?;
            let mut blobs = BTreeSet::new();
            for b in w.all(TICKET_BLOBS, &t).await? {
                blobs.insert(b.text_at(0)?);
            }
            for statement in DELETE_TICKET {
                w.run(statement, &t).await?;
            }
            for sha in &blobs {
                w.run(
                    DELETE_ORPHAN_BLOB,
                    &[sha.as_str().into(), EMPTY_BLOB.into()],
                )
                .await?;
            }
        }
        B::commit(w).await?;
        removed += found.len() as u64;
        if (found.len() as i64) < PURGE_BATCH / 10 {
            return Ok(removed);
        }
    }
}

/// Claims `day` (`YYYY-MM-DD`) for `holder`: false when another run has it.
pub(super) async fn claim_retention<B: Backend>(
    store: &B,
    day: &str,
    holder: &str,
    now: OffsetDateTime,
) -> Result<bool> {
    let mut c = store.conn().await?;
    Ok(
        c.run(CLAIM_RETENTION, &[day.into(), holder.into(), now.into()])
            .await?
            == 1,
    )
}

pub(super) async fn record_retention<B: Backend>(
    store: &B,
    day: &str,
    purged: &Purged,
) -> Result<()> {
    let mut c = store.conn().await?;
    c.run(
        RECORD_RETENTION,
        &[
            day.into(),
            (purged.raw_messages as i64).into(),
            (purged.closed_tickets as i64).into(),
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn retained_counts<B: Backend>(store: &B) -> Result<Vec<RetainedCount>> {
    let rows = store.conn().await?.all(RETAINED_COUNTS, &[]).await?;
    each(rows, |r| {
        let org = r.text_at(1)?;
        Ok(RetainedCount {
            month: r.text_at(0)?,
            org: (!org.is_empty()).then_some(org),
            state: r.text_at(2)?,
            tickets: r.i64_at(3)?,
        })
    })
}

const ERASED: &str = "SELECT 1 FROM users WHERE id = $1 AND erased_at IS NOT NULL";

const PERSON_EXTRA: &str = "SELECT u.created_at, (SELECT p.first_signed_in FROM portal_visitors p WHERE p.user_id = u.id) \
     FROM users u WHERE u.id = $1";

const PERSON_ORGS: &str = "SELECT o.slug, o.name, CAST(0 AS bigint) FROM users u JOIN orgs o ON o.id = u.org_id WHERE u.id = $1 \
     UNION ALL SELECT o.slug, o.name, CAST(1 AS bigint) FROM org_leads l JOIN orgs o ON o.id = l.org_id WHERE l.user_id = $1";

/// Their tickets, one row per relation, ordered by ticket.
const PERSON_TICKETS: &str = "SELECT t.id, t.subject, t.status, t.created_at, 'requester' FROM tickets t WHERE t.requester_id = $1 \
     UNION ALL SELECT t.id, t.subject, t.status, t.created_at, 'owner' FROM tickets t WHERE t.owner_id = $1 \
     UNION ALL SELECT t.id, t.subject, t.status, t.created_at, 'follower (' || f.source || ')' \
       FROM followers f JOIN tickets t ON t.id = f.ticket_id WHERE f.user_id = $1 AND f.source <> 'creator' \
     ORDER BY 1, 5";

const PERSON_COMMENTS: &str = "SELECT c.id, c.ticket_id, c.created_at, c.source, c.internal, c.body, c.signature \
     FROM comments c WHERE c.author_id = $1 \
       AND NOT EXISTS (SELECT 1 FROM comment_redactions r WHERE r.comment_id = c.id) ORDER BY c.id";

const PERSON_FILES: &str = "SELECT a.id, a.comment_id, a.filename, a.content_type, a.size, a.blob_sha256 \
     FROM attachments a JOIN comments c ON c.id = a.comment_id WHERE c.author_id = $1 ORDER BY a.id";

const PERSON_EVENTS: &str = "SELECT e.id, e.ticket_id, e.kind, e.data, e.created_at, \
     CAST(CASE WHEN e.actor_id = $1 THEN 1 ELSE 0 END AS bigint) \
     FROM events e WHERE e.actor_id = $1 OR lower(e.data) LIKE $2 ESCAPE '\\' ORDER BY e.id";

const PERSON_NOTIFICATIONS: &str = "SELECT id, ticket_id, template, subject, status, created_at, sent_at \
     FROM outbox WHERE to_user_id = $1 OR to_addr = $2 ORDER BY id";

const PERSON_TOKENS: &str = "SELECT id, label, created_at, last_used_at, revoked_at FROM api_tokens WHERE user_id = $1 ORDER BY id";

const PERSON_SESSIONS: &str = "SELECT created_at, last_seen_at, expires_at FROM web_sessions WHERE user_id = $1 ORDER BY created_at";

/// The deliveries they sent: by sender address, or the log rows of their comments.
const PERSON_RAW: &str = "SELECT l.id, l.received_at, l.outcome, l.message_id, l.raw_sha256 FROM ingest_log l \
     WHERE l.sender = $1 OR l.id IN (SELECT c.ingest_id FROM comments c WHERE c.author_id = $2) ORDER BY l.id";

const RAW_ON_TICKET: &str =
    "SELECT id, raw_sha256 FROM ingest_log WHERE ticket_id = $1 AND raw_sha256 <> $2";

const BLOB_DATA: &str = "SELECT data FROM blobs WHERE sha256 = $1";

const QUOTES_ON_TICKET: &str = "SELECT id, quoted FROM comments WHERE ticket_id = $1 AND author_id <> $2 AND quoted IS NOT NULL";

const DROP_QUOTE: &str = "UPDATE comments SET quoted = NULL WHERE id = $1";

const DELETE_PERSON_FILES: &str =
    "DELETE FROM attachments WHERE comment_id IN (SELECT id FROM comments WHERE author_id = $1)";

const REDACT_COMMENTS: &str = "INSERT INTO comment_redactions (comment_id, redacted_at) \
     SELECT c.id, $2 FROM comments c WHERE c.author_id = $1 \
       AND NOT EXISTS (SELECT 1 FROM comment_redactions r WHERE r.comment_id = c.id)";

const CLEAR_COMMENTS: &str =
    "UPDATE comments SET body = '', signature = NULL, quoted = NULL WHERE author_id = $1";

const SCRUB_PERSON_LOG: &str = "UPDATE ingest_log SET sender = $3, subject = NULL, raw_sha256 = $4, \
     raw_removed_at = COALESCE(raw_removed_at, $5) \
     WHERE sender = $1 OR id IN (SELECT c.ingest_id FROM comments c WHERE c.author_id = $2)";

const DELETE_ORPHAN_BLOB: &str = "DELETE FROM blobs WHERE sha256 = $1 AND sha256 <> $2 \
     AND NOT EXISTS (SELECT 1 FROM attachments a WHERE a.blob_sha256 = $1) \
     AND NOT EXISTS (SELECT 1 FROM ingest_log l WHERE l.raw_sha256 = $1)";

const COMMENT_TEXTS_NAMING: &str = "SELECT id, body, signature, quoted FROM comments \
     WHERE lower(body) LIKE $1 ESCAPE '\\' OR lower(signature) LIKE $1 ESCAPE '\\' OR lower(quoted) LIKE $1 ESCAPE '\\' \
        OR ($2 IS NOT NULL AND (lower(body) LIKE $2 ESCAPE '\\' OR lower(signature) LIKE $2 ESCAPE '\\' \
                                OR lower(quoted) LIKE $2 ESCAPE '\\'))";

const UPDATE_COMMENT_TEXTS: &str =
    "UPDATE comments SET body = COALESCE($2, ''), signature = $3, quoted = $4 WHERE id = $1";

const SUBJECTS_NAMING: &str = "SELECT id, subject, NULL, NULL FROM tickets \
     WHERE lower(subject) LIKE $1 ESCAPE '\\' OR ($2 IS NOT NULL AND lower(subject) LIKE $2 ESCAPE '\\')";

const UPDATE_SUBJECT: &str = "UPDATE tickets SET subject = COALESCE($2, subject) WHERE id = $1 AND $3 IS NULL AND $4 IS NULL";

const LOG_TEXTS_NAMING: &str = "SELECT id, subject, reason, sender FROM ingest_log \
     WHERE lower(subject) LIKE $1 ESCAPE '\\' OR lower(reason) LIKE $1 ESCAPE '\\' OR lower(sender) LIKE $1 ESCAPE '\\' \
        OR ($2 IS NOT NULL AND (lower(subject) LIKE $2 ESCAPE '\\' OR lower(reason) LIKE $2 ESCAPE '\\'))";

const UPDATE_LOG_TEXTS: &str =
    "UPDATE ingest_log SET subject = $2, reason = $3, sender = $4 WHERE id = $1";

const EVENTS_NAMING: &str = "SELECT id, data, NULL, NULL FROM events \
     WHERE lower(data) LIKE $1 ESCAPE '\\' OR ($2 IS NOT NULL AND lower(data) LIKE $2 ESCAPE '\\')";

const UPDATE_EVENT_DATA: &str =
    "UPDATE events SET data = COALESCE($2, data) WHERE id = $1 AND $3 IS NULL AND $4 IS NULL";

const DELETE_PERSON_OUTBOX: &str = "DELETE FROM outbox WHERE to_user_id = $1 \
     OR comment_id IN (SELECT id FROM comments WHERE author_id = $1) \
     OR lower(to_addr) LIKE $2 ESCAPE '\\' OR lower(subject) LIKE $2 ESCAPE '\\' OR lower(context) LIKE $2 ESCAPE '\\' \
     OR ($3 IS NOT NULL AND (lower(subject) LIKE $3 ESCAPE '\\' OR lower(context) LIKE $3 ESCAPE '\\'))";

/// The creator keeps their place (docs/contract.md: the creator is never
/// removed); every other place they held goes.
const DELETE_FOLLOWS: &str = "DELETE FROM followers WHERE user_id = $1 AND source <> 'creator'";

const SIGN_INS: [&str; 4] = [
    "DELETE FROM api_tokens WHERE user_id = $1",
    "DELETE FROM web_links WHERE user_id = $1",
    "DELETE FROM web_sessions WHERE user_id = $1",
    "DELETE FROM portal_visitors WHERE user_id = $1",
];

const DELETE_LEADS: &str = "DELETE FROM org_leads WHERE user_id = $1";

/// Keys are the address, or the address with what was answered.
const DELETE_AUTO_REPLY: &str = "DELETE FROM auto_replies WHERE lower(address) LIKE $1 ESCAPE '\\'";

const CLEAR_OPEN_OWNER: &str = "UPDATE tickets SET owner_id = NULL WHERE owner_id = $1 AND status NOT IN ('closed', 'escalated')";

const PSEUDONYMIZE: &str = "UPDATE users SET email = $2, name = $3, org_id = NULL, active = FALSE, bouncing = FALSE, \
     erased_at = $4 WHERE id = $1";

const INSERT_EVENT: &str =
    "INSERT INTO events (ticket_id, kind, actor_id, data, created_at) VALUES ($1, $2, $3, $4, $5)";

/// Walks the log by id from where the last batch ended: one pass over the
/// log a run, with no index on the time to keep up on every delivery.
const OLD_RAW: &str = "SELECT id, raw_sha256 FROM ingest_log \
     WHERE id > $4 AND raw_removed_at IS NULL AND received_at < $1 AND raw_sha256 <> $3 ORDER BY id LIMIT $2";

const REMOVE_RAW: &str = "UPDATE ingest_log SET raw_sha256 = $2, raw_removed_at = $3 WHERE id = $1";

const OLD_CLOSED: &str = "SELECT t.id, t.status, t.updated_at, o.slug FROM tickets t LEFT JOIN orgs o ON o.id = t.org_id \
     WHERE t.status IN ('closed', 'escalated') AND t.updated_at < $1 ORDER BY t.updated_at LIMIT $2";

const COUNT_RETAINED: &str = "INSERT INTO retention_counts (month, org, state, tickets) VALUES ($1, $2, $3, 1) \
     ON CONFLICT (month, org, state) DO UPDATE SET tickets = retention_counts.tickets + 1";

const TICKET_BLOBS: &str = "SELECT a.blob_sha256 FROM attachments a JOIN comments c ON c.id = a.comment_id WHERE c.ticket_id = $1 \
     UNION SELECT raw_sha256 FROM ingest_log WHERE ticket_id = $1";

/// A ticket and what hangs off it, in an order the foreign keys accept:
/// mail and comments first (the outbox names comments, comments name log
/// rows), references to its log rows, then the log rows and the ticket,
/// whose own children go by cascade. A log row whose comment was moved to
/// another ticket stays with that comment.
const DELETE_TICKET: [&str; 8] = [
    "DELETE FROM outbox WHERE ticket_id = $1 OR comment_id IN (SELECT id FROM comments WHERE ticket_id = $1)",
    "DELETE FROM comments WHERE ticket_id = $1",
    "UPDATE ingest_log SET duplicate_of = NULL WHERE duplicate_of IN (SELECT id FROM ingest_log WHERE ticket_id = $1)",
    "UPDATE ingest_log SET replay_of = NULL WHERE replay_of IN (SELECT id FROM ingest_log WHERE ticket_id = $1)",
    "DELETE FROM ingest_log WHERE ticket_id = $1 \
       AND NOT EXISTS (SELECT 1 FROM comments c WHERE c.ingest_id = ingest_log.id)",
    "UPDATE ingest_log SET ticket_id = (SELECT c.ticket_id FROM comments c WHERE c.ingest_id = ingest_log.id LIMIT 1) \
       WHERE ticket_id = $1",
    "UPDATE tickets SET merged_into = NULL WHERE merged_into = $1",
    "DELETE FROM tickets WHERE id = $1",
];

const CLAIM_RETENTION: &str = "INSERT INTO retention_runs (day, holder, started_at) VALUES ($1, $2, $3) \
     ON CONFLICT (day) DO NOTHING";

const RECORD_RETENTION: &str =
    "UPDATE retention_runs SET raw_messages = $2, closed_tickets = $3 WHERE day = $1";

const RETAINED_COUNTS: &str =
    "SELECT month, org, state, tickets FROM retention_counts ORDER BY month, org, state";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacing_ignores_case_and_keeps_the_rest() {
        assert_eq!(
            replace_all_ci(
                "Hi Alice, mail ALICE@x.test or alice@x.test",
                &[("alice@x.test", "erased@invalid"), ("alice", "Former")]
            )
            .as_deref(),
            Some("Hi Former, mail erased@invalid or erased@invalid")
        );
        assert_eq!(replace_all_ci("nothing here", &[("alice", "x")]), None);
    }

    #[test]
    fn replacing_beside_text_whose_case_folds_longer_is_exact_only() {
        // 'İ' lower-cases to two characters: offsets would drift.
        assert_eq!(
            replace_all_ci("İstanbul alice", &[("alice", "x")]).as_deref(),
            Some("İstanbul x")
        );
    }

    #[test]
    fn short_names_are_not_searched_for() {
        assert_eq!(searchable_name(" Jo "), None);
        assert_eq!(searchable_name("Alice Example"), Some("Alice Example"));
    }

    #[test]
    fn the_empty_blob_key_is_the_sha256_of_nothing() {
        use sha2::Digest;
        assert_eq!(hex::encode(sha2::Sha256::digest(b"")), EMPTY_BLOB);
    }
}
