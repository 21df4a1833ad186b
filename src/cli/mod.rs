//! The command line (docs/contract.md, "Interfaces"). Each command calls into the library
//! and prints; nothing here decides anything about mail or tickets.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;

use anyhow::{Context, bail};
use clap::builder::{PossibleValue, TypedValueParser};
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;

use crate::api::wire;
use crate::app::{App, shutdown_signal};
use crate::config::Settings;
use crate::domain::ids::EmailAddress;
use crate::domain::outcome::Outcome;
use crate::domain::reply;
use crate::domain::ticket::{Role, Status};
use crate::ingest::{Delivery, IngestReport};
use crate::manage;
use crate::source;
use crate::store::{LogFilter, Missing, OwnerFilter, TicketFilter};

/// `println!` for a command's output that returns an error instead of
/// panicking when stdout is gone; see [`ReaderGone`].
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::out_line(format_args!($($arg)*))
    };
}

mod admin;
mod ingest;
mod table;

use admin::{extract_reply, org, rules_check, ticket, token, user};
use ingest::{ingest_paths, ingest_stdin};
use table::{Table, describe_event, or_dash, short_time};

/// sysexits.h EX_TEMPFAIL: an MTA keeps the message and retries.
pub const EX_TEMPFAIL: u8 = 75;

#[derive(Debug, Parser)]
#[command(
    name = "ticketgate",
    version,
    about = "Email-driven support-ticketing gateway"
)]
pub struct Cli {
    /// Config file (default: config/ticketgate.toml when present, else /etc/ticketgate/ticketgate.toml when present).
    #[arg(
        long,
        global = true,
        env = "TICKETGATE_CONFIG",
        help_heading = "Global options"
    )]
    pub config: Option<PathBuf>,
    /// Log lines on stderr: `text` (coloured on a terminal) or `json` (one object a line, for log shippers).
    #[arg(
        long,
        global = true,
        env = "TICKETGATE_LOG_FORMAT",
        default_value = "text",
        value_enum,
        help_heading = "Global options"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// How `main` writes log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Poll mailboxes and send notifications until SIGINT/SIGTERM.
    Serve,
    /// Create or upgrade the database schema.
    Migrate,
    /// Copy the running SQLite store, raw mail included, into a new file.
    Backup {
        /// The new file (an existing one is never overwritten).
        path: PathBuf,
    },
    /// Check the configuration against what it names (database, mailboxes,
    /// relay, templates, rules) without changing anything; exit 1 on a failure.
    Check,
    /// Ingest messages from files, Maildir folders, mbox files, or `-` (stdin).
    Ingest(IngestArgs),
    /// Organizations: add, list, delivery leads.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Users: add, edit, list.
    #[command(subcommand)]
    User(UserCommand),
    /// Tickets: list, show.
    #[command(subcommand)]
    Ticket(TicketCommand),
    /// Notifications: list what is queued and sent, send what is due.
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// The ingest log: every delivery and its outcome; replay.
    #[command(subcommand)]
    Messages(MessagesCommand),
    /// The rules file: check it.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Admin API tokens (one per staff user and purpose; stored hashed).
    #[command(subcommand)]
    Token(TokenCommand),
    /// People's data: export everything stored about a person, or erase it.
    #[command(subcommand)]
    Person(PersonCommand),
    /// Retention of raw mail and closed tickets (`[retention]`).
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Split a message body into reply, signature and quoted parts (JSON).
    ExtractReply {
        /// The body is HTML.
        #[arg(long)]
        html: bool,
        /// The sender, as `Name <addr>`: their own name, initials or mailbox name on the last lines are a signature.
        #[arg(long, value_name = "SENDER")]
        from: Option<String>,
        /// A file, or `-` for stdin.
        file: PathBuf,
    },
}

impl Command {
    /// Only commands that write make a missing database (and say so in the
    /// log); the rest name the path and fail, so a mistyped `[database] url`
    /// never reads as an empty desk.
    fn missing_database(&self) -> Missing {
        match self {
            Command::Serve
            | Command::Migrate
            | Command::Ingest(_)
            | Command::Org(OrgCommand::Add { .. })
            | Command::User(UserCommand::Add { .. }) => Missing::Create,
            _ => Missing::Refuse,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum PersonCommand {
    /// Everything stored about a person as one JSON document on stdout (a
    /// subject access request), or a zip with their mail and files.
    Export {
        /// Their address.
        email: String,
        /// Write a zip (data.json, messages/*.eml, files/) here instead.
        #[arg(long, value_name = "FILE.zip")]
        out: Option<PathBuf>,
    },
    /// Erase a person by redaction: a pseudonym for their name and address,
    /// their words, files and raw mail removed; tickets and counts stay.
    Erase {
        /// Their address.
        email: String,
        /// Say what would be removed, and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// One JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Apply `[retention]` now (`serve` does it once a day).
    Run,
    /// What deleted closed tickets left for reports: counts by month,
    /// organization and state.
    Counts {
        /// One JSON array on stdout.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// One JSON object per message on stdout.
    #[arg(long)]
    pub json: bool,
    /// Import history: record everything, email no one.
    #[arg(long)]
    pub no_notify: bool,
    /// Message files, Maildir folders (new/ and cur/), mbox files, or `-` for one message on stdin.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Add an organization; its slug is derived from the name.
    Add {
        /// The organization's name, e.g. "Customer Site A" (slug customer-site-a).
        name: String,
        /// A mail domain whose senders are auto-registered into the org (repeatable).
        #[arg(long = "domain", value_name = "DOMAIN")]
        domains: Vec<String>,
    },
    /// List organizations with their domains and delivery leads.
    List {
        /// A JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Delivery leads of an organization.
    #[command(subcommand)]
    Lead(LeadCommand),
}

#[derive(Debug, Subcommand)]
pub enum LeadCommand {
    /// Make a staff user a delivery lead of an organization.
    Add {
        /// The organization's name or slug.
        org: String,
        /// The staff user's address.
        email: String,
    },
    /// Stop a staff user being a delivery lead of an organization.
    Remove {
        /// The organization's name or slug.
        org: String,
        /// The lead's address.
        email: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Register a user and email them an invitation.
    Add {
        /// Their email address.
        email: String,
        /// Their name, as shown in mail and on tickets.
        #[arg(long)]
        name: String,
        /// The organization (name or slug) a customer belongs to.
        #[arg(long)]
        org: Option<String>,
        /// Customers see their own and their organization's tickets; staff see all.
        #[arg(long, default_value = "customer", value_parser = Named(Role::ALL))]
        role: Role,
        /// Language of their mail: en or ja.
        #[arg(long, default_value = "en")]
        locale: String,
        /// Do not email the new user an invitation.
        #[arg(long)]
        no_invite: bool,
    },
    /// Change a user's name, role, language or organization.
    Edit {
        /// The user's email address.
        email: String,
        /// Their new name.
        #[arg(long)]
        name: Option<String>,
        /// Their new role.
        #[arg(long, value_parser = Named(Role::ALL))]
        role: Option<Role>,
        /// The new language of their mail: en or ja.
        #[arg(long)]
        locale: Option<String>,
        /// Move them into this organization (name or slug).
        #[arg(long, conflicts_with = "no_org")]
        org: Option<String>,
        /// Take them out of their organization.
        #[arg(long)]
        no_org: bool,
        /// They may no longer sign in, and their mail is taken as a stranger's.
        #[arg(long, conflicts_with = "activate")]
        deactivate: bool,
        /// Undo --deactivate.
        #[arg(long)]
        activate: bool,
    },
    /// List registered users.
    List {
        /// A JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print a one-time portal sign-in link for a user (valid 15 minutes),
    /// for someone whose mail does not arrive. Nothing is emailed.
    Link {
        /// The user's email address.
        email: String,
    },
}

/// `--owner EMAIL|none`.
fn owner_filter(text: &str) -> Result<OwnerFilter, String> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(OwnerFilter::Nobody);
    }
    crate::domain::ids::EmailAddress::parse(text)
        .map(OwnerFilter::Is)
        .map_err(|e| format!("{e} (or `none` for unassigned tickets)"))
}

#[derive(Debug, Subcommand)]
pub enum TicketCommand {
    /// List tickets by number, oldest first.
    List {
        /// Only tickets with this status.
        #[arg(long, value_parser = Named(Status::ALL))]
        status: Option<Status>,
        /// At most this many tickets (default: all).
        #[arg(long, value_name = "N")]
        limit: Option<i64>,
        /// Only tickets this staff member owns, or `none` for unassigned ones.
        #[arg(long, value_name = "EMAIL|none", value_parser = owner_filter)]
        owner: Option<OwnerFilter>,
        /// A JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show a ticket: its people, comments and history.
    Show {
        /// The ticket number.
        id: i64,
        /// The ticket as JSON (the API's shape).
        #[arg(long)]
        json: bool,
        /// At most this many comments, the newest (before --comments-before); all without it.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..))]
        comments_limit: Option<i64>,
        /// Only comments before this comment id (the first one of the page shown before).
        #[arg(long, value_name = "ID")]
        comments_before: Option<i64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// List queued, sent and failed notifications.
    List {
        /// A JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Send everything due, then exit.
    Flush,
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Validate the rules file and print its rules in order.
    Check,
}

#[derive(Debug, Subcommand)]
pub enum MessagesCommand {
    /// List deliveries and their outcomes, oldest first.
    List {
        /// Only deliveries with this outcome.
        #[arg(long, value_parser = Named(Outcome::ALL.as_slice()))]
        outcome: Option<Outcome>,
        /// At most this many rows (default: all).
        #[arg(long, value_name = "N")]
        limit: Option<i64>,
        /// A JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run a quarantined or rejected message through intake again.
    Replay {
        /// The ingest log id (first column of `messages list`).
        id: i64,
        /// The new outcome as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Discard a quarantined or rejected message: kept in the log, marked,
    /// no longer pending.
    Discard {
        /// The ingest log id (first column of `messages list`).
        id: i64,
        /// The message as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an admin API token and print it once; only its hash is kept.
    Create {
        /// The staff user the token acts as.
        #[arg(long, value_name = "EMAIL")]
        user: String,
        /// What the token is for (shown by `token list`).
        #[arg(long)]
        label: Option<String>,
        /// Print `{"token": …, "id": …}` instead of the token alone.
        #[arg(long)]
        json: bool,
    },
    /// List tokens (never their secrets).
    List {
        /// Only this user's tokens.
        #[arg(long, value_name = "EMAIL")]
        user: Option<String>,
        /// A JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token at once: the next request with it gets 401.
    Revoke {
        /// The token's id (first column of `token list`).
        id: i64,
    },
}

/// The machine names of a closed set of values (statuses, roles, outcomes):
/// the help lists them, and parsing takes the spellings people type.
trait MachineName: Copy + Send + Sync + FromStr + 'static {
    fn machine_name(self) -> &'static str;
}

macro_rules! machine_name {
    ($($t:ty),*) => {$(
        impl MachineName for $t {
            fn machine_name(self) -> &'static str {
                self.as_str()
            }
        }
    )*};
}
machine_name!(Status, Role, Outcome);

#[derive(Clone)]
struct Named<T: 'static>(&'static [T]);

impl<T: MachineName> TypedValueParser for Named<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        let text = value.to_string_lossy();
        text.parse().map_err(|_| {
            let mut err = clap::Error::new(ErrorKind::InvalidValue).with_cmd(cmd);
            if let Some(arg) = arg {
                err.insert(
                    ContextKind::InvalidArg,
                    ContextValue::String(arg.to_string()),
                );
            }
            err.insert(
                ContextKind::InvalidValue,
                ContextValue::String(text.into_owned()),
            );
            err.insert(
                ContextKind::ValidValue,
                ContextValue::Strings(
                    self.0
                        .iter()
                        .map(|v| v.machine_name().to_string())
                        .collect(),
                ),
            );
            err
        })
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            self.0.iter().map(|v| PossibleValue::new(v.machine_name())),
        ))
    }
}

/// The reader of our stdout stopped early (`ticketgate ticket show 1 | head`).
/// Not a failure: `main` ends the command quietly with success, as a program
/// killed by SIGPIPE would end in a shell pipeline, but without the panic
/// that `println!` gives on a closed pipe.
#[derive(Debug)]
pub struct ReaderGone;

impl std::fmt::Display for ReaderGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the reader of the output went away")
    }
}

impl std::error::Error for ReaderGone {}

/// A broken pipe on stdout is [`ReaderGone`]; any other write error is one.
fn stdout_error(e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        anyhow::Error::new(ReaderGone)
    } else {
        anyhow::Error::new(e).context("writing the output")
    }
}

/// One line of output (through `outln!`).
pub(crate) fn out_line(args: std::fmt::Arguments<'_>) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .map_err(stdout_error)
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value).map_err(|e| {
        if e.is_io() {
            stdout_error(e.into())
        } else {
            e.into()
        }
    })?;
    writeln!(out).map_err(stdout_error)
}

/// Runs a command. Errors come back to `main`, which prints them; `ingest -`
/// maps every failure to EX_TEMPFAIL itself, since an MTA is waiting on it.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Ingest(args) = &cli.command
        && args.paths.len() == 1
        && args.paths[0].as_os_str() == "-"
    {
        return Ok(ingest_stdin(cli.config.clone(), args).await);
    }
    if let Command::ExtractReply { html, from, file } = &cli.command {
        return extract_reply(*html, from.as_deref(), file);
    }
    let settings = Settings::load(cli.config.as_deref())?;
    if let Command::Rules(RulesCommand::Check) = &cli.command {
        return rules_check(&settings);
    }
    if let Command::Check = &cli.command {
        return check(&settings).await;
    }
    let app = App::open_with(settings, cli.command.missing_database()).await?;
    match cli.command {
        Command::Serve => {
            let cancel = CancellationToken::new();
            let stop = cancel.clone();
            let signalled = shutdown_signal();
            tokio::spawn(async move {
                signalled.await;
                stop.cancel();
            });
            app.serve(cancel).await?;
        }
        Command::Migrate => outln!("database is up to date")?,
        Command::Backup { path } => {
            app.store
                .backup_into(&path)
                .await
                .with_context(|| format!("backing up into {}", path.display()))?;
            outln!("backed up into {}", path.display())?;
        }
        Command::Ingest(args) => return ingest_paths(&app, &args).await,
        Command::Org(cmd) => org(&app, cmd).await?,
        Command::User(cmd) => user(&app, cmd).await?,
        Command::Ticket(cmd) => ticket(&app, cmd).await?,
        Command::Outbox(OutboxCommand::List { json }) => {
            let rows = app.store.list_outbox().await?;
            if json {
                print_json(&wire::list::<_, wire::OutboxRow>(rows))?;
            } else {
                let mut table =
                    Table::new(&["ID", "STATUS", "ATTEMPTS", "TEMPLATE", "TO", "SUBJECT"]);
                for r in rows {
                    table.row([
                        r.id.to_string(),
                        r.status.as_str().to_string(),
                        r.attempts.to_string(),
                        r.template,
                        r.to,
                        r.subject,
                    ]);
                }
                table.print("no notifications");
            }
        }
        Command::Outbox(OutboxCommand::Flush) => {
            let stats = app.outbox_worker()?.flush().await?;
            outln!(
                "sent {}, failed {} (will retry), dead {}",
                stats.sent,
                stats.failed,
                stats.dead
            )?;
        }
        Command::Messages(MessagesCommand::List {
            outcome,
            limit,
            json,
        }) => {
            let rows = app
                .store
                .list_log(&LogFilter {
                    outcome,
                    limit,
                    after: None,
                })
                .await?;
            if json {
                print_json(&wire::list::<_, wire::LogRow>(rows))?;
            } else {
                let mut table = Table::new(&[
                    "ID", "RECEIVED", "OUTCOME", "REASON", "TICKET", "FROM", "SUBJECT",
                ]);
                for r in rows {
                    table.row([
                        r.id.to_string(),
                        short_time(&r.received_at),
                        r.outcome.to_string(),
                        r.reason.unwrap_or_else(|| "-".into()),
                        r.ticket
                            .map(|t| format!("#{t}"))
                            .unwrap_or_else(|| "-".into()),
                        r.sender.unwrap_or_else(|| "-".into()),
                        r.subject.unwrap_or_default(),
                    ]);
                }
                table.print("no deliveries");
            }
        }
        Command::Messages(MessagesCommand::Replay { id, json }) => {
            let report = app.ingestor.replay(id).await?;
            if json {
                outln!("{}", serde_json::to_string(&report)?)?;
            } else {
                outln!(
                    "message {id} replayed: {} {}",
                    report.outcome,
                    report
                        .ticket
                        .map(|t| format!("#{t}"))
                        .or(report.reason.clone())
                        .unwrap_or_default()
                )?;
            }
        }
        Command::Messages(MessagesCommand::Discard { id, json }) => {
            let row = crate::manage::discard_message(app.store.as_ref(), id).await?;
            if json {
                print_json(&wire::LogRow::from(row))?;
            } else {
                outln!("message {id} discarded (kept in the log)")?;
            }
        }
        Command::Token(cmd) => token(&app, cmd).await?,
        Command::Person(cmd) => return person(&app, cmd).await,
        Command::Retention(RetentionCommand::Run) => {
            let purged = crate::people::apply_retention(
                app.store.as_ref(),
                &app.settings.retention,
                time::OffsetDateTime::now_utc(),
            )
            .await?;
            outln!(
                "removed {} raw messages and {} closed tickets",
                purged.raw_messages,
                purged.closed_tickets
            )?;
        }
        Command::Retention(RetentionCommand::Counts { json }) => {
            let counts = app.store.retained_counts().await?;
            if json {
                print_json(&counts)?;
            } else {
                let mut table = Table::new(&["MONTH", "ORG", "STATE", "TICKETS"]);
                for c in counts {
                    table.row([
                        c.month,
                        c.org.unwrap_or_else(|| "-".into()),
                        c.state,
                        c.tickets.to_string(),
                    ]);
                }
                table.print("no closed tickets removed");
            }
        }
        Command::ExtractReply { .. } | Command::Rules(_) | Command::Check => {
            unreachable!("handled above")
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `ticketgate person`: exit 1 when there is no such person.
async fn person(app: &App, cmd: PersonCommand) -> anyhow::Result<ExitCode> {
    let email = |text: &str| {
        EmailAddress::parse(text).map_err(|_| anyhow::anyhow!("{text:?} is not an email address"))
    };
    match cmd {
        PersonCommand::Export { email: text, out } => {
            let email = email(&text)?;
            let Some(record) = app.store.person_export(&email).await? else {
                eprintln!("no person with the address {email}");
                return Ok(ExitCode::FAILURE);
            };
            match out {
                Some(path) => {
                    crate::people::write_zip(app.store.as_ref(), &record, &path).await?;
                    outln!(
                        "wrote {} ({} tickets, {} comments, {} raw messages)",
                        path.display(),
                        record.tickets.len(),
                        record.comments.len(),
                        record.raw_messages.len()
                    )?;
                }
                None => print_json(&record)?,
            }
        }
        PersonCommand::Erase {
            email: text,
            dry_run,
            json,
        } => {
            let email = email(&text)?;
            let Some(done) =
                crate::people::erase(app.store.as_ref(), &email, None, dry_run).await?
            else {
                eprintln!("no person with the address {email}");
                return Ok(ExitCode::FAILURE);
            };
            if !dry_run && !done.old_pages_dropped {
                eprintln!(
                    "note: the database is in use, so earlier copies of the changed pages stay in its \
                     write-ahead log until the log is next emptied; stop `serve` and run this again \
                     on the pseudonym's address (`{}`) to empty it now",
                    done.pseudonym_email
                );
            }
            if json {
                outln!("{}", serde_json::to_string(&done)?)?;
            } else {
                outln!(
                    "{} {email}{}: {} comments redacted, {} attachments and {} raw messages removed, \
                     {} quotes dropped, {} texts and {} history entries rewritten, {} notifications \
                     removed, {} places on tickets and {} ways to sign in removed, on {} tickets",
                    if dry_run { "would erase" } else { "erased" },
                    if dry_run {
                        String::new()
                    } else {
                        format!(" (now {} <{}>)", done.pseudonym, done.pseudonym_email)
                    },
                    done.comments_redacted,
                    done.attachments_removed,
                    done.raw_messages_removed,
                    done.quotes_dropped,
                    done.texts_rewritten,
                    done.events_rewritten,
                    done.notifications_removed,
                    done.follows_removed,
                    done.sign_ins_removed,
                    done.tickets,
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `ticketgate check`: one line per check as it completes, the fix under a
/// failure, exit 1 if any failed.
async fn check(settings: &Settings) -> anyhow::Result<ExitCode> {
    use crate::check::Verdict;
    let mut written = Ok(());
    let ok = crate::check::run(settings, |line| {
        let result = match &line.verdict {
            Verdict::Ok(detail) => outln!("ok    {}: {detail}", line.what),
            Verdict::Note(detail) => outln!("note  {}: {detail}", line.what),
            Verdict::Failed { found, fix } => {
                outln!("FAIL  {}: {found}\n      fix: {fix}", line.what)
            }
        };
        if written.is_ok() {
            written = result;
        }
    })
    .await;
    written?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
