//! Wiring: opens the store chosen by the database URL, builds the ingestor,
//! mailer and outbox worker from settings, and runs `serve` until a shutdown
//! signal. The only place besides `ingest` and `outbox` that holds several
//! adapters at once.

use std::sync::Arc;

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{ListenLimits, MailboxKind, Settings, SmtpKind};
use crate::ingest::{Ingestor, IntakePolicy};
use crate::mailer::{FileMailer, Mailer, SmtpMailer};
use crate::outbox::{OutboxPolicy, OutboxWorker};
use crate::render::Renderer;
use crate::source::imap::ImapPoller;
use crate::source::maildir::{Maildir, MaildirPoller};
use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{Missing, Store};
use crate::tickets::{Replay, Service};

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

    /// The ticket service every channel calls (the email channel's own).
    pub fn tickets(&self) -> &Service {
        self.ingestor.tickets()
    }

    /// Replaying quarantined mail, as the API and the portal reach it.
    pub fn replay(&self) -> Arc<dyn Replay> {
        Arc::new(self.ingestor.clone())
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
        let (web_limits, admin_limits) = self.connection_caps();
        // Bound first: a taken port fails `serve` at once instead of later in a task.
        let admin = match self.settings.admin.listen.trim() {
            "" => None,
            addr => {
                let listener = crate::listen::bind(addr)
                    .await
                    .with_context(|| format!("admin endpoint: cannot listen on {addr}"))?;
                tracing::info!(addr = %listener.local_addr()?, "admin endpoint listening");
                Some(listener)
            }
        };
        let web = match self.settings.web.listen.trim() {
            "" => None,
            addr => {
                let listener = crate::listen::bind(addr)
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
            let state = crate::api::ApiState::new(
                self.tickets().clone(),
                self.replay(),
                self.ingestor.metrics().clone(),
                mailbox_states,
            )
            .with_limits(admin_limits);
            let cancel = cancel.clone();
            tracker.spawn(async move {
                if let Err(e) = crate::api::serve(listener, state, cancel).await {
                    tracing::error!(error = %e, "admin endpoint stopped");
                }
            });
        }
        if let Some(listener) = web {
            let mut web = self.settings.web.clone();
            web.max_connections = web_limits.max_connections;
            let state = crate::web::WebState::new(
                self.tickets().clone(),
                self.replay(),
                &web,
                self.settings.intake.max_message_size.0,
            );
            let cancel = cancel.clone();
            tracker.spawn(async move {
                if let Err(e) = crate::web::serve(listener, state, cancel).await {
                    tracing::error!(error = %e, "portal stopped");
                }
            });
        }
        tracker.spawn(scheduler(self.tickets().clone(), cancel.clone()));
        tracker.spawn(crate::outbox::purge_sent_every(
            self.store.clone(),
            self.settings.outbox.keep_sent.0,
            OUTBOX_PURGE_EVERY,
            cancel.clone(),
        ));
        tracker.spawn(crate::people::retention_task(
            self.store.clone(),
            self.settings.retention.clone(),
            self.ingestor.metrics().clone(),
            crate::source::imap::holder_id().to_string(),
            cancel.clone(),
        ));
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

/// How often `serve` deletes the notifications sent longer ago than
/// `[outbox] keep_sent`.
const OUTBOX_PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// How often `serve` looks for SLA alarms and idle tickets: a warning or
/// a reminder is at most this late.
const SCHEDULER_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// The desk's scheduler (`tickets::Service::tick`) until `cancel` fires. A
/// failed pass is logged and the next one tries again: nothing is lost,
/// since an alarm is claimed only in the transaction that sends it.
async fn scheduler(tickets: crate::tickets::Service, cancel: CancellationToken) {
    let mut every = tokio::time::interval(SCHEDULER_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = every.tick() => {}
        }
        match tickets.tick(time::OffsetDateTime::now_utc()).await {
            Ok(done) if done != crate::tickets::Ticked::default() => tracing::info!(
                warned = done.warned,
                breached = done.breached,
                idle_fired = done.idle_fired,
                "scheduler pass"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "scheduler pass failed; trying again next pass"),
        }
    }
}

impl App {
    /// Raises the open-file limit to its hard limit (every HTTP connection
    /// holds a descriptor) and fits the listeners' `max_connections` under
    /// it, keeping `RESERVED_FILES` for intake, the database and the outbox,
    /// so that no number of clients can make a Maildir file or the database
    /// unopenable. Logs the limit and any cap it had to lower.
    fn connection_caps(&self) -> (ListenLimits, ListenLimits) {
        let mut web = self.settings.web.limits();
        let mut admin = self.settings.admin.limits();
        let limit = match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(limit) => limit,
            Err(e) => {
                tracing::warn!(error = %e, "cannot raise the open-file limit");
                match rlimit::getrlimit(rlimit::Resource::NOFILE) {
                    Ok((soft, _)) => soft,
                    Err(_) => return (web, admin),
                }
            }
        };
        let web_on = !self.settings.web.listen.trim().is_empty();
        let admin_on = !self.settings.admin.listen.trim().is_empty();
        let wanted = [
            if web_on { web.max_connections } else { 0 },
            if admin_on { admin.max_connections } else { 0 },
        ];
        let fitted = fit_caps(wanted, limit);
        tracing::info!(
            open_files = limit,
            portal_connections = fitted[0],
            admin_connections = fitted[1],
            "open-file limit raised to the hard limit"
        );
        if fitted != wanted {
            tracing::warn!(
                open_files = limit,
                reserved = RESERVED_FILES,
                portal_connections = fitted[0],
                admin_connections = fitted[1],
                "max_connections lowered to fit the open-file limit; raise the hard limit (LimitNOFILE=) to serve more"
            );
        }
        if web_on {
            web.max_connections = fitted[0];
        }
        if admin_on {
            admin.max_connections = fitted[1];
        }
        (web, admin)
    }
}

/// Descriptors `serve` keeps for everything but HTTP clients: the database
/// pool (a SQLite connection holds three), Maildir files, the outbox, IMAP
/// and SMTP connections, logs.
const RESERVED_FILES: u64 = 64;

/// The connection caps `wanted` (portal, admin; 0 for a listener that is
/// off), lowered in proportion where together with `RESERVED_FILES` they
/// would pass `limit`; a listener that is on keeps at least one.
fn fit_caps(wanted: [usize; 2], limit: u64) -> [usize; 2] {
    let total: u64 = wanted.iter().map(|&n| n as u64).sum();
    let room = limit.saturating_sub(RESERVED_FILES);
    if total <= room {
        return wanted;
    }
    wanted.map(|n| {
        if n == 0 {
            0
        } else {
            usize::try_from((n as u64).saturating_mul(room) / total)
                .unwrap_or(n)
                .clamp(1, n)
        }
    })
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is
/// called, not when the future is first polled: `serve` tells systemd it is
/// ready right after starting, and a SIGTERM that came before a spawned task
/// got round to installing them would kill the process unannounced.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send {
    use tokio::signal::unix::{SignalKind, signal};
    let listen = |kind: SignalKind, name: &'static str| match signal(kind) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for {name}");
            None
        }
    };
    let mut int = listen(SignalKind::interrupt(), "SIGINT");
    let mut term = listen(SignalKind::terminate(), "SIGTERM");
    async move {
        tokio::select! {
            _ = received(int.as_mut()) => tracing::info!("SIGINT: shutting down"),
            _ = received(term.as_mut()) => tracing::info!("SIGTERM: shutting down"),
        }
    }
}

/// The next signal on `stream`; never, without one.
async fn received(stream: Option<&mut tokio::signal::unix::Signal>) {
    match stream {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_caps_fit_under_the_open_file_limit() {
        let cases: &[(&str, [usize; 2], u64, [usize; 2])] = &[
            ("room for both", [512, 512], 1_048_576, [512, 512]),
            ("exactly room", [480, 480], 1024, [480, 480]),
            ("shared in proportion", [512, 512], 1024, [480, 480]),
            ("an off listener takes no share", [512, 0], 1024, [512, 0]),
            (
                "uneven wishes keep their ratio",
                [600, 200],
                464,
                [300, 100],
            ),
            ("never below one", [512, 512], 10, [1, 1]),
        ];
        for (name, wanted, limit, want) in cases {
            assert_eq!(fit_caps(*wanted, *limit), *want, "{name}");
        }
    }
}
