//! Measures reply extraction against a corpus laid out like Discourse's
//! email_reply_trimmer test data: `emails/<name>.txt` (raw bodies) and
//! `trimmed/<name>.txt` (the reply a person would keep).
//!
//! Usage: `cargo run --example reply_corpus -- DIR [--diff]`
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
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: reply_corpus DIR [--diff]");
        return ExitCode::from(2);
    };
    let diff = args.any(|a| a == "--diff");
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
