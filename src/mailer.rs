//! Delivery of formatted notifications. The `file` kind writes each message as
//! an `.eml` file (the embedded default); the SMTP kind arrives with the
//! outbound issue behind the same trait.

use std::path::PathBuf;

use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// Try again later (connection trouble, 4xx).
    #[error("temporary failure: {0}")]
    Transient(String),
    /// Will never succeed (5xx).
    #[error("permanent failure: {0}")]
    Permanent(String),
}

impl MailError {
    pub fn is_transient(&self) -> bool {
        matches!(self, MailError::Transient(_))
    }
}

/// One formatted message for one recipient.
pub struct Outgoing<'a> {
    /// Outbox row id: names the file, so a resend overwrites rather than duplicates.
    pub id: i64,
    pub to: &'a str,
    pub bytes: &'a [u8],
}

#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, message: Outgoing<'_>) -> Result<(), MailError>;
}

/// Writes `<dir>/<id>.eml` atomically (temporary file, then rename).
pub struct FileMailer {
    dir: PathBuf,
}

impl FileMailer {
    pub fn new(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }
}

#[async_trait]
impl Mailer for FileMailer {
    async fn send(&self, message: Outgoing<'_>) -> Result<(), MailError> {
        let target = self.dir.join(format!("{:08}.eml", message.id));
        let tmp = self.dir.join(format!(".{:08}.eml.tmp", message.id));
        let bytes = message.bytes.to_vec();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &target)
        })
        .await
        .map_err(|e| MailError::Transient(e.to_string()))?
        .map_err(|e| MailError::Transient(e.to_string()))
    }
}
