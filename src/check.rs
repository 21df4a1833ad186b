//! `ticketgate check`: the pre-flight an operator runs before `serve`. It
//! reads the configuration and then tries each thing it names the way
//! `serve` will use it (the database, every mailbox, the relay or outbox
//! folder, the templates, the rules), changing nothing, and says for each
//! failure what to do about it. A wrong IMAP password is found here, not in
//! the logs of a running service.

use std::path::Path;

use crate::app::connect_store;
use crate::config::{MailboxKind, Settings, SmtpKind};
use crate::domain::locale::Locale;
use crate::domain::template::Template;
use crate::mailer::SmtpMailer;
use crate::render::Renderer;
use crate::source::imap;
use crate::store::Missing;

/// The result of one check: what was tried, and what was found.
pub struct Line {
    /// What was checked, e.g. `mailbox support`.
    pub what: String,
    pub verdict: Verdict,
}

pub enum Verdict {
    /// Works; the detail says what was seen.
    Ok(String),
    /// Works, with something the operator should know (a folder `serve`
    /// will create).
    Note(String),
    /// Does not work: what happened, and what to do.
    Failed { found: String, fix: String },
}

impl Line {
    fn ok(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            verdict: Verdict::Ok(detail.into()),
        }
    }

    fn failed(what: impl Into<String>, found: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            verdict: Verdict::Failed {
                found: found.into(),
                fix: fix.into(),
            },
        }
    }

    pub fn is_failure(&self) -> bool {
        matches!(self.verdict, Verdict::Failed { .. })
    }
}

/// Runs every check, handing each line to `out` as soon as it is known (a
/// slow server shows which check waits).
pub async fn run(settings: &Settings, mut out: impl FnMut(&Line)) -> bool {
    let mut ok = true;
    let mut say = |line: Line| {
        ok &= !line.is_failure();
        out(&line);
    };
    say(database(settings).await);
    for mailbox in &settings.mailbox {
        say(self::mailbox(mailbox).await);
    }
    say(relay(settings).await);
    // Rendered with no data, a template's `ticket.id` is empty rather than
    // an error: what is checked is that each parses and its includes and
    // filters exist (the shipped ones are rendered with data by the tests).
    let renderer = Renderer::for_settings(settings).lenient();
    say(templates(&renderer, settings));
    say(rules(&renderer, settings));
    ok
}

async fn database(settings: &Settings) -> Line {
    let what = "database";
    let url = &settings.database.url;
    if let Some(path) = crate::store::sqlite::sqlite_path(url)
        && !Path::new(path).exists()
    {
        return Line {
            what: what.into(),
            verdict: Verdict::Note(format!(
                "no database at {path} yet: `serve` (or `ticketgate migrate`) creates it"
            )),
        };
    }
    let store = match connect_store(url, Missing::Refuse).await {
        Ok(store) => store,
        Err(e) => {
            return Line::failed(
                what,
                format!("{e:#}"),
                "check [database] url, and that the server is up and reachable from here",
            );
        }
    };
    match store.pending_migrations().await {
        Ok(pending) if pending.is_empty() => Line::ok(what, "reachable, schema up to date"),
        Ok(pending) => Line {
            what: what.into(),
            verdict: Verdict::Note(format!(
                "reachable; {} migration(s) to apply, which `serve` does at start: {}",
                pending.len(),
                pending.join(", ")
            )),
        },
        Err(e) => Line::failed(
            what,
            format!("{e:#}"),
            "check [database] url, and that the server is up and reachable from here",
        ),
    }
}

async fn mailbox(mailbox: &crate::config::MailboxSettings) -> Line {
    let what = format!("mailbox {}", mailbox.name);
    match mailbox.kind {
        MailboxKind::Maildir => {
            let root = Path::new(&mailbox.path);
            let missing: Vec<&str> = ["new", "cur", "tmp"]
                .into_iter()
                .filter(|sub| !root.join(sub).is_dir())
                .collect();
            if missing.is_empty() {
                match writable(&root.join("tmp")) {
                    Ok(()) => Line::ok(what, format!("Maildir {}", mailbox.path)),
                    Err(e) => Line::failed(
                        what,
                        format!("cannot write in {}/tmp: {e}", mailbox.path),
                        "give the service's user write access to the Maildir",
                    ),
                }
            } else {
                Line {
                    what,
                    verdict: Verdict::Note(format!(
                        "Maildir {} lacks {}: `serve` creates {}",
                        mailbox.path,
                        missing.join(", "),
                        if missing.len() == 1 { "it" } else { "them" }
                    )),
                }
            }
        }
        MailboxKind::Imap => {
            let server = format!("{}:{}", mailbox.host, mailbox.port);
            match imap::probe(mailbox).await {
                Ok(probe) if probe.folder_missing => Line::failed(
                    what,
                    format!(
                        "logged in to {server}, but folder {:?} does not exist",
                        mailbox.folder
                    ),
                    "set `folder` to an existing folder (usually INBOX)",
                ),
                Ok(probe) if !probe.to_create.is_empty() => Line {
                    what,
                    verdict: Verdict::Note(format!(
                        "logged in to {server} as {}; `serve` will create {}",
                        mailbox.username,
                        probe.to_create.join(" and ")
                    )),
                },
                Ok(_) => Line::ok(
                    what,
                    format!(
                        "logged in to {server} as {}, folders present",
                        mailbox.username
                    ),
                ),
                Err(e @ imap::ImapError::Auth(..)) => Line::failed(
                    what,
                    e.to_string(),
                    "check `username` and `password` of this mailbox",
                ),
                Err(e @ imap::ImapError::TlsSetup(_)) => Line::failed(
                    what,
                    e.to_string(),
                    "check `tls` and `ca_file` (a private CA needs `ca_file`)",
                ),
                Err(e) => Line::failed(
                    what,
                    format!("{server}: {e}"),
                    "check `host`, `port` and `tls`, and that the server is reachable from here",
                ),
            }
        }
    }
}

/// Whether a file can be made (and removed) in `dir`.
fn writable(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".ticketgate-check-{}", std::process::id()));
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)
}

async fn relay(settings: &Settings) -> Line {
    let smtp = &settings.smtp;
    match smtp.kind {
        SmtpKind::File => {
            let dir = Path::new(&smtp.dir);
            if !dir.is_dir() {
                return Line {
                    what: "outbox".into(),
                    verdict: Verdict::Note(format!(
                        "notifications are written to {}, which `serve` creates",
                        smtp.dir
                    )),
                };
            }
            match writable(dir) {
                Ok(()) => Line::ok(
                    "outbox",
                    format!("notifications are written to {}", smtp.dir),
                ),
                Err(e) => Line::failed(
                    "outbox",
                    format!("cannot write in {}: {e}", smtp.dir),
                    "give the service's user write access to [smtp] dir",
                ),
            }
        }
        SmtpKind::Smtp => {
            let what = "smtp";
            let server = format!("{}:{}", smtp.host, smtp.port);
            let mailer = match SmtpMailer::new(smtp, &settings.support.domain, 1) {
                Ok(m) => m,
                Err(e) => return Line::failed(what, e.to_string(), "check [smtp] tls and ca_file"),
            };
            match mailer.probe().await {
                Ok(()) => Line::ok(
                    what,
                    format!(
                        "{server} answered EHLO{}{}",
                        match smtp.tls {
                            crate::config::TlsMode::None => "",
                            _ => " over TLS",
                        },
                        if smtp.username.is_empty() {
                            String::new()
                        } else {
                            format!(" and accepted {}", smtp.username)
                        }
                    ),
                ),
                Err(e) => Line::failed(
                    what,
                    format!("{server}: {e}"),
                    "check [smtp] host, port, tls, username and password, and that the relay is reachable from here",
                ),
            }
        }
    }
}

/// Every template of every shipped language parses and renders (with
/// nothing in it: a template that only works with every field set is still
/// found by the tests, not here), in the operator's folder or built in.
fn templates(renderer: &Renderer, settings: &Settings) -> Line {
    let empty = serde_json::json!({});
    let mut rendered = 0;
    for locale in Locale::ALL {
        for template in Template::ALL {
            if let Err(e) = renderer.notification(
                template.as_str(),
                locale.as_str(),
                &empty,
                template.has_own_subject(),
            ) {
                return Line::failed(
                    "templates",
                    format!("{e}"),
                    format!(
                        "fix or remove that file in [outbox] templates ({})",
                        settings.outbox.templates
                    ),
                );
            }
            rendered += 1;
        }
    }
    Line::ok(
        "templates",
        format!("{rendered} render ({} languages)", Locale::ALL.len()),
    )
}

fn rules(renderer: &Renderer, settings: &Settings) -> Line {
    let file = &settings.rules.file;
    let rules = match settings.rules() {
        Ok(rules) => rules,
        Err(e) => {
            return Line::failed(
                "rules",
                e.to_string(),
                "`ticketgate rules check` shows the line",
            );
        }
    };
    match renderer.check_rules(&rules) {
        Ok(()) => Line::ok("rules", format!("{} rules ({file})", rules.rules.len())),
        Err(e) => Line::failed(
            "rules",
            format!("{file}: {e}"),
            "name a template that exists, or add it to [outbox] templates",
        ),
    }
}
