//! SSE-C at the S3 surface (`core::ssec`): the three headers read and checked as AWS checks
//! them, accepted only over TLS (or from this machine's loopback, where the key never
//! crosses a network), the object's stored check value compared before anything is read, and
//! the headers AWS answers with.

use s3s::S3Result;
use s3s::dto::{SSECustomerAlgorithm, ServerSideEncryption};

use super::error::S3Fault;
use super::traffic::Peer;
use crate::core::format::ObjectMeta;
use crate::core::ssec::{self, CustomerKey};

/// The customer key of an S3 input's SSE-C fields (`sse_customer_*`), given the request's
/// extensions: [`customer_key`].
macro_rules! ssec_key {
    ($i:expr, $extensions:expr) => {
        $crate::gateway::ssec::customer_key(
            $i.sse_customer_algorithm.as_ref(),
            $i.sse_customer_key.as_ref(),
            $i.sse_customer_key_md5.as_ref(),
            $extensions,
        )
    };
}
/// As [`ssec_key`], of a copy's source (`copy_source_sse_customer_*`).
macro_rules! ssec_source_key {
    ($i:expr, $extensions:expr) => {
        $crate::gateway::ssec::customer_key(
            $i.copy_source_sse_customer_algorithm.as_ref(),
            $i.copy_source_sse_customer_key.as_ref(),
            $i.copy_source_sse_customer_key_md5.as_ref(),
            $extensions,
        )
    };
}
pub(crate) use {ssec_key, ssec_source_key};

/// The customer key a request's three SSE-C headers give; None when it sends none.
pub(crate) fn customer_key(
    algorithm: Option<&String>,
    key: Option<&String>,
    md5: Option<&String>,
    extensions: &http::Extensions,
) -> S3Result<Option<CustomerKey>> {
    let ck = ssec::parse(
        algorithm.map(String::as_str),
        key.map(String::as_str),
        md5.map(String::as_str),
    )
    .map_err(|e| S3Fault::InvalidArgument(e.message().into()))?;
    if ck.is_some() {
        let peer = extensions.get::<Peer>();
        let private = peer.is_some_and(|p| p.secure || p.addr.ip().is_loopback());
        if !private {
            return Err(S3Fault::InvalidRequest(
                "Requests specifying Server Side Encryption with Customer provided keys must be \
                 made over a secure connection."
                    .into(),
            )
            .into());
        }
    }
    Ok(ck)
}

/// Whether `given` opens the object (or part) `meta`: a stored SSE-C object needs its key
/// (none: 400; another: 403), and an object stored without one takes none (400).
pub(crate) fn may_open(meta: &ObjectMeta, given: Option<&CustomerKey>) -> S3Result<()> {
    match (ssec::stored_check(meta), given) {
        (None, None) => Ok(()),
        (Some(check), Some(ck)) if ck.check() == check => Ok(()),
        (Some(_), Some(_)) => Err(S3Fault::AccessDenied(
            "The SSE-C key provided is not the key the object was stored with.".into(),
        )
        .into()),
        (Some(_), None) => Err(S3Fault::InvalidRequest(
            "The object was stored using a form of Server Side Encryption. The correct \
             parameters must be provided to retrieve the object."
                .into(),
        )
        .into()),
        (None, Some(_)) => Err(S3Fault::InvalidRequest(
            "The encryption parameters are not applicable to this object.".into(),
        )
        .into()),
    }
}

/// Stored headers with the check value of `ck` (and none of another key's).
pub(crate) fn mark(headers: &mut Vec<(String, String)>, ck: Option<&CustomerKey>) {
    headers.retain(|(n, _)| n != ssec::STORED_HEADER);
    if let Some(ck) = ck {
        headers.push((ssec::STORED_HEADER.to_owned(), ck.check()));
    }
}

/// `x-amz-server-side-encryption` of every object not under a customer's key: exclave
/// encrypts each one itself (what S3 calls SSE-S3).
pub(crate) fn sse() -> Option<ServerSideEncryption> {
    Some(ServerSideEncryption::from_static(
        ServerSideEncryption::AES256,
    ))
}

/// The encryption headers of an answer about an object stored under `ck` (None: exclave's own
/// keys, which S3 calls SSE-S3): `x-amz-server-side-encryption`, or the SSE-C pair.
pub(crate) fn answer(
    ck: Option<&CustomerKey>,
) -> (
    Option<ServerSideEncryption>,
    Option<SSECustomerAlgorithm>,
    Option<String>,
) {
    match ck {
        None => (sse(), None, None),
        Some(ck) => (None, Some("AES256".into()), Some(ck.md5_b64().to_owned())),
    }
}
