//! SLA clocks, as pure values: when a ticket's first answer and its
//! resolution fall due, counted in business time (domain/business.rs)
//! against the targets of its priority (`[sla.Pn] response`, `resolve`).
//! Nothing here reads the clock or the store: every operation takes the
//! instant it happens at and returns the new state.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use time::OffsetDateTime;

use super::business::Calendar;
use super::terms::ResponseTime;
use super::ticket::Priority;

/// A priority's targets; `None`: that clock does not run at this level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Targets {
    pub response: Option<ResponseTime>,
    pub resolve: Option<ResponseTime>,
}

/// `[sla] warn_at`: the share of a target used when a warning is due, in
/// whole percent from 1 to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WarnAt(u8);

impl Default for WarnAt {
    /// 80%: a fifth of the time is left to act on the warning.
    fn default() -> Self {
        WarnAt(80)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a percentage from 1% to 100% such as \"80%\"")]
pub struct NotAPercentage(String);

impl FromStr for WarnAt {
    type Err = NotAPercentage;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim()
            .strip_suffix('%')
            .and_then(|n| n.trim().parse::<u8>().ok())
            .filter(|n| (1..=100).contains(n))
            .map(WarnAt)
            .ok_or_else(|| NotAPercentage(s.to_string()))
    }
}

impl WarnAt {
    pub fn percent(self) -> u8 {
        self.0
    }

    /// `warn_at` of `target`, to the nanosecond.
    pub fn of(self, target: Duration) -> Duration {
        let nanos = target.as_nanos() * u128::from(self.0) / 100;
        let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
        Duration::new(secs, (nanos % 1_000_000_000) as u32)
    }
}

/// Everything the clocks need from config, validated at load
/// (`Settings::clocks` in src/config.rs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Clocks {
    pub calendar: Calendar,
    /// Levels config does not name have no targets.
    pub targets: BTreeMap<Priority, Targets>,
    pub warn_at: WarnAt,
}

impl Clocks {
    pub fn targets(&self, priority: Priority) -> Targets {
        self.targets.get(&priority).copied().unwrap_or_default()
    }
}

/// The response clock: it runs from the ticket's creation to the first
/// public staff comment, and is never paused. A priority changed before
/// that answer counts the new target from the creation (call `due` with
/// it); once answered, the clock is done whatever happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseClock {
    pub created_at: OffsetDateTime,
    pub responded_at: Option<OffsetDateTime>,
}

impl ResponseClock {
    pub fn new(created_at: OffsetDateTime) -> Self {
        ResponseClock {
            created_at,
            responded_at: None,
        }
    }

    /// A public staff comment at `at`; only the first one counts.
    #[must_use]
    pub fn respond(self, at: OffsetDateTime) -> Self {
        ResponseClock {
            responded_at: self.responded_at.or(Some(at)),
            ..self
        }
    }

    /// When the answer falls due; `None` once answered or without a target.
    pub fn due(&self, cal: &Calendar, target: Option<ResponseTime>) -> Option<OffsetDateTime> {
        self.at_share(cal, target, |t| t)
    }

    /// When `warn_at` of the target has passed unanswered.
    pub fn warn_time(
        &self,
        cal: &Calendar,
        target: Option<ResponseTime>,
        warn_at: WarnAt,
    ) -> Option<OffsetDateTime> {
        self.at_share(cal, target, |t| warn_at.of(t))
    }

    fn at_share(
        &self,
        cal: &Calendar,
        target: Option<ResponseTime>,
        share: impl Fn(Duration) -> Duration,
    ) -> Option<OffsetDateTime> {
        if self.responded_at.is_some() {
            return None;
        }
        Some(cal.add(self.created_at, share(target?.business(cal))))
    }
}

/// The resolution clock, as stored: the business time used in earlier
/// running segments, and when the current segment began (`None`: paused,
/// as while Blocked, or stopped, as when closed). A priority change needs
/// no operation: the new target applies to the time already spent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clock {
    pub spent: Duration,
    pub since: Option<OffsetDateTime>,
}

impl Clock {
    /// A clock running from `at`, nothing spent.
    pub fn start(at: OffsetDateTime) -> Clock {
        Clock {
            spent: Duration::ZERO,
            since: Some(at),
        }
    }

    pub fn is_running(&self) -> bool {
        self.since.is_some()
    }

    /// Blocked at `at`: the segment's business time is kept. A paused
    /// clock stays as it is.
    #[must_use]
    pub fn pause(self, at: OffsetDateTime, cal: &Calendar) -> Clock {
        match self.since {
            Some(since) => Clock {
                spent: self.spent.saturating_add(cal.elapsed(since, at)),
                since: None,
            },
            None => self,
        }
    }

    /// Running again from `at` (unblocked, or a closed ticket reopened),
    /// with the time spent before. A running clock stays as it is.
    #[must_use]
    pub fn resume(self, at: OffsetDateTime) -> Clock {
        Clock {
            since: self.since.or(Some(at)),
            ..self
        }
    }

    /// Closed at `at`: as a pause, so a reopened ticket resumes with what
    /// it had used; `spent` is then the business time the resolution took.
    #[must_use]
    pub fn stop(self, at: OffsetDateTime, cal: &Calendar) -> Clock {
        self.pause(at, cal)
    }

    /// The business time used by `now`.
    pub fn used(&self, cal: &Calendar, now: OffsetDateTime) -> Duration {
        let running = self.since.map_or(Duration::ZERO, |s| cal.elapsed(s, now));
        self.spent.saturating_add(running)
    }

    /// When the target is used up: the rest of it after the current
    /// segment began, or that start when nothing is left (already due).
    /// `None` while paused or stopped, or without a target.
    pub fn due(&self, cal: &Calendar, target: Option<ResponseTime>) -> Option<OffsetDateTime> {
        self.at_share(cal, target, |t| t)
    }

    /// When `warn_at` of the target is used up; as [`Clock::due`].
    pub fn warn_time(
        &self,
        cal: &Calendar,
        target: Option<ResponseTime>,
        warn_at: WarnAt,
    ) -> Option<OffsetDateTime> {
        self.at_share(cal, target, |t| warn_at.of(t))
    }

    fn at_share(
        &self,
        cal: &Calendar,
        target: Option<ResponseTime>,
        share: impl Fn(Duration) -> Duration,
    ) -> Option<OffsetDateTime> {
        let since = self.since?;
        let left = share(target?.business(cal)).saturating_sub(self.spent);
        Some(cal.add(since, left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::business::CalendarText;
    use time::macros::datetime;

    fn target(text: &str) -> Option<ResponseTime> {
        Some(text.parse().unwrap())
    }

    fn calendar(zone: &str, hours: &str, holidays: &[&str]) -> Calendar {
        let days: Vec<String> = ["mon", "tue", "wed", "thu", "fri"]
            .iter()
            .map(|d| d.to_string())
            .collect();
        let holidays: Vec<String> = holidays.iter().map(|d| d.to_string()).collect();
        Calendar::parse(&CalendarText {
            timezone: zone,
            days: &days,
            hours,
            holidays: &holidays,
        })
        .unwrap()
    }

    #[test]
    fn percentages_read_from_config() {
        let cases = [
            ("80%", Some(80)),
            (" 50 % ", Some(50)),
            ("100%", Some(100)),
            ("1%", Some(1)),
            ("0%", None),
            ("101%", None),
            ("80", None),
            ("0.8", None),
            ("-5%", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(
                text.parse::<WarnAt>().ok().map(WarnAt::percent),
                want,
                "{text:?}"
            );
        }
        assert_eq!(WarnAt::default().percent(), 80);
        let of = WarnAt(80).of(Duration::from_secs(3600));
        assert_eq!(of, Duration::from_secs(48 * 60));
        assert_eq!(WarnAt(100).of(Duration::MAX), Duration::MAX);
    }

    /// `(created, target, responded, due)` for the first answer, Mon-Fri
    /// 09:00-17:00 UTC.
    #[test]
    fn the_response_clock_counts_from_creation_until_answered() {
        let cal = Calendar::default();
        let friday = datetime!(2026-01-09 16:00 UTC);
        let cases = [
            // Over a weekend.
            (
                friday,
                target("2h"),
                None,
                Some(datetime!(2026-01-12 10:00 UTC)),
            ),
            (
                friday,
                target("1 business day"),
                None,
                Some(datetime!(2026-01-12 16:00 UTC)),
            ),
            // Created outside hours: Saturday 03:00, Monday 07:00, Monday 18:00.
            (
                datetime!(2026-01-10 03:00 UTC),
                target("1h"),
                None,
                Some(datetime!(2026-01-12 10:00 UTC)),
            ),
            (
                datetime!(2026-01-12 07:00 UTC),
                target("1h"),
                None,
                Some(datetime!(2026-01-12 10:00 UTC)),
            ),
            (
                datetime!(2026-01-12 18:00 UTC),
                target("1h"),
                None,
                Some(datetime!(2026-01-13 10:00 UTC)),
            ),
            // "3d" is three working days of eight hours: Friday 16:00 to
            // Wednesday 16:00.
            (
                friday,
                target("3d"),
                None,
                Some(datetime!(2026-01-14 16:00 UTC)),
            ),
            // Answered: nothing is due, even late.
            (
                friday,
                target("2h"),
                Some(datetime!(2026-01-13 09:00 UTC)),
                None,
            ),
            // No target at this level.
            (friday, None, None, None),
        ];
        for (created, target, responded, due) in cases {
            let mut clock = ResponseClock::new(created);
            if let Some(at) = responded {
                clock = clock.respond(at);
            }
            assert_eq!(clock.due(&cal, target), due, "{created} {target:?}");
        }
        // The first answer is the one that counts.
        let first = datetime!(2026-01-12 09:30 UTC);
        let answered = ResponseClock::new(friday)
            .respond(first)
            .respond(datetime!(2026-01-12 11:00 UTC));
        assert_eq!(answered.responded_at, Some(first));
    }

    #[test]
    fn a_priority_change_before_the_answer_counts_the_new_target_from_creation() {
        let cal = Calendar::default();
        let clock = ResponseClock::new(datetime!(2026-01-12 10:00 UTC));
        // P3 "1 business day", raised to P1 "1 hour" at 10:30: due 11:00,
        // from the creation, not from the change.
        assert_eq!(
            clock.due(&cal, target("1 business day")),
            Some(datetime!(2026-01-13 10:00 UTC))
        );
        assert_eq!(
            clock.due(&cal, target("1 hour")),
            Some(datetime!(2026-01-12 11:00 UTC))
        );
        // After the answer a change of priority changes nothing.
        let answered = clock.respond(datetime!(2026-01-12 10:20 UTC));
        assert_eq!(answered.due(&cal, target("1 hour")), None);
    }

    /// The resolution clock through a ticket's life: each step is an
    /// operation at an instant and the due time it leaves.
    #[test]
    fn the_resolution_clock_pauses_resumes_and_stops() {
        enum Step {
            Pause,
            Resume,
            Stop,
        }
        let cal = calendar("UTC", "09:00-17:00", &["2026-12-25"]);
        let two_days = target("2 business days");
        let start = datetime!(2026-01-08 10:00 UTC); // Thursday
        let cases = [
            // Running: Thursday 10:00 + 16h is Monday 10:00.
            (vec![], Some(datetime!(2026-01-12 10:00 UTC)), 0),
            // Blocked Friday 10:00 (8h spent) until Tuesday 10:00: over a
            // weekend and a working day, so due moves by exactly the
            // 8 working hours of Monday: Wednesday 10:00.
            (
                vec![
                    (Step::Pause, datetime!(2026-01-09 10:00 UTC)),
                    (Step::Resume, datetime!(2026-01-13 10:00 UTC)),
                ],
                Some(datetime!(2026-01-14 10:00 UTC)),
                8,
            ),
            // Blocked in the evening and unblocked the next morning: no
            // working time passed, due does not move.
            (
                vec![
                    (Step::Pause, datetime!(2026-01-08 18:00 UTC)),
                    (Step::Resume, datetime!(2026-01-09 08:00 UTC)),
                ],
                Some(datetime!(2026-01-12 10:00 UTC)),
                7,
            ),
            // A second pause while paused changes nothing; resuming twice
            // keeps the first resumption.
            (
                vec![
                    (Step::Pause, datetime!(2026-01-08 12:00 UTC)),
                    (Step::Pause, datetime!(2026-01-08 16:00 UTC)),
                    (Step::Resume, datetime!(2026-01-09 09:00 UTC)),
                    (Step::Resume, datetime!(2026-01-09 12:00 UTC)),
                ],
                Some(datetime!(2026-01-12 15:00 UTC)),
                2,
            ),
            // Closed: nothing due, and the time it took is kept; reopened,
            // it goes on from there.
            (
                vec![(Step::Stop, datetime!(2026-01-09 12:00 UTC))],
                None,
                10,
            ),
            (
                vec![
                    (Step::Stop, datetime!(2026-01-09 12:00 UTC)),
                    (Step::Resume, datetime!(2026-01-12 09:00 UTC)),
                ],
                Some(datetime!(2026-01-12 15:00 UTC)),
                10,
            ),
        ];
        for (i, (steps, due, spent_hours)) in cases.into_iter().enumerate() {
            let mut clock = Clock::start(start);
            for (step, at) in steps {
                clock = match step {
                    Step::Pause => clock.pause(at, &cal),
                    Step::Resume => clock.resume(at),
                    Step::Stop => clock.stop(at, &cal),
                };
            }
            assert_eq!(clock.due(&cal, two_days), due, "case {i}");
            assert_eq!(
                clock.spent,
                Duration::from_secs(spent_hours * 3600),
                "case {i}"
            );
        }
    }

    #[test]
    fn a_priority_change_applies_the_new_target_to_the_time_spent() {
        let cal = Calendar::default();
        let start = datetime!(2026-01-12 09:00 UTC); // Monday
        let clock = Clock::start(start);
        let at = datetime!(2026-01-12 11:00 UTC);
        assert_eq!(clock.used(&cal, at), Duration::from_secs(2 * 3600));
        let cases = [
            // P3 "1 business day": 8h from Monday 09:00.
            ("1 business day", datetime!(2026-01-12 17:00 UTC)),
            // Raised to P1 "4 hours" after 2 hours: 2 hours are left.
            ("4 hours", datetime!(2026-01-12 13:00 UTC)),
            // Raised to P1 "1 hour": already over, due in the past.
            ("1 hour", datetime!(2026-01-12 10:00 UTC)),
        ];
        for (text, due) in cases {
            assert_eq!(clock.due(&cal, target(text)), Some(due), "{text}");
        }
        // After a pause the 2 hours are spent: the rest counts from the
        // resumption, and a target already used up is due at it.
        let resumed = clock
            .pause(at, &cal)
            .resume(datetime!(2026-01-13 09:00 UTC));
        assert_eq!(
            resumed.due(&cal, target("4 hours")),
            Some(datetime!(2026-01-13 11:00 UTC))
        );
        assert_eq!(
            resumed.due(&cal, target("1 hour")),
            Some(datetime!(2026-01-13 09:00 UTC))
        );
        assert_eq!(resumed.due(&cal, None), None);
    }

    #[test]
    fn warnings_fall_at_warn_at_of_the_target() {
        let cal = Calendar::default();
        let start = datetime!(2026-01-12 09:00 UTC);
        let cases = [
            // 80% of 10 hours is 8: Monday 17:00.
            ("10 hours", "80%", Some(datetime!(2026-01-12 17:00 UTC))),
            // 80% of 1 business day is 6h24m.
            (
                "1 business day",
                "80%",
                Some(datetime!(2026-01-12 15:24 UTC)),
            ),
            (
                "1 business day",
                "50%",
                Some(datetime!(2026-01-12 13:00 UTC)),
            ),
            (
                "1 business day",
                "100%",
                Some(datetime!(2026-01-12 17:00 UTC)),
            ),
        ];
        for (text, share, want) in cases {
            let warn_at: WarnAt = share.parse().unwrap();
            assert_eq!(
                Clock::start(start).warn_time(&cal, target(text), warn_at),
                want,
                "{text}"
            );
            assert_eq!(
                ResponseClock::new(start).warn_time(&cal, target(text), warn_at),
                want,
                "{text}"
            );
        }
        // With 7 of 8 hours spent, the 80% warning is already due.
        let late = Clock {
            spent: Duration::from_secs(7 * 3600),
            since: Some(start),
        };
        assert_eq!(
            late.warn_time(&cal, target("1 business day"), WarnAt::default()),
            Some(start)
        );
    }

    /// Clocks in a zone with daylight saving time: Friday 16:00 + 4h
    /// across the night the clocks change lands on Monday 12:00 local.
    #[test]
    fn clocks_follow_the_desk_s_wall_clock_across_time_changes() {
        let cases = [
            // Berlin, 2026-03-29: Friday 16:00 CET, Monday 12:00 CEST.
            (
                "Europe/Berlin",
                datetime!(2026-03-27 15:00 UTC),
                datetime!(2026-03-30 10:00 UTC),
            ),
            // New York, 2026-03-08: Friday 16:00 EST, Monday 12:00 EDT.
            (
                "America/New_York",
                datetime!(2026-03-06 21:00 UTC),
                datetime!(2026-03-09 16:00 UTC),
            ),
            // Tokyo has no change: 16:00 JST Friday, 12:00 JST Monday.
            (
                "Asia/Tokyo",
                datetime!(2026-03-27 07:00 UTC),
                datetime!(2026-03-30 03:00 UTC),
            ),
        ];
        for (zone, created, due) in cases {
            let cal = calendar(zone, "09:00-17:00", &[]);
            assert_eq!(
                ResponseClock::new(created).due(&cal, target("4h")),
                Some(due),
                "{zone}"
            );
            assert_eq!(
                Clock::start(created).due(&cal, target("4h")),
                Some(due),
                "{zone}"
            );
        }
    }

    #[test]
    fn levels_without_targets_run_no_clock() {
        let mut clocks = Clocks::default();
        clocks.targets.insert(
            Priority::P1,
            Targets {
                response: target("1h"),
                resolve: target("1d"),
            },
        );
        assert_eq!(
            clocks.targets(Priority::P1).resolve,
            target("1 business day")
        );
        assert_eq!(clocks.targets(Priority::P4), Targets::default());
    }
}
