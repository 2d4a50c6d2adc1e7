//! Whole objects over the cluster: seal, code and upload under the write quorum, then write the
//! sealed manifest to a manifest quorum; and back: find the newest manifest at a read quorum,
//! fetch stripes (hedged), decode and open, streamed batch by batch.
//!
//! Manifest quorums: a manifest goes to every distinct node of the placement (N of them);
//! a write needs W = min(w, N) acknowledgements (w: the write quorum, k + 1 unless configured
//! higher), a read asks until R = N - W + 1 have answered, so every read quorum overlaps every
//! write quorum (read-after-write).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::coordinator::drive::{Nodes, PutError, ReadError, ShardTarget, StripeSink};
use crate::core::format::{FormatError, Manifest, ManifestBody, ObjectMeta, ShardHeader};
use crate::core::hlc::{Hlc, Version};
use crate::core::ids::{NodeId, ObjectId, ShardIndex};
use crate::core::keys::{DataKey, KeyError, ManifestKey, MasterKey};
use crate::core::layout::{self, Layout, Plan, ShardLocation};
use crate::core::stripe::{Codec, DecodeError, EncodedStripe, Geometry, StripeContext};

/// Stripes fetched per read request.
const READ_BATCH: u64 = 8;

/// What an acknowledged write went without, for repair: shards not durable at their nodes,
/// and whether some manifest node did not take the record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Missed {
    /// Shard indices not durable.
    pub shards: Vec<usize>,
    /// Some node of the placement lacks the manifest record.
    pub manifest: bool,
}

impl Missed {
    /// Anything to repair.
    #[must_use]
    pub fn any(&self) -> bool {
        self.manifest || !self.shards.is_empty()
    }
}

/// Errors of object operations.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// The shard write quorum was not reached.
    #[error(transparent)]
    Put(#[from] PutError),
    /// The manifest quorum was not reached.
    #[error("manifest written to {durable} of the {needed} nodes needed")]
    ManifestQuorum {
        /// Acknowledged.
        durable: usize,
        /// Needed.
        needed: usize,
    },
    /// Not enough manifest replicas answered.
    #[error("only {answered} of the {needed} nodes needed answered for the manifest")]
    ReadQuorum {
        /// Answered.
        answered: usize,
        /// Needed.
        needed: usize,
    },
    /// The nodes that answered hold no version as new as the one the caller knows to be
    /// current (withheld, or rolled back at too many sites): an older one is never served.
    #[error(
        "the current version ({floor:?}) is not held by any node that answered (newest found: \
         {found:?})"
    )]
    Behind {
        /// The newest version found.
        found: Option<Version>,
        /// The version known to be current.
        floor: Version,
    },
    /// Reading the body failed.
    #[error("reading the body: {0}")]
    Body(#[from] std::io::Error),
    /// Too few of the object's sites are reachable for its write quorum, as far as is known
    /// now: the write is refused before its body is read.
    #[error("only {reachable} of the {needed} sites a write needs are reachable")]
    SitesDown {
        /// Distinct sites of the placement not known to be down.
        reachable: usize,
        /// The write quorum in sites.
        needed: usize,
    },
    /// The body was not as long as announced.
    #[error("the body ended after {got} of {expected} bytes")]
    ShortBody {
        /// Bytes read.
        got: u64,
        /// Bytes announced.
        expected: u64,
    },
    /// Fetching stripes failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A stripe did not decode (should be impossible after hash checks: a forgery or a bug).
    #[error("stripe {stripe}: {error}")]
    Decode {
        /// Stripe.
        stripe: u64,
        /// Why.
        error: DecodeError,
    },
    /// Key handling.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A manifest could not be sealed.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// A background task failed.
    #[error("internal: {0}")]
    Internal(String),
}

/// What to store with an object.
#[derive(Clone, Debug, Default)]
pub struct PutInput {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// Exact body length.
    pub size: u64,
    /// Content-Type.
    pub content_type: Option<String>,
    /// User metadata.
    pub user_metadata: Vec<(String, String)>,
    /// Other stored headers (Cache-Control, Content-Disposition, ...), names lower-case.
    pub headers: Vec<(String, String)>,
}

/// An object whose shards are durable (at the write quorum) but whose manifest is not written
/// yet: invisible until [`Objects::commit`]. The caller may check digests and fill in what the
/// manifest records before committing, or drop it (the shards are then orphans for collection).
#[derive(Debug)]
pub struct Staged {
    bucket: String,
    key: String,
    object: ObjectId,
    version: Version,
    /// The object's record, to check and to fill in (checksums, a multipart ETag, parts)
    /// before committing.
    pub meta: ObjectMeta,
    targets: Vec<ShardTarget>,
    /// Shard indices that did not become durable (the write quorum was met without them):
    /// to be recorded for repair.
    pub missing: Vec<usize>,
    /// A small object's shards (header, blocks), sent with the manifest records at commit.
    inline: Option<Vec<(ShardHeader, Vec<u8>)>>,
}

/// What every staged object starts from: its id, version, key and placement.
struct Prelude {
    object: ObjectId,
    version: Version,
    dek: DataKey,
    wrapped: crate::core::keys::WrappedKey,
    block_size: u32,
    placement: Vec<ShardLocation>,
    targets: Vec<ShardTarget>,
}

/// Once a write has its quorum, how long the remaining sites may still answer before they are
/// counted as missed (and, for shards, recorded for repair).
const STRAGGLER_GRACE: Duration = Duration::from_millis(500);

/// Objects smaller than this ride inside the manifest records by default.
pub const DEFAULT_INLINE_LIMIT: u64 = 128 * 1024;

/// The object store of a gateway: keys, layout and nodes.
#[derive(Debug)]
pub struct Objects {
    nodes: Nodes,
    layout: Layout,
    plan: Plan,
    master: MasterKey,
    previous_keys: Vec<[u8; 32]>,
    manifest_key: ManifestKey,
    hlc: Mutex<Hlc>,
    block_size: u32,
    codec: Arc<Codec>,
    write_timeout: Duration,
    /// Shards durable at distinct sites (and manifest copies) before a write is acknowledged.
    write_quorum: usize,
    inline_limit: u64,
    /// Shards reads found bad (hash mismatch, CRC, missing), for repair.
    bad_reports: Mutex<Vec<(ObjectId, Version, Vec<usize>)>>,
    /// Earlier layouts, newest first: keys last written under them are found there.
    history: Vec<(Layout, Plan)>,
    /// Failed writes whose withdrawal some nodes have not confirmed (see `withdraw.rs`).
    pub(super) withdrawals: Mutex<crate::core::ops::Pending>,
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    crate::sys::random(&mut b);
    b
}

fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Objects {
    /// An object store over `nodes` with `layout` (already checked into `plan`).
    pub fn new(
        nodes: Nodes,
        layout: Layout,
        plan: Plan,
        master: MasterKey,
        manifest_key: ManifestKey,
        hlc: Hlc,
        block_size: u32,
    ) -> Self {
        let codec = Arc::new(Codec::new(layout.profile));
        let write_quorum = layout.profile.k() + 1;
        Self {
            nodes,
            layout,
            plan,
            master,
            previous_keys: Vec::new(),
            manifest_key,
            hlc: Mutex::new(hlc),
            block_size,
            codec,
            write_timeout: Duration::from_secs(60),
            write_quorum,
            inline_limit: DEFAULT_INLINE_LIMIT,
            bad_reports: Mutex::new(Vec::new()),
            history: Vec::new(),
            withdrawals: Mutex::default(),
        }
    }

    pub(super) fn targets(&self, object: &ObjectId) -> Vec<ShardTarget> {
        to_targets(&layout::place(&self.layout, &self.plan, object))
    }

    /// Where an object's shards go under the current layout, then under each earlier one
    /// (newest first), computed as they are taken.
    pub(super) fn placements_of<'a>(
        &'a self,
        object: &'a ObjectId,
    ) -> impl Iterator<Item = Vec<ShardTarget>> + 'a {
        std::iter::once((&self.layout, &self.plan))
            .chain(self.history.iter().map(|(l, p)| (l, p)))
            .map(move |(l, p)| to_targets(&layout::place(l, p, object)))
    }

    /// Where an object's shards go under the current layout, then under each earlier one
    /// (newest first).
    pub fn placements(&self, object: &ObjectId) -> Vec<Vec<ShardTarget>> {
        self.placements_of(object).collect()
    }

    /// Earlier layouts (checked into plans), newest first: objects placed under them stay
    /// where they are and are found there.
    pub fn set_history(&mut self, history: Vec<(Layout, Plan)>) {
        self.history = history;
    }

    /// The erasure profile of the layout.
    pub fn profile(&self) -> crate::core::stripe::Profile {
        self.layout.profile
    }

    /// The opaque id of (bucket, key).
    pub fn object_id(&self, bucket: &str, key: &str) -> ObjectId {
        self.manifest_key.object_id(bucket, key)
    }

    /// Opens a sealed manifest record with the manifest key.
    pub(crate) fn open_manifest(&self, sealed: &[u8]) -> Result<Manifest, FormatError> {
        Manifest::open(&self.manifest_key, sealed)
    }

    /// Shards that reads found bad since the last call, for repair.
    pub fn take_bad_reports(&self) -> Vec<(ObjectId, Version, Vec<usize>)> {
        std::mem::take(&mut *self.bad_reports.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The node clients.
    pub fn nodes(&self) -> &Nodes {
        &self.nodes
    }
    fn stamp(&self) -> Version {
        let mut hlc = self
            .hlc
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        hlc.stamp(wall_ms())
    }

    pub(super) fn manifest_nodes(targets: &[ShardTarget]) -> Vec<NodeId> {
        targets
            .iter()
            .map(|t| t.node)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    fn write_quorum(&self, n_nodes: usize) -> usize {
        self.write_quorum.min(n_nodes)
    }

    /// Distinct sites that must hold a durable shard before a write to `targets` is
    /// acknowledged.
    fn site_quorum(&self, targets: &[ShardTarget]) -> usize {
        let sites: BTreeSet<_> = targets.iter().map(|t| t.site).collect();
        self.write_quorum.min(sites.len())
    }

    /// Acknowledges writes only once `w` shards are durable at distinct sites (k + 1 by
    /// default; at most k + m, when every shard must be).
    pub fn set_write_quorum(&mut self, w: usize) -> Result<(), String> {
        let p = self.layout.profile;
        if w <= p.k() || w > p.n() {
            return Err(format!(
                "write_quorum {w} is outside {}..={} (k + 1 ..= k + m)",
                p.k() + 1,
                p.n()
            ));
        }
        self.write_quorum = w;
        Ok(())
    }

    /// Stores an object read from `body` (exactly `input.size` bytes) and commits it.
    pub async fn put(
        &self,
        input: PutInput,
        body: impl AsyncRead + Unpin,
    ) -> Result<Manifest, ObjectError> {
        let staged = self.stage(input, body).await?;
        self.commit(staged).await
    }

    /// Objects below `limit` bytes ride inside the manifest records (0 turns it off).
    pub fn set_inline_limit(&mut self, limit: u64) {
        self.inline_limit = limit;
    }

    /// Makes a staged object visible: writes its manifest to a manifest quorum.
    pub async fn commit(&self, staged: Staged) -> Result<Manifest, ObjectError> {
        self.commit_reporting(staged).await.map(|(m, _)| m)
    }

    /// As [`Self::commit`], also returning what the write went without (for repair).
    pub async fn commit_reporting(
        &self,
        staged: Staged,
    ) -> Result<(Manifest, Missed), ObjectError> {
        let manifest = Manifest {
            bucket: staged.bucket,
            key: staged.key,
            object: staged.object,
            version: staged.version,
            created_ms: wall_ms(),
            body: ManifestBody::Object(staged.meta),
        };
        let missed = match staged.inline {
            None => Missed {
                manifest: !self.write_manifest(&manifest, &staged.targets).await?,
                shards: staged.missing,
            },
            Some(shards) => {
                self.write_inline(&manifest, &staged.targets, shards)
                    .await?
            }
        };
        Ok((manifest, missed))
    }

    /// Sends each node the manifest with its shards; needs a manifest quorum of nodes and
    /// write-quorum shards at distinct sites.
    async fn write_inline(
        &self,
        manifest: &Manifest,
        targets: &[ShardTarget],
        shards: Vec<(ShardHeader, Vec<u8>)>,
    ) -> Result<Missed, ObjectError> {
        let sealed = manifest.seal(&self.manifest_key, random())?;
        let nodes = Self::manifest_nodes(targets);
        let all = nodes.len();
        let needed = self.write_quorum(all);
        let mut per_node: BTreeMap<NodeId, Vec<(usize, crate::core::wire::InlineShard)>> =
            BTreeMap::new();
        for (i, (h, data)) in shards.into_iter().enumerate() {
            let header = h.encode()?;
            per_node
                .entry(targets[i].node)
                .or_default()
                .push((i, crate::core::wire::InlineShard { header, data }));
        }
        let mut set = tokio::task::JoinSet::new();
        for n in nodes {
            let mine = per_node.remove(&n).unwrap_or_default();
            let (client, sealed) = (self.nodes.client(n).cloned(), sealed.clone());
            let timeout = self.write_timeout;
            set.spawn(async move {
                let indices: Vec<usize> = mine.iter().map(|(i, _)| *i).collect();
                let records = mine.into_iter().map(|(_, s)| s).collect();
                let ok = match client {
                    Some(c) => {
                        let put = c.put_manifest_inline(sealed, records);
                        match tokio::time::timeout(timeout, put).await {
                            Ok(r) => r.is_ok(),
                            Err(_) => {
                                c.note_unanswered();
                                false
                            }
                        }
                    }
                    None => false,
                };
                (ok, indices)
            });
        }
        let sites_needed = self.site_quorum(targets);
        let durable_of = |answers: &[(bool, Vec<usize>)]| {
            let ok: Vec<&Vec<usize>> = answers.iter().filter(|a| a.0).map(|a| &a.1).collect();
            let shards: Vec<usize> = ok.iter().flat_map(|v| v.iter().copied()).collect();
            (ok.len(), shards)
        };
        // The stragglers' shards (past the grace after the quorum) are recorded as missing.
        let answers = until_quorum(set, |answers| {
            let (nodes, shards) = durable_of(answers);
            let sites: BTreeSet<_> = shards.iter().map(|&i| targets[i].site).collect();
            nodes >= needed && sites.len() >= sites_needed
        })
        .await;
        let (durable_nodes, durable) = durable_of(&answers);
        let missing: Vec<usize> = (0..targets.len())
            .filter(|i| !durable.contains(i))
            .collect();
        let sites: BTreeSet<_> = durable.iter().map(|&i| targets[i].site).collect();
        if durable_nodes < needed || sites.len() < sites_needed {
            self.withdraw(manifest, targets).await;
            return Err(ObjectError::ManifestQuorum {
                durable: durable_nodes,
                needed,
            });
        }
        Ok(Missed {
            shards: missing,
            manifest: durable_nodes < all,
        })
    }

    /// Writes a delete (a tombstone version) for (bucket, key) to a manifest quorum; also
    /// says whether some manifest node did not take it (for repair).
    pub async fn delete(&self, bucket: &str, key: &str) -> Result<(Manifest, Missed), ObjectError> {
        let object = self.manifest_key.object_id(bucket, key);
        let targets = self.targets(&object);
        let manifest = Manifest {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            object,
            version: self.stamp(),
            created_ms: wall_ms(),
            body: ManifestBody::Tombstone,
        };
        let missed = Missed {
            shards: Vec::new(),
            manifest: !self.write_manifest(&manifest, &targets).await?,
        };
        Ok((manifest, missed))
    }

    /// Every manifest record a node holds, opened (records that do not open are skipped and
    /// counted). For rebuilding the index and for recovery.
    pub async fn scan_node(&self, node: NodeId) -> Result<(Vec<Manifest>, usize), ObjectError> {
        let client = self
            .nodes
            .client(node)
            .cloned()
            .ok_or_else(|| ObjectError::Internal(format!("no client for node {}", node.0)))?;
        let (mut out, mut bad, mut after) = (Vec::new(), 0usize, None);
        loop {
            let page = client
                .list_manifests(after, 1000)
                .await
                .map_err(|e| ObjectError::Internal(format!("node {}: {e}", node.0)))?;
            let Some(last) = page.last() else { break };
            let env = crate::core::format::ManifestEnvelope::parse(last)?;
            after = Some((env.object, env.version));
            for rec in &page {
                match Manifest::open(&self.manifest_key, rec) {
                    Ok(m) => out.push(m),
                    Err(_) => bad += 1,
                }
            }
        }
        Ok((out, bad))
    }

    /// Earlier master keys (their secret bytes), for data keys a rotation has not re-wrapped
    /// yet.
    pub fn set_previous_keys(&mut self, keys: Vec<[u8; 32]>) {
        self.previous_keys = keys;
    }

    /// The data key of an object version: unwrapped with the master key, or with the earlier
    /// one whose check value the wrapped key names.
    pub fn data_key(&self, meta: &ObjectMeta, m: &Manifest) -> Result<DataKey, ObjectError> {
        if meta.dek.key_id != self.master.id() || meta.dek.kcv != self.master.check_value() {
            for bytes in &self.previous_keys {
                let old = MasterKey::from_bytes(meta.dek.key_id, *bytes);
                if old.check_value() == meta.dek.kcv {
                    return Ok(old.unwrap_data_key(&meta.dek, &m.object, m.version)?);
                }
            }
        }
        Ok(self
            .master
            .unwrap_data_key(&meta.dek, &m.object, m.version)?)
    }

    /// A fresh version: every version stamped after it is newer.
    pub fn stamp_floor(&self) -> Version {
        self.stamp()
    }

    /// The key that signs catalog checkpoints, derived from the master key.
    pub fn checkpoint_key(&self) -> crate::core::keys::CheckpointKey {
        crate::core::keys::CheckpointKey::of(&self.master)
    }

    /// Moves the clock past `seen` (a version found in the index or at the nodes), so new
    /// writes are newer than everything already written, whatever the wall clock says.
    pub fn observe(&self, seen: Version) {
        self.hlc
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .observe(seen);
    }

    /// The block size of an object of `size` bytes: the configured one, or for an object that
    /// fits one stripe, the smallest multiple of 64 bytes that holds it, so a small object does
    /// not store k + m full blocks of padding.
    pub fn block_size_for(&self, size: u64) -> u32 {
        let k = self.layout.profile.k() as u64;
        let full = k * u64::from(self.block_size) - 16;
        if size >= full {
            return self.block_size;
        }
        let need = (size + 16).div_ceil(k).div_ceil(64) * 64;
        need.max(u64::from(crate::core::format::MIN_BLOCK_SIZE)) as u32
    }

    /// The nodes of the layout.
    pub fn node_ids(&self) -> Vec<NodeId> {
        std::iter::once(&self.layout)
            .chain(self.history.iter().map(|(l, _)| l))
            .flat_map(|l| l.sites.iter().flat_map(|s| s.nodes.iter().map(|n| n.id)))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    /// Seals, codes and uploads an object read from `body` (exactly `input.size` bytes) under
    /// the write quorum, never more than a few stripes in memory; the manifest is not written.
    pub async fn stage(
        &self,
        input: PutInput,
        mut body: impl AsyncRead + Unpin,
    ) -> Result<Staged, ObjectError> {
        let p = self.prelude(&input);
        // Known down now: refused at once, not after every upload to them timed out.
        let needed = self.site_quorum(&p.targets);
        let reachable: BTreeSet<_> = p
            .targets
            .iter()
            .filter(|t| self.nodes.client(t.node).is_some_and(|c| !c.known_down()))
            .map(|t| t.site)
            .collect();
        if reachable.len() < needed {
            return Err(ObjectError::SitesDown {
                reachable: reachable.len(),
                needed,
            });
        }
        if input.size < self.inline_limit {
            return self.stage_inline(p, input, body).await;
        }
        let Prelude {
            object,
            version,
            ref dek,
            block_size,
            ref targets,
            ..
        } = p;
        let profile = self.layout.profile;
        let geometry = Geometry {
            profile,
            block_size,
            size: input.size,
        };
        let needed = self.site_quorum(targets);
        let mut sink = StripeSink::start(
            &self.nodes,
            targets,
            object,
            version,
            geometry,
            needed,
            self.write_timeout,
        );

        let n = geometry.stripe_count();
        let mut crcs: Vec<Vec<u32>> = vec![Vec::with_capacity(n as usize); profile.n()];
        let mut hashes = Vec::with_capacity(n as usize * profile.n());
        let mut read_total = 0u64;
        let (md5_tx, mut md5_rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        let md5_task = tokio::task::spawn_blocking(move || {
            use md5::Digest as _;
            let mut h = md5::Md5::new();
            while let Some(b) = md5_rx.blocking_recv() {
                h.update(&b);
            }
            crate::core::ids::hex(&h.finalize())
        });
        // One stripe is encoded on a blocking thread while the previous one is sent.
        let mut pending: Option<tokio::task::JoinHandle<Result<EncodedStripe, ObjectError>>> = None;
        for s in 0..n {
            let len = geometry.stripe_len(s);
            let mut buf = vec![0u8; len];
            body.read_exact(&mut buf)
                .await
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::UnexpectedEof => ObjectError::ShortBody {
                        got: read_total,
                        expected: input.size,
                    },
                    _ => ObjectError::Body(e),
                })?;
            read_total += len as u64;
            // The ETag's MD5 runs on its own thread over the same bytes, overlapped with sealing
            // and coding (which need their own copy: they seal in place).
            let plain = Bytes::from(buf);
            if md5_tx.send(plain.clone()).await.is_err() {
                return Err(ObjectError::Internal("the MD5 task ended".into()));
            }
            let mut buf = Vec::with_capacity(profile.k() * block_size as usize);
            buf.extend_from_slice(&plain);
            let (codec, key, bs) = (self.codec.clone(), dek.clone(), block_size);
            let ctx = StripeContext {
                object,
                version,
                index: s,
                last: s + 1 == n,
            };
            let next = tokio::task::spawn_blocking(move || {
                codec
                    .encode(&key, &ctx, buf, bs)
                    .map_err(|e| ObjectError::Internal(e.to_string()))
            });
            if let Some(prev) = pending.replace(next) {
                let stripe = prev
                    .await
                    .map_err(|e| ObjectError::Internal(e.to_string()))??;
                collect(&stripe, &mut crcs, &mut hashes);
                sink.push(&stripe).await?;
            }
        }
        if let Some(last) = pending {
            let stripe = last
                .await
                .map_err(|e| ObjectError::Internal(e.to_string()))??;
            collect(&stripe, &mut crcs, &mut hashes);
            sink.push(&stripe).await?;
        }
        drop(md5_tx);
        let etag = md5_task
            .await
            .map_err(|e| ObjectError::Internal(e.to_string()))?;
        let mut extra = [0u8; 1];
        if body.read(&mut extra).await? != 0 {
            return Err(ObjectError::ShortBody {
                got: input.size + 1,
                expected: input.size,
            });
        }

        let headers = self.shard_headers(&p, input.size, crcs, &hashes);
        let report = sink.finish(headers).await?;
        Ok(self.staged(p, input, etag, hashes, report.missing, None))
    }

    fn prelude(&self, input: &PutInput) -> Prelude {
        let object = self.manifest_key.object_id(&input.bucket, &input.key);
        let version = self.stamp();
        let dek = DataKey::from_bytes(random());
        let wrapped = self.master.wrap_data_key(&dek, &object, version, random());
        let placement = layout::place(&self.layout, &self.plan, &object);
        let targets = to_targets(&placement);
        Prelude {
            object,
            version,
            dek,
            wrapped,
            block_size: self.block_size_for(input.size),
            placement,
            targets,
        }
    }

    fn shard_headers(
        &self,
        p: &Prelude,
        size: u64,
        mut crcs: Vec<Vec<u32>>,
        hashes: &[crate::core::stripe::BlockHash],
    ) -> Vec<ShardHeader> {
        let profile = self.layout.profile;
        (0..profile.n())
            .map(|i| ShardHeader {
                object: p.object,
                version: p.version,
                shard_index: ShardIndex(i as u8),
                k: profile.k() as u8,
                m: profile.m() as u8,
                block_size: p.block_size,
                size,
                layout_epoch: self.layout.epoch,
                placement: p.placement.clone(),
                crcs: std::mem::take(&mut crcs[i]),
                block_hashes: hashes.to_vec(),
            })
            .collect()
    }

    fn staged(
        &self,
        p: Prelude,
        input: PutInput,
        etag: String,
        hashes: Vec<crate::core::stripe::BlockHash>,
        missing: Vec<usize>,
        inline: Option<Vec<(ShardHeader, Vec<u8>)>>,
    ) -> Staged {
        let profile = self.layout.profile;
        Staged {
            bucket: input.bucket,
            key: input.key,
            object: p.object,
            version: p.version,
            missing,
            meta: ObjectMeta {
                size: input.size,
                content_type: input.content_type,
                user_metadata: input.user_metadata,
                headers: input.headers,
                etag,
                checksums: Vec::new(),
                dek: p.wrapped,
                k: profile.k() as u8,
                m: profile.m() as u8,
                block_size: p.block_size,
                layout_epoch: self.layout.epoch,
                placement: p.placement,
                block_hashes: hashes,
                inline: inline.is_some(),
                parts: Vec::new(),
            },
            targets: p.targets,
            inline,
        }
    }

    /// A small object: read whole, sealed and coded in memory; its shards go out with the
    /// manifest records at commit, one round trip per site.
    async fn stage_inline(
        &self,
        p: Prelude,
        input: PutInput,
        mut body: impl AsyncRead + Unpin,
    ) -> Result<Staged, ObjectError> {
        let mut data = vec![0u8; input.size as usize];
        body.read_exact(&mut data)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => ObjectError::ShortBody {
                    got: 0,
                    expected: input.size,
                },
                _ => ObjectError::Body(e),
            })?;
        let mut extra = [0u8; 1];
        if body.read(&mut extra).await? != 0 {
            return Err(ObjectError::ShortBody {
                got: input.size + 1,
                expected: input.size,
            });
        }
        let etag = {
            use md5::Digest as _;
            crate::core::ids::hex(&md5::Md5::digest(&data))
        };
        let stripes = crate::core::stripe::encode_object(
            &self.codec,
            &p.dek,
            p.object,
            p.version,
            p.block_size,
            &data,
        )
        .map_err(|e| ObjectError::Internal(e.to_string()))?;
        let n = self.layout.profile.n();
        let mut crcs: Vec<Vec<u32>> = vec![Vec::new(); n];
        let mut hashes = Vec::new();
        let mut blocks: Vec<Vec<u8>> = vec![Vec::new(); n];
        for stripe in &stripes {
            collect(stripe, &mut crcs, &mut hashes);
            for (i, b) in stripe.blocks.iter().enumerate() {
                blocks[i].extend_from_slice(b);
            }
        }
        let headers = self.shard_headers(&p, input.size, crcs, &hashes);
        let shards = headers.into_iter().zip(blocks).collect();
        Ok(self.staged(p, input, etag, hashes, Vec::new(), Some(shards)))
    }

    /// Writes a manifest record to a quorum of its nodes; true when every one of them took it.
    async fn write_manifest(
        &self,
        manifest: &Manifest,
        targets: &[ShardTarget],
    ) -> Result<bool, ObjectError> {
        let sealed = manifest.seal(&self.manifest_key, random())?;
        let nodes = Self::manifest_nodes(targets);
        let needed = self.write_quorum(nodes.len());
        let mut set = tokio::task::JoinSet::new();
        for n in nodes {
            let (client, sealed) = (self.nodes.client(n).cloned(), sealed.clone());
            set.spawn(async move {
                match client {
                    Some(c) => c.put_manifest(sealed).await.is_ok(),
                    None => false,
                }
            });
        }
        let all = set.len();
        let answers = until_quorum(set, |a| a.iter().filter(|ok| **ok).count() >= needed).await;
        let durable = answers.iter().filter(|ok| **ok).count();
        if durable < needed {
            self.withdraw(manifest, targets).await;
            return Err(ObjectError::ManifestQuorum { durable, needed });
        }
        Ok(durable == all)
    }

    /// The newest manifest of (bucket, key) found at a read quorum, if any (a tombstone is
    /// returned as such). Looked up under the current layout first: a read quorum there
    /// overlaps every write made since it took effect, so if it holds no version at all the
    /// key was last written under an earlier layout, which is asked next (newest first).
    ///
    /// `floor` is the version the caller knows to be current (the gateway's index). While the
    /// newest found is older, the nodes beyond the read quorum are waited for too (a site that
    /// withholds manifests or was rolled back is outvoted by the others); if none of them holds
    /// it, the answer is [`ObjectError::Behind`], never the older version.
    pub async fn head(
        &self,
        bucket: &str,
        key: &str,
        floor: Option<Version>,
    ) -> Result<Option<Manifest>, ObjectError> {
        let object = self.manifest_key.object_id(bucket, key);
        let mut newest: Option<Manifest> = None;
        for targets in self.placements_of(&object) {
            if let Some(m) = self.head_at(object, &targets, floor).await?
                && newest
                    .as_ref()
                    .is_none_or(|n| m.precedence() > n.precedence())
            {
                newest = Some(m);
            }
            if newest.is_some() && newest.as_ref().map(|m| m.version) >= floor {
                break;
            }
        }
        if let Some(floor) = floor {
            let found = newest.as_ref().map(|m| m.version);
            if found < Some(floor) {
                return Err(ObjectError::Behind { found, floor });
            }
        }
        if let Some(m) = &newest {
            self.hlc
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .observe(m.version);
        }
        Ok(newest)
    }

    /// The newest manifest of `object` at a read quorum of the manifest nodes of `targets`
    /// (at all of those that answer while it is older than `floor`).
    async fn head_at(
        &self,
        object: ObjectId,
        targets: &[ShardTarget],
        floor: Option<Version>,
    ) -> Result<Option<Manifest>, ObjectError> {
        let nodes = Self::manifest_nodes(targets);
        let needed = nodes.len() - self.write_quorum(nodes.len()) + 1;
        let mut set = tokio::task::JoinSet::new();
        for n in nodes {
            let client = self.nodes.client(n).cloned();
            set.spawn(async move {
                match client {
                    Some(c) => c.manifests(object).await.ok(),
                    None => None,
                }
            });
        }
        let mut answered = 0;
        let mut newest: Option<Manifest> = None;
        while let Some(r) = set.join_next().await {
            let Ok(Some(records)) = r else { continue };
            answered += 1;
            for rec in records {
                // A record that does not open (forged, rolled back into another id) is ignored.
                let Ok(m) = Manifest::open(&self.manifest_key, &rec) else {
                    continue;
                };
                // A failed write some node has not withdrawn yet is not a version.
                if m.object == object
                    && newest
                        .as_ref()
                        .is_none_or(|n| m.precedence() > n.precedence())
                    && !self.withdrawing(&m.object, m.version)
                {
                    newest = Some(m);
                }
            }
            // Any read quorum overlaps every write quorum: the newest acked version is here,
            // unless hosts withheld it (then the caller's floor says so, and the rest are asked).
            if answered >= needed && newest.as_ref().map(|m| m.version) >= floor {
                break;
            }
        }
        if answered < needed {
            return Err(ObjectError::ReadQuorum { answered, needed });
        }
        Ok(newest)
    }

    /// A reader of `range` (plaintext bytes) of the object `manifest` describes.
    pub fn reader(
        self: &Arc<Self>,
        manifest: &Manifest,
        range: Range<u64>,
    ) -> Result<ObjectReader, ObjectError> {
        let ManifestBody::Object(meta) = &manifest.body else {
            return Err(ObjectError::Internal("a tombstone has no body".into()));
        };
        let key = self.data_key(meta, manifest)?;
        let geometry = meta.geometry()?;
        let range = range.start.min(meta.size)..range.end.min(meta.size);
        let stripes = if meta.size == 0 {
            0..0
        } else {
            geometry.stripes_for(range.clone())
        };
        let targets = to_targets(&meta.placement);
        Ok(ObjectReader {
            objects: self.clone(),
            object: manifest.object,
            version: manifest.version,
            meta: meta.clone(),
            key,
            geometry,
            targets,
            range,
            next: stripes.start,
            end: stripes.end,
        })
    }
}

/// The answers of a write's tasks: all of them, or once `met` holds for those in hand, those
/// that come within [`STRAGGLER_GRACE`] more; the rest are aborted.
async fn until_quorum<T: Send + 'static>(
    mut set: tokio::task::JoinSet<T>,
    met: impl Fn(&[T]) -> bool,
) -> Vec<T> {
    let mut answers = Vec::with_capacity(set.len());
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let next = match deadline {
            None => set.join_next().await,
            Some(d) => match tokio::time::timeout_at(d, set.join_next()).await {
                Ok(n) => n,
                Err(_) => {
                    set.abort_all();
                    break;
                }
            },
        };
        let Some(r) = next else { break };
        if let Ok(a) = r {
            answers.push(a);
        }
        if deadline.is_none() && met(&answers) {
            deadline = Some(tokio::time::Instant::now() + STRAGGLER_GRACE);
        }
    }
    answers
}

fn to_targets(placement: &[ShardLocation]) -> Vec<ShardTarget> {
    placement
        .iter()
        .map(|l| ShardTarget {
            site: l.site,
            node: l.node,
            disk: l.disk,
        })
        .collect()
}

fn collect(
    stripe: &EncodedStripe,
    crcs: &mut [Vec<u32>],
    hashes: &mut Vec<crate::core::stripe::BlockHash>,
) {
    for (i, c) in stripe.crcs.iter().enumerate() {
        crcs[i].push(*c);
    }
    hashes.extend_from_slice(&stripe.hashes);
}

/// Streams an object's plaintext, a batch of stripes at a time.
#[derive(Debug)]
pub struct ObjectReader {
    objects: Arc<Objects>,
    object: ObjectId,
    version: Version,
    meta: ObjectMeta,
    key: DataKey,
    geometry: Geometry,
    targets: Vec<ShardTarget>,
    range: Range<u64>,
    next: u64,
    end: u64,
}

impl ObjectReader {
    /// The next piece of plaintext, or `None` at the end of the range.
    pub async fn next(&mut self) -> Option<Result<Bytes, ObjectError>> {
        if self.next >= self.end {
            return None;
        }
        let first = self.next;
        let count = READ_BATCH.min(self.end - first);
        self.next += count;
        Some(self.batch(first, count).await)
    }

    async fn batch(&self, first: u64, count: u64) -> Result<Bytes, ObjectError> {
        let k = self.geometry.profile.k();
        let (stripes, bad) = self
            .objects
            .nodes
            .read_range(
                &self.targets,
                self.object,
                self.version,
                k,
                &self.meta.block_hashes,
                first,
                count,
            )
            .await?;
        if !bad.is_empty() {
            tracing::warn!(shards = ?bad, "a read met bad shards; reported for repair");
            self.objects
                .bad_reports
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((self.object, self.version, bad));
        }
        let (codec, key, geometry) = (self.objects.codec.clone(), self.key.clone(), self.geometry);
        let (object, version, range) = (self.object, self.version, self.range.clone());
        let total = geometry.stripe_count();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for (j, offer) in stripes.iter().enumerate() {
                let s = first + j as u64;
                let ctx = StripeContext {
                    object,
                    version,
                    index: s,
                    last: s + 1 == total,
                };
                let opened = codec
                    .open_verified(&key, &ctx, geometry.stripe_len(s), offer)
                    .map_err(|error| ObjectError::Decode { stripe: s, error })?;
                let sr = geometry.stripe_range(s);
                let lo = range.start.max(sr.start) - sr.start;
                let hi = range.end.min(sr.end) - sr.start;
                out.extend_from_slice(&opened.plaintext[lo as usize..hi as usize]);
            }
            Ok(Bytes::from(out))
        })
        .await
        .map_err(|e| ObjectError::Internal(e.to_string()))?
    }
}
