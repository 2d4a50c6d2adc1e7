//! Each stage of the stripe pipeline alone, and the whole pipeline both ways, against memcpy
//! of the same buffers measured in the same run.
//!
//! `cargo bench --bench core`; `python3 benches/report.py` turns the results into the README
//! table. Throughput is counted in plaintext bytes of one stripe (k * B - 16).

// A bench that cannot set itself up should stop loudly.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use exclave::core::hlc::Version;
use exclave::core::ids::{GatewayId, ObjectId};
use exclave::core::keys::DataKey;
use exclave::core::stripe::{BlockHash, Codec, Profile, StripeContext};
use reed_solomon_erasure::galois_8::ReedSolomon;

const BLOCKS: [u32; 3] = [64 << 10, 256 << 10, 1 << 20];
const STREAM_BYTES: usize = 256 << 20;
const PROFILES: [(usize, usize); 3] = [(3, 2), (4, 2), (10, 4)];

fn data(len: usize) -> Vec<u8> {
    let mut x = 0x1234_5678_9abc_def0u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn ctx() -> StripeContext {
    StripeContext {
        object: ObjectId([7; 32]),
        version: Version {
            physical_ms: 1,
            logical: 0,
            gateway: GatewayId(1),
        },
        index: 0,
        last: false,
    }
}

fn stages(c: &mut Criterion) {
    let key = DataKey::from_bytes([9; 32]);
    for (k, m) in PROFILES {
        let profile = Profile::new(k, m).unwrap();
        let codec = Codec::new(profile);
        let rs = ReedSolomon::new(k, m).unwrap();
        let mut g = c.benchmark_group(format!("core/{k}+{m}"));
        g.sample_size(20);
        g.warm_up_time(std::time::Duration::from_millis(300));
        g.measurement_time(std::time::Duration::from_millis(1200));
        for bs in BLOCKS {
            let b = bs as usize;
            let plain_len = k * b - 16;
            let plain = data(plain_len);
            g.throughput(Throughput::Bytes(plain_len as u64));
            let id = |what: &str| BenchmarkId::new(what, format!("{}KiB", bs >> 10));

            let mut dst = vec![0u8; plain_len];
            g.bench_function(id("memcpy"), |bench| {
                bench.iter(|| dst.copy_from_slice(black_box(&plain)));
            });
            // The same copy, stripe by stripe through 2 x 256 MiB, so both ends come from and
            // go to DRAM, as an object streaming through the gateway does.
            let chunks = (STREAM_BYTES / plain_len).max(1);
            let (src, mut sink) = (data(chunks * plain_len), vec![0u8; chunks * plain_len]);
            let mut at = 0;
            g.bench_function(id("memcpy-dram"), |bench| {
                bench.iter(|| {
                    let r = at * plain_len..(at + 1) * plain_len;
                    sink[r.clone()].copy_from_slice(black_box(&src[r]));
                    at = (at + 1) % chunks;
                });
            });
            drop((src, sink));

            let aead = aws_lc_rs::aead::LessSafeKey::new(
                aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, &[9; 32]).unwrap(),
            );
            let mut buf = plain.clone();
            g.bench_function(id("aes-256-gcm-seal"), |bench| {
                bench.iter(|| {
                    aead.seal_in_place_separate_tag(
                        aws_lc_rs::aead::Nonce::assume_unique_for_key([0; 12]),
                        aws_lc_rs::aead::Aad::from(&[1u8; 74][..]),
                        black_box(&mut buf),
                    )
                    .unwrap()
                });
            });

            let shards: Vec<Vec<u8>> = (0..k)
                .map(|i| {
                    plain[..b - 16]
                        .iter()
                        .map(|x| x ^ i as u8)
                        .chain([0; 16])
                        .collect()
                })
                .collect();
            let mut parity: Vec<Vec<u8>> = (0..m).map(|_| vec![0u8; b]).collect();
            g.bench_function(id("rs-encode"), |bench| {
                bench.iter(|| rs.encode_sep(black_box(&shards), &mut parity).unwrap());
            });

            let all: Vec<Vec<u8>> = shards.iter().chain(&parity).cloned().collect();
            g.bench_function(id("crc32-all-blocks"), |bench| {
                bench.iter(|| {
                    all.iter()
                        .map(|s| crc32fast::hash(black_box(s)))
                        .fold(0u32, |a, h| a ^ h)
                });
            });
            g.bench_function(id("blake3-all-blocks"), |bench| {
                bench.iter(|| {
                    all.iter()
                        .map(|s| BlockHash::of(black_box(s)).0[0])
                        .fold(0u8, |a, h| a ^ h)
                });
            });

            // The S3 ETag: MD5 of the plaintext, run by the gateway on its own thread,
            // overlapped with sealing and coding.
            g.bench_function(id("md5-etag"), |bench| {
                bench.iter(|| {
                    use md5::Digest as _;
                    md5::Md5::digest(black_box(&plain))
                });
            });

            // The SigV4 payload hash: `s3s` checks a signed body's SHA-256 as it arrives.
            g.bench_function(id("sha256-payload"), |bench| {
                bench.iter(|| {
                    use s3s::crypto::Checksum as _;
                    s3s::crypto::Sha256::checksum(black_box(&plain))
                });
            });

            g.bench_function(id("encode-pipeline"), |bench| {
                bench.iter_batched(
                    || {
                        let mut v = Vec::with_capacity(k * b);
                        v.extend_from_slice(&plain);
                        v
                    },
                    |v| codec.encode(&key, &ctx(), v, bs).unwrap(),
                    BatchSize::LargeInput,
                );
            });

            let enc = codec.encode(&key, &ctx(), plain.clone(), bs).unwrap();
            let data_only: Vec<Option<Bytes>> = (0..k + m)
                .map(|i| (i < k).then(|| enc.blocks[i].clone()))
                .collect();
            g.bench_function(id("decode-0-missing"), |bench| {
                bench.iter(|| {
                    codec
                        .decode(&key, &ctx(), plain_len, black_box(&data_only), &enc.hashes)
                        .unwrap()
                });
            });
            // m data blocks missing: the worst case, m parity blocks stand in.
            let degraded: Vec<Option<Bytes>> = (0..k + m)
                .map(|i| (i >= m.min(k)).then(|| enc.blocks[i].clone()))
                .collect();
            g.bench_function(id("decode-m-missing"), |bench| {
                bench.iter(|| {
                    codec
                        .decode(&key, &ctx(), plain_len, black_box(&degraded), &enc.hashes)
                        .unwrap()
                });
            });
        }
        g.finish();
    }
}

criterion_group!(benches, stages);
criterion_main!(benches);
