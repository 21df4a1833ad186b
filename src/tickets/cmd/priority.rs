//! `#priority P2` (or `#P2`): staff set the service level; a comment in the
//! thread names it and its response target (`Changes::set_priority`).

use super::{Applied, Command, CommandProblem, value};
use crate::domain::ticket::{self, Priority};
use crate::store::TicketState;
use crate::tickets::{Author, Changes, Refusal};

pub(super) fn parse(key: &str, args: &str) -> Option<Result<Command, CommandProblem>> {
    const EXPECTED: &str = "a priority (P1 to P4)";
    Some(match key {
        "priority" | "prio" => value(args, "priority", EXPECTED).and_then(|value| {
            value
                .parse()
                .map(Command::Priority)
                .map_err(|_| CommandProblem::BadValue {
                    command: "priority",
                    value,
                    expected: EXPECTED,
                })
        }),
        "p1" | "p2" | "p3" | "p4" if args.is_empty() => key
            .parse()
            .map(Command::Priority)
            .map_err(|_| CommandProblem::Unknown(key.to_string())),
        _ => return None,
    })
}

pub(super) async fn apply(
    c: &mut Changes<'_>,
    state: &TicketState,
    author: &Author<'_>,
    priority: Priority,
) -> Applied {
    if !ticket::may_set_priority(&author.actor()) {
        return Ok(Err(Refusal::Forbidden(
            "only support staff set priorities".into(),
        )));
    }
    Ok(Ok(c.set_priority(state, author.user, priority).await?))
}
