//! Errors of opening and maintaining stores. Failures inside a command's transaction are
//! reported as the core's [`licet_core::Error::Internal`] (code 1099) instead.

use std::path::PathBuf;

/// Why a store or cache cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The embedded database failed.
    #[error("storage at {path}: {message}")]
    Storage {
        /// The store's directory.
        path: PathBuf,
        /// What the database said.
        message: String,
    },
    /// The database's files are damaged (sled reports corruption).
    #[error("storage at {path} is damaged: {message}")]
    Corrupt {
        /// The store's directory.
        path: PathBuf,
        /// What the database said.
        message: String,
    },
    /// The store was written by another version of licet.
    #[error("store at {path} has schema version {found}, this build reads version {expected}")]
    UnknownSchema {
        /// The store's directory.
        path: PathBuf,
        /// The version found.
        found: String,
        /// The version this build reads.
        expected: String,
    },
    /// The ledger is missing, or holds fewer commits than were acknowledged: it must not be
    /// served (restore it from a backup).
    #[error("the ledger at {path} is damaged: {message}; restore it from a backup (see docs/operations.md)")]
    Damaged {
        /// The store's directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A backup file that cannot be restored.
    #[error("backup {path} cannot be restored: {message}")]
    BadBackup {
        /// The backup file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The store was written by a newer release of licet: this one must not touch it.
    #[error(
        "store at {path} was written by a newer release of licet (schema {found}); run that release or a newer one"
    )]
    NewerSchema {
        /// The store's directory.
        path: PathBuf,
        /// The schema found.
        found: String,
    },
    /// The PostgreSQL database cannot be used.
    #[error("database {database}: {message}")]
    Database {
        /// The database, without its password.
        database: String,
        /// What failed.
        message: String,
    },
    /// Another process holds the store and did not let go in time.
    #[error("store at {path} is locked by another process")]
    Locked {
        /// The store's directory.
        path: PathBuf,
    },
}

impl Error {
    pub(crate) fn storage(path: &std::path::Path, e: impl std::fmt::Display) -> Error {
        Error::Storage { path: path.to_owned(), message: e.to_string() }
    }
}

impl From<Error> for licet_core::Error {
    fn from(e: Error) -> licet_core::Error {
        licet_core::Error::Internal(e.to_string())
    }
}
