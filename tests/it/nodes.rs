//! Storage nodes and the QUIC transport (issue: "Storage nodes and the QUIC transport").

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use exclave::coordinator::{BlockResult, NodeClient};
use exclave::core::format::ShardHeader;
use exclave::core::hlc::Version;
use exclave::core::ids::{DiskId, GatewayId, NodeId, ObjectId, ShardIndex, SiteId};
use exclave::core::keys::DataKey;
use exclave::core::layout::ShardLocation;
use exclave::core::stripe::{Codec, Geometry, Profile, StripeContext, encode_object};
use exclave::core::wire::{ErrorCode, ShardKey};
use exclave::net::NetError;
use exclave::net::pki::Ca;
use exclave::net::tls::Role;

use crate::support::{Cluster, Rng, bin, run, within};

/// An object encoded by the core, ready to be spread over nodes 0..k+m.
pub(crate) struct Encoded {
    pub(crate) data: Vec<u8>,
    pub(crate) key: DataKey,
    pub(crate) geometry: Geometry,
    pub(crate) object: ObjectId,
    pub(crate) version: Version,
    pub(crate) headers: Vec<ShardHeader>,
    /// `blocks[shard][stripe]`.
    pub(crate) blocks: Vec<Vec<Bytes>>,
}

pub(crate) fn encode(rng: &mut Rng, size: usize, block_size: u32, k: usize, m: usize) -> Encoded {
    let profile = Profile::new(k, m).unwrap();
    let codec = Codec::new(profile);
    let data = rng.bytes(size);
    let key = DataKey::from_bytes(rng.bytes(32).try_into().unwrap());
    let object = ObjectId(rng.bytes(32).try_into().unwrap());
    let version = Version {
        physical_ms: rng.next_u64() >> 20,
        logical: 0,
        gateway: GatewayId(1),
    };
    let stripes = encode_object(&codec, &key, object, version, block_size, &data).unwrap();
    let geometry = Geometry {
        profile,
        block_size,
        size: size as u64,
    };
    let n = k + m;
    let placement: Vec<ShardLocation> = (0..n)
        .map(|i| ShardLocation {
            site: SiteId(i as u16),
            node: NodeId(i as u32 + 1),
            disk: DiskId(i as u32 + 1),
        })
        .collect();
    let hashes: Vec<_> = stripes.iter().flat_map(|s| s.hashes.clone()).collect();
    let headers = (0..n)
        .map(|i| ShardHeader {
            object,
            version,
            shard_index: ShardIndex(i as u8),
            k: k as u8,
            m: m as u8,
            block_size,
            size: size as u64,
            layout_epoch: 1,
            placement: placement.clone(),
            crcs: stripes.iter().map(|s| s.crcs[i]).collect(),
            block_hashes: hashes.clone(),
        })
        .collect();
    let blocks = (0..n)
        .map(|i| stripes.iter().map(|s| s.blocks[i].clone()).collect())
        .collect();
    Encoded {
        data,
        key,
        geometry,
        object,
        version,
        headers,
        blocks,
    }
}

impl Encoded {
    fn shard_key(&self, i: usize) -> ShardKey {
        ShardKey {
            object: self.object,
            version: self.version,
            shard: i as u8,
        }
    }

    async fn put(&self, clients: &[Arc<NodeClient>]) -> Vec<Result<(), NetError>> {
        let mut out = Vec::new();
        for (i, h) in self.headers.iter().enumerate() {
            out.push(
                clients[i]
                    .put_shard(DiskId(i as u32 + 1), h, &self.blocks[i])
                    .await,
            );
        }
        out
    }
}

pub(crate) async fn started(sites: usize) -> (Cluster, Vec<Arc<NodeClient>>) {
    let mut c = Cluster::init(5, 3, 2);
    for i in 0..sites {
        c.start_node(i);
    }
    let clients = c.clients(&c.gateway_identity());
    c.wait_ready(&clients).await;
    (c, clients)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_blocks_of_mixed_sizes_round_trip_through_five_nodes() {
    within(120, async {
        let (_cluster, clients) = started(5).await;
        let mut rng = Rng::new(7);
        let mut objects = Vec::new();
        let mut blocks = 0;
        while blocks < 1000 {
            let size = match rng.below(4) {
                0 => rng.below(100) as usize,
                1 => rng.below(4096) as usize,
                _ => rng.below(600_000) as usize,
            };
            let bs = [4096u32, 65_536, 262_144][rng.below(3) as usize];
            let e = encode(&mut rng, size, bs, 3, 2);
            blocks += e.blocks.iter().map(Vec::len).sum::<usize>();
            for r in e.put(&clients).await {
                r.unwrap();
            }
            objects.push(e);
        }
        let codec = Codec::new(Profile::new(3, 2).unwrap());
        for e in &objects {
            let n = e.geometry.stripe_count();
            let mut fetched: Vec<Vec<BlockResult>> = Vec::new();
            for (i, c) in clients.iter().enumerate() {
                let got = c.get_blocks(e.shard_key(i), 0, n).await.unwrap();
                for (s, b) in got.iter().enumerate() {
                    assert_eq!(
                        b,
                        &BlockResult::Ok(e.blocks[i][s].clone()),
                        "shard {i} stripe {s}"
                    );
                }
                fetched.push(got);
                let header = c.shard_header(e.shard_key(i)).await.unwrap();
                assert_eq!(header, e.headers[i]);
            }
            // And the bytes decode back to the object from shards 2, 3, 4 (two data missing).
            let mut plain = Vec::new();
            for s in 0..n {
                let offer: Vec<Option<Bytes>> = (0..5)
                    .map(|i| match (&fetched[i][s as usize], i >= 2) {
                        (BlockResult::Ok(b), true) => Some(b.clone()),
                        _ => None,
                    })
                    .collect();
                let ctx = StripeContext {
                    object: e.object,
                    version: e.version,
                    index: s,
                    last: s + 1 == n,
                };
                let hashes = &e.headers[0].block_hashes[s as usize * 5..s as usize * 5 + 5];
                let opened = codec
                    .decode(&e.key, &ctx, e.geometry.stripe_len(s), &offer, hashes)
                    .unwrap();
                plain.extend_from_slice(&opened.plaintext);
            }
            assert_eq!(plain, e.data);
        }
        assert!(blocks >= 1000, "{blocks}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_are_refused_and_nodes_may_not_write() {
    within(60, async {
        let (cluster, clients) = started(5).await;
        let mut rng = Rng::new(3);
        let e = encode(&mut rng, 10_000, 4096, 3, 2);

        // A certificate from another CA, naming the gateway role.
        let other = Ca::new("other").unwrap();
        let issued = other.issue(Role::Gateway, "home", 1).unwrap();
        let dir = cluster.dir.path();
        std::fs::write(dir.join("other.pem"), &issued.cert_pem).unwrap();
        write_secret(&dir.join("other.key"), &issued.key_pem);
        std::fs::write(dir.join("other-ca.pem"), &other.issued().cert_pem).unwrap();
        let stranger = exclave::net::Identity::load(
            &dir.join("other-ca.pem"),
            &dir.join("other.pem"),
            &dir.join("other.key"),
        )
        .unwrap();
        let stranger_clients = cluster.clients(&stranger);
        assert!(
            stranger_clients[1].ping().await.is_err(),
            "a certificate of another CA was accepted"
        );
        assert!(e.put(&stranger_clients).await.iter().all(Result::is_err));

        // A self-signed certificate (its own CA) naming the gateway role.
        let selfsigned = Ca::new("self").unwrap();
        let me = selfsigned.issue(Role::Gateway, "home", 9).unwrap();
        std::fs::write(dir.join("self.pem"), &me.cert_pem).unwrap();
        write_secret(&dir.join("self.key"), &me.key_pem);
        std::fs::write(dir.join("self-ca.pem"), &selfsigned.issued().cert_pem).unwrap();
        let id = exclave::net::Identity::load(
            &dir.join("self-ca.pem"),
            &dir.join("self.pem"),
            &dir.join("self.key"),
        )
        .unwrap();
        assert!(
            cluster.clients(&id)[2].ping().await.is_err(),
            "a self-signed certificate was accepted"
        );

        // A node certificate of this cluster: may read, may not write.
        for r in e.put(&clients).await {
            r.unwrap();
        }
        let site1 = cluster.root().join("sites").join(&cluster.sites[1]);
        let node_id = cluster.identity(&site1.join("node.pem"), &site1.join("node.key"));
        assert_eq!(node_id.role(), Role::Node);
        let as_node = cluster.clients(&node_id);
        assert!(matches!(
            as_node[0].get_blocks(e.shard_key(0), 0, 1).await.unwrap()[0],
            BlockResult::Ok(_)
        ));
        let e2 = encode(&mut rng, 5_000, 4096, 3, 2);
        for r in e2.put(&as_node).await {
            assert!(
                matches!(
                    r,
                    Err(NetError::Remote {
                        code: ErrorCode::Forbidden,
                        ..
                    })
                ),
                "{r:?}"
            );
        }
        let sealed_like = vec![0u8; 100];
        let r = as_node[0].put_manifest(sealed_like).await;
        assert!(
            matches!(
                r,
                Err(NetError::Remote {
                    code: ErrorCode::Forbidden,
                    ..
                })
            ),
            "{r:?}"
        );
        // A node may neither list shards for collection, nor take another's file census, nor
        // delete anything.
        let r = as_node[0].list_shards(None, 10).await;
        assert!(
            matches!(
                r,
                Err(NetError::Remote {
                    code: ErrorCode::Forbidden,
                    ..
                })
            ),
            "{r:?}"
        );
        let r = as_node[0].file_census(10).await;
        assert!(
            matches!(
                r,
                Err(NetError::Remote {
                    code: ErrorCode::Forbidden,
                    ..
                })
            ),
            "{r:?}"
        );
        let doomed = exclave::core::wire::Collectable {
            object: e.object,
            version: e.shard_key(0).version,
            manifest: true,
            reason: 1,
        };
        let r = as_node[0].collect(vec![doomed]).await;
        assert!(
            matches!(
                r,
                Err(NetError::Remote {
                    code: ErrorCode::Forbidden,
                    ..
                })
            ),
            "{r:?}"
        );
        assert!(matches!(
            clients[0].get_blocks(e.shard_key(0), 0, 1).await.unwrap()[0],
            BlockResult::Ok(_)
        ));
        let r = as_node[0].manifests(e.object).await;
        assert!(
            matches!(
                r,
                Err(NetError::Remote {
                    code: ErrorCode::Forbidden,
                    ..
                })
            ),
            "{r:?}"
        );
        // Nothing of e2 was stored.
        for (i, c) in clients.iter().enumerate() {
            let r = c.get_blocks(e2.shard_key(i), 0, 1).await;
            assert!(
                matches!(
                    r,
                    Err(NetError::Remote {
                        code: ErrorCode::NotFound,
                        ..
                    })
                ),
                "{r:?}"
            );
        }
    })
    .await;
}

fn write_secret(path: &std::path::Path, contents: &str) {
    exclave::sys::write_secret(path, contents.as_bytes()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_malformed_frames_do_not_stop_a_node() {
    within(180, async {
        let (mut cluster, clients) = started(1).await;
        let node = clients[0].clone();
        let mut rng = Rng::new(11);
        let valid = exclave::core::wire::encode_body(&exclave::core::wire::Request::Ping);
        let mut cases = Vec::with_capacity(10_000);
        for i in 0..10_000u32 {
            let frame: Vec<u8> = match i % 6 {
                // Pure noise.
                0 => {
                    let n = 1 + rng.below(300) as usize;
                    rng.bytes(n)
                }
                // A length beyond the limit.
                1 => (u32::MAX - rng.below(1000) as u32).to_le_bytes().to_vec(),
                // A frame cut short.
                2 => {
                    let mut f = (100u32).to_le_bytes().to_vec();
                    let n = rng.below(99) as usize;
                    f.extend(rng.bytes(n));
                    f
                }
                // Right length, garbage archive.
                3 => {
                    let n = 2 + rng.below(200) as usize;
                    let body = rng.bytes(n);
                    let mut f = (body.len() as u32).to_le_bytes().to_vec();
                    f.extend_from_slice(&[1, 0]);
                    f.extend_from_slice(&body[2..]);
                    f
                }
                // Another protocol version.
                4 => {
                    let mut body = valid.clone();
                    body[0] = 7;
                    let mut f = (body.len() as u32).to_le_bytes().to_vec();
                    f.extend(body);
                    f
                }
                // A valid frame with bits flipped.
                _ => {
                    let mut f = (valid.len() as u32).to_le_bytes().to_vec();
                    f.extend(valid.iter().copied());
                    let at = rng.below(f.len() as u64) as usize;
                    f[at] ^= 1 << rng.below(8);
                    f
                }
            };
            cases.push(frame);
        }
        let cases = Arc::new(cases);
        let mut tasks = Vec::new();
        for t in 0..16 {
            let (node, cases) = (node.clone(), cases.clone());
            tasks.push(tokio::spawn(async move {
                for f in cases.iter().skip(t).step_by(16) {
                    let _ = tokio::time::timeout(Duration::from_secs(5), node.raw(f)).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert!(cluster.node_alive(0), "the node died");
        assert_eq!(
            node.ping().await.unwrap().1,
            "home",
            "the node stopped serving"
        );
        assert_eq!(cluster.log_hits(0, "panicked"), 0, "the node panicked");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_writing_never_serves_a_half_written_shard() {
    within(120, async {
        let (mut cluster, clients) = started(1).await;
        // Four writers stream shard 0 of 3+2 objects to node 0 until the node dies under them.
        let mut tasks = Vec::new();
        for t in 0..4u64 {
            let node = clients[0].clone();
            tasks.push(tokio::spawn(async move {
                let mut written = Vec::new();
                for j in 0..10_000u64 {
                    let mut rng = Rng::new(t * 1_000_000 + j);
                    let size = 300_000 + rng.below(700_000) as usize;
                    let e = encode(&mut rng, size, 65_536, 3, 2);
                    let acked = node
                        .put_shard(DiskId(1), &e.headers[0], &e.blocks[0])
                        .await
                        .is_ok();
                    written.push((e, acked));
                    if !acked {
                        break;
                    }
                }
                written
            }));
        }
        tokio::time::sleep(Duration::from_millis(700 + Rng::new(1).below(500))).await;
        cluster.kill_node(0);
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        let acked = all.iter().filter(|(_, a)| *a).count();
        assert!(
            acked > 0 && acked < all.len(),
            "the kill did not land mid-write ({acked} of {})",
            all.len()
        );
        cluster.start_node(0);
        let fresh = cluster.clients(&cluster.gateway_identity());
        cluster.wait_ready(&fresh).await;
        let mut whole = 0;
        for (j, (e, was_acked)) in all.iter().enumerate() {
            let n = e.geometry.stripe_count();
            match fresh[0].get_blocks(e.shard_key(0), 0, n).await {
                Ok(blocks) => {
                    // Stored at all means stored whole: every block present with a valid CRC.
                    for (s, b) in blocks.iter().enumerate() {
                        assert_eq!(
                            b,
                            &BlockResult::Ok(e.blocks[0][s].clone()),
                            "write {j} stripe {s}"
                        );
                    }
                    whole += 1;
                }
                Err(NetError::Remote {
                    code: ErrorCode::NotFound,
                    ..
                }) => {
                    assert!(!was_acked, "acked write {j} lost");
                }
                Err(e) => panic!("write {j}: {e}"),
            }
        }
        eprintln!(
            "writes: {}, acked before the kill: {acked}, stored whole after: {whole}",
            all.len()
        );
        // No temp file survived the restart.
        let tmp = cluster.root().join("sites/home/data/disk-1/tmp");
        assert_eq!(std::fs::read_dir(tmp).unwrap().count(), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_a_stored_block_is_reported_corrupt() {
    within(60, async {
        let (cluster, clients) = started(5).await;
        let mut rng = Rng::new(9);
        let e = encode(&mut rng, 200_000, 4096, 3, 2);
        for r in e.put(&clients).await {
            r.unwrap();
        }
        // Find shard 1's file on site-1 and flip one byte of stripe 4's block.
        let shards = cluster.root().join("sites/site-1/data/disk-2/shards");
        let file = walk(&shards).into_iter().next().expect("a shard file");
        let mut bytes = std::fs::read(&file).unwrap();
        bytes[4 * 4096 + 17] ^= 0x40;
        std::fs::write(&file, bytes).unwrap();
        let n = e.geometry.stripe_count();
        let got = clients[1].get_blocks(e.shard_key(1), 0, n).await.unwrap();
        for (s, b) in got.iter().enumerate() {
            if s == 4 {
                assert_eq!(b, &BlockResult::Corrupt);
            } else {
                assert_eq!(b, &BlockResult::Ok(e.blocks[1][s].clone()));
            }
        }
    })
    .await;
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn exclaved_refuses_exposed_secrets_missing_certificates_and_foreign_cas() {
    let cluster = Cluster::init(5, 3, 2);
    let site = cluster.root().join("sites/site-2");
    let start = || {
        run(
            Command::new(bin("exclaved"))
                .args(["--config", site.join("node.toml").to_str().unwrap()]),
            Duration::from_secs(20),
        )
    };

    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        site.join("node.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = start();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("node.key") && err.contains("readable by group or others"),
        "{err}"
    );
    std::fs::set_permissions(
        site.join("node.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();

    std::fs::rename(site.join("node.pem"), site.join("node.pem.away")).unwrap();
    let out = start();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("node.pem") && err.contains("No such file"),
        "{err}"
    );
    std::fs::rename(site.join("node.pem.away"), site.join("node.pem")).unwrap();

    // The cluster CA replaced by another: the node's certificate no longer verifies.
    let other = Ca::new("other").unwrap();
    std::fs::write(cluster.root().join("ca.pem"), &other.issued().cert_pem).unwrap();
    let out = start();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("node.pem") && err.contains("not valid under the cluster CA"),
        "{err}"
    );
}

#[test]
fn exclaved_speaks_sd_notify_ready_watchdog_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let cluster = Cluster::init(5, 3, 2);
    let sock_path = cluster.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut node = Command::new(bin("exclaved"));
    node.args(["--config", cluster.node_config(0).to_str().unwrap()])
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "200000");
    let mut child = cluster
        .with_node_port(0, &node)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let recv = || {
        let mut buf = [0u8; 256];
        let n = sock.recv(&mut buf).expect("a notification in time");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let first = recv();
    assert_eq!(first, "READY=1");
    let mut pings = 0;
    let started = Instant::now();
    while pings < 3 {
        let m = recv();
        assert_eq!(m, "WATCHDOG=1");
        pings += 1;
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "pings at half of 200 ms"
    );
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    loop {
        let m = recv();
        if m == "STOPPING=1" {
            break;
        }
        assert_eq!(m, "WATCHDOG=1", "only pings before STOPPING");
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "exclaved did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
}
