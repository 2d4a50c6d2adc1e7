//! Shard blocks to 5 local nodes through the coordinator, against a bare quinn stream
//! measured in the same run. `cargo bench --bench transport`.
//!
//! Both runs move the same bytes (the shard blocks of 3+2-coded objects, 256 KiB blocks) over
//! loopback QUIC with mutual TLS. The coordinator run goes to 5 `exclaved` node processes that
//! write every shard to disk with fsync; the baseline goes to a sink process (this bench binary
//! re-run) that reads and discards. CPU-seconds come from /proc for every process involved.

// A bench that cannot set itself up should stop loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::support::Cluster;
use common::{bounded, cpu_seconds, size};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use exclave::coordinator::{NodeClient, Nodes, ShardTarget, StripeSink};
use exclave::core::format::ShardHeader;
use exclave::core::hlc::Version;
use exclave::core::ids::{DiskId, GatewayId, NodeId, ObjectId, ShardIndex, SiteId};
use exclave::core::keys::DataKey;
use exclave::core::layout::ShardLocation;
use exclave::core::stripe::{Codec, EncodedStripe, Geometry, Profile, encode_object};
use exclave::net::{Identity, TransportSettings, endpoint};

const BLOCK: u32 = 256 << 10;
const CONCURRENCY: usize = 4;

struct Obj {
    object: ObjectId,
    version: Version,
    geometry: Geometry,
    stripes: Vec<EncodedStripe>,
    headers: Vec<ShardHeader>,
}

/// Objects of the run, and their size (tiny in a smoke run).
fn objects() -> Vec<Obj> {
    let (count, object_size) = (size(24, 2), size(16 << 20, 1 << 20));
    let profile = Profile::new(3, 2).unwrap();
    let codec = Codec::new(profile);
    let key = DataKey::from_bytes([3; 32]);
    (0..count)
        .map(|o| {
            let data: Vec<u8> = (0..object_size).map(|i| (i * 31 + o) as u8).collect();
            let object = ObjectId([o as u8 + 1; 32]);
            let version = Version {
                physical_ms: 1,
                logical: 0,
                gateway: GatewayId(1),
            };
            let stripes = encode_object(&codec, &key, object, version, BLOCK, &data).unwrap();
            let geometry = Geometry {
                profile,
                block_size: BLOCK,
                size: object_size as u64,
            };
            let placement: Vec<ShardLocation> = (0..5)
                .map(|i| ShardLocation {
                    site: SiteId(i),
                    node: NodeId(u32::from(i) + 1),
                    disk: DiskId(u32::from(i) + 1),
                })
                .collect();
            let hashes: Vec<_> = stripes.iter().flat_map(|s| s.hashes.clone()).collect();
            let headers = (0..5)
                .map(|i| ShardHeader {
                    object,
                    version,
                    shard_index: ShardIndex(i as u8),
                    k: 3,
                    m: 2,
                    block_size: BLOCK,
                    size: object_size as u64,
                    layout_epoch: 1,
                    placement: placement.clone(),
                    crcs: stripes.iter().map(|s| s.crcs[i]).collect(),
                    block_hashes: hashes.clone(),
                })
                .collect();
            Obj {
                object,
                version,
                geometry,
                stripes,
                headers,
            }
        })
        .collect()
}

fn main() {
    if let Ok(addr) = std::env::var("EXCLAVE_BENCH_SINK") {
        return sink(
            addr.parse().unwrap(),
            &std::env::var("EXCLAVE_BENCH_DIR").unwrap(),
        );
    }
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench` probes benches with --list
    }
    // The cluster the tests use: `exclave init`, 5 sites (home, site-1..4), 3+2.
    let mut cluster = Cluster::init(5, 3, 2);
    cluster.log_level = "warn";
    let root = cluster.root();
    let sites = cluster.sites.clone();
    let objs = objects();
    let shard_bytes: u64 = objs.iter().map(|o| o.geometry.shard_len() * 5).sum();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let identity = cluster.gateway_identity();

    // Baseline: a bare quinn stream to a sink process.
    let sink_addr: SocketAddr = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|u| u.local_addr())
        .unwrap();
    let mut sink_proc = Command::new(std::env::current_exe().unwrap())
        .env("EXCLAVE_BENCH_SINK", sink_addr.to_string())
        .env("EXCLAVE_BENCH_DIR", &root)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let (bare_secs, bare_client_cpu, bare_sink_cpu) = runtime.block_on(bounded(async {
        let ep = endpoint::endpoint(
            "127.0.0.1:0".parse().unwrap(),
            &identity,
            &TransportSettings::loopback(),
            false,
        )
        .unwrap();
        let started = Instant::now();
        let conn = loop {
            if let Ok(c) = ep.connect(sink_addr, "home.sites.exclave").unwrap().await {
                break c;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the sink did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let blocks: Vec<bytes::Bytes> = objs
            .iter()
            .flat_map(|o| o.stripes.iter().flat_map(|s| s.blocks.clone()))
            .collect();
        let cpu0 = (cpu_seconds(std::process::id()), cpu_seconds(sink_proc.id()));
        let t = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..5 {
            let conn = conn.clone();
            let mine: Vec<bytes::Bytes> = blocks.iter().skip(w).step_by(5).cloned().collect();
            tasks.push(tokio::spawn(async move {
                let (mut send, mut recv) = conn.open_bi().await.unwrap();
                for b in mine {
                    send.write_chunk(b).await.unwrap();
                }
                send.finish().unwrap();
                let _ = recv.read_to_end(16).await;
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let secs = t.elapsed().as_secs_f64();
        (
            secs,
            cpu_seconds(std::process::id()) - cpu0.0,
            cpu_seconds(sink_proc.id()) - cpu0.1,
        )
    }));
    let _ = sink_proc.kill();
    let _ = sink_proc.wait();

    // The coordinator: 5 node processes, fsync on every shard.
    cluster.start_all();
    let pids: Vec<u32> = (0..sites.len())
        .map(|i| cluster.node_pid(i).unwrap())
        .collect();
    let (secs, client_cpu, node_cpu) = runtime.block_on(bounded(async {
        let clients = cluster.clients(&identity);
        cluster.wait_ready(&clients).await;
        let clients: BTreeMap<NodeId, Arc<NodeClient>> = clients
            .into_iter()
            .enumerate()
            .map(|(i, c)| (NodeId(i as u32 + 1), c))
            .collect();
        let nodes_set = Nodes::new(clients);
        let targets: Vec<ShardTarget> = (0..5)
            .map(|i| ShardTarget {
                site: SiteId(i as u16),
                node: NodeId(i + 1),
                disk: DiskId(i + 1),
            })
            .collect();
        let node_cpu0: f64 = pids.iter().map(|&p| cpu_seconds(p)).sum();
        let cpu0 = cpu_seconds(std::process::id());
        let t = Instant::now();
        let objs = Arc::new(objs);
        let mut tasks = Vec::new();
        for w in 0..CONCURRENCY {
            let (objs, nodes_set, targets) = (objs.clone(), nodes_set.clone(), targets.clone());
            tasks.push(tokio::spawn(async move {
                for o in objs.iter().skip(w).step_by(CONCURRENCY) {
                    let mut sink = StripeSink::start(
                        &nodes_set,
                        &targets,
                        o.object,
                        o.version,
                        o.geometry,
                        4,
                        Duration::from_secs(60),
                    );
                    for s in &o.stripes {
                        sink.push(s).await.unwrap();
                    }
                    let report = sink.finish(o.headers.clone()).await.unwrap();
                    assert!(report.missing.is_empty());
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let secs = t.elapsed().as_secs_f64();
        let node_cpu: f64 = pids.iter().map(|&p| cpu_seconds(p)).sum::<f64>() - node_cpu0;
        (secs, cpu_seconds(std::process::id()) - cpu0, node_cpu)
    }));
    drop(cluster);

    let gb = shard_bytes as f64 / 1e9;
    let mbps = |s: f64| shard_bytes as f64 / s / 1e6;
    println!(
        "\nshard blocks to 5 local nodes, {:.2} GB of blocks (3+2, 256 KiB blocks), loopback QUIC + mTLS\n",
        gb
    );
    println!("| path | MB/s | sender CPU-s/GB | receiver(s) CPU-s/GB |");
    println!("|---|---|---|---|");
    println!(
        "| bare quinn, 5 streams to a sink | {:.0} | {:.2} | {:.2} |",
        mbps(bare_secs),
        bare_client_cpu / gb,
        bare_sink_cpu / gb
    );
    println!(
        "| coordinator to 5 nodes (fsync) | {:.0} | {:.2} | {:.2} |",
        mbps(secs),
        client_cpu / gb,
        node_cpu / gb
    );
    println!(
        "\ncoordinator / bare quinn throughput: {:.2}",
        mbps(secs) / mbps(bare_secs)
    );
}

/// The baseline's receiving end: accept one connection, drain every stream.
fn sink(addr: SocketAddr, root: &str) {
    let root = std::path::Path::new(root);
    let identity = Identity::load(
        &root.join("ca.pem"),
        &root.join("sites/home/node.pem"),
        &root.join("sites/home/node.key"),
    )
    .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let ep = endpoint::endpoint(addr, &identity, &TransportSettings::loopback(), true).unwrap();
        while let Some(incoming) = ep.accept().await {
            let Ok(conn) = incoming.await else { continue };
            while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                tokio::spawn(async move {
                    while let Ok(Some(_)) = recv.read_chunk(1 << 20, false).await {}
                    let _ = send.write_all(b"ok").await;
                    let _ = send.finish();
                });
            }
        }
    });
}
