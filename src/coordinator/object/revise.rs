//! One version by its identity: read (a GET of a `versionId`) and removed (a DELETE of one).
//! A removal writes a copy of the version whose state says so, with a later `revised`: the
//! read quorum keeps each version's best copy, so the copy hides it everywhere it is read,
//! and an index rebuilt from the nodes sees it removed (`docs/decisions/versioning.md`).

use std::sync::Arc;

use super::{Missed, ObjectError, Objects, to_targets};
use crate::core::format::{Manifest, ManifestBody};
use crate::core::hlc::Version;

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

    /// Removes the version `m` is a copy of: writes, to the manifest nodes of its placement,
    /// a copy marked removed and revised now. Reads on this gateway pass over the version
    /// while the write is under way; the write runs to its end even if the caller stops
    /// waiting. A write short of its quorum withdraws nothing (the version stays acknowledged);
    /// the nodes that took the copy hide it, and heal carries the copy to the rest.
    pub async fn remove(self: &Arc<Self>, m: &Manifest) -> Result<(Manifest, Missed), ObjectError> {
        let mut copy = m.clone();
        copy.state.removed = true;
        let this = self.clone();
        tokio::spawn(async move {
            copy.state.revised = this.stamp();
            let targets = match &copy.body {
                ManifestBody::Object(meta) => to_targets(&meta.placement),
                ManifestBody::Tombstone => this.targets(&copy.object),
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
}
