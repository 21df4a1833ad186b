//! Replaying a quarantined or rejected delivery, as the request-at-a-time
//! channels (`src/api`, `src/web`) reach it: only this trait, implemented by
//! the email channel (`src/ingest/mod.rs`), so they import nothing of it.

use async_trait::async_trait;

use crate::domain::ids::{CommentId, TicketId};
use crate::domain::outcome::Outcome;
use crate::store::StoreError;

/// Runs a logged delivery through intake again from its stored raw bytes.
#[async_trait]
pub trait Replay: Send + Sync {
    /// `Err` for storage trouble (nothing was written); `Ok(Err)` when the
    /// row cannot be replayed, as `Service` answers a `Refusal`.
    async fn replay(&self, log_id: i64) -> Result<Result<Replayed, ReplayRefusal>, StoreError>;
}

/// The new outcome of a replayed delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// The new ingest log row; the replayed one is now superseded.
    pub log_id: i64,
    pub outcome: Outcome,
    pub ticket: Option<TicketId>,
    pub comment: Option<CommentId>,
    /// Why it was refused again (an `outcome::reason` code), if it was.
    pub reason: Option<String>,
}

/// Why a logged delivery cannot be replayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayRefusal {
    #[error("no message {0} in the ingest log")]
    NotFound(i64),
    #[error("message {id} was {outcome}: only quarantined or rejected messages are replayed")]
    NotReplayable { id: i64, outcome: String },
    #[error("message {0} was already replayed")]
    AlreadyReplayed(i64),
    #[error("message {0} was discarded")]
    Discarded(i64),
    /// Oversized IMAP mail is fetched by its headers only; its body never reached us.
    #[error("only the headers of message {0} were kept; deliver it again instead")]
    HeadersOnly(i64),
    /// Retention or an erasure removed the raw message.
    #[error(
        "the raw message of message {0} was removed (retention or erasure); ask the sender to send it again"
    )]
    RawRemoved(i64),
}
