//! `#unshare-org "Customer Site A"`: the organization's members no longer
//! read the ticket through it (followers keep following). The same
//! permission as `#share-org`.

use super::share_org::org_for;
use super::{Applied, Command, CommandProblem, value};
use crate::domain::event::Event;
use crate::store::TicketState;
use crate::tickets::{Author, Changes};

pub(super) fn parse(key: &str, args: &str) -> Option<Result<Command, CommandProblem>> {
    matches!(key, "unshare-org" | "unshareorg")
        .then(|| value(args, "unshare-org", "an organization").map(Command::UnshareOrg))
}

pub(super) async fn apply(
    c: &mut Changes<'_>,
    state: &TicketState,
    author: &Author<'_>,
    key: &str,
) -> Applied {
    let org = match org_for(c, author, key).await? {
        Ok(org) => org,
        Err(refusal) => return Ok(Err(refusal)),
    };
    if c.tx.detach_org(state.id, org.id).await? {
        c.record(
            state.id,
            Some(author.user),
            Event::OrgRemoved { org: org.slug },
        )
        .await?;
    }
    Ok(Ok(c.reload(state.id).await?))
}
