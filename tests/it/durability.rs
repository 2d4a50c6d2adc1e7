//! Rotten and hostile bytes at the sites: injected into shard files (up to m per stripe), then
//! found by reads and scrub, never served, and repaired without a key.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use exclave::core::ids::ObjectId;
use exclave::core::stripe::BlockHash;
use exclave::core::wire::ShardKey;

use crate::sigv4::sha256_hex;
use crate::support::{
    Cluster, Rng, all_reachable, get, put, put_sized, started_cluster, status, within,
};

const BUCKET: &str = "registry";

fn unhex<const N: usize>(s: &str) -> [u8; N] {
    let v = exclave::core::ids::unhex(s).unwrap();
    v.try_into().unwrap()
}

/// A shard file: (site index, path, key).
pub(crate) fn shard_files(cluster: &Cluster) -> Vec<(usize, PathBuf, ShardKey)> {
    let mut out = Vec::new();
    for i in 0..cluster.sites.len() {
        let dir = cluster.disk_of(i).1.join("shards");
        let Ok(subdirs) = std::fs::read_dir(&dir) else {
            continue;
        };
        for sub in subdirs.flatten() {
            for f in std::fs::read_dir(sub.path()).unwrap().flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                let parts: Vec<&str> = name.split('-').collect();
                if parts.len() != 3 {
                    continue;
                }
                let key = ShardKey {
                    object: ObjectId(unhex(parts[0])),
                    version: exclave::core::hlc::Version::from_bytes(unhex(parts[1])),
                    shard: parts[2].parse().unwrap(),
                };
                out.push((i, f.path(), key));
            }
        }
    }
    out
}

fn flip_bits(path: &Path, bits: usize, rng: &mut Rng) {
    let mut b = std::fs::read(path).unwrap();
    for _ in 0..bits {
        let at = rng.below(b.len() as u64 * 8);
        b[(at / 8) as usize] ^= 1 << (at % 8);
    }
    std::fs::write(path, b).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn injected_rot_and_tampering_is_detected_never_served_and_repaired() {
    within(400, async {
        let mut cluster = started_cluster("repair_interval_secs = 1").await;
        let s3 = cluster.s3_client(3);
        s3.create_bucket().bucket(BUCKET).send().await.unwrap();
        let mut rng = Rng::new(77);
        let sizes = (0..16).map(|i| 600_000 + i * 7_777);
        let model = put_sized(&s3, BUCKET, "parcel", sizes, &mut rng).await;

        // Every node stopped: bytes are changed under them, as a host or a disk would.
        for i in 0..5 {
            cluster.kill_node(i);
        }
        let files = shard_files(&cluster);
        let mut by_object: BTreeMap<ObjectId, Vec<(usize, PathBuf, ShardKey)>> = BTreeMap::new();
        for f in files {
            by_object.entry(f.2.object).or_default().push(f);
        }
        let counts: Vec<usize> = by_object.values().map(Vec::len).collect();
        assert_eq!(by_object.len(), model.len(), "shard files per object: {counts:?}");
        assert!(counts.iter().all(|&c| c == 5), "shard files per object: {counts:?}");
        let kinds = [
            "flip 1 bit",
            "flip 8 bits",
            "flip 1000 bits",
            "truncate",
            "zero-fill",
            "delete",
            "misdirected valid shard",
            "modified, CRC recomputed",
        ];
        // Undamaged shards (the third of each object), to misdirect over another object's.
        let others: Vec<PathBuf> = by_object.values().map(|v| v[2].1.clone()).collect();
        let mut injected: Vec<(usize, ShardKey, &str)> = Vec::new();
        for (n, (_, shards)) in by_object.iter().enumerate() {
            // Two shards (m) of each object, at two different sites.
            for (j, (site, path, key)) in shards.iter().take(2).enumerate() {
                let kind = kinds[(2 * n + j) % kinds.len()];
                match kind {
                    "flip 1 bit" => flip_bits(path, 1, &mut rng),
                    "flip 8 bits" => flip_bits(path, 8, &mut rng),
                    "flip 1000 bits" => flip_bits(path, 1000, &mut rng),
                    "truncate" => {
                        let len = std::fs::metadata(path).unwrap().len();
                        let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
                        f.set_len(len / 2).unwrap();
                    }
                    "zero-fill" => {
                        let len = std::fs::metadata(path).unwrap().len() as usize;
                        std::fs::write(path, vec![0u8; len]).unwrap();
                    }
                    "delete" => std::fs::remove_file(path).unwrap(),
                    "misdirected valid shard" => {
                        std::fs::copy(&others[(n + 1) % others.len()], path).unwrap();
                    }
                    _ => {
                        // A host that rewrites bytes and fixes the CRCs in its own records.
                        let store = cluster.site_store(*site);
                        let (disk, header) = store.header(key).unwrap();
                        let mut data = std::fs::read(path).unwrap();
                        data[10] ^= 0xff;
                        let g = header.geometry().unwrap();
                        let mut forged = header.clone();
                        forged.crcs = (0..g.stripe_count())
                            .map(|s| {
                                let start = g.block_offset(s) as usize;
                                crc32fast::hash(&data[start..start + g.block_len(s)])
                            })
                            .collect();
                        let mut w = store.begin_shard(disk, *key, g).unwrap();
                        w.write(&data).unwrap();
                        w.finish(&store, &forged).unwrap();
                    }
                }
                injected.push((*site, *key, kind));
            }
        }
        for i in 0..5 {
            cluster.start_node(i);
        }

        // Scrub on demand at every site, then the gateway's repair passes.
        let identity = cluster.gateway_identity();
        let clients = cluster.clients(&identity);
        cluster.wait_ready(&clients).await;
        let t0 = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        for c in &clients {
            c.scrub().await.unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut quarantined = 0;
        for c in &clients {
            loop {
                let (last, in_progress, _, q) = c.scrub_status().await.unwrap();
                if last >= t0 && !in_progress {
                    quarantined += q;
                    break;
                }
                assert!(Instant::now() < deadline, "scrub did not finish");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }

        // Reads while the damaged shards are quarantined and being repaired: never a wrong byte.
        for (k, v) in &model {
            let out = s3.get_object().bucket(BUCKET).key(k).send().await.unwrap();
            let body = out.body.collect().await.unwrap().into_bytes();
            assert_eq!(sha256_hex(&body), sha256_hex(v), "{k}");
        }

        // Every damaged shard must come back whole: its blocks pass their CRC at the node and
        // match the hashes the other shards' headers carry.
        let mut repaired = BTreeSet::new();
        loop {
            for (site, key, _) in &injected {
                if repaired.contains(&(*site, *key)) {
                    continue;
                }
                let c = &clients[*site];
                let Ok(h) = c.shard_header(*key).await else { continue };
                let g = h.geometry().unwrap();
                let Ok(blocks) = c.get_blocks(*key, 0, g.stripe_count()).await else {
                    continue;
                };
                let n = usize::from(h.k + h.m);
                let whole = blocks.iter().enumerate().all(|(s, b)| match b {
                    exclave::coordinator::BlockResult::Ok(bytes) => {
                        BlockHash::of(bytes) == h.block_hashes[s * n + usize::from(key.shard)]
                    }
                    _ => false,
                });
                if whole {
                    repaired.insert((*site, *key));
                }
            }
            if repaired.len() == injected.len() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "repaired {} of {} damaged shards",
                repaired.len(),
                injected.len()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let log = std::fs::read_to_string(cluster.root().join("gateway/exclaved.log")).unwrap();
        let at_read = log.matches("a read met bad shards").count();
        eprintln!(
            "injected {} ({} kinds), quarantined by scrub {quarantined}, reads that met bad blocks {at_read}, repaired {}",
            injected.len(),
            kinds.len(),
            repaired.len()
        );
        // Detected: scrub checks every block's CRC and hash against the shard's header (reads
        // report the ones they meet, too). A shard unusable as a whole is quarantined by scrub; one
        // with some bad blocks stays until repair rewrites it, and its old copy is quarantined
        // then: once all is repaired, each damaged shard has its entry in a quarantine ledger.
        let mut ledger = 0;
        for c in &clients {
            ledger += c.scrub_status().await.unwrap().3;
        }
        assert!(
            ledger as usize >= injected.len(),
            "quarantine ledgers hold {ledger} entries for {} damaged shards (scrub alone: \
             {quarantined})",
            injected.len()
        );
        assert_eq!(repaired.len(), injected.len());

        // And whole again: with two sites down, everything still reads back.
        cluster.kill_node(0);
        cluster.kill_node(1);
        for (k, v) in &model {
            let out = s3.get_object().bucket(BUCKET).key(k).send().await.unwrap();
            let body = out.body.collect().await.unwrap().into_bytes();
            assert_eq!(sha256_hex(&body), sha256_hex(v), "{k}");
        }

        // Detected, each one: every damaged shard has its own entry in its site's quarantine
        // ledger (keyed by the shard's key, then the time), not just a total that adds up.
        for i in 0..5 {
            cluster.kill_node(i);
        }
        let ledgers: Vec<BTreeSet<Vec<u8>>> = (0..5)
            .map(|i| {
                use redb::{ReadableDatabase as _, ReadableTable as _};
                let (db, table) = cluster.node_db(i, "quarantine");
                let txn = db.begin_read().unwrap();
                let t = txn.open_table(table).unwrap();
                t.iter()
                    .unwrap()
                    .map(|e| e.unwrap().0.value().to_vec())
                    .collect()
            })
            .collect();
        for (site, key, kind) in &injected {
            let k = key.to_bytes();
            assert!(
                ledgers[*site].iter().any(|q| q.starts_with(&k)),
                "site {site}: the shard damaged by {kind} ({key:?}) has no quarantine entry"
            );
        }
    }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn heal_wait_makes_every_object_whole_and_status_says_so() {
    within(300, async {
        let mut cluster = started_cluster("repair_interval_secs = 3600").await;
        let s3 = cluster.s3_client(3);
        s3.create_bucket().bucket(BUCKET).send().await.unwrap();
        cluster.kill_node(3);
        let mut rng = Rng::new(5);
        for i in 0..6 {
            s3.put_object()
                .bucket(BUCKET)
                .key(format!("deed-{i}"))
                .body(ByteStream::from(rng.bytes(1000 + i * 200_000)))
                .send()
                .await
                .unwrap();
        }
        cluster.start_node(3);
        let cli = |args: &[&str]| cluster.exclave_cli(args, Duration::from_secs(120));
        let before = cli(&["status", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&before.stdout).unwrap();
        assert_eq!(
            before.status.code(),
            Some(1),
            "degraded objects: status exits 1"
        );
        assert_eq!(v["buckets"][0]["degraded"], 6, "{v:#}");

        let (_, v) = cluster.heal_and_status();
        assert_eq!(v["buckets"][0]["whole"], 6, "{v:#}");
        assert_eq!(v["buckets"][0]["degraded"], 0);
        assert_eq!(v["repair_backlog"], 0);
        let table = cli(&["status"]);
        let text = String::from_utf8_lossy(&table.stdout);
        assert!(text.contains("BUCKET") && text.contains(BUCKET), "{text}");
        let shards: u64 = v["sites"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["shards"].as_u64().unwrap())
            .sum();
        assert!(shards >= 6 * 5, "every site reports its shards: {v:#}");
        assert!(
            v["sites"][0]["disks"][0]["free"].as_u64().unwrap() > 0,
            "{v:#}"
        );
        let shards: u64 = v["sites"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["shards"].as_u64().unwrap())
            .sum();
        assert!(shards >= 6 * 5, "every site reports its shards: {v:#}");
        assert!(
            v["sites"][0]["disks"][0]["free"].as_u64().unwrap() > 0,
            "{v:#}"
        );
        let workers = cli(&["workers", "--json"]);
        assert!(workers.status.success());

        // Each node's own admin API: the token opens it, anything else does not.
        let site = cluster.root().join("sites").join(&cluster.sites[0]);
        let token = std::fs::read_to_string(site.join("admin.token")).unwrap();
        let addr = cluster.node_addr(0);
        let (code, text) = crate::sigv4::send(
            addr,
            "GET",
            "/v1/status",
            &[("authorization".into(), format!("Bearer {}", token.trim()))],
            b"",
        );
        assert_eq!(code, 200, "{text}");
        assert!(
            text.contains("\"shards\"") && text.contains("\"scrub\""),
            "{text}"
        );
        let (code, _) = crate::sigv4::send(
            addr,
            "GET",
            "/v1/status",
            &[("authorization".into(), "Bearer not-the-token-at-all".into())],
            b"",
        );
        assert_eq!(code, 401);

        // Whole for real: two other sites down, everything reads.
        cluster.kill_node(0);
        cluster.kill_node(1);
        for i in 0..6 {
            let out = s3
                .get_object()
                .bucket(BUCKET)
                .key(format!("deed-{i}"))
                .send()
                .await
                .unwrap();
            out.body.collect().await.unwrap();
        }
        // The site that missed the writes holds their manifest records too.
        cluster.kill_node(3);
        cluster.kill_node(2);
        assert_eq!(cluster.manifest_count(3), cluster.manifest_count(2));
    })
    .await;
}

/// Bytes of every shard site `i`'s node holds, in files and inside its database, by their
/// headers (the node must be stopped).
fn shard_bytes(cluster: &Cluster, i: usize) -> u64 {
    use redb::{ReadableDatabase as _, ReadableTable as _};
    let (db, table) = cluster.node_db(i, "shard_headers");
    let txn = db.begin_read().unwrap();
    let t = txn.open_table(table).unwrap();
    t.iter()
        .unwrap()
        .map(|e| {
            let (_, v) = e.unwrap();
            let (_, h) = exclave::store::decode_row(v.value()).unwrap();
            h.geometry().unwrap().shard_len()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wiped_site_is_rebuilt_by_heal_moving_only_what_it_lost() {
    within(300, async {
        let mut cluster = started_cluster("repair_interval_secs = 3600").await;
        let s3 = cluster.s3_client(3);
        s3.create_bucket().bucket(BUCKET).send().await.unwrap();
        let mut rng = Rng::new(8);
        let sizes = (0..10).map(|i| 200_000 + i * 150_000);
        let model = put_sized(&s3, BUCKET, "title", sizes, &mut rng).await;
        // Site 2 loses everything but its identity: disk re-initialised, database gone.
        let wiped = 2;
        cluster.kill_node(wiped);
        let lost = shard_bytes(&cluster, wiped);
        let in_files: u64 = shard_files(&cluster)
            .iter()
            .filter(|(s, _, _)| *s == wiped)
            .map(|(_, p, _)| std::fs::metadata(p).unwrap().len())
            .sum();
        // The bucket's own record is a small object kept inside the database.
        assert!(lost > in_files, "{lost} {in_files}");
        let path = cluster.disk_of(wiped).1;
        let disk = cluster.wipe_site(wiped);
        // The operator prepares the new, empty disk with the CLI; a second run refuses (the
        // directory is no longer empty).
        let disk_init = || cluster.disk_init(wiped, disk);
        let out = tokio::task::block_in_place(disk_init);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(path.join("EXCLAVE-DISK").exists());
        let again = tokio::task::block_in_place(disk_init);
        assert!(!again.status.success(), "disk init over a prepared directory");
        cluster.start_node(wiped);

        let (v, _) = cluster.heal_and_status();
        let written = v["total_bytes_written"].as_u64().unwrap_or_else(|| panic!("{v:#}"));
        let read = v["total_bytes_read"].as_u64().unwrap();
        eprintln!(
            "wiped site held {lost} bytes of shards; heal wrote {written} and read {read} ({:.2} x the minimum)",
            (written + read) as f64 / lost as f64
        );
        assert_eq!(written, lost, "heal rebuilds exactly what was lost");
        // Every object and the bucket's own record.
        assert_eq!(v["total_repaired"].as_u64(), Some(model.len() as u64 + 1));
        // Issue 20, item 8: heal counts objects, not the bucket's record.
        assert_eq!(v["checked"].as_u64(), Some(model.len() as u64), "{v:#}");
        // Every object's manifest record and the bucket's, copied from the others.
        assert_eq!(
            v["total_manifests_restored"].as_u64(),
            Some(model.len() as u64 + 1),
            "{v:#}"
        );

        // The rebuilt site carries its share: two other sites down, all reads back.
        cluster.kill_node(0);
        cluster.kill_node(4);
        for (k, want) in &model {
            let out = s3.get_object().bucket(BUCKET).key(k).send().await.unwrap();
            let body = out.body.collect().await.unwrap().into_bytes();
            assert_eq!(sha256_hex(&body), sha256_hex(want), "{k}");
        }
        // And it holds every manifest record again, as a site that lost nothing does.
        cluster.kill_node(wiped);
        cluster.kill_node(1);
        assert_eq!(cluster.manifest_count(wiped), cluster.manifest_count(1));
    }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_disk_without_its_marker_is_refused_and_starts_no_repair_storm() {
    within(300, async {
        let mut cluster = started_cluster("").await;
        let s3 = cluster.s3_client(3);
        s3.create_bucket().bucket(BUCKET).send().await.unwrap();
        let mut rng = Rng::new(3);
        for i in 0..8 {
            s3.put_object()
                .bucket(BUCKET)
                .key(format!("k{i}"))
                .body(ByteStream::from(rng.bytes(400_000)))
                .send()
                .await
                .unwrap();
        }
        // The disk "is not mounted": its marker is gone.
        let site = 1;
        cluster.kill_node(site);
        let (_, path) = cluster.disk_of(site);
        std::fs::remove_file(path.join(exclave::store::MARKER)).unwrap();
        cluster.start_node(site);
        let deadline = Instant::now() + Duration::from_secs(30);
        while cluster.node_alive(site) {
            assert!(
                Instant::now() < deadline,
                "the node served a disk without its marker"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            cluster.log_hits(site, "marker") > 0,
            "the refusal names the marker"
        );

        let heal = cluster.exclave_cli(&["heal", "--json"], Duration::from_secs(120));
        let v: serde_json::Value = serde_json::from_slice(&heal.stdout).unwrap();
        // The site's shards are unverified, not rebuilt elsewhere: nothing moves.
        assert_eq!(v["found_degraded"], 0, "{v:#}");
        assert_eq!(v["repaired"], 0, "{v:#}");
        assert_eq!(v["total_bytes_written"], 0, "{v:#}");
        assert!(v["shards_unverified"].as_u64().unwrap() >= 8, "{v:#}");
        assert!(
            !heal.status.success(),
            "heal reports that not everything is verified"
        );
        // Reads go on from the other sites.
        for i in 0..8 {
            let out = s3
                .get_object()
                .bucket(BUCKET)
                .key(format!("k{i}"))
                .send()
                .await
                .unwrap();
            out.body.collect().await.unwrap();
        }
    })
    .await;
}

/// Starts a scrub pass everywhere (retrying while a restarted node is not reached yet) and
/// waits for every site to finish it.
pub(crate) async fn scrub_everywhere(cluster: &Cluster) {
    let before: Vec<u64> = (0..5).map(|i| scrub_state(cluster, i).0).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let scrub = cluster.exclave_cli(&["scrub"], Duration::from_secs(60));
        if scrub.status.success() {
            break;
        }
        assert!(Instant::now() < deadline, "{scrub:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let states: Vec<(u64, bool, u64)> = (0..5).map(|i| scrub_state(cluster, i)).collect();
        if states.iter().zip(&before).all(|(s, b)| s.0 > *b && !s.1) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "scrub did not finish: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Node `i`'s scrub state from its admin API: (last complete ms, in progress, quarantined).
pub(crate) fn scrub_state(cluster: &Cluster, i: usize) -> (u64, bool, u64) {
    let token = cluster.node_admin_token(i);
    // A node just started may not listen yet.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !crate::support::serving(cluster.node_addr(i)) {
        assert!(
            Instant::now() < deadline,
            "node {i}'s admin API does not answer"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, text) = crate::sigv4::send(
        cluster.node_addr(i),
        "GET",
        "/v1/status",
        &[("authorization".into(), format!("Bearer {token}"))],
        b"",
    );
    assert_eq!(code, 200, "{text}");
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    (
        v["scrub"]["last_complete_ms"].as_u64().unwrap(),
        v["scrub"]["in_progress"] == true,
        v["scrub"]["quarantined"].as_u64().unwrap(),
    )
}

/// Issue 15, finding 1: one flipped byte in stripes 1, 3 and 5 of one object, each in a
/// different data shard at a different site. Every stripe still has k + 1 good blocks, so the
/// object must read back; scrub must keep the three shard files (their other blocks are good)
/// and record them for repair; heal must make them whole, and the object then reads back with
/// two of the undamaged sites down.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scattered_rot_within_tolerance_reads_back_and_heals_block_by_block() {
    within(300, async {
        let mut cluster = started_cluster("repair_interval_secs = 3600").await;
        let s3 = cluster.s3_client(3);
        s3.create_bucket().bucket(BUCKET).send().await.unwrap();
        // Eight full stripes of 3 x 256 KiB blocks.
        let data = Rng::new(15).bytes(8 * (3 * 256 * 1024 - 16));
        put(&s3, BUCKET, "parcel", &data).await;

        for i in 0..5 {
            cluster.kill_node(i);
        }
        let mut files = shard_files(&cluster);
        files.sort_by_key(|f| f.2.shard);
        assert_eq!(files.len(), 5);
        let damaged: Vec<usize> = files[..3].iter().map(|f| f.0).collect();
        assert_eq!(
            damaged.iter().collect::<BTreeSet<_>>().len(),
            3,
            "{damaged:?}"
        );
        for (f, stripe) in files[..3].iter().zip([1usize, 3, 5]) {
            let mut b = std::fs::read(&f.1).unwrap();
            b[stripe * 256 * 1024 + 1000] ^= 0x40;
            std::fs::write(&f.1, b).unwrap();
        }
        for i in 0..5 {
            cluster.start_node(i);
        }

        // Scrub finds the bad blocks and keeps the files.
        scrub_everywhere(&cluster).await;
        let quarantined: u64 = (0..5).map(|i| scrub_state(&cluster, i).2).sum();
        assert_eq!(quarantined, 0, "scrub quarantined shards with good blocks");
        for f in &files[..3] {
            assert!(f.1.exists(), "{} is gone", f.1.display());
        }

        // The object reads back whole, stripe by stripe from the blocks that verify.
        assert_eq!(
            sha256_hex(&get(&s3, BUCKET, "parcel").await),
            sha256_hex(&data)
        );

        // Heal rewrites the three shards; the copies they replace are quarantined.
        let (_, status) = cluster.heal_and_status();
        assert_eq!(status["repair_backlog"], 0, "{status:#}");
        assert_eq!(status["buckets"][0]["whole"], 1, "{status:#}");
        let quarantined: u64 = (0..5).map(|i| scrub_state(&cluster, i).2).sum();
        assert_eq!(quarantined, 3, "each replaced copy is kept in quarantine");

        // Whole for real: the two undamaged sites down, the repaired shards carry the read.
        cluster.kill_node(files[3].0);
        cluster.kill_node(files[4].0);
        assert_eq!(
            sha256_hex(&get(&s3, BUCKET, "parcel").await),
            sha256_hex(&data)
        );
    })
    .await;
}

/// Issue 15, finding 4: a read that fails still reports the bad blocks it met. With two sites
/// down and a bad block in one of the three left, the GET fails (503), and the shard it found
/// bad is in the repair backlog within seconds, not at the next weekly scrub.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_read_reports_the_bad_blocks_it_met() {
    within(180, async {
        let mut cluster = started_cluster("repair_interval_secs = 1").await;
        let s3 = cluster.s3_client(1);
        s3.create_bucket().bucket(BUCKET).send().await.unwrap();
        put(
            &s3,
            BUCKET,
            "parcel",
            &Rng::new(4).bytes(4 * (3 * 256 * 1024 - 16)),
        )
        .await;
        for i in 0..5 {
            cluster.kill_node(i);
        }
        let mut files = shard_files(&cluster);
        files.sort_by_key(|f| f.2.shard);
        let mut b = std::fs::read(&files[0].1).unwrap();
        b[2 * 256 * 1024 + 10] ^= 0x01;
        std::fs::write(&files[0].1, b).unwrap();
        for f in &files[..3] {
            cluster.start_node(f.0);
        }
        assert_eq!(cluster.status_json()["repair_backlog"], 0);
        let err = s3
            .get_object()
            .bucket(BUCKET)
            .key("parcel")
            .send()
            .await
            .map(|_| ())
            .unwrap_err();
        assert_eq!(status(&err), 503, "{err:?}");
        cluster
            .wait_for_status(
                Duration::from_secs(20),
                "the bad shard was not reported",
                |v| v["repair_backlog"].as_u64() >= Some(1),
            )
            .await;
    })
    .await;
}

/// A host that forges consistently: at one site a block is changed together with its CRC and
/// the block hash in the shard's own header; at another, a shard's file and header are replaced
/// by another object's (same size), header rewritten to name this shard. The node's own checks
/// (CRC on read, scrub against the header) see nothing wrong. The gateway checks every block
/// against the hashes in the sealed manifest: the bytes served are right, the reads report the
/// forged shards, and repair rebuilds them from the honest majority (the forged header outvoted).
/// Then two undamaged sites go down and both objects still read back: the repaired blocks match
/// the manifest's hashes (the gateway checks them on that read). Issue 21, items 2 and 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_host_that_forges_block_crc_and_header_together_is_outvoted() {
    within(300, async {
        let mut cluster = started_cluster("repair_interval_secs = 3600").await;
        let s3 = cluster.s3_client(3);
        s3.create_bucket().bucket(BUCKET).send().await.unwrap();
        let size = 3 * (3 * 256 * 1024 - 16);
        let mut model = BTreeMap::new();
        for (key, seed) in [("deed-a", 1u64), ("deed-b", 2)] {
            let data = Rng::new(seed).bytes(size);
            put(&s3, BUCKET, key, &data).await;
            model.insert(key, data);
        }
        for i in 0..5 {
            cluster.kill_node(i);
        }
        let files = shard_files(&cluster);
        let objects: Vec<ObjectId> = files
            .iter()
            .map(|f| f.2.object)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(objects.len(), 2);
        let (x, y) = (objects[0], objects[1]);
        let at = |object: ObjectId, site: usize| {
            files
                .iter()
                .find(|f| f.2.object == object && f.0 == site)
                .cloned()
                .unwrap()
        };
        // Forgery 1, at the site holding x's shard 0: block 1 changed, its CRC and its hash in
        // the header with it.
        let forged_site = files
            .iter()
            .find(|f| f.2.object == x && f.2.shard == 0)
            .unwrap()
            .0;
        {
            let (_, path, key) = at(x, forged_site);
            let store = cluster.site_store(forged_site);
            let (disk, header) = store.header(&key).unwrap();
            let g = header.geometry().unwrap();
            let mut data = std::fs::read(&path).unwrap();
            data[g.block_offset(1) as usize + 10] ^= 0xff;
            let n = usize::from(header.k + header.m);
            let mut forged = header;
            for s in 0..g.stripe_count() {
                let start = g.block_offset(s) as usize;
                let block = &data[start..start + g.block_len(s)];
                forged.crcs[s as usize] = crc32fast::hash(block);
                forged.block_hashes[s as usize * n + usize::from(key.shard)] = BlockHash::of(block);
            }
            let mut w = store.begin_shard(disk, key, g).unwrap();
            w.write(&data).unwrap();
            w.finish(&store, &forged).unwrap();
        }
        // Forgery 2, at another site: y's shard there replaced by x's shard there (file and
        // header), the header rewritten to name y's shard, hashes made to fit.
        // (A data shard of y, which every read of y asks for first. A forged parity shard is met
        // only by a read that needs it: see issue 21's note.)
        let misdirect_site = files
            .iter()
            .find(|f| f.2.object == y && f.2.shard < 3 && f.0 != forged_site)
            .unwrap()
            .0;
        {
            let (_, x_path, x_key) = at(x, misdirect_site);
            let (_, _, y_key) = at(y, misdirect_site);
            let store = cluster.site_store(misdirect_site);
            let (_, x_header) = store.header(&x_key).unwrap();
            let (disk, y_header) = store.header(&y_key).unwrap();
            let g = y_header.geometry().unwrap();
            assert_eq!(x_header.geometry().unwrap(), g);
            let data = std::fs::read(&x_path).unwrap();
            let n = usize::from(y_header.k + y_header.m);
            let mut forged = y_header;
            forged.crcs = x_header.crcs;
            for s in 0..g.stripe_count() {
                let start = g.block_offset(s) as usize;
                let block = &data[start..start + g.block_len(s)];
                forged.block_hashes[s as usize * n + usize::from(y_key.shard)] =
                    BlockHash::of(block);
            }
            let mut w = store.begin_shard(disk, y_key, g).unwrap();
            w.write(&data).unwrap();
            w.finish(&store, &forged).unwrap();
        }
        for i in 0..5 {
            cluster.start_node(i);
        }
        // Every site answers the gateway again before the reads (a site it still counts as
        // down is asked last, and its forged shard would not be met).
        cluster
            .wait_for_status(Duration::from_secs(30), "sites not back", all_reachable)
            .await;

        // Every read gives the right bytes.
        let deadline = Instant::now() + Duration::from_secs(30);
        for (key, data) in &model {
            loop {
                // A node just restarted may not answer yet: a 503 is retried, a wrong byte never.
                match s3.get_object().bucket(BUCKET).key(*key).send().await {
                    Ok(out) => {
                        let body = out.body.collect().await.unwrap().into_bytes();
                        assert_eq!(sha256_hex(&body), sha256_hex(data), "{key}");
                        break;
                    }
                    Err(e) => {
                        assert!(Instant::now() < deadline, "{key}: {e:?}");
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                }
            }
        }
        // The reads reported both forged shards; heal rebuilds them.
        let (heal, status_after) = cluster.heal_and_status();
        assert!(heal["repaired"].as_u64() >= Some(2), "{heal:#}");
        assert_eq!(status_after["repair_backlog"], 0, "{status_after:#}");

        // Two sites that were never damaged go down: the repaired shards carry the reads.
        let undamaged: Vec<usize> = (0..5)
            .filter(|&s| s != forged_site && s != misdirect_site)
            .take(2)
            .collect();
        for s in &undamaged {
            cluster.kill_node(*s);
        }
        for (key, data) in &model {
            let body = get(&s3, BUCKET, key).await;
            assert_eq!(sha256_hex(&body), sha256_hex(data), "{key}");
        }
    })
    .await;
}

/// `docs/durability.md`: an unreadable GET answers 503, never a 200 with a short body. With
/// m + 1 sites down before the GET, the answer is 503. With them going down while the body
/// streams (the first batch of stripes already sent), the client sees the body fail, never a
/// complete-looking short object. Issue 21, item 5.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreadable_get_fails_loudly_before_or_during_its_body() {
    within(180, async {
        let mut cluster = started_cluster("").await;
        let s3 = cluster.s3_client(1);
        s3.create_bucket().bucket(BUCKET).send().await.unwrap();
        // Forty stripes: five batches of eight.
        let data = Rng::new(21).bytes(40 * (3 * 256 * 1024 - 16));
        put(&s3, BUCKET, "large", &data).await;

        // Down while the body streams: the first bytes arrive, then three sites go.
        let out = s3
            .get_object()
            .bucket(BUCKET)
            .key("large")
            .send()
            .await
            .unwrap();
        assert_eq!(out.content_length(), Some(data.len() as i64));
        let mut body = out.body;
        let first = body.next().await.unwrap().unwrap();
        assert_eq!(&data[..first.len()], &first[..]);
        for i in 0..3 {
            cluster.kill_node(i);
        }
        let mut got = first.len();
        let mut failed = false;
        while let Some(piece) = body.next().await {
            match piece {
                Ok(b) => {
                    assert_eq!(&data[got..got + b.len()], &b[..], "wrong bytes at {got}");
                    got += b.len();
                }
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        assert!(
            failed || got == data.len(),
            "the body ended cleanly after {got} of {} bytes",
            data.len()
        );
        assert!(
            failed,
            "all {got} bytes arrived with three of five sites down"
        );

        // Down before the GET: 503, no body.
        let err = s3
            .get_object()
            .bucket(BUCKET)
            .key("large")
            .send()
            .await
            .map(|_| ())
            .unwrap_err();
        assert_eq!(status(&err), 503, "{err:?}");
    })
    .await;
}

/// Issue 15, finding 6: reads must not stall when sites die. Sequential GETs of one object run
/// before and after two of its data shards' sites are SIGKILLed: right after the kill and 20 s
/// later, no GET takes more than 1 s longer than the slowest healthy one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_do_not_stall_when_sites_die() {
    within(240, async {
        let mut cluster = started_cluster("").await;
        let s3 = cluster.s3_client(1);
        s3.create_bucket().bucket(BUCKET).send().await.unwrap();
        // 32 stripes: four batches of eight.
        let data = Rng::new(6).bytes(32 * (3 * 256 * 1024 - 16));
        put(&s3, BUCKET, "deed", &data).await;
        let timed_get = || async {
            let t = Instant::now();
            assert_eq!(get(&s3, BUCKET, "deed").await.len(), data.len());
            t.elapsed()
        };
        let mut healthy = Duration::ZERO;
        for _ in 0..4 {
            healthy = healthy.max(timed_get().await);
        }
        let files = shard_files(&cluster);
        let site_of = |shard: u8| files.iter().find(|f| f.2.shard == shard).unwrap().0;
        let (a, b) = (site_of(0), site_of(1));
        cluster.kill_node(a);
        cluster.kill_node(b);
        let killed = Instant::now();
        let mut times = Vec::new();
        while killed.elapsed() < Duration::from_secs(25) {
            times.push((killed.elapsed().as_secs_f64(), timed_get().await));
        }
        let worst = times.iter().map(|t| t.1).max().unwrap();
        eprintln!(
            "healthy max {healthy:?}; after the kill: {} GETs, worst {worst:?}; {:?}",
            times.len(),
            times
                .iter()
                .map(|(at, d)| format!("{at:.1}s:{}ms", d.as_millis()))
                .collect::<Vec<_>>()
        );
        assert!(
            worst <= healthy + Duration::from_secs(1),
            "a GET took {worst:?} with two sites down, the slowest healthy one {healthy:?}"
        );

        // Back: the sites are redialled in the background and used again within seconds.
        cluster.start_node(a);
        cluster.start_node(b);
        let back = Instant::now();
        loop {
            timed_get().await;
            let v = cluster.status_json();
            if all_reachable(&v) {
                break;
            }
            assert!(
                back.elapsed() < Duration::from_secs(15),
                "the restarted sites are not used again: {v:#}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        eprintln!(
            "both sites reachable again {:?} after their restart",
            back.elapsed()
        );
    })
    .await;
}
