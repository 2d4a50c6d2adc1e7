//! Issue 18, item 7: smaller shapes clients found, each as AWS answers it. Expires returned;
//! `aws-chunked` not kept in Content-Encoding; a 304 with its ETag; error XML with a
//! RequestId; no empty `<Delimiter/>`; ListObjects V1's Prefix not encoded; a bucket created
//! twice in us-east-1; a retried or raced CompleteMultipartUpload answering the completion; an
//! empty Content-MD5 refused; SigV4 timed by `Date`; the name of an operation not implemented
//! in the log.

use std::time::Duration;

use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use base64_simd::STANDARD as B64;

use crate::sigv4::{Signer, amz_date, dates, send, sha256_hex};
use crate::support::*;

/// A header's value in a raw answer.
fn header_of<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let head = text.split("\r\n\r\n").next()?;
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A signed request with no body, sent by hand; (status, the whole answer).
fn raw(
    cluster: &Cluster,
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    extra: &[(&str, &str)],
) -> (u16, String) {
    let (access, secret) = cluster.credentials();
    let addr = cluster.s3_addr();
    let host = addr.to_string();
    let q: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    let signed = Signer::new(access, secret).sign(
        &host,
        method,
        path,
        &q,
        extra,
        &sha256_hex(b""),
        &amz_date(0),
    );
    let target = if q.is_empty() {
        path.to_owned()
    } else {
        format!(
            "{path}?{}",
            q.iter()
                .map(|(k, v)| format!("{}={}", urlencoding::encode(k), urlencoding::encode(v)))
                .collect::<Vec<_>>()
                .join("&")
        )
    };
    tokio::task::block_in_place(|| send(addr, method, &target, &signed.headers, b""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_shape_clients_found_is_answered_as_aws_answers_it() {
    within(600, async {
        let cluster = started_cluster("").await;
        let s3 = cluster.s3_client(1);
        s3.create_bucket().bucket("shapes").send().await.unwrap();

        // Expires is returned as stored, and `response-expires` overrides it.
        let when = DateTime::from_secs(1_900_000_000);
        s3.put_object()
            .bucket("shapes")
            .key("expiring")
            .expires(when)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap();
        let head = s3
            .head_object()
            .bucket("shapes")
            .key("expiring")
            .send()
            .await
            .unwrap();
        #[allow(deprecated)]
        let got = head.expires().copied();
        assert_eq!(got, Some(when), "HEAD Expires");
        let (_, text) = raw(
            &cluster,
            "GET",
            "/shapes/expiring",
            &[("response-expires", "Thu, 01 Jan 2037 00:00:00 GMT")],
            &[],
        );
        assert_eq!(
            header_of(&text, "expires"),
            Some("Thu, 01 Jan 2037 00:00:00 GMT"),
            "{text}"
        );

        // A streaming upload's `aws-chunked` framing is not the object's encoding.
        let (access, secret) = cluster.credentials();
        let addr = cluster.s3_addr();
        let host = addr.to_string();
        let data = b"gzip bytes, as a registry portal would send them";
        let crc = B64.encode_to_string(crc32fast::hash(data).to_be_bytes());
        let mut body = format!("{:x}\r\n", data.len()).into_bytes();
        body.extend_from_slice(data);
        body.extend_from_slice(format!("\r\n0\r\nx-amz-checksum-crc32:{crc}\r\n\r\n").as_bytes());
        let len = data.len().to_string();
        let signed = Signer::new(access.clone(), secret.clone()).sign(
            &host,
            "PUT",
            "/shapes/gz",
            &[],
            &[
                ("content-encoding", "gzip,aws-chunked"),
                ("x-amz-decoded-content-length", &len),
                ("x-amz-trailer", "x-amz-checksum-crc32"),
            ],
            "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            &amz_date(0),
        );
        let (code, text) =
            tokio::task::block_in_place(|| send(addr, "PUT", "/shapes/gz", &signed.headers, &body));
        assert_eq!(code, 200, "{text}");
        let head = s3
            .head_object()
            .bucket("shapes")
            .key("gz")
            .send()
            .await
            .unwrap();
        assert_eq!(head.content_encoding(), Some("gzip"));

        // A 304 carries the ETag (and Last-Modified) a 200 would.
        let etag = head.e_tag().unwrap().to_owned();
        let (code, text) = raw(
            &cluster,
            "GET",
            "/shapes/gz",
            &[],
            &[("if-none-match", &etag)],
        );
        assert_eq!(code, 304, "{text}");
        assert_eq!(header_of(&text, "etag"), Some(etag.as_str()), "{text}");
        assert!(header_of(&text, "last-modified").is_some(), "{text}");

        // Error XML names the request, as the x-amz-request-id header does.
        let (code, text) = raw(&cluster, "GET", "/shapes/missing", &[], &[]);
        assert_eq!(code, 404);
        let id = header_of(&text, "x-amz-request-id").unwrap();
        assert!(
            text.contains(&format!("<RequestId>{id}</RequestId></Error>")),
            "{text}"
        );

        // An empty delimiter is no delimiter, and is not echoed.
        s3.put_object()
            .bucket("shapes")
            .key("a b/c")
            .body(ByteStream::from_static(b"c"))
            .send()
            .await
            .unwrap();
        let (code, text) = raw(
            &cluster,
            "GET",
            "/shapes",
            &[("list-type", "2"), ("delimiter", "")],
            &[],
        );
        assert_eq!(code, 200, "{text}");
        assert!(!text.contains("<Delimiter"), "{text}");
        assert!(text.contains("<Key>a b/c</Key>"), "{text}");
        // ListObjects V1 with encoding-type=url: keys encoded, Prefix not (as botocore reads it).
        let (code, text) = raw(
            &cluster,
            "GET",
            "/shapes",
            &[("prefix", "a b/"), ("encoding-type", "url")],
            &[],
        );
        assert_eq!(code, 200, "{text}");
        assert!(text.contains("<Prefix>a b/</Prefix>"), "{text}");
        assert!(text.contains("<Key>a%20b/c</Key>"), "{text}");

        // Creating a bucket one owns, in us-east-1: 200 (and nothing changes).
        s3.create_bucket().bucket("shapes").send().await.unwrap();
        assert!(exists(&s3, "shapes", "gz").await);

        // A Complete retried after its answer was lost, and Completes racing: one completion,
        // the same answer to each.
        let id = s3
            .create_multipart_upload()
            .bucket("shapes")
            .key("mp")
            .send()
            .await
            .unwrap()
            .upload_id()
            .unwrap()
            .to_owned();
        let part = s3
            .upload_part()
            .bucket("shapes")
            .key("mp")
            .upload_id(&id)
            .part_number(1)
            .body(ByteStream::from_static(b"the only part"))
            .send()
            .await
            .unwrap();
        let done = CompletedMultipartUpload::builder()
            .parts(
                CompletedPart::builder()
                    .part_number(1)
                    .e_tag(part.e_tag().unwrap())
                    .build(),
            )
            .build();
        let complete = || {
            s3.complete_multipart_upload()
                .bucket("shapes")
                .key("mp")
                .upload_id(&id)
                .multipart_upload(done.clone())
                .send()
        };
        let (a, b) = tokio::join!(complete(), complete());
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(
            a.e_tag(),
            b.e_tag(),
            "racing Completes answer the same completion"
        );
        let again = complete().await.unwrap();
        assert_eq!(
            again.e_tag(),
            a.e_tag(),
            "a retried Complete answers the completion"
        );
        assert_eq!(get(&s3, "shapes", "mp").await, b"the only part");
        let other = s3
            .complete_multipart_upload()
            .bucket("shapes")
            .key("mp")
            .upload_id("0123456789abcdef0123456789abcdef")
            .multipart_upload(done.clone())
            .send()
            .await
            .unwrap_err();
        assert_eq!(crate::support::code(&other).1, "NoSuchUpload");

        // An empty Content-MD5 is refused, not skipped.
        let (code, text) = raw(&cluster, "PUT", "/shapes/md5", &[], &[("content-md5", "")]);
        assert_eq!(code, 400, "{text}");
        assert!(text.contains("InvalidDigest"), "{text}");
        assert!(!exists(&s3, "shapes", "md5").await);

        // SigV4 timed by the Date header alone.
        let (amz, http_date) = dates(0);
        let signed = Signer::new(access, secret).sign_with_date_header(
            &host,
            "GET",
            "/shapes/gz",
            &sha256_hex(b""),
            &amz,
            &http_date,
        );
        let (code, text) =
            tokio::task::block_in_place(|| send(addr, "GET", "/shapes/gz", &signed.headers, b""));
        assert_eq!(code, 200, "a request dated by Date: {text}");

        // An operation not implemented answers 501, and the log names it.
        let (code, _) = raw(&cluster, "GET", "/shapes", &[("website", "")], &[]);
        assert_eq!(code, 501);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let log = std::fs::read_to_string(cluster.root().join("gateway/exclaved.log")).unwrap();
        assert!(
            log.lines()
                .any(|l| l.contains("operation not implemented") && l.contains("GetBucketWebsite")),
            "the log does not name the operation"
        );
    })
    .await;
}
