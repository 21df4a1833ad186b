//! What a running source reports about itself, read by `/readyz` and
//! `/metrics`. It belongs to neither side: sources write it, the API reads
//! it, and neither imports the other.

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
