//! No input makes ingest panic or vanish: random and mutated messages go
//! through parse → classify → thread → extract (pure) and through the whole
//! ingest into SQLite, and each one ends with exactly one recorded outcome.
//! A full disk under the database is the store's fault, not the message's.

use crate::common;

use std::collections::HashMap;

use common::{TestApp, fixtures};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use ticketgate::domain::classify::{OwnIdentity, classify};
use ticketgate::domain::ids::EmailAddress;
use ticketgate::domain::mail::InboundMail;
use ticketgate::domain::reply;
use ticketgate::domain::threading::{self, ThreadFacts};
use ticketgate::store::LogFilter;

fn corpus() -> Vec<Vec<u8>> {
    let mut paths: Vec<_> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}

/// Edits that break messages the way transports and bad clients do.
fn mutate(base: &[u8], edits: &[(u8, u32, u8, usize)]) -> Vec<u8> {
    let mut out = base.to_vec();
    for &(op, at, byte, len) in edits {
        let pos = if out.is_empty() {
            0
        } else {
            at as usize % (out.len() + 1)
        };
        match op % 8 {
            0 if pos < out.len() => out[pos] = byte,
            1 => out
                .splice(pos..pos, std::iter::repeat_n(byte, len))
                .for_each(drop),
            2 => {
                let end = (pos + len).min(out.len());
                out.drain(pos..end);
            }
            3 => out.truncate(pos),
            4 => {
                let end = (pos + len).min(out.len());
                let copy = out[pos..end].to_vec();
                out.splice(pos..pos, copy).for_each(drop);
            }
            5 => out.splice(pos..pos, [b'\0', b'\r', b'\n']).for_each(drop),
            6 => out
                .splice(
                    pos..pos,
                    b"\n--boundary\nContent-Type: multipart/mixed; boundary=\"x\"\n\n"
                        .iter()
                        .copied(),
                )
                .for_each(drop),
            _ => out
                .splice(
                    pos..pos,
                    b"=?utf-8?B?8J+YgA?= =?iso-2022-jp?B?GyRC?=".iter().copied(),
                )
                .for_each(drop),
        }
    }
    out
}

/// (corpus index, edits, random bytes, use the random bytes instead).
type Case = (usize, Vec<(u8, u32, u8, usize)>, Vec<u8>, bool);

fn message_strategy(corpus_len: usize) -> impl Strategy<Value = Case> {
    (
        0..corpus_len,
        prop::collection::vec((any::<u8>(), any::<u32>(), any::<u8>(), 0usize..512), 0..10),
        prop::collection::vec(any::<u8>(), 0..2048),
        any::<bool>(),
    )
}

#[test]
fn the_pure_pipeline_never_panics_on_random_or_mutated_mail() {
    let corpus = corpus();
    let own = OwnIdentity {
        addresses: vec![EmailAddress::parse("support@example.test").unwrap()],
        domain: "example.test".into(),
    };
    let support = EmailAddress::parse("support@example.test").unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 3000,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(
            &message_strategy(corpus.len()),
            |(index, edits, random, use_random)| {
                let raw = if use_random {
                    random
                } else {
                    mutate(&corpus[index], &edits)
                };
                if let Ok(mail) = InboundMail::parse(&raw) {
                    let _ = classify(&mail, &own);
                    let facts = ThreadFacts {
                        known: HashMap::new(),
                        token: threading::find_token(&mail, &support, b"k"),
                        tagged: threading::subject_tag(&mail.subject, "Support"),
                    };
                    let decision = threading::resolve(&mail, &facts);
                    prop_assert!(!decision.reason.describe().is_empty());
                    let extracted = reply::extract_text(&mail.text);
                    let comment = extracted.comment_text(&mail.text);
                    prop_assert!(!comment.contains('\0'));
                    prop_assert!(
                        comment.trim().is_empty() == mail.text.trim().is_empty()
                            || !comment.trim().is_empty()
                    );
                    let _ = threading::ticket_subject(&mail.subject, "Support");
                }
                let _ = InboundMail::parse_headers(&raw);
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn every_mangled_delivery_gets_exactly_one_recorded_outcome() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let app = rt.block_on(TestApp::new());
    let corpus = corpus();
    let mut runner = TestRunner::new(Config {
        cases: 300,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(
            &message_strategy(corpus.len()),
            |(index, edits, random, use_random)| {
                let raw = if use_random {
                    random
                } else {
                    mutate(&corpus[index], &edits)
                };
                let (report, logged) = rt.block_on(async {
                    let before = app
                        .store()
                        .list_log(&LogFilter::default())
                        .await
                        .unwrap()
                        .len();
                    let report = app.deliver(&raw).await;
                    let after = app.store().list_log(&LogFilter::default()).await.unwrap();
                    (report, after.len() - before)
                });
                prop_assert_eq!(logged, 1, "one ingest-log row per delivery");
                if report.outcome.is_accepted() {
                    prop_assert!(report.ticket.is_some() && report.comment.is_some());
                }
                Ok(())
            },
        )
        .unwrap();
}

/// A small tmpfs mounted for a test, unmounted when dropped (also when the
/// test fails).
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    /// `None` when not root: mounting needs it.
    fn mount(size: &str) -> Option<Self> {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let root = status
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .is_some_and(|l| l.split_whitespace().nth(2) == Some("0"));
        if !root {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount -t tmpfs failed");
        Some(Self(dir))
    }

    fn path(&self) -> &std::path::Path {
        self.0.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: whatever still holds a file there lets go later.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.0.path())
            .status();
    }
}

/// Writes zeros to `path` until the file system says it is full.
fn fill(path: &std::path::Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 16 * 1024];
    loop {
        if let Err(e) = f.write_all(&chunk).and_then(|()| f.sync_all()) {
            assert_eq!(e.raw_os_error(), Some(28), "{e}");
            break;
        }
    }
    // The last, partial chunk as well: not a byte is left.
    let _ = f.write_all(&[0u8; 512]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_keeps_mail_in_new_and_says_so_until_there_is_space_again() {
    use common::http::send;
    use ticketgate::source::maildir::{Maildir, MaildirPoller};
    let Some(disk) = Tmpfs::mount("8m") else {
        eprintln!("skipped: mounting a small tmpfs for the database needs root (CI runs as root)");
        return;
    };
    let url = format!("sqlite://{}", disk.path().join("ticketgate.db").display());
    let t = TestApp::with_settings(move |s| s.database.url = url).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = ticketgate::api::ApiState::new(
        t.app.tickets().clone(),
        t.app.replay(),
        t.app.ingestor.metrics().clone(),
        Vec::new(),
    );
    let cancel = tokio_util::sync::CancellationToken::new();
    tokio::spawn(ticketgate::api::serve(listener, state, cancel.clone()));
    let _stop = cancel.clone().drop_guard();
    let readyz = || async move { send(addr, "GET", "/readyz", &[], None).await };
    let metrics = || async move { send(addr, "GET", "/metrics", &[], None).await.text() };
    assert_eq!(readyz().await.status, 200, "{}", readyz().await.text());

    // SQLite reuses the room its WAL already has, so the message is larger
    // than that: storing it needs space the disk no longer has.
    let filler = disk.path().join("filler");
    fill(&filler);

    let maildir = Maildir::new(t.dir.path().join("maildir"));
    maildir.ensure().unwrap();
    let mut raw = b"From: Alice Example <alice@customer.test>\r\nTo: support@example.test\r\nSubject: Printer on fire\r\nMessage-ID: <disk-full-1@customer.test>\r\n\r\n".to_vec();
    for n in 0..40_000 {
        raw.extend_from_slice(format!("Line {n:05} of the log the printer wrote.\r\n").as_bytes());
    }
    std::fs::write(maildir.root().join("tmp/1700000000.M1P1.host"), &raw).unwrap();
    let waiting = maildir.root().join("new/1700000000.M1P1.host");
    std::fs::rename(maildir.root().join("tmp/1700000000.M1P1.host"), &waiting).unwrap();

    let mut poller = MaildirPoller::new(
        t.app.ingestor.clone(),
        maildir.clone(),
        "inbox".into(),
        std::time::Duration::from_millis(10),
    );
    // More passes than a failing message gets before it is set aside.
    for _ in 0..8 {
        poller.poll_once(&cancel).await;
    }
    let listing = |sub: &str| -> Vec<String> {
        std::fs::read_dir(maildir.root().join(sub))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(
        waiting.exists(),
        "the message stays in new/; cur/ {:?}, failed/ {:?}, log {:?}",
        listing("cur"),
        listing("failed"),
        t.store().list_log(&LogFilter::default()).await.unwrap()
    );
    assert!(
        !maildir.root().join("failed").exists(),
        "nothing is moved to failed/"
    );
    let log = t.store().list_log(&LogFilter::default()).await.unwrap();
    assert!(log.is_empty(), "nothing is logged for it: {log:?}");
    let res = readyz().await;
    assert_eq!(res.status, 503, "{}", res.text());
    let failing = &res.json()["failing"];
    assert!(
        failing
            .as_array()
            .is_some_and(|f| f.contains(&serde_json::json!({"store": "disk_full"}))),
        "{}",
        res.text()
    );
    let text = metrics().await;
    assert!(
        text.contains(r#"ticketgate_store_state{state="disk_full"} 1"#),
        "{text}"
    );

    std::fs::remove_file(&filler).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while waiting.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the message is taken once there is space"
        );
        poller.poll_once(&cancel).await;
    }
    let log = t.store().list_log(&LogFilter::default()).await.unwrap();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(
        log[0].outcome,
        ticketgate::domain::outcome::Outcome::TicketCreated
    );
    assert_eq!(
        std::fs::read_dir(maildir.root().join("cur"))
            .unwrap()
            .count(),
        1
    );
    let res = readyz().await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert!(
        metrics()
            .await
            .contains(r#"ticketgate_store_state{state="ok"} 1"#)
    );
    drop(t);
}
