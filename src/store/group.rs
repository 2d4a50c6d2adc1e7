//! Group commit: manifest writes that arrive together share one durable redb commit (one
//! fsync) instead of queueing behind each other's. Callers run on blocking threads; the first
//! to find no commit in progress becomes the leader, commits everything queued (its own write
//! included), hands every writer its result, and repeats while writes keep arriving.

use std::sync::{Condvar, Mutex};

use redb::{Database, WriteTransaction};

use super::{StoreError, db_err};

/// One write: a closure applying it inside the shared transaction.
pub(super) type Apply = Box<dyn FnOnce(&WriteTransaction) -> Result<(), StoreError> + Send>;

struct Slot {
    apply: Option<Apply>,
    result: Option<Result<(), StoreError>>,
}

#[derive(Default)]
struct State {
    slots: Vec<(u64, Slot)>,
    next_id: u64,
    leader: bool,
}

/// The queue of writes waiting for a commit.
#[derive(Default)]
pub(super) struct GroupCommit {
    state: Mutex<State>,
    done: Condvar,
    commits: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

impl GroupCommit {
    /// Applies `apply` in a durable commit shared with whatever else is queued; returns once
    /// that commit is on disk (or failed).
    pub(super) fn write(&self, db: &Database, apply: Apply) -> Result<(), StoreError> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let id = st.next_id;
        st.next_id += 1;
        st.slots.push((
            id,
            Slot {
                apply: Some(apply),
                result: None,
            },
        ));
        loop {
            if let Some(pos) = st
                .slots
                .iter()
                .position(|(i, s)| *i == id && s.result.is_some())
            {
                let (_, slot) = st.slots.remove(pos);
                return slot
                    .result
                    .unwrap_or_else(|| Err(StoreError::Db("lost commit result".into())));
            }
            if st.leader {
                st = self.done.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            // Lead one commit of everything queued and not yet applied.
            st.leader = true;
            let batch: Vec<(u64, Apply)> = st
                .slots
                .iter_mut()
                .filter_map(|(i, s)| s.apply.take().map(|a| (*i, a)))
                .collect();
            drop(st);
            self.commits
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let outcome = Self::commit(db, batch);
            st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            for (i, r) in outcome {
                if let Some((_, s)) = st.slots.iter_mut().find(|(j, _)| *j == i) {
                    s.result = Some(r);
                }
            }
            st.leader = false;
            self.done.notify_all();
        }
    }

    /// Commits made so far.
    #[cfg(test)]
    pub(super) fn commits(&self) -> u64 {
        self.commits.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// One transaction over the batch. A write whose own apply fails gets its error; the
    /// others still commit. If the commit itself fails, every write in it gets that error.
    fn commit(db: &Database, batch: Vec<(u64, Apply)>) -> Vec<(u64, Result<(), StoreError>)> {
        let txn = match db.begin_write() {
            Ok(t) => t,
            Err(e) => {
                return batch
                    .into_iter()
                    .map(|(i, _)| (i, Err(db_err(&e))))
                    .collect();
            }
        };
        let mut results = Vec::with_capacity(batch.len());
        for (i, apply) in batch {
            results.push((i, apply(&txn)));
        }
        if let Err(e) = txn.commit().map_err(db_err) {
            let msg = e.to_string();
            for (_, r) in &mut results {
                if r.is_ok() {
                    *r = Err(StoreError::Db(msg.clone()));
                }
            }
        }
        results
    }
}
