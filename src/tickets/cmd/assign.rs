//! `#assign @handle`, `#assign me`, `#assign a@x` and `#unassign`: gives the
//! ticket an owner on the support team, or none (docs/contract.md, "Desk").
//! Staff only, so proven; the owner follows the ticket and is told.

use super::{Applied, Command, CommandProblem, value};
use crate::domain::ids::EmailAddress;
use crate::domain::mentions::{self, Candidate, Directory, Resolution};
use crate::domain::ticket::{self, Role};
use crate::store::{TicketState, User};
use crate::tickets::{Author, Changes, Refusal};

/// Whom `#assign` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignee {
    /// The author.
    Me,
    /// A handle (`@sam`) or an address, among the staff.
    Named(mentions::Mention),
}

impl Assignee {
    /// The staff member with this address, as the API and the portal name
    /// one (mail names them through `#assign`'s own reading).
    pub fn address(email: EmailAddress) -> Self {
        Assignee::Named(mentions::Mention {
            handle: email.local_part().to_lowercase(),
            address: Some(email),
        })
    }
}

pub(super) fn parse(key: &str, args: &str) -> Option<Result<Command, CommandProblem>> {
    Some(match key {
        "assign" | "owner" | "take" => {
            if key == "take" && args.is_empty() {
                return Some(Ok(Command::Assign(Assignee::Me)));
            }
            value(args, "assign", "a staff member (@handle, an address or me)")
                .and_then(|who| assignee(&who).map(Command::Assign))
        }
        "unassign" | "disown" if args.is_empty() => Ok(Command::Unassign),
        _ => return None,
    })
}

fn assignee(who: &str) -> Result<Assignee, CommandProblem> {
    let bad = || CommandProblem::BadValue {
        command: "assign",
        value: who.to_string(),
        expected: "a staff member (@handle, an address or me)",
    };
    if matches!(who.to_lowercase().as_str(), "me" | "myself" | "@me") {
        return Ok(Assignee::Me);
    }
    let written = if who.starts_with('@') {
        who.to_string()
    } else if let Ok(address) = EmailAddress::parse(who) {
        format!("@{address}")
    } else {
        format!("@{who}")
    };
    let found = mentions::find(&written);
    match found.mentions.as_slice() {
        [one] if found.more == 0 => Ok(Assignee::Named(one.clone())),
        _ => Err(bad()),
    }
}

/// The staff member `who` names, or why none.
pub(crate) async fn resolve(
    c: &mut Changes<'_>,
    author: &User,
    who: &Assignee,
) -> Result<Result<User, Refusal>, crate::store::StoreError> {
    let mention = match who {
        Assignee::Me => return Ok(Ok(author.clone())),
        Assignee::Named(m) => m,
    };
    let staff = c.tx.staff_users().await?;
    let directory = Directory::new(
        staff
            .iter()
            .filter(|u| u.active)
            .map(|u| Candidate {
                user: u.id,
                email: u.email.clone(),
                name: u.name.clone(),
            })
            .collect(),
    );
    // An address reads as written; a handle with its `@`.
    let named = mention
        .address
        .as_ref()
        .map_or_else(|| mention.text(), ToString::to_string);
    Ok(match directory.resolve(mention) {
        Resolution::Found(id) => staff
            .into_iter()
            .find(|u| u.id == id)
            .ok_or_else(|| Refusal::Forbidden(format!("{named} is not on the support team"))),
        Resolution::Ambiguous(emails) => Err(Refusal::NotFound(format!(
            "{named} names several people: {}",
            emails
                .iter()
                .map(EmailAddress::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        // Someone registered but not staff, or nobody: the same answer,
        // so a customer's address is not confirmed to exist.
        Resolution::NotFound => Err(Refusal::Forbidden(format!(
            "{named} is not an active member of the support team"
        ))),
    })
}

pub(super) async fn apply(
    c: &mut Changes<'_>,
    state: &TicketState,
    author: &Author<'_>,
    who: Option<&Assignee>,
) -> Applied {
    if !ticket::may_assign(&author.actor()) {
        return Ok(Err(Refusal::Forbidden(
            "only the support team assigns tickets".into(),
        )));
    }
    let owner = match who {
        Some(who) => match resolve(c, author.user, who).await? {
            Ok(owner) if owner.role == Role::Staff => Some(owner),
            Ok(owner) => {
                return Ok(Err(Refusal::Forbidden(format!(
                    "{} is not on the support team",
                    owner.email
                ))));
            }
            Err(refusal) => return Ok(Err(refusal)),
        },
        None => None,
    };
    Ok(Ok(c.set_owner(state, author.user, owner.as_ref()).await?))
}
