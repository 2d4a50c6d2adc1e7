//! Catalog checkpoints at the gateway (`core::catalog`): every `checkpoint_interval_secs`,
//! when the index changed, a signed Merkle root over the current versions, chained to the
//! previous one, kept in the index and sent to every node.
//!
//! Writes in flight register a floor version when they start; a checkpoint covers only
//! versions below the oldest floor, so a version committed after the checkpoint can never be
//! one it should have covered.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::buckets::HIDDEN;
use crate::coordinator::Objects;
use crate::core::catalog::{Checkpoint, MAX_EXCLUDED, root_of, verified};
use crate::core::hlc::Version;
use crate::core::ids::ObjectId;
use crate::meta::{Index, MetaError};
use crate::sys::now_ms;

/// The catalog of a gateway: its object store and index, the floors of the writes in flight,
/// and how often it checkpoints.
#[derive(Debug)]
pub struct Catalog {
    objects: Arc<Objects>,
    index: Arc<Index>,
    /// Write requests in flight: (last id, id -> floor version).
    writes: Mutex<(u64, BTreeMap<u64, Version>)>,
    /// One checkpoint at a time.
    checkpointing: tokio::sync::Mutex<()>,
    /// Time between the `checkpoint` worker's rounds.
    pub(super) interval: Duration,
}

/// A write request in flight; its floor leaves the registry when it is dropped.
#[derive(Debug)]
pub(crate) struct Writing<'a> {
    catalog: &'a Catalog,
    id: u64,
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        let mut w = self
            .catalog
            .writes
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        w.1.remove(&self.id);
    }
}

/// What one checkpoint did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CheckpointMade {
    /// Sequence number.
    pub seq: u64,
    /// Keys covered.
    pub leaves: u64,
    /// Keys left out (written while it was made).
    pub excluded: u64,
    /// Nodes that stored it.
    pub stored_at: u64,
    /// False when nothing changed since the last one (which is described instead).
    pub new: bool,
}

impl Catalog {
    pub(super) fn new(objects: Arc<Objects>, index: Arc<Index>, interval: Duration) -> Self {
        Self {
            objects,
            index,
            writes: Mutex::new((0, BTreeMap::new())),
            checkpointing: tokio::sync::Mutex::new(()),
            interval,
        }
    }

    /// Registers a write request: versions it stamps stay out of checkpoints, and a repair
    /// pass does not settle them as cut short (`intents.rs`), until it ends. Every request
    /// that writes a manifest registers (the parts of uploads too, for the checkpoints).
    pub(crate) fn writing(&self) -> Writing<'_> {
        let floor = self.objects.stamp_floor();
        let mut w = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        w.0 += 1;
        let id = w.0;
        w.1.insert(id, floor);
        Writing { catalog: self, id }
    }

    /// Versions whose commit order is up to this one are committed or given up: the oldest
    /// write floor, or now.
    pub(super) fn cutoff(&self) -> Version {
        let oldest = {
            let w = self.writes.lock().unwrap_or_else(|e| e.into_inner());
            w.1.values().min().copied()
        };
        oldest.unwrap_or_else(|| self.objects.stamp_floor())
    }

    /// The newest checkpoint: the gateway's own, or (a new or recovered gateway) the newest
    /// one at the nodes whose signature holds.
    pub(crate) async fn last_checkpoint(&self) -> Option<Checkpoint> {
        if let Ok(Some(b)) = self.index.meta_get("checkpoint")
            && let Ok(c) = Checkpoint::decode(&b)
        {
            return Some(c);
        }
        let key = self.objects.checkpoint_key();
        let mut best: Option<Checkpoint> = None;
        for node in self.objects.node_ids() {
            let Some(c) = self.objects.nodes().client(node) else {
                continue;
            };
            let Ok(Ok(records)) =
                tokio::time::timeout(Duration::from_secs(5), c.checkpoints(1)).await
            else {
                continue;
            };
            for cp in verified(&records, &key) {
                if best.as_ref().is_none_or(|b| b.seq < cp.seq) {
                    best = Some(cp);
                }
            }
        }
        best
    }

    /// Makes a checkpoint if the index changed since the last one, and sends it to every node.
    pub async fn checkpoint(&self) -> anyhow::Result<CheckpointMade> {
        let _one = self.checkpointing.lock().await;
        let cutoff = self.cutoff();
        let max = self.index.max_order()?;
        let prev = self.last_checkpoint().await;
        let max_bytes = max.map(|v| v.to_bytes().to_vec()).unwrap_or_default();
        // Unchanged, and the last one covered every version (it was not made while a write
        // newer than its cutoff was in flight).
        if let Some(p) = &prev
            && self.index.meta_get("checkpoint_max")?.as_deref() == Some(&max_bytes[..])
            && max.is_none_or(|m| m <= p.cutoff)
        {
            return Ok(CheckpointMade {
                seq: p.seq,
                leaves: p.leaves,
                excluded: p.excluded.len() as u64,
                stored_at: 0,
                new: false,
            });
        }
        let (index, objects) = (self.index.clone(), self.objects.clone());
        let (entries, excluded) = tokio::task::spawn_blocking(move || {
            // Every version kept, but no version of a key one of whose versions is newer than
            // the cutoff (that write may have replaced another). A key's versions come newest
            // first: its first says.
            let mut entries = Vec::new();
            let mut excluded: Vec<ObjectId> = Vec::new();
            index.for_each_version(false, |bucket, key, e| {
                if bucket.contains(HIDDEN) {
                    return;
                }
                let id = objects.object_id(bucket, key);
                if excluded.last() == Some(&id) {
                    return;
                }
                // Committed before every write in flight began: theirs order after it.
                if e.order <= cutoff {
                    entries.push((id, e.version, e.deleted));
                } else {
                    excluded.push(id);
                }
            })?;
            Ok::<_, MetaError>((entries, excluded))
        })
        .await??;
        if excluded.len() > MAX_EXCLUDED {
            anyhow::bail!(
                "{} keys were written while the checkpoint was made (at most {}): trying again \
                 next interval",
                excluded.len(),
                MAX_EXCLUDED
            );
        }
        let (leaves, root) = root_of(entries);
        let mut c = Checkpoint {
            seq: prev.as_ref().map_or(1, |p| p.seq + 1),
            created_ms: now_ms(),
            cutoff,
            leaves,
            root,
            prev: prev.as_ref().map_or([0; 32], Checkpoint::hash),
            excluded,
            signature: [0; 64],
        };
        c.signature = self.objects.checkpoint_key().sign(&c.signed_bytes());
        let bytes = c.encode();
        self.index.meta_set("checkpoint", &bytes)?;
        self.index.meta_set("checkpoint_max", &max_bytes)?;
        let puts = self.objects.node_ids().into_iter().filter_map(|n| {
            let client = self.objects.nodes().client(n).cloned()?;
            let bytes = bytes.clone();
            Some(async move {
                matches!(
                    tokio::time::timeout(Duration::from_secs(10), client.put_checkpoint(bytes))
                        .await,
                    Ok(Ok(()))
                )
            })
        });
        let stored_at = futures::future::join_all(puts)
            .await
            .into_iter()
            .filter(|ok| *ok)
            .count() as u64;
        tracing::info!(
            seq = c.seq,
            leaves,
            excluded = c.excluded.len(),
            stored_at,
            "catalog checkpoint"
        );
        Ok(CheckpointMade {
            seq: c.seq,
            leaves,
            excluded: c.excluded.len() as u64,
            stored_at,
            new: true,
        })
    }
}
