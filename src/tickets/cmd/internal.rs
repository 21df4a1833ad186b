//! `#internal` (or `#private`): the comment it heads is an internal note,
//! seen and mailed to staff only. Only proven staff post one
//! (`ticket::may_post_internal`, checked where the comment is written:
//! `Changes::add_comment`); it changes nothing by itself.

use super::{Command, CommandProblem};

pub(super) fn parse(key: &str, _args: &str) -> Option<Result<Command, CommandProblem>> {
    matches!(key, "internal" | "private").then_some(Ok(Command::Internal))
}
