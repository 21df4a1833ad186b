//! `#status <status>`, `#status closed <reason>`, and the shorthands
//! `#close [reason]` and `#reopen`: moves the ticket. Customers close and reopen their own tickets; staff set any
//! status (`ticket::may_set_status`). Followers and the team are told
//! (`status_changed`), and the `status_changed` rules run once after.

use super::{Applied, Command, CommandProblem, value};
use crate::domain::event::Cause;
use crate::domain::ticket::{self, CloseReason, Status};
use crate::store::TicketState;
use crate::tickets::{Author, Changes, Refusal, access};

pub(super) fn parse(key: &str, args: &str) -> Option<Result<Command, CommandProblem>> {
    Some(match key {
        "status" | "state" => value(args, "status", "a status").and_then(|value| {
            value
                .parse()
                .map(Command::Status)
                .or_else(|_| closed_with_reason(&value).ok_or(()))
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
        "close" | "closed" => {
            args.parse()
                .map(Command::Close)
                .map_err(|_| CommandProblem::BadValue {
                    command: "close",
                    value: args.to_string(),
                    expected: "a close reason",
                })
        }
        "reopen" if args.is_empty() => Ok(Command::Status(Status::New)),
        _ => return None,
    })
}

/// `closed feature request`: a closing status, then a reason
/// (docs/contract.md, "Desk").
fn closed_with_reason(value: &str) -> Option<Command> {
    let (head, rest) = value.trim().split_once(char::is_whitespace)?;
    (head.parse::<Status>().ok()? == Status::Closed)
        .then(|| rest.parse().ok().map(Command::Close))
        .flatten()
}

pub(super) async fn apply(
    c: &mut Changes<'_>,
    state: &TicketState,
    author: &Author<'_>,
    to: Status,
    reason: Option<CloseReason>,
) -> Applied {
    if !ticket::may_set_status(&author.actor(), &access(state), state.status, to) {
        return Ok(Err(Refusal::Forbidden(format!(
            "you may not set the status to \"{}\"",
            c.policy.label(to, crate::domain::locale::Locale::default())
        ))));
    }
    if let Some(reason) = reason
        && !ticket::may_give_close_reason(&author.actor(), reason)
    {
        return Ok(Err(Refusal::Forbidden(format!(
            "only the support team closes a ticket as \"{}\"",
            reason.as_str()
        ))));
    }
    Ok(Ok(c
        .set_status(state, Some(author.user), to, Cause::Command, reason)
        .await?))
}
