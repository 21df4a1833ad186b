//! What a ticket's history records: one [`Event`] per change, carrying its
//! data. The ticket service records it once; the event row, the CLI's
//! history, the API's `events[]` and the portal all read that one value.
//!
//! Stored as `events.kind` (the wire name) and `events.data` (JSON), in the
//! shapes docs/contract.md ("Interfaces") gives, so rows written by earlier
//! versions read back unchanged: `tests/operator/store_contract.rs`
//! (`events_of_every_kind_read_back_as_written`) holds them to it.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::ids::{CommentId, EmailAddress, MessageId, TicketId};
use super::locale::Locale;
use super::ticket::{Clock, CloseReason, CommentSource, FollowerSource, Priority, Status};
use super::version::Version;

/// One change to a ticket. Serialized adjacently tagged: `kind` is the
/// stored and wire name, `data` the payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum Event {
    TicketCreated {
        subject: String,
        message_id: Option<MessageId>,
    },
    CommentAdded {
        comment: CommentId,
        internal: bool,
        source: CommentSource,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message_id: Option<MessageId>,
        /// How a mail found its ticket (`in_reply_to <id>`, `subject_tag #7`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        thread: Option<String>,
    },
    StatusChanged {
        from: Status,
        to: Status,
        cause: Cause,
        /// Why it was closed, when `to` is `closed` (rows written before
        /// close reasons have none).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<CloseReason>,
    },
    /// `sla_name`, `sla_response` and `sla_resolve` as `[sla.Pn]` said
    /// when it was set (rows from before resolution targets have none).
    PrioritySet {
        priority: Priority,
        #[serde(default)]
        sla_name: String,
        #[serde(default)]
        sla_response: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        sla_resolve: String,
    },
    ReleaseNoted {
        release: Version,
    },
    FollowerAdded {
        email: EmailAddress,
        source: FollowerSource,
    },
    FollowerRemoved {
        email: EmailAddress,
    },
    Mentioned {
        email: EmailAddress,
    },
    OrgAdded {
        org: String,
    },
    OrgRemoved {
        org: String,
    },
    /// A delivery report about one of our notifications.
    RecipientBouncing {
        email: EmailAddress,
        message_id: MessageId,
    },
    /// A staff member took the ticket (or was given it).
    OwnerSet {
        email: EmailAddress,
    },
    /// The ticket has no owner any more; `email` is who owned it.
    OwnerCleared {
        email: EmailAddress,
    },
    /// Ticket `from` was merged into `into`; recorded on both.
    TicketMerged {
        from: TicketId,
        into: TicketId,
    },
    /// A comment moved from one ticket to another; recorded on both.
    CommentMoved {
        comment: CommentId,
        from: TicketId,
        to: TicketId,
    },
    /// An SLA clock reached its warning point (`[sla] warn_at`) before `due`.
    ClockWarned {
        clock: Clock,
        due: String,
    },
    /// An SLA clock passed `due` with its work not done.
    ClockBreached {
        clock: Clock,
        due: String,
    },
    /// An idle rule (`on = "idle"`) sent `template` to the requester.
    ReminderSent {
        rule: String,
        template: String,
    },
    /// A person's data was erased (`ticketgate person erase`): `person` is
    /// the pseudonym they now have; the erased data is not recorded.
    PersonErased {
        person: EmailAddress,
    },
}

impl Event {
    /// The wire name (`events.kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            Event::TicketCreated { .. } => "ticket_created",
            Event::CommentAdded { .. } => "comment_added",
            Event::StatusChanged { .. } => "status_changed",
            Event::PrioritySet { .. } => "priority_set",
            Event::ReleaseNoted { .. } => "release_noted",
            Event::FollowerAdded { .. } => "follower_added",
            Event::FollowerRemoved { .. } => "follower_removed",
            Event::Mentioned { .. } => "mentioned",
            Event::OrgAdded { .. } => "org_added",
            Event::OrgRemoved { .. } => "org_removed",
            Event::RecipientBouncing { .. } => "recipient_bouncing",
            Event::OwnerSet { .. } => "owner_set",
            Event::OwnerCleared { .. } => "owner_cleared",
            Event::TicketMerged { .. } => "ticket_merged",
            Event::CommentMoved { .. } => "comment_moved",
            Event::ClockWarned { .. } => "clock_warned",
            Event::ClockBreached { .. } => "clock_breached",
            Event::ReminderSent { .. } => "reminder_sent",
            Event::PersonErased { .. } => "person_erased",
        }
    }

    /// The payload as stored in `events.data`.
    pub fn data(&self) -> serde_json::Value {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(mut tagged)) => {
                tagged.remove("data").unwrap_or(serde_json::Value::Null)
            }
            // Every variant has fields: serde always gives the tagged object.
            _ => serde_json::Value::Null,
        }
    }
}

impl Event {
    /// What a change announced as a comment says (`source: "system"`),
    /// in `locale`: the comment row keeps the default locale's text for the
    /// JSON, and pages render it again from its event in the reader's own.
    /// `None` for changes not announced in the thread.
    pub fn announcement(&self, locale: Locale) -> Option<String> {
        Some(match (self, locale) {
            (
                Event::PrioritySet {
                    priority,
                    sla_name,
                    sla_response,
                    sla_resolve,
                },
                _,
            ) => match (locale, sla_name.is_empty(), sla_resolve.is_empty()) {
                (Locale::En, true, _) => format!("Priority set to {priority}."),
                (Locale::En, false, true) => {
                    format!(
                        "Priority set to {priority} ({sla_name}): response within {sla_response}."
                    )
                }
                (Locale::En, false, false) => format!(
                    "Priority set to {priority} ({sla_name}): response within {sla_response}, resolution within {sla_resolve}."
                ),
                (Locale::Ja, true, _) => format!("優先度を「{priority}」に設定しました。"),
                (Locale::Ja, false, true) => format!(
                    "優先度を「{priority}（{sla_name}）」に設定しました。回答目標時間は「{sla_response}」です。"
                ),
                (Locale::Ja, false, false) => format!(
                    "優先度を「{priority}（{sla_name}）」に設定しました。回答目標時間は「{sla_response}」、解決目標時間は「{sla_resolve}」です。"
                ),
            },
            (Event::ReleaseNoted { release }, Locale::En) => format!("Fixed in release {release}."),
            (Event::ReleaseNoted { release }, Locale::Ja) => {
                format!("修正はリリース {release} に含まれています。")
            }
            _ => return None,
        })
    }
}

/// An event row as read back: a known event, or one this version cannot
/// read (a kind from a newer version, a payload that no longer parses),
/// kept exactly as stored so that nothing recorded is hidden or rewritten.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    Known(Event),
    Unread {
        kind: String,
        data: serde_json::Value,
    },
}

impl Recorded {
    /// Reads a stored row (`events.kind`, `events.data`).
    pub fn read(kind: &str, data: &str) -> Self {
        let data: serde_json::Value = serde_json::from_str(data).unwrap_or(serde_json::Value::Null);
        let mut tagged = serde_json::Map::new();
        tagged.insert("kind".into(), kind.into());
        tagged.insert("data".into(), data.clone());
        match serde_json::from_value::<Event>(tagged.into()) {
            // Only when it says the same when written again: the JSON shows
            // a row exactly as it was recorded.
            Ok(event) if event.data() == data => Recorded::Known(event),
            _ => Recorded::Unread {
                kind: kind.to_string(),
                data,
            },
        }
    }

    pub fn kind(&self) -> &str {
        match self {
            Recorded::Known(e) => e.kind(),
            Recorded::Unread { kind, .. } => kind,
        }
    }

    pub fn data(&self) -> serde_json::Value {
        match self {
            Recorded::Known(e) => e.data(),
            Recorded::Unread { data, .. } => data.clone(),
        }
    }

    pub fn known(&self) -> Option<&Event> {
        match self {
            Recorded::Known(e) => Some(e),
            Recorded::Unread { .. } => None,
        }
    }
}

/// Why a status changed: an email or API command, or a rule by name.
/// Stored as `"command"` or `"rule: <name>"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Cause {
    Command,
    Rule(String),
    /// A cause this version does not name, kept as recorded.
    Other(String),
}

impl Cause {
    fn parse(text: &str) -> Self {
        match text {
            "command" => Cause::Command,
            _ => match text.strip_prefix("rule: ") {
                Some(rule) => Cause::Rule(rule.to_string()),
                None => Cause::Other(text.to_string()),
            },
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Command => f.write_str("command"),
            Cause::Rule(rule) => write!(f, "rule: {rule}"),
            Cause::Other(text) => f.write_str(text),
        }
    }
}

impl Serialize for Cause {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cause {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Cause::parse(&String::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    fn mid(s: &str) -> MessageId {
        MessageId::parse(s).unwrap()
    }

    /// One of each, with the payload an earlier version wrote for it.
    fn every_kind() -> Vec<(Event, &'static str)> {
        vec![
            (
                Event::TicketCreated {
                    subject: "Printer on fire".into(),
                    message_id: Some(mid("<a@x.test>")),
                },
                r#"{"message_id":"<a@x.test>","subject":"Printer on fire"}"#,
            ),
            (
                Event::TicketCreated {
                    subject: "From the API".into(),
                    message_id: None,
                },
                r#"{"message_id":null,"subject":"From the API"}"#,
            ),
            (
                Event::CommentAdded {
                    comment: 7,
                    internal: false,
                    source: CommentSource::Email,
                    message_id: Some(mid("<b@x.test>")),
                    thread: Some("in_reply_to <a@x.test>".into()),
                },
                r#"{"comment":7,"internal":false,"message_id":"<b@x.test>","source":"email","thread":"in_reply_to <a@x.test>"}"#,
            ),
            (
                Event::CommentAdded {
                    comment: 8,
                    internal: true,
                    source: CommentSource::Api,
                    message_id: None,
                    thread: None,
                },
                r#"{"comment":8,"internal":true,"source":"api"}"#,
            ),
            (
                Event::StatusChanged {
                    from: Status::New,
                    to: Status::Escalated,
                    cause: Cause::Rule("escalate on keyword".into()),
                    reason: None,
                },
                r#"{"cause":"rule: escalate on keyword","from":"new","to":"escalated"}"#,
            ),
            (
                Event::StatusChanged {
                    from: Status::Blocked,
                    to: Status::Closed,
                    cause: Cause::Command,
                    reason: None,
                },
                r#"{"cause":"command","from":"blocked","to":"closed"}"#,
            ),
            (
                Event::StatusChanged {
                    from: Status::Blocked,
                    to: Status::Closed,
                    cause: Cause::Rule("close unanswered".into()),
                    reason: Some(CloseReason::NoResponse),
                },
                r#"{"cause":"rule: close unanswered","from":"blocked","reason":"no_response","to":"closed"}"#,
            ),
            (
                Event::OwnerSet {
                    email: email("sam@example.test"),
                },
                r#"{"email":"sam@example.test"}"#,
            ),
            (
                Event::OwnerCleared {
                    email: email("sam@example.test"),
                },
                r#"{"email":"sam@example.test"}"#,
            ),
            (
                Event::TicketMerged { from: 9, into: 4 },
                r#"{"from":9,"into":4}"#,
            ),
            (
                Event::CommentMoved {
                    comment: 31,
                    from: 9,
                    to: 4,
                },
                r#"{"comment":31,"from":9,"to":4}"#,
            ),
            (
                Event::ClockWarned {
                    clock: Clock::Response,
                    due: "2026-12-08T10:00:00Z".into(),
                },
                r#"{"clock":"response","due":"2026-12-08T10:00:00Z"}"#,
            ),
            (
                Event::ClockBreached {
                    clock: Clock::Resolve,
                    due: "2026-12-08T10:00:00Z".into(),
                },
                r#"{"clock":"resolve","due":"2026-12-08T10:00:00Z"}"#,
            ),
            (
                Event::ReminderSent {
                    rule: "remind the customer".into(),
                    template: "reminder".into(),
                },
                r#"{"rule":"remind the customer","template":"reminder"}"#,
            ),
            (
                Event::PrioritySet {
                    priority: Priority::P2,
                    sla_name: "High".into(),
                    sla_response: "4 hours".into(),
                    sla_resolve: String::new(),
                },
                r#"{"priority":"P2","sla_name":"High","sla_response":"4 hours"}"#,
            ),
            (
                Event::ReleaseNoted {
                    release: Version::parse("v4.2.1").unwrap(),
                },
                r#"{"release":"v4.2.1"}"#,
            ),
            (
                Event::FollowerAdded {
                    email: email("bob@customer.test"),
                    source: FollowerSource::Share,
                },
                r#"{"email":"bob@customer.test","source":"share"}"#,
            ),
            (
                Event::FollowerRemoved {
                    email: email("bob@customer.test"),
                },
                r#"{"email":"bob@customer.test"}"#,
            ),
            (
                Event::Mentioned {
                    email: email("sam@example.test"),
                },
                r#"{"email":"sam@example.test"}"#,
            ),
            (Event::OrgAdded { org: "acme".into() }, r#"{"org":"acme"}"#),
            (
                Event::OrgRemoved { org: "acme".into() },
                r#"{"org":"acme"}"#,
            ),
            (
                Event::RecipientBouncing {
                    email: email("gone@customer.test"),
                    message_id: mid("<n@x.test>"),
                },
                r#"{"email":"gone@customer.test","message_id":"<n@x.test>"}"#,
            ),
        ]
    }

    #[test]
    fn every_kind_writes_the_payload_earlier_versions_wrote_and_reads_it_back() {
        for (event, stored) in every_kind() {
            let written = serde_json::to_string(&event.data()).unwrap();
            assert_eq!(written, stored, "{}", event.kind());
            assert_eq!(
                Recorded::read(event.kind(), stored),
                Recorded::Known(event.clone())
            );
        }
    }

    #[test]
    fn a_row_this_version_cannot_read_is_kept_as_recorded() {
        for (kind, data) in [
            ("sla_breached", r#"{"after":"4 hours"}"#),
            ("status_changed", r#"{"from":"new","to":"archived"}"#),
            ("mentioned", r#"{"email":"a@b.test","extra":1}"#),
            ("org_added", "not json"),
        ] {
            let read = Recorded::read(kind, data);
            assert!(read.known().is_none(), "{kind} {data}");
            assert_eq!(read.kind(), kind);
            let expected: serde_json::Value =
                serde_json::from_str(data).unwrap_or(serde_json::Value::Null);
            assert_eq!(read.data(), expected);
        }
    }

    #[test]
    fn announcements_speak_each_language_and_keep_the_default_text() {
        let set = |name: &str, response: &str| Event::PrioritySet {
            priority: Priority::P2,
            sla_name: name.into(),
            sla_response: response.into(),
            sla_resolve: String::new(),
        };
        // The text earlier versions stored in the comment.
        assert_eq!(
            set("High", "4 hours").announcement(Locale::En).unwrap(),
            "Priority set to P2 (High): response within 4 hours."
        );
        assert_eq!(
            set("", "").announcement(Locale::En).unwrap(),
            "Priority set to P2."
        );
        let release = Event::ReleaseNoted {
            release: Version::parse("5.2 beta").unwrap(),
        };
        assert_eq!(
            release.announcement(Locale::En).unwrap(),
            "Fixed in release 5.2 beta."
        );
        for event in [set("High", "4 hours"), set("", ""), release] {
            let ja = event.announcement(Locale::Ja).unwrap();
            assert!(
                !ja.contains("Priority") && !ja.contains("release"),
                "English on a Japanese page: {ja}"
            );
        }
        assert_eq!(
            Event::OrgAdded { org: "acme".into() }.announcement(Locale::En),
            None
        );
    }

    #[test]
    fn causes_read_back_as_written() {
        for text in ["command", "rule: escalate", "reply"] {
            assert_eq!(Cause::parse(text).to_string(), text);
        }
    }
}
