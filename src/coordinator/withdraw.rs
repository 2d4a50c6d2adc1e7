//! Withdrawing failed writes. A manifest write below its quorum is answered with an error and
//! withdrawn from every node that may hold it (`AbortManifest`). A node that does not confirm
//! (down, unreachable, killed between storing the record and the abort) may still hold the
//! record: left there it would surface later as the newest version of its key, perhaps with
//! fewer than k shards behind it (a small object's shards ride with its manifest), hiding the
//! acknowledged version before it. So the withdrawal stays pending, per node, until that node
//! confirms; reads skip pending versions meanwhile; the gateway keeps the pending set in its
//! index across restarts and retries it on every repair pass.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::coordinator::drive::ShardTarget;
use crate::coordinator::object::Objects;
use crate::core::format::Manifest;
use crate::core::hlc::Version;
use crate::core::ids::{NodeId, ObjectId};

/// How long one node may take to confirm a withdrawal.
const ABORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Withdrawals not yet confirmed: (object, version) to the nodes still to confirm.
pub type Pending = BTreeMap<(ObjectId, Version), BTreeSet<NodeId>>;

impl Objects {
    /// After a manifest write below its quorum: withdraws the version from every node that
    /// may hold it; the nodes that do not confirm are kept pending.
    pub(super) async fn withdraw(&self, manifest: &Manifest, targets: &[ShardTarget]) {
        let nodes = Self::manifest_nodes(targets).into_iter().collect();
        self.pending()
            .insert((manifest.object, manifest.version), nodes);
        self.retry_withdrawal(manifest.object, manifest.version)
            .await;
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.withdrawals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether (object, version) is a failed write still being withdrawn.
    pub fn withdrawing(&self, object: &ObjectId, version: Version) -> bool {
        self.pending().contains_key(&(*object, version))
    }

    /// The withdrawals not yet confirmed by every node.
    pub fn withdrawals(&self) -> Pending {
        self.pending().clone()
    }

    /// Takes over withdrawals recorded before a restart.
    pub fn restore_withdrawals(&self, pending: Pending) {
        self.pending().extend(pending);
    }

    /// Asks every node still pending to withdraw (object, version); forgets the nodes that
    /// confirm, and the version once none is left.
    async fn retry_withdrawal(&self, object: ObjectId, version: Version) {
        let Some(nodes) = self.pending().get(&(object, version)).cloned() else {
            return;
        };
        let mut set = tokio::task::JoinSet::new();
        for n in nodes {
            let client = self.nodes().client(n).cloned();
            set.spawn(async move {
                let ok = match client {
                    Some(c) => matches!(
                        tokio::time::timeout(ABORT_TIMEOUT, c.abort_manifest(object, version))
                            .await,
                        Ok(Ok(()))
                    ),
                    None => false,
                };
                (n, ok)
            });
        }
        let mut confirmed = Vec::new();
        while let Some(r) = set.join_next().await {
            if let Ok((n, true)) = r {
                confirmed.push(n);
            }
        }
        let mut pending = self.pending();
        if let Some(left) = pending.get_mut(&(object, version)) {
            for n in confirmed {
                left.remove(&n);
            }
            if left.is_empty() {
                pending.remove(&(object, version));
            }
        }
    }

    /// Retries every pending withdrawal once, node by node (a node that fails one is left
    /// for the next pass); returns how many versions are still pending.
    pub async fn retry_withdrawals(&self) -> usize {
        let mut by_node: BTreeMap<NodeId, Vec<(ObjectId, Version)>> = BTreeMap::new();
        for (v, nodes) in self.pending().iter() {
            for n in nodes {
                by_node.entry(*n).or_default().push(*v);
            }
        }
        let mut set = tokio::task::JoinSet::new();
        for (n, versions) in by_node {
            let client = self.nodes().client(n).cloned();
            set.spawn(async move {
                let mut confirmed = Vec::new();
                let Some(c) = client else {
                    return (n, confirmed);
                };
                for (object, version) in versions {
                    match tokio::time::timeout(ABORT_TIMEOUT, c.abort_manifest(object, version))
                        .await
                    {
                        Ok(Ok(())) => confirmed.push((object, version)),
                        _ => break,
                    }
                }
                (n, confirmed)
            });
        }
        while let Some(r) = set.join_next().await {
            let Ok((n, confirmed)) = r else { continue };
            let mut pending = self.pending();
            for v in confirmed {
                if let Some(left) = pending.get_mut(&v) {
                    left.remove(&n);
                    if left.is_empty() {
                        pending.remove(&v);
                    }
                }
            }
        }
        self.pending().len()
    }
}
