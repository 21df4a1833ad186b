//! One big message: 25 MB of incompressible bytes as a base64 attachment
//! (~34 MB on the wire) from a registered customer, ingested into a fresh
//! SQLite. Reports seconds and peak RSS (target <= 150 MB).
//!
//! Each run is its own child process (this binary with `--child`), so every
//! peak RSS is that of one ingest and not left over from the run before; the
//! row gives the median seconds and the largest peak of the 3 runs.
//!
//! `cargo bench --bench attachment`

use std::time::Instant;

use ticketgate::app::App;
use ticketgate::config::Settings;
use ticketgate::domain::outcome::Outcome;
use ticketgate::ingest::Delivery;

mod common;
use common::{median, peak_rss_mb, rss_mb};

const RUNS: usize = 3;
const SIZE: usize = 25 * 1024 * 1024 + 2; // a multiple of 3

/// The message, built without ever holding the 25 MB of bytes themselves
/// (only the ~34 MB encoded form), so the process's peak RSS is not inflated
/// by the benchmark's own setup. Base64 in 76-character lines, as a MUA writes it.
fn big_message() -> Vec<u8> {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut raw = b"From: Customer <c1@customer.test>\r\nTo: support@example.test\r\n\
Message-ID: <big-attachment@customer.test>\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\n\
Subject: Export attached\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\nThe export is attached.\r\n--b1\r\n\
Content-Type: application/octet-stream; name=\"export.bin\"\r\n\
Content-Disposition: attachment; filename=\"export.bin\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\n"
        .to_vec();
    raw.reserve(SIZE / 57 * 78 + 100);
    // xorshift: random-looking bytes, so nothing downstream can compress them away.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 24) as u32 & 0xff
    };
    // SIZE is a multiple of 3, so every group is full and there is no padding.
    for group in 0..SIZE / 3 {
        let n = next() << 16 | next() << 8 | next();
        raw.extend([18, 12, 6, 0].map(|s| A[(n >> s) as usize & 63]));
        if group % 19 == 18 {
            raw.extend_from_slice(b"\r\n");
        }
    }
    raw.extend_from_slice(b"\r\n--b1--\r\n");
    raw
}

/// One run: prints `seconds rss_before_mb peak_rss_mb wire_mb`.
async fn child() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let text = format!(
        "[database]\nurl = \"sqlite://{0}/bench.db\"\n[smtp]\nkind = \"file\"\ndir = \"{0}/outbox\"\n[support]\naddress = \"support@example.test\"\n\
         domain = \"example.test\"\nnotify = \"team@example.test\"\nreply_secret = \"bench\"\n[admin]\nlisten = \"\"\n",
        dir.path().display()
    );
    let app = App::open(Settings::from_sources(&text, "bench", Vec::new())?).await?;
    app.store
        .add_org("Customers", "customers", &["customer.test".into()])
        .await?;
    let raw = big_message();
    let before = rss_mb();
    let start = Instant::now();
    let report = app
        .ingestor
        .ingest(Delivery {
            raw: &raw,
            origin: "bench",
            notify: true,
            ..Default::default()
        })
        .await?;
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(report.outcome, Outcome::TicketCreated, "{report:?}");
    println!(
        "{secs} {before} {} {}",
        peak_rss_mb(),
        raw.len() as f64 / 1e6
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--child") {
        return child().await;
    }
    let exe = std::env::current_exe()?;
    let mut runs: Vec<Vec<f64>> = Vec::new();
    for _ in 0..RUNS {
        let out = std::process::Command::new(&exe).arg("--child").output()?;
        anyhow::ensure!(
            out.status.success(),
            "run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8(out.stdout)?;
        runs.push(
            line.split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()?,
        );
    }
    let col = |i: usize| runs.iter().map(|r| r[i]).collect::<Vec<f64>>();
    let max = |v: Vec<f64>| v.into_iter().fold(0f64, f64::max);
    let secs = col(0);
    println!(
        "| 25 MB attachment, SQLite | 1 message, 25 MB random bytes base64 ({:.0} MB raw), registered sender, fresh DB; {RUNS} runs, one process each; median time, max peak RSS (process holds the raw message: {:.0} MB RSS before ingest) | {:.2} s (runs: {}) | {:.0} MB |",
        runs[0][3],
        max(col(1)),
        median(secs.clone()),
        secs.iter()
            .map(|s| format!("{s:.2}"))
            .collect::<Vec<_>>()
            .join(", "),
        max(col(2))
    );
    Ok(())
}
