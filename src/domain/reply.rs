//! Reply extraction: what the person wrote now, apart from the quoted history,
//! their signature, and whether they forwarded another message.
//!
//! The contract (DESIGN): keep top-posted, bottom-posted and inline answers
//! alike, and never keep less than the person wrote. Peers either store the
//! whole message (noise) or cut at the first `>` (inline answers and code lost);
//! this module reads the message as a sequence of classified lines instead:
//!
//! 1. Every line gets a [`Kind`]: text, `>` quote, a quote header ("On … wrote:"
//!    in many languages and wrapped over up to five lines; Outlook's
//!    `From:/Sent:/To:/Subject:` block; `-----Original Message-----`), a forward
//!    header, the gateway's [`MARKER`], a signature separator, a mobile footer.
//!    Fenced and indented code is always text, so `a > b` or `>>> print()` in
//!    code never reads as a quote. All look-ahead is bounded (a few lines), so
//!    the work is linear in the size of the message.
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
//! 3. From the end backwards: trailing quotes, the signature (`-- `, or a line
//!    of underscores with a few lines after it) and mobile footers ("Sent from
//!    my iPhone", localized) are taken off.
//!
//! A `>` passage without a header above it is kept: the person selected it to
//! answer it. Nothing is thrown away silently: every line with a letter or a
//! digit ends up in `reply`, `signature` or `quoted`.

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;

mod html;
pub use html::extract_html;

/// The first line of every notification; replies are cut here (DESIGN).
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

/// The start of an attribution: an intro word and a date, or a date first.
static ATTR_START: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?x)^[-*\s]*(?:
        (?:On|At|Am|Le|El|Il|Op|Em|Às|Den|På|Dnia|W\sdniu|In\sdata|No\sdia|Il\sgiorno)\s.*\d
      | 在.*\d
      | \d{1,2}\.?\s+\p{L}+\.?,?\s+\d{4}
      | \p{L}{2,12}\.?,?\s+\d{1,2}\.?\s+\p{L}+\.?,?\s+\d{4}
      | \d{4}\s?年\s?\d{1,2}\s?月\s?\d{1,2}\s?日
      | \d{4}[-/.]\d{1,2}[-/.]\d{1,2}\s
    )")
});

/// German Outlook's attribution, which may start anywhere on the line. Kept
/// out of `ATTR_START` so that one stays anchored and gives up after a word.
static ATTR_SCHRIEB: LazyLock<Regex> = LazyLock::new(|| re(r"\sschrieb\s+am\s"));

fn is_attr_start(line: &str) -> bool {
    ATTR_START.is_match(line) || (line.contains("schrieb") && ATTR_SCHRIEB.is_match(line))
}

/// `ATTR_END`, after the cheap test every match passes (ends in a colon or a
/// dash once trailing stars and spaces are gone): most lines fail it.
fn is_attr_end(line: &str) -> bool {
    line.trim_end_matches('*')
        .trim_end()
        .ends_with([':', '：', '-'])
        && ATTR_END.is_match(line)
}

/// Every forward marker has a colon or a run of dashes.
fn is_forward(line: &str) -> bool {
    (line.contains("--") || line.contains([':', '：'])) && FORWARD.is_match(line)
}

/// Every header field has a colon.
fn is_field(line: &str) -> bool {
    line.contains([':', '：']) && FIELD.is_match(line)
}

/// Attributions that are complete on one line without a verb (Gmail's ISO and
/// old formats): `2026-11-23 09:14 GMT+01:00 Alice`, `2026/11/23 Alice <a@x>`.
static ATTR_COMPLETE: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?x)^(?:
        \d{4}-\d{2}-\d{2}\s+\d{1,2}:\d{2}\s+GMT[+-]\d{1,2}:?\d{2}\s+\S.*
      | \d{4}/\d{1,2}/\d{1,2}\s.*<[^<>\s@]+@[^<>\s]+>\s*:?
    )$")
});

/// The verb of an attribution, in the languages we know of.
static ATTR_VERB: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?xi)
        \b(?:wrote|writes|schrieb|geschreven|schreef|escribió|escreveu|scritto|scrisse
            |napisał|napisała|написал|написала|писал|пише|skrev|kirjoitti|napsal|yazdı)\b
      | \ba\s+écrit\b
      | 写道 | 寫道 | 書きました | のメッセージ
    ")
});

/// The end of an attribution: a colon (or Zoho's trailing dashes).
static ATTR_END: LazyLock<Regex> = LazyLock::new(|| re(r"(?:[:：]|\S\s*-{2,})\s*\**$"));

/// An attribution ending in the address, without a verb (Gmail ru/ja/zh).
static ATTR_END_ADDRESS: LazyLock<Regex> = LazyLock::new(|| re(r"(?:>|\))\s*[:：]\s*$"));

static TIME: LazyLock<Regex> = LazyLock::new(|| re(r"\d{1,2}[:.]\d{2}"));

/// A header field of a quoted message (Outlook desktop, web and mobile).
static FIELD: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?xi)^\s*\*{0,2}(
        from|sent|date|to|cc|bcc|subject|reply-to
      | von|gesendet|datum|an|betreff|antwort\san
      | de|envoyé|à|a|objet|répondre\sà
      | enviado|enviada|fecha|para|asunto
      | da|inviato|data|oggetto|risposta
      | van|verzonden|aan|onderwerp
      | od|wysłano|do|dw|temat
      | от|отправлено|дата|кому|копия|тема
      | från|skickat|till|kopia|ämne
      | fra|sendt|dato|til|kopi|emne
      | 发件人|发送时间|收件人|抄送|主题|日期|寄件者|傳送時間|收件者|副本|主旨
      | 差出人|送信日時|宛先|件名|日付
    )\*{0,2}\s*[:：]")
});

/// The fields that name the sender: a quoted header block must have one.
static FROM_FIELD: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)^\s*\*{0,2}(?:from|von|de|da|van|od|от|från|fra|发件人|寄件者|差出人)\*{0,2}\s*[:：]")
});

/// Fields that only appear when someone pastes raw headers on purpose: such a
/// block is content (a bounce to look at), not a quote.
static RAW_FIELD: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)^\s*(?:received|message-id|return-path|x-[\w-]+|dkim-signature|mime-version|content-type|authentication-results|delivered-to|arc-[\w-]+)\s*:",
    )
});

static ORIGINAL_MESSAGE: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?xi)^\s*\*?\s*-{2,}\s*(?:
        original\smessage|ursprüngliche\snachricht|original-nachricht|message\sd'origine
      | message\soriginal|mensaje\soriginal|messaggio\soriginale|oorspronkelijk\sbericht
      | origineel\sbericht|mensagem\soriginal|wiadomość\soryginalna|oryginalna\swiadomość
      | исходное\sсообщение|ursprungligt\smeddelande|opprinnelig\smelding
      | oprindelig\smeddelelse|原始邮件|原始郵件|元のメッセージ
    )\s*-{2,}\s*\*?\s*$")
});

static FORWARD: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?xi)^\s*\*?\s*(?:
        -{2,}\s*(?:forwarded\smessage|weitergeleitete\snachricht|message\stransféré
          |mensaje\sreenviado|messaggio\sinoltrato|doorgestuurd\sbericht|mensagem\sencaminhada
          |wiadomość\sprzekazana(?:\sdalej)?|przekazana\swiadomość|пересылаемое\sсообщение
          |пересланное\sсообщение|vidarebefordrat\smeddelande|videresendt\smelding
          |videresendt\sbesked|转发的邮件|轉寄的郵件|転送メッセージ|転送されたメッセージ)\s*-{2,}
      | begin\sforwarded\smessage\s*:
      | anfang\sder\sweitergeleiteten\s(?:nachricht|e-mail)\s*:
      | début\sdu\smessage\s(?:réexpédié|transféré)\s*:
      | inicio\sdel\smensaje\sreenviado\s*:
      | inizio\s(?:del\s)?messaggio\sinoltrato\s*:
      | begin\sdoorgestuurd\sbericht\s*:
      | início\sda\smensagem\s(?:reencaminhada|encaminhada)\s*:
      | начало\sпересылаемого\sсообщения\s*:
      | vidarebefordrat\smejl\s*:
      | 转发的邮件\s*[:：] | 転送されたメッセージ\s*[:：]
    )")
});

/// Footers mobile and web clients append ("Sent from my iPhone"), localized.
/// Matched against a whole, short line, and only at the end of the reply.
static FOOTER: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?xi)^(?:
        sent\s(?:from|via|with|using|by|on)\s.{1,120}
      | from\smy\s(?:iphone|ipad|ipod|android|mobile|phone|cell|smartphone|tablet|galaxy|samsung|blackberry).{0,40}
      | \S+\sfrom\s(?:my\s)?mobile.{0,40}
      | get\s\[?outlook\b.{0,120}
      | von\s(?:meinem|meiner)\s.{1,60}\sgesendet\.?
      | gesendet\s(?:von|mit|vom|aus)\s.{1,80}
      | diese\snachricht\swurde\s(?:von|mit)\s.{1,80}\sgesendet\.?
      | envoyé\s(?:de|depuis|avec|à\spartir\sde)\s.{1,80}
      | obtenir\soutlook\spour\s.{1,40}
      | enviado\s(?:desde|do|da|con|com|pelo|pela)\s.{1,80}
      | obt(?:ener|er\so)\soutlook\s.{1,40}
      | inviato\s(?:da|dal|dalla|con)\s.{1,80}
      | scarica\soutlook\s.{1,40}
      | (?:verzonden|verstuurd)\s(?:vanaf|van|met|via)\s.{1,80}
      | outlook\svoor\s.{1,30}\sdownloaden
      | wysłan[eo]\s(?:z|ze|przy|przez)\s.{1,80}
      | pobierz\s(?:aplikację\s)?outlook.{0,60}
      | отправлено\s(?:с|из|со)\s.{1,80}
      | получить\soutlook.{0,40}
      | skickat\s(?:från|med)\s.{1,80}
      | hämta\soutlook.{0,40}
      | sendt\s(?:fra|med)\s.{1,80}
      | (?:skaff|få)\s.{0,10}outlook.{0,40}
      | (?:发自|来自|寄自)我的.{0,40}
      | 從我的.{0,40}傳送
      | .{1,40}から送信
      | .{0,30}outlook.{0,20}を入手
    )$")
});

/// Gmail's invisible tracking glyph, alone on a line.
const GMAIL_SPACER: char = '\u{1427}';

/// The longest prefix of `line` of at most `max` bytes, cut on a char boundary.
fn head(line: &str, max: usize) -> &str {
    if line.len() <= max {
        return line;
    }
    let mut end = max;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    &line[..end]
}

fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

/// `>` after at most three spaces, or a Supercite citation of one to three
/// capitals (`C>`, `JD> `). Longer names (`Richard>`) are too often text.
fn is_quote_line(line: &str) -> bool {
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
fn dequote(line: &str) -> &str {
    line.trim_start_matches(['>', ' ', '\t'])
}

/// A Python prompt (`>>> x`), which looks like a third-level quote.
fn is_prompt(line: &str) -> bool {
    line.strip_prefix(">>> ")
        .is_some_and(|rest| !rest.starts_with('>') && !rest.trim().is_empty())
}

fn is_delimiter(line: &str) -> bool {
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

fn is_underscores(line: &str) -> bool {
    let t = line.trim();
    t.len() >= 3 && t.bytes().all(|b| b == b'_')
}

fn is_marker(line: &str) -> bool {
    let t = line.trim().trim_matches('*').trim();
    t == MARKER || (t.contains(MARKER) && t.len() <= MARKER.len() + 8 && !t.starts_with('>'))
}

fn has_letters(text: &str) -> bool {
    text.chars()
        .any(|c| c.is_alphanumeric() && c != GMAIL_SPACER)
}

/// Lines inside fenced code (```` ``` ```` or `~~~`) or indented by a tab or
/// four spaces: never quotes, headers or signatures.
fn code_lines(lines: &[&str]) -> Vec<bool> {
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
                let start = self.extend_back(i);
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

    /// A wrapped attribution whose first line ends with an unclosed `<`
    /// (`… "Alice" <` / `a@x> wrote:`) starts one line up.
    fn extend_back(&self, i: usize) -> usize {
        match i.checked_sub(1) {
            Some(p)
                if self.kind[p] == Kind::Text
                    && self.lines[p].len() <= MAX_CLASSIFIED_LINE
                    && self.lines[p].trim_end().ends_with('<') =>
            {
                p
            }
            _ => i,
        }
    }

    fn mark(&mut self, start: usize, end: usize, kind: Kind) {
        self.kind[start..end].iter_mut().for_each(|k| *k = kind);
        self.span[start..end].iter_mut().for_each(|s| *s = 0);
        self.span[start] = end;
    }

    /// An attribution starting at line `i`: returns one past its last line.
    fn attribution_at(&self, i: usize, code: &[bool], next_nonblank: &[usize]) -> Option<usize> {
        let n = self.lines.len();
        let line = self.lines[i].trim();
        if is_attr_start(line) {
            // Look for the end of a possibly wrapped header.
            let mut joined = String::new();
            let mut blanks = 0;
            let window = (i + HEADER_WINDOW).min(n);
            for (j, (&l, &is_code)) in self.lines[..window]
                .iter()
                .zip(&code[..window])
                .enumerate()
                .skip(i)
            {
                if j > i && (is_code || l.len() > 200) {
                    break;
                }
                if is_blank(l) {
                    blanks += 1;
                    if blanks > 2 {
                        break;
                    }
                    continue;
                }
                let l = l.trim();
                joined.push(' ');
                joined.push_str(l);
                let ends = is_attr_end(l);
                if (ends && ATTR_VERB.is_match(&joined)) || ATTR_END_ADDRESS.is_match(l) {
                    // Clients always name an address or a time, or quote below;
                    // "On 3 servers … the log wrote:" in prose does neither.
                    let below = next_nonblank.get(j + 1).copied().unwrap_or(n);
                    let quote_below = below < n && self.kind[below] == Kind::Quote;
                    if joined.contains('@') || TIME.is_match(&joined) || quote_below {
                        return Some(j + 1);
                    }
                    break;
                }
                if j > i && is_attr_start(l) {
                    break;
                }
            }
        }
        if ATTR_COMPLETE.is_match(line) {
            return Some(i + 1);
        }
        // A verb line alone ("Alice <a@x> wrote:", Thunderbird's "Alice wrote:")
        // needs evidence: an address, a time, or a quote right below it.
        if line.len() <= 300 && is_attr_end(line) && ATTR_VERB.is_match(line) {
            let below = next_nonblank.get(i + 1).copied().unwrap_or(n);
            let quote_below = below < n && self.kind[below] == Kind::Quote;
            if line.contains('@') || TIME.is_match(line) || quote_below {
                return Some(i + 1);
            }
        }
        None
    }

    /// An Outlook-style header block (`From:`, `Sent:`, `To:`, `Subject:` in
    /// any of our languages) starting at line `i`: returns one past its end.
    fn header_block_at(&self, i: usize) -> Option<usize> {
        if !is_field(head(self.lines[i], MAX_CLASSIFIED_LINE)) {
            return None;
        }
        let n = self.lines.len();
        let (mut fields, mut from, mut continuation) = (0, false, 0);
        let mut end = i;
        for j in i..(i + 12).min(n) {
            let l = head(self.lines[j], MAX_CLASSIFIED_LINE);
            if is_blank(l) {
                break;
            }
            if RAW_FIELD.is_match(l) {
                return None;
            }
            if is_field(l) {
                fields += 1;
                from |= FROM_FIELD.is_match(l);
                continuation = 0;
            } else {
                // A wrapped value (a long Subject) continues the block.
                continuation += 1;
                if continuation > 1 {
                    break;
                }
            }
            end = j + 1;
        }
        (fields >= 3 && from).then_some(end)
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
    // Sized first: grown by doubling, a 10 MB reply held 20 MB (issue 18).
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

/// Splits a plain-text body.
pub fn extract_text(text: &str) -> Extracted {
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
    let mut signature_done = false;
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
            Kind::Delimiter => {
                part[last] = Part::Drop;
                end = last;
            }
            _ if !signature_done => {
                signature_done = true;
                match signature_start(&doc, &part, end) {
                    Some(sep) => {
                        part[sep] = Part::Drop;
                        part[sep + 1..end]
                            .iter_mut()
                            .filter(|p| **p == Part::Reply)
                            .for_each(|p| *p = Part::Signature);
                        end = sep;
                    }
                    None => break,
                }
            }
            _ => break,
        }
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

/// The separator line of a signature ending at `end`: the last `-- ` with at
/// most `MAX_SIGNATURE_LINES` lines after it, or a line of underscores with at
/// most four (Hotmail and Outlook.com put one above the signature).
fn signature_start(doc: &Doc<'_>, part: &[Part], end: usize) -> Option<usize> {
    let mut non_blank = 0;
    let mut j = end;
    while j > 0 && end - j < 3 * MAX_SIGNATURE_LINES {
        j -= 1;
        if part[j] != Part::Reply {
            return None;
        }
        match doc.kind[j] {
            Kind::SigSep => return Some(j),
            Kind::Delimiter if is_underscores(doc.lines[j]) && non_blank <= 4 => return Some(j),
            Kind::Blank => {}
            Kind::Quote | Kind::Attribution | Kind::Original | Kind::Forward | Kind::Marker => {
                return None;
            }
            _ => {
                non_blank += 1;
                if non_blank > MAX_SIGNATURE_LINES {
                    return None;
                }
            }
        }
    }
    None
}

/// The reply of a parsed message: from the HTML structure when the text was
/// only converted from HTML, else from the text part (its `>` quotes are the
/// client's own and more reliable than a conversion).
pub fn extract_mail(mail: &super::mail::InboundMail) -> Extracted {
    match &mail.html {
        Some(html) if mail.text_from_html => extract_html(html),
        _ => extract_text(&mail.text),
    }
}

#[cfg(test)]
mod tests;
