//! Backfill progress on stderr.

/// Backfill progress: a bar with rows/s and ETA on a terminal, a plain line
/// every few seconds otherwise (CI logs).
pub struct Progress {
    bar: std::sync::Mutex<Option<(String, indicatif::ProgressBar)>>,
    terminal: bool,
    last_line: std::sync::Mutex<std::time::Instant>,
    started: std::sync::Mutex<std::time::Instant>,
}

impl Progress {
    pub fn new() -> Progress {
        use std::io::IsTerminal;
        let now = std::time::Instant::now();
        Progress {
            bar: std::sync::Mutex::new(None),
            terminal: std::io::stderr().is_terminal(),
            last_line: std::sync::Mutex::new(now),
            started: std::sync::Mutex::new(now),
        }
    }
}

impl phasegate::execute::Progress for Progress {
    fn step(&self, step: &phasegate::plan::Step) {
        if let Ok(mut bar) = self.bar.lock()
            && let Some((_, b)) = bar.take()
        {
            b.finish();
        }
        if let Ok(mut t) = self.started.lock() {
            *t = std::time::Instant::now();
        }
        if !self.terminal {
            crate::err_line(format_args!("running {}: {}", step.id, step.description));
        }
    }

    fn backfill(&self, step: &phasegate::plan::Step, updated: u64, total: Option<u64>) {
        if self.terminal {
            let Ok(mut guard) = self.bar.lock() else {
                return;
            };
            let bar = guard.get_or_insert_with(|| {
                let b = indicatif::ProgressBar::new(total.unwrap_or(0));
                let style = indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:30}] {pos}/{len} rows, {per_sec}, ETA {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
                b.set_style(style.progress_chars("=> "));
                b.set_message(step.id.clone());
                (step.id.clone(), b)
            });
            if let Some(t) = total {
                bar.1.set_length(t.max(updated));
            }
            bar.1.set_position(updated);
            return;
        }
        let Ok(mut last) = self.last_line.lock() else {
            return;
        };
        if last.elapsed() >= std::time::Duration::from_secs(5)
            || total.is_some_and(|t| updated >= t)
        {
            *last = std::time::Instant::now();
            let secs = self
                .started
                .lock()
                .map(|t| t.elapsed().as_secs_f64())
                .unwrap_or(0.0)
                .max(0.001);
            let rate = updated as f64 / secs;
            let of = total.map(|t| format!(" of ~{t}")).unwrap_or_default();
            crate::err_line(format_args!(
                "  {}: {updated}{of} rows, {rate:.0} rows/s",
                step.id
            ));
        }
    }
}
