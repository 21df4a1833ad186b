//! Parse-only throughput: the 10,000 realistic messages of `common::message`
//! through `InboundMail::parse` (what ingest does before touching the store),
//! and through mail-parser alone, to show what our extraction adds on top.
//! 5 runs each, median. The messages are built once, outside the timing.
//!
//! `cargo bench --bench parse`

use std::hint::black_box;
use std::time::Instant;

use ticketgate::domain::mail::InboundMail;

mod common;
use common::{median, message, peak_rss_mb};

const N: usize = 10_000;
const RUNS: usize = 5;

/// Times `f` over every message, `RUNS` times; returns messages/s per run.
fn rates(messages: &[Vec<u8>], mut f: impl FnMut(&[u8])) -> Vec<f64> {
    (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            for raw in messages {
                f(raw);
            }
            messages.len() as f64 / start.elapsed().as_secs_f64()
        })
        .collect()
}

fn row(name: &str, setup: &str, rates: Vec<f64>, mb: f64) {
    let m = median(rates.clone());
    let runs: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
    println!(
        "| {name} | {setup} | {m:.0} msg/s, {:.0} MB/s (runs: {}) | {:.0} MB |",
        m * mb,
        runs.join(", "),
        peak_rss_mb()
    );
}

fn main() {
    let messages: Vec<Vec<u8>> = (0..N)
        .map(|i| message(i, "parse", "support@example.test"))
        .collect();
    // MB per message, so MB/s = msg/s * this.
    let mb = messages.iter().map(Vec::len).sum::<usize>() as f64 / N as f64 / 1e6;
    let setup =
        format!("{N} messages (~3 KB, half replies) in memory, single thread; {RUNS} runs, median");
    let ours = rates(&messages, |raw| {
        black_box(InboundMail::parse(black_box(raw)).expect("parses"));
    });
    row(
        "parse, InboundMail::parse",
        &format!("{setup}; headers, addresses, threading ids, body text"),
        ours,
        mb,
    );
    let bare = rates(&messages, |raw| {
        black_box(
            mail_parser::MessageParser::default()
                .parse(black_box(raw))
                .expect("parses"),
        );
    });
    row(
        "parse, mail-parser alone",
        &format!("{setup}; MessageParser::default().parse() only"),
        bare,
        mb,
    );
}
