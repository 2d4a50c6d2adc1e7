//! Object versions the repair backlog gave up on: committed versions that some stripe has
//! fewer than k good blocks of, at sites that all answered. They leave the backlog (which
//! drains) with an account of why, for `status` and `heal` to name; every `heal` tries them
//! again, in case a site that lost them has them back.

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{Index, MetaError, REPAIRS, db_err, parse_version_key};
use crate::core::hlc::{Version, version_key};
use crate::core::ids::ObjectId;

/// (object id, version) → [`LostRecord`] as JSON.
pub(super) const UNREBUILDABLE: TableDefinition<'_, &[u8], &[u8]> =
    TableDefinition::new("unrebuildable");

/// Why a version cannot be rebuilt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostRecord {
    /// Its bucket.
    pub bucket: String,
    /// Its key.
    pub key: String,
    /// The shards the backlog held for it.
    pub shards: Vec<usize>,
    /// Good blocks left in its worst stripe (or good shards left).
    pub good: usize,
    /// k.
    pub needed: usize,
    /// When repair gave up, ms since the epoch.
    pub found_ms: u64,
}

impl Index {
    /// Moves (object, version) from the repair backlog to the versions given up on.
    pub fn give_up_repair(
        &self,
        object: &ObjectId,
        version: Version,
        rec: &LostRecord,
    ) -> Result<(), MetaError> {
        let k = version_key(object, version);
        let v = serde_json::to_vec(rec).map_err(|_| MetaError::Malformed)?;
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            txn.open_table(REPAIRS)
                .map_err(db_err)?
                .remove(&k[..])
                .map_err(db_err)?;
            txn.open_table(UNREBUILDABLE)
                .map_err(db_err)?
                .insert(&k[..], &v[..])
                .map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }

    /// Every version given up on.
    pub fn unrebuildable(&self) -> Result<Vec<(ObjectId, Version, LostRecord)>, MetaError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(UNREBUILDABLE).map_err(db_err)?;
        let mut out = Vec::new();
        for item in t.iter().map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            let (object, version) = parse_version_key(k.value())?;
            let rec = serde_json::from_slice(v.value()).map_err(|_| MetaError::Malformed)?;
            out.push((object, version, rec));
        }
        Ok(out)
    }

    /// Puts every version given up on back into the repair backlog (for `heal` to try again);
    /// returns how many.
    pub fn retry_unrebuildable(&self) -> Result<usize, MetaError> {
        let lost = self.unrebuildable()?;
        if lost.is_empty() {
            return Ok(0);
        }
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut given_up = txn.open_table(UNREBUILDABLE).map_err(db_err)?;
            let mut repairs = txn.open_table(REPAIRS).map_err(db_err)?;
            for (object, version, rec) in &lost {
                let k = version_key(object, *version);
                given_up.remove(&k[..]).map_err(db_err)?;
                let mut shards: Vec<u8> = repairs
                    .get(&k[..])
                    .map_err(db_err)?
                    .map(|old| old.value().to_vec())
                    .unwrap_or_default();
                shards.extend(rec.shards.iter().map(|&s| s as u8));
                shards.sort_unstable();
                shards.dedup();
                repairs.insert(&k[..], &shards[..]).map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)?;
        Ok(lost.len())
    }
}
