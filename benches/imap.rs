//! IMAP intake benchmarks against the real Dovecot and Postfix:
//! - drain: a mailbox of 10,000 messages (~3 KB, half of them replies) emptied
//!   into SQLite by the poller; messages/s.
//! - latency: 200 messages sent through Postfix one after another while the
//!   poller IDLEs; time from SMTP acceptance to the committed outcome, p50/p99.
//!
//! Run with `scripts/bench.sh imap`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use lettre::AsyncTransport;
use ticketgate::config::{MailboxKind, MailboxSettings, Span, TlsMode};
use ticketgate::health::MailboxState;
use ticketgate::source::imap::ImapPoller;
use tokio_util::sync::CancellationToken;

mod common;
use common::{add_users, app, count, message, peak_rss_mb, percentile, stack};

const DRAIN: usize = 10_000;
const LATENCY: usize = 200;

fn mailbox(env: &HashMap<String, String>, user: &str) -> MailboxSettings {
    MailboxSettings {
        name: format!("bench-{user}"),
        kind: MailboxKind::Imap,
        host: env["TICKETGATE_TEST_IMAP_HOST"].clone(),
        port: env["TICKETGATE_TEST_IMAP_PORT"].parse().unwrap(),
        tls: TlsMode::None,
        username: user.into(),
        password: env["TICKETGATE_TEST_MAIL_PASSWORD"].clone(),
        poll_interval: Span(Duration::from_millis(100)),
        ..MailboxSettings::default()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = stack();
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();

    // Drain: fill a mailbox with APPEND (fast, no SMTP in the measurement), then time the poller.
    let user = format!("drain-{run}@example.test");
    add_users(std::slice::from_ref(&user));
    tokio::time::sleep(Duration::from_millis(1100)).await; // Dovecot re-reads its passwd-file once a second
    let tcp = tokio::net::TcpStream::connect((
        env["TICKETGATE_TEST_IMAP_HOST"].as_str(),
        mailbox(&env, &user).port,
    ))
    .await?;
    let mut client = async_imap::Client::new(tcp);
    client.read_response().await?;
    let mut session = client
        .login(&user, &env["TICKETGATE_TEST_MAIL_PASSWORD"])
        .await
        .map_err(|(e, _)| e)?;
    for i in 0..DRAIN {
        session
            .append("INBOX", None, None, message(i, &run, &user))
            .await?;
    }
    let dir = tempfile::tempdir()?;
    let drain_app = app(
        &format!("sqlite://{}/bench.db", dir.path().display()),
        dir.path(),
        None,
    )
    .await?;
    let poller = ImapPoller::new(mailbox(&env, &user), drain_app.ingestor.clone())?;
    let cancel = CancellationToken::new();
    let start = Instant::now();
    let task = tokio::spawn(poller.run(cancel.clone()));
    while count(&drain_app).await < DRAIN {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drain_secs = start.elapsed().as_secs_f64();
    let drain_rss = peak_rss_mb(); // before the latency part adds to it
    cancel.cancel();
    task.await?;
    session.select("INBOX").await?;
    let left: Vec<_> = session.uid_search("ALL").await?.into_iter().collect();
    session.logout().await.ok();

    // Latency: one message at a time through Postfix while the poller IDLEs.
    let user = format!("lat-{run}@example.test");
    add_users(std::slice::from_ref(&user));
    let dir = tempfile::tempdir()?;
    let lat_app = app(
        &format!("sqlite://{}/bench.db", dir.path().display()),
        dir.path(),
        None,
    )
    .await?;
    let poller = ImapPoller::new(mailbox(&env, &user), lat_app.ingestor.clone())?;
    let mut state = poller.state();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(poller.run(cancel.clone()));
    state.wait_for(|s| *s == MailboxState::Idle).await?;
    let smtp = lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous(
        env["TICKETGATE_TEST_IMAP_HOST"].as_str(),
    )
    .port(env["TICKETGATE_TEST_SMTP_PORT"].parse()?)
    .build();
    let mut latencies = Vec::with_capacity(LATENCY);
    for i in 0..LATENCY {
        let envelope =
            lettre::address::Envelope::new(Some("c1@customer.test".parse()?), vec![user.parse()?])?;
        let raw = message(i * 2, &format!("{run}l"), &user);
        smtp.send_raw(&envelope, &raw).await?;
        let accepted = Instant::now();
        while count(&lat_app).await < i + 1 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        latencies.push(accepted.elapsed().as_secs_f64() * 1000.0);
        // Let IDLE settle so each message measures a wake-up, not a drain already under way.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cancel.cancel();
    task.await?;
    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());

    println!("| benchmark | setup | result | peak RSS |");
    println!("|---|---|---|---|");
    println!(
        "| IMAP drain | {DRAIN} messages (~3 KB, half replies) in one Dovecot INBOX -> SQLite (WAL, synchronous=FULL), fetched in batches of 100, moved to Processed | {:.0} msg/s ({drain_secs:.1} s; {} left in INBOX) | {:.0} MB |",
        DRAIN as f64 / drain_secs,
        left.len(),
        drain_rss
    );
    println!(
        "| IDLE latency | {LATENCY} messages one at a time, Postfix SMTP acceptance -> committed outcome (Dovecot notifies ~500 ms after delivery) | p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms | {:.0} MB |",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.last().unwrap(),
        peak_rss_mb()
    );
    Ok(())
}
