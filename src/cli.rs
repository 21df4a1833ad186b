//! The command line (DESIGN "Interfaces"). Each command calls into the library
//! and prints; nothing here decides anything about mail or tickets.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;

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
    #[arg(long, global = true, env = "TICKETGATE_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Poll mailboxes and send notifications until SIGINT/SIGTERM.
    Serve,
    /// Create or upgrade the database schema.
    Migrate,
    /// Ingest messages from files, Maildir folders, mbox files, or `-` (stdin).
    Ingest(IngestArgs),
    /// Organizations.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Users.
    #[command(subcommand)]
    User(UserCommand),
    /// Tickets.
    #[command(subcommand)]
    Ticket(TicketCommand),
    /// Queued notifications.
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// The ingest log: every delivery and its outcome.
    #[command(subcommand)]
    Messages(MessagesCommand),
    /// The rules file.
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
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    Add {
        name: String,
        /// A mail domain whose senders are auto-registered into the org (repeatable).
        #[arg(long = "domain")]
        domains: Vec<String>,
    },
    List {
        #[arg(long)]
        json: bool,
    },
    /// Delivery leads of an organization.
    #[command(subcommand)]
    Lead(LeadCommand),
}

#[derive(Debug, Subcommand)]
pub enum LeadCommand {
    Add { org: String, email: String },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    Add {
        email: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        org: Option<String>,
        #[arg(long, default_value = "customer")]
        role: String,
        #[arg(long, default_value = "en")]
        locale: String,
        /// Do not email the new user an invitation.
        #[arg(long)]
        no_invite: bool,
    },
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TicketCommand {
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        limit: Option<i64>,
        #[arg(long)]
        json: bool,
    },
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    List {
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
    List {
        #[arg(long)]
        outcome: Option<String>,
        #[arg(long)]
        limit: Option<i64>,
        #[arg(long)]
        json: bool,
    },
    /// Run a quarantined or rejected message through intake again.
    Replay {
        id: i64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Prints a new token once; only its hash is kept.
    Create {
        #[arg(long)]
        user: String,
        /// What the token is for (shown by `token list`).
        #[arg(long)]
        label: Option<String>,
        #[arg(long)]
        json: bool,
    },
    List {
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revokes a token at once: the next request with it gets 401.
    Revoke { id: i64 },
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
                print_json(&rows)?;
            } else {
                for r in rows {
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}",
                        r.id,
                        r.status.as_str(),
                        r.attempts,
                        r.template,
                        r.to,
                        r.subject
                    );
                }
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
            let outcome = outcome.map(|o| o.parse::<Outcome>()).transpose()?;
            let rows = app
                .store
                .list_log(&LogFilter {
                    outcome,
                    limit,
                    after: None,
                })
                .await?;
            if json {
                print_json(&rows)?;
            } else {
                for r in rows {
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}",
                        r.id,
                        r.outcome,
                        r.reason.as_deref().unwrap_or("-"),
                        r.ticket
                            .map(|t| format!("#{t}"))
                            .unwrap_or_else(|| "-".into()),
                        r.sender.as_deref().unwrap_or("-"),
                        r.subject.as_deref().unwrap_or("")
                    );
                }
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
                print_json(&orgs)?;
            } else {
                for o in orgs {
                    println!(
                        "{}\t{}\t{}\t{}",
                        o.slug,
                        o.name,
                        o.domains.join(","),
                        o.leads.join(",")
                    );
                }
            }
        }
        OrgCommand::Lead(LeadCommand::Add { org, email }) => {
            let found = manage::add_lead(app.store.as_ref(), &org, &email).await?;
            println!("{email} is a delivery lead of {}", found.name);
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
                print_json(&tokens)?;
            } else {
                for t in tokens {
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        t.id,
                        t.user,
                        t.label.as_deref().unwrap_or("-"),
                        t.created_at,
                        t.revoked_at
                            .map(|r| format!("revoked {r}"))
                            .unwrap_or_else(|| "active".into())
                    );
                }
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
                    role: &role,
                    locale: &locale,
                    invite: !no_invite,
                },
            )
            .await?;
            println!("user {} added (id {})", user.email, user.id);
        }
        UserCommand::List { json } => {
            let users = app.store.list_users().await?;
            if json {
                print_json(&users)?;
            } else {
                for u in users {
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        u.id,
                        u.email,
                        u.role.as_str(),
                        u.org.as_deref().unwrap_or("-"),
                        u.name
                    );
                }
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
            let status = status.map(|s| s.parse::<Status>()).transpose()?;
            let tickets = app
                .store
                .list_tickets(&TicketFilter {
                    status,
                    limit,
                    ..Default::default()
                })
                .await?;
            if json {
                print_json(&tickets)?;
            } else {
                for t in tickets {
                    println!(
                        "#{}\t{}\t{}\t{}\t{}",
                        t.id,
                        app.settings.status_label(t.status),
                        t.priority
                            .map(|p| p.as_str().to_uppercase())
                            .unwrap_or_else(|| "-".into()),
                        t.requester,
                        t.subject
                    );
                }
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
                print_json(&view)?;
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
                        c.created_at,
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
                let actions: Vec<String> = rule.then.iter().map(|a| format!("{a:?}")).collect();
                println!(
                    "{:>2}. on {:?}: {}{} -> {}",
                    i + 1,
                    rule.on,
                    rule.name,
                    if rule.stop { " (stop)" } else { "" },
                    actions.join(", ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
