//! licet-agent (see ARCHITECTURE.md).
#![forbid(unsafe_code)]
