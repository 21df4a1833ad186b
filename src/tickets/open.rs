//! Opening a ticket, by any channel: the ticket, its first comment, who
//! follows it, the team's notice, then its commands, mentions and the
//! `ticket_created` rules once.

use super::comment::shown_comment;
use super::{Added, Changes, Failure, Refusal, Written, actor};
use crate::domain::event::Event;
use crate::domain::ids::{EmailAddress, TicketId, UserId};
use crate::domain::notify::{self, Follower};
use crate::domain::rules::Trigger;
use crate::domain::ticket::{self, Access, CcRefusal, FollowerSource, Status};
use crate::store::{NewTicket, StoreError, User};

/// A new ticket: what its requester wrote, and who else is on it.
#[derive(Debug, Clone, Copy)]
pub struct Opening<'a> {
    pub written: Written<'a>,
    /// The ticket's subject (a channel strips its own decorations).
    pub subject: &'a str,
    /// Addresses copied in (email Cc, the author and support left out):
    /// registered users among them follow the ticket when the author could
    /// `#share` it with them (`ticket::may_follow_from_cc`); the others are
    /// reported to the author as a refused share would be.
    pub cc: &'a [EmailAddress],
}

impl Changes<'_> {
    /// Opens the ticket `o` asks for. Refused before anything is written when
    /// it asks for an internal note its author may not post.
    pub async fn open_ticket(
        &mut self,
        o: &Opening<'_>,
    ) -> Result<Result<Added, Refusal>, StoreError> {
        let w = &o.written;
        let user: &User = w.author;
        if w.internal && !ticket::may_post_internal(&actor(user), w.proven) {
            return Ok(Err(Refusal::InternalNotAllowed));
        }
        let ticket_id = self
            .tx
            .insert_ticket(&NewTicket {
                subject: o.subject.to_string(),
                status: Status::New,
                requester_id: user.id,
                org_id: user.org_id,
                root_message_id: w.message_id.cloned(),
                now: self.now,
            })
            .await?;
        self.tx
            .add_follower(ticket_id, user.id, FollowerSource::Creator, self.now)
            .await?;
        if let Some(org) = user.org_id {
            self.tx.attach_org(ticket_id, org).await?;
        }
        let cc_failures = self.follow_from_cc(ticket_id, user, w.proven, o.cc).await?;
        self.record(
            ticket_id,
            Some(user),
            Event::TicketCreated {
                subject: o.subject.to_string(),
                message_id: w.message_id.cloned(),
            },
        )
        .await?;
        let comment_id = self.write_comment(ticket_id, w).await?;
        let state = self.reload(ticket_id).await?;
        let shown = shown_comment(comment_id, w);
        let requester = Follower {
            user: user.id,
            email: user.email.clone(),
            name: user.name.clone(),
            locale: user.locale.clone(),
            role: user.role,
            source: FollowerSource::Creator,
            bouncing: user.bouncing,
            active: user.active,
        };
        // The acknowledgement is a rule (config/rules.toml); the team is always told.
        let plan = self
            .team_plan(|team| notify::on_ticket_created(&requester, team, false))
            .await?;
        self.tell_plan(&state, &plan, Some(&shown));
        // The opening comment is the ticket: `#move-to` has nothing to move.
        let ran = self.run_commands(state, w, None).await?;
        let (state, mut failures) = (ran.state, ran.failures);
        failures.splice(0..0, cc_failures);
        let excerpt: String = w.body.chars().take(300).collect();
        // Mentions in an internal note reach staff only.
        let none = crate::domain::mentions::Found::default();
        let visible = if w.internal { &none } else { w.mentions };
        failures.extend(self.mentions(&state, user, visible, &excerpt).await?);
        self.apply_rules(
            Trigger::TicketCreated,
            Some(Status::New),
            state.clone(),
            user,
            &w.rule_input(&state),
            Some(&shown),
        )
        .await?;
        Ok(Ok(Added {
            state,
            comment: Some(comment_id),
            failures,
            moved_to: None,
        }))
    }

    /// The registered users in `cc` whom the author may share the new
    /// ticket with follow it (source `cc`); each other one is a failure for
    /// the author's notice, worded as for `#share`. Unregistered addresses
    /// are left alone: a Cc to a colleague without an account asks for nothing.
    async fn follow_from_cc(
        &mut self,
        ticket_id: TicketId,
        author: &User,
        proven: bool,
        cc: &[EmailAddress],
    ) -> Result<Vec<Failure>, StoreError> {
        let mut failures = Vec::new();
        if cc.is_empty() {
            return Ok(failures);
        }
        let leads = self.leads_of(author).await?;
        // The ticket as it stands: its requester and their organization.
        let access = Access {
            requester: author.id,
            followers: vec![author.id],
            orgs: author.org_id.into_iter().collect(),
        };
        for address in cc {
            let Some(cc_user) = self.tx.user_by_email(address).await? else {
                continue;
            };
            match ticket::may_follow_from_cc(
                &actor(author),
                &leads,
                proven,
                &actor(&cc_user),
                &access,
            ) {
                Ok(()) => {
                    self.tx
                        .add_follower(ticket_id, cc_user.id, FollowerSource::Cc, self.now)
                        .await?;
                }
                Err(CcRefusal::NotShareable) => failures.push(Failure::new(
                    format!("Cc: {address}"),
                    format!("{address} is not a registered user you may share with"),
                )),
                Err(CcRefusal::Unverified) => failures.push(Failure::new(
                    format!("Cc: {address}"),
                    Refusal::Unverified.to_string(),
                )),
            }
        }
        Ok(failures)
    }

    /// The delivery leads of `user`'s organization (none without one), for
    /// `ticket::may_share_with`.
    pub(super) async fn leads_of(&mut self, user: &User) -> Result<Vec<UserId>, StoreError> {
        Ok(match user.org_id {
            Some(org) => self.tx.org_leads(org).await?.iter().map(|u| u.id).collect(),
            None => Vec::new(),
        })
    }
}
