//! S3 object lock: a bucket's lock configuration, each version's retention and legal hold,
//! and the one check every removal passes (`docs/decisions/versioning.md`). The retention and
//! hold are in the version's sealed manifest at the sites; a change is a revised copy of it.
//! Whatever cannot be read is taken as locked: the removal is refused.

use s3s::dto::{
    DefaultRetention as S3DefaultRetention, GetObjectLegalHoldInput, GetObjectLegalHoldOutput,
    GetObjectLockConfigurationInput, GetObjectLockConfigurationOutput, GetObjectRetentionInput,
    GetObjectRetentionOutput, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockLegalHold,
    ObjectLockLegalHoldStatus, ObjectLockMode, ObjectLockRetention, ObjectLockRetentionMode,
    ObjectLockRule, PutObjectLegalHoldInput, PutObjectLegalHoldOutput,
    PutObjectLockConfigurationInput, PutObjectLockConfigurationOutput, PutObjectRetentionInput,
    PutObjectRetentionOutput, Timestamp,
};
use s3s::{S3Request, S3Response, S3Result};

use super::error::S3Fault;
use super::{Gateway, entry_of, object_error, timestamp};
use crate::core::format::{
    BucketConfig, DefaultRetention, LockMode, Manifest, Retention, Versioning,
};
use crate::sys::now_ms;

const DAY_MS: u64 = 86_400_000;

/// The [`LockAsk`] of an S3 input with object lock fields (PutObject, CopyObject,
/// CreateMultipartUpload).
macro_rules! lock_ask {
    ($input:expr) => {
        $crate::gateway::lock::LockAsk {
            mode: $input.object_lock_mode.as_ref().map(|m| m.as_str()),
            until: $input.object_lock_retain_until_date.as_ref(),
            hold: $input
                .object_lock_legal_hold_status
                .as_ref()
                .map(|h| h.as_str()),
        }
    };
}
pub(crate) use lock_ask;

/// The lock a write asks for in its headers.
#[derive(Debug, Default)]
pub(crate) struct LockAsk<'a> {
    pub(crate) mode: Option<&'a str>,
    pub(crate) until: Option<&'a Timestamp>,
    pub(crate) hold: Option<&'a str>,
}

impl LockAsk<'_> {
    fn any(&self) -> bool {
        self.mode.is_some() || self.until.is_some() || self.hold.is_some()
    }
}

fn mode_of(s: &str) -> S3Result<LockMode> {
    match s {
        "GOVERNANCE" => Ok(LockMode::Governance),
        "COMPLIANCE" => Ok(LockMode::Compliance),
        _ => Err(S3Fault::InvalidArgument("Unknown wormMode directive.".into()).into()),
    }
}

fn mode_name(m: LockMode) -> &'static str {
    match m {
        LockMode::Governance => "GOVERNANCE",
        LockMode::Compliance => "COMPLIANCE",
    }
}

fn hold_of(s: &str) -> S3Result<bool> {
    match s {
        "ON" => Ok(true),
        "OFF" => Ok(false),
        _ => Err(S3Fault::MalformedXml("the legal hold status is ON or OFF".into()).into()),
    }
}

/// Milliseconds since the epoch of `t` (0 before it).
pub(crate) fn ms_of(t: &Timestamp) -> u64 {
    let t = time::OffsetDateTime::from(t.clone());
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// The retention a default gives a version written at `now`: a year is 365 days.
fn default_until(d: &DefaultRetention, now: u64) -> u64 {
    let days = u64::from(d.period) * if d.years { 365 } else { 1 };
    now.saturating_add(days.saturating_mul(DAY_MS))
}

/// The object lock headers a GET or HEAD answers for a version: mode, retain-until date,
/// legal hold.
pub(crate) type LockHeaders = (
    Option<ObjectLockMode>,
    Option<Timestamp>,
    Option<ObjectLockLegalHoldStatus>,
);

/// See [`LockHeaders`].
pub(crate) fn lock_headers(m: &Manifest) -> LockHeaders {
    let r = m.state.retention;
    (
        r.map(|r| ObjectLockMode::from(mode_name(r.mode).to_owned())),
        r.map(|r| timestamp(r.until_ms)),
        m.state
            .legal_hold
            .then(|| ObjectLockLegalHoldStatus::from_static(ObjectLockLegalHoldStatus::ON)),
    )
}

impl Gateway {
    /// The retention and legal hold a new version of a bucket configured `c` is written with:
    /// what the request asks for, else the bucket's default retention. Refused (400): lock
    /// parameters on a bucket without object lock, a mode without a date or the reverse, a
    /// date not in the future, and a write with lock parameters (or into a bucket with a
    /// default retention) that carries neither Content-MD5 nor a checksum (`integrity`).
    pub(crate) fn lock_for_write(
        c: &BucketConfig,
        ask: &LockAsk<'_>,
        integrity: bool,
    ) -> S3Result<(Option<Retention>, bool)> {
        if ask.any() && !c.object_lock {
            return Err(S3Fault::InvalidRequest(
                "Bucket is missing Object Lock Configuration".into(),
            )
            .into());
        }
        // AWS asks the same of every write into a bucket with a default retention.
        if (ask.any() || c.default_retention.is_some()) && !integrity {
            return Err(S3Fault::InvalidRequest(
                "Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object requests \
                 with Object Lock parameters"
                    .into(),
            )
            .into());
        }
        let now = now_ms();
        let retention = match (ask.mode, ask.until) {
            (Some(mode), Some(until)) => {
                let until_ms = ms_of(until);
                if until_ms <= now {
                    return Err(S3Fault::InvalidArgument(
                        "The retain until date must be in the future!".into(),
                    )
                    .into());
                }
                Some(Retention {
                    mode: mode_of(mode)?,
                    until_ms,
                })
            }
            (None, None) => c.default_retention.as_ref().map(|d| Retention {
                mode: d.mode,
                until_ms: default_until(d, now),
            }),
            _ => {
                return Err(S3Fault::InvalidArgument(
                    "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be \
                     supplied"
                        .into(),
                )
                .into());
            }
        };
        let hold = ask.hold.map(hold_of).transpose()?.unwrap_or(false);
        Ok((retention, hold))
    }

    /// Refuses (403 AccessDenied) the removal of `m` while its legal hold is on or its
    /// retention has not passed on the cluster's clock (`Objects::cluster_now`); GOVERNANCE
    /// gives way to `bypass`. A clock that cannot be read refuses.
    pub(crate) async fn check_removable(&self, m: &Manifest, bypass: bool) -> S3Result<()> {
        if m.state.legal_hold {
            return Err(protected());
        }
        match m.state.retention {
            Some(r) if !(r.mode == LockMode::Governance && bypass) => self.check_passed(r).await,
            _ => Ok(()),
        }
    }

    /// Refuses (403) while retention `r` has not passed on the cluster's clock.
    async fn check_passed(&self, r: Retention) -> S3Result<()> {
        let now = self.objects.cluster_now().await.map_err(object_error)?;
        if now < r.until_ms {
            return Err(protected());
        }
        Ok(())
    }

    pub(crate) async fn put_object_lock_configuration_op(
        &self,
        req: S3Request<PutObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
        let _writing = self.writing();
        let i = req.input;
        let _held = self.key_guard(&i.bucket, "").await;
        let c = self.config_of(&i.bucket)?;
        let conf = i
            .object_lock_configuration
            .ok_or_else(|| S3Fault::MalformedXml("no ObjectLockConfiguration".into()))?;
        if conf
            .object_lock_enabled
            .as_ref()
            .map(ObjectLockEnabled::as_str)
            != Some("Enabled")
        {
            return Err(S3Fault::MalformedXml("ObjectLockEnabled must be Enabled".into()).into());
        }
        if !c.object_lock && c.versioning != Versioning::Enabled {
            return Err(S3Fault::InvalidBucketState(
                "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration"
                    .into(),
            )
            .into());
        }
        let default_retention = match conf.rule.and_then(|r| r.default_retention) {
            None => None,
            Some(d) => Some(default_of(&d)?),
        };
        let next = BucketConfig {
            versioning: Versioning::Enabled,
            object_lock: true,
            default_retention,
        };
        if next != c {
            self.write_bucket_record(&i.bucket, Some(next)).await?;
        }
        Ok(S3Response::new(PutObjectLockConfigurationOutput::default()))
    }

    pub(crate) fn get_object_lock_configuration_op(
        &self,
        req: &S3Request<GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
        let c = self.config_of(&req.input.bucket)?;
        if !c.object_lock {
            return Err(S3Fault::ObjectLockConfigurationNotFound.into());
        }
        let rule = c.default_retention.map(|d| ObjectLockRule {
            default_retention: Some(S3DefaultRetention {
                mode: Some(ObjectLockRetentionMode::from(mode_name(d.mode).to_owned())),
                days: (!d.years).then_some(d.period as i32),
                years: d.years.then_some(d.period as i32),
            }),
        });
        Ok(S3Response::new(GetObjectLockConfigurationOutput {
            object_lock_configuration: Some(ObjectLockConfiguration {
                object_lock_enabled: Some(ObjectLockEnabled::from_static(
                    ObjectLockEnabled::ENABLED,
                )),
                rule,
            }),
        }))
    }

    /// The version a retention or legal hold request names, in a bucket with object lock.
    async fn locked_version(
        &self,
        bucket: &str,
        key: &str,
        id: Option<&str>,
    ) -> S3Result<Manifest> {
        let c = self.config_of(bucket)?;
        if !c.object_lock {
            return Err(S3Fault::InvalidRequest(
                "Bucket is missing Object Lock Configuration".into(),
            )
            .into());
        }
        Ok(self.object_at(bucket, key, id).await?.0)
    }

    pub(crate) async fn get_object_retention_op(
        &self,
        req: S3Request<GetObjectRetentionInput>,
    ) -> S3Result<S3Response<GetObjectRetentionOutput>> {
        let i = req.input;
        let m = self
            .locked_version(&i.bucket, &i.key, i.version_id.as_deref())
            .await?;
        let r = m
            .state
            .retention
            .ok_or(S3Fault::NoSuchObjectLockConfiguration)?;
        Ok(S3Response::new(GetObjectRetentionOutput {
            retention: Some(ObjectLockRetention {
                mode: Some(ObjectLockRetentionMode::from(mode_name(r.mode).to_owned())),
                retain_until_date: Some(timestamp(r.until_ms)),
            }),
        }))
    }

    /// COMPLIANCE is extended, never shortened, weakened or removed, by anyone; GOVERNANCE
    /// likewise unless the request bypasses it.
    pub(crate) async fn put_object_retention_op(
        &self,
        req: S3Request<PutObjectRetentionInput>,
    ) -> S3Result<S3Response<PutObjectRetentionOutput>> {
        let _writing = self.writing();
        let i = req.input;
        let _held = self.key_guard(&i.bucket, &i.key).await;
        let m = self
            .locked_version(&i.bucket, &i.key, i.version_id.as_deref())
            .await?;
        let asked = i.retention.unwrap_or_default();
        let next = match (asked.mode, asked.retain_until_date) {
            (Some(mode), Some(until)) => Some(Retention {
                mode: mode_of(mode.as_str())?,
                until_ms: ms_of(&until),
            }),
            (None, None) => None,
            _ => {
                return Err(S3Fault::MalformedXml(
                    "a retention names both a mode and a date, or neither".into(),
                )
                .into());
            }
        };
        if next.is_some_and(|n| n.until_ms <= now_ms()) {
            return Err(S3Fault::InvalidArgument(
                "The retain until date must be in the future!".into(),
            )
            .into());
        }
        if let Some(old) = m.state.retention
            && !loosens_nothing(old, next)
        {
            let bypass = i.bypass_governance_retention.unwrap_or(false);
            if old.mode == LockMode::Compliance || !bypass {
                // Shortened, weakened or removed: only a passed retention may be.
                self.check_passed(old).await?;
            }
        }
        self.revise_version(&m, move |m| m.state.retention = next)
            .await?;
        Ok(S3Response::new(PutObjectRetentionOutput::default()))
    }

    pub(crate) async fn get_object_legal_hold_op(
        &self,
        req: S3Request<GetObjectLegalHoldInput>,
    ) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
        let i = req.input;
        let m = self
            .locked_version(&i.bucket, &i.key, i.version_id.as_deref())
            .await?;
        let status = if m.state.legal_hold { "ON" } else { "OFF" };
        Ok(S3Response::new(GetObjectLegalHoldOutput {
            legal_hold: Some(ObjectLockLegalHold {
                status: Some(ObjectLockLegalHoldStatus::from(status.to_owned())),
            }),
        }))
    }

    pub(crate) async fn put_object_legal_hold_op(
        &self,
        req: S3Request<PutObjectLegalHoldInput>,
    ) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
        let _writing = self.writing();
        let i = req.input;
        let _held = self.key_guard(&i.bucket, &i.key).await;
        let m = self
            .locked_version(&i.bucket, &i.key, i.version_id.as_deref())
            .await?;
        let hold = i
            .legal_hold
            .and_then(|h| h.status)
            .ok_or_else(|| S3Fault::MalformedXml("no legal hold status".into()))?;
        let on = hold_of(hold.as_str())?;
        if on != m.state.legal_hold {
            self.revise_version(&m, move |m| m.state.legal_hold = on)
                .await?;
        }
        Ok(S3Response::new(PutObjectLegalHoldOutput::default()))
    }

    /// Writes a revised copy of the version `m` (its state, or its tags) at the nodes, then the
    /// index.
    pub(crate) async fn revise_version(
        &self,
        m: &Manifest,
        change: impl FnOnce(&mut Manifest) + Send + 'static,
    ) -> S3Result<()> {
        let (copy, missed) = self.objects.revise(m, change).await.map_err(object_error)?;
        if missed.manifest {
            tracing::warn!(
                bucket = %m.bucket,
                key = %m.key,
                "a version's revision reached its quorum, not every node: reads take the revised copy"
            );
        }
        self.index.apply(&m.bucket, &m.key, &entry_of(&copy))?;
        Ok(())
    }
}

/// AWS's refusal of a change to a locked version.
fn protected() -> s3s::S3Error {
    S3Fault::AccessDenied("Access Denied because object protected by object lock.".into()).into()
}

/// Whether going from retention `old` to `next` keeps the version at least as protected: the
/// same or a stricter mode, until the same time or later.
fn loosens_nothing(old: Retention, next: Option<Retention>) -> bool {
    let Some(next) = next else { return false };
    let strength = |m: LockMode| match m {
        LockMode::Governance => 0,
        LockMode::Compliance => 1,
    };
    strength(next.mode) >= strength(old.mode) && next.until_ms >= old.until_ms
}

/// A default retention as the configuration names it: a mode and exactly one positive period.
fn default_of(d: &S3DefaultRetention) -> S3Result<DefaultRetention> {
    let mode = d
        .mode
        .as_ref()
        .ok_or_else(|| S3Fault::MalformedXml("a default retention names its mode".into()))?;
    let (period, years) = match (d.days, d.years) {
        (Some(n), None) => (n, false),
        (None, Some(n)) => (n, true),
        _ => {
            return Err(S3Fault::MalformedXml(
                "a default retention names Days or Years, not both".into(),
            )
            .into());
        }
    };
    let period = u32::try_from(period)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| {
            S3Fault::InvalidArgument(
                "Default retention period must be a positive integer value".into(),
            )
        })?;
    Ok(DefaultRetention {
        mode: mode_of(mode.as_str())?,
        period,
        years,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retention_is_only_ever_kept_or_strengthened_without_a_bypass() {
        let r = |mode, until_ms| Retention { mode, until_ms };
        use LockMode::{Compliance as C, Governance as G};
        assert!(loosens_nothing(r(C, 10), Some(r(C, 10))));
        assert!(loosens_nothing(r(C, 10), Some(r(C, 11))));
        assert!(loosens_nothing(r(G, 10), Some(r(C, 10))));
        assert!(!loosens_nothing(r(C, 10), Some(r(C, 9))));
        assert!(!loosens_nothing(r(C, 10), Some(r(G, 20))));
        assert!(!loosens_nothing(r(C, 10), None));
        assert!(!loosens_nothing(r(G, 10), Some(r(G, 9))));
    }
}
