//! Thread resolution (docs/contract.md, "Mail"): which ticket an inbound message
//! belongs to, in the documented order, with the reason recorded.
//!
//! The facts (which ids are known, whether a token verified, whether the sender
//! may use a subject tag) are looked up by the caller; the decision is pure.

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;

use super::ids::{EmailAddress, MessageId, TicketId};
use super::mail::InboundMail;
use super::token::{self, ReplyToken};

/// How a message was matched to its ticket; recorded in the ingest log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThreadReason {
    /// An In-Reply-To id the gateway has seen or sent.
    InReplyTo(MessageId),
    /// A References id the gateway has seen or sent.
    References(MessageId),
    /// This message's own id was named by a message that arrived earlier: a
    /// thread delivered out of order still lands on one ticket.
    ReferencedBy(MessageId),
    /// A valid signed reply address in To/Cc/Delivered-To.
    ReplyToken(ReplyToken),
    /// `[tag #id]` in the subject, from someone who may comment there.
    SubjectTag(TicketId),
    New,
}

impl ThreadReason {
    pub fn code(&self) -> &'static str {
        match self {
            ThreadReason::InReplyTo(_) => "in_reply_to",
            ThreadReason::References(_) => "references",
            ThreadReason::ReferencedBy(_) => "referenced_by",
            ThreadReason::ReplyToken(_) => "reply_token",
            ThreadReason::SubjectTag(_) => "subject_tag",
            ThreadReason::New => "new",
        }
    }

    /// The code with its evidence, e.g. `in_reply_to <a@b>`.
    pub fn describe(&self) -> String {
        match self {
            ThreadReason::InReplyTo(id)
            | ThreadReason::References(id)
            | ThreadReason::ReferencedBy(id) => {
                format!("{} {id}", self.code())
            }
            ThreadReason::ReplyToken(t) => format!("reply_token {}.{}", t.ticket, t.user),
            ThreadReason::SubjectTag(t) => format!("subject_tag #{t}"),
            ThreadReason::New => "new".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadDecision {
    /// `None`: the message starts a new ticket.
    pub ticket: Option<TicketId>,
    pub reason: ThreadReason,
}

/// What the caller looked up for one message.
#[derive(Debug, Clone, Default)]
pub struct ThreadFacts {
    /// Ticket of every id (ancestors and the message's own) the gateway knows.
    pub known: HashMap<MessageId, TicketId>,
    /// The first valid reply token among the recipients, if any.
    pub token: Option<ReplyToken>,
    /// The subject-tagged ticket, only if it exists and the sender may comment on it.
    pub tagged: Option<TicketId>,
}

/// Resolves in order: (1) known ancestors (In-Reply-To first, then References
/// from the most recent), then the message's own id named by an earlier
/// message; (2) reply token; (3) subject tag; (4) new.
pub fn resolve(mail: &InboundMail, facts: &ThreadFacts) -> ThreadDecision {
    for id in mail.ancestors() {
        if let Some(&ticket) = facts.known.get(&id) {
            let reason = if mail.in_reply_to.contains(&id) {
                ThreadReason::InReplyTo(id)
            } else {
                ThreadReason::References(id)
            };
            return ThreadDecision {
                ticket: Some(ticket),
                reason,
            };
        }
    }
    if let Some(id) = &mail.message_id
        && let Some(&ticket) = facts.known.get(id)
    {
        return ThreadDecision {
            ticket: Some(ticket),
            reason: ThreadReason::ReferencedBy(id.clone()),
        };
    }
    if let Some(token) = facts.token {
        return ThreadDecision {
            ticket: Some(token.ticket),
            reason: ThreadReason::ReplyToken(token),
        };
    }
    if let Some(ticket) = facts.tagged {
        return ThreadDecision {
            ticket: Some(ticket),
            reason: ThreadReason::SubjectTag(ticket),
        };
    }
    ThreadDecision {
        ticket: None,
        reason: ThreadReason::New,
    }
}

/// The first recipient address (Delivered-To, To, Cc) carrying a valid token.
pub fn find_token(mail: &InboundMail, support: &EmailAddress, secret: &[u8]) -> Option<ReplyToken> {
    mail.delivered_to
        .iter()
        .chain(mail.to.iter().map(|m| &m.address))
        .chain(mail.cc.iter().map(|m| &m.address))
        .find_map(|addr| token::verify(support, secret, addr).ok())
}

/// Any `[<word> #<id>]`; the word is compared with the configured tag in
/// code, so no regex is compiled per message (or per tag).
static ANY_TAG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\[\s*([^\[\]#]*?)\s*#\s*(\d{1,18})\s*\]").expect("static regex"));

fn is_tag(found: &str, tag: &str) -> bool {
    let tag = tag.trim();
    found.eq_ignore_ascii_case(tag) || found.to_lowercase() == tag.to_lowercase()
}

/// The ticket id of the first `[<tag> #<id>]` in a subject.
pub fn subject_tag(subject: &str, tag: &str) -> Option<TicketId> {
    ANY_TAG
        .captures_iter(subject)
        .find(|c| is_tag(&c[1], tag))?
        .get(2)?
        .as_str()
        .parse()
        .ok()
}

static REPLY_PREFIX: LazyLock<Regex> = LazyLock::new(|| {
    // Reply and forward prefixes of common clients and languages, possibly repeated
    // or numbered ("Re[2]:"), with ASCII or full-width colons.
    Regex::new(
        r"(?i)^\s*(?:(?:re|fwd?|aw|wg|sv|vs|antw|doorst|tr|rv|réf|ref|odp|pd|enc|res|ynt|vl|vá|Отв|Ответ|Пер|回复|答复|转发|回覆|轉寄|返信|転送)\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*)+",
    )
    .expect("static regex")
});

/// A new ticket's subject: reply/forward prefixes and any ticket tags removed.
pub fn ticket_subject(subject: &str, tag: &str) -> String {
    let untagged = ANY_TAG.replace_all(subject, |c: &regex::Captures| {
        if is_tag(&c[1], tag) {
            " ".to_string()
        } else {
            c[0].to_string()
        }
    });
    let stripped = REPLY_PREFIX.replace(untagged.trim(), "");
    let cleaned = stripped.split_whitespace().collect::<Vec<_>>().join(" ");
    if cleaned.is_empty() {
        "(no subject)".to_string()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(headers: &str) -> InboundMail {
        InboundMail::parse(format!("From: a@customer.test\n{headers}\n\nx\n").as_bytes()).unwrap()
    }

    fn id(s: &str) -> MessageId {
        MessageId::parse(s).unwrap()
    }

    #[test]
    fn resolution_follows_the_documented_order() {
        let known = HashMap::from([(id("<root@x>"), 1), (id("<mid@x>"), 2), (id("<own@x>"), 3)]);
        let token = Some(ReplyToken { ticket: 4, user: 9 });
        let cases: Vec<(&str, &str, ThreadFacts, Option<TicketId>, &str)> = vec![
            (
                "in-reply-to wins",
                "In-Reply-To: <mid@x>\nReferences: <root@x> <mid@x>",
                ThreadFacts {
                    known: known.clone(),
                    token,
                    tagged: Some(5),
                },
                Some(2),
                "in_reply_to",
            ),
            (
                "latest reference first",
                "References: <root@x> <mid@x>",
                ThreadFacts {
                    known: known.clone(),
                    ..Default::default()
                },
                Some(2),
                "references",
            ),
            (
                "unknown in-reply-to falls back to references",
                "In-Reply-To: <nope@x>\nReferences: <root@x>",
                ThreadFacts {
                    known: known.clone(),
                    ..Default::default()
                },
                Some(1),
                "references",
            ),
            (
                "own id referenced earlier",
                "Message-ID: <own@x>",
                ThreadFacts {
                    known: known.clone(),
                    ..Default::default()
                },
                Some(3),
                "referenced_by",
            ),
            (
                "token before tag",
                "In-Reply-To: <nope@x>",
                ThreadFacts {
                    known: HashMap::new(),
                    token,
                    tagged: Some(5),
                },
                Some(4),
                "reply_token",
            ),
            (
                "tag last",
                "Subject: x",
                ThreadFacts {
                    tagged: Some(5),
                    ..Default::default()
                },
                Some(5),
                "subject_tag",
            ),
            (
                "nothing known is new",
                "References: <zzz@x>",
                ThreadFacts::default(),
                None,
                "new",
            ),
        ];
        for (name, headers, facts, ticket, reason) in cases {
            let decision = resolve(&mail(headers), &facts);
            assert_eq!(
                (decision.ticket, decision.reason.code()),
                (ticket, reason),
                "{name}"
            );
        }
    }

    #[test]
    fn subject_tags_are_found_case_insensitively() {
        assert_eq!(subject_tag("Re: [Support #12] Login", "Support"), Some(12));
        assert_eq!(subject_tag("RE: [support#7]", "Support"), Some(7));
        assert_eq!(subject_tag("[Sales #7] x", "Support"), None);
        assert_eq!(subject_tag("[Support #] x", "Support"), None);
        assert_eq!(
            subject_tag("[Support #99999999999999999999999]", "Support"),
            None
        );
    }

    #[test]
    fn new_ticket_subjects_lose_prefixes_and_tags() {
        let cases = [
            ("Re: Fwd: Printer on fire", "Printer on fire"),
            ("AW: WG: Drucker", "Drucker"),
            ("[Support #1] Login page", "Login page"),
            ("RE[2]: Hello", "Hello"),
            ("返信：ログイン", "ログイン"),
            ("Regarding Re: this", "Regarding Re: this"),
            ("", "(no subject)"),
        ];
        for (input, expected) in cases {
            assert_eq!(ticket_subject(input, "Support"), expected, "{input}");
        }
    }

    #[test]
    fn tokens_are_found_in_any_recipient_header() {
        let support = EmailAddress::parse("support@example.test").unwrap();
        let addr = token::reply_address(&support, b"k", 3, 4);
        for headers in [
            format!("To: {addr}"),
            format!("Cc: {addr}"),
            format!("Delivered-To: {addr}"),
        ] {
            assert_eq!(
                find_token(&mail(&headers), &support, b"k"),
                Some(ReplyToken { ticket: 3, user: 4 }),
                "{headers}"
            );
        }
        assert_eq!(
            find_token(&mail(&format!("To: {addr}")), &support, b"other"),
            None
        );
    }
}
