//! People's data in the store, on both backends: an export holds the
//! person's data and not other people's words, an erasure leaves nothing of
//! them in any column while the tickets stay, and retention removes only
//! what is past its age.

use super::*;

use ticketgate::store::people::{EMPTY_BLOB, ErasePlan};

contract!(
    an_export_holds_their_data_and_not_other_peoples_words,
    erasing_a_person_leaves_nothing_of_them_and_keeps_the_tickets,
    retention_removes_only_raw_mail_and_closed_tickets_past_their_age,
    one_instance_claims_each_day_of_retention,
);

/// A word only Alice wrote.
const HER_WORD: &str = "zanzibarquux";
const HER_NAME: &str = "Alice Anders";
const HER_ADDRESS: &str = "alice@customer.test";

fn sha(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

struct Scene {
    w: World,
    ticket: i64,
    her_comment: i64,
    file_sha: String,
    raw_sha: String,
    log_id: i64,
}

/// Alice opens a ticket by mail with an attachment; Sam answers quoting her
/// and naming her; Bob adds his own words; mail about it is queued; she has
/// a session and an API token.
async fn scene(db: &Db) -> Scene {
    let w = world(db).await;
    db.store
        .update_user(
            w.alice.id,
            &UserChange {
                name: Some(HER_NAME.into()),
                ..UserChange::default()
            },
        )
        .await
        .unwrap();
    let ticket = titled(
        db,
        &w,
        "printer",
        "Printer on fire at Alice Anders' desk",
        T0,
    )
    .await;
    let raw = format!(
        "From: {HER_NAME} <{HER_ADDRESS}>\r\nSubject: Printer\r\n\r\nThe {HER_WORD} printer smokes.\r\n"
    );
    let raw_sha = sha(raw.as_bytes());
    let file = format!("{HER_WORD} log file");
    let file_sha = sha(file.as_bytes());
    let mut tx = db.store.begin().await.unwrap();
    tx.put_blob(&raw_sha, raw.as_bytes()).await.unwrap();
    tx.put_blob(&file_sha, file.as_bytes()).await.unwrap();
    let log_id = tx
        .log_delivery(&NewLogEntry {
            raw_sha256: raw_sha.clone(),
            size: raw.len() as u64,
            sender: Some(HER_ADDRESS.into()),
            subject: Some(format!("Printer {HER_WORD}")),
            outcome: Outcome::TicketCreated,
            ticket_id: Some(ticket),
            ..log_entry("<her@customer.test>", Outcome::TicketCreated, None)
        })
        .await
        .unwrap();
    let comment =
        |author: i64, body: &'static str, quoted: Option<&'static str>, ingest| NewComment {
            ticket_id: ticket,
            author_id: author,
            body,
            signature: None,
            quoted,
            internal: false,
            source: CommentSource::Email,
            message_id: None,
            ingest_id: ingest,
            now: T0,
        };
    let her_comment = tx
        .insert_comment(&NewComment {
            signature: Some("Alice Anders, Site A"),
            ..comment(
                w.alice.id,
                "The zanzibarquux printer smokes since Monday morning.",
                None,
                Some(log_id),
            )
        })
        .await
        .unwrap();
    tx.insert_attachment(&NewAttachment {
        comment_id: her_comment,
        filename: "zanzibarquux.log".into(),
        content_type: "text/plain".into(),
        size: file.len() as u64,
        sha256: file_sha.clone(),
    })
    .await
    .unwrap();
    tx.insert_comment(&comment(
        w.sam.id,
        "Hello Alice Anders, we are on it (ourreplyword). Mail ALICE@customer.test if it spreads.",
        Some(
            "On Monday Alice Anders <alice@customer.test> wrote:\n> The zanzibarquux printer smokes since Monday morning.",
        ),
        None,
    ))
    .await
    .unwrap();
    tx.insert_comment(&comment(w.bob.id, "Same for me (bobword).", None, None))
        .await
        .unwrap();
    tx.insert_event(&NewEvent {
        ticket_id: ticket,
        event: Event::Mentioned {
            email: email(HER_ADDRESS),
        },
        actor_id: Some(w.sam.id),
        now: T0,
    })
    .await
    .unwrap();
    tx.add_follower(ticket, w.bob.id, FollowerSource::Follow, T0)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut to_bob = outbox_row(1, &w.bob, Some(ticket));
    to_bob.comment_id = Some(her_comment);
    to_bob.context =
        serde_json::json!({ "comment": "The zanzibarquux printer smokes", "author": HER_NAME });
    let unrelated = outbox_row(2, &w.bob, None);
    enqueue(
        db,
        &[outbox_row(0, &w.alice, Some(ticket)), to_bob, unrelated],
    )
    .await;
    db.store
        .create_session(&session(
            &hash(1),
            &w.alice,
            "csrf",
            T0 + time::Duration::days(1),
        ))
        .await
        .unwrap();
    db.store
        .create_token(w.alice.id, &hash(2), Some("her script"), T0)
        .await
        .unwrap();
    Scene {
        w,
        ticket,
        her_comment,
        file_sha,
        raw_sha,
        log_id,
    }
}

async fn an_export_holds_their_data_and_not_other_peoples_words(db: &Db) {
    let s = scene(db).await;
    let record = db
        .store
        .person_export(&email(HER_ADDRESS))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.user.email, HER_ADDRESS);
    assert_eq!(record.user.name, HER_NAME);
    assert_eq!(
        record
            .organizations
            .iter()
            .map(|m| (m.org.as_str(), m.role))
            .collect::<Vec<_>>(),
        [("site-a", "member")]
    );
    assert_eq!(record.tickets.len(), 1);
    assert_eq!(record.tickets[0].id, s.ticket);
    assert_eq!(record.tickets[0].relations, ["requester"]);
    assert_eq!(record.comments.len(), 1, "only her own comments");
    assert_eq!(record.comments[0].id, s.her_comment);
    assert!(record.comments[0].body.contains(HER_WORD));
    assert_eq!(
        record.comments[0].attachments[0].filename,
        "zanzibarquux.log"
    );
    assert_eq!(record.events.len(), 1);
    assert_eq!(record.events[0].kind, "mentioned");
    assert!(!record.events[0].by_them);
    assert_eq!(record.notifications.len(), 1, "the mail sent to her");
    assert_eq!(record.api_tokens.len(), 1);
    assert_eq!(record.sessions.len(), 1);
    assert_eq!(record.raw_messages.len(), 1);
    assert_eq!(record.raw_messages[0].log_id, s.log_id);
    assert!(record.raw_messages[0].text.contains("printer smokes"));
    let json = serde_json::to_string(&record).unwrap();
    for theirs in ["ourreplyword", "bobword", "sam@example.test"] {
        assert!(!json.contains(theirs), "{theirs} is someone else's: {json}");
    }
    assert!(
        db.store
            .person_export(&email("nobody@customer.test"))
            .await
            .unwrap()
            .is_none()
    );
}

/// Every text and binary column of every table, as `(table.column, value)`.
async fn every_value(db: &Db) -> Vec<(String, Vec<u8>)> {
    match &db.keep {
        Keep::Sqlite(_, store) => store
            .with_connection(common::every_sqlite_value)
            .await
            .unwrap(),
        Keep::Postgres(t) => {
            let pool = sqlx::PgPool::connect(&t.url).await.unwrap();
            let columns: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns \
                 WHERE table_schema = 'public' AND data_type IN ('text', 'bytea', 'character varying', 'jsonb')",
            )
            .fetch_all(&pool)
            .await
            .unwrap();
            let mut out = Vec::new();
            for (table, column, kind) in columns {
                let sql = if kind == "bytea" {
                    format!("SELECT \"{column}\" FROM \"{table}\" WHERE \"{column}\" IS NOT NULL")
                } else {
                    format!(
                        "SELECT convert_to(\"{column}\"::text, 'UTF8') FROM \"{table}\" WHERE \"{column}\" IS NOT NULL"
                    )
                };
                for v in sqlx::query_scalar::<_, Vec<u8>>(sqlx::AssertSqlSafe(sql))
                    .fetch_all(&pool)
                    .await
                    .unwrap()
                {
                    out.push((format!("{table}.{column}"), v));
                }
            }
            pool.close().await;
            out
        }
    }
}

use common::stored_where as found_in;

async fn erasing_a_person_leaves_nothing_of_them_and_keeps_the_tickets(db: &Db) {
    let s = scene(db).await;
    let before = every_value(db).await;
    for needle in [HER_ADDRESS, HER_NAME, HER_WORD] {
        assert!(
            !found_in(&before, needle).is_empty(),
            "the scene stores {needle}"
        );
    }
    let plan = |dry_run| ErasePlan {
        email: email(HER_ADDRESS),
        pseudonym: "Former customer 7f3a".into(),
        pseudonym_email: email("erased-7f3a00000000000@invalid"),
        by: Some(s.w.dave.id),
        now: T0 + time::Duration::days(30),
        dry_run,
    };
    let rehearsed = db.store.person_erase(&plan(true)).await.unwrap().unwrap();
    assert_eq!(every_value(db).await, before, "a dry run changes nothing");
    let done = db.store.person_erase(&plan(false)).await.unwrap().unwrap();
    assert_eq!(
        serde_json::to_value(&rehearsed).unwrap()["comments_redacted"],
        serde_json::to_value(&done).unwrap()["comments_redacted"]
    );
    assert_eq!(
        (
            done.tickets,
            done.comments_redacted,
            done.attachments_removed,
            done.raw_messages_removed,
            done.quotes_dropped,
        ),
        (1, 1, 1, 1, 1)
    );
    assert_eq!(
        done.notifications_removed, 2,
        "hers and the one carrying her words"
    );

    let after = every_value(db).await;
    for needle in [HER_ADDRESS, HER_NAME, HER_WORD] {
        assert_eq!(
            found_in(&after, needle),
            Vec::<String>::new(),
            "{needle} is left"
        );
    }
    // The ticket stays with its status, times and other people's words.
    let view = db.store.ticket_view(s.ticket).await.unwrap().unwrap();
    assert_eq!(view.status, Status::New);
    assert_eq!(view.comments.len(), 3);
    let hers = view
        .comments
        .iter()
        .find(|c| c.id == s.her_comment)
        .unwrap();
    assert!(hers.redacted && hers.body.is_empty() && hers.attachments.is_empty());
    assert_eq!(hers.author, "erased-7f3a00000000000@invalid");
    assert_eq!(hers.author_name, "Former customer 7f3a");
    let sams = view
        .comments
        .iter()
        .find(|c| c.author == "sam@example.test")
        .unwrap();
    assert!(!sams.redacted);
    assert_eq!(
        sams.body,
        "Hello Former customer 7f3a, we are on it (ourreplyword). Mail erased-7f3a00000000000@invalid if it spreads."
    );
    assert!(
        view.comments
            .iter()
            .any(|c| c.body == "Same for me (bobword).")
    );
    assert!(view.comments.iter().all(|c| c.attachments.is_empty()));
    assert_eq!(
        view.subject,
        "Printer on fire at Former customer 7f3a' desk"
    );
    let erased = view.events.last().unwrap();
    assert_eq!(erased.event.kind(), "person_erased");
    assert_eq!(erased.actor.as_deref(), Some("dave@example.test"));
    assert_eq!(
        erased.event.data(),
        serde_json::json!({ "person": "erased-7f3a00000000000@invalid" })
    );
    // Her files and raw mail are gone; the log row keeps its place.
    assert_eq!(db.store.blob(&s.file_sha).await.unwrap(), None);
    assert_eq!(db.store.blob(&s.raw_sha).await.unwrap(), None);
    let row = db.store.log_row(s.log_id).await.unwrap().unwrap();
    assert_eq!(row.raw_sha256, EMPTY_BLOB);
    assert_eq!(row.ticket, Some(s.ticket));
    // She cannot be found, sign in or be mailed; Bob's other mail stays.
    assert!(
        db.store
            .find_user(&email(HER_ADDRESS))
            .await
            .unwrap()
            .is_none()
    );
    let pseudonym = db
        .store
        .find_user(&email("erased-7f3a00000000000@invalid"))
        .await
        .unwrap()
        .unwrap();
    assert!(!pseudonym.active && pseudonym.org_id.is_none());
    assert!(db.store.token_user(&hash(2), T0).await.unwrap().is_none());
    assert!(db.store.session(&hash(1), T0).await.unwrap().is_none());
    let outbox = db.store.list_outbox().await.unwrap();
    assert_eq!(
        outbox
            .iter()
            .map(|r| r.subject.as_str())
            .collect::<Vec<_>>(),
        ["Notification 2"]
    );
    // A second erasure finds no one; one of the pseudonym changes nothing.
    assert!(db.store.person_erase(&plan(false)).await.unwrap().is_none());
    let again = ErasePlan {
        email: email("erased-7f3a00000000000@invalid"),
        pseudonym: "Former customer 0000".into(),
        ..plan(false)
    };
    let rerun = db.store.person_erase(&again).await.unwrap().unwrap();
    assert_eq!(rerun.pseudonym, "Former customer 7f3a");
    assert_eq!((rerun.comments_redacted, rerun.tickets), (0, 0));
    assert!(rerun.old_pages_dropped);
    assert_eq!(every_value(db).await, after, "nothing changed");
}

async fn retention_removes_only_raw_mail_and_closed_tickets_past_their_age(db: &Db) {
    let w = world(db).await;
    let old = ticket(db, &w, "old-closed", T0).await;
    let open = ticket(db, &w, "old-open", T0).await;
    let recent = ticket(db, &w, "recent-closed", T0 + time::Duration::days(40)).await;
    let mut tx = db.store.begin().await.unwrap();
    for (id, at) in [(old, T0), (recent, T0 + time::Duration::days(40))] {
        tx.update_ticket(id, Status::Closed, None, at)
            .await
            .unwrap();
    }
    let raw_old = b"old raw message".to_vec();
    let raw_new = b"new raw message".to_vec();
    tx.put_blob(&sha(&raw_old), &raw_old).await.unwrap();
    tx.put_blob(&sha(&raw_new), &raw_new).await.unwrap();
    let entry = |key: &str, raw: &[u8], ticket: i64, at| NewLogEntry {
        raw_sha256: sha(raw),
        size: raw.len() as u64,
        ticket_id: Some(ticket),
        now: at,
        ..log_entry(key, Outcome::TicketCreated, None)
    };
    let old_log = tx
        .log_delivery(&entry("<o@x.test>", &raw_old, open, T0))
        .await
        .unwrap();
    let new_log = tx
        .log_delivery(&entry(
            "<n@x.test>",
            &raw_new,
            open,
            T0 + time::Duration::days(40),
        ))
        .await
        .unwrap();
    let closed_log = tx
        .log_delivery(&entry("<c@x.test>", &raw_old, old, T0))
        .await
        .unwrap();
    tx.insert_comment(&NewComment {
        ticket_id: old,
        author_id: w.alice.id,
        body: "in the old ticket",
        signature: None,
        quoted: None,
        internal: false,
        source: CommentSource::Email,
        message_id: None,
        ingest_id: Some(closed_log),
        now: T0,
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let cutoff = T0 + time::Duration::days(20);

    assert_eq!(db.store.purge_closed(cutoff).await.unwrap(), 1);
    assert!(db.store.ticket_view(old).await.unwrap().is_none());
    assert!(db.store.log_row(closed_log).await.unwrap().is_none());
    assert!(db.store.ticket_view(open).await.unwrap().is_some());
    assert!(db.store.ticket_view(recent).await.unwrap().is_some());
    let counts = db.store.retained_counts().await.unwrap();
    assert_eq!(counts.len(), 1);
    assert_eq!(
        (
            counts[0].month.as_str(),
            counts[0].org.as_deref(),
            counts[0].state.as_str(),
            counts[0].tickets
        ),
        ("2026-03", Some("site-a"), "closed", 1)
    );
    // The old raw message was shared with the deleted ticket's delivery:
    // it stays until its last delivery goes.
    assert_eq!(
        db.store.blob(&sha(&raw_old)).await.unwrap(),
        Some(raw_old.clone())
    );

    let now = T0 + time::Duration::days(41);
    assert_eq!(db.store.purge_raw(cutoff, now).await.unwrap(), 1);
    assert_eq!(db.store.blob(&sha(&raw_old)).await.unwrap(), None);
    assert_eq!(db.store.blob(&sha(&raw_new)).await.unwrap(), Some(raw_new));
    assert_eq!(
        db.store.log_row(old_log).await.unwrap().unwrap().raw_sha256,
        EMPTY_BLOB
    );
    assert_eq!(
        db.store.log_row(new_log).await.unwrap().unwrap().raw_sha256,
        sha(b"new raw message")
    );
    assert_eq!(
        db.store.purge_raw(cutoff, now).await.unwrap(),
        0,
        "nothing twice"
    );
    assert_eq!(db.store.purge_closed(cutoff).await.unwrap(), 0);
}

async fn one_instance_claims_each_day_of_retention(db: &Db) {
    assert!(
        db.store
            .claim_retention("2026-12-07", "a", T0)
            .await
            .unwrap()
    );
    assert!(
        !db.store
            .claim_retention("2026-12-07", "b", T0)
            .await
            .unwrap()
    );
    assert!(
        db.store
            .claim_retention("2026-12-08", "b", T0)
            .await
            .unwrap()
    );
}
