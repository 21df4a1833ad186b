//! Queuing a notification: one outbox row with its final Message-ID, threading
//! headers and a context snapshot, in the caller's transaction. Shared by every
//! use case that emails someone (ingest now; commands and the admin API later).

use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::domain::classify::OWN_MESSAGE_ID_PREFIX;
use crate::domain::ids::{CommentId, EmailAddress, MessageId, UserId};
use crate::domain::notify::Recipient;
use crate::store::{NewOutbox, RefKind, StoreError, TicketState, Tx};

/// What the templates say about the gateway itself.
#[derive(Debug, Clone)]
pub struct Sender {
    /// `support.domain`: notification Message-IDs are generated under it.
    pub domain: String,
    pub tag: String,
}

/// One notification to one recipient.
#[derive(Debug, Clone)]
pub struct Notice<'a> {
    pub template: &'a str,
    pub to: &'a EmailAddress,
    pub name: Option<&'a str>,
    /// Registered recipient: gets a signed Reply-To bound to them.
    pub user: Option<UserId>,
    pub locale: Option<&'a str>,
    /// Why they get it (follower source, `requester`, `support_notify`, `sender`, ...).
    pub reason: &'a str,
    pub ticket: Option<&'a TicketState>,
    /// The comment shown (its attachments may ride along) and its template fields.
    pub comment: Option<(CommentId, Value)>,
    /// Event-specific template fields.
    pub event: Value,
}

/// A fresh notification Message-ID: `<tg.<uuid>@<support.domain>>`; the prefix lets
/// classification recognise our own mail when it comes back.
pub fn new_message_id(domain: &str) -> MessageId {
    let id = format!(
        "{OWN_MESSAGE_ID_PREFIX}{}@{domain}",
        uuid::Uuid::new_v4().simple()
    );
    MessageId::parse(&id).expect("generated ids are well-formed")
}

/// Queues `notice`; returns the outbox row id.
pub async fn queue(
    tx: &mut dyn Tx,
    sender: &Sender,
    notice: Notice<'_>,
    now: OffsetDateTime,
) -> Result<i64, StoreError> {
    let message_id = new_message_id(&sender.domain);
    let (subject, in_reply_to, references) = match notice.ticket {
        Some(t) => {
            // DESIGN: In-Reply-To the latest message, References the root and the latest.
            let mut refs: Vec<MessageId> = Vec::new();
            for id in [&t.root_message_id, &t.last_message_id]
                .into_iter()
                .flatten()
            {
                if !refs.contains(id) {
                    refs.push(id.clone());
                }
            }
            let parent = t
                .last_message_id
                .clone()
                .or_else(|| t.root_message_id.clone());
            (
                format!("[{} #{}] {}", sender.tag, t.id, t.subject),
                parent,
                refs,
            )
        }
        // Rendered from `<template>.subject.txt` when sent.
        None => (String::new(), None, Vec::new()),
    };
    let context = json!({
        "ticket": notice.ticket.map(|t| json!({
            "id": t.id, "subject": t.subject, "status": t.status, "priority": t.priority,
        })),
        // The comment's text is not copied into every recipient's row (a
        // fan-out would store it once per follower): the outbox reads it back
        // by `comment_id` when it composes. Copied without it, rather than
        // copied whole and then stripped.
        "comment": notice.comment.as_ref().map(|(_, c)| match c.as_object() {
            Some(fields) => Value::Object(
                fields
                    .iter()
                    .filter(|(key, _)| *key != "body")
                    .map(|(key, value)| (key.clone(), value.clone()))
                    .collect(),
            ),
            None => c.clone(),
        }),
        "event": notice.event,
        "recipient": { "email": notice.to, "name": notice.name, "reason": notice.reason },
    });
    let id = tx
        .enqueue(&NewOutbox {
            ticket_id: notice.ticket.map(|t| t.id),
            template: notice.template.to_string(),
            to: notice.to.clone(),
            to_user_id: notice.user,
            locale: notice.locale.unwrap_or("en").to_string(),
            reason: notice.reason.to_string(),
            comment_id: notice.comment.as_ref().map(|(id, _)| *id),
            message_id: message_id.clone(),
            in_reply_to,
            references,
            subject,
            context,
            now,
        })
        .await?;
    if let Some(t) = notice.ticket {
        // A reply to the notification threads by In-Reply-To even before it is sent.
        tx.remember_refs(std::slice::from_ref(&message_id), t.id, RefKind::Sent, now)
            .await?;
    }
    Ok(id)
}

/// Queues one notice per planned recipient about `ticket`. `template`
/// overrides the plan's own (a status change reaches the same people as a
/// comment, with another template).
#[allow(clippy::too_many_arguments)]
pub async fn queue_plan(
    tx: &mut dyn Tx,
    sender: &Sender,
    plan: &[Recipient],
    template: Option<&str>,
    ticket: &TicketState,
    comment: Option<(CommentId, &Value)>,
    event: &Value,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    for r in plan {
        let notice = Notice {
            template: template.unwrap_or(r.template),
            to: &r.to,
            name: r.name.as_deref(),
            user: r.user,
            locale: r.locale.as_deref(),
            reason: r.reason,
            ticket: Some(ticket),
            comment: comment.map(|(id, c)| (id, c.clone())),
            event: event.clone(),
        };
        queue(tx, sender, notice, now).await?;
    }
    Ok(())
}
