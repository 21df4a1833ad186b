//! Reply extraction: what the person wrote now, apart from the quoted history,
//! their signature, and whether they forwarded another message.
//!
//! The contract (docs/contract.md, "Mail"): keep top-posted, bottom-posted and inline answers
//! alike, and never keep less than the person wrote. Peers either store the
//! whole message (noise) or cut at the first `>` (inline answers and code lost);
//! this module reads the message as a sequence of classified lines instead:
//!
//! 1. Every line gets a [`Kind`]: text, `>` quote, a quote header ("On … wrote:"
//!    in many languages and wrapped over up to five lines; Outlook's
//!    `From:/Sent:/To:/Subject:` block; `-----Original Message-----`), a forward
//!    header, the gateway's [`MARKER`], a signature separator, a mobile footer.
//!    Fenced and indented code is always text, so `a > b` or `>>> print()` in
//!    code never reads as a quote. A header glued to the line before it
//!    ("…fixed. On Mon, … wrote:", "Sent from Samsung MobileOn …") is split
//!    off first; a link wrapped out of a quoted line stays in the quote. All
//!    look-ahead is bounded (a few lines, the last few hundred bytes of a
//!    line), so the work is linear in the size of the message.
//! 2. One forward scan decides what the quote headers mean:
//!    - text, then a header, then only quotes (or nothing): a top-post; the
//!      header and everything after it is the quote;
//!    - a header, a quote, then more text: an inline (interleaved) answer; the
//!      header line goes, the `>` block stays as the context of the answer below
//!      it (a bare "Yes." means nothing without the question it answers);
//!    - a header and one quote at the very top, then only text: a bottom-post;
//!      the header and the quote go;
//!    - Outlook's header block and `-----Original Message-----` introduce an
//!      unquoted original: always a cut;
//!    - a forward header: everything from it on is content (`forwarded: true`).
//! 3. From the end backwards: trailing quotes, the signature (`-- `, a line
//!    of underscores with a few lines after it, or without a separator the
//!    sender's own name, initials or mailbox name after a closing, see
//!    [`Sender`]; from anyone, a short sign-off at the very end: `-jo`, a
//!    closing and a name, a name below `---` or above a footer), mobile
//!    footers ("Sent from my iPhone", localized) and lone `--` lines are
//!    taken off; a quote followed only by a sign-off ("Thanks," / "Bob") goes
//!    as a trailing one. A message that is only a signature keeps it.
//!
//! A `>` passage without a header above it is kept: the person selected it to
//! answer it. Nothing is thrown away silently: every line with a letter or a
//! digit ends up in `reply`, `signature` or `quoted`.
//!
//! Files: this one holds the scan; `lines.rs` the tests on single lines and
//! code blocks; `headers.rs` the quote headers per language and glued ones;
//! `signature.rs` signatures, closings and footers; `sender.rs` the forms of
//! the sender's name; `html.rs` what HTML structure tells beyond its text.

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;

mod headers;
mod html;
mod lines;
mod sender;
mod signature;

use headers::*;
pub use html::{extract_html, extract_html_from};
use lines::*;
pub use sender::Sender;
use signature::*;

/// The first line of every notification; replies are cut here
/// (docs/contract.md, "Mail").
pub const MARKER: &str = "--- Reply above this line ---";

/// Lines longer than this are never headers, footers or separators: they are
/// only tested for a leading `>`. Bounds the regex work on hostile input.
const MAX_CLASSIFIED_LINE: usize = 400;
/// How far a wrapped quote header may run ("On …" up to "… wrote:").
const HEADER_WINDOW: usize = 5;
/// A `-- ` separator followed by more non-blank lines than this is not a
/// signature but a separator the person wrote; what follows stays in the reply.
const MAX_SIGNATURE_LINES: usize = 15;

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Extracted {
    pub reply: String,
    pub signature: Option<String>,
    pub quoted: Option<String>,
    pub forwarded: bool,
}

impl Extracted {
    /// The comment text: the reply, or the whole text when the reply came out
    /// empty (never an empty comment from a non-empty message).
    pub fn comment_text(&self, full: &str) -> String {
        if self.reply.trim().is_empty() {
            full.trim().to_string()
        } else {
            self.reply.clone()
        }
    }

    /// [`Self::comment_text`], moving the reply out instead of copying it
    /// (`reply` is left empty): a 10 MB body is held once less.
    pub fn take_comment_text(&mut self, full: &str) -> String {
        if self.reply.trim().is_empty() {
            full.trim().to_string()
        } else {
            std::mem::take(&mut self.reply)
        }
    }
}

/// What a line is, before deciding what it means in its context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Blank,
    /// Anything the person may have written, including code.
    Text,
    /// A `>` (or Supercite `AB>`) quoted line.
    Quote,
    /// The gateway's [`MARKER`], unquoted.
    Marker,
    /// The first line of a forwarded message.
    Forward,
    /// A line of an "On … wrote:" header.
    Attribution,
    /// A line of an Outlook header block or an "Original Message" separator.
    Original,
    /// `-- ` (RFC 3676 §4.3) or `--`.
    SigSep,
    /// A line made of one repeated punctuation character (`_____`, `***`).
    Delimiter,
    /// A mobile client's footer ("Sent from my iPhone").
    Footer,
}

/// Where a line ends up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Reply,
    Quoted,
    Signature,
    /// Separators and decoration: no content of their own.
    Drop,
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("static regex")
}

/// The classified lines of a message.
struct Doc<'a> {
    lines: Vec<&'a str>,
    kind: Vec<Kind>,
    /// For the first line of a header (attribution or Outlook block): the index
    /// one past its last line. Zero elsewhere.
    span: Vec<usize>,
}

impl<'a> Doc<'a> {
    fn new(text: &'a str) -> Self {
        let lines: Vec<&str> = text.split('\n').collect();
        let code = code_lines(&lines);
        let (lines, code) = unglue(lines, code);
        let mut kind: Vec<Kind> = lines
            .iter()
            .zip(&code)
            .map(|(line, &code)| classify_line(line, code))
            .collect();
        // A run of `>>> ` lines standing alone is a Python session, not a
        // third-level quote (which always sits among `>` and `>>` lines).
        let n = lines.len();
        let mut i = 0;
        while i < n {
            if kind[i] == Kind::Quote && is_prompt(lines[i]) {
                let start = i;
                while i < n && kind[i] == Kind::Quote && is_prompt(lines[i]) {
                    i += 1;
                }
                let before = start.checked_sub(1).map(|b| kind[b]);
                let after = kind.get(i).copied();
                if before != Some(Kind::Quote) && after != Some(Kind::Quote) {
                    kind[start..i].iter_mut().for_each(|k| *k = Kind::Text);
                }
            } else {
                i += 1;
            }
        }
        // Links wrapped out of a quoted line continue the quote: one block,
        // not an inline answer between two.
        for i in 1..n {
            if kind[i] == Kind::Text
                && kind[i - 1] == Kind::Quote
                && is_link_continuation(lines[i], lines[i - 1])
            {
                let next = (i + 1..n.min(i + 4)).find(|&j| kind[j] != Kind::Blank);
                let continues = next.is_some_and(|j| {
                    kind[j] == Kind::Quote || is_link_continuation(lines[j], lines[i])
                });
                if continues {
                    kind[i] = Kind::Quote;
                }
            }
        }
        // A footer's link wrapped onto a line of its own ("Sent with Sparrow" /
        // "(http://www.sparrowmailapp.com/?sig)") is the footer's.
        for i in 1..n {
            if kind[i] == Kind::Text
                && kind[i - 1] == Kind::Footer
                && is_link_continuation(lines[i], lines[i - 1])
            {
                kind[i] = Kind::Footer;
            }
        }
        let mut doc = Doc {
            span: vec![0; n],
            lines,
            kind,
        };
        doc.find_headers(&code);
        doc
    }

    /// Marks attribution headers and Outlook header blocks. Every test looks at
    /// most `HEADER_WINDOW` (or a dozen) lines ahead: linear overall.
    fn find_headers(&mut self, code: &[bool]) {
        let n = self.lines.len();
        let next_nonblank = {
            let mut next = vec![n; n + 1];
            for i in (0..n).rev() {
                next[i] = if is_blank(self.lines[i]) {
                    next[i + 1]
                } else {
                    i
                };
            }
            next
        };
        let mut i = 0;
        while i < n {
            let line = self.lines[i];
            let candidate = !code[i]
                && line.len() <= MAX_CLASSIFIED_LINE
                && matches!(self.kind[i], Kind::Text | Kind::Original);
            if !candidate {
                i += 1;
                continue;
            }
            if let Some(end) = self.attribution_at(i, code, &next_nonblank) {
                let start = self.extend_back(i, end);
                self.mark(start, end, Kind::Attribution);
                i = end;
                continue;
            }
            if let Some(end) = self.header_block_at(i) {
                // An Outlook separator line just above belongs to the quote.
                let mut start = i;
                let above = (i >= 1)
                    .then(|| i - 1)
                    .filter(|&a| self.kind[a] == Kind::Delimiter);
                if let Some(a) = above {
                    start = a;
                }
                self.mark(start, end, Kind::Original);
                i = end;
                continue;
            }
            if self.kind[i] == Kind::Original {
                self.span[i] = i + 1;
            }
            i += 1;
        }
    }

    /// A wrapped attribution starts one line up when its first line ends
    /// with an unclosed `<` (`… "Alice" <` / `a@x> wrote:`), or when it is
    /// only the verb that ends a name-first header above it (`Alice <a@x>,
    /// 23 Kas 2026 Pzt, 09:14 tarihinde şunu` / `yazdı:`).
    fn extend_back(&self, i: usize, end: usize) -> usize {
        let Some(p) = i.checked_sub(1) else {
            return i;
        };
        let above = self.lines[p];
        if self.kind[p] != Kind::Text || above.len() > MAX_CLASSIFIED_LINE {
            return i;
        }
        let line = self.lines[i].trim();
        let verb_only = end == i + 1
            && line.chars().count() <= 30
            && !line.starts_with(char::is_uppercase)
            && !line.contains('@');
        if above.trim_end().ends_with('<') || (verb_only && opens_named_header(above)) {
            p
        } else {
            i
        }
    }

    fn mark(&mut self, start: usize, end: usize, kind: Kind) {
        self.kind[start..end].iter_mut().for_each(|k| *k = kind);
        self.span[start..end].iter_mut().for_each(|s| *s = 0);
        self.span[start] = end;
    }
}

fn classify_line(line: &str, code: bool) -> Kind {
    if is_blank(line) {
        return Kind::Blank;
    }
    if code {
        return Kind::Text;
    }
    if line.len() > MAX_CLASSIFIED_LINE {
        return if is_quote_line(line) {
            Kind::Quote
        } else {
            Kind::Text
        };
    }
    if is_marker(line) {
        return Kind::Marker;
    }
    if is_quote_line(line) {
        return Kind::Quote;
    }
    let t = line.trim();
    if is_forward(t) {
        return Kind::Forward;
    }
    if t.contains("--") && ORIGINAL_MESSAGE.is_match(t) {
        return Kind::Original;
    }
    if line.trim_end() == "--" {
        return Kind::SigSep;
    }
    if is_delimiter(t) {
        return Kind::Delimiter;
    }
    let bare = t
        .trim_start_matches(['(', '<', '['])
        .trim_end_matches([')', '>', ']', '.']);
    if t.len() <= 160 && FOOTER.is_match(bare) {
        return Kind::Footer;
    }
    Kind::Text
}

/// Removes what no stored text should hold: NULs (PostgreSQL refuses them)
/// and carriage returns.
fn normalize(text: &str) -> std::borrow::Cow<'_, str> {
    // Most bodies arrive with `\n` line ends already: no second copy.
    if !text.contains(['\0', '\r']) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\0' => {}
            '\r' => {
                if chars.peek() != Some(&'\n') {
                    out.push('\n');
                }
            }
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The lines of one part, without leading empty lines (a bare `>` counts as
/// empty) and trailing whitespace. Lines keep their own trailing spaces: in
/// code and Markdown they can matter.
fn collect(doc: &Doc<'_>, part: &[Part], want: Part) -> String {
    // Sized first: grown by doubling, a 10 MB reply held 20 MB.
    let size = doc
        .lines
        .iter()
        .zip(part)
        .filter(|(_, p)| **p == want)
        .map(|(line, _)| line.len() + 1)
        .sum();
    let mut out = String::with_capacity(size);
    for (line, p) in doc.lines.iter().zip(part) {
        if *p == want {
            if out.is_empty() && dequote(line).trim().is_empty() {
                continue;
            }
            out.push_str(line);
            out.push('\n');
        }
    }
    out.truncate(out.trim_end().len());
    out
}

/// Splits a plain-text body whose sender is unknown.
pub fn extract_text(text: &str) -> Extracted {
    extract_text_from(text, &Sender::default())
}

/// Splits a plain-text body from `sender`, whose own name on the last lines
/// is a signature.
pub fn extract_text_from(text: &str, sender: &Sender) -> Extracted {
    let text = normalize(text);
    let doc = Doc::new(&text);
    let n = doc.lines.len();
    let kind = &doc.kind;
    let mut part = vec![Part::Reply; n];

    // 1. Our marker: everything from it on is the notification being answered.
    let end = kind.iter().position(|k| *k == Kind::Marker).unwrap_or(n);
    part[end..].iter_mut().for_each(|p| *p = Part::Quoted);

    // Precomputed so the scan below never looks ahead more than a step:
    // `after_quote[i]`: the first line at or after i that is neither a quote nor
    // blank; `answered_after[i]`: some quote at or after i is followed by text.
    let mut after_quote = vec![n; n + 1];
    let mut answered_after = vec![false; n + 1];
    for i in (0..n).rev() {
        after_quote[i] = if matches!(kind[i], Kind::Quote | Kind::Blank) {
            after_quote[i + 1]
        } else {
            i
        };
        let answered = kind[i] == Kind::Quote && kind.get(after_quote[i]) == Some(&Kind::Text);
        answered_after[i] = answered_after[i + 1] || answered;
    }
    let next_nonblank = |from: usize| (from..end).find(|&j| kind[j] != Kind::Blank);

    // 2. The forward scan: what each quote header means here.
    let mut forwarded = false;
    let mut tail_end = end;
    let mut seen_text = false;
    let mut i = 0;
    while i < end {
        match kind[i] {
            Kind::Text => {
                seen_text = true;
                i += 1;
            }
            Kind::Forward => {
                forwarded = true;
                tail_end = i;
                break;
            }
            Kind::Quote
                if (i == 0 || kind[i - 1] != Kind::Quote)
                    && is_forward(head(dequote(doc.lines[i]), MAX_CLASSIFIED_LINE)) =>
            {
                // Apple Mail quotes what it forwards: still a forward.
                forwarded = true;
                tail_end = i;
                break;
            }
            Kind::Attribution if doc.span[i] > i => {
                let header_end = doc.span[i];
                match next_nonblank(header_end).map(|a| (a, kind[a])) {
                    Some((a, Kind::Quote)) => {
                        let next = after_quote[a];
                        let answered = next < end && kind[next] == Kind::Text;
                        if !answered {
                            tail_end = i;
                            break;
                        }
                        if !seen_text && !answered_after[next] {
                            // Bottom-post: the header and the quote above the answer.
                            part[..next].iter_mut().for_each(|p| *p = Part::Quoted);
                            i = next;
                        } else {
                            // Inline answers: the header goes, the quote is their context.
                            part[i..header_end]
                                .iter_mut()
                                .for_each(|p| *p = Part::Quoted);
                            i = header_end;
                        }
                    }
                    Some((_, Kind::Text)) if !seen_text => {
                        // A header on top of unquoted text: the text is the answer.
                        part[i..header_end]
                            .iter_mut()
                            .for_each(|p| *p = Part::Quoted);
                        i = header_end;
                    }
                    _ => {
                        tail_end = i;
                        break;
                    }
                }
            }
            Kind::Original if doc.span[i] > i => {
                tail_end = i;
                break;
            }
            _ => i += 1,
        }
    }
    if !forwarded {
        part[tail_end..end]
            .iter_mut()
            .for_each(|p| *p = Part::Quoted);
    }

    // 3. From the end backwards: trailing quotes, signature, footers.
    let mut text_before = vec![0usize; n + 1];
    for j in 0..n {
        let counts = kind[j] == Kind::Text && part[j] == Part::Reply;
        text_before[j + 1] = text_before[j] + usize::from(counts);
    }
    let mut end = tail_end;
    let (mut signature_done, mut unmarked_done, mut sign_off_done) = (false, false, false);
    // Set when a sign-off was found below a quote: that quote goes next.
    let mut quote_above_sign_off = false;
    loop {
        while end > 0 && (kind[end - 1] == Kind::Blank || part[end - 1] != Part::Reply) {
            end -= 1;
        }
        if end == 0 {
            break;
        }
        let last = end - 1;
        match kind[last] {
            Kind::Quote | Kind::Attribution | Kind::Original => {
                let mut start = last;
                while start > 0
                    && part[start - 1] == Part::Reply
                    && matches!(
                        kind[start - 1],
                        Kind::Quote | Kind::Blank | Kind::Attribution | Kind::Original
                    )
                {
                    start -= 1;
                }
                part[start..end].iter_mut().for_each(|p| *p = Part::Quoted);
                if std::mem::take(&mut quote_above_sign_off) {
                    // The blank lines around its header went with it: the
                    // sign-off follows the text at one blank line.
                    let mut b = start;
                    while b > 0 && (kind[b - 1] == Kind::Blank || part[b - 1] == Part::Quoted) {
                        b -= 1;
                        if kind[b] == Kind::Blank && part[b] == Part::Reply {
                            part[b] = Part::Drop;
                        }
                    }
                }
                if text_before[start] == 0 {
                    // Only quotes: the reply is empty (the comment falls back).
                    part[..start]
                        .iter_mut()
                        .filter(|p| **p == Part::Reply)
                        .for_each(|p| *p = Part::Quoted);
                    break;
                }
                end = start;
            }
            Kind::Footer => {
                part[last] = Part::Signature;
                end = last;
            }
            // A lone `--` with nothing of a signature after it (or a second
            // one above a signature already cut): a separator, no content.
            Kind::Delimiter | Kind::SigSep => {
                part[last] = Part::Drop;
                end = last;
            }
            _ if !signature_done => {
                signature_done = true;
                if let Some(sep) = signature_start(&doc, &part, end) {
                    part[sep] = Part::Drop;
                    part[sep + 1..end]
                        .iter_mut()
                        .filter(|p| **p == Part::Reply)
                        .for_each(|p| *p = Part::Signature);
                    end = sep;
                }
            }
            _ if !unmarked_done => {
                unmarked_done = true;
                let found = unmarked_signature(&doc, &part, end, sender)
                    .or_else(|| bare_sign_off(&doc, &part, end));
                if let Some((start, rule)) = found {
                    part[start..end]
                        .iter_mut()
                        .filter(|p| **p == Part::Reply)
                        .for_each(|p| *p = Part::Signature);
                    if let Some(rule) = rule {
                        part[rule] = Part::Drop;
                    }
                    end = rule.unwrap_or(start);
                }
            }
            _ if !sign_off_done => {
                sign_off_done = true;
                // Text, a quote, then only a sign-off: the quote was not answered.
                match sign_off_above(&doc, &part, end, sender) {
                    Some(start) => {
                        end = start;
                        quote_above_sign_off = true;
                    }
                    None => break,
                }
            }
            _ => break,
        }
    }
    // A message that is only a signature keeps it: it is all the person sent.
    let written = |want: Part| {
        (0..n).any(|j| part[j] == want && kind[j] != Kind::Blank && has_letters(doc.lines[j]))
    };
    if !written(Part::Reply) && !written(Part::Quoted) {
        part.iter_mut()
            .filter(|p| matches!(p, Part::Signature | Part::Drop))
            .for_each(|p| *p = Part::Reply);
    }
    // A quoted copy of our marker is no part of an inline answer.
    for (j, line) in doc.lines.iter().enumerate() {
        if part[j] == Part::Reply && kind[j] == Kind::Quote && dequote(line).trim() == MARKER {
            part[j] = Part::Quoted;
        }
    }

    let non_empty = |s: String| has_letters(&s).then_some(s);
    Extracted {
        reply: collect(&doc, &part, Part::Reply),
        signature: non_empty(collect(&doc, &part, Part::Signature)),
        quoted: non_empty(collect(&doc, &part, Part::Quoted)),
        forwarded,
    }
}

/// The first line of a sign-off ending at `end` that follows a quote, when
/// text of the reply stands above that quote (the quote then goes as a
/// trailing one; the sign-off stays).
fn sign_off_above(doc: &Doc<'_>, part: &[Part], end: usize, sender: &Sender) -> Option<usize> {
    let mut lines = Vec::new();
    let mut j = end;
    while j > 0 {
        j -= 1;
        if part[j] != Part::Reply {
            return None;
        }
        match doc.kind[j] {
            Kind::Blank => {}
            Kind::Text if lines.len() < 3 => lines.push(j),
            Kind::Quote => {
                let first = *lines.last()?;
                let texts: Vec<&str> = lines.iter().rev().map(|&l| doc.lines[l]).collect();
                let text_above =
                    (0..j).any(|a| part[a] == Part::Reply && doc.kind[a] == Kind::Text);
                return (text_above && is_sign_off(&texts, sender)).then_some(first);
            }
            _ => return None,
        }
    }
    None
}

/// The reply of a parsed message: from the HTML structure when the text was
/// only converted from HTML, else from the text part (its `>` quotes are the
/// client's own and more reliable than a conversion). The sender is its From.
pub fn extract_mail(mail: &super::mail::InboundMail) -> Extracted {
    let sender = Sender::of(mail);
    match &mail.html {
        Some(html) if mail.text_from_html => extract_html_from(html, &sender),
        _ => extract_text_from(&mail.text, &sender),
    }
}

#[cfg(test)]
mod tests;
