//! The signed-in person's own page: the name people see on their comments
//! and in mail, and the language of their pages and of every mail sent to
//! them (the outbox reads the stored `locale` when it renders).

use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;

use super::session::Viewer;
use super::tickets::{DoneQuery, viewer_ctx};
use super::{WebError, WebState, form, pages};
use crate::domain::clean::{self, NameProblem};
use crate::domain::locale::Locale;
use crate::store::UserChange;

/// `GET /profile`; `?done=profile` after a save says so (`role="status"`),
/// in the language just chosen.
pub async fn show(viewer: Viewer, Query(q): Query<DoneQuery>) -> Result<Response, WebError> {
    let saved = q.done() == Some("profile");
    let name = viewer.user.name.clone();
    page(&viewer, viewer.locale(), &name, saved, None, StatusCode::OK)
}

/// `POST /profile` (`csrf`, `name`, `locale`): a name cleaned as names from
/// mail are (`clean::person_name`) and a shipped language; anything else
/// shows the form again, as typed, with what to change.
pub async fn save(
    State(state): State<WebState>,
    viewer: Viewer,
    req: Request,
) -> Result<Response, WebError> {
    let form = form::read(req, Some(&viewer.csrf), 16 * 1024, state.inner.form_limits).await?;
    let typed = form.raw("name").unwrap_or_default();
    let locale = form.get("locale").and_then(Locale::parse);
    let refused = |key: &str| {
        page(
            &viewer,
            viewer.locale(),
            typed,
            false,
            Some(pages::word(viewer.locale(), key)),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
    };
    let name = match clean::person_name(typed) {
        Ok(name) => name,
        Err(NameProblem::Empty) => return refused("profile_name_missing"),
        Err(NameProblem::TooLong) => return refused("profile_name_too_long"),
    };
    let Some(locale) = locale else {
        return refused("profile_bad_locale");
    };
    let change = UserChange {
        name: Some(name),
        locale: Some(locale.as_str().to_string()),
        ..Default::default()
    };
    if !state.store().update_user(viewer.user.id, &change).await? {
        return Err(WebError::NotFound);
    }
    tracing::info!(user = %viewer.user.email, locale = locale.as_str(), "profile saved in the portal");
    Ok(Redirect::to("/profile?done=profile").into_response())
}

/// The profile form in `locale`, with `name` in its box and the stored
/// language chosen.
fn page(
    viewer: &Viewer,
    locale: Locale,
    name: &str,
    saved: bool,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let languages: Vec<_> = Locale::ALL
        .iter()
        .map(|l| {
            context! { value => l.as_str(), label => l.native_name(),
            selected => *l == viewer.locale() }
        })
        .collect();
    let page = pages::render(
        "profile.html",
        locale,
        context! {
            viewer => viewer_ctx(viewer), name => name, languages => languages,
            saved => saved, error => error, max_name => clean::NAME_MAX_CHARS,
        },
    )?;
    Ok((status, page).into_response())
}
