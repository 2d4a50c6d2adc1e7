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

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;

const PRELOAD: usize = 600;
const WINDOW: Duration = Duration::from_secs(20);

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_exclaved"))
        .args(["--config", config.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn admin_post(addr: SocketAddr, token: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// Runs the load for `WINDOW`; returns MB/s of PUT + GET bytes.
async fn load(s3: &aws_sdk_s3::Client, tag: &str) -> f64 {
    let bytes = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..2 {
        let (s3, bytes, stop, tag) = (s3.clone(), bytes.clone(), stop.clone(), tag.to_owned());
        tasks.push(tokio::spawn(async move {
            let body = bytes::Bytes::from(vec![c as u8; 1 << 20]);
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let key = format!("{tag}/{c}/{}", i % 20);
                s3.put_object()
                    .bucket("bench")
                    .key(&key)
                    .body(ByteStream::from(body.clone()))
                    .send()
                    .await
                    .unwrap();
                let out = s3
                    .get_object()
                    .bucket("bench")
                    .key(&key)
                    .send()
                    .await
                    .unwrap();
                let got = out.body.collect().await.unwrap().into_bytes();
                bytes.fetch_add(2 * got.len() as u64, Ordering::SeqCst);
                i += 1;
            }
        }));
    }
    let t = Instant::now();
    tokio::time::sleep(WINDOW).await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    bytes.load(Ordering::SeqCst) as f64 / t.elapsed().as_secs_f64() / 1e6
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("c");
    let sites: Vec<String> = (1..=5).map(|i| format!("site-{i}")).collect();
    let ports: Vec<u16> = (0..5).map(|_| free_port()).collect();
    let s3_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let admin_port = free_port();
    exclave::ops::init::init(&exclave::ops::init::InitOptions {
        dir: root.clone(),
        sites: sites.clone(),
        k: 3,
        m: 2,
        survive_foreign_losses: 1,
        bind: "127.0.0.1".parse().unwrap(),
        base_port: 0,
        s3_port,
        disks_per_node: 1,
        disk_capacity: 1 << 40,
        node_ports: ports,
        admin_port,
        s3: exclave::ops::init::S3Transport::PlainHttp,
    })
    .unwrap();
    let gw_cfg = root.join("gateway/gateway.toml");
    let rate: u64 = std::env::var("EXCLAVE_HEAL_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let busy: u64 = std::env::var("EXCLAVE_HEAL_BUSY_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let text = std::fs::read_to_string(&gw_cfg).unwrap();
    // Only heal repairs here, so the idle window is idle.
    std::fs::write(
        &gw_cfg,
        text.replace(
            "[gateway]\n",
            &format!(
                "[gateway]\nrepair_interval_secs = 100000\nrepair_mib_per_sec = {rate}\nrepair_busy_mib_per_sec = {busy}\n"
            ),
        ),
    )
    .unwrap();
    let node_cfg = |i: usize| root.join("sites").join(&sites[i]).join("node.toml");
    let mut nodes: Vec<Child> = (0..5).map(|i| spawn(&node_cfg(i))).collect();
    std::thread::sleep(Duration::from_millis(500));
    let mut gateway = spawn(&gw_cfg);
    let s3_addr: SocketAddr = format!("127.0.0.1:{s3_port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(s3_addr).is_err() {
        assert!(Instant::now() < deadline, "gateway did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let token = std::fs::read_to_string(root.join("gateway/admin.token"))
        .unwrap()
        .trim()
        .to_owned();
    let s3 = common::s3_client(&root, &format!("http://{s3_addr}"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "exclave heal bench: 5 node processes + gateway, 3+2, {PRELOAD} MiB preloaded, repair_mib_per_sec = {rate}, repair_busy_mib_per_sec = {busy}"
    );
    rt.block_on(async {
        s3.create_bucket().bucket("bench").send().await.unwrap();
        let body = bytes::Bytes::from(vec![7u8; 8 << 20]);
        for i in 0..PRELOAD / 8 {
            s3.put_object()
                .bucket("bench")
                .key(format!("preload/{i}"))
                .body(ByteStream::from(body.clone()))
                .send()
                .await
                .unwrap();
        }
    });
    let idle = rt.block_on(load(&s3, "idle"));

    // Wipe site 3: disk re-initialised, database gone, identity kept.
    let wiped = 2;
    let _ = nodes[wiped].kill();
    let _ = nodes[wiped].wait();
    let site_dir = root.join("sites").join(&sites[wiped]);
    let data = std::fs::read_dir(site_dir.join("data"))
        .unwrap()
        .flatten()
        .next()
        .unwrap();
    let disk_id: u32 = data
        .file_name()
        .to_string_lossy()
        .trim_start_matches("disk-")
        .parse()
        .unwrap();
    std::fs::remove_dir_all(data.path()).unwrap();
    std::fs::remove_dir_all(site_dir.join("state")).unwrap();
    exclave::store::init_disk(
        &data.path(),
        exclave::core::ids::NodeId(wiped as u32 + 1),
        exclave::core::ids::DiskId(disk_id),
    )
    .unwrap();
    nodes[wiped] = spawn(&node_cfg(wiped));
    std::thread::sleep(Duration::from_millis(500));

    // The same load with the site wiped and no heal: what the heal itself costs is the
    // difference between this window and the next.
    let wiped_idle = rt.block_on(load(&s3, "wiped"));

    let admin: SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
    let heal_started = Instant::now();
    let heal = std::thread::spawn(move || admin_post(admin, &token, "/v1/heal"));
    let during = rt.block_on(load(&s3, "during"));
    let answer = heal.join().unwrap();
    let heal_secs = heal_started.elapsed().as_secs_f64();
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();

    let _ = gateway.kill();
    let _ = gateway.wait();
    for n in &mut nodes {
        let _ = n.kill();
        let _ = n.wait();
    }
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
    println!("| heal wall time (s, from its start) | {heal_secs:.1} |");
    println!("\nheal answered: {body}");
}
