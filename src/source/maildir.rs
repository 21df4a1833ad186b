//! Maildir (the embedded default inbox): new mail appears in `new/`; after its
//! outcome is committed the file moves to `cur/` with the `S` (seen) flag, as a
//! mail client would, so the inbox shows what is done and nothing is deleted.

use std::collections::{HashMap, HashSet};
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::{
    BATCH_BYTES, BATCH_MESSAGES, Bounded, Delivery, Limits, MailSink, SinkError, read_bounded,
    report_store,
};

/// A folder with `new/` or `cur/`: a Maildir written by hand (or by `cp` and
/// `mv`, as the README does) may not have both yet.
pub fn is_maildir(path: &Path) -> bool {
    path.join("new").is_dir() || path.join("cur").is_dir()
}

#[derive(Debug, Clone)]
pub struct Maildir {
    root: PathBuf,
}

impl Maildir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates `new/`, `cur/` and `tmp/` if missing.
    pub fn ensure(&self) -> std::io::Result<()> {
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(self.root.join(sub))?;
        }
        Ok(())
    }

    /// Messages waiting in `new/`, oldest first (names start with a timestamp).
    pub fn pending(&self) -> std::io::Result<Vec<PathBuf>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.root.join("new"))?
            .filter_map(|e| e.ok())
            .filter(|e| {
                !e.file_name().to_string_lossy().starts_with('.')
                    && e.file_type().is_ok_and(|t| t.is_file())
            })
            .map(|e| e.path())
            .collect();
        files.sort();
        Ok(files)
    }

    /// Opens, locks and reads (within `limits`) a message of `new/`.
    /// `Ok(None)` when another process polling this Maildir has it: locked,
    /// or moved by the time the lock was ours. The lock (flock) lasts until
    /// the `Claimed` is dropped, so the caller keeps it until the file moved.
    pub fn claim(&self, path: &Path, limits: Limits) -> std::io::Result<Option<Claimed>> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(e)) => return Err(e),
        }
        // Opened before the holder moved it and unlocked: it is done.
        if !path.exists() {
            return Ok(None);
        }
        let size = file.metadata()?.len();
        let read = read_bounded(&file, Some(size), limits)?;
        Ok(Some(Claimed { _lock: file, read }))
    }

    /// Moves a message that keeps failing out of `new/` into `failed/`
    /// (created beside `cur/`, `new/` and `tmp/` when first needed), where
    /// it waits for a person and blocks nothing.
    pub fn move_failed(&self, path: &Path) -> std::io::Result<PathBuf> {
        let dir = self.root.join("failed");
        std::fs::create_dir_all(&dir)?;
        let target = dir.join(path.file_name().unwrap_or_default());
        std::fs::rename(path, &target)?;
        Ok(target)
    }

    /// Moves a processed message from `new/` to `cur/` with the `S` flag.
    pub fn mark_seen(&self, path: &Path) -> std::io::Result<PathBuf> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let target = self.root.join("cur").join(seen_name(&name));
        std::fs::rename(path, &target)?;
        Ok(target)
    }
}

/// A message of `new/` this process has locked and read.
#[derive(Debug)]
pub struct Claimed {
    /// Held (flock) until the message has moved out of `new/`.
    _lock: File,
    pub read: Bounded,
}

/// `unique` → `unique:2,S`; `unique:2,FR` → `unique:2,FRS` (flags kept sorted).
pub fn seen_name(name: &str) -> String {
    match name.split_once(":2,") {
        Some((base, flags)) => {
            let mut flags: Vec<char> = flags.chars().filter(|c| c.is_ascii_alphabetic()).collect();
            if !flags.contains(&'S') {
                flags.push('S');
            }
            flags.sort_unstable();
            flags.dedup();
            format!("{base}:2,{}", flags.into_iter().collect::<String>())
        }
        None => format!("{name}:2,S"),
    }
}

/// Why a message of `new/` was not taken.
#[derive(Debug, thiserror::Error)]
enum Failure {
    /// It could not be read (an I/O error): it stays, never set aside.
    #[error("{0:#}")]
    Read(anyhow::Error),
    /// The store did not record it: transient (the store's fault: it stays)
    /// or not (the message's: set aside after `GIVE_UP_AFTER`).
    #[error(transparent)]
    Store(SinkError),
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
/// after `GIVE_UP_AFTER` failures the store refused (the message's fault) it
/// is logged `rejected`/`processing_failed` from its header section and
/// moved to `failed/`, so one bad file never holds up the mailbox. When the
/// store cannot record anything (a full disk, an I/O error: transient) or a
/// file cannot be read, nothing is set aside: mail waits in `new/` and is
/// taken once the store is back (`/readyz` says why meanwhile). Messages are
/// locked while taken, so two processes polling one Maildir never both
/// record a message.
pub struct MaildirPoller {
    sink: Arc<dyn MailSink>,
    maildir: Maildir,
    name: String,
    interval: Duration,
    failing: HashMap<PathBuf, Failing>,
}

impl MaildirPoller {
    pub fn new(sink: impl MailSink, maildir: Maildir, name: String, interval: Duration) -> Self {
        Self {
            sink: Arc::new(sink),
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

    /// One pass over `new/`: every message that is due, in batches of up to
    /// `BATCH_MESSAGES` messages and `BATCH_BYTES` bytes, each recorded in one
    /// transaction and moved to `cur/` only after it committed. A batch the
    /// store refuses for one of its messages is taken again one by one, so
    /// the failing message is found and the others go through.
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
        let now = Instant::now();
        let due: Vec<&PathBuf> = files
            .iter()
            .filter(|p| self.failing.get(*p).is_none_or(|f| f.next <= now))
            .collect();
        let mut rest = &due[..];
        while !rest.is_empty() {
            if cancel.is_cancelled() {
                return;
            }
            let (taken, result) = self.take_batch(rest).await;
            let batch = &rest[..taken];
            rest = &rest[taken..];
            match result {
                Ok(()) => {
                    for path in batch {
                        self.failing.remove(*path);
                    }
                    report_store(self.sink.store().as_ref(), Ok(()));
                }
                // The store cannot record anything now (a full disk, I/O):
                // every message would fail alike, and none of them is at
                // fault. All stay in new/ and are tried again next tick.
                Err(Failure::Store(e)) if e.transient => {
                    report_store(self.sink.store().as_ref(), Err(&e));
                    tracing::debug!(mailbox = %self.name, error = %e, "store unavailable; mail stays in new/");
                    return;
                }
                Err(_) => {
                    if !self.one_by_one(batch, cancel).await {
                        return;
                    }
                }
            }
        }
    }

    /// Takes `paths` one message a transaction, as a batch that failed is
    /// retried; false when the pass should stop (the store is down, or
    /// messages keep failing).
    async fn one_by_one(&mut self, paths: &[&PathBuf], cancel: &CancellationToken) -> bool {
        let mut failed_in_a_row = 0;
        for path in paths {
            if cancel.is_cancelled() {
                return false;
            }
            match self.take_one(path).await {
                Ok(()) => {
                    self.failing.remove(*path);
                    failed_in_a_row = 0;
                    report_store(self.sink.store().as_ref(), Ok(()));
                }
                Err(Failure::Store(e)) if e.transient => {
                    report_store(self.sink.store().as_ref(), Err(&e));
                    tracing::debug!(mailbox = %self.name, path = %path.display(), error = %e, "store unavailable; message stays in new/");
                    return false;
                }
                Err(e) => {
                    let failing = self.failing.entry((*path).clone()).or_insert(Failing {
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
                    // Only a message the store refused is set aside; one
                    // that cannot be read (an I/O error) waits where it is.
                    if failures >= GIVE_UP_AFTER && matches!(e, Failure::Store(_)) {
                        self.give_up(path).await;
                    }
                    // Two in a row: more likely the store than the messages; wait a tick.
                    failed_in_a_row += 1;
                    if failed_in_a_row >= 2 {
                        return false;
                    }
                }
            }
        }
        true
    }

    /// Claims messages from the front of `paths` up to the batch bounds,
    /// records them in one transaction and moves each to `cur/`: how many
    /// paths it went through, and whether they were recorded. Messages
    /// another process has are passed over.
    async fn take_batch(&self, paths: &[&PathBuf]) -> (usize, Result<(), Failure>) {
        let mut claimed = Vec::new();
        let (mut taken, mut bytes) = (0, 0u64);
        for path in paths {
            if claimed.len() >= BATCH_MESSAGES || bytes >= BATCH_BYTES {
                break;
            }
            taken += 1;
            match self.claim(path).await {
                Ok(Some(c)) => {
                    bytes += c.read.raw.len() as u64;
                    claimed.push((*path, self.origin(path), c));
                }
                Ok(None) => {}
                // One unreadable file: the batch so far goes through the
                // one-by-one path, which names it.
                Err(e) => return (taken, Err(Failure::Read(e))),
            }
        }
        if claimed.is_empty() {
            return (taken, Ok(()));
        }
        let deliveries: Vec<Delivery> = claimed
            .iter()
            .map(|(_, origin, c)| Delivery {
                raw: &c.read.raw,
                origin,
                notify: true,
                declared_size: c.read.declared_size(),
                ..Default::default()
            })
            .collect();
        if let Err(e) = self.sink.record(&deliveries).await {
            return (taken, Err(Failure::Store(e)));
        }
        for (path, _, _) in &claimed {
            if let Err(e) = self.maildir.mark_seen(path) {
                // Committed but not moved: the next tick sees it again and logs a duplicate.
                tracing::warn!(path = %path.display(), error = %e, "cannot move processed message to cur/");
            }
        }
        (taken, Ok(()))
    }

    /// Ingests one message; `Ok` also when another process has it.
    async fn take_one(&self, path: &Path) -> Result<(), Failure> {
        let Some(claimed) = self.claim(path).await.map_err(Failure::Read)? else {
            return Ok(());
        };
        let origin = self.origin(path);
        self.sink
            .record(&[Delivery {
                raw: &claimed.read.raw,
                origin: &origin,
                notify: true,
                declared_size: claimed.read.declared_size(),
                ..Default::default()
            }])
            .await
            .map_err(Failure::Store)?;
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
                &c.read.raw[..super::header_section_len(&c.read.raw)],
                c.read.size,
            ),
            None => (&[][..], 0),
        };
        let origin = self.origin(path);
        let recorded = self
            .sink
            .record(&[Delivery {
                raw: headers,
                origin: &origin,
                notify: true,
                declared_size: Some(size),
                failed: true,
                ..Default::default()
            }])
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
        let (maildir, path, limits) =
            (self.maildir.clone(), path.to_path_buf(), self.sink.limits());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_names_follow_maildir_info_rules() {
        assert_eq!(
            seen_name("1700000000.M1P2.host"),
            "1700000000.M1P2.host:2,S"
        );
        assert_eq!(seen_name("x:2,FR"), "x:2,FRS");
        assert_eq!(seen_name("x:2,S"), "x:2,S");
    }

    #[test]
    fn processed_messages_move_to_cur() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::new(dir.path());
        md.ensure().unwrap();
        std::fs::write(dir.path().join("new/2"), "b").unwrap();
        std::fs::write(dir.path().join("new/1"), "a").unwrap();
        let pending = md.pending().unwrap();
        assert_eq!(
            pending
                .iter()
                .map(|p| p.file_name().unwrap().to_str().unwrap())
                .collect::<Vec<_>>(),
            ["1", "2"]
        );
        let moved = md.mark_seen(&pending[0]).unwrap();
        assert_eq!(moved, dir.path().join("cur/1:2,S"));
        assert_eq!(md.pending().unwrap().len(), 1);
    }
}
