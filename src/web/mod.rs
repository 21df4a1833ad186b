//! The portal (issue 21): customers and staff in a browser, on the same
//! rules as email. Pages are rendered on the server (minijinja, escaped)
//! and work without JavaScript; people sign in with one-time links sent by
//! email (no passwords: the product is email-driven); sessions live in the
//! store, and every state-changing request carries the session's CSRF
//! token. Every change goes through `tickets::Service`, exactly as the
//! admin API's handlers do: same permissions, events, mail and rules.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::config::{Network, Rate, WebSettings};
use crate::domain::locale::Locale;
use crate::ingest::Ingestor;
use crate::store::{Store, StoreError};
use crate::tickets::Service;

mod assets;
mod form;
mod pages;
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
    /// The email channel, for what only it does (replaying quarantined
    /// mail); its ticket service for everything else.
    ingestor: Ingestor,
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
}

impl WebState {
    pub fn new(ingestor: Ingestor, web: &WebSettings, max_message_size: u64) -> Self {
        let base_url = web.base_url.trim().trim_end_matches('/').to_string();
        Self {
            inner: Arc::new(Inner {
                ingestor,
                secure: base_url.starts_with("https://"),
                base_url,
                session_ttl: web.session_ttl.0,
                login_limit_address: web.login_limit_address,
                clients: ClientLimiter::new(web.login_limit_client),
                trusted_proxies: web.trusted_proxies.clone(),
                max_body: usize::try_from(max_message_size).unwrap_or(usize::MAX),
            }),
        }
    }

    fn tickets(&self) -> &Service {
        self.inner.ingestor.tickets()
    }

    fn store(&self) -> &Arc<dyn Store> {
        self.inner.ingestor.store()
    }
}

/// The portal's routes.
pub fn router(state: WebState) -> Router {
    let max_body = state.inner.max_body;
    Router::new()
        .route("/", get(session::home))
        .route("/login", post(session::request_link))
        .route(
            "/login/{token}",
            get(session::confirm).post(session::sign_in),
        )
        .route("/logout", post(session::sign_out))
        .route("/tickets", get(tickets::list).post(tickets::create))
        .route("/tickets/new", get(tickets::new_form))
        .route("/tickets/{id}", get(tickets::show))
        .route("/tickets/{id}/comments", post(tickets::comment))
        .route("/tickets/{id}/mentionable", get(tickets::mentionable))
        .route(
            "/tickets/{id}/attachments/{attachment}",
            get(tickets::attachment),
        )
        .route("/tickets/{id}/{action}", post(tickets::act))
        .route("/staff/quarantine", get(staff::quarantine))
        .route("/staff/quarantine/{id}", get(staff::message))
        .route("/staff/quarantine/{id}/replay", post(staff::replay))
        .route("/staff/people", get(staff::people))
        .route("/staff/users", post(staff::add_user))
        .route("/staff/users/invite", post(staff::invite))
        .route("/staff/leads", post(staff::add_lead))
        .route("/staff/leads/remove", post(staff::remove_lead))
        .route("/assets/{file}", get(assets::serve))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn(same_origin_posts))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// Serves the portal on `listener` until `cancel` fires; meanwhile, every
/// hour, deletes expired sign-in links and sessions.
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
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { cancel.cancelled().await })
    .await
}

async fn not_found() -> WebError {
    WebError::NotFound
}

/// No page may be framed, sniffed, cached or leak its URL (a sign-in link
/// holds a token) in a Referer; scripts and styles come only from
/// `/assets/`, so an injected tag would not run.
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
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// A POST that a browser marks as sent from another site is refused before
/// anything reads it: with the session's CSRF token this guards the
/// sign-in forms too, which have no session yet (login CSRF).
async fn same_origin_posts(req: Request, next: Next) -> Response {
    if req.method() == Method::POST
        && req
            .headers()
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() == b"cross-site")
    {
        return WebError::Forbidden.into_response();
    }
    next.run(req).await
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
    #[error("unsupported media type")]
    Unsupported,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, key) = match &self {
            WebError::NotFound => (StatusCode::NOT_FOUND, "error_not_found"),
            WebError::Forbidden => (StatusCode::FORBIDDEN, "error_forbidden"),
            WebError::BadRequest(_) => (StatusCode::BAD_REQUEST, "error_bad_request"),
            WebError::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "error_too_large"),
            WebError::Unsupported => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "error_bad_request"),
            WebError::Store(e) => {
                tracing::error!(error = %e, "portal request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "error_internal")
            }
        };
        // Error pages are said in both languages: there may be no viewer.
        let page = pages::render(
            "error.html",
            Locale::En,
            minijinja::context! { key => key, detail => match &self {
                WebError::BadRequest(d) => Some(d.clone()),
                _ => None,
            } },
        );
        match page {
            Ok(html) => (status, html).into_response(),
            Err(_) => status.into_response(),
        }
    }
}
