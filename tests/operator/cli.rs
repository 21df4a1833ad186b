//! The binary as an operator and an MTA use it: exit codes, JSON lines, folders
//! and mbox files, and `serve` on the embedded default.

use crate::common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::fixtures;

const BIN: &str = env!("CARGO_BIN_EXE_ticketgate");

/// A working directory with a config like the shipped one, all state under it.
fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("config")).unwrap();
    std::fs::write(
        dir.path().join("config/ticketgate.toml"),
        "[support]\nname = \"Example Support\"\naddress = \"support@example.test\"\ndomain = \"example.test\"\n\
         notify = \"team@example.test\"\ntag = \"Support\"\nreply_secret = \"test-secret\"\n\
         [[mailbox]]\nname = \"inbox\"\nkind = \"maildir\"\npath = \"var/maildir\"\npoll_interval = \"100ms\"\n\
         [outbox]\npoll_interval = \"100ms\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[web]\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    dir
}

fn run(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    run_into(dir, args, stdin, Stdio::piped())
}

/// `run` with its stdout going to `stdout`.
fn run_into(dir: &Path, args: &[&str], stdin: Option<&[u8]>, stdout: Stdio) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args, None);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn seed(dir: &Path) {
    ok(
        dir,
        &["org", "add", "Customer Site A", "--domain", "customer.test"],
    );
    ok(
        dir,
        &[
            "user",
            "add",
            "--no-invite",
            "alice@customer.test",
            "--name",
            "Alice Anders",
            "--org",
            "Customer Site A",
        ],
    );
    ok(
        dir,
        &[
            "user",
            "add",
            "--no-invite",
            "bob@customer.test",
            "--name",
            "Bob Brown",
            "--org",
            "customer-site-a",
        ],
    );
    ok(
        dir,
        &[
            "user",
            "add",
            "--no-invite",
            "sam@example.test",
            "--name",
            "Sam Staff",
            "--role",
            "staff",
        ],
    );
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).unwrap()
}

fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
        .collect()
}

#[test]
fn stdin_delivery_prints_one_json_outcome() {
    let dir = workdir();
    seed(dir.path());
    let out = run(
        dir.path(),
        &["ingest", "--json", "-"],
        Some(&fixture("_base/01_alice_opens_ticket.eml")),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["outcome"], "ticket_created");
    assert_eq!(lines[0]["ticket"], 1);
    assert_eq!(lines[0]["message_id"], "<base-1@customer.test>");
    assert!(lines[0]["comment"].is_i64() && lines[0]["reason"].is_null());

    // Re-delivery by the MTA is recorded as a duplicate, not a second ticket.
    let again = run(
        dir.path(),
        &["ingest", "--json", "-"],
        Some(&fixture("_base/01_alice_opens_ticket.eml")),
    );
    assert_eq!(
        json_lines(&String::from_utf8(again.stdout).unwrap())[0]["outcome"],
        "duplicate"
    );
}

#[test]
fn stdin_delivery_exits_75_when_the_database_is_unavailable() {
    let dir = workdir();
    std::fs::write(dir.path().join("not-a-dir"), "x").unwrap();
    let out = Command::new(BIN)
        .args(["ingest", "-"])
        .current_dir(dir.path())
        .env("TICKETGATE__DATABASE__URL", "sqlite://not-a-dir/db.sqlite")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin
                .take()
                .unwrap()
                .write_all(&fixture("new_ticket_plain_text.eml"))?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(75),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("temporary failure"));
}

#[test]
fn folders_and_mbox_files_are_ingested_in_order_without_a_progress_bar_off_a_terminal() {
    let dir = workdir();
    seed(dir.path());
    // A Maildir whose file names order the thread: root first, then the reply.
    let md = dir.path().join("import");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(md.join(sub)).unwrap();
    }
    std::fs::write(
        md.join("cur/1700000001.M1.host:2,S"),
        fixture("_base/01_alice_opens_ticket.eml"),
    )
    .unwrap();
    std::fs::write(
        md.join("new/1700000002.M2.host"),
        fixture("reply_matched_by_references_only.eml"),
    )
    .unwrap();
    // An mbox with two messages, one body line needing mboxrd quoting.
    let mut mbox = Vec::new();
    for name in [
        "new_ticket_plain_text.eml",
        "unknown_sender_new_message.eml",
    ] {
        mbox.extend_from_slice(b"From someone@example.test Mon Nov 23 09:00:00 2026\n");
        mbox.extend_from_slice(&fixture(name));
        mbox.extend_from_slice(b"\n");
    }
    std::fs::write(dir.path().join("archive.mbox"), &mbox).unwrap();

    let out = run(
        dir.path(),
        &["ingest", "--json", "import", "archive.mbox"],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "no progress bar when stderr is not a terminal: {:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    let outcomes: Vec<(String, serde_json::Value)> =
        json_lines(&String::from_utf8(out.stdout).unwrap())
            .into_iter()
            .map(|l| {
                (
                    l["outcome"].as_str().unwrap().to_string(),
                    l["ticket"].clone(),
                )
            })
            .collect();
    assert_eq!(
        outcomes,
        [
            ("ticket_created".to_string(), serde_json::json!(1)),
            ("comment_added".to_string(), serde_json::json!(1)),
            ("ticket_created".to_string(), serde_json::json!(2)),
            ("rejected".to_string(), serde_json::Value::Null),
        ]
    );
    let listed = ok(dir.path(), &["messages", "list", "--outcome", "rejected"]);
    assert!(
        listed.contains("unknown_sender") && listed.contains("stranger@unknown.test"),
        "{listed}"
    );
}

#[test]
fn no_notify_imports_history_without_queueing_mail() {
    let dir = workdir();
    seed(dir.path());
    ok(
        dir.path(),
        &[
            "ingest",
            "--no-notify",
            fixtures()
                .join("_base/01_alice_opens_ticket.eml")
                .to_str()
                .unwrap(),
        ],
    );
    let outbox: Vec<serde_json::Value> =
        serde_json::from_str(&ok(dir.path(), &["outbox", "list", "--json"])).unwrap();
    assert!(outbox.is_empty(), "{outbox:?}");
    let tickets: Vec<serde_json::Value> =
        serde_json::from_str(&ok(dir.path(), &["ticket", "list", "--json"])).unwrap();
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0]["requester"], "alice@customer.test");
    assert_eq!(tickets[0]["org"], "customer-site-a");
    assert_eq!(tickets[0]["status"], "new");
}

#[test]
fn ticket_show_json_has_the_documented_fields() {
    let dir = workdir();
    seed(dir.path());
    ok(
        dir.path(),
        &[
            "ingest",
            fixtures()
                .join("_base/01_alice_opens_ticket.eml")
                .to_str()
                .unwrap(),
        ],
    );
    let t: serde_json::Value =
        serde_json::from_str(&ok(dir.path(), &["ticket", "show", "1", "--json"])).unwrap();
    for field in [
        "id",
        "subject",
        "status",
        "status_label",
        "priority",
        "requester",
        "org",
        "orgs",
        "release",
        "followers",
        "comments",
        "events",
        "created_at",
        "updated_at",
    ] {
        assert!(t.get(field).is_some(), "missing {field}: {t}");
    }
    assert_eq!(t["status_label"], "New");
    // No release recorded yet: shown as null, not left out.
    assert_eq!(t["release"], serde_json::Value::Null);
    assert_eq!(
        t["followers"],
        serde_json::json!([{"email": "alice@customer.test", "source": "creator"}, {"email": "bob@customer.test", "source": "cc"}])
    );
    let c = &t["comments"][0];
    for field in [
        "id",
        "author",
        "body",
        "signature",
        "internal",
        "source",
        "message_id",
        "created_at",
        "attachments",
    ] {
        assert!(c.get(field).is_some(), "comment missing {field}: {c}");
    }
    assert_eq!(c["source"], "email");
    assert_eq!(t["events"][0]["kind"], "ticket_created");
}

fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_takes_mail_from_the_maildir_and_writes_notifications_then_stops_on_sigterm() {
    let dir = workdir();
    seed(dir.path());
    let mut child = Command::new(BIN)
        .arg("serve")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let new = dir.path().join("var/maildir/new");
    wait_for("the Maildir to be created", Duration::from_secs(20), || {
        new.is_dir()
    });
    std::fs::write(
        dir.path().join("var/maildir/tmp/1700000001.M1.host"),
        fixture("_base/01_alice_opens_ticket.eml"),
    )
    .unwrap();
    std::fs::rename(
        dir.path().join("var/maildir/tmp/1700000001.M1.host"),
        new.join("1700000001.M1.host"),
    )
    .unwrap();

    let seen = dir.path().join("var/maildir/cur/1700000001.M1.host:2,S");
    wait_for(
        "the message to move to cur/ with the S flag",
        Duration::from_secs(20),
        || seen.exists(),
    );
    let outbox = dir.path().join("var/outbox");
    wait_for("two notification files", Duration::from_secs(20), || {
        std::fs::read_dir(&outbox)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                    .count()
                    == 2
            })
            .unwrap_or(false)
    });
    let mut files: Vec<_> = std::fs::read_dir(&outbox)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let raws: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let raw = raws
        .iter()
        .find(|r| String::from_utf8_lossy(r).contains("To: \"Alice Anders\" <alice@customer.test>"))
        .expect("an acknowledgement to Alice");
    let ack = mail_parser::MessageParser::default()
        .parse(raw)
        .expect("the notification parses");
    let header = |name: &str| {
        ack.header_raw(name)
            .map(str::trim)
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(
        ack.to().and_then(|a| a.first()).and_then(|a| a.address()),
        Some("alice@customer.test")
    );
    assert_eq!(
        ack.subject(),
        Some("[Support #1] Login page returns 500 after upgrade")
    );
    assert_eq!(header("In-Reply-To"), "<base-1@customer.test>");
    assert_eq!(header("Auto-Submitted"), "auto-generated");
    assert_eq!(
        ack.reply_to()
            .and_then(|a| a.first())
            .and_then(|a| a.address()),
        Some("support+1.1.rjiluu6zaglnhpwe@example.test")
    );
    let text = ack.body_text(0).expect("a text part");
    assert!(text.starts_with("--- Reply above this line ---"), "{text}");
    let html = ack.body_html(0).expect("an HTML part");
    assert!(html.contains("--- Reply above this line ---"), "{html}");

    // std cannot send SIGTERM; kill(1) can.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let start = Instant::now();
    let code = loop {
        if let Some(code) = child.try_wait().unwrap() {
            break code;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "serve did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(code.success(), "serve exited with {code:?}");
}

#[test]
fn adding_a_user_queues_their_invitation() {
    let dir = workdir();
    ok(dir.path(), &["org", "add", "Customer Site A"]);
    ok(
        dir.path(),
        &[
            "user",
            "add",
            "nina@customer.test",
            "--name",
            "Nina",
            "--org",
            "customer-site-a",
            "--locale",
            "ja",
        ],
    );
    let outbox: Vec<serde_json::Value> =
        serde_json::from_str(&ok(dir.path(), &["outbox", "list", "--json"])).unwrap();
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    assert_eq!(outbox[0]["template"], "invite");
    assert_eq!(outbox[0]["to"], "nina@customer.test");
    ok(dir.path(), &["outbox", "flush"]);
    let raw = std::fs::read(dir.path().join("var/outbox/00000001.eml")).unwrap();
    let invite = mail_parser::MessageParser::default().parse(&raw).unwrap();
    // The Japanese subject template, decoded from RFC 2047.
    assert!(
        invite.subject().unwrap().contains("Example Support"),
        "{:?}",
        invite.subject()
    );
    assert!(
        invite
            .body_text(0)
            .unwrap()
            .contains("support@example.test")
    );
}

#[test]
fn rules_check_lists_the_rules_and_points_at_errors_by_line() {
    let dir = workdir();
    let good = run(dir.path(), &["rules", "check"], None);
    assert!(good.status.success());
    let listing = String::from_utf8(good.stdout).unwrap();
    assert!(
        listing.contains("acknowledge new tickets") && listing.contains("reopen a closed ticket"),
        "{listing}"
    );

    std::fs::write(
        dir.path().join("config/rules.toml"),
        "# comment\n[[rule]]\nname = \"broken\"\non = \"comment_added\"\nwhen = { body_regex = \"(\" }\nthen = { stop = true }\n",
    )
    .unwrap();
    let bad = run(dir.path(), &["rules", "check"], None);
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8(bad.stderr).unwrap();
    assert!(
        err.contains("config/rules.toml:3") && err.contains("body_regex"),
        "{err}"
    );

    // A template name with a typo: found by the check, and `serve` and
    // `ingest` refuse to start rather than fail when the rule first fires.
    std::fs::write(
        dir.path().join("config/rules.toml"),
        "[[rule]]\nname = \"answer upgrades\"\non = \"ticket_created\"\nthen = { reply_template = \"enviroment_upgrade\" }\n",
    )
    .unwrap();
    for args in [&["rules", "check"][..], &["ingest", "/dev/null"][..]] {
        let bad = run(dir.path(), args, None);
        assert!(!bad.status.success(), "{args:?}");
        let err = String::from_utf8(bad.stderr).unwrap();
        assert!(
            err.contains("answer upgrades") && err.contains("enviroment_upgrade.txt"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn api_tokens_are_shown_once_listed_without_the_secret_and_revoked() {
    let dir = workdir();
    seed(dir.path()); // sam@example.test is staff
    let created: serde_json::Value = serde_json::from_str(&ok(
        dir.path(),
        &["token", "create", "--user", "sam@example.test", "--json"],
    ))
    .unwrap();
    let token = created["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("tg_") && token.len() == 67, "{token}");
    let id = created["id"].as_i64().unwrap();
    let plain = ok(
        dir.path(),
        &["token", "create", "--user", "sam@example.test"],
    );
    assert_eq!(plain.lines().count(), 1);
    assert!(plain.trim().starts_with("tg_") && plain.trim() != token);

    let customer = run(
        dir.path(),
        &["token", "create", "--user", "alice@customer.test"],
        None,
    );
    assert!(!customer.status.success());
    assert!(String::from_utf8_lossy(&customer.stderr).contains("not staff"));

    let listed = ok(dir.path(), &["token", "list", "--json"]);
    assert!(
        !listed.contains(&token),
        "the secret is never stored or shown again"
    );
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(listed[0]["user"], "sam@example.test");

    ok(dir.path(), &["token", "revoke", &id.to_string()]);
    assert!(
        !run(dir.path(), &["token", "revoke", &id.to_string()], None)
            .status
            .success()
    );
    let listed: serde_json::Value =
        serde_json::from_str(&ok(dir.path(), &["token", "list", "--json"])).unwrap();
    assert!(listed[0]["revoked_at"].is_string());
    assert!(listed[1]["revoked_at"].is_null());
}

/// Every command path under `cmd`, e.g. `["user", "edit"]`, depth first.
fn command_paths(cmd: &clap::Command, prefix: &[String], out: &mut Vec<Vec<String>>) {
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let mut path = prefix.to_vec();
        path.push(sub.get_name().to_string());
        out.push(path.clone());
        command_paths(sub, &path, out);
    }
}

fn all_command_paths() -> Vec<Vec<String>> {
    use clap::CommandFactory;
    let mut paths = vec![vec![]];
    command_paths(&ticketgate::cli::Cli::command(), &[], &mut paths);
    paths
}

#[test]
fn every_command_and_flag_says_what_it_is_for() {
    use clap::CommandFactory;
    let mut root = ticketgate::cli::Cli::command();
    root.build();
    let mut missing = Vec::new();
    for path in all_command_paths() {
        let mut cmd = &root;
        for name in &path {
            cmd = cmd.find_subcommand(name).unwrap();
        }
        let shown = format!("ticketgate {}", path.join(" "));
        if cmd.get_about().is_none() {
            missing.push(format!("{shown}: no description"));
        }
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if id != "help" && id != "version" && arg.get_help().is_none() {
                missing.push(format!("{shown}: {id} has no description"));
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

/// `--help` of every command against `tests/snapshots/help/<command>.txt`;
/// `BLESS=1` rewrites them (review the diff: it is the CLI's documentation).
#[test]
fn help_output_matches_the_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let snapshots = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/help");
    let bless = std::env::var_os("BLESS").is_some();
    if bless {
        std::fs::create_dir_all(&snapshots).unwrap();
    }
    let mut failures = Vec::new();
    for path in all_command_paths() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let out = Command::new(BIN)
            .args(&args)
            .current_dir(dir.path())
            .env_remove("TICKETGATE_CONFIG")
            .env_remove("TICKETGATE_LOG_FORMAT")
            .env("COLUMNS", "100")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        let help = String::from_utf8(out.stdout).unwrap();
        let name = if path.is_empty() {
            "ticketgate".to_string()
        } else {
            path.join("-")
        };
        let file = snapshots.join(format!("{name}.txt"));
        if bless {
            std::fs::write(&file, &help).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&file).unwrap_or_default();
        if help != expected {
            let actual = file.with_extension("actual.txt");
            std::fs::write(&actual, &help).unwrap();
            failures.push(format!(
                "{} differs; the output is in {} (BLESS=1 to accept)",
                file.display(),
                actual.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn adding_a_registered_address_again_says_so_and_exits_1() {
    let dir = workdir();
    seed(dir.path());
    let again = run(
        dir.path(),
        &[
            "user",
            "add",
            "--no-invite",
            "Alice@customer.test",
            "--name",
            "Alice again",
        ],
        None,
    );
    assert_eq!(again.status.code(), Some(1));
    let err = String::from_utf8(again.stderr).unwrap();
    assert_eq!(
        err.trim(),
        "ticketgate: alice@customer.test is already registered"
    );
}

#[test]
fn lists_for_people_have_column_headers() {
    let dir = workdir();
    seed(dir.path());
    ok(
        dir.path(),
        &[
            "ingest",
            fixtures()
                .join("_base/01_alice_opens_ticket.eml")
                .to_str()
                .unwrap(),
        ],
    );
    let first_line = |args: &[&str]| ok(dir.path(), args).lines().next().unwrap().to_string();
    let words = |line: String| {
        line.split_whitespace()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        words(first_line(&["ticket", "list"])),
        [
            "TICKET",
            "STATUS",
            "PRIORITY",
            "OWNER",
            "REQUESTER",
            "ORG",
            "UPDATED",
            "SUBJECT"
        ]
    );
    assert_eq!(
        words(first_line(&["user", "list"])),
        ["ID", "EMAIL", "ROLE", "ORG", "LOCALE", "NAME"]
    );
    assert_eq!(
        words(first_line(&["org", "list"])),
        ["SLUG", "NAME", "DOMAINS", "LEADS"]
    );
    assert_eq!(
        words(first_line(&["outbox", "list"])),
        ["ID", "STATUS", "ATTEMPTS", "TEMPLATE", "TO", "SUBJECT"]
    );
    assert_eq!(
        words(first_line(&["messages", "list"])),
        [
            "ID", "RECEIVED", "OUTCOME", "REASON", "TICKET", "FROM", "SUBJECT"
        ]
    );
    // Columns line up under their headers.
    let tickets = ok(dir.path(), &["ticket", "list"]);
    let lines: Vec<&str> = tickets.lines().collect();
    assert_eq!(lines.len(), 2, "{tickets}");
    assert_eq!(
        lines[1].find("alice@customer.test"),
        lines[0].find("REQUESTER")
    );
    assert!(
        lines[1].starts_with("#1 ") && lines[1].ends_with("Login page returns 500 after upgrade")
    );
    assert_eq!(ok(dir.path(), &["token", "list"]).trim(), "(no tokens)");
}

#[test]
fn status_and_outcome_flags_list_their_values_and_take_labels() {
    let dir = workdir();
    let bad = run(dir.path(), &["ticket", "list", "--status", "pending"], None);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8(bad.stderr).unwrap();
    assert!(
        err.contains("[possible values: new, in_progress, blocked, closed, escalated]"),
        "{err}"
    );
    // The label people see is accepted too.
    ok(dir.path(), &["migrate"]);
    ok(dir.path(), &["ticket", "list", "--status", "In Progress"]);
    let bad = run(dir.path(), &["messages", "list", "--outcome", "spam"], None);
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("quarantined"),
        "{bad:?}"
    );
}

#[test]
fn ticket_show_prints_the_history_in_words() {
    let dir = workdir();
    seed(dir.path());
    ok(
        dir.path(),
        &[
            "ingest",
            fixtures()
                .join("_base/01_alice_opens_ticket.eml")
                .to_str()
                .unwrap(),
        ],
    );
    ok(
        dir.path(),
        &[
            "ingest",
            fixtures()
                .join("reply_matched_by_references_only.eml")
                .to_str()
                .unwrap(),
        ],
    );
    let shown = ok(dir.path(), &["ticket", "show", "1"]);
    let history = shown
        .split_once("\n--- history\n")
        .map(|(_, h)| h)
        .unwrap_or_else(|| panic!("no history in {shown}"));
    let events: Vec<&str> = history.lines().collect();
    assert!(
        events[0].ends_with(
            "alice@customer.test  opened the ticket: Login page returns 500 after upgrade"
        ),
        "{history}"
    );
    assert_eq!(events.len(), 2, "{history}");
    assert!(
        events[1].ends_with("bob@customer.test  added comment 2"),
        "{history}"
    );
}

#[test]
fn rules_check_prints_rules_as_they_are_written() {
    let dir = workdir();
    let listing = ok(dir.path(), &["rules", "check"]);
    assert!(
        listing.contains(
            " 1. acknowledge new tickets\n    on   ticket_created\n    then reply_template = \"ack\"\n"
        ),
        "{listing}"
    );
    assert!(
        listing.contains("    when author_role = \"customer\", status = [\"closed\"]\n    then set_status = \"new\"\n"),
        "{listing}"
    );
    assert!(
        !listing.contains("ReplyTemplate") && !listing.contains("TicketCreated"),
        "no Rust debug output: {listing}"
    );
}

#[test]
fn logs_are_plain_off_a_terminal_and_json_on_request() {
    let dir = workdir();
    seed(dir.path());
    let eml = fixtures().join("_base/01_alice_opens_ticket.eml");
    let ingest = |format: Option<&str>| {
        let mut cmd = Command::new(BIN);
        if let Some(f) = format {
            cmd.args(["--log-format", f]);
        }
        let out = cmd
            .args(["ingest", "--no-notify", eml.to_str().unwrap()])
            .current_dir(dir.path())
            .env("RUST_LOG", "info")
            .env_remove("NO_COLOR")
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stderr).unwrap()
    };
    let text = ingest(None);
    assert!(text.contains("INFO") && text.contains("ingested"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "no colour codes in a pipe: {text:?}"
    );
    let json = ingest(Some("json"));
    let line: serde_json::Value = serde_json::from_str(json.lines().next().unwrap())
        .unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["message"], "ingested");
    assert_eq!(line["outcome"], "duplicate");
}

#[test]
fn operators_edit_users_and_remove_delivery_leads() {
    let dir = workdir();
    seed(dir.path());
    ok(dir.path(), &["org", "add", "Other Corp"]);
    ok(
        dir.path(),
        &["org", "lead", "add", "customer-site-a", "sam@example.test"],
    );
    // A lead stays staff until the lead is removed.
    let demote = run(
        dir.path(),
        &["user", "edit", "sam@example.test", "--role", "customer"],
        None,
    );
    assert_eq!(demote.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&demote.stderr).contains("delivery lead of customer-site-a"));
    assert_eq!(
        ok(
            dir.path(),
            &[
                "org",
                "lead",
                "remove",
                "Customer Site A",
                "sam@example.test"
            ]
        )
        .trim(),
        "sam@example.test is no longer a delivery lead of Customer Site A"
    );
    let orgs: serde_json::Value =
        serde_json::from_str(&ok(dir.path(), &["org", "list", "--json"])).unwrap();
    assert_eq!(orgs[0]["slug"], "customer-site-a");
    assert_eq!(orgs[0]["leads"], serde_json::json!([]));
    let again = run(
        dir.path(),
        &[
            "org",
            "lead",
            "remove",
            "customer-site-a",
            "sam@example.test",
        ],
        None,
    );
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("is not a delivery lead"));

    ok(
        dir.path(),
        &[
            "user",
            "edit",
            "alice@customer.test",
            "--name",
            "Alice Ando",
            "--locale",
            "ja",
            "--org",
            "other-corp",
        ],
    );
    ok(
        dir.path(),
        &["user", "edit", "bob@customer.test", "--no-org"],
    );
    // Some active staff member always remains.
    let last = run(
        dir.path(),
        &["user", "edit", "sam@example.test", "--role", "customer"],
        None,
    );
    assert_eq!(last.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&last.stderr).contains("last active staff member"));
    ok(
        dir.path(),
        &[
            "user",
            "add",
            "erin@example.test",
            "--name",
            "Erin Staff",
            "--role",
            "staff",
            "--no-invite",
        ],
    );
    ok(
        dir.path(),
        &["user", "edit", "sam@example.test", "--role", "customer"],
    );
    let off = ok(
        dir.path(),
        &["user", "edit", "bob@customer.test", "--deactivate"],
    );
    assert!(off.contains("deactivated"), "{off}");
    let users: serde_json::Value =
        serde_json::from_str(&ok(dir.path(), &["user", "list", "--json"])).unwrap();
    let find = |email: &str| {
        users
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["email"] == email)
            .unwrap()
            .clone()
    };
    let alice = find("alice@customer.test");
    assert_eq!(
        (
            &alice["name"],
            &alice["locale"],
            &alice["org"],
            &alice["role"]
        ),
        (
            &serde_json::json!("Alice Ando"),
            &serde_json::json!("ja"),
            &serde_json::json!("other-corp"),
            &serde_json::json!("customer")
        )
    );
    assert!(find("bob@customer.test")["org"].is_null());
    assert_eq!(find("bob@customer.test")["active"], false);
    assert_eq!(find("alice@customer.test")["active"], true);
    assert_eq!(find("sam@example.test")["role"], "customer");
    assert_eq!(find("sam@example.test")["name"], "Sam Staff");

    let nobody = run(
        dir.path(),
        &["user", "edit", "nobody@customer.test", "--name", "X"],
        None,
    );
    assert_eq!(nobody.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&nobody.stderr).contains("no registered user nobody@customer.test")
    );
}

/// README "Trying it": the Maildir's tmp/ is there to copy into once any
/// command has run, before `serve` ever has.
#[test]
fn the_configured_maildir_exists_after_the_first_command() {
    let dir = workdir();
    ok(dir.path(), &["org", "add", "Customer Site A"]);
    for sub in ["tmp", "new", "cur"] {
        assert!(
            dir.path().join("var/maildir").join(sub).is_dir(),
            "var/maildir/{sub} missing"
        );
    }
}

#[test]
fn a_maildir_without_cur_is_ingested_from_new_and_an_empty_one_is_named() {
    let dir = workdir();
    seed(dir.path());
    let md = dir.path().join("drop");
    std::fs::create_dir_all(md.join("new")).unwrap();
    std::fs::write(
        md.join("new/1700000001.M1.host"),
        fixture("_base/01_alice_opens_ticket.eml"),
    )
    .unwrap();
    let out = run(dir.path(), &["ingest", "--json", "drop"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(lines.len(), 1, "the message in new/ is taken");
    assert_eq!(lines[0]["outcome"], "ticket_created");

    std::fs::create_dir_all(dir.path().join("empty/new")).unwrap();
    let out = run(dir.path(), &["ingest", "empty"], None);
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err.trim(),
        "empty: no messages to ingest (a Maildir with nothing in new/ or cur/)"
    );
}

/// A portal port that cannot be bound fails `serve` at start,
/// naming it, as the admin port does.
#[test]
fn serve_fails_at_start_when_the_portal_port_is_taken() {
    let dir = workdir();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(BIN)
        .arg("serve")
        .current_dir(dir.path())
        .env("TICKETGATE__WEB__LISTEN", &addr)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("portal") && err.contains(&addr), "{err}");
}

/// `user link` prints a working one-time sign-in link and emails nothing.
#[test]
fn user_link_prints_a_sign_in_link() {
    let dir = workdir();
    seed(dir.path());
    let before = ok(dir.path(), &["outbox", "list"]);
    let out = run(dir.path(), &["user", "link", "alice@customer.test"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let link = String::from_utf8(out.stdout).unwrap();
    assert!(
        link.trim().starts_with("http://127.0.0.1:8080/login/tg_")
            && link.trim().len() == "http://127.0.0.1:8080/login/".len() + 67,
        "{link}"
    );
    assert_eq!(
        ok(dir.path(), &["outbox", "list"]),
        before,
        "nothing is emailed"
    );
    let unknown = run(dir.path(), &["user", "link", "nobody@example.test"], None);
    assert!(!unknown.status.success());
}

/// Runs `args` with a stdout whose reader has already gone, as in
/// `ticketgate … | head` after `head` has what it wants.
fn run_into_closed_pipe(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    run_into(dir, args, stdin, writer.into())
}

#[test]
fn a_reader_that_stops_early_ends_a_command_quietly() {
    let dir = workdir();
    seed(dir.path());
    let first = fixtures().join("_base/01_alice_opens_ticket.eml");
    ok(dir.path(), &["ingest", first.to_str().unwrap()]);
    let commands: &[&[&str]] = &[
        &["ticket", "show", "1"],
        &["ticket", "show", "1", "--json"],
        &["ticket", "list"],
        &["rules", "check"],
        &["org", "list"],
        &["user", "link", "alice@customer.test"],
        &["extract-reply", first.to_str().unwrap()],
    ];
    for args in commands {
        let out = run_into_closed_pipe(dir.path(), args, None);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.is_empty(),
            "{args:?}: {:?} {stderr}",
            out.status
        );
    }
    // An MTA that closes our stdout still gets 0, and the message is kept.
    let reply = fixture("reply_matched_by_references_only.eml");
    let out = run_into_closed_pipe(dir.path(), &["ingest", "-"], Some(&reply));
    assert!(
        out.status.success(),
        "{:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = ok(dir.path(), &["ticket", "show", "1"]);
    assert!(shown.contains("added comment 2"), "{shown}");
}

#[test]
fn a_mistyped_database_path_is_named_and_nothing_is_created_by_commands_that_read() {
    let dir = workdir();
    let config = dir.path().join("config/ticketgate.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("[database]\nurl = \"sqlite://var/typo/ticketgate.db\"\n");
    std::fs::write(&config, text).unwrap();
    for args in [
        &["ticket", "list"][..],
        &["ticket", "show", "1"],
        &["messages", "list"],
        &["outbox", "list"],
        &["user", "list"],
        &["org", "list"],
        &["token", "list"],
    ] {
        let out = run(dir.path(), args, None);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{args:?} succeeded on a missing database"
        );
        assert!(
            stderr.contains("var/typo/ticketgate.db"),
            "{args:?} does not name the path: {stderr}"
        );
        assert!(
            !dir.path().join("var/typo").exists(),
            "{args:?} created the database's folder"
        );
        assert!(
            !dir.path().join("var/maildir").exists(),
            "{args:?} created the Maildir"
        );
    }
    // A command that writes makes it, and says so.
    let out = run(dir.path(), &["org", "add", "Customer Site A"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("var/typo/ticketgate.db").is_file());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("creating a new database"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = ok(dir.path(), &["org", "list"]);
    assert!(listed.contains("customer-site-a"), "{listed}");
}

/// `check` with `extra` appended to the shipped-like config of `workdir`.
fn check_with(dir: &Path, extra: &str) -> (bool, String) {
    let config = dir.join("config/ticketgate.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(extra);
    std::fs::write(&config, text).unwrap();
    let out = run(dir, &["check"], None);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(1),
        "check exited {:?}: {stdout}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), stdout)
}

#[test]
fn check_passes_on_the_shipped_default_and_creates_nothing() {
    let dir = workdir();
    let (ok, out) = check_with(dir.path(), "");
    assert!(ok, "{out}");
    for what in ["database", "mailbox inbox", "outbox", "templates", "rules"] {
        assert!(
            out.contains(&format!("  {what}: ")),
            "no {what} line:\n{out}"
        );
    }
    assert!(!out.contains("FAIL"), "{out}");
    assert!(!dir.path().join("var").exists(), "check created var/");
    // Once the database exists, it is read, not noted.
    ok_quiet(dir.path(), &["migrate"]);
    let (ok, out) = check_with(dir.path(), "");
    assert!(
        ok && out.contains("ok    database: reachable, schema up to date"),
        "{out}"
    );
}

fn ok_quiet(dir: &Path, args: &[&str]) {
    let out = run(dir, args, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_names_a_template_that_does_not_parse_and_a_rule_naming_a_missing_one() {
    let dir = workdir();
    std::fs::create_dir_all(dir.path().join("templates/ja")).unwrap();
    std::fs::write(
        dir.path().join("templates/ja/comment_added.txt"),
        "{{ marker }}\n{% if ticket %}unclosed\n",
    )
    .unwrap();
    let (ok, out) = check_with(dir.path(), "");
    assert!(!ok, "{out}");
    assert!(
        out.contains("FAIL  templates: ") && out.contains("ja/comment_added.txt"),
        "{out}"
    );
    assert!(out.contains("fix: "), "{out}");

    let dir = workdir();
    std::fs::write(
        dir.path().join("config/rules.toml"),
        "[[rule]]\nname = \"answer\"\non = \"ticket_created\"\nthen = { reply_template = \"enviroment_upgrade\" }\n",
    )
    .unwrap();
    let (ok, out) = check_with(dir.path(), "[rules]\nfile = \"config/rules.toml\"\n");
    assert!(!ok, "{out}");
    assert!(
        out.contains("FAIL  rules: ") && out.contains("enviroment_upgrade"),
        "{out}"
    );
    assert!(out.contains("ok    templates"), "{out}");
}

#[test]
fn check_fails_on_an_unreachable_relay_and_passes_on_the_real_one() {
    let stack = common::mailstack::mailstack();
    // A port nobody listens on: bound, then released.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = workdir();
    let (ok, out) = check_with(
        dir.path(),
        &format!(
            "[smtp]\nkind = \"smtp\"\nhost = \"127.0.0.1\"\nport = {closed}\ntls = \"none\"\n"
        ),
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("FAIL  smtp: 127.0.0.1:{closed}")),
        "{out}"
    );
    assert!(out.contains("fix: check [smtp] host"), "{out}");

    let dir = workdir();
    let (ok, out) = check_with(
        dir.path(),
        &format!(
            "[smtp]\nkind = \"smtp\"\nhost = \"{}\"\nport = {}\ntls = \"none\"\n",
            stack.host, stack.smtp_port
        ),
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("ok    smtp: ") && out.contains("answered EHLO"),
        "{out}"
    );
}

#[test]
fn check_tells_a_wrong_imap_password_from_a_missing_folder() {
    let stack = common::mailstack::mailstack();
    let inbox = format!("check-{}@example.test", common::mailstack::unique());
    stack.add_users(&[&inbox]);
    let mailbox = |password: &str, folder: &str| {
        format!(
            "[[mailbox]]\nname = \"support\"\nkind = \"imap\"\nhost = \"{}\"\nport = {}\ntls = \"tls\"\n\
             ca_file = \"{}\"\nusername = \"{inbox}\"\npassword = \"{password}\"\nfolder = \"{folder}\"\n",
            stack.host, stack.imaps_port, stack.ca
        )
    };
    let dir = workdir();
    let (ok, out) = check_with(dir.path(), &mailbox("not-the-password", "INBOX"));
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!(
            "FAIL  mailbox support: login refused for {inbox}: [AUTHENTICATIONFAILED]"
        )),
        "{out}"
    );
    assert!(
        out.contains("fix: check `username` and `password`"),
        "{out}"
    );

    let dir = workdir();
    let (ok, out) = check_with(dir.path(), &mailbox(&stack.password, "Nowhere"));
    assert!(!ok, "{out}");
    assert!(out.contains("\"Nowhere\" does not exist"), "{out}");

    let dir = workdir();
    let (ok, out) = check_with(dir.path(), &mailbox(&stack.password, "INBOX"));
    assert!(ok, "{out}");
    // A new mailbox has no Processed or Rejected folder yet: serve makes them.
    assert!(
        out.contains("note  mailbox support: logged in")
            && out.contains("will create Processed and Rejected"),
        "{out}"
    );
}

fn cur_count(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("var/maildir/cur"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn a_backup_taken_while_serve_ingests_restores_every_ticket_of_its_moment() {
    const MESSAGES: usize = 1000;
    let dir = workdir();
    seed(dir.path());
    let base = String::from_utf8(fixture("_base/01_alice_opens_ticket.eml")).unwrap();
    for i in 0..MESSAGES {
        let name = format!("17000{i:05}.M{i}.host");
        let mail = base
            .replace(
                "<base-1@customer.test>",
                &format!("<backup-{i}@customer.test>"),
            )
            .replace(
                "Subject: Login page",
                &format!("Subject: Case {i}: login page"),
            );
        std::fs::write(dir.path().join("var/maildir/tmp").join(&name), mail).unwrap();
        std::fs::rename(
            dir.path().join("var/maildir/tmp").join(&name),
            dir.path().join("var/maildir/new").join(&name),
        )
        .unwrap();
    }
    let mut serve = Command::new(BIN)
        .arg("serve")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("ingest to be under way", Duration::from_secs(60), || {
        cur_count(dir.path()) >= 50
    });
    let backup = dir.path().join("backup.db");
    let out = ok(dir.path(), &["backup", backup.to_str().unwrap()]);
    assert!(out.contains("backed up into"), "{out}");
    let taken_at = cur_count(dir.path());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&backup).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "a backup holds everyone's mail");
    // A second backup never overwrites the first.
    let again = run(dir.path(), &["backup", backup.to_str().unwrap()], None);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("backup.db"));
    wait_for(
        "every message to be taken",
        Duration::from_secs(300),
        || cur_count(dir.path()) == MESSAGES,
    );
    serve.kill().unwrap();
    serve.wait().unwrap();

    // Restore: the backup file becomes the database of a fresh install.
    let restored = workdir();
    std::fs::create_dir_all(restored.path().join("var")).unwrap();
    std::fs::copy(&backup, restored.path().join("var/ticketgate.db")).unwrap();
    let tickets: Vec<serde_json::Value> =
        serde_json::from_str(&ok(restored.path(), &["ticket", "list", "--json"])).unwrap();
    let log: Vec<serde_json::Value> =
        serde_json::from_str(&ok(restored.path(), &["messages", "list", "--json"])).unwrap();
    let mut created: Vec<i64> = log
        .iter()
        .filter(|r| r["outcome"] == "ticket_created")
        .map(|r| r["ticket"].as_i64().unwrap())
        .collect();
    created.sort();
    let ids: Vec<i64> = tickets.iter().map(|t| t["id"].as_i64().unwrap()).collect();
    assert_eq!(
        created, ids,
        "the log and the tickets of the backup disagree"
    );
    assert_eq!(
        log.len(),
        ids.len(),
        "every delivery of the backup opened a ticket"
    );
    assert!(
        ids.len() >= 50 && ids.len() < MESSAGES,
        "the backup holds {} tickets: not taken mid-ingest ({taken_at} taken when it ended)",
        ids.len()
    );
    let users = ok(restored.path(), &["user", "list"]);
    assert!(users.contains("alice@customer.test"), "{users}");
    // The original went on to take everything.
    let all: Vec<serde_json::Value> =
        serde_json::from_str(&ok(dir.path(), &["ticket", "list", "--json"])).unwrap();
    assert_eq!(all.len(), MESSAGES);
}

/// `Type=notify`: systemd hears READY=1 once serve listens, STOPPING=1 at SIGTERM.
#[test]
fn serve_tells_systemd_when_it_is_ready_and_when_it_stops() {
    let dir = workdir();
    let socket_path = dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let child = Command::new(BIN)
        .arg("serve")
        .current_dir(dir.path())
        .env("NOTIFY_SOCKET", &socket_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 64];
    let n = socket.recv(&mut buf).expect("READY=1 within 30 s");
    assert_eq!(&buf[..n], b"READY=1");
    // Ready means listening: the Maildir poller and the portal are up.
    assert!(dir.path().join("var/maildir/new").is_dir());
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let n = socket.recv(&mut buf).expect("STOPPING=1 after SIGTERM");
    assert_eq!(&buf[..n], b"STOPPING=1");
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An operator's typo or a pasted address is held to the rule mail is: no
/// invisible character makes a second account that reads as someone else's.
#[test]
fn an_operator_cannot_register_an_address_with_an_invisible_character() {
    let dir = workdir();
    seed(dir.path());
    for address in ["alice\u{200b}@customer.test", "ali\u{0301}ce@customer.test"] {
        let out = run(
            dir.path(),
            &[
                "user",
                "add",
                address,
                "--name",
                "Alice Anders",
                "--no-invite",
            ],
            None,
        );
        assert!(!out.status.success(), "{address:?} was registered");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("invisible character"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A name loses its invisible and bidi characters, as names from mail do.
    ok(
        dir.path(),
        &[
            "user",
            "add",
            "eve@customer.test",
            "--name",
            "Eve\u{202e} Evans\u{200b}",
            "--no-invite",
        ],
    );
    let users = ok(dir.path(), &["user", "list", "--json"]);
    assert!(users.contains("\"Eve Evans\""), "{users}");
}

#[test]
fn messages_discard_keeps_a_quarantined_message_but_ends_its_wait() {
    let dir = workdir();
    seed(dir.path());
    let opened = run(
        dir.path(),
        &["ingest", "--json", "--no-notify", "-"],
        Some(&fixture("_base/01_alice_opens_ticket.eml")),
    );
    assert!(opened.status.success());
    let stranger = b"From: someone@nowhere.test\r\nTo: support@example.test\r\nSubject: Re: Login page\r\n\
        In-Reply-To: <base-1@customer.test>\r\nMessage-ID: <cli-discard@nowhere.test>\r\n\r\nMe too.\r\n";
    let held = run(
        dir.path(),
        &["ingest", "--json", "--no-notify", "-"],
        Some(stranger),
    );
    assert_eq!(
        json_lines(&String::from_utf8(held.stdout).unwrap())[0]["outcome"],
        "quarantined"
    );
    let listed: serde_json::Value = serde_json::from_str(&ok(
        dir.path(),
        &["messages", "list", "--outcome", "quarantined", "--json"],
    ))
    .unwrap();
    let id = listed[0]["id"].as_i64().unwrap();
    assert!(listed[0]["discarded_at"].is_null());

    let said = ok(dir.path(), &["messages", "discard", &id.to_string()]);
    assert_eq!(
        said.trim(),
        format!("message {id} discarded (kept in the log)")
    );
    let listed: serde_json::Value = serde_json::from_str(&ok(
        dir.path(),
        &["messages", "list", "--outcome", "quarantined", "--json"],
    ))
    .unwrap();
    assert!(listed[0]["discarded_at"].is_string(), "{listed}");
    for again in [vec!["messages", "discard"], vec!["messages", "replay"]] {
        let mut args = again.clone();
        let id = id.to_string();
        args.push(&id);
        let out = run(dir.path(), &args, None);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("discarded"), "{args:?}: {err}");
    }
}

/// Every stored value of the SQLite database at `db` (`common::every_sqlite_value`).
fn every_stored_value(db: &Path) -> Vec<(String, Vec<u8>)> {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap();
    common::every_sqlite_value(&c).unwrap()
}

/// A word only Alice wrote, in the erasure test.
const HER_WORD: &str = "zanzibarquux";

#[test]
fn a_person_is_exported_then_erased_and_nothing_of_them_is_left_but_the_ticket() {
    let dir = workdir();
    seed(dir.path());
    let hers = b"From: Alice Anders <alice@customer.test>\r\nTo: support@example.test\r\n\
        Subject: Printer trouble\r\nMessage-ID: <first@customer.test>\r\nMIME-Version: 1.0\r\n\
        Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n\
        The zanzibarquux printer smokes since Monday morning.\r\n\r\nAlice\r\n--b\r\n\
        Content-Type: text/plain; name=smoke.log\r\nContent-Disposition: attachment; filename=smoke.log\r\n\r\n\
        zanzibarquux error 42\r\n--b--\r\n";
    let bobs = b"From: Bob Brown <bob@customer.test>\r\nTo: support@example.test\r\n\
        Subject: Re: [Support #1] Printer trouble\r\nMessage-ID: <second@customer.test>\r\n\
        In-Reply-To: <first@customer.test>\r\n\r\nSame here (bobword).\r\n\r\n\
        On Mon, Alice Anders <alice@customer.test> wrote:\r\n\
        > The zanzibarquux printer smokes since Monday morning.\r\n";
    for mail in [&hers[..], &bobs[..]] {
        let out = run(dir.path(), &["ingest", "--json", "-"], Some(mail));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let export: serde_json::Value = serde_json::from_str(&ok(
        dir.path(),
        &["person", "export", "alice@customer.test"],
    ))
    .unwrap();
    assert_eq!(export["user"]["name"], "Alice Anders");
    assert_eq!(export["tickets"][0]["relations"][0], "requester");
    assert_eq!(export["comments"].as_array().unwrap().len(), 1);
    assert_eq!(
        export["comments"][0]["attachments"][0]["filename"],
        "smoke.log"
    );
    assert!(
        export["raw_messages"][0]["text"]
            .as_str()
            .unwrap()
            .contains("zanzibarquux printer")
    );
    assert!(
        !export.to_string().contains("bobword"),
        "Bob's words are not hers"
    );

    let zip_path = dir.path().join("alice.zip");
    ok(
        dir.path(),
        &[
            "person",
            "export",
            "alice@customer.test",
            "--out",
            zip_path.to_str().unwrap(),
        ],
    );
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&zip_path).unwrap()).unwrap();
    let mut names: Vec<String> = zip.file_names().map(|n| n.unwrap().into_owned()).collect();
    names.sort();
    assert_eq!(names.len(), 3, "{names:?}");
    assert_eq!(names[0], "data.json");
    assert!(
        names[1].starts_with("files/") && names[1].ends_with("-smoke.log"),
        "{names:?}"
    );
    assert!(
        names[2].starts_with("messages/") && names[2].ends_with(".eml"),
        "{names:?}"
    );
    let mut eml = String::new();
    std::io::Read::read_to_string(&mut zip.by_name(&names[2]).unwrap(), &mut eml).unwrap();
    assert!(eml.contains("Message-ID: <first@customer.test>"));
    let again = run(
        dir.path(),
        &[
            "person",
            "export",
            "alice@customer.test",
            "--out",
            zip_path.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        !again.status.success(),
        "an existing file is never overwritten"
    );

    let db = dir.path().join("var/ticketgate.db");
    let before = every_stored_value(&db);
    let rehearsal = ok(
        dir.path(),
        &["person", "erase", "alice@customer.test", "--dry-run"],
    );
    assert!(
        rehearsal.starts_with("would erase alice@customer.test: 1 comments redacted"),
        "{rehearsal}"
    );
    assert_eq!(every_stored_value(&db), before, "a dry run changes nothing");

    let erased = ok(dir.path(), &["person", "erase", "alice@customer.test"]);
    assert!(
        erased.starts_with("erased alice@customer.test (now Former customer "),
        "{erased}"
    );
    let after = every_stored_value(&db);
    for needle in ["alice@customer.test", "Alice Anders", "zanzibarquux"] {
        assert!(
            !common::stored_where(&before, needle).is_empty(),
            "the store held {needle}"
        );
        assert_eq!(
            common::stored_where(&after, needle),
            Vec::<String>::new(),
            "{needle} is left"
        );
    }
    // Nor in the file's bytes: free pages are zeroed, and the write-ahead
    // log, which held the pages as they were, was emptied.
    let mut bytes = std::fs::read(&db).unwrap();
    if let Ok(wal) = std::fs::read(db.with_extension("db-wal")) {
        bytes.extend(wal);
    }
    assert!(
        !bytes
            .windows(HER_WORD.len())
            .any(|w| w == HER_WORD.as_bytes()),
        "her words are still in the database file"
    );
    let gone = run(
        dir.path(),
        &["person", "export", "alice@customer.test"],
        None,
    );
    assert_eq!(gone.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&gone.stderr)
            .contains("no person with the address alice@customer.test")
    );

    // The ticket and Bob's words stay; the history says what happened.
    let ticket: serde_json::Value =
        serde_json::from_str(&ok(dir.path(), &["ticket", "show", "1", "--json"])).unwrap();
    assert_eq!(ticket["status"], "new");
    assert_eq!(ticket["comments"][0]["redacted"], true);
    assert_eq!(ticket["comments"][0]["body"], "");
    assert!(ticket["requester"].as_str().unwrap().starts_with("erased-"));
    assert!(
        ticket["comments"][1]["body"]
            .as_str()
            .unwrap()
            .contains("bobword")
    );
    assert!(ticket["comments"][1].get("redacted").is_none());
    let shown = ok(dir.path(), &["ticket", "show", "1"]);
    assert!(
        shown.contains("erased the personal data of erased-"),
        "{shown}"
    );
    let messages = ok(dir.path(), &["messages", "list", "--json"]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&messages)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn retention_run_removes_nothing_when_it_is_off_and_counts_are_listed() {
    let dir = workdir();
    seed(dir.path());
    let out = run(
        dir.path(),
        &["ingest", "--json", "-"],
        Some(&fixture("new_ticket_plain_text.eml")),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        ok(dir.path(), &["retention", "run"]),
        "removed 0 raw messages and 0 closed tickets\n"
    );
    assert_eq!(
        ok(dir.path(), &["retention", "counts", "--json"]).trim(),
        "[]"
    );
    let replay = ok(dir.path(), &["messages", "list", "--json"]);
    assert!(
        replay.contains("\"outcome\": \"ticket_created\""),
        "{replay}"
    );
}

#[test]
fn serve_applies_retention_once_for_the_day_logs_it_and_keeps_the_comments() {
    let dir = workdir();
    seed(dir.path());
    let config = dir.path().join("config/ticketgate.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("[retention]\nraw_messages = \"1s\"\n");
    std::fs::write(&config, text).unwrap();
    let out = run(
        dir.path(),
        &["ingest", "--json", "-"],
        Some(&fixture("new_ticket_plain_text.eml")),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Older than the one second it may be kept.
    std::thread::sleep(Duration::from_millis(1100));

    let log = dir.path().join("serve.log");
    let mut child = Command::new(BIN)
        .arg("serve")
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let line = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .find(|l| l.contains("retention: removed what is past its age"))
            .map(str::to_string)
    };
    wait_for("the retention log line", Duration::from_secs(20), || {
        line().is_some()
    });
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    let line = line().unwrap();
    assert!(
        line.contains("raw_messages=1") && line.contains("closed_tickets=0"),
        "{line}"
    );

    let db = rusqlite::Connection::open(dir.path().join("var/ticketgate.db")).unwrap();
    let (removed, blob): (Option<String>, i64) = db
        .query_row(
            "SELECT raw_removed_at, (SELECT size FROM blobs WHERE sha256 = raw_sha256) FROM ingest_log",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(removed.is_some());
    assert_eq!(blob, 0, "the log row names the empty blob");
    let runs: Vec<(String, i64)> = db
        .prepare("SELECT day, raw_messages FROM retention_runs")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(runs.len(), 1, "one run claimed for the day: {runs:?}");
    assert_eq!(runs[0].1, 1);
    // What the ticket shows stays.
    let ticket: serde_json::Value =
        serde_json::from_str(&ok(dir.path(), &["ticket", "show", "1", "--json"])).unwrap();
    assert!(!ticket["comments"][0]["body"].as_str().unwrap().is_empty());
}

/// `serve` takes a Maildir in batches, one transaction each: killed with
/// SIGKILL mid-way and started again, every message is recorded exactly
/// once (a message committed but not yet moved to `cur/` comes back as a
/// `duplicate`) and none is left in `new/`.
#[test]
fn a_maildir_drained_in_batches_records_each_message_once_across_a_sigkill() {
    const MESSAGES: usize = 1000;
    let dir = workdir();
    seed(dir.path());
    let maildir = dir.path().join("var/maildir");
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    for i in 0..MESSAGES {
        let name = format!("17000{i:05}.M{i}.host");
        let tmp = maildir.join("tmp").join(&name);
        std::fs::write(
            &tmp,
            format!(
                "From: Alice Anders <alice@customer.test>\r\nTo: support@example.test\r\n\
                 Subject: Batch {i}\r\nMessage-ID: <batch-{i}@customer.test>\r\n\r\nMessage {i}.\r\n"
            ),
        )
        .unwrap();
        std::fs::rename(&tmp, maildir.join("new").join(&name)).unwrap();
    }
    let serve = || {
        Command::new(BIN)
            .arg("serve")
            .current_dir(dir.path())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut first = serve();
    wait_for("a fifth in cur/", Duration::from_secs(120), || {
        cur_count(dir.path()) >= MESSAGES / 5
    });
    first.kill().unwrap();
    first.wait().unwrap();
    let moved_before = cur_count(dir.path());

    let mut second = serve();
    wait_for("new/ to empty", Duration::from_secs(300), || {
        std::fs::read_dir(maildir.join("new")).unwrap().count() == 0
    });
    Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status()
        .unwrap();
    assert!(second.wait().unwrap().success());
    assert_eq!(cur_count(dir.path()), MESSAGES);

    let rows: Vec<serde_json::Value> = serde_json::from_str(&ok(
        dir.path(),
        &["messages", "list", "--limit", "100000", "--json"],
    ))
    .unwrap();
    let mut created: Vec<&str> = rows
        .iter()
        .filter(|r| r["outcome"] == "ticket_created")
        .map(|r| r["message_id"].as_str().unwrap())
        .collect();
    created.sort_unstable();
    created.dedup();
    assert_eq!(created.len(), MESSAGES, "each message opened one ticket");
    let others: Vec<&serde_json::Value> = rows
        .iter()
        .filter(|r| r["outcome"] != "ticket_created" && r["outcome"] != "duplicate")
        .collect();
    assert!(others.is_empty(), "{others:?}");
    let tickets: Vec<serde_json::Value> = serde_json::from_str(&ok(
        dir.path(),
        &["ticket", "list", "--limit", "100000", "--json"],
    ))
    .unwrap();
    assert_eq!(tickets.len(), MESSAGES, "killed after {moved_before} moved");
}
