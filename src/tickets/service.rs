//! The ticket service as a channel that acts one request at a time sees it
//! (the admin API; the portal next): each call is one transaction, and a
//! refusal leaves nothing behind. Email calls [`Changes`] directly, inside
//! the transaction that also logs the delivery.

use std::sync::Arc;

use time::OffsetDateTime;

use super::notice::Sender;
use super::{Added, Author, ChangePolicy, Changes, Opening, Refusal, RuleInput, Typed};
use crate::domain::ids::{CommentId, TicketId};
use crate::domain::mentions;
use crate::domain::ticket::Status;
use crate::store::{Store, StoreError, TicketState, Tx};
use crate::tickets::{Command, MoveTarget};

#[derive(Clone)]
pub struct Service {
    store: Arc<dyn Store>,
    sender: Arc<Sender>,
    policy: Arc<ChangePolicy>,
}

impl Service {
    pub fn new(store: Arc<dyn Store>, sender: Arc<Sender>, policy: Arc<ChangePolicy>) -> Self {
        Self {
            store,
            sender,
            policy,
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn policy(&self) -> &ChangePolicy {
        &self.policy
    }

    pub fn sender(&self) -> &Sender {
        &self.sender
    }

    /// Changes in `tx`, telling people (`notify`) as of `now`.
    pub fn changes<'a>(
        &'a self,
        tx: &'a mut dyn Tx,
        notify: bool,
        now: OffsetDateTime,
    ) -> Changes<'a> {
        Changes::new(tx, &self.sender, &self.policy, now, notify)
    }

    /// Opens a ticket with subject `subject` from what `t` typed
    /// ([`Changes::open_ticket`]).
    pub async fn open(
        &self,
        subject: &str,
        t: &Typed<'_>,
    ) -> Result<Result<Added, Refusal>, StoreError> {
        let found = mentions::find(t.body);
        let o = Opening {
            written: t.written(&found),
            subject,
            cc: &[],
        };
        let mut tx = self.store.begin().await?;
        let mut changes = self.changes(tx.as_mut(), true, OffsetDateTime::now_utc());
        let added = match changes.open_ticket(&o).await? {
            Ok(added) => added,
            Err(refusal) => return Ok(Err(refusal)),
        };
        changes.finish().await?;
        tx.commit().await?;
        Ok(Ok(added))
    }

    /// Adds what `t` typed to ticket `ticket` ([`Changes::add_comment`]).
    pub async fn comment(
        &self,
        ticket: TicketId,
        t: &Typed<'_>,
    ) -> Result<Result<Added, Refusal>, StoreError> {
        let found = mentions::find(t.body);
        let w = t.written(&found);
        let mut tx = self.store.begin().await?;
        let Some(state) = tx.ticket_state(ticket).await? else {
            return Ok(Err(not_found(ticket)));
        };
        let mut changes = self.changes(tx.as_mut(), true, OffsetDateTime::now_utc());
        let added = match changes.add_comment(&state, &w).await? {
            Ok(added) => added,
            Err(refusal) => return Ok(Err(refusal)),
        };
        changes.finish().await?;
        tx.commit().await?;
        Ok(Ok(added))
    }

    /// Runs `commands` on one ticket, all or none: the first refusal rolls
    /// back the ones before it. When the status moved, the `status_changed`
    /// rules run once, as after an email's commands.
    pub async fn apply(
        &self,
        ticket: TicketId,
        author: &Author<'_>,
        commands: &[Command],
    ) -> Result<Result<TicketState, Refusal>, StoreError> {
        let mut tx = self.store.begin().await?;
        let Some(mut current) = tx.ticket_state(ticket).await? else {
            return Ok(Err(not_found(ticket)));
        };
        let before = current.status;
        let mut changes = self.changes(tx.as_mut(), true, OffsetDateTime::now_utc());
        for command in commands {
            current = match changes.command(&current, author, command).await? {
                Ok(next) => next,
                Err(refusal) => return Ok(Err(refusal)),
            };
        }
        let input = RuleInput {
            subject: &current.subject,
            body: "",
            has_attachment: false,
            suppress_auto_response: false,
            author_proven: author.proven,
        };
        changes
            .status_rules_once(ticket, before, current.status, author.user, &input, None)
            .await?;
        changes.finish().await?;
        tx.commit().await?;
        Ok(Ok(current))
    }
}

impl Service {
    /// Merges ticket `from` into `into` ([`Changes::merge`]) and runs the
    /// `status_changed` rules of `from`, now closed; answers `into`.
    pub async fn merge(
        &self,
        from: TicketId,
        author: &Author<'_>,
        into: TicketId,
    ) -> Result<Result<TicketState, Refusal>, StoreError> {
        let merge = Command::MergeInto(into);
        if crate::domain::ticket::needs_proof(&super::actor(author.user), merge.reach())
            && !author.proven
        {
            return Ok(Err(Refusal::Unverified));
        }
        let mut tx = self.store.begin().await?;
        let Some(state) = tx.ticket_state(from).await? else {
            return Ok(Err(not_found(from)));
        };
        let mut changes = self.changes(tx.as_mut(), true, OffsetDateTime::now_utc());
        let merged = match changes.merge(&state, author.user, into).await? {
            Ok(merged) => merged,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let input = RuleInput {
            subject: &state.subject,
            body: "",
            has_attachment: false,
            suppress_auto_response: false,
            author_proven: author.proven,
        };
        changes
            .status_rules_once(
                from,
                state.status,
                Status::Closed,
                author.user,
                &input,
                None,
            )
            .await?;
        changes.finish().await?;
        tx.commit().await?;
        Ok(Ok(merged))
    }

    /// Puts comment `comment` on `to` ([`Changes::move_comment`]); answers
    /// the ticket it is on now.
    pub async fn move_comment(
        &self,
        comment: CommentId,
        author: &Author<'_>,
        to: MoveTarget,
    ) -> Result<Result<TicketState, Refusal>, StoreError> {
        let command = Command::MoveTo(to);
        if crate::domain::ticket::needs_proof(&super::actor(author.user), command.reach())
            && !author.proven
        {
            return Ok(Err(Refusal::Unverified));
        }
        let mut tx = self.store.begin().await?;
        let mut changes = self.changes(tx.as_mut(), true, OffsetDateTime::now_utc());
        let moved = match changes.move_comment(comment, author.user, to).await? {
            Ok(moved) => moved,
            Err(refusal) => return Ok(Err(refusal)),
        };
        changes.finish().await?;
        tx.commit().await?;
        Ok(Ok(moved))
    }
}

fn not_found(ticket: TicketId) -> Refusal {
    Refusal::NotFound(format!("ticket {ticket} not found"))
}
