//! End to end through the S3 API against `exclaved dev` (a gateway and five local sites, 3+2,
//! one process): PUT and GET MB/s of 256 MiB objects with 1 and 8 streams, ops/s of 4 KiB PUTs
//! and GETs with 64 in flight, and the gateway process's peak RSS. Baselines measured in the
//! same run: memcpy, the core seal+code pipeline on one core, and a bare quinn stream.
//!
//! `cargo bench --bench e2e` (set `EXCLAVE_E2E_MIB` to change the large object size).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{bounded, cpu_seconds, size};

use std::sync::Arc;
use std::time::Instant;

use aws_sdk_s3::primitives::ByteStream;
use exclave::core::hlc::Version;
use exclave::core::ids::ObjectId;
use exclave::core::keys::DataKey;
use exclave::core::stripe::{Codec, Profile, StripeContext};
use futures::StreamExt as _;

fn mbps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let rest = l.strip_prefix(field)?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or(0)
}

/// Seal and code stripe by stripe, each stripe dropped after coding, as the gateway does.
fn pipeline_mbps(size: usize) -> f64 {
    let codec = Codec::new(Profile::new(3, 2).unwrap());
    let key = DataKey::from_bytes([9; 32]);
    let bs = 256 * 1024;
    let cap = 3 * bs as usize - 16;
    let data = vec![3u8; cap];
    let stripes = size / cap;
    let run = |n: usize| {
        for i in 0..n {
            let mut buf = Vec::with_capacity(3 * bs as usize);
            buf.extend_from_slice(&data);
            let ctx = StripeContext {
                object: ObjectId([1; 32]),
                version: Version::from_bytes([0; 16]),
                index: i as u64,
                last: false,
            };
            std::hint::black_box(codec.encode(&key, &ctx, buf, bs).unwrap());
        }
    };
    run(8);
    let t = Instant::now();
    run(stripes);
    mbps((stripes * cap) as u64, t.elapsed().as_secs_f64())
}

/// One quinn stream, loopback, same certificates and settings as the cluster.
fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mib: usize = std::env::var("EXCLAVE_E2E_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(size(256, 2));
    let big = mib << 20;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("dev");
    // The dev process's log outlives the bench's temporary directory, for a failed run.
    let dev_log = std::env::temp_dir().join(format!("exclave-e2e-{}.log", std::process::id()));
    let (child, endpoint_url) = common::start_dev(&root, &dev_log);
    let pid = child.id();
    let s3 = common::s3_client(&root, &endpoint_url);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    println!("exclave e2e bench: exclaved dev (5 sites, 3+2, one process), {mib} MiB objects");
    let memcpy = common::memcpy_mbps(big.min(256 << 20));
    let pipeline = pipeline_mbps(size(64 << 20, 4 << 20));
    let quinn = rt.block_on(bounded(common::bare_quinn_mbps(&root, big.min(512 << 20))));

    let body = bytes::Bytes::from(vec![0x5au8; big]);
    let rows: Vec<(String, f64)> = rt.block_on(bounded(async {
        eprintln!("exclaved dev logs to {}", dev_log.display());
        s3.create_bucket().bucket("bench").send().await.unwrap();
        let mut rows = Vec::new();
        let put = |key: String| {
            let s3 = s3.clone();
            let body = body.clone();
            async move {
                s3.put_object()
                    .bucket("bench")
                    .key(key)
                    .body(ByteStream::from(body))
                    .send()
                    .await
                    .unwrap();
            }
        };
        let get = |key: String| {
            let s3 = s3.clone();
            async move {
                let out = s3
                    .get_object()
                    .bucket("bench")
                    .key(key)
                    .send()
                    .await
                    .unwrap();
                let mut n = 0u64;
                let mut body = out.body;
                while let Some(b) = body.next().await {
                    n += b.unwrap().len() as u64;
                }
                n
            }
        };
        let gb = big as f64 / 1e9;
        let (c0, b0) = (cpu_seconds(pid), cpu_seconds(std::process::id()));
        let t = Instant::now();
        put("one".into()).await;
        rows.push((
            "PUT, 1 stream (MB/s)".into(),
            mbps(big as u64, t.elapsed().as_secs_f64()),
        ));
        rows.push((
            "PUT: exclaved CPU-s per GB (gateway + 5 nodes)".into(),
            (cpu_seconds(pid) - c0) / gb,
        ));
        rows.push((
            "PUT: client (aws-sdk-s3) CPU-s per GB".into(),
            (cpu_seconds(std::process::id()) - b0) / gb,
        ));
        let c0 = cpu_seconds(pid);
        let t = Instant::now();
        let n = get("one".into()).await;
        assert_eq!(n, big as u64);
        rows.push((
            "GET, 1 stream (MB/s)".into(),
            mbps(n, t.elapsed().as_secs_f64()),
        ));
        rows.push((
            "GET: exclaved CPU-s per GB".into(),
            (cpu_seconds(pid) - c0) / gb,
        ));

        let t = Instant::now();
        futures::future::join_all((0..8).map(|i| put(format!("eight-{i}")))).await;
        rows.push((
            "PUT, 8 streams (MB/s)".into(),
            mbps(8 * big as u64, t.elapsed().as_secs_f64()),
        ));
        let rss = status_kib(pid, "VmHWM:");
        let t = Instant::now();
        let total: u64 = futures::future::join_all((0..8).map(|i| get(format!("eight-{i}"))))
            .await
            .iter()
            .sum();
        rows.push((
            "GET, 8 streams (MB/s)".into(),
            mbps(total, t.elapsed().as_secs_f64()),
        ));
        rows.push((
            "peak RSS of exclaved after 8 concurrent PUTs (MiB)".into(),
            rss as f64 / 1024.0,
        ));

        let small = bytes::Bytes::from(vec![1u8; 4096]);
        let ops = size(2000, 50);
        let s3c = Arc::new(s3.clone());
        let t = Instant::now();
        futures::stream::iter(0..ops)
            .map(|i| {
                let (s3, small) = (s3c.clone(), small.clone());
                async move {
                    s3.put_object()
                        .bucket("bench")
                        .key(format!("small/{i}"))
                        .body(ByteStream::from(small))
                        .send()
                        .await
                        .unwrap();
                }
            })
            .buffer_unordered(64)
            .collect::<Vec<()>>()
            .await;
        rows.push((
            "4 KiB PUT, 64 in flight (ops/s)".into(),
            ops as f64 / t.elapsed().as_secs_f64(),
        ));
        let t = Instant::now();
        futures::stream::iter(0..ops)
            .map(|i| {
                let s3 = s3c.clone();
                async move {
                    let out = s3
                        .get_object()
                        .bucket("bench")
                        .key(format!("small/{i}"))
                        .send()
                        .await
                        .unwrap();
                    out.body.collect().await.unwrap();
                }
            })
            .buffer_unordered(64)
            .collect::<Vec<()>>()
            .await;
        rows.push((
            "4 KiB GET, 64 in flight (ops/s)".into(),
            ops as f64 / t.elapsed().as_secs_f64(),
        ));
        rows
    }));
    common::stop_dev(child);

    println!("\n| measure | value | / memcpy | / core pipeline | / bare quinn |");
    println!("|---|---|---|---|---|");
    println!("| memcpy, one core (MB/s) | {memcpy:.0} | 1 | | |");
    println!(
        "| core seal+code 3+2, one core (MB/s) | {pipeline:.0} | {:.3} | 1 | |",
        pipeline / memcpy
    );
    println!(
        "| bare quinn, one stream (MB/s) | {quinn:.0} | {:.3} | | 1 |",
        quinn / memcpy
    );
    for (name, v) in rows {
        if name.contains("MB/s") {
            println!(
                "| {name} | {v:.0} | {:.3} | {:.2} | {:.2} |",
                v / memcpy,
                v / pipeline,
                v / quinn
            );
        } else {
            println!("| {name} | {v:.2} | | | |");
        }
    }
}
