//! A ticket's history on its page: the changes its events record (status,
//! followers, mentions, organizations), each a line among the comments in
//! time order,
//! in the reader's language (`history_*` in `templates/web/<locale>.toml`).
//! Priority and release are announced by comments of their own
//! (`TicketView::announced`), so they are not repeated here.

use std::collections::HashMap;

use super::{WebState, pages};
use crate::domain::event::Event;
use crate::domain::ids::EmailAddress;
use crate::domain::locale::Locale;
use crate::domain::terms::close_reason_label;
use crate::domain::ticket::FollowerSource;
use crate::store::{EventView, StoreError, TicketView};

/// Names for the people and organizations a ticket's events mention: a
/// page shows "Bob Brown", not `bob@customer.test`, and an organization's
/// name, not its slug.
#[derive(Default)]
pub struct Names {
    people: HashMap<String, String>,
    orgs: HashMap<String, String>,
}

impl Names {
    /// Looks up, once each, everyone and every organization `view`'s
    /// events name, and the organizations on the ticket.
    pub async fn of(state: &WebState, view: &TicketView) -> Result<Self, StoreError> {
        let mut names = Names::default();
        for c in &view.comments {
            names.people.insert(c.author.clone(), c.author_name.clone());
        }
        for f in &view.followers {
            names.people.insert(f.email.clone(), f.name.clone());
        }
        for slug in &view.orgs {
            if let Some(found) = state.store().find_org(slug).await? {
                names.orgs.insert(slug.clone(), found.name);
            }
        }
        for e in &view.events {
            let Some(event) = e.event.known() else {
                continue;
            };
            let mut emails: Vec<&str> = e.actor.as_deref().into_iter().collect();
            match event {
                Event::FollowerAdded { email, .. }
                | Event::FollowerRemoved { email }
                | Event::Mentioned { email }
                | Event::OwnerSet { email }
                | Event::OwnerCleared { email }
                | Event::PersonErased { person: email } => emails.push(email.as_str()),
                Event::OrgAdded { org } | Event::OrgRemoved { org } => {
                    if !names.orgs.contains_key(org)
                        && let Some(found) = state.store().find_org(org).await?
                    {
                        names.orgs.insert(org.clone(), found.name);
                    }
                }
                _ => {}
            }
            for email in emails {
                if names.people.contains_key(email) {
                    continue;
                }
                let name = match EmailAddress::parse(email) {
                    Ok(address) => state
                        .store()
                        .find_user(&address)
                        .await?
                        .map(|u| u.name)
                        .filter(|n| !n.trim().is_empty()),
                    Err(_) => None,
                };
                names
                    .people
                    .insert(email.to_string(), name.unwrap_or_else(|| email.to_string()));
            }
        }
        Ok(names)
    }

    fn person(&self, email: &str, locale: Locale) -> String {
        self.people
            .get(email)
            .filter(|n| !n.trim().is_empty())
            .map(|n| crate::people::shown_name(email, n, locale))
            .unwrap_or_else(|| email.to_string())
    }

    pub fn org(&self, slug: &str) -> String {
        self.orgs
            .get(slug)
            .cloned()
            .unwrap_or_else(|| slug.to_string())
    }
}

/// The line `e` adds to the page, in `locale`; `None` for events the page
/// shows otherwise (comments, announcements) or not at all.
pub fn line(
    ticket: crate::domain::ids::TicketId,
    e: &EventView,
    locale: Locale,
    names: &Names,
    label: impl Fn(crate::domain::ticket::Status) -> String,
) -> Option<(&'static str, String)> {
    let event = e.event.known()?;
    let who = e.actor.as_deref().map(|a| names.person(a, locale));
    let say = |key: &str, fill: &[(&str, String)]| {
        fill.iter()
            .fold(pages::word(locale, key), |text, (k, v)| text.replace(k, v))
    };
    let someone = |who: Option<String>| who.unwrap_or_else(|| pages::word(locale, "support_team"));
    let text = match (event, who) {
        (
            Event::StatusChanged {
                from,
                to,
                reason: Some(reason),
                ..
            },
            who,
        ) => {
            let moved = match who {
                Some(who) => say(
                    "history_status",
                    &[
                        ("{who}", who),
                        ("{from}", label(*from)),
                        ("{to}", label(*to)),
                    ],
                ),
                None => say(
                    "history_status_rule",
                    &[("{from}", label(*from)), ("{to}", label(*to))],
                ),
            };
            let why = say(
                "history_close_reason",
                &[("{reason}", close_reason_label(*reason, locale).to_string())],
            );
            format!("{moved} {why}")
        }
        (Event::OwnerSet { email }, Some(who)) if e.actor.as_deref() == Some(email.as_str()) => {
            say("history_owner_took", &[("{who}", who)])
        }
        (Event::OwnerSet { email }, who) => say(
            "history_owner_set",
            &[
                ("{who}", someone(who)),
                ("{person}", names.person(email.as_str(), locale)),
            ],
        ),
        (Event::OwnerCleared { email }, who) => say(
            "history_owner_cleared",
            &[
                ("{who}", someone(who)),
                ("{person}", names.person(email.as_str(), locale)),
            ],
        ),
        (Event::TicketMerged { from, into }, who) => {
            let (key, other) = if ticket == *from {
                ("history_merged_into", into)
            } else {
                ("history_merged_from", from)
            };
            say(
                key,
                &[("{who}", someone(who)), ("{other}", other.to_string())],
            )
        }
        (Event::CommentMoved { from, to, .. }, who) => {
            let (key, other) = if ticket == *from {
                ("history_moved_out", to)
            } else {
                ("history_moved_in", from)
            };
            say(
                key,
                &[("{who}", someone(who)), ("{other}", other.to_string())],
            )
        }
        (Event::ReminderSent { .. }, _) => say("history_reminder", &[]),
        (Event::PersonErased { person }, _) => say(
            "history_erased",
            &[("{person}", names.person(person.as_str(), locale))],
        ),
        (Event::StatusChanged { from, to, .. }, Some(who)) => say(
            "history_status",
            &[
                ("{who}", who),
                ("{from}", label(*from)),
                ("{to}", label(*to)),
            ],
        ),
        (Event::StatusChanged { from, to, .. }, None) => say(
            "history_status_rule",
            &[("{from}", label(*from)), ("{to}", label(*to))],
        ),
        (
            Event::FollowerAdded {
                source: FollowerSource::Creator,
                ..
            },
            _,
        ) => return None,
        (Event::FollowerAdded { email, .. }, Some(who))
            if e.actor.as_deref() == Some(email.as_str()) =>
        {
            say("history_follow", &[("{who}", who)])
        }
        (
            Event::FollowerAdded {
                email,
                source: FollowerSource::Share,
            },
            Some(who),
        ) => say(
            "history_share",
            &[
                ("{who}", who),
                ("{person}", names.person(email.as_str(), locale)),
            ],
        ),
        (Event::FollowerAdded { email, .. }, _) => say(
            "history_added",
            &[("{person}", names.person(email.as_str(), locale))],
        ),
        (Event::Mentioned { email }, Some(who)) => say(
            "history_mentioned",
            &[
                ("{who}", who),
                ("{person}", names.person(email.as_str(), locale)),
            ],
        ),
        (Event::FollowerRemoved { email }, Some(who))
            if e.actor.as_deref() == Some(email.as_str()) =>
        {
            say("history_unfollow", &[("{who}", who)])
        }
        (Event::FollowerRemoved { email }, who) => say(
            "history_removed",
            &[
                (
                    "{who}",
                    who.unwrap_or_else(|| pages::word(locale, "support_team")),
                ),
                ("{person}", names.person(email.as_str(), locale)),
            ],
        ),
        (Event::OrgAdded { org }, who) => say(
            "history_org_added",
            &[
                (
                    "{who}",
                    who.unwrap_or_else(|| pages::word(locale, "support_team")),
                ),
                ("{org}", names.org(org)),
            ],
        ),
        (Event::OrgRemoved { org }, who) => say(
            "history_org_removed",
            &[
                (
                    "{who}",
                    who.unwrap_or_else(|| pages::word(locale, "support_team")),
                ),
                ("{org}", names.org(org)),
            ],
        ),
        _ => return None,
    };
    Some((event.kind(), text))
}
