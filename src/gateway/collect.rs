//! The collector: finds the bytes no reader may ever need again and has the nodes delete
//! them. A pass walks what every node holds (its manifest records and its shards, merged in
//! object order a page at a time, so memory stays bounded by one object's records), weighs
//! each object by `core::collect` and sends each node the list of what to delete there
//! (`Request::Collect`, a gateway-only command the node accounts in its ledger). The decision
//! rests on what the nodes hold, not on this gateway's index: a node that was away is seen
//! as it is when it answers again, and a site restored from an old copy of its directory
//! has its stale versions collected at the next pass. `docs/durability.md` says when a byte
//! may be removed and why nothing else can be.
//!
//! Run every `gc_interval_secs` by the `gc` worker, and on demand (`POST /v1/gc`,
//! `exclave gc`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::buckets::HIDDEN;
use super::catalog::Catalog;
use crate::coordinator::client::NodeClient;
use crate::coordinator::object::Objects;
use crate::core::collect::{CollectReason, ObjectCensus, PartToBury, Rules, Waiting, verdict};
use crate::core::format::{Manifest, ManifestEnvelope};
use crate::core::hlc::Version;
use crate::core::ids::{NodeId, ObjectId};
use crate::core::wire::{Collectable, HeldShard, ShardKey};
use crate::meta::Index;
use crate::sys::now_ms;
use prometheus_client::metrics::gauge::Gauge;

/// Records or shards asked for per page.
const PAGE: u32 = 1000;
/// Items sent per `Collect`.
const BATCH: usize = 100;

/// The collector's timings, from the gateway's config.
#[derive(Clone, Copy, Debug)]
pub struct CollectTuning {
    /// Time between passes of the `gc` worker.
    pub interval: Duration,
    /// Time a buried version stays readable (reads in flight finish).
    pub grace: Duration,
    /// Age after which shards no manifest names are orphans.
    pub orphan_age: Duration,
}

impl Default for CollectTuning {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(3600),
            grace: Duration::from_secs(900),
            orphan_age: Duration::from_secs(86_400),
        }
    }
}

/// Versions and bytes.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Tally {
    /// Versions (at one node each: a version collected at five nodes counts five).
    pub items: u64,
    /// Bytes.
    pub bytes: u64,
}

impl Tally {
    fn add(&mut self, bytes: u64) {
        self.items += 1;
        self.bytes += bytes;
    }
}

/// One node in a pass.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SiteReport {
    /// Node id.
    pub node: u32,
    /// Site name.
    pub site: String,
    /// It answered the whole census.
    pub answered: bool,
    /// Bytes of versions kept (shards and manifest records).
    pub live_bytes: u64,
    /// Bytes of garbage not collected yet (grace period, quorum, checkpoint, orphan age).
    pub waiting_bytes: u64,
    /// Collected by this pass.
    pub collected: Tally,
    /// Collected there ever (the node's ledger).
    pub collected_total: Tally,
    /// Files under its `shards/` that no shard header names (deleted ones included).
    pub orphan_files: Tally,
}

/// What a pass found and did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CollectReport {
    /// Only weighed: nothing was deleted.
    pub dry_run: bool,
    /// When it began and ended, ms since the epoch.
    pub started_ms: u64,
    /// When it ended.
    pub finished_ms: u64,
    /// The grace period, seconds.
    pub grace_secs: u64,
    /// Objects weighed.
    pub objects: u64,
    /// Manifest records that did not open (not ours, or damaged): never collected.
    pub unreadable_records: u64,
    /// Collected (or, in a dry run, collectable) by reason.
    pub by_reason: BTreeMap<&'static str, Tally>,
    /// Garbage not collected yet, by what it waits for.
    pub waiting: BTreeMap<&'static str, Tally>,
    /// Versions not kept that a retention or legal hold protects.
    pub protected: u64,
    /// Per node.
    pub sites: Vec<SiteReport>,
    /// Collections a node refused or did not answer (retried by the next pass).
    pub failed: u64,
    /// Parts of objects completed by reference buried (their bytes follow as `upload-part`).
    pub parts_buried: u64,
}

fn waiting_name(w: Waiting) -> &'static str {
    match w {
        Waiting::Grace => "grace",
        Waiting::Quorum => "quorum",
        Waiting::Checkpoint => "checkpoint",
        Waiting::Orphan => "orphan-age",
    }
}

/// A node's records or shards, a page at a time, in object order.
struct Pages<T, C> {
    node: NodeId,
    client: Option<Arc<NodeClient>>,
    buf: VecDeque<(ObjectId, T)>,
    cursor: Option<C>,
    done: bool,
    failed: bool,
}

impl<T, C> Pages<T, C> {
    fn new(node: NodeId, client: Option<Arc<NodeClient>>) -> Self {
        Self {
            node,
            failed: client.is_none(),
            done: client.is_none(),
            client,
            buf: VecDeque::new(),
            cursor: None,
        }
    }

    fn front(&self) -> Option<ObjectId> {
        self.buf.front().map(|(o, _)| *o)
    }

    /// Takes the entries of `object` at the front (the caller refills between takes).
    fn take(&mut self, object: ObjectId, out: &mut Vec<T>) {
        while self.front() == Some(object) {
            if let Some((_, t)) = self.buf.pop_front() {
                out.push(t);
            }
        }
    }
}

/// A record: opened (None: it does not open), its sealed length.
type Records = Pages<(Option<Manifest>, u64), (ObjectId, Version)>;
type Shards = Pages<HeldShard, ShardKey>;

impl Records {
    async fn fill(&mut self, objects: &Objects) {
        let Some(c) = self
            .client
            .as_ref()
            .filter(|_| self.buf.is_empty() && !self.done)
        else {
            return;
        };
        match c.list_manifests(self.cursor, PAGE).await {
            Ok(page) if page.is_empty() => self.done = true,
            Ok(page) => {
                let before = self.cursor;
                for rec in page {
                    let Ok(env) = ManifestEnvelope::parse(&rec) else {
                        continue;
                    };
                    self.cursor = Some((env.object, env.version));
                    let m = objects.open_manifest(&rec).ok();
                    self.buf.push_back((env.object, (m, rec.len() as u64)));
                }
                // A page of which nothing parses cannot be paged past: the census of this node
                // stops there (what it holds after is left for a later pass).
                if self.cursor == before {
                    (self.done, self.failed) = (true, true);
                }
            }
            Err(_) => (self.done, self.failed) = (true, true),
        }
    }
}

impl Shards {
    async fn fill(&mut self) {
        let Some(c) = self
            .client
            .as_ref()
            .filter(|_| self.buf.is_empty() && !self.done)
        else {
            return;
        };
        match c.list_shards(self.cursor, PAGE).await {
            Ok(page) if page.is_empty() => self.done = true,
            Ok(page) => {
                for s in page {
                    self.cursor = Some(s.key);
                    self.buf.push_back((s.key.object, s));
                }
            }
            Err(_) => (self.done, self.failed) = (true, true),
        }
    }
}

/// After a step of a background pass that took `took`: as long again while S3 requests are
/// in flight (the pass takes at most half the time they could use), else a moment.
pub(crate) async fn give_way(in_flight: &Gauge, took: Duration) {
    let pause = if in_flight.get() > 0 {
        took
    } else {
        Duration::from_millis(1)
    };
    tokio::time::sleep(pause).await;
}

/// The collector.
#[derive(Debug)]
pub struct Collector {
    objects: Arc<Objects>,
    index: Arc<Index>,
    catalog: Arc<Catalog>,
    /// Its timings.
    pub tuning: CollectTuning,
    /// One pass at a time.
    one: tokio::sync::Mutex<()>,
    /// The last pass's report.
    last: std::sync::Mutex<Option<CollectReport>>,
    /// S3 requests in flight: while there are any, the pass gives way (it works at most half
    /// the time).
    in_flight: Gauge,
}

impl Collector {
    /// A collector over `objects`, checking writes in flight against `index` and the
    /// newest checkpoint of `catalog`.
    pub fn new(
        objects: Arc<Objects>,
        index: Arc<Index>,
        catalog: Arc<Catalog>,
        tuning: CollectTuning,
        in_flight: Gauge,
    ) -> Self {
        Self {
            objects,
            index,
            catalog,
            tuning,
            one: tokio::sync::Mutex::new(()),
            last: std::sync::Mutex::new(None),
            in_flight,
        }
    }

    async fn give_way(&self, took: Duration) {
        give_way(&self.in_flight, took).await;
    }

    /// The last pass's report (None: no pass yet).
    pub fn last(&self) -> Option<CollectReport> {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Versions a write of which is in flight or being withdrawn at this gateway.
    fn unsettled(&self) -> anyhow::Result<HashSet<(ObjectId, Version)>> {
        let mut out: HashSet<(ObjectId, Version)> = self
            .index
            .intents()?
            .into_iter()
            .map(|i| (i.object, i.version))
            .collect();
        out.extend(self.index.withdrawals()?.into_keys());
        Ok(out)
    }

    /// Every node's withdrawals of failed writes, by object.
    async fn withdrawn(&self) -> HashMap<ObjectId, BTreeSet<Version>> {
        let mut out: HashMap<ObjectId, BTreeSet<Version>> = HashMap::new();
        for node in self.objects.node_ids() {
            let Some(c) = self.objects.nodes().client(node) else {
                continue;
            };
            let mut after = None;
            while let Ok(page) = c.list_withdrawn(after, PAGE).await {
                let Some(last) = page.last() else { break };
                after = Some((last.object, last.version));
                for w in &page {
                    out.entry(w.object).or_default().insert(w.version);
                }
            }
        }
        out
    }

    /// The manifest write quorum of `object`'s placements (the largest, if layouts differ).
    fn write_quorum(&self, object: &ObjectId) -> usize {
        self.objects
            .placements(object)
            .iter()
            .map(|targets| {
                let nodes: BTreeSet<NodeId> = targets.iter().map(|t| t.node).collect();
                self.objects.manifest_write_quorum(nodes.len())
            })
            .max()
            .unwrap_or(usize::MAX)
    }

    /// One pass (see the module); with `dry_run`, only weighs.
    pub async fn pass(&self, dry_run: bool) -> anyhow::Result<CollectReport> {
        let _one = self.one.lock().await;
        let started_ms = now_ms();
        if !dry_run {
            // A replaced version's record may go once a checkpoint covers its replacement.
            if let Err(e) = self.catalog.checkpoint().await {
                tracing::warn!(error = %format!("{e:#}"), "collector: no checkpoint made");
            }
        }
        let cutoff = self.catalog.last_checkpoint().await.map(|c| c.cutoff);
        let now = self.objects.cluster_now().await?;
        // Taken before the census: a write that begins after it stamps above it.
        let settled_below = self.catalog.cutoff();
        let unsettled = self.unsettled()?;
        let withdrawn = self.withdrawn().await;
        let nodes = self.objects.node_ids();
        let client = |n: NodeId| self.objects.nodes().client(n).cloned();
        let mut records: Vec<Records> = nodes.iter().map(|n| Pages::new(*n, client(*n))).collect();
        let mut shards: Vec<Shards> = nodes.iter().map(|n| Pages::new(*n, client(*n))).collect();
        let mut report = CollectReport {
            dry_run,
            started_ms,
            grace_secs: self.tuning.grace.as_secs(),
            sites: nodes
                .iter()
                .map(|n| SiteReport {
                    node: n.0,
                    site: client(*n).map(|c| c.site().to_owned()).unwrap_or_default(),
                    ..SiteReport::default()
                })
                .collect(),
            ..CollectReport::default()
        };
        let site = |r: &mut CollectReport, n: NodeId| {
            let i = nodes.iter().position(|x| *x == n).unwrap_or(0);
            i.min(r.sites.len().saturating_sub(1))
        };
        let mut todo: BTreeMap<NodeId, Vec<(Collectable, u64)>> = BTreeMap::new();
        loop {
            let step = std::time::Instant::now();
            let mut fetched = false;
            for r in &mut records {
                fetched |= r.buf.is_empty() && !r.done;
                r.fill(&self.objects).await;
            }
            for s in &mut shards {
                fetched |= s.buf.is_empty() && !s.done;
                s.fill().await;
            }
            if fetched {
                self.give_way(step.elapsed()).await;
            }
            let next = records
                .iter()
                .map(Pages::front)
                .chain(shards.iter().map(Pages::front))
                .flatten()
                .min();
            let Some(object) = next else { break };
            let mut census = ObjectCensus {
                withdrawn: withdrawn.get(&object).cloned().unwrap_or_default(),
                ..ObjectCensus::default()
            };
            let mut upload_part = false;
            for r in &mut records {
                let mut got = Vec::new();
                loop {
                    r.take(object, &mut got);
                    if !r.buf.is_empty() || r.done {
                        break;
                    }
                    r.fill(&self.objects).await;
                }
                for (m, len) in got {
                    match m {
                        Some(m) => {
                            upload_part |= m.bucket.contains(HIDDEN);
                            census.records.push((r.node, m, len));
                        }
                        None => report.unreadable_records += 1,
                    }
                }
            }
            for s in &mut shards {
                let mut got = Vec::new();
                loop {
                    s.take(object, &mut got);
                    if !s.buf.is_empty() || s.done {
                        break;
                    }
                    s.fill().await;
                }
                census
                    .shards
                    .extend(got.into_iter().map(|h| (s.node, h.key.version, h.len)));
            }
            let rules = Rules {
                now_ms: now,
                grace_ms: self.tuning.grace.as_millis() as u64,
                orphan_age_ms: self.tuning.orphan_age.as_millis() as u64,
                checkpoint_cutoff: cutoff,
                every_node_answered: records.iter().all(|r| !r.failed)
                    && shards.iter().all(|s| !s.failed),
                settled_below: Some(settled_below),
            };
            let v = verdict(
                object,
                &census,
                &rules,
                self.write_quorum(&object),
                |version| !unsettled.contains(&(object, version)),
                upload_part,
            );
            report.objects += 1;
            report.protected += v.protected;
            for (node, live) in v.live {
                let i = site(&mut report, node);
                report.sites[i].live_bytes += live;
            }
            for (node, w, bytes) in v.waiting {
                let i = site(&mut report, node);
                report.sites[i].waiting_bytes += bytes;
                report
                    .waiting
                    .entry(waiting_name(w))
                    .or_default()
                    .add(bytes);
            }
            // A version completed by reference: its parts are buried first; a version whose
            // parts could not all be buried keeps everything (its record names them) until a
            // pass that can.
            let mut keep: HashSet<Version> = HashSet::new();
            for (version, parts) in &v.parts_to_bury {
                if dry_run {
                    continue;
                }
                let (all, buried) = self.bury_parts(parts).await;
                report.parts_buried += buried;
                if !all {
                    keep.insert(*version);
                }
            }
            for (node, item, bytes) in v.collect {
                if keep.contains(&item.version) {
                    report.failed += 1;
                    continue;
                }
                todo.entry(node).or_default().push((item, bytes));
            }
            if todo.values().map(Vec::len).sum::<usize>() >= BATCH * nodes.len().max(1) {
                self.send(&mut todo, &mut report, dry_run, &site).await;
            }
        }
        self.send(&mut todo, &mut report, dry_run, &site).await;
        let orphan_age = self.tuning.orphan_age.as_millis() as u64;
        for (i, n) in nodes.iter().enumerate() {
            report.sites[i].answered = !records[i].failed && !shards[i].failed;
            let Some(c) = client(*n) else { continue };
            if let Ok((found, deleted)) = c.sweep_files(orphan_age, !dry_run).await {
                let s = &mut report.sites[i];
                s.orphan_files = Tally {
                    items: found.items,
                    bytes: found.bytes,
                };
                s.collected.items += deleted.items;
                s.collected.bytes += deleted.bytes;
                s.waiting_bytes += found.bytes - deleted.bytes;
                if deleted.items > 0 {
                    let t = report
                        .by_reason
                        .entry(CollectReason::OrphanFile.name())
                        .or_default();
                    t.items += deleted.items;
                    t.bytes += deleted.bytes;
                }
                if found.bytes > deleted.bytes {
                    let t = report.waiting.entry("orphan-age").or_default();
                    t.items += found.items - deleted.items;
                    t.bytes += found.bytes - deleted.bytes;
                }
            }
            if let Ok((_, total)) = c.collect(Vec::new()).await {
                report.sites[i].collected_total = Tally {
                    items: total.items,
                    bytes: total.bytes,
                };
            }
        }
        report.finished_ms = now_ms();
        *self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(report.clone());
        Ok(report)
    }

    /// Buries the parts of a version completed by reference whose bytes go: a tombstone for
    /// each part whose key's newest version is still that part (one already buried, or
    /// replaced, is left). False when a part's key could not be read or its tombstone not
    /// written at its quorum; and how many were buried now.
    async fn bury_parts(&self, parts: &[PartToBury]) -> (bool, u64) {
        let (mut all, mut buried) = (true, 0);
        for p in parts {
            let (bucket, key) = (p.bucket.as_str(), p.key.as_str());
            match self.objects.head(bucket, key, None).await {
                Ok(Some(m)) if m.object == p.object && m.version == p.version => {
                    match self
                        .objects
                        .delete(bucket, key, crate::core::format::Versioning::Unversioned)
                        .await
                    {
                        Ok((t, missed)) => {
                            buried += 1;
                            if missed.manifest
                                && let Err(e) = self.index.record_repair(&t.object, t.version, &[])
                            {
                                tracing::warn!(error = %e, "recording a part's tombstone for repair");
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "a part's tombstone did not reach its quorum");
                            all = false;
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "a part's key could not be read");
                    all = false;
                }
            }
        }
        (all, buried)
    }

    /// Sends each node its share of `todo` (or, in a dry run, only counts it).
    async fn send(
        &self,
        todo: &mut BTreeMap<NodeId, Vec<(Collectable, u64)>>,
        report: &mut CollectReport,
        dry_run: bool,
        site: &impl Fn(&mut CollectReport, NodeId) -> usize,
    ) {
        for (node, items) in std::mem::take(todo) {
            let i = site(report, node);
            for chunk in items.chunks(BATCH) {
                let step = std::time::Instant::now();
                let ok = dry_run
                    || match self.objects.nodes().client(node) {
                        Some(c) => c
                            .collect(chunk.iter().map(|(c, _)| *c).collect())
                            .await
                            .is_ok(),
                        None => false,
                    };
                if !ok {
                    report.failed += chunk.len() as u64;
                    continue;
                }
                for (c, bytes) in chunk {
                    let reason = CollectReason::name_of(c.reason);
                    report.by_reason.entry(reason).or_default().add(*bytes);
                    report.sites[i].collected.add(*bytes);
                }
                // Leave room to the foreground: the nodes' deletions are fsynced.
                self.give_way(step.elapsed()).await;
            }
        }
    }
}

/// How fast each site's disks fill: samples of (time, bytes used) taken whenever the gateway
/// reads the sites' disk usage (status, metrics), kept for a day, and the time left at the
/// rate between the oldest and the newest.
#[derive(Debug, Default)]
pub struct Growth(std::sync::Mutex<HashMap<u32, VecDeque<(u64, u64)>>>);

/// Samples kept per site, and the least span a rate is judged over.
const GROWTH_SAMPLES: usize = 1024;
const GROWTH_WINDOW_MS: u64 = 24 * 3600 * 1000;
const GROWTH_MIN_SPAN_MS: u64 = 60 * 1000;

impl Growth {
    /// Notes that `node`'s disks had `used` bytes in use at `now_ms`; returns the seconds
    /// until its `free` bytes are gone at the rate seen (None: not growing, or not judged
    /// over a minute yet).
    pub fn note(&self, node: u32, now_ms: u64, used: u64, free: u64) -> Option<u64> {
        let mut all = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let samples = all.entry(node).or_default();
        samples.push_back((now_ms, used));
        while samples.len() > GROWTH_SAMPLES
            || samples
                .front()
                .is_some_and(|(t, _)| now_ms.saturating_sub(*t) > GROWTH_WINDOW_MS)
        {
            samples.pop_front();
        }
        let (t0, u0) = *samples.front()?;
        let span = now_ms
            .checked_sub(t0)
            .filter(|s| *s >= GROWTH_MIN_SPAN_MS)?;
        let grown = used.checked_sub(u0).filter(|g| *g > 0)?;
        Some((free as u128 * span as u128 / grown as u128 / 1000) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::Growth;

    #[test]
    fn a_site_filling_at_a_steady_rate_is_full_when_its_free_space_runs_out() {
        let g = Growth::default();
        let t0 = 1_700_000_000_000;
        assert_eq!(g.note(1, t0, 1000, 10_000), None);
        // Under a minute: not judged yet.
        assert_eq!(g.note(1, t0 + 30_000, 1500, 9_500), None);
        // 1000 bytes a minute, 9000 free: nine minutes.
        assert_eq!(g.note(1, t0 + 60_000, 2000, 9_000), Some(540));
        // Shrinking (collected) or steady: not filling.
        let h = Growth::default();
        h.note(2, t0, 5000, 100);
        assert_eq!(h.note(2, t0 + 120_000, 4000, 1100), None);
        assert_eq!(h.note(2, t0 + 240_000, 5000, 100), None);
        // Another site is judged on its own.
        assert_eq!(g.note(3, t0 + 600_000, 1, 1), None);
    }
}
