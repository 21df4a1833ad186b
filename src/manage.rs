//! Administrative use cases shared by the CLI and the admin API: the same
//! validation for both, and each change commits with the notifications it
//! causes in one transaction.

use time::OffsetDateTime;

use crate::domain::ids::{EmailAddress, slugify};
use crate::domain::ticket::Role;
use crate::ingest::Ingestor;
use crate::notice::{self, Notice};
use crate::store::{NewUser, Org, Store, StoreError, User};

#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    /// The request itself is wrong (CLI usage error, API 422).
    #[error("{0}")]
    Invalid(String),
    /// Something it names does not exist.
    #[error("{0}")]
    NotFound(String),
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
pub async fn register_user(
    ingestor: &Ingestor,
    req: &UserRequest<'_>,
) -> Result<User, ManageError> {
    let email = EmailAddress::parse(req.email)
        .map_err(|e| ManageError::Invalid(format!("email {:?}: {e}", req.email)))?;
    let role: Role = req
        .role
        .parse()
        .map_err(|e| ManageError::Invalid(format!("{e}")))?;
    let org = match req.org {
        Some(o) => Some(
            ingestor
                .store()
                .find_org(o)
                .await?
                .ok_or_else(|| ManageError::NotFound(format!("no organization {o:?}")))?,
        ),
        None => None,
    };
    let locale = req.locale.trim().to_ascii_lowercase();
    if locale.is_empty()
        || locale.len() > 35
        || !locale
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ManageError::Invalid(format!("invalid locale {locale:?}")));
    }
    let name = req.name.trim();
    if name.is_empty() || name.contains(char::is_control) {
        return Err(ManageError::Invalid(
            "a user needs a name without control characters".into(),
        ));
    }
    let new_user = NewUser {
        email,
        name: name.to_string(),
        role,
        org_id: org.as_ref().map(|o| o.id),
        locale,
    };
    let org_name = org.as_ref().map(|o| o.name.as_str());
    Ok(add_user(ingestor, &new_user, org_name, req.invite).await?)
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
        let d = d.trim().trim_start_matches('@').to_ascii_lowercase();
        if d.is_empty() || !d.contains('.') || d.contains(|c: char| c.is_whitespace() || c == '@') {
            return Err(ManageError::Invalid(format!("invalid domain {d:?}")));
        }
        clean.push(d);
    }
    Ok(store.add_org(name, &slug, &clean).await?)
}

/// Makes a staff user a delivery lead of an organization.
pub async fn add_lead(store: &dyn Store, org: &str, email: &str) -> Result<Org, ManageError> {
    let found = store
        .find_org(org)
        .await?
        .ok_or_else(|| ManageError::NotFound(format!("no organization {org:?}")))?;
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
    store
        .find_org(&found.slug)
        .await?
        .ok_or_else(|| ManageError::NotFound(format!("no organization {org:?}")))
}

/// Registers a user and, unless `invite` is false, queues their invitation
/// (DESIGN: a user is emailed when first added).
pub async fn add_user(
    ingestor: &Ingestor,
    user: &NewUser,
    org_name: Option<&str>,
    invite: bool,
) -> Result<User, StoreError> {
    let now = OffsetDateTime::now_utc();
    let mut tx = ingestor.store().begin().await?;
    let created = tx.insert_user(user, now).await?;
    if invite {
        let event = serde_json::json!({
            "user_name": created.name,
            "user_email": created.email,
            "org_name": org_name,
        });
        let notice = Notice {
            template: "invite",
            to: &created.email,
            name: Some(&created.name),
            user: Some(created.id),
            locale: Some(&created.locale),
            reason: "invite",
            ticket: None,
            comment: None,
            event,
        };
        notice::queue(tx.as_mut(), ingestor.notice_sender(), notice, now).await?;
    }
    tx.commit().await?;
    Ok(created)
}
