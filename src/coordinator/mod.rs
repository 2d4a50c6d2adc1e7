//! The only code that turns core's operations into network calls: clients of nodes, and the
//! put/get drivers that run stripes against a placement.

pub mod client;

pub use client::{BlockResult, NodeClient, ShardUpload};
