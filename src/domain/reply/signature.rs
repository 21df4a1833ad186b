//! Signatures and mobile footers, read from the end of the reply.

use super::*;

/// Footers mobile and web clients append ("Sent from my iPhone", "Sent from
/// Samsung Mobile", BlackBerry's "Sent wirelessly from my BlackBerry device…",
/// Sparrow's "Sent with Sparrow"), localized. Matched against a whole, short
/// line, and only at the end of the reply.
pub(super) static FOOTER: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?xi)^(?:
        sent\s(?:from|via|with|using|by|on)\s.{1,120}
      | sent\swirelessly\s.{1,120}
      | from\smy\s(?:iphone|ipad|ipod|android|mobile|phone|cell|smartphone|tablet|galaxy|samsung|blackberry).{0,40}
      | \S+\sfrom\s(?:my\s)?mobile.{0,40}
      | get\s\[?outlook\b.{0,120}
      | von\s(?:meinem|meiner)\s.{1,60}\sgesendet\.?
      | gesendet\s(?:von|mit|vom|aus)\s.{1,80}
      | (?:drahtlos|mobil)\sgesendet\s(?:von|mit|vom|über)\s.{1,80}
      | diese\snachricht\swurde\s(?:von|mit)\s.{1,80}\sgesendet\.?
      | envoyé\s(?:de|depuis|avec|à\spartir\sde)\s.{1,80}
      | envoyé\ssans\sfil\s(?:par|de|depuis)\s.{1,100}
      | obtenir\soutlook\spour\s.{1,40}
      | enviado\s(?:desde|do|da|con|com|pelo|pela)\s.{1,80}
      | enviado\s(?:de\smi|de\sforma\sinalámbrica|inalámbricamente)\s.{1,100}
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
      | được\sgửi\stừ\s.{1,80}
      | .{1,40}(?:umdan|imden|ümden|ımdan|umden)\sgönderildi
      | .{1,40}에서\s보냄
      | (?:发自|来自|寄自)我的.{0,40}
      | 從我的.{0,40}傳送
      | .{1,40}から(?:ワイヤレスで)?送信(?:されました|しました)?
      | .{0,30}outlook.{0,20}を入手
    )$")
});

/// The separator line of a signature ending at `end`: the last `-- ` with at
/// most `MAX_SIGNATURE_LINES` lines after it, or a line of underscores with at
/// most four (Hotmail and Outlook.com put one above the signature).
pub(super) fn signature_start(doc: &Doc<'_>, part: &[Part], end: usize) -> Option<usize> {
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

/// Closings that end a message, lowercased, without their trailing
/// punctuation. Matched against a whole line (or the start of one followed by
/// a name), never inside a sentence.
#[rustfmt::skip]
const CLOSINGS: &[&str] = &[
    // en
    "thanks", "thank you", "thanks again", "thanks a lot", "thanks so much", "many thanks",
    "thanks in advance", "thanks and regards", "thanks & regards", "thank you very much",
    "thx", "cheers", "best", "best regards", "kind regards", "warm regards", "regards",
    "best wishes", "all the best", "sincerely", "yours sincerely", "yours truly", "yours",
    "take care", "talk soon", "br", "rgds",
    // de
    "danke", "vielen dank", "danke schön", "dankeschön", "gruß", "grüße", "viele grüße",
    "beste grüße", "liebe grüße", "herzliche grüße", "schöne grüße", "freundliche grüße",
    "mit freundlichen grüßen", "lg", "vg", "mfg", "bis bald", "tschüss", "servus",
    // fr
    "merci", "merci beaucoup", "cordialement", "bien cordialement", "bien à vous",
    "bonne journée", "bonne soirée", "salutations", "amicalement", "à bientôt", "bises",
    // es
    "gracias", "muchas gracias", "saludos", "un saludo", "saludos cordiales", "atentamente",
    "un abrazo", "cordialmente",
    // pt
    "obrigado", "obrigada", "muito obrigado", "muito obrigada", "abraço", "abraços",
    "um abraço", "atenciosamente", "cumprimentos", "att", "saudações",
    // it
    "grazie", "grazie mille", "saluti", "cordiali saluti", "distinti saluti", "un saluto",
    "buona giornata", "a presto", "ciao",
    // nl
    "bedankt", "dank je", "dank je wel", "groeten", "groet", "met vriendelijke groet",
    "met vriendelijke groeten", "mvg",
    // sv, no, da
    "tack", "hälsningar", "vänliga hälsningar", "med vänlig hälsning", "mvh", "takk",
    "hilsen", "med vennlig hilsen", "med venlig hilsen",
    // pl
    "dzięki", "dziękuję", "pozdrawiam", "pozdrowienia", "z poważaniem",
    // ru, uk
    "спасибо", "с уважением", "всего доброго", "всего хорошего", "благодарю", "дякую",
    "з повагою",
    // tr
    "teşekkürler", "teşekkür ederim", "saygılarımla", "iyi çalışmalar", "selamlar",
    "sevgiler",
    // vi
    "cảm ơn", "cám ơn", "xin cảm ơn", "trân trọng", "thân ái", "thân mến",
    // zh, ja, ko
    "谢谢", "多谢", "此致", "此致敬礼", "祝好", "顺祝商祺", "ありがとうございます",
    "よろしくお願いします", "よろしくお願いいたします", "以上です", "감사합니다",
    "고맙습니다", "수고하세요",
];

/// A line lowercased, trimmed, without the punctuation or smiley a closing
/// ends with ("Thanks!", "Cheers :)", "谢谢！").
fn bare(line: &str) -> String {
    line.trim()
        .trim_end_matches([
            ',', '.', '!', ';', ':', '-', ')', '(', '~', '…', ' ', '\t', '。', '！', '，', '、',
        ])
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// "Thanks!", "Best regards,", "Mit freundlichen Grüßen", "谢谢".
pub(super) fn is_closing(line: &str) -> bool {
    let line = line.trim();
    line.chars().count() <= 40 && CLOSINGS.contains(&bare(line).as_str())
}

/// A closing and a name on one line: "Regards, Roman", "Cheers Bob", "Best, R."
/// With a known sender the name must be theirs; else it must look like one.
fn is_closing_and_name(line: &str, sender: &Sender) -> bool {
    let line = line.trim();
    if line.chars().count() > 60 {
        return false;
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    (1..words.len().min(5)).any(|k| {
        let (closing, name) = (words[..k].join(" "), words[k..].join(" "));
        is_closing(&closing)
            && if sender.is_known() {
                sender.is_named_by(&name)
            } else {
                is_name_like(&name)
            }
    })
}

/// A line that could be someone's name: one to three capitalised words
/// ("Roman", "Anna-Lena Berg", "R. L."), or a short word in a script without
/// capitals ("田中"), with nothing that ends a sentence.
pub(super) fn is_name_like(line: &str) -> bool {
    let t = line
        .trim()
        .trim_start_matches(['-', '–', '—', '~', ' '])
        .trim_end_matches(['.', ',', ' ']);
    let words: Vec<&str> = t.split_whitespace().collect();
    if words.is_empty() || words.len() > 3 || t.chars().count() > 40 {
        return false;
    }
    words.iter().all(|w| {
        let mut chars = w.chars();
        let first = chars.next().unwrap_or(' ');
        let letters = w
            .chars()
            .all(|c| c.is_alphabetic() || matches!(c, '.' | '-' | '\''));
        letters
            && (first.is_uppercase()
                || (!first.is_lowercase() && first.is_alphabetic() && w.chars().count() <= 6))
    })
}

/// A line of a signature's contact block: a phone number, an address, a web
/// site ("+43 1 234 5678", "Tel: 030 1234567", "alice@example.test",
/// "www.example.test").
pub(super) fn is_contact(line: &str) -> bool {
    let t = line.trim();
    if t.chars().count() > 100 || t.split_whitespace().count() > 8 {
        return false;
    }
    let lower = t.to_lowercase();
    if lower.contains("http://") || lower.contains("https://") || lower.contains("www.") {
        return true;
    }
    if let Some((local, domain)) = t.rsplit_once('@')
        && !local.is_empty()
        && domain.contains('.')
        && !domain.contains(' ')
    {
        return true;
    }
    let digits = t.chars().filter(char::is_ascii_digit).count();
    let letters = t.chars().filter(|c| c.is_alphabetic()).count();
    digits >= 7 && letters <= 12
}

/// A line of the title and company part of a signature: a few words, the
/// first capitalised, that end no sentence ("Support Engineer", "ACME Ltd.",
/// "Responsable informatique"; not "The log is attached below.").
fn is_title_like(line: &str) -> bool {
    let t = line.trim();
    let words: Vec<&str> = t.split_whitespace().collect();
    let (Some(first), Some(last)) = (words.first(), words.last()) else {
        return false;
    };
    if words.len() > 6 || t.chars().count() > 60 || t.ends_with(['?', '!', ':', ';']) {
        return false;
    }
    let lower = t.to_lowercase();
    if lower.starts_with("p.s") || lower.starts_with("ps ") || lower.starts_with("ps:") {
        return false;
    }
    // A final dot ends a sentence, unless it ends an abbreviation ("Ltd.").
    let capital = |w: &str| {
        w.chars()
            .next()
            .is_some_and(|c| c.is_uppercase() || c.is_ascii_digit())
    };
    capital(first) && (!t.ends_with('.') || capital(last))
}

/// The most non-blank lines a signature found without a `-- ` may have.
const MAX_UNMARKED_SIGNATURE: usize = 6;

/// A signature without a `-- ` above it, ending at `end`: returns its first
/// line and the dash rule above it, if any (dropped as decoration).
///
/// - The sender signing: a line that names them (`Sender::is_named_by`, or a
///   closing and their name), perhaps after a closing line ("Thanks!" /
///   "Roman") and before contact or title lines, perhaps below a dash rule.
/// - Anyone: a dash rule, then a name-like line, then contact lines (one at
///   least: a phone, an address or a web site) and title lines.
///
/// Only when text of the reply stays above it: a message that is only a
/// signature keeps it as its reply.
pub(super) fn unmarked_signature(
    doc: &Doc<'_>,
    part: &[Part],
    end: usize,
    sender: &Sender,
) -> Option<(usize, Option<usize>)> {
    // The last few non-blank lines, last first: all reply text, none long.
    let mut lines = Vec::new();
    let mut j = end;
    let mut rule = None;
    while j > 0 && lines.len() <= MAX_UNMARKED_SIGNATURE {
        j -= 1;
        if part[j] != Part::Reply {
            break;
        }
        match doc.kind[j] {
            Kind::Blank => {}
            Kind::Text => lines.push(j),
            Kind::Delimiter if is_dash_rule(doc.lines[j]) => {
                rule = Some(j);
                break;
            }
            _ => break,
        }
    }
    if lines.is_empty() {
        return None;
    }
    let text = |k: usize| doc.lines[lines[k]];
    // `lines[k]` is the name line; below it (k-1 … 0) only contact and title lines.
    let below_ok = |k: usize| (0..k).all(|b| is_contact(text(b)) || is_title_like(text(b)));
    let mut found = None;
    if sender.is_known() {
        for k in 0..lines.len().min(4) {
            let line = text(k);
            if (sender.is_named_by(line) || is_closing_and_name(line, sender)) && below_ok(k) {
                // A closing line directly above belongs to it.
                let top = if k + 1 < lines.len() && is_closing(text(k + 1)) {
                    k + 1
                } else {
                    k
                };
                found = Some(top);
                break;
            }
        }
    }
    if found.is_none() && rule.is_some() {
        // Below a dash rule, from anyone: a name and its contact lines.
        let k = lines.len() - 1;
        let contact = (0..k).any(|b| is_contact(text(b)));
        if (1..=MAX_UNMARKED_SIGNATURE).contains(&lines.len())
            && is_name_like(text(k))
            && contact
            && below_ok(k)
        {
            found = Some(k);
        }
    }
    let top = found?;
    let start = lines[top];
    // The rule counts only when it is directly above what was found.
    let rule = rule.filter(|_| top == lines.len() - 1);
    let above = rule.unwrap_or(start);
    let text_above = (0..above).any(|a| part[a] == Part::Reply && doc.kind[a] == Kind::Text);
    text_above.then_some((start, rule))
}

/// A rule of dashes or em dashes (`---`, `———`): above a signature, a
/// separator like `-- ` that people type by hand.
fn is_dash_rule(line: &str) -> bool {
    let t = line.trim();
    t.chars().count() >= 2 && t.chars().all(|c| matches!(c, '-' | '—' | '–'))
}

/// What follows the last quote when it is only a sign-off: a closing ("Thanks,"),
/// a closing and a name (on one line or two), or the sender's own name. After
/// such a tail the quote was not answered: it is the history, not context.
pub(super) fn is_sign_off(lines: &[&str], sender: &Sender) -> bool {
    let named = |l: &str| {
        if sender.is_known() {
            sender.is_named_by(l)
        } else {
            is_name_like(l)
        }
    };
    match lines {
        [one] => is_closing(one) || is_closing_and_name(one, sender) || sender.is_named_by(one),
        [first, second] => is_closing(first) && named(second),
        [first, second, third] => {
            is_closing(first) && named(second) && (is_title_like(third) || is_contact(third))
        }
        _ => false,
    }
}

/// Words that, alone or in a short line, are an answer and not a name
/// ("Done", "Works", "了解"), lowercased.
#[rustfmt::skip]
const NOT_NAMES: &[&str] = &[
    "yes", "no", "ok", "okay", "done", "fixed", "sure", "agreed", "great", "perfect", "nope",
    "yep", "yup", "confirmed", "resolved", "works", "working", "noted", "understood", "approved",
    "same", "hi", "hello", "hey", "nothing", "none", "true", "false", "good", "fine", "correct",
    "right", "exactly", "indeed", "later", "tomorrow", "today", "soon", "please", "urgent",
    "ja", "nein", "oui", "non", "sí", "了解", "承知", "確認", "以上",
];

/// A line that can be a name when the sender is unknown: name-like, and no
/// closing, no common one-word answer, no hiragana (Japanese names are
/// written in kanji or katakana; a line with hiragana is a sentence).
fn is_anyones_name(line: &str) -> bool {
    if !is_name_like(line) || is_closing(line) {
        return false;
    }
    let lower = line.to_lowercase();
    let not_a_name = lower
        .split(|c: char| c.is_whitespace() || matches!(c, '.' | ',' | '-'))
        .any(|w| NOT_NAMES.contains(&w));
    !not_a_name && !line.chars().any(|c| ('\u{3041}'..='\u{309f}').contains(&c))
}

/// `-jo`, `- jo`, `--Ryan`, `-Abhishek Kona`, `-Lev.`: ASCII dashes, then a
/// name, or one lowercase word the way people sign plain-text mail (not
/// after two dashes without a space: `--verbose` is an option). An em dash is
/// left alone: `—Ryan` is typed on purpose, like an attribution, and trimmers
/// that keep sign-offs keep it.
fn is_dashed_name(line: &str) -> bool {
    let t = line.trim();
    let (dashes, rest) = match t.strip_prefix("--") {
        Some(rest) => (2, rest),
        None => match t.strip_prefix('-') {
            Some(rest) => (1, rest),
            None => return false,
        },
    };
    let spaced = rest.starts_with(' ');
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    if rest.is_empty() || rest.starts_with([' ', '-']) {
        return false;
    }
    let core = rest.trim_end_matches(['.', ',', '!']);
    let one_lowercase_word = (dashes == 1 || spaced)
        && (2..=20).contains(&core.chars().count())
        && core.chars().all(char::is_lowercase)
        && !NOT_NAMES.contains(&core);
    one_lowercase_word || is_anyones_name(rest)
}

/// A list item or the line that opens a list: a dashed line below it is one
/// more item ("Todo:" / "- fix"), not a sign-off.
fn opens_or_continues_list(line: &str) -> bool {
    let t = line.trim();
    let numbered = t.split_once(['.', ')']).is_some_and(|(n, _)| {
        !n.is_empty() && n.len() <= 3 && n.bytes().all(|b| b.is_ascii_digit())
    });
    t.ends_with(':') || t.starts_with(['-', '*', '+', '•', '–', '—']) || numbered
}

/// A sign-off from anyone, the sender's name unknown, at the end of the
/// reply (ending at `end`): its first line and the dash rule above it. At
/// most two lines may follow it: a title or contact lines (after a closing
/// and a name, any short line that ends no sentence). Returns nothing unless
/// text of the reply stays above it. The shapes:
///
/// - a dashed name (`-jo`, `- jo`), not below a list item or a line ending
///   in a colon;
/// - a closing, then a name ("Thanks!" / "Jo", "regards", a blank line,
///   "John Doe", "よろしくお願いします。" / "田中"), when it ends the message:
///   above quoted history an unknown sender's closing and name are kept, as
///   most trimmers keep them;
/// - a dash rule (`---`) then a name, the line above the rule no heading;
/// - a name directly above a footer ("Jo Doe" / "Sent with Sparrow").
pub(super) fn bare_sign_off(
    doc: &Doc<'_>,
    part: &[Part],
    end: usize,
) -> Option<(usize, Option<usize>)> {
    let mut lines = Vec::new();
    let mut rule = None;
    let mut j = end;
    while j > 0 && lines.len() < 4 {
        j -= 1;
        if part[j] != Part::Reply {
            break;
        }
        match doc.kind[j] {
            Kind::Blank => {}
            Kind::Text => lines.push(j),
            Kind::Delimiter if is_dash_rule(doc.lines[j]) => {
                rule = Some(j);
                break;
            }
            _ => break,
        }
    }
    let text = |k: usize| doc.lines[lines[k]];
    // Below the line `k`: a title and contact lines only, two at most.
    let tail_ok =
        |k: usize| k <= 2 && (0..k).all(|b| is_contact(text(b)) || is_title_like(text(b)));
    // Below a closing and a name, any short line that ends no sentence
    // ("acme.test", "support team") is theirs too; a postscript is not.
    let short_tail_ok = |k: usize| {
        k <= 2
            && (0..k).all(|b| {
                let t = text(b).trim();
                let lower = t.to_lowercase();
                let postscript = lower.starts_with("p.s") || lower.starts_with("ps");
                is_contact(t)
                    || is_title_like(t)
                    || (!postscript
                        && t.split_whitespace().count() <= 3
                        && t.chars().count() <= 30
                        && !t.ends_with(['.', '?', '!', ':', ';', '。', '？', '！']))
            })
    };
    // The nearest non-blank line above line `i`.
    let above = |i: usize| (0..i).rev().find(|&a| doc.kind[a] != Kind::Blank);
    let n = doc.lines.len();
    let history_below = (end..n).any(|b| part[b] == Part::Quoted && has_letters(doc.lines[b]));

    let mut found = None;
    for k in 0..lines.len() {
        let dashed = is_dashed_name(text(k))
            && !above(lines[k]).is_some_and(|a| opens_or_continues_list(doc.lines[a]));
        let closing_and_name = !history_below
            && k + 1 < lines.len()
            && is_closing(text(k + 1))
            && is_anyones_name(text(k));
        let below_rule = rule.is_some()
            && k + 1 == lines.len()
            && is_anyones_name(text(k))
            && !rule
                .and_then(above)
                .is_some_and(|a| doc.lines[a].trim_end().ends_with(':'));
        let above_footer =
            k == 0 && doc.kind.get(lines[0] + 1) == Some(&Kind::Footer) && is_anyones_name(text(0));
        if (dashed || below_rule || above_footer) && tail_ok(k) {
            found = Some(k);
            break;
        }
        if closing_and_name && short_tail_ok(k) {
            found = Some(k + 1);
            break;
        }
    }
    let top = found?;
    let start = lines[top];
    let rule = rule.filter(|_| top + 1 == lines.len());
    let first = rule.unwrap_or(start);
    let text_above = (0..first).any(|a| part[a] == Part::Reply && doc.kind[a] == Kind::Text);
    text_above.then_some((start, rule))
}
