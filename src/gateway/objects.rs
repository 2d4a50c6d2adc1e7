//! Object operations: PUT, GET, HEAD, DELETE, DeleteObjects, CopyObject.

use std::ops::Range;

use s3s::dto::{
    CopyObjectInput, CopyObjectOutput, CopyObjectResult, CopySource, DeleteObjectInput,
    DeleteObjectOutput, DeleteObjectsInput, DeleteObjectsOutput, DeletedObject, ETagCondition,
    Error as S3ItemError, Metadata, PutObjectInput, PutObjectOutput, Timestamp,
};
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use super::body::{BodyReader, IdleLimit};
use super::checksum::{Wanted, check_content_md5, from_stored, to_stored, wanted_of};
use super::error::S3Fault;
use super::lock::lock_ask;
use super::reads::{check_read_conditions, etag_of, matches};
use super::versioning::{about_marker, answered_id, id_of};
use super::{Gateway, MAX_DELETE_KEYS, MAX_PUT_SIZE, object_error, timestamp};
use crate::coordinator::object::{Missed, ObjectError, PutInput, Staged};
use crate::core::access::Action;
use crate::core::format::{Manifest, ManifestBody, ObjectMeta, Versioning};
use crate::core::ids::hex;
use crate::core::ssec::CustomerKey;

/// [`stored_headers`] of an S3 input with those fields (PutObject, CopyObject,
/// CreateMultipartUpload).
macro_rules! stored_headers_of {
    ($i:expr) => {
        $crate::gateway::objects::stored_headers(
            $i.cache_control.as_ref(),
            $i.content_disposition.as_ref(),
            $i.content_encoding.as_ref(),
            $i.content_language.as_ref(),
            $i.expires.as_ref(),
        )
    };
}
pub(crate) use stored_headers_of;

/// Headers stored with an object besides Content-Type and user metadata.
pub(crate) fn stored_headers(
    cache_control: Option<&String>,
    content_disposition: Option<&String>,
    content_encoding: Option<&String>,
    content_language: Option<&String>,
    expires: Option<&Timestamp>,
) -> Vec<(String, String)> {
    let mut h = Vec::new();
    // `aws-chunked` is how the request's body was framed, not how the object is encoded: S3
    // keeps only the codings named with it (`gzip,aws-chunked` is stored as `gzip`).
    let content_encoding = content_encoding
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("aws-chunked"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .filter(|v| !v.is_empty());
    for (name, v) in [
        ("cache-control", cache_control),
        ("content-disposition", content_disposition),
        ("content-encoding", content_encoding.as_ref()),
        ("content-language", content_language),
    ] {
        if let Some(v) = v {
            h.push((name.to_owned(), v.clone()));
        }
    }
    if let Some(e) = expires {
        let mut buf = Vec::new();
        if e.format(s3s::dto::TimestampFormat::HttpDate, &mut buf)
            .is_ok()
        {
            h.push((
                "expires".to_owned(),
                String::from_utf8_lossy(&buf).into_owned(),
            ));
        }
    }
    h
}

/// Stored headers with the tags an `x-amz-tagging` header asks for (checked: 400 InvalidTag).
pub(crate) fn with_tags(
    mut headers: Vec<(String, String)>,
    tagging: Option<&String>,
) -> S3Result<Vec<(String, String)>> {
    crate::core::tags::set(&mut headers, &super::tagging::header_tags(tagging)?);
    Ok(headers)
}

/// User metadata as stored (names lower-case, sorted); S3's limit is 2 KiB of names and values.
pub(crate) fn user_metadata(m: Option<Metadata>) -> S3Result<Vec<(String, String)>> {
    let mut v: Vec<(String, String)> = m
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    v.sort();
    let size: usize = v.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > super::MAX_USER_METADATA {
        return Err(S3Fault::MetadataTooLarge.into());
    }
    Ok(v)
}

impl Gateway {
    /// The current object of (bucket, key) at a read quorum of the nodes, never older than
    /// the version the index holds (a withholding or rolled-back site is outvoted).
    pub(crate) async fn current(
        &self,
        bucket: &str,
        key: &str,
    ) -> S3Result<(Manifest, ObjectMeta)> {
        let known = self.index.get(bucket, key)?;
        let m = match self
            .objects
            .head(bucket, key, known.as_ref().map(|e| e.order))
            .await
        {
            // The index's current version is a delete the nodes do not show: deleted.
            Err(ObjectError::Behind { .. }) if known.as_ref().is_some_and(|e| e.deleted) => {
                return Err(S3Fault::NoSuchKey.into());
            }
            r => r.map_err(object_error)?.ok_or(S3Fault::NoSuchKey)?,
        };
        match m.body.meta() {
            Some(meta) => {
                let meta = meta.clone();
                Ok((m, meta))
            }
            None if m.state.written_under != Versioning::Unversioned => {
                Err(about_marker(S3Fault::NoSuchKey, &m))
            }
            None => Err(S3Fault::NoSuchKey.into()),
        }
    }

    /// Stages a request body, then checks Content-MD5 and the S3 checksums (headers or
    /// trailers). Nothing is visible until these hold: the object is committed only after them.
    pub(crate) async fn stage_checked(
        &self,
        input: PutInput,
        body: Option<s3s::dto::StreamingBlob>,
        wanted: &Wanted,
        content_md5: Option<&str>,
        trailers: Option<&s3s::TrailingHeaders>,
    ) -> S3Result<(Staged, s3s::dto::Checksum)> {
        let limit = IdleLimit {
            idle: self.body_idle,
            stalls: self.metrics.body_stalls.clone(),
        };
        let mut body = BodyReader::new(body, wanted.hasher(), self.metrics.received.clone(), limit);
        let mut staged = self
            .objects
            .stage(input, &mut body)
            .await
            .map_err(object_error)?;
        let sums = std::mem::take(&mut body.hasher).finalize();
        check_content_md5(content_md5, &staged.md5)?;
        wanted.verify(&sums, trailers)?;
        staged.meta.checksums = to_stored(&sums);
        Ok((staged, sums))
    }

    /// Commits a staged object; what the write quorum went without (shards, the manifest at
    /// some node) is recorded for repair.
    pub(crate) async fn commit(&self, staged: Staged) -> S3Result<Manifest> {
        self.acknowledged(self.objects.commit_reporting(staged).await)
            .map_err(object_error)
    }

    /// Writes a tombstone for (bucket, key) (a delete marker under versioning `under`); a
    /// manifest node that missed it is recorded for repair.
    pub(crate) async fn delete_manifest(
        &self,
        bucket: &str,
        key: &str,
        under: Versioning,
    ) -> Result<Manifest, ObjectError> {
        self.acknowledged(self.objects.delete(bucket, key, under).await)
    }

    /// After a manifest write: a failed one leaves withdrawals pending (recorded); an
    /// acknowledged one may have gone without some shards or manifest copies (recorded for
    /// repair). The write is durable at its quorum either way: a record that cannot be written
    /// is logged, and heal finds the gap.
    pub(crate) fn acknowledged(
        &self,
        written: Result<(Manifest, Missed), ObjectError>,
    ) -> Result<Manifest, ObjectError> {
        let (m, missed) = written.inspect_err(|_| self.after_failed_write())?;
        if missed.any() {
            tracing::warn!(
                object = %hex(&m.object.0),
                shards = ?missed.shards,
                manifest = missed.manifest,
                "acknowledged without every shard or manifest copy; recorded for repair"
            );
            if let Err(e) = self
                .index
                .record_repair(&m.object, m.version, &missed.shards)
            {
                tracing::warn!(error = %e, "recording a write for repair failed; heal finds it");
            }
        }
        Ok(m)
    }

    /// After a write answered with an error: records the withdrawals it left pending.
    fn after_failed_write(&self) {
        if let Err(e) = self.repair.keep_withdrawals() {
            tracing::error!(error = %e, "recording pending withdrawals");
        }
    }

    /// Takes an acknowledged version into the index (its commit shared with the other
    /// writes waiting then).
    pub(crate) async fn record(&self, m: &Manifest) -> S3Result<()> {
        self.index
            .apply_async(&m.bucket, &m.key, &super::entry_of(m))
            .await?;
        Ok(())
    }

    /// Refuses a write that `If-None-Match: *` or `If-Match` forbid.
    async fn check_write_conditions(
        &self,
        bucket: &str,
        key: &str,
        if_match: Option<&ETagCondition>,
        if_none_match: Option<&ETagCondition>,
    ) -> S3Result<()> {
        if if_match.is_none() && if_none_match.is_none() {
            return Ok(());
        }
        let current = match self.current(bucket, key).await {
            Ok((_, meta)) => Some(meta.etag),
            Err(e) if *e.code() == S3ErrorCode::NoSuchKey => None,
            Err(e) => return Err(e),
        };
        if let Some(c) = if_none_match
            && let Some(etag) = &current
            && matches(c, etag)
        {
            return Err(S3Fault::PreconditionFailed.into());
        }
        if let Some(c) = if_match {
            match &current {
                None => return Err(S3Fault::NoSuchKey.into()),
                Some(etag) if !matches(c, etag) => {
                    return Err(S3Fault::PreconditionFailed.into());
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    pub(crate) async fn put_object_op(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        // Versions this request stamps stay out of checkpoints until it ends.
        let _writing = self.writing();
        let trailers = req.trailing_headers.clone();
        let headers = req.headers.clone();
        let i = req.input;
        let config = self.config_of(&i.bucket)?;
        let size = body_size(i.content_length, i.body.as_ref())?;
        if size > MAX_PUT_SIZE {
            return Err(S3Fault::EntityTooLarge.into());
        }
        let wanted = wanted_of!(i, &headers)?;
        let lock = Self::lock_for_write(
            &config,
            &lock_ask!(i),
            i.content_md5.is_some() || wanted.asks_any(),
        )?;
        let conditional = i.if_match.is_some() || i.if_none_match.is_some();
        let _held = if conditional {
            Some(self.key_guard(&i.bucket, &i.key).await)
        } else {
            None
        };
        self.check_write_conditions(
            &i.bucket,
            &i.key,
            i.if_match.as_ref(),
            i.if_none_match.as_ref(),
        )
        .await?;

        let ck = super::ssec::ssec_key!(i, &req.extensions)?;
        let input = PutInput {
            bucket: i.bucket.clone(),
            key: i.key.clone(),
            size,
            content_type: i.content_type.clone(),
            user_metadata: user_metadata(i.metadata)?,
            headers: with_tags(stored_headers_of!(i), i.tagging.as_ref())?,
            state: Self::write_state(&config, lock),
            customer_key: ck.clone(),
        };
        let (staged, sums) = self
            .stage_checked(
                input,
                i.body,
                &wanted,
                i.content_md5.as_deref(),
                trailers.as_ref(),
            )
            .await?;
        self.still(&req.extensions, &i.bucket, Action::Write)?;
        let m = self.commit(staged).await?;
        self.record(&m).await?;
        let Some(meta) = m.body.meta() else {
            return Err(super::internal("a put wrote a tombstone"));
        };
        let out = from_stored(&meta.checksums);
        let (sse, sse_customer_algorithm, sse_customer_key_md5) = super::ssec::answer(ck.as_ref());
        Ok(S3Response::new(PutObjectOutput {
            server_side_encryption: sse,
            sse_customer_algorithm,
            sse_customer_key_md5,
            e_tag: Some(etag_of(meta)),
            checksum_crc32: out.checksum_crc32,
            checksum_crc32c: out.checksum_crc32c,
            checksum_sha1: out.checksum_sha1,
            checksum_sha256: out.checksum_sha256,
            checksum_crc64nvme: sums.checksum_crc64nvme,
            size: Some(meta.size as i64),
            version_id: answered_id(&m),
            ..Default::default()
        }))
    }

    /// Deletes (bucket, key): a version id removes that version for good; without one, the
    /// key's end (unversioned) or a delete marker. Returns the version written or removed,
    /// if any.
    /// A removal by id, or one under `If-Match`, holds the key's lock from its check to its
    /// write.
    async fn delete_one(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        if_match: Option<&ETagCondition>,
        under: Versioning,
        bypass: bool,
    ) -> S3Result<Option<Manifest>> {
        let _held = if version_id.is_some() || if_match.is_some() {
            Some(self.key_guard(bucket, key).await)
        } else {
            None
        };
        if let Some(c) = if_match {
            let (_, meta) = self.object_at(bucket, key, version_id).await?;
            if !matches(c, &meta.etag) {
                return Err(S3Fault::PreconditionFailed.into());
            }
        }
        if let Some(id) = version_id {
            return self.remove_version(bucket, key, id, bypass).await;
        }
        let m = self
            .delete_manifest(bucket, key, under)
            .await
            .map_err(object_error)?;
        self.record(&m).await?;
        Ok(Some(m))
    }

    pub(crate) async fn delete_object_op(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        // Versions this request stamps stay out of checkpoints until it ends.
        let _writing = self.writing();
        let i = req.input;
        let under = self.config_of(&i.bucket)?.versioning;
        let id = i.version_id.as_deref();
        let bypass = i.bypass_governance_retention.unwrap_or(false);
        let done = self
            .delete_one(&i.bucket, &i.key, id, i.if_match.as_ref(), under, bypass)
            .await?;
        let (version_id, delete_marker) = deleted_as(done.as_ref(), id);
        let mut resp = S3Response::new(DeleteObjectOutput {
            version_id,
            delete_marker,
            ..Default::default()
        });
        resp.status = Some(http::StatusCode::NO_CONTENT);
        Ok(resp)
    }

    pub(crate) async fn delete_objects_op(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        // Versions this request stamps stay out of checkpoints until it ends.
        let _writing = self.writing();
        let i = req.input;
        let under = self.config_of(&i.bucket)?.versioning;
        let bypass = i.bypass_governance_retention.unwrap_or(false);
        if i.delete.objects.len() > MAX_DELETE_KEYS {
            return Err(S3Fault::MalformedXml(
                "a DeleteObjects request names at most 1000 keys".into(),
            )
            .into());
        }
        let quiet = i.delete.quiet.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for o in i.delete.objects {
            if o.key.len() > super::MAX_KEY_BYTES {
                errors.push(S3ItemError {
                    code: Some("KeyTooLongError".into()),
                    key: Some(o.key),
                    message: Some("keys are at most 1024 bytes".into()),
                    version_id: o.version_id,
                });
                continue;
            }
            let id = o.version_id.as_deref();
            // Each key meets the bucket's policy (and, for a key, its grants) on its own.
            if let Err(e) = self.may_delete(&req.extensions, &i.bucket, &o.key) {
                let e = S3Error::from(e);
                errors.push(S3ItemError {
                    code: Some(e.code().as_str().to_owned()),
                    key: Some(o.key),
                    message: e.message().map(str::to_owned),
                    version_id: o.version_id,
                });
                continue;
            }
            match self
                .delete_one(&i.bucket, &o.key, id, None, under, bypass)
                .await
            {
                Ok(done) => {
                    if !quiet {
                        let (version_id, delete_marker) = deleted_as(done.as_ref(), id);
                        // A delete marker written now is named by its own id.
                        let marker_id = (id.is_none() && delete_marker.is_some())
                            .then(|| version_id.clone())
                            .flatten();
                        deleted.push(DeletedObject {
                            key: Some(o.key),
                            version_id: id.map(str::to_owned),
                            delete_marker,
                            delete_marker_version_id: marker_id,
                        });
                    }
                }
                Err(e) => errors.push(S3ItemError {
                    code: Some(e.code().as_str().to_owned()),
                    key: Some(o.key),
                    message: e.message().map(str::to_owned),
                    version_id: o.version_id,
                }),
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        }))
    }

    /// The source of a copy: its manifest, after the copy-source conditions.
    pub(crate) async fn copy_source(
        &self,
        source: &CopySource,
        if_match: Option<&ETagCondition>,
        if_none_match: Option<&ETagCondition>,
        if_modified_since: Option<&Timestamp>,
        if_unmodified_since: Option<&Timestamp>,
    ) -> S3Result<(Manifest, ObjectMeta)> {
        let CopySource::Bucket {
            bucket,
            key,
            version_id,
        } = source
        else {
            return Err(S3Fault::NotImplemented(
                "access point copy sources are not supported".into(),
            )
            .into());
        };
        self.require_bucket(bucket)?;
        let (m, meta) = self
            .object_at(bucket, key, version_id.as_deref())
            .await
            .map_err(|e| {
                // A delete marker cannot be copied: AWS answers 400 for one named by id.
                if *e.code() == S3ErrorCode::MethodNotAllowed {
                    S3Fault::InvalidRequest(
                        "The source of a copy request may not specifically refer to a delete \
                         marker by version id."
                            .into(),
                    )
                    .into()
                } else {
                    e
                }
            })?;
        // For copies, a failed If-None-Match or If-Modified-Since is 412, not 304.
        check_read_conditions(
            if_match,
            if_none_match,
            if_modified_since,
            if_unmodified_since,
            &meta.etag,
            m.created_ms,
        )
        .map_err(|e| {
            if *e.code() == S3ErrorCode::NotModified {
                S3Error::from(S3Fault::PreconditionFailed)
            } else {
                e
            }
        })?;
        Ok((m, meta))
    }

    /// Streams `range` of a stored object into a new staged object.
    pub(crate) async fn copy_into(
        &self,
        src: &Manifest,
        range: Range<u64>,
        input: PutInput,
        src_key: Option<&CustomerKey>,
    ) -> S3Result<Staged> {
        let reader = self
            .objects
            .reader_keyed(src, range, src_key)
            .map_err(object_error)?;
        let (pipe, feed) = super::body::pipe_from(vec![reader]);
        let staged = self.objects.stage(input, pipe).await;
        let fed = feed.await;
        let staged = staged.map_err(object_error)?;
        match fed {
            Ok(Ok(())) => Ok(staged),
            Ok(Err(e)) => Err(object_error(e)),
            Err(e) => Err(super::internal(e)),
        }
    }

    pub(crate) async fn copy_object_op(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        // Versions this request stamps stay out of checkpoints until it ends.
        let _writing = self.writing();
        let i = req.input;
        let config = self.config_of(&i.bucket)?;
        // A copy carries no body to check: its lock parameters need no checksum.
        let lock = Self::lock_for_write(&config, &lock_ask!(i), true)?;
        let (src, meta) = self
            .copy_source(
                &i.copy_source,
                i.copy_source_if_match.as_ref(),
                i.copy_source_if_none_match.as_ref(),
                i.copy_source_if_modified_since.as_ref(),
                i.copy_source_if_unmodified_since.as_ref(),
            )
            .await?;
        let replace = i
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == "REPLACE");
        // A version named by id may be copied onto its own key: S3's way to restore one.
        let by_id = matches!(
            &i.copy_source,
            CopySource::Bucket {
                version_id: Some(_),
                ..
            }
        );
        let src_key = super::ssec::ssec_source_key!(i, &req.extensions)?;
        super::ssec::may_open(&meta, src_key.as_ref())?;
        let ck = super::ssec::ssec_key!(i, &req.extensions)?;
        // Changing how it is encrypted is a change: a copy onto itself may do that.
        let rekeyed = src_key.is_some() || ck.is_some();
        if !replace && !by_id && !rekeyed && src.bucket == i.bucket && src.key == i.key {
            return Err(S3Fault::InvalidRequest("This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.".into()).into());
        }
        let (content_type, user_meta, mut headers) = if replace {
            (
                i.content_type.clone(),
                user_metadata(i.metadata)?,
                stored_headers_of!(i),
            )
        } else {
            (
                meta.content_type.clone(),
                meta.user_metadata.clone(),
                meta.headers.clone(),
            )
        };
        // Tags follow their own directive: COPY (the default) keeps the source's, REPLACE
        // takes `x-amz-tagging` (none: no tags).
        let tags = match i.tagging_directive.as_ref().map(|d| d.as_str()) {
            None | Some("COPY") => crate::core::tags::of(&meta),
            Some("REPLACE") => super::tagging::header_tags(i.tagging.as_ref())?,
            Some(other) => {
                return Err(S3Fault::InvalidArgument(format!(
                    "Unknown tagging directive: {other}"
                ))
                .into());
            }
        };
        crate::core::tags::set(&mut headers, &tags);
        let input = PutInput {
            bucket: i.bucket.clone(),
            key: i.key.clone(),
            size: meta.size,
            content_type,
            user_metadata: user_meta,
            headers,
            state: Self::write_state(&config, lock),
            customer_key: ck.clone(),
        };
        let mut staged = self
            .copy_into(&src, 0..meta.size, input, src_key.as_ref())
            .await?;
        // The source's ETag, as the copy's plaintext MD5 makes it (keyed by the source's key).
        let expected = match &src_key {
            Some(k) => k.etag(&staged.md5),
            None => staged.md5.clone(),
        };
        if expected != meta.etag && meta.parts.is_empty() {
            return Err(super::internal("the copy's MD5 differs from the source's"));
        }
        staged.meta.checksums = meta.checksums.clone();
        self.still_copying(&req.extensions, &i.copy_source, &i.bucket)?;
        let m = self.commit(staged).await?;
        self.record(&m).await?;
        let Some(out) = m.body.meta() else {
            return Err(super::internal("a copy wrote a tombstone"));
        };
        let (sse, sse_customer_algorithm, sse_customer_key_md5) = super::ssec::answer(ck.as_ref());
        Ok(S3Response::new(CopyObjectOutput {
            server_side_encryption: sse,
            sse_customer_algorithm,
            sse_customer_key_md5,
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(etag_of(out)),
                last_modified: Some(timestamp(m.created_ms)),
                ..Default::default()
            }),
            copy_source_version_id: answered_id(&src),
            version_id: answered_id(&m),
            ..Default::default()
        }))
    }
}

/// The payload length of an upload: its Content-Length, or (an aws-chunked body sent with
/// chunked transfer encoding, as botocore does over HTTPS) the decoded length `s3s` knows.
pub(crate) fn body_size(
    content_length: Option<i64>,
    body: Option<&s3s::dto::StreamingBlob>,
) -> S3Result<u64> {
    match content_length {
        Some(n) if n >= 0 => Ok(n as u64),
        Some(_) => Err(S3Fault::InvalidArgument("negative Content-Length".into()).into()),
        None => body
            .and_then(|b| {
                use s3s::stream::ByteStream as _;
                b.remaining_length().exact()
            })
            .map(|n| n as u64)
            .ok_or_else(|| S3Error::from(S3Fault::MissingContentLength)),
    }
}

/// What a delete answers (`x-amz-version-id`, `x-amz-delete-marker`): with an id, that id and
/// whether the version removed was a delete marker; without, the delete marker written, if
/// the bucket's versioning made one.
fn deleted_as(done: Option<&Manifest>, id: Option<&str>) -> (Option<String>, Option<bool>) {
    let marker = |m: &Manifest| matches!(m.body, ManifestBody::Tombstone);
    match (id, done) {
        (Some(id), done) => (
            Some(id.to_owned()),
            done.filter(|m| marker(m)).map(|_| true),
        ),
        (None, Some(m)) if m.state.written_under != Versioning::Unversioned => {
            (Some(id_of(m)), Some(true))
        }
        (None, _) => (None, None),
    }
}
