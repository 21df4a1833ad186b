//! The admin HTTP endpoint over real HTTP on an ephemeral port, against a
//! real SQLite database: authentication, every route's happy path and its
//! refusals, notifications queued by API changes, replay, and the OpenAPI document.

use crate::common;

use std::net::SocketAddr;

use common::TestApp;
use common::http::{Response, request};
use serde_json::{Value, json};
use ticketgate::api::{self, ApiState};
use ticketgate::domain::ids::EmailAddress;
use ticketgate::health::MailboxState;
use tokio_util::sync::CancellationToken;

struct Api {
    t: TestApp,
    addr: SocketAddr,
    /// sam@example.test, staff.
    token: String,
    _stop: tokio_util::sync::DropGuard,
}

impl Api {
    async fn start() -> Self {
        Self::with_mailboxes(Vec::new()).await
    }

    async fn with_mailboxes(
        mailboxes: Vec<(String, tokio::sync::watch::Receiver<MailboxState>)>,
    ) -> Self {
        Self::serve(TestApp::new().await, mailboxes).await
    }

    async fn serve(
        t: TestApp,
        mailboxes: Vec<(String, tokio::sync::watch::Receiver<MailboxState>)>,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = ApiState::new(
            t.app.tickets().clone(),
            t.app.replay(),
            t.app.ingestor.metrics().clone(),
            mailboxes,
        );
        let cancel = CancellationToken::new();
        tokio::spawn(api::serve(listener, state, cancel.clone()));
        let token = token_for(&t, "sam@example.test").await.0;
        Self {
            t,
            addr,
            token,
            _stop: cancel.drop_guard(),
        }
    }

    async fn get(&self, path: &str) -> Response {
        request(self.addr, "GET", path, Some(&self.token), None).await
    }

    async fn send(&self, method: &str, path: &str, body: Value) -> Response {
        let body = serde_json::to_vec(&body).unwrap();
        request(self.addr, method, path, Some(&self.token), Some(&body)).await
    }

    async fn delete(&self, path: &str) -> Response {
        request(self.addr, "DELETE", path, Some(&self.token), None).await
    }

    /// `(to, template)` of every outbox row after the first `skip`.
    async fn outbox_since(&self, skip: usize) -> Vec<(String, String)> {
        self.t
            .outbox()
            .await
            .into_iter()
            .skip(skip)
            .map(|r| (r.to, r.template))
            .collect()
    }

    async fn outbox_len(&self) -> usize {
        self.t.outbox().await.len()
    }
}

/// A token for a registered user, as `token create` makes it: `(token, id)`.
async fn token_for(t: &TestApp, email: &str) -> (String, i64) {
    let user = t
        .store()
        .find_user(&EmailAddress::parse(email).unwrap())
        .await
        .unwrap()
        .unwrap();
    let token = api::new_token().unwrap();
    let row = t
        .store()
        .create_token(
            user.id,
            &api::token_hash(&token),
            Some("test"),
            time::OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
    (token, row.id)
}

fn pair(to: &str, template: &str) -> (String, String) {
    (to.to_string(), template.to_string())
}

const ALICE_OPENS: &[u8] = b"Message-ID: <api-1@customer.test>\r\nFrom: Alice Anders <alice@customer.test>\r\nTo: support@example.test\r\nSubject: Import fails\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\n\r\nThe nightly import fails.\r\n";

async fn alice_ticket(api: &Api) -> i64 {
    let report = api.t.deliver(ALICE_OPENS).await;
    report.ticket.expect("a ticket")
}

#[tokio::test]
async fn requests_without_a_valid_staff_token_get_401_or_403() {
    let api = Api::start().await;
    let missing = request(api.addr, "GET", "/api/tickets", None, None).await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.code(), "unauthorized");
    assert_eq!(
        missing.header("www-authenticate"),
        Some("Bearer realm=\"ticketgate\"")
    );

    let wrong = request(api.addr, "GET", "/api/tickets", Some("tg_nope"), None).await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.code(), "invalid_token");

    let (token, id) = token_for(&api.t, "dave@example.test").await;
    let ok = request(api.addr, "GET", "/api/tickets", Some(&token), None).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert!(
        api.t
            .store()
            .revoke_token(id, time::OffsetDateTime::now_utc())
            .await
            .unwrap()
    );
    let revoked = request(api.addr, "GET", "/api/tickets", Some(&token), None).await;
    assert_eq!(revoked.status, 401);
    assert_eq!(revoked.code(), "invalid_token");

    // A customer's token (made behind the CLI's back) acts as no one.
    let (customer, _) = token_for(&api.t, "alice@customer.test").await;
    let refused = request(api.addr, "GET", "/api/tickets", Some(&customer), None).await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.code(), "forbidden");

    // The operator's endpoints need no token.
    let health = request(api.addr, "GET", "/healthz", None, None).await;
    assert_eq!((health.status, health.text().trim()), (200, "ok"));
    assert_eq!(
        request(api.addr, "GET", "/metrics", None, None)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn tickets_are_listed_with_filters_and_pages_and_shown() {
    let api = Api::start().await;
    let first = alice_ticket(&api).await;
    for (n, from) in [(2, "bob@customer.test"), (3, "carol@other.test")] {
        let raw = format!(
            "Message-ID: <api-list-{n}@x.test>\r\nFrom: {from}\r\nTo: support@example.test\r\nSubject: Ticket {n}\r\n\r\nBody {n}\r\n"
        );
        api.t.deliver(raw.as_bytes()).await;
    }
    let all = api.get("/api/tickets").await;
    assert_eq!(all.status, 200);
    let all = all.json();
    assert_eq!(all["tickets"].as_array().unwrap().len(), 3);
    assert_eq!(all["next"], Value::Null);

    let page = api.get("/api/tickets?limit=2").await.json();
    assert_eq!(page["tickets"].as_array().unwrap().len(), 2);
    let next = page["next"].as_i64().expect("a next page");
    let rest = api
        .get(&format!("/api/tickets?limit=2&after={next}"))
        .await
        .json();
    assert_eq!(rest["tickets"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next"], Value::Null);

    let by_org = api.get("/api/tickets?org=other-corp").await.json();
    assert_eq!(by_org["tickets"][0]["requester"], "carol@other.test");
    assert_eq!(by_org["tickets"].as_array().unwrap().len(), 1);
    let by_requester = api
        .get("/api/tickets?requester=alice@customer.test")
        .await
        .json();
    assert_eq!(by_requester["tickets"][0]["id"], first);
    let closed = api.get("/api/tickets?status=closed").await.json();
    assert_eq!(closed["tickets"], json!([]));
    let bad = api.get("/api/tickets?status=bogus").await;
    assert_eq!((bad.status, bad.code().as_str()), (400, "bad_request"));
    assert_eq!(api.get("/api/tickets?limit=0").await.status, 400);

    let shown = api.get(&format!("/api/tickets/{first}")).await;
    assert_eq!(shown.status, 200);
    let shown = shown.json();
    assert_eq!(shown["subject"], "Import fails");
    assert_eq!(shown["status"], "new");
    assert_eq!(shown["status_label"], "New");
    assert_eq!(shown["comments"][0]["source"], "email");
    let missing = api.get("/api/tickets/999").await;
    assert_eq!(
        (missing.status, missing.code().as_str()),
        (404, "not_found")
    );
    assert_eq!(api.get("/api/tickets/abc").await.status, 400);
    let nowhere = api.get("/api/nowhere").await;
    assert_eq!(
        (nowhere.status, nowhere.code().as_str()),
        (404, "not_found")
    );
}

#[tokio::test]
async fn patching_status_and_priority_records_events_and_notifies_like_a_command() {
    let api = Api::start().await;
    let id = alice_ticket(&api).await;
    let before = api.outbox_len().await;
    let path = format!("/api/tickets/{id}");

    let r = api
        .send(
            "PATCH",
            &path,
            json!({"status": "in_progress", "priority": "P1"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let t = r.json();
    assert_eq!(t["status"], "in_progress");
    assert_eq!(t["status_label"], "In Progress");
    assert_eq!(t["priority"], "P1");
    let status_event = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "status_changed")
        .expect("a status event");
    assert_eq!(status_event["actor"], "sam@example.test");
    let sla = t["comments"].as_array().unwrap().last().unwrap();
    assert_eq!(sla["source"], "system");
    assert!(sla["body"].as_str().unwrap().contains("Critical"), "{sla}");

    // One call, one mail per recipient saying both changes; the actor
    // is not told of their own change.
    let sent = api.outbox_since(before).await;
    assert_eq!(
        sent,
        [
            pair("alice@customer.test", "ticket_updated"),
            pair("dave@example.test", "ticket_updated"),
            pair("team@example.test", "ticket_updated"),
        ]
    );
    let mails = api.t.mails().await.split_off(before);
    assert_eq!(mails.len(), 3);
    for m in &mails {
        m.assert_reads_well();
        assert!(
            m.text
                .contains("Sam Staff <sam@example.test> updated ticket"),
            "{}",
            m.text
        );
        assert!(
            m.text.contains("Status: from \"New\" to \"In Progress\""),
            "{}",
            m.text
        );
        assert!(
            m.text
                .contains("Priority: P1 (Critical), response within 1 hour"),
            "{}",
            m.text
        );
        assert!(m.text.contains("Status:   In Progress\n"), "{}", m.text);
    }

    for (body, code) in [
        (json!({"status": "sideways"}), 422),
        (json!({}), 422),
        (json!({"status": "closed", "colour": "red"}), 422),
        (json!({"priority": "P9"}), 422),
    ] {
        let r = api.send("PATCH", &path, body.clone()).await;
        assert_eq!(r.status, code, "{body}: {}", r.text());
        assert_eq!(r.code(), "invalid");
    }
    let not_json = request(api.addr, "PATCH", &path, Some(&api.token), Some(b"{status")).await;
    assert_eq!(
        (not_json.status, not_json.code().as_str()),
        (400, "bad_request")
    );
    assert_eq!(
        api.send("PATCH", "/api/tickets/999", json!({"status": "closed"}))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn the_desk_over_the_api_owner_close_reason_and_list_filters() {
    let api = Api::start().await;
    let id = alice_ticket(&api).await;
    let path = format!("/api/tickets/{id}");
    let r = api
        .send(
            "PATCH",
            &path,
            json!({"owner": "dave@example.test", "priority": "P1"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let t = r.json();
    assert_eq!(t["owner"], "dave@example.test");
    assert!(
        t["response_due"].is_string() && t["resolve_due"].is_string(),
        "{t}"
    );
    assert!(t["close_reason"].is_null() && t["merged_into"].is_null());

    let ids = |r: &Response| -> Vec<i64> {
        r.json()["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(
        ids(&api.get("/api/tickets?owner=dave@example.test").await),
        [id]
    );
    assert_eq!(
        ids(&api.get("/api/tickets?owner=me").await),
        Vec::<i64>::new(),
        "the token is Sam's"
    );
    assert_eq!(
        ids(&api.get("/api/tickets?owner=none").await),
        Vec::<i64>::new()
    );
    assert_eq!(
        ids(&api.get("/api/tickets?breached=true").await),
        Vec::<i64>::new(),
        "due in the future"
    );
    assert_eq!(api.get("/api/tickets?owner=someone").await.status, 400);
    let listed = api.get("/api/tickets").await.json();
    assert_eq!(listed["tickets"][0]["owner"], "dave@example.test");

    // Owner null unassigns; a customer cannot own a ticket.
    let r = api.send("PATCH", &path, json!({"owner": null})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["owner"].is_null());
    assert_eq!(ids(&api.get("/api/tickets?owner=none").await), [id]);
    let r = api
        .send("PATCH", &path, json!({"owner": "alice@customer.test"}))
        .await;
    assert_eq!(r.status, 403, "{}", r.text());

    // Closing with a reason; a reason with another status is refused.
    let r = api
        .send(
            "PATCH",
            &path,
            json!({"status": "blocked", "close_reason": "duplicate"}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    let r = api
        .send("PATCH", &path, json!({"close_reason": "feature_request"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let t = r.json();
    assert_eq!(
        (t["status"].as_str(), t["close_reason"].as_str()),
        (Some("closed"), Some("feature_request"))
    );
    assert!(t["resolve_due"].is_null(), "the clock stopped: {t}");
    let r = api.send("PATCH", &path, json!({"status": "new"})).await;
    assert!(
        r.json()["close_reason"].is_null(),
        "reopening clears the reason"
    );
    let r = api
        .send("PATCH", &path, json!({"close_reason": "sideways"}))
        .await;
    assert_eq!(r.status, 422);
}

#[tokio::test]
async fn sorted_lists_page_with_an_opaque_cursor_and_the_default_keeps_ids() {
    let api = Api::start().await;
    // Three tickets: P2 (due in 4 business hours), P1 (1 hour), none.
    let mut ids = Vec::new();
    for n in 0..3 {
        let raw = format!(
            "From: alice@customer.test\nTo: support@example.test\nMessage-ID: <s{n}@customer.test>\nSubject: Sorted {n}\n\nPlease look.\n"
        );
        ids.push(
            api.t
                .deliver(raw.as_bytes())
                .await
                .ticket
                .expect("a ticket"),
        );
    }
    for (id, p) in [(ids[0], "P2"), (ids[1], "P1")] {
        let r = api
            .send(
                "PATCH",
                &format!("/api/tickets/{id}"),
                json!({"priority": p}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let ids_of = |v: &Value| -> Vec<i64> {
        v["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_i64().unwrap())
            .collect()
    };
    let first = api.get("/api/tickets?sort=due&limit=2").await.json();
    assert_eq!(ids_of(&first), [ids[1], ids[0]], "earliest due first");
    let next = first["next"]
        .as_str()
        .expect("an opaque cursor")
        .to_string();
    let rest = api
        .get(&format!("/api/tickets?sort=due&limit=2&after={next}"))
        .await
        .json();
    assert_eq!(ids_of(&rest), [ids[2]], "no due time last");
    assert!(rest["next"].is_null());
    // The default order keeps integer ids, as scripts written before expect.
    let by_id = api.get("/api/tickets?limit=2").await.json();
    assert_eq!(ids_of(&by_id), [ids[0], ids[1]]);
    assert_eq!(by_id["next"], json!(ids[1]));
    let updated = api.get("/api/tickets?sort=updated&limit=3").await.json();
    assert_eq!(ids_of(&updated).len(), 3);
    for bad in [
        "/api/tickets?sort=due&after=7",
        "/api/tickets?sort=sideways",
        "/api/tickets?after=due.2",
    ] {
        assert_eq!(api.get(bad).await.status, 400, "{bad}");
    }
}

#[tokio::test]
async fn comments_notify_followers_resolve_mentions_and_keep_internal_notes_to_staff() {
    let api = Api::start().await;
    let id = alice_ticket(&api).await;
    let path = format!("/api/tickets/{id}/comments");

    let before = api.outbox_len().await;
    let r = api
        .send(
            "POST",
            &path,
            json!({"body": "Looking into it, @bob and @nobody."}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let created = r.json();
    assert_eq!(created["ticket"], id);
    assert_eq!(created["mentions_failed"][0]["mention"], "@nobody");
    let sent = api.outbox_since(before).await;
    assert!(
        sent.contains(&pair("alice@customer.test", "comment_added")),
        "{sent:?}"
    );
    assert!(
        sent.contains(&pair("team@example.test", "comment_added")),
        "{sent:?}"
    );
    assert!(
        sent.contains(&pair("bob@customer.test", "mentioned")),
        "{sent:?}"
    );
    let t = api.t.ticket(id).await;
    let last = t.comments.last().unwrap();
    assert_eq!(
        (last.source.as_str(), last.author.as_str()),
        ("api", "sam@example.test")
    );
    assert!(t.followers.iter().any(|f| f.email == "bob@customer.test"));

    let before = api.outbox_len().await;
    let r = api
        .send(
            "POST",
            &path,
            json!({"body": "Customer is on 5.1, see CRM.", "internal": true}),
        )
        .await;
    assert_eq!(r.status, 201);
    let sent = api.outbox_since(before).await;
    assert!(
        !sent.iter().any(|(to, _)| to.ends_with("@customer.test")),
        "internal notes reach staff only: {sent:?}"
    );
    assert!(
        sent.contains(&pair("team@example.test", "comment_added")),
        "{sent:?}"
    );

    let empty = api.send("POST", &path, json!({"body": "  "})).await;
    assert_eq!((empty.status, empty.code().as_str()), (422, "invalid"));
    assert_eq!(
        api.send("POST", "/api/tickets/999/comments", json!({"body": "x"}))
            .await
            .status,
        404
    );
    // Bodies over the limit are refused before parsing.
    let huge = serde_json::to_vec(&json!({"body": "x".repeat(api::BODY_LIMIT + 1)})).unwrap();
    let r = request(api.addr, "POST", &path, Some(&api.token), Some(&huge)).await;
    assert_eq!((r.status, r.code().as_str()), (413, "payload_too_large"));
}

#[tokio::test]
async fn followers_and_orgs_are_shared_and_removed_but_the_creator_stays() {
    let api = Api::start().await;
    let id = alice_ticket(&api).await;

    let before = api.outbox_len().await;
    let r = api
        .send(
            "PUT",
            &format!("/api/tickets/{id}/followers/carol@other.test"),
            json!(null),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.json()["followers"]
            .as_array()
            .unwrap()
            .contains(&json!({"email": "carol@other.test", "source": "share"}))
    );
    assert_eq!(
        api.outbox_since(before).await,
        vec![pair("carol@other.test", "shared_with_you")]
    );
    let unknown = request(
        api.addr,
        "PUT",
        &format!("/api/tickets/{id}/followers/nobody@else.test"),
        Some(&api.token),
        None,
    )
    .await;
    assert_eq!(
        (unknown.status, unknown.code().as_str()),
        (404, "not_found")
    );

    let creator = api
        .delete(&format!("/api/tickets/{id}/followers/alice@customer.test"))
        .await;
    assert_eq!(creator.status, 409);
    assert_eq!(creator.code(), "creator_protected");
    let removed = api
        .delete(&format!("/api/tickets/{id}/followers/carol@other.test"))
        .await;
    assert_eq!(removed.status, 204);
    let t = api.t.ticket(id).await;
    assert!(!t.followers.iter().any(|f| f.email == "carol@other.test"));
    assert!(t.followers.iter().any(|f| f.email == "alice@customer.test"));
    assert!(
        t.events
            .iter()
            .any(|e| e.event.kind() == "follower_removed")
    );

    let added = request(
        api.addr,
        "PUT",
        &format!("/api/tickets/{id}/orgs/other-corp"),
        Some(&api.token),
        None,
    )
    .await;
    assert_eq!(added.status, 200, "{}", added.text());
    assert_eq!(
        added.json()["orgs"],
        json!(["customer-site-a", "other-corp"])
    );
    assert_eq!(
        api.delete(&format!("/api/tickets/{id}/orgs/Other%20Corp"))
            .await
            .status,
        204
    );
    assert_eq!(api.t.ticket(id).await.orgs, vec!["customer-site-a"]);
    let none = request(
        api.addr,
        "PUT",
        &format!("/api/tickets/{id}/orgs/no-such-org"),
        Some(&api.token),
        None,
    )
    .await;
    assert_eq!(none.status, 404);
}

#[tokio::test]
async fn a_release_is_announced_to_everyone_on_the_ticket() {
    let api = Api::start().await;
    let id = alice_ticket(&api).await;
    let before = api.outbox_len().await;
    let r = api
        .send(
            "POST",
            &format!("/api/tickets/{id}/release"),
            json!({"version": "5.2.1"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let t = r.json();
    assert_eq!(
        t["comments"].as_array().unwrap().last().unwrap()["body"],
        "Fixed in release 5.2.1."
    );
    assert!(
        api.outbox_since(before)
            .await
            .contains(&pair("alice@customer.test", "release_noted"))
    );
    let bad = api
        .send(
            "POST",
            &format!("/api/tickets/{id}/release"),
            json!({"version": ""}),
        )
        .await;
    assert_eq!(bad.status, 422);
}

#[tokio::test]
async fn attachments_download_as_files_that_cannot_run_script() {
    let api = Api::start().await;
    let raw = std::fs::read(common::fixtures().join("attachment_rfc2231_filename.eml")).unwrap();
    let id = api.t.deliver(&raw).await.ticket.unwrap();
    let t = api.get(&format!("/api/tickets/{id}")).await.json();
    let file = &t["comments"][0]["attachments"][0];
    assert_eq!(file["filename"], "Rapport d'erreur été.pdf");
    let r = api.get(&format!("/api/attachments/{}", file["id"])).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len() as i64, file["size"].as_i64().unwrap());
    assert!(r.body.starts_with(b"%PDF"), "{:?}", &r.body[..8]);
    assert_eq!(r.header("content-type"), Some("application/pdf"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let disposition = r.header("content-disposition").unwrap();
    assert!(
        disposition.starts_with("attachment;")
            && disposition.contains("filename*=UTF-8''Rapport%20d%27erreur%20%C3%A9t%C3%A9.pdf"),
        "{disposition}"
    );
    assert_eq!(api.get("/api/attachments/999").await.status, 404);
}

#[tokio::test]
async fn users_orgs_and_leads_are_created_with_invites_and_refusals() {
    let api = Api::start().await;
    let before = api.outbox_len().await;
    let r = api
        .send(
            "POST",
            "/api/users",
            json!({"email": "erin@customer.test", "name": "Erin", "org": "customer-site-a"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["org"], "customer-site-a");
    assert_eq!(
        api.outbox_since(before).await,
        vec![pair("erin@customer.test", "invite")]
    );
    let again = api
        .send(
            "POST",
            "/api/users",
            json!({"email": "erin@customer.test", "name": "Erin"}),
        )
        .await;
    assert_eq!((again.status, again.code().as_str()), (409, "conflict"));
    let bad = api
        .send(
            "POST",
            "/api/users",
            json!({"email": "not an address", "name": "X"}),
        )
        .await;
    assert_eq!(bad.status, 422);
    let no_org = api
        .send(
            "POST",
            "/api/users",
            json!({"email": "f@x.test", "name": "F", "org": "nope"}),
        )
        .await;
    assert_eq!(no_org.status, 404);
    let users = api.get("/api/users").await.json();
    assert!(
        users
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["email"] == "erin@customer.test")
    );

    let org = api
        .send(
            "POST",
            "/api/orgs",
            json!({"name": "Site B Ltd", "domains": ["siteb.test"]}),
        )
        .await;
    assert_eq!(org.status, 201, "{}", org.text());
    assert_eq!(org.json()["slug"], "site-b-ltd");
    assert_eq!(
        api.send("POST", "/api/orgs", json!({"name": "Site B Ltd"}))
            .await
            .status,
        409
    );
    assert_eq!(
        api.send("POST", "/api/orgs", json!({"name": "!!"}))
            .await
            .status,
        422
    );
    assert!(
        api.get("/api/orgs")
            .await
            .json()
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["slug"] == "site-b-ltd")
    );

    let lead = request(
        api.addr,
        "PUT",
        "/api/orgs/site-b-ltd/leads/dave@example.test",
        Some(&api.token),
        None,
    )
    .await;
    assert_eq!(lead.status, 200, "{}", lead.text());
    assert_eq!(lead.json()["leads"], json!(["dave@example.test"]));
    let customer = request(
        api.addr,
        "PUT",
        "/api/orgs/site-b-ltd/leads/alice@customer.test",
        Some(&api.token),
        None,
    )
    .await;
    assert_eq!(customer.status, 422);
}

#[tokio::test]
async fn users_are_edited_and_delivery_leads_removed() {
    let api = Api::start().await;
    let r = api
        .send(
            "PATCH",
            "/api/users/alice@customer.test",
            json!({"name": "Alice Ando", "locale": "ja", "org": "other-corp"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let alice = r.json();
    assert_eq!(
        (
            &alice["name"],
            &alice["locale"],
            &alice["org"],
            &alice["role"]
        ),
        (
            &json!("Alice Ando"),
            &json!("ja"),
            &json!("other-corp"),
            &json!("customer")
        )
    );
    // `null` takes her out of the organization; fields left out stay.
    let r = api
        .send(
            "PATCH",
            "/api/users/alice@customer.test",
            json!({"org": null}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["org"], Value::Null);
    assert_eq!(r.json()["name"], "Alice Ando");
    let listed = api.get("/api/users").await.json();
    let alice = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "alice@customer.test")
        .unwrap()
        .clone();
    assert_eq!(
        (&alice["org"], &alice["locale"]),
        (&Value::Null, &json!("ja"))
    );

    let bad_role = api
        .send(
            "PATCH",
            "/api/users/bob@customer.test",
            json!({"role": "boss"}),
        )
        .await;
    assert_eq!(bad_role.status, 422);
    let nobody = api
        .send(
            "PATCH",
            "/api/users/nobody@customer.test",
            json!({"name": "N"}),
        )
        .await;
    assert_eq!(nobody.status, 404);
    let unknown_field = api
        .send(
            "PATCH",
            "/api/users/bob@customer.test",
            json!({"team": "x"}),
        )
        .await;
    assert_eq!(unknown_field.status, 422);

    // Dave leads Customer Site A: he stays staff until the lead is removed.
    let demote = api
        .send(
            "PATCH",
            "/api/users/dave@example.test",
            json!({"role": "customer"}),
        )
        .await;
    assert_eq!(demote.status, 422, "{}", demote.text());
    let removed = api
        .delete("/api/orgs/customer-site-a/leads/dave@example.test")
        .await;
    assert_eq!(removed.status, 200, "{}", removed.text());
    assert_eq!(removed.json()["leads"], json!([]));
    let again = api
        .delete("/api/orgs/customer-site-a/leads/dave@example.test")
        .await;
    assert_eq!((again.status, again.code().as_str()), (404, "not_found"));
    let demote = api
        .send(
            "PATCH",
            "/api/users/dave@example.test",
            json!({"role": "customer"}),
        )
        .await;
    assert_eq!(demote.status, 200, "{}", demote.text());
    assert_eq!(demote.json()["role"], "customer");
}

#[tokio::test]
async fn unknown_query_parameters_are_refused_with_400() {
    let api = Api::start().await;
    alice_ticket(&api).await;
    let r = api.get("/api/tickets?assignee=sam@example.test").await;
    assert_eq!((r.status, r.code().as_str()), (400, "bad_request"));
    assert!(r.text().contains("assignee"), "{}", r.text());
    let r = api.get("/api/messages?outcome=rejected&sender=x").await;
    assert_eq!((r.status, r.code().as_str()), (400, "bad_request"));
    assert_eq!(api.get("/api/tickets?status=new").await.status, 200);
}

#[tokio::test]
async fn a_quarantined_reply_is_replayed_once_its_sender_is_registered() {
    let api = Api::start().await;
    let id = alice_ticket(&api).await;
    let stranger = b"Message-ID: <api-stranger@partner.test>\r\nFrom: Pat Partner <pat@partner.test>\r\nTo: support@example.test\r\nIn-Reply-To: <api-1@customer.test>\r\nSubject: Re: Import fails\r\n\r\nWe see the same on our side.\r\n";
    let report = api.t.deliver(stranger).await;
    assert_eq!(report.outcome.as_str(), "quarantined");

    let listed = api.get("/api/messages?outcome=quarantined").await.json();
    let row = &listed["messages"][0];
    assert_eq!(row["reason"], "unknown_sender");
    assert_eq!(row["superseded"], false);
    let log_id = row["id"].as_i64().unwrap();
    assert_eq!(api.get("/api/messages?outcome=nonsense").await.status, 400);

    // Still a stranger: the replay is recorded, and quarantined again.
    let r = api
        .send(
            "POST",
            &format!("/api/messages/{log_id}/replay"),
            json!(null),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["outcome"], "quarantined");
    let second = r.json()["message"]["id"].as_i64().unwrap();
    assert_eq!(r.json()["message"]["replay_of"], log_id);
    // The first row is superseded now and cannot be replayed again.
    let again = api
        .send(
            "POST",
            &format!("/api/messages/{log_id}/replay"),
            json!(null),
        )
        .await;
    assert_eq!((again.status, again.code().as_str()), (409, "conflict"));

    let created = api
        .send(
            "POST",
            "/api/users",
            json!({"email": "pat@partner.test", "name": "Pat Partner", "org": "customer-site-a", "invite": false}),
        )
        .await;
    assert_eq!(created.status, 201);
    let before = api.outbox_len().await;
    let r = api
        .send(
            "POST",
            &format!("/api/messages/{second}/replay"),
            json!(null),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let replayed = r.json();
    assert_eq!(replayed["outcome"], "comment_added");
    assert_eq!(replayed["ticket"], id);
    let t = api.t.ticket(id).await;
    assert_eq!(t.comments.last().unwrap().author, "pat@partner.test");
    assert!(
        api.outbox_since(before)
            .await
            .contains(&pair("alice@customer.test", "comment_added"))
    );
    let shown = api.get(&format!("/api/messages/{second}")).await.json();
    assert_eq!(shown["superseded"], true);

    // Only quarantined or rejected deliveries replay.
    let created_row = api.get("/api/messages?outcome=ticket_created").await.json();
    let first = created_row["messages"][0]["id"].as_i64().unwrap();
    let r = api
        .send(
            "POST",
            &format!("/api/messages/{first}/replay"),
            json!(null),
        )
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(
        api.send("POST", "/api/messages/999999/replay", json!(null))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn a_discarded_message_stays_in_the_log_and_a_deactivated_user_is_a_stranger() {
    let api = Api::start().await;
    let id = alice_ticket(&api).await;
    let stranger = b"Message-ID: <api-spam@partner.test>\r\nFrom: pat@partner.test\r\nTo: support@example.test\r\nIn-Reply-To: <api-1@customer.test>\r\nSubject: Re: Import fails\r\n\r\nBuy now.\r\n";
    let report = api.t.deliver(stranger).await;
    assert_eq!(report.outcome.as_str(), "quarantined");
    let r = api
        .send(
            "POST",
            &format!("/api/messages/{}/discard", report.log_id),
            json!(null),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["id"], report.log_id);
    assert!(r.json()["discarded_at"].is_string(), "{}", r.text());
    let shown = api
        .get(&format!("/api/messages/{}", report.log_id))
        .await
        .json();
    assert_eq!(
        (shown["superseded"].clone(), shown["outcome"].clone()),
        (json!(false), json!("quarantined"))
    );
    assert!(shown["discarded_at"].is_string());
    for action in ["discard", "replay"] {
        let again = api
            .send(
                "POST",
                &format!("/api/messages/{}/{action}", report.log_id),
                json!(null),
            )
            .await;
        assert_eq!(
            (again.status, again.code().as_str()),
            (409, "conflict"),
            "{action}"
        );
    }
    assert_eq!(
        api.send("POST", "/api/messages/999999/discard", json!(null))
            .await
            .status,
        404
    );

    // Bob deactivated: his user reads `active: false`, his reply is a stranger's.
    let r = api
        .send(
            "PATCH",
            "/api/users/bob@customer.test",
            json!({"active": false}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["active"], false);
    let reply = b"Message-ID: <api-bob@customer.test>\r\nFrom: bob@customer.test\r\nTo: support@example.test\r\nIn-Reply-To: <api-1@customer.test>\r\nSubject: Re: Import fails\r\n\r\nSame here.\r\n";
    let report = api.t.deliver(reply).await;
    assert_eq!(
        (report.outcome.as_str(), report.reason.as_deref()),
        ("quarantined", Some("unknown_sender"))
    );
    assert!(
        !api.t
            .ticket(id)
            .await
            .comments
            .iter()
            .any(|c| c.body.contains("Same here."))
    );
}

#[tokio::test]
async fn readiness_follows_the_mailboxes_and_metrics_count_requests() {
    let (tx, rx) = tokio::sync::watch::channel(MailboxState::Connecting);
    let api = Api::with_mailboxes(vec![("support".into(), rx)]).await;
    let r = request(api.addr, "GET", "/readyz", None, None).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["mailboxes"][0]["state"], "connecting");
    assert_eq!(r.json()["database"], true);
    tx.send(MailboxState::Idle).unwrap();
    let r = request(api.addr, "GET", "/readyz", None, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["ready"], true);

    let id = alice_ticket(&api).await;
    api.get(&format!("/api/tickets/{id}")).await;
    api.get("/api/tickets/999").await;
    // The desk's: a priority, then the first public staff answer.
    let r = api
        .send(
            "PATCH",
            &format!("/api/tickets/{id}"),
            json!({"priority": "P2"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let path = format!("/api/tickets/{id}/comments");
    for body in ["Looking into it.", "Second answer: not a first response."] {
        let r = api.send("POST", &path, json!({"body": body})).await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let text = request(api.addr, "GET", "/metrics", None, None)
        .await
        .text();
    for line in [
        r#"ticketgate_http_requests_total{method="GET",route="/api/tickets/{id}",status="200"} 1"#,
        r#"ticketgate_http_requests_total{method="GET",route="/api/tickets/{id}",status="404"} 1"#,
        r#"ticketgate_messages_total{outcome="ticket_created"} 1"#,
        r#"ticketgate_mailbox_state{mailbox="support",state="idle"} 1"#,
        "ticketgate_ingest_duration_seconds_count 1",
        r#"ticketgate_open_tickets{status="new",priority="P2"} 1"#,
        "ticketgate_first_response_seconds_count 1",
        r#"ticketgate_sla_breaches_total{clock="resolve"} 0"#,
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    let queued = text
        .lines()
        .find(|l| l.starts_with(r#"ticketgate_outbox_messages{status="queued"}"#))
        .expect("outbox gauge");
    assert!(
        !queued.ends_with(" 0"),
        "the new ticket queued notifications: {queued}"
    );
}

/// Every route of the admin API (docs/contract.md, "Interfaces"), with its methods.
const ROUTES: &[(&str, &[&str])] = &[
    ("/api/tickets", &["get"]),
    ("/api/tickets/{id}", &["get", "patch"]),
    ("/api/tickets/{id}/comments", &["post"]),
    ("/api/tickets/{id}/followers/{email}", &["put", "delete"]),
    ("/api/tickets/{id}/orgs/{slug}", &["put", "delete"]),
    ("/api/tickets/{id}/release", &["post"]),
    ("/api/tickets/{id}/merge", &["post"]),
    ("/api/comments/{id}/move", &["post"]),
    ("/api/attachments/{id}", &["get"]),
    ("/api/users", &["get", "post"]),
    ("/api/users/{email}", &["patch"]),
    ("/api/people/{email}/export", &["get"]),
    ("/api/orgs", &["get", "post"]),
    ("/api/orgs/{slug}/leads/{email}", &["put", "delete"]),
    ("/api/messages", &["get"]),
    ("/api/messages/{id}", &["get"]),
    ("/api/messages/{id}/replay", &["post"]),
    ("/api/messages/{id}/discard", &["post"]),
    ("/healthz", &["get"]),
    ("/readyz", &["get"]),
    ("/metrics", &["get"]),
];

#[tokio::test]
async fn the_openapi_document_lists_every_route_and_validates() {
    let api = Api::start().await;
    let r = request(api.addr, "GET", "/api/openapi.json", None, None).await;
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in ROUTES {
        let item = paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} is not documented"));
        for m in *methods {
            assert!(item.get(*m).is_some(), "{m} {path} is not documented");
        }
    }
    assert_eq!(
        paths.len(),
        ROUTES.len(),
        "undocumented or unexpected paths: {:?}",
        paths.keys()
    );
    // The ticket JSON's schema names the release, which may be null.
    let release = &doc["components"]["schemas"]["TicketView"]["properties"]["release"];
    assert!(
        release.to_string().contains("null"),
        "TicketView.release: {release}"
    );
    // Every documented operation answers (not the 404 fallback).
    for (path, methods) in ROUTES {
        let concrete = path
            .replace("{id}", "1")
            .replace("{email}", "x@y.test")
            .replace("{slug}", "x");
        for m in *methods {
            let r = request(
                api.addr,
                &m.to_uppercase(),
                &concrete,
                Some(&api.token),
                None,
            )
            .await;
            assert!(
                !(r.status == 404 && r.text().contains("no such route")) && r.status != 405,
                "{m} {concrete}: {} {}",
                r.status,
                r.text()
            );
        }
    }

    // Validated by an independent implementation of the OpenAPI schema
    // (scripts/test.sh installs it; CI must not skip this).
    let file = api.t.dir.path().join("openapi.json");
    std::fs::write(&file, &r.body).unwrap();
    let out = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o)
            if std::env::var_os("CI").is_none()
                && String::from_utf8_lossy(&o.stderr).contains("No module named") =>
        {
            eprintln!("openapi-spec-validator not installed; skipped outside CI");
        }
        Ok(o) => panic!(
            "the OpenAPI document does not validate:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!("cannot run python3: {e}"),
    }
}

/// Two instances on one PostgreSQL database: a change made through one
/// instance's endpoint is what the other shows, and tokens work on both.
#[tokio::test]
async fn the_endpoint_works_from_any_instance_sharing_postgres() {
    let db = common::pg::TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let mut addrs = Vec::new();
    let mut apps = Vec::new();
    let cancel = CancellationToken::new();
    for n in 0..2 {
        let mut settings = common::test_settings(&dir.path().join(format!("i{n}")));
        settings.database.url = db.url.clone();
        let app = ticketgate::app::App::open(settings).await.unwrap();
        if n == 0 {
            common::seed_world(app.store.as_ref()).await;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.push(listener.local_addr().unwrap());
        let state = ApiState::new(
            app.tickets().clone(),
            app.replay(),
            app.ingestor.metrics().clone(),
            Vec::new(),
        );
        tokio::spawn(api::serve(listener, state, cancel.clone()));
        apps.push(app);
    }
    let _stop = cancel.drop_guard();
    let sam = apps[0]
        .store
        .find_user(&EmailAddress::parse("sam@example.test").unwrap())
        .await
        .unwrap()
        .unwrap();
    let token = api::new_token().unwrap();
    apps[0]
        .store
        .create_token(
            sam.id,
            &api::token_hash(&token),
            None,
            time::OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
    let id = apps[0]
        .ingestor
        .ingest(ticketgate::ingest::Delivery {
            raw: ALICE_OPENS,
            origin: "test",
            notify: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .ticket
        .unwrap();

    let body = serde_json::to_vec(&json!({"status": "blocked"})).unwrap();
    let r = request(
        addrs[1],
        "PATCH",
        &format!("/api/tickets/{id}"),
        Some(&token),
        Some(&body),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = request(
        addrs[0],
        "GET",
        &format!("/api/tickets/{id}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(seen.json()["status"], "blocked");
    let ready = request(addrs[1], "GET", "/readyz", None, None).await;
    assert_eq!(ready.status, 200);
    drop(apps);
}

/// Hyper used to answer these itself, with an empty body.
#[tokio::test]
async fn an_oversized_request_line_or_header_section_answers_with_the_json_error_body() {
    let api = Api::start().await;
    let long_path = format!("/api/tickets?q={}", "a".repeat(16 * 1024));
    let r = request(api.addr, "GET", &long_path, Some(&api.token), None).await;
    assert_eq!(r.status, 414, "{}", r.text());
    assert_eq!(r.code(), "uri_too_long");
    let big_token = "t".repeat(40 * 1024);
    let r = request(api.addr, "GET", "/api/tickets", Some(&big_token), None).await;
    assert_eq!(r.status, 431, "{}", r.text());
    assert_eq!(r.code(), "headers_too_large");
    // Just under the limit, the request reaches the router (no such route).
    let r = request(
        api.addr,
        "GET",
        &format!("/api/{}", "a".repeat(7 * 1024)),
        Some(&api.token),
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (404, "not_found"),
        "{}",
        r.text()
    );
}

/// One ticket service. The same comment by Sam, once replying by
/// mail to his own reply address and once over the API, each on a fresh
/// copy of the same ticket, yields the same events, notifications, mentions
/// and rule effects; only the comment's `source` (and a mail's Message-ID
/// and thread) tell the channels apart.
#[tokio::test]
async fn the_same_comment_by_email_and_by_api_has_the_same_effects() {
    let rules = "[[rule]]\nname = \"staff replies set P3\"\non = \"comment_added\"\n\
         when = { author_role = \"staff\" }\nthen = { set_priority = \"P3\" }\n";
    // No sign-off: by mail, the sender's own name on the last line is their
    // signature, which the API has no notion of.
    let body = "@bob@customer.test could you send the logs?\n\nThe nightly ones are enough.";
    let mut seen = Vec::new();
    for channel in ["email", "api"] {
        let api = Api::serve(TestApp::with_rules(rules).await, Vec::new()).await;
        let ticket = api
            .t
            .deliver_file("_base/01_alice_opens_ticket.eml")
            .await
            .ticket
            .unwrap();
        let events_before = api.t.ticket(ticket).await.events.len();
        let outbox_before = api.outbox_len().await;
        if channel == "email" {
            let to = ticketgate::domain::token::reply_address(
                &"support@example.test".parse().unwrap(),
                b"test-secret",
                ticket,
                4,
            );
            let raw = format!(
                "From: Sam Staff <sam@example.test>\nTo: {to}\nMessage-ID: <same-1@example.test>\n\
                 In-Reply-To: <base-1@customer.test>\nSubject: Re: Login page\n\n{body}\n"
            );
            let r = api.t.deliver(raw.as_bytes()).await;
            assert_eq!(
                r.outcome,
                ticketgate::domain::outcome::Outcome::CommentAdded
            );
        } else {
            let r = api
                .send(
                    "POST",
                    &format!("/api/tickets/{ticket}/comments"),
                    json!({"body": body}),
                )
                .await;
            assert_eq!(r.status, 201, "{}", r.text());
            assert_eq!(r.json()["mentions_failed"], json!([]));
        }
        let view = api.t.ticket(ticket).await;
        // The rule's priority comment follows it.
        let comment = view
            .comments
            .iter()
            .rfind(|c| c.source != "system")
            .unwrap();
        assert_eq!(comment.source, channel);
        let events: Vec<(String, Option<String>, Vec<String>)> = view.events[events_before..]
            .iter()
            .map(|e| {
                let mut keys: Vec<String> = e.event.data().as_object().map_or_else(Vec::new, |o| {
                    o.keys()
                        .filter(|k| !["message_id", "thread"].contains(&k.as_str()))
                        .cloned()
                        .collect()
                });
                keys.sort();
                (e.event.kind().to_string(), e.actor.clone(), keys)
            })
            .collect();
        seen.push((
            comment.body.clone(),
            view.priority.map(|p| p.to_string()),
            events,
            api.outbox_since(outbox_before).await,
        ));
    }
    let (email, api) = (&seen[0], &seen[1]);
    assert_eq!(email.0, api.0, "comment text");
    assert_eq!(email.1.as_deref(), Some("P3"), "the comment_added rule ran");
    assert_eq!(email.1, api.1, "rule effects");
    assert!(
        email.2.iter().any(|(kind, _, _)| kind == "mentioned"),
        "{:?}",
        email.2
    );
    assert_eq!(email.2, api.2, "events");
    assert!(!email.3.is_empty());
    assert_eq!(email.3, api.3, "notifications");
}

/// One parse of a release name (src/domain/version.rs). The same names
/// recorded by Sam by mail (`#release`) and over the API, each on a fresh
/// copy of the same ticket, are stored as typed and shown alike in the
/// ticket JSON; a name both refuse is refused by both, and the API says so
/// with a 422, not a 500.
#[tokio::test]
async fn a_release_is_read_the_same_by_mail_and_by_api() {
    for (typed, stored) in [
        ("5.2 beta", Some("5.2 beta")),
        ("v4.2.1", Some("v4.2.1")),
        ("  v4.2.1  ", Some("v4.2.1")),
        ("5.2\u{202E}1", None),
    ] {
        let mut seen = Vec::new();
        for channel in ["email", "api"] {
            let api = Api::start().await;
            let ticket = api
                .t
                .deliver_file("_base/01_alice_opens_ticket.eml")
                .await
                .ticket
                .unwrap();
            let outbox_before = api.outbox_len().await;
            if channel == "email" {
                let to = ticketgate::domain::token::reply_address(
                    &"support@example.test".parse().unwrap(),
                    b"test-secret",
                    ticket,
                    4,
                );
                let raw = format!(
                    "From: Sam Staff <sam@example.test>\nTo: {to}\nMessage-ID: <rel-1@example.test>\n\
                     In-Reply-To: <base-1@customer.test>\nSubject: Re: Login page\n\n#release {typed}\n"
                );
                api.t.deliver(raw.as_bytes()).await;
                let refused = api
                    .outbox_since(outbox_before)
                    .await
                    .contains(&pair("sam@example.test", "command_failed"));
                assert_eq!(refused, stored.is_none(), "{typed:?} by mail");
            } else {
                let r = api
                    .send(
                        "POST",
                        &format!("/api/tickets/{ticket}/release"),
                        json!({ "version": typed }),
                    )
                    .await;
                if stored.is_some() {
                    assert_eq!(r.status, 200, "{typed:?}: {}", r.text());
                } else {
                    assert_eq!(
                        (r.status, r.code().as_str()),
                        (422, "invalid"),
                        "{typed:?}: {}",
                        r.text()
                    );
                }
            }
            assert_eq!(
                api.t.ticket(ticket).await.release.as_deref(),
                stored,
                "{typed:?} by {channel}: stored"
            );
            let shown = api.get(&format!("/api/tickets/{ticket}")).await.json();
            let last = shown["comments"].as_array().unwrap().last().unwrap()["body"].clone();
            seen.push((shown["release"].clone(), last));
        }
        assert_eq!(seen[0].0, json!(stored), "{typed:?}: the JSON shows it");
        assert_eq!(seen[0], seen[1], "{typed:?}: mail and API agree");
        if let Some(stored) = stored {
            assert_eq!(seen[0].1, json!(format!("Fixed in release {stored}.")));
        }
    }
}

#[tokio::test]
async fn a_known_route_with_another_method_answers_405_with_the_json_error_body() {
    let api = Api::start().await;
    for (method, path) in [("PUT", "/api/tickets"), ("DELETE", "/api/users")] {
        let r = request(api.addr, method, path, Some(&api.token), None).await;
        assert_eq!(r.status, 405, "{method} {path}");
        assert_eq!(
            r.json()["error"]["code"],
            "method_not_allowed",
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn merge_and_move_run_as_the_mail_commands_and_refuse_the_same() {
    let api = Api::start().await;
    let a = alice_ticket(&api).await;
    let b = api
        .t
        .deliver(b"Message-ID: <api-carol@other.test>\r\nFrom: carol@other.test\r\nTo: support@example.test\r\nSubject: Re: Import fails\r\n\r\nOur import fails as well.\r\n")
        .await
        .ticket
        .expect("a ticket");
    let carol_comment = api.get(&format!("/api/tickets/{b}")).await.json()["comments"][0]["id"]
        .as_i64()
        .unwrap();

    // Move Carol's comment to a new ticket: she requests it, its message id goes along.
    let moved = api
        .send(
            "POST",
            &format!("/api/comments/{carol_comment}/move"),
            json!({"to": "new"}),
        )
        .await;
    assert_eq!(moved.status, 200, "{}", moved.text());
    let c = moved.json()["ticket"].as_i64().unwrap();
    assert_eq!(moved.json()["comment"], carol_comment);
    assert!(c != a && c != b);
    let new = api.get(&format!("/api/tickets/{c}")).await.json();
    assert_eq!(new["requester"], "carol@other.test");
    assert_eq!(new["subject"], "Import fails");
    assert_eq!(new["comments"][0]["message_id"], "<api-carol@other.test>");
    let kinds = |t: &Value| -> Vec<String> {
        t["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(kinds(&new).contains(&"comment_moved".to_string()));
    let old = api.get(&format!("/api/tickets/{b}")).await.json();
    assert!(old["comments"].as_array().unwrap().is_empty());
    assert!(kinds(&old).contains(&"comment_moved".to_string()));
    // A later reply to it threads to the new ticket.
    let r = api
        .t
        .deliver(b"Message-ID: <api-carol-2@other.test>\r\nFrom: carol@other.test\r\nTo: support@example.test\r\nIn-Reply-To: <api-carol@other.test>\r\nSubject: Re: Import fails\r\n\r\nAny news?\r\n")
        .await;
    assert_eq!(r.ticket, Some(c));
    // And to an existing ticket by number.
    let back = api
        .send(
            "POST",
            &format!("/api/comments/{carol_comment}/move"),
            json!({"to": b}),
        )
        .await;
    assert_eq!(back.json()["ticket"], b, "{}", back.text());

    // Merge B into A: A's JSON comes back; B is closed as a duplicate.
    let merged = api
        .send(
            "POST",
            &format!("/api/tickets/{b}/merge"),
            json!({"into": a}),
        )
        .await;
    assert_eq!(merged.status, 200, "{}", merged.text());
    assert_eq!(merged.json()["id"], a);
    let gone = api.get(&format!("/api/tickets/{b}")).await.json();
    assert_eq!(
        (&gone["status"], &gone["close_reason"], &gone["merged_into"]),
        (&json!("closed"), &json!("duplicate"), &json!(a))
    );

    // Refusals change nothing and say why.
    let before = api.t.outbox().await.len();
    let cases = [
        (
            format!("/api/tickets/{a}/merge"),
            json!({"into": a}),
            409,
            "itself",
        ),
        (
            format!("/api/tickets/{a}/merge"),
            json!({"into": 999}),
            404,
            "999",
        ),
        (
            format!("/api/tickets/{b}/merge"),
            json!({"into": c}),
            409,
            "already merged",
        ),
        (
            format!("/api/tickets/{c}/merge"),
            json!({"into": b}),
            409,
            "merge into",
        ),
        (
            format!("/api/comments/{carol_comment}/move"),
            json!({"to": a}),
            409,
            "already on",
        ),
        (
            "/api/comments/999999/move".to_string(),
            json!({"to": a}),
            404,
            "not found",
        ),
        (
            format!("/api/comments/{carol_comment}/move"),
            json!({"to": "nowhere"}),
            422,
            "a ticket number",
        ),
    ];
    for (path, body, status, says) in cases {
        let r = api.send("POST", &path, body).await;
        assert_eq!(r.status, status, "{path}: {}", r.text());
        assert!(r.text().contains(says), "{path}: {}", r.text());
    }
    // A customer's token.
    let (alice, _) = token_for(&api.t, "alice@customer.test").await;
    let body = serde_json::to_vec(&json!({"into": c})).unwrap();
    let r = request(
        api.addr,
        "POST",
        &format!("/api/tickets/{a}/merge"),
        Some(&alice),
        Some(&body),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(api.t.outbox().await.len(), before, "refusals tell nobody");
    let a_now = api.get(&format!("/api/tickets/{a}")).await.json();
    assert!(a_now["merged_into"].is_null());
    assert_ne!(a_now["status"], "closed");
}

#[tokio::test]
async fn staff_export_a_persons_data_and_customers_cannot() {
    let api = Api::start().await;
    let ticket = alice_ticket(&api).await;
    let r = api.get("/api/people/alice@customer.test/export").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let data = r.json();
    assert_eq!(data["user"]["email"], "alice@customer.test");
    assert_eq!(data["tickets"][0]["id"], ticket);
    assert_eq!(data["comments"][0]["body"], "The nightly import fails.");
    assert!(
        data["raw_messages"][0]["text"]
            .as_str()
            .unwrap()
            .contains("Message-ID: <api-1@customer.test>")
    );
    let unknown = api.get("/api/people/nobody@customer.test/export").await;
    assert_eq!(
        (unknown.status, unknown.code().as_str()),
        (404, "not_found")
    );
    let malformed = api.get("/api/people/not-an-address/export").await;
    assert_eq!(malformed.status, 422);
    let (customer, _) = token_for(&api.t, "alice@customer.test").await;
    let refused = request(
        api.addr,
        "GET",
        "/api/people/alice@customer.test/export",
        Some(&customer),
        None,
    )
    .await;
    assert_eq!(refused.status, 403);
}

#[tokio::test]
async fn a_tickets_comments_come_a_page_at_a_time_on_request() {
    let api = Api::start().await;
    let id = alice_ticket(&api).await;
    for n in 1..=4 {
        let r = api
            .send(
                "POST",
                &format!("/api/tickets/{id}/comments"),
                json!({"body": format!("Update {n}.")}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let whole = api.get(&format!("/api/tickets/{id}")).await.json();
    assert_eq!(whole["comments"].as_array().unwrap().len(), 5);
    assert!(
        whole.get("earlier_comments").is_none(),
        "complete by default"
    );

    let bodies = |v: &Value| -> Vec<String> {
        v["comments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["body"].as_str().unwrap().to_string())
            .collect()
    };
    let newest = api
        .get(&format!("/api/tickets/{id}?comments_limit=2"))
        .await
        .json();
    assert_eq!(bodies(&newest), ["Update 3.", "Update 4."]);
    assert_eq!(newest["earlier_comments"], true);
    let first = newest["comments"][0]["id"].as_i64().unwrap();
    let before = api
        .get(&format!(
            "/api/tickets/{id}?comments_limit=10&comments_before={first}"
        ))
        .await
        .json();
    assert_eq!(
        bodies(&before),
        ["The nightly import fails.", "Update 1.", "Update 2."]
    );
    assert!(before.get("earlier_comments").is_none());
    let zero = api
        .get(&format!("/api/tickets/{id}?comments_limit=0"))
        .await;
    assert_eq!(zero.status, 400);
}

/// Last update first, a page at a time: a ticket that changes between two
/// pages moves ahead of the pages already read, and the pages that follow
/// neither repeat a ticket nor lose one that did not change.
#[tokio::test]
async fn pages_by_last_update_follow_a_keyset_that_a_change_cannot_shift() {
    let api = Api::start().await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let raw = format!(
            "From: alice@customer.test\nTo: support@example.test\nMessage-ID: <k{n}@customer.test>\nSubject: Keyset {n}\n\nPlease look.\n"
        );
        ids.push(
            api.t
                .deliver(raw.as_bytes())
                .await
                .ticket
                .expect("a ticket"),
        );
    }
    let ids_of = |v: &Value| -> Vec<i64> {
        v["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_i64().unwrap())
            .collect()
    };
    let first = api.get("/api/tickets?sort=updated&limit=2").await.json();
    assert_eq!(ids_of(&first), [ids[4], ids[3]]);
    let next = first["next"].as_str().unwrap().to_string();
    // Ticket 4 of 5 (not yet listed) changes: it moves to the top.
    let r = api
        .send(
            "PATCH",
            &format!("/api/tickets/{}", ids[1]),
            json!({"priority": "P3"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let second = api
        .get(&format!("/api/tickets?sort=updated&limit=2&after={next}"))
        .await
        .json();
    assert_eq!(
        ids_of(&second),
        [ids[2], ids[0]],
        "counted rows would repeat ids[3]"
    );
    let last = second["next"].as_str().unwrap().to_string();
    let third = api
        .get(&format!("/api/tickets?sort=updated&limit=2&after={last}"))
        .await
        .json();
    assert_eq!(ids_of(&third), Vec::<i64>::new());
    assert!(third["next"].is_null());
    for bad in ["updated~x~1", "updated~1", "due~1~1"] {
        let r = api
            .get(&format!("/api/tickets?sort=updated&after={bad}"))
            .await;
        assert_eq!(r.status, 400, "{bad}");
    }
}
