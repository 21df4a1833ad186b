//! The portal over real HTTP: signing in from an emailed link,
//! the pages customers and staff use, and what an attacker cannot do.
//! Every change is checked in the store and in the mail people receive.

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use common::TestApp;
use common::http::{Response, send};
use ticketgate::config::{Network, Rate, WebSettings};
use ticketgate::manage::portal_link;
use ticketgate::store::LinkPurpose;
use ticketgate::web::{WebState, serve};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

struct Portal {
    t: TestApp,
    addr: SocketAddr,
    _stop: tokio_util::sync::DropGuard,
}

/// A signed-in browser: its session cookie and its CSRF token.
struct Browser {
    cookie: String,
    csrf: String,
}

const FORM: &str = "application/x-www-form-urlencoded";

fn form(fields: &[(&str, &str)]) -> Vec<u8> {
    serde_urlencoded::to_string(fields).unwrap().into_bytes()
}

impl Portal {
    async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A portal whose `[web]` settings `change` alters first.
    async fn start_with(change: impl FnOnce(&mut WebSettings)) -> Self {
        let t = TestApp::new().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut web = t.app.settings.web.clone();
        change(&mut web);
        let state = WebState::new(
            t.app.tickets().clone(),
            t.app.replay(),
            &web,
            t.app.settings.intake.max_message_size.0,
        );
        let cancel = CancellationToken::new();
        tokio::spawn(serve(listener, state, cancel.clone()));
        Self {
            t,
            addr,
            _stop: cancel.drop_guard(),
        }
    }

    async fn get(&self, path: &str, b: Option<&Browser>) -> Response {
        let cookie = b.map(|b| b.cookie.clone());
        let headers: Vec<(&str, &str)> = cookie.iter().map(|c| ("Cookie", c.as_str())).collect();
        send(self.addr, "GET", path, &headers, None).await
    }

    async fn post(&self, path: &str, b: Option<&Browser>, fields: &[(&str, &str)]) -> Response {
        let body = form(fields);
        let mut headers = vec![("Content-Type", FORM)];
        if let Some(b) = b {
            headers.push(("Cookie", b.cookie.as_str()));
        }
        send(self.addr, "POST", path, &headers, Some(&body)).await
    }

    /// Posts `fields` with the browser's CSRF token first.
    async fn act(&self, path: &str, b: &Browser, fields: &[(&str, &str)]) -> Response {
        let mut all = vec![("csrf", b.csrf.as_str())];
        all.extend_from_slice(fields);
        self.post(path, Some(b), &all).await
    }

    /// The portal links (sign-in and invitation) emailed to `email` so far,
    /// newest last, read from the delivered mail: the token is minted when
    /// the mail is sent, and the outbox row never holds it.
    async fn links_to(&self, email: &str) -> Vec<String> {
        self.t
            .mails()
            .await
            .iter()
            .filter(|m| m.to == email)
            .filter_map(|m| portal_link_in(&m.text))
            .collect()
    }

    /// Signs `email` in the way a person does: asks for a link, opens the
    /// emailed one, presses the button.
    async fn sign_in(&self, email: &str) -> Browser {
        let before = self.links_to(email).await.len();
        let res = self.post("/login", None, &[("email", email)]).await;
        assert_eq!(res.status, 200, "{}", res.text());
        let links = self.links_to(email).await;
        assert_eq!(links.len(), before + 1, "one link emailed to {email}");
        self.open_link(links.last().unwrap())
            .await
            .expect("the link signs in")
    }

    /// Opens an emailed link: the GET only shows a button, the POST signs in.
    async fn open_link(&self, link: &str) -> Result<Browser, Response> {
        let path = &link[link.find("/login/").expect("a portal link")..];
        let page = self.get(path, None).await;
        assert_eq!(page.status, 200, "{}", page.text());
        assert!(page.text().contains(&format!("action=\"{path}\"")));
        let res = self.post(path, None, &[]).await;
        if res.status != 303 {
            return Err(res);
        }
        let set = res
            .header("set-cookie")
            .expect("a session cookie")
            .to_string();
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Lax"),
            "{set}"
        );
        let cookie = set.split(';').next().unwrap().to_string();
        let mut b = Browser {
            cookie,
            csrf: String::new(),
        };
        let page = self.get("/tickets", Some(&b)).await;
        assert_eq!(page.status, 200, "{}", page.text());
        b.csrf = csrf_of(&page.text());
        Ok(b)
    }
}

fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..at + html[at..].find('"').unwrap()].to_string()
}

fn multipart(boundary: &str, fields: &[(&str, &str)], files: &[(&str, &str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    for (name, filename, data) in files {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: text/plain\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

/// Opens a ticket as `b` with one attached file; its id.
async fn open_ticket(p: &Portal, b: &Browser, subject: &str, text: &str) -> i64 {
    let boundary = "XyZ123boundary";
    let body = multipart(
        boundary,
        &[("csrf", &b.csrf), ("subject", subject), ("body", text)],
        &[("attachments", "log.txt", b"ERROR 500 at /login\n")],
    );
    let kind = format!("multipart/form-data; boundary={boundary}");
    let res = send(
        p.addr,
        "POST",
        "/tickets",
        &[("Content-Type", &kind), ("Cookie", &b.cookie)],
        Some(&body),
    )
    .await;
    assert_eq!(res.status, 303, "{}", res.text());
    let to = res.header("location").unwrap();
    let (path, done) = to.split_once('?').unwrap();
    assert_eq!(done, "done=new", "the page says the ticket is open");
    path.trim_start_matches("/tickets/").parse().unwrap()
}

/// The status menu's options, as the page offers them.
fn status_options(page: &str) -> Vec<String> {
    let Some(at) = page.find("id=\"set-status\"") else {
        return Vec::new();
    };
    let end = at + page[at..].find("</select>").unwrap();
    page[at..end]
        .split("<option value=\"")
        .skip(1)
        .map(|o| o[..o.find('"').unwrap()].to_string())
        .collect()
}

/// A ticket page offers only what the same rules that judge a change allow
/// its reader (src/domain/ticket.rs): the requester closes but never stops
/// following; a colleague who follows may stop, and remove only themselves;
/// staff see every status.
#[tokio::test]
async fn a_ticket_page_offers_only_what_its_reader_may_do() {
    let p = Portal::start().await;
    let alice = p.sign_in("alice@customer.test").await;
    let id = open_ticket(&p, &alice, "Printer on fire", "It smokes.").await;
    let res = p
        .act(
            &format!("/tickets/{id}/share"),
            &alice,
            &[("email", "bob@customer.test")],
        )
        .await;
    assert_eq!(res.status, 303);
    // The next page says what was done.
    let next = res.header("location").unwrap().to_string();
    assert_eq!(next, format!("/tickets/{id}?done=share"));
    let page = p.get(&next, Some(&alice)).await.text();
    assert!(
        page.contains("role=\"status\"") && page.contains("The ticket was shared."),
        "{page}"
    );
    let unfollow = format!("action=\"/tickets/{id}/unfollow\"");
    let remove = format!("action=\"/tickets/{id}/unshare\"");

    let page = p.get(&format!("/tickets/{id}"), Some(&alice)).await.text();
    assert_eq!(status_options(&page), ["new", "closed"]);
    assert!(!page.contains(&unfollow), "the requester always follows");
    let followers = p.t.ticket(id).await.followers.len();
    assert!(followers >= 2);
    assert_eq!(
        page.matches(&remove).count(),
        followers - 1,
        "everyone but herself"
    );

    let bob = p.sign_in("bob@customer.test").await;
    let page = p.get(&format!("/tickets/{id}"), Some(&bob)).await.text();
    assert!(
        status_options(&page).is_empty(),
        "nothing Bob may set: no menu"
    );
    assert!(page.contains(&unfollow));
    assert_eq!(page.matches(&remove).count(), 1, "only himself");
    assert!(page.contains("name=\"email\" value=\"bob@customer.test\""));

    let sam = p.sign_in("sam@example.test").await;
    let page = p.get(&format!("/tickets/{id}"), Some(&sam)).await.text();
    assert_eq!(
        status_options(&page),
        ["new", "in_progress", "blocked", "closed", "escalated"]
    );

    // What is offered is accepted: Alice closes her ticket; then, as a
    // participant of a closed ticket, Bob may reopen it.
    let res = p
        .act(
            &format!("/tickets/{id}/status"),
            &alice,
            &[("status", "closed")],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.text());
    let page = p.get(&format!("/tickets/{id}"), Some(&bob)).await.text();
    assert_eq!(status_options(&page), ["new", "closed"]);

    // The page tells what happened, in order, with names.
    let share = page
        .find("data-event=\"follower_added\"")
        .expect("the share is on the page");
    let close = page
        .find("data-event=\"status_changed\"")
        .expect("the close is on the page");
    assert!(share < close, "in time order");
    assert!(
        page.contains("Alice Anders shared the ticket with Bob Brown."),
        "{page}"
    );
    assert!(page.contains("Alice Anders changed the status from New to Closed."));
    // In Japanese for a Japanese reader.
    let user =
        p.t.store()
            .find_user(&"bob@customer.test".parse().unwrap())
            .await
            .unwrap()
            .unwrap();
    p.t.store()
        .update_user(
            user.id,
            &ticketgate::store::UserChange {
                locale: Some("ja".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let page = p.get(&format!("/tickets/{id}"), Some(&bob)).await.text();
    assert!(
        page.contains("Alice AndersさんがBob Brownさんとこのお問い合わせを共有しました。"),
        "{page}"
    );
    assert!(!page.contains("shared the ticket with"));
}

/// Every mail about a ticket links its page; signed out, that page asks for
/// a sign-in link which comes back to it, and `next` is only ever a path of
/// this site.
#[tokio::test]
async fn a_link_from_a_mail_leads_back_to_its_ticket_through_sign_in() {
    let p = Portal::start().await;
    let alice = p.sign_in("alice@customer.test").await;
    let id = open_ticket(&p, &alice, "Printer on fire", "It smokes since the update.").await;
    let page = format!("/tickets/{id}");
    let url = format!(
        "{}{page}",
        p.t.app.settings.web.base_url.trim_end_matches('/')
    );
    let about: Vec<common::Mail> =
        p.t.mails()
            .await
            .into_iter()
            .filter(|m| m.subject.contains(&format!("#{id}]")))
            .collect();
    assert!(!about.is_empty());
    for m in &about {
        assert!(m.text.contains(&url), "{} lacks {url}:\n{}", m.to, m.text);
        // The HTML escapes `/` as `&#x2f;`, as every link in it.
        let html = m.html.replace("&#x2f;", "/");
        assert!(html.contains(&format!("href=\"{url}\"")), "{html}");
    }

    // Signed out, the page sends the reader to sign in and back.
    let res = p.get(&page, None).await;
    assert_eq!(res.status, 303);
    let login = res.header("location").unwrap().to_string();
    assert_eq!(login, format!("/login?next={page}"));
    let form = p.get(&login, None).await;
    let form = form.text().replace("&#x2f;", "/");
    assert!(
        form.contains(&format!("name=\"next\" value=\"{page}\"")),
        "{form}"
    );
    let res = p
        .post(
            "/login",
            None,
            &[("email", "alice@customer.test"), ("next", page.as_str())],
        )
        .await;
    assert_eq!(res.status, 200);
    let mails = p.t.mails().await;
    let text = &mails
        .iter()
        .rfind(|m| m.to == "alice@customer.test")
        .unwrap()
        .text;
    let link = portal_link_in(text).unwrap();
    let with_next = format!("{link}?next={page}");
    assert!(text.contains(&with_next), "{text}");
    let path = &link[link.find("/login/").unwrap()..];
    let button = p.get(&format!("{path}?next={page}"), None).await;
    let button = button.text().replace("&#x2f;", "/");
    assert!(
        button.contains(&format!("name=\"next\" value=\"{page}\"")),
        "{button}"
    );
    let res = p.post(path, None, &[("next", page.as_str())]).await;
    assert_eq!(res.status, 303, "{}", res.text());
    assert_eq!(res.header("location"), Some(page.as_str()));

    // Anything but a path of this site lands on the ticket list
    // (src/domain/template.rs, `local_next`, lists the forms refused).
    for evil in ["//evil.test/x", "https://evil.test/", "/\\evil.test"] {
        let form = p.get(&format!("/login?next={evil}"), None).await;
        assert!(!form.text().contains("name=\"next\""), "{evil}");
    }
    p.post(
        "/login",
        None,
        &[("email", "alice@customer.test"), ("next", "//evil.test/x")],
    )
    .await;
    let mails = p.t.mails().await;
    let text = &mails
        .iter()
        .rfind(|m| m.to == "alice@customer.test")
        .unwrap()
        .text;
    let link = portal_link_in(text).unwrap();
    assert!(!text.contains(&format!("{link}?")), "{text}");
    let path = &link[link.find("/login/").unwrap()..];
    let res = p.post(path, None, &[("next", "https://evil.test/")]).await;
    assert_eq!(res.status, 303);
    assert_eq!(res.header("location"), Some("/tickets"));
}

#[tokio::test]
async fn a_customer_and_staff_work_a_ticket_in_the_browser_and_the_right_people_are_emailed() {
    let p = Portal::start().await;
    let alice = p.sign_in("alice@customer.test").await;
    let id = open_ticket(&p, &alice, "Printer on fire", "It smokes since the update.").await;

    let t = p.t.ticket(id).await;
    assert_eq!(t.requester, "alice@customer.test");
    assert_eq!(t.comments[0].source, "web");
    assert_eq!(t.comments[0].attachments[0].filename, "log.txt");

    // A comment that mentions a colleague, then a share.
    let res = p
        .act(
            &format!("/tickets/{id}/comments"),
            &alice,
            &[("body", "@bob.brown can you confirm?")],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.text());
    let res = p
        .act(
            &format!("/tickets/{id}/share"),
            &alice,
            &[("email", "bob@customer.test")],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.text());

    // Staff: In Progress, P2, an internal note.
    let sam = p.sign_in("sam@example.test").await;
    for (action, field, value) in [
        ("status", "status", "in_progress"),
        ("priority", "priority", "P2"),
    ] {
        let res = p
            .act(&format!("/tickets/{id}/{action}"), &sam, &[(field, value)])
            .await;
        assert_eq!(res.status, 303, "{action}: {}", res.text());
    }
    let res = p
        .act(
            &format!("/tickets/{id}/comments"),
            &sam,
            &[
                ("body", "Staff only: the fuser is a known fault."),
                ("internal", "on"),
            ],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.text());

    let t = p.t.ticket(id).await;
    assert_eq!(t.status, ticketgate::domain::ticket::Status::InProgress);
    assert!(t.comments.iter().any(|c| c.internal && c.source == "web"));

    // Alice's page: the priority with its SLA, not the internal note.
    let page = p.get(&format!("/tickets/{id}"), Some(&alice)).await.text();
    assert!(page.contains("In Progress"), "{page}");
    assert!(page.contains("P2") && page.contains("High"), "{page}");
    assert!(
        page.contains("Priority set to P2"),
        "the priority comment shows: {page}"
    );
    assert!(
        !page.contains("known fault"),
        "a customer never sees an internal note"
    );
    let staff_page = p.get(&format!("/tickets/{id}"), Some(&sam)).await.text();
    assert!(staff_page.contains("known fault"));

    // The mail: the team heard of the new ticket, Bob of his mention/share,
    // and the internal note reached staff only.
    let mails = p.t.mails().await;
    for m in &mails {
        m.assert_reads_well();
    }
    let to = |who: &str| mails.iter().filter(|m| m.to == who).collect::<Vec<_>>();
    assert!(
        to("team@example.test")
            .iter()
            .any(|m| m.text.contains("It smokes"))
    );
    assert!(
        to("alice@customer.test")
            .iter()
            .any(|m| m.text.contains("#") && m.subject.contains("Printer on fire"))
    );
    assert!(
        !to("bob@customer.test").is_empty(),
        "Bob is told of the mention"
    );
    for m in to("alice@customer.test")
        .iter()
        .chain(to("bob@customer.test").iter())
    {
        assert!(
            !m.text.contains("known fault"),
            "an internal note was emailed to {}",
            m.to
        );
    }
}

/// A page that does not exist, whatever the reason (no such number, not a
/// number, not this reader's ticket), is the same 404 portal page, in its
/// reader's language and with the navigation.
#[tokio::test]
async fn missing_pages_are_portal_pages_in_the_readers_language() {
    let p = Portal::start().await;
    let alice = p.sign_in("alice@customer.test").await;
    for path in [
        "/tickets/abc",
        "/tickets/99999",
        "/tickets/1/attachments/x",
        "/nope",
    ] {
        let res = p.get(path, Some(&alice)).await;
        assert_eq!(res.status, 404, "{path}");
        let page = res.text();
        assert!(page.contains("<h1>Not found</h1>"), "{path}: {page}");
        assert!(
            page.contains("href=\"/tickets/new\""),
            "{path}: the navigation"
        );
        assert!(!page.contains("Invalid URL"), "{path}");
    }
    let user =
        p.t.store()
            .find_user(&"alice@customer.test".parse().unwrap())
            .await
            .unwrap()
            .unwrap();
    p.t.store()
        .update_user(
            user.id,
            &ticketgate::store::UserChange {
                locale: Some("ja".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let page = p.get("/tickets/abc", Some(&alice)).await.text();
    assert!(page.contains("<html lang=\"ja\">"), "{page}");
    assert!(
        page.contains("見つかりません") && !page.contains("Not found"),
        "{page}"
    );
    // Signed out: the browser's language.
    let res = send(
        p.addr,
        "GET",
        "/nope",
        &[("Accept-Language", "ja,en;q=0.5")],
        None,
    )
    .await;
    assert_eq!(res.status, 404);
    assert!(res.text().contains("見つかりません"));
}

/// A comment posted from a page whose token is out of date (signed in again
/// in another window) is not posted, and not lost: the page comes back with
/// the text as typed and a fresh token.
#[tokio::test]
async fn a_stale_form_keeps_the_typed_comment() {
    let p = Portal::start().await;
    let old = p.sign_in("alice@customer.test").await;
    let id = open_ticket(&p, &old, "Stale", "First words.").await;
    let new = p.sign_in("alice@customer.test").await;
    assert_ne!(old.csrf, new.csrf);
    let before = p.t.ticket(id).await.comments.len();
    let typed = "A long answer <typed> with care.";
    let stale = Browser {
        cookie: new.cookie.clone(),
        csrf: old.csrf.clone(),
    };
    let res = p
        .act(
            &format!("/tickets/{id}/comments"),
            &stale,
            &[("body", typed)],
        )
        .await;
    assert_eq!(res.status, 403);
    let page = res.text();
    assert!(
        page.contains("role=\"alert\"") && page.contains("out of date"),
        "{page}"
    );
    assert!(
        page.contains("A long answer &lt;typed&gt; with care.</textarea>"),
        "the text is kept: {page}"
    );
    assert_eq!(csrf_of(&page), new.csrf, "a fresh token");
    assert_eq!(
        p.t.ticket(id).await.comments.len(),
        before,
        "nothing posted"
    );
    // Posted again from that page, it goes in.
    let res = p
        .act(&format!("/tickets/{id}/comments"), &new, &[("body", typed)])
        .await;
    assert_eq!(res.status, 303);
    assert_eq!(p.t.ticket(id).await.comments.len(), before + 1);
}

#[tokio::test]
async fn another_organizations_ticket_is_not_found() {
    let p = Portal::start().await;
    let alice = p.sign_in("alice@customer.test").await;
    let id = open_ticket(&p, &alice, "Private", "Only Site A may read this.").await;
    let carol = p.sign_in("carol@other.test").await;
    let res = p.get(&format!("/tickets/{id}"), Some(&carol)).await;
    assert_eq!(res.status, 404);
    assert!(!res.text().contains("Only Site A"));
    let res = p
        .act(
            &format!("/tickets/{id}/comments"),
            &carol,
            &[("body", "let me in")],
        )
        .await;
    assert_eq!(res.status, 404);
    let list = p.get("/tickets", Some(&carol)).await.text();
    assert!(!list.contains("Private"));
    // Bob, in Alice's organization, sees it.
    let bob = p.sign_in("bob@customer.test").await;
    assert_eq!(
        p.get(&format!("/tickets/{id}"), Some(&bob)).await.status,
        200
    );
}

#[tokio::test]
async fn a_post_without_the_csrf_token_changes_nothing() {
    let p = Portal::start().await;
    let alice = p.sign_in("alice@customer.test").await;
    let id = open_ticket(&p, &alice, "CSRF", "First.").await;
    let before = p.t.ticket(id).await.comments.len();
    let res = p
        .post(
            &format!("/tickets/{id}/comments"),
            Some(&alice),
            &[("body", "forged")],
        )
        .await;
    assert_eq!(res.status, 403);
    let res = p
        .post(
            &format!("/tickets/{id}/comments"),
            Some(&alice),
            &[("csrf", "tg_wrong"), ("body", "forged")],
        )
        .await;
    assert_eq!(res.status, 403);
    // Multipart: the token must come first; a file before it is never read.
    let boundary = "b0undary";
    let body = multipart(
        boundary,
        &[("body", "forged")],
        &[("attachments", "x.txt", b"x")],
    );
    let kind = format!("multipart/form-data; boundary={boundary}");
    let res = send(
        p.addr,
        "POST",
        &format!("/tickets/{id}/comments"),
        &[("Content-Type", &kind), ("Cookie", &alice.cookie)],
        Some(&body),
    )
    .await;
    assert_eq!(res.status, 403);
    // A cross-site POST is refused even with the token.
    let fields = form(&[("csrf", &alice.csrf), ("body", "cross-site")]);
    let res = send(
        p.addr,
        "POST",
        &format!("/tickets/{id}/comments"),
        &[
            ("Content-Type", FORM),
            ("Cookie", &alice.cookie),
            ("Sec-Fetch-Site", "cross-site"),
        ],
        Some(&fields),
    )
    .await;
    assert_eq!(res.status, 403);
    assert_eq!(p.t.ticket(id).await.comments.len(), before);
    // Signed out: no change either.
    let res = p
        .post(
            &format!("/tickets/{id}/comments"),
            None,
            &[("body", "anon")],
        )
        .await;
    assert_eq!(res.status, 403);
    assert_eq!(p.t.ticket(id).await.comments.len(), before);
}

#[tokio::test]
async fn a_used_or_expired_link_is_refused() {
    let p = Portal::start().await;
    p.post("/login", None, &[("email", "alice@customer.test")])
        .await;
    let link = p.links_to("alice@customer.test").await.pop().unwrap();
    p.open_link(&link).await.expect("first use signs in");
    let again = p
        .open_link(&link)
        .await
        .err()
        .expect("a second use is refused");
    assert_eq!(again.status, 410);
    assert!(again.header("set-cookie").is_none());

    let alice =
        p.t.store()
            .find_user(&"alice@customer.test".parse().unwrap())
            .await
            .unwrap()
            .unwrap();
    let mut tx = p.t.store().begin().await.unwrap();
    let stale = portal_link(
        tx.as_mut(),
        "http://portal.test",
        alice.id,
        LinkPurpose::SignIn,
        Duration::ZERO,
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let res = p
        .open_link(&stale)
        .await
        .err()
        .expect("an expired link is refused");
    assert_eq!(res.status, 410);
    let made_up = format!("/login/tg_{}", "0".repeat(64));
    assert_eq!(p.post(&made_up, None, &[]).await.status, 410);
}

#[tokio::test]
async fn a_customer_cannot_set_a_staff_only_status() {
    let p = Portal::start().await;
    let alice = p.sign_in("alice@customer.test").await;
    let id = open_ticket(&p, &alice, "Status", "Please hurry.").await;
    let res = p
        .act(
            &format!("/tickets/{id}/status"),
            &alice,
            &[("status", "in_progress")],
        )
        .await;
    assert_eq!(res.status, 422);
    let page = res.text();
    assert!(
        page.contains("“In Progress”"),
        "the label, not the machine name: {page}"
    );
    assert_eq!(
        p.t.ticket(id).await.status,
        ticketgate::domain::ticket::Status::New
    );
    // The creator cannot be removed, and is told so in words.
    let bob = p.sign_in("bob@customer.test").await;
    let res = p
        .act(
            &format!("/tickets/{id}/unshare"),
            &bob,
            &[("email", "alice@customer.test")],
        )
        .await;
    assert_eq!(res.status, 409, "{}", res.text());
    assert!(res.text().contains("cannot be removed"));
    // A customer may close their own ticket.
    let res = p
        .act(
            &format!("/tickets/{id}/status"),
            &alice,
            &[("status", "closed")],
        )
        .await;
    assert_eq!(res.status, 303);
    assert_eq!(
        p.t.ticket(id).await.status,
        ticketgate::domain::ticket::Status::Closed
    );
}

/// One parse of a release name (src/domain/version.rs): Sam's `#release`
/// by mail and the portal's release field, each on a fresh copy of the same
/// ticket, store the same name as typed and give the same ticket JSON; a name
/// both refuse is told on the page with a 422, never a 500.
#[tokio::test]
async fn a_release_is_read_the_same_by_mail_and_in_the_portal() {
    for (typed, stored) in [
        ("5.2 beta", Some("5.2 beta")),
        ("v4.2.1", Some("v4.2.1")),
        ("5.2\u{202E}1", None),
    ] {
        let mut seen = Vec::new();
        for channel in ["email", "web"] {
            let p = Portal::start().await;
            let id =
                p.t.deliver_file("_base/01_alice_opens_ticket.eml")
                    .await
                    .ticket
                    .unwrap();
            if channel == "email" {
                let to = ticketgate::domain::token::reply_address(
                    &"support@example.test".parse().unwrap(),
                    b"test-secret",
                    id,
                    4,
                );
                let raw = format!(
                    "From: Sam Staff <sam@example.test>\nTo: {to}\nMessage-ID: <rel-1@example.test>\n\
                     In-Reply-To: <base-1@customer.test>\nSubject: Re: Login page\n\n#release {typed}\n"
                );
                p.t.deliver(raw.as_bytes()).await;
            } else {
                let sam = p.sign_in("sam@example.test").await;
                let res = p
                    .act(
                        &format!("/tickets/{id}/release"),
                        &sam,
                        &[("version", typed)],
                    )
                    .await;
                if stored.is_some() {
                    assert_eq!(res.status, 303, "{typed:?}: {}", res.text());
                } else {
                    assert_eq!(res.status, 422, "{typed:?}: {}", res.text());
                    assert!(
                        res.text().contains("That release name cannot be recorded.")
                            && res.text().contains("invisible or control characters"),
                        "the page says why: {}",
                        res.text()
                    );
                }
            }
            let view = p.t.ticket(id).await;
            assert_eq!(view.release.as_deref(), stored, "{typed:?} by {channel}");
            // The JSON `ticket show --json` and the API print.
            let json = serde_json::to_value(ticketgate::api::wire::TicketView::from(view)).unwrap();
            let last = json["comments"].as_array().unwrap().last().unwrap()["body"].clone();
            seen.push((json["release"].clone(), last));
        }
        assert_eq!(seen[0].0, serde_json::json!(stored), "{typed:?}");
        assert_eq!(seen[0], seen[1], "{typed:?}: mail and portal agree");
    }
}

#[tokio::test]
async fn an_unknown_address_gets_the_same_page_and_no_email() {
    let p = Portal::start().await;
    let known = p
        .post("/login", None, &[("email", "alice@customer.test")])
        .await;
    let unknown = p
        .post("/login", None, &[("email", "mallory@evil.test")])
        .await;
    assert_eq!(known.status, unknown.status);
    assert_eq!(known.text(), unknown.text());
    let outbox = p.t.outbox().await;
    assert!(outbox.iter().all(|r| r.to != "mallory@evil.test"));
    // Per address: at most 5 links per window, the page unchanged.
    for _ in 0..6 {
        let res = p
            .post("/login", None, &[("email", "bob@customer.test")])
            .await;
        assert_eq!(res.text(), known.text());
    }
    assert_eq!(p.links_to("bob@customer.test").await.len(), 5);
}

/// `POST /login` from `client` as a TLS proxy on this host would forward it.
async fn login_via_proxy(p: &Portal, client: &str) -> u16 {
    let body = form(&[("email", "mallory@evil.test")]);
    let headers = [("Content-Type", FORM), ("X-Forwarded-For", client)];
    send(p.addr, "POST", "/login", &headers, Some(&body))
        .await
        .status
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_has_its_own_sign_in_limit() {
    let two = Rate {
        count: 2,
        per: Duration::from_secs(600),
    };
    let p = Portal::start_with(|web| {
        web.login_limit_client = two;
        web.trusted_proxies = vec![Network::parse("127.0.0.1").unwrap()];
    })
    .await;
    assert_eq!(login_via_proxy(&p, "203.0.113.5").await, 200);
    assert_eq!(login_via_proxy(&p, "203.0.113.5").await, 200);
    assert_eq!(login_via_proxy(&p, "203.0.113.5").await, 429);
    // A client prepending its own header is still itself.
    assert_eq!(login_via_proxy(&p, "198.51.100.1, 203.0.113.5").await, 429);
    // Its whole /24 is one client (an office, a host with many addresses)...
    assert_eq!(login_via_proxy(&p, "203.0.113.6").await, 429);
    // ...and a client of another network behind the same proxy is not held up.
    assert_eq!(login_via_proxy(&p, "192.0.2.6").await, 200);

    // Without trusted proxies the header is the client's own word: ignored,
    // so every request from this host counts against one limit.
    let p = Portal::start_with(|web| web.login_limit_client = two).await;
    assert_eq!(login_via_proxy(&p, "203.0.113.5").await, 200);
    assert_eq!(login_via_proxy(&p, "203.0.113.6").await, 200);
    assert_eq!(login_via_proxy(&p, "203.0.113.7").await, 429);
}

#[tokio::test]
async fn a_post_from_another_origin_is_refused_when_the_browser_sends_no_fetch_metadata() {
    let p = Portal::start().await;
    // The portal's own origin is `[web] base_url`.
    let ours = "http://127.0.0.1:8080";
    p.post("/login", None, &[("email", "alice@customer.test")])
        .await;
    let link = p.links_to("alice@customer.test").await.pop().unwrap();
    let path = &link[link.find("/login/").unwrap()..];
    // Login CSRF: another site's page posts the attacker's own link from the
    // victim's browser, which sends no Sec-Fetch-Site but an Origin (or a
    // Referer).
    for (name, value) in [
        ("Origin", "http://evil.test"),
        ("Origin", "null"),
        ("Origin", "http://127.0.0.1:8081"),
        ("Referer", "http://evil.test/page"),
    ] {
        let res = send(
            p.addr,
            "POST",
            path,
            &[("Content-Type", FORM), (name, value)],
            Some(b""),
        )
        .await;
        assert_eq!(res.status, 403, "{name}: {value}");
        assert!(res.header("set-cookie").is_none(), "{name}: {value}");
    }
    // The link was not used up: from the portal's own page it signs in.
    let res = send(
        p.addr,
        "POST",
        path,
        &[("Content-Type", FORM), ("Origin", ours)],
        Some(b""),
    )
    .await;
    assert_eq!(res.status, 303, "{}", res.text());
    assert!(res.header("set-cookie").is_some());

    // Asking for a link from another site sends none.
    let body = form(&[("email", "bob@customer.test")]);
    let res = send(
        p.addr,
        "POST",
        "/login",
        &[("Content-Type", FORM), ("Origin", "http://evil.test")],
        Some(&body),
    )
    .await;
    assert_eq!(res.status, 403);
    assert!(p.links_to("bob@customer.test").await.is_empty());

    // Signed in, with the token: another origin, or a sibling site, changes nothing.
    let alice = p.sign_in("alice@customer.test").await;
    let id = open_ticket(&p, &alice, "Origin", "First.").await;
    let before = p.t.ticket(id).await.comments.len();
    let path = format!("/tickets/{id}/comments");
    let fields = form(&[("csrf", &alice.csrf), ("body", "from elsewhere")]);
    for (name, value) in [
        ("Origin", "http://evil.test"),
        ("Referer", "https://127.0.0.1:8080/tickets"),
        ("Sec-Fetch-Site", "same-site"),
    ] {
        let headers = [
            ("Content-Type", FORM),
            ("Cookie", &alice.cookie),
            (name, value),
        ];
        let res = send(p.addr, "POST", &path, &headers, Some(&fields)).await;
        assert_eq!(res.status, 403, "{name}: {value}");
    }
    assert_eq!(p.t.ticket(id).await.comments.len(), before);
    // The portal's own pages: their Origin, their Referer, or Fetch Metadata.
    for (name, value) in [
        ("Origin", ours),
        ("Referer", "http://127.0.0.1:8080/tickets/1"),
        ("Sec-Fetch-Site", "same-origin"),
    ] {
        let headers = [
            ("Content-Type", FORM),
            ("Cookie", &alice.cookie),
            (name, value),
        ];
        let res = send(p.addr, "POST", &path, &headers, Some(&fields)).await;
        assert_eq!(res.status, 303, "{name}: {value}");
    }
    assert_eq!(p.t.ticket(id).await.comments.len(), before + 3);
}

#[tokio::test]
async fn forms_over_their_field_file_or_text_limits_are_refused_with_413_and_change_nothing() {
    let p = Portal::start().await;
    let alice = p.sign_in("alice@customer.test").await;
    let id = open_ticket(&p, &alice, "Limits", "First.").await;
    let path = format!("/tickets/{id}/comments");
    let before = p.t.ticket(id).await.comments.len();
    let addr = p.addr;
    let post = |kind: String, body: Vec<u8>| {
        let cookie = alice.cookie.clone();
        let path = path.clone();
        async move {
            send(
                addr,
                "POST",
                &path,
                &[("Content-Type", &kind), ("Cookie", &cookie)],
                Some(&body),
            )
            .await
            .status
        }
    };
    // 1,001 url-encoded fields (`[web] max_fields` is 1,000), nearly all empty.
    let many = format!("csrf={}&body=many{}", alice.csrf, "&x=".repeat(999));
    assert_eq!(post(FORM.to_string(), many.into_bytes()).await, 413);
    // The same as multipart parts.
    let boundary = "b0undary";
    let kind = format!("multipart/form-data; boundary={boundary}");
    let mut fields = vec![("csrf", alice.csrf.as_str()), ("body", "many")];
    fields.extend(std::iter::repeat_n(("x", ""), 999));
    assert_eq!(
        post(kind.clone(), multipart(boundary, &fields, &[])).await,
        413
    );
    // 101 one-byte files (`[web] max_files` is 100).
    let files = vec![("attachments", "f.txt", &b"x"[..]); 101];
    let body = multipart(
        boundary,
        &[("csrf", &alice.csrf), ("body", "files")],
        &files,
    );
    assert_eq!(post(kind.clone(), body).await, 413);
    // More than a megabyte of text, url-encoded or in parts.
    let long = "a".repeat(1024 * 1024 + 1);
    let body = form(&[("csrf", &alice.csrf), ("body", &long)]);
    assert_eq!(post(FORM.to_string(), body).await, 413);
    let body = multipart(boundary, &[("csrf", &alice.csrf), ("body", &long)], &[]);
    assert_eq!(post(kind.clone(), body).await, 413);

    let t = p.t.ticket(id).await;
    assert_eq!(t.comments.len(), before, "nothing was added");
    // Within the limits the same forms go through.
    let files = vec![("attachments", "f.txt", &b"x"[..]); 3];
    let body = multipart(
        boundary,
        &[("csrf", &alice.csrf), ("body", "three files")],
        &files,
    );
    assert_eq!(post(kind, body).await, 303);
    let t = p.t.ticket(id).await;
    assert_eq!(t.comments.last().unwrap().attachments.len(), 3);
}

#[tokio::test]
async fn portal_subjects_and_file_names_are_cleaned_as_mail_is() {
    let p = Portal::start().await;
    let alice = p.sign_in("alice@customer.test").await;
    let boundary = "XyZ123boundary";
    let long = format!("{}.txt", "n".repeat(5 * 1024 * 1024));
    let body = multipart(
        boundary,
        &[
            ("csrf", &alice.csrf),
            ("subject", "Invoice \u{202E}fdp.exe\u{200B} overdue"),
            ("body", "See the files."),
        ],
        &[
            ("attachments", "../../../tmp/pwn.txt", b"x"),
            ("attachments", &long, b"y"),
        ],
    );
    let kind = format!("multipart/form-data; boundary={boundary}");
    let res = send(
        p.addr,
        "POST",
        "/tickets",
        &[("Content-Type", &kind), ("Cookie", &alice.cookie)],
        Some(&body),
    )
    .await;
    assert_eq!(res.status, 303, "{}", res.text());
    let id: i64 = res.header("location").unwrap()["/tickets/".len()..]
        .trim_end_matches("?done=new")
        .parse()
        .unwrap();
    let t = p.t.ticket(id).await;
    assert_eq!(t.subject, "Invoice fdp.exe overdue");
    let files = &t.comments[0].attachments;
    assert_eq!(files[0].filename, "pwn.txt");
    assert!(
        files[1].filename.len() <= 255,
        "{}",
        files[1].filename.len()
    );
    assert!(files[1].filename.ends_with(".txt"));
    // What the team is mailed names the files as stored.
    let notices = p.t.outbox().await;
    let sizes: Vec<usize> = notices
        .iter()
        .map(|n| n.context.to_string().len())
        .collect();
    assert!(sizes.iter().all(|&n| n < 20_000), "{sizes:?}");
    // The download is named without the path.
    let download = p
        .get(
            &format!("/tickets/{id}/attachments/{}", files[0].id),
            Some(&alice),
        )
        .await;
    assert_eq!(download.status, 200);
    assert_eq!(
        download.header("content-disposition"),
        Some("attachment; filename=\"pwn.txt\"; filename*=UTF-8''pwn.txt")
    );
}

#[tokio::test]
async fn html_in_a_comment_is_shown_as_text() {
    let p = Portal::start().await;
    let alice = p.sign_in("alice@customer.test").await;
    let id = open_ticket(
        &p,
        &alice,
        "<b>bold</b> subject",
        "<script>alert(1)</script> & <img src=x onerror=alert(2)>",
    )
    .await;
    let res = p.get(&format!("/tickets/{id}"), Some(&alice)).await;
    let page = res.text();
    assert!(!page.contains("<script>alert(1)"), "{page}");
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;")
            || page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );
    assert!(!page.contains("<b>bold</b>"));
    let csp = res.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
}

#[tokio::test]
async fn the_mentionable_list_is_the_viewers_organization() {
    let p = Portal::start().await;
    let alice = p.sign_in("alice@customer.test").await;
    let id = open_ticket(&p, &alice, "Mentions", "Who can I tell?").await;
    let res = p
        .get(&format!("/tickets/{id}/mentionable?q=b"), Some(&alice))
        .await;
    assert_eq!(res.status, 200);
    let people = res.json();
    let emails: Vec<&str> = people
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["email"].as_str().unwrap())
        .collect();
    assert!(emails.contains(&"bob@customer.test"), "{people}");
    assert!(
        !emails.contains(&"carol@other.test"),
        "another organization is not listed"
    );
    let bob = people
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["email"] == "bob@customer.test")
        .unwrap();
    assert_eq!(bob["handle"], "bob.brown");

    // Staff may reach anyone, but a mention lets nobody in: Carol, of
    // another company, is not offered on Alice's ticket.
    let sam = p.sign_in("sam@example.test").await;
    let emails = |res: common::http::Response| -> Vec<String> {
        res.json()
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["email"].as_str().unwrap().to_string())
            .collect()
    };
    let offered = emails(
        p.get(&format!("/tickets/{id}/mentionable?q="), Some(&sam))
            .await,
    );
    assert!(
        offered.contains(&"bob@customer.test".to_string()),
        "{offered:?}"
    );
    assert!(
        !offered.contains(&"carol@other.test".to_string()),
        "{offered:?}"
    );

    // The new-ticket form has the same list, for the ticket about to be
    // opened, and says which mentions found nobody.
    let new = p.get("/tickets/new", Some(&alice)).await.text();
    assert!(new.contains("data-mentionable=\"/tickets/new/mentionable\""));
    let offered = emails(p.get("/tickets/new/mentionable?q=", Some(&alice)).await);
    assert!(
        offered.contains(&"bob@customer.test".to_string()),
        "{offered:?}"
    );
    assert!(
        !offered.contains(&"carol@other.test".to_string()),
        "{offered:?}"
    );
    let boundary = "XyZ";
    let body = multipart(
        boundary,
        &[
            ("csrf", alice.csrf.as_str()),
            ("subject", "Two mentions"),
            ("body", "@bob.brown and @carol@other.test, please look."),
        ],
        &[],
    );
    let kind = format!("multipart/form-data; boundary={boundary}");
    let res = send(
        p.addr,
        "POST",
        "/tickets",
        &[("Content-Type", &kind), ("Cookie", &alice.cookie)],
        Some(&body),
    )
    .await;
    assert_eq!(res.status, 201, "the ticket is open: {}", res.text());
    let page = res.text();
    assert!(
        page.contains("Your ticket is open, but these mentions notified nobody:")
            && page.contains("@carol@other.test"),
        "{page}"
    );
    assert!(!page.contains("@bob.brown:"), "Bob was told: {page}");
}

/// Where the browser test leaves its screenshots: `TICKETGATE_SCREENSHOTS`
/// (`docs/screenshots` to refresh the README's), else the test's folder.
fn screenshot_dir(p: &Portal) -> std::path::PathBuf {
    match std::env::var_os("TICKETGATE_SCREENSHOTS") {
        Some(dir) => {
            let dir = std::path::PathBuf::from(dir);
            std::fs::create_dir_all(&dir).unwrap();
            dir
        }
        None => p.t.dir.path().to_path_buf(),
    }
}

/// The portal link in a mail's text (`…/login/tg_` and 64 hex digits).
fn portal_link_in(text: &str) -> Option<String> {
    let at = text.find("/login/tg_")?;
    let start = text[..at].rfind("http")?;
    text.get(start..at + "/login/".len() + 67)
        .map(str::to_string)
}

/// Signs `email` in through the browser: the sign-in form, then the link
/// from the mail it causes, then its button.
async fn browser_sign_in(p: &Portal, d: &common::webdriver::Driver, email: &str) {
    d.goto(&format!("http://{}/", p.addr)).await;
    d.type_into("#email", email).await;
    d.submit("form[action='/login'] button").await;
    d.wait_for(".notice.ok").await;
    let link = p
        .links_to(email)
        .await
        .pop()
        .expect("a sign-in link was emailed");
    let path = &link[link.find("/login/").unwrap()..];
    d.goto(&format!("http://{}{path}", p.addr)).await;
    d.submit("#sign-in").await;
    d.wait_for("form[action='/logout']").await;
}

async fn browser_sign_out(d: &common::webdriver::Driver) {
    d.submit("form[action='/logout'] button").await;
    d.wait_for("#email").await;
}

#[test]
fn in_a_real_browser_a_customer_and_staff_work_a_ticket() {
    // The walk-through's future polls in one large frame in a debug build:
    // more than a test thread's 2 MiB stack, so it runs on a thread of its own.
    std::thread::Builder::new()
        .stack_size(16 << 20)
        .spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    if let Some(d) = common::webdriver::Driver::start().await {
                        browser_walkthrough(d).await;
                    }
                })
        })
        .unwrap()
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
}

async fn browser_walkthrough(d: common::webdriver::Driver) {
    let p = Portal::start().await;
    let shots = screenshot_dir(&p);
    let base = format!("http://{}", p.addr);

    // Alice: signs in from the emailed link, opens a ticket with a file.
    browser_sign_in(&p, &d, "alice@customer.test").await;
    d.goto(&format!("{base}/tickets/new")).await;
    d.type_into("#subject", "Invoices export fails with error 500")
        .await;
    d.type_into(
        "#body",
        "Since this morning the CSV export of invoices answers 500.\nThe log is attached.",
    )
    .await;
    let file = p.t.dir.path().join("export.log");
    std::fs::write(&file, "GET /invoices.csv 500 12ms\n").unwrap();
    d.type_into("#attachments", file.to_str().unwrap()).await;
    d.submit("form[action='/tickets'] button[type=submit]")
        .await;
    d.wait_for(".conversation").await;
    let url = d.url().await;
    let id: i64 = url
        .rsplit('/')
        .next()
        .unwrap()
        .trim_end_matches("?done=new")
        .parse()
        .unwrap();
    let page = d.source().await;
    assert!(page.contains("export.log"));
    assert!(page.contains("Your ticket is open."), "the page says so");

    // A comment with an @ picked from the autocomplete.
    d.type_into("#body", "Looping in @bo").await;
    d.wait_for("#mention-list li[data-handle='bob.brown']")
        .await;
    d.click("#mention-list li[data-handle='bob.brown']").await;
    d.type_into("#body", "who saw it first.").await;
    d.submit("#post-comment").await;
    d.wait_for("#latest").await;
    let t = p.t.ticket(id).await;
    let last = t.comments.last().unwrap();
    assert_eq!(last.body, "Looping in @bob.brown who saw it first.");
    assert_eq!(last.source, "web");

    // Shares with a teammate.
    d.type_into("#share-email", "carol@other.test").await;
    d.submit("form[action$='/share'] button").await;
    d.wait_for(".notice.error").await;
    assert!(
        p.t.ticket(id)
            .await
            .followers
            .iter()
            .all(|f| f.email != "carol@other.test"),
        "a customer shares only within reach"
    );
    d.goto(&format!("{base}/tickets/{id}")).await;
    d.type_into("#share-email", "bob@customer.test").await;
    d.submit("form[action$='/share'] button").await;
    d.wait_for(".conversation").await;
    assert!(
        p.t.ticket(id)
            .await
            .followers
            .iter()
            .any(|f| f.email == "bob@customer.test")
    );
    d.goto(&format!("{base}/tickets")).await;
    d.screenshot(&shots.join("customer-tickets.png")).await;
    browser_sign_out(&d).await;

    // Sam (staff): In Progress, P2, an internal note.
    browser_sign_in(&p, &d, "sam@example.test").await;
    d.goto(&format!("{base}/tickets/{id}")).await;
    d.select("#set-status", "in_progress").await;
    d.submit("form[action$='/status'] button").await;
    d.wait_for(".conversation").await;
    d.select("#set-priority", "P2").await;
    d.submit("form[action$='/priority'] button").await;
    d.wait_for(".conversation").await;
    d.type_into(
        "#body",
        "Internal: the export job ran out of memory on db-2.",
    )
    .await;
    d.click("#internal").await;
    d.submit("#post-comment").await;
    d.wait_for("#latest").await;
    browser_sign_out(&d).await;

    // Alice again: the priority comment, not the internal note.
    browser_sign_in(&p, &d, "alice@customer.test").await;
    d.goto(&format!("{base}/tickets/{id}")).await;
    let page = d.source().await;
    assert!(page.contains("Priority set to P2"), "{page}");
    assert!(d.text("#status").await.contains("In Progress"));
    assert!(
        !page.contains("ran out of memory"),
        "a customer never sees an internal note"
    );
    d.screenshot(&shots.join("ticket.png")).await;

    // The same page in Japanese, for a Japanese customer.
    let user =
        p.t.store()
            .find_user(&"alice@customer.test".parse().unwrap())
            .await
            .unwrap()
            .unwrap();
    p.t.store()
        .update_user(
            user.id,
            &ticketgate::store::UserChange {
                name: None,
                role: None,
                locale: Some("ja".into()),
                org_id: None,
                active: None,
            },
        )
        .await
        .unwrap();
    d.goto(&format!("{base}/tickets/{id}")).await;
    let page = d.source().await;
    assert!(page.contains("コメントを追加"));
    // The priority comment, said again from its event in her language.
    assert!(
        page.contains("優先度を「P2（高）」に設定しました。回答目標時間は「4時間」です。"),
        "{page}"
    );
    assert!(
        !page.contains("Priority set to"),
        "English on a Japanese page"
    );
    d.screenshot(&shots.join("ticket-ja.png")).await;
    d.goto(&format!("{base}/profile")).await;
    assert!(!d.overflows().await, "the profile scrolls sideways");
    assert_eq!(d.text("label[for='profile-locale']").await, "言語");
    d.screenshot(&shots.join("profile-ja.png")).await;

    // On a phone (390 px): nothing scrolls sideways, and the conversation
    // comes before the action panel.
    d.resize(390, 844).await;
    d.goto(&format!("{base}/tickets/{id}")).await;
    assert!(!d.overflows().await, "the ticket page scrolls sideways");
    let first = d
        .script(
            "return document.querySelector('.conversation').getBoundingClientRect().top \
             < document.querySelector('.facts').getBoundingClientRect().top;",
        )
        .await;
    assert_eq!(first, serde_json::Value::Bool(true), "conversation first");
    d.screenshot(&shots.join("ticket-ja-phone.png")).await;
    d.goto(&format!("{base}/tickets")).await;
    assert!(!d.overflows().await, "the ticket list scrolls sideways");
    d.screenshot(&shots.join("customer-tickets-phone.png"))
        .await;
    // Her profile on the phone; she goes back to English there.
    d.goto(&format!("{base}/profile")).await;
    assert!(
        !d.overflows().await,
        "the profile scrolls sideways at 390 px"
    );
    d.screenshot(&shots.join("profile-ja-phone.png")).await;
    d.select("#profile-locale", "en").await;
    d.submit("#profile button[type=submit]").await;
    d.wait_for(".notice.ok").await;
    assert_eq!(d.text(".notice.ok").await, "Your profile was saved.");
    assert!(d.source().await.contains("<html lang=\"en\">"));
    assert!(!d.overflows().await, "the saved profile scrolls sideways");
    browser_sign_out(&d).await;
    browser_sign_in(&p, &d, "sam@example.test").await;
    for page in ["/tickets", "/staff/quarantine", "/staff/people"] {
        d.goto(&format!("{base}{page}")).await;
        assert!(!d.overflows().await, "{page} scrolls sideways at 390 px");
    }
    d.resize(1280, 900).await;

    // The mail: exactly who should hear of what.
    let mails = p.t.mails().await;
    for m in &mails {
        m.assert_reads_well();
    }
    let about = |who: &str| -> Vec<&common::Mail> {
        mails
            .iter()
            .filter(|m| m.to == who && m.subject.contains(&format!("#{id}]")))
            .collect()
    };
    assert_eq!(
        about("alice@customer.test").len(),
        3,
        "ack, status, priority: {:?}",
        about("alice@customer.test")
            .iter()
            .map(|m| &m.text[..80.min(m.text.len())])
            .collect::<Vec<_>>()
    );
    assert!(
        !about("bob@customer.test").is_empty(),
        "Bob heard of the mention"
    );
    for m in about("alice@customer.test")
        .iter()
        .chain(about("bob@customer.test").iter())
    {
        assert!(
            !m.text.contains("ran out of memory"),
            "internal note mailed to {}",
            m.to
        );
    }
    assert!(
        about("team@example.test")
            .iter()
            .any(|m| m.text.contains("ran out of memory")),
        "the team gets the internal note"
    );
    assert!(about("carol@other.test").is_empty());
    // One mail per person per change: Alice (ack, status, priority), Bob
    // (the mention, status, priority; the share found him following), Dave
    // the lead (shared by the rule, the comment, status, priority, the
    // internal note), the team's address (new ticket, comment, status,
    // priority, internal note); Sam made the changes and hears of none.
    let counts: Vec<(String, usize)> = common::count_per_recipient(
        &mails
            .iter()
            .filter(|m| m.subject.contains(&format!("#{id}]")))
            .cloned()
            .collect::<Vec<_>>(),
    );
    assert_eq!(
        counts,
        vec![
            ("alice@customer.test".to_string(), 3),
            ("bob@customer.test".to_string(), 3),
            ("dave@example.test".to_string(), 5),
            ("team@example.test".to_string(), 5),
        ]
    );

    // The desk (after the mail above is counted): Sam's queue with owners
    // and clocks, an overdue P1 and Dave's ticket beside Alice's.
    let alice = p.sign_in("alice@customer.test").await;
    let overdue = open_ticket(&p, &alice, "Checkout answers 502", "All shops.").await;
    let daves = open_ticket(&p, &alice, "Logo blurry on invoices", "Since May.").await;
    p.t.sqlite_execute(
        "UPDATE tickets SET priority = 'P1', response_due = ?1 WHERE id = ?2",
        rusqlite::params![
            stored_time(OffsetDateTime::now_utc() - Duration::from_secs(900)),
            overdue
        ],
    )
    .await;
    p.t.sqlite_execute(
        "UPDATE tickets SET owner_id = (SELECT id FROM users WHERE email = 'dave@example.test')
         WHERE id = ?1",
        [daves],
    )
    .await;
    d.goto(&format!("{base}/tickets")).await;
    d.select("#filter-owner", "none").await;
    d.select("#filter-sort", "due").await;
    d.submit("form[role=search] button[type=submit]").await;
    d.wait_for("table.list").await;
    assert!(
        d.url().await.contains("owner=none&sort=due"),
        "{}",
        d.url().await
    );
    let queue = d.source().await;
    assert!(
        row_of(&queue, overdue).unwrap() < row_of(&queue, id).unwrap(),
        "overdue first: {queue}"
    );
    assert_eq!(row_of(&queue, daves), None, "Dave's is not unassigned");
    assert!(queue.contains("Overdue"), "{queue}");
    d.goto(&format!("{base}/tickets?sort=due")).await;
    d.screenshot(&shots.join("staff-queue.png")).await;

    // He takes Alice's ticket and closes it as a feature request.
    d.goto(&format!("{base}/tickets/{id}")).await;
    d.submit("#assign-me").await;
    d.wait_for(".notice.ok").await;
    assert!(d.text("#owner").await.contains("Sam Staff"));
    d.select("#close-as", "feature_request").await;
    d.submit("form[action$='/close'] button").await;
    d.wait_for(".notice.ok").await;
    assert_eq!(d.text("#close-reason").await, "Feature request");
    // Dave's ticket turns out to be the overdue one again: merged into it.
    d.goto(&format!("{base}/tickets/{daves}")).await;
    d.type_into("#merge-into", &overdue.to_string()).await;
    d.submit("form[action$='/merge'] button").await;
    d.wait_for(".notice.ok").await;
    assert!(
        d.url()
            .await
            .ends_with(&format!("/tickets/{overdue}?done=merge")),
        "{}",
        d.url().await
    );
    assert_eq!(p.t.ticket(daves).await.merged_into, Some(overdue));
    // Its invoice comment belongs elsewhere: moved to a ticket of its own.
    let invoice = p.t.ticket(overdue).await.comments.last().unwrap().id;
    d.script(&format!(
        "document.querySelector('#move-{invoice}').closest('details').open = true"
    ))
    .await;
    d.type_into(&format!("#move-{invoice}"), "new").await;
    d.submit(&format!("form[action$='/comments/{invoice}/move'] button"))
        .await;
    d.wait_for(".notice.ok").await;
    let moved_to =
        p.t.ticket(overdue)
            .await
            .comments
            .iter()
            .all(|c| c.id != invoice);
    assert!(moved_to, "the comment left #{overdue}: {}", d.url().await);
    d.goto(&format!("{base}/tickets/{overdue}")).await;
    assert!(d.text("#response-due").await.contains("Overdue"));
    d.screenshot(&shots.join("ticket-staff.png")).await;

    // The same in Japanese, and on a phone: nothing scrolls sideways.
    let sam =
        p.t.store()
            .find_user(&"sam@example.test".parse().unwrap())
            .await
            .unwrap()
            .unwrap();
    p.t.store()
        .update_user(
            sam.id,
            &ticketgate::store::UserChange {
                locale: Some("ja".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    for (width, height, suffix) in [(1280, 900, "ja"), (390, 844, "ja-phone")] {
        d.resize(width, height).await;
        d.goto(&format!("{base}/tickets?sort=due")).await;
        assert!(
            !d.overflows().await,
            "the queue scrolls sideways at {width} px"
        );
        assert!(d.source().await.contains("期限超過"));
        d.screenshot(&shots.join(format!("staff-queue-{suffix}.png")))
            .await;
        d.goto(&format!("{base}/tickets/{overdue}")).await;
        assert!(
            !d.overflows().await,
            "the ticket scrolls sideways at {width} px"
        );
        assert_eq!(
            d.text("label[for='close-as']").await,
            "理由を選んでクローズ"
        );
        d.screenshot(&shots.join(format!("ticket-staff-{suffix}.png")))
            .await;
    }
    d.resize(1280, 900).await;
}

#[tokio::test]
async fn staff_pages_hold_the_quarantine_and_the_people_and_customers_never_see_them() {
    let p = Portal::start().await;
    let alice = p.sign_in("alice@customer.test").await;
    let id = open_ticket(&p, &alice, "Quarantine me", "First.").await;
    for path in ["/staff/quarantine", "/staff/people"] {
        assert_eq!(p.get(path, Some(&alice)).await.status, 404, "{path}");
    }
    assert_eq!(
        p.act(
            "/staff/users",
            &alice,
            &[("email", "x@customer.test"), ("name", "X")]
        )
        .await
        .status,
        404
    );

    // Carol (another organization) replies to a notification she was
    // forwarded: quarantined.
    let notified =
        p.t.outbox()
            .await
            .into_iter()
            .find(|r| r.ticket_id == Some(id))
            .expect("a notification about the ticket");
    let raw = format!(
        "From: Carol Chen <carol@other.test>\r\nTo: support@example.test\r\nSubject: Re: [Support #{id}] Quarantine me\r\n\
         In-Reply-To: {parent}\r\nMessage-ID: <carol-1@other.test>\r\nDate: Wed, 02 Dec 2026 10:00:00 +0000\r\n\r\n<b>let me in</b>\r\n",
        parent = notified.message_id
    );
    let report = p.t.deliver(raw.as_bytes()).await;
    assert_eq!(report.outcome, "quarantined");
    let sam = p.sign_in("sam@example.test").await;
    let list = p.get("/staff/quarantine", Some(&sam)).await.text();
    assert!(
        list.contains("carol@other.test")
            && list.contains(&format!("/staff/quarantine/{}", report.log_id)),
        "{list}"
    );
    let shown = p
        .get(&format!("/staff/quarantine/{}", report.log_id), Some(&sam))
        .await
        .text();
    assert!(
        shown.contains("&lt;b&gt;let me in&lt;&#x2f;b&gt;")
            || shown.contains("&lt;b&gt;let me in&lt;/b&gt;"),
        "{shown}"
    );

    // Staff shares the ticket with Carol, of another organization: the page
    // asks first and shares nothing until confirmed; then Sam replays: now a
    // comment.
    let res = p
        .act(
            &format!("/tickets/{id}/share"),
            &sam,
            &[("email", "carol@other.test")],
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let ask = res.text();
    assert!(
        ask.contains("Carol Chen &lt;carol@other.test&gt; is of Other Corp")
            && ask.contains("name=\"confirm\" value=\"yes\""),
        "{ask}"
    );
    assert!(
        p.t.ticket(id)
            .await
            .followers
            .iter()
            .all(|f| f.email != "carol@other.test"),
        "nothing shared before the confirmation"
    );
    let res = p
        .act(
            &format!("/tickets/{id}/share"),
            &sam,
            &[("email", "carol@other.test"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.text());
    let res = p
        .act(
            &format!("/staff/quarantine/{}/replay", report.log_id),
            &sam,
            &[],
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert!(
        res.text().contains(&format!(
            "Message {} was replayed and added to ticket #{id}.",
            report.log_id
        )),
        "{}",
        res.text()
    );
    assert!(
        p.t.ticket(id)
            .await
            .comments
            .iter()
            .any(|c| c.body.contains("let me in"))
    );
    assert!(
        !p.get("/staff/quarantine", Some(&sam))
            .await
            .text()
            .contains(&format!("/staff/quarantine/{}\"", report.log_id))
    );

    // People: add a user (invited, with a link), invite again, a lead.
    let res = p
        .act(
            "/staff/users",
            &sam,
            &[
                ("email", "erin@customer.test"),
                ("name", "Erin Example"),
                ("org", "customer-site-a"),
                ("role", "customer"),
                ("locale", "ja"),
            ],
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert!(res.text().contains("erin@customer.test"));
    let again = p
        .act(
            "/staff/users",
            &sam,
            &[("email", "erin@customer.test"), ("name", "Erin")],
        )
        .await;
    assert_eq!(again.status, 409, "a second add says it exists");
    let res = p
        .act(
            "/staff/users/invite",
            &sam,
            &[("email", "erin@customer.test")],
        )
        .await;
    assert_eq!(res.status, 200);
    let invites: Vec<_> =
        p.t.outbox()
            .await
            .into_iter()
            .filter(|r| r.to == "erin@customer.test" && r.template == "invite")
            .collect();
    assert_eq!(invites.len(), 2);
    let links = p.links_to("erin@customer.test").await;
    assert_eq!(links.len(), 2, "each invitation carries a link");
    assert_ne!(links[0], links[1], "each invitation has its own link");
    p.open_link(&links[1])
        .await
        .expect("the invitation's link signs Erin in");
    let res = p
        .act(
            "/staff/leads",
            &sam,
            &[("org", "customer-site-a"), ("email", "sam@example.test")],
        )
        .await;
    assert_eq!(res.status, 200);
    let org =
        p.t.store()
            .find_org("customer-site-a")
            .await
            .unwrap()
            .unwrap();
    assert!(
        org.leads.iter().any(|l| l == "sam@example.test"),
        "{:?}",
        org.leads
    );
    let res = p
        .act(
            "/staff/leads/remove",
            &sam,
            &[("org", "customer-site-a"), ("email", "sam@example.test")],
        )
        .await;
    assert_eq!(res.status, 200);
    let org =
        p.t.store()
            .find_org("customer-site-a")
            .await
            .unwrap()
            .unwrap();
    assert!(!org.leads.iter().any(|l| l == "sam@example.test"));
}

#[tokio::test]
async fn removing_ones_own_organization_asks_first() {
    let p = Portal::start().await;
    let alice = p.sign_in("alice@customer.test").await;
    let id = open_ticket(&p, &alice, "Org", "Shared with Site A.").await;
    let path = format!("/tickets/{id}/unshare-org");
    let res = p.act(&path, &alice, &[("org", "customer-site-a")]).await;
    assert_eq!(res.status, 200);
    assert!(res.text().contains("may lose access"), "{}", res.text());
    assert!(res.text().contains("name=\"confirm\""));
    assert_eq!(
        p.t.ticket(id).await.orgs,
        vec!["customer-site-a".to_string()],
        "nothing changed yet"
    );
    let res = p
        .act(
            &path,
            &alice,
            &[("org", "customer-site-a"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.text());
    assert!(p.t.ticket(id).await.orgs.is_empty());
    // Alice still follows her ticket: she keeps it.
    assert_eq!(
        p.get(&format!("/tickets/{id}"), Some(&alice)).await.status,
        200
    );
    // Another organization cannot be shared by a customer.
    let res = p
        .act(
            &format!("/tickets/{id}/share-org"),
            &alice,
            &[("org", "other-corp")],
        )
        .await;
    assert_eq!(res.status, 403, "{}", res.text());
    assert!(p.t.ticket(id).await.orgs.is_empty());
}

/// Where a ticket's row sits in a list page (`None`: not listed).
fn row_of(page: &str, id: i64) -> Option<usize> {
    page.find(&format!("\">#{id}</a>"))
}

/// Lists show open tickets unless asked (`closed` includes Closed -
/// Escalated), last update first, searchable by everyone, in pages of 50,
/// and an empty list says why in the reader's role.
#[tokio::test]
async fn lists_show_open_tickets_newest_update_first_in_pages_and_say_why_when_empty() {
    let p = Portal::start().await;
    let alice = p.sign_in("alice@customer.test").await;
    let older = open_ticket(&p, &alice, "Printer jams", "Tray 2.").await;
    let newer = open_ticket(&p, &alice, "Scanner offline", "Since Monday.").await;
    // Closing the older one also makes it the last updated.
    let res = p
        .act(
            &format!("/tickets/{older}/status"),
            &alice,
            &[("status", "closed")],
        )
        .await;
    assert_eq!(res.status, 303);

    let open = p.get("/tickets", Some(&alice)).await.text();
    assert!(row_of(&open, newer).is_some(), "{open}");
    assert_eq!(row_of(&open, older), None, "closed is not open: {open}");
    assert!(
        open.contains("href=\"/tickets?status=closed\""),
        "the tabs: {open}"
    );
    let closed = p.get("/tickets?status=closed", Some(&alice)).await.text();
    assert!(
        row_of(&closed, older).is_some() && row_of(&closed, newer).is_none(),
        "{closed}"
    );
    let all = p.get("/tickets?status=all", Some(&alice)).await.text();
    assert!(
        row_of(&all, older).unwrap() < row_of(&all, newer).unwrap(),
        "last update first: {all}"
    );
    let found = p
        .get("/tickets?status=all&q=scanner", Some(&alice))
        .await
        .text();
    assert!(
        row_of(&found, newer).is_some() && row_of(&found, older).is_none(),
        "{found}"
    );
    let none = p.get("/tickets?q=fax", Some(&alice)).await.text();
    assert!(none.contains("No tickets match"), "{none}");
    // A customer cannot name a staff status to see around the tabs.
    let named = p.get("/tickets?status=closed_x", Some(&alice)).await.text();
    assert_eq!(row_of(&named, older), None, "{named}");

    // The ticket page names the organization and the people, not slugs alone.
    let page = p
        .get(&format!("/tickets/{newer}"), Some(&alice))
        .await
        .text();
    assert!(
        page.contains("<li>Customer Site A") && !page.contains("<li>customer-site-a"),
        "{page}"
    );
    assert!(page.contains("<li>Alice Anders <small"), "{page}");
    assert!(
        !page.contains("/share-org\""),
        "her organization is on the ticket already: {page}"
    );

    // Carol, of another organization, has none open, and is told what to do.
    let carol = p.sign_in("carol@other.test").await;
    let empty = p.get("/tickets", Some(&carol)).await.text();
    assert!(empty.contains("You have no open tickets"), "{empty}");

    // Staff: the queue is open tickets too; one status may be named.
    let sam = p.sign_in("sam@example.test").await;
    let queue = p.get("/tickets", Some(&sam)).await.text();
    assert!(
        queue.contains(">Customer Site A</td>") && queue.contains("Alice Anders"),
        "names, not slugs: {queue}"
    );
    assert!(
        row_of(&queue, newer).is_some() && row_of(&queue, older).is_none(),
        "{queue}"
    );
    let named = p.get("/tickets?status=closed", Some(&sam)).await.text();
    assert!(
        row_of(&named, older).is_some() && row_of(&named, newer).is_none(),
        "{named}"
    );
    let nothing = p.get("/tickets?status=blocked", Some(&sam)).await.text();
    assert!(
        nothing.contains("No tickets match"),
        "not the customer's text: {nothing}"
    );

    // Pages of 50: 51 open tickets make two pages, each linking the other.
    for n in 0..50 {
        open_ticket(&p, &alice, &format!("Batch {n}"), "More.").await;
    }
    let first = p.get("/tickets", Some(&alice)).await.text();
    assert_eq!(first.matches("\">#").count(), 50, "{first}");
    let first = first.replace("&#x2f;", "/");
    assert!(
        first.contains("href=\"/tickets?page=2\" rel=\"next\""),
        "{first}"
    );
    assert_eq!(
        row_of(&first, newer),
        None,
        "the oldest update is on page 2"
    );
    let second = p.get("/tickets?page=2", Some(&alice)).await.text();
    assert_eq!(second.matches("\">#").count(), 1, "{second}");
    assert!(row_of(&second, newer).is_some(), "{second}");
    assert!(second.contains("rel=\"prev\""), "{second}");
}

/// A new ticket's acknowledgement tells a customer who has never signed in
/// that the portal exists and how to get in (in their language); once they
/// have signed in, it no longer does.
#[tokio::test]
async fn the_acknowledgement_tells_newcomers_how_to_get_into_the_portal() {
    let p = Portal::start().await;
    let login = format!(
        "{}/login",
        p.t.app.settings.web.base_url.trim_end_matches('/')
    );
    let bob =
        p.t.store()
            .find_user(&ticketgate::domain::ids::EmailAddress::parse("bob@customer.test").unwrap())
            .await
            .unwrap()
            .unwrap();
    p.t.store()
        .update_user(
            bob.id,
            &ticketgate::store::UserChange {
                locale: Some("ja".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let ack = |from: &'static str, subject: &'static str| {
        let p = &p;
        async move {
            let raw = format!(
                "From: {from}\r\nTo: support@example.test\r\nSubject: {subject}\r\nMessage-ID: <{}@customer.test>\r\n\r\nThe export fails.\r\n",
                subject.replace(' ', ".")
            );
            p.t.deliver(raw.as_bytes()).await;
            let mails = p.t.mails().await;
            let found: Vec<_> = mails
                .into_iter()
                .filter(|m| m.to == from && m.subject.contains(subject))
                .collect();
            assert_eq!(found.len(), 1, "one acknowledgement of {subject}");
            found.into_iter().next().unwrap()
        }
    };
    let first = ack("alice@customer.test", "First export").await;
    assert!(first.text.contains(&login), "{}", first.text);
    assert!(first.text.contains("sign-in link"), "{}", first.text);
    let html = first.html.replace("&#x2f;", "/");
    assert!(html.contains(&format!("href=\"{login}\"")), "{html}");
    let ja = ack("bob@customer.test", "Bob export").await;
    assert!(
        ja.text.contains(&login) && ja.text.contains("サインイン用のリンク"),
        "{}",
        ja.text
    );
    ja.assert_reads_well();

    p.sign_in("alice@customer.test").await;
    let later = ack("alice@customer.test", "Second export").await;
    assert!(!later.text.contains(&login), "{}", later.text);
    assert!(!later.text.contains("sign-in link"), "{}", later.text);
}

/// axe-core (`TICKETGATE_TEST_AXE`: the path of `axe.min.js`, installed by
/// scripts/test.sh from npm) finds no serious or critical violation, and no
/// page scrolls sideways, on the ticket list (the staff queue for staff), a
/// ticket page, the new-ticket page, the profile and the staff pages, in
/// English and Japanese, at desktop and phone width.
#[test]
fn in_a_real_browser_axe_core_finds_no_serious_violation() {
    std::thread::Builder::new()
        .stack_size(16 << 20)
        .spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let Some(d) = common::webdriver::Driver::start().await else {
                        return;
                    };
                    let axe = match std::env::var_os("TICKETGATE_TEST_AXE") {
                        Some(path) => std::fs::read_to_string(&path)
                            .unwrap_or_else(|e| panic!("TICKETGATE_TEST_AXE {path:?}: {e}")),
                        None => {
                            assert!(
                                std::env::var_os("TICKETGATE_TEST_BROWSER").is_none(),
                                "TICKETGATE_TEST_BROWSER is set but TICKETGATE_TEST_AXE is not"
                            );
                            eprintln!(
                                "skipping the axe-core check: TICKETGATE_TEST_AXE is not set"
                            );
                            return;
                        }
                    };
                    axe_walk(d, &axe).await;
                })
        })
        .unwrap()
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
}

async fn axe_walk(d: common::webdriver::Driver, axe: &str) {
    let p = Portal::start().await;
    let base = format!("http://{}", p.addr);
    let alice = p.sign_in("alice@customer.test").await;
    let id = open_ticket(&p, &alice, "Export fails", "The CSV export answers 500.").await;
    let sam = p.sign_in("sam@example.test").await;
    p.act(
        &format!("/tickets/{id}/comments"),
        &sam,
        &[("body", "Looking at it.")],
    )
    .await;
    // The desk on the pages: an owner and clocks, and a closed ticket's reason.
    p.act(
        &format!("/tickets/{id}/priority"),
        &sam,
        &[("priority", "P1")],
    )
    .await;
    p.act(&format!("/tickets/{id}/owner"), &sam, &[("owner", "me")])
        .await;
    let closed = open_ticket(&p, &alice, "Old invoice PDF", "Wrong logo.").await;
    p.act(
        &format!("/tickets/{closed}/close"),
        &sam,
        &[("reason", "duplicate")],
    )
    .await;
    let mut found = Vec::new();
    for locale in ["en", "ja"] {
        for email in ["alice@customer.test", "sam@example.test"] {
            let user =
                p.t.store()
                    .find_user(&ticketgate::domain::ids::EmailAddress::parse(email).unwrap())
                    .await
                    .unwrap()
                    .unwrap();
            p.t.store()
                .update_user(
                    user.id,
                    &ticketgate::store::UserChange {
                        locale: Some(locale.into()),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            browser_sign_in(&p, &d, email).await;
            let ticket = format!("/tickets/{id}");
            let closed_page = format!("/tickets/{closed}");
            let mut pages = vec![
                "/tickets",
                ticket.as_str(),
                closed_page.as_str(),
                "/tickets/new",
                "/profile",
            ];
            if email.starts_with("sam@") {
                pages.extend([
                    "/staff/quarantine",
                    "/staff/people",
                    "/tickets?owner=me&sort=due&breached=true",
                ]);
            }
            for (width, height) in [(1280, 900), (390, 844)] {
                d.resize(width, height).await;
                for page in &pages {
                    d.goto(&format!("{base}{page}")).await;
                    for v in d.axe(axe).await {
                        found.push(format!("{email} {locale} {width}px {page}: {v}"));
                    }
                    if d.overflows().await {
                        found.push(format!(
                            "{email} {locale} {width}px {page}: scrolls sideways"
                        ));
                    }
                }
            }
            browser_sign_out(&d).await;
        }
    }
    assert!(found.is_empty(), "axe-core:\n{}", found.join("\n"));
}

/// The stored name and language of `email`.
async fn profile_of(p: &Portal, email: &str) -> (String, String) {
    let user =
        p.t.store()
            .find_user(&email.parse().unwrap())
            .await
            .unwrap()
            .unwrap();
    (user.name, user.locale)
}

/// The profile page shows and changes the person's name and language; the
/// page after saving says so in the language chosen, and so is every page
/// and mail after it.
#[tokio::test]
async fn the_profile_changes_name_and_language_and_what_follows_is_in_that_language() {
    let p = Portal::start().await;
    let alice = p.sign_in("alice@customer.test").await;
    let page = p.get("/tickets", Some(&alice)).await.text();
    assert!(page.contains("<a href=\"/profile\">Profile</a>"), "{page}");
    let res = p.get("/profile", Some(&alice)).await;
    assert_eq!(res.status, 200);
    let page = res.text();
    assert!(page.contains("<html lang=\"en\">"), "{page}");
    assert!(page.contains("value=\"Alice Anders\""), "{page}");
    for control in ["profile-email", "profile-name", "profile-locale"] {
        assert!(
            page.contains(&format!("<label for=\"{control}\">")),
            "{control} has a label: {page}"
        );
    }
    assert!(page.contains("<option value=\"en\" lang=\"en\" selected>English</option>"));
    assert!(page.contains("<option value=\"ja\" lang=\"ja\">日本語</option>"));

    // Without the session's token nothing changes.
    for fields in [
        vec![("name", "Mallory"), ("locale", "ja")],
        vec![("csrf", "tg_wrong"), ("name", "Mallory"), ("locale", "ja")],
    ] {
        let res = p.post("/profile", Some(&alice), &fields).await;
        assert_eq!(res.status, 403);
    }
    let res = p
        .post("/profile", None, &[("name", "Mallory"), ("locale", "ja")])
        .await;
    assert_eq!(res.status, 403, "signed out");
    assert_eq!(
        profile_of(&p, "alice@customer.test").await,
        ("Alice Anders".to_string(), "en".to_string())
    );

    // The name is cleaned as names from mail are; Japanese from now on.
    let res = p
        .act(
            "/profile",
            &alice,
            &[("name", "  有栖 \u{200B}Anders\t "), ("locale", "ja")],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.text());
    let next = res.header("location").unwrap().to_string();
    assert_eq!(next, "/profile?done=profile");
    assert_eq!(
        profile_of(&p, "alice@customer.test").await,
        ("有栖 Anders".to_string(), "ja".to_string())
    );
    let page = p.get(&next, Some(&alice)).await.text();
    assert!(page.contains("<html lang=\"ja\">"), "{page}");
    assert!(
        page.contains("role=\"status\">プロフィールを保存しました。"),
        "{page}"
    );
    assert!(page.contains("<option value=\"ja\" lang=\"ja\" selected>日本語</option>"));
    assert!(
        page.contains("<a href=\"/profile\">プロフィール</a>"),
        "{page}"
    );
    let page = p.get("/tickets", Some(&alice)).await.text();
    assert!(page.contains("<html lang=\"ja\">") && page.contains("新しいお問い合わせ"));

    // Mail to her is Japanese too: the outbox reads the stored language.
    let id = open_ticket(&p, &alice, "言語のテスト", "内容です。").await;
    let sam = p.sign_in("sam@example.test").await;
    let res = p
        .act(
            &format!("/tickets/{id}/status"),
            &sam,
            &[("status", "in_progress")],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.text());
    let mails = p.t.mails().await;
    let hers: Vec<_> = mails
        .iter()
        .filter(|m| m.to == "alice@customer.test" && m.subject.contains(&format!("#{id}]")))
        .collect();
    assert_eq!(hers.len(), 2, "acknowledgement and status");
    for m in &hers {
        m.assert_reads_well();
        assert!(m.text.contains("有栖 Anders 様"), "{}", m.text);
    }
    let status = hers.last().unwrap();
    assert!(
        status.text.contains("「新規」から「対応中」"),
        "{}",
        status.text
    );
    assert!(!status.text.contains("In Progress"), "{}", status.text);
}

/// A name or language the portal cannot take shows the form again, as
/// typed, with what to change, in the person's language; nothing is saved.
#[tokio::test]
async fn a_bad_profile_is_shown_again_with_what_to_change() {
    let p = Portal::start().await;
    let alice = p.sign_in("alice@customer.test").await;
    let long = "A".repeat(101);
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("name", "Alice Anders"), ("locale", "fr")],
            "Choose one of the languages offered.",
        ),
        (
            &[("name", "Alice Anders"), ("locale", "JA")],
            "Choose one of the languages offered.",
        ),
        (
            &[("name", "Alice Anders")],
            "Choose one of the languages offered.",
        ),
        (
            &[("name", " \u{200B} "), ("locale", "ja")],
            "Please enter your name.",
        ),
        (&[("locale", "ja")], "Please enter your name."),
        (
            &[("name", &long), ("locale", "ja")],
            "That name is too long: at most 100 characters.",
        ),
    ];
    for (fields, says) in cases {
        let res = p.act("/profile", &alice, fields).await;
        assert_eq!(res.status, 422, "{fields:?}");
        let page = res.text();
        assert!(
            page.contains(&format!("role=\"alert\" id=\"profile-error\">{says}</p>")),
            "{fields:?}: {page}"
        );
        assert!(page.contains("<form method=\"post\" action=\"/profile\""));
        assert!(page.contains("<html lang=\"en\">"), "still her language");
        if let Some((_, typed)) = fields.iter().find(|(k, _)| *k == "name") {
            assert!(
                page.contains(&format!("value=\"{typed}\"")),
                "kept as typed"
            );
        }
    }
    assert_eq!(
        profile_of(&p, "alice@customer.test").await,
        ("Alice Anders".to_string(), "en".to_string())
    );
    // In Japanese for a Japanese reader.
    let res = p
        .act(
            "/profile",
            &alice,
            &[("name", "Alice Anders"), ("locale", "ja")],
        )
        .await;
    assert_eq!(res.status, 303);
    let res = p
        .act("/profile", &alice, &[("name", ""), ("locale", "ja")])
        .await;
    assert_eq!(res.status, 422);
    assert!(res.text().contains("お名前を入力してください。"));
}

/// Before sign-in the browser's languages choose the page's: the sign-in
/// page, its answers and error pages; the highest weight wins.
#[tokio::test]
async fn before_sign_in_accept_language_chooses_the_language() {
    let p = Portal::start().await;
    let addr = p.addr;
    let get = move |path: &'static str, languages: &'static str| async move {
        let headers: Vec<(&str, &str)> = if languages.is_empty() {
            Vec::new()
        } else {
            vec![("Accept-Language", languages)]
        };
        send(addr, "GET", path, &headers, None).await
    };
    for path in ["/login", "/"] {
        let page = get(path, "en;q=0.3, ja-JP").await.text();
        assert!(page.contains("<html lang=\"ja\">"), "{path}: {page}");
        assert!(
            page.contains("<label for=\"email\">メールアドレス</label>"),
            "{page}"
        );
        assert!(!page.contains("Sign in"), "{page}");
        let page = get(path, "").await.text();
        assert!(page.contains("<html lang=\"en\">") && page.contains("Sign in"));
        let page = get(path, "ja;q=0, de").await.text();
        assert!(page.contains("<html lang=\"en\">"), "ja refused: {page}");
    }
    let res = get("/nope", "ja").await;
    assert_eq!(res.status, 404);
    assert!(res.text().contains("<html lang=\"ja\">"));
    // The answer to the form, and an expired link, in the same language.
    let body = form(&[("email", "alice@customer.test")]);
    let res = send(
        p.addr,
        "POST",
        "/login",
        &[("Content-Type", FORM), ("Accept-Language", "ja")],
        Some(&body),
    )
    .await;
    assert_eq!(res.status, 200);
    assert!(res.text().contains("サインイン用リンクをお送りしました"));
    let res = get("/login/tg_nope", "ja").await;
    assert_eq!(res.status, 410);
    assert!(res.text().contains("<html lang=\"ja\">"));
}

/// A Japanese reader's ticket page and list say the status, the priority's
/// level and its response target in Japanese: no English config words.
#[tokio::test]
async fn a_japanese_readers_ticket_page_has_no_english_status_or_sla_words() {
    let p = Portal::start().await;
    let alice = p.sign_in("alice@customer.test").await;
    let id = open_ticket(&p, &alice, "Export fails", "Since this morning.").await;
    let sam = p.sign_in("sam@example.test").await;
    for (action, field, value) in [
        ("status", "status", "in_progress"),
        ("priority", "priority", "P2"),
    ] {
        let res = p
            .act(&format!("/tickets/{id}/{action}"), &sam, &[(field, value)])
            .await;
        assert_eq!(res.status, 303, "{}", res.text());
    }
    // In English, as configured.
    let page = p.get(&format!("/tickets/{id}"), Some(&alice)).await.text();
    assert!(page.contains(">In Progress</span>"), "{page}");
    assert!(page.contains("Response within 4 hours"), "{page}");
    assert!(page.contains("Priority set to P2 (High): response within 4 hours."));

    let res = p
        .act(
            "/profile",
            &alice,
            &[("name", "Alice Anders"), ("locale", "ja")],
        )
        .await;
    assert_eq!(res.status, 303);
    let page = p.get(&format!("/tickets/{id}"), Some(&alice)).await.text();
    assert!(page.contains(">対応中</span>"), "{page}");
    assert!(page.contains("P2 · 高"), "{page}");
    assert!(page.contains("回答目標 4時間"), "{page}");
    assert!(
        page.contains("優先度を「P2（高）」に設定しました。回答目標時間は「4時間」です。"),
        "{page}"
    );
    assert!(
        page.contains("「新規」から「対応中」"),
        "the history line: {page}"
    );
    for english in ["In Progress", "New", "High", "hours", "hour"] {
        assert!(!page.contains(english), "{english}: {page}");
    }
    let list = p.get("/tickets", Some(&alice)).await.text();
    assert!(list.contains(">対応中</span>"), "{list}");
    assert!(!list.contains("In Progress"), "{list}");

    // Staff reading Japanese get the status menu in Japanese too.
    let res = p
        .act("/profile", &sam, &[("name", "Sam Staff"), ("locale", "ja")])
        .await;
    assert_eq!(res.status, 303);
    let page = p.get(&format!("/tickets/{id}"), Some(&sam)).await.text();
    assert!(
        page.contains(">完了（TEMへエスカレーション済み）</option>"),
        "{page}"
    );
    assert!(!page.contains("Escalated to TEM"), "{page}");
    let queue = p.get("/tickets", Some(&sam)).await.text();
    assert!(
        !queue.contains("In Progress") && queue.contains("対応中"),
        "{queue}"
    );
}

/// Carol (another organization, registered) replies to a notification of
/// Alice's ticket that was forwarded to her: quarantined. The ticket's id
/// and the quarantined delivery's log id.
async fn a_strangers_reply(p: &Portal, alice: &Browser, text: &str) -> (i64, i64) {
    let id = open_ticket(p, alice, "Forwarded", "First.").await;
    let notified =
        p.t.outbox()
            .await
            .into_iter()
            .find(|r| r.ticket_id == Some(id))
            .expect("a notification about the ticket");
    let raw = format!(
        "From: Carol Chen <carol@other.test>\r\nTo: support@example.test\r\nSubject: Re: [Support #{id}] Forwarded\r\n\
         In-Reply-To: {parent}\r\nMessage-ID: <carol-{id}@other.test>\r\nDate: Wed, 02 Dec 2026 10:00:00 +0000\r\n\r\n{text}\r\n",
        parent = notified.message_id
    );
    let report = p.t.deliver(raw.as_bytes()).await;
    assert_eq!(report.outcome, "quarantined");
    (id, report.log_id)
}

/// The notice a staff page shows after a form (`role="status"`), its text.
fn status_notice(html: &str) -> String {
    let at = html
        .find("role=\"status\"")
        .unwrap_or_else(|| panic!("a status notice in {html}"));
    let end = at + html[at..].find("</div>").unwrap();
    html[at..end].to_string()
}

#[tokio::test]
async fn a_replay_held_back_again_says_why_in_words_and_the_list_shows_words_and_local_times() {
    let p = Portal::start().await;
    let alice = p.sign_in("alice@customer.test").await;
    let (_, log_id) = a_strangers_reply(&p, &alice, "Let me in.").await;
    let sam = p.sign_in("sam@example.test").await;
    let list = p.get("/staff/quarantine", Some(&sam)).await.text();
    assert!(
        list.contains("the sender is registered but does not take part in the ticket."),
        "{list}"
    );
    assert!(!list.contains("not_a_participant"), "no machine names");
    let received =
        p.t.store()
            .log_row(log_id)
            .await
            .unwrap()
            .unwrap()
            .received_at;
    assert!(!list.contains(&received), "no stored ISO time: {received}");
    assert!(!list.contains(&received[..16]), "no ISO time: {received}");

    // Replayed without sharing first: held back again, and the page says so.
    let res = p
        .act(&format!("/staff/quarantine/{log_id}/replay"), &sam, &[])
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let notice = status_notice(&res.text());
    assert!(
        notice.contains(&format!(
            "Message {log_id} was replayed but held back again"
        )) && notice.contains("does not take part in the ticket"),
        "{notice}"
    );
    assert!(!notice.contains("not_a_participant"), "{notice}");
    // The new delivery waits in its place; the old one was replayed.
    let again = p.t.store().log_row(log_id).await.unwrap().unwrap();
    assert!(again.superseded);
    let res = p
        .act(&format!("/staff/quarantine/{log_id}/replay"), &sam, &[])
        .await;
    assert_eq!(res.status, 409, "a second replay of the same row");
    assert!(res.text().contains("role=\"alert\""), "{}", res.text());
    assert!(res.text().contains("already replayed"), "{}", res.text());

    // In Japanese for a Japanese reader.
    let mut tx = p.t.store().begin().await.unwrap();
    let sam_user = tx
        .user_by_email(&"sam@example.test".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    drop(tx);
    let ja = ticketgate::store::UserChange {
        locale: Some("ja".into()),
        ..Default::default()
    };
    assert!(p.t.store().update_user(sam_user.id, &ja).await.unwrap());
    let list = p.get("/staff/quarantine", Some(&sam)).await.text();
    assert!(
        list.contains("送信者は登録済みですが、このお問い合わせの関係者ではありません。"),
        "{list}"
    );
    let newest =
        p.t.store()
            .list_log(&Default::default())
            .await
            .unwrap()
            .last()
            .unwrap()
            .id;
    let res = p
        .act(&format!("/staff/quarantine/{newest}/replay"), &sam, &[])
        .await;
    let notice = status_notice(&res.text());
    assert!(notice.contains("再び保留されました"), "{notice}");
}

#[tokio::test]
async fn share_and_replay_lets_a_strangers_reply_in_as_a_comment() {
    let p = Portal::start().await;
    let alice = p.sign_in("alice@customer.test").await;
    let (id, log_id) = a_strangers_reply(&p, &alice, "Here is the log you asked for.").await;
    let sam = p.sign_in("sam@example.test").await;
    let page = p
        .get(&format!("/staff/quarantine/{log_id}"), Some(&sam))
        .await
        .text();
    assert!(
        page.contains(&format!(
            "action=\"/staff/quarantine/{log_id}/share-and-replay\""
        )),
        "{page}"
    );
    let res = p
        .act(
            &format!("/staff/quarantine/{log_id}/share-and-replay"),
            &sam,
            &[],
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let notice = status_notice(&res.text());
    assert!(
        notice.contains(&format!(
            "Ticket #{id} is now shared with carol@other.test."
        )) && notice.contains(&format!(
            "Message {log_id} was replayed and added to ticket #{id}."
        )),
        "{notice}"
    );
    let ticket = p.t.ticket(id).await;
    let comment = ticket
        .comments
        .iter()
        .find(|c| c.body.contains("Here is the log you asked for."))
        .expect("the reply is a comment now");
    assert_eq!(comment.author, "carol@other.test");
    assert!(
        ticket
            .followers
            .iter()
            .any(|f| f.email == "carol@other.test" && f.source.as_str() == "share"),
        "{:?}",
        ticket.followers
    );
    // Who shared is recorded as for a #share: the staff member.
    assert!(
        ticket
            .events
            .iter()
            .any(|e| e.event.kind() == "follower_added"
                && e.actor.as_deref() == Some("sam@example.test")),
        "{:?}",
        ticket.events
    );
    assert!(
        !p.get("/staff/quarantine", Some(&sam))
            .await
            .text()
            .contains(&format!("/staff/quarantine/{log_id}\"")),
        "no longer pending"
    );
}

#[tokio::test]
async fn share_and_replay_is_not_offered_for_an_unknown_sender_and_shares_nothing() {
    let p = Portal::start().await;
    let alice = p.sign_in("alice@customer.test").await;
    let id = open_ticket(&p, &alice, "Forwarded", "First.").await;
    let notified =
        p.t.outbox()
            .await
            .into_iter()
            .find(|r| r.ticket_id == Some(id))
            .unwrap();
    let raw = format!(
        "From: someone@nowhere.test\r\nTo: support@example.test\r\nSubject: Re: Forwarded\r\n\
         In-Reply-To: {}\r\nMessage-ID: <x-{id}@nowhere.test>\r\n\r\nMe too.\r\n",
        notified.message_id
    );
    let followers = p.t.ticket(id).await.followers.len();
    let report = p.t.deliver(raw.as_bytes()).await;
    assert_eq!(report.outcome, "quarantined");
    let sam = p.sign_in("sam@example.test").await;
    let page = p
        .get(&format!("/staff/quarantine/{}", report.log_id), Some(&sam))
        .await
        .text();
    assert!(!page.contains("/share-and-replay"), "not offered: {page}");
    let res = p
        .act(
            &format!("/staff/quarantine/{}/share-and-replay", report.log_id),
            &sam,
            &[],
        )
        .await;
    assert_eq!(res.status, 409, "{}", res.text());
    assert!(
        res.text()
            .contains("there is nobody to share the ticket with"),
        "{}",
        res.text()
    );
    let row = p.t.store().log_row(report.log_id).await.unwrap().unwrap();
    assert!(!row.superseded, "not replayed");
    assert_eq!(p.t.ticket(id).await.followers.len(), followers);
}

#[tokio::test]
async fn a_discarded_message_is_kept_but_no_longer_pending_and_customers_cannot_touch_it() {
    let p = Portal::start().await;
    let alice = p.sign_in("alice@customer.test").await;
    let (id, log_id) = a_strangers_reply(&p, &alice, "Spam, really.").await;
    for action in ["replay", "share-and-replay", "discard"] {
        let res = p
            .act(&format!("/staff/quarantine/{log_id}/{action}"), &alice, &[])
            .await;
        assert_eq!(res.status, 404, "{action} by a customer");
    }
    let row = p.t.store().log_row(log_id).await.unwrap().unwrap();
    assert!(!row.superseded && row.discarded_at.is_none(), "untouched");

    let sam = p.sign_in("sam@example.test").await;
    // Without the form's token nothing happens.
    let res = p
        .post(
            &format!("/staff/quarantine/{log_id}/discard"),
            Some(&sam),
            &[],
        )
        .await;
    assert_eq!(res.status, 403);
    assert!(
        p.t.store()
            .log_row(log_id)
            .await
            .unwrap()
            .unwrap()
            .discarded_at
            .is_none()
    );

    let res = p
        .act(&format!("/staff/quarantine/{log_id}/discard"), &sam, &[])
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let notice = status_notice(&res.text());
    assert!(
        notice.contains(&format!("Message {log_id} was discarded.")),
        "{notice}"
    );
    assert!(
        !res.text()
            .contains(&format!("/staff/quarantine/{log_id}\"")),
        "no longer listed"
    );
    let row = p.t.store().log_row(log_id).await.unwrap().unwrap();
    assert!(
        row.discarded_at.is_some() && !row.superseded,
        "kept, marked"
    );
    assert!(
        p.t.store().blob(&row.raw_sha256).await.unwrap().is_some(),
        "the raw message stays"
    );
    let page = p
        .get(&format!("/staff/quarantine/{log_id}"), Some(&sam))
        .await
        .text();
    assert!(page.contains("This message was discarded"), "{page}");
    assert!(
        !page.contains(&format!("/staff/quarantine/{log_id}/replay")),
        "{page}"
    );
    // Neither replayed nor discarded again; the ticket never got it.
    let res = p
        .act(&format!("/staff/quarantine/{log_id}/replay"), &sam, &[])
        .await;
    assert_eq!(res.status, 409, "{}", res.text());
    let res = p
        .act(&format!("/staff/quarantine/{log_id}/discard"), &sam, &[])
        .await;
    assert_eq!(res.status, 409, "{}", res.text());
    assert!(
        !p.t.ticket(id)
            .await
            .comments
            .iter()
            .any(|c| c.body.contains("Spam, really."))
    );
    let res = p.act("/staff/quarantine/999999/discard", &sam, &[]).await;
    assert_eq!(res.status, 404);
}

#[tokio::test]
async fn staff_edit_people_and_add_organizations_and_bad_input_is_said_on_the_form() {
    let p = Portal::start().await;
    let sam = p.sign_in("sam@example.test").await;
    let page = p.get("/staff/people", Some(&sam)).await.text();
    // Organization names, not slugs; a lead's name beside their address.
    assert!(page.contains(">Customer Site A</td>"), "{page}");
    assert!(!page.contains("(customer-site-a)"), "{page}");
    assert!(
        page.contains("Dave Lead &lt;dave@example.test&gt;"),
        "{page}"
    );
    assert!(
        page.contains("data-label=\"Organization\">Customer Site A</td>"),
        "alice's organization by name: {page}"
    );
    assert!(
        page.contains("action=\"/staff/people/alice%40customer.test\""),
        "{page}"
    );
    assert!(page.contains("action=\"/staff/orgs\""), "{page}");

    let res = p
        .act(
            "/staff/people/alice%40customer.test",
            &sam,
            &[
                ("name", "Alice Ando"),
                ("role", "customer"),
                ("org", "other-corp"),
                ("locale", "ja"),
                ("active", "true"),
            ],
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let notice = status_notice(&res.text());
    assert!(
        notice.contains("Alice Ando &lt;alice@customer.test&gt; was saved."),
        "{notice}"
    );
    let alice =
        p.t.store()
            .find_user(&"alice@customer.test".parse().unwrap())
            .await
            .unwrap()
            .unwrap();
    assert_eq!(
        (
            alice.name.as_str(),
            alice.org.as_deref(),
            alice.locale.as_str(),
            alice.active
        ),
        ("Alice Ando", Some("other-corp"), "ja", true)
    );

    let res = p
        .act(
            "/staff/orgs",
            &sam,
            &[
                ("name", "Acme Ltd"),
                ("domains", "acme.example, Acme.co.jp  mail.acme.example"),
            ],
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert!(
        status_notice(&res.text()).contains("The organization Acme Ltd was added."),
        "{}",
        res.text()
    );
    let acme = p.t.store().find_org("Acme Ltd").await.unwrap().unwrap();
    let mut domains = acme.domains.clone();
    domains.sort();
    assert_eq!(domains, ["acme.co.jp", "acme.example", "mail.acme.example"]);

    // Refused input: the page again with its forms and what was wrong, 4xx.
    for (path, fields, status, says) in [
        (
            "/staff/orgs",
            vec![
                ("name", "Bad Domains"),
                ("domains", "acme.example, not_a domain!"),
            ],
            422,
            "invalid domain",
        ),
        (
            "/staff/orgs",
            vec![("name", "  "), ("domains", "")],
            422,
            "at least one letter",
        ),
        (
            "/staff/orgs",
            vec![("name", "Acme Ltd"), ("domains", "")],
            409,
            "already exists",
        ),
        (
            "/staff/people/bob%40customer.test",
            vec![("role", "admin")],
            422,
            "admin",
        ),
        (
            "/staff/people/bob%40customer.test",
            vec![("name", " ")],
            422,
            "needs a name",
        ),
        (
            "/staff/people/bob%40customer.test",
            vec![("active", "maybe")],
            422,
            "active must be true or false",
        ),
        (
            "/staff/people/sam%40example.test",
            vec![("active", "false")],
            422,
            "cannot deactivate yourself",
        ),
        (
            "/staff/people/nobody%40customer.test",
            vec![("name", "N")],
            404,
            "no registered user",
        ),
    ] {
        let res = p.act(path, &sam, &fields).await;
        assert_eq!(res.status, status, "{path} {fields:?}: {}", res.text());
        let text = res.text();
        assert!(text.contains("role=\"alert\""), "{text}");
        assert!(
            text.contains(says),
            "{path} {fields:?} says {says:?}: {text}"
        );
        assert!(
            text.contains("action=\"/staff/orgs\""),
            "the forms are there"
        );
    }
    assert!(p.t.store().find_org("Bad Domains").await.unwrap().is_none());
    let bob =
        p.t.store()
            .find_user(&"bob@customer.test".parse().unwrap())
            .await
            .unwrap()
            .unwrap();
    assert_eq!(
        (bob.name.as_str(), bob.active),
        ("Bob Brown", true),
        "unchanged"
    );

    // The last active staff member keeps the staff role.
    let res = p
        .act(
            "/staff/people/dave%40example.test",
            &sam,
            &[("active", "false")],
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert!(
        status_notice(&res.text()).contains("is deactivated"),
        "{}",
        res.text()
    );
    let res = p
        .act(
            "/staff/people/sam%40example.test",
            &sam,
            &[("role", "customer")],
        )
        .await;
    assert_eq!(res.status, 422, "{}", res.text());
    assert!(
        res.text().contains("last active staff member"),
        "{}",
        res.text()
    );
    let sam_user =
        p.t.store()
            .find_user(&"sam@example.test".parse().unwrap())
            .await
            .unwrap()
            .unwrap();
    assert_eq!(sam_user.role, ticketgate::domain::ticket::Role::Staff);

    // Customers reach none of it.
    let bob = p.sign_in("bob@customer.test").await;
    for (path, fields) in [
        ("/staff/people/bob%40customer.test", vec![("role", "staff")]),
        ("/staff/orgs", vec![("name", "Mine"), ("domains", "")]),
    ] {
        assert_eq!(p.act(path, &bob, &fields).await.status, 404, "{path}");
    }
    assert!(p.t.store().find_org("Mine").await.unwrap().is_none());
}

#[tokio::test]
async fn a_deactivated_user_cannot_sign_in_loses_their_session_and_writes_as_a_stranger() {
    let p = Portal::start().await;
    let bob = p.sign_in("bob@customer.test").await;
    let id = open_ticket(&p, &bob, "Bob's printer", "It jams.").await;
    let links_before = p.links_to("bob@customer.test").await.len();
    let sam = p.sign_in("sam@example.test").await;
    let res = p
        .act(
            "/staff/people/bob%40customer.test",
            &sam,
            &[("active", "false")],
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let page = res.text();
    assert!(status_notice(&page).contains("is deactivated"), "{page}");
    assert!(page.contains("Deactivated"), "{page}");

    // The open session stops working.
    let res = p.get("/tickets", Some(&bob)).await;
    assert_eq!(res.status, 303, "signed out: {}", res.text());
    let res = p
        .act(
            &format!("/tickets/{id}/comments"),
            &bob,
            &[("body", "hello?")],
        )
        .await;
    assert_eq!(res.status, 403);
    // A sign-in request says what it says for an unknown address, and sends nothing.
    let asked = p
        .post("/login", None, &[("email", "bob@customer.test")])
        .await;
    let unknown = p
        .post("/login", None, &[("email", "mallory@evil.test")])
        .await;
    assert_eq!(
        (asked.status, asked.text()),
        (unknown.status, unknown.text())
    );
    assert_eq!(p.links_to("bob@customer.test").await.len(), links_before);

    // A reply to his own ticket is a stranger's: held back, not a comment.
    let notified =
        p.t.outbox()
            .await
            .into_iter()
            .find(|r| r.ticket_id == Some(id) && r.to == "bob@customer.test")
            .expect("bob's acknowledgement");
    let reply = format!(
        "From: Bob Brown <bob@customer.test>\r\nTo: support@example.test\r\nSubject: Re: [Support #{id}] Bob's printer\r\n\
         In-Reply-To: {}\r\nMessage-ID: <bob-late@customer.test>\r\n\r\nStill jams.\r\n",
        notified.message_id
    );
    let report = p.t.deliver(reply.as_bytes()).await;
    assert_eq!(
        (report.outcome.as_str(), report.reason.as_deref()),
        ("quarantined", Some("unknown_sender"))
    );
    assert!(
        !p.t.ticket(id)
            .await
            .comments
            .iter()
            .any(|c| c.body.contains("Still jams."))
    );
    // A new message from his organization's domain does not register him again.
    let fresh = b"From: Bob Brown <bob@customer.test>\r\nTo: support@example.test\r\nSubject: New problem\r\n\
        Message-ID: <bob-new@customer.test>\r\n\r\nAnother one.\r\n";
    let report = p.t.deliver(fresh).await;
    assert_eq!(
        (report.outcome.as_str(), report.reason.as_deref()),
        ("rejected", Some("unknown_sender"))
    );
    let stored =
        p.t.store()
            .find_user(&"bob@customer.test".parse().unwrap())
            .await
            .unwrap()
            .unwrap();
    assert!(!stored.active, "mail never reactivates anyone");

    // Staff reactivate him: he signs in again.
    let res = p
        .act(
            "/staff/people/bob%40customer.test",
            &sam,
            &[("active", "true")],
        )
        .await;
    assert_eq!(res.status, 200);
    p.sign_in("bob@customer.test").await;
}

/// A deactivated follower keeps their place on the ticket but is mailed
/// nothing: not the comments of others, not a share with them.
#[tokio::test]
async fn a_deactivated_follower_is_mailed_nothing() {
    let p = Portal::start().await;
    let alice = p.sign_in("alice@customer.test").await;
    let id = open_ticket(&p, &alice, "Scanner", "It is offline.").await;
    let res = p
        .act(
            &format!("/tickets/{id}/share"),
            &alice,
            &[("email", "bob@customer.test")],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.text());
    let to_bob = |mails: Vec<common::Mail>| {
        mails
            .into_iter()
            .filter(|m| m.to == "bob@customer.test")
            .count()
    };
    // While active, Bob is told of Alice's comment.
    p.act(
        &format!("/tickets/{id}/comments"),
        &alice,
        &[("body", "Any news?")],
    )
    .await;
    let before = to_bob(p.t.mails().await);
    assert!(before >= 1, "Bob follows and is mailed");

    let sam = p.sign_in("sam@example.test").await;
    let res = p
        .act(
            "/staff/people/bob%40customer.test",
            &sam,
            &[("active", "false")],
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    p.act(
        &format!("/tickets/{id}/comments"),
        &alice,
        &[("body", "Still offline.")],
    )
    .await;
    p.act(
        &format!("/tickets/{id}/comments"),
        &sam,
        &[("body", "Looking at it.")],
    )
    .await;
    let mails = p.t.mails().await;
    assert!(
        mails
            .iter()
            .any(|m| m.to == "alice@customer.test" && m.text.contains("Looking at it.")),
        "the others are still told"
    );
    assert_eq!(
        to_bob(mails),
        before,
        "nothing more to Bob once deactivated"
    );
    assert!(
        p.t.ticket(id)
            .await
            .followers
            .iter()
            .any(|f| f.email == "bob@customer.test"),
        "still on the ticket"
    );
}

/// A time as the store keeps it (src/store/time_text.rs), for the SQL
/// that moves a clock.
fn stored_time(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
        ))
        .unwrap()
}

/// The owner and due cells of a ticket's row in the staff queue.
fn queue_row(page: &str, id: i64) -> String {
    let at = row_of(page, id).unwrap_or_else(|| panic!("#{id} is listed: {page}"));
    page[at..at + page[at..].find("</tr>").unwrap()].to_string()
}

/// The staff queue names each ticket's owner and its next due time, says
/// in words when that is past or near, filters by owner (mine, unassigned,
/// someone's) and by overdue, sorts by due time, and keeps all of it across
/// pages; a customer's list shows none of it (docs/contract.md, "Desk").
#[tokio::test]
async fn the_staff_queue_shows_owners_and_due_times_and_filters_and_sorts_by_them() {
    let p = Portal::start().await;
    let alice = p.sign_in("alice@customer.test").await;
    let sam = p.sign_in("sam@example.test").await;
    let late = open_ticket(&p, &alice, "Checkout down", "All shops.").await;
    let soon = open_ticket(&p, &alice, "Slow search", "Since the update.").await;
    let none = open_ticket(&p, &alice, "Typo on the invoice", "Page 2.").await;
    for (id, priority) in [(late, "P1"), (soon, "P3")] {
        let res = p
            .act(
                &format!("/tickets/{id}/priority"),
                &sam,
                &[("priority", priority)],
            )
            .await;
        assert_eq!(res.status, 303, "{}", res.text());
    }
    let res = p
        .act(&format!("/tickets/{late}/owner"), &sam, &[("owner", "me")])
        .await;
    assert_eq!(res.status, 303, "{}", res.text());
    let res = p
        .act(
            &format!("/tickets/{soon}/owner"),
            &sam,
            &[("owner", "dave@example.test")],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.text());
    // One clock past due, one due within the hour: no command moves them so.
    let now = OffsetDateTime::now_utc();
    p.t.sqlite_execute(
        "UPDATE tickets SET response_due = ?1 WHERE id = ?2",
        rusqlite::params![stored_time(now - Duration::from_secs(600)), late],
    )
    .await;
    p.t.sqlite_execute(
        "UPDATE tickets SET response_due = ?1 WHERE id = ?2",
        rusqlite::params![stored_time(now + Duration::from_secs(3600)), soon],
    )
    .await;

    let queue = p.get("/tickets", Some(&sam)).await.text();
    let row = queue_row(&queue, late);
    assert!(
        row.contains("Sam Staff") && row.contains("Overdue"),
        "{row}"
    );
    let row = queue_row(&queue, soon);
    assert!(
        row.contains("Dave Lead") && row.contains("Due within 2 hours"),
        "{row}"
    );
    let row = queue_row(&queue, none);
    assert!(
        row.contains("Unassigned") && !row.contains("Due within"),
        "{row}"
    );
    assert!(!queue.contains("None"), "{queue}");

    let listed = |page: &str| -> Vec<i64> {
        [late, soon, none]
            .into_iter()
            .filter(|id| row_of(page, *id).is_some())
            .collect()
    };
    for (query, expected) in [
        ("owner=me", vec![late]),
        ("owner=none", vec![none]),
        ("owner=dave%40example.test", vec![soon]),
        ("breached=true", vec![late]),
        ("owner=none&breached=true", vec![]),
    ] {
        let page = p.get(&format!("/tickets?{query}"), Some(&sam)).await.text();
        assert_eq!(listed(&page), expected, "{query}: {page}");
    }
    let mine = p.get("/tickets?owner=me", Some(&sam)).await.text();
    assert!(mine.contains("<option value=\"me\" selected>"), "{mine}");

    // Earliest due first, no clock last; the default is last update first.
    let by_due = p.get("/tickets?sort=due", Some(&sam)).await.text();
    let at = |page: &str, id| row_of(page, id).unwrap();
    assert!(
        at(&by_due, late) < at(&by_due, soon) && at(&by_due, soon) < at(&by_due, none),
        "{by_due}"
    );
    let by_update = p.get("/tickets", Some(&sam)).await.text();
    assert!(at(&by_update, soon) < at(&by_update, late), "{by_update}");

    // A customer's list: no owners, no clocks, and the filters do nothing.
    let theirs = p
        .get("/tickets?owner=me&breached=true", Some(&alice))
        .await
        .text();
    assert_eq!(listed(&theirs), vec![late, soon, none], "{theirs}");
    for word in ["Owner", "Unassigned", "Overdue", "Due within", "Sam Staff"] {
        assert!(!theirs.contains(word), "{word}: {theirs}");
    }

    // The filters and the order hold from page to page.
    for n in 0..50 {
        open_ticket(&p, &alice, &format!("Batch {n}"), "More.").await;
    }
    let first = p
        .get("/tickets?owner=none&sort=due", Some(&sam))
        .await
        .text()
        .replace("&#x2f;", "/");
    assert!(
        first.contains("href=\"/tickets?owner=none&amp;sort=due&amp;page=2\" rel=\"next\""),
        "{first}"
    );
    let second = p
        .get("/tickets?owner=none&sort=due&page=2", Some(&sam))
        .await
        .text();
    assert_eq!(second.matches("\">#").count(), 1, "{second}");
    assert_eq!(listed(&second), Vec::<i64>::new(), "{second}");
}

/// Staff assign (to themselves, to a colleague, to nobody) and close with
/// a reason from the ticket page, which shows the owner and the clocks; a
/// customer is offered neither, a forged form is refused, and a closed
/// ticket tells them why in their language, never as a machine name.
#[tokio::test]
async fn staff_assign_and_close_with_a_reason_and_customers_read_why_in_their_language() {
    let p = Portal::start().await;
    let alice = p.sign_in("alice@customer.test").await;
    let bob = p.sign_in("bob@customer.test").await;
    let carol = p.sign_in("carol@other.test").await;
    let sam = p.sign_in("sam@example.test").await;
    let id = open_ticket(
        &p,
        &alice,
        "Password reset mail missing",
        "Nothing arrives.",
    )
    .await;
    let path = |action: &str| format!("/tickets/{id}/{action}");

    // Her page offers neither form; forged, each is refused and changes nothing.
    let page = p.get(&format!("/tickets/{id}"), Some(&alice)).await.text();
    for absent in [
        "/owner\"",
        "/close\"",
        "Owner",
        "Unassigned",
        "response-due",
    ] {
        assert!(!page.contains(absent), "{absent}: {page}");
    }
    let res = p.act(&path("owner"), &alice, &[("owner", "me")]).await;
    assert_eq!(res.status, 403, "{}", res.text());
    assert!(res.text().contains("You may not do this on this ticket."));
    let res = p
        .act(&path("close"), &alice, &[("reason", "resolved")])
        .await;
    assert_eq!(res.status, 403, "{}", res.text());
    let res = p
        .act(&path("close"), &bob, &[("reason", "by_customer")])
        .await;
    assert_eq!(res.status, 403, "not his to close: {}", res.text());
    let res = p.act(&path("owner"), &carol, &[("owner", "me")]).await;
    assert_eq!(res.status, 404, "not hers to see: {}", res.text());
    let t = p.t.ticket(id).await;
    assert_eq!((t.owner, t.status.as_str()), (None, "new"));

    // Sam: the desk in the summary box, and its forms.
    let page = p.get(&format!("/tickets/{id}"), Some(&sam)).await.text();
    assert!(page.contains("<dd id=\"owner\">Unassigned</dd>"), "{page}");
    assert!(page.contains("id=\"assign-me\""), "{page}");
    assert!(
        page.contains("<option value=\"resolved\" selected>Resolved by support</option>"),
        "{page}"
    );
    let res = p.act(&path("owner"), &sam, &[("owner", "me")]).await;
    assert_eq!(res.status, 303, "{}", res.text());
    assert_eq!(
        res.header("location").unwrap(),
        format!("/tickets/{id}?done=owner")
    );
    let page = p
        .get(&format!("/tickets/{id}?done=owner"), Some(&sam))
        .await
        .text();
    assert!(page.contains("The owner was changed."), "{page}");
    assert!(page.contains("<dd id=\"owner\">Sam Staff"), "{page}");
    assert!(!page.contains("id=\"assign-me\""), "his already: {page}");
    assert!(page.contains("Sam Staff took the ticket."), "{page}");
    let res = p
        .act(&path("owner"), &sam, &[("owner", "dave@example.test")])
        .await;
    assert_eq!(res.status, 303, "{}", res.text());
    assert_eq!(
        p.t.ticket(id).await.owner.as_deref(),
        Some("dave@example.test")
    );
    let res = p
        .act(&path("owner"), &sam, &[("owner", "alice@customer.test")])
        .await;
    assert_eq!(res.status, 403, "a customer owns nothing: {}", res.text());
    assert!(
        res.text()
            .contains("alice@customer.test is not an active member of the support team"),
        "{}",
        res.text()
    );
    let res = p.act(&path("owner"), &sam, &[("owner", "none")]).await;
    assert_eq!(res.status, 303, "{}", res.text());
    assert_eq!(p.t.ticket(id).await.owner, None);

    // Closed as a feature request, then as resolved: the last reason holds.
    let res = p
        .act(&path("close"), &sam, &[("reason", "feature_request")])
        .await;
    assert_eq!(res.status, 303, "{}", res.text());
    assert_eq!(
        res.header("location").unwrap(),
        format!("/tickets/{id}?done=close")
    );
    let t = p.t.ticket(id).await;
    assert_eq!(t.status.as_str(), "closed");
    assert_eq!(t.close_reason.map(|r| r.as_str()), Some("feature_request"));
    let res = p.act(&path("close"), &sam, &[("reason", "resolved")]).await;
    assert_eq!(res.status, 303, "{}", res.text());
    let res = p.act(&path("close"), &sam, &[("reason", "because")]).await;
    assert_eq!(res.status, 422, "{}", res.text());
    assert_eq!(
        p.t.ticket(id).await.close_reason.map(|r| r.as_str()),
        Some("resolved")
    );

    // Alice reads why, in words, in English and then in Japanese.
    let page = p.get(&format!("/tickets/{id}"), Some(&alice)).await.text();
    assert!(
        page.contains("<dd id=\"close-reason\">Resolved by support</dd>"),
        "{page}"
    );
    for absent in ["feature_request", ">resolved<", "Owner", "/owner\""] {
        assert!(!page.contains(absent), "{absent}: {page}");
    }
    for email in ["alice@customer.test", "sam@example.test"] {
        let user =
            p.t.store()
                .find_user(&ticketgate::domain::ids::EmailAddress::parse(email).unwrap())
                .await
                .unwrap()
                .unwrap();
        p.t.store()
            .update_user(
                user.id,
                &ticketgate::store::UserChange {
                    locale: Some("ja".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
    let page = p.get(&format!("/tickets/{id}"), Some(&alice)).await.text();
    assert!(
        page.contains("<dd id=\"close-reason\">サポートにより解決</dd>"),
        "{page}"
    );
    assert!(!page.contains("Resolved by support"), "{page}");
    let page = p.get(&format!("/tickets/{id}"), Some(&sam)).await.text();
    assert!(page.contains("<dd id=\"owner\">未割り当て</dd>"), "{page}");
    for english in [
        "Unassigned",
        "Assign to",
        "Close ticket",
        "Resolved by support",
    ] {
        assert!(!page.contains(english), "{english}: {page}");
    }
    let queue = p.get("/tickets?status=all", Some(&sam)).await.text();
    assert!(
        queue.contains("未割り当て") && !queue.contains("Unassigned"),
        "{queue}"
    );
}

#[tokio::test]
async fn staff_merge_a_ticket_and_move_a_comment_from_their_pages_and_customers_cannot() {
    let p = Portal::start().await;
    let alice = p.sign_in("alice@customer.test").await;
    let sam = p.sign_in("sam@example.test").await;
    let a = open_ticket(&p, &alice, "VPN drops every hour", "It drops.").await;
    let b = open_ticket(&p, &alice, "VPN disconnects", "Same again.").await;
    let c = open_ticket(&p, &alice, "Printer jams", "Wrong ticket for this.").await;

    // Her page offers neither; forged, each is refused and changes nothing.
    let page = p.get(&format!("/tickets/{b}"), Some(&alice)).await.text();
    assert!(
        !page.contains("/merge\"") && !page.contains("/move\""),
        "{page}"
    );
    let res = p
        .act(
            &format!("/tickets/{b}/merge"),
            &alice,
            &[("into", &a.to_string())],
        )
        .await;
    assert_eq!(res.status, 403, "{}", res.text());
    let comment = p.t.ticket(c).await.comments[0].id;
    let res = p
        .act(
            &format!("/tickets/{c}/comments/{comment}/move"),
            &alice,
            &[("to", &a.to_string())],
        )
        .await;
    assert_eq!(res.status, 403, "{}", res.text());
    assert!(p.t.ticket(b).await.merged_into.is_none());

    // Staff: the forms are there; a merge lands on the ticket it went into.
    let page = p.get(&format!("/tickets/{b}"), Some(&sam)).await.text();
    assert!(page.contains(&format!("/tickets/{b}/merge\"")), "{page}");
    assert!(
        page.contains(&format!("/tickets/{c}/comments/")) || page.contains("/move\""),
        "{page}"
    );
    let res = p
        .act(
            &format!("/tickets/{b}/merge"),
            &sam,
            &[("into", &b.to_string())],
        )
        .await;
    assert_eq!(res.status, 409, "into itself: {}", res.text());
    let res = p
        .act(
            &format!("/tickets/{b}/merge"),
            &sam,
            &[("into", &format!("#{a}"))],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.text());
    assert_eq!(
        res.header("location"),
        Some(format!("/tickets/{a}?done=merge").as_str())
    );
    let merged = p.t.ticket(b).await;
    assert_eq!(
        (merged.merged_into, merged.close_reason.map(|r| r.as_str())),
        (Some(a), Some("duplicate"))
    );
    let page = p.get(&format!("/tickets/{b}"), Some(&alice)).await.text();
    assert!(
        page.contains("Duplicate of another ticket"),
        "she reads why: {page}"
    );

    // Move Printer's first comment to a new ticket; the page follows it.
    let res = p
        .act(
            &format!("/tickets/{c}/comments/{comment}/move"),
            &sam,
            &[("to", "new")],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.text());
    let to = res.header("location").expect("a redirect").to_string();
    let new_id: i64 = to
        .trim_start_matches("/tickets/")
        .trim_end_matches("?done=move")
        .parse()
        .expect("a ticket number");
    assert!(new_id > c);
    assert_eq!(p.t.ticket(new_id).await.comments[0].id, comment);
    // A comment of another ticket does not move from this page.
    let other = p.t.ticket(a).await.comments[0].id;
    let res = p
        .act(
            &format!("/tickets/{c}/comments/{other}/move"),
            &sam,
            &[("to", "new")],
        )
        .await;
    assert_eq!(res.status, 404, "{}", res.text());
}

/// After Alice's data is erased, Bob's ticket page says her comment was
/// removed and why, names her only by her pseudonym, in his language.
#[tokio::test]
async fn an_erased_persons_comment_reads_as_removed_in_the_readers_language() {
    let p = Portal::start().await;
    let bob = p.sign_in("bob@customer.test").await;
    let id = open_ticket(&p, &bob, "Export fails", "Since this morning.").await;
    let alice = p.sign_in("alice@customer.test").await;
    let res = p
        .act(
            &format!("/tickets/{id}/comments"),
            &alice,
            &[("body", "Mine too, zanzibarquux.")],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.text());
    let page = p.get(&format!("/tickets/{id}"), Some(&bob)).await.text();
    assert!(page.contains("zanzibarquux") && page.contains("Alice Anders"));

    let done = ticketgate::people::erase(
        p.t.store().as_ref(),
        &ticketgate::domain::ids::EmailAddress::parse("alice@customer.test").unwrap(),
        None,
        false,
    )
    .await
    .unwrap()
    .unwrap();
    let tag = &done.pseudonym_email["erased-".len().."erased-".len() + 4];
    let page = p.get(&format!("/tickets/{id}"), Some(&bob)).await.text();
    for gone in ["zanzibarquux", "Alice Anders", "alice@customer.test"] {
        assert!(!page.contains(gone), "{gone}: {page}");
    }
    assert!(
        page.contains("This comment was removed with its author"),
        "{page}"
    );
    assert!(
        page.contains(&format!(
            "The personal data of Former customer {tag} was erased"
        )),
        "{page}"
    );
    assert!(page.contains("Since this morning."), "Bob's words stay");

    let res = p
        .act("/profile", &bob, &[("name", "Bob Brown"), ("locale", "ja")])
        .await;
    assert_eq!(res.status, 303);
    let page = p.get(&format!("/tickets/{id}"), Some(&bob)).await.text();
    assert!(
        page.contains("このコメントは投稿者の個人データとともに削除されました。"),
        "{page}"
    );
    assert!(
        page.contains(&format!("元のお客様 {tag} の個人データ")),
        "{page}"
    );
    assert!(!page.contains("Former customer"), "{page}");
}

/// A thread longer than a page shows its newest hundred comments and a link
/// to the earlier ones, which shows them and a way back, in both languages.
#[tokio::test]
async fn a_long_thread_shows_its_latest_comments_and_links_to_earlier_ones() {
    use ticketgate::store::{CommentSource, NewComment};
    let p = Portal::start().await;
    let alice = p.sign_in("alice@customer.test").await;
    let id = open_ticket(&p, &alice, "Long thread", "Comment zero.").await;
    let me = p
        .t
        .store()
        .find_user(&ticketgate::domain::ids::EmailAddress::parse("alice@customer.test").unwrap())
        .await
        .unwrap()
        .unwrap();
    let mut tx = p.t.store().begin().await.unwrap();
    for n in 1..=100 {
        let body = format!("Comment number {n}.");
        tx.insert_comment(&NewComment {
            ticket_id: id,
            author_id: me.id,
            body: &body,
            signature: None,
            quoted: None,
            internal: false,
            source: CommentSource::Web,
            message_id: None,
            ingest_id: None,
            now: time::OffsetDateTime::now_utc(),
        })
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let page = p.get(&format!("/tickets/{id}"), Some(&alice)).await.text();
    assert_eq!(page.matches("<article class=\"comment").count(), 100);
    assert!(page.contains("Comment number 100.") && page.contains("Comment number 1."));
    assert!(
        !page.contains("Comment zero."),
        "the 101st from the end is a page away"
    );
    let link = page
        .split("<p class=\"earlier\"><a href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a link to the earlier comments")
        .replace("&amp;", "&");
    assert!(page.contains(">Earlier comments</a>"), "{page}");
    let earlier = p.get(&link, Some(&alice)).await.text();
    assert_eq!(earlier.matches("<article class=\"comment").count(), 1);
    assert!(earlier.contains("Comment zero."));
    assert!(earlier.contains(">Latest comments</a>"), "{earlier}");
    assert!(!earlier.contains(">Earlier comments</a>"));

    let res = p
        .act(
            "/profile",
            &alice,
            &[("name", "Alice Anders"), ("locale", "ja")],
        )
        .await;
    assert_eq!(res.status, 303);
    let page = p.get(&format!("/tickets/{id}"), Some(&alice)).await.text();
    assert!(page.contains(">以前のコメント</a>"), "{page}");
    let earlier = p.get(&link, Some(&alice)).await.text();
    assert!(earlier.contains(">最新のコメント</a>"), "{earlier}");
}
