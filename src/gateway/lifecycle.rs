//! Bucket lifecycle: Put/Get/DeleteBucketLifecycleConfiguration, the rules kept on the
//! bucket's own record at the nodes (sealed, so a gateway rebuilt from the sites has them),
//! and the pass the `lifecycle` worker runs: every key of a bucket with rules weighed against
//! them (`core::lifecycle`), and what is due done through the same paths as a client's
//! DELETE, a versioned DELETE by id (object lock checked, fail closed) and an
//! AbortMultipartUpload. `docs/decisions/lifecycle.md`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use s3s::dto::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, DeleteBucketLifecycleInput,
    DeleteBucketLifecycleOutput, ExpirationStatus, GetBucketLifecycleConfigurationInput,
    GetBucketLifecycleConfigurationOutput, LifecycleExpiration, LifecycleRule,
    LifecycleRuleAndOperator, LifecycleRuleFilter, NoncurrentVersionExpiration,
    PutBucketLifecycleConfigurationInput, PutBucketLifecycleConfigurationOutput, Tag,
};
use s3s::{S3Error, S3Request, S3Response, S3Result};
use serde::Serialize;

use super::error::S3Fault;
use super::lock::ms_of;
use super::{Gateway, timestamp};
use crate::core::format::Versioning;
use crate::core::lifecycle::{
    Due, Expiration, Filter, FilterShape, Lifecycle, NoncurrentExpiration, Refusal, Rule,
    VersionView,
};
use crate::meta::{ListedVersion, UploadRecord, VersionQuery};
use crate::metrics::LifecycleLabels;
use crate::sys::now_ms;

/// Keys listed per index read in a pass.
const PAGE: usize = 1000;

fn malformed(why: &str) -> S3Error {
    S3Fault::MalformedXml(why.to_owned()).into()
}

fn refused(r: Refusal) -> S3Error {
    match r {
        Refusal::Malformed(m) => S3Fault::MalformedXml(m),
        Refusal::InvalidArgument(m) => S3Fault::InvalidArgument(m),
        Refusal::InvalidRequest(m) => S3Fault::InvalidRequest(m),
    }
    .into()
}

fn days_of(d: i32, what: &str) -> S3Result<u32> {
    u32::try_from(d).map_err(|_| {
        S3Fault::InvalidArgument(format!("'{what}' must be a positive integer")).into()
    })
}

fn size_of(s: i64) -> S3Result<u64> {
    u64::try_from(s).map_err(|_| {
        S3Fault::InvalidArgument("an object size in a filter is not negative".into()).into()
    })
}

fn tag_of(t: Tag) -> S3Result<(String, String)> {
    match t.key {
        Some(k) if !k.is_empty() => Ok((k, t.value.unwrap_or_default())),
        _ => Err(malformed("a Tag has a Key")),
    }
}

fn filter_of(rule_prefix: Option<String>, f: Option<LifecycleRuleFilter>) -> S3Result<Filter> {
    let f = match (rule_prefix, f) {
        (Some(_), Some(_)) => return Err(malformed("a rule has a Prefix or a Filter, not both")),
        (None, None) => return Err(malformed("a rule has a Filter (or a Prefix)")),
        (Some(p), None) => {
            return Ok(Filter {
                shape: FilterShape::RulePrefix,
                prefix: Some(p),
                ..Filter::default()
            });
        }
        (None, Some(f)) => f,
    };
    let given = usize::from(f.and.is_some())
        + usize::from(f.prefix.is_some())
        + usize::from(f.tag.is_some())
        + usize::from(f.object_size_greater_than.is_some())
        + usize::from(f.object_size_less_than.is_some());
    if given > 1 {
        return Err(malformed(
            "a Filter has one of Prefix, Tag, ObjectSizeGreaterThan, ObjectSizeLessThan or And",
        ));
    }
    if let Some(and) = f.and {
        return Ok(Filter {
            shape: FilterShape::And,
            prefix: and.prefix,
            tags: and
                .tags
                .unwrap_or_default()
                .into_iter()
                .map(tag_of)
                .collect::<S3Result<_>>()?,
            size_greater_than: and.object_size_greater_than.map(size_of).transpose()?,
            size_less_than: and.object_size_less_than.map(size_of).transpose()?,
        });
    }
    Ok(Filter {
        shape: FilterShape::Single,
        prefix: f.prefix,
        tags: f.tag.map(tag_of).transpose()?.into_iter().collect(),
        size_greater_than: f.object_size_greater_than.map(size_of).transpose()?,
        size_less_than: f.object_size_less_than.map(size_of).transpose()?,
    })
}

fn expiration_of(e: LifecycleExpiration) -> S3Result<Option<Expiration>> {
    let marker = e.expired_object_delete_marker;
    if marker.is_some() && (e.days.is_some() || e.date.is_some()) {
        return Err(S3Fault::InvalidArgument(
            "ExpiredObjectDeleteMarker cannot be specified with Days or Date in a Lifecycle \
             Expiration Policy."
                .into(),
        )
        .into());
    }
    match (e.days, e.date, marker) {
        (Some(_), Some(_), _) => Err(malformed("an Expiration has Days or Date, not both")),
        (Some(d), None, _) => Ok(Some(Expiration::Days(days_of(d, "Days")?))),
        (None, Some(t), _) => Ok(Some(Expiration::Date(ms_of(&t)))),
        (None, None, Some(true)) => Ok(Some(Expiration::ExpiredObjectDeleteMarker)),
        (None, None, Some(false)) => Ok(None),
        (None, None, None) => Err(malformed(
            "an Expiration has Days, Date or ExpiredObjectDeleteMarker",
        )),
    }
}

/// A configuration as a client sent it, checked as S3 checks it.
fn from_dto(c: BucketLifecycleConfiguration) -> S3Result<Lifecycle> {
    let mut rules = Vec::with_capacity(c.rules.len());
    for r in c.rules {
        if r.transitions.is_some_and(|t| !t.is_empty())
            || r.noncurrent_version_transitions
                .is_some_and(|t| !t.is_empty())
        {
            return Err(S3Fault::NotImplemented(
                "exclave has one storage class: lifecycle transitions are not supported".into(),
            )
            .into());
        }
        let enabled = match r.status.as_str() {
            ExpirationStatus::ENABLED => true,
            ExpirationStatus::DISABLED => false,
            other => {
                return Err(malformed(&format!(
                    "a rule's Status is Enabled or Disabled, not {other:?}"
                )));
            }
        };
        let noncurrent = match r.noncurrent_version_expiration {
            None => None,
            Some(n) => Some(NoncurrentExpiration {
                days: days_of(
                    n.noncurrent_days.ok_or_else(|| {
                        malformed("a NoncurrentVersionExpiration has NoncurrentDays")
                    })?,
                    "NoncurrentDays",
                )?,
                newer_versions: n
                    .newer_noncurrent_versions
                    .map(|v| days_of(v, "NewerNoncurrentVersions"))
                    .transpose()?,
            }),
        };
        let abort_upload_days = match r.abort_incomplete_multipart_upload {
            None => None,
            Some(a) => Some(days_of(
                a.days_after_initiation.ok_or_else(|| {
                    malformed("an AbortIncompleteMultipartUpload has DaysAfterInitiation")
                })?,
                "DaysAfterInitiation",
            )?),
        };
        rules.push(Rule {
            id: r.id,
            enabled,
            filter: filter_of(r.prefix, r.filter)?,
            expiration: r.expiration.map(expiration_of).transpose()?.flatten(),
            noncurrent,
            abort_upload_days,
        });
    }
    let lc = Lifecycle { rules };
    lc.check().map_err(refused)?;
    Ok(lc)
}

fn tag_dto((k, v): &(String, String)) -> Tag {
    Tag {
        key: Some(k.clone()),
        value: Some(v.clone()),
    }
}

/// A configuration as GetBucketLifecycleConfiguration answers it: as it was written.
fn to_dto(lc: &Lifecycle) -> Vec<LifecycleRule> {
    lc.rules
        .iter()
        .map(|r| {
            let f = &r.filter;
            let size = |s: Option<u64>| s.map(|s| i64::try_from(s).unwrap_or(i64::MAX));
            let (prefix, filter) = match f.shape {
                FilterShape::RulePrefix => (f.prefix.clone(), None),
                FilterShape::Single => (
                    None,
                    Some(LifecycleRuleFilter {
                        and: None,
                        prefix: f.prefix.clone(),
                        tag: f.tags.first().map(tag_dto),
                        object_size_greater_than: size(f.size_greater_than),
                        object_size_less_than: size(f.size_less_than),
                    }),
                ),
                FilterShape::And => (
                    None,
                    Some(LifecycleRuleFilter {
                        and: Some(LifecycleRuleAndOperator {
                            prefix: f.prefix.clone(),
                            tags: (!f.tags.is_empty())
                                .then(|| f.tags.iter().map(tag_dto).collect()),
                            object_size_greater_than: size(f.size_greater_than),
                            object_size_less_than: size(f.size_less_than),
                        }),
                        ..LifecycleRuleFilter::default()
                    }),
                ),
            };
            let days = |d: u32| i32::try_from(d).unwrap_or(i32::MAX);
            LifecycleRule {
                abort_incomplete_multipart_upload: r.abort_upload_days.map(|d| {
                    AbortIncompleteMultipartUpload {
                        days_after_initiation: Some(days(d)),
                    }
                }),
                expiration: r.expiration.map(|e| match e {
                    Expiration::Days(d) => LifecycleExpiration {
                        days: Some(days(d)),
                        ..LifecycleExpiration::default()
                    },
                    Expiration::Date(ms) => LifecycleExpiration {
                        date: Some(timestamp(ms)),
                        ..LifecycleExpiration::default()
                    },
                    Expiration::ExpiredObjectDeleteMarker => LifecycleExpiration {
                        expired_object_delete_marker: Some(true),
                        ..LifecycleExpiration::default()
                    },
                }),
                filter,
                id: r.id.clone(),
                noncurrent_version_expiration: r.noncurrent.map(|n| NoncurrentVersionExpiration {
                    newer_noncurrent_versions: n.newer_versions.map(days),
                    noncurrent_days: Some(days(n.days)),
                }),
                noncurrent_version_transitions: None,
                prefix,
                status: ExpirationStatus::from_static(if r.enabled {
                    ExpirationStatus::ENABLED
                } else {
                    ExpirationStatus::DISABLED
                }),
                transitions: None,
            }
        })
        .collect()
}

/// What one pass did in one bucket.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct BucketActions {
    /// The bucket.
    pub bucket: String,
    /// Keys weighed.
    pub keys: u64,
    /// Current versions expired (a delete marker written, or the key ended).
    pub expired: u64,
    /// Noncurrent versions removed.
    pub noncurrent_removed: u64,
    /// Expired delete markers removed.
    pub markers_removed: u64,
    /// Incomplete multipart uploads aborted.
    pub uploads_aborted: u64,
    /// Versions due but under object lock (retention or legal hold): left.
    pub protected: u64,
    /// Actions that failed (a quorum not reached; retried next pass).
    pub failed: u64,
    /// Why, for the first few: key and error.
    pub errors: Vec<String>,
}

impl BucketActions {
    fn failed(&mut self, key: &str, e: &dyn std::fmt::Display) {
        self.failed += 1;
        if self.errors.len() < 5 {
            self.errors.push(format!("{key}: {e}"));
        }
    }
}

/// What one lifecycle pass did.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct LifecycleReport {
    /// When it began and ended (ms since the epoch).
    pub started_ms: u64,
    /// See `started_ms`.
    pub finished_ms: u64,
    /// Per bucket with rules.
    pub buckets: Vec<BucketActions>,
}

impl LifecycleReport {
    /// Actions taken in all buckets.
    pub fn actions(&self) -> u64 {
        self.buckets
            .iter()
            .map(|b| b.expired + b.noncurrent_removed + b.markers_removed + b.uploads_aborted)
            .sum()
    }
}

/// The lifecycle worker's state: its timings, one pass at a time, the last report and how far
/// the pass in progress has come.
#[derive(Debug)]
pub struct LifecycleState {
    /// Time between passes.
    pub interval: Duration,
    /// The length of a day.
    pub day: Duration,
    one: tokio::sync::Mutex<()>,
    last: Mutex<Option<LifecycleReport>>,
    progress: Mutex<Option<String>>,
}

impl LifecycleState {
    /// Timings from the config.
    pub fn new(interval: Duration, day: Duration) -> Self {
        Self {
            interval,
            day,
            one: tokio::sync::Mutex::new(()),
            last: Mutex::new(None),
            progress: Mutex::new(None),
        }
    }

    /// The last pass's report.
    pub fn last(&self) -> Option<LifecycleReport> {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// How far the pass in progress has come.
    pub fn progress(&self) -> Option<String> {
        self.progress
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn say(&self, p: Option<String>) {
        *self
            .progress
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = p;
    }
}

/// The outcome of one action.
enum Done {
    Acted,
    Protected,
    Skipped,
}

/// What an action on a version is, as reports and metrics name it.
#[derive(Clone, Copy)]
enum Action {
    Expired,
    MarkerRemoved,
    NoncurrentRemoved,
}

impl Action {
    fn label(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::MarkerRemoved => "marker_removed",
            Self::NoncurrentRemoved => "noncurrent_removed",
        }
    }
}

impl Gateway {
    pub(crate) async fn put_bucket_lifecycle_configuration_op(
        &self,
        req: S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
        let i = req.input;
        let conf = i
            .lifecycle_configuration
            .ok_or_else(|| malformed("no LifecycleConfiguration"))?;
        let lc = from_dto(conf)?;
        self.change_bucket_extras(&i.bucket, |e| e.lifecycle.replace(lc.clone()) != Some(lc))
            .await?;
        Ok(S3Response::new(
            PutBucketLifecycleConfigurationOutput::default(),
        ))
    }

    pub(crate) fn get_bucket_lifecycle_configuration_op(
        &self,
        req: &S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        self.require_bucket(&req.input.bucket)?;
        let lc = self
            .index
            .bucket_lifecycle(&req.input.bucket)?
            .ok_or(S3Fault::NoSuchLifecycleConfiguration)?;
        Ok(S3Response::new(GetBucketLifecycleConfigurationOutput {
            rules: Some(to_dto(&lc)),
            ..Default::default()
        }))
    }

    pub(crate) async fn delete_bucket_lifecycle_op(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
        self.change_bucket_extras(&req.input.bucket, |e| e.lifecycle.take().is_some())
            .await?;
        let mut resp = S3Response::new(DeleteBucketLifecycleOutput {});
        resp.status = Some(http::StatusCode::NO_CONTENT);
        Ok(resp)
    }

    /// One lifecycle pass over every bucket with rules (one pass at a time).
    pub async fn lifecycle_pass(&self) -> anyhow::Result<LifecycleReport> {
        let state = &self.lifecycle;
        let _one = state.one.lock().await;
        let mut report = LifecycleReport {
            started_ms: now_ms(),
            ..LifecycleReport::default()
        };
        let result = self.lifecycle_buckets(&mut report).await;
        state.say(None);
        report.finished_ms = now_ms();
        result?;
        *state
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(report.clone());
        Ok(report)
    }

    async fn lifecycle_buckets(&self, report: &mut LifecycleReport) -> anyhow::Result<()> {
        let day_ms = u64::try_from(self.lifecycle.day.as_millis()).unwrap_or(u64::MAX);
        // Read once for every bucket of the pass.
        let uploads = self.index.uploads()?;
        for (bucket, lc) in self.index.lifecycles()? {
            let Some(config) = self.index.bucket_config(&bucket)? else {
                continue;
            };
            let mut done = BucketActions {
                bucket: bucket.clone(),
                ..BucketActions::default()
            };
            self.lifecycle_uploads(&bucket, &uploads, &lc, day_ms, &mut done)
                .await;
            let mut q = VersionQuery {
                max_keys: PAGE,
                ..VersionQuery::default()
            };
            // One key's versions, newest first: weighed once all are read.
            let mut group: Vec<ListedVersion> = Vec::new();
            loop {
                let step = Instant::now();
                let page = self.index.list_versions(&bucket, &q)?;
                for v in page.versions {
                    if group.first().is_some_and(|g| g.key != v.key) {
                        let whole = std::mem::take(&mut group);
                        self.lifecycle_key(
                            &bucket,
                            config.versioning,
                            &lc,
                            &whole,
                            day_ms,
                            &mut done,
                        )
                        .await;
                    }
                    group.push(v);
                }
                self.lifecycle.say(Some(format!(
                    "bucket {}: {} keys weighed, {} expired, {} noncurrent removed",
                    done.bucket, done.keys, done.expired, done.noncurrent_removed
                )));
                super::collect::give_way(&self.metrics.in_flight, step.elapsed()).await;
                match (page.truncated, page.next) {
                    (true, Some((key, after))) => {
                        q.key_marker = Some(key);
                        q.after_version = after;
                    }
                    _ => break,
                }
            }
            if !group.is_empty() {
                self.lifecycle_key(&bucket, config.versioning, &lc, &group, day_ms, &mut done)
                    .await;
            }
            report.buckets.push(done);
        }
        Ok(())
    }

    /// Aborts the uploads of `bucket` (among `uploads`) its rules say are due.
    async fn lifecycle_uploads(
        &self,
        bucket: &str,
        uploads: &[(String, UploadRecord)],
        lc: &Lifecycle,
        day_ms: u64,
        done: &mut BucketActions,
    ) {
        let now = now_ms();
        for (id, rec) in uploads {
            if rec.bucket != bucket || !lc.abort_due(&rec.key, rec.initiated_ms, now, day_ms) {
                continue;
            }
            let _writing = self.writing();
            match self.abort_upload(id, bucket, &rec.key).await {
                Ok(false) => {}
                Ok(true) => {
                    done.uploads_aborted += 1;
                    self.count("upload_aborted");
                }
                Err(e) => {
                    tracing::warn!(bucket, upload = id, error = %e, "lifecycle: an abort failed");
                    done.failed(&rec.key, &e);
                    self.count("failed");
                }
            }
        }
    }

    fn count(&self, action: &'static str) {
        self.metrics
            .lifecycle
            .get_or_create(&LifecycleLabels { action })
            .inc();
    }

    /// Weighs one key's versions (newest first) and does what is due.
    async fn lifecycle_key(
        &self,
        bucket: &str,
        under: Versioning,
        lc: &Lifecycle,
        versions: &[ListedVersion],
        day_ms: u64,
        done: &mut BucketActions,
    ) {
        let Some(first) = versions.first() else {
            return;
        };
        done.keys += 1;
        self.metrics.lifecycle_scanned.inc();
        let key = first.key.as_str();
        // A listing's first version of a key is its current one; a key whose current version
        // is not listed (removed) has only noncurrent ones here, and they are weighed after it.
        if !first.latest {
            return;
        }
        // Tags are read only for rules that filter by them.
        let by_tag = lc.rules.iter().any(|r| !r.filter.tags.is_empty());
        let tags: Vec<_> = versions
            .iter()
            .map(|v| match by_tag {
                true => crate::core::tags::decode_stored(&v.entry.tags),
                false => Vec::new(),
            })
            .collect();
        let views: Vec<VersionView<'_>> = versions
            .iter()
            .zip(&tags)
            .map(|(v, tags)| VersionView {
                created_ms: v.entry.modified_ms,
                size: v.entry.size,
                delete_marker: v.entry.deleted,
                tags,
            })
            .collect();
        for due in lc.due(key, &views, now_ms(), day_ms) {
            let step = Instant::now();
            let _writing = self.writing();
            let (outcome, action) = match due {
                Due::ExpireCurrent => (
                    self.expire_current(bucket, key, first, under).await,
                    Action::Expired,
                ),
                Due::Remove(i) => {
                    let v = &versions[i];
                    let action = if i == 0 {
                        Action::MarkerRemoved
                    } else {
                        Action::NoncurrentRemoved
                    };
                    let _held = self.key_guard(bucket, key).await;
                    let outcome = match self.remove_entry(bucket, key, &v.entry, false).await {
                        Ok(Some(_)) => Ok(Done::Acted),
                        Ok(None) => Ok(Done::Skipped),
                        Err(e) if e.code() == &s3s::S3ErrorCode::AccessDenied => {
                            Ok(Done::Protected)
                        }
                        Err(e) => Err(e),
                    };
                    (outcome, action)
                }
            };
            match outcome {
                Ok(Done::Acted) => {
                    *match action {
                        Action::Expired => &mut done.expired,
                        Action::MarkerRemoved => &mut done.markers_removed,
                        Action::NoncurrentRemoved => &mut done.noncurrent_removed,
                    } += 1;
                    self.count(action.label());
                }
                Ok(Done::Protected) => {
                    done.protected += 1;
                    self.count("protected");
                }
                Ok(Done::Skipped) => {}
                Err(e) => {
                    tracing::warn!(bucket, key, error = %e, "lifecycle: an action failed");
                    done.failed(key, &e);
                    self.count("failed");
                }
            }
            super::collect::give_way(&self.metrics.in_flight, step.elapsed()).await;
        }
    }

    /// Expires (bucket, key)'s current version `judged`, unless a newer one took its place
    /// since it was weighed: a delete marker, or (unversioned) the key's end.
    async fn expire_current(
        &self,
        bucket: &str,
        key: &str,
        judged: &ListedVersion,
        under: Versioning,
    ) -> S3Result<Done> {
        let _held = self.key_guard(bucket, key).await;
        let now = self.index.get(bucket, key)?;
        if now
            .as_ref()
            .is_none_or(|e| e.version != judged.entry.version || e.deleted)
        {
            return Ok(Done::Skipped);
        }
        let m = self
            .delete_manifest(bucket, key, under)
            .await
            .map_err(super::object_error)?;
        self.record(&m).await?;
        Ok(Done::Acted)
    }
}
