//! The S3 gateway: the S3 protocol (routing, SigV4, XML) comes from `s3s`; this module maps
//! each supported operation onto the object store (`coordinator`) and the index (`meta`).
//! Operations not listed in `docs/s3-compatibility.md` answer 501 NotImplemented (the `s3s`
//! default).

mod access;
pub(crate) use access::{Pass, reseal_key_record};
pub use access::{Tenants, new_key_pair, reseal_index_keys};
mod admin;
mod auth;
mod body;
mod buckets;
pub(crate) use buckets::HIDDEN;
mod catalog;
pub use catalog::{Catalog, CheckpointMade};
mod checksum;
mod collect;
mod cors;
pub use collect::{CollectReport, CollectTuning, Collector, Growth};
mod error;
pub(crate) use error::{internal, object_error};
mod guard;
mod intents;
pub(crate) use intents::{Holders, Settled};
mod lifecycle;
mod list;
pub use lifecycle::{BucketActions, LifecycleReport, LifecycleState};
mod lock;
mod multipart;
mod objects;
mod policy;
mod ranges;
mod reads;
mod repair;
mod s3;
mod serve;
mod small_body;
mod ssec;
mod surface;
mod tagging;
mod tls;
mod traffic;
mod versioning;
mod workers;
pub use repair::{RepairPace, RepairPass, Repairer};
pub use workers::{CheckpointWorker, CollectWorker, LifecycleWorker, RepairWorker};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context as _;
use s3s::dto::Timestamp;

use crate::admin::read_token;
use crate::config::{DaemonConfig, GatewaySettings, node_addresses, parse_layout, read_layout};
use crate::coordinator::object::{Layouts, ObjectKeys, ObjectSettings};
use crate::coordinator::{NodeClient, Nodes, Objects};
use crate::core::format::Manifest;
use crate::core::hlc::Hlc;
use crate::core::ids::{GatewayId, NodeId, key_from_hex};
use crate::core::keys::{ManifestKey, MasterKey};
use crate::core::layout::{Layout, Plan, plan};
use crate::meta::{Entry, Index, MetaError};
use crate::metrics::GatewayMetrics;
use crate::net::Identity;
use crate::net::endpoint::endpoint;
use crate::sys::read_secret;
use crate::worker::Workers;

pub use admin::serve_admin;
pub(crate) use auth::Gatekeeper;
pub use auth::{AccessKeys, MAX_KEY_BYTES, reseal_credentials};
pub use guard::MAX_PRESIGNED_EXPIRY_SECS;
pub use serve::{Front, MAX_HEADER_BYTES, MAX_HEADERS, serve};
pub use tls::S3Tls;

/// Most keys in one DeleteObjects request.
pub const MAX_DELETE_KEYS: usize = 1000;
/// Highest part number.
pub const MAX_PARTS: i32 = 10_000;
/// Smallest part but the last.
pub const MIN_PART_SIZE: u64 = 5 << 20;
/// Largest single PUT (S3's limit).
pub const MAX_PUT_SIZE: u64 = 5 << 30;
/// Most bytes of user metadata (names and values), as S3.
pub const MAX_USER_METADATA: usize = 2048;
/// Largest XML request body.
pub const MAX_XML_BODY: usize = 4 << 20;

type KeyLock = Arc<tokio::sync::Mutex<()>>;

/// The gateway: object store, index and the per-key locks of conditional writes.
#[derive(Debug)]
pub struct Gateway {
    objects: Arc<Objects>,
    index: Arc<Index>,
    locks: Mutex<HashMap<(String, String), KeyLock>>,
    /// The repair of the backlog (`repair.rs`), run by the `repair` worker and by heal.
    repair: Arc<Repairer>,
    metrics: GatewayMetrics,
    /// Catalog checkpoints and the floors of writes in flight (`catalog.rs`).
    catalog: Arc<Catalog>,
    /// The collector of garbage (`collect.rs`), run by the `gc` worker and by `exclave gc`.
    collector: Arc<Collector>,
    /// How fast each site's disks fill.
    growth: Growth,
    /// The lifecycle worker's timings and reports (`lifecycle.rs`).
    lifecycle: LifecycleState,
    /// How long a request body may send nothing before the request fails.
    body_idle: Duration,
    /// The background workers (`workers.rs`).
    workers: Workers,
    /// The access keys `exclave key create` made, and their grants (`access.rs`).
    tenants: Arc<Tenants>,
    /// Bucket policies as parsed (`access.rs`).
    policies: access::ParsedPolicies,
}

/// Reads a key file: 64 hex digits (whitespace around them ignored), permissions checked.
pub fn read_key_file(path: &Path) -> anyhow::Result<[u8; 32]> {
    let raw = read_secret(path)?;
    std::str::from_utf8(&raw)
        .ok()
        .and_then(key_from_hex)
        .ok_or_else(|| anyhow::anyhow!("{}: expected 64 hex digits", path.display()))
}

/// The checks every S3 request meets before `s3s` sees it: the gate (`guard`), then, for a body
/// `s3s` reads whole, its hashes (`small_body`). `Ok` when the request may go on, else the S3
/// error code it is refused with. The server runs the same code; this entry point lets the fuzz
/// targets drive it with request heads and bodies made from arbitrary bytes.
pub fn screen_request(
    region: &str,
    head: &http::request::Parts,
    body: &[u8],
) -> Result<(), String> {
    guard::Gate::new(region.to_owned())
        .screen(head)
        .map_err(|r| r.error.code().as_str().to_owned())?;
    if small_body::is_small(head) {
        small_body::check(head, body).map_err(|r| r.error.code().as_str().to_owned())?;
    }
    Ok(())
}

/// A request head for unit tests of the request-side checks.
#[cfg(test)]
pub(crate) fn test_parts(
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
) -> http::request::Parts {
    let mut b = http::Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap().into_parts().0
}

/// Seconds a client is asked to wait (`Retry-After`) when a write's sites are down.
pub use crate::config::{DEFAULT_BODY_IDLE_SECS, DEFAULT_REGION};

/// Earlier layouts from their texts ((origin, TOML)), each checked into its plan, newest
/// epoch first.
pub(crate) fn layout_history(texts: &[(String, String)]) -> anyhow::Result<Vec<(Layout, Plan)>> {
    let mut out = Vec::new();
    for (origin, text) in texts {
        let (layout, rule) = parse_layout(text, origin)?;
        let plan = plan(&layout, rule).with_context(|| format!("the earlier layout {origin}"))?;
        out.push((layout, plan));
    }
    out.sort_by_key(|(l, _)| std::cmp::Reverse(l.epoch));
    Ok(out)
}

/// The gateway's own timings and rates, from its config.
#[derive(Clone, Copy, Debug)]
pub struct Tuning {
    /// Time between passes over the repair backlog.
    pub repair_interval: Duration,
    /// Repair traffic limits.
    pub repair_pace: RepairPace,
    /// Time between catalog checkpoints.
    pub checkpoint_interval: Duration,
    /// How long a request body may send nothing.
    pub body_idle: Duration,
    /// The collector's timings.
    pub collect: CollectTuning,
    /// Time between lifecycle passes, and the length of a lifecycle day.
    pub lifecycle: (Duration, Duration),
}

impl Tuning {
    /// The values of a gateway's config.
    pub fn of(g: &GatewaySettings) -> Self {
        Self {
            repair_interval: g.repair_interval,
            repair_pace: RepairPace {
                idle: g.repair_bytes_per_sec,
                busy: g.repair_busy_bytes_per_sec,
            },
            checkpoint_interval: g.checkpoint_interval,
            body_idle: g.s3_body_idle_timeout,
            collect: CollectTuning {
                interval: g.gc_interval,
                grace: g.gc_grace,
                orphan_age: g.gc_orphan_age,
            },
            lifecycle: (g.lifecycle_interval, g.lifecycle_day),
        }
    }
}

/// The admin API's bearer token (never printed).
#[derive(Clone)]
pub struct AdminToken(pub String);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

/// The file in a gateway's state directory that a running gateway, or an offline tool acting
/// as the gateway, holds locked.
pub const STATE_LOCK: &str = "gateway.lock";

/// What a running gateway needs besides the store: its credentials and where to listen.
#[derive(Debug)]
pub struct Opened {
    /// Admin API address and bearer token, if configured.
    pub admin: Option<(SocketAddr, AdminToken)>,
    /// The gateway.
    pub gateway: Arc<Gateway>,
    /// Access keys.
    pub keys: AccessKeys,
    /// S3 listen address.
    pub listen: SocketAddr,
    /// The lock on the gateway's state directory: hold it for as long as the gateway serves.
    pub state_lock: std::fs::File,
    /// The region and TLS of the S3 endpoint.
    pub front: Front,
}

impl Gateway {
    /// Opens the gateway a config file describes: keys, layout, node clients and the index
    /// (rebuilt from the nodes' manifests when it is new).
    pub async fn open(config: &DaemonConfig, identity: &Identity) -> anyhow::Result<Opened> {
        let g = config
            .gateway
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no [gateway] section"))?;
        let master = MasterKey::from_bytes(g.master_key_id, read_key_file(&g.master_key_file)?);
        let manifest = ManifestKey::from_bytes(read_key_file(&g.manifest_key_file)?);
        let keys = AccessKeys::load(&g.s3_credentials_file, &master)?;
        let (layout, rule) = read_layout(&g.layout_file)?;
        let plan = plan(&layout, rule)
            .with_context(|| format!("the layout {}", g.layout_file.display()))?;
        let addrs = node_addresses(&g.layout_file)?;
        let ep = endpoint(
            SocketAddr::new(g.s3_listen.ip(), 0),
            identity,
            &config.transport,
            false,
        )?;
        let mut clients = std::collections::BTreeMap::new();
        for site in &layout.sites {
            for n in &site.nodes {
                let addr = addrs.get(&n.id.0).ok_or_else(|| {
                    anyhow::anyhow!("{}: node {} has no addr", g.layout_file.display(), n.id.0)
                })?;
                clients.insert(
                    n.id,
                    Arc::new(NodeClient::new(ep.clone(), *addr, &site.name)),
                );
            }
        }
        let mut earlier = Vec::new();
        for f in &g.previous_layout_files {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("an earlier layout ({})", f.display()))?;
            earlier.push((f.display().to_string(), text));
        }
        let mut previous = Vec::new();
        for f in &g.previous_master_key_files {
            previous.push(
                read_key_file(f)
                    .with_context(|| format!("an earlier master key ({})", f.display()))?,
            );
        }
        let objects = Objects::new(
            Nodes::new(clients),
            Layouts {
                layout,
                plan,
                history: layout_history(&earlier)?,
            },
            ObjectKeys {
                master,
                previous,
                manifest,
            },
            Hlc::new(GatewayId(g.id)),
            ObjectSettings {
                write_quorum: g.write_quorum,
                inline_limit: g.inline_limit_bytes,
                write_timeout: g.write_timeout,
                read_buffer_bytes: g.read_buffer_bytes,
                ..ObjectSettings::default()
            },
        )
        .map_err(|e| anyhow::anyhow!("{}: [gateway] {e}", config.path.display()))?;
        let objects = Arc::new(objects);
        std::fs::create_dir_all(&g.state_dir)
            .with_context(|| format!("creating {}", g.state_dir.display()))?;
        let lock_path = g.state_dir.join(STATE_LOCK);
        let state_lock = crate::sys::try_lock(&lock_path)?.ok_or_else(|| {
            anyhow::anyhow!(
                "{} is held by another process: a gateway already runs on this state, or an \
                 offline tool (exclave keys rotate, exclave layout apply) does",
                lock_path.display()
            )
        })?;
        let index_path = g.state_dir.join("index.redb");
        let fresh = !index_path.exists();
        let index = Arc::new(Index::open_cached(&index_path, g.index_cache_bytes)?);
        let gateway = Self::start_on(objects, index, Tuning::of(g), fresh).await?;
        let admin = match g.admin_listen {
            Some(addr) => Some((addr, AdminToken(read_token(&g.admin_token_file)?))),
            None => None,
        };
        let tls = match &g.s3_tls {
            Some((cert, key)) => Some(Arc::new(
                S3Tls::load(cert, key).context("the S3 endpoint's TLS certificate")?,
            )),
            None => None,
        };
        let front = Front {
            region: g.s3_region.clone(),
            tls,
        };
        Ok(Opened {
            admin,
            gateway,
            keys,
            listen: g.s3_listen,
            state_lock,
            front,
        })
    }

    /// A gateway over `objects` and `index`, ready to serve: the withdrawals it owes restored,
    /// the index rebuilt from the nodes' manifests when it is new (`fresh`) or blank, and its
    /// clock past every version the index holds.
    pub(crate) async fn start_on(
        objects: Arc<Objects>,
        index: Arc<Index>,
        tuning: Tuning,
        fresh: bool,
    ) -> anyhow::Result<Arc<Self>> {
        let gateway = Self::assemble(objects, index, tuning);
        gateway
            .objects
            .restore_withdrawals(gateway.index.withdrawals()?);
        let rebuilt = fresh || gateway.index.is_blank()?;
        if rebuilt {
            gateway.rebuild_index().await?;
        }
        if let Some(v) = gateway.index.max_order()? {
            gateway.objects.observe(v);
        }
        gateway.load_access_keys()?;
        // Before any read: what a crash cut short is taken or withdrawn for good. A write
        // whose withdrawal had begun at some node is withdrawn: what the nodes withdrew (with
        // proofs) is learned first (a rebuild has just learned it).
        if !gateway.index.intents()?.is_empty() {
            if !rebuilt {
                gateway.learn_withdrawals(gateway.objects.node_ids()).await;
            }
            gateway.repair.settle_intents(true).await?;
        }
        Ok(gateway)
    }

    /// A gateway over `objects` and `index` (`open` reads them from a config; recovery builds
    /// them itself).
    pub(crate) fn assemble(objects: Arc<Objects>, index: Arc<Index>, tuning: Tuning) -> Arc<Self> {
        let metrics = GatewayMetrics::new();
        objects.set_journal(Arc::new(IndexJournal(index.clone())));
        let catalog = Arc::new(Catalog::new(
            objects.clone(),
            index.clone(),
            tuning.checkpoint_interval,
        ));
        let repair = Arc::new(Repairer::new(
            objects.clone(),
            index.clone(),
            catalog.clone(),
            tuning.repair_interval,
            tuning.repair_pace,
            metrics.in_flight.clone(),
        ));
        let collector = Arc::new(Collector::new(
            objects.clone(),
            index.clone(),
            catalog.clone(),
            tuning.collect,
            metrics.in_flight.clone(),
        ));
        Arc::new(Self {
            objects,
            index,
            locks: Mutex::new(HashMap::new()),
            repair,
            metrics,
            catalog,
            collector,
            growth: Growth::default(),
            lifecycle: LifecycleState::new(tuning.lifecycle.0, tuning.lifecycle.1),
            body_idle: tuning.body_idle,
            workers: Workers::default(),
            tenants: Arc::default(),
            policies: access::ParsedPolicies::default(),
        })
    }

    /// Fills the index from the manifests at the nodes (newest version of each key wins).
    /// Nodes that do not answer are skipped: any manifest quorum overlaps the rest.
    pub async fn rebuild_index(&self) -> anyhow::Result<()> {
        let mut seen = 0usize;
        let mut answered = 0usize;
        let mut held = Holders::default();
        let mut hidden = HiddenNewest::default();
        // First what every node knows was withdrawn: a node rolled back to an old copy of its
        // disk may still serve a failed write that the others withdrew.
        for (node, learned) in self.learn_withdrawals(self.objects.node_ids()).await {
            match learned {
                Ok((_, 0)) => {}
                Ok((_, refused)) => tracing::warn!(
                    node = node.0,
                    refused,
                    "index rebuild: withdrawals whose proof does not hold, ignored"
                ),
                Err(e) => {
                    tracing::warn!(node = node.0, error = %e, "index rebuild: withdrawals not listed");
                }
            }
        }
        for node in self.objects.node_ids() {
            let scan =
                tokio::time::timeout(Duration::from_secs(30), self.objects.scan_node(node)).await;
            let (manifests, bad) = match scan {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    tracing::warn!(node = node.0, error = %e, "index rebuild: node skipped");
                    held.unanswered(node);
                    continue;
                }
                Err(_) => {
                    tracing::warn!(node = node.0, "index rebuild: node timed out");
                    held.unanswered(node);
                    continue;
                }
            };
            answered += 1;
            if bad > 0 {
                tracing::warn!(
                    node = node.0,
                    bad,
                    "index rebuild: records that do not open"
                );
            }
            for m in manifests {
                seen += 1;
                held.holds(&m);
                if self.take_found(node, &m)? {
                    hidden.offer(&m);
                }
            }
        }
        let uploads = self.take_uploads(hidden.newest())?;
        let keys = self.take_access_keys(hidden.newest())?;
        // Versions that cannot have been acknowledged, settled at the start.
        self.repair.mark_in_doubt(&held)?;
        // The failed writes newer than every version of their objects, kept across restarts.
        self.keep_withdrawals()?;
        tracing::info!(
            answered,
            records = seen,
            uploads,
            keys,
            "index rebuilt from the nodes"
        );
        Ok(())
    }

    /// After the index was filled from the nodes' manifests (a recovery): settles, as at a
    /// start, every current version `seen` says cannot have been acknowledged.
    pub(crate) async fn settle_in_doubt(&self, seen: &Holders) -> Result<Settled, MetaError> {
        self.repair.mark_in_doubt(seen)?;
        self.repair.settle_intents(true).await
    }

    /// Learns from each of `nodes` (all at once: one away costs its timeout once) the
    /// withdrawals it keeps whose proofs hold (`Objects::learn_withdrawals`): per node, how
    /// many were learned and refused, or why none could be listed.
    pub(crate) async fn learn_withdrawals(
        &self,
        nodes: impl IntoIterator<Item = NodeId>,
    ) -> Vec<(NodeId, Result<(usize, usize), String>)> {
        futures::future::join_all(nodes.into_iter().map(|node| async move {
            let learned = tokio::time::timeout(
                Duration::from_secs(60),
                self.objects.learn_withdrawals(node),
            )
            .await;
            let learned = match learned {
                Ok(Ok(counts)) => Ok(counts),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("timed out".into()),
            };
            (node, learned)
        }))
        .await
    }

    /// Keeps the failed writes known now in the index (they outlive a restart).
    pub(crate) fn keep_withdrawals(&self) -> Result<(), MetaError> {
        self.repair.keep_withdrawals()
    }

    /// Takes a manifest record node `node` holds into the index, unless its version is a
    /// failed write (withdrawn at some node, with a proof that holds): then the node is owed
    /// its withdrawal, and false is returned.
    pub(crate) fn take_found(&self, node: NodeId, m: &Manifest) -> Result<bool, MetaError> {
        if self.objects.withdrawing(&m.object, m.version) {
            self.objects.withdrawal_owed(node, m.object, m.version);
            return Ok(false);
        }
        apply_found(&self.index, m)?;
        self.objects.superseded(&m.object, m.version);
        Ok(true)
    }

    #[cfg(test)]
    pub(crate) fn index_for_test(&self) -> &Index {
        &self.index
    }

    /// Registers a write request: versions it stamps stay out of checkpoints until it ends.
    pub(crate) fn writing(&self) -> catalog::Writing<'_> {
        self.catalog.writing()
    }

    /// Makes a catalog checkpoint now if the index changed since the last one.
    pub async fn checkpoint(&self) -> anyhow::Result<CheckpointMade> {
        self.catalog.checkpoint().await
    }

    /// One repair pass now (heal, and recovery's refill).
    pub async fn repair_pass(&self) -> Result<RepairPass, MetaError> {
        self.repair.pass().await
    }

    /// Holds the lock serialising this gateway's conditional writes, removals and revisions of
    /// one key (a bucket's own record: key `""`) until the guard is dropped.
    async fn key_guard(&self, bucket: &str, key: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            locks.retain(|_, l| Arc::strong_count(l) > 1);
            locks
                .entry((bucket.to_owned(), key.to_owned()))
                .or_default()
                .clone()
        };
        lock.lock_owned().await
    }
}

pub(crate) fn timestamp(ms: u64) -> Timestamp {
    Timestamp::from(UNIX_EPOCH + Duration::from_millis(ms))
}

/// The index entry a manifest makes.
pub(crate) fn entry_of(m: &Manifest) -> Entry {
    let (size, etag, deleted, tags) = match m.body.meta() {
        Some(o) => (
            o.size,
            o.etag.clone(),
            false,
            crate::core::tags::stored(o).to_owned(),
        ),
        None => (0, String::new(), true, String::new()),
    };
    Entry {
        version: m.version,
        order: m.order,
        size,
        etag,
        modified_ms: m.created_ms,
        deleted,
        written_under: m.state.written_under,
        removed: m.state.removed,
        locked_until: if m.state.legal_hold {
            Some(u64::MAX)
        } else {
            m.state.retention.map(|r| r.until_ms)
        },
        tags,
    }
}

/// Takes a version found at the nodes into `index` if it is newer than the one there (a
/// bucket's own record creates or deletes the bucket); the parts of uploads are not entries.
pub(crate) fn apply_found(index: &Index, m: &Manifest) -> Result<(), MetaError> {
    if m.bucket.contains(HIDDEN) {
        return Ok(());
    }
    let entry = entry_of(m);
    if m.key.is_empty() {
        // The bucket's own record: created, or (tombstone) deleted.
        if index.apply(&m.bucket, "", &entry)? {
            if entry.deleted {
                index.delete_bucket(&m.bucket)?;
            } else {
                index.create_bucket(&m.bucket, m.created_ms)?;
                index.set_bucket_config(&m.bucket, m.state.bucket.as_ref())?;
                index.set_bucket_lifecycle(&m.bucket, buckets::lifecycle_of(m).as_ref())?;
                for (name, v) in buckets::settings_of(m) {
                    index.set_bucket_extra(&m.bucket, name, v.as_deref())?;
                }
            }
        }
        return Ok(());
    }
    index.apply(&m.bucket, &m.key, &entry)?;
    Ok(())
}

/// The newest record of each key of the uploads' namespaces found at the nodes (for
/// `Gateway::take_uploads`).
#[derive(Debug, Default)]
pub struct HiddenNewest(HashMap<(String, String), Manifest>);

impl HiddenNewest {
    /// Keeps `m` if it is a record of an upload's namespace newer than the one kept.
    pub fn offer(&mut self, m: &Manifest) {
        if !m.bucket.contains(HIDDEN) {
            return;
        }
        let slot = (m.bucket.clone(), m.key.clone());
        if self
            .0
            .get(&slot)
            .is_none_or(|k| k.precedence() < m.precedence())
        {
            self.0.insert(slot, m.clone());
        }
    }

    /// The records kept.
    pub fn newest(&self) -> impl Iterator<Item = &Manifest> {
        self.0.values()
    }
}

/// The gateway's index as the journal of versions about to be written (`intents.rs`).
#[derive(Debug)]
struct IndexJournal(Arc<Index>);

impl crate::coordinator::object::Journal for IndexJournal {
    fn intend<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        object: &'a crate::core::ids::ObjectId,
        version: crate::core::hlc::Version,
        order: crate::core::hlc::Version,
    ) -> futures::future::BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            // The parts of an upload are read only through the part records the index keeps
            // once they are acknowledged: one cut short is never read, so it needs no settling.
            if bucket.contains(HIDDEN) {
                return Ok(());
            }
            self.0
                .intend_async(bucket, key, object, version, order)
                .await
                .map_err(|e| e.to_string())
        })
    }
}
