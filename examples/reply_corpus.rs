//! Measures reply extraction against a corpus laid out like Discourse's
//! email_reply_trimmer test data: `emails/<name>.txt` (raw bodies) and
//! `trimmed/<name>.txt` (the reply a person would keep); or, with
//! `--fixtures`, against the project's golden files (`fixtures/reply`:
//! `<name>.txt|.html`, `<name>.expected.json`, an optional `<name>.from`).
//!
//! Usage: `cargo run --example reply_corpus -- DIR [--diff]`, or
//! `cargo run --example reply_corpus -- --fixtures DIR [--diff]`
//!
//! A case matches when the `reply` field equals the expected text after
//! trimming surrounding whitespace (`reply` may be empty). A second figure
//! compares what is stored as the comment, where an empty `reply` falls back to
//! the whole text (`comment_text`). Forwards are counted apart: ticketgate keeps
//! a forwarded message as content, where the corpus keeps only the note above it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ticketgate::domain::reply;

/// A forward, judged from the raw text alone (not by the extractor under test).
fn is_forward(raw: &str) -> bool {
    let lower = raw.to_lowercase();
    lower.contains("forwarded message") || lower.contains("begin forwarded message")
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let diff = args.iter().any(|a| a == "--diff");
    let fixtures = args.iter().any(|a| a == "--fixtures");
    let Some(dir) = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map(PathBuf::from)
    else {
        eprintln!("usage: reply_corpus [--fixtures] DIR [--diff]");
        return ExitCode::from(2);
    };
    if fixtures {
        return measure_fixtures(&dir, diff);
    }
    let mut names: Vec<PathBuf> = match std::fs::read_dir(dir.join("emails")) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "txt"))
            .collect(),
        Err(e) => {
            eprintln!("reading {}: {e}", dir.join("emails").display());
            return ExitCode::from(2);
        }
    };
    names.sort();
    let (mut matched, mut plain, mut mismatched, mut forwards) = (0, 0, Vec::new(), Vec::new());
    let mut comment_matched = 0;
    for path in &names {
        let name = path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let raw = String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).to_string();
        let expected = read(&dir.join("trimmed").join(format!("{name}.txt")));
        let got = reply::extract_text(&raw);
        let equal = got.reply.trim() == expected.trim();
        let comment_equal = got.comment_text(&raw).trim() == expected.trim();
        if is_forward(&raw) {
            forwards.push((name, got.forwarded, equal));
            continue;
        }
        plain += 1;
        if comment_equal {
            comment_matched += 1;
        }
        if equal {
            matched += 1;
        } else {
            if diff {
                println!(
                    "--- {name}: expected\n{}\n--- {name}: got\n{}\n",
                    expected.trim(),
                    got.reply.trim()
                );
            }
            mismatched.push(name);
        }
    }
    println!("| corpus | {} |", dir.display());
    println!("|---|---|");
    println!("| emails | {} |", names.len());
    println!("| non-forward matched (`reply` field) | {matched}/{plain} |");
    println!(
        "| non-forward matched (stored comment, with the fallback) | {comment_matched}/{plain} |"
    );
    println!(
        "| non-forward mismatched (`reply` field) | {} |",
        if mismatched.is_empty() {
            "-".to_string()
        } else {
            mismatched.join(", ")
        }
    );
    for (name, flagged, equal) in &forwards {
        println!(
            "| forward {name} | forwarded={flagged}, reply {} |",
            if *equal {
                "equals the corpus"
            } else {
                "keeps the forwarded message (corpus keeps only the note)"
            }
        );
    }
    ExitCode::SUCCESS
}

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).to_string()
}

/// The golden files of `fixtures/reply`: how many give the expected `reply`,
/// and how many all four fields, with their sender when a `.from` names one.
fn measure_fixtures(dir: &Path, diff: bool) -> ExitCode {
    let mut names: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "txt" || e == "html"))
            .collect(),
        Err(e) => {
            eprintln!("reading {}: {e}", dir.display());
            return ExitCode::from(2);
        }
    };
    names.sort();
    let (mut reply_ok, mut all_ok, mut html, mut with_sender) = (0, 0, 0, 0);
    let (mut wrong_reply, mut wrong_other) = (Vec::new(), Vec::new());
    for path in &names {
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let stem = path.with_extension("");
        let expected: reply::Extracted =
            match serde_json::from_str(&read(&stem.with_extension("expected.json"))) {
                Ok(e) => e,
                Err(e) => {
                    eprintln!("{name}: no readable expectation: {e}");
                    return ExitCode::from(2);
                }
            };
        let sender = match std::fs::read_to_string(path.with_extension("from")) {
            Ok(from) => {
                with_sender += 1;
                reply::Sender::parse(&from)
            }
            Err(_) => reply::Sender::default(),
        };
        let body = read(path);
        let got = if path.extension().is_some_and(|e| e == "html") {
            html += 1;
            reply::extract_html_from(&body, &sender)
        } else {
            reply::extract_text_from(&body, &sender)
        };
        if got.reply.trim() == expected.reply.trim() {
            reply_ok += 1;
            if got == expected {
                all_ok += 1;
            } else {
                wrong_other.push(name);
            }
        } else {
            if diff {
                println!(
                    "--- {name}: expected\n{}\n--- {name}: got\n{}\n",
                    expected.reply.trim(),
                    got.reply.trim()
                );
            }
            wrong_reply.push(name);
        }
    }
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(", ")
        }
    };
    println!("| fixtures | {} |", dir.display());
    println!("|---|---|");
    println!(
        "| cases | {} ({} text, {html} HTML; {with_sender} with a sender) |",
        names.len(),
        names.len() - html
    );
    println!("| `reply` as expected | {reply_ok}/{} |", names.len());
    println!("| all four fields as expected | {all_ok}/{} |", names.len());
    println!("| `reply` differs | {} |", list(&wrong_reply));
    println!(
        "| only `signature`, `quoted` or `forwarded` differ | {} |",
        list(&wrong_other)
    );
    ExitCode::SUCCESS
}
