//! Fleets: an environment of many databases (tenants, shards), listed
//! (`database_urls: [..]`) or generated when the config loads
//! (`database_urls_from: { glob: "tenants/*.db" }` or `{ command: "…" }`),
//! and how `apply` rolls a phase across them (`waves:`).
//!
//! ```yaml
//! - name: prod
//!   database_urls_from: { command: "./list-tenant-urls" }   # one URL a line
//!   waves: { canary: 1, growth: 2, parallelism: 4, pause: false }
//! ```

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_saphyr::Location;

use super::{ConfigError, RawEnvironment, expand, position};

/// The databases of a fleet environment and how `apply` moves through them.
#[derive(Debug, Clone, PartialEq)]
pub struct Fleet {
    /// Every target's database URL, in the order waves take them (as
    /// listed; a glob's files sorted by path; a command's lines as printed).
    /// `${VAR}`s expanded, relative SQLite paths resolved against the
    /// project root. At least one.
    pub targets: Vec<String>,
    pub waves: Waves,
}

/// How `apply` rolls a phase across a fleet (`waves:` in `phasegate.yaml`).
///
/// The first wave is the canary (`canary` targets); each next wave is
/// `growth` times the one before (the last takes what is left). At most
/// `parallelism` targets of a wave run at a time. A target that fails
/// stops the rollout: running targets of its wave finish, no other starts,
/// no later wave runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waves {
    /// Targets in the first wave (at least 1).
    pub canary: usize,
    /// Each wave's size over the previous one's (at least 1: 1 keeps every
    /// wave the canary's size).
    pub growth: usize,
    /// Targets of a wave run at once (at least 1).
    pub parallelism: usize,
    /// Stop after each wave: the next `apply` runs the next wave.
    pub pause: bool,
}

impl Default for Waves {
    fn default() -> Self {
        Waves {
            canary: 1,
            growth: 2,
            parallelism: 4,
            pause: false,
        }
    }
}

impl Waves {
    /// The largest `canary`, `parallelism` and `growth` accepted.
    pub const MAX: usize = 10_000;

    /// The waves over `n` targets, as index ranges in target order: the
    /// canary, then each `growth` times the one before, the last cut to
    /// what is left. Empty for no target.
    pub fn plan(&self, n: usize) -> Vec<std::ops::Range<usize>> {
        let mut out = Vec::new();
        let mut start = 0;
        let mut size = self.canary.max(1);
        while start < n {
            let end = (start + size).min(n);
            out.push(start..end);
            start = end;
            size = size.saturating_mul(self.growth.max(1));
        }
        out
    }
}

/// How long a `database_urls_from: { command }` may run before it is
/// killed and the config refused.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The most targets one environment may have (a generator printing
/// without end is refused, not held in memory).
pub const MAX_TARGETS: usize = 100_000;

/// `database_urls_from:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    #[serde(default)]
    pub glob: Option<String>,
    #[serde(default)]
    pub command: Option<String>,
}

/// `waves:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWaves {
    #[serde(default)]
    pub canary: Option<usize>,
    #[serde(default)]
    pub growth: Option<usize>,
    #[serde(default)]
    pub parallelism: Option<usize>,
    #[serde(default)]
    pub pause: bool,
}

impl RawWaves {
    /// The settings, or which one is out of range and why.
    pub(super) fn check(&self) -> Result<Waves, String> {
        let d = Waves::default();
        let field = |name: &str, v: Option<usize>, default: usize| match v {
            None => Ok(default),
            Some(0) => Err(format!("waves.{name} must be at least 1")),
            Some(n) if n > Waves::MAX => Err(format!(
                "waves.{name}: {n} is out of range: expected from 1 to {}",
                Waves::MAX
            )),
            Some(n) => Ok(n),
        };
        Ok(Waves {
            canary: field("canary", self.canary, d.canary)?,
            growth: field("growth", self.growth, d.growth)?,
            parallelism: field("parallelism", self.parallelism, d.parallelism)?,
            pause: self.pause,
        })
    }
}

/// The SQLite files `pattern` (relative to `root` unless absolute) matches,
/// sorted by path, as `sqlite://` URLs; an error for a bad pattern, an
/// unreadable folder, or no file at all.
pub(super) fn glob_urls(pattern: &str, root: &Path) -> Result<Vec<String>, String> {
    let full = if Path::new(pattern).is_absolute() {
        pattern.to_string()
    } else {
        root.join(pattern).display().to_string()
    };
    let paths = glob::glob(&full).map_err(|e| {
        format!(
            "glob `{pattern}` is not a valid pattern: {} (at character {})",
            e.msg,
            e.pos + 1
        )
    })?;
    let mut files = Vec::new();
    for p in paths {
        let p = p.map_err(|e| format!("glob `{pattern}`: cannot read {e}"))?;
        if p.is_file() {
            files.push(p);
        }
        if files.len() > MAX_TARGETS {
            return Err(format!(
                "glob `{pattern}` matches more than {MAX_TARGETS} files"
            ));
        }
    }
    if files.is_empty() {
        return Err(format!(
            "glob `{pattern}` matches no file (looked for {full})"
        ));
    }
    files.sort();
    Ok(files
        .into_iter()
        .map(|p| format!("sqlite://{}", p.display()))
        .collect())
}

/// The URLs `command` prints, one a line (blank lines and lines starting
/// with `#` skipped), run by `sh -c` in `root` with no input, killed (its
/// whole process group) after `timeout`. An error, with the command's
/// stderr, when it cannot start, exits non-zero, runs too long or prints
/// no URL.
pub(super) fn command_urls(
    command: &str,
    root: &Path,
    timeout: Duration,
) -> Result<Vec<String>, String> {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("command `{command}` could not start: {e}"))?;
    // Read both pipes on their own threads, so a chatty command never
    // blocks on a full pipe while it is waited for.
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                // At most 64 MiB; more is refused below as too many targets.
                let _ = p.by_ref().take(64 << 20).read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if started.elapsed() >= timeout => {
                kill_group(&mut child);
                break Err(format!(
                    "command `{command}` did not finish within {}s and was killed",
                    timeout.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => {
                kill_group(&mut child);
                break Err(format!("command `{command}`: {e}"));
            }
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let stderr = tail(&String::from_utf8_lossy(&stderr));
    let with_stderr = |m: String| {
        if stderr.is_empty() {
            m
        } else {
            format!("{m}; its stderr: {stderr}")
        }
    };
    let status = status.map_err(with_stderr)?;
    if !status.success() {
        let how = status.code().map_or_else(
            || "was killed by a signal".to_string(),
            |c| format!("exited with {c}"),
        );
        return Err(with_stderr(format!("command `{command}` {how}")));
    }
    let text = String::from_utf8(stdout)
        .map_err(|_| format!("command `{command}` printed something that is not UTF-8"))?;
    let urls: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    if urls.is_empty() {
        return Err(with_stderr(format!(
            "command `{command}` printed no database URL (expected one a line)"
        )));
    }
    if urls.len() > MAX_TARGETS {
        return Err(format!(
            "command `{command}` printed more than {MAX_TARGETS} URLs"
        ));
    }
    Ok(urls)
}

/// Which of the URL fields an environment uses, for messages.
pub(super) fn url_field(e: &RawEnvironment) -> &'static str {
    if e.database_urls.is_some() {
        "database_urls"
    } else if e.database_urls_from.is_some() {
        "database_urls_from"
    } else {
        "database_url"
    }
}

/// An error of [`urls_of`], and whether a lenient load may set the
/// environment aside for it (an unset `${VAR}`, a glob that matches no file
/// yet, a command that fails: errors only for a command that uses the
/// environment) rather than refuse the file (a mistake in the file itself).
pub(super) type UrlsError = (ConfigError, bool);

/// The database URLs of an environment (`${VAR}`s expanded; one for
/// `database_url`, every target of a fleet otherwise) and where the field
/// stands; exactly one of `database_url`, `database_urls` and
/// `database_urls_from` must be given.
pub(super) fn urls_of(
    e: &RawEnvironment,
    name: &str,
    text: &str,
    root: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
    at: &dyn Fn(Option<usize>, Option<usize>, String) -> ConfigError,
    at_value: &dyn Fn(&Location, String) -> ConfigError,
) -> Result<(Vec<String>, Location), UrlsError> {
    let given: Vec<(&str, Location)> = [
        e.database_url
            .as_ref()
            .map(|u| ("database_url", u.referenced)),
        e.database_urls
            .as_ref()
            .map(|u| ("database_urls", u.referenced)),
        e.database_urls_from
            .as_ref()
            .map(|u| ("database_urls_from", u.referenced)),
    ]
    .into_iter()
    .flatten()
    .collect();
    match given.as_slice() {
        [] => {
            return Err((
                at_value(
                    &e.name.referenced,
                    format!(
                        "environment `{name}` needs database_url (one database), or database_urls / database_urls_from (a fleet)"
                    ),
                ),
                false,
            ));
        }
        [(first, _), (second, loc), ..] => {
            return Err((
                at_value(
                    loc,
                    format!(
                        "{name}: set one of database_url, database_urls and database_urls_from, not both {first} and {second}"
                    ),
                ),
                false,
            ));
        }
        [_] => {}
    }
    if let Some(u) = &e.database_url {
        let url = expand(&u.value, lookup).map_err(|var| {
            // The variable's own column, when the URL is written plain on its line.
            let (line, column) = position(&u.referenced);
            let text_line = line.and_then(|l| text.lines().nth(l.saturating_sub(1)));
            let offset = text_line.zip(column).and_then(|(l, c)| {
                let start = l.char_indices().nth(c - 1).map(|(i, _)| i)?;
                l[start..]
                    .find(&format!("${{{var}}}"))
                    .map(|i| l[start..start + i].chars().count())
            });
            (
                at(
                    line,
                    column.map(|c| c + offset.unwrap_or(0)),
                    format!("environment variable `{var}` (in {name}'s database_url) is not set"),
                ),
                true,
            )
        })?;
        return Ok((vec![url], u.referenced));
    }
    if let Some(list) = &e.database_urls {
        if list.value.is_empty() {
            return Err((
                at_value(
                    &list.referenced,
                    format!("{name}.database_urls is empty: list at least one database"),
                ),
                false,
            ));
        }
        let urls = list
            .value
            .iter()
            .enumerate()
            .map(|(i, u)| {
                expand(u, lookup).map_err(|var| {
                    (
                        at_value(
                            &list.referenced,
                            format!(
                                "environment variable `{var}` (in {name}'s database_urls, entry {}) is not set",
                                i + 1
                            ),
                        ),
                        true,
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        return Ok((urls, list.referenced));
    }
    let Some(from) = &e.database_urls_from else {
        unreachable!("one of the three is given");
    };
    let loc = from.referenced;
    let fail = |m: String, can_wait: bool| {
        (
            at_value(&loc, format!("{name}.database_urls_from: {m}")),
            can_wait,
        )
    };
    let urls = match (&from.value.glob, &from.value.command) {
        (Some(pattern), None) => {
            let pattern = expand(pattern, lookup).map_err(|var| {
                fail(
                    format!("environment variable `{var}` (in its glob) is not set"),
                    true,
                )
            })?;
            if pattern.contains("://") {
                return Err(fail(
                    format!(
                        "glob `{pattern}` is a path pattern of SQLite files (tenants/*.db), not a URL"
                    ),
                    false,
                ));
            }
            glob_urls(&pattern, root).map_err(|m| {
                let can_wait = m.contains("matches no file");
                fail(m, can_wait)
            })?
        }
        (None, Some(command)) => {
            command_urls(command, root, COMMAND_TIMEOUT).map_err(|m| fail(m, true))?
        }
        _ => {
            return Err(fail(
                "expected one of `glob: \"tenants/*.db\"` (SQLite files, relative to the project root) or `command: \"…\"` (prints one database URL a line)".into(),
                false,
            ));
        }
    };
    Ok((urls, loc))
}

/// Ends a timed-out command and everything it started.
fn kill_group(child: &mut std::process::Child) {
    #[cfg(unix)]
    {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", child.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The last few lines of a command's stderr, for an error message.
fn tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.trim().lines().collect();
    let start = lines.len().saturating_sub(5);
    let text = lines[start..].join(" / ");
    match text.char_indices().nth(1000) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waves_start_with_the_canary_and_grow() {
        let w = Waves::default();
        let sizes: Vec<usize> = w.plan(20).iter().map(|r| r.len()).collect();
        assert_eq!(sizes, [1, 2, 4, 8, 5]);
        let w = Waves {
            canary: 3,
            growth: 1,
            ..w
        };
        let sizes: Vec<usize> = w.plan(7).iter().map(|r| r.len()).collect();
        assert_eq!(sizes, [3, 3, 1]);
        assert!(w.plan(0).is_empty());
    }

    #[test]
    fn a_command_that_fails_or_hangs_is_an_error_with_its_stderr() {
        let root = Path::new("/");
        let ok = command_urls(
            "printf 'sqlite://a.db\\n\\n# c\\nsqlite://b.db\\n'",
            root,
            COMMAND_TIMEOUT,
        );
        assert_eq!(ok, Ok(vec!["sqlite://a.db".into(), "sqlite://b.db".into()]));
        let failed = command_urls("echo nope >&2; exit 3", root, COMMAND_TIMEOUT);
        assert!(
            failed
                .as_ref()
                .is_err_and(|e| e.contains("exited with 3") && e.contains("nope")),
            "{failed:?}"
        );
        let empty = command_urls("true", root, COMMAND_TIMEOUT);
        assert!(empty.is_err_and(|e| e.contains("printed no database URL")));
        let started = Instant::now();
        let hung = command_urls("sleep 30 & sleep 30", root, Duration::from_millis(300));
        assert!(hung.is_err_and(|e| e.contains("did not finish within")));
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
