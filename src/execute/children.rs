//! The programs phasegate starts on the user's behalf (`backup_command`),
//! kept track of so that an interrupted run (Ctrl-C) can end them rather
//! than leave them running on their own: a dump still writing beside the
//! one the next `backup` starts.
//!
//! Each runs in a process group of its own (a shell command's children
//! too), recorded here while it runs; [`end_children`] sends each group
//! SIGTERM.

use std::sync::Mutex;

/// The process groups of the programs running now.
static RUNNING: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Records a program started in its own process group `pgid`; it is
/// forgotten when the returned guard drops (the program ended).
pub(crate) fn track(pgid: u32) -> Tracked {
    if let Ok(mut r) = RUNNING.lock() {
        r.push(pgid);
    }
    Tracked(pgid)
}

/// Forgets its program when dropped.
pub(crate) struct Tracked(u32);

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Ok(mut r) = RUNNING.lock() {
            r.retain(|p| *p != self.0);
        }
    }
}

/// Ends every program phasegate started that still runs (SIGTERM to its
/// process group), for a run that is being interrupted. Returns how many
/// it signalled. Off Unix it does nothing.
pub fn end_children() -> usize {
    let groups: Vec<u32> = match RUNNING.lock() {
        Ok(r) => r.clone(),
        Err(_) => return 0,
    };
    if !cfg!(unix) {
        return 0;
    }
    groups
        .iter()
        .filter(|pgid| {
            std::process::Command::new("kill")
                .args(["-TERM", "--", &format!("-{pgid}")])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .count()
}
