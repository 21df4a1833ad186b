//! What a ticket's history records (`events.kind`), with the wire names the
//! ticket JSON shows. Only the ticket service records ticket events; intake
//! records a recipient's bounce.

/// The kind of a ticket event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    TicketCreated,
    CommentAdded,
    StatusChanged,
    PrioritySet,
    ReleaseNoted,
    FollowerAdded,
    FollowerRemoved,
    Mentioned,
    OrgAdded,
    OrgRemoved,
    RecipientBouncing,
}

impl EventKind {
    pub const ALL: &[EventKind] = &[
        EventKind::TicketCreated,
        EventKind::CommentAdded,
        EventKind::StatusChanged,
        EventKind::PrioritySet,
        EventKind::ReleaseNoted,
        EventKind::FollowerAdded,
        EventKind::FollowerRemoved,
        EventKind::Mentioned,
        EventKind::OrgAdded,
        EventKind::OrgRemoved,
        EventKind::RecipientBouncing,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::TicketCreated => "ticket_created",
            EventKind::CommentAdded => "comment_added",
            EventKind::StatusChanged => "status_changed",
            EventKind::PrioritySet => "priority_set",
            EventKind::ReleaseNoted => "release_noted",
            EventKind::FollowerAdded => "follower_added",
            EventKind::FollowerRemoved => "follower_removed",
            EventKind::Mentioned => "mentioned",
            EventKind::OrgAdded => "org_added",
            EventKind::OrgRemoved => "org_removed",
            EventKind::RecipientBouncing => "recipient_bouncing",
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
