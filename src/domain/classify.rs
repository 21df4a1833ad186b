//! Automatic mail: what ticketgate must never answer or turn into a ticket
//! (docs/contract.md, "Mail": automatic mail is never acted on). Acting on an auto-reply is how
//! two robots end up mailing each other forever.

use super::ids::EmailAddress;
use super::mail::InboundMail;

/// Why a message is automatic; the `as_str` form is the recorded reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Automatic {
    /// RFC 3834 §5: `Auto-Submitted` other than `no`.
    AutoSubmitted,
    /// `Precedence: bulk | junk | list | auto_reply`.
    Precedence,
    /// `X-Autoreply` / `X-Autorespond`, set by several vacation responders.
    AutoreplyHeader,
    /// RFC 6522 `multipart/report`: a delivery or read report.
    DeliveryReport,
    /// `MAILER-DAEMON@` or `postmaster@`: bounces sent without a report part.
    MailerDaemon,
    /// `Return-Path: <>` (RFC 5321 §4.5.5: notifications use the null path).
    NullReturnPath,
    /// Our own notification, looped back (Message-ID form, From, or X-Loop).
    OwnMail,
}

impl Automatic {
    pub fn as_str(self) -> &'static str {
        match self {
            Automatic::AutoSubmitted => "auto_submitted",
            Automatic::Precedence => "precedence_bulk",
            Automatic::AutoreplyHeader => "autoreply_header",
            Automatic::DeliveryReport => "delivery_report",
            Automatic::MailerDaemon => "mailer_daemon",
            Automatic::NullReturnPath => "null_return_path",
            Automatic::OwnMail => "own_mail",
        }
    }
}

/// What identifies the gateway's own outgoing mail.
#[derive(Debug, Clone)]
pub struct OwnIdentity {
    /// The support address and any other address the gateway sends from.
    pub addresses: Vec<EmailAddress>,
    /// `support.domain`: the domain of every Message-ID the gateway generates.
    pub domain: String,
}

/// The prefix of every Message-ID the gateway generates: `<tg.…@domain>`.
pub const OWN_MESSAGE_ID_PREFIX: &str = "tg.";

impl OwnIdentity {
    pub fn is_own_message_id(&self, id: &super::ids::MessageId) -> bool {
        id.bare().starts_with(OWN_MESSAGE_ID_PREFIX)
            && id.domain() == self.domain.to_ascii_lowercase()
    }

    fn is_own_address(&self, address: &EmailAddress) -> bool {
        self.addresses.iter().any(|own| {
            own == address
                || (own.domain() == address.domain()
                    && address
                        .local_part()
                        .split_once('+')
                        .is_some_and(|(l, _)| l == own.local_part()))
        })
    }
}

/// Classifies a message; `None` means a person wrote it and it is processed.
///
/// Own mail is checked first: a looped notification is also auto-submitted, and
/// the more specific reason tells the operator more.
pub fn classify(mail: &InboundMail, own: &OwnIdentity) -> Option<Automatic> {
    let auto = &mail.auto;
    if mail
        .message_id
        .as_ref()
        .is_some_and(|id| own.is_own_message_id(id))
        || mail.sender().is_some_and(|s| own.is_own_address(s))
        || auto
            .x_loop
            .iter()
            .any(|v| own.addresses.iter().any(|a| v.contains(a.as_str())))
    {
        return Some(Automatic::OwnMail);
    }
    if auto.delivery_report {
        return Some(Automatic::DeliveryReport);
    }
    if auto.auto_submitted.as_deref().is_some_and(|v| v != "no") {
        return Some(Automatic::AutoSubmitted);
    }
    if auto.x_autoreply || auto.x_autorespond {
        return Some(Automatic::AutoreplyHeader);
    }
    if auto
        .precedence
        .as_deref()
        .is_some_and(|p| matches!(p, "bulk" | "junk" | "list" | "auto_reply" | "auto-reply"))
    {
        return Some(Automatic::Precedence);
    }
    if mail.sender().is_some_and(|s| {
        let local = s.local_part();
        local.eq_ignore_ascii_case("mailer-daemon") || local.eq_ignore_ascii_case("postmaster")
    }) {
        return Some(Automatic::MailerDaemon);
    }
    if auto.null_return_path {
        return Some(Automatic::NullReturnPath);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own() -> OwnIdentity {
        OwnIdentity {
            addresses: vec![EmailAddress::parse("support@example.test").unwrap()],
            domain: "example.test".into(),
        }
    }

    fn classify_raw(headers: &str) -> Option<Automatic> {
        let raw = format!("{headers}\nSubject: x\n\nbody\n");
        classify(&InboundMail::parse(raw.as_bytes()).unwrap(), &own())
    }

    #[test]
    fn automatic_mail_is_recognised() {
        let cases = [
            ("person", "From: alice@customer.test", None),
            (
                "auto-submitted no",
                "From: alice@customer.test\nAuto-Submitted: no",
                None,
            ),
            (
                "vacation",
                "From: alice@customer.test\nAuto-Submitted: auto-replied",
                Some(Automatic::AutoSubmitted),
            ),
            (
                "generated",
                "From: alice@customer.test\nAuto-Submitted: auto-generated",
                Some(Automatic::AutoSubmitted),
            ),
            (
                "precedence bulk",
                "From: news@customer.test\nPrecedence: bulk",
                Some(Automatic::Precedence),
            ),
            (
                "precedence junk",
                "From: news@customer.test\nPrecedence: junk",
                Some(Automatic::Precedence),
            ),
            (
                "precedence list",
                "From: news@customer.test\nPrecedence: list",
                Some(Automatic::Precedence),
            ),
            (
                "precedence normal",
                "From: news@customer.test\nPrecedence: first-class",
                None,
            ),
            (
                "x-autoreply",
                "From: alice@customer.test\nX-Autoreply: yes",
                Some(Automatic::AutoreplyHeader),
            ),
            (
                "x-autorespond",
                "From: alice@customer.test\nX-Autorespond: on",
                Some(Automatic::AutoreplyHeader),
            ),
            (
                "mailer-daemon",
                "From: MAILER-DAEMON@mx.test",
                Some(Automatic::MailerDaemon),
            ),
            (
                "postmaster",
                "From: postmaster@customer.test",
                Some(Automatic::MailerDaemon),
            ),
            (
                "null return path",
                "Return-Path: <>\nFrom: alice@customer.test",
                Some(Automatic::NullReturnPath),
            ),
            (
                "report",
                "From: x@mx.test\nContent-Type: multipart/report; report-type=delivery-status; boundary=b",
                Some(Automatic::DeliveryReport),
            ),
            (
                "our message id",
                "From: alice@customer.test\nMessage-ID: <tg.123@example.test>",
                Some(Automatic::OwnMail),
            ),
            (
                "staff message id is not ours",
                "From: sam@example.test\nMessage-ID: <abc@example.test>",
                None,
            ),
            (
                "from support",
                "From: support@example.test",
                Some(Automatic::OwnMail),
            ),
            (
                "from a reply address",
                "From: support+1.2.aaaaaaaaaaaaaaaa@example.test",
                Some(Automatic::OwnMail),
            ),
            (
                "x-loop",
                "From: alice@customer.test\nX-Loop: support@example.test",
                Some(Automatic::OwnMail),
            ),
            (
                "suppress is still human",
                "From: alice@customer.test\nX-Auto-Response-Suppress: All",
                None,
            ),
        ];
        for (name, headers, expected) in cases {
            assert_eq!(classify_raw(headers), expected, "{name}");
        }
    }
}
