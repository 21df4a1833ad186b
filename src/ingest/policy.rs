//! What intake needs from config, resolved once at start.

use super::*;

/// What intake needs from config, resolved once at start.
#[derive(Debug, Clone)]
pub struct IntakePolicy {
    pub support: EmailAddress,
    pub support_name: String,
    /// `support.domain`: Message-IDs of notifications are generated under it.
    pub domain: String,
    pub notify: Option<EmailAddress>,
    pub tag: String,
    pub secret: Vec<u8>,
    pub max_message_size: u64,
    /// `[intake] keep_oversize`: how much of a larger message a source keeps.
    pub keep_oversize: u64,
    pub allow_unknown_senders: bool,
    /// At most one automatic answer (acknowledgement, refusal) per sender per window.
    pub auto_reply_window: std::time::Duration,
    /// `[auth] trusted_authserv_id`: whose Authentication-Results count.
    pub trusted_authserv_id: String,
    /// Also holds the rules and the automatic-answer window.
    pub changes: ChangePolicy,
    /// The portal invitations link to, when `[web]` is on.
    pub portal: Option<crate::tickets::notice::Portal>,
}

impl IntakePolicy {
    pub fn from_settings(
        settings: &crate::config::Settings,
    ) -> Result<Self, crate::config::ConfigError> {
        Ok(Self {
            support: settings.support_address(),
            support_name: settings.support.name.clone(),
            domain: settings.support.domain.trim().to_ascii_lowercase(),
            notify: settings.notify_address(),
            tag: settings.support.tag.clone(),
            secret: settings.reply_secret()?,
            max_message_size: settings.intake.max_message_size.0,
            keep_oversize: settings.intake.keep_oversize.0,
            allow_unknown_senders: settings.intake.allow_unknown_senders,
            auto_reply_window: settings.intake.auto_reply_window.0,
            portal: settings
                .web
                .portal_url()
                .map(|base_url| crate::tickets::notice::Portal {
                    base_url: base_url.to_string(),
                    invite_ttl: settings.web.invite_ttl.0,
                }),
            trusted_authserv_id: settings.auth.trusted_authserv_id.clone(),
            changes: ChangePolicy {
                notify: settings.notify_address(),
                notify_each_staff: settings.support.notify_staff
                    == crate::config::NotifyStaff::Each,
                terms: settings.terms(),
                auto_follow_mentions: settings.mentions.auto_follow,
                rules: Arc::new(settings.rules()?),
                auto_reply_window: settings.intake.auto_reply_window.0,
                auto_reply_limit: settings.intake.auto_reply_limit,
                clocks: settings.clocks()?,
                metrics: None,
                timezone: crate::domain::dates::Zone::parse(&settings.support.timezone).map_err(
                    |e| crate::config::ConfigError::Invalid {
                        key: "support.timezone".into(),
                        message: e.to_string(),
                    },
                )?,
            },
        })
    }

    /// How much of a message sources read (see `source::read_bounded`).
    pub fn limits(&self) -> crate::source::Limits {
        crate::source::Limits {
            max: self.max_message_size,
            keep: self.keep_oversize,
        }
    }

    pub(super) fn own_identity(&self) -> OwnIdentity {
        let mut addresses = vec![self.support.clone()];
        addresses.extend(self.notify.clone());
        OwnIdentity {
            addresses,
            domain: self.domain.clone(),
        }
    }
}
