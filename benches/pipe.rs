//! MTA pipe intake latency, two rows:
//! - through the real Postfix: 200 messages sent one at a time to
//!   `pipe.example.test`, which pipe(8) hands to `ticketgate ingest -` (the
//!   bench-profile binary, i.e. target/release/ticketgate); time from SMTP
//!   acceptance (lettre's send returns after DATA) to the committed outcome
//!   seen in the database; p50/p99.
//! - the same command alone: one `ticketgate ingest -` process per message on
//!   stdin against one SQLite file (what pipe(8) does after acceptance), from
//!   spawn to exit; p50/p99. The difference is Postfix's queueing and pipe(8).
//!
//! `cargo bench --bench pipe` (starts the mail stack via scripts/mailstack.sh).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lettre::AsyncTransport;
use ticketgate::app::App;
use ticketgate::config::Settings;

mod common;
use common::{count, message, percentile, stack};

const BIN: &str = env!("CARGO_BIN_EXE_ticketgate");
const N: usize = 200;

/// A fresh work dir with a config file and a migrated database whose org
/// domain is customer.test; returns the open app (to watch the log) and the config.
async fn setup(work: &Path) -> anyhow::Result<(App, PathBuf)> {
    let config = work.join("ticketgate.toml");
    let text = format!(
        "[database]\nurl = \"sqlite://{0}/bench.db\"\n[smtp]\nkind = \"file\"\ndir = \"{0}/outbox\"\n[support]\naddress = \"support@example.test\"\n\
         domain = \"example.test\"\nnotify = \"team@example.test\"\nreply_secret = \"bench\"\n[admin]\nlisten = \"\"\n",
        work.display()
    );
    std::fs::write(&config, &text)?;
    let app = App::open(Settings::from_sources(&text, "bench", Vec::new())?).await?;
    app.store
        .add_org("Customers", "customers", &["customer.test".into()])
        .await?;
    Ok((app, config))
}

fn summary(mut ms: Vec<f64>) -> String {
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    format!(
        "p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        percentile(&ms, 0.50),
        percentile(&ms, 0.99),
        ms.last().unwrap()
    )
}

/// Through Postfix: SMTP acceptance -> outcome committed by the piped process.
async fn through_postfix(env: &HashMap<String, String>, run: &str) -> anyhow::Result<Vec<f64>> {
    let stack_dir = PathBuf::from(&env["TICKETGATE_MAILSTACK_DIR"]);
    let dir = tempfile::tempdir()?;
    let work = dir.path();
    let (app, config) = setup(work).await?;
    // pipe(8) runs as the mail user, who must write the database and its WAL.
    for args in [vec!["chown", "-R", "tgvmail:tgvmail"], vec!["chmod", "755"]] {
        let ok = Command::new(args[0])
            .args(&args[1..])
            .arg(work)
            .status()?
            .success();
        anyhow::ensure!(ok, "{args:?} failed");
    }
    // Install the pipe target atomically, as tests/mail/pipe.rs does.
    let target = stack_dir.join("pipe-target");
    let tmp = stack_dir.join("pipe-target.tmp");
    std::fs::write(
        &tmp,
        format!(
            "#!/bin/sh\ncd '{}' && exec '{BIN}' --config '{}' ingest -\n",
            work.display(),
            config.display()
        ),
    )?;
    Command::new("chmod").arg("755").arg(&tmp).status()?;
    std::fs::rename(&tmp, &target)?;

    let smtp = lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous(
        env["TICKETGATE_TEST_IMAP_HOST"].as_str(),
    )
    .port(env["TICKETGATE_TEST_SMTP_PORT"].parse()?)
    .build();
    let to = "support@pipe.example.test";
    let mut latencies = Vec::with_capacity(N);
    let result = async {
        for i in 0..N {
            let from = format!("c{}@customer.test", i / 2);
            let envelope = lettre::address::Envelope::new(Some(from.parse()?), vec![to.parse()?])?;
            smtp.send_raw(&envelope, &message(i, run, to)).await?;
            let accepted = Instant::now();
            while count(&app).await < i + 1 {
                anyhow::ensure!(
                    accepted.elapsed() < Duration::from_secs(30),
                    "message {i} never arrived (see {}/postfix.log)",
                    stack_dir.display()
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            latencies.push(accepted.elapsed().as_secs_f64() * 1000.0);
        }
        Ok(())
    }
    .await;
    // Leave no target behind: later mail to the pipe domain defers instead of failing.
    std::fs::remove_file(&target).ok();
    result.map(|()| latencies)
}

/// The command alone: spawn `ticketgate ingest -`, write the message, wait for exit.
async fn process_per_message(run: &str) -> anyhow::Result<Vec<f64>> {
    let dir = tempfile::tempdir()?;
    let (app, config) = setup(dir.path()).await?;
    let mut latencies = Vec::with_capacity(N);
    for i in 0..N {
        let raw = message(i, run, "support@example.test");
        let start = Instant::now();
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .args(["ingest", "-"])
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()?;
        child.stdin.take().unwrap().write_all(&raw)?;
        let status = child.wait()?;
        latencies.push(start.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(status.success(), "ingest - exited with {status}");
    }
    anyhow::ensure!(count(&app).await == N, "every message recorded");
    Ok(latencies)
}

/// Peak RSS of one more `ingest -` process (into the same kind of fresh
/// database), via GNU time: std cannot read a child's rusage, and this run is
/// apart from the timed ones so the wrapper costs them nothing.
async fn ingest_process_rss(run: &str) -> anyhow::Result<String> {
    if !Path::new("/usr/bin/time").exists() {
        return Ok("not measured (no /usr/bin/time)".into());
    }
    let dir = tempfile::tempdir()?;
    let (_app, config) = setup(dir.path()).await?;
    let report = dir.path().join("time.txt");
    let mut child = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(&report)
        .arg(BIN)
        .arg("--config")
        .arg(&config)
        .args(["ingest", "-"])
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&message(0, run, "support@example.test"))?;
    anyhow::ensure!(child.wait()?.success(), "ingest - failed");
    let kb: f64 = std::fs::read_to_string(&report)?.trim().parse()?;
    Ok(format!("{:.0} MB per `ingest -` process", kb / 1024.0))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let only_process = std::env::args().any(|a| a == "--process-only");
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let rss = ingest_process_rss(&format!("{run}m")).await?;
    if !only_process {
        let env = stack();
        let lat = through_postfix(&env, &format!("{run}p")).await?;
        println!(
            "| MTA pipe latency | {N} messages (~3 KB, half replies) one at a time, Postfix on loopback -> pipe(8) -> `ticketgate ingest -` (release build, one process each) -> SQLite (WAL, synchronous=FULL); SMTP acceptance -> committed outcome seen by a reader polling every 1 ms | {} | {rss} |",
            summary(lat)
        );
    }
    let lat = process_per_message(&format!("{run}s")).await?;
    println!(
        "| `ingest -` process per message | {N} messages (~3 KB, half replies), `ticketgate ingest -` (release build) spawned per message with the message on stdin, one SQLite file (WAL, synchronous=FULL); spawn -> exit (no MTA) | {} | {rss} |",
        summary(lat)
    );
    Ok(())
}
