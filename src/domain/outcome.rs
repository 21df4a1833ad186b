//! The one outcome every delivery ends with (docs/contract.md, "Guarantees").

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::ticket::UnknownValue;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    TicketCreated,
    CommentAdded,
    CommandOnly,
    Duplicate,
    Ignored,
    Rejected,
    Quarantined,
}

impl Outcome {
    pub const ALL: [Outcome; 7] = [
        Outcome::TicketCreated,
        Outcome::CommentAdded,
        Outcome::CommandOnly,
        Outcome::Duplicate,
        Outcome::Ignored,
        Outcome::Rejected,
        Outcome::Quarantined,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::TicketCreated => "ticket_created",
            Outcome::CommentAdded => "comment_added",
            Outcome::CommandOnly => "command_only",
            Outcome::Duplicate => "duplicate",
            Outcome::Ignored => "ignored",
            Outcome::Rejected => "rejected",
            Outcome::Quarantined => "quarantined",
        }
    }

    /// Whether the message changed a ticket (and so its ids join the thread).
    /// Only accepted deliveries reserve their dedup key: a refused stranger
    /// who sent a Message-ID first must not make its owner's mail a duplicate.
    pub fn is_accepted(self) -> bool {
        matches!(
            self,
            Outcome::TicketCreated | Outcome::CommentAdded | Outcome::CommandOnly
        )
    }
}

/// An outcome equals its wire name (`"ticket_created"`), as logs and JSON show it.
impl PartialEq<&str> for Outcome {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl FromStr for Outcome {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Outcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s.trim())
            .ok_or_else(|| UnknownValue {
                kind: "outcome",
                value: s.to_string(),
            })
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reason codes recorded with `ignored`, `rejected` and `quarantined` outcomes
/// (automatic-mail reasons come from `classify::Automatic::as_str`).
pub mod reason {
    pub const UNKNOWN_SENDER: &str = "unknown_sender";
    pub const NOT_A_PARTICIPANT: &str = "not_a_participant";
    pub const TOO_LARGE: &str = "too_large";
    pub const UNPARSEABLE: &str = "unparseable";
    /// More MIME parts or nested containers than a person sends (`mail::too_complex`).
    pub const TOO_COMPLEX: &str = "too_complex";
    pub const NO_SENDER: &str = "no_sender";
    pub const DUPLICATE: &str = "duplicate";
    /// A source gave up on the message after repeated failures and moved it
    /// aside (Maildir `failed/`); the log keeps its header section.
    pub const PROCESSING_FAILED: &str = "processing_failed";
    /// More than one From field (RFC 5322 §3.6): whose message it is is unknown.
    pub const MULTIPLE_FROM: &str = "multiple_from";
    /// `#internal` from someone not proven staff: never published.
    pub const UNVERIFIED_INTERNAL: &str = "unverified_internal";
    /// A first-contact address that mixes scripts or looks like another
    /// (`lookalike::confusable_address`): not registered from mail.
    pub const CONFUSABLE_SENDER: &str = "confusable_sender";
}
