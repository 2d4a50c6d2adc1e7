//! Scrub: every stored shard is read back (shard files through the mmap, inline shards from
//! the database) and checked against its header: the header decodes and names the shard it is
//! filed under, the length fits the geometry, every block's CRC matches. What fails is
//! quarantined (moved aside, never deleted) and recorded as a finding for the gateway to
//! repair. Progress is a cursor in the database, so a restart resumes where it stopped.

use redb::{ReadableDatabase, ReadableTable};

use super::{
    FINDINGS, HEADERS, INLINE_DISK, QUARANTINE, SCRUB_STATE, Store, StoreError, db_err,
    ledger_entry, split_row,
};
use crate::core::format::ShardHeader;
use crate::core::hlc::Version;
use crate::core::ids::ObjectId;
use crate::core::stripe::BlockHash;
use crate::core::wire::ShardKey;

/// What one scrub step did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScrubStep {
    /// Shards checked.
    pub shards: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Shards found bad (recorded for repair; quarantined when unusable as a whole), and why.
    pub bad: Vec<(ShardKey, String)>,
    /// The pass reached the end of the shards.
    pub finished: bool,
}

/// What scrub found wrong with a shard.
#[derive(Debug)]
enum ShardFault {
    /// Unusable as a whole (its header, its file, its length, or every block): quarantined.
    Whole(String),
    /// Some blocks fail their CRC or hash (stripe, why); the others are good and stay.
    Blocks(Vec<(u64, &'static str)>),
}

/// "block 3 fails its CRC; block 5 does not match its hash", at most a few named.
fn describe(bad: &[(u64, &'static str)]) -> String {
    let mut parts: Vec<String> = bad
        .iter()
        .take(4)
        .map(|(s, why)| format!("block {s} {why}"))
        .collect();
    if bad.len() > 4 {
        parts.push(format!("{} more", bad.len() - 4));
    }
    parts.join("; ")
}

/// Scrub progress, as `status` reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScrubState {
    /// When the last full pass finished, ms since the epoch (0: never).
    pub last_complete_ms: u64,
    /// A pass is under way (a cursor is stored).
    pub in_progress: bool,
    /// Findings not yet collected by a gateway.
    pub findings: u64,
    /// Entries in the quarantine ledger.
    pub quarantined: u64,
}

fn key_from(b: &[u8]) -> Option<ShardKey> {
    if b.len() != 49 {
        return None;
    }
    let mut object = [0u8; 32];
    object.copy_from_slice(&b[..32]);
    let mut version = [0u8; 16];
    version.copy_from_slice(&b[32..48]);
    Some(ShardKey {
        object: ObjectId(object),
        version: Version::from_bytes(version),
        shard: b[48],
    })
}

impl Store {
    fn scrub_cursor(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(SCRUB_STATE).map_err(db_err)?;
        Ok(t.get("cursor").map_err(db_err)?.map(|v| v.value().to_vec()))
    }

    /// Where scrub stands.
    pub fn scrub_state(&self) -> Result<ScrubState, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(SCRUB_STATE).map_err(db_err)?;
        let last = t
            .get("last_complete_ms")
            .map_err(db_err)?
            .and_then(|v| v.value().try_into().ok().map(u64::from_le_bytes))
            .unwrap_or(0);
        let in_progress = t.get("cursor").map_err(db_err)?.is_some();
        let f = txn.open_table(FINDINGS).map_err(db_err)?;
        let q = txn.open_table(QUARANTINE).map_err(db_err)?;
        use redb::ReadableTableMetadata as _;
        Ok(ScrubState {
            last_complete_ms: last,
            in_progress,
            findings: f.len().map_err(db_err)?,
            quarantined: q.len().map_err(db_err)?,
        })
    }

    /// The bytes of one stored shard checked against its header: their count, or what is
    /// wrong.
    fn check_shard(&self, key: &ShardKey, record: &[u8]) -> Result<u64, ShardFault> {
        let whole = |why: String| ShardFault::Whole(why);
        let (disk, header, inline) =
            split_row(record).map_err(|_| whole("short header record".into()))?;
        let header = ShardHeader::decode(header).map_err(|e| whole(format!("header: {e}")))?;
        if header.object != key.object
            || header.version != key.version
            || header.shard_index.0 != key.shard
        {
            return Err(whole("the header names another shard (misfiled)".into()));
        }
        let g = header
            .geometry()
            .map_err(|e| whole(format!("header: {e}")))?;
        let file;
        let data: &[u8] = match inline {
            Some(data) => data,
            None => match self.map_shard(disk, key) {
                Ok(d) => {
                    file = d;
                    &file
                }
                Err(StoreError::NotFound) => return Err(whole("shard file missing".into())),
                Err(e) => return Err(whole(e.to_string())),
            },
        };
        let inline = inline.is_some();
        if data.len() as u64 != g.shard_len() {
            return Err(whole(format!(
                "length {} where the header says {}",
                data.len(),
                g.shard_len()
            )));
        }
        let n = usize::from(header.k) + usize::from(header.m);
        let mut bad = Vec::new();
        for s in 0..g.stripe_count() {
            let start = g.block_offset(s) as usize;
            let block = &data[start..start + g.block_len(s)];
            if header.crcs.get(s as usize) != Some(&crc32fast::hash(block)) {
                bad.push((s, "fails its CRC"));
                continue;
            }
            // The CRC guards against rot; the hash (which every shard's header carries for
            // every block) against a host that rewrites bytes and their CRCs.
            let want = header
                .block_hashes
                .get(s as usize * n + usize::from(key.shard));
            if want != Some(&BlockHash::of(block)) {
                bad.push((s, "does not match its hash"));
            }
        }
        match bad.len() {
            0 => Ok(data.len() as u64),
            // An inline shard is one record: unusable as a whole.
            _ if inline => Err(whole(describe(&bad))),
            // Every block bad is a whole file gone bad (zeroed, another shard's bytes).
            b if b as u64 == g.stripe_count() => Err(whole(describe(&bad))),
            _ => Err(ShardFault::Blocks(bad)),
        }
    }

    /// Checks shards after the stored cursor until about `budget` bytes are read; bad ones are
    /// quarantined and recorded as findings. The cursor is saved, so a restart resumes.
    pub fn scrub_step(&self, budget: u64, now_ms: u64) -> Result<ScrubStep, StoreError> {
        let cursor = self.scrub_cursor()?;
        let mut batch: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut finished = true;
        {
            let txn = self.db.begin_read().map_err(db_err)?;
            let t = txn.open_table(HEADERS).map_err(db_err)?;
            let iter = match &cursor {
                Some(c) => t.range::<&[u8]>(&c[..]..).map_err(db_err)?,
                None => t.iter().map_err(db_err)?,
            };
            for item in iter {
                let (k, v) = item.map_err(db_err)?;
                if cursor.as_deref() == Some(k.value()) {
                    continue;
                }
                batch.push((k.value().to_vec(), v.value().to_vec()));
                if batch.len() >= 64 {
                    finished = false;
                    break;
                }
            }
        }
        let mut step = ScrubStep::default();
        let mut last: Option<Vec<u8>> = None;
        for (k, v) in batch {
            let Some(key) = key_from(&k) else { continue };
            match self.check_shard(&key, &v) {
                Ok(n) => step.bytes += n,
                // Collected since the batch was read (`collect.rs`): nothing to judge.
                Err(_) if matches!(self.header(&key), Err(StoreError::NotFound)) => {}
                Err(ShardFault::Whole(why)) => {
                    tracing::warn!(shard = ?key, reason = %why, "scrub: bad shard, quarantined");
                    self.quarantine_any(&key, &format!("scrub: {why}"), now_ms)?;
                    self.record_finding(&key)?;
                    step.bad.push((key, why));
                }
                Err(ShardFault::Blocks(blocks)) => {
                    // The good blocks keep serving reads and repair; repair rewrites the shard
                    // (the old file then goes to quarantine).
                    let why = describe(&blocks);
                    tracing::warn!(shard = ?key, reason = %why, "scrub: bad blocks, recorded for repair");
                    self.record_finding(&key)?;
                    step.bad.push((key, why));
                }
            }
            step.shards += 1;
            last = Some(k);
            if step.bytes >= budget {
                finished = false;
                break;
            }
        }
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut st = txn.open_table(SCRUB_STATE).map_err(db_err)?;
            if finished && (last.is_none() || step.bytes < budget) {
                st.remove("cursor").map_err(db_err)?;
                st.insert("last_complete_ms", &now_ms.to_le_bytes()[..])
                    .map_err(db_err)?;
                step.finished = true;
            } else if let Some(l) = &last {
                st.insert("cursor", &l[..]).map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)?;
        Ok(step)
    }

    /// Quarantines a shard file or an inline shard.
    fn quarantine_any(&self, key: &ShardKey, reason: &str, now_ms: u64) -> Result<(), StoreError> {
        match self.header(key) {
            Ok((disk, _)) if disk == INLINE_DISK => {
                self.quarantine_record(key, reason, now_ms, true)
            }
            Ok(_) => self.quarantine(key, reason, now_ms).map(|_| ()),
            // A header that does not decode: the record itself goes to the ledger.
            Err(StoreError::Format(_)) | Err(StoreError::BadShard(_)) => {
                self.quarantine_record(key, reason, now_ms, false)
            }
            Err(e) => Err(e),
        }
    }

    /// Moves a shard's row (for an inline shard, with its bytes) into the quarantine ledger in
    /// one commit.
    fn quarantine_record(
        &self,
        key: &ShardKey,
        reason: &str,
        now_ms: u64,
        inline: bool,
    ) -> Result<(), StoreError> {
        let k = key.to_bytes();
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut h = txn.open_table(HEADERS).map_err(db_err)?;
            let record = h
                .remove(&k[..])
                .map_err(db_err)?
                .map(|v| v.value().to_vec())
                .unwrap_or_default();
            let (qkey, rec) = ledger_entry(&k, now_ms, inline, reason, &record);
            let mut q = txn.open_table(QUARANTINE).map_err(db_err)?;
            q.insert(&qkey[..], &rec[..]).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }

    fn record_finding(&self, key: &ShardKey) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut f = txn.open_table(FINDINGS).map_err(db_err)?;
            f.insert(&key.to_bytes()[..], &[][..]).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }

    /// Shards found bad and not yet collected.
    pub fn findings(&self, limit: usize) -> Result<Vec<ShardKey>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(FINDINGS).map_err(db_err)?;
        let mut out = Vec::new();
        for item in t.iter().map_err(db_err)? {
            let (k, _) = item.map_err(db_err)?;
            if let Some(key) = key_from(k.value()) {
                out.push(key);
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Forgets findings a gateway has recorded for repair.
    pub fn clear_findings(&self, keys: &[ShardKey]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut f = txn.open_table(FINDINGS).map_err(db_err)?;
            for k in keys {
                f.remove(&k.to_bytes()[..]).map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)
    }

    /// Starts a new full pass at the next step (on demand).
    pub fn restart_scrub(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut st = txn.open_table(SCRUB_STATE).map_err(db_err)?;
            st.remove("cursor").map_err(db_err)?;
            st.insert("requested", &[1u8][..]).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }

    /// Whether a pass was requested on demand (and clears the request).
    pub fn take_scrub_request(&self) -> Result<bool, StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let requested = {
            let mut st = txn.open_table(SCRUB_STATE).map_err(db_err)?;
            st.remove("requested").map_err(db_err)?.is_some()
        };
        txn.commit().map_err(db_err)?;
        Ok(requested)
    }
}
