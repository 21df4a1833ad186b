//! A ticket's SLA clocks as the desk stores them (`store::Desk`, see
//! migrations/sqlite/0011_desk.sql), kept in step with its status, priority
//! and first staff answer, and the alarms they ring (docs/contract.md,
//! "Desk"). The arithmetic is `domain::sla` and `domain::business`; this
//! file maps it onto the stored columns.

use std::time::Duration;

use time::OffsetDateTime;

use crate::domain::sla::{Clock as ResolveClock, Clocks, ResponseClock};
use crate::domain::ticket::{Clock, Priority, Status};
use crate::store::Desk;

impl Desk {
    /// The resolution clock as stored. Never touched (both columns empty):
    /// running since the ticket was opened while it is open and not
    /// Blocked, otherwise paused with nothing spent.
    pub fn resolve_clock(&self, status: Status) -> ResolveClock {
        match (self.resolve_spent, self.resolve_since) {
            (None, None) if status.is_open() && status != Status::Blocked => {
                ResolveClock::start(self.created_at)
            }
            (spent, since) => ResolveClock {
                spent: Duration::from_secs(u64::try_from(spent.unwrap_or(0)).unwrap_or(0)),
                since,
            },
        }
    }

    fn keep_resolve_clock(&mut self, clock: ResolveClock) {
        self.resolve_spent = Some(i64::try_from(clock.spent.as_secs()).unwrap_or(i64::MAX));
        self.resolve_since = clock.since;
    }

    /// The response clock: from the opening to the first public staff comment.
    pub fn response_clock(&self) -> ResponseClock {
        ResponseClock {
            created_at: self.created_at,
            responded_at: self.responded_at,
        }
    }
}

/// One thing a clock will ask of the scheduler: a warning at `warn_at` of
/// the target, or the breach at the due time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alarm {
    pub clock: Clock,
    pub breach: bool,
    /// When it rings.
    pub at: OffsetDateTime,
    /// When the clock is due (the same for a clock's warning and breach).
    pub due: OffsetDateTime,
}

impl Alarm {
    /// The key that makes it ring once across instances (`ticket_alarms.kind`).
    pub fn kind(&self) -> String {
        format!(
            "{}_{}",
            self.clock.as_str(),
            if self.breach { "breach" } else { "warn" }
        )
    }
}

/// The alarms of a ticket in `status` at `priority`, earliest first: none
/// once closed, none for a clock without a target, none for a response
/// already given or a resolution clock that is paused.
pub fn alarms(desk: &Desk, status: Status, priority: Option<Priority>, c: &Clocks) -> Vec<Alarm> {
    let Some(priority) = priority.filter(|_| status.is_open()) else {
        return Vec::new();
    };
    let targets = c.targets(priority);
    let cal = &c.calendar;
    let mut out = Vec::new();
    let response = desk.response_clock();
    if let (Some(warn), Some(due)) = (
        response.warn_time(cal, targets.response, c.warn_at),
        response.due(cal, targets.response),
    ) {
        out.push(Alarm {
            clock: Clock::Response,
            breach: false,
            at: warn,
            due,
        });
        out.push(Alarm {
            clock: Clock::Response,
            breach: true,
            at: due,
            due,
        });
    }
    let resolve = desk.resolve_clock(status);
    if let (Some(warn), Some(due)) = (
        resolve.warn_time(cal, targets.resolve, c.warn_at),
        resolve.due(cal, targets.resolve),
    ) {
        out.push(Alarm {
            clock: Clock::Resolve,
            breach: false,
            at: warn,
            due,
        });
        out.push(Alarm {
            clock: Clock::Resolve,
            breach: true,
            at: due,
            due,
        });
    }
    out.sort_by_key(|a| a.at);
    out
}

/// Sets the due times and the next alarm from the clocks' state. The
/// response due time is kept after the answer (reports compare it with
/// `responded_at`); the resolution's is empty while paused or closed.
pub fn refresh(desk: &mut Desk, status: Status, priority: Option<Priority>, c: &Clocks) {
    let targets = priority.map(|p| c.targets(p)).unwrap_or_default();
    let cal = &c.calendar;
    desk.response_due = ResponseClock::new(desk.created_at).due(cal, targets.response);
    desk.resolve_due = if status.is_open() {
        desk.resolve_clock(status).due(cal, targets.resolve)
    } else {
        None
    };
    desk.next_alarm_at = alarms(desk, status, priority, c).first().map(|a| a.at);
}

/// A status change at `at`: Blocked pauses the resolution clock, closing
/// stops it, anything open again runs it.
pub fn on_status(desk: &mut Desk, from: Status, to: Status, at: OffsetDateTime, c: &Clocks) {
    let clock = desk.resolve_clock(from);
    let clock = if !to.is_open() {
        clock.stop(at, &c.calendar)
    } else if to == Status::Blocked {
        clock.pause(at, &c.calendar)
    } else {
        clock.resume(at)
    };
    desk.keep_resolve_clock(clock);
}

/// A public staff comment at `at`: the first stops the response clock.
/// `false` when it had already stopped.
pub fn on_staff_answer(desk: &mut Desk, at: OffsetDateTime) -> bool {
    if desk.responded_at.is_some() {
        return false;
    }
    desk.responded_at = Some(at);
    true
}
