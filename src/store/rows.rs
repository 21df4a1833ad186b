//! Row decoding shared by both backends (and SQLite's delivery
//! transaction): each mapper reads the columns its `sql` statement selects,
//! by position.

use std::str::FromStr;

use time::OffsetDateTime;

use super::*;

/// Column access over a backend's row type, so each mapper is written once.
/// Times default to SQLite's storage, text as `format_ts` wrote it;
/// PostgreSQL reads TIMESTAMPTZ instead.
pub trait Cols {
    fn i64_at(&self, i: usize) -> Result<i64>;
    fn opt_i64_at(&self, i: usize) -> Result<Option<i64>>;
    fn text_at(&self, i: usize) -> Result<String>;
    fn opt_text_at(&self, i: usize) -> Result<Option<String>>;
    fn bool_at(&self, i: usize) -> Result<bool>;
    fn bytes_at(&self, i: usize) -> Result<Vec<u8>>;

    /// A time as JSON shows it: the stored text on SQLite, so it is never
    /// reformatted on the way out.
    fn ts_at(&self, i: usize) -> Result<String> {
        self.text_at(i)
    }

    fn opt_ts_at(&self, i: usize) -> Result<Option<String>> {
        self.opt_text_at(i)
    }

    fn time_at(&self, i: usize) -> Result<OffsetDateTime> {
        let text = self.text_at(i)?;
        parse_ts(&text).ok_or_else(|| StoreError::Invalid(format!("column {i}: time {text}")))
    }

    fn opt_time_at(&self, i: usize) -> Result<Option<OffsetDateTime>> {
        self.opt_text_at(i)?
            .map(|text| {
                parse_ts(&text)
                    .ok_or_else(|| StoreError::Invalid(format!("column {i}: time {text}")))
            })
            .transpose()
    }

    fn parse_at<T: FromStr>(&self, i: usize) -> Result<T>
    where
        T::Err: std::fmt::Display,
    {
        let text = self.text_at(i)?;
        text.parse()
            .map_err(|e: T::Err| StoreError::Invalid(format!("column {i} ({text}): {e}")))
    }

    fn opt_parse_at<T: FromStr>(&self, i: usize) -> Result<Option<T>>
    where
        T::Err: std::fmt::Display,
    {
        self.opt_text_at(i)?
            .map(|t| {
                t.parse()
                    .map_err(|e: T::Err| StoreError::Invalid(format!("column {i} ({t}): {e}")))
            })
            .transpose()
    }

    fn email_at(&self, i: usize) -> Result<EmailAddress> {
        EmailAddress::parse(&self.text_at(i)?).map_err(|e| StoreError::Invalid(e.to_string()))
    }
}

/// `Cols` for a row type whose typed getter is the same call `$get` for
/// every column type, with any overrides after it (`$extra`).
macro_rules! cols_by {
    ($row:ty, |$r:ident, $i:ident| $get:expr $(, $($extra:tt)*)?) => {
        impl $crate::store::rows::Cols for $row {
            fn i64_at(&self, $i: usize) -> Result<i64> {
                let $r = self;
                $get
            }
            fn opt_i64_at(&self, $i: usize) -> Result<Option<i64>> {
                let $r = self;
                $get
            }
            fn text_at(&self, $i: usize) -> Result<String> {
                let $r = self;
                $get
            }
            fn opt_text_at(&self, $i: usize) -> Result<Option<String>> {
                let $r = self;
                $get
            }
            fn bool_at(&self, $i: usize) -> Result<bool> {
                let $r = self;
                $get
            }
            fn bytes_at(&self, $i: usize) -> Result<Vec<u8>> {
                let $r = self;
                $get
            }
            $($($extra)*)?
        }
    };
}
pub(crate) use cols_by;

/// `sql::user_columns!`.
pub fn user(r: &impl Cols) -> Result<User> {
    Ok(User {
        id: r.i64_at(0)?,
        email: r.email_at(1)?,
        name: r.text_at(2)?,
        role: r.parse_at(3)?,
        org_id: r.opt_i64_at(4)?,
        org: r.opt_text_at(5)?,
        locale: r.text_at(6)?,
        bouncing: r.bool_at(7)?,
        active: r.bool_at(8)?,
    })
}

/// `sql::summary_columns!`.
/// `sql::TICKET_STATE`'s row, without its followers and organizations.
pub fn ticket_state(r: &impl Cols) -> Result<TicketState> {
    Ok(TicketState {
        id: r.i64_at(0)?,
        subject: r.text_at(1)?,
        status: r.parse_at(2)?,
        priority: r.opt_parse_at(3)?,
        requester_id: r.i64_at(4)?,
        root_message_id: r.opt_text_at(5)?.and_then(|t| MessageId::parse(&t).ok()),
        last_message_id: r.opt_text_at(6)?.and_then(|t| MessageId::parse(&t).ok()),
        followers: Vec::new(),
        orgs: Vec::new(),
    })
}

/// `sql::TICKET_STATE_FOLLOWERS`' row.
pub fn state_follower(r: &impl Cols) -> Result<crate::domain::notify::Follower> {
    Ok(crate::domain::notify::Follower {
        user: r.i64_at(0)?,
        email: r.email_at(1)?,
        name: r.text_at(2)?,
        locale: r.text_at(3)?,
        role: r.parse_at(4)?,
        source: r.parse_at(5)?,
        bouncing: r.bool_at(6)?,
        active: r.bool_at(7)?,
    })
}

pub fn summary(r: &impl Cols) -> Result<TicketSummary> {
    Ok(TicketSummary {
        id: r.i64_at(0)?,
        subject: r.text_at(1)?,
        status: r.parse_at(2)?,
        priority: r.opt_parse_at(3)?,
        requester: r.text_at(4)?,
        org: r.opt_text_at(5)?,
        updated_at: r.ts_at(6)?,
        requester_name: r.text_at(7)?,
        org_name: r.opt_text_at(8)?,
        owner: r.opt_text_at(9)?,
        response_due: r.opt_ts_at(10)?,
        responded_at: r.opt_ts_at(11)?,
        resolve_due: r.opt_ts_at(12)?,
        close_reason: r.opt_parse_at(13)?,
    })
}

/// `sql::COMMENT_PLACE`.
pub fn comment_place(r: &impl Cols) -> Result<CommentPlace> {
    Ok(CommentPlace {
        ticket: r.i64_at(0)?,
        author_id: r.i64_at(1)?,
        internal: r.bool_at(2)?,
    })
}

/// `sql::DESK`.
pub fn desk(r: &impl Cols) -> Result<Desk> {
    Ok(Desk {
        owner: r.opt_i64_at(0)?,
        close_reason: r.opt_parse_at(1)?,
        merged_into: r.opt_i64_at(2)?,
        created_at: r.time_at(3)?,
        updated_at: r.time_at(4)?,
        response_due: r.opt_time_at(5)?,
        responded_at: r.opt_time_at(6)?,
        resolve_due: r.opt_time_at(7)?,
        resolve_spent: r.opt_i64_at(8)?,
        resolve_since: r.opt_time_at(9)?,
        next_alarm_at: r.opt_time_at(10)?,
    })
}

/// `sql::log_columns!`.
pub fn log(r: &impl Cols) -> Result<LogRow> {
    Ok(LogRow {
        id: r.i64_at(0)?,
        message_id: r.opt_text_at(1)?,
        origin: r.text_at(2)?,
        sender: r.opt_text_at(3)?,
        subject: r.opt_text_at(4)?,
        outcome: r.parse_at(5)?,
        reason: r.opt_text_at(6)?,
        thread_reason: r.opt_text_at(7)?,
        ticket: r.opt_i64_at(8)?,
        comment: r.opt_i64_at(9)?,
        size: r.i64_at(10)?,
        received_at: r.ts_at(11)?,
        superseded: r.bool_at(12)?,
        replay_of: r.opt_i64_at(13)?,
        raw_sha256: r.text_at(14)?,
        notify: r.bool_at(15)?,
        discarded_at: r.opt_ts_at(16)?,
    })
}

/// `sql::outbox_columns!`.
pub fn outbox(r: &impl Cols) -> Result<OutboxRow> {
    let status = r.text_at(9)?;
    let context = r.text_at(14)?;
    Ok(OutboxRow {
        id: r.i64_at(0)?,
        ticket_id: r.opt_i64_at(1)?,
        to: r.text_at(2)?,
        to_user_id: r.opt_i64_at(3)?,
        locale: r.text_at(4)?,
        comment_id: r.opt_i64_at(5)?,
        template: r.text_at(6)?,
        subject: r.text_at(7)?,
        message_id: r.text_at(8)?,
        status: OutboxStatus::parse(&status)
            .ok_or_else(|| StoreError::Invalid(format!("outbox status {status}")))?,
        attempts: r.i64_at(10)?,
        reason: r.text_at(11)?,
        in_reply_to: r.opt_text_at(12)?,
        references: r.opt_text_at(13)?,
        context: serde_json::from_str(&context)
            .map_err(|e| StoreError::Invalid(format!("outbox context: {e}")))?,
    })
}

/// `sql::TOKENS_WHERE`.
pub fn token(r: &impl Cols) -> Result<ApiToken> {
    Ok(ApiToken {
        id: r.i64_at(0)?,
        user: r.text_at(1)?,
        label: r.opt_text_at(2)?,
        created_at: r.ts_at(3)?,
        last_used_at: r.opt_ts_at(4)?,
        revoked_at: r.opt_ts_at(5)?,
    })
}

/// `sql::COMMENT_FILES`, or `sql::ATTACHMENT` from column 1.
pub fn file(r: &impl Cols, first: usize) -> Result<StoredFile> {
    Ok(StoredFile {
        filename: r.text_at(first)?,
        content_type: r.text_at(first + 1)?,
        data: r.bytes_at(first + 2)?,
    })
}

/// `sql::TICKET_FOLLOWERS`.
pub fn follower(r: &impl Cols) -> Result<FollowerView> {
    Ok(FollowerView {
        email: r.text_at(0)?,
        source: r.parse_at(1)?,
        name: r.text_at(2)?,
    })
}

/// `sql::TICKET_COMMENTS`, without its attachments.
pub fn comment(r: &impl Cols) -> Result<CommentView> {
    let source = r.text_at(5)?;
    Ok(CommentView {
        id: r.i64_at(0)?,
        author: r.text_at(1)?,
        author_name: r.text_at(8)?,
        body: r.text_at(2)?,
        signature: r.opt_text_at(3)?,
        internal: r.bool_at(4)?,
        source: CommentSource::parse(&source)
            .ok_or_else(|| StoreError::Invalid(format!("comment source {source}")))?,
        message_id: r.opt_text_at(6)?,
        created_at: r.ts_at(7)?,
        attachments: Vec::new(),
        redacted: r.opt_ts_at(9)?.is_some(),
    })
}

/// `sql::TICKET_ATTACHMENTS`: the comment it belongs to, and the attachment.
pub fn attachment(r: &impl Cols) -> Result<(CommentId, AttachmentView)> {
    Ok((
        r.i64_at(1)?,
        AttachmentView {
            id: r.i64_at(0)?,
            filename: r.text_at(2)?,
            content_type: r.text_at(3)?,
            size: r.i64_at(4)?,
        },
    ))
}

/// `sql::TICKET_EVENTS`; a row this version cannot read is kept as stored
/// (`Recorded::Unread`), data that is not JSON as null.
pub fn event(r: &impl Cols) -> Result<EventView> {
    Ok(EventView {
        event: crate::domain::event::Recorded::read(&r.text_at(0)?, &r.text_at(2)?),
        actor: r.opt_text_at(1)?,
        created_at: r.ts_at(3)?,
    })
}

/// `sql::TICKET` with the rest of the ticket read.
pub fn ticket_view(
    r: &impl Cols,
    orgs: Vec<String>,
    followers: Vec<FollowerView>,
    comments: Vec<CommentView>,
    events: Vec<EventView>,
) -> Result<TicketView> {
    let status: Status = r.parse_at(2)?;
    Ok(TicketView {
        id: r.i64_at(0)?,
        subject: r.text_at(1)?,
        status,
        status_label: status.default_label().to_string(),
        priority: r.opt_parse_at(3)?,
        requester: r.text_at(4)?,
        org: r.opt_text_at(5)?,
        orgs,
        release: r.opt_text_at(8)?,
        owner: r.opt_text_at(9)?,
        close_reason: r.opt_parse_at(10)?,
        merged_into: r.opt_i64_at(11)?,
        response_due: r.opt_ts_at(12)?,
        responded_at: r.opt_ts_at(13)?,
        resolve_due: r.opt_ts_at(14)?,
        followers,
        comments,
        earlier_comments: false,
        events,
        created_at: r.ts_at(6)?,
        updated_at: r.ts_at(7)?,
    })
}
