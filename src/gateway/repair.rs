//! Repair of the backlog: every object version recorded with missing shards (by writes that
//! went without a site, reads and scrubs that met bad shards) is rebuilt keyless where its sites
//! answer, its manifest record copied to the nodes that lack it, and failed writes withdrawn.
//! The `repair` worker runs a pass every `repair_interval_secs`; `exclave heal` runs one now.
//!
//! The backlog drains: an entry that cannot be rebuilt leaves it with an account of why
//! (docs/durability.md, "The repair backlog"). A version with too few good blocks left at sites
//! that all answered is given up on and named (`status`, `heal`); shards of something no
//! manifest node holds a record of, every one answering, for longer than a write takes to
//! commit, are a failed write's leftovers, not a version, and are left for collection.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use prometheus_client::metrics::gauge::Gauge;

use super::Catalog;
use crate::coordinator::Objects;
use crate::coordinator::ReadError;
use crate::coordinator::object::ObjectError;
use crate::coordinator::repair::Repaired;
use crate::core::backlog::{Census, Entry, Rebuild, Step, Verdict, Wait};
use crate::core::hlc::Version;
use crate::core::ids::{ObjectId, hex};
use crate::meta::{Index, LostRecord, MetaError, VersionMarker};
use crate::sys::now_ms;

/// How fast repair may move bytes (read plus written), per second; 0 is no limit.
#[derive(Clone, Copy, Debug)]
pub struct RepairPace {
    /// While no S3 request is in flight.
    pub idle: u64,
    /// While some are: foreground traffic comes first.
    pub busy: u64,
}

/// The repairer of a gateway: its object store and index, and how fast and how often it may
/// repair.
#[derive(Debug)]
pub struct Repairer {
    pub(super) objects: Arc<Objects>,
    pub(super) index: Arc<Index>,
    /// Which versions are still being written (settling leaves those alone).
    pub(super) catalog: Arc<Catalog>,
    /// Time between the `repair` worker's passes.
    pub(super) interval: Duration,
    pace: RepairPace,
    /// S3 requests in flight (repair slows down while there are any).
    in_flight: Gauge,
    /// Each backlog entry's rules across passes (`core::backlog`), for entries that stay.
    rules: Mutex<BTreeMap<(ObjectId, Version), Entry>>,
    /// The rules' clock starts here.
    epoch: Instant,
}

impl Repairer {
    pub(super) fn new(
        objects: Arc<Objects>,
        index: Arc<Index>,
        catalog: Arc<Catalog>,
        interval: Duration,
        pace: RepairPace,
        in_flight: Gauge,
    ) -> Self {
        Self {
            objects,
            index,
            catalog,
            interval,
            pace,
            in_flight,
            rules: Mutex::default(),
            epoch: Instant::now(),
        }
    }
}

/// Backlog entries a repair pass works on at the same time.
const REPAIR_CONCURRENCY: usize = 4;

/// What repairing one backlog entry came to: the rules' verdict, and what was done for it.
struct Outcome {
    verdict: Verdict,
    done: Repaired,
    manifests_restored: usize,
    /// The version's bucket and key, when a node holds its record.
    name: Option<(String, String)>,
    /// Why the rebuild failed, if it did.
    error: Option<ObjectError>,
}

/// What one repair pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RepairPass {
    /// Object versions made whole.
    pub repaired: usize,
    /// Object versions left for a later pass (their sites did not answer).
    pub pending: usize,
    /// Bytes read from good shards.
    pub bytes_read: u64,
    /// Bytes of rebuilt shards written.
    pub bytes_written: u64,
    /// Failed writes not yet withdrawn from every node.
    pub withdrawals_pending: usize,
    /// Manifest records copied to nodes that lacked them.
    pub manifests_restored: usize,
    /// Entries dropped as a failed write's leftovers (no version to rebuild).
    pub not_versions: usize,
    /// Versions given up on in this pass (too few good blocks left).
    pub given_up: usize,
    /// Versions that cannot be rebuilt but were superseded by a newer one (dropped).
    pub superseded: usize,
}

impl Repairer {
    /// The repair rate allowed now: lower while S3 requests are being served.
    fn rate(&self) -> u64 {
        if self.in_flight.get() > 0 {
            self.pace.busy
        } else {
            self.pace.idle
        }
    }

    /// Records the withdrawals of failed writes not yet confirmed by every node, so that a
    /// restarted gateway still finishes them (and still skips those versions).
    pub(crate) fn keep_withdrawals(&self) -> Result<(), MetaError> {
        let now = self.objects.withdrawals();
        if self.index.withdrawals()? != now {
            self.index.set_withdrawals(&now)?;
        }
        Ok(())
    }

    /// Repairs one backlog entry: its missing shards (none: only manifest copies), then its
    /// manifest record at the nodes that lack it. What to do at each step, and what the
    /// entry comes to, is decided by its rules (`core::backlog::Entry`).
    async fn entry(&self, object: ObjectId, version: Version, shards: &[usize]) -> Outcome {
        let mut rules = self
            .rules
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(object, version))
            .copied()
            .unwrap_or_default();
        let mut out = Outcome {
            verdict: Verdict::Deferred(Wait::Failed),
            done: Repaired::default(),
            manifests_restored: 0,
            name: None,
            error: None,
        };
        let mut found = None;
        let mut step = rules.begin(self.objects.withdrawing(&object, version));
        out.verdict = loop {
            match step {
                Step::AskRecords => {
                    let census = self.objects.manifest_census(object, version).await;
                    let now = self.epoch.elapsed().as_millis() as u64;
                    let grace = 2 * self.objects.write_timeout().as_millis() as u64;
                    let seen = Census {
                        found: census.found.is_some(),
                        unanswered: census.unanswered,
                    };
                    found = census.found;
                    out.name = found
                        .as_ref()
                        .map(|f| (f.manifest.bucket.clone(), f.manifest.key.clone()));
                    step = rules.census(now, grace, seen, !shards.is_empty());
                }
                Step::Rebuild => {
                    let pace = || self.rate() / REPAIR_CONCURRENCY as u64;
                    let result = match self.objects.repair(object, version, shards, &pace).await {
                        Ok(done) => {
                            out.done = done;
                            Rebuild::Done
                        }
                        Err(e) => {
                            let short = match &e {
                                ObjectError::Read(ReadError::NotEnough {
                                    good,
                                    needed,
                                    unanswered,
                                    ..
                                }) => Rebuild::Short {
                                    good: *good,
                                    needed: *needed,
                                    unanswered: *unanswered,
                                },
                                _ => Rebuild::Failed,
                            };
                            out.error = Some(e);
                            short
                        }
                    };
                    // A newer version of the key current and this one no longer kept (an
                    // overwritten null version), or this one removed by a DELETE of its id
                    // (the collector takes its shards): the one rebuilt is read by nobody. A
                    // version the index keeps (or cannot say it does not) is never dropped.
                    let superseded = match (&result, &found) {
                        (Rebuild::Short { .. }, Some(f)) if f.manifest.state.removed => true,
                        (Rebuild::Short { .. }, Some(f)) => {
                            let m = &f.manifest;
                            let named = VersionMarker::new(m.state.written_under, m.version);
                            let kept = self
                                .index
                                .version(&m.bucket, &m.key, named)
                                .map_or(true, |e| e.is_some_and(|e| e.version == m.version));
                            !kept
                                && self
                                    .index
                                    .get(&m.bucket, &m.key)
                                    .ok()
                                    .flatten()
                                    .is_some_and(|current| current.order > m.order)
                        }
                        _ => false,
                    };
                    step = rules.rebuilt(result, superseded);
                }
                Step::CopyRecords => {
                    let Some(f) = &found else {
                        break Verdict::Deferred(Wait::Failed);
                    };
                    let r = self.objects.copy_manifest(f).await;
                    out.manifests_restored = r.written;
                    break rules.copied(r.unanswered == 0);
                }
                Step::Done(verdict) => break verdict,
            }
        };
        let mut kept = self.rules.lock().unwrap_or_else(PoisonError::into_inner);
        if out.verdict.leaves() {
            kept.remove(&(object, version));
        } else {
            kept.insert((object, version), rules);
        }
        out
    }

    /// One pass over the repair backlog: every recorded object version with missing shards is
    /// rebuilt (keyless) where its sites answer; the rest stays for the next pass. Returns
    /// (repaired, still pending).
    pub async fn pass(&self) -> Result<RepairPass, MetaError> {
        self.settle_intents(false).await?;
        self.collect_findings().await?;
        for (object, version, shards) in self.objects.take_bad_reports() {
            self.index.record_repair(&object, version, &shards)?;
        }
        let pending = self.objects.retry_withdrawals().await;
        self.keep_withdrawals()?;
        let backlog = self.index.repairs()?;
        let mut pass = RepairPass {
            withdrawals_pending: pending,
            ..RepairPass::default()
        };
        // A few versions at a time (each at its share of the rate): small objects are bound
        // by round trips to the sites, not by bandwidth.
        let mut outcomes = futures::stream::iter(backlog)
            .map(|(object, version, shards)| async move {
                let outcome = self.entry(object, version, &shards).await;
                (object, version, shards, outcome)
            })
            .buffer_unordered(REPAIR_CONCURRENCY);
        while let Some((object, version, shards, outcome)) = outcomes.next().await {
            let (bucket, key) = outcome.name.clone().unwrap_or_default();
            match outcome.verdict {
                Verdict::Withdrawn => {
                    // A failed write: nothing to rebuild.
                    self.index.repair_done(&object, version)?;
                }
                Verdict::NotAVersion => {
                    self.index.repair_done(&object, version)?;
                    pass.not_versions += 1;
                    tracing::info!(
                        object = %hex(&object.0),
                        ?shards,
                        "no manifest node holds a record of it: a failed write's leftovers, not \
                         a version; left for collection"
                    );
                }
                Verdict::Superseded => {
                    // A version no longer kept (a replaced null version) and superseded by a
                    // newer current one is read by no request: its loss costs nothing.
                    self.index.repair_done(&object, version)?;
                    pass.superseded += 1;
                    tracing::info!(
                        object = %hex(&object.0),
                        bucket, key,
                        "cannot be rebuilt, and superseded by a newer version: dropped from \
                         the backlog"
                    );
                }
                Verdict::Lost { good, needed } => {
                    tracing::error!(
                        object = %hex(&object.0),
                        bucket, key, good, needed,
                        "cannot be rebuilt: every site answered, and a stripe has {good} good \
                         blocks of the {needed} needed"
                    );
                    let rec = LostRecord {
                        bucket,
                        key,
                        shards,
                        good,
                        needed,
                        found_ms: now_ms(),
                    };
                    self.index.give_up_repair(&object, version, &rec)?;
                    pass.given_up += 1;
                }
                Verdict::Repaired { records_complete } => {
                    let done = outcome.done;
                    self.index.repair_done(&object, version)?;
                    pass.manifests_restored += outcome.manifests_restored;
                    if !records_complete {
                        // Shards done; the manifest copies wait for their nodes.
                        self.index.record_repair(&object, version, &[])?;
                        pass.pending += 1;
                    }
                    if shards.is_empty() {
                        continue;
                    }
                    pass.repaired += 1;
                    pass.bytes_read += done.bytes_read;
                    pass.bytes_written += done.bytes_written;
                    tracing::info!(
                        object = %hex(&object.0),
                        shards = ?done.shards,
                        bytes_read = done.bytes_read,
                        bytes_written = done.bytes_written,
                        "repaired"
                    );
                }
                Verdict::Deferred(why) => {
                    pass.pending += 1;
                    tracing::debug!(
                        object = %hex(&object.0),
                        ?why,
                        error = outcome.error.as_ref().map(tracing::field::display),
                        "repair deferred"
                    );
                }
            }
        }
        if pass.repaired > 0 || pass.pending > 0 {
            tracing::info!(
                repaired = pass.repaired,
                pending = pass.pending,
                bytes_read = pass.bytes_read,
                bytes_written = pass.bytes_written,
                "repair pass"
            );
        }
        Ok(pass)
    }

    /// Moves the nodes' scrub findings into the repair backlog.
    async fn collect_findings(&self) -> Result<(), MetaError> {
        for node in self.objects.node_ids() {
            let Some(client) = self.objects.nodes().client(node).cloned() else {
                continue;
            };
            let Ok(Ok(keys)) =
                tokio::time::timeout(Duration::from_secs(5), client.findings(1000)).await
            else {
                continue;
            };
            if keys.is_empty() {
                continue;
            }
            for k in &keys {
                self.index
                    .record_repair(&k.object, k.version, &[usize::from(k.shard)])?;
            }
            tracing::info!(
                node = node.0,
                shards = keys.len(),
                "scrub findings recorded for repair"
            );
            let _ = client.clear_findings(keys).await;
        }
        Ok(())
    }
}
