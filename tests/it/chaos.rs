//! Mixed PUT/GET load from 4 clients for 2 minutes while up to m sites are SIGKILLed at random
//! moments and restarted; then `exclave heal --wait` and `status --json`. Run with the default
//! write quorum (k + 1) and with `write_quorum = k + m`, under which every GET of an
//! acknowledged object must succeed while at most m sites are down.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use tokio::sync::Mutex;

use crate::sigv4::sha256_hex;
use crate::support::{Cluster, Rng, started_cluster, within};

const BUCKET: &str = "registry";
const LOAD: Duration = Duration::from_secs(120);

/// What a key may read back as: the last acknowledged body, and bodies of later PUTs that
/// failed (a failed PUT may or may not have taken effect).
#[derive(Default)]
struct Expect {
    acked: Option<String>,
    maybe: BTreeSet<String>,
}

#[derive(Default)]
struct Counts {
    puts_acked: AtomicU64,
    puts_failed: AtomicU64,
    gets_ok: AtomicU64,
    gets_failed: AtomicU64,
    wrong_bytes: AtomicU64,
    /// Each failed GET: seconds into the load, key, and the error as the client saw it.
    failures: std::sync::Mutex<Vec<String>>,
}

/// Whether the gateway reaches every site (its own view: `exclave status`).
fn all_sites_reachable(c: &Cluster) -> bool {
    let (addr, token) = c.gateway_admin();
    let (code, text) = crate::sigv4::send(
        addr,
        "GET",
        "/v1/status",
        &[
            ("host".into(), addr.to_string()),
            ("authorization".into(), format!("Bearer {token}")),
        ],
        b"",
    );
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    code == 200
        && serde_json::from_str::<serde_json::Value>(body).is_ok_and(|v| {
            v["sites"]
                .as_array()
                .is_some_and(|s| s.iter().all(|s| s["reachable"] == true))
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a slow fault test: ./check runs these one at a time (step \"slow fault tests\")"]
async fn mixed_load_while_sites_are_killed_loses_nothing_and_heals_whole() {
    let c = chaos("repair_interval_secs = 2").await;
    assert_eq!(
        c.wrong_bytes.load(Ordering::SeqCst),
        0,
        "wrong bytes served"
    );
    assert!(c.puts_acked.load(Ordering::SeqCst) > 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a slow fault test: ./check runs these one at a time (step \"slow fault tests\")"]
async fn with_write_quorum_k_plus_m_every_get_succeeds_while_m_sites_are_down() {
    let c = chaos("repair_interval_secs = 2\nwrite_quorum = 5").await;
    assert_eq!(
        c.wrong_bytes.load(Ordering::SeqCst),
        0,
        "wrong bytes served"
    );
    assert_eq!(
        c.gets_failed.load(Ordering::SeqCst),
        0,
        "a GET of an acknowledged object failed with at most m sites down"
    );
    assert!(c.puts_acked.load(Ordering::SeqCst) > 20);
}

/// The load and the kills with `gateway_options`; after heal, every acknowledged write must
/// read back. Returns the counts.
async fn chaos(gateway_options: &'static str) -> Arc<Counts> {
    within(600, async {
        let cluster = started_cluster(gateway_options).await;
        let s3 = cluster.s3_client(1);
        s3.create_bucket().bucket(BUCKET).send().await.unwrap();
        let cluster = Arc::new(Mutex::new(cluster));
        let model: Arc<Mutex<BTreeMap<String, Expect>>> = Arc::default();
        let counts = Arc::new(Counts::default());
        let stop = Arc::new(AtomicBool::new(false));

        // Chaos: at random moments kill one or two sites (never more than m = 2 down), and
        // restart them a few seconds later.
        let chaos = {
            let (cluster, stop) = (cluster.clone(), stop.clone());
            tokio::spawn(async move {
                let mut rng = Rng::new(2026);
                let mut kills = 0;
                while !stop.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(500 + rng.below(3000))).await;
                    let how_many = 1 + rng.below(2) as usize;
                    let mut victims = Vec::new();
                    while victims.len() < how_many {
                        let v = rng.below(5) as usize;
                        if !victims.contains(&v) {
                            victims.push(v);
                        }
                    }
                    {
                        let mut c = cluster.lock().await;
                        for &v in &victims {
                            c.kill_node(v);
                        }
                    }
                    kills += victims.len();
                    tokio::time::sleep(Duration::from_millis(1000 + rng.below(5000))).await;
                    {
                        let mut c = cluster.lock().await;
                        for &v in &victims {
                            c.start_node(v);
                        }
                        // Back in the gateway's view before anything else is killed: at most
                        // m sites are ever down.
                        let deadline = Instant::now() + Duration::from_secs(30);
                        while !tokio::task::block_in_place(|| all_sites_reachable(&c)) {
                            assert!(Instant::now() < deadline, "the sites did not come back");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
                kills
            })
        };

        let started = Instant::now();
        let mut clients = Vec::new();
        for id in 0..4u64 {
            let (s3, model, counts, stop) =
                (s3.clone(), model.clone(), counts.clone(), stop.clone());
            clients.push(tokio::spawn(async move {
                let mut rng = Rng::new(id + 100);
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let key = format!("client-{id}/k{}", rng.below(40));
                    if rng.below(2) == 0 {
                        let size = [100usize, 20_000, 300_000, 1_500_000][rng.below(4) as usize];
                        let mut body = rng.bytes(size);
                        body[..8].copy_from_slice(&n.to_le_bytes());
                        let h = sha256_hex(&body);
                        let r = s3
                            .put_object()
                            .bucket(BUCKET)
                            .key(&key)
                            .body(ByteStream::from(body))
                            .send()
                            .await;
                        let mut m = model.lock().await;
                        let e = m.entry(key).or_default();
                        if r.is_ok() {
                            counts.puts_acked.fetch_add(1, Ordering::SeqCst);
                            e.acked = Some(h);
                            e.maybe.clear();
                        } else {
                            counts.puts_failed.fetch_add(1, Ordering::SeqCst);
                            e.maybe.insert(h);
                        }
                    } else {
                        let acked = model
                            .lock()
                            .await
                            .get(&key)
                            .and_then(|e| e.acked.clone());
                        let Some(_) = acked else { continue };
                        let r = s3.get_object().bucket(BUCKET).key(&key).send().await;
                        let body = match r {
                            Ok(o) => o
                                .body
                                .collect()
                                .await
                                .map(|b| b.into_bytes())
                                .map_err(|e| format!("body: {e:?}")),
                            Err(e) => Err(format!("{e:?}")),
                        };
                        match body {
                            Ok(b) => {
                                let h = sha256_hex(&b);
                                let m = model.lock().await;
                                let e = &m[&key];
                                if e.acked.as_ref() == Some(&h) || e.maybe.contains(&h) {
                                    counts.gets_ok.fetch_add(1, Ordering::SeqCst);
                                } else {
                                    counts.wrong_bytes.fetch_add(1, Ordering::SeqCst);
                                }
                            }
                            Err(e) => {
                                counts.gets_failed.fetch_add(1, Ordering::SeqCst);
                                let at = started.elapsed().as_secs_f64();
                                let mut e = e;
                                e.truncate(1500);
                                counts.failures.lock().unwrap().push(format!("{at:.1}s {key}: {e}"));
                            }
                        }
                    }
                }
            }));
        }
        tokio::time::sleep(LOAD).await;
        stop.store(true, Ordering::SeqCst);
        for c in clients {
            c.await.unwrap();
        }
        let kills = chaos.await.unwrap();
        assert!(started.elapsed() >= LOAD);

        // Every site back; heal until whole.
        let mut c = cluster.lock().await;
        for i in 0..5 {
            if !c.node_alive(i) {
                c.start_node(i);
            }
        }
        c.heal_and_status();
        let gateway_log = c.root().join("gateway/exclaved.log");

        // No acknowledged write lost: every key reads back as its last acked body (or a later
        // failed attempt that took effect), with every site up.
        let mut lost = 0;
        for (key, e) in model.lock().await.iter() {
            let Some(acked) = &e.acked else { continue };
            let r = s3.get_object().bucket(BUCKET).key(key).send().await;
            let h = match r {
                Ok(o) => sha256_hex(&o.body.collect().await.unwrap().into_bytes()),
                Err(_) => String::new(),
            };
            if &h != acked && !e.maybe.contains(&h) {
                lost += 1;
            }
        }
        let c = &counts;
        eprintln!(
            "chaos ({gateway_options:?}): {kills} kills; PUT acked {} failed {}; GET ok {} failed {} wrong {}; lost after heal {lost}",
            c.puts_acked.load(Ordering::SeqCst),
            c.puts_failed.load(Ordering::SeqCst),
            c.gets_ok.load(Ordering::SeqCst),
            c.gets_failed.load(Ordering::SeqCst),
            c.wrong_bytes.load(Ordering::SeqCst),
        );
        let failures = c.failures.lock().unwrap();
        if !failures.is_empty() {
            eprintln!("failed GETs:\n{}", failures.join("\n"));
            let log = std::fs::read_to_string(&gateway_log).unwrap_or_default();
            let warnings: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                .collect();
            eprintln!(
                "gateway warnings ({} lines, the last 60):\n{}",
                warnings.len(),
                warnings[warnings.len().saturating_sub(60)..].join("\n")
            );
        }
        drop(failures);
        assert_eq!(lost, 0, "acknowledged writes lost");
        assert!(kills >= 10);
        counts
    }).await
}
