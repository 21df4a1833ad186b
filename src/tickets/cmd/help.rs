//! `#help` (or `#commands`): answers the sender with the commands they may
//! use (staff see theirs too), in their language, to From only.

use super::{Command, CommandProblem};
use crate::domain::template::{self, Notification};
use crate::domain::ticket::{Reason, Role};
use crate::store::{StoreError, User};
use crate::tickets::Changes;

pub(super) fn parse(key: &str, args: &str) -> Option<Result<Command, CommandProblem>> {
    (matches!(key, "help" | "commands") && args.is_empty()).then_some(Ok(Command::Help))
}

pub(super) async fn answer(c: &mut Changes<'_>, author: &User) -> Result<(), StoreError> {
    let what = Notification::HelpAnswer(template::HelpAnswer {
        staff: author.role == Role::Staff,
        // What `#status` accepts (labels fold to names), so in the
        // default language whatever the reader's.
        statuses: c
            .policy
            .terms
            .statuses(crate::domain::locale::Locale::default())
            .into_iter()
            .map(|(_, label)| label)
            .collect(),
    });
    c.tell_one(author, None, Reason::Sender, what).await
}
