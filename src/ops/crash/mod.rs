//! Crash at every point of a whole cluster. Five nodes and a gateway (`cluster.rs`) run a
//! registry's day through the gateway's S3 operations: a large PUT, an inline PUT, a multipart
//! upload and its Complete, a PUT while one site's disk is full (acknowledged without it) and
//! the repair that rebuilds its shard once there is room, a DELETE, a master key rotation
//! (every node's manifests re-wrapped), and a write that fails its quorum (two sites full) and
//! is withdrawn. Their disks are one simulated disk; the test crashes it after each of its
//! operations in turn, every site and the gateway at once, then starts the cluster from what
//! survived (each way a crash can leave a disk: synced only, a torn last write, everything)
//! and checks:
//! - every node and the gateway start;
//! - every object reads back as after the last acknowledged step, or (the step the crash
//!   interrupted) as after that step: acknowledged writes whole, nothing half-visible, no read
//!   failing;
//! - heal brings everything back to whole: a second heal finds nothing degraded, nothing to
//!   restore, no repair or withdrawal pending, nothing unrebuildable; the reads are unchanged;
//! - an index rebuilt from the nodes' manifests (as a recovery from the foreign sites builds
//!   it) reads the same.
//!
//! Operations from five nodes interleave as their tasks run, so the count differs a little from
//! run to run; each run is checked against its own acknowledgements. Every point by default;
//! `EXCLAVE_CRASH_STRIDE=N` checks every Nth from `EXCLAVE_CRASH_OFFSET` (`./check`: every
//! third, from a random first one, within its time budget); the figures are printed.

mod cluster;

use std::collections::BTreeMap;

use futures::StreamExt as _;
use s3s::dto::{
    CompleteMultipartUploadInput, CompletedMultipartUpload, CompletedPart, CreateBucketInput,
    CreateMultipartUploadInput, DeleteObjectInput, GetObjectInput, PutObjectInput, StreamingBlob,
    UploadPartInput,
};
use s3s::{S3ErrorCode, S3Request};

use self::cluster::{Cluster, SITES, Secrets, data_dir, fresh_disk, state_dir};
use super::keys::{NodeRotation, rewrap_node};
use crate::core::wire::ShardKey;
use crate::sys::sim::{SimFiles, Survives};

const BUCKET: &str = "registry";

fn request<T>(input: T) -> S3Request<T> {
    S3Request {
        input,
        method: http::Method::PUT,
        uri: http::Uri::from_static("/"),
        headers: http::HeaderMap::new(),
        extensions: http::Extensions::default(),
        credentials: None,
        region: None,
        service: None,
        trailing_headers: None,
    }
}

/// Ok when the gateway acknowledged, else its error.
fn acked<T>(r: s3s::S3Result<T>) -> Result<(), String> {
    r.map(|_| ()).map_err(|e| e.to_string())
}

fn blob(data: &[u8]) -> Option<StreamingBlob> {
    Some(StreamingBlob::from(s3s::Body::from(data.to_vec())))
}

/// `len` bytes of a pattern of its own for `seed`.
fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(seed | 1).wrapping_add(seed))
        .collect()
}

/// The objects, and what each step leaves in them.
const KEYS: [&str; 4] = ["deeds/a", "deeds/b", "deeds/m", "deeds/c"];

fn a1() -> Vec<u8> {
    bytes(20_000, 1)
}
fn a2() -> Vec<u8> {
    bytes(23_456, 2)
}
fn b() -> Vec<u8> {
    bytes(300, 3)
}
fn m() -> Vec<u8> {
    bytes(9_000, 4)
}

const STEPS: [&str; 11] = [
    "create the bucket",
    "large PUT a",
    "inline PUT b",
    "create a multipart upload of m",
    "upload its part",
    "complete m",
    "PUT a again while site-e's disk is full (acknowledged at four sites)",
    "site-e has room again: the repair pass rebuilds its shard",
    "DELETE b",
    "rotate the master key: every node's manifests re-wrapped",
    "PUT c while site-d and site-e are full: below its quorum, withdrawn",
];

type Model = BTreeMap<&'static str, Option<Vec<u8>>>;

/// What the objects read as after each step (`after[i]`: after `i` steps).
fn model() -> Vec<Model> {
    let mut now: Model = KEYS.iter().map(|k| (*k, None)).collect();
    let mut out = vec![now.clone()];
    for i in 0..STEPS.len() {
        match i {
            1 => {
                now.insert("deeds/a", Some(a1()));
            }
            2 => {
                now.insert("deeds/b", Some(b()));
            }
            5 => {
                now.insert("deeds/m", Some(m()));
            }
            6 => {
                now.insert("deeds/a", Some(a2()));
            }
            8 => {
                now.insert("deeds/b", None);
            }
            _ => {}
        }
        out.push(now.clone());
    }
    out
}

/// What step `i` may leave when a crash interrupts it: as after it, except that a write the
/// crash cut short before it was withdrawn (step 10) may have reached a quorum of manifests,
/// and may then be read, whole, like any write whose answer its client never got.
fn interrupted(after: &[Model], i: usize) -> Option<Model> {
    let mut m = after.get(i + 1)?.clone();
    if i == 10 {
        m.insert("deeds/c", Some(c_bytes()));
    }
    Some(m)
}

/// What a run carries from step to step.
#[derive(Default)]
struct Run {
    upload: String,
    etag: String,
}

async fn put(c: &Cluster, key: &str, data: &[u8]) -> Result<(), String> {
    let input = PutObjectInput::builder()
        .bucket(BUCKET.into())
        .key(key.into())
        .content_length(Some(data.len() as i64))
        .body(blob(data))
        .build()
        .map_err(|e| e.to_string())?;
    c.gateway
        .put_object_op(request(input))
        .await
        .map(|_| ())
        .map_err(|e| format!("PUT {key}: {e}"))
}

/// Step `i`; Ok when it was acknowledged (or, for the last, refused as it must be).
async fn step(
    c: &Cluster,
    fs: &SimFiles,
    secrets: &Secrets,
    run: &mut Run,
    i: usize,
) -> Result<(), String> {
    let g = &c.gateway;
    match i {
        0 => {
            let input = CreateBucketInput::builder()
                .bucket(BUCKET.into())
                .build()
                .map_err(|e| e.to_string())?;
            acked(g.create_bucket_op(request(input)).await)
        }
        1 => put(c, "deeds/a", &a1()).await,
        2 => put(c, "deeds/b", &b()).await,
        3 => {
            let input = CreateMultipartUploadInput::builder()
                .bucket(BUCKET.into())
                .key("deeds/m".into())
                .build()
                .map_err(|e| e.to_string())?;
            let out = g
                .create_multipart_upload_op(request(input))
                .await
                .map_err(|e| e.to_string())?;
            run.upload = out.output.upload_id.unwrap_or_default();
            Ok(())
        }
        4 => {
            let data = m();
            let input = UploadPartInput::builder()
                .bucket(BUCKET.into())
                .key("deeds/m".into())
                .upload_id(run.upload.clone())
                .part_number(1)
                .content_length(Some(data.len() as i64))
                .body(blob(&data))
                .build()
                .map_err(|e| e.to_string())?;
            let out = g
                .upload_part_op(request(input))
                .await
                .map_err(|e| e.to_string())?;
            run.etag = out
                .output
                .e_tag
                .map(|e| e.value().to_owned())
                .unwrap_or_default();
            Ok(())
        }
        5 => {
            let input = CompleteMultipartUploadInput::builder()
                .bucket(BUCKET.into())
                .key("deeds/m".into())
                .upload_id(run.upload.clone())
                .multipart_upload(Some(CompletedMultipartUpload {
                    parts: Some(vec![CompletedPart {
                        e_tag: Some(s3s::dto::ETag::Strong(run.etag.clone())),
                        part_number: Some(1),
                        ..CompletedPart::default()
                    }]),
                }))
                .build()
                .map_err(|e| e.to_string())?;
            acked(g.complete_multipart_upload_op(request(input)).await)
        }
        6 => {
            fs.fill(&data_dir(4));
            put(c, "deeds/a", &a2()).await
        }
        7 => {
            fs.free(&data_dir(4));
            let pass = g.repair_pass().await.map_err(|e| e.to_string())?;
            if pass.repaired == 0 {
                return Err(format!("the repair pass rebuilt nothing: {pass:?}"));
            }
            Ok(())
        }
        8 => {
            let input = DeleteObjectInput::builder()
                .bucket(BUCKET.into())
                .key("deeds/b".into())
                .build()
                .map_err(|e| e.to_string())?;
            acked(g.delete_object_op(request(input)).await)
        }
        9 => {
            let objects = c.rotation_objects(secrets);
            for (id, client) in &c.clients {
                let mut nr = NodeRotation {
                    node: id.0,
                    site: SITES[id.0 as usize - 1].to_owned(),
                    ..NodeRotation::default()
                };
                rewrap_node(
                    &objects,
                    client,
                    &secrets.old,
                    &secrets.new,
                    &secrets.manifest_key(),
                    &mut nr,
                )
                .await;
                if let Some(e) = nr.error {
                    return Err(format!("node {}: {e}", id.0));
                }
            }
            Ok(())
        }
        10 => {
            fs.fill(&state_dir(3));
            fs.fill(&state_dir(4));
            let got = put(c, "deeds/c", &c_bytes()).await;
            if got.is_ok() {
                return Err("a write below its quorum was acknowledged".into());
            }
            // Refused as it must be; the withdrawal that follows is part of the step.
            if fs.has_crashed() {
                return Err("crashed".into());
            }
            Ok(())
        }
        _ => unreachable!(),
    }
}

fn c_bytes() -> Vec<u8> {
    bytes(400, 5)
}

/// Runs the steps on a fresh cluster, crashing after `crash_after` operations; returns the
/// disk, how many steps were acknowledged, the operations counted, and the last one done.
async fn run(secrets: &Secrets, crash_after: Option<u64>) -> (SimFiles, usize, u64, String) {
    let fs = fresh_disk();
    let cluster = Cluster::start(&fs, secrets, false, false).await.unwrap();
    fs.settle();
    let base = fs.ops();
    if let Some(n) = crash_after {
        fs.crash_after(n);
    }
    let mut state = Run::default();
    let mut acked = 0;
    for (i, what) in STEPS.iter().enumerate() {
        match step(&cluster, &fs, secrets, &mut state, i).await {
            Ok(()) => acked += 1,
            Err(e) => {
                assert!(
                    crash_after.is_some(),
                    "step {i} ({what}) failed without a crash: {e}"
                );
                break;
            }
        }
    }
    cluster.stop().await;
    let ops = fs.ops() - base;
    let last = if ops == 0 {
        "none".to_owned()
    } else {
        fs.describe(base + ops - 1)
    };
    (fs, acked, ops, last)
}

/// What `key` reads as: its bytes, or None for NoSuchKey.
async fn read(c: &Cluster, key: &str) -> Result<Option<Vec<u8>>, String> {
    let input = GetObjectInput::builder()
        .bucket(BUCKET.into())
        .key(key.into())
        .build()
        .map_err(|e| e.to_string())?;
    match c.gateway.get_object_op(request(input)).await {
        Ok(resp) => {
            let mut out = Vec::new();
            if let Some(mut body) = resp.output.body {
                while let Some(chunk) = body.next().await {
                    out.extend_from_slice(&chunk.map_err(|e| format!("GET {key}: {e}"))?);
                }
            }
            Ok(Some(out))
        }
        Err(e) if *e.code() == S3ErrorCode::NoSuchKey => Ok(None),
        Err(e) if *e.code() == S3ErrorCode::NoSuchBucket => Ok(None),
        Err(e) => Err(format!("GET {key}: {e}")),
    }
}

fn shown(v: &Option<Vec<u8>>) -> String {
    match v {
        None => "absent".into(),
        Some(b) => format!("{} bytes", b.len()),
    }
}

/// Every object reads as `before` or `after` says; returns what each read.
async fn reads_as(c: &Cluster, before: &Model, after: Option<&Model>) -> Result<Model, String> {
    let mut got = Model::new();
    for key in KEYS {
        let v = read(c, key).await?;
        let ok = before[key] == v || after.is_some_and(|a| a[key] == v);
        if !ok {
            return Err(format!(
                "{key} reads as {}, neither as acknowledged ({}) nor as the interrupted step \
                 would leave it ({})",
                shown(&v),
                shown(&before[key]),
                after.map_or("-".into(), |a| shown(&a[key])),
            ));
        }
        got.insert(key, v);
    }
    Ok(got)
}

/// Starts the cluster from `image` and checks it (see the module's comment).
async fn check(
    image: &SimFiles,
    secrets: &Secrets,
    before: &Model,
    after: Option<&Model>,
) -> Result<(), String> {
    let c = Cluster::start(image, secrets, true, false).await?;
    let first = reads_as(&c, before, after).await?;
    let heal = c.gateway.heal(None).await.map_err(|e| e.to_string())?;
    let again = c.gateway.heal(None).await.map_err(|e| e.to_string())?;
    let zero = |name: &str| again[name].as_u64() == Some(0);
    let whole = [
        "found_degraded",
        "shards_unverified",
        "manifests_restored",
        "manifests_unverified",
        "pending",
        "withdrawals_pending",
    ]
    .iter()
    .all(|n| zero(n))
        && again["unrebuildable"].as_array().is_some_and(Vec::is_empty);
    if !whole {
        let ix = c.gateway.index_for_test();
        return Err(format!(
            "not whole after heal: first {heal}\nthen {again}\nbacklog {:?}\nwithdrawals {:?}\n\
             writes not settled {:?}",
            ix.repairs(),
            ix.withdrawals(),
            ix.intents(),
        ));
    }
    let healed = reads_as(&c, &first, None)
        .await
        .map_err(|e| format!("after heal: {e}"))?;
    // Whole means every copy: each object read has every shard at its site.
    for key in KEYS {
        if healed[key].is_none() {
            continue;
        }
        let (m, meta) = c
            .gateway
            .current(BUCKET, key)
            .await
            .map_err(|e| format!("{key}: {e}"))?;
        for (i, loc) in meta.placement.iter().enumerate() {
            let shard = ShardKey {
                object: m.object,
                version: m.version,
                shard: i as u8,
            };
            if let Err(e) = c.clients[&loc.node].shard_header(shard).await {
                return Err(format!(
                    "after heal said whole, {key}'s shard {i} is not at node {}: {e}",
                    loc.node.0
                ));
            }
        }
    }
    c.stop().await;
    // As a gateway rebuilt from the sites would read it.
    let r = Cluster::start(image, secrets, true, true).await?;
    let rebuilt = reads_as(&r, &healed, None)
        .await
        .map_err(|e| format!("from an index rebuilt from the nodes: {e}"));
    r.stop().await;
    rebuilt.map(|_| ())
}

/// `EXCLAVE_CRASH_STRIDE` (every point when unset) and `EXCLAVE_CRASH_OFFSET` (the first
/// point, below the stride; 0 when unset): `./check` checks every third point from a random
/// first one, so that its runs between them cover every point.
fn stride_and_offset() -> (u64, u64) {
    let var = |name| std::env::var(name).ok().and_then(|s| s.parse::<u64>().ok());
    let stride = var("EXCLAVE_CRASH_STRIDE").filter(|&n| n > 0).unwrap_or(1);
    (stride, var("EXCLAVE_CRASH_OFFSET").unwrap_or(0) % stride)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_crash_point_of_a_cluster_leaves_acknowledged_writes_whole_and_heals() {
    // About four minutes here; bounded.
    tokio::time::timeout(std::time::Duration::from_secs(1500), every_crash_point())
        .await
        .expect("the cluster crash points took over 25 minutes");
}

async fn every_crash_point() {
    let secrets = Secrets::new();
    let after = model();
    let (_, acked, total, _) = run(&secrets, None).await;
    assert_eq!(acked, STEPS.len());
    let (stride, offset) = stride_and_offset();
    let mut checked = 0;
    let mut points = 0;
    let mut failures = Vec::new();
    let mut point = offset;
    while point <= total {
        let (fs, acked, _, last) = run(&secrets, Some(point)).await;
        points += 1;
        for how in Survives::ALL {
            let image = fs.after_crash(how);
            checked += 1;
            let maybe = interrupted(&after, acked);
            if let Err(e) = check(&image, &secrets, &after[acked], maybe.as_ref()).await {
                failures.push(format!(
                    "crash after operation {point} of {total} (the last: {last}), {how:?}, \
                     {acked} steps acknowledged (next: {}; this point alone: \
                     EXCLAVE_CRASH_STRIDE={} EXCLAVE_CRASH_OFFSET={point}): {e}",
                    STEPS.get(acked).unwrap_or(&"none"),
                    total + 1,
                ));
            }
        }
        point += stride;
    }
    eprintln!(
        "cluster crash points: {points} of {} operations (every {stride} from {offset}: \
         EXCLAVE_CRASH_STRIDE={stride} EXCLAVE_CRASH_OFFSET={offset}) x {} ways = {checked} \
         restarts checked, {} failed",
        total + 1,
        Survives::ALL.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
