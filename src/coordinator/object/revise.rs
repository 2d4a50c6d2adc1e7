//! One version by its identity: read (a GET of a `versionId`), revised (its retention or
//! legal hold changed) and removed (a DELETE of one). A revision writes a copy of the version
//! whose state says what changed, with a later `revised`: the read quorum keeps each
//! version's best copy, so the copy wins everywhere it is read, and an index rebuilt from the
//! nodes sees it (`docs/decisions/versioning.md`).

use std::sync::Arc;

use super::{Missed, ObjectError, Objects, to_targets};
use crate::core::format::{Manifest, ManifestBody};
use crate::core::hlc::Version;
use crate::sys::now_ms;

impl Objects {
    /// Version `identity` of (bucket, key) at a read quorum, unless no node holds it or it
    /// was removed. `floor` is its order when the caller knows it was acknowledged (the
    /// gateway's index): the nodes beyond the read quorum are then waited for too, and if
    /// none holds it the answer is [`ObjectError::Behind`].
    pub async fn version(
        &self,
        bucket: &str,
        key: &str,
        identity: Version,
        floor: Option<Version>,
    ) -> Result<Option<Manifest>, ObjectError> {
        let object = self.manifest_key.object_id(bucket, key);
        for targets in self.placements_of(&object) {
            if let Some(m) = self
                .head_at(object, &targets, floor, Some(identity))
                .await?
            {
                return Ok(Some(m));
            }
        }
        match floor {
            Some(floor) => Err(ObjectError::Behind { found: None, floor }),
            None => Ok(None),
        }
    }

    /// Revises the version `m` is a copy of: writes, to the manifest nodes of its placement,
    /// a copy whose state `change` made, revised now. Reads on this gateway pass over the
    /// version while the write is under way; the write runs to its end even if the caller
    /// stops waiting. A write short of its quorum withdraws nothing (the version stays
    /// acknowledged as it was; the nodes that took the copy serve it as the best).
    pub async fn revise(
        self: &Arc<Self>,
        m: &Manifest,
        change: impl FnOnce(&mut Manifest) + Send + 'static,
    ) -> Result<(Manifest, Missed), ObjectError> {
        let mut copy = m.clone();
        change(&mut copy);
        let this = self.clone();
        tokio::spawn(async move {
            copy.state.revised = this.stamp();
            let targets = match &copy.body {
                ManifestBody::Object(meta) => to_targets(&meta.placement),
                ManifestBody::Tombstone | ManifestBody::Parts(_) => this.targets(&copy.object),
            };
            let mark = this.committing(copy.object, copy.version);
            let written = this.write_records(&copy, &targets).await;
            mark.finish();
            match written? {
                Ok((all, _)) => Ok((
                    copy,
                    Missed {
                        shards: Vec::new(),
                        manifest: !all,
                    },
                )),
                Err((durable, needed)) => Err(ObjectError::ManifestQuorum { durable, needed }),
            }
        })
        .await
        .map_err(|e| ObjectError::Internal(e.to_string()))?
    }

    /// Removes the version `m` is a copy of for good: [`Self::revise`] marking it removed.
    pub async fn remove(self: &Arc<Self>, m: &Manifest) -> Result<(Manifest, Missed), ObjectError> {
        self.revise(m, |m| m.state.removed = true).await
    }

    /// The time object lock retention is judged at: the earlier of this gateway's clock and
    /// the time a majority of all the nodes' clocks have reached, so that neither the gateway's
    /// clock nor a minority of nodes' jumping forward releases a lock early. Fails (and the
    /// caller refuses the removal) when fewer than a majority answer.
    pub async fn cluster_now(&self) -> Result<u64, ObjectError> {
        let nodes = self.node_ids();
        let needed = nodes.len() / 2 + 1;
        let mut set = tokio::task::JoinSet::new();
        for n in nodes {
            let (client, timeout) = (self.nodes.client(n).cloned(), self.write_timeout);
            set.spawn(async move {
                let c = client?;
                tokio::time::timeout(timeout, c.clock()).await.ok()?.ok()
            });
        }
        let mut clocks = Vec::new();
        while let Some(r) = set.join_next().await {
            if let Ok(Some(t)) = r {
                clocks.push(t);
            }
        }
        let answered = clocks.len();
        agreed_time(clocks, needed, now_ms()).ok_or(ObjectError::ReadQuorum { answered, needed })
    }
}

/// The earlier of `gateway` and the time at least `needed` of the `clocks` have reached; None
/// when fewer answered.
fn agreed_time(mut clocks: Vec<u64>, needed: usize, gateway: u64) -> Option<u64> {
    clocks.sort_unstable_by(|a, b| b.cmp(a));
    clocks.get(needed.checked_sub(1)?).map(|&t| t.min(gateway))
}

#[cfg(test)]
mod tests {
    use super::agreed_time;

    #[test]
    fn no_clock_alone_nor_a_minority_of_them_moves_the_time_a_lock_is_judged_at() {
        // Five nodes, a majority of three.
        assert_eq!(
            agreed_time(vec![100, 100, 100, 100, 100], 3, 100),
            Some(100)
        );
        // Two hosts far ahead: the time the third latest has reached.
        assert_eq!(
            agreed_time(vec![9_000, 9_000, 100, 101, 99], 3, 200),
            Some(101)
        );
        // The gateway ahead: the nodes' time.
        assert_eq!(agreed_time(vec![100, 100, 100], 3, 9_000), Some(100));
        // The gateway behind: its time.
        assert_eq!(agreed_time(vec![100, 100, 100], 3, 50), Some(50));
        // Too few answers: no time at all (the removal is refused).
        assert_eq!(agreed_time(vec![100, 100], 3, 100), None);
        assert_eq!(agreed_time(vec![], 0, 100), None);
    }
}
