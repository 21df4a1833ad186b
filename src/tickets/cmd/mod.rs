//! Email commands (docs/contract.md, "Mail"): consecutive `#command` lines at
//! the very top of the new text. Parsing is generous about spelling and strict
//! about position: a `#` further down is text, so quoting a command never runs it.
//!
//! One file per command, as tokio-rs/mini-redis lays out its `cmd/`: each
//! says which words name it and parses its arguments (`parse`), who may run
//! it (the pure rules of `domain::ticket`), and what it changes and tells
//! (`apply`). This file scans the text for command lines and dispatches:
//! adding a command is its file, a variant of [`Command`], and one line in
//! [`PARSERS`], [`Command::reach`] and [`Changes::command`] each.
//! The API and the portal run the same commands (`Service::apply`).

use super::{Author, Changes, Refusal};
use crate::domain::ids::EmailAddress;
use crate::domain::ticket::{self, CloseReason, Priority, Reach, Status};
use crate::domain::version::{Version, VersionProblem};
use crate::store::{StoreError, TicketState};
pub use assign::Assignee;
pub use list::Scope as ListScope;
pub(crate) use move_to::NOTHING_TO_MOVE;

mod assign;
mod follow;
mod help;
mod internal;
mod list;
mod merge;
mod move_to;
mod priority;
mod release;
mod share;
mod share_org;
mod status;
mod unfollow;
mod unshare;
mod unshare_org;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Status(Status),
    /// `#status closed <reason>`: closes with that reason.
    Close(CloseReason),
    /// Staff: the ticket's owner.
    Assign(Assignee),
    Unassign,
    Priority(Priority),
    Follow,
    Unfollow,
    Share(Vec<EmailAddress>),
    Unshare(Vec<EmailAddress>),
    /// An organization by name or slug.
    ShareOrg(String),
    UnshareOrg(String),
    Release(Version),
    /// Staff: the comment is internal.
    Internal,
    /// Alone in a mail to the support address: answer with the sender's
    /// open tickets (staff: the desk's, `list::Scope`).
    List(list::Scope),
    /// Answer with the commands the sender may use.
    Help,
    /// Staff: merge this ticket into that one.
    MergeInto(crate::domain::ids::TicketId),
    /// Staff: put the comment this mail adds on another ticket, or a new one.
    MoveTo(crate::tickets::MoveTarget),
}

impl Command {
    /// Commands that ask for an answer rather than change a ticket: a mail
    /// of only these (and a greeting) opens no ticket.
    pub fn is_question(&self) -> bool {
        matches!(self, Command::List(_) | Command::Help)
    }

    /// How the command changes who may see the ticket; see `ticket::needs_proof`.
    pub fn reach(&self) -> Reach {
        match self {
            // Both show a ticket's words to people who may not have seen them.
            Command::Share(_)
            | Command::ShareOrg(_)
            | Command::MergeInto(_)
            | Command::MoveTo(_) => Reach::Grants,
            Command::Unshare(_) | Command::UnshareOrg(_) | Command::Unfollow => Reach::Removes,
            Command::Status(_)
            | Command::Close(_)
            | Command::Assign(_)
            | Command::Unassign
            | Command::Priority(_)
            | Command::Follow
            | Command::Release(_)
            | Command::Internal
            | Command::List(_)
            | Command::Help => Reach::Keeps,
        }
    }
}

/// What running a command gives: the ticket after it, or why it was refused.
type Applied = Result<Result<TicketState, Refusal>, StoreError>;

impl Changes<'_> {
    /// Applies one command; `Err(reason)` when refused.
    pub async fn command(
        &mut self,
        state: &TicketState,
        author: &Author<'_>,
        command: &Command,
    ) -> Applied {
        // docs/contract.md, "Proof": staff commands and changes of who may see
        // the ticket (grants and removals) need proof.
        if ticket::needs_proof(&author.actor(), command.reach()) && !author.proven {
            return Ok(Err(Refusal::Unverified));
        }
        match command {
            Command::Status(to) => status::apply(self, state, author, *to, None).await,
            Command::Close(reason) => {
                status::apply(self, state, author, Status::Closed, Some(*reason)).await
            }
            Command::Assign(who) => assign::apply(self, state, author, Some(who)).await,
            Command::Unassign => assign::apply(self, state, author, None).await,
            Command::Priority(p) => priority::apply(self, state, author, *p).await,
            Command::Release(v) => release::apply(self, state, author, v).await,
            Command::Follow => follow::apply(self, state, author).await,
            Command::Unfollow => unfollow::apply(self, state, author).await,
            Command::Share(to) => share::apply(self, state, author, to).await,
            Command::Unshare(to) => unshare::apply(self, state, author, to).await,
            Command::ShareOrg(key) => share_org::apply(self, state, author, key).await,
            Command::UnshareOrg(key) => unshare_org::apply(self, state, author, key).await,
            Command::MergeInto(into) => merge::apply(self, state, author, *into).await,
            // Only a reply's own comment moves by mail (`run_commands`).
            Command::MoveTo(_) => Ok(Err(Refusal::NotFound(move_to::NOTHING_TO_MOVE.into()))),
            // They shape the comment or answer the author: see their files.
            Command::Internal | Command::List(_) | Command::Help => Ok(Ok(state.clone())),
        }
    }

    /// Answers a question (`#list`, `#help`) to its author, from From only.
    pub async fn answer(
        &mut self,
        author: &crate::store::User,
        command: &Command,
    ) -> Result<(), StoreError> {
        match command {
            Command::List(scope) => list::answer(self, author, *scope).await,
            Command::Help => help::answer(self, author).await,
            _ => Ok(()),
        }
    }
}

/// Each command's parse, tried in turn with the folded command word and
/// its arguments; `None` when the word is not one of its names.
type Parse = fn(&str, &str) -> Option<Result<Command, CommandProblem>>;

const PARSERS: &[Parse] = &[
    status::parse,
    assign::parse,
    priority::parse,
    follow::parse,
    unfollow::parse,
    share::parse,
    unshare::parse,
    share_org::parse,
    unshare_org::parse,
    release::parse,
    merge::parse,
    move_to::parse,
    internal::parse,
    list::parse,
    help::parse,
];

/// Why a command line was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandProblem {
    #[error("unknown command #{0}")]
    Unknown(String),
    #[error("#{command} needs {expected}")]
    Missing {
        command: &'static str,
        expected: &'static str,
    },
    #[error("#{command}: {value:?} is not {expected}")]
    BadValue {
        command: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("#release: {value:?}: {problem}")]
    BadVersion {
        value: String,
        problem: VersionProblem,
    },
}

/// One command line as written, and what it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    pub line: String,
    pub parsed: Result<Command, CommandProblem>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Parsed {
    pub commands: Vec<CommandLine>,
    /// The text without its command lines (what becomes the comment).
    pub rest: String,
}

/// `#word`: a `#` directly followed by a letter. `#1 issue` or `# heading` is text.
fn command_word(line: &str) -> Option<(&str, &str)> {
    let body = line.trim().strip_prefix('#')?;
    if !body.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let end = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .unwrap_or(body.len());
    let (word, args) = body.split_at(end);
    let args = args.trim_start().strip_prefix(':').unwrap_or(args).trim();
    Some((word, args))
}

fn unquote(text: &str) -> &str {
    let t = text.trim();
    for (open, close) in [('"', '"'), ('\'', '\''), ('“', '”'), ('「', '」')] {
        if let Some(inner) = t.strip_prefix(open).and_then(|r| r.strip_suffix(close)) {
            return inner.trim();
        }
    }
    t
}

/// The one argument a command needs, unquoted; `Missing` when there is none.
fn value(
    args: &str,
    command: &'static str,
    expected: &'static str,
) -> Result<String, CommandProblem> {
    let v = unquote(args);
    if v.is_empty() {
        Err(CommandProblem::Missing { command, expected })
    } else {
        Ok(v.to_string())
    }
}

/// The addresses a `#share` or `#unshare` names, separated by commas,
/// semicolons or spaces.
fn addresses(command: &'static str, args: &str) -> Result<Vec<EmailAddress>, CommandProblem> {
    let words: Vec<&str> = args
        .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() {
        return Err(CommandProblem::Missing {
            command,
            expected: "an email address",
        });
    }
    words
        .into_iter()
        .map(|w| {
            EmailAddress::parse(w.trim_start_matches("mailto:")).map_err(|_| {
                CommandProblem::BadValue {
                    command,
                    value: w.to_string(),
                    expected: "an email address",
                }
            })
        })
        .collect()
}

fn parse_one(word: &str, args: &str) -> Result<Command, CommandProblem> {
    let key = word.to_ascii_lowercase().replace('_', "-");
    PARSERS
        .iter()
        .find_map(|parse| parse(&key, args))
        .unwrap_or_else(|| Err(CommandProblem::Unknown(word.to_string())))
}

/// Whether the text left after the commands is only a greeting or a
/// sign-off ("Thanks!", "Best regards,\nAlice"): at most three short lines
/// and no question. Anything longer is a request and opens a ticket.
pub fn only_pleasantries(rest: &str) -> bool {
    let lines: Vec<&str> = rest
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != "--")
        .collect();
    lines.len() <= 3
        && lines.iter().all(|l| {
            l.chars().count() <= 40 && l.split_whitespace().count() <= 5 && !l.contains(['?', '？'])
        })
}

/// Splits the top command block from the text. Leading blank lines are
/// skipped; the block ends at the first line that is not a command.
pub fn parse(text: &str) -> Parsed {
    match leading(text) {
        (commands, Some(rest)) => Parsed { commands, rest },
        (commands, None) => Parsed {
            commands,
            rest: text.to_string(),
        },
    }
}

/// [`parse`] of an owned text: without commands, `text` itself becomes
/// `rest` (no copy of a large body).
pub fn parse_owned(text: String) -> Parsed {
    match leading(&text) {
        (commands, Some(rest)) => Parsed { commands, rest },
        (commands, None) => Parsed {
            commands,
            rest: text,
        },
    }
}

/// The leading command lines and, when there are any, the text after them.
fn leading(text: &str) -> (Vec<CommandLine>, Option<String>) {
    let mut commands = Vec::new();
    let mut lines = text.lines().peekable();
    while lines.peek().is_some_and(|l| l.trim().is_empty()) {
        lines.next();
    }
    while let Some(line) = lines.peek() {
        let Some((word, args)) = command_word(line) else {
            break;
        };
        commands.push(CommandLine {
            line: line.trim().to_string(),
            parsed: parse_one(word, args),
        });
        lines.next();
    }
    if commands.is_empty() {
        return (commands, None);
    }
    let rest: Vec<&str> = lines.collect();
    let rest = rest.join("\n");
    let rest = match rest.trim_matches('\n') {
        trimmed if trimmed.len() == rest.len() => rest,
        trimmed => trimmed.to_string(),
    };
    (commands, Some(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> Result<Command, CommandProblem> {
        let parsed = parse(line);
        assert_eq!(parsed.commands.len(), 1, "{line:?}");
        parsed.commands[0].parsed.clone()
    }

    fn addr(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    fn version(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn every_spelling_of_every_command() {
        let cases: Vec<(&str, Command)> = vec![
            ("#status in progress", Command::Status(Status::InProgress)),
            ("#status In Progress", Command::Status(Status::InProgress)),
            ("#status in-progress", Command::Status(Status::InProgress)),
            ("#status: in_progress", Command::Status(Status::InProgress)),
            ("#STATUS Blocked", Command::Status(Status::Blocked)),
            ("#status closed", Command::Status(Status::Closed)),
            (
                "#status \"Closed - Escalated to TEM\"",
                Command::Status(Status::Escalated),
            ),
            ("#status escalated", Command::Status(Status::Escalated)),
            ("#status new", Command::Status(Status::New)),
            ("#close", Command::Status(Status::Closed)),
            ("#resolved", Command::Status(Status::Closed)),
            ("#reopen", Command::Status(Status::New)),
            ("#priority P2", Command::Priority(Priority::P2)),
            ("#priority p1", Command::Priority(Priority::P1)),
            ("#priority 3", Command::Priority(Priority::P3)),
            ("#prio: P4", Command::Priority(Priority::P4)),
            ("#P2", Command::Priority(Priority::P2)),
            ("#follow", Command::Follow),
            ("#Follow", Command::Follow),
            ("#unfollow", Command::Unfollow),
            (
                "#share bob@customer.test",
                Command::Share(vec![addr("bob@customer.test")]),
            ),
            (
                "#share bob@customer.test, <Dave@Example.test>",
                Command::Share(vec![addr("bob@customer.test"), addr("dave@example.test")]),
            ),
            (
                "#unshare bob@customer.test",
                Command::Unshare(vec![addr("bob@customer.test")]),
            ),
            (
                "#share-org \"Customer Site A\"",
                Command::ShareOrg("Customer Site A".into()),
            ),
            (
                "#share-org customer-site-a",
                Command::ShareOrg("customer-site-a".into()),
            ),
            ("#share_org Site A", Command::ShareOrg("Site A".into())),
            (
                "#unshare-org 'Other Corp'",
                Command::UnshareOrg("Other Corp".into()),
            ),
            ("#release 5.2.1", Command::Release(version("5.2.1"))),
            // Kept as typed, as the API and the portal keep it.
            ("#release v5.2.1", Command::Release(version("v5.2.1"))),
            ("#release 5.2 beta", Command::Release(version("5.2 beta"))),
            (
                "#fixed-in: \"5.2 beta\"",
                Command::Release(version("5.2 beta")),
            ),
            ("#internal", Command::Internal),
            ("#list", Command::List(list::Scope::Mine)),
            ("#list all", Command::List(list::Scope::All)),
            ("#list Unassigned", Command::List(list::Scope::Unassigned)),
            ("#help", Command::Help),
            ("#Help", Command::Help),
            ("#merge-into 12", Command::MergeInto(12)),
            ("#Merge_Into: #12", Command::MergeInto(12)),
            ("#duplicate-of 3", Command::MergeInto(3)),
            (
                "#move-to 12",
                Command::MoveTo(crate::tickets::MoveTarget::Ticket(12)),
            ),
            (
                "#move-to New",
                Command::MoveTo(crate::tickets::MoveTarget::New),
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(one(line), Ok(expected), "{line}");
        }
    }

    #[test]
    fn bad_commands_are_reported_not_guessed() {
        let cases: Vec<(&str, CommandProblem)> = vec![
            (
                "#status done-ish",
                CommandProblem::BadValue {
                    command: "status",
                    value: "done-ish".into(),
                    expected: "a status",
                },
            ),
            (
                "#status",
                CommandProblem::Missing {
                    command: "status",
                    expected: "a status",
                },
            ),
            (
                "#priority P5",
                CommandProblem::BadValue {
                    command: "priority",
                    value: "P5".into(),
                    expected: "a priority (P1 to P4)",
                },
            ),
            (
                "#share bob",
                CommandProblem::BadValue {
                    command: "share",
                    value: "bob".into(),
                    expected: "an email address",
                },
            ),
            (
                "#share",
                CommandProblem::Missing {
                    command: "share",
                    expected: "an email address",
                },
            ),
            (
                "#release",
                CommandProblem::Missing {
                    command: "release",
                    expected: "a version",
                },
            ),
            (
                "#release 5.2\u{202E}1",
                CommandProblem::BadVersion {
                    value: "5.2\u{202E}1".into(),
                    problem: VersionProblem::Invisible,
                },
            ),
            (
                "#merge-into twelve",
                CommandProblem::BadValue {
                    command: "merge-into",
                    value: "twelve".into(),
                    expected: "a ticket number",
                },
            ),
            (
                "#move-to",
                CommandProblem::Missing {
                    command: "move-to",
                    expected: "a ticket number or new",
                },
            ),
            (
                "#frobnicate now",
                CommandProblem::Unknown("frobnicate".into()),
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(one(line), Err(expected), "{line}");
        }
    }

    #[test]
    fn only_the_top_block_is_commands_and_it_leaves_the_comment() {
        let parsed = parse("\n#status closed\n#follow\nThanks, all fixed.\n#status new\n");
        assert_eq!(
            parsed
                .commands
                .iter()
                .map(|c| c.line.as_str())
                .collect::<Vec<_>>(),
            ["#status closed", "#follow"]
        );
        assert_eq!(parsed.rest, "Thanks, all fixed.\n#status new");

        for text in [
            "Thanks!\n#status closed",
            "#1 priority is the login page",
            "# Heading",
            "> #status closed",
            "  text",
        ] {
            assert!(parse(text).commands.is_empty(), "{text:?}");
            assert_eq!(parse(text).rest, text);
        }
        let only = parse("#list\n");
        assert_eq!(only.rest, "");
        assert!(
            only.commands[0]
                .parsed
                .as_ref()
                .is_ok_and(|c| *c == Command::List(list::Scope::Mine))
        );
    }

    #[test]
    fn commands_that_change_who_sees_a_ticket_are_marked() {
        let cases = [
            (Command::Share(vec![]), Reach::Grants),
            (Command::ShareOrg("x".into()), Reach::Grants),
            (Command::Unshare(vec![]), Reach::Removes),
            (Command::UnshareOrg("x".into()), Reach::Removes),
            (Command::Unfollow, Reach::Removes),
            (Command::Follow, Reach::Keeps),
            (Command::Status(Status::Closed), Reach::Keeps),
            (Command::Priority(Priority::P1), Reach::Keeps),
            (Command::Release(version("4.2")), Reach::Keeps),
            (Command::Internal, Reach::Keeps),
            (Command::List(list::Scope::Mine), Reach::Keeps),
            (Command::Help, Reach::Keeps),
        ];
        for (command, reach) in cases {
            assert_eq!(command.reach(), reach, "{command:?}");
        }
    }

    #[test]
    fn greetings_and_sign_offs_are_not_requests() {
        let cases = [
            ("nothing", "", true),
            ("thanks", "Thanks!", true),
            ("sign-off with a name", "Best regards,\nAlice Anders", true),
            ("greeting and signature", "Hi,\n\nThanks\n--\nAlice", true),
            ("Japanese", "よろしくお願いします。\n山田", true),
            ("a question", "Why is my printer on fire?", false),
            (
                "a request",
                "The login page shows an error since this morning, please check",
                false,
            ),
            ("four lines", "Hi\nthere\nmore\ntext", false),
        ];
        for (name, rest, expected) in cases {
            assert_eq!(only_pleasantries(rest), expected, "{name}");
        }
    }
}
