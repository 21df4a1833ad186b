//! The ticket service on its own, over a real SQLite store in a temporary
//! folder: what one change records, whom it tells, and what a refusal
//! leaves (nothing). The channels' tests (tests/) drive the same calls
//! through mail, the API and the portal.

use std::sync::Arc;

use super::notice::Sender;
use super::{Author, ChangePolicy, Command, Refusal, Service, Typed};
use crate::domain::event::{Cause, Event};
use crate::domain::ids::EmailAddress;
use crate::domain::locale::Locale;
use crate::domain::template::Template;
use crate::domain::ticket::{Priority, Role, Status};
use crate::domain::version::Version;
use crate::store::sqlite::SqliteStore;
use crate::store::{CommentSource, NewUser, OutboxRow, Store, User};

struct Desk {
    service: Service,
    store: Arc<dyn Store>,
    alice: User,
    sam: User,
    _dir: tempfile::TempDir,
}

impl Desk {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let sqlite = SqliteStore::connect(&url).await.unwrap();
        sqlite.migrate().await.unwrap();
        let store: Arc<dyn Store> = Arc::new(sqlite);
        let org = store
            .add_org("Customer Site A", "site-a", &["customer.test".into()])
            .await
            .unwrap();
        let user = |email: &str, name: &str, role, org| NewUser {
            email: EmailAddress::parse(email).unwrap(),
            name: name.into(),
            role,
            org_id: org,
            locale: "en".into(),
        };
        let alice = store
            .add_user(&user(
                "alice@customer.test",
                "Alice",
                Role::Customer,
                Some(org.id),
            ))
            .await
            .unwrap();
        let sam = store
            .add_user(&user("sam@example.test", "Sam", Role::Staff, None))
            .await
            .unwrap();
        let mut policy = ChangePolicy::default();
        policy.terms.levels.insert(
            Priority::P2,
            crate::domain::terms::Level {
                name: "High".into(),
                response: "4 hours".into(),
                translated: Default::default(),
            },
        );
        let sender = Sender {
            domain: "example.test".into(),
            tag: "Support".into(),
            portal: None,
        };
        let service = Service::new(store.clone(), Arc::new(sender), Arc::new(policy));
        Self {
            service,
            store,
            alice,
            sam,
            _dir: dir,
        }
    }

    /// Alice opens a ticket from the portal.
    async fn open(&self) -> i64 {
        let typed = Typed {
            author: &self.alice,
            source: CommentSource::Web,
            body: "The printer is on fire.",
            internal: false,
            attachments: &[],
            attachment_shas: &[],
        };
        let added = self.service.open("Printer", &typed).await.unwrap().unwrap();
        added.state.id
    }

    async fn apply(&self, who: &User, ticket: i64, commands: &[Command]) -> Result<(), Refusal> {
        let author = Author {
            user: who,
            proven: true,
        };
        self.service
            .apply(ticket, &author, commands)
            .await
            .unwrap()
            .map(|_| ())
    }

    async fn events(&self, ticket: i64) -> Vec<Event> {
        let view = self.store.ticket_view(ticket).await.unwrap().unwrap();
        view.events
            .iter()
            .map(|e| {
                e.event
                    .known()
                    .cloned()
                    .expect("every event this version writes reads back")
            })
            .collect()
    }

    async fn outbox(&self) -> Vec<OutboxRow> {
        self.store.list_outbox().await.unwrap()
    }
}

#[tokio::test]
async fn a_status_change_is_recorded_once_and_each_person_is_told_once() {
    let desk = Desk::new().await;
    let ticket = desk.open().await;
    let before = desk.outbox().await.len();
    desk.apply(
        &desk.sam,
        ticket,
        &[
            Command::Status(Status::InProgress),
            Command::Status(Status::Blocked),
        ],
    )
    .await
    .unwrap();
    let changes: Vec<Event> = desk
        .events(ticket)
        .await
        .into_iter()
        .filter(|e| matches!(e, Event::StatusChanged { .. }))
        .collect();
    assert_eq!(
        changes,
        [
            Event::StatusChanged {
                from: Status::New,
                to: Status::InProgress,
                cause: Cause::Command,
                reason: None,
            },
            Event::StatusChanged {
                from: Status::InProgress,
                to: Status::Blocked,
                cause: Cause::Command,
                reason: None,
            },
        ]
    );
    // Two changes, one request: Alice gets one mail, with the net change.
    let outbox = desk.outbox().await;
    let to_alice: Vec<&OutboxRow> = outbox[before..]
        .iter()
        .filter(|r| r.to == "alice@customer.test")
        .collect();
    assert_eq!(to_alice.len(), 1, "{outbox:#?}");
    assert_eq!(to_alice[0].template, Template::StatusChanged.as_str());
}

#[tokio::test]
async fn a_refused_command_leaves_nothing_behind() {
    let desk = Desk::new().await;
    let ticket = desk.open().await;
    let events = desk.events(ticket).await;
    let outbox = desk.outbox().await.len();
    // The status goes first and would be allowed; the priority is not, so
    // neither is kept.
    let refused = desk
        .apply(
            &desk.alice,
            ticket,
            &[
                Command::Status(Status::Closed),
                Command::Priority(Priority::P1),
            ],
        )
        .await;
    assert_eq!(
        refused,
        Err(Refusal::Forbidden(
            "only support staff set priorities".into()
        ))
    );
    assert_eq!(desk.events(ticket).await, events);
    assert_eq!(desk.outbox().await.len(), outbox);
}

#[tokio::test]
async fn announcements_are_rendered_from_their_events_in_each_language() {
    let desk = Desk::new().await;
    let ticket = desk.open().await;
    let release = Version::parse("5.2 beta").unwrap();
    desk.apply(
        &desk.sam,
        ticket,
        &[Command::Priority(Priority::P2), Command::Release(release)],
    )
    .await
    .unwrap();
    let view = desk.store.ticket_view(ticket).await.unwrap().unwrap();
    let announced = view.announced();
    let system: Vec<_> = view
        .comments
        .iter()
        .filter(|c| c.source == CommentSource::System)
        .collect();
    assert_eq!(system.len(), 2);
    // The stored text is the default language's, as the JSON shows it.
    assert_eq!(
        system[0].body,
        "Priority set to P2 (High): response within 4 hours."
    );
    assert_eq!(system[1].body, "Fixed in release 5.2 beta.");
    for c in system {
        let event = announced
            .get(&c.id)
            .expect("each announcement has its event");
        assert_eq!(
            event.announcement(Locale::En).as_deref(),
            Some(c.body.as_str())
        );
        let ja = event.announcement(Locale::Ja).unwrap();
        assert!(!ja.contains("set to") && !ja.contains("Fixed"), "{ja}");
    }
}

#[tokio::test]
async fn what_a_person_types_is_read_for_mentions_by_the_service() {
    let desk = Desk::new().await;
    let ticket = desk.open().await;
    let typed = Typed {
        author: &desk.sam,
        source: CommentSource::Api,
        body: "Looping in @alice@customer.test and @nobody@else.test.",
        internal: false,
        attachments: &[],
        attachment_shas: &[],
    };
    let added = desk.service.comment(ticket, &typed).await.unwrap().unwrap();
    assert!(desk.events(ticket).await.contains(&Event::Mentioned {
        email: desk.alice.email.clone()
    }));
    let failed: Vec<&str> = added.failures.iter().map(|f| f.command.as_str()).collect();
    assert_eq!(failed, ["@nobody@else.test"]);
}
