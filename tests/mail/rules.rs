//! Commands, mentions, sharing and rules through `ingest`: the ticket state
//! afterwards and exactly who was emailed.

use crate::common;

use common::TestApp;
use ticketgate::domain::outcome::Outcome;
use ticketgate::domain::token;
use ticketgate::store::OutboxRow;

/// A reply on ticket #1 (the base thread) from `from`, with extra headers.
fn reply(from: &str, id: &str, headers: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\nTo: support@example.test\nMessage-ID: <{id}@x.test>\nIn-Reply-To: <base-1@customer.test>\nSubject: Re: Login page\n{headers}\n\n{body}\n"
    )
    .into_bytes()
}

/// Authentication-Results from our MTA vouching for `domain`.
fn verified(domain: &str) -> String {
    format!(
        "Authentication-Results: mx.example.test; dkim=pass header.d={domain}; dmarc=pass header.from={domain}"
    )
}

async fn base() -> (TestApp, usize) {
    let app = TestApp::new().await;
    app.deliver_file("_base/01_alice_opens_ticket.eml").await;
    let n = app.outbox().await.len();
    (app, n)
}

async fn new_rows(app: &TestApp, since: usize) -> Vec<OutboxRow> {
    app.outbox().await.split_off(since)
}

fn who(rows: &[OutboxRow]) -> Vec<String> {
    rows.iter()
        .map(|r| format!("{} {}", r.to, r.template))
        .collect()
}

#[tokio::test]
async fn the_requester_closes_their_ticket_and_everyone_else_is_told() {
    let (app, since) = base().await;
    let token = token::reply_address(
        &"support@example.test".parse().unwrap(),
        b"test-secret",
        1,
        1,
    );
    let raw = reply(
        "alice@customer.test",
        "c1",
        &format!("Delivered-To: {token}"),
        "#status closed\nWorks now, thanks!",
    );
    let r = app.deliver(&raw).await;
    assert_eq!(r.outcome, Outcome::CommentAdded);
    let t = app.ticket(1).await;
    assert_eq!(serde_json::to_value(t.status).unwrap(), "closed");
    assert_eq!(
        t.comments.last().unwrap().body,
        "Works now, thanks!",
        "the command line is not part of the comment"
    );
    // One mail each, saying both the comment and the new status.
    let rows = new_rows(&app, since).await;
    assert_eq!(
        who(&rows),
        [
            "bob@customer.test ticket_updated",
            "dave@example.test ticket_updated",
            "team@example.test ticket_updated",
        ]
    );
    for row in &rows {
        assert_eq!(row.context["event"]["to"], "closed");
        assert_eq!(row.context["ticket"]["status"], "closed");
    }
}

#[tokio::test]
async fn a_follower_may_not_close_and_is_told_once_but_the_comment_stays() {
    let (app, since) = base().await;
    let raw = reply(
        "bob@customer.test",
        "c2",
        "",
        "#status closed\n#frobnicate\nIt still fails for me.",
    );
    assert_eq!(app.deliver(&raw).await.outcome, Outcome::CommentAdded);
    let t = app.ticket(1).await;
    assert_eq!(serde_json::to_value(t.status).unwrap(), "new");
    assert_eq!(t.comments.last().unwrap().body, "It still fails for me.");
    let rows = new_rows(&app, since).await;
    let notices: Vec<&OutboxRow> = rows
        .iter()
        .filter(|r| r.template == "command_failed")
        .collect();
    assert_eq!(
        notices.len(),
        1,
        "one notice listing every failure: {:?}",
        who(&rows)
    );
    assert_eq!(notices[0].to, "bob@customer.test");
    let failures = notices[0].context["event"]["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 2);
    assert_eq!(failures[0]["command"], "#status closed");
    assert_eq!(failures[1]["command"], "#frobnicate");
}

#[tokio::test]
async fn staff_commands_need_proof_of_the_sender() {
    let (app, since) = base().await;
    // A forged From: no Authentication-Results, no token.
    let forged = reply(
        "sam@example.test",
        "f1",
        "Reply-To: attacker@evil.test",
        "#status blocked\nWaiting on the vendor.",
    );
    assert_eq!(app.deliver(&forged).await.outcome, Outcome::CommentAdded);
    assert_eq!(
        serde_json::to_value(app.ticket(1).await.status).unwrap(),
        "new"
    );
    let rows = new_rows(&app, since).await;
    let notice = rows
        .iter()
        .find(|r| r.template == "command_failed")
        .expect("the refusal is reported");
    assert_eq!(notice.to, "sam@example.test", "to From, never to Reply-To");
    assert!(rows.iter().all(|r| r.to != "attacker@evil.test"));

    // The same from our MTA's verdict: applied.
    let real = reply(
        "sam@example.test",
        "f2",
        &verified("example.test"),
        "#status in progress\n#priority P2\nLooking into it.",
    );
    app.deliver(&real).await;
    let t = app.ticket(1).await;
    assert_eq!(serde_json::to_value(t.status).unwrap(), "in_progress");
    assert_eq!(serde_json::to_value(t.priority).unwrap(), "P2");
    let sla = t
        .comments
        .iter()
        .find(|c| c.source == "system")
        .expect("a comment announces the priority");
    assert_eq!(
        sla.body,
        "Priority set to P2 (High): response within 4 hours."
    );
    // A verdict for another domain proves nothing.
    let other = reply(
        "sam@example.test",
        "f3",
        &verified("evil.test"),
        "#status closed",
    );
    assert_eq!(app.deliver(&other).await.outcome, Outcome::CommandOnly);
    assert_eq!(
        serde_json::to_value(app.ticket(1).await.status).unwrap(),
        "in_progress"
    );
}

#[tokio::test]
async fn sharing_needs_proof_and_stays_within_the_organization() {
    let (app, since) = base().await;
    let token = token::reply_address(
        &"support@example.test".parse().unwrap(),
        b"test-secret",
        1,
        1,
    );
    // bob already follows (Cc); share with a new colleague and with carol of another org.
    app.deliver(b"From: nina@customer.test\nTo: support@example.test\nSubject: hi\n\nhello\n")
        .await; // registers nina
    let raw = reply(
        "alice@customer.test",
        "s1",
        &format!("To: {token}"),
        "#share nina@customer.test, carol@other.test",
    );
    assert_eq!(app.deliver(&raw).await.outcome, Outcome::CommandOnly);
    let t = app.ticket(1).await;
    let followers: Vec<String> = t
        .followers
        .iter()
        .map(|f| format!("{} ({})", f.email, f.source.as_str()))
        .collect();
    assert!(
        followers.contains(&"nina@customer.test (share)".to_string()),
        "{followers:?}"
    );
    assert!(
        !followers.iter().any(|f| f.starts_with("carol@")),
        "{followers:?}"
    );
    let rows = new_rows(&app, since).await;
    assert!(
        rows.iter()
            .any(|r| r.to == "nina@customer.test" && r.template == "shared_with_you"),
        "{:?}",
        who(&rows)
    );
    let failed = rows
        .iter()
        .find(|r| r.template == "command_failed")
        .expect("carol is refused");
    assert!(
        failed.context["event"]["failures"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("carol@other.test")
    );

    // Without proof, sharing is refused.
    let unproven = reply("alice@customer.test", "s2", "", "#share bob@customer.test");
    app.deliver(&unproven).await;
    assert!(
        app.outbox()
            .await
            .iter()
            .filter(|r| r.template == "command_failed")
            .count()
            >= 2
    );
}

#[tokio::test]
async fn mentions_notify_and_follow_and_strangers_are_reported() {
    let (app, since) = base().await;
    let raw = reply(
        "alice@customer.test",
        "m1",
        "",
        "@dave can you look? Also @carol.\n\n> @bob in a quote is not a mention",
    );
    app.deliver(&raw).await;
    let t = app.ticket(1).await;
    assert!(
        t.followers.iter().any(|f| f.email == "dave@example.test"),
        "the lead follows"
    );
    let rows = new_rows(&app, since).await;
    // Dave already follows (the lead rule): one mail with the comment that
    // says he was mentioned.
    let to_dave: Vec<_> = rows
        .iter()
        .filter(|r| r.to == "dave@example.test")
        .collect();
    assert_eq!(to_dave.len(), 1, "{:?}", who(&rows));
    assert_eq!(to_dave[0].template, "ticket_updated");
    assert_eq!(
        to_dave[0].context["event"]["mentioned"]["actor_name"],
        "Alice Anders"
    );
    // Nobody changed the ticket itself: the mail names who wrote the
    // comment, not "Ticket #1 was updated."
    assert_eq!(
        to_dave[0].context["event"]["actor_email"],
        "alice@customer.test"
    );
    assert!(
        !rows
            .iter()
            .any(|r| r.to == "bob@customer.test" && r.template == "mentioned")
    );
    let failed = rows
        .iter()
        .find(|r| r.template == "command_failed")
        .expect("@carol is reported");
    assert_eq!(failed.context["event"]["mentions"][0]["command"], "@carol");
    assert_eq!(
        failed.context["event"]["mentions"][0]["reason"],
        "not in your organization"
    );
    assert_eq!(failed.context["event"]["failures"], serde_json::json!([]));
}

/// 160,000 handles once held the writer for 35 s and sent a 42 MB notice.
#[tokio::test]
async fn a_flood_of_mentions_resolves_the_first_ones_and_the_notice_stays_bounded() {
    let (app, since) = base().await;
    let strangers: String = (0..40).map(|i| format!("@nobody{i} ")).collect();
    let raw = reply(
        "alice@customer.test",
        "m2",
        "",
        &format!("#priority P2\n#status blocked\n#release 5.0\n@dave please look. {strangers}"),
    );
    assert_eq!(app.deliver(&raw).await.outcome, Outcome::CommentAdded);
    let rows = new_rows(&app, since).await;
    let told = |to: &str, template: &str| {
        rows.iter()
            .filter(|r| r.to == to && r.template == template)
            .count()
    };
    // Dave, the lead, is told of the mention in the one mail about this update.
    let to_dave: Vec<_> = rows
        .iter()
        .filter(|r| r.to == "dave@example.test")
        .collect();
    assert_eq!(to_dave.len(), 1, "{:?}", who(&rows));
    assert!(
        to_dave[0].template == "mentioned" || !to_dave[0].context["event"]["mentioned"].is_null(),
        "{:?}",
        to_dave[0].context
    );
    assert_eq!(told("alice@customer.test", "command_failed"), 1);
    let notice = rows
        .iter()
        .find(|r| r.template == "command_failed")
        .expect("the failures are reported");
    let event = &notice.context["event"];
    // 3 refused commands, the 21 mentions past the cap in one line, then the
    // 19 strangers looked up: 23 failures, of which the notice lists 20.
    let commands = event["failures"].as_array().unwrap();
    let mentions = event["mentions"].as_array().unwrap();
    assert_eq!((commands.len(), mentions.len()), (3, 17));
    assert_eq!(mentions[0]["command"], "@… and 21 more");
    assert_eq!(mentions[1]["command"], "@nobody0");
    assert_eq!(mentions[1]["reason"], "not in your organization");
    assert_eq!(event["more_failures"], 3);
}

#[tokio::test]
async fn a_staff_mention_of_nobody_registered_says_so() {
    let (app, since) = base().await;
    let sam = verified("example.test");
    app.deliver(&reply("sam@example.test", "m2", &sam, "@zed can you look?"))
        .await;
    let rows = new_rows(&app, since).await;
    let failed = rows
        .iter()
        .find(|r| r.template == "command_failed" && r.to == "sam@example.test")
        .expect("@zed is reported to Sam");
    // Listed as a mention, apart from commands.
    assert_eq!(failed.context["event"]["mentions"][0]["command"], "@zed");
    // Staff may mention anyone: the reason is not an organization.
    assert_eq!(
        failed.context["event"]["mentions"][0]["reason"],
        "no registered user has that name or address"
    );
}

#[tokio::test]
async fn a_request_to_upgrade_our_production_environment_gets_the_upgrade_answer() {
    let (app, since) = base().await;
    let raw = "From: bob@customer.test\nTo: support@example.test\nMessage-ID: <up2@x.test>\nSubject: Please upgrade our production environment\n\nTo 5.2, any evening.\n";
    app.deliver(raw.as_bytes()).await;
    let rows = new_rows(&app, since).await;
    // The upgrade answer rides in the acknowledgement: one mail.
    let answers: Vec<_> = rows
        .iter()
        .filter(|r| r.context["event"]["also"][0]["template"] == "environment_upgrade")
        .map(|r| format!("{} {}", r.to, r.template))
        .collect();
    assert_eq!(answers, ["bob@customer.test ack"], "{:?}", who(&rows));
}

#[tokio::test]
async fn list_alone_answers_the_sender_without_a_ticket() {
    let (app, since) = base().await;
    let raw = b"From: alice@customer.test\nTo: support@example.test\nReply-To: someone@evil.test\nMessage-ID: <l1@x.test>\nSubject: list\n\n#list\n";
    let r = app.deliver(raw).await;
    assert_eq!((r.outcome, r.ticket), (Outcome::CommandOnly, None));
    let rows = new_rows(&app, since).await;
    assert_eq!(who(&rows), ["alice@customer.test list_answer"]);
    assert_eq!(rows[0].context["event"]["tickets"][0]["id"], 1);
}

#[tokio::test]
async fn a_customer_reply_reopens_a_closed_ticket_but_not_an_escalated_one() {
    let (app, _) = base().await;
    let sam = verified("example.test");
    app.deliver(&reply("sam@example.test", "r1", &sam, "#status closed"))
        .await;
    app.deliver(&reply("bob@customer.test", "r2", "", "It is back."))
        .await;
    assert_eq!(
        serde_json::to_value(app.ticket(1).await.status).unwrap(),
        "new",
        "reopened by the default rule"
    );
    app.deliver(&reply("sam@example.test", "r3", &sam, "#status escalated"))
        .await;
    app.deliver(&reply("bob@customer.test", "r4", "", "Any news?"))
        .await;
    assert_eq!(
        serde_json::to_value(app.ticket(1).await.status).unwrap(),
        "escalated"
    );
    let since = app.outbox().await.len();
    app.deliver(&reply("sam@example.test", "r5", &sam, "#release 5.2.1"))
        .await;
    let t = app.ticket(1).await;
    assert_eq!(t.comments.last().unwrap().body, "Fixed in release 5.2.1.");
    let rows = new_rows(&app, since).await;
    assert!(
        rows.iter()
            .any(|r| r.to == "alice@customer.test" && r.template == "release_noted"),
        "{:?}",
        who(&rows)
    );
}

#[tokio::test]
async fn internal_comments_reach_staff_only() {
    let (app, since) = base().await;
    let raw = reply(
        "sam@example.test",
        "i1",
        &verified("example.test"),
        "#internal\nCustomer is on the old cluster.",
    );
    app.deliver(&raw).await;
    let t = app.ticket(1).await;
    assert!(t.comments.last().unwrap().internal);
    let rows = new_rows(&app, since).await;
    assert_eq!(
        who(&rows),
        [
            "dave@example.test comment_added",
            "team@example.test comment_added"
        ]
    );
}

#[tokio::test]
async fn the_requester_cannot_unfollow_and_an_upgrade_request_points_to_the_lead() {
    let (app, since) = base().await;
    app.deliver(&reply("alice@customer.test", "u1", "", "#unfollow"))
        .await;
    assert!(
        app.ticket(1)
            .await
            .followers
            .iter()
            .any(|f| f.email == "alice@customer.test")
    );
    assert!(
        new_rows(&app, since)
            .await
            .iter()
            .any(|r| r.template == "command_failed")
    );

    let since = app.outbox().await.len();
    let raw = b"From: bob@customer.test\nTo: support@example.test\nMessage-ID: <up@x.test>\nSubject: Environment upgrade to 5.2\n\nPlease plan it.\n";
    let r = app.deliver(raw).await;
    let rows = new_rows(&app, since).await;
    let answer = rows
        .iter()
        .find(|r| r.context["event"]["also"][0]["template"] == "environment_upgrade")
        .expect("the upgrade rule answers, within the acknowledgement");
    assert_eq!(answer.to, "bob@customer.test");
    assert_eq!(
        answer.context["event"]["also"][0]["event"]["leads"][0]["email"],
        "dave@example.test"
    );
    assert!(
        app.ticket(r.ticket.unwrap())
            .await
            .followers
            .iter()
            .any(|f| f.email == "dave@example.test")
    );
}

#[tokio::test]
async fn a_status_set_by_command_fires_status_changed_rules_once() {
    let app = TestApp::with_rules(
        "[[rule]]\nname = \"note escalations\"\non = \"status_changed\"\nwhen = { status = [\"escalated\"] }\n\
         then = { internal_note = \"Escalated: engineering has the details.\", set_status = \"blocked\" }\n",
    )
    .await;
    app.deliver_file("_base/01_alice_opens_ticket.eml").await;
    app.deliver(&reply(
        "sam@example.test",
        "e1",
        &verified("example.test"),
        "#status escalated",
    ))
    .await;
    let t = app.ticket(1).await;
    let note = t
        .comments
        .iter()
        .find(|c| c.internal)
        .expect("the rule's internal note");
    assert_eq!(note.body, "Escalated: engineering has the details.");
    // The rule's own status change does not fire the rule again (one pass).
    assert_eq!(serde_json::to_value(t.status).unwrap(), "blocked");
    assert_eq!(t.comments.iter().filter(|c| c.internal).count(), 1);
}

#[tokio::test]
async fn organizations_give_access_never_email_and_removing_one_removes_access() {
    let (app, _) = base().await;
    let sam = verified("example.test");
    // carol (Other Corp) may not comment on ticket #1...
    let before = app
        .deliver(&reply("carol@other.test", "o1", "", "Can I see this?"))
        .await;
    assert_eq!(before.outcome, Outcome::Quarantined);
    // ...until staff attach her organization; organizations are never emailed.
    let since = app.outbox().await.len();
    app.deliver(&reply(
        "sam@example.test",
        "o2",
        &sam,
        "#share-org \"Other Corp\"",
    ))
    .await;
    assert_eq!(app.ticket(1).await.orgs, ["customer-site-a", "other-corp"]);
    assert!(
        new_rows(&app, since)
            .await
            .iter()
            .all(|r| r.to != "carol@other.test")
    );
    let during = app
        .deliver(&reply("carol@other.test", "o3", "", "Now I can."))
        .await;
    assert_eq!(during.outcome, Outcome::CommentAdded);
    // carol follows explicitly; bob's org access is irrelevant to him as a Cc follower.
    app.deliver(&reply("carol@other.test", "o4", "", "#follow"))
        .await;
    app.deliver(&reply(
        "sam@example.test",
        "o5",
        &sam,
        "#unshare-org other-corp",
    ))
    .await;
    assert_eq!(app.ticket(1).await.orgs, ["customer-site-a"]);
    // A follower keeps access when their organization is removed.
    let after = app
        .deliver(&reply(
            "carol@other.test",
            "o6",
            "",
            "Still here as a follower.",
        ))
        .await;
    assert_eq!(after.outcome, Outcome::CommentAdded);
    // Another member of that organization, not a follower, has lost access.
    let colleague = app
        .deliver(&reply("dan@other.test", "o8", "", "And me?"))
        .await;
    assert_eq!(
        (colleague.outcome, colleague.reason.as_deref()),
        (Outcome::Quarantined, Some("not_a_participant"))
    );
    // A customer may not attach another organization.
    let since = app.outbox().await.len();
    let token = token::reply_address(
        &"support@example.test".parse().unwrap(),
        b"test-secret",
        1,
        1,
    );
    app.deliver(&reply(
        "alice@customer.test",
        "o7",
        &format!("To: {token}"),
        "#share-org other-corp",
    ))
    .await;
    assert_eq!(app.ticket(1).await.orgs, ["customer-site-a"]);
    assert!(
        new_rows(&app, since)
            .await
            .iter()
            .any(|r| r.template == "command_failed")
    );
}

/// The reply address issued to `user` on ticket #1: proof of who they are.
fn token_of(user: i64) -> String {
    format!(
        "Delivered-To: {}",
        token::reply_address(
            &"support@example.test".parse().unwrap(),
            b"test-secret",
            1,
            user
        )
    )
}

#[tokio::test]
async fn a_comment_with_a_status_command_is_one_mail_per_follower_saying_both() {
    let (app, _) = base().await;
    let sam = verified("example.test");
    let blocked = reply("sam@example.test", "s1", &sam, "#status blocked");
    assert_eq!(app.deliver(&blocked).await.outcome, Outcome::CommandOnly);
    let before = app.mails().await.len();
    let raw = reply(
        "alice@customer.test",
        "c1",
        &token_of(1),
        "#status closed\nWorks now, thanks!",
    );
    assert_eq!(app.deliver(&raw).await.outcome, Outcome::CommentAdded);
    let mails = app.mails().await.split_off(before);
    assert_eq!(
        common::count_per_recipient(&mails),
        [
            ("bob@customer.test".to_string(), 1),
            ("dave@example.test".to_string(), 1),
            ("team@example.test".to_string(), 1),
        ]
    );
    for m in &mails {
        m.assert_reads_well();
        assert!(m.text.contains("Works now, thanks!"), "{}", m.text);
        assert!(
            m.text.contains("from \"Blocked\" to \"Closed\""),
            "{}",
            m.text
        );
        assert!(m.text.contains("Status:   Closed\n"), "{}", m.text);
        assert!(m.html.contains("Works now, thanks!"), "{}", m.html);
        assert!(m.html.contains("Closed"), "{}", m.html);
    }
}

#[tokio::test]
async fn two_hundred_status_lines_are_one_mail_per_follower_with_the_net_change() {
    let (app, _) = base().await;
    // Back where it started: the comment alone is news.
    let before = app.mails().await.len();
    let raw = reply(
        "alice@customer.test",
        "even",
        &token_of(1),
        &format!("{}Never mind.", "#close\n#reopen\n".repeat(100)),
    );
    assert_eq!(app.deliver(&raw).await.outcome, Outcome::CommentAdded);
    assert_eq!(
        serde_json::to_value(app.ticket(1).await.status).unwrap(),
        "new"
    );
    let mails = app.mails().await.split_off(before);
    assert_eq!(
        common::count_per_recipient(&mails),
        [
            ("bob@customer.test".to_string(), 1),
            ("dave@example.test".to_string(), 1),
            ("team@example.test".to_string(), 1),
        ]
    );
    for m in &mails {
        m.assert_reads_well();
        assert!(m.text.contains("Never mind."), "{}", m.text);
        assert!(!m.text.contains("from \""), "no status news: {}", m.text);
    }

    // One more line: one mail each with the net change.
    let before = app.mails().await.len();
    let mut body: String = "#close\n#reopen\n".repeat(100);
    body.push_str("#close\nDone, closing.");
    let raw = reply("alice@customer.test", "odd", &token_of(1), &body);
    assert_eq!(app.deliver(&raw).await.outcome, Outcome::CommentAdded);
    assert_eq!(
        serde_json::to_value(app.ticket(1).await.status).unwrap(),
        "closed"
    );
    let mails = app.mails().await;
    assert_eq!(app.outbox().await.len(), mails.len(), "one row, one mail");
    let mails = mails[before..].to_vec();
    assert_eq!(
        common::count_per_recipient(&mails),
        [
            ("bob@customer.test".to_string(), 1),
            ("dave@example.test".to_string(), 1),
            ("team@example.test".to_string(), 1),
        ]
    );
    for m in &mails {
        m.assert_reads_well();
        assert!(m.text.contains("from \"New\" to \"Closed\""), "{}", m.text);
        assert!(m.text.contains("Status:   Closed\n"), "{}", m.text);
        assert!(m.text.contains("Done, closing."), "{}", m.text);
    }
}

#[tokio::test]
async fn mentioning_a_follower_is_one_mail_that_says_both() {
    let (app, _) = base().await;
    let before = app.mails().await.len();
    let raw = reply(
        "alice@customer.test",
        "m2",
        "",
        "@dave could you look at this today?",
    );
    app.deliver(&raw).await;
    let mails = app.mails().await.split_off(before);
    assert_eq!(
        common::count_per_recipient(&mails),
        [
            ("bob@customer.test".to_string(), 1),
            ("dave@example.test".to_string(), 1),
            ("team@example.test".to_string(), 1),
        ]
    );
    let dave = mails.iter().find(|m| m.to == "dave@example.test").unwrap();
    dave.assert_reads_well();
    assert!(
        dave.text
            .contains("Alice Anders <alice@customer.test> mentioned you"),
        "{}",
        dave.text
    );
    assert!(
        dave.text.contains("@dave could you look at this today?"),
        "{}",
        dave.text
    );
    let bob = mails.iter().find(|m| m.to == "bob@customer.test").unwrap();
    assert!(!bob.text.contains("mentioned you"), "{}", bob.text);
    // Dave already followed: he is not told he "now follows".
    assert!(!dave.text.contains("now follow"), "{}", dave.text);
}

#[tokio::test]
async fn what_a_customer_reads_uses_labels_and_plain_words() {
    let (app, _) = base().await;
    let before = app.mails().await.len();
    // A customer may not set "In Progress"; @carol is not in her organization.
    let raw = reply(
        "alice@customer.test",
        "w1",
        "",
        "#status in progress\nPlease hurry, @carol.",
    );
    app.deliver(&raw).await;
    // Sharing needs proof; bob gives none.
    let raw = reply(
        "bob@customer.test",
        "w2",
        "",
        "#share alice@customer.test\nok",
    );
    app.deliver(&raw).await;
    let mails = app.mails().await.split_off(before);
    // Alice: her notice, and Bob's comment.
    assert_eq!(
        mails
            .iter()
            .filter(|m| m.to == "alice@customer.test")
            .count(),
        2
    );
    let to_alice: Vec<_> = mails
        .iter()
        .filter(|m| m.to == "alice@customer.test" && m.text.contains("not carried out"))
        .collect();
    assert_eq!(to_alice.len(), 1, "{mails:#?}");
    let notice = to_alice[0];
    notice.assert_reads_well();
    assert!(
        notice
            .text
            .contains("The following command in it was not carried out:\n\n  * #status in progress\n    you may not set the status to \"In Progress\""),
        "{}",
        notice.text
    );
    assert!(
        notice.text.contains(
            "Nobody was told of this mention:\n\n  * @carol\n    not in your organization"
        ),
        "{}",
        notice.text
    );
    let to_bob: Vec<_> = mails
        .iter()
        .filter(|m| m.to == "bob@customer.test" && m.text.contains("not carried out"))
        .collect();
    assert_eq!(to_bob.len(), 1, "{mails:#?}");
    to_bob[0].assert_reads_well();
    assert!(
        to_bob[0]
            .text
            .contains("we could not confirm that this email comes from you"),
        "{}",
        to_bob[0].text
    );
    for m in &mails {
        assert!(
            !m.text.contains("DKIM") && !m.html.contains("DKIM"),
            "{}",
            m.text
        );
    }
}

#[tokio::test]
async fn list_dates_are_in_the_reader_s_language_and_the_desk_s_zone() {
    let app = TestApp::with_settings(|s| s.support.timezone = "+09:00".into()).await;
    app.deliver_file("_base/01_alice_opens_ticket.eml").await;
    let stored = app.ticket(1).await.updated_at;
    let before = app.mails().await.len();
    let raw = b"From: alice@customer.test\nTo: support@example.test\nMessage-ID: <dl@x.test>\nSubject: list\n\n#list\n";
    assert_eq!(app.deliver(raw).await.outcome, Outcome::CommandOnly);
    let mails = app.mails().await.split_off(before);
    assert_eq!(mails.len(), 1);
    let list = &mails[0];
    list.assert_reads_well();
    assert!(!list.text.contains(&stored), "{}", list.text);
    assert!(
        list.text.contains("In Progress") || list.text.contains("New,"),
        "{}",
        list.text
    );
    assert!(list.text.contains("(UTC+09:00)"), "{}", list.text);
    assert!(!list.html.contains(&stored), "{}", list.html);

    // The same list in Japanese.
    app.sqlite_execute(
        "UPDATE users SET locale = 'ja' WHERE email = 'alice@customer.test'",
        [],
    )
    .await;
    let raw = b"From: alice@customer.test\nTo: support@example.test\nMessage-ID: <dl2@x.test>\nSubject: list\n\n#list\n";
    app.deliver(raw).await;
    let ja = app.mails().await.pop().unwrap();
    ja.assert_reads_well();
    assert!(
        ja.text.contains("最終更新：2026年") || ja.text.contains("最終更新："),
        "{}",
        ja.text
    );
    assert!(
        ja.text.contains("日 ") && ja.text.contains("（UTC+09:00）"),
        "{}",
        ja.text
    );
}

#[tokio::test]
async fn a_removed_follower_is_told_once() {
    let (app, _) = base().await;
    let before = app.mails().await.len();
    let raw = reply(
        "alice@customer.test",
        "rm",
        &token_of(1),
        "#unshare bob@customer.test\nBob has moved on.",
    );
    assert_eq!(app.deliver(&raw).await.outcome, Outcome::CommentAdded);
    let mails = app.mails().await.split_off(before);
    let to_bob: Vec<_> = mails
        .iter()
        .filter(|m| m.to == "bob@customer.test")
        .collect();
    assert_eq!(to_bob.len(), 1, "{mails:#?}");
    to_bob[0].assert_reads_well();
    assert!(
        to_bob[0]
            .text
            .contains("Alice Anders <alice@customer.test> removed you from ticket #1."),
        "{}",
        to_bob[0].text
    );
    assert!(
        !to_bob[0].text.contains("Bob has moved on."),
        "{}",
        to_bob[0].text
    );
}

#[tokio::test]
async fn a_staff_invite_explains_the_staff_commands() {
    let app = TestApp::new().await;
    let new = |email: &str, role| ticketgate::store::NewUser {
        email: email.parse().unwrap(),
        name: "Nina New".into(),
        role,
        org_id: None,
        locale: "en".into(),
    };
    let ingestor = app.app.ingestor.tickets();
    ticketgate::manage::add_user(
        ingestor,
        &new("nina@example.test", ticketgate::domain::ticket::Role::Staff),
        None,
        true,
    )
    .await
    .unwrap();
    ticketgate::manage::add_user(
        ingestor,
        &new(
            "carl@customer.test",
            ticketgate::domain::ticket::Role::Customer,
        ),
        None,
        true,
    )
    .await
    .unwrap();
    let mails = app.mails().await;
    assert_eq!(
        common::count_per_recipient(&mails),
        [
            ("carl@customer.test".to_string(), 1),
            ("nina@example.test".to_string(), 1)
        ]
    );
    let staff = mails.iter().find(|m| m.to == "nina@example.test").unwrap();
    staff.assert_reads_well();
    assert!(
        staff.text.contains("registered as support staff"),
        "{}",
        staff.text
    );
    assert!(staff.text.contains("#priority P2"), "{}", staff.text);
    assert!(!staff.text.contains("To open a ticket"), "{}", staff.text);
    let customer = mails.iter().find(|m| m.to == "carl@customer.test").unwrap();
    assert!(
        customer.text.contains("To open a ticket"),
        "{}",
        customer.text
    );
    assert!(!customer.text.contains("#priority"), "{}", customer.text);
}

/// A new ticket is one mail to its requester, the
/// acknowledgement, which also says what was not carried out.
#[tokio::test]
async fn a_new_ticket_with_a_failing_command_is_one_acknowledgement_naming_it() {
    let (app, _) = base().await;
    let before = app.mails().await.len();
    let raw = b"From: bob@customer.test\nTo: support@example.test\nMessage-ID: <nf1@x.test>\nSubject: Printer jams\n\n#share nobody@x.test\nThe printer jams on every page.\n";
    let r = app.deliver(raw).await;
    assert_eq!(r.outcome, Outcome::TicketCreated);
    let id = r.ticket.expect("a ticket");
    let mails = app.mails().await.split_off(before);
    let bobs: Vec<_> = mails
        .iter()
        .filter(|m| m.to == "bob@customer.test")
        .collect();
    assert_eq!(bobs.len(), 1, "{:?}", common::count_per_recipient(&mails));
    let m = bobs[0];
    m.assert_reads_well();
    for part in [&m.text, &m.html] {
        assert!(part.contains(&format!("#{id}")), "{part}");
        assert!(part.contains("#share nobody@x.test"), "{part}");
        assert!(part.contains("was not carried out"), "{part}");
        assert!(part.contains("The printer jams"), "{part}");
    }
}

/// With the acknowledgement suppressed, what failed is still reported, once.
#[tokio::test]
async fn a_suppressed_acknowledgement_leaves_the_failure_report_alone() {
    let (app, since) = base().await;
    let raw = b"From: bob@customer.test\nTo: support@example.test\nMessage-ID: <nf2@x.test>\nX-Auto-Response-Suppress: All\nSubject: Printer jams\n\n#share nobody@x.test\nThe printer jams.\n";
    assert_eq!(app.deliver(raw).await.outcome, Outcome::TicketCreated);
    let rows = new_rows(&app, since).await;
    let bobs: Vec<_> = rows
        .iter()
        .filter(|r| r.to == "bob@customer.test")
        .map(|r| r.template.as_str())
        .collect();
    assert_eq!(bobs, ["command_failed"], "{:?}", who(&rows));
}

/// An upgrade request answered by two rules (`ack`, `environment_upgrade`):
/// one mail that acknowledges the ticket and names the delivery lead, en and
/// ja, text and HTML.
#[tokio::test]
async fn an_upgrade_request_is_one_mail_with_the_acknowledgement_and_the_upgrade_answer() {
    let (app, _) = base().await;
    let site = app
        .store()
        .find_org("customer-site-a")
        .await
        .unwrap()
        .expect("seeded org");
    app.store()
        .add_user(&ticketgate::store::NewUser {
            email: "kenji@customer.test".parse().unwrap(),
            name: "Kenji Kato".into(),
            role: ticketgate::domain::ticket::Role::Customer,
            org_id: Some(site.id),
            locale: "ja".into(),
        })
        .await
        .unwrap();
    let cases = [
        (
            "bob@customer.test",
            "Environment upgrade to 5.2",
            ["opened ticket", "Your environment upgrade request"],
        ),
        (
            "kenji@customer.test",
            "本番環境のアップグレード",
            [
                "お問い合わせを受け付けました",
                "環境アップグレードのご依頼について",
            ],
        ),
    ];
    for (n, (from, subject, says)) in cases.into_iter().enumerate() {
        let before = app.mails().await.len();
        let raw = format!(
            "From: {from}\nTo: support@example.test\nMessage-ID: <upm{n}@x.test>\nSubject: {subject}\nContent-Type: text/plain; charset=utf-8\n\nPlease plan it.\n"
        );
        let r = app.deliver(raw.as_bytes()).await;
        assert_eq!(r.outcome, Outcome::TicketCreated);
        let id = r.ticket.expect("a ticket");
        let mails = app.mails().await.split_off(before);
        let theirs: Vec<_> = mails.iter().filter(|m| m.to == from).collect();
        assert_eq!(theirs.len(), 1, "{:?}", common::count_per_recipient(&mails));
        let m = theirs[0];
        m.assert_reads_well();
        for part in [&m.text, &m.html] {
            assert!(part.contains(&format!("#{id}")), "{part}");
            for s in says {
                assert!(part.contains(s), "{s}: {part}");
            }
            assert!(part.contains("dave@example.test"), "{part}");
            assert!(part.contains("Please plan it."), "{part}");
        }
    }
}

/// The acknowledgement lists failures as `command_failed` does: at most 20,
/// then how many more.
#[tokio::test]
async fn an_acknowledgement_lists_at_most_twenty_failures_and_counts_the_rest() {
    let (app, _) = base().await;
    let before = app.mails().await.len();
    let commands: String = (0..25).map(|i| format!("#status bogus{i}\n")).collect();
    let raw = format!(
        "From: bob@customer.test\nTo: support@example.test\nMessage-ID: <nf25@x.test>\nSubject: Many\n\n{commands}Hello.\n"
    );
    assert_eq!(
        app.deliver(raw.as_bytes()).await.outcome,
        Outcome::TicketCreated
    );
    let mails = app.mails().await.split_off(before);
    let bobs: Vec<_> = mails
        .iter()
        .filter(|m| m.to == "bob@customer.test")
        .collect();
    assert_eq!(bobs.len(), 1, "{:?}", common::count_per_recipient(&mails));
    let text = &bobs[0].text;
    assert!(text.contains("#status bogus19\n"), "{text}");
    assert!(!text.contains("#status bogus20\n"), "{text}");
    assert!(text.contains("... and 5 more, not listed here."), "{text}");
}

/// A Japanese requester reads a status and a priority set by mail in
/// Japanese: the shipped labels, the level's name, its target said in
/// Japanese; never the English config words.
#[tokio::test]
async fn a_japanese_requester_reads_status_and_priority_in_japanese() {
    let (app, _) = base().await;
    let alice = app
        .store()
        .find_user(&"alice@customer.test".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    app.store()
        .update_user(
            alice.id,
            &ticketgate::store::UserChange {
                locale: Some("ja".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let proof = verified("example.test");
    let steps = [
        (
            "ja1",
            "#status in progress\nLooking.",
            "「新規」から「対応中」",
        ),
        ("ja2", "#priority P2\nUrgent.", "P2（高）"),
    ];
    for (id, body, says) in steps {
        let before = app.mails().await.len();
        let r = app
            .deliver(&reply("sam@example.test", id, &proof, body))
            .await;
        assert_eq!(r.outcome, Outcome::CommentAdded, "{body}");
        let mails = app.mails().await.split_off(before);
        let theirs: Vec<_> = mails
            .iter()
            .filter(|m| m.to == "alice@customer.test")
            .collect();
        assert_eq!(theirs.len(), 1, "{:?}", common::count_per_recipient(&mails));
        let m = theirs[0];
        m.assert_reads_well();
        assert!(m.text.contains(says), "{says}: {}", m.text);
        for part in [&m.text, &m.html] {
            assert!(part.contains("対応中"), "{part}");
            for english in ["In Progress", "New", "High", "hours"] {
                assert!(!part.contains(english), "{english}: {part}");
            }
        }
        if id == "ja2" {
            assert!(m.text.contains("「4時間」"), "{}", m.text);
        }
    }
    // The team reads the same changes in English.
    let team: Vec<_> = app
        .mails()
        .await
        .into_iter()
        .filter(|m| m.to == "team@example.test" && m.text.contains("In Progress"))
        .collect();
    assert!(!team.is_empty());
}
