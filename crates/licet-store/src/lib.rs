//! Durable storage for licet.
//!
//! * [`Store`]: the server's ledger. A command runs in a transaction that reads only the records it
//!   touches and commits atomically; [`SledStore`] answers only after the change is on disk, with
//!   concurrent commits sharing one flush (group commit). [`MemStore`] is the in-memory reference
//!   implementation; both pass the same test suite.
//! * [`AgentCache`]: the agent's cache of tokens, registration number and clock marks in one
//!   file, read without a lock by any number of processes, never trusted (tokens are verified
//!   on every load); it imports release 0.1.0's cache once.
//! * [`PgStore`]: the ledger and the servers' shared state in PostgreSQL, for a cluster of
//!   servers on one database.
//! * [`backup`]: a consistent copy of a running [`SledStore`] in one checked file, and its
//!   restore.
#![forbid(unsafe_code)]

pub mod backup;
mod cache;
mod email_index;
mod error;
mod group_commit;
mod legacy_cache;
mod mem;
mod os;
pub mod pg;
mod sled_store;
mod store;

pub use backup::BackupFacts;
pub use cache::{AgentCache, CACHE_FORMAT, CacheError};
pub use error::Error;
pub use mem::MemStore;
pub use os::OsEntropy;
pub use pg::{Decided, PgOptions, PgStore};
pub use sled_store::{Pending, SCHEMA_VERSION, SledOptions, SledStore};
pub use store::{Store, StoreExt};
