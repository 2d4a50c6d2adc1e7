//! Whole objects over the cluster: seal, code and upload under the write quorum, then write the
//! sealed manifest to a manifest quorum; and back: find the newest manifest at a read quorum,
//! fetch stripes (hedged), decode and open, streamed batch by batch.
//!
//! Manifest quorums: a manifest goes to every distinct node of the placement (N of them);
//! a write needs W = min(w, N) acknowledgements (w: the write quorum, k + 1 unless configured
//! higher), a read asks until R = N - W + 1 have answered, so every read quorum overlaps every
//! write quorum (read-after-write).
//!
//! The write path is in `write.rs`, the read path in `read.rs`, keyless repair in
//! `../repair.rs` and the withdrawal of failed writes in `../withdraw.rs`.

mod order;
mod read;
mod revise;
mod write;

pub use read::ObjectReader;
pub use write::{PutInput, Staged};

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::coordinator::buffers::BufferPool;
use crate::coordinator::drive::{Nodes, PutError, ReadError, ShardTarget};
use crate::core::format::{FormatError, MIN_BLOCK_SIZE, Manifest, ObjectMeta};
use crate::core::hlc::{Hlc, Version};
use crate::core::ids::{NodeId, ObjectId};
use crate::core::keys::{CheckpointKey, DataKey, KeyError, ManifestKey, MasterKey};
use crate::core::layout::{self, Layout, Plan, ShardLocation};
use crate::core::ops::Pending;
use crate::core::quorum::ManifestQuorum;
use crate::core::stripe::{Codec, DEFAULT_BLOCK_SIZE, DecodeError, Profile};
use crate::sys::now_ms;

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

/// Where a gateway records each version it is about to make visible, durably, before any
/// manifest of it is sent (the gateway's index): a version whose write a crash cuts short is
/// then known at the next start, and settled (taken, or withdrawn) before anything is read.
pub trait Journal: Send + Sync + std::fmt::Debug {
    /// Records that `version` of (bucket, key), object `object`, committing at `order`, is
    /// about to be written; done when that is durable.
    fn intend<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        object: &'a ObjectId,
        version: Version,
        order: Version,
    ) -> futures::future::BoxFuture<'a, Result<(), String>>;
}

/// The layouts an object store places by: the current one (checked into its plan) and the
/// earlier ones, newest first, where keys last written under them are still found.
#[derive(Debug)]
pub struct Layouts {
    /// The current layout.
    pub layout: Layout,
    /// Its plan.
    pub plan: Plan,
    /// Earlier layouts with their plans, newest first.
    pub history: Vec<(Layout, Plan)>,
}

/// The keys of an object store.
#[derive(Debug)]
pub struct ObjectKeys {
    /// Wraps every new data key.
    pub master: MasterKey,
    /// Earlier master keys (their secret bytes), for data keys a rotation has not re-wrapped.
    pub previous: Vec<[u8; 32]>,
    /// Seals manifests; derives object ids.
    pub manifest: ManifestKey,
}

/// Objects smaller than this ride inside the manifest records unless `inline_limit_bytes` says
/// otherwise.
pub const DEFAULT_INLINE_LIMIT: u64 = 128 * 1024;
/// Bytes of free read buffers (fetched blocks, opened stripes) kept unless `read_buffers_mib`
/// says otherwise: at 3+2 with the default 256 KiB blocks, about what two large GETs have in
/// flight (two batches of 8 stripes and one batch's blocks each).
pub const DEFAULT_READ_BUFFERS: usize = 32 << 20;
/// How long a write may wait for one node unless `write_timeout_secs` says otherwise.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// How an object store writes: the typed values of the gateway's config.
#[derive(Clone, Copy, Debug)]
pub struct ObjectSettings {
    /// Block size of objects larger than one stripe.
    pub block_size: u32,
    /// Shards durable at distinct sites before a write is acknowledged (none: k + 1).
    pub write_quorum: Option<usize>,
    /// Objects smaller than this many bytes ride inside the manifest records (0: none).
    pub inline_limit: u64,
    /// How long a write may wait for one node.
    pub write_timeout: Duration,
    /// Bytes of free read buffers (blocks, stripes) kept for the next reads (0: none).
    pub read_buffer_bytes: usize,
}

impl Default for ObjectSettings {
    fn default() -> Self {
        Self {
            block_size: DEFAULT_BLOCK_SIZE,
            write_quorum: None,
            inline_limit: DEFAULT_INLINE_LIMIT,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            read_buffer_bytes: DEFAULT_READ_BUFFERS,
        }
    }
}

/// Settings that do not fit the layout.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The write quorum is not within k + 1 ..= k + m.
    #[error("write_quorum {w} is outside {least}..={most} (k + 1 ..= k + m)")]
    WriteQuorum {
        /// Configured.
        w: usize,
        /// k + 1.
        least: usize,
        /// k + m.
        most: usize,
    },
}

/// The object store of a gateway: keys, layout and nodes.
#[derive(Debug)]
pub struct Objects {
    nodes: Nodes,
    layout: Layout,
    plan: Plan,
    master: MasterKey,
    previous_keys: Vec<[u8; 32]>,
    pub(in crate::coordinator) manifest_key: ManifestKey,
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
    pub(super) withdrawals: Mutex<Pending>,
    /// Where versions are recorded before their manifests are sent (none: not recorded).
    journal: std::sync::OnceLock<Arc<dyn Journal>>,
    /// Versions whose manifests are being written and not yet at their quorum (`order.rs`):
    /// no read returns them, so a version becomes visible to every reader at once.
    pub(super) committing: Mutex<std::collections::HashSet<(ObjectId, Version)>>,
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    crate::sys::random(&mut b);
    b
}

impl Objects {
    /// An object store over `nodes`, under `layouts`, with `keys` and `settings`; refused when
    /// the settings do not fit the layout's profile.
    pub fn new(
        mut nodes: Nodes,
        layouts: Layouts,
        keys: ObjectKeys,
        hlc: Hlc,
        settings: ObjectSettings,
    ) -> Result<Self, SettingsError> {
        // Every read's blocks are fetched, and its stripes opened, into the nodes' pool.
        nodes.buffers = BufferPool::new(settings.read_buffer_bytes);
        let profile = layouts.layout.profile;
        let write_quorum = match settings.write_quorum {
            None => profile.k() + 1,
            Some(w) if w > profile.k() && w <= profile.n() => w,
            Some(w) => {
                return Err(SettingsError::WriteQuorum {
                    w,
                    least: profile.k() + 1,
                    most: profile.n(),
                });
            }
        };
        Ok(Self {
            nodes,
            layout: layouts.layout,
            plan: layouts.plan,
            history: layouts.history,
            master: keys.master,
            previous_keys: keys.previous,
            manifest_key: keys.manifest,
            hlc: Mutex::new(hlc),
            block_size: settings.block_size,
            codec: Arc::new(Codec::new(profile)),
            write_timeout: settings.write_timeout,
            write_quorum,
            inline_limit: settings.inline_limit,
            bad_reports: Mutex::new(Vec::new()),
            withdrawals: Mutex::default(),
            journal: std::sync::OnceLock::new(),
            committing: Mutex::default(),
        })
    }

    /// The nodes that hold `object`'s manifest records under the current layout.
    pub fn manifest_nodes_of(&self, object: &ObjectId) -> Vec<NodeId> {
        Self::manifest_nodes(&self.targets(object))
    }

    /// How many of `nodes` manifest nodes a write needs.
    pub fn manifest_write_quorum(&self, nodes: usize) -> usize {
        self.manifest_quorum(nodes).write
    }

    /// Records every version in `journal` before its manifests are sent (set once).
    pub fn set_journal(&self, journal: Arc<dyn Journal>) {
        let _ = self.journal.set(journal);
    }

    /// Records `manifest`'s version in the journal, if there is one; a version that cannot be
    /// recorded is not written.
    async fn intend(&self, m: &Manifest) -> Result<(), ObjectError> {
        let Some(j) = self.journal.get() else {
            return Ok(());
        };
        j.intend(&m.bucket, &m.key, &m.object, m.version, m.order)
            .await
            .map_err(|e| ObjectError::Internal(format!("recording the write first: {e}")))
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

    /// How long a write may wait for one node.
    pub fn write_timeout(&self) -> Duration {
        self.write_timeout
    }

    /// The erasure profile of the layout.
    pub fn profile(&self) -> Profile {
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
        hlc.stamp(now_ms())
    }

    pub(super) fn manifest_nodes(targets: &[ShardTarget]) -> Vec<NodeId> {
        targets
            .iter()
            .map(|t| t.node)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    /// The manifest quorums over `n_nodes` nodes.
    fn manifest_quorum(&self, n_nodes: usize) -> ManifestQuorum {
        ManifestQuorum::new(n_nodes, self.write_quorum)
    }

    /// Distinct sites that must hold a durable shard before a write to `targets` is
    /// acknowledged.
    fn site_quorum(&self, targets: &[ShardTarget]) -> usize {
        let sites: BTreeSet<_> = targets.iter().map(|t| t.site).collect();
        self.write_quorum.min(sites.len())
    }

    /// The data key of an object version: unwrapped with the master key, or with the earlier
    /// one whose check value the wrapped key names.
    pub fn data_key(&self, meta: &ObjectMeta, m: &Manifest) -> Result<DataKey, ObjectError> {
        self.piece_key(meta, m.object, m.version)
    }

    /// The data key of the stored object (`object`, `version`) `meta` records (a version, or
    /// a part of one).
    pub fn piece_key(
        &self,
        meta: &ObjectMeta,
        object: ObjectId,
        version: Version,
    ) -> Result<DataKey, ObjectError> {
        if meta.dek.key_id != self.master.id() || meta.dek.kcv != self.master.check_value() {
            for bytes in &self.previous_keys {
                let old = MasterKey::from_bytes(meta.dek.key_id, *bytes);
                if old.check_value() == meta.dek.kcv {
                    return Ok(old.unwrap_data_key(&meta.dek, &object, version)?);
                }
            }
        }
        Ok(self.master.unwrap_data_key(&meta.dek, &object, version)?)
    }

    /// `secret` sealed under the master key, bound to `label`.
    pub fn seal_secret(&self, label: &str, secret: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        crate::sys::random(&mut nonce);
        self.master.seal_secret(label, secret, nonce)
    }

    /// Opens a secret [`Self::seal_secret`] sealed, under the master key or an earlier one.
    pub fn open_secret(&self, label: &str, sealed: &[u8]) -> Result<Vec<u8>, KeyError> {
        let opened = self.master.open_secret(label, sealed);
        let Err(e @ KeyError::WrongMasterKey { wrapped_id, .. }) = opened else {
            return opened;
        };
        self.previous_keys
            .iter()
            .find_map(|bytes| {
                MasterKey::from_bytes(wrapped_id, *bytes)
                    .open_secret(label, sealed)
                    .ok()
            })
            .ok_or(e)
    }

    /// A fresh version: every version stamped after it is newer.
    pub fn stamp_floor(&self) -> Version {
        self.stamp()
    }

    /// The key that signs catalog checkpoints, derived from the master key.
    pub fn checkpoint_key(&self) -> CheckpointKey {
        CheckpointKey::of(&self.master)
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
        need.max(u64::from(MIN_BLOCK_SIZE)) as u32
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
