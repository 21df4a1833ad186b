//! The real Dovecot + Postfix of `scripts/mailstack.sh`: addresses of its
//! services, new mailboxes per test, and reading a mailbox back over IMAP as
//! its owner would.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use tokio::net::TcpStream;

#[derive(Debug, Clone)]
pub struct MailStack {
    pub host: String,
    pub smtp_port: u16,
    pub imap_port: u16,
    pub imaps_port: u16,
    /// The test CA that signed Dovecot's certificate (PEM file).
    pub ca: String,
    pub password: String,
}

fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/mailstack.sh")
}

/// The stack's settings: from the environment `scripts/test.sh` exports, or
/// by running `scripts/mailstack.sh start` (idempotent) when they are missing.
pub fn mailstack() -> &'static MailStack {
    static STACK: OnceLock<MailStack> = OnceLock::new();
    STACK.get_or_init(|| {
        let mut vars: HashMap<String, String> = std::env::vars().collect();
        if !vars.contains_key("TICKETGATE_TEST_SMTP_PORT") {
            let out = Command::new(script())
                .arg("start")
                .output()
                .expect("scripts/mailstack.sh runs");
            assert!(
                out.status.success(),
                "scripts/mailstack.sh start failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                if let Some((k, v)) = line.trim_start_matches("export ").split_once('=') {
                    vars.insert(
                        k.to_string(),
                        v.trim_matches('"').trim_matches('\'').to_string(),
                    );
                }
            }
        }
        let get = |k: &str| {
            vars.get(k)
                .cloned()
                .unwrap_or_else(|| panic!("{k} is not set by scripts/mailstack.sh"))
        };
        MailStack {
            host: get("TICKETGATE_TEST_IMAP_HOST"),
            smtp_port: get("TICKETGATE_TEST_SMTP_PORT").parse().unwrap(),
            imap_port: get("TICKETGATE_TEST_IMAP_PORT").parse().unwrap(),
            imaps_port: get("TICKETGATE_TEST_IMAPS_PORT").parse().unwrap(),
            ca: get("TICKETGATE_TEST_CA"),
            password: get("TICKETGATE_TEST_MAIL_PASSWORD"),
        }
    })
}

/// A short random suffix so each test has its own mailboxes.
pub fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_string()
}

impl MailStack {
    /// Creates mailboxes (addresses at example.test, customer.test, other.test).
    pub fn add_users(&self, addresses: &[&str]) {
        let out = Command::new(script())
            .arg("add-user")
            .args(addresses)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "add-user failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn stop_postfix(&self) {
        let out = Command::new(script()).arg("stop-postfix").output().unwrap();
        assert!(
            out.status.success(),
            "stop-postfix failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn start(&self) {
        let out = Command::new(script()).arg("start").output().unwrap();
        assert!(
            out.status.success(),
            "start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A logged-in IMAP session as `user`.
    pub async fn login(&self, user: &str) -> async_imap::Session<TcpStream> {
        // Dovecot re-reads its passwd-file at most once a second: a mailbox added
        // a moment ago may need a second attempt.
        let start = Instant::now();
        loop {
            let tcp = TcpStream::connect((self.host.as_str(), self.imap_port))
                .await
                .expect("IMAP connects");
            let mut client = async_imap::Client::new(tcp);
            client
                .read_response()
                .await
                .expect("greeting")
                .expect("greeting present");
            match client.login(user, &self.password).await {
                Ok(session) => return session,
                Err((e, _)) if start.elapsed() > Duration::from_secs(5) => {
                    panic!("IMAP login as {user}: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }

    /// Every message in `user`'s `folder` (empty when it does not exist), in UID order.
    pub async fn folder(&self, user: &str, folder: &str) -> Vec<Vec<u8>> {
        let mut session = self.login(user).await;
        if session.select(folder).await.is_err() {
            session.logout().await.ok();
            return Vec::new();
        }
        let fetches: Vec<_> = session
            .uid_fetch("1:*", "(UID RFC822)")
            .await
            .expect("fetch")
            .try_collect()
            .await
            .expect("fetch");
        let mut messages: Vec<(u32, Vec<u8>)> = fetches
            .iter()
            .filter_map(|f| Some((f.uid?, f.body()?.to_vec())))
            .collect();
        messages.sort_by_key(|(uid, _)| *uid);
        session.logout().await.ok();
        messages.into_iter().map(|(_, m)| m).collect()
    }

    /// Every message in `user`'s INBOX, as raw bytes, in UID order.
    pub async fn inbox(&self, user: &str) -> Vec<Vec<u8>> {
        self.folder(user, "INBOX").await
    }

    /// Sends one message through Postfix (SMTP on loopback).
    pub async fn send(&self, from: &str, to: &str, raw: &[u8]) {
        use lettre::AsyncTransport;
        let transport = lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous(
            self.host.as_str(),
        )
        .port(self.smtp_port)
        .build();
        let envelope =
            lettre::address::Envelope::new(Some(from.parse().unwrap()), vec![to.parse().unwrap()])
                .unwrap();
        transport
            .send_raw(&envelope, raw)
            .await
            .expect("Postfix accepts the message");
    }

    /// `user`'s INBOX once everything Postfix accepted before this call is
    /// delivered: sends a marker behind it, waits for the marker, and returns
    /// the messages without it. Proves a mail did not come without sleeping.
    pub async fn drain(&self, user: &str) -> Vec<Vec<u8>> {
        let marker = format!("drain-{}", unique());
        let raw = format!(
            "From: postmaster@example.test\r\nTo: {user}\r\nMessage-ID: <{marker}@example.test>\r\nSubject: {marker}\r\n\r\n{marker}\r\n"
        );
        self.send("postmaster@example.test", user, raw.as_bytes())
            .await;
        let is_marker = |m: &Vec<u8>| String::from_utf8_lossy(m).contains(&marker);
        let start = Instant::now();
        loop {
            let messages = self.inbox(user).await;
            if messages.iter().any(is_marker) {
                return messages.into_iter().filter(|m| !is_marker(m)).collect();
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{user}: the drain marker never arrived"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `user`'s INBOX holds at least `count` messages.
    pub async fn wait_for(&self, user: &str, count: usize, timeout: Duration) -> Vec<Vec<u8>> {
        let start = Instant::now();
        loop {
            let messages = self.inbox(user).await;
            if messages.len() >= count {
                return messages;
            }
            assert!(
                start.elapsed() < timeout,
                "{user}: {} of {count} messages after {timeout:?}",
                messages.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
