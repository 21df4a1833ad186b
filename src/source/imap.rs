//! IMAP intake (RFC 3501 / RFC 9051), one task per configured mailbox.
//!
//! Exactly once: messages are fetched by UID with `BODY.PEEK[]` (nothing is
//! marked read), ingested, and only after their outcome is committed moved out
//! of the folder with UID MOVE (RFC 6851), or COPY + `\Deleted` + UID EXPUNGE
//! (RFC 6851 §3.3, RFC 4315) where MOVE is missing. The cursor (UIDVALIDITY,
//! last UID) commits in the same transaction as each outcome, so a message
//! committed just before a crash is moved on restart instead of ingested again;
//! a new UIDVALIDITY (RFC 3501 §2.3.1.1) discards the cursor and the ingest
//! log turns repeats into `duplicate`. New mail is pushed with IDLE (RFC 2177)
//! when offered, re-issued well before the 29-minute limit; otherwise polled.
//!
//! One poller per mailbox across instances: before connecting, a poller takes
//! the mailbox's lease in the store (`Store::acquire_lease`) and renews it every
//! third of `lease`; an instance without it stands by and asks again at that
//! pace. The session is dropped the moment a renewal fails, is refused, or
//! cannot finish before the lease would run out, so a holder cut off from the
//! database stops taking messages before anyone else may start. When the
//! holder dies, another instance takes over within `lease` plus a third of it.
//! Should two pollers ever overlap (clock skew, a stalled process waking up),
//! nothing breaks: the ingest log's unique dedup key turns the second taking of
//! a message into `duplicate`, and only committed messages are moved.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Duration;

use async_imap::Session;
use async_imap::extensions::idle::IdleResponse;
use futures_util::TryStreamExt;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_util::sync::CancellationToken;

use super::{Delivery, MailSink, SinkError, SourceCursor};
use crate::config::{MailboxSettings, TlsMode};
use crate::domain::outcome::Outcome;
use crate::store::{Store, StoreError};

/// The connection under the IMAP client: plain TCP or TLS.
#[derive(Debug)]
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    #[error("connecting to {0}: {1}")]
    Connect(String, #[source] io::Error),
    #[error("TLS setup: {0}")]
    TlsSetup(String),
    #[error("login refused for {0}: {1}")]
    Auth(String, String),
    #[error("IMAP: {0}")]
    Protocol(#[from] async_imap::error::Error),
    #[error("server greeting missing or refused")]
    Greeting,
    #[error("no progress: {0}")]
    Stuck(String),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("mailbox lease lost: {0}")]
    LeaseLost(String),
}

impl ImapError {
    /// Authentication failures are retried slowly: hammering a server with a
    /// wrong password gets the account locked.
    pub fn is_auth(&self) -> bool {
        matches!(self, ImapError::Auth(..))
    }
}

pub use crate::health::MailboxState;

/// This process as a lease holder: host and pid for people reading the
/// `mailbox_leases` table, plus a random part so a restarted process that
/// reuses a pid is not mistaken for its predecessor.
pub fn holder_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let host = ["/proc/sys/kernel/hostname", "/etc/hostname"]
            .iter()
            .find_map(|p| std::fs::read_to_string(p).ok())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unknown-host".into());
        format!(
            "{host}/{}/{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        )
    })
}

/// One mailbox's poller.
pub struct ImapPoller {
    settings: MailboxSettings,
    sink: Arc<dyn MailSink>,
    store: Arc<dyn Store>,
    tls: Option<TlsConnector>,
    state: Arc<tokio::sync::watch::Sender<MailboxState>>,
    /// Connections attempted so far (metrics; tests check there is no hot loop).
    attempts: Arc<std::sync::atomic::AtomicU64>,
    /// The wait before the next connection while it lasts, `None` otherwise.
    retry_in: Arc<tokio::sync::watch::Sender<Option<Duration>>>,
    /// Messages whose ingest failed, by (UIDVALIDITY, UID): how many times.
    /// Each failure ends the session, so they are retried with its backoff.
    failing: Arc<std::sync::Mutex<HashMap<(u32, u32), u32>>>,
}

/// After this many failed attempts a message is logged
/// `rejected`/`processing_failed` from its header section and moved to the
/// rejected folder, so it holds up the mail behind it no longer.
const GIVE_UP_AFTER: u32 = 5;

type ImapSession = Session<Conn>;
/// A UID with its RFC822.SIZE.
type UidSize = (u32, u64);

// Messages fetched per UID FETCH, and the most bytes fetched at once, are
// every source's batch bounds.
use super::{BATCH_BYTES, BATCH_MESSAGES};
/// A fetched message: UID, the declared size when only its header was
/// fetched (over the size limit), and the bytes.
type Fetched = (u32, Option<u64>, Vec<u8>);

/// What an ingest task committed, by the folder each UID goes to.
#[derive(Default)]
struct Taken {
    /// UIDs handed to the task (for the stuck-server check).
    listed: usize,
    processed: Vec<u32>,
    rejected: Vec<u32>,
    failure: Option<SinkError>,
}

/// An ingest running beside the IMAP session. Dropped unfinished (the poller
/// stopped or lost its lease), it is aborted: an open transaction rolls back
/// and its messages stay in the folder.
struct RecordTask(tokio::task::JoinHandle<Taken>);

impl RecordTask {
    async fn finish(mut self) -> Result<Taken, ImapError> {
        (&mut self.0)
            .await
            .map_err(|e| ImapError::Stuck(format!("ingest task failed: {e}")))
    }
}

impl Drop for RecordTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// IDLE is re-issued before the 29-minute inactivity limit (RFC 2177 §3).
const IDLE_RENEW: Duration = Duration::from_secs(25 * 60);

fn tls_connector(settings: &MailboxSettings) -> Result<TlsConnector, ImapError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if !settings.ca_file.is_empty() {
        let certs = CertificateDer::pem_file_iter(Path::new(&settings.ca_file))
            .map_err(|e| ImapError::TlsSetup(format!("{}: {e}", settings.ca_file)))?;
        for cert in certs {
            let cert =
                cert.map_err(|e| ImapError::TlsSetup(format!("{}: {e}", settings.ca_file)))?;
            roots
                .add(cert)
                .map_err(|e| ImapError::TlsSetup(e.to_string()))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ImapError::TlsSetup(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// `1:3,5,7:9` for a sorted set of UIDs.
pub fn uid_set(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end + 1 {
            i += 1;
            end = uids[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

/// Records `deliveries` one at a time, up to the first that fails. A message
/// the store refused `GIVE_UP_AFTER` times is recorded as given up on instead
/// (its header section, `processing_failed`) and goes to the rejected folder;
/// a transient failure (the store's: a full disk, I/O) counts for no message,
/// and they all stay in the folder until the store is back.
async fn one_by_one(
    sink: &dyn MailSink,
    deliveries: &[Delivery<'_>],
    validity: u32,
    failing: &std::sync::Mutex<HashMap<(u32, u32), u32>>,
    taken: &mut Taken,
) -> Result<(), SinkError> {
    for d in deliveries {
        let uid = d.cursor.map_or(0, |c| c.uid);
        let outcome = match sink.record(std::slice::from_ref(d)).await {
            Ok(outcomes) => outcomes.first().copied(),
            // The store cannot record anything now (a full disk, I/O): the
            // message is not at fault and stays in the folder, uncounted.
            Err(e) if e.transient => {
                crate::source::report_store(sink.store().as_ref(), Err(&e));
                return Err(e);
            }
            Err(e) => {
                let failures = {
                    let mut failing = failing.lock().unwrap_or_else(|p| p.into_inner());
                    let n = failing.entry((validity, uid)).or_insert(0);
                    *n += 1;
                    *n
                };
                tracing::warn!(uid, failures, error = %e, "ingest of a message failed");
                if failures < GIVE_UP_AFTER {
                    return Err(e);
                }
                let headers = &d.raw[..crate::source::header_section_len(d.raw)];
                let outcomes = sink
                    .record(&[Delivery {
                        raw: headers,
                        declared_size: Some(d.declared_size.unwrap_or(d.raw.len() as u64)),
                        failed: true,
                        ..*d
                    }])
                    .await?;
                tracing::error!(
                    uid,
                    "message failed repeatedly: logged rejected/processing_failed and moved aside"
                );
                outcomes.first().copied()
            }
        };
        failing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(validity, uid));
        if outcome == Some(Outcome::Rejected) {
            taken.rejected.push(uid);
        } else {
            taken.processed.push(uid);
        }
    }
    Ok(())
}

/// Connects, upgrades to TLS as configured (RFC 3501 §6.2.1 for STARTTLS)
/// and logs in.
async fn connect(
    s: &MailboxSettings,
    tls: Option<&TlsConnector>,
) -> Result<ImapSession, ImapError> {
    let address = format!("{}:{}", s.host, s.port);
    let tcp = TcpStream::connect(&address)
        .await
        .map_err(|e| ImapError::Connect(address.clone(), e))?;
    tcp.set_nodelay(true).ok();
    let server_name = || {
        ServerName::try_from(s.host.clone())
            .map_err(|e| ImapError::TlsSetup(format!("server name {}: {e}", s.host)))
    };
    let client = match (s.tls, tls) {
        (TlsMode::Tls, Some(connector)) => {
            let tls = connector
                .connect(server_name()?, tcp)
                .await
                .map_err(|e| ImapError::Connect(address.clone(), e))?;
            let mut client = async_imap::Client::new(Conn::Tls(Box::new(tls)));
            greeting(&mut client, &address).await?;
            client
        }
        (TlsMode::Starttls, Some(connector)) => {
            let mut client = async_imap::Client::new(Conn::Plain(tcp));
            greeting(&mut client, &address).await?;
            client.run_command_and_check_ok("STARTTLS", None).await?;
            let Conn::Plain(tcp) = client.into_inner() else {
                unreachable!("plain before STARTTLS")
            };
            let tls = connector
                .connect(server_name()?, tcp)
                .await
                .map_err(|e| ImapError::Connect(address.clone(), e))?;
            // RFC 3501 §6.2.1: no second greeting after STARTTLS.
            async_imap::Client::new(Conn::Tls(Box::new(tls)))
        }
        _ => {
            let mut client = async_imap::Client::new(Conn::Plain(tcp));
            greeting(&mut client, &address).await?;
            client
        }
    };
    client
        .login(&s.username, &s.password)
        .await
        .map_err(|(e, _)| match e {
            async_imap::error::Error::No(text) | async_imap::error::Error::Bad(text) => {
                ImapError::Auth(s.username.clone(), server_words(&text))
            }
            other => ImapError::Protocol(other),
        })
}

/// The server's own words from async-imap's rendering of a tagged NO or BAD
/// (`code: None, info: Some("[AUTHENTICATIONFAILED] Authentication failed.")`),
/// for logs and `ticketgate check`; anything else as it is.
fn server_words(text: &str) -> String {
    text.split_once("info: Some(\"")
        .and_then(|(_, rest)| rest.strip_suffix("\")"))
        .map(|words| words.replace("\\\"", "\""))
        .unwrap_or_else(|| text.to_string())
}

/// Reads the server's greeting ourselves: skipping it would hide BYE or
/// PREAUTH (RFC 3501 §7.1).
async fn greeting(client: &mut async_imap::Client<Conn>, address: &str) -> Result<(), ImapError> {
    client
        .read_response()
        .await
        .map_err(|e| ImapError::Connect(address.to_string(), e))?
        .ok_or(ImapError::Greeting)?;
    Ok(())
}

/// What `ticketgate check` learns of a mailbox: it logs in, and which of its
/// folders are missing. The inbox folder must exist; the processed and
/// rejected folders are created by `serve` when missing, so they are only
/// reported.
pub struct Probe {
    /// The folder to read from is missing.
    pub folder_missing: bool,
    /// Processed or rejected folders `serve` will create.
    pub to_create: Vec<String>,
}

/// Logs in to a mailbox, lists its folders and logs out (no message is
/// touched): the pre-flight check of `ticketgate check`.
pub async fn probe(settings: &MailboxSettings) -> Result<Probe, ImapError> {
    let tls = match settings.tls {
        TlsMode::None => None,
        TlsMode::Starttls | TlsMode::Tls => Some(tls_connector(settings)?),
    };
    let mut session = connect(settings, tls.as_ref()).await?;
    let mut names = Vec::new();
    {
        let mut list = session.list(Some(""), Some("*")).await?;
        while let Some(name) = list.try_next().await? {
            names.push(name.name().to_string());
        }
    }
    session.logout().await.ok();
    let has = |folder: &str| {
        names.iter().any(|n| {
            n == folder || (folder.eq_ignore_ascii_case("INBOX") && n.eq_ignore_ascii_case("INBOX"))
        })
    };
    Ok(Probe {
        folder_missing: !has(&settings.folder),
        to_create: [&settings.processed_folder, &settings.rejected_folder]
            .into_iter()
            .filter(|f| !has(f))
            .cloned()
            .collect(),
    })
}

impl ImapPoller {
    pub fn new(settings: MailboxSettings, sink: impl MailSink) -> Result<Self, ImapError> {
        let tls = match settings.tls {
            TlsMode::None => None,
            TlsMode::Starttls | TlsMode::Tls => Some(tls_connector(&settings)?),
        };
        let (state, _) = tokio::sync::watch::channel(MailboxState::Disconnected);
        Ok(Self {
            settings,
            store: sink.store(),
            sink: Arc::new(sink),
            tls,
            state: Arc::new(state),
            attempts: Arc::default(),
            retry_in: Arc::new(tokio::sync::watch::channel(None).0),
            failing: Arc::default(),
        })
    }

    /// Follows the connection state (for readiness and metrics).
    pub fn state(&self) -> tokio::sync::watch::Receiver<MailboxState> {
        self.state.subscribe()
    }

    /// Counts connection attempts.
    pub fn attempts(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.attempts.clone()
    }

    /// Follows the wait before the next connection (`None` while not waiting),
    /// so a test sees the backoff a failure led to without sitting it out.
    pub fn retry_in(&self) -> tokio::sync::watch::Receiver<Option<Duration>> {
        self.retry_in.subscribe()
    }

    fn set_state(&self, state: MailboxState) {
        self.state.send_replace(state);
    }

    /// Runs until cancelled: reconnects after any failure with exponential
    /// backoff and jitter (1 s doubling to 5 min; at least a minute after a
    /// refused login).
    pub async fn run(self, cancel: CancellationToken) {
        let name = self.settings.name.clone();
        let mut backoff = Duration::from_secs(1);
        loop {
            let Some(valid_until) = self.wait_for_lease(&cancel).await else {
                return;
            };
            let started = tokio::time::Instant::now();
            let result = tokio::select! {
                r = self.session(&cancel) => r,
                why = self.keep_lease(valid_until) => Err(ImapError::LeaseLost(why)),
            };
            self.set_state(MailboxState::Disconnected);
            let error = match result {
                Ok(()) => {
                    // Shutting down: hand the mailbox over without making the
                    // next instance wait for the lease to expire.
                    if let Err(e) = self
                        .store
                        .release_lease(&self.lease_key(), holder_id())
                        .await
                    {
                        tracing::warn!(mailbox = %name, error = %e, "cannot release the mailbox lease; it will expire");
                    }
                    return;
                }
                Err(e) => e,
            };
            if started.elapsed() > Duration::from_secs(60) {
                backoff = Duration::from_secs(1);
            }
            let mut wait = backoff;
            if error.is_auth() {
                wait = wait.max(Duration::from_secs(60));
                tracing::error!(mailbox = %name, error = %error, "IMAP login refused; check username and password");
            } else {
                tracing::warn!(mailbox = %name, error = %error, retry_in = ?wait, "IMAP connection failed");
            }
            let jitter = Duration::from_millis(u64::from(uuid::Uuid::new_v4().as_bytes()[0]) * 4);
            self.retry_in.send_replace(Some(wait + jitter));
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(wait + jitter) => {}
            }
            self.retry_in.send_replace(None);
            backoff = (backoff * 2).min(Duration::from_secs(300));
        }
    }

    /// The lease names the mailbox on its server, not the local config name,
    /// so instances configured with different names still exclude each other.
    fn lease_key(&self) -> String {
        let s = &self.settings;
        format!("imap://{}@{}:{}/{}", s.username, s.host, s.port, s.folder)
    }

    fn lease_ttl(&self) -> Duration {
        self.settings.lease.0.max(Duration::from_secs(1))
    }

    /// Waits until this instance holds the mailbox's lease; `None` when
    /// cancelled first. Returns until when the lease is surely ours: measured
    /// from before the request, so a slow answer only shortens it.
    async fn wait_for_lease(&self, cancel: &CancellationToken) -> Option<tokio::time::Instant> {
        let (key, ttl) = (self.lease_key(), self.lease_ttl());
        let store = &self.store;
        let mut standing_by = false;
        loop {
            let asked = tokio::time::Instant::now();
            match store
                .acquire_lease(&key, holder_id(), time::OffsetDateTime::now_utc(), ttl)
                .await
            {
                Ok(true) => {
                    tracing::info!(mailbox = %self.settings.name, holder = holder_id(), "mailbox lease taken");
                    return Some(asked + ttl);
                }
                Ok(false) if !standing_by => {
                    standing_by = true;
                    let holder = store
                        .lease_holder(&key)
                        .await
                        .ok()
                        .flatten()
                        .map(|(h, _)| h);
                    tracing::info!(mailbox = %self.settings.name, holder = holder.as_deref(), "mailbox polled by another instance; standing by");
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(mailbox = %self.settings.name, error = %e, "cannot take the mailbox lease; will retry")
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return None,
                _ = tokio::time::sleep(ttl / 3) => {}
            }
        }
    }

    /// Renews the lease every third of its duration; returns why it was lost.
    /// Never returns while the lease holds, so the session runs beside it.
    async fn keep_lease(&self, mut valid_until: tokio::time::Instant) -> String {
        let (key, ttl) = (self.lease_key(), self.lease_ttl());
        let store = &self.store;
        loop {
            tokio::time::sleep(ttl / 3).await;
            let asked = tokio::time::Instant::now();
            let renewal =
                store.acquire_lease(&key, holder_id(), time::OffsetDateTime::now_utc(), ttl);
            match tokio::time::timeout_at(valid_until, renewal).await {
                Ok(Ok(true)) => valid_until = asked + ttl,
                Ok(Ok(false)) => return "taken over by another instance".into(),
                Ok(Err(e)) => return format!("renewal failed: {e}"),
                Err(_) => return "no renewal before the lease ran out".into(),
            }
        }
    }

    async fn connect(&self) -> Result<ImapSession, ImapError> {
        self.attempts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        connect(&self.settings, self.tls.as_ref()).await
    }

    /// One connection's life: log in, prepare folders, drain, wait, repeat.
    async fn session(&self, cancel: &CancellationToken) -> Result<(), ImapError> {
        self.set_state(MailboxState::Connecting);
        let mut session = self.connect().await?;
        // MOVE and IDLE are advertised only after login.
        let caps = session.capabilities().await?;
        let can_move = caps.has_str("MOVE");
        let can_idle = caps.has_str("IDLE") && self.settings.idle;
        let uidplus = caps.has_str("UIDPLUS");
        drop(caps);
        for folder in [
            &self.settings.processed_folder,
            &self.settings.rejected_folder,
        ] {
            if let Err(e) = session.create(folder).await {
                // The code is not parsed by the client: match the text.
                if !e.to_string().contains("ALREADYEXISTS") {
                    return Err(e.into());
                }
            }
        }
        let mailbox = session.select(&self.settings.folder).await?;
        let validity = mailbox.uid_validity.unwrap_or(0);
        self.set_state(MailboxState::Connected);
        tracing::info!(mailbox = %self.settings.name, folder = %self.settings.folder, validity, can_move, can_idle, "IMAP connected");

        // IDLE wake-ups in a row that found nothing to do; a server repeating
        // itself (e.g. a selected folder deleted underneath) must not make us spin.
        let mut idle_wakeups = 0u32;
        loop {
            let taken = self
                .drain(&mut session, validity, can_move, uidplus, cancel)
                .await?;
            if taken > 0 {
                idle_wakeups = 0;
            } else if idle_wakeups >= 20 {
                return Err(ImapError::Stuck(
                    "IDLE keeps waking with nothing new; reconnecting".into(),
                ));
            }
            if cancel.is_cancelled() {
                break;
            }
            if can_idle {
                let mut idle = session.idle();
                idle.init().await?;
                self.set_state(MailboxState::Idle);
                let (wait, _stop) = idle.wait_with_timeout(IDLE_RENEW);
                let woke = tokio::select! {
                    r = wait => Some(r),
                    _ = cancel.cancelled() => None,
                };
                session = idle.done().await?;
                self.set_state(MailboxState::Connected);
                match woke {
                    None => break,
                    Some(Ok(IdleResponse::NewData(_))) => idle_wakeups += 1,
                    Some(Ok(IdleResponse::Timeout | IdleResponse::ManualInterrupt)) => {
                        idle_wakeups = 0
                    }
                    Some(Err(e)) => return Err(e.into()),
                }
            } else {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(self.settings.poll_interval.0) => {}
                }
            }
            drain_unsolicited(&mut session);
        }
        session.logout().await.ok();
        Ok(())
    }

    /// Processes everything in the folder, oldest UID first, until it is empty.
    async fn drain(
        &self,
        session: &mut ImapSession,
        validity: u32,
        can_move: bool,
        uidplus: bool,
        cancel: &CancellationToken,
    ) -> Result<usize, ImapError> {
        let source = self.settings.name.as_str();
        let mut taken = 0;
        loop {
            let mut uids: Vec<u32> = session.uid_search("ALL").await?.into_iter().collect();
            drain_unsolicited(session);
            if uids.is_empty() {
                return Ok(taken);
            }
            uids.sort_unstable();
            // Committed before a crash but never moved: move them, do not ingest again.
            let done_up_to = match self.store.source_cursor(source).await? {
                Some((v, uid)) if v == i64::from(validity) => uid,
                _ => 0,
            };
            let (done, todo): (Vec<u32>, Vec<u32>) =
                uids.iter().partition(|&&uid| i64::from(uid) <= done_up_to);
            if !done.is_empty() {
                self.move_to(
                    session,
                    &done,
                    &self.settings.processed_folder,
                    can_move,
                    uidplus,
                )
                .await?;
                taken += done.len();
            }
            // Pipelined: while one batch is being ingested, the next is fetched
            // and the one before is moved, so Dovecot's work and ours overlap.
            // A batch is still moved only after its own commit.
            let mut pending: Option<RecordTask> = None;
            for chunk in todo.chunks(BATCH_MESSAGES) {
                if cancel.is_cancelled() {
                    break;
                }
                let groups = self.fetch_batch(session, chunk).await?;
                if let Some(task) = pending.take() {
                    taken += self.settle(session, task, can_move, uidplus).await?;
                }
                pending = Some(self.spawn_record(groups, validity));
            }
            if let Some(task) = pending.take() {
                taken += self.settle(session, task, can_move, uidplus).await?;
            }
            if cancel.is_cancelled() {
                return Ok(taken);
            }
        }
    }

    /// Fetches one batch: full bodies in groups bounded in count and bytes,
    /// headers only for messages over the size limit.
    async fn fetch_batch(
        &self,
        session: &mut ImapSession,
        uids: &[u32],
    ) -> Result<Vec<Vec<Fetched>>, ImapError> {
        let max = self.sink.limits().max;
        let sizes: Vec<(u32, u64)> = {
            let fetches: Vec<_> = session
                .uid_fetch(uid_set(uids), "(UID RFC822.SIZE)")
                .await?
                .try_collect()
                .await?;
            let mut sizes: Vec<(u32, u64)> = fetches
                .iter()
                .filter_map(|f| Some((f.uid?, u64::from(f.size.unwrap_or(0)))))
                .collect();
            sizes.sort_unstable();
            sizes
        };
        drain_unsolicited(session);
        let mut groups: Vec<Vec<(u32, u64)>> = Vec::new();
        let mut bytes = 0;
        for &(uid, size) in &sizes {
            let fits = groups
                .last()
                .is_some_and(|g| g.len() < BATCH_MESSAGES && bytes + size <= BATCH_BYTES);
            if !fits {
                groups.push(Vec::new());
                bytes = 0;
            }
            groups.last_mut().expect("just pushed").push((uid, size));
            bytes += size;
        }
        let mut fetched = Vec::with_capacity(groups.len());
        for group in groups {
            let (large, normal): (Vec<UidSize>, Vec<UidSize>) =
                group.into_iter().partition(|(_, size)| *size > max);
            let mut items: Vec<Fetched> = Vec::new();
            if !normal.is_empty() {
                let set: Vec<u32> = normal.iter().map(|(u, _)| *u).collect();
                let fetches: Vec<_> = session
                    .uid_fetch(uid_set(&set), "(UID BODY.PEEK[])")
                    .await?
                    .try_collect()
                    .await?;
                items.extend(
                    fetches
                        .iter()
                        .filter_map(|f| Some((f.uid?, None, f.body()?.to_vec()))),
                );
            }
            for (uid, size) in large {
                // Over the limit: only the header section is downloaded.
                let fetches: Vec<_> = session
                    .uid_fetch(uid.to_string(), "(UID BODY.PEEK[HEADER])")
                    .await?
                    .try_collect()
                    .await?;
                let header = fetches
                    .iter()
                    .find_map(|f| f.header().map(<[u8]>::to_vec))
                    .unwrap_or_default();
                items.push((uid, Some(size), header));
            }
            drain_unsolicited(session);
            items.sort_by_key(|(uid, _, _)| *uid);
            fetched.push(items);
        }
        Ok(fetched)
    }

    /// Ingests fetched groups on their own task, one transaction per group
    /// (one disk sync for up to BATCH_MESSAGES). Stops at the first storage
    /// failure: the groups before it are committed, the rest are not.
    fn spawn_record(&self, groups: Vec<Vec<Fetched>>, validity: u32) -> RecordTask {
        let sink = self.sink.clone();
        let failing = self.failing.clone();
        let (name, folder) = (self.settings.name.clone(), self.settings.folder.clone());
        let listed = groups.iter().map(Vec::len).sum();
        let handle = tokio::spawn(async move {
            let mut taken = Taken {
                listed,
                ..Taken::default()
            };
            for items in groups {
                let origins: Vec<String> = items
                    .iter()
                    .map(|(uid, _, _)| {
                        format!("imap:{name}/{folder};UIDVALIDITY={validity}/;UID={uid}")
                    })
                    .collect();
                let deliveries: Vec<Delivery> = items
                    .iter()
                    .zip(&origins)
                    .map(|((uid, declared_size, raw), origin)| Delivery {
                        raw,
                        origin,
                        notify: true,
                        cursor: Some(SourceCursor {
                            source: &name,
                            validity,
                            uid: *uid,
                        }),
                        declared_size: *declared_size,
                        replay_of: None,
                        failed: false,
                    })
                    .collect();
                match sink.record(&deliveries).await {
                    Ok(outcomes) => {
                        crate::source::report_store(sink.store().as_ref(), Ok(()));
                        for ((uid, _, _), outcome) in items.iter().zip(outcomes) {
                            if outcome == Outcome::Rejected {
                                taken.rejected.push(*uid);
                            } else {
                                taken.processed.push(*uid);
                            }
                        }
                    }
                    Err(_) => {
                        // One by one, to find the message at fault; the cursor
                        // must not pass it, so the group stops there.
                        if let Err(e) =
                            one_by_one(sink.as_ref(), &deliveries, validity, &failing, &mut taken)
                                .await
                        {
                            taken.failure = Some(e);
                            break;
                        }
                    }
                }
            }
            taken
        });
        RecordTask(handle)
    }

    /// Waits for an ingest task and moves what it committed; returns how many
    /// messages left the folder. On a storage failure the committed messages
    /// are still moved and the rest stay for the next attempt.
    async fn settle(
        &self,
        session: &mut ImapSession,
        task: RecordTask,
        can_move: bool,
        uidplus: bool,
    ) -> Result<usize, ImapError> {
        let taken = task.finish().await?;
        // Acknowledge only what is committed.
        let folders = [
            (&taken.processed, &self.settings.processed_folder),
            (&taken.rejected, &self.settings.rejected_folder),
        ];
        for (uids, folder) in folders {
            self.move_to(session, uids, folder, can_move, uidplus)
                .await?;
        }
        if let Some(e) = taken.failure {
            return Err(e.into());
        }
        // A server that lists UIDs it will not return (seen with a folder
        // deleted and recreated under a selected session) would make the drain
        // spin: reconnect, which selects the folder afresh.
        let moved = taken.processed.len() + taken.rejected.len();
        if moved == 0 {
            return Err(ImapError::Stuck(format!(
                "{} UIDs listed but none could be fetched",
                taken.listed
            )));
        }
        Ok(moved)
    }

    async fn move_to(
        &self,
        session: &mut ImapSession,
        uids: &[u32],
        folder: &str,
        can_move: bool,
        uidplus: bool,
    ) -> Result<(), ImapError> {
        if uids.is_empty() {
            return Ok(());
        }
        let set = uid_set(uids);
        if can_move {
            session.uid_mv(&set, folder).await?;
        } else {
            // RFC 6851 §3.3: COPY, mark \Deleted, and expunge just those UIDs.
            session.uid_copy(&set, folder).await?;
            let _: Vec<_> = session
                .uid_store(&set, "+FLAGS.SILENT (\\Deleted)")
                .await?
                .try_collect()
                .await?;
            if uidplus {
                let _: Vec<_> = session.uid_expunge(&set).await?.try_collect().await?;
            } else {
                let _: Vec<_> = session.expunge().await?.try_collect().await?;
            }
        }
        drain_unsolicited(session);
        Ok(())
    }
}

/// The client keeps unsolicited responses in a bounded channel that drops when
/// full; nothing here needs them (every pass starts with UID SEARCH), so empty it.
fn drain_unsolicited(session: &mut ImapSession) {
    while session.unsolicited_responses.try_recv().is_ok() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_compress_runs() {
        assert_eq!(uid_set(&[1, 2, 3, 5, 7, 8, 9]), "1:3,5,7:9");
        assert_eq!(uid_set(&[4]), "4");
        assert_eq!(uid_set(&[]), "");
    }
}
