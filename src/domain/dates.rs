//! Dates as a person reads them in mail: in their language and in the
//! support desk's time zone (`[support] timezone`), never as a stored
//! timestamp like `2026-12-02T08:37:17.841913Z`.

use time::{OffsetDateTime, UtcOffset};

/// A time zone as configured: `UTC` (the default), or a fixed offset such as
/// `+09:00`, `-05:30`, `UTC+9`. Named zones with daylight saving time need a
/// time-zone database, which the binary does not carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zone(pub UtcOffset);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not UTC or an offset such as +09:00 or UTC-5")]
pub struct ZoneError(String);

impl Default for Zone {
    fn default() -> Self {
        Zone::UTC
    }
}

impl Zone {
    pub const UTC: Zone = Zone(UtcOffset::UTC);

    pub fn parse(text: &str) -> Result<Self, ZoneError> {
        let err = || ZoneError(text.to_string());
        let t = text.trim();
        let upper = t.to_ascii_uppercase();
        let rest = upper
            .strip_prefix("UTC")
            .or_else(|| upper.strip_prefix("GMT"))
            .unwrap_or(&upper);
        if rest.is_empty() || rest == "Z" {
            return Ok(Zone::UTC);
        }
        let (sign, digits) = match rest.split_at(1) {
            ("+", d) => (1, d),
            ("-", d) => (-1, d),
            _ => return Err(err()),
        };
        let (hours, minutes) = match digits.split_once(':') {
            Some((h, m)) => (h, m),
            None if digits.len() == 4 => digits.split_at(2),
            None => (digits, "0"),
        };
        let hours: i8 = hours.parse().map_err(|_| err())?;
        let minutes: i8 = minutes.parse().map_err(|_| err())?;
        if !(0..=14).contains(&hours) || !(0..60).contains(&minutes) {
            return Err(err());
        }
        UtcOffset::from_hms(sign * hours, sign * minutes, 0)
            .map(Zone)
            .map_err(|_| err())
    }

    /// `UTC` or `UTC+09:00`, as shown after a time.
    pub fn label(&self) -> String {
        if self.0 == UtcOffset::UTC {
            return "UTC".into();
        }
        let (h, m, _) = self.0.as_hms();
        let sign = if self.0.is_negative() { '-' } else { '+' };
        format!("UTC{sign}{:02}:{:02}", h.unsigned_abs(), m.unsigned_abs())
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `2 Dec 2026, 17:37 (UTC+09:00)` in English; `2026年12月2日 17:37（UTC+09:00）`
/// in Japanese.
pub fn format(at: OffsetDateTime, locale: &str, zone: Zone) -> String {
    let t = at.to_offset(zone.0);
    let (y, mo, d, h, mi) = (t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute());
    match super::locale::Locale::of(locale) {
        super::locale::Locale::Ja => format!("{y}年{mo}月{d}日 {h:02}:{mi:02}（{}）", zone.label()),
        super::locale::Locale::En => format!(
            "{d} {} {y}, {h:02}:{mi:02} ({})",
            MONTHS[usize::from(mo) - 1],
            zone.label()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn zones_parse_from_config() {
        let cases = [
            ("", Some("UTC")),
            ("UTC", Some("UTC")),
            ("utc", Some("UTC")),
            ("+09:00", Some("UTC+09:00")),
            ("UTC+9", Some("UTC+09:00")),
            ("-05:30", Some("UTC-05:30")),
            ("GMT-0330", Some("UTC-03:30")),
            ("Asia/Tokyo", None),
            ("+15:00", None),
            ("+09:75", None),
        ];
        for (text, expected) in cases {
            assert_eq!(
                Zone::parse(text).ok().map(|z| z.label()),
                expected.map(str::to_string),
                "{text:?}"
            );
        }
    }

    #[test]
    fn dates_read_in_the_user_s_language_and_the_desk_s_zone() {
        let at = datetime!(2026-12-02 08:37:17.841913 UTC);
        let tokyo = Zone::parse("+09:00").unwrap();
        assert_eq!(format(at, "en", Zone::UTC), "2 Dec 2026, 08:37 (UTC)");
        assert_eq!(format(at, "en", tokyo), "2 Dec 2026, 17:37 (UTC+09:00)");
        assert_eq!(format(at, "ja", tokyo), "2026年12月2日 17:37（UTC+09:00）");
        let late = datetime!(2026-12-31 20:00 UTC);
        assert_eq!(format(late, "ja", tokyo), "2027年1月1日 05:00（UTC+09:00）");
        let west = Zone::parse("-05:30").unwrap();
        assert_eq!(format(at, "en", west), "2 Dec 2026, 03:07 (UTC-05:30)");
    }
}
