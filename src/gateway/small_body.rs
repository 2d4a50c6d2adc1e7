//! Request bodies that `s3s` parses whole (the XML of DeleteObjects, CompleteMultipartUpload and
//! bucket or object configuration): read here first, bounded and with the body idle limit, and
//! checked against the SHA-256 the request signed, its Content-MD5, and (DeleteObjects, where S3
//! requires one of them) its Content-MD5 or `x-amz-checksum-*` header. A body that does not
//! match is refused with 400 and the reason, before anything is parsed or changed.

use std::time::Duration;

use aws_lc_rs::digest;
use bytes::{Bytes, BytesMut};
use http::Method;
use http::request::Parts;
use http_body_util::BodyExt as _;
use md5::Digest as _;
use s3s::S3Error;
use s3s::dto::Checksum as Sums;

use super::checksum::{Wanted, check_content_md5};
use super::error::S3Fault;
use crate::core::ids::hex;

/// Whether `req` carries a body `s3s` reads whole: every POST, and a PUT on a bucket or on an
/// object's sub-resource (`?tagging`, `?retention`, ...), but not an object or part upload.
pub(crate) fn is_small(req: &Parts) -> bool {
    if streaming(req) {
        return false;
    }
    if req.method == Method::POST {
        return true;
    }
    if req.method != Method::PUT {
        return false;
    }
    let path = req.uri.path().trim_start_matches('/');
    let on_object = path.split_once('/').is_some_and(|(_, key)| !key.is_empty());
    if !on_object {
        return true;
    }
    // An object PUT carries XML only for these sub-resources; anything else (an upload, a part,
    // SDK markers such as `x-id=PutObject`) streams.
    let xml_subresources = ["tagging", "retention", "legal-hold", "acl"];
    req.uri.query().unwrap_or("").split('&').any(|p| {
        let name = p.split_once('=').map_or(p, |(k, _)| k);
        xml_subresources.contains(&name)
    })
}

/// Whether the body is aws-chunked (decoded by `s3s`, not here).
fn streaming(req: &Parts) -> bool {
    req.headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("STREAMING-"))
}

/// Why a small body was refused.
pub(crate) struct Refused {
    pub(crate) error: S3Error,
    /// The body stopped arriving (counted as a stall).
    pub(crate) stalled: bool,
}

fn refuse(fault: S3Fault) -> Refused {
    Refused {
        stalled: matches!(fault, S3Fault::RequestTimeout(_)),
        error: fault.into(),
    }
}

/// Reads the whole body (at most `limit` bytes, `idle` between pieces) and checks it.
pub(crate) async fn read_checked(
    req: &Parts,
    mut body: hyper::body::Incoming,
    limit: usize,
    idle: Duration,
) -> Result<Bytes, Refused> {
    let mut buf = BytesMut::new();
    loop {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => {
                return Err(refuse(S3Fault::RequestTimeout(idle)));
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(refuse(S3Fault::IncompleteBody(format!(
                    "reading the request body: {e}"
                ))));
            }
            Ok(Some(Ok(f))) => f,
        };
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(refuse(S3Fault::MaxMessageLengthExceeded(format!(
                    "Your request was too big: this request's body is at most {limit} bytes."
                ))));
            }
            buf.extend_from_slice(&data);
        }
    }
    let body = buf.freeze();
    check(req, &body)?;
    Ok(body)
}

fn header<'a>(req: &'a Parts, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

pub(crate) fn check(req: &Parts, body: &[u8]) -> Result<(), Refused> {
    if let Some(want) = header(req, "x-amz-content-sha256")
        && want.len() == 64
        && want.bytes().all(|b| b.is_ascii_hexdigit())
        && !want.eq_ignore_ascii_case(&hex(digest::digest(&digest::SHA256, body).as_ref()))
    {
        return Err(refuse(S3Fault::ContentSha256Mismatch));
    }
    let md5 = header(req, "content-md5");
    if md5.is_some() {
        let got = hex(&md5::Md5::digest(body));
        check_content_md5(md5, &got).map_err(refuse)?;
    }
    let delete_objects = req.method == Method::POST
        && req
            .uri
            .query()
            .unwrap_or("")
            .split('&')
            .any(|p| p == "delete" || p.starts_with("delete="));
    if delete_objects {
        let given = Sums {
            checksum_crc32: header(req, "x-amz-checksum-crc32").map(str::to_owned),
            checksum_crc32c: header(req, "x-amz-checksum-crc32c").map(str::to_owned),
            checksum_sha1: header(req, "x-amz-checksum-sha1").map(str::to_owned),
            checksum_sha256: header(req, "x-amz-checksum-sha256").map(str::to_owned),
            checksum_crc64nvme: header(req, "x-amz-checksum-crc64nvme").map(str::to_owned),
            ..Default::default()
        };
        let has_sum = given.checksum_crc32.is_some()
            || given.checksum_crc32c.is_some()
            || given.checksum_sha1.is_some()
            || given.checksum_sha256.is_some()
            || given.checksum_crc64nvme.is_some();
        if md5.is_none() && !has_sum {
            return Err(refuse(S3Fault::InvalidRequest(
                "Missing required header for this request: Content-MD5 or x-amz-checksum-*".into(),
            )));
        }
        if has_sum {
            let wanted = Wanted::new(None, given, &http::HeaderMap::new()).map_err(refuse)?;
            let mut hasher = wanted.hasher();
            hasher.update(body);
            wanted.verify(&hasher.finalize(), None).map_err(refuse)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::gateway::test_parts as parts;

    #[test]
    fn only_bodies_s3s_reads_whole_are_small() {
        assert!(is_small(&parts("POST", "/b?delete", &[])));
        assert!(is_small(&parts("PUT", "/b", &[])));
        assert!(is_small(&parts("PUT", "/b?versioning", &[])));
        assert!(is_small(&parts("PUT", "/b/k?tagging", &[])));
        assert!(!is_small(&parts("PUT", "/b/k", &[])));
        assert!(!is_small(&parts("PUT", "/b/k?x-id=PutObject", &[])));
        assert!(!is_small(&parts(
            "PUT",
            "/b/k?partNumber=1&uploadId=x",
            &[]
        )));
        assert!(!is_small(&parts(
            "POST",
            "/b/k?uploadId=x",
            &[("x-amz-content-sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER")]
        )));
        assert!(!is_small(&parts("GET", "/b/k", &[])));
    }

    #[test]
    fn delete_objects_needs_a_matching_md5_or_checksum() {
        let body = b"<Delete><Object><Key>k</Key></Object></Delete>";
        let none = parts("POST", "/b?delete", &[]);
        assert!(check(&none, body).is_err());
        let md5 = base64_simd::STANDARD.encode_to_string(md5::Md5::digest(body));
        assert!(check(&parts("POST", "/b?delete", &[("content-md5", &md5)]), body).is_ok());
        let wrong = base64_simd::STANDARD.encode_to_string(md5::Md5::digest(b"other"));
        let e = check(
            &parts("POST", "/b?delete", &[("content-md5", &wrong)]),
            body,
        )
        .err()
        .unwrap();
        assert_eq!(e.error.code(), &s3s::S3ErrorCode::BadDigest);
        let crc = base64_simd::STANDARD.encode_to_string(crc32fast::hash(body).to_be_bytes());
        let ok = parts("POST", "/b?delete", &[("x-amz-checksum-crc32", &crc)]);
        assert!(check(&ok, body).is_ok());
        let bad = parts("POST", "/b?delete", &[("x-amz-checksum-crc32", "AAAAAA==")]);
        assert!(check(&bad, body).is_err());
    }

    #[test]
    fn a_body_that_differs_from_its_signed_hash_is_a_client_error() {
        let body = b"<CompleteMultipartUpload/>";
        let other = hex(digest::digest(&digest::SHA256, b"x").as_ref());
        let e = check(
            &parts(
                "POST",
                "/b/k?uploadId=u",
                &[("x-amz-content-sha256", &other)],
            ),
            body,
        )
        .err()
        .unwrap();
        assert_eq!(e.error.status_code(), Some(http::StatusCode::BAD_REQUEST));
        let right = hex(digest::digest(&digest::SHA256, body).as_ref());
        assert!(
            check(
                &parts(
                    "POST",
                    "/b/k?uploadId=u",
                    &[("x-amz-content-sha256", &right)]
                ),
                body
            )
            .is_ok()
        );
    }
}
