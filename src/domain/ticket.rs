//! The ticket model of docs/contract.md, "Tickets": statuses, priorities, roles,
//! follower sources, and who may do what. Every channel (email, API) asks here.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::ids::{OrgId, TicketId, UserId};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind}: {value:?}")]
pub struct UnknownValue {
    pub kind: &'static str,
    pub value: String,
}

/// Folds the spellings people type (`In Progress`, `in-progress`, `IN_PROGRESS`).
fn fold(input: &str) -> String {
    input
        .trim()
        .chars()
        .map(|c| match c {
            ' ' | '-' | '_' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect::<String>()
        .split('_')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("_")
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident, $kind:literal, { $($variant:ident => $text:literal $(| $alias:literal)*),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match fold(s).as_str() {
                    $($text $(| $alias)* => Ok($name::$variant),)+
                    _ => Err(UnknownValue { kind: $kind, value: s.to_string() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// Ticket statuses; labels come from config `[statuses]`.
    Status, "status", {
        New => "new" | "open" | "reopen" | "reopened",
        InProgress => "in_progress" | "inprogress" | "progress" | "working",
        Blocked => "blocked" | "waiting" | "on_hold",
        Closed => "closed" | "close" | "resolved" | "done",
        Escalated => "escalated" | "escalate" | "closed_escalated_to_tem" | "escalated_to_tem",
    }
);

impl Status {
    /// The default label when config does not name one.
    pub fn default_label(self) -> &'static str {
        match self {
            Status::New => "New",
            Status::InProgress => "In Progress",
            Status::Blocked => "Blocked",
            Status::Closed => "Closed",
            Status::Escalated => "Closed - Escalated to TEM",
        }
    }

    pub fn is_open(self) -> bool {
        !matches!(self, Status::Closed | Status::Escalated)
    }
}

string_enum!(
    /// Service-level priorities; their names and response targets come from `[sla.Pn]`.
    Priority, "priority", { P1 => "P1" | "p1" | "1", P2 => "P2" | "p2" | "2", P3 => "P3" | "p3" | "3", P4 => "P4" | "p4" | "4" }
);

string_enum!(
    Role, "role", { Customer => "customer", Staff => "staff" | "agent" }
);

string_enum!(
    /// Why someone follows a ticket (docs/contract.md, "Tickets").
    FollowerSource, "follower source", {
        Creator => "creator", Follow => "follow", Share => "share", Mention => "mention", Cc => "cc",
        Owner => "owner",
    }
);

string_enum!(
    /// Why a ticket was closed (docs/contract.md, "Desk"): the policy's three
    /// kinds of Closed (resolved by support, closed by the customer, judged a
    /// feature request), and the desk's own two. Typed generously by mail
    /// (`by customer`, `feature-request`); labels come from `terms`.
    CloseReason, "close reason", {
        Resolved => "resolved" | "solved" | "fixed",
        ByCustomer => "by_customer" | "customer" | "closed_by_customer",
        FeatureRequest => "feature_request" | "feature" | "enhancement",
        NoResponse => "no_response" | "no_reply" | "noresponse" | "unanswered",
        Duplicate => "duplicate" | "dup" | "duplicated",
    }
);

impl CloseReason {
    /// What a bare close records: staff resolve, a customer closes their own.
    pub fn default_for(role: Role) -> Self {
        match role {
            Role::Staff => CloseReason::Resolved,
            Role::Customer => CloseReason::ByCustomer,
        }
    }
}

string_enum!(
    /// The two SLA clocks of a ticket (docs/contract.md, "Desk").
    Clock, "clock", { Response => "response", Resolve => "resolve" | "resolution" }
);

string_enum!(
    /// The channel a comment came through (`comments.source`); `web` is the portal.
    CommentSource, "comment source", {
        Email => "email", Api => "api", System => "system", Web => "web",
    }
);

impl CommentSource {
    /// Exactly a stored name (`comments.source`), no aliases.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.as_str() == s)
    }
}

/// A source equals its stored name (`"email"`), as the JSON shows it.
impl PartialEq<&str> for CommentSource {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

string_enum!(
    /// Why someone gets a mail: the tie they have to its ticket (a follower's
    /// source, `requester`), or to the desk (`support_notify`, `staff`,
    /// `invite`, `sign_in`, `sender`), or `removed` for the one told they
    /// no longer follow it. Templates show it in their footer
    /// (`templates/_footer.*`), so each value has a sentence there.
    Reason, "reason", {
        Creator => "creator", Follow => "follow", Share => "share", Mention => "mention", Cc => "cc",
        Requester => "requester", SupportNotify => "support_notify", Staff => "staff",
        Invite => "invite", SignIn => "sign_in", Sender => "sender", Removed => "removed",
        Owner => "owner",
    }
);

impl From<FollowerSource> for Reason {
    fn from(source: FollowerSource) -> Self {
        match source {
            FollowerSource::Creator => Reason::Creator,
            FollowerSource::Follow => Reason::Follow,
            FollowerSource::Share => Reason::Share,
            FollowerSource::Mention => Reason::Mention,
            FollowerSource::Cc => Reason::Cc,
            FollowerSource::Owner => Reason::Owner,
        }
    }
}

/// Who is acting, as far as permissions care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    pub user: UserId,
    pub role: Role,
    pub org: Option<OrgId>,
}

/// The part of a ticket that decides access.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    pub requester: UserId,
    pub followers: Vec<UserId>,
    pub orgs: Vec<OrgId>,
}

/// Staff, the ticket's followers, and members of an attached org may comment
/// (docs/contract.md, "Tickets").
pub fn may_comment(actor: &Actor, access: &Access) -> bool {
    actor.role == Role::Staff
        || actor.user == access.requester
        || access.followers.contains(&actor.user)
        || actor.org.is_some_and(|org| access.orgs.contains(&org))
}

/// Who may move a ticket from `from` to `to` (docs/contract.md, "Tickets"):
/// staff anything; the requester may close; a participant may reopen a closed
/// (not an escalated) ticket. Only staff set `in_progress`, `blocked`, `escalated`.
pub fn may_set_status(actor: &Actor, access: &Access, from: Status, to: Status) -> bool {
    if actor.role == Role::Staff {
        return true;
    }
    match to {
        Status::Closed => actor.user == access.requester,
        Status::New => from == Status::Closed && may_comment(actor, access),
        Status::InProgress | Status::Blocked | Status::Escalated => false,
    }
}

/// Why someone may not be removed from a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// The ticket's creator can never be removed (docs/contract.md, "Tickets").
    Creator,
    /// Only staff, the requester, or the person themselves remove a follower.
    NotYours,
}

/// Whether `actor` may remove `target` from the ticket's followers.
pub fn may_remove_follower(actor: &Actor, access: &Access, target: UserId) -> Result<(), Removal> {
    if target == access.requester {
        return Err(Removal::Creator);
    }
    if actor.role != Role::Staff && actor.user != access.requester && actor.user != target {
        return Err(Removal::NotYours);
    }
    Ok(())
}

/// Whom `actor` may share a ticket with (`#share`, a Cc on the opening mail,
/// the portal's share): staff anyone; a customer the members of their own
/// organization and its delivery leads (`leads`: the leads of the actor's
/// organization). `store::sql::REACHABLE_USERS` lists the same people.
pub fn may_share_with(actor: &Actor, leads: &[UserId], target: &Actor) -> bool {
    actor.role == Role::Staff
        || actor.org.is_some_and(|org| target.org == Some(org))
        || (actor.org.is_some() && leads.contains(&target.user))
}

/// Why someone in Cc of an opening mail does not follow the ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CcRefusal {
    /// The author may not share with them (another organization).
    NotShareable,
    /// It would let them in, and the author did not prove who they are.
    Unverified,
}

/// Whether a Cc on an opening mail makes `target` a follower. A Cc grants
/// what `#share` would and nothing more: only someone the author may share
/// with, and, where it lets them in (they could not read the ticket
/// before), only on proof of the sender, as a share needs.
pub fn may_follow_from_cc(
    actor: &Actor,
    leads: &[UserId],
    proven: bool,
    target: &Actor,
    access: &Access,
) -> Result<(), CcRefusal> {
    if !may_share_with(actor, leads, target) {
        return Err(CcRefusal::NotShareable);
    }
    if follower_reach(target, access) == Reach::Grants && !proven {
        return Err(CcRefusal::Unverified);
    }
    Ok(())
}

/// Organizations give access: a customer shares with (or removes) only their own.
pub fn may_share_org(actor: &Actor, org: OrgId) -> bool {
    actor.role == Role::Staff || actor.org == Some(org)
}

/// Priorities, releases and internal comments are staff business.
pub fn may_set_priority(actor: &Actor) -> bool {
    actor.role == Role::Staff
}

pub fn may_note_release(actor: &Actor) -> bool {
    actor.role == Role::Staff
}

/// Owners are the support team's to give (docs/contract.md, "Desk").
pub fn may_assign(actor: &Actor) -> bool {
    actor.role == Role::Staff
}

/// Why a ticket closed is the desk's record: staff give any reason; a
/// customer who closes their own ticket closes it as theirs.
pub fn may_give_close_reason(actor: &Actor, reason: CloseReason) -> bool {
    actor.role == Role::Staff || reason == CloseReason::default_for(actor.role)
}

/// Only proven staff post internal notes: text meant for staff is never
/// published on a forged From's word (the caller quarantines it instead).
pub fn may_post_internal(actor: &Actor, proven: bool) -> bool {
    actor.role == Role::Staff && proven
}

/// The longest chain of merges followed from a ticket to where it lives
/// now (`B` merged into `A`, later merged into `C`): a bound, so a loop a
/// database edit could make ends instead of spinning.
pub const MAX_MERGE_HOPS: usize = 16;

/// One side of a merge as the rule sees it: the ticket and where it was
/// merged, if it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergeSide {
    pub id: TicketId,
    pub merged_into: Option<TicketId>,
}

/// Why a merge is refused (docs/contract.md, "Desk").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeRefusal {
    NotStaff,
    IntoItself,
    /// The target does not exist.
    NoTarget(TicketId),
    /// The ticket to merge was merged already, into this one.
    AlreadyMerged(TicketId),
    /// The target was itself merged, into `went`.
    TargetMerged {
        target: TicketId,
        went: TicketId,
    },
}

/// Merging `from` into `into` (`None`: no such ticket) is staff work, and
/// only between two tickets that still live on their own: a merged ticket
/// is a signpost, and a chain is followed, never made by a merge.
pub fn may_merge(
    actor: &Actor,
    from: MergeSide,
    into_id: TicketId,
    into: Option<MergeSide>,
) -> Result<(), MergeRefusal> {
    if actor.role != Role::Staff {
        return Err(MergeRefusal::NotStaff);
    }
    if from.id == into_id {
        return Err(MergeRefusal::IntoItself);
    }
    if let Some(went) = from.merged_into {
        return Err(MergeRefusal::AlreadyMerged(went));
    }
    let into = into.ok_or(MergeRefusal::NoTarget(into_id))?;
    if let Some(went) = into.merged_into {
        return Err(MergeRefusal::TargetMerged {
            target: into.id,
            went,
        });
    }
    Ok(())
}

/// Moving a comment between tickets is staff work (it can show a
/// customer's words on another ticket); `to` is `None` for a new ticket.
/// Never onto the ticket it is on, nor onto a merged one (it would not be
/// read there).
pub fn may_move_comment(
    actor: &Actor,
    from: TicketId,
    to: Option<MergeSide>,
) -> Result<(), MoveRefusal> {
    if actor.role != Role::Staff {
        return Err(MoveRefusal::NotStaff);
    }
    match to {
        Some(to) if to.id == from => Err(MoveRefusal::SameTicket),
        Some(MergeSide {
            id,
            merged_into: Some(went),
        }) => Err(MoveRefusal::TargetMerged { target: id, went }),
        _ => Ok(()),
    }
}

/// Why a move is refused (docs/contract.md, "Desk").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveRefusal {
    NotStaff,
    SameTicket,
    TargetMerged { target: TicketId, went: TicketId },
}

/// How a change moves the set of people who may see a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    Keeps,
    /// Someone gains access: a share, or a mention of someone outside the ticket.
    Grants,
    /// Someone loses access: an unshare, or one's own `#unfollow`.
    Removes,
}

/// Whether a change needs proof of the sender (a trusted DKIM/DMARC pass or
/// a reply to their own reply address; docs/contract.md, "Mail"): everything
/// staff do, and anything that changes who may see the ticket. Removal counts
/// as much as a grant: a forger could otherwise drop a colleague or an org, or
/// `#unfollow` a real customer off their own updates.
pub fn needs_proof(actor: &Actor, reach: Reach) -> bool {
    actor.role == Role::Staff || reach != Reach::Keeps
}

/// What making `target` a follower does: it grants access unless they
/// could already read the ticket.
pub fn follower_reach(target: &Actor, access: &Access) -> Reach {
    if may_comment(target, access) {
        Reach::Keeps
    } else {
        Reach::Grants
    }
}

/// What mentioning `target` does. The mention mail carries the ticket and the
/// target's own reply address (and, by default, makes them a follower), so a
/// mention of someone who may not already see the ticket grants access.
pub fn mention_reach(target: &Actor, access: &Access) -> Reach {
    follower_reach(target, access)
}

/// The author's role as rules see it: staff only when proven, so a forged
/// staff From never fires a staff rule (nor a customer one).
pub fn rule_role(role: Role, proven: bool) -> Option<Role> {
    match role {
        Role::Staff if !proven => None,
        role => Some(role),
    }
}

/// Whether `target` may be mentioned on a ticket with `access`: only when
/// they can already see it. A mention never lets anyone in, proven or not,
/// staff or customer: one slip of an `@` would show a customer's ticket to
/// another company. Letting someone in is an explicit share.
pub fn may_mention(target: &Actor, access: &Access) -> bool {
    mention_reach(target, access) == Reach::Keeps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_accept_generous_spellings() {
        for (input, expected) in [
            ("in progress", Status::InProgress),
            ("In Progress", Status::InProgress),
            ("in-progress", Status::InProgress),
            ("IN_PROGRESS", Status::InProgress),
            ("  closed ", Status::Closed),
            ("Closed - Escalated to TEM", Status::Escalated),
            ("escalated", Status::Escalated),
            ("blocked", Status::Blocked),
            ("new", Status::New),
        ] {
            assert_eq!(input.parse::<Status>(), Ok(expected), "{input}");
        }
        assert!("finished-ish".parse::<Status>().is_err());
        assert_eq!("P2".parse::<Priority>(), Ok(Priority::P2));
        assert!("P5".parse::<Priority>().is_err());
    }

    #[test]
    fn staff_assign_and_give_any_close_reason_customers_close_as_theirs() {
        let customer = Actor {
            user: 1,
            role: Role::Customer,
            org: Some(10),
        };
        let staff = Actor {
            user: 9,
            role: Role::Staff,
            org: None,
        };
        assert!(may_assign(&staff) && !may_assign(&customer));
        for &reason in CloseReason::ALL {
            assert!(may_give_close_reason(&staff, reason), "{reason:?}");
            assert_eq!(
                may_give_close_reason(&customer, reason),
                reason == CloseReason::ByCustomer,
                "{reason:?}"
            );
        }
    }

    #[test]
    fn who_may_remove_whom() {
        let access = Access {
            requester: 1,
            followers: vec![1, 2, 3],
            orgs: vec![10],
        };
        let customer = |user| Actor {
            user,
            role: Role::Customer,
            org: Some(10),
        };
        let staff = Actor {
            user: 9,
            role: Role::Staff,
            org: None,
        };
        for (name, actor, target, want) in [
            ("staff removes the creator", staff, 1, Err(Removal::Creator)),
            (
                "the creator removes themself",
                customer(1),
                1,
                Err(Removal::Creator),
            ),
            ("staff removes a follower", staff, 2, Ok(())),
            ("the requester removes a follower", customer(1), 2, Ok(())),
            ("a follower removes themself", customer(2), 2, Ok(())),
            (
                "a follower removes another",
                customer(2),
                3,
                Err(Removal::NotYours),
            ),
        ] {
            assert_eq!(may_remove_follower(&actor, &access, target), want, "{name}");
        }
        assert!(may_share_org(&customer(2), 10));
        assert!(!may_share_org(&customer(2), 20), "another organization");
        assert!(may_share_org(&staff, 20));
    }

    #[test]
    fn who_may_comment() {
        let access = Access {
            requester: 1,
            followers: vec![1, 2],
            orgs: vec![10],
        };
        let cases = [
            (
                "requester",
                Actor {
                    user: 1,
                    role: Role::Customer,
                    org: Some(10),
                },
                true,
            ),
            (
                "follower from another org",
                Actor {
                    user: 2,
                    role: Role::Customer,
                    org: Some(20),
                },
                true,
            ),
            (
                "member of an attached org",
                Actor {
                    user: 3,
                    role: Role::Customer,
                    org: Some(10),
                },
                true,
            ),
            (
                "staff",
                Actor {
                    user: 4,
                    role: Role::Staff,
                    org: None,
                },
                true,
            ),
            (
                "stranger from another org",
                Actor {
                    user: 5,
                    role: Role::Customer,
                    org: Some(20),
                },
                false,
            ),
            (
                "customer without org",
                Actor {
                    user: 6,
                    role: Role::Customer,
                    org: None,
                },
                false,
            ),
        ];
        for (name, actor, expected) in cases {
            assert_eq!(may_comment(&actor, &access), expected, "{name}");
        }
    }

    /// Every (role × requester? × current status × requested status).
    #[test]
    fn status_permissions_for_every_role_and_transition() {
        let access = Access {
            requester: 1,
            followers: vec![1, 2],
            orgs: vec![10],
        };
        let staff = Actor {
            user: 9,
            role: Role::Staff,
            org: None,
        };
        let requester = Actor {
            user: 1,
            role: Role::Customer,
            org: Some(10),
        };
        let follower = Actor {
            user: 2,
            role: Role::Customer,
            org: Some(20),
        };
        let stranger = Actor {
            user: 5,
            role: Role::Customer,
            org: Some(30),
        };
        for &from in Status::ALL {
            for &to in Status::ALL {
                assert!(
                    may_set_status(&staff, &access, from, to),
                    "staff {from} -> {to}"
                );
                let customer_may = |who: &Actor| match to {
                    Status::Closed => who.user == access.requester,
                    Status::New => from == Status::Closed && who.user != stranger.user,
                    _ => false,
                };
                for (name, who) in [
                    ("requester", &requester),
                    ("follower", &follower),
                    ("stranger", &stranger),
                ] {
                    assert_eq!(
                        may_set_status(who, &access, from, to),
                        customer_may(who),
                        "{name} {from} -> {to}"
                    );
                }
            }
        }
        // Spot checks that read as the policy.
        assert!(may_set_status(
            &requester,
            &access,
            Status::InProgress,
            Status::Closed
        ));
        assert!(!may_set_status(
            &follower,
            &access,
            Status::InProgress,
            Status::Closed
        ));
        assert!(may_set_status(
            &follower,
            &access,
            Status::Closed,
            Status::New
        ));
        assert!(!may_set_status(
            &requester,
            &access,
            Status::Escalated,
            Status::New
        ));
        assert!(!may_set_status(
            &requester,
            &access,
            Status::New,
            Status::InProgress
        ));
        assert!(may_set_priority(&staff) && !may_set_priority(&requester));
        assert!(may_note_release(&staff) && !may_note_release(&requester));
        assert!(may_post_internal(&staff, true));
        assert!(!may_post_internal(&staff, false), "unproven staff");
        assert!(!may_post_internal(&follower, true));
    }

    #[test]
    fn rules_see_staff_only_when_proven() {
        assert_eq!(rule_role(Role::Staff, true), Some(Role::Staff));
        assert_eq!(rule_role(Role::Staff, false), None);
        assert_eq!(rule_role(Role::Customer, false), Some(Role::Customer));
        assert_eq!(rule_role(Role::Customer, true), Some(Role::Customer));
    }

    #[test]
    fn who_needs_proof() {
        let customer = Actor {
            user: 1,
            role: Role::Customer,
            org: Some(10),
        };
        let staff = Actor {
            user: 9,
            role: Role::Staff,
            org: None,
        };
        let cases = [
            (
                "customer, nothing changes who sees it",
                customer,
                Reach::Keeps,
                false,
            ),
            ("customer grants", customer, Reach::Grants, true),
            ("customer removes", customer, Reach::Removes, true),
            ("staff, anything", staff, Reach::Keeps, true),
            ("staff grants", staff, Reach::Grants, true),
            ("staff removes", staff, Reach::Removes, true),
        ];
        for (name, actor, reach, expected) in cases {
            assert_eq!(needs_proof(&actor, reach), expected, "{name}");
        }
    }

    #[test]
    fn whom_one_may_share_with_and_who_follows_from_a_cc() {
        let actor = |user, role, org| Actor { user, role, org };
        let alice = actor(1, Role::Customer, Some(10));
        let sam = actor(4, Role::Staff, None);
        let nobody = actor(7, Role::Customer, None);
        let bob = actor(2, Role::Customer, Some(10));
        let carol = actor(3, Role::Customer, Some(20));
        let dave = actor(5, Role::Staff, None);
        let erin = actor(6, Role::Staff, None);
        // Dave leads Alice's organization.
        let leads = [5];
        // Alice's new ticket: her and her organization.
        let access = Access {
            requester: 1,
            followers: vec![1],
            orgs: vec![10],
        };
        // Sam's new ticket: nobody else.
        let staff_access = Access {
            requester: 4,
            followers: vec![4],
            orgs: vec![],
        };
        use CcRefusal::*;
        let cases = [
            (
                "a customer, her colleague",
                alice,
                false,
                bob,
                &access,
                Ok(()),
            ),
            (
                "a customer, her org's lead",
                alice,
                false,
                dave,
                &access,
                Ok(()),
            ),
            (
                "a customer, other staff",
                alice,
                true,
                erin,
                &access,
                Err(NotShareable),
            ),
            (
                "a customer, another org",
                alice,
                false,
                carol,
                &access,
                Err(NotShareable),
            ),
            (
                "a customer, another org, proven",
                alice,
                true,
                carol,
                &access,
                Err(NotShareable),
            ),
            (
                "no organization, anyone",
                nobody,
                true,
                bob,
                &access,
                Err(NotShareable),
            ),
            (
                "staff, another org",
                sam,
                false,
                carol,
                &staff_access,
                Err(Unverified),
            ),
            (
                "staff, another org, proven",
                sam,
                true,
                carol,
                &staff_access,
                Ok(()),
            ),
            (
                "staff, a colleague",
                sam,
                false,
                dave,
                &staff_access,
                Ok(()),
            ),
        ];
        for (name, who, proven, target, access, expected) in cases {
            assert_eq!(
                may_follow_from_cc(&who, &leads, proven, &target, access),
                expected,
                "{name}"
            );
            assert_eq!(
                may_share_with(&who, &leads, &target),
                expected != Err(NotShareable),
                "{name}: as a share"
            );
        }
    }

    #[test]
    fn who_may_be_mentioned_without_proof() {
        let access = Access {
            requester: 1,
            followers: vec![1, 2],
            orgs: vec![10],
        };
        let target = |user, role, org| Actor { user, role, org };
        let cases = [
            ("the requester", target(1, Role::Customer, Some(10)), true),
            (
                "a follower from elsewhere",
                target(2, Role::Customer, Some(20)),
                true,
            ),
            (
                "a member of an attached org",
                target(3, Role::Customer, Some(10)),
                true,
            ),
            ("staff", target(4, Role::Staff, None), true),
            (
                "someone of another org",
                target(5, Role::Customer, Some(20)),
                false,
            ),
            ("someone of no org", target(6, Role::Customer, None), false),
        ];
        for (name, who, may) in cases {
            assert_eq!(may_mention(&who, &access), may, "{name}");
            assert_eq!(
                mention_reach(&who, &access) == Reach::Grants,
                !may,
                "{name}"
            );
        }
    }

    #[test]
    fn merges_and_moves_are_staff_work_between_living_tickets() {
        let staff = Actor {
            user: 1,
            role: Role::Staff,
            org: None,
        };
        let customer = Actor {
            role: Role::Customer,
            ..staff
        };
        let side = |id, merged_into| MergeSide { id, merged_into };
        let b = side(2, None);
        assert_eq!(may_merge(&staff, b, 1, Some(side(1, None))), Ok(()));
        let refused = [
            (customer, b, 1, Some(side(1, None)), MergeRefusal::NotStaff),
            (staff, b, 2, Some(b), MergeRefusal::IntoItself),
            (staff, b, 9, None, MergeRefusal::NoTarget(9)),
            (
                staff,
                side(2, Some(1)),
                3,
                Some(side(3, None)),
                MergeRefusal::AlreadyMerged(1),
            ),
            (
                staff,
                b,
                3,
                Some(side(3, Some(1))),
                MergeRefusal::TargetMerged { target: 3, went: 1 },
            ),
        ];
        for (actor, from, into_id, into, expected) in refused {
            assert_eq!(may_merge(&actor, from, into_id, into), Err(expected));
        }
        assert_eq!(may_move_comment(&staff, 2, None), Ok(()));
        assert_eq!(may_move_comment(&staff, 2, Some(side(1, None))), Ok(()));
        assert_eq!(
            may_move_comment(&customer, 2, None),
            Err(MoveRefusal::NotStaff)
        );
        assert_eq!(
            may_move_comment(&staff, 2, Some(side(2, None))),
            Err(MoveRefusal::SameTicket)
        );
        assert_eq!(
            may_move_comment(&staff, 2, Some(side(3, Some(1)))),
            Err(MoveRefusal::TargetMerged { target: 3, went: 1 })
        );
    }
}
