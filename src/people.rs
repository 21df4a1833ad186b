//! People's data (docs/contract.md, "People's data"): a person's export for
//! a subject access request, erasure by redaction, and `[retention]`, which
//! `serve` runs once a day across all instances.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::config::RetentionSettings;
use crate::domain::ids::{EmailAddress, UserId};
use crate::domain::ticket::Role;
use crate::metrics::Metrics;
use crate::store::people::{ErasePlan, Erasure, PersonRecord, Purged};
use crate::store::{Store, StoreError};

/// A new pseudonym for an erased person: a display name and an address
/// under `.invalid` (RFC 2606 §2: never deliverable), random so that it
/// cannot be traced back to the address it replaces.
pub fn pseudonym(role: Role) -> (String, EmailAddress) {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the system's random source");
    let tag = hex::encode(bytes);
    let name = match role {
        Role::Staff => format!("Former staff member {}", &tag[..4]),
        Role::Customer => format!("Former customer {}", &tag[..4]),
    };
    let email = EmailAddress::parse(&format!("erased-{tag}@invalid"))
        .expect("a pseudonym is a valid address");
    (name, email)
}

/// The name a page shows for `email`: an erased person's pseudonym in the
/// reader's language (it is stored in English, built by [`pseudonym`]),
/// anyone else's `stored` name as it is.
pub fn shown_name(email: &str, stored: &str, locale: crate::domain::locale::Locale) -> String {
    use crate::domain::locale::Locale;
    let Some(tag) = email
        .strip_prefix("erased-")
        .and_then(|rest| rest.strip_suffix("@invalid"))
        .and_then(|tag| tag.get(..4))
    else {
        return stored.to_string();
    };
    let staff = stored.starts_with("Former staff member");
    match (locale, staff) {
        (Locale::En, _) => stored.to_string(),
        (Locale::Ja, false) => format!("元のお客様 {tag}"),
        (Locale::Ja, true) => format!("元スタッフ {tag}"),
    }
}

/// Erases the person with address `email`; `by` is the staff member who
/// asked (the API) or `None` (the operator). `None` when there is no such user.
pub async fn erase(
    store: &dyn Store,
    email: &EmailAddress,
    by: Option<UserId>,
    dry_run: bool,
) -> Result<Option<Erasure>, StoreError> {
    let Some(user) = store.find_user(email).await? else {
        return Ok(None);
    };
    let (pseudonym, pseudonym_email) = pseudonym(user.role);
    let plan = ErasePlan {
        email: email.clone(),
        pseudonym,
        pseudonym_email,
        by,
        now: OffsetDateTime::now_utc(),
        dry_run,
    };
    store.person_erase(&plan).await
}

/// Writes `record` as a zip: `data.json`, each raw message as
/// `messages/<log id>.eml`, each attachment they sent as
/// `files/<comment>-<attachment>-<name>`. The file is created readable by
/// its owner only and never overwrites one that exists.
pub async fn write_zip(
    store: &dyn Store,
    record: &PersonRecord,
    path: &Path,
) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .unix_permissions(0o600);
    zip.start_file("data.json", options)?;
    serde_json::to_writer_pretty(&mut zip, record)?;
    for raw in &record.raw_messages {
        zip.start_file(format!("messages/{}.eml", raw.log_id), options)?;
        zip.write_all(&raw.bytes)?;
    }
    for comment in &record.comments {
        for file in &comment.attachments {
            let Some(bytes) = store.blob(&file.sha256).await? else {
                continue;
            };
            zip.start_file(
                format!(
                    "files/{}-{}-{}",
                    comment.id,
                    file.id,
                    safe_file_name(&file.filename)
                ),
                options,
            )?;
            zip.write_all(&bytes)?;
        }
    }
    zip.finish()?;
    Ok(())
}

/// A file name from mail kept to one path component of ordinary characters.
fn safe_file_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '/' | '\\' | ':') {
                '_'
            } else {
                c
            }
        })
        .take(100)
        .collect();
    match cleaned.trim_start_matches('.') {
        "" => "file".to_string(),
        rest => rest.to_string(),
    }
}

/// Applies `[retention]` once, as of `now`.
pub async fn apply_retention(
    store: &dyn Store,
    settings: &RetentionSettings,
    now: OffsetDateTime,
) -> Result<Purged, StoreError> {
    let mut purged = Purged::default();
    if let Some(keep) = settings.closed_tickets {
        purged.closed_tickets = store.purge_closed(now - keep.0).await?;
    }
    if let Some(keep) = settings.raw_messages {
        purged.raw_messages = store.purge_raw(now - keep.0, now).await?;
    }
    Ok(purged)
}

/// How often `serve` asks whether today's retention has run.
const RETENTION_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// `serve`'s retention task: once per UTC day, the instance that claims the
/// day applies `[retention]`, logs what it removed and counts it in
/// `/metrics`. A failed run is logged; the next day's run catches up.
pub async fn retention_task(
    store: Arc<dyn Store>,
    settings: RetentionSettings,
    metrics: Arc<Metrics>,
    holder: String,
    cancel: CancellationToken,
) {
    if settings.raw_messages.is_none() && settings.closed_tickets.is_none() {
        return;
    }
    let mut every = tokio::time::interval(RETENTION_CHECK_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ran_on = String::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = every.tick() => {}
        }
        let now = OffsetDateTime::now_utc();
        let day = now.date().to_string();
        if day == ran_on {
            continue;
        }
        match store.claim_retention(&day, &holder, now).await {
            Ok(true) => {}
            Ok(false) => {
                ran_on = day;
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "retention: cannot claim today's run; trying again later");
                continue;
            }
        }
        ran_on = day.clone();
        match apply_retention(store.as_ref(), &settings, now).await {
            Ok(purged) => {
                metrics.record_retention(&purged);
                tracing::info!(
                    raw_messages = purged.raw_messages,
                    closed_tickets = purged.closed_tickets,
                    "retention: removed what is past its age"
                );
                if let Err(e) = store.record_retention(&day, &purged).await {
                    tracing::warn!(error = %e, "retention: cannot record today's run");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "retention: run failed; tomorrow's run catches up")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_unique_undeliverable_and_named_by_role() {
        let (name, a) = pseudonym(Role::Customer);
        let (_, b) = pseudonym(Role::Customer);
        assert!(name.starts_with("Former customer "), "{name}");
        assert_ne!(a, b);
        assert!(
            a.as_str().starts_with("erased-") && a.domain() == "invalid",
            "{a}"
        );
        assert!(pseudonym(Role::Staff).0.starts_with("Former staff member "));
    }

    #[test]
    fn a_pseudonym_is_shown_in_the_readers_language() {
        use crate::domain::locale::Locale;
        let (name, email) = pseudonym(Role::Customer);
        let tag = &email.as_str()["erased-".len().."erased-".len() + 4];
        assert_eq!(shown_name(email.as_str(), &name, Locale::En), name);
        assert_eq!(
            shown_name(email.as_str(), &name, Locale::Ja),
            format!("元のお客様 {tag}")
        );
        let (staff, email) = pseudonym(Role::Staff);
        assert!(shown_name(email.as_str(), &staff, Locale::Ja).starts_with("元スタッフ "));
        assert_eq!(
            shown_name("erased@customer.test", "Erased Person", Locale::Ja),
            "Erased Person"
        );
    }

    #[test]
    fn file_names_from_mail_stay_one_component() {
        assert_eq!(safe_file_name("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(safe_file_name("..."), "file");
        assert_eq!(safe_file_name("report.pdf"), "report.pdf");
    }
}
