//! Identifiers that can only be built by parsing, so the rest of the code never
//! handles an unnormalized address or a Message-ID without its angle brackets.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a string is not an identifier of the kind asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("not an email address: {0:?}")]
    Email(String),
    #[error("not a Message-ID: {0:?}")]
    MessageId(String),
}

/// A mailbox address (`local@domain`), lowercased.
///
/// Local parts are case-sensitive in theory (RFC 5321 §2.4) but no mail system a
/// customer uses treats them so; identity comparisons must not depend on how a
/// client capitalised the address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(input: &str) -> Result<Self, IdError> {
        let trimmed = input
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .trim();
        let bad = || IdError::Email(input.chars().take(200).collect());
        let (local, domain) = trimmed.rsplit_once('@').ok_or_else(bad)?;
        let valid_char = |c: char| !c.is_whitespace() && !c.is_control() && !"<>,;\"".contains(c);
        if local.is_empty()
            || domain.is_empty()
            || local.len() > 64
            || domain.len() > 255
            || !local.chars().all(valid_char)
            || !domain.chars().all(|c| valid_char(c) && c != '@')
            || domain.starts_with('.')
            || domain.ends_with('.')
        {
            return Err(bad());
        }
        Ok(Self(trimmed.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn local_part(&self) -> &str {
        self.0.rsplit_once('@').map(|(l, _)| l).unwrap_or("")
    }

    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for EmailAddress {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for EmailAddress {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<EmailAddress> for String {
    fn from(value: EmailAddress) -> Self {
        value.0
    }
}

/// An RFC 5322 §3.6.4 msg-id, always stored and compared with its angle brackets.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MessageId(String);

impl MessageId {
    /// Accepts `<id>` or a bare `id` (mail-parser strips the brackets).
    pub fn parse(input: &str) -> Result<Self, IdError> {
        let inner = input
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .trim();
        if inner.is_empty()
            || inner.len() > 995
            || inner
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
        {
            return Err(IdError::MessageId(input.chars().take(200).collect()));
        }
        Ok(Self(format!("<{inner}>")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id without brackets, as some APIs (lettre, mail-parser) expect.
    pub fn bare(&self) -> &str {
        &self.0[1..self.0.len() - 1]
    }

    /// The part after the last `@`, lowercased; empty when there is none.
    pub fn domain(&self) -> String {
        self.bare()
            .rsplit_once('@')
            .map(|(_, d)| d.to_lowercase())
            .unwrap_or_default()
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for MessageId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<MessageId> for String {
    fn from(value: MessageId) -> Self {
        value.0
    }
}

pub type TicketId = i64;
pub type UserId = i64;
pub type OrgId = i64;
pub type CommentId = i64;

/// An organization's slug: `Customer Site A` → `customer-site-a`.
pub fn slugify(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_lowercased_and_stripped_of_brackets() {
        let a = EmailAddress::parse(" <Alice@Customer.TEST> ").unwrap();
        assert_eq!(a.as_str(), "alice@customer.test");
        assert_eq!(a.local_part(), "alice");
        assert_eq!(a.domain(), "customer.test");
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for bad in [
            "",
            "alice",
            "@x.test",
            "alice@",
            "a b@x.test",
            "a@x.test.",
            "a@b@",
            "a,b@x.test",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn message_ids_keep_their_angle_brackets() {
        assert_eq!(
            MessageId::parse("abc@x.test").unwrap().as_str(),
            "<abc@x.test>"
        );
        assert_eq!(
            MessageId::parse("<abc@x.test>").unwrap().bare(),
            "abc@x.test"
        );
        assert_eq!(MessageId::parse("<abc@X.Test>").unwrap().domain(), "x.test");
        assert!(MessageId::parse("<>").is_err());
        assert!(MessageId::parse("a b@x").is_err());
    }

    #[test]
    fn slugs_follow_the_documented_example() {
        assert_eq!(slugify("Customer Site A"), "customer-site-a");
        assert_eq!(slugify("  ACME, Inc. "), "acme-inc");
        assert_eq!(slugify("Café Zürich"), "café-zürich");
    }
}
