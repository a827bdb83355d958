//! licet-store (see ARCHITECTURE.md).
#![forbid(unsafe_code)]
