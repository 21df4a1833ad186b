//! Reply extraction: what the person wrote now, apart from the quoted history
//! and their signature. This is the baseline (the gateway's own marker,
//! trailing quotes after a quote header, `-- ` signatures, forwards kept whole);
//! the reply-extraction issue extends the set of clients and languages.

use std::sync::LazyLock;

use regex::Regex;

/// The first line of every notification; replies are cut here (DESIGN).
pub const MARKER: &str = "--- Reply above this line ---";

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
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
}

static QUOTE_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?x)^\s*(?:
            On\s.{1,200}\swrote:\s*$                                   # Gmail, Apple Mail, Thunderbird
          | -{2,}\s*Original\s+Message\s*-{2,}\s*$                     # Outlook
          | Am\s.{1,200}\sschrieb.{0,100}:\s*$                          # German
          | Le\s.{1,200}\sa\s+écrit\s*:\s*$                             # French
          | El\s.{1,200}\sescribió:\s*$                                 # Spanish
          | Il\s.{1,200}\sha\s+scritto:\s*$                             # Italian
        )",
    )
    .expect("static regex")
});

static FORWARD_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*(?:-{2,}\s*Forwarded message\s*-{2,}|Begin forwarded message:|-{2,}\s*Weitergeleitete Nachricht\s*-{2,})")
        .expect("static regex")
});

static MOBILE_FOOTER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*(?:Sent from my \w+|Sent from (?:Mail|Outlook) for \w+|Get Outlook for \w+|Von meinem \w+ gesendet|Envoyé de mon \w+)\b.*$")
        .expect("static regex")
});

fn join(lines: &[&str]) -> String {
    lines.join("\n").trim_matches('\n').trim_end().to_string()
}

fn non_empty(text: String) -> Option<String> {
    (!text.trim().is_empty()).then_some(text)
}

/// Splits a plain-text body.
pub fn extract_text(text: &str) -> Extracted {
    let lines: Vec<&str> = text.lines().collect();
    let forwarded = lines.iter().any(|l| FORWARD_HEADER.is_match(l));

    // 1. Our marker: everything from it on is the notification being answered.
    let mut cut = lines
        .iter()
        .position(|l| l.trim() == MARKER)
        .unwrap_or(lines.len());

    // 2. A quote header followed only by quoted text, blank lines or the quoted
    //    message itself ends the reply. Forwards are content and are kept.
    if !forwarded {
        if let Some(pos) = lines[..cut].iter().position(|l| QUOTE_HEADER.is_match(l)) {
            cut = pos;
        } else {
            // Bottom quote without a header: trailing `>` lines (inline answers
            // above them stay, since only the final run is removed).
            let mut end = cut;
            while end > 0 && (lines[end - 1].trim().is_empty() || lines[end - 1].starts_with('>')) {
                end -= 1;
            }
            if lines[end..cut].iter().any(|l| l.starts_with('>')) {
                cut = end;
            }
        }
    }
    let quoted = non_empty(join(&lines[cut..]));
    let mut body = &lines[..cut];

    // 3. Signature: the last `-- ` separator (RFC 3676 §4.3), or a mobile footer.
    let mut signature = None;
    if let Some(pos) = body.iter().rposition(|l| *l == "-- " || *l == "--") {
        signature = non_empty(join(&body[pos + 1..]));
        body = &body[..pos];
    } else if let Some(pos) = body.iter().rposition(|l| !l.trim().is_empty())
        && MOBILE_FOOTER.is_match(body[pos])
    {
        signature = Some(body[pos].trim().to_string());
        body = &body[..pos];
    }
    Extracted {
        reply: join(body),
        signature,
        quoted,
        forwarded,
    }
}

/// Splits an HTML body: converted to text first, so the same rules apply.
pub fn extract_html(html: &str) -> Extracted {
    extract_text(&super::mail::html_to_text(html))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_cut_at_the_marker_and_quote_headers() {
        let cases = [
            (
                "marker",
                "Thanks!\n\n--- Reply above this line ---\nold",
                "Thanks!",
                Some("--- Reply above this line ---\nold"),
            ),
            (
                "gmail",
                "Sounds good.\n\nOn Mon, 23 Nov 2026 at 09:14, Alice <a@x.test> wrote:\n> hi\n",
                "Sounds good.",
                Some("On Mon, 23 Nov 2026 at 09:14, Alice <a@x.test> wrote:\n> hi"),
            ),
            (
                "outlook",
                "Done.\n\n-----Original Message-----\nFrom: x\n",
                "Done.",
                Some("-----Original Message-----\nFrom: x"),
            ),
            (
                "bottom quote",
                "> question?\nanswer\n\n> old\n> older\n",
                "> question?\nanswer",
                Some("> old\n> older"),
            ),
            (
                "nothing quoted",
                "Just text\nsecond line\n",
                "Just text\nsecond line",
                None,
            ),
        ];
        for (name, input, reply, quoted) in cases {
            let got = extract_text(input);
            assert_eq!(got.reply, reply, "{name}");
            assert_eq!(got.quoted.as_deref(), quoted, "{name}");
        }
    }

    #[test]
    fn signatures_are_split_off() {
        let got = extract_text("Fixed, thanks.\n-- \nAlice Anders\nACME\n");
        assert_eq!(got.reply, "Fixed, thanks.");
        assert_eq!(got.signature.as_deref(), Some("Alice Anders\nACME"));
        let got = extract_text("ok\n\nSent from my iPhone\n");
        assert_eq!(
            (got.reply.as_str(), got.signature.as_deref()),
            ("ok", Some("Sent from my iPhone"))
        );
    }

    #[test]
    fn forwards_are_content() {
        let got = extract_text("FYI\n\n---------- Forwarded message ---------\nFrom: x\n\nbody\n");
        assert!(got.forwarded);
        assert!(got.reply.contains("body"));
        assert_eq!(got.quoted, None);
    }

    #[test]
    fn an_only_quote_falls_back_to_the_full_text_for_the_comment() {
        let text = "> just a quote\n";
        let got = extract_text(text);
        assert_eq!(got.reply, "");
        assert_eq!(got.comment_text(text), "> just a quote");
    }
}
