//! Staff pages: the quarantine (what intake held back, its raw text, a
//! replay) and the people (users and organizations: add a user, invite
//! again, delivery leads). Anyone else gets 404, as for a ticket they may
//! not see. Each change is the same `manage` or `ingest` call the CLI and
//! the admin API make.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;

use super::session::Viewer;
use super::{Path, WebError, WebState, form, pages};
use crate::domain::outcome::Outcome;
use crate::manage::{self, ManageError, UserRequest};
use crate::store::LogFilter;

/// A signed-in staff member.
pub struct Staff(Viewer);

impl FromRequestParts<WebState> for Staff {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, Response> {
        let viewer = Viewer::from_request_parts(parts, state).await?;
        if viewer.is_staff() {
            Ok(Staff(viewer))
        } else {
            Err(WebError::NotFound.into_response())
        }
    }
}

fn viewer_ctx(v: &Viewer) -> minijinja::Value {
    context! { name => v.user.name.clone(), email => v.user.email.to_string(), staff => true,
    csrf => v.csrf.clone(), org => v.user.org.clone() }
}

/// Most of a raw message the quarantine page shows: its beginning is
/// what a person judges it by; the whole stays in the store.
const SHOWN_BYTES: usize = 256 * 1024;

/// `GET /staff/quarantine`: messages held back, newest first, not replayed.
pub async fn quarantine(
    State(state): State<WebState>,
    Staff(viewer): Staff,
) -> Result<Response, WebError> {
    let mut rows = state
        .store()
        .list_log(&LogFilter {
            outcome: Some(Outcome::Quarantined),
            limit: Some(500),
            after: None,
        })
        .await?;
    rows.retain(|r| !r.superseded);
    rows.reverse();
    let rows: Vec<_> = rows
        .iter()
        .map(|r| {
            context! { id => r.id, sender => r.sender.clone(), subject => r.subject.clone(),
            reason => r.reason.clone(), ticket => r.ticket, received_at => r.received_at.clone() }
        })
        .collect();
    Ok(pages::render(
        "quarantine.html",
        viewer.locale(),
        context! { viewer => viewer_ctx(&viewer), rows => rows },
    )?
    .into_response())
}

/// `GET /staff/quarantine/{id}`: the message's raw text, escaped.
pub async fn message(
    State(state): State<WebState>,
    Staff(viewer): Staff,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    let row = state.store().log_row(id).await?.ok_or(WebError::NotFound)?;
    let raw = state
        .store()
        .blob(&row.raw_sha256)
        .await?
        .unwrap_or_default();
    let cut = raw.len() > SHOWN_BYTES;
    let text = String::from_utf8_lossy(&raw[..raw.len().min(SHOWN_BYTES)]).into_owned();
    Ok(pages::render(
        "message.html",
        viewer.locale(),
        context! { viewer => viewer_ctx(&viewer),
        row => context! { id => row.id, sender => row.sender, subject => row.subject,
            outcome => row.outcome.to_string(), reason => row.reason, ticket => row.ticket,
            superseded => row.superseded, size => row.size },
        raw => text, cut => cut },
    )?
    .into_response())
}

/// `POST /staff/quarantine/{id}/replay`: runs the message through intake
/// again, as `ticketgate messages replay` does.
pub async fn replay(
    State(state): State<WebState>,
    Staff(viewer): Staff,
    Path(id): Path<i64>,
    req: Request,
) -> Result<Response, WebError> {
    form::read(req, Some(&viewer.csrf), 16 * 1024, state.inner.form_limits).await?;
    match state.inner.replay.replay(id).await {
        Ok(Ok(report)) => {
            tracing::info!(log = id, by = %viewer.user.email, outcome = %report.outcome, "replayed from the portal");
            Ok(Redirect::to("/staff/quarantine").into_response())
        }
        Ok(Err(refusal)) => Err(WebError::BadRequest(refusal.to_string())),
        Err(e) => Err(WebError::Store(e)),
    }
}

/// `GET /staff/people`: organizations with their delivery leads, and users.
pub async fn people(
    State(state): State<WebState>,
    Staff(viewer): Staff,
) -> Result<Response, WebError> {
    people_page(&state, &viewer, None, StatusCode::OK).await
}

async fn people_page(
    state: &WebState,
    viewer: &Viewer,
    message: Option<minijinja::Value>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let orgs = state.store().list_orgs().await?;
    let users = state.store().list_users().await?;
    let page = pages::render(
        "people.html",
        viewer.locale(),
        context! {
            viewer => viewer_ctx(viewer), message => message,
            orgs => orgs.iter().map(|o| context! { slug => o.slug.clone(), name => o.name.clone(),
                domains => o.domains.clone(), leads => o.leads.clone() }).collect::<Vec<_>>(),
            users => users.iter().map(|u| context! { email => u.email.to_string(), name => u.name.clone(),
                role => u.role.as_str(), org => u.org.clone(), locale => u.locale.clone() }).collect::<Vec<_>>(),
        },
    )?;
    Ok((status, page).into_response())
}

/// A `manage` refusal, said on the people page; anything else is an error.
async fn said(
    state: &WebState,
    viewer: &Viewer,
    result: Result<String, ManageError>,
) -> Result<Response, WebError> {
    match result {
        Ok(done) => {
            let message = context! { kind => "ok", text => done, lines => Vec::<String>::new() };
            people_page(state, viewer, Some(message), StatusCode::OK).await
        }
        Err(ManageError::Store(e)) => Err(WebError::Store(e)),
        Err(e) => {
            let status = match e {
                ManageError::Exists(_) => StatusCode::CONFLICT,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            let message =
                context! { kind => "error", text => e.to_string(), lines => Vec::<String>::new() };
            people_page(state, viewer, Some(message), status).await
        }
    }
}

/// `POST /staff/users`: registers a user and emails their invitation.
pub async fn add_user(
    State(state): State<WebState>,
    Staff(viewer): Staff,
    req: Request,
) -> Result<Response, WebError> {
    let form = form::read(req, Some(&viewer.csrf), 16 * 1024, state.inner.form_limits).await?;
    let result = manage::register_user(
        state.tickets(),
        &UserRequest {
            email: form.get("email").unwrap_or_default(),
            name: form.get("name").unwrap_or_default(),
            org: form.get("org"),
            role: form.get("role").unwrap_or("customer"),
            locale: form.get("locale").unwrap_or("en"),
            invite: true,
        },
    )
    .await
    .map(|u| {
        pages::word(viewer.locale(), "user_added")
            .replace("{name}", &u.name)
            .replace("{email}", u.email.as_str())
    });
    said(&state, &viewer, result).await
}

/// `POST /staff/users/invite`: the invitation again, with a new link.
pub async fn invite(
    State(state): State<WebState>,
    Staff(viewer): Staff,
    req: Request,
) -> Result<Response, WebError> {
    let form = form::read(req, Some(&viewer.csrf), 16 * 1024, state.inner.form_limits).await?;
    let result = manage::invite_again(state.tickets(), form.get("email").unwrap_or_default())
        .await
        .map(|u| {
            pages::word(viewer.locale(), "invited_again").replace("{email}", u.email.as_str())
        });
    said(&state, &viewer, result).await
}

/// `POST /staff/leads` (`org`, `email`): a delivery lead for the organization.
pub async fn add_lead(
    State(state): State<WebState>,
    Staff(viewer): Staff,
    req: Request,
) -> Result<Response, WebError> {
    let form = form::read(req, Some(&viewer.csrf), 16 * 1024, state.inner.form_limits).await?;
    let email = form.get("email").unwrap_or_default();
    let result = manage::add_lead(
        state.store().as_ref(),
        form.get("org").unwrap_or_default(),
        email,
    )
    .await
    .map(|o| {
        pages::word(viewer.locale(), "lead_added")
            .replace("{email}", email)
            .replace("{org}", &o.name)
    });
    said(&state, &viewer, result).await
}

/// `POST /staff/leads/remove` (`org`, `email`).
pub async fn remove_lead(
    State(state): State<WebState>,
    Staff(viewer): Staff,
    req: Request,
) -> Result<Response, WebError> {
    let form = form::read(req, Some(&viewer.csrf), 16 * 1024, state.inner.form_limits).await?;
    let email = form.get("email").unwrap_or_default();
    let result = manage::remove_lead(
        state.store().as_ref(),
        form.get("org").unwrap_or_default(),
        email,
    )
    .await
    .map(|o| {
        pages::word(viewer.locale(), "lead_removed")
            .replace("{email}", email)
            .replace("{org}", &o.name)
    });
    said(&state, &viewer, result).await
}
