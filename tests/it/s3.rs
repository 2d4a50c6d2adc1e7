//! The S3 gateway end to end: `exclave init`, five node processes and a gateway process on
//! loopback, driven by the AWS SDK for Rust (and a raw SigV4 signer for forgeries).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart, Delete,
    MetadataDirective, ObjectIdentifier,
};
use futures::StreamExt as _;

use crate::sigv4::{Signer, amz_date, send, sha256_hex};
use crate::support::{
    Cluster, Rng, all_reachable, code, exists, get, put, started_cluster, status, within,
};

const BUCKET: &str = "registry";

async fn started() -> (Cluster, Client) {
    let cluster = started_cluster("").await;
    let s3 = cluster.s3_client(1);
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    (cluster, s3)
}

async fn get_range(s3: &Client, key: &str, range: &str) -> Result<Vec<u8>, u16> {
    match s3
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .range(range)
        .send()
        .await
    {
        Ok(out) => Ok(out.body.collect().await.unwrap().into_bytes().to_vec()),
        Err(e) => Err(status(&e)),
    }
}

fn md5_hex(b: &[u8]) -> String {
    use md5::Digest as _;
    exclave::core::ids::hex(&md5::Md5::digest(b))
}

/// Every file under `dir` (recursively).
fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_objects_round_trip_by_sha256_with_ranges_and_multipart() {
    within(600, async {
        let (_cluster, s3) = started().await;
        let mut rng = Rng::new(4);
        let sizes = [
            0usize,
            1,
            1024,
            128 * 1024 - 1,
            128 * 1024 + 1,
            5 * 1024 * 1024 + 1,
            64 * 1024 * 1024,
        ];
        for size in sizes {
            let data = rng.bytes(size);
            let key = format!("sizes/{size}");
            let etag = put(&s3, BUCKET, &key, &data).await;
            assert_eq!(
                etag.trim_matches('"'),
                md5_hex(&data),
                "single-part ETag is the MD5"
            );
            let back = get(&s3, BUCKET, &key).await;
            assert_eq!(sha256_hex(&back), sha256_hex(&data), "{size} bytes");
            let head = s3
                .head_object()
                .bucket(BUCKET)
                .key(&key)
                .send()
                .await
                .unwrap();
            assert_eq!(head.content_length, Some(size as i64));
        }

        // Ranges over a 5 MiB + 1 object (stripes of 3 x 256 KiB - 16 bytes).
        let data = rng.bytes(5 * 1024 * 1024 + 1);
        put(&s3, BUCKET, "ranged", &data).await;
        let n = data.len();
        let stripe = 3 * 256 * 1024 - 16;
        assert_eq!(
            get_range(&s3, "ranged", "bytes=0-0").await.unwrap(),
            &data[..1]
        );
        assert_eq!(
            get_range(&s3, "ranged", &format!("bytes={}-{}", n - 1, n - 1))
                .await
                .unwrap(),
            &data[n - 1..]
        );
        assert_eq!(
            get_range(&s3, "ranged", "bytes=-100").await.unwrap(),
            &data[n - 100..]
        );
        assert_eq!(
            get_range(
                &s3,
                "ranged",
                &format!("bytes={}-{}", stripe - 10, stripe + 10)
            )
            .await
            .unwrap(),
            &data[stripe - 10..=stripe + 10]
        );
        assert_eq!(
            get_range(&s3, "ranged", &format!("bytes={n}-")).await,
            Err(416)
        );

        // Multipart: 3 x 5 MiB + 1 byte, ETag = MD5 of the part MD5s, "-3".
        let parts: Vec<Vec<u8>> = vec![
            rng.bytes(5 << 20),
            rng.bytes(5 << 20),
            rng.bytes(5 << 20),
            rng.bytes(1),
        ];
        let up = s3
            .create_multipart_upload()
            .bucket(BUCKET)
            .key("multi")
            .content_type("application/x-registry")
            .send()
            .await
            .unwrap();
        let id = up.upload_id.unwrap();
        let mut done = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            let r = s3
                .upload_part()
                .bucket(BUCKET)
                .key("multi")
                .upload_id(&id)
                .part_number(i as i32 + 1)
                .body(ByteStream::from(p.clone()))
                .send()
                .await
                .unwrap();
            done.push(
                CompletedPart::builder()
                    .part_number(i as i32 + 1)
                    .e_tag(r.e_tag.unwrap())
                    .build(),
            );
        }
        let listed = s3
            .list_parts()
            .bucket(BUCKET)
            .key("multi")
            .upload_id(&id)
            .send()
            .await
            .unwrap();
        assert_eq!(listed.parts().len(), 4);
        let uploads = s3
            .list_multipart_uploads()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap();
        assert_eq!(uploads.uploads().len(), 1);
        let completed = s3
            .complete_multipart_upload()
            .bucket(BUCKET)
            .key("multi")
            .upload_id(&id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(done))
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let mut md5s = Vec::new();
        for p in &parts {
            use md5::Digest as _;
            md5s.extend_from_slice(&md5::Md5::digest(p));
        }
        assert_eq!(
            completed.e_tag.unwrap().trim_matches('"'),
            format!("{}-4", md5_hex(&md5s))
        );
        let whole: Vec<u8> = parts.concat();
        assert_eq!(
            sha256_hex(&get(&s3, BUCKET, "multi").await),
            sha256_hex(&whole)
        );
        let head = s3
            .head_object()
            .bucket(BUCKET)
            .key("multi")
            .send()
            .await
            .unwrap();
        assert_eq!(head.content_type.as_deref(), Some("application/x-registry"));
        let uploads = s3
            .list_multipart_uploads()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap();
        assert!(uploads.uploads().is_empty());

        // An aborted upload leaves nothing; a too-small middle part is refused.
        let up = s3
            .create_multipart_upload()
            .bucket(BUCKET)
            .key("small-parts")
            .send()
            .await
            .unwrap();
        let id = up.upload_id.unwrap();
        let mut done = Vec::new();
        for i in 1..=2 {
            let r = s3
                .upload_part()
                .bucket(BUCKET)
                .key("small-parts")
                .upload_id(&id)
                .part_number(i)
                .body(ByteStream::from(vec![7u8; 1000]))
                .send()
                .await
                .unwrap();
            done.push(
                CompletedPart::builder()
                    .part_number(i)
                    .e_tag(r.e_tag.unwrap())
                    .build(),
            );
        }
        let err = s3
            .complete_multipart_upload()
            .bucket(BUCKET)
            .key("small-parts")
            .upload_id(&id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(done))
                    .build(),
            )
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&err), 400);
        s3.abort_multipart_upload()
            .bucket(BUCKET)
            .key("small-parts")
            .upload_id(&id)
            .send()
            .await
            .unwrap();
        assert!(!exists(&s3, BUCKET, "small-parts").await);

        // Checksums: SHA-256 computed by the SDK is checked and returned; a wrong CRC32 is
        // refused and stores nothing.
        let data = rng.bytes(300_000);
        s3.put_object()
            .bucket(BUCKET)
            .key("summed")
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
        let out = s3
            .get_object()
            .bucket(BUCKET)
            .key("summed")
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        assert!(out.checksum_sha256.is_some());
        assert_eq!(
            out.body.collect().await.unwrap().into_bytes().to_vec(),
            data
        );
        let err = s3
            .put_object()
            .bucket(BUCKET)
            .key("bad-sum")
            .checksum_crc32("AAAAAA==")
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&err), 400, "{err:?}");
        assert!(!exists(&s3, BUCKET, "bad-sum").await);
    })
    .await;
}

/// What ListObjectsV2 must return for `prefix`/`delimiter` over `model`.
fn expected(model: &BTreeSet<String>, prefix: &str, delimiter: Option<&str>) -> Vec<String> {
    let mut out = BTreeSet::new();
    for k in model.iter().filter(|k| k.starts_with(prefix)) {
        match delimiter.and_then(|d| k[prefix.len()..].find(d).map(|i| (i, d))) {
            Some((i, d)) => out.insert(format!("P:{}", &k[..prefix.len() + i + d.len()])),
            None => out.insert(format!("K:{k}")),
        };
    }
    out.into_iter().collect()
}

async fn list_all(s3: &Client, prefix: &str, delimiter: Option<&str>) -> Vec<String> {
    let mut got = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = s3
            .list_objects_v2()
            .bucket(BUCKET)
            .prefix(prefix)
            .set_delimiter(delimiter.map(str::to_owned))
            .max_keys(100)
            .set_continuation_token(token.clone())
            .send()
            .await
            .unwrap();
        assert!(out.key_count.unwrap_or(0) <= 100);
        for o in out.contents() {
            got.push(format!("K:{}", o.key().unwrap()));
        }
        for p in out.common_prefixes() {
            got.push(format!("P:{}", p.prefix().unwrap()));
        }
        if out.is_truncated == Some(true) {
            token = out.next_continuation_token;
            assert!(token.is_some());
        } else {
            break;
        }
    }
    got.sort();
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_listing_conditionals_copy_and_multi_delete() {
    within(600, async {
        let (_cluster, s3) = started().await;

        // 2,500 keys under a few prefixes.
        let mut model = BTreeSet::new();
        for i in 0..2500 {
            let key = match i % 5 {
                0 => format!("land/north/parcel-{i:05}"),
                1 => format!("land/south/parcel-{i:05}"),
                2 => format!("business/{:03}/firm-{i:05}", i % 37),
                3 => format!("people/p{i:05}"),
                _ => format!("top-{i:05}"),
            };
            model.insert(key);
        }
        let s3c = s3.clone();
        let results: Vec<()> = futures::stream::iter(model.clone())
            .map(|k| {
                let s3 = s3c.clone();
                async move {
                    put(&s3, BUCKET, &k, k.as_bytes()).await;
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        assert_eq!(results.len(), 2500);
        for (prefix, delim) in [
            ("", None),
            ("", Some("/")),
            ("land/", Some("/")),
            ("land/north/", None),
            ("business/", Some("/")),
            ("business/0", None),
            ("people/p0", Some("/")),
            ("nothing/", Some("/")),
        ] {
            assert_eq!(
                list_all(&s3, prefix, delim).await,
                expected(&model, prefix, delim),
                "prefix {prefix:?} delimiter {delim:?}"
            );
        }
        // V1 with a marker, and start-after.
        let v1 = s3
            .list_objects()
            .bucket(BUCKET)
            .prefix("people/")
            .marker("people/p00100")
            .max_keys(5)
            .send()
            .await
            .unwrap();
        let want: Vec<&String> = model
            .iter()
            .filter(|k| k.starts_with("people/") && k.as_str() > "people/p00100")
            .take(5)
            .collect();
        let got: Vec<String> = v1
            .contents()
            .iter()
            .map(|o| o.key().unwrap().to_owned())
            .collect();
        assert_eq!(got.iter().collect::<Vec<_>>(), want);
        assert_eq!(v1.is_truncated, Some(true));

        // Conditional writes and reads.
        let etag = put(&s3, BUCKET, "cond", b"first").await;
        let err = s3
            .put_object()
            .bucket(BUCKET)
            .key("cond")
            .if_none_match("*")
            .body(ByteStream::from_static(b"second"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&err), 412, "If-None-Match: * must not overwrite");
        assert_eq!(get(&s3, BUCKET, "cond").await, b"first");
        s3.put_object()
            .bucket(BUCKET)
            .key("cond-new")
            .if_none_match("*")
            .body(ByteStream::from_static(b"new"))
            .send()
            .await
            .unwrap();
        let r = s3
            .get_object()
            .bucket(BUCKET)
            .key("cond")
            .if_match("\"nope\"")
            .send()
            .await;
        assert_eq!(status(&r.unwrap_err()), 412);
        let r = s3
            .get_object()
            .bucket(BUCKET)
            .key("cond")
            .if_none_match(&etag)
            .send()
            .await;
        assert_eq!(status(&r.unwrap_err()), 304);
        let r = s3
            .get_object()
            .bucket(BUCKET)
            .key("cond")
            .if_match(&etag)
            .send()
            .await;
        assert!(r.is_ok());
        let future = aws_sdk_s3::primitives::DateTime::from_secs(
            (std::time::SystemTime::now() + Duration::from_secs(3600))
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64,
        );
        let past = aws_sdk_s3::primitives::DateTime::from_secs(946_684_800);
        let r = s3
            .get_object()
            .bucket(BUCKET)
            .key("cond")
            .if_modified_since(future)
            .send()
            .await;
        assert_eq!(status(&r.unwrap_err()), 304);
        let r = s3
            .get_object()
            .bucket(BUCKET)
            .key("cond")
            .if_unmodified_since(past)
            .send()
            .await;
        assert_eq!(status(&r.unwrap_err()), 412);

        // Copy, keeping and replacing metadata.
        s3.put_object()
            .bucket(BUCKET)
            .key("deed")
            .content_type("text/plain")
            .metadata("registrar", "north")
            .body(ByteStream::from_static(b"title deed 42"))
            .send()
            .await
            .unwrap();
        s3.copy_object()
            .bucket(BUCKET)
            .key("deed-copy")
            .copy_source(format!("{BUCKET}/deed"))
            .send()
            .await
            .unwrap();
        let h = s3
            .head_object()
            .bucket(BUCKET)
            .key("deed-copy")
            .send()
            .await
            .unwrap();
        assert_eq!(h.content_type.as_deref(), Some("text/plain"));
        assert_eq!(
            h.metadata.unwrap().get("registrar").map(String::as_str),
            Some("north")
        );
        assert_eq!(get(&s3, BUCKET, "deed-copy").await, b"title deed 42");
        s3.copy_object()
            .bucket(BUCKET)
            .key("deed")
            .copy_source(format!("{BUCKET}/deed"))
            .metadata_directive(MetadataDirective::Replace)
            .metadata("registrar", "south")
            .content_type("text/x-deed")
            .send()
            .await
            .unwrap();
        let h = s3
            .head_object()
            .bucket(BUCKET)
            .key("deed")
            .send()
            .await
            .unwrap();
        assert_eq!(h.content_type.as_deref(), Some("text/x-deed"));
        assert_eq!(
            h.metadata.unwrap().get("registrar").map(String::as_str),
            Some("south")
        );
        let err = s3
            .copy_object()
            .bucket(BUCKET)
            .key("deed")
            .copy_source(format!("{BUCKET}/deed"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&err), 400, "copy onto itself without REPLACE");

        // Multi-delete, quiet and not.
        let ids: Vec<ObjectIdentifier> = ["deed", "deed-copy", "never-was"]
            .iter()
            .map(|k| ObjectIdentifier::builder().key(*k).build().unwrap())
            .collect();
        let out = s3
            .delete_objects()
            .bucket(BUCKET)
            .delete(Delete::builder().set_objects(Some(ids)).build().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(out.deleted().len(), 3);
        assert!(out.errors().is_empty());
        assert!(!exists(&s3, BUCKET, "deed").await && !exists(&s3, BUCKET, "deed-copy").await);
        let doomed: Vec<ObjectIdentifier> = model
            .iter()
            .filter(|k| k.starts_with("people/"))
            .map(|k| ObjectIdentifier::builder().key(k).build().unwrap())
            .collect();
        assert_eq!(doomed.len(), 500);
        let out = s3
            .delete_objects()
            .bucket(BUCKET)
            .delete(
                Delete::builder()
                    .set_objects(Some(doomed))
                    .quiet(true)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert!(out.deleted().is_empty() && out.errors().is_empty());
        model.retain(|k| !k.starts_with("people/"));
        model.insert("cond".into());
        model.insert("cond-new".into());
        assert_eq!(list_all(&s3, "people/", None).await, Vec::<String>::new());
        assert_eq!(
            list_all(&s3, "", Some("/")).await,
            expected(&model, "", Some("/"))
        );

        // A bucket with objects is not deleted; an empty one is.
        let err = s3.delete_bucket().bucket(BUCKET).send().await.unwrap_err();
        assert_eq!(status(&err), 409);
        s3.create_bucket().bucket("scratch").send().await.unwrap();
        s3.delete_bucket().bucket("scratch").send().await.unwrap();
        let names: Vec<String> = s3
            .list_buckets()
            .send()
            .await
            .unwrap()
            .buckets()
            .iter()
            .map(|b| b.name().unwrap().to_owned())
            .collect();
        assert_eq!(names, vec![BUCKET.to_owned()]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_survives_two_killed_sites_and_refuses_writes_below_quorum() {
    within(600, async {
        let (mut cluster, s3) = started().await;
        let mut rng = Rng::new(9);
        let mut model = BTreeMap::new();
        for (i, size) in [0usize, 1, 4096, 200_000, 3 << 20].iter().enumerate() {
            let data = rng.bytes(*size);
            put(&s3, BUCKET, &format!("k{i}"), &data).await;
            model.insert(format!("k{i}"), data);
        }
        cluster.kill_node(4);
        let data = rng.bytes(1 << 20);
        put(&s3, BUCKET, "after-one-kill", &data).await;
        model.insert("after-one-kill".into(), data);
        let log = std::fs::read_to_string(cluster.root().join("gateway/exclaved.log")).unwrap();
        assert!(
            log.contains("recorded for repair"),
            "a write acked without a site's shard must be recorded for repair"
        );
        cluster.kill_node(2);
        for (k, v) in &model {
            assert_eq!(sha256_hex(&get(&s3, BUCKET, k).await), sha256_hex(v), "{k}");
        }
        let err = s3
            .put_object()
            .bucket(BUCKET)
            .key("below-quorum")
            .body(ByteStream::from(rng.bytes(100_000)))
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&err), 503, "{err:?}");
        let r = s3
            .get_object()
            .bucket(BUCKET)
            .key("below-quorum")
            .send()
            .await;
        assert_eq!(
            status(&r.unwrap_err()),
            404,
            "nothing half-written is visible"
        );
        // The same for an object too large to ride inline.
        let err = s3
            .put_object()
            .bucket(BUCKET)
            .key("below-quorum-large")
            .body(ByteStream::from(rng.bytes(2 << 20)))
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&err), 503, "{err:?}");
        let r = s3
            .get_object()
            .bucket(BUCKET)
            .key("below-quorum-large")
            .send()
            .await;
        assert_eq!(status(&r.unwrap_err()), 404);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_names_and_bytes_never_reach_the_sites_and_forgeries_store_nothing() {
    within(600, async {
        let (cluster, s3) = started().await;

        // Canary: the marker in keys, metadata and bodies; no byte of it at any site.
        let marker = "XQZCANARY7";
        for i in 0..20 {
            let body = format!("{marker} land parcel {i} ").repeat(1 + i * 500);
            s3.put_object()
                .bucket(BUCKET)
                .key(format!("{marker}/parcel-{i}"))
                .metadata("owner", marker)
                .body(ByteStream::from(body.into_bytes()))
                .send()
                .await
                .unwrap();
        }
        let mut scanned = 0u64;
        for f in files(&cluster.root().join("sites")) {
            let bytes = std::fs::read(&f).unwrap();
            scanned += bytes.len() as u64;
            for needle in [marker.as_bytes(), b"parcel-1", BUCKET.as_bytes()] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle),
                    "{} holds {:?}",
                    f.display(),
                    String::from_utf8_lossy(needle)
                );
            }
        }
        assert!(scanned > 100_000, "scanned only {scanned} bytes");

        // Forgeries, through a raw signer.
        let (access, secret) = cluster.credentials();
        let addr = cluster.s3_addr();
        let host = addr.to_string();
        let good = Signer::new(access.clone(), secret.clone());
        let body = b"a registry entry".to_vec();
        let path = |k: &str| format!("/{BUCKET}/{k}");
        let signed_put = |signer: &Signer, key: &str, payload_hash: &str, date: &str| {
            signer.sign(&host, "PUT", &path(key), &[], &[], payload_hash, date)
        };
        // The signer is right: a good request is stored.
        let s = signed_put(&good, "raw-good", &sha256_hex(&body), &amz_date(0));
        let (code, text) = send(addr, "PUT", &path("raw-good"), &s.headers, &body);
        assert_eq!(code, 200, "{text}");
        assert!(exists(&s3, BUCKET, "raw-good").await);

        let forged = Signer::new(access.clone(), "not-the-secret");
        let s = signed_put(&forged, "forged", &sha256_hex(&body), &amz_date(0));
        let (code, _) = send(addr, "PUT", &path("forged"), &s.headers, &body);
        assert_eq!(code, 403);
        let stranger = Signer::new("AKIASTRANGER000000000", secret.clone());
        let s = signed_put(&stranger, "stranger", &sha256_hex(&body), &amz_date(0));
        let (code, _) = send(addr, "PUT", &path("stranger"), &s.headers, &body);
        assert_eq!(code, 403);
        // Signed for one body, sent another of the same length.
        let other = b"a registry entrX".to_vec();
        let s = signed_put(&good, "swapped", &sha256_hex(&body), &amz_date(0));
        let (code, _) = send(addr, "PUT", &path("swapped"), &s.headers, &other);
        assert!(code == 400 || code == 403, "{code}");
        // Too far from the server's clock.
        let s = signed_put(&good, "skewed", &sha256_hex(&body), &amz_date(-3600));
        let (code, _) = send(addr, "PUT", &path("skewed"), &s.headers, &body);
        assert_eq!(code, 403);
        // Unsigned.
        let (code, _) = send(
            addr,
            "PUT",
            &path("anonymous"),
            &[("host".into(), host.clone())],
            &body,
        );
        assert_eq!(code, 403);

        // Presigned URLs: good, expired, and beyond 7 days.
        let url = good.presign(&host, "GET", &path("raw-good"), 600, &amz_date(0));
        let (code, text) = send(addr, "GET", &url, &[("host".into(), host.clone())], b"");
        assert_eq!(code, 200, "{text}");
        assert!(text.ends_with("a registry entry"));
        let url = good.presign(&host, "GET", &path("raw-good"), 60, &amz_date(-7200));
        let (code, _) = send(addr, "GET", &url, &[("host".into(), host.clone())], b"");
        assert_eq!(code, 403, "expired presigned URL");
        let url = good.presign(&host, "GET", &path("raw-good"), 8 * 24 * 3600, &amz_date(0));
        let (code, _) = send(addr, "GET", &url, &[("host".into(), host.clone())], b"");
        assert!(code == 400 || code == 403, "{code}");

        // Streaming signed chunks: a good upload, then one with a chunk changed after signing.
        let chunks: [&[u8]; 2] = [&[1u8; 70_000], &[2u8; 500]];
        let decoded: usize = chunks.iter().map(|c| c.len()).sum();
        let dl = decoded.to_string();
        let extra = [
            ("content-encoding", "aws-chunked"),
            ("x-amz-decoded-content-length", dl.as_str()),
        ];
        let seed = good.sign(
            &host,
            "PUT",
            &path("chunked"),
            &[],
            &extra,
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            &amz_date(0),
        );
        let wire = good.chunked(&seed, &chunks);
        let (code, text) = send(addr, "PUT", &path("chunked"), &seed.headers, &wire);
        assert_eq!(code, 200, "{text}");
        assert_eq!(get(&s3, BUCKET, "chunked").await, chunks.concat());
        let seed = good.sign(
            &host,
            "PUT",
            &path("tampered"),
            &[],
            &extra,
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            &amz_date(0),
        );
        let mut wire = good.chunked(&seed, &chunks);
        let at = wire.len() / 2;
        wire[at] ^= 0x01;
        let (code, _) = send(addr, "PUT", &path("tampered"), &seed.headers, &wire);
        assert!(code == 400 || code == 403, "{code}");

        // Limits: a key over 1,024 bytes, a request head over 64 KiB.
        let long_key = "k".repeat(1025);
        let err = s3
            .put_object()
            .bucket(BUCKET)
            .key(&long_key)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&err), 400, "{err:?}");
        let err = s3
            .put_object()
            .bucket(BUCKET)
            .key("fat-metadata")
            .metadata("note", "m".repeat(3000))
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&err), 400, "user metadata over 2 KiB: {err:?}");
        assert!(!exists(&s3, BUCKET, "fat-metadata").await);
        let big = "v".repeat(100 * 1024);
        let s = good.sign(
            &host,
            "PUT",
            &path("big-head"),
            &[],
            &[("x-amz-meta-big", big.as_str())],
            &sha256_hex(&body),
            &amz_date(0),
        );
        let (code, _) = send(addr, "PUT", &path("big-head"), &s.headers, &body);
        assert!(code == 431 || code == 400 || code == 0, "{code}");

        for k in [
            "forged",
            "stranger",
            "swapped",
            "skewed",
            "anonymous",
            "tampered",
            "big-head",
        ] {
            assert!(!exists(&s3, BUCKET, k).await, "{k} was stored");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_index_is_rebuilt_from_the_nodes_when_lost() {
    within(300, async {
        let (mut cluster, s3) = started().await;
        s3.create_bucket().bucket("empty-one").send().await.unwrap();
        s3.create_bucket().bucket("gone").send().await.unwrap();
        s3.delete_bucket().bucket("gone").send().await.unwrap();
        let mut keys = BTreeSet::new();
        for i in 0..40 {
            let k = format!("land/{:02}/deed", i % 7);
            put(
                &s3,
                BUCKET,
                &format!("{k}-{i}"),
                format!("deed {i}").as_bytes(),
            )
            .await;
            keys.insert(format!("K:{k}-{i}"));
        }
        put(&s3, BUCKET, "overwritten", b"old").await;
        put(&s3, BUCKET, "overwritten", b"new").await;
        put(&s3, BUCKET, "deleted", b"x").await;
        s3.delete_object()
            .bucket(BUCKET)
            .key("deleted")
            .send()
            .await
            .unwrap();
        keys.insert("K:overwritten".into());

        cluster.kill_gateway();
        let state = cluster.root().join("gateway/state");
        std::fs::remove_file(state.join("index.redb")).unwrap();
        let _cluster = tokio::task::spawn_blocking(move || {
            cluster.start_gateway();
            cluster
        })
        .await
        .unwrap();

        assert_eq!(
            list_all(&s3, "", None).await,
            keys.into_iter().collect::<Vec<_>>()
        );
        assert_eq!(get(&s3, BUCKET, "overwritten").await, b"new");
        assert!(!exists(&s3, BUCKET, "deleted").await);
        let mut names: Vec<String> = s3
            .list_buckets()
            .send()
            .await
            .unwrap()
            .buckets()
            .iter()
            .map(|b| b.name().unwrap().to_owned())
            .collect();
        names.sort();
        assert_eq!(names, vec!["empty-one".to_owned(), BUCKET.to_owned()]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_that_missed_a_site_are_repaired_when_it_returns() {
    within(300, async {
        let mut cluster = started_cluster("repair_interval_secs = 1").await;
        let s3 = cluster.s3_client(1);
        s3.create_bucket().bucket(BUCKET).send().await.unwrap();
        cluster.kill_node(4);
        let mut rng = Rng::new(31);
        let mut model = BTreeMap::new();
        for (i, size) in [1usize, 5000, 100_000, 3 << 20].iter().enumerate() {
            let data = rng.bytes(*size);
            put(&s3, BUCKET, &format!("while-down-{i}"), &data).await;
            model.insert(format!("while-down-{i}"), data);
        }
        cluster.start_node(4);
        let log = cluster.root().join("gateway/exclaved.log");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.matches("\"message\":\"repaired\"").count() >= model.len() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "not repaired in time:\n{}",
                text.lines().rev().take(20).collect::<Vec<_>>().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Without the rebuilt shards at site 5, two more sites down would leave only two.
        cluster.kill_node(2);
        cluster.kill_node(3);
        for (k, v) in &model {
            let out = s3.get_object().bucket(BUCKET).key(k).send().await;
            let body = match out {
                Ok(o) => o.body.collect().await.map(|b| b.into_bytes().to_vec()),
                Err(e) => panic!("get {k}: {e:?}"),
            };
            let Ok(body) = body else {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                panic!(
                    "get {k} failed mid-body; gateway log:\n{}",
                    text.lines().rev().take(30).collect::<Vec<_>>().join("\n")
                );
            };
            assert_eq!(sha256_hex(&body), sha256_hex(v), "{k}");
        }
    })
    .await;
}

/// A failed write stranded at a node: the node stored the small object's manifest (with its
/// one shard), then died before the gateway could withdraw it. When it returns, the record
/// must not hide the acknowledged version, and the gateway finishes the withdrawal, even
/// across its own restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_write_stranded_at_a_killed_node_never_hides_the_acknowledged_version() {
    within(300, async {
        let mut cluster = started_cluster("repair_interval_secs = 1").await;
        let s3 = cluster.s3_client(1);
        s3.create_bucket().bucket(BUCKET).send().await.unwrap();
        let mut rng = Rng::new(77);
        let v1 = rng.bytes(1000);
        put(&s3, BUCKET, "parcel", &v1).await;
        // Site 1's manifest records, from its admin API while it runs.
        let held_at_1 = |c: &Cluster| {
            let (code, body) = tokio::task::block_in_place(|| {
                crate::ops::admin_get(c.node_addr(1), "/v1/status", &c.node_admin_token(1))
            });
            assert_eq!(code, 200, "{body}");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            v["manifests"].as_u64().unwrap()
        };
        let before = held_at_1(&cluster);

        // Sites 2 and 3 down, site 4 silent: the next write reaches sites 0 and 1 only.
        cluster.kill_node(2);
        cluster.kill_node(3);
        cluster.signal_node(4, "STOP");
        let write = {
            let (s3, v2) = (s3.clone(), rng.bytes(1000));
            tokio::spawn(async move {
                s3.put_object()
                    .bucket(BUCKET)
                    .key("parcel")
                    .body(ByteStream::from(v2))
                    .send()
                    .await
            })
        };
        // Site 1 stores it and dies before it can be told to withdraw it (the write waits
        // for site 4 until its deadline, far longer than this).
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while held_at_1(&cluster) == before {
            assert!(
                std::time::Instant::now() < deadline,
                "site 1 never stored the write"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        cluster.kill_node(1);
        let err = write.await.unwrap().unwrap_err();
        assert_eq!(status(&err), 503, "{err:?}");
        cluster.kill_node(4);
        let records = |c: &Cluster, i| c.site_store(i).list_manifests(None, 10_000).unwrap().len();
        assert_eq!(
            records(&cluster, 1),
            records(&cluster, 2) + 1,
            "site 1 holds the failed write's record"
        );
        // A copy of site 1 as it is now, to roll it back to later.
        let site_1 = cluster.root().join("sites").join(&cluster.sites[1]);
        let old_site_1 = cluster.dir.path().join("site-1-before-the-withdrawal");
        crate::support::copy_dir(&site_1, &old_site_1);

        // The gateway restarts (it must remember what is left to withdraw), then every site.
        cluster.kill_gateway();
        cluster.start_gateway();
        for i in 1..5 {
            cluster.start_node(i);
        }
        // Read once the gateway reaches every site again: a node still starting would leave
        // the manifest short of its read quorum (503), which is not what is tested here.
        cluster
            .wait_for_status(Duration::from_secs(60), "sites back", all_reachable)
            .await;
        let reader = cluster.s3_client(5);
        for _ in 0..20 {
            assert_eq!(
                get(&reader, BUCKET, "parcel").await,
                v1,
                "the acknowledged version"
            );
        }
        cluster.heal_and_status();
        cluster
            .wait_for_status(Duration::from_secs(60), "withdrawals pending", |v| {
                v["withdrawals_pending"] == 0
            })
            .await;
        // Withdrawn at site 1 itself: read with sites 0 and 2 down, through a gateway that
        // remembers nothing of it.
        cluster.restart_gateway_without_index();
        cluster.kill_node(0);
        cluster.kill_node(2);
        for _ in 0..10 {
            assert_eq!(get(&reader, BUCKET, "parcel").await, v1);
        }

        // Site 1 rolled back to its copy from before the withdrawal: it holds the failed write
        // again, and nothing at the gateway remembers it. An index rebuilt from the nodes
        // skips it by the withdrawals the other sites keep (with the gateway's proofs), reads
        // serve the acknowledged version, and site 1 is told to withdraw it again.
        cluster.kill_node(1);
        std::fs::remove_dir_all(&site_1).unwrap();
        crate::support::copy_dir(&old_site_1, &site_1);
        assert_eq!(
            records(&cluster, 1),
            records(&cluster, 2) + 1,
            "site 1 holds the failed write again"
        );
        cluster.kill_gateway();
        std::fs::remove_file(cluster.root().join("gateway/state/index.redb")).unwrap();
        for i in [0, 1, 2] {
            cluster.start_node(i);
        }
        // Every site serves before the gateway rebuilds its index from them.
        for i in 0..5 {
            cluster.wait_node_serving(i).await;
        }
        cluster.start_gateway();
        for _ in 0..10 {
            assert_eq!(
                get(&reader, BUCKET, "parcel").await,
                v1,
                "after site 1 was rolled back"
            );
        }
        cluster
            .wait_for_status(Duration::from_secs(60), "withdrawn again at site 1", |v| {
                v["withdrawals_pending"] == 0
            })
            .await;
        cluster.kill_node(1);
        cluster.kill_node(2);
        assert_eq!(
            records(&cluster, 1),
            records(&cluster, 2),
            "site 1 no longer serves the failed write"
        );
    })
    .await;
}

/// A host that claims every record it holds was withdrawn (it writes withdrawal entries with
/// proofs it cannot make) hides nothing: an index rebuilt from the nodes refuses the entries
/// whose proofs do not hold, and every acknowledged object still reads back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_withdrawal_without_a_valid_proof_hides_no_version() {
    within(300, async {
        let mut cluster = started_cluster("").await;
        let s3 = cluster.s3_client(3);
        s3.create_bucket().bucket(BUCKET).send().await.unwrap();
        let mut rng = Rng::new(78);
        let small = rng.bytes(1000);
        let large = rng.bytes(3 << 20);
        put(&s3, BUCKET, "deed-small", &small).await;
        put(&s3, BUCKET, "deed-large", &large).await;

        // The hosts of four sites forge a withdrawal of every record they hold.
        cluster.kill_gateway();
        let mut forged = 0;
        for i in 1..5 {
            cluster.kill_node(i);
            use redb::{ReadableDatabase as _, ReadableTable as _};
            let (db, manifests) = cluster.node_db(i, "manifests");
            let keys: Vec<Vec<u8>> = {
                let txn = db.begin_read().unwrap();
                let t = txn.open_table(manifests).unwrap();
                t.iter()
                    .unwrap()
                    .map(|e| e.unwrap().0.value().to_vec())
                    .collect()
            };
            let proofs: redb::TableDefinition<'static, &[u8], &[u8]> =
                redb::TableDefinition::new("withdrawal_proofs");
            let txn = db.begin_write().unwrap();
            {
                let mut t = txn.open_table(proofs).unwrap();
                for k in &keys {
                    t.insert(&k[..], &[0x5a; 32][..]).unwrap();
                    forged += 1;
                }
            }
            txn.commit().unwrap();
            drop(db);
            cluster.start_node(i);
        }
        assert!(forged >= 8, "{forged} forged");
        for i in 0..5 {
            cluster.wait_node_serving(i).await;
        }
        std::fs::remove_file(cluster.root().join("gateway/state/index.redb")).unwrap();
        cluster.start_gateway();
        assert_eq!(get(&s3, BUCKET, "deed-small").await, small);
        assert_eq!(get(&s3, BUCKET, "deed-large").await, large);
        let log = std::fs::read_to_string(cluster.root().join("gateway/exclaved.log")).unwrap();
        assert!(
            log.contains("withdrawals whose proof does not hold"),
            "the refused withdrawals are not logged"
        );
    })
    .await;
}

/// What exclave does not do is refused, never answered 200 and ignored: SSE-C and SSE-KMS,
/// tags, ACLs that grant anyone but the owner, a PUT under COMPLIANCE retention or a legal
/// hold into a bucket without object lock (object lock itself is done: `versioning.rs`), and
/// the rest (issue 16, finding 2). Nothing is created or stored by a refused request; what
/// exclave honours (a private ACL, SSE-S3) is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_whose_meaning_is_not_honoured_are_refused_and_change_nothing() {
    use aws_sdk_s3::types::{
        ObjectCannedAcl, ObjectLockLegalHoldStatus, ObjectLockMode, ServerSideEncryption,
    };
    within(300, async {
        let (_cluster, s3) = started().await;
        let not_implemented = (501, "NotImplemented".to_owned());

        let no_lock = (400, "InvalidRequest".to_owned());
        let body = || ByteStream::from(b"deed 1/2026".to_vec());
        let until = aws_sdk_s3::primitives::DateTime::from_secs(1_900_000_000);
        let lock_refused: Vec<(&str, _)> = vec![
            (
                "compliance retention",
                s3.put_object()
                    .bucket(BUCKET)
                    .key("k")
                    .body(body())
                    .object_lock_mode(ObjectLockMode::Compliance)
                    .object_lock_retain_until_date(until)
                    .send()
                    .await,
            ),
            (
                "legal hold",
                s3.put_object()
                    .bucket(BUCKET)
                    .key("k")
                    .body(body())
                    .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
                    .send()
                    .await,
            ),
        ];
        for (what, r) in lock_refused {
            let e = r.expect_err(what);
            assert_eq!(code(&e), no_lock, "{what}: {e:?}");
        }
        let refused: Vec<(&str, _)> = vec![(
            "SSE-KMS",
            s3.put_object()
                .bucket(BUCKET)
                .key("k")
                .body(body())
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id("arn:aws:kms:us-east-1:111122223333:key/registry")
                .send()
                .await,
        )];
        for (what, r) in refused {
            let e = r.expect_err(what);
            assert_eq!(code(&e), not_implemented, "{what}: {e:?}");
        }
        let acl_refused = (400, "AccessControlListNotSupported".to_owned());
        let e = s3
            .put_object()
            .bucket(BUCKET)
            .key("k")
            .body(body())
            .acl(ObjectCannedAcl::PublicRead)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), acl_refused, "{e:?}");
        let e = s3
            .put_object()
            .bucket(BUCKET)
            .key("k")
            .body(body())
            .grant_read("id=someone-else")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), acl_refused, "{e:?}");
        let e = s3
            .create_multipart_upload()
            .bucket(BUCKET)
            .key("k")
            .object_lock_mode(ObjectLockMode::Governance)
            .object_lock_retain_until_date(until)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), no_lock, "{e:?}");
        assert!(
            !exists(&s3, BUCKET, "k").await,
            "a refused request stored the object"
        );

        // What is honoured is accepted: the owner's own ACL, and SSE-S3 (always done).
        s3.put_object()
            .bucket(BUCKET)
            .key("k")
            .body(body())
            .acl(ObjectCannedAcl::Private)
            .server_side_encryption(ServerSideEncryption::Aes256)
            .send()
            .await
            .unwrap();
        assert_eq!(get(&s3, BUCKET, "k").await, b"deed 1/2026");
    })
    .await;
}

/// A node SIGKILLed and started again on its port: the gateway's old connection to it gets a
/// stateless reset the new process can issue (its reset and connection-id keys are derived
/// from its identity, not drawn anew), so S3 traffic goes on at once instead of stalling on
/// that connection until its idle timeout (10 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_restarted_on_its_port_does_not_stall_the_gateway() {
    within(300, async {
        let (mut cluster, s3) = started().await;
        let mut rng = Rng::new(5);
        let data = rng.bytes(1 << 20);
        put(&s3, BUCKET, "warm", &data).await;
        cluster.kill_node(2);
        cluster.start_node(2);
        cluster.wait_node_serving(2).await;
        // The idle timeout is 10 s: a stall on the old connection shows as one PUT or GET
        // taking 9 s or more; each takes well under a second here, a few on a loaded machine.
        for i in 0..3 {
            let t = std::time::Instant::now();
            put(&s3, BUCKET, &format!("after-restart-{i}"), &data).await;
            let put_took = t.elapsed();
            let t = std::time::Instant::now();
            assert_eq!(get(&s3, BUCKET, &format!("after-restart-{i}")).await, data);
            let get_took = t.elapsed();
            assert!(
                put_took.max(get_took) < Duration::from_secs(8),
                "PUT {put_took:?}, GET {get_took:?}: stalled"
            );
        }
    })
    .await;
}

/// Issue 14: a bad request body gets the S3 error of its kind, decided by the type of the
/// failure (not by words in a message): a body that does not match its signed SHA-256, a
/// chunk whose signature does not verify, an aws-chunked body cut short. Nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_kind_of_bad_body_gets_its_own_s3_error() {
    within(180, async {
        let (cluster, s3) = started().await;
        let (access, secret) = cluster.credentials();
        let addr = cluster.s3_addr();
        let host = addr.to_string();
        let good = Signer::new(access, secret);
        let path = |k: &str| format!("/{BUCKET}/{k}");
        let code_of = |text: &str| {
            text.split("<Code>")
                .nth(1)
                .and_then(|r| r.split("</Code>").next())
                .unwrap_or("")
                .to_owned()
        };

        // Signed for one body (large enough to be streamed, not read whole), sent another.
        let body = vec![5u8; 300_000];
        let mut other = body.clone();
        other[150_000] ^= 1;
        let s = good.sign(
            &host,
            "PUT",
            &path("swapped"),
            &[],
            &[],
            &sha256_hex(&body),
            &amz_date(0),
        );
        let (code, text) = send(addr, "PUT", &path("swapped"), &s.headers, &other);
        assert_eq!(
            (code, code_of(&text).as_str()),
            (400, "XAmzContentSHA256Mismatch"),
            "{text}"
        );

        let chunks: [&[u8]; 2] = [&[1u8; 70_000], &[2u8; 500]];
        let dl = chunks.iter().map(|c| c.len()).sum::<usize>().to_string();
        let extra = [
            ("content-encoding", "aws-chunked"),
            ("x-amz-decoded-content-length", dl.as_str()),
        ];
        let streamed = |key: &str| {
            good.sign(
                &host,
                "PUT",
                &path(key),
                &[],
                &extra,
                "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
                &amz_date(0),
            )
        };
        // A byte of the first chunk changed after signing.
        let seed = streamed("tampered");
        let mut wire = good.chunked(&seed, &chunks);
        let at = wire.len() / 2;
        wire[at] ^= 0x01;
        let (code, text) = send(addr, "PUT", &path("tampered"), &seed.headers, &wire);
        assert_eq!(
            (code, code_of(&text).as_str()),
            (403, "SignatureDoesNotMatch"),
            "{text}"
        );
        // The framing broken: a chunk-size line that is not hex.
        let seed = streamed("garbled");
        let mut wire = good.chunked(&seed, &chunks);
        wire[0] = b'z';
        let (code, text) = send(addr, "PUT", &path("garbled"), &seed.headers, &wire);
        assert_eq!(
            (code, code_of(&text).as_str()),
            (400, "IncompleteBody"),
            "{text}"
        );

        for k in ["swapped", "tampered", "garbled"] {
            assert!(!exists(&s3, BUCKET, k).await, "{k} was stored");
        }
    })
    .await;
}
