//! "Any k of the k + m blocks give back identical bytes", and the ways reading must fail.

use bytes::Bytes;
use proptest::prelude::*;

use super::{TestRng, oid, version};
use crate::core::ids::ShardIndex;
use crate::core::keys::DataKey;
use crate::core::stripe::{
    Codec, DecodeError, EncodedStripe, Geometry, Profile, StripeContext, VerifiedBlock,
    encode_object,
};

struct Case {
    codec: Codec,
    key: DataKey,
    geometry: Geometry,
    data: Vec<u8>,
    stripes: Vec<EncodedStripe>,
}

impl Case {
    fn new(k: usize, m: usize, block_size: u32, size_kind: usize, seed: u64) -> Self {
        let profile = Profile::new(k, m).unwrap();
        let codec = Codec::new(profile);
        let mut rng = TestRng::new(seed);
        let cap = k as u64 * u64::from(block_size) - 16;
        let b = u64::from(block_size);
        let sizes = [
            0,
            1,
            b - 1,
            b,
            b + 1,
            cap - 1,
            cap,
            cap + 1,
            2 * cap + 17,
            3 * cap,
        ];
        let size = sizes[size_kind % sizes.len()];
        let data = rng.bytes(size as usize);
        let mut kb = [0u8; 32];
        rng.fill(&mut kb);
        let key = DataKey::from_bytes(kb);
        let stripes = encode_object(&codec, &key, oid(1), version(10), block_size, &data).unwrap();
        let geometry = Geometry {
            profile,
            block_size,
            size,
        };
        assert_eq!(stripes.len() as u64, geometry.stripe_count());
        Self {
            codec,
            key,
            geometry,
            data,
            stripes,
        }
    }

    fn ctx(&self, i: u64) -> StripeContext {
        StripeContext {
            object: oid(1),
            version: version(10),
            index: i,
            last: i + 1 == self.geometry.stripe_count(),
        }
    }

    fn offer(&self, s: usize, present: &[usize]) -> Vec<Option<Bytes>> {
        let mut v = vec![None; self.geometry.profile.n()];
        for &i in present {
            v[i] = Some(self.stripes[s].blocks[i].clone());
        }
        v
    }

    fn decode(
        &self,
        s: usize,
        ctx: &StripeContext,
        blocks: &[Option<Bytes>],
    ) -> Result<(Vec<u8>, Vec<ShardIndex>), DecodeError> {
        self.codec
            .decode(
                &self.key,
                ctx,
                self.geometry.stripe_len(s as u64),
                blocks,
                &self.stripes[s].hashes,
            )
            .map(|o| (o.plaintext, o.bad))
    }

    /// [`Self::offer`], each block checked against its hash.
    fn verified_offer(&self, s: usize, present: &[usize]) -> Vec<Option<VerifiedBlock>> {
        self.offer(s, present)
            .into_iter()
            .zip(&self.stripes[s].hashes)
            .map(|(b, h)| b.map(|b| VerifiedBlock::verify(b, h).unwrap()))
            .collect()
    }

    fn expected(&self, s: usize) -> &[u8] {
        let r = self.geometry.stripe_range(s as u64);
        &self.data[r.start as usize..r.end as usize]
    }
}

fn params() -> impl Strategy<Value = (usize, usize, u32, usize, u64)> {
    (
        1usize..=16,
        1usize..=8,
        prop::sample::select(vec![64u32, 100, 256, 1024]),
        0usize..10,
        any::<u64>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn any_k_blocks_give_back_identical_bytes((k, m, bs, size, seed) in params()) {
        let c = Case::new(k, m, bs, size, seed);
        let mut rng = TestRng::new(seed ^ 1);
        let mut joined = Vec::new();
        for s in 0..c.stripes.len() {
            let chosen = rng.subset(k + m, k);
            let (plain, bad) = c.decode(s, &c.ctx(s as u64), &c.offer(s, &chosen)).unwrap();
            prop_assert!(bad.is_empty());
            prop_assert_eq!(&plain[..], c.expected(s));
            joined.extend_from_slice(&plain);
        }
        prop_assert_eq!(joined, c.data);
    }

    #[test]
    fn a_stripe_opened_into_a_used_buffer_is_exact((k, m, bs, size, seed) in params()) {
        // A reader hands the same buffers out stripe after stripe: what they held before, too
        // short or too long, never shows.
        let c = Case::new(k, m, bs, size, seed);
        let mut rng = TestRng::new(seed ^ 7);
        for s in 0..c.stripes.len() {
            let chosen = rng.subset(k + m, k);
            let offer = c.verified_offer(s, &chosen);
            let used = vec![0xA5u8; 1 + rng.index(3 * c.data.len() + 64)];
            let ctx = c.ctx(s as u64);
            let plain_len = c.geometry.stripe_len(s as u64);
            let opened = c.codec.open_verified_into(&c.key, &ctx, plain_len, &offer, used).unwrap();
            prop_assert_eq!(&opened.plaintext[..], c.expected(s));
        }
    }

    #[test]
    fn keyless_rebuild_restores_any_m_missing_blocks_exactly((k, m, bs, size, seed) in params()) {
        let c = Case::new(k, m, bs, size, seed);
        let mut rng = TestRng::new(seed ^ 5);
        for s in 0..c.stripes.len() {
            let present = rng.subset(k + m, k);
            let want: Vec<usize> = (0..k + m).filter(|i| !present.contains(i)).collect();
            let offer = c.verified_offer(s, &present);
            let rebuilt = c.codec.rebuild(&offer, &want).unwrap();
            for (j, &i) in want.iter().enumerate() {
                prop_assert_eq!(&rebuilt[j], &c.stripes[s].blocks[i]);
            }
            let fewer: Vec<Option<VerifiedBlock>> = offer
                .into_iter()
                .enumerate()
                .map(|(i, b)| if Some(&i) == present.first() { None } else { b })
                .collect();
            prop_assert!(c.codec.rebuild(&fewer, &want).is_err());
        }
    }

    #[test]
    fn m_plus_one_erasures_are_a_typed_error((k, m, bs, size, seed) in params()) {
        let c = Case::new(k, m, bs, size, seed);
        let mut rng = TestRng::new(seed ^ 2);
        for s in 0..c.stripes.len() {
            let present = rng.subset(k + m, k - 1);
            let err = c.decode(s, &c.ctx(s as u64), &c.offer(s, &present)).unwrap_err();
            prop_assert_eq!(err, DecodeError::NotEnoughBlocks { good: k - 1, needed: k, bad: vec![] });
        }
    }

    #[test]
    fn up_to_m_corrupt_blocks_are_named_and_bypassed((k, m, bs, size, seed) in params()) {
        let c = Case::new(k, m, bs, size, seed);
        let mut rng = TestRng::new(seed ^ 3);
        for s in 0..c.stripes.len() {
            let count = 1 + rng.index(m);
            let corrupt = rng.subset(k + m, count);
            let mut blocks = c.offer(s, &(0..k + m).collect::<Vec<_>>());
            for &i in &corrupt {
                let mut b = blocks[i].take().unwrap().to_vec();
                let at = rng.index(b.len());
                b[at] ^= 1 << rng.index(8);
                blocks[i] = Some(Bytes::from(b));
            }
            let (plain, mut bad) = c.decode(s, &c.ctx(s as u64), &blocks).unwrap();
            prop_assert_eq!(&plain[..], c.expected(s));
            let mut want: Vec<ShardIndex> = corrupt.iter().map(|&i| ShardIndex(i as u8)).collect();
            want.sort();
            bad.sort();
            prop_assert_eq!(bad, want);
        }
    }

    #[test]
    fn moved_or_truncated_stripes_fail_authentication((k, m, bs, size, seed) in params()) {
        let c = Case::new(k, m, bs, size, seed);
        let all: Vec<usize> = (0..k + m).collect();
        let n = c.stripes.len();
        let last = n - 1;
        // Another version or another object.
        let mut ctx = c.ctx(last as u64);
        ctx.version = version(11);
        prop_assert_eq!(c.decode(last, &ctx, &c.offer(last, &all)), Err(DecodeError::Unauthentic));
        let mut ctx = c.ctx(last as u64);
        ctx.object = oid(2);
        prop_assert_eq!(c.decode(last, &ctx, &c.offer(last, &all)), Err(DecodeError::Unauthentic));
        // The last stripe read as if more followed it.
        let mut ctx = c.ctx(last as u64);
        ctx.last = false;
        prop_assert_eq!(c.decode(last, &ctx, &c.offer(last, &all)), Err(DecodeError::Unauthentic));
        if n >= 2 {
            // Dropping the last stripe: the one before it read as the last.
            let mut ctx = c.ctx(last as u64 - 1);
            ctx.last = true;
            prop_assert_eq!(
                c.decode(last - 1, &ctx, &c.offer(last - 1, &all)),
                Err(DecodeError::Unauthentic)
            );
            // Swapping two stripes: stripe 0's blocks (with their own hashes) at index 1.
            let ctx1 = c.ctx(1);
            let swapped = c.codec.decode(
                &c.key,
                &ctx1,
                c.geometry.stripe_len(0),
                &c.offer(0, &all),
                &c.stripes[0].hashes,
            );
            prop_assert_eq!(swapped.map(|o| o.plaintext), Err(DecodeError::Unauthentic));
        }
    }
}

#[test]
fn a_block_of_the_wrong_length_is_bad_not_a_panic() {
    let c = Case::new(3, 2, 256, 8, 5);
    let mut blocks = c.offer(0, &[0, 1, 2, 3, 4]);
    blocks[1] = Some(Bytes::from_static(b"short"));
    let (plain, bad) = c.decode(0, &c.ctx(0), &blocks).unwrap();
    assert_eq!(plain, c.expected(0));
    assert_eq!(bad, vec![ShardIndex(1)]);
    assert!(matches!(
        c.decode(0, &c.ctx(0), &blocks[..4]),
        Err(DecodeError::Shape(_))
    ));
}

#[test]
fn full_stripes_have_blocks_of_exactly_the_block_size() {
    let c = Case::new(4, 2, 1024, 9, 6);
    assert_eq!(c.stripes.len(), 3);
    for s in &c.stripes {
        assert!(s.blocks.iter().all(|b| b.len() == 1024));
        for (b, crc) in s.blocks.iter().zip(&s.crcs) {
            assert_eq!(crc32fast::hash(b), *crc);
        }
    }
    assert_eq!(c.geometry.shard_len(), 3 * 1024);
    assert_eq!(c.geometry.stripes_for(0..1), 0..1);
    assert_eq!(c.geometry.stripes_for(4079..4081), 0..2);
    assert_eq!(c.geometry.stripes_for(5..5), 0..0);
}
