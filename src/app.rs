//! Wiring: opens the store chosen by the database URL, builds the ingestor,
//! mailer and outbox worker from settings, and runs `serve` until a shutdown
//! signal. The only place besides `ingest` and `outbox` that holds several
//! adapters at once.

use std::sync::Arc;

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{MailboxKind, Settings, SmtpKind};
use crate::ingest::{Ingestor, IntakePolicy};
use crate::mailer::{FileMailer, Mailer, SmtpMailer};
use crate::outbox::{OutboxPolicy, OutboxWorker};
use crate::render::Renderer;
use crate::source::imap::ImapPoller;
use crate::source::maildir::{Maildir, MaildirPoller};
use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{Missing, Store};

/// Opens the store for a database URL, creating a missing SQLite file, and
/// brings its schema up to date.
pub async fn open_store(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    open_store_with(url, Missing::Create).await
}

/// [`open_store`], saying what a missing SQLite file means.
pub async fn open_store_with(url: &str, missing: Missing) -> anyhow::Result<Arc<dyn Store>> {
    let store = connect_store(url, missing).await?;
    store
        .migrate()
        .await
        .context("applying database migrations")?;
    Ok(store)
}

/// Connects to the database at `url` and leaves its schema as it is.
pub async fn connect_store(url: &str, missing: Missing) -> anyhow::Result<Arc<dyn Store>> {
    let store: Arc<dyn Store> = if url.starts_with("sqlite:") {
        Arc::new(
            SqliteStore::open(url, missing)
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
    /// Opens everything, creating the database and the Maildir inbox if
    /// missing: for the commands that write.
    pub async fn open(settings: Settings) -> anyhow::Result<Self> {
        Self::open_with(settings, Missing::Create).await
    }

    /// [`App::open`]; with [`Missing::Refuse`] (commands that only read) a
    /// missing database is an error and no file or folder is made.
    pub async fn open_with(settings: Settings, missing: Missing) -> anyhow::Result<Self> {
        let store = open_store_with(&settings.database.url, missing).await?;
        let policy =
            IntakePolicy::from_settings(&settings).context("loading the reply-token secret")?;
        Renderer::for_settings(&settings)
            .check_rules(&policy.changes.rules)
            .map_err(|e| anyhow::anyhow!("{}: {e}", settings.rules.file))?;
        let ingestor = Ingestor::new(store.clone(), policy);
        // Like the database, the Maildir inbox exists from the first command
        // on, so mail can be written into its tmp/ before `serve` runs
        // (README "Trying it"). `serve` fails if it still cannot be made.
        for mailbox in &settings.mailbox {
            if missing == Missing::Create
                && mailbox.kind == MailboxKind::Maildir
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
        let renderer = Arc::new(Renderer::for_settings(&self.settings));
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
        let web = match self.settings.web.listen.trim() {
            "" => None,
            addr => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("portal: cannot listen on {addr}"))?;
                tracing::info!(addr = %listener.local_addr()?, base_url = %self.settings.web.base_url, "portal listening");
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
        if let Some(listener) = web {
            let state = crate::web::WebState::new(
                self.ingestor.clone(),
                &self.settings.web,
                self.settings.intake.max_message_size.0,
            );
            let cancel = cancel.clone();
            tracker.spawn(async move {
                if let Err(e) = crate::web::serve(listener, state, cancel).await {
                    tracing::error!(error = %e, "portal stopped");
                }
            });
        }
        let worker = self.outbox_worker()?;
        tracker.spawn({
            let cancel = cancel.clone();
            async move { worker.run(cancel).await }
        });
        tracker.spawn({
            let cancel = cancel.clone();
            async move {
                cancel.cancelled().await;
                crate::systemd::notify("STOPPING=1");
            }
        });
        tracker.close();
        // Listeners bound, workers started: a `Type=notify` unit is up.
        crate::systemd::notify("READY=1");
        tracker.wait().await;
        tracing::info!("stopped");
        Ok(())
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
