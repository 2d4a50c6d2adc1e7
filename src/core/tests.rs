//! Property, table and robustness tests of the core. Everything here is pure and fast.

pub(crate) mod format_robustness;
mod layout_table;
mod quorum_sim;
mod stripe_props;

use crate::core::hlc::Version;
use crate::core::ids::{GatewayId, ObjectId};

pub(super) use crate::core::rng::SplitMix as TestRng;

pub(super) fn version(ms: u64) -> Version {
    Version {
        physical_ms: ms,
        logical: 3,
        gateway: GatewayId(9),
    }
}

pub(super) fn oid(b: u8) -> ObjectId {
    ObjectId([b; 32])
}
mod layout_probe;
