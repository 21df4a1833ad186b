//! @mentions (DESIGN "@mentions"): `@alice` (a unique local part or display
//! handle) or `@alice@customer.test`, found only in what the person wrote now:
//! not in quoted lines, code, or email addresses.

use super::ids::{EmailAddress, UserId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mention {
    /// What followed the `@`, lowercased (`alice`).
    pub handle: String,
    /// The full form `@alice@customer.test`.
    pub address: Option<EmailAddress>,
}

impl Mention {
    /// As written, for notices ("@alice is not in your organization").
    pub fn text(&self) -> String {
        match &self.address {
            Some(a) => format!("@{a}"),
            None => format!("@{}", self.handle),
        }
    }
}

fn handle_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// Characters that make an `@` part of an address rather than a mention.
fn address_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-' | '@' | '/' | ':')
}

/// Mentions in order of first appearance, each once.
pub fn find(text: &str) -> Vec<Mention> {
    let mut out: Vec<Mention> = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fenced = !fenced;
            continue;
        }
        // Quoted history, fenced or indented code: not something the author said to anyone.
        if fenced || trimmed.starts_with('>') || line.starts_with("    ") || line.starts_with('\t')
        {
            continue;
        }
        let mut in_code = false;
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == '`' {
                in_code = !in_code;
            } else if c == '@' && !in_code && (i == 0 || !address_char(chars[i - 1])) {
                let start = i + 1;
                let mut end = start;
                while end < chars.len() && handle_char(chars[end]) {
                    end += 1;
                }
                // A sentence may end right after the handle.
                while end > start && matches!(chars[end - 1], '.' | '-' | '_') {
                    end -= 1;
                }
                if end > start {
                    let handle: String =
                        chars[start..end].iter().collect::<String>().to_lowercase();
                    let mut address = None;
                    let mut next = end;
                    if end < chars.len() && chars[end] == '@' {
                        let mut d = end + 1;
                        while d < chars.len() && handle_char(chars[d]) {
                            d += 1;
                        }
                        while d > end + 1 && matches!(chars[d - 1], '.' | '-') {
                            d -= 1;
                        }
                        let domain: String = chars[end + 1..d].iter().collect();
                        if let Ok(a) = EmailAddress::parse(&format!("{handle}@{domain}")) {
                            address = Some(a);
                            next = d;
                        }
                    }
                    let mention = Mention { handle, address };
                    if !out.contains(&mention) {
                        out.push(mention);
                    }
                    i = next;
                    continue;
                }
            }
            i += 1;
        }
    }
    out
}

/// A registered user the author may mention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub user: UserId,
    pub email: EmailAddress,
    pub name: String,
}

impl Candidate {
    /// Display handles: the first name and the whole name joined with dots
    /// (`Alice Anders` → `alice`, `alice.anders`).
    fn handles(&self) -> Vec<String> {
        let words: Vec<String> = self
            .name
            .split_whitespace()
            .map(str::to_lowercase)
            .collect();
        let mut out = Vec::new();
        if let Some(first) = words.first() {
            out.push(first.clone());
        }
        if words.len() > 1 {
            out.push(words.join("."));
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    Found(UserId),
    /// Several people answer to the handle; the author must be more precise.
    Ambiguous(Vec<EmailAddress>),
    /// Nobody the author may mention: "not in your organization" to a customer,
    /// "no registered user …" to staff, who may mention anyone.
    NotFound,
}

/// Resolves a mention among the users the author may mention. A local part
/// that matches exactly one user wins over display handles.
pub fn resolve(mention: &Mention, candidates: &[Candidate]) -> Resolution {
    if let Some(address) = &mention.address {
        return candidates
            .iter()
            .find(|c| c.email == *address)
            .map_or(Resolution::NotFound, |c| Resolution::Found(c.user));
    }
    let by_local: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| c.email.local_part() == mention.handle)
        .collect();
    let matches: Vec<&Candidate> = if by_local.is_empty() {
        candidates
            .iter()
            .filter(|c| c.handles().contains(&mention.handle))
            .collect()
    } else {
        by_local
    };
    match matches.as_slice() {
        [] => Resolution::NotFound,
        [one] => Resolution::Found(one.user),
        many => {
            let mut emails: Vec<EmailAddress> = many.iter().map(|c| c.email.clone()).collect();
            emails.sort();
            emails.dedup();
            if emails.len() == 1 {
                Resolution::Found(many[0].user)
            } else {
                Resolution::Ambiguous(emails)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handles(text: &str) -> Vec<String> {
        find(text).iter().map(Mention::text).collect()
    }

    #[test]
    fn mentions_are_found_only_where_the_author_addresses_someone() {
        let cases: Vec<(&str, &str, Vec<&str>)> = vec![
            ("plain", "Hi @alice, can you check?", vec!["@alice"]),
            ("start of line", "@bob please look", vec!["@bob"]),
            (
                "full address",
                "cc @dave@example.test here",
                vec!["@dave@example.test"],
            ),
            ("end of sentence", "Thanks @sam.", vec!["@sam"]),
            (
                "dotted handle",
                "@alice.anders knows",
                vec!["@alice.anders"],
            ),
            ("twice is once", "@bob and again @Bob", vec!["@bob"]),
            ("several", "@alice @bob", vec!["@alice", "@bob"]),
            (
                "email address is not a mention",
                "write to alice@customer.test",
                vec![],
            ),
            ("quoted line", "> @alice said so", vec![]),
            ("indented code", "    let x = @alice;", vec![]),
            (
                "fenced code",
                "```\n@decorator\n```\nafter @bob",
                vec!["@bob"],
            ),
            ("inline code", "use `@Override` here", vec![]),
            ("url", "see https://x.test/@alice", vec![]),
            ("lone at", "meet @ noon", vec![]),
            ("japanese", "@山田 さん、確認お願いします", vec!["@山田"]),
        ];
        for (name, text, expected) in cases {
            assert_eq!(handles(text), expected, "{name}");
        }
    }

    fn c(user: UserId, email: &str, name: &str) -> Candidate {
        Candidate {
            user,
            email: EmailAddress::parse(email).unwrap(),
            name: name.into(),
        }
    }

    #[test]
    fn resolution_cases() {
        let candidates = vec![
            c(1, "alice@customer.test", "Alice Anders"),
            c(2, "bob@customer.test", "Bob Brown"),
            c(3, "a.smith@customer.test", "Alice Smith"),
            c(4, "dave@example.test", "Dave Lead"),
        ];
        let m = |t: &str| find(t).remove(0);
        let cases: Vec<(&str, Resolution)> = vec![
            ("@bob", Resolution::Found(2)),
            ("@Bob", Resolution::Found(2)),
            ("@alice", Resolution::Found(1)), // the local part wins over Alice Smith's first name
            ("@alice.smith", Resolution::Found(3)),
            ("@dave@example.test", Resolution::Found(4)),
            ("@carol", Resolution::NotFound),
            ("@carol@other.test", Resolution::NotFound),
            ("@brown", Resolution::NotFound),
        ];
        for (text, expected) in cases {
            assert_eq!(resolve(&m(text), &candidates), expected, "{text}");
        }
        let twins = vec![c(5, "kim@a.test", "Kim One"), c(6, "kim@b.test", "Kim Two")];
        assert_eq!(
            resolve(&m("@kim"), &twins),
            Resolution::Ambiguous(vec![
                EmailAddress::parse("kim@a.test").unwrap(),
                EmailAddress::parse("kim@b.test").unwrap()
            ])
        );
    }
}
