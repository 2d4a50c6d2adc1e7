//! Property, table and robustness tests of the core. Everything here is pure and fast.

mod backlog_sim;
mod collect;
pub(crate) mod format_robustness;
mod layout_table;
mod lifecycle;
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

/// The seeds a simulation runs: `EXCLAVE_SIM_SEED=N` replays one; else `EXCLAVE_SIM_SEEDS`
/// (default 2000) from 0.
pub(super) fn sim_seeds() -> Vec<u64> {
    match std::env::var("EXCLAVE_SIM_SEED") {
        Ok(s) => vec![s.parse().expect("EXCLAVE_SIM_SEED: a number")],
        Err(_) => {
            let n = std::env::var("EXCLAVE_SIM_SEEDS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(2000);
            (0..n).collect()
        }
    }
}

/// Fails with the first few failing seeds' reports, if any.
pub(super) fn no_failures(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{}",
        failures[..failures.len().min(5)].join("\n\n")
    );
}
