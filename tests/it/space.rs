//! Space that comes back: overwritten, deleted, removed versions and multipart parts are
//! collected after their grace period (`exclave gc --wait`), locked versions never; a site
//! restored from an old copy of its directory brings no deleted object back.

use std::path::Path;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use crate::support::*;

/// Bytes of the files under `dir` (recursively).
fn bytes_under(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => bytes_under(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

/// Shard file bytes at every site.
fn shard_bytes(c: &Cluster) -> u64 {
    (0..c.sites.len())
        .map(|i| bytes_under(&c.disk_of(i).1.join("shards")))
        .sum()
}

/// `exclave gc --wait --json`: the report.
fn gc(c: &Cluster) -> serde_json::Value {
    let out = c.exclave_cli(&["gc", "--wait", "--json"], Duration::from_secs(120));
    assert!(
        out.status.success(),
        "exclave gc: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn freed(report: &serde_json::Value, reason: &str) -> u64 {
    report["total_by_reason"][reason]["bytes"]
        .as_u64()
        .unwrap_or(0)
}

const PROFILE: f64 = 5.0 / 3.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overwritten_deleted_removed_and_part_bytes_come_back_and_locked_ones_stay() {
    within(600, async {
        let mut cluster = started_cluster("gc_grace_secs = 2\ngc_interval_secs = 3600").await;
        let s3 = cluster.s3_client(3);
        s3.create_bucket().bucket("land").send().await.unwrap();
        let mut rng = Rng::new(17);
        let overwrites: usize = std::env::var("EXCLAVE_GC_OVERWRITES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20);
        // `EXCLAVE_GC_OVERWRITES=100 EXCLAVE_GC_MIB=20`: the figure (docs/durability.md).
        let size = std::env::var("EXCLAVE_GC_MIB")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(4)
            << 20;
        let mut last = Vec::new();
        let mut peak = 0;
        for _ in 0..=overwrites {
            last = rng.bytes(size);
            put(&s3, "land", "parcel", &last).await;
            peak = peak.max(shard_bytes(&cluster));
        }
        let live = (size as f64 * PROFILE) as u64;
        assert!(
            peak as f64 >= live as f64 * overwrites as f64,
            "every version was written: {peak} at the sites"
        );
        // A dry run deletes nothing.
        let out = cluster.exclave_cli(&["gc", "--dry-run", "--json"], Duration::from_secs(60));
        assert!(out.status.success());
        assert_eq!(shard_bytes(&cluster), peak);

        let report = gc(&cluster);
        let after = shard_bytes(&cluster);
        assert!(
            after as f64 <= 1.1 * live as f64,
            "after collection {after} bytes at the sites for {live} live: {report:#}"
        );
        assert!(freed(&report, "overwritten") >= peak - after);
        eprintln!(
            "{overwrites} overwrites of {size} bytes: {peak} shard bytes at the sites at the \
             peak, {after} after collection = {:.3} x (k+m)/k x the live bytes",
            after as f64 / live as f64
        );
        assert_eq!(
            get(&s3, "land", "parcel").await,
            last,
            "the live version reads back"
        );
        let status = cluster.status_json();
        let collected: u64 = status["sites"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["gc"]["collected_bytes"].as_u64().unwrap())
            .sum();
        assert!(collected >= peak - after, "{status:#}");

        // Delete everything: at most 1% of the peak stays (metadata aside).
        for i in 0..5 {
            put(&s3, "land", &format!("extra-{i}"), &rng.bytes(3 << 20)).await;
        }
        let full = shard_bytes(&cluster);
        s3.delete_object()
            .bucket("land")
            .key("parcel")
            .send()
            .await
            .unwrap();
        for i in 0..5 {
            let key = format!("extra-{i}");
            s3.delete_object()
                .bucket("land")
                .key(&key)
                .send()
                .await
                .unwrap();
        }
        let report = gc(&cluster);
        let left = shard_bytes(&cluster);
        eprintln!(
            "every object deleted: {left} of {full} shard bytes left ({:.4} %)",
            left as f64 * 100.0 / full as f64
        );
        assert!(
            left * 100 <= full,
            "after deleting every object {left} of {full} bytes stayed: {report:#}"
        );
        assert!(!exists(&s3, "land", "parcel").await);

        // Multipart, completed by reference: the data is written once (a part uploaded twice
        // aside, whose first attempt the collector takes); deleting the object frees it all.
        let part = 5 << 20;
        let before = shard_bytes(&cluster);
        let up = s3
            .create_multipart_upload()
            .bucket("land")
            .key("big")
            .send()
            .await
            .unwrap();
        let id = up.upload_id().unwrap();
        let mut whole = Vec::new();
        let mut parts = Vec::new();
        for n in 1..=3 {
            // Part 2 is sent twice: the second replaces the first.
            let tries = if n == 2 { 2 } else { 1 };
            let mut data = Vec::new();
            let mut etag = String::new();
            for _ in 0..tries {
                data = rng.bytes(part);
                let p = s3
                    .upload_part()
                    .bucket("land")
                    .key("big")
                    .upload_id(id)
                    .part_number(n)
                    .body(ByteStream::from(data.clone()))
                    .send()
                    .await
                    .unwrap();
                etag = p.e_tag().unwrap().to_owned();
            }
            whole.extend_from_slice(&data);
            parts.push(CompletedPart::builder().part_number(n).e_tag(etag).build());
        }
        let uploaded = shard_bytes(&cluster) - before;
        s3.complete_multipart_upload()
            .bucket("land")
            .key("big")
            .upload_id(id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let completed = shard_bytes(&cluster) - before;
        assert_eq!(
            completed,
            uploaded,
            "Complete wrote {} shard bytes: it must reference the parts, not copy them",
            completed - uploaded
        );
        assert_eq!(get(&s3, "land", "big").await, whole);
        let report = gc(&cluster);
        assert!(
            freed(&report, "upload-part") as f64 >= PROFILE * part as f64,
            "the replaced attempt of part 2 goes: {report:#}"
        );
        let after = shard_bytes(&cluster) - before;
        assert!(
            after as f64 <= 1.02 * PROFILE * whole.len() as f64,
            "{after} bytes at the sites for a {} byte upload",
            whole.len()
        );
        assert_eq!(get(&s3, "land", "big").await, whole);
        // A range across the parts' boundaries, and a part by number.
        let got = s3
            .get_object()
            .bucket("land")
            .key("big")
            .range(format!("bytes={}-{}", part - 10, 2 * part + 9))
            .send()
            .await
            .unwrap();
        assert_eq!(
            got.body.collect().await.unwrap().into_bytes().to_vec(),
            whole[part - 10..2 * part + 10]
        );
        let got = s3
            .get_object()
            .bucket("land")
            .key("big")
            .part_number(2)
            .send()
            .await
            .unwrap();
        assert_eq!(got.parts_count(), Some(3));
        assert_eq!(
            got.body.collect().await.unwrap().into_bytes().to_vec(),
            whole[part..2 * part]
        );
        // Deleted: the object's parts are buried, then collected.
        s3.delete_object()
            .bucket("land")
            .key("big")
            .send()
            .await
            .unwrap();
        let report = gc(&cluster);
        assert_eq!(report["total_parts_buried"], 3, "{report:#}");
        let left = shard_bytes(&cluster).saturating_sub(before);
        assert!(
            left * 100 <= completed,
            "{left} of {completed} bytes of a deleted multipart object stayed: {report:#}"
        );

        // Versioned: a version deleted by id goes; the others and a locked one stay.
        s3.create_bucket()
            .bucket("deeds")
            .object_lock_enabled_for_bucket(true)
            .send()
            .await
            .unwrap();
        enable_versioning(&s3, "deeds").await;
        let v1 = rng.bytes(2 << 20);
        let first = s3
            .put_object()
            .bucket("deeds")
            .key("deed")
            .body(ByteStream::from(v1.clone()))
            .send()
            .await
            .unwrap();
        let second = s3
            .put_object()
            .bucket("deeds")
            .key("deed")
            .body(ByteStream::from(rng.bytes(2 << 20)))
            .send()
            .await
            .unwrap();
        let held = rng.bytes(2 << 20);
        s3.put_object()
            .bucket("deeds")
            .key("held")
            .body(ByteStream::from(held.clone()))
            .object_lock_legal_hold_status(aws_sdk_s3::types::ObjectLockLegalHoldStatus::On)
            .send()
            .await
            .unwrap();
        // A delete marker on the held key: the held version is noncurrent, still kept.
        s3.delete_object()
            .bucket("deeds")
            .key("held")
            .send()
            .await
            .unwrap();
        let before = shard_bytes(&cluster);
        s3.delete_object()
            .bucket("deeds")
            .key("deed")
            .version_id(second.version_id().unwrap())
            .send()
            .await
            .unwrap();
        let report = gc(&cluster);
        let removed = freed(&report, "removed");
        assert!(removed as f64 >= PROFILE * (2 << 20) as f64, "{report:#}");
        assert_eq!(
            before - shard_bytes(&cluster),
            removed,
            "only its shards went"
        );
        let got = s3
            .get_object()
            .bucket("deeds")
            .key("deed")
            .send()
            .await
            .unwrap();
        assert_eq!(got.version_id(), first.version_id());
        assert_eq!(got.body.collect().await.unwrap().into_bytes().to_vec(), v1);
        let versions = s3
            .list_object_versions()
            .bucket("deeds")
            .prefix("held")
            .send()
            .await
            .unwrap();
        let kept = versions.versions()[0].version_id().unwrap().to_owned();
        let got = s3
            .get_object()
            .bucket("deeds")
            .key("held")
            .version_id(&kept)
            .send()
            .await
            .unwrap();
        assert_eq!(
            got.body.collect().await.unwrap().into_bytes().to_vec(),
            held
        );
        cluster.kill_gateway();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_site_restored_from_an_old_copy_brings_no_deleted_object_back() {
    within(400, async {
        let mut cluster = started_cluster("gc_grace_secs = 1\ngc_interval_secs = 3600").await;
        let s3 = cluster.s3_client(3);
        s3.create_bucket().bucket("land").send().await.unwrap();
        let mut rng = Rng::new(5);
        let gone = rng.bytes(1 << 20);
        put(&s3, "land", "sold", &gone).await;
        put(&s3, "land", "small", b"a record").await;
        // Site 1's directory as a backup would have it.
        cluster.kill_node(1);
        let site = cluster.root().join("sites").join(&cluster.sites[1]);
        let backup = cluster.dir.path().join("backup");
        copy_dir(&site, &backup);
        cluster.start_node(1);
        cluster.wait_node_serving(1).await;
        s3.delete_object()
            .bucket("land")
            .key("sold")
            .send()
            .await
            .unwrap();
        s3.delete_object()
            .bucket("land")
            .key("small")
            .send()
            .await
            .unwrap();
        let report = gc(&cluster);
        assert!(freed(&report, "deleted") > 0, "{report:#}");
        let clean = bytes_under(&cluster.disk_of(1).1.join("shards"));

        // The host puts the old copy back.
        cluster.kill_node(1);
        std::fs::remove_dir_all(&site).unwrap();
        copy_dir(&backup, &site);
        cluster.start_node(1);
        cluster.wait_node_serving(1).await;
        assert!(bytes_under(&cluster.disk_of(1).1.join("shards")) > clean);
        for key in ["sold", "small"] {
            assert!(!exists(&s3, "land", key).await, "{key} came back");
        }
        let listed = s3.list_objects_v2().bucket("land").send().await.unwrap();
        assert_eq!(listed.key_count(), Some(0));
        // Nor through an index rebuilt from the nodes.
        cluster.restart_gateway_without_index();
        let s3 = cluster.s3_client(3);
        for key in ["sold", "small"] {
            assert!(
                !exists(&s3, "land", key).await,
                "{key} came back after a rebuild"
            );
        }
        // And the next pass collects the stale copy again.
        let report = gc(&cluster);
        assert!(freed(&report, "deleted") > 0, "{report:#}");
        assert_eq!(bytes_under(&cluster.disk_of(1).1.join("shards")), clean);
        cluster.kill_gateway();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_removed_version_waiting_for_repair_is_dropped_once_collected() {
    within(300, async {
        let mut cluster = started_cluster(
            "gc_grace_secs = 1\ngc_interval_secs = 3600\nrepair_interval_secs = 3600",
        )
        .await;
        let s3 = cluster.s3_client(3);
        s3.create_bucket().bucket("deeds").send().await.unwrap();
        enable_versioning(&s3, "deeds").await;
        // Written while a site is away: its shard waits in the repair backlog.
        cluster.kill_node(1);
        let put = s3
            .put_object()
            .bucket("deeds")
            .key("deed")
            .body(ByteStream::from(Rng::new(3).bytes(1 << 20)))
            .send()
            .await
            .unwrap();
        s3.delete_object()
            .bucket("deeds")
            .key("deed")
            .version_id(put.version_id().unwrap())
            .send()
            .await
            .unwrap();
        cluster.start_node(1);
        cluster.wait_node_serving(1).await;
        let report = gc(&cluster);
        assert!(freed(&report, "removed") > 0, "{report:#}");
        // The backlog entry cannot be rebuilt (its shards were collected) and is read by
        // nobody: dropped, not reported lost.
        let (_, status) = cluster.heal_and_status();
        assert_eq!(status["repair_backlog"], 0, "{status:#}");
        cluster.kill_gateway();
    })
    .await;
}

/// `exclave census --json`: (exit status, report).
fn census(c: &Cluster) -> (bool, serde_json::Value) {
    let out = c.exclave_cli(&["census", "--json"], Duration::from_secs(60));
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "census: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_census_accounts_for_every_byte_of_every_site_and_names_what_nothing_does() {
    within(300, async {
        let cluster = started_cluster("").await;
        let s3 = cluster.s3_client(3);
        s3.create_bucket().bucket("land").send().await.unwrap();
        let mut rng = Rng::new(23);
        for (i, size) in [10, 70_000, 3 << 20].into_iter().enumerate() {
            put(&s3, "land", &format!("parcel-{i}"), &rng.bytes(size)).await;
        }
        let (whole, report) = tokio::task::block_in_place(|| census(&cluster));
        assert!(whole, "{report:#}");

        // A file no header names, in a shard directory, and a stray one at a disk's root.
        let (_, disk) = cluster.disk_of(1);
        let unnamed = disk.join("shards").join("ab").join("leftover");
        std::fs::create_dir_all(unnamed.parent().unwrap()).unwrap();
        std::fs::write(&unnamed, vec![7u8; 12_345]).unwrap();
        let stray = disk.join("notes.txt");
        std::fs::write(&stray, b"someone's notes").unwrap();

        let (whole, report) = tokio::task::block_in_place(|| census(&cluster));
        assert!(
            !whole,
            "unaccounted files, and the census says all is well: {report:#}"
        );
        let sites = report["sites"].as_array().unwrap();
        assert_eq!(sites.len(), 5, "{report:#}");
        for (i, s) in sites.iter().enumerate() {
            assert_eq!(s["answered"], true, "{report:#}");
            // Every byte of the site's data directory and database is in one of the counts.
            let state = cluster
                .root()
                .join("sites")
                .join(&cluster.sites[i])
                .join("state/node.redb");
            let on_disk =
                bytes_under(&cluster.disk_of(i).1) + std::fs::metadata(&state).unwrap().len();
            assert_eq!(
                s["total_bytes"].as_u64().unwrap(),
                on_disk,
                "site {i}: {s:#}"
            );
            assert!(s["shards"]["bytes"].as_u64().unwrap() > 0, "{s:#}");
        }
        let listed: Vec<(&str, u64)> = sites[1]["listed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["path"].as_str().unwrap(), f["bytes"].as_u64().unwrap()))
            .collect();
        assert!(
            listed.contains(&(unnamed.to_str().unwrap(), 12_345)),
            "{listed:?}"
        );
        assert!(
            listed.contains(&(stray.to_str().unwrap(), 15)),
            "{listed:?}"
        );
        assert_eq!(sites[1]["unnamed"]["bytes"], 12_345);
        assert_eq!(sites[1]["stray"]["bytes"], 15);

        std::fs::remove_file(&unnamed).unwrap();
        std::fs::remove_file(&stray).unwrap();
        let (whole, report) = tokio::task::block_in_place(|| census(&cluster));
        assert!(whole, "{report:#}");
    })
    .await;
}

/// `EXCLAVE_MULTIPART_MIB` (default 48) uploaded in 16 MiB parts: the bytes the nodes write
/// (shard files, whose growth nothing else makes here) are (k+m)/k of it, not twice that, and
/// the object reads back whole. `EXCLAVE_MULTIPART_MIB=1024` is the figure
/// (docs/decisions/multipart.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_multipart_upload_writes_its_data_once() {
    within(900, async {
        let cluster = started_cluster("gc_interval_secs = 3600").await;
        let s3 = cluster.s3_client(3);
        s3.create_bucket().bucket("land").send().await.unwrap();
        let mib: usize = std::env::var("EXCLAVE_MULTIPART_MIB")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(48);
        let part = 16 << 20;
        let total = mib << 20;
        let before = shard_bytes(&cluster);
        let up = s3
            .create_multipart_upload()
            .bucket("land")
            .key("survey")
            .send()
            .await
            .unwrap();
        let id = up.upload_id().unwrap();
        let mut rng = Rng::new(31);
        let mut hasher = blake3::Hasher::new();
        let mut parts = Vec::new();
        let mut n = 0;
        let mut sent = 0;
        while sent < total {
            n += 1;
            let data = rng.bytes(part.min(total - sent));
            sent += data.len();
            hasher.update(&data);
            let p = s3
                .upload_part()
                .bucket("land")
                .key("survey")
                .upload_id(id)
                .part_number(n)
                .body(ByteStream::from(data))
                .send()
                .await
                .unwrap();
            parts.push(
                CompletedPart::builder()
                    .part_number(n)
                    .e_tag(p.e_tag().unwrap())
                    .build(),
            );
        }
        let started = std::time::Instant::now();
        s3.complete_multipart_upload()
            .bucket("land")
            .key("survey")
            .upload_id(id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let complete_took = started.elapsed();
        let written = shard_bytes(&cluster) - before;
        let ratio = written as f64 / total as f64;
        eprintln!(
            "{mib} MiB in {n} parts: {written} shard bytes written at the nodes = {ratio:.4} x \
             the upload ((k+m)/k = {PROFILE:.4}); Complete took {:.3} s",
            complete_took.as_secs_f64()
        );
        assert!(
            ratio <= 1.01 * PROFILE,
            "{written} bytes written at the nodes for {total}: {ratio:.3} x"
        );
        let got = s3
            .get_object()
            .bucket("land")
            .key("survey")
            .send()
            .await
            .unwrap();
        assert_eq!(got.content_length(), Some(total as i64));
        let mut body = got.body;
        let mut back = blake3::Hasher::new();
        while let Some(chunk) = body.try_next().await.unwrap() {
            back.update(&chunk);
        }
        assert_eq!(
            back.finalize(),
            hasher.finalize(),
            "the object read back differs"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upload_in_progress_survives_a_rebuilt_index_and_completes() {
    within(300, async {
        let mut cluster = started_cluster("").await;
        let s3 = cluster.s3_client(3);
        s3.create_bucket().bucket("land").send().await.unwrap();
        let mut rng = Rng::new(41);
        let up = s3
            .create_multipart_upload()
            .bucket("land")
            .key("deed")
            .content_type("application/pdf")
            .send()
            .await
            .unwrap();
        let id = up.upload_id().unwrap().to_owned();
        let first = rng.bytes(5 << 20);
        let second = rng.bytes(1000);
        let mut parts = Vec::new();
        for (n, data) in [(1, &first), (2, &second)] {
            let p = s3
                .upload_part()
                .bucket("land")
                .key("deed")
                .upload_id(&id)
                .part_number(n)
                .body(ByteStream::from(data.clone()))
                .send()
                .await
                .unwrap();
            parts.push(
                CompletedPart::builder()
                    .part_number(n)
                    .e_tag(p.e_tag().unwrap())
                    .build(),
            );
        }
        // An aborted upload does not come back.
        let gone = s3
            .create_multipart_upload()
            .bucket("land")
            .key("gone")
            .send()
            .await
            .unwrap();
        s3.abort_multipart_upload()
            .bucket("land")
            .key("gone")
            .upload_id(gone.upload_id().unwrap())
            .send()
            .await
            .unwrap();

        tokio::task::block_in_place(|| cluster.restart_gateway_without_index());
        let s3 = cluster.s3_client(3);
        let listed = s3
            .list_multipart_uploads()
            .bucket("land")
            .send()
            .await
            .unwrap();
        let ids: Vec<&str> = listed
            .uploads()
            .iter()
            .filter_map(|u| u.upload_id())
            .collect();
        assert_eq!(ids, [id.as_str()], "{listed:?}");
        let got = s3
            .list_parts()
            .bucket("land")
            .key("deed")
            .upload_id(&id)
            .send()
            .await
            .unwrap();
        let sizes: Vec<i64> = got.parts().iter().filter_map(|p| p.size()).collect();
        assert_eq!(sizes, [5 << 20, 1000]);
        s3.complete_multipart_upload()
            .bucket("land")
            .key("deed")
            .upload_id(&id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let got = s3
            .get_object()
            .bucket("land")
            .key("deed")
            .send()
            .await
            .unwrap();
        assert_eq!(got.content_type(), Some("application/pdf"));
        assert_eq!(
            got.body.collect().await.unwrap().into_bytes().to_vec(),
            [first, second].concat()
        );
        // Completed: not listed again after another rebuild.
        tokio::task::block_in_place(|| cluster.restart_gateway_without_index());
        let s3 = cluster.s3_client(3);
        let listed = s3
            .list_multipart_uploads()
            .bucket("land")
            .send()
            .await
            .unwrap();
        assert!(listed.uploads().is_empty(), "{listed:?}");
        assert_eq!(
            get(&s3, "land", "deed").await.len(),
            (5 << 20) + 1000,
            "the completed object reads after a rebuild"
        );
    })
    .await;
}
