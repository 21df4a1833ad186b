//! Adding a comment, by any channel: one permission check, one write, the
//! same event, notifications, mentions and rules for email, the API and the
//! portal alike.

use super::cmd::{Command, CommandLine};
use super::{Author, Changes, Failure, Refusal, RuleInput, access, actor};
use crate::domain::event::Event;
use crate::domain::ids::{CommentId, MessageId, TicketId};
use crate::domain::mail::Attachment;
use crate::domain::mentions;
use crate::domain::notify;
use crate::domain::rules::Trigger;
use crate::domain::template::Shown;
use crate::domain::ticket::{self, Role, Status};
use crate::store::{CommentSource, NewAttachment, NewComment, StoreError, TicketState, User};

/// What an author wrote, as every channel hands it over.
#[derive(Debug, Clone, Copy)]
pub struct Written<'a> {
    pub author: &'a User,
    /// A reply token or Authentication-Results vouched for the sender, or the
    /// author signed in (API, portal).
    pub proven: bool,
    pub source: CommentSource,
    /// The subject as written (email); rules match it, or the ticket's
    /// subject when there is none (API, portal).
    pub subject: Option<&'a str>,
    /// The comment text, without its command lines.
    pub body: &'a str,
    pub signature: Option<&'a str>,
    pub quoted: Option<&'a str>,
    /// Asked for an internal note (`#internal`, or the API's `internal`).
    pub internal: bool,
    pub attachments: &'a [Attachment],
    /// SHA-256 of each attachment, in `attachments` order.
    pub attachment_shas: &'a [String],
    pub commands: &'a [CommandLine],
    pub mentions: &'a mentions::Found,
    pub message_id: Option<&'a MessageId>,
    /// How a message found its ticket (email), for the event.
    pub thread: Option<&'a str>,
    /// The author asked for no automatic answers (`X-Auto-Response-Suppress`).
    pub suppress_auto_response: bool,
}

/// What a signed-in person typed in a channel that acts one request at a
/// time (the API, the portal): the service makes the [`Written`] from it,
/// finding its mentions, so every channel reads text the same way. Signed
/// in with a token or a link sent to their own address, they are proven.
#[derive(Debug, Clone, Copy)]
pub struct Typed<'a> {
    pub author: &'a User,
    pub source: CommentSource,
    pub body: &'a str,
    /// Asked for an internal note (staff only; refused otherwise).
    pub internal: bool,
    pub attachments: &'a [Attachment],
    /// SHA-256 of each attachment, in `attachments` order.
    pub attachment_shas: &'a [String],
}

impl<'a> Typed<'a> {
    /// The comment as the service takes it, with the mentions `found` in it.
    pub(super) fn written(&self, found: &'a mentions::Found) -> Written<'a> {
        Written {
            author: self.author,
            proven: true,
            source: self.source,
            subject: None,
            body: self.body,
            signature: None,
            quoted: None,
            internal: self.internal,
            attachments: self.attachments,
            attachment_shas: self.attachment_shas,
            commands: &[],
            mentions: found,
            message_id: None,
            thread: None,
            suppress_auto_response: false,
        }
    }
}

impl<'a> Written<'a> {
    pub fn rule_input<'s>(&self, state: &'s TicketState) -> RuleInput<'s>
    where
        'a: 's,
    {
        RuleInput {
            subject: self.subject.unwrap_or(&state.subject),
            body: self.body,
            has_attachment: !self.attachments.is_empty(),
            suppress_auto_response: self.suppress_auto_response,
            author_proven: self.proven,
        }
    }

    /// Whether it holds a comment: text or a file (a message of commands
    /// alone adds none).
    pub fn has_content(&self) -> bool {
        !self.body.trim().is_empty() || !self.attachments.is_empty()
    }
}

/// What an accepted comment did.
#[derive(Debug)]
pub struct Added {
    /// The ticket as the commands left it (before the rules).
    pub state: TicketState,
    /// `None`: the message held commands only.
    pub comment: Option<CommentId>,
    /// Refused commands and unresolved mentions, for the author.
    pub failures: Vec<Failure>,
    /// Where `#move-to` put the comment, when it did: the mail's
    /// Message-ID threads there.
    pub moved_to: Option<TicketId>,
}

impl Changes<'_> {
    /// Adds `w` to the ticket: the comment (unless it holds only commands),
    /// its commands in order, its mentions, then the `comment_added` rules
    /// and, when a command moved the status, the `status_changed` rules,
    /// each once. Refused before anything is written when the author may not
    /// comment, or may not post the internal note asked for.
    pub async fn add_comment(
        &mut self,
        state: &TicketState,
        w: &Written<'_>,
    ) -> Result<Result<Added, Refusal>, StoreError> {
        let actor = actor(w.author);
        if !ticket::may_comment(&actor, &access(state)) {
            return Ok(Err(Refusal::NotAParticipant));
        }
        if w.internal && !ticket::may_post_internal(&actor, w.proven) {
            return Ok(Err(Refusal::InternalNotAllowed));
        }
        let mut failures = Vec::new();
        let mut comment = None;
        if w.has_content() || w.commands.is_empty() {
            let id = self.write_comment(state.id, w).await?;
            let event = Event::CommentAdded {
                comment: id,
                internal: w.internal,
                source: w.source,
                message_id: w.message_id.cloned(),
                thread: w.thread.map(str::to_string),
            };
            self.record(state.id, Some(w.author), event).await?;
            comment = Some(shown_comment(id, w));
        }
        self.tx
            .update_ticket(state.id, state.status, w.message_id, self.now)
            .await?;
        // `state` was read in this transaction and only `update_ticket` has
        // changed the ticket since: reading it back again would cost SQLite
        // three statements a reply.
        let mut current = TicketState {
            last_message_id: w
                .message_id
                .cloned()
                .or_else(|| state.last_message_id.clone()),
            ..state.clone()
        };
        if let Some(shown) = &comment {
            // Its followers and the support team, minus its author (and
            // customers, when it is internal).
            let plan = self
                .team_plan(|team| {
                    notify::on_comment(&current.followers, Some(&w.author.email), team, w.internal)
                })
                .await?;
            self.tell_plan(&current, &plan, Some(shown));
        }
        let ran = self
            .run_commands(current, w, comment.as_ref().map(|c| c.id))
            .await?;
        current = ran.state;
        failures.extend(ran.failures);
        let status_after_commands = current.status;
        let input = w.rule_input(state);
        if let Some(shown) = &comment {
            // Mentions in an internal note reach staff only.
            let excerpt: String = w.body.chars().take(300).collect();
            let none = mentions::Found::default();
            let visible = if w.internal { &none } else { w.mentions };
            failures.extend(self.mentions(&current, w.author, visible, &excerpt).await?);
            self.apply_rules(
                Trigger::CommentAdded,
                Some(state.status),
                current.clone(),
                w.author,
                &input,
                Some(shown),
            )
            .await?;
        }
        let shown = comment.as_ref();
        self.status_rules_once(
            state.id,
            state.status,
            status_after_commands,
            w.author,
            &input,
            shown,
        )
        .await?;
        Ok(Ok(Added {
            state: current,
            comment: comment.map(|c| c.id),
            failures,
            moved_to: ran.moved_to,
        }))
    }

    /// The comment row and its files.
    pub(super) async fn write_comment(
        &mut self,
        ticket: TicketId,
        w: &Written<'_>,
    ) -> Result<CommentId, StoreError> {
        let id = self
            .tx
            .insert_comment(&NewComment {
                ticket_id: ticket,
                author_id: w.author.id,
                body: w.body,
                signature: w.signature,
                quoted: w.quoted,
                internal: w.internal,
                source: w.source,
                message_id: w.message_id.cloned(),
                ingest_id: None,
                now: self.now,
            })
            .await?;
        // docs/contract.md, "Desk": the first public comment of proven
        // staff answers the customer; a forged staff From stops no clock.
        if w.author.role == Role::Staff && w.proven && !w.internal {
            self.staff_answered(ticket).await?;
        }
        for (attachment, sha) in w.attachments.iter().zip(w.attachment_shas) {
            self.tx.put_blob(sha, &attachment.data).await?;
            self.tx
                .insert_attachment(&NewAttachment {
                    comment_id: id,
                    filename: attachment.filename.clone(),
                    content_type: attachment.content_type.clone(),
                    size: attachment.data.len() as u64,
                    sha256: sha.clone(),
                })
                .await?;
        }
        Ok(id)
    }

    /// The `status_changed` rules, once, when commands moved the status from
    /// `before` to `after_commands` (what they set; rules since may have
    /// moved it on). Every channel's commands end here.
    pub(super) async fn status_rules_once(
        &mut self,
        ticket: TicketId,
        before: Status,
        after_commands: Status,
        author: &User,
        input: &RuleInput<'_>,
        shown: Option<&Shown>,
    ) -> Result<(), StoreError> {
        if after_commands == before {
            return Ok(());
        }
        let now_state = self.reload(ticket).await?;
        self.apply_rules(
            Trigger::StatusChanged,
            Some(after_commands),
            now_state,
            author,
            input,
            shown,
        )
        .await
    }

    /// Runs the command lines in order; each refusal is one failure.
    /// `#internal` shaped the comment; `#list` and `#help` are answered;
    /// `#move-to` moves `comment`, the one this mail added (none: refused).
    pub(super) async fn run_commands(
        &mut self,
        mut state: TicketState,
        w: &Written<'_>,
        comment: Option<CommentId>,
    ) -> Result<Ran, StoreError> {
        let author = Author {
            user: w.author,
            proven: w.proven,
        };
        let mut failures = Vec::new();
        let mut moved_to = None;
        for line in w.commands {
            match &line.parsed {
                Err(problem) => failures.push(Failure::new(line.line.clone(), problem.to_string())),
                Ok(Command::Internal) => {}
                Ok(command @ Command::MoveTo(to)) => {
                    let moved = match comment {
                        // The same proof `Changes::command` asks for.
                        _ if ticket::needs_proof(&author.actor(), command.reach())
                            && !author.proven =>
                        {
                            Err(Refusal::Unverified)
                        }
                        Some(id) if moved_to.is_none() => self
                            .move_comment(id, w.author, *to)
                            .await?
                            .map(|dest| dest.id),
                        _ => Err(Refusal::NotFound(super::cmd::NOTHING_TO_MOVE.into())),
                    };
                    match moved {
                        Ok(dest) => moved_to = Some(dest),
                        Err(refusal) => {
                            failures.push(Failure::new(line.line.clone(), refusal.to_string()))
                        }
                    }
                }
                Ok(question) if question.is_question() => self.answer(w.author, question).await?,
                Ok(command) => match self.command(&state, &author, command).await? {
                    Ok(next) => state = next,
                    Err(refusal) => {
                        failures.push(Failure::new(line.line.clone(), refusal.to_string()))
                    }
                },
            }
        }
        Ok(Ran {
            state,
            failures,
            moved_to,
        })
    }
}

/// What a mail's commands did (`Changes::run_commands`).
pub(super) struct Ran {
    pub state: TicketState,
    pub failures: Vec<Failure>,
    pub moved_to: Option<TicketId>,
}

/// The comment as notices show it (without its text).
pub(super) fn shown_comment(id: CommentId, w: &Written<'_>) -> Shown {
    Shown {
        id,
        author_name: w.author.name.clone(),
        author_email: w.author.email.clone(),
        internal: w.internal,
        attachments: w.attachments.iter().map(|a| a.filename.clone()).collect(),
    }
}
