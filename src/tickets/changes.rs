//! Changes to a ticket beyond a comment, with the same permission checks and
//! the same events and notifications whether they come from an email command,
//! a rule, or the admin API. Runs inside the caller's transaction; what it
//! tells people is gathered and queued by `Changes::finish`, one mail each.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::domain::event::{Cause, Event};
use crate::domain::ids::{CommentId, EmailAddress, TicketId};
use crate::domain::locale::Locale;
use crate::domain::mail::InboundMail;
use crate::domain::mentions::{self, Candidate, Directory, Resolution};
use crate::domain::rules::{Action, Facts, RuleSet, Trigger};
use crate::domain::template::{self, Notification, Shown};
use crate::domain::terms::Terms;
use crate::domain::ticket::{
    self, Access, Actor, CloseReason, FollowerSource, Priority, Reason, Role, Status,
};
use crate::domain::version::Version;
use crate::store::{CommentSource, Desk, NewComment, NewEvent, StoreError, TicketState, Tx, User};
use crate::tickets::notice::{self, Digest, Notice, Sender};

/// What the changes need from config.
#[derive(Debug, Clone, Default)]
pub struct ChangePolicy {
    pub notify: Option<EmailAddress>,
    /// `[support] notify_staff = "each"`: every staff user gets their own copy.
    pub notify_each_staff: bool,
    /// `[statuses]` and `[sla.Pn]` in every language: events record the
    /// default language's words, answers are written in their reader's.
    pub terms: Terms,
    /// Mentioned users follow the ticket (`[mentions] auto_follow`).
    pub auto_follow_mentions: bool,
    pub rules: Arc<RuleSet>,
    /// At most one automatic answer per sender per window.
    pub auto_reply_window: Duration,
    /// `[intake] auto_reply_limit`: rule answers (acknowledgements) per address.
    pub auto_reply_limit: crate::config::Rate,
    /// `[support] timezone`: dates in mail are shown in it.
    pub timezone: crate::domain::dates::Zone,
    /// `[business]` and `[sla]`: the SLA clocks' calendar and targets.
    pub clocks: crate::domain::sla::Clocks,
    /// This process's `/metrics`: first responses and breaches are
    /// observed where they happen (a transaction rolled back after it
    /// would have counted one too many).
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl ChangePolicy {
    /// A status as a reader of `locale` reads it.
    pub fn label(&self, status: Status, locale: Locale) -> String {
        self.terms.label(status, locale)
    }
}

/// What the rules see of the message or API call that caused a change.
#[derive(Debug, Clone, Copy)]
pub struct RuleInput<'a> {
    pub subject: &'a str,
    pub body: &'a str,
    pub has_attachment: bool,
    /// The author asked for no automatic answers (`X-Auto-Response-Suppress`).
    pub suppress_auto_response: bool,
    /// The author proved who they are (see `ticket::rule_role`).
    pub author_proven: bool,
}

impl<'a> RuleInput<'a> {
    pub fn of(mail: &'a InboundMail, body: &'a str, author_proven: bool) -> Self {
        Self {
            subject: &mail.subject,
            body,
            has_attachment: !mail.attachments.is_empty(),
            suppress_auto_response: mail.auto.suppress_auto_response,
            author_proven,
        }
    }
}

/// The most failures one `command_failed` notice lists; it says how many more
/// there were. The notice goes to a From anyone can forge: its size is bounded
/// whatever the message held.
pub const MAX_LISTED_FAILURES: usize = 20;

/// The most characters of a failure's command or reason a notice shows.
const MAX_FAILURE_CHARS: usize = 200;

/// A failure's text as a notice shows it: at most `MAX_FAILURE_CHARS`.
fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_FAILURE_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// One refused command or mention, for the author's notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub command: String,
    pub reason: String,
}

impl Failure {
    pub fn new(command: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            command: command.into(),
            reason: reason.into(),
        }
    }
}

/// Why a change was refused; the same reasons reach an email author (in
/// their notice) and an API client (as 403, 409 or 404).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Said to a customer: no protocol names.
    #[error(
        "we could not confirm that this email comes from you; to use this command, reply to a notification we sent to you"
    )]
    Unverified,
    #[error("{0}")]
    Forbidden(String),
    /// The requester can never be removed from their ticket.
    #[error("{0}")]
    Protected(String),
    #[error("{0}")]
    NotFound(String),
    /// The change contradicts the ticket as it is (a merge into itself,
    /// of a ticket merged already).
    #[error("{0}")]
    Conflict(String),
    /// Only staff, the ticket's followers and its organizations' members comment.
    #[error("you may not comment on this ticket")]
    NotAParticipant,
    /// Only proven staff post internal notes: the text is never published.
    #[error("only support staff post internal comments")]
    InternalNotAllowed,
}

/// Who is acting and with what proof of identity.
#[derive(Debug, Clone)]
pub struct Author<'a> {
    pub user: &'a User,
    /// Authentication-Results vouched for the sender, or they replied to their
    /// own reply token (or the change came over the authenticated API).
    pub proven: bool,
}

impl Author<'_> {
    pub(super) fn actor(&self) -> Actor {
        actor(self.user)
    }
}

/// A user as the permission rules see them.
pub fn actor(user: &User) -> Actor {
    Actor {
        user: user.id,
        role: user.role,
        org: user.org_id,
    }
}

pub fn access(state: &TicketState) -> Access {
    Access {
        requester: state.requester_id,
        followers: state.followers.iter().map(|f| f.user).collect(),
        orgs: state.orgs.clone(),
    }
}

pub struct Changes<'a> {
    pub tx: &'a mut dyn Tx,
    pub sender: &'a Sender,
    pub policy: &'a ChangePolicy,
    pub now: OffsetDateTime,
    /// `false` (history import): record, email no one.
    pub notify: bool,
    /// What each person is told, queued by `finish` as one row each.
    digest: Digest,
    /// The automatic answer to the author (`reply_template` rules), queued by
    /// `finish`: what failed and later rule answers join it, one mail.
    answer: Option<PendingAnswer>,
}

/// Who made a change, as mail shows them; `None` (a rule) names the desk.
pub(super) fn by_whom(user: Option<&User>) -> template::ByWhom {
    user.map_or_else(template::ByWhom::rule, |u| {
        template::ByWhom::person(&u.name, &u.email)
    })
}

/// A system comment (priority, release) as notices show it.
fn system_shown(id: CommentId, actor: &User) -> Shown {
    Shown {
        id,
        author_name: actor.name.clone(),
        author_email: actor.email.clone(),
        internal: false,
        attachments: Vec::new(),
    }
}

/// An automatic answer waiting for `finish`.
struct PendingAnswer {
    template: String,
    to: User,
    state: TicketState,
    comment: Option<Shown>,
    answer: template::Answer,
}

impl<'a> Changes<'a> {
    pub fn new(
        tx: &'a mut dyn Tx,
        sender: &'a Sender,
        policy: &'a ChangePolicy,
        now: OffsetDateTime,
        notify: bool,
    ) -> Self {
        Self {
            tx,
            sender,
            policy,
            now,
            notify,
            digest: Digest::default(),
            answer: None,
        }
    }

    /// Queues what the changes told each person: one outbox row per
    /// recipient, after everything (commands, mentions, rules) has run, so
    /// each mail shows the ticket as it ends up. Call it before committing.
    pub async fn finish(mut self) -> Result<(), StoreError> {
        if let Some(a) = self.answer.take() {
            let n = Notice {
                what: Notification::Answer(a.template, a.answer),
                to: &a.to.email,
                name: Some(&a.to.name),
                user: Some(a.to.id),
                locale: Some(Locale::of(&a.to.locale)),
                reason: Reason::Requester,
                ticket: Some(&a.state),
                comment: a.comment,
            };
            notice::queue(self.tx, self.sender, n, self.now).await?;
        }
        let digest = std::mem::take(&mut self.digest);
        digest.queue(self.tx, self.sender, self.now).await
    }

    /// Takes back what this delivery was to tell about `comment` on
    /// `ticket` (see `Digest::withdraw`).
    pub(super) fn digest_withdraw(&mut self, ticket: TicketId, comment: CommentId) {
        self.digest.withdraw(ticket, comment);
    }

    /// The ticket as this transaction now has it; a missing one is an error.
    pub(crate) async fn reload(&mut self, ticket: TicketId) -> Result<TicketState, StoreError> {
        self.tx
            .ticket_state(ticket)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("ticket {ticket}")))
    }

    /// Records `event` once, by `actor` (`None`: a rule): the history row,
    /// and the news every mail about the ticket from this delivery shows.
    pub(super) async fn record(
        &mut self,
        ticket: TicketId,
        actor: Option<&User>,
        event: Event,
    ) -> Result<(), StoreError> {
        self.digest.change(ticket, &event, actor);
        self.tx
            .insert_event(&NewEvent {
                ticket_id: ticket,
                event,
                actor_id: actor.map(|u| u.id),
                now: self.now,
            })
            .await
    }

    /// Who `plan` tells, given the support team (the notify address and,
    /// with `notify_staff = "each"`, every staff user); nobody when this
    /// change tells nobody.
    pub(crate) async fn team_plan(
        &mut self,
        plan: impl FnOnce(&crate::domain::notify::Team<'_>) -> Vec<crate::domain::notify::Recipient>,
    ) -> Result<Vec<crate::domain::notify::Recipient>, StoreError> {
        if !self.notify {
            return Ok(Vec::new());
        }
        let staff = self.team_staff().await?;
        let team = crate::domain::notify::Team {
            notify: self.policy.notify.as_ref(),
            staff: &staff,
        };
        Ok(plan(&team))
    }

    /// Every staff user as a recipient of the team's notices when
    /// `notify_staff = "each"`; none with `"group"` (no query then).
    async fn team_staff(&mut self) -> Result<Vec<crate::domain::notify::Follower>, StoreError> {
        if !self.policy.notify_each_staff {
            return Ok(Vec::new());
        }
        Ok(self
            .tx
            .staff_users()
            .await?
            .into_iter()
            .map(|u| crate::domain::notify::Follower {
                user: u.id,
                email: u.email,
                name: u.name,
                locale: u.locale,
                role: u.role,
                source: FollowerSource::Follow,
                bouncing: u.bouncing,
                active: u.active,
            })
            .collect())
    }

    /// Every follower and the support team, minus the actor.
    pub(crate) async fn tell_followers(
        &mut self,
        state: &TicketState,
        actor: Option<&EmailAddress>,
        what: Notification,
        comment: Option<Shown>,
    ) -> Result<(), StoreError> {
        if !self.notify {
            return Ok(());
        }
        let internal = comment.as_ref().is_some_and(|c| c.internal);
        let plan = self
            .team_plan(|team| {
                crate::domain::notify::on_comment(&state.followers, actor, team, internal)
            })
            .await?;
        self.digest.saw(state);
        for r in &plan {
            self.digest
                .tell(r.into(), state.id, what.clone(), comment.clone());
        }
        Ok(())
    }

    /// Tells each planned recipient with their own template (a new ticket:
    /// the team's `new_ticket`; a reply: `comment_added`).
    pub(crate) fn tell_plan(
        &mut self,
        state: &TicketState,
        plan: &[crate::domain::notify::Recipient],
        comment: Option<&Shown>,
    ) {
        if !self.notify {
            return;
        }
        self.digest.saw(state);
        for r in plan {
            self.digest
                .tell(r.into(), state.id, r.what.clone(), comment.cloned());
        }
    }

    /// Drops what `to` was to be told about `ticket` so far in this change.
    pub(super) fn untell(&mut self, ticket: TicketId, to: &EmailAddress) {
        self.digest.forget(ticket, to);
    }

    /// Tells one user: about a ticket, through the digest; otherwise (an
    /// answer that names no ticket) at once.
    pub(super) async fn tell_one(
        &mut self,
        user: &User,
        state: Option<&TicketState>,
        reason: Reason,
        what: Notification,
    ) -> Result<(), StoreError> {
        // A deactivated account is mailed nothing, as a bouncing address.
        if !self.notify || user.bouncing || !user.active {
            return Ok(());
        }
        if let (Some(state), false) = (state, matches!(what, Notification::CommandFailed(_))) {
            self.digest.saw(state);
            let to = notice::To {
                to: &user.email,
                name: Some(&user.name),
                user: Some(user.id),
                locale: Some(Locale::of(&user.locale)),
                reason,
            };
            self.digest.tell(to, state.id, what, None);
            return Ok(());
        }
        let n = Notice {
            what,
            to: &user.email,
            name: Some(&user.name),
            user: Some(user.id),
            locale: Some(Locale::of(&user.locale)),
            reason,
            ticket: state,
            comment: None,
        };
        notice::queue(self.tx, self.sender, n, self.now).await?;
        Ok(())
    }

    /// Moves the ticket to `to`, announcing it; `cause` is recorded.
    /// Closing records why (`reason`, else what a bare close means for
    /// the actor: `CloseReason::default_for`); any other status clears it.
    /// Closing an already closed ticket with another reason records the new one.
    pub async fn set_status(
        &mut self,
        state: &TicketState,
        actor: Option<&User>,
        to: Status,
        cause: Cause,
        reason: Option<CloseReason>,
    ) -> Result<TicketState, StoreError> {
        let reason = (to == Status::Closed).then(|| {
            reason
                .unwrap_or_else(|| CloseReason::default_for(actor.map_or(Role::Staff, |a| a.role)))
        });
        let mut desk = self.desk(state.id).await?;
        if state.status == to && (to != Status::Closed || desk.close_reason == reason) {
            return Ok(state.clone());
        }
        if state.status == to && desk.close_reason.is_some() && actor.is_none() {
            // A rule never overwrites a reason a person gave.
            return Ok(state.clone());
        }
        self.tx.update_ticket(state.id, to, None, self.now).await?;
        desk.close_reason = reason;
        let clocks = &self.policy.clocks;
        super::clocks::on_status(&mut desk, state.status, to, self.now, clocks);
        super::clocks::refresh(&mut desk, to, state.priority, clocks);
        self.tx.set_desk(state.id, &desk).await?;
        let from = state.status;
        let event = Event::StatusChanged {
            from,
            to,
            cause,
            reason,
        };
        self.announce(state, actor, event, None).await
    }

    /// The first public answer of the support team stops the response
    /// clock; later ones change nothing (one read, no write).
    pub(super) async fn staff_answered(&mut self, ticket: TicketId) -> Result<(), StoreError> {
        let mut desk = self.desk(ticket).await?;
        if super::clocks::on_staff_answer(&mut desk, self.now) {
            if let Some(m) = &self.policy.metrics {
                m.observe_first_response((self.now - desk.created_at).unsigned_abs());
            }
            let state = self.reload(ticket).await?;
            super::clocks::refresh(&mut desk, state.status, state.priority, &self.policy.clocks);
            self.tx.set_desk(ticket, &desk).await?;
        }
        Ok(())
    }

    /// The desk's part of `ticket`; a missing one is an error.
    pub(crate) async fn desk(&mut self, ticket: TicketId) -> Result<Desk, StoreError> {
        self.tx
            .desk(ticket)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("ticket {ticket}")))
    }

    /// Gives the ticket to `owner` (staff), or to nobody. The owner follows
    /// the ticket (`source = "owner"`) and is told, unless they took it
    /// themselves; a previous owner keeps following.
    pub async fn set_owner(
        &mut self,
        state: &TicketState,
        actor: &User,
        owner: Option<&User>,
    ) -> Result<TicketState, StoreError> {
        let mut desk = self.desk(state.id).await?;
        if desk.owner == owner.map(|u| u.id) {
            return Ok(state.clone());
        }
        let previous = desk.owner;
        desk.owner = owner.map(|u| u.id);
        self.tx.set_desk(state.id, &desk).await?;
        match owner {
            Some(owner) => {
                self.record(
                    state.id,
                    Some(actor),
                    Event::OwnerSet {
                        email: owner.email.clone(),
                    },
                )
                .await?;
                let follows = state.followers.iter().any(|f| f.user == owner.id);
                let by = (actor.id != owner.id).then_some(actor);
                if !follows {
                    self.add_follower(
                        state,
                        owner,
                        FollowerSource::Owner,
                        by,
                        Notification::YouFollow,
                    )
                    .await?;
                } else if let Some(by) = by {
                    let now_state = self.reload(state.id).await?;
                    let what = Notification::YouFollow(template::Followed {
                        source: FollowerSource::Owner,
                        by: by_whom(Some(by)),
                    });
                    self.tell_one(owner, Some(&now_state), Reason::Owner, what)
                        .await?;
                }
            }
            None => {
                if let Some(previous) = previous
                    && let Some(user) = self.tx.user_by_id(previous).await?
                {
                    self.record(
                        state.id,
                        Some(actor),
                        Event::OwnerCleared { email: user.email },
                    )
                    .await?;
                }
            }
        }
        self.reload(state.id).await
    }

    /// Sets a priority; a comment names the level and its response target
    /// (docs/contract.md, "Tickets").
    pub async fn set_priority(
        &mut self,
        state: &TicketState,
        actor: &User,
        priority: Priority,
    ) -> Result<TicketState, StoreError> {
        self.tx.set_priority(state.id, priority, self.now).await?;
        let mut desk = self.desk(state.id).await?;
        super::clocks::refresh(&mut desk, state.status, Some(priority), &self.policy.clocks);
        self.tx.set_desk(state.id, &desk).await?;
        let (sla_name, sla_response) = self.policy.terms.sla(priority).unwrap_or_default();
        let sla_resolve = self
            .policy
            .clocks
            .targets(priority)
            .resolve
            .map(|r| r.render(Locale::default()))
            .unwrap_or_default();
        let event = Event::PrioritySet {
            priority,
            sla_name,
            sla_response,
            sla_resolve,
        };
        let comment = self.system_comment(state.id, actor, &event).await?;
        self.announce(state, Some(actor), event, Some(comment))
            .await
    }

    /// Records the release that fixes an escalated ticket, as a comment to everyone on it.
    pub async fn note_release(
        &mut self,
        state: &TicketState,
        actor: &User,
        release: &Version,
    ) -> Result<TicketState, StoreError> {
        self.tx
            .set_release(state.id, release.as_str(), self.now)
            .await?;
        let event = Event::ReleaseNoted {
            release: release.clone(),
        };
        let comment = self.system_comment(state.id, actor, &event).await?;
        self.announce(state, Some(actor), event, Some(comment))
            .await
    }

    /// Records a change to the ticket itself and tells its followers and the
    /// team, everyone in their own language, from the one `event`.
    async fn announce(
        &mut self,
        state: &TicketState,
        actor: Option<&User>,
        event: Event,
        comment: Option<Shown>,
    ) -> Result<TicketState, StoreError> {
        let what = Notification::announcing(&event, by_whom(actor));
        self.record(state.id, actor, event).await?;
        let new_state = self.reload(state.id).await?;
        if let Some(what) = what {
            self.tell_followers(&new_state, actor.map(|u| &u.email), what, comment)
                .await?;
        }
        Ok(new_state)
    }

    /// The comment announcing `event` in the thread, in the default
    /// locale's words (pages show it in their reader's from the event).
    async fn system_comment(
        &mut self,
        ticket: TicketId,
        actor: &User,
        event: &Event,
    ) -> Result<Shown, StoreError> {
        let body = event.announcement(Locale::default()).unwrap_or_default();
        let id = self
            .tx
            .insert_comment(&NewComment {
                ticket_id: ticket,
                author_id: actor.id,
                body: &body,
                signature: None,
                quoted: None,
                internal: false,
                source: CommentSource::System,
                message_id: None,
                ingest_id: None,
                now: self.now,
            })
            .await?;
        Ok(system_shown(id, actor))
    }

    /// Adds a follower; the creator keeps `creator`. Tells them with `tell`
    /// (`Notification::YouFollow` or `SharedWithYou`).
    pub async fn add_follower(
        &mut self,
        state: &TicketState,
        user: &User,
        source: FollowerSource,
        by: Option<&User>,
        tell: fn(template::Followed) -> Notification,
    ) -> Result<bool, StoreError> {
        if !self
            .tx
            .add_follower(state.id, user.id, source, self.now)
            .await?
        {
            return Ok(false);
        }
        self.record(
            state.id,
            by,
            Event::FollowerAdded {
                email: user.email.clone(),
                source,
            },
        )
        .await?;
        let new_state = self.reload(state.id).await?;
        self.digest.joined(state.id, &user.name, &user.email);
        let what = tell(template::Followed {
            source,
            by: by_whom(by),
        });
        self.tell_one(user, Some(&new_state), source.into(), what)
            .await?;
        Ok(true)
    }

    /// Resolves mentions among the users the author may reach; the found ones
    /// are told (and follow, by default); the rest come back as failures, and
    /// those past `MAX_MENTIONS` as one line.
    pub async fn mentions(
        &mut self,
        state: &TicketState,
        author: &User,
        found: &mentions::Found,
        excerpt: &str,
    ) -> Result<Vec<Failure>, StoreError> {
        let mut failures = Vec::new();
        // First, so that it is listed even when the notice is full.
        if found.more > 0 {
            failures.push(Failure::new(
                format!("@… and {} more", found.more),
                format!(
                    "not looked up: a message may mention at most {} people",
                    mentions::MAX_MENTIONS
                ),
            ));
        }
        if found.mentions.is_empty() {
            return Ok(failures);
        }
        let reachable = self.tx.reachable_users(author).await?;
        let directory = Directory::new(
            reachable
                .iter()
                .map(|u| Candidate {
                    user: u.id,
                    email: u.email.clone(),
                    name: u.name.clone(),
                })
                .collect(),
        );
        for m in &found.mentions {
            match directory.resolve(m) {
                Resolution::Found(id) if id == author.id => {}
                Resolution::Found(id) => {
                    let Some(target) = reachable.iter().find(|u| u.id == id) else {
                        continue;
                    };
                    if !ticket::may_mention(&actor(target), &access(state)) {
                        failures.push(Failure::new(
                            m.text(),
                            "cannot see this ticket, and a mention lets nobody in: share the ticket with them first",
                        ));
                        continue;
                    }
                    // `following`: they follow because of this mention; one who
                    // already followed is not told they "now follow".
                    let following = self.policy.auto_follow_mentions
                        && self
                            .tx
                            .add_follower(state.id, target.id, FollowerSource::Mention, self.now)
                            .await?;
                    self.record(
                        state.id,
                        Some(author),
                        Event::Mentioned {
                            email: target.email.clone(),
                        },
                    )
                    .await?;
                    let new_state = self.reload(state.id).await?;
                    let what = Notification::Mentioned(template::Mentioned {
                        by: by_whom(Some(author)),
                        excerpt: excerpt.to_string(),
                        following,
                    });
                    self.tell_one(target, Some(&new_state), Reason::Mention, what)
                        .await?;
                }
                Resolution::Ambiguous(emails) => {
                    const SHOWN: usize = 5;
                    let mut listed = emails
                        .iter()
                        .take(SHOWN)
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join(", ");
                    if emails.len() > SHOWN {
                        listed.push_str(&format!(" and {} more", emails.len() - SHOWN));
                    }
                    failures.push(Failure::new(
                        m.text(),
                        format!("several people match: {listed}"),
                    ))
                }
                // Staff may reach everyone: for them nobody matched at all.
                Resolution::NotFound => failures.push(Failure::new(
                    m.text(),
                    if author.role == Role::Staff {
                        "no registered user has that name or address"
                    } else {
                        "not in your organization"
                    },
                )),
            }
        }
        Ok(failures)
    }

    /// One notice to the author listing what failed, to From only
    /// (docs/contract.md, "Who is emailed").
    pub async fn report_failures(
        &mut self,
        author: &User,
        state: Option<&TicketState>,
        subject: &str,
        failures: &[Failure],
    ) -> Result<(), StoreError> {
        if failures.is_empty() {
            return Ok(());
        }
        // At most MAX_LISTED_FAILURES, then a count: the notice goes to a From
        // anyone can forge.
        let more = failures.len().saturating_sub(MAX_LISTED_FAILURES);
        // A mention is not a command: the notice lists the two apart.
        let (mentions, commands): (Vec<&Failure>, Vec<&Failure>) = failures
            .iter()
            .take(MAX_LISTED_FAILURES)
            .partition(|f| f.command.starts_with('@'));
        let list = |fs: Vec<&Failure>| -> Vec<template::FailureLine> {
            fs.iter()
                .map(|f| template::FailureLine {
                    command: clip(&f.command),
                    reason: clip(&f.reason),
                })
                .collect()
        };
        let failed = template::Failures {
            failures: list(commands),
            mentions: list(mentions),
            more_failures: more,
        };
        // An automatic answer already goes to the author: it says what failed
        // (one mail per recipient per message).
        if let Some(pending) = self.answer.as_mut().filter(|a| a.to.id == author.id) {
            pending.answer.failed = failed;
            if let Some(state) = state {
                pending.state = state.clone();
            }
            return Ok(());
        }
        let what = Notification::CommandFailed(template::CommandFailed {
            failed,
            original_subject: subject.to_string(),
        });
        self.tell_one(author, state, Reason::Sender, what).await
    }

    /// Shares a ticket with its organization's delivery leads (a rule action).
    pub async fn share_with_leads(&mut self, state: &TicketState) -> Result<(), StoreError> {
        let orgs = state.orgs.clone();
        for org in orgs {
            for lead in self.tx.org_leads(org).await? {
                self.add_follower(
                    state,
                    &lead,
                    FollowerSource::Share,
                    None,
                    Notification::SharedWithYou,
                )
                .await?;
            }
        }
        Ok(())
    }

    /// One pass of the rules for `trigger`; their effects do not trigger rules.
    pub async fn apply_rules(
        &mut self,
        trigger: Trigger,
        status_before: Option<Status>,
        mut state: TicketState,
        author: &User,
        input: &RuleInput<'_>,
        comment: Option<&Shown>,
    ) -> Result<(), StoreError> {
        let org_slugs = if state.orgs.is_empty() {
            Vec::new()
        } else {
            self.tx.org_slugs(&state.orgs).await?
        };
        let facts = Facts {
            author_role: ticket::rule_role(author.role, input.author_proven),
            sender_domain: author.email.domain(),
            orgs: &org_slugs,
            status: status_before,
            priority: state.priority,
            subject: input.subject,
            body: input.body,
            has_attachment: input.has_attachment,
        };
        let mut answered: Option<bool> = None;
        for effect in self.policy.rules.evaluate(trigger, &facts) {
            match effect.action {
                Action::SetStatus(to) => {
                    let cause = Cause::Rule(effect.rule.clone());
                    state = self.set_status(&state, None, to, cause, None).await?
                }
                Action::Close(reason) => {
                    let cause = Cause::Rule(effect.rule.clone());
                    let to = Status::Closed;
                    state = self
                        .set_status(&state, None, to, cause, Some(reason))
                        .await?
                }
                Action::SetPriority(p) => state = self.set_priority(&state, author, p).await?,
                Action::AddFollower(email) => {
                    if let Ok(email) = EmailAddress::parse(&email)
                        && let Some(user) = self.tx.user_by_email(&email).await?
                    {
                        self.add_follower(
                            &state,
                            &user,
                            FollowerSource::Follow,
                            None,
                            Notification::YouFollow,
                        )
                        .await?;
                    }
                }
                Action::ShareWithOrgLeads => self.share_with_leads(&state).await?,
                Action::ReplyTemplate(template) => {
                    // Automatic answers: never to a message that asked for none;
                    // every new ticket its own acknowledgement (its number is
                    // how the customer refers to it), up to `auto_reply_limit`
                    // per address, which stops a loop with an auto-responder
                    // that classification missed.
                    // One claim per message: several answers to the same message
                    // are one conversation, not a loop.
                    if !self.notify || input.suppress_auto_response || author.bouncing {
                        continue;
                    }
                    if answered.is_none() {
                        let limit = self.policy.auto_reply_limit;
                        let claimed = self
                            .tx
                            .claim_capped(&author.email, self.now, limit.count, limit.per)
                            .await?;
                        if !claimed {
                            tracing::warn!(
                                to = %author.email,
                                ticket = state.id,
                                rule = effect.rule.as_str(),
                                template = template.as_str(),
                                limit = limit.count,
                                per_secs = limit.per.as_secs(),
                                "automatic answer suppressed: auto_reply_limit reached"
                            );
                        }
                        answered = Some(claimed);
                    }
                    if answered != Some(true) {
                        continue;
                    }
                    let mut leads = Vec::new();
                    if let Some(org) = author.org_id {
                        for lead in self.tx.org_leads(org).await? {
                            leads.push(template::Person {
                                name: lead.name,
                                email: lead.email,
                            });
                        }
                    }
                    let portal_login = match &self.sender.portal {
                        Some(portal) if !self.tx.has_signed_in(author.id).await? => {
                            Some(format!("{}/login", portal.base_url))
                        }
                        _ => None,
                    };
                    let answer = template::Answer {
                        rule: effect.rule.clone(),
                        leads,
                        portal_login,
                        ..Default::default()
                    };
                    match &mut self.answer {
                        // A later answer to the same message: a section of the
                        // first mail (rendered from `<template>.section.*`).
                        Some(first) => {
                            first.answer.also.push(template::AlsoAnswer {
                                template,
                                event: answer,
                            });
                            first.state = state.clone();
                        }
                        None => {
                            self.answer = Some(PendingAnswer {
                                template,
                                to: author.clone(),
                                state: state.clone(),
                                comment: comment.cloned(),
                                answer,
                            })
                        }
                    }
                }
                Action::InternalNote(text) => {
                    self.tx
                        .insert_comment(&NewComment {
                            ticket_id: state.id,
                            author_id: author.id,
                            body: &text,
                            signature: None,
                            quoted: None,
                            internal: true,
                            source: CommentSource::System,
                            message_id: None,
                            ingest_id: None,
                            now: self.now,
                        })
                        .await?;
                }
            }
        }
        Ok(())
    }
}
