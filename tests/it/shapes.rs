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
        let (status, text) =
            tokio::task::block_in_place(|| send(addr, "PUT", "/shapes/gz", &signed.headers, &body));
        assert_eq!(status, 200, "{text}");
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
        let (status, text) = raw(
            &cluster,
            "GET",
            "/shapes/gz",
            &[],
            &[("if-none-match", &etag)],
        );
        assert_eq!(status, 304, "{text}");
        assert_eq!(header_of(&text, "etag"), Some(etag.as_str()), "{text}");
        assert!(header_of(&text, "last-modified").is_some(), "{text}");

        // Error XML names the request, as the x-amz-request-id header does.
        let (status, text) = raw(&cluster, "GET", "/shapes/missing", &[], &[]);
        assert_eq!(status, 404);
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
        let (status, text) = raw(
            &cluster,
            "GET",
            "/shapes",
            &[("list-type", "2"), ("delimiter", "")],
            &[],
        );
        assert_eq!(status, 200, "{text}");
        assert!(!text.contains("<Delimiter"), "{text}");
        assert!(text.contains("<Key>a b/c</Key>"), "{text}");
        // ListObjects V1 with encoding-type=url: keys encoded, Prefix not (as botocore reads it).
        let (status, text) = raw(
            &cluster,
            "GET",
            "/shapes",
            &[("prefix", "a b/"), ("encoding-type", "url")],
            &[],
        );
        assert_eq!(status, 200, "{text}");
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
        assert_eq!(code(&other).1, "NoSuchUpload");

        // An empty Content-MD5 is refused, not skipped.
        let (status, text) = raw(&cluster, "PUT", "/shapes/md5", &[], &[("content-md5", "")]);
        assert_eq!(status, 400, "{text}");
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
        let (status, text) =
            tokio::task::block_in_place(|| send(addr, "GET", "/shapes/gz", &signed.headers, b""));
        assert_eq!(status, 200, "a request dated by Date: {text}");

        // An operation not implemented answers 501, and the log names it.
        let (status, _) = raw(&cluster, "GET", "/shapes", &[("website", "")], &[]);
        assert_eq!(status, 501);
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

/// Issue 18, items 4 to 6 (part): ACLs as AWS has them with ObjectOwnership
/// BucketOwnerEnforced, default encryption as SSE-S3 (what exclave does anyway) with every write
/// and read saying `AES256`, and GetObjectAttributes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acls_encryption_and_attributes_answer_what_exclave_does() {
    use aws_sdk_s3::types::{
        AccessControlPolicy, BucketCannedAcl, ChecksumAlgorithm, Grant, Grantee, ObjectAttributes,
        ObjectCannedAcl, ObjectOwnership, OwnershipControls, OwnershipControlsRule, Permission,
        ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
        ServerSideEncryptionRule, Type,
    };
    within(600, async {
        let cluster = started_cluster("").await;
        let s3 = cluster.s3_client(1);
        s3.create_bucket().bucket("acl").send().await.unwrap();
        let put = s3
            .put_object()
            .bucket("acl")
            .key("deed")
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .body(ByteStream::from_static(b"parcel 7/12"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            put.server_side_encryption(),
            Some(&ServerSideEncryption::Aes256)
        );

        // ACLs: the owner's FULL_CONTROL, nothing else taken.
        let acl = s3.get_bucket_acl().bucket("acl").send().await.unwrap();
        assert_eq!(acl.grants().len(), 1);
        assert_eq!(acl.grants()[0].permission(), Some(&Permission::FullControl));
        let owner_id = acl.owner().unwrap().id().unwrap().to_owned();
        let oacl = s3
            .get_object_acl()
            .bucket("acl")
            .key("deed")
            .send()
            .await
            .unwrap();
        assert_eq!(oacl.grants().len(), 1);
        s3.put_bucket_acl()
            .bucket("acl")
            .acl(BucketCannedAcl::Private)
            .send()
            .await
            .unwrap();
        s3.put_object_acl()
            .bucket("acl")
            .key("deed")
            .acl(ObjectCannedAcl::BucketOwnerFullControl)
            .send()
            .await
            .unwrap();
        let e = s3
            .put_bucket_acl()
            .bucket("acl")
            .acl(BucketCannedAcl::PublicRead)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), (400, "AccessControlListNotSupported".into()));
        let grant = |g: Grantee, p: Permission| Grant::builder().grantee(g).permission(p).build();
        let me = Grantee::builder()
            .r#type(Type::CanonicalUser)
            .id(&owner_id)
            .build()
            .unwrap();
        let everyone = Grantee::builder()
            .r#type(Type::Group)
            .uri("http://acs.amazonaws.com/groups/global/AllUsers")
            .build()
            .unwrap();
        let owner = aws_sdk_s3::types::Owner::builder().id(&owner_id).build();
        let policy = |grants: Vec<Grant>| {
            AccessControlPolicy::builder()
                .set_grants(Some(grants))
                .owner(owner.clone())
                .build()
        };
        s3.put_bucket_acl()
            .bucket("acl")
            .access_control_policy(policy(vec![grant(me.clone(), Permission::FullControl)]))
            .send()
            .await
            .unwrap();
        let e = s3
            .put_object_acl()
            .bucket("acl")
            .key("deed")
            .access_control_policy(policy(vec![
                grant(me, Permission::FullControl),
                grant(everyone, Permission::Read),
            ]))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), (400, "AccessControlListNotSupported".into()));
        let e = s3
            .get_object_acl()
            .bucket("acl")
            .key("missing")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e).0, 404);

        // Ownership controls: BucketOwnerEnforced, and only that.
        let oc = s3
            .get_bucket_ownership_controls()
            .bucket("acl")
            .send()
            .await
            .unwrap();
        assert_eq!(
            oc.ownership_controls().unwrap().rules()[0].object_ownership(),
            &ObjectOwnership::BucketOwnerEnforced
        );
        let controls = |o: ObjectOwnership| {
            OwnershipControls::builder()
                .rules(
                    OwnershipControlsRule::builder()
                        .object_ownership(o)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap()
        };
        s3.put_bucket_ownership_controls()
            .bucket("acl")
            .ownership_controls(controls(ObjectOwnership::BucketOwnerEnforced))
            .send()
            .await
            .unwrap();
        let e = s3
            .put_bucket_ownership_controls()
            .bucket("acl")
            .ownership_controls(controls(ObjectOwnership::ObjectWriter))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e).0, 400);
        let e = s3
            .delete_bucket_ownership_controls()
            .bucket("acl")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e).0, 400);

        // Default encryption: AES256, always; no KMS.
        let enc = |alg: ServerSideEncryption| {
            ServerSideEncryptionConfiguration::builder()
                .rules(
                    ServerSideEncryptionRule::builder()
                        .apply_server_side_encryption_by_default(
                            ServerSideEncryptionByDefault::builder()
                                .sse_algorithm(alg)
                                .build()
                                .unwrap(),
                        )
                        .build(),
                )
                .build()
                .unwrap()
        };
        let got = s3
            .get_bucket_encryption()
            .bucket("acl")
            .send()
            .await
            .unwrap();
        let rule = &got.server_side_encryption_configuration().unwrap().rules()[0];
        assert_eq!(
            rule.apply_server_side_encryption_by_default()
                .unwrap()
                .sse_algorithm(),
            &ServerSideEncryption::Aes256
        );
        s3.put_bucket_encryption()
            .bucket("acl")
            .server_side_encryption_configuration(enc(ServerSideEncryption::Aes256))
            .send()
            .await
            .unwrap();
        for kms in [
            ServerSideEncryption::AwsKms,
            ServerSideEncryption::AwsKmsDsse,
        ] {
            let e = s3
                .put_bucket_encryption()
                .bucket("acl")
                .server_side_encryption_configuration(enc(kms))
                .send()
                .await
                .unwrap_err();
            assert_eq!(code(&e), (400, "InvalidArgument".into()));
        }
        s3.delete_bucket_encryption()
            .bucket("acl")
            .send()
            .await
            .unwrap();
        let e = s3
            .put_object()
            .bucket("acl")
            .key("kms")
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap_err();
        assert!(code(&e).0 >= 400);
        assert!(!exists(&s3, "acl", "kms").await);

        // Every read and write says AES256.
        let put = s3
            .put_object()
            .bucket("acl")
            .key("sse")
            .server_side_encryption(ServerSideEncryption::Aes256)
            .body(ByteStream::from_static(b"sealed"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            put.server_side_encryption(),
            Some(&ServerSideEncryption::Aes256)
        );
        let got = s3
            .get_object()
            .bucket("acl")
            .key("sse")
            .send()
            .await
            .unwrap();
        assert_eq!(
            got.server_side_encryption(),
            Some(&ServerSideEncryption::Aes256)
        );
        let head = s3
            .head_object()
            .bucket("acl")
            .key("deed")
            .send()
            .await
            .unwrap();
        assert_eq!(
            head.server_side_encryption(),
            Some(&ServerSideEncryption::Aes256)
        );
        let copy = s3
            .copy_object()
            .bucket("acl")
            .key("copy")
            .copy_source("acl/deed")
            .send()
            .await
            .unwrap();
        assert_eq!(
            copy.server_side_encryption(),
            Some(&ServerSideEncryption::Aes256)
        );
        let mp = s3
            .create_multipart_upload()
            .bucket("acl")
            .key("mp")
            .send()
            .await
            .unwrap();
        assert_eq!(
            mp.server_side_encryption(),
            Some(&ServerSideEncryption::Aes256)
        );
        let id = mp.upload_id().unwrap().to_owned();
        let mut parts = Vec::new();
        for n in 1..=2 {
            let body = vec![n as u8; if n == 1 { 5 << 20 } else { 1000 }];
            let p = s3
                .upload_part()
                .bucket("acl")
                .key("mp")
                .upload_id(&id)
                .part_number(n)
                .body(ByteStream::from(body))
                .send()
                .await
                .unwrap();
            assert_eq!(
                p.server_side_encryption(),
                Some(&ServerSideEncryption::Aes256)
            );
            parts.push(
                CompletedPart::builder()
                    .part_number(n)
                    .e_tag(p.e_tag().unwrap())
                    .build(),
            );
        }
        let done = s3
            .complete_multipart_upload()
            .bucket("acl")
            .key("mp")
            .upload_id(&id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(
            done.server_side_encryption(),
            Some(&ServerSideEncryption::Aes256)
        );

        // GetObjectAttributes.
        let attrs = s3
            .get_object_attributes()
            .bucket("acl")
            .key("deed")
            .object_attributes(ObjectAttributes::Etag)
            .object_attributes(ObjectAttributes::ObjectSize)
            .object_attributes(ObjectAttributes::StorageClass)
            .object_attributes(ObjectAttributes::Checksum)
            .send()
            .await
            .unwrap();
        assert_eq!(attrs.object_size(), Some(11));
        // Bare, as AWS answers it here (quoted everywhere else).
        assert_eq!(attrs.e_tag(), head.e_tag().map(|e| e.trim_matches('"')));
        assert_eq!(attrs.storage_class().map(|s| s.as_str()), Some("STANDARD"));
        assert_eq!(
            attrs.checksum().and_then(|c| c.checksum_crc32()),
            put_crc32(b"parcel 7/12").as_deref()
        );
        let attrs = s3
            .get_object_attributes()
            .bucket("acl")
            .key("mp")
            .object_attributes(ObjectAttributes::ObjectParts)
            .object_attributes(ObjectAttributes::ObjectSize)
            .max_parts(1)
            .send()
            .await
            .unwrap();
        assert_eq!(attrs.object_size(), Some((5 << 20) + 1000));
        let parts = attrs.object_parts().unwrap();
        assert_eq!(parts.total_parts_count(), Some(2));
        assert_eq!(parts.parts().len(), 1);
        assert_eq!(parts.parts()[0].size(), Some(5 << 20));
        assert_eq!(parts.is_truncated(), Some(true));
        let e = s3
            .get_object_attributes()
            .bucket("acl")
            .key("missing")
            .object_attributes(ObjectAttributes::Etag)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e).0, 404);
    })
    .await;
}

/// The base64 CRC32 S3 gives `data`.
fn put_crc32(data: &[u8]) -> Option<String> {
    Some(B64.encode_to_string(crc32fast::hash(data).to_be_bytes()))
}

/// An unsigned preflight `OPTIONS`, as a browser sends it.
fn preflight(cluster: &Cluster, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let addr = cluster.s3_addr();
    let mut h: Vec<(String, String)> = vec![("host".into(), addr.to_string())];
    h.extend(headers.iter().map(|(k, v)| ((*k).into(), (*v).into())));
    tokio::task::block_in_place(|| send(addr, "OPTIONS", path, &h, b""))
}

/// Issue 18, item 6: CORS. Rules kept as put and refused as S3 refuses them; a browser's
/// preflight answered from them (allowed origin, method and headers; anything else 403, no
/// Origin 400); an actual request from an allowed origin answered with the CORS headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cors_rules_answer_a_browser_s_preflight_and_requests() {
    use aws_sdk_s3::types::{CorsConfiguration, CorsRule};
    within(600, async {
        let cluster = started_cluster("").await;
        let s3 = cluster.s3_client(1);
        s3.create_bucket().bucket("web").send().await.unwrap();
        put(&s3, "web", "form.pdf", b"form").await;
        let e = s3.get_bucket_cors().bucket("web").send().await.unwrap_err();
        assert_eq!(code(&e), (404, "NoSuchCORSConfiguration".into()));
        let portal = "https://portal.land.example";
        let ask_put = [
            ("origin", portal),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "Content-Type, X-Amz-Date"),
        ];
        let (status, text) = preflight(&cluster, "/web/upload.pdf", &ask_put);
        assert_eq!(status, 403, "no rules yet: {text}");
        assert!(text.contains("AccessForbidden"), "{text}");

        let rules = vec![
            CorsRule::builder()
                .id("portal")
                .allowed_origins(portal)
                .allowed_methods("PUT")
                .allowed_methods("GET")
                .allowed_headers("*")
                .expose_headers("ETag")
                .expose_headers("x-amz-version-id")
                .max_age_seconds(600)
                .build()
                .unwrap(),
            CorsRule::builder()
                .allowed_origins("*")
                .allowed_methods("GET")
                .build()
                .unwrap(),
        ];
        s3.put_bucket_cors()
            .bucket("web")
            .cors_configuration(
                CorsConfiguration::builder()
                    .set_cors_rules(Some(rules.clone()))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        let got = s3.get_bucket_cors().bucket("web").send().await.unwrap();
        assert_eq!(got.cors_rules(), &rules[..]);

        // What S3 refuses is refused, and the rules stay.
        for bad in [
            CorsRule::builder()
                .allowed_origins("*")
                .allowed_methods("PATCH")
                .build()
                .unwrap(),
            CorsRule::builder()
                .allowed_origins("https://*.*.example")
                .allowed_methods("GET")
                .build()
                .unwrap(),
        ] {
            let e = s3
                .put_bucket_cors()
                .bucket("web")
                .cors_configuration(
                    CorsConfiguration::builder()
                        .cors_rules(bad)
                        .build()
                        .unwrap(),
                )
                .send()
                .await
                .unwrap_err();
            assert_eq!(code(&e), (400, "InvalidRequest".into()));
        }
        let got = s3.get_bucket_cors().bucket("web").send().await.unwrap();
        assert_eq!(got.cors_rules(), &rules[..]);

        // The portal's upload is allowed, with the headers it asks for.
        let (status, text) = preflight(&cluster, "/web/upload.pdf", &ask_put);
        assert_eq!(status, 200, "{text}");
        assert_eq!(
            header_of(&text, "access-control-allow-origin"),
            Some(portal)
        );
        assert_eq!(
            header_of(&text, "access-control-allow-methods"),
            Some("PUT, GET")
        );
        assert_eq!(
            header_of(&text, "access-control-allow-headers"),
            Some("content-type, x-amz-date")
        );
        assert_eq!(header_of(&text, "access-control-max-age"), Some("600"));
        assert_eq!(
            header_of(&text, "access-control-expose-headers"),
            Some("ETag, x-amz-version-id")
        );
        // Another origin may only GET, and is told `*`.
        let (status, _) = preflight(
            &cluster,
            "/web/upload.pdf",
            &[
                ("origin", "https://elsewhere.example"),
                ("access-control-request-method", "PUT"),
            ],
        );
        assert_eq!(status, 403);
        let (status, text) = preflight(
            &cluster,
            "/web/form.pdf",
            &[
                ("origin", "https://elsewhere.example"),
                ("access-control-request-method", "GET"),
            ],
        );
        assert_eq!(status, 200, "{text}");
        assert_eq!(header_of(&text, "access-control-allow-origin"), Some("*"));
        // Not a preflight; a bucket that does not exist answers as one without rules.
        let (status, text) = preflight(&cluster, "/web/form.pdf", &[]);
        assert_eq!(status, 400, "{text}");
        let (status, _) = preflight(&cluster, "/nosuch/form.pdf", &ask_put);
        assert_eq!(status, 403);

        // An actual request from the portal: its answer carries the CORS headers.
        let (status, text) = raw(&cluster, "GET", "/web/form.pdf", &[], &[("origin", portal)]);
        assert_eq!(status, 200, "{text}");
        assert_eq!(
            header_of(&text, "access-control-allow-origin"),
            Some(portal)
        );
        assert_eq!(
            header_of(&text, "access-control-expose-headers"),
            Some("ETag, x-amz-version-id")
        );
        let (_, text) = raw(&cluster, "GET", "/web/form.pdf", &[], &[]);
        assert_eq!(header_of(&text, "access-control-allow-origin"), None);

        // Deleted: browsers are refused again.
        s3.delete_bucket_cors().bucket("web").send().await.unwrap();
        let e = s3.get_bucket_cors().bucket("web").send().await.unwrap_err();
        assert_eq!(code(&e).0, 404);
        let (status, _) = preflight(&cluster, "/web/upload.pdf", &ask_put);
        assert_eq!(status, 403);
    })
    .await;
}

/// Issue 18, item 7: a Range that does not parse is ignored, as AWS ignores it (200, the whole
/// object), whether the signature covers it or not; the request is still the signing key's
/// (a key without a grant, or a forged signature, is refused as without the header).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unparsable_range_is_ignored_signed_or_not() {
    within(300, async {
        let cluster = started_cluster("").await;
        let s3 = cluster.s3_client(1);
        s3.create_bucket().bucket("ranges").send().await.unwrap();
        put(&s3, "ranges", "deed", b"parcel 7/12").await;
        let (access, secret) = cluster.credentials();
        let addr = cluster.s3_addr();
        let host = addr.to_string();
        let signer = Signer::new(access, secret);
        let url = signer.presign(&host, "GET", "/ranges/deed", 300, &amz_date(0));
        for bad in ["bytes=x-y", "items=0-3", "bytes=5-2"] {
            let (status, text) = tokio::task::block_in_place(|| {
                send(
                    addr,
                    "GET",
                    &url,
                    &[("host".into(), host.clone()), ("range".into(), bad.into())],
                    b"",
                )
            });
            assert_eq!(status, 200, "{bad}: {text}");
            assert!(text.ends_with("parcel 7/12"), "{bad}: {text}");
        }
        // A good range still applies.
        let (status, text) = tokio::task::block_in_place(|| {
            send(
                addr,
                "GET",
                &url,
                &[
                    ("host".into(), host.clone()),
                    ("range".into(), "bytes=0-5".into()),
                ],
                b"",
            )
        });
        assert_eq!(status, 206, "{text}");
        assert!(text.ends_with("parcel"), "{text}");

        // Signed into the request's headers: served again without it, as the same key.
        let empty = sha256_hex(b"");
        let query = [(
            "response-content-type".to_string(),
            "text/plain".to_string(),
        )];
        let target = "/ranges/deed?response-content-type=text%2Fplain";
        for method in ["GET", "HEAD"] {
            for bad in ["bytes=x-y", "items=0-3"] {
                let signed = signer.sign(
                    &host,
                    method,
                    "/ranges/deed",
                    &query,
                    &[("range", bad)],
                    &empty,
                    &amz_date(0),
                );
                let (status, text) = tokio::task::block_in_place(|| {
                    send(addr, method, target, &signed.headers, b"")
                });
                assert_eq!(status, 200, "{method} {bad}: {text}");
                assert_eq!(header_of(&text, "content-length"), Some("11"), "{text}");
                assert_eq!(
                    header_of(&text, "content-type"),
                    Some("text/plain"),
                    "{text}"
                );
                assert_eq!(header_of(&text, "content-range"), None, "{text}");
                if method == "GET" {
                    assert!(text.ends_with("parcel 7/12"), "{bad}: {text}");
                }
                // A forged signature with the same header: refused, nothing served.
                let mut forged = signed.headers.clone();
                for (k, v) in &mut forged {
                    if k == "authorization" {
                        *v = v.replace(&signed.signature, &"0".repeat(64));
                    }
                }
                let (status, text) =
                    tokio::task::block_in_place(|| send(addr, method, target, &forged, b""));
                assert_eq!(status, 403, "{method} {bad} forged: {text}");
                assert!(!text.contains("parcel"), "{text}");
            }
        }
        // Signed into a presigned URL.
        let url = signer.presign_with(
            &host,
            "GET",
            "/ranges/deed",
            &[],
            &[("range", "bytes=x-y")],
            300,
            &amz_date(0),
        );
        let (status, text) = tokio::task::block_in_place(|| {
            send(
                addr,
                "GET",
                &url,
                &[
                    ("host".into(), host.clone()),
                    ("range".into(), "bytes=x-y".into()),
                ],
                b"",
            )
        });
        assert_eq!(status, 200, "{text}");
        assert!(text.ends_with("parcel 7/12"), "{text}");

        // A key without a grant on the bucket is refused, the header or not.
        let (other, other_secret) = cluster.make_key("stranger");
        let stranger = Signer::new(other, other_secret);
        let signed = stranger.sign(
            &host,
            "GET",
            "/ranges/deed",
            &[],
            &[("range", "bytes=x-y")],
            &empty,
            &amz_date(0),
        );
        let (status, text) =
            tokio::task::block_in_place(|| send(addr, "GET", "/ranges/deed", &signed.headers, b""));
        assert_eq!(status, 403, "{text}");
        assert!(
            text.contains("AccessDenied") && !text.contains("parcel"),
            "{text}"
        );
    })
    .await;
}
