//! Object reads: GET and HEAD, their conditions (RFC 9110 as S3 applies them), ranges and part
//! numbers, and the headers answered.

use std::ops::Range;

use s3s::dto::{
    ETag, ETagCondition, GetObjectInput, GetObjectOutput, HeadObjectInput, HeadObjectOutput,
    Metadata, Timestamp,
};
use s3s::{S3Error, S3Request, S3Response, S3Result};

use super::body::object_stream;
use super::checksum::from_stored;
use super::error::S3Fault;
use super::lock::lock_headers;
use super::versioning::{answered_id, id_of};
use super::{Gateway, object_error, timestamp};
use crate::core::format::{Manifest, ObjectMeta};
use crate::core::ssec::CustomerKey;

fn header<'a>(meta: &'a ObjectMeta, name: &str) -> Option<&'a String> {
    meta.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

fn metadata(meta: &ObjectMeta) -> Option<Metadata> {
    if meta.user_metadata.is_empty() {
        return None;
    }
    Some(meta.user_metadata.iter().cloned().collect())
}

pub(super) fn etag_of(meta: &ObjectMeta) -> ETag {
    ETag::Strong(meta.etag.clone())
}

pub(super) fn matches(cond: &ETagCondition, etag: &str) -> bool {
    match cond {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == etag,
    }
}

/// Whole seconds, as HTTP dates compare.
fn secs(t: &Timestamp) -> i64 {
    time::OffsetDateTime::from(t.clone()).unix_timestamp()
}

/// Conditional GET/HEAD (RFC 9110 as S3 applies it): Err(412) or Err(304).
pub(super) fn check_read_conditions(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
    etag: &str,
    modified_ms: u64,
) -> S3Result<()> {
    let modified = (modified_ms / 1000) as i64;
    match if_match {
        Some(c) if !matches(c, etag) => {
            return Err(S3Fault::PreconditionFailed.into());
        }
        Some(_) => {}
        None => {
            if let Some(t) = if_unmodified_since
                && modified > secs(t)
            {
                return Err(S3Fault::PreconditionFailed.into());
            }
        }
    }
    let not_modified = match if_none_match {
        Some(c) => matches(c, etag),
        None => if_modified_since.is_some_and(|t| modified <= secs(t)),
    };
    if not_modified {
        return Err(not_modified_error(etag, modified_ms));
    }
    Ok(())
}

/// 304 Not Modified, with the ETag and Last-Modified a 200 would have carried (RFC 9110
/// 15.4.5: caches update what they hold from them).
fn not_modified_error(etag: &str, modified_ms: u64) -> S3Error {
    let mut e = S3Error::from(S3Fault::NotModified);
    let mut headers = http::HeaderMap::new();
    if let Ok(v) = http::HeaderValue::from_str(&format!("\"{etag}\"")) {
        headers.insert(http::header::ETAG, v);
    }
    let mut date = Vec::new();
    if timestamp(modified_ms)
        .format(s3s::dto::TimestampFormat::HttpDate, &mut date)
        .is_ok()
        && let Ok(v) = http::HeaderValue::from_bytes(&date)
    {
        headers.insert(http::header::LAST_MODIFIED, v);
    }
    e.set_headers(headers);
    e
}

/// The [`ReadAsk`] of a GetObject or HeadObject input (same field names in both).
macro_rules! read_ask {
    ($i:expr) => {
        ReadAsk {
            if_match: $i.if_match.as_ref(),
            if_none_match: $i.if_none_match.as_ref(),
            if_modified_since: $i.if_modified_since.as_ref(),
            if_unmodified_since: $i.if_unmodified_since.as_ref(),
            range: $i.range.as_ref(),
            part_number: $i.part_number,
            checksum_mode: $i.checksum_mode.as_ref(),
            version_id: $i.version_id.as_deref(),
            sse_customer: (
                $i.sse_customer_algorithm.as_ref(),
                $i.sse_customer_key.as_ref(),
                $i.sse_customer_key_md5.as_ref(),
            ),
        }
    };
}

/// The conditions, range and checksum mode of a GET or HEAD.
struct ReadAsk<'a> {
    if_match: Option<&'a ETagCondition>,
    if_none_match: Option<&'a ETagCondition>,
    if_modified_since: Option<&'a Timestamp>,
    if_unmodified_since: Option<&'a Timestamp>,
    range: Option<&'a s3s::dto::Range>,
    part_number: Option<i32>,
    checksum_mode: Option<&'a s3s::dto::ChecksumMode>,
    /// The `versionId` asked for.
    version_id: Option<&'a str>,
    /// The SSE-C headers: algorithm, key, key MD5.
    sse_customer: (Option<&'a String>, Option<&'a String>, Option<&'a String>),
}

/// A GET or HEAD that passed its conditions: the version, the bytes to send and what to say.
struct ReadPlan {
    /// The version id, when one was asked for (`x-amz-version-id`).
    version_id: Option<String>,
    m: Manifest,
    meta: ObjectMeta,
    range: Range<u64>,
    content_range: Option<String>,
    sums: s3s::dto::Checksum,
    parts_count: Option<i32>,
    /// The customer's key the object is stored under (SSE-C), checked.
    customer: Option<CustomerKey>,
}

/// The stored headers a GET or HEAD answers, each overridden by its `response-*` parameter
/// (AWS's GetObject and HeadObject both take them).
macro_rules! shown_headers {
    ($i:expr, $meta:expr) => {{
        let stored = |name| header($meta, name).cloned();
        (
            Some(
                $i.response_content_type
                    .unwrap_or_else(|| content_type($meta)),
            ),
            $i.response_cache_control
                .or_else(|| stored("cache-control")),
            $i.response_content_disposition
                .or_else(|| stored("content-disposition")),
            $i.response_content_encoding
                .or_else(|| stored("content-encoding")),
            $i.response_content_language
                .or_else(|| stored("content-language")),
            $i.response_expires.or_else(|| stored_expires($meta)),
        )
    }};
}

impl ReadPlan {
    /// 206 for a range or a part, 200 otherwise.
    fn respond<T>(&self, out: T) -> S3Response<T> {
        let mut resp = S3Response::new(out);
        if self.content_range.is_some() {
            resp.status = Some(http::StatusCode::PARTIAL_CONTENT);
        }
        resp
    }
}

/// Content-Type as stored, or S3's default.
fn content_type(meta: &ObjectMeta) -> String {
    meta.content_type
        .clone()
        .unwrap_or_else(|| "binary/octet-stream".into())
}

/// The byte range a GET/HEAD asks for (Range or partNumber), and the Content-Range to answer.
fn select(
    meta: &ObjectMeta,
    range: Option<&s3s::dto::Range>,
    part_number: Option<i32>,
) -> S3Result<(Range<u64>, Option<String>)> {
    let size = meta.size;
    if let Some(r) = range {
        if part_number.is_some() {
            return Err(S3Fault::InvalidRequest(
                "Cannot specify both Range header and partNumber query parameter".into(),
            )
            .into());
        }
        let r = r
            .check(size)
            .map_err(|_| S3Error::from(S3Fault::RangeNotSatisfiable))?;
        if r.start >= size {
            return Err(S3Fault::RangeNotSatisfiable.into());
        }
        let cr = format!("bytes {}-{}/{}", r.start, r.end - 1, size);
        return Ok((r, Some(cr)));
    }
    if let Some(n) = part_number {
        let count = meta.parts.len().max(1);
        if n < 1 || n as usize > count {
            return Err(S3Fault::PartNotSatisfiable.into());
        }
        if meta.parts.is_empty() {
            return Ok((0..size, None));
        }
        let start: u64 = meta.parts[..n as usize - 1].iter().map(|p| p.size).sum();
        let end = start + meta.parts[n as usize - 1].size;
        let cr = (end > start).then(|| format!("bytes {}-{}/{}", start, end - 1, size));
        return Ok((start..end, cr));
    }
    Ok((0..size, None))
}

impl Gateway {
    async fn plan_read(
        &self,
        bucket: &str,
        key: &str,
        ask: ReadAsk<'_>,
        extensions: &http::Extensions,
    ) -> S3Result<ReadPlan> {
        self.require_bucket(bucket)?;
        let (alg, k, md5) = ask.sse_customer;
        let customer = super::ssec::customer_key(alg, k, md5, extensions)?;
        let (m, meta) = self.object_at(bucket, key, ask.version_id).await?;
        super::ssec::may_open(&meta, customer.as_ref())?;
        check_read_conditions(
            ask.if_match,
            ask.if_none_match,
            ask.if_modified_since,
            ask.if_unmodified_since,
            &meta.etag,
            m.created_ms,
        )?;
        let (range, content_range) = select(&meta, ask.range, ask.part_number)?;
        let sums = if content_range.is_none()
            && ask.checksum_mode.is_some_and(|c| c.as_str() == "ENABLED")
        {
            from_stored(&meta.checksums)
        } else {
            s3s::dto::Checksum::default()
        };
        let parts_count = (!meta.parts.is_empty() && ask.part_number.is_some())
            .then_some(meta.parts.len() as i32);
        Ok(ReadPlan {
            version_id: ask
                .version_id
                .map(|_| id_of(&m))
                .or_else(|| answered_id(&m)),
            m,
            meta,
            range,
            content_range,
            sums,
            parts_count,
            customer,
        })
    }

    pub(crate) async fn get_object_op(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let i = req.input;
        let p = self
            .plan_read(&i.bucket, &i.key, read_ask!(i), &req.extensions)
            .await?;
        let reader = self
            .objects
            .reader_keyed(&p.m, p.range.clone(), p.customer.as_ref())
            .map_err(object_error)?;
        let body = object_stream(reader).await.map_err(object_error)?;
        let lock = lock_headers(&p.m);
        let (sse, sse_customer_algorithm, sse_customer_key_md5) =
            super::ssec::answer(p.customer.as_ref());
        let (
            content_type,
            cache_control,
            content_disposition,
            content_encoding,
            content_language,
            expires,
        ) = shown_headers!(i, &p.meta);
        let out = GetObjectOutput {
            server_side_encryption: sse,
            sse_customer_algorithm,
            sse_customer_key_md5,
            body: Some(body),
            accept_ranges: Some("bytes".into()),
            content_length: Some((p.range.end - p.range.start) as i64),
            content_range: p.content_range.clone(),
            content_type,
            cache_control,
            content_disposition,
            content_encoding,
            content_language,
            expires,
            e_tag: Some(etag_of(&p.meta)),
            last_modified: Some(timestamp(p.m.created_ms)),
            metadata: metadata(&p.meta),
            parts_count: p.parts_count,
            tag_count: Some(crate::core::tags::of(&p.meta).len() as i32).filter(|&n| n > 0),
            checksum_crc32: p.sums.checksum_crc32.clone(),
            checksum_crc32c: p.sums.checksum_crc32c.clone(),
            checksum_sha1: p.sums.checksum_sha1.clone(),
            checksum_sha256: p.sums.checksum_sha256.clone(),
            version_id: p.version_id.clone(),
            object_lock_mode: lock.0,
            object_lock_retain_until_date: lock.1,
            object_lock_legal_hold_status: lock.2,
            ..Default::default()
        };
        Ok(p.respond(out))
    }

    pub(crate) async fn head_object_op(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let i = req.input;
        let p = self
            .plan_read(&i.bucket, &i.key, read_ask!(i), &req.extensions)
            .await?;
        let lock = lock_headers(&p.m);
        let (sse, sse_customer_algorithm, sse_customer_key_md5) =
            super::ssec::answer(p.customer.as_ref());
        let (
            content_type,
            cache_control,
            content_disposition,
            content_encoding,
            content_language,
            expires,
        ) = shown_headers!(i, &p.meta);
        let out = HeadObjectOutput {
            server_side_encryption: sse,
            sse_customer_algorithm,
            sse_customer_key_md5,
            accept_ranges: Some("bytes".into()),
            content_length: Some((p.range.end - p.range.start) as i64),
            content_range: p.content_range.clone(),
            content_type,
            cache_control,
            content_disposition,
            content_encoding,
            content_language,
            expires,
            e_tag: Some(etag_of(&p.meta)),
            last_modified: Some(timestamp(p.m.created_ms)),
            metadata: metadata(&p.meta),
            parts_count: p.parts_count,
            checksum_crc32: p.sums.checksum_crc32.clone(),
            checksum_crc32c: p.sums.checksum_crc32c.clone(),
            checksum_sha1: p.sums.checksum_sha1.clone(),
            checksum_sha256: p.sums.checksum_sha256.clone(),
            version_id: p.version_id.clone(),
            object_lock_mode: lock.0,
            object_lock_retain_until_date: lock.1,
            object_lock_legal_hold_status: lock.2,
            ..Default::default()
        };
        Ok(p.respond(out))
    }
}

/// The `Expires` an object was written with (kept as an HTTP date), if it reads as one.
fn stored_expires(meta: &ObjectMeta) -> Option<Timestamp> {
    let text = header(meta, "expires")?;
    Timestamp::parse(s3s::dto::TimestampFormat::HttpDate, text).ok()
}
