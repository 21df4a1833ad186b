//! Full ingest throughput: 10,000 realistic messages (~3 KB, half of them
//! replies threading onto earlier tickets, senders auto-registered by org
//! domain, notifications queued) recorded by the library's `Ingestor`, into
//! SQLite (WAL, synchronous=FULL) and, when `TICKETGATE_BENCH_POSTGRES_URL`
//! is set, PostgreSQL. Each backend: 3 runs on a fresh database, median.
//! One process per backend, so peak RSS is its own.
//!
//! `cargo bench --bench ingest -- sqlite|postgres [N] [BATCH]`
//! `cargo bench --bench ingest -- statements` counts the statements one
//! delivery sends to PostgreSQL (sqlx's per-statement events: each is a round
//! trip) and times a bare round trip; together they bound what it can reach.
//! (SQLite's delivery transaction runs on rusqlite in-process, with no round trips.)

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ticketgate::ingest::Delivery;

mod common;

/// Every new ticket also notifies the support team, as in a real setup.
const BENCH_NOTIFY: &str = "team@example.test";
use common::{median, message, peak_rss_mb};

/// Loopback without TLS by default: over TLS, sqlx 0.9.0 waits for delayed
/// ACKs (README, "Running several instances"), and the bench would time that.
fn postgres_base() -> String {
    std::env::var("TICKETGATE_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable".into())
}

async fn fresh_postgres(base: &str, name: &str) -> anyhow::Result<String> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(base).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await?;
    // Same server and options (e.g. `?sslmode=disable`), another database.
    let (path, query) = base.split_once('?').map_or((base, ""), |(p, q)| (p, q));
    let (head, _) = path.rsplit_once('/').unwrap_or((path, ""));
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    Ok(format!("{head}/{name}{query}"))
}

/// Counts sqlx's statement events (target `sqlx::query`), and by statement
/// with `TICKETGATE_BENCH_SQL=1` (printed to stderr, most frequent first).
struct CountStatements(
    Arc<AtomicU64>,
    Arc<std::sync::Mutex<std::collections::HashMap<String, u64>>>,
);

struct Summary(String);

impl tracing::field::Visit for Summary {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "summary" {
            self.0 = format!("{value:?}");
        }
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "summary" {
            self.0 = value.to_string();
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CountStatements {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() == "sqlx::query" {
            self.0.fetch_add(1, Ordering::Relaxed);
            let mut s = Summary(String::new());
            event.record(&mut s);
            *self.1.lock().unwrap().entry(s.0).or_default() += 1;
        }
    }
}

async fn statements() -> anyhow::Result<()> {
    use tracing_subscriber::layer::SubscriberExt;
    let count = Arc::new(AtomicU64::new(0));
    let by_sql = Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(CountStatements(count.clone(), by_sql.clone())),
    )?;
    let dir = tempfile::tempdir()?;
    let url = fresh_postgres(&postgres_base(), "tg_bench_statements").await?;
    let app = common::app(&url, dir.path(), Some(BENCH_NOTIFY)).await?;
    let n = 1000;
    let messages: Vec<Vec<u8>> = (0..n)
        .map(|i| message(i, "count", "support@example.test"))
        .collect();
    let before = count.load(Ordering::Relaxed);
    for raw in &messages {
        app.ingestor
            .ingest(Delivery {
                raw,
                origin: "bench",
                notify: true,
                ..Default::default()
            })
            .await?;
    }
    let per_message = (count.load(Ordering::Relaxed) - before) as f64 / n as f64;
    if std::env::var_os("TICKETGATE_BENCH_SQL").is_some() {
        let mut rows: Vec<_> = by_sql.lock().unwrap().clone().into_iter().collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.1));
        for (sql, k) in rows {
            eprintln!("{:>6.2}/msg  {sql}", k as f64 / n as f64);
        }
    }
    // A bare statement through the same pool: the adapter's fixed cost.
    let pool = sqlx::PgPool::connect(&url).await?;
    let rounds = 20_000;
    let start = Instant::now();
    for _ in 0..rounds {
        sqlx::query("SELECT 1").execute(&pool).await?;
    }
    let per_statement_us = start.elapsed().as_secs_f64() * 1e6 / rounds as f64;
    println!(
        "| PostgreSQL round trips per delivery | {n} deliveries as above, one per transaction; sqlx statement events counted | {per_message:.1} statements/message; a bare `SELECT 1` round trip costs {per_statement_us:.0} µs (ceiling from round trips alone: {:.0} msg/s) | {:.0} MB |",
        1e6 / (per_message * per_statement_us),
        peak_rss_mb()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("statements") {
        return statements().await;
    }
    let backend = args.first().map(String::as_str).unwrap_or("sqlite");
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let batch: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100);
    let mut rates = Vec::new();
    for round in 0..3 {
        let dir = tempfile::tempdir()?;
        let url = match backend {
            "postgres" => fresh_postgres(&postgres_base(), &format!("tg_bench_{round}")).await?,
            _ => format!("sqlite://{}/bench.db", dir.path().display()),
        };
        let app = common::app(&url, dir.path(), Some(BENCH_NOTIFY)).await?;
        let run = format!("r{round}");
        // Each batch is generated just before it is ingested (outside the
        // clock), so peak RSS is the gateway's, not a 30 MB corpus held in memory.
        let batch = batch.max(1);
        let mut ingesting = Duration::ZERO;
        for first in (0..n).step_by(batch) {
            let chunk: Vec<Vec<u8>> = (first..(first + batch).min(n))
                .map(|i| message(i, &run, "support@example.test"))
                .collect();
            let deliveries: Vec<Delivery> = chunk
                .iter()
                .map(|raw| Delivery {
                    raw,
                    origin: "bench",
                    notify: true,
                    ..Default::default()
                })
                .collect();
            let start = Instant::now();
            let reports = app.ingestor.ingest_batch(&deliveries).await?;
            ingesting += start.elapsed();
            assert_eq!(reports.len(), chunk.len());
        }
        rates.push(n as f64 / ingesting.as_secs_f64());
        let tickets = app.store.list_tickets(&Default::default()).await?.len();
        assert_eq!(tickets, n / 2 + n % 2, "every other message opens a ticket");
        if std::env::var_os("TICKETGATE_BENCH_KEEP").is_some() {
            eprintln!("kept {}", dir.keep().display()); // for inspecting the database
        }
    }
    println!(
        "| full ingest, {backend} | {n} messages (~3 KB, half replies, senders auto-registered, notifications queued), committed {batch} per transaction; 3 runs, median | {:.0} msg/s (runs: {}) | {:.0} MB |",
        median(rates.clone()),
        rates
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", "),
        peak_rss_mb()
    );
    Ok(())
}
