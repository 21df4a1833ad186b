//! Notifications through the real Postfix into the real Dovecot, read back over
//! IMAP as each recipient; and what every mail client must be able to decode.

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
    // The author is not told about their own comment.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let c1_after = stack.inbox(&c1).await;
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
    tokio::time::sleep(Duration::from_secs(30)).await;
    let during = app.outbox().await;
    assert!(
        during
            .iter()
            .all(|r| r.status == OutboxStatus::Failed && r.attempts >= 2),
        "{during:?}"
    );
    stack.start();

    let cust_inbox = stack.wait_for(&cust, 1, Duration::from_secs(90)).await;
    let team_inbox = stack.wait_for(&team, 1, Duration::from_secs(90)).await;
    // Give a duplicate every chance to show up before counting.
    tokio::time::sleep(Duration::from_secs(3)).await;
    cancel.cancel();
    running.await.unwrap();
    assert_eq!(
        stack.inbox(&cust).await.len(),
        1,
        "exactly one acknowledgement"
    );
    assert_eq!(stack.inbox(&team).await.len(), 1, "exactly one team notice");
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
