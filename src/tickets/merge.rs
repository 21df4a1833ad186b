//! Merging a ticket into another and moving a comment between tickets
//! (docs/contract.md, "Desk"): staff tidying up what mail threaded
//! wrongly or twice. The rules are `ticket::may_merge` and
//! `ticket::may_move_comment`; the writes are `Tx::merge_ticket` and
//! `Tx::move_comment`, in the caller's transaction.

use super::changes::by_whom;
use super::{Changes, Refusal, actor};
use crate::domain::event::{Cause, Event};
use crate::domain::ids::{CommentId, TicketId};
use crate::domain::template::{self, Notification, Shown};
use crate::domain::threading;
use crate::domain::ticket::{
    self, CloseReason, FollowerSource, MAX_MERGE_HOPS, MergeRefusal, MergeSide, MoveRefusal, Status,
};
use crate::store::{NewTicket, StoreError, TicketState, Tx, User};

/// Where `#move-to` or the API puts a comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveTarget {
    Ticket(TicketId),
    /// A new ticket, requested by the comment's author.
    New,
}

/// The ticket mail naming `id` belongs to now: `id` itself, or the end of
/// the chain of merges from it (`B` into `A`, `A` into `C`: `C`), followed
/// at most `MAX_MERGE_HOPS` times and never round a loop.
pub async fn living_ticket(tx: &mut dyn Tx, id: TicketId) -> Result<TicketId, StoreError> {
    let mut seen = vec![id];
    let mut at = id;
    for _ in 0..MAX_MERGE_HOPS {
        match tx.desk(at).await?.and_then(|d| d.merged_into) {
            Some(next) if !seen.contains(&next) => {
                seen.push(next);
                at = next;
            }
            _ => break,
        }
    }
    Ok(at)
}

fn merge_refusal(from: TicketId, why: MergeRefusal) -> Refusal {
    match why {
        MergeRefusal::NotStaff => Refusal::Forbidden("only the support team merges tickets".into()),
        MergeRefusal::IntoItself => {
            Refusal::Conflict(format!("ticket {from} cannot be merged into itself"))
        }
        MergeRefusal::NoTarget(id) => Refusal::NotFound(format!("ticket {id} not found")),
        MergeRefusal::AlreadyMerged(went) => Refusal::Conflict(format!(
            "ticket {from} was already merged into ticket {went}"
        )),
        MergeRefusal::TargetMerged { target, went } => Refusal::Conflict(format!(
            "ticket {target} was merged into ticket {went}: merge into {went} instead"
        )),
    }
}

fn move_refusal(why: MoveRefusal) -> Refusal {
    match why {
        MoveRefusal::NotStaff => Refusal::Forbidden("only the support team moves comments".into()),
        MoveRefusal::SameTicket => {
            Refusal::Conflict("the comment is already on that ticket".into())
        }
        MoveRefusal::TargetMerged { target, went } => Refusal::Conflict(format!(
            "ticket {target} was merged into ticket {went}: move it to {went} instead"
        )),
    }
}

impl Changes<'_> {
    /// The ticket and where it was merged, as the rules see it.
    async fn side(&mut self, state: &TicketState) -> Result<MergeSide, StoreError> {
        Ok(MergeSide {
            id: state.id,
            merged_into: self.desk(state.id).await?.merged_into,
        })
    }

    /// Merges `from` into ticket `into`: its comments, Message-IDs,
    /// followers and organizations go there (`Tx::merge_ticket`), `from`
    /// is closed as a duplicate with `merged_into` set, `ticket_merged` is
    /// recorded on both. Only `from`'s followers are told, in the one
    /// status mail, that it continues in `into`; the followers who join
    /// `into` are not told again. Answers `into` as it now is.
    pub async fn merge(
        &mut self,
        from: &TicketState,
        author: &User,
        into: TicketId,
    ) -> Result<Result<TicketState, Refusal>, StoreError> {
        let from_side = self.side(from).await?;
        let target = if into == from.id {
            Some(from.clone())
        } else {
            self.tx.ticket_state(into).await?
        };
        let into_side = match &target {
            Some(t) => Some(self.side(t).await?),
            None => None,
        };
        if let Err(why) = ticket::may_merge(&actor(author), from_side, into, into_side) {
            return Ok(Err(merge_refusal(from.id, why)));
        }
        let Some(target) = target else {
            return Ok(Err(merge_refusal(from.id, MergeRefusal::NoTarget(into))));
        };
        let before = self.desk(from.id).await?;
        self.tx.merge_ticket(from.id, into, self.now).await?;
        let joined = self.reload(into).await?;
        for f in &joined.followers {
            if !target.followers.iter().any(|g| g.user == f.user) {
                let event = Event::FollowerAdded {
                    email: f.email.clone(),
                    source: f.source,
                };
                self.record(into, Some(author), event).await?;
            }
        }
        let event = Event::TicketMerged {
            from: from.id,
            into,
        };
        self.record(into, Some(author), event.clone()).await?;
        self.record(from.id, Some(author), event).await?;
        let mut desk = before.clone();
        desk.merged_into = Some(into);
        self.tx.set_desk(from.id, &desk).await?;
        let duplicate = Some(CloseReason::Duplicate);
        if from.status == Status::Closed && before.close_reason == duplicate {
            // Closed as a duplicate already: no status change to announce,
            // but its followers still learn where it continues (the digest
            // adds `merged_into`).
            let state = self.reload(from.id).await?;
            let what = Notification::StatusChanged(template::StatusChanged {
                from: Status::Closed,
                to: Status::Closed,
                reason: duplicate,
                merged_into: None,
                by: by_whom(Some(author)),
            });
            self.tell_followers(&state, Some(&author.email), what, None)
                .await?;
        } else {
            self.set_status(
                from,
                Some(author),
                Status::Closed,
                Cause::Command,
                duplicate,
            )
            .await?;
        }
        Ok(Ok(self.reload(into).await?))
    }

    /// Puts comment `comment` on `to` (an existing ticket, or a new one
    /// requested by the comment's author) with the Message-IDs replies to
    /// it thread by; `comment_moved` is recorded on both tickets. What this
    /// delivery was to tell about it on its old ticket is taken back
    /// (`#move-to` in a reply), and the followers of `to` are told of it
    /// instead, once. Answers the ticket it is on now.
    pub async fn move_comment(
        &mut self,
        comment: CommentId,
        author: &User,
        to: MoveTarget,
    ) -> Result<Result<TicketState, Refusal>, StoreError> {
        let Some(place) = self.tx.comment_place(comment).await? else {
            return Ok(Err(Refusal::NotFound(format!(
                "comment {comment} not found"
            ))));
        };
        let target = match to {
            MoveTarget::Ticket(id) => match self.tx.ticket_state(id).await? {
                Some(state) => Some(state),
                None => return Ok(Err(Refusal::NotFound(format!("ticket {id} not found")))),
            },
            MoveTarget::New => None,
        };
        let to_side = match &target {
            Some(t) => Some(self.side(t).await?),
            None => None,
        };
        if let Err(why) = ticket::may_move_comment(&actor(author), place.ticket, to_side) {
            return Ok(Err(move_refusal(why)));
        }
        let Some(writer) = self.tx.user_by_id(place.author_id).await? else {
            return Ok(Err(Refusal::NotFound(format!(
                "the author of comment {comment} is gone"
            ))));
        };
        let from = self.reload(place.ticket).await?;
        let dest = match target {
            Some(state) => state.id,
            None => self.open_for(&from, &writer, author).await?,
        };
        self.tx.move_comment(comment, dest).await?;
        let event = Event::CommentMoved {
            comment,
            from: from.id,
            to: dest,
        };
        self.record(from.id, Some(author), event.clone()).await?;
        self.record(dest, Some(author), event).await?;
        self.digest_withdraw(from.id, comment);
        let state = self.reload(dest).await?;
        let shown = Shown {
            id: comment,
            author_name: writer.name.clone(),
            author_email: writer.email.clone(),
            internal: place.internal,
            attachments: Vec::new(),
        };
        let what = Notification::CommentAdded(template::Plain {});
        self.tell_followers(&state, Some(&author.email), what, Some(shown))
            .await?;
        Ok(Ok(state))
    }

    /// The ticket a comment moved to `new` opens: requested by its writer,
    /// with their organization, under the old ticket's subject.
    async fn open_for(
        &mut self,
        from: &TicketState,
        writer: &User,
        author: &User,
    ) -> Result<TicketId, StoreError> {
        let subject = threading::ticket_subject(&from.subject, &self.sender.tag);
        let id = self
            .tx
            .insert_ticket(&NewTicket {
                subject: subject.clone(),
                status: Status::New,
                requester_id: writer.id,
                org_id: writer.org_id,
                root_message_id: None,
                now: self.now,
            })
            .await?;
        self.tx
            .add_follower(id, writer.id, FollowerSource::Creator, self.now)
            .await?;
        if let Some(org) = writer.org_id {
            self.tx.attach_org(id, org).await?;
        }
        let event = Event::TicketCreated {
            subject,
            message_id: None,
        };
        self.record(id, Some(author), event).await?;
        Ok(id)
    }
}
