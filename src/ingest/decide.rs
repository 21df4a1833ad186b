//! What to do with a readable message from a known or registrable sender:
//! the ticket it threads to, and the ticket service's call (open a ticket,
//! add a comment) or a refusal.

use super::*;

impl Ingestor {
    /// The decisions for a parsed, non-duplicate, not oversized message.
    pub(super) async fn decide(
        &self,
        tx: &mut dyn Tx,
        mail: &InboundMail,
        content: &Content,
        notify: bool,
        now: OffsetDateTime,
    ) -> Result<Decided, StoreError> {
        if let Some(auto) = classify::classify(mail, &self.own) {
            if auto == classify::Automatic::DeliveryReport {
                self.record_bounces(tx, mail, now).await?;
            }
            return Ok(Decided::refused(Outcome::Ignored, auto.as_str()));
        }
        if mail.from_fields > 1 {
            // Whose message it is is unknown (see `InboundMail::from_fields`):
            // nobody is registered, answered or acted for. A message on a
            // thread waits for staff; a new one is refused.
            let facts = ThreadFacts {
                known: tx.tickets_of(&thread_ids(mail)).await?,
                token: threading::find_token(mail, &self.policy.support, &self.policy.secret),
                tagged: None,
            };
            let decision = threading::resolve(mail, &facts);
            let ticket = match decision.ticket {
                Some(id) => tx.ticket_state(id).await?.map(|s| s.id),
                None => None,
            };
            let outcome = match ticket {
                Some(_) => Outcome::Quarantined,
                None => Outcome::Rejected,
            };
            return Ok(Decided {
                thread_reason: Some(decision.reason.describe()),
                ticket,
                ..Decided::refused(outcome, reason::MULTIPLE_FROM)
            });
        }
        let Some(sender) = mail.sender() else {
            return Ok(Decided::refused(Outcome::Rejected, reason::NO_SENDER));
        };
        let mut user = tx.user_by_email(sender).await?;
        // A deactivated user writes as a stranger would, and mail never
        // registers them again: only staff reactivate.
        let deactivated = user.as_ref().is_some_and(|u| !u.active);
        if deactivated {
            user = None;
        }
        if user.as_ref().is_some_and(|u| u.bouncing) {
            // A person writing from the address shows it receives mail again.
            tx.set_bouncing(sender, false).await?;
        }
        let registers = user.is_none()
            && !deactivated
            && (self.policy.allow_unknown_senders
                || tx.org_for_domain(sender.domain()).await?.is_some());
        if registers && lookalike::confusable_address(sender) {
            // It could pass for someone else's address: never registered
            // from mail; staff decide.
            self.tell_team_refused(tx, mail, sender, reason::CONFUSABLE_SENDER, notify, now)
                .await?;
            return Ok(Decided::refused(
                Outcome::Rejected,
                reason::CONFUSABLE_SENDER,
            ));
        }
        if user.is_none() && !deactivated {
            // Senders from an org's domain are registered as its members on first contact.
            if let Some(org) = tx.org_for_domain(sender.domain()).await? {
                let new = self.new_customer(tx, mail, sender, Some(org)).await?;
                user = Some(tx.insert_user(&new, now).await?);
            }
        }

        let mut facts = ThreadFacts {
            known: tx.tickets_of(&thread_ids(mail)).await?,
            token: threading::find_token(mail, &self.policy.support, &self.policy.secret),
            tagged: None,
        };
        if let (Some(user), Some(tagged)) = (
            &user,
            threading::subject_tag(&mail.subject, &self.policy.tag),
        ) && let Some(state) = tx.ticket_state(tagged).await?
            && let Some(state) = self.living(tx, state).await?
            && ticket::may_comment(&tickets::actor(user), &tickets::access(&state))
        {
            facts.tagged = Some(state.id);
        }
        let decision = threading::resolve(mail, &facts);
        let thread_reason = Some(decision.reason.describe());

        let existing = match decision.ticket {
            Some(id) => match tx.ticket_state(id).await? {
                Some(state) => self.living(tx, state).await?,
                None => None,
            },
            None => None,
        };
        let mut decided = match existing {
            Some(state) => {
                let Some(user) = user else {
                    self.refusal_notice(tx, mail, reason::UNKNOWN_SENDER, None, notify, now)
                        .await?;
                    return Ok(Decided {
                        thread_reason,
                        ..Decided::refused(Outcome::Quarantined, reason::UNKNOWN_SENDER)
                    });
                };
                if !ticket::may_comment(&tickets::actor(&user), &tickets::access(&state)) {
                    self.refusal_notice(
                        tx,
                        mail,
                        reason::NOT_A_PARTICIPANT,
                        Some(&user),
                        notify,
                        now,
                    )
                    .await?;
                    return Ok(Decided {
                        thread_reason,
                        ticket: Some(state.id),
                        ..Decided::refused(Outcome::Quarantined, reason::NOT_A_PARTICIPANT)
                    });
                }
                self.add_comment(
                    tx,
                    mail,
                    content,
                    &user,
                    &state,
                    notify,
                    now,
                    &decision.reason,
                )
                .await?
            }
            None => {
                let user = match user {
                    Some(user) => user,
                    None if self.policy.allow_unknown_senders && !deactivated => {
                        let new = self.new_customer(tx, mail, sender, None).await?;
                        tx.insert_user(&new, now).await?
                    }
                    None => {
                        self.refusal_notice(tx, mail, reason::UNKNOWN_SENDER, None, notify, now)
                            .await?;
                        return Ok(Decided {
                            thread_reason,
                            ..Decided::refused(Outcome::Rejected, reason::UNKNOWN_SENDER)
                        });
                    }
                };
                self.create_ticket(tx, mail, content, &user, notify, now)
                    .await?
            }
        };
        decided.thread_reason = thread_reason;
        Ok(decided)
    }

    /// A user registered from their first mail. Their display name comes from
    /// From, unless it claims the support name or a staff member's name
    /// (`"Sam Staff (Example Support)" <helpdesk@customer.test>`) or is
    /// written as an address (`"staff@example.test" <new@customer.test>`):
    /// then the local part, as if there were no name.
    pub(super) async fn new_customer(
        &self,
        tx: &mut dyn Tx,
        mail: &InboundMail,
        sender: &EmailAddress,
        org: Option<i64>,
    ) -> Result<NewUser, StoreError> {
        let claimed = mail.from.as_ref().and_then(|f| f.name.clone());
        let name = match claimed {
            Some(name) if !name.trim().is_empty() && !lookalike::name_is_address(&name) => {
                let staff = tx.staff_users().await?;
                let protected = std::iter::once(self.policy.support_name.as_str())
                    .chain(staff.iter().map(|u| u.name.as_str()));
                if lookalike::claims_name(&name, protected) {
                    sender.local_part().to_string()
                } else {
                    name
                }
            }
            _ => sender.local_part().to_string(),
        };
        Ok(NewUser {
            email: sender.clone(),
            name,
            role: Role::Customer,
            org_id: org,
            locale: "en".into(),
        })
    }

    /// The ticket mail threading to `state` belongs to: `state` itself,
    /// or, when it is closed, where merges took it (docs/contract.md,
    /// "Desk"). Only a closed ticket is asked: a merge closes it, and the
    /// replies to open tickets, most mail, cost no extra read.
    async fn living(
        &self,
        tx: &mut dyn Tx,
        state: TicketState,
    ) -> Result<Option<TicketState>, StoreError> {
        if state.status != ticket::Status::Closed {
            return Ok(Some(state));
        }
        match tickets::living_ticket(tx, state.id).await? {
            id if id == state.id => Ok(Some(state)),
            id => tx.ticket_state(id).await,
        }
    }

    /// Whether the author wrote to their own reply address of a ticket
    /// since merged into `ticket`: as good a proof as one of `ticket`'s.
    async fn proven_by_merged_token(
        &self,
        tx: &mut dyn Tx,
        mail: &InboundMail,
        user: &User,
        ticket: TicketId,
    ) -> Result<bool, StoreError> {
        match threading::find_token(mail, &self.policy.support, &self.policy.secret) {
            Some(t) if t.user == user.id && t.ticket != ticket => {
                Ok(tickets::living_ticket(tx, t.ticket).await? == ticket)
            }
            _ => Ok(false),
        }
    }

    /// What the author of `mail` may prove about themselves: our MTA vouched
    /// for their domain, or they wrote to the reply address issued to them.
    pub(super) fn proven(&self, mail: &InboundMail, user: &User, ticket: Option<TicketId>) -> bool {
        let token = threading::find_token(mail, &self.policy.support, &self.policy.secret);
        token.is_some_and(|t| t.user == user.id && Some(t.ticket) == ticket)
            || crate::domain::auth::sender_verified(
                &mail.authentication_results,
                &self.policy.trusted_authserv_id,
                user.email.domain(),
            )
    }

    pub(super) fn changes<'a>(
        &'a self,
        tx: &'a mut dyn Tx,
        notify: bool,
        now: OffsetDateTime,
    ) -> Changes<'a> {
        self.tickets.changes(tx, notify, now)
    }

    pub(super) async fn create_ticket(
        &self,
        tx: &mut dyn Tx,
        mail: &InboundMail,
        content: &Content,
        user: &User,
        notify: bool,
        now: OffsetDateTime,
    ) -> Result<Decided, StoreError> {
        let parsed = &content.commands;
        let only_questions = !parsed.commands.is_empty()
            && parsed
                .commands
                .iter()
                .all(|c| c.parsed.as_ref().is_ok_and(Command::is_question))
            && commands::only_pleasantries(&content.body)
            && mail.attachments.is_empty();
        if only_questions {
            // `#list`, `#help` (and a greeting): answers, not a ticket.
            let mut changes = self.changes(tx, notify, now);
            let mut asked = Vec::new();
            for c in &parsed.commands {
                if let Ok(command) = &c.parsed
                    && !asked.contains(command)
                {
                    asked.push(command.clone());
                }
            }
            for command in asked {
                changes.answer(user, &command).await?;
            }
            return Ok(Decided {
                outcome: Outcome::CommandOnly,
                reason: None,
                thread_reason: None,
                ticket: None,
                comment: None,
            });
        }
        let subject = threading::ticket_subject(&mail.subject, &self.policy.tag);
        // Registered users in Cc of the creating message follow the ticket
        // when the sender could share it with them (`Opening::cc`).
        // Each once: a refused one is reported once.
        let mut seen = std::collections::HashSet::new();
        let cc: Vec<EmailAddress> = mail
            .cc
            .iter()
            .map(|cc| cc.address.clone())
            .filter(|a| *a != user.email && *a != self.policy.support)
            .filter(|a| seen.insert(a.clone()))
            .collect();
        let proven = self.proven(mail, user, None);
        let opening = tickets::Opening {
            written: self.written(mail, content, user, proven, None),
            subject: &subject,
            cc: &cc,
        };
        let mut changes = self.changes(tx, notify, now);
        let added = match changes.open_ticket(&opening).await? {
            Ok(added) => added,
            Err(refusal) => {
                drop(changes);
                return self
                    .refused_comment(tx, mail, user, None, refusal, notify, now)
                    .await;
            }
        };
        let ticket_id = added.state.id;
        if !added.failures.is_empty() {
            // The report names the ticket as the rules left it.
            let state = changes.reload(ticket_id).await?;
            changes
                .report_failures(user, Some(&state), &mail.subject, &added.failures)
                .await?;
        }
        changes.finish().await?;
        self.remember_thread(tx, mail, ticket_id, now).await?;
        Ok(Decided {
            outcome: Outcome::TicketCreated,
            reason: None,
            thread_reason: None,
            ticket: Some(ticket_id),
            comment: added.comment,
        })
    }

    /// What the message says, for the ticket service.
    pub(super) fn written<'m>(
        &self,
        mail: &'m InboundMail,
        content: &'m Content,
        user: &'m User,
        proven: bool,
        thread: Option<&'m str>,
    ) -> tickets::Written<'m> {
        let commands = &content.commands.commands;
        tickets::Written {
            author: user,
            proven,
            source: CommentSource::Email,
            subject: Some(&mail.subject),
            body: &content.body,
            signature: content.extracted.signature.as_deref(),
            quoted: content.extracted.quoted.as_deref(),
            internal: commands.iter().any(|c| c.parsed == Ok(Command::Internal)),
            attachments: &mail.attachments,
            attachment_shas: &content.attachment_shas,
            commands,
            mentions: &content.mentions,
            message_id: mail.message_id.as_ref(),
            thread,
            suppress_auto_response: mail.auto.suppress_auto_response,
        }
    }

    /// A comment or ticket the ticket service refused: the message waits in
    /// quarantine for staff, and its sender is told why (never published).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn refused_comment(
        &self,
        tx: &mut dyn Tx,
        mail: &InboundMail,
        user: &User,
        ticket: Option<TicketId>,
        refusal: tickets::Refusal,
        notify: bool,
        now: OffsetDateTime,
    ) -> Result<Decided, StoreError> {
        let why = match refusal {
            tickets::Refusal::NotAParticipant => reason::NOT_A_PARTICIPANT,
            _ => reason::UNVERIFIED_INTERNAL,
        };
        self.refusal_notice(tx, mail, why, Some(user), notify, now)
            .await?;
        Ok(Decided {
            ticket,
            ..Decided::refused(Outcome::Quarantined, why)
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn add_comment(
        &self,
        tx: &mut dyn Tx,
        mail: &InboundMail,
        content: &Content,
        user: &User,
        state: &TicketState,
        notify: bool,
        now: OffsetDateTime,
        via: &threading::ThreadReason,
    ) -> Result<Decided, StoreError> {
        let proven = self.proven(mail, user, Some(state.id))
            || self
                .proven_by_merged_token(tx, mail, user, state.id)
                .await?;
        let thread = via.describe();
        let written = self.written(mail, content, user, proven, Some(&thread));
        let mut changes = self.changes(tx, notify, now);
        let added = match changes.add_comment(state, &written).await? {
            Ok(added) => added,
            Err(refusal) => {
                drop(changes);
                return self
                    .refused_comment(tx, mail, user, Some(state.id), refusal, notify, now)
                    .await;
            }
        };
        changes
            .report_failures(user, Some(&added.state), &mail.subject, &added.failures)
            .await?;
        changes.finish().await?;
        // A `#move-to` took the comment, and its thread, elsewhere.
        let home = added.moved_to.unwrap_or(state.id);
        self.remember_thread(tx, mail, home, now).await?;
        let outcome = if added.comment.is_some() {
            Outcome::CommentAdded
        } else {
            Outcome::CommandOnly
        };
        Ok(Decided {
            outcome,
            reason: None,
            thread_reason: None,
            ticket: Some(home),
            comment: added.comment,
        })
    }

    /// Every id of an accepted message joins its ticket's thread: its own as
    /// received, its ancestors as referenced (so their later arrival threads too).
    pub(super) async fn remember_thread(
        &self,
        tx: &mut dyn Tx,
        mail: &InboundMail,
        ticket: TicketId,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        if let Some(id) = &mail.message_id {
            tx.remember_refs(std::slice::from_ref(id), ticket, RefKind::Received, now)
                .await?;
        }
        tx.remember_refs(&mail.ancestors(), ticket, RefKind::Referenced, now)
            .await
    }
}
