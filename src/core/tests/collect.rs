//! The collector's rule on small censuses.

use crate::core::collect::*;
use crate::core::format::{LockMode, Retention, VersionState, Versioning};
use crate::core::format::{Manifest, ManifestBody};
use crate::core::hlc::Version;
use crate::core::ids::NodeId;
use crate::core::tests::format_robustness::sample_manifest;
use crate::core::tests::{oid, version};

const SEC: u64 = 1000;
const T0: u64 = 1_700_000_000_000;

fn rules(now_ms: u64) -> Rules {
    Rules {
        now_ms,
        grace_ms: 10 * SEC,
        orphan_age_ms: 3600 * SEC,
        checkpoint_cutoff: None,
        every_node_answered: true,
        settled_below: None,
    }
}

/// Version `at` (seconds after T0) written under `under`.
fn written(at: u64, under: Versioning) -> Manifest {
    let v = version(T0 + at * SEC);
    Manifest {
        version: v,
        order: v,
        state: VersionState::written(under, v),
        ..sample_manifest()
    }
}

/// `m` at every one of nodes 1..=n, with its shards (100 bytes each) where it has data.
fn everywhere(c: &mut ObjectCensus, m: &Manifest, n: u32) {
    for node in 1..=n {
        c.records.push((NodeId(node), m.clone(), 10));
        if matches!(m.body, ManifestBody::Object(_)) {
            c.shards.push((NodeId(node), m.version, 100));
        }
    }
}

fn freed(v: &Verdict, reason: CollectReason) -> u64 {
    v.collect
        .iter()
        .filter(|(_, c, _)| c.reason == reason as u8)
        .map(|(_, _, b)| b)
        .sum()
}

#[test]
fn an_overwritten_version_goes_after_the_grace_period_and_its_record_after_a_checkpoint() {
    let (old, new) = (
        written(0, Versioning::Unversioned),
        written(5, Versioning::Unversioned),
    );
    let mut c = ObjectCensus::default();
    everywhere(&mut c, &old, 5);
    everywhere(&mut c, &new, 5);
    // Within the grace period: nothing goes.
    let v = verdict(oid(7), &c, &rules(T0 + 10 * SEC), 3, |_| true, false);
    assert!(v.collect.is_empty());
    assert_eq!(v.waiting.len(), 5);
    assert!(v.waiting.iter().all(|w| w.1 == Waiting::Grace));
    assert_eq!(v.live.values().sum::<u64>(), 5 * 110);
    // After it: the shards, not the records (no checkpoint after the overwrite).
    let v = verdict(oid(7), &c, &rules(T0 + 16 * SEC), 3, |_| true, false);
    assert_eq!(freed(&v, CollectReason::Overwritten), 500);
    assert!(v.collect.iter().all(|(_, c, _)| !c.manifest));
    assert!(v.waiting.iter().all(|w| w.1 == Waiting::Checkpoint));
    // With a checkpoint made after it: records too.
    let mut r = rules(T0 + 16 * SEC);
    r.checkpoint_cutoff = Some(new.order);
    let v = verdict(oid(7), &c, &r, 3, |_| true, false);
    assert_eq!(freed(&v, CollectReason::Overwritten), 550);
    assert!(
        v.collect
            .iter()
            .all(|(_, c, _)| c.manifest && c.version == old.version)
    );
    // The newest record is never collected.
    assert_eq!(v.live.values().sum::<u64>(), 550);
}

#[test]
fn nothing_is_buried_by_a_write_short_of_its_quorum_or_not_settled() {
    let (old, new) = (
        written(0, Versioning::Unversioned),
        written(5, Versioning::Unversioned),
    );
    let mut c = ObjectCensus::default();
    everywhere(&mut c, &old, 5);
    everywhere(&mut c, &new, 2);
    let v = verdict(oid(7), &c, &rules(T0 + 100 * SEC), 3, |_| true, false);
    assert!(v.collect.is_empty());
    assert!(v.waiting.iter().all(|w| w.1 == Waiting::Quorum));
    everywhere(&mut c, &new, 3);
    let v = verdict(
        oid(7),
        &c,
        &rules(T0 + 100 * SEC),
        3,
        |x| x != new.version,
        false,
    );
    assert!(
        v.collect.is_empty(),
        "a write being withdrawn buries nothing"
    );
    let v = verdict(oid(7), &c, &rules(T0 + 100 * SEC), 3, |_| true, false);
    assert_eq!(freed(&v, CollectReason::Overwritten), 500);
}

#[test]
fn a_locked_version_is_never_collected_and_a_removed_ones_record_stays() {
    let mut locked = written(0, Versioning::Unversioned);
    locked.state.retention = Some(Retention {
        mode: LockMode::Compliance,
        until_ms: T0 + 1000 * SEC,
    });
    let new = written(5, Versioning::Unversioned);
    let mut c = ObjectCensus::default();
    everywhere(&mut c, &locked, 5);
    everywhere(&mut c, &new, 5);
    let v = verdict(oid(7), &c, &rules(T0 + 100 * SEC), 3, |_| true, false);
    assert!(v.collect.is_empty());
    assert_eq!(v.protected, 1);
    // A legal hold on one copy is enough.
    let mut c = ObjectCensus::default();
    let mut held = written(0, Versioning::Enabled);
    everywhere(&mut c, &held, 4);
    held.state.legal_hold = true;
    everywhere(&mut c, &held, 1);
    let mut removed = held.clone();
    removed.state.legal_hold = false;
    removed.state.removed = true;
    removed.state.revised = version(T0 + 50 * SEC);
    for n in 2..=5 {
        c.records.push((NodeId(n), removed.clone(), 10));
    }
    let v = verdict(oid(7), &c, &rules(T0 + 100 * SEC), 3, |_| true, false);
    assert!(v.collect.is_empty());
    // Without the hold: the shards go, the removed record stays as the tombstone.
    c.records.retain(|(_, m, _)| !m.state.legal_hold);
    let v = verdict(oid(7), &c, &rules(T0 + 100 * SEC), 3, |_| true, false);
    assert_eq!(freed(&v, CollectReason::Removed), 500);
    assert!(v.collect.iter().all(|(_, c, _)| !c.manifest));
    // Not before the removal's grace period.
    let v = verdict(oid(7), &c, &rules(T0 + 55 * SEC), 3, |_| true, false);
    assert!(v.collect.is_empty());
}

#[test]
fn a_delete_and_upload_parts_name_their_reason_and_keys_versions_stay() {
    let old = written(0, Versioning::Unversioned);
    let mut end = written(5, Versioning::Unversioned);
    end.body = ManifestBody::Tombstone;
    let mut c = ObjectCensus::default();
    everywhere(&mut c, &old, 5);
    everywhere(&mut c, &end, 5);
    let v = verdict(oid(7), &c, &rules(T0 + 100 * SEC), 3, |_| true, false);
    assert_eq!(freed(&v, CollectReason::Deleted), 500);
    let v = verdict(oid(7), &c, &rules(T0 + 100 * SEC), 3, |_| true, true);
    // Checkpoints do not cover upload parts: their records go at once.
    assert_eq!(freed(&v, CollectReason::UploadPart), 550);
    // Versions of a versioned key are all kept.
    let mut c = ObjectCensus::default();
    everywhere(&mut c, &written(0, Versioning::Enabled), 5);
    everywhere(&mut c, &written(5, Versioning::Enabled), 5);
    let v = verdict(oid(7), &c, &rules(T0 + 100 * SEC), 3, |_| true, false);
    assert!(v.collect.is_empty() && v.waiting.is_empty());
    assert_eq!(v.live.values().sum::<u64>(), 10 * 110);
}

#[test]
fn shards_no_record_names_go_when_withdrawn_or_orphaned_and_every_node_answered() {
    let mut c = ObjectCensus::default();
    let failed = version(T0);
    let lost = version(T0 + SEC);
    for n in 1..=5 {
        c.shards.push((NodeId(n), failed, 100));
        c.shards.push((NodeId(n), lost, 100));
    }
    c.withdrawn.insert(failed);
    let v = verdict(oid(7), &c, &rules(T0 + 100 * SEC), 3, |_| true, false);
    assert_eq!(freed(&v, CollectReason::Withdrawn), 500);
    assert_eq!(freed(&v, CollectReason::Orphan), 0);
    assert!(v.waiting.iter().all(|w| w.1 == Waiting::Orphan));
    let v = verdict(oid(7), &c, &rules(T0 + 4000 * SEC), 3, |_| true, false);
    assert_eq!(freed(&v, CollectReason::Orphan), 500);
    // This gateway stamped them and has no write in flight that old: orphans after the grace
    // period; another gateway's (the same time) wait for the orphan age.
    let mut r = rules(T0 + 100 * SEC);
    r.settled_below = Some(version(T0 + 50 * SEC));
    let v = verdict(oid(7), &c, &r, 3, |_| true, false);
    assert_eq!(freed(&v, CollectReason::Orphan), 500);
    r.settled_below = Some(Version {
        gateway: crate::core::ids::GatewayId(2),
        ..version(T0 + 50 * SEC)
    });
    let v = verdict(oid(7), &c, &r, 3, |_| true, false);
    assert_eq!(freed(&v, CollectReason::Orphan), 0);
    r.settled_below = Some(version(T0));
    let v = verdict(oid(7), &c, &r, 3, |_| true, false);
    assert_eq!(
        freed(&v, CollectReason::Orphan),
        0,
        "a write in flight that old"
    );
    let mut r = rules(T0 + 4000 * SEC);
    r.every_node_answered = false;
    let v = verdict(oid(7), &c, &r, 3, |_| true, false);
    assert_eq!(freed(&v, CollectReason::Orphan), 0);
    assert_eq!(CollectReason::name_of(6), "orphan");
    assert_eq!(CollectReason::name_of(200), "unknown");
}

#[test]
fn an_object_completed_by_reference_has_its_parts_buried_once_its_bytes_may_go() {
    use crate::core::format::{PartRef, PartsBody};
    let part = sample_manifest();
    let ManifestBody::Object(meta) = &part.body else {
        unreachable!()
    };
    let body = PartsBody {
        whole: crate::core::format::ObjectMeta {
            placement: Vec::new(),
            block_hashes: Vec::new(),
            parts: vec![crate::core::format::Part {
                size: meta.size,
                etag: meta.etag.clone(),
            }],
            ..meta.clone()
        },
        parts: vec![PartRef {
            bucket: "b\u{1}uploads".into(),
            key: "u/1".into(),
            object: oid(9),
            version: version(T0 - SEC),
            meta: meta.clone(),
        }],
    };
    let old = Manifest {
        body: ManifestBody::Parts(Box::new(body)),
        ..written(0, Versioning::Unversioned)
    };
    let new = written(5, Versioning::Unversioned);
    let mut c = ObjectCensus::default();
    everywhere(&mut c, &old, 5);
    // Current: its parts are never named for burial.
    let v = verdict(oid(7), &c, &rules(T0 + 60 * SEC), 3, |_| true, false);
    assert!(v.parts_to_bury.is_empty());
    assert!(v.collect.is_empty());
    // Overwritten, within the grace period: not yet.
    everywhere(&mut c, &new, 5);
    let v = verdict(oid(7), &c, &rules(T0 + 10 * SEC), 3, |_| true, false);
    assert!(v.parts_to_bury.is_empty());
    // After it: its one part, named as the record names it.
    let v = verdict(oid(7), &c, &rules(T0 + 16 * SEC), 3, |_| true, false);
    assert_eq!(v.parts_to_bury.len(), 1);
    let (at, parts) = &v.parts_to_bury[0];
    assert_eq!(*at, old.version);
    assert_eq!(
        parts,
        &vec![PartToBury {
            bucket: "b\u{1}uploads".into(),
            key: "u/1".into(),
            object: oid(9),
            version: version(T0 - SEC),
        }]
    );
    // Under a legal hold: never.
    let mut held = old.clone();
    held.state.legal_hold = true;
    let mut c = ObjectCensus::default();
    everywhere(&mut c, &held, 5);
    everywhere(&mut c, &new, 5);
    let v = verdict(oid(7), &c, &rules(T0 + 16 * SEC), 3, |_| true, false);
    assert!(v.parts_to_bury.is_empty());
    assert_eq!(v.protected, 1);
}
