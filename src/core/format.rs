//! Persisted formats: the object manifest (sealed with the manifest key) and the per-shard
//! header (cleartext, all a node needs to verify and repair without keys).
//!
//! Both are rkyv archives behind a small fixed envelope that starts with a magic and a format
//! version. `docs/format.md` draws them byte by byte. Decoding untrusted bytes validates the
//! archive (rkyv's bytecheck) and then the meaning (shapes match the profile), and returns an
//! error, never a panic.

use rkyv::rancor;
use rkyv::util::AlignedVec;

use crate::core::hlc::Version;
use crate::core::ids::{ObjectId, ShardIndex};
use crate::core::keys::{ManifestKey, TAG_LEN, WrappedKey};
use crate::core::layout::ShardLocation;
use crate::core::stripe::{BlockHash, Geometry, Profile};
use rkyv::{Archive, Deserialize, Serialize};

/// Magic of a sealed manifest.
pub const MANIFEST_MAGIC: [u8; 4] = *b"EXCM";
/// Magic of a shard header.
pub const SHARD_HEADER_MAGIC: [u8; 4] = *b"EXCS";
/// Current manifest format version (2: the commit order; 1 is still read, its order being its
/// version).
pub const MANIFEST_FORMAT: u16 = 2;
/// Current shard header format version.
pub const SHARD_HEADER_FORMAT: u16 = 1;
/// Length of the cleartext part of a sealed manifest (format 2; format 1's is 68 bytes, without
/// the order).
pub const MANIFEST_ENVELOPE_LEN: usize = 84;
/// Length of a format 1 envelope.
const MANIFEST_ENVELOPE_V1_LEN: usize = 68;
/// Length of the fixed part of a shard header.
pub const SHARD_HEADER_PREFIX_LEN: usize = 8;
/// Smallest block size accepted.
pub const MIN_BLOCK_SIZE: u32 = 64;
/// Largest block size accepted.
pub const MAX_BLOCK_SIZE: u32 = 64 << 20;
/// Largest object accepted by the formats (5 TiB, S3's limit).
pub const MAX_OBJECT_SIZE: u64 = 5 << 40;

/// Errors decoding or encoding a manifest or shard header.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    /// Too short to hold the envelope.
    #[error("truncated: {len} bytes, need at least {need}")]
    Truncated {
        /// Bytes given.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// Not this kind of record.
    #[error("bad magic {0:02x?}")]
    BadMagic([u8; 4]),
    /// A format version this build does not read.
    #[error("format version {0} is not supported (this build reads versions 1 and 2)")]
    UnsupportedVersion(u16),
    /// The sealed manifest does not authenticate under the manifest key.
    #[error("manifest failed authentication (wrong manifest key, or tampered)")]
    Unauthentic,
    /// The archive is not a valid rkyv archive of the expected type.
    #[error("malformed archive: {0}")]
    Malformed(String),
    /// The archive is well-formed but its contents are inconsistent.
    #[error("inconsistent record: {0}")]
    Inconsistent(&'static str),
}

/// One version of an object: the record from which the gateway reads it back.
#[derive(Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct Manifest {
    /// Bucket name.
    pub bucket: String,
    /// Object key.
    pub key: String,
    /// Opaque id of (bucket, key).
    pub object: ObjectId,
    /// The write's identity: stamped when the write began, bound into its data key and every
    /// stripe, and the key of its records at the nodes.
    pub version: Version,
    /// Wall-clock milliseconds at the gateway when written (S3 Last-Modified).
    pub created_ms: u64,
    /// The object, or a delete marker.
    pub body: ManifestBody,
    /// The version's place among the key's versions: stamped when its commit began, after its
    /// shards were durable, so a write whose commit begins after another was acknowledged is
    /// newer than it however long either took (`docs/decisions/version-order.md`). After
    /// `body` in the archive, so format 1's offsets stand.
    pub order: Version,
    /// What the version was written under and what protects it (format 2).
    pub state: VersionState,
}

/// A version's versioning and object lock state (`docs/decisions/versioning.md`).
#[derive(Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct VersionState {
    /// The bucket's versioning when the version was written: one written while it was not
    /// Enabled is the key's "null" version (the next such write replaces it), and a delete
    /// written while it was Unversioned is no delete marker, only the end of the key.
    pub written_under: Versioning,
    /// Removed by a DELETE of this version id: served and listed by nobody; its shards are
    /// the collector's.
    pub removed: bool,
    /// Object lock retention.
    pub retention: Option<Retention>,
    /// Object lock legal hold.
    pub legal_hold: bool,
    /// When `removed`, `retention` or `legal_hold` last changed (until then, the order): of
    /// two copies of one version, the later wins.
    pub revised: Version,
    /// On a bucket's own record (the empty key): the bucket's configuration.
    pub bucket: Option<BucketConfig>,
}

impl VersionState {
    /// A version of an unversioned bucket, unprotected, as first written at `order`.
    pub fn unversioned(order: Version) -> Self {
        Self::written(Versioning::Unversioned, order)
    }

    /// An unprotected version written under `under`, as first written at `order`.
    pub fn written(under: Versioning, order: Version) -> Self {
        Self {
            written_under: under,
            removed: false,
            retention: None,
            legal_hold: false,
            revised: order,
            bucket: None,
        }
    }
}

/// A bucket's versioning state (S3's: never back to Unversioned once Enabled).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub enum Versioning {
    /// Never enabled: every write replaces the key's one version.
    #[default]
    Unversioned,
    /// Every write is a new version.
    Enabled,
    /// Writes replace the key's null version; earlier versions are kept.
    Suspended,
}

/// S3 object lock retention modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub enum LockMode {
    /// Removable before its date only with the bypass permission and header.
    Governance,
    /// Removable before its date by nobody; extended, never shortened.
    Compliance,
}

/// A version's retention.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct Retention {
    /// Mode.
    pub mode: LockMode,
    /// Until when, milliseconds since the epoch on the cluster's clock.
    pub until_ms: u64,
}

/// A bucket's configuration, on its own record.
#[derive(Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct BucketConfig {
    /// Versioning.
    pub versioning: Versioning,
    /// Object lock enabled (at creation only; versioning is then Enabled for good).
    pub object_lock: bool,
    /// The retention a new version gets when its PUT names none.
    pub default_retention: Option<DefaultRetention>,
}

/// An object lock configuration's default retention: a mode and a period in days or years.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct DefaultRetention {
    /// Mode.
    pub mode: LockMode,
    /// Length of the period.
    pub period: u32,
    /// The period counts years (else days).
    pub years: bool,
}

/// A format 1 manifest: as [`Manifest`] without `order` (which is its version).
#[derive(Archive, Deserialize)]
struct ManifestV1 {
    bucket: String,
    key: String,
    object: ObjectId,
    version: Version,
    created_ms: u64,
    body: ManifestBody,
}

/// What a manifest records.
// Tombstones are rare and manifests are not moved in hot loops; boxing would add a pointer to
// the archived layout for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub enum ManifestBody {
    /// An object version with data.
    Object(ObjectMeta),
    /// A delete: the key has no current object from this version on.
    Tombstone,
    /// A multipart object completed by reference: its bytes are its parts' stored objects,
    /// read in order (`docs/decisions/multipart.md`). Appended to the enum, boxed: the
    /// archived layout of the other variants, and of format 2 records, is unchanged.
    Parts(Box<PartsBody>),
}

/// A multipart object completed by reference.
#[derive(Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct PartsBody {
    /// The whole as S3 sees it: size, Content-Type, metadata, headers, ETag (`-N`), checksums
    /// and part sizes. Its data fields (data key, geometry) are its first part's, and its
    /// placement and block hashes are empty: the bytes are the parts'.
    pub whole: ObjectMeta,
    /// The parts, in order.
    pub parts: Vec<PartRef>,
}

/// One part of an object completed by reference: the object UploadPart stored.
#[derive(Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct PartRef {
    /// The part's namespace (its upload's hidden bucket).
    pub bucket: String,
    /// The part's key there.
    pub key: String,
    /// Its object id.
    pub object: ObjectId,
    /// Its version (bound into its data key and every stripe).
    pub version: Version,
    /// Its record: data key, geometry, placement, block hashes, size, part ETag.
    pub meta: ObjectMeta,
}

/// Everything needed to serve and verify an object version.
#[derive(Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct ObjectMeta {
    /// Plaintext size in bytes.
    pub size: u64,
    /// Content-Type.
    pub content_type: Option<String>,
    /// `x-amz-meta-*` pairs, names lower-case without the prefix.
    pub user_metadata: Vec<(String, String)>,
    /// Other stored headers (Cache-Control, Content-Disposition, Content-Encoding,
    /// Content-Language, Expires), names lower-case.
    pub headers: Vec<(String, String)>,
    /// S3 ETag without quotes: hex MD5, or hex MD5-of-MD5s and `-N` for multipart.
    pub etag: String,
    /// Checksums the client sent or asked for.
    pub checksums: Vec<Checksum>,
    /// The data key, wrapped by the master key.
    pub dek: WrappedKey,
    /// Data shards per stripe.
    pub k: u8,
    /// Parity shards per stripe.
    pub m: u8,
    /// Block size B.
    pub block_size: u32,
    /// Layout epoch the placement was made under.
    pub layout_epoch: u64,
    /// Where shard i lives, for i in 0..k+m.
    pub placement: Vec<ShardLocation>,
    /// BLAKE3 of every block, stripe-major: stripe s, shard i at `s * (k + m) + i`.
    pub block_hashes: Vec<BlockHash>,
    /// Whether the shards ride inside the manifest records (small objects).
    pub inline: bool,
    /// Parts of a multipart upload (empty for a single PUT).
    pub parts: Vec<Part>,
}

/// A checksum of the whole object.
#[derive(Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct Checksum {
    /// Algorithm.
    pub algorithm: ChecksumAlgorithm,
    /// Raw digest bytes.
    pub value: Vec<u8>,
}

/// S3 checksum algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub enum ChecksumAlgorithm {
    /// CRC-32 (ISO-HDLC).
    Crc32,
    /// CRC-32C (Castagnoli).
    Crc32c,
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
}

/// One part of a multipart object.
#[derive(Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct Part {
    /// Part size in bytes.
    pub size: u64,
    /// Part ETag (hex MD5).
    pub etag: String,
}

impl ObjectMeta {
    /// The erasure profile, checked.
    pub fn profile(&self) -> Result<Profile, FormatError> {
        Profile::new(usize::from(self.k), usize::from(self.m))
            .map_err(|_| FormatError::Inconsistent("k and m do not form a usable profile"))
    }

    /// Stripe geometry.
    pub fn geometry(&self) -> Result<Geometry, FormatError> {
        Ok(Geometry {
            profile: self.profile()?,
            block_size: self.block_size,
            size: self.size,
        })
    }

    /// Hashes of stripe `s`'s k + m blocks.
    pub fn stripe_hashes(&self, s: u64) -> &[BlockHash] {
        let n = usize::from(self.k) + usize::from(self.m);
        let start = (s as usize).saturating_mul(n).min(self.block_hashes.len());
        let end = start.saturating_add(n).min(self.block_hashes.len());
        &self.block_hashes[start..end]
    }

    fn validate(&self) -> Result<(), FormatError> {
        let g = self.geometry()?;
        check_geometry(&g)?;
        let n = g.profile.n();
        if self.placement.len() != n {
            return Err(FormatError::Inconsistent(
                "placement does not have k + m entries",
            ));
        }
        if self.block_hashes.len() as u64 != g.stripe_count() * n as u64 {
            return Err(FormatError::Inconsistent(
                "block hashes do not cover every block",
            ));
        }
        Ok(())
    }
}

fn check_geometry(g: &Geometry) -> Result<(), FormatError> {
    if !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&g.block_size) {
        return Err(FormatError::Inconsistent("block size out of range"));
    }
    if g.size > MAX_OBJECT_SIZE {
        return Err(FormatError::Inconsistent("object size beyond 5 TiB"));
    }
    Ok(())
}

impl Manifest {
    /// How two copies of manifests order: by commit order; of two copies of one version, the
    /// later revised (a retention, hold or removal set since), then the one a key rotation
    /// re-wrapped (the newer master key generation).
    pub fn precedence(&self) -> (Version, Version, u32) {
        let generation = match &self.body {
            ManifestBody::Object(o) => o.dek.key_id,
            ManifestBody::Parts(p) => p
                .parts
                .iter()
                .map(|part| part.meta.dek.key_id)
                .max()
                .unwrap_or(0),
            ManifestBody::Tombstone => 0,
        };
        (self.order, self.state.revised, generation)
    }

    /// Serializes and seals the manifest. `nonce` must be fresh random bytes.
    pub fn seal(&self, key: &ManifestKey, nonce: [u8; 12]) -> Result<Vec<u8>, FormatError> {
        let archive = rkyv::to_bytes::<rancor::Error>(self)
            .map_err(|e| FormatError::Malformed(e.to_string()))?;
        let mut out = Vec::with_capacity(MANIFEST_ENVELOPE_LEN + archive.len() + TAG_LEN);
        out.extend_from_slice(&MANIFEST_MAGIC);
        out.extend_from_slice(&MANIFEST_FORMAT.to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.object.0);
        out.extend_from_slice(&self.version.to_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&self.order.to_bytes());
        out.extend_from_slice(&archive);
        let (aad, body) = out.split_at_mut(MANIFEST_ENVELOPE_LEN);
        let tag = key.aead().seal(nonce, aad, body);
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Opens and validates a sealed manifest.
    pub fn open(key: &ManifestKey, sealed: &[u8]) -> Result<Self, FormatError> {
        let env = ManifestEnvelope::parse(sealed)?;
        if sealed.len() < env.envelope_len() + TAG_LEN {
            return Err(FormatError::Truncated {
                len: sealed.len(),
                need: env.envelope_len() + TAG_LEN,
            });
        }
        let (aad, body) = sealed.split_at(env.envelope_len());
        let mut buf = body.to_vec();
        let plain = key
            .aead()
            .open(env.nonce, aad, &mut buf)
            .ok_or(FormatError::Unauthentic)?;
        let m = if env.format == 1 {
            Self::decode_archive_v1(plain)?
        } else {
            Self::decode_archive(plain)?
        };
        if m.object != env.object || m.version != env.version || m.order != env.order {
            return Err(FormatError::Inconsistent(
                "envelope and manifest disagree on id, version or order",
            ));
        }
        Ok(m)
    }

    /// Validates and deserializes a manifest archive (the plaintext inside the seal).
    pub fn decode_archive(archive: &[u8]) -> Result<Self, FormatError> {
        let m = rkyv::from_bytes::<Self, rancor::Error>(&aligned(archive))
            .map_err(|e| FormatError::Malformed(e.to_string()))?;
        m.body.validate()?;
        Ok(m)
    }

    /// As [`Manifest::decode_archive`] for a format 1 archive.
    fn decode_archive_v1(archive: &[u8]) -> Result<Self, FormatError> {
        let v1 = rkyv::from_bytes::<ManifestV1, rancor::Error>(&aligned(archive))
            .map_err(|e| FormatError::Malformed(e.to_string()))?;
        v1.body.validate()?;
        Ok(Self {
            bucket: v1.bucket,
            key: v1.key,
            object: v1.object,
            version: v1.version,
            created_ms: v1.created_ms,
            body: v1.body,
            order: v1.version,
            state: VersionState::unversioned(v1.version),
        })
    }

    /// The manifest archive, unsealed (what [`Manifest::decode_archive`] reads).
    pub fn encode_archive(&self) -> Result<Vec<u8>, FormatError> {
        rkyv::to_bytes::<rancor::Error>(self)
            .map(|a| a.to_vec())
            .map_err(|e| FormatError::Malformed(e.to_string()))
    }
}

impl ManifestBody {
    fn validate(&self) -> Result<(), FormatError> {
        match self {
            Self::Object(meta) => meta.validate(),
            Self::Tombstone => Ok(()),
            Self::Parts(p) => {
                if p.parts.is_empty() {
                    return Err(FormatError::Inconsistent("a multipart object with no part"));
                }
                for part in &p.parts {
                    part.meta.validate()?;
                }
                let sum = p
                    .parts
                    .iter()
                    .try_fold(0u64, |a, part| a.checked_add(part.meta.size))
                    .ok_or(FormatError::Inconsistent("parts beyond 5 TiB"))?;
                if sum != p.whole.size || sum > MAX_OBJECT_SIZE {
                    return Err(FormatError::Inconsistent(
                        "the parts do not add up to the object's size",
                    ));
                }
                if !p.whole.placement.is_empty() || !p.whole.block_hashes.is_empty() {
                    return Err(FormatError::Inconsistent(
                        "a multipart object by reference holds no blocks of its own",
                    ));
                }
                if p.whole.parts.len() != p.parts.len() {
                    return Err(FormatError::Inconsistent(
                        "the part list and the part references differ",
                    ));
                }
                Ok(())
            }
        }
    }

    /// What S3 sees of a version with data (None: a delete).
    pub fn meta(&self) -> Option<&ObjectMeta> {
        match self {
            Self::Object(meta) => Some(meta),
            Self::Parts(p) => Some(&p.whole),
            Self::Tombstone => None,
        }
    }

    /// [`Self::meta`], to change (a revision: tags).
    pub fn meta_mut(&mut self) -> Option<&mut ObjectMeta> {
        match self {
            Self::Object(meta) => Some(meta),
            Self::Parts(p) => Some(&mut p.whole),
            Self::Tombstone => None,
        }
    }

    /// The stored objects that hold the version's bytes, in order: itself (`object`,
    /// `version`), or each of its parts.
    pub fn pieces(&self, object: ObjectId, version: Version) -> Vec<Piece<'_>> {
        match self {
            Self::Object(meta) => vec![Piece {
                object,
                version,
                meta,
            }],
            Self::Parts(p) => p
                .parts
                .iter()
                .map(|part| Piece {
                    object: part.object,
                    version: part.version,
                    meta: &part.meta,
                })
                .collect(),
            Self::Tombstone => Vec::new(),
        }
    }
}

/// A stored object holding (some of) a version's bytes: the version itself, or a part.
#[derive(Clone, Copy, Debug)]
pub struct Piece<'a> {
    /// Its object id (its shards' and stripes').
    pub object: ObjectId,
    /// Its version.
    pub version: Version,
    /// Its record.
    pub meta: &'a ObjectMeta,
}

/// `archive` copied to memory aligned as rkyv needs.
fn aligned(archive: &[u8]) -> AlignedVec<16> {
    let mut buf = AlignedVec::with_capacity(archive.len());
    buf.extend_from_slice(archive);
    buf
}

/// The cleartext part of a sealed manifest, readable by nodes without any key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ManifestEnvelope {
    /// Format version.
    pub format: u16,
    /// Opaque object id.
    pub object: ObjectId,
    /// Version.
    pub version: Version,
    /// Nonce of the seal.
    pub nonce: [u8; 12],
    /// Commit order (format 1: the version), so that a node can order a key's versions.
    pub order: Version,
}

impl ManifestEnvelope {
    /// Reads the envelope of a sealed manifest (no key needed, nothing authenticated).
    pub fn parse(sealed: &[u8]) -> Result<Self, FormatError> {
        let head = sealed
            .get(..MANIFEST_ENVELOPE_V1_LEN)
            .ok_or(FormatError::Truncated {
                len: sealed.len(),
                need: MANIFEST_ENVELOPE_V1_LEN,
            })?;
        let magic = arr::<4>(&head[0..4]);
        if magic != MANIFEST_MAGIC {
            return Err(FormatError::BadMagic(magic));
        }
        let format = u16::from_le_bytes(arr(&head[4..6]));
        if !(1..=MANIFEST_FORMAT).contains(&format) {
            return Err(FormatError::UnsupportedVersion(format));
        }
        let version = Version::from_bytes(arr(&head[40..56]));
        let order = if format == 1 {
            version
        } else {
            let o = sealed
                .get(MANIFEST_ENVELOPE_V1_LEN..MANIFEST_ENVELOPE_LEN)
                .ok_or(FormatError::Truncated {
                    len: sealed.len(),
                    need: MANIFEST_ENVELOPE_LEN,
                })?;
            Version::from_bytes(arr(o))
        };
        Ok(Self {
            format,
            object: ObjectId(arr(&head[8..40])),
            version,
            nonce: arr(&head[56..68]),
            order,
        })
    }

    /// Length of the envelope (the associated data of the seal).
    pub fn envelope_len(&self) -> usize {
        if self.format == 1 {
            MANIFEST_ENVELOPE_V1_LEN
        } else {
            MANIFEST_ENVELOPE_LEN
        }
    }
}

fn arr<const N: usize>(s: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(s);
    a
}

/// The cleartext header a node keeps for each shard it stores.
#[derive(Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct ShardHeader {
    /// Opaque object id.
    pub object: ObjectId,
    /// Object version.
    pub version: Version,
    /// Which shard of each stripe this is.
    pub shard_index: ShardIndex,
    /// Data shards per stripe.
    pub k: u8,
    /// Parity shards per stripe.
    pub m: u8,
    /// Block size B.
    pub block_size: u32,
    /// Plaintext size of the object (gives the stripe geometry).
    pub size: u64,
    /// Layout epoch of the placement.
    pub layout_epoch: u64,
    /// Where every shard of the object lives (for repair).
    pub placement: Vec<ShardLocation>,
    /// CRC-32 of this shard's block in each stripe.
    pub crcs: Vec<u32>,
    /// BLAKE3 of every block of every stripe, stripe-major (as in the manifest), so a repairing
    /// node can verify the blocks it fetches from others.
    pub block_hashes: Vec<BlockHash>,
}

impl ShardHeader {
    /// Stripe geometry.
    pub fn geometry(&self) -> Result<Geometry, FormatError> {
        let profile = Profile::new(usize::from(self.k), usize::from(self.m))
            .map_err(|_| FormatError::Inconsistent("k and m do not form a usable profile"))?;
        Ok(Geometry {
            profile,
            block_size: self.block_size,
            size: self.size,
        })
    }

    /// Encodes the header.
    pub fn encode(&self) -> Result<Vec<u8>, FormatError> {
        let archive = rkyv::to_bytes::<rancor::Error>(self)
            .map_err(|e| FormatError::Malformed(e.to_string()))?;
        let mut out = Vec::with_capacity(SHARD_HEADER_PREFIX_LEN + archive.len());
        out.extend_from_slice(&SHARD_HEADER_MAGIC);
        out.extend_from_slice(&SHARD_HEADER_FORMAT.to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&archive);
        Ok(out)
    }

    /// Decodes and validates an untrusted header.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let head = bytes
            .get(..SHARD_HEADER_PREFIX_LEN)
            .ok_or(FormatError::Truncated {
                len: bytes.len(),
                need: SHARD_HEADER_PREFIX_LEN,
            })?;
        let magic = arr::<4>(&head[0..4]);
        if magic != SHARD_HEADER_MAGIC {
            return Err(FormatError::BadMagic(magic));
        }
        let format = u16::from_le_bytes(arr(&head[4..6]));
        if format != SHARD_HEADER_FORMAT {
            return Err(FormatError::UnsupportedVersion(format));
        }
        let h =
            rkyv::from_bytes::<Self, rancor::Error>(&aligned(&bytes[SHARD_HEADER_PREFIX_LEN..]))
                .map_err(|e| FormatError::Malformed(e.to_string()))?;
        let g = h.geometry()?;
        check_geometry(&g)?;
        let n = g.profile.n();
        if usize::from(h.shard_index.0) >= n {
            return Err(FormatError::Inconsistent("shard index beyond k + m"));
        }
        if h.placement.len() != n {
            return Err(FormatError::Inconsistent(
                "placement does not have k + m entries",
            ));
        }
        if h.crcs.len() as u64 != g.stripe_count() {
            return Err(FormatError::Inconsistent("one CRC per stripe expected"));
        }
        if h.block_hashes.len() as u64 != g.stripe_count() * n as u64 {
            return Err(FormatError::Inconsistent(
                "block hashes do not cover every block",
            ));
        }
        Ok(h)
    }
}
