//! Property, table and robustness tests of the core. Everything here is pure and fast.

pub(crate) mod format_robustness;
mod layout_table;
mod stripe_props;

use crate::core::hlc::Version;
use crate::core::ids::{GatewayId, ObjectId};

/// A deterministic generator for test data (SplitMix64).
pub(super) struct TestRng(u64);

impl TestRng {
    pub(super) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub(super) fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    pub(super) fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        self.fill(&mut v);
        v
    }

    /// Random bytes of a random length below `max`.
    pub(super) fn noise(&mut self, max: usize) -> Vec<u8> {
        let len = self.below(max.max(1));
        self.bytes(len)
    }

    /// `count` distinct indices below `n`, in random order.
    pub(super) fn subset(&mut self, n: usize, count: usize) -> Vec<usize> {
        let mut all: Vec<usize> = (0..n).collect();
        for i in 0..count.min(n) {
            let j = i + self.below(n - i);
            all.swap(i, j);
        }
        all.truncate(count);
        all
    }
}

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
