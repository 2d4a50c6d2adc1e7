//! Background workers: the loops a role runs beside serving requests, each a type with a name,
//! its own settings (given at construction), and one way to start and stop it. What each did is
//! kept by name and shown the same way everywhere: the admin API (`GET /v1/workers`),
//! `exclave workers`, and the metrics `exclave_worker_*{worker="NAME"}`.
//!
//! The workers of each role are started in one place: `Gateway::start_workers` (`repair`,
//! `checkpoint`) and `node::start_workers` (`scrub`). A worker names nothing of the crate but
//! `sys`; the work itself is the role's.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::sys::now_ms;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// One round of a worker's work, and how long to wait before the next.
#[derive(Debug)]
pub struct Round {
    /// What the round did (`None`: nothing worth saying), or why it failed.
    pub outcome: Result<Option<String>, String>,
    /// Time until the next round.
    pub next: Duration,
}

impl Round {
    /// A round that did its work; the next one after `next`.
    pub fn done(summary: Option<String>, next: Duration) -> Self {
        Self {
            outcome: Ok(summary),
            next,
        }
    }

    /// A round that failed; the next one after `next`.
    pub fn failed(error: impl std::fmt::Display, next: Duration) -> Self {
        Self {
            outcome: Err(error.to_string()),
            next,
        }
    }
}

/// A background worker.
pub trait Worker: Send + Sync + 'static {
    /// The name operators see (`exclave workers`, logs, metrics labels).
    const NAME: &'static str;
    /// What it does, in a line.
    const WHAT: &'static str;
    /// How long after start the first round runs.
    fn first_round_after(&self) -> Duration;
    /// One round of work.
    fn round(&self) -> impl Future<Output = Round> + Send;
    /// How far the round in progress has come, if it says.
    fn progress(&self) -> Option<String> {
        None
    }
}

/// What a worker has done, as the admin API and `exclave workers` show it.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Report {
    /// The worker's name.
    pub name: &'static str,
    /// What it does.
    pub what: &'static str,
    /// `waiting`, `working` or `stopped`.
    pub state: &'static str,
    /// Rounds run.
    pub rounds: u64,
    /// Rounds that failed.
    pub failures: u64,
    /// Wall-clock ms when the last round ended, if any did.
    pub last_round_ms: Option<u64>,
    /// Wall-clock ms when the last round that did not fail ended.
    pub last_ok_ms: Option<u64>,
    /// What the last round that said something did.
    pub last_summary: Option<String>,
    /// Why the last failed round failed (cleared by the next round that does not fail).
    pub last_error: Option<String>,
    /// Wall-clock ms when the next round is due (while waiting).
    pub next_round_ms: Option<u64>,
    /// How far the round in progress has come (while working, for workers that say).
    pub progress: Option<String>,
}

type Progress = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// The workers of a role, in the order they were started.
#[derive(Default)]
pub struct Workers {
    list: Mutex<Vec<(Arc<Mutex<Report>>, Progress)>>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers").finish_non_exhaustive()
    }
}

impl Workers {
    /// Starts `worker`: rounds until `stop` turns true (a round in progress finishes first).
    pub fn start<W: Worker>(
        &self,
        worker: Arc<W>,
        mut stop: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let slot = Arc::new(Mutex::new(Report {
            name: W::NAME,
            what: W::WHAT,
            state: "waiting",
            ..Report::default()
        }));
        let progress: Progress = {
            let w = worker.clone();
            Arc::new(move || w.progress())
        };
        self.list
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((slot.clone(), progress));
        tokio::spawn(async move {
            let report = || slot.lock().unwrap_or_else(PoisonError::into_inner);
            let mut wait = worker.first_round_after();
            loop {
                {
                    let mut r = report();
                    r.state = "waiting";
                    r.next_round_ms = Some(now_ms() + wait.as_millis() as u64);
                }
                if !wait.is_zero() {
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        _ = stop.changed() => break,
                    }
                }
                if *stop.borrow() {
                    break;
                }
                {
                    let mut r = report();
                    r.state = "working";
                    r.next_round_ms = None;
                }
                let round = worker.round().await;
                let now = now_ms();
                {
                    let mut r = report();
                    r.rounds += 1;
                    r.last_round_ms = Some(now);
                    match &round.outcome {
                        Ok(summary) => {
                            r.last_ok_ms = Some(now);
                            r.last_error = None;
                            if summary.is_some() {
                                r.last_summary.clone_from(summary);
                            }
                        }
                        Err(e) => {
                            tracing::warn!(worker = W::NAME, error = %e, "worker round failed");
                            r.failures += 1;
                            r.last_error = Some(e.clone());
                        }
                    }
                }
                wait = round.next;
            }
            let mut r = report();
            r.state = "stopped";
            r.next_round_ms = None;
        })
    }

    /// What each worker has done, in the order they were started.
    pub fn reports(&self) -> Vec<Report> {
        self.list
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(s, progress)| {
                let mut r = s.lock().unwrap_or_else(PoisonError::into_inner).clone();
                if r.state == "working" {
                    r.progress = progress();
                }
                r
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    struct Counting(AtomicU64);

    impl Worker for Counting {
        const NAME: &'static str = "counting";
        const WHAT: &'static str = "counts, and fails every other round";
        fn first_round_after(&self) -> Duration {
            Duration::ZERO
        }
        async fn round(&self) -> Round {
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            if n % 2 == 1 {
                Round::failed(format!("round {n} failed"), Duration::from_millis(5))
            } else {
                Round::done(Some(format!("round {n}")), Duration::from_millis(5))
            }
        }
    }

    #[tokio::test]
    async fn a_worker_reports_its_rounds_failures_and_stop() {
        let workers = Workers::default();
        let (tx, rx) = watch::channel(false);
        let w = Arc::new(Counting(AtomicU64::new(0)));
        let task = workers.start(w.clone(), rx);
        tokio::time::timeout(Duration::from_secs(10), async {
            while w.0.load(Ordering::SeqCst) < 4 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await
        .unwrap();
        tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .unwrap()
            .unwrap();
        let r = &workers.reports()[0];
        assert_eq!((r.name, r.state), ("counting", "stopped"));
        let rounds = w.0.load(Ordering::SeqCst);
        assert_eq!(r.rounds, rounds);
        assert_eq!(r.failures, rounds / 2);
        assert!(r.last_ok_ms.is_some() && r.last_summary.is_some(), "{r:?}");
    }
}
