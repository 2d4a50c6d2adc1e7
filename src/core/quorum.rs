//! The manifest quorums, sans-IO: a manifest goes to every node of its placement (N of them);
//! a write needs W = min(max(w, N/2 + 1), N) acknowledgements (w: the write quorum; at least a
//! majority, so any two writes overlap), a read asks until R = N - W + 1 have answered, so
//! every read quorum overlaps every write quorum. A read that
//! knows the current version (its `floor`, from the gateway's index) waits for the nodes
//! beyond R while the newest it found is older, so that a node that withholds a version or was
//! rolled back is outvoted by the others.
//!
//! The coordinator drives these with its node calls; `tests/quorum_sim/` drives them across
//! simulated sites, from a seed, in virtual time.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use crate::core::format::Manifest;
use crate::core::hlc::Version;

/// How copies order: by commit order, and then by whatever the record adds (for a manifest,
/// when its state was revised and the key generation a rotation re-wrapped it under).
pub trait Ranked {
    /// The rank; the newest copy has the highest. Its first field is the commit order.
    fn rank(&self) -> (Version, Version, u32);
    /// The version the copy is of (copies of one version have one identity).
    fn identity(&self) -> Version;
    /// The version was removed (by a DELETE of its id): its best copy hides it, and a read
    /// takes the newest version that was not.
    fn removed(&self) -> bool {
        false
    }
    /// The version is its key's null version (written while the bucket's versioning was not
    /// Enabled): a newer null version, removed or not, replaces it.
    fn null(&self) -> bool {
        false
    }
}

impl Ranked for Manifest {
    fn rank(&self) -> (Version, Version, u32) {
        self.precedence()
    }
    fn identity(&self) -> Version {
        self.version
    }
    fn removed(&self) -> bool {
        self.state.removed
    }
    fn null(&self) -> bool {
        self.state.written_under != crate::core::format::Versioning::Enabled
    }
}

/// A key's current version among the best copies of its versions (one per identity): the
/// newest whose best copy is not removed, passing over a null version that a newer null
/// version (removed or not) replaced. The read quorum, the index and offline recovery all
/// choose by this rule.
pub fn current<'a, T: Ranked + 'a>(best: impl Iterator<Item = &'a T> + Clone) -> Option<&'a T> {
    kept(best).max_by_key(|c| c.rank())
}

/// The versions a key keeps among the best copies of its versions: those not removed, less
/// the null versions a newer null version (removed or not) replaced.
pub fn kept<'a, T: Ranked + 'a>(
    best: impl Iterator<Item = &'a T> + Clone,
) -> impl Iterator<Item = &'a T> {
    let newest_null = best.clone().filter(|c| c.null()).map(|c| c.rank().0).max();
    best.filter(move |c| !(c.removed() || c.null() && Some(c.rank().0) < newest_null))
}

/// The write and read quorums of N manifest nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ManifestQuorum {
    /// Nodes asked.
    pub nodes: usize,
    /// Acknowledgements a write needs.
    pub write: usize,
    /// Answers a read needs.
    pub read: usize,
}

impl ManifestQuorum {
    /// The quorums of `nodes` nodes under write quorum `w`. A write needs a majority at
    /// least, so that the nodes that take it overlap those of every write acknowledged before:
    /// one of them reports that write's commit order, and the new write is stamped above it
    /// (`docs/decisions/version-order.md`).
    pub fn new(nodes: usize, w: usize) -> Self {
        let write = w.max(nodes / 2 + 1).min(nodes);
        Self {
            nodes,
            write,
            read: nodes - write + 1,
        }
    }
}

/// A manifest write: feed each node's answer; `met` once the write may be acknowledged.
#[derive(Clone, Debug)]
pub struct ManifestWrite {
    q: ManifestQuorum,
    durable: usize,
    failed: usize,
}

impl ManifestWrite {
    /// A write to the nodes of `q`.
    pub fn new(q: ManifestQuorum) -> Self {
        Self {
            q,
            durable: 0,
            failed: 0,
        }
    }

    /// A node stored it durably.
    pub fn handle_durable(&mut self) {
        self.durable += 1;
    }

    /// A node refused it, failed, or did not answer in time.
    pub fn handle_failed(&mut self) {
        self.failed += 1;
    }

    /// Whether the write may be acknowledged.
    pub fn met(&self) -> bool {
        self.durable >= self.q.write
    }

    /// Whether every node has answered (or been given up on).
    pub fn done(&self) -> bool {
        self.durable + self.failed >= self.q.nodes
    }

    /// Whether the quorum can no longer be met.
    pub fn impossible(&self) -> bool {
        self.q.nodes - self.failed.min(self.q.nodes) < self.q.write
    }

    /// The write's result: whether every node took it, or (durable, needed) when the quorum
    /// was not met.
    pub fn finish(&self) -> Result<bool, (usize, usize)> {
        if self.met() {
            Ok(self.durable >= self.q.nodes)
        } else {
            Err((self.durable, self.q.write))
        }
    }
}

/// A manifest read: feed each node's answer (the copies it holds that open and are not being
/// withdrawn) or its failure, until `done`; then `finish`. It keeps the best copy of each
/// version across the nodes, so that a node's stale copy of a removed version does not bring
/// it back.
#[derive(Clone, Debug)]
pub struct ManifestRead<T> {
    q: ManifestQuorum,
    floor: Option<Version>,
    answered: usize,
    failed: usize,
    best: BTreeMap<Version, T>,
}

impl<T: Ranked> ManifestRead<T> {
    /// A read from the nodes of `q`; `floor` is the version known to be current, if any.
    pub fn new(q: ManifestQuorum, floor: Option<Version>) -> Self {
        Self {
            q,
            floor,
            answered: 0,
            failed: 0,
            best: BTreeMap::new(),
        }
    }

    /// A node answered with these copies.
    pub fn handle_answer(&mut self, copies: impl IntoIterator<Item = T>) {
        self.answered += 1;
        for c in copies {
            match self.best.entry(c.identity()) {
                Entry::Vacant(e) => {
                    e.insert(c);
                }
                Entry::Occupied(mut e) => {
                    if c.rank() > e.get().rank() {
                        e.insert(c);
                    }
                }
            }
        }
    }

    /// The identity of the key's current version (see [`current`]).
    fn newest(&self) -> Option<Version> {
        current(self.best.values()).map(Ranked::identity)
    }

    /// A node failed or did not answer in time.
    pub fn handle_failed(&mut self) {
        self.failed += 1;
    }

    fn newest_version(&self) -> Option<Version> {
        self.newest()
            .and_then(|id| self.best.get(&id))
            .map(|n| n.rank().0)
    }

    /// Whether the read can stop: a read quorum answered and the newest found is not older
    /// than the floor, or every node has answered or failed.
    pub fn done(&self) -> bool {
        (self.answered >= self.q.read && self.newest_version() >= self.floor)
            || self.answered + self.failed >= self.q.nodes
    }

    /// The newest copy found (None: no version at all), or (answered, needed) when too few
    /// nodes answered. A newest older than the floor is the caller's to refuse.
    pub fn finish(mut self) -> Result<Option<T>, (usize, usize)> {
        if self.answered < self.q.read {
            return Err((self.answered, self.q.read));
        }
        Ok(self.newest().and_then(|id| self.best.remove(&id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ids::GatewayId;

    impl Ranked for Version {
        fn rank(&self) -> (Version, Version, u32) {
            (*self, *self, 0)
        }
        fn identity(&self) -> Version {
            *self
        }
    }

    /// A copy of version `id` (order = id), revised at `rev`, removed or not.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct Replica {
        id: Version,
        rev: Version,
        removed: bool,
        null: bool,
    }

    impl Ranked for Replica {
        fn rank(&self) -> (Version, Version, u32) {
            (self.id, self.rev, 0)
        }
        fn identity(&self) -> Version {
            self.id
        }
        fn removed(&self) -> bool {
            self.removed
        }
        fn null(&self) -> bool {
            self.null
        }
    }

    #[test]
    fn a_null_version_replaced_by_a_newer_one_never_comes_back() {
        let at = |n, null, removed| Replica {
            id: v(n),
            rev: v(n + u64::from(removed)),
            removed,
            null,
        };
        let q = ManifestQuorum::new(3, 2);
        // Null 2, versioned 4, null 6 removed: the newest is 4, never the replaced null 2.
        let mut r = ManifestRead::new(q, None);
        r.handle_answer([at(2, true, false), at(4, false, false), at(6, true, true)]);
        r.handle_answer([at(2, true, false), at(4, false, false), at(6, true, true)]);
        assert_eq!(r.finish(), Ok(Some(at(4, false, false))));
        // Only nulls, the newest removed: nothing.
        let mut r = ManifestRead::new(q, None);
        r.handle_answer([at(2, true, false), at(6, true, true)]);
        r.handle_answer([at(2, true, false)]);
        assert_eq!(r.finish(), Ok(None));
        // A versioned version under a null one is still there when the null goes.
        let mut r = ManifestRead::new(q, None);
        r.handle_answer([at(2, false, false), at(6, true, true)]);
        r.handle_answer([at(2, false, false)]);
        assert_eq!(r.finish(), Ok(Some(at(2, false, false))));
    }

    #[test]
    fn a_removed_version_stays_removed_whatever_copy_a_node_holds() {
        let live = |n| Replica {
            id: v(n),
            rev: v(n),
            removed: false,
            null: false,
        };
        let gone = |n, rev| Replica {
            id: v(n),
            rev: v(rev),
            removed: true,
            null: false,
        };
        let q = ManifestQuorum::new(5, 4);
        // One node still holds version 7 as it was; another holds it removed (later revised).
        for order in [[0, 1], [1, 0]] {
            let answers = [vec![live(3), live(7)], vec![live(3), gone(7, 9)]];
            let mut r = ManifestRead::new(q, None);
            for i in order {
                r.handle_answer(answers[i].clone());
            }
            assert!(r.done());
            assert_eq!(r.finish(), Ok(Some(live(3))), "{order:?}");
        }
        // Every version removed: none.
        let mut r = ManifestRead::new(q, None);
        r.handle_answer([gone(3, 4)]);
        r.handle_answer([gone(3, 4)]);
        assert_eq!(r.finish(), Ok(None));
        // A floor above the newest live version keeps the read waiting.
        let mut r = ManifestRead::new(q, Some(v(7)));
        r.handle_answer([live(3), gone(7, 9)]);
        r.handle_answer([live(3)]);
        assert!(!r.done());
    }

    fn v(n: u64) -> Version {
        Version {
            physical_ms: n,
            logical: 0,
            gateway: GatewayId(1),
        }
    }

    #[test]
    fn read_and_write_quorums_overlap() {
        for nodes in 1..=9 {
            for w in 1..=nodes + 1 {
                let q = ManifestQuorum::new(nodes, w);
                assert!(q.read + q.write > q.nodes, "{q:?}");
                // Any two writes overlap too (the order check needs it).
                assert!(2 * q.write > q.nodes, "{q:?}");
                assert!(q.write >= w.min(nodes), "{q:?}");
            }
        }
    }

    #[test]
    fn a_read_waits_past_its_quorum_while_the_newest_is_below_the_floor() {
        let q = ManifestQuorum::new(5, 4);
        let mut r = ManifestRead::new(q, Some(v(7)));
        r.handle_answer([v(3)]);
        r.handle_answer([v(5)]);
        assert!(!r.done(), "two answers, but older than the floor");
        r.handle_answer([v(3), v(7)]);
        assert!(r.done());
        assert_eq!(r.finish(), Ok(Some(v(7))));

        let mut r = ManifestRead::<Version>::new(q, None);
        r.handle_failed();
        r.handle_failed();
        r.handle_failed();
        r.handle_failed();
        r.handle_answer([]);
        assert!(r.done());
        assert_eq!(r.finish(), Err((1, 2)));
    }

    #[test]
    fn a_write_is_met_at_its_quorum_and_impossible_past_it() {
        let mut w = ManifestWrite::new(ManifestQuorum::new(5, 4));
        w.handle_durable();
        w.handle_durable();
        w.handle_failed();
        assert!(!w.met() && !w.impossible());
        w.handle_failed();
        assert!(w.impossible());
        assert_eq!(w.finish(), Err((2, 4)));
    }
}
