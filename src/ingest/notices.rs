//! What intake tells people by itself: refusals to the sender, the team's
//! alerts about refused and quarantined mail, and bounces recorded.

use super::*;

/// The `auto_replies` key of the quarantine alert's window (never an address).
pub(super) const QUARANTINE_ALERT_KEY: &str = "quarantine alert";

impl Ingestor {
    /// Tells the support team (`support.notify`) that a sender was refused.
    pub(super) async fn tell_team_refused(
        &self,
        tx: &mut dyn Tx,
        mail: &InboundMail,
        sender: &EmailAddress,
        reason: &str,
        notify: bool,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let Some(team) = self.policy.notify.as_ref().filter(|_| notify) else {
            return Ok(());
        };
        let name = mail.from.as_ref().and_then(|f| f.name.clone());
        let what = Notification::SenderRefused(template::SenderRefused {
            reason: reason.to_string(),
            sender: sender.clone(),
            name,
            original_subject: mail.subject.clone(),
        });
        let notice = Notice::to_team(what, team);
        notice::queue(tx, &self.sender, notice, now).await?;
        Ok(())
    }

    /// Staff hear of quarantined mail (its sender was told support will
    /// review it): at most one alert per `auto_reply_window` to the support
    /// team, due at the window's end; the outbox lists in it, when it is
    /// sent, every message quarantined since and not yet replayed, each with
    /// its replay command.
    pub(super) async fn quarantine_alert(
        &self,
        tx: &mut dyn Tx,
        notify: bool,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let Some(team) = self.policy.notify.as_ref() else {
            tracing::warn!("mail was quarantined and [support] notify is empty: no one is alerted");
            return Ok(());
        };
        let window = self.policy.auto_reply_window;
        if !notify
            || !tx
                .claim_auto_reply_key(QUARANTINE_ALERT_KEY, now, window)
                .await?
        {
            return Ok(());
        }
        let what = Notification::QuarantineAlert(template::QuarantineAlert {
            since: crate::store::time_text::format_ts(now),
            portal: self.sender.portal.as_ref().map(|p| p.base_url.clone()),
        });
        let notice = Notice::to_team(what, team);
        // Queued to be sent when the window closes, with what arrived in it.
        notice::queue(tx, &self.sender, notice, now + window).await?;
        Ok(())
    }

    /// Tells the sender of a refused message why, once per rate-limit window.
    /// The answer goes to From, never Reply-To: a forged Reply-To must not
    /// turn the gateway into a mail cannon.
    pub(super) async fn refusal_notice(
        &self,
        tx: &mut dyn Tx,
        mail: &InboundMail,
        reason: &str,
        user: Option<&User>,
        notify: bool,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let Some(sender) = mail.sender() else {
            return Ok(());
        };
        if !notify
            || mail.auto.suppress_auto_response
            || !tx
                .claim_auto_reply(sender, now, self.policy.auto_reply_window)
                .await?
        {
            return Ok(());
        }
        let limit = format!("{} MB", self.policy.max_message_size / (1024 * 1024));
        // To an unknown sender (who may be forged: backscatter) the notice says
        // nothing the sender wrote, neither display name nor subject, so it
        // cannot carry anyone's text to a third party.
        let original_subject = user.map(|_| mail.subject.clone());
        let notice = Notice {
            what: Notification::Refused(template::Refused {
                reason: reason.to_string(),
                original_subject,
                limit,
            }),
            to: sender,
            name: user.map(|u| u.name.as_str()),
            user: None,
            locale: user.map(|u| crate::domain::locale::Locale::of(&u.locale)),
            reason: crate::domain::ticket::Reason::Sender,
            ticket: None,
            comment: None,
        };
        notice::queue(tx, &self.sender, notice, now).await?;
        Ok(())
    }

    /// A delivery report about one of our notifications marks its recipient as
    /// bouncing, so they are not mailed again until they write in themselves.
    pub(super) async fn record_bounces(
        &self,
        tx: &mut dyn Tx,
        mail: &InboundMail,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        for id in &mail.auto.report_about {
            let Some((ticket, recipient)) = tx.outbox_recipient(id).await? else {
                continue;
            };
            // When the report names its failed recipients, believe only those.
            let failed = &mail.auto.report_recipients;
            if !failed.is_empty() && !failed.contains(&recipient) {
                continue;
            }
            if tx.set_bouncing(&recipient, true).await? {
                tx.insert_event(&NewEvent {
                    ticket_id: ticket,
                    event: Event::RecipientBouncing {
                        email: recipient.clone(),
                        message_id: id.clone(),
                    },
                    actor_id: None,
                    now,
                })
                .await?;
            }
        }
        Ok(())
    }
}
