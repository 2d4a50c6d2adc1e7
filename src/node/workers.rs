//! The node's background workers, started in one place ([`start_workers`]): `scrub` (every
//! block of every shard checked against its header: scheduled, throttled, on demand, resumed
//! after a restart where it stopped). Each is a [`Worker`]: its settings come from the node's
//! config, and what it did is shown by name (`GET /v1/workers` on the node's admin port,
//! `exclave_worker_*` in its metrics).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::{Node, ScrubSchedule, blocking};
use crate::sys::now_ms;
use crate::worker::{Round, Worker};

/// How often an idle scrub looks whether a pass is due or was asked for.
const SCRUB_POLL: Duration = Duration::from_millis(500);

/// Scrubs the store: a full pass every `interval`, or at once when asked (`Request::Scrub`,
/// `POST /v1/scrub`), throttled to `bytes_per_sec`.
#[derive(Debug)]
pub struct ScrubWorker {
    node: Arc<Node>,
    schedule: ScrubSchedule,
}

impl Worker for ScrubWorker {
    const NAME: &'static str = "scrub";
    const WHAT: &'static str = "checks every block of every shard against its header; bad shards are quarantined and reported for repair";

    fn first_round_after(&self) -> Duration {
        Duration::ZERO
    }

    async fn round(&self) -> Round {
        let schedule = self.schedule;
        let st = self.node.store.clone();
        let due = blocking(move || {
            let requested = st.take_scrub_request()?;
            let state = st.scrub_state()?;
            let interval_ms = schedule.interval.as_millis() as u64;
            Ok(requested
                || state.in_progress
                || now_ms().saturating_sub(state.last_complete_ms) >= interval_ms)
        })
        .await;
        match due {
            Ok(true) => {}
            Ok(false) => return Round::done(None, SCRUB_POLL),
            Err(e) => return Round::failed(e, SCRUB_POLL),
        }
        // Steps of about 1/10 s of the allowed rate, so the throttle is smooth.
        let budget = (schedule.bytes_per_sec / 10).max(1 << 20);
        let started = Instant::now();
        let st = self.node.store.clone();
        let step = match blocking(move || st.scrub_step(budget, now_ms())).await {
            Ok(step) => step,
            Err(e) => return Round::failed(format!("scrub step: {e}"), SCRUB_POLL),
        };
        self.node
            .metrics
            .scrubbed(step.shards, step.bytes, step.bad.len() as u64);
        if !step.bad.is_empty() {
            warn!(bad = step.bad.len(), "scrub found bad shards");
        }
        // Throttle: this step's bytes at the allowed rate.
        let should =
            Duration::from_secs_f64(step.bytes as f64 / schedule.bytes_per_sec.max(1) as f64);
        let rest = should.saturating_sub(started.elapsed());
        if step.finished {
            info!("scrub pass complete");
            return Round::done(Some("scrub pass complete".into()), rest + SCRUB_POLL);
        }
        let summary =
            (!step.bad.is_empty()).then(|| format!("found {} bad shards", step.bad.len()));
        Round::done(summary, rest)
    }
}

/// Starts the node's workers; they stop when `stop` turns true.
pub fn start_workers(
    node: &Arc<Node>,
    schedule: ScrubSchedule,
    stop: &watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    vec![node.workers.start(
        Arc::new(ScrubWorker {
            node: node.clone(),
            schedule,
        }),
        stop.clone(),
    )]
}
