//! Deterministic simulation of the manifest quorums (`core::quorum`), of withdrawals, and of the
//! hedged data read (`core::ops`).
//!
//! One gateway and five manifest nodes (k = 3, m = 2: a write needs 4 acknowledgements, a read
//! 2 answers), three clients writing and reading three keys, in virtual time, from a seed:
//! messages are lost, delayed past the gateway's timeout and reordered; nodes are cut off,
//! restarted (what they stored stays; what was in flight to them is lost) and one may be rolled
//! back to an old copy of itself. Failed writes are withdrawn from every node (retried until
//! each confirms; reads skip a version being withdrawn; a node refuses a write it was told to
//! withdraw), as the coordinator does.
//!
//! Half the reads know the key's current version from the gateway's index (their floor); half
//! go as through a gateway that does not (rebuilt, or another one), on the quorum overlap
//! alone. Checked after every read, and at the end:
//! - a read never returns a version older than one acknowledged before it started (it may
//!   fail instead: too few answers, or only versions older than its floor found); without a
//!   floor this is checked until a node is rolled back (a rolled-back node defeats the
//!   overlap: the floor, and the catalog checkpoints in a recovery, are what catch it);
//! - a read never returns a version whose write failed (was answered with an error) before
//!   the read started (without a floor, again until a node is rolled back);
//! - at the end, with everything healed, a recovery from the four foreign sites alone finds,
//!   for every key, its newest acknowledged version (or a newer write still in flight when
//!   the load stopped), never an older one and never a failed one, also where a rolled-back
//!   node holds a failed write again (a recovery skips what any node keeps as withdrawn).
//! - every read that finds a version then reads its data with the hedged read (`core::ops`),
//!   over the same network: node i holds shard i of each version written while it was
//!   reachable (shards go out before the manifest), k = 3 are needed, a fetch that is lost,
//!   late past the timeout or missing counts as bad. The read settles only on shards that
//!   answered whole, gives up only with fewer than k of them, and ends within
//!   (n - k) hedge delays plus one timeout of its start: it never stalls.
//!
//! `./check` runs `EXCLAVE_SIM_SEEDS` seeds (default 2000); a failing seed is printed, and
//! `EXCLAVE_SIM_SEED=N cargo test --lib quorum_sim -- --nocapture` replays it exactly.

use std::collections::{BTreeMap, BTreeSet};

use crate::core::hlc::{Hlc, Version};
use crate::core::ids::GatewayId;
use crate::core::ops::{FetchResult, HedgedRead};
use crate::core::quorum::{ManifestQuorum, ManifestRead, ManifestWrite, Ranked};
use crate::core::rng::SplitMix;

mod data;

const NODES: usize = 5;
const HOME: usize = 0;
const WRITE_QUORUM: usize = 4;
const KEYS: u64 = 3;
const CLIENTS: u64 = 3;
const LOAD_MS: u64 = 5_000;
const TIMEOUT_MS: u64 = 300;
const WITHDRAW_EVERY_MS: u64 = 200;
/// Data shards of the version a read found (k = 3 of the five nodes' shards, node i holding
/// shard i), read by the hedged read after this long without an answer.
const K: usize = 3;
const HEDGE_MS: u64 = 50;

/// A manifest copy a node holds (only its version matters here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Held(Version);

impl Ranked for Held {
    fn rank(&self) -> (Version, Version, u32) {
        (self.0, self.0, 0)
    }
    fn identity(&self) -> Version {
        self.0
    }
}

/// What a node keeps on its disk.
#[derive(Clone, Debug, Default)]
struct Disk {
    stored: BTreeMap<u64, BTreeSet<Version>>,
    aborted: BTreeSet<(u64, Version)>,
    /// The node's shard of each version written while it was reachable (shards go out before
    /// the manifest; a withdrawal leaves them, as on a real node).
    shards: BTreeSet<(u64, Version)>,
}

#[derive(Debug, Default)]
struct Node {
    disk: Disk,
    down_until: u64,
    cut_until: u64,
    /// Copies of the disk taken along the way (for a rollback).
    snapshots: Vec<Disk>,
}

#[derive(Clone, Debug)]
enum Req {
    Put(u64, Version),
    Get(u64),
    Abort(u64, Version),
    /// The node's shard of (key, version).
    Fetch(u64, Version),
}

#[derive(Clone, Debug)]
enum Resp {
    Put(bool),
    Get(Vec<Version>),
    Abort,
    /// The shard, whole (true), or missing (false).
    Fetch(bool),
}

#[derive(Debug)]
enum Ev {
    ToNode {
        node: usize,
        op: u64,
        req: Req,
    },
    ToGateway {
        node: usize,
        op: u64,
        resp: Resp,
    },
    Timeout {
        node: usize,
        op: u64,
    },
    Client {
        client: u64,
    },
    Fault,
    Snapshot,
    Withdraw,
    /// A data read's hedge deadline.
    Hedge {
        op: u64,
    },
}

enum Kind {
    Write {
        key: u64,
        version: Version,
        q: ManifestWrite,
    },
    Read {
        key: u64,
        q: ManifestRead<Held>,
        floor: Option<Version>,
        acked_before: Option<Version>,
        started: u64,
    },
    /// A withdrawal's Abort (op ids of their own).
    Abort { key: u64, version: Version },
    /// The data of the version a read found: its shards, by the hedged read.
    Data {
        key: u64,
        version: Version,
        read: HedgedRead,
        started: u64,
        /// Nodes that answered with their shard whole.
        good: BTreeSet<usize>,
    },
}

struct Op {
    client: Option<u64>,
    kind: Kind,
    /// Nodes whose answer (or timeout) was taken.
    answered: BTreeSet<usize>,
}

#[derive(Default, Debug)]
struct Figures {
    writes_acked: u64,
    writes_failed: u64,
    reads_ok: u64,
    reads_unavailable: u64,
    messages: u64,
    lost: u64,
    cuts: u64,
    restarts: u64,
    rollbacks: u64,
    /// Keys whose failed write a rolled-back node held again, which a recovery skipped by
    /// the other nodes' withdrawals.
    withdrawn_skipped_by_recovery: u64,
    /// Data reads: ended with k good shards, or failed; shards fetched past the first k.
    data_ok: u64,
    data_failed: u64,
    hedged: u64,
}

struct Sim {
    seed: u64,
    rng: SplitMix,
    now: u64,
    seq: u64,
    events: BTreeMap<(u64, u64), Ev>,
    nodes: Vec<Node>,
    hlc: Hlc,
    next_op: u64,
    ops: BTreeMap<u64, Op>,
    /// The gateway's index: the newest acknowledged version of each key (a read's floor).
    index: BTreeMap<u64, Version>,
    /// Failed writes: (key, version) to the nodes still to confirm their withdrawal (kept
    /// when none is left, until a newer version is acknowledged, as the coordinator does).
    withdrawing: BTreeMap<(u64, Version), BTreeSet<usize>>,
    /// The model: the newest acknowledged version of each key, and when each failed write
    /// was answered with its error.
    acked: BTreeMap<u64, Version>,
    failed: BTreeMap<(u64, Version), u64>,
    /// Writes still in flight when the load stopped.
    in_flight: BTreeSet<(u64, Version)>,
    rolled_back: bool,
    stopping: bool,
    f: Figures,
}

impl Sim {
    fn new(seed: u64) -> Self {
        let mut s = Self {
            seed,
            rng: SplitMix::new(seed),
            now: 0,
            seq: 0,
            events: BTreeMap::new(),
            nodes: (0..NODES).map(|_| Node::default()).collect(),
            hlc: Hlc::new(GatewayId(1)),
            next_op: 0,
            ops: BTreeMap::new(),
            index: BTreeMap::new(),
            withdrawing: BTreeMap::new(),
            acked: BTreeMap::new(),
            failed: BTreeMap::new(),
            in_flight: BTreeSet::new(),
            rolled_back: false,
            stopping: false,
            f: Figures::default(),
        };
        for client in 0..CLIENTS {
            let at = s.rng.below(20);
            s.at(at, Ev::Client { client });
        }
        let first_fault = 100 + s.rng.below(400);
        s.at(first_fault, Ev::Fault);
        s.at(250, Ev::Snapshot);
        s.at(WITHDRAW_EVERY_MS, Ev::Withdraw);
        s
    }

    fn at(&mut self, delay: u64, ev: Ev) {
        self.seq += 1;
        self.events.insert((self.now + delay, self.seq), ev);
    }

    fn fail(&self, what: String) -> String {
        format!(
            "seed {}: at {} ms: {what}\nreplay: EXCLAVE_SIM_SEED={} cargo test --lib quorum_sim -- --nocapture",
            self.seed, self.now, self.seed
        )
    }

    fn reachable(&self, node: usize) -> bool {
        let n = &self.nodes[node];
        self.now >= n.down_until && self.now >= n.cut_until
    }

    /// A message over the network: lost, or delivered after a delay (sometimes past the
    /// timeout), in no particular order.
    fn send(&mut self, ev: Ev) {
        self.f.messages += 1;
        if self.rng.below(100) < 2 {
            self.f.lost += 1;
            return;
        }
        let delay = if self.rng.below(100) < 5 {
            100 + self.rng.below(500)
        } else {
            1 + self.rng.below(30)
        };
        self.at(delay, ev);
    }

    fn start(&mut self, client: Option<u64>, kind: Kind, reqs: Vec<(usize, Req)>) {
        let op = self.next_op;
        self.next_op += 1;
        self.ops.insert(
            op,
            Op {
                client,
                kind,
                answered: BTreeSet::new(),
            },
        );
        for (node, req) in reqs {
            self.send(Ev::ToNode { node, op, req });
            self.at(TIMEOUT_MS, Ev::Timeout { node, op });
        }
    }

    fn client_op(&mut self, client: u64) {
        if self.stopping {
            return;
        }
        let key = self.rng.below(KEYS);
        if self.rng.below(2) == 0 {
            let version = self.hlc.stamp(self.now);
            // The shards go out first, to the nodes reachable now.
            for n in 0..NODES {
                if self.reachable(n) {
                    self.nodes[n].disk.shards.insert((key, version));
                }
            }
            let q = ManifestWrite::new(ManifestQuorum::new(NODES, WRITE_QUORUM));
            let reqs = (0..NODES).map(|n| (n, Req::Put(key, version))).collect();
            self.start(Some(client), Kind::Write { key, version, q }, reqs);
        } else {
            // Half the reads go as through a gateway whose index does not hold the key (one
            // rebuilt, or another gateway): no floor, the quorum overlap alone.
            let floor = if self.rng.below(2) == 0 {
                self.index.get(&key).copied()
            } else {
                None
            };
            let q = ManifestRead::new(ManifestQuorum::new(NODES, WRITE_QUORUM), floor);
            let reqs = (0..NODES).map(|n| (n, Req::Get(key))).collect();
            let acked_before = self.acked.get(&key).copied();
            let started = self.now;
            self.start(
                Some(client),
                Kind::Read {
                    key,
                    q,
                    floor,
                    acked_before,
                    started,
                },
                reqs,
            );
        }
    }

    fn node_handles(&mut self, node: usize, op: u64, req: Req) {
        if !self.reachable(node) {
            return;
        }
        let d = &mut self.nodes[node].disk;
        let resp = match req {
            Req::Put(key, v) => {
                if d.aborted.contains(&(key, v)) {
                    Resp::Put(false)
                } else {
                    d.stored.entry(key).or_default().insert(v);
                    Resp::Put(true)
                }
            }
            Req::Get(key) => Resp::Get(
                d.stored
                    .get(&key)
                    .map(|s| s.iter().copied().collect())
                    .unwrap_or_default(),
            ),
            Req::Abort(key, v) => {
                if let Some(s) = d.stored.get_mut(&key) {
                    s.remove(&v);
                }
                d.aborted.insert((key, v));
                Resp::Abort
            }
            Req::Fetch(key, v) => Resp::Fetch(d.shards.contains(&(key, v))),
        };
        self.send(Ev::ToGateway { node, op, resp });
    }

    /// The gateway takes node `node`'s answer to `op` (None: it timed out).
    fn gateway_handles(&mut self, node: usize, op: u64, resp: Option<Resp>) -> Result<(), String> {
        let Some(o) = self.ops.get_mut(&op) else {
            return Ok(());
        };
        if !o.answered.insert(node) {
            return Ok(());
        }
        match &mut o.kind {
            Kind::Write { q, .. } => match resp {
                Some(Resp::Put(true)) => q.handle_durable(),
                _ => q.handle_failed(),
            },
            Kind::Read { key, q, .. } => match resp {
                Some(Resp::Get(versions)) => {
                    let key = *key;
                    let withdrawing = &self.withdrawing;
                    q.handle_answer(
                        versions
                            .into_iter()
                            .filter(|v| !withdrawing.contains_key(&(key, *v)))
                            .map(Held),
                    );
                }
                _ => q.handle_failed(),
            },
            Kind::Data { read, good, .. } => {
                let result = match resp {
                    Some(Resp::Fetch(true)) => {
                        good.insert(node);
                        FetchResult::Good
                    }
                    // Missing, or no answer in time: the hedged read goes on without it.
                    _ => FetchResult::Bad,
                };
                read.handle_result(node, result);
                return self.drive_data(op);
            }
            Kind::Abort { key, version } => {
                if matches!(resp, Some(Resp::Abort))
                    && let Some(w) = self.withdrawing.get_mut(&(*key, *version))
                {
                    w.remove(&node);
                }
                // One node per withdrawal op: its answer or its timeout ends it.
                self.ops.remove(&op);
                return Ok(());
            }
        }
        self.settle(op)
    }

    /// Finishes `op` if it is decided.
    fn settle(&mut self, op: u64) -> Result<(), String> {
        let o = &self.ops[&op];
        let client = o.client;
        match &o.kind {
            Kind::Write { key, version, q } => {
                let (key, version) = (*key, *version);
                if q.met() {
                    // Acknowledged at the quorum (stragglers may still store it).
                    self.f.writes_acked += 1;
                    let newest = self.acked.entry(key).or_insert(version);
                    *newest = (*newest).max(version);
                    let ix = self.index.entry(key).or_insert(version);
                    *ix = (*ix).max(version);
                    self.withdrawing
                        .retain(|(k, v), nodes| *k != key || *v >= version || !nodes.is_empty());
                } else if q.impossible() || q.done() {
                    // Withdrawn from every node before the error is answered.
                    self.f.writes_failed += 1;
                    self.withdrawing
                        .insert((key, version), (0..NODES).collect());
                    self.failed.insert((key, version), self.now);
                    self.send_aborts(key, version);
                } else {
                    return Ok(());
                }
            }
            Kind::Read {
                key,
                q,
                floor,
                acked_before,
                started,
            } => {
                if !q.done() {
                    return Ok(());
                }
                let (key, floor, acked_before, started) = (*key, *floor, *acked_before, *started);
                let Some(Op {
                    kind: Kind::Read { q, .. },
                    ..
                }) = self.ops.remove(&op)
                else {
                    unreachable!()
                };
                match q.finish() {
                    Ok(found) if found.map(|c| c.0) >= floor => {
                        let found = found.map(|c| c.0);
                        self.f.reads_ok += 1;
                        // A rolled-back node defeats the overlap of quorums; the floor (and
                        // the catalog checkpoints, for a recovery) are what catch it.
                        if found < acked_before && (floor.is_some() || !self.rolled_back) {
                            return Err(self.fail(format!(
                                "key {key}: a read started at {started} ms returned {found:?}, \
                                 older than {acked_before:?} acknowledged before it"
                            )));
                        }
                        if let Some(v) = found
                            && self.failed.get(&(key, v)).is_some_and(|&t| t < started)
                            && (floor.is_some() || !self.rolled_back)
                        {
                            return Err(self.fail(format!(
                                "key {key}: a read started at {started} ms returned {v:?}, \
                                 whose write had failed at {} ms{}",
                                self.failed[&(key, v)],
                                if self.rolled_back {
                                    " (a node was rolled back)"
                                } else {
                                    ""
                                }
                            )));
                        }
                        // Then its data, by the hedged read (the client waits for it).
                        if let Some(version) = found {
                            self.start_data(client, key, version)?;
                            return Ok(());
                        }
                    }
                    // Too few answers, or only versions older than the index's: refused.
                    _ => self.f.reads_unavailable += 1,
                }
                self.next_client_op(client);
                return Ok(());
            }
            Kind::Abort { .. } | Kind::Data { .. } => return Ok(()),
        }
        self.ops.remove(&op);
        self.next_client_op(client);
        Ok(())
    }

    fn next_client_op(&mut self, client: Option<u64>) {
        if let Some(client) = client {
            let d = self.rng.below(50);
            self.at(d, Ev::Client { client });
        }
    }

    fn send_aborts(&mut self, key: u64, version: Version) {
        let Some(nodes) = self.withdrawing.get(&(key, version)) else {
            return;
        };
        let nodes: Vec<usize> = nodes.iter().copied().collect();
        for n in nodes {
            self.start(
                None,
                Kind::Abort { key, version },
                vec![(n, Req::Abort(key, version))],
            );
        }
    }

    /// One fault: cut a node off, restart one, or (once per run) roll one back to an old copy
    /// of its disk. At most two nodes are away at once.
    fn fault(&mut self) {
        let away = (0..NODES).filter(|&n| !self.reachable(n)).count();
        let node = self.rng.index(NODES);
        let roll = self.rng.below(10);
        if away < 2 && self.reachable(node) {
            let len = 200 + self.rng.below(2500);
            if roll < 5 {
                self.nodes[node].cut_until = self.now + len;
                self.f.cuts += 1;
            } else if roll < 9 {
                self.nodes[node].down_until = self.now + len;
                self.f.restarts += 1;
            } else if !self.rolled_back && !self.nodes[node].snapshots.is_empty() {
                let n = &mut self.nodes[node];
                let i = self.rng.index(n.snapshots.len());
                n.disk = n.snapshots[i].clone();
                self.rolled_back = true;
                self.f.rollbacks += 1;
            }
        }
        let next = 100 + self.rng.below(600);
        self.at(next, Ev::Fault);
    }

    fn step(&mut self) -> Result<bool, String> {
        let Some(((t, _), ev)) = self.events.pop_first() else {
            return Ok(false);
        };
        self.now = t;
        if self.now >= LOAD_MS && !self.stopping {
            self.stopping = true;
        }
        match ev {
            Ev::ToNode { node, op, req } => self.node_handles(node, op, req),
            Ev::ToGateway { node, op, resp } => self.gateway_handles(node, op, Some(resp))?,
            Ev::Timeout { node, op } => self.gateway_handles(node, op, None)?,
            Ev::Hedge { op } => self.drive_data(op)?,
            Ev::Client { client } => self.client_op(client),
            Ev::Fault => {
                if !self.stopping {
                    self.fault();
                }
            }
            Ev::Snapshot => {
                if !self.stopping {
                    for n in &mut self.nodes {
                        let d = n.disk.clone();
                        n.snapshots.push(d);
                        if n.snapshots.len() > 8 {
                            n.snapshots.remove(0);
                        }
                    }
                    self.at(250, Ev::Snapshot);
                }
            }
            Ev::Withdraw => {
                let pending: Vec<(u64, Version)> = self
                    .withdrawing
                    .iter()
                    .filter(|(_, nodes)| !nodes.is_empty())
                    .map(|(k, _)| *k)
                    .collect();
                let unconfirmed = !pending.is_empty();
                for (key, version) in pending {
                    self.send_aborts(key, version);
                }
                if !self.stopping || unconfirmed || !self.ops.is_empty() {
                    self.at(WITHDRAW_EVERY_MS, Ev::Withdraw);
                }
            }
        }
        Ok(true)
    }

    /// Runs the load, then lets everything settle (every node back, withdrawals confirmed),
    /// then checks a recovery from the foreign sites.
    fn run(mut self) -> Result<Figures, String> {
        while self.step()? {
            if self.now > LOAD_MS + 60_000 {
                return Err(self.fail("the run did not settle within a minute".into()));
            }
        }
        // Writes still open when the load stopped (their clients gave up waiting).
        for o in self.ops.values() {
            if let Kind::Write { key, version, .. } = o.kind {
                self.in_flight.insert((key, version));
            }
        }
        for key in 0..KEYS {
            // Every foreign site answers: the withdrawals each keeps (with the gateway's
            // proofs), then the newest copy any holds that none withdrew (a node rolled back
            // to an old copy of its disk may hold a failed write the others withdrew).
            let foreign = || {
                (0..NODES)
                    .filter(|&n| n != HOME)
                    .map(|n| &self.nodes[n].disk)
            };
            let withdrawn: BTreeSet<Version> = foreign()
                .flat_map(|d| d.aborted.iter())
                .filter(|(k, _)| *k == key)
                .map(|(_, v)| *v)
                .collect();
            let held = foreign()
                .filter_map(|d| d.stored.get(&key))
                .flat_map(|s| s.iter().copied());
            let served_withdrawn = held.clone().any(|v| withdrawn.contains(&v));
            let found = held.filter(|v| !withdrawn.contains(v)).max();
            if served_withdrawn {
                self.f.withdrawn_skipped_by_recovery += 1;
            }
            let acked = self.acked.get(&key).copied();
            if found < acked {
                return Err(self.fail(format!(
                    "key {key}: a recovery from the foreign sites finds {found:?}, older than {acked:?} acknowledged"
                )));
            }
            if let Some(v) = found
                && self.failed.contains_key(&(key, v))
            {
                return Err(self.fail(format!(
                    "key {key}: a recovery from the foreign sites finds {v:?}, a failed write"
                )));
            }
        }
        Ok(self.f)
    }
}

#[test]
fn quorum_sim() {
    let seeds = super::sim_seeds();
    let mut total = Figures::default();
    let mut failures = Vec::new();
    for &seed in &seeds {
        match Sim::new(seed).run() {
            Ok(f) => {
                total.writes_acked += f.writes_acked;
                total.writes_failed += f.writes_failed;
                total.reads_ok += f.reads_ok;
                total.reads_unavailable += f.reads_unavailable;
                total.messages += f.messages;
                total.lost += f.lost;
                total.cuts += f.cuts;
                total.restarts += f.restarts;
                total.rollbacks += f.rollbacks;
                total.withdrawn_skipped_by_recovery += f.withdrawn_skipped_by_recovery;
                total.data_ok += f.data_ok;
                total.data_failed += f.data_failed;
                total.hedged += f.hedged;
            }
            Err(e) => failures.push(e),
        }
    }
    eprintln!(
        "quorum simulation: {} seeds, {} failed; {total:?}",
        seeds.len(),
        failures.len()
    );
    super::no_failures(&failures);
    // The faults and outcomes the invariants are about happened.
    assert!(total.writes_failed > 0 && total.reads_unavailable > 0 && total.lost > 0);
    assert!(seeds.len() < 100 || (total.data_ok > 0 && total.hedged > 0));
    assert!(seeds.len() < 100 || total.rollbacks > 0);
}
