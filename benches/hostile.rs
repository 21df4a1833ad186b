//! Hostile input: messages shaped to cost the most per byte, each
//! through the full ingest path (`ticketgate ingest` of a file into a fresh
//! SQLite, a child process of its own) from a registered sender. Reports the
//! outcome, seconds and peak RSS above an idle ingest (a 1 KB message), and
//! that peak as a multiple of the message's size.
//!
//! Targets: 10 MB inputs under 2 s and under 4x their size; 1 MB inputs
//! under 1 s. Peak RSS comes from `wait4` rusage through GNU time
//! (`/usr/bin/time -f %M`).
//!
//! `cargo bench --bench hostile` (all shapes), or
//! `cargo bench --bench hostile -- "one long line" @mentions`: only the shapes
//! whose names contain one of the words given.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

const MB: usize = 1024 * 1024;

fn head(subject: &str, content_type: &str) -> String {
    format!(
        "From: Customer <c1@customer.test>\r\nTo: support@example.test\r\n\
         Message-ID: <hostile-{}@customer.test>\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\n\
         Subject: {subject}\r\nMIME-Version: 1.0\r\nContent-Type: {content_type}\r\n",
        subject.replace(' ', "-")
    )
}

/// `piece(i)` repeated until the message is `size` bytes, then `tail`.
fn fill(mut raw: String, size: usize, tail: &str, piece: impl Fn(usize) -> String) -> Vec<u8> {
    let mut i = 0;
    while raw.len() + tail.len() < size {
        raw.push_str(&piece(i));
        i += 1;
    }
    raw.push_str(tail);
    raw.into_bytes()
}

fn many_ids(size: usize) -> Vec<u8> {
    let raw = head("many ids", "text/plain; charset=utf-8") + "References:";
    let mut raw = fill(raw, size - 100, "", |i| format!(" <r{i}@x.test>\r\n"));
    raw.extend_from_slice(b"\r\nPlease look at this thread.\r\n");
    raw
}

fn deep_divs(size: usize) -> Vec<u8> {
    let raw = head("deep divs", "text/html; charset=utf-8") + "\r\n<html><body>";
    let n = (size - raw.len()) / 11;
    let mut html = raw;
    html.push_str(&"<div>".repeat(n));
    html.push_str("Deep text.");
    html.push_str(&"</div>".repeat(n));
    html.push_str("</body></html>\r\n");
    html.into_bytes()
}

/// Hidden and shown text in turn: `mail::visible_html` copies every shown
/// piece and decides on every tag.
fn hidden_html(size: usize) -> Vec<u8> {
    let raw = head("hidden html", "text/html; charset=utf-8") + "\r\n<html><body>";
    fill(raw, size, "</body></html>\r\n", |i| {
        format!(
            "<span style=\"display:none\">#close {i}</span><font color=\"#fff\">x</font>seen {i}\r\n"
        )
    })
}

/// Small sibling elements, all shown: the converter's DOM holds a few KB
/// for each one it is given (`mail::MAX_HTML_ELEMENTS`).
fn small_elements(size: usize) -> Vec<u8> {
    let raw = head("small elements", "text/html; charset=utf-8") + "\r\n<html><body>";
    fill(raw, size, "</body></html>\r\n", |i| {
        format!("<span>word {i}</span><font color=\"#333\">x</font>seen {i}\r\n")
    })
}

fn deep_mime(size: usize) -> Vec<u8> {
    let raw = head("deep mime", "multipart/mixed; boundary=\"l0\"") + "\r\n--l0\r\n";
    fill(raw, size, "\r\nbottom\r\n", |i| {
        format!(
            "Content-Type: multipart/mixed; boundary=\"l{}\"\r\n\r\n--l{}\r\n",
            i + 1,
            i + 1
        )
    })
}

fn tiny_parts(size: usize) -> Vec<u8> {
    let raw = head("tiny parts", "multipart/mixed; boundary=\"b\"") + "\r\n";
    fill(raw, size, "--b--\r\n", |_| "--b\r\n\r\nx\r\n".to_string())
}

fn mentions(size: usize) -> Vec<u8> {
    let raw = head("mentions", "text/plain; charset=utf-8") + "\r\n";
    fill(raw, size, "\r\n", |i| {
        format!("@u{i}{}", if i % 10 == 9 { "\r\n" } else { " " })
    })
}

fn long_line(size: usize) -> Vec<u8> {
    let raw = head("long line", "text/plain; charset=utf-8") + "\r\n";
    fill(raw, size, "\r\n", |i| format!("word{} ", i % 1000))
}

fn idle() -> Vec<u8> {
    (head("idle", "text/plain; charset=utf-8") + "\r\nA short question.\r\n").into_bytes()
}

/// `ticketgate ARGS` under GNU time: (seconds, peak RSS in MB, stdout).
fn run(config: &Path, args: &[&str]) -> anyhow::Result<(f64, f64, String)> {
    let start = Instant::now();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(env!("CARGO_BIN_EXE_ticketgate"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()?;
    let secs = start.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    anyhow::ensure!(out.status.success(), "ticketgate {args:?}: {stderr}");
    let kb: f64 = stderr
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no peak RSS from time: {stderr}"))?;
    Ok((
        secs,
        kb / 1024.0,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

/// One ingest of `raw` into a fresh database: (seconds, peak MB, outcome line).
fn ingest(raw: &[u8]) -> anyhow::Result<(f64, f64, String)> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("ticketgate.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"sqlite://{0}/bench.db\"\n[smtp]\nkind = \"file\"\ndir = \"{0}/outbox\"\n\
             [support]\naddress = \"support@example.test\"\ndomain = \"example.test\"\n\
             notify = \"team@example.test\"\nreply_secret = \"bench\"\n[admin]\nlisten = \"\"\n",
            dir.path().display()
        ),
    )?;
    run(
        &config,
        &["org", "add", "Customers", "--domain", "customer.test"],
    )?;
    let file = dir.path().join("message.eml");
    std::fs::write(&file, raw)?;
    let (secs, peak, out) = run(&config, &["ingest", "--json", &file.to_string_lossy()])?;
    let json: serde_json::Value = serde_json::from_str(out.lines().next().unwrap_or("{}"))?;
    let outcome = match json["reason"].as_str() {
        Some(reason) => format!("{} ({reason})", json["outcome"].as_str().unwrap_or("?")),
        None => json["outcome"].as_str().unwrap_or("?").to_string(),
    };
    Ok((secs, peak, outcome))
}

fn main() -> anyhow::Result<()> {
    let (_, idle_peak, _) = ingest(&idle())?;
    type Shape = (&'static str, fn(usize) -> Vec<u8>);
    let shapes: [Shape; 8] = [
        ("many References ids", many_ids),
        ("nested <div>s", deep_divs),
        ("hidden HTML text", hidden_html),
        ("small HTML elements", small_elements),
        ("nested multiparts", deep_mime),
        ("tiny MIME parts", tiny_parts),
        ("@mentions", mentions),
        ("one long line", long_line),
    ];
    // cargo passes `--bench` to a harness-free bench; the other words pick shapes.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    println!("| benchmark | setup | result | peak RSS |");
    println!("|---|---|---|---|");
    for (size, limit) in [(10 * MB, 2.0), (MB, 1.0)] {
        for (name, build) in shapes {
            if !only.is_empty() && !only.iter().any(|w| name.contains(w.as_str())) {
                continue;
            }
            let raw = build(size);
            let (secs, peak, outcome) = ingest(&raw)?;
            let above = (peak - idle_peak).max(0.0);
            let times = above / (raw.len() as f64 / MB as f64);
            println!(
                "| hostile: {name}, {} MB | `ticketgate ingest` of one {:.1} MB message, registered sender, fresh SQLite; outcome {outcome}; target < {limit} s, < 4x size | {secs:.2} s | {peak:.0} MB ({above:.0} MB above idle, {times:.1}x size) |",
                size / MB,
                raw.len() as f64 / MB as f64,
            );
        }
    }
    println!(
        "| hostile: idle | the same ingest of a 1 KB message (the baseline above) | - | {idle_peak:.0} MB |"
    );
    Ok(())
}
