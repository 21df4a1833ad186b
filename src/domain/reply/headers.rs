//! Quote headers: the attribution line ("On … wrote:") in each language we
//! know, Outlook's header block, "Original Message" separators and forward
//! markers. Every pattern is anchored or tried on a bounded window of lines.

use super::*;

/// The start of an attribution: an intro word and a date, or a date first.
static ATTR_START: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?x)^[-*\s]*(?:
        (?:On|At|Am|Le|El|Il|Op|Em|Às|Den|På|Dnia|W\sdniu|In\sdata|No\sdia|Il\sgiorno|Vào|Dne)\s.*\d
      | 在.*\d
      | \d{1,2}\.?\s+\p{L}+\.?,?\s+\d{4}
      | \p{L}{2,12}\.?,?\s+\d{1,2}\.?\s+\p{L}+\.?,?\s+\d{4}
      | \d{4}\s?年\s?\d{1,2}\s?月\s?\d{1,2}\s?日
      | \d{4}\s?년\s?\d{1,2}\s?월\s?\d{1,2}\s?일
      | \d{4}[-/.]\d{1,2}[-/.]\d{1,2}\s
      | \d{4}\.\s\d{1,2}\.\s\d{1,2}\.
      | \d{1,2}[./]\d{1,2}[./]\d{2,4},?\s
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
pub(super) fn is_forward(line: &str) -> bool {
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
        \b(?:wrote|writes|schrieb|geschreven|schreef|escribió|escribio|escreveu|scritto|scrisse
            |napisał|napisała|написал|написала|писал|пишет|пише|skrev|kirjoitti|napsal
            |napsala|yazdı|írta|έγραψε)\b
      | \ba\s+écrit\b | \bđã\s+viết\b
      | 写道 | 寫道 | 書きました | のメッセージ | のメール | 작성
    ")
});

/// "On …, Alice <a@x> sent:", as some clients write it: only at the end and
/// beside an address (`has_verb`), as "sent" is a common word.
static ATTR_SENT: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)\bsent\s*[:：]\s*\**$"));

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
      | enviado|enviado\sel|enviada|enviada\sem|fecha|para|asunto|assunto
      | da|inviato|data|oggetto|risposta
      | van|verzonden|aan|onderwerp
      | od|wysłano|do|dw|temat|odesláno|komu|předmět
      | от|отправлено|дата|кому|копия|тема
      | från|skickat|till|kopia|ämne
      | fra|sendt|dato|til|kopi|emne
      | kimden|gönderildi|gönderilme\starihi|kime|bilgi|konu|tarih
      | từ|đã\sgửi|ngày\sgửi|đến|chủ\sđề|ngày
      | 보낸\s?사람|보낸\s?날짜|받는\s?사람|참조|제목|날짜
      | 发件人|发送时间|收件人|抄送|主题|日期|寄件者|傳送時間|寄件日期|收件者|副本|主旨
      | 差出人|送信日時|宛先|件名|日付
    )\*{0,2}\s*[:：]")
});

/// The fields that name the sender: a quoted header block must have one,
/// or else a date (`DATE_FIELD`).
static FROM_FIELD: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)^\s*\*{0,2}(?:from|von|de|da|van|od|от|från|fra|kimden|từ|보낸\s?사람|发件人|寄件者|差出人)\*{0,2}\s*[:：]",
    )
});

/// The fields that date a message. A block whose date holds a year and a time
/// (`Date: Wed, 25 Nov 2026 09:14:02 +0100`) needs no From: some clients
/// quote only the date and the recipients.
static DATE_FIELD: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?xi)^\s*\*{0,2}(?:
        date|sent|datum|gesendet|envoyé|enviado|enviado\sel|fecha|data|inviato|verzonden
      | wysłano|дата|отправлено|skickat|sendt|dato|tarih|gönderildi|ngày|đã\sgửi|날짜
      | 보낸\s?날짜|日期|发送时间|寄件日期|日付|送信日時
    )\*{0,2}\s*[:：](.*)$")
});

/// A year and a time of day, in a date field's value.
static YEAR_AND_TIME: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?:\d{4}|\d{1,2}/\d{1,2}/\d{2}).*\d{1,2}:\d{2}|\d{1,2}:\d{2}.*\d{4}"));

/// Fields that only appear when someone pastes raw headers on purpose: such a
/// block is content (a bounce to look at), not a quote.
static RAW_FIELD: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)^\s*(?:received|message-id|return-path|x-[\w-]+|dkim-signature|mime-version|content-type|authentication-results|delivered-to|arc-[\w-]+)\s*:",
    )
});

pub(super) static ORIGINAL_MESSAGE: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?xi)^\s*\*?\s*-{2,}\s*(?:
        original\smessage|ursprüngliche\snachricht|original-nachricht|message\sd'origine
      | message\soriginal|mensaje\soriginal|messaggio\soriginale|oorspronkelijk\sbericht
      | origineel\sbericht|mensagem\soriginal|wiadomość\soryginalna|oryginalna\swiadomość
      | исходное\sсообщение|ursprungligt\smeddelande|opprinnelig\smelding
      | oprindelig\smeddelelse|原始邮件|原始郵件|元のメッセージ
      | reply\smessage|replied\smessage|antwort\snachricht|originalnachricht|original
      | оригинальное\sсообщение|původní\szpráva|orijinal\smesaj|özgün\sileti
      | 원본\s?메시지|원래\s?메시지|thư\sgốc|原始信息|原邮件|回复的原邮件
    )\s*-{2,}\s*\*?\s*$")
});

static FORWARD: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?xi)^\s*\*?\s*(?:
        -{2,}\s*(?:forwarded\smessage|weitergeleitete\snachricht|message\stransféré
          |mensaje\sreenviado|messaggio\sinoltrato|doorgestuurd\sbericht|mensagem\sencaminhada
          |wiadomość\sprzekazana(?:\sdalej)?|przekazana\swiadomość|пересылаемое\sсообщение
          |пересланное\sсообщение|vidarebefordrat\smeddelande|videresendt\smelding
          |videresendt\sbesked|转发的邮件|轉寄的郵件|転送メッセージ|転送されたメッセージ
          |전달된\s?메(?:일|시지)|thư\sđã\schuyển\stiếp|tin\snhắn\sđã\schuyển\stiếp
          |yönlendirilmiş\sileti|iletilen\sileti)\s*-{2,}
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

/// Whether `text` (a header, joined over its lines) has an attribution's
/// verb. "sent:" counts only beside an address.
fn has_verb(text: &str) -> bool {
    ATTR_VERB.is_match(text) || (ATTR_SENT.is_match(text) && text.contains('@'))
}

/// The lines an attribution opened by `first` spans (1, plus how many of
/// `rest` it wraps onto), looking at most `HEADER_WINDOW` lines in all.
/// `quote_below(k)`: whether a quote follows the first `k` lines. A time is
/// evidence enough on a line of its own (`by_time`), not inside a sentence.
fn wrapped_attribution(
    first: &str,
    rest: &[&str],
    rest_code: &[bool],
    by_time: bool,
    quote_below: impl Fn(usize) -> bool,
) -> Option<usize> {
    let mut joined = String::new();
    let mut blanks = 0;
    let more = rest.iter().zip(rest_code).take(HEADER_WINDOW - 1);
    for (k, (l, is_code)) in std::iter::once((&first, &false)).chain(more).enumerate() {
        if k > 0 && (*is_code || l.len() > 200) {
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
        if (is_attr_end(l) && has_verb(&joined)) || ATTR_END_ADDRESS.is_match(l) {
            // Clients always name an address or a time, or quote below;
            // "On 3 servers … the log wrote:" in prose does neither.
            let timed = by_time && TIME.is_match(&joined);
            if joined.contains('@') || timed || quote_below(k + 1) {
                return Some(k + 1);
            }
            break;
        }
        if k > 0 && is_attr_start(l) {
            break;
        }
    }
    None
}

/// The first line of a header that names the sender first and wraps before
/// its verb: an address and a date or time.
pub(super) fn opens_named_header(line: &str) -> bool {
    static YEAR: LazyLock<Regex> = LazyLock::new(|| re(r"\d{4}"));
    line.contains('@') && (TIME.is_match(line) || YEAR.is_match(line))
}

impl Doc<'_> {
    /// An attribution starting at line `i`: returns one past its last line.
    pub(super) fn attribution_at(
        &self,
        i: usize,
        code: &[bool],
        next_nonblank: &[usize],
    ) -> Option<usize> {
        let n = self.lines.len();
        let quote_below = |after: usize| {
            let below = next_nonblank.get(after).copied().unwrap_or(n);
            below < n && self.kind[below] == Kind::Quote
        };
        let line = self.lines[i].trim();
        if is_attr_start(line) {
            let window = (i + HEADER_WINDOW).min(n);
            let (rest, rest_code) = (&self.lines[i + 1..window], &code[i + 1..window]);
            let quoted = |k| quote_below(i + k);
            if let Some(len) = wrapped_attribution(line, rest, rest_code, true, quoted) {
                return Some(i + len);
            }
        }
        if ATTR_COMPLETE.is_match(line) {
            return Some(i + 1);
        }
        // A verb line alone ("Alice <a@x> wrote:", Thunderbird's "Alice wrote:")
        // needs evidence: an address, a time, or a quote right below it.
        let evidence = || line.contains('@') || TIME.is_match(line) || quote_below(i + 1);
        if line.len() <= 300 && is_attr_end(line) && has_verb(line) && evidence() {
            return Some(i + 1);
        }
        None
    }

    /// An Outlook-style header block (`From:`, `Sent:`, `To:`, `Subject:` in
    /// any of our languages, in any order) starting at line `i`: returns one
    /// past its end.
    pub(super) fn header_block_at(&self, i: usize) -> Option<usize> {
        if !is_field(head(self.lines[i], MAX_CLASSIFIED_LINE)) {
            return None;
        }
        let n = self.lines.len();
        let (mut fields, mut from, mut continuation) = (0, false, 0);
        let (mut dated, mut addressed) = (false, false);
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
                dated |= DATE_FIELD
                    .captures(l)
                    .and_then(|c| c.get(1))
                    .is_some_and(|v| YEAR_AND_TIME.is_match(v.as_str()));
                addressed |= l.contains('@');
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
        // Three fields and a From, or a full date and an address (`Date:` and
        // `To:` alone, as some clients quote).
        ((fields >= 3 && from) || (fields >= 2 && dated && addressed)).then_some(end)
    }
}

/// The words a glued attribution may start with (those of `ATTR_START`).
const INTRO_WORDS: &[&str] = &[
    "On ", "At ", "Am ", "Le ", "El ", "Il ", "Op ", "Em ", "Às ", "Den ", "På ", "Dnia ",
    "W dniu ", "In data ", "No dia ", "Vào ", "Dne ", "在",
];

/// How far from the end of a line a glued header may start: headers run
/// to a few dozen words.
const GLUE_TAIL: usize = 300;

/// How far into a line a phone footer glued to a header may run
/// ("Sent from Samsung Mobile").
const GLUE_FOOTER: usize = 80;

/// At most this many places on one line are tried as a glued header's start.
const GLUE_TRIES: usize = 4;

/// Where a quote header glued to what precedes it on `line` starts: "…the
/// reply On Mon, … wrote:" (perhaps wrapped onto `rest`), "reply--- On …",
/// "Sent from Samsung MobileOn …", "…Mobile-------- Original message
/// --------". Only a header that would be one on a line of its own counts,
/// and with an address or a quote below it (a time is no evidence inside a
/// sentence), after text with letters that is not itself the header's start.
pub(super) fn glued_header_at(line: &str, rest: &[&str], rest_code: &[bool]) -> Option<usize> {
    // Every header ends in a colon or dashes within the window: most lines
    // leave here.
    let ends = |l: &str| l.trim_end().ends_with([':', '：', '-']);
    if line.len() < 8 || !(ends(line) || rest.iter().take(HEADER_WINDOW - 1).any(|l| ends(l))) {
        return None;
    }
    let quote_below = |k: usize| {
        rest.iter()
            .skip(k.saturating_sub(1))
            .take(3)
            .find(|l| !is_blank(l))
            .is_some_and(|l| is_quote_line(l))
    };
    let mut from = line.len().saturating_sub(GLUE_TAIL);
    while !line.is_char_boundary(from) {
        from += 1;
    }
    let mut candidates: Vec<usize> = line[from..]
        .char_indices()
        .map(|(o, _)| from + o)
        .filter(|&p| p > 0 && glue_candidate(line, p))
        .collect();
    candidates.reverse();
    for p in candidates.into_iter().take(GLUE_TRIES) {
        let (prefix, suffix) = line.split_at(p);
        if !has_letters(prefix) || is_attr_start(prefix.trim()) {
            continue;
        }
        let suffix = suffix.trim_end();
        let header = ORIGINAL_MESSAGE.is_match(suffix)
            || (is_attr_start(suffix)
                && wrapped_attribution(suffix, rest, rest_code, false, quote_below).is_some())
            || (glued_to_footer(prefix)
                && is_attr_end(suffix)
                && has_verb(suffix)
                && suffix.contains('@'));
        if header {
            // "reply--- On …": the dashes open the header.
            let before = prefix.trim_end_matches(' ');
            return Some(if before.ends_with("--") {
                before.trim_end_matches('-').len()
            } else {
                p
            });
        }
    }
    None
}

/// Whether a glued header may start at byte `p` of `line`: an intro word
/// after a space or punctuation (or right after a phone footer), a run of
/// dashes, or a capital right after a phone footer ("MobileAlice <a@x>
/// wrote:").
fn glue_candidate(line: &str, p: usize) -> bool {
    let (prefix, suffix) = line.split_at(p);
    let Some(prev) = prefix.chars().next_back() else {
        return false;
    };
    let Some(c) = suffix.chars().next() else {
        return false;
    };
    if c == '-' {
        return prev != '-' && suffix.starts_with("--");
    }
    if !(c.is_uppercase() || c == '在') {
        return false;
    }
    let after_break = prev.is_whitespace()
        || matches!(
            prev,
            '.' | '!' | '?' | ')' | ',' | ';' | '。' | '！' | '？' | '>'
        );
    let intro = INTRO_WORDS.iter().any(|w| suffix.starts_with(w));
    (intro && after_break) || (prev.is_lowercase() && p <= GLUE_FOOTER && glued_to_footer(prefix))
}

/// A phone footer a header was run into ("Sent from Samsung Mobile").
fn glued_to_footer(prefix: &str) -> bool {
    prefix.len() <= GLUE_FOOTER && FOOTER.is_match(prefix.trim())
}

/// `lines` with each glued quote header (`glued_header_at`) split from the
/// text before it: two slices of the same line. Code is never split.
pub(super) fn unglue(lines: Vec<&str>, code: Vec<bool>) -> (Vec<&str>, Vec<bool>) {
    let n = lines.len();
    let mut out = Vec::with_capacity(n);
    let mut out_code = Vec::with_capacity(n);
    for (i, (&line, &is_code)) in lines.iter().zip(&code).enumerate() {
        let window = (i + HEADER_WINDOW).min(n);
        let at = (!is_code && !is_quote_line(line))
            .then(|| glued_header_at(line, &lines[i + 1..window], &code[i + 1..window]))
            .flatten();
        match at {
            Some(p) => {
                out.extend([line[..p].trim_end(), &line[p..]]);
                out_code.extend([false, false]);
            }
            None => {
                out.push(line);
                out_code.push(is_code);
            }
        }
    }
    (out, out_code)
}
