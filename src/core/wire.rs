//! Messages between gateways and nodes: small versioned rkyv frames on QUIC streams.
//!
//! A frame is `[u32 LE length][u16 LE protocol version][rkyv archive]`; the length counts the
//! version and the archive. Shard bytes never ride inside a frame: they follow it raw on the
//! same stream, so they are streamed, not copied into messages.
//!
//! Stream shapes (one request per bidirectional stream):
//! - `PutShard`: request frame, then exactly `data_len` raw bytes, then a `Trailer` frame with the
//!   encoded shard header; the node answers one `Response` frame once the shard is durable.
//! - `GetBlocks`: request frame; the node answers `Response::Blocks { count }`, then per block a
//!   [`BlockStatus`] byte, a u32 LE length and that many bytes.
//! - everything else: request frame, response frame.

use crate::core::hlc::Version;
use crate::core::ids::{DiskId, ObjectId};
use rkyv::{Archive, Deserialize, Serialize};

/// Protocol version spoken by this build.
pub const PROTOCOL_VERSION: u16 = 1;
/// Largest frame accepted (a shard header of a ~20 GiB 4+2 object fits).
pub const MAX_FRAME: usize = 16 << 20;

/// A request from a gateway (or, for reads, a repairing node).
#[derive(Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub enum Request {
    /// Liveness and identity.
    Ping,
    /// Store a shard (gateway only). Raw bytes and a [`Trailer`] follow.
    PutShard {
        /// Which shard.
        key: ShardKey,
        /// Disk of the node to write it to.
        disk: DiskId,
        /// Data shards per stripe.
        k: u8,
        /// Parity shards per stripe.
        m: u8,
        /// Block size B.
        block_size: u32,
        /// Plaintext size of the object (gives the geometry).
        size: u64,
        /// Raw bytes that follow.
        data_len: u64,
    },
    /// Read blocks of a shard (gateway or node).
    GetBlocks {
        /// Which shard.
        key: ShardKey,
        /// First stripe.
        first_stripe: u64,
        /// Number of stripes.
        count: u64,
    },
    /// Read a shard's header (gateway or node).
    GetShardHeader {
        /// Which shard.
        key: ShardKey,
    },
    /// Store a sealed manifest (gateway only).
    PutManifest {
        /// The sealed manifest, as `Manifest::seal` made it.
        sealed: Vec<u8>,
    },
    /// Every stored manifest version of an object (gateway only).
    GetManifests {
        /// The object.
        object: ObjectId,
    },
    /// Manifests in object-id order after a cursor (gateway only; index rebuild, recovery).
    ListManifests {
        /// Exclusive start: (object, version) of the last record seen.
        after: Option<(ObjectId, Version)>,
        /// Most records to return.
        limit: u32,
    },
    /// A manifest with the shards this node holds of a small object, stored in one durable
    /// commit (gateway only): one round trip per site for objects below the inline limit.
    PutManifestInline {
        /// The sealed manifest.
        sealed: Vec<u8>,
        /// The node's shards of the object.
        shards: Vec<InlineShard>,
    },
    /// Withdraws a manifest version whose write did not reach its quorum (gateway only): the
    /// record moves to the node's ledger of aborted writes and is no longer served.
    AbortManifest {
        /// The object.
        object: ObjectId,
        /// The version never acknowledged.
        version: Version,
    },
    /// Start a full scrub pass now (gateway only).
    Scrub,
    /// Shards scrub found bad and quarantined, not yet collected (gateway only).
    Findings {
        /// Most keys to return.
        limit: u32,
    },
    /// Forget findings the gateway has recorded for repair (gateway only).
    ClearFindings {
        /// The shards.
        keys: Vec<ShardKey>,
    },
    /// Scrub state and counts (gateway only).
    ScrubStatus,
    /// Shards held and each disk's size and free space (gateway only).
    NodeStatus,
    /// Keep a signed catalog checkpoint (`core::catalog`; gateway only). The node keeps the
    /// newest few.
    PutCheckpoint {
        /// The checkpoint's bytes.
        bytes: Vec<u8>,
    },
    /// The newest checkpoints kept, newest first (gateway only).
    Checkpoints {
        /// Most to return.
        limit: u32,
    },
    /// Replace the sealed cluster record the node keeps (a key rotation re-sealed it; gateway
    /// only).
    PutClusterRecord {
        /// The sealed record.
        sealed: Vec<u8>,
    },
    /// `AbortManifest` with the gateway's proof that it withdrew the version
    /// (`ManifestKey::withdrawal_proof`), which the node keeps with its ledger entry
    /// (gateway only).
    WithdrawManifest {
        /// The object.
        object: ObjectId,
        /// The version never acknowledged.
        version: Version,
        /// The proof.
        proof: [u8; 32],
    },
    /// The withdrawals with proofs the node keeps, in (object, version) order after a cursor
    /// (gateway only; index rebuild, recovery).
    ListWithdrawn {
        /// Exclusive start.
        after: Option<(ObjectId, Version)>,
        /// Most entries to return.
        limit: u32,
    },
    /// The node's wall clock (gateway only): object lock retention is judged against the
    /// clocks of a majority of the nodes as well as the gateway's, so that one clock jumping
    /// forward releases no lock early.
    Clock,
    /// The shards the node holds, in key order after a cursor, with their lengths (gateway
    /// only; the collector's census).
    ListShards {
        /// Exclusive start.
        after: Option<ShardKey>,
        /// Most entries to return.
        limit: u32,
    },
    /// Deletes what the gateway's collector decided no reader may ever need again (gateway
    /// only): every shard of each version named and, where asked, its manifest record; each
    /// goes into the node's ledger of what was collected, why and how many bytes. With no
    /// items, only reports the ledger's totals.
    Collect {
        /// What to delete.
        items: Vec<Collectable>,
    },
    /// Counts the files under the node's `shards/` directories that no shard header names
    /// and, with `delete`, deletes those of them (shard files) older than `min_age_ms`, into
    /// the ledger; trims the records of withdrawn writes older than that to their keys, into
    /// the ledger too (gateway only).
    SweepFiles {
        /// Age below which a file is left alone (a shard being written has no header yet).
        min_age_ms: u64,
        /// Delete, not only count.
        delete: bool,
    },
    /// Every file of the node's data directories and its database, by what accounts for it,
    /// with the paths of at most `list` files nothing accounts for (gateway only).
    FileCensus {
        /// Most paths listed.
        list: u32,
    },
}

/// One version's garbage at a node (`Request::Collect`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct Collectable {
    /// The object.
    pub object: ObjectId,
    /// The version.
    pub version: Version,
    /// Delete the manifest record too (not only the shards).
    pub manifest: bool,
    /// Why (`CollectReason as u8`), kept in the node's ledger.
    pub reason: u8,
}

/// A shard a node holds (`Response::Shards`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct HeldShard {
    /// The shard.
    pub key: ShardKey,
    /// Its length in bytes.
    pub len: u64,
}

/// What a node's ledger of collected garbage adds up to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct CollectedTotals {
    /// Versions collected (ledger entries).
    pub items: u64,
    /// Bytes freed: shard files, inline shards and manifest records.
    pub bytes: u64,
}

/// Every file of a node's data directories and its database, by what accounts for it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct FileCensus {
    /// Files under `shards/` a shard header on that disk names: each a version's shard
    /// (whether the version is live or garbage is the collector's to say).
    pub shards: CollectedTotals,
    /// Files under `shards/` no header names (listed).
    pub unnamed: CollectedTotals,
    /// Files under `quarantine/`: bad shards set aside, each in the quarantine ledger.
    pub quarantine: CollectedTotals,
    /// Files under `tmp/`: shard writes in progress (a crash's are removed at start).
    pub tmp: CollectedTotals,
    /// The data directories' markers.
    pub markers: CollectedTotals,
    /// Any other file in a data directory (listed).
    pub stray: CollectedTotals,
    /// The node's database: shard headers, manifest records, inline shards, ledgers.
    pub database_bytes: u64,
    /// Path and bytes of unnamed and stray files, at most as many as asked for.
    pub listed: Vec<(String, u64)>,
}

/// A withdrawal a node keeps, with the gateway's proof.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct Withdrawn {
    /// The object.
    pub object: ObjectId,
    /// The version withdrawn.
    pub version: Version,
    /// The gateway's proof (not checked by the node, which has no key).
    pub proof: [u8; 32],
}

/// A data directory's file system: size and free space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct DiskUsage {
    /// Disk id.
    pub id: u32,
    /// Bytes in all.
    pub bytes: u64,
    /// Bytes free.
    pub free: u64,
}

/// One shard carried inside a `PutManifestInline`.
#[derive(Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct InlineShard {
    /// The encoded shard header (names the shard and its block CRCs).
    pub header: Vec<u8>,
    /// The shard's blocks, concatenated.
    pub data: Vec<u8>,
}

/// Which shard: object, version and index.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Archive, Serialize, Deserialize,
)]
pub struct ShardKey {
    /// Object.
    pub object: ObjectId,
    /// Version.
    pub version: Version,
    /// Shard index.
    pub shard: u8,
}

impl ShardKey {
    /// 49-byte key: object ‖ version (BE) ‖ shard; sorts by object, then version.
    pub fn to_bytes(self) -> [u8; 49] {
        let mut b = [0u8; 49];
        b[..32].copy_from_slice(&self.object.0);
        b[32..48].copy_from_slice(&self.version.to_bytes());
        b[48] = self.shard;
        b
    }
}

/// Follows the raw bytes of a `PutShard`.
#[derive(Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct Trailer {
    /// The encoded `ShardHeader`.
    pub header: Vec<u8>,
}

/// A node's answer.
#[derive(Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub enum Response {
    /// Done (a write is durable).
    Ok,
    /// Identity of the node.
    Pong {
        /// Node id.
        node: u32,
        /// Site name.
        site: String,
    },
    /// `count` blocks follow, each as status byte, u32 LE length, bytes.
    Blocks {
        /// Blocks that follow.
        count: u64,
    },
    /// An encoded shard header.
    Header {
        /// The bytes.
        header: Vec<u8>,
    },
    /// Sealed manifests.
    Manifests {
        /// The records.
        records: Vec<Vec<u8>>,
    },
    /// Shards found bad by scrub.
    Findings {
        /// Their keys.
        keys: Vec<ShardKey>,
    },
    /// Where scrub stands.
    ScrubStatus {
        /// Last full pass finished, ms since the epoch (0: never).
        last_complete_ms: u64,
        /// A pass is under way.
        in_progress: bool,
        /// Findings not yet collected.
        findings: u64,
        /// Quarantine ledger entries.
        quarantined: u64,
    },
    /// What a node holds.
    NodeStatus {
        /// Shards stored (files and inline).
        shards: u64,
        /// Per disk: size and free space.
        disks: Vec<DiskUsage>,
    },
    /// The request failed.
    Error {
        /// What kind of failure.
        code: ErrorCode,
        /// Details for logs.
        message: String,
    },
    /// Checkpoints kept, newest first.
    Checkpoints {
        /// Their bytes.
        records: Vec<Vec<u8>>,
    },
    /// Withdrawals kept with their proofs.
    Withdrawn {
        /// The entries.
        entries: Vec<Withdrawn>,
    },
    /// A manifest is durable (`PutManifest`, `PutManifestInline`); with it, the node's sealed
    /// record of the object with the highest commit order, if that is above the written
    /// manifest's (None otherwise). Sealed, so that a node cannot make a gateway believe an
    /// order no gateway stamped.
    ManifestStored {
        /// That record.
        newest_before: Option<Vec<u8>>,
    },
    /// The node's wall clock (`Clock`).
    Clock {
        /// Milliseconds since the epoch.
        now_ms: u64,
    },
    /// Shards held (`ListShards`).
    Shards {
        /// The entries.
        shards: Vec<HeldShard>,
    },
    /// What a `SweepFiles` found and deleted.
    Swept {
        /// Files no header names.
        found: CollectedTotals,
        /// Of those, the shard files past the age: deleted, or (not asked to delete) those that
        /// would have been.
        deleted: CollectedTotals,
    },
    /// What a `Collect` freed, and the ledger's totals after it.
    Collected {
        /// Freed by this request.
        now: CollectedTotals,
        /// The ledger's totals.
        total: CollectedTotals,
    },
    /// The answer to `FileCensus`.
    FileCensus(FileCensus),
}

/// Kinds of failure a node reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The peer's role may not do this.
    Forbidden,
    /// No such shard or record.
    NotFound,
    /// The data is stored but failed its check (and was quarantined).
    Corrupt,
    /// The request is malformed or inconsistent.
    BadRequest,
    /// The disk named is not served by this node (unmounted, no marker, unknown).
    NoSuchDisk,
    /// The protocol version is not spoken here.
    Unsupported,
    /// The node failed (I/O error); the write is not durable.
    Internal,
    /// The disk the write was for is full (no space, or over quota); the write is not
    /// durable.
    DiskFull,
}

/// Status byte in front of each block of a `Blocks` response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum BlockStatus {
    /// The block follows and matched its CRC.
    Ok = 0,
    /// The block failed its CRC; nothing follows (length 0).
    Corrupt = 1,
    /// The block is not stored here; nothing follows (length 0).
    Missing = 2,
}

impl BlockStatus {
    /// Parses a status byte.
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(Self::Ok),
            1 => Some(Self::Corrupt),
            2 => Some(Self::Missing),
            _ => None,
        }
    }
}

/// Errors decoding a frame body.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// Shorter than the version field.
    #[error("frame too short")]
    Truncated,
    /// Another protocol version.
    #[error("protocol version {0} is not spoken here (this build speaks {PROTOCOL_VERSION})")]
    Version(u16),
    /// Not a valid archive of the expected message.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// Longer than [`MAX_FRAME`].
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME}")]
    TooLarge(usize),
}

/// What can travel in a frame: serializable, and checkable when it arrives.
pub trait Message:
    Archive<
        Archived: for<'a> rkyv::bytecheck::CheckBytes<
            rkyv::api::high::HighValidator<'a, rkyv::rancor::Error>,
        > + Deserialize<Self, rkyv::api::high::HighDeserializer<rkyv::rancor::Error>>,
    > + for<'a> Serialize<
        rkyv::api::high::HighSerializer<
            rkyv::util::AlignedVec,
            rkyv::ser::allocator::ArenaHandle<'a>,
            rkyv::rancor::Error,
        >,
    > + Sized
{
}

impl Message for Request {}
impl Message for Response {}
impl Message for Trailer {}

/// Encodes a message as a frame body (version + archive), without the length prefix.
pub fn encode_body<T: Message>(msg: &T) -> Vec<u8> {
    let mut out = PROTOCOL_VERSION.to_le_bytes().to_vec();
    // Serializing plain owned data into a growable buffer cannot fail.
    if let Ok(archive) = rkyv::to_bytes::<rkyv::rancor::Error>(msg) {
        out.extend_from_slice(&archive);
    }
    out
}

/// Decodes a frame body, validating the archive.
pub fn decode_body<T: Message>(body: &[u8]) -> Result<T, WireError> {
    if body.len() > MAX_FRAME {
        return Err(WireError::TooLarge(body.len()));
    }
    let (version, archive) = body.split_at_checked(2).ok_or(WireError::Truncated)?;
    let version = u16::from_le_bytes([version[0], version[1]]);
    if version != PROTOCOL_VERSION {
        return Err(WireError::Version(version));
    }
    let mut aligned: rkyv::util::AlignedVec<16> =
        rkyv::util::AlignedVec::with_capacity(archive.len());
    aligned.extend_from_slice(archive);
    rkyv::from_bytes::<T, rkyv::rancor::Error>(&aligned)
        .map_err(|e| WireError::Malformed(e.to_string()))
}
