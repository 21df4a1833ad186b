//! `#release 5.2.1` (or `#fixed-in`): staff record the release that fixes
//! the ticket; everyone on it is told, and a comment in the thread says it.
//! The name is parsed by `Version::parse`, as the API and the portal do.

use super::{Applied, Command, CommandProblem, value};
use crate::domain::ticket;
use crate::domain::version::Version;
use crate::store::TicketState;
use crate::tickets::{Author, Changes, Refusal};

pub(super) fn parse(key: &str, args: &str) -> Option<Result<Command, CommandProblem>> {
    match key {
        "release" | "fixed-in" | "fixedin" => {
            Some(value(args, "release", "a version").and_then(|value| {
                Version::parse(&value)
                    .map(Command::Release)
                    .map_err(|problem| CommandProblem::BadVersion { value, problem })
            }))
        }
        _ => None,
    }
}

pub(super) async fn apply(
    c: &mut Changes<'_>,
    state: &TicketState,
    author: &Author<'_>,
    release: &Version,
) -> Applied {
    if !ticket::may_note_release(&author.actor()) {
        return Ok(Err(Refusal::Forbidden(
            "only support staff record releases".into(),
        )));
    }
    Ok(Ok(c.note_release(state, author.user, release).await?))
}
