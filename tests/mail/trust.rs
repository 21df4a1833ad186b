//! Unproven senders must gain nothing: a forged From, a hostile
//! Authentication-Results or a look-alike address changes nothing it should not.

use crate::common;

use common::TestApp;
use ticketgate::domain::outcome::Outcome;
use ticketgate::domain::ticket::Role;
use ticketgate::domain::token;
use ticketgate::store::{NewUser, TicketView};

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
    // Only the support team's alert about quarantined mail.
    let rows = app.outbox().await.split_off(before);
    assert_eq!(
        rows.iter()
            .map(|r| (r.to.as_str(), r.template.as_str()))
            .collect::<Vec<_>>(),
        [("team@example.test", "quarantine_alert")],
        "nobody else was emailed"
    );
}

/// Registers a customer of Customer Site A (the organization of the ticket
/// `alices_ticket` opens).
async fn add_site_a_customer(app: &TestApp, email: &str, name: &str) {
    let site_a = app
        .store()
        .find_org("customer-site-a")
        .await
        .unwrap()
        .unwrap();
    app.store()
        .add_user(&NewUser {
            email: email.parse().unwrap(),
            name: name.into(),
            role: Role::Customer,
            org_id: Some(site_a.id),
            locale: "en".into(),
        })
        .await
        .unwrap();
}

fn message(from: &str, headers: &str, body: &str) -> Vec<u8> {
    format!("From: {from}\nTo: support@example.test\n{headers}\n\n{body}\n").into_bytes()
}

/// A reply on ticket #1 by `from`, with extra `headers`.
fn reply_on_1(from: &str, id: &str, headers: &str, body: &str) -> Vec<u8> {
    let headers = format!(
        "Message-ID: <{id}@test>\nIn-Reply-To: <base-1@customer.test>\nSubject: Re: Login page\n{headers}"
    );
    message(from, headers.trim_end(), body)
}

/// The reply address the gateway issues to `user` on `ticket`.
fn own_reply_address(ticket: i64, user: i64) -> String {
    token::reply_address(
        &"support@example.test".parse().unwrap(),
        b"test-secret",
        ticket,
        user,
    )
    .to_string()
}

fn followers(ticket: &TicketView) -> Vec<(String, String)> {
    ticket
        .followers
        .iter()
        .map(|f| (f.email.clone(), f.source.to_string()))
        .collect()
}

/// `(to, template)` of the rows queued since `since`.
async fn mail_since(app: &TestApp, since: usize) -> Vec<(String, String)> {
    app.outbox()
        .await
        .split_off(since)
        .into_iter()
        .map(|r| (r.to, r.template))
        .collect()
}

/// The commands and mentions `command_failed` notices to `to` list.
async fn reported_to(app: &TestApp, to: &str) -> Vec<String> {
    app.outbox()
        .await
        .into_iter()
        .filter(|r| r.to == to && r.template == "command_failed")
        .flat_map(|r| {
            ["failures", "mentions"].into_iter().flat_map(move |list| {
                r.context["event"][list]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
        })
        .filter_map(|f| f["command"].as_str().map(str::to_string))
        .collect()
}

/// A mention never lets anyone in (src/domain/ticket.rs, `may_mention`):
/// neither forged nor proven, staff included. Letting someone of another
/// company in is an explicit `#share`.
#[tokio::test]
async fn a_staff_mention_lets_nobody_in_forged_or_proven_and_is_reported_back() {
    let app = TestApp::new().await;
    let t = alices_ticket(&app).await;
    let since = app.outbox().await.len();
    let forged = app
        .deliver(&reply_on_1(
            "sam@example.test",
            "m1",
            "",
            "@carol@other.test please look",
        ))
        .await;
    assert_eq!(forged.outcome, Outcome::CommentAdded);
    let ticket = app.ticket(t).await;
    assert!(
        !followers(&ticket)
            .iter()
            .any(|(e, _)| e == "carol@other.test"),
        "carol does not follow: {:?}",
        followers(&ticket)
    );
    let sent = mail_since(&app, since).await;
    assert!(
        !sent.iter().any(|(to, _)| to == "carol@other.test"),
        "carol is not emailed: {sent:?}"
    );
    assert_eq!(
        reported_to(&app, "sam@example.test").await,
        ["@carol@other.test"]
    );

    // The same mention, vouched for by our MTA: still nobody let in, and
    // Sam is told why and what to do instead.
    let since = app.outbox().await.len();
    let vouched = "Authentication-Results: mx.example.test; dkim=pass header.d=example.test";
    let proven = app
        .deliver(&reply_on_1(
            "sam@example.test",
            "m2",
            vouched,
            "@carol@other.test please look",
        ))
        .await;
    assert_eq!(proven.outcome, Outcome::CommentAdded);
    assert!(
        !followers(&app.ticket(t).await)
            .iter()
            .any(|(e, _)| e == "carol@other.test")
    );
    let sent = mail_since(&app, since).await;
    assert!(
        !sent.iter().any(|(to, _)| to == "carol@other.test"),
        "{sent:?}"
    );
    let notice = app
        .outbox()
        .await
        .into_iter()
        .skip(since)
        .find(|r| r.to == "sam@example.test" && r.template == "command_failed")
        .expect("Sam is told the mention failed");
    assert!(
        notice
            .context
            .to_string()
            .contains("share the ticket with them first"),
        "{}",
        notice.context
    );

    // An explicit share does let her in.
    let since = app.outbox().await.len();
    let shared = app
        .deliver(&reply_on_1(
            "sam@example.test",
            "m3",
            vouched,
            "#share carol@other.test\n\nCarol, please look.",
        ))
        .await;
    assert_eq!(shared.outcome, Outcome::CommentAdded);
    assert!(followers(&app.ticket(t).await).contains(&("carol@other.test".into(), "share".into())));
    let to_carol: Vec<_> = mail_since(&app, since)
        .await
        .into_iter()
        .filter(|(to, _)| to == "carol@other.test")
        .collect();
    assert_eq!(to_carol.len(), 1, "{to_carol:?}");
}

#[tokio::test]
async fn an_unproven_customer_may_still_mention_someone_who_already_sees_the_ticket() {
    let app = TestApp::new().await;
    let t = alices_ticket(&app).await;
    // Erin is in the ticket's organization: pointing her at it gives nothing away.
    assert_eq!(app.ticket(t).await.orgs, ["customer-site-a"]);
    add_site_a_customer(&app, "erin@customer.test", "Erin Evans").await;
    let since = app.outbox().await.len();
    let r = app
        .deliver(&reply_on_1(
            "alice@customer.test",
            "m3",
            "",
            "@erin see above",
        ))
        .await;
    assert_eq!(r.outcome, Outcome::CommentAdded);
    let to_erin: Vec<_> = mail_since(&app, since)
        .await
        .into_iter()
        .filter(|(to, _)| to == "erin@customer.test")
        .collect();
    assert_eq!(to_erin, [("erin@customer.test".into(), "mentioned".into())]);
    assert!(
        followers(&app.ticket(t).await).contains(&("erin@customer.test".into(), "mention".into()))
    );
    assert!(reported_to(&app, "alice@customer.test").await.is_empty());
}

#[tokio::test]
async fn removing_followers_or_organizations_needs_proof() {
    let app = TestApp::new().await;
    let t = alices_ticket(&app).await;
    let before = app.ticket(t).await;
    assert!(
        followers(&before)
            .iter()
            .any(|(e, _)| e == "bob@customer.test")
    );
    assert_eq!(before.orgs.len(), 1);

    // A never-seen address at the org's domain, registered by this very mail.
    app.deliver(&reply_on_1(
        "eve@customer.test",
        "u1",
        "",
        "#unshare-org customer-site-a\nPlease ignore the noise.",
    ))
    .await;
    // A forged requester, and a forged Bob leaving his own ticket.
    app.deliver(&reply_on_1(
        "alice@customer.test",
        "u2",
        "",
        "#unshare bob@customer.test\nThanks.",
    ))
    .await;
    app.deliver(&reply_on_1(
        "bob@customer.test",
        "u3",
        "",
        "#unfollow\nI am out of office.",
    ))
    .await;
    let after = app.ticket(t).await;
    assert_eq!(after.orgs, before.orgs, "the org stays attached");
    assert_eq!(followers(&after), followers(&before), "nobody was removed");
    assert_eq!(
        reported_to(&app, "eve@customer.test").await,
        ["#unshare-org customer-site-a"]
    );
    assert_eq!(
        reported_to(&app, "alice@customer.test").await,
        ["#unshare bob@customer.test"]
    );
    assert_eq!(reported_to(&app, "bob@customer.test").await, ["#unfollow"]);

    // A reply to Alice's own reply address is proof, as for a share.
    app.deliver(&reply_on_1(
        "alice@customer.test",
        "u4",
        &format!("Delivered-To: {}", own_reply_address(t, 1)),
        "#unshare bob@customer.test\nThanks.",
    ))
    .await;
    assert!(
        !followers(&app.ticket(t).await)
            .iter()
            .any(|(e, _)| e == "bob@customer.test")
    );
}

#[tokio::test]
async fn an_unproven_internal_note_is_quarantined_never_published() {
    let app = TestApp::new().await;
    let t = alices_ticket(&app).await;
    let since = app.outbox().await.len();
    // To the support address, not Sam's own reply address, and no verdict of our MTA.
    let r = app
        .deliver(&reply_on_1(
            "sam@example.test",
            "i1",
            "",
            "#internal\nBetween us: the customer's admin broke it.",
        ))
        .await;
    assert_eq!(
        (r.outcome, r.reason.as_deref(), r.ticket),
        (Outcome::Quarantined, Some("unverified_internal"), Some(t))
    );
    assert_eq!(app.ticket(t).await.comments.len(), 1, "no comment added");
    let sent = mail_since(&app, since).await;
    assert_eq!(
        sent,
        [
            ("sam@example.test".into(), "refused".into()),
            ("team@example.test".into(), "quarantine_alert".into())
        ],
        "only Sam hears of it, and the team that it waits for review"
    );
    let notice = app
        .outbox()
        .await
        .into_iter()
        .rfind(|r| r.template == "refused")
        .unwrap();
    assert_eq!(notice.context["event"]["reason"], "unverified_internal");

    // Replying to his own reply address, it is an internal note.
    let since = app.outbox().await.len();
    let r = app
        .deliver(&reply_on_1(
            "sam@example.test",
            "i2",
            &format!("Delivered-To: {}", own_reply_address(t, 4)),
            "#internal\nBetween us: the customer's admin broke it.",
        ))
        .await;
    assert_eq!(r.outcome, Outcome::CommentAdded);
    let ticket = app.ticket(t).await;
    assert!(ticket.comments.last().unwrap().internal);
    let sent = mail_since(&app, since).await;
    assert!(
        sent.iter().all(|(to, _)| to.ends_with("@example.test")),
        "staff only: {sent:?}"
    );
}

#[tokio::test]
async fn a_customer_asking_for_an_internal_note_is_quarantined() {
    let app = TestApp::new().await;
    let t = alices_ticket(&app).await;
    let r = app
        .deliver(&reply_on_1(
            "bob@customer.test",
            "i3",
            &format!("Delivered-To: {}", own_reply_address(t, 2)),
            "#internal\nDo not tell Alice.",
        ))
        .await;
    assert_eq!(
        (r.outcome, r.reason.as_deref()),
        (Outcome::Quarantined, Some("unverified_internal"))
    );
    assert_eq!(app.ticket(t).await.comments.len(), 1);
}

/// A new message (not a reply) asking for `#internal`: Bob in Cc would
/// follow the ticket and read its opening comment.
#[tokio::test]
async fn a_new_message_asking_for_an_internal_note_opens_no_public_ticket() {
    let app = TestApp::new().await;
    let body = "#internal\nBetween us: the customer's admin broke it.";
    let r = app
        .deliver(&message(
            "sam@example.test",
            "Cc: bob@customer.test\nMessage-ID: <n1@test>\nSubject: Admin broke it",
            body,
        ))
        .await;
    assert_eq!(
        (r.outcome, r.reason.as_deref(), r.ticket),
        (Outcome::Quarantined, Some("unverified_internal"), None),
        "an unproven staff From opens nothing"
    );
    let since = app.outbox().await.len();
    let proven = "Authentication-Results: mx.example.test; dkim=pass header.d=example.test";
    let r = app
        .deliver(&message(
            "sam@example.test",
            &format!(
                "{proven}\nCc: bob@customer.test\nMessage-ID: <n2@test>\nSubject: Admin broke it"
            ),
            body,
        ))
        .await;
    assert_eq!(r.outcome, Outcome::TicketCreated);
    let ticket = app.ticket(r.ticket.unwrap()).await;
    assert!(
        ticket.comments[0].internal,
        "the opening comment is internal"
    );
    let sent = mail_since(&app, since).await;
    assert!(
        sent.iter().all(|(to, _)| to.ends_with("@example.test")),
        "staff only: {sent:?}"
    );
}

#[tokio::test]
async fn a_look_alike_address_is_not_registered_and_staff_are_told() {
    let app = TestApp::new().await;
    // Cyrillic "а" (U+0430) in place of Latin "a", at Site A's domain.
    let from = "\"Alice Anders\" <\u{430}lice@customer.test>";
    let r = app
        .deliver(&message(
            from,
            "Message-ID: <c1@customer.test>\nSubject: New bank details",
            "Please pay to the new account.",
        ))
        .await;
    assert_eq!(
        (r.outcome, r.reason.as_deref(), r.ticket),
        (Outcome::Rejected, Some("confusable_sender"), None)
    );
    let address = "\u{430}lice@customer.test".parse().unwrap();
    assert!(app.store().find_user(&address).await.unwrap().is_none());
    let sent = mail_since(&app, 0).await;
    assert_eq!(
        sent,
        [("team@example.test".into(), "sender_refused".into())]
    );
}

#[tokio::test]
async fn a_display_name_claiming_support_or_staff_is_not_taken() {
    let app = TestApp::new().await;
    for (i, from, expected) in [
        (
            1,
            "\"Sam Staff (Example Support)\" <helpdesk@customer.test>",
            "helpdesk",
        ),
        (2, "\"SAM STAFF\" <sam.s@customer.test>", "sam.s"),
        (3, "\"Erin Evans\" <erin@customer.test>", "Erin Evans"),
    ] {
        let r = app
            .deliver(&message(
                from,
                &format!("Message-ID: <n{i}@customer.test>\nSubject: Question {i}"),
                "Is the portal down?",
            ))
            .await;
        assert_eq!(r.outcome, Outcome::TicketCreated, "{from}");
        let address = from
            .rsplit_once('<')
            .unwrap()
            .1
            .trim_end_matches('>')
            .parse()
            .unwrap();
        let user = app.store().find_user(&address).await.unwrap().unwrap();
        assert_eq!(user.name, expected, "{from}");
    }
}

#[tokio::test]
async fn with_notify_staff_each_every_staff_member_gets_a_copy_they_can_command_from() {
    let app = TestApp::with_settings(|s| {
        s.support.notify_staff = ticketgate::config::NotifyStaff::Each;
    })
    .await;
    let t = alices_ticket(&app).await;
    let rows = app.outbox().await;
    let count = |to: &str| rows.iter().filter(|r| r.to == to).count();
    // Sam is staff; Dave is staff and follows (a delivery lead): one mail each.
    assert_eq!(
        (
            count("team@example.test"),
            count("sam@example.test"),
            count("dave@example.test")
        ),
        (1, 1, 1),
        "{:?}",
        rows.iter()
            .map(|r| (&r.to, &r.template))
            .collect::<Vec<_>>()
    );
    let sams = rows.iter().find(|r| r.to == "sam@example.test").unwrap();
    assert_eq!(
        sams.to_user_id,
        Some(4),
        "his own copy, his own reply address"
    );

    // A reply to that copy is proven: his command runs.
    let r = app
        .deliver(&reply_on_1(
            "sam@example.test",
            "e1",
            &format!("Delivered-To: {}", own_reply_address(t, 4)),
            "#status blocked\nWaiting for the database team.",
        ))
        .await;
    assert_eq!(r.outcome, Outcome::CommentAdded);
    assert_eq!(
        serde_json::to_value(app.ticket(t).await.status).unwrap(),
        "blocked"
    );
}

#[tokio::test]
async fn by_default_the_team_gets_one_notice_and_staff_no_copies() {
    let app = TestApp::new().await;
    alices_ticket(&app).await;
    let rows = app.outbox().await;
    assert_eq!(
        rows.iter().filter(|r| r.to == "team@example.test").count(),
        1
    );
    assert!(rows.iter().all(|r| r.to != "sam@example.test"));
}

#[tokio::test]
async fn a_quoted_semicolon_in_our_mta_s_verdict_proves_nothing() {
    let app = TestApp::new().await;
    let t = alices_ticket(&app).await;
    // The envelope sender is the attacker's choice; our MTA quotes it.
    let forged = "Authentication-Results: mx.example.test; spf=pass \
        smtp.mailfrom=\"x;dkim=pass header.d=example.test x=\"@evil.test; dkim=none";
    app.deliver(&reply_on_1(
        "sam@example.test",
        "h1",
        forged,
        "#status blocked\n#priority P1\nWaiting on the vendor.",
    ))
    .await;
    let ticket = app.ticket(t).await;
    assert_eq!(serde_json::to_value(ticket.status).unwrap(), "new");
    assert_eq!(ticket.priority, None);
    assert_eq!(
        reported_to(&app, "sam@example.test").await,
        ["#status blocked", "#priority P1"]
    );
}

#[tokio::test]
async fn staff_rules_run_only_for_proven_staff() {
    let app = TestApp::with_rules(
        "[[rule]]\nname = \"staff replies set P1\"\non = \"comment_added\"\n\
         when = { author_role = \"staff\" }\nthen = { set_priority = \"P1\" }\n",
    )
    .await;
    let t = alices_ticket(&app).await;
    app.deliver(&reply_on_1(
        "sam@example.test",
        "r1",
        "",
        "Looking into it.",
    ))
    .await;
    assert_eq!(app.ticket(t).await.priority, None, "a forged staff From");
    app.deliver(&reply_on_1(
        "sam@example.test",
        "r2",
        &format!("Delivered-To: {}", own_reply_address(t, 4)),
        "Looking into it.",
    ))
    .await;
    assert_eq!(
        app.ticket(t)
            .await
            .priority
            .map(|p| serde_json::to_value(p).unwrap()),
        Some(serde_json::json!("P1"))
    );
}

/// An opening mail with `cc` in Cc, proven by our MTA when `proven`.
fn opening_with_cc(from: &str, id: &str, proven: bool, cc: &str, body: &str) -> Vec<u8> {
    let domain = from.rsplit_once('@').map_or("", |(_, d)| d);
    let verdict = if proven {
        format!("Authentication-Results: mx.example.test; dkim=pass header.d={domain}\n")
    } else {
        String::new()
    };
    message(
        from,
        &format!("{verdict}Cc: {cc}\nMessage-ID: <{id}@test>\nSubject: Opened with Cc {id}"),
        body,
    )
}

#[tokio::test]
async fn a_cc_grants_what_a_share_would_and_nothing_more() {
    let app = TestApp::new().await;
    let carol = "Cc: carol@other.test";
    // (who writes, proven, whether Carol of Other Corp in Cc follows, what
    // the sender is told). Bob, of Alice's organization, follows Alice's
    // ticket without proof: he could read it anyway. Sam's ticket would be
    // new to him: Sam must prove who he is, as for `#share`.
    let cases = [
        ("alice@customer.test", false, false, vec![carol]),
        ("alice@customer.test", true, false, vec![carol]),
        (
            "sam@example.test",
            false,
            false,
            vec![carol, "Cc: bob@customer.test"],
        ),
        ("sam@example.test", true, true, vec![]),
    ];
    for (i, (from, proven, carol_follows, expected)) in cases.into_iter().enumerate() {
        let since = app.outbox().await.len();
        let r = app
            .deliver(&opening_with_cc(
                from,
                &format!("cc{i}"),
                proven,
                "\"Carol Chen\" <carol@other.test>, \"Bob Brown\" <bob@customer.test>",
                "The login page is down again.",
            ))
            .await;
        let case = format!("{from}, proven: {proven}");
        assert_eq!(r.outcome, Outcome::TicketCreated, "{case}");
        let ticket = app.ticket(r.ticket.unwrap()).await;
        assert_eq!(
            followers(&ticket).contains(&("carol@other.test".into(), "cc".into())),
            carol_follows,
            "{case}: {:?}",
            followers(&ticket)
        );
        let to_carol = mail_since(&app, since)
            .await
            .into_iter()
            .filter(|(to, _)| to == "carol@other.test")
            .count();
        // One who follows was in Cc of the mail itself: nothing more to tell.
        assert_eq!(to_carol, 0, "{case}: mail to carol");
        let reported: Vec<String> = app
            .outbox()
            .await
            .split_off(since)
            .into_iter()
            // In a `command_failed` notice, or in the acknowledgement
            // already going to the sender (one mail per message).
            .filter(|r| r.to == from)
            .flat_map(|r| {
                r.context["event"]["failures"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|f| f["command"].as_str().map(str::to_string))
            .collect();
        assert_eq!(reported, expected, "{case}: the sender is told");
        assert_eq!(
            followers(&ticket).contains(&("bob@customer.test".into(), "cc".into())),
            expected.len() < 2,
            "{case}: bob"
        );
    }
    // Later comments, a staff password among them, never reach Carol.
    let since = app.outbox().await.len();
    app.deliver(&message(
        "sam@example.test",
        &format!(
            "Delivered-To: {}\nMessage-ID: <cc-later@test>\nIn-Reply-To: <cc0@test>\n\
             Subject: Re: Opened with Cc cc0",
            own_reply_address(1, 4)
        ),
        "The temporary password is hunter2.",
    ))
    .await;
    let sent = mail_since(&app, since).await;
    assert!(
        sent.iter().any(|(to, _)| to == "alice@customer.test"),
        "{sent:?}"
    );
    assert!(
        !sent.iter().any(|(to, _)| to == "carol@other.test"),
        "{sent:?}"
    );
}

#[tokio::test]
async fn an_address_with_invisible_characters_is_refused_never_a_second_user() {
    let app = TestApp::new().await;
    let invisible = [
        ("zero-width space", "\u{200b}"),
        ("zero-width joiner", "\u{200d}"),
        ("word joiner", "\u{2060}"),
        ("right-to-left override", "\u{202e}"),
        ("soft hyphen", "\u{ad}"),
        ("Mongolian vowel separator", "\u{180e}"),
        ("combining grapheme joiner", "\u{34f}"),
        ("variation selector", "\u{fe0f}"),
        ("combining acute accent", "\u{301}"),
    ];
    for (i, (name, c)) in invisible.into_iter().enumerate() {
        let since = app.outbox().await.len();
        let address = format!("alice{c}@customer.test");
        let r = app
            .deliver(&message(
                &format!("\"Alice Anders\" <{address}>"),
                &format!("Message-ID: <inv{i}@test>\nSubject: New bank details"),
                "Please pay to the new account.",
            ))
            .await;
        assert_eq!(
            (r.outcome, r.reason.as_deref(), r.ticket),
            (Outcome::Rejected, Some("confusable_sender"), None),
            "{name}"
        );
        if let Ok(parsed) = address.parse() {
            assert!(
                app.store().find_user(&parsed).await.unwrap().is_none(),
                "{name}: not registered"
            );
        }
        assert_eq!(
            mail_since(&app, since).await,
            [("team@example.test".into(), "sender_refused".into())],
            "{name}: the team is told"
        );
    }
    assert_eq!(
        app.store().list_users().await.unwrap().len(),
        5,
        "nobody new"
    );
    // Alice's handle still names her alone.
    let r = app
        .deliver(&message(
            "bob@customer.test",
            "Message-ID: <inv-mention@test>\nSubject: Printer",
            "@alice can you check the printer?",
        ))
        .await;
    assert_eq!(r.outcome, Outcome::TicketCreated);
    assert!(reported_to(&app, "bob@customer.test").await.is_empty());
    assert!(
        followers(&app.ticket(r.ticket.unwrap()).await)
            .contains(&("alice@customer.test".into(), "mention".into()))
    );
}

#[tokio::test]
async fn a_display_name_that_is_an_address_is_not_taken_as_a_name() {
    let app = TestApp::new().await;
    for (i, from, expected) in [
        (1, "\"staff@example.test\" <new1@customer.test>", "new1"),
        (
            2,
            "\"sam\u{ff20}example.test\" <new2@customer.test>",
            "new2",
        ),
        (
            3,
            "\"support@example.test (Helpdesk)\" <new3@customer.test>",
            "new3",
        ),
        (4, "\"Dana @ Site A\" <new4@customer.test>", "Dana @ Site A"),
    ] {
        let r = app
            .deliver(&message(
                from,
                &format!("Message-ID: <addr-name{i}@test>\nSubject: Question {i}"),
                "Is the portal down?",
            ))
            .await;
        assert_eq!(r.outcome, Outcome::TicketCreated, "{from}");
        let address = format!("new{i}@customer.test").parse().unwrap();
        let user = app.store().find_user(&address).await.unwrap().unwrap();
        assert_eq!(user.name, expected, "{from}");
        let ticket = app.ticket(r.ticket.unwrap()).await;
        assert_eq!(ticket.requester, format!("new{i}@customer.test"));
    }
}

/// A reply on ticket #1 whose only body is `html`.
fn html_reply_on_1(from: &str, id: &str, headers: &str, html: &str) -> Vec<u8> {
    let headers = format!(
        "Message-ID: <{id}@test>\nIn-Reply-To: <base-1@customer.test>\nSubject: Re: Login page\n\
         MIME-Version: 1.0\nContent-Type: text/html; charset=utf-8\n{headers}"
    );
    message(from, headers.trim_end(), html)
}

const HIDING: [(&str, &str); 7] = [
    ("display:none", "<div style=\"display:none\">{}</div>"),
    ("the hidden attribute", "<div hidden>{}</div>"),
    (
        "visibility:hidden",
        "<div style=\"visibility: hidden\">{}</div>",
    ),
    ("zero font size", "<span style=\"font-size:0px\">{}</span>"),
    (
        "white on white",
        "<div style=\"background-color:#ffffff\"><font color=\"#FFFFFF\">{}</font></div>",
    ),
    ("white on the page", "<span style=\"color:white\">{}</span>"),
    ("aria-hidden", "<div aria-hidden=\"true\">{}</div>"),
];

#[tokio::test]
async fn a_command_in_hidden_html_text_does_nothing() {
    for (trick, wrap) in HIDING {
        let app = TestApp::new().await;
        let t = alices_ticket(&app).await;
        let html = format!(
            "<html><body>{}<p>Thanks for the update, I will test it tomorrow.</p></body></html>",
            wrap.replace("{}", "#close")
        );
        let r = app
            .deliver(&html_reply_on_1("alice@customer.test", "h1", "", &html))
            .await;
        assert_eq!(r.outcome, Outcome::CommentAdded, "{trick}");
        let ticket = app.ticket(t).await;
        assert_eq!(
            serde_json::to_value(ticket.status).unwrap(),
            "new",
            "{trick}: the ticket stays open"
        );
        let comment = &ticket.comments.last().unwrap().body;
        assert!(
            comment.contains("I will test it tomorrow") && !comment.contains("#close"),
            "{trick}: {comment:?}"
        );
        // The same command where a reader sees it closes the ticket.
        app.deliver(&html_reply_on_1(
            "alice@customer.test",
            "h2",
            "",
            "<html><body><p>#close</p><p>Works now.</p></body></html>",
        ))
        .await;
        assert_eq!(
            serde_json::to_value(app.ticket(t).await.status).unwrap(),
            "closed",
            "{trick}: a visible command"
        );
    }
}

#[tokio::test]
async fn a_mention_in_hidden_html_text_lets_nobody_in() {
    for (trick, wrap) in HIDING {
        let app = TestApp::new().await;
        let t = alices_ticket(&app).await;
        let since = app.outbox().await.len();
        let html = format!(
            "<html><body><p>Looking into it.</p>{}</body></html>",
            wrap.replace("{}", "@carol@other.test please look")
        );
        // Proven staff: a visible mention would let Carol in.
        let r = app
            .deliver(&html_reply_on_1(
                "sam@example.test",
                "hm1",
                &format!("Delivered-To: {}", own_reply_address(t, 4)),
                &html,
            ))
            .await;
        assert_eq!(r.outcome, Outcome::CommentAdded, "{trick}");
        assert!(
            !followers(&app.ticket(t).await)
                .iter()
                .any(|(e, _)| e == "carol@other.test"),
            "{trick}"
        );
        let sent = mail_since(&app, since).await;
        assert!(
            !sent.iter().any(|(to, _)| to == "carol@other.test"),
            "{trick}: {sent:?}"
        );
    }
}

#[tokio::test]
async fn in_multipart_alternative_mail_commands_come_from_the_text_part() {
    let app = TestApp::new().await;
    let t = alices_ticket(&app).await;
    let raw = "From: alice@customer.test\nTo: support@example.test\n\
        Message-ID: <alt1@test>\nIn-Reply-To: <base-1@customer.test>\nSubject: Re: Login page\n\
        MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=b\n\n\
        --b\nContent-Type: text/plain; charset=utf-8\n\nThanks, I will test it tomorrow.\n\
        --b\nContent-Type: text/html; charset=utf-8\n\n\
        <html><body><div style=\"display:none\">#close</div><p>Thanks, I will test it tomorrow.</p></body></html>\n\
        --b--\n";
    let r = app.deliver(raw.as_bytes()).await;
    assert_eq!(r.outcome, Outcome::CommentAdded);
    assert_eq!(
        serde_json::to_value(app.ticket(t).await.status).unwrap(),
        "new"
    );
}

#[tokio::test]
async fn a_mention_with_an_invisible_character_names_nobody() {
    let app = TestApp::new().await;
    let t = alices_ticket(&app).await;
    add_site_a_customer(&app, "ali@customer.test", "Ali Baba").await;
    let since = app.outbox().await.len();
    // It reads "@alice"; cut at the invisible character it would be "@ali".
    let r = app
        .deliver(&reply_on_1(
            "bob@customer.test",
            "zw1",
            "",
            "@ali\u{200b}ce can you confirm?",
        ))
        .await;
    assert_eq!(r.outcome, Outcome::CommentAdded);
    let sent = mail_since(&app, since).await;
    assert!(
        !sent
            .iter()
            .any(|(to, template)| to == "ali@customer.test" || template == "mentioned"),
        "{sent:?}"
    );
    assert_eq!(
        reported_to(&app, "bob@customer.test").await,
        ["@ali\u{200b}ce"]
    );
    assert!(
        !followers(&app.ticket(t).await)
            .iter()
            .any(|(e, _)| e == "ali@customer.test")
    );
}

#[tokio::test]
async fn a_cc_on_a_reply_adds_no_follower() {
    let app = TestApp::new().await;
    let t = alices_ticket(&app).await;
    let before = followers(&app.ticket(t).await);
    let since = app.outbox().await.len();
    let r = app
        .deliver(&reply_on_1(
            "alice@customer.test",
            "ccr1",
            &format!(
                "Delivered-To: {}\nCc: carol@other.test, erin@customer.test",
                own_reply_address(t, 1)
            ),
            "Adding a few people in copy.",
        ))
        .await;
    assert_eq!(r.outcome, Outcome::CommentAdded);
    assert_eq!(followers(&app.ticket(t).await), before);
    let sent = mail_since(&app, since).await;
    assert!(
        !sent.iter().any(|(to, _)| to == "carol@other.test"),
        "{sent:?}"
    );
}
