//! Catalog checkpoints: a Merkle root over the current version of every key, signed with a key
//! derived from the master key and chained to the previous checkpoint. The gateway stores them
//! at every node; a recovery verifies what it rebuilt against the newest one, and a site whose
//! newest checkpoint is older than the others' was rolled back.
//!
//! What a checkpoint covers: every key whose current version at the gateway is at most
//! `cutoff`, as (object id, version, deleted). `cutoff` is below every version a write still in
//! flight will commit, so nothing committed later can be older than it. Keys whose current
//! version is newer than `cutoff` are listed in `excluded` (their earlier version is not known
//! to the index): a recovery leaves them out too.
//!
//! Layout, little-endian, signed over everything before the signature:
//! `"EXCP"`, format u8 = 1, seq u64, created_ms u64, cutoff (16-byte version), leaves u64,
//! root [32], prev [32] (BLAKE3 of the previous checkpoint's bytes, zero for the first),
//! excluded count u32, excluded object ids [32] each, Ed25519 signature [64].

use crate::core::hlc::Version;
use crate::core::ids::ObjectId;

const MAGIC: &[u8; 4] = b"EXCP";
const FORMAT: u8 = 1;
/// Most excluded keys a checkpoint may list.
pub const MAX_EXCLUDED: usize = 1 << 20;
const FIXED: usize = 4 + 1 + 8 + 8 + 16 + 8 + 32 + 32 + 4;
const SIG: usize = 64;

/// Why bytes are not a checkpoint.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CatalogError {
    /// Wrong magic, format, length or count.
    #[error("not a catalog checkpoint: {0}")]
    Malformed(&'static str),
}

/// A signed catalog checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// 1 for the first, +1 each.
    pub seq: u64,
    /// Gateway wall clock when made, ms since the epoch.
    pub created_ms: u64,
    /// Versions up to this one are covered.
    pub cutoff: Version,
    /// Keys covered.
    pub leaves: u64,
    /// Merkle root over the covered keys.
    pub root: [u8; 32],
    /// BLAKE3 of the previous checkpoint's bytes (zero for the first).
    pub prev: [u8; 32],
    /// Keys left out: their current version is newer than `cutoff`.
    pub excluded: Vec<ObjectId>,
    /// Ed25519 over [`Self::signed_bytes`].
    pub signature: [u8; SIG],
}

impl Checkpoint {
    /// What the signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(FIXED + 32 * self.excluded.len());
        v.extend_from_slice(MAGIC);
        v.push(FORMAT);
        v.extend_from_slice(&self.seq.to_le_bytes());
        v.extend_from_slice(&self.created_ms.to_le_bytes());
        v.extend_from_slice(&self.cutoff.to_bytes());
        v.extend_from_slice(&self.leaves.to_le_bytes());
        v.extend_from_slice(&self.root);
        v.extend_from_slice(&self.prev);
        v.extend_from_slice(&(self.excluded.len() as u32).to_le_bytes());
        for id in &self.excluded {
            v.extend_from_slice(&id.0);
        }
        v
    }

    /// The checkpoint's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = self.signed_bytes();
        v.extend_from_slice(&self.signature);
        v
    }

    /// BLAKE3 of the bytes: what the next checkpoint's `prev` names.
    pub fn hash(&self) -> [u8; 32] {
        *blake3::hash(&self.encode()).as_bytes()
    }

    /// Parses untrusted bytes (the signature is checked by the caller, who has the key).
    pub fn decode(b: &[u8]) -> Result<Self, CatalogError> {
        if b.len() < FIXED + SIG {
            return Err(CatalogError::Malformed("too short"));
        }
        if &b[..4] != MAGIC {
            return Err(CatalogError::Malformed("magic"));
        }
        if b[4] != FORMAT {
            return Err(CatalogError::Malformed("unknown format"));
        }
        let u64_at = |o: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(x)
        };
        let mut cutoff = [0u8; 16];
        cutoff.copy_from_slice(&b[21..37]);
        let mut root = [0u8; 32];
        root.copy_from_slice(&b[45..77]);
        let mut prev = [0u8; 32];
        prev.copy_from_slice(&b[77..109]);
        let mut n = [0u8; 4];
        n.copy_from_slice(&b[109..113]);
        let n = u32::from_le_bytes(n) as usize;
        if n > MAX_EXCLUDED || b.len() != FIXED + 32 * n + SIG {
            return Err(CatalogError::Malformed("length"));
        }
        let excluded = b[FIXED..FIXED + 32 * n]
            .chunks_exact(32)
            .map(|c| {
                let mut id = [0u8; 32];
                id.copy_from_slice(c);
                ObjectId(id)
            })
            .collect();
        let mut signature = [0u8; SIG];
        signature.copy_from_slice(&b[b.len() - SIG..]);
        Ok(Self {
            seq: u64_at(5),
            created_ms: u64_at(13),
            cutoff: Version::from_bytes(cutoff),
            leaves: u64_at(37),
            root,
            prev,
            excluded,
            signature,
        })
    }
}

/// The checkpoints among `records` that decode and whose signature `key` verifies; forged,
/// damaged or foreign ones are left out.
pub fn verified<'a>(
    records: &'a [Vec<u8>],
    key: &'a crate::core::keys::CheckpointKey,
) -> impl Iterator<Item = Checkpoint> + 'a {
    records
        .iter()
        .filter_map(|r| Checkpoint::decode(r).ok())
        .filter(|c| key.verify(&c.signed_bytes(), &c.signature))
}

/// The leaf of one key.
pub fn leaf(object: &ObjectId, version: Version, deleted: bool) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(&[0]);
    h.update(&object.0);
    h.update(&version.to_bytes());
    h.update(&[u8::from(deleted)]);
    *h.finalize().as_bytes()
}

/// The Merkle root over leaves sorted by object id (pairs hashed level by level; an odd last
/// node is carried up).
pub fn merkle_root(mut level: Vec<[u8; 32]>) -> [u8; 32] {
    if level.is_empty() {
        return *blake3::hash(b"exclave empty catalog").as_bytes();
    }
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|p| match p {
                [a, b] => {
                    let mut h = blake3::Hasher::new();
                    h.update(&[1]);
                    h.update(a);
                    h.update(b);
                    *h.finalize().as_bytes()
                }
                [a] => *a,
                _ => unreachable!("chunks(2) yields one or two"),
            })
            .collect();
    }
    level[0]
}

/// The root of `(object id, version, deleted)` entries (every version kept), in any order.
pub fn root_of(mut entries: Vec<(ObjectId, Version, bool)>) -> (u64, [u8; 32]) {
    entries.sort_unstable_by_key(|e| (e.0.0, e.1));
    let n = entries.len() as u64;
    (
        n,
        merkle_root(entries.iter().map(|(o, v, d)| leaf(o, *v, *d)).collect()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ids::GatewayId;

    fn v(n: u64) -> Version {
        Version {
            physical_ms: n,
            logical: 0,
            gateway: GatewayId(1),
        }
    }

    fn cp() -> Checkpoint {
        Checkpoint {
            seq: 7,
            created_ms: 99,
            cutoff: v(5),
            leaves: 2,
            root: [3; 32],
            prev: [4; 32],
            excluded: vec![ObjectId([5; 32])],
            signature: [6; 64],
        }
    }

    #[test]
    fn round_trips_and_refuses_damaged_bytes() {
        let b = cp().encode();
        assert_eq!(Checkpoint::decode(&b).unwrap(), cp());
        for cut in 0..b.len() {
            assert!(Checkpoint::decode(&b[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = b.clone();
        long.push(0);
        assert!(Checkpoint::decode(&long).is_err());
        let mut magic = b;
        magic[0] ^= 1;
        assert!(Checkpoint::decode(&magic).is_err());
    }

    #[test]
    fn only_the_master_keys_checkpoint_key_verifies() {
        use crate::core::keys::{CheckpointKey, MasterKey};
        let key = CheckpointKey::of(&MasterKey::from_bytes(1, [1; 32]));
        let mut c = cp();
        c.signature = key.sign(&c.signed_bytes());
        assert!(key.verify(&c.signed_bytes(), &c.signature));
        let other = CheckpointKey::of(&MasterKey::from_bytes(1, [2; 32]));
        assert!(!other.verify(&c.signed_bytes(), &c.signature));
        let mut forged = c;
        forged.seq += 1;
        assert!(!key.verify(&forged.signed_bytes(), &forged.signature));
    }

    #[test]
    fn the_root_depends_on_every_entry_and_not_on_order() {
        let e = |i: u8, n: u64, d: bool| (ObjectId([i; 32]), v(n), d);
        let base = vec![e(1, 1, false), e(2, 2, false), e(3, 3, true)];
        let (n, root) = root_of(base.clone());
        assert_eq!(n, 3);
        let mut rev = base;
        rev.reverse();
        assert_eq!(root_of(rev).1, root);
        for changed in [
            vec![e(1, 1, false), e(2, 9, false), e(3, 3, true)],
            vec![e(1, 1, false), e(2, 2, false), e(3, 3, false)],
            vec![e(1, 1, false), e(2, 2, false)],
            vec![
                e(1, 1, false),
                e(2, 2, false),
                e(3, 3, true),
                e(4, 4, false),
            ],
        ] {
            assert_ne!(root_of(changed).1, root);
        }
        assert_ne!(root_of(Vec::new()).1, root);
    }
}
