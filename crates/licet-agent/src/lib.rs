//! The licet agent: what runs on the customer's machine.
//!
//! A vendor's program builds an [`Agent`] with the license servers' URLs, a data directory and
//! the vendor's public key, and gates a feature with one call:
//!
//! ```no_run
//! # fn main() -> Result<(), licet_agent::Error> {
//! let agent = licet_agent::Agent::new(
//!     licet_agent::AgentConfig::new("https://lic.example.com", "/var/lib/myapp/licet")
//!         .trust("89ca1ac1770dbb956f8cf5bc014c7e3947485bc797df89c69e089f3af2bcc5ac"),
//! )?;
//! if agent.check("call-journal").is_ok() {
//!     // the feature is licensed on this host
//! }
//! # Ok(()) }
//! ```
//!
//! Checks answer from a cached, signed token while it is fresh (no network, no signature check
//! after the first in a process), refresh it from the server at the product's refresh interval
//! or half the lease, whichever comes first, and keep passing from the cache while no server can
//! be reached — until the lease ends. Every decision is made by the core's
//! [`Policy`](licet_core::agent::Policy); this crate reads the cache, talks HTTP and writes what
//! the policy says. The blocking HTTP client (ureq, rustls) needs no async runtime in the host
//! program, and the library never reads the environment.
#![forbid(unsafe_code)]

mod agent;
pub mod cli;
mod client;
mod commands;
mod config;
mod error;
pub mod evidence;
pub mod fingerprint;
mod floating;
pub mod request;
#[cfg(feature = "service")]
pub mod service;

pub use agent::{Agent, Grant, ProductVerdict, Source};
pub use commands::RegistrationForm;
pub use config::AgentConfig;
pub use error::Error;
pub use floating::Session;
pub use licet_wire::LicenseObject;
pub use request::{Answer, Request};
