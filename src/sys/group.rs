//! Group commit: writes to one redb database that arrive together share one durable commit
//! (one fsync) instead of queueing behind each other's. One committer thread per database
//! takes everything queued, applies it in one transaction, commits, answers every writer, and
//! takes what queued meanwhile. A writer waits on its own answer only: an async writer as a
//! task (no thread held while the disk works), a blocking one on its thread.
//!
//! A write whose own apply fails gets its error and leaves nothing behind: the transaction it
//! ran in is dropped (redb aborts it) and the others are applied again in a fresh one, so a
//! half-done write is never committed along with its neighbours. Applies are therefore `Fn`:
//! one may run more than once, each time in a transaction that does not commit but the last.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use redb::{Database, WriteTransaction};

/// One write: applies it inside the shared transaction, giving what it read on the way.
pub type Apply<T, E> = Box<dyn Fn(&WriteTransaction) -> Result<T, E> + Send>;

/// Where a write's answer goes.
enum Reply<T, E> {
    Thread(mpsc::SyncSender<Result<T, E>>),
    Task(tokio::sync::oneshot::Sender<Result<T, E>>),
}

struct Job<T, E> {
    apply: Apply<T, E>,
    reply: Reply<T, E>,
}

/// The committer of one database. Dropping it lets the committer finish what is queued and
/// waits for its thread.
pub struct GroupCommit<T, E> {
    queue: Mutex<Option<mpsc::Sender<Job<T, E>>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    commits: Arc<AtomicU64>,
    fail: fn(String) -> E,
}

impl<T, E> std::fmt::Debug for GroupCommit<T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit")
            .field("commits", &self.commits.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Most writes one commit takes (the rest wait for the next): bounds a commit's size.
const MAX_BATCH: usize = 1024;

impl<T: Send + 'static, E: Send + 'static> GroupCommit<T, E> {
    /// Starts the committer of `db`; `fail` makes a writer's error of redb's own (beginning
    /// or committing a transaction) or of the committer being gone.
    pub fn new(db: Arc<Database>, fail: fn(String) -> E) -> Self {
        let (tx, rx) = mpsc::channel::<Job<T, E>>();
        let commits = Arc::new(AtomicU64::new(0));
        let counted = commits.clone();
        let thread = std::thread::Builder::new()
            .name("group-commit".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut jobs = vec![first];
                    while jobs.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(j) => jobs.push(j),
                            Err(_) => break,
                        }
                    }
                    let (applies, replies): (Vec<_>, Vec<_>) =
                        jobs.into_iter().map(|j| (j.apply, j.reply)).unzip();
                    let results = commit(&db, &applies, &counted, fail);
                    for (reply, r) in replies.into_iter().zip(results) {
                        // A writer that stopped waiting (its task was dropped) needs no answer.
                        let _ = match reply {
                            Reply::Thread(s) => s.send(r).ok(),
                            Reply::Task(s) => s.send(r).ok(),
                        };
                    }
                }
            })
            .ok();
        Self {
            queue: Mutex::new(thread.is_some().then_some(tx)),
            thread: Mutex::new(thread),
            commits,
            fail,
        }
    }

    fn send(&self, job: Job<T, E>) -> Result<(), E> {
        let queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        match queue.as_ref().map(|q| q.send(job)) {
            Some(Ok(())) => Ok(()),
            _ => Err((self.fail)(
                "the database's committer is not running".into(),
            )),
        }
    }

    /// Applies `apply` in a durable commit shared with whatever else is queued; blocks until
    /// that commit is on disk, then returns what the apply gave or its error (its own, or the
    /// commit's).
    pub fn write(&self, apply: Apply<T, E>) -> Result<T, E> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Job {
            apply,
            reply: Reply::Thread(tx),
        })?;
        rx.recv()
            .unwrap_or_else(|_| Err((self.fail)("the commit was lost".into())))
    }

    /// [`Self::write`] for a task: waits without holding a thread.
    pub async fn write_async(&self, apply: Apply<T, E>) -> Result<T, E> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Job {
            apply,
            reply: Reply::Task(tx),
        })?;
        rx.await
            .unwrap_or_else(|_| Err((self.fail)("the commit was lost".into())))
    }
}

impl<T, E> GroupCommit<T, E> {
    /// Durable commits made so far.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }
}

impl<T, E> Drop for GroupCommit<T, E> {
    fn drop(&mut self) {
        drop(self.queue.lock().unwrap_or_else(|e| e.into_inner()).take());
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
    }
}

/// Commits the batch: every apply in one transaction; one that fails is answered with its
/// error and the rest run again in a new transaction without it. If the commit itself fails,
/// every write in it gets that error. Answers in the batch's order.
fn commit<T, E>(
    db: &Database,
    applies: &[Apply<T, E>],
    commits: &AtomicU64,
    fail: fn(String) -> E,
) -> Vec<Result<T, E>> {
    let mut results: Vec<Option<Result<T, E>>> = applies.iter().map(|_| None).collect();
    let mut pending: Vec<usize> = (0..applies.len()).collect();
    while !pending.is_empty() {
        let txn = match db.begin_write() {
            Ok(t) => t,
            Err(e) => {
                let msg = e.to_string();
                for &i in &pending {
                    results[i] = Some(Err(fail(msg.clone())));
                }
                break;
            }
        };
        let mut gave = Vec::with_capacity(pending.len());
        let mut failed = None;
        for (n, &i) in pending.iter().enumerate() {
            match applies[i](&txn) {
                Ok(v) => gave.push(v),
                Err(e) => {
                    failed = Some((n, e));
                    break;
                }
            }
        }
        if let Some((n, e)) = failed {
            // Dropped uncommitted: redb aborts it, the failed write's changes with it.
            drop(txn);
            results[pending.remove(n)] = Some(Err(e));
            continue;
        }
        commits.fetch_add(1, Ordering::Relaxed);
        match txn.commit() {
            Ok(()) => {
                for (&i, v) in pending.iter().zip(gave) {
                    results[i] = Some(Ok(v));
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for &i in &pending {
                    results[i] = Some(Err(fail(msg.clone())));
                }
            }
        }
        break;
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(fail("not committed".into()))))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use redb::{ReadableDatabase as _, TableDefinition};

    use super::*;

    const T: TableDefinition<'_, u64, u64> = TableDefinition::new("t");

    fn insert(k: u64, fail: bool) -> Apply<u64, String> {
        Box::new(move |txn| {
            let mut t = txn.open_table(T).map_err(|e| e.to_string())?;
            t.insert(k, k).map_err(|e| e.to_string())?;
            if fail {
                return Err(format!("write {k} refused after its insert"));
            }
            Ok(k * 10)
        })
    }

    #[test]
    fn a_failed_write_leaves_nothing_and_its_neighbours_commit() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Database::create(dir.path().join("db")).unwrap());
        let group = Arc::new(GroupCommit::new(db.clone(), |m| m));
        let handles: Vec<_> = (0..64u64)
            .map(|k| {
                let group = group.clone();
                std::thread::spawn(move || group.write(insert(k, k % 7 == 3)))
            })
            .collect();
        for (k, h) in handles.into_iter().enumerate() {
            let k = k as u64;
            match h.join().unwrap() {
                Ok(v) => assert_eq!(v, k * 10, "write {k} gave another's value"),
                Err(e) => {
                    assert_eq!(k % 7, 3, "write {k} failed: {e}");
                    assert!(e.contains(&format!("write {k} ")), "{e}");
                }
            }
        }
        let txn = db.begin_read().unwrap();
        let t = txn.open_table(T).unwrap();
        for k in 0..64u64 {
            let there = t.get(k).unwrap().is_some();
            assert_eq!(there, k % 7 != 3, "key {k} there: {there}");
        }
    }
}
