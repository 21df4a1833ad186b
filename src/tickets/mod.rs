//! The ticket service: every change to a ticket, whichever channel it comes
//! from (email, the admin API, the portal). Each use case loads what it
//! needs, asks `crate::domain` whether it is allowed (pure functions), writes
//! in the caller's transaction, plans who is told (`notice::Digest`, one mail
//! per person per delivery or request) and runs the rules once.
//!
//! Channels are adapters: they turn their input into these calls and a
//! `Refusal` into their own answer (a notice or quarantine for email, an HTTP
//! status for the API). They own the transaction and call
//! [`Changes::finish`] before committing.

mod alarms;
mod changes;
pub mod clocks;
pub mod cmd;
mod comment;
mod merge;
pub mod notice;
mod open;
pub mod replay;
mod service;

pub use alarms::Ticked;
pub use changes::*;
pub use cmd::{Assignee, Command};
pub use comment::{Added, Typed, Written};
pub use merge::{MoveTarget, living_ticket};
pub use open::Opening;
pub use replay::{Replay, ReplayRefusal, Replayed};
pub use service::Service;

#[cfg(test)]
mod tests;
