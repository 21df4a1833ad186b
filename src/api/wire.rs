//! The JSON shapes the admin API serves and `--json` prints, with their
//! OpenAPI schemas: one definition each, so the API, the CLI and the document
//! cannot drift apart. Built from the store's rows, which carry no wire format
//! (the last two shapes are the CLI's alone).
//!
//! Doc comments here are schema descriptions in `/api/openapi.json`.
//! Conversions name every store field, so a new one is a decision here.

use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::ids::{CommentId, EmailAddress, OrgId, TicketId, UserId};
use crate::domain::ticket::{CloseReason, FollowerSource, Priority, Role, Status};
use crate::store::{self, OutboxStatus};

/// Each row as its JSON shape (lists from the store).
pub fn list<S, W: From<S>>(rows: Vec<S>) -> Vec<W> {
    rows.into_iter().map(W::from).collect()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Org {
    pub id: OrgId,
    pub slug: String,
    pub name: String,
    pub domains: Vec<String>,
    pub leads: Vec<String>,
}

impl From<store::Org> for Org {
    fn from(o: store::Org) -> Self {
        let store::Org {
            id,
            slug,
            name,
            domains,
            leads,
        } = o;
        Self {
            id,
            slug,
            name,
            domains,
            leads,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct User {
    pub id: UserId,
    pub email: EmailAddress,
    pub name: String,
    pub role: Role,
    /// The org's slug, for display.
    pub org: Option<String>,
    pub locale: String,
    pub bouncing: bool,
    /// False once deactivated: they cannot sign in and their mail is a stranger's.
    pub active: bool,
}

impl From<store::User> for User {
    fn from(u: store::User) -> Self {
        let store::User {
            id,
            email,
            name,
            role,
            org_id: _,
            org,
            locale,
            bouncing,
            active,
        } = u;
        Self {
            id,
            email,
            name,
            role,
            org,
            locale,
            bouncing,
            active,
        }
    }
}

/// One row of the ingest log, as read (CLI `messages list`, API `/api/messages`).
#[derive(Debug, Serialize, ToSchema)]
pub struct LogRow {
    pub id: i64,
    pub message_id: Option<String>,
    pub origin: String,
    pub sender: Option<String>,
    pub subject: Option<String>,
    pub outcome: String,
    pub reason: Option<String>,
    pub thread_reason: Option<String>,
    pub ticket: Option<TicketId>,
    pub comment: Option<CommentId>,
    pub size: i64,
    pub received_at: String,
    /// A later replay of this delivery replaced it.
    pub superseded: bool,
    /// The delivery this row replays.
    pub replay_of: Option<i64>,
    /// When staff discarded it (kept, no longer pending); null otherwise.
    pub discarded_at: Option<String>,
}

impl From<store::LogRow> for LogRow {
    fn from(r: store::LogRow) -> Self {
        let store::LogRow {
            id,
            message_id,
            origin,
            sender,
            subject,
            outcome,
            reason,
            thread_reason,
            ticket,
            comment,
            size,
            received_at,
            superseded,
            replay_of,
            raw_sha256: _,
            notify: _,
            discarded_at,
        } = r;
        Self {
            id,
            message_id,
            origin,
            sender,
            subject,
            outcome: outcome.as_str().to_string(),
            reason,
            thread_reason,
            ticket,
            comment,
            size,
            received_at,
            superseded,
            replay_of,
            discarded_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TicketSummary {
    pub id: TicketId,
    pub subject: String,
    pub status: Status,
    pub priority: Option<Priority>,
    pub requester: String,
    pub org: Option<String>,
    pub updated_at: String,
    /// The owner's address, null when nobody owns it.
    pub owner: Option<String>,
    /// When the first response is due (RFC 3339); null without a target.
    pub response_due: Option<String>,
    /// When it must be resolved; null without a target, or while Blocked or closed.
    pub resolve_due: Option<String>,
    #[schema(value_type = Option<String>)]
    pub close_reason: Option<CloseReason>,
}

impl From<store::TicketSummary> for TicketSummary {
    fn from(t: store::TicketSummary) -> Self {
        let store::TicketSummary {
            id,
            subject,
            status,
            priority,
            requester,
            org,
            updated_at,
            owner,
            response_due,
            resolve_due,
            close_reason,
            ..
        } = t;
        Self {
            id,
            subject,
            status,
            priority,
            requester,
            org,
            updated_at,
            owner,
            response_due,
            resolve_due,
            close_reason,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FollowerView {
    pub email: String,
    pub source: FollowerSource,
}

impl From<store::FollowerView> for FollowerView {
    fn from(f: store::FollowerView) -> Self {
        let store::FollowerView { email, source, .. } = f;
        Self { email, source }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttachmentView {
    /// For `GET /api/attachments/{id}`.
    pub id: i64,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
}

impl From<store::AttachmentView> for AttachmentView {
    fn from(a: store::AttachmentView) -> Self {
        let store::AttachmentView {
            id,
            filename,
            content_type,
            size,
        } = a;
        Self {
            id,
            filename,
            content_type,
            size,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CommentView {
    pub id: CommentId,
    pub author: String,
    pub body: String,
    pub signature: Option<String>,
    pub internal: bool,
    pub source: String,
    pub message_id: Option<String>,
    pub created_at: String,
    pub attachments: Vec<AttachmentView>,
    /// Present (true) only when the text was removed with its author's data.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub redacted: bool,
}

impl From<store::CommentView> for CommentView {
    fn from(c: store::CommentView) -> Self {
        let store::CommentView {
            id,
            author,
            author_name: _,
            body,
            signature,
            internal,
            source,
            message_id,
            created_at,
            attachments,
            redacted,
        } = c;
        Self {
            id,
            author,
            body,
            signature,
            internal,
            source: source.as_str().to_string(),
            message_id,
            created_at,
            attachments: list(attachments),
            redacted,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    pub kind: String,
    pub actor: Option<String>,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    pub created_at: String,
}

impl From<store::EventView> for EventView {
    fn from(e: store::EventView) -> Self {
        let store::EventView {
            event,
            actor,
            created_at,
        } = e;
        Self {
            kind: event.kind().to_string(),
            actor,
            data: event.data(),
            created_at,
        }
    }
}

/// A ticket as users see it (docs/contract.md, "Interfaces": the ticket JSON).
#[derive(Debug, Serialize, ToSchema)]
pub struct TicketView {
    pub id: TicketId,
    pub subject: String,
    pub status: Status,
    pub status_label: String,
    pub priority: Option<Priority>,
    pub requester: String,
    pub org: Option<String>,
    pub orgs: Vec<String>,
    /// The release that fixes the ticket, as staff typed it; null until one is recorded.
    pub release: Option<String>,
    /// The owner's address (a staff member), null when nobody owns it.
    pub owner: Option<String>,
    /// When the first public staff comment is due (RFC 3339); null when
    /// the priority sets no response target.
    pub response_due: Option<String>,
    /// When the first public staff comment was written; null until then.
    pub responded_at: Option<String>,
    /// When the ticket must be resolved; null without a target, and while
    /// the clock is paused (Blocked) or stopped (closed).
    pub resolve_due: Option<String>,
    /// Why it was closed: resolved, by_customer, feature_request,
    /// no_response or duplicate; null unless closed.
    #[schema(value_type = Option<String>)]
    pub close_reason: Option<CloseReason>,
    /// The ticket this one was merged into; null unless merged.
    pub merged_into: Option<TicketId>,
    pub followers: Vec<FollowerView>,
    pub comments: Vec<CommentView>,
    /// Present (true) only when `comments_limit` left earlier comments out:
    /// ask again with `comments_before` set to the first comment's id.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub earlier_comments: bool,
    pub events: Vec<EventView>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<store::TicketView> for TicketView {
    fn from(t: store::TicketView) -> Self {
        let store::TicketView {
            id,
            subject,
            status,
            status_label,
            priority,
            requester,
            org,
            orgs,
            release,
            owner,
            close_reason,
            merged_into,
            response_due,
            responded_at,
            resolve_due,
            followers,
            comments,
            earlier_comments,
            events,
            created_at,
            updated_at,
        } = t;
        Self {
            id,
            subject,
            status,
            status_label,
            priority,
            requester,
            org,
            orgs,
            release,
            owner,
            response_due,
            responded_at,
            resolve_due,
            close_reason,
            merged_into,
            followers: list(followers),
            comments: list(comments),
            earlier_comments,
            events: list(events),
            created_at,
            updated_at,
        }
    }
}

/// `outbox list --json`: what the operator needs, not the mailer's context.
#[derive(Debug, Serialize)]
pub struct OutboxRow {
    pub id: i64,
    pub to: String,
    pub template: String,
    pub subject: String,
    pub message_id: String,
    pub status: OutboxStatus,
    pub attempts: i64,
}

impl From<store::OutboxRow> for OutboxRow {
    fn from(r: store::OutboxRow) -> Self {
        let store::OutboxRow {
            id,
            ticket_id: _,
            to,
            to_user_id: _,
            locale: _,
            comment_id: _,
            template,
            subject,
            message_id,
            status,
            attempts,
            reason: _,
            in_reply_to: _,
            references: _,
            context: _,
        } = r;
        Self {
            id,
            to,
            template,
            subject,
            message_id,
            status,
            attempts,
        }
    }
}

/// `token list --json` (never the token itself).
#[derive(Debug, Serialize)]
pub struct ApiToken {
    pub id: i64,
    pub user: String,
    pub label: Option<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl From<store::ApiToken> for ApiToken {
    fn from(t: store::ApiToken) -> Self {
        let store::ApiToken {
            id,
            user,
            label,
            created_at,
            last_used_at,
            revoked_at,
        } = t;
        Self {
            id,
            user,
            label,
            created_at,
            last_used_at,
            revoked_at,
        }
    }
}
