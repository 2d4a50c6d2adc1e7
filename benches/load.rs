//! A neutral S3 load tool: point it at any S3 endpoint to compare servers on your own hardware.
//!
//! ```text
//! cargo bench --bench load -- [--endpoint URL --access-key ID --secret-key SECRET]
//!     [--region us-east-1] [--bucket load] [--mib 256] [--streams 1,4] [--small-kib 4]
//!     [--in-flight 32] [--secs 20] [--rounds 3] [--pid PID]... [--process NAME]...
//!     [--cluster] [--small-count N] [--json]
//! ```
//!
//! One client (aws-sdk-s3, path style, checksums only where an operation requires them, the
//! payload signed), the same settings for every server. Each round measures:
//! - large objects: for each stream count `s`, `s` objects of `--mib` MiB PUT at once, then
//!   GET at once (every byte counted, the length checked): MB/s, and the CPU-seconds per GB of
//!   the server's processes (utime + stime from `/proc/<pid>/stat`, every `--pid` and every
//!   process whose name is a `--process`);
//! - small objects: `--in-flight` PUTs of `--small-kib` KiB kept running for `--secs` seconds,
//!   then GETs of them for as long: ops/s and latency percentiles;
//! - the server processes' resident memory: peak (VmHWM) and now (VmRSS), summed; and the peak
//!   during each large PUT phase alone (VmHWM reset through `/proc/<pid>/clear_refs` first;
//!   with several processes, the sum of each one's peak), and how far above the phase's
//!   starting RSS it went (the later rounds start with the databases' caches filled by the
//!   small objects of the earlier ones).
//!
//! Without `--endpoint` it starts `exclaved dev` (a gateway and five sites, 3+2, one process)
//! in a temporary directory, measures it, and adds the baselines of the same run: memcpy, and
//! a bare quinn stream between the dev cluster's own certificates on loopback (what a GET at
//! the speed of the wire would be), and the CPU-seconds per GB that stream costs, both ends
//! together (what a GET's one QUIC leg costs at the least); and the same stream relayed, as it
//! arrives, to a loopback TCP reader (the two legs every byte of a GET crosses, and nothing
//! else: the ceiling of a GET here), with its CPU per GB. The table gives a GET's throughput
//! and CPU as ratios to both. With `--cluster` it starts the
//! roles as separate processes instead (`exclave init`: five node processes and a gateway,
//! 3+2) and reports the memory of each role. `--small-count N` makes the small PUT phase write exactly N objects (at
//! `--in-flight`) instead of running for `--secs`: `--cluster --small-count 100000` is the
//! memory-at-many-objects measure.
//!
//! Rounds are printed as they finish; the summary gives each measure's range over the rounds.
//! Under `EXCLAVE_BENCH_SMOKE` (as `./check` runs every bench) it runs one tiny round.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::{bounded, cpu_seconds, smoke};

use std::collections::BTreeMap;
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::primitives::ByteStream;

/// What the command line asked for.
#[derive(Debug, Clone)]
struct Args {
    endpoint: Option<String>,
    access: String,
    secret: String,
    region: String,
    bucket: String,
    mib: usize,
    streams: Vec<usize>,
    small_kib: usize,
    in_flight: usize,
    secs: f64,
    rounds: usize,
    pids: Vec<u32>,
    processes: Vec<String>,
    json: bool,
    cluster: bool,
    small_count: Option<u64>,
}

fn usage(why: &str) -> ! {
    eprintln!("load: {why}");
    eprintln!(
        "usage: cargo bench --bench load -- [--endpoint URL --access-key ID --secret-key SECRET] \
         [--region R] [--bucket B] [--mib N] [--streams 1,4] [--small-kib N] [--in-flight N] \
         [--secs S] [--rounds N] [--pid PID]... [--process NAME]... [--cluster] \
         [--small-count N] [--json]"
    );
    std::process::exit(2)
}

impl Args {
    fn parse() -> Self {
        let tiny = smoke();
        let mut a = Self {
            endpoint: None,
            access: std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_default(),
            secret: std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_default(),
            region: "us-east-1".into(),
            bucket: "load".into(),
            mib: if tiny { 2 } else { 256 },
            streams: if tiny { vec![1, 2] } else { vec![1, 4] },
            small_kib: 4,
            in_flight: if tiny { 4 } else { 32 },
            secs: if tiny { 1.0 } else { 20.0 },
            rounds: if tiny { 1 } else { 3 },
            pids: Vec::new(),
            processes: Vec::new(),
            json: false,
            cluster: false,
            small_count: None,
        };
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .unwrap_or_else(|| usage(&format!("{name} needs a value")))
            };
            let number = |name: &str, v: String| -> usize {
                v.parse()
                    .unwrap_or_else(|_| usage(&format!("{name}: not a number: {v}")))
            };
            match arg.as_str() {
                "--endpoint" => a.endpoint = Some(value("--endpoint")),
                "--access-key" => a.access = value("--access-key"),
                "--secret-key" => a.secret = value("--secret-key"),
                "--region" => a.region = value("--region"),
                "--bucket" => a.bucket = value("--bucket"),
                "--mib" => a.mib = number("--mib", value("--mib")),
                "--streams" => {
                    a.streams = value("--streams")
                        .split(',')
                        .map(|s| number("--streams", s.to_owned()))
                        .collect();
                }
                "--small-kib" => a.small_kib = number("--small-kib", value("--small-kib")),
                "--in-flight" => a.in_flight = number("--in-flight", value("--in-flight")),
                "--secs" => {
                    let v = value("--secs");
                    a.secs = v.parse().unwrap_or_else(|_| usage(&format!("--secs: {v}")));
                }
                "--rounds" => a.rounds = number("--rounds", value("--rounds")),
                "--pid" => {
                    let v = value("--pid");
                    a.pids.push(number("--pid", v) as u32);
                }
                "--process" => a.processes.push(value("--process")),
                "--json" => a.json = true,
                "--cluster" => a.cluster = true,
                "--small-count" => {
                    let v = value("--small-count");
                    a.small_count = Some(number("--small-count", v) as u64);
                }
                // What cargo passes to a bench binary.
                "--bench" | "--nocapture" => {}
                "--list" => std::process::exit(0),
                "-h" | "--help" => usage("help"),
                other => usage(&format!("unknown argument {other}")),
            }
        }
        if a.streams.is_empty() || a.streams.contains(&0) || a.mib == 0 || a.in_flight == 0 {
            usage("--streams, --mib and --in-flight must be positive");
        }
        a
    }
}

/// The server's processes: the named pids and every process whose name is one asked for.
fn server_pids(args: &Args) -> Vec<u32> {
    let mut pids = args.pids.clone();
    if !args.processes.is_empty()
        && let Ok(dir) = std::fs::read_dir("/proc")
    {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if args.processes.iter().any(|p| p == comm.trim()) {
                pids.push(pid);
            }
        }
    }
    pids.sort_unstable();
    pids.dedup();
    pids
}

fn cpu(pids: &[u32]) -> f64 {
    pids.iter().map(|&p| cpu_seconds(p)).sum()
}

/// A `/proc/<pid>/status` field in KiB, summed over `pids`.
fn status_kib(pids: &[u32], field: &str) -> u64 {
    pids.iter()
        .map(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .unwrap_or_default()
                .lines()
                .find_map(|l| {
                    l.strip_prefix(field)?
                        .split_whitespace()
                        .next()?
                        .parse()
                        .ok()
                })
                .unwrap_or(0)
        })
        .sum()
}

/// Resets the server processes' peak resident memory (`VmHWM`) to what they hold now, so that
/// the next reading is the peak of what follows; false where the kernel does not allow it.
fn reset_peaks(pids: &[u32]) -> bool {
    !pids.is_empty()
        && pids
            .iter()
            .all(|pid| std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok())
}

fn client(args: &Args, endpoint: &str) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(args.region.clone()))
            .endpoint_url(endpoint)
            .credentials_provider(Credentials::new(
                args.access.clone(),
                args.secret.clone(),
                None,
                None,
                "load",
            ))
            .force_path_style(true)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build(),
    )
}

/// `exclaved dev` in `root`, the S3 endpoint it serves and the credentials it wrote.
fn start_dev(root: &std::path::Path) -> (Child, String, String, String) {
    let log = std::env::temp_dir().join(format!("exclave-load-{}.log", std::process::id()));
    eprintln!("exclaved dev logs to {}", log.display());
    let (child, url) = common::start_dev(root, &log);
    let creds = std::fs::read_to_string(root.join("credentials")).unwrap();
    let access = common::credential(&creds, "aws_access_key_id");
    let secret = common::credential(&creds, "aws_secret_access_key");
    (child, url, access, secret)
}

/// One round's figures, by measure name (kept in the order measured).
type Round = Vec<(String, f64)>;

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

async fn large(s3: &aws_sdk_s3::Client, args: &Args, pids: &[u32], round: usize, out: &mut Round) {
    let size = args.mib << 20;
    let body = bytes::Bytes::from((0..size).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    for &streams in &args.streams {
        let gb = (streams * size) as f64 / 1e9;
        let keys: Vec<String> = (0..streams)
            .map(|i| format!("large/{round}/{streams}/{i}"))
            .collect();
        let peaks = reset_peaks(pids);
        let held = status_kib(pids, "VmRSS:");
        let (c0, t) = (cpu(pids), Instant::now());
        futures::future::join_all(keys.iter().map(|key| {
            let (s3, body) = (s3.clone(), body.clone());
            async move {
                s3.put_object()
                    .bucket(&args.bucket)
                    .key(key)
                    .body(ByteStream::from(body))
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("PUT {key}: {e:?}"));
            }
        }))
        .await;
        let secs = t.elapsed().as_secs_f64();
        out.push((
            format!("PUT {} MiB, {streams} streams (MB/s)", args.mib),
            gb * 1e3 / secs,
        ));
        if !pids.is_empty() {
            out.push((
                format!("PUT, {streams} streams: server CPU-s per GB"),
                (cpu(pids) - c0) / gb,
            ));
        }
        if peaks {
            let peak = status_kib(pids, "VmHWM:");
            out.push((
                format!("PUT, {streams} streams: server peak RSS (MiB)"),
                peak as f64 / 1024.0,
            ));
            out.push((
                format!("PUT, {streams} streams: server RSS growth, peak - start (MiB)"),
                peak.saturating_sub(held) as f64 / 1024.0,
            ));
        }
        let (c0, t) = (cpu(pids), Instant::now());
        let got: u64 = futures::future::join_all(keys.iter().map(|key| {
            let s3 = s3.clone();
            async move {
                let resp = s3
                    .get_object()
                    .bucket(&args.bucket)
                    .key(key)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("GET {key}: {e:?}"));
                let mut body = resp.body;
                let mut n = 0u64;
                while let Some(b) = body.next().await {
                    n += b.unwrap().len() as u64;
                }
                assert_eq!(n, size as u64, "GET {key}: short body");
                n
            }
        }))
        .await
        .iter()
        .sum();
        let secs = t.elapsed().as_secs_f64();
        out.push((
            format!("GET {} MiB, {streams} streams (MB/s)", args.mib),
            got as f64 / 1e6 / secs,
        ));
        if !pids.is_empty() {
            out.push((
                format!("GET, {streams} streams: server CPU-s per GB"),
                (cpu(pids) - c0) / gb,
            ));
        }
        for key in &keys {
            let _ = s3
                .delete_object()
                .bucket(&args.bucket)
                .key(key)
                .send()
                .await;
        }
    }
}

/// Keeps `in_flight` requests of `op` running for `secs`, or until `count` were made;
/// ops/s and latencies (µs, sorted).
async fn sustained<F, Fut>(
    in_flight: usize,
    secs: f64,
    count: Option<u64>,
    op: F,
) -> (f64, Vec<u64>)
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let (stop, next) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let t = Instant::now();
    let workers: Vec<_> = (0..in_flight)
        .map(|_| {
            let (op, stop, next) = (op.clone(), stop.clone(), next.clone());
            tokio::spawn(async move {
                let mut lat = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if count.is_some_and(|c| i >= c) {
                        break;
                    }
                    let t = Instant::now();
                    op(i).await;
                    lat.push(t.elapsed().as_micros() as u64);
                }
                lat
            })
        })
        .collect();
    if count.is_none() {
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        stop.store(true, Ordering::Relaxed);
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    let elapsed = t.elapsed().as_secs_f64();
    all.sort_unstable();
    (all.len() as f64 / elapsed, all)
}

async fn small(s3: &aws_sdk_s3::Client, args: &Args, round: usize, out: &mut Round) {
    let kib = args.small_kib;
    let body = bytes::Bytes::from(vec![0x42u8; kib << 10]);
    let written = Arc::new(AtomicU64::new(0));
    let (s3c, bucket, w) = (s3.clone(), args.bucket.clone(), written.clone());
    let (ops, lat) = sustained(args.in_flight, args.secs, args.small_count, move |i| {
        let (s3, bucket, body, w) = (s3c.clone(), bucket.clone(), body.clone(), w.clone());
        async move {
            s3.put_object()
                .bucket(bucket)
                .key(format!("small/{round}/{i}"))
                .body(ByteStream::from(body))
                .send()
                .await
                .unwrap_or_else(|e| panic!("small PUT: {e:?}"));
            w.fetch_max(i + 1, Ordering::Relaxed);
        }
    })
    .await;
    let n = args.in_flight;
    out.push((format!("{kib} KiB PUT, {n} in flight (ops/s)"), ops));
    out.push((format!("{kib} KiB objects written"), lat.len() as f64));
    for (p, name) in [(0.5, "p50"), (0.99, "p99")] {
        out.push((
            format!("{kib} KiB PUT latency {name} (ms)"),
            percentile(&lat, p),
        ));
    }
    // GETs of what was written: every PUT started had finished when `sustained` returned, so
    // every key below the count is there (one missing is a lost write, and fails the run).
    let count = written.load(Ordering::Relaxed).max(1);
    let (s3c, bucket) = (s3.clone(), args.bucket.clone());
    let expect = kib << 10;
    let (ops, lat) = sustained(args.in_flight, args.secs, None, move |i| {
        let (s3, bucket) = (s3c.clone(), bucket.clone());
        async move {
            let key = format!("small/{round}/{}", i % count);
            let r = s3
                .get_object()
                .bucket(bucket)
                .key(&key)
                .send()
                .await
                .unwrap_or_else(|e| panic!("small GET {key}: {e:?}"));
            let b = r.body.collect().await.unwrap().into_bytes();
            assert_eq!(b.len(), expect, "GET {key}: wrong length");
        }
    })
    .await;
    out.push((format!("{kib} KiB GET, {n} in flight (ops/s)"), ops));
    for (p, name) in [(0.5, "p50"), (0.99, "p99")] {
        out.push((
            format!("{kib} KiB GET latency {name} (ms)"),
            percentile(&lat, p),
        ));
    }
}

fn main() {
    let mut args = Args::parse();
    let dir = tempfile::tempdir().unwrap();
    let mut dev = None;
    let mut cluster = None;
    // (role, pid) of each process started here.
    let mut roles: Vec<(String, u32)> = Vec::new();
    let endpoint = match args.endpoint.clone() {
        Some(e) => e,
        None if args.cluster => {
            let mut c = common::support::Cluster::init(5, 3, 2);
            c.log_level = "warn";
            c.start_all();
            c.start_gateway();
            let gw = c.gateway_pid().unwrap();
            roles.push(("gateway".into(), gw));
            args.pids.push(gw);
            for i in 0..5 {
                let pid = c.node_pid(i).unwrap();
                roles.push((format!("node {}", i + 1), pid));
                args.pids.push(pid);
            }
            (args.access, args.secret) = c.credentials();
            let url = format!("http://{}", c.s3_addr());
            cluster = Some(c);
            url
        }
        None => {
            let root = dir.path().join("dev");
            let (child, url, access, secret) = start_dev(&root);
            args.pids.push(child.id());
            (args.access, args.secret) = (access, secret);
            dev = Some((child, root));
            url
        }
    };
    if args.access.is_empty() {
        usage(
            "no credentials: --access-key/--secret-key or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
        );
    }
    let pids = server_pids(&args);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let s3 = client(&args, &endpoint);
    eprintln!(
        "load: {endpoint}, {} MiB objects at {:?} streams, {} KiB objects {} in flight for {} s, {} rounds, server pids {pids:?}",
        args.mib, args.streams, args.small_kib, args.in_flight, args.secs, args.rounds
    );
    let mut rounds: Vec<Round> = Vec::new();
    rt.block_on(bounded(async {
        match s3.create_bucket().bucket(&args.bucket).send().await {
            Ok(_) => {}
            Err(e)
                if e.as_service_error().is_some_and(|s| {
                    s.is_bucket_already_owned_by_you() || s.is_bucket_already_exists()
                }) => {}
            Err(e) => panic!("create bucket {}: {e:?}", args.bucket),
        }
        for round in 0..args.rounds {
            let mut out = Round::new();
            if let Some((_, root)) = &dev {
                out.push((
                    "memcpy, one core (MB/s)".into(),
                    common::memcpy_mbps(args.mib.min(256) << 20),
                ));
                // Both ends run here, and nothing else does meanwhile: the CPU this process
                // spends is what one QUIC leg costs per GB (a GET's floor: every byte crosses
                // from the nodes to the gateway once).
                let size = (args.mib << 20).clamp(8 << 20, 512 << 20);
                let gb = size as f64 / 1e9;
                let cpu = cpu_seconds(std::process::id());
                let quinn = common::bare_quinn_mbps(root, size).await;
                let cpu = cpu_seconds(std::process::id()) - cpu;
                out.push(("bare quinn, one loopback stream (MB/s)".into(), quinn));
                out.push(("bare quinn: CPU-s per GB, both ends".into(), cpu / gb));
                // The same stream passed on to a loopback TCP reader: the two legs a GET's
                // bytes cross, and nothing else (what a gateway that did no work would give).
                let cpu = cpu_seconds(std::process::id());
                let relay = common::bare_relay_mbps(root, size).await;
                let cpu = cpu_seconds(std::process::id()) - cpu;
                out.push(("bare relay, QUIC then TCP (MB/s)".into(), relay));
                out.push(("bare relay: CPU-s per GB, all ends".into(), cpu / gb));
            }
            large(&s3, &args, &pids, round, &mut out).await;
            small(&s3, &args, round, &mut out).await;
            if !pids.is_empty() {
                out.push((
                    "server peak RSS (MiB)".into(),
                    status_kib(&pids, "VmHWM:") as f64 / 1024.0,
                ));
                out.push((
                    "server RSS now (MiB)".into(),
                    status_kib(&pids, "VmRSS:") as f64 / 1024.0,
                ));
            }
            for (role, pid) in &roles {
                let (peak, now) = (status_kib(&[*pid], "VmHWM:"), status_kib(&[*pid], "VmRSS:"));
                out.push((format!("{role}: peak RSS (MiB)"), peak as f64 / 1024.0));
                out.push((format!("{role}: RSS now (MiB)"), now as f64 / 1024.0));
            }
            if !args.json {
                eprintln!("round {}:", round + 1);
                for (name, v) in &out {
                    eprintln!("  {name}: {v:.2}");
                }
            }
            rounds.push(out);
        }
    }));
    if let Some((child, _)) = dev {
        common::stop_dev(child);
    }
    drop(cluster);
    report(&args, &endpoint, &rounds);
}

fn report(args: &Args, endpoint: &str, rounds: &[Round]) {
    let mut names: Vec<String> = Vec::new();
    let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for r in rounds {
        for (name, v) in r {
            if !values.contains_key(name) {
                names.push(name.clone());
            }
            values.entry(name.clone()).or_default().push(*v);
        }
    }
    let quinn = values
        .get("bare quinn, one loopback stream (MB/s)")
        .cloned();
    let quinn_cpu = values.get("bare quinn: CPU-s per GB, both ends").cloned();
    let relay = values.get("bare relay, QUIC then TCP (MB/s)").cloned();
    let relay_cpu = values.get("bare relay: CPU-s per GB, all ends").cloned();
    if args.json {
        let measures: Vec<serde_json::Value> = names
            .iter()
            .map(|n| serde_json::json!({"measure": n, "values": values[n]}))
            .collect();
        println!(
            "{}",
            serde_json::json!({"endpoint": endpoint, "rounds": rounds.len(), "measures": measures})
        );
        return;
    }
    println!("\n{} rounds against {endpoint}\n", rounds.len());
    println!("| measure | min | max | / bare quinn (same round) | / bare relay (same round) |");
    println!("|---|---|---|---|---|");
    for n in &names {
        let v = &values[n];
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        // Throughput against the bare stream's; a GET's CPU per GB against the bare stream's
        // (how many times its one QUIC leg the whole GET costs).
        // The relay's own throughput against the bare stream's too: the most a GET's ratio
        // to the bare stream can be here. A GET against the relay: what the storage, its
        // crypto and HTTP cost on top of the two legs.
        let large = n.ends_with("(MB/s)") && (n.starts_with("GET") || n.starts_with("PUT"));
        let get_cpu = n.starts_with("GET") && n.ends_with("CPU-s per GB");
        let against_quinn = if large || n.starts_with("bare relay, ") {
            quinn.as_ref()
        } else if get_cpu || n.starts_with("bare relay: ") {
            quinn_cpu.as_ref()
        } else {
            None
        };
        let against_relay = if large && n.starts_with("GET") {
            relay.as_ref()
        } else if get_cpu {
            relay_cpu.as_ref()
        } else {
            None
        };
        println!(
            "| {n} | {lo:.2} | {hi:.2} | {} | {} |",
            ratios(v, against_quinn),
            ratios(v, against_relay)
        );
    }
}

/// The range of `v`'s ratios to `base`, round by round ("" without a base, or with one too
/// short to measure, as in a smoke run).
fn ratios(v: &[f64], base: Option<&Vec<f64>>) -> String {
    match base.filter(|q| q.iter().all(|&q| q > 0.0)) {
        Some(q) => {
            let r: Vec<f64> = v.iter().zip(q).map(|(x, q)| x / q).collect();
            let (a, b) = r
                .iter()
                .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
            format!("{a:.2}-{b:.2}")
        }
        None => String::new(),
    }
}
