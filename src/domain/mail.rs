//! `InboundMail`: one received message, parsed by mail-parser and normalized into
//! the few things ticketgate decides on. Parsing never fails on odd input: the
//! parser is lenient by design and anything it could not decode is kept as
//! lossily as needed rather than dropped.

use mail_parser::{
    Address, HeaderName, HeaderValue, Message, MessageParser, MessagePart, MimeHeaders, PartType,
};

use std::collections::VecDeque;

use super::clean;
use super::ids::{EmailAddress, MessageId};

/// A display name with its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub name: Option<String>,
    pub address: EmailAddress,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// Decoded file name (RFC 2047 and RFC 2231, continuations included).
    pub filename: String,
    pub content_type: String,
    pub data: Vec<u8>,
}

/// The header facts the automatic-mail rule looks at (docs/contract.md, "Mail").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AutoHeaders {
    /// RFC 3834 §5 `Auto-Submitted`, lowercased, parameters removed.
    pub auto_submitted: Option<String>,
    /// `Precedence`, lowercased (RFC 2076 §3.9, de facto).
    pub precedence: Option<String>,
    pub x_autoreply: bool,
    pub x_autorespond: bool,
    /// `Return-Path: <>`: a bounce or other notification (RFC 5321 §4.5.5).
    pub null_return_path: bool,
    /// `Content-Type: multipart/report` (RFC 6522).
    pub delivery_report: bool,
    /// Message-IDs of the original messages a report is about.
    pub report_about: Vec<MessageId>,
    /// Recipients a delivery report says failed (RFC 3464 Final-Recipient).
    pub report_recipients: Vec<EmailAddress>,
    /// Outlook's `X-Auto-Response-Suppress`: the sender asks for no automatic answer.
    pub suppress_auto_response: bool,
    /// `X-Loop` values, lowercased: a gateway marks its own mail with its address.
    pub x_loop: Vec<String>,
    pub list_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMail {
    pub message_id: Option<MessageId>,
    pub in_reply_to: Vec<MessageId>,
    pub references: Vec<MessageId>,
    pub from: Option<Mailbox>,
    pub reply_to: Vec<Mailbox>,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    /// `Delivered-To` and `X-Original-To`, where MTAs record the envelope recipient.
    pub delivered_to: Vec<EmailAddress>,
    pub subject: String,
    /// Seconds since the epoch, from the Date header when it parses.
    pub date: Option<i64>,
    /// The plain-text body; converted from HTML when the message has no text part.
    pub text: String,
    pub html: Option<String>,
    pub text_from_html: bool,
    pub attachments: Vec<Attachment>,
    pub auto: AutoHeaders,
    /// Raw `Authentication-Results` values (RFC 8601), checked against the trusted authserv-id later.
    pub authentication_results: Vec<String>,
    /// How many From header fields the message has. RFC 5322 §3.6 allows one;
    /// with two, DMARC verifiers and mail clients read the first and a parser
    /// may pick the last, so such a message is never acted on.
    pub from_fields: usize,
    pub raw_size: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the message is empty")]
    Empty,
    #[error("no header section could be parsed")]
    NoHeaders,
    /// More MIME parts or containers than any person sends (`MAX_MIME_PARTS`,
    /// `MAX_MIME_BOUNDARIES`): only the header section is read.
    #[error("the message has too many MIME parts")]
    TooComplex,
}

/// The most MIME parts a message may have before it is refused unread. The
/// parser builds every part with its headers (about 1 KB each), so a 26 MB
/// message of 3 million empty parts took 591 MB.
pub const MAX_MIME_PARTS: usize = 2_000;

/// The most distinct multipart boundaries (so nested containers) a message
/// may declare.
pub const MAX_MIME_BOUNDARIES: usize = 64;

/// Whether a message is too complex to hand to the parser, from its raw
/// bytes in a few linear scans (no tree built). mail-parser finds `--boundary`
/// anywhere, not only at a line start (RFC 2046 §5.1.1 wants a line), so the
/// count here is an upper bound taken the same way: every `--` followed by a
/// declared boundary, plus every `message/rfc822` or `message/global` (a part
/// holding a whole message, RFC 2046 §5.2.1; nested ones make the depth).
pub fn too_complex(raw: &[u8]) -> bool {
    use memchr::{memchr_iter, memmem};
    let mut boundaries: Vec<&[u8]> = Vec::new();
    for at in memchr_iter(b'=', raw) {
        // `boundary`, any case, then RFC 2231's `*`, `*0` or spaces, then `=`.
        let name_end = raw[..at]
            .iter()
            .rposition(|b| !matches!(b, b'*' | b'0'..=b'9' | b' ' | b'\t'))
            .map_or(0, |p| p + 1);
        let is_boundary =
            name_end >= 8 && raw[name_end - 8..name_end].eq_ignore_ascii_case(b"boundary");
        if let Some(value) = is_boundary
            .then(|| boundary_value(&raw[at + 1..]))
            .flatten()
            && !boundaries.contains(&value)
        {
            if boundaries.len() == MAX_MIME_BOUNDARIES {
                return true;
            }
            boundaries.push(value);
        }
    }
    let mut parts = 0;
    for boundary in boundaries {
        let mut delimiter = b"--".to_vec();
        delimiter.extend_from_slice(boundary);
        parts += memmem::find_iter(raw, &delimiter).count();
        if parts > MAX_MIME_PARTS {
            return true;
        }
    }
    for at in memchr_iter(b'/', raw) {
        let kind = raw[at + 1..].get(..6).unwrap_or_default();
        if at >= 7
            && raw[at - 7..at].eq_ignore_ascii_case(b"message")
            && (kind.eq_ignore_ascii_case(b"rfc822") || kind.eq_ignore_ascii_case(b"global"))
        {
            parts += 1;
            if parts > MAX_MIME_PARTS {
                return true;
            }
        }
    }
    false
}

/// The value of a `boundary` parameter after its `=`: `"b"`, `b`, or RFC
/// 2231's `''b`; `None` when empty.
fn boundary_value(rest: &[u8]) -> Option<&[u8]> {
    let mut i = 0;
    while i < rest.len() && matches!(rest[i], b' ' | b'\t' | b'\'') {
        i += 1;
    }
    let quoted = rest.get(i) == Some(&b'"');
    i += usize::from(quoted);
    let value = &rest[i..];
    let end = value
        .iter()
        .position(|&b| {
            if quoted {
                b == b'"' || b == b'\r' || b == b'\n'
            } else {
                b == b';' || b.is_ascii_whitespace()
            }
        })
        .unwrap_or(value.len());
    (end > 0).then(|| &value[..end])
}

/// mail-parser as its default (`MessageStream::parse_headers` with an empty
/// map), except `In-Reply-To` and `References`, kept raw: its id parser
/// allocates every id of a list (200,000 of them fit in a 1 MB header), where
/// `ids_of` keeps a few in one pass. A custom map replaces the whole default,
/// so it is spelled out here.
fn parser() -> &'static MessageParser {
    static PARSER: std::sync::LazyLock<MessageParser> = std::sync::LazyLock::new(|| {
        use HeaderName as H;
        let mut p = MessageParser::new().default_header_raw();
        for h in [
            H::Subject,
            H::Comments,
            H::ContentDescription,
            H::ContentLocation,
            H::ContentTransferEncoding,
        ] {
            p = p.header_text(h);
        }
        for h in [
            H::From,
            H::To,
            H::Cc,
            H::Bcc,
            H::ReplyTo,
            H::Sender,
            H::ResentTo,
            H::ResentFrom,
            H::ResentBcc,
            H::ResentCc,
            H::ResentSender,
            H::ListArchive,
            H::ListHelp,
            H::ListId,
            H::ListOwner,
            H::ListPost,
            H::ListSubscribe,
            H::ListUnsubscribe,
        ] {
            p = p.header_address(h);
        }
        for h in [
            H::MessageId,
            H::ReturnPath,
            H::ContentId,
            H::ResentMessageId,
        ] {
            p = p.header_id(h);
        }
        p.header_date(H::Date)
            .header_date(H::ResentDate)
            .header_comma_separated(H::Keywords)
            .header_comma_separated(H::ContentLanguage)
            .header_received(H::Received)
            .header_raw(H::MimeVersion)
            .header_content_type(H::ContentType)
            .header_content_type(H::ContentDisposition)
            .header_raw(H::InReplyTo)
            .header_raw(H::References)
    });
    &PARSER
}

impl InboundMail {
    /// Parses a whole message.
    pub fn parse(raw: &[u8]) -> Result<Self, ParseError> {
        if raw.iter().all(u8::is_ascii_whitespace) {
            return Err(ParseError::Empty);
        }
        if too_complex(raw) {
            return Err(ParseError::TooComplex);
        }
        let message = parser().parse(raw).ok_or(ParseError::NoHeaders)?;
        if message.headers().is_empty() {
            return Err(ParseError::NoHeaders);
        }
        Ok(Self::from_message(&message, raw.len(), true))
    }

    /// Parses only the header section: enough to log and refuse an oversized message
    /// without decoding megabytes of body.
    pub fn parse_headers(raw: &[u8]) -> Result<Self, ParseError> {
        if raw.iter().take(4096).all(u8::is_ascii_whitespace) {
            return Err(ParseError::Empty);
        }
        let message = parser().parse_headers(raw).ok_or(ParseError::NoHeaders)?;
        Ok(Self::from_message(&message, raw.len(), false))
    }

    fn from_message(message: &Message<'_>, raw_size: usize, with_body: bool) -> Self {
        let mut auto = AutoHeaders::default();
        let mut delivered_to = Vec::new();
        let mut authentication_results = Vec::new();
        let mut from_fields = 0;
        for (name, value) in message.headers_raw() {
            let value = value.trim();
            let lower = || {
                Some(
                    value
                        .split(';')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_ascii_lowercase(),
                )
            };
            match name.to_ascii_lowercase().as_str() {
                "auto-submitted" => auto.auto_submitted = lower(),
                "precedence" => auto.precedence = lower(),
                "x-autoreply" => auto.x_autoreply = true,
                "x-autorespond" => auto.x_autorespond = true,
                "x-auto-response-suppress" => auto.suppress_auto_response = true,
                "return-path" => {
                    auto.null_return_path |= value
                        .trim_matches(|c| c == '<' || c == '>' || c == ' ')
                        .is_empty()
                }
                "x-loop" => auto.x_loop.push(value.to_ascii_lowercase()),
                "list-id" => auto.list_id = Some(clean::line(value)),
                "delivered-to" | "x-original-to" => delivered_to.extend(
                    EmailAddress::parse(value)
                        .ok()
                        .filter(|a| !delivered_to.contains(a)),
                ),
                "authentication-results" => authentication_results.push(unfold(value)),
                "from" => from_fields += 1,
                _ => {}
            }
        }
        auto.delivery_report = message.root_part().content_type().is_some_and(|ct| {
            ct.ctype().eq_ignore_ascii_case("multipart")
                && ct
                    .subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("report"))
        });

        let mut mail = InboundMail {
            message_id: message
                .message_id()
                .and_then(|id| MessageId::parse(id).ok()),
            in_reply_to: ids_of(message.in_reply_to()),
            references: ids_of(message.references()),
            from: message.from().and_then(mailboxes_first),
            reply_to: message.reply_to().map(mailboxes).unwrap_or_default(),
            to: message.to().map(mailboxes).unwrap_or_default(),
            cc: message.cc().map(mailboxes).unwrap_or_default(),
            delivered_to,
            subject: message.subject().map(clean::subject).unwrap_or_default(),
            date: message.date().map(|d| d.to_timestamp()),
            text: String::new(),
            html: None,
            text_from_html: false,
            attachments: Vec::new(),
            auto,
            authentication_results,
            from_fields,
            raw_size,
        };
        if with_body {
            mail.read_bodies(message);
            if mail.auto.delivery_report {
                mail.read_report(message);
            }
        }
        mail
    }

    fn read_bodies(&mut self, message: &Message<'_>) {
        let mut text = String::new();
        for part in message.text_bodies() {
            if let PartType::Text(body) = &part.body {
                push_block(
                    &mut text,
                    &decode_text_part(message.raw_message.as_ref(), part, body),
                );
            }
        }
        let mut html = String::new();
        for part in message.html_bodies() {
            if let PartType::Html(body) = &part.body {
                push_block(&mut html, &normalize(body));
            }
        }
        if text.trim().is_empty() && !html.trim().is_empty() {
            text = html_to_text(&html);
            self.text_from_html = true;
        }

        for (index, part) in message.attachments().enumerate() {
            // A multipart whose boundary is missing cannot be split (RFC 2046
            // §5.1.1 requires the parameter); what the sender wrote is in it as
            // text, so show it rather than hide it in an opaque attachment.
            if text.trim().is_empty()
                && html.is_empty()
                && part
                    .content_type()
                    .is_some_and(|ct| ct.ctype().eq_ignore_ascii_case("multipart"))
                && matches!(part.body, PartType::Binary(_) | PartType::InlineBinary(_))
            {
                text = normalize(&String::from_utf8_lossy(part.contents()));
                continue;
            }
            let inline_body = matches!(part.body, PartType::Text(_) | PartType::Html(_))
                && part.attachment_name().is_none()
                && !part
                    .content_disposition()
                    .is_some_and(|cd| cd.is_attachment());
            if inline_body {
                continue;
            }
            let content_type = part
                .content_type()
                .map(|ct| match ct.subtype() {
                    Some(sub) => format!("{}/{}", ct.ctype(), sub),
                    None => ct.ctype().to_string(),
                })
                .unwrap_or_else(|| {
                    if part.is_message() {
                        "message/rfc822".into()
                    } else {
                        "application/octet-stream".into()
                    }
                })
                .to_ascii_lowercase();
            let filename = part
                .attachment_name()
                .and_then(clean::file_name_if_any)
                .unwrap_or_else(|| default_filename(index + 1, &content_type));
            let data = match &part.body {
                PartType::Message(inner) => inner.raw_message.to_vec(),
                // Line breaks of text sent without base64 belong to the transport,
                // not the file: store the canonical CRLF form (RFC 2046 §4.1.1) so
                // the same attachment is the same bytes whatever the mail store used.
                PartType::Text(_) | PartType::Html(_)
                    if part.encoding != mail_parser::Encoding::Base64 =>
                {
                    crlf(part.contents())
                }
                _ => part.contents().to_vec(),
            };
            self.attachments.push(Attachment {
                filename,
                content_type,
                data,
            });
        }
        self.text = text;
        self.html = (!html.is_empty()).then_some(html);
    }

    fn read_report(&mut self, message: &Message<'_>) {
        for part in &message.parts {
            let Some(ct) = part.content_type() else {
                continue;
            };
            let kind =
                format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or("")).to_ascii_lowercase();
            match (kind.as_str(), &part.body) {
                (_, PartType::Message(inner)) => {
                    if let Some(id) = inner.message_id().and_then(|id| MessageId::parse(id).ok()) {
                        self.auto.report_about.push(id);
                    }
                }
                ("text/rfc822-headers" | "message/rfc822-headers", _) => {
                    if let Some(id) = MessageParser::default()
                        .parse_headers(part.contents())
                        .and_then(|m| m.message_id().and_then(|id| MessageId::parse(id).ok()))
                    {
                        self.auto.report_about.push(id);
                    }
                }
                ("message/delivery-status" | "message/global-delivery-status", _) => {
                    let body = String::from_utf8_lossy(part.contents());
                    for line in body.lines() {
                        let Some((field, value)) = line.split_once(':') else {
                            continue;
                        };
                        if field.trim().eq_ignore_ascii_case("final-recipient") {
                            let addr = value.split_once(';').map(|(_, a)| a).unwrap_or(value);
                            if let Ok(addr) = EmailAddress::parse(addr) {
                                self.auto.report_recipients.push(addr);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// The sender's address, when the From header held one.
    pub fn sender(&self) -> Option<&EmailAddress> {
        self.from.as_ref().map(|m| &m.address)
    }

    /// Every Message-ID this message names as an ancestor, In-Reply-To first.
    /// Both lists are short (`MAX_THREAD_IDS` each), so the dedup is cheap.
    pub fn ancestors(&self) -> Vec<MessageId> {
        let mut out: Vec<MessageId> =
            Vec::with_capacity(self.in_reply_to.len() + self.references.len());
        for id in self.in_reply_to.iter().chain(self.references.iter().rev()) {
            if !out.contains(id) {
                out.push(id.clone());
            }
        }
        out
    }
}

/// The most Message-IDs kept from one `In-Reply-To` or `References` header:
/// the first (RFC 5322 §3.6.4: the thread's root) and the last ones (the
/// nearest parents). Longer lists are only ever written to make threading
/// lookups, ref rows and this scan cost more.
pub const MAX_THREAD_IDS: usize = 32;

/// Message-IDs of a header read raw (see `parser`), in order, each once, at
/// most `MAX_THREAD_IDS` (the first and the last ones). One pass over the
/// value; the dedup looks only at the few ids kept.
fn ids_of(value: &HeaderValue<'_>) -> Vec<MessageId> {
    let text = match value {
        HeaderValue::Text(t) => t.as_ref(),
        _ => return Vec::new(),
    };
    let mut first: Option<MessageId> = None;
    let mut last: VecDeque<MessageId> = VecDeque::with_capacity(MAX_THREAD_IDS);
    let mut keep = |piece: &str| {
        let Ok(id) = MessageId::parse(piece) else {
            return;
        };
        if first.as_ref() == Some(&id) || last.contains(&id) {
            return;
        }
        if first.is_none() {
            first = Some(id);
            return;
        }
        if last.len() == MAX_THREAD_IDS - 1 {
            last.pop_front();
        }
        last.push_back(id);
    };
    if text.contains('<') {
        // `<id>` tokens (RFC 5322 §3.6.4 msg-id); text between them is CFWS.
        let mut rest = text;
        while let Some(open) = rest.find('<') {
            let after = &rest[open + 1..];
            let Some(close) = after.find(['>', '<']) else {
                break;
            };
            if after.as_bytes()[close] == b'>' {
                keep(&after[..close]);
                rest = &after[close + 1..];
            } else {
                rest = &after[close..];
            }
        }
    } else {
        // Some clients write bare ids, separated by spaces or commas.
        text.split(|c: char| c.is_whitespace() || c == ',')
            .filter(|p| !p.is_empty())
            .for_each(&mut keep);
    }
    first.into_iter().chain(last).collect()
}

fn mailboxes(address: &Address<'_>) -> Vec<Mailbox> {
    address
        .iter()
        .filter_map(|addr| {
            let address = EmailAddress::parse(addr.address()?).ok()?;
            let name = addr.name().map(clean::line).filter(|n| !n.is_empty());
            Some(Mailbox { name, address })
        })
        .collect()
}

fn mailboxes_first(address: &Address<'_>) -> Option<Mailbox> {
    mailboxes(address).into_iter().next()
}

/// A subject longer than this is cut (see [`clean::subject`]).
pub use super::clean::SUBJECT_MAX_CHARS;

fn unfold(input: &str) -> String {
    clean::line(input)
}

fn default_filename(index: usize, content_type: &str) -> String {
    let ext = match content_type {
        "message/rfc822" => "eml",
        "text/plain" => "txt",
        "text/html" => "html",
        "application/pdf" => "pdf",
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/gif" => "gif",
        _ => "bin",
    };
    format!("attachment-{index}.{ext}")
}

/// Body text with LF line endings and without NUL bytes (which PostgreSQL text
/// cannot hold and which no person typed).
fn normalize(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut chars = input.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\0' => {}
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push('\n');
            }
            c => out.push(c),
        }
    }
    out
}

fn crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 32);
    let mut previous = 0u8;
    for &b in data {
        if b == b'\n' && previous != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        previous = b;
    }
    out
}

fn push_block(target: &mut String, block: &str) {
    if block.trim().is_empty() {
        return;
    }
    if !target.is_empty() && !target.ends_with("\n\n") {
        target.push_str(if target.ends_with('\n') { "\n" } else { "\n\n" });
    }
    target.push_str(block);
}

fn decode_text_part(raw: &[u8], part: &MessagePart<'_>, body: &str) -> String {
    let text = match redecode_mislabelled(raw, part, body) {
        Some(better) => normalize(&better),
        None => normalize(body),
    };
    let Some(ct) = part.content_type() else {
        return text;
    };
    if ct
        .attribute("format")
        .is_some_and(|f| f.eq_ignore_ascii_case("flowed"))
    {
        let delsp = ct
            .attribute("delsp")
            .is_some_and(|d| d.eq_ignore_ascii_case("yes"));
        unflow(&text, delsp)
    } else {
        text
    }
}

/// Text whose charset is missing, unknown or `us-ascii` but which holds 8-bit
/// bytes came out with U+FFFD. Such mail is nearly always UTF-8 or Windows-1252
/// (a superset of ISO-8859-1): decode the part's bytes again as whichever fits.
fn redecode_mislabelled(raw: &[u8], part: &MessagePart<'_>, body: &str) -> Option<String> {
    use mail_parser::decoders::{
        base64::base64_decode, charsets::map::charset_decoder,
        quoted_printable::quoted_printable_decode,
    };
    if !body.contains('\u{FFFD}') {
        return None;
    }
    let charset = part
        .content_type()
        .and_then(|ct| ct.attribute("charset"))
        .unwrap_or("us-ascii");
    let known =
        charset_decoder(charset.as_bytes()).is_some() || charset.eq_ignore_ascii_case("utf-8");
    if known && !charset.eq_ignore_ascii_case("us-ascii") {
        return None;
    }
    let encoded = raw.get(part.offset_body as usize..part.offset_end as usize)?;
    let bytes = match part.encoding {
        mail_parser::Encoding::Base64 => base64_decode(encoded)?,
        mail_parser::Encoding::QuotedPrintable => quoted_printable_decode(encoded)?,
        mail_parser::Encoding::None => encoded.to_vec(),
    };
    match String::from_utf8(bytes) {
        Ok(text) => Some(text),
        Err(e) => charset_decoder(b"windows-1252").map(|decode| decode(e.as_bytes())),
    }
}

/// Unwraps RFC 3676 `format=flowed` text: a line ending in a space continues on
/// the next line of the same quote depth (§4.2); a leading space is stuffing
/// (§4.4); `-- ` is a signature separator, never a soft break (§4.3).
pub fn unflow(text: &str, delsp: bool) -> String {
    fn flush(out: &mut String, depth: usize, content: &str) {
        if depth > 0 {
            out.push_str(&">".repeat(depth));
            out.push(' ');
        }
        out.push_str(content);
        out.push('\n');
    }
    let mut out = String::with_capacity(text.len());
    // The paragraph being joined: its quote depth and text so far.
    let mut open: Option<(usize, String)> = None;
    for raw_line in text.split('\n') {
        let depth = raw_line.bytes().take_while(|&b| b == b'>').count();
        let mut content = &raw_line[depth..];
        if content.starts_with(' ') {
            content = &content[1..];
        }
        let soft = content.ends_with(' ') && content != "-- ";
        let piece = if soft && delsp {
            &content[..content.len() - 1]
        } else {
            content
        };
        let mut para = match open.take() {
            Some((d, para)) if d == depth => para,
            Some((d, para)) => {
                flush(&mut out, d, &para);
                String::new()
            }
            None => String::new(),
        };
        para.push_str(piece);
        if soft {
            open = Some((depth, para));
        } else {
            flush(&mut out, depth, &para);
        }
    }
    if let Some((d, para)) = open {
        flush(&mut out, d, &para);
    }
    // split('\n') saw one empty line after a final newline; drop what it added.
    let extra_newline = if text.ends_with('\n') {
        out.ends_with("\n\n")
    } else {
        out.ends_with('\n')
    };
    if extra_newline {
        out.pop();
    }
    out
}

/// Converts HTML to readable plain text for HTML-only mail: only what a
/// reader sees ([`visible_html`]), so hidden text carries no command or
/// mention.
pub fn html_to_text(html: &str) -> String {
    let visible = visible_html(html);
    let html = flatten_html(&visible);
    // Links keep their targets as footnotes: a URL is often the point of the message.
    let text = html2text::config::plain_no_decorate()
        .link_footnotes(true)
        .string_from_read(html.as_bytes(), 10_000)
        .unwrap_or_else(|_| html.to_string());
    // Trailing blanks off, at most one empty line in a row, in one pass.
    let mut out = String::with_capacity(text.len());
    let mut blank = false;
    for line in text.lines().map(str::trim_end) {
        if line.is_empty() && blank {
            continue;
        }
        blank = line.is_empty();
        out.push_str(line);
        out.push('\n');
    }
    out.trim().to_string()
}

/// The deepest element nesting `flatten_html` keeps. Mail clients nest a few
/// dozen tables and divs at most.
pub const MAX_HTML_DEPTH: usize = 100;

/// The most start tags `flatten_html` keeps. The converter builds a DOM node
/// and a render node for every element, a few KB each: a 10 MB message of
/// 335,000 small sibling elements took 4.8 s and 940 MB. Mail people write
/// has a few thousand; past this many, tags are dropped and their text kept.
pub const MAX_HTML_ELEMENTS: usize = 10_000;

/// HTML with the tags of elements nested deeper than `MAX_HTML_DEPTH`, and
/// every tag after the first `MAX_HTML_ELEMENTS` start tags, removed (their
/// text stays; a script or style past the limit goes whole). The HTML tree builder (WHATWG HTML §13.2.4.2, "has an
/// element in scope") walks the stack of open elements for each tag, so
/// 100,000 nested `<div>`s cost it 10^10 steps; this pass is linear. Depth is
/// counted from the tags as written: void elements and those whose end tag
/// may be left out (`<p>`, `<li>`, table cells…, §13.1.2.4) do not nest.
pub fn flatten_html(html: &str) -> std::borrow::Cow<'_, str> {
    const FLAT: &[&str] = &[
        "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
        "source", "track", "wbr", "p", "li", "dt", "dd", "tr", "td", "th", "option", "optgroup",
        "thead", "tbody", "tfoot", "colgroup", "caption", "rb", "rt", "rp", "rtc", "html", "head",
        "body", "!doctype",
    ];
    let bytes = html.as_bytes();
    let mut out: Option<String> = None;
    let mut depth = 0usize;
    let mut elements = 0usize;
    let mut copied = 0;
    let mut i = 0;
    while let Some(at) = memchr_lt(bytes, i) {
        // A comment may hold anything; its end is `-->` (§13.2.5.43).
        if bytes[at..].starts_with(b"<!--") {
            i = find_from(bytes, at + 4, b"-->").map_or(bytes.len(), |e| e + 3);
            continue;
        }
        let closing = bytes.get(at + 1) == Some(&b'/');
        let name_start = at + 1 + usize::from(closing);
        let name_end = bytes[name_start..]
            .iter()
            .position(|b| !(b.is_ascii_alphanumeric() || *b == b'!' || *b == b'-'))
            .map_or(bytes.len(), |n| name_start + n);
        if name_end == name_start
            || !bytes[name_start].is_ascii_alphabetic() && bytes[name_start] != b'!'
        {
            i = at + 1;
            continue;
        }
        let Some(tag_end) = bytes[name_end..].iter().position(|&b| b == b'>') else {
            break;
        };
        let tag_end = name_end + tag_end + 1;
        let name = html[name_start..name_end].to_ascii_lowercase();
        let self_closing = bytes[..tag_end].ends_with(b"/>");
        let raw = matches!(name.as_str(), "script" | "style" | "textarea" | "title") && !closing;
        if elements >= MAX_HTML_ELEMENTS {
            // Dropped; a raw-text element with its text, up to its end tag's `>`.
            let end = if raw {
                find_from_ignore_case(bytes, tag_end, format!("</{name}").as_bytes())
                    .and_then(|e| memchr::memchr(b'>', &bytes[e..]).map(|g| e + g + 1))
                    .unwrap_or(bytes.len())
            } else {
                tag_end
            };
            let out = out.get_or_insert_with(|| String::with_capacity(html.len()));
            out.push_str(&html[copied..at]);
            out.push(' ');
            copied = end;
            i = end;
            continue;
        }
        if raw {
            elements += 1;
            // Raw text: no tags inside, up to its end tag.
            let end = format!("</{name}");
            i = find_from_ignore_case(bytes, tag_end, end.as_bytes()).unwrap_or(bytes.len());
            continue;
        }
        if self_closing || FLAT.contains(&name.as_str()) {
            elements += usize::from(!closing);
            i = tag_end;
            continue;
        }
        let too_deep = if closing {
            let deep = depth > MAX_HTML_DEPTH;
            depth = depth.saturating_sub(1);
            deep
        } else {
            depth += 1;
            depth > MAX_HTML_DEPTH
        };
        elements += usize::from(!closing && !too_deep);
        if too_deep {
            let out = out.get_or_insert_with(|| String::with_capacity(html.len()));
            out.push_str(&html[copied..at]);
            // A space keeps the words on either side of the dropped tag apart.
            out.push(' ');
            copied = tag_end;
        }
        i = tag_end;
    }
    match out {
        Some(mut out) => {
            out.push_str(&html[copied..]);
            std::borrow::Cow::Owned(out)
        }
        None => std::borrow::Cow::Borrowed(html),
    }
}

fn memchr_lt(bytes: &[u8], from: usize) -> Option<usize> {
    bytes
        .get(from..)?
        .iter()
        .position(|&b| b == b'<')
        .map(|p| from + p)
}

fn find_from(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

fn find_from_ignore_case(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
        .map(|p| from + p)
}

mod hidden;
pub use hidden::visible_html;

#[cfg(test)]
mod tests;
