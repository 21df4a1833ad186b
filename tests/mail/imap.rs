//! IMAP intake against the real Dovecot, with mail sent through the real Postfix.

use crate::common;

use std::process::{Child, Command, Stdio};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use common::TestApp;
use common::mailstack::{MailStack, mailstack, unique};
use ticketgate::config::{MailboxKind, MailboxSettings, Size, Span, TlsMode};
use ticketgate::domain::outcome::Outcome;
use ticketgate::health::MailboxState;
use ticketgate::source::imap::ImapPoller;
use ticketgate::store::{LogFilter, LogRow};
use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;

/// Restarting Dovecot disturbs every other test using it: that test runs alone.
static DOVECOT: LazyLock<RwLock<()>> = LazyLock::new(|| RwLock::new(()));

fn imap_mailbox(stack: &MailStack, user: &str, folder: &str) -> MailboxSettings {
    MailboxSettings {
        name: format!("imap-{user}"),
        kind: MailboxKind::Imap,
        host: stack.host.clone(),
        port: stack.imap_port,
        tls: TlsMode::None,
        username: user.to_string(),
        password: stack.password.clone(),
        folder: folder.to_string(),
        poll_interval: Span(Duration::from_millis(500)),
        ..MailboxSettings::default()
    }
}

/// Runs a poller in the background; cancelled and awaited by `stop`.
struct Running {
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    state: tokio::sync::watch::Receiver<MailboxState>,
    attempts: std::sync::Arc<std::sync::atomic::AtomicU64>,
    retry_in: tokio::sync::watch::Receiver<Option<Duration>>,
}

impl Running {
    fn start(app: &TestApp, mailbox: MailboxSettings) -> Self {
        let poller = ImapPoller::new(mailbox, app.app.ingestor.clone()).unwrap();
        let state = poller.state();
        let attempts = poller.attempts();
        let retry_in = poller.retry_in();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(poller.run(cancel.clone()));
        Self {
            cancel,
            task,
            state,
            attempts,
            retry_in,
        }
    }

    async fn wait_until(&mut self, wanted: MailboxState, timeout: Duration) {
        tokio::time::timeout(timeout, self.state.wait_for(|s| *s == wanted))
            .await
            .unwrap_or_else(|_| panic!("poller never reached {wanted:?}"))
            .unwrap();
    }

    /// Waits until the poller, after a failure, waits to connect again; how long.
    async fn retry_wait(&self, timeout: Duration) -> Duration {
        let mut retry_in = self.retry_in.clone();
        let wait = *tokio::time::timeout(timeout, retry_in.wait_for(Option::is_some))
            .await
            .expect("the poller never waited to retry")
            .unwrap();
        wait.expect("a wait")
    }

    async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("poller stops when cancelled")
            .unwrap();
    }
}

async fn log(app: &TestApp) -> Vec<LogRow> {
    app.store().list_log(&LogFilter::default()).await.unwrap()
}

async fn wait_for_log(app: &TestApp, count: usize, timeout: Duration) -> Vec<LogRow> {
    let start = Instant::now();
    loop {
        let rows = log(app).await;
        if rows.len() >= count {
            return rows;
        }
        assert!(
            start.elapsed() < timeout,
            "{} of {count} messages recorded after {timeout:?}",
            rows.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn message(from: &str, to: &str, id: &str, subject: &str, body: &str) -> Vec<u8> {
    format!("From: {from}\r\nTo: {to}\r\nMessage-ID: <{id}>\r\nSubject: {subject}\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\n\r\n{body}\r\n").into_bytes()
}

#[tokio::test]
async fn mail_sent_through_postfix_becomes_a_ticket_within_two_seconds_under_idle() {
    let _shared = DOVECOT.read().await;
    let stack = mailstack();
    let inbox = format!("in-{}@example.test", unique());
    stack.add_users(&[&inbox]);
    let app = TestApp::new().await;
    let mut running = Running::start(&app, imap_mailbox(stack, &inbox, "INBOX"));
    running
        .wait_until(MailboxState::Idle, Duration::from_secs(20))
        .await;

    let id = format!("idle-{}@customer.test", unique());
    let sent = Instant::now();
    stack
        .send(
            "alice@customer.test",
            &inbox,
            &message(
                "alice@customer.test",
                &inbox,
                &id,
                "Printer offline",
                "Since noon.",
            ),
        )
        .await;
    let rows = wait_for_log(&app, 1, Duration::from_secs(10)).await;
    let latency = sent.elapsed();
    assert!(
        latency < Duration::from_secs(2),
        "committed {latency:?} after Postfix accepted it"
    );
    assert_eq!(rows[0].outcome, "ticket_created");
    assert_eq!(
        rows[0].message_id.as_deref(),
        Some(format!("<{id}>").as_str())
    );
    assert!(
        rows[0]
            .origin
            .starts_with(&format!("imap:imap-{inbox}/INBOX;UIDVALIDITY=")),
        "{}",
        rows[0].origin
    );

    // Acknowledged only after the commit: moved to Processed, never left unread in INBOX.
    let start = Instant::now();
    while !stack.inbox(&inbox).await.is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "INBOX was not emptied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stack.folder(&inbox, "Processed").await.len(), 1);
    running.stop().await;
}

#[tokio::test]
async fn an_oversized_message_is_rejected_its_sender_told_and_it_is_kept_in_rejected() {
    let _shared = DOVECOT.read().await;
    let stack = mailstack();
    let inbox = format!("big-{}@example.test", unique());
    stack.add_users(&[&inbox]);
    let app = TestApp::with_settings(|s| s.intake.max_message_size = Size(100 * 1024)).await;
    let big = "x".repeat(76);
    let body = std::iter::repeat_n(big.as_str(), 4000)
        .collect::<Vec<_>>()
        .join("\r\n"); // ~300 KB
    stack
        .send(
            "bob@customer.test",
            &inbox,
            &message(
                "bob@customer.test",
                &inbox,
                "big@customer.test",
                "Heap dump",
                &body,
            ),
        )
        .await;
    let running = Running::start(&app, imap_mailbox(stack, &inbox, "INBOX"));
    let rows = wait_for_log(&app, 1, Duration::from_secs(20)).await;
    assert_eq!(
        (rows[0].outcome.as_str(), rows[0].reason.as_deref()),
        ("rejected", Some("too_large"))
    );
    assert!(
        rows[0].size > 300_000,
        "the declared size is recorded: {}",
        rows[0].size
    );
    let notices = app.outbox().await;
    assert_eq!(
        notices
            .iter()
            .map(|r| (r.template.as_str(), r.to.as_str()))
            .collect::<Vec<_>>(),
        [("refused", "bob@customer.test")]
    );
    let start = Instant::now();
    while stack.folder(&inbox, "Rejected").await.len() != 1 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the message never reached Rejected"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stack.inbox(&inbox).await.is_empty());
    running.stop().await;
}

#[tokio::test]
async fn a_dovecot_restart_mid_run_is_survived_and_nothing_is_missed() {
    let _alone = DOVECOT.write().await;
    let stack = mailstack();
    let inbox = format!("rs-{}@example.test", unique());
    stack.add_users(&[&inbox]);
    let app = TestApp::new().await;
    let mut running = Running::start(&app, imap_mailbox(stack, &inbox, "INBOX"));
    running
        .wait_until(MailboxState::Idle, Duration::from_secs(20))
        .await;
    let u = unique();
    for i in 0..20 {
        let from = format!("r{i}@customer.test");
        stack
            .send(
                &from,
                &inbox,
                &message(
                    &from,
                    &inbox,
                    &format!("rs{i}-{u}@customer.test"),
                    &format!("Restart {i}"),
                    "x",
                ),
            )
            .await;
        if i == 9 {
            let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/mailstack.sh"))
                .arg("restart-dovecot")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let rows = wait_for_log(&app, 20, Duration::from_secs(60)).await;
    assert!(
        rows.iter().all(|r| r.outcome == "ticket_created"),
        "{rows:?}"
    );
    // A message sent after the 20 is read after any second reading of them:
    // once it is recorded, nothing was recorded twice.
    let from = "late@customer.test";
    let late = format!("rs-late-{u}@customer.test");
    stack
        .send(
            from,
            &inbox,
            &message(from, &inbox, &late, "After the restart", "x"),
        )
        .await;
    let rows = wait_for_log(&app, 21, Duration::from_secs(30)).await;
    assert!(
        rows.iter()
            .any(|r| r.message_id.as_deref() == Some(format!("<{late}>").as_str())),
        "{rows:?}"
    );
    assert_eq!(rows.len(), 21, "nothing twice: {rows:?}");
    running.stop().await;
}

#[tokio::test]
async fn a_recreated_folder_with_a_new_uidvalidity_makes_no_duplicate_tickets() {
    let _shared = DOVECOT.read().await;
    let stack = mailstack();
    let user = format!("uv-{}@example.test", unique());
    stack.add_users(&[&user]);
    let app = TestApp::new().await;
    let u = unique();
    let raws: Vec<Vec<u8>> = (0..5)
        .map(|i| {
            message(
                "alice@customer.test",
                &user,
                &format!("uv{i}-{u}@customer.test"),
                &format!("UV {i}"),
                "x",
            )
        })
        .collect();
    let mut admin = stack.login(&user).await;
    admin.create("Support").await.unwrap();
    for raw in &raws {
        admin.append("Support", None, None, raw).await.unwrap();
    }
    let running = Running::start(&app, imap_mailbox(stack, &user, "Support"));
    wait_for_log(&app, 5, Duration::from_secs(20)).await;

    // The folder is deleted and recreated (a new UIDVALIDITY) holding the same messages.
    admin.delete("Support").await.unwrap();
    admin.create("Support").await.unwrap();
    admin.logout().await.ok();
    for raw in &raws {
        // Dovecot may answer "Mailbox was deleted under us" while the poller's
        // session still holds the old folder: a fresh session retries.
        let mut tries = 0;
        loop {
            let mut session = stack.login(&user).await;
            let appended = session.append("Support", None, None, raw).await;
            session.logout().await.ok();
            match appended {
                Ok(()) => break,
                Err(e) if tries < 10 => {
                    tries += 1;
                    eprintln!("append retried: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("append failed: {e}"),
            }
        }
    }
    let rows = wait_for_log(&app, 10, Duration::from_secs(60)).await;
    let outcomes: Vec<&str> = rows.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == "ticket_created").count(),
        5,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes.iter().filter(|o| **o == "duplicate").count(),
        5,
        "{outcomes:?}"
    );
    assert_eq!(
        app.store()
            .list_tickets(&Default::default())
            .await
            .unwrap()
            .len(),
        5
    );
    running.stop().await;
}

const BIN: &str = env!("CARGO_BIN_EXE_ticketgate");

fn spawn_serve(dir: &std::path::Path) -> Child {
    Command::new(BIN)
        .arg("serve")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("serve.log"))
                .unwrap(),
        )
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn five_hundred_messages_survive_repeated_sigkills_exactly_once() {
    let _shared = DOVECOT.read().await;
    let stack = mailstack();
    let inbox = format!("crash-{}@example.test", unique());
    stack.add_users(&[&inbox]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("config")).unwrap();
    std::fs::write(
        dir.path().join("config/ticketgate.toml"),
        format!(
            "[support]\naddress = \"support@example.test\"\ndomain = \"example.test\"\nreply_secret = \"k\"\n\
             [[mailbox]]\nname = \"crash\"\nkind = \"imap\"\nhost = \"{}\"\nport = {}\ntls = \"none\"\n\
             username = \"{inbox}\"\npassword = \"{}\"\npoll_interval = \"200ms\"\n\
             [admin]\nlisten = \"127.0.0.1:0\"\n[web]\nlisten = \"127.0.0.1:0\"\n",
            stack.host, stack.imap_port, stack.password
        ),
    )
    .unwrap();
    let setup = Command::new(BIN)
        .args(["org", "add", "Customer Site A", "--domain", "customer.test"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        setup.status.success(),
        "{}",
        String::from_utf8_lossy(&setup.stderr)
    );

    const N: usize = 500;
    let u = unique();
    let sender = {
        let stack = stack.clone();
        let inbox = inbox.clone();
        tokio::spawn(async move {
            for i in 0..N {
                let from = format!("k{i}@customer.test");
                let raw = message(
                    &from,
                    &inbox,
                    &format!("k{i}-{u}@customer.test"),
                    &format!("Crash test {i}"),
                    "x",
                );
                stack.send(&from, &inbox, &raw).await;
            }
        })
    };
    // Kill serve with SIGKILL at irregular moments while mail keeps arriving.
    let mut child = spawn_serve(dir.path());
    for delay in [700u64, 350, 900, 250, 600, 450] {
        tokio::time::sleep(Duration::from_millis(delay)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        child = spawn_serve(dir.path());
    }
    sender.await.unwrap();
    let start = Instant::now();
    loop {
        let out = Command::new(BIN)
            .args(["messages", "list", "--json"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if rows.len() >= N && stack.inbox(&inbox).await.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{} of {N} recorded",
            rows.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let out = Command::new(BIN)
        .args(["messages", "list", "--json"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.len(), N, "exactly one outcome per message");
    assert!(
        rows.iter()
            .all(|r| r["outcome"] == Outcome::TicketCreated.as_str()),
        "no duplicates, nothing refused"
    );
    let out = Command::new(BIN)
        .args(["ticket", "list", "--json"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let tickets: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(tickets.len(), N);
    assert!(
        stack.inbox(&inbox).await.is_empty(),
        "INBOX empty afterwards"
    );
    assert_eq!(stack.folder(&inbox, "Processed").await.len(), N);
}

#[tokio::test]
async fn mailboxes_over_implicit_tls_and_starttls_run_side_by_side() {
    let _shared = DOVECOT.read().await;
    let stack = mailstack();
    let (a, b) = (
        format!("tls-{}@example.test", unique()),
        format!("stls-{}@example.test", unique()),
    );
    stack.add_users(&[&a, &b]);
    let app = TestApp::new().await;
    let tls = MailboxSettings {
        tls: TlsMode::Tls,
        port: stack.imaps_port,
        ca_file: stack.ca.clone(),
        ..imap_mailbox(stack, &a, "INBOX")
    };
    let starttls = MailboxSettings {
        tls: TlsMode::Starttls,
        ca_file: stack.ca.clone(),
        ..imap_mailbox(stack, &b, "INBOX")
    };
    let mut first = Running::start(&app, tls);
    let mut second = Running::start(&app, starttls);
    first
        .wait_until(MailboxState::Idle, Duration::from_secs(20))
        .await;
    second
        .wait_until(MailboxState::Idle, Duration::from_secs(20))
        .await;
    let u = unique();
    stack
        .send(
            "alice@customer.test",
            &a,
            &message(
                "alice@customer.test",
                &a,
                &format!("t1-{u}@customer.test"),
                "Over TLS",
                "x",
            ),
        )
        .await;
    stack
        .send(
            "bob@customer.test",
            &b,
            &message(
                "bob@customer.test",
                &b,
                &format!("t2-{u}@customer.test"),
                "Over STARTTLS",
                "y",
            ),
        )
        .await;
    let rows = wait_for_log(&app, 2, Duration::from_secs(20)).await;
    let mut origins: Vec<&str> = rows
        .iter()
        .map(|r| r.origin.split('/').next().unwrap())
        .collect();
    origins.sort();
    let mut expected = [format!("imap:imap-{a}"), format!("imap:imap-{b}")];
    expected.sort();
    assert_eq!(origins, expected);
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn a_refused_login_is_not_retried_in_a_hot_loop() {
    let _shared = DOVECOT.read().await;
    let stack = mailstack();
    let user = format!("pw-{}@example.test", unique());
    stack.add_users(&[&user]);
    let app = TestApp::new().await;
    let mailbox = MailboxSettings {
        password: "wrong".into(),
        ..imap_mailbox(stack, &user, "INBOX")
    };
    let running = Running::start(&app, mailbox);
    // Once it waits to retry, the refused login has been handled.
    let wait = running.retry_wait(Duration::from_secs(20)).await;
    let attempts = running.attempts.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(attempts, 1, "one login attempt, then a long wait");
    assert!(
        wait >= Duration::from_secs(60),
        "a refused login waits at least a minute, not {wait:?}"
    );
    running.stop().await;
}

/// A message whose ingest keeps failing holds up the mail behind it only
/// for a few reconnections: then it is logged `rejected`/`processing_failed`
/// from its header section and moved to Rejected.
#[tokio::test]
async fn a_message_that_keeps_failing_is_set_aside_in_rejected_with_an_outcome() {
    let _shared = DOVECOT.read().await;
    let stack = mailstack();
    let inbox = format!("poison-{}@example.test", unique());
    stack.add_users(&[&inbox]);
    let app = TestApp::new().await;
    let poison = format!("poison-{}@customer.test", unique());
    // The store refuses this one message for as long as it is not a refusal.
    app.sqlite_execute(
        &format!(
            "CREATE TRIGGER poison BEFORE INSERT ON ingest_log
         WHEN NEW.message_id = '<{poison}>' AND NEW.outcome <> 'rejected'
         BEGIN SELECT RAISE(ABORT, 'poisoned'); END"
        ),
        [],
    )
    .await;
    let first = message("alice@customer.test", &inbox, &poison, "Boom", "Boom.");
    stack.send("alice@customer.test", &inbox, &first).await;
    let start = Instant::now();
    while stack.inbox(&inbox).await.len() != 1 {
        assert!(start.elapsed() < Duration::from_secs(10), "not delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let second = message(
        "alice@customer.test",
        &inbox,
        &format!("fine-{}@customer.test", unique()),
        "Printer",
        "Printer 3 is offline.",
    );
    stack.send("alice@customer.test", &inbox, &second).await;
    let running = Running::start(&app, imap_mailbox(stack, &inbox, "INBOX"));
    let rows = wait_for_log(&app, 2, Duration::from_secs(60)).await;
    let outcomes: Vec<_> = rows
        .iter()
        .map(|r| (r.outcome.as_str(), r.reason.as_deref()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("rejected", Some("processing_failed")),
            ("ticket_created", None)
        ]
    );
    assert_eq!(
        rows[0].message_id.as_deref(),
        Some(format!("<{poison}>").as_str())
    );
    let start = Instant::now();
    while stack.folder(&inbox, "Rejected").await.len() != 1 || !stack.inbox(&inbox).await.is_empty()
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the message never reached Rejected"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    running.stop().await;
}
