//! The licet license server: the HTTP API of SPEC §5 over the core and the sled store, and
//! the `licet-server` command line of SPEC §6.
//!
//! A thin adapter: each handler parses a request into core types, runs one ledger command in a
//! store transaction on a blocking thread (durable before it answers), signs a token where the
//! command granted a seat, and answers. Errors are `{"error":{"code","name","message"}}` with the
//! status mapped from the code in one place.
#![forbid(unsafe_code)]

mod admin;
mod admin_cli;
mod admin_text;
mod app;
mod backup;
pub mod cli;
mod clock;
mod cluster;
mod connections;
mod data_dir;
mod durability;
mod error;
mod extract;
pub mod keys;
mod mail;
mod metrics;
mod offline;
mod openapi;
mod portal;
mod ratelimit;
mod routes;
mod server;
mod sessions;
mod wire;

pub use cluster::{Migration, init_cluster, migrate};
pub use data_dir::{DataDirError, InitFacts};
pub use server::{Background, Running, ServerConfig, TlsFiles, init, start};
pub use wire::{Endpoint, check_body};
