//! Email commands (`#status`, `#share`, …) and their API equivalents: the
//! proof and permission each needs (pure functions in `domain::ticket`),
//! then the change.

use serde_json::json;

use super::{Author, Changes, Refusal, access};
use crate::domain::commands::Command;
use crate::domain::event::EventKind;
use crate::domain::template::{self, Notification};
use crate::domain::ticket::{self, FollowerSource, Removal};
use crate::store::{StoreError, TicketState};

impl Changes<'_> {
    /// Applies one email command; `Err(reason)` when refused.
    pub async fn command(
        &mut self,
        state: &TicketState,
        author: &Author<'_>,
        command: &Command,
    ) -> Result<Result<TicketState, Refusal>, StoreError> {
        let actor = author.actor();
        let user = author.user;
        // docs/contract.md, "Proof": staff commands and changes of who may see
        // the ticket (grants and removals) need proof.
        if ticket::needs_proof(&actor, command.reach()) && !author.proven {
            return Ok(Err(Refusal::Unverified));
        }
        let access = access(state);
        Ok(Ok(match command {
            Command::Status(to) => {
                if !ticket::may_set_status(&actor, &access, state.status, *to) {
                    return Ok(Err(Refusal::Forbidden(format!(
                        "you may not set the status to \"{}\"",
                        self.policy.label(*to)
                    ))));
                }
                self.set_status(state, Some(user), *to, "command").await?
            }
            Command::Priority(p) => {
                if !ticket::may_set_priority(&actor) {
                    return Ok(Err(Refusal::Forbidden(
                        "only support staff set priorities".into(),
                    )));
                }
                self.set_priority(state, user, *p).await?
            }
            Command::Release(version) => {
                if !ticket::may_note_release(&actor) {
                    return Ok(Err(Refusal::Forbidden(
                        "only support staff record releases".into(),
                    )));
                }
                self.note_release(state, user, version).await?
            }
            Command::Follow => {
                self.add_follower(
                    state,
                    user,
                    FollowerSource::Follow,
                    Some(user),
                    Notification::YouFollow,
                )
                .await?;
                self.reload(state.id).await?
            }
            Command::Unfollow => {
                if ticket::may_remove_follower(&actor, &access, user.id).is_err() {
                    return Ok(Err(Refusal::Protected(
                        "the requester always follows their ticket".into(),
                    )));
                }
                if self.tx.remove_follower(state.id, user.id).await? {
                    self.event(
                        state.id,
                        EventKind::FollowerRemoved,
                        Some(user.id),
                        json!({"email": user.email}),
                    )
                    .await?;
                }
                self.reload(state.id).await?
            }
            Command::Share(addresses) => {
                // The same rule as a Cc on an opening mail (`tickets::open`).
                let leads = self.leads_of(user).await?;
                let mut failures = Vec::new();
                for address in addresses {
                    let target = self
                        .tx
                        .user_by_email(address)
                        .await?
                        .filter(|t| ticket::may_share_with(&actor, &leads, &super::actor(t)));
                    match target {
                        Some(target) => {
                            self.add_follower(
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
                self.reload(state.id).await?
            }
            Command::Unshare(addresses) => {
                for address in addresses {
                    let Some(target) = self.tx.user_by_email(address).await? else {
                        continue;
                    };
                    match ticket::may_remove_follower(&actor, &access, target.id) {
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
                    if self.tx.remove_follower(state.id, target.id).await? {
                        self.event(
                            state.id,
                            EventKind::FollowerRemoved,
                            Some(user.id),
                            json!({"email": address}),
                        )
                        .await?;
                        if target.id != user.id {
                            // They stop getting its mail: this last one says why.
                            let what = Notification::FollowerRemoved(template::Removed {
                                by: template::ByWhom::person(&user.name, &user.email),
                            });
                            self.tell_one(
                                &target,
                                Some(state),
                                crate::domain::ticket::Reason::Removed,
                                what,
                            )
                            .await?;
                        }
                    }
                }
                self.reload(state.id).await?
            }
            Command::ShareOrg(key) | Command::UnshareOrg(key) => {
                let Some(org) = self.tx.org_by_key(key).await? else {
                    return Ok(Err(Refusal::NotFound(format!("no organization {key:?}"))));
                };
                if !ticket::may_share_org(&actor, org.id) {
                    return Ok(Err(Refusal::Forbidden(format!(
                        "you may only share with your own organization, not {}",
                        org.name
                    ))));
                }
                if matches!(command, Command::ShareOrg(_)) {
                    self.tx.attach_org(state.id, org.id).await?;
                    self.event(
                        state.id,
                        EventKind::OrgAdded,
                        Some(user.id),
                        json!({"org": org.slug}),
                    )
                    .await?;
                } else {
                    if self.tx.detach_org(state.id, org.id).await? {
                        self.event(
                            state.id,
                            EventKind::OrgRemoved,
                            Some(user.id),
                            json!({"org": org.slug}),
                        )
                        .await?;
                    }
                }
                self.reload(state.id).await?
            }
            // Handled by the caller: they shape the comment and the answer.
            Command::Internal | Command::List | Command::Help => state.clone(),
        }))
    }
}
