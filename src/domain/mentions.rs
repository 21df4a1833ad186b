//! @mentions (docs/contract.md, "Mail"): `@alice` (a unique local part or display
//! handle) or `@alice@customer.test`, found only in what the person wrote now:
//! not in quoted lines, code, or email addresses.

use std::collections::HashMap;

use super::clean;
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

/// Characters of a handle as written. An invisible character or a
/// combining mark belongs to the handle it touches (`@ali<U+200B>ce` is one
/// handle, not `@ali`), and no person's handle has one (`clean`), so such a
/// mention names nobody and is reported back rather than resolved as
/// something the reader did not see.
fn handle_char(c: char) -> bool {
    c.is_alphanumeric()
        || matches!(c, '.' | '_' | '-')
        || clean::is_invisible(c)
        || clean::is_combining_mark(c)
}

/// Characters that make an `@` part of an address rather than a mention.
fn address_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-' | '@' | '/' | ':')
}

/// The most mentions one message may carry: only these are resolved (and
/// their people told); the rest are counted and reported to the author in one
/// line. A mail of 160,000 handles must not hold the writer for minutes.
pub const MAX_MENTIONS: usize = 20;

/// The mentions of a text: the first `MAX_MENTIONS` distinct ones, in order of
/// first appearance, and how many more there were.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    pub mentions: Vec<Mention>,
    /// Mentions past the cap (each occurrence not among `mentions`), not resolved.
    pub more: usize,
}

impl Found {
    fn add(&mut self, mention: Mention) {
        if self.mentions.contains(&mention) {
            return;
        }
        if self.mentions.len() < MAX_MENTIONS {
            self.mentions.push(mention);
        } else {
            self.more += 1;
        }
    }
}

/// The byte index after the run of `keep` characters starting at `from`.
fn run_end(line: &str, from: usize, keep: fn(char) -> bool) -> usize {
    line[from..]
        .char_indices()
        .find(|&(_, c)| !keep(c))
        .map_or(line.len(), |(at, _)| from + at)
}

/// Mentions in order of first appearance, each once, at most `MAX_MENTIONS`.
/// One pass over the text, nothing copied but the handles found.
pub fn find(text: &str) -> Found {
    let mut found = Found::default();
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
        let bytes = line.as_bytes();
        let mut in_code = false;
        let mut previous: Option<char> = None;
        let mut i = 0;
        while let Some(c) = line[i..].chars().next() {
            if c == '`' {
                in_code = !in_code;
            } else if c == '@' && !in_code && !previous.is_some_and(address_char) {
                let start = i + 1;
                let mut end = run_end(line, start, handle_char);
                // A sentence may end right after the handle.
                while end > start && matches!(bytes[end - 1], b'.' | b'-' | b'_') {
                    end -= 1;
                }
                if end > start {
                    let handle = line[start..end].to_lowercase();
                    let mut address = None;
                    let mut next = end;
                    if bytes.get(end) == Some(&b'@') {
                        let mut d = run_end(line, end + 1, handle_char);
                        while d > end + 1 && matches!(bytes[d - 1], b'.' | b'-') {
                            d -= 1;
                        }
                        let domain = &line[end + 1..d];
                        if let Ok(a) = EmailAddress::parse(&format!("{handle}@{domain}")) {
                            address = Some(a);
                            next = d;
                        }
                    }
                    found.add(Mention { handle, address });
                    previous = line[..next].chars().next_back();
                    i = next;
                    continue;
                }
            }
            previous = Some(c);
            i += c.len_utf8();
        }
    }
    found
}

/// The words of a display name as a mention can carry them: lowercased,
/// without the characters `find` stops at (`O'Brien` → `obrien`), so every
/// handle made from a name reads back as itself when typed after an `@`.
fn name_words(name: &str) -> Vec<String> {
    name.split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|&c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-'))
                .flat_map(char::to_lowercase)
                .collect::<String>()
                .trim_matches(['.', '-', '_'])
                .to_string()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// The display handles that name a person: the first name and the whole
/// name joined with dots (`Alice Anders` → `alice`, `alice.anders`).
/// Resolution (`Directory`) and the `@` autocomplete (`handle`) both use
/// these, so a suggested handle always finds its person.
fn name_handles(name: &str) -> Vec<String> {
    let words = name_words(name);
    let mut out = Vec::new();
    if let Some(first) = words.first() {
        out.push(first.clone());
    }
    if words.len() > 1 {
        out.push(words.join("."));
    }
    out
}

/// The handle that names one person for the `@` autocomplete: their
/// whole name joined with dots (`alice.anders`), or the address's local
/// part when they have no name.
pub fn handle(name: &str, email: &EmailAddress) -> String {
    name_handles(name)
        .pop()
        .unwrap_or_else(|| email.local_part().to_lowercase())
}

/// A registered user the author may mention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub user: UserId,
    pub email: EmailAddress,
    pub name: String,
}

impl Candidate {
    /// Display handles (`name_handles`).
    fn handles(&self) -> Vec<String> {
        name_handles(&self.name)
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

/// The users an author may mention, indexed once by local part and by display
/// handle, so that each mention is resolved by lookups, not by a scan.
pub struct Directory {
    candidates: Vec<Candidate>,
    by_local: HashMap<String, Vec<usize>>,
    by_handle: HashMap<String, Vec<usize>>,
}

impl Directory {
    pub fn new(candidates: Vec<Candidate>) -> Self {
        let mut by_local: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_handle: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, c) in candidates.iter().enumerate() {
            by_local
                .entry(c.email.local_part().to_string())
                .or_default()
                .push(i);
            for handle in c.handles() {
                by_handle.entry(handle).or_default().push(i);
            }
        }
        Self {
            candidates,
            by_local,
            by_handle,
        }
    }

    /// Resolves a mention. A local part that matches exactly one user wins
    /// over display handles.
    pub fn resolve(&self, mention: &Mention) -> Resolution {
        if let Some(address) = &mention.address {
            return self
                .candidates
                .iter()
                .find(|c| c.email == *address)
                .map_or(Resolution::NotFound, |c| Resolution::Found(c.user));
        }
        let matches = self
            .by_local
            .get(&mention.handle)
            .or_else(|| self.by_handle.get(&mention.handle))
            .map_or(&[][..], Vec::as_slice);
        match matches {
            [] => Resolution::NotFound,
            [one] => Resolution::Found(self.candidates[*one].user),
            many => {
                let mut emails: Vec<EmailAddress> = many
                    .iter()
                    .map(|&i| self.candidates[i].email.clone())
                    .collect();
                emails.sort();
                emails.dedup();
                if emails.len() == 1 {
                    Resolution::Found(self.candidates[many[0]].user)
                } else {
                    Resolution::Ambiguous(emails)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handles(text: &str) -> Vec<String> {
        find(text).mentions.iter().map(Mention::text).collect()
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
            (
                "an invisible character is part of the handle",
                "@ali\u{200b}ce please",
                vec!["@ali\u{200b}ce"],
            ),
            (
                "a combining mark too",
                "@alice\u{301} hi",
                vec!["@alice\u{301}"],
            ),
        ];
        for (name, text, expected) in cases {
            assert_eq!(handles(text), expected, "{name}");
        }
    }

    #[test]
    fn a_text_carries_at_most_max_mentions_and_counts_the_rest() {
        let mut text: String = (0..5_000).map(|i| format!("@user{i} ")).collect();
        text.push_str("\n@user0 @user3 again");
        let found = find(&text);
        let kept: Vec<String> = found.mentions.iter().map(Mention::text).collect();
        let expected: Vec<String> = (0..MAX_MENTIONS).map(|i| format!("@user{i}")).collect();
        assert_eq!(kept, expected);
        assert_eq!(found.more, 5_000 - MAX_MENTIONS);
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
        let m = |t: &str| find(t).mentions.remove(0);
        let resolve = |m: &Mention, candidates: &Vec<Candidate>| {
            Directory::new(candidates.clone()).resolve(m)
        };
        let cases: Vec<(&str, Resolution)> = vec![
            ("@bob", Resolution::Found(2)),
            ("@Bob", Resolution::Found(2)),
            ("@alice", Resolution::Found(1)), // the local part wins over Alice Smith's first name
            ("@alice.smith", Resolution::Found(3)),
            ("@dave@example.test", Resolution::Found(4)),
            ("@carol", Resolution::NotFound),
            ("@carol@other.test", Resolution::NotFound),
            ("@brown", Resolution::NotFound),
            ("@ali\u{200b}ce", Resolution::NotFound),
            ("@bo\u{200d}b", Resolution::NotFound),
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

    #[test]
    fn every_suggested_handle_reads_back_and_finds_its_person() {
        let people = [
            ("Alice Anders", "alice@customer.test"),
            ("Seán O'Brien", "sean@customer.test"),
            ("Anne-Marie Dupont", "amd@customer.test"),
            ("J. R. R. Tolkien", "jrr@customer.test"),
            ("山田 太郎", "yamada@customer.test"),
            ("", "nameless@customer.test"),
            ("'quoted'", "quoted@customer.test"),
        ];
        let candidates: Vec<Candidate> = people
            .iter()
            .enumerate()
            .map(|(i, (name, email))| Candidate {
                user: i as UserId,
                email: EmailAddress::parse(email).unwrap(),
                name: name.to_string(),
            })
            .collect();
        let directory = Directory::new(candidates.clone());
        for c in &candidates {
            let suggested = handle(&c.name, &c.email);
            let found = find(&format!("Hi @{suggested}, please look."));
            assert_eq!(found.mentions.len(), 1, "{suggested}");
            assert_eq!(found.mentions[0].handle, suggested, "{:?}", c.name);
            assert_eq!(
                directory.resolve(&found.mentions[0]),
                Resolution::Found(c.user),
                "{suggested}"
            );
        }
    }
}
