//! Who may call: S3 access keys (secrets sealed under the master key at rest), and the one
//! check every request passes after its signature is verified.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::path::S3Path;
use s3s::{S3Error, S3Result};
use serde::Deserialize;

use super::Gateway;
use super::access::{Pass, Seen, Tenants, set_ms};
use super::error::S3Fault;
use super::traffic::Peer;
use crate::core::access::{Action, action_of, copy_source_bucket};
use crate::core::ids::{hex, unhex};
use crate::core::keys::MasterKey;
use crate::core::policy::{Verdict, iam_action};
use crate::sys::{random, read_secret};

/// Longest object key, bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCredentials {
    keys: Vec<RawKey>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    access_key_id: String,
    secret_sealed: String,
}

/// The gateway's access keys, opened.
pub struct AccessKeys {
    keys: BTreeMap<String, SecretKey>,
}

impl std::fmt::Debug for AccessKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKeys")
            .field("ids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl AccessKeys {
    /// Reads the credentials file and opens every secret with the master key.
    pub fn load(path: &Path, master: &MasterKey) -> anyhow::Result<Self> {
        let text = read_secret(path)?;
        let text = String::from_utf8(text)
            .map_err(|_| anyhow::anyhow!("{}: not UTF-8", path.display()))?;
        let raw: RawCredentials =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let mut keys = BTreeMap::new();
        for k in raw.keys {
            let sealed = unhex(&k.secret_sealed)
                .ok_or_else(|| anyhow::anyhow!("{}: secret_sealed is not hex", path.display()))?;
            let secret = master.open_secret(&k.access_key_id, &sealed).map_err(|e| {
                anyhow::anyhow!(
                    "{}: the secret of {} does not open: {e}",
                    path.display(),
                    k.access_key_id
                )
            })?;
            let secret = String::from_utf8(secret)
                .map_err(|_| anyhow::anyhow!("{}: a secret is not UTF-8", path.display()))?;
            keys.insert(k.access_key_id, SecretKey::from(secret));
        }
        if keys.is_empty() {
            anyhow::bail!("{}: no access keys", path.display());
        }
        Ok(Self { keys })
    }

    /// The access key ids.
    pub(crate) fn ids(&self) -> BTreeSet<String> {
        self.keys.keys().cloned().collect()
    }
}

/// The credentials file `path` with every secret re-sealed from `old` to `new` (a key
/// rotation); secrets already sealed under `new` are kept.
pub fn reseal_credentials(path: &Path, old: &MasterKey, new: &MasterKey) -> anyhow::Result<String> {
    let text = read_secret(path)?;
    let text =
        String::from_utf8(text).map_err(|_| anyhow::anyhow!("{}: not UTF-8", path.display()))?;
    let raw: RawCredentials =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut out = format!(
        "# S3 access keys; each secret is sealed under the master key (generation {}).\n",
        new.id()
    );
    for k in raw.keys {
        let sealed = unhex(&k.secret_sealed)
            .ok_or_else(|| anyhow::anyhow!("{}: secret_sealed is not hex", path.display()))?;
        let secret = match new.open_secret(&k.access_key_id, &sealed) {
            Ok(s) => s,
            Err(_) => old.open_secret(&k.access_key_id, &sealed).map_err(|e| {
                anyhow::anyhow!(
                    "{}: the secret of {} does not open: {e}",
                    path.display(),
                    k.access_key_id
                )
            })?,
        };
        let mut nonce = [0u8; 12];
        random(&mut nonce);
        let resealed = new.seal_secret(&k.access_key_id, &secret, nonce);
        out.push_str(&format!(
            "[[keys]]\naccess_key_id = \"{}\"\nsecret_sealed = \"{}\"\n",
            k.access_key_id,
            hex(&resealed)
        ));
    }
    Ok(out)
}

/// Every key a request may be signed with: the cluster's (the credentials file) and those
/// `exclave key create` made (looked up at each request: a deleted key fails at once).
pub(crate) struct Signers {
    pub(crate) cluster: AccessKeys,
    pub(crate) tenants: Arc<Tenants>,
}

#[async_trait::async_trait]
impl S3Auth for Signers {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        self.cluster
            .keys
            .get(access_key)
            .cloned()
            .or_else(|| self.tenants.secret(access_key))
            .ok_or_else(|| S3Error::from(S3Fault::InvalidAccessKeyId))
    }
}

/// The choke point every request passes once its signature (header, presigned or streaming)
/// has been checked: signed requests only, keys of at most 1,024 bytes, then the bucket's
/// policy (`core::policy`: an explicit Deny refuses whoever asks) and the key's grants
/// (`core::access`, or an Allow of the policy): the action the operation needs in the bucket it
/// names, read in the source bucket of a copy, and `bypass_governance` for
/// `x-amz-bypass-governance-retention`. What it found goes into the request as a [`Pass`]. The
/// presigned lifetime, the authentication form and the signed headers are the gate's
/// (`guard`), before `s3s` sees the request.
#[derive(Debug)]
pub(crate) struct Gatekeeper {
    pub(crate) cluster: BTreeSet<String>,
    pub(crate) gateway: Arc<Gateway>,
}

impl Gatekeeper {
    /// The pass of the key `id` for the operation `op` on `bucket` (and `key`; None: the
    /// service or the bucket), given the request's headers; AccessDenied when the bucket's
    /// policy denies it, or neither the key's grants nor the policy allow it.
    pub(crate) fn pass(
        &self,
        id: &str,
        op: &str,
        target: Option<(&str, Option<&str>)>,
        headers: &http::HeaderMap,
        seen: &Seen,
    ) -> Result<Pass, S3Fault> {
        let cluster = self.cluster.contains(id);
        let record = match cluster {
            true => None,
            false => Some(
                self.gateway
                    .tenants()
                    .record(id)
                    .ok_or(S3Fault::InvalidAccessKeyId)?,
            ),
        };
        let who = record.as_ref().map(|r| r.name.as_str());
        let denied = |what: String| {
            S3Fault::AccessDenied(match &record {
                Some(r) => format!("access key {} ({}) may not {what}", r.access_key_id, r.name),
                None => format!("the bucket's policy denies {what}"),
            })
        };
        // What the bucket's policy says (a policy operation by the cluster's key is never
        // denied: the operator can always mend a policy).
        let verdict = |bucket: &str, key: Option<&str>, action: &str| -> Result<Verdict, S3Fault> {
            self.gateway
                .policy_verdict(id, who, bucket, key, action, seen)
                .map_err(|e| S3Fault::InvalidRequest(format!("the bucket's policy: {e}")))
        };
        let policy_op = op.ends_with("BucketPolicy") || op == "GetBucketPolicyStatus";
        if let Some((b, key)) = target {
            let v = verdict(b, key, &iam_action(op))?;
            if v == Verdict::Deny && !(cluster && policy_op) {
                return Err(denied(format!(
                    "{op} in bucket {b} (the bucket's policy denies it)"
                )));
            }
            if let (Some(r), Some(action)) = (&record, action_of(op)) {
                let allowed = r.rights(b).allow(action)
                    || v == Verdict::Allow
                    || (op == "DeleteObjects"
                        && self
                            .gateway
                            .policy_may_allow(id, who, b, "s3:DeleteObject", seen));
                if !allowed {
                    return Err(denied(format!(
                        "{op} in bucket {b} (needs {})",
                        action.label()
                    )));
                }
            }
        } else if record.is_some() && action_of(op).is_some() {
            return Err(denied(format!("call {op}")));
        }
        if matches!(op, "CopyObject" | "UploadPartCopy") {
            let source = headers
                .get("x-amz-copy-source")
                .and_then(|v| v.to_str().ok())
                .and_then(copy_source);
            let Some((src, src_key)) = source else {
                return Err(denied("copy from an unnamed source".into()));
            };
            let v = verdict(&src, Some(&src_key), "s3:GetObject")?;
            let readable = record
                .as_ref()
                .is_none_or(|r| r.rights(&src).allow(Action::Read))
                || v == Verdict::Allow;
            if v == Verdict::Deny || !readable {
                return Err(denied(format!("read the copy source in bucket {src}")));
            }
        }
        let bypass = headers
            .get("x-amz-bypass-governance-retention")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        if bypass && let Some((b, key)) = target {
            let v = verdict(b, key, "s3:BypassGovernanceRetention")?;
            let granted = record
                .as_ref()
                .is_none_or(|r| r.rights(b).allow(Action::BypassGovernance))
                || v == Verdict::Allow;
            if v == Verdict::Deny || !granted {
                return Err(denied(format!(
                    "bypass GOVERNANCE retention in bucket {b} (needs bypass_governance)"
                )));
            }
        }
        Ok(match record {
            None => Pass::Cluster,
            Some(r) => Pass::Key {
                id: id.to_owned(),
                secret_set_ms: set_ms(&r),
            },
        })
    }
}

/// The bucket and key an `x-amz-copy-source` header names.
fn copy_source(header: &str) -> Option<(String, String)> {
    let bucket = copy_source_bucket(header)?;
    let path = header.split_once('?').map_or(header, |(p, _)| p);
    let path = path.strip_prefix('/').unwrap_or(path);
    let key = path.split_once('/')?.1;
    let key = urlencoding::decode(key).ok()?.into_owned();
    Some((bucket, key))
}

#[async_trait::async_trait]
impl S3Access for Gatekeeper {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        // Named here, before any refusal: the log names every operation refused or not
        // implemented (the implemented ones name themselves again).
        let op = super::traffic::op_name(cx.s3_op().name());
        super::traffic::name_op(cx.extensions_mut(), op);
        // A request served again by the bad-Range route was verified as its original.
        let again = cx
            .extensions_mut()
            .get::<super::ranges::Verified>()
            .map(|v| v.0.clone());
        let Some(id) = cx.credentials().map(|c| c.access_key.clone()).or(again) else {
            return Err(S3Fault::AccessDenied("anonymous requests are not accepted".into()).into());
        };
        if let S3Path::Object { key, .. } = cx.s3_path()
            && key.len() > MAX_KEY_BYTES
        {
            return Err(S3Fault::KeyTooLong.into());
        }
        let target = match cx.s3_path() {
            S3Path::Root => None,
            S3Path::Bucket { bucket } => Some((bucket.to_string(), None)),
            S3Path::Object { bucket, key } => Some((bucket.to_string(), Some(key.to_string()))),
        };
        let query = cx.uri().query().unwrap_or("");
        let param = |name: &str| super::guard::query_param(query, name);
        let (prefix, version_id) = (param("prefix"), param("versionId"));
        let seen = Seen {
            peer: cx.extensions_mut().get::<Peer>().copied(),
            prefix,
            version_id,
            now_ms: crate::sys::now_ms(),
        };
        let pass = self.pass(
            &id,
            op,
            target.as_ref().map(|(b, k)| (b.as_str(), k.as_deref())),
            cx.headers(),
            &seen,
        )?;
        cx.extensions_mut().insert(seen);
        cx.extensions_mut().insert(pass);
        Ok(())
    }
}
