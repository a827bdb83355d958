//! licet — a license engine for software vendors whose modules run on customer machines.
//!
//! This facade re-exports the workspace's crates so that a vendor links one crate:
//! [`core`] is the pure license model (keys, ledger, signed tokens), [`store`] makes it durable,
//! [`server`] serves it over HTTP, [`agent`] checks licenses on the customer's machine.
#![forbid(unsafe_code)]

pub use licet_agent as agent;
pub use licet_core as core;
pub use licet_server as server;
pub use licet_store as store;
