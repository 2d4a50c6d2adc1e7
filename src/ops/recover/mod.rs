//! Disaster recovery: a new gateway from the surviving foreign sites and the master key.

pub mod census;
pub mod live;
pub mod offline;
