//! The one place that decides which characters people may not be shown or
//! identified by. Mail intake and the portal both call it, so a subject, a
//! file name or an address is cleaned the same way whichever door it came in.
//!
//! Two kinds of character are kept out:
//! - invisible ones: format characters (Unicode general category Cf, which
//!   includes the bidirectional controls of UAX #9 that let
//!   `invoice<U+202E>fdp.exe` show as "invoiceexe.pdf", zero-width spaces and
//!   joiners, the soft hyphen and the tag characters), variation selectors,
//!   the combining grapheme joiner and the Hangul fillers. They draw nothing,
//!   so `user<U+200B>@customer.test` reads as `user@customer.test`.
//! - in identifiers only (addresses, handles): combining marks as well. RFC
//!   6531 §3.3 lets a local part be UTF-8, but `alice<U+0301>` and a precomposed
//!   `alicé` are different addresses that look the same; no mail provider hands
//!   out either, so an address with one is refused, never folded onto another.
//!
//! The tables are small and explicit (Unicode 16 Cf list and the blocks of
//! combining marks that attach to Latin letters); no crate is needed for them.

/// Characters that draw nothing: Unicode general category Cf, plus the
/// invisible characters of other categories (variation selectors, the
/// combining grapheme joiner, Mongolian vowel separator, Hangul fillers,
/// Khmer inherent vowels). Bidirectional controls are among them.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c as u32,
        0x00AD              // soft hyphen
        | 0x034F            // combining grapheme joiner
        | 0x0600..=0x0605   // Arabic number signs
        | 0x061C            // Arabic letter mark (bidi)
        | 0x06DD
        | 0x070F
        | 0x0890..=0x0891
        | 0x08E2
        | 0x115F..=0x1160   // Hangul choseong and jungseong fillers
        | 0x17B4..=0x17B5   // Khmer inherent vowels
        | 0x180B..=0x180F   // Mongolian free variation selectors, vowel separator
        | 0x200B..=0x200F   // zero-width space, non-joiner, joiner; LRM, RLM
        | 0x202A..=0x202E   // bidi embeddings and overrides
        | 0x2060..=0x2064   // word joiner, invisible operators
        | 0x2066..=0x206F   // bidi isolates, deprecated format characters
        | 0x3164            // Hangul filler
        | 0xFE00..=0xFE0F   // variation selectors
        | 0xFEFF            // zero-width no-break space (BOM)
        | 0xFFA0            // halfwidth Hangul filler
        | 0xFFF9..=0xFFFB   // interlinear annotation
        | 0x110BD
        | 0x110CD
        | 0x13430..=0x1343F // Egyptian hieroglyph format controls
        | 0x1BCA0..=0x1BCA3 // shorthand format controls
        | 0x1D173..=0x1D17A // musical symbol format controls
        | 0xE0000..=0xE007F // tags
        | 0xE0100..=0xE01EF // variation selectors supplement
    )
}

/// Combining marks that attach to Latin letters and change how they look
/// without being a letter of their own (combining diacritical marks and
/// their extensions, supplement, marks for symbols, half marks).
pub fn is_combining_mark(c: char) -> bool {
    matches!(
        c as u32,
        0x0300..=0x036F | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F
    )
}

/// Whether an identifier (an address, a local part, a handle) holds a
/// character that must never be in one: a control character, an invisible
/// one or a combining mark. Such an identifier is refused, not cleaned: two
/// addresses that look the same must not become one user.
pub fn has_invisible(text: &str) -> bool {
    text.chars()
        .any(|c| c.is_control() || is_invisible(c) || is_combining_mark(c))
}

/// One line of text as people will see it (a display name, a header value):
/// whitespace runs and control characters become one space, invisible
/// characters go, and the ends are trimmed.
pub fn line(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for word in input.split(|c: char| c.is_whitespace() || c.is_control()) {
        let mut word = word.chars().filter(|c| !is_invisible(*c)).peekable();
        if word.peek().is_some() {
            if !out.is_empty() {
                out.push(' ');
            }
            out.extend(word);
        }
    }
    out
}

/// The longest name a person may give themselves: room for any real name,
/// and a greeting or a `From` display name stays one readable line.
pub const NAME_MAX_CHARS: usize = 100;

/// Why a name someone typed was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameProblem {
    #[error("a name is needed")]
    Empty,
    #[error("a name is at most {NAME_MAX_CHARS} characters")]
    TooLong,
}

/// A person's name as typed into a form, as it is stored and shown: one
/// [`line`] (as names from mail are cleaned), not empty, at most
/// [`NAME_MAX_CHARS`] characters; a longer one is refused rather than cut,
/// since the person is there to choose a shorter one.
pub fn person_name(input: &str) -> Result<String, NameProblem> {
    let name = line(input);
    if name.is_empty() {
        Err(NameProblem::Empty)
    } else if name.chars().count() > NAME_MAX_CHARS {
        Err(NameProblem::TooLong)
    } else {
        Ok(name)
    }
}

/// A subject is cut to this many characters (the last one an ellipsis): it
/// is stored with the ticket and repeated in every notification's subject,
/// and a 1 MB one made every mail about its ticket 1 MB.
pub const SUBJECT_MAX_CHARS: usize = 250;

/// A subject as it is stored and shown: one [`line`], at most
/// `SUBJECT_MAX_CHARS` characters (a longer one ends in "…").
pub fn subject(input: &str) -> String {
    let subject = line(input);
    match subject.char_indices().nth(SUBJECT_MAX_CHARS - 1) {
        Some((cut, _)) if subject[cut..].chars().nth(1).is_some() => {
            format!("{}…", subject[..cut].trim_end())
        }
        _ => subject,
    }
}

/// The most bytes of a file name: what common file systems hold (ext4, NTFS
/// in UTF-16 units, APFS), so a saved attachment keeps the name it is shown with.
pub const FILE_NAME_MAX_BYTES: usize = 255;

/// The longest extension kept whole when a long name is cut.
const MAX_EXTENSION_BYTES: usize = 16;

/// The name given to a file whose own name cleans away to nothing.
pub const FILE_NAME_FALLBACK: &str = "file";

/// A file name from a stranger made safe to show and to save: no path (only
/// what follows the last `/` or `\`), one [`line`], no leading or trailing
/// dots or spaces (`..`, `.bashrc`, `name.`), at most `FILE_NAME_MAX_BYTES`
/// bytes cut at a character boundary with a short extension kept. Never
/// empty: [`FILE_NAME_FALLBACK`] when nothing is left.
pub fn file_name(input: &str) -> String {
    file_name_if_any(input).unwrap_or_else(|| FILE_NAME_FALLBACK.to_string())
}

/// [`file_name`], or `None` when nothing is left of the name (the caller may
/// know a better fallback, such as one from the content type).
pub fn file_name_if_any(input: &str) -> Option<String> {
    let base = input.rsplit(['/', '\\']).next().unwrap_or(input);
    let name = line(base);
    let name = name.trim_matches(|c: char| c == '.' || c == ' ');
    if name.is_empty() {
        return None;
    }
    if name.len() <= FILE_NAME_MAX_BYTES {
        return Some(name.to_string());
    }
    let extension = name
        .rfind('.')
        .map(|dot| &name[dot..])
        .filter(|e| e.len() <= MAX_EXTENSION_BYTES && !e.contains(' '))
        .unwrap_or("");
    let stem = &name[..name.len() - extension.len()];
    let mut cut = FILE_NAME_MAX_BYTES - extension.len();
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    Some(format!("{}{extension}", stem[..cut].trim_end()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typed_name_is_one_clean_line_within_its_length() {
        let long = "あ".repeat(NAME_MAX_CHARS);
        let cases: &[(&str, &str, Result<&str, NameProblem>)] = &[
            ("kept", "Alice Anders", Ok("Alice Anders")),
            (
                "trimmed, runs of space one",
                "  Alice \t\n Anders ",
                Ok("Alice Anders"),
            ),
            (
                "invisible characters go",
                "Al\u{200B}ice\u{202E}",
                Ok("Alice"),
            ),
            ("Japanese", "山田 太郎", Ok("山田 太郎")),
            ("empty", "", Err(NameProblem::Empty)),
            (
                "only space and invisibles",
                " \u{200B} \u{FEFF}",
                Err(NameProblem::Empty),
            ),
            ("at the limit", long.as_str(), Ok(long.as_str())),
        ];
        for (case, input, want) in cases {
            assert_eq!(person_name(input).as_deref(), want.as_deref(), "{case}");
        }
        let over = format!("{long}x");
        assert_eq!(person_name(&over), Err(NameProblem::TooLong));
    }

    #[test]
    fn identifiers_with_invisible_characters_or_combining_marks() {
        let cases = [
            ("plain", "user@customer.test", false),
            ("accented, precomposed", "jos\u{e9}@customer.test", false),
            ("Japanese", "\u{5c71}\u{7530}@customer.test", false),
            ("zero-width space", "user\u{200b}@customer.test", true),
            ("zero-width joiner", "us\u{200d}er", true),
            ("word joiner", "user\u{2060}", true),
            ("right-to-left override", "user\u{202e}", true),
            ("left-to-right mark", "user\u{200e}", true),
            ("first strong isolate", "\u{2068}user", true),
            ("Arabic letter mark", "user\u{061c}", true),
            ("soft hyphen", "us\u{ad}er", true),
            ("Mongolian vowel separator", "user\u{180e}", true),
            ("combining grapheme joiner", "user\u{34f}", true),
            ("variation selector 16", "user\u{fe0f}", true),
            ("variation selector 256", "user\u{e01ef}", true),
            ("tag letter", "user\u{e0061}", true),
            ("byte order mark", "\u{feff}user", true),
            ("Hangul filler", "user\u{3164}", true),
            ("combining acute accent", "jose\u{301}", true),
            ("combining mark extended", "user\u{1ab0}", true),
            ("combining mark supplement", "user\u{1dc0}", true),
            ("combining mark for symbols", "user\u{20d0}", true),
            ("combining half mark", "user\u{fe20}", true),
            ("control character", "us\u{7}er", true),
        ];
        for (name, text, expected) in cases {
            assert_eq!(has_invisible(text), expected, "{name}");
        }
    }

    #[test]
    fn lines_are_one_line_without_invisible_characters() {
        let cases = [
            (
                "bidi overrides",
                "a\u{202A}b\u{202B}c\u{202C}d\u{202D}e\u{202E}f",
                "abcdef",
            ),
            (
                "bidi isolates",
                "a\u{2066}b\u{2067}c\u{2068}d\u{2069}e",
                "abcde",
            ),
            ("marks", "left\u{200E} \u{200F} right\u{061C}", "left right"),
            ("right-to-left text kept", "مرحبا  Hello", "مرحبا Hello"),
            (
                "zero-width characters",
                "Ali\u{200b}ce\u{200d} An\u{ad}ders",
                "Alice Anders",
            ),
            ("tags and selectors", "Hi\u{e0041}\u{fe0f}", "Hi"),
            (
                "line breaks and tabs",
                " one\r\n\ttwo \u{0}three ",
                "one two three",
            ),
            ("combining accents kept", "Jose\u{301}", "Jose\u{301}"),
            ("only invisible", "\u{200b}\u{2060}", ""),
        ];
        for (name, input, expected) in cases {
            assert_eq!(line(input), expected, "{name}");
        }
    }

    #[test]
    fn subjects_are_cleaned_and_cut() {
        assert_eq!(subject("Re:\u{202e} invoice\n paid"), "Re: invoice paid");
        let exact = "y".repeat(SUBJECT_MAX_CHARS);
        assert_eq!(subject(&exact), exact, "at the limit: kept");
        let long = "x".repeat(SUBJECT_MAX_CHARS + 1);
        let cut = subject(&long);
        assert_eq!(cut.chars().count(), SUBJECT_MAX_CHARS);
        assert!(cut.ends_with('…'));
        // Invisible characters do not count against the limit.
        let padded = format!("{}{}", "\u{200b}".repeat(1000), "z");
        assert_eq!(subject(&padded), "z");
    }

    #[test]
    fn file_names_are_safe_to_show_and_save() {
        let long_stem = "a".repeat(300);
        let long_cut = format!("{}.pdf", "a".repeat(FILE_NAME_MAX_BYTES - 4));
        let wide = "\u{3042}".repeat(100); // 300 bytes, 3 each
        let wide_cut = format!("{}.txt", "\u{3042}".repeat(83));
        let cases = [
            ("plain", "report.pdf".to_string(), "report.pdf".to_string()),
            ("unix path", "../../etc/passwd".into(), "passwd".into()),
            ("windows path", "C:\\Users\\x\\a.doc".into(), "a.doc".into()),
            (
                "right-to-left override",
                "invoice\u{202E}fdp.exe".into(),
                "invoicefdp.exe".into(),
            ),
            (
                "zero-width space",
                "in\u{200b}voice.pdf".into(),
                "invoice.pdf".into(),
            ),
            (
                "control characters",
                "a\u{0}b\nc.txt".into(),
                "a b c.txt".into(),
            ),
            ("dot-dot", "..".into(), FILE_NAME_FALLBACK.into()),
            ("hidden file", ".bashrc".into(), "bashrc".into()),
            ("trailing dot", "name. ".into(), "name".into()),
            ("empty", "".into(), FILE_NAME_FALLBACK.into()),
            (
                "only invisible",
                "\u{202e}\u{200b}".into(),
                FILE_NAME_FALLBACK.into(),
            ),
            (
                "path ending in a slash",
                "dir/".into(),
                FILE_NAME_FALLBACK.into(),
            ),
            ("long, extension kept", format!("{long_stem}.pdf"), long_cut),
            (
                "long, multibyte, cut at a character",
                format!("{wide}.txt"),
                wide_cut,
            ),
            (
                "long, no extension",
                long_stem.clone(),
                "a".repeat(FILE_NAME_MAX_BYTES),
            ),
        ];
        for (name, input, expected) in cases {
            let got = file_name(&input);
            assert_eq!(got, expected, "{name}");
            assert!(
                got.len() <= FILE_NAME_MAX_BYTES,
                "{name}: {} bytes",
                got.len()
            );
        }
        assert_eq!(file_name_if_any("/"), None);
    }
}
