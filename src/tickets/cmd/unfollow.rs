//! `#unfollow`: the author stops following; the requester never can
//! (`ticket::may_remove_follower`).

use super::{Applied, Command, CommandProblem};
use crate::domain::event::Event;
use crate::domain::ticket;
use crate::store::TicketState;
use crate::tickets::{Author, Changes, Refusal, access};

pub(super) fn parse(key: &str, _args: &str) -> Option<Result<Command, CommandProblem>> {
    matches!(key, "unfollow" | "unwatch" | "unsubscribe").then_some(Ok(Command::Unfollow))
}

pub(super) async fn apply(
    c: &mut Changes<'_>,
    state: &TicketState,
    author: &Author<'_>,
) -> Applied {
    let user = author.user;
    if ticket::may_remove_follower(&author.actor(), &access(state), user.id).is_err() {
        return Ok(Err(Refusal::Protected(
            "the requester always follows their ticket".into(),
        )));
    }
    if c.tx.remove_follower(state.id, user.id).await? {
        let event = Event::FollowerRemoved {
            email: user.email.clone(),
        };
        c.record(state.id, Some(user), event).await?;
    }
    Ok(Ok(c.reload(state.id).await?))
}
