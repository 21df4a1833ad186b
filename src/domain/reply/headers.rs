//! Quote headers: the attribution line ("On … wrote:") in each language we
//! know, Outlook's header block, "Original Message" separators and forward
//! markers. Every pattern is anchored or tried on a bounded window of lines.

use super::*;

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

pub(super) static ORIGINAL_MESSAGE: LazyLock<Regex> = LazyLock::new(|| {
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

impl Doc<'_> {
    /// An attribution starting at line `i`: returns one past its last line.
    pub(super) fn attribution_at(
        &self,
        i: usize,
        code: &[bool],
        next_nonblank: &[usize],
    ) -> Option<usize> {
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
    pub(super) fn header_block_at(&self, i: usize) -> Option<usize> {
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
