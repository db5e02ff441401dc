//! The durations `phasegate.yaml` takes, and the range each field accepts.

use std::time::Duration;

/// Durations as people write them: `72h`, `30m`, `2d`, `1h 30m`, `45s`.
/// Any length humantime reads is returned; [`DurationRange::parse`] adds the
/// bounds of a config field.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        let hint = match respelt(s.trim()) {
            Some(fixed) => format!("did you mean `{fixed}`?"),
            None => "write e.g. 72h, 30m, 2d".to_string(),
        };
        format!("`{s}` is not a duration ({e}); {hint}")
    })
}

/// The units humantime reads.
const UNITS: &[&str] = &[
    "ms", "msec", "s", "sec", "secs", "second", "seconds", "m", "min", "mins", "minute", "minutes",
    "h", "hr", "hrs", "hour", "hours", "d", "day", "days", "w", "week", "weeks",
];

/// `s` with each misspelt unit replaced by the nearest one, when that reads
/// as a duration (`24hs` → `24h`, `3 dyas` → `3 days`).
fn respelt(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut changed = false;
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        let len = if c.is_ascii_alphabetic() {
            rest.find(|c: char| !c.is_ascii_alphabetic())
                .unwrap_or(rest.len())
        } else {
            c.len_utf8()
        };
        let word = &rest[..len];
        match c.is_ascii_alphabetic() && !UNITS.contains(&word) {
            true => {
                let unit = nearest_unit(word)?;
                out.push_str(unit);
                changed = true;
            }
            false => out.push_str(word),
        }
        rest = &rest[len..];
    }
    (changed && humantime::parse_duration(&out).is_ok()).then_some(out)
}

/// The unit nearest a misspelt one: the same first letter, then the closest.
fn nearest_unit(word: &str) -> Option<&'static str> {
    let lower = word.to_ascii_lowercase();
    if UNITS.contains(&lower.as_str()) {
        return UNITS.iter().find(|u| **u == lower).copied();
    }
    let first = lower.chars().next()?;
    let same: Vec<&str> = UNITS
        .iter()
        .filter(|u| u.starts_with(first))
        .copied()
        .collect();
    crate::suggest::nearest(&lower, &same)
}

/// The durations a config field accepts, both ends included.
///
/// Every wait phasegate makes is bounded, so no field takes an unbounded
/// value; and a timeout is at least one millisecond, because Postgres counts
/// `lock_timeout` and `statement_timeout` in milliseconds and reads `0` as
/// "no timeout": a zero or sub-millisecond timeout is refused, never rounded
/// to 0 (nor silently up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationRange {
    pub min: Duration,
    pub max: Duration,
    /// A timeout sent to the server, where 0 would mean "none": a value
    /// below the range says so.
    pub timeout: bool,
    /// Why the field counts whole seconds, when it does: a value with a
    /// fraction of a second is refused with this reason, never rounded.
    pub whole_seconds: Option<&'static str>,
}

const DAY: u64 = 24 * 3600;

/// `lock_timeout`, `statement_timeout`, `lock_wait`, `connect_timeout`:
/// from 1ms to 24h.
pub const TIMEOUT_RANGE: DurationRange = DurationRange {
    min: Duration::from_millis(1),
    max: Duration::from_secs(DAY),
    timeout: true,
    whole_seconds: None,
};
/// The most times a DDL that hit its `lock_timeout` is retried.
pub const MAX_LOCK_RETRIES: u32 = 100;

/// `soak` and `require_backup`: from 0 to 365 days.
pub const AGE_RANGE: DurationRange = DurationRange {
    min: Duration::ZERO,
    max: Duration::from_secs(365 * DAY),
    timeout: false,
    whole_seconds: None,
};
/// `backfill_pause`: from 0 to 1h.
pub const PAUSE_RANGE: DurationRange = DurationRange {
    min: Duration::ZERO,
    max: Duration::from_secs(3600),
    timeout: false,
    whole_seconds: None,
};

/// `max_replica_lag` on Postgres: from 1ms to 24h.
pub const LAG_RANGE: DurationRange = DurationRange {
    min: Duration::from_millis(1),
    max: Duration::from_secs(DAY),
    timeout: false,
    whole_seconds: None,
};
/// `max_replica_lag` on MySQL/MariaDB: whole seconds from 1s to 24h. A
/// MySQL replica reports its lag in whole seconds (`Seconds_Behind_Source`,
/// MySQL 8.0.22+; `Seconds_Behind_Master` before and on MariaDB), so a bound
/// between two whole seconds would act as the next one down.
pub const WHOLE_SECONDS_LAG_RANGE: DurationRange = DurationRange {
    min: Duration::from_secs(1),
    max: Duration::from_secs(DAY),
    timeout: false,
    whole_seconds: Some(
        "MySQL and MariaDB report a replica's lag in whole seconds (Seconds_Behind_Master)",
    ),
};
/// `backfill_batch_time`: from 1ms to 1h.
pub const BATCH_TIME_RANGE: DurationRange = DurationRange {
    min: Duration::from_millis(1),
    max: Duration::from_secs(3600),
    timeout: false,
    whole_seconds: None,
};

impl DurationRange {
    /// Parses `s` and checks it lies in the range; the error says what is
    /// allowed.
    pub fn parse(self, s: &str) -> Result<Duration, String> {
        let d = parse_duration(s)?;
        if let Some(why) = self.whole_seconds
            && d.subsec_nanos() != 0
        {
            let down = d.as_secs().max(1);
            return Err(format!(
                "`{}` is not a whole number of seconds: {why}; write e.g. {down}s",
                s.trim()
            ));
        }
        if d < self.min || d > self.max {
            let show = |d: Duration| humantime::format_duration(d).to_string();
            let least = if self.min.is_zero() {
                "0".to_string()
            } else {
                show(self.min)
            };
            let zero = if self.timeout && d < self.min {
                " (a timeout of 0 would mean no timeout at all)"
            } else {
                ""
            };
            return Err(format!(
                "`{}` is out of range: expected from {least} to {}{zero}",
                s.trim(),
                show(self.max)
            ));
        }
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelt_unit_gets_the_nearest_one() {
        for (given, want) in [
            ("24hs", "did you mean `24h`?"),
            ("3 dyas", "did you mean `3 days`?"),
            ("30 minuts", "did you mean `30 minutes`?"),
            ("1H", "did you mean `1h`?"),
        ] {
            let e = parse_duration(given);
            assert!(
                e.as_ref().is_err_and(|m| m.contains(want)),
                "{given}: {e:?}"
            );
        }
        let e = parse_duration("soon");
        assert!(
            e.as_ref()
                .is_err_and(|m| m.contains("write e.g. 72h") && !m.contains("did you mean")),
            "{e:?}"
        );
    }

    #[test]
    fn only_a_timeout_below_its_range_says_what_zero_would_mean() {
        let note = "a timeout of 0";
        let says = |r: DurationRange, v: &str| r.parse(v).is_err_and(|m| m.contains(note));
        assert!(says(TIMEOUT_RANGE, "0ms"));
        assert!(!says(TIMEOUT_RANGE, "2d"));
        assert!(!says(LAG_RANGE, "0s"));
        assert!(!says(BATCH_TIME_RANGE, "0s"));
        assert!(!says(BATCH_TIME_RANGE, "2h"));
        assert!(BATCH_TIME_RANGE.parse("2h").is_err());
    }

    #[test]
    fn a_whole_seconds_range_refuses_a_fraction_and_says_why() {
        let r = WHOLE_SECONDS_LAG_RANGE;
        assert_eq!(r.parse("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(r.parse("1m"), Ok(Duration::from_secs(60)));
        for (given, hint) in [("500ms", "write e.g. 1s"), ("1500ms", "write e.g. 1s")] {
            let e = r.parse(given);
            assert!(
                e.as_ref()
                    .is_err_and(|m| m.contains("not a whole number of seconds")
                        && m.contains("Seconds_Behind_Master")
                        && m.contains(hint)),
                "{given}: {e:?}"
            );
        }
        assert!(r.parse("0s").is_err_and(|m| m.contains("expected from 1s")));
        assert_eq!(LAG_RANGE.parse("500ms"), Ok(Duration::from_millis(500)));
    }
}
