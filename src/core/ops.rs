//! State machines of the data path, sans-IO: the write quorum of a PUT and the hedged read of
//! a stripe range. Drivers (`coordinator`) feed them events and carry out their commands;
//! time is an argument (`now`, in milliseconds of any monotonic clock).

use std::collections::{BTreeMap, BTreeSet};

use crate::core::hlc::Version;
use crate::core::ids::{NodeId, ObjectId, SiteId};

/// Withdrawals of failed writes not yet confirmed: (object, version) to the nodes still to
/// confirm. The coordinator keeps it; the gateway's index persists it.
pub type Pending = BTreeMap<(ObjectId, Version), BTreeSet<NodeId>>;

/// Where a write stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Not decided yet.
    Pending,
    /// At least `needed` shards are durable at distinct sites: the write may be acknowledged.
    /// Shards still pending or failed are to be repaired.
    Reached,
    /// Too many shards failed: the quorum can no longer be reached.
    Impossible,
}

/// The write quorum of one object: every shard holds a block of every stripe, so "k + 1 shards
/// of every stripe durable at distinct sites" is "k + 1 shards durable at distinct sites".
///
/// Calling contract: `handle_durable(i)` when shard i's node acknowledged it durable,
/// `handle_failed(i)` when it failed, `handle_timeout(now)` when time passes; read `outcome()`.
#[derive(Clone, Debug)]
pub struct WriteQuorum {
    sites: Vec<SiteId>,
    needed: usize,
    deadline: u64,
    durable: BTreeSet<usize>,
    failed: BTreeSet<usize>,
}

impl WriteQuorum {
    /// A quorum over shards placed at `sites[i]`, needing `needed` distinct durable sites
    /// before `deadline`.
    pub fn new(sites: Vec<SiteId>, needed: usize, deadline: u64) -> Self {
        Self {
            sites,
            needed,
            deadline,
            durable: BTreeSet::new(),
            failed: BTreeSet::new(),
        }
    }

    /// Shard `i` is durable.
    pub fn handle_durable(&mut self, i: usize) {
        if i < self.sites.len() && !self.failed.contains(&i) {
            self.durable.insert(i);
        }
    }

    /// Shard `i` failed.
    pub fn handle_failed(&mut self, i: usize) {
        if i < self.sites.len() && !self.durable.contains(&i) {
            self.failed.insert(i);
        }
    }

    /// Time passed: shards not durable by the deadline count as failed.
    pub fn handle_timeout(&mut self, now: u64) {
        if now >= self.deadline {
            for i in 0..self.sites.len() {
                if !self.durable.contains(&i) {
                    self.failed.insert(i);
                }
            }
        }
    }

    /// The deadline, for the driver's timer.
    pub fn poll_deadline(&self) -> u64 {
        self.deadline
    }

    fn distinct(&self, shards: impl Iterator<Item = usize>) -> usize {
        shards.map(|i| self.sites[i]).collect::<BTreeSet<_>>().len()
    }

    /// Where the write stands.
    pub fn outcome(&self) -> WriteOutcome {
        if self.distinct(self.durable.iter().copied()) >= self.needed {
            return WriteOutcome::Reached;
        }
        let possible = (0..self.sites.len()).filter(|i| !self.failed.contains(i));
        if self.distinct(possible) < self.needed {
            WriteOutcome::Impossible
        } else {
            WriteOutcome::Pending
        }
    }

    /// Shards not durable (to be recorded for repair once the write is acknowledged).
    pub fn missing(&self) -> Vec<usize> {
        (0..self.sites.len())
            .filter(|i| !self.durable.contains(i))
            .collect()
    }
}

/// What became of one shard's fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchResult {
    /// Every block arrived and matched its hash.
    Good,
    /// Missing, corrupt, wrong hash, or the node failed.
    Bad,
}

/// A command of [`HedgedRead`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadCommand {
    /// Fetch shard `i` (for the range being read).
    Fetch(usize),
}

/// Where a read stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Waiting for fetches.
    Pending,
    /// These k shards are good: decode from them.
    Ready(Vec<usize>),
    /// Fewer than k shards can still be had.
    Failed {
        /// Shards that came back bad.
        bad: Vec<usize>,
    },
}

/// Reads one range of stripes from k of n shards: data shards first (no decoding needed when all
/// of them arrive), ordered by the driver's preference; a shard that comes back bad is replaced
/// at once; one that is late (past `hedge_after` ms) is hedged with the next candidate, so a
/// slow site costs at most `hedge_after`, never a timeout, when k good shards can be had
/// elsewhere.
///
/// Calling contract: take the commands of `poll_commands(now)` and carry them out; report each
/// result with `handle_result(i, result)`; call `poll_commands` again whenever an event arrives
/// or `poll_deadline()` passes; stop when `outcome()` is not `Pending`.
#[derive(Clone, Debug)]
pub struct HedgedRead {
    k: usize,
    order: Vec<usize>,
    next: usize,
    /// In flight: (shard, started at).
    started: Vec<(usize, u64)>,
    last_poll: u64,
    good: Vec<usize>,
    bad: Vec<usize>,
    hedge_after: u64,
    started_once: bool,
}

impl HedgedRead {
    /// A read needing `k` good shards, trying them in `order` (every shard index once).
    pub fn new(k: usize, order: Vec<usize>, hedge_after: u64) -> Self {
        Self {
            k,
            order,
            next: 0,
            started: Vec::new(),
            good: Vec::new(),
            bad: Vec::new(),
            hedge_after,
            last_poll: 0,
            started_once: false,
        }
    }

    fn in_flight(&self) -> usize {
        self.started.len()
    }

    fn fresh(&self, now: u64) -> usize {
        self.started
            .iter()
            .filter(|&&(_, t)| now < t + self.hedge_after)
            .count()
    }

    fn launch(&mut self, now: u64, out: &mut Vec<ReadCommand>) -> bool {
        if self.next >= self.order.len() {
            return false;
        }
        let i = self.order[self.next];
        self.next += 1;
        self.started.push((i, now));
        out.push(ReadCommand::Fetch(i));
        true
    }

    /// Commands to carry out now.
    pub fn poll_commands(&mut self, now: u64) -> Vec<ReadCommand> {
        let mut out = Vec::new();
        self.last_poll = now;
        if self.outcome() != ReadOutcome::Pending {
            return out;
        }
        if !self.started_once {
            self.started_once = true;
            for _ in 0..self.k {
                self.launch(now, &mut out);
            }
            return out;
        }
        // Keep k fetches that are good or still on time: one that came back bad is replaced at
        // once; one that is late (older than hedge_after) no longer counts, so it is hedged.
        // A late fetch that answers after all is still used.
        while self.good.len() + self.fresh(now) < self.k {
            if !self.launch(now, &mut out) {
                break;
            }
        }
        out
    }

    /// The next time `poll_commands` should run if nothing arrives before.
    pub fn poll_deadline(&self) -> Option<u64> {
        if self.next >= self.order.len() {
            return None;
        }
        self.started
            .iter()
            .map(|&(_, t)| t + self.hedge_after)
            .filter(|&d| d > self.last_poll)
            .min()
    }

    /// Shard `i`'s fetch ended.
    pub fn handle_result(&mut self, i: usize, result: FetchResult) {
        let Some(pos) = self.started.iter().position(|&(j, _)| j == i) else {
            return;
        };
        self.started.swap_remove(pos);
        match result {
            FetchResult::Good => self.good.push(i),
            FetchResult::Bad => self.bad.push(i),
        }
    }

    /// Where the read stands.
    pub fn outcome(&self) -> ReadOutcome {
        if self.good.len() >= self.k {
            let mut g = self.good[..self.k].to_vec();
            g.sort_unstable();
            return ReadOutcome::Ready(g);
        }
        let could = self.good.len() + self.in_flight() + (self.order.len() - self.next);
        if could < self.k {
            ReadOutcome::Failed {
                bad: self.bad.clone(),
            }
        } else {
            ReadOutcome::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sites(v: &[u16]) -> Vec<SiteId> {
        v.iter().map(|&s| SiteId(s)).collect()
    }

    #[test]
    fn quorum_counts_distinct_sites_and_gives_up_early() {
        let mut q = WriteQuorum::new(sites(&[0, 1, 2, 3, 4]), 4, 1000);
        for i in [0, 1, 2] {
            q.handle_durable(i);
        }
        assert_eq!(q.outcome(), WriteOutcome::Pending);
        q.handle_durable(4);
        assert_eq!(q.outcome(), WriteOutcome::Reached);
        assert_eq!(q.missing(), vec![3]);

        let mut q = WriteQuorum::new(sites(&[0, 1, 2, 3, 4]), 4, 1000);
        q.handle_failed(0);
        assert_eq!(q.outcome(), WriteOutcome::Pending);
        q.handle_failed(3);
        assert_eq!(q.outcome(), WriteOutcome::Impossible);

        // Two shards at one site count once.
        let mut q = WriteQuorum::new(sites(&[0, 0, 1, 2]), 3, 1000);
        for i in [0, 1, 2] {
            q.handle_durable(i);
        }
        assert_eq!(q.outcome(), WriteOutcome::Pending);
        q.handle_timeout(999);
        assert_eq!(q.outcome(), WriteOutcome::Pending);
        q.handle_timeout(1000);
        assert_eq!(q.outcome(), WriteOutcome::Impossible);
    }

    /// A seeded simulation: n sites with random latencies, some dark (never answer), some bad.
    /// Whenever k good shards exist, the read completes, and no later than the k-th earliest
    /// (moment asked at the latest + latency) over the good shards, where shard j is asked
    /// after at most j - k + 1 hedge delays.
    #[test]
    fn hedged_reads_never_wait_for_a_timeout_when_k_good_shards_exist() {
        let mut seed = 0x5eed_u64;
        let mut rnd = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..2000 {
            let k = 1 + rnd(6) as usize;
            let m = 1 + rnd(4) as usize;
            let n = k + m;
            // Per shard: None = dark, Some((latency, good)).
            let shards: Vec<Option<(u64, bool)>> = (0..n)
                .map(|_| match rnd(10) {
                    0 => None,
                    1 => Some((1 + rnd(50), false)),
                    _ => {
                        let spread = if rnd(4) == 0 { 5000 } else { 50 };
                        Some((1 + rnd(spread), true))
                    }
                })
                .collect();
            let good_total = shards
                .iter()
                .filter(|s| matches!(s, Some((_, true))))
                .count();
            let hedge = 100;
            let mut read = HedgedRead::new(k, (0..n).collect(), hedge);
            let mut now = 0u64;
            let mut pending: Vec<(u64, usize, FetchResult)> = Vec::new();
            loop {
                for ReadCommand::Fetch(i) in read.poll_commands(now) {
                    if let Some((lat, good)) = shards[i] {
                        let r = if good {
                            FetchResult::Good
                        } else {
                            FetchResult::Bad
                        };
                        pending.push((now + lat, i, r));
                    }
                }
                if read.outcome() != ReadOutcome::Pending {
                    break;
                }
                pending.sort_unstable_by_key(|e| (e.0, e.1));
                let next_event = pending.first().map(|e| e.0);
                let next = match (next_event, read.poll_deadline()) {
                    (Some(a), Some(b)) => a.min(b),
                    (Some(a), None) => a,
                    (None, Some(b)) => b,
                    (None, None) => break, // everything asked, the rest is dark
                };
                now = now.max(next);
                while pending.first().is_some_and(|e| e.0 <= now) {
                    let (_, i, r) = pending.remove(0);
                    read.handle_result(i, r);
                }
            }
            match read.outcome() {
                ReadOutcome::Ready(chosen) => {
                    assert_eq!(chosen.len(), k);
                    for i in &chosen {
                        assert!(matches!(shards[*i], Some((_, true))));
                    }
                    // Bounded by hedging: shard j of the order is asked by (j - k + 1) hedge
                    // delays at the latest (at once when one before it came back bad), so the
                    // read ends by the k-th earliest of (that moment + latency) over the good
                    // shards: never later, and never a timeout.
                    let mut ends: Vec<u64> = shards
                        .iter()
                        .enumerate()
                        .filter_map(|(j, s)| match s {
                            Some((lat, true)) => {
                                Some((j + 1).saturating_sub(k) as u64 * hedge + lat)
                            }
                            _ => None,
                        })
                        .collect();
                    ends.sort_unstable();
                    assert!(
                        now <= ends[k - 1],
                        "took {now}, bound {}: {shards:?}",
                        ends[k - 1]
                    );
                }
                ReadOutcome::Failed { .. } | ReadOutcome::Pending => {
                    assert!(
                        good_total < k,
                        "gave up with {good_total} good shards of k = {k}: {shards:?} {read:?} now {now}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_dark_data_shard_costs_one_hedge_delay() {
        // k = 3 of 5; shard 1 is dark, the rest answer in 10 ms.
        let mut read = HedgedRead::new(3, vec![0, 1, 2, 3, 4], 50);
        assert_eq!(
            read.poll_commands(0),
            vec![
                ReadCommand::Fetch(0),
                ReadCommand::Fetch(1),
                ReadCommand::Fetch(2)
            ]
        );
        read.handle_result(0, FetchResult::Good);
        read.handle_result(2, FetchResult::Good);
        assert_eq!(read.poll_commands(10), vec![]);
        assert_eq!(read.poll_deadline(), Some(50));
        assert_eq!(read.poll_commands(50), vec![ReadCommand::Fetch(3)]);
        read.handle_result(3, FetchResult::Good);
        assert_eq!(read.outcome(), ReadOutcome::Ready(vec![0, 2, 3]));
    }
}
