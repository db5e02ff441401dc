//! How many rows the next backfill batch takes.
//!
//! With `backfill_batch_size` every batch takes that many rows. With
//! `backfill_batch_time` (the default) the batches are sized toward that
//! duration: the first takes [`BatchSizing::FIRST_ROWS`], and each next one
//! the rows the last batch's speed says fit in the target. A batch holds the
//! row locks of the rows it updated until it commits, so its duration is how
//! long a write to one of those rows may wait; and each batch pays a fixed
//! cost (a round trip, the checkpoint, the commit's flush) that a longer
//! batch spreads over more rows.
//!
//! The size at most doubles from one batch to the next (a batch that ran
//! from a cold cache, or that found its rows already done, is no promise
//! for the next), and shrinks at once to a tenth at most when a batch ran
//! long (lock waits, a busy server). It stays within
//! [`MIN_ROWS`]..=[`MAX_ROWS`].

use std::time::Duration;

use crate::config::BatchSizing;

/// The smallest timed batch.
pub const MIN_ROWS: u64 = 10;
/// The largest timed batch: a bound on the row locks one batch holds, and
/// on the work a lost batch redoes.
pub const MAX_ROWS: u64 = 1_000_000;

/// The size of the next batch.
#[derive(Debug, Clone, Copy)]
pub struct Sizer {
    rows: u64,
    target: Option<Duration>,
}

impl Sizer {
    pub fn new(sizing: BatchSizing) -> Self {
        Sizer {
            rows: u64::from(sizing.first_rows()).max(1),
            target: match sizing {
                BatchSizing::Rows(_) => None,
                BatchSizing::Timed(t) => Some(t),
            },
        }
    }

    /// The rows the next batch takes.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// A batch of `rows` rows (fewer than [`Sizer::rows`] when it was the
    /// last) took `took`, from its first statement to its commit.
    pub fn observe(&mut self, rows: u64, took: Duration) {
        let Some(target) = self.target else {
            return;
        };
        // A short last batch, or one timed below the clock's resolution,
        // says nothing about the speed.
        if rows < self.rows || took.is_zero() {
            return;
        }
        let factor = (target.as_secs_f64() / took.as_secs_f64()).clamp(0.1, 2.0);
        let next = (self.rows as f64 * factor).round() as u64;
        self.rows = next.clamp(MIN_ROWS, MAX_ROWS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_fixed_size_never_changes() {
        let mut s = Sizer::new(BatchSizing::Rows(250));
        s.observe(250, ms(5));
        s.observe(250, ms(5000));
        assert_eq!(s.rows(), 250);
    }

    #[test]
    fn timed_batches_grow_toward_the_target_at_most_doubling() {
        let mut s = Sizer::new(BatchSizing::Timed(ms(100)));
        assert_eq!(s.rows(), 1000);
        // 1000 rows in 10 ms: 10,000 would fit, but one step only doubles.
        s.observe(1000, ms(10));
        assert_eq!(s.rows(), 2000);
        s.observe(2000, ms(20));
        s.observe(4000, ms(40));
        assert_eq!(s.rows(), 8000);
        // 8000 rows in 80 ms: 10,000 reach the target.
        s.observe(8000, ms(80));
        assert_eq!(s.rows(), 10_000);
        s.observe(10_000, ms(100));
        assert_eq!(s.rows(), 10_000);
    }

    #[test]
    fn a_slow_batch_shrinks_the_next_at_once() {
        let mut s = Sizer::new(BatchSizing::Timed(ms(100)));
        s.observe(1000, ms(400));
        assert_eq!(s.rows(), 250);
        // A batch that waited ten seconds on a lock: a tenth, not less.
        s.observe(250, Duration::from_secs(10));
        assert_eq!(s.rows(), 25);
        s.observe(25, Duration::from_secs(10));
        assert_eq!(s.rows(), MIN_ROWS);
    }

    #[test]
    fn the_last_short_batch_and_unmeasurable_ones_change_nothing() {
        let mut s = Sizer::new(BatchSizing::Timed(ms(100)));
        s.observe(10, ms(1));
        s.observe(1000, Duration::ZERO);
        assert_eq!(s.rows(), 1000);
    }

    #[test]
    fn growth_stops_at_the_largest_batch() {
        let mut s = Sizer::new(BatchSizing::Timed(Duration::from_secs(3600)));
        for _ in 0..20 {
            let rows = s.rows();
            s.observe(rows, ms(1));
        }
        assert_eq!(s.rows(), MAX_ROWS);
    }
}
