//! The gateway's background workers, started in one place (`Gateway::start_workers`):
//! `repair` (the backlog: shards rebuilt keyless, manifest copies restored, failed writes
//! withdrawn, scrub findings collected) and `checkpoint` (the signed catalog checkpoints of
//! `catalog.rs`). Each is a [`Worker`]: its settings come from the gateway's config, and what
//! it did is shown by name (`GET /v1/workers`, `exclave workers`, `exclave_worker_*`).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Gateway;
use crate::coordinator::object::ObjectError;
use crate::coordinator::repair::Repaired;
use crate::core::hlc::Version;
use crate::core::ids::{ObjectId, hex};
use crate::meta::MetaError;
use crate::worker::{Report, Round, Worker};

/// Backlog entries a repair pass works on at the same time.
const REPAIR_CONCURRENCY: usize = 4;

/// What repairing one backlog entry came to.
enum RepairOutcome {
    /// A failed write being withdrawn: nothing to rebuild.
    Withdrawn,
    /// Its shards were rebuilt (if any were missing).
    Done {
        done: Repaired,
        manifests_restored: usize,
        /// Every node that should hold the manifest record does.
        manifests_complete: bool,
    },
    /// Its sites did not answer: for a later pass.
    Deferred(ObjectError),
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
}

impl Gateway {
    /// The repair rate allowed now: lower while S3 requests are being served.
    fn repair_rate(&self) -> u64 {
        if self.metrics.in_flight.get() > 0 {
            self.repair_pace.busy
        } else {
            self.repair_pace.idle
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
    /// manifest record at the nodes that lack it.
    async fn repair_entry(
        &self,
        object: ObjectId,
        version: Version,
        shards: &[usize],
    ) -> RepairOutcome {
        if self.objects.withdrawing(&object, version) {
            return RepairOutcome::Withdrawn;
        }
        let done = if shards.is_empty() {
            Repaired::default()
        } else {
            let pace = || self.repair_rate() / REPAIR_CONCURRENCY as u64;
            match self.objects.repair(object, version, shards, &pace).await {
                Ok(done) => done,
                Err(e) => return RepairOutcome::Deferred(e),
            }
        };
        let (manifests_restored, manifests_complete) =
            match self.objects.restore_manifest(object, version).await {
                Ok(r) => (r.written, r.unanswered == 0),
                Err(_) => (0, false),
            };
        RepairOutcome::Done {
            done,
            manifests_restored,
            manifests_complete,
        }
    }

    /// One pass over the repair backlog: every recorded object version with missing shards is
    /// rebuilt (keyless) where its sites answer; the rest stays for the next pass. Returns
    /// (repaired, still pending).
    pub async fn repair_pass(&self) -> Result<RepairPass, MetaError> {
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
                let outcome = self.repair_entry(object, version, &shards).await;
                (object, version, shards, outcome)
            })
            .buffer_unordered(REPAIR_CONCURRENCY);
        while let Some((object, version, shards, outcome)) = outcomes.next().await {
            match outcome {
                RepairOutcome::Withdrawn => {
                    // A failed write: nothing to rebuild.
                    self.index.repair_done(&object, version)?;
                }
                RepairOutcome::Done {
                    done,
                    manifests_restored,
                    manifests_complete,
                } => {
                    self.index.repair_done(&object, version)?;
                    pass.manifests_restored += manifests_restored;
                    if !manifests_complete {
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
                RepairOutcome::Deferred(e) => {
                    pass.pending += 1;
                    tracing::debug!(
                        object = %hex(&object.0),
                        error = %e,
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

/// Repairs the backlog every `repair_interval`.
#[derive(Debug)]
pub struct RepairWorker(Arc<Gateway>);

impl Worker for RepairWorker {
    const NAME: &'static str = "repair";
    const WHAT: &'static str = "rebuilds missing shards and manifest copies, withdraws failed writes, collects scrub findings";

    fn first_round_after(&self) -> Duration {
        self.0.repair_interval
    }

    async fn round(&self) -> Round {
        let next = self.0.repair_interval;
        match self.0.repair_pass().await {
            Ok(p) => Round::done(
                (p.repaired > 0 || p.pending > 0 || p.manifests_restored > 0).then(|| {
                    format!(
                        "{} repaired, {} pending, {} manifest copies restored",
                        p.repaired, p.pending, p.manifests_restored
                    )
                }),
                next,
            ),
            Err(e) => Round::failed(e, next),
        }
    }
}

/// Makes a catalog checkpoint every `checkpoint_interval` (when the index changed).
#[derive(Debug)]
pub struct CheckpointWorker(Arc<Gateway>);

impl Worker for CheckpointWorker {
    const NAME: &'static str = "checkpoint";
    const WHAT: &'static str =
        "signs a catalog checkpoint of the current versions and stores it at every node";

    fn first_round_after(&self) -> Duration {
        self.0.checkpoint_interval
    }

    async fn round(&self) -> Round {
        let next = self.0.checkpoint_interval;
        match self.0.checkpoint().await {
            Ok(c) => Round::done(
                c.new.then(|| {
                    format!(
                        "checkpoint {}: {} keys, stored at {} nodes",
                        c.seq, c.leaves, c.stored_at
                    )
                }),
                next,
            ),
            Err(e) => Round::failed(format!("{e:#}"), next),
        }
    }
}

impl Gateway {
    /// Starts the gateway's workers; they stop when `stop` turns true.
    pub fn start_workers(self: &Arc<Self>, stop: &watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
        vec![
            self.workers
                .start(Arc::new(RepairWorker(self.clone())), stop.clone()),
            self.workers
                .start(Arc::new(CheckpointWorker(self.clone())), stop.clone()),
        ]
    }

    /// What each worker has done.
    pub fn worker_reports(&self) -> Vec<Report> {
        self.workers.reports()
    }
}
