//! `#unshare a@x`: removes followers. The requester or staff may; the
//! ticket's creator can never be removed (`ticket::may_remove_follower`).
//! Each one removed is told, once, that they no longer follow it.

use super::{Applied, Command, CommandProblem, addresses};
use crate::domain::event::Event;
use crate::domain::ids::EmailAddress;
use crate::domain::template::{self, Notification};
use crate::domain::ticket::{self, Reason, Removal};
use crate::store::TicketState;
use crate::tickets::{Author, Changes, Refusal, access};

pub(super) fn parse(key: &str, args: &str) -> Option<Result<Command, CommandProblem>> {
    (key == "unshare").then(|| addresses("unshare", args).map(Command::Unshare))
}

pub(super) async fn apply(
    c: &mut Changes<'_>,
    state: &TicketState,
    author: &Author<'_>,
    from: &[EmailAddress],
) -> Applied {
    let user = author.user;
    let access = access(state);
    for address in from {
        let Some(target) = c.tx.user_by_email(address).await? else {
            continue;
        };
        match ticket::may_remove_follower(&author.actor(), &access, target.id) {
            Ok(()) => {}
            Err(Removal::Creator) => {
                return Ok(Err(Refusal::Protected(format!(
                    "{address} created the ticket and cannot be removed"
                ))));
            }
            Err(Removal::NotYours) => {
                return Ok(Err(Refusal::Forbidden(format!(
                    "only the requester or staff may remove {address}"
                ))));
            }
        }
        if c.tx.remove_follower(state.id, target.id).await? {
            let event = Event::FollowerRemoved {
                email: address.clone(),
            };
            c.record(state.id, Some(user), event).await?;
            if target.id != user.id {
                // They stop getting its mail: this last one says why.
                let what = Notification::FollowerRemoved(template::Removed {
                    by: template::ByWhom::person(&user.name, &user.email),
                });
                c.tell_one(&target, Some(state), Reason::Removed, what)
                    .await?;
            }
        }
    }
    Ok(Ok(c.reload(state.id).await?))
}
