//! The outbox renderer with hostile contexts: every shipped template, in
//! every language, with subjects, bodies, names, commands and reasons cut
//! from the fuzzer's bytes (huge, empty, markup, control characters, odd
//! Unicode). Rendering may refuse with an error; it may not panic.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use ticketgate::render::{EVENTS, LOCALES, Renderer};

static RENDERER: LazyLock<Renderer> = LazyLock::new(|| Renderer::new(None));

fuzz_target!(|data: &[u8]| {
    // Fields separated by 0xFF (never valid UTF-8, so never inside a field).
    let text = |i: usize| -> String {
        data.split(|&b| b == 0xFF)
            .nth(i)
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .unwrap_or_default()
    };
    let (subject, body, name, command, reason) = (text(0), text(1), text(2), text(3), text(4));
    let many = |s: &str| -> Vec<Value> {
        s.split('\n')
            .take(50)
            .map(|c| json!({"command": c, "reason": reason}))
            .collect()
    };
    let ticket = json!({"id": data.len(), "subject": subject, "status": name, "status_label": reason,
        "priority": if data.len() % 2 == 0 { Value::Null } else { json!(command) }});
    let context = json!({
        "marker": "--- Reply above this line ---", "support_name": name,
        "support_address": "support@example.test", "locale": "en", "recipient_name": name,
        "recipient": {"email": "alice@customer.test", "name": name, "reason": reason},
        "ticket": if data.first().is_some_and(|b| b % 3 == 0) { Value::Null } else { ticket },
        "comment": {"id": 1, "body": body, "author_name": name, "author_email": command,
            "internal": data.len() % 3 == 0, "attachments": [subject],
            "attachments_listed": [{"filename": name, "size": data.len()}]},
        "event": {"from": command, "from_label": reason, "to": name, "to_label": subject,
            "actor_name": name, "actor_email": command, "priority": command, "sla_name": reason,
            "sla_response": reason, "source": reason, "excerpt": body, "following": data.len() % 2 == 0,
            "user_name": name, "user_email": command, "org_name": subject,
            "failures": many(&command), "mentions": many(&body), "more_failures": data.len(),
            "original_subject": subject, "reason": reason, "limit": command, "release": command,
            "releases": [command], "statuses": [reason], "staff": true,
            "tickets": [{"id": 7, "subject": subject, "status_label": reason, "updated_at": command}]},
    });
    for locale in std::iter::once("en").chain(LOCALES.iter().copied()) {
        for event in EVENTS {
            // With a subject where the template has one.
            let out = RENDERER
                .notification(event, locale, &context, true)
                .or_else(|_| RENDERER.notification(event, locale, &context, false));
            if let Ok(out) = out {
                assert!(out.text.starts_with("--- Reply above this line ---"));
            }
        }
    }
});
