//! Buckets. A bucket lives in the index and, so that the nodes alone can rebuild it, as a
//! record under the empty key (an S3 key is never empty): an empty object when created, a
//! tombstone when deleted.

use s3s::dto::{
    Bucket, CreateBucketInput, CreateBucketOutput, DeleteBucketInput, DeleteBucketOutput,
    GetBucketLocationInput, GetBucketLocationOutput, HeadBucketInput, HeadBucketOutput,
    ListBucketsInput, ListBucketsOutput, Owner,
};
use s3s::{S3Error, S3Request, S3Response, S3Result};

use super::error::S3Fault;
use super::{Gateway, object_error, timestamp};
use crate::coordinator::object::PutInput;
use crate::core::format::{BucketConfig, Manifest, ManifestBody, VersionState, Versioning};
use crate::core::hlc::Version;
use crate::core::lifecycle::Lifecycle;
use crate::meta::{BUCKET_EXTRAS, VersionQuery};

/// Marks the internal namespaces (multipart parts): never part of a valid bucket name.
pub(crate) const HIDDEN: char = '\u{1}';

pub(crate) fn owner() -> Owner {
    Owner {
        display_name: Some("exclave".into()),
        id: Some("exclave".into()),
    }
}

/// The header of a bucket's own record that carries its lifecycle configuration (JSON).
pub(crate) const RECORD_HEADER: &str = "x-exclave-lifecycle";
/// The header of a bucket's own record that carries the setting `name` (one of
/// `meta::BUCKET_EXTRAS`: `policy`, JSON as it was put; `tagging` and `cors`, their stored
/// forms).
fn setting_header(name: &str) -> String {
    format!("x-exclave-{name}")
}

/// What a bucket's own record carries besides its configuration: its lifecycle rules and its
/// other settings by name (each kept when the record is written for another reason).
#[derive(Debug, Default)]
pub(crate) struct BucketExtras {
    pub(crate) lifecycle: Option<Lifecycle>,
    pub(crate) settings: std::collections::BTreeMap<&'static str, String>,
}

/// Each setting a bucket's own record carries or lacks.
pub(crate) fn settings_of(m: &Manifest) -> Vec<(&'static str, Option<String>)> {
    let meta = match &m.body {
        ManifestBody::Object(meta) => Some(meta),
        _ => None,
    };
    BUCKET_EXTRAS
        .iter()
        .map(|&name| {
            let header = setting_header(name);
            let value = meta.and_then(|meta| {
                meta.headers
                    .iter()
                    .find(|(n, _)| *n == header)
                    .map(|(_, v)| v.clone())
            });
            (name, value)
        })
        .collect()
}

/// The lifecycle configuration a bucket's own record carries, if any. One this build cannot
/// read is left unapplied (a lifecycle only ever removes: not applying it loses nothing).
pub(crate) fn lifecycle_of(m: &Manifest) -> Option<Lifecycle> {
    let ManifestBody::Object(meta) = &m.body else {
        return None;
    };
    let (_, text) = meta.headers.iter().find(|(n, _)| n == RECORD_HEADER)?;
    match serde_json::from_str(text) {
        Ok(lc) => Some(lc),
        Err(e) => {
            tracing::warn!(bucket = m.bucket, error = %e, "a bucket's lifecycle configuration does not read: not applied");
            None
        }
    }
}

impl Gateway {
    /// NoSuchBucket unless the bucket exists.
    pub(crate) fn require_bucket(&self, bucket: &str) -> S3Result<u64> {
        self.index
            .bucket(bucket)?
            .ok_or_else(|| S3Error::from(S3Fault::NoSuchBucket))
    }

    pub(crate) async fn create_bucket_op(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        // Versions this request stamps stay out of checkpoints until it ends.
        let _writing = self.writing();
        let us_east_1 = req
            .region
            .as_ref()
            .is_none_or(|r| r.as_str() == "us-east-1");
        let bucket = req.input.bucket;
        // Object lock is enabled at creation, and turns versioning on for good.
        let config =
            (req.input.object_lock_enabled_for_bucket == Some(true)).then_some(BucketConfig {
                versioning: Versioning::Enabled,
                object_lock: true,
                default_retention: None,
            });
        let _held = self.key_guard(&bucket, "").await;
        if self.index.bucket(&bucket)?.is_some() {
            // us-east-1 answers 200 to creating a bucket its caller already owns (a retried
            // create succeeds), unless the request asks for what the bucket has not (object
            // lock); every other region 409.
            let same = config.is_none() || self.config_of(&bucket)?.object_lock;
            if us_east_1 && same {
                return Ok(S3Response::new(CreateBucketOutput {
                    location: Some(format!("/{bucket}")),
                }));
            }
            return Err(S3Fault::BucketAlreadyOwnedByYou.into());
        }
        self.write_bucket_record(&bucket, config).await?;
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{bucket}")),
        }))
    }

    pub(crate) async fn delete_bucket_op(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        // Versions this request stamps stay out of checkpoints until it ends.
        let _writing = self.writing();
        let bucket = req.input.bucket;
        let _held = self.key_guard(&bucket, "").await;
        self.require_bucket(&bucket)?;
        // Empty when it holds no version at all: every live key has one, and a versioned
        // bucket's delete markers count too.
        let versions = self.index.list_versions(
            &bucket,
            &VersionQuery {
                max_keys: 1,
                ..VersionQuery::default()
            },
        )?;
        if !versions.versions.is_empty() {
            return Err(S3Fault::BucketNotEmpty.into());
        }
        let m = self
            .delete_manifest(&bucket, "", Versioning::Unversioned)
            .await
            .map_err(object_error)?;
        super::apply_found(&self.index, &m)?;
        Ok(S3Response::new(DeleteBucketOutput {}))
    }

    /// Writes a new version of `bucket`'s own record, configured `config` (None: never
    /// configured), and takes it into the index as a rebuild from the nodes would (creating the
    /// bucket, setting its configuration). The caller holds the record's lock.
    pub(crate) async fn write_bucket_record(
        &self,
        bucket: &str,
        config: Option<BucketConfig>,
    ) -> S3Result<()> {
        let extras = self.bucket_extras(bucket)?;
        self.write_bucket_record_with(bucket, config, &extras).await
    }

    /// The lifecycle rules and settings `bucket`'s own record carries now.
    pub(crate) fn bucket_extras(&self, bucket: &str) -> S3Result<BucketExtras> {
        let mut settings = std::collections::BTreeMap::new();
        for name in BUCKET_EXTRAS {
            if let Some(v) = self.index.bucket_extra(bucket, name)? {
                settings.insert(name, v);
            }
        }
        Ok(BucketExtras {
            lifecycle: self.index.bucket_lifecycle(bucket)?,
            settings,
        })
    }

    /// Changes what `bucket`'s own record carries besides its configuration, under the
    /// bucket's key guard, and writes the record when `change` says it changed something;
    /// NoSuchBucket unless the bucket exists.
    pub(crate) async fn change_bucket_extras(
        &self,
        bucket: &str,
        change: impl FnOnce(&mut BucketExtras) -> bool,
    ) -> S3Result<()> {
        let _writing = self.writing();
        self.require_bucket(bucket)?;
        let _held = self.key_guard(bucket, "").await;
        let c = self.config_of(bucket)?;
        let mut extras = self.bucket_extras(bucket)?;
        if !change(&mut extras) {
            return Ok(());
        }
        self.write_bucket_record_with(bucket, Some(c), &extras)
            .await
    }

    /// Sets (None: removes) the setting `name` of `bucket` on its own record.
    pub(crate) async fn set_bucket_setting(
        &self,
        bucket: &str,
        name: &'static str,
        value: Option<String>,
    ) -> S3Result<()> {
        self.change_bucket_extras(bucket, |e| match value {
            Some(v) => e.settings.insert(name, v.clone()).as_ref() != Some(&v),
            None => e.settings.remove(name).is_some(),
        })
        .await
    }

    /// As [`Self::write_bucket_record`], carrying `extras` where that keeps the bucket's.
    pub(crate) async fn write_bucket_record_with(
        &self,
        bucket: &str,
        config: Option<BucketConfig>,
        extras: &BucketExtras,
    ) -> S3Result<()> {
        let mut headers = Vec::new();
        if let Some(lc) = &extras.lifecycle {
            headers.push((
                RECORD_HEADER.to_owned(),
                serde_json::to_string(lc)
                    .map_err(|e| S3Fault::InvalidRequest(format!("lifecycle: {e}")))?,
            ));
        }
        for (name, v) in &extras.settings {
            headers.push((setting_header(name), v.clone()));
        }
        let input = PutInput {
            bucket: bucket.to_owned(),
            key: String::new(),
            size: 0,
            headers,
            state: config.map(|c| VersionState {
                bucket: Some(c),
                ..VersionState::unversioned(Version::from_bytes([0; 16]))
            }),
            ..PutInput::default()
        };
        let m = self
            .objects
            .put(input, tokio::io::empty())
            .await
            .map_err(object_error)?;
        super::apply_found(&self.index, &m)?;
        Ok(())
    }

    pub(crate) fn head_bucket_op(
        &self,
        req: &S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.require_bucket(&req.input.bucket)?;
        Ok(S3Response::new(HeadBucketOutput::default()))
    }

    pub(crate) fn get_bucket_location_op(
        &self,
        req: &S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.require_bucket(&req.input.bucket)?;
        Ok(S3Response::new(GetBucketLocationOutput::default()))
    }

    pub(crate) fn list_buckets_op(
        &self,
        req: &S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let prefix = req.input.prefix.clone().unwrap_or_default();
        // A key sees the buckets it holds some right in.
        let pass = req.extensions.get::<super::Pass>();
        let buckets = self
            .index
            .buckets()?
            .into_iter()
            .filter(|(name, _)| name.starts_with(&prefix))
            .filter(|(name, _)| pass.is_none_or(|p| p.sees(&self.tenants, name)))
            .map(|(name, created)| Bucket {
                bucket_region: None,
                creation_date: Some(timestamp(created)),
                name: Some(name),
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(owner()),
            prefix: req.input.prefix.clone(),
            continuation_token: None,
        }))
    }
}
