//! Look-alike identities: an address or display name written to
//! pass for someone else's. Auto-registration takes both from From, so a
//! Cyrillic `аlice@customer.test` would become a second "Alice Anders", and
//! `"Sam Staff (Example Support)"` would comment under a staff name.
//!
//! The checks follow Unicode TS #39 in small: a string may use one script
//! (or Latin with the Japanese scripts, §5.2 "Highly Restrictive"), and a
//! string wholly in a script whose letters look Latin (Cyrillic, Greek) is
//! refused when every letter of it has a Latin twin (§4 whole-script
//! confusables). Digits and punctuation belong to no script.

use super::clean::has_invisible;
use super::ids::EmailAddress;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Script {
    Latin,
    Cyrillic,
    Greek,
    Japanese,
    Other,
}

fn script(c: char) -> Option<Script> {
    if !c.is_alphabetic() {
        return None;
    }
    Some(match c as u32 {
        0x0041..=0x024F | 0x1E00..=0x1EFF => Script::Latin,
        0x0370..=0x03FF | 0x1F00..=0x1FFF => Script::Greek,
        0x0400..=0x052F => Script::Cyrillic,
        0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xFF66..=0xFF9F => Script::Japanese,
        _ => Script::Other,
    })
}

/// The Latin letter a Cyrillic or Greek letter passes for (TR #39
/// confusables, the lowercase ones that matter in addresses and names).
fn latin_twin(c: char) -> Option<char> {
    Some(match c {
        'а' => 'a',
        'в' => 'b',
        'с' => 'c',
        'ԁ' => 'd',
        'е' | 'ё' => 'e',
        'һ' => 'h',
        'і' => 'i',
        'ј' => 'j',
        'к' => 'k',
        'ӏ' => 'l',
        'м' => 'm',
        'п' => 'n',
        'о' => 'o',
        'р' => 'p',
        'ԛ' => 'q',
        'г' => 'r',
        'ѕ' => 's',
        'т' => 't',
        'у' => 'y',
        'ш' => 'w',
        'х' => 'x',
        'α' => 'a',
        'β' => 'b',
        'ε' => 'e',
        'η' => 'n',
        'ι' => 'i',
        'κ' => 'k',
        'ν' => 'v',
        'ο' => 'o',
        'ρ' => 'p',
        'τ' => 't',
        'υ' => 'u',
        'χ' => 'x',
        'ω' => 'w',
        _ => return None,
    })
}

/// Whether one label (a local part or a domain label) mixes scripts or is
/// wholly made of Latin look-alikes.
fn confusable_label(label: &str) -> bool {
    let mut seen: Option<Script> = None;
    let mut all_twins = true;
    let mut letters = 0usize;
    for c in label.chars() {
        let Some(s) = script(c) else { continue };
        letters += 1;
        seen = match seen {
            None => Some(s),
            Some(prev) if prev == s => Some(s),
            // Japanese is written with Latin letters beside it (TR #39 §5.2).
            Some(Script::Latin) if s == Script::Japanese => Some(Script::Japanese),
            Some(Script::Japanese) if s == Script::Latin => Some(Script::Japanese),
            Some(_) => return true,
        };
        all_twins &= latin_twin(c.to_lowercase().next().unwrap_or(c)).is_some();
    }
    letters > 0 && matches!(seen, Some(Script::Cyrillic | Script::Greek)) && all_twins
}

/// Whether `address` is refused for auto-registration: a mixed-script or
/// whole-script-confusable local part or domain label, or one holding an
/// invisible character or a combining mark (`clean::has_invisible`:
/// `user<U+200B>@customer.test` shows as an existing user's address, and is
/// refused rather than folded onto it). Plain ASCII never is.
pub fn confusable_address(address: &EmailAddress) -> bool {
    let (local, domain) = (address.local_part(), address.domain());
    if local.is_ascii() && domain.is_ascii() {
        return false;
    }
    has_invisible(local)
        || has_invisible(domain)
        || confusable_label(local)
        || domain.split('.').any(confusable_label)
}

/// Whether a display name is written as an address (`"staff@example.test"
/// <new@customer.test>`): an `@` (or a full-width or small one) with a
/// dotted domain after it. Shown as a name, it would pass for that address's
/// owner; such a name is not taken (the address speaks for the person).
pub fn name_is_address(name: &str) -> bool {
    name.match_indices(['@', '\u{FF20}', '\u{FE6B}'])
        .any(|(at, sign)| {
            let domain: String = name[at + sign.len()..]
                .trim_start()
                .chars()
                // Up to the next at sign too: each character is read once.
                .take_while(|c| !c.is_whitespace() && !"<>()[],;\"'@\u{FF20}\u{FE6B}".contains(*c))
                .collect();
            let labels: Vec<&str> = domain.split(['.', '\u{FF0E}', '\u{3002}']).collect();
            labels.len() >= 2 && labels.iter().all(|l| l.chars().any(char::is_alphanumeric))
        })
}

/// A name as compared: lowercase, Latin twins for look-alike letters, and
/// only letters and digits, so "Sam  Staff", "SAM STAFF" and "Sаm Staff"
/// (Cyrillic а) all read "samstaff".
fn skeleton(name: &str) -> String {
    name.chars()
        .flat_map(char::to_lowercase)
        .map(|c| latin_twin(c).unwrap_or(c))
        .filter(|c| c.is_alphanumeric())
        .collect()
}

/// Whether a display name from From claims one of `protected` names (the
/// support name, each staff member's name): it contains one of them.
pub fn claims_name<'a>(name: &str, protected: impl IntoIterator<Item = &'a str>) -> bool {
    let name = skeleton(name);
    protected.into_iter().any(|p| {
        let p = skeleton(p);
        !p.is_empty() && name.contains(&p)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_refused_for_auto_registration() {
        let cases = [
            ("plain ASCII", "alice@customer.test", false),
            (
                "Cyrillic a in a Latin local part",
                "\u{430}lice@customer.test",
                true,
            ),
            (
                "Greek o in a Latin domain",
                "alice@cust\u{3bf}mer.test",
                true,
            ),
            (
                "wholly Cyrillic look-alikes",
                "\u{430}\u{440}\u{435}@customer.test",
                true,
            ),
            (
                "wholly Cyrillic, not look-alikes",
                "\u{438}\u{432}\u{430}\u{43d}@customer.test",
                false,
            ),
            (
                "Japanese with Latin",
                "\u{5c71}\u{7530}taro@customer.test",
                false,
            ),
            (
                "Japanese kana and kanji",
                "\u{3084}\u{307e}\u{3060}\u{592a}\u{90ce}@customer.test",
                false,
            ),
            ("accented Latin", "jos\u{e9}@customer.test", false),
            ("zero-width space", "alice\u{200b}@customer.test", true),
            (
                "right-to-left override",
                "alice\u{202e}@customer.test",
                true,
            ),
            ("combining accent", "jose\u{301}@customer.test", true),
            (
                "zero-width joiner in the domain",
                "alice@custo\u{200d}mer.test",
                true,
            ),
            (
                "Latin and Cyrillic in different labels",
                "ivan@\u{43f}\u{440}\u{438}\u{432}\u{435}\u{442}.test",
                false,
            ),
        ];
        for (name, address, expected) in cases {
            let address = EmailAddress::parse(address).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(confusable_address(&address), expected, "{name}");
        }
    }

    #[test]
    fn display_names_written_as_addresses() {
        let cases = [
            ("a name", "Alice Anders", false),
            ("an address", "staff@example.test", true),
            ("an address in brackets", "Sam (sam@example.test)", true),
            ("full-width at sign", "staff\u{ff20}example.test", true),
            ("small at sign", "staff\u{fe6b}example.test", true),
            ("spaced", "support @ example.test", true),
            ("an at without a domain", "Dana @ Site A", false),
            ("a handle", "@dana", false),
            ("an at and a word", "Team@Home", false),
        ];
        for (name, display, expected) in cases {
            assert_eq!(name_is_address(display), expected, "{name}");
        }
    }

    #[test]
    fn display_names_that_claim_someone_else() {
        let protected = ["Example Support", "Sam Staff", "Dave Lead"];
        let cases = [
            ("a name of one's own", "Alice Anders", false),
            (
                "the support name in brackets",
                "Sam Staff (Example Support)",
                true,
            ),
            ("a staff name", "sam staff", true),
            (
                "a staff name with look-alike letters",
                "S\u{430}m St\u{430}ff",
                true,
            ),
            ("spacing and case", "EXAMPLE   support team", true),
            ("a name that merely starts alike", "Samuel Stafford", false),
            ("empty", "", false),
        ];
        for (name, display, expected) in cases {
            assert_eq!(claims_name(display, protected), expected, "{name}");
        }
    }
}
