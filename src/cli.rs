//! The command line (DESIGN "Interfaces"). Each command calls into the library
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
use crate::store::{LogFilter, TicketFilter};

/// sysexits.h EX_TEMPFAIL: an MTA keeps the message and retries.
pub const EX_TEMPFAIL: u8 = 75;

#[derive(Debug, Parser)]
#[command(
    name = "ticketgate",
    version,
    about = "Email-driven support-ticketing gateway"
)]
pub struct Cli {
    /// Config file (default: config/ticketgate.toml when present).
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
    /// Split a message body into reply, signature and quoted parts (JSON).
    ExtractReply {
        /// The body is HTML.
        #[arg(long)]
        html: bool,
        /// A file, or `-` for stdin.
        file: PathBuf,
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
    },
    /// List registered users.
    List {
        /// A JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
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

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
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
    if let Command::ExtractReply { html, file } = &cli.command {
        return extract_reply(*html, file);
    }
    let settings = Settings::load(cli.config.as_deref())?;
    if let Command::Rules(RulesCommand::Check) = &cli.command {
        return rules_check(&settings);
    }
    let app = App::open(settings).await?;
    match cli.command {
        Command::Serve => {
            let cancel = CancellationToken::new();
            let stop = cancel.clone();
            tokio::spawn(async move {
                shutdown_signal().await;
                stop.cancel();
            });
            app.serve(cancel).await?;
        }
        Command::Migrate => println!("database is up to date"),
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
            println!(
                "sent {}, failed {} (will retry), dead {}",
                stats.sent, stats.failed, stats.dead
            );
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
                        r.outcome,
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
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!(
                    "message {id} replayed: {} {}",
                    report.outcome,
                    report
                        .ticket
                        .map(|t| format!("#{t}"))
                        .or(report.reason.clone())
                        .unwrap_or_default()
                );
            }
        }
        Command::Token(cmd) => token(&app, cmd).await?,
        Command::ExtractReply { .. } | Command::Rules(_) => unreachable!("handled above"),
    }
    Ok(ExitCode::SUCCESS)
}

async fn ingest_stdin(config: Option<PathBuf>, args: &IngestArgs) -> ExitCode {
    let result: anyhow::Result<IngestReport> = async {
        let app = App::open(Settings::load(config.as_deref())?).await?;
        // Oversized mail is never held whole: its outcome (`rejected`,
        // `too_large`) is recorded from what was kept, and exit 0 tells the
        // MTA not to try again.
        let read = source::read_bounded(
            std::io::stdin().lock(),
            None,
            app.ingestor.policy().limits(),
        )
        .context("reading stdin")?;
        let report = app
            .ingestor
            .ingest(Delivery {
                raw: &read.raw,
                origin: "stdin",
                notify: !args.no_notify,
                declared_size: read.declared_size(),
                ..Default::default()
            })
            .await?;
        Ok(report)
    }
    .await;
    match result {
        Ok(report) => {
            print_report(&report, "stdin", args.json);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ticketgate: temporary failure, the message was not recorded: {e:#}");
            ExitCode::from(EX_TEMPFAIL)
        }
    }
}

fn print_report(report: &IngestReport, origin: &str, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string(report).expect("reports serialize")
        );
    } else {
        println!("{}", report_line(report, origin));
    }
}

fn report_line(r: &IngestReport, origin: &str) -> String {
    let mut line = format!("{origin}\t{}", r.outcome);
    if let Some(t) = r.ticket {
        line.push_str(&format!("\tticket #{t}"));
    }
    if let Some(reason) = &r.reason {
        line.push_str(&format!("\t{reason}"));
    }
    line
}

async fn ingest_paths(app: &App, args: &IngestArgs) -> anyhow::Result<ExitCode> {
    let (mut transient, mut failed) = (0usize, 0usize);
    let mut items = Vec::new();
    for path in &args.paths {
        match source::expand(std::slice::from_ref(path)) {
            // Said, so an empty run is never mistaken for one that took mail.
            Ok(found) if found.is_empty() => eprintln!(
                "{}: no messages to ingest ({})",
                path.display(),
                if source::maildir::is_maildir(path) {
                    "a Maildir with nothing in new/ or cur/"
                } else if path.is_dir() {
                    "a folder with no message files"
                } else {
                    "no message in it"
                }
            ),
            Ok(found) => items.extend(found),
            Err(e) => {
                // Named, and the other paths still taken.
                eprintln!("{}: not read: {e}", path.display());
                failed += 1;
            }
        }
    }
    let bar = if !args.json && std::io::stderr().is_terminal() {
        let bar =
            ProgressBar::with_draw_target(Some(items.len() as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} messages, {per_sec}, eta {eta}")
                .expect("static template"),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let limits = app.ingestor.policy().limits();
    for item in &items {
        let origin = item.origin();
        let outcome = match item.read(limits) {
            Ok(read) => app
                .ingestor
                .ingest(Delivery {
                    raw: &read.raw,
                    origin: &origin,
                    notify: !args.no_notify,
                    declared_size: read.declared_size(),
                    ..Default::default()
                })
                .await
                .map_err(|e| (e.is_transient(), anyhow::Error::new(e))),
            Err(e) => Err((
                false,
                anyhow::Error::new(e).context(format!("reading {origin}")),
            )),
        };
        match outcome {
            Ok(report) if args.json => println!("{}", serde_json::to_string(&report)?),
            Ok(report) => bar.suspend(|| println!("{}", report_line(&report, &origin))),
            Err((is_transient, e)) => {
                if is_transient {
                    transient += 1;
                } else {
                    failed += 1;
                }
                bar.suspend(|| eprintln!("{origin}: not recorded: {e:#}"));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else if transient > 0 {
        ExitCode::from(EX_TEMPFAIL)
    } else {
        ExitCode::SUCCESS
    })
}

async fn org(app: &App, cmd: OrgCommand) -> anyhow::Result<()> {
    match cmd {
        OrgCommand::Add { name, domains } => {
            let org = manage::add_org(app.store.as_ref(), &name, &domains).await?;
            println!("organization {} ({}) added", org.name, org.slug);
        }
        OrgCommand::List { json } => {
            let orgs = app.store.list_orgs().await?;
            if json {
                print_json(&wire::list::<_, wire::Org>(orgs))?;
            } else {
                let mut table = Table::new(&["SLUG", "NAME", "DOMAINS", "LEADS"]);
                for o in orgs {
                    table.row([o.slug, o.name, or_dash(o.domains), or_dash(o.leads)]);
                }
                table.print("no organizations");
            }
        }
        OrgCommand::Lead(LeadCommand::Add { org, email }) => {
            let found = manage::add_lead(app.store.as_ref(), &org, &email).await?;
            println!("{email} is a delivery lead of {}", found.name);
        }
        OrgCommand::Lead(LeadCommand::Remove { org, email }) => {
            let found = manage::remove_lead(app.store.as_ref(), &org, &email).await?;
            println!("{email} is no longer a delivery lead of {}", found.name);
        }
    }
    Ok(())
}

async fn token(app: &App, cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create { user, label, json } => {
            let email = EmailAddress::parse(&user)?;
            let user = app
                .store
                .find_user(&email)
                .await?
                .with_context(|| format!("no user {email}"))?;
            if user.role != Role::Staff {
                bail!("{email} is not staff: API tokens act as a staff user");
            }
            let token = crate::api::new_token()
                .map_err(|e| anyhow::anyhow!("reading random bytes: {e}"))?;
            let row = app
                .store
                .create_token(
                    user.id,
                    &crate::api::token_hash(&token),
                    label.as_deref(),
                    time::OffsetDateTime::now_utc(),
                )
                .await?;
            if json {
                println!("{}", serde_json::json!({"token": token, "id": row.id}));
            } else {
                println!("{token}");
            }
        }
        TokenCommand::List { user, json } => {
            let user_id = match user {
                Some(u) => {
                    let email = EmailAddress::parse(&u)?;
                    let found = app.store.find_user(&email).await?;
                    Some(found.with_context(|| format!("no user {email}"))?.id)
                }
                None => None,
            };
            let tokens = app.store.list_tokens(user_id).await?;
            if json {
                print_json(&wire::list::<_, wire::ApiToken>(tokens))?;
            } else {
                let mut table = Table::new(&["ID", "USER", "LABEL", "CREATED", "STATE"]);
                for t in tokens {
                    table.row([
                        t.id.to_string(),
                        t.user,
                        t.label.unwrap_or_else(|| "-".into()),
                        short_time(&t.created_at),
                        t.revoked_at
                            .map(|r| format!("revoked {}", short_time(&r)))
                            .unwrap_or_else(|| "active".into()),
                    ]);
                }
                table.print("no tokens");
            }
        }
        TokenCommand::Revoke { id } => {
            if !app
                .store
                .revoke_token(id, time::OffsetDateTime::now_utc())
                .await?
            {
                bail!("no active token {id}");
            }
            println!("token {id} revoked");
        }
    }
    Ok(())
}

async fn user(app: &App, cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add {
            email,
            name,
            org,
            role,
            locale,
            no_invite,
        } => {
            let user = manage::register_user(
                &app.ingestor,
                &manage::UserRequest {
                    email: &email,
                    name: &name,
                    org: org.as_deref(),
                    role: role.as_str(),
                    locale: &locale,
                    invite: !no_invite,
                },
            )
            .await?;
            println!("user {} added (id {})", user.email, user.id);
        }
        UserCommand::Edit {
            email,
            name,
            role,
            locale,
            org,
            no_org,
        } => {
            let org = match (org, no_org) {
                (Some(o), _) => Some(Some(o)),
                (None, true) => Some(None),
                (None, false) => None,
            };
            let user = manage::edit_user(
                app.store.as_ref(),
                &email,
                &manage::UserEdit {
                    name: name.as_deref(),
                    role,
                    locale: locale.as_deref(),
                    org: org.as_ref().map(|o| o.as_deref()),
                },
            )
            .await?;
            println!(
                "user {}: {}, {}, {}, {}",
                user.email,
                user.name,
                user.role.as_str(),
                user.locale,
                user.org.as_deref().unwrap_or("no organization")
            );
        }
        UserCommand::List { json } => {
            let users = app.store.list_users().await?;
            if json {
                print_json(&wire::list::<_, wire::User>(users))?;
            } else {
                let mut table = Table::new(&["ID", "EMAIL", "ROLE", "ORG", "LOCALE", "NAME"]);
                for u in users {
                    table.row([
                        u.id.to_string(),
                        u.email.to_string(),
                        u.role.as_str().to_string(),
                        u.org.unwrap_or_else(|| "-".into()),
                        u.locale,
                        u.name,
                    ]);
                }
                table.print("no users");
            }
        }
    }
    Ok(())
}

async fn ticket(app: &App, cmd: TicketCommand) -> anyhow::Result<()> {
    match cmd {
        TicketCommand::List {
            status,
            limit,
            json,
        } => {
            let tickets = app
                .store
                .list_tickets(&TicketFilter {
                    status,
                    limit,
                    ..Default::default()
                })
                .await?;
            if json {
                print_json(&wire::list::<_, wire::TicketSummary>(tickets))?;
            } else {
                let mut table = Table::new(&[
                    "TICKET",
                    "STATUS",
                    "PRIORITY",
                    "REQUESTER",
                    "ORG",
                    "UPDATED",
                    "SUBJECT",
                ]);
                for t in tickets {
                    table.row([
                        format!("#{}", t.id),
                        app.settings.status_label(t.status),
                        t.priority
                            .map(|p| p.as_str().to_uppercase())
                            .unwrap_or_else(|| "-".into()),
                        t.requester,
                        t.org.unwrap_or_else(|| "-".into()),
                        short_time(&t.updated_at),
                        t.subject,
                    ]);
                }
                table.print("no tickets");
            }
        }
        TicketCommand::Show { id, json } => {
            let mut view = app
                .store
                .ticket_view(id)
                .await?
                .with_context(|| format!("no ticket #{id}"))?;
            view.status_label = app.settings.status_label(view.status);
            if json {
                print_json(&wire::TicketView::from(view))?;
            } else {
                println!("#{} {}", view.id, view.subject);
                println!(
                    "status: {}   priority: {}",
                    view.status_label,
                    view.priority
                        .map(|p| p.as_str().to_uppercase())
                        .unwrap_or_else(|| "-".into())
                );
                println!(
                    "requester: {}   orgs: {}",
                    view.requester,
                    view.orgs.join(", ")
                );
                let followers: Vec<String> = view
                    .followers
                    .iter()
                    .map(|f| format!("{} ({})", f.email, f.source.as_str()))
                    .collect();
                println!("followers: {}", followers.join(", "));
                for c in &view.comments {
                    println!(
                        "\n--- comment {} by {} at {}{}",
                        c.id,
                        c.author,
                        short_time(&c.created_at),
                        if c.internal { " (internal)" } else { "" }
                    );
                    println!("{}", c.body);
                    for a in &c.attachments {
                        println!(
                            "[attachment: {} {} {} bytes]",
                            a.filename, a.content_type, a.size
                        );
                    }
                }
                if !view.events.is_empty() {
                    println!("\n--- history");
                    for e in &view.events {
                        println!(
                            "{}  {}  {}",
                            short_time(&e.created_at),
                            e.actor.as_deref().unwrap_or("(rules and system)"),
                            describe_event(e, &app.settings)
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

fn extract_reply(html: bool, file: &PathBuf) -> anyhow::Result<ExitCode> {
    let mut bytes = Vec::new();
    if file.as_os_str() == "-" {
        std::io::stdin().lock().read_to_end(&mut bytes)?;
    } else {
        bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    }
    let text = String::from_utf8_lossy(&bytes);
    let extracted = if html {
        reply::extract_html(&text)
    } else {
        reply::extract_text(&text)
    };
    println!("{}", serde_json::to_string_pretty(&extracted)?);
    Ok(ExitCode::SUCCESS)
}

fn rules_check(settings: &Settings) -> anyhow::Result<ExitCode> {
    match settings.rules() {
        Ok(rules) => {
            println!("{}: {} rules", settings.rules.file, rules.rules.len());
            for (i, rule) in rules.rules.iter().enumerate() {
                println!("{:>2}. {}", i + 1, rule.name);
                println!("    on   {}", rule.on);
                let when = rule.when.conditions();
                if !when.is_empty() {
                    println!("    when {}", when.join(", "));
                }
                let mut then: Vec<String> = rule.then.iter().map(ToString::to_string).collect();
                if rule.stop {
                    then.push("stop".into());
                }
                println!("    then {}", then.join(", "));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// A table for people: a header row, then columns padded to their widest cell
/// (scripts use `--json`).
struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(headers: &[&str]) -> Self {
        Self {
            rows: vec![headers.iter().map(|h| h.to_string()).collect()],
        }
    }

    fn row<const N: usize>(&mut self, cells: [String; N]) {
        // A mail subject or a name must not break the row or the columns.
        self.rows.push(
            cells
                .into_iter()
                .map(|c| c.replace(char::is_control, " "))
                .collect(),
        );
    }

    /// Prints the table, or `empty` alone when it has no rows.
    fn print(self, empty: &str) {
        if self.rows.len() == 1 {
            println!("({empty})");
            return;
        }
        let columns = self.rows[0].len();
        let mut widths = vec![0; columns];
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = std::io::stdout().lock();
        for row in &self.rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                line.push_str(cell);
                if i + 1 < columns {
                    let pad = widths[i] - cell.chars().count() + 2;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            // A closed pipe (`| head`) ends the listing quietly.
            if writeln!(out, "{}", line.trim_end()).is_err() {
                return;
            }
        }
    }
}

/// `2026-12-02T14:23:48.324148Z` as `2026-12-02 14:23:48` (UTC, as stored);
/// anything else as it is.
fn short_time(stored: &str) -> String {
    match stored.get(..19) {
        Some(head) if stored.as_bytes().get(10) == Some(&b'T') => head.replacen('T', " ", 1),
        _ => stored.to_string(),
    }
}

fn or_dash(items: Vec<String>) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(",")
    }
}

/// One line of a ticket's history in words (`ticket show`); kinds this does
/// not know print with their data as recorded.
fn describe_event(e: &crate::store::EventView, settings: &Settings) -> String {
    let text = |key: &str| e.data.get(key).and_then(|v| v.as_str()).unwrap_or("?");
    let label = |key: &str| {
        e.data
            .get(key)
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse::<Status>().ok())
            .map(|s| settings.status_label(s))
            .unwrap_or_else(|| text(key).to_string())
    };
    match e.kind.as_str() {
        "ticket_created" => format!("opened the ticket: {}", text("subject")),
        "comment_added" => {
            let internal = e.data.get("internal").and_then(|v| v.as_bool()) == Some(true);
            format!(
                "added {}comment {}",
                if internal { "an internal " } else { "" },
                e.data
                    .get("comment")
                    .map(|c| c.to_string())
                    .unwrap_or_default()
            )
        }
        "status_changed" => format!(
            "changed the status from {} to {}",
            label("from"),
            label("to")
        ),
        "priority_set" => format!("set the priority to {}", text("priority")),
        "release_noted" => format!("noted release {}", text("release")),
        "follower_added" => format!("added follower {} ({})", text("email"), text("source")),
        "follower_removed" => format!("removed follower {}", text("email")),
        "org_added" => format!("shared the ticket with organization {}", text("org")),
        "org_removed" => format!("unshared the ticket from organization {}", text("org")),
        "mentioned" => format!("mentioned {}", text("email")),
        "recipient_bouncing" => format!("mail to {} bounced", text("email")),
        other => format!("{} {}", other.replace('_', " "), e.data),
    }
}
