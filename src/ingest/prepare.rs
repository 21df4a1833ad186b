//! A delivery parsed, hashed and read once (possibly ahead of time, on the
//! other core): what it says, from the message alone.

use super::*;

/// A delivery parsed and hashed, ready to record (possibly more than once).
pub(super) struct Prepared {
    pub(super) parsed: Result<InboundMail, crate::domain::mail::ParseError>,
    pub(super) sha: String,
    pub(super) too_large: bool,
    /// Too many MIME parts to parse (`mail::too_complex`): headers only.
    pub(super) too_complex: bool,
    /// Worked out with the parse, for mail read past its headers. It takes
    /// the text and HTML out of `parsed` (nothing else reads them), so a
    /// large body is not held twice while it is stored.
    pub(super) content: Option<Content>,
}

/// What a message says, from the message alone: the reply cut from its quote,
/// the commands in it, the comment body left, its @mentions and attachment
/// hashes. It depends on no stored state, so a batch works it out on the other
/// core while earlier messages are recorded (`read_ahead`).
pub(super) struct Content {
    /// Its `reply` is moved into `body`.
    pub(super) extracted: reply::Extracted,
    /// Its `rest` is moved into `body`.
    pub(super) commands: commands::Parsed,
    /// The comment: the reply without its command lines.
    pub(super) body: String,
    pub(super) mentions: mentions::Found,
    /// SHA-256 of each attachment, in `mail.attachments` order.
    pub(super) attachment_shas: Vec<String>,
}

impl Content {
    /// Takes `mail.text` and `mail.html` (left empty): the body is held once
    /// here (not as text, reply and rest besides), each step moving it on;
    /// `commands.rest` is left empty.
    pub(super) fn of(mail: &mut InboundMail) -> Self {
        let full = std::mem::take(&mut mail.text);
        let html = mail.html.take();
        // The sender's own name on the last lines is their signature.
        let sender = reply::Sender::of(mail);
        let mut extracted = match &html {
            Some(html) if mail.text_from_html => reply::extract_html_from(html, &sender),
            _ => reply::extract_text_from(&full, &sender),
        };
        drop(html);
        let text = if extracted.reply.trim().is_empty() {
            // All of it was quoted: keep what was sent, without a copy.
            trim_owned(full)
        } else {
            drop(full);
            std::mem::take(&mut extracted.reply)
        };
        let mut commands = commands::parse_owned(text);
        let body = std::mem::take(&mut commands.rest);
        Content {
            mentions: mentions::find(&body),
            attachment_shas: mail
                .attachments
                .iter()
                .map(|a| sha256_hex(&a.data))
                .collect(),
            extracted,
            commands,
            body,
        }
    }
}

/// `text.trim()`, in place: no second buffer for a large body.
pub(super) fn trim_owned(mut text: String) -> String {
    text.truncate(text.trim_end().len());
    let start = text.len() - text.trim_start().len();
    text.drain(..start);
    text
}

impl Prepared {
    pub(super) fn new(
        raw: &[u8],
        declared_size: Option<u64>,
        max_message_size: u64,
        failed: bool,
    ) -> Self {
        let too_large = declared_size.unwrap_or(raw.len() as u64) > max_message_size;
        // Oversized and failed mail is logged from its headers alone; its body is never decoded.
        let mut headers_only = too_large || failed;
        let mut parsed = if headers_only {
            InboundMail::parse_headers(raw)
        } else {
            InboundMail::parse(raw)
        };
        // So is mail of too many parts: the parser would take many times its size.
        let too_complex = matches!(parsed, Err(ParseError::TooComplex));
        if too_complex {
            parsed = InboundMail::parse_headers(raw);
            headers_only = true;
        }
        let content = match &mut parsed {
            Ok(mail) if !headers_only => Some(Content::of(mail)),
            _ => None,
        };
        Prepared {
            parsed,
            sha: sha256_hex(raw),
            too_large,
            too_complex,
            content,
        }
    }

    /// The Message-ID, or the content hash of mail without one.
    pub(super) fn dedup_key(&self) -> String {
        match self
            .parsed
            .as_ref()
            .ok()
            .and_then(|m| m.message_id.as_ref())
        {
            Some(id) => id.as_str().to_string(),
            None => format!("sha256:{}", self.sha),
        }
    }

    /// The parsed mail and what it says, unless it is too large to be read
    /// past its headers. The mail's `text` and `html` are empty: read
    /// [`Content`].
    pub(super) fn readable(&self) -> Option<(&InboundMail, &Content)> {
        let mail = self.parsed.as_ref().ok()?;
        Some((mail, self.content.as_ref()?))
    }
}

/// At most this many bytes of a batch are copied for its reader thread (a
/// source's batch may hold 32 MB); deliveries past it are prepared where they
/// are recorded, without a copy.
pub(super) const READ_AHEAD_BYTES: usize = 4 << 20;

/// A batch's deliveries, each prepared once, by whichever thread gets to it
/// first: the recording task or the batch's reader (`read_ahead`).
pub(super) struct Batch {
    pub(super) slots: Vec<OnceLock<Prepared>>,
}

/// Prepares a batch's deliveries and works out their `Content`, in order, on
/// a blocking-pool thread, so the other core does it while this one records
/// the earlier messages (parsing, reply extraction and @mentions were about
/// a quarter of ingest CPU). Recording takes each as it comes: done, being
/// done (it waits for that one), or not started (it does it itself). The
/// reader works on copies of the raw bytes, and stops once the batch is dropped.
pub(super) fn read_ahead(batch: &Arc<Batch>, deliveries: &[Delivery<'_>], max_message_size: u64) {
    let mut budget = READ_AHEAD_BYTES;
    // Raw bytes, declared size and `failed` of each delivery within the budget.
    type Copy = (Vec<u8>, Option<u64>, bool);
    let copies: Vec<Option<Copy>> = deliveries
        .iter()
        .map(|d| {
            let fits = d.raw.len() <= budget;
            if fits {
                budget -= d.raw.len();
            }
            fits.then(|| (d.raw.to_vec(), d.declared_size, d.failed))
        })
        .collect();
    let batch = Arc::downgrade(batch);
    tokio::task::spawn_blocking(move || {
        for (slot, copy) in copies.into_iter().enumerate() {
            let Some(batch) = batch.upgrade() else {
                break;
            };
            let Some((raw, declared_size, failed)) = copy else {
                continue;
            };
            batch.slots[slot]
                .get_or_init(|| Prepared::new(&raw, declared_size, max_message_size, failed));
        }
    });
}

/// The ids a delivery threads by: its ancestors, then its own Message-ID.
pub(super) fn thread_ids(mail: &InboundMail) -> Vec<MessageId> {
    let mut ids = mail.ancestors();
    ids.extend(mail.message_id.clone());
    ids
}
