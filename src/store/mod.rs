//! A node's local storage: shard files on one or more data directories ("disks"), shard
//! headers, sealed manifests and the quarantine ledger in an embedded database (redb).
//!
//! Durability: a shard is written to `tmp/`, fsynced, renamed into `shards/`, and the directory
//! fsynced; only then is its header committed (redb fsyncs on commit) and the write
//! acknowledged. A crash before the commit leaves an unacknowledged temp file (removed at the
//! next start) or an orphan shard file without a header (never served; scrub accounts for it).
//!
//! File names come only from opaque ids: never from a bucket or key.

mod mmap;

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::core::format::{FormatError, ManifestEnvelope, ShardHeader};
use crate::core::hlc::Version;
use crate::core::ids::{DiskId, NodeId, ObjectId};
use crate::core::stripe::Geometry;
use crate::core::wire::ShardKey;

/// Name of the marker file every data directory carries.
pub const MARKER: &str = "EXCLAVE-DISK";

const HEADERS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("shard_headers");
const MANIFESTS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("manifests");
const QUARANTINE: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("quarantine");

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A data directory has no marker: not initialised, or an unmounted disk.
    #[error(
        "data directory {path} has no {MARKER} marker: is the disk mounted? (refusing to treat \
         it as empty)"
    )]
    NoMarker {
        /// The directory.
        path: PathBuf,
    },
    /// A marker names another disk.
    #[error("data directory {path} is marked for disk {found}, the config says disk {expected}")]
    WrongMarker {
        /// The directory.
        path: PathBuf,
        /// Disk in the config.
        expected: u32,
        /// Disk in the marker.
        found: String,
    },
    /// File system error.
    #[error("{path}: {error}")]
    Io {
        /// Path involved.
        path: PathBuf,
        /// Error.
        error: std::io::Error,
    },
    /// Database error.
    #[error("database: {0}")]
    Db(String),
    /// The disk is not one of this node's.
    #[error("disk {0:?} is not served by this node")]
    NoSuchDisk(DiskId),
    /// No such shard or record.
    #[error("not found")]
    NotFound,
    /// The written shard does not match what its header says.
    #[error("shard rejected: {0}")]
    BadShard(String),
    /// A stored record does not decode.
    #[error("stored record: {0}")]
    Format(#[from] FormatError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |error| StoreError::Io {
        path: path.to_path_buf(),
        error,
    }
}

fn db_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Db(e.to_string())
}

/// One block read from a shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockRead {
    /// The block, its CRC checked.
    Ok(Bytes),
    /// The block failed its CRC.
    Corrupt,
}

/// Writes a data directory's marker and layout (at `exclave init`).
pub fn init_disk(path: &Path, node: NodeId, disk: DiskId) -> Result<(), StoreError> {
    for sub in ["shards", "tmp", "quarantine"] {
        fs::create_dir_all(path.join(sub)).map_err(io(path))?;
    }
    let marker = path.join(MARKER);
    let mut f = File::create(&marker).map_err(io(&marker))?;
    writeln!(
        f,
        "exclave data directory\nnode = {}\ndisk = {}",
        node.0, disk.0
    )
    .map_err(io(&marker))?;
    f.sync_all().map_err(io(&marker))?;
    fsync_dir(path)
}

fn fsync_dir(path: &Path) -> Result<(), StoreError> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(io(path))
}

/// A node's store.
#[derive(Debug)]
pub struct Store {
    disks: BTreeMap<DiskId, PathBuf>,
    db: Database,
    tmp_seq: AtomicU64,
}

impl Store {
    /// Opens the store: every data directory must carry its marker; the database lives in
    /// `state_dir`. Unacknowledged temp files from a crash are removed.
    pub fn open(state_dir: &Path, disks: &[(DiskId, PathBuf)]) -> Result<Self, StoreError> {
        let mut map = BTreeMap::new();
        for (id, path) in disks {
            let marker = path.join(MARKER);
            let text = match fs::read_to_string(&marker) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(StoreError::NoMarker { path: path.clone() });
                }
                Err(e) => {
                    return Err(StoreError::Io {
                        path: marker,
                        error: e,
                    });
                }
            };
            let found = text
                .lines()
                .find_map(|l| l.strip_prefix("disk = "))
                .unwrap_or("?")
                .trim()
                .to_string();
            if found != id.0.to_string() {
                return Err(StoreError::WrongMarker {
                    path: path.clone(),
                    expected: id.0,
                    found,
                });
            }
            let tmp = path.join("tmp");
            if let Ok(entries) = fs::read_dir(&tmp) {
                for e in entries.flatten() {
                    // Never acknowledged: a write that a crash interrupted.
                    let _ = fs::remove_file(e.path());
                }
            }
            map.insert(*id, path.clone());
        }
        fs::create_dir_all(state_dir).map_err(io(state_dir))?;
        let db_path = state_dir.join("node.redb");
        let db = Database::create(&db_path).map_err(db_err)?;
        let txn = db.begin_write().map_err(db_err)?;
        for t in [HEADERS, MANIFESTS, QUARANTINE] {
            txn.open_table(t).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        Ok(Self {
            disks: map,
            db,
            tmp_seq: AtomicU64::new(0),
        })
    }

    /// The disks served.
    pub fn disks(&self) -> impl Iterator<Item = (&DiskId, &PathBuf)> {
        self.disks.iter()
    }

    fn shard_path(&self, disk: DiskId, key: &ShardKey) -> Result<PathBuf, StoreError> {
        let root = self.disks.get(&disk).ok_or(StoreError::NoSuchDisk(disk))?;
        let oid = key.object.to_hex();
        Ok(root.join("shards").join(&oid[..2]).join(format!(
            "{oid}-{}-{}",
            crate::core::ids::hex(&key.version.to_bytes()),
            key.shard
        )))
    }

    /// Starts writing a shard of `geometry` to `disk`.
    pub fn begin_shard(
        &self,
        disk: DiskId,
        key: ShardKey,
        geometry: Geometry,
    ) -> Result<ShardWriter, StoreError> {
        let final_path = self.shard_path(disk, &key)?;
        let root = &self.disks[&disk];
        let seq = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        let tmp_path = root.join("tmp").join(format!(
            "{}.{}.{seq}",
            key.object.to_hex(),
            std::process::id()
        ));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp_path)
            .map_err(io(&tmp_path))?;
        Ok(ShardWriter {
            file,
            tmp_path,
            final_path,
            key,
            disk,
            geometry,
            written: 0,
            crcs: Vec::with_capacity(geometry.stripe_count() as usize),
            block: crc32fast::Hasher::new(),
            block_filled: 0,
        })
    }

    /// Commits a finished shard: the file is durable; now its header.
    fn commit_header(&self, disk: DiskId, header: &ShardHeader) -> Result<(), StoreError> {
        let key = ShardKey {
            object: header.object,
            version: header.version,
            shard: header.shard_index.0,
        };
        let mut value = disk.0.to_le_bytes().to_vec();
        value.extend_from_slice(&header.encode()?);
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = txn.open_table(HEADERS).map_err(db_err)?;
            t.insert(&key.to_bytes()[..], &value[..]).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }

    /// The header of a stored shard, and the disk it is on.
    pub fn header(&self, key: &ShardKey) -> Result<(DiskId, ShardHeader), StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(HEADERS).map_err(db_err)?;
        let v = t
            .get(&key.to_bytes()[..])
            .map_err(db_err)?
            .ok_or(StoreError::NotFound)?;
        let v = v.value();
        let (disk, header) = v
            .split_at_checked(4)
            .ok_or(StoreError::BadShard("short record".into()))?;
        let disk = DiskId(u32::from_le_bytes([disk[0], disk[1], disk[2], disk[3]]));
        Ok((disk, ShardHeader::decode(header)?))
    }

    /// Reads `count` blocks from stripe `first` on, each checked against its CRC.
    pub fn read_blocks(
        &self,
        key: &ShardKey,
        first: u64,
        count: u64,
    ) -> Result<Vec<BlockRead>, StoreError> {
        let (disk, header) = self.header(key)?;
        let g = header.geometry()?;
        let n = g.stripe_count();
        if first >= n || count == 0 || count > n - first {
            return Err(StoreError::BadShard(format!(
                "stripes {first}+{count} of {n}"
            )));
        }
        let path = self.shard_path(disk, key)?;
        let file = File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StoreError::NotFound,
            _ => StoreError::Io {
                path: path.clone(),
                error: e,
            },
        })?;
        let data = mmap::map(&file).map_err(io(&path))?;
        let whole = data.len() as u64 == g.shard_len();
        Ok((first..first + count)
            .map(|s| {
                let start = g.block_offset(s) as usize;
                let end = start + g.block_len(s);
                match data.get(start..end) {
                    Some(b) if whole && crc32fast::hash(b) == header.crcs[s as usize] => {
                        BlockRead::Ok(data.slice(start..end))
                    }
                    _ => BlockRead::Corrupt,
                }
            })
            .collect())
    }

    /// Stores a sealed manifest under its (object, version).
    pub fn put_manifest(&self, sealed: &[u8]) -> Result<(), StoreError> {
        let env = ManifestEnvelope::parse(sealed)?;
        let key = manifest_key(&env.object, env.version);
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = txn.open_table(MANIFESTS).map_err(db_err)?;
            t.insert(&key[..], sealed).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }

    /// Every stored version of `object`'s manifest, oldest first.
    pub fn manifests(&self, object: &ObjectId) -> Result<Vec<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(MANIFESTS).map_err(db_err)?;
        let lo = manifest_key(object, Version::from_bytes([0; 16]));
        let hi = manifest_key(object, Version::from_bytes([0xff; 16]));
        let mut out = Vec::new();
        for item in t.range(&lo[..]..=&hi[..]).map_err(db_err)? {
            let (_, v) = item.map_err(db_err)?;
            out.push(v.value().to_vec());
        }
        Ok(out)
    }

    /// Up to `limit` manifests after `(object, version)`, in key order.
    pub fn list_manifests(
        &self,
        after: Option<(ObjectId, Version)>,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(MANIFESTS).map_err(db_err)?;
        let start = after.map(|(o, v)| manifest_key(&o, v));
        let mut out = Vec::new();
        let iter = match &start {
            Some(s) => t.range::<&[u8]>(&s[..]..).map_err(db_err)?,
            None => t.iter().map_err(db_err)?,
        };
        for item in iter {
            let (k, v) = item.map_err(db_err)?;
            if start.as_ref().is_some_and(|s| k.value() == &s[..]) {
                continue;
            }
            out.push(v.value().to_vec());
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }
}

fn manifest_key(object: &ObjectId, version: Version) -> [u8; 48] {
    let mut k = [0u8; 48];
    k[..32].copy_from_slice(&object.0);
    k[32..].copy_from_slice(&version.to_bytes());
    k
}

/// A shard being written: bytes go to a temp file, block CRCs are computed on the way.
#[derive(Debug)]
pub struct ShardWriter {
    file: File,
    tmp_path: PathBuf,
    final_path: PathBuf,
    key: ShardKey,
    disk: DiskId,
    geometry: Geometry,
    written: u64,
    crcs: Vec<u32>,
    block: crc32fast::Hasher,
    block_filled: usize,
}

impl ShardWriter {
    /// Bytes the shard must have in all.
    pub fn expected_len(&self) -> u64 {
        self.geometry.shard_len()
    }

    /// Appends bytes.
    pub fn write(&mut self, mut data: &[u8]) -> Result<(), StoreError> {
        if self.written + data.len() as u64 > self.expected_len() {
            return Err(StoreError::BadShard(
                "more bytes than the shard holds".into(),
            ));
        }
        self.file.write_all(data).map_err(io(&self.tmp_path))?;
        self.written += data.len() as u64;
        while !data.is_empty() {
            let s = self.crcs.len() as u64;
            let want = self.geometry.block_len(s) - self.block_filled;
            let take = want.min(data.len());
            self.block.update(&data[..take]);
            self.block_filled += take;
            data = &data[take..];
            if self.block_filled == self.geometry.block_len(s) {
                let h = std::mem::take(&mut self.block);
                self.crcs.push(h.finalize());
                self.block_filled = 0;
            }
        }
        Ok(())
    }

    /// Checks the header against what was written, makes the shard durable and commits it.
    pub fn finish(self, store: &Store, header: &ShardHeader) -> Result<(), StoreError> {
        let result = self.finish_inner(store, header);
        if result.is_err() {
            let _ = fs::remove_file(&self.tmp_path);
        }
        result
    }

    fn finish_inner(&self, store: &Store, header: &ShardHeader) -> Result<(), StoreError> {
        let bad = |why: &str| Err(StoreError::BadShard(why.to_string()));
        if self.written != self.expected_len() {
            return bad("fewer bytes than the shard holds");
        }
        if header.object != self.key.object
            || header.version != self.key.version
            || header.shard_index.0 != self.key.shard
        {
            return bad("header names another shard");
        }
        if header.geometry()? != self.geometry {
            return bad("header geometry differs from the request");
        }
        if header.crcs != self.crcs {
            return bad("block CRCs differ from the header (corrupted in transit?)");
        }
        self.file.sync_all().map_err(io(&self.tmp_path))?;
        let dir = self.final_path.parent().unwrap_or(Path::new("."));
        if !dir.exists() {
            fs::create_dir_all(dir).map_err(io(dir))?;
            // The new directory's own entry must be durable too.
            fsync_dir(dir.parent().unwrap_or(Path::new(".")))?;
        }
        fs::rename(&self.tmp_path, &self.final_path).map_err(io(&self.final_path))?;
        fsync_dir(dir)?;
        store.commit_header(self.disk, header)
    }

    /// Gives up on the shard (the peer went away): the temp file is removed.
    pub fn abort(self) {
        let _ = fs::remove_file(&self.tmp_path);
    }
}
