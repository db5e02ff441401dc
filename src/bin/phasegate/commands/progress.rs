//! Progress of long steps on stderr: a bar with rows, rows/s and ETA on a
//! terminal, a plain line every few seconds otherwise (CI logs); lock waits
//! as they happen (on the bar's message on a terminal, a line otherwise);
//! waits for a replica or a VACUUM on the bar's message, or a line every few
//! seconds.
//!
//! Rates and ETAs belong to the current run: a backfill resumed after a
//! checkpoint starts its bar at the checkpoint, and its rate is the rows
//! done in this run over the time of this run. Numbers are in human units
//! ("12.3k rows/s", "1.2M/~4.0M rows", "ETA 3m 20s"); `~` marks an
//! estimated table size.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use phasegate::execute::{BackfillProgress, LagReading, LockWait, ReplicaWait, VacuumWait};
use phasegate::plan::Step;

use crate::interrupt;

/// How long a run must have lasted before its rate is shown (the first
/// batch, done before the first pause, would overstate it).
const RATE_AFTER: Duration = Duration::from_millis(500);

/// How often a line is written off a terminal.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// Backfill progress and lock waits on stderr (see the module's documentation).
pub struct Progress {
    terminal: bool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The bar of the backfill running now, on a terminal.
    bar: Option<indicatif::ProgressBar>,
    /// When the backfill running now started in this run.
    started: Option<Instant>,
    /// When the last line was written (off a terminal).
    last_line: Option<Instant>,
}

impl Progress {
    pub fn new() -> Progress {
        use std::io::IsTerminal;
        Progress {
            terminal: std::io::stderr().is_terminal(),
            state: Mutex::new(State::default()),
        }
    }
}

impl phasegate::execute::Progress for Progress {
    fn step(&self, step: &Step) {
        interrupt::step_started(step);
        if let Ok(mut s) = self.state.lock() {
            if let Some(b) = s.bar.take() {
                b.finish();
            }
            s.started = None;
            s.last_line = None;
        }
        if !self.terminal {
            crate::err_line(format_args!("running {}: {}", step.id, step.description));
        }
    }

    fn backfill_progress(&self, step: &Step, p: &BackfillProgress) {
        let p = &sized(p);
        interrupt::backfill_done(p.done);
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        let started = *s.started.get_or_insert_with(Instant::now);
        let text = progress_text(p, started.elapsed());
        if self.terminal {
            let bar = s.bar.get_or_insert_with(|| new_bar(step, p, &text));
            bar.set_length(p.total.map_or(p.done, |t| t.rows).max(p.done));
            bar.set_position(p.done);
            if p.finished {
                bar.finish_with_message(text);
            } else {
                bar.set_message(text);
            }
            return;
        }
        let due = s.last_line.is_none_or(|t| t.elapsed() >= LINE_EVERY);
        if due || p.finished {
            s.last_line = Some(Instant::now());
            crate::err_line(format_args!("  {}: {text}", step.id));
        }
    }

    fn lock_wait(&self, step: &Step, wait: &LockWait) {
        // `rollback` reports no step starting: the wait names it.
        interrupt::step_waiting(step);
        let text = lock_wait_text(wait);
        if self.terminal
            && let Ok(s) = self.state.lock()
            && let Some(bar) = &s.bar
        {
            // The whole line above the bar, kept in the scrollback; the
            // bar's message says it short enough for a narrow terminal.
            bar.println(format!("{}: {text}", step.id));
            bar.set_message(format!(
                "waiting for lock (attempt {} of {})",
                wait.attempt, wait.attempts
            ));
            return;
        }
        crate::err_line(format_args!("  {}: {text}", step.id));
    }

    fn replica_wait(&self, step: &Step, wait: &ReplicaWait) {
        self.waiting(step, "replica", &replica_wait_text(wait));
    }

    fn vacuum_wait(&self, step: &Step, wait: &VacuumWait) {
        self.waiting(step, "vacuum", &vacuum_wait_text(wait));
    }
}

impl Progress {
    /// A backfill waiting before its next batch for `what`: on the bar's
    /// message on a terminal, else a line every few seconds (not one per
    /// poll).
    fn waiting(&self, step: &Step, what: &str, text: &str) {
        if self.terminal
            && let Ok(s) = self.state.lock()
            && let Some(bar) = &s.bar
        {
            bar.set_message(format!("waiting for {what}: {text}"));
            return;
        }
        let due = self
            .state
            .lock()
            .map(|mut s| {
                let due = s.last_line.is_none_or(|t| t.elapsed() >= LINE_EVERY);
                if due {
                    s.last_line = Some(Instant::now());
                }
                due
            })
            .unwrap_or(true);
        if due {
            crate::err_line(format_args!("  {}: waiting for {what}: {text}", step.id));
        }
    }
}

/// `postgres://replica-1/app is 12.3s behind (max_replica_lag 10s); waited 4s`,
/// `mysql://replica-1/app is not replicating: replication SQL thread is not
/// running (max_replica_lag 1s); waited 4s`.
fn replica_wait_text(w: &ReplicaWait) -> String {
    let behind = match &w.lag {
        LagReading::Behind(d) => format!("is {} behind", wait_length(*d)),
        LagReading::Stopped(why) => format!("is not replicating: {why}"),
        LagReading::Unreadable(e) => format!("cannot be read ({e})"),
    };
    format!(
        "{} {behind} (max_replica_lag {}); waited {}",
        w.replica,
        wait_length(w.max),
        wait_length(w.waited)
    )
}

/// `autovacuum (pid 4242) is vacuuming public.big (scanning heap); waited 4s`.
fn vacuum_wait_text(w: &VacuumWait) -> String {
    format!(
        "{} (pid {}) is vacuuming {} ({}); waited {}",
        w.kind,
        w.pid,
        w.table,
        w.phase,
        wait_length(w.waited)
    )
}

/// A bar for `step` (a spinner when the table's size is unknown) showing
/// `text`, redrawn every 200 ms so that a message set just before a wait is
/// shown. The message is cut to the terminal's width: a line that wrapped
/// would be drawn again below itself.
fn new_bar(step: &Step, p: &BackfillProgress, text: &str) -> indicatif::ProgressBar {
    let (bar, template) = match p.total {
        Some(t) => (
            indicatif::ProgressBar::new(t.rows.max(p.done)),
            "{prefix} [{bar:20}] {wide_msg}",
        ),
        None => (
            indicatif::ProgressBar::new_spinner(),
            "{prefix} {spinner} {wide_msg}",
        ),
    };
    let style = indicatif::ProgressStyle::with_template(template)
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style.progress_chars("=> "));
    bar.set_prefix(step.id.clone());
    bar.set_position(p.done);
    bar.set_message(text.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// `1.2k/~4.0M rows, 850 rows/s, ETA 1h 18m` (what a bar's message and a
/// log line say), or, when finished, `done: 4,000,000 rows (3,999,120
/// updated) in 1h 20m, 833 rows/s` (exact). `elapsed`: the time of this run.
fn progress_text(p: &BackfillProgress, elapsed: Duration) -> String {
    let p = &sized(p);
    let this_run = p.done.saturating_sub(p.resumed_from);
    let secs = elapsed.as_secs_f64();
    // No rate before a batch of this run is done (a resumed run's earlier
    // rows are not this run's work), nor in its first half second.
    let rate = (this_run > 0 && elapsed >= RATE_AFTER).then(|| this_run as f64 / secs);
    let rate_text = rate.map_or(String::new(), |r| format!(", {} rows/s", rate_count(r)));
    if p.finished {
        return format!(
            "done: {} rows ({} updated) in {}{rate_text}",
            interrupt::grouped(p.done),
            interrupt::grouped(p.updated),
            duration(secs)
        );
    }
    let of = match p.total {
        // Past the size found at the start (rows written since, or a low
        // estimate): the size is not known any more.
        Some(t) if p.done > t.rows => format!("/~{}", count(p.done)),
        Some(t) if t.exact => format!("/{}", count(t.rows)),
        Some(t) => format!("/~{}", count(t.rows)),
        None => String::new(),
    };
    let percent = p
        .total
        .filter(|t| t.rows > 0 && p.done <= t.rows)
        .map_or(String::new(), |t| {
            format!(" ({}%)", p.done.saturating_mul(100) / t.rows)
        });
    let resumed = if p.resumed_from > 0 && this_run == 0 {
        format!(", resuming after {} rows done", count(p.resumed_from))
    } else {
        String::new()
    };
    let eta = match (rate, p.total) {
        (Some(r), Some(t)) if p.done <= t.rows => {
            format!(", ETA {}", duration((t.rows - p.done) as f64 / r))
        }
        _ => String::new(),
    };
    format!(
        "{}{of} rows{percent}{resumed}{rate_text}{eta}",
        count(p.done)
    )
}

/// `p` with a table found empty taken as one of unknown size: a bar never
/// reads `…/0 rows` (rows may come while it walks).
fn sized(p: &BackfillProgress) -> BackfillProgress {
    BackfillProgress {
        total: p.total.filter(|t| t.rows > 0),
        ..*p
    }
}

/// `waiting for lock on users (attempt 2 of 10, retrying in 1.0s): lock_timeout after 2s`.
fn lock_wait_text(w: &LockWait) -> String {
    let on = w
        .table
        .as_deref()
        .map_or(String::new(), |t| format!(" on {t}"));
    format!(
        "waiting for lock{on} (attempt {} of {}, retrying in {:.1}s): lock_timeout after {}",
        w.attempt,
        w.attempts,
        w.retry_in.as_secs_f64(),
        wait_length(w.waited)
    )
}

/// A row count: `950`, `12.3k`, `4.0M`, `1.2G`.
fn count(n: u64) -> String {
    if n < 1000 {
        return n.to_string();
    }
    scaled(n as f64)
}

/// A rate: `0.5`, `12`, `850`, `12.3k`.
fn rate_count(r: f64) -> String {
    if r < 10.0 {
        format!("{r:.1}")
    } else if r < 999.5 {
        format!("{r:.0}")
    } else {
        scaled(r)
    }
}

/// `v` (at least 1000) with one decimal and the unit that keeps it under 1000.
fn scaled(v: f64) -> String {
    const UNITS: [(&str, f64); 4] = [("k", 1e3), ("M", 1e6), ("G", 1e9), ("T", 1e12)];
    for (i, (unit, size)) in UNITS.iter().enumerate() {
        let x = v / size;
        if x < 999.95 || i == UNITS.len() - 1 {
            return format!("{x:.1}{unit}");
        }
    }
    format!("{v:.0}")
}

/// A duration for people: `0s`, `45s`, `3m 20s`, `1h 05m`, `2d 3h`.
fn duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

/// A lock wait: `2s`, `500ms`, `1.5s`.
fn wait_length(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use phasegate::execute::RowCount;

    fn at(done: u64, resumed_from: u64, total: Option<(u64, bool)>) -> BackfillProgress {
        BackfillProgress {
            done,
            resumed_from,
            updated: done,
            total: total.map(|(rows, exact)| RowCount { rows, exact }),
            finished: false,
        }
    }

    #[test]
    fn counts_and_rates_read_in_human_units() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1.0k");
        assert_eq!(count(12_345), "12.3k");
        assert_eq!(count(999_960), "1.0M");
        assert_eq!(count(4_000_000), "4.0M");
        assert_eq!(rate_count(0.25), "0.2");
        assert_eq!(rate_count(850.4), "850");
        assert_eq!(rate_count(6_836_878_019.237_2), "6.8G");
        assert_eq!(duration(0.2), "0s");
        assert_eq!(duration(200.0), "3m 20s");
        assert_eq!(duration(3900.0), "1h 05m");
        assert_eq!(duration(90_000.0), "1d 1h");
        assert_eq!(wait_length(Duration::from_secs(2)), "2s");
        assert_eq!(wait_length(Duration::from_millis(300)), "300ms");
    }

    #[test]
    fn a_bar_never_reads_of_zero_and_an_estimate_is_marked() {
        let t = progress_text(&at(5000, 0, Some((20_000, true))), Duration::from_secs(2));
        assert_eq!(t, "5.0k/20.0k rows (25%), 2.5k rows/s, ETA 6s");
        let t = progress_text(&at(0, 0, None), Duration::ZERO);
        assert_eq!(t, "0 rows");
        let t = progress_text(&at(0, 0, Some((0, true))), Duration::ZERO);
        assert_eq!(t, "0 rows");
        let t = progress_text(
            &at(1_200_000, 0, Some((4_000_000, false))),
            Duration::from_secs(10),
        );
        assert!(
            t.starts_with("1.2M/~4.0M rows (30%), 120.0k rows/s, ETA 23s"),
            "{t}"
        );
        // Past the size found at the start: no ETA, the size grows with it.
        let t = progress_text(&at(6000, 0, Some((5000, true))), Duration::from_secs(1));
        assert_eq!(t, "6.0k/~6.0k rows, 6.0k rows/s");
    }

    #[test]
    fn a_resumed_backfill_rates_only_this_run() {
        // 90k rows were done by the killed run; this one did 10k in 2s.
        let t = progress_text(
            &at(100_000, 90_000, Some((200_000, true))),
            Duration::from_secs(2),
        );
        assert_eq!(t, "100.0k/200.0k rows (50%), 5.0k rows/s, ETA 20s");
        // Right after resuming, before a batch: no rate at all.
        let t = progress_text(
            &at(90_000, 90_000, Some((200_000, true))),
            Duration::from_millis(1),
        );
        assert_eq!(t, "90.0k/200.0k rows (45%), resuming after 90.0k rows done");
    }

    #[test]
    fn a_finished_backfill_says_exactly_what_it_did() {
        let mut p = at(12_345, 2_000, Some((12_345, true)));
        p.updated = 12_001;
        p.finished = true;
        let t = progress_text(&p, Duration::from_secs(200));
        assert_eq!(t, "done: 12,345 rows (12,001 updated) in 3m 20s, 52 rows/s");
    }

    #[test]
    fn lock_waits_say_what_and_how_long() {
        let w = LockWait {
            table: Some("users".into()),
            attempt: 2,
            attempts: 10,
            waited: Duration::from_secs(2),
            retry_in: Duration::from_millis(1000),
        };
        assert_eq!(
            lock_wait_text(&w),
            "waiting for lock on users (attempt 2 of 10, retrying in 1.0s): lock_timeout after 2s"
        );
    }

    #[test]
    fn replica_waits_say_which_how_far_and_how_long() {
        let mut w = ReplicaWait {
            replica: "postgres://replica-1/app".into(),
            lag: LagReading::Behind(Duration::from_millis(12_340)),
            max: Duration::from_secs(10),
            waited: Duration::from_secs(4),
        };
        assert_eq!(
            replica_wait_text(&w),
            "postgres://replica-1/app is 12.3s behind (max_replica_lag 10s); waited 4s"
        );
        w.lag = LagReading::Unreadable("connection refused".into());
        assert_eq!(
            replica_wait_text(&w),
            "postgres://replica-1/app cannot be read (connection refused) (max_replica_lag 10s); waited 4s"
        );
        w.replica = "mysql://replica-1/app".into();
        w.lag = LagReading::Behind(Duration::from_secs(3));
        w.max = Duration::from_secs(1);
        assert_eq!(
            replica_wait_text(&w),
            "mysql://replica-1/app is 3s behind (max_replica_lag 1s); waited 4s"
        );
        w.lag = LagReading::Stopped("replication SQL thread is not running".into());
        assert_eq!(
            replica_wait_text(&w),
            "mysql://replica-1/app is not replicating: replication SQL thread is not running (max_replica_lag 1s); waited 4s"
        );
    }

    #[test]
    fn vacuum_waits_say_who_on_what_and_how_long() {
        let mut w = VacuumWait {
            table: "public.big".into(),
            kind: phasegate::execute::VacuumKind::Autovacuum,
            pid: 4242,
            phase: "scanning heap".into(),
            waited: Duration::from_millis(4_200),
        };
        assert_eq!(
            vacuum_wait_text(&w),
            "autovacuum (pid 4242) is vacuuming public.big (scanning heap); waited 4.2s"
        );
        w.kind = phasegate::execute::VacuumKind::Manual;
        assert_eq!(
            vacuum_wait_text(&w),
            "a manual VACUUM (pid 4242) is vacuuming public.big (scanning heap); waited 4.2s"
        );
    }
}
