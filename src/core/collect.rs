//! The collector's rule, sans-IO: from what every node holds of one object (its manifest
//! records, opened, and its shards), which bytes no reader may ever need again, at which node,
//! and why (`docs/durability.md`, "When a byte may be removed").
//!
//! A version is garbage when the key no longer keeps it (`core::quorum::kept`: removed by a
//! DELETE of its id, or a null version a newer null version replaced), no copy of it carries a
//! retention in force or a legal hold, the record that buries it (its own removed copy, or the
//! replacing version) is held by a write quorum of nodes and settled (no write of it is in
//! flight or being withdrawn at this gateway), and the grace period has passed since it was
//! buried (reads in flight finish). Then its shards go everywhere. Its manifest record goes
//! too when it was replaced (the replacing record, never collected while it is the key's
//! newest, outlives it and every copy of it) and a catalog checkpoint was made after the
//! replacement (a recovery checks the nodes against the newest checkpoint; checkpoints do not
//! cover upload parts, whose records go with their shards). A removed version's
//! record stays: it is the tombstone that keeps a stale copy from coming back. Shards no
//! record names are garbage once a withdrawal of their write is known (after the grace
//! period), or, when every node answered the census, once they are older than the orphan age
//! (a write in progress sends its shards long before its manifest), or older than the grace
//! period when this gateway stamped them and none of its writes in flight is that old.

use std::collections::{BTreeMap, BTreeSet};

use crate::core::format::{Manifest, ManifestBody};
use crate::core::hlc::Version;
use crate::core::ids::{NodeId, ObjectId};
use crate::core::quorum::{Ranked, kept};
use crate::core::wire::Collectable;

/// Why bytes were collected (kept in the nodes' ledgers as a number).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum CollectReason {
    /// A version replaced by a newer write of its key.
    Overwritten = 1,
    /// A version ended by a DELETE of an unversioned key.
    Deleted = 2,
    /// A version removed by a DELETE of its id.
    Removed = 3,
    /// A multipart upload's part, after Complete or Abort.
    UploadPart = 4,
    /// Shards of a write that failed and was withdrawn.
    Withdrawn = 5,
    /// Shards no manifest names, older than the orphan age.
    Orphan = 6,
    /// Files under a disk's `shards/` no shard header names, older than the orphan age.
    OrphanFile = 7,
}

impl CollectReason {
    /// Every reason, in order.
    pub const ALL: [Self; 7] = [
        Self::Overwritten,
        Self::Deleted,
        Self::Removed,
        Self::UploadPart,
        Self::Withdrawn,
        Self::Orphan,
        Self::OrphanFile,
    ];

    /// The reason's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Overwritten => "overwritten",
            Self::Deleted => "deleted",
            Self::Removed => "removed",
            Self::UploadPart => "upload-part",
            Self::Withdrawn => "withdrawn",
            Self::Orphan => "orphan",
            Self::OrphanFile => "orphan-file",
        }
    }

    /// The name of a reason's number (a ledger written by a newer build: "unknown").
    pub fn name_of(n: u8) -> &'static str {
        Self::ALL
            .iter()
            .find(|r| **r as u8 == n)
            .map_or("unknown", |r| r.name())
    }
}

/// What the rule weighs besides the records.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    /// The cluster's time, ms since the epoch.
    pub now_ms: u64,
    /// Time a buried version stays readable.
    pub grace_ms: u64,
    /// Age after which shards no record names are orphans.
    pub orphan_age_ms: u64,
    /// The newest catalog checkpoint's cutoff (None: no checkpoint yet).
    pub checkpoint_cutoff: Option<Version>,
    /// Whether every node answered the census (else no orphan is collected: its record may be
    /// at a node that did not answer).
    pub every_node_answered: bool,
    /// This gateway's writes in flight all stamped their versions at or above this one (its
    /// gateway field names this gateway): shards of a version it stamped below it, that no
    /// record names, are a write that will never commit (cut short by a crash or a failure)
    /// and are orphans after the grace period. Other gateways' wait for the orphan age.
    pub settled_below: Option<Version>,
}

/// One object as the nodes hold it.
#[derive(Debug, Default)]
pub struct ObjectCensus {
    /// Each node's manifest records of it, opened, with their sealed lengths.
    pub records: Vec<(NodeId, Manifest, u64)>,
    /// Each node's shards of it: (node, version, length).
    pub shards: Vec<(NodeId, Version, u64)>,
    /// Versions of it whose withdrawal some node keeps.
    pub withdrawn: BTreeSet<Version>,
}

/// Why garbage was not collected yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Waiting {
    /// The grace period has not passed.
    Grace,
    /// The burying record is not at a write quorum, or its write is not settled.
    Quorum,
    /// A replaced version's record waits for a checkpoint made after its replacement.
    Checkpoint,
    /// Shards no record names, younger than the orphan age (or not every node answered).
    Orphan,
}

/// The verdict on one object.
#[derive(Debug, Default)]
pub struct Verdict {
    /// What to delete, per node, with the bytes it frees there.
    pub collect: Vec<(NodeId, Collectable, u64)>,
    /// Garbage not collected yet: per node, why and how many bytes.
    pub waiting: Vec<(NodeId, Waiting, u64)>,
    /// Bytes of versions kept (shards and records), per node.
    pub live: BTreeMap<NodeId, u64>,
    /// Versions not collected because a retention or legal hold protects them.
    pub protected: u64,
    /// Versions completed by reference whose bytes go now: their parts (namespace, key,
    /// object, version), to be buried (a tombstone each) before anything of the version is
    /// deleted; the collector takes the parts as it takes any buried part.
    pub parts_to_bury: Vec<(Version, Vec<PartToBury>)>,
}

/// A part of a version completed by reference, to be buried with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartToBury {
    /// Its namespace (the upload's hidden bucket).
    pub bucket: String,
    /// Its key there.
    pub key: String,
    /// Its object id.
    pub object: ObjectId,
    /// The version the completed object references.
    pub version: Version,
}

fn locked(m: &Manifest, now_ms: u64) -> bool {
    m.state.legal_hold || m.state.retention.is_some_and(|r| r.until_ms > now_ms)
}

/// The verdict on `object`. `write_quorum`: the manifest write quorum of its placement;
/// `settled(version)`: no write of that version is in flight or being withdrawn here;
/// `upload_part`: the object is a multipart upload's part.
pub fn verdict(
    object: ObjectId,
    c: &ObjectCensus,
    rules: &Rules,
    write_quorum: usize,
    settled: impl Fn(Version) -> bool,
    upload_part: bool,
) -> Verdict {
    let mut out = Verdict::default();
    let mut best: BTreeMap<Version, &Manifest> = BTreeMap::new();
    for (_, m, _) in &c.records {
        if best
            .get(&m.version)
            .is_none_or(|b| b.precedence() < m.precedence())
        {
            best.insert(m.version, m);
        }
    }
    let kept_ids: BTreeSet<Version> = kept(best.values().copied()).map(|m| m.version).collect();
    let newest_null = best
        .values()
        .filter(|m| m.null())
        .max_by_key(|m| m.rank().0)
        .copied();
    let holders = |v: Version, pred: &dyn Fn(&Manifest) -> bool| {
        c.records
            .iter()
            .filter(|(_, m, _)| m.version == v && pred(m))
            .map(|(n, _, _)| *n)
            .collect::<BTreeSet<_>>()
            .len()
    };
    // Per version: (collect shards?, collect records?, reason) or a wait.
    let mut plan: BTreeMap<Version, Result<(bool, CollectReason), Waiting>> = BTreeMap::new();
    for (v, m) in &best {
        if kept_ids.contains(v) {
            continue;
        }
        if c.records
            .iter()
            .any(|(_, x, _)| x.version == *v && locked(x, rules.now_ms))
        {
            out.protected += 1;
            continue;
        }
        let (buried_ms, durable, records, reason) = if m.state.removed {
            let copies = holders(*v, &|x| x.state.removed);
            (
                m.state.revised.physical_ms,
                copies >= write_quorum && settled(*v),
                false,
                CollectReason::Removed,
            )
        } else {
            // Not kept and not removed: a null version a newer null one replaced.
            let Some(n) = newest_null.filter(|n| n.version != *v) else {
                continue;
            };
            let reason = match n.body {
                ManifestBody::Object(_) | ManifestBody::Parts(_) => CollectReason::Overwritten,
                ManifestBody::Tombstone => CollectReason::Deleted,
            };
            (
                n.order.physical_ms,
                holders(n.version, &|_| true) >= write_quorum && settled(n.version),
                // Checkpoints do not cover upload parts.
                upload_part || rules.checkpoint_cutoff.is_some_and(|cut| cut >= n.order),
                reason,
            )
        };
        let reason = if upload_part {
            CollectReason::UploadPart
        } else {
            reason
        };
        plan.insert(
            *v,
            if !durable {
                Err(Waiting::Quorum)
            } else if rules.now_ms < buried_ms.saturating_add(rules.grace_ms) {
                Err(Waiting::Grace)
            } else {
                Ok((records, reason))
            },
        );
    }
    for (v, p) in &plan {
        if let (Ok(_), Some(m)) = (p, best.get(v))
            && let ManifestBody::Parts(parts) = &m.body
        {
            out.parts_to_bury.push((
                *v,
                parts
                    .parts
                    .iter()
                    .map(|r| PartToBury {
                        bucket: r.bucket.clone(),
                        key: r.key.clone(),
                        object: r.object,
                        version: r.version,
                    })
                    .collect(),
            ));
        }
    }
    // Shards no record names.
    for (_, v, _) in &c.shards {
        if best.contains_key(v) || plan.contains_key(v) {
            continue;
        }
        let old = |age: u64| rules.now_ms >= v.physical_ms.saturating_add(age);
        let p = if c.withdrawn.contains(v) {
            if old(rules.grace_ms) {
                Ok((false, CollectReason::Withdrawn))
            } else {
                Err(Waiting::Grace)
            }
        } else if rules.every_node_answered
            && (old(rules.orphan_age_ms)
                || old(rules.grace_ms)
                    && rules
                        .settled_below
                        .is_some_and(|s| v.gateway == s.gateway && *v < s))
        {
            Ok((false, CollectReason::Orphan))
        } else {
            Err(Waiting::Orphan)
        };
        plan.insert(*v, p);
    }
    // Per node and version: the bytes held.
    let mut held: BTreeMap<(NodeId, Version), (u64, u64)> = BTreeMap::new();
    for (n, v, len) in &c.shards {
        held.entry((*n, *v)).or_default().0 += len;
    }
    for (n, m, len) in &c.records {
        held.entry((*n, m.version)).or_default().1 += len;
    }
    for ((node, v), (shards, record)) in held {
        match plan.get(&v) {
            None => *out.live.entry(node).or_default() += shards + record,
            Some(Err(w)) => out.waiting.push((node, *w, shards + record)),
            Some(Ok((records, reason))) => {
                let freed = shards + if *records { record } else { 0 };
                if !records && record > 0 {
                    // A removed version's tombstone, or a record waiting for a checkpoint.
                    if *reason == CollectReason::Removed {
                        *out.live.entry(node).or_default() += record;
                    } else {
                        out.waiting.push((node, Waiting::Checkpoint, record));
                    }
                }
                if freed > 0 {
                    out.collect.push((
                        node,
                        Collectable {
                            object,
                            version: v,
                            manifest: *records,
                            reason: *reason as u8,
                        },
                        freed,
                    ));
                }
            }
        }
    }
    out
}
