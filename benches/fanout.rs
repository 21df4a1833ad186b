//! Notification fan-out into the real Postfix: one comment on a ticket with
//! 1,000 followers, sent by the outbox worker; messages/s counted as accepted by
//! Postfix after DATA. Run with `scripts/bench.sh fanout` (or `cargo bench --bench fanout`).

use std::time::{Duration, Instant};

use ticketgate::app::App;
use ticketgate::config::{Settings, SmtpKind, Span, TlsMode};
use ticketgate::domain::ids::EmailAddress;
use ticketgate::domain::ticket::Role;
use ticketgate::ingest::Delivery;
use ticketgate::store::NewUser;

mod common;

const FOLLOWERS: usize = 1000;
const RUNS: usize = 5;

/// The mail stack's SMTP host and port, with the followers' mailboxes added.
fn mailstack_env() -> (String, u16) {
    let env = common::stack();
    let mut mailboxes: Vec<String> = (1..=FOLLOWERS)
        .map(|i| format!("f{i:04}@customer.test"))
        .collect();
    mailboxes.push("bench-team@example.test".into());
    common::add_users(&mailboxes);
    (
        env["TICKETGATE_TEST_IMAP_HOST"].clone(),
        env["TICKETGATE_TEST_SMTP_PORT"].parse().unwrap(),
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (host, port) = mailstack_env();
    let dir = tempfile::tempdir()?;
    let text = format!(
        "[database]\nurl = \"sqlite://{}/bench.db\"\n[smtp]\nkind = \"smtp\"\n[support]\nname = \"Example Support\"\n\
         address = \"support@example.test\"\ndomain = \"example.test\"\nnotify = \"bench-team@example.test\"\nreply_secret = \"bench\"\n",
        dir.path().display()
    );
    let mut settings = Settings::from_sources(&text, "bench", Vec::new())?;
    settings.smtp.kind = SmtpKind::Smtp;
    settings.smtp.host = host;
    settings.smtp.port = port;
    settings.smtp.tls = TlsMode::None;
    settings.outbox.poll_interval = Span(Duration::from_millis(100));
    let concurrency = settings.outbox.concurrency;
    let app = App::open(settings).await?;
    let org = app
        .store
        .add_org("Bench Org", "bench-org", &["customer.test".into()])
        .await?;
    for i in 1..=FOLLOWERS {
        let user = NewUser {
            email: EmailAddress::parse(&format!("f{i:04}@customer.test"))?,
            name: format!("Follower {i}"),
            role: Role::Customer,
            org_id: Some(org.id),
            locale: "en".into(),
        };
        app.store.add_user(&user).await?;
    }
    // f0001 opens the ticket with everyone else in Cc: they all follow it.
    let cc: Vec<String> = (2..=FOLLOWERS)
        .map(|i| format!("f{i:04}@customer.test"))
        .collect();
    let open = format!(
        "From: f0001@customer.test\nTo: support@example.test\nCc: {}\nMessage-ID: <bench-root@customer.test>\nSubject: Fan-out\n\nHello all.\n",
        cc.join(", ")
    );
    let report = app
        .ingestor
        .ingest(Delivery {
            raw: open.as_bytes(),
            origin: "bench",
            notify: true,
            ..Default::default()
        })
        .await?;
    let worker = app.outbox_worker()?;
    worker.flush().await?;

    let mut rates = Vec::new();
    for run in 0..RUNS {
        let comment = format!(
            "From: f0001@customer.test\nTo: support@example.test\nMessage-ID: <bench-{run}@customer.test>\nIn-Reply-To: <bench-root@customer.test>\nSubject: Re: Fan-out\n\nUpdate {run}.\n"
        );
        let r = app
            .ingestor
            .ingest(Delivery {
                raw: comment.as_bytes(),
                origin: "bench",
                notify: true,
                ..Default::default()
            })
            .await?;
        assert_eq!(r.ticket, report.ticket);
        let start = Instant::now();
        let stats = worker.flush().await?;
        let elapsed = start.elapsed();
        assert_eq!(
            stats.sent, FOLLOWERS,
            "999 followers + the team address, minus nobody, accepted: {stats:?}"
        );
        assert_eq!((stats.failed, stats.dead), (0, 0));
        rates.push(stats.sent as f64 / elapsed.as_secs_f64());
    }
    let (min, max) = rates
        .iter()
        .fold((f64::MAX, 0f64), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
    println!("| benchmark | setup | result | peak RSS |");
    println!("|---|---|---|---|");
    println!(
        "| notification fan-out | 1 comment -> {FOLLOWERS} recipients, SQLite, Postfix on loopback (accepted after DATA), {concurrency} SMTP connections; {RUNS} runs, median | {:.0} msg/s (min {:.0}, max {:.0}) | {:.0} MB |",
        common::median(rates.clone()),
        min,
        max,
        common::peak_rss_mb()
    );
    Ok(())
}
