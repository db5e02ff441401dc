//! (tests) Comparing a runner's export with its golden files under
//! `tests/export_golden/<runner>/<dialect>/`; `PHASEGATE_BLESS=1` rewrites
//! them (and removes golden files the export no longer writes).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::dialect::Dialect;
use crate::export::ExportFile;

fn files_under(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(rel) = p.strip_prefix(dir) {
                out.insert(rel.to_path_buf());
            }
        }
    }
    out
}

/// Panics (the test fails) unless `files` are exactly the golden files of
/// `runner` on `dialect`, byte for byte.
pub(crate) fn check(runner: &str, dialect: Dialect, files: &[ExportFile]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/export_golden")
        .join(runner)
        .join(dialect.name());
    let written: BTreeSet<PathBuf> = files.iter().map(|f| f.path.clone()).collect();
    assert_eq!(
        written.len(),
        files.len(),
        "two files share a path: {written:?}"
    );
    if std::env::var("PHASEGATE_BLESS").as_deref() == Ok("1") {
        for stale in files_under(&dir).difference(&written) {
            std::fs::remove_file(dir.join(stale)).unwrap();
        }
        for f in files {
            let p = dir.join(&f.path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, &f.contents).unwrap();
        }
        return;
    }
    assert_eq!(
        files_under(&dir),
        written,
        "{runner}/{}: the export writes other files than the golden ones (PHASEGATE_BLESS=1 rewrites them)",
        dialect.name()
    );
    for f in files {
        let p = dir.join(&f.path);
        let want = std::fs::read_to_string(&p).unwrap();
        assert!(
            want == f.contents,
            "{} differs from its golden file (PHASEGATE_BLESS=1 rewrites it):\n--- golden\n{want}\n--- written\n{}",
            p.display(),
            f.contents
        );
    }
}
