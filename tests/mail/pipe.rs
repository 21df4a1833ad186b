//! The MTA pipe: Postfix hands each message to `ticketgate ingest -`; exit 75
//! (EX_TEMPFAIL) makes Postfix keep the message and retry.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::mailstack::{mailstack, unique};

const BIN: &str = env!("CARGO_BIN_EXE_ticketgate");

fn run(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn outcomes(dir: &Path) -> Vec<serde_json::Value> {
    serde_json::from_str(&run(dir, &["messages", "list", "--json"])).unwrap()
}

/// The lines of the stack's `postfix.log` for the pipe's deliveries of the
/// message `message_id` (found by the queue id its cleanup line names).
fn pipe_deliveries(stack_dir: &Path, message_id: &str) -> Vec<String> {
    let log = std::fs::read_to_string(stack_dir.join("postfix.log")).unwrap_or_default();
    let queue_id = log.lines().find_map(|l| {
        let (head, _) = l.split_once(&format!(": message-id={message_id}"))?;
        Some(head.rsplit(' ').next()?.to_string())
    });
    let Some(queue_id) = queue_id else {
        return Vec::new();
    };
    log.lines()
        .filter(|l| l.contains(&format!(" {queue_id}: ")) && l.contains("relay=ticketgate"))
        .map(str::to_string)
        .collect()
}

/// Points the stack's pipe at `ticketgate ingest -` with `config`.
fn set_pipe_target(stack_dir: &Path, workdir: &Path, config: &Path) {
    let target = stack_dir.join("pipe-target");
    let tmp = stack_dir.join("pipe-target.tmp");
    std::fs::write(
        &tmp,
        format!(
            "#!/bin/sh\ncd '{}' && exec '{BIN}' --config '{}' ingest -\n",
            workdir.display(),
            config.display()
        ),
    )
    .unwrap();
    Command::new("chmod").arg("755").arg(&tmp).status().unwrap();
    std::fs::rename(&tmp, target).unwrap();
}

#[tokio::test]
async fn postfix_pipes_mail_into_ingest_and_retries_after_a_temporary_failure() {
    let stack = mailstack();
    let stack_dir = std::path::PathBuf::from(
        std::env::var("TICKETGATE_MAILSTACK_DIR")
            .unwrap_or_else(|_| "/var/tmp/ticketgate-mailstack".into()),
    );
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    std::fs::create_dir_all(work.join("config")).unwrap();
    let good = work.join("config/ticketgate.toml");
    std::fs::write(&good, "[support]\naddress = \"support@example.test\"\ndomain = \"example.test\"\nreply_secret = \"k\"\n").unwrap();
    // A database URL whose folder cannot exist: every delivery fails temporarily.
    let broken = work.join("config/broken.toml");
    std::fs::write(&broken, "[database]\nurl = \"sqlite:///dev/null/ticketgate.db\"\n[support]\naddress = \"support@example.test\"\ndomain = \"example.test\"\nreply_secret = \"k\"\n").unwrap();
    run(
        work,
        &["org", "add", "Customer Site A", "--domain", "customer.test"],
    );
    // pipe(8) runs as the mail user, who must be able to write the database (and its WAL).
    let chown = Command::new("chown")
        .args(["-R", "tgvmail:tgvmail"])
        .arg(work)
        .status()
        .unwrap();
    assert!(chown.success());
    Command::new("chmod")
        .args(["755"])
        .arg(work)
        .status()
        .unwrap();

    // 1. Straight through: SMTP acceptance to committed ticket.
    set_pipe_target(&stack_dir, work, &good);
    let u = unique();
    let raw = format!(
        "From: alice@customer.test\r\nTo: support@pipe.example.test\r\nMessage-ID: <p1-{u}@customer.test>\r\nSubject: Piped\r\n\r\nHello.\r\n"
    );
    let sent = Instant::now();
    stack
        .send(
            "alice@customer.test",
            "support@pipe.example.test",
            raw.as_bytes(),
        )
        .await;
    while outcomes(work).is_empty() {
        assert!(
            sent.elapsed() < Duration::from_secs(20),
            "the piped message never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rows = outcomes(work);
    assert_eq!(rows[0]["outcome"], "ticket_created");
    assert_eq!(rows[0]["origin"], "stdin");

    // 2. The gateway cannot record it (exit 75): Postfix keeps it and delivers it
    //    when retried, exactly once.
    set_pipe_target(&stack_dir, work, &broken);
    let raw = format!(
        "From: bob@customer.test\r\nTo: support@pipe.example.test\r\nMessage-ID: <p2-{u}@customer.test>\r\nSubject: Deferred\r\n\r\nLater.\r\n"
    );
    stack
        .send(
            "bob@customer.test",
            "support@pipe.example.test",
            raw.as_bytes(),
        )
        .await;
    // Postfix logging the deferral means the pipe has run and exited 75.
    let p2 = format!("<p2-{u}@customer.test>");
    common::wait_until(
        "Postfix deferred the message on exit 75",
        Duration::from_secs(20),
        || async {
            pipe_deliveries(&stack_dir, &p2)
                .iter()
                .any(|l| l.contains("status=deferred") && l.contains("temporary failure"))
        },
    )
    .await;
    assert_eq!(
        outcomes(work).len(),
        1,
        "not recorded while the database is unavailable"
    );
    set_pipe_target(&stack_dir, work, &good);
    let flush = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/mailstack.sh"))
        .arg("flush")
        .status()
        .unwrap();
    assert!(flush.success());
    // Once Postfix logs the retry as sent, the message has left its queue:
    // no further delivery of it can come.
    common::wait_until(
        "the deferred message was retried",
        Duration::from_secs(30),
        || async {
            pipe_deliveries(&stack_dir, &p2)
                .iter()
                .any(|l| l.contains("status=sent"))
        },
    )
    .await;
    assert_eq!(
        pipe_deliveries(&stack_dir, &p2)
            .iter()
            .filter(|l| l.contains("status=sent"))
            .count(),
        1,
        "Postfix piped it once after the retry"
    );
    let rows = outcomes(work);
    assert_eq!(
        rows.len(),
        2,
        "delivered exactly once after the retry: {rows:?}"
    );
    assert_eq!(rows[1]["message_id"], format!("<p2-{u}@customer.test>"));
    assert_eq!(rows[1]["outcome"], "ticket_created");
    // Leave no target behind: later mail to the pipe domain defers instead of failing.
    std::fs::remove_file(stack_dir.join("pipe-target")).unwrap();
}
