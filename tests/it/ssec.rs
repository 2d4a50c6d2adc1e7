//! Issue 18, item 5: SSE-C for real. An object written with a key of the client's opens only
//! with that key (none: 400, another: 403), its ETag is not its plaintext's MD5, the key is in
//! no log; copies and multipart uploads follow AWS's rules (the source's key for a copy's
//! source, every part with the upload's key); recovery lists such objects as needing their
//! customer key.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use base64_simd::STANDARD as B64;
use md5::Digest as _;

use crate::support::*;

/// A customer key: (raw, base64 key, base64 MD5 of the key).
fn customer_key(seed: u8) -> ([u8; 32], String, String) {
    let mut raw = [0u8; 32];
    for (i, b) in raw.iter_mut().enumerate() {
        *b = seed.wrapping_mul(31).wrapping_add(i as u8);
    }
    (
        raw,
        B64.encode_to_string(raw),
        B64.encode_to_string(md5::Md5::digest(raw)),
    )
}

macro_rules! with_key {
    ($req:expr, $k:expr) => {
        $req.sse_customer_algorithm("AES256")
            .sse_customer_key(&$k.1)
            .sse_customer_key_md5(&$k.2)
    };
}

macro_rules! with_source_key {
    ($req:expr, $k:expr) => {
        $req.copy_source_sse_customer_algorithm("AES256")
            .copy_source_sse_customer_key(&$k.1)
            .copy_source_sse_customer_key_md5(&$k.2)
    };
}

async fn read(
    s3: &aws_sdk_s3::Client,
    key: &str,
    k: Option<&([u8; 32], String, String)>,
) -> Result<Vec<u8>, (u16, String)> {
    let mut req = s3.get_object().bucket("vault").key(key);
    if let Some(k) = k {
        req = with_key!(req, k);
    }
    match req.send().await {
        Ok(out) => Ok(out.body.collect().await.unwrap().to_vec()),
        Err(e) => Err(code(&e)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_object_under_a_customer_key_opens_only_with_it_and_never_leaves_the_key_behind() {
    within(900, async {
        let mut cluster = started_cluster("").await;
        let s3 = cluster.s3_client(1);
        s3.create_bucket().bucket("vault").send().await.unwrap();
        let k1 = customer_key(1);
        let k2 = customer_key(2);
        let deed = b"parcel 7/12, owner: the registry".to_vec();

        let stored = with_key!(s3.put_object().bucket("vault").key("deed"), k1)
            .body(ByteStream::from(deed.clone()))
            .send()
            .await
            .unwrap();
        assert_eq!(stored.sse_customer_algorithm(), Some("AES256"));
        assert_eq!(stored.sse_customer_key_md5(), Some(k1.2.as_str()));
        assert_eq!(stored.server_side_encryption(), None);
        let md5 = format!("\"{}\"", hex(&md5::Md5::digest(&deed)));
        assert_ne!(
            stored.e_tag(),
            Some(md5.as_str()),
            "the ETag is not the MD5"
        );

        // Only its key opens it.
        assert_eq!(read(&s3, "deed", Some(&k1)).await.unwrap(), deed);
        assert_eq!(read(&s3, "deed", None).await.unwrap_err().0, 400);
        assert_eq!(
            read(&s3, "deed", Some(&k2)).await.unwrap_err(),
            (403, "AccessDenied".into())
        );
        let head = with_key!(s3.head_object().bucket("vault").key("deed"), k1)
            .send()
            .await
            .unwrap();
        assert_eq!(head.sse_customer_key_md5(), Some(k1.2.as_str()));
        assert_eq!(head.content_length(), Some(deed.len() as i64));
        let e = s3
            .head_object()
            .bucket("vault")
            .key("deed")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e).0, 400);
        let part = with_key!(
            s3.get_object()
                .bucket("vault")
                .key("deed")
                .range("bytes=7-10"),
            k1
        )
        .send()
        .await
        .unwrap();
        assert_eq!(part.body.collect().await.unwrap().to_vec(), b"7/12");

        // What AWS refuses: a wrong MD5, another algorithm; a key for an object without one.
        let e = s3
            .put_object()
            .bucket("vault")
            .key("bad")
            .sse_customer_algorithm("AES256")
            .sse_customer_key(&k1.1)
            .sse_customer_key_md5(&k2.2)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), (400, "InvalidArgument".into()));
        let e = s3
            .put_object()
            .bucket("vault")
            .key("bad")
            .sse_customer_algorithm("AES128")
            .sse_customer_key(&k1.1)
            .sse_customer_key_md5(&k1.2)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e).0, 400);
        assert!(!exists(&s3, "vault", "bad").await);
        put(&s3, "vault", "plain", b"open record").await;
        assert_eq!(read(&s3, "plain", Some(&k1)).await.unwrap_err().0, 400);

        // Copies: the source opens with its key; the copy is under the key it names, or none.
        let e = s3
            .copy_object()
            .bucket("vault")
            .key("copy")
            .copy_source("vault/deed")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e).0, 400, "a copy of an SSE-C source needs its key");
        with_source_key!(
            s3.copy_object()
                .bucket("vault")
                .key("copy")
                .copy_source("vault/deed"),
            k1
        )
        .send()
        .await
        .unwrap();
        assert_eq!(read(&s3, "copy", None).await.unwrap(), deed);
        let rekeyed = with_key!(
            with_source_key!(
                s3.copy_object()
                    .bucket("vault")
                    .key("deed")
                    .copy_source("vault/deed"),
                k1
            ),
            k2
        )
        .send()
        .await
        .unwrap();
        assert_eq!(rekeyed.sse_customer_key_md5(), Some(k2.2.as_str()));
        assert_eq!(read(&s3, "deed", Some(&k2)).await.unwrap(), deed);
        assert_eq!(read(&s3, "deed", Some(&k1)).await.unwrap_err().0, 403);
        with_key!(
            s3.copy_object()
                .bucket("vault")
                .key("sealed-copy")
                .copy_source("vault/plain"),
            k1
        )
        .send()
        .await
        .unwrap();
        assert_eq!(
            read(&s3, "sealed-copy", Some(&k1)).await.unwrap(),
            b"open record"
        );
        assert_eq!(read(&s3, "sealed-copy", None).await.unwrap_err().0, 400);

        // Multipart: every part with the upload's key; a part copied from an SSE-C source.
        let up = with_key!(s3.create_multipart_upload().bucket("vault").key("scan"), k1)
            .send()
            .await
            .unwrap();
        assert_eq!(up.sse_customer_key_md5(), Some(k1.2.as_str()));
        let id = up.upload_id().unwrap();
        let first = vec![3u8; 5 << 20];
        // The refused parts are small: refused before its body is read, a large one would be
        // cut off by the closing connection, and the client would see no answer at all.
        let e = s3
            .upload_part()
            .bucket("vault")
            .key("scan")
            .upload_id(id)
            .part_number(1)
            .body(ByteStream::from_static(b"refused before its body is read"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e).0, 400, "a part without the upload's key");
        let e = with_key!(
            s3.upload_part()
                .bucket("vault")
                .key("scan")
                .upload_id(id)
                .part_number(1),
            k2
        )
        .body(ByteStream::from_static(b"refused before its body is read"))
        .send()
        .await
        .unwrap_err();
        assert_eq!(code(&e).0, 400, "a part with another key");
        let p1 = with_key!(
            s3.upload_part()
                .bucket("vault")
                .key("scan")
                .upload_id(id)
                .part_number(1),
            k1
        )
        .body(ByteStream::from(first.clone()))
        .send()
        .await
        .unwrap();
        let p2 = with_key!(
            with_source_key!(
                s3.upload_part_copy()
                    .bucket("vault")
                    .key("scan")
                    .upload_id(id)
                    .part_number(2)
                    .copy_source("vault/deed"),
                k2
            ),
            k1
        )
        .send()
        .await
        .unwrap();
        s3.complete_multipart_upload()
            .bucket("vault")
            .key("scan")
            .upload_id(id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .parts(
                        CompletedPart::builder()
                            .part_number(1)
                            .e_tag(p1.e_tag().unwrap())
                            .build(),
                    )
                    .parts(
                        CompletedPart::builder()
                            .part_number(2)
                            .e_tag(p2.copy_part_result().unwrap().e_tag().unwrap())
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let mut whole = first.clone();
        whole.extend_from_slice(&deed);
        assert_eq!(read(&s3, "scan", Some(&k1)).await.unwrap(), whole);
        assert_eq!(read(&s3, "scan", None).await.unwrap_err().0, 400);
        assert_eq!(read(&s3, "scan", Some(&k2)).await.unwrap_err().0, 403);

        // The key is in no log.
        let log = std::fs::read_to_string(cluster.root().join("gateway/exclaved.log"))
            .unwrap_or_default();
        for k in [&k1, &k2] {
            assert!(!log.contains(&k.1), "a customer key in the gateway's log");
        }

        // After a disaster: recovered, and named as needing their customer key.
        let work = tempfile::tempdir().unwrap();
        let (done, _out, _ports) =
            crate::recovery::lose_home_and_recover(&mut cluster, work.path(), false);
        assert!(done.status.success(), "{}", crate::recovery::text(&done));
        let report: serde_json::Value = serde_json::from_slice(&done.stdout).unwrap();
        let keyed: Vec<&str> = report["customer_keyed"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        assert_eq!(
            keyed,
            ["vault/deed", "vault/scan", "vault/sealed-copy"],
            "{report:#}"
        );
        assert!(
            report["unreadable"].as_array().unwrap().is_empty(),
            "{report:#}"
        );
    })
    .await;
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
