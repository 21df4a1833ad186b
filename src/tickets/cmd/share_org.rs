//! `#share-org "Customer Site A"`: every member of the organization may read
//! the ticket. Customers share only with their own (`ticket::may_share_org`);
//! organizations give access, never mail, so nobody is emailed.

use super::{Applied, Command, CommandProblem, value};
use crate::domain::event::Event;
use crate::domain::ticket;
use crate::store::{Org, TicketState};
use crate::tickets::{Author, Changes, Refusal};

pub(super) fn parse(key: &str, args: &str) -> Option<Result<Command, CommandProblem>> {
    matches!(key, "share-org" | "shareorg")
        .then(|| value(args, "share-org", "an organization").map(Command::ShareOrg))
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
    c.tx.attach_org(state.id, org.id).await?;
    c.record(
        state.id,
        Some(author.user),
        Event::OrgAdded { org: org.slug },
    )
    .await?;
    Ok(Ok(c.reload(state.id).await?))
}

/// The organization `key` names (name or slug), if `author` may share
/// tickets with it or unshare them from it.
pub(super) async fn org_for(
    c: &mut Changes<'_>,
    author: &Author<'_>,
    key: &str,
) -> Result<Result<Org, Refusal>, crate::store::StoreError> {
    let Some(org) = c.tx.org_by_key(key).await? else {
        return Ok(Err(Refusal::NotFound(format!("no organization {key:?}"))));
    };
    if !ticket::may_share_org(&author.actor(), org.id) {
        return Ok(Err(Refusal::Forbidden(format!(
            "you may only share with your own organization, not {}",
            org.name
        ))));
    }
    Ok(Ok(org))
}
