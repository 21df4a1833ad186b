//! Who sent the message, as far as signatures go: the forms their name takes
//! when they sign ("Roman", "- Roman Lebedev", "-RL", "roman").

/// The sender of a message (its From), for signatures without a `-- ` above
/// them: a last line that is the sender's own name, initials or mailbox name
/// is a signature; the same line from anyone else may be content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sender {
    /// The display name's words, lowercased ("roman", "lebedev").
    words: Vec<String>,
    /// The first letters of those words ("rl"), when there are two or more.
    initials: String,
    /// The address's local part and its segments ("roman.lebedev", "roman",
    /// "lebedev"), lowercased; none for role mailboxes such as `support@`.
    local: Vec<String>,
}

/// Mailboxes that name a function, not a person: a line saying "Support" is
/// not the sender signing.
const ROLE_MAILBOXES: &[&str] = &[
    "admin", "contact", "help", "hello", "info", "mail", "noreply", "no-reply", "office", "sales",
    "service", "support", "team",
];

/// Capitalised words that are no one's initials on a line of their own.
const SHOUTED_WORDS: &[&str] = &[
    "OK", "NO", "SO", "HI", "IT", "OR", "AM", "PM", "US", "UK", "EU", "PS", "FYI", "ASAP", "TIA",
    "BTW", "IMO", "THX", "TY",
];

/// The most words of a display name kept (longer ones are not names).
const MAX_NAME_WORDS: usize = 6;

impl Sender {
    /// From a display name and an address, either of which may be missing.
    pub fn new(name: Option<&str>, address: Option<&str>) -> Self {
        let mut sender = Sender::default();
        if let Some(name) = name {
            sender.words = name
                .split(|c: char| c.is_whitespace() || c == ',')
                .map(|w| {
                    w.trim_matches(|c: char| !c.is_alphanumeric())
                        .to_lowercase()
                })
                .filter(|w| !w.is_empty() && !w.contains('@'))
                .take(MAX_NAME_WORDS)
                .collect();
            if sender.words.len() >= 2 {
                sender.initials = sender
                    .words
                    .iter()
                    .filter_map(|w| w.chars().next())
                    .collect();
            }
            // One-letter words ("J. Smith") only make initials.
            sender.words.retain(|w| w.chars().count() >= 2);
        }
        if let Some(local) = address.and_then(|a| a.rsplit_once('@')).map(|(l, _)| l) {
            let local = local.to_lowercase();
            if !ROLE_MAILBOXES.contains(&local.as_str()) {
                let segments: Vec<&str> = local.split(['.', '_', '-', '+']).collect();
                if segments.len() > 1 {
                    sender.local.extend(
                        segments
                            .iter()
                            .filter(|s| {
                                s.chars().count() >= 3 && s.chars().all(char::is_alphabetic)
                            })
                            .map(|s| s.to_string()),
                    );
                }
                sender.local.push(local);
            }
        }
        sender
    }

    /// The From of a parsed message.
    pub fn of(mail: &crate::domain::mail::InboundMail) -> Self {
        mail.from.as_ref().map_or_else(Sender::default, |from| {
            Sender::new(from.name.as_deref(), Some(from.address.as_str()))
        })
    }

    /// `Name <addr>`, `"Last, First" <addr>`, `<addr>`, `addr` or a bare name,
    /// as `extract-reply --from` takes it.
    pub fn parse(from: &str) -> Self {
        let from = from.trim();
        match from.rfind('<') {
            Some(open) if from.ends_with('>') => {
                let name = from[..open].trim().trim_matches('"').trim();
                let address = from[open + 1..from.len() - 1].trim();
                Sender::new(
                    (!name.is_empty()).then_some(name),
                    (!address.is_empty()).then_some(address),
                )
            }
            _ if from.contains('@') && !from.contains(char::is_whitespace) => {
                Sender::new(None, Some(from))
            }
            _ => Sender::new((!from.is_empty()).then_some(from), None),
        }
    }

    /// Whether anything is known to recognise the sender's signature by.
    pub fn is_known(&self) -> bool {
        !self.words.is_empty() || !self.local.is_empty() || !self.initials.is_empty()
    }

    /// Whether `line` is the sender signing: their name or part of it ("Roman",
    /// "Lebedev, Roman", "Roman L."), their initials written as such ("-RL",
    /// "R.L.", "RL"), or their mailbox name ("roman"), after a dash or tilde.
    pub(super) fn is_named_by(&self, line: &str) -> bool {
        let raw = line.trim();
        if !self.is_known() || raw.chars().count() > 60 {
            return false;
        }
        let dashed = raw.starts_with(['-', '–', '—', '~', '/']);
        let core = raw
            .trim_start_matches(['-', '–', '—', '~', '/', '*', '_', ' ', '\t'])
            .trim_end_matches(['.', ',', '!', '*', '_', '~', ' ', '\t']);
        if core.is_empty() {
            return false;
        }
        let lower = core.to_lowercase();
        let words: Vec<&str> = lower
            .split(|c: char| c.is_whitespace() || c == ',')
            .map(|w| w.trim_matches(['.', '\'', '"']))
            .filter(|w| !w.is_empty())
            .collect();
        if words.is_empty() || words.len() > 4 {
            return false;
        }
        // Every word the sender's, or one of their initials; one whole word at least.
        let mut whole = 0;
        let all_theirs = words.iter().all(|w| {
            if self.words.iter().any(|s| s == w) || self.local.iter().any(|s| s == w) {
                whole += 1;
                true
            } else {
                w.chars().count() == 1 && self.initials.contains(*w)
            }
        });
        if all_theirs && whole > 0 {
            return true;
        }
        // Initials alone: marked as such (a dash, dots, capitals), so that "ok"
        // from Olga Kurz stays a word.
        let letters: String = lower.chars().filter(|c| !matches!(c, '.' | ' ')).collect();
        let marked = dashed
            || core.contains('.')
            || (core.chars().all(|c| !c.is_lowercase()) && !SHOUTED_WORDS.contains(&core));
        let n = letters.chars().count();
        marked
            && letters.chars().all(char::is_alphabetic)
            && ((n >= 2 && letters == self.initials)
                || (n == 1 && dashed && self.initials.starts_with(letters.as_str())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_sender_signs_with() {
        let roman = Sender::parse("Roman Lebedev <roman.lebedev@example.test>");
        for line in [
            "Roman",
            "-roman",
            "- Roman",
            "—Roman Lebedev",
            "Lebedev, Roman",
            "Roman L.",
            "-RL",
            "R.L.",
            "RL",
            "~roman",
            "lebedev",
        ] {
            assert!(roman.is_named_by(line), "{line}");
        }
        for line in [
            "Romans",
            "Roman holiday plans",
            "rl is broken",
            "ok",
            "",
            "-",
            "Thanks",
            "R",
        ] {
            assert!(!roman.is_named_by(line), "{line}");
        }
        let olga = Sender::parse("Olga Kurz <info@example.test>");
        assert!(!olga.is_named_by("ok"));
        assert!(!olga.is_named_by("OK"), "a word before initials");
        assert!(olga.is_named_by("-OK"), "initials after a dash");
        assert!(!olga.is_named_by("info"), "a role mailbox is no name");
        let bare = Sender::parse("jdoe@example.test");
        assert!(bare.is_named_by("-jdoe"));
        assert!(!Sender::default().is_named_by("Roman"));
        assert!(Sender::parse("\"Lebedev, Roman\" <r@example.test>").is_named_by("Roman"));
    }
}
