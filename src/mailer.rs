//! Delivery of formatted notifications: over SMTP through one pooled, reused
//! lettre transport, or as `.eml` files (the embedded default).

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use lettre::address::Envelope;
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::config::{SmtpSettings, TlsMode};

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
    /// Envelope sender (RFC 5321 MAIL FROM): where delivery reports go.
    pub from: &'a str,
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

/// SMTP through lettre's pooled transport: connections are reused across
/// messages and shared by concurrent senders.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

#[derive(Debug, thiserror::Error)]
#[error("SMTP setup: {0}")]
pub struct SmtpSetupError(String);

impl SmtpMailer {
    /// `hello`: the name we announce in EHLO (the support domain).
    pub fn new(
        settings: &SmtpSettings,
        hello: &str,
        pool_size: u32,
    ) -> Result<Self, SmtpSetupError> {
        let err = |e: &dyn std::fmt::Display| SmtpSetupError(e.to_string());
        let tls_parameters = || -> Result<TlsParameters, SmtpSetupError> {
            let mut builder = TlsParameters::builder(settings.host.clone());
            if !settings.ca_file.is_empty() {
                let pem = std::fs::read(&settings.ca_file)
                    .map_err(|e| err(&format!("{}: {e}", settings.ca_file)))?;
                builder =
                    builder.add_root_certificate(Certificate::from_pem(&pem).map_err(|e| err(&e))?);
            }
            builder.build_rustls().map_err(|e| err(&e))
        };
        let tls = match settings.tls {
            TlsMode::None => Tls::None,
            TlsMode::Starttls => Tls::Required(tls_parameters()?),
            TlsMode::Tls => Tls::Wrapper(tls_parameters()?),
        };
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(settings.host.clone())
                .port(settings.port)
                .tls(tls)
                .hello_name(ClientId::Domain(hello.to_string()))
                .timeout(Some(Duration::from_secs(60)))
                .pool_config(PoolConfig::new().max_size(pool_size.max(1)));
        if !settings.username.is_empty() {
            builder = builder.credentials(Credentials::new(
                settings.username.clone(),
                settings.password.clone(),
            ));
        }
        Ok(Self {
            transport: builder.build(),
        })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, message: Outgoing<'_>) -> Result<(), MailError> {
        let from = message
            .from
            .parse()
            .map_err(|e| MailError::Permanent(format!("sender {}: {e}", message.from)))?;
        let to = message
            .to
            .parse()
            .map_err(|e| MailError::Permanent(format!("recipient {}: {e}", message.to)))?;
        let envelope =
            Envelope::new(Some(from), vec![to]).map_err(|e| MailError::Permanent(e.to_string()))?;
        match self.transport.send_raw(&envelope, message.bytes).await {
            Ok(_) => Ok(()),
            // RFC 5321 §4.2.1: 5yz is permanent; 4yz, timeouts and connection
            // trouble are worth retrying.
            Err(e) if e.is_permanent() => Err(MailError::Permanent(e.to_string())),
            Err(e) => Err(MailError::Transient(e.to_string())),
        }
    }
}
