//! `#list` (or `#tickets`): answers the sender with their open tickets, to
//! From only. Alone in a mail to the support address it opens no ticket.
//! Staff choose what the desk lists (docs/contract.md, "Desk"): `#list
//! mine` (the default: tickets they own), `#list unassigned`, `#list all`;
//! a customer's `#list` is what they may see, whatever they add.

use super::{Command, CommandProblem};
use crate::domain::locale::Locale;
use crate::domain::template::{self, Notification};
use crate::domain::ticket::{Reason, Role};
use crate::store::{StoreError, User};
use crate::tickets::Changes;

/// What a staff `#list` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scope {
    #[default]
    Mine,
    Unassigned,
    All,
}

pub(super) fn parse(key: &str, args: &str) -> Option<Result<Command, CommandProblem>> {
    if !matches!(key, "list" | "tickets") {
        return None;
    }
    Some(match args.trim().to_lowercase().as_str() {
        "" | "mine" | "my" | "me" | "own" => Ok(Command::List(Scope::Mine)),
        "unassigned" | "none" | "nobody" => Ok(Command::List(Scope::Unassigned)),
        "all" | "open" => Ok(Command::List(Scope::All)),
        _ => Err(CommandProblem::BadValue {
            command: "list",
            value: args.to_string(),
            expected: "mine, unassigned or all",
        }),
    })
}

/// The most tickets one answer lists.
const MAX_LISTED: i64 = 50;

pub(super) async fn answer(
    c: &mut Changes<'_>,
    author: &User,
    scope: Scope,
) -> Result<(), StoreError> {
    // An unproven staff From is answered too, but only to that address:
    // From is where a forger cannot read.
    let tickets = match (author.role, scope) {
        (Role::Staff, Scope::Mine) => c.tx.open_tickets_desk(Some(author.id), false, MAX_LISTED),
        (Role::Staff, Scope::Unassigned) => c.tx.open_tickets_desk(None, true, MAX_LISTED),
        (Role::Staff, Scope::All) => c.tx.open_tickets_desk(None, false, MAX_LISTED),
        (Role::Customer, _) => c.tx.open_tickets_of(author, MAX_LISTED),
    }
    .await?;
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
