//! Where raw messages come from: files, folders, Maildir, mbox, stdin and
//! IMAP. A source hands bytes to a [`MailSink`] and acknowledges them only
//! after their outcome is committed; it knows nothing of tickets.

pub mod imap;
pub mod maildir;
pub mod mbox;

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::outcome::Outcome;
use crate::store::Store;

/// One message handed over by a source.
#[derive(Debug, Clone, Copy, Default)]
pub struct Delivery<'a> {
    pub raw: &'a [u8],
    /// Where it came from (`maildir:inbox/new/…`, `file:…`, `stdin`, `imap:…`), for the log.
    pub origin: &'a str,
    /// `false` imports history (`ingest --no-notify`): nothing is queued for anyone.
    pub notify: bool,
    /// The source position this message completes, committed with its outcome
    /// (IMAP: mailbox, UIDVALIDITY, UID), so a crash after the commit and before
    /// the source is told never processes the message twice.
    pub cursor: Option<SourceCursor<'a>>,
    /// The size the source reported when only the headers were fetched (the
    /// message is over `max_message_size`; `raw` holds its header section).
    pub declared_size: Option<u64>,
    /// Re-runs this quarantined or rejected log row (admin replay); it is
    /// marked superseded in the same transaction.
    pub replay_of: Option<i64>,
    /// The source gave up on this message after it failed again and again
    /// (it is being moved aside): logged `rejected`/`processing_failed` from
    /// its header section (`raw`), and nothing else is decided about it.
    pub failed: bool,
}

/// A position in a source: everything up to `uid` under `validity` is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceCursor<'a> {
    pub source: &'a str,
    pub validity: u32,
    pub uid: u32,
}

/// The most messages, and bytes of them, a source records in one
/// transaction: enough that the disk sync is shared by many messages, few
/// enough that a batch is held in memory and acknowledged soon.
pub const BATCH_MESSAGES: usize = 100;
pub const BATCH_BYTES: u64 = 32 * 1024 * 1024;

/// Where sources hand the mail they read (in `serve`, the ingest use case).
/// A source learns only each message's outcome: a refused one goes to its
/// rejected folder, the rest count as taken.
#[async_trait]
pub trait MailSink: Send + Sync + 'static {
    /// Records `deliveries` in one transaction; their outcomes, in order.
    async fn record(&self, deliveries: &[Delivery<'_>]) -> Result<Vec<Outcome>, SinkError>;

    /// How much of a message to read (see [`read_bounded`]).
    fn limits(&self) -> Limits;

    /// Where a source keeps its leases and positions: the same database, so
    /// a position commits with the outcomes it covers.
    fn store(&self) -> Arc<dyn Store>;
}

/// A sink could not record a delivery; nothing of it was committed.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SinkError {
    /// Worth trying again later (the database, not the message): the
    /// message stays in its source and is never set aside for it.
    pub transient: bool,
    /// The store has no space left (one of the transient failures).
    pub disk_full: bool,
    pub message: String,
}

impl SinkError {
    /// What this failure says about the store, for `/readyz` and `/metrics`.
    pub fn store_state(&self) -> crate::health::StoreState {
        if self.disk_full {
            crate::health::StoreState::DiskFull
        } else {
            crate::health::StoreState::Failing
        }
    }
}

/// Notes how recording into the store went (`Ok` after a success, else
/// what the failure says), and logs when that changes rather than at every
/// retry.
pub fn report_store(store: &dyn Store, result: Result<(), &SinkError>) {
    let state = match result {
        Ok(()) => crate::health::StoreState::Ok,
        // A message at fault says nothing about the store.
        Err(e) if !e.transient => return,
        Err(e) => e.store_state(),
    };
    let before = store.health().set(state);
    if before != state {
        match result {
            Ok(()) => tracing::info!(was = before.as_str(), "the store records mail again"),
            Err(e) => {
                tracing::error!(state = state.as_str(), error = %e, "the store cannot record mail; messages stay in their source until it can")
            }
        }
    }
}

/// One message to read, found by walking the CLI's paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    File(PathBuf),
    /// A byte range of an mbox file (the `From ` line excluded).
    MboxMessage {
        path: PathBuf,
        index: usize,
        start: u64,
        end: u64,
    },
}

impl Item {
    /// The origin recorded in the ingest log.
    pub fn origin(&self) -> String {
        match self {
            Item::File(p) => format!("file:{}", p.display()),
            Item::MboxMessage { path, index, .. } => {
                format!("mbox:{}#{}", path.display(), index + 1)
            }
        }
    }

    /// Reads the message, at most `limits.max` bytes of it plus its header
    /// section: a larger one comes back cut (`Bounded::size` says how large).
    pub fn read(&self, limits: Limits) -> std::io::Result<Bounded> {
        match self {
            Item::File(p) => {
                let f = std::fs::File::open(p)?;
                let size = f.metadata()?.len();
                read_bounded(f, Some(size), limits)
            }
            Item::MboxMessage {
                path, start, end, ..
            } => {
                let mut f = std::fs::File::open(path)?;
                f.seek(SeekFrom::Start(*start))?;
                let mut read = read_bounded(f.take(end - start), Some(end - start), limits)?;
                // `From ` unescaping is for whole messages; a cut one is stored as it is.
                if !read.is_cut() {
                    read.raw = mbox::unescape(&read.raw);
                    read.size = read.raw.len() as u64;
                }
                Ok(read)
            }
        }
    }
}

/// How much of a message a source reads (`[intake] max_message_size` and
/// `keep_oversize`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Larger messages are refused (`rejected`/`too_large`) and never read whole.
    pub max: u64,
    /// Of a larger message, at most this many bytes are kept (its header
    /// section always, as far as it lies within `max`).
    pub keep: u64,
}

/// A message as read: whole, or cut to its header section and first bytes.
#[derive(Debug)]
pub struct Bounded {
    pub raw: Vec<u8>,
    /// The message's full size (larger than `raw` when it was cut).
    pub size: u64,
}

impl Bounded {
    pub fn is_cut(&self) -> bool {
        self.size > self.raw.len() as u64
    }

    /// For `Delivery::declared_size`: the full size of a cut message.
    pub fn declared_size(&self) -> Option<u64> {
        self.is_cut().then_some(self.size)
    }
}

/// Reads at most `limits.max` + 1 bytes (so memory stays within the size a
/// message may have); a message past that keeps its header section and up to
/// `limits.keep` bytes, and the rest is counted without being held (`known`,
/// the size when the reader knows it, spares reading a file to its end). A
/// pipe is read to its end, so the MTA on its other side sees it taken.
pub fn read_bounded(
    mut reader: impl Read,
    known: Option<u64>,
    limits: Limits,
) -> std::io::Result<Bounded> {
    if let Some(size) = known.filter(|k| *k > limits.max) {
        return read_head(reader, size, limits);
    }
    let mut raw = Vec::new();
    if known.is_some_and(|k| k <= limits.max) {
        raw.reserve_exact(known.unwrap_or(0) as usize);
    }
    (&mut reader)
        .take(limits.max.saturating_add(1))
        .read_to_end(&mut raw)?;
    if raw.len() as u64 <= limits.max {
        let size = raw.len() as u64;
        return Ok(Bounded { raw, size });
    }
    let kept = header_section_len(&raw).max(limits.keep.min(raw.len() as u64) as usize);
    raw.truncate(kept);
    raw.shrink_to_fit();
    let read = limits.max.saturating_add(1);
    let size = match known {
        Some(k) => k.max(read),
        None => read.saturating_add(std::io::copy(&mut reader, &mut std::io::sink())?),
    };
    Ok(Bounded { raw, size })
}

/// A message known to be over the limit: only as far as its header section
/// and `limits.keep` are read (never past `limits.max` + 1), so a 1 GB file
/// costs its first kilobytes, not its first `max_message_size`.
fn read_head(mut reader: impl Read, size: u64, limits: Limits) -> std::io::Result<Bounded> {
    let cap = usize::try_from(limits.max.saturating_add(1)).unwrap_or(usize::MAX);
    let keep = usize::try_from(limits.keep).unwrap_or(usize::MAX);
    let mut raw = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let (mut scanned, mut headers) = (0, None);
    while raw.len() < cap && (headers.is_none() || raw.len() < keep) {
        let want = chunk.len().min(cap - raw.len());
        let n = reader.read(&mut chunk[..want])?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&chunk[..n]);
        if headers.is_none() {
            headers = header_end(&raw, scanned);
            scanned = raw.len();
        }
    }
    let kept = headers.unwrap_or(raw.len()).max(keep.min(raw.len()));
    raw.truncate(kept);
    Ok(Bounded { raw, size })
}

/// Where the header section of `raw` ends, if it does within `raw`, looking
/// only at what follows `from` (the part scanned before), so reading in
/// chunks stays linear.
fn header_end(raw: &[u8], from: usize) -> Option<usize> {
    if raw.starts_with(b"\n") {
        return Some(1);
    }
    if raw.starts_with(b"\r\n") {
        return Some(2);
    }
    let start = from.saturating_sub(2);
    let mut i = start;
    while let Some(nl) = raw[i..].iter().position(|&b| b == b'\n') {
        let at = i + nl;
        match raw.get(at + 1..) {
            Some([b'\n', ..]) => return Some(at + 2),
            Some([b'\r', b'\n', ..]) => return Some(at + 3),
            _ => i = at + 1,
        }
    }
    None
}

/// The length of the header section including the empty line that ends it
/// (RFC 5322 §2.1), or all of `raw` when no empty line is found.
pub fn header_section_len(raw: &[u8]) -> usize {
    let mut at = 0;
    while let Some(nl) = raw[at..].iter().position(|&b| b == b'\n') {
        let next = at + nl + 1;
        let line = &raw[at..next];
        if line == b"\n" || line == b"\r\n" {
            return next;
        }
        at = next;
    }
    raw.len()
}

fn is_mbox(path: &Path) -> std::io::Result<bool> {
    let mut head = [0u8; 5];
    let mut f = std::fs::File::open(path)?;
    let n = f.read(&mut head)?;
    Ok(n == 5 && &head == b"From ")
}

/// Visible regular files of a folder, in file-name order (Maildir names are time-ordered).
fn files_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') || !entry.file_type()?.is_file() {
            continue;
        }
        files.push(entry.path());
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

/// Expands the CLI's paths: a Maildir (its `cur/` and `new/` together, by name),
/// a folder of files, an mbox file, or a single message file.
pub fn expand(paths: &[PathBuf]) -> std::io::Result<Vec<Item>> {
    let mut items = Vec::new();
    for path in paths {
        if path.is_dir() {
            if maildir::is_maildir(path) {
                let mut files = Vec::new();
                for sub in ["cur", "new"] {
                    let sub = path.join(sub);
                    if sub.is_dir() {
                        files.extend(files_in(&sub)?);
                    }
                }
                files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
                items.extend(files.into_iter().map(Item::File));
            } else {
                for file in files_in(path)? {
                    push_file(&mut items, file)?;
                }
            }
        } else {
            push_file(&mut items, path.clone())?;
        }
    }
    Ok(items)
}

fn push_file(items: &mut Vec<Item>, path: PathBuf) -> std::io::Result<()> {
    if is_mbox(&path)? {
        for (index, (start, end)) in mbox::scan(&path)?.into_iter().enumerate() {
            items.push(Item::MboxMessage {
                path: path.clone(),
                index,
                start,
                end,
            });
        }
    } else {
        items.push(Item::File(path));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { max: 64, keep: 8 };

    #[test]
    fn a_message_within_the_limit_is_read_whole() {
        let msg = b"Subject: a\r\n\r\nbody\r\n";
        let read = read_bounded(&msg[..], None, LIMITS).unwrap();
        assert_eq!(
            (read.raw.as_slice(), read.size),
            (&msg[..], msg.len() as u64)
        );
        assert!(!read.is_cut());
    }

    #[test]
    fn a_larger_message_keeps_its_header_section_and_counts_the_rest() {
        let mut msg = b"Subject: big\nFrom: a@b.test\n\n".to_vec();
        let headers = msg.len();
        msg.extend(std::iter::repeat_n(b'x', 10_000));
        let read = read_bounded(&msg[..], None, LIMITS).unwrap();
        assert_eq!(read.raw, msg[..headers]);
        assert_eq!(read.declared_size(), Some(msg.len() as u64));
        let keep_more = Limits { max: 64, keep: 40 };
        let read = read_bounded(&msg[..], Some(msg.len() as u64), keep_more).unwrap();
        assert_eq!((read.raw.len(), read.size), (40, msg.len() as u64));
    }

    #[test]
    fn a_header_section_longer_than_the_limit_is_cut_at_the_limit() {
        let msg = "X-Long: y\r\n".repeat(100);
        let read = read_bounded(msg.as_bytes(), None, LIMITS).unwrap();
        assert_eq!((read.raw.len(), read.size), (65, msg.len() as u64));
    }

    /// Counts what is read from it.
    struct Counting<'a>(&'a [u8], usize);

    impl Read for Counting<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = (&self.0[self.1..]).read(buf)?;
            self.1 += n;
            Ok(n)
        }
    }

    #[test]
    fn a_file_known_to_be_too_large_is_read_only_to_its_header_and_kept_bytes() {
        let mut msg = b"Subject: big\r\nFrom: a@b.test\r\n\r\n".to_vec();
        let headers = msg.len();
        msg.extend(std::iter::repeat_n(b'x', 1 << 20));
        let limits = Limits {
            max: 512 * 1024,
            keep: 1000,
        };
        let mut file = Counting(&msg, 0);
        let read = read_bounded(&mut file, Some(msg.len() as u64), limits).unwrap();
        assert_eq!((read.raw.len(), read.size), (1000, msg.len() as u64));
        assert!(file.1 <= 64 * 1024, "read {} bytes", file.1);
        let headers_only = Limits {
            max: 512 * 1024,
            keep: 0,
        };
        let read = read_bounded(&msg[..], Some(msg.len() as u64), headers_only).unwrap();
        assert_eq!(read.raw, msg[..headers]);
        // A header section split across reads is found all the same.
        let long = format!("X-Pad: {}\r\n\r\nbody", "p".repeat(70_000));
        let read = read_bounded(
            long.as_bytes(),
            Some(1 << 30),
            Limits {
                max: 100_000,
                keep: 0,
            },
        )
        .unwrap();
        assert_eq!(read.raw.len(), long.len() - 4);
        assert_eq!(header_end(b"\r\nbody", 0), Some(2));
    }

    #[test]
    fn header_sections_end_at_the_first_empty_line() {
        assert_eq!(header_section_len(b"A: b\r\n\r\nbody"), 8);
        assert_eq!(header_section_len(b"A: b\n\nbody"), 6);
        assert_eq!(header_section_len(b"A: b\nC: d"), 9);
    }
}
