//! Who is emailed about an event (DESIGN "Who is emailed"), as a pure plan:
//! each recipient with the template to render and the reason they get it.
//! Organizations never appear here: they grant access, never email.

use super::ids::{EmailAddress, UserId};
use super::ticket::{FollowerSource, Role};

/// A follower of a ticket as the planner needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Follower {
    pub user: UserId,
    pub email: EmailAddress,
    pub name: String,
    /// Language of their notifications (`en`, `ja`, ...).
    pub locale: String,
    pub role: Role,
    pub source: FollowerSource,
    /// Set when deliveries to this address bounce; they are not mailed again.
    pub bouncing: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub to: EmailAddress,
    /// Display name for the greeting; `None` for the support team address.
    pub name: Option<String>,
    /// Language of the notification; `None`: the default.
    pub locale: Option<String>,
    /// The registered user, when the recipient is one (reply tokens need it).
    pub user: Option<UserId>,
    pub template: &'static str,
    /// Why they get it: the follower source, `requester`, or `support_notify`.
    pub reason: &'static str,
}

fn push_unique(out: &mut Vec<Recipient>, recipient: Recipient) {
    if !out.iter().any(|r| r.to == recipient.to) {
        out.push(recipient);
    }
}

/// A new ticket: an acknowledgement to the requester (unless the message asked for
/// no automatic answer) and a new-ticket notice to the support team.
pub fn on_ticket_created(
    requester: &Follower,
    notify: Option<&EmailAddress>,
    acknowledge: bool,
) -> Vec<Recipient> {
    let mut out = Vec::new();
    if acknowledge && !requester.bouncing {
        out.push(Recipient {
            to: requester.email.clone(),
            name: Some(requester.name.clone()),
            locale: Some(requester.locale.clone()),
            user: Some(requester.user),
            template: "ack",
            reason: "requester",
        });
    }
    if let Some(notify) = notify.filter(|n| **n != requester.email) {
        push_unique(
            &mut out,
            Recipient {
                to: notify.clone(),
                name: None,
                locale: None,
                user: None,
                template: "new_ticket",
                reason: "support_notify",
            },
        );
    }
    out
}

/// A comment or other update: every follower and the support team, minus its
/// author (`None` when a rule made it), minus customers when it is internal,
/// minus bouncing addresses, once each.
pub fn on_comment(
    followers: &[Follower],
    author: Option<&EmailAddress>,
    notify: Option<&EmailAddress>,
    internal: bool,
) -> Vec<Recipient> {
    let mut out = Vec::new();
    for f in followers {
        if Some(&f.email) == author || f.bouncing || (internal && f.role != Role::Staff) {
            continue;
        }
        push_unique(
            &mut out,
            Recipient {
                to: f.email.clone(),
                name: Some(f.name.clone()),
                locale: Some(f.locale.clone()),
                user: Some(f.user),
                template: "comment_added",
                reason: f.source.as_str(),
            },
        );
    }
    if let Some(notify) = notify.filter(|n| Some(*n) != author) {
        push_unique(
            &mut out,
            Recipient {
                to: notify.clone(),
                name: None,
                locale: None,
                user: None,
                template: "comment_added",
                reason: "support_notify",
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(user: UserId, email: &str, role: Role, source: FollowerSource) -> Follower {
        Follower {
            user,
            email: EmailAddress::parse(email).unwrap(),
            name: email.into(),
            locale: "en".into(),
            role,
            source,
            bouncing: false,
        }
    }

    fn addr(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    fn summary(plan: &[Recipient]) -> Vec<String> {
        plan.iter()
            .map(|r| format!("{}:{}:{}", r.to, r.template, r.reason))
            .collect()
    }

    #[test]
    fn new_tickets_acknowledge_and_tell_support() {
        let alice = f(
            1,
            "alice@customer.test",
            Role::Customer,
            FollowerSource::Creator,
        );
        let team = addr("team@example.test");
        assert_eq!(
            summary(&on_ticket_created(&alice, Some(&team), true)),
            [
                "alice@customer.test:ack:requester",
                "team@example.test:new_ticket:support_notify"
            ]
        );
        assert_eq!(
            summary(&on_ticket_created(&alice, Some(&team), false)),
            ["team@example.test:new_ticket:support_notify"]
        );
        assert_eq!(
            summary(&on_ticket_created(&alice, None, true)),
            ["alice@customer.test:ack:requester"]
        );
        let bouncing = Follower {
            bouncing: true,
            ..alice
        };
        assert!(on_ticket_created(&bouncing, None, true).is_empty());
    }

    #[test]
    fn comments_reach_followers_and_support_minus_the_author() {
        let followers = vec![
            f(
                1,
                "alice@customer.test",
                Role::Customer,
                FollowerSource::Creator,
            ),
            f(2, "bob@customer.test", Role::Customer, FollowerSource::Cc),
            f(3, "sam@example.test", Role::Staff, FollowerSource::Follow),
            Follower {
                bouncing: true,
                ..f(
                    4,
                    "gone@customer.test",
                    Role::Customer,
                    FollowerSource::Share,
                )
            },
        ];
        let team = addr("team@example.test");
        let cases = [
            (
                "customer comment",
                "alice@customer.test",
                false,
                vec![
                    "bob@customer.test:comment_added:cc",
                    "sam@example.test:comment_added:follow",
                    "team@example.test:comment_added:support_notify",
                ],
            ),
            (
                "staff comment",
                "sam@example.test",
                false,
                vec![
                    "alice@customer.test:comment_added:creator",
                    "bob@customer.test:comment_added:cc",
                    "team@example.test:comment_added:support_notify",
                ],
            ),
            (
                "internal comment reaches staff only",
                "sam@example.test",
                true,
                vec!["team@example.test:comment_added:support_notify"],
            ),
            (
                "support team writing is not told",
                "team@example.test",
                false,
                vec![
                    "alice@customer.test:comment_added:creator",
                    "bob@customer.test:comment_added:cc",
                    "sam@example.test:comment_added:follow",
                ],
            ),
        ];
        for (name, author, internal, expected) in cases {
            assert_eq!(
                summary(&on_comment(
                    &followers,
                    Some(&addr(author)),
                    Some(&team),
                    internal
                )),
                expected,
                "{name}"
            );
        }
    }

    #[test]
    fn a_follower_who_is_also_the_notify_address_gets_one_email() {
        let followers = vec![f(
            3,
            "team@example.test",
            Role::Staff,
            FollowerSource::Follow,
        )];
        let plan = on_comment(
            &followers,
            Some(&addr("alice@customer.test")),
            Some(&addr("team@example.test")),
            false,
        );
        assert_eq!(summary(&plan), ["team@example.test:comment_added:follow"]);
    }
}
