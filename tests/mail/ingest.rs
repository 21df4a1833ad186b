//! Ingest behaviours beyond the golden files: deduplication without a
//! Message-ID, size limits, replies to our own notifications, reopening.

use crate::common;

use common::TestApp;
use ticketgate::config::Size;
use ticketgate::domain::ids::EmailAddress;
use ticketgate::domain::outcome::Outcome;
use ticketgate::store::LogFilter;

fn message(from: &str, headers: &str, body: &str) -> Vec<u8> {
    format!("From: {from}\nTo: support@example.test\n{headers}\n\n{body}\n").into_bytes()
}

#[tokio::test]
async fn without_a_message_id_the_same_bytes_are_a_duplicate_and_different_bytes_are_not() {
    let app = TestApp::new().await;
    let first = message(
        "alice@customer.test",
        "Subject: Form submission",
        "Printer 3 is offline.",
    );
    let a = app.deliver(&first).await;
    let b = app.deliver(&first).await;
    let other = app
        .deliver(&message(
            "alice@customer.test",
            "Subject: Form submission",
            "Printer 4 is offline.",
        ))
        .await;
    assert_eq!(a.outcome, Outcome::TicketCreated);
    assert_eq!((b.outcome, b.ticket), (Outcome::Duplicate, a.ticket));
    assert_eq!(other.outcome, Outcome::TicketCreated);
    assert_ne!(other.ticket, a.ticket);
}

#[tokio::test]
async fn oversized_mail_is_rejected_from_its_headers_and_kept() {
    let app = TestApp::with_settings(|s| s.intake.max_message_size = Size(2048)).await;
    let big = message(
        "alice@customer.test",
        "Message-ID: <big@customer.test>\nSubject: Logs",
        &"x".repeat(4096),
    );
    let report = app.deliver(&big).await;
    assert_eq!(report.outcome, Outcome::Rejected);
    assert_eq!(report.reason.as_deref(), Some("too_large"));
    assert_eq!(report.message_id.as_deref(), Some("<big@customer.test>"));
    let log = app.store().list_log(&LogFilter::default()).await.unwrap();
    assert_eq!(log.last().unwrap().size as usize, big.len());
    assert_eq!(
        log.last().unwrap().sender.as_deref(),
        Some("alice@customer.test")
    );
    // The sender is told once; a second oversized message within the window is not answered.
    let again = message(
        "alice@customer.test",
        "Message-ID: <big2@customer.test>\nSubject: Logs",
        &"y".repeat(4096),
    );
    app.deliver(&again).await;
    let notices = app.outbox().await;
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(
        (notices[0].template.as_str(), notices[0].to.as_str()),
        ("refused", "alice@customer.test")
    );
    assert_eq!(notices[0].context["event"]["reason"], "too_large");
}

#[tokio::test]
async fn empty_and_headerless_input_is_rejected_as_unparseable() {
    let app = TestApp::new().await;
    for raw in [&b""[..], b"\r\n\r\n", b"\x00\x01\x02"] {
        let report = app.deliver(raw).await;
        assert_eq!(report.outcome, Outcome::Rejected, "{raw:?}");
        assert!(
            matches!(
                report.reason.as_deref(),
                Some("unparseable") | Some("no_sender")
            ),
            "{raw:?}: {report:?}"
        );
    }
}

#[tokio::test]
async fn a_reply_to_a_notification_threads_by_its_message_id() {
    let app = TestApp::new().await;
    let created = app.deliver_file("_base/01_alice_opens_ticket.eml").await;
    let ack = app
        .outbox()
        .await
        .into_iter()
        .find(|r| r.template == "ack")
        .expect("ack queued");
    let reply = app
        .deliver(&message(
            "alice@customer.test",
            &format!(
                "Message-ID: <r1@customer.test>\nIn-Reply-To: {}\nSubject: Re: whatever",
                ack.message_id
            ),
            "One more detail: it only happens with SSO.",
        ))
        .await;
    assert_eq!(reply.outcome, Outcome::CommentAdded);
    assert_eq!(reply.ticket, created.ticket);
    assert_eq!(
        reply.thread_reason,
        Some(format!("in_reply_to {}", ack.message_id))
    );
}

#[tokio::test]
async fn notifications_thread_to_the_root_and_the_latest_message() {
    let app = TestApp::new().await;
    app.deliver_file("_base/01_alice_opens_ticket.eml").await;
    app.deliver_file("reply_matched_by_in_reply_to.eml").await;
    let rows = app.outbox().await;
    let to_alice = rows
        .iter()
        .rfind(|r| r.to == "alice@customer.test")
        .unwrap();
    assert_eq!(to_alice.template, "comment_added");
    assert_eq!(
        to_alice.in_reply_to.as_deref(),
        Some("<case-irt@example.test>")
    );
    assert_eq!(
        to_alice.references.as_deref(),
        Some("<base-1@customer.test> <case-irt@example.test>")
    );
    assert!(
        rows.iter().all(|r| r.to != "sam@example.test"),
        "the author is not told about their own comment"
    );
}

#[tokio::test]
async fn a_customer_reply_reopens_a_closed_ticket_but_not_an_escalated_one() {
    let app = TestApp::new().await;
    let t = app
        .deliver_file("_base/01_alice_opens_ticket.eml")
        .await
        .ticket
        .unwrap();
    for (status, expected) in [("closed", "new"), ("escalated", "escalated")] {
        app.sqlite_execute(
            "UPDATE tickets SET status = ?1 WHERE id = ?2",
            rusqlite::params![status, t],
        )
        .await;
        let id = format!(
            "Message-ID: <reopen-{status}@customer.test>\nIn-Reply-To: <base-1@customer.test>\nSubject: Re: x"
        );
        let r = app
            .deliver(&message("bob@customer.test", &id, "Still broken."))
            .await;
        assert_eq!(r.outcome, Outcome::CommentAdded);
        assert_eq!(
            serde_json::to_value(app.ticket(t).await.status).unwrap(),
            expected,
            "after a reply on {status}"
        );
    }
}

#[tokio::test]
async fn refusal_notices_go_to_from_never_to_reply_to() {
    let app = TestApp::new().await;
    let forged = message(
        "stranger@unknown.test",
        "Message-ID: <s1@unknown.test>\nReply-To: victim@customer.test\nSubject: Help",
        "Please answer to the Reply-To.",
    );
    let report = app.deliver(&forged).await;
    assert_eq!(
        (report.outcome, report.reason.as_deref()),
        (Outcome::Rejected, Some("unknown_sender"))
    );
    let rows = app.outbox().await;
    assert_eq!(
        rows.iter().map(|r| r.to.as_str()).collect::<Vec<_>>(),
        ["stranger@unknown.test"]
    );
}

#[tokio::test]
async fn automatic_mail_is_never_answered() {
    let app = TestApp::new().await;
    for headers in [
        "Auto-Submitted: auto-replied",
        "Precedence: bulk",
        "X-Autoreply: yes",
    ] {
        let raw = message(
            "stranger@unknown.test",
            &format!("{headers}\nSubject: Out of office"),
            "Away.",
        );
        assert_eq!(
            app.deliver(&raw).await.outcome,
            Outcome::Ignored,
            "{headers}"
        );
    }
    assert!(app.outbox().await.is_empty());
}

fn bob() -> EmailAddress {
    EmailAddress::parse("bob@customer.test").unwrap()
}

#[tokio::test]
async fn a_delivery_report_about_a_notification_marks_its_recipient_bouncing_until_they_write() {
    let app = TestApp::new().await;
    app.deliver_file("_base/01_alice_opens_ticket.eml").await;
    assert_eq!(
        app.deliver_file("reply_matched_by_in_reply_to.eml")
            .await
            .outcome,
        Outcome::CommentAdded
    );
    let notification = app
        .outbox()
        .await
        .into_iter()
        .find(|r| r.to == "bob@customer.test")
        .expect("bob is notified");
    let dsn = format!(
        "From: MAILER-DAEMON@mx.customer.test\nTo: support@example.test\nSubject: Undelivered Mail\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\n\n\
         --b\nContent-Type: text/plain\n\nMailbox full.\n\
         --b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.customer.test\n\n\
         Final-Recipient: rfc822; bob@customer.test\nAction: failed\nStatus: 5.2.2\n\n\
         --b\nContent-Type: text/rfc822-headers\n\nMessage-ID: {}\nFrom: support@example.test\n\n--b--\n",
        notification.message_id
    );
    assert_eq!(app.deliver(dsn.as_bytes()).await.outcome, Outcome::Ignored);
    assert!(
        app.store()
            .find_user(&bob())
            .await
            .unwrap()
            .unwrap()
            .bouncing
    );
    let ticket = app.ticket(1).await;
    assert!(
        ticket
            .events
            .iter()
            .any(|e| e.event.kind() == "recipient_bouncing"),
        "{:?}",
        ticket.events
    );

    // While bouncing, bob is left out of notifications...
    let before = app.outbox().await.len();
    let irt = "In-Reply-To: <base-1@customer.test>\nSubject: Re: x";
    app.deliver(&message(
        "alice@customer.test",
        &format!("Message-ID: <a9@customer.test>\n{irt}"),
        "Any news?",
    ))
    .await;
    let rows = app.outbox().await;
    assert!(
        rows.len() > before && rows[before..].iter().all(|r| r.to != "bob@customer.test"),
        "{rows:?}"
    );
    // ...until he writes in himself.
    app.deliver(&message(
        "bob@customer.test",
        &format!("Message-ID: <b9@customer.test>\n{irt}"),
        "Inbox works again.",
    ))
    .await;
    assert!(
        !app.store()
            .find_user(&bob())
            .await
            .unwrap()
            .unwrap()
            .bouncing
    );
}

#[tokio::test]
async fn deeply_nested_mime_and_huge_lines_get_an_outcome() {
    let app = TestApp::new().await;
    // 3,000 nested multiparts.
    let mut raw = String::from(
        "From: alice@customer.test\nTo: support@example.test\nSubject: nested\nMessage-ID: <deep@customer.test>\n",
    );
    for i in 0..3000 {
        raw.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{i}\"\n\n--b{i}\n"
        ));
    }
    raw.push_str("Content-Type: text/plain\n\nbottom\n");
    // Refused unread (the parser would take many times its size), logged from
    // its headers, its bytes kept.
    let r = app.deliver(raw.as_bytes()).await;
    assert_eq!(r.outcome, Outcome::Rejected, "{r:?}");
    assert_eq!(r.reason.as_deref(), Some("too_complex"));
    assert_eq!(r.message_id.as_deref(), Some("<deep@customer.test>"));
    let log = app.store().list_log(&LogFilter::default()).await.unwrap();
    assert_eq!(log.last().unwrap().size as usize, raw.len());
    assert_eq!(
        log.last().unwrap().sender.as_deref(),
        Some("alice@customer.test")
    );

    // 200 messages forwarded inside each other.
    let mut inner = String::from("From: x@y.test\nSubject: core\n\ncore text\n");
    for i in 0..200 {
        inner =
            format!("From: x@y.test\nSubject: level {i}\nContent-Type: message/rfc822\n\n{inner}");
    }
    let raw = format!(
        "From: bob@customer.test\nTo: support@example.test\nMessage-ID: <russian-doll@customer.test>\nSubject: doll\nContent-Type: multipart/mixed; boundary=\"z\"\n\n--z\nContent-Type: text/plain\n\nsee attached\n--z\nContent-Type: message/rfc822\n\n{inner}\n--z--\n"
    );
    let r = app.deliver(raw.as_bytes()).await;
    assert_eq!(r.outcome, Outcome::TicketCreated, "{r:?}");

    // A 2 MB single line.
    let raw = format!(
        "From: bob@customer.test\nTo: support@example.test\nMessage-ID: <long@customer.test>\nSubject: long\n\n{}\n",
        "x".repeat(2 * 1024 * 1024)
    );
    let r = app.deliver(raw.as_bytes()).await;
    assert_eq!(r.outcome, Outcome::TicketCreated);
    assert!(
        app.ticket(r.ticket.unwrap()).await.comments[0].body.len() >= 2 * 1024 * 1024,
        "nothing was cut"
    );
}

/// A batch (one transaction) decides exactly as one delivery at a time:
/// a reply threads onto a ticket created earlier in the same batch, a repeat
/// inside the batch is a duplicate, and refusals are recorded, not dropped.
/// A second batch threads onto, repeats and tags what the first committed.
/// Run on both stores: on PostgreSQL a batch reads ahead and holds its
/// inserts until commit (`Tx::look_ahead`).
async fn a_batch_records_each_message_as_if_delivered_alone(t: &TestApp) {
    let open = b"Message-ID: <batch-1@customer.test>\r\nFrom: alice@customer.test\r\nTo: support@example.test\r\nSubject: Batch\r\n\r\nFirst.\r\n".to_vec();
    let reply = b"Message-ID: <batch-2@customer.test>\r\nFrom: bob@customer.test\r\nTo: support@example.test\r\nIn-Reply-To: <batch-1@customer.test>\r\nSubject: Re: Batch\r\n\r\nSecond.\r\n".to_vec();
    let stranger = b"Message-ID: <batch-3@nowhere.test>\r\nFrom: x@nowhere.test\r\nTo: support@example.test\r\nSubject: Hi\r\n\r\nThird.\r\n".to_vec();
    let reports = ingest_batch(t, &[&open, &reply, &open, &stranger]).await;
    let outcomes: Vec<_> = reports.iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [
            Outcome::TicketCreated,
            Outcome::CommentAdded,
            Outcome::Duplicate,
            Outcome::Rejected
        ]
    );
    assert_eq!(reports[1].ticket, reports[0].ticket);
    assert_eq!(reports[2].ticket, reports[0].ticket);
    let id = reports[0].ticket.unwrap();
    let ticket = t.ticket(id).await;
    let bodies: Vec<_> = ticket.comments.iter().map(|c| c.body.trim()).collect();
    assert_eq!(bodies, ["First.", "Second."]);
    let comment_ids: Vec<_> = ticket.comments.iter().map(|c| c.id).collect();
    assert_eq!(
        [reports[0].comment, reports[1].comment],
        [Some(comment_ids[0]), Some(comment_ids[1])],
        "the reports name the stored comments"
    );
    let log = t.store().list_log(&LogFilter::default()).await.unwrap();
    assert_eq!(log.len(), 4, "one log row per delivery");
    let mut log_ids: Vec<_> = log.iter().map(|r| r.id).collect();
    log_ids.sort_unstable();
    assert_eq!(
        log_ids,
        reports.iter().map(|r| r.log_id).collect::<Vec<_>>(),
        "log ids in delivery order"
    );
    let row = t.store().log_row(reports[1].log_id).await.unwrap().unwrap();
    assert_eq!(row.comment, reports[1].comment);
    // Bob's reply notified Alice, about his comment.
    let outbox = t.outbox().await;
    assert!(
        outbox
            .iter()
            .any(|o| o.to == "alice@customer.test" && o.comment_id == reports[1].comment),
        "{outbox:?}"
    );

    let later = b"Message-ID: <batch-4@customer.test>\r\nFrom: alice@customer.test\r\nTo: support@example.test\r\nIn-Reply-To: <batch-2@customer.test>\r\nSubject: Re: Batch\r\n\r\nFourth.\r\n"
        .to_vec();
    let tagged = format!(
        "Message-ID: <batch-5@customer.test>\r\nFrom: bob@customer.test\r\nTo: support@example.test\r\nSubject: About [Support #{id}]\r\n\r\nFifth.\r\n"
    )
    .into_bytes();
    let reports = ingest_batch(t, &[&reply, &later, &tagged]).await;
    let outcomes: Vec<_> = reports.iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [
            Outcome::Duplicate,
            Outcome::CommentAdded,
            Outcome::CommentAdded
        ]
    );
    assert!(reports.iter().all(|r| r.ticket == Some(id)), "{reports:?}");
    let ticket = t.ticket(id).await;
    let bodies: Vec<_> = ticket.comments.iter().map(|c| c.body.trim()).collect();
    assert_eq!(bodies, ["First.", "Second.", "Fourth.", "Fifth."]);
}

async fn ingest_batch(t: &TestApp, raws: &[&Vec<u8>]) -> Vec<ticketgate::ingest::IngestReport> {
    let deliveries: Vec<_> = raws
        .iter()
        .map(|raw| ticketgate::ingest::Delivery {
            raw,
            origin: "batch",
            notify: true,
            ..Default::default()
        })
        .collect();
    t.app.ingestor.ingest_batch(&deliveries).await.unwrap()
}

/// A batch works out each message's reply, signature and attachment hashes on
/// another thread while it records the earlier ones; every comment must still
/// get its own message's content, whichever thread got there first.
async fn a_batch_keeps_each_message_s_own_reply_signature_and_files(t: &TestApp) {
    let mut raws = Vec::new();
    for i in 0..20 {
        // Every fifth opening message carries a file; the rest are plain text.
        let rest = if i % 5 == 0 {
            format!(
                "Content-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\nTicket {i}.\n\n-- \nAlice {i}\n--b\n\
                 Content-Type: application/octet-stream; name=\"f{i}.bin\"\nContent-Disposition: attachment; filename=\"f{i}.bin\"\n\n\
                 file {i}\n--b--"
            )
        } else {
            format!("\nTicket {i}.\n\n-- \nAlice {i}")
        };
        let open = format!(
            "From: alice@customer.test\nTo: support@example.test\nMessage-ID: <many-{i}@customer.test>\nSubject: Many {i}\nMIME-Version: 1.0\n{rest}\n"
        );
        raws.push(open.into_bytes());
        raws.push(message(
            "bob@customer.test",
            &format!("Message-ID: <many-{i}-re@customer.test>\nIn-Reply-To: <many-{i}@customer.test>\nSubject: Re: Many {i}"),
            &format!("Reply {i}.\n\nOn Mon, 2 Mar 2026 at 10:00, Alice <alice@customer.test> wrote:\n> Ticket {i}.\n"),
        ));
    }
    let refs: Vec<&Vec<u8>> = raws.iter().collect();
    let reports = ingest_batch(t, &refs).await;
    for i in 0..20 {
        let (open, reply) = (&reports[2 * i], &reports[2 * i + 1]);
        assert_eq!(
            (open.outcome, reply.outcome),
            (Outcome::TicketCreated, Outcome::CommentAdded),
            "message pair {i}"
        );
        assert_eq!(reply.ticket, open.ticket);
        let ticket = t.ticket(open.ticket.unwrap()).await;
        assert_eq!(ticket.subject, format!("Many {i}"));
        let got: Vec<_> = ticket
            .comments
            .iter()
            .map(|c| (c.body.trim(), c.signature.as_deref().map(str::trim)))
            .collect();
        let (first, second) = (format!("Ticket {i}."), format!("Reply {i}."));
        let signature = format!("Alice {i}");
        assert_eq!(
            got,
            [
                (first.as_str(), Some(signature.as_str())),
                (second.as_str(), None)
            ],
            "ticket of pair {i}"
        );
        let files = &ticket.comments[0].attachments;
        if i % 5 == 0 {
            assert_eq!(files.len(), 1, "pair {i}");
            let (owner, stored) = t.store().attachment(files[0].id).await.unwrap().unwrap();
            assert_eq!(owner, ticket.id);
            assert_eq!(stored.filename, format!("f{i}.bin"));
            assert_eq!(
                String::from_utf8_lossy(&stored.data).trim(),
                format!("file {i}")
            );
        } else {
            assert!(files.is_empty(), "pair {i}: {files:?}");
        }
    }

    // Past the reader's copy budget (4 MiB a batch), a delivery is prepared
    // where it is recorded; the small one after it still gets its own content.
    let big_file = "QUJD".repeat(5 << 18); // 5 MiB of base64, "ABC" repeated
    let big = format!(
        "From: alice@customer.test\nTo: support@example.test\nMessage-ID: <big@customer.test>\nSubject: Big\nMIME-Version: 1.0\n\
         Content-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\nA big one.\n--b\n\
         Content-Type: application/octet-stream\nContent-Disposition: attachment; filename=\"big.bin\"\nContent-Transfer-Encoding: base64\n\n\
         {big_file}\n--b--\n"
    )
    .into_bytes();
    let small = message(
        "bob@customer.test",
        "Message-ID: <big-re@customer.test>\nIn-Reply-To: <big@customer.test>\nSubject: Re: Big",
        "Got it.\n\n> A big one.\n",
    );
    let reports = ingest_batch(t, &[&big, &small]).await;
    assert_eq!(reports[1].ticket, reports[0].ticket);
    let ticket = t.ticket(reports[0].ticket.unwrap()).await;
    let bodies: Vec<_> = ticket.comments.iter().map(|c| c.body.trim()).collect();
    assert_eq!(bodies, ["A big one.", "Got it."]);
    let file = &ticket.comments[0].attachments[0];
    assert_eq!(file.size, 3 * (5 << 18), "QUJD decodes to ABC");
}

/// In a batch a new ticket's row may wait for the commit with everything
/// that refers to it; a command that changes the ticket at once (priority)
/// and a reply later in the batch must still find it.
async fn a_batch_applies_commands_to_the_tickets_it_opens(t: &TestApp) {
    let verified = "Authentication-Results: mx.example.test; dkim=pass header.d=example.test; dmarc=pass header.from=example.test";
    let first = message(
        "alice@customer.test",
        "Message-ID: <cmd-0@customer.test>\nSubject: Printer",
        "It jams.",
    );
    let staff = message(
        "sam@example.test",
        &format!("{verified}\nMessage-ID: <cmd-1@example.test>\nSubject: Outage at Customer"),
        "#priority P1\n#status in progress\nTheir site is down.",
    );
    let reply = message(
        "sam@example.test",
        &format!(
            "{verified}\nMessage-ID: <cmd-2@example.test>\nIn-Reply-To: <cmd-1@example.test>\nSubject: Re: Outage at Customer"
        ),
        "Still looking.",
    );
    // A status set on the first ticket by the next message of the batch.
    let blocked = message(
        "sam@example.test",
        &format!(
            "{verified}\nMessage-ID: <cmd-3@example.test>\nIn-Reply-To: <cmd-0@customer.test>\nSubject: Re: Printer"
        ),
        "#status blocked\nWaiting on the vendor.",
    );
    let reports = ingest_batch(t, &[&first, &blocked, &staff, &reply]).await;
    let outcomes: Vec<_> = reports.iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [
            Outcome::TicketCreated,
            Outcome::CommentAdded,
            Outcome::TicketCreated,
            Outcome::CommentAdded
        ]
    );
    assert_eq!(reports[1].ticket, reports[0].ticket);
    assert_eq!(reports[3].ticket, reports[2].ticket);
    let ticket = t.ticket(reports[2].ticket.unwrap()).await;
    assert_eq!(serde_json::to_value(ticket.priority).unwrap(), "P1");
    assert_eq!(serde_json::to_value(ticket.status).unwrap(), "in_progress");
    let bodies: Vec<_> = ticket
        .comments
        .iter()
        .filter(|c| c.source == "email")
        .map(|c| c.body.trim())
        .collect();
    assert_eq!(bodies, ["Their site is down.", "Still looking."]);
    let other = t.ticket(reports[0].ticket.unwrap()).await;
    assert_eq!(other.priority, None, "the other ticket has its own");
    assert_eq!(serde_json::to_value(other.status).unwrap(), "blocked");
}

#[tokio::test]
async fn a_batch_applies_commands_to_the_tickets_it_opens_in_sqlite() {
    a_batch_applies_commands_to_the_tickets_it_opens(&TestApp::new().await).await;
}

#[tokio::test]
async fn a_batch_applies_commands_to_the_tickets_it_opens_in_postgres() {
    a_batch_applies_commands_to_the_tickets_it_opens(&TestApp::postgres().await).await;
}

#[tokio::test]
async fn a_batch_keeps_each_message_s_own_reply_signature_and_files_in_sqlite() {
    a_batch_keeps_each_message_s_own_reply_signature_and_files(&TestApp::new().await).await;
}

#[tokio::test]
async fn a_batch_keeps_each_message_s_own_reply_signature_and_files_in_postgres() {
    a_batch_keeps_each_message_s_own_reply_signature_and_files(&TestApp::postgres().await).await;
}

#[tokio::test]
async fn a_batch_records_each_message_as_if_delivered_alone_in_sqlite() {
    a_batch_records_each_message_as_if_delivered_alone(&TestApp::new().await).await;
}

#[tokio::test]
async fn a_batch_records_each_message_as_if_delivered_alone_in_postgres() {
    a_batch_records_each_message_as_if_delivered_alone(&TestApp::postgres().await).await;
}

/// A stranger who sends Alice's Message-ID before Alice does is refused and
/// reserves nothing: Alice's mail opens its ticket, delivered alone or in one
/// batch with the stranger's. The stranger's row stays; replayed, it is a
/// duplicate of Alice's.
async fn a_refused_message_id_does_not_stop_its_owner_s_mail(t: &TestApp) {
    let stranger = b"Message-ID: <owned@customer.test>\r\nFrom: x@nowhere.test\r\nTo: support@example.test\r\nSubject: Hi\r\n\r\nFirst.\r\n".to_vec();
    let alice = b"Message-ID: <owned@customer.test>\r\nFrom: alice@customer.test\r\nTo: support@example.test\r\nSubject: Printer\r\n\r\nPrinter 3 is offline.\r\n".to_vec();
    let refused = t.deliver(&stranger).await;
    assert_eq!(refused.outcome, Outcome::Rejected);
    let genuine = t.deliver(&alice).await;
    assert_eq!(genuine.outcome, Outcome::TicketCreated);
    let ticket = t.ticket(genuine.ticket.unwrap()).await;
    assert_eq!(ticket.comments[0].body.trim(), "Printer 3 is offline.");
    // Alice's own re-delivery is still a duplicate.
    let again = t.deliver(&alice).await;
    assert_eq!(
        (again.outcome, again.ticket),
        (Outcome::Duplicate, genuine.ticket)
    );
    let replayed = t.app.ingestor.replay(refused.log_id).await.unwrap();
    assert_eq!(
        (replayed.outcome, replayed.ticket),
        (Outcome::Duplicate, genuine.ticket)
    );

    // The same in one batch, refused first.
    let stranger = b"Message-ID: <owned2@customer.test>\r\nFrom: x@nowhere.test\r\nTo: support@example.test\r\nSubject: Hi\r\n\r\nFirst.\r\n".to_vec();
    let alice = b"Message-ID: <owned2@customer.test>\r\nFrom: alice@customer.test\r\nTo: support@example.test\r\nSubject: Scanner\r\n\r\nScanner 2 jams.\r\n".to_vec();
    let reports = ingest_batch(t, &[&stranger, &alice, &alice]).await;
    let outcomes: Vec<_> = reports.iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [
            Outcome::Rejected,
            Outcome::TicketCreated,
            Outcome::Duplicate
        ]
    );
    let ticket = t.ticket(reports[1].ticket.unwrap()).await;
    assert_eq!(ticket.comments[0].body.trim(), "Scanner 2 jams.");
    let log = t.store().list_log(&LogFilter::default()).await.unwrap();
    assert_eq!(log.len(), 7, "one row per delivery, refused ones kept");
}

#[tokio::test]
async fn a_refused_message_id_does_not_stop_its_owner_s_mail_in_sqlite() {
    a_refused_message_id_does_not_stop_its_owner_s_mail(&TestApp::new().await).await;
}

#[tokio::test]
async fn a_refused_message_id_does_not_stop_its_owner_s_mail_in_postgres() {
    a_refused_message_id_does_not_stop_its_owner_s_mail(&TestApp::postgres().await).await;
}

/// `(to, template)` of the mails sent since the first `skip`.
fn sent(mails: &[common::Mail], skip: usize) -> Vec<(String, String)> {
    mails[skip..]
        .iter()
        .map(|m| (m.to.clone(), m.subject.clone()))
        .collect()
}

#[tokio::test]
async fn every_new_ticket_is_acknowledged_up_to_the_per_address_cap() {
    let app = TestApp::with_settings(|s| {
        s.intake.auto_reply_limit = ticketgate::config::parse_rate("2/1h").unwrap();
    })
    .await;
    let mut tickets = Vec::new();
    for n in 1..=3 {
        let raw = message(
            "Alice Anders <alice@customer.test>",
            &format!("Message-ID: <t{n}@customer.test>\nSubject: Problem number {n}"),
            "Something broke.",
        );
        let r = app.deliver(&raw).await;
        assert_eq!(r.outcome, Outcome::TicketCreated);
        tickets.push(r.ticket.unwrap());
    }
    let mails = app.mails().await;
    let acks: Vec<&common::Mail> = mails
        .iter()
        .filter(|m| m.to == "alice@customer.test")
        .collect();
    // Two within the cap, each naming its own ticket; the third suppressed.
    assert_eq!(acks.len(), 2, "{:?}", sent(&mails, 0));
    for (ack, id) in acks.iter().zip(&tickets) {
        ack.assert_reads_well();
        assert!(
            ack.subject.starts_with(&format!("[Support #{id}]")),
            "{}",
            ack.subject
        );
        assert!(
            ack.text.contains(&format!("opened ticket #{id}")),
            "{}",
            ack.text
        );
    }
    // The team hears of every ticket, capped or not.
    assert_eq!(
        mails.iter().filter(|m| m.to == "team@example.test").count(),
        3
    );
}

#[tokio::test]
async fn a_second_ticket_within_the_refusal_window_still_gets_its_acknowledgement() {
    let app = TestApp::new().await;
    for n in 1..=2 {
        let raw = message(
            "alice@customer.test",
            &format!("Message-ID: <w{n}@customer.test>\nSubject: Question {n}"),
            "Hello.",
        );
        app.deliver(&raw).await;
    }
    // A stranger is refused once per window, however often they write.
    for n in 1..=2 {
        let raw = message(
            "stranger@unknown.test",
            &format!("Message-ID: <x{n}@unknown.test>\nSubject: Hi {n}"),
            "Hello.",
        );
        app.deliver(&raw).await;
    }
    let mails = app.mails().await;
    let per = common::count_per_recipient(&mails);
    assert!(
        per.contains(&("alice@customer.test".to_string(), 2)),
        "{per:?}"
    );
    assert!(
        per.contains(&("stranger@unknown.test".to_string(), 1)),
        "{per:?}"
    );
}

#[tokio::test]
async fn list_or_help_with_a_greeting_answers_and_opens_no_ticket() {
    let app = TestApp::new().await;
    let cases = [
        ("alice@customer.test", "l1", "#list\n\nThanks,\nAlice"),
        ("alice@customer.test", "h1", "#help\nHi there!"),
        ("sam@example.test", "h2", "#help"),
    ];
    for (from, id, body) in cases {
        let raw = message(
            from,
            &format!("Message-ID: <{id}@x.test>\nSubject: list"),
            body,
        );
        let r = app.deliver(&raw).await;
        assert_eq!(
            (r.outcome, r.ticket),
            (Outcome::CommandOnly, None),
            "{body}"
        );
    }
    assert!(app.store().ticket_view(1).await.unwrap().is_none());
    let mails = app.mails().await;
    assert_eq!(
        common::count_per_recipient(&mails),
        [
            ("alice@customer.test".to_string(), 2),
            ("sam@example.test".to_string(), 1)
        ]
    );
    for m in &mails {
        m.assert_reads_well();
    }
    let customer_help = &mails[1];
    assert_eq!(
        customer_help.subject,
        "Commands you can use with Example Support"
    );
    assert!(
        customer_help.text.contains("#share ADDRESS"),
        "{}",
        customer_help.text
    );
    assert!(
        !customer_help.text.contains("#priority"),
        "{}",
        customer_help.text
    );
    let staff_help = &mails[2];
    assert!(
        staff_help.text.contains("#priority P1"),
        "{}",
        staff_help.text
    );
    assert!(
        staff_help
            .text
            .contains("one of: New, In Progress, Blocked, Closed, Closed - Escalated to TEM"),
        "{}",
        staff_help.text
    );

    // A request after the command is a ticket.
    let raw = message(
        "alice@customer.test",
        "Message-ID: <l2@x.test>\nSubject: Export",
        "#list\nThe export to CSV drops the last row since yesterday, please check.",
    );
    assert_eq!(app.deliver(&raw).await.outcome, Outcome::TicketCreated);
}

#[tokio::test]
async fn help_answers_in_the_sender_s_language() {
    let app = TestApp::new().await;
    let org = app
        .store()
        .find_org("customer-site-a")
        .await
        .unwrap()
        .unwrap();
    app.store()
        .add_user(&ticketgate::store::NewUser {
            email: EmailAddress::parse("kenji@customer.test").unwrap(),
            name: "山田 健二".into(),
            role: ticketgate::domain::ticket::Role::Customer,
            org_id: Some(org.id),
            locale: "ja".into(),
        })
        .await
        .unwrap();
    let raw = message(
        "kenji@customer.test",
        "Message-ID: <hj@x.test>\nSubject: help",
        "#help\nよろしくお願いします。",
    );
    assert_eq!(app.deliver(&raw).await.outcome, Outcome::CommandOnly);
    let mails = app.mails().await;
    assert_eq!(mails.len(), 1);
    mails[0].assert_reads_well();
    assert_eq!(
        mails[0].subject,
        "【Example Support】ご利用いただけるコマンド一覧"
    );
    assert!(mails[0].text.contains("山田 健二 様"), "{}", mails[0].text);
    assert!(
        mails[0].text.contains("#share アドレス"),
        "{}",
        mails[0].text
    );
    assert!(mails[0].html.contains("この一覧"), "{}", mails[0].html);
}

#[tokio::test]
async fn a_ticket_shared_by_a_rule_names_the_support_desk() {
    let app = TestApp::new().await;
    app.deliver_file("_base/01_alice_opens_ticket.eml").await;
    let mails = app.mails().await;
    let to_dave: Vec<_> = mails
        .iter()
        .filter(|m| m.to == "dave@example.test")
        .collect();
    assert_eq!(to_dave.len(), 1);
    to_dave[0].assert_reads_well();
    assert!(
        to_dave[0]
            .text
            .contains("Example Support shared ticket #1 with you."),
        "{}",
        to_dave[0].text
    );
    assert!(
        to_dave[0]
            .html
            .contains("Example Support shared ticket <strong>#1</strong> with you."),
        "{}",
        to_dave[0].html
    );
}

#[tokio::test]
async fn quarantined_mail_alerts_the_team_once_per_window_with_replay_commands() {
    let app = TestApp::new().await;
    app.deliver_file("_base/01_alice_opens_ticket.eml").await;
    let before = app.mails().await.len();
    let carol = message(
        "carol@other.test",
        "Message-ID: <q1@other.test>\nIn-Reply-To: <base-1@customer.test>\nSubject: Re: Login page",
        "I have this too.",
    );
    let stranger = message(
        "someone@nowhere.test",
        "Message-ID: <q2@nowhere.test>\nIn-Reply-To: <base-1@customer.test>\nSubject: Re: Login page",
        "Me too.",
    );
    let mut ids = Vec::new();
    for raw in [&carol, &stranger] {
        let r = app.deliver(raw).await;
        assert_eq!(r.outcome, Outcome::Quarantined);
        ids.push(r.log_id);
    }
    // Each sender is told; the team's alert waits for the window to close.
    let mails = app.mails().await.split_off(before);
    assert_eq!(
        common::count_per_recipient(&mails),
        [
            ("carol@other.test".to_string(), 1),
            ("someone@nowhere.test".to_string(), 1)
        ]
    );
    let alerts: Vec<_> = app
        .outbox()
        .await
        .into_iter()
        .filter(|r| r.template == "quarantine_alert")
        .collect();
    assert_eq!(alerts.len(), 1, "one alert per window");
    assert_eq!(alerts[0].to, "team@example.test");

    // The window closes: one mail listing both, with their replay commands.
    app.sqlite_execute(
        "UPDATE outbox SET next_attempt_at = '2000-01-01T00:00:00.000000Z' WHERE template = 'quarantine_alert'",
        [],
    )
    .await;
    let sent_before = before + mails.len();
    let all = app.mails().await;
    assert_eq!(all.len(), sent_before + 1, "the alert and nothing else");
    let alerts: Vec<_> = all
        .iter()
        .filter(|m| m.subject.starts_with("Quarantined mail"))
        .collect();
    assert_eq!(alerts.len(), 1);
    let alert = alerts[0];
    assert_eq!(alert.to, "team@example.test");
    alert.assert_reads_well();
    assert_eq!(alert.subject, "Quarantined mail to review (2)");
    for id in &ids {
        assert!(
            alert
                .text
                .contains(&format!("ticketgate messages replay {id}\n")),
            "{}",
            alert.text
        );
        assert!(
            alert
                .html
                .contains(&format!("ticketgate messages replay {id}</code>")),
            "{}",
            alert.html
        );
    }
    assert!(
        alert
            .text
            .contains("Message 2 from carol@other.test on ticket #1"),
        "{}",
        alert.text
    );
    assert!(
        alert.text.contains("Why: the sender is not registered."),
        "{}",
        alert.text
    );
}

#[tokio::test]
async fn the_quarantine_alert_links_each_message_to_its_portal_page_and_leaves_out_discarded_ones()
{
    let app = TestApp::with_settings(|s| {
        s.web.listen = "127.0.0.1:0".into();
        s.web.base_url = "https://support.example.test/".into();
    })
    .await;
    app.deliver_file("_base/01_alice_opens_ticket.eml").await;
    let mut ids = Vec::new();
    for (n, from) in [
        "carol@other.test",
        "someone@nowhere.test",
        "spam@nowhere.test",
    ]
    .into_iter()
    .enumerate()
    {
        let raw = message(
            from,
            &format!(
                "Message-ID: <link{n}@x.test>\nIn-Reply-To: <base-1@customer.test>\nSubject: Re: Login page"
            ),
            "Me too.",
        );
        let r = app.deliver(&raw).await;
        assert_eq!(r.outcome, Outcome::Quarantined);
        ids.push(r.log_id);
    }
    let discarded = ids.pop().unwrap();
    ticketgate::manage::discard_message(app.store().as_ref(), discarded)
        .await
        .unwrap();
    app.sqlite_execute(
        "UPDATE outbox SET next_attempt_at = '2000-01-01T00:00:00.000000Z' WHERE template = 'quarantine_alert'",
        [],
    )
    .await;
    let mails = app.mails().await;
    let alert = mails
        .iter()
        .find(|m| m.subject.starts_with("Quarantined mail"))
        .expect("the alert");
    alert.assert_reads_well();
    // Escaped as every value in an HTML mail is; a browser reads `/`.
    let html = alert.html.replace("&#x2f;", "/");
    for id in &ids {
        let url = format!("https://support.example.test/staff/quarantine/{id}");
        assert!(alert.text.contains(&format!("{url}\n")), "{}", alert.text);
        assert!(html.contains(&format!("href=\"{url}\"")), "{html}");
    }
    assert!(
        !alert.text.contains(&format!("Message {discarded} ")),
        "a discarded message is not listed: {}",
        alert.text
    );
}
