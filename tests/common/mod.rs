//! `TestApp`: a fresh SQLite database in a temporary folder with the test world
//! of `fixtures/mail/README.md` registered, and helpers to deliver mail and read
//! back what users would see.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ticketgate::app::App;
use ticketgate::config::Settings;
use ticketgate::domain::ids::EmailAddress;
use ticketgate::domain::ticket::Role;
use ticketgate::ingest::{Delivery, IngestReport};
use ticketgate::store::sqlite::SqliteStore;
use ticketgate::store::{NewUser, OutboxRow, Store, TicketView};

pub struct TestApp {
    pub dir: tempfile::TempDir,
    pub app: App,
    sqlite: Option<SqliteStore>,
    /// The PostgreSQL database of `TestApp::postgres`, dropped last.
    _pg: Option<pg::TestDb>,
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/mail")
}

/// Settings for a test: everything under `dir`, the fixtures' support identity.
pub fn test_settings(dir: &Path) -> Settings {
    let text = format!(
        r#"
[database]
url = "sqlite://{db}"
[[mailbox]]
name = "inbox"
kind = "maildir"
path = "{maildir}"
poll_interval = "100ms"
[smtp]
kind = "file"
dir = "{outbox}"
[support]
name = "Example Support"
address = "support@example.test"
domain = "example.test"
notify = "team@example.test"
tag = "Support"
reply_secret = "test-secret"
[outbox]
poll_interval = "100ms"
[auth]
trusted_authserv_id = "mx.example.test"
[sla.P1]
name = "Critical"
response = "1 hour"
resolve = "8h"
[sla.P2]
name = "High"
response = "4 hours"
[rules]
file = "{rules}"
"#,
        db = dir.join("ticketgate.db").display(),
        maildir = dir.join("maildir").display(),
        outbox = dir.join("outbox").display(),
        rules = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("config/rules.toml")
            .display(),
    );
    Settings::from_sources(&text, "test", Vec::new()).expect("test settings are valid")
}

impl TestApp {
    /// A fresh database with the fixtures' world: alice (id 1), bob, carol, sam, dave.
    pub async fn new() -> Self {
        Self::with_settings(|_| {}).await
    }

    /// Like `new`, with settings adjusted by `adjust` first.
    pub async fn with_settings(adjust: impl FnOnce(&mut Settings)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut settings = test_settings(dir.path());
        adjust(&mut settings);
        let sqlite = SqliteStore::connect(&settings.database.url)
            .await
            .expect("sqlite opens");
        Self::open(dir, settings, Some(sqlite), None).await
    }

    /// Like `new`, with `rules` (rules.toml text) as the rules file.
    pub async fn with_rules(rules: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut settings = test_settings(dir.path());
        let file = dir.path().join("rules.toml");
        std::fs::write(&file, rules).expect("rules written");
        settings.rules.file = file.display().to_string();
        let sqlite = SqliteStore::connect(&settings.database.url)
            .await
            .expect("sqlite opens");
        Self::open(dir, settings, Some(sqlite), None).await
    }

    /// Like `new`, on a fresh PostgreSQL database (see `pg`).
    pub async fn postgres() -> Self {
        let db = pg::TestDb::create().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let mut settings = test_settings(dir.path());
        settings.database.url = db.url.clone();
        Self::open(dir, settings, None, Some(db)).await
    }

    async fn open(
        dir: tempfile::TempDir,
        settings: Settings,
        sqlite: Option<SqliteStore>,
        pg: Option<pg::TestDb>,
    ) -> Self {
        // Warnings and errors go to the test's captured output, shown when it
        // fails (a 500 from the portal says why there). Once per test binary.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
            )
            .with_test_writer()
            .try_init();
        let app = App::open(settings).await.expect("app opens");
        seed_world(app.store.as_ref()).await;
        Self {
            dir,
            app,
            sqlite,
            _pg: pg,
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.app.store
    }

    pub async fn deliver(&self, raw: &[u8]) -> IngestReport {
        self.app
            .ingestor
            .ingest(Delivery {
                raw,
                origin: "test",
                notify: true,
                ..Default::default()
            })
            .await
            .expect("ingest succeeds")
    }

    pub async fn deliver_file(&self, name: &str) -> IngestReport {
        let raw = std::fs::read(fixtures().join(name)).expect("fixture exists");
        self.deliver(&raw).await
    }

    pub async fn ticket(&self, id: i64) -> TicketView {
        self.store()
            .ticket_view(id)
            .await
            .expect("store works")
            .expect("ticket exists")
    }

    /// Direct SQL for tests that set up states no command reaches yet.
    pub async fn sqlite_execute(&self, sql: &str, params: impl rusqlite::Params) {
        self.sqlite
            .as_ref()
            .expect("a SQLite test app")
            .with_connection(|c| c.execute(sql, params))
            .await
            .expect("the statement runs");
    }

    pub async fn outbox(&self) -> Vec<OutboxRow> {
        self.store().list_outbox().await.expect("store works")
    }

    /// Sends everything queued (the test config writes `.eml` files) and
    /// reads back every mail sent so far, in outbox order, as recipients see it.
    pub async fn mails(&self) -> Vec<Mail> {
        self.app
            .outbox_worker()
            .expect("outbox worker")
            .flush()
            .await
            .expect("outbox flush");
        let dir = self.dir.path().join("outbox");
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
            Ok(entries) => entries
                .map(|e| e.expect("outbox entry").path())
                .filter(|p| p.extension().is_some_and(|e| e == "eml"))
                .collect(),
            Err(_) => Vec::new(),
        };
        files.sort();
        files.iter().map(|f| Mail::read(f)).collect()
    }
}

impl TestApp {
    /// `row` as its recipient would read it, without sending it: for rows
    /// queued at a time a test chose (the scheduler's), which the outbox
    /// worker holds until then.
    pub fn compose(&self, row: &OutboxRow) -> Mail {
        let raw = self
            .app
            .outbox_worker()
            .expect("outbox worker")
            .compose(row, None)
            .expect("the row composes");
        Mail::parse(&raw)
    }
}

/// A notification as its recipient reads it.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Mail {
    fn read(path: &Path) -> Self {
        Self::parse(&std::fs::read(path).expect("outbox file"))
    }

    fn parse(raw: &[u8]) -> Self {
        let m = mail_parser::MessageParser::default()
            .parse(raw)
            .expect("notification parses");
        Mail {
            to: m
                .to()
                .and_then(|a| a.first())
                .and_then(|a| a.address())
                .unwrap_or_default()
                .to_lowercase(),
            subject: m.subject().unwrap_or_default().to_string(),
            text: m.body_text(0).unwrap_or_default().replace("\r\n", "\n"),
            html: m.body_html(0).unwrap_or_default().replace("\r\n", "\n"),
        }
    }

    /// Fails on what a recipient must never read: `None`/`null`, status
    /// machine names, unrendered template syntax.
    pub fn assert_reads_well(&self) {
        for part in [&self.text, &self.html] {
            for bad in [
                "None",
                "null",
                "in_progress",
                "{{",
                "{%",
                "undefined",
                "status_changed",
            ] {
                assert!(
                    !part.contains(bad),
                    "mail to {} shows {bad:?}:\n{part}",
                    self.to
                );
            }
        }
    }
}

/// How many mails each recipient got, sorted by address.
pub fn count_per_recipient(mails: &[Mail]) -> Vec<(String, usize)> {
    let mut counts = std::collections::BTreeMap::new();
    for m in mails {
        *counts.entry(m.to.clone()).or_insert(0) += 1;
    }
    counts.into_iter().collect()
}

pub async fn seed_world(store: &dyn Store) {
    let site_a = store
        .add_org(
            "Customer Site A",
            "customer-site-a",
            &["customer.test".into()],
        )
        .await
        .unwrap();
    let other = store
        .add_org("Other Corp", "other-corp", &["other.test".into()])
        .await
        .unwrap();
    let users = [
        (
            "alice@customer.test",
            "Alice Anders",
            Role::Customer,
            Some(site_a.id),
        ),
        (
            "bob@customer.test",
            "Bob Brown",
            Role::Customer,
            Some(site_a.id),
        ),
        (
            "carol@other.test",
            "Carol Chen",
            Role::Customer,
            Some(other.id),
        ),
        ("sam@example.test", "Sam Staff", Role::Staff, None),
        ("dave@example.test", "Dave Lead", Role::Staff, None),
    ];
    for (email, name, role, org_id) in users {
        let user = store
            .add_user(&NewUser {
                email: EmailAddress::parse(email).unwrap(),
                name: name.into(),
                role,
                org_id,
                locale: "en".into(),
            })
            .await
            .unwrap();
        if email.starts_with("dave@") {
            store.add_org_lead(site_a.id, user.id).await.unwrap();
        }
    }
}

/// Polls `check` every 20 ms until it holds; fails naming `what` once
/// `within` has passed. Tests wait on this, never on a fixed sleep: absence is
/// proven by waiting for a later event (see `MailStack::drain`).
pub async fn wait_until<F, Fut>(what: &str, within: std::time::Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + within;
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "waited {within:?} for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// LF → CRLF for every line (input must be LF-only).
pub fn to_crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 20);
    for &b in raw {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}
pub mod http;
pub mod mailstack;
pub mod pg;
pub mod webdriver;

/// Every stored value of every column of every table of a SQLite database,
/// as `(table.column, bytes)`: what a scan for a person's data reads.
pub fn every_sqlite_value(c: &rusqlite::Connection) -> rusqlite::Result<Vec<(String, Vec<u8>)>> {
    let tables: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for table in tables {
        let columns: Vec<String> = c
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for column in columns {
            let mut stmt = c.prepare(&format!(
                "SELECT CAST(\"{column}\" AS BLOB) FROM \"{table}\""
            ))?;
            for value in stmt.query_map([], |r| r.get::<_, Option<Vec<u8>>>(0))? {
                if let Some(value) = value? {
                    out.push((format!("{table}.{column}"), value));
                }
            }
        }
    }
    Ok(out)
}

/// Where in `values` (from `every_sqlite_value`) `needle` is stored, in any case.
pub fn stored_where(values: &[(String, Vec<u8>)], needle: &str) -> Vec<String> {
    let needle = needle.to_lowercase();
    values
        .iter()
        .filter(|(_, v)| String::from_utf8_lossy(v).to_lowercase().contains(&needle))
        .map(|(at, _)| at.clone())
        .collect()
}
