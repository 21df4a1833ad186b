//! Email commands (docs/contract.md, "Mail"): consecutive `#command` lines at
//! the very top of the new text. Parsing is generous about spelling and strict
//! about position: a `#` further down is text, so quoting a command never runs it.

use super::ids::EmailAddress;
use super::ticket::{Priority, Reach, Status};
use super::version::{Version, VersionProblem};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Status(Status),
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
    /// Alone in a mail to the support address: answer with the sender's open tickets.
    List,
    /// Answer with the commands the sender may use.
    Help,
}

impl Command {
    /// Commands that ask for an answer rather than change a ticket: a mail
    /// of only these (and a greeting) opens no ticket.
    pub fn is_question(&self) -> bool {
        matches!(self, Command::List | Command::Help)
    }

    /// How the command changes who may see the ticket; see `ticket::needs_proof`.
    pub fn reach(&self) -> Reach {
        match self {
            Command::Share(_) | Command::ShareOrg(_) => Reach::Grants,
            Command::Unshare(_) | Command::UnshareOrg(_) | Command::Unfollow => Reach::Removes,
            Command::Status(_)
            | Command::Priority(_)
            | Command::Follow
            | Command::Release(_)
            | Command::Internal
            | Command::List
            | Command::Help => Reach::Keeps,
        }
    }
}

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
    let nonempty = |command: &'static str, expected: &'static str| {
        let v = unquote(args);
        if v.is_empty() {
            Err(CommandProblem::Missing { command, expected })
        } else {
            Ok(v.to_string())
        }
    };
    match key.as_str() {
        "status" | "state" => {
            let value = nonempty("status", "a status")?;
            value
                .parse()
                .map(Command::Status)
                .map_err(|_| CommandProblem::BadValue {
                    command: "status",
                    value,
                    expected: "a status",
                })
        }
        // Shorthands people type.
        "close" | "closed" | "resolve" | "resolved" if args.is_empty() => {
            Ok(Command::Status(Status::Closed))
        }
        "reopen" if args.is_empty() => Ok(Command::Status(Status::New)),
        "priority" | "prio" => {
            let value = nonempty("priority", "a priority (P1 to P4)")?;
            value
                .parse()
                .map(Command::Priority)
                .map_err(|_| CommandProblem::BadValue {
                    command: "priority",
                    value,
                    expected: "a priority (P1 to P4)",
                })
        }
        "p1" | "p2" | "p3" | "p4" if args.is_empty() => key
            .parse()
            .map(Command::Priority)
            .map_err(|_| CommandProblem::Unknown(key)),
        "follow" | "watch" | "subscribe" => Ok(Command::Follow),
        "unfollow" | "unwatch" | "unsubscribe" => Ok(Command::Unfollow),
        "share" | "cc" => addresses("share", args).map(Command::Share),
        "unshare" => addresses("unshare", args).map(Command::Unshare),
        "share-org" | "shareorg" => nonempty("share-org", "an organization").map(Command::ShareOrg),
        "unshare-org" | "unshareorg" => {
            nonempty("unshare-org", "an organization").map(Command::UnshareOrg)
        }
        "release" | "fixed-in" | "fixedin" => {
            let value = nonempty("release", "a version")?;
            // The one parse every channel uses (src/domain/version.rs).
            Version::parse(&value)
                .map(Command::Release)
                .map_err(|problem| CommandProblem::BadVersion { value, problem })
        }
        "internal" | "private" => Ok(Command::Internal),
        "list" | "tickets" => Ok(Command::List),
        "help" | "commands" if args.is_empty() => Ok(Command::Help),
        _ => Err(CommandProblem::Unknown(word.to_string())),
    }
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
            ("#list", Command::List),
            ("#help", Command::Help),
            ("#Help", Command::Help),
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
                .is_ok_and(|c| *c == Command::List)
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
            (Command::List, Reach::Keeps),
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
