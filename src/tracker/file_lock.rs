//! The environment lock of a SQLite database: an advisory `flock` on the
//! database file itself, so that every path reaching one file (a symlink, a
//! hard link, `./a/../app.db`) takes one lock, and nothing is created next
//! to the database.
//!
//! `flock` (std's [`File::try_lock`] on Unix) and SQLite's own POSIX
//! `fcntl` byte-range locks are independent on Linux and macOS, so holding
//! this lock leaves the database writable by the application and by
//! phasegate's own connection. (On NFS, Linux emulates `flock` with `fcntl`,
//! where it would conflict with SQLite's locks; SQLite on NFS is unsafe
//! anyway.) The lock dies with the process: a killed run never leaves it
//! held.
//!
//! Closing any descriptor of a file drops every POSIX lock the process
//! holds on it, SQLite's included. So the descriptor opened for the lock is
//! never closed while the process lives: one per database file (by device
//! and inode), kept in a process-wide table and reused. A flag in that table
//! makes two stores of one process exclude each other too (a `flock` on one
//! open file description would be shared by both).

use std::collections::HashMap;
use std::fs::{File, TryLockError};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// A database file's identity: (device, inode).
type FileId = (u64, u64);

struct Entry {
    file: Arc<File>,
    held: bool,
}

fn table() -> MutexGuard<'static, HashMap<FileId, Entry>> {
    static TABLE: OnceLock<Mutex<HashMap<FileId, Entry>>> = OnceLock::new();
    TABLE
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The lock on one database file, held until dropped.
#[derive(Debug)]
pub(super) struct FileLock {
    id: FileId,
}

/// Tries once to take the lock on the file at `path` (following symlinks):
/// `Ok(None)` when another process, or another store of this one, holds it.
/// Errors are the file's: it does not exist or cannot be opened for reading.
pub(super) fn try_lock(path: &Path) -> std::io::Result<Option<FileLock>> {
    let meta = std::fs::metadata(path)?;
    let id = (meta.dev(), meta.ino());
    let mut table = table();
    let entry = match table.get_mut(&id) {
        Some(entry) => entry,
        None => {
            let file = File::open(path)?;
            table.entry(id).or_insert(Entry {
                file: Arc::new(file),
                held: false,
            })
        }
    };
    if entry.held {
        return Ok(None);
    }
    match entry.file.try_lock() {
        Ok(()) => {
            entry.held = true;
            Ok(Some(FileLock { id }))
        }
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let mut table = table();
        if let Some(entry) = table.get_mut(&self.id) {
            // Best effort: the lock ends with the process in any case.
            let _ = entry.file.unlock();
            entry.held = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_paths_of_one_file_take_one_lock() -> std::io::Result<()> {
        let dir = std::env::temp_dir().join(format!("pg-flock-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let db = dir.join("a.db");
        std::fs::write(&db, b"")?;
        let hard = dir.join("b.db");
        let _ = std::fs::remove_file(&hard);
        std::fs::hard_link(&db, &hard)?;
        let first = try_lock(&db)?;
        assert!(first.is_some());
        assert!(try_lock(&hard)?.is_none(), "a hard link is the same file");
        assert!(try_lock(&dir.join(".").join("a.db"))?.is_none());
        drop(first);
        assert!(try_lock(&hard)?.is_some(), "released on drop");
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[test]
    fn a_missing_file_is_an_error_and_is_not_created() {
        let path = std::env::temp_dir().join("pg-flock-missing-file.db");
        assert!(try_lock(&path).is_err());
        assert!(!path.exists());
    }
}
