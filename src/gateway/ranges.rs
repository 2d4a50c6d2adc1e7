//! A GET or HEAD whose `Range` header cannot be parsed: AWS ignores the header and answers the
//! whole object (200). `s3s` parses the header right after verifying the signature, before any
//! hook of ours sees the operation, and a signed header cannot be taken out before that without
//! breaking the signature. So `traffic` marks such a request, and this custom route, which
//! `s3s` calls only after the signature checked out, serves it again without the header, as the
//! key that signed it.
//!
//! The second request carries no signature; it carries a [`Verified`] extension, which only
//! this route sets (extensions never come from the wire) and which the `Gatekeeper` takes as
//! that key's identity: the grants, the bucket's policy, SSE-C and the rest are checked as for
//! any request of that key.

use std::sync::{Arc, Mutex};

use s3s::route::S3Route;
use s3s::service::S3Service;
use s3s::{Body, S3Request, S3Response, S3Result};

use super::error::S3Fault;

/// Set by `traffic` on a GET or HEAD whose `Range` header `s3s` cannot parse.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BadRange;

/// The access key a request was verified for by the signature of the request it was made from.
#[derive(Debug, Clone)]
pub(crate) struct Verified(pub String);

/// Whether `range` is a header `s3s` cannot parse.
pub(crate) fn unparsable(range: &http::HeaderValue) -> bool {
    range
        .to_str()
        .ok()
        .is_none_or(|r| s3s::dto::Range::parse(r).is_err())
}

/// The route; `service` is the S3 service it belongs to, set once it is built and taken out
/// when serving ends (the service holds the route).
#[derive(Clone, Default)]
pub(crate) struct IgnoreBadRange {
    pub service: Arc<Mutex<Option<S3Service>>>,
}

/// Query parameters of a signature (SigV4 presigned, SigV2).
const SIGNATURE_PARAMS: [&str; 10] = [
    "x-amz-algorithm",
    "x-amz-credential",
    "x-amz-date",
    "x-amz-expires",
    "x-amz-signedheaders",
    "x-amz-signature",
    "x-amz-security-token",
    "awsaccesskeyid",
    "signature",
    "expires",
];

/// `uri` without the parameters of a signature, the others as they came.
fn unsigned_uri(uri: &http::Uri) -> Result<http::Uri, http::Error> {
    let Some(query) = uri.query() else {
        return Ok(uri.clone());
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| {
            let name = p.split_once('=').map_or(*p, |(n, _)| n);
            !SIGNATURE_PARAMS
                .iter()
                .any(|s| name.eq_ignore_ascii_case(s))
        })
        .collect();
    let path = uri.path();
    let pq = if kept.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", kept.join("&"))
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(pq.parse()?);
    Ok(http::Uri::from_parts(parts)?)
}

#[async_trait::async_trait]
impl S3Route for IgnoreBadRange {
    fn is_match(
        &self,
        _method: &http::Method,
        _uri: &http::Uri,
        _headers: &http::HeaderMap,
        extensions: &mut http::Extensions,
    ) -> bool {
        extensions.get::<BadRange>().is_some()
    }

    // `check_access` stays the trait's: a request without verified credentials is refused.

    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let Some(credentials) = req.credentials else {
            return Err(S3Fault::AccessDenied("a signature is required".into()).into());
        };
        let service = self
            .service
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| S3Fault::Internal("the S3 service is shutting down".into()))?;
        let uri = unsigned_uri(&req.uri)
            .map_err(|e| S3Fault::Internal(format!("rebuilding the request: {e}")))?;
        let mut headers = req.headers;
        headers.remove(http::header::RANGE);
        headers.remove(http::header::AUTHORIZATION);
        headers.remove("x-amz-content-sha256");
        headers.remove("x-amz-security-token");
        let mut extensions = req.extensions;
        extensions.remove::<BadRange>();
        extensions.insert(Verified(credentials.access_key));
        let mut again = http::Request::new(req.input);
        *again.method_mut() = req.method;
        *again.uri_mut() = uri;
        *again.headers_mut() = headers;
        *again.extensions_mut() = extensions;
        let resp = service
            .call(again)
            .await
            .map_err(|e| S3Fault::Internal(format!("serving without the Range: {e:?}")))?;
        let (parts, body) = resp.into_parts();
        let mut answer = S3Response::new(body);
        answer.status = Some(parts.status);
        answer.headers = parts.headers;
        answer.extensions = parts.extensions;
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_parameters_leave_the_query_and_the_rest_stays_as_it_came() {
        let uri: http::Uri = "/b/k%20x?versionId=a%2Bb&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=ff&response-content-type=text%2Fplain&Expires=1"
            .parse()
            .unwrap();
        assert_eq!(
            unsigned_uri(&uri).unwrap().to_string(),
            "/b/k%20x?versionId=a%2Bb&response-content-type=text%2Fplain"
        );
        let uri: http::Uri = "/b/k?X-Amz-Signature=ff".parse().unwrap();
        assert_eq!(unsigned_uri(&uri).unwrap().to_string(), "/b/k");
    }

    #[test]
    fn only_ranges_s3s_cannot_read_are_unparsable() {
        let v = |s: &str| http::HeaderValue::from_str(s).unwrap();
        assert!(!unparsable(&v("bytes=0-9")));
        assert!(!unparsable(&v("bytes=-5")));
        assert!(unparsable(&v("bytes=abc")));
        assert!(unparsable(&v("pages=1-2")));
    }
}
