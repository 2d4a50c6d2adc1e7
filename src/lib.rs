//! exclave: a data embassy. See `docs/architecture.md` for the codemap.
//!
//! Who may call whom: `core` uses nothing else in the crate. Later modules (`net`, `store`,
//! `meta`) use only `core`; only `coordinator` turns core's commands into network calls;
//! `gateway` and `node` never import each other; only `main.rs` reads the environment.

pub mod config;
pub mod core;

#[cfg(test)]
mod fixtures;
