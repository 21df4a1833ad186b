//! Notification fan-out into the real Postfix: one comment on a ticket with
//! 1,000 followers, sent by the outbox worker; messages/s counted as accepted by
//! Postfix after DATA. Run with `scripts/bench.sh fanout` (or `cargo bench --bench fanout`).
//!
//! Two more rows say whose ceiling that is, with Postfix's own test tools: the
//! same Postfix fed by `smtp-source` (its C load generator, a client that costs
//! next to nothing), in runs alternating with ours; and the same fan-out into
//! `smtp-sink` (accepts after DATA, stores nothing): the mailer's own ceiling.

use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ticketgate::app::App;
use ticketgate::config::{Settings, SmtpKind, Span, TlsMode};
use ticketgate::domain::ids::EmailAddress;
use ticketgate::domain::ticket::Role;
use ticketgate::ingest::{Delivery, IngestReport};
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

/// A ticket with `FOLLOWERS` followers in a fresh SQLite store, sending to
/// `host:port`.
struct Fanout {
    app: App,
    worker: ticketgate::outbox::OutboxWorker,
    ticket: Option<i64>,
    concurrency: u32,
    _dir: tempfile::TempDir,
}

impl Fanout {
    async fn new(host: &str, port: u16) -> anyhow::Result<Self> {
        Self::on(host, port, None).await
    }

    /// Like `new`, on the PostgreSQL database at `database` when given.
    async fn on(host: &str, port: u16, database: Option<&str>) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let text = format!(
            "[database]\nurl = \"sqlite://{}/bench.db\"\n[smtp]\nkind = \"smtp\"\n[support]\nname = \"Example Support\"\n\
             address = \"support@example.test\"\ndomain = \"example.test\"\nnotify = \"bench-team@example.test\"\nreply_secret = \"bench\"\n",
            dir.path().display()
        );
        let mut settings = Settings::from_sources(&text, "bench", Vec::new())?;
        if let Some(url) = database {
            settings.database.url = url.to_string();
        }
        settings.smtp.kind = SmtpKind::Smtp;
        settings.smtp.host = host.to_string();
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
        let report = deliver(&app, &open).await?;
        let worker = app.outbox_worker()?;
        worker.flush().await?;
        Ok(Self {
            app,
            worker,
            ticket: report.ticket,
            concurrency,
            _dir: dir,
        })
    }

    /// One comment, then the outbox sends its notifications: msg/s.
    async fn run(&self, run: usize) -> anyhow::Result<f64> {
        let comment = format!(
            "From: f0001@customer.test\nTo: support@example.test\nMessage-ID: <bench-{run}@customer.test>\nIn-Reply-To: <bench-root@customer.test>\nSubject: Re: Fan-out\n\nUpdate {run}.\n"
        );
        let r = deliver(&self.app, &comment).await?;
        assert_eq!(r.ticket, self.ticket);
        let start = Instant::now();
        let stats = self.worker.flush().await?;
        let elapsed = start.elapsed();
        assert_eq!(
            stats.sent, FOLLOWERS,
            "999 followers + the team address, minus nobody, accepted: {stats:?}"
        );
        assert_eq!((stats.failed, stats.dead), (0, 0));
        Ok(stats.sent as f64 / elapsed.as_secs_f64())
    }
}

/// Ingests `raw` as mail from outside, notifications on.
async fn deliver(app: &App, raw: &str) -> anyhow::Result<IngestReport> {
    Ok(app
        .ingestor
        .ingest(Delivery {
            raw: raw.as_bytes(),
            origin: "bench",
            notify: true,
            ..Default::default()
        })
        .await?)
}

/// Postfix's own load generator (the postfix package puts its test tools in
/// /usr/sbin, which is not on every PATH): `FOLLOWERS` messages of about a
/// notification's size over `sessions` reused connections: msg/s.
fn smtp_source(host: &str, port: u16, sessions: u32) -> anyhow::Result<f64> {
    let start = Instant::now();
    let status = Command::new("/usr/sbin/smtp-source")
        .args(["-d", "-l", "3000", "-f", "support@example.test"])
        .args(["-t", "f0001@customer.test"])
        .args(["-m", &FOLLOWERS.to_string(), "-s", &sessions.to_string()])
        .arg(format!("{host}:{port}"))
        .stdin(Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "smtp-source: {status}");
    Ok(FOLLOWERS as f64 / start.elapsed().as_secs_f64())
}

/// `smtp-sink` on a free loopback port, killed when dropped.
struct Sink(std::process::Child, u16);

impl Sink {
    fn start() -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut cmd = Command::new("/usr/sbin/smtp-sink");
        // As root it must be told whom to run as once its socket is open.
        if std::fs::metadata("/proc/self")?.uid() == 0 {
            cmd.args(["-u", "nobody"]);
        }
        let child = cmd
            .arg(format!("127.0.0.1:{port}"))
            .arg("256")
            .stdin(Stdio::null())
            .spawn()?;
        let sink = Sink(child, port);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(sink);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        anyhow::bail!("smtp-sink did not listen on 127.0.0.1:{port}")
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spread(rates: &[f64]) -> String {
    let (min, max) = rates
        .iter()
        .fold((f64::MAX, 0f64), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
    format!(
        "{:.0} msg/s (min {min:.0}, max {max:.0})",
        common::median(rates.to_vec())
    )
}

/// A fresh PostgreSQL database for the bench (dropped and created again).
async fn fresh_postgres(name: &str) -> anyhow::Result<String> {
    use sqlx::Connection;
    let base = std::env::var("TICKETGATE_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable".into());
    let mut conn = sqlx::PgConnection::connect(&base).await?;
    for sql in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await?;
    }
    let (path, query) = base.split_once('?').unwrap_or((&base, ""));
    let (head, _) = path.rsplit_once('/').unwrap_or((path, ""));
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    Ok(format!("{head}/{name}{query}"))
}

/// The smtp-sink row alone, on SQLite and on PostgreSQL: no mail stack.
async fn sink_only() -> anyhow::Result<()> {
    let sink = Sink::start()?;
    println!("| outbox into smtp-sink | store | result |");
    println!("|---|---|---|");
    for backend in ["SQLite", "PostgreSQL"] {
        let url = match backend {
            "PostgreSQL" => Some(fresh_postgres("tg_bench_fanout").await?),
            _ => None,
        };
        let fanout = Fanout::on("127.0.0.1", sink.1, url.as_deref()).await?;
        let mut rates = Vec::new();
        for run in 0..RUNS {
            rates.push(fanout.run(run).await?);
        }
        println!(
            "| 1 comment -> {FOLLOWERS} recipients, {} SMTP connections; {RUNS} runs, median | {backend} | {} |",
            fanout.concurrency,
            spread(&rates)
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "sink") {
        return sink_only().await;
    }
    let (host, port) = mailstack_env();
    let postfix = Fanout::new(&host, port).await?;
    let concurrency = postfix.concurrency;
    let (mut ours, mut source) = (Vec::new(), Vec::new());
    for run in 0..RUNS {
        ours.push(postfix.run(run).await?);
        // Let Postfix hand the last run to Dovecot before the next one starts.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (h, p) = (host.clone(), port);
        source.push(tokio::task::spawn_blocking(move || smtp_source(&h, p, concurrency)).await??);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let rss = common::peak_rss_mb();
    let sink = Sink::start()?;
    let free = Fanout::new("127.0.0.1", sink.1).await?;
    let mut unbound = Vec::new();
    for run in 0..RUNS {
        unbound.push(free.run(run).await?);
    }
    drop(sink);
    println!("| benchmark | setup | result | peak RSS |");
    println!("|---|---|---|---|");
    println!(
        "| notification fan-out | 1 comment -> {FOLLOWERS} recipients, SQLite, Postfix on loopback (accepted after DATA), {concurrency} SMTP connections; {RUNS} runs, median | {} | {rss:.0} MB |",
        spread(&ours)
    );
    println!(
        "| Postfix alone (smtp-source) | Postfix's own load generator into the same Postfix: {FOLLOWERS} messages of 3 KB to one mailbox (the fan-out row reaches 1,000), {concurrency} sessions reusing their connections; {RUNS} runs alternating with the row above, median; ratio of medians | {} ({:.2}x the fan-out row) | - |",
        spread(&source),
        common::median(source.clone()) / common::median(ours.clone())
    );
    println!(
        "| notification fan-out into smtp-sink | as the fan-out row, into Postfix's smtp-sink (accepts after DATA, stores nothing): the mailer's own ceiling; {RUNS} runs, median | {} | {:.0} MB |",
        spread(&unbound),
        common::peak_rss_mb()
    );
    Ok(())
}
