//! Versions a write is about to make visible, recorded before any of their manifests is sent
//! and cleared when the index takes the version (acknowledged) or the gateway settles it. What
//! is left after a crash names every write the crash cut short: the gateway settles each one
//! (takes it, or withdraws it) before it serves a read (`gateway/intents.rs`).

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::{Index, MetaError, bucket_of, db_err, object_key};
use crate::core::hlc::Version;
use crate::core::ids::ObjectId;
use crate::sys::group::Apply;

/// (`object_key` of bucket and key, then the version's 16 bytes) → the object id, then the
/// commit order's 16 bytes (absent in rows written before versions had an order: their
/// version).
pub(super) const INTENTS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("intents");

/// A write begun and not yet settled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Intent {
    /// Its bucket.
    pub bucket: String,
    /// Its key.
    pub key: String,
    /// Its object.
    pub object: ObjectId,
    /// Its version.
    pub version: Version,
    /// Its commit order.
    pub order: Version,
}

/// The row key of (bucket, key, version).
pub(super) fn intent_key(bucket: &str, key: &str, version: Version) -> Vec<u8> {
    let mut k = object_key(bucket, key);
    k.extend_from_slice(&version.to_bytes());
    k
}

fn parse(k: &[u8], v: &[u8]) -> Result<Intent, MetaError> {
    let (name, version) = k
        .split_at_checked(k.len().saturating_sub(16))
        .filter(|(n, _)| n.len() >= 2)
        .ok_or(MetaError::Malformed)?;
    let bucket = bucket_of(name)?;
    let key = std::str::from_utf8(&name[2 + bucket.len()..]).map_err(|_| MetaError::Malformed)?;
    let version = Version::from_bytes(version.try_into().map_err(|_| MetaError::Malformed)?);
    let (object, order) = match v.len() {
        32 => (v, None),
        48 => (&v[..32], Some(&v[32..])),
        _ => return Err(MetaError::Malformed),
    };
    Ok(Intent {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        object: ObjectId(object.try_into().map_err(|_| MetaError::Malformed)?),
        version,
        order: order.map_or(Ok(version), |o| {
            o.try_into()
                .map(Version::from_bytes)
                .map_err(|_| MetaError::Malformed)
        })?,
    })
}

impl Index {
    /// Records, durably, that a version of (bucket, key), committing at `order`, is about to
    /// be written.
    pub fn intend(
        &self,
        bucket: &str,
        key: &str,
        object: &ObjectId,
        version: Version,
        order: Version,
    ) -> Result<(), MetaError> {
        self.group
            .write(intent_write(bucket, key, version, Some((object, order))))
            .map(|_| ())
    }

    /// [`Self::intend`] for a task: the commit is waited for without holding a thread.
    pub async fn intend_async(
        &self,
        bucket: &str,
        key: &str,
        object: &ObjectId,
        version: Version,
        order: Version,
    ) -> Result<(), MetaError> {
        self.group
            .write_async(intent_write(bucket, key, version, Some((object, order))))
            .await
            .map(|_| ())
    }

    /// Every write begun and not settled.
    pub fn intents(&self) -> Result<Vec<Intent>, MetaError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(INTENTS).map_err(db_err)?;
        let mut out = Vec::new();
        for item in t.iter().map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            out.push(parse(k.value(), v.value())?);
        }
        Ok(out)
    }

    /// Forgets a write begun: it is settled.
    pub fn settle_intent(
        &self,
        bucket: &str,
        key: &str,
        version: Version,
    ) -> Result<(), MetaError> {
        self.group
            .write(intent_write(bucket, key, version, None))
            .map(|_| ())
    }
}

/// Sets the intent row of (bucket, key, version) to (object, order), or clears it (None).
fn intent_write(
    bucket: &str,
    key: &str,
    version: Version,
    row: Option<(&ObjectId, Version)>,
) -> Apply<bool, MetaError> {
    let k = intent_key(bucket, key, version);
    let row = row.map(|(object, order)| {
        let mut row = [0u8; 48];
        row[..32].copy_from_slice(&object.0);
        row[32..].copy_from_slice(&order.to_bytes());
        row
    });
    Box::new(move |txn| {
        let mut t = txn.open_table(INTENTS).map_err(db_err)?;
        match &row {
            Some(r) => t.insert(&k[..], &r[..]).map(|_| ()),
            None => t.remove(&k[..]).map(|_| ()),
        }
        .map_err(db_err)?;
        Ok(true)
    })
}
