//! Access keys other than the cluster's own, and their grants (`core::access`): made,
//! changed and deleted through the admin API, kept as records at the sites (a hidden
//! namespace, one record per key, the secret sealed under the master key inside the sealed
//! record), cached in the index, and checked on every request by the `Gatekeeper`.
//!
//! A change is written to the sites (the write quorum, fsynced) before it takes effect; a
//! deleted key or a replaced secret stops working at once, requests already running included:
//! a write checks its key again before it commits.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use s3s::auth::SecretKey;
use serde_json::{Value, json};

use super::Gateway;
use super::buckets::HIDDEN;
use super::error::S3Fault;
use crate::coordinator::object::PutInput;
use crate::core::access::{Action, KeyRecord, Rights, check_key_name};
use crate::core::format::{Manifest, ManifestBody, Versioning};
use crate::core::ids::{hex, unhex};
use crate::core::policy::{Ask, Policy, Verdict};
use crate::meta::MetaError;
use crate::sys::now_ms;

/// The hidden namespace of the access keys' records (key: the access key id).
pub(crate) fn access_bucket() -> String {
    format!("{HIDDEN}access")
}

/// The header of a key's record that carries it (JSON).
const RECORD_HEADER: &str = "x-exclave-access-key";

/// Why an admin change of keys or grants failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AccessError {
    /// Bad input: a name, a missing parameter.
    #[error("{0}")]
    Invalid(String),
    /// No key of that name.
    #[error("no access key named {0:?}")]
    NoSuchKey(String),
    /// A key of that name exists.
    #[error("an access key named {0:?} exists")]
    Exists(String),
    /// The sites did not take the change.
    #[error("the change was not written to the sites: {0}")]
    Write(String),
    /// The index failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
}

/// A key the gateway accepts: its record and its opened secret.
#[derive(Clone)]
struct Tenant {
    record: KeyRecord,
    secret: SecretKey,
}

/// The access keys made with `exclave key create`, by access key id, as the index has them.
#[derive(Default)]
pub struct Tenants {
    keys: RwLock<BTreeMap<String, Tenant>>,
}

/// Bucket policies as parsed, by bucket, with the text each was parsed from: a request meets
/// its bucket's policy parsed once, not once per request (or per key of a DeleteObjects). The
/// index holds the truth; an entry whose text is no longer the bucket's is parsed again.
#[derive(Debug, Default)]
pub(crate) struct ParsedPolicies(Mutex<HashMap<String, (String, Arc<Policy>)>>);

/// What a request is, besides its key and operation, for the policies it meets (set by the
/// `Gatekeeper` in the request's extensions).
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) peer: Option<super::traffic::Peer>,
    pub(crate) prefix: Option<String>,
    /// The `versionId` the request names, if any.
    pub(crate) version_id: Option<String>,
    pub(crate) now_ms: u64,
}

impl std::fmt::Debug for Tenants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenants")
            .field("keys", &self.read().len())
            .finish()
    }
}

impl Tenants {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Tenant>> {
        self.keys.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Tenant>> {
        self.keys.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The secret of access key `id`, if it is one of these keys.
    pub(crate) fn secret(&self, id: &str) -> Option<SecretKey> {
        self.read().get(id).map(|t| t.secret.clone())
    }

    /// The record of access key `id`, if it is one of these keys.
    pub(crate) fn record(&self, id: &str) -> Option<KeyRecord> {
        self.read().get(id).map(|t| t.record.clone())
    }

    fn by_name(&self, name: &str) -> Option<KeyRecord> {
        self.read()
            .values()
            .find(|t| t.record.name == name)
            .map(|t| t.record.clone())
    }

    fn all(&self) -> Vec<KeyRecord> {
        let mut v: Vec<KeyRecord> = self.read().values().map(|t| t.record.clone()).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }
}

/// Who signed a request, as the `Gatekeeper` found it; the operations read it from the
/// request's extensions.
#[derive(Clone, Debug)]
pub(crate) enum Pass {
    /// A key of the cluster's credentials file: every bucket.
    Cluster,
    /// A key made with `exclave key create`: its id, and when its secret was set.
    Key { id: String, secret_set_ms: u64 },
}

impl Pass {
    /// Whether this pass may see `bucket` in ListBuckets (any right there).
    pub(crate) fn sees(&self, tenants: &Tenants, bucket: &str) -> bool {
        match self {
            Self::Cluster => true,
            Self::Key { id, .. } => tenants.record(id).is_some_and(|r| !r.rights(bucket).none()),
        }
    }

    /// Ok if the key behind this pass still exists with the same secret and may still do
    /// `action` in `bucket`: a write asks again just before it commits.
    pub(crate) fn still(
        &self,
        tenants: &Tenants,
        bucket: &str,
        action: Action,
    ) -> Result<(), S3Fault> {
        let Self::Key { id, secret_set_ms } = self else {
            return Ok(());
        };
        match tenants.record(id) {
            Some(r) if set_ms(&r) == *secret_set_ms && r.rights(bucket).allow(action) => Ok(()),
            Some(r) if set_ms(&r) == *secret_set_ms => Err(S3Fault::AccessDenied(format!(
                "the grant of this access key in bucket {bucket} was withdrawn while the \
                 request ran"
            ))),
            _ => Err(S3Fault::AccessDenied(
                "this access key was deleted or its secret replaced while the request ran".into(),
            )),
        }
    }
}

/// When a key's current secret was set.
pub(crate) fn set_ms(r: &KeyRecord) -> u64 {
    r.rotated_ms.max(r.created_ms)
}

/// What the operation with extensions `ext` may still do: Ok when its pass (if any) still
/// allows `action` in `bucket`.
pub(crate) fn still_allowed(
    tenants: &Tenants,
    ext: &http::Extensions,
    bucket: &str,
    action: Action,
) -> s3s::S3Result<()> {
    match ext.get::<Pass>() {
        Some(p) => p.still(tenants, bucket, action).map_err(Into::into),
        None => Ok(()),
    }
}

/// A fresh access key id (20 characters: `prefix`, three letters, and 17 of base32) and secret
/// (40 of base64). The cluster's own keys start `EXC`, those `exclave key create` makes `EXK`.
pub fn new_key_pair(prefix: &str) -> (String, String) {
    (
        format!(
            "{prefix}{}",
            crate::sys::random_text(17, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        ),
        crate::sys::random_text(
            40,
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
        ),
    )
}

/// A key for the admin API and the CLI (never its secret).
fn key_json(r: &KeyRecord) -> Value {
    let grants: Vec<Value> = r
        .grants
        .iter()
        .map(|(b, rights)| json!({"bucket": b, "rights": rights.labels()}))
        .collect();
    json!({
        "name": r.name, "access_key_id": r.access_key_id, "created_ms": r.created_ms,
        "rotated_ms": r.rotated_ms, "grants": grants,
    })
}

/// The rights named in a request's parameters (`read`, `write`, `owner`,
/// `bypass_governance`: `1` or `true`).
pub(crate) fn rights_of(param: impl Fn(&str) -> Option<String>) -> Rights {
    let on = |n: &str| param(n).is_some_and(|v| v == "1" || v == "true");
    Rights {
        read: on("read"),
        write: on("write"),
        owner: on("owner"),
        bypass_governance: on("bypass_governance"),
    }
}

impl Gateway {
    /// Ok when the request with extensions `ext` may still do `action` in `bucket` (its key
    /// not deleted, its secret not replaced, its grant not withdrawn): asked just before a
    /// write commits.
    pub(crate) fn still(
        &self,
        ext: &http::Extensions,
        bucket: &str,
        action: Action,
    ) -> s3s::S3Result<()> {
        still_allowed(&self.tenants, ext, bucket, action)
    }

    /// [`Self::still`] for a copy: read in its source's bucket, write in `bucket`.
    pub(crate) fn still_copying(
        &self,
        ext: &http::Extensions,
        source: &s3s::dto::CopySource,
        bucket: &str,
    ) -> s3s::S3Result<()> {
        if let s3s::dto::CopySource::Bucket { bucket: src, .. } = source {
            self.still(ext, src, Action::Read)?;
        }
        self.still(ext, bucket, Action::Write)
    }

    /// What `bucket`'s policy says of the key `id` (named `name`; None: the cluster's key)
    /// doing `action` on the bucket (`key` None) or one of its objects.
    pub(crate) fn policy_verdict(
        &self,
        id: &str,
        name: Option<&str>,
        bucket: &str,
        key: Option<&str>,
        action: &str,
        seen: &Seen,
    ) -> Result<Verdict, MetaError> {
        let Some(policy) = self.policy_of(bucket)? else {
            return Ok(Verdict::Silent);
        };
        let resource = match key {
            Some(k) => format!("arn:aws:s3:::{bucket}/{k}"),
            None => format!("arn:aws:s3:::{bucket}"),
        };
        let tags = match key {
            Some(k) if policy.reads_tags() => self.existing_tags(bucket, k, seen)?,
            _ => Vec::new(),
        };
        Ok(policy.evaluate(&Ask {
            key_id: id,
            key_name: name,
            action,
            resource: &resource,
            secure: seen.peer.is_some_and(|p| p.secure),
            source_ip: seen.peer.map(|p| p.addr.ip()),
            now_ms: seen.now_ms,
            prefix: seen.prefix.as_deref(),
            tags: &tags,
        }))
    }

    /// The tags of the version a request names (its `versionId`, else the key's current
    /// version), as the index keeps them; none when there is no such version.
    fn existing_tags(
        &self,
        bucket: &str,
        key: &str,
        seen: &Seen,
    ) -> Result<crate::core::tags::Tags, MetaError> {
        let entry = match seen.version_id.as_deref() {
            Some(id) => match super::list::parse_version_id(id) {
                Ok(marker) => self.index.version(bucket, key, marker)?,
                Err(_) => None,
            },
            None => self.index.get(bucket, key)?,
        };
        Ok(entry
            .filter(|e| !e.deleted && !e.removed)
            .map(|e| crate::core::tags::decode_stored(&e.tags))
            .unwrap_or_default())
    }

    /// Whether `bucket`'s policy has an Allow for the key `id` doing `action` somewhere in it.
    pub(crate) fn policy_may_allow(
        &self,
        id: &str,
        name: Option<&str>,
        bucket: &str,
        action: &str,
        seen: &Seen,
    ) -> bool {
        let Ok(Some(policy)) = self.policy_of(bucket) else {
            return false;
        };
        policy.may_allow(&Ask {
            key_id: id,
            key_name: name,
            action,
            resource: "",
            secure: seen.peer.is_some_and(|p| p.secure),
            source_ip: seen.peer.map(|p| p.addr.ip()),
            now_ms: seen.now_ms,
            prefix: None,
            tags: &[],
        })
    }

    /// `bucket`'s policy, parsed (it was checked when put; principals that named a key since
    /// deleted simply match nobody).
    fn policy_of(&self, bucket: &str) -> Result<Option<Arc<Policy>>, MetaError> {
        let Some(text) = self.index.bucket_policy(bucket)? else {
            return Ok(None);
        };
        let mut parsed = self.policies.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((was, p)) = parsed.get(bucket)
            && *was == text
        {
            return Ok(Some(p.clone()));
        }
        let p = Arc::new(match Policy::parse(&text, bucket, |_| true) {
            Ok(p) => p,
            Err(e) => {
                // Checked when put: a policy that no longer reads denies everything but the
                // operator's mending of it, rather than allowing what it may have denied.
                tracing::error!(bucket, error = %e, "a bucket policy does not read: everything denied");
                Policy::deny_all(bucket)
            }
        });
        parsed.insert(bucket.to_owned(), (text, p.clone()));
        Ok(Some(p))
    }

    /// Whether the request with extensions `ext` may delete `key` of `bucket`: the bucket's
    /// policy does not deny it, and a key made with `exclave key create` has the write right
    /// there or the policy allows it (DeleteObjects asks this of each key it names).
    pub(crate) fn may_delete(
        &self,
        ext: &http::Extensions,
        bucket: &str,
        key: &str,
    ) -> Result<(), S3Fault> {
        let (Some(pass), Some(seen)) = (ext.get::<Pass>(), ext.get::<Seen>()) else {
            return Ok(());
        };
        let (id, record) = match pass {
            Pass::Cluster => (String::new(), None),
            Pass::Key { id, .. } => (id.clone(), self.tenants.record(id)),
        };
        let name = record.as_ref().map(|r| r.name.as_str());
        let v = self
            .policy_verdict(&id, name, bucket, Some(key), "s3:DeleteObject", seen)
            .map_err(|e| S3Fault::InvalidRequest(format!("the bucket's policy: {e}")))?;
        let granted = match (pass, &record) {
            (Pass::Cluster, _) => true,
            (_, Some(r)) => r.rights(bucket).allow(Action::Write),
            (_, None) => false,
        };
        if v == Verdict::Deny || !(granted || v == Verdict::Allow) {
            return Err(S3Fault::AccessDenied(format!(
                "the bucket's policy or the key's grants do not let it delete {key}"
            )));
        }
        Ok(())
    }

    /// Whether the key `name` (or access key id) exists: a policy's principals must.
    pub(crate) fn key_exists(&self, name_or_id: &str) -> bool {
        self.tenants.record(name_or_id).is_some() || self.tenants.by_name(name_or_id).is_some()
    }

    /// The access keys made with `exclave key create`, shared with the S3 front.
    pub fn tenants(&self) -> Arc<Tenants> {
        self.tenants.clone()
    }

    /// Loads the keys the index holds, opening each secret with the master key (or an earlier
    /// one). A key whose secret does not open is left out, loudly.
    pub(crate) fn load_access_keys(&self) -> Result<usize, MetaError> {
        let mut keys = BTreeMap::new();
        for (id, bytes) in self.index.access_keys()? {
            let opened = serde_json::from_slice::<KeyRecord>(&bytes)
                .map_err(|e| e.to_string())
                .and_then(|r| self.open_key(r));
            match opened {
                Ok(t) => {
                    keys.insert(id, t);
                }
                Err(e) => {
                    tracing::error!(access_key_id = id, error = %e, "an access key cannot be used");
                }
            }
        }
        let n = keys.len();
        *self.tenants.write() = keys;
        Ok(n)
    }

    fn open_key(&self, record: KeyRecord) -> Result<Tenant, String> {
        let sealed = unhex(&record.secret_sealed).ok_or("the sealed secret is not hex")?;
        let secret = self
            .objects
            .open_secret(&record.access_key_id, &sealed)
            .map_err(|e| format!("the secret does not open: {e}"))?;
        let secret = String::from_utf8(secret).map_err(|_| "the secret is not UTF-8")?;
        Ok(Tenant {
            record,
            secret: SecretKey::from(secret),
        })
    }

    /// Takes the newest record of each key found at the nodes (`hidden`) into the index: a
    /// key's record, or its tombstone. Returns how many keys there are.
    pub(crate) fn take_access_keys<'a>(
        &self,
        hidden: impl IntoIterator<Item = &'a Manifest>,
    ) -> Result<usize, MetaError> {
        let bucket = access_bucket();
        let mut n = 0;
        for m in hidden.into_iter().filter(|m| m.bucket == bucket) {
            match record_of(m) {
                Some(r) => {
                    self.index.set_access_key(
                        &m.key,
                        Some(&serde_json::to_vec(&r).unwrap_or_default()),
                    )?;
                    n += 1;
                }
                None => self.index.set_access_key(&m.key, None)?,
            }
        }
        Ok(n)
    }

    /// Writes `record` to the sites (None: the key's tombstone), then to the index and the
    /// keys in use. The caller holds the namespace's lock.
    async fn store_key(&self, id: &str, record: Option<KeyRecord>) -> Result<(), AccessError> {
        let bucket = access_bucket();
        match &record {
            Some(r) => {
                let text =
                    serde_json::to_string(r).map_err(|e| AccessError::Write(e.to_string()))?;
                let input = PutInput {
                    bucket,
                    key: id.to_owned(),
                    size: 0,
                    headers: vec![(RECORD_HEADER.to_owned(), text.clone())],
                    ..PutInput::default()
                };
                self.objects
                    .put(input, tokio::io::empty())
                    .await
                    .map_err(|e| AccessError::Write(e.to_string()))?;
                let tenant = self.open_key(r.clone()).map_err(AccessError::Write)?;
                self.index.set_access_key(id, Some(text.as_bytes()))?;
                self.tenants.write().insert(id.to_owned(), tenant);
            }
            None => {
                self.delete_manifest(&bucket, id, Versioning::Unversioned)
                    .await
                    .map_err(|e| AccessError::Write(e.to_string()))?;
                self.index.set_access_key(id, None)?;
                self.tenants.write().remove(id);
            }
        }
        Ok(())
    }

    fn named(&self, name: &str) -> Result<KeyRecord, AccessError> {
        self.tenants
            .by_name(name)
            .ok_or_else(|| AccessError::NoSuchKey(name.to_owned()))
    }

    /// `exclave key create`: a new key with no grants; its secret is in the answer, once.
    pub(crate) async fn create_key(&self, name: &str) -> Result<Value, AccessError> {
        check_key_name(name).map_err(AccessError::Invalid)?;
        let _held = self.key_guard(&access_bucket(), "").await;
        if self.tenants.by_name(name).is_some() {
            return Err(AccessError::Exists(name.to_owned()));
        }
        let (id, secret) = new_key_pair("EXK");
        let record = KeyRecord {
            name: name.to_owned(),
            access_key_id: id.clone(),
            secret_sealed: hex(&self.objects.seal_secret(&id, secret.as_bytes())),
            created_ms: now_ms(),
            rotated_ms: 0,
            grants: BTreeMap::new(),
        };
        self.store_key(&id, Some(record.clone())).await?;
        tracing::info!(name, access_key_id = id, "access key created");
        let mut v = key_json(&record);
        v["secret_access_key"] = secret.into();
        Ok(v)
    }

    /// `exclave key rotate-secret`: a new secret for the same key id; the old one stops working.
    pub(crate) async fn rotate_key_secret(&self, name: &str) -> Result<Value, AccessError> {
        let _held = self.key_guard(&access_bucket(), "").await;
        let mut record = self.named(name)?;
        let (_, secret) = new_key_pair("EXK");
        let id = record.access_key_id.clone();
        record.secret_sealed = hex(&self.objects.seal_secret(&id, secret.as_bytes()));
        // Strictly later than the secret it replaces, so requests signed with that one fail.
        record.rotated_ms = now_ms().max(set_ms(&record) + 1);
        self.store_key(&id, Some(record.clone())).await?;
        tracing::info!(name, access_key_id = id, "access key secret replaced");
        let mut v = key_json(&record);
        v["secret_access_key"] = secret.into();
        Ok(v)
    }

    /// `exclave key delete`: the key stops working at once.
    pub(crate) async fn delete_key(&self, name: &str) -> Result<Value, AccessError> {
        let _held = self.key_guard(&access_bucket(), "").await;
        let record = self.named(name)?;
        self.store_key(&record.access_key_id, None).await?;
        tracing::info!(
            name,
            access_key_id = record.access_key_id,
            "access key deleted"
        );
        Ok(json!({"deleted": name, "access_key_id": record.access_key_id}))
    }

    /// `exclave key list`.
    pub(crate) fn list_keys(&self) -> Value {
        json!({"keys": self.tenants.all().iter().map(key_json).collect::<Vec<_>>()})
    }

    /// `exclave key info`.
    pub(crate) fn key_info(&self, name: &str) -> Result<Value, AccessError> {
        Ok(key_json(&self.named(name)?))
    }

    /// `exclave bucket allow` (`allow`) and `bucket deny`: adds `rights` to the key's rights
    /// in `bucket`, or takes them away (none named: all of them).
    pub(crate) async fn grant(
        &self,
        name: &str,
        bucket: &str,
        rights: Rights,
        allow: bool,
    ) -> Result<Value, AccessError> {
        if let Some(why) = super::guard::bucket_name_problem(bucket, true) {
            return Err(AccessError::Invalid(format!(
                "not a bucket name: {bucket:?}: {why}"
            )));
        }
        if allow && rights.none() {
            return Err(AccessError::Invalid(
                "name at least one right: read, write, owner, bypass_governance".into(),
            ));
        }
        let _held = self.key_guard(&access_bucket(), "").await;
        let mut record = self.named(name)?;
        let had = record.rights(bucket);
        let now = if allow {
            had.with(rights)
        } else if rights.none() {
            Rights::default()
        } else {
            had.without(rights)
        };
        if now.none() {
            record.grants.remove(bucket);
        } else {
            record.grants.insert(bucket.to_owned(), now);
        }
        if now != had {
            let id = record.access_key_id.clone();
            self.store_key(&id, Some(record.clone())).await?;
            tracing::info!(name, bucket, rights = ?now.labels(), "grant changed");
        }
        Ok(json!({"key": name, "bucket": bucket, "rights": now.labels()}))
    }

    /// `exclave bucket list` (None) and `bucket info`: each bucket (existing, or named by a
    /// grant) with the keys that may use it and how.
    pub(crate) fn buckets_access(&self, only: Option<&str>) -> Result<Value, AccessError> {
        let mut out: BTreeMap<String, (Option<u64>, Vec<Value>)> = BTreeMap::new();
        for (b, created) in self.index.buckets()? {
            if only.is_none_or(|o| o == b) {
                out.insert(b, (Some(created), Vec::new()));
            }
        }
        if let Some(o) = only {
            out.entry(o.to_owned()).or_default();
        }
        for k in self.tenants.all() {
            for (b, rights) in &k.grants {
                if only.is_some_and(|o| o != b) {
                    continue;
                }
                out.entry(b.clone()).or_default().1.push(json!({
                    "key": k.name, "access_key_id": k.access_key_id, "rights": rights.labels(),
                }));
            }
        }
        let buckets: Vec<Value> = out
            .into_iter()
            .map(|(b, (created, keys))| {
                json!({"bucket": b, "exists": created.is_some(), "created_ms": created,
                       "cluster_keys": "every right", "keys": keys})
            })
            .collect();
        Ok(match only {
            Some(_) => buckets.into_iter().next().unwrap_or_default(),
            None => json!({"buckets": buckets}),
        })
    }
}

/// The key record a manifest of the keys' namespace carries (None: a tombstone, or a record
/// this build cannot read, which is then left out loudly).
fn record_of(m: &Manifest) -> Option<KeyRecord> {
    let ManifestBody::Object(meta) = &m.body else {
        return None;
    };
    let (_, text) = meta.headers.iter().find(|(n, _)| n == RECORD_HEADER)?;
    match serde_json::from_str::<KeyRecord>(text) {
        Ok(r) if r.access_key_id == m.key => Some(r),
        Ok(_) => {
            tracing::error!(
                key = m.key,
                "an access key's record names another key: left out"
            );
            None
        }
        Err(e) => {
            tracing::error!(key = m.key, error = %e, "an access key's record does not read: left out");
            None
        }
    }
}

/// `record`'s secret sealed under `new` (None: it already is), opened with `old`.
fn resealed(
    record: &KeyRecord,
    old: &crate::core::keys::MasterKey,
    new: &crate::core::keys::MasterKey,
) -> Result<Option<KeyRecord>, String> {
    let id = &record.access_key_id;
    let sealed = unhex(&record.secret_sealed).ok_or("a sealed secret is not hex")?;
    if new.open_secret(id, &sealed).is_ok() {
        return Ok(None);
    }
    let secret = old
        .open_secret(id, &sealed)
        .map_err(|e| format!("the secret of {id} does not open: {e}"))?;
    let mut nonce = [0u8; 12];
    crate::sys::random(&mut nonce);
    let mut r = record.clone();
    r.secret_sealed = hex(&new.seal_secret(id, &secret, nonce));
    Ok(Some(r))
}

/// A master key rotation: re-seals the secret in `m` (a record of the keys' namespace) from
/// `old` to `new`. False when `m` is no such record or its secret is already under `new`.
pub(crate) fn reseal_key_record(
    m: &mut Manifest,
    old: &crate::core::keys::MasterKey,
    new: &crate::core::keys::MasterKey,
) -> Result<bool, String> {
    if m.bucket != access_bucket() {
        return Ok(false);
    }
    let Some(r) = record_of(m)
        .map(|r| resealed(&r, old, new))
        .transpose()?
        .flatten()
    else {
        return Ok(false);
    };
    let text = serde_json::to_string(&r).map_err(|e| e.to_string())?;
    if let ManifestBody::Object(meta) = &mut m.body {
        for (n, v) in &mut meta.headers {
            if n == RECORD_HEADER {
                v.clone_from(&text);
            }
        }
    }
    Ok(true)
}

/// A master key rotation: re-seals the secrets of the keys the gateway's index caches (the
/// gateway stopped). Returns how many were re-sealed.
pub fn reseal_index_keys(
    index: &crate::meta::Index,
    old: &crate::core::keys::MasterKey,
    new: &crate::core::keys::MasterKey,
) -> anyhow::Result<usize> {
    let mut n = 0;
    for (id, bytes) in index.access_keys()? {
        let record: KeyRecord = serde_json::from_slice(&bytes)
            .map_err(|e| anyhow::anyhow!("the index's record of access key {id}: {e}"))?;
        if let Some(r) = resealed(&record, old, new).map_err(|e| anyhow::anyhow!(e))? {
            index.set_access_key(&id, Some(&serde_json::to_vec(&r)?))?;
            n += 1;
        }
    }
    Ok(n)
}
