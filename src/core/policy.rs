//! Bucket policies: the JSON grammar S3 clients send (Version, Statement, Effect, Principal,
//! Action, Resource, Condition), checked when a policy is put, and evaluated for each request.
//!
//! - Principal: `"*"` (every access key: exclave serves no anonymous request), or
//!   `{"AWS": ...}` naming keys by name, by access key id, or as
//!   `arn:aws:iam::<account>:user/<name>`; a principal that names no key is refused.
//! - Action: `s3:<Action>` as in the S3 authorisation reference (`s3:GetObject`,
//!   `s3:ListBucket`, ...), with `*` and `?` wildcards; one that matches no S3 action is refused.
//! - Resource: `arn:aws:s3:::<bucket>` or `arn:aws:s3:::<bucket>/<key pattern>`, of the bucket
//!   the policy is put on.
//! - Condition operators: String(Not)Equals(IgnoreCase), String(Not)Like, Bool, (Not)IpAddress,
//!   Date(Not)Equals, DateLessThan(Equals), DateGreaterThan(Equals); keys: aws:SecureTransport,
//!   aws:SourceIp (the connection's own address, never a forwarded one), aws:CurrentTime,
//!   s3:prefix, s3:ExistingObjectTag/<tag>.
//! - NotPrincipal, NotAction and NotResource are refused (MalformedPolicy), not half-read.
//!
//! Evaluation: a Deny statement that matches wins; else an Allow that matches allows; else the
//! policy is silent (and the key's grants decide).

use ::core::net::IpAddr;

use serde_json::Value;

/// Largest policy S3 accepts, bytes.
pub const MAX_POLICY_BYTES: usize = 20 * 1024;

/// Every action a statement may name (the S3 operations exclave answers, by their IAM names).
pub const ACTIONS: &[&str] = &[
    "s3:AbortMultipartUpload",
    "s3:CreateBucket",
    "s3:DeleteBucket",
    "s3:DeleteBucketPolicy",
    "s3:DeleteObject",
    "s3:DeleteObjectTagging",
    "s3:DeleteObjectVersion",
    "s3:GetBucketAcl",
    "s3:GetBucketCORS",
    "s3:GetBucketLocation",
    "s3:GetBucketObjectLockConfiguration",
    "s3:GetBucketOwnershipControls",
    "s3:GetBucketPolicy",
    "s3:GetBucketPolicyStatus",
    "s3:GetBucketPublicAccessBlock",
    "s3:GetBucketTagging",
    "s3:GetBucketVersioning",
    "s3:GetEncryptionConfiguration",
    "s3:GetLifecycleConfiguration",
    "s3:GetObject",
    "s3:GetObjectAcl",
    "s3:GetObjectAttributes",
    "s3:GetObjectLegalHold",
    "s3:GetObjectRetention",
    "s3:GetObjectTagging",
    "s3:GetObjectVersion",
    "s3:ListAllMyBuckets",
    "s3:ListBucket",
    "s3:ListBucketMultipartUploads",
    "s3:ListBucketVersions",
    "s3:ListMultipartUploadParts",
    "s3:PutBucketAcl",
    "s3:PutBucketCORS",
    "s3:PutBucketObjectLockConfiguration",
    "s3:PutBucketOwnershipControls",
    "s3:PutBucketPolicy",
    "s3:PutBucketPublicAccessBlock",
    "s3:PutBucketTagging",
    "s3:PutBucketVersioning",
    "s3:PutEncryptionConfiguration",
    "s3:PutLifecycleConfiguration",
    "s3:PutObject",
    "s3:PutObjectAcl",
    "s3:PutObjectLegalHold",
    "s3:PutObjectRetention",
    "s3:PutObjectTagging",
    "s3:BypassGovernanceRetention",
];

/// The IAM action of an S3 operation (by its name in the S3 API reference).
pub fn iam_action(op: &str) -> String {
    let a = match op {
        "HeadObject" => "s3:GetObject",
        "CopyObject"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload" => "s3:PutObject",
        "DeleteObjects" => "s3:DeleteObject",
        "ListObjects" | "ListObjectsV2" | "HeadBucket" => "s3:ListBucket",
        "ListObjectVersions" => "s3:ListBucketVersions",
        "ListMultipartUploads" => "s3:ListBucketMultipartUploads",
        "ListParts" => "s3:ListMultipartUploadParts",
        "ListBuckets" => "s3:ListAllMyBuckets",
        "GetObjectLockConfiguration" => "s3:GetBucketObjectLockConfiguration",
        "PutObjectLockConfiguration" => "s3:PutBucketObjectLockConfiguration",
        "GetBucketLifecycleConfiguration" => "s3:GetLifecycleConfiguration",
        "PutBucketLifecycleConfiguration" | "DeleteBucketLifecycle" => {
            "s3:PutLifecycleConfiguration"
        }
        "GetBucketEncryption" => "s3:GetEncryptionConfiguration",
        "PutBucketEncryption" | "DeleteBucketEncryption" => "s3:PutEncryptionConfiguration",
        "GetPublicAccessBlock" => "s3:GetBucketPublicAccessBlock",
        "PutPublicAccessBlock" | "DeletePublicAccessBlock" => "s3:PutBucketPublicAccessBlock",
        "DeleteBucketOwnershipControls" => "s3:PutBucketOwnershipControls",
        "GetBucketCors" => "s3:GetBucketCORS",
        "PutBucketCors" | "DeleteBucketCors" => "s3:PutBucketCORS",
        "DeleteBucketTagging" => "s3:PutBucketTagging",
        other => return format!("s3:{other}"),
    };
    a.to_owned()
}

/// Why a policy is refused (S3's MalformedPolicy, with this message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

fn bad<T>(why: impl Into<String>) -> Result<T, Malformed> {
    Err(Malformed(why.into()))
}

/// A condition operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    Bool,
    IpAddress,
    NotIpAddress,
    DateEquals,
    DateNotEquals,
    DateLessThan,
    DateLessThanEquals,
    DateGreaterThan,
    DateGreaterThanEquals,
}

impl Op {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "StringEquals" => Self::StringEquals,
            "StringNotEquals" => Self::StringNotEquals,
            "StringEqualsIgnoreCase" => Self::StringEqualsIgnoreCase,
            "StringNotEqualsIgnoreCase" => Self::StringNotEqualsIgnoreCase,
            "StringLike" => Self::StringLike,
            "StringNotLike" => Self::StringNotLike,
            "Bool" => Self::Bool,
            "IpAddress" => Self::IpAddress,
            "NotIpAddress" => Self::NotIpAddress,
            "DateEquals" => Self::DateEquals,
            "DateNotEquals" => Self::DateNotEquals,
            "DateLessThan" => Self::DateLessThan,
            "DateLessThanEquals" => Self::DateLessThanEquals,
            "DateGreaterThan" => Self::DateGreaterThan,
            "DateGreaterThanEquals" => Self::DateGreaterThanEquals,
            _ => return None,
        })
    }

    /// Negated operators hold when the key is absent, and when no value matches.
    fn negated(self) -> bool {
        matches!(
            self,
            Self::StringNotEquals
                | Self::StringNotEqualsIgnoreCase
                | Self::StringNotLike
                | Self::NotIpAddress
                | Self::DateNotEquals
        )
    }
}

/// A condition key a request answers.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    SecureTransport,
    SourceIp,
    CurrentTime,
    Prefix,
    ExistingObjectTag(String),
}

impl Key {
    fn parse(s: &str) -> Option<Self> {
        let l = s.to_ascii_lowercase();
        Some(match l.as_str() {
            "aws:securetransport" => Self::SecureTransport,
            "aws:sourceip" => Self::SourceIp,
            "aws:currenttime" => Self::CurrentTime,
            "s3:prefix" => Self::Prefix,
            // The tag's own name keeps its case.
            _ if l.starts_with("s3:existingobjecttag/") => {
                Self::ExistingObjectTag(s["s3:existingobjecttag/".len()..].to_owned())
            }
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
struct Condition {
    op: Op,
    key: Key,
    values: Vec<String>,
}

#[derive(Debug, Clone)]
enum Principals {
    Any,
    Named(Vec<String>),
}

#[derive(Debug, Clone)]
struct Statement {
    deny: bool,
    principals: Principals,
    actions: Vec<String>,
    resources: Vec<String>,
    conditions: Vec<Condition>,
}

/// A bucket policy, checked.
#[derive(Debug, Clone)]
pub struct Policy {
    statements: Vec<Statement>,
}

/// What a request is, for a policy.
#[derive(Debug, Clone)]
pub struct Ask<'a> {
    /// The access key id that signed it, and the key's name (None: the cluster's own key).
    pub key_id: &'a str,
    pub key_name: Option<&'a str>,
    /// The IAM action (`s3:GetObject`).
    pub action: &'a str,
    /// `arn:aws:s3:::bucket` or `arn:aws:s3:::bucket/key`.
    pub resource: &'a str,
    /// Whether it came over TLS.
    pub secure: bool,
    /// The connection's own peer address.
    pub source_ip: Option<IpAddr>,
    /// Now, ms since the epoch.
    pub now_ms: u64,
    /// The `prefix` of a listing.
    pub prefix: Option<&'a str>,
    /// The object's tags (none when there is no object or it has none).
    pub tags: &'a [(String, String)],
}

/// What a policy says of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A Deny statement matches: refused, whatever else allows it.
    Deny,
    /// An Allow statement matches.
    Allow,
    /// No statement matches.
    Silent,
}

/// `*` (any run) and `?` (one character) glob, case-sensitive unless `fold`.
pub fn glob(pattern: &str, text: &str, fold: bool) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = if fold {
        (
            pattern.to_lowercase().chars().collect(),
            text.to_lowercase().chars().collect(),
        )
    } else {
        (pattern.chars().collect(), text.chars().collect())
    };
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn strings(v: &Value, what: &str) -> Result<Vec<String>, Malformed> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(a) if !a.is_empty() => a
            .iter()
            .map(|x| match x {
                Value::String(s) => Ok(s.clone()),
                Value::Bool(b) => Ok(b.to_string()),
                _ => bad(format!("{what} must be a string or a list of strings")),
            })
            .collect(),
        Value::Bool(b) => Ok(vec![b.to_string()]),
        _ => bad(format!("{what} must be a string or a list of strings")),
    }
}

/// ms since the epoch of an ISO 8601 date (`2026-11-29`, `2026-11-29T01:45:31Z`, fractional
/// seconds allowed), UTC only.
pub fn parse_date(s: &str) -> Option<u64> {
    let (date, time) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t.strip_suffix('Z')?)),
        None => (s, None),
    };
    let mut d = date.split('-');
    let y: i64 = d.next()?.parse().ok()?;
    let m: u32 = d.next()?.parse().ok()?;
    let day: u32 = d.next()?.parse().ok()?;
    if d.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    let (mut hh, mut mm, mut ss, mut ms) = (0u64, 0u64, 0u64, 0u64);
    if let Some(t) = time {
        let (hms, frac) = t.split_once('.').unwrap_or((t, ""));
        let mut p = hms.split(':');
        hh = p.next()?.parse().ok()?;
        mm = p.next()?.parse().ok()?;
        ss = p.next()?.parse().ok()?;
        if p.next().is_some() || hh > 23 || mm > 59 || ss > 60 {
            return None;
        }
        if !frac.is_empty() {
            let f: String = frac.chars().take(3).collect();
            ms = format!("{f:0<3}").parse().ok()?;
        }
    }
    // Days from civil (Howard Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + (hh * 3600 + mm * 60 + ss) as i64;
    u64::try_from(secs).ok().map(|s| s * 1000 + ms)
}

/// An address, or a CIDR block: (network, prefix length).
fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (a, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l.parse::<u8>().ok()?)),
        None => (s, None),
    };
    let ip: IpAddr = a.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = len.unwrap_or(max);
    (len <= max).then_some((ip, len))
}

fn in_cidr(ip: IpAddr, (net, len): (IpAddr, u8)) -> bool {
    // An IPv4 address on an IPv6 socket is matched as IPv4.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len))
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len))
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

impl Policy {
    /// Parses and checks `text`, a policy for `bucket`; `known(p)` says whether a principal
    /// names an access key.
    pub fn parse(
        text: &str,
        bucket: &str,
        known: impl Fn(&str) -> bool,
    ) -> Result<Self, Malformed> {
        if text.len() > MAX_POLICY_BYTES {
            return bad("Policies must be less than 20KB");
        }
        let v: Value = serde_json::from_str(text)
            .map_err(|e| Malformed(format!("This policy contains invalid Json: {e}")))?;
        let Value::Object(top) = v else {
            return bad("This policy contains invalid Json");
        };
        for k in top.keys() {
            if !matches!(k.as_str(), "Version" | "Id" | "Statement") {
                return bad(format!("Unknown field {k}"));
            }
        }
        match top.get("Version").and_then(Value::as_str) {
            Some("2012-10-17" | "2008-10-17") => {}
            Some(v) => return bad(format!("Invalid policy version {v}")),
            None => return bad("Missing required field Version"),
        }
        let statements = match top.get("Statement") {
            Some(Value::Array(a)) if !a.is_empty() => a.clone(),
            Some(o @ Value::Object(_)) => vec![o.clone()],
            _ => return bad("Missing required field Statement"),
        };
        let statements = statements
            .iter()
            .map(|s| Statement::parse(s, bucket, &known))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { statements })
    }

    /// A policy that denies every action to everyone.
    pub fn deny_all(bucket: &str) -> Self {
        Self {
            statements: vec![Statement {
                deny: true,
                principals: Principals::Any,
                actions: vec!["*".into()],
                resources: vec![
                    format!("arn:aws:s3:::{bucket}"),
                    format!("arn:aws:s3:::{bucket}/*"),
                ],
                conditions: Vec::new(),
            }],
        }
    }

    /// What this policy says of `ask`.
    pub fn evaluate(&self, ask: &Ask<'_>) -> Verdict {
        let mut allowed = false;
        for s in self.statements.iter().filter(|s| s.matches(ask)) {
            if s.deny {
                return Verdict::Deny;
            }
            allowed = true;
        }
        if allowed {
            Verdict::Allow
        } else {
            Verdict::Silent
        }
    }

    /// Whether a condition reads the object's tags (`s3:ExistingObjectTag/...`): only then are
    /// they looked up for [`Ask::tags`].
    pub fn reads_tags(&self) -> bool {
        self.statements.iter().any(|s| {
            s.conditions
                .iter()
                .any(|c| matches!(c.key, Key::ExistingObjectTag(_)))
        })
    }

    /// Whether some Allow statement could let the principal of `ask` do its action somewhere
    /// in the bucket (conditions and resource aside): a DeleteObjects is then let through to
    /// be judged key by key.
    pub fn may_allow(&self, ask: &Ask<'_>) -> bool {
        self.statements.iter().any(|s| {
            !s.deny && s.names_principal(ask) && s.actions.iter().any(|a| glob(a, ask.action, true))
        })
    }
}

impl Statement {
    fn parse(v: &Value, bucket: &str, known: &impl Fn(&str) -> bool) -> Result<Self, Malformed> {
        let Value::Object(o) = v else {
            return bad("A statement must be an object");
        };
        for k in o.keys() {
            match k.as_str() {
                "Sid" | "Effect" | "Principal" | "Action" | "Resource" | "Condition" => {}
                "NotPrincipal" | "NotAction" | "NotResource" => {
                    return bad(format!("{k} is not supported here: name what is meant"));
                }
                other => return bad(format!("Unknown field {other}")),
            }
        }
        let deny = match o.get("Effect").and_then(Value::as_str) {
            Some("Allow") => false,
            Some("Deny") => true,
            _ => return bad("Effect must be Allow or Deny"),
        };
        let principals = match o.get("Principal") {
            Some(Value::String(s)) if s == "*" => Principals::Any,
            Some(Value::Object(p)) => {
                let mut names = Vec::new();
                for (k, v) in p {
                    if k != "AWS" {
                        return bad(format!("Invalid principal in policy: {k}"));
                    }
                    names.extend(strings(v, "Principal")?);
                }
                if names.iter().any(|n| n == "*") {
                    Principals::Any
                } else {
                    for n in &names {
                        if !known(principal_name(n)) {
                            return bad(format!("Invalid principal in policy: {n}"));
                        }
                    }
                    Principals::Named(names.iter().map(|n| principal_name(n).to_owned()).collect())
                }
            }
            _ => return bad("Missing required field Principal"),
        };
        let actions = strings(
            o.get("Action")
                .ok_or_else(|| Malformed("Missing required field Action".into()))?,
            "Action",
        )?;
        for a in &actions {
            if a != "*" && !ACTIONS.iter().any(|known| glob(a, known, true)) {
                return bad(format!("Policy has invalid action: {a}"));
            }
        }
        let resources = strings(
            o.get("Resource")
                .ok_or_else(|| Malformed("Missing required field Resource".into()))?,
            "Resource",
        )?;
        for r in &resources {
            let Some(rest) = r.strip_prefix("arn:aws:s3:::") else {
                return bad(format!("Policy has invalid resource: {r}"));
            };
            let b = rest.split_once('/').map_or(rest, |(b, _)| b);
            if !glob(b, bucket, false) {
                return bad(format!(
                    "Policy has invalid resource: {r} (not of bucket {bucket})"
                ));
            }
        }
        let mut conditions = Vec::new();
        if let Some(c) = o.get("Condition") {
            let Value::Object(ops) = c else {
                return bad("Condition must be an object");
            };
            for (op, keys) in ops {
                let Some(parsed) = Op::parse(op) else {
                    return bad(format!("Invalid Condition type: {op}"));
                };
                let Value::Object(keys) = keys else {
                    return bad(format!("Condition {op} must be an object"));
                };
                for (k, vals) in keys {
                    let Some(key) = Key::parse(k) else {
                        return bad(format!("Policy has an invalid condition key: {k}"));
                    };
                    let values = strings(vals, "a condition's value")?;
                    check_values(parsed, &key, &values)?;
                    conditions.push(Condition {
                        op: parsed,
                        key,
                        values,
                    });
                }
            }
        }
        Ok(Self {
            deny,
            principals,
            actions,
            resources,
            conditions,
        })
    }

    fn names_principal(&self, ask: &Ask<'_>) -> bool {
        match &self.principals {
            Principals::Any => true,
            Principals::Named(names) => names
                .iter()
                .any(|n| n == ask.key_id || Some(n.as_str()) == ask.key_name),
        }
    }

    fn matches(&self, ask: &Ask<'_>) -> bool {
        self.names_principal(ask)
            && self
                .actions
                .iter()
                .any(|a| a == "*" || glob(a, ask.action, true))
            && self.resources.iter().any(|r| glob(r, ask.resource, false))
            && self.conditions.iter().all(|c| c.holds(ask))
    }
}

/// The key name or access key id a principal names (`arn:aws:iam::<account>:user/<name>` is
/// `<name>`).
fn principal_name(p: &str) -> &str {
    p.strip_prefix("arn:aws:iam::")
        .and_then(|r| r.split_once(":user/"))
        .map_or(p, |(_, name)| name)
}

fn check_values(op: Op, key: &Key, values: &[String]) -> Result<(), Malformed> {
    let fits = match op {
        Op::Bool => {
            *key == Key::SecureTransport && values.iter().all(|v| v == "true" || v == "false")
        }
        Op::IpAddress | Op::NotIpAddress => {
            *key == Key::SourceIp && values.iter().all(|v| parse_cidr(v).is_some())
        }
        Op::DateEquals
        | Op::DateNotEquals
        | Op::DateLessThan
        | Op::DateLessThanEquals
        | Op::DateGreaterThan
        | Op::DateGreaterThanEquals => {
            *key == Key::CurrentTime && values.iter().all(|v| parse_date(v).is_some())
        }
        _ => matches!(key, Key::Prefix | Key::ExistingObjectTag(_)),
    };
    if fits {
        Ok(())
    } else {
        bad(format!(
            "Invalid Condition: {op:?} does not apply to {key:?} with {values:?}"
        ))
    }
}

impl Condition {
    fn holds(&self, ask: &Ask<'_>) -> bool {
        let value: Option<String> = match &self.key {
            Key::SecureTransport => Some(ask.secure.to_string()),
            Key::SourceIp => ask.source_ip.map(|ip| ip.to_string()),
            Key::CurrentTime => Some(ask.now_ms.to_string()),
            Key::Prefix => ask.prefix.map(str::to_owned),
            Key::ExistingObjectTag(t) => ask
                .tags
                .iter()
                .find(|(k, _)| k == t)
                .map(|(_, v)| v.clone()),
        };
        let Some(value) = value else {
            return self.op.negated();
        };
        let any = |f: &dyn Fn(&str) -> bool| self.values.iter().any(|v| f(v));
        match self.op {
            Op::StringEquals => any(&|v| v == value),
            Op::StringNotEquals => !any(&|v| v == value),
            Op::StringEqualsIgnoreCase => any(&|v| v.eq_ignore_ascii_case(&value)),
            Op::StringNotEqualsIgnoreCase => !any(&|v| v.eq_ignore_ascii_case(&value)),
            Op::StringLike => any(&|v| glob(v, &value, false)),
            Op::StringNotLike => !any(&|v| glob(v, &value, false)),
            Op::Bool => any(&|v| v == value),
            Op::IpAddress | Op::NotIpAddress => {
                let Ok(ip) = value.parse::<IpAddr>() else {
                    return self.op.negated();
                };
                let inside = any(&|v| parse_cidr(v).is_some_and(|c| in_cidr(ip, c)));
                inside != (self.op == Op::NotIpAddress)
            }
            _ => {
                let now = ask.now_ms;
                let cmp =
                    |v: &str, f: fn(u64, u64) -> bool| parse_date(v).is_some_and(|d| f(now, d));
                match self.op {
                    Op::DateEquals => any(&|v| cmp(v, |a, b| a == b)),
                    Op::DateNotEquals => !any(&|v| cmp(v, |a, b| a == b)),
                    Op::DateLessThan => any(&|v| cmp(v, |a, b| a < b)),
                    Op::DateLessThanEquals => any(&|v| cmp(v, |a, b| a <= b)),
                    Op::DateGreaterThan => any(&|v| cmp(v, |a, b| a > b)),
                    _ => any(&|v| cmp(v, |a, b| a >= b)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask<'a>(id: &'a str, action: &'a str, resource: &'a str) -> Ask<'a> {
        Ask {
            key_id: id,
            key_name: Some("land-app"),
            action,
            resource,
            secure: true,
            source_ip: Some("10.1.2.3".parse().unwrap()),
            now_ms: parse_date("2026-11-29T12:00:00Z").unwrap(),
            prefix: None,
            tags: &[],
        }
    }

    fn known(p: &str) -> bool {
        matches!(p, "land-app" | "EXKLAND" | "auditor")
    }

    #[test]
    fn globs_dates_and_cidrs() {
        assert!(glob("s3:Get*", "s3:GetObject", true));
        assert!(glob(
            "arn:aws:s3:::b/deeds/*",
            "arn:aws:s3:::b/deeds/7/12",
            false
        ));
        assert!(!glob(
            "arn:aws:s3:::b/deeds/*",
            "arn:aws:s3:::b/other",
            false
        ));
        assert!(glob("a?c", "abc", false) && !glob("a?c", "ac", false));
        assert_eq!(parse_date("1970-01-02"), Some(86_400_000));
        assert_eq!(parse_date("2000-03-01T00:00:00.5Z"), Some(951_868_800_500));
        assert_eq!(parse_date("2026-13-01"), None);
        assert!(in_cidr(
            "10.1.2.3".parse().unwrap(),
            parse_cidr("10.0.0.0/8").unwrap()
        ));
        assert!(!in_cidr(
            "11.1.2.3".parse().unwrap(),
            parse_cidr("10.0.0.0/8").unwrap()
        ));
        assert!(in_cidr(
            "::ffff:10.1.2.3".parse().unwrap(),
            parse_cidr("10.1.2.3").unwrap()
        ));
    }

    #[test]
    fn malformed_policies_are_named() {
        let b = "land";
        for (text, why) in [
            ("{", "invalid Json"),
            (r#"{"Statement":[]}"#, "Version"),
            (
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::other/*"}]}"#,
                "invalid resource",
            ),
            (
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:Fly","Resource":"arn:aws:s3:::land/*"}]}"#,
                "invalid action",
            ),
            (
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"stranger"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::land/*"}]}"#,
                "Invalid principal",
            ),
            (
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Maybe","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::land/*"}]}"#,
                "Effect",
            ),
            (
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","NotPrincipal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::land/*"}]}"#,
                "NotPrincipal",
            ),
            (
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::land/*","Condition":{"StringEquals":{"aws:Referer":"x"}}}]}"#,
                "condition key",
            ),
            (
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::land/*","Condition":{"IpAddress":{"aws:SourceIp":"not-an-ip"}}}]}"#,
                "Invalid Condition",
            ),
        ] {
            let e = Policy::parse(text, b, known).unwrap_err();
            assert!(e.0.contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn deny_wins_and_conditions_are_read_as_aws_reads_them() {
        let text = r#"{
          "Version": "2012-10-17",
          "Statement": [
            {"Sid": "read", "Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::123:user/auditor", "EXKLAND"]},
             "Action": ["s3:Get*", "s3:ListBucket"], "Resource": ["arn:aws:s3:::land", "arn:aws:s3:::land/*"]},
            {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::land/*",
             "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
            {"Effect": "Deny", "Principal": "*", "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::land/deeds/*"},
            {"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::land/*",
             "Condition": {"NotIpAddress": {"aws:SourceIp": ["10.0.0.0/8", "::1"]}}},
            {"Effect": "Allow", "Principal": "*", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::land",
             "Condition": {"StringLike": {"s3:prefix": "public/*"}, "DateLessThan": {"aws:CurrentTime": "2027-01-01T00:00:00Z"}}}
          ]
        }"#;
        let p = Policy::parse(text, "land", known).unwrap();
        let obj = "arn:aws:s3:::land/deeds/7";
        assert_eq!(
            p.evaluate(&ask("EXKLAND", "s3:GetObject", obj)),
            Verdict::Allow
        );
        assert_eq!(
            p.evaluate(&ask("EXKOTHER", "s3:GetObject", obj)),
            Verdict::Silent
        );
        let mut plain = ask("EXKLAND", "s3:GetObject", obj);
        plain.secure = false;
        assert_eq!(p.evaluate(&plain), Verdict::Deny, "deny wins over allow");
        assert_eq!(
            p.evaluate(&ask("EXKLAND", "s3:DeleteObject", obj)),
            Verdict::Deny
        );
        let put = ask("EXKLAND", "s3:PutObject", "arn:aws:s3:::land/x");
        assert_eq!(p.evaluate(&put), Verdict::Silent, "from 10/8");
        let mut far = put.clone();
        far.source_ip = Some("192.0.2.1".parse().unwrap());
        assert_eq!(p.evaluate(&far), Verdict::Deny);
        let mut list = ask("EXKOTHER", "s3:ListBucket", "arn:aws:s3:::land");
        assert_eq!(
            p.evaluate(&list),
            Verdict::Silent,
            "no prefix: StringLike fails"
        );
        list.prefix = Some("public/2026/");
        assert_eq!(p.evaluate(&list), Verdict::Allow);
        list.now_ms = parse_date("2027-06-01").unwrap();
        assert_eq!(p.evaluate(&list), Verdict::Silent, "after the date");
        assert!(p.may_allow(&ask("auditor", "s3:GetObject", "")));
        assert!(!p.may_allow(&ask("EXKOTHER", "s3:DeleteObject", "")));
    }

    #[test]
    fn every_operation_has_an_action_a_policy_may_name() {
        for op in [
            "GetObject",
            "HeadObject",
            "PutObject",
            "CopyObject",
            "UploadPart",
            "DeleteObjects",
            "ListObjectsV2",
            "ListObjectVersions",
            "ListMultipartUploads",
            "ListParts",
            "AbortMultipartUpload",
            "CreateBucket",
            "DeleteBucket",
            "GetBucketVersioning",
            "PutBucketPolicy",
            "GetBucketPolicyStatus",
            "PutObjectLockConfiguration",
            "DeleteBucketLifecycle",
            "GetBucketEncryption",
            "PutPublicAccessBlock",
            "GetObjectAttributes",
            "PutObjectRetention",
            "GetObjectLegalHold",
            "GetBucketAcl",
        ] {
            let a = iam_action(op);
            assert!(ACTIONS.contains(&a.as_str()), "{op}: {a}");
        }
    }
}
