//! The outbox: one RFC 5322 `.eml` file per message in `D/outbox/`, written durably (temporary
//! file, fsync, rename, fsync of the directory) for the operator's mail relay to pick up. A
//! message is named after its queue id, so writing it again (after a crash before its queue entry
//! went) replaces it.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

/// The outbox directory.
#[derive(Debug, Clone)]
pub(crate) struct Outbox {
    dir: PathBuf,
}

impl Outbox {
    /// The outbox in `dir` (made when the first message is written).
    pub(crate) fn new(dir: impl AsRef<Path>) -> Outbox {
        Outbox { dir: dir.as_ref().to_owned() }
    }

    /// Writes a formatted message durably and returns its path.
    pub(crate) fn write(&self, message: &[u8], id: &str, date: DateTime<Utc>) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(&self.dir)?;
        let id: String = id.chars().filter(char::is_ascii_alphanumeric).collect();
        let name = format!("{}-{id}.eml", date.format("%Y%m%dT%H%M%S"));
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let path = self.dir.join(&name);
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(message)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(&self.dir)?.sync_all()?;
        Ok(path)
    }
}
