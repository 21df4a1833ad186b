//! What a running source reports about itself and about the store it
//! records into, read by `/readyz` and `/metrics`. It belongs to neither
//! side: sources write it, the API reads it, and neither imports the other.

/// A mailbox poller's connection, as readiness checks and metrics show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailboxState {
    Connecting,
    Connected,
    Idle,
    Disconnected,
}

impl MailboxState {
    /// The label `/readyz` and `/metrics` show.
    pub const fn as_str(self) -> &'static str {
        match self {
            MailboxState::Connecting => "connecting",
            MailboxState::Connected => "connected",
            MailboxState::Idle => "idle",
            MailboxState::Disconnected => "disconnected",
        }
    }

    /// Whether the mailbox is being read now.
    pub fn is_up(self) -> bool {
        matches!(self, MailboxState::Connected | MailboxState::Idle)
    }
}

/// Each mailbox's name and a view of its state.
pub type Mailboxes = Vec<(String, tokio::sync::watch::Receiver<MailboxState>)>;

/// The store as the last attempt to record into it found it. Mail sources
/// and the outbox report here, `/readyz` and `/metrics` read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreState {
    Ok,
    /// No space left for the database (SQLite's `SQLITE_FULL`, ENOSPC,
    /// PostgreSQL's SQLSTATE 53100): mail waits in its source until there is.
    DiskFull,
    /// Another error worth retrying (I/O, a lock held too long, the server
    /// gone): mail waits in its source as well.
    Failing,
}

impl StoreState {
    pub const ALL: [StoreState; 3] = [StoreState::Ok, StoreState::DiskFull, StoreState::Failing];

    /// The label `/readyz` and `/metrics` show.
    pub const fn as_str(self) -> &'static str {
        match self {
            StoreState::Ok => "ok",
            StoreState::DiskFull => "disk_full",
            StoreState::Failing => "failing",
        }
    }
}

/// One store's [`StoreState`], shared by everything that uses the store.
#[derive(Debug, Clone, Default)]
pub struct StoreHealth(std::sync::Arc<std::sync::atomic::AtomicU8>);

impl StoreHealth {
    pub fn get(&self) -> StoreState {
        match self.0.load(std::sync::atomic::Ordering::Relaxed) {
            1 => StoreState::DiskFull,
            2 => StoreState::Failing,
            _ => StoreState::Ok,
        }
    }

    /// Records `state`; returns the one it replaces, so a caller logs a
    /// change once instead of every retry.
    pub fn set(&self, state: StoreState) -> StoreState {
        let n = match state {
            StoreState::Ok => 0,
            StoreState::DiskFull => 1,
            StoreState::Failing => 2,
        };
        match self.0.swap(n, std::sync::atomic::Ordering::Relaxed) {
            1 => StoreState::DiskFull,
            2 => StoreState::Failing,
            _ => StoreState::Ok,
        }
    }
}
