//! Replies in HTML bodies: the Outlook, Yahoo and Zimbra containers of the
//! original message and the signature containers of the reply, then the
//! converted text read like a text body.

use super::*;

/// Elements of HTML clients after which everything is the original message
/// (Outlook desktop, web, mobile and the new Mac client; Yahoo; Zimbra).
/// Quotes in `<blockquote>` (Gmail, Apple Mail, Thunderbird) need no cut here:
/// they come out of the text conversion as `>` lines and are read like any
/// text quote, inline answers between them included.
const HTML_CUTS: &[&str] = &[
    "id=\"appendonsend\"",
    "id=\"mail-editor-reference-message-container\"",
    "id=\"zwchr\"",
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

/// Marks of the element that holds the writer's signature (Gmail, Thunderbird,
/// Outlook desktop and web, Apple Mail, Samsung Email): a signature in HTML
/// has no `-- ` above it.
const SIGNATURE_MARKS: &[&str] = &[
    "gmail_signature",
    "moz-signature",
    "id=\"signature\"",
    "id=\"x_signature\"",
    "id=\"applemailsignature\"",
    "id=\"composer_signature\"",
];

/// [`extract_html`] of a body from `sender` (see [`super::extract_text_from`]).
pub fn extract_html_from(html: &str, sender: &Sender) -> Extracted {
    let lower = html.to_ascii_lowercase();
    let cut = cut_at(&lower);
    // Wholly above the cut (an element running into the original is none).
    let element = signature_element(&lower, cut.unwrap_or(lower.len()))
        .filter(|&(_, end)| cut.is_none_or(|c| end <= c));
    // Not held while the body is converted: a large body is held once less.
    drop(lower);
    if let Some((start, end)) = element {
        let signature = crate::domain::mail::html_to_text(&html[start..end]);
        // Thunderbird writes the `-- ` separator inside its container.
        let signature = signature.trim();
        let signature = signature
            .strip_prefix("--")
            .filter(|rest| rest.starts_with(['\n', ' ']))
            .map_or(signature, str::trim);
        if has_letters(signature) {
            // The element lies above the cut, which moves up by its length.
            let rest = [&html[..start], &html[end..]].concat();
            let mut got = split_html(&rest, cut.map(|c| c - (end - start)), sender);
            if !has_letters(&got.reply) && got.quoted.is_none() {
                // Only a signature: it is the reply.
                got.reply = signature.to_string();
            } else {
                got.signature = Some(match got.signature.take() {
                    Some(more) => format!("{signature}\n\n{more}"),
                    None => signature.to_string(),
                });
            }
            return got;
        }
    }
    split_html(html, cut, sender)
}

/// Where the original message starts (`HTML_CUTS`): the start of the element.
fn cut_at(lower: &str) -> Option<usize> {
    HTML_CUTS
        .iter()
        .filter_map(|needle| lower.find(needle))
        .min()
        .and_then(|at| lower[..at].rfind('<'))
}

/// The signature element of the reply (`SIGNATURE_MARKS`) above `limit` and
/// outside any `<blockquote>` (a quoted message's signature is history): its
/// byte range, start tag to matching end tag. One scan, linear.
fn signature_element(lower: &str, limit: usize) -> Option<(usize, usize)> {
    let region = &lower[..limit];
    let at = SIGNATURE_MARKS
        .iter()
        .filter_map(|m| region.find(m))
        .min()?;
    let open = region[..at].rfind('<')?;
    if region[open..at].contains('>') {
        return None;
    }
    let quoted = region[..open].matches("<blockquote").count();
    if quoted > region[..open].matches("</blockquote").count() {
        return None;
    }
    let name_len = lower[open + 1..]
        .bytes()
        .take_while(u8::is_ascii_alphanumeric)
        .count();
    let tag = &lower[open + 1..open + 1 + name_len];
    if tag.is_empty() {
        return None;
    }
    let boundary = |rest: &str| {
        rest.strip_prefix(tag).is_some_and(|r| {
            r.starts_with(|c: char| c == '>' || c == '/' || c.is_ascii_whitespace())
        })
    };
    let mut depth = 0usize;
    let mut i = open;
    while let Some(next) = lower[i..].find('<').map(|o| i + o) {
        let rest = &lower[next + 1..];
        if let Some(closing) = rest.strip_prefix('/') {
            if boundary(closing) {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    let end = lower[next..]
                        .find('>')
                        .map_or(lower.len(), |o| next + o + 1);
                    return Some((open, end));
                }
            }
        } else if boundary(rest) {
            depth += 1;
        }
        i = next + 1;
    }
    None
}

/// [`extract_html_from`] once the signature element is out, `cut` being
/// where the original message starts (`cut_at`).
fn split_html(html: &str, cut: Option<usize>, sender: &Sender) -> Extracted {
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
