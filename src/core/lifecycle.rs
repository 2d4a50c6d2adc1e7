//! A bucket's lifecycle rules (S3's lifecycle configuration), their checks, and the one
//! decision made from them: what is due for one key's versions, or for one upload, at a given
//! time (`docs/decisions/lifecycle.md`).
//!
//! Time is an argument, and so is the length of a day: S3 counts days from a version's
//! creation (or from when it became noncurrent) and rounds up to the next midnight UTC, which
//! is the next multiple of the day since the epoch; a test configures a shorter day, as Ceph's
//! `rgw_lc_debug_interval` does.

use serde::{Deserialize, Serialize};

/// The most rules a configuration holds (S3's limit).
pub const MAX_RULES: usize = 1000;
/// The longest rule id.
pub const MAX_ID_LEN: usize = 255;
/// The most newer noncurrent versions a rule may retain (S3's limit).
pub const MAX_NEWER_NONCURRENT: u32 = 100;
/// A day in milliseconds.
pub const DAY_MS: u64 = 86_400_000;

/// A bucket's lifecycle configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifecycle {
    /// Rules, in the order given.
    pub rules: Vec<Rule>,
}

/// One rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// Its id, if given.
    pub id: Option<String>,
    /// `Enabled` (else `Disabled`: kept, never applied).
    pub enabled: bool,
    /// Which objects it applies to.
    pub filter: Filter,
    /// When current versions expire.
    pub expiration: Option<Expiration>,
    /// When noncurrent versions are removed.
    pub noncurrent: Option<NoncurrentExpiration>,
    /// Days after initiation when an incomplete multipart upload is aborted.
    pub abort_upload_days: Option<u32>,
}

/// How a rule's filter was written: given back as it came.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum FilterShape {
    /// The rule's own (deprecated) `<Prefix>`.
    RulePrefix,
    /// `<Filter>` with at most one condition (an empty filter: every object).
    #[default]
    Single,
    /// `<Filter><And>`.
    And,
}

/// Which objects a rule applies to: every condition given must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// How it was written.
    pub shape: FilterShape,
    /// Keys starting with it.
    pub prefix: Option<String>,
    /// Versions carrying every one of these tags.
    pub tags: Vec<(String, String)>,
    /// Versions larger than this many bytes.
    pub size_greater_than: Option<u64>,
    /// Versions smaller than this many bytes.
    pub size_less_than: Option<u64>,
}

/// When a current version expires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expiration {
    /// This many days after its creation (rounded up to a day's end).
    Days(u32),
    /// From this time on (ms since the epoch; S3 requires midnight UTC).
    Date(u64),
    /// A delete marker that is a key's only version is removed.
    ExpiredObjectDeleteMarker,
}

/// When a noncurrent version is removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoncurrentExpiration {
    /// Days after it became noncurrent.
    pub days: u32,
    /// The newest this many noncurrent versions are kept whatever their age.
    pub newer_versions: Option<u32>,
}

/// Why a configuration is refused, with S3's error code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `MalformedXML`.
    #[error("{0}")]
    Malformed(String),
    /// `InvalidArgument`.
    #[error("{0}")]
    InvalidArgument(String),
    /// `InvalidRequest`.
    #[error("{0}")]
    InvalidRequest(String),
}

impl Lifecycle {
    /// Checks the configuration as S3 does.
    pub fn check(&self) -> Result<(), Refusal> {
        if self.rules.is_empty() {
            return Err(Refusal::Malformed(
                "a lifecycle configuration has at least one rule".into(),
            ));
        }
        if self.rules.len() > MAX_RULES {
            return Err(Refusal::Malformed(format!(
                "a lifecycle configuration has at most {MAX_RULES} rules"
            )));
        }
        let mut ids = std::collections::HashSet::new();
        for r in &self.rules {
            if let Some(id) = &r.id {
                if id.len() > MAX_ID_LEN {
                    return Err(Refusal::InvalidArgument(format!(
                        "the ID of a rule is at most {MAX_ID_LEN} characters long"
                    )));
                }
                if !ids.insert(id.as_str()) {
                    return Err(Refusal::InvalidArgument(
                        "Rule ID must be unique. Found same ID for more than one rule".into(),
                    ));
                }
            }
            r.check()?;
        }
        Ok(())
    }
}

impl Rule {
    fn check(&self) -> Result<(), Refusal> {
        if self.expiration.is_none()
            && self.noncurrent.is_none()
            && self.abort_upload_days.is_none()
        {
            return Err(Refusal::InvalidRequest(
                "At least one action needs to be specified in a rule".into(),
            ));
        }
        match self.expiration {
            Some(Expiration::Days(0)) => {
                return Err(Refusal::InvalidArgument(
                    "'Days' for Expiration action must be a positive integer".into(),
                ));
            }
            Some(Expiration::Date(ms)) if ms % DAY_MS != 0 => {
                return Err(Refusal::InvalidArgument(
                    "'Date' must be at midnight GMT".into(),
                ));
            }
            Some(Expiration::ExpiredObjectDeleteMarker) if !self.filter.tags.is_empty() => {
                return Err(Refusal::InvalidRequest(
                    "ExpiredObjectDeleteMarker cannot be specified with tags".into(),
                ));
            }
            _ => {}
        }
        if let Some(n) = self.noncurrent {
            if n.days == 0 {
                return Err(Refusal::InvalidArgument(
                    "'NoncurrentDays' for NoncurrentVersionExpiration action must be a positive \
                     integer"
                        .into(),
                ));
            }
            if n.newer_versions
                .is_some_and(|v| v == 0 || v > MAX_NEWER_NONCURRENT)
            {
                return Err(Refusal::InvalidArgument(format!(
                    "'NewerNoncurrentVersions' must be between 1 and {MAX_NEWER_NONCURRENT}"
                )));
            }
        }
        if let Some(d) = self.abort_upload_days {
            if d == 0 {
                return Err(Refusal::InvalidArgument(
                    "'DaysAfterInitiation' for AbortIncompleteMultipartUpload action must be a \
                     positive integer"
                        .into(),
                ));
            }
            if !self.filter.tags.is_empty() {
                return Err(Refusal::InvalidRequest(
                    "AbortIncompleteMultipartUpload cannot be specified with tags".into(),
                ));
            }
        }
        let f = &self.filter;
        if let (Some(gt), Some(lt)) = (f.size_greater_than, f.size_less_than)
            && gt >= lt
        {
            return Err(Refusal::InvalidArgument(
                "ObjectSizeGreaterThan must be less than ObjectSizeLessThan".into(),
            ));
        }
        let mut keys = std::collections::HashSet::new();
        if f.tags.iter().any(|(k, _)| !keys.insert(k.as_str())) {
            return Err(Refusal::InvalidRequest(
                "Duplicate Tag Keys are not allowed.".into(),
            ));
        }
        Ok(())
    }
}

/// One version of a key as the rules see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VersionView<'a> {
    /// When it was written (ms since the epoch).
    pub created_ms: u64,
    /// Plaintext size (0 for a delete marker).
    pub size: u64,
    /// A delete marker.
    pub delete_marker: bool,
    /// Its tags.
    pub tags: &'a [(String, String)],
}

/// What is due for one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Due {
    /// Its current version expires: a delete marker (versioned), the key's end (unversioned).
    ExpireCurrent,
    /// The version at this index (newest first) is removed for good.
    Remove(usize),
}

impl Filter {
    /// Whether a version of `key` is in scope.
    pub fn matches(&self, key: &str, v: &VersionView<'_>) -> bool {
        self.prefix.as_deref().is_none_or(|p| key.starts_with(p))
            && self.size_greater_than.is_none_or(|gt| v.size > gt)
            && self.size_less_than.is_none_or(|lt| v.size < lt)
            && self
                .tags
                .iter()
                .all(|t| v.tags.iter().any(|have| have == t))
    }
}

/// `from + days`, rounded up to the end of a day of `day_ms`.
fn after_days(from_ms: u64, days: u32, day_ms: u64) -> u64 {
    let t = from_ms.saturating_add(u64::from(days).saturating_mul(day_ms));
    t.div_ceil(day_ms).saturating_mul(day_ms)
}

impl Lifecycle {
    /// What is due at `now_ms` for `key`'s versions, newest first (the first is the current
    /// one; a key of an unversioned bucket has that one only). Sorted, no repeats.
    pub fn due(
        &self,
        key: &str,
        versions: &[VersionView<'_>],
        now_ms: u64,
        day_ms: u64,
    ) -> Vec<Due> {
        let day_ms = day_ms.max(1);
        let mut out = Vec::new();
        let Some(current) = versions.first() else {
            return out;
        };
        for r in self.rules.iter().filter(|r| r.enabled) {
            match r.expiration {
                Some(Expiration::Days(d))
                    if !current.delete_marker
                        && r.filter.matches(key, current)
                        && now_ms >= after_days(current.created_ms, d, day_ms) =>
                {
                    out.push(Due::ExpireCurrent);
                }
                Some(Expiration::Date(at))
                    if !current.delete_marker && r.filter.matches(key, current) && now_ms >= at =>
                {
                    out.push(Due::ExpireCurrent);
                }
                Some(Expiration::ExpiredObjectDeleteMarker)
                    if versions.len() == 1
                        && current.delete_marker
                        && r.filter.matches(key, current) =>
                {
                    out.push(Due::Remove(0));
                }
                _ => {}
            }
            if let Some(n) = r.noncurrent {
                let keep = n.newer_versions.unwrap_or(0) as usize;
                for (i, v) in versions.iter().enumerate().skip(1) {
                    // Noncurrent since its successor was written; `i - 1` newer noncurrent.
                    let since = versions[i - 1].created_ms;
                    if i > keep
                        && r.filter.matches(key, v)
                        && now_ms >= after_days(since, n.days, day_ms)
                    {
                        out.push(Due::Remove(i));
                    }
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Whether an upload of `key` initiated at `initiated_ms` is to be aborted at `now_ms`.
    pub fn abort_due(&self, key: &str, initiated_ms: u64, now_ms: u64, day_ms: u64) -> bool {
        let day_ms = day_ms.max(1);
        self.rules.iter().filter(|r| r.enabled).any(|r| {
            r.abort_upload_days.is_some_and(|d| {
                r.filter
                    .prefix
                    .as_deref()
                    .is_none_or(|p| key.starts_with(p))
                    && now_ms >= after_days(initiated_ms, d, day_ms)
            })
        })
    }
}
