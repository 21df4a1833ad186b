//! What intake does with mail it cannot take whole or at all: oversized
//! messages are refused from their first bytes (stdin, files, Maildir), a
//! Maildir message that keeps failing moves aside with an outcome and holds
//! up nothing, and a message another process has in hand is left to it.

use crate::common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::TestApp;
use ticketgate::config::Size;
use ticketgate::domain::outcome::Outcome;
use ticketgate::source::maildir::Maildir;
use ticketgate::source::maildir::MaildirPoller;
use ticketgate::store::LogFilter;
use tokio_util::sync::CancellationToken;

const BIN: &str = env!("CARGO_BIN_EXE_ticketgate");

fn workdir(extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("config")).unwrap();
    std::fs::write(
        dir.path().join("config/ticketgate.toml"),
        format!(
            "[support]\naddress = \"support@example.test\"\ndomain = \"example.test\"\n\
             reply_secret = \"test-secret\"\n{extra}"
        ),
    )
    .unwrap();
    dir
}

fn run(dir: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || input.write_all(&stdin));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    out
}

fn message(id: &str, from: &str, body: &str) -> Vec<u8> {
    format!(
        "Message-ID: <{id}@customer.test>\r\nFrom: {from}\r\nTo: support@example.test\r\n\
         Subject: {id}\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// Lengths of the stored raw bytes of each logged delivery, in log order.
async fn stored_sizes(db: &Path) -> Vec<(i64, i64)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT l.size, length(b.data) FROM ingest_log l JOIN blobs b ON b.sha256 = l.raw_sha256
         ORDER BY l.id",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

#[tokio::test]
async fn oversized_mail_on_stdin_is_rejected_from_its_first_bytes_and_exits_0() {
    let dir = workdir("[intake]\nmax_message_size = \"4KB\"\nkeep_oversize = \"1KB\"\n");
    let big = message("big", "x@nowhere.test", &"y".repeat(3 << 20));
    let out = run(dir.path(), &["ingest", "--json", "-"], &big);
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&line["outcome"], &line["reason"], &line["message_id"]),
        (
            &serde_json::json!("rejected"),
            &serde_json::json!("too_large"),
            &serde_json::json!("<big@customer.test>")
        )
    );
    // The log has its full size; the store holds the first kilobyte only.
    let sizes = stored_sizes(&dir.path().join("var/ticketgate.db")).await;
    assert_eq!(sizes, [(big.len() as i64, 1024)]);
}

#[test]
fn ingest_names_a_missing_path_and_still_takes_the_others() {
    let dir = workdir("");
    let good = dir.path().join("good.eml");
    std::fs::write(&good, message("good", "x@nowhere.test", "Hello.")).unwrap();
    let out = run(
        dir.path(),
        &["ingest", good.to_str().unwrap(), "/nonexistent/mail.eml"],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/mail.eml"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("good.eml\trejected"), "{stdout}");
}

#[test]
fn a_max_message_size_of_zero_is_refused_at_start() {
    let dir = workdir("[intake]\nmax_message_size = \"0\"\n");
    let out = run(dir.path(), &["migrate"], b"");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("intake.max_message_size"), "{stderr}");
}

fn maildir(app: &TestApp) -> Maildir {
    let md = Maildir::new(app.dir.path().join("maildir"));
    md.ensure().unwrap();
    md
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

#[tokio::test]
async fn an_oversized_maildir_message_is_refused_without_being_read_whole() {
    let app = TestApp::with_settings(|s| {
        s.intake.max_message_size = Size(4096);
        s.intake.keep_oversize = Size(0);
    })
    .await;
    let md = maildir(&app);
    // 2 GB on paper, a few bytes on disk.
    let head = message("huge", "alice@customer.test", "Logs attached.");
    let path = md.root().join("new/1");
    let file = std::fs::File::create(&path).unwrap();
    (&file).write_all(&head).unwrap();
    file.set_len(2 << 30).unwrap();
    let after = message("after", "alice@customer.test", "Next.");
    std::fs::write(md.root().join("new/2"), &after).unwrap();
    let mut poller = MaildirPoller::new(
        app.app.ingestor.clone(),
        md.clone(),
        "inbox".into(),
        Duration::from_millis(1),
    );
    poller.poll_once(&CancellationToken::new()).await;
    let log = app.store().list_log(&LogFilter::default()).await.unwrap();
    let outcomes: Vec<_> = log
        .iter()
        .map(|r| (r.outcome.as_str(), r.reason.as_deref(), r.size))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("rejected", Some("too_large"), 2 << 30),
            ("ticket_created", None, after.len() as i64),
        ]
    );
    assert_eq!(names(&md.root().join("new")), Vec::<String>::new());
    let kept = app.store().blob(&log[0].raw_sha256).await.unwrap().unwrap();
    assert_eq!(kept.len(), head.len() - "Logs attached.\r\n".len());
}

#[tokio::test]
async fn a_maildir_message_that_keeps_failing_moves_aside_with_an_outcome_and_blocks_nothing() {
    let app = TestApp::new().await;
    // The store refuses this one message for as long as it is not a refusal.
    app.sqlite_execute(
        "CREATE TRIGGER poison BEFORE INSERT ON ingest_log
         WHEN NEW.message_id = '<poison@customer.test>' AND NEW.outcome <> 'rejected'
         BEGIN SELECT RAISE(ABORT, 'poisoned'); END",
        [],
    )
    .await;
    let md = maildir(&app);
    std::fs::write(
        md.root().join("new/1"),
        message("poison", "alice@customer.test", "Boom."),
    )
    .unwrap();
    std::fs::write(
        md.root().join("new/2"),
        message("fine", "alice@customer.test", "Printer 3 is offline."),
    )
    .unwrap();
    let mut poller = MaildirPoller::new(
        app.app.ingestor.clone(),
        md.clone(),
        "inbox".into(),
        Duration::from_millis(1),
    );
    let cancel = CancellationToken::new();
    poller.poll_once(&cancel).await;
    assert_eq!(names(&md.root().join("cur")), ["2:2,S"], "not held up");
    let started = Instant::now();
    while names(&md.root().join("failed")).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never set aside"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
        poller.poll_once(&cancel).await;
    }
    assert_eq!(names(&md.root().join("failed")), ["1"]);
    assert_eq!(names(&md.root().join("new")), Vec::<String>::new());
    let log = app.store().list_log(&LogFilter::default()).await.unwrap();
    let outcomes: Vec<_> = log
        .iter()
        .map(|r| {
            (
                r.message_id.as_deref().unwrap_or(""),
                r.outcome.as_str(),
                r.reason.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("<fine@customer.test>", "ticket_created", None),
            (
                "<poison@customer.test>",
                "rejected",
                Some("processing_failed")
            ),
        ]
    );
    assert_eq!(log[1].sender.as_deref(), Some("alice@customer.test"));
}

#[tokio::test]
async fn a_maildir_message_another_process_has_in_hand_is_left_to_it() {
    let app = TestApp::new().await;
    let md = maildir(&app);
    let path = md.root().join("new/1");
    std::fs::write(&path, message("held", "alice@customer.test", "Hello.")).unwrap();
    let mut poller = MaildirPoller::new(
        app.app.ingestor.clone(),
        md.clone(),
        "inbox".into(),
        Duration::from_millis(1),
    );
    let cancel = CancellationToken::new();
    let other = std::fs::File::open(&path).unwrap();
    other.try_lock().unwrap();
    poller.poll_once(&cancel).await;
    let log = app.store().list_log(&LogFilter::default()).await.unwrap();
    assert!(log.is_empty(), "{log:?}");
    assert_eq!(names(&md.root().join("new")), ["1"]);
    // The other process moved it and let go: nothing to record here either.
    std::fs::rename(&path, md.root().join("cur/1:2,S")).unwrap();
    drop(other);
    poller.poll_once(&cancel).await;
    assert!(
        app.store()
            .list_log(&LogFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    std::fs::write(
        md.root().join("new/2"),
        message("free", "alice@customer.test", "Hi."),
    )
    .unwrap();
    poller.poll_once(&cancel).await;
    let log = app.store().list_log(&LogFilter::default()).await.unwrap();
    assert_eq!(
        log.iter().map(|r| r.outcome.as_str()).collect::<Vec<_>>(),
        [Outcome::TicketCreated.as_str()]
    );
}
