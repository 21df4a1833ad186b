//! Raw bytes through everything pure that ingest does with a message: parse,
//! classify, threading, reply extraction (text and HTML), comment text.
//! Nothing here may panic, whatever the bytes.
#![no_main]

use std::collections::HashMap;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use ticketgate::domain::classify::{OwnIdentity, classify};
use ticketgate::domain::ids::EmailAddress;
use ticketgate::domain::mail::InboundMail;
use ticketgate::domain::reply;
use ticketgate::domain::threading::{
    ThreadFacts, find_token, resolve, subject_tag, ticket_subject,
};

static SUPPORT: LazyLock<EmailAddress> =
    LazyLock::new(|| EmailAddress::parse("support@example.test").expect("static address"));

fuzz_target!(|data: &[u8]| {
    // The body alone, as `extract-reply` sees a file.
    let body = String::from_utf8_lossy(data);
    let got = reply::extract_text(&body);
    assert!(!got.reply.contains('\0'));
    let _ = got.comment_text(&body);
    let _ = reply::extract_html(&body);

    let Ok(mail) = InboundMail::parse(data) else {
        return;
    };
    let own = OwnIdentity {
        addresses: vec![SUPPORT.clone()],
        domain: "example.test".to_string(),
    };
    let _ = classify(&mail, &own);
    let token = find_token(&mail, &SUPPORT, b"fuzz-secret");
    let tagged = subject_tag(&mail.subject, "Support");
    let _ = ticket_subject(&mail.subject, "Support");
    // Half the ancestors known, so resolve walks both branches.
    let known: HashMap<_, _> = mail
        .ancestors()
        .into_iter()
        .step_by(2)
        .map(|id| (id, 7))
        .collect();
    let _ = resolve(
        &mail,
        &ThreadFacts {
            known,
            token,
            tagged,
        },
    );

    let text = reply::extract_text(&mail.text);
    let _ = text.comment_text(&mail.text);
    if let Some(html) = &mail.html {
        let got = reply::extract_html(html);
        let _ = got.comment_text(&mail.text);
    }
    let _ = reply::extract_mail(&mail).comment_text(&mail.text);
});
