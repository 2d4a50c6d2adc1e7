//! A client of one node: one QUIC connection, re-established when it drops; one stream per
//! request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use quinn::{Endpoint, RecvStream, SendStream};

use super::buffers::BufferPool;
use super::link::Link;
use crate::core::format::{MAX_BLOCK_SIZE, ShardHeader};
use crate::core::hlc::Version;
use crate::core::ids::{DiskId, ObjectId};
use crate::core::stripe::Geometry;
use crate::core::wire::{
    BlockStatus, Collectable, CollectedTotals, DiskUsage, FileCensus, HeldShard, InlineShard,
    Request, Response, ShardKey, Trailer, Withdrawn,
};
use crate::net::frame::{self, NetError};

/// Free bytes on every disk of a node marked full that clear the mark.
pub const SPACE_AGAIN: u64 = 64 << 20;

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

/// A client of one node: its calls, over the node's link (`link.rs`).
#[derive(Debug)]
pub struct NodeClient {
    link: Link,
}

impl NodeClient {
    /// A client of the node of `site` at `addr`, dialled through `endpoint`.
    pub fn new(endpoint: Endpoint, addr: SocketAddr, site: &str) -> Self {
        Self {
            link: Link::new(endpoint, addr, site),
        }
    }

    /// The node's address.
    pub fn addr(&self) -> SocketAddr {
        self.link.addr()
    }

    /// The site this client dials.
    pub fn site(&self) -> &str {
        self.link.site()
    }

    /// The open connection's round-trip time, packets sent and lost, and the path MTU it
    /// reached, if one is open (and not being dialled right now).
    pub fn path_stats(&self) -> Option<(Duration, u64, u64, u16)> {
        self.link.path_stats()
    }

    /// Whether the node is known to be unreachable now (a connect failed or a call went
    /// unanswered lately with none answered since, or the open connection went silent).
    pub fn known_down(&self) -> bool {
        self.link.known_down()
    }

    /// Whether reads should ask this node's shards last: a recent read went on without its
    /// answer, or the node is known to be down.
    pub fn late(&self) -> bool {
        self.link.late()
    }

    /// A read went on without this node's answer (hedged past it): later reads ask it last
    /// for a while.
    pub fn note_late(&self) {
        self.link.note_late();
    }

    /// A call to the node went unanswered (a transport error, or a caller's timeout): for a
    /// while it counts as down for refusing writes, unless a call is answered.
    pub fn note_unanswered(&self) {
        self.link.note_unanswered();
    }

    /// What a shard write to the node came to: a failure for lack of space marks the site's
    /// disk full (logged once, shown by `status` and the metrics) until a write succeeds.
    pub fn note_write(&self, error: Option<&NetError>) {
        match error {
            None => {
                if self.link.set_disk_full(false) {
                    tracing::info!(site = %self.site(), "disk space again: shard writes reach the site");
                }
            }
            Some(e) if e.is_disk_full() => {
                if self.link.set_disk_full(true) {
                    tracing::warn!(
                        site = %self.site(),
                        error = %e,
                        "disk full at site {}: writes go on without it until space is freed",
                        self.site()
                    );
                }
            }
            Some(_) => {}
        }
    }

    /// Whether the last shard write to the node failed for lack of space.
    pub fn disk_full(&self) -> bool {
        self.link.disk_full()
    }

    /// The node reports the least free space of its disks: at [`SPACE_AGAIN`] or more, a
    /// site marked full is marked so no longer (space was freed and no write has told yet:
    /// without it, `status` would go on naming a full disk after the load stops).
    pub fn note_free_space(&self, least_free: u64) {
        if least_free >= SPACE_AGAIN && self.link.set_disk_full(false) {
            tracing::info!(
                site = %self.site(),
                free = least_free,
                "disk space again at site {}: it reports {least_free} bytes free",
                self.site()
            );
        }
    }

    async fn open(&self) -> Result<(SendStream, RecvStream), NetError> {
        self.link.open().await
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
            Ok(_) | Err(NetError::Remote { .. }) => self.link.note_answered(),
            Err(_) => self.link.note_unanswered(),
        }
        result
    }

    /// Asks the node who it is: (node id, site).
    pub async fn ping(&self) -> Result<(u32, String), NetError> {
        match self.call(&Request::Ping).await? {
            Response::Pong { node, site } => Ok((node, site)),
            r => Err(unexpected("ping", &r)),
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
        self.get_blocks_into(key, first, count, &BufferPool::new(0))
            .await
    }

    /// [`Self::get_blocks`], each block read into a buffer of `buffers` (it goes back there
    /// when the block is dropped).
    pub async fn get_blocks_into(
        &self,
        key: ShardKey,
        first: u64,
        count: u64,
        buffers: &Arc<BufferPool>,
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
                return Err(unexpected("get_blocks", &r));
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
                    let mut buf = buffers.take(len);
                    frame::read_into(&mut recv, len, &mut buf).await?;
                    out.push(BlockResult::Ok(buffers.share(buf)));
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
            r => Err(unexpected("shard_header", &r)),
        }
    }

    /// Stores a sealed manifest; returns the node's sealed record of the object with a higher
    /// commit order than this one's, if it holds one (unauthenticated until opened).
    pub async fn put_manifest(&self, sealed: Vec<u8>) -> Result<Option<Vec<u8>>, NetError> {
        match self.call(&Request::PutManifest { sealed }).await? {
            Response::ManifestStored { newest_before } => Ok(newest_before),
            // A node from before the order reports (upgraded after its gateways): no report.
            Response::Ok => Ok(None),
            r => Err(unexpected("put_manifest", &r)),
        }
    }

    /// Stores a sealed manifest with this node's shards of a small object, in one round trip.
    pub async fn put_manifest_inline(
        &self,
        sealed: Vec<u8>,
        shards: Vec<InlineShard>,
    ) -> Result<Option<Vec<u8>>, NetError> {
        match self
            .call(&Request::PutManifestInline { sealed, shards })
            .await?
        {
            Response::ManifestStored { newest_before } => Ok(newest_before),
            Response::Ok => Ok(None),
            r => Err(unexpected("put_manifest_inline", &r)),
        }
    }

    /// Withdraws a manifest version whose write did not reach its quorum, leaving the node
    /// the gateway's `proof` that it did.
    pub async fn withdraw_manifest(
        &self,
        object: ObjectId,
        version: Version,
        proof: [u8; 32],
    ) -> Result<(), NetError> {
        match self
            .call(&Request::WithdrawManifest {
                object,
                version,
                proof,
            })
            .await?
        {
            Response::Ok => Ok(()),
            r => Err(unexpected("withdraw_manifest", &r)),
        }
    }

    /// A page of the withdrawals (with proofs) the node keeps, after a cursor.
    pub async fn list_withdrawn(
        &self,
        after: Option<(ObjectId, Version)>,
        limit: u32,
    ) -> Result<Vec<Withdrawn>, NetError> {
        match self.call(&Request::ListWithdrawn { after, limit }).await? {
            Response::Withdrawn { entries } => Ok(entries),
            r => Err(unexpected("list_withdrawn", &r)),
        }
    }

    /// Asks the node to start a full scrub pass now.
    pub async fn scrub(&self) -> Result<(), NetError> {
        match self.call(&Request::Scrub).await? {
            Response::Ok => Ok(()),
            r => Err(unexpected("scrub", &r)),
        }
    }

    /// Shards the node's scrub found bad, not yet collected.
    pub async fn findings(&self, limit: u32) -> Result<Vec<ShardKey>, NetError> {
        match self.call(&Request::Findings { limit }).await? {
            Response::Findings { keys } => Ok(keys),
            r => Err(unexpected("findings", &r)),
        }
    }

    /// Tells the node its findings are recorded for repair.
    pub async fn clear_findings(&self, keys: Vec<ShardKey>) -> Result<(), NetError> {
        match self.call(&Request::ClearFindings { keys }).await? {
            Response::Ok => Ok(()),
            r => Err(unexpected("clear_findings", &r)),
        }
    }

    /// The node's wall clock, ms since the epoch.
    pub async fn clock(&self) -> Result<u64, NetError> {
        match self.call(&Request::Clock).await? {
            Response::Clock { now_ms } => Ok(now_ms),
            r => Err(unexpected("clock", &r)),
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
            r => Err(unexpected("scrub_status", &r)),
        }
    }

    /// Asks the node to keep a catalog checkpoint.
    pub async fn put_checkpoint(&self, bytes: Vec<u8>) -> Result<(), NetError> {
        match self.call(&Request::PutCheckpoint { bytes }).await? {
            Response::Ok => Ok(()),
            r => Err(unexpected("put_checkpoint", &r)),
        }
    }

    /// Replaces the sealed cluster record the node keeps.
    pub async fn put_cluster_record(&self, sealed: Vec<u8>) -> Result<(), NetError> {
        match self.call(&Request::PutClusterRecord { sealed }).await? {
            Response::Ok => Ok(()),
            r => Err(unexpected("put_cluster_record", &r)),
        }
    }

    /// The newest checkpoints the node keeps, newest first.
    pub async fn checkpoints(&self, limit: u32) -> Result<Vec<Vec<u8>>, NetError> {
        match self.call(&Request::Checkpoints { limit }).await? {
            Response::Checkpoints { records } => Ok(records),
            r => Err(unexpected("checkpoints", &r)),
        }
    }

    /// Shards held and each disk's (id, size, free bytes).
    pub async fn node_status(&self) -> Result<(u64, Vec<DiskUsage>), NetError> {
        match self.call(&Request::NodeStatus).await? {
            Response::NodeStatus { shards, disks } => Ok((shards, disks)),
            r => Err(unexpected("node_status", &r)),
        }
    }

    /// Every stored manifest version of an object.
    pub async fn manifests(&self, object: ObjectId) -> Result<Vec<Vec<u8>>, NetError> {
        match self.call(&Request::GetManifests { object }).await? {
            Response::Manifests { records } => Ok(records),
            r => Err(unexpected("manifests", &r)),
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
            r => Err(unexpected("list_manifests", &r)),
        }
    }

    /// A page of the shards the node holds after a cursor, with their lengths.
    pub async fn list_shards(
        &self,
        after: Option<ShardKey>,
        limit: u32,
    ) -> Result<Vec<HeldShard>, NetError> {
        match self.call(&Request::ListShards { after, limit }).await? {
            Response::Shards { shards } => Ok(shards),
            r => Err(unexpected("list_shards", &r)),
        }
    }

    /// Deletes the garbage `items` names at the node; what it freed and its ledger's totals.
    pub async fn collect(
        &self,
        items: Vec<Collectable>,
    ) -> Result<(CollectedTotals, CollectedTotals), NetError> {
        match self.call(&Request::Collect { items }).await? {
            Response::Collected { now, total } => Ok((now, total)),
            r => Err(unexpected("collect", &r)),
        }
    }

    /// Counts (and, with `delete`, deletes those older than `min_age_ms` of) the files under
    /// the node's `shards/` that no shard header names: (found, deleted).
    pub async fn sweep_files(
        &self,
        min_age_ms: u64,
        delete: bool,
    ) -> Result<(CollectedTotals, CollectedTotals), NetError> {
        match self
            .call(&Request::SweepFiles { min_age_ms, delete })
            .await?
        {
            Response::Swept { found, deleted } => Ok((found, deleted)),
            r => Err(unexpected("sweep_files", &r)),
        }
    }

    /// Every file of the node's data directories, by what accounts for it, with the paths of
    /// at most `list` files nothing accounts for (gateway only).
    pub async fn file_census(&self, list: u32) -> Result<FileCensus, NetError> {
        match self.call(&Request::FileCensus { list }).await? {
            Response::FileCensus(c) => Ok(c),
            r => Err(unexpected("file_census", &r)),
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
            Ok(r) => unexpected("put_shard (refusing data)", &r),
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
            r => Err(unexpected("put_shard", &r)),
        }
    }
}

/// A node's answer that does not fit the request.
fn unexpected(request: &'static str, answer: &Response) -> NetError {
    NetError::Unexpected {
        request,
        answer: format!("{answer:?}"),
    }
}
