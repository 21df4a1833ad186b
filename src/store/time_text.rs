//! Timestamps as fixed-width UTC text, so SQLite compares them correctly as strings.

use time::format_description::FormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

const FORMAT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

pub fn format_ts(at: OffsetDateTime) -> String {
    at.to_offset(UtcOffset::UTC)
        .format(FORMAT)
        .expect("fixed format always formats")
}

pub fn parse_ts(text: &str) -> Option<OffsetDateTime> {
    PrimitiveDateTime::parse(text, FORMAT)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_and_sort_as_text() {
        let a = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let b = a + time::Duration::milliseconds(1);
        assert_eq!(parse_ts(&format_ts(a)), Some(a));
        assert!(format_ts(a) < format_ts(b));
        assert_eq!(format_ts(a).len(), format_ts(b).len());
    }
}
