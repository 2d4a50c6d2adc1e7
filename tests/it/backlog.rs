//! Issue 15, finding 2: the repair backlog drains. An entry that cannot be rebuilt leaves it
//! with an account of why, and `status` and `heal` agree on what is whole.

use std::time::{Duration, Instant};

use crate::durability::{scrub_everywhere, shard_files};
use crate::sigv4::sha256_hex;
use crate::support::{Cluster, Rng, all_reachable, get, put, started_cluster, within};

const BUCKET: &str = "registry";

/// Runs `exclave ARGS`: (exit success, stdout, stderr).
fn cli(cluster: &Cluster, args: &[&str]) -> (bool, String, String) {
    let out = cluster.exclave_cli(args, Duration::from_secs(120));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A committed version with one stripe bad at m + 1 sites cannot be rebuilt. It leaves the
/// backlog named; `status` exits 1 and lists it, `heal --wait` stops at once (exit 1) and
/// lists it too. Once a newer version supersedes it, the next heal drops it and both say whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_version_too_rotten_to_rebuild_leaves_the_backlog_named_and_status_and_heal_agree() {
    within(300, async {
        let mut cluster = started_cluster("repair_interval_secs = 1").await;
        let s3 = cluster.s3_client(1);
        s3.create_bucket().bucket(BUCKET).send().await.unwrap();
        // Eight full stripes of 3 x 256 KiB blocks, and a small neighbour that stays whole.
        let data = Rng::new(21).bytes(8 * (3 * 256 * 1024 - 16));
        put(&s3, BUCKET, "parcel", &data).await;
        put(&s3, BUCKET, "neighbour", b"a small record").await;

        for i in 0..5 {
            cluster.kill_node(i);
        }
        let mut files = shard_files(&cluster);
        files.sort_by_key(|f| f.2.shard);
        assert_eq!(files.len(), 5, "one shard file per site: {files:?}");
        // Stripe 2's block in three of the five shards: two good blocks of the three needed.
        for f in &files[..3] {
            let mut b = std::fs::read(&f.1).unwrap();
            b[2 * 256 * 1024 + 777] ^= 0x10;
            std::fs::write(&f.1, b).unwrap();
        }
        cluster.start_all();
        cluster
            .wait_for_status(Duration::from_secs(30), "sites back", all_reachable)
            .await;

        // The read fails loudly and reports what it met; the repair pass gives up on it.
        let r = s3.get_object().bucket(BUCKET).key("parcel").send().await;
        let failed = match r {
            Err(_) => true,
            Ok(o) => o.body.collect().await.is_err(),
        };
        assert!(
            failed,
            "a GET of a stripe with 2 good blocks of 3 succeeded"
        );
        let waited = cluster
            .wait_for_status(Duration::from_secs(30), "the backlog drains", |v| {
                v["repair_backlog"] == 0
                    && v["unrebuildable"].as_array().is_some_and(|l| l.len() == 1)
            })
            .await;
        let v = cluster.status_json();
        let lost = &v["unrebuildable"][0];
        assert_eq!(lost["bucket"], BUCKET, "{v:#}");
        assert_eq!(lost["key"], "parcel", "{v:#}");
        assert_eq!(
            (lost["good"].as_u64(), lost["needed"].as_u64()),
            (Some(2), Some(3)),
            "{v:#}"
        );
        assert_eq!(v["buckets"][0]["whole"], 1, "{v:#}");
        assert_eq!(v["buckets"][0]["unreadable"], 1, "{v:#}");
        eprintln!("given up on within {waited:?} of the failed read");

        // status and heal agree: not whole, and they name it.
        let (ok, out, _) = cli(&cluster, &["status"]);
        assert!(
            !ok,
            "status exits 0 with a version that cannot be rebuilt:\n{out}"
        );
        assert!(
            out.contains("CANNOT BE REBUILT") && out.contains("registry/parcel"),
            "{out}"
        );
        let started = Instant::now();
        let (ok, out, err) = cli(&cluster, &["heal", "--wait", "--timeout", "100"]);
        assert!(
            !ok,
            "heal --wait exits 0 with a version that cannot be rebuilt:\n{out}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "heal waited for what cannot come: {:?}",
            started.elapsed()
        );
        assert!(err.contains("cannot be rebuilt"), "{err}");
        assert!(out.contains("registry/parcel"), "{out}");
        let v = cluster.status_json();
        assert_eq!(
            v["repair_backlog"], 0,
            "heal leaves the backlog drained: {v:#}"
        );

        // A newer version supersedes it: heal drops the old one, and both say whole.
        let fresh = Rng::new(22).bytes(300_000);
        put(&s3, BUCKET, "parcel", &fresh).await;
        assert_eq!(
            sha256_hex(&get(&s3, BUCKET, "parcel").await),
            sha256_hex(&fresh)
        );
        let (ok, out, err) = cli(&cluster, &["heal", "--wait", "--timeout", "100"]);
        assert!(ok, "{out}\n{err}");
        let (ok, out, _) = cli(&cluster, &["status"]);
        assert!(ok, "{out}");
        let v = cluster.status_json();
        assert_eq!(v["unrebuildable"], serde_json::json!([]), "{v:#}");
        assert_eq!(v["buckets"][0]["whole"], 2, "{v:#}");
    })
    .await;
}

/// Shards of a write that never committed (it failed while two sites were down), one of them
/// then rotten at a third site: scrub puts it in the backlog, and no site holds a manifest
/// record of it. Once that has lasted longer than a commit takes, it leaves the backlog as
/// not a version; `heal --wait` and `status` both exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shards_of_a_write_that_never_committed_leave_the_backlog_as_not_a_version() {
    within(300, async {
        let mut cluster = started_cluster("repair_interval_secs = 1\nwrite_timeout_secs = 2").await;
        let s3 = cluster.s3_client(1);
        s3.create_bucket().bucket(BUCKET).send().await.unwrap();

        // Two sites stall; the write's shards become durable at the three left and it fails
        // waiting for the rest. The stalled two then die without ever taking theirs.
        cluster.signal_node(3, "STOP");
        cluster.signal_node(4, "STOP");
        let body = Rng::new(23).bytes(1_000_000);
        let r = s3
            .put_object()
            .bucket(BUCKET)
            .key("ghost")
            .body(aws_sdk_s3::primitives::ByteStream::from(body))
            .send()
            .await;
        assert!(
            r.is_err(),
            "a write acknowledged with two of five sites down"
        );
        cluster.kill_node(3);
        cluster.kill_node(4);
        let files = shard_files(&cluster);
        assert!(
            !files.is_empty(),
            "the failed write left no shards to test with"
        );
        cluster.start_node(3);
        cluster.start_node(4);
        cluster
            .wait_for_status(Duration::from_secs(30), "sites back", all_reachable)
            .await;

        // Rot in one of its shards at a third site; scrub finds it.
        let f = &files[0];
        let mut b = std::fs::read(&f.1).unwrap();
        b[1000] ^= 0x01;
        std::fs::write(&f.1, b).unwrap();
        scrub_everywhere(&cluster).await;

        // Recorded, then settled: the backlog drains by itself.
        cluster
            .wait_for_status(
                Duration::from_secs(30),
                "the finding reaches the backlog",
                |v| v["repair_backlog"] == 1,
            )
            .await;
        let drained = cluster
            .wait_for_status(Duration::from_secs(40), "the backlog drains", |v| {
                v["repair_backlog"] == 0
            })
            .await;
        eprintln!("drained {drained:?} after the finding was recorded");
        let log = std::fs::read_to_string(cluster.root().join("gateway/exclaved.log")).unwrap();
        assert!(
            log.contains("not a version"),
            "the backlog drained without an account of why"
        );
        let (ok, out, err) = cli(&cluster, &["heal", "--wait", "--timeout", "60"]);
        assert!(ok, "{out}\n{err}");
        let (ok, out, _) = cli(&cluster, &["status"]);
        assert!(ok, "{out}");
        // The failed write is nowhere to be read.
        assert!(!crate::support::exists(&s3, BUCKET, "ghost").await);
    })
    .await;
}
