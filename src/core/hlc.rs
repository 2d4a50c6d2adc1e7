//! Versions: a hybrid logical clock stamped by a gateway.
//!
//! A [`Version`] orders by (physical milliseconds, logical counter, gateway id), and its 16-byte
//! big-endian encoding sorts the same way, so it can be a database key. The clock never goes
//! backwards: when the wall clock stalls or steps back, the logical counter advances instead.

use crate::core::ids::{GatewayId, ObjectId};
use rkyv::{Archive, Deserialize, Serialize};

/// One version of an object, as stamped by [`Hlc::stamp`].
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Archive, Serialize, Deserialize,
)]
pub struct Version {
    /// Milliseconds since the Unix epoch, as the clock believed them.
    pub physical_ms: u64,
    /// Counter within one physical millisecond.
    pub logical: u32,
    /// The gateway that stamped the version.
    pub gateway: GatewayId,
}

impl Version {
    /// Encoded length.
    pub const LEN: usize = 16;

    /// Big-endian encoding; byte order equals version order.
    pub fn to_bytes(self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[..8].copy_from_slice(&self.physical_ms.to_be_bytes());
        b[8..12].copy_from_slice(&self.logical.to_be_bytes());
        b[12..].copy_from_slice(&self.gateway.0.to_be_bytes());
        b
    }

    /// Inverse of [`Version::to_bytes`].
    pub fn from_bytes(b: [u8; Self::LEN]) -> Self {
        let [
            p0,
            p1,
            p2,
            p3,
            p4,
            p5,
            p6,
            p7,
            l0,
            l1,
            l2,
            l3,
            g0,
            g1,
            g2,
            g3,
        ] = b;
        Self {
            physical_ms: u64::from_be_bytes([p0, p1, p2, p3, p4, p5, p6, p7]),
            logical: u32::from_be_bytes([l0, l1, l2, l3]),
            gateway: GatewayId(u32::from_be_bytes([g0, g1, g2, g3])),
        }
    }
}

/// A hybrid logical clock owned by one gateway.
///
/// Calling contract: pass the current wall-clock time in milliseconds to [`Hlc::stamp`] for each
/// new version, and every version read from elsewhere to [`Hlc::observe`], so that a version
/// stamped here is newer than anything this gateway has seen.
#[derive(Debug, Clone)]
pub struct Hlc {
    gateway: GatewayId,
    last_ms: u64,
    last_logical: u32,
}

impl Hlc {
    /// A clock that has seen nothing yet.
    pub fn new(gateway: GatewayId) -> Self {
        Self {
            gateway,
            last_ms: 0,
            last_logical: 0,
        }
    }

    /// A new version, strictly greater than every version stamped or observed before.
    pub fn stamp(&mut self, wall_ms: u64) -> Version {
        if wall_ms > self.last_ms {
            self.last_ms = wall_ms;
            self.last_logical = 0;
        } else {
            self.bump();
        }
        Version {
            physical_ms: self.last_ms,
            logical: self.last_logical,
            gateway: self.gateway,
        }
    }

    /// Takes a version seen elsewhere into account.
    pub fn observe(&mut self, seen: Version) {
        if (seen.physical_ms, seen.logical) > (self.last_ms, self.last_logical) {
            self.last_ms = seen.physical_ms;
            self.last_logical = seen.logical;
        }
    }

    fn bump(&mut self) {
        match self.last_logical.checked_add(1) {
            Some(l) => self.last_logical = l,
            None => {
                // 2^32 versions within one millisecond: borrow a millisecond from the future.
                self.last_ms = self.last_ms.saturating_add(1);
                self.last_logical = 0;
            }
        }
    }
}

/// The key of an object version in an ordered table: object id (32) ‖ version (16, big-endian),
/// so that an object's versions sort together, oldest first. The node's `manifests` table, its
/// withdrawal ledgers and the gateway's `repairs` and `withdrawals` tables use it, and a
/// withdrawal's proof is taken over it.
pub fn version_key(object: &ObjectId, version: Version) -> [u8; 48] {
    let mut k = [0u8; 48];
    k[..32].copy_from_slice(&object.0);
    k[32..].copy_from_slice(&version.to_bytes());
    k
}

/// The object version a [`version_key`] names (None: not 48 bytes).
pub fn parse_version_key(k: &[u8]) -> Option<(ObjectId, Version)> {
    let (id, ver) = k.split_first_chunk::<32>()?;
    let ver: [u8; Version::LEN] = ver.try_into().ok()?;
    Some((ObjectId(*id), Version::from_bytes(ver)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_goes_backwards_when_the_wall_clock_does() {
        let mut c = Hlc::new(GatewayId(7));
        let mut prev = c.stamp(1_000);
        for wall in [1_000, 999, 500, 0, 1_000, 1_001, 2, 1_001] {
            let v = c.stamp(wall);
            assert!(v > prev, "{v:?} after {prev:?}");
            assert!(v.to_bytes() > prev.to_bytes());
            prev = v;
        }
        assert_eq!(prev.physical_ms, 1_001);
    }

    #[test]
    fn observed_versions_are_exceeded() {
        let mut a = Hlc::new(GatewayId(1));
        let mut b = Hlc::new(GatewayId(2));
        let va = a.stamp(5_000);
        b.observe(va);
        let vb = b.stamp(10); // b's wall clock is far behind
        assert!(vb > va);
    }

    #[test]
    fn gateway_breaks_ties() {
        let v1 = Hlc::new(GatewayId(1)).stamp(42);
        let v2 = Hlc::new(GatewayId(2)).stamp(42);
        assert!(v2 > v1);
        assert_eq!(Version::from_bytes(v2.to_bytes()), v2);
    }

    #[test]
    fn logical_overflow_moves_to_the_next_millisecond() {
        let mut c = Hlc::new(GatewayId(0));
        c.observe(Version {
            physical_ms: 9,
            logical: u32::MAX,
            gateway: GatewayId(3),
        });
        let v = c.stamp(9);
        assert_eq!((v.physical_ms, v.logical), (10, 0));
    }
}
