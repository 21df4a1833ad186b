//! Notifications through the real Postfix into the real Dovecot, read back over
//! IMAP as each recipient; and what every mail client must be able to decode.
//!
//! A test binary of its own: the outage test stops Postfix, and tests are
//! threads of one process, so any other module using the mail stack would
//! fail beside it. Here `POSTFIX` keeps the other tests out of the outage.

mod common;

use std::sync::LazyLock;
use std::time::Duration;

use common::TestApp;
use common::mailstack::{MailStack, mailstack, unique};
use mail_parser::{Message, MessageParser};
use ticketgate::config::{Size, SmtpKind, Span, TlsMode};
use ticketgate::domain::ids::EmailAddress;
use ticketgate::domain::outcome::Outcome;
use ticketgate::domain::ticket::Role;
use ticketgate::domain::token;
use ticketgate::store::{NewUser, OutboxStatus};
use tokio::sync::RwLock;

/// Tests share one Postfix; the outage test stops it, so it runs alone.
static POSTFIX: LazyLock<RwLock<()>> = LazyLock::new(|| RwLock::new(()));

const WAIT: Duration = Duration::from_secs(30);

async fn smtp_app(stack: &MailStack, notify: &str) -> TestApp {
    smtp_app_with(stack, notify, |_| {}).await
}

async fn smtp_app_with(
    stack: &MailStack,
    notify: &str,
    adjust: impl FnOnce(&mut ticketgate::config::Settings) + Send + 'static,
) -> TestApp {
    let (host, port, notify) = (stack.host.clone(), stack.smtp_port, notify.to_string());
    TestApp::with_settings(move |s| {
        s.smtp.kind = SmtpKind::Smtp;
        s.smtp.host = host;
        s.smtp.port = port;
        s.smtp.tls = TlsMode::None;
        s.support.notify = notify;
        s.outbox.backoff = Span(Duration::from_secs(1));
        s.outbox.poll_interval = Span(Duration::from_millis(200));
        adjust(s);
    })
    .await
}

async fn register(
    app: &TestApp,
    email: &str,
    name: &str,
    role: Role,
    org: Option<&str>,
    locale: &str,
) -> i64 {
    let org_id = match org {
        Some(o) => Some(
            app.store()
                .find_org(o)
                .await
                .unwrap()
                .expect("org exists")
                .id,
        ),
        None => None,
    };
    let user = NewUser {
        email: EmailAddress::parse(email).unwrap(),
        name: name.into(),
        role,
        org_id,
        locale: locale.into(),
    };
    app.store().add_user(&user).await.unwrap().id
}

fn parse(raw: &[u8]) -> Message<'_> {
    MessageParser::default()
        .parse(raw)
        .expect("notification parses")
}

fn header(m: &Message<'_>, name: &str) -> String {
    m.header_raw(name)
        .map(str::trim)
        .unwrap_or_default()
        .to_string()
}

fn first_address(a: Option<&mail_parser::Address<'_>>) -> String {
    a.and_then(|a| a.first())
        .and_then(|a| a.address())
        .unwrap_or_default()
        .to_lowercase()
}

async fn flush(app: &TestApp) -> ticketgate::outbox::FlushStats {
    app.app.outbox_worker().unwrap().flush().await.unwrap()
}

#[tokio::test]
async fn a_customer_is_acknowledged_in_their_inbox_with_every_documented_header() {
    let _shared = POSTFIX.read().await;
    let stack = mailstack();
    let u = unique();
    let (cust, team) = (
        format!("c-{u}@customer.test"),
        format!("team-{u}@example.test"),
    );
    stack.add_users(&[&cust, &team]);
    let app = smtp_app(stack, &team).await;
    let cust_id = register(
        &app,
        &cust,
        "Chris Customer",
        Role::Customer,
        Some("customer-site-a"),
        "en",
    )
    .await;

    let root = format!("<root-{u}@customer.test>");
    let raw = format!(
        "From: Chris Customer <{cust}>\nTo: support@example.test\nMessage-ID: {root}\nSubject: Printer on fire\n\nIt smokes.\n"
    );
    let report = app.deliver(raw.as_bytes()).await;
    assert_eq!(report.outcome, Outcome::TicketCreated);
    let ticket = report.ticket.unwrap();
    // The acknowledgement, the team notice, and the org's delivery lead (default rule).
    assert_eq!(flush(&app).await.sent, 3);

    let inbox = stack.wait_for(&cust, 1, WAIT).await;
    assert_eq!(inbox.len(), 1);
    let ack = parse(&inbox[0]);
    assert_eq!(first_address(ack.from()), "support@example.test");
    assert_eq!(
        ack.from().unwrap().first().unwrap().name(),
        Some("Example Support")
    );
    assert_eq!(
        ack.subject(),
        Some(format!("[Support #{ticket}] Printer on fire").as_str())
    );
    assert_eq!(header(&ack, "In-Reply-To"), root);
    assert_eq!(header(&ack, "References"), root);
    assert_eq!(header(&ack, "Auto-Submitted"), "auto-generated");
    assert_eq!(header(&ack, "X-Auto-Response-Suppress"), "All");
    let row = app
        .outbox()
        .await
        .into_iter()
        .find(|r| r.to == cust)
        .unwrap();
    assert_eq!(header(&ack, "Message-ID"), row.message_id);
    assert!(row.message_id.ends_with("@example.test>"));
    let reply_to = EmailAddress::parse(&first_address(ack.reply_to())).unwrap();
    let support = EmailAddress::parse("support@example.test").unwrap();
    let verified =
        token::verify(&support, b"test-secret", &reply_to).expect("Reply-To carries a valid token");
    assert_eq!((verified.ticket, verified.user), (ticket, cust_id));
    assert!(
        ack.body_text(0)
            .unwrap()
            .starts_with("--- Reply above this line ---")
    );
    assert!(
        ack.body_html(0)
            .unwrap()
            .contains("--- Reply above this line ---")
    );
    assert!(ack.body_text(0).unwrap().contains("It smokes."));

    let team_inbox = stack.wait_for(&team, 1, WAIT).await;
    let notice = parse(&team_inbox[0]);
    assert_eq!(notice.subject(), ack.subject());
    assert!(notice.body_text(0).unwrap().contains("It smokes."));
    assert!(
        notice.reply_to().is_none(),
        "the team address is not a user: no reply token"
    );
}

/// A reply as a mail client writes it to a notification.
fn client_reply(from: &str, to: &str, notification: &Message<'_>, id: &str, text: &str) -> String {
    let parent = header(notification, "Message-ID");
    let refs = format!("{} {parent}", header(notification, "References"));
    format!(
        "From: {from}\nTo: {to}\nMessage-ID: {id}\nIn-Reply-To: {parent}\nReferences: {refs}\nSubject: Re: {}\n\n{text}\n\n{}\n",
        notification.subject().unwrap(),
        notification
            .body_text(0)
            .unwrap()
            .lines()
            .map(|l| format!("> {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    )
}

#[tokio::test]
async fn a_follower_reply_from_a_mail_client_becomes_a_comment_and_reaches_everyone_else() {
    let _shared = POSTFIX.read().await;
    let stack = mailstack();
    let u = unique();
    let (c1, c2, team) = (
        format!("c1-{u}@customer.test"),
        format!("c2-{u}@customer.test"),
        format!("team-{u}@example.test"),
    );
    stack.add_users(&[&c1, &c2, &team]);
    let app = smtp_app(stack, &team).await;
    register(
        &app,
        &c1,
        "First Customer",
        Role::Customer,
        Some("customer-site-a"),
        "en",
    )
    .await;
    register(
        &app,
        &c2,
        "Second Customer",
        Role::Customer,
        Some("customer-site-a"),
        "en",
    )
    .await;
    let root = format!("<root-{u}@customer.test>");
    let open = format!(
        "From: {c1}\nTo: support@example.test\nCc: {c2}\nMessage-ID: {root}\nSubject: VPN drops\n\nEvery hour.\n"
    );
    let ticket = app.deliver(open.as_bytes()).await.ticket.unwrap();
    let staff = format!(
        "From: sam@example.test\nTo: support@example.test\nMessage-ID: <s-{u}@example.test>\nIn-Reply-To: {root}\nSubject: Re: VPN drops\n\nWhich client version?\n"
    );
    assert_eq!(
        app.deliver(staff.as_bytes()).await.outcome,
        Outcome::CommentAdded
    );
    flush(&app).await;

    // c1 has the ack and the staff comment; c2 (Cc follower) has the staff comment.
    let c1_inbox = stack.wait_for(&c1, 2, WAIT).await;
    let staff_note = c1_inbox
        .iter()
        .map(|m| parse(m))
        .find(|m| m.body_text(0).unwrap().contains("Which client version?"))
        .unwrap();
    let reply_to = first_address(staff_note.reply_to());
    let reply_id = format!("<r-{u}@customer.test>");
    let reply = client_reply(
        &c1,
        &reply_to,
        &staff_note,
        &reply_id,
        "Version 7.2 on Windows.",
    );
    let report = app.deliver(reply.as_bytes()).await;
    assert_eq!(
        (report.outcome, report.ticket),
        (Outcome::CommentAdded, Some(ticket))
    );
    let comment = app.ticket(ticket).await.comments.last().unwrap().clone();
    assert_eq!(
        comment.body, "Version 7.2 on Windows.",
        "the quoted notification is not part of the comment"
    );
    flush(&app).await;

    let c2_inbox = stack.wait_for(&c2, 2, WAIT).await;
    let forwarded = parse(c2_inbox.last().unwrap());
    assert!(
        forwarded
            .body_text(0)
            .unwrap()
            .contains("Version 7.2 on Windows.")
    );
    assert_eq!(
        header(&forwarded, "In-Reply-To"),
        reply_id,
        "threads under the reply it announces"
    );
    assert!(
        header(&forwarded, "References").starts_with(&root),
        "References starts at the ticket's root"
    );
    let team_inbox = stack.wait_for(&team, 3, WAIT).await;
    assert!(team_inbox.iter().any(|m| {
        parse(m)
            .body_text(0)
            .unwrap()
            .contains("Version 7.2 on Windows.")
    }));
    // The author is not told about their own comment: everything flushed
    // above has reached c1's inbox once a marker sent after it has.
    let c1_after = stack.drain(&c1).await;
    assert!(
        c1_after.iter().all(|m| !parse(m)
            .body_text(0)
            .unwrap()
            .contains("Version 7.2 on Windows.")),
        "author was notified"
    );

    // The same reply with every threading header stripped, sent to the token address, still threads.
    let stripped = format!(
        "From: {c1}\nTo: {reply_to}\nMessage-ID: <r2-{u}@customer.test>\nSubject: something else\n\nAlso on Linux.\n"
    );
    let report = app.deliver(stripped.as_bytes()).await;
    assert_eq!(
        (report.outcome, report.ticket),
        (Outcome::CommentAdded, Some(ticket))
    );
    assert_eq!(
        report
            .thread_reason
            .as_deref()
            .map(|r| r.starts_with("reply_token")),
        Some(true)
    );
}

#[tokio::test]
async fn a_recipient_postfix_rejects_is_dead_lettered_and_marked_bouncing_without_a_loop() {
    let _shared = POSTFIX.read().await;
    let stack = mailstack();
    let u = unique();
    let (gone, team) = (
        format!("gone-{u}@customer.test"),
        format!("team-{u}@example.test"),
    );
    stack.add_users(&[&team]); // `gone` has no mailbox: Postfix refuses it at RCPT
    let app = smtp_app(stack, &team).await;
    register(
        &app,
        &gone,
        "Gone Away",
        Role::Customer,
        Some("customer-site-a"),
        "en",
    )
    .await;
    let raw = format!(
        "From: {gone}\nTo: support@example.test\nMessage-ID: <g-{u}@customer.test>\nSubject: Hello\n\nHi.\n"
    );
    app.deliver(raw.as_bytes()).await;
    let stats = flush(&app).await;
    // The team notice and the delivery lead's share are sent; the acknowledgement dies.
    assert_eq!((stats.sent, stats.dead), (2, 1));
    let rows = app.outbox().await;
    let dead = rows.iter().find(|r| r.to == gone).unwrap();
    assert_eq!((dead.status, dead.attempts), (OutboxStatus::Dead, 1));
    assert!(
        app.store()
            .find_user(&EmailAddress::parse(&gone).unwrap())
            .await
            .unwrap()
            .unwrap()
            .bouncing
    );
    // Nothing new was queued by the failure, and a second flush has nothing to do.
    assert_eq!(app.outbox().await.len(), rows.len());
    assert_eq!(flush(&app).await, Default::default());
}

#[tokio::test]
async fn notifications_due_while_postfix_is_down_arrive_once_after_it_returns() {
    let _alone = POSTFIX.write().await;
    let stack = mailstack();
    let u = unique();
    let (cust, team) = (
        format!("o-{u}@customer.test"),
        format!("team-{u}@example.test"),
    );
    stack.add_users(&[&cust, &team]);
    let app = smtp_app(stack, &team).await;
    register(
        &app,
        &cust,
        "Outage Customer",
        Role::Customer,
        Some("customer-site-a"),
        "en",
    )
    .await;

    stack.stop_postfix();
    let raw = format!(
        "From: {cust}\nTo: support@example.test\nMessage-ID: <o-{u}@customer.test>\nSubject: During the outage\n\nHello?\n"
    );
    app.deliver(raw.as_bytes()).await;
    let worker = app.app.outbox_worker().unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn({
        let cancel = cancel.clone();
        async move { worker.run(cancel).await }
    });
    // Every notification failed and was retried at least once (backoff 1 s).
    common::wait_until(
        "every notification failed twice while Postfix is down",
        Duration::from_secs(30),
        || async {
            let rows = app.outbox().await;
            !rows.is_empty()
                && rows
                    .iter()
                    .all(|r| r.status == OutboxStatus::Failed && r.attempts >= 2)
        },
    )
    .await;
    stack.start();

    let cust_inbox = stack.wait_for(&cust, 1, Duration::from_secs(90)).await;
    let team_inbox = stack.wait_for(&team, 1, Duration::from_secs(90)).await;
    // Once the worker has stopped with every row sent, a duplicate it handed
    // to Postfix is delivered before a marker sent afterwards (`drain`).
    common::wait_until("every notification marked sent", WAIT, || async {
        app.outbox()
            .await
            .iter()
            .all(|r| r.status == OutboxStatus::Sent)
    })
    .await;
    cancel.cancel();
    running.await.unwrap();
    assert_eq!(
        stack.drain(&cust).await.len(),
        1,
        "exactly one acknowledgement"
    );
    assert_eq!(stack.drain(&team).await.len(), 1, "exactly one team notice");
    assert_eq!(
        header(&parse(&cust_inbox[0]), "Message-ID"),
        app.outbox()
            .await
            .iter()
            .find(|r| r.to == cust)
            .unwrap()
            .message_id
    );
    assert!(
        team_inbox.len() == 1
            && app
                .outbox()
                .await
                .iter()
                .all(|r| r.status == OutboxStatus::Sent)
    );
}

/// Decodes a header the way Python's standard library does.
fn python_decode(raw: &[u8], header: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.eml");
    std::fs::write(&path, raw).unwrap();
    let script = "import sys, email, email.header\n\
                  m = email.message_from_binary_file(open(sys.argv[1], 'rb'))\n\
                  print(str(email.header.make_header(email.header.decode_header(m[sys.argv[2]]))), end='')";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&path)
        .arg(header)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn japanese_subjects_and_names_decode_exactly_in_mail_parser_and_python() {
    let app = TestApp::new().await;
    let name = "山田 花子";
    let subject = "ログイン画面でエラーが発生します（至急）とても長い件名が続くと複数のエンコードされた単語に分割されます";
    register(
        &app,
        "hanako@customer.test",
        name,
        Role::Customer,
        Some("customer-site-a"),
        "ja",
    )
    .await;
    let raw = format!(
        "From: =?UTF-8?B?{}?= <hanako@customer.test>\nTo: support@example.test\nMessage-ID: <jp@customer.test>\nSubject: =?UTF-8?B?{}?=\nContent-Type: text/plain; charset=UTF-8\n\nよろしくお願いします。\n",
        b64(name),
        b64(subject)
    );
    let ticket = app.deliver(raw.as_bytes()).await.ticket.unwrap();
    flush(&app).await;
    let ack_row = app
        .outbox()
        .await
        .into_iter()
        .find(|r| r.template == "ack")
        .expect("an acknowledgement");
    let file = app.dir.path().join(format!("outbox/{:08}.eml", ack_row.id));
    let bytes = std::fs::read(&file).unwrap();
    let ack = parse(&bytes);
    let expected_subject = format!("[Support #{ticket}] {subject}");
    assert_eq!(ack.subject(), Some(expected_subject.as_str()));
    assert_eq!(ack.to().unwrap().first().unwrap().name(), Some(name));
    assert_eq!(python_decode(&bytes, "Subject"), expected_subject);
    assert_eq!(
        python_decode(&bytes, "To"),
        format!("{name} <hanako@customer.test>")
    );
    // Japanese template for a Japanese user.
    assert!(
        ack.body_text(0).unwrap().contains(&format!("{name} 様")),
        "{}",
        ack.body_text(0).unwrap()
    );
    // Every header line stays within RFC 5322 §2.1.1's 998 characters, encoded words within 75.
    let head =
        String::from_utf8_lossy(&bytes[..bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap()])
            .to_string();
    assert!(head.lines().all(|l| l.len() <= 998));
    assert!(
        head.split_whitespace()
            .filter(|w| w.starts_with("=?"))
            .all(|w| w.len() <= 75),
        "{head}"
    );
}

fn b64(text: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in text.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test]
async fn attachments_ride_along_up_to_attach_max_and_larger_ones_are_listed() {
    let app = TestApp::with_settings(|s| s.outbox.attach_max = Size(1000)).await;
    let small = "a".repeat(200);
    let big = "b".repeat(5000);
    let raw = format!(
        "From: alice@customer.test\nTo: support@example.test\nMessage-ID: <att@customer.test>\nSubject: Files\n\
         Content-Type: multipart/mixed; boundary=\"XX\"\n\n--XX\nContent-Type: text/plain\n\nTwo files.\n\
         --XX\nContent-Type: text/plain; name=\"small.txt\"\nContent-Disposition: attachment; filename=\"small.txt\"\n\n{small}\n\
         --XX\nContent-Type: application/octet-stream; name=\"big.bin\"\nContent-Disposition: attachment; filename=\"big.bin\"\n\n{big}\n--XX--\n"
    );
    app.deliver(raw.as_bytes()).await;
    flush(&app).await;
    let team = app
        .outbox()
        .await
        .into_iter()
        .find(|r| r.template == "new_ticket")
        .expect("the team notice");
    let bytes = std::fs::read(app.dir.path().join(format!("outbox/{:08}.eml", team.id))).unwrap();
    let notice = parse(&bytes);
    let names: Vec<_> = notice
        .attachments()
        .filter_map(|a| mail_parser::MimeHeaders::attachment_name(a).map(str::to_string))
        .collect();
    assert_eq!(names, ["small.txt"]);
    let text = notice.body_text(0).unwrap();
    assert!(
        text.contains("big.bin"),
        "the large file is listed by name: {text}"
    );
}

#[tokio::test]
async fn a_fan_out_over_parallel_connections_reaches_each_follower_once_and_records_every_attempt()
{
    let _shared = POSTFIX.read().await;
    let stack = mailstack();
    let u = unique();
    let team = format!("team-{u}@example.test");
    // Every fifth follower has no mailbox: Postfix refuses them at RCPT, in
    // the middle of other messages on the same pooled connections.
    let followers: Vec<String> = (0..24)
        .map(|i| {
            let who = if i % 5 == 4 { "gone" } else { "fan" };
            format!("{who}{i}-{u}@customer.test")
        })
        .collect();
    let mailboxes: Vec<&str> = followers
        .iter()
        .map(String::as_str)
        .filter(|f| f.starts_with("fan"))
        .chain([team.as_str()])
        .collect();
    stack.add_users(&mailboxes);
    let app = smtp_app_with(stack, &team, |s| s.outbox.concurrency = 4).await;
    for (i, f) in followers.iter().enumerate() {
        let name = format!("Follower {i}");
        register(
            &app,
            f,
            &name,
            Role::Customer,
            Some("customer-site-a"),
            "en",
        )
        .await;
    }
    let opener = &followers[0];
    let raw = format!(
        "From: {opener}\nTo: support@example.test\nCc: {}\nMessage-ID: <fan-{u}@customer.test>\nSubject: Fan-out\n\nHello all.\n",
        followers[1..].join(", ")
    );
    app.deliver(raw.as_bytes()).await;
    flush(&app).await;
    let comment = format!(
        "From: {opener}\nTo: support@example.test\nMessage-ID: <fan2-{u}@customer.test>\nIn-Reply-To: <fan-{u}@customer.test>\nSubject: Re: Fan-out\n\nAn update.\n"
    );
    app.deliver(comment.as_bytes()).await;
    flush(&app).await;

    // Every row was attempted exactly once: sent, or dead for a refused recipient.
    let rows = app.outbox().await;
    assert!(rows.iter().any(|r| r.status == OutboxStatus::Dead));
    for row in &rows {
        let gone = row.to.starts_with("gone");
        let expected = if gone {
            OutboxStatus::Dead
        } else {
            OutboxStatus::Sent
        };
        assert_eq!((row.status, row.attempts), (expected, 1), "{}", row.to);
    }
    // Each mailbox holds exactly the messages of its sent rows, none twice.
    for mailbox in &mailboxes {
        let mut expected: Vec<String> = rows
            .iter()
            .filter(|r| r.to == *mailbox)
            .map(|r| r.message_id.trim_matches(['<', '>']).to_string())
            .collect();
        assert!(!expected.is_empty(), "{mailbox} was notified");
        let inbox = stack.wait_for(mailbox, expected.len(), WAIT).await;
        let mut got: Vec<String> = inbox
            .iter()
            .map(|m| parse(m).message_id().unwrap_or_default().to_string())
            .collect();
        expected.sort();
        got.sort();
        assert_eq!(got, expected, "{mailbox}");
    }
    assert_eq!(flush(&app).await, Default::default());
}

/// A long comment is mailed as an excerpt of at most `excerpt_max` that says,
/// in the recipient's language and in both parts, that the full text is on
/// the ticket; the ticket keeps every line.
#[tokio::test]
async fn a_long_comment_is_mailed_as_an_excerpt_that_points_to_the_ticket() {
    let app = TestApp::with_settings(|s| s.outbox.excerpt_max = Size(4096)).await;
    app.store()
        .add_user(&NewUser {
            email: EmailAddress::parse("hana@customer.test").unwrap(),
            name: "Hana".into(),
            role: Role::Customer,
            org_id: Some(1),
            locale: "ja".into(),
        })
        .await
        .unwrap();
    let body: String = (0..20_000)
        .map(|i| format!("Log line {i:05}: the printer said no.\n"))
        .collect();
    let raw = format!(
        "From: hana@customer.test\nTo: support@example.test\nMessage-ID: <long@customer.test>\n\
         Subject: Printer log\n\n{body}"
    );
    let report = app.deliver(raw.as_bytes()).await;
    assert_eq!(report.outcome, Outcome::TicketCreated);
    let ticket = app.ticket(report.ticket.unwrap()).await;
    assert!(
        ticket.comments[0].body.contains("Log line 19999"),
        "all kept"
    );
    flush(&app).await;
    let rows = app.outbox().await;
    for (template, to, note) in [
        (
            "ack",
            "hana@customer.test",
            "全文はお問い合わせ #1 でご確認いただけます",
        ),
        (
            "new_ticket",
            "team@example.test",
            "the full text is on ticket #1",
        ),
    ] {
        let row = rows
            .iter()
            .find(|r| r.template == template && r.to == to)
            .unwrap_or_else(|| panic!("{template} to {to}: {rows:?}"));
        let bytes =
            std::fs::read(app.dir.path().join(format!("outbox/{:08}.eml", row.id))).unwrap();
        assert!(bytes.len() < 32 * 1024, "{template}: {} bytes", bytes.len());
        let mail = parse(&bytes);
        let text = mail.body_text(0).unwrap();
        let html = mail.body_html(0).unwrap();
        for (part, content) in [("text", &text), ("html", &html)] {
            assert!(content.contains("Log line 00000"), "{template} {part}");
            assert!(!content.contains("Log line 19999"), "{template} {part}");
            assert!(content.contains(note), "{template} {part}: {content}");
        }
    }
}

/// A refusal to an unknown (possibly forged) sender repeats nothing they
/// wrote: not their display name, not their subject (backscatter).
#[tokio::test]
async fn a_refusal_to_an_unknown_sender_echoes_none_of_their_text() {
    let app = TestApp::new().await;
    let raw = "From: \"Cheap Pills www.spam.test\" <victim@nowhere.test>\nTo: support@example.test\n\
               Message-ID: <spam@nowhere.test>\nSubject: BUY NOW at www.spam.test\n\nBuy.\n";
    let report = app.deliver(raw.as_bytes()).await;
    assert_eq!(
        (report.outcome, report.reason.as_deref()),
        (Outcome::Rejected, Some("unknown_sender"))
    );
    flush(&app).await;
    let rows = app.outbox().await;
    let refusals: Vec<_> = rows
        .iter()
        .filter(|r| r.to == "victim@nowhere.test")
        .collect();
    assert_eq!(refusals.len(), 1, "{rows:?}");
    let bytes = std::fs::read(
        app.dir
            .path()
            .join(format!("outbox/{:08}.eml", refusals[0].id)),
    )
    .unwrap();
    let mail = parse(&bytes);
    let shown = format!(
        "{}\n{}\n{}\n{}",
        mail.subject().unwrap_or_default(),
        header(&mail, "To"),
        mail.body_text(0).unwrap(),
        mail.body_html(0).unwrap()
    );
    assert!(!shown.contains("spam.test"), "{shown}");
    assert!(!shown.contains("Cheap Pills"), "{shown}");
    assert!(shown.contains("not registered"), "{shown}");
}

/// Every string in `text` shaped like one of our tokens: `tg_` and what
/// follows it, and any run of 64 hex digits (a token kept without its
/// prefix) with the prefix put back.
fn token_like(text: &str, found: &mut std::collections::BTreeSet<String>) {
    let bytes = text.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"tg_") {
            let end = (i + 3..bytes.len())
                .find(|&j| !word(bytes[j]))
                .unwrap_or(bytes.len());
            found.insert(text[i..end].to_string());
            i = end;
        } else if bytes[i].is_ascii_hexdigit() && (i == 0 || !word(bytes[i - 1])) {
            let end = (i..bytes.len())
                .find(|&j| !word(bytes[j]))
                .unwrap_or(bytes.len());
            if end - i == 64 && bytes[i..end].iter().all(u8::is_ascii_hexdigit) {
                found.insert(format!("tg_{}", &text[i..end]));
            }
            i = end.max(i + 1);
        } else {
            i += 1;
        }
    }
}

/// Everything the database holds, as text: SQLite's files byte for byte
/// (free pages and the WAL included), PostgreSQL's tables row by row.
async fn database_text(app: &TestApp) -> String {
    let url = app.app.settings.database.url.clone();
    if let Some(path) = url.strip_prefix("sqlite://") {
        let mut text = String::new();
        for suffix in ["", "-wal", "-journal"] {
            if let Ok(bytes) = std::fs::read(format!("{path}{suffix}")) {
                text.push_str(&String::from_utf8_lossy(&bytes));
                text.push('\n');
            }
        }
        return text;
    }
    use sqlx::{Connection, Row};
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let tables: Vec<String> = sqlx::query(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect();
    assert!(tables.iter().any(|t| t == "web_links"), "{tables:?}");
    let mut text = String::new();
    for table in tables {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT CAST(t AS text) FROM \"{table}\" t"
        )))
        .fetch_all(&mut conn)
        .await
        .unwrap();
        for row in rows {
            text.push_str(&row.get::<String, _>(0));
            text.push('\n');
        }
    }
    conn.close().await.ok();
    text
}

/// The portal link in a delivered mail's text.
fn portal_link_in(text: &str) -> Option<String> {
    let at = text.find("/login/tg_")?;
    let start = text[..at].rfind("http")?;
    text.get(start..at + "/login/".len() + 67)
        .map(str::to_string)
}

/// Invites a staff user and has them ask for a sign-in link, sends both
/// mails, then tries every token-shaped string of the database as a link and
/// as a session cookie: none may sign in, while both delivered links do.
async fn no_usable_token_rests_in_the_database(t: TestApp) {
    use common::http::send;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = ticketgate::web::WebState::new(
        t.app.tickets().clone(),
        t.app.replay(),
        &t.app.settings.web,
        t.app.settings.intake.max_message_size.0,
    );
    let cancel = tokio_util::sync::CancellationToken::new();
    tokio::spawn(ticketgate::web::serve(listener, state, cancel.clone()));
    let _stop = cancel.drop_guard();

    let email = "erin@example.test";
    ticketgate::manage::register_user(
        t.app.ingestor.tickets(),
        &ticketgate::manage::UserRequest {
            email,
            name: "Erin Staff",
            org: None,
            role: "staff",
            locale: "en",
            invite: true,
        },
    )
    .await
    .unwrap();
    let form = format!("email={}", email.replace('@', "%40"));
    let headers = [("Content-Type", "application/x-www-form-urlencoded")];
    let asked = send(addr, "POST", "/login", &headers, Some(form.as_bytes())).await;
    assert_eq!(asked.status, 200, "{}", asked.text());

    let links: Vec<String> = t
        .mails()
        .await
        .iter()
        .filter(|m| m.to == email)
        .filter_map(|m| portal_link_in(&m.text))
        .collect();
    assert_eq!(
        links.len(),
        2,
        "an invitation and a sign-in link: {links:?}"
    );
    let outbox = t.outbox().await;
    assert!(
        outbox
            .iter()
            .filter(|r| r.to == email)
            .all(|r| r.status == OutboxStatus::Sent),
        "{outbox:?}"
    );

    let mut found = std::collections::BTreeSet::new();
    token_like(&database_text(&t).await, &mut found);
    let mut signed_in = Vec::new();
    for token in &found {
        let path = format!("/login/{token}");
        if send(addr, "POST", &path, &[], None).await.status == 303 {
            signed_in.push(format!("link {token}"));
        }
        let cookie = format!("tg_session={token}");
        let page = send(addr, "GET", "/tickets", &[("Cookie", &cookie)], None).await;
        if page.status == 200 {
            signed_in.push(format!("cookie {token}"));
        }
    }
    assert!(
        signed_in.is_empty(),
        "strings read from the database signed in ({} token-shaped strings tried): {signed_in:?}",
        found.len()
    );

    for link in &links {
        let path = &link[link.find("/login/").unwrap()..];
        let res = send(addr, "POST", path, &[], None).await;
        assert_eq!(res.status, 303, "the delivered link {link} signs in");
    }
}

#[tokio::test]
async fn after_sending_no_sign_in_or_invitation_token_in_sqlite_signs_anyone_in() {
    no_usable_token_rests_in_the_database(TestApp::new().await).await;
}

#[tokio::test]
async fn after_sending_no_sign_in_or_invitation_token_in_postgres_signs_anyone_in() {
    no_usable_token_rests_in_the_database(TestApp::postgres().await).await;
}

/// A relay written for the test: accepts every message after `delay` (a
/// slow relay, so a backlog takes a while) and records the Message-ID of
/// each one it accepted, in order, duplicates included.
struct SlowSink {
    port: u16,
    accepted: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl SlowSink {
    async fn start(delay: Duration) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(Self::session(stream, log.clone(), delay));
            }
        });
        Self { port, accepted }
    }

    /// One SMTP session (RFC 5321 §4.1): no extensions, one reply a command.
    async fn session(
        stream: tokio::net::TcpStream,
        log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
        delay: Duration,
    ) {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read);
        let _ = write.write_all(b"220 sink ESMTP\r\n").await;
        let mut line = String::new();
        loop {
            line.clear();
            if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
            let reply: &[u8] = match verb.as_str() {
                "EHLO" | "HELO" => b"250 sink\r\n",
                "MAIL" | "RCPT" | "RSET" | "NOOP" => b"250 ok\r\n",
                "QUIT" => {
                    let _ = write.write_all(b"221 bye\r\n").await;
                    return;
                }
                "DATA" => {
                    let _ = write.write_all(b"354 go on\r\n").await;
                    let mut id = String::new();
                    loop {
                        line.clear();
                        if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if line == ".\r\n" {
                            break;
                        }
                        if id.is_empty() && line.to_ascii_lowercase().starts_with("message-id:") {
                            id = line[11..].trim().to_string();
                        }
                    }
                    tokio::time::sleep(delay).await;
                    log.lock().unwrap().push(id);
                    b"250 accepted\r\n"
                }
                _ => b"502 no\r\n",
            };
            if write.write_all(reply).await.is_err() {
                return;
            }
        }
    }

    fn accepted(&self) -> Vec<String> {
        self.accepted.lock().unwrap().clone()
    }

    /// Waits until at least `n` messages were accepted.
    async fn wait_for(&self, n: usize, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while self.accepted().len() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the relay accepted {} of {n} in time",
                self.accepted().len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// How many times each Message-ID beyond its first was accepted, in all.
fn duplicates(accepted: &[String]) -> usize {
    let distinct: std::collections::HashSet<&String> = accepted.iter().collect();
    accepted.len() - distinct.len()
}

/// Concurrency of the outbox in the crash tests.
const SENDERS: usize = 4;

/// A gateway whose outbox holds `tickets` new tickets' notifications (the
/// acknowledgement, the team's notice, …), configured to send them to
/// `sink`; `serve` runs as a real process on it.
struct Backlog {
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
    total: usize,
}

impl Backlog {
    async fn queue(sink: &SlowSink, tickets: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
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
kind = "smtp"
host = "127.0.0.1"
port = {port}
tls = "none"
[support]
name = "Example Support"
address = "support@example.test"
domain = "example.test"
notify = "team@example.test"
tag = "Support"
reply_secret = "test-secret"
[intake]
auto_reply_limit = "1000/1h"
[outbox]
poll_interval = "100ms"
concurrency = {SENDERS}
lease = "2s"
backoff = "1s"
[admin]
listen = ""
[web]
listen = ""
[auth]
trusted_authserv_id = "mx.example.test"
[rules]
file = "{rules}"
"#,
            db = dir.path().join("ticketgate.db").display(),
            maildir = dir.path().join("maildir").display(),
            port = sink.port,
            rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("config/rules.toml")
                .display(),
        );
        let config = dir.path().join("ticketgate.toml");
        std::fs::write(&config, &text).unwrap();
        let settings = ticketgate::config::Settings::from_sources(&text, "test", Vec::new())
            .expect("settings are valid");
        let app = ticketgate::app::App::open(settings).await.unwrap();
        common::seed_world(app.store.as_ref()).await;
        for n in 0..tickets {
            let raw = format!(
                "From: Alice <alice@customer.test>\r\nTo: support@example.test\r\n\
                 Subject: Backlog {n}\r\nMessage-ID: <backlog-{n}@customer.test>\r\n\r\nNumber {n}.\r\n"
            );
            let report = app
                .ingestor
                .ingest(ticketgate::ingest::Delivery {
                    raw: raw.as_bytes(),
                    origin: "test",
                    notify: true,
                    ..Default::default()
                })
                .await
                .unwrap();
            assert_eq!(report.outcome, Outcome::TicketCreated);
        }
        let total = app.store.list_outbox().await.unwrap().len();
        assert!(total >= tickets * 2, "{total} notifications queued");
        Self { dir, config, total }
    }

    fn serve(&self) -> std::process::Child {
        std::process::Command::new(env!("CARGO_BIN_EXE_ticketgate"))
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .current_dir(self.dir.path())
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    }

    async fn statuses(&self) -> Vec<OutboxStatus> {
        let url = format!(
            "sqlite://{}",
            self.dir.path().join("ticketgate.db").display()
        );
        let store = ticketgate::app::open_store(&url).await.unwrap();
        store
            .list_outbox()
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.status)
            .collect()
    }

    /// Waits until every row is sent.
    async fn wait_all_sent(&self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let statuses = self.statuses().await;
            if statuses.iter().all(|s| *s == OutboxStatus::Sent) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "not all sent: {statuses:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Sends SIGTERM and waits for the process to exit; how long that took.
async fn terminate(child: &mut std::process::Child) -> (Duration, std::process::ExitStatus) {
    let asked = std::time::Instant::now();
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let deadline = asked + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (asked.elapsed(), status);
        }
        assert!(std::time::Instant::now() < deadline, "serve did not exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_backlog_resends_at_most_the_messages_in_flight() {
    let sink = SlowSink::start(Duration::from_millis(200)).await;
    let backlog = Backlog::queue(&sink, 40).await;
    let mut serve = backlog.serve();
    sink.wait_for(22, Duration::from_secs(60)).await;
    serve.kill().unwrap(); // SIGKILL
    serve.wait().unwrap();
    let before_restart = sink.accepted().len();

    let mut again = backlog.serve();
    backlog.wait_all_sent(Duration::from_secs(120)).await;
    let (_, status) = terminate(&mut again).await;
    assert!(status.success(), "{status:?}");

    let accepted = sink.accepted();
    let distinct: std::collections::HashSet<&String> = accepted.iter().collect();
    eprintln!(
        "{before_restart} accepted before SIGKILL; {} of {} sent twice",
        duplicates(&accepted),
        backlog.total
    );
    assert_eq!(distinct.len(), backlog.total, "every notification arrived");
    assert!(
        duplicates(&accepted) <= SENDERS,
        "{} duplicates after a SIGKILL with {before_restart} accepted; at most {SENDERS} \
         (the messages in flight) may be sent twice",
        duplicates(&accepted)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_backlog_stops_sending_within_seconds_and_leaves_the_rest_queued() {
    let sink = SlowSink::start(Duration::from_millis(200)).await;
    let backlog = Backlog::queue(&sink, 60).await;
    let mut serve = backlog.serve();
    sink.wait_for(12, Duration::from_secs(60)).await;
    let (took, status) = terminate(&mut serve).await;
    assert!(status.success(), "{status:?}");
    assert!(
        took < Duration::from_secs(5),
        "serve took {took:?} to stop after SIGTERM"
    );
    let statuses = backlog.statuses().await;
    let sent = statuses
        .iter()
        .filter(|s| **s == OutboxStatus::Sent)
        .count();
    let queued = statuses
        .iter()
        .filter(|s| **s == OutboxStatus::Queued)
        .count();
    eprintln!("serve stopped {took:?} after SIGTERM: {sent} sent, {queued} queued");
    assert_eq!(
        sent,
        sink.accepted().len(),
        "every accepted message is recorded sent"
    );
    assert_eq!(
        sent + queued,
        backlog.total,
        "the rest is queued, none left claimed: {statuses:?}"
    );
    assert!(queued > 0, "SIGTERM came before the backlog was done");

    let mut again = backlog.serve();
    backlog.wait_all_sent(Duration::from_secs(120)).await;
    terminate(&mut again).await;
    let accepted = sink.accepted();
    assert_eq!(duplicates(&accepted), 0, "nothing was sent twice");
    assert_eq!(accepted.len(), backlog.total);
}
