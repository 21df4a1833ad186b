//! Delivery of formatted notifications: over SMTP through a few reused
//! connections (`smtp`), or as `.eml` files (the embedded default).

mod smtp;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lettre::Address;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::extension::ClientId;
use rustls::pki_types::{CertificateDer, pem::PemObject};
use tokio_rustls::TlsConnector;

use self::smtp::{Endpoint, Failure, SmtpClient, Tls};

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

/// SMTP through a few reused connections shared by concurrent senders (see
/// `smtp` for why not lettre's transport).
pub struct SmtpMailer {
    client: SmtpClient,
}

#[derive(Debug, thiserror::Error)]
#[error("SMTP setup: {0}")]
pub struct SmtpSetupError(String);

impl SmtpMailer {
    /// `hello`: the name we announce in EHLO (the support domain);
    /// `connections`: how many may be open at once.
    pub fn new(
        settings: &SmtpSettings,
        hello: &str,
        connections: u32,
    ) -> Result<Self, SmtpSetupError> {
        let tls = match settings.tls {
            TlsMode::None => Tls::None,
            TlsMode::Starttls => Tls::Starttls(tls_connector(settings)?),
            TlsMode::Tls => Tls::Wrapper(tls_connector(settings)?),
        };
        let endpoint = Endpoint {
            host: settings.host.clone(),
            port: settings.port,
            tls,
            hello: ClientId::Domain(hello.to_string()),
            credentials: (!settings.username.is_empty())
                .then(|| Credentials::new(settings.username.clone(), settings.password.clone())),
            timeout: Duration::from_secs(60),
        };
        Ok(Self {
            client: SmtpClient::new(endpoint, connections.max(1) as usize),
        })
    }
}

impl SmtpMailer {
    /// Connects, says EHLO, upgrades to TLS and authenticates as configured,
    /// then leaves: the pre-flight check of `ticketgate check`. The error is
    /// the server's answer or the connection's trouble, in words.
    pub async fn probe(&self) -> Result<(), String> {
        self.client.probe().await.map_err(|f| match f {
            Failure::Permanent(e) | Failure::Transient(e) => e,
        })
    }
}

/// The public roots plus `ca_file`, e.g. a private relay's CA.
fn tls_connector(settings: &SmtpSettings) -> Result<TlsConnector, SmtpSetupError> {
    let err = |e: &dyn std::fmt::Display| SmtpSetupError(e.to_string());
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if !settings.ca_file.is_empty() {
        let certs = CertificateDer::pem_file_iter(Path::new(&settings.ca_file))
            .map_err(|e| err(&format!("{}: {e}", settings.ca_file)))?;
        for cert in certs {
            let cert = cert.map_err(|e| err(&format!("{}: {e}", settings.ca_file)))?;
            roots.add(cert).map_err(|e| err(&e))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| err(&e))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, message: Outgoing<'_>) -> Result<(), MailError> {
        let from: Address = message
            .from
            .parse()
            .map_err(|e| MailError::Permanent(format!("sender {}: {e}", message.from)))?;
        let to: Address = message
            .to
            .parse()
            .map_err(|e| MailError::Permanent(format!("recipient {}: {e}", message.to)))?;
        match self.client.send(&from, &to, message.bytes).await {
            Ok(()) => Ok(()),
            // RFC 5321 §4.2.1: 5yz is permanent; 4yz, timeouts and connection
            // trouble are worth retrying.
            Err(Failure::Permanent(e)) => Err(MailError::Permanent(e)),
            Err(Failure::Transient(e)) => Err(MailError::Transient(e)),
        }
    }
}
