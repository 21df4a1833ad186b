//! `#merge-into N` (or `#duplicate-of N`): staff merge the ticket the mail
//! is on into ticket N (docs/contract.md, "Desk"). Who may, and which
//! merges make sense, is `ticket::may_merge`; the change is `Changes::merge`.

use super::{Applied, Command, CommandProblem, value};
use crate::domain::ids::TicketId;
use crate::store::TicketState;
use crate::tickets::{Author, Changes};

pub(super) fn parse(key: &str, args: &str) -> Option<Result<Command, CommandProblem>> {
    match key {
        "merge-into" | "merge" | "duplicate-of" => Some(
            value(args, "merge-into", "a ticket number")
                .and_then(|n| ticket_number(&n, "merge-into").map(Command::MergeInto)),
        ),
        _ => None,
    }
}

/// `12` or `#12`.
pub(super) fn ticket_number(text: &str, command: &'static str) -> Result<TicketId, CommandProblem> {
    text.trim()
        .trim_start_matches('#')
        .parse::<TicketId>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| CommandProblem::BadValue {
            command,
            value: text.to_string(),
            expected: "a ticket number",
        })
}

pub(super) async fn apply(
    c: &mut Changes<'_>,
    state: &TicketState,
    author: &Author<'_>,
    into: TicketId,
) -> Applied {
    Ok(match c.merge(state, author.user, into).await? {
        // The mail's ticket as it ends: closed, pointing at `into`.
        Ok(_) => Ok(c.reload(state.id).await?),
        Err(refusal) => Err(refusal),
    })
}
