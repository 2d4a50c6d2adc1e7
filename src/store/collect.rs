//! Garbage a gateway's collector decided no reader may ever need again, deleted: the shards of
//! a version (files and inline) and, where asked, its manifest record, each accounted in the
//! ledger of what was collected (`collected`: when, which version, why, how many bytes) and in
//! its running totals. The database forgets a shard before its file goes, so a crash in between
//! leaves a file no header names (never served; an orphan the census counts), never a header
//! whose file is missing (which scrub would take for a lost shard and repair).

use std::path::PathBuf;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::{HEADERS, INLINE_DISK, MANIFESTS, Store, StoreError, db_err, decode_row, io};
use crate::core::collect::CollectReason;
use crate::core::hlc::{Version, parse_version_key, version_key};
use crate::core::ids::{DiskId, ObjectId, unhex};
use crate::core::wire::{Collectable, CollectedTotals, FileCensus, HeldShard, ShardKey};

/// (ms since the epoch ‖ object ‖ version) -> the ledger line.
pub(super) const COLLECTED: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("collected");
/// `items`, `bytes`: the ledger's totals.
pub(super) const COLLECTED_TOTALS: TableDefinition<'_, &str, u64> =
    TableDefinition::new("collected_totals");

fn shard_key(k: &[u8]) -> Option<ShardKey> {
    let b: &[u8; 49] = k.try_into().ok()?;
    let object = ObjectId(b[..32].try_into().ok()?);
    let version = Version::from_bytes(b[32..48].try_into().ok()?);
    Some(ShardKey {
        object,
        version,
        shard: b[48],
    })
}

/// The shard a file under `shards/` is named for (`Store::shard_path`): object hex, version
/// hex, shard index.
fn parse_file_name(name: &str) -> Option<ShardKey> {
    let mut parts = name.split('-');
    let (object, version, shard) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    Some(ShardKey {
        object: ObjectId(unhex(object)?.try_into().ok()?),
        version: Version::from_bytes(unhex(version)?.try_into().ok()?),
        shard: shard.parse().ok()?,
    })
}

impl Store {
    /// The shard a file under `disk`'s `shards/` is named for, if its name is a shard's, and
    /// whether a header on that disk names it.
    fn named_here(&self, disk: DiskId, path: &std::path::Path) -> (Option<ShardKey>, bool) {
        let key = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(parse_file_name);
        let named = key.is_some_and(|k| matches!(self.header(&k), Ok((d, _)) if d == disk));
        (key, named)
    }

    /// Up to `limit` shards held after `after`, in key order, with their lengths.
    pub fn list_shards(
        &self,
        after: Option<ShardKey>,
        limit: usize,
    ) -> Result<Vec<HeldShard>, StoreError> {
        let start = after.map(|k| k.to_bytes().to_vec());
        self.page_after(HEADERS, start, limit, |k, v| {
            let key = shard_key(k).ok_or(StoreError::BadShard(
                "a header key of the wrong size".into(),
            ))?;
            // A row that does not decode is still a shard held: its length unknown.
            let len = decode_row(v)
                .ok()
                .and_then(|(_, h)| h.geometry().ok())
                .map_or(0, |g| g.shard_len());
            Ok(HeldShard { key, len })
        })
    }

    /// Files under the disks' `shards/` that no shard header names (a crash between a shard's
    /// rename and its header's commit, or between a collection's commit and its unlink; or a
    /// file put there by hand): how many and how many bytes, and of those, older than
    /// `min_age_ms`, deleted with `delete` (else only counted; shard files only: a file whose
    /// name is not a shard's is counted, never touched), each into the ledger (`orphan-file`).
    pub fn sweep_files(
        &self,
        now_ms: u64,
        min_age_ms: u64,
        delete: bool,
    ) -> Result<(CollectedTotals, CollectedTotals), StoreError> {
        let (mut found, mut deleted) = (CollectedTotals::default(), CollectedTotals::default());
        let mut doomed = Vec::new();
        for (disk, root) in &self.disks {
            let shards = root.join("shards");
            let Ok(dirs) = self.files.read_dir(&shards) else {
                continue;
            };
            for dir in dirs {
                let Ok(entries) = self.files.read_dir(&dir) else {
                    continue;
                };
                for path in entries {
                    let (key, named) = self.named_here(*disk, &path);
                    if named {
                        continue;
                    }
                    let Ok((len, modified_ms)) = self.files.stat(&path) else {
                        continue;
                    };
                    found.items += 1;
                    found.bytes += len;
                    if let Some(k) = key
                        && now_ms.saturating_sub(modified_ms) >= min_age_ms
                    {
                        doomed.push((path, k, len));
                    }
                }
            }
        }
        if !delete {
            for (_, _, len) in &doomed {
                deleted.items += 1;
                deleted.bytes += len;
            }
            return Ok((found, deleted));
        }
        if doomed.is_empty() {
            return Ok((found, deleted));
        }
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut ledger = txn.open_table(COLLECTED).map_err(db_err)?;
            let headers = txn.open_table(HEADERS).map_err(db_err)?;
            // Checked again in the commit that records them: a write may have named one since.
            doomed.retain(|(_, k, _)| matches!(headers.get(&k.to_bytes()[..]), Ok(None)));
            for (path, k, len) in &doomed {
                let mut lk = now_ms.to_be_bytes().to_vec();
                lk.extend_from_slice(&version_key(&k.object, k.version));
                lk.push(k.shard);
                let line = format!(
                    "reason = {}\nfile = {}\nbytes = {len}\n",
                    CollectReason::OrphanFile.name(),
                    path.display()
                );
                ledger.insert(&lk[..], line.as_bytes()).map_err(db_err)?;
                deleted.items += 1;
                deleted.bytes += len;
            }
            add_to_totals(&txn, deleted)?;
        }
        txn.commit().map_err(db_err)?;
        let paths: Vec<PathBuf> = doomed.into_iter().map(|(p, _, _)| p).collect();
        self.unlink_all(&paths)?;
        Ok((found, deleted))
    }

    /// The sealed records of withdrawn writes (`aborted_manifests`) whose version is older
    /// than `min_age_ms`: trimmed to their key (what refuses the write if it ever arrives, and
    /// what a withdrawal's proof sits beside), each into the ledger (`withdrawn`); with
    /// `delete` false only counted. Returns what was (or would be) freed.
    pub fn trim_withdrawn(
        &self,
        now_ms: u64,
        min_age_ms: u64,
        delete: bool,
    ) -> Result<CollectedTotals, StoreError> {
        let mut due = Vec::new();
        {
            let txn = self.db.begin_read().map_err(db_err)?;
            let t = txn.open_table(super::ABORTED).map_err(db_err)?;
            for item in t.iter().map_err(db_err)? {
                let (k, v) = item.map_err(db_err)?;
                let len = v.value().len() as u64;
                let old = parse_version_key(k.value())
                    .is_some_and(|(_, v)| now_ms.saturating_sub(v.physical_ms) >= min_age_ms);
                if len > 0 && old {
                    due.push((k.value().to_vec(), len));
                }
            }
        }
        let mut freed = CollectedTotals::default();
        if !delete {
            for (_, len) in &due {
                freed.items += 1;
                freed.bytes += len;
            }
            return Ok(freed);
        }
        if due.is_empty() {
            return Ok(freed);
        }
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = txn.open_table(super::ABORTED).map_err(db_err)?;
            let mut ledger = txn.open_table(COLLECTED).map_err(db_err)?;
            for (k, len) in &due {
                t.insert(&k[..], &[][..]).map_err(db_err)?;
                let mut lk = now_ms.to_be_bytes().to_vec();
                lk.extend_from_slice(k);
                let line = format!(
                    "reason = {}\nwithdrawn record = trimmed to its key\nbytes = {len}\n",
                    CollectReason::Withdrawn.name()
                );
                ledger.insert(&lk[..], line.as_bytes()).map_err(db_err)?;
                freed.items += 1;
                freed.bytes += len;
            }
            add_to_totals(&txn, freed)?;
        }
        txn.commit().map_err(db_err)?;
        Ok(freed)
    }

    /// The ledger's totals.
    pub fn collected_totals(&self) -> Result<CollectedTotals, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(COLLECTED_TOTALS).map_err(db_err)?;
        let get = |name: &str| -> Result<u64, StoreError> {
            Ok(t.get(name).map_err(db_err)?.map_or(0, |v| v.value()))
        };
        Ok(CollectedTotals {
            items: get("items")?,
            bytes: get("bytes")?,
        })
    }

    /// Deletes what `items` names (see the module); returns what was freed and the ledger's
    /// totals after it. A version of which nothing is held here is passed over (a retry, or a
    /// census that raced a collection).
    pub fn collect(
        &self,
        items: &[Collectable],
        now_ms: u64,
    ) -> Result<(CollectedTotals, CollectedTotals), StoreError> {
        let mut files = Vec::new();
        let mut freed = CollectedTotals::default();
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut headers = txn.open_table(HEADERS).map_err(db_err)?;
            let mut manifests = txn.open_table(MANIFESTS).map_err(db_err)?;
            let mut ledger = txn.open_table(COLLECTED).map_err(db_err)?;
            for it in items {
                let (mut bytes, mut shards) = (0u64, 0u32);
                let lo = ShardKey {
                    object: it.object,
                    version: it.version,
                    shard: 0,
                }
                .to_bytes();
                let hi = ShardKey {
                    shard: u8::MAX,
                    ..shard_key(&lo).ok_or(StoreError::NotFound)?
                }
                .to_bytes();
                let mut rows = Vec::new();
                for item in headers.range::<&[u8]>(&lo[..]..=&hi[..]).map_err(db_err)? {
                    let (k, v) = item.map_err(db_err)?;
                    rows.push((k.value().to_vec(), v.value().to_vec()));
                }
                for (k, v) in rows {
                    headers.remove(&k[..]).map_err(db_err)?;
                    shards += 1;
                    let Ok((disk, h)) = decode_row(&v) else {
                        continue;
                    };
                    bytes += h.geometry().map_or(0, |g| g.shard_len());
                    // An inline shard's bytes went with its row.
                    if disk != INLINE_DISK
                        && let Some(key) = shard_key(&k)
                    {
                        files.push(self.shard_path(disk, &key)?);
                    }
                }
                let mut record = false;
                if it.manifest
                    && let Some(v) = manifests
                        .remove(&version_key(&it.object, it.version)[..])
                        .map_err(db_err)?
                {
                    bytes += v.value().len() as u64;
                    record = true;
                }
                if shards == 0 && !record {
                    continue;
                }
                let mut lk = now_ms.to_be_bytes().to_vec();
                lk.extend_from_slice(&version_key(&it.object, it.version));
                let line = format!(
                    "reason = {}\nshards = {shards}\nmanifest = {record}\nbytes = {bytes}\n",
                    CollectReason::name_of(it.reason)
                );
                ledger.insert(&lk[..], line.as_bytes()).map_err(db_err)?;
                freed.items += 1;
                freed.bytes += bytes;
            }
            add_to_totals(&txn, freed)?;
        }
        txn.commit().map_err(db_err)?;
        self.unlink_all(&files)?;
        Ok((freed, self.collected_totals()?))
    }

    /// Removes `files` (already forgotten by the database; one gone already is no error) and
    /// makes each directory's removals durable, one fsync per directory.
    fn unlink_all(&self, files: &[PathBuf]) -> Result<(), StoreError> {
        let mut dirs = std::collections::BTreeSet::new();
        for f in files {
            match self.files.remove_file(f) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(f)(e)),
            }
            if let Some(d) = f.parent() {
                dirs.insert(d.to_path_buf());
            }
        }
        for d in &dirs {
            self.files.sync_dir(d).map_err(io(d))?;
        }
        Ok(())
    }
}

/// Adds `t` to the ledger's running totals, in the commit that writes its entries.
fn add_to_totals(txn: &redb::WriteTransaction, t: CollectedTotals) -> Result<(), StoreError> {
    let mut totals = txn.open_table(COLLECTED_TOTALS).map_err(db_err)?;
    for (name, add) in [("items", t.items), ("bytes", t.bytes)] {
        let was = totals.get(name).map_err(db_err)?.map_or(0, |v| v.value());
        totals.insert(name, was + add).map_err(db_err)?;
    }
    Ok(())
}

/// Every file under `dir` (recursively) with its length; unreadable entries are skipped.
fn files_under(files: &dyn crate::sys::files::Files, dir: &std::path::Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = files.read_dir(&d) else {
            continue;
        };
        for e in entries {
            if files.read_dir(&e).is_ok() {
                todo.push(e);
            } else if let Ok((len, _)) = files.stat(&e) {
                out.push((e, len));
            }
        }
    }
    out
}

impl Store {
    /// Every file of the node's data directories and its database, by what accounts for it
    /// (`Request::FileCensus`): the paths of files nothing accounts for, at most `list`.
    pub fn file_census(&self, list: usize) -> FileCensus {
        let mut c = FileCensus::default();
        let add = |t: &mut CollectedTotals, len: u64| {
            t.items += 1;
            t.bytes += len;
        };
        let listed = |c: &mut FileCensus, path: &std::path::Path, len: u64| {
            if c.listed.len() < list {
                c.listed.push((path.display().to_string(), len));
            }
        };
        if let Ok((len, _)) = self.files.stat(&self.db_path) {
            c.database_bytes = len;
        }
        for (disk, root) in &self.disks {
            for (path, len) in files_under(self.files.as_ref(), root) {
                if path == self.db_path {
                    continue;
                }
                let Ok(rel) = path.strip_prefix(root) else {
                    continue;
                };
                let top = rel
                    .components()
                    .next()
                    .and_then(|p| p.as_os_str().to_str())
                    .unwrap_or("");
                match top {
                    "shards" => {
                        if self.named_here(*disk, &path).1 {
                            add(&mut c.shards, len);
                        } else {
                            add(&mut c.unnamed, len);
                            listed(&mut c, &path, len);
                        }
                    }
                    "quarantine" => add(&mut c.quarantine, len),
                    "tmp" => add(&mut c.tmp, len),
                    _ if rel == std::path::Path::new(super::MARKER) => add(&mut c.markers, len),
                    _ => {
                        add(&mut c.stray, len);
                        listed(&mut c, &path, len);
                    }
                }
            }
        }
        c
    }
}
