//! The node database's records of manifests: sealed manifests (a small object's with its
//! inline shards), withdrawals of failed writes with their proofs, and catalog checkpoints.

use redb::{
    ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction,
};

use super::{
    ABORTED, CHECKPOINTS, CHECKPOINTS_KEPT, HEADERS, MANIFESTS, MAX_INLINE_SHARD, NEWEST, Store,
    StoreError, WITHDRAWAL_PROOFS, db_err, inline_row,
};
use crate::core::catalog::Checkpoint;
use crate::core::format::{ManifestEnvelope, ShardHeader};
use crate::core::hlc::{Version, parse_version_key, version_key};
use crate::core::ids::ObjectId;
use crate::core::wire::{ShardKey, Withdrawn};
use crate::sys::group::Apply;

impl Store {
    /// Number of manifest records held.
    pub fn manifest_count(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(MANIFESTS).map_err(db_err)?;
        t.len().map_err(db_err)
    }

    /// Stores a sealed manifest under its (object, version), unless that version was
    /// withdrawn here. Returns, from the same transaction, the object's record held here with
    /// the highest commit order if that is above this one's (None otherwise): a gateway stamps
    /// above it when the record opens under its key (`docs/decisions/version-order.md`).
    pub fn put_manifest(&self, sealed: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.group.write(manifest_write(sealed, Vec::new())?)
    }

    /// [`Self::put_manifest`] for a task: the commit is waited for without holding a thread.
    pub async fn put_manifest_async(&self, sealed: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.group
            .write_async(manifest_write(sealed, Vec::new())?)
            .await
    }

    /// Stores a manifest together with this node's shards of a small object, in one durable
    /// commit. Each shard must belong to the manifest's object and version and match its
    /// header's geometry and block CRCs. Returns what [`Store::put_manifest`] returns.
    pub fn put_manifest_inline(
        &self,
        sealed: &[u8],
        shards: &[(ShardHeader, Vec<u8>)],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.group
            .write(manifest_write(sealed, inline_rows(sealed, shards)?)?)
    }

    /// [`Self::put_manifest_inline`] for a task: the commit is waited for without holding a
    /// thread (the shards' CRCs are checked on the caller's).
    pub async fn put_manifest_inline_async(
        &self,
        sealed: &[u8],
        shards: &[(ShardHeader, Vec<u8>)],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.group
            .write_async(manifest_write(sealed, inline_rows(sealed, shards)?)?)
            .await
    }

    /// Withdraws a never-acknowledged manifest version: it moves to the aborted ledger (kept,
    /// not served). If the node does not hold it (yet), the ledger keeps an empty record, so
    /// that the write, should it arrive late, is refused. The gateway's `proof` that it
    /// withdrew the version, if it sent one, is kept with it in the same commit.
    pub fn abort_manifest(
        &self,
        object: &ObjectId,
        version: Version,
        proof: Option<[u8; 32]>,
    ) -> Result<(), StoreError> {
        let key = version_key(object, version);
        self.group
            .write(Box::new(move |txn| {
                if let Some(proof) = proof {
                    let mut p = txn.open_table(WITHDRAWAL_PROOFS).map_err(db_err)?;
                    p.insert(&key[..], &proof[..]).map_err(db_err)?;
                }
                let mut m = txn.open_table(MANIFESTS).map_err(db_err)?;
                let removed = m
                    .remove(&key[..])
                    .map_err(db_err)?
                    .map(|v| v.value().to_vec());
                let mut a = txn.open_table(ABORTED).map_err(db_err)?;
                match removed {
                    Some(sealed) => {
                        a.insert(&key[..], &sealed[..]).map_err(db_err)?;
                    }
                    None => {
                        if a.get(&key[..]).map_err(db_err)?.is_none() {
                            a.insert(&key[..], &[][..]).map_err(db_err)?;
                        }
                    }
                }
                Ok(None)
            }))
            .map(|_| ())
    }

    /// Keeps a catalog checkpoint (checked for form; the node has no key to check its
    /// signature), dropping all but the newest [`CHECKPOINTS_KEPT`].
    pub fn put_checkpoint(&self, bytes: &[u8]) -> Result<(), StoreError> {
        let c = Checkpoint::decode(bytes).map_err(|e| StoreError::BadShard(e.to_string()))?;
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = txn.open_table(CHECKPOINTS).map_err(db_err)?;
            t.insert(c.seq, bytes).map_err(db_err)?;
            while t.len().map_err(db_err)? > CHECKPOINTS_KEPT as u64 {
                let Some(oldest) = t.first().map_err(db_err)?.map(|(k, _)| k.value()) else {
                    break;
                };
                t.remove(oldest).map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)
    }

    /// The checkpoints kept, newest first.
    pub fn checkpoints(&self, limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(CHECKPOINTS).map_err(db_err)?;
        let mut out = Vec::new();
        for item in t.iter().map_err(db_err)?.rev().take(limit) {
            let (_, v) = item.map_err(db_err)?;
            out.push(v.value().to_vec());
        }
        Ok(out)
    }

    /// Every stored version of `object`'s manifest, oldest first.
    pub fn manifests(&self, object: &ObjectId) -> Result<Vec<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(MANIFESTS).map_err(db_err)?;
        let lo = version_key(object, Version::from_bytes([0; 16]));
        let hi = version_key(object, Version::from_bytes([0xff; 16]));
        let mut out = Vec::new();
        for item in t.range(&lo[..]..=&hi[..]).map_err(db_err)? {
            let (_, v) = item.map_err(db_err)?;
            out.push(v.value().to_vec());
        }
        Ok(out)
    }

    /// Up to `limit` withdrawals with proofs after `(object, version)`, in key order.
    pub fn list_withdrawn(
        &self,
        after: Option<(ObjectId, Version)>,
        limit: usize,
    ) -> Result<Vec<Withdrawn>, StoreError> {
        self.page(WITHDRAWAL_PROOFS, after, limit, |k, v| {
            let (Some((object, version)), Ok(proof)) = (parse_version_key(k), v.try_into()) else {
                return Err(StoreError::Db(
                    "a withdrawal proof record of the wrong size".into(),
                ));
            };
            Ok(Withdrawn {
                object,
                version,
                proof,
            })
        })
    }

    /// Up to `limit` manifests after `(object, version)`, in key order.
    pub fn list_manifests(
        &self,
        after: Option<(ObjectId, Version)>,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        self.page(MANIFESTS, after, limit, |_, v| Ok(v.to_vec()))
    }

    /// Up to `limit` records of `table` (keyed by object version) after the one of `after`,
    /// in key order, each made by `f` from its key and value.
    fn page<T>(
        &self,
        table: TableDefinition<'_, &[u8], &[u8]>,
        after: Option<(ObjectId, Version)>,
        limit: usize,
        f: impl FnMut(&[u8], &[u8]) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let start = after.map(|(o, v)| version_key(&o, v).to_vec());
        self.page_after(table, start, limit, f)
    }

    /// Up to `limit` records of `table` after the key `start`, in key order, each made by `f`
    /// from its key and value.
    pub(super) fn page_after<T>(
        &self,
        table: TableDefinition<'_, &[u8], &[u8]>,
        start: Option<Vec<u8>>,
        limit: usize,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(table).map_err(db_err)?;
        let iter = match &start {
            Some(s) => t.range::<&[u8]>(&s[..]..).map_err(db_err)?,
            None => t.iter().map_err(db_err)?,
        };
        let mut out = Vec::new();
        for item in iter {
            let (k, v) = item.map_err(db_err)?;
            if start.as_ref().is_some_and(|s| k.value() == &s[..]) {
                continue;
            }
            out.push(f(k.value(), v.value())?);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }
}

/// Refuses a manifest write of a version this node was told to withdraw (the withdrawal
/// overtook the write).
fn refuse_withdrawn(txn: &WriteTransaction, key: &[u8]) -> Result<(), StoreError> {
    let a = txn.open_table(ABORTED).map_err(db_err)?;
    if a.get(key).map_err(db_err)?.is_some() {
        return Err(StoreError::Withdrawn);
    }
    Ok(())
}

/// The sealed record of `env.object` held here with a commit order above `env`'s (None: there
/// is none, the common case), and [`NEWEST`] (object → order and version of its newest record
/// here) raised to `env` if `env` is newer. An object without a row there, or whose newest
/// record was withdrawn since, is searched for through its records. An object's first record
/// here gets no row: the next write finds it through the object's key range as cheaply, and a
/// small object's write touches one table fewer.
fn raise_newest(
    txn: &WriteTransaction,
    env: &ManifestEnvelope,
) -> Result<Option<Vec<u8>>, StoreError> {
    let mut t = txn.open_table(NEWEST).map_err(db_err)?;
    let known = t
        .get(&env.object.0[..])
        .map_err(db_err)?
        .and_then(|v| <[u8; 32]>::try_from(v.value()).ok())
        .map(|r| {
            let (o, v) = r.split_at(16);
            let at = |b: &[u8]| Version::from_bytes(b.try_into().unwrap_or([0; 16]));
            (at(o), at(v))
        });
    let m = txn.open_table(MANIFESTS).map_err(db_err)?;
    let newest = match known {
        Some((order, _)) if order <= env.order => None,
        Some((order, version)) => match m.get(&version_key(&env.object, version)[..]) {
            Ok(Some(rec)) => Some((order, rec.value().to_vec())),
            Ok(None) => newest_record(&m, env)?,
            Err(e) => return Err(db_err(e)),
        },
        None => newest_record(&m, env)?,
    };
    let first_here = known.is_none() && newest.is_none();
    match newest {
        Some((order, rec)) if order > env.order => Ok(Some(rec)),
        _ if first_here => Ok(None),
        // This write is the newest here (a table row that named a withdrawn record is
        // replaced too).
        _ => {
            let mut row = [0u8; 32];
            row[..16].copy_from_slice(&env.order.to_bytes());
            row[16..].copy_from_slice(&env.version.to_bytes());
            t.insert(&env.object.0[..], &row[..]).map_err(db_err)?;
            Ok(None)
        }
    }
}

/// The object's record here with the highest commit order, searched for through its records.
fn newest_record(
    m: &redb::Table<'_, &[u8], &[u8]>,
    env: &ManifestEnvelope,
) -> Result<Option<(Version, Vec<u8>)>, StoreError> {
    let lo = version_key(&env.object, Version::from_bytes([0; 16]));
    let hi = version_key(&env.object, Version::from_bytes([0xff; 16]));
    let mut newest: Option<(Version, Vec<u8>)> = None;
    for item in m.range(&lo[..]..=&hi[..]).map_err(db_err)? {
        let (_, v) = item.map_err(db_err)?;
        if let Ok(e) = ManifestEnvelope::parse(v.value())
            && newest.as_ref().is_none_or(|(o, _)| *o < e.order)
        {
            newest = Some((e.order, v.value().to_vec()));
        }
    }
    Ok(newest)
}

/// A manifest's rows of inline shards, checked: (shard key, row with header and bytes).
type InlineRows = Vec<([u8; 49], Vec<u8>)>;

/// Checks a small object's shards against the manifest and their headers and makes their rows.
fn inline_rows(sealed: &[u8], shards: &[(ShardHeader, Vec<u8>)]) -> Result<InlineRows, StoreError> {
    let env = ManifestEnvelope::parse(sealed)?;
    let bad = |why: &str| Err(StoreError::BadShard(why.to_string()));
    let mut rows = Vec::with_capacity(shards.len());
    for (h, data) in shards {
        if h.object != env.object || h.version != env.version {
            return bad("an inline shard names another object or version");
        }
        let g = h.geometry()?;
        if g.shard_len() != data.len() as u64 || g.shard_len() > MAX_INLINE_SHARD {
            return bad("an inline shard's length does not fit its geometry");
        }
        for s in 0..g.stripe_count() {
            let start = g.block_offset(s) as usize;
            let block = &data[start..start + g.block_len(s)];
            if h.crcs.get(s as usize) != Some(&crc32fast::hash(block)) {
                return bad("an inline shard's block CRCs differ from its header");
            }
        }
        let sk = ShardKey {
            object: h.object,
            version: h.version,
            shard: h.shard_index.0,
        }
        .to_bytes();
        rows.push((sk, inline_row(&h.encode()?, data)));
    }
    Ok(rows)
}

/// The write of a sealed manifest (with a small object's shard rows, if any), unless its
/// version was withdrawn here; it gives the record held above it (`raise_newest`).
fn manifest_write(
    sealed: &[u8],
    rows: InlineRows,
) -> Result<Apply<Option<Vec<u8>>, StoreError>, StoreError> {
    let env = ManifestEnvelope::parse(sealed)?;
    let key = version_key(&env.object, env.version);
    let sealed = sealed.to_vec();
    Ok(Box::new(move |txn| {
        refuse_withdrawn(txn, &key)?;
        let newest = raise_newest(txn, &env)?;
        let mut m = txn.open_table(MANIFESTS).map_err(db_err)?;
        m.insert(&key[..], &sealed[..]).map_err(db_err)?;
        if !rows.is_empty() {
            let mut hs = txn.open_table(HEADERS).map_err(db_err)?;
            for (sk, row) in &rows {
                hs.insert(&sk[..], &row[..]).map_err(db_err)?;
            }
        }
        Ok(newest)
    }))
}
