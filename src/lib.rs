//! exclave: a data embassy. See `docs/architecture.md` for the codemap.
//!
//! Who may call whom: `core` uses nothing else in the crate; `sys` (machine access) uses
//! nothing of the crate and every layer but `core` may use it; `net` and `store` use only
//! `core`; only `coordinator` turns core's operations into network calls; `node` serves them;
//! `ops` (the operator commands) sits above every layer and no layer imports it; only
//! `main.rs` reads the environment and installs signal handlers.

pub mod admin;
pub mod config;
pub mod coordinator;
pub mod core;
pub mod gateway;
pub mod meta;
pub mod metrics;
pub mod net;
pub mod node;
pub mod notify;
pub mod ops;
pub mod store;
pub mod sys;
pub mod worker;

#[cfg(test)]
mod fixtures;
