//! Ticket pages: the list (a customer's own and their organization's; the
//! staff queue with filters), a new ticket, one ticket with its
//! conversation, and the forms that change it. Each change is one call to
//! `tickets::Service`, with `source` `web`; a refusal is shown on the page
//! in the viewer's words.

use axum::Json;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::session::Viewer;
use super::{Path, WebError, WebState, form, history, pages};
use crate::domain::clean;
use crate::domain::ids::{CommentId, EmailAddress, TicketId};
use crate::domain::locale::Locale;
use crate::domain::mail::Attachment;
use crate::domain::mentions;
use crate::domain::terms::close_reason_label;
use crate::domain::ticket::{self, CloseReason, Priority, Role, Status};
use crate::domain::version::Version;
use crate::store::{CommentSource, OwnerFilter, TicketFilter, TicketState, User, Visibility};
use crate::tickets::{Assignee, Command, MoveTarget};
use crate::tickets::{Author, Refusal, Typed, access, actor};
use time::OffsetDateTime;

const PAGE: i64 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    priority: Option<String>,
    org: Option<String>,
    q: Option<String>,
    /// Staff: `me`, `none` (unassigned) or an owner's address.
    owner: Option<String>,
    /// Staff: `true` for tickets with a clock past due only.
    breached: Option<String>,
    /// Staff: `updated` (the default) or `due`.
    sort: Option<String>,
    /// 1-based; pages of `PAGE`.
    page: Option<u32>,
}

/// How near a clock is to its due time, said in words on the pages
/// (docs/contract.md, "Desk").
const SOON: time::Duration = time::Duration::hours(2);

/// A due time for people: when, in the reader's words, and whether it is
/// past (`breached`) or within `SOON` (`soon`).
fn due_ctx(
    state: &WebState,
    stored: &str,
    now: OffsetDateTime,
    locale: Locale,
) -> minijinja::Value {
    let at = crate::store::time_text::parse_ts(stored);
    let state_word = match at {
        Some(at) if at <= now => Some("breached"),
        Some(at) if at - now <= SOON => Some("soon"),
        _ => None,
    };
    context! {
        at => local_time(state, stored, locale), state => state_word,
        says => state_word.map(|w| pages::word(locale, &format!("due_{w}"))),
    }
}

/// The clock a ticket waits on: the response until answered, then the
/// resolution; none once closed (as `LIST_TICKETS_BY_DUE` orders them).
fn next_due(t: &crate::store::TicketSummary) -> Option<&str> {
    if !t.status.is_open() {
        return None;
    }
    match (&t.responded_at, &t.response_due) {
        (None, Some(due)) => Some(due),
        _ => t.resolve_due.as_deref(),
    }
}

/// A staff member's name from the directory, else the address.
fn person_name(people: &[User], email: &str) -> String {
    people
        .iter()
        .find(|u| u.email.as_str() == email)
        .map_or_else(|| email.to_string(), |u| u.name.clone())
}

fn blank(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// `GET /tickets`: a customer's tickets (created, followed, their
/// organization's); for staff the queue. Open ones by default, last update
/// first, searchable by subject, in numbered pages of `PAGE`.
pub async fn list(
    State(state): State<WebState>,
    viewer: Viewer,
    Query(q): Query<ListQuery>,
) -> Result<Response, WebError> {
    let locale = viewer.locale();
    let page = q.page.unwrap_or(1).max(1);
    let mut filter = TicketFilter {
        // One more than a page tells whether a next page exists.
        limit: Some(PAGE + 1),
        newest_first: true,
        skip: i64::from(page - 1) * PAGE,
        // A search longer than any subject finds nothing anyway.
        text: blank(&q.q).map(|s| s.chars().take(200).collect()),
        ..Default::default()
    };
    // `open` (the default), `closed` (with Closed - Escalated), `all`; staff
    // may also name one status (`blocked`).
    let shown = blank(&q.status).unwrap_or("open");
    match shown {
        "open" => filter.open = Some(true),
        "closed" => filter.open = Some(false),
        "all" => {}
        one if viewer.is_staff() => filter.status = one.parse::<Status>().ok(),
        _ => filter.open = Some(true),
    }
    let owner = blank(&q.owner);
    let breached = blank(&q.breached) == Some("true");
    let by_due = blank(&q.sort) == Some("due");
    let now = OffsetDateTime::now_utc();
    if viewer.is_staff() {
        filter.priority = blank(&q.priority).and_then(|p| p.parse::<Priority>().ok());
        filter.org = blank(&q.org).map(str::to_string);
        filter.owner = match owner {
            Some("me") => Some(OwnerFilter::Is(viewer.user.email.clone())),
            Some("none") => Some(OwnerFilter::Nobody),
            Some(email) => EmailAddress::parse(email).ok().map(OwnerFilter::Is),
            None => None,
        };
        filter.breached_at = breached.then_some(now);
        if by_due {
            filter.by_due = true;
            filter.newest_first = false;
        }
    } else {
        filter.visible_to = Some(Visibility {
            user: viewer.user.id,
            org: viewer.user.org_id,
        });
    }
    let mut tickets = state.store().list_tickets(&filter).await?;
    let more = tickets.len() as i64 > PAGE;
    tickets.truncate(PAGE as usize);
    let policy = state.tickets().policy();
    // Owners by name, and whom the owner filter offers: staff only read them.
    let team: Vec<User> = if viewer.is_staff() {
        support_team(&state).await?
    } else {
        Vec::new()
    };
    let rows: Vec<_> = tickets
        .iter()
        .map(|t| {
            let desk = viewer.is_staff().then(|| {
                context! {
                    owner => t.owner.as_deref().map(|o| person_name(&team, o)),
                    due => next_due(t).map(|d| due_ctx(&state, d, now, locale)),
                }
            });
            context! {
                id => t.id, subject => t.subject.clone(), status => t.status.as_str(),
                status_label => policy.label(t.status, locale),
                priority => t.priority.map(|p| p.as_str().to_uppercase()),
                requester => t.requester.clone(), requester_name => crate::people::shown_name(&t.requester, &t.requester_name, locale),
                org => t.org_name.clone(),
                updated_at => local_time(&state, &t.updated_at, locale),
                desk => desk,
            }
        })
        .collect();
    let link = |to: u32| {
        let mut query = Vec::new();
        for (name, value) in [
            ("status", &q.status),
            ("priority", &q.priority),
            ("org", &q.org),
            ("q", &q.q),
            ("owner", &q.owner),
            ("breached", &q.breached),
            ("sort", &q.sort),
        ] {
            if let Some(v) = blank(value) {
                query.push((name, v.to_string()));
            }
        }
        if to > 1 {
            query.push(("page", to.to_string()));
        }
        format!(
            "/tickets?{}",
            serde_urlencoded::to_string(&query).unwrap_or_default()
        )
    };
    let next_link = more.then(|| link(page + 1));
    let prev_link = (page > 1).then(|| link(page - 1));
    let orgs = if viewer.is_staff() {
        state.store().list_orgs().await?
    } else {
        Vec::new()
    };
    let statuses = status_options(&state, locale);
    let body = pages::render(
        "tickets.html",
        locale,
        context! {
            viewer => viewer_ctx(&viewer), tickets => rows, next => next_link, prev => prev_link, page,
            statuses => statuses, priorities => priority_options(),
            orgs => orgs.iter().map(|o| context! { slug => o.slug.clone(), name => o.name.clone() }).collect::<Vec<_>>(),
            team => team.iter().filter(|u| u.active).map(|u| context! { email => u.email.as_str(), name => u.name.clone() }).collect::<Vec<_>>(),
            filter => context! { status => shown, priority => blank(&q.priority),
                org => blank(&q.org), q => blank(&q.q), owner => owner, breached => breached,
                sort => if by_due { "due" } else { "updated" } },
            filtered => blank(&q.q).is_some() || (viewer.is_staff() && (blank(&q.priority).is_some()
                || blank(&q.org).is_some() || owner.is_some() || breached)),
        },
    )?;
    Ok(body.into_response())
}

fn status_options(state: &WebState, locale: Locale) -> Vec<minijinja::Value> {
    policy_statuses(state, locale)
        .into_iter()
        .map(|(s, label)| context! { value => s.as_str(), label => label })
        .collect()
}

/// Every status with its label in `locale`, in order.
fn policy_statuses(state: &WebState, locale: Locale) -> Vec<(Status, String)> {
    state.tickets().policy().terms.statuses(locale)
}

fn priority_options() -> Vec<&'static str> {
    vec!["P1", "P2", "P3", "P4"]
}

pub(super) fn viewer_ctx(viewer: &Viewer) -> minijinja::Value {
    context! {
        name => viewer.user.name.clone(), email => viewer.user.email.to_string(),
        staff => viewer.is_staff(), csrf => viewer.csrf.clone(), org => viewer.user.org.clone(),
    }
}

/// A stored time as the reader reads dates, in the configured time zone.
pub(super) fn local_time(state: &WebState, stored: &str, locale: Locale) -> String {
    match crate::store::time_text::parse_ts(stored) {
        Some(at) => {
            crate::domain::dates::format(at, locale.as_str(), &state.tickets().policy().timezone)
        }
        None => stored.to_string(),
    }
}

/// `GET /tickets/new`.
pub async fn new_form(viewer: Viewer) -> Result<Response, WebError> {
    Ok(pages::render(
        "new.html",
        viewer.locale(),
        context! { viewer => viewer_ctx(&viewer) },
    )?
    .into_response())
}

/// The form's files as attachments, moved out of it (an upload may be as
/// large as an email: it is not copied).
fn uploads(form: &mut form::Form) -> (Vec<Attachment>, Vec<String>) {
    let files: Vec<Attachment> = std::mem::take(&mut form.files)
        .into_iter()
        .map(|f| Attachment {
            // As mail intake does (domain::clean): no path, no bidi or
            // invisible characters, at most 255 bytes.
            filename: clean::file_name(&f.filename),
            content_type: f.content_type,
            data: f.data,
        })
        .collect();
    let shas = files
        .iter()
        .map(|f| crate::store::sha256_hex(&f.data))
        .collect();
    (files, shas)
}

/// `POST /tickets`: opens a ticket as an email to support would
/// (acknowledgement, the team's notice, rules).
pub async fn create(
    State(state): State<WebState>,
    viewer: Viewer,
    req: Request,
) -> Result<Response, WebError> {
    let mut form = form::read(
        req,
        Some(&viewer.csrf),
        state.inner.max_body,
        state.inner.form_limits,
    )
    .await?;
    let (files, shas) = uploads(&mut form);
    // Cleaned as a mail's subject is (domain::clean): one line, no bidi or
    // invisible characters, at most 250 characters.
    let subject = clean::subject(form.get("subject").unwrap_or_default());
    let body = form.raw("body").unwrap_or_default().trim_end();
    if subject.is_empty() || (body.trim().is_empty() && files.is_empty()) {
        let page = pages::render(
            "new.html",
            viewer.locale(),
            context! { viewer => viewer_ctx(&viewer), error => pages::word(viewer.locale(), "new_missing"),
            subject => subject, body => body },
        )?;
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    }
    let typed = typed(&viewer.user, body, false, &files, &shas);
    let added = state.tickets().open(&subject, &typed).await?;
    match added {
        Ok(added) if !added.failures.is_empty() => {
            // The ticket is open; the mentions that found nobody are said
            // here, as a mail's are in its notice.
            let message = mentions_failed(viewer.locale(), "new_mentions_failed", &added.failures);
            let id = added.state.id;
            ticket_page(&state, &viewer, id, Some(message), StatusCode::CREATED).await
        }
        Ok(added) => {
            Ok(Redirect::to(&format!("/tickets/{}?done=new", added.state.id)).into_response())
        }
        Err(refusal) => Err(WebError::BadRequest(refusal.to_string())),
    }
}

/// What a portal user wrote: signed in through a link sent to their own
/// address, they are proven as a reply to their own notification is.
fn typed<'a>(
    user: &'a User,
    body: &'a str,
    internal: bool,
    files: &'a [Attachment],
    shas: &'a [String],
) -> Typed<'a> {
    Typed {
        author: user,
        source: CommentSource::Web,
        body,
        internal,
        attachments: files,
        attachment_shas: shas,
    }
}

/// The ticket if `viewer` may see it; otherwise not found, whatever the
/// reason, so that ticket numbers reveal nothing.
async fn visible(state: &WebState, viewer: &Viewer, id: TicketId) -> Result<TicketState, WebError> {
    match state.store().ticket_access(id).await? {
        Some(t) if ticket::may_comment(&actor(&viewer.user), &access(&t)) => Ok(t),
        _ => Err(WebError::NotFound),
    }
}

/// What the page says was done (`?done=`), after the redirect of a form.
#[derive(Debug, Deserialize)]
pub struct DoneQuery {
    done: Option<String>,
}

impl DoneQuery {
    pub fn done(&self) -> Option<&str> {
        self.done.as_deref()
    }
}

/// A ticket page's query: what the form before did, and which comments.
#[derive(Debug, Deserialize)]
pub struct ShowQuery {
    done: Option<String>,
    /// Show the comments before this one (the "earlier comments" link).
    before: Option<CommentId>,
}

/// Comments a ticket page shows at once, the newest; earlier ones are a
/// link away, so a page costs the same however long the thread.
const PAGE_COMMENTS: i64 = 100;

/// The actions a page confirms, each with its `done_<action>` words.
const CONFIRMED: &[&str] = &[
    "new",
    "comment",
    "share",
    "unshare",
    "share-org",
    "unshare-org",
    "follow",
    "unfollow",
    "status",
    "priority",
    "release",
    "owner",
    "close",
    "merge",
    "move",
];

/// `GET /tickets/{id}`; `?done=ACTION` says what the form before did, in an
/// element with `role="status"`.
pub async fn show(
    State(state): State<WebState>,
    viewer: Viewer,
    Path(id): Path<TicketId>,
    Query(q): Query<ShowQuery>,
) -> Result<Response, WebError> {
    visible(&state, &viewer, id).await?;
    let message = q
        .done
        .as_deref()
        .filter(|d| CONFIRMED.contains(d))
        .map(|done| {
            context! { kind => "ok", text => pages::word(viewer.locale(), &format!("done_{done}")),
            lines => Vec::<String>::new() }
        });
    ticket_page_at(&state, &viewer, id, message, StatusCode::OK, None, q.before).await
}

/// The ticket page, with `message` (a refusal, a warning) above it.
async fn ticket_page(
    state: &WebState,
    viewer: &Viewer,
    id: TicketId,
    message: Option<minijinja::Value>,
    status: StatusCode,
) -> Result<Response, WebError> {
    ticket_page_with(state, viewer, id, message, status, None).await
}

/// [`ticket_page`] with `draft` already in its comment box.
async fn ticket_page_with(
    state: &WebState,
    viewer: &Viewer,
    id: TicketId,
    message: Option<minijinja::Value>,
    status: StatusCode,
    draft: Option<&str>,
) -> Result<Response, WebError> {
    ticket_page_at(state, viewer, id, message, status, draft, None).await
}

/// [`ticket_page_with`] showing the comments before `before` (the newest
/// page when `None`).
async fn ticket_page_at(
    state: &WebState,
    viewer: &Viewer,
    id: TicketId,
    message: Option<minijinja::Value>,
    status: StatusCode,
    draft: Option<&str>,
    before: Option<CommentId>,
) -> Result<Response, WebError> {
    let locale = viewer.locale();
    let facts = visible(state, viewer, id).await?;
    let page = crate::store::CommentPage {
        limit: Some(PAGE_COMMENTS),
        before,
    };
    let view = state
        .store()
        .ticket_page(id, page)
        .await?
        .ok_or(WebError::NotFound)?;
    // The page offers only what the same pure rules that judge a change
    // allow this reader, so a page and a refusal never disagree.
    let me = actor(&viewer.user);
    let access = access(&facts);
    let removable = |email: &str| {
        facts
            .followers
            .iter()
            .find(|f| f.email.as_str() == email)
            .is_some_and(|f| ticket::may_remove_follower(&me, &access, f.user).is_ok())
    };
    let statuses: Vec<minijinja::Value> = policy_statuses(state, locale)
        .into_iter()
        .filter(|(s, _)| *s == view.status || ticket::may_set_status(&me, &access, view.status, *s))
        .map(|(s, label)| context! { value => s.as_str(), label => label })
        .collect();
    let policy = state.tickets().policy();
    let staff = viewer.is_staff();
    let announced = view.announced();
    let names = history::Names::of(state, &view).await?;
    // The support team, for owners' names and the owner form, read before
    // the history's lines: an await after their closure keeps the page's
    // future from being Send.
    let team: Option<Vec<User>> = if ticket::may_assign(&me) {
        Some(support_team(state).await?)
    } else {
        None
    };
    let shown: Vec<&crate::store::CommentView> = view
        .comments
        .iter()
        .filter(|c| staff || !c.internal)
        .collect();
    let last_comment = shown.last().map(|c| c.id);
    let comment = |c: &crate::store::CommentView| {
        // A priority or release announcement, in the reader's language.
        let event = announced.get(&c.id);
        let body = event
            .and_then(|e| policy.terms.reword(e, locale).announcement(locale))
            .unwrap_or_else(|| c.body.clone());
        context! {
            id => c.id, author => c.author.clone(), author_name => crate::people::shown_name(&c.author, &c.author_name, locale), body => body,
            internal => c.internal, redacted => c.redacted, source => c.source.as_str(), created_at => local_time(state, &c.created_at, locale),
            event => event.map(|e| e.kind()), latest => Some(c.id) == last_comment,
            attachments => c.attachments.iter().map(|a| context! {
                id => a.id, filename => a.filename.clone(), size => a.size,
            }).collect::<Vec<_>>(),
        }
    };
    // Comments and history lines in time order; at the same instant the
    // comment first (a reply that carries `#status closed`).
    let mut entries = Vec::new();
    let mut lines = view
        .events
        .iter()
        .filter_map(|e| {
            let (kind, text) =
                history::line(view.id, e, locale, &names, |s| policy.label(s, locale))?;
            Some((e.created_at.as_str(), kind, text))
        })
        .peekable();
    for c in shown {
        while let Some((at, kind, text)) = lines.next_if(|(at, _, _)| *at < c.created_at.as_str()) {
            entries.push(context! { kind => kind, text => text, created_at => local_time(state, at, locale) });
        }
        entries.push(context! { comment => comment(c) });
    }
    for (at, kind, text) in lines {
        entries.push(
            context! { kind => kind, text => text, created_at => local_time(state, at, locale) },
        );
    }
    let sla = view
        .priority
        .and_then(|p| policy.terms.sla_in(p, locale))
        .map(|(name, response)| context! { name => name, response => response });
    // The desk (owner, clocks, owner form) is shown to whom may assign.
    let desk = if let Some(team) = team {
        let now = OffsetDateTime::now_utc();
        let open = view.status.is_open();
        Some(context! {
            owner => view.owner.as_deref().map(|o| person_name(&team, o)),
            owner_email => view.owner.clone(),
            mine => view.owner.as_deref() == Some(viewer.user.email.as_str()),
            responded_at => view.responded_at.as_deref().map(|at| local_time(state, at, locale)),
            response_due => view.response_due.as_deref().filter(|_| open && view.responded_at.is_none())
                .map(|d| due_ctx(state, d, now, locale)),
            resolve_due => view.resolve_due.as_deref().filter(|_| open).map(|d| due_ctx(state, d, now, locale)),
            paused => view.status == Status::Blocked && view.priority.is_some(),
            team => team.iter().filter(|u| u.active || view.owner.as_deref() == Some(u.email.as_str()))
                .map(|u| context! { email => u.email.as_str(), name => u.name.clone() }).collect::<Vec<_>>(),
        })
    } else {
        None
    };
    // Close as…: offered when the reader may close and give more reasons
    // than what a bare close records for them.
    let close_reasons: Vec<minijinja::Value> = if ticket::may_set_status(
        &me,
        &access,
        view.status,
        Status::Closed,
    ) {
        CloseReason::ALL
                .iter()
                .filter(|r| ticket::may_give_close_reason(&me, **r))
                .map(|r| {
                    let chosen = view.close_reason.unwrap_or(CloseReason::Resolved);
                    context! { value => r.as_str(), label => close_reason_label(*r, locale), selected => *r == chosen }
                })
                .collect()
    } else {
        Vec::new()
    };
    let close_reason = view
        .close_reason
        .filter(|_| view.status == Status::Closed)
        .map(|r| close_reason_label(r, locale));
    let page = pages::render(
        "ticket.html",
        locale,
        context! {
            viewer => viewer_ctx(viewer),
            ticket => context! {
                id => view.id, subject => view.subject, status => view.status.as_str(),
                status_label => policy.label(view.status, locale),
                status_help => pages::word(locale, &format!("status_help_{}", view.status.as_str())),
                priority => view.priority.map(|p| p.as_str().to_uppercase()), sla => sla,
                close_reason => close_reason, desk => desk, merged_into => view.merged_into,
                release => view.release.clone(), requester => view.requester.clone(),
                requester_name => view.followers.iter().find(|f| f.email == view.requester).map(|f| crate::people::shown_name(&f.email, &f.name, locale)),
                followers => view.followers.iter().map(|f| context! {
                    email => f.email.clone(), name => crate::people::shown_name(&f.email, &f.name, locale), source => f.source.as_str(),
                    creator => f.email == view.requester, removable => removable(&f.email),
                }).collect::<Vec<_>>(),
                orgs => view.orgs.iter().map(|slug| context! { slug => slug, name => names.org(slug) })
                    .collect::<Vec<_>>(),
                own_org_on => viewer.user.org.as_ref().is_some_and(|own| view.orgs.contains(own)),
                following => view.followers.iter().any(|f| f.email == viewer.user.email.as_str()),
                may_unfollow => ticket::may_remove_follower(&me, &access, viewer.user.id).is_ok(),
                created_at => local_time(state, &view.created_at, locale),
            },
            entries => entries,
            // The first comment's id when earlier ones were left out.
            earlier => view.comments.first().filter(|_| view.earlier_comments).map(|c| c.id),
            paged => before.is_some(),
            draft => draft,
            // Only the current status when the reader may set none other:
            // then no form.
            statuses => if statuses.len() > 1 { statuses } else { Vec::new() },
            priorities => priority_options(),
            close_reasons => if close_reasons.len() > 1 { close_reasons } else { Vec::new() },
            message => message,
        },
    )?;
    Ok((status, page).into_response())
}

/// `POST /tickets/{id}/comments`: `body`, `attachments`, staff `internal`.
pub async fn comment(
    State(state): State<WebState>,
    viewer: Viewer,
    Path(id): Path<TicketId>,
    req: Request,
) -> Result<Response, WebError> {
    let form = form::read_keeping_stale(
        req,
        &viewer.csrf,
        state.inner.max_body,
        state.inner.form_limits,
    )
    .await?;
    visible(&state, &viewer, id).await?;
    let mut form = match form {
        Ok(form) => form,
        // Out of date (signed in again elsewhere): the page again, with a
        // fresh token and the text as typed; its files must be chosen again.
        Err(stale) => {
            let message = refusal_message(viewer.locale(), "stale_form", None);
            let draft = stale.raw("body").map(str::to_string);
            return ticket_page_with(
                &state,
                &viewer,
                id,
                Some(message),
                StatusCode::FORBIDDEN,
                draft.as_deref(),
            )
            .await;
        }
    };
    let (files, shas) = uploads(&mut form);
    let body = form.raw("body").unwrap_or_default().trim_end();
    if body.trim().is_empty() && files.is_empty() {
        let message = refusal_message(viewer.locale(), "comment_empty", None);
        return ticket_page(
            &state,
            &viewer,
            id,
            Some(message),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let internal = viewer.is_staff() && form.checked("internal");
    let typed = typed(&viewer.user, body, internal, &files, &shas);
    match state.tickets().comment(id, &typed).await? {
        Ok(added) if !added.failures.is_empty() => {
            // The comment is in; the mentions that found nobody are said here.
            let message = mentions_failed(viewer.locale(), "mentions_failed", &added.failures);
            ticket_page(&state, &viewer, id, Some(message), StatusCode::OK).await
        }
        Ok(_) => Ok(Redirect::to(&format!("/tickets/{id}?done=comment#latest")).into_response()),
        Err(refusal) => {
            let message = refusal_message(viewer.locale(), "refused", Some(refusal.to_string()));
            ticket_page(&state, &viewer, id, Some(message), StatusCode::FORBIDDEN).await
        }
    }
}

/// What was written went in, but these mentions found nobody.
fn mentions_failed(
    locale: Locale,
    key: &str,
    failures: &[crate::tickets::Failure],
) -> minijinja::Value {
    let lines: Vec<String> = failures
        .iter()
        .map(|f| format!("{}: {}", f.command, f.reason))
        .collect();
    context! { kind => "warning", text => pages::word(locale, key), lines => lines }
}

fn refusal_message(locale: Locale, key: &str, detail: Option<String>) -> minijinja::Value {
    context! { kind => "error", text => pages::word(locale, key), lines => detail.into_iter().collect::<Vec<_>>() }
}

/// `POST /tickets/{id}/{action}`: follow, unfollow, share, unshare,
/// share-org, unshare-org, status, close (with a `reason`); staff also
/// priority, release, owner (`#assign`, `#unassign`). Each is the email
/// command of the same name, run by the ticket service.
pub async fn act(
    State(state): State<WebState>,
    viewer: Viewer,
    Path((id, action)): Path<(TicketId, String)>,
    req: Request,
) -> Result<Response, WebError> {
    let form = form::read(req, Some(&viewer.csrf), 64 * 1024, state.inner.form_limits).await?;
    let ticket = visible(&state, &viewer, id).await?;
    let locale = viewer.locale();
    let say = |key: &str, detail: Option<String>| refusal_message(locale, key, detail);
    let address = |field: &str| -> Result<EmailAddress, minijinja::Value> {
        let text = form.get(field).unwrap_or_default();
        EmailAddress::parse(text).map_err(|_| say("bad_address", Some(text.to_string())))
    };
    let command = match action.as_str() {
        "follow" => Ok(Command::Follow),
        "unfollow" => Ok(Command::Unfollow),
        "share" => match address("email") {
            Ok(to) if viewer.is_staff() && !form.checked("confirm") => {
                // Crossing organizations is a deliberate act: a customer who
                // cannot see the ticket yet, of no organization on it, is
                // shown what sharing means before it happens.
                if let Some(target) = state.store().find_user(&to).await?
                    && target.role == Role::Customer
                    && !ticket::may_comment(&actor(&target), &access(&ticket))
                {
                    let org = match target.org.as_deref() {
                        Some(slug) => state.store().find_org(slug).await?.map(|o| o.name),
                        None => None,
                    };
                    let text = pages::word(
                        locale,
                        if org.is_some() {
                            "share_other_org"
                        } else {
                            "share_outsider"
                        },
                    )
                    .replace("{who}", &format!("{} <{}>", target.name, target.email))
                    .replace("{org}", org.as_deref().unwrap_or_default());
                    let message = context! { kind => "confirm", text => text,
                    action => "share", button => pages::word(locale, "share_anyway"),
                    fields => vec![("email", to.to_string())], lines => Vec::<String>::new() };
                    return ticket_page(&state, &viewer, id, Some(message), StatusCode::OK).await;
                }
                Ok(Command::Share(vec![to]))
            }
            other => other.map(|a| Command::Share(vec![a])),
        },
        "unshare" => address("email").map(|a| Command::Unshare(vec![a])),
        "share-org" | "unshare-org" => match form.get("org") {
            None => Err(say("bad_org", None)),
            Some(org) => {
                let own = viewer.user.org.as_deref() == Some(org);
                if action == "unshare-org" && own && !viewer.is_staff() && !form.checked("confirm")
                {
                    // Their own organization may be how they see the ticket.
                    let message = context! { kind => "confirm", text => pages::word(locale, "unshare_own_org"),
                    action => "unshare-org", button => pages::word(locale, "remove_anyway"),
                    fields => vec![("org", org.to_string())], lines => Vec::<String>::new() };
                    return ticket_page(&state, &viewer, id, Some(message), StatusCode::OK).await;
                }
                Ok(if action == "share-org" {
                    Command::ShareOrg(org.to_string())
                } else {
                    Command::UnshareOrg(org.to_string())
                })
            }
        },
        "status" => match form.get("status").map(str::parse::<Status>) {
            Some(Ok(to)) => {
                if ticket::may_set_status(&actor(&viewer.user), &access(&ticket), ticket.status, to)
                {
                    Ok(Command::Status(to))
                } else {
                    let label = state.tickets().policy().label(to, locale);
                    Err(context! { kind => "error",
                    text => pages::word(locale, "status_not_allowed").replace("{status}", &label),
                    lines => Vec::<String>::new() })
                }
            }
            _ => Err(say("bad_value", None)),
        },
        "priority" => match form.get("priority").map(str::parse::<Priority>) {
            Some(Ok(p)) => Ok(Command::Priority(p)),
            _ => Err(say("bad_value", None)),
        },
        // `me`, `none`, or a staff member's address, as `#assign` takes.
        "owner" => match form.get("owner") {
            Some("me") => Ok(Command::Assign(Assignee::Me)),
            Some("none") => Ok(Command::Unassign),
            Some(text) => EmailAddress::parse(text)
                .map(|to| Command::Assign(Assignee::address(to)))
                .map_err(|_| say("bad_address", Some(text.to_string()))),
            None => Err(say("bad_value", None)),
        },
        // Merge and move are their own service calls, not commands on this ticket.
        "merge" => {
            return merge(&state, &viewer, id, form.get("into")).await;
        }
        "close" => match form.get("reason").map(str::parse::<CloseReason>) {
            Some(Ok(reason)) => Ok(Command::Close(reason)),
            _ => Err(say("bad_value", None)),
        },
        // The parse mail and the API use too (src/domain/version.rs).
        "release" => match form.get("version").map(Version::parse) {
            Some(Ok(v)) => Ok(Command::Release(v)),
            Some(Err(problem)) => Err(say("bad_release", Some(problem.to_string()))),
            None => Err(say("bad_release", None)),
        },
        _ => return Err(WebError::NotFound),
    };
    let command = match command {
        Ok(c) => c,
        Err(message) => {
            return ticket_page(
                &state,
                &viewer,
                id,
                Some(message),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    let author = Author {
        user: &viewer.user,
        proven: true,
    };
    match state.tickets().apply(id, &author, &[command]).await? {
        Ok(_) => {
            // Who left the ticket may no longer see it.
            if visible(&state, &viewer, id).await.is_err() {
                return Ok(Redirect::to("/tickets").into_response());
            }
            Ok(Redirect::to(&format!("/tickets/{id}?done={action}")).into_response())
        }
        Err(refusal) => {
            let (message, status) = refused(locale, &refusal);
            ticket_page(&state, &viewer, id, Some(message), status).await
        }
    }
}

/// The staff, by address (as the owner form lists them).
async fn support_team(state: &WebState) -> Result<Vec<User>, crate::store::StoreError> {
    let mut team = state.store().list_staff().await?;
    team.sort_by(|a, b| a.email.cmp(&b.email));
    Ok(team)
}

/// A refusal of the ticket service as the page says it, with its status.
fn refused(locale: Locale, refusal: &Refusal) -> (minijinja::Value, StatusCode) {
    let (key, status) = match refusal {
        Refusal::Protected(_) => ("creator_protected", StatusCode::CONFLICT),
        Refusal::Conflict(_) => ("refused", StatusCode::CONFLICT),
        Refusal::NotFound(_) => ("not_found_named", StatusCode::UNPROCESSABLE_ENTITY),
        Refusal::Forbidden(_) => ("forbidden_action", StatusCode::FORBIDDEN),
        _ => ("refused", StatusCode::FORBIDDEN),
    };
    (
        refusal_message(locale, key, Some(refusal.to_string())),
        status,
    )
}

/// The ticket page again, saying a field did not read (422).
async fn unreadable(state: &WebState, viewer: &Viewer, id: TicketId) -> Result<Response, WebError> {
    let message = refusal_message(viewer.locale(), "bad_value", None);
    ticket_page(
        state,
        viewer,
        id,
        Some(message),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await
}

/// `POST /tickets/{id}/merge` (`into`: a ticket number): as `#merge-into`;
/// the reader lands on the ticket it went into.
async fn merge(
    state: &WebState,
    viewer: &Viewer,
    id: TicketId,
    into: Option<&str>,
) -> Result<Response, WebError> {
    let locale = viewer.locale();
    let Some(into) = into.and_then(|n| n.trim().trim_start_matches('#').parse::<TicketId>().ok())
    else {
        return unreadable(state, viewer, id).await;
    };
    let author = Author {
        user: &viewer.user,
        proven: true,
    };
    match state.tickets().merge(id, &author, into).await? {
        Ok(_) => Ok(Redirect::to(&format!("/tickets/{into}?done=merge")).into_response()),
        Err(refusal) => {
            let (message, status) = refused(locale, &refusal);
            ticket_page(state, viewer, id, Some(message), status).await
        }
    }
}

/// `POST /tickets/{id}/comments/{comment}/move` (`to`: a ticket number or
/// `new`): as the API's move; the reader lands on the comment's new ticket.
pub async fn move_comment(
    State(state): State<WebState>,
    viewer: Viewer,
    Path((id, comment)): Path<(TicketId, CommentId)>,
    req: Request,
) -> Result<Response, WebError> {
    let form = form::read(req, Some(&viewer.csrf), 16 * 1024, state.inner.form_limits).await?;
    visible(&state, &viewer, id).await?;
    let locale = viewer.locale();
    let to = match form.get("to").map(str::trim) {
        Some(t) if t.eq_ignore_ascii_case("new") => Some(MoveTarget::New),
        Some(t) => t
            .trim_start_matches('#')
            .parse()
            .ok()
            .map(MoveTarget::Ticket),
        None => None,
    };
    let Some(to) = to else {
        return unreadable(&state, &viewer, id).await;
    };
    // Only a comment shown on this page moves from it.
    let view = state
        .store()
        .ticket_view(id)
        .await?
        .ok_or(WebError::NotFound)?;
    if !view.comments.iter().any(|c| c.id == comment) {
        return Err(WebError::NotFound);
    }
    let author = Author {
        user: &viewer.user,
        proven: true,
    };
    match state.tickets().move_comment(comment, &author, to).await? {
        Ok(now_on) => {
            Ok(Redirect::to(&format!("/tickets/{}?done=move", now_on.id)).into_response())
        }
        Err(refusal) => {
            let (message, status) = refused(locale, &refusal);
            ticket_page(&state, &viewer, id, Some(message), status).await
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct MentionQuery {
    #[serde(default)]
    q: String,
}

#[derive(Debug, Serialize)]
pub struct Mentionable {
    email: String,
    name: String,
    handle: String,
}

/// `GET /tickets/{id}/mentionable?q=`: who this viewer may `@`-mention
/// (a customer: their organization and its delivery leads; staff: anyone),
/// for the autocomplete; at most 20, matched on name, address or handle.
pub async fn mentionable(
    State(state): State<WebState>,
    viewer: Viewer,
    Path(id): Path<TicketId>,
    Query(q): Query<MentionQuery>,
) -> Result<Json<Vec<Mentionable>>, WebError> {
    let ticket = visible(&state, &viewer, id).await?;
    mentionable_on(&state, &viewer, &access(&ticket), &q).await
}

/// `GET /tickets/new/mentionable?q=`: the same list for the ticket the
/// viewer is about to open, which their organization will see.
pub async fn mentionable_new(
    State(state): State<WebState>,
    viewer: Viewer,
    Query(q): Query<MentionQuery>,
) -> Result<Json<Vec<Mentionable>>, WebError> {
    let user = &viewer.user;
    let access = crate::domain::ticket::Access {
        requester: user.id,
        followers: vec![user.id],
        orgs: user.org_id.into_iter().collect(),
    };
    mentionable_on(&state, &viewer, &access, &q).await
}

/// Whom the viewer may reach and who can see a ticket with `access`: a
/// mention lets nobody in (`ticket::may_mention`), so the list offers no
/// one the mention would then refuse.
async fn mentionable_on(
    state: &WebState,
    viewer: &Viewer,
    access: &crate::domain::ticket::Access,
    q: &MentionQuery,
) -> Result<Json<Vec<Mentionable>>, WebError> {
    let needle = q.q.trim().trim_start_matches('@').to_lowercase();
    let reachable = state.store().reachable_users(&viewer.user).await?;
    let found = reachable
        .into_iter()
        .filter(|u| u.id != viewer.user.id && ticket::may_mention(&actor(u), access))
        .map(|u| Mentionable {
            handle: mentions::handle(&u.name, &u.email),
            email: u.email.to_string(),
            name: u.name,
        })
        .filter(|m| {
            needle.is_empty()
                || m.name.to_lowercase().contains(&needle)
                || m.email.contains(&needle)
                || m.handle.contains(&needle)
        })
        .take(20)
        .collect();
    Ok(Json(found))
}

/// `GET /tickets/{id}/attachments/{attachment}`: a file of a comment the
/// viewer may read, as a download (never rendered in the portal's origin).
pub async fn attachment(
    State(state): State<WebState>,
    viewer: Viewer,
    Path((id, attachment)): Path<(TicketId, i64)>,
) -> Result<Response, WebError> {
    visible(&state, &viewer, id).await?;
    let view = state
        .store()
        .ticket_view(id)
        .await?
        .ok_or(WebError::NotFound)?;
    let shown = view
        .comments
        .iter()
        .filter(|c| viewer.is_staff() || !c.internal)
        .any(|c| c.attachments.iter().any(|a| a.id == attachment));
    if !shown {
        return Err(WebError::NotFound);
    }
    let (ticket, file) = state
        .store()
        .attachment(attachment)
        .await?
        .ok_or(WebError::NotFound)?;
    if ticket != id {
        return Err(WebError::NotFound);
    }
    let mut res = file.data.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        crate::listen::attachment_disposition(&file.filename),
    );
    Ok(res)
}
