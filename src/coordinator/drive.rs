//! Drivers of `core::ops`: pipelined shard uploads under a write quorum, hedged range reads.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::coordinator::buffers::BufferPool;
use crate::coordinator::client::{BlockResult, NodeClient};
use crate::core::format::ShardHeader;
use crate::core::hlc::Version;
use crate::core::ids::{DiskId, NodeId, ObjectId, SiteId};
use crate::core::ops::{
    FetchResult, HedgedRead, ReadCommand, ReadOutcome, WriteOutcome, WriteQuorum,
};
use crate::core::stripe::{BlockHash, EncodedStripe, Geometry, VerifiedBlock};
use crate::core::wire::ShardKey;
use crate::net::NetError;

/// Blocks queued per shard before the encoder waits (bounds memory per PUT:
/// `QUEUE * (k + m) * B`).
const QUEUE: usize = 4;

/// The nodes a coordinator can reach.
#[derive(Debug, Clone, Default)]
pub struct Nodes {
    clients: BTreeMap<NodeId, Arc<NodeClient>>,
    /// A read fetch older than this is hedged.
    pub hedge_after: Duration,
    /// A shard whose queue stays full this long is dropped from the write (and repaired later).
    pub stall_limit: Duration,
    /// Where fetched blocks are read into and a read's stripes opened (the object store's
    /// pool; by default one that keeps none).
    pub buffers: Arc<BufferPool>,
}

impl Nodes {
    /// A set of node clients.
    pub fn new(clients: BTreeMap<NodeId, Arc<NodeClient>>) -> Self {
        Self {
            clients,
            hedge_after: Duration::from_millis(250),
            stall_limit: Duration::from_secs(10),
            buffers: BufferPool::new(0),
        }
    }

    /// The client of `node`.
    pub fn client(&self, node: NodeId) -> Option<&Arc<NodeClient>> {
        self.clients.get(&node)
    }
}

/// Where shard i of a write goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardTarget {
    /// Site (distinct sites count toward the quorum).
    pub site: SiteId,
    /// Node.
    pub node: NodeId,
    /// Disk on that node.
    pub disk: DiskId,
}

/// Why a PUT failed.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    /// Fewer than the needed number of sites made their shard durable.
    #[error("write quorum not reached: {durable} of {needed} sites durable ({errors})")]
    NoQuorum {
        /// Distinct sites durable.
        durable: usize,
        /// Needed.
        needed: usize,
        /// What went wrong, per shard.
        errors: String,
        /// Sites whose disk was full.
        full: Vec<String>,
    },
    /// The producer of stripes went away.
    #[error("the stripe source ended early")]
    SourceEnded,
}

/// What a successful PUT left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutReport {
    /// Shards not durable: to be recorded for repair.
    pub missing: Vec<usize>,
}

enum ShardMsg {
    Block(Bytes),
    Finish(Box<ShardHeader>),
}

/// Feeds stripes of one object to its shard uploads. Create with [`StripeSink::start`], push
/// each encoded stripe with [`StripeSink::push`], then [`StripeSink::finish`] with the headers.
#[derive(Debug)]
pub struct StripeSink {
    senders: Vec<Option<mpsc::Sender<ShardMsg>>>,
    tasks: JoinSet<(usize, Result<(), NetError>)>,
    quorum: WriteQuorum,
    needed: usize,
    stall_limit: Duration,
    dropped: Vec<(usize, String)>,
    /// Each shard's node client (its site names the shard in errors).
    clients: Vec<Option<Arc<NodeClient>>>,
    start: Instant,
}

impl std::fmt::Debug for ShardMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Block(b) => write!(f, "Block({})", b.len()),
            Self::Finish(_) => f.write_str("Finish"),
        }
    }
}

impl StripeSink {
    /// Opens one upload per shard. `needed` distinct durable sites make the quorum.
    pub fn start(
        nodes: &Nodes,
        targets: &[ShardTarget],
        object: ObjectId,
        version: Version,
        geometry: Geometry,
        needed: usize,
        timeout: Duration,
    ) -> Self {
        let start = Instant::now();
        let deadline = timeout.as_millis() as u64;
        let quorum = WriteQuorum::new(targets.iter().map(|t| t.site).collect(), needed, deadline);
        let mut senders = Vec::with_capacity(targets.len());
        let mut tasks = JoinSet::new();
        let mut clients = Vec::with_capacity(targets.len());
        for (i, t) in targets.iter().enumerate() {
            let (tx, mut rx) = mpsc::channel::<ShardMsg>(QUEUE);
            senders.push(Some(tx));
            let client = nodes.client(t.node).cloned();
            clients.push(client.clone());
            let key = ShardKey {
                object,
                version,
                shard: i as u8,
            };
            let (disk, node) = (t.disk, t.node);
            tasks.spawn(async move {
                let Some(client) = client else {
                    return (i, Err(NetError::NoClient(node.0)));
                };
                let result = async {
                    let mut up = client.begin_shard(key, disk, geometry).await?;
                    while let Some(msg) = rx.recv().await {
                        match msg {
                            ShardMsg::Block(b) => up.send(b).await?,
                            ShardMsg::Finish(h) => return up.finish(&h).await,
                        }
                    }
                    Err(NetError::Abandoned)
                };
                // No timer here: the quorum's deadline ends the upload (`finish`).
                let r = result.await;
                match &r {
                    // The gateway gave the upload up (its client's body failed): nothing was
                    // learnt about the node. Counting it unanswered let one bad body mark
                    // every site down and refuse the next writes of every client.
                    Err(NetError::Abandoned) => {}
                    Err(e) if !e.is_answer() => client.note_unanswered(),
                    _ => client.note_write(r.as_ref().err()),
                }
                (i, r)
            });
        }
        Self {
            senders,
            tasks,
            quorum,
            needed,
            stall_limit: nodes.stall_limit,
            dropped: Vec::new(),
            clients,
            start,
        }
    }

    /// Queues one stripe's blocks; waits while queues are full (back-pressure), and drops a
    /// shard whose queue stays full past the stall limit.
    pub async fn push(&mut self, stripe: &EncodedStripe) -> Result<(), PutError> {
        for (i, block) in stripe.blocks.iter().enumerate() {
            let Some(tx) = self.senders.get(i).and_then(Option::as_ref) else {
                continue;
            };
            // The queue is rarely full: only then is a stall timer armed.
            let sent = match tx.try_send(ShardMsg::Block(block.clone())) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(msg)) => {
                    matches!(
                        tokio::time::timeout(self.stall_limit, tx.send(msg)).await,
                        Ok(Ok(()))
                    )
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            };
            if !sent {
                self.drop_shard(i, "stalled or failed during the upload");
            }
        }
        self.quorum
            .handle_timeout(self.start.elapsed().as_millis() as u64);
        if self.quorum.outcome() == WriteOutcome::Impossible {
            // The uploads that ended say why (a full disk, a refusal); the rest stalled.
            let mut ended = BTreeMap::new();
            while let Some(joined) = self.tasks.try_join_next() {
                if let Ok((i, Err(e))) = joined {
                    ended.insert(i, e);
                }
            }
            let errors = self
                .dropped
                .iter()
                .map(|(i, why)| match ended.get(i) {
                    Some(e) => self.describe(*i, e),
                    None => format!("shard {i} at {}: {why}", self.site(*i)),
                })
                .collect::<Vec<_>>();
            return Err(PutError::NoQuorum {
                durable: 0,
                needed: self.needed,
                errors: errors.join("; "),
                full: self.full(&ended),
            });
        }
        Ok(())
    }

    /// Shard `i`'s site, by name (for errors).
    fn site(&self, i: usize) -> &str {
        self.clients[i].as_ref().map_or("?", |c| c.site())
    }

    /// The sites, by name, of the uploads in `ended` that failed for lack of space.
    fn full(&self, ended: &BTreeMap<usize, NetError>) -> Vec<String> {
        let mut full: Vec<String> = ended
            .iter()
            .filter(|(_, e)| e.is_disk_full())
            .map(|(&i, _)| self.site(i).to_owned())
            .collect();
        full.sort();
        full.dedup();
        full
    }

    /// Why shard `i`'s upload failed, naming its site (a full disk as such).
    fn describe(&self, i: usize, e: &NetError) -> String {
        let site = self.site(i);
        if e.is_disk_full() {
            format!("shard {i}: disk full at site {site}")
        } else {
            format!("shard {i} at {site}: {e}")
        }
    }

    fn drop_shard(&mut self, i: usize, why: &str) {
        self.senders[i] = None;
        self.quorum.handle_failed(i);
        self.dropped.push((i, why.to_string()));
    }

    /// Sends each shard its header and waits for the uploads; Ok when the quorum holds.
    pub async fn finish(mut self, headers: Vec<ShardHeader>) -> Result<PutReport, PutError> {
        for (i, h) in headers.into_iter().enumerate() {
            if let Some(tx) = self.senders.get_mut(i).and_then(Option::take)
                && tx.send(ShardMsg::Finish(Box::new(h))).await.is_err()
            {
                self.dropped.push((i, "upload ended early".into()));
            }
        }
        let dropped = std::mem::take(&mut self.dropped);
        let mut ended = BTreeMap::new();
        let mut done = BTreeSet::new();
        // The quorum's deadline is the only timer: what has not ended by then is timed out.
        let deadline = self.start + Duration::from_millis(self.quorum.poll_deadline());
        loop {
            match tokio::time::timeout_at(deadline.into(), self.tasks.join_next()).await {
                Ok(Some(Ok((i, result)))) => {
                    done.insert(i);
                    match result {
                        Ok(()) => self.quorum.handle_durable(i),
                        Err(e) => {
                            self.quorum.handle_failed(i);
                            ended.insert(i, e);
                        }
                    }
                }
                Ok(Some(Err(e))) => tracing::warn!(error = %e, "upload task failed"),
                Ok(None) => break,
                Err(_) => {
                    self.tasks.abort_all();
                    for i in (0..self.clients.len()).filter(|i| !done.contains(i)) {
                        if let Some(client) = &self.clients[i] {
                            client.note_unanswered();
                            client.note_write(Some(&NetError::Timeout));
                        }
                        ended.insert(i, NetError::Timeout);
                    }
                    break;
                }
            }
        }
        // Why each shard is missing: its upload's own error, else why it was dropped.
        let mut errors: Vec<String> = ended.iter().map(|(&i, e)| self.describe(i, e)).collect();
        for (i, why) in dropped {
            if !ended.contains_key(&i) {
                errors.push(format!("shard {i} at {}: {why}", self.site(i)));
            }
        }
        self.quorum
            .handle_timeout(self.start.elapsed().as_millis() as u64);
        match self.quorum.outcome() {
            WriteOutcome::Reached => Ok(PutReport {
                missing: self.quorum.missing(),
            }),
            _ => {
                let durable = self.senders.len() - self.quorum.missing().len();
                Err(PutError::NoQuorum {
                    durable,
                    needed: self.needed,
                    errors: errors.join("; "),
                    full: self.full(&ended),
                })
            }
        }
    }
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Some stripe of the range had fewer than k blocks that verify.
    #[error("only {good} good shards of the {needed} needed for stripes {first}..{end} ({errors})")]
    NotEnough {
        /// Blocks that verified in the worst stripe of the range.
        good: usize,
        /// k.
        needed: usize,
        /// First stripe.
        first: u64,
        /// End stripe (exclusive).
        end: u64,
        /// What went wrong.
        errors: String,
        /// Shards that answered with blocks missing, corrupt or failing their hash (to be
        /// repaired even though the read failed).
        bad: Vec<usize>,
        /// Shards whose sites gave no answer (unreachable, timed out): 0 means every site
        /// answered, and the blocks that are not there are gone, not away.
        unanswered: usize,
    },
}

impl Nodes {
    /// Fetches stripes `first..first + count`: data shards first, bad ones replaced at once,
    /// late ones hedged. Every block is checked against `hashes` (stripe-major, k + m per
    /// stripe, as in the manifest). A shard with some bad blocks still gives its good ones: when
    /// k wholly good shards cannot be had, each stripe is assembled from any k blocks that
    /// verify, whichever shards they come from. Returns, per stripe, one slot per shard (at
    /// least k filled) and the shards found with bad blocks (for repair, also when the read
    /// fails).
    #[allow(clippy::too_many_arguments)]
    pub async fn read_range(
        &self,
        targets: &[ShardTarget],
        object: ObjectId,
        version: Version,
        k: usize,
        hashes: &[BlockHash],
        first: u64,
        count: u64,
    ) -> Result<(Vec<Vec<Option<VerifiedBlock>>>, Vec<usize>), ReadError> {
        let n = targets.len();
        let started = Instant::now();
        let now = || started.elapsed().as_millis() as u64;
        // Data shards first, but shards whose nodes a recent read went on without (or that
        // are known down) last: a dead site costs one hedge delay, not one per batch.
        let late: Vec<bool> = targets
            .iter()
            .map(|t| self.client(t.node).is_none_or(|c| c.late()))
            .collect();
        let order: Vec<usize> = (0..n)
            .filter(|&i| !late[i])
            .chain((0..n).filter(|&i| late[i]))
            .collect();
        let mut read = HedgedRead::new(k, order, self.hedge_after.as_millis() as u64);
        let mut fetches: JoinSet<(usize, Result<ShardBlocks, FetchFailed>)> = JoinSet::new();
        // Every shard that answered: its blocks of the range, a bad one as None.
        let mut got: BTreeMap<usize, Vec<Option<VerifiedBlock>>> = BTreeMap::new();
        let hashes: Arc<Vec<BlockHash>> = Arc::new(hashes.to_vec());
        let mut bad = Vec::new();
        let mut errors = Vec::new();
        let mut unanswered = BTreeSet::new();
        let mut asked = BTreeSet::new();
        let spawn = |fetches: &mut JoinSet<(usize, Result<ShardBlocks, FetchFailed>)>, i: usize| {
            let node = targets[i].node;
            let client = self.client(node).cloned();
            let key = ShardKey {
                object,
                version,
                shard: i as u8,
            };
            let hashes = hashes.clone();
            let buffers = self.buffers.clone();
            fetches.spawn(async move {
                let blocks = match client {
                    Some(c) => c.get_blocks_into(key, first, count, &buffers).await,
                    None => Err(NetError::NoClient(node.0)),
                };
                let blocks = match blocks {
                    Ok(b) => b,
                    Err(e) => {
                        // A site that says no (not here, refused) answered; a transport error
                        // or a missing client is no answer.
                        let answered = e.is_answer();
                        let why = format!("shard {i}: {e}");
                        return (i, Err(FetchFailed { answered, why }));
                    }
                };
                // Hashing is the costliest step of a read: off the runtime, and only here.
                let verified =
                    tokio::task::spawn_blocking(move || verify_shard(i, n, first, &hashes, blocks))
                        .await
                        .map_err(|e| FetchFailed {
                            answered: true,
                            why: format!("shard {i}: verify task: {e}"),
                        });
                (i, verified)
            });
        };
        // Whole shards first, as the hedged read chooses them.
        loop {
            for ReadCommand::Fetch(i) in read.poll_commands(now()) {
                asked.insert(i);
                spawn(&mut fetches, i);
            }
            match read.outcome() {
                ReadOutcome::Ready(chosen) => {
                    // Asked, not answered, and gone on without: asked last next time.
                    for &i in &asked {
                        if !got.contains_key(&i)
                            && !chosen.contains(&i)
                            && let Some(c) = self.client(targets[i].node)
                        {
                            c.note_late();
                        }
                    }
                    got.retain(|i, _| chosen.contains(i));
                    let stripes = stripes_of(&got, n, count);
                    return Ok((stripes, bad));
                }
                ReadOutcome::Failed { .. } => break,
                ReadOutcome::Pending => {}
            }
            let wait = read
                .poll_deadline()
                .map(|d| Duration::from_millis(d.saturating_sub(now())))
                .unwrap_or(Duration::from_secs(3600));
            let joined = tokio::select! {
                j = fetches.join_next() => j,
                _ = tokio::time::sleep(wait) => continue,
            };
            // Nothing in flight and nothing left to ask.
            let Some(joined) = joined else { break };
            let Ok((i, result)) = joined else { continue };
            let verdict = take(i, result, &mut got, &mut bad, &mut errors, &mut unanswered);
            read.handle_result(i, verdict);
        }
        // Fewer than k whole shards: every shard not asked yet is asked, and each stripe is
        // made of any k blocks that verify.
        for i in (0..n).filter(|i| !asked.contains(i)) {
            spawn(&mut fetches, i);
        }
        while let Some(joined) = fetches.join_next().await {
            if let Ok((i, result)) = joined {
                take(i, result, &mut got, &mut bad, &mut errors, &mut unanswered);
            }
        }
        assemble(&got, k, n, count)
            .map(|stripes| (stripes, bad.clone()))
            .map_err(|good| ReadError::NotEnough {
                good,
                needed: k,
                first,
                end: first + count,
                errors: errors.join("; "),
                bad,
                unanswered: unanswered.len(),
            })
    }
}

/// Why a shard's fetch gave no blocks, and whether its site answered at all.
struct FetchFailed {
    answered: bool,
    why: String,
}

/// Keeps what one shard's fetch gave: its blocks (a shard with bad blocks is recorded for
/// repair, its good blocks still count), or why it gave nothing (and whether its site
/// answered).
fn take(
    i: usize,
    result: Result<ShardBlocks, FetchFailed>,
    got: &mut BTreeMap<usize, Vec<Option<VerifiedBlock>>>,
    bad: &mut Vec<usize>,
    errors: &mut Vec<String>,
    unanswered: &mut BTreeSet<usize>,
) -> FetchResult {
    match result {
        Ok(ShardBlocks { blocks, faults }) if faults.is_empty() => {
            got.insert(i, blocks);
            FetchResult::Good
        }
        Ok(ShardBlocks { blocks, faults }) => {
            errors.push(format!("shard {i}: {}", faults.join(", ")));
            got.insert(i, blocks);
            if !bad.contains(&i) {
                bad.push(i);
            }
            FetchResult::Bad
        }
        Err(FetchFailed { answered, why }) => {
            if !answered {
                unanswered.insert(i);
            }
            errors.push(why);
            FetchResult::Bad
        }
    }
}

/// Per stripe, one slot per shard: the block of that stripe from each shard in `got`.
fn stripes_of(
    got: &BTreeMap<usize, Vec<Option<VerifiedBlock>>>,
    n: usize,
    count: u64,
) -> Vec<Vec<Option<VerifiedBlock>>> {
    (0..count as usize)
        .map(|s| {
            (0..n)
                .map(|i| got.get(&i).and_then(|b| b.get(s).cloned().flatten()))
                .collect()
        })
        .collect()
}

/// Per stripe, the blocks of every shard that answered, when each stripe has at least `k`
/// that verify; else the count of the worst stripe.
fn assemble(
    got: &BTreeMap<usize, Vec<Option<VerifiedBlock>>>,
    k: usize,
    n: usize,
    count: u64,
) -> Result<Vec<Vec<Option<VerifiedBlock>>>, usize> {
    let stripes = stripes_of(got, n, count);
    let worst = stripes
        .iter()
        .map(|slots| slots.iter().flatten().count())
        .min()
        .unwrap_or(k);
    if worst >= k { Ok(stripes) } else { Err(worst) }
}

/// One shard's blocks of a range: each verified against its hash, or None, and why not.
struct ShardBlocks {
    blocks: Vec<Option<VerifiedBlock>>,
    faults: Vec<String>,
}

/// Checks every block of shard `i` for stripes `first..` against the manifest's hashes
/// (stripe-major, `n` per stripe); a block that fails is None, with the reason.
fn verify_shard(
    i: usize,
    n: usize,
    first: u64,
    hashes: &[BlockHash],
    blocks: Vec<BlockResult>,
) -> ShardBlocks {
    let mut out = ShardBlocks {
        blocks: Vec::with_capacity(blocks.len()),
        faults: Vec::new(),
    };
    for (s, b) in blocks.into_iter().enumerate() {
        let stripe = first as usize + s;
        let what = match (b, hashes.get(stripe * n + i)) {
            (BlockResult::Ok(bytes), Some(h)) => match VerifiedBlock::verify(bytes, h) {
                Ok(v) => {
                    out.blocks.push(Some(v));
                    continue;
                }
                Err(_) => "hash mismatch",
            },
            (BlockResult::Ok(_), None) => "no hash for the block",
            (BlockResult::Corrupt, _) => "corrupt",
            (BlockResult::Missing, _) => "missing",
        };
        out.blocks.push(None);
        out.faults.push(format!("stripe {stripe} {what}"));
    }
    out
}
