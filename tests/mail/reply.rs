//! Golden tests of reply extraction: every `fixtures/reply/<name>.txt` (through
//! `extract_text`) and `<name>.html` (through `extract_html`) must produce
//! `<name>.expected.json`, exactly as `ticketgate extract-reply [--html]` prints
//! it, with LF and with CRLF line endings. A `<name>.from` beside it holds the
//! sender (`Name <addr>`, as `extract-reply --from` takes it).
//!
//! `BLESS=1 cargo test --test mail reply::` rewrites the expectations (review every
//! change by hand); a mismatch writes `<name>.actual.json` beside the fixture.

use std::path::{Path, PathBuf};

use ticketgate::domain::reply::{self, Extracted};

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/reply");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures/reply exists")
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("txt" | "html")))
        .collect();
    out.sort();
    out
}

fn extract(path: &Path, body: &str) -> Extracted {
    let sender = std::fs::read_to_string(path.with_extension("from"))
        .map(|from| reply::Sender::parse(&from))
        .unwrap_or_default();
    if path.extension().is_some_and(|e| e == "html") {
        reply::extract_html_from(body, &sender)
    } else {
        reply::extract_text_from(body, &sender)
    }
}

/// The JSON `extract-reply` prints for this body.
fn render(got: &Extracted) -> String {
    serde_json::to_string_pretty(got).expect("serializable") + "\n"
}

#[test]
fn every_fixture_matches_its_expectation() {
    let bless = std::env::var_os("BLESS").is_some();
    let mut failures = Vec::new();
    let all = fixtures();
    assert!(all.len() >= 40, "the reply fixtures are missing");
    for path in all {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let stem = path.with_extension("");
        let expected_path = stem.with_extension("expected.json");
        let actual_path = stem.with_extension("actual.json");
        let raw = std::fs::read(&path).expect("fixture readable");
        let body = String::from_utf8_lossy(&raw);
        let got = render(&extract(&path, &body));
        if bless {
            std::fs::write(&expected_path, &got).expect("expectation writable");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if got != expected {
            std::fs::write(&actual_path, &got).expect("actual writable");
            failures.push(format!("{name}: see {}", actual_path.display()));
            continue;
        }
        let _ = std::fs::remove_file(&actual_path);
        let crlf = body.replace("\r\n", "\n").replace('\n', "\r\n");
        if render(&extract(&path, &crlf)) != expected {
            failures.push(format!("{name}: differs with CRLF line endings"));
        }
    }
    assert!(
        failures.is_empty(),
        "reply fixtures differ:\n{}",
        failures.join("\n")
    );
}

/// Whether `line` was split in two at a quote header glued to the text before
/// it ("…reply On Mon, … wrote:"): its first half ends a line of the output
/// and its second half starts one, so nothing of it is lost.
fn split_at_a_glued_header(line: &str, all: &str) -> bool {
    line.char_indices().skip(1).any(|(p, _)| {
        let (a, b) = line.split_at(p);
        let (a, b) = (a.trim_end(), b.trim());
        !a.is_empty()
            && !b.is_empty()
            && all.contains(&format!("{a}\n"))
            && all.contains(&format!("\n{b}"))
    })
}

#[test]
fn a_reply_never_loses_a_written_line() {
    // Every line with a letter or digit is somewhere: reply, signature or
    // quoted (whole, or in two halves where a glued header was split off).
    for path in fixtures()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
    {
        let body = std::fs::read_to_string(&path).expect("fixture is UTF-8");
        let got = extract(&path, &body);
        let all = format!(
            "{}\n{}\n{}",
            got.reply,
            got.signature.unwrap_or_default(),
            got.quoted.unwrap_or_default()
        );
        for line in body
            .lines()
            .filter(|l| l.chars().any(char::is_alphanumeric))
        {
            assert!(
                all.contains(line.trim_end()) || split_at_a_glued_header(line, &all),
                "{}: line {line:?} is in no part",
                path.display()
            );
        }
    }
}
