//! Withdrawing failed writes. A manifest write below its quorum is answered with an error and
//! withdrawn from every node that may hold it (`AbortManifest`). A node that does not confirm
//! (down, unreachable, killed between storing the record and the abort) may still hold the
//! record: left there it would surface later as the newest version of its key, perhaps with
//! fewer than k shards behind it (a small object's shards ride with its manifest), hiding the
//! acknowledged version before it. So the withdrawal stays pending, per node, until that node
//! confirms; reads skip pending versions meanwhile; the gateway keeps the pending set in its
//! index across restarts and retries it on every repair pass.
//!
//! A withdrawal every node confirmed is still kept (with no node left) until a newer version
//! of its object is written: a node rolled back to an old copy of its disk may serve the
//! record again, and reads must go on skipping it (found by the quorum simulation,
//! `core/tests/quorum_sim/`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::coordinator::drive::ShardTarget;
use crate::coordinator::object::{ObjectError, Objects};
use crate::core::format::Manifest;
use crate::core::hlc::Version;
use crate::core::ids::{NodeId, ObjectId};
use crate::core::ops::Pending;

/// How long one node may take to confirm a withdrawal.
const ABORT_TIMEOUT: Duration = Duration::from_secs(5);

impl Objects {
    /// After a manifest write below its quorum: withdraws the version from every node that
    /// may hold it; the nodes that do not confirm are kept pending.
    pub(super) async fn withdraw(&self, manifest: &Manifest, targets: &[ShardTarget]) {
        let nodes = Self::manifest_nodes(targets).into_iter().collect();
        self.withdraw_from((manifest.object, manifest.version), nodes)
            .await;
    }

    /// Withdraws a write that was never acknowledged, found after a restart (`gateway/
    /// intents.rs`): from every node any layout places its object on.
    pub async fn withdraw_version(&self, object: ObjectId, version: Version) {
        let mut nodes = BTreeSet::new();
        for targets in self.placements_of(&object) {
            nodes.extend(Self::manifest_nodes(&targets));
        }
        self.withdraw_from((object, version), nodes).await;
    }

    /// Withdraws `version` from `nodes`; those that do not confirm are kept pending.
    async fn withdraw_from(&self, version: (ObjectId, Version), nodes: BTreeSet<NodeId>) {
        self.pending().insert(version, nodes.clone());
        self.confirm(nodes.into_iter().map(|n| (n, vec![version])).collect())
            .await;
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.withdrawals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether (object, version) is a failed write: being withdrawn, or withdrawn and not yet
    /// superseded.
    pub fn withdrawing(&self, object: &ObjectId, version: Version) -> bool {
        self.pending().contains_key(&(*object, version))
    }

    /// The failed writes kept: those not yet confirmed by every node, and those confirmed
    /// (no node left) that no newer version has superseded yet.
    pub fn withdrawals(&self) -> Pending {
        self.pending().clone()
    }

    /// How many failed writes are not yet withdrawn from every node.
    pub fn withdrawals_pending(&self) -> usize {
        self.pending().values().filter(|n| !n.is_empty()).count()
    }

    /// A version of `object` was written: the failed writes before it that every node has
    /// confirmed withdrawn are forgotten (a read that finds one finds this one too).
    pub(crate) fn superseded(&self, object: &ObjectId, version: Version) {
        let mut pending = self.pending();
        let gone: Vec<(ObjectId, Version)> = pending
            .range((*object, Version::from_bytes([0; 16]))..(*object, version))
            .filter(|(_, nodes)| nodes.is_empty())
            .map(|(k, _)| *k)
            .collect();
        for k in gone {
            pending.remove(&k);
        }
    }

    /// Learns the withdrawals node `node` keeps whose proofs hold (a gateway with this manifest
    /// key withdrew them: writes never acknowledged), as withdrawals every node confirmed, so
    /// that an index rebuilt or recovered from the nodes skips them even where a node rolled
    /// back to an old copy of its disk serves one again. An entry whose proof does not hold is
    /// ignored (a host cannot hide a version by claiming it withdrawn). Returns how many were
    /// learned and how many were refused.
    pub async fn learn_withdrawals(&self, node: NodeId) -> Result<(usize, usize), ObjectError> {
        let client = self
            .nodes()
            .client(node)
            .cloned()
            .ok_or_else(|| ObjectError::Internal(format!("no client for node {}", node.0)))?;
        let (mut learned, mut refused, mut after) = (0, 0, None);
        loop {
            let page = client
                .list_withdrawn(after, 1000)
                .await
                .map_err(|e| ObjectError::Internal(format!("node {}: {e}", node.0)))?;
            let Some(last) = page.last() else { break };
            after = Some((last.object, last.version));
            let mut pending = self.pending();
            for w in &page {
                if self
                    .manifest_key
                    .proves_withdrawal(&w.object, w.version, &w.proof)
                {
                    pending.entry((w.object, w.version)).or_default();
                    learned += 1;
                } else {
                    refused += 1;
                }
            }
        }
        Ok((learned, refused))
    }

    /// Node `node` was found serving (object, version), a failed write (a node rolled back to
    /// an old copy of its disk): its withdrawal there is pending again, to be retried.
    pub(crate) fn withdrawal_owed(&self, node: NodeId, object: ObjectId, version: Version) {
        self.pending()
            .entry((object, version))
            .or_default()
            .insert(node);
    }

    /// Takes over withdrawals recorded before a restart.
    pub fn restore_withdrawals(&self, pending: Pending) {
        self.pending().extend(pending);
    }

    /// Retries every pending withdrawal once; returns how many versions are still pending
    /// at some node.
    pub async fn retry_withdrawals(&self) -> usize {
        let mut asks: BTreeMap<NodeId, Vec<(ObjectId, Version)>> = BTreeMap::new();
        for (v, nodes) in self.pending().iter() {
            for n in nodes {
                asks.entry(*n).or_default().push(*v);
            }
        }
        self.confirm(asks).await;
        self.withdrawals_pending()
    }

    /// Asks each node to withdraw its versions, the nodes in parallel and each node's versions
    /// in turn (a node that fails one is left for the next pass); forgets each (node, version)
    /// confirmed (a version with no node left is kept until superseded).
    async fn confirm(&self, asks: BTreeMap<NodeId, Vec<(ObjectId, Version)>>) {
        let mut set = tokio::task::JoinSet::new();
        for (n, versions) in asks {
            let client = self.nodes().client(n).cloned();
            let proven: Vec<_> = versions
                .into_iter()
                .map(|(o, v)| (o, v, self.manifest_key.withdrawal_proof(&o, v)))
                .collect();
            set.spawn(async move {
                let mut confirmed = Vec::new();
                let Some(c) = client else {
                    return (n, confirmed);
                };
                for (object, version, proof) in proven {
                    let withdrawn = c.withdraw_manifest(object, version, proof);
                    match tokio::time::timeout(ABORT_TIMEOUT, withdrawn).await {
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
                }
            }
        }
    }
}
