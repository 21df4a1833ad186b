//! `#move-to N` and `#move-to new`: staff put the text of the reply they
//! write (the comment this mail adds) on ticket N, or on a new ticket
//! requested by them, with its Message-ID, so the rest of that thread
//! follows (docs/contract.md, "Desk"). It needs the mail's comment, so the
//! reply's command loop runs it (`Changes::run_commands`); the API moves
//! any comment by id (`POST /api/comments/{id}/move`).

use super::merge::ticket_number;
use super::{Command, CommandProblem, value};
use crate::tickets::MoveTarget;

pub(super) fn parse(key: &str, args: &str) -> Option<Result<Command, CommandProblem>> {
    match key {
        "move-to" | "move" => Some(value(args, "move-to", "a ticket number or new").and_then(
            |to| {
                if to.eq_ignore_ascii_case("new") {
                    Ok(Command::MoveTo(MoveTarget::New))
                } else {
                    ticket_number(&to, "move-to").map(|n| Command::MoveTo(MoveTarget::Ticket(n)))
                }
            },
        )),
        _ => None,
    }
}

/// Why `#move-to` did nothing: the mail added no comment to move.
pub(crate) const NOTHING_TO_MOVE: &str =
    "#move-to moves the text of a reply written on a ticket, and this mail has none";
