//! The server's clock: the system's, or with `--dev-clock` one that tests can move.

use std::sync::RwLock;

use chrono::{DateTime, Duration, Utc};

/// Where `now` comes from.
#[derive(Debug)]
pub(crate) struct Clock {
    /// `Some` in dev mode: the offset added to the system time.
    offset: Option<RwLock<Duration>>,
}

impl Clock {
    /// The system clock.
    pub(crate) fn system() -> Clock {
        Clock { offset: None }
    }

    /// A movable clock (`serve --dev-clock`), starting at system time.
    pub(crate) fn dev() -> Clock {
        Clock { offset: Some(RwLock::new(Duration::zero())) }
    }

    /// Whether the clock can be moved.
    pub(crate) fn is_dev(&self) -> bool {
        self.offset.is_some()
    }

    /// The current time.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        let system = Utc::now();
        match &self.offset {
            None => system,
            Some(offset) => system + *offset.read().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// Moves a dev clock so that it reads `now` (and keeps running from there). Returns false
    /// for the system clock.
    pub(crate) fn set(&self, now: DateTime<Utc>) -> bool {
        match &self.offset {
            None => false,
            Some(offset) => {
                *offset.write().unwrap_or_else(|e| e.into_inner()) = now - Utc::now();
                true
            }
        }
    }
}
