//! Durable storage for licet.
//!
//! * [`Store`]: the server's ledger. A command runs in a transaction that reads only the records it
//!   touches and commits atomically; [`SledStore`] answers only after the change is on disk, with
//!   concurrent commits sharing one flush (group commit). [`MemStore`] is the in-memory reference
//!   implementation; both pass the same test suite.
//! * [`TokenCache`]: the agent's cache of tokens, registration number and clock high-water mark,
//!   safe to share between processes and never trusted (tokens are verified on every load).
#![forbid(unsafe_code)]

mod cache;
mod error;
mod group_commit;
mod mem;
mod sled_store;
mod store;

pub use cache::{CacheContents, TokenCache};
pub use error::Error;
pub use mem::MemStore;
pub use sled_store::{SCHEMA_VERSION, SledOptions, SledStore};
pub use store::{Store, StoreExt};
