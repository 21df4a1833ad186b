//! `#list` (or `#tickets`): answers the sender with their open tickets, to
//! From only. Alone in a mail to the support address it opens no ticket.

use super::{Command, CommandProblem};
use crate::domain::locale::Locale;
use crate::domain::template::{self, Notification};
use crate::domain::ticket::Reason;
use crate::store::{StoreError, User};
use crate::tickets::Changes;

pub(super) fn parse(key: &str, _args: &str) -> Option<Result<Command, CommandProblem>> {
    matches!(key, "list" | "tickets").then_some(Ok(Command::List))
}

/// The most tickets one answer lists.
const MAX_LISTED: i64 = 50;

pub(super) async fn answer(c: &mut Changes<'_>, author: &User) -> Result<(), StoreError> {
    let tickets = c.tx.open_tickets_of(author, MAX_LISTED).await?;
    let rows: Vec<_> = tickets
        .iter()
        .map(|t| template::ListedTicket {
            id: t.id,
            subject: t.subject.clone(),
            status: t.status,
            status_label: c.policy.label(t.status, Locale::of(&author.locale)),
            updated_at: local_time(c, &t.updated_at, &author.locale),
        })
        .collect();
    let what = Notification::ListAnswer(template::ListAnswer { tickets: rows });
    c.tell_one(author, None, Reason::Sender, what).await
}

/// A stored timestamp as `author` reads it: their language, the desk's zone.
fn local_time(c: &Changes<'_>, stored: &str, locale: &str) -> String {
    match crate::store::time_text::parse_ts(stored) {
        Some(at) => crate::domain::dates::format(at, locale, &c.policy.timezone),
        None => stored.to_string(),
    }
}
