//! The gateway's index: (bucket, key) → current version, in an embedded ordered database
//! (redb), and S3 listing over it. The index is a cache of the manifests at the nodes: it can
//! always be rebuilt from them (newest version wins, whoever applies it first).
//!
//! Keys sort as S3 lists them: by the UTF-8 bytes of the key, within a bucket.

use std::path::Path;
use std::sync::Arc;

use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle,
};

use crate::core::hlc::{Version, version_key};
use crate::core::ids::{hex, unhex};
use crate::sys::group::{Apply, GroupCommit};

const BUCKETS: TableDefinition<'_, &str, u64> = TableDefinition::new("buckets");
const OBJECTS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("objects");
const UPLOADS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("uploads");
const PARTS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("parts");
const REPAIRS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("repairs");
/// Failed writes not yet withdrawn from every node: (object id, version) → the node ids still
/// to confirm, u32 little-endian each.
const WITHDRAWALS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("withdrawals");
/// Facts about the index: `max_version`, the newest commit order ever applied (a recovered or
/// restarted gateway's clock starts past it).
const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
/// Per bucket: live (not deleted) keys and their plaintext bytes, kept with every `apply`
/// (the empty key, a bucket's own record, is not counted).
const COUNTS: TableDefinition<'_, &str, (u64, u64)> = TableDefinition::new("counts");

mod access;
mod config;
mod entry;
mod intents;
mod lost;
mod uploads;
mod versions;
use crate::core::ids::NodeId;
use crate::core::ids::ObjectId;
use crate::core::ops::Pending;
pub use config::{BUCKET_EXTRAS, unconfigured};
pub use entry::Entry;
pub use intents::Intent;
pub use lost::LostRecord;
pub use uploads::{PartRecord, UploadRecord};
pub use versions::{ListedVersion, VersionCounts, VersionMarker, VersionPage, VersionQuery};

/// Errors of the index.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// Database error.
    #[error("index database: {0}")]
    Db(String),
    /// A stored entry does not decode.
    #[error("index entry is malformed")]
    Malformed,
    /// A continuation token we did not issue.
    #[error("invalid continuation token")]
    BadToken,
}

fn db_err(e: impl std::fmt::Display) -> MetaError {
    MetaError::Db(e.to_string())
}

/// What to list (ListObjectsV2 / ListObjects parameters).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Only keys starting with this.
    pub prefix: String,
    /// Roll keys up to the first occurrence of this after the prefix.
    pub delimiter: Option<String>,
    /// Start after this key (exclusive): `start-after` or V1's `marker`.
    pub start_after: Option<String>,
    /// A token from a previous page (takes precedence over `start_after`).
    pub continuation: Option<String>,
    /// Most keys plus common prefixes returned (S3 caps it at 1000).
    pub max_keys: usize,
}

/// One page of a listing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Keys and their entries, in order.
    pub contents: Vec<(String, Entry)>,
    /// Common prefixes, in order.
    pub common_prefixes: Vec<String>,
    /// More follow.
    pub truncated: bool,
    /// Token for the next page (when truncated).
    pub next_token: Option<String>,
    /// The last key or prefix returned (V1's NextMarker).
    pub next_marker: Option<String>,
}

/// The index database's page cache by default, bytes (`[gateway] index_cache_mib`: 64).
pub const DEFAULT_INDEX_CACHE: usize = 64 << 20;

/// The index.
#[derive(Debug)]
pub struct Index {
    db: Arc<Database>,
    /// The writes on the hot path (intents, applied versions) share durable commits.
    group: GroupCommit<bool, MetaError>,
}

fn object_key(bucket: &str, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + bucket.len() + key.len());
    k.extend_from_slice(&(bucket.len() as u16).to_be_bytes());
    k.extend_from_slice(bucket.as_bytes());
    k.extend_from_slice(key.as_bytes());
    k
}

/// The bucket of an `object_key`.
fn bucket_of(k: &[u8]) -> Result<&str, MetaError> {
    let (len, rest) = k.split_at_checked(2).ok_or(MetaError::Malformed)?;
    let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
    let b = rest.get(..len).ok_or(MetaError::Malformed)?;
    std::str::from_utf8(b).map_err(|_| MetaError::Malformed)
}

/// The common prefix `key` rolls up to under `prefix` and `delimiter` (S3's listing rule: up
/// to and including the first delimiter after the prefix), if any.
fn rollup(key: &str, prefix: &str, delimiter: Option<&str>) -> Option<String> {
    let d = delimiter.filter(|d| !d.is_empty())?;
    let rest = key.strip_prefix(prefix)?;
    rest.find(d)
        .map(|i| key[..prefix.len() + i + d.len()].to_string())
}

/// The smallest byte string greater than every string starting with `p`, if any.
fn successor(p: &[u8]) -> Option<Vec<u8>> {
    let mut v = p.to_vec();
    while let Some(last) = v.pop() {
        if last < 0xff {
            v.push(last + 1);
            return Some(v);
        }
    }
    None
}

/// The object version a `version_key` names.
fn parse_version_key(k: &[u8]) -> Result<(ObjectId, Version), MetaError> {
    crate::core::hlc::parse_version_key(k).ok_or(MetaError::Malformed)
}

impl Index {
    /// Opens (or creates) the index at `path`, with the default page cache.
    pub fn open(path: &Path) -> Result<Self, MetaError> {
        Self::open_cached(path, DEFAULT_INDEX_CACHE)
    }

    /// Opens (or creates) the index at `path`, with a page cache of `cache_bytes` (redb's
    /// own default, 1 GiB, fills as the index grows).
    pub fn open_cached(path: &Path, cache_bytes: usize) -> Result<Self, MetaError> {
        Self::open_on(
            Database::builder()
                .set_cache_size(cache_bytes)
                .create(path)
                .map_err(db_err)?,
        )
    }

    /// Opens the index in `db` (the crash tests give one on a simulated disk).
    pub(crate) fn open_on(db: Database) -> Result<Self, MetaError> {
        let txn = db.begin_write().map_err(db_err)?;
        txn.open_table(BUCKETS).map_err(db_err)?;
        txn.open_table(OBJECTS).map_err(db_err)?;
        txn.open_table(UPLOADS).map_err(db_err)?;
        txn.open_table(PARTS).map_err(db_err)?;
        txn.open_table(REPAIRS).map_err(db_err)?;
        txn.open_table(WITHDRAWALS).map_err(db_err)?;
        txn.open_table(lost::UNREBUILDABLE).map_err(db_err)?;
        txn.open_table(intents::INTENTS).map_err(db_err)?;
        txn.open_table(META).map_err(db_err)?;
        txn.open_table(config::BUCKET_CONFIG).map_err(db_err)?;
        txn.open_table(config::BUCKET_LIFECYCLE).map_err(db_err)?;
        txn.open_table(access::ACCESS_KEYS).map_err(db_err)?;
        txn.open_table(config::BUCKET_EXTRA).map_err(db_err)?;
        let listed = txn
            .list_tables()
            .map_err(db_err)?
            .any(|t| t.name() == versions::VERSIONS.name());
        if !listed {
            // An index from before the versions table: each current entry is its key's one
            // (null) version.
            let objects = txn.open_table(OBJECTS).map_err(db_err)?;
            let mut vt = txn.open_table(versions::VERSIONS).map_err(db_err)?;
            for item in objects.iter().map_err(db_err)? {
                let (k, v) = item.map_err(db_err)?;
                let bucket = bucket_of(k.value())?;
                let key = std::str::from_utf8(&k.value()[2 + bucket.len()..])
                    .map_err(|_| MetaError::Malformed)?;
                versions::record(&mut vt, bucket, key, &Entry::decode(v.value())?)?;
            }
        }
        let counted = txn
            .list_tables()
            .map_err(db_err)?
            .any(|t| t.name() == COUNTS.name());
        if !counted {
            // An index from before the counts: count once.
            let objects = txn.open_table(OBJECTS).map_err(db_err)?;
            let mut counts = txn.open_table(COUNTS).map_err(db_err)?;
            for item in objects.iter().map_err(db_err)? {
                let (k, v) = item.map_err(db_err)?;
                let entry = Entry::decode(v.value())?;
                let bucket = bucket_of(k.value())?;
                // The empty key is the bucket's own record, not an object.
                if !entry.deleted && k.value().len() > 2 + bucket.len() {
                    let (n, bytes) = counts
                        .get(bucket)
                        .map_err(db_err)?
                        .map_or((0, 0), |v| v.value());
                    counts
                        .insert(bucket, (n + 1, bytes + entry.size))
                        .map_err(db_err)?;
                }
            }
        }
        txn.commit().map_err(db_err)?;
        let db = Arc::new(db);
        Ok(Self {
            group: GroupCommit::new(db.clone(), MetaError::Db),
            db,
        })
    }

    /// A value kept in the index's own table (the last checkpoint, ...).
    pub fn meta_get(&self, name: &str) -> Result<Option<Vec<u8>>, MetaError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(META).map_err(db_err)?;
        Ok(t.get(name).map_err(db_err)?.map(|v| v.value().to_vec()))
    }

    /// Keeps a value in the index's own table.
    pub fn meta_set(&self, name: &str, value: &[u8]) -> Result<(), MetaError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = txn.open_table(META).map_err(db_err)?;
            t.insert(name, value).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }

    /// Calls `f(bucket, key, entry)` for every entry (bucket records and hidden buckets
    /// included), from one consistent snapshot.
    pub fn for_each_entry(&self, mut f: impl FnMut(&str, &str, &Entry)) -> Result<(), MetaError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(OBJECTS).map_err(db_err)?;
        for item in t.iter().map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            let k = k.value();
            let bucket = bucket_of(k)?;
            let key =
                std::str::from_utf8(&k[2 + bucket.len()..]).map_err(|_| MetaError::Malformed)?;
            f(bucket, key, &Entry::decode(v.value())?);
        }
        Ok(())
    }

    /// The newest commit order ever applied (no version of any key is newer: a version is
    /// stamped before its order).
    pub fn max_order(&self) -> Result<Option<Version>, MetaError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(META).map_err(db_err)?;
        Ok(t.get("max_version")
            .map_err(db_err)?
            .and_then(|v| <[u8; 16]>::try_from(v.value()).ok())
            .map(Version::from_bytes))
    }

    /// Per bucket (hidden ones included): live keys and their plaintext bytes.
    pub fn counts(&self) -> Result<Vec<(String, u64, u64)>, MetaError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(COUNTS).map_err(db_err)?;
        let mut out = Vec::new();
        for item in t.iter().map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            let (n, bytes) = v.value();
            out.push((k.value().to_string(), n, bytes));
        }
        Ok(out)
    }

    /// The creation time of a bucket, if it exists.
    pub fn bucket(&self, bucket: &str) -> Result<Option<u64>, MetaError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(BUCKETS).map_err(db_err)?;
        Ok(t.get(bucket).map_err(db_err)?.map(|v| v.value()))
    }

    /// Records that shards of an acknowledged object version are missing (the write quorum was
    /// met without them), for repair to rebuild.
    pub fn record_repair(
        &self,
        object: &ObjectId,
        version: Version,
        shards: &[usize],
    ) -> Result<(), MetaError> {
        let k = version_key(object, version);
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = txn.open_table(REPAIRS).map_err(db_err)?;
            // Merged with what is already recorded for the version.
            let mut v: Vec<u8> = t
                .get(&k[..])
                .map_err(db_err)?
                .map(|old| old.value().to_vec())
                .unwrap_or_default();
            v.extend(shards.iter().map(|&s| s as u8));
            v.sort_unstable();
            v.dedup();
            t.insert(&k[..], &v[..]).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }

    /// Forgets a repair record (the shards were rebuilt).
    pub fn repair_done(&self, object: &ObjectId, version: Version) -> Result<(), MetaError> {
        let k = version_key(object, version);
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = txn.open_table(REPAIRS).map_err(db_err)?;
            t.remove(&k[..]).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }

    /// Object versions with missing shards: (object id, version, shard indices).
    pub fn repairs(&self) -> Result<Vec<(ObjectId, Version, Vec<usize>)>, MetaError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(REPAIRS).map_err(db_err)?;
        let mut out = Vec::new();
        for item in t.iter().map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            let (object, version) = parse_version_key(k.value())?;
            out.push((
                object,
                version,
                v.value().iter().map(|&b| usize::from(b)).collect(),
            ));
        }
        Ok(out)
    }

    /// Replaces the record of failed writes (withdrawals pending at some nodes, or confirmed
    /// and not yet superseded) with `pending`.
    pub fn set_withdrawals(&self, pending: &Pending) -> Result<(), MetaError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = txn.open_table(WITHDRAWALS).map_err(db_err)?;
            t.retain(|_, _| false).map_err(db_err)?;
            for ((object, version), nodes) in pending {
                let v: Vec<u8> = nodes.iter().flat_map(|n| n.0.to_le_bytes()).collect();
                t.insert(&version_key(object, *version)[..], &v[..])
                    .map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)
    }

    /// The failed writes, as `set_withdrawals` last recorded them.
    pub fn withdrawals(&self) -> Result<Pending, MetaError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(WITHDRAWALS).map_err(db_err)?;
        let mut out = Pending::new();
        for item in t.iter().map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            let v = v.value();
            if v.len() % 4 != 0 {
                return Err(MetaError::Malformed);
            }
            let nodes = v
                .chunks_exact(4)
                .map(|c| NodeId(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect();
            out.insert(parse_version_key(k.value())?, nodes);
        }
        Ok(out)
    }

    /// Whether the index holds no object entries at all (a fresh or lost index).
    pub fn is_blank(&self) -> Result<bool, MetaError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let b = txn.open_table(BUCKETS).map_err(db_err)?;
        let o = txn.open_table(OBJECTS).map_err(db_err)?;
        Ok(b.is_empty().map_err(db_err)? && o.is_empty().map_err(db_err)?)
    }

    /// Records a bucket; false if it existed.
    pub fn create_bucket(&self, bucket: &str, now_ms: u64) -> Result<bool, MetaError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let created = {
            let mut t = txn.open_table(BUCKETS).map_err(db_err)?;
            let exists = t.get(bucket).map_err(db_err)?.is_some();
            if !exists {
                t.insert(bucket, now_ms).map_err(db_err)?;
            }
            !exists
        };
        txn.commit().map_err(db_err)?;
        Ok(created)
    }

    /// Buckets and their creation times, by name.
    pub fn buckets(&self) -> Result<Vec<(String, u64)>, MetaError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(BUCKETS).map_err(db_err)?;
        let mut out = Vec::new();
        for item in t.iter().map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            out.push((k.value().to_string(), v.value()));
        }
        Ok(out)
    }

    /// Applies a version of (bucket, key) if its commit order is newer than that of the one
    /// recorded. Returns whether it became current. The write that made it is settled
    /// (`intents.rs`) in the same step.
    pub fn apply(&self, bucket: &str, key: &str, entry: &Entry) -> Result<bool, MetaError> {
        self.put_entry(bucket, key, Some(entry), true)
    }

    /// [`Self::apply`] for a task: the commit is waited for without holding a thread.
    pub async fn apply_async(
        &self,
        bucket: &str,
        key: &str,
        entry: &Entry,
    ) -> Result<bool, MetaError> {
        self.group
            .write_async(entry_write(bucket, key, Some(entry), true))
            .await
    }

    /// Sets the entry of (bucket, key) to `entry` (None: no entry), older than the one
    /// recorded or not: for a version the index took and the gateway then withdrew.
    pub fn replace(&self, bucket: &str, key: &str, entry: Option<&Entry>) -> Result<(), MetaError> {
        self.put_entry(bucket, key, entry, false).map(|_| ())
    }

    /// Writes through the group commit: concurrent writes share one fsync.
    fn put_entry(
        &self,
        bucket: &str,
        key: &str,
        entry: Option<&Entry>,
        only_newer: bool,
    ) -> Result<bool, MetaError> {
        self.group
            .write(entry_write(bucket, key, entry, only_newer))
    }
}

/// The write of [`Index::put_entry`], for the group commit.
fn entry_write(
    bucket: &str,
    key: &str,
    entry: Option<&Entry>,
    only_newer: bool,
) -> Apply<bool, MetaError> {
    let (bucket, key, entry) = (bucket.to_owned(), key.to_owned(), entry.cloned());
    Box::new(move |txn| put_entry_in(txn, &bucket, &key, entry.as_ref(), only_newer))
}

/// Sets the entry of (bucket, key) in `txn`: see [`Index::apply`] and [`Index::replace`].
fn put_entry_in(
    txn: &redb::WriteTransaction,
    bucket: &str,
    key: &str,
    entry: Option<&Entry>,
    only_newer: bool,
) -> Result<bool, MetaError> {
    {
        let k = object_key(bucket, key);
        if let Some(e) = entry {
            txn.open_table(intents::INTENTS)
                .map_err(db_err)?
                .remove(&intents::intent_key(bucket, key, e.version)[..])
                .map_err(db_err)?;
        }
        let (changed, now) = {
            let mut t = txn.open_table(OBJECTS).map_err(db_err)?;
            let old = t
                .get(&k[..])
                .map_err(db_err)?
                .map(|old| Entry::decode(old.value()))
                .transpose()?;
            let mut vt = txn.open_table(versions::VERSIONS).map_err(db_err)?;
            let now = match entry {
                // The key's current version is its newest not removed.
                Some(e) if only_newer => {
                    versions::record(&mut vt, bucket, key, e)?;
                    versions::newest(&vt, bucket, key)?
                }
                _ => {
                    if let Some(o) = old
                        .as_ref()
                        .filter(|o| entry.is_none_or(|e| e.version != o.version))
                    {
                        // The current version was withdrawn (never acknowledged).
                        versions::forget(&mut vt, bucket, key, o)?;
                    }
                    if let Some(e) = entry {
                        versions::record(&mut vt, bucket, key, e)?;
                    }
                    entry.cloned()
                }
            };
            let changed = now != old;
            if changed {
                if let Some(entry) = &now {
                    t.insert(&k[..], &entry.encode()[..]).map_err(db_err)?;
                    let mut meta = txn.open_table(META).map_err(db_err)?;
                    let max = meta
                        .get("max_version")
                        .map_err(db_err)?
                        .and_then(|v| <[u8; 16]>::try_from(v.value()).ok())
                        .map(Version::from_bytes);
                    if max.is_none_or(|m| m < entry.order) {
                        meta.insert("max_version", &entry.order.to_bytes()[..])
                            .map_err(db_err)?;
                    }
                } else {
                    t.remove(&k[..]).map_err(db_err)?;
                }
                if entry.is_some_and(|e| e.removed) {
                    // The catalog changed without a newer order: the next checkpoint is due.
                    txn.open_table(META)
                        .map_err(db_err)?
                        .remove("checkpoint_max")
                        .map_err(db_err)?;
                }
                let live =
                    |e: Option<&Entry>| e.filter(|e| !e.deleted).map_or((0, 0), |e| (1, e.size));
                let (was_n, was_bytes) = live(old.as_ref());
                let (now_n, now_bytes) = live(now.as_ref());
                // The empty key is the bucket's own record, not an object.
                if (was_n, was_bytes) != (now_n, now_bytes) && !key.is_empty() {
                    let mut c = txn.open_table(COUNTS).map_err(db_err)?;
                    let (n, bytes) = c.get(bucket).map_err(db_err)?.map_or((0, 0), |v| v.value());
                    let n = (n + now_n).saturating_sub(was_n);
                    let bytes = (bytes + now_bytes).saturating_sub(was_bytes);
                    if n == 0 {
                        c.remove(bucket).map_err(db_err)?;
                    } else {
                        c.insert(bucket, (n, bytes)).map_err(db_err)?;
                    }
                }
            }
            (changed, now)
        };
        Ok(changed && now.zip(entry).is_some_and(|(n, e)| n.version == e.version))
    }
}

impl Index {
    /// The current entry of (bucket, key), deleted or not.
    pub fn get(&self, bucket: &str, key: &str) -> Result<Option<Entry>, MetaError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(OBJECTS).map_err(db_err)?;
        let v = t.get(&object_key(bucket, key)[..]).map_err(db_err)?;
        v.map(|v| Entry::decode(v.value())).transpose()
    }

    /// One page of a listing of `bucket`, as S3's ListObjectsV2 (and V1) define it.
    pub fn list(&self, bucket: &str, q: &ListQuery) -> Result<ListPage, MetaError> {
        let base = object_key(bucket, "");
        let with_prefix = object_key(bucket, &q.prefix);
        // Where to start: the token, else start-after, else the prefix.
        let mut start: (Vec<u8>, bool) = (with_prefix.clone(), true); // (position, inclusive)
        if let Some(token) = &q.continuation {
            let raw = unhex(token).ok_or(MetaError::BadToken)?;
            let (kind, marker) = raw.split_first().ok_or(MetaError::BadToken)?;
            let pos = object_key(
                bucket,
                std::str::from_utf8(marker).map_err(|_| MetaError::BadToken)?,
            );
            start = match kind {
                b'k' => (pos, false),
                b'p' => match successor(&pos) {
                    Some(s) => (s, true),
                    None => return Ok(ListPage::default()),
                },
                _ => return Err(MetaError::BadToken),
            };
        } else if let Some(after) = &q.start_after {
            start = (object_key(bucket, after), false);
            // V1's NextMarker may be a common prefix: resume after everything under it.
            if rollup(after, &q.prefix, q.delimiter.as_deref()).as_deref() == Some(after) {
                match successor(&start.0) {
                    Some(next) => start = (next, true),
                    None => return Ok(ListPage::default()),
                }
            }
        }
        if start.0 < with_prefix {
            start = (with_prefix.clone(), true);
        }
        let mut page = ListPage::default();
        if q.max_keys == 0 {
            return Ok(page);
        }
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(OBJECTS).map_err(db_err)?;
        let end = successor(&with_prefix);
        let mut pos = start;
        let mut last: Option<(bool, String)> = None; // (is prefix, marker)
        'scan: loop {
            let range = match &end {
                Some(e) => t.range::<&[u8]>(&pos.0[..]..&e[..]),
                None => t.range::<&[u8]>(&pos.0[..]..),
            }
            .map_err(db_err)?;
            for item in range {
                let (k, v) = item.map_err(db_err)?;
                let kb = k.value();
                if !pos.1 && kb == &pos.0[..] {
                    continue;
                }
                let key =
                    std::str::from_utf8(&kb[base.len()..]).map_err(|_| MetaError::Malformed)?;
                let entry = Entry::decode(v.value())?;
                // The empty key is the bucket's own record, never an object.
                if entry.deleted || key.is_empty() {
                    continue;
                }
                if page.contents.len() + page.common_prefixes.len() >= q.max_keys {
                    page.truncated = true;
                    break 'scan;
                }
                let rolled = rollup(key, &q.prefix, q.delimiter.as_deref());
                match rolled {
                    Some(cp) => {
                        page.common_prefixes.push(cp.clone());
                        // Skip every key under this common prefix.
                        match successor(&object_key(bucket, &cp)) {
                            Some(next) => {
                                last = Some((true, cp));
                                pos = (next, true);
                                continue 'scan;
                            }
                            None => {
                                last = Some((true, cp));
                                break 'scan;
                            }
                        }
                    }
                    None => {
                        page.contents.push((key.to_string(), entry));
                        last = Some((false, key.to_string()));
                    }
                }
            }
            break;
        }
        if page.truncated
            && let Some((is_prefix, marker)) = &last
        {
            let mut raw = vec![if *is_prefix { b'p' } else { b'k' }];
            raw.extend_from_slice(marker.as_bytes());
            page.next_token = Some(hex(&raw));
            page.next_marker = Some(marker.clone());
        }
        Ok(page)
    }
}

#[cfg(test)]
mod crash;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod versions_tests;
