//! Administrative use cases shared by the CLI and (later) the admin API: each
//! change and the notifications it causes commit in one transaction.

use time::OffsetDateTime;

use crate::ingest::Ingestor;
use crate::notice::{self, Notice};
use crate::store::{NewUser, StoreError, User};

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
