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

/// A desk that works around the clock: business time is calendar time,
/// so a test can say exactly when each alarm is due.
async fn always_open() -> TestApp {
    TestApp::with_settings(|s| {
        s.business.days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
            .map(String::from)
            .to_vec();
        s.business.hours = "00:00-24:00".into();
    })
    .await
}

async fn desk(app: &TestApp, id: i64) -> ticketgate::store::Desk {
    let mut tx = app.store().begin().await.unwrap();
    tx.desk(id).await.unwrap().expect("the ticket exists")
}

fn events(app_view: &ticketgate::store::TicketView, kind: &str) -> Vec<serde_json::Value> {
    json(app_view)["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .map(|e| e["data"].clone())
        .collect()
}

#[tokio::test]
async fn a_p1_ticket_is_warned_then_breached_and_only_its_owner_is_told() {
    let app = always_open().await;
    app.deliver_file("_base/01_alice_opens_ticket.eml").await;
    // Internal: the response clock keeps running.
    app.deliver(&reply(
        "sam@example.test",
        "p1",
        &staff(),
        "#priority P1\n#assign @dave\n#internal\nOn it.",
    ))
    .await;
    let d = desk(&app, 1).await;
    let response_due = d.response_due.expect("P1 has a response target");
    assert_eq!(response_due - d.created_at, time::Duration::hours(1));
    let resolve_due = d.resolve_due.expect("P1 has a resolution target");
    assert_eq!(resolve_due - d.created_at, time::Duration::hours(8));
    assert_eq!(
        d.next_alarm_at,
        Some(d.created_at + time::Duration::minutes(48)),
        "80% of an hour"
    );
    let t = json(&app.ticket(1).await);
    assert_eq!(
        t["response_due"],
        ticketgate::store::format_ts(response_due)
    );
    let before = app.outbox().await.len();

    let service = app.app.tickets();
    let nothing = service
        .tick(d.created_at + time::Duration::minutes(47))
        .await
        .unwrap();
    assert_eq!(
        nothing,
        Default::default(),
        "nothing before the warning point"
    );
    let warned = service
        .tick(d.created_at + time::Duration::minutes(49))
        .await
        .unwrap();
    assert_eq!(warned.warned, 1);
    // A second pass, or a second instance, at the same moment: nothing more.
    assert_eq!(
        service
            .tick(d.created_at + time::Duration::minutes(50))
            .await
            .unwrap(),
        Default::default()
    );
    let breached = service
        .tick(response_due + time::Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(breached.breached, 1);
    let rows = app.outbox().await.split_off(before);
    assert_eq!(
        who(&rows),
        [
            "dave@example.test clock_warning",
            "dave@example.test clock_breached"
        ],
        "the owner alone, once each"
    );
    assert_eq!(rows[0].context["event"]["clock"], "response");
    let mails: Vec<_> = rows.iter().map(|r| app.compose(r)).collect();
    for (row, m) in rows.iter().zip(&mails) {
        // The same row for a Japanese reader.
        let ja = app.compose(&OutboxRow {
            locale: "ja".into(),
            ..row.clone()
        });
        for m in [m, &ja] {
            m.assert_reads_well();
            if std::env::var("SHOW_MAIL").is_ok() {
                println!("=== {} | {}\n{}", m.to, m.subject, m.text);
            }
        }
        assert!(
            ja.text.contains("期限") && !ja.text.contains("due"),
            "{}",
            ja.text
        );
    }
    assert!(
        mails[0].text.contains("first response of ticket #1 is due"),
        "{}",
        mails[0].text
    );
    assert!(
        mails[1].text.contains("is now overdue"),
        "{}",
        mails[1].text
    );
    let view = app.ticket(1).await;
    assert_eq!(events(&view, "clock_warned").len(), 1);
    assert_eq!(events(&view, "clock_breached")[0]["clock"], "response");

    // A public answer stops the response clock; the resolution one rings next.
    app.deliver(&reply(
        "dave@example.test",
        "p2",
        &staff(),
        "Fixed the config, please retry.",
    ))
    .await;
    let d = desk(&app, 1).await;
    assert!(d.responded_at.is_some());
    assert_eq!(
        d.next_alarm_at,
        Some(d.created_at + time::Duration::minutes(384)),
        "80% of 8 hours"
    );
    // Unowned now: the team is told.
    app.deliver(&reply("sam@example.test", "p3", &staff(), "#unassign"))
        .await;
    let before = app.outbox().await.len();
    let done = service.tick(resolve_due).await.unwrap();
    assert_eq!(
        (done.warned, done.breached),
        (0, 1),
        "at the due time only the breach is sent"
    );
    let rows = app.outbox().await.split_off(before);
    assert_eq!(who(&rows), ["team@example.test clock_breached"]);
}

#[tokio::test]
async fn blocked_pauses_the_resolution_clock_and_closing_stops_it() {
    let app = always_open().await;
    app.deliver_file("_base/01_alice_opens_ticket.eml").await;
    app.deliver(&reply(
        "sam@example.test",
        "q1",
        &staff(),
        "#priority P1\n#status blocked\n#internal\nWaiting on Alice.",
    ))
    .await;
    let d = desk(&app, 1).await;
    assert!(d.resolve_due.is_none(), "paused while Blocked");
    assert!(d.response_due.is_some(), "the response clock never pauses");
    app.deliver(&reply(
        "sam@example.test",
        "q2",
        &staff(),
        "#status in progress\n#internal\nBack on it.",
    ))
    .await;
    let d = desk(&app, 1).await;
    let due = d.resolve_due.expect("running again");
    let spent = time::Duration::seconds(d.resolve_spent.unwrap());
    let since = d.resolve_since.unwrap();
    assert_eq!(due, since + time::Duration::hours(8) - spent);
    app.deliver(&reply("sam@example.test", "q3", &staff(), "#close"))
        .await;
    let d = desk(&app, 1).await;
    assert!(
        d.resolve_due.is_none() && d.next_alarm_at.is_none(),
        "{d:?}"
    );
}

#[tokio::test]
async fn a_blocked_ticket_is_reminded_then_closed_as_unanswered() {
    let app = TestApp::new().await;
    app.deliver_file("_base/01_alice_opens_ticket.eml").await;
    app.deliver(&reply(
        "sam@example.test",
        "r1",
        &staff(),
        "#status blocked\nCould you send the log file?",
    ))
    .await;
    let quiet_since = desk(&app, 1).await.updated_at;
    let before = app.outbox().await.len();
    let service = app.app.tickets();
    let day = time::Duration::days(1);
    assert_eq!(
        service
            .tick(quiet_since + 3 * day - time::Duration::minutes(1))
            .await
            .unwrap()
            .idle_fired,
        0
    );
    assert_eq!(
        service
            .tick(quiet_since + 3 * day)
            .await
            .unwrap()
            .idle_fired,
        1
    );
    assert_eq!(
        service
            .tick(quiet_since + 3 * day + time::Duration::hours(1))
            .await
            .unwrap()
            .idle_fired,
        0
    );
    let rows = app.outbox().await.split_off(before);
    assert_eq!(
        who(&rows),
        ["alice@customer.test reminder"],
        "the requester alone"
    );
    // The scheduler's scan skips the spell it answered: no write per pass.
    let scan = |kind: &'static str| {
        let store = app.store().clone();
        async move {
            let blocked = ticketgate::domain::ticket::Status::Blocked;
            let start = (time::OffsetDateTime::UNIX_EPOCH, 0);
            store
                .idle_tickets(kind, blocked, quiet_since + 4 * day, start, 10)
                .await
                .unwrap()
        }
    };
    assert!(
        scan("idle: remind the customer of a ticket waiting on them")
            .await
            .is_empty()
    );
    assert_eq!(
        scan("idle: close a ticket the customer left unanswered")
            .await
            .len(),
        1
    );
    let view = app.ticket(1).await;
    assert_eq!(events(&view, "reminder_sent")[0]["template"], "reminder");
    assert_eq!(serde_json::to_value(view.status).unwrap(), "blocked");

    let before = app.outbox().await.len();
    assert_eq!(
        service
            .tick(quiet_since + 6 * day)
            .await
            .unwrap()
            .idle_fired,
        1
    );
    let t = json(&app.ticket(1).await);
    assert_eq!(t["status"], "closed");
    assert_eq!(t["close_reason"], "no_response");
    let rows = app.outbox().await.split_off(before);
    let mails: Vec<_> = rows.iter().map(|r| app.compose(r)).collect();
    for m in &mails {
        m.assert_reads_well();
        if std::env::var("SHOW_MAIL").is_ok() {
            println!("=== {} | {}\n{}", m.to, m.subject, m.text);
        }
    }
    let mut got = who(&rows);
    got.sort();
    assert_eq!(
        got,
        [
            "alice@customer.test closed_no_response",
            "bob@customer.test status_changed",
            "dave@example.test status_changed",
            "team@example.test status_changed",
        ],
        "one mail each; the requester gets the rule's words"
    );
    // A reply starts a new quiet spell: nothing fires before another 3 days.
    app.deliver(&reply(
        "alice@customer.test",
        "r2",
        &alice_token(),
        "Here is the log.",
    ))
    .await;
    assert_eq!(
        service
            .tick(quiet_since + 7 * day)
            .await
            .unwrap()
            .idle_fired,
        0
    );
}

#[tokio::test]
async fn two_instances_on_postgresql_send_each_reminder_and_alarm_once() {
    let app = TestApp::postgres().await;
    // A second instance: its own pool, the same database.
    let other = ticketgate::app::App::open(app.app.settings.clone())
        .await
        .expect("second instance");
    app.deliver_file("_base/01_alice_opens_ticket.eml").await;
    // Internal: no answer yet, so the response clock runs (Blocked pauses
    // only the resolution's).
    app.deliver(&reply(
        "sam@example.test",
        "t1",
        &staff(),
        "#priority P1\n#status blocked\n#assign me\n#internal\nAsked Alice for the log by phone.",
    ))
    .await;
    let d = desk(&app, 1).await;
    let quiet_since = d.updated_at;
    let warn_at = d.next_alarm_at.expect("the response clock's warning");
    let due = d.response_due.expect("P1 has a response target");
    let before = app.outbox().await.len();
    let (one, two) = (app.app.tickets(), other.tickets());
    // Each pass at the same moments on both, at once: the response clock
    // (never paused) warns and breaches, the idle rules fire.
    let day = time::Duration::days(1);
    let mut total = ticketgate::tickets::Ticked::default();
    let mut moments = [warn_at, due, quiet_since + 3 * day, quiet_since + 6 * day];
    moments.sort();
    for at in moments {
        let (a, b) = tokio::join!(one.tick(at), two.tick(at));
        let (a, b) = (a.unwrap(), b.unwrap());
        total.warned += a.warned + b.warned;
        total.breached += a.breached + b.breached;
        total.idle_fired += a.idle_fired + b.idle_fired;
    }
    assert_eq!(
        (total.warned, total.breached, total.idle_fired),
        (1, 1, 2),
        "{total:?}"
    );
    let rows = app.outbox().await.split_off(before);
    let mut got = who(&rows);
    got.sort();
    assert_eq!(
        got,
        [
            "alice@customer.test closed_no_response",
            "alice@customer.test reminder",
            "bob@customer.test status_changed",
            "dave@example.test status_changed",
            "sam@example.test clock_breached",
            "sam@example.test clock_warning",
            "sam@example.test status_changed",
            "team@example.test status_changed",
        ],
        "the owner (following as owner) and everyone else, once each"
    );
    let view = app.ticket(1).await;
    assert_eq!(events(&view, "reminder_sent").len(), 2);
    assert_eq!(events(&view, "clock_warned").len(), 1);
    assert_eq!(events(&view, "clock_breached").len(), 1);
}

/// A mail of commands only, to the support address.
fn to_desk(from: &str, id: &str, headers: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\nTo: support@example.test\nMessage-ID: <{id}@x.test>\nSubject: list\n{headers}\n\n{body}\n"
    )
    .into_bytes()
}

async fn listed(app: &TestApp, since: usize, to: &str) -> Vec<i64> {
    let rows = app.outbox().await.split_off(since);
    let answer = rows
        .iter()
        .find(|r| r.template == "list_answer" && r.to == to)
        .unwrap_or_else(|| panic!("a list answer to {to}: {:?}", who(&rows)));
    answer.context["event"]["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn staff_list_their_own_the_unassigned_or_all_open_tickets() {
    let (app, _) = base().await;
    let n = app.outbox().await.len();
    app.deliver(&to_desk(
        "sam@example.test",
        "l1",
        &staff(),
        "#list unassigned",
    ))
    .await;
    assert_eq!(listed(&app, n, "sam@example.test").await, [1]);
    let n = app.outbox().await.len();
    app.deliver(&to_desk("sam@example.test", "l2", &staff(), "#list"))
        .await;
    assert_eq!(
        listed(&app, n, "sam@example.test").await,
        Vec::<i64>::new(),
        "owns nothing yet"
    );
    app.deliver(&reply("sam@example.test", "l3", &staff(), "#assign me"))
        .await;
    let n = app.outbox().await.len();
    app.deliver(&to_desk("sam@example.test", "l4", &staff(), "#list mine"))
        .await;
    assert_eq!(listed(&app, n, "sam@example.test").await, [1]);
    let n = app.outbox().await.len();
    app.deliver(&to_desk(
        "sam@example.test",
        "l5",
        &staff(),
        "#list unassigned",
    ))
    .await;
    assert_eq!(listed(&app, n, "sam@example.test").await, Vec::<i64>::new());
    let n = app.outbox().await.len();
    app.deliver(&to_desk("sam@example.test", "l6", &staff(), "#list all"))
        .await;
    assert_eq!(listed(&app, n, "sam@example.test").await, [1]);
    // A customer's list is what she may see, whatever she asks for.
    let n = app.outbox().await.len();
    app.deliver(&to_desk("carol@other.test", "l7", "", "#list all"))
        .await;
    assert_eq!(listed(&app, n, "carol@other.test").await, Vec::<i64>::new());
}

/// Carol (other org) opens ticket #2 about the same problem as Alice's #1.
async fn two_tickets() -> TestApp {
    let (app, _) = base().await;
    let r = app
        .deliver(
            b"From: carol@other.test\nTo: support@example.test\nMessage-ID: <carol-open@other.test>\nSubject: Login page broken\n\nThe login page fails for us too.\n",
        )
        .await;
    assert_eq!(r.ticket, Some(2));
    app
}

fn kinds(t: &serde_json::Value) -> Vec<String> {
    t["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str().map(str::to_string))
        .collect()
}

fn bodies(t: &serde_json::Value) -> Vec<String> {
    t["comments"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["body"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn a_merged_ticket_closes_as_a_duplicate_and_its_mail_lands_on_the_other() {
    let app = two_tickets().await;
    let carol_ack = app
        .outbox()
        .await
        .into_iter()
        .find(|r| r.to == "carol@other.test" && r.ticket_id == Some(2))
        .expect("Carol's acknowledgement");
    let since = app.outbox().await.len();
    let merge = format!(
        "From: sam@example.test\nTo: support@example.test\nMessage-ID: <merge-1@x.test>\nIn-Reply-To: <carol-open@other.test>\nSubject: Re: [Support #2] Login page broken\n{}\n\n#merge-into 1\nThe same as #1.\n",
        staff()
    );
    assert_eq!(
        app.deliver(merge.as_bytes()).await.outcome,
        Outcome::CommentAdded
    );

    let b = json(&app.ticket(2).await);
    assert_eq!(b["status"], "closed");
    assert_eq!(b["close_reason"], "duplicate");
    assert_eq!(b["merged_into"], 1);
    assert!(b["comments"].as_array().unwrap().is_empty(), "{b}");
    assert!(kinds(&b).contains(&"ticket_merged".to_string()));
    let a = json(&app.ticket(1).await);
    assert!(a["merged_into"].is_null());
    let texts = bodies(&a);
    assert!(
        texts.iter().any(|t| t.contains("fails for us too")),
        "{texts:?}"
    );
    assert!(
        texts.iter().any(|t| t.contains("The same as #1")),
        "{texts:?}"
    );
    let carol = a["followers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["email"] == "carol@other.test")
        .expect("B's requester follows A");
    assert_eq!(carol["source"], "follow");
    assert!(
        a["orgs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o == "other-corp"),
        "{}",
        a["orgs"]
    );
    assert!(kinds(&a).contains(&"ticket_merged".to_string()));

    // One mail each; Carol's says where it continues; the author gets none.
    let rows = app.outbox().await.split_off(since);
    let mut to: Vec<&str> = rows.iter().map(|r| r.to.as_str()).collect();
    to.sort_unstable();
    let before = to.len();
    to.dedup();
    assert_eq!(before, to.len(), "one mail per person: {:?}", who(&rows));
    assert!(!to.contains(&"sam@example.test"), "{:?}", who(&rows));
    let to_carol = rows
        .iter()
        .find(|r| r.to == "carol@other.test")
        .expect("Carol is told");
    assert_eq!(
        to_carol.context["event"]["merged_into"], 1,
        "{:?}",
        to_carol
    );
    assert!(
        rows.iter().all(|r| r.to != "alice@customer.test"),
        "A's followers are not mailed: {:?}",
        who(&rows)
    );
    let mails = app.mails().await;
    let carols = mails
        .iter()
        .rev()
        .find(|m| m.to == "carol@other.test")
        .expect("sent");
    carols.assert_reads_well();
    assert!(
        carols.text.contains("Continues in ticket #1")
            && carols.text.contains("comment to ticket #1."),
        "{}",
        carols.text
    );
    assert!(carols.html.contains("#1</strong>"), "{}", carols.html);

    // A reply to B's old notification (by In-Reply-To and her token) lands on A.
    let token = token::reply_address(
        &"support@example.test".parse().unwrap(),
        b"test-secret",
        2,
        3,
    );
    let reply = format!(
        "From: carol@other.test\nTo: {token}\nMessage-ID: <carol-2@other.test>\nIn-Reply-To: {}\nSubject: Re: [Support #2] Login page broken\n\nStill broken here.\n",
        carol_ack.message_id
    );
    let r = app.deliver(reply.as_bytes()).await;
    assert_eq!((r.outcome, r.ticket), (Outcome::CommentAdded, Some(1)));
    // Her token alone.
    let reply = format!(
        "From: carol@other.test\nTo: {token}\nMessage-ID: <carol-3@other.test>\nSubject: a new subject\n\nBy token.\n"
    );
    let r = app.deliver(reply.as_bytes()).await;
    assert_eq!((r.outcome, r.ticket), (Outcome::CommentAdded, Some(1)));
    // B's subject tag alone.
    let r = app
        .deliver(
            b"From: carol@other.test\nTo: support@example.test\nMessage-ID: <carol-4@other.test>\nSubject: Re: [Support #2] Login page broken\n\nBy tag.\n",
        )
        .await;
    assert_eq!((r.outcome, r.ticket), (Outcome::CommentAdded, Some(1)));
    let a = json(&app.ticket(1).await);
    let texts = bodies(&a);
    for said in ["Still broken here.", "By token.", "By tag."] {
        assert!(texts.iter().any(|t| t == said), "{said}: {texts:?}");
    }
    assert_eq!(json(&app.ticket(2).await)["status"], "closed");
}

#[tokio::test]
async fn merges_are_refused_to_customers_forgers_and_into_nowhere() {
    let app = two_tickets().await;
    let on_two = |from: &str, id: &str, headers: &str, body: &str| {
        format!(
            "From: {from}\nTo: support@example.test\nMessage-ID: <{id}@x.test>\nIn-Reply-To: <carol-open@other.test>\nSubject: Re: Login page broken\n{headers}\n\n{body}\n"
        )
        .into_bytes()
    };
    let carol_token = format!(
        "Delivered-To: {}",
        token::reply_address(
            &"support@example.test".parse().unwrap(),
            b"test-secret",
            2,
            3
        )
    );
    let since = app.outbox().await.len();
    for (from, id, headers, body) in [
        (
            "carol@other.test",
            "r1",
            carol_token.as_str(),
            "#merge-into 1",
        ),
        ("sam@example.test", "r2", "", "#merge-into 1"),
        ("sam@example.test", "r3", &staff(), "#merge-into 2"),
        ("sam@example.test", "r4", &staff(), "#merge-into 99"),
    ] {
        app.deliver(&on_two(from, id, headers, body)).await;
    }
    let b = json(&app.ticket(2).await);
    assert!(b["merged_into"].is_null());
    assert_ne!(b["status"], "closed");
    assert!(!kinds(&b).contains(&"ticket_merged".to_string()));
    let failed: Vec<String> = app
        .outbox()
        .await
        .split_off(since)
        .into_iter()
        .filter(|r| r.template == "command_failed")
        .map(|r| format!("{} {}", r.to, r.context["event"]["failures"][0]["reason"]))
        .collect();
    assert_eq!(failed.len(), 4, "{failed:?}");
    assert!(
        failed[0].contains("only the support team merges"),
        "{failed:?}"
    );
    assert!(failed[1].contains("could not confirm"), "{failed:?}");
    assert!(failed[2].contains("into itself"), "{failed:?}");
    assert!(failed[3].contains("ticket 99 not found"), "{failed:?}");

    // Merged once: it cannot be merged again, nor be merged into.
    app.deliver(&on_two("sam@example.test", "r5", &staff(), "#merge-into 1"))
        .await;
    assert_eq!(json(&app.ticket(2).await)["merged_into"], 1);
    let since = app.outbox().await.len();
    app.deliver(&reply("sam@example.test", "r6", &staff(), "#merge-into 2"))
        .await;
    assert!(json(&app.ticket(1).await)["merged_into"].is_null());
    let failed = app
        .outbox()
        .await
        .split_off(since)
        .into_iter()
        .find(|r| r.template == "command_failed")
        .expect("told why");
    assert!(
        failed.context["event"]["failures"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("merged into ticket 1"),
        "{:?}",
        failed.context
    );
}

#[tokio::test]
async fn move_to_puts_the_replys_text_and_its_thread_on_the_other_ticket() {
    let app = two_tickets().await;
    let since = app.outbox().await.len();
    // Sam answers Carol on Alice's thread by mistake, and says so.
    let r = app
        .deliver(&reply(
            "sam@example.test",
            "mv1",
            &staff(),
            "#move-to 2\nCarol, please clear your cache.",
        ))
        .await;
    assert_eq!((r.outcome, r.ticket), (Outcome::CommentAdded, Some(2)));
    let a = json(&app.ticket(1).await);
    assert!(!bodies(&a).iter().any(|t| t.contains("clear your cache")));
    assert!(kinds(&a).contains(&"comment_moved".to_string()));
    let b = json(&app.ticket(2).await);
    let moved = b["comments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["body"] == "Carol, please clear your cache.")
        .expect("on #2");
    assert_eq!(moved["message_id"], "<mv1@x.test>");
    assert!(kinds(&b).contains(&"comment_moved".to_string()));
    // Carol is told on #2; Alice and Bob (on #1) are not told of it.
    let rows = app.outbox().await.split_off(since);
    assert!(
        rows.iter()
            .any(|r| r.to == "carol@other.test" && r.ticket_id == Some(2)),
        "{:?}",
        who(&rows)
    );
    assert!(
        rows.iter()
            .all(|r| r.to != "alice@customer.test" && r.to != "bob@customer.test"),
        "{:?}",
        who(&rows)
    );
    // A reply to the moved message threads to #2.
    let r = app
        .deliver(
            b"From: carol@other.test\nTo: support@example.test\nMessage-ID: <carol-9@other.test>\nIn-Reply-To: <mv1@x.test>\nSubject: Re: Login page\n\nThat worked.\n",
        )
        .await;
    assert_eq!((r.outcome, r.ticket), (Outcome::CommentAdded, Some(2)));

    // A customer may not; nor a mail without text.
    app.deliver(&reply(
        "alice@customer.test",
        "mv2",
        &alice_token(),
        "#move-to 2\nThis belongs to Carol.",
    ))
    .await;
    assert!(
        bodies(&json(&app.ticket(1).await))
            .iter()
            .any(|t| t == "This belongs to Carol.")
    );
    let since = app.outbox().await.len();
    app.deliver(&reply("sam@example.test", "mv3", &staff(), "#move-to 2"))
        .await;
    let failed = app
        .outbox()
        .await
        .split_off(since)
        .into_iter()
        .find(|r| r.template == "command_failed")
        .expect("told why");
    assert!(
        failed.context["event"]["failures"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("has none"),
        "{:?}",
        failed.context
    );
}
