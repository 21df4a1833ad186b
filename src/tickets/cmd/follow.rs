//! `#follow`: the author follows the ticket (they may already read it, or
//! `needs_proof` stopped them before this) and is told so (`you_follow`).

use super::{Applied, Command, CommandProblem};
use crate::domain::template::Notification;
use crate::domain::ticket::FollowerSource;
use crate::store::TicketState;
use crate::tickets::{Author, Changes};

pub(super) fn parse(key: &str, _args: &str) -> Option<Result<Command, CommandProblem>> {
    matches!(key, "follow" | "watch" | "subscribe").then_some(Ok(Command::Follow))
}

pub(super) async fn apply(
    c: &mut Changes<'_>,
    state: &TicketState,
    author: &Author<'_>,
) -> Applied {
    let user = author.user;
    c.add_follower(
        state,
        user,
        FollowerSource::Follow,
        Some(user),
        Notification::YouFollow,
    )
    .await?;
    Ok(Ok(c.reload(state.id).await?))
}
