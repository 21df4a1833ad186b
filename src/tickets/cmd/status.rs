//! `#status <status>`, and the shorthands `#close` and `#reopen`: moves the
//! ticket. Customers close and reopen their own tickets; staff set any
//! status (`ticket::may_set_status`). Followers and the team are told
//! (`status_changed`), and the `status_changed` rules run once after.

use super::{Applied, Command, CommandProblem, value};
use crate::domain::event::Cause;
use crate::domain::ticket::{self, Status};
use crate::store::TicketState;
use crate::tickets::{Author, Changes, Refusal, access};

pub(super) fn parse(key: &str, args: &str) -> Option<Result<Command, CommandProblem>> {
    Some(match key {
        "status" | "state" => value(args, "status", "a status").and_then(|value| {
            value
                .parse()
                .map(Command::Status)
                .map_err(|_| CommandProblem::BadValue {
                    command: "status",
                    value,
                    expected: "a status",
                })
        }),
        // Shorthands people type.
        "close" | "closed" | "resolve" | "resolved" if args.is_empty() => {
            Ok(Command::Status(Status::Closed))
        }
        "reopen" if args.is_empty() => Ok(Command::Status(Status::New)),
        _ => return None,
    })
}

pub(super) async fn apply(
    c: &mut Changes<'_>,
    state: &TicketState,
    author: &Author<'_>,
    to: Status,
) -> Applied {
    if !ticket::may_set_status(&author.actor(), &access(state), state.status, to) {
        return Ok(Err(Refusal::Forbidden(format!(
            "you may not set the status to \"{}\"",
            c.policy.label(to, crate::domain::locale::Locale::default())
        ))));
    }
    Ok(Ok(c
        .set_status(state, Some(author.user), to, Cause::Command)
        .await?))
}
