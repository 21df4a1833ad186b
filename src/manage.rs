//! Administrative use cases shared by the CLI and the admin API: the same
//! validation for both, and each change commits with the notifications it
//! causes in one transaction.

use time::OffsetDateTime;

use crate::domain::ids::UserId;
use crate::domain::ids::{EmailAddress, slugify};
use crate::domain::locale::Locale;
use crate::domain::template::{self, Notification};
use crate::domain::ticket::Role;
use crate::store::{
    LinkPurpose, LogRow, NewUser, NewWebLink, Org, Store, StoreError, Tx, User, UserChange,
};
use crate::tickets::Service;
use crate::tickets::notice::{self, Notice};

#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    /// The request itself is wrong (CLI usage error, API 422).
    #[error("{0}")]
    Invalid(String),
    /// Something it names does not exist.
    #[error("{0}")]
    NotFound(String),
    /// It exists already (CLI exit 1, API 409).
    #[error("{0}")]
    Exists(String),
    /// Its current state does not allow it (API 409), e.g. discarding a
    /// message already replayed.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A user to register, as typed by an operator.
pub struct UserRequest<'a> {
    pub email: &'a str,
    pub name: &'a str,
    pub org: Option<&'a str>,
    pub role: &'a str,
    pub locale: &'a str,
    pub invite: bool,
}

/// Validates and registers a user; `invite` queues their invitation.
pub async fn register_user(tickets: &Service, req: &UserRequest<'_>) -> Result<User, ManageError> {
    let email = EmailAddress::parse(req.email)
        .map_err(|e| ManageError::Invalid(format!("email {:?}: {e}", req.email)))?;
    // The same rule as for mail: an invisible character or combining mark
    // would make a second account that reads as someone else's address.
    if crate::domain::clean::has_invisible(email.as_str()) {
        return Err(ManageError::Invalid(format!(
            "email {:?}: holds an invisible character or a combining mark",
            req.email
        )));
    }
    let role: Role = req
        .role
        .parse()
        .map_err(|e| ManageError::Invalid(format!("{e}")))?;
    let org = match req.org {
        Some(o) => Some(org_named(tickets.store().as_ref(), o).await?),
        None => None,
    };
    let locale = valid_locale(req.locale)?;
    let name = valid_name(req.name)?;
    let new_user = NewUser {
        email,
        name,
        role,
        org_id: org.as_ref().map(|o| o.id),
        locale,
    };
    let org_name = org.as_ref().map(|o| o.name.as_str());
    match add_user(tickets, &new_user, org_name, req.invite).await {
        // The only unique key of a user is the address.
        Err(StoreError::Conflict(_)) => Err(ManageError::Exists(format!(
            "{} is already registered",
            new_user.email
        ))),
        other => Ok(other?),
    }
}

fn valid_locale(locale: &str) -> Result<String, ManageError> {
    let locale = locale.trim().to_ascii_lowercase();
    if locale.is_empty()
        || locale.len() > 35
        || !locale
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ManageError::Invalid(format!("invalid locale {locale:?}")));
    }
    Ok(locale)
}

/// A name as people will see it: one line without control, bidi or
/// invisible characters (`domain::clean::line`, as for names from mail).
fn valid_name(name: &str) -> Result<String, ManageError> {
    if name.contains(char::is_control) {
        return Err(ManageError::Invalid(
            "a user needs a name without control characters".into(),
        ));
    }
    let name = crate::domain::clean::line(name);
    if name.is_empty() {
        return Err(ManageError::Invalid("a user needs a name".into()));
    }
    Ok(name)
}

/// An operator's edit of a user: `None` keeps a field as it is.
#[derive(Debug, Default)]
pub struct UserEdit<'a> {
    pub name: Option<&'a str>,
    pub role: Option<Role>,
    pub locale: Option<&'a str>,
    /// `Some(None)` takes the user out of their organization.
    pub org: Option<Option<&'a str>>,
    /// `Some(false)` deactivates: no sign-in, mail taken as a stranger's.
    pub active: Option<bool>,
    /// The staff member asking, when there is one: nobody deactivates
    /// themselves (they would lock themselves out mid-task).
    pub by: Option<UserId>,
}

/// Validates and applies an edit; returns the user as it now is. A delivery
/// lead stays staff: making one a customer asks for the lead to go first.
/// Some active staff member always remains, so someone can still undo it.
pub async fn edit_user(
    store: &dyn Store,
    email: &str,
    edit: &UserEdit<'_>,
) -> Result<User, ManageError> {
    let email = EmailAddress::parse(email)
        .map_err(|e| ManageError::Invalid(format!("email {email:?}: {e}")))?;
    let user = store
        .find_user(&email)
        .await?
        .ok_or_else(|| ManageError::NotFound(format!("no registered user {email}")))?;
    if edit.name.is_none()
        && edit.role.is_none()
        && edit.locale.is_none()
        && edit.org.is_none()
        && edit.active.is_none()
    {
        return Err(ManageError::Invalid(
            "nothing to change: give a name, role, locale, organization or active".into(),
        ));
    }
    if edit.active == Some(false) && edit.by == Some(user.id) {
        return Err(ManageError::Invalid(
            "you cannot deactivate yourself: ask another staff member".into(),
        ));
    }
    let org_id = match edit.org {
        Some(Some(o)) => Some(Some(org_named(store, o).await?.id)),
        Some(None) => Some(None),
        None => None,
    };
    if edit.role == Some(Role::Customer) && user.role == Role::Staff {
        let leads: Vec<String> = store
            .list_orgs()
            .await?
            .into_iter()
            .filter(|o| o.leads.iter().any(|l| *l == email.as_str()))
            .map(|o| o.slug)
            .collect();
        if !leads.is_empty() {
            return Err(ManageError::Invalid(format!(
                "{email} is a delivery lead of {}: remove the lead first (org lead remove)",
                leads.join(", ")
            )));
        }
    }
    let stays_staff =
        edit.role.unwrap_or(user.role) == Role::Staff && edit.active.unwrap_or(user.active);
    if user.role == Role::Staff && user.active && !stays_staff {
        let others = store
            .list_users()
            .await?
            .into_iter()
            .filter(|u| u.role == Role::Staff && u.active && u.id != user.id)
            .count();
        if others == 0 {
            return Err(ManageError::Invalid(format!(
                "{email} is the last active staff member: make someone else staff first"
            )));
        }
    }
    let change = UserChange {
        name: edit.name.map(valid_name).transpose()?,
        role: edit.role,
        locale: edit.locale.map(valid_locale).transpose()?,
        org_id,
        active: edit.active,
    };
    if !store.update_user(user.id, &change).await? {
        return Err(ManageError::NotFound(format!("no registered user {email}")));
    }
    store
        .find_user(&email)
        .await?
        .ok_or_else(|| ManageError::NotFound(format!("no registered user {email}")))
}

/// Validates and adds an organization; its slug comes from the name.
pub async fn add_org(
    store: &dyn Store,
    name: &str,
    domains: &[String],
) -> Result<Org, ManageError> {
    let name = name.trim();
    let slug = slugify(name);
    if slug.is_empty() || name.contains(char::is_control) {
        return Err(ManageError::Invalid(
            "an organization name needs at least one letter or digit".into(),
        ));
    }
    let mut clean = Vec::new();
    for d in domains {
        let d = d.trim().trim_start_matches('@').to_lowercase();
        if !valid_domain(&d) {
            return Err(ManageError::Invalid(format!(
                "invalid domain {d:?}: write it as in an address after the @, e.g. customer.example"
            )));
        }
        if !clean.contains(&d) {
            clean.push(d);
        }
    }
    Ok(store.add_org(name, &slug, &clean).await?)
}

/// A domain as mail addresses carry it (RFC 1035 §2.3.1, letters of any
/// script allowed for internationalized names): at least two labels of
/// letters, digits and inner hyphens, each at most 63 long.
fn valid_domain(d: &str) -> bool {
    d.len() <= 253
        && d.split('.').count() >= 2
        && d.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
}

/// The organization with this name or slug, or a NotFound naming `key`.
async fn org_named(store: &dyn Store, key: &str) -> Result<Org, ManageError> {
    store
        .find_org(key)
        .await?
        .ok_or_else(|| ManageError::NotFound(format!("no organization {key:?}")))
}

/// Makes a staff user a delivery lead of an organization.
pub async fn add_lead(store: &dyn Store, org: &str, email: &str) -> Result<Org, ManageError> {
    let found = org_named(store, org).await?;
    let email = EmailAddress::parse(email)
        .map_err(|e| ManageError::Invalid(format!("email {email:?}: {e}")))?;
    let user = store
        .find_user(&email)
        .await?
        .ok_or_else(|| ManageError::NotFound(format!("no user {email}")))?;
    if user.role != Role::Staff {
        return Err(ManageError::Invalid(format!(
            "{email} is not staff: delivery leads are staff users"
        )));
    }
    store.add_org_lead(found.id, user.id).await?;
    org_named(store, &found.slug).await
}

/// Ends a staff user's delivery lead of an organization.
pub async fn remove_lead(store: &dyn Store, org: &str, email: &str) -> Result<Org, ManageError> {
    let found = org_named(store, org).await?;
    let email = EmailAddress::parse(email)
        .map_err(|e| ManageError::Invalid(format!("email {email:?}: {e}")))?;
    let user = store.find_user(&email).await?;
    let removed = match user {
        Some(user) => store.remove_org_lead(found.id, user.id).await?,
        None => false,
    };
    if !removed {
        return Err(ManageError::NotFound(format!(
            "{email} is not a delivery lead of {}",
            found.name
        )));
    }
    org_named(store, &found.slug).await
}

/// Registers a user and, unless `invite` is false, queues their invitation
/// (docs/contract.md, "Who is emailed": a user is emailed when first added).
pub async fn add_user(
    tickets: &Service,
    user: &NewUser,
    org_name: Option<&str>,
    invite: bool,
) -> Result<User, StoreError> {
    let now = OffsetDateTime::now_utc();
    let mut tx = tickets.store().begin().await?;
    let created = tx.insert_user(user, now).await?;
    if invite {
        queue_invite(tx.as_mut(), tickets, &created, org_name, now).await?;
    }
    tx.commit().await?;
    Ok(created)
}

/// Queues `user`'s invitation in `tx`; with the portal on, it carries their
/// first sign-in link, minted when the mail is sent (`template::MailedLink`).
async fn queue_invite(
    tx: &mut dyn Tx,
    tickets: &Service,
    user: &User,
    org_name: Option<&str>,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let (link, link_days) = match &tickets.sender().portal {
        Some(portal) => {
            let link = template::MailedLink {
                next: None,
                base_url: portal.base_url.clone(),
                ttl_secs: portal.invite_ttl.as_secs(),
            };
            (Some(link), portal.invite_ttl.as_secs().div_ceil(86400))
        }
        None => (None, 0),
    };
    let notice = Notice {
        what: Notification::Invite(template::Invite {
            user_name: user.name.clone(),
            user_email: user.email.clone(),
            org_name: org_name.map(str::to_string),
            staff: user.role == crate::domain::ticket::Role::Staff,
            link,
            link_days,
        }),
        to: &user.email,
        name: Some(&user.name),
        user: Some(user.id),
        locale: Some(Locale::of(&user.locale)),
        reason: crate::domain::ticket::Reason::Invite,
        ticket: None,
        comment: None,
    };
    notice::queue(tx, tickets.sender(), notice, now).await?;
    Ok(())
}

/// Sends a registered user their invitation again (a new link, when the
/// portal is on: the old one may have expired).
pub async fn invite_again(tickets: &Service, email: &str) -> Result<User, ManageError> {
    let address = EmailAddress::parse(email)
        .map_err(|e| ManageError::Invalid(format!("email {email:?}: {e}")))?;
    let user = tickets
        .store()
        .find_user(&address)
        .await?
        .ok_or_else(|| ManageError::NotFound(format!("no user {address}")))?;
    let org_name = match &user.org {
        Some(slug) => tickets.store().find_org(slug).await?.map(|o| o.name),
        None => None,
    };
    let now = OffsetDateTime::now_utc();
    let mut tx = tickets.store().begin().await?;
    queue_invite(tx.as_mut(), tickets, &user, org_name.as_deref(), now).await?;
    tx.commit().await?;
    Ok(user)
}

/// Discards a quarantined or rejected delivery: it stays in the ingest log
/// with its raw message, marked, and no longer waits for a decision. The
/// same for the CLI (`messages discard`), the API and the portal.
pub async fn discard_message(store: &dyn Store, id: i64) -> Result<LogRow, ManageError> {
    let row = store
        .log_row(id)
        .await?
        .ok_or_else(|| ManageError::NotFound(format!("no message {id} in the ingest log")))?;
    if !store.discard_log(id, OffsetDateTime::now_utc()).await? {
        let why = if row.discarded_at.is_some() {
            "was already discarded".to_string()
        } else if row.superseded {
            "was replayed".to_string()
        } else {
            format!(
                "was {}: only quarantined or rejected messages are discarded",
                row.outcome
            )
        };
        return Err(ManageError::Conflict(format!("message {id} {why}")));
    }
    store
        .log_row(id)
        .await?
        .ok_or_else(|| ManageError::NotFound(format!("no message {id} in the ingest log")))
}

/// How an API token is kept: its SHA-256. Tokens carry 256 random bits, so a fast
/// hash cannot be brute-forced and lookups stay one indexed read.
pub fn token_hash(token: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A one-time portal link for `user` (`<base_url>/login/<token>`), valid
/// for `ttl`; only the token's hash is stored, in `tx`. For a link shown at
/// once (`user link`); a mailed one is minted by the outbox as it sends.
pub async fn portal_link(
    tx: &mut dyn Tx,
    base_url: &str,
    user: UserId,
    purpose: LinkPurpose,
    ttl: std::time::Duration,
    now: OffsetDateTime,
) -> Result<String, StoreError> {
    let token = new_token().map_err(|e| StoreError::Unavailable(e.to_string().into()))?;
    tx.insert_web_link(&NewWebLink {
        token_hash: token_hash(&token),
        user,
        purpose,
        now,
        expires: now + ttl,
    })
    .await?;
    Ok(format!("{base_url}/login/{token}"))
}

/// A new token: `tg_` and 64 hex digits (256 bits from the OS). The prefix
/// lets secret scanners recognise a leaked one.
pub fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("tg_{}", hex::encode(bytes)))
}

#[cfg(test)]
mod tests {
    use super::valid_domain;

    #[test]
    fn organization_domains_are_written_as_after_the_at_sign() {
        for (domain, valid) in [
            ("customer.example", true),
            ("mail.customer.co.jp", true),
            ("xn--bcher-kva.example", true),
            ("bücher.example", true),
            ("a-b.example", true),
            ("localhost", false),
            ("", false),
            (".example", false),
            ("customer..example", false),
            ("-customer.example", false),
            ("customer-.example", false),
            ("cust omer.example", false),
            ("customer.example/", false),
            ("alice@customer.example", false),
            ("not_a.domain", false),
        ] {
            assert_eq!(valid_domain(domain), valid, "{domain:?}");
        }
        assert!(!valid_domain(&format!("{}.example", "a".repeat(64))));
        assert!(valid_domain(&format!("{}.example", "a".repeat(63))));
    }
}
