//! Settings from `config/ticketgate.toml`, overridden by `TICKETGATE__SECTION__KEY`
//! environment variables (mailboxes by `TICKETGATE__MAILBOX__<NAME>__KEY`). The
//! defaults are the embedded setup: SQLite under `var/`, a Maildir inbox, and
//! notifications written as files; no servers. Builds no adapters.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::domain::business::{Calendar, CalendarText};
use crate::domain::dates::Zone;
use crate::domain::ids::EmailAddress;
use crate::domain::locale::Locale;
use crate::domain::sla::{Clocks, Targets, WarnAt};
use crate::domain::terms::{Level, LevelWords, ResponseTime, Terms};
use crate::domain::ticket::{Priority, Status};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing {path}: {message}")]
    Parse { path: String, message: String },
    #[error("invalid setting {key}: {message}")]
    Invalid { key: String, message: String },
}

/// A duration written as `"30s"`, `"5m"`, `"2h"`, `"250ms"` or a number of seconds;
/// also calendar time for rules: `"3d"` (72 hours), `"2w"`, `"1y"` (365 days).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(pub Duration);

/// A cap written as `"20/1h"`: at most `count` per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

impl Default for Rate {
    /// 20 an hour: far above what a person opens, far below a loop.
    fn default() -> Self {
        Rate {
            count: 20,
            per: Duration::from_secs(3600),
        }
    }
}

pub fn parse_rate(text: &str) -> Option<Rate> {
    let (count, per) = text.split_once('/')?;
    let per = parse_span(per)?;
    let count: u32 = count.trim().parse().ok()?;
    (!per.is_zero()).then_some(Rate { count, per })
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_rate(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("not a rate like \"20/1h\": {text:?}")))
    }
}

/// An address or a network written as `"10.0.0.0/8"`, `"fd00::/8"` or a bare
/// address (all of its bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    pub fn parse(text: &str) -> Option<Network> {
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (
                a.trim().parse::<IpAddr>().ok()?,
                Some(p.trim().parse::<u8>().ok()?),
            ),
            None => (text.trim().parse::<IpAddr>().ok()?, None),
        };
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(bits);
        (prefix <= bits).then_some(Network { addr, prefix })
    }

    /// Whether `ip` is in this network; an IPv4 address seen through an
    /// IPv6 socket (`::ffff:a.b.c.d`) counts as the IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        fn masked(bytes: &[u8], prefix: u8) -> impl Iterator<Item = u8> + '_ {
            bytes.iter().enumerate().map(move |(i, b)| {
                let keep = (prefix as usize).saturating_sub(i * 8).min(8);
                if keep == 0 {
                    0
                } else {
                    b & (0xffu8 << (8 - keep))
                }
            })
        }
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                masked(&n.octets(), self.prefix).eq(masked(&a.octets(), self.prefix))
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                masked(&n.octets(), self.prefix).eq(masked(&a.octets(), self.prefix))
            }
            _ => false,
        }
    }
}

impl<'de> Deserialize<'de> for Network {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Network::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "not an address or a network like \"10.0.0.0/8\": {text:?}"
            ))
        })
    }
}

/// A size written as `"25MB"`, `"512KB"`, `"1GB"` or a number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

/// Calendar time, not business time: `"3d"` is 72 hours whatever the
/// desk's hours (SLA targets are read as `terms::ResponseTime` instead).
/// `None` for anything else, or a duration too long to hold.
pub fn parse_span(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "ms" => 0.001,
        "" | "s" | "sec" | "secs" => 1.0,
        "m" | "min" | "mins" => 60.0,
        "h" | "hour" | "hours" => 3600.0,
        "d" | "day" | "days" => 86400.0,
        "w" | "week" | "weeks" => 7.0 * 86400.0,
        "y" | "year" | "years" => 365.0 * 86400.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(value * factor).ok()
}

pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let factor: f64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1.0,
        "KB" | "K" | "KIB" => 1024.0,
        "MB" | "M" | "MIB" => 1024.0 * 1024.0,
        "GB" | "G" | "GIB" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    (value >= 0.0 && value.is_finite()).then_some((value * factor) as u64)
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TextOrNumber {
    Text(String),
    Int(u64),
    Float(f64),
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match TextOrNumber::deserialize(d)? {
            TextOrNumber::Text(t) => parse_span(&t)
                .map(Span)
                .ok_or_else(|| serde::de::Error::custom(format!("not a duration: {t:?}"))),
            TextOrNumber::Int(n) => Ok(Span(Duration::from_secs(n))),
            TextOrNumber::Float(f) if f >= 0.0 && f.is_finite() => {
                Ok(Span(Duration::from_secs_f64(f)))
            }
            TextOrNumber::Float(f) => Err(serde::de::Error::custom(format!("not a duration: {f}"))),
        }
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match TextOrNumber::deserialize(d)? {
            TextOrNumber::Text(t) => parse_size(&t)
                .map(Size)
                .ok_or_else(|| serde::de::Error::custom(format!("not a size: {t:?}"))),
            TextOrNumber::Int(n) => Ok(Size(n)),
            TextOrNumber::Float(f) => Ok(Size(f as u64)),
        }
    }
}

/// Numbers and booleans also accepted as strings, since environment overrides are strings.
fn lenient<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr + Deserialize<'de>,
    T::Err: std::fmt::Display,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either<T> {
        Text(String),
        Value(T),
    }
    match Either::<T>::deserialize(d)? {
        Either::Text(t) => t.trim().parse().map_err(serde::de::Error::custom),
        Either::Value(v) => Ok(v),
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub mailbox: Vec<MailboxSettings>,
    pub smtp: SmtpSettings,
    pub support: SupportSettings,
    pub intake: IntakeSettings,
    pub outbox: OutboxSettings,
    pub mentions: MentionSettings,
    pub auth: AuthSettings,
    pub admin: AdminSettings,
    pub web: WebSettings,
    pub sla: SlaSection,
    pub business: BusinessSettings,
    pub statuses: StatusLabels,
    pub rules: RulesSettings,
    pub retention: RetentionSettings,
}

/// `[retention]`: how long people's mail is kept (docs/contract.md,
/// "People's data"). Both off by default: nothing is deleted unless the
/// operator says how long.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSettings {
    /// Raw messages (and quarantined mail) older than this are removed;
    /// the comments made of them stay.
    pub raw_messages: Option<Span>,
    /// Tickets closed longer ago than this are deleted with their
    /// comments, files and raw mail; a count stays for reports.
    pub closed_tickets: Option<Span>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesSettings {
    /// The rules file; the shipped defaults apply when it does not exist.
    pub file: String,
}

impl Default for RulesSettings {
    fn default() -> Self {
        Self {
            file: "config/rules.toml".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailboxKind {
    Imap,
    Maildir,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    None,
    Starttls,
    Tls,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailboxSettings {
    pub name: String,
    pub kind: MailboxKind,
    pub host: String,
    #[serde(deserialize_with = "lenient")]
    pub port: u16,
    pub tls: TlsMode,
    pub username: String,
    pub password: String,
    pub folder: String,
    pub processed_folder: String,
    pub rejected_folder: String,
    #[serde(deserialize_with = "lenient")]
    pub idle: bool,
    pub poll_interval: Span,
    /// Maildir root (holding `new/`, `cur/`, `tmp/`).
    pub path: String,
    /// Extra CA certificate (PEM) trusted for `tls`/`starttls`, e.g. a private server's.
    pub ca_file: String,
    /// IMAP: how long the poll lease lasts unrenewed (renewed every third of it).
    /// Bounds how soon another instance takes over when the holder dies.
    pub lease: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpKind {
    Smtp,
    File,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpSettings {
    pub kind: SmtpKind,
    pub host: String,
    #[serde(deserialize_with = "lenient")]
    pub port: u16,
    pub tls: TlsMode,
    pub username: String,
    pub password: String,
    /// Where the `file` kind writes `.eml` files.
    pub dir: String,
    /// Extra CA certificate (PEM) trusted for `starttls`/`tls`, e.g. a private relay's.
    pub ca_file: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SupportSettings {
    pub name: String,
    pub address: String,
    pub domain: String,
    pub notify: String,
    pub tag: String,
    /// HMAC key of reply tokens. Empty: read from (or created in) `reply_secret_file`.
    pub reply_secret: String,
    pub reply_secret_file: String,
    /// Dates in mail are shown in this zone: `UTC` (default), an offset
    /// such as `+09:00`, or an IANA name such as `Europe/Berlin`, whose
    /// summer time is followed (`domain::dates::Zone`). `[business]`
    /// follows it unless it names its own.
    pub timezone: String,
    /// Who gets the team's notices: `group` (one to `notify`) or `each`
    /// (also every staff user their own copy, with their own reply address,
    /// so commands in a reply to it are proven).
    pub notify_staff: NotifyStaff,
}

/// `[support] notify_staff`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyStaff {
    #[default]
    Group,
    Each,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntakeSettings {
    pub max_message_size: Size,
    /// Of a message over `max_message_size`, the bytes kept in the store
    /// (its header section always): enough to see what it was, never the
    /// whole of something that may be gigabytes.
    pub keep_oversize: Size,
    #[serde(deserialize_with = "lenient")]
    pub allow_unknown_senders: bool,
    pub auto_reply_window: Span,
    /// Automatic mail (acknowledgements, rule answers) per address: a cap
    /// that breaks loops with auto-responders classification missed.
    pub auto_reply_limit: Rate,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboxSettings {
    #[serde(deserialize_with = "lenient")]
    pub max_attempts: u32,
    pub backoff: Span,
    pub lease: Span,
    pub attach_max: Size,
    /// A notification carries at most this much of a comment's text (cut on
    /// a line or character boundary) and says the full text is on the ticket.
    pub excerpt_max: Size,
    pub poll_interval: Span,
    /// Messages sent at once (and SMTP connections pooled).
    #[serde(deserialize_with = "lenient")]
    pub concurrency: u32,
    /// The operator's template folder; files there override the built-in ones.
    pub templates: String,
    /// How long a sent notification stays in the outbox (threading keeps
    /// its Message-ID apart); `0` keeps them all.
    pub keep_sent: Span,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MentionSettings {
    #[serde(deserialize_with = "lenient")]
    pub auto_follow: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    pub trusted_authserv_id: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSettings {
    pub listen: String,
    /// A request head must arrive whole within this (`"10s"`).
    pub header_timeout: Span,
    /// A kept-alive connection waits this long for its next request, and
    /// a request body or a response may pause this long (`"60s"`).
    pub idle_timeout: Span,
    /// Connections served at once (`512`); more wait in the listen backlog.
    #[serde(deserialize_with = "lenient")]
    pub max_connections: usize,
    /// After SIGTERM, how long requests in flight may take to finish (`"10s"`).
    pub shutdown_timeout: Span,
}

/// `[web]`: the portal customers and staff use in a browser.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSettings {
    /// Where the portal listens; empty turns it off.
    pub listen: String,
    /// The portal's address as people reach it (behind a TLS proxy: the
    /// proxy's `https://` address): links in emails start with it, and
    /// `https` makes the session cookie `Secure`.
    pub base_url: String,
    /// Sign-in links emailed to one address (`"5/15m"`).
    pub login_limit_address: Rate,
    /// `POST /login` requests from one client address (`"30/10m"`).
    pub login_limit_client: Rate,
    /// The TLS proxies in front of the portal. A request from one of them
    /// is counted for the client it names in `X-Forwarded-For`; from any
    /// other address the header is ignored, so nobody can pick their own.
    pub trusted_proxies: Vec<Network>,
    /// How long the link in an invitation stays valid.
    pub invite_ttl: Span,
    /// How long a session lasts without being used.
    pub session_ttl: Span,
    /// As `[admin] header_timeout`.
    pub header_timeout: Span,
    /// As `[admin] idle_timeout`.
    pub idle_timeout: Span,
    /// As `[admin] max_connections`.
    #[serde(deserialize_with = "lenient")]
    pub max_connections: usize,
    /// As `[admin] shutdown_timeout`.
    pub shutdown_timeout: Span,
    /// Fields (parts, for multipart) one posted form may have (`1000`).
    #[serde(deserialize_with = "lenient")]
    pub max_fields: usize,
    /// Files one posted form may carry (`100`).
    #[serde(deserialize_with = "lenient")]
    pub max_files: usize,
}

impl Default for WebSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            base_url: "http://127.0.0.1:8080".into(),
            login_limit_address: Rate {
                count: 5,
                per: Duration::from_secs(15 * 60),
            },
            login_limit_client: Rate {
                count: 30,
                per: Duration::from_secs(10 * 60),
            },
            trusted_proxies: Vec::new(),
            invite_ttl: Span(Duration::from_secs(7 * 86400)),
            session_ttl: Span(Duration::from_secs(14 * 86400)),
            header_timeout: ListenLimits::DEFAULT.header_timeout,
            idle_timeout: ListenLimits::DEFAULT.idle_timeout,
            max_connections: ListenLimits::DEFAULT.max_connections,
            shutdown_timeout: ListenLimits::DEFAULT.shutdown_timeout,
            max_fields: 1000,
            max_files: 100,
        }
    }
}

impl WebSettings {
    pub fn limits(&self) -> ListenLimits {
        ListenLimits {
            header_timeout: self.header_timeout,
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections,
            shutdown_timeout: self.shutdown_timeout,
        }
    }

    /// `base_url` without a trailing `/`, when the portal is on.
    pub fn portal_url(&self) -> Option<&str> {
        if self.listen.trim().is_empty() {
            return None;
        }
        Some(self.base_url.trim().trim_end_matches('/')).filter(|u| !u.is_empty())
    }
}

/// `[business]`: the desk's working time, in which SLA targets are counted
/// (`domain::business::Calendar`). Lists may also be written as one string
/// of comma-separated items, as environment overrides are.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusinessSettings {
    /// An IANA name or an offset; empty: `[support] timezone`.
    pub timezone: String,
    /// Working weekdays: `mon`…`sun` or full names, any case.
    #[serde(deserialize_with = "list")]
    pub days: Vec<String>,
    /// Opening and closing, wall-clock in the zone: `"09:00-17:00"`.
    pub hours: String,
    /// Dates the desk does not work, ISO: `"2026-12-25"`.
    #[serde(deserialize_with = "list")]
    pub holidays: Vec<String>,
}

impl Default for BusinessSettings {
    fn default() -> Self {
        Self {
            timezone: String::new(),
            days: ["mon", "tue", "wed", "thu", "fri"]
                .map(String::from)
                .to_vec(),
            hours: "09:00-17:00".into(),
            holidays: Vec::new(),
        }
    }
}

/// A list of strings, or one string of comma-separated items (an
/// environment override); an empty string is an empty list.
fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Text(String),
        List(Vec<String>),
    }
    Ok(match Either::deserialize(d)? {
        Either::List(items) => items,
        Either::Text(text) => text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
    })
}

/// `[sla]`: `warn_at` beside the level tables `[sla.P1]`…`[sla.P4]`.
#[derive(Debug, Clone, Default)]
pub struct SlaSection {
    /// `warn_at = "80%"`: when a clock warns; `None`: 80%.
    pub warn_at: Option<String>,
    /// By level as written (`P1`).
    pub levels: BTreeMap<String, SlaSettings>,
}

impl<'de> Deserialize<'de> for SlaSection {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut out = SlaSection::default();
        for (key, value) in BTreeMap::<String, toml::Value>::deserialize(d)? {
            match value {
                toml::Value::String(s) if key == "warn_at" => out.warn_at = Some(s),
                toml::Value::Table(level) => {
                    let level: SlaSettings = toml::Value::Table(level)
                        .try_into()
                        .map_err(|e| D::Error::custom(format!("[sla.{key}]: {e}")))?;
                    out.levels.insert(key, level);
                }
                _ => {
                    return Err(D::Error::custom(format!(
                        "[sla] {key:?}: expected warn_at = \"80%\" or a level table such as [sla.P1]"
                    )));
                }
            }
        }
        Ok(out)
    }
}

/// `[sla.Pn]`: `name` and `response` in the default language, and
/// `[sla.Pn.<lang>]` tables (`name`, `response`, each optional) translating
/// them; a config without those tables reads as it always did. `response`
/// may be free text (shown as written, no clock); `resolve`, optional, is
/// a target (`"3d"`, `"3 business days"`) and runs the resolution clock
/// (empty: none, so an environment override can turn it off).
#[derive(Debug, Clone, Default)]
pub struct SlaSettings {
    pub name: String,
    pub response: String,
    pub resolve: Option<String>,
    pub translated: BTreeMap<String, SlaWords>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaWords {
    pub name: Option<String>,
    pub response: Option<String>,
}

impl<'de> Deserialize<'de> for SlaSettings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let table = BTreeMap::<String, toml::Value>::deserialize(d)?;
        let mut level = SlaSettings::default();
        let (mut name, mut response) = (None, None);
        for (key, value) in table {
            match value {
                toml::Value::String(s) if key == "name" => name = Some(s),
                toml::Value::String(s) if key == "response" => response = Some(s),
                toml::Value::String(s) if key == "resolve" => level.resolve = Some(s),
                toml::Value::Table(words) => {
                    let words: SlaWords = toml::Value::Table(words)
                        .try_into()
                        .map_err(|e| D::Error::custom(format!("[sla.Pn.{key}]: {e}")))?;
                    level.translated.insert(key, words);
                }
                _ => {
                    return Err(D::Error::custom(format!(
                        "unknown key {key:?}: expected name, response, resolve or a language table such as [sla.P1.ja]"
                    )));
                }
            }
        }
        level.name = name.ok_or_else(|| D::Error::missing_field("name"))?;
        level.response = response.ok_or_else(|| D::Error::missing_field("response"))?;
        Ok(level)
    }
}

/// `[statuses]`: a label per status name in the default language, and
/// `[statuses.<lang>]` tables of the same keys translating them.
#[derive(Debug, Clone, Default)]
pub struct StatusLabels {
    pub labels: BTreeMap<String, String>,
    pub translated: BTreeMap<String, BTreeMap<String, String>>,
}

impl<'de> Deserialize<'de> for StatusLabels {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Entry {
            Label(String),
            Language(BTreeMap<String, String>),
        }
        let mut out = StatusLabels::default();
        for (key, entry) in BTreeMap::<String, Entry>::deserialize(d)? {
            match entry {
                Entry::Label(label) => {
                    out.labels.insert(key, label);
                }
                Entry::Language(labels) => {
                    out.translated.insert(key, labels);
                }
            }
        }
        Ok(out)
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            database: DatabaseSettings::default(),
            mailbox: vec![MailboxSettings::default()],
            smtp: SmtpSettings::default(),
            support: SupportSettings::default(),
            intake: IntakeSettings::default(),
            outbox: OutboxSettings::default(),
            mentions: MentionSettings::default(),
            auth: AuthSettings::default(),
            admin: AdminSettings::default(),
            web: WebSettings::default(),
            sla: SlaSection::default(),
            business: BusinessSettings::default(),
            statuses: StatusLabels::default(),
            rules: RulesSettings::default(),
            retention: RetentionSettings::default(),
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: "sqlite://var/ticketgate.db".into(),
        }
    }
}

impl Default for MailboxSettings {
    fn default() -> Self {
        Self {
            name: "inbox".into(),
            kind: MailboxKind::Maildir,
            host: "127.0.0.1".into(),
            port: 993,
            tls: TlsMode::Tls,
            username: String::new(),
            password: String::new(),
            folder: "INBOX".into(),
            processed_folder: "Processed".into(),
            rejected_folder: "Rejected".into(),
            idle: true,
            poll_interval: Span(Duration::from_secs(1)),
            path: "var/maildir".into(),
            ca_file: String::new(),
            lease: Span(Duration::from_secs(30)),
        }
    }
}

impl Default for SmtpSettings {
    fn default() -> Self {
        Self {
            kind: SmtpKind::File,
            host: "127.0.0.1".into(),
            port: 25,
            tls: TlsMode::None,
            username: String::new(),
            password: String::new(),
            dir: "var/outbox".into(),
            ca_file: String::new(),
        }
    }
}

impl Default for SupportSettings {
    fn default() -> Self {
        Self {
            name: "Support".into(),
            address: "support@example.test".into(),
            domain: "example.test".into(),
            notify: String::new(),
            tag: "Support".into(),
            reply_secret: String::new(),
            reply_secret_file: "var/reply_secret".into(),
            timezone: "UTC".into(),
            notify_staff: NotifyStaff::Group,
        }
    }
}

impl Default for IntakeSettings {
    fn default() -> Self {
        Self {
            max_message_size: Size(50 * 1024 * 1024),
            keep_oversize: Size(1024 * 1024),
            allow_unknown_senders: false,
            auto_reply_window: Span(Duration::from_secs(600)),
            auto_reply_limit: Rate::default(),
        }
    }
}

impl Default for OutboxSettings {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            backoff: Span(Duration::from_secs(30)),
            lease: Span(Duration::from_secs(300)),
            attach_max: Size(10 * 1024 * 1024),
            excerpt_max: Size(64 * 1024),
            poll_interval: Span(Duration::from_secs(1)),
            concurrency: 8,
            templates: "templates".into(),
            keep_sent: Span(Duration::from_secs(30 * 86400)),
        }
    }
}

impl Default for MentionSettings {
    fn default() -> Self {
        Self { auto_follow: true }
    }
}

impl Default for AdminSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8025".into(),
            header_timeout: ListenLimits::DEFAULT.header_timeout,
            idle_timeout: ListenLimits::DEFAULT.idle_timeout,
            max_connections: ListenLimits::DEFAULT.max_connections,
            shutdown_timeout: ListenLimits::DEFAULT.shutdown_timeout,
        }
    }
}

impl AdminSettings {
    pub fn limits(&self) -> ListenLimits {
        ListenLimits {
            header_timeout: self.header_timeout,
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections,
            shutdown_timeout: self.shutdown_timeout,
        }
    }
}

/// What one HTTP listener (`[admin]`, `[web]`) grants a connection; see
/// `src/listen.rs`, which enforces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenLimits {
    pub header_timeout: Span,
    pub idle_timeout: Span,
    pub max_connections: usize,
    pub shutdown_timeout: Span,
}

impl ListenLimits {
    /// Ten seconds for a request head is ample on any real link; a minute of
    /// keep-alive spares browsers a new connection per page; 512 connections
    /// stay well below the usual file limit of 1,024 with both listeners on.
    pub const DEFAULT: ListenLimits = ListenLimits {
        header_timeout: Span(Duration::from_secs(10)),
        idle_timeout: Span(Duration::from_secs(60)),
        max_connections: 512,
        shutdown_timeout: Span(Duration::from_secs(10)),
    };
}

impl Default for ListenLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

const ENV_PREFIX: &str = "TICKETGATE__";

/// Where the Debian package puts the configuration.
pub const INSTALLED_CONFIG: &str = "/etc/ticketgate/ticketgate.toml";

impl Settings {
    /// Loads `path` if it exists (a missing default file means built-in defaults),
    /// then applies the environment. Without `path`: `config/ticketgate.toml`
    /// (a checkout), else `/etc/ticketgate/ticketgate.toml` (the Debian
    /// package), so `ticketgate check` on a server reads the service's file.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let local = Path::new("config/ticketgate.toml");
        let installed = Path::new(INSTALLED_CONFIG);
        let (path, required) = match path {
            Some(p) => (p, true),
            None if !local.exists() && installed.exists() => (installed, true),
            None => (local, false),
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        Self::from_sources(&text, &path.display().to_string(), std::env::vars())
    }

    /// Builds settings from TOML text and `(name, value)` environment pairs.
    pub fn from_sources(
        text: &str,
        origin: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
        let mut overrides: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        overrides.sort();
        for (key, value) in overrides {
            apply_override(&mut table, &key, value)?;
        }
        let settings: Settings =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    path: origin.to_string(),
                    message: e.to_string(),
                })?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: key.into(),
            message,
        };
        EmailAddress::parse(&self.support.address)
            .map_err(|e| invalid("support.address", e.to_string()))?;
        if !self.support.notify.is_empty() {
            EmailAddress::parse(&self.support.notify)
                .map_err(|e| invalid("support.notify", e.to_string()))?;
        }
        if self.support.domain.trim().is_empty() {
            return Err(invalid("support.domain", "must not be empty".into()));
        }
        if self.intake.max_message_size.0 == 0 {
            return Err(invalid(
                "intake.max_message_size",
                "must be larger than 0 (every message would be refused as too large)".into(),
            ));
        }
        for name in self.statuses.labels.keys() {
            name.parse::<Status>()
                .map_err(|e| invalid(&format!("statuses.{name}"), e.to_string()))?;
        }
        for (tag, labels) in &self.statuses.translated {
            translation_locale(tag).map_err(|m| invalid(&format!("statuses.{tag}"), m))?;
            for name in labels.keys() {
                name.parse::<Status>()
                    .map_err(|e| invalid(&format!("statuses.{tag}.{name}"), e.to_string()))?;
            }
        }
        for (level, sla) in &self.sla.levels {
            for tag in sla.translated.keys() {
                translation_locale(tag).map_err(|m| invalid(&format!("sla.{level}.{tag}"), m))?;
            }
        }
        self.timezone()?;
        self.clocks()?;
        let base = self.web.base_url.trim();
        let portal_on = !self.web.listen.trim().is_empty();
        if portal_on && !base.starts_with("http://") && !base.starts_with("https://") {
            return Err(invalid(
                "web.base_url",
                format!("must start with http:// or https:// (links in emails use it): {base:?}"),
            ));
        }
        if self.web.login_limit_address.count == 0 || self.web.login_limit_client.count == 0 {
            return Err(invalid(
                "web.login_limit_address",
                "a limit of 0 would refuse every sign-in".into(),
            ));
        }
        for (section, limits) in [("admin", self.admin.limits()), ("web", self.web.limits())] {
            if limits.max_connections == 0 {
                return Err(invalid(
                    &format!("{section}.max_connections"),
                    "must be at least 1 (0 would serve nobody)".into(),
                ));
            }
            for (key, span) in [
                ("header_timeout", limits.header_timeout),
                ("idle_timeout", limits.idle_timeout),
            ] {
                if span.0.is_zero() {
                    return Err(invalid(
                        &format!("{section}.{key}"),
                        "must be longer than 0 (every connection would be cut at once)".into(),
                    ));
                }
            }
        }
        if self.web.max_fields == 0 {
            return Err(invalid(
                "web.max_fields",
                "must be at least 1 (every form would be refused)".into(),
            ));
        }
        let mut names = std::collections::HashSet::new();
        for m in &self.mailbox {
            if !names.insert(m.name.to_ascii_lowercase()) {
                return Err(invalid(
                    "mailbox.name",
                    format!("duplicate mailbox name {:?}", m.name),
                ));
            }
        }
        Ok(())
    }

    pub fn support_address(&self) -> EmailAddress {
        EmailAddress::parse(&self.support.address).expect("validated at load")
    }

    pub fn notify_address(&self) -> Option<EmailAddress> {
        EmailAddress::parse(&self.support.notify).ok()
    }

    /// The rules of `[rules] file`, or the shipped defaults when the file is missing.
    pub fn rules(&self) -> Result<crate::domain::rules::RuleSet, ConfigError> {
        use crate::domain::rules::{DEFAULT_RULES, RuleSet};
        let path = Path::new(&self.rules.file);
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => DEFAULT_RULES.to_string(),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        RuleSet::parse(&text, &self.rules.file).map_err(|e| ConfigError::Invalid {
            key: "rules.file".into(),
            message: e.to_string(),
        })
    }

    /// `[statuses]` and `[sla]` in every language (validated at load).
    pub fn terms(&self) -> Terms {
        let by_status = |labels: &BTreeMap<String, String>| -> BTreeMap<Status, String> {
            labels
                .iter()
                .filter_map(|(k, v)| Some((k.parse().ok()?, v.clone())))
                .collect()
        };
        Terms {
            labels: by_status(&self.statuses.labels),
            translated_labels: self
                .statuses
                .translated
                .iter()
                .filter_map(|(tag, labels)| {
                    Some((translation_locale(tag).ok()?, by_status(labels)))
                })
                .collect(),
            levels: self
                .sla
                .levels
                .iter()
                .filter_map(|(k, v)| {
                    let level = Level {
                        name: v.name.clone(),
                        response: v.response.clone(),
                        translated: v
                            .translated
                            .iter()
                            .filter_map(|(tag, w)| {
                                let words = LevelWords {
                                    name: w.name.clone(),
                                    response: w.response.clone(),
                                };
                                Some((translation_locale(tag).ok()?, words))
                            })
                            .collect(),
                    };
                    Some((k.parse().ok()?, level))
                })
                .collect(),
        }
    }

    /// `[support] timezone`, in which dates in mail are shown.
    pub fn timezone(&self) -> Result<Zone, ConfigError> {
        Zone::parse(&self.support.timezone).map_err(|e| ConfigError::Invalid {
            key: "support.timezone".into(),
            message: e.to_string(),
        })
    }

    /// `[business]` and the `[sla]` targets, built once: the SLA clocks'
    /// calendar, each level's targets and `warn_at` (validated at load).
    /// A `response` that is not a target (free text) runs no clock; one in
    /// calendar days is refused, since clocks count business time.
    pub fn clocks(&self) -> Result<Clocks, ConfigError> {
        let invalid = |key: String, message: String| ConfigError::Invalid { key, message };
        let business = &self.business;
        let own_zone = !business.timezone.trim().is_empty();
        let timezone = if own_zone {
            &business.timezone
        } else {
            &self.support.timezone
        };
        let calendar = Calendar::parse(&CalendarText {
            timezone,
            days: &business.days,
            hours: &business.hours,
            holidays: &business.holidays,
        })
        .map_err(|e| {
            let key = match e.key.as_str() {
                "timezone" if !own_zone => "support.timezone".to_string(),
                key => format!("business.{key}"),
            };
            invalid(key, e.message)
        })?;
        let warn_at = match &self.sla.warn_at {
            Some(text) => text
                .parse::<WarnAt>()
                .map_err(|e| invalid("sla.warn_at".into(), e.to_string()))?,
            None => WarnAt::default(),
        };
        let mut targets = BTreeMap::new();
        for (level, sla) in &self.sla.levels {
            let Ok(priority) = level.parse::<Priority>() else {
                continue;
            };
            let clock_target = |key: &str, target: ResponseTime| {
                if target.is_business_time() {
                    Ok(target)
                } else {
                    Err(invalid(
                        format!("sla.{level}.{key}"),
                        "SLA clocks count business time: write \"N business days\" or \"Nd\", not calendar days".into(),
                    ))
                }
            };
            let response = match sla.response.parse::<ResponseTime>() {
                Ok(target) => Some(clock_target("response", target)?),
                Err(_) => None,
            };
            let resolve = match sla.resolve.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(text) => {
                    let target = text.parse::<ResponseTime>().map_err(|_| {
                        invalid(
                            format!("sla.{level}.resolve"),
                            format!("{text:?} is not a target such as \"4h\", \"3d\" or \"3 business days\""),
                        )
                    })?;
                    Some(clock_target("resolve", target)?)
                }
            };
            targets.insert(priority, Targets { response, resolve });
        }
        Ok(Clocks {
            calendar,
            targets,
            warn_at,
        })
    }

    /// The label of a status in the default language: from `[statuses]`,
    /// else the shipped one (what the CLI and the JSON API show).
    pub fn status_label(&self, status: Status) -> String {
        self.terms().default_label(status)
    }

    /// The reply-token secret: configured, or kept in `reply_secret_file` (created
    /// with 32 random bytes, mode 0600, on first use) so that the embedded default
    /// is safe without an operator choosing one.
    pub fn reply_secret(&self) -> Result<Vec<u8>, ConfigError> {
        if !self.support.reply_secret.is_empty() {
            return Ok(self.support.reply_secret.as_bytes().to_vec());
        }
        let path = Path::new(&self.support.reply_secret_file);
        let read_err = |source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) if !text.trim().is_empty() => return Ok(text.trim().as_bytes().to_vec()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(read_err(e)),
        }
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| read_err(std::io::Error::other(e.to_string())))?;
        let secret = hex::encode(bytes);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(read_err)?;
        }
        write_private(path, secret.as_bytes()).map_err(read_err)?;
        Ok(secret.into_bytes())
    }
}

#[cfg(unix)]
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, data)
}

/// The language a `[statuses.<lang>]` or `[sla.Pn.<lang>]` table
/// translates into: a shipped one other than the default, whose words are
/// the keys outside such tables.
fn translation_locale(tag: &str) -> Result<Locale, String> {
    match Locale::parse(tag) {
        Some(l) if l == Locale::default() => Err(format!(
            "the {tag:?} words are the keys outside language tables"
        )),
        Some(l) => Ok(l),
        None => Err(format!(
            "not a shipped language (one of: {})",
            Locale::ALL
                .iter()
                .filter(|l| **l != Locale::default())
                .map(|l| l.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// `TICKETGATE__SMTP__PORT=2525` sets `smtp.port`; `TICKETGATE__MAILBOX__INBOX__HOST`
/// sets `host` of the mailbox named `inbox` (created if no mailbox has that name).
fn apply_override(table: &mut toml::Table, key: &str, value: String) -> Result<(), ConfigError> {
    let parts: Vec<String> = key[ENV_PREFIX.len()..]
        .split("__")
        .map(|p| p.to_ascii_lowercase())
        .collect();
    let invalid = || ConfigError::Invalid {
        key: key.to_string(),
        message: "expected TICKETGATE__SECTION__KEY".into(),
    };
    match parts.as_slice() {
        [section, name, field] if section == "mailbox" => {
            let list = table
                .entry("mailbox")
                .or_insert_with(|| toml::Value::Array(Vec::new()));
            let toml::Value::Array(list) = list else {
                return Err(invalid());
            };
            let position = list.iter().position(|m| {
                m.get("name")
                    .and_then(|n| n.as_str())
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            });
            let index = match position {
                Some(i) => i,
                None => {
                    let mut fresh = toml::Table::new();
                    fresh.insert("name".into(), toml::Value::String(name.clone()));
                    list.push(toml::Value::Table(fresh));
                    list.len() - 1
                }
            };
            let toml::Value::Table(mailbox) = &mut list[index] else {
                return Err(invalid());
            };
            mailbox.insert(field.clone(), toml::Value::String(value));
        }
        [section, field] if !section.is_empty() && !field.is_empty() => {
            let entry = table
                .entry(section.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let toml::Value::Table(section) = entry else {
                return Err(invalid());
            };
            section.insert(field.clone(), toml::Value::String(value));
        }
        // `SLA__P1__NAME`, `STATUSES__JA__NEW`, `SLA__P1__JA__NAME`: a level
        // is written upper case, a language lower case.
        [section, path @ .., field]
            if (section == "sla" && matches!(path.len(), 1 | 2))
                || (section == "statuses" && path.len() == 1) =>
        {
            let mut here = table
                .entry(section.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            for (depth, key) in path.iter().enumerate() {
                let key = if section == "sla" && depth == 0 {
                    key.to_ascii_uppercase()
                } else {
                    key.clone()
                };
                let toml::Value::Table(t) = here else {
                    return Err(invalid());
                };
                here = t
                    .entry(key)
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            }
            let toml::Value::Table(t) = here else {
                return Err(invalid());
            };
            t.insert(field.clone(), toml::Value::String(value));
        }
        _ => return Err(invalid()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_match_by_their_prefix() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let ten = Network::parse("10.0.0.0/8").unwrap();
        assert!(ten.contains(ip("10.200.3.4")));
        assert!(!ten.contains(ip("11.0.0.1")));
        assert!(
            ten.contains(ip("::ffff:10.1.2.3")),
            "IPv4 through an IPv6 socket"
        );
        let one = Network::parse("192.0.2.7").unwrap();
        assert!(one.contains(ip("192.0.2.7")));
        assert!(!one.contains(ip("192.0.2.8")));
        let odd = Network::parse("192.0.2.0/25").unwrap();
        assert!(odd.contains(ip("192.0.2.127")));
        assert!(!odd.contains(ip("192.0.2.128")));
        let v6 = Network::parse("fd00::/8").unwrap();
        assert!(v6.contains(ip("fd12:3456::1")));
        assert!(!v6.contains(ip("fe80::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        assert!(
            Network::parse("0.0.0.0/0")
                .unwrap()
                .contains(ip("203.0.113.9"))
        );
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "proxy",
            "10.0.0.1/",
            "",
        ] {
            assert_eq!(Network::parse(bad), None, "{bad}");
        }
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_the_embedded_setup() {
        let s = Settings::from_sources("", "test", env(&[])).unwrap();
        assert_eq!(s.database.url, "sqlite://var/ticketgate.db");
        assert_eq!(s.mailbox.len(), 1);
        assert_eq!(s.mailbox[0].kind, MailboxKind::Maildir);
        assert_eq!(s.smtp.kind, SmtpKind::File);
        assert_eq!(s.intake.max_message_size, Size(50 * 1024 * 1024));
        assert!(!s.intake.allow_unknown_senders);
        assert!(s.admin.listen.starts_with("127.0.0.1:"));
        assert_eq!(s.web.limits(), ListenLimits::DEFAULT);
        assert_eq!(s.admin.limits(), ListenLimits::DEFAULT);
        assert_eq!((s.web.max_fields, s.web.max_files), (1000, 100));
    }

    #[test]
    fn listener_limits_come_from_the_environment_too() {
        let s = Settings::from_sources(
            "",
            "test",
            env(&[
                ("TICKETGATE__WEB__HEADER_TIMEOUT", "1s"),
                ("TICKETGATE__WEB__MAX_CONNECTIONS", "8"),
                ("TICKETGATE__WEB__MAX_FILES", "3"),
                ("TICKETGATE__ADMIN__SHUTDOWN_TIMEOUT", "2s"),
            ]),
        )
        .unwrap();
        assert_eq!(s.web.header_timeout, Span(Duration::from_secs(1)));
        assert_eq!(s.web.max_connections, 8);
        assert_eq!(s.web.max_files, 3);
        assert_eq!(s.admin.shutdown_timeout, Span(Duration::from_secs(2)));
        let zero = env(&[("TICKETGATE__ADMIN__MAX_CONNECTIONS", "0")]);
        assert!(Settings::from_sources("", "t", zero).is_err());
    }

    #[test]
    fn environment_overrides_file_values() {
        let text = "[smtp]\nkind = \"smtp\"\nport = 25\n[[mailbox]]\nname = \"Support\"\nkind = \"imap\"\n";
        let s = Settings::from_sources(
            text,
            "test",
            env(&[
                ("TICKETGATE__SMTP__PORT", "2525"),
                ("TICKETGATE__INTAKE__ALLOW_UNKNOWN_SENDERS", "true"),
                ("TICKETGATE__INTAKE__MAX_MESSAGE_SIZE", "10MB"),
                ("TICKETGATE__MAILBOX__SUPPORT__PORT", "10993"),
                ("TICKETGATE__MAILBOX__SUPPORT__PASSWORD", "12345"),
                ("TICKETGATE__STATUSES__ESCALATED", "Sent to engineering"),
                ("OTHER__SMTP__PORT", "1"),
            ]),
        )
        .unwrap();
        assert_eq!(s.smtp.port, 2525);
        assert!(s.intake.allow_unknown_senders);
        assert_eq!(s.intake.max_message_size, Size(10 * 1024 * 1024));
        assert_eq!(s.mailbox[0].port, 10993);
        assert_eq!(s.mailbox[0].password, "12345");
        assert_eq!(s.status_label(Status::Escalated), "Sent to engineering");
        assert_eq!(s.status_label(Status::InProgress), "In Progress");
    }

    #[test]
    fn spans_and_sizes_parse() {
        assert_eq!(parse_span("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_span("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_span("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_span("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_span("soon"), None);
        // Calendar time for rules: a day is 24 hours, a year 365 days.
        let day = 86_400;
        let cases = [
            ("90s", Some(90)),
            ("30m", Some(30 * 60)),
            ("4h", Some(4 * 3600)),
            ("3d", Some(3 * day)),
            ("2w", Some(14 * day)),
            ("2 weeks", Some(14 * day)),
            ("1y", Some(365 * day)),
            ("99999999999999999999y", None),
            ("3 fortnights", None),
            ("-3d", None),
        ];
        for (text, secs) in cases {
            assert_eq!(parse_span(text), secs.map(Duration::from_secs), "{text}");
        }
        assert_eq!(parse_size("25MB"), Some(25 * 1024 * 1024));
        assert_eq!(parse_size("512 KB"), Some(512 * 1024));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("lots"), None);
    }

    #[test]
    fn mistakes_are_reported_not_ignored() {
        assert!(Settings::from_sources("[smtp]\nprot = 25\n", "t", env(&[])).is_err());
        assert!(Settings::from_sources("[support]\naddress = \"nope\"\n", "t", env(&[])).is_err());
        assert!(Settings::from_sources("", "t", env(&[("TICKETGATE__SMTP__PORT", "x")])).is_err());
        assert!(Settings::from_sources("[statuses]\nfinished = \"F\"\n", "t", env(&[])).is_err());
        for wrong in [
            "[statuses.fr]\nnew = \"Nouveau\"\n",
            "[statuses.en]\nnew = \"Fresh\"\n",
            "[statuses.ja]\nfinished = \"済\"\n",
            "[sla.P1]\nname = \"A\"\nresponse = \"1 hour\"\n[sla.P1.de]\nname = \"B\"\n",
            "[sla.P1]\nname = \"A\"\nresponse = \"1 hour\"\n[sla.P1.ja]\ntitle = \"B\"\n",
            "[sla.P1]\nname = \"A\"\nresponse = \"1 hour\"\ncolour = \"red\"\n",
            "[sla.P1]\nname = \"A\"\n",
        ] {
            assert!(
                Settings::from_sources(wrong, "t", env(&[])).is_err(),
                "{wrong}"
            );
        }
    }

    /// `[statuses]` and `[sla]` as every config had them before they could
    /// be translated: the same English, and Japanese readers get the
    /// shipped labels and the targets said in Japanese.
    #[test]
    fn a_config_without_language_tables_loads_and_reads_as_before() {
        use crate::domain::ticket::Priority;
        let old = r#"
[statuses]
new = "New"
in_progress = "In Progress"
blocked = "Blocked"
closed = "Closed"
escalated = "Closed - Escalated to TEM"

[sla.P1]
name = "Critical"
response = "1 hour"

[sla.P3]
name = "Medium"
response = "1 business day"
"#;
        let s = Settings::from_sources(old, "old.toml", env(&[])).unwrap();
        let terms = s.terms();
        assert_eq!(s.status_label(Status::InProgress), "In Progress");
        assert_eq!(terms.label(Status::InProgress, Locale::Ja), "対応中");
        assert_eq!(
            terms.sla(Priority::P3),
            Some(("Medium".into(), "1 business day".into()))
        );
        assert_eq!(
            terms.sla_in(Priority::P3, Locale::En),
            Some(("Medium".into(), "1 business day".into()))
        );
        assert_eq!(
            terms.sla_in(Priority::P3, Locale::Ja),
            Some(("中".into(), "1営業日".into()))
        );
        assert_eq!(terms.sla(Priority::P2), None);
    }

    #[test]
    fn the_shipped_config_loads_with_its_japanese_words() {
        use crate::domain::ticket::Priority;
        let text = include_str!("../config/ticketgate.toml");
        let s = Settings::from_sources(text, "config/ticketgate.toml", env(&[])).unwrap();
        let terms = s.terms();
        for status in Status::ALL {
            let ja = terms.label(*status, Locale::Ja);
            assert!(!ja.is_ascii(), "{status}: {ja}");
            assert_eq!(terms.default_label(*status), status.default_label());
        }
        for p in Priority::ALL {
            let (name, response) = terms.sla_in(*p, Locale::Ja).expect("every level");
            assert!(
                !name.is_ascii() && !response.is_ascii(),
                "{p}: {name} {response}"
            );
            let (name, response) = terms.sla(*p).unwrap();
            assert!(
                name.is_ascii() && response.is_ascii(),
                "{p}: {name} {response}"
            );
        }
    }

    fn invalid_key(text: &str, vars: &[(&str, &str)]) -> Option<String> {
        match Settings::from_sources(text, "t", env(vars)) {
            Err(ConfigError::Invalid { key, .. }) => Some(key),
            _ => None,
        }
    }

    #[test]
    fn the_shipped_config_runs_clocks_on_every_level() {
        use crate::domain::business::Calendar;
        let text = include_str!("../config/ticketgate.toml");
        let s = Settings::from_sources(text, "config/ticketgate.toml", env(&[])).unwrap();
        let clocks = s.clocks().unwrap();
        assert_eq!(clocks.calendar, Calendar::default());
        assert_eq!(clocks.warn_at, WarnAt::default());
        let expected = [
            (Priority::P1, "1 hour", "1d"),
            (Priority::P2, "4 hours", "3d"),
            (Priority::P3, "1 business day", "5d"),
            (Priority::P4, "3 business days", "10d"),
        ];
        for (p, response, resolve) in expected {
            let targets = clocks.targets(p);
            assert_eq!(targets.response, response.parse().ok(), "{p}");
            assert_eq!(targets.resolve, resolve.parse().ok(), "{p}");
        }
        // Without a config: the default calendar, no targets.
        let bare = Settings::from_sources("", "t", env(&[]))
            .unwrap()
            .clocks()
            .unwrap();
        assert_eq!(bare, Clocks::default());
    }

    #[test]
    fn business_hours_and_targets_come_from_the_file_and_the_environment() {
        use crate::domain::business::CalendarText;
        let text = r#"
[support]
timezone = "Asia/Tokyo"

[business]
days = ["Mon", "tuesday", "WED", "thu", "fri", "sat"]
hours = "08:30-18:00"
holidays = ["2026-12-25", "2027-01-01"]

[sla]
warn_at = "75%"

[sla.P1]
name = "Critical"
response = "30m"
resolve = "4h"

[sla.P2]
name = "High"
response = "next morning"
"#;
        let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let calendar = |zone, days: &[&str], hours, holidays: &[&str]| {
            Calendar::parse(&CalendarText {
                timezone: zone,
                days: &strings(days),
                hours,
                holidays: &strings(holidays),
            })
            .unwrap()
        };
        let clocks = Settings::from_sources(text, "t", env(&[]))
            .unwrap()
            .clocks()
            .unwrap();
        // The zone follows [support] timezone.
        let six_days = ["mon", "tue", "wed", "thu", "fri", "sat"];
        assert_eq!(
            clocks.calendar,
            calendar(
                "Asia/Tokyo",
                &six_days,
                "08:30-18:00",
                &["2026-12-25", "2027-01-01"]
            )
        );
        assert_eq!(clocks.warn_at.percent(), 75);
        let p1 = clocks.targets(Priority::P1);
        assert_eq!(
            (p1.response, p1.resolve),
            ("30 minutes".parse().ok(), "4 hours".parse().ok())
        );
        // Free text is shown as written and runs no clock.
        assert_eq!(clocks.targets(Priority::P2), Targets::default());

        let s = Settings::from_sources(
            text,
            "t",
            env(&[
                ("TICKETGATE__BUSINESS__TIMEZONE", "Europe/Berlin"),
                ("TICKETGATE__BUSINESS__DAYS", "mon, tue"),
                ("TICKETGATE__BUSINESS__HOLIDAYS", ""),
                ("TICKETGATE__SLA__WARN_AT", "90%"),
                ("TICKETGATE__SLA__P2__RESOLVE", "2w"),
                ("TICKETGATE__SLA__P1__RESOLVE", ""),
            ]),
        )
        .unwrap();
        let clocks = s.clocks().unwrap();
        assert_eq!(
            clocks.calendar,
            calendar("Europe/Berlin", &["mon", "tue"], "08:30-18:00", &[])
        );
        assert_eq!(clocks.warn_at.percent(), 90);
        assert_eq!(clocks.targets(Priority::P1).resolve, None);
        assert_eq!(clocks.targets(Priority::P2).resolve, "2 weeks".parse().ok());
        // The level's words are untouched by the new keys.
        assert_eq!(
            s.terms().sla(Priority::P1),
            Some(("Critical".into(), "30m".into()))
        );
    }

    #[test]
    fn clock_settings_are_refused_naming_the_key() {
        let level = "[sla.P1]\nname = \"A\"\nresponse = \"1 hour\"\n";
        /// The file, the environment, the key named.
        type Case = (
            String,
            &'static [(&'static str, &'static str)],
            &'static str,
        );
        let cases: &[Case] = &[
            (
                "[business]\nhours = \"17:00-09:00\"\n".into(),
                &[],
                "business.hours",
            ),
            (
                "[business]\nhours = \"9 to 5\"\n".into(),
                &[],
                "business.hours",
            ),
            ("[business]\ndays = []\n".into(), &[], "business.days"),
            (
                "[business]\ndays = [\"mon\", \"fri\", \"caturday\"]\n".into(),
                &[],
                "business.days[2]",
            ),
            (
                "[business]\nholidays = [\"2026-12-24\", \"2026-12-25\", \"26 Dec\"]\n".into(),
                &[],
                "business.holidays[2]",
            ),
            (
                "[business]\ntimezone = \"Moon/Base\"\n".into(),
                &[],
                "business.timezone",
            ),
            (
                "[support]\ntimezone = \"Moon/Base\"\n".into(),
                &[],
                "support.timezone",
            ),
            ("[sla]\nwarn_at = \"eighty\"\n".into(), &[], "sla.warn_at"),
            (
                String::new(),
                &[("TICKETGATE__SLA__WARN_AT", "0%")],
                "sla.warn_at",
            ),
            (
                format!("{level}resolve = \"soon\"\n"),
                &[],
                "sla.P1.resolve",
            ),
            (
                format!("{level}resolve = \"2 calendar days\"\n"),
                &[],
                "sla.P1.resolve",
            ),
            (
                level.replace("1 hour", "2 calendar days"),
                &[],
                "sla.P1.response",
            ),
            (
                level.into(),
                &[("TICKETGATE__SLA__P1__RESOLVE", "0h")],
                "sla.P1.resolve",
            ),
            (
                String::new(),
                &[("TICKETGATE__BUSINESS__DAYS", "sun,someday")],
                "business.days[1]",
            ),
        ];
        for (text, vars, key) in cases {
            assert_eq!(
                invalid_key(text, vars).as_deref(),
                Some(*key),
                "{text} {vars:?}"
            );
        }
        // Not a value at all: a parse error, not a panic.
        for wrong in [
            "[sla]\nwarn_at = 80\n",
            "[business]\ndays = 5\n",
            "[business]\nweekends = true\n",
        ] {
            assert!(
                matches!(
                    Settings::from_sources(wrong, "t", env(&[])),
                    Err(ConfigError::Parse { .. })
                ),
                "{wrong}"
            );
        }
    }

    #[test]
    fn translations_come_from_the_file_and_the_environment() {
        use crate::domain::ticket::Priority;
        let text = r#"
[statuses]
escalated = "Sent to engineering"
[statuses.ja]
escalated = "開発部門へ移管"
[sla.P1]
name = "Gold"
response = "next morning"
[sla.P1.ja]
name = "ゴールド"
"#;
        let s = Settings::from_sources(
            text,
            "t",
            env(&[
                ("TICKETGATE__STATUSES__JA__BLOCKED", "お客様の回答待ち"),
                ("TICKETGATE__SLA__P1__JA__RESPONSE", "翌朝"),
                ("TICKETGATE__SLA__P2__NAME", "Silver"),
                ("TICKETGATE__SLA__P2__RESPONSE", "2 days"),
            ]),
        )
        .unwrap();
        let terms = s.terms();
        assert_eq!(s.status_label(Status::Escalated), "Sent to engineering");
        assert_eq!(terms.label(Status::Escalated, Locale::Ja), "開発部門へ移管");
        assert_eq!(terms.label(Status::Blocked, Locale::Ja), "お客様の回答待ち");
        assert_eq!(
            terms.sla_in(Priority::P1, Locale::Ja),
            Some(("ゴールド".into(), "翌朝".into()))
        );
        assert_eq!(
            terms.sla_in(Priority::P2, Locale::Ja),
            Some(("Silver".into(), "2日".into()))
        );
    }
}
