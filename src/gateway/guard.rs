//! The first gate of every S3 request, before `s3s` parses, routes or verifies it.
//!
//! A request gets past only if it is authenticated with SigV4 in exactly one form (the
//! `Authorization` header, or presigned query parameters), names this gateway's region and the
//! `s3` service, signs every `x-amz-*` header that changes what it does, and, presigned, lives at
//! most 7 days. Everything else is refused here with AWS's error, so no route (implemented or
//! not) is reached by a request whose meaning the signature does not cover:
//! - SigV2 in any form (header, presigned URL): it signs no body and its time is unchecked.
//! - Anonymous requests: 403 before routing, so a probe learns nothing of the routes.
//! - POST form uploads: not supported (501), whatever their signature.
//!
//! Query parameter names are compared after percent-decoding (`X-Amz-Expire%73` is
//! `X-Amz-Expires`), since that is how the signature check reads them.

use std::borrow::Cow;
use std::collections::BTreeSet;

/// Longest presigned URL lifetime S3 accepts: 7 days.
pub const MAX_PRESIGNED_EXPIRY_SECS: u64 = 7 * 24 * 3600;

use http::request::Parts;
use http::{HeaderMap, Method};
use s3s::S3Error;

use super::error::S3Fault;

/// `x-amz-*` headers a request may carry unsigned: they inform, and change nothing that is
/// stored or returned. SDKs leave them out of presigned signatures.
const UNSIGNED_ALLOWED: &[&str] = &["x-amz-user-agent", "x-amz-checksum-mode"];

/// Why a request was refused at the gate; the label goes into the log and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// No authentication at all.
    Anonymous,
    /// Signature Version 2, in a header or a presigned URL.
    SigV2,
    /// Neither SigV4 nor SigV2: an authorization scheme nobody speaks.
    UnknownScheme,
    /// Header and query authentication together.
    MixedAuth,
    /// The `Authorization` header or the presigned parameters do not parse.
    Malformed,
    /// The credential scope names another region.
    WrongRegion,
    /// The credential scope names another service.
    WrongService,
    /// Presigned for longer than 7 days.
    ExpiryTooLong,
    /// A header whose meaning exclave does not honour (a lock, SSE-C or SSE-KMS, a tag, an
    /// ACL grant).
    Unhonoured,
    /// An `x-amz-*` header outside the signature.
    UnsignedHeader,
    /// A browser form upload (POST with multipart/form-data).
    FormUpload,
    /// A bucket name S3's rules forbid.
    BucketName,
    /// A `Content-MD5` header with nothing in it.
    EmptyDigest,
}

impl Reason {
    /// The label in logs and metrics.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Anonymous => "anonymous",
            Self::SigV2 => "sigv2",
            Self::UnknownScheme => "unknown_scheme",
            Self::MixedAuth => "mixed_auth",
            Self::Malformed => "malformed_auth",
            Self::WrongRegion => "wrong_region",
            Self::WrongService => "wrong_service",
            Self::ExpiryTooLong => "expiry_too_long",
            Self::Unhonoured => "unhonoured_header",
            Self::UnsignedHeader => "unsigned_header",
            Self::FormUpload => "form_upload",
            Self::BucketName => "bucket_name",
            Self::EmptyDigest => "empty_content_md5",
        }
    }
}

/// A request the gate refused: why, and the S3 error the client gets.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) reason: Reason,
    pub(crate) error: S3Error,
}

impl Refusal {
    fn new(reason: Reason, fault: S3Fault) -> Self {
        Self {
            reason,
            error: fault.into(),
        }
    }
}

/// What the gate checks against: the region this gateway serves.
#[derive(Debug, Clone)]
pub(crate) struct Gate {
    region: String,
}

impl Gate {
    pub(crate) fn new(region: String) -> Self {
        Self { region }
    }

    /// Lets `req` through, or says why not.
    pub(crate) fn screen(&self, req: &Parts) -> Result<(), Refusal> {
        if req.method == Method::POST && is_form(&req.headers) {
            return Err(Refusal::new(Reason::FormUpload, S3Fault::NotImplemented("POST form uploads (browser-based uploads) are not supported here; upload with a \
                 SigV4-signed or presigned PUT"
                    .into())));
        }
        let query = decoded_query(req.uri.query().unwrap_or(""));
        let header = match req.headers.get(http::header::AUTHORIZATION) {
            Some(v) => Some(v.to_str().map_err(|_| malformed_header("is not ASCII"))?),
            None => None,
        };
        let has = |name: &str| query.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
        let v4_query = ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature"]
            .iter()
            .any(|n| has(n));
        let v2_query = has("AWSAccessKeyId") || has("Signature");
        if header.is_some() && (v4_query || v2_query) {
            return Err(Refusal::new(
                Reason::MixedAuth,
                S3Fault::InvalidArgument(
                    "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, \
                 Signature query string parameter or the Authorization header should be specified"
                        .into(),
                ),
            ));
        }
        if v2_query && !v4_query {
            return Err(sigv2());
        }
        let signed = match header {
            Some(h) => self.header_auth(h)?,
            None if v4_query => self.query_auth(&query)?,
            None => {
                return Err(Refusal::new(
                    Reason::Anonymous,
                    S3Fault::AccessDenied(
                        "anonymous requests are not accepted: sign requests with AWS Signature \
                     Version 4"
                            .into(),
                    ),
                ));
            }
        };
        let presigned = header.is_none();
        let mut unsigned: Vec<&str> = req
            .headers
            .keys()
            .map(http::HeaderName::as_str)
            .filter(|h| h.starts_with("x-amz-"))
            .filter(|h| !signed.contains(*h))
            .filter(|h| !UNSIGNED_ALLOWED.contains(h))
            .filter(|h| !(presigned && *h == "x-amz-content-sha256"))
            .collect();
        if !unsigned.is_empty() {
            unsigned.sort_unstable();
            unsigned.dedup();
            return Err(Refusal::new(
                Reason::UnsignedHeader,
                S3Fault::AccessDenied(format!(
                    "There were headers present in the request which were not signed: {}",
                    unsigned.join(", ")
                )),
            ));
        }
        // Headers, and presigned parameters, that ask for what exclave does not do (every
        // such name is an `x-amz-` one; header names arrive in lower case).
        let headers = req
            .headers
            .iter()
            .filter(|(k, _)| k.as_str().starts_with("x-amz-"))
            .find_map(|(k, v)| unhonoured(k.as_str(), v.to_str().unwrap_or("")));
        let fault = headers.or_else(|| {
            query
                .iter()
                .filter(|(k, _)| k.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("x-amz-")))
                .find_map(|(k, v)| unhonoured(&k.to_ascii_lowercase(), v))
        });
        if let Some(fault) = fault {
            return Err(Refusal::new(Reason::Unhonoured, fault));
        }
        // An empty Content-MD5 is no digest: S3 refuses it rather than skip the check.
        if req
            .headers
            .get_all("content-md5")
            .iter()
            .any(|v| v.as_bytes().iter().all(u8::is_ascii_whitespace))
        {
            return Err(Refusal::new(Reason::EmptyDigest, S3Fault::InvalidDigest));
        }
        check_bucket_name(req)
    }

    /// `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`:
    /// the signed header names, once the scope is ours.
    fn header_auth(&self, value: &str) -> Result<BTreeSet<String>, Refusal> {
        let Some(rest) = value.strip_prefix("AWS4-HMAC-SHA256 ") else {
            if value.starts_with("AWS ") {
                return Err(sigv2());
            }
            return Err(Refusal::new(
                Reason::UnknownScheme,
                S3Fault::InvalidArgument(
                    "Unsupported Authorization Type: use AWS4-HMAC-SHA256".into(),
                ),
            ));
        };
        let mut credential = None;
        let mut signed = None;
        for part in rest.split(',') {
            let part = part.trim();
            if let Some(v) = part.strip_prefix("Credential=") {
                credential = Some(v);
            } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
                signed = Some(v);
            }
        }
        let credential = credential.ok_or_else(|| malformed_header("has no Credential"))?;
        let signed = signed.ok_or_else(|| malformed_header("has no SignedHeaders"))?;
        self.scope(credential, false)?;
        Ok(signed_set(signed))
    }

    /// Presigned SigV4: the signed header names, once the scope is ours and the lifetime at
    /// most 7 days. Each authentication parameter must appear once.
    fn query_auth(&self, query: &[(String, String)]) -> Result<BTreeSet<String>, Refusal> {
        let one = |name: &str| -> Result<Option<&str>, Refusal> {
            let mut found = query.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name));
            let first = found.next();
            if found.next().is_some() {
                return Err(malformed_query(format!("{name} is given more than once")));
            }
            Ok(first.map(|(_, v)| v.as_str()))
        };
        for name in ["X-Amz-Algorithm", "X-Amz-Date", "X-Amz-Signature"] {
            one(name)?;
        }
        if let Some(expires) = one("X-Amz-Expires")? {
            match expires.parse::<u64>() {
                Ok(secs) if secs <= MAX_PRESIGNED_EXPIRY_SECS => {}
                _ => {
                    return Err(Refusal::new(
                        Reason::ExpiryTooLong,
                        S3Fault::AuthorizationQueryParametersError(
                            "X-Amz-Expires must be less than a week (in seconds); that is, the \
                         given X-Amz-Expires must be less than 604800 seconds"
                                .into(),
                        ),
                    ));
                }
            }
        }
        let credential = one("X-Amz-Credential")?
            .ok_or_else(|| malformed_query("X-Amz-Credential is missing".into()))?;
        self.scope(credential, true)?;
        let signed = one("X-Amz-SignedHeaders")?
            .ok_or_else(|| malformed_query("X-Amz-SignedHeaders is missing".into()))?;
        Ok(signed_set(signed))
    }

    /// `AKID/YYYYMMDD/region/service/aws4_request` must name our region and `s3`.
    fn scope(&self, credential: &str, presigned: bool) -> Result<(), Refusal> {
        let parts: Vec<&str> = credential.split('/').collect();
        let [_, _, region, service, "aws4_request"] = parts[..] else {
            let msg = "the credential is not KEY/DATE/REGION/SERVICE/aws4_request".to_owned();
            return Err(if presigned {
                malformed_query(msg)
            } else {
                malformed_header(&msg)
            });
        };
        let fault = |message: String| {
            if presigned {
                S3Fault::AuthorizationQueryParametersError(format!(
                    "Error parsing the X-Amz-Credential parameter; {message}"
                ))
            } else {
                S3Fault::AuthorizationHeaderMalformed(format!(
                    "The authorization header is malformed; {message}"
                ))
            }
        };
        if region != self.region {
            return Err(Refusal::new(
                Reason::WrongRegion,
                fault(format!(
                    "the region '{region}' is wrong; expecting '{}'",
                    self.region
                )),
            ));
        }
        if service != "s3" {
            return Err(Refusal::new(
                Reason::WrongService,
                fault(format!(
                    "incorrect service '{service}'. This endpoint belongs to 's3'."
                )),
            ));
        }
        Ok(())
    }
}

/// The bucket in the request's path must follow S3's naming rules; a new bucket also the rules
/// S3 added later (reserved prefixes and suffixes, a dot beside a hyphen), which existing
/// buckets are not held to.
/// A path-style request's bucket (empty: the service) and the rest of its path.
pub(crate) fn path_bucket(path: &str) -> (&str, &str) {
    let path = path.trim_start_matches('/');
    path.split_once('/').unwrap_or((path, ""))
}

fn check_bucket_name(req: &Parts) -> Result<(), Refusal> {
    let (bucket, rest) = path_bucket(req.uri.path());
    if bucket.is_empty() {
        return Ok(());
    }
    let creating = req.method == Method::PUT && rest.is_empty() && req.uri.query().is_none();
    match bucket_name_problem(bucket, creating) {
        None => Ok(()),
        Some(rule) => Err(Refusal::new(
            Reason::BucketName,
            S3Fault::InvalidBucketName(rule.to_string()),
        )),
    }
}

/// Which of S3's bucket naming rules `name` breaks, if any.
pub(crate) fn bucket_name_problem(name: &str, creating: bool) -> Option<&'static str> {
    let b = name.as_bytes();
    if !(3..=63).contains(&b.len()) {
        return Some("bucket names are 3 to 63 characters long");
    }
    if !b
        .iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-')
    {
        return Some("bucket names use only lower-case letters, digits, '.' and '-'");
    }
    let edge = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !edge(b[0]) || !edge(b[b.len() - 1]) {
        return Some("bucket names begin and end with a letter or a digit");
    }
    if name.contains("..") {
        return Some("bucket names have no two adjacent periods");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return Some("bucket names are not formatted as IP addresses");
    }
    if !creating {
        return None;
    }
    if name.contains(".-") || name.contains("-.") {
        return Some("bucket names have no period next to a hyphen");
    }
    for prefix in ["xn--", "sthree-", "amzn-s3-demo-"] {
        if name.starts_with(prefix) {
            return Some("bucket names do not begin with xn--, sthree- or amzn-s3-demo-");
        }
    }
    for suffix in ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"] {
        if name.ends_with(suffix) {
            return Some(
                "bucket names do not end with -s3alias, --ol-s3, .mrap, --x-s3 or --table-s3",
            );
        }
    }
    None
}

fn sigv2() -> Refusal {
    Refusal::new(
        Reason::SigV2,
        S3Fault::InvalidRequest(
            "The authorization mechanism you have provided is not supported. Please use \
         AWS4-HMAC-SHA256 (Signature Version 4; for presigned URLs set the client's \
         signature_version to s3v4)."
                .into(),
        ),
    )
}

/// The refusal of a header (or presigned parameter) `name: value` that asks for something
/// exclave does not do, so that no request is answered 200 while its meaning is ignored
/// (docs/s3-compatibility.md, "Refused, never ignored"); None for everything else.
fn unhonoured(name: &str, value: &str) -> Option<S3Fault> {
    let value = value.trim();
    let not_done = |what: &str| {
        Some(S3Fault::NotImplemented(format!(
            "{what} ({name}) is not supported here; nothing was changed"
        )))
    };
    match name {
        // SSE-S3 is what exclave always does; a KMS is not.
        "x-amz-server-side-encryption" if value != "AES256" => {
            not_done("encryption under a KMS key (SSE-KMS)")
        }
        n if n.starts_with("x-amz-server-side-encryption-aws-kms-")
            || n == "x-amz-server-side-encryption-context"
            || n == "x-amz-server-side-encryption-bucket-key-enabled" =>
        {
            not_done("encryption under a KMS key (SSE-KMS)")
        }
        "x-amz-website-redirect-location" => not_done("website redirects"),
        "x-amz-object-ownership" if value != "BucketOwnerEnforced" => {
            not_done("object ownership other than BucketOwnerEnforced")
        }
        // Only the owner has access: that ACL is honoured, any other is not.
        "x-amz-acl" if value != "private" && value != "bucket-owner-full-control" => Some(
            S3Fault::AccessControlListNotSupported(format!("{name}: {value}")),
        ),
        n if n.starts_with("x-amz-grant-") => {
            Some(S3Fault::AccessControlListNotSupported(name.to_owned()))
        }
        _ => None,
    }
}

fn malformed_header(what: &str) -> Refusal {
    Refusal::new(
        Reason::Malformed,
        S3Fault::AuthorizationHeaderMalformed(format!(
            "The authorization header is malformed: it {what}"
        )),
    )
}

fn malformed_query(what: String) -> Refusal {
    Refusal::new(
        Reason::Malformed,
        S3Fault::AuthorizationQueryParametersError(format!(
            "The presigned parameters are malformed: {what}"
        )),
    )
}

fn signed_set(list: &str) -> BTreeSet<String> {
    list.split(';')
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect()
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        })
}

/// A query component decoded as `s3s` decodes it (`+` a space, then percent-decoding; an
/// undecodable one kept raw).
fn decode_component(s: &str) -> String {
    let s = s.replace('+', " ");
    urlencoding::decode(&s).map_or_else(|_| s.clone(), Cow::into_owned)
}

/// The query's pairs with names and values decoded ([`decode_component`]).
fn decoded_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode_component(k), decode_component(v))
        })
        .collect()
}

/// The value of the query parameter `name` (its first), decoded ([`decode_component`]).
pub(crate) fn query_param(q: &str, name: &str) -> Option<String> {
    q.split('&')
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .find(|(k, _)| decode_component(k) == name)
        .map(|(_, v)| decode_component(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_decode_as_s3s_decodes_them() {
        let q = "list-type=2&prefix=deeds%2F2026+north&versionId=abc&empty";
        assert_eq!(
            query_param(q, "prefix").as_deref(),
            Some("deeds/2026 north")
        );
        assert_eq!(query_param(q, "versionId").as_deref(), Some("abc"));
        assert_eq!(query_param(q, "empty").as_deref(), Some(""));
        assert_eq!(query_param(q, "delimiter"), None);
        assert_eq!(
            decoded_query(q)[1],
            ("prefix".to_owned(), "deeds/2026 north".to_owned())
        );
    }

    #[test]
    fn what_is_not_honoured_is_refused_and_what_is_done_anyway_passes() {
        for (name, value) in [
            ("x-amz-server-side-encryption", "aws:kms"),
            ("x-amz-server-side-encryption-aws-kms-key-id", "arn"),
            ("x-amz-acl", "public-read"),
            ("x-amz-grant-read", "id=x"),
            ("x-amz-object-ownership", "ObjectWriter"),
            ("x-amz-website-redirect-location", "/x"),
        ] {
            assert!(unhonoured(name, value).is_some(), "{name}: {value} passed");
        }
        for (name, value) in [
            ("x-amz-bucket-object-lock-enabled", "false"),
            // Object lock is done (`lock.rs`).
            ("x-amz-bucket-object-lock-enabled", "true"),
            ("x-amz-object-lock-mode", "COMPLIANCE"),
            ("x-amz-object-lock-legal-hold", "ON"),
            ("x-amz-server-side-encryption", "AES256"),
            ("x-amz-acl", "private"),
            ("x-amz-acl", "bucket-owner-full-control"),
            ("x-amz-tagging-directive", "COPY"),
            // SSE-C is done (`ssec.rs`).
            ("x-amz-server-side-encryption-customer-algorithm", "AES256"),
            ("x-amz-copy-source-server-side-encryption-customer-key", "k"),
            // Tagging is done (`tagging.rs`).
            ("x-amz-tagging", "a=b"),
            ("x-amz-tagging-directive", "REPLACE"),
            ("x-amz-object-ownership", "BucketOwnerEnforced"),
            ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
            ("x-amz-meta-owner", "land registry"),
        ] {
            assert!(unhonoured(name, value).is_none(), "{name}: {value} refused");
        }
    }

    use crate::gateway::test_parts as parts;

    fn auth(region: &str, signed: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential=AK/20261127/{region}/s3/aws4_request, \
             SignedHeaders={signed}, Signature=00"
        )
    }

    fn reason(r: Result<(), Refusal>) -> Option<Reason> {
        r.err().map(|e| e.reason)
    }

    #[test]
    fn sigv4_with_every_x_amz_header_signed_passes() {
        let g = Gate::new("us-east-1".into());
        let a = auth("us-east-1", "host;x-amz-content-sha256;x-amz-date");
        let p = parts(
            "PUT",
            "/bucket/k",
            &[
                ("authorization", &a),
                ("x-amz-date", "x"),
                ("x-amz-content-sha256", "x"),
                ("x-amz-user-agent", "sdk"),
            ],
        );
        assert_eq!(reason(g.screen(&p)), None);
    }

    #[test]
    fn an_unsigned_x_amz_header_is_refused_in_both_forms() {
        let g = Gate::new("us-east-1".into());
        let a = auth("us-east-1", "host;x-amz-date");
        let p = parts(
            "PUT",
            "/bucket/k",
            &[
                ("authorization", &a),
                ("x-amz-date", "x"),
                ("x-amz-copy-source", "/s/k"),
            ],
        );
        assert_eq!(reason(g.screen(&p)), Some(Reason::UnsignedHeader));
        let q = "/bucket/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20261127%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261127T000000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=00";
        assert_eq!(reason(g.screen(&parts("PUT", q, &[]))), None);
        let p = parts("PUT", q, &[("x-amz-copy-source", "/s/k")]);
        assert_eq!(reason(g.screen(&p)), Some(Reason::UnsignedHeader));
    }

    #[test]
    fn encoded_parameter_names_are_compared_decoded() {
        let g = Gate::new("us-east-1".into());
        let q = "/bucket/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20261127%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261127T000000Z&X-Amz-Expire%73=315360000&X-Amz-SignedHeaders=host&X-Amz-Signature=00";
        assert_eq!(
            reason(g.screen(&parts("GET", q, &[]))),
            Some(Reason::ExpiryTooLong)
        );
        let twice = "/bucket/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20261127%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261127T000000Z&X-Amz-Expires=60&X-Amz-Expires=999999999&X-Amz-SignedHeaders=host&X-Amz-Signature=00";
        assert_eq!(
            reason(g.screen(&parts("GET", twice, &[]))),
            Some(Reason::Malformed)
        );
    }

    #[test]
    fn bucket_names_follow_s3s_rules_and_new_ones_the_newer_rules_too() {
        for bad in [
            "sthree-x",
            "xn--abc",
            "a-s3alias",
            "abc--ol-s3",
            "a.-b",
            "a-.b",
            "ab--x-s3",
        ] {
            assert!(bucket_name_problem(bad, true).is_some(), "{bad}");
            assert!(bucket_name_problem(bad, false).is_none(), "{bad}");
        }
        for bad in ["ab", "Abc", "a..b", "-ab", "ab-", "192.168.1.1", "a_b"] {
            assert!(bucket_name_problem(bad, false).is_some(), "{bad}");
        }
        for good in ["registry", "land-registry.2026", "a1b"] {
            assert!(bucket_name_problem(good, true).is_none(), "{good}");
        }
        let g = Gate::new("us-east-1".into());
        let a = auth("us-east-1", "host");
        let p = parts("PUT", "/sthree-land", &[("authorization", &a)]);
        let e = g.screen(&p).unwrap_err();
        assert_eq!(e.reason, Reason::BucketName);
        assert!(e.error.message().unwrap_or("").contains("sthree-"));
        let p = parts("GET", "/sthree-land/k", &[("authorization", &a)]);
        assert_eq!(reason(g.screen(&p)), None);
    }

    #[test]
    fn sigv2_mixed_anonymous_region_and_forms_are_refused() {
        let g = Gate::new("us-east-1".into());
        let v2 = parts("GET", "/bucket/k", &[("authorization", "AWS AK:c2ln")]);
        assert_eq!(reason(g.screen(&v2)), Some(Reason::SigV2));
        let v2q = parts(
            "GET",
            "/bucket/k?AWSAccessKeyId=AK&Expires=1999999999&Signature=c2ln",
            &[],
        );
        assert_eq!(reason(g.screen(&v2q)), Some(Reason::SigV2));
        let a = auth("us-east-1", "host");
        let mixed = parts(
            "GET",
            "/bucket/k?X-Amz-Signature=00",
            &[("authorization", &a)],
        );
        assert_eq!(reason(g.screen(&mixed)), Some(Reason::MixedAuth));
        assert_eq!(
            reason(g.screen(&parts("GET", "/bucket?acl", &[]))),
            Some(Reason::Anonymous)
        );
        let us = auth("US", "host");
        let r = g.screen(&parts("GET", "/bucket/k", &[("authorization", &us)]));
        let e = r.unwrap_err();
        assert_eq!(e.reason, Reason::WrongRegion);
        assert_eq!(
            e.error.code(),
            &s3s::S3ErrorCode::AuthorizationHeaderMalformed
        );
        assert!(
            e.error
                .message()
                .unwrap_or("")
                .contains("expecting 'us-east-1'")
        );
        let form = parts(
            "POST",
            "/bucket",
            &[("content-type", "multipart/form-data; boundary=x")],
        );
        assert_eq!(reason(g.screen(&form)), Some(Reason::FormUpload));
    }
}
