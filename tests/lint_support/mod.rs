//! Helpers shared by tests/lint.rs, tests/lint_convert.rs and tests/lint_squawk.rs:
//! the corpus, running the binary, a scratch folder, the findings of a folder.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A folder of its own under the system's temp folder, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> std::io::Result<TempDir> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "phasegate-lint-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lint_corpus")
}

pub fn phasegate(args: &[&str], cwd: &Path) -> std::io::Result<Output> {
    Command::new(env!("CARGO_BIN_EXE_phasegate"))
        .args(args)
        .current_dir(cwd)
        .output()
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// (rule, line, column) of each finding that is not accepted.
pub type Found = Vec<(String, u64, u64)>;

/// The open findings of a whole dialect folder, file by file (paths relative to it).
pub fn lint_folder(
    dialect: &str,
) -> Result<(BTreeMap<String, Found>, i32), Box<dyn std::error::Error>> {
    let o = phasegate(
        &["lint", "--dialect", dialect, "--format", "json", dialect],
        &corpus(),
    )?;
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout)
        .map_err(|e| format!("{e}: {}{}", text(&o.stdout), text(&o.stderr)))?;
    let strip = |f: &str| f.trim_start_matches(&format!("{dialect}/")).to_string();
    let mut by_file: BTreeMap<String, Found> = BTreeMap::new();
    for f in doc["files"].as_array().ok_or("files")? {
        by_file.insert(strip(f.as_str().ok_or("file")?), Vec::new());
    }
    for f in doc["findings"].as_array().ok_or("findings")? {
        if f.get("accepted").is_some() {
            continue;
        }
        by_file
            .entry(strip(f["file"].as_str().ok_or("file")?))
            .or_default()
            .push((
                f["rule"].as_str().ok_or("rule")?.to_string(),
                f["line"].as_u64().ok_or("line")?,
                f["column"].as_u64().ok_or("column")?,
            ));
    }
    Ok((by_file, o.status.code().unwrap_or(-1)))
}

/// A file's expected findings: (rule, line, column).
pub type Expect<'a> = (&'a str, &'a [(&'a str, u64, u64)]);

pub fn expected(table: &[Expect]) -> BTreeMap<String, Found> {
    table
        .iter()
        .map(|(file, found)| {
            (
                file.to_string(),
                found
                    .iter()
                    .map(|(r, l, c)| (r.to_string(), *l, *c))
                    .collect(),
            )
        })
        .collect()
}
