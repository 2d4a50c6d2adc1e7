//! Foreground S3 throughput while the collector runs a large pass, as a ratio to the same load
//! idle. A cluster of real processes (5 nodes, 3+2, and a gateway) on loopback: the load is 2
//! clients doing PUT and GET of 1 MiB objects; before it, objects are written twice (the first
//! copies are garbage) and small records written and deleted, so the pass has a census to make
//! and files to delete; then `POST /v1/gc` runs during a load window.
//!
//! `cargo bench --bench gc` (`EXCLAVE_GC_BENCH_MIB=N`: MiB of garbage made, default 600)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::support::Cluster;
use common::{bounded, size};

use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;

/// How long each load window runs.
fn window() -> Duration {
    Duration::from_secs(size(20, 1))
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let garbage_mib: usize = std::env::var("EXCLAVE_GC_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(size(600, 16));
    let small = size(2000, 20);
    let mut cluster = Cluster::init(5, 3, 2);
    cluster.log_level = "warn";
    // Only the pass asked for collects; the grace period is over by the time it runs.
    cluster.gateway_options("gc_interval_secs = 100000\ngc_grace_secs = 1");
    cluster.start_all();
    cluster.start_gateway();
    let (admin, token) = cluster.gateway_admin();
    let s3 = cluster.s3_client(3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "exclave gc bench: 5 node processes + gateway, 3+2, {garbage_mib} MiB overwritten, \
         {small} small objects written and deleted"
    );
    rt.block_on(bounded(async {
        s3.create_bucket().bucket("bench").send().await.unwrap();
        let body = bytes::Bytes::from(vec![7u8; 8 << 20]);
        for _ in 0..2 {
            for i in 0..garbage_mib.div_ceil(8) {
                s3.put_object()
                    .bucket("bench")
                    .key(format!("big/{i}"))
                    .body(ByteStream::from(body.clone()))
                    .send()
                    .await
                    .unwrap();
            }
        }
        for i in 0..small {
            let key = format!("small/{i}");
            s3.put_object()
                .bucket("bench")
                .key(&key)
                .body(ByteStream::from(vec![1u8; 4096]))
                .send()
                .await
                .unwrap();
            s3.delete_object()
                .bucket("bench")
                .key(&key)
                .send()
                .await
                .unwrap();
        }
    }));
    std::thread::sleep(Duration::from_secs(2));
    let idle = rt.block_on(bounded(common::load_for(&s3, "idle", window())));

    // The pass is timed on its own thread, from its request to its answer.
    let pass = std::thread::spawn(move || {
        let started = Instant::now();
        let answer = common::admin_post(admin, &token, "/v1/gc");
        (answer, started.elapsed().as_secs_f64())
    });
    // The load runs exactly as long as the pass.
    let (during, (answer, pass_secs)) = rt.block_on(bounded(async {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let joined = tokio::task::spawn_blocking(move || {
            let out = pass.join().unwrap();
            let _ = tx.send(());
            out
        });
        let during = common::load(&s3, "during", async {
            let _ = rx.await;
        })
        .await;
        (during, joined.await.unwrap())
    }));
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    let report: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let freed: u64 = report["by_reason"]
        .as_object()
        .map(|r| r.values().filter_map(|t| t["bytes"].as_u64()).sum())
        .unwrap_or(0);
    assert!(freed > 0, "the pass collected nothing: {body}");

    drop(cluster);
    println!("\n| measure | value |");
    println!("|---|---|");
    println!("| foreground PUT+GET 1 MiB, 2 clients, idle (MB/s) | {idle:.0} |");
    println!("| the same while a collection pass runs (MB/s) | {during:.0} |");
    println!("| ratio during collection / idle | {:.2} |", during / idle);
    println!("| pass time (s, its request to its answer) | {pass_secs:.1} |");
    println!(
        "| objects weighed / bytes freed at the sites | {} / {freed} |",
        report["objects"]
    );
}
