//! Disaster recovery: a new gateway from the surviving foreign sites and the master key.

pub mod live;
pub mod record;
