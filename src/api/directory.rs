//! Users, organizations, attachments, the ingest log with replay, and the
//! operator's endpoints (`/healthz`, `/readyz`, `/metrics`, no token needed).

use crate::health::{MailboxState, StoreState};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::wire::{self, LogRow, Org, User};
use super::{ApiError, ApiState, Body, ErrorBody, Path, Query, Staff};
use crate::domain::outcome::Outcome;
use crate::domain::ticket::Role;
use crate::manage::{self, ManageError, UserRequest};
use crate::store::LogFilter;

impl From<ManageError> for ApiError {
    fn from(e: ManageError) -> Self {
        match e {
            ManageError::Invalid(m) => ApiError::invalid(m),
            ManageError::NotFound(m) => ApiError::not_found(m),
            ManageError::Exists(m) | ManageError::Conflict(m) => ApiError::conflict(m),
            ManageError::Store(e) => e.into(),
        }
    }
}

/// Downloads an attachment. Served as a download with `nosniff` and a
/// sandboxing CSP, so an HTML or SVG attachment cannot run script in the
/// admin endpoint's origin.
#[utoipa::path(get, path = "/api/attachments/{id}", tag = "tickets",
    params(("id" = i64, Path, description = "Attachment id (from the ticket's comments)")),
    responses((status = 200, description = "The file", content_type = "application/octet-stream"),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn attachment(
    State(state): State<ApiState>,
    _staff: Staff,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let (_, file) = state
        .store()
        .attachment(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("attachment {id} not found")))?;
    let content_type = HeaderValue::from_str(&file.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let headers = [
        (header::CONTENT_TYPE, content_type),
        (
            header::CONTENT_DISPOSITION,
            crate::listen::attachment_disposition(&file.filename),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("sandbox; default-src 'none'"),
        ),
    ];
    Ok((headers, file.data).into_response())
}

/// Every registered user.
#[utoipa::path(get, path = "/api/users", tag = "directory",
    responses((status = 200, description = "OK", body = Vec<User>), (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody)))]
pub async fn list_users(
    State(state): State<ApiState>,
    _staff: Staff,
) -> Result<Json<Vec<User>>, ApiError> {
    Ok(Json(wire::list(state.store().list_users().await?)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserBody {
    email: String,
    name: String,
    /// Organization slug or name (customers).
    org: Option<String>,
    /// `customer` (default) or `staff`.
    #[serde(default = "customer")]
    role: String,
    /// Language of their emails, e.g. `en`, `ja`.
    #[serde(default = "english")]
    locale: String,
    /// Email them an invitation (default true).
    #[serde(default = "yes")]
    invite: bool,
}

fn customer() -> String {
    "customer".into()
}
fn english() -> String {
    "en".into()
}
fn yes() -> bool {
    true
}

/// Registers a user and emails them an invitation; 409 if the address is taken.
#[utoipa::path(post, path = "/api/users", tag = "directory", request_body = NewUserBody,
    responses((status = 201, description = "Created", body = User), (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody),
        (status = 409, description = "Conflicts with the current state", body = ErrorBody), (status = 422, description = "Invalid values", body = ErrorBody)))]
pub async fn create_user(
    State(state): State<ApiState>,
    _staff: Staff,
    Body(new): Body<NewUserBody>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let user = manage::register_user(
        state.tickets(),
        &UserRequest {
            email: &new.email,
            name: &new.name,
            org: new.org.as_deref(),
            role: &new.role,
            locale: &new.locale,
            invite: new.invite,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserEditBody {
    name: Option<String>,
    /// `customer` or `staff`.
    role: Option<String>,
    /// Language of their emails, e.g. `en`, `ja`.
    locale: Option<String>,
    /// Organization slug or name; `null` takes them out of their organization.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    org: Option<Option<String>>,
    /// `false` deactivates (no sign-in, no token, mail taken as a
    /// stranger's), `true` undoes it. Nobody deactivates themselves.
    active: Option<bool>,
}

/// A field that is present, even as `null` (`Some(None)`), against one left out (`None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Changes a user's name, role, language or organization; fields left out
/// stay as they are. A delivery lead cannot become a customer (422).
#[utoipa::path(patch, path = "/api/users/{email}", tag = "directory", request_body = UserEditBody,
    params(("email" = String, Path, description = "The user's address")),
    responses((status = 200, description = "The user as it now is", body = User), (status = 400, description = "Malformed request", body = ErrorBody), (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody),
        (status = 422, description = "Invalid values", body = ErrorBody)))]
pub async fn edit_user(
    State(state): State<ApiState>,
    Staff(staff): Staff,
    Path(email): Path<String>,
    Body(edit): Body<UserEditBody>,
) -> Result<Json<User>, ApiError> {
    let role = edit
        .role
        .as_deref()
        .map(str::parse::<Role>)
        .transpose()
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let user = manage::edit_user(
        state.store().as_ref(),
        &email,
        &manage::UserEdit {
            name: edit.name.as_deref(),
            role,
            locale: edit.locale.as_deref(),
            org: edit.org.as_ref().map(|o| o.as_deref()),
            active: edit.active,
            by: Some(staff.id),
        },
    )
    .await?;
    tracing::info!(user = %user.email, by = %staff.email, "user edited");
    Ok(Json(user.into()))
}

/// Everything stored about one person, for a subject access request
/// (docs/contract.md, "People's data"); the same document as `ticketgate
/// person export`. Each export is logged with who asked.
#[utoipa::path(get, path = "/api/people/{email}/export", tag = "directory",
    params(("email" = String, Path, description = "The person's address")),
    responses((status = 200, description = "The person's data as one JSON document", content_type = "application/json"),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody),
        (status = 422, description = "Invalid values", body = ErrorBody)))]
pub async fn export_person(
    State(state): State<ApiState>,
    Staff(staff): Staff,
    Path(email): Path<String>,
) -> Result<Json<crate::store::people::PersonRecord>, ApiError> {
    let address = crate::domain::ids::EmailAddress::parse(&email)
        .map_err(|_| ApiError::invalid(format!("{email:?} is not an email address")))?;
    let record = state
        .store()
        .person_export(&address)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no person with the address {address}")))?;
    tracing::info!(person = %address, by = %staff.email, "person's data exported");
    Ok(Json(record))
}

/// Every organization with its domains and delivery leads.
#[utoipa::path(get, path = "/api/orgs", tag = "directory",
    responses((status = 200, description = "OK", body = Vec<Org>), (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody)))]
pub async fn list_orgs(
    State(state): State<ApiState>,
    _staff: Staff,
) -> Result<Json<Vec<Org>>, ApiError> {
    Ok(Json(wire::list(state.store().list_orgs().await?)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrgBody {
    name: String,
    /// Senders from these domains are registered as members on first contact.
    #[serde(default)]
    domains: Vec<String>,
}

/// Adds an organization; its slug is derived from the name (409 if taken).
#[utoipa::path(post, path = "/api/orgs", tag = "directory", request_body = NewOrgBody,
    responses((status = 201, description = "Created", body = Org), (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody), (status = 409, description = "Conflicts with the current state", body = ErrorBody),
        (status = 422, description = "Invalid values", body = ErrorBody)))]
pub async fn create_org(
    State(state): State<ApiState>,
    _staff: Staff,
    Body(new): Body<NewOrgBody>,
) -> Result<(StatusCode, Json<Org>), ApiError> {
    let org = manage::add_org(state.store().as_ref(), &new.name, &new.domains)
        .await
        .map_err(|e| match e {
            ManageError::Store(crate::store::StoreError::Conflict(_)) => {
                ApiError::conflict("an organization with that name or one of those domains exists")
            }
            other => other.into(),
        })?;
    Ok((StatusCode::CREATED, Json(org.into())))
}

/// Makes a staff user a delivery lead of the organization.
#[utoipa::path(put, path = "/api/orgs/{slug}/leads/{email}", tag = "directory",
    params(("slug" = String, Path, description = "Organization slug or name"), ("email" = String, Path, description = "A staff user's address")),
    responses((status = 200, description = "OK", body = Org), (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody),
        (status = 422, description = "Invalid values", body = ErrorBody)))]
pub async fn add_lead(
    State(state): State<ApiState>,
    _staff: Staff,
    Path((slug, email)): Path<(String, String)>,
) -> Result<Json<Org>, ApiError> {
    Ok(Json(
        manage::add_lead(state.store().as_ref(), &slug, &email)
            .await?
            .into(),
    ))
}

/// Ends a user's delivery lead of the organization (404 if they were not one).
#[utoipa::path(delete, path = "/api/orgs/{slug}/leads/{email}", tag = "directory",
    params(("slug" = String, Path, description = "Organization slug or name"), ("email" = String, Path, description = "The lead's address")),
    responses((status = 200, description = "The organization as it now is", body = Org), (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody),
        (status = 422, description = "Invalid values", body = ErrorBody)))]
pub async fn remove_lead(
    State(state): State<ApiState>,
    _staff: Staff,
    Path((slug, email)): Path<(String, String)>,
) -> Result<Json<Org>, ApiError> {
    Ok(Json(
        manage::remove_lead(state.store().as_ref(), &slug, &email)
            .await?
            .into(),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
// A misspelt or unsupported filter is an error, not "everything" (README: 400).
#[serde(deny_unknown_fields)]
pub struct MessageQuery {
    /// e.g. `quarantined`, `rejected`, `ticket_created`.
    outcome: Option<String>,
    /// Page size (default 50, at most 500).
    limit: Option<i64>,
    /// The `next` value of the previous page.
    after: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessagePage {
    messages: Vec<LogRow>,
    next: Option<i64>,
}

/// The ingest log: one row per delivery, oldest first.
#[utoipa::path(get, path = "/api/messages", tag = "messages", params(MessageQuery),
    responses((status = 200, description = "OK", body = MessagePage), (status = 400, description = "Malformed request", body = ErrorBody), (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody)))]
pub async fn list_messages(
    State(state): State<ApiState>,
    _staff: Staff,
    Query(q): Query<MessageQuery>,
) -> Result<Json<MessagePage>, ApiError> {
    let outcome = q
        .outcome
        .as_deref()
        .map(|o| {
            Outcome::ALL
                .into_iter()
                .find(|x| x.as_str() == o)
                .ok_or_else(|| ApiError::bad_request(format!("unknown outcome {o:?}")))
        })
        .transpose()?;
    let limit = super::page_limit(q.limit)?;
    let messages = state
        .store()
        .list_log(&LogFilter {
            outcome,
            limit: Some(limit),
            after: q.after,
        })
        .await?;
    let next = super::next_page(&messages, limit, |m| m.id);
    Ok(Json(MessagePage {
        messages: wire::list(messages),
        next,
    }))
}

/// One delivery of the ingest log.
#[utoipa::path(get, path = "/api/messages/{id}", tag = "messages",
    params(("id" = i64, Path, description = "Ingest log id")),
    responses((status = 200, description = "OK", body = LogRow), (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn get_message(
    State(state): State<ApiState>,
    _staff: Staff,
    Path(id): Path<i64>,
) -> Result<Json<LogRow>, ApiError> {
    Ok(Json(
        state
            .store()
            .log_row(id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("message {id} not found")))?
            .into(),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Replayed {
    /// The new ingest log row; the replayed one is now `superseded`.
    message: LogRow,
    #[schema(value_type = Outcome)]
    outcome: Outcome,
    ticket: Option<i64>,
    comment: Option<i64>,
}

/// Runs a quarantined or rejected message through intake again (say, after
/// its sender was registered). 409 for any other outcome or a second replay.
#[utoipa::path(post, path = "/api/messages/{id}/replay", tag = "messages",
    params(("id" = i64, Path, description = "Ingest log id")),
    responses((status = 200, description = "OK", body = Replayed), (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody),
        (status = 409, description = "Conflicts with the current state", body = ErrorBody)))]
pub async fn replay(
    State(state): State<ApiState>,
    Staff(staff): Staff,
    Path(id): Path<i64>,
) -> Result<Json<Replayed>, ApiError> {
    let report = state.replay().replay(id).await??;
    tracing::info!(log = id, by = %staff.email, outcome = %report.outcome, "replayed");
    let message = state
        .store()
        .log_row(report.log_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("message {} not found", report.log_id)))?;
    Ok(Json(Replayed {
        message: message.into(),
        outcome: report.outcome,
        ticket: report.ticket,
        comment: report.comment,
    }))
}

/// Discards a quarantined or rejected message: it stays in the log (and
/// its raw text in the store), marked `discarded_at`, and is no longer
/// pending. 409 when it was replayed, discarded already, or accepted.
#[utoipa::path(post, path = "/api/messages/{id}/discard", tag = "messages",
    params(("id" = i64, Path, description = "Ingest log id")),
    responses((status = 200, description = "The message as it now is", body = LogRow), (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody),
        (status = 409, description = "Conflicts with the current state", body = ErrorBody)))]
pub async fn discard(
    State(state): State<ApiState>,
    Staff(staff): Staff,
    Path(id): Path<i64>,
) -> Result<Json<LogRow>, ApiError> {
    let row = manage::discard_message(state.store().as_ref(), id).await?;
    tracing::info!(log = id, by = %staff.email, "discarded");
    Ok(Json(row.into()))
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, description = "ok", content_type = "text/plain")))]
pub async fn healthz() -> &'static str {
    "ok\n"
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    ready: bool,
    database: bool,
    /// Each IMAP mailbox and whether its poller is connected.
    mailboxes: Vec<MailboxReadiness>,
    /// Each part that keeps the instance from being ready, by name: empty
    /// when ready.
    failing: Vec<FailingPart>,
}

/// A part that is not ready: `{"mailbox": NAME, "state": "disconnected"}`,
/// `{"store": "disk_full"}` (or `"failing"`: mail waits in its source until
/// the store records again), `{"database": "unreachable"}`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum FailingPart {
    Mailbox { mailbox: String, state: String },
    Store { store: String },
    Database { database: String },
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MailboxReadiness {
    name: String,
    state: String,
    connected: bool,
}

const STATES: [&str; 4] = [
    MailboxState::Connecting.as_str(),
    MailboxState::Connected.as_str(),
    MailboxState::Idle.as_str(),
    MailboxState::Disconnected.as_str(),
];

/// Ready when the database answers, the store records mail (its disk is not
/// full) and every IMAP mailbox is connected; 503 otherwise, `failing`
/// naming each part that is not.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses((status = 200, description = "OK", body = Readiness), (status = 503, description = "Not ready", body = Readiness)))]
pub async fn readyz(State(state): State<ApiState>) -> (StatusCode, Json<Readiness>) {
    let database = match state.store().ping().await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "readiness: database unreachable");
            false
        }
    };
    let mailboxes: Vec<_> = state
        .inner
        .mailboxes
        .iter()
        .map(|(name, rx)| {
            let s = *rx.borrow();
            MailboxReadiness {
                name: name.clone(),
                state: s.as_str().to_string(),
                connected: s.is_up(),
            }
        })
        .collect();
    let mut failing = Vec::new();
    if !database {
        failing.push(FailingPart::Database {
            database: "unreachable".into(),
        });
    }
    let store = state.store().health().get();
    if store != StoreState::Ok {
        failing.push(FailingPart::Store {
            store: store.as_str().into(),
        });
    }
    failing.extend(
        mailboxes
            .iter()
            .filter(|m| !m.connected)
            .map(|m| FailingPart::Mailbox {
                mailbox: m.name.clone(),
                state: m.state.clone(),
            }),
    );
    let ready = failing.is_empty();
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(Readiness {
            ready,
            database,
            mailboxes,
            failing,
        }),
    )
}

/// Prometheus text format; names are prefixed `ticketgate_`.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(()),
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
pub async fn metrics(State(state): State<ApiState>) -> Response {
    let metrics = state.metrics();
    match state.store().outbox_counts().await {
        Ok(counts) => {
            let named: Vec<_> = counts.iter().map(|(s, n)| (s.as_str(), *n)).collect();
            metrics.set_outbox(&named);
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot count the outbox"),
    }
    match state.store().open_ticket_counts().await {
        Ok(counts) => {
            let named: Vec<_> = counts
                .iter()
                .map(|(s, p, n)| (s.as_str(), p.map(|p| p.as_str()), *n))
                .collect();
            metrics.set_open_tickets(&named);
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot count open tickets"),
    }
    for (name, rx) in &state.inner.mailboxes {
        metrics.set_mailbox(name, rx.borrow().as_str(), &STATES);
    }
    metrics.set_store(state.store().health().get());
    (
        [(
            header::CONTENT_TYPE,
            // The OpenMetrics-compatible text the encoder writes; Prometheus reads it.
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        metrics.encode(),
    )
        .into_response()
}
