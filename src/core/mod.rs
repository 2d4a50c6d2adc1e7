//! The sans-IO core: identifiers, the stripe pipeline, formats, versions, layout and keys.
//!
//! Nothing here does I/O, reads a clock or draws randomness: time and random bytes are
//! arguments. Nothing here depends on the rest of the crate.

pub mod access;
pub mod backlog;
pub mod catalog;
pub mod collect;
pub mod cors;
pub mod format;
pub mod hlc;
pub mod ids;
pub mod keys;
pub mod layout;
pub mod lifecycle;
pub mod ops;
pub mod policy;
pub mod quorum;
pub mod record;
pub mod rng;
pub mod ssec;
pub mod stripe;
pub mod tags;
pub mod wire;

#[cfg(test)]
pub(crate) mod tests;
