//! Who is emailed about an event (docs/contract.md, "Who is emailed"), as a pure plan:
//! each recipient with the template to render and the reason they get it.
//! Organizations never appear here: they grant access, never email.

use super::ids::{EmailAddress, UserId};
use super::locale::Locale;
use super::template::{Answer, Notification, Plain};
use super::ticket::{FollowerSource, Reason, Role};

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
    /// False once the account is deactivated: it keeps its place on the
    /// ticket (history, access rules) but is mailed nothing.
    pub active: bool,
}

impl Follower {
    /// Whether mail may go to them at all.
    pub fn mailable(&self) -> bool {
        self.active && !self.bouncing
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Recipient {
    pub to: EmailAddress,
    /// Display name for the greeting; `None` for the support team address.
    pub name: Option<String>,
    /// Language of the notification; `None`: the default.
    pub locale: Option<Locale>,
    /// The registered user, when the recipient is one (reply tokens need it).
    pub user: Option<UserId>,
    /// The template and what it is told.
    pub what: Notification,
    /// Why they get it: the follower source, `requester`, or `support_notify`.
    pub reason: Reason,
}

/// Who hears of every ticket besides its followers (`[support] notify`,
/// `notify_staff`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Team<'a> {
    /// The group address: one notice, no personal reply address.
    pub notify: Option<&'a EmailAddress>,
    /// With `notify_staff = "each"`, every staff user: their own copy carries
    /// their own reply address, so a command in a reply to it is proven.
    /// Empty with `"group"`.
    pub staff: &'a [Follower],
}

impl Team<'_> {
    /// The team's notices, after `out` holds the followers': the group
    /// address, then each staff member not already in `out` (a staff
    /// follower gets one mail), never `skip` (the author), never a bouncing one.
    fn add(&self, out: &mut Vec<Recipient>, skip: Option<&EmailAddress>, what: Notification) {
        if let Some(notify) = self.notify.filter(|n| Some(*n) != skip) {
            push_unique(
                out,
                Recipient {
                    to: notify.clone(),
                    name: None,
                    locale: None,
                    user: None,
                    what: what.clone(),
                    reason: Reason::SupportNotify,
                },
            );
        }
        for s in self.staff {
            if Some(&s.email) == skip || !s.mailable() {
                continue;
            }
            push_unique(
                out,
                Recipient {
                    to: s.email.clone(),
                    name: Some(s.name.clone()),
                    locale: Some(Locale::of(&s.locale)),
                    user: Some(s.user),
                    what: what.clone(),
                    reason: Reason::Staff,
                },
            );
        }
    }
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
    team: &Team<'_>,
    acknowledge: bool,
) -> Vec<Recipient> {
    let mut out = Vec::new();
    if acknowledge && requester.mailable() {
        out.push(Recipient {
            to: requester.email.clone(),
            name: Some(requester.name.clone()),
            locale: Some(Locale::of(&requester.locale)),
            user: Some(requester.user),
            what: Notification::Ack(Answer::default()),
            reason: Reason::Requester,
        });
    }
    team.add(
        &mut out,
        Some(&requester.email),
        Notification::NewTicket(Plain {}),
    );
    out
}

/// A clock's warning or breach: to the owner when they can be mailed,
/// else to the support team (docs/contract.md, "Desk").
pub fn on_alarm(owner: Option<&Follower>, team: &Team<'_>, what: Notification) -> Vec<Recipient> {
    let mut out = Vec::new();
    match owner.filter(|o| o.mailable()) {
        Some(o) => out.push(Recipient {
            to: o.email.clone(),
            name: Some(o.name.clone()),
            locale: Some(Locale::of(&o.locale)),
            user: Some(o.user),
            what,
            reason: Reason::Owner,
        }),
        None => team.add(&mut out, None, what),
    }
    out
}

/// A comment or other update: every follower and the support team, minus its
/// author (`None` when a rule made it), minus customers when it is internal,
/// minus bouncing addresses, once each.
pub fn on_comment(
    followers: &[Follower],
    author: Option<&EmailAddress>,
    team: &Team<'_>,
    internal: bool,
) -> Vec<Recipient> {
    let mut out = Vec::new();
    for f in followers {
        if Some(&f.email) == author || !f.mailable() || (internal && f.role != Role::Staff) {
            continue;
        }
        push_unique(
            &mut out,
            Recipient {
                to: f.email.clone(),
                name: Some(f.name.clone()),
                locale: Some(Locale::of(&f.locale)),
                user: Some(f.user),
                what: Notification::CommentAdded(Plain {}),
                reason: f.source.into(),
            },
        );
    }
    team.add(&mut out, author, Notification::CommentAdded(Plain {}));
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
            active: true,
        }
    }

    fn addr(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    fn group(notify: &EmailAddress) -> Team<'_> {
        Team {
            notify: Some(notify),
            staff: &[],
        }
    }

    fn summary(plan: &[Recipient]) -> Vec<String> {
        plan.iter()
            .map(|r| format!("{}:{}:{}", r.to, r.what.template_name(), r.reason))
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
            summary(&on_ticket_created(&alice, &group(&team), true)),
            [
                "alice@customer.test:ack:requester",
                "team@example.test:new_ticket:support_notify"
            ]
        );
        assert_eq!(
            summary(&on_ticket_created(&alice, &group(&team), false)),
            ["team@example.test:new_ticket:support_notify"]
        );
        assert_eq!(
            summary(&on_ticket_created(&alice, &Team::default(), true)),
            ["alice@customer.test:ack:requester"]
        );
        let bouncing = Follower {
            bouncing: true,
            active: true,
            ..alice
        };
        assert!(on_ticket_created(&bouncing, &Team::default(), true).is_empty());
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
                active: true,
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
                    &group(&team),
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
            &group(&addr("team@example.test")),
            false,
        );
        assert_eq!(summary(&plan), ["team@example.test:comment_added:follow"]);
    }

    /// `notify_staff = "each"`: every staff member their own copy (their own
    /// reply address), the group address still one; a staff follower, the
    /// author and a bouncing address as anywhere else.
    #[test]
    fn each_staff_member_gets_their_own_copy() {
        let sam = f(3, "sam@example.test", Role::Staff, FollowerSource::Follow);
        let dave = f(5, "dave@example.test", Role::Staff, FollowerSource::Follow);
        let gone = Follower {
            bouncing: true,
            active: true,
            ..f(6, "gone@example.test", Role::Staff, FollowerSource::Follow)
        };
        let staff = [sam.clone(), dave.clone(), gone];
        let team_address = addr("team@example.test");
        let each = Team {
            notify: Some(&team_address),
            staff: &staff,
        };
        let alice = f(
            1,
            "alice@customer.test",
            Role::Customer,
            FollowerSource::Creator,
        );
        assert_eq!(
            summary(&on_ticket_created(&alice, &each, true)),
            [
                "alice@customer.test:ack:requester",
                "team@example.test:new_ticket:support_notify",
                "sam@example.test:new_ticket:staff",
                "dave@example.test:new_ticket:staff",
            ]
        );
        let plan = on_ticket_created(&alice, &each, false);
        assert_eq!(plan[1].user, Some(3), "a copy names its staff user");
        let followers = [alice.clone(), sam.clone()];
        assert_eq!(
            summary(&on_comment(&followers, Some(&alice.email), &each, false)),
            [
                "sam@example.test:comment_added:follow",
                "team@example.test:comment_added:support_notify",
                "dave@example.test:comment_added:staff",
            ],
            "sam follows: one mail"
        );
        assert_eq!(
            summary(&on_comment(&followers, Some(&dave.email), &each, true)),
            [
                "sam@example.test:comment_added:follow",
                "team@example.test:comment_added:support_notify",
            ],
            "the author is not told; internal notes reach staff"
        );
        let no_group = Team {
            notify: None,
            staff: &staff,
        };
        assert_eq!(
            summary(&on_comment(
                &followers,
                Some(&alice.email),
                &no_group,
                false
            )),
            [
                "sam@example.test:comment_added:follow",
                "dave@example.test:comment_added:staff",
            ]
        );
    }
}
