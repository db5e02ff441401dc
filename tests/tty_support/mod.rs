//! Running the built `phasegate` on a real terminal (a pseudo-terminal
//! made by `script -qfec` from util-linux) or with its output piped (a CI
//! log), and reading what it showed as it runs: for `progress_tty.rs`.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{TestResult, fail};
use crate::executor_support::Project;

/// Long enough for anything these tests wait for on a busy machine.
pub const PATIENCE: Duration = Duration::from_secs(90);

// ---------------------------------------------------------------------------
// The binary, on a terminal or not, read as it runs
// ---------------------------------------------------------------------------

/// A running `phasegate`, its output collected as it comes.
pub struct Running {
    pub child: Child,
    /// Kept open: `script` ends its session when its input closes.
    stdin: Option<ChildStdin>,
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

/// The built binary with the project's config and `args`, as a shell command.
fn command_line(project: &Project, args: &[&str]) -> String {
    let mut words = vec![
        env!("CARGO_BIN_EXE_phasegate").to_string(),
        "--config".into(),
        project.config_path().display().to_string(),
    ];
    words.extend(args.iter().map(|a| a.to_string()));
    words
        .iter()
        .map(|w| format!("'{}'", w.replace('\'', "'\\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

fn collect(
    mut from: impl Read + Send + 'static,
    into: Arc<Mutex<Vec<u8>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Ok(mut v) = into.lock() {
                v.extend_from_slice(&buf[..n]);
            }
        }
    })
}

impl Running {
    /// `phasegate args` on a pseudo-terminal of 50 rows and 200 columns
    /// (`script -qfec`; `exec` makes the binary the terminal's foreground
    /// process, which gets the SIGINT of a Ctrl-C typed there).
    pub fn on_terminal(project: &Project, args: &[&str]) -> TestResult<Running> {
        let shell = format!(
            "stty rows 50 cols 200; exec {}",
            command_line(project, args)
        );
        let mut child = Command::new("script")
            .args(["-qfec", &shell, "/dev/null"])
            .current_dir(&project.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        Running::reading(&mut child).map(|(stdin, out, err, readers)| Running {
            child,
            stdin,
            out,
            err,
            readers,
        })
    }

    /// `phasegate args` with stdout and stderr piped (a CI job's log).
    pub fn piped(project: &Project, args: &[&str]) -> TestResult<Running> {
        let mut child = executor_support_command(project, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        Running::reading(&mut child).map(|(stdin, out, err, readers)| Running {
            child,
            stdin,
            out,
            err,
            readers,
        })
    }

    #[allow(clippy::type_complexity)]
    fn reading(
        child: &mut Child,
    ) -> TestResult<(
        Option<ChildStdin>,
        Arc<Mutex<Vec<u8>>>,
        Arc<Mutex<Vec<u8>>>,
        Vec<std::thread::JoinHandle<()>>,
    )> {
        let out = Arc::new(Mutex::new(Vec::new()));
        let err = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().ok_or_else(|| fail("no stdout"))?;
        let stderr = child.stderr.take().ok_or_else(|| fail("no stderr"))?;
        let readers = vec![collect(stdout, out.clone()), collect(stderr, err.clone())];
        Ok((child.stdin.take(), out, err, readers))
    }

    /// What the terminal (or stdout) showed so far, escape sequences removed,
    /// each redraw of a line on a line of its own.
    pub fn screen(&self) -> String {
        plain(&self.out.lock().map(|v| v.clone()).unwrap_or_default())
    }

    pub fn stderr(&self) -> String {
        plain(&self.err.lock().map(|v| v.clone()).unwrap_or_default())
    }

    /// Waits until `what` holds of the output so far (stdout then stderr).
    pub fn wait_for(&mut self, what: &str, holds: impl Fn(&str) -> bool) -> TestResult<String> {
        let start = Instant::now();
        loop {
            let seen = format!("{}{}", self.screen(), self.stderr());
            if holds(&seen) {
                return Ok(seen);
            }
            if let Some(status) = self.child.try_wait()? {
                return Err(fail(format!(
                    "phasegate ended ({status}) before {what}:\n{seen}"
                )));
            }
            if start.elapsed() > PATIENCE {
                let _ = self.child.kill();
                return Err(fail(format!("no {what} within {PATIENCE:?}:\n{seen}")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Types Ctrl-C on the terminal.
    pub fn ctrl_c(&mut self) -> TestResult {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| fail("no terminal input"))?;
        stdin.write_all(b"\x03")?;
        stdin.flush()?;
        Ok(())
    }

    /// Sends SIGINT to the process (not on a terminal).
    pub fn sigint(&self) -> TestResult {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()?;
        if !status.success() {
            return Err(fail("kill -INT failed"));
        }
        Ok(())
    }

    /// Waits for the end (bounded): the exit code and (stdout, stderr).
    pub fn finish(mut self) -> TestResult<(i32, String, String)> {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if start.elapsed() > PATIENCE {
                let _ = self.child.kill();
                return Err(fail(format!(
                    "phasegate did not end within {PATIENCE:?}:\n{}{}",
                    self.screen(),
                    self.stderr()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        drop(self.stdin.take());
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let code = status
            .code()
            .ok_or_else(|| fail(format!("killed by a signal: {status}")))?;
        Ok((code, self.screen(), self.stderr()))
    }
}

fn executor_support_command(project: &Project, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_phasegate"));
    c.arg("--config")
        .arg(project.config_path())
        .args(args)
        .current_dir(&project.dir);
    c
}

/// Terminal output as text: escape sequences dropped, `\r` as a new line.
pub fn plain(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                // CSI: ESC [ parameters final-byte.
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
            }
            '\r' => out.push('\n'),
            c => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------
// What the output must say
// ---------------------------------------------------------------------------

/// The table's rows as the bar shows them (`950`, `12.3k`, `1.2M`).
pub fn human(n: u64) -> String {
    if n < 1000 {
        return n.to_string();
    }
    let (x, unit) = if n < 999_950 {
        (n as f64 / 1e3, "k")
    } else {
        (n as f64 / 1e6, "M")
    };
    format!("{x:.1}{unit}")
}

pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Every rate shown (`12.3k rows/s` → 12300.0), refusing one that is not in
/// human units (more than one decimal, or a bare number of four digits or more).
pub fn rates(text: &str) -> TestResult<Vec<f64>> {
    let mut out = Vec::new();
    for (at, _) in text.match_indices(" rows/s") {
        let before = &text[..at];
        let token = before.rsplit([' ', ',', '(']).next().unwrap_or_default();
        let (number, scale) = match token.chars().last() {
            Some('k') => (&token[..token.len() - 1], 1e3),
            Some('M') => (&token[..token.len() - 1], 1e6),
            Some('G') => (&token[..token.len() - 1], 1e9),
            _ => (token, 1.0),
        };
        let decimals = number.split('.').nth(1).map_or(0, str::len);
        let digits = number.split('.').next().map_or(0, str::len);
        let value: f64 = number
            .parse()
            .map_err(|_| fail(format!("a rate that is not a number: {token:?} in {text}")))?;
        if decimals > 1 || digits > 3 {
            return Err(fail(format!(
                "a rate not in human units: {token:?} in:\n{text}"
            )));
        }
        out.push(value * scale);
    }
    Ok(out)
}

/// Fails on any `…/0 rows` (a bar of a table whose size was taken as 0).
pub fn never_of_zero(text: &str) -> TestResult {
    if text.contains("/0 rows") || text.contains("/~0 rows") {
        return Err(fail(format!("a bar reads of 0 rows:\n{text}")));
    }
    Ok(())
}

/// The resume command printed after Ctrl-C, with the built binary for `phasegate`.
pub fn resume_command(output: &str) -> TestResult<String> {
    let mut lines = output.lines().skip_while(|l| !l.ends_with("run:"));
    lines.next();
    let command = lines
        .find(|l| !l.trim().is_empty())
        .map(str::trim)
        .ok_or_else(|| fail(format!("no command after `run:`:\n{output}")))?;
    let rest = command
        .strip_prefix("phasegate ")
        .ok_or_else(|| fail(format!("not a phasegate command: {command}")))?;
    Ok(format!("'{}' {rest}", env!("CARGO_BIN_EXE_phasegate")))
}
