//! Mixed PUT/GET/DELETE/multipart load from 4 clients while sites are SIGKILLed and restarted,
//! SIGSTOPped (slow, not dead) and continued, and the gateway itself is SIGKILLed and
//! restarted; never more than m sites away at once. A second bucket has object lock and a
//! lifecycle rule that removes noncurrent versions: versions written there under a legal hold
//! or a COMPLIANCE retention are attacked by DELETEs by id (with the bypass header) and must
//! all read back by id at the end. Then `exclave heal --wait` and `status --json`, and every
//! key is read back.
//!
//! What is asserted, at every write quorum: no acknowledged write is lost; no wrong bytes are
//! served, and no acknowledged object answers NoSuchKey (a correctness failure, not an
//! availability one); the outage windows really happened (kills confirmed, reads served during
//! two-site outages, writes acknowledged during one-site outages at the default quorum). With
//! `write_quorum = k + m`, every GET of an acknowledged object also succeeds while at most m
//! sites are away (requests that overlap a gateway restart are counted apart).
//!
//! The two tests run the load for 2 minutes (./check's slow step, one at a time).
//! `ten_minutes_of_chaos` runs it for `EXCLAVE_CHAOS_SECS` (default 600) at both quorums and
//! prints the figures the README gives; it is skipped by ./check:
//! `cargo test --release --test it chaos::ten_minutes -- --ignored --nocapture`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, CompletedMultipartUpload, CompletedPart, ExpirationStatus,
    LifecycleRule, LifecycleRuleFilter, NoncurrentVersionExpiration, ObjectLockLegalHoldStatus,
    ObjectLockMode,
};
use tokio::sync::Mutex;

use crate::ops::admin_get;
use crate::sigv4::sha256_hex;
use crate::support::{Cluster, Rng, all_reachable, started_cluster, within};

const BUCKET: &str = "registry";
/// A bucket with object lock: versions written under a legal hold or a COMPLIANCE retention
/// must outlive every fault, every DELETE by id, the lifecycle rule that expires noncurrent
/// versions after a day and the collector.
const SEALED: &str = "sealed";
const CLIENTS: u64 = 4;
/// The prefix of the keys the fault task reads during outages (no client writes them).
const PROBE: &str = "probe/";

/// What a key may read back as. `None` is "no such key" (deleted, or never written).
#[derive(Default)]
struct Expect {
    /// The state the last acknowledged write or delete left (outer None: nothing acknowledged
    /// yet, and the key is not read).
    acked: Option<Option<String>>,
    /// States of later writes and deletes that failed: each may or may not have taken effect.
    maybe: BTreeSet<Option<String>>,
}

impl Expect {
    fn allows(&self, state: &Option<String>) -> bool {
        self.acked.as_ref() == Some(state) || self.maybe.contains(state)
    }

    fn acknowledge(&mut self, state: Option<String>) {
        self.acked = Some(state);
        self.maybe.clear();
    }
}

/// What the sealed bucket must show: each key's current state, and every locked version
/// acknowledged (key, version id, SHA-256), which must read back by id whatever happened.
#[derive(Default)]
struct Sealed {
    current: BTreeMap<String, Expect>,
    locked: Vec<(String, String, String)>,
}

/// Sites away and the gateway's restarts, as the chaos task makes them.
#[derive(Default)]
struct World {
    /// Sites killed or stopped now (0 again as soon as they are restarted or continued).
    away: AtomicUsize,
    /// Even while the gateway serves, odd from its kill until it accepts connections again.
    gateway: AtomicU64,
}

impl World {
    /// (sites away, gateway generation) now.
    fn now(&self) -> (usize, u64) {
        (
            self.away.load(Ordering::SeqCst),
            self.gateway.load(Ordering::SeqCst),
        )
    }
}

#[derive(Default)]
struct Counts {
    puts_acked: AtomicU64,
    writes_failed: AtomicU64,
    deletes_acked: AtomicU64,
    multipart_acked: AtomicU64,
    gets_ok: AtomicU64,
    /// GETs that failed with the gateway up throughout and at most m sites away.
    gets_failed: AtomicU64,
    /// GETs that failed while the gateway was being restarted.
    gets_gateway_down: AtomicU64,
    /// Wrong bytes, or NoSuchKey for an acknowledged object.
    wrong: AtomicU64,
    /// Versions acknowledged under a legal hold or retention.
    locked_acked: AtomicU64,
    /// Multipart uploads aborted (a part sent first).
    aborts_acked: AtomicU64,
    /// DELETEs by id of a locked version refused (403 AccessDenied).
    lock_refusals: AtomicU64,
    /// DELETEs by id of a locked version that succeeded: never.
    lock_violations: AtomicU64,
    /// Acknowledged writes with exactly 1 (index 1) or 2 sites away throughout.
    writes_during: [AtomicU64; 3],
    /// Successful GETs with exactly 0, 1 or 2 sites away throughout.
    gets_during: [AtomicU64; 3],
    /// Each failed or wrong GET: when, which key, what the client saw.
    failures: std::sync::Mutex<Vec<String>>,
}

impl Counts {
    fn note(&self, what: String) {
        let mut w = what;
        w.truncate(1500);
        self.failures.lock().unwrap().push(w);
    }
}

/// What the chaos task did.
#[derive(Debug, Default)]
struct Done {
    kills: usize,
    stops: usize,
    gateway_kills: usize,
    /// Times `FULL_SITE`'s disk was made full (a small disk), and freed.
    disk_fills: usize,
    disk_frees: usize,
    /// Steps of `CLOCK_SITE`'s wall clock.
    clock_steps: usize,
}

/// The site whose disk the long runs fill and free.
const FULL_SITE: usize = 3;
/// The site whose wall clock the long runs step (libfaketime).
const CLOCK_SITE: usize = 4;
/// The steps, in turn (libfaketime offsets).
const CLOCK_OFFSETS: [&str; 4] = ["+1d", "+0", "-2h", "+0"];

/// The chaos: the gateway's options, for how long the load runs, and whether one site's disk
/// is filled and freed and another's clock stepped (the long runs).
struct Plan {
    gateway_options: &'static str,
    load: Duration,
    disk_and_clock: bool,
}

/// libfaketime (Debian package `faketime`), for stepping a node's wall clock.
fn libfaketime() -> PathBuf {
    [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib",
    ]
    .iter()
    .map(|d| Path::new(d).join("faketime/libfaketime.so.1"))
    .find(|p| p.exists())
    .expect("the long chaos run steps a node's clock with libfaketime: apt-get install faketime")
}

/// Bytes under `path`.
fn bytes_under(path: &Path) -> u64 {
    let out = std::process::Command::new("du")
        .args(["-sb"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

impl Plan {
    /// Whether the load writes large objects (1.5 MB PUTs, 3% multipart of 5 MiB): in the
    /// two-minute runs. Every version is kept, so a long run writes smaller ones (up to
    /// 300 KB, 1% multipart): about 0.6 GB a minute at the five sites instead of over 2.
    fn large(&self) -> bool {
        self.load <= Duration::from_secs(180)
    }
}

/// Free bytes on the file system of the system's temporary directory (where clusters live).
fn free_tmp_bytes() -> u64 {
    let out = std::process::Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(std::env::temp_dir())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a slow fault test: ./check runs these one at a time (step \"slow fault tests\")"]
async fn mixed_load_while_sites_are_killed_loses_nothing_and_heals_whole() {
    // The collector runs every 3 s through the load (a version buried 3 s ago goes).
    let r = chaos(Plan {
        gateway_options: "repair_interval_secs = 2\ngc_interval_secs = 3\ngc_grace_secs = 3\n\
                          lifecycle_interval_secs = 2\nlifecycle_day_secs = 1",
        load: Duration::from_secs(120),
        disk_and_clock: false,
    })
    .await;
    // At the default quorum (k + 1), writes go on with one site away.
    assert!(
        r.writes_during[1].load(Ordering::SeqCst) > 0,
        "no write was acknowledged during a one-site outage"
    );
    assert!(r.puts_acked.load(Ordering::SeqCst) > 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a slow fault test: ./check runs these one at a time (step \"slow fault tests\")"]
async fn with_write_quorum_k_plus_m_every_get_succeeds_while_m_sites_are_down() {
    let r = chaos(Plan {
        gateway_options: "repair_interval_secs = 2\nwrite_quorum = 5",
        load: Duration::from_secs(120),
        disk_and_clock: false,
    })
    .await;
    assert_eq!(
        r.gets_failed.load(Ordering::SeqCst),
        0,
        "a GET of an acknowledged object failed with at most m sites away and the gateway up"
    );
    assert!(r.puts_acked.load(Ordering::SeqCst) > 20);
}

/// Ten minutes (`EXCLAVE_CHAOS_SECS`) at each write quorum, figures printed. Not run by ./check.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "ten minutes per quorum: run by hand (README, \"Chaos\")"]
async fn ten_minutes_of_chaos() {
    let secs: u64 = std::env::var("EXCLAVE_CHAOS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    for (quorum, options) in [
        ("k + 1", "repair_interval_secs = 2"),
        ("k + m", "repair_interval_secs = 2\nwrite_quorum = 5"),
    ] {
        let r = chaos(Plan {
            gateway_options: options,
            load: Duration::from_secs(secs),
            disk_and_clock: true,
        })
        .await;
        let ok = r.gets_ok.load(Ordering::SeqCst);
        let failed = r.gets_failed.load(Ordering::SeqCst);
        println!(
            "write quorum {quorum}: GET success {:.2}% of acknowledged objects ({ok} ok, {failed} failed with the gateway up; {} during gateway restarts)",
            100.0 * ok as f64 / (ok + failed).max(1) as f64,
            r.gets_gateway_down.load(Ordering::SeqCst),
        );
    }
}

/// The load and the faults of `plan`; afterwards heal, and every acknowledged state must read
/// back. Returns the counts.
async fn chaos(plan: Plan) -> Arc<Counts> {
    let limit = 300 + plan.load.as_secs() * 2;
    // Every version is kept: a long run must not fill the disk it shares with everything else
    // (a ten-minute run with large objects did, at over 2 GB a minute).
    let need = if plan.large() {
        0
    } else {
        (plan.load.as_secs() / 60) << 30
    };
    let free = free_tmp_bytes();
    assert!(
        free >= need + (2 << 30),
        "{} GiB free in {}; this run needs about {} GiB (every version is kept)",
        free >> 30,
        std::env::temp_dir().display(),
        need >> 30
    );
    let large = plan.large();
    within(limit, async {
        let mut cluster = started_cluster(plan.gateway_options).await;
        // The clock site runs under libfaketime from the start, its offset in a file the
        // fault task rewrites (the monotonic clock is left alone: timers keep working).
        let clock_file = cluster.root().join("faketime-offset");
        if plan.disk_and_clock {
            std::fs::write(&clock_file, "+0").unwrap();
            let lib = libfaketime();
            cluster.set_node_env(
                CLOCK_SITE,
                &[
                    ("LD_PRELOAD", lib.to_str().unwrap()),
                    ("FAKETIME_TIMESTAMP_FILE", clock_file.to_str().unwrap()),
                    ("FAKETIME_NO_CACHE", "1"),
                    ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
                ],
            );
            cluster.kill_node(CLOCK_SITE);
            cluster.start_node(CLOCK_SITE);
            every_site_back(&cluster).await;
        }
        let s3 = cluster.s3_client(1);
        s3.create_bucket().bucket(BUCKET).send().await.unwrap();
        s3.create_bucket()
            .bucket(SEALED)
            .object_lock_enabled_for_bucket(true)
            .send()
            .await
            .unwrap();
        s3.put_bucket_lifecycle_configuration()
            .bucket(SEALED)
            .lifecycle_configuration(
                BucketLifecycleConfiguration::builder()
                    .rules(
                        LifecycleRule::builder()
                            .id("noncurrent")
                            .status(ExpirationStatus::Enabled)
                            .filter(LifecycleRuleFilter::builder().prefix("").build())
                            .noncurrent_version_expiration(
                                NoncurrentVersionExpiration::builder()
                                    .noncurrent_days(1)
                                    .build(),
                            )
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        let sealed: Arc<Mutex<Sealed>> = Arc::default();
        let gateway_log = cluster.root().join("gateway/exclaved.log");
        let cluster = Arc::new(Mutex::new(cluster));
        let model: Arc<Mutex<BTreeMap<String, Expect>>> = Arc::default();
        let counts = Arc::new(Counts::default());
        let world = Arc::new(World::default());
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();

        // The fault task reads its own keys (written now, never changed) through its own
        // client while sites are away, so that reads during two-site outages happen in every
        // run: the load's clients may all be waiting on writes then.
        let mut rng = Rng::new(99);
        for (i, size) in [100, 20_000, 300_000, 1_500_000].into_iter().enumerate() {
            let body = rng.bytes(size);
            let key = format!("{PROBE}k{i}");
            s3.put_object()
                .bucket(BUCKET)
                .key(&key)
                .body(ByteStream::from(body.clone()))
                .send()
                .await
                .unwrap();
            let mut e = Expect::default();
            e.acknowledge(Some(sha256_hex(&body)));
            model.lock().await.insert(key, e);
        }
        let client = |id| Client {
            id,
            s3: s3.clone(),
            model: model.clone(),
            sealed: sealed.clone(),
            counts: counts.clone(),
            world: world.clone(),
            started,
            large,
        };
        let probe = client(CLIENTS);
        let extras = plan.disk_and_clock.then(|| clock_file.clone());
        let faults = tokio::spawn(faults(
            cluster.clone(),
            world.clone(),
            stop.clone(),
            probe,
            extras,
        ));
        let mut clients = Vec::new();
        for id in 0..CLIENTS {
            let ctx = client(id);
            let stop = stop.clone();
            clients.push(tokio::spawn(async move {
                let mut rng = Rng::new(id + 100);
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    ctx.one(&mut rng, n).await;
                    // While the gateway is down, requests fail at once: no spinning.
                    if ctx.world.now().1 % 2 == 1 {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }));
        }
        tokio::time::sleep(plan.load).await;
        stop.store(true, Ordering::SeqCst);
        for c in clients {
            c.await.unwrap();
        }
        let done = faults.await.unwrap();
        assert!(started.elapsed() >= plan.load);

        // Everything back; heal until whole.
        let c = cluster.lock().await;
        let heal_started = Instant::now();
        c.heal_and_status();
        let heal_took = heal_started.elapsed();

        // No acknowledged write lost: every key reads back as its last acknowledged state (or
        // a later failed attempt that took effect), with everything up (and retries on).
        let s3 = c.s3_client(3);
        let (keys, mut lost) = lost_keys(&s3, &*model.lock().await).await;
        lost.extend(sealed_lost(&s3, &*sealed.lock().await).await);
        // The lifecycle rule ran through the load: noncurrent versions went, locked ones were
        // left (and all read back above).
        if plan.gateway_options.contains("lifecycle_") {
            let out = c.exclave_cli(&["lifecycle", "--json"], Duration::from_secs(300));
            let report: serde_json::Value = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|_| panic!("lifecycle: {}", String::from_utf8_lossy(&out.stderr)));
            let (admin, token) = c.gateway_admin();
            let (_, metrics) = admin_get(admin, "/metrics", &token);
            let count = |action: &str| {
                metrics
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix(&format!(
                            "exclave_lifecycle_actions_total{{action=\"{action}\"}} "
                        ))
                    })
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            eprintln!(
                "lifecycle over the run: {} noncurrent versions removed, {} times a locked one left; last pass: {report}",
                count("noncurrent_removed"),
                count("protected")
            );
            assert!(count("noncurrent_removed") > 0.0, "{metrics}");
            assert!(
                out.status.success(),
                "a lifecycle action failed with every site up: {report:#}"
            );
            assert!(count("protected") > 0.0, "{metrics}");
            // A removal a gateway kill cut short of its quorum, learned by that pass, is spread
            // by repair (heal waits for it) before the collector weighs it.
            c.heal_and_status();
        }
        // With the collector running through the load: one more pass, with its grace period
        // waited out, leaves no garbage but orphans younger than their age, and takes nothing
        // a key keeps.
        if plan.gateway_options.contains("gc_") {
            let out = c.exclave_cli(&["gc", "--wait", "--json"], Duration::from_secs(300));
            let report: serde_json::Value = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|_| panic!("gc: {}", String::from_utf8_lossy(&out.stderr)));
            assert!(out.status.success(), "{report:#}");
            let left: u64 = report["waiting"]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(why, _)| *why != "orphan-age")
                .map(|(_, t)| t["bytes"].as_u64().unwrap())
                .sum();
            assert_eq!(left, 0, "garbage left after gc --wait: {report:#}");
            assert_eq!(report["protected"], 0);
            let collected: u64 = report["sites"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["collected_total"]["bytes"].as_u64().unwrap())
                .sum();
            eprintln!(
                "collector: {collected} bytes collected at the sites over the run; after it, \
                 {} bytes of young orphans wait",
                report["waiting"]["orphan-age"]["bytes"]
                    .as_u64()
                    .unwrap_or(0)
            );
            assert!(collected > 0, "the collector collected nothing: {report:#}");
            lost.extend(lost_keys(&s3, &*model.lock().await).await.1);
            lost.extend(sealed_lost(&s3, &*sealed.lock().await).await);
        }
        let n = &counts;
        eprintln!(
            "chaos ({:?}, {} s): {done:?}; PUT acked {}; writes failed {}; DELETE acked {}; multipart acked {}; \
             acked with 1 / 2 sites away {} / {}; GET ok {} (with 0 / 1 / 2 sites away {} / {} / {}), \
             failed {}, during gateway restarts {}, wrong {}; locked versions acked {}, deletes of \
             them refused {}; uploads aborted {}; after heal ({:.1} s) {keys} keys, lost {}",
            plan.gateway_options,
            plan.load.as_secs(),
            n.puts_acked.load(Ordering::SeqCst),
            n.writes_failed.load(Ordering::SeqCst),
            n.deletes_acked.load(Ordering::SeqCst),
            n.multipart_acked.load(Ordering::SeqCst),
            n.writes_during[1].load(Ordering::SeqCst),
            n.writes_during[2].load(Ordering::SeqCst),
            n.gets_ok.load(Ordering::SeqCst),
            n.gets_during[0].load(Ordering::SeqCst),
            n.gets_during[1].load(Ordering::SeqCst),
            n.gets_during[2].load(Ordering::SeqCst),
            n.gets_failed.load(Ordering::SeqCst),
            n.gets_gateway_down.load(Ordering::SeqCst),
            n.wrong.load(Ordering::SeqCst),
            n.locked_acked.load(Ordering::SeqCst),
            n.lock_refusals.load(Ordering::SeqCst),
            n.aborts_acked.load(Ordering::SeqCst),
            heal_took.as_secs_f64(),
            lost.len(),
        );
        if plan.disk_and_clock {
            let log = std::fs::read_to_string(&gateway_log).unwrap_or_default();
            eprintln!(
                "disk full at site {FULL_SITE}: {} gateway log lines name it; clock of site {CLOCK_SITE} stepped {} times",
                log.lines().filter(|l| l.contains("disk full")).count(),
                done.clock_steps
            );
        }
        let failures = n.failures.lock().unwrap().clone();
        if !failures.is_empty() {
            eprintln!("failed or wrong GETs:\n{}", failures.join("\n"));
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
        assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
        assert_eq!(
            n.lock_violations.load(Ordering::SeqCst),
            0,
            "a locked version was deleted by id"
        );
        assert!(n.locked_acked.load(Ordering::SeqCst) > 0, "no locked version was written");
        assert_eq!(
            n.wrong.load(Ordering::SeqCst),
            0,
            "wrong bytes served, or NoSuchKey for an acknowledged object"
        );
        // The interesting windows happened.
        assert!(done.kills >= 6, "{done:?}");
        assert!(done.stops >= 2 && done.gateway_kills >= 2, "{done:?}");
        assert!(
            n.gets_during[2].load(Ordering::SeqCst) > 0,
            "no GET was served during a two-site outage"
        );
        counts.clone()
    })
    .await
}

/// The model's keys with an acknowledged write, and those that do not read back as their last
/// acknowledged state (or a later failed attempt that took effect).
async fn lost_keys(
    s3: &aws_sdk_s3::Client,
    model: &BTreeMap<String, Expect>,
) -> (usize, Vec<String>) {
    lost_in(s3, BUCKET, model).await
}

/// As [`lost_keys`], in `bucket`.
async fn lost_in(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    model: &BTreeMap<String, Expect>,
) -> (usize, Vec<String>) {
    let mut lost = Vec::new();
    let mut keys = 0;
    for (key, e) in model.iter() {
        if e.acked.is_none() {
            continue;
        }
        keys += 1;
        let state = match read_in(s3, bucket, key).await {
            Ok(state) => state,
            Err(err) => Some(format!("unreadable: {err}")),
        };
        if !e.allows(&state) {
            lost.push(key.clone());
        }
    }
    (keys, lost)
}

/// The sealed bucket's keys that do not read back as their model allows, and its locked
/// versions that do not read back by id with their bytes.
async fn sealed_lost(s3: &aws_sdk_s3::Client, sealed: &Sealed) -> Vec<String> {
    let mut lost = lost_in(s3, SEALED, &sealed.current).await.1;
    for (key, id, hash) in &sealed.locked {
        let got = match s3
            .get_object()
            .bucket(SEALED)
            .key(key)
            .version_id(id)
            .send()
            .await
        {
            Ok(o) => o
                .body
                .collect()
                .await
                .map(|b| sha256_hex(&b.into_bytes()))
                .unwrap_or_default(),
            Err(e) => format!("{e:?}"),
        };
        if &got != hash {
            lost.push(format!("{SEALED}/{key}?versionId={id}: {got}"));
        }
    }
    lost
}

/// One S3 client of the load.
struct Client {
    id: u64,
    s3: aws_sdk_s3::Client,
    model: Arc<Mutex<BTreeMap<String, Expect>>>,
    sealed: Arc<Mutex<Sealed>>,
    counts: Arc<Counts>,
    world: Arc<World>,
    started: Instant,
    /// Large objects (see `Plan::large`).
    large: bool,
}

/// A GET: the key's state (`None`: no such key), or the error.
async fn read(s3: &aws_sdk_s3::Client, key: &str) -> Result<Option<String>, String> {
    read_in(s3, BUCKET, key).await
}

/// As [`read`], in `bucket`.
async fn read_in(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Option<String>, String> {
    match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(o) => match o.body.collect().await {
            Ok(b) => Ok(Some(sha256_hex(&b.into_bytes()))),
            Err(e) => Err(format!("body: {e:?}")),
        },
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
        Err(e) => Err(format!("{e:?}")),
    }
}

impl Client {
    /// One operation on one of this client's 40 keys (no two clients share a key).
    async fn one(&self, rng: &mut Rng, n: u64) {
        let key = format!("client-{}/k{}", self.id, rng.below(40));
        let before = self.world.now();
        let roll = rng.below(100);
        if roll < 40 {
            self.get(&key, before).await;
            return;
        }
        if roll < 48 {
            self.sealed_op(rng, n).await;
            return;
        }
        // A write: a PUT, a DELETE, or (rarely) a two-part multipart upload.
        let multipart_from = if self.large { 97 } else { 99 };
        let (result, state) = if roll < 85 {
            let sizes: &[usize] = if self.large {
                &[100, 20_000, 300_000, 1_500_000]
            } else {
                &[100, 20_000, 300_000]
            };
            let size = sizes[rng.below(sizes.len() as u64) as usize];
            let mut body = rng.bytes(size);
            body[..8].copy_from_slice(&n.to_le_bytes());
            let h = sha256_hex(&body);
            let r = self
                .s3
                .put_object()
                .bucket(BUCKET)
                .key(&key)
                .body(ByteStream::from(body))
                .send()
                .await;
            (r.map(|_| &self.counts.puts_acked).map_err(|_| ()), Some(h))
        } else if roll < multipart_from {
            let r = self
                .s3
                .delete_object()
                .bucket(BUCKET)
                .key(&key)
                .send()
                .await;
            (r.map(|_| &self.counts.deletes_acked).map_err(|_| ()), None)
        } else if n.is_multiple_of(3) {
            // An upload abandoned: a part sent, then aborted; the key is untouched.
            if self.aborted(&key, rng.bytes(1 << 20)).await.is_ok() {
                self.counts.aborts_acked.fetch_add(1, Ordering::SeqCst);
            }
            return;
        } else {
            let mut first = rng.bytes(5 << 20);
            first[..8].copy_from_slice(&n.to_le_bytes());
            let last = rng.bytes(100_000);
            let h = sha256_hex(&[first.as_slice(), last.as_slice()].concat());
            let r = self.multipart(&key, first, last).await;
            (r.map(|_| &self.counts.multipart_acked), Some(h))
        };
        let after = self.world.now();
        let mut m = self.model.lock().await;
        let e = m.entry(key).or_default();
        match result {
            Ok(counter) => {
                counter.fetch_add(1, Ordering::SeqCst);
                e.acknowledge(state);
                if before.0 == after.0 && (1..=2).contains(&before.0) {
                    self.counts.writes_during[before.0].fetch_add(1, Ordering::SeqCst);
                }
            }
            Err(()) => {
                self.counts.writes_failed.fetch_add(1, Ordering::SeqCst);
                e.maybe.insert(state);
            }
        }
    }

    /// In the sealed bucket: a PUT (half of them under a legal hold or a day's COMPLIANCE
    /// retention), or a DELETE by id of a locked version, which must be refused.
    async fn sealed_op(&self, rng: &mut Rng, n: u64) {
        let key = format!("client-{}/s{}", self.id, rng.below(10));
        if rng.below(10) < 3 {
            let target = {
                let s = self.sealed.lock().await;
                (!s.locked.is_empty())
                    .then(|| s.locked[rng.below(s.locked.len() as u64) as usize].clone())
            };
            let Some((key, id, _)) = target else { return };
            match self
                .s3
                .delete_object()
                .bucket(SEALED)
                .key(&key)
                .version_id(&id)
                .bypass_governance_retention(true)
                .send()
                .await
            {
                Ok(_) => {
                    self.counts.lock_violations.fetch_add(1, Ordering::SeqCst);
                    self.counts.note(format!(
                        "DELETE of locked {SEALED}/{key}?versionId={id} succeeded"
                    ));
                }
                Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 403) => {
                    self.counts.lock_refusals.fetch_add(1, Ordering::SeqCst);
                }
                Err(_) => {}
            }
            return;
        }
        let mut body = rng.bytes(20_000);
        body[..8].copy_from_slice(&n.to_le_bytes());
        let h = sha256_hex(&body);
        let mut put = self
            .s3
            .put_object()
            .bucket(SEALED)
            .key(&key)
            .body(ByteStream::from(body));
        let lock = rng.below(4);
        if lock == 0 {
            put = put.object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On);
        } else if lock == 1 {
            let until = std::time::SystemTime::now() + Duration::from_secs(86_400);
            put = put
                .object_lock_mode(ObjectLockMode::Compliance)
                .object_lock_retain_until_date(aws_sdk_s3::primitives::DateTime::from(until));
        }
        let r = put.send().await;
        let mut s = self.sealed.lock().await;
        let e = s.current.entry(key.clone()).or_default();
        match r {
            Ok(out) => {
                e.acknowledge(Some(h.clone()));
                if lock <= 1 {
                    self.counts.locked_acked.fetch_add(1, Ordering::SeqCst);
                    s.locked.push((key, out.version_id.unwrap_or_default(), h));
                }
            }
            Err(_) => {
                self.counts.writes_failed.fetch_add(1, Ordering::SeqCst);
                e.maybe.insert(Some(h));
            }
        }
    }

    async fn get(&self, key: &str, before: (usize, u64)) {
        let expect_known = self
            .model
            .lock()
            .await
            .get(key)
            .is_some_and(|e| e.acked.is_some());
        if !expect_known {
            return;
        }
        let r = read(&self.s3, key).await;
        let after = self.world.now();
        let at = self.started.elapsed().as_secs_f64();
        let m = self.model.lock().await;
        let e = &m[key];
        match r {
            Ok(state) if e.allows(&state) => {
                self.counts.gets_ok.fetch_add(1, Ordering::SeqCst);
                if before.0 == after.0 && before.0 <= 2 {
                    self.counts.gets_during[before.0].fetch_add(1, Ordering::SeqCst);
                }
            }
            Ok(state) => {
                self.counts.wrong.fetch_add(1, Ordering::SeqCst);
                self.counts.note(format!(
                    "{at:.1}s {key}: WRONG: read {state:?}, acknowledged {:?}, maybe {:?}",
                    e.acked, e.maybe
                ));
            }
            Err(err) => {
                // A gateway restart overlapping the request is not a site outage.
                if before.1 != after.1 || before.1 % 2 == 1 {
                    self.counts.gets_gateway_down.fetch_add(1, Ordering::SeqCst);
                } else {
                    self.counts.gets_failed.fetch_add(1, Ordering::SeqCst);
                    self.counts.note(format!(
                        "{at:.1}s {key} ({} sites away): {err}",
                        before.0.max(after.0)
                    ));
                }
            }
        }
    }

    /// GETs of the probe keys (which nothing writes while they are read), one after
    /// another, until `until` (one may run past it).
    async fn read_until(&self, rng: &mut Rng, until: Instant) {
        while Instant::now() < until {
            let key = format!("{PROBE}k{}", rng.below(4));
            self.get(&key, self.world.now()).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A multipart upload of two parts (5 MiB and the rest), completed.
    /// A multipart upload of one part, aborted.
    async fn aborted(&self, key: &str, part: Vec<u8>) -> Result<(), ()> {
        let up = self
            .s3
            .create_multipart_upload()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .map_err(|_| ())?;
        let id = up.upload_id().ok_or(())?;
        self.s3
            .upload_part()
            .bucket(BUCKET)
            .key(key)
            .upload_id(id)
            .part_number(1)
            .body(ByteStream::from(part))
            .send()
            .await
            .map_err(|_| ())?;
        self.s3
            .abort_multipart_upload()
            .bucket(BUCKET)
            .key(key)
            .upload_id(id)
            .send()
            .await
            .map(|_| ())
            .map_err(|_| ())
    }

    async fn multipart(&self, key: &str, first: Vec<u8>, last: Vec<u8>) -> Result<(), ()> {
        let up = self
            .s3
            .create_multipart_upload()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .map_err(|_| ())?;
        let id = up.upload_id().ok_or(())?;
        let mut parts = Vec::new();
        for (i, body) in [first, last].into_iter().enumerate() {
            let n = i as i32 + 1;
            let p = self
                .s3
                .upload_part()
                .bucket(BUCKET)
                .key(key)
                .upload_id(id)
                .part_number(n)
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(|_| ())?;
            parts.push(
                CompletedPart::builder()
                    .part_number(n)
                    .set_e_tag(p.e_tag().map(str::to_owned))
                    .build(),
            );
        }
        self.s3
            .complete_multipart_upload()
            .bucket(BUCKET)
            .key(key)
            .upload_id(id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(|_| ())
    }
}

/// Whether the gateway answers and reaches every site (its own view: `exclave status`).
fn all_sites_reachable(c: &Cluster) -> bool {
    let (addr, token) = c.gateway_admin();
    let (code, body) = admin_get(addr, "/v1/status", &token);
    code == 200 && serde_json::from_str(&body).is_ok_and(|v| all_reachable(&v))
}

/// One fault at a time, each undone before the next, never more than m = 2 sites away, in a
/// fixed rotation (so that every kind happens in any run of 4 rounds): kill two sites
/// (restarted 2-6 s later), kill one, stop one (continued 1-5 s later), kill the gateway
/// (restarted 0.3-2 s later); 0.5-2.5 s between faults. While sites are killed, `probe` reads
/// acknowledged keys. After each fault, waits until the gateway reaches every site again.
/// Ends when `stop` turns true, with everything up.
async fn faults(
    cluster: Arc<Mutex<Cluster>>,
    world: Arc<World>,
    stop: Arc<AtomicBool>,
    probe: Client,
    clock_file: Option<PathBuf>,
) -> Done {
    let mut rng = Rng::new(2026);
    let mut done = Done::default();
    let mut round = 0u64;
    let mut full = false;
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(500 + rng.below(2000))).await;
        round += 1;
        let mut c = cluster.lock().await;
        // The long runs: every tenth round fills `FULL_SITE`'s disk (restarted on a small one
        // with 32 MiB free) or frees it (moved back, all it wrote kept); every tenth, five
        // rounds later, steps `CLOCK_SITE`'s wall clock.
        let extra = clock_file.as_ref().and_then(|f| match round % 10 {
            5 => Some(None),
            0 => Some(Some(f)),
            _ => None,
        });
        match extra {
            Some(None) => {
                world.away.store(1, Ordering::SeqCst);
                if full {
                    tokio::task::block_in_place(|| c.free_small_disk(FULL_SITE));
                    c.start_node(FULL_SITE);
                    done.disk_frees += 1;
                } else {
                    c.kill_node(FULL_SITE);
                    let used = bytes_under(&c.disk_of(FULL_SITE).1);
                    c.start_node_on_small_disk(FULL_SITE, used + (32 << 20));
                    done.disk_fills += 1;
                }
                full = !full;
                world.away.store(0, Ordering::SeqCst);
            }
            Some(Some(file)) => {
                let offset = CLOCK_OFFSETS[done.clock_steps % CLOCK_OFFSETS.len()];
                std::fs::write(file, offset).unwrap();
                done.clock_steps += 1;
            }
            None => {}
        }
        if extra.is_some() {
            drop(c);
            tokio::time::sleep(Duration::from_millis(500)).await;
            c = cluster.lock().await;
        } else {
            match round % 4 {
                0 | 1 => {
                    let how_many = if round.is_multiple_of(4) { 2 } else { 1 };
                    // The site on a small disk is left alone (killed, it would come back without
                    // what it wrote there).
                    let spare = full.then_some(FULL_SITE);
                    let victims = distinct(&mut rng, how_many, spare);
                    for &v in &victims {
                        c.kill_node(v);
                        assert!(!c.node_alive(v), "node {v} still runs after SIGKILL");
                    }
                    // Counted away only once dead, and no longer before the restart: an operation
                    // counted "during" the outage lay wholly inside it.
                    world.away.store(victims.len(), Ordering::SeqCst);
                    done.kills += victims.len();
                    drop(c);
                    let until = Instant::now() + Duration::from_millis(2000 + rng.below(4000));
                    probe.read_until(&mut rng, until).await;
                    tokio::time::sleep_until(until.into()).await;
                    c = cluster.lock().await;
                    world.away.store(0, Ordering::SeqCst);
                    for &v in &victims {
                        c.start_node(v);
                    }
                }
                2 => {
                    let v = distinct(&mut rng, 1, full.then_some(FULL_SITE))[0];
                    c.signal_node(v, "STOP");
                    world.away.store(1, Ordering::SeqCst);
                    done.stops += 1;
                    drop(c);
                    tokio::time::sleep(Duration::from_millis(1000 + rng.below(4000))).await;
                    c = cluster.lock().await;
                    world.away.store(0, Ordering::SeqCst);
                    c.signal_node(v, "CONT");
                }
                _ => {
                    world.gateway.fetch_add(1, Ordering::SeqCst);
                    c.kill_gateway();
                    done.gateway_kills += 1;
                    drop(c);
                    tokio::time::sleep(Duration::from_millis(300 + rng.below(1700))).await;
                    c = cluster.lock().await;
                    tokio::task::block_in_place(|| c.start_gateway());
                    world.gateway.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
        // Back in the gateway's view before anything else happens.
        every_site_back(&c).await;
    }
    // Everything as it was: the disk large again (all it wrote kept), the clock true.
    let mut c = cluster.lock().await;
    if full {
        tokio::task::block_in_place(|| c.free_small_disk(FULL_SITE));
        c.start_node(FULL_SITE);
        done.disk_frees += 1;
    }
    if let Some(f) = &clock_file {
        std::fs::write(f, "+0").unwrap();
    }
    every_site_back(&c).await;
    done
}

/// Waits (30 s at most) until the gateway reaches every site.
async fn every_site_back(c: &Cluster) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !tokio::task::block_in_place(|| all_sites_reachable(c)) {
        assert!(Instant::now() < deadline, "the sites did not come back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `n` distinct site indices of five, never `spare`.
fn distinct(rng: &mut Rng, n: usize, spare: Option<usize>) -> Vec<usize> {
    let mut out = Vec::new();
    while out.len() < n {
        let v = rng.below(5) as usize;
        if !out.contains(&v) && spare != Some(v) {
            out.push(v);
        }
    }
    out
}
