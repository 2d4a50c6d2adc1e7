//! `exclave recover --from-dirs ... --export DIR`: every current object written as a plain file,
//! and every other version kept (noncurrent versions of versioned buckets) beside them, from
//! node data directories copied off the surviving sites, with no process running.
//!
//! Each directory is a site's as `exclave init` laid it out (`node.toml`, `state/`, the data
//! directories, `cluster.sealed`). The cluster record opens with the master key; the manifests
//! come out of each node's database and open with the manifest key; the newest version of each
//! key wins; every stripe is decoded from any k blocks that match their hashes and opened with
//! the object's data key. The catalog is checked against the newest checkpoint, as a live
//! recovery does.
//!
//! The export: `DIR/<bucket>/<key>` for keys that are safe paths; the others (`..`, empty or
//! over-long segments, control characters, a key that is also another key's directory) under
//! `DIR/<bucket>/.exclave-escaped/<hash>`. Noncurrent versions go to
//! `DIR/.exclave-versions/<bucket>/<version>` (the version's identity in hex). `DIR/manifest.jsonl`
//! maps every version to its file (a delete marker has none), with its S3 version id, whether
//! it is current, and its retention and legal hold;
//! `DIR/export-report.json` says what was exported, missing and unreadable. Files are written
//! to a temporary name and renamed, so a second run skips what is already there (resumable).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::census::Census;
use super::census::{CheckpointReport, Withdrawals};
use super::live::Progress;
use crate::config::read_daemon;
use crate::coordinator::Nodes;
use crate::core::format::{LockMode, Manifest, ManifestBody, ManifestEnvelope, Piece, Versioning};
use crate::core::hlc::Version;
use crate::core::ids::{DiskId, ObjectId, hex};
use crate::core::keys::{CheckpointKey, MasterKey};
use crate::core::record::{ClusterRecord, FILE_NAME};
use crate::core::stripe::{BlockHash, Codec, StripeContext, VerifiedBlock};
use crate::core::wire::ShardKey;
use crate::gateway::HIDDEN;
use crate::store::{BlockRead, CHECKPOINTS_KEPT, Store};

/// What to export, and where.
#[derive(Debug)]
pub struct OfflineOptions {
    /// Copies of the surviving nodes' directories (each with its `node.toml`).
    pub dirs: Vec<PathBuf>,
    /// The master key.
    pub master: MasterKey,
    /// The export directory.
    pub export: PathBuf,
}

/// What one node directory gave.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DirReport {
    /// The directory.
    pub dir: PathBuf,
    /// Node id and site.
    pub node: u32,
    /// Site name.
    pub site: String,
    /// Manifest records.
    pub manifests: u64,
    /// Records that did not open.
    pub unopenable: u64,
    /// Versions others gave whose placement names this node and it did not.
    pub lacking: u64,
    /// Newest checkpoint whose signature holds (0: none).
    pub newest_checkpoint: u64,
    /// Its withdrawals of failed writes.
    #[serde(flatten)]
    pub withdrawn: Withdrawals,
}

/// What an export did.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ExportReport {
    /// Per directory.
    pub dirs: Vec<DirReport>,
    /// Current objects found.
    pub objects: u64,
    /// Current objects exported (now or by an earlier run).
    pub exported: u64,
    /// Noncurrent versions (of versioned buckets) found.
    #[serde(default)]
    pub noncurrent: u64,
    /// Noncurrent versions exported (now or by an earlier run).
    #[serde(default)]
    pub noncurrent_exported: u64,
    /// Delete markers found (listed in `manifest.jsonl`, no file).
    #[serde(default)]
    pub delete_markers: u64,
    /// Bytes of every version exported.
    pub bytes: u64,
    /// Objects whose keys were escaped (see `manifest.jsonl`).
    pub escaped: u64,
    /// Objects with fewer than k good blocks in some stripe among the directories given.
    pub missing: Vec<String>,
    /// Objects that failed otherwise (authentication, a bad manifest).
    pub unreadable: Vec<String>,
    /// Objects stored under a key of their client's (SSE-C): the sites hold them, but no
    /// file can be written without that key, which exclave never keeps.
    #[serde(default)]
    pub customer_keyed: Vec<String>,
    /// The checkpoint checked against.
    pub checkpoint: Option<CheckpointReport>,
    /// Sites whose newest checkpoint is older than the newest.
    pub stale_sites: Vec<String>,
    /// Sites lacking manifest versions that the others had (withheld, missed while down, or
    /// rolled back); counts per directory in `dirs`.
    pub lacking_sites: Vec<String>,
    /// Seconds it took.
    pub seconds: f64,
}

/// One line of `manifest.jsonl`.
#[derive(Debug, Serialize)]
struct Line<'a> {
    bucket: &'a str,
    key: &'a str,
    /// The file (empty for a delete marker).
    path: String,
    size: u64,
    etag: &'a str,
    /// The version's identity (hex).
    version: String,
    /// Its S3 version id (`null` for a version written while versioning was not Enabled).
    version_id: String,
    /// The key's current version.
    current: bool,
    delete_marker: bool,
    content_type: Option<&'a str>,
    /// Object lock retention: mode and until (ms since the epoch).
    retention: Option<(&'static str, u64)>,
    legal_hold: bool,
}

impl<'a> Line<'a> {
    fn of(m: &'a Manifest, path: String, current: bool) -> Self {
        let meta = m.body.meta();
        Self {
            bucket: &m.bucket,
            key: &m.key,
            path,
            size: meta.map_or(0, |o| o.size),
            etag: meta.map_or("", |o| o.etag.as_str()),
            version: hex(&m.version.to_bytes()),
            version_id: if m.state.written_under == Versioning::Enabled {
                hex(&m.version.to_bytes())
            } else {
                "null".into()
            },
            current,
            delete_marker: meta.is_none(),
            content_type: meta.and_then(|o| o.content_type.as_deref()),
            retention: m.state.retention.map(|r| {
                let mode = match r.mode {
                    LockMode::Governance => "GOVERNANCE",
                    LockMode::Compliance => "COMPLIANCE",
                };
                (mode, r.until_ms)
            }),
            legal_hold: m.state.legal_hold,
        }
    }
}

struct OpenedNode {
    id: u32,
    site: String,
    store: Store,
}

/// Whether `key` can be a relative file path as is.
fn safe_path(key: &str) -> bool {
    !key.is_empty()
        && key.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg.len() <= 200
                && !seg.starts_with(".exclave")
                && !seg.chars().any(|c| c.is_control() || c == '\\')
        })
}

/// Runs an export.
pub fn export(
    o: &OfflineOptions,
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> anyhow::Result<ExportReport> {
    let started = Instant::now();
    if o.dirs.is_empty() {
        bail!("give the copied node directories: --from-dirs DIR,DIR,...");
    }
    // The nodes' stores and the newest cluster record that opens.
    let mut nodes = Vec::new();
    let mut record: Option<(ClusterRecord, u32)> = None;
    let mut why = Vec::new();
    for dir in &o.dirs {
        let cfg_path = dir.join("node.toml");
        let cfg = read_daemon(&cfg_path)
            .with_context(|| format!("{}: not a node directory", dir.display()))?;
        let Some(n) = cfg.node else {
            bail!("{}: no [node] section", cfg_path.display());
        };
        let sealed_path = n
            .cluster_record_file
            .clone()
            .unwrap_or_else(|| dir.join(FILE_NAME));
        match std::fs::read(&sealed_path) {
            Ok(sealed) => match ClusterRecord::open(&o.master, &sealed) {
                Ok(r) => {
                    if record
                        .as_ref()
                        .is_none_or(|b| b.0.written_ms < r.written_ms)
                    {
                        record = Some((r, ClusterRecord::sealed_key_id(&sealed).unwrap_or(0)));
                    }
                }
                Err(e) => why.push(format!("{}: {e}", sealed_path.display())),
            },
            Err(e) => why.push(format!("{}: {e}", sealed_path.display())),
        }
        let disks: Vec<(DiskId, PathBuf)> = n
            .disks
            .iter()
            .map(|d| (DiskId(d.id), d.path.clone()))
            .collect();
        let store = Store::open(&n.state_dir, &disks, n.db_cache_bytes)
            .with_context(|| format!("opening the node store in {}", dir.display()))?;
        nodes.push(OpenedNode {
            id: n.id,
            site: n.site.clone(),
            store,
        });
    }
    let Some((record, key_id)) = record else {
        bail!(
            "no cluster record opens with this master key: {}",
            why.join("; ")
        );
    };
    let master = MasterKey::from_bytes(key_id, *o.master.secret_bytes());
    let manifest_key = super::live::manifest_key(&record)?;
    // Placement only: no node is dialled.
    let objects = super::live::objects_of(&record, &master, Nodes::new(BTreeMap::new()))?;
    let ck = CheckpointKey::of(&master);

    // What the nodes withdrew (with proofs that hold), before any manifest: a site rolled
    // back to an old copy of its disk may hold a failed write that the others withdrew.
    let mut withdrawn = BTreeSet::new();
    let mut proofs = Vec::new();
    for n in &nodes {
        let (mut learned, mut refused, mut after) = (0u64, 0u64, None);
        loop {
            let page = n.store.list_withdrawn(after, 1000)?;
            let Some(last) = page.last() else { break };
            after = Some((last.object, last.version));
            for w in page {
                if manifest_key.proves_withdrawal(&w.object, w.version, &w.proof) {
                    withdrawn.insert((w.object, w.version));
                    learned += 1;
                } else {
                    refused += 1;
                }
            }
        }
        proofs.push((learned, refused));
    }

    // Every manifest, newest version per key.
    let mut census = Census::default();
    // Per key, each version's best copy.
    let mut versions: BTreeMap<(String, String), BTreeMap<Version, Manifest>> = BTreeMap::new();
    let mut reports = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        progress(Progress {
            phase: "manifests",
            done: i as u64,
            total: nodes.len() as u64,
        });
        let mut r = DirReport {
            dir: o.dirs[i].clone(),
            node: n.id,
            site: n.site.clone(),
            withdrawn: Withdrawals {
                withdrawals: proofs[i].0,
                withdrawals_refused: proofs[i].1,
                withdrawn_served: 0,
            },
            ..DirReport::default()
        };
        r.newest_checkpoint =
            census.add_checkpoints(n.id, &n.store.checkpoints(CHECKPOINTS_KEPT)?, &ck);
        let mut after: Option<(ObjectId, Version)> = None;
        loop {
            let page = n.store.list_manifests(after, 1000)?;
            let Some(last) = page.last() else { break };
            let env = ManifestEnvelope::parse(last)?;
            after = Some((env.object, env.version));
            for rec in &page {
                r.manifests += 1;
                let Ok(m) = Manifest::open(&manifest_key, rec) else {
                    r.unopenable += 1;
                    continue;
                };
                if withdrawn.contains(&(m.object, m.version)) {
                    r.withdrawn.withdrawn_served += 1;
                    continue;
                }
                census.add_manifest(n.id, &m);
                if m.bucket.contains(HIDDEN) || m.key.is_empty() {
                    continue;
                }
                // Each version's best copy (a removal is a later copy of its version).
                let copies = versions
                    .entry((m.bucket.clone(), m.key.clone()))
                    .or_default();
                if copies
                    .get(&m.version)
                    .is_none_or(|c| c.precedence() < m.precedence())
                {
                    copies.insert(m.version, m);
                }
            }
        }
        reports.push(r);
    }
    let ids: Vec<u32> = nodes.iter().map(|n| n.id).collect();
    let lacking = census.lacking(&objects, &ids);
    for r in &mut reports {
        r.lacking = lacking.get(&r.node).copied().unwrap_or(0);
    }
    let site_of: BTreeMap<u32, String> = nodes.iter().map(|n| (n.id, n.site.clone())).collect();
    let (checkpoint, stale_sites) = census.verify(&site_of);

    // The files.
    std::fs::create_dir_all(&o.export)
        .with_context(|| format!("creating {}", o.export.display()))?;
    let by_node: BTreeMap<u32, &Store> = nodes.iter().map(|n| (n.id, &n.store)).collect();
    let mut report = ExportReport {
        dirs: reports,
        checkpoint,
        stale_sites,
        lacking_sites: Census::lacking_sites(&lacking, &site_of),
        ..ExportReport::default()
    };
    // Each key's current version, as a gateway's read chooses it, and the others it keeps.
    let mut live: Vec<&Manifest> = Vec::new();
    // The others: (version, current: a delete marker may be).
    let mut older: Vec<(&Manifest, bool)> = Vec::new();
    for copies in versions.values() {
        let current = crate::core::quorum::current(copies.values());
        for m in crate::core::quorum::kept(copies.values()) {
            let is_current = current.is_some_and(|c| c.version == m.version);
            match &m.body {
                ManifestBody::Object(_) | ManifestBody::Parts(_) if is_current => live.push(m),
                ManifestBody::Object(_) | ManifestBody::Parts(_) => {
                    report.noncurrent += 1;
                    older.push((m, false));
                }
                ManifestBody::Tombstone if m.state.written_under != Versioning::Unversioned => {
                    report.delete_markers += 1;
                    older.push((m, is_current));
                }
                ManifestBody::Tombstone => {}
            }
        }
    }
    report.objects = live.len() as u64;
    let mut lines = std::fs::File::create(o.export.join("manifest.jsonl"))?;
    // Paths taken as files and as directories, per bucket, to escape keys that collide.
    let mut files: HashSet<PathBuf> = HashSet::new();
    let mut dirs: HashSet<PathBuf> = HashSet::new();
    for (i, m) in live.iter().enumerate() {
        if i % 50 == 0 {
            progress(Progress {
                phase: "export",
                done: i as u64,
                total: live.len() as u64,
            });
        }
        let Some(meta) = m.body.meta() else {
            continue;
        };
        let plain = PathBuf::from(&m.bucket).join(&m.key);
        let collides =
            plain.ancestors().skip(1).any(|a| files.contains(a)) || dirs.contains(&plain);
        let rel = if safe_path(&m.bucket) && safe_path(&m.key) && !collides {
            let mut p = plain.clone();
            while let Some(parent) = p.parent() {
                if parent.as_os_str().is_empty() {
                    break;
                }
                dirs.insert(parent.to_path_buf());
                p = parent.to_path_buf();
            }
            files.insert(plain.clone());
            plain
        } else {
            report.escaped += 1;
            let h = blake3::hash(format!("{}\0{}", m.bucket, m.key).as_bytes());
            PathBuf::from(if safe_path(&m.bucket) {
                m.bucket.clone()
            } else {
                ".exclave-escaped-buckets".into()
            })
            .join(".exclave-escaped")
            .join(hex(&h.as_bytes()[..16]))
        };
        let path = o.export.join(&rel);
        let what = format!("{}/{}", m.bucket, m.key);
        if !export_file(&master, &by_node, m, &path, &what, &mut report) {
            continue;
        }
        report.exported += 1;
        report.bytes += meta.size;
        serde_json::to_writer(
            &mut lines,
            &Line::of(m, rel.to_string_lossy().into_owned(), true),
        )?;
        lines.write_all(b"\n")?;
    }
    for (i, (m, current)) in older.iter().enumerate() {
        if i % 50 == 0 {
            progress(Progress {
                phase: "export",
                done: (live.len() + i) as u64,
                total: (live.len() + older.len()) as u64,
            });
        }
        let rel = match m.body.meta() {
            None => String::new(),
            Some(meta) => {
                let bucket = if safe_path(&m.bucket) {
                    m.bucket.clone()
                } else {
                    hex(&blake3::hash(m.bucket.as_bytes()).as_bytes()[..16])
                };
                let rel = PathBuf::from(".exclave-versions")
                    .join(bucket)
                    .join(hex(&m.version.to_bytes()));
                let path = o.export.join(&rel);
                let what = format!(
                    "{}/{} version {}",
                    m.bucket,
                    m.key,
                    hex(&m.version.to_bytes())
                );
                if !export_file(&master, &by_node, m, &path, &what, &mut report) {
                    continue;
                }
                report.noncurrent_exported += 1;
                report.bytes += meta.size;
                rel.to_string_lossy().into_owned()
            }
        };
        serde_json::to_writer(&mut lines, &Line::of(m, rel, *current))?;
        lines.write_all(b"\n")?;
    }
    lines.sync_all()?;
    report.seconds = started.elapsed().as_secs_f64();
    std::fs::write(
        o.export.join("export-report.json"),
        serde_json::to_vec_pretty(&report)?,
    )?;
    Ok(report)
}

/// Writes version `m` (named `what` in the report) to `path`, unless a whole file is there
/// from an earlier run; a failure goes into `report`'s `missing` or `unreadable`. Returns
/// whether the file is there.
fn export_file(
    master: &MasterKey,
    stores: &BTreeMap<u32, &Store>,
    m: &Manifest,
    path: &Path,
    what: &str,
    report: &mut ExportReport,
) -> bool {
    let size = m.body.meta().map_or(0, |meta| meta.size);
    if m.body
        .meta()
        .is_some_and(|meta| crate::core::ssec::stored_check(meta).is_some())
    {
        report.customer_keyed.push(what.to_owned());
        return false;
    }
    if std::fs::metadata(path).is_ok_and(|md| md.len() == size) {
        return true;
    }
    match write_object(master, stores, m, path) {
        Ok(()) => true,
        Err(Failure::Missing(e)) => {
            report.missing.push(format!("{what}: {e}"));
            false
        }
        Err(Failure::Other(e)) => {
            report.unreadable.push(format!("{what}: {e:#}"));
            false
        }
    }
}

enum Failure {
    /// Fewer than k good blocks for a stripe.
    Missing(String),
    Other(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Self::Other(e.into())
    }
}

/// Decodes the object (each of its pieces: itself, or its parts, in order) from the stores
/// and writes it to `path` (temporary name, fsync, rename).
fn write_object(
    master: &MasterKey,
    stores: &BTreeMap<u32, &Store>,
    m: &Manifest,
    path: &Path,
) -> Result<(), Failure> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension("exclave-partial");
    let mut f = std::fs::File::create(&tmp)?;
    for piece in m.body.pieces(m.object, m.version) {
        if let Err(e) = write_piece(master, stores, &piece, &mut f) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    }
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Appends one piece's plaintext to `f`.
fn write_piece(
    master: &MasterKey,
    stores: &BTreeMap<u32, &Store>,
    piece: &Piece<'_>,
    f: &mut std::fs::File,
) -> Result<(), Failure> {
    let meta = piece.meta;
    let key = master.unwrap_data_key(&meta.dek, &piece.object, piece.version)?;
    let g = meta.geometry()?;
    let codec = Arc::new(Codec::new(g.profile));
    let n = g.profile.n();
    let total = if meta.size == 0 { 0 } else { g.stripe_count() };
    const BATCH: u64 = 16;
    let mut s = 0;
    while s < total {
        let count = BATCH.min(total - s);
        // Per shard, this batch's blocks (None where the shard is not here or bad).
        let mut per_shard: Vec<Vec<Option<bytes::Bytes>>> = Vec::with_capacity(n);
        for (i, loc) in meta.placement.iter().enumerate() {
            let blocks = stores
                .get(&loc.node.0)
                .and_then(|st| {
                    st.read_blocks(
                        &ShardKey {
                            object: piece.object,
                            version: piece.version,
                            shard: i as u8,
                        },
                        s,
                        count,
                    )
                    .ok()
                })
                .map(|bs| {
                    bs.into_iter()
                        .map(|b| match b {
                            BlockRead::Ok(b) => Some(b),
                            BlockRead::Corrupt => None,
                        })
                        .collect()
                })
                .unwrap_or_else(|| vec![None; count as usize]);
            per_shard.push(blocks);
        }
        for j in 0..count {
            let stripe = s + j;
            let offers: Vec<Option<VerifiedBlock>> = (0..n)
                .map(|i| {
                    let b = per_shard.get(i)?.get(j as usize)?.clone()?;
                    let want: &BlockHash = meta.block_hashes.get(stripe as usize * n + i)?;
                    VerifiedBlock::verify(b, want).ok()
                })
                .collect();
            let good = offers.iter().filter(|o| o.is_some()).count();
            if good < g.profile.k() {
                return Err(Failure::Missing(format!(
                    "stripe {stripe}: {good} good blocks of the {} needed",
                    g.profile.k()
                )));
            }
            let ctx = StripeContext {
                object: piece.object,
                version: piece.version,
                index: stripe,
                last: stripe + 1 == total,
            };
            let opened = codec
                .open_verified(&key, &ctx, g.stripe_len(stripe), &offers)
                .map_err(|e| anyhow::anyhow!("stripe {stripe}: {e}"))?;
            f.write_all(&opened.plaintext)?;
        }
        s += count;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::safe_path;

    #[test]
    fn unsafe_keys_are_named() {
        for ok in ["a", "a/b.xml", "land registry/ü.pdf", "x..y"] {
            assert!(safe_path(ok), "{ok}");
        }
        for bad in [
            "",
            "/a",
            "a/",
            "a//b",
            "..",
            "a/../b",
            "./a",
            "a\\b",
            "a\u{0}b",
            "a\nb",
            ".exclave-escaped/x",
        ] {
            assert!(!safe_path(bad), "{bad:?}");
        }
        assert!(!safe_path(&"x".repeat(201)));
    }
}
