//! The notifications the gateway sends, by template. The list is written
//! once, in `with_templates!`: it defines [`Template`] and [`Notification`]
//! (each template with the typed context it reads) here, and the templates
//! compiled into the binary in `render`.

use serde::Serialize;

use super::event::Event;
use super::ids::{CommentId, EmailAddress, TicketId};
use super::ticket::{Clock, CloseReason, FollowerSource, Priority, Reason, Status};

/// Calls `$m!` with every built-in template as `Variant "name" subject Context,`:
/// `subject` is `own` when the template has its own `.subject.txt` (mail
/// about no ticket), `ticket` when the mail takes the ticket's subject;
/// `Context` is the type of what the template reads as `event`.
macro_rules! with_templates {
    ($m:ident) => {
        $m! {
            Ack "ack" ticket Answer,
            NewTicket "new_ticket" ticket Plain,
            CommentAdded "comment_added" ticket Plain,
            StatusChanged "status_changed" ticket StatusChanged,
            PrioritySet "priority_set" ticket PrioritySet,
            SharedWithYou "shared_with_you" ticket Followed,
            YouFollow "you_follow" ticket Followed,
            Mentioned "mentioned" ticket Mentioned,
            ReleaseNoted "release_noted" ticket ReleaseNoted,
            FollowerRemoved "follower_removed" ticket Removed,
            TicketUpdated "ticket_updated" ticket Box<TicketUpdated>,
            EnvironmentUpgrade "environment_upgrade" ticket Answer,
            Reminder "reminder" ticket Answer,
            ClosedNoResponse "closed_no_response" ticket Answer,
            ClockWarning "clock_warning" ticket ClockAlarm,
            ClockBreached "clock_breached" ticket ClockAlarm,
            Invite "invite" own Invite,
            CommandFailed "command_failed" own CommandFailed,
            Refused "refused" own Refused,
            ListAnswer "list_answer" own ListAnswer,
            HelpAnswer "help_answer" own HelpAnswer,
            QuarantineAlert "quarantine_alert" own QuarantineAlert,
            SenderRefused "sender_refused" own SenderRefused,
            SignIn "sign_in" own SignIn,
        }
    };
}
pub(crate) use with_templates;

macro_rules! define_template {
    ($($variant:ident $name:literal $subject:ident $context:ty,)*) => {
        /// A built-in notification template. Its wire name (`as_str`) names
        /// the files under `templates/` and the outbox row's `template`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Template {
            $($variant,)*
        }

        impl Template {
            pub const ALL: &[Template] = &[$(Template::$variant,)*];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Template::$variant => $name,)*
                }
            }

            /// Mail about no ticket: its subject comes from its own file.
            pub fn has_own_subject(self) -> bool {
                match self {
                    $(Template::$variant => stringify!($subject) == "own",)*
                }
            }
        }

        /// One notification: a built-in template with its own typed context,
        /// so no template is queued with another's fields; or a rule's
        /// answer, which may name an operator's template.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Notification {
            $($variant($context),)*
            /// A rule's `reply_template` (built in or in the operator's
            /// templates folder, checked by `rules check`).
            Answer(String, Answer),
        }

        impl Notification {
            /// The template files' name, and the outbox row's `template`.
            pub fn template_name(&self) -> &str {
                match self {
                    $(Notification::$variant(_) => $name,)*
                    Notification::Answer(name, _) => name,
                }
            }

            /// The built-in template, `None` for an operator's answer.
            pub fn template(&self) -> Option<Template> {
                match self {
                    $(Notification::$variant(_) => Some(Template::$variant),)*
                    Notification::Answer(name, _) => name.parse().ok(),
                }
            }

            /// What the template reads as `event`.
            pub fn fields(&self) -> serde_json::Value {
                // Plain structs of strings, numbers and lists: they always serialize.
                match self {
                    $(Notification::$variant(c) => serde_json::to_value(c),)*
                    Notification::Answer(_, c) => serde_json::to_value(c),
                }
                .unwrap_or_default()
            }
        }
    };
}
with_templates!(define_template);

impl Notification {
    /// What followers are told of a change to the ticket itself, read from
    /// its recorded event; `None` for events told some other way.
    pub fn announcing(event: &Event, by: ByWhom) -> Option<Self> {
        Some(match event {
            Event::StatusChanged {
                from, to, reason, ..
            } => Notification::StatusChanged(StatusChanged {
                from: *from,
                to: *to,
                reason: *reason,
                merged_into: None,
                by,
            }),
            Event::PrioritySet {
                priority,
                sla_name,
                sla_response,
                sla_resolve,
            } => Notification::PrioritySet(PrioritySet {
                sla_resolve: sla_resolve.clone(),
                priority: priority.to_string(),
                sla_name: sla_name.clone(),
                sla_response: sla_response.clone(),
                by,
            }),
            Event::ReleaseNoted { release } => Notification::ReleaseNoted(ReleaseNoted {
                release: release.to_string(),
                by,
            }),
            _ => return None,
        })
    }
}

/// The snapshot an outbox row keeps of what its mail shows (the outbox
/// `context`); rendering reads it when the mail is sent.
#[derive(Debug, Serialize)]
pub struct NoticeContext<'a> {
    pub ticket: Option<TicketShown<'a>>,
    pub comment: Option<&'a Shown>,
    /// The notification's own fields (`Notification::fields`).
    pub event: serde_json::Value,
    pub recipient: RecipientShown<'a>,
}

impl NoticeContext<'_> {
    pub fn to_json(&self) -> serde_json::Value {
        // Strings, numbers and plain enums: serializing cannot fail.
        serde_json::to_value(self).unwrap_or_default()
    }
}

#[derive(Debug, Serialize)]
pub struct TicketShown<'a> {
    pub id: TicketId,
    pub subject: &'a str,
    pub status: Status,
    pub priority: Option<Priority>,
    /// The ticket's portal page (`<base_url>/tickets/N`) when the portal is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RecipientShown<'a> {
    pub email: &'a EmailAddress,
    pub name: Option<&'a str>,
    pub reason: Reason,
}

impl std::fmt::Display for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Template {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Template::ALL
            .iter()
            .copied()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("no built-in template {s:?}"))
    }
}

// What each template reads as `event`. Field names are the templates'
// (documented in templates/README.md).

/// Who made a change, as mail shows them: the name with the address beside
/// it, since a display name alone can be anyone's. Both
/// empty when a rule made it: the templates then name the support desk.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ByWhom {
    pub actor_name: Option<String>,
    pub actor_email: Option<EmailAddress>,
}

impl ByWhom {
    pub fn person(name: &str, email: &EmailAddress) -> Self {
        Self {
            actor_name: Some(name.to_string()),
            actor_email: Some(email.clone()),
        }
    }

    /// A rule: shown as the support desk.
    pub fn rule() -> Self {
        Self::default()
    }
}

/// The comment a notification shows, without its text: the outbox reads
/// the text back by `id` when it composes, so a fan-out to every follower
/// stores it once, not once per recipient.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Shown {
    pub id: CommentId,
    pub author_name: String,
    pub author_email: EmailAddress,
    /// Staff only: customers are never told of it.
    pub internal: bool,
    /// Its attachments' file names.
    pub attachments: Vec<String>,
}

/// Someone named in a mail: a delivery lead, a new follower.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Person {
    pub name: String,
    pub email: EmailAddress,
}

/// A template that needs no fields beyond the ticket and the comment.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Plain {}

/// An SLA clock's warning or breach, to the owner or the team. `due` is
/// RFC 3339; the mail shows it in its reader's language and the desk's
/// zone (`due_label`, added when rendered).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClockAlarm {
    pub clock: Clock,
    pub due: String,
    /// `[sla] warn_at`, for the warning's words.
    pub percent: u8,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusChanged {
    pub from: Status,
    pub to: Status,
    /// Why it was closed; the mail shows it in its reader's words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<CloseReason>,
    /// Where the ticket continues, when it was closed by a merge: replies
    /// to this mail land there (docs/contract.md, "Desk").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<TicketId>,
    #[serde(flatten)]
    pub by: ByWhom,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrioritySet {
    /// `P1`..: as the customer reads it.
    pub priority: String,
    /// The SLA row's name and response target; empty when config has none.
    pub sla_name: String,
    pub sla_response: String,
    /// The resolution target; empty when the level has none.
    pub sla_resolve: String,
    #[serde(flatten)]
    pub by: ByWhom,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReleaseNoted {
    pub release: String,
    #[serde(flatten)]
    pub by: ByWhom,
}

/// `you_follow` and `shared_with_you`: why they now follow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Followed {
    pub source: FollowerSource,
    #[serde(flatten)]
    pub by: ByWhom,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mentioned {
    #[serde(flatten)]
    pub by: ByWhom,
    pub excerpt: String,
    /// They follow because of this mention (one who already did is not
    /// told they "now follow").
    pub following: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Removed {
    #[serde(flatten)]
    pub by: ByWhom,
}

/// Everything one recipient is told about a ticket at once (one action, one
/// mail per recipient: docs/contract.md, "Who is emailed"): the ticket-wide changes and what
/// concerns them in person.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TicketUpdated {
    #[serde(flatten)]
    pub by: ByWhom,
    /// Set when the status ended elsewhere than it began.
    pub from: Option<Status>,
    pub to: Option<Status>,
    /// Why it was closed, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<CloseReason>,
    /// Where the ticket continues, when a merge closed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<TicketId>,
    pub priority: Option<String>,
    pub sla_name: Option<String>,
    pub sla_response: Option<String>,
    pub sla_resolve: Option<String>,
    pub releases: Vec<String>,
    /// Others who began to follow (never the recipient).
    pub followers_added: Vec<Person>,
    pub shared_with_you: Option<Followed>,
    pub you_follow: Option<Followed>,
    pub mentioned: Option<Mentioned>,
}

/// A command or mention that could not be carried out, as the author is told.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureLine {
    pub command: String,
    pub reason: String,
}

/// What went wrong in a message, listed apart: commands and mentions, at
/// most a few, then a count.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Failures {
    pub failures: Vec<FailureLine>,
    pub mentions: Vec<FailureLine>,
    pub more_failures: usize,
}

/// A rule's automatic answer (`ack`, `environment_upgrade`, an operator's).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Answer {
    /// The rule that answered; empty for the built-in acknowledgement.
    pub rule: String,
    /// The sender's organization's delivery leads.
    pub leads: Vec<Person>,
    /// The message's failed commands: the answer already goes to its
    /// author, so it says them rather than a second mail.
    #[serde(flatten)]
    pub failed: Failures,
    /// Later answers to the same message, shown as sections of this one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<AlsoAnswer>,
    /// The portal's sign-in page, for a sender who has never signed in:
    /// an acknowledgement says the portal exists and how to get in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub portal_login: Option<String>,
}

/// One answer riding along in another (`<template>.section.*`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlsoAnswer {
    pub template: String,
    pub event: Answer,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Invite {
    pub user_name: String,
    pub user_email: EmailAddress,
    pub org_name: Option<String>,
    /// Staff get the staff guide, not the customer's.
    pub staff: bool,
    /// A one-time sign-in link to the portal, when it is on.
    pub link: Option<MailedLink>,
    /// How many days the link works.
    pub link_days: u64,
}

/// A one-time portal sign-in link, asked for on the sign-in page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SignIn {
    pub link: MailedLink,
    /// How many minutes it works.
    pub minutes: u64,
}

/// A one-time portal link as it is queued: where it points and how long it
/// works, never a token. The outbox mints the token when it sends the mail
/// and stores only its hash (`outbox.rs`), so the outbox row, kept after
/// sending, holds nothing that signs anyone in. The template reads
/// `event.link` as the finished URL.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MailedLink {
    /// The portal's `base_url`; the link is `<base_url>/login/<token>`.
    pub base_url: String,
    /// How long the link works, counted from when the mail is sent.
    pub ttl_secs: u64,
    /// Where signing in with it ends (a local path, `local_next`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Where to go after signing in, from a `next` a client sent: a path on this
/// site only (`/tickets/7`), never another site (`//evil.test`, `https:`,
/// `/\evil.test`, which browsers read as `//`), else nowhere (`/tickets`).
pub fn local_next(raw: Option<&str>) -> Option<String> {
    let next = raw?.trim();
    let rest = next.strip_prefix('/')?;
    let safe = !rest.starts_with(['/', '\\'])
        && next.len() <= 512
        && next.chars().all(|c| c.is_ascii_graphic() && c != '\\');
    safe.then(|| next.to_string())
}

/// A local path as a query value: everything but unreserved characters and
/// `/` percent-encoded (RFC 3986 §2.3).
pub fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandFailed {
    #[serde(flatten)]
    pub failed: Failures,
    pub original_subject: String,
}

/// A refused message, told to its sender.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Refused {
    pub reason: String,
    /// `None` to an unknown sender, who may be forged: the notice then
    /// carries nothing they wrote to a third party.
    pub original_subject: Option<String>,
    /// The size limit, as `25 MB`.
    pub limit: String,
}

/// One row of `#list`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListedTicket {
    pub id: i64,
    pub subject: String,
    pub status: Status,
    pub status_label: String,
    /// In the reader's language and the desk's zone.
    pub updated_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListAnswer {
    pub tickets: Vec<ListedTicket>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HelpAnswer {
    /// Staff are shown their commands too.
    pub staff: bool,
    /// The configured status labels.
    pub statuses: Vec<String>,
}

/// The team's alert about quarantined mail; the outbox adds what arrived
/// since (`messages`, `more`) when it sends it, at the window's end.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuarantineAlert {
    pub since: String,
    /// `[web] base_url` when the portal is on: each message then links its
    /// quarantine page, where staff replay, share or discard it.
    pub portal: Option<String>,
}

/// A sender refused, told to the team.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SenderRefused {
    pub reason: String,
    pub sender: EmailAddress,
    pub name: Option<String>,
    pub original_subject: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_parse_back() {
        for t in Template::ALL {
            assert_eq!(t.as_str().parse::<Template>(), Ok(*t));
        }
        let mut names: Vec<_> = Template::ALL.iter().map(|t| t.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Template::ALL.len());
        assert!("nope".parse::<Template>().is_err());
    }

    #[test]
    fn only_a_local_path_is_where_signing_in_ends() {
        for (raw, expected) in [
            (Some("/tickets/7"), Some("/tickets/7")),
            (
                Some("/tickets?status=closed&q=a"),
                Some("/tickets?status=closed&q=a"),
            ),
            (Some("//evil.test/x"), None),
            (Some("/\\evil.test"), None),
            (Some("https://evil.test/"), None),
            (Some("javascript:alert(1)"), None),
            (Some("tickets/7"), None),
            (Some("/tickets/7\r\nSet-Cookie: x"), None),
            (Some("/tickets/ 7"), None),
            (Some(""), None),
            (None, None),
        ] {
            assert_eq!(local_next(raw).as_deref(), expected, "{raw:?}");
        }
        assert_eq!(
            encode_path("/tickets?status=closed&q=a b"),
            "/tickets%3Fstatus%3Dclosed%26q%3Da%20b"
        );
    }
}
