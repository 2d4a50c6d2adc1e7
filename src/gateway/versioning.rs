//! S3 versioning at the gateway: a bucket's versioning configuration (its own record's
//! state), the state each write is made under, reads of a version by id and the removal of
//! one (`docs/decisions/versioning.md`).

use http::{HeaderMap, HeaderValue};
use s3s::dto::{
    BucketVersioningStatus, GetBucketVersioningInput, GetBucketVersioningOutput,
    PutBucketVersioningInput, PutBucketVersioningOutput,
};
use s3s::{S3Error, S3Request, S3Response, S3Result};

use super::error::S3Fault;
use super::list::{parse_version_id, version_id};
use super::{Gateway, entry_of, object_error};
use crate::coordinator::object::ObjectError;
use crate::core::format::{
    BucketConfig, Manifest, ObjectMeta, Retention, VersionState, Versioning,
};
use crate::core::hlc::Version;
use crate::meta::{Entry, VersionMarker};

/// How S3 names the version `m` is of (`x-amz-version-id`).
pub(crate) fn id_of(m: &Manifest) -> String {
    version_id(VersionMarker::new(m.state.written_under, m.version))
}

/// The version id to answer a read or write of `m` with: none for a version of a bucket
/// whose versioning was never configured (unless asked for by id).
pub(crate) fn answered_id(m: &Manifest) -> Option<String> {
    (m.state.written_under != Versioning::Unversioned).then(|| id_of(m))
}

/// `fault` about a delete marker: with `x-amz-delete-marker: true` and its version id, as
/// AWS answers a GET of a key whose current version is one (404) or of the marker by id (405).
pub(crate) fn about_marker(fault: S3Fault, m: &Manifest) -> S3Error {
    let mut e = S3Error::from(fault);
    let mut h = HeaderMap::new();
    h.insert("x-amz-delete-marker", HeaderValue::from_static("true"));
    if let Ok(v) = HeaderValue::from_str(&id_of(m)) {
        h.insert("x-amz-version-id", v);
    }
    e.set_headers(h);
    e
}

impl Gateway {
    /// The configuration of an existing bucket; refused (never taken as unversioned) when
    /// it cannot be read.
    pub(crate) fn config_of(&self, bucket: &str) -> S3Result<BucketConfig> {
        self.index
            .bucket_config(bucket)?
            .ok_or_else(|| S3Error::from(S3Fault::NoSuchBucket))
    }

    /// The state a write into a bucket configured `c` is made under, with the retention and
    /// legal hold `lock` (None: unversioned and unprotected).
    pub(crate) fn write_state(
        c: &BucketConfig,
        lock: (Option<Retention>, bool),
    ) -> Option<VersionState> {
        let (retention, legal_hold) = lock;
        (c.versioning != Versioning::Unversioned || retention.is_some() || legal_hold).then(|| {
            VersionState {
                retention,
                legal_hold,
                ..VersionState::written(c.versioning, Version::from_bytes([0; 16]))
            }
        })
    }

    pub(crate) fn get_bucket_versioning_op(
        &self,
        req: &S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        let c = self.config_of(&req.input.bucket)?;
        let status = match c.versioning {
            // Never configured: S3 answers with no status at all.
            Versioning::Unversioned => None,
            Versioning::Enabled => Some(BucketVersioningStatus::from_static(
                BucketVersioningStatus::ENABLED,
            )),
            Versioning::Suspended => Some(BucketVersioningStatus::from_static(
                BucketVersioningStatus::SUSPENDED,
            )),
        };
        Ok(S3Response::new(GetBucketVersioningOutput {
            status,
            ..Default::default()
        }))
    }

    /// Enabled or Suspended, written as a new version of the bucket's own record (so that the
    /// nodes alone rebuild it); never back to unversioned, never Suspended under object lock.
    pub(crate) async fn put_bucket_versioning_op(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        let _writing = self.writing();
        let i = req.input;
        let _held = self.key_guard(&i.bucket, "").await;
        let c = self.config_of(&i.bucket)?;
        let conf = i.versioning_configuration;
        if conf
            .mfa_delete
            .as_ref()
            .is_some_and(|m| m.as_str() == "Enabled")
        {
            return Err(S3Fault::NotImplemented("MFA delete is not supported".into()).into());
        }
        let Some(status) = conf.status else {
            return Ok(S3Response::new(PutBucketVersioningOutput {}));
        };
        let versioning = match status.as_str() {
            "Enabled" => Versioning::Enabled,
            "Suspended" => Versioning::Suspended,
            other => {
                return Err(S3Fault::MalformedXml(format!(
                    "the versioning status must be Enabled or Suspended, not {other:?}"
                ))
                .into());
            }
        };
        if versioning == Versioning::Suspended && c.object_lock {
            return Err(S3Fault::InvalidBucketState(
                "An Object Lock configuration is present on this bucket, so the versioning \
                 state cannot be changed."
                    .into(),
            )
            .into());
        }
        if c.versioning != versioning {
            self.write_bucket_record(&i.bucket, Some(BucketConfig { versioning, ..c }))
                .await?;
        }
        Ok(S3Response::new(PutBucketVersioningOutput {}))
    }

    /// The version of (bucket, key) a GET, HEAD or copy names (its current one without an
    /// id), with its body's record. A delete marker is not an object: 404 as current, 405 by
    /// id, with the headers that say it is one.
    pub(crate) async fn object_at(
        &self,
        bucket: &str,
        key: &str,
        id: Option<&str>,
    ) -> S3Result<(Manifest, ObjectMeta)> {
        let Some(id) = id else {
            return self.current(bucket, key).await;
        };
        let marker = parse_version_id(id)?;
        let known = self.index.version(bucket, key, marker)?;
        let identity = match (&known, marker) {
            (Some(e), _) => e.version,
            (None, VersionMarker::Id(v)) => v,
            (None, VersionMarker::Null) => return Err(S3Fault::NoSuchVersion.into()),
        };
        let m = self
            .version_kept(bucket, key, identity, known.map(|e| e.order))
            .await?
            // The id must name the version as S3 does (a null version has no other id).
            .filter(|m| VersionMarker::new(m.state.written_under, m.version) == marker)
            .ok_or(S3Fault::NoSuchVersion)?;
        match m.body.meta() {
            Some(meta) => {
                let meta = meta.clone();
                Ok((m, meta))
            }
            None => Err(about_marker(S3Fault::MethodNotAllowed, &m)),
        }
    }

    /// The version `identity` of (bucket, key) from a read quorum (`Objects::version`). When
    /// the index keeps it (`floor`) but no node serves it because its best copy says it was
    /// removed (a removal the nodes took and the index did not: the gateway stopped between
    /// the two, or the removal fell short of its quorum), the index takes the removal now,
    /// repair is asked to spread the removed copy to every node, and the answer is None, as
    /// for any removed version.
    pub(crate) async fn version_kept(
        &self,
        bucket: &str,
        key: &str,
        identity: Version,
        floor: Option<Version>,
    ) -> S3Result<Option<Manifest>> {
        match self.objects.version(bucket, key, identity, floor).await {
            Err(e @ ObjectError::Behind { found: None, .. }) => {
                let object = self.objects.object_id(bucket, key);
                match self.objects.find_manifest(object, identity).await {
                    Ok(found) if found.manifest.state.removed => {
                        let m = &found.manifest;
                        super::apply_found(&self.index, m)?;
                        // Its removed copy may be short of a quorum: repair spreads it.
                        self.index.record_repair(&m.object, m.version, &[])?;
                        Ok(None)
                    }
                    _ => Err(object_error(e)),
                }
            }
            r => r.map_err(object_error),
        }
    }

    /// Removes the version of (bucket, key) that `id` names, for good: the version (or delete
    /// marker) removed, or None when there was none (S3 answers that with success too).
    /// A version under object lock is refused (403) until its retention has passed (or, in
    /// GOVERNANCE mode, with `bypass`) and while its legal hold is on. The caller holds the
    /// key's lock.
    pub(crate) async fn remove_version(
        &self,
        bucket: &str,
        key: &str,
        id: &str,
        bypass: bool,
    ) -> S3Result<Option<Manifest>> {
        let marker = parse_version_id(id)?;
        let Some(e) = self.index.version(bucket, key, marker)? else {
            return Ok(None);
        };
        self.remove_entry(bucket, key, &e, bypass).await
    }

    /// Removes the version `e` of (bucket, key) for good, as [`Self::remove_version`] does
    /// (lifecycle names a version by what it judged, not by an id a newer write may take).
    pub(crate) async fn remove_entry(
        &self,
        bucket: &str,
        key: &str,
        e: &Entry,
        bypass: bool,
    ) -> S3Result<Option<Manifest>> {
        let Some(m) = self
            .version_kept(bucket, key, e.version, Some(e.order))
            .await?
        else {
            return Ok(None);
        };
        self.check_removable(&m, bypass).await?;
        let (copy, missed) = self.objects.remove(&m).await.map_err(object_error)?;
        if missed.manifest {
            tracing::warn!(
                bucket,
                key,
                "a version's removal reached its quorum, not every node: reads take the removed copy"
            );
        }
        self.index.apply(bucket, key, &entry_of(&copy))?;
        Ok(Some(copy))
    }
}
