//! Business time: the working hours of the support desk (`[business]`),
//! in which SLA targets are counted (see domain/sla.rs). Hours are
//! wall-clock times in the desk's zone; what a day counts is the real time
//! between its opening and its closing, so a day whose hours span a
//! daylight-saving change counts an hour more or less, as the desk lived it.
//!
//! The public API speaks `time::OffsetDateTime` like the rest of the code;
//! the arithmetic is jiff's, which knows the time-zone rules.

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::civil::{Date, Time, Weekday};
use jiff::{SignedDuration, Timestamp};
use time::OffsetDateTime;

use super::dates::{self, Zone};

/// How far [`Calendar::add`] and [`Calendar::elapsed`] look: ten years of
/// days. Every working week has working time and holidays are listed one by
/// one, so only an absurd target or a holiday list closing the desk for
/// years reaches it; the bound keeps the work per call at a few thousand days.
pub const HORIZON_DAYS: i64 = 3653;

/// The desk's working time: which weekdays it works, its hours on them
/// (wall-clock in `zone`), and the dates it does not work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    zone: Zone,
    /// Monday first.
    days: [bool; 7],
    /// Opening and closing as seconds after midnight; `close` may be
    /// 86,400 (`24:00`) for a desk that works to the end of the day.
    open: u32,
    close: u32,
    holidays: BTreeSet<Date>,
}

/// A `[business]` setting that cannot be read; `key` is the setting's name
/// inside the section (`hours`, `holidays[2]`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct CalendarError {
    pub key: String,
    pub message: String,
}

/// `[business]` as written in config.
#[derive(Debug, Clone, Copy)]
pub struct CalendarText<'a> {
    /// An IANA name or an offset (see `dates::Zone`).
    pub timezone: &'a str,
    /// `mon`…`sun` or full names, any case.
    pub days: &'a [String],
    /// `09:00-17:00`.
    pub hours: &'a str,
    /// ISO dates, `2026-12-25`.
    pub holidays: &'a [String],
}

impl Default for Calendar {
    /// UTC, Monday to Friday, 09:00 to 17:00, no holidays.
    fn default() -> Self {
        Calendar {
            zone: Zone::UTC,
            days: [true, true, true, true, true, false, false],
            open: 9 * 3600,
            close: 17 * 3600,
            holidays: BTreeSet::new(),
        }
    }
}

impl Calendar {
    pub fn parse(text: &CalendarText<'_>) -> Result<Calendar, CalendarError> {
        let error = |key: &str, message: String| CalendarError {
            key: key.into(),
            message,
        };
        let zone = Zone::parse(text.timezone).map_err(|e| error("timezone", e.to_string()))?;
        let mut days = [false; 7];
        for (i, name) in text.days.iter().enumerate() {
            let day = weekday(name).ok_or_else(|| {
                error(
                    &format!("days[{i}]"),
                    format!("{name:?} is not a weekday such as \"mon\" or \"Monday\""),
                )
            })?;
            days[usize::try_from(day.to_monday_zero_offset()).unwrap_or(0)] = true;
        }
        if !days.contains(&true) {
            return Err(error(
                "days",
                "names no working day: SLA clocks would never run".into(),
            ));
        }
        let (open, close) = hours(text.hours).ok_or_else(|| {
            error(
                "hours",
                format!(
                    "{:?} is not opening and closing times such as \"09:00-17:00\" (opening first)",
                    text.hours
                ),
            )
        })?;
        let mut holidays = BTreeSet::new();
        for (i, date) in text.holidays.iter().enumerate() {
            let day = date.trim().parse::<Date>().map_err(|_| {
                error(
                    &format!("holidays[{i}]"),
                    format!("{date:?} is not a date such as \"2026-12-25\""),
                )
            })?;
            holidays.insert(day);
        }
        Ok(Calendar {
            zone,
            days,
            open,
            close,
            holidays,
        })
    }

    pub fn zone(&self) -> &Zone {
        &self.zone
    }

    /// The working time of one ordinary working day (closing less
    /// opening): what "1 business day" of a target is worth.
    pub fn day_length(&self) -> Duration {
        Duration::from_secs(u64::from(self.close - self.open))
    }

    /// Working days in a week (1 to 7): "1 week" of a target is worth that
    /// many business days, so it is a calendar week whatever the desk works.
    pub fn days_per_week(&self) -> u32 {
        self.days.iter().filter(|d| **d).count() as u32
    }

    /// The instant at which `business` working time has elapsed after
    /// `start`: the earliest `t` with `elapsed(start, t) == business`.
    /// Outside hours counting begins at the next opening, and a target
    /// used up at a closing falls due at that closing, not the next
    /// opening. Zero is `start` itself (already due), which is what a
    /// clock whose spent time exceeds its target needs. A target not met
    /// within [`HORIZON_DAYS`] is reported at `start` plus that many days:
    /// never due in practice, and still a storable time.
    pub fn add(&self, start: OffsetDateTime, business: Duration) -> OffsetDateTime {
        if business.is_zero() {
            return start;
        }
        let from = dates::timestamp(start);
        let horizon = from
            .checked_add(SignedDuration::from_hours(24 * HORIZON_DAYS))
            .unwrap_or(Timestamp::MAX);
        let Ok(mut left) = SignedDuration::try_from(business) else {
            return dates::offset_date_time(horizon);
        };
        for (open, close) in self.intervals(from, horizon) {
            let begin = open.max(from);
            let available = close.duration_since(begin);
            if left <= available {
                let due = begin.checked_add(left).unwrap_or(close);
                return dates::offset_date_time(due);
            }
            left -= available;
        }
        dates::offset_date_time(horizon)
    }

    /// The working time between two instants; zero when `to` is not after
    /// `from`. Counts at most [`HORIZON_DAYS`] days after `from`.
    pub fn elapsed(&self, from: OffsetDateTime, to: OffsetDateTime) -> Duration {
        let (from, to) = (dates::timestamp(from), dates::timestamp(to));
        if to <= from {
            return Duration::ZERO;
        }
        let to = from
            .checked_add(SignedDuration::from_hours(24 * HORIZON_DAYS))
            .map_or(to, |horizon| to.min(horizon));
        let total = self
            .intervals(from, to)
            .map(|(open, close)| close.min(to).duration_since(open.max(from)))
            .filter(|d| d.is_positive())
            .fold(SignedDuration::ZERO, |sum, d| sum.saturating_add(d));
        Duration::try_from(total).unwrap_or_default()
    }

    /// The working periods that end after `from` and begin before `until`,
    /// in order, at most one a day. Starts a day early: with hours ending
    /// at 24:00 in a zone whose change falls at midnight, yesterday's
    /// period can end after today began.
    fn intervals(
        &self,
        from: Timestamp,
        until: Timestamp,
    ) -> impl Iterator<Item = (Timestamp, Timestamp)> + '_ {
        let tz = self.zone.time_zone();
        let first = tz.to_datetime(from).date();
        let last = tz.to_datetime(until).date();
        let first = first.yesterday().unwrap_or(first);
        std::iter::successors(Some(first), move |d| {
            d.tomorrow().ok().filter(|d| *d <= last)
        })
        .filter_map(|day| self.period(day))
        .filter(move |&(open, close)| close > from && open < until)
    }

    /// The working period of `day` as two instants, or `None` on a day off.
    /// Each end is the wall-clock time resolved by jiff: a time skipped by
    /// a change to summer time moves later by the gap, a time that occurs
    /// twice is taken the first time.
    fn period(&self, day: Date) -> Option<(Timestamp, Timestamp)> {
        let working = self.days[usize::try_from(day.weekday().to_monday_zero_offset()).ok()?];
        if !working || self.holidays.contains(&day) {
            return None;
        }
        let at = |seconds: u32| {
            let civil = day
                .to_datetime(Time::midnight())
                .checked_add(SignedDuration::from_secs(i64::from(seconds)))
                .ok()?;
            let zoned = civil
                .to_zoned_datetime(self.zone.time_zone().clone())
                .ok()?;
            Some(zoned.timestamp())
        };
        let (open, close) = (at(self.open)?, at(self.close)?);
        (open < close).then_some((open, close))
    }
}

fn weekday(name: &str) -> Option<Weekday> {
    let name = name.trim().to_ascii_lowercase();
    let days = [
        ("mon", "monday", Weekday::Monday),
        ("tue", "tuesday", Weekday::Tuesday),
        ("wed", "wednesday", Weekday::Wednesday),
        ("thu", "thursday", Weekday::Thursday),
        ("fri", "friday", Weekday::Friday),
        ("sat", "saturday", Weekday::Saturday),
        ("sun", "sunday", Weekday::Sunday),
    ];
    days.iter()
        .find(|(short, long, _)| name == *short || name == *long)
        .map(|(_, _, day)| *day)
}

/// `09:00-17:00` (also `9:00 - 17:30`, an en dash, seconds) as seconds
/// after midnight; closing may be `24:00` and must follow opening.
fn hours(text: &str) -> Option<(u32, u32)> {
    let (open, close) = text.split_once(['-', '–'])?;
    let (open, close) = (clock_time(open)?, clock_time(close)?);
    (open < close && open < 86_400).then_some((open, close))
}

fn clock_time(text: &str) -> Option<u32> {
    let mut parts = text.trim().split(':');
    let mut field = |max: u32| -> Option<u32> {
        let digits = parts.next()?;
        if digits.is_empty() || digits.len() > 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok().filter(|n| *n <= max)
    };
    let (h, m) = (field(24)?, field(59)?);
    let s = match parts.next() {
        None => 0,
        Some(s) if s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok().filter(|n| *n <= 59)?
        }
        Some(_) => return None,
    };
    let seconds = h * 3600 + m * 60 + s;
    (seconds <= 86_400).then_some(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn calendar(zone: &str, days: &[&str], hours: &str, holidays: &[&str]) -> Calendar {
        Calendar::parse(&CalendarText {
            timezone: zone,
            days: &strings(days),
            hours,
            holidays: &strings(holidays),
        })
        .unwrap()
    }

    const WEEK: &[&str] = &["mon", "tue", "wed", "thu", "fri"];
    const EVERY_DAY: &[&str] = &["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

    #[test]
    fn config_is_read_or_refused_naming_the_key() {
        /// Zone, days, hours, holidays; `Err`: the key named.
        type Case = (
            &'static str,
            &'static [&'static str],
            &'static str,
            &'static [&'static str],
            Result<(), &'static str>,
        );
        let cases: &[Case] = &[
            ("UTC", WEEK, "09:00-17:00", &[], Ok(())),
            (
                "Europe/Berlin",
                &["Monday", "TUE", " wed "],
                "8:30 - 16:45",
                &[],
                Ok(()),
            ),
            ("+09:00", EVERY_DAY, "00:00-24:00", &["2026-12-25"], Ok(())),
            ("UTC", WEEK, "09:00:00–17:00:30", &[], Ok(())),
            ("Mars/Olympus", WEEK, "09:00-17:00", &[], Err("timezone")),
            ("UTC", &[], "09:00-17:00", &[], Err("days")),
            (
                "UTC",
                &["mon", "funday"],
                "09:00-17:00",
                &[],
                Err("days[1]"),
            ),
            ("UTC", WEEK, "17:00-09:00", &[], Err("hours")),
            ("UTC", WEEK, "09:00-09:00", &[], Err("hours")),
            ("UTC", WEEK, "9-17", &[], Err("hours")),
            ("UTC", WEEK, "09:00-25:00", &[], Err("hours")),
            ("UTC", WEEK, "24:00-24:00", &[], Err("hours")),
            ("UTC", WEEK, "09:60-17:00", &[], Err("hours")),
            ("UTC", WEEK, "", &[], Err("hours")),
            (
                "UTC",
                WEEK,
                "09:00-17:00",
                &["2026-12-25", "2026-12-26", "Christmas"],
                Err("holidays[2]"),
            ),
            (
                "UTC",
                WEEK,
                "09:00-17:00",
                &["2026-02-30"],
                Err("holidays[0]"),
            ),
        ];
        for (zone, days, hours, holidays, want) in cases {
            let got = Calendar::parse(&CalendarText {
                timezone: zone,
                days: &strings(days),
                hours,
                holidays: &strings(holidays),
            });
            match (got, want) {
                (Ok(_), Ok(())) => {}
                (Err(e), Err(key)) => {
                    assert_eq!(&e.key, key, "{hours} {days:?} {holidays:?}: {e}");
                    assert!(e.to_string().starts_with(key), "{e}");
                }
                (got, want) => panic!("{zone} {days:?} {hours}: {got:?}, wanted {want:?}"),
            }
        }
    }

    #[test]
    fn the_default_is_utc_weekdays_nine_to_five() {
        let default = Calendar::default();
        assert_eq!(default, calendar("UTC", WEEK, "09:00-17:00", &[]));
        assert_eq!(default.day_length(), Duration::from_secs(8 * 3600));
        assert_eq!(default.days_per_week(), 5);
    }

    const H: u64 = 3600;

    /// `(calendar, start, business hours, due)`; every case is also read
    /// back: the working time from start to due is the target.
    #[test]
    fn working_time_is_added_over_nights_weekends_holidays_and_clock_changes() {
        let plain = Calendar::default();
        let christmas = calendar("UTC", WEEK, "09:00-17:00", &["2026-12-25"]);
        let berlin = calendar("Europe/Berlin", WEEK, "09:00-17:00", &[]);
        let berlin_night = calendar("Europe/Berlin", EVERY_DAY, "00:00-06:00", &[]);
        let new_york_night = calendar("America/New_York", EVERY_DAY, "00:00-06:00", &[]);
        let round_the_clock = calendar("UTC", EVERY_DAY, "00:00-24:00", &[]);
        let cases = [
            // Friday 2026-01-09 16:00 + 2h: one hour on Friday, one on Monday.
            (
                &plain,
                datetime!(2026-01-09 16:00 UTC),
                2 * H,
                datetime!(2026-01-12 10:00 UTC),
            ),
            // Within a day, and ending exactly at closing.
            (
                &plain,
                datetime!(2026-01-12 10:00 UTC),
                3 * H,
                datetime!(2026-01-12 13:00 UTC),
            ),
            (
                &plain,
                datetime!(2026-01-12 09:00 UTC),
                8 * H,
                datetime!(2026-01-12 17:00 UTC),
            ),
            // Starting outside hours: Saturday night, Monday early, Monday late.
            (
                &plain,
                datetime!(2026-01-10 03:00 UTC),
                H,
                datetime!(2026-01-12 10:00 UTC),
            ),
            (
                &plain,
                datetime!(2026-01-12 07:00 UTC),
                H,
                datetime!(2026-01-12 10:00 UTC),
            ),
            (
                &plain,
                datetime!(2026-01-12 18:00 UTC),
                H,
                datetime!(2026-01-13 10:00 UTC),
            ),
            // Christmas 2026 is a Friday: Thursday 16:00 + 2h is Monday 10:00.
            (
                &christmas,
                datetime!(2026-12-24 16:00 UTC),
                2 * H,
                datetime!(2026-12-28 10:00 UTC),
            ),
            // Berlin: Friday 2026-03-27 16:00 CET + 4h; the clocks go forward
            // on Sunday, so Monday's three hours end at 12:00 CEST (10:00 UTC).
            (
                &berlin,
                datetime!(2026-03-27 15:00 UTC),
                4 * H,
                datetime!(2026-03-30 10:00 UTC),
            ),
            // And back on 2026-10-25: Friday 16:00 CEST, Monday 12:00 CET.
            (
                &berlin,
                datetime!(2026-10-23 14:00 UTC),
                4 * H,
                datetime!(2026-10-26 11:00 UTC),
            ),
            // Hours spanning the change: Sunday 2026-03-29 00:00-06:00 in Berlin
            // lasts five hours (02:00 becomes 03:00), so 5h end at 06:00 CEST.
            (
                &berlin_night,
                datetime!(2026-03-28 23:00 UTC),
                5 * H,
                datetime!(2026-03-29 04:00 UTC),
            ),
            // Six hours run into Monday's first hour.
            (
                &berlin_night,
                datetime!(2026-03-28 23:00 UTC),
                6 * H,
                datetime!(2026-03-29 23:00 UTC),
            ),
            // 2026-10-25 00:00-06:00 lasts seven (03:00 becomes 02:00).
            (
                &berlin_night,
                datetime!(2026-10-24 22:00 UTC),
                7 * H,
                datetime!(2026-10-25 05:00 UTC),
            ),
            // New York, 2026-03-08: 00:00 EST to 06:00 EDT is five hours.
            (
                &new_york_night,
                datetime!(2026-03-08 05:00 UTC),
                5 * H,
                datetime!(2026-03-08 10:00 UTC),
            ),
            (
                &round_the_clock,
                datetime!(2026-01-09 23:30 UTC),
                H,
                datetime!(2026-01-10 00:30 UTC),
            ),
        ];
        for (cal, start, hours, due) in cases {
            let target = Duration::from_secs(hours);
            assert_eq!(cal.add(start, target), due, "{start} + {hours}s");
            assert_eq!(cal.elapsed(start, due), target, "{start}..{due}");
        }
    }

    #[test]
    fn working_time_between_two_instants() {
        let plain = Calendar::default();
        let holiday_week = calendar(
            "UTC",
            WEEK,
            "09:00-17:00",
            &[
                "2026-12-21",
                "2026-12-22",
                "2026-12-23",
                "2026-12-24",
                "2026-12-25",
            ],
        );
        let berlin_night = calendar("Europe/Berlin", EVERY_DAY, "00:00-06:00", &[]);
        let cases = [
            // A whole week, and the same week closed for the holidays.
            (
                &plain,
                datetime!(2026-12-19 00:00 UTC),
                datetime!(2026-12-27 00:00 UTC),
                40 * H,
            ),
            (
                &holiday_week,
                datetime!(2026-12-19 00:00 UTC),
                datetime!(2026-12-27 00:00 UTC),
                0,
            ),
            // Friday before to the Tuesday after: 1h + (holidays) + 8h + 1h.
            (
                &holiday_week,
                datetime!(2026-12-18 16:00 UTC),
                datetime!(2026-12-29 10:00 UTC),
                10 * H,
            ),
            // Inside one period, across a night, backwards, empty.
            (
                &plain,
                datetime!(2026-01-12 10:00 UTC),
                datetime!(2026-01-12 10:30 UTC),
                H / 2,
            ),
            (
                &plain,
                datetime!(2026-01-12 16:00 UTC),
                datetime!(2026-01-13 10:00 UTC),
                2 * H,
            ),
            (
                &plain,
                datetime!(2026-01-13 10:00 UTC),
                datetime!(2026-01-12 10:00 UTC),
                0,
            ),
            (
                &plain,
                datetime!(2026-01-10 10:00 UTC),
                datetime!(2026-01-11 10:00 UTC),
                0,
            ),
            // Berlin's short and long night, whole.
            (
                &berlin_night,
                datetime!(2026-03-28 12:00 UTC),
                datetime!(2026-03-29 12:00 UTC),
                5 * H,
            ),
            (
                &berlin_night,
                datetime!(2026-10-24 12:00 UTC),
                datetime!(2026-10-25 12:00 UTC),
                7 * H,
            ),
        ];
        for (cal, from, to, seconds) in cases {
            assert_eq!(
                cal.elapsed(from, to),
                Duration::from_secs(seconds),
                "{from}..{to}"
            );
        }
    }

    #[test]
    fn zero_and_absurd_inputs_end() {
        let plain = Calendar::default();
        let saturday = datetime!(2026-01-10 03:00 UTC);
        // Zero: due at once, even outside hours.
        assert_eq!(plain.add(saturday, Duration::ZERO), saturday);
        // A desk closed by holidays for years, and a target of centuries:
        // both stop at the horizon.
        let closed: Vec<String> = (0..3 * 366)
            .filter_map(|i| {
                let day = jiff::civil::date(2026, 1, 1).checked_add(jiff::Span::new().days(i));
                day.ok().map(|d| d.to_string())
            })
            .collect();
        let shut = Calendar::parse(&CalendarText {
            timezone: "UTC",
            days: &strings(WEEK),
            hours: "09:00-17:00",
            holidays: &closed,
        })
        .unwrap();
        let start = datetime!(2026-01-01 00:00 UTC);
        // Closed until 2029-01-02: Wednesday 2029-01-03 is the first working day.
        assert_eq!(
            shut.add(start, Duration::from_secs(H)),
            datetime!(2029-01-03 10:00 UTC)
        );
        let horizon = start + time::Duration::days(HORIZON_DAYS);
        assert_eq!(
            plain.add(start, Duration::from_secs(H * 24 * 365 * 100)),
            horizon
        );
        assert_eq!(plain.add(start, Duration::MAX), horizon);
        let end = time::Date::MAX.midnight().assume_utc();
        let beginning = time::Date::MIN.midnight().assume_utc();
        assert!(plain.add(end, Duration::from_secs(H)) <= end);
        assert!(plain.elapsed(beginning, end) <= Duration::from_secs(H * 24 * 3653));
        assert_eq!(plain.elapsed(end, beginning), Duration::ZERO);
    }
}
