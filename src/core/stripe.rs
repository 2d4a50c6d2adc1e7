//! The stripe pipeline, both ways.
//!
//! Write: plaintext stripe -> AES-256-GCM seal in place (nonce and associated data bind object
//! id, version, stripe index and the last-stripe flag) -> Reed-Solomon over GF(2^8) into k data
//! and m parity blocks -> CRC-32 and BLAKE3 per block.
//!
//! Read: every block offered is checked against its BLAKE3 hash; bad ones are excluded and
//! named; from any k good blocks the sealed stripe is rebuilt and opened. Fewer than k good
//! blocks, or a stripe that does not authenticate, is a typed error: never bytes.
//!
//! Geometry: a sealed stripe (plaintext + 16-byte tag) is cut into k blocks of equal length
//! `b = ceil(sealed / k)`, zero-padded. A full stripe carries `k * B - 16` plaintext bytes, so
//! its blocks are exactly B bytes. Every object has at least one stripe (an empty object is one
//! sealed empty stripe), so truncation to nothing is detected too.

use std::fmt;
use std::ops::Range;

use bytes::Bytes;
use reed_solomon_erasure::galois_8::ReedSolomon;

use crate::core::hlc::Version;
use crate::core::ids::{ObjectId, ShardIndex};
use crate::core::keys::{DataKey, TAG_LEN};
use rkyv::{Archive, Deserialize, Serialize};

/// Default block size B: blocks that fit a core's L2 cache code faster than 1 MiB ones.
pub const DEFAULT_BLOCK_SIZE: u32 = 256 * 1024;
/// Largest k + m (GF(2^8) allows 256; more than this many sites is not a deployment we test).
pub const MAX_SHARDS: usize = 64;

/// An erasure profile: k data and m parity shards per stripe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Profile {
    k: u8,
    m: u8,
}

/// A profile that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("erasure profile {k}+{m} is not usable: need k >= 1, m >= 1 and k + m <= {MAX_SHARDS}")]
pub struct ProfileError {
    /// Data shards asked for.
    pub k: usize,
    /// Parity shards asked for.
    pub m: usize,
}

impl Profile {
    /// A profile of `k` data and `m` parity shards.
    pub fn new(k: usize, m: usize) -> Result<Self, ProfileError> {
        if k == 0 || m == 0 || k + m > MAX_SHARDS {
            return Err(ProfileError { k, m });
        }
        Ok(Self {
            k: k as u8,
            m: m as u8,
        })
    }

    /// Data shards per stripe.
    pub fn k(self) -> usize {
        usize::from(self.k)
    }

    /// Parity shards per stripe.
    pub fn m(self) -> usize {
        usize::from(self.m)
    }

    /// Shards per stripe.
    pub fn n(self) -> usize {
        self.k() + self.m()
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}+{}", self.k, self.m)
    }
}

/// How an object of `size` bytes is cut into stripes and blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Erasure profile.
    pub profile: Profile,
    /// Block size B of a full stripe.
    pub block_size: u32,
    /// Plaintext size of the object.
    pub size: u64,
}

impl Geometry {
    /// Plaintext bytes in a full stripe: `k * B - 16`.
    pub fn stripe_capacity(&self) -> u64 {
        (self.profile.k() as u64 * u64::from(self.block_size)).saturating_sub(TAG_LEN as u64)
    }

    /// Number of stripes (at least 1).
    pub fn stripe_count(&self) -> u64 {
        self.size.div_ceil(self.stripe_capacity().max(1)).max(1)
    }

    /// Plaintext length of stripe `i`.
    pub fn stripe_len(&self, i: u64) -> usize {
        let cap = self.stripe_capacity();
        let start = i.saturating_mul(cap).min(self.size);
        (self.size - start).min(cap) as usize
    }

    /// Plaintext byte range of stripe `i` within the object.
    pub fn stripe_range(&self, i: u64) -> Range<u64> {
        let start = i.saturating_mul(self.stripe_capacity());
        start..start + self.stripe_len(i) as u64
    }

    /// Block length of stripe `i`.
    pub fn block_len(&self, i: u64) -> usize {
        block_len(self.stripe_len(i), self.profile.k())
    }

    /// The stripes holding plaintext bytes `range` (end exclusive, within the object).
    pub fn stripes_for(&self, range: Range<u64>) -> Range<u64> {
        let cap = self.stripe_capacity().max(1);
        if range.start >= range.end {
            return 0..0;
        }
        range.start / cap..(range.end - 1) / cap + 1
    }

    /// Bytes of one shard (its blocks of every stripe).
    pub fn shard_len(&self) -> u64 {
        let n = self.stripe_count();
        (n - 1) * u64::from(self.block_size) + self.block_len(n - 1) as u64
    }

    /// Byte offset of stripe `i`'s block within a shard.
    pub fn block_offset(&self, i: u64) -> u64 {
        i * u64::from(self.block_size)
    }
}

fn block_len(plain_len: usize, k: usize) -> usize {
    (plain_len + TAG_LEN).div_ceil(k)
}

/// What a stripe's seal is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StripeContext {
    /// Object.
    pub object: ObjectId,
    /// Version of the object.
    pub version: Version,
    /// Stripe index within the object.
    pub index: u64,
    /// Whether this is the object's last stripe.
    pub last: bool,
}

impl StripeContext {
    fn nonce(&self) -> [u8; 12] {
        let mut n = [0u8; 12];
        n[..8].copy_from_slice(&self.index.to_be_bytes());
        n[11] = u8::from(self.last);
        n
    }

    fn aad(&self) -> [u8; 17 + 32 + Version::LEN + 9] {
        let mut a = [0u8; 17 + 32 + Version::LEN + 9];
        a[..17].copy_from_slice(b"exclave stripe v1");
        a[17..49].copy_from_slice(&self.object.0);
        a[49..65].copy_from_slice(&self.version.to_bytes());
        a[65..73].copy_from_slice(&self.index.to_be_bytes());
        a[73] = u8::from(self.last);
        a
    }
}

/// BLAKE3 hash of one block.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Archive, Serialize, Deserialize)]
pub struct BlockHash(pub [u8; 32]);

impl BlockHash {
    /// The hash of `block`.
    pub fn of(block: &[u8]) -> Self {
        Self(*blake3::hash(block).as_bytes())
    }
}

impl fmt::Debug for BlockHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlockHash({})", crate::core::ids::hex(&self.0[..8]))
    }
}

/// A block whose BLAKE3 matched the hash it must have. Only [`VerifiedBlock::verify`] makes
/// one, so code that holds it need not hash it again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedBlock(Bytes);

impl VerifiedBlock {
    /// Checks `block` against `expected`; gives the block back if it does not match.
    pub fn verify(block: Bytes, expected: &BlockHash) -> Result<Self, Bytes> {
        if BlockHash::of(&block) == *expected {
            Ok(Self(block))
        } else {
            Err(block)
        }
    }

    /// The bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }
}

/// One stripe, sealed and coded: `blocks[i]` goes to shard i.
#[derive(Clone, Debug)]
pub struct EncodedStripe {
    /// k data blocks then m parity blocks, all the same length.
    pub blocks: Vec<Bytes>,
    /// CRC-32 of each block.
    pub crcs: Vec<u32>,
    /// BLAKE3 of each block.
    pub hashes: Vec<BlockHash>,
}

/// A stripe opened back to plaintext.
#[derive(Clone, Debug)]
pub struct OpenedStripe {
    /// The exact plaintext.
    pub plaintext: Vec<u8>,
    /// Blocks that were offered but did not match their hash (to be repaired).
    pub bad: Vec<ShardIndex>,
}

/// Errors of [`Codec::encode`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncodeError {
    /// More plaintext than a stripe holds.
    #[error("stripe of {len} bytes exceeds the stripe capacity of {capacity} bytes")]
    TooLarge {
        /// Plaintext length given.
        len: usize,
        /// Capacity of a stripe.
        capacity: usize,
    },
}

/// Errors of [`Codec::decode`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer than k blocks matched their hashes.
    #[error("only {good} good blocks of the {needed} needed (bad: {bad:?})")]
    NotEnoughBlocks {
        /// Blocks that matched their hash.
        good: usize,
        /// k.
        needed: usize,
        /// Blocks offered that did not match.
        bad: Vec<ShardIndex>,
    },
    /// The block or hash list does not have k + m entries, or the plaintext length does not fit
    /// the profile.
    #[error("stripe shape does not match the profile: {0}")]
    Shape(&'static str),
    /// The rebuilt stripe does not authenticate: wrong key, object, version, index, or a stripe
    /// swapped, reordered or truncated.
    #[error("stripe failed authentication")]
    Unauthentic,
}

/// Seals, codes, verifies and opens stripes for one erasure profile. Cheap to share.
pub struct Codec {
    profile: Profile,
    rs: ReedSolomon,
}

impl fmt::Debug for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Codec({})", self.profile)
    }
}

impl Codec {
    /// A codec for `profile`.
    pub fn new(profile: Profile) -> Self {
        // Profile::new guarantees 1 <= k, 1 <= m, k + m <= 64: always a valid RS code.
        #[allow(clippy::expect_used)]
        let rs = ReedSolomon::new(profile.k(), profile.m()).expect("valid profile");
        Self { profile, rs }
    }

    /// The profile.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// Seals and codes one stripe. `plaintext` is sealed in place; give it a capacity of
    /// `k * B` to avoid a reallocation.
    pub fn encode(
        &self,
        key: &DataKey,
        ctx: &StripeContext,
        mut plaintext: Vec<u8>,
        block_size: u32,
    ) -> Result<EncodedStripe, EncodeError> {
        let k = self.profile.k();
        let len = plaintext.len();
        let capacity = k * block_size as usize - TAG_LEN;
        if len > capacity {
            return Err(EncodeError::TooLarge { len, capacity });
        }
        let b = block_len(len, k);
        plaintext.resize(k * b, 0);
        let tag = key
            .aead()
            .seal(ctx.nonce(), &ctx.aad(), &mut plaintext[..len]);
        plaintext[len..len + TAG_LEN].copy_from_slice(&tag);
        let sealed = Bytes::from(plaintext);

        let mut blocks: Vec<Bytes> = (0..k).map(|i| sealed.slice(i * b..(i + 1) * b)).collect();
        let mut parity: Vec<Vec<u8>> = (0..self.profile.m()).map(|_| vec![0u8; b]).collect();
        // Shapes are right by construction (k inputs, m outputs, all of length b > 0).
        if self.rs.encode_sep(&blocks, &mut parity).is_err() {
            unreachable!("RS shapes are fixed by the profile");
        }
        blocks.extend(parity.into_iter().map(Bytes::from));
        let crcs = blocks.iter().map(|b| crc32fast::hash(b)).collect();
        let hashes = blocks.iter().map(|b| BlockHash::of(b)).collect();
        Ok(EncodedStripe {
            blocks,
            crcs,
            hashes,
        })
    }

    /// Verifies the blocks offered, rebuilds the sealed stripe from k good ones and opens it.
    ///
    /// `blocks[i]` is shard i's block or `None` if it was not fetched; `hashes[i]` is what the
    /// manifest says it must hash to. Every block offered is checked; those that fail are
    /// excluded and named in the result (or the error).
    pub fn decode(
        &self,
        key: &DataKey,
        ctx: &StripeContext,
        plain_len: usize,
        blocks: &[Option<Bytes>],
        hashes: &[BlockHash],
    ) -> Result<OpenedStripe, DecodeError> {
        if blocks.len() != self.profile.n() || hashes.len() != self.profile.n() {
            return Err(DecodeError::Shape("need one slot and one hash per shard"));
        }
        let mut bad = Vec::new();
        let verified: Vec<Option<VerifiedBlock>> = blocks
            .iter()
            .zip(hashes)
            .enumerate()
            .map(|(i, (block, hash))| {
                let block = block.clone()?;
                VerifiedBlock::verify(block, hash)
                    .map_err(|_| bad.push(ShardIndex(i as u8)))
                    .ok()
            })
            .collect();
        match self.open_verified(key, ctx, plain_len, &verified) {
            Ok(mut opened) => {
                bad.extend(opened.bad);
                bad.sort_unstable();
                opened.bad = bad;
                Ok(opened)
            }
            Err(DecodeError::NotEnoughBlocks {
                good,
                needed,
                bad: wrong_len,
            }) => {
                bad.extend(wrong_len);
                bad.sort_unstable();
                Err(DecodeError::NotEnoughBlocks { good, needed, bad })
            }
            Err(e) => Err(e),
        }
    }

    /// Rebuilds the sealed stripe from k blocks already checked against their hashes and
    /// opens it. A verified block of the wrong length (a manifest at odds with the geometry)
    /// is excluded and named.
    pub fn open_verified(
        &self,
        key: &DataKey,
        ctx: &StripeContext,
        plain_len: usize,
        blocks: &[Option<VerifiedBlock>],
    ) -> Result<OpenedStripe, DecodeError> {
        self.open_verified_into(key, ctx, plain_len, blocks, Vec::new())
    }

    /// [`Self::open_verified`] into `buf` (emptied first; a buffer with room for the k data
    /// blocks is used as it is, so a reader can hand the same memory out stripe after stripe).
    pub fn open_verified_into(
        &self,
        key: &DataKey,
        ctx: &StripeContext,
        plain_len: usize,
        blocks: &[Option<VerifiedBlock>],
        mut buf: Vec<u8>,
    ) -> Result<OpenedStripe, DecodeError> {
        buf.clear();
        let (k, n) = (self.profile.k(), self.profile.n());
        if blocks.len() != n {
            return Err(DecodeError::Shape("need one slot per shard"));
        }
        let b = block_len(plain_len, k);
        let mut good = Vec::with_capacity(k);
        let mut bad = Vec::new();
        for (i, block) in blocks.iter().enumerate() {
            match block {
                Some(v) if v.0.len() == b => good.push(i),
                Some(_) => bad.push(ShardIndex(i as u8)),
                None => {}
            }
        }
        if good.len() < k {
            return Err(DecodeError::NotEnoughBlocks {
                good: good.len(),
                needed: k,
                bad,
            });
        }
        good.truncate(k);

        let mut sealed = if good.iter().enumerate().all(|(slot, &i)| slot == i) {
            // All data blocks are here: no decoding, one copy into a contiguous buffer.
            buf.reserve_exact(k * b);
            for block in blocks[..k].iter().flatten() {
                buf.extend_from_slice(&block.0);
            }
            buf
        } else {
            self.reconstruct(blocks, &good, b, buf)?
        };

        let sealed_len = plain_len + TAG_LEN;
        if sealed[sealed_len..].iter().any(|&p| p != 0) {
            return Err(DecodeError::Unauthentic);
        }
        let plain = key
            .aead()
            .open(ctx.nonce(), &ctx.aad(), &mut sealed[..sealed_len])
            .ok_or(DecodeError::Unauthentic)?;
        debug_assert_eq!(plain.len(), plain_len);
        sealed.truncate(plain_len);
        Ok(OpenedStripe {
            plaintext: sealed,
            bad,
        })
    }

    /// Rebuilds the blocks of shards `want` (data or parity) of one stripe from at least k
    /// blocks already checked against their hashes; no key is needed: this works on the sealed
    /// bytes (keyless repair). Every offered block must have the stripe's block length.
    pub fn rebuild(
        &self,
        blocks: &[Option<VerifiedBlock>],
        want: &[usize],
    ) -> Result<Vec<Bytes>, DecodeError> {
        let (k, n) = (self.profile.k(), self.profile.n());
        if blocks.len() != n || want.iter().any(|&i| i >= n) {
            return Err(DecodeError::Shape("need one slot per shard"));
        }
        let len = blocks
            .iter()
            .flatten()
            .map(|b| b.0.len())
            .next()
            .unwrap_or(0);
        let bad: Vec<ShardIndex> = blocks
            .iter()
            .enumerate()
            .filter(|(_, b)| b.as_ref().is_some_and(|b| b.0.len() != len))
            .map(|(i, _)| ShardIndex(i as u8))
            .collect();
        let mut shards: Vec<Option<Vec<u8>>> = blocks
            .iter()
            .map(|b| {
                b.as_ref()
                    .filter(|b| b.0.len() == len)
                    .map(|b| b.0.to_vec())
            })
            .collect();
        let good = shards.iter().filter(|s| s.is_some()).count();
        if good < k {
            return Err(DecodeError::NotEnoughBlocks {
                good,
                needed: k,
                bad,
            });
        }
        self.rs
            .reconstruct(&mut shards)
            .map_err(|_| DecodeError::Shape("reconstruction refused the blocks"))?;
        want.iter()
            .map(|&i| {
                shards[i]
                    .take()
                    .map(Bytes::from)
                    .ok_or(DecodeError::Shape("a rebuilt block is missing"))
            })
            .collect()
    }

    /// Rebuilds the k data blocks from the k good blocks `good` into one buffer.
    fn reconstruct(
        &self,
        blocks: &[Option<VerifiedBlock>],
        good: &[usize],
        b: usize,
        mut buf: Vec<u8>,
    ) -> Result<Vec<u8>, DecodeError> {
        let (k, n) = (self.profile.k(), self.profile.n());
        // One buffer: the k data slots (good blocks copied in, missing ones to be filled),
        // then the good parity blocks used. Each byte is written once.
        let parity_used: Vec<usize> = good.iter().copied().filter(|&i| i >= k).collect();
        buf.reserve_exact((k + parity_used.len()) * b);
        for (i, block) in blocks[..k].iter().enumerate() {
            match (block, good.contains(&i)) {
                (Some(block), true) => buf.extend_from_slice(&block.0),
                _ => buf.resize(buf.len() + b, 0),
            }
        }
        for &i in &parity_used {
            if let Some(block) = &blocks[i] {
                buf.extend_from_slice(&block.0);
            }
        }
        let (data, parity) = buf.split_at_mut(k * b);
        let mut slots: Vec<(&mut [u8], bool)> = Vec::with_capacity(n);
        for (i, chunk) in data.chunks_mut(b).enumerate() {
            slots.push((chunk, good.contains(&i)));
        }
        let mut parity_chunks = parity.chunks_mut(b);
        for i in k..n {
            // Parity slots not used stay empty: reconstruct_data never touches them.
            match parity_used
                .contains(&i)
                .then(|| parity_chunks.next())
                .flatten()
            {
                Some(chunk) => slots.push((chunk, true)),
                None => slots.push((&mut [], false)),
            }
        }
        self.rs
            .reconstruct_data(&mut slots)
            .map_err(|_| DecodeError::Shape("reconstruction refused the blocks"))?;
        drop(slots);
        buf.truncate(k * b);
        Ok(buf)
    }
}

/// Splits an object's plaintext into stripes and encodes each: for tests, benches and small
/// objects that are in memory anyway. Large objects are streamed stripe by stripe instead.
pub fn encode_object(
    codec: &Codec,
    key: &DataKey,
    object: ObjectId,
    version: Version,
    block_size: u32,
    data: &[u8],
) -> Result<Vec<EncodedStripe>, EncodeError> {
    let g = Geometry {
        profile: codec.profile(),
        block_size,
        size: data.len() as u64,
    };
    let n = g.stripe_count();
    (0..n)
        .map(|i| {
            let r = g.stripe_range(i);
            let mut buf = Vec::with_capacity(codec.profile().k() * block_size as usize);
            buf.extend_from_slice(&data[r.start as usize..r.end as usize]);
            let ctx = StripeContext {
                object,
                version,
                index: i,
                last: i + 1 == n,
            };
            codec.encode(key, &ctx, buf, block_size)
        })
        .collect()
}
