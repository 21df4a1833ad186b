//! Two `ticketgate serve` processes share one PostgreSQL database and one IMAP
//! mailbox; the one polling it is killed with SIGKILL midway and the other
//! finishes. Every message gets exactly one outcome, no ticket is created
//! twice, and every notification reaches its recipient's mailbox, counted by
//! Message-ID in the real Dovecot after the real Postfix delivered it.

use crate::common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use sqlx::PgPool;

use common::mailstack::{MailStack, mailstack, unique};
use common::pg::TestDb;

const BIN: &str = env!("CARGO_BIN_EXE_ticketgate");
/// New tickets, then as many replies to them.
const TICKETS: usize = 1000;
const MESSAGES: usize = 2 * TICKETS;
const SENDERS: usize = 20;
const LEASE: Duration = Duration::from_secs(3);

/// A `serve` process, killed when dropped, so a failing test leaves no poller behind.
struct Serve(Child);

impl Serve {
    fn id(&self) -> u32 {
        self.0.id()
    }

    /// SIGKILL: no chance to finish, release the lease or record sent mail.
    fn kill(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn_serve(dir: &Path, log: &str) -> Serve {
    let child = Command::new(BIN)
        .arg("serve")
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(log)).unwrap())
        .spawn()
        .unwrap();
    Serve(child)
}

fn message(from: &str, to: &str, id: &str, reply_to: Option<&str>, n: usize) -> Vec<u8> {
    let threading = reply_to
        .map(|parent| format!("In-Reply-To: <{parent}>\r\nReferences: <{parent}>\r\n"))
        .unwrap_or_default();
    let subject = if reply_to.is_some() {
        format!("Re: Printer {n}")
    } else {
        format!("Printer {n}")
    };
    format!(
        "From: {from}\r\nTo: {to}\r\nMessage-ID: <{id}>\r\n{threading}Subject: {subject}\r\n\
         Date: Fri, 27 Nov 2026 10:00:00 +0000\r\n\r\nMessage number {n}.\r\n"
    )
    .into_bytes()
}

/// The Message-IDs in `user`'s INBOX (headers only), with how often each occurs.
async fn message_ids(stack: &MailStack, user: &str) -> HashMap<String, usize> {
    let mut session = stack.login(user).await;
    let mut counts = HashMap::new();
    if session.select("INBOX").await.is_ok() {
        let fetches: Vec<_> = session
            .fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            .await
            .expect("fetch")
            .try_collect()
            .await
            .unwrap_or_default();
        for f in &fetches {
            let header = String::from_utf8_lossy(f.header().or(f.body()).unwrap_or_default());
            let id = header
                .split_once(':')
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_default();
            *counts.entry(id).or_insert(0) += 1;
        }
    }
    session.logout().await.ok();
    counts
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_share_a_mailbox_and_a_killed_one_loses_nothing_and_sends_nothing_twice() {
    let stack = mailstack();
    let u = unique();
    let inbox = format!("shared-{u}@example.test");
    let team = format!("team-{u}@example.test");
    let senders: Vec<String> = (0..SENDERS)
        .map(|j| format!("s{j}-{u}@customer.test"))
        .collect();
    let mut users: Vec<&str> = vec![&inbox, &team];
    users.extend(senders.iter().map(String::as_str));
    stack.add_users(&users);

    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("config")).unwrap();
    std::fs::write(
        dir.path().join("config/ticketgate.toml"),
        format!(
            "[database]\nurl = \"{url}\"\n\
             [support]\naddress = \"support@example.test\"\ndomain = \"example.test\"\nnotify = \"{team}\"\n\
             reply_secret = \"shared-secret\"\n\
             [intake]\nauto_reply_window = \"0s\"\nauto_reply_limit = \"1000/1h\"\n\
             [smtp]\nkind = \"smtp\"\nhost = \"{host}\"\nport = {smtp}\ntls = \"none\"\n\
             [outbox]\npoll_interval = \"200ms\"\nlease = \"20s\"\n\
             [admin]\nlisten = \"127.0.0.1:0\"\n[web]\nlisten = \"127.0.0.1:0\"\n\
             [[mailbox]]\nname = \"shared\"\nkind = \"imap\"\nhost = \"{host}\"\nport = {imap}\ntls = \"none\"\n\
             username = \"{inbox}\"\npassword = \"{password}\"\npoll_interval = \"200ms\"\nlease = \"{lease}s\"\n",
            url = db.url,
            host = stack.host,
            smtp = stack.smtp_port,
            imap = stack.imap_port,
            password = stack.password,
            lease = LEASE.as_secs(),
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
    let pool = PgPool::connect(&db.url).await.unwrap();

    let started = Instant::now();
    let mut a = spawn_serve(dir.path(), "a.log");
    let mut b = spawn_serve(dir.path(), "b.log");

    // Originals first, then a reply to each, through Postfix over one connection per task.
    let sender = {
        let stack = stack.clone();
        let (inbox, senders, u) = (inbox.clone(), senders.clone(), u.clone());
        tokio::spawn(async move {
            use lettre::AsyncTransport;
            let transport =
                lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous(
                    stack.host.as_str(),
                )
                .port(stack.smtp_port)
                .build();
            for n in 0..MESSAGES {
                let from = &senders[n % SENDERS];
                let id = format!("m{n}-{u}@customer.test");
                let parent = (n >= TICKETS).then(|| format!("m{}-{u}@customer.test", n - TICKETS));
                let raw = message(from, &inbox, &id, parent.as_deref(), n % TICKETS);
                let envelope = lettre::address::Envelope::new(
                    Some(from.parse().unwrap()),
                    vec![inbox.parse().unwrap()],
                )
                .unwrap();
                transport
                    .send_raw(&envelope, &raw)
                    .await
                    .expect("Postfix accepts the message");
            }
        })
    };

    // Midway, kill whichever instance polls the mailbox.
    let deadline = Duration::from_secs(150);
    loop {
        let done = count(&pool, "SELECT count(*) FROM ingest_log").await;
        if done >= (MESSAGES as i64) * 2 / 5 {
            break;
        }
        assert!(started.elapsed() < deadline, "only {done} messages taken");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (holder, _): (String, time::OffsetDateTime) =
        sqlx::query_as("SELECT holder, expires_at FROM mailbox_leases")
            .fetch_one(&pool)
            .await
            .expect("the mailbox is leased");
    let pid: u32 = holder.split('/').nth(1).unwrap().parse().unwrap();
    let (victim, survivor, survivor_log) = if pid == a.id() {
        (&mut a, b.id(), "b.log")
    } else {
        assert_eq!(pid, b.id(), "the holder is one of ours");
        (&mut b, a.id(), "a.log")
    };
    victim.kill();
    let killed_at = Instant::now();
    // Rows claimed but not recorded when the kill came: the only ones that may
    // legitimately reach a mailbox twice (sent, then the process died before
    // marking them sent; docs/contract.md, "Guarantees").
    let in_flight: Vec<String> =
        sqlx::query_scalar("SELECT message_id FROM outbox WHERE status = 'sending'")
            .fetch_all(&pool)
            .await
            .unwrap();

    // The survivor takes the mailbox over within the lease plus one renewal period.
    loop {
        let holder: Option<String> = sqlx::query_scalar("SELECT holder FROM mailbox_leases")
            .fetch_optional(&pool)
            .await
            .unwrap();
        if holder.is_some_and(|h| h.split('/').nth(1) == Some(&survivor.to_string())) {
            break;
        }
        assert!(
            killed_at.elapsed() < LEASE + LEASE / 3 + Duration::from_secs(2),
            "no takeover after {:?}",
            killed_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let takeover = killed_at.elapsed();
    sender.await.unwrap();

    // Wait for the survivor to take and announce everything.
    let expected_notifications = (MESSAGES + TICKETS) as i64;
    loop {
        let taken = count(
            &pool,
            "SELECT count(*) FROM ingest_log WHERE outcome <> 'duplicate'",
        )
        .await;
        let sent = count(&pool, "SELECT count(*) FROM outbox WHERE status = 'sent'").await;
        if taken == MESSAGES as i64
            && sent == expected_notifications
            && stack.inbox(&inbox).await.is_empty()
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(170),
            "after {:?}: {taken} of {MESSAGES} taken, {sent} of {expected_notifications} sent \
             (logs in {})",
            started.elapsed(),
            dir.path().display()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let survivor_child = if survivor == a.id() { &mut a } else { &mut b };
    survivor_child.kill();

    // Exactly one outcome per message; re-deliveries only as `duplicate`.
    let outcomes: Vec<(String, i64)> = sqlx::query_as(
        "SELECT outcome, count(*) FROM ingest_log GROUP BY outcome ORDER BY outcome",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let by: HashMap<_, _> = outcomes.iter().cloned().collect();
    assert_eq!(
        by.get("ticket_created"),
        Some(&(TICKETS as i64)),
        "{outcomes:?}"
    );
    assert_eq!(
        by.get("comment_added"),
        Some(&(TICKETS as i64)),
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|(o, _)| o != "duplicate")
            .map(|(_, n)| n)
            .sum::<i64>(),
        MESSAGES as i64,
        "{outcomes:?}"
    );
    let keys = count(
        &pool,
        "SELECT count(DISTINCT dedup_key) FROM ingest_log WHERE outcome <> 'duplicate'",
    )
    .await;
    assert_eq!(keys, MESSAGES as i64);
    // No ticket twice: one per original, each with its own root message.
    assert_eq!(
        count(&pool, "SELECT count(*) FROM tickets").await,
        TICKETS as i64
    );
    assert_eq!(
        count(&pool, "SELECT count(DISTINCT root_message_id) FROM tickets").await,
        TICKETS as i64
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM comments").await,
        MESSAGES as i64,
        "each ticket's first message and its reply"
    );
    assert!(stack.inbox(&inbox).await.is_empty(), "INBOX empty");
    assert_eq!(
        stack.folder(&inbox, "Processed").await.len(),
        MESSAGES,
        "each message moved once"
    );

    // Every notification reached its recipient; none twice, except possibly a
    // row that was in flight in the killed process.
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT to_addr, message_id, template FROM outbox ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(rows.len() as i64, expected_notifications);
    assert_eq!(
        rows.iter().filter(|(_, _, t)| t == "ack").count(),
        TICKETS,
        "one acknowledgement per new ticket"
    );
    let mut wanted: HashMap<&str, Vec<&str>> = HashMap::new();
    for (to, id, _) in &rows {
        wanted.entry(to.as_str()).or_default().push(id.as_str());
    }
    let mut twice = Vec::new();
    let mailbox_deadline = Instant::now() + Duration::from_secs(20);
    for (to, ids) in &wanted {
        // Postfix may still be delivering the last few.
        let seen = loop {
            let seen = message_ids(stack, to).await;
            if ids.iter().all(|id| seen.contains_key(*id)) || Instant::now() > mailbox_deadline {
                break seen;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        for id in ids {
            match seen.get(*id) {
                Some(1) => {}
                Some(n) => twice.push(format!("{id} x{n} to {to}")),
                None => panic!("{id} never reached {to}"),
            }
        }
        assert_eq!(
            seen.values().sum::<usize>(),
            ids.len()
                + twice
                    .iter()
                    .filter(|t| t.ends_with(&format!(" to {to}")))
                    .count(),
            "{to} got mail that is not in the outbox"
        );
    }
    let unexplained: Vec<_> = twice
        .iter()
        .filter(|t| !in_flight.iter().any(|id| t.starts_with(&format!("{id} "))))
        .collect();
    assert!(
        unexplained.is_empty(),
        "sent twice without a crash in flight: {unexplained:?}"
    );
    eprintln!(
        "{MESSAGES} messages, {} notifications in {:?}; takeover after {takeover:?}; \
         {} rows in flight at the kill, {} delivered twice; survivor log {}",
        rows.len(),
        started.elapsed(),
        in_flight.len(),
        twice.len(),
        dir.path().join(survivor_log).display()
    );
}
