//! Times as the server keeps them (milliseconds since the epoch) and as clients write and read
//! them (RFC 3339).

use chrono::{DateTime, SecondsFormat, Utc};

/// Now, in milliseconds since the epoch.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// An RFC 3339 time (any offset, any precision) in milliseconds since the epoch.
pub fn parse_time(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.timestamp_millis())
}

/// As JavaScript's `Date.prototype.toISOString`: UTC, to the millisecond.
pub fn format_time(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map_or_else(String::new, |t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_rfc_3339_and_print_as_javascript_does() {
        let ms = parse_time("2026-12-07T08:15:30.123+01:00").unwrap();
        assert_eq!(format_time(ms), "2026-12-07T07:15:30.123Z");
        assert_eq!(parse_time("2026-12-07T07:15:30Z"), Some(ms - 123));
        assert_eq!(parse_time("2026-12-07"), None);
        assert_eq!(parse_time("yesterday"), None);
    }
}
