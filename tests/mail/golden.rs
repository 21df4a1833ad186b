//! Golden tests: every `fixtures/mail/<name>.eml`, after the base thread, with LF
//! and with CRLF line endings, must produce `<name>.expected.json`.

use crate::common;

use std::path::Path;

use common::{TestApp, fixtures, to_crlf};
use serde_json::{Value, json};

/// What a user sees after one delivery, without timestamps or random ids.
async fn observe(app: &TestApp, raw: &[u8], outbox_before: usize) -> Value {
    let report = app.deliver(raw).await;
    let ticket = match report.ticket {
        Some(id) => {
            let t = app.ticket(id).await;
            json!({
                "id": t.id, "subject": t.subject, "status": t.status, "requester": t.requester,
                "orgs": t.orgs,
                "followers": t.followers.iter().map(|f| format!("{} ({})", f.email, f.source.as_str())).collect::<Vec<_>>(),
                "comments": t.comments.len(),
            })
        }
        None => Value::Null,
    };
    let comment = match (report.ticket, report.comment) {
        (Some(t), Some(c)) if report.outcome.is_accepted() => {
            let view = app.ticket(t).await;
            let c = view
                .comments
                .iter()
                .find(|x| x.id == c)
                .expect("comment is on its ticket")
                .clone();
            json!({
                "author": c.author, "body": c.body, "signature": c.signature, "internal": c.internal,
                "message_id": c.message_id,
                "attachments": c.attachments.iter().map(|a| json!({"filename": a.filename, "content_type": a.content_type, "size": a.size})).collect::<Vec<_>>(),
            })
        }
        _ => Value::Null,
    };
    let notifications: Vec<Value> = app.outbox().await[outbox_before..]
        .iter()
        .map(|r| json!({"to": r.to, "template": r.template, "reason": r.reason, "subject": r.subject}))
        .collect();
    json!({
        "outcome": report.outcome,
        "reason": report.reason,
        "thread": report.thread_reason,
        "ticket": ticket,
        "comment": comment,
        "notifications": notifications,
    })
}

async fn run_case(eml: &Path, crlf: bool) -> Value {
    let app = TestApp::new().await;
    let convert = |raw: Vec<u8>| if crlf { to_crlf(&raw) } else { raw };
    let mut base: Vec<_> = std::fs::read_dir(fixtures().join("_base"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    base.sort();
    for path in base {
        let report = app.deliver(&convert(std::fs::read(&path).unwrap())).await;
        assert!(
            report.outcome.is_accepted(),
            "base message {} was {:?}",
            path.display(),
            report
        );
    }
    let before = app.outbox().await.len();
    let observed = observe(&app, &convert(std::fs::read(eml).unwrap()), before).await;

    // Charset checks: the stored comment equals the expected decoded text exactly.
    let body_file = eml.with_extension("body.txt");
    if body_file.exists() {
        let expected = std::fs::read_to_string(&body_file).unwrap();
        assert_eq!(
            observed["comment"]["body"].as_str().unwrap_or_default(),
            expected.trim(),
            "{} ({}) decodes differently from {}",
            eml.display(),
            if crlf { "CRLF" } else { "LF" },
            body_file.display()
        );
    }
    observed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_gives_its_expected_outcome_with_lf_and_crlf() {
    let bless = std::env::var_os("BLESS").is_some();
    let mut cases: Vec<_> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 25, "fixtures missing: found {}", cases.len());

    let mut failures = Vec::new();
    for eml in &cases {
        let expected_path = eml.with_extension("expected.json");
        let actual_path = eml.with_extension("actual.json");
        let lf = run_case(eml, false).await;
        let crlf = run_case(eml, true).await;
        let name = eml.file_name().unwrap().to_string_lossy().to_string();
        if lf != crlf {
            failures.push(format!(
                "{name}: LF and CRLF differ:\nLF   {lf}\nCRLF {crlf}"
            ));
        }
        let pretty = serde_json::to_string_pretty(&lf).unwrap() + "\n";
        if bless {
            std::fs::write(&expected_path, &pretty).unwrap();
            let _ = std::fs::remove_file(&actual_path);
            continue;
        }
        let expected: Value = match std::fs::read_to_string(&expected_path) {
            Ok(text) => serde_json::from_str(&text).unwrap(),
            Err(_) => {
                failures.push(format!(
                    "{name}: no {} (run with BLESS=1 and review)",
                    expected_path.display()
                ));
                continue;
            }
        };
        if expected != lf {
            std::fs::write(&actual_path, &pretty).unwrap();
            failures.push(format!(
                "{name}: differs; compare {} with {}",
                expected_path.display(),
                actual_path.display()
            ));
        } else {
            let _ = std::fs::remove_file(&actual_path);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
