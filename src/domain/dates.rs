//! Dates as a person reads them in mail: in their language and in the
//! support desk's time zone (`[support] timezone`), never as a stored
//! timestamp like `2026-12-02T08:37:17.841913Z`.

use jiff::Timestamp;
use jiff::tz::{Offset, TimeZone};
use time::OffsetDateTime;

/// A time zone as configured: `UTC` (the default), a fixed offset such as
/// `+09:00`, `-05:30`, `UTC+9`, or an IANA name such as `Europe/Berlin`,
/// whose daylight saving time is followed. Names are looked up in the
/// system's time-zone database, else in the copy built into the binary
/// (see Cargo.toml), so they work where `/usr/share/zoneinfo` is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone(TimeZone);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not UTC, an offset such as +09:00 or UTC-5, or a time zone such as Europe/Berlin"
)]
pub struct ZoneError(String);

impl Default for Zone {
    fn default() -> Self {
        Zone::UTC
    }
}

impl Zone {
    pub const UTC: Zone = Zone(TimeZone::UTC);

    pub fn parse(text: &str) -> Result<Self, ZoneError> {
        let t = text.trim();
        match parse_offset(t) {
            Some(zone) => Ok(zone),
            // Offsets first: `UTC` and `+09:00` mean what they always did,
            // whatever a database calls them.
            None if !t.is_empty() => jiff::tz::db()
                .get(t)
                .map(Zone)
                .map_err(|_| ZoneError(text.to_string())),
            None => Err(ZoneError(text.to_string())),
        }
    }

    /// The zone for jiff's arithmetic (see domain/business.rs).
    pub fn time_zone(&self) -> &TimeZone {
        &self.0
    }

    /// `UTC` or `UTC+09:00`: the offset in force at `at`, as shown after a
    /// time (Berlin reads `UTC+01:00` in winter, `UTC+02:00` in summer).
    pub fn label(&self, at: OffsetDateTime) -> String {
        let seconds = self.0.to_offset(timestamp(at)).seconds();
        if seconds == 0 {
            return "UTC".into();
        }
        let sign = if seconds < 0 { '-' } else { '+' };
        let minutes = seconds.unsigned_abs() / 60;
        format!("UTC{sign}{:02}:{:02}", minutes / 60, minutes % 60)
    }
}

/// `UTC`, `Z`, empty, `+09:00`, `UTC+9`, `GMT-0330`: a fixed offset.
fn parse_offset(t: &str) -> Option<Zone> {
    let upper = t.to_ascii_uppercase();
    let rest = upper
        .strip_prefix("UTC")
        .or_else(|| upper.strip_prefix("GMT"))
        .unwrap_or(&upper);
    if rest.is_empty() || rest == "Z" {
        return Some(Zone::UTC);
    }
    let (sign, digits) = match rest.split_at_checked(1)? {
        ("+", d) => (1, d),
        ("-", d) => (-1, d),
        _ => return None,
    };
    let (hours, minutes) = match digits.split_once(':') {
        Some((h, m)) => (h, m),
        None if digits.len() == 4 => digits.split_at_checked(2)?,
        None => (digits, "0"),
    };
    let hours: i32 = hours.parse().ok()?;
    let minutes: i32 = minutes.parse().ok()?;
    if !(0..=14).contains(&hours) || !(0..60).contains(&minutes) {
        return None;
    }
    let offset = Offset::from_seconds(sign * (hours * 3600 + minutes * 60)).ok()?;
    Some(Zone(TimeZone::fixed(offset)))
}

/// `at` for jiff, clamped to jiff's range (a few hours narrower than the
/// `time` crate's at year ±9999), so no stored time can fail arithmetic.
pub fn timestamp(at: OffsetDateTime) -> Timestamp {
    let nanos = at.unix_timestamp_nanos();
    Timestamp::from_nanosecond(nanos).unwrap_or(if nanos < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// A jiff instant back at the boundary. jiff's range lies inside `time`'s,
/// so the fallback is never taken.
pub fn offset_date_time(ts: Timestamp) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ts.as_nanosecond())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `2 Dec 2026, 17:37 (UTC+09:00)` in English; `2026年12月2日 17:37（UTC+09:00）`
/// in Japanese: the local time at `at` and the offset in force then.
pub fn format(at: OffsetDateTime, locale: &str, zone: &Zone) -> String {
    let t = zone.0.to_datetime(timestamp(at));
    let (y, mo, d, h, mi) = (t.year(), t.month(), t.day(), t.hour(), t.minute());
    let label = zone.label(at);
    match super::locale::Locale::of(locale) {
        super::locale::Locale::Ja => format!("{y}年{mo}月{d}日 {h:02}:{mi:02}（{label}）"),
        super::locale::Locale::En => format!(
            "{d} {} {y}, {h:02}:{mi:02} ({label})",
            MONTHS[usize::try_from(mo - 1).unwrap_or(0)],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn zones_parse_from_config() {
        // The label at a winter and a summer instant.
        let (winter, summer) = (
            datetime!(2026-01-15 12:00 UTC),
            datetime!(2026-07-15 12:00 UTC),
        );
        let cases = [
            ("", Some(("UTC", "UTC"))),
            ("UTC", Some(("UTC", "UTC"))),
            ("utc", Some(("UTC", "UTC"))),
            ("Z", Some(("UTC", "UTC"))),
            ("+09:00", Some(("UTC+09:00", "UTC+09:00"))),
            ("UTC+9", Some(("UTC+09:00", "UTC+09:00"))),
            ("-05:30", Some(("UTC-05:30", "UTC-05:30"))),
            ("GMT-0330", Some(("UTC-03:30", "UTC-03:30"))),
            ("Asia/Tokyo", Some(("UTC+09:00", "UTC+09:00"))),
            ("asia/tokyo", Some(("UTC+09:00", "UTC+09:00"))),
            (" Europe/Berlin ", Some(("UTC+01:00", "UTC+02:00"))),
            ("America/New_York", Some(("UTC-05:00", "UTC-04:00"))),
            ("Australia/Sydney", Some(("UTC+11:00", "UTC+10:00"))),
            ("Asia/Kolkata", Some(("UTC+05:30", "UTC+05:30"))),
            ("+15:00", None),
            ("+09:75", None),
            ("Europe/Atlantis", None),
            ("é", None),
            ("+", None),
        ];
        for (text, expected) in cases {
            let got = Zone::parse(text)
                .ok()
                .map(|z| (z.label(winter), z.label(summer)));
            let expected = expected.map(|(w, s)| (w.to_string(), s.to_string()));
            assert_eq!(got, expected, "{text:?}");
        }
    }

    #[test]
    fn dates_read_in_the_user_s_language_and_the_desk_s_zone() {
        let zone = |text| Zone::parse(text).unwrap();
        let at = datetime!(2026-12-02 08:37:17.841913 UTC);
        let late = datetime!(2026-12-31 20:00 UTC);
        let cases = [
            (at, "en", "UTC", "2 Dec 2026, 08:37 (UTC)"),
            (at, "en", "+09:00", "2 Dec 2026, 17:37 (UTC+09:00)"),
            (at, "ja", "+09:00", "2026年12月2日 17:37（UTC+09:00）"),
            (late, "ja", "+09:00", "2027年1月1日 05:00（UTC+09:00）"),
            (at, "en", "-05:30", "2 Dec 2026, 03:07 (UTC-05:30)"),
            (at, "en", "Asia/Tokyo", "2 Dec 2026, 17:37 (UTC+09:00)"),
            // Berlin in winter and in summer.
            (at, "en", "Europe/Berlin", "2 Dec 2026, 09:37 (UTC+01:00)"),
            (
                datetime!(2026-07-01 08:37 UTC),
                "ja",
                "Europe/Berlin",
                "2026年7月1日 10:37（UTC+02:00）",
            ),
            // New York on 2026-03-08, either side of 02:00 becoming 03:00.
            (
                datetime!(2026-03-08 06:59 UTC),
                "en",
                "America/New_York",
                "8 Mar 2026, 01:59 (UTC-05:00)",
            ),
            (
                datetime!(2026-03-08 07:00 UTC),
                "en",
                "America/New_York",
                "8 Mar 2026, 03:00 (UTC-04:00)",
            ),
            // And on 2026-11-01, when 01:00-02:00 comes twice.
            (
                datetime!(2026-11-01 05:30 UTC),
                "en",
                "America/New_York",
                "1 Nov 2026, 01:30 (UTC-04:00)",
            ),
            (
                datetime!(2026-11-01 06:30 UTC),
                "en",
                "America/New_York",
                "1 Nov 2026, 01:30 (UTC-05:00)",
            ),
        ];
        for (at, locale, tz, want) in cases {
            assert_eq!(format(at, locale, &zone(tz)), want, "{at} {tz}");
        }
    }

    #[test]
    fn instants_cross_the_boundary_unchanged_or_clamped() {
        let at = datetime!(2026-12-02 08:37:17.841913 UTC);
        assert_eq!(offset_date_time(timestamp(at)), at);
        let far = time::Date::MAX.midnight().assume_utc();
        assert_eq!(timestamp(far), Timestamp::MAX);
        let early = time::Date::MIN.midnight().assume_utc();
        assert_eq!(timestamp(early), Timestamp::MIN);
    }
}
