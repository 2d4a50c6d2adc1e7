//! Access keys and their grants: what each S3 operation needs, and what a key's grants allow.
//!
//! A key other than the cluster's own (`exclave init`'s) is given rights per bucket name:
//! `read` (get, head, list), `write` (put, copy into, delete, multipart; implies nothing else),
//! `owner` (create and delete the bucket, configure it; implies read and write), and
//! `bypass_governance` (remove or shorten GOVERNANCE retention with
//! `x-amz-bypass-governance-retention`). A grant names a bucket whether or not it exists: an
//! owner grant is how a key is allowed to create its bucket.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What one operation asks of a bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Read objects, their versions and attributes, list the bucket, read its settings.
    Read,
    /// Write and delete objects (multipart included), set their retention and tags.
    Write,
    /// Create, delete and configure the bucket.
    Owner,
    /// Remove or shorten GOVERNANCE retention.
    BypassGovernance,
}

impl Action {
    /// The name people and the admin API use.
    pub fn label(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Owner => "owner",
            Self::BypassGovernance => "bypass_governance",
        }
    }
}

/// The action an S3 operation (by its name in the S3 API reference) needs on the bucket it
/// names; None for ListBuckets (every key may list, and sees only what it may read).
/// Operations not named here (the bucket's settings exclave may not implement) need `Owner`.
pub fn action_of(op: &str) -> Option<Action> {
    Some(match op {
        "ListBuckets" => return None,
        "GetObject"
        | "HeadObject"
        | "ListObjects"
        | "ListObjectsV2"
        | "ListObjectVersions"
        | "GetObjectRetention"
        | "GetObjectLegalHold"
        | "GetObjectAttributes"
        | "GetObjectTagging"
        | "GetObjectAcl"
        | "GetObjectTorrent"
        | "HeadBucket"
        | "GetBucketLocation"
        | "GetBucketVersioning"
        | "ListMultipartUploads"
        | "ListParts"
        | "GetObjectLockConfiguration"
        | "GetBucketLifecycleConfiguration"
        | "GetBucketAcl"
        | "GetBucketCors"
        | "GetBucketEncryption"
        | "GetBucketTagging"
        | "GetBucketPolicyStatus"
        | "GetBucketOwnershipControls"
        | "GetPublicAccessBlock"
        | "GetBucketAccelerateConfiguration"
        | "GetBucketLogging"
        | "GetBucketNotificationConfiguration"
        | "GetBucketRequestPayment"
        | "GetBucketWebsite"
        | "SelectObjectContent" => Action::Read,
        "PutObject"
        | "CopyObject"
        | "DeleteObject"
        | "DeleteObjects"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload"
        | "AbortMultipartUpload"
        | "PutObjectRetention"
        | "PutObjectTagging"
        | "DeleteObjectTagging"
        | "PutObjectAcl"
        | "RestoreObject" => Action::Write,
        _ => Action::Owner,
    })
}

/// What a key may do in one bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rights {
    /// Read objects and list.
    #[serde(default)]
    pub read: bool,
    /// Write and delete objects.
    #[serde(default)]
    pub write: bool,
    /// Create, delete, configure the bucket (implies read and write).
    #[serde(default)]
    pub owner: bool,
    /// Remove or shorten GOVERNANCE retention.
    #[serde(default)]
    pub bypass_governance: bool,
}

impl Rights {
    /// Whether these rights allow `action`.
    pub fn allow(&self, action: Action) -> bool {
        match action {
            Action::Read => self.read || self.owner,
            Action::Write => self.write || self.owner,
            Action::Owner => self.owner,
            Action::BypassGovernance => self.bypass_governance,
        }
    }

    /// No right at all.
    pub fn none(&self) -> bool {
        *self == Self::default()
    }

    /// These rights and `more`.
    pub fn with(self, more: Self) -> Self {
        Self {
            read: self.read || more.read,
            write: self.write || more.write,
            owner: self.owner || more.owner,
            bypass_governance: self.bypass_governance || more.bypass_governance,
        }
    }

    /// These rights without `less`.
    pub fn without(self, less: Self) -> Self {
        Self {
            read: self.read && !less.read,
            write: self.write && !less.write,
            owner: self.owner && !less.owner,
            bypass_governance: self.bypass_governance && !less.bypass_governance,
        }
    }

    /// The rights by name (`read`, `write`, `owner`, `bypass_governance`), for tables.
    pub fn labels(&self) -> Vec<&'static str> {
        [
            (self.read, "read"),
            (self.write, "write"),
            (self.owner, "owner"),
            (self.bypass_governance, "bypass_governance"),
        ]
        .into_iter()
        .filter_map(|(on, l)| on.then_some(l))
        .collect()
    }
}

/// One access key as the sites keep it (its record's header, JSON) and the index caches it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    /// The name the operator gave it (unique).
    pub name: String,
    /// The S3 access key id.
    pub access_key_id: String,
    /// The secret, sealed under the master key (label: the access key id), hex.
    pub secret_sealed: String,
    /// When it was made, ms since the epoch.
    pub created_ms: u64,
    /// When its secret was last replaced (0: never).
    #[serde(default)]
    pub rotated_ms: u64,
    /// Its rights, per bucket name.
    #[serde(default)]
    pub grants: BTreeMap<String, Rights>,
}

impl KeyRecord {
    /// The rights of this key in `bucket`.
    pub fn rights(&self, bucket: &str) -> Rights {
        self.grants.get(bucket).copied().unwrap_or_default()
    }
}

/// Why a key name is refused, if it is: 1 to 64 of letters, digits, `.`, `_`, `-`.
pub fn check_key_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!("a key name is 1 to 64 characters: {name:?}"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(format!(
            "a key name is letters, digits, '.', '_' and '-' only: {name:?}"
        ));
    }
    Ok(())
}

/// The bucket an `x-amz-copy-source` header names (`bucket/key[?versionId=..]`, with or
/// without a leading `/`, percent-encoded or not), if it names one.
pub fn copy_source_bucket(header: &str) -> Option<String> {
    let path = header.split_once('?').map_or(header, |(p, _)| p);
    let path = path.strip_prefix('/').unwrap_or(path);
    let (bucket, key) = path.split_once('/')?;
    let bucket = percent_decode(bucket)?;
    (!bucket.is_empty() && !key.is_empty()).then_some(bucket)
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_implies_read_and_write_but_not_bypass() {
        let owner = Rights {
            owner: true,
            ..Rights::default()
        };
        assert!(owner.allow(Action::Read) && owner.allow(Action::Write));
        assert!(!owner.allow(Action::BypassGovernance));
        let read = Rights {
            read: true,
            ..Rights::default()
        };
        assert!(read.allow(Action::Read));
        assert!(!read.allow(Action::Write) && !read.allow(Action::Owner));
        assert!(Rights::default().none());
        assert_eq!(owner.with(read).without(owner), read);
        assert_eq!(owner.with(read).labels(), vec!["read", "owner"]);
    }

    #[test]
    fn every_operation_maps_to_the_right_it_needs() {
        assert_eq!(action_of("ListBuckets"), None);
        assert_eq!(action_of("GetObject"), Some(Action::Read));
        assert_eq!(action_of("ListObjectsV2"), Some(Action::Read));
        assert_eq!(action_of("UploadPartCopy"), Some(Action::Write));
        assert_eq!(action_of("DeleteObjects"), Some(Action::Write));
        assert_eq!(action_of("CreateBucket"), Some(Action::Owner));
        assert_eq!(action_of("PutBucketPolicy"), Some(Action::Owner));
        assert_eq!(action_of("GetBucketPolicy"), Some(Action::Owner));
        assert_eq!(action_of("PutObjectLegalHold"), Some(Action::Owner));
        assert_eq!(action_of("SomethingNew"), Some(Action::Owner));
    }

    #[test]
    fn copy_sources_name_their_bucket_in_every_spelling() {
        for h in [
            "land/deed",
            "/land/deed",
            "land/a%2Fb?versionId=x",
            "%6Cand/deed",
        ] {
            assert_eq!(copy_source_bucket(h).as_deref(), Some("land"), "{h}");
        }
        for h in ["", "/", "land", "land/", "/deed", "%zz/deed"] {
            assert_eq!(copy_source_bucket(h), None, "{h}");
        }
    }

    #[test]
    fn key_names_are_plain() {
        assert!(check_key_name("land-registry.app_1").is_ok());
        for bad in ["", "a b", "a/b", "ä", &"x".repeat(65)] {
            assert!(check_key_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_record_reads_back_and_refuses_unknown_fields() {
        let mut r = KeyRecord {
            name: "land".into(),
            access_key_id: "EXCK".into(),
            secret_sealed: "00".into(),
            created_ms: 1,
            rotated_ms: 0,
            grants: BTreeMap::new(),
        };
        r.grants.insert(
            "land".into(),
            Rights {
                read: true,
                ..Rights::default()
            },
        );
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<KeyRecord>(&text).unwrap(), r);
        assert!(serde_json::from_str::<KeyRecord>(&text.replace("\"name\"", "\"nom\"")).is_err());
    }
}
