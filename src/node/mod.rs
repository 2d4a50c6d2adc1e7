//! The node role: serves shard and manifest requests from authenticated peers over QUIC.
//!
//! Authorization by role, from the peer's CA-verified certificate: only a gateway writes
//! shards and manifests or reads manifests; a node may read shards and headers (repair).
//! A malformed request gets an error frame or a closed stream; the node keeps serving.

mod admin;
mod workers;
pub use admin::serve_admin;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
pub use workers::{ScrubWorker, start_workers};

use bytes::BytesMut;
use quinn::{Connection, Endpoint, RecvStream, SendStream};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::core::format::{MAX_BLOCK_SIZE, MAX_OBJECT_SIZE, MIN_BLOCK_SIZE, ShardHeader};
use crate::core::ids::{DiskId, NodeId};
use crate::core::stripe::{Geometry, Profile};
use crate::core::wire::{self, BlockStatus, ErrorCode, Request, Response, Trailer, WireError};
use crate::metrics::NodeMetrics;
use crate::net::frame::{self, NetError};
use crate::net::tls::{Role, peer_role};
use crate::store::{BlockRead, CHECKPOINTS_KEPT, Store, StoreError};
use crate::worker::Workers;

/// Time a peer gets to send a request frame.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes gathered from the network before one write to disk.
const WRITE_BATCH: usize = 1 << 20;
/// Most manifests returned by one `ListManifests`.
const LIST_LIMIT: u32 = 1000;

/// What a running node needs.
#[derive(Debug)]
pub struct Node {
    /// Node id.
    pub id: NodeId,
    /// Site name.
    pub site: String,
    /// The store.
    pub store: Arc<Store>,
    /// Scrub counters and the site gauges (`GET /metrics` on the admin port).
    pub metrics: NodeMetrics,
    /// The sealed cluster record this node keeps for recovery, if configured.
    pub cluster_record_file: Option<std::path::PathBuf>,
    /// The background workers (`workers.rs`).
    pub workers: Workers,
}

/// Serves `endpoint` until `shutdown` turns true, then closes connections and returns.
pub async fn serve(node: Arc<Node>, endpoint: Endpoint, mut shutdown: watch::Receiver<bool>) {
    info!(node = node.id.0, site = %node.site, addr = ?endpoint.local_addr().ok(), "node serving");
    loop {
        tokio::select! {
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                let node = node.clone();
                tokio::spawn(async move {
                    match incoming.await {
                        Ok(conn) => connection(node, conn).await,
                        Err(e) => debug!("handshake failed: {e}"),
                    }
                });
            }
            _ = shutdown.changed() => break,
        }
    }
    endpoint.close(0u32.into(), b"shutdown");
    let _ = tokio::time::timeout(Duration::from_secs(5), endpoint.wait_idle()).await;
    info!(node = node.id.0, "node stopped");
}

async fn connection(node: Arc<Node>, conn: Connection) {
    let peer: SocketAddr = conn.remote_address();
    let Some(role) = peer_role(&conn) else {
        warn!(%peer, "peer certificate names no role; closing");
        conn.close(1u32.into(), b"no role");
        return;
    };
    debug!(%peer, ?role, "peer connected");
    loop {
        match conn.accept_bi().await {
            Ok((send, recv)) => {
                let node = node.clone();
                tokio::spawn(async move {
                    if let Err(e) = stream(&node, role, send, recv).await {
                        debug!(%peer, "stream ended with error: {e}");
                    }
                });
            }
            Err(e) => {
                debug!(%peer, "connection closed: {e}");
                return;
            }
        }
    }
}

fn error(code: ErrorCode, message: impl Into<String>) -> Response {
    Response::Error {
        code,
        message: message.into(),
    }
}

fn store_error(e: &StoreError) -> Response {
    let code = match e {
        StoreError::Io { path, error } if is_disk_full(error) => {
            tracing::warn!(path = %path.display(), error = %error, "disk full: a write failed for lack of space");
            ErrorCode::DiskFull
        }
        StoreError::NotFound => ErrorCode::NotFound,
        StoreError::NoSuchDisk(_) => ErrorCode::NoSuchDisk,
        StoreError::BadShard(_) | StoreError::Withdrawn => ErrorCode::BadRequest,
        StoreError::Format(_) => ErrorCode::Corrupt,
        _ => ErrorCode::Internal,
    };
    error(code, e.to_string())
}

/// Whether an I/O error says the file system has no room (full, or over a quota).
fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

/// When and how fast a node scrubs.
#[derive(Clone, Copy, Debug)]
pub struct ScrubSchedule {
    /// A full pass starts this long after the last one finished.
    pub interval: Duration,
    /// Bytes read per second at most.
    pub bytes_per_sec: u64,
}

impl Default for ScrubSchedule {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(7 * 24 * 3600),
            bytes_per_sec: 64 << 20,
        }
    }
}

/// Replaces a small file durably: temporary file, fsync, rename, fsync of the directory.
fn replace_file(path: &std::path::Path, bytes: &[u8]) -> Result<(), StoreError> {
    use std::io::Write as _;
    let io = |error: std::io::Error| StoreError::Io {
        path: path.to_path_buf(),
        error,
    };
    let tmp = path.with_extension("partial");
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(())
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Db(format!("store task failed: {e}")))?
}

async fn stream(
    node: &Node,
    role: Role,
    mut send: SendStream,
    mut recv: RecvStream,
) -> Result<(), NetError> {
    let body = match tokio::time::timeout(REQUEST_TIMEOUT, frame::read_body(&mut recv)).await {
        Ok(Ok(body)) => body,
        Ok(Err(NetError::Frame(WireError::TooLarge(n)))) => {
            let _ = recv.stop(1u32.into());
            return reply(
                &mut send,
                &error(ErrorCode::BadRequest, format!("frame of {n} bytes")),
            )
            .await;
        }
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err(NetError::Timeout),
    };
    let request: Request = match wire::decode_body(&body) {
        Ok(r) => r,
        Err(e @ WireError::Version(_)) => {
            return reply(&mut send, &error(ErrorCode::Unsupported, e.to_string())).await;
        }
        Err(e) => {
            let _ = recv.stop(1u32.into());
            return reply(&mut send, &error(ErrorCode::BadRequest, e.to_string())).await;
        }
    };
    let gateway_only = matches!(
        request,
        Request::PutShard { .. }
            | Request::PutManifest { .. }
            | Request::PutManifestInline { .. }
            | Request::AbortManifest { .. }
            | Request::WithdrawManifest { .. }
            | Request::ListWithdrawn { .. }
            | Request::Scrub
            | Request::Findings { .. }
            | Request::ClearFindings { .. }
            | Request::ScrubStatus
            | Request::NodeStatus
            | Request::PutCheckpoint { .. }
            | Request::Checkpoints { .. }
            | Request::PutClusterRecord { .. }
            | Request::GetManifests { .. }
            | Request::ListManifests { .. }
            | Request::Clock
            | Request::ListShards { .. }
            | Request::Collect { .. }
            | Request::SweepFiles { .. }
            | Request::FileCensus { .. }
    );
    if gateway_only && role != Role::Gateway {
        let _ = recv.stop(1u32.into());
        return reply(
            &mut send,
            &error(ErrorCode::Forbidden, "only a gateway may do this"),
        )
        .await;
    }
    let store = node.store.clone();
    let response = match request {
        Request::Ping => Response::Pong {
            node: node.id.0,
            site: node.site.clone(),
        },
        Request::Clock => Response::Clock {
            now_ms: crate::sys::now_ms(),
        },
        Request::PutShard {
            key,
            disk,
            k,
            m,
            block_size,
            size,
            data_len,
        } => {
            let geometry = match Profile::new(usize::from(k), usize::from(m)) {
                Ok(profile)
                    if (MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&block_size)
                        && size <= MAX_OBJECT_SIZE
                        && usize::from(key.shard) < profile.n() =>
                {
                    Geometry {
                        profile,
                        block_size,
                        size,
                    }
                }
                _ => {
                    let _ = recv.stop(1u32.into());
                    return reply(
                        &mut send,
                        &error(ErrorCode::BadRequest, "bad shard geometry"),
                    )
                    .await;
                }
            };
            if geometry.shard_len() != data_len {
                let _ = recv.stop(1u32.into());
                return reply(
                    &mut send,
                    &error(
                        ErrorCode::BadRequest,
                        "data length does not fit the geometry",
                    ),
                )
                .await;
            }
            put_shard(&store, &mut recv, disk, key, geometry).await
        }
        Request::GetBlocks {
            key,
            first_stripe,
            count,
        } => match blocking(move || store.read_blocks(&key, first_stripe, count)).await {
            Ok(blocks) => return send_blocks(&mut send, blocks).await,
            Err(e) => store_error(&e),
        },
        Request::GetShardHeader { key } => match blocking(move || store.header(&key)).await {
            Ok((_, header)) => match header.encode() {
                Ok(bytes) => Response::Header { header: bytes },
                Err(e) => error(ErrorCode::Corrupt, e.to_string()),
            },
            Err(e) => store_error(&e),
        },
        Request::PutManifest { sealed } => match store.put_manifest_async(&sealed).await {
            Ok(newest_before) => Response::ManifestStored { newest_before },
            Err(e) => store_error(&e),
        },
        Request::PutManifestInline { sealed, shards } => {
            let mut decoded = Vec::with_capacity(shards.len());
            let mut bad = None;
            for s in shards {
                match ShardHeader::decode(&s.header) {
                    Ok(h) => decoded.push((h, s.data)),
                    Err(e) => {
                        bad = Some(e.to_string());
                        break;
                    }
                }
            }
            match bad {
                Some(why) => error(ErrorCode::BadRequest, why),
                None => match store.put_manifest_inline_async(&sealed, &decoded).await {
                    Ok(newest_before) => Response::ManifestStored { newest_before },
                    Err(e) => store_error(&e),
                },
            }
        }
        Request::AbortManifest { object, version } => {
            match blocking(move || store.abort_manifest(&object, version, None)).await {
                Ok(()) => Response::Ok,
                Err(e) => store_error(&e),
            }
        }
        Request::WithdrawManifest {
            object,
            version,
            proof,
        } => match blocking(move || store.abort_manifest(&object, version, Some(proof))).await {
            Ok(()) => Response::Ok,
            Err(e) => store_error(&e),
        },
        Request::ListWithdrawn { after, limit } => {
            let limit = limit.clamp(1, LIST_LIMIT) as usize;
            match blocking(move || store.list_withdrawn(after, limit)).await {
                Ok(entries) => Response::Withdrawn { entries },
                Err(e) => store_error(&e),
            }
        }
        Request::Scrub => match blocking(move || store.restart_scrub()).await {
            Ok(()) => Response::Ok,
            Err(e) => store_error(&e),
        },
        Request::Findings { limit } => {
            let limit = limit.clamp(1, LIST_LIMIT) as usize;
            match blocking(move || store.findings(limit)).await {
                Ok(keys) => Response::Findings { keys },
                Err(e) => store_error(&e),
            }
        }
        Request::ClearFindings { keys } => {
            match blocking(move || store.clear_findings(&keys)).await {
                Ok(()) => Response::Ok,
                Err(e) => store_error(&e),
            }
        }
        Request::ScrubStatus => match blocking(move || store.scrub_state()).await {
            Ok(s) => Response::ScrubStatus {
                last_complete_ms: s.last_complete_ms,
                in_progress: s.in_progress,
                findings: s.findings,
                quarantined: s.quarantined,
            },
            Err(e) => store_error(&e),
        },
        Request::PutCheckpoint { bytes } => {
            match blocking(move || store.put_checkpoint(&bytes)).await {
                Ok(()) => Response::Ok,
                Err(e) => store_error(&e),
            }
        }
        Request::PutClusterRecord { sealed } => match node.cluster_record_file.clone() {
            None => error(
                ErrorCode::NotFound,
                "this node keeps no cluster record (cluster_record_file)",
            ),
            Some(path) => match blocking(move || replace_file(&path, &sealed)).await {
                Ok(()) => Response::Ok,
                Err(e) => store_error(&e),
            },
        },
        Request::Checkpoints { limit } => {
            let limit = (limit as usize).clamp(1, CHECKPOINTS_KEPT);
            match blocking(move || store.checkpoints(limit)).await {
                Ok(records) => Response::Checkpoints { records },
                Err(e) => store_error(&e),
            }
        }
        Request::NodeStatus => match blocking(move || store.usage()).await {
            Ok((shards, disks)) => Response::NodeStatus { shards, disks },
            Err(e) => store_error(&e),
        },
        Request::GetManifests { object } => {
            match blocking(move || store.manifests(&object)).await {
                Ok(records) => Response::Manifests { records },
                Err(e) => store_error(&e),
            }
        }
        Request::ListShards { after, limit } => {
            let limit = limit.clamp(1, LIST_LIMIT) as usize;
            match blocking(move || store.list_shards(after, limit)).await {
                Ok(shards) => Response::Shards { shards },
                Err(e) => store_error(&e),
            }
        }
        Request::Collect { items } if items.len() > LIST_LIMIT as usize => error(
            ErrorCode::BadRequest,
            format!("more than {LIST_LIMIT} items in one collection"),
        ),
        Request::Collect { items } => {
            match blocking(move || store.collect(&items, crate::sys::now_ms())).await {
                Ok((now, total)) => Response::Collected { now, total },
                Err(e) => store_error(&e),
            }
        }
        Request::SweepFiles { min_age_ms, delete } => {
            // The withdrawn writes' records past the age are trimmed to their keys too (into
            // the ledger; the gateway sees them in the ledger's totals).
            match blocking(move || {
                let now = crate::sys::now_ms();
                store.trim_withdrawn(now, min_age_ms, delete)?;
                store.sweep_files(now, min_age_ms, delete)
            })
            .await
            {
                Ok((found, deleted)) => Response::Swept { found, deleted },
                Err(e) => store_error(&e),
            }
        }
        Request::FileCensus { list } => {
            let list = (list as usize).min(LIST_LIMIT as usize);
            match blocking(move || Ok(store.file_census(list))).await {
                Ok(c) => Response::FileCensus(c),
                Err(e) => store_error(&e),
            }
        }
        Request::ListManifests { after, limit } => {
            let limit = limit.clamp(1, LIST_LIMIT) as usize;
            match blocking(move || store.list_manifests(after, limit)).await {
                Ok(records) => Response::Manifests { records },
                Err(e) => store_error(&e),
            }
        }
    };
    reply(&mut send, &response).await
}

async fn reply(send: &mut SendStream, response: &Response) -> Result<(), NetError> {
    frame::write_frame(send, response).await?;
    let _ = send.finish();
    Ok(())
}

async fn put_shard(
    store: &Arc<Store>,
    recv: &mut RecvStream,
    disk: DiskId,
    key: wire::ShardKey,
    geometry: Geometry,
) -> Response {
    let s = store.clone();
    let mut writer = match blocking(move || s.begin_shard(disk, key, geometry)).await {
        Ok(w) => w,
        Err(e) => {
            let _ = recv.stop(1u32.into());
            return store_error(&e);
        }
    };
    let total = writer.expected_len();
    let mut received: u64 = 0;
    let mut batch = BytesMut::with_capacity(WRITE_BATCH.min(total as usize));
    while received < total {
        let want = (total - received).min(WRITE_BATCH as u64) as usize;
        let chunk = match recv.read_chunk(want, true).await {
            Ok(Some(c)) => c.bytes,
            Ok(None) | Err(_) => {
                writer.abort();
                return error(
                    ErrorCode::BadRequest,
                    "stream ended before the shard was complete",
                );
            }
        };
        received += chunk.len() as u64;
        batch.extend_from_slice(&chunk);
        if batch.len() >= WRITE_BATCH || received == total {
            let data = batch.split().freeze();
            let result = tokio::task::spawn_blocking(move || {
                let r = writer.write(&data);
                (writer, r)
            })
            .await;
            match result {
                Ok((w, Ok(()))) => writer = w,
                Ok((w, Err(e))) => {
                    w.abort();
                    return store_error(&e);
                }
                Err(e) => return error(ErrorCode::Internal, e.to_string()),
            }
        }
    }
    let trailer: Trailer = match frame::read_frame(recv).await {
        Ok(t) => t,
        Err(e) => {
            writer.abort();
            return error(ErrorCode::BadRequest, format!("trailer: {e}"));
        }
    };
    let header = match ShardHeader::decode(&trailer.header) {
        Ok(h) => h,
        Err(e) => {
            writer.abort();
            return error(ErrorCode::BadRequest, format!("shard header: {e}"));
        }
    };
    let s = store.clone();
    match blocking(move || writer.finish(&s, &header)).await {
        Ok(()) => Response::Ok,
        Err(e) => store_error(&e),
    }
}

async fn send_blocks(send: &mut SendStream, blocks: Vec<BlockRead>) -> Result<(), NetError> {
    frame::write_frame(
        send,
        &Response::Blocks {
            count: blocks.len() as u64,
        },
    )
    .await?;
    for b in blocks {
        match b {
            BlockRead::Ok(bytes) => {
                let mut head = [0u8; 5];
                head[0] = BlockStatus::Ok as u8;
                head[1..].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
                send.write_all(&head).await?;
                send.write_chunk(bytes).await?;
            }
            BlockRead::Corrupt => {
                send.write_all(&[BlockStatus::Corrupt as u8, 0, 0, 0, 0])
                    .await?;
            }
        }
    }
    let _ = send.finish();
    Ok(())
}
