//! The standing attack corpus (issue 13): every route, in every payload mode, with every
//! forgery a hostile client can make of a request it holds or has seen. Each answers 4xx for
//! the reason of its forgery, never shows a byte of the secret record, and afterwards the
//! listings, HEADs and bytes show that nothing was stored, changed, copied or read.
//! Each request is first sent honest and must succeed, so a refusal is the forgery's doing.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_lc_rs::hmac;
use aws_sdk_s3::primitives::ByteStream;
use base64_simd::STANDARD as B64;

use crate::sigv4::{Signer, amz_date, send, sha256_hex};
use crate::support::{Cluster, started_cluster, within};

const SECRET_BUCKET: &str = "registry-secret";
const SECRET_KEY: &str = "population/persons.csv";
const SECRET: &[u8] = b"SECRETROW1;Jane Roe;1970-01-01;parcel 7/12\n";
const DROP: &str = "dropbox";
const COPY_SOURCE: &str = "/registry-secret/population/persons.csv";

/// How the request carries its payload and authentication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Header auth, `x-amz-content-sha256` = the body's hash.
    Signed,
    /// Header auth, `UNSIGNED-PAYLOAD`.
    Unsigned,
    /// Header auth, `STREAMING-AWS4-HMAC-SHA256-PAYLOAD` (signed chunks).
    Streaming,
    /// Header auth, `STREAMING-UNSIGNED-PAYLOAD-TRAILER` (a CRC32 trailer).
    StreamingTrailer,
    /// A presigned URL.
    Presigned,
}

const MODES: [Mode; 5] = [
    Mode::Signed,
    Mode::Unsigned,
    Mode::Streaming,
    Mode::StreamingTrailer,
    Mode::Presigned,
];

/// What is done to an honest request.
#[derive(Clone, Copy, Debug)]
enum Forgery {
    BadSignature,
    UnknownKey,
    WrongRegion,
    WrongService,
    Expired,
    FutureDated,
    /// An `x-amz-*` header added after signing.
    UnsignedHeader(&'static str, &'static str),
    /// `X-Amz-Expire%73`: a ten-year lifetime under an encoded parameter name.
    EncodedExpiry,
    SigV2,
    /// Header and query authentication together.
    Mixed,
    /// The signed chunks of another request.
    ReplayedChunk,
}

const FORGERIES: [Forgery; 15] = [
    Forgery::BadSignature,
    Forgery::UnknownKey,
    Forgery::WrongRegion,
    Forgery::WrongService,
    Forgery::Expired,
    Forgery::FutureDated,
    Forgery::UnsignedHeader("x-amz-copy-source", COPY_SOURCE),
    Forgery::UnsignedHeader("x-amz-metadata-directive", "REPLACE"),
    Forgery::UnsignedHeader("x-amz-checksum-crc32", "AAAAAA=="),
    Forgery::UnsignedHeader("x-amz-storage-class", "GLACIER"),
    Forgery::UnsignedHeader("x-amz-acl", "public-read"),
    Forgery::EncodedExpiry,
    Forgery::SigV2,
    Forgery::Mixed,
    Forgery::ReplayedChunk,
];

/// Error codes a refused forgery may answer with: each names an authentication failure.
const AUTH_CODES: [&str; 8] = [
    "AccessDenied",
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
    "AuthorizationHeaderMalformed",
    "AuthorizationQueryParametersError",
    "RequestTimeTooSkewed",
    "InvalidRequest",
    "InvalidArgument",
];

/// One S3 operation's request.
#[derive(Clone, Debug)]
struct Route {
    name: &'static str,
    method: &'static str,
    path: String,
    query: Vec<(String, String)>,
    body: Vec<u8>,
    /// Headers the operation needs, signed.
    headers: Vec<(String, String)>,
    /// Takes an aws-chunked body.
    streams: bool,
}

impl Route {
    fn new(name: &'static str, method: &'static str, path: String) -> Self {
        Self {
            name,
            method,
            path,
            query: Vec::new(),
            body: Vec::new(),
            headers: Vec::new(),
            streams: false,
        }
    }
    fn query(mut self, k: &str, v: &str) -> Self {
        self.query.push((k.into(), v.into()));
        self
    }
    fn body(mut self, b: &[u8]) -> Self {
        self.body = b.to_vec();
        self
    }
    fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
    fn streams(mut self) -> Self {
        self.streams = true;
        self
    }
    fn applies(&self, mode: Mode) -> bool {
        self.streams || !matches!(mode, Mode::Streaming | Mode::StreamingTrailer)
    }
}

/// Where the routes point: scratch names for the honest run, the real targets for forgeries.
struct Targets {
    put_key: String,
    copy_key: String,
    delete_key: String,
    new_bucket: String,
    delete_bucket: String,
    /// Uploads: one to add a part to, one to complete (with its part's ETag), one to abort.
    part_upload: String,
    complete: (String, String, String),
    abort: (String, String),
}

fn routes(t: &Targets) -> Vec<Route> {
    let payload = b"slot 42: a registry entry".as_slice();
    let delete_xml = format!(
        "<Delete><Object><Key>{}</Key></Object><Quiet>true</Quiet></Delete>",
        t.delete_key
    );
    let md5 = B64.encode_to_string(md5_of(delete_xml.as_bytes()));
    let lifecycle_xml = "<LifecycleConfiguration><Rule><ID>tmp</ID><Filter><Prefix>tmp/</Prefix>\
        </Filter><Status>Enabled</Status><Expiration><Days>30</Days></Expiration></Rule>\
        </LifecycleConfiguration>";
    let lifecycle_md5 = B64.encode_to_string(md5_of(lifecycle_xml.as_bytes()));
    let tagging_xml =
        "<Tagging><TagSet><Tag><Key>class</Key><Value>open</Value></Tag></TagSet></Tagging>";
    let tagging_md5 = B64.encode_to_string(md5_of(tagging_xml.as_bytes()));
    let cors_xml = "<CORSConfiguration><CORSRule><AllowedOrigin>https://portal.example</AllowedOrigin>\
        <AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>";
    let cors_md5 = B64.encode_to_string(md5_of(cors_xml.as_bytes()));
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{DROP}/*"}}]}}"#
    );
    let complete_xml = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{}</ETag></Part></CompleteMultipartUpload>",
        t.complete.2
    );
    vec![
        Route::new("ListBuckets", "GET", "/".into()),
        Route::new("CreateBucket", "PUT", format!("/{}", t.new_bucket)),
        Route::new("DeleteBucket", "DELETE", format!("/{}", t.delete_bucket)),
        Route::new("ListObjectsV2", "GET", format!("/{SECRET_BUCKET}")).query("list-type", "2"),
        Route::new("GetObject", "GET", format!("/{SECRET_BUCKET}/{SECRET_KEY}")),
        Route::new(
            "HeadObject",
            "HEAD",
            format!("/{SECRET_BUCKET}/{SECRET_KEY}"),
        ),
        Route::new("PutObject", "PUT", format!("/{DROP}/{}", t.put_key))
            .body(payload)
            .streams(),
        Route::new("CopyObject", "PUT", format!("/{DROP}/{}", t.copy_key))
            .header("x-amz-copy-source", COPY_SOURCE),
        Route::new(
            "DeleteObject",
            "DELETE",
            format!("/{DROP}/{}", t.delete_key),
        ),
        Route::new("CreateMultipartUpload", "POST", format!("/{DROP}/mp")).query("uploads", ""),
        Route::new("UploadPart", "PUT", format!("/{DROP}/mp"))
            .query("partNumber", "1")
            .query("uploadId", &t.part_upload)
            .body(payload)
            .streams(),
        Route::new(
            "CompleteMultipartUpload",
            "POST",
            format!("/{DROP}/{}", t.complete.0),
        )
        .query("uploadId", &t.complete.1)
        .body(complete_xml.as_bytes()),
        Route::new(
            "AbortMultipartUpload",
            "DELETE",
            format!("/{DROP}/{}", t.abort.0),
        )
        .query("uploadId", &t.abort.1),
        Route::new("ListMultipartUploads", "GET", format!("/{DROP}")).query("uploads", ""),
        Route::new("DeleteObjects", "POST", format!("/{DROP}"))
            .query("delete", "")
            .header("content-md5", &md5)
            .body(delete_xml.as_bytes()),
        Route::new("PutBucketLifecycleConfiguration", "PUT", format!("/{DROP}"))
            .query("lifecycle", "")
            .header("content-md5", &lifecycle_md5)
            .body(lifecycle_xml.as_bytes()),
        Route::new("GetBucketLifecycleConfiguration", "GET", format!("/{DROP}"))
            .query("lifecycle", ""),
        Route::new("DeleteBucketLifecycle", "DELETE", format!("/{DROP}")).query("lifecycle", ""),
        Route::new(
            "PutObjectTagging",
            "PUT",
            format!("/{SECRET_BUCKET}/{SECRET_KEY}"),
        )
        .query("tagging", "")
        .header("content-md5", &tagging_md5)
        .body(tagging_xml.as_bytes()),
        Route::new(
            "GetObjectTagging",
            "GET",
            format!("/{SECRET_BUCKET}/{SECRET_KEY}"),
        )
        .query("tagging", ""),
        Route::new(
            "DeleteObjectTagging",
            "DELETE",
            format!("/{SECRET_BUCKET}/{SECRET_KEY}"),
        )
        .query("tagging", ""),
        Route::new(
            "GetObjectAttributes",
            "GET",
            format!("/{SECRET_BUCKET}/{SECRET_KEY}"),
        )
        .query("attributes", "")
        .header("x-amz-object-attributes", "ETag,ObjectSize"),
        Route::new("PutBucketPolicy", "PUT", format!("/{DROP}"))
            .query("policy", "")
            .body(policy.as_bytes()),
        Route::new("GetBucketPolicy", "GET", format!("/{DROP}")).query("policy", ""),
        Route::new("DeleteBucketPolicy", "DELETE", format!("/{DROP}")).query("policy", ""),
        Route::new("PutBucketTagging", "PUT", format!("/{DROP}"))
            .query("tagging", "")
            .header("content-md5", &tagging_md5)
            .body(tagging_xml.as_bytes()),
        Route::new("GetBucketTagging", "GET", format!("/{DROP}")).query("tagging", ""),
        Route::new("DeleteBucketTagging", "DELETE", format!("/{DROP}")).query("tagging", ""),
        Route::new("PutBucketCors", "PUT", format!("/{DROP}"))
            .query("cors", "")
            .header("content-md5", &cors_md5)
            .body(cors_xml.as_bytes()),
        Route::new("GetBucketCors", "GET", format!("/{DROP}")).query("cors", ""),
        Route::new("DeleteBucketCors", "DELETE", format!("/{DROP}")).query("cors", ""),
    ]
}

fn md5_of(b: &[u8]) -> [u8; 16] {
    use md5::Digest as _;
    md5::Md5::digest(b).into()
}

/// A request as sent: method, path and query, headers, body.
struct Wire {
    method: &'static str,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn encode_query(q: &[(String, String)]) -> String {
    q.iter()
        .map(|(k, v)| {
            if v.is_empty() {
                urlencoding::encode(k).into_owned()
            } else {
                format!("{}={}", urlencoding::encode(k), urlencoding::encode(v))
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn with_query(path: &str, q: &[(String, String)]) -> String {
    if q.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", encode_query(q))
    }
}

fn trailer_body(data: &[u8]) -> Vec<u8> {
    let crc = B64.encode_to_string(crc32fast::hash(data).to_be_bytes());
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(format!("\r\n0\r\nx-amz-checksum-crc32:{crc}\r\n\r\n").as_bytes());
    out
}

/// SigV2 header signature of a request with no `x-amz-*` headers or sub-resources.
fn sigv2(secret: &str, method: &str, date_or_expires: &str, path: &str) -> String {
    let sts = format!("{method}\n\n\n{date_or_expires}\n{path}");
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes());
    B64.encode_to_string(hmac::sign(&key, sts.as_bytes()).as_ref())
}

/// Builds `route` in `mode`, signed by `signer` at `offset` seconds from now.
fn build(host: &str, signer: &Signer, route: &Route, mode: Mode, offset: i64) -> Wire {
    let date = amz_date(offset);
    let extra: Vec<(&str, &str)> = route
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if mode == Mode::Presigned {
        let target = signer.presign_with(
            host,
            route.method,
            &route.path,
            &route.query,
            &extra,
            600,
            &date,
        );
        let mut headers = vec![("host".to_string(), host.to_string())];
        headers.extend(route.headers.iter().cloned());
        return Wire {
            method: route.method,
            target,
            headers,
            body: route.body.clone(),
        };
    }
    let (payload_hash, body, mut extra) = match mode {
        Mode::Signed => (sha256_hex(&route.body), route.body.clone(), extra),
        Mode::Unsigned => ("UNSIGNED-PAYLOAD".to_string(), route.body.clone(), extra),
        Mode::Streaming => (
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD".to_string(),
            Vec::new(),
            extra,
        ),
        Mode::StreamingTrailer => (
            "STREAMING-UNSIGNED-PAYLOAD-TRAILER".to_string(),
            trailer_body(&route.body),
            extra,
        ),
        Mode::Presigned => unreachable!(),
    };
    let decoded = route.body.len().to_string();
    if matches!(mode, Mode::Streaming | Mode::StreamingTrailer) {
        extra.push(("content-encoding", "aws-chunked"));
        extra.push(("x-amz-decoded-content-length", &decoded));
    }
    if mode == Mode::StreamingTrailer {
        extra.push(("x-amz-trailer", "x-amz-checksum-crc32"));
    }
    let signed = signer.sign(
        host,
        route.method,
        &route.path,
        &route.query,
        &extra,
        &payload_hash,
        &date,
    );
    let body = if mode == Mode::Streaming {
        signer.chunked(&signed, &[&route.body])
    } else {
        body
    };
    Wire {
        method: route.method,
        target: with_query(&route.path, &route.query),
        headers: signed.headers,
        body,
    }
}

/// The honest request in `mode`, with `forgery` applied; `None` where the forgery does not
/// apply to the mode.
fn forge(host: &str, good: &Signer, route: &Route, mode: Mode, forgery: Forgery) -> Option<Wire> {
    let w = match forgery {
        Forgery::BadSignature => build(
            host,
            &Signer::new(good.access.clone(), "not-the-secret-0123456789"),
            route,
            mode,
            0,
        ),
        Forgery::UnknownKey => build(
            host,
            &Signer::new("AKIASTRANGER000000000", good.secret.clone()),
            route,
            mode,
            0,
        ),
        Forgery::WrongRegion => build(host, &good.scoped("eu-west-1", "s3"), route, mode, 0),
        Forgery::WrongService => build(host, &good.scoped("us-east-1", "iam"), route, mode, 0),
        Forgery::Expired => build(host, good, route, mode, -7200),
        Forgery::FutureDated => build(host, good, route, mode, 7200),
        Forgery::UnsignedHeader(k, v) => {
            if route.headers.iter().any(|(h, _)| h.eq_ignore_ascii_case(k)) {
                // Signed already: adding it again would be the honest request.
                return None;
            }
            let mut w = build(host, good, route, mode, 0);
            w.headers.push((k.into(), v.into()));
            w
        }
        Forgery::EncodedExpiry => {
            if mode != Mode::Presigned {
                return None;
            }
            // Signed for ten years, with the parameter's name percent-encoded in the URL: the
            // signature holds (it is computed over decoded names), only the spelling differs.
            let mut w = build(host, good, route, mode, 0);
            let extra: Vec<(&str, &str)> = route
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let url = good.presign_with(
                host,
                route.method,
                &route.path,
                &route.query,
                &extra,
                315_360_000,
                &amz_date(0),
            );
            w.target = url.replace("X-Amz-Expires=", "X-Amz-Expire%73=");
            w
        }
        Forgery::SigV2 => {
            if !route.query.is_empty() || !route.headers.is_empty() {
                return None;
            }
            let mut w = build(host, good, route, Mode::Unsigned, 0);
            if mode == Mode::Presigned {
                let expires = (time::OffsetDateTime::now_utc().unix_timestamp() + 10 * 365 * 86400)
                    .to_string();
                let sig = sigv2(&good.secret, route.method, &expires, &route.path);
                w.target = format!(
                    "{}?AWSAccessKeyId={}&Expires={expires}&Signature={}",
                    route.path,
                    good.access,
                    urlencoding::encode(&sig)
                );
                w.headers = vec![("host".into(), host.into())];
            } else {
                let date = "Tue, 01 Jan 2019 00:00:00 GMT";
                let sig = sigv2(&good.secret, route.method, date, &route.path);
                w.headers = vec![
                    ("host".into(), host.into()),
                    ("date".into(), date.into()),
                    ("authorization".into(), format!("AWS {}:{sig}", good.access)),
                ];
            }
            w
        }
        Forgery::Mixed => {
            let mut w = build(host, good, route, mode, 0);
            if mode == Mode::Presigned {
                let header = build(host, good, route, Mode::Unsigned, 0);
                w.headers
                    .extend(header.headers.into_iter().filter(|(k, _)| k != "host"));
            } else {
                let url = good.presign_with(
                    host,
                    route.method,
                    &route.path,
                    &route.query,
                    &[],
                    600,
                    &amz_date(0),
                );
                w.target = url;
            }
            w
        }
        Forgery::ReplayedChunk => {
            if mode != Mode::Streaming {
                return None;
            }
            // The chunks signed for another key, sent with this request's head.
            let mut other = route.clone();
            other.path = format!("{}-elsewhere", route.path);
            let donor = build(host, good, &other, mode, 0);
            let mut w = build(host, good, route, mode, 0);
            w.body = donor.body;
            w
        }
    };
    Some(w)
}

fn error_code(text: &str) -> Option<&str> {
    let (_, rest) = text.split_once("<Code>")?;
    Some(rest.split_once("</Code>")?.0)
}

fn fire(addr: std::net::SocketAddr, w: &Wire) -> (u16, String) {
    send(addr, w.method, &w.target, &w.headers, &w.body)
}

/// Everything a forgery could have changed: buckets, every object's ETag and size, the secret's
/// bytes, the uploads in progress and their parts.
async fn snapshot(s3: &aws_sdk_s3::Client) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let buckets = s3.list_buckets().send().await.unwrap();
    for b in buckets.buckets() {
        let name = b.name().unwrap().to_owned();
        out.insert(format!("bucket {name}"), String::new());
        let list = s3.list_objects_v2().bucket(&name).send().await.unwrap();
        for o in list.contents() {
            out.insert(
                format!("object {name}/{}", o.key().unwrap()),
                format!("{:?} {:?}", o.e_tag(), o.size()),
            );
        }
        let uploads = s3
            .list_multipart_uploads()
            .bucket(&name)
            .send()
            .await
            .unwrap();
        for u in uploads.uploads() {
            let parts = s3
                .list_parts()
                .bucket(&name)
                .key(u.key().unwrap())
                .upload_id(u.upload_id().unwrap())
                .send()
                .await
                .unwrap();
            out.insert(
                format!(
                    "upload {name}/{} {}",
                    u.key().unwrap(),
                    u.upload_id().unwrap()
                ),
                format!("{} parts", parts.parts().len()),
            );
        }
    }
    let secret = s3
        .get_object()
        .bucket(SECRET_BUCKET)
        .key(SECRET_KEY)
        .send()
        .await
        .unwrap();
    let bytes = secret.body.collect().await.unwrap().into_bytes();
    assert_eq!(bytes.as_ref(), SECRET);
    out
}

/// The two buckets and the secret record; a signer with the cluster's key.
async fn seeded(cluster: &Cluster, s3: &aws_sdk_s3::Client) -> Signer {
    for b in [SECRET_BUCKET, DROP] {
        s3.create_bucket().bucket(b).send().await.unwrap();
    }
    s3.put_object()
        .bucket(SECRET_BUCKET)
        .key(SECRET_KEY)
        .body(ByteStream::from_static(SECRET))
        .send()
        .await
        .unwrap();
    let (access, secret) = cluster.credentials();
    Signer::new(access, secret)
}

async fn new_upload(s3: &aws_sdk_s3::Client, key: &str) -> String {
    new_upload_in(s3, DROP, key).await
}

async fn upload_with_part(s3: &aws_sdk_s3::Client, key: &str) -> (String, String) {
    let id = new_upload(s3, key).await;
    let part = s3
        .upload_part()
        .bucket(DROP)
        .key(key)
        .upload_id(&id)
        .part_number(1)
        .body(ByteStream::from_static(b"one part"))
        .send()
        .await
        .unwrap();
    (id, part.e_tag().unwrap().to_owned())
}

async fn targets(s3: &aws_sdk_s3::Client, tag: &str) -> Targets {
    let delete_key = format!("existing-{tag}");
    s3.put_object()
        .bucket(DROP)
        .key(&delete_key)
        .body(ByteStream::from_static(b"kept"))
        .send()
        .await
        .unwrap();
    let delete_bucket = format!("scratch-{tag}");
    s3.create_bucket()
        .bucket(&delete_bucket)
        .send()
        .await
        .unwrap();
    let complete_key = format!("mp-done-{tag}");
    let (complete_id, etag) = upload_with_part(s3, &complete_key).await;
    let abort_key = format!("mp-abort-{tag}");
    let abort_id = new_upload(s3, &abort_key).await;
    Targets {
        put_key: format!("slot-42-{tag}"),
        copy_key: format!("slot-43-{tag}"),
        delete_key,
        new_bucket: format!("new-{tag}"),
        delete_bucket,
        part_upload: new_upload(s3, "mp").await,
        complete: (complete_key, complete_id, etag),
        abort: (abort_key, abort_id),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_route_in_every_payload_mode_refuses_every_forgery_and_changes_nothing() {
    within(900, async {
        let cluster: Cluster = started_cluster("").await;
        let s3 = cluster.s3_client(1);
        let addr = cluster.s3_addr();
        let host = addr.to_string();
        let good = seeded(&cluster, &s3).await;

        // Honest: each route in each mode succeeds, on scratch targets of its own.
        let mut honest = 0;
        for mode in MODES {
            let t = targets(&s3, &format!("{mode:?}").to_ascii_lowercase()).await;
            for route in routes(&t).iter().filter(|r| r.applies(mode)) {
                let w = build(&host, &good, route, mode, 0);
                let (code, text) = tokio::task::block_in_place(|| fire(addr, &w));
                assert!(
                    (200..300).contains(&code),
                    "honest {} in {mode:?} answered {code}: {text}",
                    route.name
                );
                honest += 1;
            }
        }

        // Forged: the real targets.
        let t = targets(&s3, "real").await;
        let before = snapshot(&s3).await;
        let mut tried = 0;
        for route in routes(&t) {
            for mode in MODES.into_iter().filter(|m| route.applies(*m)) {
                for forgery in FORGERIES {
                    let Some(w) = forge(&host, &good, &route, mode, forgery) else {
                        continue;
                    };
                    let (code, text) = tokio::task::block_in_place(|| fire(addr, &w));
                    let what = format!("{} in {mode:?} with {forgery:?}", route.name);
                    assert!((400..500).contains(&code), "{what} answered {code}: {text}");
                    assert!(
                        !text.contains("SECRETROW1"),
                        "{what} showed the secret record: {text}"
                    );
                    if route.method != "HEAD" {
                        let c = error_code(&text).unwrap_or("none");
                        assert!(
                            AUTH_CODES.contains(&c),
                            "{what} answered {code} {c}, not an authentication error: {text}"
                        );
                    }
                    tried += 1;
                }
            }
        }

        // Anonymous, on every route (implemented or not): 403 before routing.
        for route in routes(&t)
            .into_iter()
            .chain([Route::new("GetBucketAcl", "GET", format!("/{DROP}")).query("acl", "")])
            .chain([Route::new("GetBucketCors", "GET", format!("/{DROP}")).query("cors", "")])
        {
            let mut headers = vec![("host".to_string(), host.clone())];
            headers.extend(route.headers.iter().cloned());
            let target = with_query(&route.path, &route.query);
            let (code, text) =
                tokio::task::block_in_place(|| send(addr, route.method, &target, &headers, &route.body));
            assert_eq!(code, 403, "anonymous {}: {text}", route.name);
            tried += 1;
        }

        // A browser form upload, signed or not, is not served.
        let form = "--XX\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nslot-44\r\n\
                    --XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nform body\r\n--XX--\r\n";
        let (code, text) = tokio::task::block_in_place(|| {
            send(
                addr,
                "POST",
                &format!("/{DROP}"),
                &[
                    ("host".into(), host.clone()),
                    ("content-type".into(), "multipart/form-data; boundary=XX".into()),
                ],
                form.as_bytes(),
            )
        });
        assert_eq!(code, 501, "{text}");
        tried += 1;

        // The admin API without its token, or with another.
        let (admin, token) = cluster.gateway_admin();
        for auth in ["", "Bearer not-the-token", "Basic YWRtaW46YWRtaW4="] {
            for (method, path) in [("GET", "/v1/status"), ("POST", "/v1/heal"), ("POST", "/v1/scrub")] {
                let mut headers = vec![("host".to_string(), admin.to_string())];
                if !auth.is_empty() {
                    headers.push(("authorization".into(), auth.into()));
                }
                let (code, _) =
                    tokio::task::block_in_place(|| send(admin, method, path, &headers, b""));
                assert!(code == 401 || code == 403, "admin {method} {path} with {auth:?}: {code}");
                tried += 1;
            }
        }
        assert!(!token.is_empty());

        let after = snapshot(&s3).await;
        assert_eq!(before, after, "a forgery changed what is stored");
        println!("attack corpus: {honest} honest requests served, {tried} forged requests refused");
        assert!(tried > 500, "only {tried} cases");
    }).await;
}

/// Reads until the peer closes or `limit` passes; returns what came.
fn read_all(s: &mut std::net::TcpStream, limit: Duration) -> String {
    use std::io::Read as _;
    s.set_read_timeout(Some(limit)).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn head_of(
    signer: &Signer,
    host: &str,
    method: &str,
    path: &str,
    query: &[(String, String)],
    extra: &[(&str, &str)],
    payload: &str,
) -> String {
    let s = signer.sign(host, method, path, query, extra, payload, &amz_date(0));
    let mut req = format!("{method} {} HTTP/1.1\r\n", with_query(path, query));
    for (k, v) in &s.headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn issue_13_each_finding_is_refused_the_way_aws_refuses_it() {
    within(300, async {
        let mut cluster = started_cluster("s3_body_idle_timeout_secs = 2").await;
        let s3 = cluster.s3_client(1);
        let addr = cluster.s3_addr();
        let host = addr.to_string();
        let good = seeded(&cluster, &s3).await;
        let (access, secret) = (good.access.clone(), good.secret.clone());
        let fire = |w: &Wire| tokio::task::block_in_place(|| fire(addr, w));

        // 1. A presigned upload link with an injected copy source copies nothing.
        let route = Route::new("PutObject", "PUT", format!("/{DROP}/slot-42"));
        let mut w = build(&host, &good, &route, Mode::Presigned, 0);
        w.headers
            .push(("x-amz-copy-source".into(), COPY_SOURCE.into()));
        let (code, text) = fire(&w);
        assert_eq!(code, 403, "{text}");
        assert!(
            text.contains("not signed") && text.contains("x-amz-copy-source"),
            "{text}"
        );
        let w = build(
            &host,
            &good,
            &Route::new("GetObject", "GET", format!("/{DROP}/slot-42")),
            Mode::Presigned,
            0,
        );
        let (code, text) = fire(&w);
        assert_eq!(code, 404, "{text}");

        // 2. SigV2, with a date from 2019 or none that parses: refused, naming SigV4.
        for date in ["Tue, 01 Jan 2019 00:00:00 GMT", "not a date"] {
            let path = format!("/{SECRET_BUCKET}/{SECRET_KEY}");
            let sig = sigv2(&secret, "GET", date, &path);
            let (code, text) = tokio::task::block_in_place(|| {
                send(
                    addr,
                    "GET",
                    &path,
                    &[
                        ("host".into(), host.clone()),
                        ("date".into(), date.into()),
                        ("authorization".into(), format!("AWS {access}:{sig}")),
                    ],
                    b"",
                )
            });
            assert_eq!(code, 400, "{text}");
            assert!(
                text.contains("AWS4-HMAC-SHA256") && !text.contains("SECRETROW1"),
                "{text}"
            );
        }

        // 3. Mixed header and query authentication: 400.
        let mut w = build(
            &host,
            &good,
            &Route::new("GetObject", "GET", format!("/{SECRET_BUCKET}/{SECRET_KEY}")),
            Mode::Signed,
            0,
        );
        w.target.push_str("?X-Amz-Signature=00");
        let (code, text) = fire(&w);
        assert_eq!(code, 400, "{text}");
        assert_eq!(error_code(&text), Some("InvalidArgument"), "{text}");

        // 5a. DeleteObjects needs Content-MD5 or a checksum, and a right one.
        let xml = format!("<Delete><Object><Key>{SECRET_KEY}</Key></Object></Delete>");
        let q = vec![("delete".to_string(), String::new())];
        for md5 in [None, Some(B64.encode_to_string(md5_of(b"something else")))] {
            let mut route = Route::new("DeleteObjects", "POST", format!("/{SECRET_BUCKET}"))
                .body(xml.as_bytes());
            route.query = q.clone();
            if let Some(m) = &md5 {
                route = route.header("content-md5", m);
            }
            let (code, text) = fire(&build(&host, &good, &route, Mode::Signed, 0));
            assert_eq!(code, 400, "DeleteObjects with Content-MD5 {md5:?}: {text}");
        }
        // 5b. A DeleteObjects or Complete body that differs from its signed hash: 400, not 500.
        let route = Route::new("DeleteObjects", "POST", format!("/{SECRET_BUCKET}"))
            .query("delete", "")
            .header("content-md5", &B64.encode_to_string(md5_of(xml.as_bytes())))
            .body(xml.as_bytes());
        let mut w = build(&host, &good, &route, Mode::Signed, 0);
        w.body = xml.replace("population", "populatioN").into_bytes();
        let (code, text) = fire(&w);
        assert_eq!(code, 400, "{text}");
        let upload = new_upload_in(&s3, DROP, "mp-hash").await;
        let route = Route::new(
            "CompleteMultipartUpload",
            "POST",
            format!("/{DROP}/mp-hash"),
        )
        .query("uploadId", &upload)
        .body(b"<CompleteMultipartUpload></CompleteMultipartUpload>");
        let mut w = build(&host, &good, &route, Mode::Signed, 0);
        w.body = b"<CompleteMultipartUpload><Part></Part></CompleteMultipart>".to_vec();
        let (code, text) = fire(&w);
        assert_eq!(code, 400, "{text}");
        assert_eq!(
            error_code(&text),
            Some("XAmzContentSHA256Mismatch"),
            "{text}"
        );
        // The secret is still there.
        assert_eq!(
            s3.get_object()
                .bucket(SECRET_BUCKET)
                .key(SECRET_KEY)
                .send()
                .await
                .unwrap()
                .body
                .collect()
                .await
                .unwrap()
                .into_bytes()
                .as_ref(),
            SECRET
        );

        // 5c. Anonymous requests to routes exclave does not implement: 403, not 501.
        for q in ["acl", "cors", "website", "replication"] {
            let (code, text) = tokio::task::block_in_place(|| {
                send(
                    addr,
                    "GET",
                    &format!("/{DROP}?{q}"),
                    &[("host".into(), host.clone())],
                    b"",
                )
            });
            assert_eq!(code, 403, "anonymous ?{q}: {text}");
        }

        // 5d. A body that stops arriving: 400 RequestTimeout after the idle limit, counted.
        let payload = sha256_hex(&[b'x'; 1000]);
        let mut req = head_of(
            &good,
            &host,
            "PUT",
            &format!("/{DROP}/trickled"),
            &[],
            &[],
            &payload,
        );
        req.push_str("content-length: 1000\r\n\r\nxxxxxxxxxx");
        let text = tokio::task::block_in_place(|| {
            use std::io::Write as _;
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(req.as_bytes()).unwrap();
            read_all(&mut s, Duration::from_secs(20))
        });
        assert!(text.starts_with("HTTP/1.1 400"), "{text}");
        assert!(text.contains("RequestTimeout"), "{text}");
        let (admin, token) = cluster.gateway_admin();
        let (_, metrics) = tokio::task::block_in_place(|| {
            send(
                admin,
                "GET",
                "/metrics",
                &[
                    ("host".into(), admin.to_string()),
                    ("authorization".into(), format!("Bearer {token}")),
                ],
                b"",
            )
        });
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("exclave_s3_body_stalls_total 1")),
            "{metrics}"
        );
        assert!(
            metrics.contains("exclave_s3_refused_total{reason=\"unsigned_header\"} 1"),
            "{metrics}"
        );

        // 5e. A client that shuts its write side after the whole request gets its answer.
        let body = b"half-closed upload";
        let mut req = head_of(
            &good,
            &host,
            "PUT",
            &format!("/{DROP}/half"),
            &[],
            &[],
            &sha256_hex(body),
        );
        req.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
        let text = tokio::task::block_in_place(|| {
            use std::io::Write as _;
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(req.as_bytes()).unwrap();
            s.write_all(body).unwrap();
            s.shutdown(std::net::Shutdown::Write).unwrap();
            read_all(&mut s, Duration::from_secs(20))
        });
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");

        // 5f. Bucket names current S3 rules forbid: refused, naming the rule.
        for name in ["sthree-land", "land-s3alias", "land--ol-s3", "a.-b"] {
            let err = s3.create_bucket().bucket(name).send().await.unwrap_err();
            let raw = err.raw_response().unwrap();
            assert_eq!(raw.status().as_u16(), 400, "{name}");
            let text = String::from_utf8_lossy(raw.body().bytes().unwrap()).into_owned();
            assert!(
                text.contains("InvalidBucketName") && !text.contains("Unknown"),
                "{name}: {text}"
            );
            assert_eq!(
                text.matches("The specified bucket is not valid").count(),
                1,
                "{name}: said once: {text}"
            );
        }

        // 5g. s3cmd's region `US`: AuthorizationHeaderMalformed naming the region to use.
        let w = build(
            &host,
            &good.scoped("US", "s3"),
            &Route::new("ListBuckets", "GET", "/".into()),
            Mode::Signed,
            0,
        );
        let (code, text) = fire(&w);
        assert_eq!(code, 400, "{text}");
        assert_eq!(
            error_code(&text),
            Some("AuthorizationHeaderMalformed"),
            "{text}"
        );
        assert!(
            text.contains("region &apos;US&apos; is wrong; expecting &apos;us-east-1&apos;"),
            "{text}"
        );

        // 5h. Refusals are logged with their reason, never the signature.
        let log = std::fs::read_to_string(cluster.root().join("gateway/exclaved.log")).unwrap();
        for reason in [
            "unsigned_header",
            "sigv2",
            "mixed_auth",
            "anonymous",
            "wrong_region",
            "bucket_name",
            "body_stalled",
            "body_mismatch",
        ] {
            assert!(log.contains(reason), "no refusal logged as {reason}");
        }
        assert!(log.contains("SignatureDoesNotMatch") || log.contains("request refused"));
        assert!(!log.contains(&secret), "the log holds the secret key");

        // 5i. With too few sites, the 503 names no node address.
        for i in [1, 2] {
            cluster.kill_node(i);
        }
        let err = cluster
            .s3_client(1)
            .put_object()
            .bucket(DROP)
            .key("no-quorum")
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap_err();
        let raw = err.raw_response().unwrap();
        assert_eq!(raw.status().as_u16(), 503);
        let text = String::from_utf8_lossy(raw.body().bytes().unwrap()).into_owned();
        assert!(text.contains("sites"), "{text}");
        assert!(
            !text.contains("127.0.0.1"),
            "a 503 shows node addresses: {text}"
        );
    })
    .await;
}

async fn new_upload_in(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> String {
    s3.create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_owned()
}

/// Issue 18: two registries' keys. The first (owner of the secret bucket and the drop box)
/// serves every route in every payload mode; the second, owner of a bucket of its own, signs
/// the very same requests honestly and is refused every one with 403 AccessDenied (ListBuckets
/// answers, without the first's buckets), copies out of the first's bucket into its own
/// included; and nothing of the first's changed. Neither key is the admin token, nor the
/// reverse.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_key_reaches_nothing_of_the_first_by_any_route_or_payload_mode() {
    within(900, async {
        let cluster: Cluster = started_cluster("").await;
        let s3 = cluster.s3_client(1);
        let addr = cluster.s3_addr();
        let host = addr.to_string();
        seeded(&cluster, &s3).await;
        const OWN: &str = "business-own";
        s3.create_bucket().bucket(OWN).send().await.unwrap();
        let (land_id, land_secret) = cluster.make_key("land");
        let (biz_id, biz_secret) = cluster.make_key("business");
        let land = Signer::new(land_id.clone(), land_secret.clone());
        let biz = Signer::new(biz_id.clone(), biz_secret.clone());
        tokio::task::block_in_place(|| {
            cluster.allow("business", OWN, &["--owner"]);
            cluster.allow("land", SECRET_BUCKET, &["--owner"]);
            cluster.allow("land", DROP, &["--owner"]);
            for tag in MODES
                .iter()
                .map(|m| format!("{m:?}").to_ascii_lowercase())
                .chain(["real".to_owned()])
            {
                cluster.allow("land", &format!("new-{tag}"), &["--owner"]);
                cluster.allow("land", &format!("scratch-{tag}"), &["--owner"]);
            }
        });

        // The first key: every route in every mode succeeds (so the second's refusals are
        // its grants' doing).
        let mut honest = 0;
        for mode in MODES {
            let t = targets(&s3, &format!("{mode:?}").to_ascii_lowercase()).await;
            for route in routes(&t).iter().filter(|r| r.applies(mode)) {
                let w = build(&host, &land, route, mode, 0);
                let (code, text) = tokio::task::block_in_place(|| fire(addr, &w));
                assert!(
                    (200..300).contains(&code),
                    "the first key's {} in {mode:?} answered {code}: {text}",
                    route.name
                );
                honest += 1;
            }
        }

        // The second key: the same requests on the real targets, and copies into its own.
        let t = targets(&s3, "real").await;
        let own_upload = new_upload_in(&s3, OWN, "mp").await;
        let into_own = [
            Route::new("CopyObject", "PUT", format!("/{OWN}/stolen"))
                .header("x-amz-copy-source", COPY_SOURCE),
            Route::new("UploadPartCopy", "PUT", format!("/{OWN}/mp"))
                .query("partNumber", "1")
                .query("uploadId", &own_upload)
                .header("x-amz-copy-source", COPY_SOURCE),
        ];
        let before = snapshot(&s3).await;
        let mut refused = 0;
        for route in routes(&t).into_iter().chain(into_own) {
            for mode in MODES.into_iter().filter(|m| route.applies(*m)) {
                let w = build(&host, &biz, &route, mode, 0);
                let (code, text) = tokio::task::block_in_place(|| fire(addr, &w));
                let what = format!("the second key's {} in {mode:?}", route.name);
                assert!(
                    !text.contains("SECRETROW1"),
                    "{what} showed the secret: {text}"
                );
                if route.name == "ListBuckets" {
                    assert_eq!(code, 200, "{what}: {text}");
                    assert!(text.contains(OWN), "{what} hides its own bucket: {text}");
                    for hidden in [SECRET_BUCKET, DROP] {
                        assert!(!text.contains(hidden), "{what} lists {hidden}: {text}");
                    }
                    continue;
                }
                assert_eq!(code, 403, "{what}: {text}");
                if route.method != "HEAD" {
                    assert_eq!(error_code(&text), Some("AccessDenied"), "{what}: {text}");
                }
                refused += 1;
            }
        }
        assert_eq!(
            before,
            snapshot(&s3).await,
            "the second key changed the first's data"
        );

        // Keys and the admin token never stand in for each other.
        let (admin, token) = cluster.gateway_admin();
        let get = Route::new("GetObject", "GET", format!("/{SECRET_BUCKET}/{SECRET_KEY}"));
        for signer in [
            Signer::new(token.clone(), token.clone()),
            Signer::new(land_id.clone(), token),
        ] {
            let w = build(&host, &signer, &get, Mode::Signed, 0);
            let (code, text) = tokio::task::block_in_place(|| fire(addr, &w));
            assert_eq!(code, 403, "the admin token as an S3 key: {text}");
            let c = error_code(&text).unwrap_or("none");
            assert!(
                c == "InvalidAccessKeyId" || c == "SignatureDoesNotMatch",
                "the admin token as an S3 key: {c}"
            );
        }
        for secret in [&land_secret, &biz_secret, &land_id] {
            let headers = vec![
                ("host".to_string(), admin.to_string()),
                ("authorization".to_string(), format!("Bearer {secret}")),
            ];
            for (method, path) in [
                ("GET", "/v1/status"),
                ("GET", "/v1/keys"),
                ("POST", "/v1/keys?name=x"),
            ] {
                let (code, _) =
                    tokio::task::block_in_place(|| send(admin, method, path, &headers, b""));
                assert_eq!(code, 401, "an S3 key as the admin token: {method} {path}");
            }
        }
        println!(
            "two keys: {honest} requests of the first served, {refused} of the second refused"
        );
        assert!(refused >= 60, "only {refused} cases");
    })
    .await;
}
