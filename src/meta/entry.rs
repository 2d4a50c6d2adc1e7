//! An index entry: one version of a key, as the `objects` table (current versions) and the
//! `versions` table (every version) hold it.

use super::MetaError;
use crate::core::format::Versioning;
use crate::core::hlc::Version;

/// The current version of one key, as listings need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Current version (its identity).
    pub version: Version,
    /// Its commit order: the newest version of a key is the one with the highest.
    pub order: Version,
    /// Plaintext size.
    pub size: u64,
    /// S3 ETag (without quotes).
    pub etag: String,
    /// Last-Modified, ms since the epoch.
    pub modified_ms: u64,
    /// The current version is a delete.
    pub deleted: bool,
    /// The bucket's versioning when the version was written.
    pub written_under: Versioning,
    /// Removed by a DELETE of its version id: kept so that a stale copy found later does
    /// not bring it back, listed and served by nobody.
    pub removed: bool,
    /// Under object lock until then (ms since the epoch; `u64::MAX` while a legal hold is
    /// on), for the counts of `exclave status`. Removals read the manifest, never this.
    pub locked_until: Option<u64>,
    /// Its object tags, in their stored form (`core::tags`; empty: none), for lifecycle
    /// filters and policy conditions.
    pub tags: String,
}

/// Flag bit of an entry's flags byte (bit 0: deleted; bits 1-2: written under Unversioned 0,
/// Enabled 1, Suspended 2; bit 3: removed): the commit order follows (entries written before
/// versions had an order of their own lack it; their order is their version, and they were
/// unversioned).
const ENTRY_HAS_ORDER: u8 = 0x80;
/// Flag bit: the version was removed.
const ENTRY_REMOVED: u8 = 0x08;
/// Flag bit: `locked_until` follows the order (8 bytes, LE).
const ENTRY_LOCKED: u8 = 0x10;
/// Flag bit: the tags follow (u16 LE length, then the stored form).
const ENTRY_TAGGED: u8 = 0x20;

impl Entry {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(16 + 8 + 8 + 1 + 16 + self.etag.len());
        v.extend_from_slice(&self.version.to_bytes());
        v.extend_from_slice(&self.size.to_le_bytes());
        v.extend_from_slice(&self.modified_ms.to_le_bytes());
        let under = match self.written_under {
            Versioning::Unversioned => 0,
            Versioning::Enabled => 1,
            Versioning::Suspended => 2,
        };
        let removed = if self.removed { ENTRY_REMOVED } else { 0 };
        let locked = if self.locked_until.is_some() {
            ENTRY_LOCKED
        } else {
            0
        };
        // Tags longer than a u16 cannot be: 10 tags of at most 128 + 256 characters.
        let tags = u16::try_from(self.tags.len()).ok().filter(|&n| n > 0);
        let tagged = if tags.is_some() { ENTRY_TAGGED } else { 0 };
        v.push(u8::from(self.deleted) | under << 1 | removed | locked | tagged | ENTRY_HAS_ORDER);
        v.extend_from_slice(&self.order.to_bytes());
        if let Some(t) = self.locked_until {
            v.extend_from_slice(&t.to_le_bytes());
        }
        if let Some(n) = tags {
            v.extend_from_slice(&n.to_le_bytes());
            v.extend_from_slice(self.tags.as_bytes());
        }
        v.extend_from_slice(self.etag.as_bytes());
        v
    }

    pub(super) fn decode(b: &[u8]) -> Result<Self, MetaError> {
        fn at<const N: usize>(b: &[u8], from: usize) -> Result<[u8; N], MetaError> {
            b.get(from..from + N)
                .and_then(|s| s.try_into().ok())
                .ok_or(MetaError::Malformed)
        }
        let version = Version::from_bytes(at(b, 0)?);
        let [flags] = at::<1>(b, 32)?;
        let (order, mut etag_at) = if flags & ENTRY_HAS_ORDER != 0 {
            (Version::from_bytes(at(b, 33)?), 49)
        } else {
            (version, 33)
        };
        let locked_until = if flags & ENTRY_LOCKED != 0 {
            let t = u64::from_le_bytes(at(b, etag_at)?);
            etag_at += 8;
            Some(t)
        } else {
            None
        };
        let tags = if flags & ENTRY_TAGGED != 0 {
            let n = usize::from(u16::from_le_bytes(at(b, etag_at)?));
            let t = b
                .get(etag_at + 2..etag_at + 2 + n)
                .ok_or(MetaError::Malformed)?;
            etag_at += 2 + n;
            String::from_utf8(t.to_vec()).map_err(|_| MetaError::Malformed)?
        } else {
            String::new()
        };
        Ok(Self {
            version,
            order,
            size: u64::from_le_bytes(at(b, 16)?),
            modified_ms: u64::from_le_bytes(at(b, 24)?),
            deleted: flags & 1 != 0,
            removed: flags & ENTRY_REMOVED != 0,
            locked_until,
            tags,
            written_under: match (flags >> 1) & 3 {
                0 => Versioning::Unversioned,
                1 => Versioning::Enabled,
                2 => Versioning::Suspended,
                _ => return Err(MetaError::Malformed),
            },
            etag: String::from_utf8(b.get(etag_at..).ok_or(MetaError::Malformed)?.to_vec())
                .map_err(|_| MetaError::Malformed)?,
        })
    }
}
