//! Tests on single lines (quote marks, separators, code) and the code-block
//! pass, shared by the header and signature readers.

use super::*;

/// Gmail's invisible tracking glyph, alone on a line.
const GMAIL_SPACER: char = '\u{1427}';

/// The longest prefix of `line` of at most `max` bytes, cut on a char boundary.
pub(super) fn head(line: &str, max: usize) -> &str {
    if line.len() <= max {
        return line;
    }
    let mut end = max;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    &line[..end]
}

pub(super) fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

/// `>` after at most three spaces, or a Supercite citation of one to three
/// capitals (`C>`, `JD> `). Longer names (`Richard>`) are too often text.
pub(super) fn is_quote_line(line: &str) -> bool {
    let spaces = line.bytes().take_while(|&b| b == b' ').count();
    if spaces <= 3 && line.as_bytes().get(spaces) == Some(&b'>') {
        return true;
    }
    let caps = line.bytes().take_while(u8::is_ascii_uppercase).count();
    (1..=3).contains(&caps)
        && line.as_bytes().get(caps) == Some(&b'>')
        && matches!(line.as_bytes().get(caps + 1), None | Some(b' '))
}

/// The text of a quoted line without its quote marks.
pub(super) fn dequote(line: &str) -> &str {
    line.trim_start_matches(['>', ' ', '\t'])
}

/// A Python prompt (`>>> x`), which looks like a third-level quote.
pub(super) fn is_prompt(line: &str) -> bool {
    line.strip_prefix(">>> ")
        .is_some_and(|rest| !rest.starts_with('>') && !rest.trim().is_empty())
}

pub(super) fn is_delimiter(line: &str) -> bool {
    let t = line.trim();
    if t.chars().all(|c| c == GMAIL_SPACER) && !t.is_empty() {
        return true;
    }
    let mut chars = t.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    "-_=*~+#.•─━".contains(first) && t.chars().count() >= 3 && chars.all(|c| c == first)
}

pub(super) fn is_underscores(line: &str) -> bool {
    let t = line.trim();
    t.len() >= 3 && t.bytes().all(|b| b == b'_')
}

pub(super) fn is_marker(line: &str) -> bool {
    let t = line.trim().trim_matches('*').trim();
    t == MARKER || (t.contains(MARKER) && t.len() <= MARKER.len() + 8 && !t.starts_with('>'))
}

pub(super) fn has_letters(text: &str) -> bool {
    text.chars()
        .any(|c| c.is_alphanumeric() && c != GMAIL_SPACER)
}

/// Lines inside fenced code (```` ``` ```` or `~~~`) or indented by a tab or
/// four spaces: never quotes, headers or signatures.
pub(super) fn code_lines(lines: &[&str]) -> Vec<bool> {
    fn fence(line: &str) -> Option<(u8, usize)> {
        let spaces = line.bytes().take_while(|&b| b == b' ').count();
        if spaces > 3 {
            return None;
        }
        let rest = &line.as_bytes()[spaces..];
        let c = *rest.first()?;
        if c != b'`' && c != b'~' {
            return None;
        }
        let n = rest.iter().take_while(|&&b| b == c).count();
        (n >= 3).then_some((c, n))
    }
    let mut code: Vec<bool> = lines
        .iter()
        .map(|l| l.starts_with('\t') || l.starts_with("    "))
        .collect();
    // Pair fences; an opening fence that never closes is text, and the scan
    // resumes after it (a bounded number of times, so this stays linear).
    let mut from = 0;
    for _ in 0..8 {
        let mut open: Option<(usize, u8, usize)> = None;
        for (i, line) in lines.iter().enumerate().skip(from) {
            let Some((c, n)) = fence(line) else { continue };
            match open {
                Some((start, oc, on))
                    if oc == c && n >= on && line.trim().bytes().all(|b| b == c) =>
                {
                    code[start..=i].iter_mut().for_each(|x| *x = true);
                    open = None;
                }
                Some(_) => {}
                None => open = Some((i, c, n)),
            }
        }
        match open {
            Some((start, _, _)) => from = start + 1,
            None => break,
        }
    }
    code
}

/// A link wrapped out of the quoted line above it: `<http://…>` or
/// `(http://…)` alone (a stray ` >` after it), or the end of a link the line
/// above opened (`> see (http://a.test/x` / `y=1)`). Clients wrap long quoted
/// lines without repeating the `>`.
pub(super) fn is_link_continuation(line: &str, above: &str) -> bool {
    let t = line.trim();
    let core = t
        .strip_suffix(" >")
        .unwrap_or(t)
        .trim_end_matches(['.', ',', ';']);
    if core.is_empty() || core.len() > MAX_CLASSIFIED_LINE || core.contains(char::is_whitespace) {
        return false;
    }
    let bracketed = (core.starts_with("<http") && core.ends_with('>'))
        || (core.starts_with("(http") && core.ends_with(')'));
    bracketed || (core.ends_with([')', '>']) && opens_link(above))
}

/// Whether `line` ends inside a bracketed link (`(http://a.test/x` with no
/// `)` after it).
fn opens_link(line: &str) -> bool {
    let mut from = line.len().saturating_sub(MAX_CLASSIFIED_LINE);
    while !line.is_char_boundary(from) {
        from += 1;
    }
    let tail = &line[from..];
    let open = [("(http", ')'), ("<http", '>')]
        .iter()
        .filter_map(|(o, c)| tail.rfind(o).map(|at| (at, *c)))
        .max();
    open.is_some_and(|(at, close)| !tail[at..].contains(close))
}
