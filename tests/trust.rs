//! Issue 18, "unproven senders must gain nothing": a forged From, a hostile
//! Authentication-Results or a look-alike address changes nothing it should not.

mod common;

use common::TestApp;
use ticketgate::domain::outcome::Outcome;

/// Alice's ticket #1 (Bob in Cc follows it).
async fn alices_ticket(app: &TestApp) -> i64 {
    app.deliver_file("_base/01_alice_opens_ticket.eml")
        .await
        .ticket
        .expect("ticket opened")
}

#[tokio::test]
async fn a_message_with_two_from_fields_is_refused_and_changes_nothing() {
    let app = TestApp::new().await;
    let t = alices_ticket(&app).await;
    let before = app.outbox().await.len();
    // DMARC passes for the first From (the attacker's); a reader of the last
    // one would take it for Alice.
    let new = app
        .deliver(
            b"From: mallory@evil.test\nFrom: alice@customer.test\nTo: support@example.test\n\
              Authentication-Results: mx.example.test; dmarc=pass header.from=evil.test\n\
              Message-ID: <two-from-1@evil.test>\nSubject: Refund\n\nSend the refund to me.\n",
        )
        .await;
    assert_eq!(
        (new.outcome, new.reason.as_deref(), new.ticket),
        (Outcome::Rejected, Some("multiple_from"), None)
    );
    let reply = app
        .deliver(
            b"From: mallory@evil.test\nFrom: alice@customer.test\nTo: support@example.test\n\
              Message-ID: <two-from-2@evil.test>\nIn-Reply-To: <base-1@customer.test>\n\
              Subject: Re: Login page\n\n#unshare bob@customer.test\nAll fixed, close it.\n",
        )
        .await;
    assert_eq!(
        (reply.outcome, reply.reason.as_deref(), reply.ticket),
        (Outcome::Quarantined, Some("multiple_from"), Some(t))
    );
    let ticket = app.ticket(t).await;
    assert_eq!(ticket.comments.len(), 1, "no comment added");
    assert!(
        ticket
            .followers
            .iter()
            .any(|f| f.email == "bob@customer.test"),
        "bob still follows"
    );
    assert_eq!(app.outbox().await.len(), before, "nobody was emailed");
}
