//! A node's local storage: shard files on one or more data directories ("disks"), shard
//! headers, sealed manifests and the quarantine ledger in an embedded database (redb).
//!
//! Durability: a shard is written to `tmp/`, fsynced, renamed into `shards/`, and the directory
//! fsynced; only then is its header committed (redb fsyncs on commit) and the write
//! acknowledged. A crash before the commit leaves an unacknowledged temp file (removed at the
//! next start) or an orphan shard file without a header (never served; scrub accounts for it).
//!
//! File names come only from opaque ids: never from a bucket or key.

mod collect;
mod records;
pub mod scrub;
mod writer;

pub use writer::ShardWriter;

use crate::sys::files::{FileWrite, Files, RealFiles};
use crate::sys::group::GroupCommit;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTableMetadata, TableDefinition};

use crate::core::format::{FormatError, ShardHeader};
use crate::core::ids::{DiskId, NodeId, hex};
use crate::core::stripe::Geometry;
use crate::core::wire::{DiskUsage, ShardKey};

/// Name of the marker file every data directory carries.
pub const MARKER: &str = "EXCLAVE-DISK";
/// The node database's page cache by default, bytes (`[node] db_cache_mib`: 32).
pub const DEFAULT_DB_CACHE: usize = 32 << 20;

/// Shard key -> the shard's row (`file_row`, `inline_row`): where its bytes are and its
/// header, and for a small object's shard the bytes themselves.
const HEADERS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("shard_headers");
const MANIFESTS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("manifests");
const QUARANTINE: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("quarantine");
/// Where stores of format 1 kept the bytes of small objects' shards, apart from their header
/// rows; moved into the rows at the first start of format 2 (`STORE_FORMAT`).
const INLINE: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("inline_shards");
/// `version` -> the database's format: absent for format 1; 2 keeps an inline shard's bytes in
/// its row. A build refuses a database of a format newer than its own.
const STORE_FORMAT: TableDefinition<'_, &str, u64> = TableDefinition::new("store_format");
/// The database format this build writes.
pub const STORE_FORMAT_VERSION: u64 = 2;
/// Shards scrub found bad (and quarantined), for the gateway to collect and repair.
const FINDINGS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("scrub_findings");
/// Scrub progress: `cursor` (the last shard key checked) and `last_complete_ms`.
const SCRUB_STATE: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("scrub_state");
/// Per object: the highest commit order of the manifests written here (envelope order) and the
/// version of the record that has it, so a manifest write can report that record
/// (`records.rs`). From an object's second record here on: an object with one record (most
/// objects) is searched through its records, which costs a write no more than this table's
/// row would.
const NEWEST: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("newest_order");
/// Manifest versions whose write never reached its quorum: kept, not served.
const ABORTED: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("aborted_manifests");
/// Catalog checkpoints by sequence number (the newest [`CHECKPOINTS_KEPT`]).
const CHECKPOINTS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("checkpoints");
/// (object, version) -> the gateway's proof of a withdrawal (`ManifestKey::withdrawal_proof`).
const WITHDRAWAL_PROOFS: TableDefinition<'_, &[u8], &[u8]> =
    TableDefinition::new("withdrawal_proofs");
/// Checkpoints a node keeps.
pub const CHECKPOINTS_KEPT: usize = 16;

/// The disk id recorded for a shard held in the database rather than in a file.
pub const INLINE_DISK: DiskId = DiskId(u32::MAX);
/// Largest shard a node accepts inline.
pub const MAX_INLINE_SHARD: u64 = 1 << 20;

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
    /// A manifest write of a version that was withdrawn here (its writer gave up on it).
    #[error("this manifest version was withdrawn")]
    Withdrawn,
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
    init_disk_on(&RealFiles, path, node, disk)
}

pub(crate) fn init_disk_on(
    files: &dyn Files,
    path: &Path,
    node: NodeId,
    disk: DiskId,
) -> Result<(), StoreError> {
    for sub in ["shards", "tmp", "quarantine"] {
        files.create_dir_all(&path.join(sub)).map_err(io(path))?;
    }
    files.sync_dir(path).map_err(io(path))?;
    let marker = path.join(MARKER);
    let mut f = files.create(&marker, false).map_err(io(&marker))?;
    f.write_all(
        format!(
            "exclave data directory\nnode = {}\ndisk = {}\n",
            node.0, disk.0
        )
        .as_bytes(),
    )
    .map_err(io(&marker))?;
    f.sync().map_err(io(&marker))?;
    files.sync_dir(path).map_err(io(path))
}

/// A node's store.
#[derive(Debug)]
pub struct Store {
    files: Arc<dyn Files>,
    disks: BTreeMap<DiskId, PathBuf>,
    db: Arc<Database>,
    /// Where the database lives (for the file census).
    db_path: PathBuf,
    tmp_seq: AtomicU64,
    /// Manifest writes: those arriving together share a commit. Gives the record held above
    /// the one written (`put_manifest`).
    group: GroupCommit<Option<Vec<u8>>, StoreError>,
}

impl Store {
    /// Opens the store: every data directory must carry its marker; the database lives in
    /// `state_dir`. Unacknowledged temp files from a crash are removed.
    pub fn open(
        state_dir: &Path,
        disks: &[(DiskId, PathBuf)],
        db_cache_bytes: usize,
    ) -> Result<Self, StoreError> {
        Self::open_on(Arc::new(RealFiles), state_dir, disks, db_cache_bytes)
    }

    /// [`Store::open`] on `files`.
    pub(crate) fn open_on(
        files: Arc<dyn Files>,
        state_dir: &Path,
        disks: &[(DiskId, PathBuf)],
        db_cache_bytes: usize,
    ) -> Result<Self, StoreError> {
        let mut map = BTreeMap::new();
        for (id, path) in disks {
            let marker = path.join(MARKER);
            let text = match files.read(&marker) {
                Ok(t) => String::from_utf8_lossy(&t).into_owned(),
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
            if let Ok(entries) = files.read_dir(&tmp) {
                for e in entries {
                    // Never acknowledged: a write that a crash interrupted.
                    let _ = files.remove_file(&e);
                }
            }
            map.insert(*id, path.clone());
        }
        files.create_dir_all(state_dir).map_err(io(state_dir))?;
        let db_path = state_dir.join("node.redb");
        let db = files.database(&db_path, db_cache_bytes).map_err(db_err)?;
        let txn = db.begin_write().map_err(db_err)?;
        for t in [
            HEADERS,
            MANIFESTS,
            QUARANTINE,
            ABORTED,
            FINDINGS,
            WITHDRAWAL_PROOFS,
        ] {
            txn.open_table(t).map_err(db_err)?;
        }
        txn.open_table(SCRUB_STATE).map_err(db_err)?;
        txn.open_table(CHECKPOINTS).map_err(db_err)?;
        txn.open_table(collect::COLLECTED).map_err(db_err)?;
        txn.open_table(collect::COLLECTED_TOTALS).map_err(db_err)?;
        let upgrade = check_format(&txn)?;
        txn.commit().map_err(db_err)?;
        if upgrade {
            upgrade_from_format_1(&db)?;
        }
        let db = Arc::new(db);
        Ok(Self {
            files,
            disks: map,
            group: GroupCommit::new(db.clone(), StoreError::Db),
            db,
            db_path,
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
            hex(&key.version.to_bytes()),
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
        let file = self.files.create(&tmp_path, true).map_err(io(&tmp_path))?;
        Ok(ShardWriter {
            file,
            files: self.files.clone(),
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

    /// Commits a finished shard: the file is durable; now its header, and in the same commit
    /// the ledger entry of the copy it replaced, if any.
    fn commit_header(
        &self,
        disk: DiskId,
        header: &ShardHeader,
        replaced: Option<Aside>,
    ) -> Result<(), StoreError> {
        let key = ShardKey {
            object: header.object,
            version: header.version,
            shard: header.shard_index.0,
        };
        let value = file_row(disk, &header.encode()?);
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = txn.open_table(HEADERS).map_err(db_err)?;
            t.insert(&key.to_bytes()[..], &value[..]).map_err(db_err)?;
            if let Some(a) = replaced {
                let mut q = txn.open_table(QUARANTINE).map_err(db_err)?;
                q.insert(&a.ledger_key[..], &a.record[..]).map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)
    }

    /// Keeps the stored copy of a shard about to be replaced: a second name for its file in
    /// the disk's `quarantine/` (made durable), and the ledger entry to commit with the new
    /// copy's header. The shard stays served under its own name until the new copy is
    /// renamed over it, so a crash at any point leaves one whole copy in place.
    pub(super) fn keep_aside(
        &self,
        key: &ShardKey,
        reason: &str,
        now_ms: u64,
    ) -> Result<Aside, StoreError> {
        let (disk, header) = self.header(key)?;
        let from = self.shard_path(disk, key)?;
        let (to, quarantine) = self.aside_path(disk, &from, now_ms)?;
        self.files.hard_link(&from, &to).map_err(io(&to))?;
        self.files.sync_dir(&quarantine).map_err(io(&quarantine))?;
        aside(key, disk, &to, reason, now_ms, &header)
    }

    /// Where a shard file goes when it is moved aside, and that directory (created).
    fn aside_path(
        &self,
        disk: DiskId,
        from: &Path,
        now_ms: u64,
    ) -> Result<(PathBuf, PathBuf), StoreError> {
        let root = self.disks.get(&disk).ok_or(StoreError::NoSuchDisk(disk))?;
        let name = from
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let quarantine = root.join("quarantine");
        self.files.create_dir_all(&quarantine).map_err(io(root))?;
        Ok((quarantine.join(format!("{name}.{now_ms}")), quarantine))
    }

    /// The header of a stored shard, and the disk it is on.
    pub fn header(&self, key: &ShardKey) -> Result<(DiskId, ShardHeader), StoreError> {
        self.row(key, decode_row)
    }

    /// `f` of a stored shard's row.
    fn row<T>(
        &self,
        key: &ShardKey,
        f: impl FnOnce(&[u8]) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(HEADERS).map_err(db_err)?;
        let v = t
            .get(&key.to_bytes()[..])
            .map_err(db_err)?
            .ok_or(StoreError::NotFound)?;
        f(v.value())
    }

    /// Reads `count` blocks from stripe `first` on, each checked against its CRC.
    pub fn read_blocks(
        &self,
        key: &ShardKey,
        first: u64,
        count: u64,
    ) -> Result<Vec<BlockRead>, StoreError> {
        let (disk, header, inline) = self.row(key, |v| {
            let (disk, header, inline) = split_row(v)?;
            let inline = inline.map(Bytes::copy_from_slice);
            Ok((disk, ShardHeader::decode(header)?, inline))
        })?;
        let g = header.geometry()?;
        let n = g.stripe_count();
        if first >= n || count == 0 || count > n - first {
            return Err(StoreError::BadShard(format!(
                "stripes {first}+{count} of {n}"
            )));
        }
        let data = match inline {
            Some(data) => data,
            None => self.map_shard(disk, key)?,
        };
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

    fn map_shard(&self, disk: DiskId, key: &ShardKey) -> Result<Bytes, StoreError> {
        let path = self.shard_path(disk, key)?;
        self.files.read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StoreError::NotFound,
            _ => StoreError::Io {
                path: path.clone(),
                error: e,
            },
        })
    }

    /// Moves a stored shard aside: the file goes to the disk's `quarantine/`, the reason and
    /// place into the quarantine ledger, and the shard is no longer served. Nothing is deleted.
    pub fn quarantine(
        &self,
        key: &ShardKey,
        reason: &str,
        now_ms: u64,
    ) -> Result<PathBuf, StoreError> {
        let (disk, header) = self.header(key)?;
        let from = self.shard_path(disk, key)?;
        let (to, quarantine) = self.aside_path(disk, &from, now_ms)?;
        match self.files.rename(&from, &to) {
            Ok(()) => {
                self.files.sync_dir(&quarantine).map_err(io(&quarantine))?;
                if let Some(dir) = from.parent() {
                    self.files.sync_dir(dir).map_err(io(dir))?;
                }
            }
            // The file was already gone: the ledger still records what was lost.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(StoreError::Io {
                    path: from,
                    error: e,
                });
            }
        }
        let a = aside(key, disk, &to, reason, now_ms, &header)?;
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut q = txn.open_table(QUARANTINE).map_err(db_err)?;
            q.insert(&a.ledger_key[..], &a.record[..]).map_err(db_err)?;
            let mut h = txn.open_table(HEADERS).map_err(db_err)?;
            h.remove(&key.to_bytes()[..]).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        Ok(to)
    }

    /// Shards held, and per disk (id, bytes in all, bytes free) from the file system.
    pub fn usage(&self) -> Result<(u64, Vec<DiskUsage>), StoreError> {
        let shards = {
            let txn = self.db.begin_read().map_err(db_err)?;
            let t = txn.open_table(HEADERS).map_err(db_err)?;
            t.len().map_err(db_err)?
        };
        let mut disks = Vec::new();
        for (id, path) in &self.disks {
            let (bytes, free) = self.files.space(path).map_err(io(path))?;
            disks.push(DiskUsage {
                id: id.0,
                bytes,
                free,
            });
        }
        Ok((shards, disks))
    }

    /// Number of entries in the quarantine ledger.
    pub fn quarantined(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(QUARANTINE).map_err(db_err)?;
        t.len().map_err(db_err)
    }
}

/// The row of a shard held in a file on `disk`: disk (u32 LE) ‖ encoded header.
fn file_row(disk: DiskId, header: &[u8]) -> Vec<u8> {
    let mut row = Vec::with_capacity(4 + header.len());
    row.extend_from_slice(&disk.0.to_le_bytes());
    row.extend_from_slice(header);
    row
}

/// The row of a shard held in the database: `INLINE_DISK` (u32 LE) ‖ header length (u32 LE) ‖
/// encoded header ‖ the shard's bytes. One row per shard, so a small object's write adds one
/// row per shard to its manifest's commit.
fn inline_row(header: &[u8], data: &[u8]) -> Vec<u8> {
    let mut row = Vec::with_capacity(8 + header.len() + data.len());
    row.extend_from_slice(&INLINE_DISK.0.to_le_bytes());
    row.extend_from_slice(&(header.len() as u32).to_le_bytes());
    row.extend_from_slice(header);
    row.extend_from_slice(data);
    row
}

/// A shard's row taken apart: its disk, its encoded header and, for an inline shard, its bytes.
type RowParts<'a> = (DiskId, &'a [u8], Option<&'a [u8]>);

/// A shard's row taken apart ([`RowParts`]).
fn split_row(v: &[u8]) -> Result<RowParts<'_>, StoreError> {
    let short = || StoreError::BadShard("short record".into());
    let (disk, rest) = v.split_first_chunk::<4>().ok_or_else(short)?;
    let disk = DiskId(u32::from_le_bytes(*disk));
    if disk != INLINE_DISK {
        return Ok((disk, rest, None));
    }
    let (len, rest) = rest.split_first_chunk::<4>().ok_or_else(short)?;
    let (header, data) = rest
        .split_at_checked(u32::from_le_bytes(*len) as usize)
        .ok_or_else(short)?;
    Ok((disk, header, Some(data)))
}

/// A shard's row (a value of the `shard_headers` table, `docs/format.md`) decoded: its disk and
/// header.
pub fn decode_row(v: &[u8]) -> Result<(DiskId, ShardHeader), StoreError> {
    let (disk, header, _) = split_row(v)?;
    Ok((disk, ShardHeader::decode(header)?))
}

/// Inline shards moved per commit by the upgrade from format 1 (bounds its memory).
const UPGRADE_BATCH: usize = if cfg!(test) { 2 } else { 4096 };

/// Whether the database is of format 1 (or new), to be upgraded; a newer format is refused.
fn check_format(txn: &redb::WriteTransaction) -> Result<bool, StoreError> {
    use redb::ReadableTable as _;
    let format = txn.open_table(STORE_FORMAT).map_err(db_err)?;
    match format.get("version").map_err(db_err)?.map(|v| v.value()) {
        None => Ok(true),
        Some(STORE_FORMAT_VERSION) => Ok(false),
        Some(v) => Err(StoreError::Db(format!(
            "the node database is of format {v}, newer than this build's \
             {STORE_FORMAT_VERSION}: run the newer exclaved"
        ))),
    }
}

/// Moves the bytes of a format 1 database's inline shards into their rows, [`UPGRADE_BATCH`]
/// at a time, each batch in one commit with the removal of what it moved, so a crash leaves
/// every shard whole in one form or the other and the next start goes on from there. The last
/// commit drops the old table and marks the format. Bytes no row names (no write leaves such)
/// go to the quarantine ledger; a header row whose bytes are missing keeps none (it reads as
/// corrupt and scrub quarantines it, as before).
fn upgrade_from_format_1(db: &Database) -> Result<(), StoreError> {
    use redb::ReadableTable as _;
    let now_ms = crate::sys::now_ms();
    let (mut moved, mut stray) = (0u64, 0u64);
    for batches in 1.. {
        let txn = db.begin_write().map_err(db_err)?;
        let done = {
            let mut inline = txn.open_table(INLINE).map_err(db_err)?;
            let mut headers = txn.open_table(HEADERS).map_err(db_err)?;
            let mut batch = Vec::new();
            for item in inline.iter().map_err(db_err)?.take(UPGRADE_BATCH) {
                let (k, v) = item.map_err(db_err)?;
                batch.push((k.value().to_vec(), v.value().to_vec()));
            }
            for (k, data) in &batch {
                let row = headers
                    .get(&k[..])
                    .map_err(db_err)?
                    .map(|v| v.value().to_vec());
                match row.as_deref().and_then(|v| v.split_first_chunk::<4>()) {
                    Some((disk, header)) if u32::from_le_bytes(*disk) == INLINE_DISK.0 => {
                        headers
                            .insert(&k[..], &inline_row(header, data)[..])
                            .map_err(db_err)?;
                        moved += 1;
                    }
                    _ => {
                        let (qkey, rec) =
                            ledger_entry(k, now_ms, true, "inline bytes no header row names", data);
                        let mut q = txn.open_table(QUARANTINE).map_err(db_err)?;
                        q.insert(&qkey[..], &rec[..]).map_err(db_err)?;
                        stray += 1;
                    }
                }
                inline.remove(&k[..]).map_err(db_err)?;
            }
            batch.len() < UPGRADE_BATCH
        };
        if done {
            txn.delete_table(INLINE).map_err(db_err)?;
            let mut format = txn.open_table(STORE_FORMAT).map_err(db_err)?;
            format
                .insert("version", STORE_FORMAT_VERSION)
                .map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        if done {
            break;
        }
        if batches % 100 == 0 {
            tracing::info!(moved, "store: moving inline shards into their rows");
        }
    }
    if moved + stray > 0 {
        tracing::info!(
            moved,
            stray,
            "store: inline shards moved into their rows (format 2)"
        );
    }
    if stray > 0 {
        tracing::warn!(
            stray,
            "store: inline bytes no header row names, quarantined"
        );
    }
    Ok(())
}

/// A quarantine ledger entry for a shard's row (or bytes) set aside in the database: its key
/// (shard key ‖ ms, u64 BE) and its record (text lines, then the row).
fn ledger_entry(
    shard_key: &[u8],
    now_ms: u64,
    inline: bool,
    reason: &str,
    row: &[u8],
) -> (Vec<u8>, Vec<u8>) {
    let mut key = shard_key.to_vec();
    key.extend_from_slice(&now_ms.to_be_bytes());
    let inline_line = if inline { "inline = true\n" } else { "" };
    let mut record = format!("at_ms = {now_ms}\n{inline_line}reason = {reason}\n").into_bytes();
    record.extend_from_slice(row);
    (key, record)
}

/// A shard copy moved aside: its quarantine ledger entry.
pub(super) struct Aside {
    ledger_key: Vec<u8>,
    record: Vec<u8>,
}

fn aside(
    key: &ShardKey,
    disk: DiskId,
    to: &Path,
    reason: &str,
    now_ms: u64,
    header: &ShardHeader,
) -> Result<Aside, StoreError> {
    let mut record = format!(
        "at_ms = {now_ms}\ndisk = {}\nfile = {}\nreason = {reason}\n",
        disk.0,
        to.display()
    )
    .into_bytes();
    record.extend_from_slice(&header.encode()?);
    let mut ledger_key = key.to_bytes().to_vec();
    ledger_key.extend_from_slice(&now_ms.to_be_bytes());
    Ok(Aside { ledger_key, record })
}

#[cfg(test)]
mod crash;
#[cfg(test)]
mod tests;
