//! Reply extraction alone, as `extract-reply --from` and ingest run it: the
//! first line of the input is the sender (`Name <addr>`), the rest the body,
//! through `extract_text_from` and `extract_html_from`, and without a sender.
//! Nothing here may panic, whatever the bytes; no NUL reaches a reply.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ticketgate::domain::reply::{self, Sender};

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let (from, body) = input.split_once('\n').unwrap_or(("", &input));
    let sender = Sender::parse(from);
    for got in [
        reply::extract_text_from(body, &sender),
        reply::extract_html_from(body, &sender),
        reply::extract_text(body),
    ] {
        assert!(!got.reply.contains('\0'));
        let _ = got.comment_text(body);
    }
});
