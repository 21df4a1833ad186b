//! The administrative commands: organizations, users, API tokens, tickets,
//! and the offline checks (`extract-reply`, `rules check`).

use super::*;

pub(super) async fn org(app: &App, cmd: OrgCommand) -> anyhow::Result<()> {
    match cmd {
        OrgCommand::Add { name, domains } => {
            let org = manage::add_org(app.store.as_ref(), &name, &domains).await?;
            outln!("organization {} ({}) added", org.name, org.slug)?;
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
            outln!("{email} is a delivery lead of {}", found.name)?;
        }
        OrgCommand::Lead(LeadCommand::Remove { org, email }) => {
            let found = manage::remove_lead(app.store.as_ref(), &org, &email).await?;
            outln!("{email} is no longer a delivery lead of {}", found.name)?;
        }
    }
    Ok(())
}

pub(super) async fn token(app: &App, cmd: TokenCommand) -> anyhow::Result<()> {
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
            let token =
                manage::new_token().map_err(|e| anyhow::anyhow!("reading random bytes: {e}"))?;
            let row = app
                .store
                .create_token(
                    user.id,
                    &manage::token_hash(&token),
                    label.as_deref(),
                    time::OffsetDateTime::now_utc(),
                )
                .await?;
            if json {
                outln!("{}", serde_json::json!({"token": token, "id": row.id}))?;
            } else {
                outln!("{token}")?;
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
            outln!("token {id} revoked")?;
        }
    }
    Ok(())
}

pub(super) async fn user(app: &App, cmd: UserCommand) -> anyhow::Result<()> {
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
                app.tickets(),
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
            outln!("user {} added (id {})", user.email, user.id)?;
        }
        UserCommand::Edit {
            email,
            name,
            role,
            locale,
            org,
            no_org,
            deactivate,
            activate,
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
                    active: match (deactivate, activate) {
                        (true, _) => Some(false),
                        (_, true) => Some(true),
                        _ => None,
                    },
                    by: None,
                },
            )
            .await?;
            outln!(
                "user {}: {}, {}, {}, {}{}",
                user.email,
                user.name,
                user.role.as_str(),
                user.locale,
                user.org.as_deref().unwrap_or("no organization"),
                if user.active { "" } else { ", deactivated" }
            )?;
        }
        UserCommand::Link { email } => {
            let Some(base) = app.settings.web.portal_url() else {
                anyhow::bail!("the portal is off ([web] listen is empty)");
            };
            let address = crate::domain::ids::EmailAddress::parse(&email)
                .map_err(|e| anyhow::anyhow!("{email:?}: {e}"))?;
            let user = app
                .store
                .find_user(&address)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no user {address}"))?;
            let mut tx = app.store.begin().await?;
            let link = manage::portal_link(
                tx.as_mut(),
                base,
                user.id,
                crate::store::LinkPurpose::SignIn,
                crate::web::LINK_TTL,
                time::OffsetDateTime::now_utc(),
            )
            .await?;
            tx.commit().await?;
            tracing::info!(user = %user.email, "sign-in link printed by the CLI");
            outln!("{link}")?;
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

pub(super) async fn ticket(app: &App, cmd: TicketCommand) -> anyhow::Result<()> {
    match cmd {
        TicketCommand::List {
            status,
            limit,
            owner,
            json,
        } => {
            let tickets = app
                .store
                .list_tickets(&TicketFilter {
                    status,
                    limit,
                    owner,
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
                    "OWNER",
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
                        t.owner.unwrap_or_else(|| "-".into()),
                        t.requester,
                        t.org.unwrap_or_else(|| "-".into()),
                        short_time(&t.updated_at),
                        t.subject,
                    ]);
                }
                table.print("no tickets");
            }
        }
        TicketCommand::Show {
            id,
            json,
            comments_limit,
            comments_before,
        } => {
            let page = crate::store::CommentPage {
                limit: comments_limit,
                before: comments_before,
            };
            let mut view = app
                .store
                .ticket_page(id, page)
                .await?
                .with_context(|| format!("no ticket #{id}"))?;
            view.status_label = app.settings.status_label(view.status);
            if json {
                print_json(&wire::TicketView::from(view))?;
            } else {
                outln!("#{} {}", view.id, view.subject)?;
                outln!(
                    "status: {}   priority: {}",
                    view.status_label,
                    view.priority
                        .map(|p| p.as_str().to_uppercase())
                        .unwrap_or_else(|| "-".into())
                )?;
                outln!(
                    "requester: {}   orgs: {}",
                    view.requester,
                    view.orgs.join(", ")
                )?;
                outln!(
                    "owner: {}   response due: {}   resolve due: {}",
                    view.owner.as_deref().unwrap_or("-"),
                    view.response_due
                        .as_deref()
                        .map_or_else(|| "-".into(), short_time),
                    view.resolve_due
                        .as_deref()
                        .map_or_else(|| "-".into(), short_time),
                )?;
                if let Some(reason) = view.close_reason {
                    outln!(
                        "closed: {}",
                        crate::domain::terms::close_reason_label(reason, Default::default())
                    )?;
                }
                if let Some(into) = view.merged_into {
                    outln!("merged into: #{into}")?;
                }
                let followers: Vec<String> = view
                    .followers
                    .iter()
                    .map(|f| format!("{} ({})", f.email, f.source.as_str()))
                    .collect();
                outln!("followers: {}", followers.join(", "))?;
                if let Some(first) = view.comments.first().filter(|_| view.earlier_comments) {
                    outln!("\n(earlier comments: --comments-before {})", first.id)?;
                }
                for c in &view.comments {
                    outln!(
                        "\n--- comment {} by {} at {}{}",
                        c.id,
                        c.author,
                        short_time(&c.created_at),
                        if c.internal { " (internal)" } else { "" }
                    )?;
                    outln!("{}", c.body)?;
                    for a in &c.attachments {
                        outln!(
                            "[attachment: {} {} {} bytes]",
                            a.filename,
                            a.content_type,
                            a.size
                        )?;
                    }
                }
                if !view.events.is_empty() {
                    outln!("\n--- history")?;
                    for e in &view.events {
                        outln!(
                            "{}  {}  {}",
                            short_time(&e.created_at),
                            e.actor.as_deref().unwrap_or("(rules and system)"),
                            describe_event(e, &app.settings)
                        )?;
                    }
                }
            }
        }
    }
    Ok(())
}

pub(super) fn extract_reply(
    html: bool,
    from: Option<&str>,
    file: &PathBuf,
) -> anyhow::Result<ExitCode> {
    let mut bytes = Vec::new();
    if file.as_os_str() == "-" {
        std::io::stdin().lock().read_to_end(&mut bytes)?;
    } else {
        bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    }
    let text = String::from_utf8_lossy(&bytes);
    let sender = from.map(reply::Sender::parse).unwrap_or_default();
    let extracted = if html {
        reply::extract_html_from(&text, &sender)
    } else {
        reply::extract_text_from(&text, &sender)
    };
    outln!("{}", serde_json::to_string_pretty(&extracted)?)?;
    Ok(ExitCode::SUCCESS)
}

pub(super) fn rules_check(settings: &Settings) -> anyhow::Result<ExitCode> {
    let checked = settings
        .rules()
        .map_err(|e| e.to_string())
        .and_then(|rules| {
            crate::render::Renderer::for_settings(settings)
                .check_rules(&rules)
                .map_err(|e| format!("{}: {e}", settings.rules.file))
                .map(|()| rules)
        });
    match checked {
        Ok(rules) => {
            outln!("{}: {} rules", settings.rules.file, rules.rules.len())?;
            for (i, rule) in rules.rules.iter().enumerate() {
                outln!("{:>2}. {}", i + 1, rule.name)?;
                outln!("    on   {}", rule.on)?;
                let when = rule.when.conditions();
                if !when.is_empty() {
                    outln!("    when {}", when.join(", "))?;
                }
                let mut then: Vec<String> = rule.then.iter().map(ToString::to_string).collect();
                if rule.stop {
                    then.push("stop".into());
                }
                outln!("    then {}", then.join(", "))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
