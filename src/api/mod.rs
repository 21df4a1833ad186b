//! The admin HTTP endpoint (axum): staff work on tickets with per-user API
//! tokens under the same permission checks, events and notifications as
//! email commands; operators get `/healthz`, `/readyz` and `/metrics`.
//!
//! The OpenAPI document (`/api/openapi.json`) is collected from the handlers'
//! annotations by the same router that serves them, so it cannot omit a route.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::Serialize;

use time::OffsetDateTime;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::ListenLimits;
use crate::domain::ticket::Status;
use crate::health::Mailboxes;
use crate::metrics::Metrics;
use crate::store::{StoreError, User};
use crate::tickets::{Refusal, Replay, ReplayRefusal, Service};

mod directory;
mod schema;
mod tickets;
pub mod wire;

const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 500;

/// A list endpoint's page size: `limit`, default 50, at most 500.
fn page_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    Ok(limit)
}

/// The `after` value for the next page: the last id of a full page, else none.
fn next_page<T>(items: &[T], limit: i64, id: impl Fn(&T) -> i64) -> Option<i64> {
    (items.len() as i64 == limit)
        .then(|| items.last().map(id))
        .flatten()
}

/// Request bodies larger than this are refused with 413 before parsing.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// A request target longer than this is refused with 414 (RFC 9110 §15.5.15).
/// No route takes more than a few hundred bytes; hyper's own bound (64 KiB,
/// answered with an empty 414) stays behind it.
pub const URI_LIMIT: usize = 8 * 1024;

/// A header section larger than this (names, values and their line ends) is
/// refused with 431 (RFC 6585 §5). hyper's own bound (about 400 KB or 100
/// fields, answered with an empty 431) stays behind it.
pub const HEADER_LIMIT: usize = 32 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<Inner>,
    /// `[admin]` timeouts and connection cap, for `serve`.
    limits: ListenLimits,
}

struct Inner {
    tickets: Service,
    /// The email channel's one operation the API offers (`src/tickets/replay.rs`).
    replay: Arc<dyn Replay>,
    /// Shared with intake, whose counts `/metrics` reports.
    metrics: Arc<Metrics>,
    labels: BTreeMap<Status, String>,
    mailboxes: Mailboxes,
}

impl ApiState {
    /// `mailboxes`: the IMAP pollers' states, for `/readyz` and `/metrics`.
    /// `replay` and `metrics`: the email channel's (`Ingestor` implements `Replay`).
    pub fn new(
        tickets: Service,
        replay: Arc<dyn Replay>,
        metrics: Arc<Metrics>,
        mailboxes: Mailboxes,
    ) -> Self {
        // The API answers in the default language, whoever asks.
        let labels = tickets
            .policy()
            .terms
            .statuses(crate::domain::locale::Locale::default())
            .into_iter()
            .collect();
        Self {
            inner: Arc::new(Inner {
                tickets,
                replay,
                metrics,
                labels,
                mailboxes,
            }),
            limits: ListenLimits::DEFAULT,
        }
    }

    /// The same state, served within `limits` (the `[admin]` settings).
    pub fn with_limits(self, limits: ListenLimits) -> Self {
        Self { limits, ..self }
    }

    /// Replaying quarantined mail, what only intake does.
    fn replay(&self) -> &dyn Replay {
        self.inner.replay.as_ref()
    }

    fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// Every change to a ticket goes through the ticket service.
    fn tickets(&self) -> &Service {
        &self.inner.tickets
    }

    /// Reads (lists, views, readiness).
    fn store(&self) -> &Arc<dyn crate::store::Store> {
        self.inner.tickets.store()
    }

    fn label(&self, status: Status) -> String {
        self.inner
            .labels
            .get(&status)
            .cloned()
            .unwrap_or_else(|| status.default_label().to_string())
    }
}

/// The body of every error: `{"error": {"code", "message"}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
struct ErrorDetail {
    /// snake_case, stable: `unauthorized`, `invalid_token`, `forbidden`,
    /// `not_found`, `conflict`, `creator_protected`, `invalid`, `bad_request`,
    /// `payload_too_large`, `request_timeout`, `unavailable`, `internal`.
    code: String,
    message: String,
}

/// An error as the API reports it.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 6750 §3: a 401 names the scheme the client should use.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"ticketgate\""),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::not_found(format!("{what} not found")),
            StoreError::Conflict(_) => Self::conflict("it already exists"),
            StoreError::Invalid(what) => Self::invalid(what),
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %e, "admin API: database unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the database is temporarily unavailable; try again",
                )
            }
            // Details go to the log, never to the client.
            other => {
                tracing::error!(error = %other, "admin API: internal error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error (logged)",
                )
            }
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Protected(m) => Self::new(StatusCode::CONFLICT, "creator_protected", m),
            Refusal::NotFound(m) => Self::not_found(m),
            Refusal::Forbidden(m) => Self::new(StatusCode::FORBIDDEN, "forbidden", m),
            Refusal::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            Refusal::Unverified | Refusal::NotAParticipant | Refusal::InternalNotAllowed => {
                Self::new(StatusCode::FORBIDDEN, "forbidden", r.to_string())
            }
        }
    }
}

impl From<ReplayRefusal> for ApiError {
    fn from(r: ReplayRefusal) -> Self {
        match r {
            ReplayRefusal::NotFound(_) => Self::not_found(r.to_string()),
            r => Self::conflict(r.to_string()),
        }
    }
}

/// A JSON body whose rejections (bad JSON, wrong fields, too large) are
/// reported in the API's error shape.
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    Json<T>: FromRequest<S, Rejection = axum::extract::rejection::JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        use axum::extract::rejection::JsonRejection;
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::invalid(e.body_text())),
            // The body stopped arriving for `[admin] idle_timeout` (src/listen.rs).
            Err(e) if crate::listen::is_body_timeout(&e) => Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the request body stopped arriving",
            )),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("request bodies are limited to {BODY_LIMIT} bytes"),
            )),
            Err(e) => Err(ApiError::bad_request(e.body_text())),
        }
    }
}

/// Query strings, with rejections in the API's error shape.
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}

/// Path parameters, with rejections in the API's error shape.
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}

/// The staff user a request acts as, from `Authorization: Bearer <token>`.
pub struct Staff(pub User);

pub use crate::manage::{new_token, token_hash};

impl FromRequestParts<ApiState> for Staff {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        // RFC 6750 §2.1: `Bearer` is case-insensitive, followed by one space.
        let token = header
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .filter(|t| !t.is_empty());
        let Some(token) = token else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send Authorization: Bearer <token> (create one with `ticketgate token create --user EMAIL`)",
            ));
        };
        let user = state
            .store()
            .token_user(&token_hash(token), OffsetDateTime::now_utc())
            .await?;
        let Some(user) = user else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the token is unknown or revoked",
            ));
        };
        if user.role != crate::domain::ticket::Role::Staff {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "the token's user is no longer support staff",
            ));
        }
        Ok(Staff(user))
    }
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ticketgate admin API",
        description = "Staff work on tickets with the same permissions, events and notifications as email commands. Every /api route needs `Authorization: Bearer <token>`."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

/// The router and the OpenAPI document it serves, from the same route list.
pub fn router(state: ApiState) -> Router {
    let (api, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(tickets::list_tickets))
        .routes(routes!(tickets::get_ticket, tickets::patch_ticket))
        .routes(routes!(tickets::add_comment))
        .routes(routes!(tickets::add_follower, tickets::remove_follower))
        .routes(routes!(tickets::add_org, tickets::remove_org))
        .routes(routes!(tickets::release))
        .routes(routes!(tickets::merge))
        .routes(routes!(tickets::move_comment))
        .routes(routes!(directory::attachment))
        .routes(routes!(directory::list_users, directory::create_user))
        .routes(routes!(directory::edit_user))
        .routes(routes!(directory::export_person))
        .routes(routes!(directory::list_orgs, directory::create_org))
        .routes(routes!(directory::add_lead, directory::remove_lead))
        .routes(routes!(directory::list_messages))
        .routes(routes!(directory::get_message))
        .routes(routes!(directory::replay))
        .routes(routes!(directory::discard))
        .routes(routes!(directory::healthz))
        .routes(routes!(directory::readyz))
        .routes(routes!(directory::metrics))
        .split_for_parts();
    let doc = Arc::new(doc);
    api.route(
        "/api/openapi.json",
        axum::routing::get(move || {
            let doc = doc.clone();
            async move { Json(doc.as_ref().clone()) }
        }),
    )
    .fallback(|| async { ApiError::not_found("no such route") })
    // Every previously added route: a known path with another method gets
    // the same JSON error body as every other refusal (axum's own is empty).
    .method_not_allowed_fallback(|| async {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route does not take that method",
        )
    })
    .layer(DefaultBodyLimit::max(BODY_LIMIT))
    .layer(middleware::from_fn(head_limits))
    .layer(middleware::from_fn_with_state(state.clone(), track))
    .with_state(state)
}

/// Refuses an oversized request line or header section with the JSON error
/// body every other refusal has, before any handler or extractor runs.
async fn head_limits(req: Request, next: Next) -> Response {
    let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target > URI_LIMIT {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("the request target is {target} bytes; at most {URI_LIMIT} are accepted"),
        )
        .into_response();
    }
    // Each field as sent: name, ": ", value, CRLF.
    let headers: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if headers > HEADER_LIMIT {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!("the header section is {headers} bytes; at most {HEADER_LIMIT} are accepted"),
        )
        .into_response();
    }
    next.run(req).await
}

/// Counts every request by its route template and status.
async fn track(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(req).await;
    state
        .metrics()
        .record_http(&method, &route, response.status().as_u16());
    response
}

/// Serves the admin endpoint on `listener` until `cancel` fires, within the
/// state's `[admin]` limits (`src/listen.rs`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    cancel: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    let limits = state.limits;
    crate::listen::serve("admin", listener, router(state), limits, cancel).await
}
