//! Identifiers. Newtypes, never aliases, so a shard index cannot be passed where a site is meant.

use rkyv::{Archive, Deserialize, Serialize};
use std::fmt;

/// Opaque id of an object (bucket, key): a keyed BLAKE3 hash under the cluster's naming key.
///
/// Nodes store everything under this id and never see the name behind it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Archive, Serialize, Deserialize)]
pub struct ObjectId(pub [u8; 32]);

impl ObjectId {
    /// The id of `(bucket, key)` under `naming_key`.
    ///
    /// Both names are length-prefixed, so `("ab", "c")` and `("a", "bc")` differ.
    pub fn derive(naming_key: &NamingKey, bucket: &str, key: &str) -> Self {
        let mut h = blake3::Hasher::new_keyed(&naming_key.0);
        h.update(&(bucket.len() as u64).to_le_bytes());
        h.update(bucket.as_bytes());
        h.update(&(key.len() as u64).to_le_bytes());
        h.update(key.as_bytes());
        Self(*h.finalize().as_bytes())
    }

    /// Lower-case hex, as used in logs and file names.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({})", &self.to_hex()[..16])
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The key under which object ids are derived. Derived from the manifest key, so it survives
/// master-key rotation (object ids never change).
#[derive(Clone)]
pub struct NamingKey(pub(crate) [u8; 32]);

impl fmt::Debug for NamingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NamingKey(..)")
    }
}

/// Position of a shard within a stripe: `0..k` are data shards, `k..k+m` parity shards.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Archive, Serialize, Deserialize,
)]
pub struct ShardIndex(pub u8);

/// A site: one data centre, in one jurisdiction.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Archive, Serialize, Deserialize,
)]
pub struct SiteId(pub u16);

/// A storage node (one `exclaved` process in the node role).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Archive, Serialize, Deserialize,
)]
pub struct NodeId(pub u32);

/// A disk (data directory) of a node, unique within the layout.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Archive, Serialize, Deserialize,
)]
pub struct DiskId(pub u32);

/// A gateway; breaks ties between versions stamped in the same millisecond.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Archive, Serialize, Deserialize,
)]
pub struct GatewayId(pub u32);

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// A 32-byte key from 64 hex digits (whitespace around them ignored).
pub fn key_from_hex(s: &str) -> Option<[u8; 32]> {
    unhex(s.trim())?.try_into().ok()
}

/// Bytes from hex digits (either case); `None` if `s` is not an even run of them.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
