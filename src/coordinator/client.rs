//! A client of one node: one QUIC connection, re-established when it drops; one stream per
//! request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use quinn::{Connection, Endpoint, RecvStream, SendStream};
use tokio::sync::Mutex;

use crate::core::format::{MAX_BLOCK_SIZE, ShardHeader};
use crate::core::hlc::Version;
use crate::core::ids::{DiskId, ObjectId};
use crate::core::stripe::Geometry;
use crate::core::wire::{
    BlockStatus, DiskUsage, InlineShard, Request, Response, ShardKey, Trailer,
};
use crate::net::frame::{self, NetError};
use crate::net::tls::site_name;

/// Time allowed to establish a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One block as a node returned it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockResult {
    /// The block (its CRC checked by the node; the caller still checks its hash).
    Ok(Bytes),
    /// The node found the block corrupt.
    Corrupt,
    /// The node does not have it.
    Missing,
}

/// A client of one node.
#[derive(Debug)]
pub struct NodeClient {
    endpoint: Endpoint,
    addr: SocketAddr,
    site: String,
    /// The connection and what is known of the node's reachability, shared with a redial
    /// running in the background.
    state: Arc<LinkState>,
}

/// What a client knows of its node's link.
#[derive(Debug)]
struct LinkState {
    conn: Mutex<Option<Connection>>,
    /// After a failed connect, calls fail at once until this instant (then one retry).
    down_until: std::sync::Mutex<Option<std::time::Instant>>,
    /// What the open connection has been heard from.
    heard: std::sync::Mutex<Heard>,
    /// When a connect last failed or a call went unanswered, until a call is answered.
    failed_at: std::sync::Mutex<Option<std::time::Instant>>,
    /// Until when reads ask the node's shards last: a read went on without its answer.
    late_until: std::sync::Mutex<Option<std::time::Instant>>,
    /// A redial is running in the background.
    redialing: AtomicBool,
    /// Told when a background redial ends.
    redialed: tokio::sync::Notify,
}

/// How long a call waits for a background redial before it fails: the dial's own limit. A node
/// that is coming back (a restarted process opening its store) is waited for, as an inline dial
/// would; reads do not wait on a dead one, since they ask a node they went on without last.
const REDIAL_WAIT: Duration = CONNECT_TIMEOUT;

/// How long a node whose answer a read went on without is asked last by later reads (unless
/// it answers a call meanwhile).
const LATE_FOR: Duration = Duration::from_secs(5);

/// The open connection's datagram counters when last looked at, and when it was last seen to
/// receive one.
#[derive(Debug, Clone, Copy)]
struct Heard {
    rx: u64,
    tx_then: u64,
    at: std::time::Instant,
}

impl Heard {
    fn now() -> Self {
        Self {
            rx: 0,
            tx_then: 0,
            at: std::time::Instant::now(),
        }
    }
}

/// How long a node that could not be reached is not dialled again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// How long an unanswered call or failed connect (with no call answered since) counts as the
/// node being down, for refusing writes that could not reach their quorum before their body is
/// read. Longer than a client's usual retry back-off, so its retries are refused at once too.
const KNOWN_DOWN_FOR: Duration = Duration::from_secs(10);

/// An open connection that has sent datagrams and received none for this long is taken for
/// dead: new calls fail at once instead of waiting on it. QUIC's own idle timeout does not
/// close such a connection while requests keep it sending (its probe timeout backs off), so a
/// SIGKILLed node would otherwise hold every read a hedge delay, and every control call until
/// its own timeout. Longer than the keep-alive interval plus a round trip, so an idle, healthy
/// link (whose keep-alive pings are acknowledged) is never taken for dead.
const SILENT_AFTER: Duration = Duration::from_secs(4);

/// Dials `addr` as the node of `site`, within [`CONNECT_TIMEOUT`].
async fn dial(endpoint: &Endpoint, addr: SocketAddr, site: &str) -> Result<Connection, NetError> {
    let fail = |reason: String| NetError::Connect {
        addr: addr.to_string(),
        reason,
    };
    let connecting = endpoint
        .connect(addr, &site_name(site))
        .map_err(|e| fail(e.to_string()))?;
    tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| fail("timed out".into()))?
        .map_err(|e| fail(e.to_string()))
}

impl LinkState {
    /// Records how a dial ended: a connection clears the failure marks; a failure sets them.
    fn settle(&self, result: Result<Connection, NetError>) -> Result<Connection, NetError> {
        let now = std::time::Instant::now();
        *self.down_until.lock().unwrap_or_else(|e| e.into_inner()) =
            result.is_err().then_some(now + RETRY_AFTER);
        *self.failed_at.lock().unwrap_or_else(|e| e.into_inner()) = result.is_err().then_some(now);
        if result.is_ok() {
            *self.heard.lock().unwrap_or_else(|e| e.into_inner()) = Heard::now();
            *self.late_until.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        result
    }
}

/// Marks the node failed if a dial is dropped before it ends (its caller gave up).
struct GaveUp(Option<Arc<LinkState>>);

impl Drop for GaveUp {
    fn drop(&mut self) {
        if let Some(state) = self.0.take() {
            *state.failed_at.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(std::time::Instant::now());
        }
    }
}

impl NodeClient {
    /// A client of the node of `site` at `addr`, dialled through `endpoint`.
    pub fn new(endpoint: Endpoint, addr: SocketAddr, site: &str) -> Self {
        Self {
            endpoint,
            addr,
            site: site.to_string(),
            state: Arc::new(LinkState {
                conn: Mutex::new(None),
                down_until: std::sync::Mutex::new(None),
                heard: std::sync::Mutex::new(Heard::now()),
                failed_at: std::sync::Mutex::new(None),
                late_until: std::sync::Mutex::new(None),
                redialing: AtomicBool::new(false),
                redialed: tokio::sync::Notify::new(),
            }),
        }
    }

    /// Whether reads should ask this node's shards last: a recent read went on without its
    /// answer, or the node is known to be down.
    pub fn late(&self) -> bool {
        let late = *self
            .state
            .late_until
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        late.is_some_and(|t| std::time::Instant::now() < t) || self.known_down()
    }

    /// A read went on without this node's answer (hedged past it): later reads ask it last
    /// for a while, instead of waiting a hedge delay on it batch after batch.
    pub fn note_late(&self) {
        *self
            .state
            .late_until
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(std::time::Instant::now() + LATE_FOR);
    }

    /// Whether the open connection `c` has sent datagrams but heard none for
    /// [`SILENT_AFTER`].
    fn silent(&self, c: &Connection) -> bool {
        let stats = c.stats();
        let (rx, tx) = (stats.udp_rx.datagrams, stats.udp_tx.datagrams);
        let mut heard = self.state.heard.lock().unwrap_or_else(|e| e.into_inner());
        if rx != heard.rx {
            *heard = Heard {
                rx,
                tx_then: tx,
                at: std::time::Instant::now(),
            };
            return false;
        }
        tx > heard.tx_then && heard.at.elapsed() > SILENT_AFTER
    }

    /// The node's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The site this client dials.
    pub fn site(&self) -> &str {
        &self.site
    }

    /// The open connection's round-trip time, packets sent and packets lost, if one is open
    /// (and not being dialled right now).
    pub fn path_stats(&self) -> Option<(Duration, u64, u64)> {
        let guard = self.state.conn.try_lock().ok()?;
        let c = guard.as_ref().filter(|c| c.close_reason().is_none())?;
        let s = c.stats();
        Some((c.rtt(), s.path.sent_packets, s.path.lost_packets))
    }

    /// Whether the node is known to be unreachable now: a connect failed or a call went
    /// unanswered in the last [`KNOWN_DOWN_FOR`] and no call was answered since, or the open
    /// connection went silent.
    pub fn known_down(&self) -> bool {
        let failed = *self
            .state
            .failed_at
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if self.down() || failed.is_some_and(|t| t.elapsed() < KNOWN_DOWN_FOR) {
            return true;
        }
        // A closed connection does not count: only the next dial can tell whether the node is
        // back, and nothing would dial if writes were refused for it.
        self.state.conn.try_lock().is_ok_and(|g| {
            g.as_ref()
                .is_some_and(|c| c.close_reason().is_none() && self.silent(c))
        })
    }

    fn down(&self) -> bool {
        let down = self
            .state
            .down_until
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        down.is_some_and(|t| std::time::Instant::now() < t)
    }

    async fn connection(&self) -> Result<Connection, NetError> {
        let fail = |reason: String| NetError::Connect {
            addr: self.addr.to_string(),
            reason,
        };
        // A node just found unreachable is not dialled again at once, and while one caller
        // probes it the others do not queue behind the probe: writes and reads that need only
        // a quorum go on without waiting out a connect timeout each time.
        let unreachable = || fail("unreachable a moment ago; retrying shortly".into());
        if self.down() {
            return Err(unreachable());
        }
        let mut guard = self.state.conn.lock().await;
        if let Some(c) = guard.as_ref()
            && c.close_reason().is_none()
        {
            if self.silent(c) {
                // Kept open: if the node was only stalled it answers on it again; if it
                // restarted, its stateless reset closes it and the next call dials.
                *self
                    .state
                    .failed_at
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(std::time::Instant::now());
                return Err(fail(format!(
                    "no datagram heard for over {} s on the open connection",
                    SILENT_AFTER.as_secs()
                )));
            }
            return Ok(c.clone());
        }
        if self.down() {
            return Err(unreachable());
        }
        // A node that went silent (its connection timed out) or failed lately is redialled in
        // the background: the dial is not tied to a call that a hedged read may drop, and
        // every call meanwhile fails at once instead of waiting on it.
        let suspect = self.failed_recently()
            || guard.as_ref().is_some_and(|c| {
                matches!(c.close_reason(), Some(quinn::ConnectionError::TimedOut))
            });
        if suspect {
            // Registered before the redial starts, so its end cannot be missed.
            let redialed = self.state.redialed.notified();
            tokio::pin!(redialed);
            redialed.as_mut().enable();
            self.redial_in_background();
            drop(guard);
            if tokio::time::timeout(REDIAL_WAIT, redialed).await.is_ok()
                && let Some(c) = self.state.conn.lock().await.as_ref()
                && c.close_reason().is_none()
            {
                return Ok(c.clone());
            }
            return Err(unreachable());
        }
        // A first dial, or one after the node closed the connection itself (a restart resets
        // it): dialled here. If the caller gives up on it, the node counts as failed, so the
        // next call redials in the background.
        let mut gave_up = GaveUp(Some(self.state.clone()));
        let result = dial(&self.endpoint, self.addr, &self.site).await;
        gave_up.0 = None;
        let conn = self.state.settle(result)?;
        *guard = Some(conn.clone());
        Ok(conn)
    }

    fn failed_recently(&self) -> bool {
        let failed = *self
            .state
            .failed_at
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        failed.is_some_and(|t| t.elapsed() < KNOWN_DOWN_FOR)
    }

    /// Dials the node on a task of its own (one at a time); the connection, or the failure, is
    /// kept for the calls that follow.
    fn redial_in_background(&self) {
        if self.state.redialing.swap(true, Ordering::SeqCst) {
            return;
        }
        let (endpoint, addr, site, state) = (
            self.endpoint.clone(),
            self.addr,
            self.site.clone(),
            self.state.clone(),
        );
        tokio::spawn(async move {
            let result = dial(&endpoint, addr, &site).await;
            if let Ok(conn) = state.settle(result) {
                tracing::info!(site = %site, "node reachable again");
                *state.conn.lock().await = Some(conn);
            }
            state.redialing.store(false, Ordering::SeqCst);
            state.redialed.notify_waiters();
        });
    }

    async fn open(&self) -> Result<(SendStream, RecvStream), NetError> {
        let conn = self.connection().await?;
        match conn.open_bi().await {
            Ok(s) => Ok(s),
            Err(_) => {
                // The connection died since we checked: one fresh attempt.
                *self.state.conn.lock().await = None;
                Ok(self.connection().await?.open_bi().await?)
            }
        }
    }

    async fn call(&self, request: &Request) -> Result<Response, NetError> {
        let result = async {
            let (mut send, mut recv) = self.open().await?;
            frame::write_frame(&mut send, request).await?;
            let _ = send.finish();
            match frame::read_frame::<Response>(&mut recv).await? {
                Response::Error { code, message } => Err(NetError::Remote { code, message }),
                r => Ok(r),
            }
        }
        .await;
        match &result {
            // The node answered, if only to say no.
            Ok(_) | Err(NetError::Remote { .. }) => {
                *self
                    .state
                    .failed_at
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = None;
                *self
                    .state
                    .late_until
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = None;
            }
            Err(_) => self.note_unanswered(),
        }
        result
    }

    /// A call to the node went unanswered (a transport error, or a caller's timeout): for
    /// [`KNOWN_DOWN_FOR`] it counts as down for refusing writes, unless a call is answered.
    pub fn note_unanswered(&self) {
        *self
            .state
            .failed_at
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(std::time::Instant::now());
    }

    /// Asks the node who it is: (node id, site).
    pub async fn ping(&self) -> Result<(u32, String), NetError> {
        match self.call(&Request::Ping).await? {
            Response::Pong { node, site } => Ok((node, site)),
            r => Err(NetError::Unexpected {
                request: "ping",
                answer: format!("{r:?}"),
            }),
        }
    }

    /// Starts uploading a shard: send its blocks with [`ShardUpload::send`], then
    /// [`ShardUpload::finish`] with the header.
    pub async fn begin_shard(
        &self,
        key: ShardKey,
        disk: DiskId,
        geometry: Geometry,
    ) -> Result<ShardUpload, NetError> {
        let (mut send, recv) = self.open().await?;
        let request = Request::PutShard {
            key,
            disk,
            k: geometry.profile.k() as u8,
            m: geometry.profile.m() as u8,
            block_size: geometry.block_size,
            size: geometry.size,
            data_len: geometry.shard_len(),
        };
        frame::write_frame(&mut send, &request).await?;
        Ok(ShardUpload { send, recv })
    }

    /// Uploads a whole shard whose blocks are at hand.
    pub async fn put_shard(
        &self,
        disk: DiskId,
        header: &ShardHeader,
        blocks: &[Bytes],
    ) -> Result<(), NetError> {
        let key = ShardKey {
            object: header.object,
            version: header.version,
            shard: header.shard_index.0,
        };
        let geometry = header.geometry().map_err(NetError::from)?;
        let mut up = self.begin_shard(key, disk, geometry).await?;
        for b in blocks {
            up.send(b.clone()).await?;
        }
        up.finish(header).await
    }

    /// Reads `count` blocks of a shard from stripe `first` on.
    pub async fn get_blocks(
        &self,
        key: ShardKey,
        first: u64,
        count: u64,
    ) -> Result<Vec<BlockResult>, NetError> {
        let (mut send, mut recv) = self.open().await?;
        frame::write_frame(
            &mut send,
            &Request::GetBlocks {
                key,
                first_stripe: first,
                count,
            },
        )
        .await?;
        let _ = send.finish();
        let n = match frame::read_frame::<Response>(&mut recv).await? {
            Response::Blocks { count: n } if n == count => n,
            Response::Error { code, message } => return Err(NetError::Remote { code, message }),
            r => {
                return Err(NetError::Unexpected {
                    request: "get_blocks",
                    answer: format!("{r:?}"),
                });
            }
        };
        let mut out = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let mut head = [0u8; 5];
            frame::read_exact(&mut recv, &mut head).await?;
            let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
            let status = head[0];
            match BlockStatus::from_byte(status) {
                Some(BlockStatus::Ok) if len <= MAX_BLOCK_SIZE as usize => {
                    let mut buf = vec![0u8; len];
                    frame::read_exact(&mut recv, &mut buf).await?;
                    out.push(BlockResult::Ok(Bytes::from(buf)));
                }
                Some(BlockStatus::Corrupt) if len == 0 => out.push(BlockResult::Corrupt),
                Some(BlockStatus::Missing) if len == 0 => out.push(BlockResult::Missing),
                _ => {
                    return Err(NetError::Unexpected {
                        request: "get_blocks",
                        answer: format!("block status {status} with length {len}"),
                    });
                }
            }
        }
        Ok(out)
    }

    /// A shard's header.
    pub async fn shard_header(&self, key: ShardKey) -> Result<ShardHeader, NetError> {
        match self.call(&Request::GetShardHeader { key }).await? {
            Response::Header { header } => Ok(ShardHeader::decode(&header)?),
            r => Err(NetError::Unexpected {
                request: "shard_header",
                answer: format!("{r:?}"),
            }),
        }
    }

    /// Stores a sealed manifest.
    pub async fn put_manifest(&self, sealed: Vec<u8>) -> Result<(), NetError> {
        match self.call(&Request::PutManifest { sealed }).await? {
            Response::Ok => Ok(()),
            r => Err(NetError::Unexpected {
                request: "put_manifest",
                answer: format!("{r:?}"),
            }),
        }
    }

    /// Stores a sealed manifest with this node's shards of a small object, in one round trip.
    pub async fn put_manifest_inline(
        &self,
        sealed: Vec<u8>,
        shards: Vec<InlineShard>,
    ) -> Result<(), NetError> {
        match self
            .call(&Request::PutManifestInline { sealed, shards })
            .await?
        {
            Response::Ok => Ok(()),
            r => Err(NetError::Unexpected {
                request: "put_manifest_inline",
                answer: format!("{r:?}"),
            }),
        }
    }

    /// Withdraws a manifest version whose write did not reach its quorum.
    pub async fn abort_manifest(&self, object: ObjectId, version: Version) -> Result<(), NetError> {
        match self
            .call(&Request::AbortManifest { object, version })
            .await?
        {
            Response::Ok => Ok(()),
            r => Err(NetError::Unexpected {
                request: "abort_manifest",
                answer: format!("{r:?}"),
            }),
        }
    }

    /// Asks the node to start a full scrub pass now.
    pub async fn scrub(&self) -> Result<(), NetError> {
        match self.call(&Request::Scrub).await? {
            Response::Ok => Ok(()),
            r => Err(NetError::Unexpected {
                request: "scrub",
                answer: format!("{r:?}"),
            }),
        }
    }

    /// Shards the node's scrub found bad, not yet collected.
    pub async fn findings(&self, limit: u32) -> Result<Vec<ShardKey>, NetError> {
        match self.call(&Request::Findings { limit }).await? {
            Response::Findings { keys } => Ok(keys),
            r => Err(NetError::Unexpected {
                request: "findings",
                answer: format!("{r:?}"),
            }),
        }
    }

    /// Tells the node its findings are recorded for repair.
    pub async fn clear_findings(&self, keys: Vec<ShardKey>) -> Result<(), NetError> {
        match self.call(&Request::ClearFindings { keys }).await? {
            Response::Ok => Ok(()),
            r => Err(NetError::Unexpected {
                request: "clear_findings",
                answer: format!("{r:?}"),
            }),
        }
    }

    /// The node's scrub state: (last complete ms, in progress, findings, quarantined).
    pub async fn scrub_status(&self) -> Result<(u64, bool, u64, u64), NetError> {
        match self.call(&Request::ScrubStatus).await? {
            Response::ScrubStatus {
                last_complete_ms,
                in_progress,
                findings,
                quarantined,
            } => Ok((last_complete_ms, in_progress, findings, quarantined)),
            r => Err(NetError::Unexpected {
                request: "scrub_status",
                answer: format!("{r:?}"),
            }),
        }
    }

    /// Asks the node to keep a catalog checkpoint.
    pub async fn put_checkpoint(&self, bytes: Vec<u8>) -> Result<(), NetError> {
        match self.call(&Request::PutCheckpoint { bytes }).await? {
            Response::Ok => Ok(()),
            r => Err(NetError::Unexpected {
                request: "put_checkpoint",
                answer: format!("{r:?}"),
            }),
        }
    }

    /// Replaces the sealed cluster record the node keeps.
    pub async fn put_cluster_record(&self, sealed: Vec<u8>) -> Result<(), NetError> {
        match self.call(&Request::PutClusterRecord { sealed }).await? {
            Response::Ok => Ok(()),
            r => Err(NetError::Unexpected {
                request: "put_cluster_record",
                answer: format!("{r:?}"),
            }),
        }
    }

    /// The newest checkpoints the node keeps, newest first.
    pub async fn checkpoints(&self, limit: u32) -> Result<Vec<Vec<u8>>, NetError> {
        match self.call(&Request::Checkpoints { limit }).await? {
            Response::Checkpoints { records } => Ok(records),
            r => Err(NetError::Unexpected {
                request: "checkpoints",
                answer: format!("{r:?}"),
            }),
        }
    }

    /// Shards held and each disk's (id, size, free bytes).
    pub async fn node_status(&self) -> Result<(u64, Vec<DiskUsage>), NetError> {
        match self.call(&Request::NodeStatus).await? {
            Response::NodeStatus { shards, disks } => Ok((shards, disks)),
            r => Err(NetError::Unexpected {
                request: "node_status",
                answer: format!("{r:?}"),
            }),
        }
    }

    /// Every stored manifest version of an object.
    pub async fn manifests(&self, object: ObjectId) -> Result<Vec<Vec<u8>>, NetError> {
        match self.call(&Request::GetManifests { object }).await? {
            Response::Manifests { records } => Ok(records),
            r => Err(NetError::Unexpected {
                request: "manifests",
                answer: format!("{r:?}"),
            }),
        }
    }

    /// A page of manifests after a cursor.
    pub async fn list_manifests(
        &self,
        after: Option<(ObjectId, Version)>,
        limit: u32,
    ) -> Result<Vec<Vec<u8>>, NetError> {
        match self.call(&Request::ListManifests { after, limit }).await? {
            Response::Manifests { records } => Ok(records),
            r => Err(NetError::Unexpected {
                request: "list_manifests",
                answer: format!("{r:?}"),
            }),
        }
    }

    /// Sends raw bytes on a new stream and returns what comes back (tests of hostile input).
    pub async fn raw(&self, bytes: &[u8]) -> Result<Vec<u8>, NetError> {
        let (mut send, mut recv) = self.open().await?;
        send.write_all(bytes).await?;
        let _ = send.finish();
        recv.read_to_end(1 << 20).await.map_err(NetError::from)
    }
}

/// A shard upload in progress.
#[derive(Debug)]
pub struct ShardUpload {
    send: SendStream,
    recv: RecvStream,
}

impl ShardUpload {
    /// Sends the next block (zero-copy into quinn).
    pub async fn send(&mut self, block: Bytes) -> Result<(), NetError> {
        match self.send.write_chunk(block).await {
            Ok(()) => Ok(()),
            Err(quinn::WriteError::Stopped(_)) => Err(self.reason().await),
            Err(e) => Err(e.into()),
        }
    }

    /// The node stopped reading: its answer says why (refused, bad request, ...).
    async fn reason(&mut self) -> NetError {
        match frame::read_frame::<Response>(&mut self.recv).await {
            Ok(Response::Error { code, message }) => NetError::Remote { code, message },
            Ok(r) => NetError::Unexpected {
                request: "put_shard (refusing data)",
                answer: format!("{r:?}"),
            },
            Err(e) => e,
        }
    }

    /// Sends the header and waits until the node says the shard is durable.
    pub async fn finish(mut self, header: &ShardHeader) -> Result<(), NetError> {
        let bytes = header.encode().map_err(NetError::from)?;
        match frame::write_frame(&mut self.send, &Trailer { header: bytes }).await {
            Err(NetError::Write(quinn::WriteError::Stopped(_))) => return Err(self.reason().await),
            r => r?,
        }
        let _ = self.send.finish();
        match frame::read_frame::<Response>(&mut self.recv).await? {
            Response::Ok => Ok(()),
            Response::Error { code, message } => Err(NetError::Remote { code, message }),
            r => Err(NetError::Unexpected {
                request: "put_shard",
                answer: format!("{r:?}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_healthy_idle_link_is_heard_before_it_counts_as_silent() {
        // Keep-alive pings are answered within a round trip: the silence threshold must
        // exceed the longest keep-alive interval by more than a long-haul round trip.
        for s in [
            crate::net::TransportSettings::default(),
            crate::net::TransportSettings::loopback(),
        ] {
            assert!(SILENT_AFTER >= s.keep_alive + Duration::from_millis(900));
        }
    }
}
