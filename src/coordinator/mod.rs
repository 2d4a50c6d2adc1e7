//! The only code that turns core's operations into network calls: clients of nodes, and the
//! drivers that run the write quorum and hedged reads of `core::ops` against a placement.

pub mod buffers;
pub mod client;
mod drive;
mod link;
pub mod object;
pub mod repair;
pub mod withdraw;

pub use client::{BlockResult, NodeClient, ShardUpload};
pub use drive::{Nodes, PutError, PutReport, ReadError, ShardTarget, StripeSink};
pub use object::{ObjectReader, Objects};
