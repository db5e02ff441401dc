//! The files `lint` reads from the paths it is given: regular files only,
//! each once, folders walked once (docs/lint.md, "Usage").

use std::path::{Path, PathBuf};

use super::LintError;

/// The files found so far, and the canonical paths of the files and
/// folders already taken (so a file reached twice, or a folder reached
/// through a symlink loop, is taken once).
#[derive(Default)]
pub(super) struct Walk {
    pub(super) files: Vec<PathBuf>,
    seen: std::collections::HashSet<PathBuf>,
    pub(super) seen_error: bool,
}

impl Walk {
    pub(super) fn file(
        &mut self,
        path: &Path,
        meta: &std::fs::Metadata,
        errors: &mut Vec<LintError>,
    ) {
        if !meta.is_file() {
            self.seen_error = true;
            errors.push(LintError::NotAFile {
                path: path.to_path_buf(),
            });
            return;
        }
        let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if self.seen.insert(key) {
            self.files.push(path.to_path_buf());
        }
    }

    pub(super) fn dir(&mut self, dir: &Path, errors: &mut Vec<LintError>) {
        let key = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        if !self.seen.insert(key) {
            return;
        }
        let entries: std::io::Result<Vec<PathBuf>> = std::fs::read_dir(dir).and_then(|rd| {
            rd.map(|e| e.map(|e| e.path()))
                .collect::<std::io::Result<Vec<PathBuf>>>()
        });
        let mut entries = match entries {
            Ok(e) => e,
            Err(source) => {
                self.seen_error = true;
                errors.push(LintError::Read {
                    path: dir.to_path_buf(),
                    source,
                });
                return;
            }
        };
        entries.sort();
        for p in entries {
            // `metadata` follows symlinks: a link to a folder is walked
            // (once), a link to a pipe is reported like the pipe.
            let meta = match std::fs::metadata(&p) {
                Ok(m) => m,
                Err(source) => {
                    if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("sql")) {
                        self.seen_error = true;
                        errors.push(LintError::Read { path: p, source });
                    }
                    continue;
                }
            };
            if meta.is_dir() {
                self.dir(&p, errors);
            } else if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("sql")) {
                self.file(&p, &meta, errors);
            }
        }
    }
}
