//! The scheduler's work (docs/contract.md, "Desk"): SLA clocks that reach
//! their warning point or pass their due time, and idle rules
//! (`on = "idle"` in config/rules.toml). `serve` calls [`Service::tick`]
//! every minute; tests call it with the time they choose. Each alarm is
//! claimed in `ticket_alarms` in the transaction that sends it, so of
//! several instances exactly one sends it, on either store.

use time::OffsetDateTime;

use super::clocks::{self, Alarm};
use super::{Changes, Service};
use crate::domain::event::{Cause, Event};
use crate::domain::ids::TicketId;
use crate::domain::notify::{self, Follower};
use crate::domain::rules::{Action, Facts, Rule, Trigger};
use crate::domain::template::{self, Notification};
use crate::domain::ticket::{FollowerSource, Reason, Status};
use crate::store::{StoreError, TicketState};

/// Tickets one pass looks at per kind of work; the rest wait for the next
/// pass, so a backlog never holds the writer for long.
const BATCH: i64 = 200;

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Ticked {
    pub warned: usize,
    pub breached: usize,
    pub idle_fired: usize,
}

impl Service {
    /// One pass of the scheduler as of `now`.
    pub async fn tick(&self, now: OffsetDateTime) -> Result<Ticked, StoreError> {
        let mut done = Ticked::default();
        for id in self.store().due_alarms(now, BATCH).await? {
            let (warned, breached) = self.ring(id, now).await?;
            done.warned += warned;
            done.breached += breached;
        }
        let rules = self.policy().rules.clone();
        for rule in rules.rules.iter().filter(|r| r.on == Trigger::Idle) {
            done.idle_fired += self.idle(rule, now).await?;
        }
        Ok(done)
    }

    /// Rings the clock alarms of ticket `id` due by `now`: a breach, or
    /// else a warning, per clock. Returns (warnings, breaches) sent.
    async fn ring(&self, id: TicketId, now: OffsetDateTime) -> Result<(usize, usize), StoreError> {
        let mut tx = self.store().begin().await?;
        let Some(state) = tx.ticket_state(id).await? else {
            return Ok((0, 0));
        };
        let mut c = self.changes(tx.as_mut(), true, now);
        let mut desk = c.desk(id).await?;
        let all = clocks::alarms(&desk, state.status, state.priority, &c.policy.clocks);
        let due: Vec<Alarm> = all.iter().copied().filter(|a| a.at <= now).collect();
        let mut sent = (0, 0);
        for alarm in &due {
            // A warning that comes due with its breach is not sent: the
            // breach says more. Its claim is still taken.
            let superseded = !alarm.breach
                && due
                    .iter()
                    .any(|b| b.breach && b.clock == alarm.clock && b.due == alarm.due);
            if !c.tx.claim_alarm(id, &alarm.kind(), alarm.due, now).await? || superseded {
                continue;
            }
            c.clock_alarm(&state, desk.owner, alarm).await?;
            if alarm.breach
                && let Some(m) = &c.policy.metrics
            {
                m.record_breach(alarm.clock.as_str());
            }
            if alarm.breach {
                sent.1 += 1;
            } else {
                sent.0 += 1;
            }
        }
        desk.next_alarm_at = all.iter().map(|a| a.at).find(|at| *at > now);
        c.tx.set_desk(id, &desk).await?;
        c.finish().await?;
        tx.commit().await?;
        Ok(sent)
    }

    /// Fires `rule` on every ticket quiet long enough, once per quiet
    /// spell: the claim's due time is the instant the spell reached `after`.
    async fn idle(&self, rule: &Rule, now: OffsetDateTime) -> Result<usize, StoreError> {
        let Some(after) = rule.after else {
            return Ok(0);
        };
        let statuses: Vec<Status> = if rule.when.status.is_empty() {
            Status::ALL
                .iter()
                .copied()
                .filter(|s| s.is_open())
                .collect()
        } else {
            rule.when.status.clone()
        };
        let before = now - after;
        let mut fired = 0;
        for status in statuses {
            let mut cursor = (OffsetDateTime::UNIX_EPOCH, 0);
            loop {
                let found = self
                    .store()
                    .idle_tickets(&idle_kind(rule), status, before, cursor, BATCH)
                    .await?;
                let Some(&last) = found.last() else { break };
                cursor = (last.1, last.0);
                for (id, _) in &found {
                    fired += usize::from(self.idle_one(rule, *id, now).await?);
                }
                if (found.len() as i64) < BATCH {
                    break;
                }
            }
        }
        Ok(fired)
    }

    async fn idle_one(
        &self,
        rule: &Rule,
        id: TicketId,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut tx = self.store().begin().await?;
        let Some(state) = tx.ticket_state(id).await? else {
            return Ok(false);
        };
        let mut c = self.changes(tx.as_mut(), true, now);
        let orgs = if state.orgs.is_empty() {
            Vec::new()
        } else {
            c.tx.org_slugs(&state.orgs).await?
        };
        let facts = Facts {
            orgs: &orgs,
            status: Some(state.status),
            priority: state.priority,
            ..Facts::default()
        };
        // Checked again inside the transaction: the ticket may have moved
        // since the list was read, by a reply or by another instance.
        let desk = c.desk(id).await?;
        if desk.updated_at + rule.after.unwrap_or_default() > now || !rule.when.matches(&facts) {
            return Ok(false);
        }
        // The spell is known by when it began: a later change is a new one.
        if !c
            .tx
            .claim_alarm(id, &idle_kind(rule), desk.updated_at, now)
            .await?
        {
            return Ok(false);
        }
        c.idle_rule(&state, rule).await?;
        c.finish().await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// The claim kind of an idle rule in `ticket_alarms`.
fn idle_kind(rule: &Rule) -> String {
    format!("idle: {}", rule.name)
}

impl Changes<'_> {
    /// Records a clock's warning or breach and tells the owner, or the
    /// team when nobody owns the ticket.
    async fn clock_alarm(
        &mut self,
        state: &TicketState,
        owner: Option<crate::domain::ids::UserId>,
        alarm: &Alarm,
    ) -> Result<(), StoreError> {
        let due = crate::store::format_ts(alarm.due);
        let event = if alarm.breach {
            Event::ClockBreached {
                clock: alarm.clock,
                due: due.clone(),
            }
        } else {
            Event::ClockWarned {
                clock: alarm.clock,
                due: due.clone(),
            }
        };
        self.record(state.id, None, event).await?;
        let what = template::ClockAlarm {
            clock: alarm.clock,
            due,
            percent: self.policy.clocks.warn_at.percent(),
        };
        let what = if alarm.breach {
            Notification::ClockBreached(what)
        } else {
            Notification::ClockWarning(what)
        };
        let owner = match owner {
            Some(id) => self.tx.user_by_id(id).await?.map(|u| Follower {
                user: u.id,
                email: u.email,
                name: u.name,
                locale: u.locale,
                role: u.role,
                source: FollowerSource::Owner,
                bouncing: u.bouncing,
                active: u.active,
            }),
            None => None,
        };
        let plan = self
            .team_plan(|team| notify::on_alarm(owner.as_ref(), team, what))
            .await?;
        self.tell_plan(state, &plan, None);
        Ok(())
    }

    /// Carries out an idle rule: its status change (announced to the
    /// followers as any other) and its answer to the requester, who gets
    /// one mail saying both.
    async fn idle_rule(&mut self, state: &TicketState, rule: &Rule) -> Result<(), StoreError> {
        let mut state = state.clone();
        let answer = rule.then.iter().find_map(|a| match a {
            Action::ReplyTemplate(t) => Some(t.clone()),
            _ => None,
        });
        for action in &rule.then {
            let (to, reason) = match action {
                Action::SetStatus(to) => (*to, None),
                Action::Close(reason) => (Status::Closed, Some(*reason)),
                _ => continue,
            };
            let cause = Cause::Rule(rule.name.clone());
            state = self.set_status(&state, None, to, cause, reason).await?;
        }
        if let Some(template) = answer {
            self.record(
                state.id,
                None,
                Event::ReminderSent {
                    rule: rule.name.clone(),
                    template: template.clone(),
                },
            )
            .await?;
            if let Some(requester) = self.tx.user_by_id(state.requester_id).await? {
                // Replaces what the requester would have been told of the
                // status change: one mail, the rule's own words.
                self.untell(state.id, &requester.email);
                let what = Notification::Answer(
                    template,
                    template::Answer {
                        rule: rule.name.clone(),
                        ..Default::default()
                    },
                );
                self.tell_one(&requester, Some(&state), Reason::Requester, what)
                    .await?;
            }
        }
        Ok(())
    }
}
