//! exclave: a data embassy. See `docs/architecture.md` for the codemap.
//!
//! Who may call whom: `core` uses nothing else in the crate; `net` and `store` use only
//! `core`; only `coordinator` turns core's operations into network calls; `node` serves them;
//! `setup` writes new clusters; only `main.rs` reads the environment and installs signal
//! handlers.

pub mod admin;
pub mod config;
pub mod coordinator;
pub mod core;
pub mod custody;
pub mod dev;
pub mod gateway;
pub mod meta;
pub mod metrics;
pub mod net;
pub mod node;
pub mod notify;
pub mod recovery;
pub mod relayout;
pub mod setup;
pub mod store;

#[cfg(test)]
mod fixtures;
