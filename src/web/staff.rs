//! Staff pages: the quarantine (what intake held back, its raw text; a
//! replay, a share with the sender then a replay, a discard) and the people
//! (users and organizations: add or edit a user, invite again, add an
//! organization, delivery leads). Anyone else gets 404, as for a ticket
//! they may not see. Each change is the same `manage`, `tickets` or replay
//! call the CLI and the admin API make, and its page says what was done.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use minijinja::context;

use super::session::Viewer;
use super::tickets::{local_time, viewer_ctx};
use super::{Path, WebError, WebState, form, pages};
use crate::domain::ids::{EmailAddress, TicketId};
use crate::domain::locale::Locale;
use crate::domain::outcome::Outcome;
use crate::domain::ticket::Role;
use crate::manage::{self, ManageError, UserEdit, UserRequest};
use crate::store::{LogFilter, LogRow};
use crate::tickets::{Author, Command, Refusal, ReplayRefusal, Replayed};

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

/// Most of a raw message the quarantine page shows: its beginning is
/// what a person judges it by; the whole stays in the store.
const SHOWN_BYTES: usize = 256 * 1024;

/// `GET /staff/quarantine`: messages held back, newest first, neither
/// replayed nor discarded.
pub async fn quarantine(
    State(state): State<WebState>,
    Staff(viewer): Staff,
) -> Result<Response, WebError> {
    quarantine_page(&state, &viewer, None, StatusCode::OK).await
}

/// The quarantine list, with `notice` (what the last action did) above it.
async fn quarantine_page(
    state: &WebState,
    viewer: &Viewer,
    notice: Option<minijinja::Value>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let locale = viewer.locale();
    let mut rows = state
        .store()
        .list_log(&LogFilter {
            outcome: Some(Outcome::Quarantined),
            limit: Some(500),
            after: None,
        })
        .await?;
    rows.retain(|r| !r.superseded && r.discarded_at.is_none());
    rows.reverse();
    let rows: Vec<_> = rows
        .iter()
        .map(|r| {
            context! { id => r.id, sender => r.sender.clone(), subject => r.subject.clone(),
            reason => reason_words(locale, r.reason.as_deref()), ticket => r.ticket,
            shareable => share_target(r).is_some(),
            received_at => local_time(state, &r.received_at, locale) }
        })
        .collect();
    let page = pages::render(
        "quarantine.html",
        locale,
        context! { viewer => viewer_ctx(viewer), rows => rows, message => notice },
    )?;
    Ok((status, page).into_response())
}

/// A reason code in the reader's words (`reason_<code>` of the page words);
/// one this version has no words for is named as unknown, never shown raw.
fn reason_words(locale: Locale, code: Option<&str>) -> String {
    let Some(code) = code else {
        return String::new();
    };
    let words = pages::words(locale);
    words
        .get(&format!("reason_{code}"))
        .or_else(|| words.get("reason_other"))
        .cloned()
        .unwrap_or_default()
}

fn outcome_words(locale: Locale, outcome: Outcome) -> String {
    pages::word(locale, &format!("outcome_{}", outcome.as_str()))
}

/// A stranger's reply to a ticket: the ticket and the sender whom sharing
/// it with would let the reply in.
fn share_target(row: &LogRow) -> Option<(TicketId, EmailAddress)> {
    if row.outcome != Outcome::Quarantined {
        return None;
    }
    let sender = EmailAddress::parse(row.sender.as_deref()?).ok()?;
    Some((row.ticket?, sender))
}

/// `GET /staff/quarantine/{id}`: the message's raw text, escaped.
pub async fn message(
    State(state): State<WebState>,
    Staff(viewer): Staff,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    let locale = viewer.locale();
    let row = state.store().log_row(id).await?.ok_or(WebError::NotFound)?;
    let raw = state
        .store()
        .blob(&row.raw_sha256)
        .await?
        .unwrap_or_default();
    let cut = raw.len() > SHOWN_BYTES;
    let text = String::from_utf8_lossy(&raw[..raw.len().min(SHOWN_BYTES)]).into_owned();
    let pending = !row.superseded
        && row.discarded_at.is_none()
        && matches!(row.outcome, Outcome::Quarantined | Outcome::Rejected);
    Ok(pages::render(
        "message.html",
        locale,
        context! { viewer => viewer_ctx(&viewer),
        row => context! { id => row.id, sender => row.sender.clone(), subject => row.subject.clone(),
            outcome => outcome_words(locale, row.outcome),
            reason => reason_words(locale, row.reason.as_deref()), ticket => row.ticket,
            superseded => row.superseded, size => row.size, pending => pending,
            shareable => pending && share_target(&row).is_some(),
            received_at => local_time(&state, &row.received_at, locale),
            discarded_at => row.discarded_at.as_deref().map(|at| local_time(&state, at, locale)) },
        raw => text, cut => cut },
    )?
    .into_response())
}

/// A notice for the quarantine page: `ok` is said as a status, anything
/// else as an alert.
fn notice(kind: &str, lines: Vec<String>) -> minijinja::Value {
    context! { kind => kind, lines => lines }
}

/// What a replay did, in words: where the message went, or that it was
/// held back again and why.
fn replayed_words(locale: Locale, id: i64, r: &Replayed) -> String {
    let key = match r.outcome {
        Outcome::CommentAdded | Outcome::CommandOnly => "replayed_comment",
        Outcome::TicketCreated => "replayed_ticket",
        Outcome::Quarantined | Outcome::Rejected => "replayed_again",
        _ => "replayed_other",
    };
    pages::word(locale, key)
        .replace("{id}", &id.to_string())
        .replace(
            "{ticket}",
            &r.ticket.map(|t| t.to_string()).unwrap_or_default(),
        )
        .replace("{reason}", &reason_words(locale, r.reason.as_deref()))
        .replace("{outcome}", &outcome_words(locale, r.outcome))
}

fn replay_refused_words(locale: Locale, refusal: &ReplayRefusal) -> (StatusCode, String) {
    let (status, key) = match refusal {
        ReplayRefusal::NotFound(_) => (StatusCode::NOT_FOUND, "replay_not_found"),
        ReplayRefusal::AlreadyReplayed(_) => (StatusCode::CONFLICT, "replay_already"),
        ReplayRefusal::Discarded(_) => (StatusCode::CONFLICT, "replay_discarded"),
        ReplayRefusal::NotReplayable { .. } => (StatusCode::CONFLICT, "replay_not_replayable"),
        ReplayRefusal::HeadersOnly(_) => (StatusCode::CONFLICT, "replay_headers_only"),
        ReplayRefusal::RawRemoved(_) => (StatusCode::CONFLICT, "replay_raw_removed"),
    };
    (status, pages::word(locale, key))
}

/// Replays `id` and says on the quarantine page what happened; `before`
/// are lines already said (a share that came first).
async fn replay_and_say(
    state: &WebState,
    viewer: &Viewer,
    id: i64,
    mut lines: Vec<String>,
) -> Result<Response, WebError> {
    let locale = viewer.locale();
    match state.inner.replay.replay(id).await? {
        Ok(report) => {
            tracing::info!(log = id, by = %viewer.user.email, outcome = %report.outcome, "replayed from the portal");
            lines.push(replayed_words(locale, id, &report));
            let kind = if report.outcome.is_accepted() {
                "ok"
            } else {
                "warning"
            };
            quarantine_page(state, viewer, Some(notice(kind, lines)), StatusCode::OK).await
        }
        Err(refusal) => {
            let (status, text) = replay_refused_words(locale, &refusal);
            lines.push(text);
            quarantine_page(state, viewer, Some(notice("error", lines)), status).await
        }
    }
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
    replay_and_say(&state, &viewer, id, Vec::new()).await
}

/// `POST /staff/quarantine/{id}/share-and-replay`: for a stranger's reply to
/// a ticket. Shares the ticket with its sender as this staff member's
/// `#share` would (the same command, so the same rule: a registered
/// address only), then replays it, which now finds them a follower.
pub async fn share_and_replay(
    State(state): State<WebState>,
    Staff(viewer): Staff,
    Path(id): Path<i64>,
    req: Request,
) -> Result<Response, WebError> {
    form::read(req, Some(&viewer.csrf), 16 * 1024, state.inner.form_limits).await?;
    let locale = viewer.locale();
    let row = state.store().log_row(id).await?.ok_or(WebError::NotFound)?;
    let target = match share_target(&row) {
        _ if row.superseded => Err("replay_already"),
        _ if row.discarded_at.is_some() => Err("replay_discarded"),
        Some(target) => Ok(target),
        None => Err("share_not_possible"),
    };
    let (ticket, sender) = match target {
        Ok(target) => target,
        Err(key) => {
            let said = notice("error", vec![pages::word(locale, key)]);
            return quarantine_page(&state, &viewer, Some(said), StatusCode::CONFLICT).await;
        }
    };
    let author = Author {
        user: &viewer.user,
        proven: true,
    };
    let shared = state
        .tickets()
        .apply(ticket, &author, &[Command::Share(vec![sender.clone()])])
        .await?;
    if let Err(refusal) = shared {
        let key = match refusal {
            Refusal::NotFound(_) => "share_unregistered",
            _ => "share_refused",
        };
        let text = pages::word(locale, key)
            .replace("{email}", sender.as_str())
            .replace("{ticket}", &ticket.to_string());
        return quarantine_page(
            &state,
            &viewer,
            Some(notice("error", vec![text])),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    tracing::info!(log = id, ticket, with = %sender, by = %viewer.user.email, "shared from the quarantine");
    let shared = pages::word(locale, "shared_with_sender")
        .replace("{email}", sender.as_str())
        .replace("{ticket}", &ticket.to_string());
    replay_and_say(&state, &viewer, id, vec![shared]).await
}

/// `POST /staff/quarantine/{id}/discard`: no longer pending, kept with its
/// raw text for the record (`ticketgate messages discard`, `POST
/// /api/messages/{id}/discard`).
pub async fn discard(
    State(state): State<WebState>,
    Staff(viewer): Staff,
    Path(id): Path<i64>,
    req: Request,
) -> Result<Response, WebError> {
    form::read(req, Some(&viewer.csrf), 16 * 1024, state.inner.form_limits).await?;
    let locale = viewer.locale();
    let (kind, key, status) = match manage::discard_message(state.store().as_ref(), id).await {
        Ok(_) => {
            tracing::info!(log = id, by = %viewer.user.email, "discarded from the portal");
            ("ok", "discarded", StatusCode::OK)
        }
        Err(ManageError::NotFound(_)) => return Err(WebError::NotFound),
        Err(ManageError::Store(e)) => return Err(WebError::Store(e)),
        Err(_) => ("error", "discard_not_pending", StatusCode::CONFLICT),
    };
    let text = pages::word(locale, key).replace("{id}", &id.to_string());
    quarantine_page(&state, &viewer, Some(notice(kind, vec![text])), status).await
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
    // Looked up by key: a page of every user must not scan every
    // organization (or every user) once per row.
    let org_names: HashMap<&str, &str> = orgs
        .iter()
        .map(|o| (o.slug.as_str(), o.name.as_str()))
        .collect();
    let user_names: HashMap<&str, &str> = users
        .iter()
        .map(|u| (u.email.as_str(), u.name.as_str()))
        .collect();
    let org_name = |slug: &Option<String>| {
        slug.as_deref()
            .map(|slug| org_names.get(slug).copied().unwrap_or(slug).to_string())
    };
    let user_name = |email: &str| user_names.get(email).map(|n| n.to_string());
    let page = pages::render(
        "people.html",
        viewer.locale(),
        context! {
            viewer => viewer_ctx(viewer), message => message,
            orgs => orgs.iter().map(|o| context! { slug => o.slug.clone(), name => o.name.clone(),
                domains => o.domains.clone(),
                leads => o.leads.iter().map(|l| context! { email => l.clone(), name => user_name(l) }).collect::<Vec<_>>(),
            }).collect::<Vec<_>>(),
            users => users.iter().map(|u| context! { email => u.email.to_string(), name => u.name.clone(),
                key => crate::domain::template::encode_path(u.email.as_str()),
                role => u.role.as_str(), org => u.org.clone(), org_name => org_name(&u.org),
                locale => u.locale.clone(), active => u.active,
                me => u.id == viewer.user.id }).collect::<Vec<_>>(),
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
                ManageError::Exists(_) | ManageError::Conflict(_) => StatusCode::CONFLICT,
                ManageError::NotFound(_) => StatusCode::NOT_FOUND,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            let message = context! { kind => "error", text => pages::word(viewer.locale(), "not_changed"),
            lines => vec![e.to_string()] };
            people_page(state, viewer, Some(message), status).await
        }
    }
}

/// `POST /staff/people/{email}` (`name`, `role`, `org`, `locale`, `active`):
/// edits a user; a field left out stays, an empty `org` takes them out of
/// their organization. Nobody deactivates themselves, and the last active
/// staff member stays staff (`manage::edit_user`).
pub async fn edit_user(
    State(state): State<WebState>,
    Staff(viewer): Staff,
    Path(email): Path<String>,
    req: Request,
) -> Result<Response, WebError> {
    let form = form::read(req, Some(&viewer.csrf), 16 * 1024, state.inner.form_limits).await?;
    let locale = viewer.locale();
    let role = match form.raw("role").map(str::trim) {
        None => Ok(None),
        Some(r) => r
            .parse::<Role>()
            .map(Some)
            .map_err(|e| ManageError::Invalid(e.to_string())),
    };
    let active = match form.raw("active").map(str::trim) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(other) => Err(ManageError::Invalid(format!(
            "active must be true or false, not {other:?}"
        ))),
    };
    let org = form
        .raw("org")
        .map(|o| Some(o.trim()).filter(|o| !o.is_empty()));
    let result = match (role, active) {
        (Ok(role), Ok(active)) => {
            manage::edit_user(
                state.store().as_ref(),
                &email,
                &UserEdit {
                    name: form.raw("name"),
                    role,
                    locale: form.raw("locale"),
                    org,
                    active,
                    by: Some(viewer.user.id),
                },
            )
            .await
        }
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    let result = result.map(|u| {
        let key = if u.active { "user_edited" } else { "user_edited_inactive" };
        tracing::info!(user = %u.email, by = %viewer.user.email, active = u.active, "user edited from the portal");
        pages::word(locale, key)
            .replace("{name}", &u.name)
            .replace("{email}", u.email.as_str())
    });
    said(&state, &viewer, result).await
}

/// `POST /staff/orgs` (`name`, `domains`: separated by commas or spaces):
/// a new organization; senders from its domains join it on first contact.
pub async fn add_org(
    State(state): State<WebState>,
    Staff(viewer): Staff,
    req: Request,
) -> Result<Response, WebError> {
    let form = form::read(req, Some(&viewer.csrf), 16 * 1024, state.inner.form_limits).await?;
    let domains: Vec<String> = form
        .raw("domains")
        .unwrap_or_default()
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|d| !d.is_empty())
        .map(str::to_string)
        .collect();
    let result = match manage::add_org(
        state.store().as_ref(),
        form.raw("name").unwrap_or_default(),
        &domains,
    )
    .await
    {
        Err(ManageError::Store(crate::store::StoreError::Conflict(_))) => Err(ManageError::Exists(
            pages::word(viewer.locale(), "org_exists"),
        )),
        other => other,
    }
    .map(|o| {
        tracing::info!(org = %o.slug, by = %viewer.user.email, "organization added from the portal");
        pages::word(viewer.locale(), "org_added").replace("{org}", &o.name)
    });
    said(&state, &viewer, result).await
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
