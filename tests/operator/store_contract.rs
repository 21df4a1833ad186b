//! The `Store` contract: one suite, run unchanged against SQLite and
//! PostgreSQL. Each test is an async fn over `&Db`; `contract!` instantiates it
//! once per backend (`sqlite::name`, `postgres::name`). Every PostgreSQL test
//! gets its own database, dropped afterwards; an unreachable server fails them.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use time::macros::datetime;

use common::pg::TestDb;
use ticketgate::domain::event::{Cause, Event};
use ticketgate::domain::ids::{EmailAddress, MessageId};
use ticketgate::domain::outcome::Outcome;
use ticketgate::domain::ticket::{FollowerSource, Priority, Role, Status};
use ticketgate::store::postgres::PgStore;
use ticketgate::store::sqlite::SqliteStore;
use ticketgate::store::{
    Attempt, AttemptResult, CommentSource, LinkPurpose, LogFilter, Lookahead, NewAttachment,
    NewComment, NewEvent, NewLogEntry, NewOutbox, NewSession, NewTicket, NewUser, NewWebLink,
    OutboxStatus, RefKind, Store, StoreError, TEXT_FILTER_MAX, TicketFilter, TicketState, User,
    UserChange, Visibility, format_ts, parse_ts,
};

/// A store under test and what keeps its database alive.
struct Db {
    store: Arc<dyn Store>,
    keep: Keep,
}

enum Keep {
    Sqlite(#[allow(dead_code)] tempfile::TempDir, SqliteStore),
    Postgres(TestDb),
}

impl Db {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("contract.db").display());
        let store = SqliteStore::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        Self {
            store: Arc::new(store.clone()),
            keep: Keep::Sqlite(dir, store),
        }
    }

    async fn postgres() -> Self {
        let db = TestDb::create().await;
        let store = PgStore::connect(&db.url).await.unwrap();
        store.migrate().await.unwrap();
        Self {
            store: Arc::new(store),
            keep: Keep::Postgres(db),
        }
    }

    /// A database an earlier release left, migrated up to `version` only.
    async fn sqlite_at(version: i64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("contract.db").display());
        let store = SqliteStore::connect(&url).await.unwrap();
        store.migrate_to(version).await.unwrap();
        Self {
            store: Arc::new(store.clone()),
            keep: Keep::Sqlite(dir, store),
        }
    }

    async fn postgres_at(version: i64) -> Self {
        let db = TestDb::create().await;
        let store = PgStore::connect(&db.url).await.unwrap();
        sqlx::migrate!("./migrations/postgres")
            .run_to(version, store.pool())
            .await
            .unwrap();
        Self {
            store: Arc::new(store),
            keep: Keep::Postgres(db),
        }
    }

    /// Waits until a transaction is held up by another one the test keeps
    /// open: on SQLite for the write connection, on PostgreSQL for a lock.
    async fn until_a_transaction_waits(&self) {
        let within = Duration::from_secs(20);
        match &self.keep {
            Keep::Sqlite(_, store) => {
                common::wait_until("a writer waiting", within, || async {
                    store.writers_waiting() > 0
                })
                .await
            }
            Keep::Postgres(db) => {
                let pool = &sqlx::PgPool::connect(&db.url).await.unwrap();
                common::wait_until("a transaction waiting for a lock", within, || async move {
                    sqlx::query_scalar::<_, i64>(
                        "SELECT count(*) FROM pg_stat_activity \
                         WHERE datname = current_database() AND wait_event_type = 'Lock'",
                    )
                    .fetch_one(pool)
                    .await
                    .unwrap()
                        > 0
                })
                .await;
                pool.close().await;
            }
        }
    }
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(&super::Db::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(&super::Db::postgres().await).await;
                }
            )*
        }
    };
}

contract!(
    orgs_and_users_are_found_by_every_key,
    reachable_users_follow_the_organization_rules,
    a_dedup_key_is_unique_among_accepted_deliveries,
    refused_deliveries_reserve_no_dedup_key,
    a_concurrent_second_recording_of_a_message_conflicts_then_sees_the_first,
    two_transactions_on_one_ticket_take_turns_and_lose_no_update,
    a_ticket_view_shows_everything_written_with_sqlite_timestamps,
    events_of_every_kind_read_back_as_earlier_versions_wrote_them,
    followers_and_orgs_are_added_once_and_removed,
    message_refs_keep_their_first_ticket,
    outbox_rows_are_claimed_once_until_their_lease_runs_out,
    concurrent_claimers_never_get_the_same_outbox_row,
    attempts_record_sent_retry_and_dead_and_mark_bouncers,
    cursors_move_forward_and_reset_on_a_new_validity,
    one_automatic_reply_per_address_per_window,
    ticket_and_log_filters_select_and_page,
    a_mailbox_lease_has_one_holder_until_it_expires,
    racing_instances_take_an_expired_lease_exactly_once,
    text_with_a_nul_character_is_stored_not_refused,
    api_tokens_are_found_by_hash_until_revoked,
    a_superseded_delivery_frees_its_dedup_key_once,
    a_ticket_reads_back_its_own_changes_within_the_transaction,
    followers_of_a_new_ticket_read_back_in_table_order,
    a_look_ahead_batch_sees_its_own_writes,
    automatic_replies_in_a_look_ahead_batch_keep_the_window,
    users_are_edited_field_by_field_and_leads_removed,
    a_comment_larger_than_a_mebibyte_reads_back_as_written,
    a_web_link_is_taken_once_and_only_before_it_expires,
    minting_a_mailed_link_again_replaces_the_unused_one_and_notes_only_its_hash,
    released_rows_are_queued_again_without_counting_an_attempt,
    two_concurrent_takes_of_one_link_give_one_user,
    an_invitation_link_commits_with_the_user_it_invites,
    a_session_gives_its_user_and_csrf_until_it_expires_or_ends,
    purging_removes_only_expired_links_and_sessions,
    a_comment_from_the_portal_reads_back_as_web,
    a_customer_lists_the_tickets_they_created_follow_or_share_by_org,
    ticket_search_is_case_insensitive_and_takes_wildcards_literally,
    tickets_are_filtered_by_priority,
    a_deactivated_user_keeps_their_row_but_loses_sessions_links_and_tokens,
    a_merge_and_a_move_carry_comments_followers_orgs_and_refs,
    a_long_thread_is_read_a_page_at_a_time,
    a_discarded_delivery_stays_in_the_log_and_is_neither_discarded_again_nor_replayed,
    the_desk_lists_by_owner_breach_and_due_time_and_claims_each_alarm_once,
    every_ticket_list_is_answered_from_its_index,
    sent_outbox_rows_are_purged_after_they_are_kept,
    pages_read_tickets_people_and_organizations_outside_a_write,
);

const T0: OffsetDateTime = datetime!(2026-03-01 10:00:00.123456 UTC);

fn email(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
}

fn mid(s: &str) -> MessageId {
    MessageId::parse(s).unwrap()
}

async fn user(db: &Db, address: &str, role: Role, org: Option<i64>) -> User {
    db.store
        .add_user(&NewUser {
            email: email(address),
            name: address.split('@').next().unwrap().to_string(),
            role,
            org_id: org,
            locale: "en".into(),
        })
        .await
        .unwrap()
}

/// An org "Site A" (customer.test) with alice and a lead, staff sam, and carol elsewhere.
struct World {
    site_a: i64,
    other: i64,
    alice: User,
    bob: User,
    carol: User,
    sam: User,
    dave: User,
}

async fn world(db: &Db) -> World {
    let site_a = db
        .store
        .add_org("Site A", "site-a", &["Customer.test".into()])
        .await
        .unwrap()
        .id;
    let other = db
        .store
        .add_org("Other Corp", "other-corp", &["other.test".into()])
        .await
        .unwrap()
        .id;
    let alice = user(db, "alice@customer.test", Role::Customer, Some(site_a)).await;
    let bob = user(db, "bob@customer.test", Role::Customer, Some(site_a)).await;
    let carol = user(db, "carol@other.test", Role::Customer, Some(other)).await;
    let sam = user(db, "sam@example.test", Role::Staff, None).await;
    let dave = user(db, "dave@example.test", Role::Staff, None).await;
    db.store.add_org_lead(site_a, dave.id).await.unwrap();
    World {
        site_a,
        other,
        alice,
        bob,
        carol,
        sam,
        dave,
    }
}

/// `world`, written as an earlier release's schema holds it (no column a
/// later migration added), for the upgrade tests: this version's store
/// reads users with every column it knows.
async fn legacy_world(db: &Db) -> World {
    let people = [
        ("alice@customer.test", Role::Customer, Some(1)),
        ("bob@customer.test", Role::Customer, Some(1)),
        ("carol@other.test", Role::Customer, Some(2)),
        ("sam@example.test", Role::Staff, None),
        ("dave@example.test", Role::Staff, None),
    ];
    let at = format_ts(T0);
    match &db.keep {
        Keep::Sqlite(_, store) => {
            store
                .with_connection(move |c| {
                    c.execute_batch(
                        "INSERT INTO orgs (id, slug, name, created_at) VALUES (1, 'site-a', 'Site A', '2026-03-01T10:00:00.123456Z');
                         INSERT INTO orgs (id, slug, name, created_at) VALUES (2, 'other-corp', 'Other Corp', '2026-03-01T10:00:00.123456Z');",
                    )?;
                    for (n, (address, role, org)) in people.iter().enumerate() {
                        c.execute(
                            "INSERT INTO users (id, email, name, role, org_id, locale, created_at) VALUES (?1, ?2, ?3, ?4, ?5, 'en', ?6)",
                            rusqlite::params![n as i64 + 1, address, address.split('@').next().unwrap(), role.as_str(), org, at],
                        )?;
                    }
                    Ok(())
                })
                .await
                .unwrap();
        }
        Keep::Postgres(t) => {
            let pg = PgStore::connect(&t.url).await.unwrap();
            for (id, slug, name) in [(1_i64, "site-a", "Site A"), (2, "other-corp", "Other Corp")] {
                sqlx::query(
                    "INSERT INTO orgs (id, slug, name, created_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(id)
                .bind(slug)
                .bind(name)
                .bind(T0)
                .execute(pg.pool())
                .await
                .unwrap();
            }
            for (n, (address, role, org)) in people.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO users (id, email, name, role, org_id, locale, created_at) VALUES ($1, $2, $3, $4, $5, 'en', $6)",
                )
                .bind(n as i64 + 1)
                .bind(*address)
                .bind(address.split('@').next().unwrap())
                .bind(role.as_str())
                .bind(*org)
                .bind(T0)
                .execute(pg.pool())
                .await
                .unwrap();
            }
            for seq in [
                "SELECT setval(pg_get_serial_sequence('orgs', 'id'), 10)",
                "SELECT setval(pg_get_serial_sequence('users', 'id'), 10)",
            ] {
                sqlx::query(seq).execute(pg.pool()).await.unwrap();
            }
        }
    }
    let as_user = |n: usize| {
        let (address, role, org) = people[n];
        User {
            id: n as i64 + 1,
            email: email(address),
            name: address.split('@').next().unwrap().to_string(),
            role,
            org_id: org,
            org: org.map(|o| if o == 1 { "site-a" } else { "other-corp" }.to_string()),
            locale: "en".into(),
            bouncing: false,
            active: true,
        }
    };
    World {
        site_a: 1,
        other: 2,
        alice: as_user(0),
        bob: as_user(1),
        carol: as_user(2),
        sam: as_user(3),
        dave: as_user(4),
    }
}

async fn ticket(db: &Db, w: &World, subject: &str, now: OffsetDateTime) -> i64 {
    titled(db, w, subject, subject, now).await
}

/// A ticket Alice opened, with `subject` and the root Message-ID
/// `<key@customer.test>`.
async fn titled(db: &Db, w: &World, key: &str, subject: &str, now: OffsetDateTime) -> i64 {
    let mut tx = db.store.begin().await.unwrap();
    let id = tx
        .insert_ticket(&NewTicket {
            subject: subject.into(),
            status: Status::New,
            requester_id: w.alice.id,
            org_id: Some(w.site_a),
            root_message_id: Some(mid(&format!("<{key}@customer.test>"))),
            now,
        })
        .await
        .unwrap();
    tx.add_follower(id, w.alice.id, FollowerSource::Creator, now)
        .await
        .unwrap();
    tx.attach_org(id, w.site_a).await.unwrap();
    tx.commit().await.unwrap();
    id
}

fn log_entry(key: &str, outcome: Outcome, duplicate_of: Option<i64>) -> NewLogEntry {
    NewLogEntry {
        dedup_key: key.into(),
        message_id: MessageId::parse(key).ok(),
        origin: "test".into(),
        raw_sha256: "aa".repeat(32),
        size: 3,
        sender: Some("alice@customer.test".into()),
        subject: Some("Hello".into()),
        outcome,
        reason: None,
        thread_reason: None,
        ticket_id: None,
        comment_id: None,
        duplicate_of,
        replay_of: None,
        notify: true,
        now: T0,
    }
}

async fn log(db: &Db, key: &str, outcome: Outcome) -> Result<i64, StoreError> {
    let mut tx = db.store.begin().await?;
    tx.put_blob(&"aa".repeat(32), b"raw").await?;
    let id = tx.log_delivery(&log_entry(key, outcome, None)).await?;
    tx.commit().await?;
    Ok(id)
}

fn outbox_row(n: usize, to: &User, ticket: Option<i64>) -> NewOutbox {
    NewOutbox {
        ticket_id: ticket,
        template: "ack".into(),
        to: to.email.clone(),
        to_user_id: Some(to.id),
        locale: "en".into(),
        reason: "requester".into(),
        comment_id: None,
        message_id: mid(&format!("<n{n}@example.test>")),
        in_reply_to: Some(mid("<root@customer.test>")),
        references: vec![mid("<root@customer.test>"), mid("<last@customer.test>")],
        subject: format!("Notification {n}"),
        context: serde_json::json!({ "n": n, "text": "ü" }),
        now: T0,
    }
}

async fn enqueue(db: &Db, rows: &[NewOutbox]) {
    let mut tx = db.store.begin().await.unwrap();
    for row in rows {
        tx.enqueue(row).await.unwrap();
    }
    tx.commit().await.unwrap();
}

async fn users_are_edited_field_by_field_and_leads_removed(db: &Db) {
    let w = world(db).await;
    let store = &db.store;
    let find = |address: &'static str| async move {
        store.find_user(&email(address)).await.unwrap().unwrap()
    };
    // Name and locale change; role and organization stay.
    let change = UserChange {
        name: Some("Alice Ando".into()),
        locale: Some("ja".into()),
        ..UserChange::default()
    };
    assert!(store.update_user(w.alice.id, &change).await.unwrap());
    let alice = find("alice@customer.test").await;
    assert_eq!(
        (
            alice.name.as_str(),
            alice.locale.as_str(),
            alice.role,
            alice.org_id
        ),
        ("Alice Ando", "ja", Role::Customer, Some(w.site_a))
    );
    assert_eq!(alice.org.as_deref(), Some("site-a"));
    // Into another organization, then out of any.
    let moved = UserChange {
        org_id: Some(Some(w.other)),
        ..UserChange::default()
    };
    assert!(store.update_user(w.alice.id, &moved).await.unwrap());
    assert_eq!(
        find("alice@customer.test").await.org.as_deref(),
        Some("other-corp")
    );
    let out = UserChange {
        org_id: Some(None),
        ..UserChange::default()
    };
    assert!(store.update_user(w.alice.id, &out).await.unwrap());
    let alice = find("alice@customer.test").await;
    assert_eq!((alice.org_id, alice.name.as_str()), (None, "Alice Ando"));
    let promoted = UserChange {
        role: Some(Role::Staff),
        ..UserChange::default()
    };
    assert!(store.update_user(w.bob.id, &promoted).await.unwrap());
    assert_eq!(find("bob@customer.test").await.role, Role::Staff);
    assert_eq!(find("bob@customer.test").await.org_id, Some(w.site_a));
    assert!(!store.update_user(999_999, &promoted).await.unwrap());

    assert!(store.remove_org_lead(w.site_a, w.dave.id).await.unwrap());
    assert!(!store.remove_org_lead(w.site_a, w.dave.id).await.unwrap());
    let site_a = store.find_org("site-a").await.unwrap().unwrap();
    assert!(site_a.leads.is_empty(), "{:?}", site_a.leads);
    let mut tx = store.begin().await.unwrap();
    assert!(tx.org_leads(w.site_a).await.unwrap().is_empty());
}

/// The `active` flag reads back everywhere a user is read, and a
/// deactivated user's sessions, unused sign-in links and API tokens give
/// nobody; reactivating brings the session and token back.
async fn a_deactivated_user_keeps_their_row_but_loses_sessions_links_and_tokens(db: &Db) {
    let w = world(db).await;
    let s = &db.store;
    assert!(w.bob.active, "new users are active");
    s.create_session(&session(&hash(1), &w.bob, "csrf-bob", T0 + HOUR))
        .await
        .unwrap();
    s.create_session(&session(&hash(2), &w.alice, "csrf-alice", T0 + HOUR))
        .await
        .unwrap();
    link(db, &hash(3), &w.bob, LinkPurpose::SignIn, T0 + HOUR).await;
    s.create_token(w.bob.id, &hash(4), None, T0).await.unwrap();
    assert!(s.session(&hash(1), T0).await.unwrap().is_some());

    let off = UserChange {
        active: Some(false),
        ..UserChange::default()
    };
    assert!(s.update_user(w.bob.id, &off).await.unwrap());
    let bob = s
        .find_user(&email("bob@customer.test"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (bob.active, bob.name.as_str(), bob.org_id),
        (false, "bob", Some(w.site_a)),
        "only the flag changed"
    );
    let listed = s.list_users().await.unwrap();
    let flags: Vec<_> = listed
        .iter()
        .map(|u| (u.email.as_str(), u.active))
        .collect();
    assert!(flags.contains(&("bob@customer.test", false)), "{flags:?}");
    assert!(flags.contains(&("alice@customer.test", true)), "{flags:?}");
    let mut tx = s.begin().await.unwrap();
    let in_tx = tx.user_by_email(&email("bob@customer.test")).await.unwrap();
    assert_eq!(in_tx.map(|u| u.active), Some(false), "ingest reads it too");
    let by_id = tx.user_by_id(w.bob.id).await.unwrap();
    assert_eq!(by_id.map(|u| u.active), Some(false));
    drop(tx);

    assert!(
        s.session(&hash(1), T0).await.unwrap().is_none(),
        "session ends"
    );
    assert!(
        s.session(&hash(2), T0).await.unwrap().is_some(),
        "others stay"
    );
    assert!(
        s.take_web_link(&hash(3), T0).await.unwrap().is_none(),
        "no sign-in"
    );
    assert!(
        s.token_user(&hash(4), T0).await.unwrap().is_none(),
        "no token"
    );

    // Another edit leaves the flag as it is; only `active` sets it back.
    let renamed = UserChange {
        name: Some("Bob B".into()),
        ..UserChange::default()
    };
    assert!(s.update_user(w.bob.id, &renamed).await.unwrap());
    assert!(
        !s.find_user(&email("bob@customer.test"))
            .await
            .unwrap()
            .unwrap()
            .active
    );
    let on = UserChange {
        active: Some(true),
        ..UserChange::default()
    };
    assert!(s.update_user(w.bob.id, &on).await.unwrap());
    assert!(
        s.find_user(&email("bob@customer.test"))
            .await
            .unwrap()
            .unwrap()
            .active
    );
    assert!(
        s.session(&hash(1), T0).await.unwrap().is_some(),
        "session back"
    );
    assert_eq!(
        s.token_user(&hash(4), T0).await.unwrap().map(|u| u.id),
        Some(w.bob.id)
    );
}

/// Discarding marks a pending delivery once: the row and its raw message
/// stay, and a discarded row is not superseded by a replay.
async fn a_discarded_delivery_stays_in_the_log_and_is_neither_discarded_again_nor_replayed(
    db: &Db,
) {
    let held = log(db, "<held@x.test>", Outcome::Quarantined)
        .await
        .unwrap();
    let done = log(db, "<done@x.test>", Outcome::TicketCreated)
        .await
        .unwrap();
    let replayed = log(db, "<again@x.test>", Outcome::Quarantined)
        .await
        .unwrap();
    let mut tx = db.store.begin().await.unwrap();
    assert!(tx.supersede_log(replayed).await.unwrap());
    tx.commit().await.unwrap();
    let at = T0 + HOUR;

    assert!(
        db.store
            .log_row(held)
            .await
            .unwrap()
            .unwrap()
            .discarded_at
            .is_none()
    );
    assert!(db.store.discard_log(held, at).await.unwrap());
    assert!(!db.store.discard_log(held, at).await.unwrap(), "once");
    assert!(
        !db.store.discard_log(done, at).await.unwrap(),
        "accepted mail"
    );
    assert!(
        !db.store.discard_log(replayed, at).await.unwrap(),
        "replayed"
    );
    assert!(!db.store.discard_log(999_999, at).await.unwrap(), "unknown");

    let row = db.store.log_row(held).await.unwrap().unwrap();
    assert_eq!(row.discarded_at, Some(format_ts(at)));
    assert!(!row.superseded);
    let listed = db
        .store
        .list_log(&LogFilter {
            outcome: Some(Outcome::Quarantined),
            ..LogFilter::default()
        })
        .await
        .unwrap();
    assert!(
        listed
            .iter()
            .any(|r| r.id == held && r.discarded_at.is_some())
    );
    assert!(
        listed
            .iter()
            .any(|r| r.id == replayed && r.discarded_at.is_none())
    );
    assert_eq!(
        db.store.blob(&"aa".repeat(32)).await.unwrap().as_deref(),
        Some(&b"raw"[..]),
        "the raw message stays"
    );
    let mut tx = db.store.begin().await.unwrap();
    assert!(
        !tx.supersede_log(held).await.unwrap(),
        "not replayed once discarded"
    );
}

async fn orgs_and_users_are_found_by_every_key(db: &Db) {
    let w = world(db).await;
    let store = &db.store;
    for key in ["site-a", "Site A", "site a", " SITE A "] {
        let org = store.find_org(key).await.unwrap().expect(key);
        assert_eq!(org.id, w.site_a, "{key}");
        assert_eq!(org.domains, vec!["customer.test"], "domains are lowercased");
        assert_eq!(org.leads, vec!["dave@example.test"]);
    }
    assert!(store.find_org("nobody").await.unwrap().is_none());
    // Rules match on a ticket's org slugs: none, one, or several, sorted; an
    // unknown id has none.
    let mut tx = store.begin().await.unwrap();
    for (ids, want) in [
        (vec![], vec![]),
        (vec![w.site_a], vec!["site-a"]),
        (vec![w.site_a, w.other], vec!["other-corp", "site-a"]),
        (
            vec![w.other, w.site_a, 999_999],
            vec!["other-corp", "site-a"],
        ),
        (vec![999_999], vec![]),
    ] {
        assert_eq!(tx.org_slugs(&ids).await.unwrap(), want, "{ids:?}");
    }
    drop(tx);
    let slugs: Vec<_> = store
        .list_orgs()
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.slug)
        .collect();
    assert_eq!(slugs, ["other-corp", "site-a"]);
    let emails: Vec<_> = store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.email.to_string())
        .collect();
    assert_eq!(
        emails,
        [
            "alice@customer.test",
            "bob@customer.test",
            "carol@other.test",
            "dave@example.test",
            "sam@example.test"
        ]
    );
    let alice = store
        .find_user(&email("alice@customer.test"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(alice.org.as_deref(), Some("site-a"));
    assert_eq!(alice.role, Role::Customer);
    assert!(!alice.bouncing);

    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.org_for_domain("CUSTOMER.test").await.unwrap(),
        Some(w.site_a)
    );
    assert_eq!(tx.org_for_domain("nowhere.test").await.unwrap(), None);
    assert_eq!(
        tx.user_by_id(w.carol.id).await.unwrap().unwrap().email,
        w.carol.email
    );
    assert_eq!(
        tx.user_by_email(&w.sam.email).await.unwrap().unwrap().id,
        w.sam.id
    );
    assert_eq!(
        tx.org_by_key("other-corp").await.unwrap().unwrap().id,
        w.other
    );
    let leads = tx.org_leads(w.site_a).await.unwrap();
    assert_eq!(leads.len(), 1);
    assert_eq!(leads[0].id, w.dave.id);
    let new = tx
        .insert_user(
            &NewUser {
                email: email("erin@customer.test"),
                name: "Erin".into(),
                role: Role::Customer,
                org_id: Some(w.site_a),
                locale: "ja".into(),
            },
            T0,
        )
        .await
        .unwrap();
    assert_eq!(new.locale, "ja");
    assert_eq!(new.org.as_deref(), Some("site-a"));
    tx.commit().await.unwrap();

    // Registering an address twice is a conflict, not a generic failure.
    let again = store
        .add_user(&NewUser {
            email: email("erin@customer.test"),
            name: "Erin again".into(),
            role: Role::Customer,
            org_id: None,
            locale: "en".into(),
        })
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let dup_org = store.add_org("Site A", "site-a", &[]).await;
    assert!(
        matches!(dup_org, Err(StoreError::Conflict(_))),
        "{dup_org:?}"
    );
}

async fn reachable_users_follow_the_organization_rules(db: &Db) {
    let w = world(db).await;
    let mut tx = db.store.begin().await.unwrap();
    let names = |users: Vec<User>| users.into_iter().map(|u| u.name).collect::<Vec<_>>();
    assert_eq!(
        names(tx.reachable_users(&w.alice).await.unwrap()),
        ["alice", "bob", "dave"],
        "own org and its lead"
    );
    assert_eq!(
        names(tx.reachable_users(&w.carol).await.unwrap()),
        ["carol"]
    );
    assert_eq!(tx.reachable_users(&w.sam).await.unwrap().len(), 5);
    let _ = w.bob;
}

async fn a_dedup_key_is_unique_among_accepted_deliveries(db: &Db) {
    let first = log(db, "<m1@customer.test>", Outcome::TicketCreated)
        .await
        .unwrap();
    let second = log(db, "<m1@customer.test>", Outcome::CommandOnly).await;
    assert!(matches!(second, Err(StoreError::Conflict(_))), "{second:?}");
    // Any number of duplicate rows may repeat it.
    for _ in 0..2 {
        let mut tx = db.store.begin().await.unwrap();
        let previous = tx.find_logged("<m1@customer.test>").await.unwrap().unwrap();
        assert_eq!(previous.id, first);
        assert_eq!(previous.outcome, Outcome::TicketCreated);
        tx.log_delivery(&log_entry(
            "<m1@customer.test>",
            Outcome::Duplicate,
            Some(previous.id),
        ))
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    let mut tx = db.store.begin().await.unwrap();
    assert!(tx.find_logged("<other@x>").await.unwrap().is_none());
    drop(tx); // rolled back
    let rows = db.store.list_log(&LogFilter::default()).await.unwrap();
    assert_eq!(
        rows.iter().map(|r| r.outcome.as_str()).collect::<Vec<_>>(),
        ["ticket_created", "duplicate", "duplicate"]
    );
    assert_eq!(rows[0].received_at, format_ts(T0));
    assert_eq!(rows[0].message_id.as_deref(), Some("<m1@customer.test>"));
}

/// A stranger who sends a Message-ID first must not make its owner's mail a
/// duplicate: rejected and quarantined rows stay (for replay) but reserve
/// nothing, alone, in a transaction that wrote them and in a look-ahead batch.
async fn refused_deliveries_reserve_no_dedup_key(db: &Db) {
    let key = "<taken@customer.test>";
    let rejected = log(db, key, Outcome::Rejected).await.unwrap();
    log(db, key, Outcome::Quarantined).await.unwrap();
    log(db, key, Outcome::Rejected).await.unwrap();
    let mut tx = db.store.begin().await.unwrap();
    tx.look_ahead(&Lookahead {
        deliveries: 2,
        dedup_keys: vec![key.into()],
        ..Lookahead::default()
    })
    .await
    .unwrap();
    assert!(tx.find_logged(key).await.unwrap().is_none(), "look-ahead");
    tx.log_delivery(&log_entry(key, Outcome::Quarantined, None))
        .await
        .unwrap();
    assert!(tx.find_logged(key).await.unwrap().is_none(), "own write");
    let accepted = tx
        .log_delivery(&log_entry(key, Outcome::TicketCreated, None))
        .await
        .unwrap();
    assert_eq!(tx.find_logged(key).await.unwrap().unwrap().id, accepted);
    tx.commit().await.unwrap();
    let mut tx = db.store.begin().await.unwrap();
    assert_eq!(tx.find_logged(key).await.unwrap().unwrap().id, accepted);
    drop(tx);
    let again = log(db, key, Outcome::CommentAdded).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let rows = db.store.list_log(&LogFilter::default()).await.unwrap();
    assert_eq!(rows.len(), 5, "refused rows stay");
    assert!(
        !db.store
            .log_row(rejected)
            .await
            .unwrap()
            .unwrap()
            .superseded
    );
}

async fn a_concurrent_second_recording_of_a_message_conflicts_then_sees_the_first(db: &Db) {
    // Instance A is inside its transaction when instance B records the same message.
    let mut a = db.store.begin().await.unwrap();
    a.put_blob(&"aa".repeat(32), b"raw").await.unwrap();
    assert!(a.find_logged("<race@x>").await.unwrap().is_none());
    let a_id = a
        .log_delivery(&log_entry("<race@x>", Outcome::TicketCreated, None))
        .await
        .unwrap();
    let store = db.store.clone();
    let b = tokio::spawn(async move { log_in(&store, "<race@x>").await });
    db.until_a_transaction_waits().await;
    assert!(!b.is_finished(), "B waits for A's transaction");
    a.commit().await.unwrap();
    // Either B's transaction started after A's commit and sees A's row
    // (SQLite serializes writers), or it ran alongside and its insert failed
    // as a conflict (PostgreSQL): never a second non-duplicate row.
    match b.await.unwrap() {
        Ok(Some(seen)) => assert_eq!(seen, a_id),
        Err(StoreError::Conflict(_)) => {}
        other => panic!("B must see A's row or conflict: {other:?}"),
    }
    // B's retry sees A's row and records itself as its duplicate.
    assert_eq!(log_in(&db.store, "<race@x>").await.unwrap(), Some(a_id));
}

/// Records `key` unless already logged: `Some(previous)` when it was.
async fn log_in(store: &Arc<dyn Store>, key: &str) -> Result<Option<i64>, StoreError> {
    let mut tx = store.begin().await?;
    tx.put_blob(&"bb".repeat(32), b"raw2").await?;
    if let Some(previous) = tx.find_logged(key).await? {
        return Ok(Some(previous.id));
    }
    tx.log_delivery(&log_entry(key, Outcome::TicketCreated, None))
        .await?;
    tx.commit().await?;
    Ok(None)
}

async fn two_transactions_on_one_ticket_take_turns_and_lose_no_update(db: &Db) {
    let w = world(db).await;
    let id = ticket(db, &w, "turns", T0).await;
    let mut a = db.store.begin().await.unwrap();
    let state = a.ticket_state(id).await.unwrap().unwrap();
    assert_eq!(state.last_message_id, Some(mid("<turns@customer.test>")));
    let store = db.store.clone();
    let b = tokio::spawn(async move {
        let mut b = store.begin().await.unwrap();
        let state = b.ticket_state(id).await.unwrap().unwrap();
        b.update_ticket(id, Status::New, Some(&mid("<b@customer.test>")), T0)
            .await
            .unwrap();
        b.commit().await.unwrap();
        state
    });
    db.until_a_transaction_waits().await;
    assert!(!b.is_finished(), "B waits while A works on the ticket");
    a.update_ticket(id, Status::Closed, Some(&mid("<a@customer.test>")), T0)
        .await
        .unwrap();
    a.add_follower(id, w.bob.id, FollowerSource::Follow, T0)
        .await
        .unwrap();
    a.commit().await.unwrap();
    let seen_by_b = b.await.unwrap();
    assert_eq!(seen_by_b.status, Status::Closed, "B decided on A's result");
    assert_eq!(seen_by_b.last_message_id, Some(mid("<a@customer.test>")));
    assert_eq!(seen_by_b.followers.len(), 2);
}

async fn a_ticket_view_shows_everything_written_with_sqlite_timestamps(db: &Db) {
    let w = world(db).await;
    let id = ticket(db, &w, "view", T0).await;
    let later = T0 + Duration::from_secs(90);
    let mut tx = db.store.begin().await.unwrap();
    tx.put_blob(&"cc".repeat(32), b"%PDF-1.7").await.unwrap();
    tx.put_blob(&"cc".repeat(32), b"%PDF-1.7").await.unwrap();
    let comment = tx
        .insert_comment(&NewComment {
            ticket_id: id,
            author_id: w.alice.id,
            body: "Printer on fire — 火事",
            signature: Some("-- Alice"),
            quoted: Some("> earlier"),
            internal: false,
            source: CommentSource::Email,
            message_id: Some(mid("<view@customer.test>")),
            ingest_id: None,
            now: T0,
        })
        .await
        .unwrap();
    let internal = tx
        .insert_comment(&NewComment {
            ticket_id: id,
            author_id: w.sam.id,
            body: "internal note",
            signature: None,
            quoted: None,
            internal: true,
            source: CommentSource::Api,
            message_id: None,
            ingest_id: None,
            now: later,
        })
        .await
        .unwrap();
    assert!(internal > comment);
    tx.insert_attachment(&NewAttachment {
        comment_id: comment,
        filename: "fire.pdf".into(),
        content_type: "application/pdf".into(),
        size: 8,
        sha256: "cc".repeat(32),
    })
    .await
    .unwrap();
    tx.insert_event(&NewEvent {
        ticket_id: id,
        event: Event::StatusChanged {
            from: Status::New,
            to: Status::InProgress,
            cause: Cause::Command,
            reason: None,
        },
        actor_id: Some(w.sam.id),
        now: later,
    })
    .await
    .unwrap();
    tx.insert_event(&NewEvent {
        ticket_id: id,
        event: Event::OrgAdded {
            org: "site-a".into(),
        },
        actor_id: None,
        now: later,
    })
    .await
    .unwrap();
    tx.update_ticket(id, Status::InProgress, None, later)
        .await
        .unwrap();
    tx.set_priority(id, Priority::P2, later).await.unwrap();
    tx.set_release(id, "5.2.1", later).await.unwrap();
    tx.commit().await.unwrap();

    let view = db.store.ticket_view(id).await.unwrap().unwrap();
    assert_eq!(view.subject, "view");
    assert_eq!(view.status, Status::InProgress);
    assert_eq!(view.status_label, "In Progress");
    assert_eq!(view.priority, Some(Priority::P2));
    assert_eq!(view.requester, "alice@customer.test");
    assert_eq!(view.org.as_deref(), Some("site-a"));
    assert_eq!(view.orgs, ["site-a"]);
    assert_eq!(view.release.as_deref(), Some("5.2.1"));
    assert_eq!(view.created_at, "2026-03-01T10:00:00.123456Z");
    assert_eq!(view.updated_at, format_ts(later));
    assert_eq!(view.comments.len(), 2);
    let c = &view.comments[0];
    assert_eq!(c.body, "Printer on fire — 火事");
    assert_eq!(c.signature.as_deref(), Some("-- Alice"));
    assert!(!c.internal);
    assert_eq!(c.source, "email");
    assert_eq!(c.message_id.as_deref(), Some("<view@customer.test>"));
    assert_eq!(c.created_at, format_ts(T0));
    assert_eq!(c.author_name, "alice");
    assert_eq!(c.source, CommentSource::Email);
    assert_eq!(c.attachments.len(), 1);
    assert_eq!(c.attachments[0].filename, "fire.pdf");
    assert_eq!(c.attachments[0].size, 8);
    assert!(view.comments[1].internal);
    assert_eq!(view.comments[1].source, "api");
    assert_eq!(view.events.len(), 2);
    assert_eq!(view.events[0].event.kind(), "status_changed");
    assert_eq!(view.events[0].actor.as_deref(), Some("sam@example.test"));
    assert_eq!(view.events[0].event.data()["to"], "in_progress");
    assert_eq!(view.events[1].actor, None);
    assert_eq!(parse_ts(&view.events[0].created_at), Some(later));
    // The same JSON on both backends, field for field (the wire shape the API
    // and the CLI print).
    let json = serde_json::to_value(ticketgate::api::wire::TicketView::from(view)).unwrap();
    assert_eq!(json["followers"][0]["source"], "creator");
    assert_eq!(
        json["comments"][0]["attachments"][0]["content_type"],
        "application/pdf"
    );
    assert_eq!(json["comments"][1]["source"], "api");

    let files = db.store.comment_files(comment).await.unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].data, b"%PDF-1.7");
    assert!(db.store.comment_files(internal).await.unwrap().is_empty());
    assert_eq!(
        db.store.comment_body(comment).await.unwrap().as_deref(),
        Some("Printer on fire — 火事")
    );
    assert_eq!(db.store.comment_body(internal + 1000).await.unwrap(), None);

    let mut tx = db.store.begin().await.unwrap();
    let state = tx.ticket_state(id).await.unwrap().unwrap();
    assert_eq!(state.status, Status::InProgress);
    assert_eq!(state.priority, Some(Priority::P2));
    assert_eq!(state.requester_id, w.alice.id);
    assert_eq!(state.root_message_id, Some(mid("<view@customer.test>")));
    assert_eq!(state.orgs, [w.site_a]);
    assert!(tx.ticket_state(id + 1000).await.unwrap().is_none());
    assert!(db.store.ticket_view(id + 1000).await.unwrap().is_none());
}

async fn followers_and_orgs_are_added_once_and_removed(db: &Db) {
    let w = world(db).await;
    let id = ticket(db, &w, "followers", T0).await;
    let mut tx = db.store.begin().await.unwrap();
    let t1 = T0 + Duration::from_secs(1);
    assert!(
        tx.add_follower(id, w.bob.id, FollowerSource::Share, t1)
            .await
            .unwrap()
    );
    assert!(
        !tx.add_follower(id, w.bob.id, FollowerSource::Follow, t1)
            .await
            .unwrap(),
        "already following: source kept"
    );
    assert!(
        tx.add_follower(id, w.dave.id, FollowerSource::Mention, t1)
            .await
            .unwrap()
    );
    assert!(tx.remove_follower(id, w.dave.id).await.unwrap());
    assert!(!tx.remove_follower(id, w.dave.id).await.unwrap());
    tx.attach_org(id, w.other).await.unwrap();
    tx.attach_org(id, w.other).await.unwrap();
    assert!(tx.detach_org(id, w.site_a).await.unwrap());
    assert!(!tx.detach_org(id, w.site_a).await.unwrap());
    let state = tx.ticket_state(id).await.unwrap().unwrap();
    let followers: Vec<_> = state
        .followers
        .iter()
        .map(|f| (f.email.to_string(), f.source))
        .collect();
    assert_eq!(
        followers,
        [
            ("alice@customer.test".to_string(), FollowerSource::Creator),
            ("bob@customer.test".to_string(), FollowerSource::Share)
        ]
    );
    assert_eq!(state.orgs, [w.other]);
    tx.commit().await.unwrap();
    let view = db.store.ticket_view(id).await.unwrap().unwrap();
    assert_eq!(view.orgs, ["other-corp"]);
    assert_eq!(view.followers.len(), 2);
}

async fn message_refs_keep_their_first_ticket(db: &Db) {
    let w = world(db).await;
    let one = ticket(db, &w, "one", T0).await;
    let two = ticket(db, &w, "two", T0).await;
    let mut tx = db.store.begin().await.unwrap();
    tx.remember_refs(&[mid("<a@x>"), mid("<b@x>")], one, RefKind::Referenced, T0)
        .await
        .unwrap();
    tx.remember_refs(&[mid("<b@x>"), mid("<c@x>")], two, RefKind::Received, T0)
        .await
        .unwrap();
    tx.remember_refs(&[mid("<c@x>")], one, RefKind::Sent, T0)
        .await
        .unwrap();
    let found = tx
        .tickets_of(&[mid("<a@x>"), mid("<b@x>"), mid("<c@x>"), mid("<z@x>")])
        .await
        .unwrap();
    assert_eq!(found.len(), 3, "an unknown id is absent");
    assert_eq!(found[&mid("<a@x>")], one);
    assert_eq!(found[&mid("<b@x>")], one);
    assert_eq!(found[&mid("<c@x>")], two);
    tx.commit().await.unwrap();
}

async fn outbox_rows_are_claimed_once_until_their_lease_runs_out(db: &Db) {
    let w = world(db).await;
    let id = ticket(db, &w, "outbox", T0).await;
    enqueue(
        db,
        &[
            outbox_row(1, &w.alice, Some(id)),
            outbox_row(2, &w.bob, Some(id)),
            outbox_row(3, &w.sam, None),
        ],
    )
    .await;
    let lease = Duration::from_secs(300);
    let first = db.store.claim_outbox(T0, lease, 2).await.unwrap();
    assert_eq!(
        first.iter().map(|r| r.subject.as_str()).collect::<Vec<_>>(),
        ["Notification 1", "Notification 2"]
    );
    let r = &first[0];
    assert_eq!(r.status, OutboxStatus::Sending);
    assert_eq!(r.attempts, 1);
    assert_eq!(r.to, "alice@customer.test");
    assert_eq!(r.to_user_id, Some(w.alice.id));
    assert_eq!(r.ticket_id, Some(id));
    assert_eq!(r.message_id, "<n1@example.test>");
    assert_eq!(r.in_reply_to.as_deref(), Some("<root@customer.test>"));
    assert_eq!(
        r.references.as_deref(),
        Some("<root@customer.test> <last@customer.test>")
    );
    assert_eq!(r.context["text"], "ü");
    let second = db.store.claim_outbox(T0, lease, 10).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].subject, "Notification 3");
    assert!(
        db.store
            .claim_outbox(T0, lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let almost = T0 + lease - Duration::from_secs(1);
    assert!(
        db.store
            .claim_outbox(almost, lease, 10)
            .await
            .unwrap()
            .is_empty(),
        "leases still run"
    );
    // The sender died mid-send: once the lease is over the rows are due again.
    let after = T0 + lease;
    let again = db.store.claim_outbox(after, lease, 10).await.unwrap();
    assert_eq!(again.len(), 3);
    assert!(again.iter().all(|r| r.attempts == 2));
    let listed = db.store.list_outbox().await.unwrap();
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().all(|r| r.status == OutboxStatus::Sending));

    let mut tx = db.store.begin().await.unwrap();
    assert_eq!(
        tx.outbox_recipient(&mid("<n2@example.test>"))
            .await
            .unwrap(),
        Some((id, w.bob.email.clone()))
    );
    assert_eq!(
        tx.outbox_recipient(&mid("<n3@example.test>"))
            .await
            .unwrap(),
        None,
        "no ticket"
    );
    // A notification's Message-ID is unique.
    let dup = tx.enqueue(&outbox_row(1, &w.alice, Some(id))).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
}

async fn concurrent_claimers_never_get_the_same_outbox_row(db: &Db) {
    let w = world(db).await;
    const N: usize = 300;
    let rows: Vec<_> = (0..N).map(|n| outbox_row(n, &w.sam, None)).collect();
    enqueue(db, &rows).await;
    let mut claimers = Vec::new();
    for _ in 0..4 {
        let store = db.store.clone();
        claimers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let rows = store
                    .claim_outbox(T0, Duration::from_secs(60), 7)
                    .await
                    .unwrap();
                if rows.is_empty() {
                    return mine;
                }
                mine.extend(rows.into_iter().map(|r| r.id));
            }
        }));
    }
    let mut all = Vec::new();
    for c in claimers {
        all.extend(c.await.unwrap());
    }
    let total = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(total, N, "each row claimed exactly once");
    assert_eq!(all.len(), N);
}

async fn attempts_record_sent_retry_and_dead_and_mark_bouncers(db: &Db) {
    let w = world(db).await;
    enqueue(
        db,
        &[
            outbox_row(1, &w.alice, None),
            outbox_row(2, &w.bob, None),
            outbox_row(3, &w.carol, None),
        ],
    )
    .await;
    let lease = Duration::from_secs(60);
    let claimed = db.store.claim_outbox(T0, lease, 10).await.unwrap();
    let retry_at = T0 + Duration::from_secs(30);
    db.store
        .record_attempts(
            &[
                Attempt {
                    id: claimed[0].id,
                    result: AttemptResult::Sent,
                },
                Attempt {
                    id: claimed[1].id,
                    result: AttemptResult::Retry {
                        at: retry_at,
                        error: "421 try later".into(),
                    },
                },
                Attempt {
                    id: claimed[2].id,
                    result: AttemptResult::Dead {
                        error: "550 no such user".into(),
                        bouncing: Some(w.carol.email.clone()),
                    },
                },
            ],
            T0,
        )
        .await
        .unwrap();
    db.store.record_attempts(&[], T0).await.unwrap();
    let statuses: Vec<_> = db
        .store
        .list_outbox()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(
        statuses,
        [OutboxStatus::Sent, OutboxStatus::Failed, OutboxStatus::Dead]
    );
    assert!(
        db.store
            .find_user(&w.carol.email)
            .await
            .unwrap()
            .unwrap()
            .bouncing
    );
    // Sent and dead rows are never claimed; the failed one once it is due.
    let early = T0 + Duration::from_secs(29);
    assert!(
        db.store
            .claim_outbox(early, lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let due = db.store.claim_outbox(retry_at, lease, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].to, "bob@customer.test");
    assert_eq!(due[0].attempts, 2);

    let mut tx = db.store.begin().await.unwrap();
    assert!(
        !tx.set_bouncing(&w.carol.email, true).await.unwrap(),
        "already"
    );
    assert!(tx.set_bouncing(&w.carol.email, false).await.unwrap());
    assert!(
        !tx.set_bouncing(&email("nobody@x.test"), true)
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    assert!(
        !db.store
            .find_user(&w.carol.email)
            .await
            .unwrap()
            .unwrap()
            .bouncing
    );
}

async fn cursors_move_forward_and_reset_on_a_new_validity(db: &Db) {
    assert_eq!(db.store.source_cursor("inbox").await.unwrap(), None);
    for (validity, uid, expected) in [
        (7, 10, (7, 10)),
        (7, 15, (7, 15)),
        (7, 12, (7, 15)), // never backwards under the same validity
        (9, 3, (9, 3)),   // a new validity replaces the cursor
    ] {
        let mut tx = db.store.begin().await.unwrap();
        tx.advance_cursor("inbox", validity, uid, T0).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            db.store.source_cursor("inbox").await.unwrap(),
            Some(expected)
        );
    }
    // Rolled back with its transaction.
    let mut tx = db.store.begin().await.unwrap();
    tx.advance_cursor("inbox", 9, 100, T0).await.unwrap();
    drop(tx);
    assert_eq!(db.store.source_cursor("inbox").await.unwrap(), Some((9, 3)));
    assert_eq!(db.store.source_cursor("other").await.unwrap(), None);
}

async fn one_automatic_reply_per_address_per_window(db: &Db) {
    let window = Duration::from_secs(600);
    let a = email("robot@x.test");
    let mut tx = db.store.begin().await.unwrap();
    assert!(tx.claim_auto_reply(&a, T0, window).await.unwrap());
    assert!(
        !tx.claim_auto_reply(&a, T0 + Duration::from_secs(599), window)
            .await
            .unwrap()
    );
    assert!(
        tx.claim_auto_reply(&email("human@x.test"), T0, window)
            .await
            .unwrap()
    );
    assert!(tx.claim_auto_reply(&a, T0 + window, window).await.unwrap());
    assert!(
        !tx.claim_auto_reply(&a, T0 + window + Duration::from_secs(1), window)
            .await
            .unwrap(),
        "the window restarts at the last answer"
    );
    tx.commit().await.unwrap();
}

async fn ticket_and_log_filters_select_and_page(db: &Db) {
    let w = world(db).await;
    let mut ids = Vec::new();
    for n in 0..4u64 {
        ids.push(ticket(db, &w, &format!("t{n}"), T0 + Duration::from_secs(n)).await);
    }
    // t3: carol's, in Other Corp; t1 closed.
    let mut tx = db.store.begin().await.unwrap();
    let carols = tx
        .insert_ticket(&NewTicket {
            subject: "carol's".into(),
            status: Status::New,
            requester_id: w.carol.id,
            org_id: Some(w.other),
            root_message_id: None,
            now: T0,
        })
        .await
        .unwrap();
    tx.attach_org(carols, w.other).await.unwrap();
    tx.update_ticket(ids[1], Status::Closed, None, T0 + Duration::from_secs(9))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let list = |f: TicketFilter| {
        let store = db.store.clone();
        async move {
            store
                .list_tickets(&f)
                .await
                .unwrap()
                .into_iter()
                .map(|t| t.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list(TicketFilter::default()).await.len(), 5);
    assert_eq!(
        list(TicketFilter {
            status: Some(Status::Closed),
            ..Default::default()
        })
        .await,
        [ids[1]]
    );
    for org in ["other-corp", "Other Corp"] {
        assert_eq!(
            list(TicketFilter {
                org: Some(org.into()),
                ..Default::default()
            })
            .await,
            [carols]
        );
    }
    assert_eq!(
        list(TicketFilter {
            requester: Some(w.carol.email.clone()),
            ..Default::default()
        })
        .await,
        [carols]
    );
    assert_eq!(
        list(TicketFilter {
            limit: Some(2),
            after: Some(ids[0]),
            ..Default::default()
        })
        .await,
        [ids[1], ids[2]]
    );
    let summary = &db
        .store
        .list_tickets(&TicketFilter::default())
        .await
        .unwrap()[1];
    assert_eq!(summary.updated_at, format_ts(T0 + Duration::from_secs(9)));
    assert_eq!(summary.requester, "alice@customer.test");
    assert_eq!(summary.org.as_deref(), Some("site-a"));

    // Open tickets alice can see, newest first: followed or of her org.
    let mut tx = db.store.begin().await.unwrap();
    let open: Vec<_> = tx
        .open_tickets_of(&w.alice, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(open, [ids[3], ids[2], ids[0]]);
    assert_eq!(tx.open_tickets_of(&w.alice, 1).await.unwrap().len(), 1);
    let bobs: Vec<_> = tx
        .open_tickets_of(&w.bob, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(bobs, [ids[3], ids[2], ids[0]], "through the org");
    assert_eq!(tx.open_tickets_of(&w.sam, 10).await.unwrap().len(), 0);
    drop(tx);

    for (n, outcome) in [
        Outcome::TicketCreated,
        Outcome::Quarantined,
        Outcome::Rejected,
        Outcome::Quarantined,
    ]
    .into_iter()
    .enumerate()
    {
        log(db, &format!("<log{n}@x>"), outcome).await.unwrap();
    }
    let q = db
        .store
        .list_log(&LogFilter {
            outcome: Some(Outcome::Quarantined),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(q.len(), 2);
    assert!(q.iter().all(|r| r.outcome == Outcome::Quarantined));
    let page = db
        .store
        .list_log(&LogFilter {
            outcome: None,
            limit: Some(2),
            after: Some(q[0].id),
        })
        .await
        .unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(page[0].outcome, Outcome::Rejected);
    assert_eq!(page[1].id, q[1].id);
    assert_eq!(page[0].sender.as_deref(), Some("alice@customer.test"));
    assert_eq!(page[0].size, 3);
}

async fn a_mailbox_lease_has_one_holder_until_it_expires(db: &Db) {
    let ttl = Duration::from_secs(30);
    let s = &db.store;
    assert_eq!(s.lease_holder("mbox").await.unwrap(), None);
    assert!(s.acquire_lease("mbox", "a", T0, ttl).await.unwrap());
    assert!(!s.acquire_lease("mbox", "b", T0, ttl).await.unwrap());
    assert!(
        s.acquire_lease("other", "b", T0, ttl).await.unwrap(),
        "leases are per mailbox"
    );
    // Renewal moves the expiry; the other instance still waits.
    let t10 = T0 + Duration::from_secs(10);
    assert!(s.acquire_lease("mbox", "a", t10, ttl).await.unwrap());
    assert_eq!(
        s.lease_holder("mbox").await.unwrap(),
        Some(("a".into(), t10 + ttl))
    );
    assert!(
        !s.acquire_lease("mbox", "b", T0 + ttl + Duration::from_secs(1), ttl)
            .await
            .unwrap(),
        "renewed: not expired yet"
    );
    // a dies: b takes over once the lease ran out; a has lost it.
    let expired = t10 + ttl;
    assert!(s.acquire_lease("mbox", "b", expired, ttl).await.unwrap());
    assert!(!s.acquire_lease("mbox", "a", expired, ttl).await.unwrap());
    assert_eq!(s.lease_holder("mbox").await.unwrap().unwrap().0, "b");
    // Releasing someone else's lease does nothing; releasing one's own frees it.
    s.release_lease("mbox", "a").await.unwrap();
    assert!(!s.acquire_lease("mbox", "a", expired, ttl).await.unwrap());
    s.release_lease("mbox", "b").await.unwrap();
    assert_eq!(s.lease_holder("mbox").await.unwrap(), None);
    assert!(s.acquire_lease("mbox", "a", expired, ttl).await.unwrap());
}

async fn racing_instances_take_an_expired_lease_exactly_once(db: &Db) {
    let ttl = Duration::from_secs(30);
    assert!(
        db.store
            .acquire_lease("mbox", "dead", T0, ttl)
            .await
            .unwrap()
    );
    let later = T0 + ttl + Duration::from_secs(5);
    let mut racers = Vec::new();
    for n in 0..8 {
        let store = db.store.clone();
        racers.push(tokio::spawn(async move {
            store
                .acquire_lease("mbox", &format!("racer-{n}"), later, ttl)
                .await
                .unwrap()
        }));
    }
    let mut winners = 0;
    for r in racers {
        winners += usize::from(r.await.unwrap());
    }
    assert_eq!(winners, 1);
    let (holder, _) = db.store.lease_holder("mbox").await.unwrap().unwrap();
    assert!(holder.starts_with("racer-"));
}

/// Mail can carry NUL, which PostgreSQL text cannot: the delivery must still be
/// recorded (there as U+FFFD) rather than fail its transaction on every retry.
async fn text_with_a_nul_character_is_stored_not_refused(db: &Db) {
    let w = world(db).await;
    let id = ticket(db, &w, "nul", T0).await;
    let mut tx = db.store.begin().await.unwrap();
    tx.insert_comment(&NewComment {
        ticket_id: id,
        author_id: w.alice.id,
        body: "before\0after",
        signature: None,
        quoted: None,
        internal: false,
        source: CommentSource::Email,
        message_id: None,
        ingest_id: None,
        now: T0,
    })
    .await
    .unwrap();
    let mut entry = log_entry("<nul@x>", Outcome::CommentAdded, None);
    entry.subject = Some("sub\0ject".into());
    tx.put_blob(&"aa".repeat(32), b"raw").await.unwrap();
    tx.log_delivery(&entry).await.unwrap();
    tx.commit().await.unwrap();
    let body = &db.store.ticket_view(id).await.unwrap().unwrap().comments[0].body;
    assert!(
        body.starts_with("before") && body.ends_with("after"),
        "{body:?}"
    );
    let subject = db.store.list_log(&LogFilter::default()).await.unwrap()[0]
        .subject
        .clone()
        .unwrap();
    assert!(
        subject.starts_with("sub") && subject.ends_with("ject"),
        "{subject:?}"
    );
}

async fn api_tokens_are_found_by_hash_until_revoked(db: &Db) {
    let w = world(db).await;
    let t = db
        .store
        .create_token(w.sam.id, &"ab".repeat(32), Some("ci"), T0)
        .await
        .unwrap();
    assert_eq!(
        (t.user.as_str(), t.label.as_deref()),
        ("sam@example.test", Some("ci"))
    );
    assert_eq!(t.created_at, format_ts(T0));
    let found = db.store.token_user(&"ab".repeat(32), T0).await.unwrap();
    assert_eq!(found.map(|u| u.id), Some(w.sam.id));
    assert!(
        db.store
            .token_user(&"cd".repeat(32), T0)
            .await
            .unwrap()
            .is_none()
    );
    let listed = db.store.list_tokens(Some(w.sam.id)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].last_used_at, Some(format_ts(T0)));
    assert!(
        db.store
            .list_tokens(Some(w.alice.id))
            .await
            .unwrap()
            .is_empty()
    );
    // The same hash twice is a conflict, not a second token.
    assert!(matches!(
        db.store
            .create_token(w.alice.id, &"ab".repeat(32), None, T0)
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(db.store.revoke_token(t.id, T0).await.unwrap());
    assert!(!db.store.revoke_token(t.id, T0).await.unwrap());
    assert!(
        db.store
            .token_user(&"ab".repeat(32), T0)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        db.store.list_tokens(None).await.unwrap()[0]
            .revoked_at
            .is_some()
    );
}

async fn a_superseded_delivery_frees_its_dedup_key_once(db: &Db) {
    let first = log(db, "<replay@x.test>", Outcome::Quarantined)
        .await
        .unwrap();
    let done = log(db, "<done@x.test>", Outcome::TicketCreated)
        .await
        .unwrap();
    let mut tx = db.store.begin().await.unwrap();
    assert!(
        !tx.supersede_log(done).await.unwrap(),
        "only refused deliveries are replayed"
    );
    assert!(tx.supersede_log(first).await.unwrap());
    assert!(tx.find_logged("<replay@x.test>").await.unwrap().is_none());
    let mut again = log_entry("<replay@x.test>", Outcome::CommentAdded, None);
    again.replay_of = Some(first);
    let second = tx.log_delivery(&again).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = db.store.begin().await.unwrap();
    assert!(
        !tx.supersede_log(first).await.unwrap(),
        "a replay happens once"
    );
    assert_eq!(
        tx.find_logged("<replay@x.test>")
            .await
            .unwrap()
            .map(|l| l.id),
        Some(second)
    );
    drop(tx);
    let old = db.store.log_row(first).await.unwrap().unwrap();
    assert!(old.superseded);
    let new = db.store.log_row(second).await.unwrap().unwrap();
    assert_eq!(
        (new.replay_of, new.superseded, new.raw_sha256.len()),
        (Some(first), false, 64)
    );
    assert_eq!(
        db.store.blob(&"aa".repeat(32)).await.unwrap().as_deref(),
        Some(&b"raw"[..])
    );
}

/// What a delivery changed is what it reads next, before and after commit:
/// the rules of a second message in one batch see the first one's status,
/// last Message-ID and orgs.
async fn a_ticket_reads_back_its_own_changes_within_the_transaction(db: &Db) {
    let w = world(db).await;
    let id = ticket(db, &w, "read-back", T0).await;
    let t1 = T0 + Duration::from_secs(1);
    let mut tx = db.store.begin().await.unwrap();
    let before = tx.ticket_state(id).await.unwrap().unwrap();
    assert_eq!(before.status, Status::New);
    assert_eq!(before.orgs, [w.site_a]);

    tx.update_ticket(
        id,
        Status::Blocked,
        Some(&mid("<second@customer.test>")),
        t1,
    )
    .await
    .unwrap();
    tx.attach_org(id, w.other).await.unwrap();
    tx.attach_org(id, w.site_a).await.unwrap();
    let state = tx.ticket_state(id).await.unwrap().unwrap();
    assert_eq!(state.status, Status::Blocked);
    assert_eq!(
        state.last_message_id.as_ref().map(MessageId::as_str),
        Some("<second@customer.test>")
    );
    let mut orgs = vec![w.site_a, w.other];
    orgs.sort_unstable();
    assert_eq!(state.orgs, orgs, "each org once, in id order");

    // A change without a Message-ID keeps the last one.
    tx.update_ticket(id, Status::InProgress, None, t1)
        .await
        .unwrap();
    let state = tx.ticket_state(id).await.unwrap().unwrap();
    assert_eq!(state.status, Status::InProgress);
    assert_eq!(
        state.last_message_id.as_ref().map(MessageId::as_str),
        Some("<second@customer.test>")
    );
    tx.commit().await.unwrap();

    let mut tx = db.store.begin().await.unwrap();
    let stored = tx.ticket_state(id).await.unwrap().unwrap();
    assert_eq!(stored.status, Status::InProgress);
    assert_eq!(stored.last_message_id, state.last_message_id);
    assert_eq!(stored.orgs, orgs);
    drop(tx);
}

/// Followers added to a ticket created in the same transaction (which
/// PostgreSQL holds until commit) read back as the table orders them: by
/// time, then user id; adding one twice is refused.
async fn followers_of_a_new_ticket_read_back_in_table_order(db: &Db) {
    let w = world(db).await;
    let t1 = T0 + Duration::from_secs(1);
    let mut tx = db.store.begin().await.unwrap();
    for who in [&w.alice, &w.bob, &w.sam] {
        tx.user_by_email(&who.email).await.unwrap().unwrap();
    }
    let id = tx
        .insert_ticket(&NewTicket {
            subject: "order".into(),
            status: Status::New,
            requester_id: w.bob.id,
            org_id: Some(w.site_a),
            root_message_id: Some(mid("<order@customer.test>")),
            now: T0,
        })
        .await
        .unwrap();
    assert!(
        tx.add_follower(id, w.sam.id, FollowerSource::Cc, t1)
            .await
            .unwrap()
    );
    assert!(
        tx.add_follower(id, w.bob.id, FollowerSource::Creator, T0)
            .await
            .unwrap()
    );
    assert!(
        tx.add_follower(id, w.alice.id, FollowerSource::Cc, t1)
            .await
            .unwrap()
    );
    assert!(
        !tx.add_follower(id, w.bob.id, FollowerSource::Cc, t1)
            .await
            .unwrap()
    );
    let order = |s: &TicketState| -> Vec<(i64, FollowerSource)> {
        s.followers.iter().map(|f| (f.user, f.source)).collect()
    };
    let mut later = vec![
        (w.alice.id, FollowerSource::Cc),
        (w.sam.id, FollowerSource::Cc),
    ];
    later.sort_unstable_by_key(|f| f.0);
    let expected: Vec<_> = std::iter::once((w.bob.id, FollowerSource::Creator))
        .chain(later)
        .collect();
    let state = tx.ticket_state(id).await.unwrap().unwrap();
    assert_eq!(order(&state), expected);
    assert_eq!(state.followers[0].email, w.bob.email);
    tx.commit().await.unwrap();

    let mut tx = db.store.begin().await.unwrap();
    let stored = tx.ticket_state(id).await.unwrap().unwrap();
    assert_eq!(order(&stored), expected);
    drop(tx);
}

/// Within a batch that read ahead, every lookup answers with the batch's
/// own earlier writes: log rows, users, thread refs and ticket changes.
async fn a_look_ahead_batch_sees_its_own_writes(db: &Db) {
    let w = world(db).await;
    let id = ticket(db, &w, "ahead", T0).await;
    let mut tx = db.store.begin().await.unwrap();
    tx.remember_refs(&[mid("<ahead@customer.test>")], id, RefKind::Received, T0)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let old = log(db, "<old@customer.test>", Outcome::TicketCreated)
        .await
        .unwrap();
    let stranger = email("new@nowhere.test");
    let mut tx = db.store.begin().await.unwrap();
    tx.look_ahead(&Lookahead {
        deliveries: 3,
        dedup_keys: vec!["<old@customer.test>".into(), "<n1@customer.test>".into()],
        senders: vec![w.alice.email.clone(), stranger.clone()],
        message_ids: vec![mid("<ahead@customer.test>"), mid("<n1@customer.test>")],
        tickets: vec![id],
    })
    .await
    .unwrap();
    assert_eq!(
        tx.find_logged("<old@customer.test>")
            .await
            .unwrap()
            .unwrap()
            .id,
        old
    );
    assert!(
        tx.find_logged("<n1@customer.test>")
            .await
            .unwrap()
            .is_none()
    );
    assert!(tx.user_by_email(&stranger).await.unwrap().is_none());
    let new_user = tx
        .insert_user(
            &NewUser {
                email: stranger.clone(),
                name: "New".into(),
                role: Role::Customer,
                org_id: None,
                locale: "en".into(),
            },
            T0,
        )
        .await
        .unwrap();
    assert_eq!(
        tx.user_by_email(&stranger).await.unwrap().unwrap().id,
        new_user.id
    );
    let found = tx
        .tickets_of(&[mid("<ahead@customer.test>")])
        .await
        .unwrap();
    assert_eq!(found.values().copied().collect::<Vec<_>>(), [id]);

    // A delivery: its comment, notification and log row are written.
    let comment = tx
        .insert_comment(&NewComment {
            ticket_id: id,
            author_id: w.alice.id,
            body: "held body",
            signature: None,
            quoted: None,
            internal: false,
            source: CommentSource::Email,
            message_id: Some(mid("<n1@customer.test>")),
            ingest_id: None,
            now: T0,
        })
        .await
        .unwrap();
    let mut note = outbox_row(1, &w.bob, Some(id));
    note.comment_id = Some(comment);
    let queued = tx.enqueue(&note).await.unwrap();
    tx.remember_refs(&[mid("<n1@customer.test>")], id, RefKind::Received, T0)
        .await
        .unwrap();
    tx.update_ticket(id, Status::InProgress, Some(&mid("<n1@customer.test>")), T0)
        .await
        .unwrap();
    tx.add_follower(id, new_user.id, FollowerSource::Cc, T0)
        .await
        .unwrap();
    let mut entry = log_entry("<n1@customer.test>", Outcome::CommentAdded, None);
    entry.ticket_id = Some(id);
    entry.comment_id = Some(comment);
    let first = tx.log_delivery(&entry).await.unwrap();

    // The next delivery of the batch sees all of it.
    let logged = tx.find_logged("<n1@customer.test>").await.unwrap().unwrap();
    assert_eq!((logged.id, logged.comment_id), (first, Some(comment)));
    let found = tx.tickets_of(&[mid("<n1@customer.test>")]).await.unwrap();
    assert_eq!(found.values().copied().collect::<Vec<_>>(), [id]);
    let state = tx.ticket_state(id).await.unwrap().unwrap();
    assert_eq!(state.status, Status::InProgress);
    assert!(state.followers.iter().any(|f| f.user == new_user.id));
    let repeat = tx
        .log_delivery(&log_entry(
            "<n1@customer.test>",
            Outcome::Duplicate,
            Some(first),
        ))
        .await
        .unwrap();
    assert!(repeat > first, "log ids follow delivery order");
    tx.commit().await.unwrap();

    assert_eq!(
        db.store.comment_body(comment).await.unwrap().as_deref(),
        Some("held body")
    );
    let row = db.store.log_row(first).await.unwrap().unwrap();
    assert_eq!(row.comment, Some(comment));
    let outbox = db.store.list_outbox().await.unwrap();
    assert!(
        outbox
            .iter()
            .any(|o| o.id == queued && o.comment_id == Some(comment))
    );
    let mut tx = db.store.begin().await.unwrap();
    assert_eq!(
        tx.find_logged("<n1@customer.test>")
            .await
            .unwrap()
            .unwrap()
            .id,
        first
    );
    assert_eq!(
        tx.ticket_state(id).await.unwrap().unwrap().status,
        Status::InProgress
    );
    drop(tx);
}

/// Automatic-reply claims decided from what `look_ahead` read follow the
/// same window as one by one, and store the last answer's time.
async fn automatic_replies_in_a_look_ahead_batch_keep_the_window(db: &Db) {
    let window = Duration::from_secs(600);
    let secs = Duration::from_secs;
    let (a, b) = (email("robot@x.test"), email("human@x.test"));
    let mut tx = db.store.begin().await.unwrap();
    assert!(tx.claim_auto_reply(&a, T0, window).await.unwrap());
    tx.commit().await.unwrap();

    let mut tx = db.store.begin().await.unwrap();
    tx.look_ahead(&Lookahead {
        deliveries: 2,
        senders: vec![a.clone(), b.clone()],
        ..Lookahead::default()
    })
    .await
    .unwrap();
    assert!(
        !tx.claim_auto_reply(&a, T0 + secs(599), window)
            .await
            .unwrap()
    );
    assert!(tx.claim_auto_reply(&b, T0, window).await.unwrap());
    assert!(!tx.claim_auto_reply(&b, T0 + secs(1), window).await.unwrap());
    assert!(tx.claim_auto_reply(&a, T0 + window, window).await.unwrap());
    assert!(
        !tx.claim_auto_reply(&a, T0 + window + secs(1), window)
            .await
            .unwrap()
    );
    assert!(tx.claim_auto_reply(&b, T0 + window, window).await.unwrap());
    tx.commit().await.unwrap();

    // Both addresses were last answered at T0 + window.
    let mut tx = db.store.begin().await.unwrap();
    for who in [&a, &b] {
        let just_before = T0 + window + window - secs(1);
        assert!(
            !tx.claim_auto_reply(who, just_before, window).await.unwrap(),
            "{who}"
        );
        assert!(
            tx.claim_auto_reply(who, T0 + window + window, window)
                .await
                .unwrap(),
            "{who}"
        );
    }
    tx.commit().await.unwrap();
}

/// PostgreSQL: a batch decided to answer an address that had no claim row,
/// and another transaction answered it first; the batch's commit fails as a
/// conflict (ingest then records it one by one) instead of answering twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_a_claim_taken_meanwhile_fails_the_batch_as_a_conflict() {
    let db = Db::postgres().await;
    let window = Duration::from_secs(600);
    let a = email("robot@x.test");
    let mut batch = db.store.begin().await.unwrap();
    batch
        .look_ahead(&Lookahead {
            deliveries: 1,
            senders: vec![a.clone()],
            ..Lookahead::default()
        })
        .await
        .unwrap();
    assert!(batch.claim_auto_reply(&a, T0, window).await.unwrap());
    let mut other = db.store.begin().await.unwrap();
    assert!(other.claim_auto_reply(&a, T0, window).await.unwrap());
    other.commit().await.unwrap();
    let err = batch.commit().await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
}

/// Every connection of the store's pool has JIT compilation off, whatever
/// the database's default: ingest runs generic plans, whose estimates pass
/// `jit_above_cost` once the tables grow.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_connections_never_jit_compile() {
    use sqlx::Connection;
    let db = TestDb::create().await;
    let mut admin = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {} SET jit = on",
        db.name
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    let show = "SHOW jit";
    let mut plain = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let default: String = sqlx::query_scalar(show)
        .fetch_one(&mut plain)
        .await
        .unwrap();
    assert_eq!(default, "on", "the database's default");
    let store = PgStore::connect(&db.url).await.unwrap();
    // Two at once: two connections of the pool.
    let mut first = store.pool().acquire().await.unwrap();
    let mut second = store.pool().acquire().await.unwrap();
    for conn in [&mut first, &mut second] {
        let jit: String = sqlx::query_scalar(show)
            .fetch_one(&mut **conn)
            .await
            .unwrap();
        assert_eq!(jit, "off");
    }
}

/// SQLite writes a body over 1 MiB in place (one copy less in memory);
/// both backends give back exactly the text written, in the view and alone.
async fn a_comment_larger_than_a_mebibyte_reads_back_as_written(db: &Db) {
    let w = world(db).await;
    let id = ticket(db, &w, "large", T0).await;
    let body: String = "火事 fire\n".repeat(200_000);
    assert!(body.len() > 2 << 20);
    let mut tx = db.store.begin().await.unwrap();
    let comment = tx
        .insert_comment(&NewComment {
            ticket_id: id,
            author_id: w.alice.id,
            body: &body,
            signature: None,
            quoted: None,
            internal: false,
            source: CommentSource::Email,
            message_id: None,
            ingest_id: None,
            now: T0,
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let stored = db.store.comment_body(comment).await.unwrap().unwrap();
    assert!(
        stored == body,
        "comment_body differs ({} bytes)",
        stored.len()
    );
    let view = db.store.ticket_view(id).await.unwrap().unwrap();
    let shown = view.comments.iter().find(|c| c.id == comment).unwrap();
    assert!(shown.body == body, "the view's body differs");
}

/// The hash a link or session is stored by (any 64 hex digits will do here).
fn hash(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

async fn link(db: &Db, token: &str, user: &User, purpose: LinkPurpose, expires: OffsetDateTime) {
    let mut tx = db.store.begin().await.unwrap();
    tx.insert_web_link(&NewWebLink {
        token_hash: token.into(),
        user: user.id,
        purpose,
        now: T0,
        expires,
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

fn session(token: &str, user: &User, csrf: &str, expires: OffsetDateTime) -> NewSession {
    NewSession {
        token_hash: token.into(),
        user: user.id,
        csrf: csrf.into(),
        now: T0,
        expires,
    }
}

const HOUR: Duration = Duration::from_secs(3600);

async fn a_web_link_is_taken_once_and_only_before_it_expires(db: &Db) {
    let w = world(db).await;
    link(db, &hash(1), &w.alice, LinkPurpose::SignIn, T0 + HOUR).await;
    link(db, &hash(2), &w.bob, LinkPurpose::Invite, T0 + HOUR).await;
    let s = &db.store;
    let taken = s.take_web_link(&hash(1), T0).await.unwrap().unwrap();
    assert_eq!(
        (taken.id, taken.email.as_str()),
        (w.alice.id, "alice@customer.test")
    );
    assert_eq!(taken.org.as_deref(), Some("site-a"));
    assert!(
        s.take_web_link(&hash(1), T0).await.unwrap().is_none(),
        "used"
    );
    // Expired at its expiry instant; unexpired just before it; unknown never.
    assert!(
        s.take_web_link(&hash(2), T0 + HOUR)
            .await
            .unwrap()
            .is_none()
    );
    let just_before = T0 + HOUR - Duration::from_micros(1);
    assert_eq!(
        s.take_web_link(&hash(2), just_before)
            .await
            .unwrap()
            .map(|u| u.id),
        Some(w.bob.id)
    );
    assert!(s.take_web_link(&hash(3), T0).await.unwrap().is_none());
    // The token hash is the key: a second link with it is a conflict.
    let mut tx = s.begin().await.unwrap();
    let again = tx
        .insert_web_link(&NewWebLink {
            token_hash: hash(1),
            user: w.carol.id,
            purpose: LinkPurpose::SignIn,
            now: T0,
            expires: T0 + HOUR,
        })
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
}

async fn two_concurrent_takes_of_one_link_give_one_user(db: &Db) {
    let w = world(db).await;
    for round in 0..5u8 {
        link(db, &hash(round), &w.alice, LinkPurpose::SignIn, T0 + HOUR).await;
        let takers: Vec<_> = (0..2)
            .map(|_| {
                let store = db.store.clone();
                tokio::spawn(async move { store.take_web_link(&hash(round), T0).await.unwrap() })
            })
            .collect();
        let mut users = Vec::new();
        for taker in takers {
            users.extend(taker.await.unwrap().map(|u| u.id));
        }
        assert_eq!(users, [w.alice.id], "round {round}");
    }
}

/// The invitation's link and its new user commit in one transaction (on
/// PostgreSQL a look-ahead batch holds the user back until something needs it).
async fn an_invitation_link_commits_with_the_user_it_invites(db: &Db) {
    let newcomer = email("nina@customer.test");
    let mut tx = db.store.begin().await.unwrap();
    tx.look_ahead(&Lookahead {
        deliveries: 1,
        senders: vec![newcomer.clone()],
        ..Lookahead::default()
    })
    .await
    .unwrap();
    let nina = tx
        .insert_user(
            &NewUser {
                email: newcomer,
                name: "Nina".into(),
                role: Role::Customer,
                org_id: None,
                locale: "en".into(),
            },
            T0,
        )
        .await
        .unwrap();
    tx.insert_web_link(&NewWebLink {
        token_hash: hash(9),
        user: nina.id,
        purpose: LinkPurpose::Invite,
        now: T0,
        expires: T0 + HOUR,
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let taken = db.store.take_web_link(&hash(9), T0).await.unwrap().unwrap();
    assert_eq!((taken.id, taken.name.as_str()), (nina.id, "Nina"));

    // Rolled back, the link goes with the invitation.
    let mut tx = db.store.begin().await.unwrap();
    tx.insert_web_link(&NewWebLink {
        token_hash: hash(10),
        user: nina.id,
        purpose: LinkPurpose::Invite,
        now: T0,
        expires: T0 + HOUR,
    })
    .await
    .unwrap();
    drop(tx);
    assert!(
        db.store
            .take_web_link(&hash(10), T0)
            .await
            .unwrap()
            .is_none()
    );
}

async fn a_session_gives_its_user_and_csrf_until_it_expires_or_ends(db: &Db) {
    let w = world(db).await;
    let s = &db.store;
    s.create_session(&session(&hash(1), &w.alice, "csrf-alice", T0 + HOUR))
        .await
        .unwrap();
    s.create_session(&session(&hash(2), &w.sam, "csrf-sam", T0 + HOUR))
        .await
        .unwrap();
    let (user, csrf) = s.session(&hash(1), T0).await.unwrap().unwrap();
    assert_eq!((user.id, csrf.as_str()), (w.alice.id, "csrf-alice"));
    assert_eq!(user.org.as_deref(), Some("site-a"));
    // Seen again later (last_seen_at moves): the same answer.
    for later in [T0 + Duration::from_secs(30), T0 + Duration::from_secs(600)] {
        let (user, csrf) = s.session(&hash(1), later).await.unwrap().unwrap();
        assert_eq!((user.id, csrf.as_str()), (w.alice.id, "csrf-alice"));
    }
    let (user, csrf) = s.session(&hash(2), T0).await.unwrap().unwrap();
    assert_eq!((user.id, csrf.as_str()), (w.sam.id, "csrf-sam"));
    assert!(
        s.session(&hash(1), T0 + HOUR).await.unwrap().is_none(),
        "expired"
    );
    assert!(s.session(&hash(3), T0).await.unwrap().is_none(), "unknown");
    let again = s
        .create_session(&session(&hash(1), &w.bob, "other", T0 + HOUR))
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");

    assert!(s.end_session(&hash(1)).await.unwrap());
    assert!(s.session(&hash(1), T0).await.unwrap().is_none(), "ended");
    assert!(!s.end_session(&hash(1)).await.unwrap());
    assert!(
        s.session(&hash(2), T0).await.unwrap().is_some(),
        "others stay"
    );
}

async fn purging_removes_only_expired_links_and_sessions(db: &Db) {
    let w = world(db).await;
    let now = T0 + HOUR;
    let s = &db.store;
    link(db, &hash(1), &w.alice, LinkPurpose::SignIn, now).await; // expired at `now`
    link(db, &hash(2), &w.alice, LinkPurpose::SignIn, now + HOUR).await;
    link(db, &hash(3), &w.bob, LinkPurpose::Invite, now + HOUR).await; // used, still unexpired
    assert!(s.take_web_link(&hash(3), T0).await.unwrap().is_some());
    s.create_session(&session(
        &hash(4),
        &w.alice,
        "a",
        now - Duration::from_secs(1),
    ))
    .await
    .unwrap();
    s.create_session(&session(&hash(5), &w.bob, "b", now + HOUR))
        .await
        .unwrap();

    assert_eq!(s.purge_web(now).await.unwrap(), 2);
    assert_eq!(s.purge_web(now).await.unwrap(), 0);
    assert_eq!(
        s.take_web_link(&hash(2), now).await.unwrap().map(|u| u.id),
        Some(w.alice.id)
    );
    assert!(s.session(&hash(5), now).await.unwrap().is_some());
    assert!(!s.end_session(&hash(4)).await.unwrap(), "purged");
    // Later, the rest expires and goes.
    assert_eq!(s.purge_web(now + HOUR).await.unwrap(), 3);
}

async fn a_comment_from_the_portal_reads_back_as_web(db: &Db) {
    let w = world(db).await;
    let id = ticket(db, &w, "portal", T0).await;
    let mut tx = db.store.begin().await.unwrap();
    let comment = tx
        .insert_comment(&NewComment {
            ticket_id: id,
            author_id: w.bob.id,
            body: "Written on the portal",
            signature: None,
            quoted: None,
            internal: false,
            source: CommentSource::Web,
            message_id: None,
            ingest_id: None,
            now: T0,
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let view = db.store.ticket_view(id).await.unwrap().unwrap();
    let c = view.comments.iter().find(|c| c.id == comment).unwrap();
    assert_eq!(c.source, CommentSource::Web);
    assert_eq!(c.source, "web");
    assert_eq!(
        (c.author.as_str(), c.author_name.as_str()),
        ("bob@customer.test", "bob")
    );
    assert_eq!(c.body, "Written on the portal");
    let json = serde_json::to_value(ticketgate::api::wire::TicketView::from(view)).unwrap();
    assert_eq!(json["comments"][0]["source"], "web");
}

async fn ticket_ids(db: &Db, filter: TicketFilter) -> Vec<i64> {
    db.store
        .list_tickets(&filter)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect()
}

/// A ticket of `requester`'s with no follower and no org attached.
async fn bare_ticket(db: &Db, subject: &str, requester: &User, org: Option<i64>) -> i64 {
    let mut tx = db.store.begin().await.unwrap();
    let id = tx
        .insert_ticket(&NewTicket {
            subject: subject.into(),
            status: Status::New,
            requester_id: requester.id,
            org_id: org,
            root_message_id: None,
            now: T0,
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    id
}

async fn a_customer_lists_the_tickets_they_created_follow_or_share_by_org(db: &Db) {
    let w = world(db).await;
    // alice's, attached to Site A (and followed by her, as a creator).
    let alices = ticket(db, &w, "alice's", T0).await;
    // carol's in Other Corp; alice follows it.
    let followed = bare_ticket(db, "followed", &w.carol, Some(w.other)).await;
    let carols = bare_ticket(db, "carol's", &w.carol, Some(w.other)).await;
    // bob's, no follower row and no org attached: his as its requester.
    let bobs = bare_ticket(db, "bob's", &w.bob, None).await;
    // Site A is its org column, but detached from it: ticket_orgs decides.
    let detached = bare_ticket(db, "detached", &w.dave, Some(w.site_a)).await;
    let mut tx = db.store.begin().await.unwrap();
    tx.add_follower(followed, w.alice.id, FollowerSource::Share, T0)
        .await
        .unwrap();
    tx.attach_org(followed, w.other).await.unwrap();
    tx.attach_org(carols, w.other).await.unwrap();
    tx.commit().await.unwrap();

    let sees = |u: &User| TicketFilter {
        visible_to: Some(Visibility {
            user: u.id,
            org: u.org_id,
        }),
        ..Default::default()
    };
    assert_eq!(ticket_ids(db, sees(&w.alice)).await, [alices, followed]);
    assert_eq!(
        ticket_ids(db, sees(&w.bob)).await,
        [alices, bobs],
        "org, created"
    );
    assert_eq!(ticket_ids(db, sees(&w.carol)).await, [followed, carols]);
    assert_eq!(ticket_ids(db, sees(&w.dave)).await, [detached], "requested");
    assert!(ticket_ids(db, sees(&w.sam)).await.is_empty());
    assert!(
        !ticket_ids(db, sees(&w.alice)).await.contains(&detached),
        "not through tickets.org_id alone"
    );
    // No visibility: everything (staff); paging as before.
    assert_eq!(ticket_ids(db, TicketFilter::default()).await.len(), 5);
    assert_eq!(
        ticket_ids(
            db,
            TicketFilter {
                limit: Some(1),
                after: Some(alices),
                ..sees(&w.bob)
            }
        )
        .await,
        [bobs]
    );
    // Combined with the other filters.
    assert_eq!(
        ticket_ids(
            db,
            TicketFilter {
                text: Some("CAROL".into()),
                ..sees(&w.carol)
            }
        )
        .await,
        [carols]
    );
    assert!(
        ticket_ids(
            db,
            TicketFilter {
                text: Some("carol".into()),
                ..sees(&w.alice)
            }
        )
        .await
        .is_empty()
    );
}

async fn ticket_search_is_case_insensitive_and_takes_wildcards_literally(db: &Db) {
    let w = world(db).await;
    let mut id = std::collections::HashMap::new();
    for subject in [
        "Printer on FIRE",
        "100% broken",
        "100 percent fine",
        "a_b",
        "axb",
        r"C:\temp is full",
        "C:temp",
        "プリンター 火事",
    ] {
        id.insert(subject, bare_ticket(db, subject, &w.alice, None).await);
    }
    let search = |text: &str| {
        ticket_ids(
            db,
            TicketFilter {
                text: Some(text.into()),
                ..Default::default()
            },
        )
    };
    assert_eq!(search("fire").await, [id["Printer on FIRE"]]);
    assert_eq!(search("pRINTER ON f").await, [id["Printer on FIRE"]]);
    assert_eq!(search("100%").await, [id["100% broken"]]);
    assert_eq!(search("%").await, [id["100% broken"]]);
    assert_eq!(search("a_b").await, [id["a_b"]]);
    assert_eq!(search("_").await, [id["a_b"]]);
    assert_eq!(search(r"c:\t").await, [id[r"C:\temp is full"]]);
    assert_eq!(search("火事").await, [id["プリンター 火事"]]);
    assert!(search("printer fire").await.is_empty());
    assert_eq!(
        search("").await.len(),
        8,
        "an empty piece is in every subject"
    );
    let long = "x".repeat(TEXT_FILTER_MAX + 1);
    let refused = db
        .store
        .list_tickets(&TicketFilter {
            text: Some(long),
            ..Default::default()
        })
        .await;
    assert!(
        matches!(refused, Err(StoreError::Invalid(_))),
        "{refused:?}"
    );
}

async fn tickets_are_filtered_by_priority(db: &Db) {
    let w = world(db).await;
    let one = ticket(db, &w, "one", T0).await;
    let two = ticket(db, &w, "two", T0).await;
    let three = ticket(db, &w, "three", T0).await;
    let mut tx = db.store.begin().await.unwrap();
    tx.set_priority(one, Priority::P1, T0).await.unwrap();
    tx.set_priority(three, Priority::P1, T0).await.unwrap();
    tx.set_priority(two, Priority::P3, T0).await.unwrap();
    tx.commit().await.unwrap();
    let with = |p: Priority| TicketFilter {
        priority: Some(p),
        ..Default::default()
    };
    assert_eq!(ticket_ids(db, with(Priority::P1)).await, [one, three]);
    assert_eq!(ticket_ids(db, with(Priority::P3)).await, [two]);
    assert!(ticket_ids(db, with(Priority::P2)).await.is_empty());
    assert_eq!(
        ticket_ids(
            db,
            TicketFilter {
                status: Some(Status::New),
                text: Some("THREE".into()),
                ..with(Priority::P1)
            }
        )
        .await,
        [three]
    );
}

/// A database made before the portal migration (SQLite 0007, PostgreSQL
/// 0004) upgrades with its comments as they were, large ones included; then
/// a comment from the portal is accepted.
async fn an_existing_database_keeps_its_comments_through_the_web_migration(db: &Db) {
    let w = legacy_world(db).await;
    let id = ticket(db, &w, "before", T0).await;
    let large: String = "火事 fire\n".repeat(150_000);
    let mut tx = db.store.begin().await.unwrap();
    tx.put_blob(&"cc".repeat(32), b"%PDF-1.7").await.unwrap();
    let mut comments = Vec::new();
    for (n, (body, source, internal)) in [
        ("Printer on fire", CommentSource::Email, false),
        ("internal note", CommentSource::Api, true),
        ("Status set by a rule", CommentSource::System, false),
        (large.as_str(), CommentSource::Email, false),
    ]
    .into_iter()
    .enumerate()
    {
        comments.push(
            tx.insert_comment(&NewComment {
                ticket_id: id,
                author_id: if internal { w.sam.id } else { w.alice.id },
                body,
                signature: (n == 0).then_some("-- Alice"),
                quoted: Some("> earlier"),
                internal,
                source,
                message_id: Some(mid(&format!("<c{n}@customer.test>"))),
                ingest_id: None,
                now: T0 + Duration::from_secs(n as u64),
            })
            .await
            .unwrap(),
        );
    }
    tx.insert_attachment(&NewAttachment {
        comment_id: comments[0],
        filename: "fire.pdf".into(),
        content_type: "application/pdf".into(),
        size: 8,
        sha256: "cc".repeat(32),
    })
    .await
    .unwrap();
    tx.set_release(id, "5.2.1", T0).await.unwrap();
    tx.commit().await.unwrap();
    // Read by the comments' own statement: the ticket's now names columns
    // later migrations add.
    let mut before = Vec::new();
    for &c in &comments {
        before.push(db.store.comment_body(c).await.unwrap());
    }

    db.store.migrate().await.unwrap();

    let after = db.store.ticket_view(id).await.unwrap().unwrap();
    assert_eq!(after.comments.len(), 4);
    assert!(after.comments[3].body == large, "the large body differs");
    let bodies: Vec<Option<String>> = after
        .comments
        .iter()
        .map(|c| Some(c.body.clone()))
        .collect();
    assert_eq!(bodies, before);
    assert_eq!(after.comments[0].signature.as_deref(), Some("-- Alice"));
    assert_eq!(after.release.as_deref(), Some("5.2.1"));
    for &c in &comments {
        let body = db.store.comment_body(c).await.unwrap();
        assert!(body.is_some_and(|b| !b.is_empty()), "comment {c}");
    }
    assert_eq!(db.store.comment_files(comments[0]).await.unwrap().len(), 1);
    let mut tx = db.store.begin().await.unwrap();
    tx.insert_comment(&NewComment {
        ticket_id: id,
        author_id: w.alice.id,
        body: "from the portal",
        signature: None,
        quoted: None,
        internal: false,
        source: CommentSource::Web,
        message_id: None,
        ingest_id: None,
        now: T0,
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let view = db.store.ticket_view(id).await.unwrap().unwrap();
    assert_eq!(view.comments[4].source, CommentSource::Web);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_an_existing_database_keeps_its_comments_through_the_web_migration() {
    an_existing_database_keeps_its_comments_through_the_web_migration(&Db::sqlite_at(6).await)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_an_existing_database_keeps_its_comments_through_the_web_migration() {
    an_existing_database_keeps_its_comments_through_the_web_migration(&Db::postgres_at(3).await)
        .await;
}

/// Every kind of event, written through the store and read back as the
/// ticket JSON shows it: `data` is exactly the payload earlier versions
/// stored for that kind (the literals below), so their rows and the JSON
/// that scripts read stay as they were.
async fn events_of_every_kind_read_back_as_earlier_versions_wrote_them(db: &Db) {
    let w = world(db).await;
    let id = ticket(db, &w, "events", T0).await;
    let email = |s: &str| EmailAddress::parse(s).unwrap();
    let version = |s: &str| ticketgate::domain::version::Version::parse(s).unwrap();
    let cases: Vec<(Event, &str, &str)> = vec![
        (
            Event::TicketCreated {
                subject: "Printer on fire".into(),
                message_id: Some(mid("<a@customer.test>")),
            },
            "ticket_created",
            r#"{"message_id":"<a@customer.test>","subject":"Printer on fire"}"#,
        ),
        (
            Event::CommentAdded {
                comment: 1,
                internal: false,
                source: CommentSource::Email,
                message_id: Some(mid("<b@customer.test>")),
                thread: Some("in_reply_to <a@customer.test>".into()),
            },
            "comment_added",
            r#"{"comment":1,"internal":false,"message_id":"<b@customer.test>","source":"email","thread":"in_reply_to <a@customer.test>"}"#,
        ),
        (
            Event::CommentAdded {
                comment: 2,
                internal: true,
                source: CommentSource::Web,
                message_id: None,
                thread: None,
            },
            "comment_added",
            r#"{"comment":2,"internal":true,"source":"web"}"#,
        ),
        (
            Event::StatusChanged {
                from: Status::New,
                to: Status::Escalated,
                cause: Cause::Rule("escalate".into()),
                reason: None,
            },
            "status_changed",
            r#"{"cause":"rule: escalate","from":"new","to":"escalated"}"#,
        ),
        (
            Event::PrioritySet {
                priority: Priority::P1,
                sla_name: "Critical".into(),
                sla_response: "1 hour".into(),
                sla_resolve: String::new(),
            },
            "priority_set",
            r#"{"priority":"P1","sla_name":"Critical","sla_response":"1 hour"}"#,
        ),
        (
            Event::ReleaseNoted {
                release: version("5.2 beta"),
            },
            "release_noted",
            r#"{"release":"5.2 beta"}"#,
        ),
        (
            Event::FollowerAdded {
                email: email("bob@customer.test"),
                source: FollowerSource::Cc,
            },
            "follower_added",
            r#"{"email":"bob@customer.test","source":"cc"}"#,
        ),
        (
            Event::FollowerRemoved {
                email: email("bob@customer.test"),
            },
            "follower_removed",
            r#"{"email":"bob@customer.test"}"#,
        ),
        (
            Event::Mentioned {
                email: email("sam@example.test"),
            },
            "mentioned",
            r#"{"email":"sam@example.test"}"#,
        ),
        (
            Event::OrgAdded {
                org: "site-a".into(),
            },
            "org_added",
            r#"{"org":"site-a"}"#,
        ),
        (
            Event::OrgRemoved {
                org: "site-a".into(),
            },
            "org_removed",
            r#"{"org":"site-a"}"#,
        ),
        (
            Event::RecipientBouncing {
                email: email("gone@customer.test"),
                message_id: mid("<tg.1@example.test>"),
            },
            "recipient_bouncing",
            r#"{"email":"gone@customer.test","message_id":"<tg.1@example.test>"}"#,
        ),
        (
            Event::StatusChanged {
                from: Status::Blocked,
                to: Status::Closed,
                cause: Cause::Rule("close unanswered".into()),
                reason: Some(ticketgate::domain::ticket::CloseReason::NoResponse),
            },
            "status_changed",
            r#"{"cause":"rule: close unanswered","from":"blocked","reason":"no_response","to":"closed"}"#,
        ),
        (
            Event::OwnerSet {
                email: email("sam@example.test"),
            },
            "owner_set",
            r#"{"email":"sam@example.test"}"#,
        ),
        (
            Event::ClockBreached {
                clock: ticketgate::domain::ticket::Clock::Response,
                due: "2026-12-08T10:00:00.000000Z".into(),
            },
            "clock_breached",
            r#"{"clock":"response","due":"2026-12-08T10:00:00.000000Z"}"#,
        ),
        (
            Event::ReminderSent {
                rule: "remind".into(),
                template: "reminder".into(),
            },
            "reminder_sent",
            r#"{"rule":"remind","template":"reminder"}"#,
        ),
    ];
    let mut tx = db.store.begin().await.unwrap();
    for (event, _, _) in &cases {
        tx.insert_event(&NewEvent {
            ticket_id: id,
            event: event.clone(),
            actor_id: Some(w.sam.id),
            now: T0,
        })
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let view = db.store.ticket_view(id).await.unwrap().unwrap();
    assert_eq!(view.events.len(), cases.len());
    let json = serde_json::to_value(ticketgate::api::wire::TicketView::from(view.clone())).unwrap();
    for (n, (event, kind, data)) in cases.iter().enumerate() {
        assert_eq!(view.events[n].event.known(), Some(event), "{kind}");
        assert_eq!(json["events"][n]["kind"], *kind);
        let stored: serde_json::Value = serde_json::from_str(data).unwrap();
        assert_eq!(json["events"][n]["data"], stored, "{kind}");
    }
}

/// `ticketgate check` reads what an upgrade would apply without applying it.
async fn pending_migrations_are_listed_without_being_applied(db: &Db, shipped: usize) {
    let pending = db.store.pending_migrations().await.unwrap();
    assert!(
        !pending.is_empty() && pending.len() < shipped,
        "{pending:?}"
    );
    assert_eq!(db.store.pending_migrations().await.unwrap(), pending);
    db.store.migrate().await.unwrap();
    assert_eq!(
        db.store.pending_migrations().await.unwrap(),
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_pending_migrations_are_listed_without_being_applied() {
    let shipped = sqlx::migrate!("./migrations/sqlite").iter().count();
    pending_migrations_are_listed_without_being_applied(&Db::sqlite_at(6).await, shipped).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_pending_migrations_are_listed_without_being_applied() {
    let shipped = sqlx::migrate!("./migrations/postgres").iter().count();
    pending_migrations_are_listed_without_being_applied(&Db::postgres_at(3).await, shipped).await;
}

async fn minting_a_mailed_link_again_replaces_the_unused_one_and_notes_only_its_hash(db: &Db) {
    let w = world(db).await;
    enqueue(db, &[outbox_row(1, &w.alice, None)]).await;
    let row = db.store.list_outbox().await.unwrap().remove(0);
    let s = &db.store;
    let mint = |n: u8| NewWebLink {
        token_hash: hash(n),
        user: w.alice.id,
        purpose: LinkPurpose::SignIn,
        now: T0,
        expires: T0 + HOUR,
    };
    let context = |n: u8| serde_json::json!({ "event": { "link": { "hash": hash(n) } } });
    s.mint_web_link(row.id, None, &mint(1), &context(1))
        .await
        .unwrap();
    // A retry: the first link goes, the second works.
    s.mint_web_link(row.id, Some(&hash(1)), &mint(2), &context(2))
        .await
        .unwrap();
    assert!(s.take_web_link(&hash(1), T0).await.unwrap().is_none());
    assert_eq!(
        s.list_outbox().await.unwrap()[0].context,
        context(2),
        "the row names the new hash"
    );
    assert!(s.take_web_link(&hash(2), T0).await.unwrap().is_some());
    // A link already used is not revived nor removed by a later mint.
    s.mint_web_link(row.id, Some(&hash(2)), &mint(3), &context(3))
        .await
        .unwrap();
    assert!(s.take_web_link(&hash(2), T0).await.unwrap().is_none());
    assert!(s.take_web_link(&hash(3), T0).await.unwrap().is_some());
}

async fn released_rows_are_queued_again_without_counting_an_attempt(db: &Db) {
    let w = world(db).await;
    enqueue(
        db,
        &[outbox_row(1, &w.alice, None), outbox_row(2, &w.bob, None)],
    )
    .await;
    let lease = Duration::from_secs(300);
    let claimed = db.store.claim_outbox(T0, lease, 10).await.unwrap();
    db.store
        .record_attempts(
            &[Attempt {
                id: claimed[1].id,
                result: AttemptResult::Retry {
                    at: T0,
                    error: "421 later".into(),
                },
            }],
            T0,
        )
        .await
        .unwrap();
    let again = db.store.claim_outbox(T0, lease, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    db.store
        .release_outbox(&[claimed[0].id, claimed[1].id])
        .await
        .unwrap();
    let rows = db.store.list_outbox().await.unwrap();
    let seen: Vec<_> = rows.iter().map(|r| (r.status, r.attempts)).collect();
    assert_eq!(
        seen,
        [(OutboxStatus::Queued, 0), (OutboxStatus::Failed, 1)],
        "due at once, before their lease would have run out"
    );
    assert_eq!(db.store.claim_outbox(T0, lease, 10).await.unwrap().len(), 2);
}

/// Rows an earlier version queued with a finished sign-in link: once sent,
/// the link leaves the database on upgrade; a row still waiting keeps it.
async fn an_upgrade_drops_the_links_of_sign_in_mail_already_sent(db: &Db) {
    let w = legacy_world(db).await;
    let legacy = |n: usize| NewOutbox {
        template: "sign_in".into(),
        context: serde_json::json!({
            "event": { "link": format!("http://portal.test/login/tg_{}", hash(n as u8)), "minutes": 15 }
        }),
        ..outbox_row(n, &w.alice, None)
    };
    enqueue(db, &[legacy(1), legacy(2), outbox_row(3, &w.bob, None)]).await;
    let claimed = db
        .store
        .claim_outbox(T0, Duration::from_secs(60), 1)
        .await
        .unwrap();
    db.store
        .record_attempts(
            &[Attempt {
                id: claimed[0].id,
                result: AttemptResult::Sent,
            }],
            T0,
        )
        .await
        .unwrap();

    db.store.migrate().await.unwrap();

    let rows = db.store.list_outbox().await.unwrap();
    assert_eq!(
        rows[0].context,
        serde_json::json!({ "event": { "minutes": 15 } }),
        "the sent row keeps no link"
    );
    assert_eq!(
        rows[1].context,
        legacy(2).context,
        "a waiting row keeps its link"
    );
    assert_eq!(rows[2].context, outbox_row(3, &w.bob, None).context);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_an_upgrade_drops_the_links_of_sign_in_mail_already_sent() {
    an_upgrade_drops_the_links_of_sign_in_mail_already_sent(&Db::sqlite_at(7).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_an_upgrade_drops_the_links_of_sign_in_mail_already_sent() {
    an_upgrade_drops_the_links_of_sign_in_mail_already_sent(&Db::postgres_at(4).await).await;
}

/// The rows of `_sqlx_migrations` but for when and how long: (version,
/// description, success, checksum).
async fn sqlx_migration_rows(store: &SqliteStore) -> Vec<(i64, String, bool, Vec<u8>)> {
    store
        .with_connection(|c| {
            c.prepare(
                "SELECT version, description, success, checksum FROM _sqlx_migrations ORDER BY version",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect()
        })
        .await
        .unwrap()
}

/// A database made and migrated by a release on the sqlx SQLite driver
/// (`fixtures/sqlite/made_by_sqlx.sql`, its `.dump`: two messages ingested)
/// opens as it was: its `_sqlx_migrations` rows are this release's (nothing
/// is pending, migrating applies nothing), and its tickets read back. A new
/// database records its migrations alike, in the same table; a changed
/// migration is refused as sqlx refused it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_a_database_made_by_the_sqlx_driver_opens_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let dump = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/sqlite/made_by_sqlx.sql"
    ))
    .unwrap();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(&dump)
        .unwrap();
    let old = SqliteStore::open(
        &format!("sqlite://{}", path.display()),
        ticketgate::store::Missing::Refuse,
    )
    .await
    .unwrap();
    // It was made when 8 migrations had shipped: those added since are
    // pending, and applying them leaves the earlier rows as they were.
    let recorded = sqlx_migration_rows(&old).await;
    assert_eq!(recorded.len(), 8);
    let later: Vec<String> = sqlx::migrate!("./migrations/sqlite")
        .iter()
        .filter(|m| m.version > 8)
        .map(|m| format!("{} {}", m.version, m.description))
        .collect();
    assert_eq!(old.pending_migrations().await.unwrap(), later);
    old.migrate().await.unwrap();
    let applied = sqlx_migration_rows(&old).await;
    assert_eq!(applied[..8], recorded[..], "earlier rows unchanged");
    assert_eq!(
        applied.len(),
        sqlx::migrate!("./migrations/sqlite").iter().count()
    );
    old.migrate().await.unwrap();
    assert_eq!(
        sqlx_migration_rows(&old).await,
        applied,
        "nothing applied twice"
    );
    let view = old.ticket_view(1).await.unwrap().unwrap();
    assert_eq!(
        (view.subject.as_str(), view.requester.as_str()),
        ("Request 0", "c0@customer.test")
    );
    assert_eq!(view.comments.len(), 2, "{:?}", view.comments);
    assert!(view.comments[1].body.starts_with("The quarterly export"));
    let mut tx = old.begin().await.unwrap();
    let id = MessageId::parse("<m1-fixture@customer.test>").unwrap();
    assert_eq!(
        tx.tickets_of(std::slice::from_ref(&id)).await.unwrap()[&id],
        1
    );
    drop(tx);

    let new_dir = tempfile::tempdir().unwrap();
    let new = SqliteStore::connect(&format!(
        "sqlite://{}",
        new_dir.path().join("new.db").display()
    ))
    .await
    .unwrap();
    new.migrate().await.unwrap();
    assert_eq!(sqlx_migration_rows(&new).await, applied);
    let table = "SELECT sql FROM sqlite_master WHERE name = '_sqlx_migrations'";
    let schema = |s: &SqliteStore| {
        let s = s.clone();
        async move {
            s.with_connection(|c| c.query_row(table, [], |r| r.get::<_, String>(0)))
                .await
                .unwrap()
        }
    };
    assert_eq!(schema(&new).await, schema(&old).await);

    old.with_connection(|c| {
        c.execute(
            "UPDATE _sqlx_migrations SET checksum = x'00' WHERE version = 2",
            [],
        )
    })
    .await
    .unwrap();
    let refused = old.migrate().await.unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("migration 2 was previously applied but has been modified"),
        "{refused}"
    );
}

/// `merge_ticket` and `move_comment`, in a look-ahead batch whose writes
/// are still held (PostgreSQL) and whose ticket states were read before:
/// what they move reads back at once, in the transaction and after it.
async fn a_merge_and_a_move_carry_comments_followers_orgs_and_refs(db: &Db) {
    let w = world(db).await;
    let a = ticket(db, &w, "merge-a", T0).await;
    let mut tx = db.store.begin().await.unwrap();
    tx.look_ahead(&Lookahead {
        deliveries: 2,
        tickets: vec![a],
        ..Lookahead::default()
    })
    .await
    .unwrap();
    let before = tx.ticket_state(a).await.unwrap().unwrap();
    assert_eq!(before.followers.len(), 1);
    let b_mid = mid("<merge-b@other.test>");
    let b = tx
        .insert_ticket(&NewTicket {
            subject: "merge-b".into(),
            status: Status::New,
            requester_id: w.carol.id,
            org_id: Some(w.other),
            root_message_id: Some(b_mid.clone()),
            now: T0,
        })
        .await
        .unwrap();
    for (user, source) in [
        (w.carol.id, FollowerSource::Creator),
        (w.alice.id, FollowerSource::Follow),
        (w.bob.id, FollowerSource::Share),
    ] {
        tx.add_follower(b, user, source, T0).await.unwrap();
    }
    tx.attach_org(b, w.other).await.unwrap();
    let comment = tx
        .insert_comment(&NewComment {
            ticket_id: b,
            author_id: w.carol.id,
            body: "on b",
            signature: None,
            quoted: None,
            internal: false,
            source: CommentSource::Email,
            message_id: Some(b_mid.clone()),
            ingest_id: None,
            now: T0,
        })
        .await
        .unwrap();
    tx.remember_refs(std::slice::from_ref(&b_mid), b, RefKind::Received, T0)
        .await
        .unwrap();

    tx.merge_ticket(b, a, T0).await.unwrap();
    let after = tx.ticket_state(a).await.unwrap().unwrap();
    let mut followers: Vec<(i64, FollowerSource)> =
        after.followers.iter().map(|f| (f.user, f.source)).collect();
    followers.sort_unstable_by_key(|f| f.0);
    assert_eq!(
        followers,
        [
            // Alice keeps `creator` on her own ticket; Carol follows.
            (w.alice.id, FollowerSource::Creator),
            (w.bob.id, FollowerSource::Share),
            (w.carol.id, FollowerSource::Follow),
        ]
    );
    let mut orgs = after.orgs.clone();
    orgs.sort_unstable();
    let mut expected = vec![w.site_a, w.other];
    expected.sort_unstable();
    assert_eq!(orgs, expected);
    assert_eq!(
        tx.tickets_of(std::slice::from_ref(&b_mid)).await.unwrap()[&b_mid],
        a
    );
    let place = tx.comment_place(comment).await.unwrap().unwrap();
    assert_eq!(
        (place.ticket, place.author_id, place.internal),
        (a, w.carol.id, false)
    );
    // B keeps its own people.
    assert_eq!(
        tx.ticket_state(b).await.unwrap().unwrap().followers.len(),
        3
    );
    // Where it went is the desk's, read and written whole on both backends.
    let mut desk = tx.desk(b).await.unwrap().unwrap();
    assert_eq!((desk.merged_into, desk.resolve_spent), (None, None));
    desk.merged_into = Some(a);
    tx.set_desk(b, &desk).await.unwrap();
    assert_eq!(tx.desk(b).await.unwrap().unwrap().merged_into, Some(a));

    tx.move_comment(comment, b).await.unwrap();
    assert_eq!(tx.comment_place(comment).await.unwrap().unwrap().ticket, b);
    assert_eq!(
        tx.tickets_of(std::slice::from_ref(&b_mid)).await.unwrap()[&b_mid],
        b
    );
    assert!(tx.comment_place(comment + 1000).await.unwrap().is_none());
    tx.commit().await.unwrap();

    let a_view = db.store.ticket_view(a).await.unwrap().unwrap();
    assert!(a_view.comments.iter().all(|c| c.id != comment));
    let b_view = db.store.ticket_view(b).await.unwrap().unwrap();
    let moved = b_view.comments.iter().find(|c| c.id == comment).unwrap();
    assert_eq!(moved.message_id.as_deref(), Some("<merge-b@other.test>"));
    let mut tx = db.store.begin().await.unwrap();
    assert_eq!(
        tx.tickets_of(std::slice::from_ref(&b_mid)).await.unwrap()[&b_mid],
        b
    );
    assert_eq!(
        tx.ticket_state(a).await.unwrap().unwrap().followers.len(),
        3
    );
}

/// The desk's reads on both backends: owner and breach filters, the order
/// by next due time (the response's until answered, then the
/// resolution's; none last), and an alarm's claim taken once.
async fn the_desk_lists_by_owner_breach_and_due_time_and_claims_each_alarm_once(db: &Db) {
    let w = world(db).await;
    let (a, b, c) = (
        ticket(db, &w, "a", T0).await,
        ticket(db, &w, "b", T0).await,
        ticket(db, &w, "c", T0).await,
    );
    let hour = time::Duration::hours(1);
    let mut tx = db.store.begin().await.unwrap();
    // a: answered, resolution due in 5 hours; b: response due in 2 hours,
    // owned by Sam; c: nothing due.
    let mut desk = tx.desk(a).await.unwrap().unwrap();
    desk.response_due = Some(T0 + hour);
    desk.responded_at = Some(T0);
    desk.resolve_due = Some(T0 + 5 * hour);
    tx.set_desk(a, &desk).await.unwrap();
    let mut desk = tx.desk(b).await.unwrap().unwrap();
    desk.response_due = Some(T0 + 2 * hour);
    desk.owner = Some(w.sam.id);
    tx.set_desk(b, &desk).await.unwrap();
    assert!(
        tx.claim_alarm(b, "response_warn", T0 + 2 * hour, T0)
            .await
            .unwrap()
    );
    assert!(
        !tx.claim_alarm(b, "response_warn", T0 + 2 * hour, T0)
            .await
            .unwrap()
    );
    assert!(
        tx.claim_alarm(b, "response_warn", T0 + 3 * hour, T0)
            .await
            .unwrap(),
        "a moved due time is a new alarm"
    );
    tx.commit().await.unwrap();

    let list = |f: TicketFilter| {
        let store = db.store.clone();
        async move {
            store
                .list_tickets(&f)
                .await
                .unwrap()
                .iter()
                .map(|t| t.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(TicketFilter {
            by_due: true,
            ..Default::default()
        })
        .await,
        [b, a, c]
    );
    assert_eq!(
        list(TicketFilter {
            by_due: true,
            limit: Some(1),
            skip: 1,
            ..Default::default()
        })
        .await,
        [a]
    );
    let sam = ticketgate::store::OwnerFilter::Is(w.sam.email.clone());
    assert_eq!(
        list(TicketFilter {
            owner: Some(sam),
            ..Default::default()
        })
        .await,
        [b]
    );
    assert_eq!(
        list(TicketFilter {
            owner: Some(ticketgate::store::OwnerFilter::Nobody),
            ..Default::default()
        })
        .await,
        [a, c]
    );
    // The team the owner form offers: staff, and only staff.
    let staff = db.store.list_staff().await.unwrap();
    assert!(staff.iter().all(|u| u.role == Role::Staff), "{staff:?}");
    assert!(staff.iter().any(|u| u.id == w.sam.id));
    assert!(!staff.iter().any(|u| u.id == w.alice.id));
    // At T0 + 3h: b's response is overdue; a was answered, its resolution not yet due.
    assert_eq!(
        list(TicketFilter {
            breached_at: Some(T0 + 3 * hour),
            ..Default::default()
        })
        .await,
        [b]
    );
    assert_eq!(
        list(TicketFilter {
            breached_at: Some(T0 + 6 * hour),
            ..Default::default()
        })
        .await,
        [a, b]
    );
}

/// What a list's plan must show for its filter: the indexes that answer it
/// (all of them), and whether a walk over every ticket is allowed (only
/// where no index can answer: a piece of the subject, the due order of
/// every ticket).
struct PlanCase {
    name: String,
    sql: &'static str,
    indexes: &'static [&'static str],
    /// The index that hands out the statement's order (id, last update),
    /// which PostgreSQL may walk instead, stopping at the limit.
    order_index: Option<&'static str>,
    may_scan: bool,
}

fn plan_cases(w: &World) -> Vec<PlanCase> {
    use ticketgate::store::{OwnerFilter, ticket_list_statement, ticket_scan_statements};
    let visible = |org: Option<i64>| Visibility {
        user: w.alice.id,
        org,
    };
    let filters: Vec<(&str, TicketFilter, &'static [&'static str])> = vec![
        ("no filter", TicketFilter::default(), &[]),
        (
            "status",
            TicketFilter {
                status: Some(Status::Blocked),
                ..Default::default()
            },
            &["tickets_status"],
        ),
        (
            "open",
            TicketFilter {
                open: Some(true),
                ..Default::default()
            },
            &["tickets_status"],
        ),
        (
            "closed",
            TicketFilter {
                open: Some(false),
                ..Default::default()
            },
            &["tickets_status"],
        ),
        (
            "org",
            TicketFilter {
                org: Some("site-a".into()),
                ..Default::default()
            },
            &["ticket_orgs_org"],
        ),
        (
            "requester",
            TicketFilter {
                requester: Some(w.alice.email.clone()),
                ..Default::default()
            },
            &["tickets_requester"],
        ),
        (
            "priority",
            TicketFilter {
                priority: Some(Priority::P2),
                ..Default::default()
            },
            &["tickets_priority"],
        ),
        (
            "visible to a customer with an org",
            TicketFilter {
                visible_to: Some(visible(Some(w.site_a))),
                ..Default::default()
            },
            &["tickets_requester", "followers_user", "ticket_orgs_org"],
        ),
        (
            "visible to a customer without one",
            TicketFilter {
                visible_to: Some(visible(None)),
                ..Default::default()
            },
            &["tickets_requester", "followers_user"],
        ),
        (
            "owner",
            TicketFilter {
                owner: Some(OwnerFilter::Is(w.sam.email.clone())),
                ..Default::default()
            },
            &["tickets_owner"],
        ),
        (
            "unassigned",
            TicketFilter {
                owner: Some(OwnerFilter::Nobody),
                ..Default::default()
            },
            &["tickets_owner"],
        ),
        (
            "breached",
            TicketFilter {
                breached_at: Some(T0),
                ..Default::default()
            },
            &["tickets_status"],
        ),
        (
            "search",
            TicketFilter {
                text: Some("%printer%".into()),
                ..Default::default()
            },
            &[],
        ),
    ];
    let mut cases = Vec::new();
    for (label, filter, indexes) in filters {
        for order in ["id", "update", "due"] {
            let f = TicketFilter {
                newest_first: order == "update",
                by_due: order == "due",
                limit: Some(50),
                ..filter.clone()
            };
            let none = label == "no filter";
            cases.push(PlanCase {
                name: format!("{label}, {order} order"),
                sql: ticket_list_statement(&f),
                indexes: match (none, order) {
                    (true, "id") => &[],
                    (true, "update") => &["tickets_updated"],
                    _ => indexes,
                },
                order_index: match order {
                    "id" => Some("tickets_pkey"),
                    "update" => Some("tickets_updated"),
                    _ => None,
                },
                may_scan: label == "search" || (none && order == "due"),
            });
        }
    }
    for (name, sql) in ticket_scan_statements() {
        let indexes: &'static [&'static str] = match name {
            "#list of a customer" => &["followers_user", "ticket_orgs_org"],
            "#list mine" | "#list unassigned" => &["tickets_owner"],
            "due alarms" => &["tickets_alarm"],
            _ => &["tickets_status"],
        };
        cases.push(PlanCase {
            name: name.to_string(),
            sql,
            indexes,
            order_index: (name.starts_with("#list") || name == "idle tickets")
                .then_some("tickets_updated"),
            may_scan: false,
        });
    }
    cases
}

/// The tables that grow with the tickets, and their names in the list
/// statements.
const TICKET_SIZED: &[&str] = &[
    "tickets",
    "t",
    "vr",
    "ticket_orgs",
    "x",
    "vx",
    "followers",
    "f",
    "vf",
];

/// The highest `$N` of a statement: how many values `EXECUTE` passes.
fn parameters(sql: &str) -> usize {
    sql.match_indices('$')
        .filter_map(|(i, _)| {
            sql[i + 1..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .ok()
        })
        .max()
        .unwrap_or(0)
}

/// The plan of each list statement, one line a step. SQLite's as it plans
/// any store: no statistics are gathered, so the plan is the same at any
/// size. PostgreSQL's generic plan (the one a prepared statement settles
/// on, whatever its values) over a desk of `PG_TICKETS`, analysed, with
/// sequential scans priced out: one left in a plan means no index could
/// answer.
async fn plans(db: &Db, w: &World, cases: &[PlanCase]) -> Vec<Vec<String>> {
    match &db.keep {
        Keep::Sqlite(_, store) => {
            let sqls: Vec<&'static str> = cases.iter().map(|c| c.sql).collect();
            store
                .with_connection(move |c| {
                    sqls.iter()
                        .map(|sql| {
                            // Unbound parameters are NULL: the plan is the same.
                            let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                            let mut rows = stmt.raw_query();
                            let mut lines = Vec::new();
                            while let Some(row) = rows.next()? {
                                lines.push(row.get::<_, String>(3)?);
                            }
                            Ok(lines)
                        })
                        .collect()
                })
                .await
                .unwrap()
        }
        Keep::Postgres(test_db) => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&test_db.url).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(a_desk_of_tickets(w)))
                .execute(&mut conn)
                .await
                .unwrap();
            sqlx::raw_sql(
                "ANALYZE; SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off",
            )
            .execute(&mut conn)
            .await
            .unwrap();
            let mut out = Vec::new();
            for (n, case) in cases.iter().enumerate() {
                let prepare = format!("PREPARE list{n} AS {}", case.sql);
                sqlx::raw_sql(sqlx::AssertSqlSafe(prepare))
                    .execute(&mut conn)
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e}", case.name));
                let nulls = vec!["NULL"; parameters(case.sql)].join(", ");
                let explain = if nulls.is_empty() {
                    format!("EXPLAIN EXECUTE list{n}")
                } else {
                    format!("EXPLAIN EXECUTE list{n}({nulls})")
                };
                let lines: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(explain))
                    .fetch_all(&mut conn)
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e}", case.name));
                out.push(lines);
            }
            out
        }
    }
}

const PG_TICKETS: usize = 20_000;

/// A desk PostgreSQL plans as a grown one: `PG_TICKETS` tickets of 400
/// customers in 20 organizations, most of them closed, the open ones spread
/// over the statuses, priorities and owners; each followed by its requester
/// and attached to its organization.
fn a_desk_of_tickets(w: &World) -> String {
    format!(
        "INSERT INTO orgs (slug, name, created_at)
           SELECT 'org' || g, 'Org ' || g, now() FROM generate_series(1, 20) g;
         INSERT INTO users (email, name, role, org_id, locale, created_at)
           SELECT 'c' || g || '@many.test', 'C' || g, 'customer',
                  (SELECT id FROM orgs WHERE slug = 'org' || (g % 20 + 1)), 'en', now()
           FROM generate_series(1, 400) g;
         INSERT INTO tickets (subject, status, priority, requester_id, org_id, created_at,
                              updated_at, owner_id, response_due, resolve_due)
           SELECT 'Ticket ' || g,
                  COALESCE((ARRAY['new', 'in_progress', 'blocked', 'escalated'])[g % 20 + 1],
                           'closed'),
                  CASE WHEN g % 3 = 0 THEN 'P' || (g % 4 + 1) END,
                  u.id, u.org_id, now() - interval '1 minute' * ({n} - g),
                  now() - interval '1 minute' * ({n} - g),
                  CASE WHEN g % 20 < 3 AND g % 2 = 0 THEN {sam} END,
                  CASE WHEN g % 3 = 0 THEN now() + interval '1 hour' * (g % 48) END,
                  CASE WHEN g % 3 = 0 THEN now() + interval '1 day' * (g % 7) END
           FROM generate_series(1, {n}) g
           JOIN users u ON u.email = 'c' || (g % 400 + 1) || '@many.test';
         INSERT INTO followers (ticket_id, user_id, source, created_at)
           SELECT id, requester_id, 'creator', created_at FROM tickets;
         INSERT INTO ticket_orgs (ticket_id, org_id)
           SELECT id, org_id FROM tickets WHERE org_id IS NOT NULL;",
        n = PG_TICKETS,
        sam = w.sam.id,
    )
}

/// Every ticket list, with each filter alone and in each order, and the
/// other statements that read tickets, are answered from the filter's
/// index: no plan walks every ticket (SQLite `SCAN t`, PostgreSQL `Seq
/// Scan on tickets`) where an index can answer, and each names the index
/// its filter has. A statement that puts its filters back into one
/// `($N IS NULL OR ...)` fails here.
async fn every_ticket_list_is_answered_from_its_index(db: &Db) {
    let w = world(db).await;
    let cases = plan_cases(&w);
    let plans = plans(db, &w, &cases).await;
    let mut wrong = Vec::new();
    for (case, plan) in cases.iter().zip(&plans) {
        let scans = plan.iter().any(|line| {
            let line = line.trim();
            let walks = TICKET_SIZED.iter().any(|table| {
                let sqlite = line
                    .strip_prefix("SCAN ")
                    .is_some_and(|rest| rest.split(' ').next() == Some(*table));
                sqlite || line.contains(&format!("Seq Scan on {table} "))
            });
            // Walking the index that gives the order, stopping at the limit.
            walks && !case.indexes.iter().any(|index| line.contains(index))
        });
        let named = |index: &str| plan.iter().any(|line| line.contains(index));
        let mut missing: Vec<_> = case.indexes.iter().filter(|i| !named(i)).collect();
        // PostgreSQL weighs the filter's index against the order's by
        // their costs, and may walk the one that gives the order, testing
        // each ticket, up to the limit. Where none gives the order (due
        // time), its plan too must name the filter's.
        if matches!(db.keep, Keep::Postgres(_)) && case.order_index.is_some_and(named) {
            missing.clear();
        }
        if (scans && !case.may_scan) || !missing.is_empty() {
            wrong.push(format!(
                "{} (scans every ticket: {scans}, without {missing:?}):\n  {}\n  {}",
                case.name,
                plan.join("\n  "),
                case.sql
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

/// Sent rows older than the cut are deleted, a batch at a time; rows sent
/// since, and rows not sent (queued, failed, dead), stay. The counts
/// `/metrics` shows are of the rows not sent.
async fn sent_outbox_rows_are_purged_after_they_are_kept(db: &Db) {
    let w = world(db).await;
    let rows: Vec<_> = (0..7).map(|n| outbox_row(n, &w.alice, None)).collect();
    enqueue(db, &rows).await;
    let lease = Duration::from_secs(60);
    let claimed = db.store.claim_outbox(T0, lease, 10).await.unwrap();
    let day = Duration::from_secs(86400);
    let sent = |ids: &[i64]| -> Vec<Attempt> {
        ids.iter()
            .map(|id| Attempt {
                id: *id,
                result: AttemptResult::Sent,
            })
            .collect()
    };
    let id = |n: usize| claimed[n].id;
    // Three sent on day 0, one on day 40; one failed, one dead on day 0;
    // one never claimed back from `sending` is left as it is.
    db.store
        .record_attempts(&sent(&[id(0), id(1), id(2)]), T0)
        .await
        .unwrap();
    db.store
        .record_attempts(&sent(&[id(3)]), T0 + 40 * day)
        .await
        .unwrap();
    db.store
        .record_attempts(
            &[
                Attempt {
                    id: id(4),
                    result: AttemptResult::Retry {
                        at: T0 + day,
                        error: "421 later".into(),
                    },
                },
                Attempt {
                    id: id(5),
                    result: AttemptResult::Dead {
                        error: "550 no".into(),
                        bouncing: None,
                    },
                },
            ],
            T0,
        )
        .await
        .unwrap();
    let mut counts = db.store.outbox_counts().await.unwrap();
    counts.sort_by_key(|(s, _)| s.as_str());
    assert_eq!(
        counts,
        [
            (OutboxStatus::Dead, 1),
            (OutboxStatus::Failed, 1),
            (OutboxStatus::Sending, 1)
        ],
        "sent rows are not counted"
    );

    // Kept 30 days, on day 40: the three of day 0 go, two per statement.
    let cut = T0 + 10 * day;
    assert_eq!(db.store.purge_sent_outbox(cut, 2).await.unwrap(), 2);
    assert_eq!(db.store.purge_sent_outbox(cut, 2).await.unwrap(), 1);
    assert_eq!(db.store.purge_sent_outbox(cut, 2).await.unwrap(), 0);
    let left: Vec<_> = db
        .store
        .list_outbox()
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.id, r.status))
        .collect();
    assert_eq!(
        left,
        [
            (id(3), OutboxStatus::Sent),
            (id(4), OutboxStatus::Failed),
            (id(5), OutboxStatus::Dead),
            (id(6), OutboxStatus::Sending),
        ]
    );
    // What `serve` runs: until none is left; again, nothing.
    let cancel = tokio_util::sync::CancellationToken::new();
    let later = T0 + 41 * day;
    let purged = ticketgate::outbox::purge_sent(&*db.store, later, &cancel)
        .await
        .unwrap();
    assert_eq!(purged, 1);
    assert_eq!(
        ticketgate::outbox::purge_sent(&*db.store, later, &cancel)
            .await
            .unwrap(),
        0
    );
    assert_eq!(db.store.list_outbox().await.unwrap().len(), 3);
}

/// What pages read outside a write (a ticket's access, whom one may
/// mention, the organizations) is what the delivery transaction reads, and
/// is read while a delivery holds the ticket: on SQLite the writer, on
/// PostgreSQL the ticket's row lock.
async fn pages_read_tickets_people_and_organizations_outside_a_write(db: &Db) {
    let w = world(db).await;
    db.store
        .add_org("Third", "third", &["third.test".into(), "3.test".into()])
        .await
        .unwrap();
    let third = db.store.find_org("third").await.unwrap().unwrap();
    db.store.add_org_lead(third.id, w.sam.id).await.unwrap();
    db.store.add_org_lead(third.id, w.alice.id).await.unwrap();
    let id = ticket(db, &w, "access", T0).await;
    let mut tx = db.store.begin().await.unwrap();
    tx.add_follower(id, w.carol.id, FollowerSource::Share, T0)
        .await
        .unwrap();
    tx.attach_org(id, w.other).await.unwrap();
    tx.commit().await.unwrap();

    let mut holding = db.store.begin().await.unwrap();
    let held = holding.ticket_state(id).await.unwrap().unwrap();
    let within = Duration::from_secs(30);
    let read = tokio::time::timeout(within, db.store.ticket_access(id))
        .await
        .expect("read while a delivery holds the ticket")
        .unwrap()
        .unwrap();
    assert_eq!(format!("{read:?}"), format!("{held:?}"));
    assert_eq!(read.orgs.len(), 2);
    assert_eq!(read.followers.len(), 2);
    assert!(db.store.ticket_access(999_999).await.unwrap().is_none());
    for author in [&w.alice, &w.carol, &w.sam, &w.dave] {
        let by_page = tokio::time::timeout(within, db.store.reachable_users(author))
            .await
            .expect("read while a delivery holds the writer")
            .unwrap();
        let by_tx = holding.reachable_users(author).await.unwrap();
        let emails =
            |users: &[User]| -> Vec<String> { users.iter().map(|u| u.email.to_string()).collect() };
        assert_eq!(emails(&by_page), emails(&by_tx), "{}", author.email);
    }
    let orgs = tokio::time::timeout(within, db.store.list_orgs())
        .await
        .expect("read while a delivery holds the writer")
        .unwrap();
    drop(holding);
    let listed: Vec<_> = orgs
        .iter()
        .map(|o| (o.slug.clone(), o.domains.clone(), o.leads.clone()))
        .collect();
    assert_eq!(
        listed,
        [
            ("other-corp".into(), vec!["other.test".into()], vec![]),
            (
                "site-a".into(),
                vec!["customer.test".to_string()],
                vec!["dave@example.test".to_string()]
            ),
            (
                "third".into(),
                vec!["3.test".into(), "third.test".into()],
                vec!["alice@customer.test".into(), "sam@example.test".into()]
            ),
        ]
    );
    for org in &orgs {
        let found = db.store.find_org(&org.slug).await.unwrap().unwrap();
        assert_eq!((&found.domains, &found.leads), (&org.domains, &org.leads));
    }
}

/// People's data: export, erasure and retention, on both backends.
mod people;

/// Seven comments a minute apart, a file on the fifth, an event after the
/// first and after the sixth: pages of three, newest first, each with its
/// files and the history of its own stretch of time.
async fn a_long_thread_is_read_a_page_at_a_time(db: &Db) {
    use ticketgate::store::CommentPage;
    let w = world(db).await;
    let id = ticket(db, &w, "long", T0).await;
    let mut tx = db.store.begin().await.unwrap();
    tx.put_blob(&"bb".repeat(32), b"log").await.unwrap();
    let mut ids = Vec::new();
    for i in 0..7 {
        let at = T0 + time::Duration::minutes(i);
        let body = format!("comment {i}");
        ids.push(
            tx.insert_comment(&NewComment {
                ticket_id: id,
                author_id: w.alice.id,
                body: &body,
                signature: None,
                quoted: None,
                internal: false,
                source: CommentSource::Email,
                message_id: None,
                ingest_id: None,
                now: at,
            })
            .await
            .unwrap(),
        );
        if i == 4 {
            tx.insert_attachment(&NewAttachment {
                comment_id: ids[4],
                filename: "log.txt".into(),
                content_type: "text/plain".into(),
                size: 3,
                sha256: "bb".repeat(32),
            })
            .await
            .unwrap();
        }
        if i == 0 || i == 5 {
            tx.insert_event(&NewEvent {
                ticket_id: id,
                event: Event::OrgAdded {
                    org: format!("after-{i}"),
                },
                actor_id: None,
                now: at + time::Duration::seconds(30),
            })
            .await
            .unwrap();
        }
    }
    tx.commit().await.unwrap();
    let page = |before| async move {
        let view = db
            .store
            .ticket_page(
                id,
                CommentPage {
                    limit: Some(3),
                    before,
                },
            )
            .await
            .unwrap()
            .unwrap();
        let bodies: Vec<String> = view.comments.iter().map(|c| c.body.clone()).collect();
        let orgs: Vec<String> = view
            .events
            .iter()
            .filter_map(|e| match e.event.known() {
                Some(Event::OrgAdded { org }) => Some(org.clone()),
                _ => None,
            })
            .collect();
        (view, bodies, orgs)
    };
    let (newest, bodies, orgs) = page(None).await;
    assert_eq!(bodies, ["comment 4", "comment 5", "comment 6"]);
    assert!(newest.earlier_comments);
    assert_eq!(newest.comments[0].attachments.len(), 1, "the fifth's file");
    assert_eq!(orgs, ["after-5"], "only the history of its stretch");
    let (middle, bodies, orgs) = page(Some(ids[4])).await;
    assert_eq!(bodies, ["comment 1", "comment 2", "comment 3"]);
    assert!(middle.earlier_comments);
    assert!(orgs.is_empty(), "{orgs:?}");
    let (first, bodies, orgs) = page(Some(ids[1])).await;
    assert_eq!(bodies, ["comment 0"]);
    assert!(!first.earlier_comments);
    assert_eq!(orgs, ["after-0"]);
    // The whole view is unchanged.
    let whole = db.store.ticket_view(id).await.unwrap().unwrap();
    assert_eq!(whole.comments.len(), 7);
    assert!(!whole.earlier_comments);
    assert_eq!(whole.comments[4].attachments.len(), 1);
}
