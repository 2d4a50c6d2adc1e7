//! The gateway's background workers, started in one place (`Gateway::start_workers`):
//! `repair` (the backlog: shards rebuilt keyless, manifest copies restored, failed writes
//! withdrawn, scrub findings collected) and `checkpoint` (the signed catalog checkpoints of
//! `catalog.rs`), `gc` (`collect.rs`) and `lifecycle` (`lifecycle.rs`). Each is a [`Worker`]: its settings come from the gateway's config, and what
//! it did is shown by name (`GET /v1/workers`, `exclave workers`, `exclave_worker_*`).

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Gateway;
use super::catalog::Catalog;
use super::collect::Collector;
use super::repair::Repairer;
use crate::worker::{Report, Round, Worker};

/// Repairs the backlog every `repair_interval`.
#[derive(Debug)]
pub struct RepairWorker(Arc<Repairer>);

impl Worker for RepairWorker {
    const NAME: &'static str = "repair";
    const WHAT: &'static str = "rebuilds missing shards and manifest copies, withdraws failed writes, collects scrub findings";

    fn first_round_after(&self) -> Duration {
        self.0.interval
    }

    async fn round(&self) -> Round {
        let next = self.0.interval;
        match self.0.pass().await {
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
pub struct CheckpointWorker(Arc<Catalog>);

impl Worker for CheckpointWorker {
    const NAME: &'static str = "checkpoint";
    const WHAT: &'static str =
        "signs a catalog checkpoint of the current versions and stores it at every node";

    fn first_round_after(&self) -> Duration {
        self.0.interval
    }

    async fn round(&self) -> Round {
        let next = self.0.interval;
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

/// Collects garbage every `gc_interval` (`collect.rs`).
#[derive(Debug)]
pub struct CollectWorker(Arc<Collector>);

impl Worker for CollectWorker {
    const NAME: &'static str = "gc";
    const WHAT: &'static str = "deletes, at the nodes, the shards and records no reader may need again (after the grace period)";

    fn first_round_after(&self) -> Duration {
        self.0.tuning.interval
    }

    async fn round(&self) -> Round {
        let next = self.0.tuning.interval;
        match self.0.pass(false).await {
            Ok(r) => {
                let (items, bytes) = r
                    .by_reason
                    .values()
                    .fold((0, 0), |(i, b), t| (i + t.items, b + t.bytes));
                Round::done(
                    (items > 0).then(|| format!("{items} versions collected, {bytes} bytes freed")),
                    next,
                )
            }
            Err(e) => Round::failed(format!("{e:#}"), next),
        }
    }
}

/// Applies the buckets' lifecycle rules every `lifecycle_interval` (`lifecycle.rs`).
#[derive(Debug)]
pub struct LifecycleWorker(Weak<Gateway>);

impl Worker for LifecycleWorker {
    const NAME: &'static str = "lifecycle";
    const WHAT: &'static str = "applies the buckets' lifecycle rules: expires current versions, removes noncurrent ones and expired delete markers, aborts old uploads";

    fn first_round_after(&self) -> Duration {
        self.0
            .upgrade()
            .map_or(Duration::from_secs(3600), |g| g.lifecycle.interval)
    }

    async fn round(&self) -> Round {
        let Some(g) = self.0.upgrade() else {
            return Round::done(None, Duration::from_secs(3600));
        };
        let next = g.lifecycle.interval;
        match g.lifecycle_pass().await {
            Ok(r) => {
                let actions = r.actions();
                Round::done(
                    (actions > 0).then(|| {
                        let keys: u64 = r.buckets.iter().map(|b| b.keys).sum();
                        format!(
                            "{actions} lifecycle actions in {} buckets ({keys} keys weighed)",
                            r.buckets.len()
                        )
                    }),
                    next,
                )
            }
            Err(e) => Round::failed(format!("{e:#}"), next),
        }
    }

    fn progress(&self) -> Option<String> {
        self.0.upgrade().and_then(|g| g.lifecycle.progress())
    }
}

impl Gateway {
    /// Starts the gateway's workers; they stop when `stop` turns true.
    pub fn start_workers(self: &Arc<Self>, stop: &watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
        vec![
            self.workers
                .start(Arc::new(RepairWorker(self.repair.clone())), stop.clone()),
            self.workers.start(
                Arc::new(CheckpointWorker(self.catalog.clone())),
                stop.clone(),
            ),
            self.workers.start(
                Arc::new(CollectWorker(self.collector.clone())),
                stop.clone(),
            ),
            self.workers.start(
                Arc::new(LifecycleWorker(Arc::downgrade(self))),
                stop.clone(),
            ),
        ]
    }

    /// What each worker has done.
    pub fn worker_reports(&self) -> Vec<Report> {
        self.workers.reports()
    }
}
