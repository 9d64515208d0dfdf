//! Timestamps as the Management API writes them: UTC, RFC 3339, exactly three fraction digits.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

/// An instant with millisecond precision, always UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    /// The current instant, truncated to milliseconds.
    pub fn now() -> Self {
        Self::from_datetime(OffsetDateTime::now_utc())
    }

    /// Converts any instant to UTC and drops sub-millisecond digits.
    pub fn from_datetime(dt: OffsetDateTime) -> Self {
        // `to_offset` panics when the instant is past year 9999 in UTC; `parse` refuses
        // those, and the fallback keeps anything else that slips through from panicking.
        let dt = dt.checked_to_offset(UtcOffset::UTC).unwrap_or(dt);
        let millis = dt.millisecond();
        // `replace_millisecond` only fails for values > 999, which `millisecond()` never returns.
        let dt = dt.replace_millisecond(millis).unwrap_or(dt);
        Self(dt)
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_millis(self) -> i64 {
        (self.0.unix_timestamp_nanos() / 1_000_000) as i64
    }

    /// Whole seconds since the Unix epoch.
    pub fn unix_seconds(self) -> i64 {
        self.0.unix_timestamp()
    }

    /// From milliseconds since the Unix epoch; `None` when out of range.
    pub fn from_unix_millis(ms: i64) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .ok()
            .map(Self)
    }

    /// Parses an RFC 3339 date-time with or without fraction digits and with `Z` or an offset.
    /// Also accepts a lowercase `t`/`z` as RFC 3339 allows.
    pub fn parse(input: &str) -> Option<Self> {
        if input.len() > 64 {
            return None;
        }
        let dt = OffsetDateTime::parse(input, &Rfc3339).ok()?;
        // An offset can carry the instant out of range in UTC: `9999-12-31T23:59:59-01:00`
        // past the end of the time crate's range, `0000-01-01T00:00:00+01:00` into year -1,
        // which RFC 3339 cannot write (so it could not be read back).
        dt.checked_to_offset(UtcOffset::UTC)
            .filter(|utc| (0..=9999).contains(&utc.year()))
            .map(Self::from_datetime)
    }

    /// The underlying date-time.
    pub fn datetime(self) -> OffsetDateTime {
        self.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let format = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        match self.0.format(&format) {
            Ok(s) => f.write_str(&s),
            Err(_) => Err(fmt::Error),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Parsed from the text where the deserializer holds it, not from a copy: a stored
        // client and its credentials carry eight timestamps, read at every start-up.
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 timestamp")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Timestamp, E> {
                Timestamp::parse(s).ok_or_else(|| E::custom("invalid timestamp"))
            }
        }
        deserializer.deserialize_str(Text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_three_fraction_digits_and_z() {
        let t = Timestamp::parse("2023-11-07T05:31:56Z").map(|t| t.to_string());
        assert_eq!(t.as_deref(), Some("2023-11-07T05:31:56.000Z"));
    }

    #[test]
    fn truncates_microseconds_and_normalises_offsets() {
        let t = Timestamp::parse("2023-11-07T05:31:56.123456+02:00").map(|t| t.to_string());
        assert_eq!(t.as_deref(), Some("2023-11-07T03:31:56.123Z"));
    }

    #[test]
    fn rejects_non_rfc3339() {
        assert!(Timestamp::parse("2023-11-07").is_none());
        assert!(Timestamp::parse("yesterday").is_none());
        assert!(Timestamp::parse("2023-13-07T05:31:56Z").is_none());
    }

    #[test]
    fn rejects_instants_outside_years_0000_to_9999_in_utc() {
        // Found by fuzz/fuzz_targets/timestamp.rs: past 9999, a 500 on PATCH expires_at;
        // before 0000, printed as "-0001-12-31T23:59:59.999Z", which does not parse back.
        assert!(Timestamp::parse("9999-12-31T23:59:59.999999999-23:59").is_none());
        assert!(Timestamp::parse("9999-12-31T23:59:59-00:01").is_none());
        assert!(Timestamp::parse("0000-01-01020:02:60+20:03").is_none());
        assert!(Timestamp::parse("0000-01-01T00:00:00+01:00").is_none());
        let zulu = Timestamp::parse("0000-01-01T00:00:00Z").map(|t| t.to_string());
        assert_eq!(zulu.as_deref(), Some("0000-01-01T00:00:00.000Z"));
        let last = Timestamp::parse("9999-12-31T23:59:59.999Z").map(|t| t.to_string());
        assert_eq!(last.as_deref(), Some("9999-12-31T23:59:59.999Z"));
        let first = Timestamp::parse("0000-01-01T00:00:00+00:00").map(|t| t.to_string());
        assert_eq!(first.as_deref(), Some("0000-01-01T00:00:00.000Z"));
    }

    #[test]
    fn millis_round_trip() {
        let t = Timestamp::parse("2031-02-03T04:05:06.789Z");
        let back = t.and_then(|t| Timestamp::from_unix_millis(t.unix_millis()));
        assert_eq!(t, back);
    }
}
