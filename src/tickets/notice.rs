//! Queuing a notification: one outbox row with its final Message-ID, threading
//! headers and a context snapshot, in the caller's transaction. Shared by every
//! use case that emails someone. Ticket notifications go through a `Digest`
//! first, so that one delivery or API call is one row per recipient.

use time::OffsetDateTime;

use crate::domain::classify::OWN_MESSAGE_ID_PREFIX;
use crate::domain::event::Event;
use crate::domain::ids::{EmailAddress, MessageId, TicketId, UserId};
use crate::domain::locale::Locale;
use crate::domain::notify::Recipient;
use crate::domain::template::{
    self, ByWhom, Followed, Mentioned, NoticeContext, Notification, Shown, Template, TicketUpdated,
};
use crate::domain::ticket::{CloseReason, Priority, Reason, Status};
use crate::store::{NewOutbox, RefKind, StoreError, TicketState, Tx, User};

/// What the templates say about the gateway itself.
#[derive(Debug, Clone)]
pub struct Sender {
    /// `support.domain`: notification Message-IDs are generated under it.
    pub domain: String,
    pub tag: String,
    /// The portal, when it is on: invitations carry a sign-in link to it.
    pub portal: Option<Portal>,
}

/// Where the portal is, as emails link to it.
#[derive(Debug, Clone)]
pub struct Portal {
    /// `[web] base_url`, without a trailing `/`.
    pub base_url: String,
    /// How long an invitation's link works (`[web] invite_ttl`).
    pub invite_ttl: std::time::Duration,
}

/// One notification to one recipient.
#[derive(Debug, Clone)]
pub struct Notice<'a> {
    /// The template and what it is told.
    pub what: Notification,
    pub to: &'a EmailAddress,
    pub name: Option<&'a str>,
    /// Registered recipient: gets a signed Reply-To bound to them.
    pub user: Option<UserId>,
    pub locale: Option<Locale>,
    /// Why they get it (follower source, `requester`, `support_notify`, `sender`, ...).
    pub reason: Reason,
    pub ticket: Option<&'a TicketState>,
    /// The comment shown (its attachments may ride along).
    pub comment: Option<Shown>,
}

impl<'a> Notice<'a> {
    /// A notice to the support team's address (`support.notify`): no user,
    /// so no personal reply address, and no ticket.
    pub fn to_team(what: Notification, team: &'a EmailAddress) -> Self {
        Self {
            what,
            to: team,
            name: None,
            user: None,
            locale: None,
            reason: Reason::SupportNotify,
            ticket: None,
            comment: None,
        }
    }
}

/// A fresh notification Message-ID: `<tg.<uuid>@<support.domain>>`; the prefix lets
/// classification recognise our own mail when it comes back.
pub fn new_message_id(domain: &str) -> MessageId {
    let id = format!(
        "{OWN_MESSAGE_ID_PREFIX}{}@{domain}",
        uuid::Uuid::new_v4().simple()
    );
    MessageId::parse(&id).expect("generated ids are well-formed")
}

/// Queues `notice`; returns the outbox row id.
pub async fn queue(
    tx: &mut dyn Tx,
    sender: &Sender,
    notice: Notice<'_>,
    now: OffsetDateTime,
) -> Result<i64, StoreError> {
    let message_id = new_message_id(&sender.domain);
    let (subject, in_reply_to, references) = match notice.ticket {
        Some(t) => {
            // In-Reply-To the latest message, References the root and the latest
            // (docs/contract.md, "Mail").
            let mut refs: Vec<MessageId> = Vec::new();
            for id in [&t.root_message_id, &t.last_message_id]
                .into_iter()
                .flatten()
            {
                if !refs.contains(id) {
                    refs.push(id.clone());
                }
            }
            let parent = t
                .last_message_id
                .clone()
                .or_else(|| t.root_message_id.clone());
            (
                format!("[{} #{}] {}", sender.tag, t.id, t.subject),
                parent,
                refs,
            )
        }
        // Rendered from `<template>.subject.txt` when sent.
        None => (String::new(), None, Vec::new()),
    };
    let context = NoticeContext {
        ticket: notice.ticket.map(|t| template::TicketShown {
            id: t.id,
            subject: &t.subject,
            status: t.status,
            priority: t.priority,
            url: sender
                .portal
                .as_ref()
                .map(|p| format!("{}/tickets/{}", p.base_url, t.id)),
        }),
        comment: notice.comment.as_ref(),
        event: notice.what.fields(),
        recipient: template::RecipientShown {
            email: notice.to,
            name: notice.name,
            reason: notice.reason,
        },
    }
    .to_json();
    let id = tx
        .enqueue(&NewOutbox {
            ticket_id: notice.ticket.map(|t| t.id),
            template: notice.what.template_name().to_string(),
            to: notice.to.clone(),
            to_user_id: notice.user,
            locale: notice.locale.unwrap_or_default().as_str().to_string(),
            reason: notice.reason.as_str().to_string(),
            comment_id: notice.comment.as_ref().map(|c| c.id),
            message_id: message_id.clone(),
            in_reply_to,
            references,
            subject,
            context,
            now,
        })
        .await?;
    if let Some(t) = notice.ticket {
        // A reply to the notification threads by In-Reply-To even before it is sent.
        tx.remember_refs(std::slice::from_ref(&message_id), t.id, RefKind::Sent, now)
            .await?;
    }
    Ok(id)
}

/// What one delivery or one API call tells each person, gathered while its
/// changes run and queued at the end as ONE outbox row per recipient and
/// ticket (docs/contract.md, "Who is emailed": one action, at most one
/// notification per recipient).
/// A reply whose comment carries `#status closed` is one mail saying both; a
/// mail of 200 alternating `#status` lines is one mail with the net change.
#[derive(Debug, Default)]
pub struct Digest {
    /// The ticket as the latest change left it: every mail shows its final state.
    tickets: Vec<TicketState>,
    /// Ticket-wide changes, shown to everyone told anything about the ticket.
    news: Vec<(TicketId, News)>,
    /// One entry per recipient and ticket, in the order they were first told.
    people: Vec<Person>,
}

/// Changes to one ticket that every recipient of its digest sees.
#[derive(Debug, Default, Clone)]
struct News {
    /// First `from` and last `to`; none when they are equal.
    status: Option<(Status, Status)>,
    /// Why it was closed, when the last change closed it.
    close_reason: Option<CloseReason>,
    /// The last priority set, with its SLA name and response target.
    priority: Option<(Priority, String, String, String)>,
    releases: Vec<String>,
    /// People who began to follow.
    followers_added: Vec<template::Person>,
    /// Where the ticket continues, when it was merged into another.
    merged_into: Option<TicketId>,
    /// Who made the last of these changes, name and address (`None`: a
    /// rule, shown as the support desk). The address is shown beside the
    /// name: a display name alone can be anyone's.
    actor: Option<(String, EmailAddress)>,
}

/// One thing a recipient is told: what a mail about it alone would say.
#[derive(Debug, Clone)]
struct Item {
    what: Notification,
    comment: Option<Shown>,
}

impl Item {
    fn is(&self, template: Template) -> bool {
        self.what.template() == Some(template)
    }
}

#[derive(Debug, Clone)]
struct Person {
    to: EmailAddress,
    name: Option<String>,
    user: Option<UserId>,
    locale: Option<Locale>,
    /// The first reason they were told for: the strongest tie they had.
    reason: Reason,
    ticket: TicketId,
    items: Vec<Item>,
}

/// Who gets an item: a planned recipient, or one user told in person.
#[derive(Debug, Clone, Copy)]
pub struct To<'a> {
    pub to: &'a EmailAddress,
    pub name: Option<&'a str>,
    pub user: Option<UserId>,
    pub locale: Option<Locale>,
    pub reason: Reason,
}

impl<'a> From<&'a Recipient> for To<'a> {
    fn from(r: &'a Recipient) -> Self {
        To {
            to: &r.to,
            name: r.name.as_deref(),
            user: r.user,
            locale: r.locale,
            reason: r.reason,
        }
    }
}

impl Digest {
    pub fn is_empty(&self) -> bool {
        self.people.is_empty()
    }

    /// Keeps `state` as the ticket's latest; later mails show it.
    pub fn saw(&mut self, state: &TicketState) {
        match self.tickets.iter_mut().find(|t| t.id == state.id) {
            Some(t) => *t = state.clone(),
            None => self.tickets.push(state.clone()),
        }
    }

    fn news(&mut self, ticket: TicketId) -> &mut News {
        match self.news.iter().position(|(t, _)| *t == ticket) {
            Some(i) => &mut self.news[i].1,
            None => {
                self.news.push((ticket, News::default()));
                &mut self.news.last_mut().expect("just pushed").1
            }
        }
    }

    /// Keeps a change to the ticket itself, made by `actor` (`None`: a
    /// rule), for every mail about it; events that are not such news
    /// (a comment, a mention) are told to their own people instead.
    pub fn change(&mut self, ticket: TicketId, event: &Event, actor: Option<&User>) {
        let news = self.news(ticket);
        match event {
            Event::StatusChanged {
                from, to, reason, ..
            } => {
                let first = news.status.map_or(*from, |(first, _)| first);
                news.status = Some((first, *to));
                news.close_reason = *reason;
            }
            Event::PrioritySet {
                priority,
                sla_name,
                sla_response,
                sla_resolve,
            } => {
                news.priority = Some((
                    *priority,
                    sla_name.clone(),
                    sla_response.clone(),
                    sla_resolve.clone(),
                ))
            }
            Event::ReleaseNoted { release } => {
                if !news.releases.iter().any(|r| r == release.as_str()) {
                    news.releases.push(release.to_string());
                }
            }
            Event::TicketMerged { from, into } if *from == ticket => news.merged_into = Some(*into),
            _ => return,
        }
        news.actor = actor.map(|u| (u.name.clone(), u.email.clone()));
    }

    /// Keeps that `name` began to follow, news to the others told.
    pub fn joined(&mut self, ticket: TicketId, name: &str, email: &EmailAddress) {
        self.news(ticket).followers_added.push(template::Person {
            name: name.to_string(),
            email: email.clone(),
        });
    }

    /// Takes back what was to be told about `comment` on `ticket`: it was
    /// moved to another ticket in the same delivery (`#move-to`), whose
    /// followers are told instead.
    pub fn withdraw(&mut self, ticket: TicketId, comment: crate::domain::ids::CommentId) {
        for person in self.people.iter_mut().filter(|p| p.ticket == ticket) {
            person
                .items
                .retain(|i| i.comment.as_ref().is_none_or(|c| c.id != comment));
        }
    }

    /// Tells `to` one thing about `ticket` (`what` a mail about it alone
    /// would say). A second item of the same template replaces the first's
    /// fields: only where it ended up is news.
    /// Forgets what `to` was to be told about `ticket`: a mail of its own
    /// says it instead.
    pub fn forget(&mut self, ticket: TicketId, to: &EmailAddress) {
        self.people.retain(|p| !(p.ticket == ticket && p.to == *to));
    }

    pub fn tell(
        &mut self,
        to: To<'_>,
        ticket: TicketId,
        what: Notification,
        comment: Option<Shown>,
    ) {
        let person = match self
            .people
            .iter()
            .position(|p| p.ticket == ticket && p.to == *to.to)
        {
            Some(i) => &mut self.people[i],
            None => {
                self.people.push(Person {
                    to: to.to.clone(),
                    name: to.name.map(str::to_string),
                    user: to.user,
                    locale: to.locale,
                    reason: to.reason,
                    ticket,
                    items: Vec::new(),
                });
                self.people.last_mut().expect("just pushed")
            }
        };
        let template = what.template();
        let mut item = Item { what, comment };
        match person
            .items
            .iter_mut()
            .find(|i| template.is_some() && i.what.template() == template)
        {
            // Several status changes are one (from the first, to the last);
            // the other kinds come once per delivery anyway.
            Some(old) => match (&old.what, &mut item.what) {
                (Notification::StatusChanged(first), Notification::StatusChanged(last)) => {
                    last.from = first.from;
                    *old = item;
                }
                (Notification::ReleaseNoted(_), _) | (Notification::PrioritySet(_), _) => {
                    *old = item
                }
                _ => {}
            },
            None => person.items.push(item),
        }
    }

    /// Queues one row per recipient and ticket: the classic template when
    /// they were told one thing, `ticket_updated` listing everything when
    /// more. A status that ended where it began is no news.
    pub async fn queue(
        self,
        tx: &mut dyn Tx,
        sender: &Sender,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        for mut person in self.people {
            let Some(ticket) = self.tickets.iter().find(|t| t.id == person.ticket) else {
                continue;
            };
            let news = self
                .news
                .iter()
                .find(|(t, _)| *t == person.ticket)
                .map(|(_, n)| n.clone())
                .unwrap_or_default();
            // A merge closes the ticket and says where it continues; that
            // is news even to a ticket that was closed already.
            for item in &mut person.items {
                if let Notification::StatusChanged(s) = &mut item.what {
                    s.merged_into = news.merged_into;
                }
            }
            person.items.retain(|i| match &i.what {
                Notification::StatusChanged(s) => s.from != s.to || s.merged_into.is_some(),
                _ => true,
            });
            // Removed from the ticket: that is all they are told, and the last.
            if let Some(i) = person
                .items
                .iter()
                .position(|i| i.is(Template::FollowerRemoved))
            {
                person.items = vec![person.items.swap_remove(i)];
            }
            // What the combined mail cannot say goes in a mail of its own:
            // never left out.
            let (folded, alone): (Vec<Item>, Vec<Item>) =
                person.items.drain(..).partition(|i| folds(&i.what));
            person.items = folded;
            for item in alone {
                let notice = Notice {
                    what: item.what,
                    to: &person.to,
                    name: person.name.as_deref(),
                    user: person.user,
                    locale: person.locale,
                    reason: person.reason,
                    ticket: Some(ticket),
                    comment: item.comment,
                };
                queue(tx, sender, notice, now).await?;
            }
            // New followers are news to the others: one thing plus them is several.
            let others_joined = news.followers_added.iter().any(|f| f.email != person.to);
            let (what, comment) = match person.items.len() {
                0 => continue,
                1 if !others_joined || person.items[0].is(Template::FollowerRemoved) => {
                    let item = person.items.pop().expect("one item");
                    (item.what, item.comment)
                }
                _ => summary(&person, &news),
            };
            let notice = Notice {
                what,
                to: &person.to,
                name: person.name.as_deref(),
                user: person.user,
                locale: person.locale,
                reason: person.reason,
                ticket: Some(ticket),
                comment,
            };
            queue(tx, sender, notice, now).await?;
        }
        Ok(())
    }
}

/// Whether `ticket_updated` (`summary`) can say `what` among other news.
/// Every notification is named here, so a new one is a decision, not an
/// item silently left out of the combined mail.
fn folds(what: &Notification) -> bool {
    match what {
        Notification::NewTicket(_)
        | Notification::CommentAdded(_)
        | Notification::StatusChanged(_)
        | Notification::PrioritySet(_)
        | Notification::ReleaseNoted(_)
        | Notification::SharedWithYou(_)
        | Notification::YouFollow(_)
        | Notification::Mentioned(_)
        | Notification::FollowerRemoved(_)
        | Notification::TicketUpdated(_) => true,
        Notification::Ack(_)
        | Notification::EnvironmentUpgrade(_)
        | Notification::Answer(..)
        | Notification::Invite(_)
        | Notification::CommandFailed(_)
        | Notification::Refused(_)
        | Notification::ListAnswer(_)
        | Notification::HelpAnswer(_)
        | Notification::QuarantineAlert(_)
        | Notification::SenderRefused(_)
        | Notification::SignIn(_)
        | Notification::Reminder(_)
        | Notification::ClosedNoResponse(_)
        | Notification::ClockWarning(_)
        | Notification::ClockBreached(_) => false,
    }
}

/// The `ticket_updated` context of a recipient told several things: the
/// comment, every change to the ticket, and what concerns them in person.
/// A new ticket keeps its own template (`new_ticket`), which shows the
/// ticket as it now is. With no change made by anyone (a comment, and
/// rules or mentions after it), the comment's author is who updated it.
fn summary(person: &Person, news: &News) -> (Notification, Option<Shown>) {
    let find = |template: Template| person.items.iter().find(|i| i.is(template));
    let comment = find(Template::NewTicket)
        .or_else(|| find(Template::CommentAdded))
        .and_then(|i| i.comment.clone());
    if let Some(new) = find(Template::NewTicket) {
        return (new.what.clone(), comment);
    }
    let status = news.status.filter(|(from, to)| from != to);
    let by = match (&news.actor, &comment) {
        (Some((name, email)), _) => ByWhom::person(name, email),
        (None, Some(c)) => ByWhom::person(&c.author_name, &c.author_email),
        (None, None) => ByWhom::rule(),
    };
    let followed = |template: Template| -> Option<Followed> {
        match find(template).map(|i| &i.what) {
            Some(Notification::SharedWithYou(f) | Notification::YouFollow(f)) => Some(f.clone()),
            _ => None,
        }
    };
    let mentioned: Option<Mentioned> = match find(Template::Mentioned).map(|i| &i.what) {
        Some(Notification::Mentioned(m)) => Some(m.clone()),
        _ => None,
    };
    let updated = TicketUpdated {
        by,
        from: status.map(|(from, _)| from),
        to: status.map(|(_, to)| to),
        reason: status.and(news.close_reason),
        merged_into: news.merged_into,
        priority: news.priority.as_ref().map(|p| p.0.to_string()),
        sla_name: news.priority.as_ref().map(|p| p.1.clone()),
        sla_response: news.priority.as_ref().map(|p| p.2.clone()),
        sla_resolve: news
            .priority
            .as_ref()
            .map(|p| p.3.clone())
            .filter(|r| !r.is_empty()),
        releases: news.releases.clone(),
        followers_added: news
            .followers_added
            .iter()
            .filter(|f| f.email != person.to)
            .cloned()
            .collect(),
        shared_with_you: followed(Template::SharedWithYou),
        you_follow: followed(Template::YouFollow),
        mentioned,
    };
    (Notification::TicketUpdated(Box::new(updated)), comment)
}
