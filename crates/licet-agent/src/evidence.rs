//! Evidence of how late it is: the newest modification time among files the operating system
//! keeps writing. A customer who restores the agent's cache and sets the clock back does not
//! set these back with it (docs/agent.md, "Clock"); see `Policy::observe_time`.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use chrono::{DateTime, Utc};

/// At most this many entries are looked at per place.
const MAX_ENTRIES: usize = 64;

/// A file or directory whose modification time is evidence; a directory counts with its
/// entries `depth` levels deep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    /// The file or directory.
    pub path: PathBuf,
    /// How many levels of a directory's entries count (0: only its own time, which changes
    /// whenever an entry is created or removed).
    pub depth: u32,
}

impl Place {
    /// `path`, `depth` levels deep.
    pub fn new(path: impl Into<PathBuf>, depth: u32) -> Place {
        Place { path: path.into(), depth }
    }
}

/// Places the system writes as it runs: logs, the time-sync daemon's clock file, timer stamps,
/// leases, event logs. Missing or unreadable ones are skipped (a directory that cannot be
/// listed still counts with its own time). Looking at all of them takes tens of microseconds
/// (BENCHMARKS.md).
pub fn system_places() -> Vec<Place> {
    if cfg!(windows) {
        vec![
            Place::new(r"C:\Windows\System32\winevt\Logs", 1),
            Place::new(r"C:\Windows\Prefetch", 0),
            Place::new(r"C:\Windows\Temp", 0),
        ]
    } else if cfg!(target_os = "macos") {
        vec![
            Place::new("/private/var/log", 1),
            Place::new("/private/var/db/diagnostics/Persist", 1),
            Place::new("/private/tmp", 0),
        ]
    } else {
        vec![
            // systemd-timesyncd stamps this at every synchronisation and at shutdown, for the
            // very purpose of keeping the clock from going back across boots.
            Place::new("/var/lib/systemd/timesync/clock", 0),
            // chrony's drift file, rewritten hourly while it runs.
            Place::new("/var/lib/chrony", 1),
            // journald writes <machine-id>/system.journal as it logs.
            Place::new("/var/log/journal", 2),
            Place::new("/var/log", 1),
            Place::new("/var/lib/systemd/timers", 1),
            Place::new("/var/lib/dhcp", 1),
            Place::new("/var/tmp", 0),
            Place::new("/tmp", 0),
        ]
    }
}

/// The newest modification time among `places`, and the file that has it; `None` if none
/// could be read. Each place looks at 64 entries at most.
pub fn newest(places: &[Place]) -> Option<(DateTime<Utc>, PathBuf)> {
    places
        .iter()
        .filter_map(|p| newest_in(&p.path, p.depth, &mut { MAX_ENTRIES }))
        .max_by_key(|(time, _)| *time)
        .map(|(time, path)| (DateTime::<Utc>::from(time), path))
}

fn newest_in(path: &Path, depth: u32, budget: &mut usize) -> Option<(SystemTime, PathBuf)> {
    if *budget == 0 {
        return None;
    }
    *budget -= 1;
    // Links are not followed: their targets are not the system's own writing.
    let meta = std::fs::symlink_metadata(path).ok()?;
    let mut newest = meta.modified().ok().map(|t| (t, path.to_owned()));
    if meta.is_dir() && depth > 0 {
        // One we may not list (the journal, for most users) still counts with its own time.
        for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
            if *budget == 0 {
                break;
            }
            if let Some(found) = newest_in(&entry.path(), depth - 1, budget)
                && newest.as_ref().is_none_or(|(t, _)| found.0 > *t)
            {
                newest = Some(found);
            }
        }
    }
    newest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path, unix: u64) -> std::io::Result<()> {
        std::fs::write(path, b"x")?;
        let time = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(unix);
        std::fs::File::options().write(true).open(path)?.set_modified(time)
    }

    #[test]
    fn the_newest_file_two_levels_deep_counts_and_missing_paths_do_not() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let a = dir.path().join("a");
        std::fs::create_dir_all(a.join("b/c"))?;
        touch(&a.join("old"), 1_000_000_000)?;
        touch(&a.join("b/newer"), 2_000_000_000)?;
        touch(&a.join("b/c/too-deep"), 3_000_000_000)?;
        for d in [a.join("b"), a.join("b/c"), a.clone()] {
            std::fs::File::open(&d)?.set_modified(SystemTime::UNIX_EPOCH)?;
        }
        let found = newest(&[Place::new(&a, 2), Place::new(dir.path().join("missing"), 2)]);
        assert_eq!(found.map(|(t, p)| (t.timestamp(), p)), Some((2_000_000_000, a.join("b/newer"))));
        assert_eq!(newest(&[Place::new(&a, 1)]).map(|(t, _)| t.timestamp()), Some(1_000_000_000));
        assert_eq!(newest(&[Place::new(dir.path().join("missing"), 0)]), None);
        assert_eq!(newest(&[]), None);
        Ok(())
    }
}
