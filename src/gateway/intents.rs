//! Settling the writes a crash cut short. Every version is recorded in the index before any
//! of its manifests is sent, and the record is cleared when the index takes the version (the
//! write is acknowledged after that) or the write fails and is withdrawn. A record left over
//! names a write whose client got no answer, and which may have reached any number of nodes:
//! read at a quorum that happens to include them it would be there, read at another it would
//! not. Before the gateway serves a read, and on every repair pass for writes no longer in
//! flight, each one is settled one way for good:
//! - **taken** when it can be read (a delete; or k of its shards held at their sites): the
//!   index takes it, and its missing shards and manifest copies go to repair;
//! - **withdrawn** otherwise (fewer than k shards, or no node holds it): it was never
//!   acknowledged, so withdrawing it (with proofs, `coordinator/withdraw.rs`) loses nothing,
//!   and no read ever shows it.
//!
//! An index rebuilt from the nodes records the same for every current version it found at
//! fewer nodes than a write needs, which may be such a write.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use futures::StreamExt as _;

use super::repair::Repairer;
use super::{apply_found, entry_of};
use crate::core::format::{Manifest, ManifestBody};
use crate::core::hlc::Version;
use crate::core::ids::{NodeId, ObjectId};
use crate::meta::{Intent, MetaError};

/// What an index rebuild saw: how many nodes hold each version, and which nodes did not
/// answer. A version is in doubt when even the nodes that did not answer could not bring its
/// holders up to the manifest write quorum: it cannot have been acknowledged.
#[derive(Debug, Default)]
pub(crate) struct Holders {
    held: HashMap<(ObjectId, Version), u16>,
    away: BTreeSet<NodeId>,
}

impl Holders {
    /// A node listed `m`.
    pub(crate) fn holds(&mut self, m: &Manifest) {
        *self.held.entry((m.object, m.version)).or_default() += 1;
    }

    /// `node` could not be listed.
    pub(crate) fn unanswered(&mut self, node: NodeId) {
        self.away.insert(node);
    }
}

/// Keys settled at the same time.
const SETTLE_CONCURRENCY: usize = 16;

/// What settling did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Settled {
    /// Versions taken: they could be read.
    pub taken: usize,
    /// Versions withdrawn: no read will show them.
    pub withdrawn: usize,
    /// Versions a newer one had superseded already.
    pub superseded: usize,
    /// Versions left for a later pass (withdrawn, but no read quorum said what is current).
    pub left: usize,
}

impl Settled {
    /// Anything settled or withdrawn.
    fn any(&self) -> bool {
        self.taken + self.withdrawn + self.superseded + self.left > 0
    }
}

enum Way {
    Taken,
    Withdrawn,
    Superseded,
    Left,
}

impl Repairer {
    /// Records, for settling, every current version of the index (just rebuilt) that `seen`
    /// says cannot have been acknowledged.
    pub(super) fn mark_in_doubt(&self, seen: &Holders) -> Result<(), MetaError> {
        let mut doubtful = Vec::new();
        self.index.for_each_entry(|bucket, key, e| {
            let object = self.objects.object_id(bucket, key);
            let held = seen.held.get(&(object, e.version)).copied().unwrap_or(0);
            let nodes = self.objects.manifest_nodes_of(&object);
            let away = nodes.iter().filter(|n| seen.away.contains(n)).count();
            if usize::from(held) + away < self.objects.manifest_write_quorum(nodes.len()) {
                doubtful.push((bucket.to_owned(), key.to_owned(), object, e.clone()));
            }
        })?;
        for (bucket, key, object, e) in doubtful {
            self.index
                .intend(&bucket, &key, &object, e.version, e.order)?;
        }
        Ok(())
    }

    /// Settles every write recorded and not acknowledged; `all`: those still in flight too
    /// (at a start, when none can be).
    pub(crate) async fn settle_intents(&self, all: bool) -> Result<Settled, MetaError> {
        let cutoff = (!all).then(|| self.catalog.cutoff());
        let mut out = Settled::default();
        // Keys at the same time (a start after a crash with sites away waits for each one's
        // census); the versions of one key one after another, oldest first.
        let mut by_key: BTreeMap<(String, String), Vec<Intent>> = BTreeMap::new();
        for i in self.index.intents()? {
            if cutoff.is_none_or(|c| i.version < c) {
                by_key
                    .entry((i.bucket.clone(), i.key.clone()))
                    .or_default()
                    .push(i);
            }
        }
        let mut settled = futures::stream::iter(by_key.into_values())
            .map(|mut versions| async move {
                versions.sort_by_key(|i| i.order);
                let mut ways = Vec::new();
                for i in &versions {
                    ways.push(self.settle(i).await?);
                }
                Ok::<_, MetaError>(ways)
            })
            .buffer_unordered(SETTLE_CONCURRENCY);
        while let Some(ways) = settled.next().await {
            for way in ways? {
                match way {
                    Way::Taken => out.taken += 1,
                    Way::Withdrawn => out.withdrawn += 1,
                    Way::Superseded => out.superseded += 1,
                    Way::Left => out.left += 1,
                }
            }
        }
        if out.any() {
            self.keep_withdrawals()?;
            tracing::info!(
                taken = out.taken,
                withdrawn = out.withdrawn,
                superseded = out.superseded,
                left = out.left,
                "writes a restart cut short, settled"
            );
        }
        Ok(out)
    }

    async fn settle(&self, i: &Intent) -> Result<Way, MetaError> {
        let done = || {
            self.objects.settled(&i.object, i.version);
            self.index.settle_intent(&i.bucket, &i.key, i.version)
        };
        let current = self.index.get(&i.bucket, &i.key)?;
        if current.as_ref().is_some_and(|c| c.order > i.order) {
            done()?;
            return Ok(Way::Superseded);
        }
        let current = current.map(|c| c.version);
        if !self.objects.withdrawing(&i.object, i.version) {
            let census = self.objects.manifest_census(i.object, i.version).await;
            if let Some(found) = &census.found {
                let m = &found.manifest;
                let pieces = self.objects.shard_census(m).await;
                // Every piece readable (a part's k is its own).
                let readable = matches!(m.body, ManifestBody::Tombstone)
                    || (!pieces.is_empty()
                        && m.body
                            .pieces(m.object, m.version)
                            .iter()
                            .zip(&pieces)
                            .all(|(p, (_, _, c))| c.present >= usize::from(p.meta.k).max(1)));
                if readable {
                    // Taken if newer than the current one (which it is not superseded by).
                    apply_found(&self.index, m)?;
                    done()?;
                    if pieces.iter().all(|(_, _, c)| c.absent.is_empty()) {
                        self.objects.copy_manifest(found).await;
                    } else {
                        for (object, version, c) in &pieces {
                            if !c.absent.is_empty() {
                                self.index.record_repair(object, *version, &c.absent)?;
                            }
                        }
                    }
                    return Ok(Way::Taken);
                }
            }
            // Not readable, or no node that answered holds it: never acknowledged.
            self.objects.withdraw_version(i.object, i.version).await;
        }
        if current == Some(i.version) {
            // The index took it (rebuilt from the nodes): back to the version before it, once
            // a read quorum says which that is.
            let Ok(before) = self.objects.head(&i.bucket, &i.key, None).await else {
                return Ok(Way::Left);
            };
            let entry = before.as_ref().map(entry_of);
            self.index.replace(&i.bucket, &i.key, entry.as_ref())?;
            if i.key.is_empty() && entry.is_none_or(|e| e.deleted) {
                self.index.delete_bucket(&i.bucket)?;
            }
        }
        done()?;
        Ok(Way::Withdrawn)
    }
}
