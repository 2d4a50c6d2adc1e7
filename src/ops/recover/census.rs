//! What a recovery learns from the nodes' manifests and checkpoints, whichever way it reads
//! them (over QUIC, or from copied data directories): who holds which version, each key's
//! versions, the checkpoints whose signature holds; and from that, what each node lacks and
//! whether the recovered catalog matches the newest checkpoint.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::coordinator::Objects;
use crate::core::catalog::{Checkpoint, root_of, verified};
use crate::core::format::{Manifest, ManifestBody, Versioning};
use crate::core::hlc::Version;
use crate::core::ids::ObjectId;
use crate::core::keys::CheckpointKey;
use crate::core::quorum::{Ranked, kept};
use crate::gateway::HIDDEN;

/// The catalog checkpoint a recovery checked against.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CheckpointReport {
    /// Its sequence number (the newest whose signature holds).
    pub seq: u64,
    /// When the gateway made it, ms since the epoch.
    pub created_ms: u64,
    /// Sites that keep it.
    pub held_by: Vec<String>,
    /// Versions it covers.
    pub leaves: u64,
    /// The recovered catalog, as of the checkpoint, has the same root.
    pub matches: bool,
    /// Versions the recovery found as of the checkpoint (equal to `leaves` when it matches).
    pub recovered_leaves: u64,
    /// Keys with versions newer than the checkpoint (written after it).
    pub keys_after: u64,
}

/// One copy of a version, as the checkpoint check needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Copy {
    rank: (Version, Version, u32),
    version: Version,
    deleted: bool,
    removed: bool,
    null: bool,
}

impl Ranked for Copy {
    fn rank(&self) -> (Version, Version, u32) {
        self.rank
    }
    fn identity(&self) -> Version {
        self.version
    }
    fn removed(&self) -> bool {
        self.removed
    }
    fn null(&self) -> bool {
        self.null
    }
}

/// The census.
#[derive(Debug, Default)]
pub(crate) struct Census {
    holders: BTreeMap<(ObjectId, Version), Vec<u32>>,
    versions: HashMap<ObjectId, Vec<Copy>>,
    checkpoints: BTreeMap<u32, Vec<Checkpoint>>,
}

impl Census {
    /// Counts a manifest node `node` gave.
    pub(crate) fn add_manifest(&mut self, node: u32, m: &Manifest) {
        let held = self.holders.entry((m.object, m.version)).or_default();
        if !held.contains(&node) {
            held.push(node);
        }
        if !m.bucket.contains(HIDDEN) {
            let c = Copy {
                rank: m.precedence(),
                version: m.version,
                deleted: matches!(m.body, ManifestBody::Tombstone),
                removed: m.state.removed,
                null: m.state.written_under != Versioning::Enabled,
            };
            let v = self.versions.entry(m.object).or_default();
            if !v.contains(&c) {
                v.push(c);
            }
        }
    }

    /// Keeps the checkpoints node `node` gave whose signature holds; returns the newest's
    /// sequence number (0: none).
    pub(crate) fn add_checkpoints(
        &mut self,
        node: u32,
        records: &[Vec<u8>],
        key: &CheckpointKey,
    ) -> u64 {
        let valid: Vec<Checkpoint> = verified(records, key).collect();
        let newest = valid.iter().map(|c| c.seq).max().unwrap_or(0);
        self.checkpoints.insert(node, valid);
        newest
    }

    /// Per node in `nodes`: versions others gave whose placement names it (under every
    /// layout) and it did not.
    pub(crate) fn lacking(&self, objects: &Objects, nodes: &[u32]) -> BTreeMap<u32, u64> {
        let mut out: BTreeMap<u32, u64> = nodes.iter().map(|&n| (n, 0)).collect();
        let mut placement: HashMap<ObjectId, Vec<u32>> = HashMap::new();
        for ((object, _), held) in &self.holders {
            // The nodes every layout (current and earlier) places the object on: a version
            // belongs there whichever layout it was written under.
            let should = placement.entry(*object).or_insert_with(|| {
                let mut sets = objects.placements(object).into_iter().map(|targets| {
                    targets
                        .iter()
                        .map(|t| t.node.0)
                        .collect::<std::collections::BTreeSet<u32>>()
                });
                let first = sets.next().unwrap_or_default();
                sets.fold(first, |a, b| a.intersection(&b).copied().collect())
                    .into_iter()
                    .collect()
            });
            for (node, lacking) in &mut out {
                if should.contains(node) && !held.contains(node) {
                    *lacking += 1;
                }
            }
        }
        out
    }

    /// The sites, in node order, of the nodes in `lacking` that lack anything: they withheld
    /// manifests, missed writes while down, or were rolled back.
    pub(crate) fn lacking_sites(
        lacking: &BTreeMap<u32, u64>,
        site_of: &BTreeMap<u32, String>,
    ) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (node, n) in lacking {
            let site = site_of
                .get(node)
                .cloned()
                .unwrap_or_else(|| node.to_string());
            if *n > 0 && !out.contains(&site) {
                out.push(site);
            }
        }
        out
    }

    /// The recovered catalog checked against the newest checkpoint, and the sites whose newest
    /// checkpoint is older (stale).
    pub(crate) fn verify(
        &self,
        site_of: &BTreeMap<u32, String>,
    ) -> (Option<CheckpointReport>, Vec<String>) {
        let Some(c) = self.checkpoints.values().flatten().max_by_key(|c| c.seq) else {
            return (None, Vec::new());
        };
        let excluded: HashSet<ObjectId> = c.excluded.iter().copied().collect();
        let mut keys_after = 0u64;
        let mut entries = Vec::new();
        for (object, vs) in &self.versions {
            if vs.iter().any(|v| v.rank.0 > c.cutoff) {
                keys_after += 1;
            }
            if excluded.contains(object) {
                continue;
            }
            entries.extend(
                kept_as_of(vs, c.cutoff)
                    .into_iter()
                    .map(|v| (*object, v.version, v.deleted)),
            );
        }
        let (recovered_leaves, root) = root_of(entries);
        let site = |id: &u32| site_of.get(id).cloned().unwrap_or_else(|| id.to_string());
        let report = CheckpointReport {
            seq: c.seq,
            created_ms: c.created_ms,
            held_by: self
                .checkpoints
                .iter()
                .filter(|(_, cs)| cs.iter().any(|x| x.seq == c.seq))
                .map(|(id, _)| site(id))
                .collect(),
            leaves: c.leaves,
            matches: root == c.root && recovered_leaves == c.leaves,
            recovered_leaves,
            keys_after,
        };
        let stale = self
            .checkpoints
            .iter()
            .filter(|(_, cs)| cs.iter().map(|x| x.seq).max().unwrap_or(0) < c.seq)
            .map(|(id, _)| site(id))
            .collect();
        (Some(report), stale)
    }
}

/// What a recovery did with one node's withdrawals of failed writes.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Withdrawals {
    /// Withdrawals it keeps whose proofs hold: those versions are skipped wherever they are
    /// found.
    #[serde(default)]
    pub withdrawals: u64,
    /// Withdrawals it keeps whose proofs do not hold (forged or damaged): ignored.
    #[serde(default)]
    pub withdrawals_refused: u64,
    /// Manifest records it holds of withdrawn writes (at it or elsewhere): skipped. A site
    /// rolled back to an old copy of its disk holds them again.
    #[serde(default)]
    pub withdrawn_served: u64,
}

/// A key's versions kept as of `cutoff`, as the gateway's index held them then: versions
/// committed after it are left out, and a removal revised after it is taken as not made yet
/// (its copy replaced the version's at the nodes that took it, but the version was live).
/// Kept as the read quorum keeps them (`core::quorum::kept`).
fn kept_as_of(copies: &[Copy], cutoff: Version) -> Vec<Copy> {
    let mut best: BTreeMap<Version, Copy> = BTreeMap::new();
    for c in copies.iter().filter(|c| c.rank.0 <= cutoff) {
        let c = Copy {
            removed: c.removed && c.rank.1 <= cutoff,
            ..*c
        };
        if best.get(&c.version).is_none_or(|b| b.rank < c.rank) {
            best.insert(c.version, c);
        }
    }
    kept(best.values()).copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ids::GatewayId;

    fn v(n: u64) -> Version {
        Version {
            physical_ms: n,
            logical: 0,
            gateway: GatewayId(1),
        }
    }

    fn copy(id: u64, order: u64, revised: u64, removed: bool) -> Copy {
        Copy {
            rank: (v(order), v(revised), 0),
            version: v(id),
            deleted: false,
            removed,
            null: false,
        }
    }

    #[test]
    fn the_versions_kept_as_of_a_checkpoint_ignore_what_came_after_it() {
        // Version 1, version 2 (committed at 3 though stamped at 2: order, not identity,
        // counts), version 2 removed at 7, version 4 committed at 8.
        let copies = [
            copy(1, 1, 1, false),
            copy(2, 3, 3, false),
            copy(2, 3, 7, true),
            copy(4, 8, 8, false),
        ];
        let at = |copies: &[Copy], cutoff| -> Vec<Version> {
            kept_as_of(copies, v(cutoff))
                .into_iter()
                .map(|c| c.version)
                .collect()
        };
        assert_eq!(at(&copies, 2), [v(1)]);
        // The removal came after: the version was kept then (though only its removed copy
        // is left at the nodes).
        assert_eq!(at(&copies, 5), [v(1), v(2)]);
        assert_eq!(at(&copies[2..3], 5), [v(2)]);
        assert_eq!(at(&copies, 7), [v(1)]);
        assert_eq!(at(&copies, 9), [v(1), v(4)]);
        assert!(at(&copies, 0).is_empty());
        // Null versions: the newest replaces the others, removed or not.
        let null = |c: Copy| Copy { null: true, ..c };
        let nulls = [
            null(copy(1, 1, 1, false)),
            copy(2, 2, 2, false),
            null(copy(3, 3, 3, false)),
            null(copy(3, 3, 4, true)),
        ];
        assert_eq!(at(&nulls, 3), [v(2), v(3)]);
        assert_eq!(at(&nulls, 4), [v(2)]);
    }
}
