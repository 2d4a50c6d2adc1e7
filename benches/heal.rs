//! Foreground S3 throughput while a heal runs, as a ratio to the same load idle. A cluster of
//! real processes (5 nodes, 3+2, and a gateway) on loopback: the load is 2 clients doing PUT
//! and GET of 1 MiB objects; mid-way one site is wiped (disk re-initialised, database gone)
//! and `POST /v1/heal` rebuilds it at the configured `repair_mib_per_sec` (default 64).
//!
//! `cargo bench --bench heal` (`EXCLAVE_HEAL_MIB=N` sets `repair_mib_per_sec`, default 64;
//! `EXCLAVE_HEAL_BUSY_MIB=N` sets `repair_busy_mib_per_sec`, the rate while S3 requests are in
//! flight, default 32)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::support::Cluster;
use common::{bounded, size};

use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;

/// MiB written before the site is wiped.
fn preload() -> usize {
    size(600, 16)
}

/// How long each load window runs.
fn window() -> Duration {
    Duration::from_secs(size(20, 1))
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    // The cluster the tests use: `exclave init`, 5 sites, 3+2, node and gateway processes.
    let mut cluster = Cluster::init(5, 3, 2);
    cluster.log_level = "warn";
    let rate: u64 = std::env::var("EXCLAVE_HEAL_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let busy: u64 = std::env::var("EXCLAVE_HEAL_BUSY_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    // Only heal repairs here, so the idle window is idle.
    cluster.gateway_options(&format!(
        "repair_interval_secs = 100000\nrepair_mib_per_sec = {rate}\nrepair_busy_mib_per_sec = {busy}"
    ));
    cluster.start_all();
    cluster.start_gateway();
    let (admin, token) = cluster.gateway_admin();
    let s3 = cluster.s3_client(3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "exclave heal bench: 5 node processes + gateway, 3+2, {} MiB preloaded, repair_mib_per_sec = {rate}, repair_busy_mib_per_sec = {busy}",
        preload()
    );
    rt.block_on(bounded(async {
        s3.create_bucket().bucket("bench").send().await.unwrap();
        let body = bytes::Bytes::from(vec![7u8; 8 << 20]);
        for i in 0..preload().div_ceil(8) {
            s3.put_object()
                .bucket("bench")
                .key(format!("preload/{i}"))
                .body(ByteStream::from(body.clone()))
                .send()
                .await
                .unwrap();
        }
    }));
    let idle = rt.block_on(bounded(common::load_for(&s3, "idle", window())));

    // Wipe site 3: disk re-initialised, database gone, identity kept.
    let wiped = 2;
    cluster.kill_node(wiped);
    let (disk, data) = cluster.disk_of(wiped);
    let site_dir = cluster.root().join("sites").join(&cluster.sites[wiped]);
    std::fs::remove_dir_all(&data).unwrap();
    std::fs::remove_dir_all(site_dir.join("state")).unwrap();
    exclave::store::init_disk(&data, exclave::core::ids::NodeId(wiped as u32 + 1), disk).unwrap();
    cluster.start_node(wiped);
    std::thread::sleep(Duration::from_millis(500));

    // The same load with the site wiped and no heal: what the heal itself costs is the
    // difference between this window and the next.
    let wiped_idle = rt.block_on(bounded(common::load_for(&s3, "wiped", window())));

    // The heal is timed on its own thread, from its request to its answer: it may finish well
    // inside the load window.
    let heal = std::thread::spawn(move || {
        let started = Instant::now();
        let answer = common::admin_post(admin, &token, "/v1/heal");
        (answer, started.elapsed().as_secs_f64())
    });
    let during = rt.block_on(bounded(common::load_for(&s3, "during", window())));
    let (answer, heal_secs) = heal.join().unwrap();
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();

    drop(cluster);
    println!("\n| measure | value |");
    println!("|---|---|");
    println!("| foreground PUT+GET 1 MiB, 2 clients, idle (MB/s) | {idle:.0} |");
    println!("| the same after a site was wiped, before heal (MB/s) | {wiped_idle:.0} |");
    println!("| the same while heal rebuilds the wiped site (MB/s) | {during:.0} |");
    println!("| ratio during heal / idle | {:.2} |", during / idle);
    println!(
        "| ratio during heal / wiped before heal | {:.2} |",
        during / wiped_idle
    );
    println!("| heal time (s, its request to its answer) | {heal_secs:.1} |");
    println!("\nheal answered: {body}");
}
