//! Running a desk by mail (docs/contract.md, "Desk"): owners and close
//! reasons through commands, with who is told and what the JSON says.

use crate::common;

use common::TestApp;
use ticketgate::domain::outcome::Outcome;
use ticketgate::domain::token;
use ticketgate::store::OutboxRow;

fn reply(from: &str, id: &str, headers: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\nTo: support@example.test\nMessage-ID: <{id}@x.test>\nIn-Reply-To: <base-1@customer.test>\nSubject: Re: Login page\n{headers}\n\n{body}\n"
    )
    .into_bytes()
}

fn staff() -> String {
    "Authentication-Results: mx.example.test; dkim=pass header.d=example.test; dmarc=pass header.from=example.test".into()
}

/// Alice's own reply address on ticket #1: her reply is proven.
fn alice_token() -> String {
    let token = token::reply_address(
        &"support@example.test".parse().unwrap(),
        b"test-secret",
        1,
        1,
    );
    format!("Delivered-To: {token}")
}

fn json(app_view: &ticketgate::store::TicketView) -> serde_json::Value {
    serde_json::to_value(ticketgate::api::wire::TicketView::from(app_view.clone())).unwrap()
}

async fn base() -> (TestApp, usize) {
    let app = TestApp::new().await;
    app.deliver_file("_base/01_alice_opens_ticket.eml").await;
    let n = app.outbox().await.len();
    (app, n)
}

fn who(rows: &[OutboxRow]) -> Vec<String> {
    rows.iter()
        .map(|r| format!("{} {}", r.to, r.template))
        .collect()
}

#[tokio::test]
async fn staff_assign_by_handle_and_the_owner_follows_and_is_told() {
    let (app, since) = base().await;
    let raw = reply(
        "sam@example.test",
        "a1",
        &staff(),
        "#assign @dave\nDave knows this one.",
    );
    assert_eq!(app.deliver(&raw).await.outcome, Outcome::CommentAdded);
    let t = json(&app.ticket(1).await);
    assert_eq!(t["owner"], "dave@example.test");
    let dave = t["followers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["email"] == "dave@example.test")
        .expect("the owner follows");
    // Dave was already a follower (the org's lead): his place stays, he owns it now.
    assert!(
        dave["source"] == "share" || dave["source"] == "owner",
        "{dave}"
    );
    let kinds: Vec<&str> = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"owner_set"), "{kinds:?}");
    let rows = app.outbox().await.split_off(since);
    let to_dave: Vec<&OutboxRow> = rows
        .iter()
        .filter(|r| r.to == "dave@example.test")
        .collect();
    assert_eq!(
        to_dave.len(),
        1,
        "one mail to the new owner: {:?}",
        who(&rows)
    );
    assert!(
        rows.iter().all(|r| r.to != "sam@example.test"),
        "the author is not told: {:?}",
        who(&rows)
    );

    // `#assign me` and `#unassign`.
    app.deliver(&reply("sam@example.test", "a2", &staff(), "#assign me"))
        .await;
    assert_eq!(json(&app.ticket(1).await)["owner"], "sam@example.test");
    app.deliver(&reply("sam@example.test", "a3", &staff(), "#unassign"))
        .await;
    let t = json(&app.ticket(1).await);
    assert!(t["owner"].is_null(), "{}", t["owner"]);
    let kinds: Vec<&str> = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"owner_cleared"), "{kinds:?}");

    // Listed by owner.
    app.deliver(&reply(
        "sam@example.test",
        "a4",
        &staff(),
        "#assign dave@example.test",
    ))
    .await;
    let mine = app
        .store()
        .list_tickets(&ticketgate::store::TicketFilter {
            owner: Some(ticketgate::store::OwnerFilter::Is(
                "dave@example.test".parse().unwrap(),
            )),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(mine.iter().map(|t| t.id).collect::<Vec<_>>(), [1]);
    let nobody = app
        .store()
        .list_tickets(&ticketgate::store::TicketFilter {
            owner: Some(ticketgate::store::OwnerFilter::Nobody),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(nobody.is_empty());
}

#[tokio::test]
async fn only_proven_staff_assign_and_only_to_staff() {
    let (app, since) = base().await;
    // A customer, proven by her own token: refused, told once.
    app.deliver(&reply(
        "alice@customer.test",
        "b1",
        &alice_token(),
        "#assign @sam\nPlease take it.",
    ))
    .await;
    assert!(json(&app.ticket(1).await)["owner"].is_null());
    // A forged staff From: refused.
    app.deliver(&reply("sam@example.test", "b2", "", "#assign me"))
        .await;
    assert!(json(&app.ticket(1).await)["owner"].is_null());
    // Staff naming a customer: refused.
    app.deliver(&reply(
        "sam@example.test",
        "b3",
        &staff(),
        "#assign alice@customer.test",
    ))
    .await;
    assert!(json(&app.ticket(1).await)["owner"].is_null());
    let rows = app.outbox().await.split_off(since);
    let failed: Vec<&OutboxRow> = rows
        .iter()
        .filter(|r| r.template == "command_failed")
        .collect();
    assert_eq!(
        failed.iter().map(|r| r.to.as_str()).collect::<Vec<_>>(),
        [
            "alice@customer.test",
            "sam@example.test",
            "sam@example.test"
        ],
        "{:?}",
        who(&rows)
    );
}

#[tokio::test]
async fn a_close_records_why_and_a_reopen_clears_it() {
    let (app, since) = base().await;
    // Bare close by the requester: by_customer.
    app.deliver(&reply(
        "alice@customer.test",
        "c1",
        &alice_token(),
        "#status closed\nWorks now.",
    ))
    .await;
    let t = json(&app.ticket(1).await);
    assert_eq!(t["status"], "closed");
    assert_eq!(t["close_reason"], "by_customer");
    let rows = app.outbox().await.split_off(since);
    let to_bob = rows
        .iter()
        .find(|r| r.to == "bob@customer.test")
        .expect("Bob is told");
    assert_eq!(
        to_bob.context["event"]["reason"], "by_customer",
        "{:?}",
        to_bob.context
    );

    // Her reply reopens (the shipped rule): the reason is gone.
    app.deliver(&reply(
        "alice@customer.test",
        "c2",
        &alice_token(),
        "It broke again.",
    ))
    .await;
    let t = json(&app.ticket(1).await);
    assert_eq!(t["status"], "new");
    assert!(t["close_reason"].is_null(), "{}", t["close_reason"]);

    // Staff: a reason typed loosely, and a bare close that means resolved.
    app.deliver(&reply(
        "sam@example.test",
        "c3",
        &staff(),
        "#status closed feature request",
    ))
    .await;
    assert_eq!(
        json(&app.ticket(1).await)["close_reason"],
        "feature_request"
    );
    app.deliver(&reply("sam@example.test", "c4", &staff(), "#reopen"))
        .await;
    app.deliver(&reply("sam@example.test", "c5", &staff(), "#close"))
        .await;
    assert_eq!(json(&app.ticket(1).await)["close_reason"], "resolved");
    app.deliver(&reply(
        "sam@example.test",
        "c6",
        &staff(),
        "#status closed by-customer",
    ))
    .await;
    let t = json(&app.ticket(1).await);
    assert_eq!(t["close_reason"], "by_customer");
    let reasons: Vec<&serde_json::Value> = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "status_changed" && e["data"]["to"] == "closed")
        .map(|e| &e["data"]["reason"])
        .collect();
    assert_eq!(
        reasons,
        ["by_customer", "feature_request", "resolved", "by_customer"]
    );

    // Not a reason: refused, the ticket stays as it was.
    let r = app
        .deliver(&reply(
            "sam@example.test",
            "c7",
            &staff(),
            "#status closed because",
        ))
        .await;
    assert_ne!(r.outcome, Outcome::Quarantined);
    assert_eq!(json(&app.ticket(1).await)["close_reason"], "by_customer");
}
