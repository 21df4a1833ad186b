//! `#share a@x, b@y` (or `#cc`): registered users the author may share with
//! (`ticket::may_share_with`, the same rule as a Cc on an opening mail)
//! follow the ticket and are told (`shared_with_you`). Needs proof.

use super::{Applied, Command, CommandProblem, addresses};
use crate::domain::ids::EmailAddress;
use crate::domain::template::Notification;
use crate::domain::ticket::{self, FollowerSource};
use crate::store::TicketState;
use crate::tickets::{Author, Changes, Refusal, actor};

pub(super) fn parse(key: &str, args: &str) -> Option<Result<Command, CommandProblem>> {
    matches!(key, "share" | "cc").then(|| addresses("share", args).map(Command::Share))
}

pub(super) async fn apply(
    c: &mut Changes<'_>,
    state: &TicketState,
    author: &Author<'_>,
    to: &[EmailAddress],
) -> Applied {
    let user = author.user;
    let leads = c.leads_of(user).await?;
    let mut failures = Vec::new();
    for address in to {
        let target =
            c.tx.user_by_email(address)
                .await?
                .filter(|t| ticket::may_share_with(&author.actor(), &leads, &actor(t)));
        match target {
            Some(target) => {
                c.add_follower(
                    state,
                    &target,
                    FollowerSource::Share,
                    Some(user),
                    Notification::SharedWithYou,
                )
                .await?;
            }
            None => failures.push(format!(
                "{address} is not a registered user you may share with"
            )),
        }
    }
    if !failures.is_empty() {
        return Ok(Err(Refusal::NotFound(failures.join("; "))));
    }
    Ok(Ok(c.reload(state.id).await?))
}
