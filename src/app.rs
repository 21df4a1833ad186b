//! Wiring: opens the store chosen by the database URL, builds the ingestor,
//! mailer and outbox worker from settings, and runs `serve` until a shutdown
//! signal. The only place besides `ingest` and `outbox` that holds several
//! adapters at once.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{MailboxKind, Settings, SmtpKind};
use crate::ingest::{Delivery, Ingestor, IntakePolicy};
use crate::mailer::{FileMailer, Mailer, SmtpMailer};
use crate::outbox::{OutboxPolicy, OutboxWorker};
use crate::render::Renderer;
use crate::source::imap::ImapPoller;
use crate::source::maildir::{Claimed, Maildir};
use crate::store::Store;
use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;

/// Opens the store for a database URL and brings its schema up to date.
pub async fn open_store(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    let store: Arc<dyn Store> = if url.starts_with("sqlite:") {
        Arc::new(
            SqliteStore::connect(url)
                .await
                .with_context(|| format!("opening {url}"))?,
        )
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Arc::new(
            PgStore::connect(url)
                .await
                .with_context(|| format!("connecting to {}", redact(url)))?,
        )
    } else {
        bail!(
            "unsupported database URL {:?}: expected sqlite://PATH or postgres://…",
            redact(url)
        )
    };
    store
        .migrate()
        .await
        .context("applying database migrations")?;
    Ok(store)
}

/// A database URL fit for logs: the password, if any, replaced by `***`.
fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((userinfo, host)) = rest.split_once('@')
        && let Some((user, _password)) = userinfo.split_once(':')
    {
        return format!("{scheme}://{user}:***@{host}");
    }
    url.to_string()
}

/// The parts most commands need.
pub struct App {
    pub settings: Settings,
    pub store: Arc<dyn Store>,
    pub ingestor: Ingestor,
}

impl App {
    pub async fn open(settings: Settings) -> anyhow::Result<Self> {
        let store = open_store(&settings.database.url).await?;
        let policy =
            IntakePolicy::from_settings(&settings).context("loading the reply-token secret")?;
        let ingestor = Ingestor::new(store.clone(), policy);
        // Like the database, the Maildir inbox exists from the first command
        // on, so mail can be written into its tmp/ before `serve` runs
        // (README "Trying it"). `serve` fails if it still cannot be made.
        for mailbox in &settings.mailbox {
            if mailbox.kind == MailboxKind::Maildir
                && let Err(e) = Maildir::new(&mailbox.path).ensure()
            {
                tracing::warn!(path = %mailbox.path, error = %e, "cannot create the Maildir");
            }
        }
        Ok(Self {
            settings,
            store,
            ingestor,
        })
    }

    pub fn outbox_worker(&self) -> anyhow::Result<OutboxWorker> {
        let mailer: Arc<dyn Mailer> = match self.settings.smtp.kind {
            SmtpKind::File => {
                Arc::new(FileMailer::new(&self.settings.smtp.dir).with_context(|| {
                    format!("creating outbox folder {}", self.settings.smtp.dir)
                })?)
            }
            SmtpKind::Smtp => Arc::new(
                SmtpMailer::new(
                    &self.settings.smtp,
                    &self.settings.support.domain,
                    self.settings.outbox.concurrency,
                )
                .context("setting up SMTP")?,
            ),
        };
        let templates = Path::new(&self.settings.outbox.templates);
        let renderer = Arc::new(Renderer::new(
            templates.is_dir().then(|| templates.to_path_buf()),
        ));
        let policy =
            OutboxPolicy::from_settings(&self.settings, self.ingestor.policy().secret.clone());
        Ok(OutboxWorker::new(
            self.store.clone(),
            mailer,
            renderer,
            policy,
        ))
    }

    /// Runs pollers and the outbox worker until `cancel` fires, then waits for
    /// them to finish the message in hand.
    pub async fn serve(self, cancel: CancellationToken) -> anyhow::Result<()> {
        let tracker = TaskTracker::new();
        // Bound first: a taken port fails `serve` at once instead of later in a task.
        let admin = match self.settings.admin.listen.trim() {
            "" => None,
            addr => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("admin endpoint: cannot listen on {addr}"))?;
                tracing::info!(addr = %listener.local_addr()?, "admin endpoint listening");
                Some(listener)
            }
        };
        let mut mailbox_states = Vec::new();
        for mailbox in &self.settings.mailbox {
            match mailbox.kind {
                MailboxKind::Maildir => {
                    let maildir = Maildir::new(&mailbox.path);
                    maildir
                        .ensure()
                        .with_context(|| format!("creating Maildir {}", mailbox.path))?;
                    tracing::info!(mailbox = %mailbox.name, path = %mailbox.path, "watching Maildir");
                    let poller = MaildirPoller::new(
                        self.ingestor.clone(),
                        maildir,
                        mailbox.name.clone(),
                        mailbox.poll_interval.0,
                    );
                    tracker.spawn(poller.run(cancel.clone()));
                }
                MailboxKind::Imap => {
                    let poller = ImapPoller::new(mailbox.clone(), self.ingestor.clone())
                        .with_context(|| format!("mailbox {:?}", mailbox.name))?;
                    tracing::info!(mailbox = %mailbox.name, host = %mailbox.host, port = mailbox.port, "polling IMAP");
                    mailbox_states.push((mailbox.name.clone(), poller.state()));
                    tracker.spawn(poller.run(cancel.clone()));
                }
            }
        }
        if let Some(listener) = admin {
            let state = crate::api::ApiState::new(self.ingestor.clone(), mailbox_states);
            let cancel = cancel.clone();
            tracker.spawn(async move {
                if let Err(e) = crate::api::serve(listener, state, cancel).await {
                    tracing::error!(error = %e, "admin endpoint stopped");
                }
            });
        }
        let worker = self.outbox_worker()?;
        tracker.spawn({
            let cancel = cancel.clone();
            async move { worker.run(cancel).await }
        });
        tracker.close();
        tracker.wait().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// A message of `new/` whose ingest failed: how often, and when to try again.
struct Failing {
    failures: u32,
    next: Instant,
}

/// After this many failed attempts a message is moved to `failed/`.
const GIVE_UP_AFTER: u32 = 5;
/// The longest wait before a failing message is tried again.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Polls a Maildir's `new/`; each message moves to `cur/` only after its
/// outcome is committed. A message whose ingest fails waits (doubling from
/// the poll interval up to five minutes) while the mail behind it goes on;
/// after `GIVE_UP_AFTER` failures it is logged `rejected`/`processing_failed`
/// from its header section and moved to `failed/`, so one bad file never
/// holds up the mailbox. Messages are locked while taken, so two processes
/// polling one Maildir never both record a message.
pub struct MaildirPoller {
    ingestor: Ingestor,
    maildir: Maildir,
    name: String,
    interval: Duration,
    failing: HashMap<PathBuf, Failing>,
}

impl MaildirPoller {
    pub fn new(ingestor: Ingestor, maildir: Maildir, name: String, interval: Duration) -> Self {
        Self {
            ingestor,
            maildir,
            name,
            interval,
            failing: HashMap::new(),
        }
    }

    pub async fn run(mut self, cancel: CancellationToken) {
        loop {
            self.poll_once(&cancel).await;
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(self.interval) => {}
            }
        }
    }

    /// One pass over `new/`: every message that is due.
    pub async fn poll_once(&mut self, cancel: &CancellationToken) {
        let files = match self.maildir.pending() {
            Ok(files) => files,
            Err(e) => {
                tracing::warn!(mailbox = %self.name, error = %e, "listing Maildir failed");
                return;
            }
        };
        let listed: HashSet<&PathBuf> = files.iter().collect();
        self.failing.retain(|p, _| listed.contains(p));
        let mut failed_in_a_row = 0;
        for path in &files {
            if cancel.is_cancelled() {
                return;
            }
            if self
                .failing
                .get(path)
                .is_some_and(|f| f.next > Instant::now())
            {
                continue;
            }
            match self.take_one(path).await {
                Ok(()) => {
                    self.failing.remove(path);
                    failed_in_a_row = 0;
                }
                Err(e) => {
                    let failing = self.failing.entry(path.clone()).or_insert(Failing {
                        failures: 0,
                        next: Instant::now(),
                    });
                    failing.failures += 1;
                    let wait = self
                        .interval
                        .saturating_mul(1 << failing.failures.min(16))
                        .min(MAX_BACKOFF);
                    failing.next = Instant::now() + wait;
                    let failures = failing.failures;
                    tracing::warn!(mailbox = %self.name, path = %path.display(), error = format!("{e:#}"), failures, retry_in = ?wait, "ingest failed; message stays in new/");
                    if failures >= GIVE_UP_AFTER {
                        self.give_up(path).await;
                    }
                    // Two in a row: more likely the store than the messages; wait a tick.
                    failed_in_a_row += 1;
                    if failed_in_a_row >= 2 {
                        break;
                    }
                }
            }
        }
    }

    /// Ingests one message; `Ok` also when another process has it.
    async fn take_one(&self, path: &Path) -> anyhow::Result<()> {
        let Some(claimed) = self.claim(path).await? else {
            return Ok(());
        };
        let origin = self.origin(path);
        self.ingestor
            .ingest(Delivery {
                raw: &claimed.read.raw,
                origin: &origin,
                notify: true,
                declared_size: claimed.read.declared_size(),
                ..Default::default()
            })
            .await?;
        if let Err(e) = self.maildir.mark_seen(path) {
            // Committed but not moved: the next tick sees it again and logs a duplicate.
            tracing::warn!(path = %path.display(), error = %e, "cannot move processed message to cur/");
        }
        Ok(())
    }

    /// Records that a message failed for good, from its header section, and
    /// moves it to `failed/`. When even that cannot be recorded (the store
    /// is down, not the message at fault) it stays and is tried again.
    async fn give_up(&mut self, path: &Path) {
        let claimed = match self.claim(path).await {
            Ok(Some(c)) => Some(c),
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = format!("{e:#}"), "cannot read the failing message; logging it without headers");
                None
            }
        };
        let (headers, size) = match &claimed {
            Some(c) => (
                &c.read.raw[..crate::source::header_section_len(&c.read.raw)],
                c.read.size,
            ),
            None => (&[][..], 0),
        };
        let origin = self.origin(path);
        let recorded = self
            .ingestor
            .ingest(Delivery {
                raw: headers,
                origin: &origin,
                notify: true,
                declared_size: Some(size),
                failed: true,
                ..Default::default()
            })
            .await;
        match recorded.map_err(anyhow::Error::new).and_then(|_| {
            self.maildir
                .move_failed(path)
                .context("moving it to failed/")
        }) {
            Ok(target) => {
                tracing::error!(mailbox = %self.name, path = %target.display(), "message failed repeatedly: logged rejected/processing_failed and moved aside");
                self.failing.remove(path);
            }
            Err(e) => {
                tracing::warn!(mailbox = %self.name, path = %path.display(), error = format!("{e:#}"), "cannot set the failing message aside; it stays in new/");
            }
        }
    }

    async fn claim(&self, path: &Path) -> anyhow::Result<Option<Claimed>> {
        let (maildir, path, limits) = (
            self.maildir.clone(),
            path.to_path_buf(),
            self.ingestor.policy().limits(),
        );
        let claimed = tokio::task::spawn_blocking(move || maildir.claim(&path, limits))
            .await
            .context("reading the message")?
            .context("reading the message")?;
        Ok(claimed)
    }

    fn origin(&self, path: &Path) -> String {
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        format!("maildir:{}/new/{file}", self.name)
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT: shutting down"),
        _ = term => tracing::info!("SIGTERM: shutting down"),
    }
}
