//! Which of a key's versions is newest: the commit order a write is stamped with, the second
//! stamp when its nodes report a newer order than the gateway had seen
//! (`docs/decisions/version-order.md`), and the versions reads pass over while their commit
//! is under way, so that readers never disagree about an overlapping write.

use std::collections::HashSet;
use std::sync::{MutexGuard, PoisonError};

use super::{ObjectError, Objects};
use crate::coordinator::drive::ShardTarget;
use crate::core::format::{Manifest, ManifestEnvelope};
use crate::core::hlc::Version;
use crate::core::ids::{ObjectId, hex};
use crate::core::keys::ManifestKey;

/// A version being committed: unseen by reads until [`Committing::finish`] (the write reached
/// its quorum, or failed and was withdrawn). Dropped without it (the request was cancelled
/// mid-commit), the version stays unseen until the gateway settles it
/// ([`Objects::settled`]).
pub(super) struct Committing<'a> {
    objects: &'a Objects,
    key: (ObjectId, Version),
}

impl Committing<'_> {
    /// The commit is over: reads may take the version (if it was not withdrawn).
    pub(super) fn finish(self) {
        self.objects.unmark(&self.key);
    }
}

impl Objects {
    /// Marks `object`'s `version` as being committed (see [`Committing`]).
    pub(super) fn committing(&self, object: ObjectId, version: Version) -> Committing<'_> {
        self.committing_set().insert((object, version));
        Committing {
            objects: self,
            key: (object, version),
        }
    }

    /// Whether reads must pass over this version: its commit is under way (or was cut short
    /// and is not settled yet).
    pub(super) fn uncommitted(&self, object: &ObjectId, version: Version) -> bool {
        self.committing_set().contains(&(*object, version))
    }

    /// A write cut short was settled (taken or withdrawn): reads decide by the nodes again.
    pub fn settled(&self, object: &ObjectId, version: Version) {
        self.unmark(&(*object, version));
    }

    fn unmark(&self, key: &(ObjectId, Version)) {
        self.committing_set().remove(key);
    }

    fn committing_set(&self) -> MutexGuard<'_, HashSet<(ObjectId, Version)>> {
        self.committing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// When a node reported a commit order above the one `manifest` was written with (a
    /// version this gateway had not seen, another gateway's), stamps it above that and writes
    /// it again: the nodes that took the first write overlap those of every write acknowledged
    /// before it began, so one of them reported each such write's order. Returns whether
    /// every node took the second write, if there was one.
    pub(super) async fn order_above(
        &self,
        manifest: &mut Manifest,
        newest: Option<Version>,
        targets: &[ShardTarget],
    ) -> Result<Option<bool>, ObjectError> {
        let Some(newest) = newest.filter(|n| *n > manifest.order) else {
            return Ok(None);
        };
        self.observe(newest);
        manifest.order = self.stamp();
        manifest.state.revised = manifest.order;
        self.intend(manifest).await?;
        let (all, _) = self.write_manifest(manifest, targets).await?;
        Ok(Some(all))
    }

    /// `authentic_order_above` under this gateway's manifest key.
    pub(super) fn reported_above(
        &self,
        manifest: &Manifest,
        records: impl Iterator<Item = Vec<u8>>,
    ) -> Option<Version> {
        authentic_order_above(&self.manifest_key, manifest, records)
    }
}

/// The highest commit order above `manifest`'s among the records its nodes reported (each
/// node's newest, sent when above the written one's), counting only records that open under the manifest key and
/// are of the same object: a node cannot push a gateway's clock to an order no gateway
/// stamped.
pub(super) fn authentic_order_above(
    key: &ManifestKey,
    manifest: &Manifest,
    records: impl Iterator<Item = Vec<u8>>,
) -> Option<Version> {
    let mut newest = None;
    for rec in records {
        let Ok(env) = ManifestEnvelope::parse(&rec) else {
            continue;
        };
        if env.order <= manifest.order || Some(env.order) <= newest {
            continue;
        }
        match Manifest::open(key, &rec) {
            Ok(m) if m.object == manifest.object => newest = Some(m.order),
            _ => tracing::warn!(
                object = %hex(&manifest.object.0),
                "a node reported a newest manifest that does not open as this object's: ignored"
            ),
        }
    }
    newest
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::format::{ManifestBody, VersionState};
    use crate::core::ids::GatewayId;

    fn at(ms: u64) -> Version {
        Version {
            physical_ms: ms,
            logical: 0,
            gateway: GatewayId(2),
        }
    }

    fn manifest(object: u8, order: u64) -> Manifest {
        Manifest {
            bucket: "b".into(),
            key: "k".into(),
            object: ObjectId([object; 32]),
            version: at(1),
            created_ms: 1,
            body: ManifestBody::Tombstone,
            order: at(order),
            state: VersionState::unversioned(at(order)),
        }
    }

    #[test]
    fn only_an_authentic_record_of_the_object_moves_the_order() {
        let key = ManifestKey::from_bytes([1; 32]);
        let ours = manifest(7, 10);
        let sealed = |m: &Manifest| m.seal(&key, [0; 12]).unwrap();
        let above = |recs: Vec<Vec<u8>>| authentic_order_above(&key, &ours, recs.into_iter());
        assert_eq!(above(vec![sealed(&manifest(7, 20))]), Some(at(20)));
        assert_eq!(
            above(vec![sealed(&manifest(7, 20)), sealed(&manifest(7, 30))]),
            Some(at(30))
        );
        assert_eq!(above(vec![sealed(&manifest(7, 5))]), None);
        // Another object's record, one sealed under another key, one whose envelope was
        // raised by the node, and bytes that are no record at all.
        assert_eq!(above(vec![sealed(&manifest(8, 99))]), None);
        let other = ManifestKey::from_bytes([2; 32]);
        assert_eq!(
            above(vec![manifest(7, 99).seal(&other, [0; 12]).unwrap()]),
            None
        );
        let mut raised = sealed(&manifest(7, 20));
        raised[68] = 0x7f;
        assert_eq!(above(vec![raised]), None);
        assert_eq!(above(vec![vec![0xff; 200]]), None);
    }
}
