//! Multipart uploads. Each part is stored as a hidden object in the upload's own namespace
//! (sealed and erasure-coded like any object), and so is the upload's own record (its
//! metadata: an index rebuilt from the sites lists the upload again); CompleteMultipartUpload
//! writes one manifest that references the parts, so the data is written once. See
//! `docs/decisions/multipart.md`.

use std::collections::BTreeMap;

use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, CommonPrefix,
    CompleteMultipartUploadInput, CompleteMultipartUploadOutput, CopyPartResult,
    CreateMultipartUploadInput, CreateMultipartUploadOutput, ETag, ListMultipartUploadsInput,
    ListMultipartUploadsOutput, ListPartsInput, ListPartsOutput, MultipartUpload, Part,
    UploadPartCopyInput, UploadPartCopyOutput, UploadPartInput, UploadPartOutput,
};
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use super::buckets::{HIDDEN, owner};
use super::checksum::{from_stored, wanted_of};
use super::error::S3Fault;
use super::lock::{LockAsk, lock_ask};
use super::objects::{stored_headers_of, user_metadata, with_tags};
use super::versioning::answered_id;
use super::{Gateway, MAX_PARTS, MAX_PUT_SIZE, MIN_PART_SIZE, object_error, timestamp};
use crate::coordinator::object::{PutInput, Staged};
use crate::core::access::Action;
use crate::core::format::{
    Manifest, ManifestBody, ObjectMeta, Part as StoredPart, PartRef, PartsBody, Versioning,
};
use crate::core::ids::{hex, unhex};
use crate::core::ssec::CustomerKey;
use crate::meta::{MetaError, PartRecord, UploadRecord};
use crate::sys::{now_ms, random};

/// The header of an upload's own record (its key: the upload id) that carries its
/// `UploadRecord` (JSON).
const UPLOAD_HEADER: &str = "x-exclave-upload";

fn hidden_bucket(bucket: &str) -> String {
    format!("{bucket}{HIDDEN}uploads")
}

fn no_such_upload() -> S3Error {
    S3Error::from(S3Fault::NoSuchUpload)
}

fn check_part_number(n: i32) -> S3Result<u32> {
    if (1..=MAX_PARTS).contains(&n) {
        Ok(n as u32)
    } else {
        Err(S3Fault::InvalidPartNumber.into())
    }
}

impl Gateway {
    pub(crate) fn upload_of(&self, id: &str, bucket: &str, key: &str) -> S3Result<UploadRecord> {
        match self.index.upload(id)? {
            Some(u) if u.bucket == bucket && u.key == key => Ok(u),
            _ => Err(no_such_upload()),
        }
    }

    pub(crate) async fn create_multipart_upload_op(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let i = req.input;
        let config = self.config_of(&i.bucket)?;
        // Checked now, applied at Complete.
        Self::lock_for_write(&config, &lock_ask!(i), true)?;
        let ck = super::ssec::ssec_key!(i, &req.extensions)?;
        let mut raw = [0u8; 16];
        random(&mut raw);
        let id = hex(&raw);
        let mut rec = UploadRecord {
            bucket: i.bucket.clone(),
            key: i.key.clone(),
            initiated_ms: now_ms(),
            content_type: i.content_type.clone(),
            user_metadata: user_metadata(i.metadata)?,
            headers: with_tags(stored_headers_of!(i), i.tagging.as_ref())?,
            checksum_algorithm: i.checksum_algorithm.as_ref().map(|a| a.as_str().to_owned()),
            lock_mode: i.object_lock_mode.as_ref().map(|m| m.as_str().to_owned()),
            lock_until_ms: i
                .object_lock_retain_until_date
                .as_ref()
                .map(super::lock::ms_of),
            legal_hold: i
                .object_lock_legal_hold_status
                .as_ref()
                .map(|h| h.as_str().to_owned()),
        };
        // Every part is sent with the same customer key, and the object answers to it.
        super::ssec::mark(&mut rec.headers, ck.as_ref());
        // The upload's own record at the nodes (its metadata, sealed): an index rebuilt from
        // the sites lists it again, with its parts.
        let _writing = self.writing();
        let record = PutInput {
            bucket: hidden_bucket(&i.bucket),
            key: id.clone(),
            size: 0,
            headers: vec![(
                UPLOAD_HEADER.to_owned(),
                serde_json::to_string(&rec).map_err(super::internal)?,
            )],
            ..PutInput::default()
        };
        let staged = self
            .objects
            .stage(record, tokio::io::empty())
            .await
            .map_err(object_error)?;
        self.commit(staged).await?;
        self.index.put_upload(&id, &rec)?;
        let (sse, sse_customer_algorithm, sse_customer_key_md5) = super::ssec::answer(ck.as_ref());
        Ok(S3Response::new(CreateMultipartUploadOutput {
            server_side_encryption: sse,
            sse_customer_algorithm,
            sse_customer_key_md5,
            bucket: Some(i.bucket),
            key: Some(i.key),
            upload_id: Some(id),
            checksum_algorithm: i.checksum_algorithm,
            ..Default::default()
        }))
    }

    /// The index's record of a part whose stored object `m` (`meta`) is.
    fn part_record(m: &Manifest, meta: &ObjectMeta) -> PartRecord {
        let sums = from_stored(&meta.checksums);
        let mut checksums = Vec::new();
        for (name, v) in [
            ("CRC32", sums.checksum_crc32),
            ("CRC32C", sums.checksum_crc32c),
            ("SHA1", sums.checksum_sha1),
            ("SHA256", sums.checksum_sha256),
        ] {
            if let Some(v) = v {
                checksums.push((name.to_owned(), v));
            }
        }
        PartRecord {
            size: meta.size,
            etag: meta.etag.clone(),
            modified_ms: m.created_ms,
            object_key: m.key.clone(),
            checksums,
        }
    }

    /// Takes into the index the uploads in progress that the records found at the nodes
    /// (`hidden`: the newest record of each key of the uploads' namespaces) describe: an
    /// upload whose own record is its key's newest, and of it the parts whose records are.
    /// Returns how many uploads.
    pub(crate) fn take_uploads<'a>(
        &self,
        hidden: impl IntoIterator<Item = &'a Manifest>,
    ) -> Result<usize, MetaError> {
        let mut uploads: BTreeMap<(String, String), UploadRecord> = BTreeMap::new();
        let mut parts = Vec::new();
        for m in hidden {
            let Some(meta) = m.body.meta() else { continue };
            let Some(bucket) = m.bucket.strip_suffix(&format!("{HIDDEN}uploads")) else {
                continue;
            };
            match m.key.split_once('/') {
                None => {
                    let text = meta
                        .headers
                        .iter()
                        .find(|(n, _)| n == UPLOAD_HEADER)
                        .map(|(_, v)| v.as_str());
                    match text.map(serde_json::from_str::<UploadRecord>) {
                        Some(Ok(rec)) if rec.bucket == bucket => {
                            uploads.insert((bucket.to_owned(), m.key.clone()), rec);
                        }
                        _ => tracing::warn!(bucket, "an upload's record does not read: skipped"),
                    }
                }
                Some((id, n)) => {
                    if let Ok(n) = n.parse::<u32>() {
                        parts.push((
                            bucket.to_owned(),
                            id.to_owned(),
                            n,
                            Self::part_record(m, meta),
                        ));
                    }
                }
            }
        }
        for ((_, id), rec) in &uploads {
            if self.index.upload(id)?.is_none() {
                self.index.put_upload(id, rec)?;
            }
        }
        for (bucket, id, n, rec) in parts {
            if uploads.contains_key(&(bucket, id.clone())) {
                self.index.put_part(&id, n, &rec)?;
            }
        }
        Ok(uploads.len())
    }

    /// Commits a staged part and records it, under the key's lock and only while the upload
    /// is still there: a Complete (which holds the lock from its reading of the parts to the
    /// upload's end) references the part versions it read, and a part committed after it
    /// would replace one of them (and the collector would take it). A part left uncommitted
    /// is an orphan for the collector.
    async fn store_part(
        &self,
        id: &str,
        bucket: &str,
        key: &str,
        n: u32,
        staged: Staged,
        ext: &http::Extensions,
    ) -> S3Result<PartRecord> {
        let _held = self.key_guard(bucket, key).await;
        // The upload may have been completed or aborted meanwhile.
        self.upload_of(id, bucket, key)?;
        self.still(ext, bucket, Action::Write)?;
        let m = self.commit(staged).await?;
        let ManifestBody::Object(meta) = &m.body else {
            return Err(super::internal("a part wrote a tombstone"));
        };
        let rec = Self::part_record(&m, meta);
        if let Some(old) = self.index.put_part(id, n, &rec)?
            && old.object_key != rec.object_key
        {
            let _ = self
                .delete_manifest(
                    &hidden_bucket(bucket),
                    &old.object_key,
                    Versioning::Unversioned,
                )
                .await;
        }
        Ok(rec)
    }

    pub(crate) async fn upload_part_op(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        // Versions this request stamps stay out of checkpoints until it ends.
        let _writing = self.writing();
        let trailers = req.trailing_headers.clone();
        let headers = req.headers.clone();
        let i = req.input;
        let n = check_part_number(i.part_number)?;
        self.require_bucket(&i.bucket)?;
        let upload = self.upload_of(&i.upload_id, &i.bucket, &i.key)?;
        let ck = part_key(&upload, super::ssec::ssec_key!(i, &req.extensions)?)?;
        let size = super::objects::body_size(i.content_length, i.body.as_ref())?;
        if size > MAX_PUT_SIZE {
            return Err(S3Fault::EntityTooLarge.into());
        }
        let wanted = wanted_of!(i, &headers)?;
        let input = PutInput {
            bucket: hidden_bucket(&i.bucket),
            key: format!("{}/{n}", i.upload_id),
            size,
            customer_key: ck.clone(),
            ..PutInput::default()
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
        let rec = self
            .store_part(&i.upload_id, &i.bucket, &i.key, n, staged, &req.extensions)
            .await?;
        let (sse, sse_customer_algorithm, sse_customer_key_md5) = super::ssec::answer(ck.as_ref());
        Ok(S3Response::new(UploadPartOutput {
            server_side_encryption: sse,
            sse_customer_algorithm,
            sse_customer_key_md5,
            e_tag: Some(ETag::Strong(rec.etag)),
            checksum_crc32: sums.checksum_crc32,
            checksum_crc32c: sums.checksum_crc32c,
            checksum_sha1: sums.checksum_sha1,
            checksum_sha256: sums.checksum_sha256,
            checksum_crc64nvme: sums.checksum_crc64nvme,
            ..Default::default()
        }))
    }

    pub(crate) async fn upload_part_copy_op(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        // Versions this request stamps stay out of checkpoints until it ends.
        let _writing = self.writing();
        let i = req.input;
        let n = check_part_number(i.part_number)?;
        self.require_bucket(&i.bucket)?;
        let upload = self.upload_of(&i.upload_id, &i.bucket, &i.key)?;
        let ck = part_key(&upload, super::ssec::ssec_key!(i, &req.extensions)?)?;
        let (src, meta) = self
            .copy_source(
                &i.copy_source,
                i.copy_source_if_match.as_ref(),
                i.copy_source_if_none_match.as_ref(),
                i.copy_source_if_modified_since.as_ref(),
                i.copy_source_if_unmodified_since.as_ref(),
            )
            .await?;
        let range = match &i.copy_source_range {
            None => 0..meta.size,
            Some(r) => {
                let r = r.strip_prefix("bytes=").ok_or_else(bad_copy_range)?;
                let (a, b) = r.split_once('-').ok_or_else(bad_copy_range)?;
                let a: u64 = a.parse().map_err(|_| bad_copy_range())?;
                let b: u64 = b.parse().map_err(|_| bad_copy_range())?;
                if a > b || b >= meta.size {
                    return Err(S3Fault::RangeNotSatisfiable.into());
                }
                a..b + 1
            }
        };
        let src_key = super::ssec::ssec_source_key!(i, &req.extensions)?;
        super::ssec::may_open(&meta, src_key.as_ref())?;
        let input = PutInput {
            bucket: hidden_bucket(&i.bucket),
            key: format!("{}/{n}", i.upload_id),
            size: range.end - range.start,
            customer_key: ck.clone(),
            ..PutInput::default()
        };
        let staged = self.copy_into(&src, range, input, src_key.as_ref()).await?;
        self.still_copying(&req.extensions, &i.copy_source, &i.bucket)?;
        let rec = self
            .store_part(&i.upload_id, &i.bucket, &i.key, n, staged, &req.extensions)
            .await?;
        let (sse, sse_customer_algorithm, sse_customer_key_md5) = super::ssec::answer(ck.as_ref());
        Ok(S3Response::new(UploadPartCopyOutput {
            server_side_encryption: sse,
            sse_customer_algorithm,
            sse_customer_key_md5,
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(ETag::Strong(rec.etag)),
                last_modified: Some(timestamp(rec.modified_ms)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    pub(crate) async fn complete_multipart_upload_op(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        // Versions this request stamps stay out of checkpoints until it ends.
        let _writing = self.writing();
        let mut i = req.input;
        let config = self.config_of(&i.bucket)?;
        // Held from the reading of the parts to the upload's end: no part is replaced, and
        // the upload is not aborted, under the versions this completion references.
        let _held = self.key_guard(&i.bucket, &i.key).await;
        let upload = match self.upload_of(&i.upload_id, &i.bucket, &i.key) {
            Ok(u) => u,
            // A retried Complete whose first answer was lost, or one that lost a race with
            // another Complete of the same upload: S3 answers the completion made.
            Err(e) => match self.completed(&i.bucket, &i.key, &i.upload_id).await {
                Some(done) => return Ok(S3Response::new(done)),
                None => return Err(e),
            },
        };
        let asked = i
            .multipart_upload
            .take()
            .and_then(|m| m.parts)
            .unwrap_or_default();
        if asked.is_empty() {
            return Err(S3Fault::MalformedXml("You must specify at least one part".into()).into());
        }
        let stored: BTreeMap<u32, PartRecord> =
            self.index.parts(&i.upload_id)?.into_iter().collect();
        let mut chosen = Vec::with_capacity(asked.len());
        let mut last = 0u32;
        for p in &asked {
            let n = check_part_number(p.part_number.unwrap_or(0))?;
            if n <= last {
                return Err(S3Fault::InvalidPartOrder.into());
            }
            last = n;
            let rec = stored.get(&n).filter(|r| {
                p.e_tag
                    .as_ref()
                    .is_none_or(|e| e.value().trim_matches('"') == r.etag)
            });
            let Some(rec) = rec else {
                return Err(S3Fault::InvalidPart("One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.".into()).into());
            };
            chosen.push((n, rec.clone()));
        }
        for (_, rec) in &chosen[..chosen.len() - 1] {
            if rec.size < MIN_PART_SIZE {
                return Err(S3Fault::EntityTooSmall.into());
            }
        }
        let until = upload.lock_until_ms.map(timestamp);
        let lock = Self::lock_for_write(
            &config,
            &LockAsk {
                mode: upload.lock_mode.as_deref(),
                until: until.as_ref(),
                hold: upload.legal_hold.as_deref(),
            },
            true,
        )?;
        let conditional_none = i.if_none_match.is_some() || i.if_match.is_some();
        if conditional_none {
            self.check_complete_conditions(&i.bucket, &i.key, &i)
                .await?;
        }

        // The multipart ETag: MD5 of the parts' binary MD5s, then "-N".
        let mut md5s = Vec::with_capacity(16 * chosen.len());
        for (_, rec) in &chosen {
            md5s.extend_from_slice(&unhex(&rec.etag).ok_or_else(|| super::internal("part etag"))?);
        }
        let etag = {
            use md5::Digest as _;
            format!("{}-{}", hex(&md5::Md5::digest(&md5s)), chosen.len())
        };
        // By reference: the parts stay where UploadPart stored them, and the object's
        // manifest names them (docs/decisions/multipart.md): its data is written once.
        let hidden = hidden_bucket(&i.bucket);
        let mut refs = Vec::with_capacity(chosen.len());
        let mut total = 0u64;
        for (_, rec) in &chosen {
            let (m, meta) = self.current(&hidden, &rec.object_key).await.map_err(|e| {
                if *e.code() == S3ErrorCode::NoSuchKey {
                    S3Error::from(S3Fault::InvalidPart("a part is missing".into()))
                } else {
                    e
                }
            })?;
            if meta.etag != rec.etag || !matches!(m.body, ManifestBody::Object(_)) {
                return Err(S3Fault::InvalidPart("a part changed while completing".into()).into());
            }
            total += meta.size;
            refs.push(PartRef {
                bucket: hidden.clone(),
                key: rec.object_key.clone(),
                object: m.object,
                version: m.version,
                meta,
            });
        }
        let first = &refs[0].meta;
        let whole = ObjectMeta {
            size: total,
            content_type: upload.content_type.clone(),
            user_metadata: upload.user_metadata.clone(),
            headers: upload.headers.clone(),
            etag: etag.clone(),
            checksums: Vec::new(),
            dek: first.dek.clone(),
            k: first.k,
            m: first.m,
            block_size: first.block_size,
            layout_epoch: first.layout_epoch,
            placement: Vec::new(),
            block_hashes: Vec::new(),
            inline: false,
            parts: chosen
                .iter()
                .map(|(_, r)| StoredPart {
                    size: r.size,
                    etag: r.etag.clone(),
                })
                .collect(),
        };
        let used: std::collections::BTreeSet<String> = refs.iter().map(|r| r.key.clone()).collect();
        self.still(&req.extensions, &i.bucket, Action::Write)?;
        let written = self
            .objects
            .commit_parts(
                &i.bucket,
                &i.key,
                PartsBody { whole, parts: refs },
                Self::write_state(&config, lock),
            )
            .await;
        let m = self.acknowledged(written).map_err(object_error)?;
        self.record(&m).await?;
        self.end_upload(&i.upload_id, &i.bucket, &used).await?;
        let customer = upload
            .headers
            .iter()
            .any(|(n, _)| n == crate::core::ssec::STORED_HEADER);
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            server_side_encryption: super::surface::sse().filter(|_| !customer),
            bucket: Some(i.bucket.clone()),
            key: Some(i.key.clone()),
            e_tag: Some(ETag::Strong(etag)),
            location: Some(format!("/{}/{}", i.bucket, i.key)),
            version_id: answered_id(&m),
            ..Default::default()
        }))
    }

    /// The answer of the Complete that made `key`'s current version out of upload `id`, if
    /// it did.
    async fn completed(
        &self,
        bucket: &str,
        key: &str,
        id: &str,
    ) -> Option<CompleteMultipartUploadOutput> {
        let (m, meta) = self.current(bucket, key).await.ok()?;
        let ManifestBody::Parts(p) = &m.body else {
            return None;
        };
        let first = p.parts.first()?;
        if first.bucket != hidden_bucket(bucket) || !first.key.starts_with(&format!("{id}/")) {
            return None;
        }
        Some(CompleteMultipartUploadOutput {
            server_side_encryption: super::surface::sse(),
            bucket: Some(bucket.to_owned()),
            key: Some(key.to_owned()),
            e_tag: Some(ETag::Strong(meta.etag)),
            location: Some(format!("/{bucket}/{key}")),
            version_id: answered_id(&m),
            ..Default::default()
        })
    }

    async fn check_complete_conditions(
        &self,
        bucket: &str,
        key: &str,
        i: &CompleteMultipartUploadInput,
    ) -> S3Result<()> {
        let current = match self.current(bucket, key).await {
            Ok((_, meta)) => Some(meta.etag),
            Err(e) if *e.code() == S3ErrorCode::NoSuchKey => None,
            Err(e) => return Err(e),
        };
        let failed = || S3Error::from(S3Fault::PreconditionFailed);
        if let Some(c) = &i.if_none_match
            && let Some(etag) = &current
            && (c.is_any() || c.as_etag().is_some_and(|e| e.value() == etag))
        {
            return Err(failed());
        }
        if let Some(c) = &i.if_match {
            match &current {
                None => return Err(S3Fault::NoSuchKey.into()),
                Some(etag) if !(c.is_any() || c.as_etag().is_some_and(|e| e.value() == etag)) => {
                    return Err(failed());
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Aborts upload `id` of (bucket, key), AbortMultipartUpload's and lifecycle's way: its
    /// record and parts go, under the key's lock and only while it is still there (a Complete
    /// may have ended it, and its object references the parts). False: no such upload.
    pub(crate) async fn abort_upload(&self, id: &str, bucket: &str, key: &str) -> S3Result<bool> {
        let _held = self.key_guard(bucket, key).await;
        match self.upload_of(id, bucket, key) {
            Ok(_) => {}
            Err(e) if *e.code() == S3ErrorCode::NoSuchUpload => return Ok(false),
            Err(e) => return Err(e),
        }
        self.end_upload(id, bucket, &std::collections::BTreeSet::new())
            .await?;
        Ok(true)
    }

    /// Ends an upload: its record goes, and its parts but those `used` by the object it
    /// completed (tombstones: the collector takes them). The caller holds the key's lock.
    async fn end_upload(
        &self,
        id: &str,
        bucket: &str,
        used: &std::collections::BTreeSet<String>,
    ) -> S3Result<()> {
        let parts = self.index.parts(id)?;
        self.index.delete_upload(id)?;
        let hidden = hidden_bucket(bucket);
        // The upload's own record first: an index rebuilt later does not list it again.
        if let Err(e) = self
            .delete_manifest(&hidden, id, Versioning::Unversioned)
            .await
        {
            tracing::warn!(upload = id, error = %e, "an upload's end did not reach its quorum");
        }
        for (_, rec) in parts {
            if used.contains(&rec.object_key) {
                continue;
            }
            if let Err(e) = self
                .delete_manifest(&hidden, &rec.object_key, Versioning::Unversioned)
                .await
            {
                tracing::warn!(upload = id, error = %e, "a part's delete did not reach its quorum");
            }
        }
        Ok(())
    }

    pub(crate) async fn abort_multipart_upload_op(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        // Versions this request stamps stay out of checkpoints until it ends.
        let _writing = self.writing();
        let i = req.input;
        self.require_bucket(&i.bucket)?;
        if !self.abort_upload(&i.upload_id, &i.bucket, &i.key).await? {
            return Err(no_such_upload());
        }
        let mut resp = S3Response::new(AbortMultipartUploadOutput::default());
        resp.status = Some(http::StatusCode::NO_CONTENT);
        Ok(resp)
    }

    pub(crate) fn list_parts_op(
        &self,
        req: &S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let i = &req.input;
        self.require_bucket(&i.bucket)?;
        let upload = self.upload_of(&i.upload_id, &i.bucket, &i.key)?;
        let max = i.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
        let marker = i.part_number_marker.unwrap_or(0).max(0) as u32;
        let all: Vec<(u32, PartRecord)> = self
            .index
            .parts(&i.upload_id)?
            .into_iter()
            .filter(|(n, _)| *n > marker)
            .collect();
        let truncated = all.len() > max;
        let page = &all[..all.len().min(max)];
        let parts = page
            .iter()
            .map(|(n, r)| Part {
                part_number: Some(*n as i32),
                e_tag: Some(ETag::Strong(r.etag.clone())),
                size: Some(r.size as i64),
                last_modified: Some(timestamp(r.modified_ms)),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(i.bucket.clone()),
            key: Some(i.key.clone()),
            upload_id: Some(i.upload_id.clone()),
            max_parts: Some(max as i32),
            is_truncated: Some(truncated),
            part_number_marker: i.part_number_marker,
            next_part_number_marker: truncated
                .then(|| page.last().map(|(n, _)| *n as i32))
                .flatten(),
            parts: Some(parts),
            owner: Some(owner()),
            storage_class: Some(s3s::dto::StorageClass::from_static("STANDARD")),
            checksum_algorithm: upload
                .checksum_algorithm
                .map(s3s::dto::ChecksumAlgorithm::from),
            ..Default::default()
        }))
    }

    pub(crate) fn list_multipart_uploads_op(
        &self,
        req: &S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let i = &req.input;
        self.require_bucket(&i.bucket)?;
        let prefix = i.prefix.clone().unwrap_or_default();
        let max = i.max_uploads.unwrap_or(1000).clamp(0, 1000) as usize;
        let mut all: Vec<(String, String, u64)> = self
            .index
            .uploads()?
            .into_iter()
            .filter(|(_, u)| u.bucket == i.bucket && u.key.starts_with(&prefix))
            .map(|(id, u)| (u.key, id, u.initiated_ms))
            .collect();
        all.sort();
        if let Some(km) = &i.key_marker {
            let idm = i.upload_id_marker.clone();
            all.retain(|(k, id, _)| match &idm {
                Some(m) => k > km || (k == km && id > m),
                None => k > km,
            });
        }
        let mut uploads = Vec::new();
        let mut prefixes: Vec<String> = Vec::new();
        let mut truncated = false;
        let mut last: Option<(String, String)> = None;
        for (key, id, initiated) in all {
            if uploads.len() + prefixes.len() >= max {
                truncated = true;
                break;
            }
            if let Some(d) = i.delimiter.as_deref().filter(|d| !d.is_empty())
                && let Some(pos) = key[prefix.len()..].find(d)
            {
                let cp = key[..prefix.len() + pos + d.len()].to_string();
                if prefixes.last() != Some(&cp) {
                    prefixes.push(cp);
                }
                last = Some((key, id));
                continue;
            }
            last = Some((key.clone(), id.clone()));
            uploads.push(MultipartUpload {
                key: Some(key),
                upload_id: Some(id),
                initiated: Some(timestamp(initiated)),
                owner: Some(owner()),
                initiator: Some(s3s::dto::Initiator {
                    display_name: Some("exclave".into()),
                    id: Some("exclave".into()),
                }),
                storage_class: Some(s3s::dto::StorageClass::from_static("STANDARD")),
                ..Default::default()
            });
        }
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(i.bucket.clone()),
            prefix: i.prefix.clone(),
            delimiter: i.delimiter.clone(),
            key_marker: i.key_marker.clone(),
            upload_id_marker: i.upload_id_marker.clone(),
            max_uploads: Some(max as i32),
            is_truncated: Some(truncated),
            next_key_marker: truncated.then(|| last.clone().map(|l| l.0)).flatten(),
            next_upload_id_marker: truncated.then(|| last.map(|l| l.1)).flatten(),
            uploads: Some(uploads),
            common_prefixes: Some(
                prefixes
                    .into_iter()
                    .map(|p| CommonPrefix { prefix: Some(p) })
                    .collect(),
            ),
            ..Default::default()
        }))
    }
}

fn bad_copy_range() -> S3Error {
    S3Error::from(S3Fault::InvalidArgument(
        "The x-amz-copy-source-range value must be of the form bytes=first-last".into(),
    ))
}

/// The customer key a part of `upload` is stored under: the one the upload was created with
/// (SSE-C), given again with every part; none for an upload created without one.
fn part_key(upload: &UploadRecord, given: Option<CustomerKey>) -> S3Result<Option<CustomerKey>> {
    let stored = upload
        .headers
        .iter()
        .find(|(n, _)| n == crate::core::ssec::STORED_HEADER)
        .map(|(_, v)| v.as_str());
    match (stored, given) {
        (None, None) => Ok(None),
        (Some(check), Some(ck)) if ck.check() == check => Ok(Some(ck)),
        _ => Err(S3Fault::InvalidRequest(
            "The provided encryption parameters did not match the ones used originally.".into(),
        )
        .into()),
    }
}
