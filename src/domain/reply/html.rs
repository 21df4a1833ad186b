//! Replies in HTML bodies: the Outlook and Yahoo containers of the original
//! message, then the converted text read like a text body.

use super::*;

/// Elements of HTML clients after which everything is the original message
/// (Outlook desktop, web and mobile; Yahoo). Quotes in `<blockquote>` (Gmail,
/// Apple Mail, Thunderbird) need no cut here: they come out of the text
/// conversion as `>` lines and are read like any text quote, inline answers
/// between them included.
const HTML_CUTS: [&str; 7] = [
    "id=\"appendonsend\"",
    "id=\"divrplyfwdmsg\"",
    "id=\"x_divrplyfwdmsg\"",
    "yahoo_quoted",
    "border-top:solid #e1e1e1",
    "border-top:solid #b5c4df",
    "border-top: solid #e1e1e1",
];

/// Splits an HTML body. The structure is used where it is unambiguous (the
/// Outlook and Yahoo containers of the original); the rest is converted to text
/// and read like a text body.
pub fn extract_html(html: &str) -> Extracted {
    extract_html_from(html, &Sender::default())
}

/// [`extract_html`] of a body from `sender` (see [`super::extract_text_from`]).
pub fn extract_html_from(html: &str, sender: &Sender) -> Extracted {
    let lower = html.to_ascii_lowercase();
    let cut = HTML_CUTS
        .iter()
        .filter_map(|needle| lower.find(needle))
        .min()
        .and_then(|at| lower[..at].rfind('<'));
    if let Some(cut) = cut {
        let theirs = crate::domain::mail::html_to_text(&html[cut..]);
        let first = theirs.lines().find(|l| !is_blank(l)).unwrap_or("");
        if !is_forward(head(first, MAX_CLASSIFIED_LINE)) {
            let mut got =
                extract_converted(&crate::domain::mail::html_to_text(&html[..cut]), sender);
            let theirs = theirs.trim();
            if !theirs.is_empty() {
                got.quoted = Some(match got.quoted.take() {
                    Some(q) => format!("{q}\n\n{theirs}"),
                    None => theirs.to_string(),
                });
            }
            return got;
        }
    }
    extract_converted(&crate::domain::mail::html_to_text(html), sender)
}

/// Reads converted HTML: its link footnotes (`[1]: https://…`, all at the end)
/// are set aside first, since after a quote they would read as an inline
/// answer, then each goes back to the part that refers to it.
fn extract_converted(text: &str, sender: &Sender) -> Extracted {
    static FOOTNOTE: LazyLock<Regex> = LazyLock::new(|| re(r"^\[(\d{1,5})\]: \S"));
    static REFERENCE: LazyLock<Regex> = LazyLock::new(|| re(r"\]\[(\d{1,5})\]"));
    let lines: Vec<&str> = text.lines().collect();
    let mut body_end = lines.len();
    while body_end > 0
        && (is_blank(lines[body_end - 1])
            || FOOTNOTE.is_match(head(lines[body_end - 1], MAX_CLASSIFIED_LINE)))
    {
        body_end -= 1;
    }
    let notes: Vec<&str> = lines[body_end..]
        .iter()
        .copied()
        .filter(|l| !is_blank(l))
        .collect();
    let mut got = extract_text_from(&lines[..body_end].join("\n"), sender);
    // The references of each part, gathered once (a message may hold
    // thousands of links: no search of the reply per footnote).
    let refs = |text: &str| -> HashSet<String> {
        REFERENCE
            .captures_iter(text)
            .filter_map(|c| c.get(1).map(|m| m.as_str().to_string()))
            .collect()
    };
    let in_reply = refs(&got.reply);
    let in_signature = refs(got.signature.as_deref().unwrap_or(""));
    let (mut reply, mut signature, mut quoted) = (Vec::new(), Vec::new(), Vec::new());
    for note in notes {
        let number = FOOTNOTE
            .captures(head(note, MAX_CLASSIFIED_LINE))
            .and_then(|c| c.get(1))
            .map_or("", |m| m.as_str());
        if in_reply.contains(number) {
            reply.push(note);
        } else if in_signature.contains(number) {
            signature.push(note);
        } else {
            quoted.push(note);
        }
    }
    let append = |target: &mut String, notes: Vec<&str>| {
        if !notes.is_empty() {
            if !target.is_empty() {
                target.push_str("\n\n");
            }
            target.push_str(&notes.join("\n"));
        }
    };
    if !got.reply.is_empty() {
        append(&mut got.reply, reply);
    } else {
        quoted.extend(reply);
    }
    if let Some(sig) = got.signature.as_mut() {
        append(sig, signature);
    } else {
        quoted.extend(signature);
    }
    if !quoted.is_empty() {
        let mut q = got.quoted.take().unwrap_or_default();
        append(&mut q, quoted);
        got.quoted = Some(q);
    }
    got
}
