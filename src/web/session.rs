//! Signing in without a password: `POST /login` emails a one-time link,
//! `GET /login/<token>` shows one button (mail scanners that fetch links
//! must not use them up), and its POST starts a server-side session. Only
//! hashes of links and sessions are stored.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;
use time::OffsetDateTime;

use super::{WebError, WebState, form, pages};
use crate::config::{Network, Rate};
use crate::domain::ids::EmailAddress;
use crate::domain::locale::Locale;
use crate::domain::template::{self, Notification};
use crate::manage::{new_token, token_hash};
use crate::store::{NewSession, User};
use crate::tickets::notice::{self, Notice};

/// The session cookie's name.
pub const COOKIE: &str = "tg_session";

/// How long an emailed sign-in link works.
pub const LINK_TTL: Duration = Duration::from_secs(15 * 60);

/// The signed-in person of a request, with their session's CSRF token.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub user: User,
    pub csrf: String,
    session: String,
}

impl Viewer {
    pub fn locale(&self) -> Locale {
        Locale::of(&self.user.locale)
    }

    pub fn is_staff(&self) -> bool {
        self.user.role == crate::domain::ticket::Role::Staff
    }
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
}

impl Viewer {
    /// The signed-in person of a request with these headers, if any.
    pub async fn of(state: &WebState, headers: &HeaderMap) -> Result<Option<Self>, WebError> {
        let Some(token) = cookie_value(headers) else {
            return Ok(None);
        };
        let hash = token_hash(&token);
        Ok(state
            .store()
            .session(&hash, OffsetDateTime::now_utc())
            .await?
            .map(|(user, csrf)| Viewer {
                user,
                csrf,
                session: hash,
            }))
    }
}

impl FromRequestParts<WebState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, Response> {
        let signed_out = |method: &Method| -> Response {
            if method == Method::GET {
                // Back to this page once signed in (a link from a mail).
                match parts.uri.path_and_query().map(|p| p.as_str()) {
                    Some(here) if here != "/" => {
                        Redirect::to(&format!("/login?next={}", template::encode_path(here)))
                            .into_response()
                    }
                    _ => Redirect::to("/").into_response(),
                }
            } else {
                // A change without a session changes nothing.
                WebError::Forbidden.into_response()
            }
        };
        match Viewer::of(state, &parts.headers).await {
            Ok(Some(viewer)) => Ok(viewer),
            Ok(None) => Err(signed_out(&parts.method)),
            Err(e) => Err(e.into_response()),
        }
    }
}

/// Sign-in requests per client network within a sliding window, kept in
/// memory. A client is its /24 (IPv4) or /64 (IPv6) network: one host, or
/// one office, commands that many addresses. At most `cap` networks are
/// remembered; when the table is full the one heard from least recently is
/// forgotten, so a newcomer is always counted afresh and strangers who fill
/// the table lock nobody out (a network refused again and again stays the
/// newest and stays refused; one quiet while `cap` others arrive starts
/// over). Memory is bounded: `cap` networks of at most `rate.count` times.
pub struct ClientLimiter {
    rate: Rate,
    cap: usize,
    table: Mutex<Clients>,
}

#[derive(Default)]
struct Clients {
    by_network: HashMap<IpAddr, Client>,
    /// Networks by when they were last heard from, oldest first.
    by_age: BTreeMap<u64, IpAddr>,
    /// The next age stamp.
    clock: u64,
}

struct Client {
    times: VecDeque<Instant>,
    /// Its key in `by_age`.
    stamp: u64,
}

impl ClientLimiter {
    /// About 50 MB at most with the default 30 requests per window.
    pub const CAP: usize = 100_000;

    pub fn new(rate: Rate) -> Self {
        Self::with_cap(rate, Self::CAP)
    }

    /// A limiter remembering at most `cap` networks (at least one).
    pub fn with_cap(rate: Rate, cap: usize) -> Self {
        Self {
            rate,
            cap: cap.max(1),
            table: Mutex::new(Clients::default()),
        }
    }

    /// The network `ip` is counted in: its /24 or /64.
    fn network(ip: IpAddr) -> IpAddr {
        match ip.to_canonical() {
            IpAddr::V4(v4) => {
                let [a, b, c, _] = v4.octets();
                IpAddr::from([a, b, c, 0])
            }
            IpAddr::V6(v6) => {
                let mut s = v6.segments();
                s[4..].fill(0);
                IpAddr::from(s)
            }
        }
    }

    /// Counts one request from `ip`; `false` when its network is over the
    /// limit. Constant work per call, whatever the table holds.
    pub fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        let key = Self::network(ip);
        let mut guard = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let table = &mut *guard;
        let stamp = table.clock;
        table.clock += 1;
        match table.by_network.get_mut(&key) {
            Some(client) => {
                table.by_age.remove(&client.stamp);
                client.stamp = stamp;
            }
            None => {
                if table.by_network.len() >= self.cap
                    && let Some((_, oldest)) = table.by_age.pop_first()
                {
                    table.by_network.remove(&oldest);
                }
                table.by_network.insert(
                    key,
                    Client {
                        times: VecDeque::new(),
                        stamp,
                    },
                );
            }
        }
        table.by_age.insert(stamp, key);
        let Some(client) = table.by_network.get_mut(&key) else {
            return true;
        };
        let times = &mut client.times;
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.rate.per)
        {
            times.pop_front();
        }
        if times.len() >= self.rate.count as usize {
            return false;
        }
        times.push_back(now);
        true
    }

    /// How many networks are remembered.
    pub fn len(&self) -> usize {
        self.table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_network
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The client a request comes from. Behind a trusted proxy that is the
/// nearest address in `X-Forwarded-For` that is not itself a trusted proxy,
/// read from the right: each proxy appends the address it was reached from,
/// so only the entries our own proxies wrote can be believed, and anything
/// further left may be the client's own invention. A request from any other
/// address is that address, whatever its headers say.
pub fn client_of(peer: IpAddr, headers: &HeaderMap, trusted: &[Network]) -> IpAddr {
    let trusted_ip = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    let mut client = peer.to_canonical();
    if !trusted_ip(client) {
        return client;
    }
    // Several headers are one list, in order (RFC 9110 §5.3).
    let values: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    for entry in values.iter().rev().flat_map(|v| v.rsplit(',')) {
        let entry = entry.trim();
        let Some(ip) = entry
            .parse::<IpAddr>()
            .ok()
            .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
        else {
            // Not an address ("unknown", garbage): the last proxy that
            // wrote one is the client; a made-up value buys nothing.
            break;
        };
        client = ip.to_canonical();
        if !trusted_ip(client) {
            break;
        }
    }
    client
}

/// The language of a visitor who is not signed in: of the languages we
/// ship, the one their browser's `Accept-Language` weighs highest (RFC 9110
/// §12.5.4: `q` from 0 to 1, 1 when absent, 0 meaning "not this one"; on a
/// tie the first listed), else English. Only the first 20 ranges are read.
pub fn visitor_locale(headers: &HeaderMap) -> Locale {
    let mut best: Option<(u16, Locale)> = None;
    let ranges = headers
        .get_all(header::ACCEPT_LANGUAGE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .take(20);
    for range in ranges {
        let mut parts = range.split(';');
        let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let weight = parts
            .find_map(|p| {
                let (name, value) = p.split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("q")
                    .then(|| quality(value))
            })
            .unwrap_or(Some(1000));
        let (Some(weight), Some(locale)) =
            (weight, Locale::parse(tag.split('-').next().unwrap_or("")))
        else {
            continue;
        };
        if weight > 0 && best.is_none_or(|(b, _)| weight > b) {
            best = Some((weight, locale));
        }
    }
    best.map_or(Locale::En, |(_, l)| l)
}

/// A `q` value in thousandths; `None` when it is not one (RFC 9110 §12.4.2:
/// `0` to `1` with at most three decimals).
fn quality(text: &str) -> Option<u16> {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths: u16 = format!("{fraction:0<3}").parse().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// `GET /`: the sign-in page, or the tickets when signed in.
pub async fn home(State(state): State<WebState>, headers: HeaderMap) -> Result<Response, WebError> {
    if let Some(token) = cookie_value(&headers)
        && state
            .store()
            .session(&token_hash(&token), OffsetDateTime::now_utc())
            .await?
            .is_some()
    {
        return Ok(Redirect::to("/tickets").into_response());
    }
    Ok(pages::render("login.html", visitor_locale(&headers), context! {})?.into_response())
}

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// `GET /login?next=/tickets/7`: the sign-in form, which carries `next`
/// into the emailed link; one already signed in goes straight there.
pub async fn login_page(
    State(state): State<WebState>,
    Query(q): Query<NextQuery>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let next = template::local_next(q.next.as_deref());
    if let Some(token) = cookie_value(&headers)
        && state
            .store()
            .session(&token_hash(&token), OffsetDateTime::now_utc())
            .await?
            .is_some()
    {
        return Ok(Redirect::to(next.as_deref().unwrap_or("/tickets")).into_response());
    }
    let page = pages::render(
        "login.html",
        visitor_locale(&headers),
        context! { next => next },
    )?;
    Ok(page.into_response())
}

/// `POST /login`: the same page whatever the address, so that nobody learns
/// who is registered; a registered address gets a sign-in link, at most
/// `login_limit_address` per window (counted for every address alike).
pub async fn request_link(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Result<Response, WebError> {
    let locale = visitor_locale(req.headers());
    let client = client_of(peer.ip(), req.headers(), &state.inner.trusted_proxies);
    if !state.inner.clients.allow(client, Instant::now()) {
        let page = pages::render("login.html", locale, context! { too_many => true })?;
        return Ok((StatusCode::TOO_MANY_REQUESTS, page).into_response());
    }
    let form = form::read(req, None, 16 * 1024, state.inner.form_limits).await?;
    let next = template::local_next(form.get("next"));
    let sent = pages::render("login.html", locale, context! { sent => true })?;
    let Some(email) = form.get("email").and_then(|e| EmailAddress::parse(e).ok()) else {
        let page = pages::render("login.html", locale, context! { invalid => true })?;
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    };
    let now = OffsetDateTime::now_utc();
    let store = state.store();
    let mut tx = store.begin().await?;
    let limit = state.inner.login_limit_address;
    let mut claimed = false;
    for slot in 0..limit.count {
        // A space never occurs in an address: no slot is anyone's window.
        let key = format!("sign-in {email} #{slot}");
        if tx.claim_auto_reply_key(&key, now, limit.per).await? {
            claimed = true;
            break;
        }
    }
    let user = tx.user_by_email(&email).await?;
    match user {
        // A deactivated user is answered as an unknown address is.
        Some(user) if claimed && !user.bouncing && user.active => {
            // The token is minted when the mail is sent: the queued row
            // never holds one.
            let link = template::MailedLink {
                base_url: state.inner.base_url.clone(),
                ttl_secs: LINK_TTL.as_secs(),
                next,
            };
            let notice = Notice {
                what: Notification::SignIn(template::SignIn {
                    link,
                    minutes: LINK_TTL.as_secs() / 60,
                }),
                to: &user.email,
                name: Some(&user.name),
                user: Some(user.id),
                locale: Some(Locale::of(&user.locale)),
                reason: crate::domain::ticket::Reason::SignIn,
                ticket: None,
                comment: None,
            };
            notice::queue(tx.as_mut(), state.tickets().sender(), notice, now).await?;
            tracing::info!(user = %user.email, "sign-in link sent");
        }
        Some(user) if !claimed && user.active => {
            tracing::warn!(user = %user.email, "sign-in link not sent: login_limit_address reached");
        }
        _ => {}
    }
    tx.commit().await?;
    Ok(sent.into_response())
}

/// `GET /login/<token>`: one button; the link is used only by its POST,
/// which carries the link's `next` on.
pub async fn confirm(
    Path(token): Path<String>,
    Query(q): Query<NextQuery>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let locale = visitor_locale(&headers);
    if !plausible(&token) {
        return expired(locale);
    }
    let next = template::local_next(q.next.as_deref());
    Ok(pages::render(
        "link.html",
        locale,
        context! { token => token, next => next },
    )?
    .into_response())
}

fn plausible(token: &str) -> bool {
    token.len() == 67
        && token.starts_with("tg_")
        && token[3..].bytes().all(|b| b.is_ascii_hexdigit())
}

fn expired(locale: Locale) -> Result<Response, WebError> {
    let page = pages::render("login.html", locale, context! { expired => true })?;
    Ok((StatusCode::GONE, page).into_response())
}

/// `POST /login/<token>`: a live, unused link starts a session (its cookie
/// `HttpOnly`, `SameSite=Lax`, `Secure` over https) and is used up.
pub async fn sign_in(
    State(state): State<WebState>,
    Path(token): Path<String>,
    req: Request,
) -> Result<Response, WebError> {
    let locale = visitor_locale(req.headers());
    if !plausible(&token) {
        return expired(locale);
    }
    // The button's form carries `next`; a bare POST (no form) signs in too.
    let next = match form::read(req, None, 16 * 1024, state.inner.form_limits).await {
        Ok(form) => template::local_next(form.get("next")),
        Err(WebError::Unsupported) => None,
        Err(e) => return Err(e),
    };
    let now = OffsetDateTime::now_utc();
    let Some(user) = state
        .store()
        .take_web_link(&token_hash(&token), now)
        .await?
    else {
        return expired(locale);
    };
    let session = new_token().map_err(|e| WebError::BadRequest(e.to_string()))?;
    let csrf = new_token().map_err(|e| WebError::BadRequest(e.to_string()))?;
    let ttl = state.inner.session_ttl;
    state
        .store()
        .create_session(&NewSession {
            token_hash: token_hash(&session),
            user: user.id,
            csrf,
            now,
            expires: now + ttl,
        })
        .await?;
    tracing::info!(user = %user.email, "signed in to the portal");
    let cookie = format!(
        "{COOKIE}={session}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
        ttl.as_secs(),
        if state.inner.secure { "; Secure" } else { "" }
    );
    let mut res = Redirect::to(next.as_deref().unwrap_or("/tickets")).into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| WebError::BadRequest(e.to_string()))?,
    );
    Ok(res)
}

/// `POST /logout`: ends the session here and in the store.
pub async fn sign_out(
    State(state): State<WebState>,
    viewer: Viewer,
    req: Request,
) -> Result<Response, WebError> {
    form::read(req, Some(&viewer.csrf), 16 * 1024, state.inner.form_limits).await?;
    state.store().end_session(&viewer.session).await?;
    let mut res = Redirect::to("/").into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("tg_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
    );
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_is_read_from_x_forwarded_for_only_behind_a_trusted_proxy() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let xff = |values: &[&str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
            }
            h
        };
        let proxies = [
            Network::parse("127.0.0.1").unwrap(),
            Network::parse("10.0.0.0/8").unwrap(),
        ];
        let proxy = ip("127.0.0.1");
        let cases: &[(&str, &[&str], &str)] = &[
            // No proxy in the way: the header is the client's own words.
            ("198.51.100.1", &["203.0.113.5"], "198.51.100.1"),
            // One proxy: the address it appended.
            ("127.0.0.1", &["203.0.113.5"], "203.0.113.5"),
            // The client sent its own header first: only the proxy's entry counts.
            ("127.0.0.1", &["1.2.3.4, 203.0.113.5"], "203.0.113.5"),
            ("127.0.0.1", &["1.2.3.4", "203.0.113.5"], "203.0.113.5"),
            // Two of our proxies: the first address that is not one of them.
            (
                "127.0.0.1",
                &["1.2.3.4, 203.0.113.5, 10.1.1.1"],
                "203.0.113.5",
            ),
            // Only proxies: the leftmost proxy.
            ("127.0.0.1", &["10.0.0.9, 10.1.1.1"], "10.0.0.9"),
            // Garbage or nothing: the proxy itself (nobody escapes the limit).
            ("127.0.0.1", &["unknown"], "127.0.0.1"),
            ("127.0.0.1", &["203.0.113.5, garbage"], "127.0.0.1"),
            ("127.0.0.1", &[], "127.0.0.1"),
            // With a port, IPv6, IPv4 seen through IPv6.
            ("127.0.0.1", &["203.0.113.5:4711"], "203.0.113.5"),
            ("127.0.0.1", &["2001:db8::7"], "2001:db8::7"),
            ("::ffff:127.0.0.1", &["[2001:db8::7]:443"], "2001:db8::7"),
        ];
        for (peer, values, want) in cases {
            assert_eq!(
                client_of(ip(peer), &xff(values), &proxies),
                ip(want),
                "peer {peer}, X-Forwarded-For {values:?}"
            );
        }
        // No trusted proxies configured (the default): always the peer.
        assert_eq!(client_of(proxy, &xff(&["203.0.113.5"]), &[]), proxy);
    }

    #[test]
    fn the_client_limit_slides_and_ipv6_hosts_share_a_slot() {
        let limiter = ClientLimiter::new(Rate {
            count: 2,
            per: Duration::from_secs(60),
        });
        let t0 = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(limiter.allow(a, t0));
        assert!(limiter.allow(a, t0));
        assert!(!limiter.allow(a, t0 + Duration::from_secs(59)));
        assert!(limiter.allow(a, t0 + Duration::from_secs(61)));
        let v6a: IpAddr = "2001:db8::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8::2".parse().unwrap();
        assert!(limiter.allow(v6a, t0));
        assert!(limiter.allow(v6b, t0));
        assert!(!limiter.allow(v6a, t0), "one /64 is one client");
    }

    #[test]
    fn an_ipv4_slash_24_is_one_client() {
        let limiter = ClientLimiter::new(Rate {
            count: 2,
            per: Duration::from_secs(60),
        });
        let t0 = Instant::now();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(limiter.allow(ip("198.51.100.1"), t0));
        assert!(limiter.allow(ip("198.51.100.200"), t0));
        assert!(!limiter.allow(ip("198.51.100.77"), t0), "same /24");
        assert!(
            !limiter.allow(ip("::ffff:198.51.100.9"), t0),
            "IPv4 seen through IPv6"
        );
        assert!(limiter.allow(ip("198.51.101.1"), t0), "the next /24");
    }

    #[test]
    fn a_full_client_table_forgets_its_oldest_and_never_refuses_a_newcomer() {
        // The table at its real size, filled by strangers from as many
        // networks as it holds, each once, within one window.
        let limiter = ClientLimiter::new(Rate {
            count: 30,
            per: Duration::from_secs(600),
        });
        let t0 = Instant::now();
        // Someone over the limit before the flood, and refused during it.
        let abuser: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..30 {
            assert!(limiter.allow(abuser, t0));
        }
        for n in 0..ClientLimiter::CAP as u32 {
            let stranger = IpAddr::from((0x0a00_0000u32 + n * 256).to_be_bytes());
            assert!(limiter.allow(stranger, t0), "stranger {n}");
            if n % 1000 == 0 {
                assert!(!limiter.allow(abuser, t0), "still refused at {n}");
            }
        }
        assert_eq!(limiter.len(), ClientLimiter::CAP);
        // A newcomer a second later is counted, not refused.
        let newcomer: IpAddr = "203.0.113.9".parse().unwrap();
        assert!(limiter.allow(newcomer, t0 + Duration::from_secs(1)));
        assert_eq!(limiter.len(), ClientLimiter::CAP, "the table stays bounded");
        // The abuser kept being refused, so stayed among the newest.
        assert!(!limiter.allow(abuser, t0 + Duration::from_secs(2)));
    }

    #[test]
    fn visitors_read_the_first_shipped_language_they_accept() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_LANGUAGE, HeaderValue::from_str(v).unwrap());
            visitor_locale(&h)
        };
        assert_eq!(with("ja-JP,ja;q=0.9,en;q=0.8"), Locale::Ja);
        assert_eq!(with("fr-FR, ja;q=0.5"), Locale::Ja);
        assert_eq!(with("en-US,en"), Locale::En);
        assert_eq!(with("de"), Locale::En);
        assert_eq!(visitor_locale(&HeaderMap::new()), Locale::En);
        // Weights, not order, decide; 0 refuses a language.
        assert_eq!(with("en;q=0.1, ja"), Locale::Ja);
        assert_eq!(with("ja;q=0.8, en;q=0.9"), Locale::En);
        assert_eq!(with("ja;q=0.5, en;q=0.5"), Locale::Ja);
        assert_eq!(with("ja;q=0, fr"), Locale::En);
        assert_eq!(with("JA-jp;Q=1.000"), Locale::Ja);
        // A malformed weight drops its range, not the header.
        assert_eq!(with("ja;q=2, en;q=0.3"), Locale::En);
        assert_eq!(with("ja;q=abc"), Locale::En);
        assert_eq!(with("*"), Locale::En);
    }

    #[test]
    fn only_well_formed_tokens_are_looked_up() {
        let token = new_token().unwrap();
        assert!(plausible(&token));
        assert!(!plausible("tg_short"));
        assert!(!plausible(&token.replace("tg_", "xx_")));
    }
}
