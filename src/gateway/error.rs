//! Every S3 error the gateway answers with, in one place: [`S3Fault`] names each failure, and
//! one table ([`S3Fault::parts`]) gives its S3 code, HTTP status and message (AWS's words where
//! AWS has them). Handlers, the gate and the body checks make faults; only this file makes an
//! `S3Error`. Failures from below (the object store, the index, request bodies) are typed
//! there and turned into faults here, by variant, never by the words of a message.

use std::time::Duration;

use http::StatusCode;
use s3s::{S3Error, S3ErrorCode};

use super::body::BodyError;
use crate::coordinator::object::ObjectError;
use crate::coordinator::{PutError, ReadError};
use crate::meta::MetaError;

/// How long a client is told to wait when the sites a write needs are known to be down.
const RETRY_AFTER_SECS: &str = "5";

/// Why an S3 request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum S3Fault {
    // Names that do not resolve.
    /// The bucket does not exist.
    NoSuchBucket,
    /// The key does not exist (or its newest version is a delete).
    NoSuchKey,
    /// The version id names no version of the key.
    NoSuchVersion,
    /// 405: a GET or HEAD of a delete marker by its version id.
    MethodNotAllowed,
    /// 409: a configuration the bucket's state forbids (Suspended under object lock).
    InvalidBucketState(String),
    /// 404: GetObjectLockConfiguration of a bucket without object lock.
    ObjectLockConfigurationNotFound,
    /// 404: GetObjectRetention or GetObjectLegalHold of a version that has none.
    NoSuchObjectLockConfiguration,
    /// 404: GetBucketLifecycleConfiguration of a bucket without one.
    NoSuchLifecycleConfiguration,
    /// GetBucketPolicy of a bucket without one.
    NoSuchBucketPolicy,
    /// A bucket policy that does not read or check (why).
    MalformedPolicy(String),
    /// A tag set S3 would refuse (why, in AWS's words).
    InvalidTag(String),
    /// GetBucketTagging of a bucket without tags.
    NoSuchTagSet,
    /// GetBucketCors of a bucket without CORS rules.
    NoSuchCorsConfiguration,
    /// The multipart upload does not exist.
    NoSuchUpload,
    /// CreateBucket of a bucket that exists.
    BucketAlreadyOwnedByYou,
    /// DeleteBucket of a bucket with objects.
    BucketNotEmpty,
    /// A bucket name that breaks the naming rules (which one).
    InvalidBucketName(String),
    /// A key longer than 1,024 bytes.
    KeyTooLong,

    // Conditions and ranges.
    /// If-Match / If-Unmodified-Since / If-None-Match on a write did not hold.
    PreconditionFailed,
    /// If-None-Match / If-Modified-Since on a read: nothing new.
    NotModified,
    /// A Range outside the object.
    RangeNotSatisfiable,
    /// A partNumber the object does not have.
    PartNotSatisfiable,

    // Sizes and parts.
    /// User metadata over 2 KiB.
    MetadataTooLarge,
    /// An object or part over the size limit.
    EntityTooLarge,
    /// A part (but the last) under 5 MiB.
    EntityTooSmall,
    /// CompleteMultipartUpload with parts out of order.
    InvalidPartOrder,
    /// A part that is missing, changed or does not match its ETag (why).
    InvalidPart(String),
    /// A part number outside 1..=10000.
    InvalidPartNumber,
    /// An XML body that breaks a rule (which).
    MalformedXml(String),
    /// A body over the size limit of its kind (which).
    MaxMessageLengthExceeded(String),

    // Malformed or unsupported requests.
    /// An argument out of range (which, why).
    InvalidArgument(String),
    /// A request S3 refuses as a whole (why).
    InvalidRequest(String),
    /// An operation or option exclave does not implement (which).
    NotImplemented(String),
    /// An ACL other than the owner's alone (exclave keeps no ACLs; which header).
    AccessControlListNotSupported(String),
    /// A PUT without Content-Length (and not aws-chunked).
    MissingContentLength,

    // Integrity of the body.
    /// A Content-MD5 that is not 16 bytes of base64.
    InvalidDigest,
    /// A body that does not match a checksum the client sent (which).
    BadDigest(String),
    /// A body that does not match its signed `x-amz-content-sha256`.
    ContentSha256Mismatch,
    /// A chunk signature of an aws-chunked body that does not verify.
    ChunkSignatureMismatch,
    /// A body shorter than announced, or malformed (what happened).
    IncompleteBody(String),
    /// A body that sent nothing for longer than the idle timeout.
    RequestTimeout(Duration),

    // Authentication and access.
    /// Refused access (why).
    AccessDenied(String),
    /// An access key id that is not known.
    InvalidAccessKeyId,
    /// The Authorization header is malformed (why).
    AuthorizationHeaderMalformed(String),
    /// Presigned query parameters are malformed (why).
    AuthorizationQueryParametersError(String),

    // The cluster.
    /// Too few sites answer (what the client may know: counts, never addresses); with
    /// `retry_after`, the sites were known down and the request was refused at once.
    Unavailable {
        /// For the client.
        message: String,
        /// Send `Retry-After`.
        retry_after: bool,
    },
    /// A fault of the gateway (logged; the client gets the short reason).
    Internal(String),
}

impl S3Fault {
    /// The table: S3 code, HTTP status, message.
    fn parts(&self) -> (S3ErrorCode, StatusCode, String) {
        use S3ErrorCode as C;
        use StatusCode as H;
        let (code, status, message): (C, H, String) = match self {
            Self::NoSuchBucket => (
                C::NoSuchBucket,
                H::NOT_FOUND,
                "The specified bucket does not exist".into(),
            ),
            Self::NoSuchKey => (
                C::NoSuchKey,
                H::NOT_FOUND,
                "The specified key does not exist.".into(),
            ),
            Self::NoSuchVersion => (
                C::NoSuchVersion,
                H::NOT_FOUND,
                "The specified version does not exist.".into(),
            ),
            Self::MethodNotAllowed => (
                C::MethodNotAllowed,
                H::METHOD_NOT_ALLOWED,
                "The specified method is not allowed against this resource.".into(),
            ),
            Self::InvalidBucketState(why) => (C::InvalidBucketState, H::CONFLICT, why.clone()),
            Self::ObjectLockConfigurationNotFound => (
                C::ObjectLockConfigurationNotFoundError,
                H::NOT_FOUND,
                "Object Lock configuration does not exist for this bucket".into(),
            ),
            Self::NoSuchObjectLockConfiguration => (
                C::NoSuchObjectLockConfiguration,
                H::NOT_FOUND,
                "The specified object does not have a ObjectLock configuration".into(),
            ),
            Self::NoSuchLifecycleConfiguration => (
                C::NoSuchLifecycleConfiguration,
                H::NOT_FOUND,
                "The lifecycle configuration does not exist".into(),
            ),
            Self::NoSuchBucketPolicy => (
                C::NoSuchBucketPolicy,
                H::NOT_FOUND,
                "The bucket policy does not exist".into(),
            ),
            Self::MalformedPolicy(why) => (C::MalformedPolicy, H::BAD_REQUEST, why.clone()),
            Self::InvalidTag(why) => (C::InvalidTag, H::BAD_REQUEST, why.clone()),
            Self::NoSuchTagSet => (
                C::NoSuchTagSet,
                H::NOT_FOUND,
                "The TagSet does not exist".into(),
            ),
            Self::NoSuchCorsConfiguration => (
                C::NoSuchCORSConfiguration,
                H::NOT_FOUND,
                "The CORS configuration does not exist".into(),
            ),
            Self::NoSuchUpload => (
                C::NoSuchUpload,
                H::NOT_FOUND,
                "The specified upload does not exist. The upload ID may be invalid, or the \
                 upload may have been aborted or completed."
                    .into(),
            ),
            Self::BucketAlreadyOwnedByYou => (
                C::BucketAlreadyOwnedByYou,
                H::CONFLICT,
                "Your previous request to create the named bucket succeeded and you already \
                 own it."
                    .into(),
            ),
            Self::BucketNotEmpty => (
                C::BucketNotEmpty,
                H::CONFLICT,
                "The bucket you tried to delete is not empty".into(),
            ),
            Self::InvalidBucketName(rule) => (
                C::InvalidBucketName,
                H::BAD_REQUEST,
                format!("The specified bucket is not valid: {rule}"),
            ),
            Self::KeyTooLong => (
                C::KeyTooLongError,
                H::BAD_REQUEST,
                "keys are at most 1024 bytes of UTF-8".into(),
            ),
            Self::PreconditionFailed => (
                C::PreconditionFailed,
                H::PRECONDITION_FAILED,
                "At least one of the pre-conditions you specified did not hold".into(),
            ),
            Self::NotModified => (C::NotModified, H::NOT_MODIFIED, String::new()),
            Self::RangeNotSatisfiable => (
                C::InvalidRange,
                H::RANGE_NOT_SATISFIABLE,
                "The requested range is not satisfiable".into(),
            ),
            Self::PartNotSatisfiable => (
                C::InvalidPart,
                H::BAD_REQUEST,
                "The requested partnumber is not satisfiable".into(),
            ),
            Self::MetadataTooLarge => (
                C::MetadataTooLarge,
                H::BAD_REQUEST,
                "Your metadata headers exceed the maximum allowed metadata size (2 KiB).".into(),
            ),
            Self::EntityTooLarge => (
                C::EntityTooLarge,
                H::BAD_REQUEST,
                "Your proposed upload exceeds the maximum allowed size".into(),
            ),
            Self::EntityTooSmall => (
                C::EntityTooSmall,
                H::BAD_REQUEST,
                "Your proposed upload is smaller than the minimum allowed object size.".into(),
            ),
            Self::InvalidPartOrder => (
                C::InvalidPartOrder,
                H::BAD_REQUEST,
                "The list of parts was not in ascending order. Parts must be ordered by part \
                 number."
                    .into(),
            ),
            Self::InvalidPart(why) => (C::InvalidPart, H::BAD_REQUEST, why.clone()),
            Self::InvalidPartNumber => (
                C::InvalidArgument,
                H::BAD_REQUEST,
                "Part number must be an integer between 1 and 10000, inclusive".into(),
            ),
            Self::MalformedXml(why) => (C::MalformedXML, H::BAD_REQUEST, why.clone()),
            Self::MaxMessageLengthExceeded(why) => {
                (C::MaxMessageLengthExceeded, H::BAD_REQUEST, why.clone())
            }
            Self::InvalidArgument(why) => (C::InvalidArgument, H::BAD_REQUEST, why.clone()),
            Self::InvalidRequest(why) => (C::InvalidRequest, H::BAD_REQUEST, why.clone()),
            Self::NotImplemented(what) => (C::NotImplemented, H::NOT_IMPLEMENTED, what.clone()),
            Self::AccessControlListNotSupported(what) => (
                C::Custom("AccessControlListNotSupported".into()),
                H::BAD_REQUEST,
                format!("The bucket does not allow ACLs ({what}): only its owner has access"),
            ),
            Self::MissingContentLength => (
                C::MissingContentLength,
                H::LENGTH_REQUIRED,
                "You must provide the Content-Length HTTP header.".into(),
            ),
            Self::InvalidDigest => (
                C::InvalidDigest,
                H::BAD_REQUEST,
                "The Content-MD5 you specified was invalid.".into(),
            ),
            Self::BadDigest(why) => (C::BadDigest, H::BAD_REQUEST, why.clone()),
            Self::ContentSha256Mismatch => (
                C::Custom("XAmzContentSHA256Mismatch".into()),
                H::BAD_REQUEST,
                "The provided 'x-amz-content-sha256' header does not match what was computed."
                    .into(),
            ),
            Self::ChunkSignatureMismatch => (
                C::SignatureDoesNotMatch,
                H::FORBIDDEN,
                "The request signature we calculated does not match the signature you \
                 provided (a chunk of the aws-chunked body)."
                    .into(),
            ),
            Self::IncompleteBody(why) => (C::IncompleteBody, H::BAD_REQUEST, why.clone()),
            Self::RequestTimeout(idle) => (
                C::RequestTimeout,
                H::BAD_REQUEST,
                format!(
                    "Your socket connection to the server was not read from or written to \
                     within the timeout period ({} s).",
                    idle.as_secs()
                ),
            ),
            Self::AccessDenied(why) => (C::AccessDenied, H::FORBIDDEN, why.clone()),
            Self::InvalidAccessKeyId => (
                C::InvalidAccessKeyId,
                H::FORBIDDEN,
                "The AWS access key Id you provided does not exist in our records.".into(),
            ),
            Self::AuthorizationHeaderMalformed(why) => {
                (C::AuthorizationHeaderMalformed, H::BAD_REQUEST, why.clone())
            }
            Self::AuthorizationQueryParametersError(why) => (
                C::AuthorizationQueryParametersError,
                H::BAD_REQUEST,
                why.clone(),
            ),
            Self::Unavailable { message, .. } => (
                C::ServiceUnavailable,
                H::SERVICE_UNAVAILABLE,
                message.clone(),
            ),
            Self::Internal(why) => (C::InternalError, H::INTERNAL_SERVER_ERROR, why.clone()),
        };
        (code, status, message)
    }
}

impl From<S3Fault> for S3Error {
    fn from(fault: S3Fault) -> Self {
        let (code, status, message) = fault.parts();
        let mut e = if message.is_empty() {
            Self::new(code)
        } else {
            Self::with_message(code, message)
        };
        e.set_status_code(status);
        if let S3Fault::Unavailable {
            retry_after: true, ..
        } = fault
        {
            let mut headers = http::HeaderMap::new();
            headers.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/xml"),
            );
            headers.insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static(RETRY_AFTER_SECS),
            );
            e.set_headers(headers);
        }
        e
    }
}

/// A fault of the gateway: logged in full, answered as InternalError.
pub(crate) fn internal(e: impl std::fmt::Display) -> S3Error {
    tracing::error!(error = %e, "internal error");
    S3Fault::Internal(e.to_string()).into()
}

impl From<MetaError> for S3Error {
    fn from(e: MetaError) -> Self {
        match e {
            MetaError::BadToken => {
                S3Fault::InvalidArgument("The continuation token provided is incorrect".into())
                    .into()
            }
            other => internal(other),
        }
    }
}

/// The S3 error for a failed object operation. Messages for clients count sites and shards;
/// they never carry node addresses or peer errors (those go to the log).
pub(crate) fn object_error(e: ObjectError) -> S3Error {
    let unavailable = |message: String| -> S3Error {
        tracing::warn!(error = %e, "quorum not reached");
        S3Fault::Unavailable {
            message,
            retry_after: false,
        }
        .into()
    };
    match &e {
        ObjectError::Put(PutError::NoQuorum {
            durable,
            needed,
            full,
            ..
        }) => unavailable(format!(
            "not enough sites reachable: the write was durable at {durable} of the {needed} sites \
             it needs{}",
            if full.is_empty() {
                String::new()
            } else {
                format!(" (disk full at site {})", full.join(", "))
            }
        )),
        ObjectError::Put(PutError::SourceEnded) => {
            unavailable("not enough sites reachable: the write could not finish".into())
        }
        ObjectError::ManifestQuorum { .. }
        | ObjectError::ReadQuorum { .. }
        | ObjectError::Behind { .. } => unavailable(format!("not enough sites reachable: {e}")),
        ObjectError::Read(ReadError::NotEnough {
            good,
            needed,
            first,
            end,
            ..
        }) => unavailable(format!(
            "not enough intact shards reachable: {good} good of the {needed} needed for stripes \
             {first}..{end}"
        )),
        ObjectError::SitesDown { reachable, needed } => {
            tracing::warn!(error = %e, "write refused: sites down");
            S3Fault::Unavailable {
                message: format!(
                    "not enough sites reachable: {reachable} of the {needed} sites a write \
                     needs answer; retry once they are back"
                ),
                retry_after: true,
            }
            .into()
        }
        ObjectError::ShortBody { got, expected } => {
            S3Fault::IncompleteBody(format!("the body ended after {got} of {expected} bytes"))
                .into()
        }
        ObjectError::Body(io) => body_error(io).into(),
        _ => internal(e),
    }
}

/// A failure while reading a request body, by its type ([`BodyError`]).
pub(crate) fn body_error(io: &std::io::Error) -> S3Fault {
    let inner = io.get_ref();
    if let Some(e) = inner.and_then(|e| e.downcast_ref::<BodyError>()) {
        return match e {
            BodyError::Stalled(idle) => {
                tracing::info!(reason = "body_stalled", "request body stopped arriving");
                S3Fault::RequestTimeout(*idle)
            }
            BodyError::ChunkSignature => S3Fault::ChunkSignatureMismatch,
            BodyError::Sha256Mismatch => S3Fault::ContentSha256Mismatch,
            BodyError::Malformed(what) => {
                S3Fault::IncompleteBody(format!("the aws-chunked body is malformed: {what}"))
            }
            BodyError::Client(what) => S3Fault::IncompleteBody(format!("reading the body: {what}")),
        };
    }
    S3Fault::IncompleteBody(format!("reading the body: {io}"))
}

impl std::fmt::Display for S3Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (code, _, message) = self.parts();
        write!(f, "{}: {message}", code.as_str())
    }
}

impl std::error::Error for S3Fault {}

#[cfg(test)]
mod tests {
    use super::*;

    /// The status of each fault is the one AWS documents for its code (s3s carries AWS's
    /// table), except where exclave says otherwise on purpose.
    #[test]
    fn statuses_agree_with_the_codes_table() {
        let all = [
            S3Fault::NoSuchBucket,
            S3Fault::NoSuchKey,
            S3Fault::NoSuchVersion,
            S3Fault::MethodNotAllowed,
            S3Fault::InvalidBucketState("x".into()),
            S3Fault::ObjectLockConfigurationNotFound,
            S3Fault::NoSuchObjectLockConfiguration,
            S3Fault::NoSuchLifecycleConfiguration,
            S3Fault::NoSuchBucketPolicy,
            S3Fault::MalformedPolicy("x".into()),
            S3Fault::InvalidTag("x".into()),
            S3Fault::NoSuchTagSet,
            S3Fault::NoSuchCorsConfiguration,
            S3Fault::NoSuchUpload,
            S3Fault::BucketAlreadyOwnedByYou,
            S3Fault::BucketNotEmpty,
            S3Fault::InvalidBucketName("x".into()),
            S3Fault::KeyTooLong,
            S3Fault::PreconditionFailed,
            S3Fault::NotModified,
            S3Fault::RangeNotSatisfiable,
            S3Fault::MetadataTooLarge,
            S3Fault::EntityTooLarge,
            S3Fault::EntityTooSmall,
            S3Fault::InvalidPartOrder,
            S3Fault::InvalidPart("x".into()),
            S3Fault::InvalidPartNumber,
            S3Fault::MalformedXml("x".into()),
            S3Fault::MaxMessageLengthExceeded("x".into()),
            S3Fault::InvalidArgument("x".into()),
            S3Fault::InvalidRequest("x".into()),
            S3Fault::NotImplemented("x".into()),
            S3Fault::AccessControlListNotSupported("x".into()),
            S3Fault::MissingContentLength,
            S3Fault::InvalidDigest,
            S3Fault::BadDigest("x".into()),
            S3Fault::ChunkSignatureMismatch,
            S3Fault::IncompleteBody("x".into()),
            S3Fault::RequestTimeout(Duration::from_secs(1)),
            S3Fault::AccessDenied("x".into()),
            S3Fault::InvalidAccessKeyId,
            S3Fault::AuthorizationHeaderMalformed("x".into()),
            S3Fault::AuthorizationQueryParametersError("x".into()),
            S3Fault::Internal("x".into()),
        ];
        for f in all {
            let (code, status, _) = f.parts();
            // A code s3s's table lacks (AWS has it) is checked by its own test.
            if !matches!(code, S3ErrorCode::Custom(_)) {
                assert_eq!(
                    code.status_code(),
                    Some(status),
                    "{f:?}: the table's status differs from AWS's for {}",
                    code.as_str()
                );
            }
            let e = S3Error::from(f);
            assert_eq!(e.status_code(), Some(status));
        }
        let busy = S3Error::from(S3Fault::Unavailable {
            message: "m".into(),
            retry_after: true,
        });
        assert_eq!(busy.status_code(), Some(StatusCode::SERVICE_UNAVAILABLE));
        assert!(
            busy.headers()
                .is_some_and(|h| h.contains_key("retry-after"))
        );
    }
}
