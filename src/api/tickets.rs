//! Ticket routes. Each change runs `tickets::Changes` in one transaction,
//! exactly as the matching email command does, acting as the token's staff
//! user; API callers count as proven senders (they hold a secret token).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::wire::{self, TicketSummary, TicketView};
use super::{ApiError, ApiState, Body, ErrorBody, Path, Query, Staff};
use crate::domain::ids::{CommentId, EmailAddress, TicketId};
use crate::domain::ticket::{CloseReason, Priority, Status};
use crate::domain::version::Version;
use crate::store::{CommentPage, CommentSource, OwnerFilter, TicketFilter};
use crate::tickets::{Assignee, Command, MoveTarget};
use crate::tickets::{Author, Failure, Typed};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
// A misspelt or unsupported filter is an error, not "everything" (README: 400).
#[serde(deny_unknown_fields)]
pub struct TicketQuery {
    /// Machine name, e.g. `in_progress`.
    status: Option<String>,
    /// Organization slug or name.
    org: Option<String>,
    /// Requester's email address.
    requester: Option<String>,
    /// `me` (the token's user), `none` (unassigned) or a staff address.
    owner: Option<String>,
    /// `true`: open tickets with a clock past its due time.
    breached: Option<bool>,
    /// `updated` (last update first) or `due` (earliest next due time
    /// first, tickets without one last). Without it: by id, oldest first.
    sort: Option<String>,
    /// Page size (default 50, at most 500).
    limit: Option<i64>,
    /// The `next` value of the previous page: a ticket id without `sort`,
    /// the opaque string `next` gave with it.
    after: Option<String>,
}

/// Where the next page starts: a ticket id in id order (what scripts
/// written before `sort` expect), an opaque cursor in a sorted order.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Next {
    Id(TicketId),
    Cursor(String),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TicketPage {
    tickets: Vec<TicketSummary>,
    /// Pass as `after` for the next page; null on the last page.
    next: Option<Next>,
}

/// `sort`: the two orders of a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sort {
    Updated,
    Due,
}

impl Sort {
    fn name(self) -> &'static str {
        match self {
            Sort::Updated => "updated",
            Sort::Due => "due",
        }
    }
}

/// Where a sorted page starts, opaque to clients: by last update, the last
/// ticket's update (Unix microseconds) and id, a keyset (`updated~T~ID`);
/// by due time, how many rows came before (`due.N`, as `updated.N` was).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cursor {
    Skip(i64),
    UpdatedBefore(time::OffsetDateTime, TicketId),
}

fn cursor(sort: Sort, skip: i64, last: Option<&crate::store::TicketSummary>) -> Option<String> {
    match (sort, last) {
        (Sort::Updated, Some(t)) => {
            let at = crate::store::parse_ts(&t.updated_at)?;
            Some(format!(
                "updated~{}~{}",
                at.unix_timestamp_nanos() / 1000,
                t.id
            ))
        }
        _ => Some(format!("{}.{skip}", sort.name())),
    }
}

fn read_cursor(sort: Sort, text: &str) -> Result<Cursor, ApiError> {
    let bad =
        || ApiError::bad_request(format!("after: not a `next` value of sort={}", sort.name()));
    if let Some(keyset) = text
        .strip_prefix("updated~")
        .filter(|_| sort == Sort::Updated)
    {
        let (micros, id) = keyset.split_once('~').ok_or_else(bad)?;
        let micros: i128 = micros.parse().map_err(|_| bad())?;
        let at =
            time::OffsetDateTime::from_unix_timestamp_nanos(micros * 1000).map_err(|_| bad())?;
        return Ok(Cursor::UpdatedBefore(at, id.parse().map_err(|_| bad())?));
    }
    text.strip_prefix(sort.name())
        .and_then(|r| r.strip_prefix('.'))
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n >= 0)
        .map(Cursor::Skip)
        .ok_or_else(bad)
}

/// Lists tickets, oldest first, filtered and paginated by id; or, with
/// `sort`, by last update or next due time, paginated by an opaque cursor.
#[utoipa::path(get, path = "/api/tickets", params(TicketQuery), tag = "tickets",
    responses((status = 200, description = "OK", body = TicketPage), (status = 400, description = "Malformed request", body = ErrorBody), (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody)))]
pub async fn list_tickets(
    State(state): State<ApiState>,
    Staff(staff): Staff,
    Query(q): Query<TicketQuery>,
) -> Result<Json<TicketPage>, ApiError> {
    let status = q
        .status
        .as_deref()
        .map(str::parse::<Status>)
        .transpose()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let requester = q
        .requester
        .as_deref()
        .map(EmailAddress::parse)
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("requester: {e}")))?;
    let owner = match q.owner.as_deref().map(str::trim) {
        None => None,
        Some(w) if w.eq_ignore_ascii_case("me") => Some(OwnerFilter::Is(staff.email.clone())),
        Some(w) if w.eq_ignore_ascii_case("none") => Some(OwnerFilter::Nobody),
        Some(w) => Some(OwnerFilter::Is(EmailAddress::parse(w).map_err(|e| {
            ApiError::bad_request(format!("owner: {e} (or `me`, `none`)"))
        })?)),
    };
    let limit = super::page_limit(q.limit)?;
    let sort = match q.sort.as_deref() {
        None => None,
        Some("updated") => Some(Sort::Updated),
        Some("due") => Some(Sort::Due),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "sort: {other:?} is not `updated` or `due`"
            )));
        }
    };
    let (after, from) = match (sort, q.after.as_deref()) {
        (_, None) => (None, Cursor::Skip(0)),
        (None, Some(id)) => (
            Some(id.parse::<TicketId>().map_err(|_| {
                ApiError::bad_request("after: a ticket id (the `next` of the previous page)")
            })?),
            Cursor::Skip(0),
        ),
        (Some(sort), Some(text)) => (None, read_cursor(sort, text)?),
    };
    let (skip, updated_before) = match from {
        Cursor::Skip(n) => (n, None),
        Cursor::UpdatedBefore(at, id) => (0, Some((at, id))),
    };
    let tickets = state
        .store()
        .list_tickets(&TicketFilter {
            status,
            org: q.org,
            requester,
            owner,
            breached_at: q
                .breached
                .unwrap_or(false)
                .then(time::OffsetDateTime::now_utc),
            limit: Some(limit),
            after,
            newest_first: sort == Some(Sort::Updated),
            by_due: sort == Some(Sort::Due),
            skip,
            updated_before,
            ..Default::default()
        })
        .await?;
    let next = match sort {
        None => super::next_page(&tickets, limit, |t| t.id).map(Next::Id),
        Some(sort) => (tickets.len() as i64 == limit)
            .then(|| cursor(sort, skip + limit, tickets.last()))
            .flatten()
            .map(Next::Cursor),
    };
    Ok(Json(TicketPage {
        tickets: wire::list(tickets),
        next,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ViewQuery {
    /// At most this many comments, the newest (of those before
    /// `comments_before`); the history shown is theirs. Without it, all.
    comments_limit: Option<i64>,
    /// Only comments before this comment id (the first of the page before).
    comments_before: Option<i64>,
}

/// The ticket with its followers, comments (internal ones included: this is
/// the staff API) and events; `comments_limit` and `comments_before` page
/// through a long thread, newest first (`earlier_comments` says there is more).
#[utoipa::path(get, path = "/api/tickets/{id}", tag = "tickets",
    params(("id" = i64, Path, description = "Ticket id"), ViewQuery),
    responses((status = 200, description = "OK", body = TicketView), (status = 400, description = "Malformed request", body = ErrorBody), (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn get_ticket(
    State(state): State<ApiState>,
    _staff: Staff,
    Path(id): Path<TicketId>,
    Query(q): Query<ViewQuery>,
) -> Result<Json<TicketView>, ApiError> {
    if q.comments_limit.is_some_and(|n| n < 1) {
        return Err(ApiError::bad_request("comments_limit: at least 1"));
    }
    let page = CommentPage {
        limit: q.comments_limit,
        before: q.comments_before,
    };
    Ok(Json(view_page(&state, id, page).await?))
}

async fn view(state: &ApiState, id: TicketId) -> Result<TicketView, ApiError> {
    view_page(state, id, CommentPage::default()).await
}

async fn view_page(
    state: &ApiState,
    id: TicketId,
    page: CommentPage,
) -> Result<TicketView, ApiError> {
    let mut view = state
        .store()
        .ticket_page(id, page)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("ticket {id} not found")))?;
    view.status_label = state.label(view.status);
    Ok(view.into())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketPatch {
    #[schema(value_type = Option<Status>)]
    status: Option<String>,
    #[schema(value_type = Option<Priority>)]
    priority: Option<String>,
    /// A staff member's address, or null to unassign.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    owner: Option<Option<String>>,
    /// Closes the ticket with this reason (resolved, by_customer,
    /// feature_request, no_response, duplicate).
    #[schema(value_type = Option<String>)]
    close_reason: Option<String>,
}

/// A field given as null (`Some(None)`) apart from one not given (`None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Sets the status, the priority, the owner or the close reason, as
/// `#status`, `#priority`, `#assign`/`#unassign` and `#status closed <reason>` would.
#[utoipa::path(patch, path = "/api/tickets/{id}", tag = "tickets", request_body = TicketPatch,
    params(("id" = i64, Path, description = "Ticket id")),
    responses((status = 200, description = "OK", body = TicketView), (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody), (status = 403, description = "Not permitted for this user", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody), (status = 422, description = "Invalid values", body = ErrorBody)))]
pub async fn patch_ticket(
    State(state): State<ApiState>,
    Staff(staff): Staff,
    Path(id): Path<TicketId>,
    Body(patch): Body<TicketPatch>,
) -> Result<Json<TicketView>, ApiError> {
    let mut commands = Vec::new();
    let reason = match &patch.close_reason {
        Some(r) => Some(
            r.parse::<CloseReason>()
                .map_err(|e| ApiError::invalid(format!("{e}")))?,
        ),
        None => None,
    };
    match (&patch.status, reason) {
        (Some(s), reason) => {
            let to: Status = s.parse().map_err(|e| ApiError::invalid(format!("{e}")))?;
            match (to, reason) {
                (Status::Closed, Some(reason)) => commands.push(Command::Close(reason)),
                (to, None) => commands.push(Command::Status(to)),
                (_, Some(_)) => {
                    return Err(ApiError::invalid(
                        "`close_reason` goes with status `closed` only",
                    ));
                }
            }
        }
        (None, Some(reason)) => commands.push(Command::Close(reason)),
        (None, None) => {}
    }
    match &patch.owner {
        Some(Some(email)) => {
            let email = crate::domain::ids::EmailAddress::parse(email)
                .map_err(|e| ApiError::invalid(format!("owner: {e}")))?;
            commands.push(Command::Assign(Assignee::address(email)));
        }
        Some(None) => commands.push(Command::Unassign),
        None => {}
    }
    if let Some(p) = &patch.priority {
        let p: Priority = p.parse().map_err(|e| ApiError::invalid(format!("{e}")))?;
        commands.push(Command::Priority(p));
    }
    if commands.is_empty() {
        return Err(ApiError::invalid(
            "give one or more of `status`, `priority`, `owner`, `close_reason`",
        ));
    }
    run(&state, &staff, id, &commands).await?;
    Ok(Json(view(&state, id).await?))
}

/// Runs commands on one ticket in one transaction; any refusal rolls all back.
async fn run(
    state: &ApiState,
    staff: &crate::store::User,
    id: TicketId,
    commands: &[Command],
) -> Result<(), ApiError> {
    // API callers hold a secret token: proven.
    let author = Author {
        user: staff,
        proven: true,
    };
    state.tickets().apply(id, &author, commands).await??;
    Ok(())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCommentBody {
    body: String,
    /// Staff only: visible to staff, emailed to staff only.
    #[serde(default)]
    internal: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CommentCreated {
    id: CommentId,
    ticket: TicketId,
    /// @mentions that did not resolve (the author is told here, not by email).
    mentions_failed: Vec<MentionFailure>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MentionFailure {
    mention: String,
    reason: String,
}

/// Adds a comment; followers and the support team are emailed as for a reply.
#[utoipa::path(post, path = "/api/tickets/{id}/comments", tag = "tickets", request_body = NewCommentBody,
    params(("id" = i64, Path, description = "Ticket id")),
    responses((status = 201, description = "Created", body = CommentCreated), (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody), (status = 403, description = "Not permitted for this user", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody), (status = 422, description = "Invalid values", body = ErrorBody)))]
pub async fn add_comment(
    State(state): State<ApiState>,
    Staff(staff): Staff,
    Path(id): Path<TicketId>,
    Body(new): Body<NewCommentBody>,
) -> Result<(StatusCode, Json<CommentCreated>), ApiError> {
    let body = new.body.trim_end();
    if body.trim().is_empty() {
        return Err(ApiError::invalid("`body` is empty"));
    }
    let added = state
        .tickets()
        .comment(
            id,
            // API callers hold a secret token: proven.
            &Typed {
                author: &staff,
                source: CommentSource::Api,
                body,
                internal: new.internal,
                attachments: &[],
                attachment_shas: &[],
            },
        )
        .await??;
    let comment = added
        .comment
        .ok_or_else(|| ApiError::invalid("`body` is empty"))?;
    let failures = added.failures;
    let mentions_failed = failures
        .into_iter()
        .map(|Failure { command, reason }| MentionFailure {
            mention: command,
            reason,
        })
        .collect();
    Ok((
        StatusCode::CREATED,
        Json(CommentCreated {
            id: comment,
            ticket: id,
            mentions_failed,
        }),
    ))
}

fn address(text: &str) -> Result<EmailAddress, ApiError> {
    EmailAddress::parse(text).map_err(|e| ApiError::bad_request(format!("{text:?}: {e}")))
}

/// Shares the ticket with a registered user (they follow it and are told).
#[utoipa::path(put, path = "/api/tickets/{id}/followers/{email}", tag = "tickets",
    params(("id" = i64, Path, description = "Ticket id"), ("email" = String, Path, description = "A registered user's address")),
    responses((status = 200, description = "OK", body = TicketView), (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn add_follower(
    State(state): State<ApiState>,
    Staff(staff): Staff,
    Path((id, email)): Path<(TicketId, String)>,
) -> Result<Json<TicketView>, ApiError> {
    let email = address(&email)?;
    run(&state, &staff, id, &[Command::Share(vec![email])]).await?;
    Ok(Json(view(&state, id).await?))
}

/// Removes a follower. The ticket's creator can never be removed (409).
#[utoipa::path(delete, path = "/api/tickets/{id}/followers/{email}", tag = "tickets",
    params(("id" = i64, Path, description = "Ticket id"), ("email" = String, Path, description = "The follower's address")),
    responses((status = 204, description = "Done; no content"), (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 409, description = "Conflicts with the current state", body = ErrorBody)))]
pub async fn remove_follower(
    State(state): State<ApiState>,
    Staff(staff): Staff,
    Path((id, email)): Path<(TicketId, String)>,
) -> Result<StatusCode, ApiError> {
    let email = address(&email)?;
    if state.store().find_user(&email).await?.is_none() {
        return Err(ApiError::not_found(format!("no user {email}")));
    }
    run(&state, &staff, id, &[Command::Unshare(vec![email])]).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Attaches an organization: its members may read and comment (never emailed).
#[utoipa::path(put, path = "/api/tickets/{id}/orgs/{slug}", tag = "tickets",
    params(("id" = i64, Path, description = "Ticket id"), ("slug" = String, Path, description = "Organization slug or name")),
    responses((status = 200, description = "OK", body = TicketView), (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn add_org(
    State(state): State<ApiState>,
    Staff(staff): Staff,
    Path((id, slug)): Path<(TicketId, String)>,
) -> Result<Json<TicketView>, ApiError> {
    run(&state, &staff, id, &[Command::ShareOrg(slug)]).await?;
    Ok(Json(view(&state, id).await?))
}

/// Detaches an organization; its members keep access only if they follow.
#[utoipa::path(delete, path = "/api/tickets/{id}/orgs/{slug}", tag = "tickets",
    params(("id" = i64, Path, description = "Ticket id"), ("slug" = String, Path, description = "Organization slug or name")),
    responses((status = 204, description = "Done; no content"), (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn remove_org(
    State(state): State<ApiState>,
    Staff(staff): Staff,
    Path((id, slug)): Path<(TicketId, String)>,
) -> Result<StatusCode, ApiError> {
    run(&state, &staff, id, &[Command::UnshareOrg(slug)]).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseBody {
    /// e.g. `5.2.1`, `v4.2.1` or `5.2 beta`: 1 to 64 printable characters,
    /// kept as typed after trimming.
    version: String,
}

/// Records the release that fixes the ticket; a comment naming it goes to everyone on it.
#[utoipa::path(post, path = "/api/tickets/{id}/release", tag = "tickets", request_body = ReleaseBody,
    params(("id" = i64, Path, description = "Ticket id")),
    responses((status = 200, description = "OK", body = TicketView), (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody),
        (status = 422, description = "Invalid values", body = ErrorBody)))]
pub async fn release(
    State(state): State<ApiState>,
    Staff(staff): Staff,
    Path(id): Path<TicketId>,
    Body(release): Body<ReleaseBody>,
) -> Result<Json<TicketView>, ApiError> {
    // The parse mail and the portal use too (src/domain/version.rs).
    let version = Version::parse(&release.version)
        .map_err(|problem| ApiError::invalid(format!("`version`: {problem}")))?;
    run(&state, &staff, id, &[Command::Release(version)]).await?;
    Ok(Json(view(&state, id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeBody {
    /// The ticket this one continues in.
    into: TicketId,
}

/// Merges the ticket into another, as `#merge-into` does: its comments,
/// followers, organizations and Message-IDs go there, it is closed as a
/// duplicate, and its followers are told where it continues. Answers the
/// ticket merged into.
#[utoipa::path(post, path = "/api/tickets/{id}/merge", tag = "tickets", request_body = MergeBody,
    params(("id" = i64, Path, description = "The ticket to merge")),
    responses((status = 200, description = "OK", body = TicketView), (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody),
        (status = 409, description = "Conflicts with the current state", body = ErrorBody)))]
pub async fn merge(
    State(state): State<ApiState>,
    Staff(staff): Staff,
    Path(id): Path<TicketId>,
    Body(body): Body<MergeBody>,
) -> Result<Json<TicketView>, ApiError> {
    // API callers hold a secret token: proven.
    let author = Author {
        user: &staff,
        proven: true,
    };
    let into = state.tickets().merge(id, &author, body.into).await??;
    Ok(Json(view(&state, into.id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveBody {
    /// A ticket number, or `"new"` for a new ticket requested by the
    /// comment's author.
    #[schema(value_type = Value)]
    to: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CommentMoved {
    comment: CommentId,
    /// The ticket the comment is on now.
    ticket: TicketId,
}

/// Moves one comment, with its Message-ID, to another ticket or a new one.
#[utoipa::path(post, path = "/api/comments/{id}/move", tag = "tickets", request_body = MoveBody,
    params(("id" = i64, Path, description = "Comment id")),
    responses((status = 200, description = "OK", body = CommentMoved), (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody),
        (status = 409, description = "Conflicts with the current state", body = ErrorBody), (status = 422, description = "Invalid values", body = ErrorBody)))]
pub async fn move_comment(
    State(state): State<ApiState>,
    Staff(staff): Staff,
    Path(id): Path<CommentId>,
    Body(body): Body<MoveBody>,
) -> Result<Json<CommentMoved>, ApiError> {
    let to = match &body.to {
        serde_json::Value::Number(n) => n.as_i64().filter(|n| *n > 0).map(MoveTarget::Ticket),
        serde_json::Value::String(s) if s.eq_ignore_ascii_case("new") => Some(MoveTarget::New),
        _ => None,
    }
    .ok_or_else(|| ApiError::invalid("`to` is a ticket number or \"new\""))?;
    let author = Author {
        user: &staff,
        proven: true,
    };
    let moved = state.tickets().move_comment(id, &author, to).await??;
    Ok(Json(CommentMoved {
        comment: id,
        ticket: moved.id,
    }))
}
