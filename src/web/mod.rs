//! The portal: customers and staff in a browser, on the same
//! rules as email. Pages are rendered on the server (minijinja, escaped)
//! and work without JavaScript; people sign in with one-time links sent by
//! email (no passwords: the product is email-driven); sessions live in the
//! store, and every state-changing request carries the session's CSRF
//! token. Every change goes through `tickets::Service`, exactly as the
//! admin API's handlers do: same permissions, events, mail and rules.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::config::{ListenLimits, Network, Rate, WebSettings};
use crate::domain::locale::Locale;
use crate::store::{Store, StoreError};
use crate::tickets::{Replay, Service};
use session::Viewer;

mod assets;
mod form;
mod history;
mod pages;
mod profile;
mod session;
mod staff;
mod tickets;

pub use session::{ClientLimiter, LINK_TTL};

/// What every portal handler can reach.
#[derive(Clone)]
pub struct WebState {
    inner: Arc<Inner>,
}

struct Inner {
    tickets: Service,
    /// The email channel's one operation staff pages offer: replaying
    /// quarantined mail (`src/tickets/replay.rs`).
    replay: Arc<dyn Replay>,
    /// `[web] base_url` without its trailing `/`: links in emails.
    base_url: String,
    /// `https` base: the session cookie is `Secure`.
    secure: bool,
    session_ttl: Duration,
    login_limit_address: Rate,
    clients: ClientLimiter,
    /// `[web] trusted_proxies`: whose `X-Forwarded-For` names the client.
    trusted_proxies: Vec<Network>,
    /// The largest request body: a new ticket with its attachments may be
    /// as large as an email may be (`[intake] max_message_size`).
    max_body: usize,
    /// `[web] max_fields`, `max_files`: what one form may hold.
    form_limits: form::Limits,
    /// `[web]` timeouts and connection cap, for `serve`.
    listen: ListenLimits,
}

impl WebState {
    /// `replay`: the email channel's (`Ingestor` implements `Replay`).
    pub fn new(
        tickets: Service,
        replay: Arc<dyn Replay>,
        web: &WebSettings,
        max_message_size: u64,
    ) -> Self {
        let base_url = web.base_url.trim().trim_end_matches('/').to_string();
        Self {
            inner: Arc::new(Inner {
                tickets,
                replay,
                secure: base_url.starts_with("https://"),
                base_url,
                session_ttl: web.session_ttl.0,
                login_limit_address: web.login_limit_address,
                clients: ClientLimiter::new(web.login_limit_client),
                trusted_proxies: web.trusted_proxies.clone(),
                max_body: usize::try_from(max_message_size).unwrap_or(usize::MAX),
                form_limits: form::Limits {
                    fields: web.max_fields,
                    files: web.max_files,
                },
                listen: web.limits(),
            }),
        }
    }

    fn tickets(&self) -> &Service {
        &self.inner.tickets
    }

    fn store(&self) -> &Arc<dyn Store> {
        self.inner.tickets.store()
    }
}

/// The portal's routes.
pub fn router(state: WebState) -> Router {
    let max_body = state.inner.max_body;
    Router::new()
        .route("/", get(session::home))
        .route(
            "/login",
            get(session::login_page).post(session::request_link),
        )
        .route(
            "/login/{token}",
            get(session::confirm).post(session::sign_in),
        )
        .route("/logout", post(session::sign_out))
        .route("/profile", get(profile::show).post(profile::save))
        .route("/tickets", get(tickets::list).post(tickets::create))
        .route("/tickets/new", get(tickets::new_form))
        .route("/tickets/new/mentionable", get(tickets::mentionable_new))
        .route("/tickets/{id}", get(tickets::show))
        .route("/tickets/{id}/comments", post(tickets::comment))
        .route(
            "/tickets/{id}/comments/{comment}/move",
            post(tickets::move_comment),
        )
        .route("/tickets/{id}/mentionable", get(tickets::mentionable))
        .route(
            "/tickets/{id}/attachments/{attachment}",
            get(tickets::attachment),
        )
        .route("/tickets/{id}/{action}", post(tickets::act))
        .route("/staff/quarantine", get(staff::quarantine))
        .route("/staff/quarantine/{id}", get(staff::message))
        .route("/staff/quarantine/{id}/replay", post(staff::replay))
        .route(
            "/staff/quarantine/{id}/share-and-replay",
            post(staff::share_and_replay),
        )
        .route("/staff/quarantine/{id}/discard", post(staff::discard))
        .route("/staff/people", get(staff::people))
        .route("/staff/people/{email}", post(staff::edit_user))
        .route("/staff/orgs", post(staff::add_org))
        .route("/staff/users", post(staff::add_user))
        .route("/staff/users/invite", post(staff::invite))
        .route("/staff/leads", post(staff::add_lead))
        .route("/staff/leads/remove", post(staff::remove_lead))
        .route("/assets/{file}", get(assets::serve))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), error_pages))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            same_origin_posts,
        ))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// Serves the portal on `listener` until `cancel` fires, within its `[web]`
/// limits (`src/listen.rs`); meanwhile, every hour, deletes expired sign-in
/// links and sessions.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: WebState,
    cancel: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    let store = state.store().clone();
    let purging = cancel.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tokio::select! {
                _ = purging.cancelled() => return,
                _ = every.tick() => {}
            }
            match store.purge_web(time::OffsetDateTime::now_utc()).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(rows = n, "expired portal links and sessions deleted"),
                Err(e) => tracing::warn!(error = %e, "cannot delete expired portal sessions"),
            }
        }
    });
    let limits = state.inner.listen;
    crate::listen::serve("portal", listener, router(state), limits, cancel).await
}

async fn not_found() -> WebError {
    WebError::NotFound
}

/// No page may be framed, sniffed, cached or leak its URL (a sign-in link
/// holds a token) in a Referer to another site (`same-origin`: the portal
/// itself still gets a Referer and, from older browsers, a real `Origin`
/// rather than `null`, which `same_origin_posts` reads); scripts and styles
/// come only from `/assets/`, so an injected tag would not run.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// A POST from another origin is refused before anything reads it; with
/// the session's CSRF token this guards the sign-in forms too, which have
/// no session yet (login CSRF). A browser says where a request comes from
/// in `Sec-Fetch-Site` (Fetch Metadata): anything but `same-origin` (or
/// `none`, the user's own doing) is refused, `same-site` too, since a
/// sibling host is not the portal. An older browser that sends no
/// `Sec-Fetch-Site` still sends `Origin` with every POST (RFC 6454 §7.3;
/// the pages' `Referrer-Policy: same-origin` keeps it from being `null`),
/// or at least a `Referer`: its origin must be the portal's own,
/// `[web] base_url`. A request with none of the three does not come from a
/// browser's page (curl, a script) and still needs the CSRF token.
async fn same_origin_posts(State(state): State<WebState>, req: Request, next: Next) -> Response {
    if req.method() == Method::POST {
        let h = req.headers();
        let allowed = match h.get("sec-fetch-site").map(|v| v.as_bytes()) {
            Some(site) => {
                site.eq_ignore_ascii_case(b"same-origin") || site.eq_ignore_ascii_case(b"none")
            }
            None => match h.get(header::ORIGIN).or_else(|| h.get(header::REFERER)) {
                None => true,
                Some(claimed) => {
                    let ours = match origin_of(&state.inner.base_url) {
                        Some(origin) => Some(origin),
                        // No base_url: the origin the request was sent to.
                        None => h
                            .get(header::HOST)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|host| origin_of(&format!("http://{host}"))),
                    };
                    let theirs = claimed.to_str().ok().and_then(origin_of);
                    match (ours, theirs) {
                        (Some(ours), Some(theirs)) if state.inner.base_url.is_empty() => {
                            ours.host == theirs.host && ours.port == theirs.port
                        }
                        (Some(ours), Some(theirs)) => ours == theirs,
                        _ => false,
                    }
                }
            },
        };
        if !allowed {
            tracing::info!(
                sec_fetch_site = ?req.headers().get("sec-fetch-site"),
                origin = ?req.headers().get(header::ORIGIN),
                referer = ?req.headers().get(header::REFERER),
                path = %req.uri().path(),
                "portal: cross-origin POST refused"
            );
            return WebError::Forbidden.into_response();
        }
    }
    next.run(req).await
}

/// An origin (RFC 6454 §4): scheme, host and port, the port filled in for
/// `http` and `https` so that `https://a` and `https://a:443` are one.
#[derive(Debug, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

/// The origin of an absolute URL or an `Origin` value; `None` for `null`,
/// a relative reference or anything unparsable.
fn origin_of(url: &str) -> Option<Origin> {
    let (scheme, rest) = url.trim().split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let default = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    // `[v6]:port`, `host:port`, or a host alone.
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, port.parse().ok()?),
        _ => (authority, default),
    };
    Some(Origin {
        scheme,
        host: host.to_ascii_lowercase(),
        port,
    })
}

/// What a portal request can end in besides its page.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// Also a ticket the viewer may not see: 404, never 403, so that
    /// ticket numbers reveal nothing.
    #[error("not found")]
    NotFound,
    /// A missing or wrong CSRF token, a cross-site POST.
    #[error("forbidden")]
    Forbidden,
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("too large")]
    TooLarge,
    /// The request body stopped arriving (`[web] idle_timeout`).
    #[error("request timeout")]
    Timeout,
    #[error("unsupported media type")]
    Unsupported,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An error page to be written in its reader's language, with the
/// navigation: `WebError` leaves it on its response for `error_pages`,
/// which knows the request.
#[derive(Debug, Clone)]
struct ErrorPage {
    key: &'static str,
    detail: Option<String>,
}

/// Renders the error page a handler left (`ErrorPage`) for the person who
/// asked: their language and navigation when signed in, else the language
/// their browser prefers.
async fn error_pages(State(state): State<WebState>, req: Request, next: Next) -> Response {
    let headers = req.headers().clone();
    let res = next.run(req).await;
    let Some(page) = res.extensions().get::<ErrorPage>().cloned() else {
        return res;
    };
    let viewer = Viewer::of(&state, &headers).await.ok().flatten();
    let locale = viewer
        .as_ref()
        .map_or_else(|| session::visitor_locale(&headers), Viewer::locale);
    let viewer = viewer.map(|v| tickets::viewer_ctx(&v));
    let status = res.status();
    match pages::render(
        "error.html",
        locale,
        minijinja::context! { key => page.key, detail => page.detail, viewer => viewer },
    ) {
        Ok(html) => (status, html).into_response(),
        Err(_) => res,
    }
}

/// Path parameters; one that does not parse (`/tickets/abc`) is a page
/// that does not exist, as an unknown ticket is.
pub struct Path<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for Path<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = WebError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|_| WebError::NotFound)
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, key) = match &self {
            WebError::NotFound => (StatusCode::NOT_FOUND, "error_not_found"),
            WebError::Forbidden => (StatusCode::FORBIDDEN, "error_forbidden"),
            WebError::BadRequest(_) => (StatusCode::BAD_REQUEST, "error_bad_request"),
            WebError::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "error_too_large"),
            WebError::Timeout => (StatusCode::REQUEST_TIMEOUT, "error_bad_request"),
            WebError::Unsupported => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "error_bad_request"),
            WebError::Store(e) => {
                tracing::error!(error = %e, "portal request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "error_internal")
            }
        };
        let detail = match &self {
            WebError::BadRequest(d) => Some(d.clone()),
            _ => None,
        };
        // In English here; `error_pages` writes it again for its reader.
        let page = pages::render(
            "error.html",
            Locale::En,
            minijinja::context! { key => key, detail => detail.clone() },
        );
        let mut res = match page {
            Ok(html) => (status, html).into_response(),
            Err(_) => status.into_response(),
        };
        res.extensions_mut().insert(ErrorPage { key, detail });
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_compare_by_scheme_host_and_port() {
        let o = |s: &str| origin_of(s);
        assert_eq!(
            o("https://Portal.example"),
            o("https://portal.example:443/")
        );
        assert_eq!(
            o("http://127.0.0.1:8080"),
            o("http://127.0.0.1:8080/login/tg_x?a=b")
        );
        assert_ne!(o("http://127.0.0.1:8080"), o("http://127.0.0.1:8081"));
        assert_ne!(o("http://portal.example"), o("https://portal.example"));
        assert_ne!(
            o("https://portal.example"),
            o("https://portal.example.evil.test")
        );
        assert_eq!(
            o("http://[::1]:8080/x").map(|x| (x.host, x.port)),
            Some(("[::1]".to_string(), 8080))
        );
        for nothing in [
            "null",
            "",
            "/tickets",
            "ftp://a",
            "http://u@evil.test",
            "http://a:x",
        ] {
            assert_eq!(o(nothing), None, "{nothing:?}");
        }
    }
}
