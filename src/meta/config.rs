//! Each bucket's configuration (versioning, object lock), as its own record at the nodes
//! last said it (`VersionState::bucket`): a cache the gateway reads on every write. A bucket
//! with no row has never been configured: unversioned, no lock.

use redb::{ReadableDatabase as _, TableDefinition};

use super::{BUCKETS, Index, MetaError, db_err};
use crate::core::format::{BucketConfig, DefaultRetention, LockMode, Versioning};
use crate::core::lifecycle::Lifecycle;

/// Bucket name → encoded [`BucketConfig`].
pub(super) const BUCKET_CONFIG: TableDefinition<'_, &str, &[u8]> =
    TableDefinition::new("bucket_config");
/// Bucket name → its lifecycle configuration (JSON), as its own record carries it.
pub(super) const BUCKET_LIFECYCLE: TableDefinition<'_, &str, &[u8]> =
    TableDefinition::new("bucket_lifecycle");
/// (Bucket name, setting) → the setting as its own record carries it: `policy` (JSON, as it
/// was put), `tagging` and `cors` (their stored forms).
pub(super) const BUCKET_EXTRA: TableDefinition<'_, (&str, &str), &str> =
    TableDefinition::new("bucket_extra");

/// The settings [`BUCKET_EXTRA`] holds.
pub const BUCKET_EXTRAS: [&str; 3] = ["policy", "tagging", "cors"];

fn versioning_byte(v: Versioning) -> u8 {
    match v {
        Versioning::Unversioned => 0,
        Versioning::Enabled => 1,
        Versioning::Suspended => 2,
    }
}

fn mode_byte(m: LockMode) -> u8 {
    match m {
        LockMode::Governance => 0,
        LockMode::Compliance => 1,
    }
}

/// versioning, object lock, then (when there is a default retention) mode, years, period.
fn encode(c: &BucketConfig) -> Vec<u8> {
    let mut v = vec![versioning_byte(c.versioning), u8::from(c.object_lock)];
    if let Some(d) = &c.default_retention {
        v.push(mode_byte(d.mode));
        v.push(u8::from(d.years));
        v.extend_from_slice(&d.period.to_le_bytes());
    }
    v
}

fn decode(b: &[u8]) -> Result<BucketConfig, MetaError> {
    let versioning = match b.first() {
        Some(0) => Versioning::Unversioned,
        Some(1) => Versioning::Enabled,
        Some(2) => Versioning::Suspended,
        _ => return Err(MetaError::Malformed),
    };
    let object_lock = match b.get(1) {
        Some(0) => false,
        Some(1) => true,
        _ => return Err(MetaError::Malformed),
    };
    let default_retention = match b.get(2..) {
        Some([]) => None,
        Some([mode, years, p0, p1, p2, p3]) => Some(DefaultRetention {
            mode: match mode {
                0 => LockMode::Governance,
                1 => LockMode::Compliance,
                _ => return Err(MetaError::Malformed),
            },
            years: *years != 0,
            period: u32::from_le_bytes([*p0, *p1, *p2, *p3]),
        }),
        _ => return Err(MetaError::Malformed),
    };
    Ok(BucketConfig {
        versioning,
        object_lock,
        default_retention,
    })
}

/// A bucket that was never configured.
pub fn unconfigured() -> BucketConfig {
    BucketConfig {
        versioning: Versioning::Unversioned,
        object_lock: false,
        default_retention: None,
    }
}

impl Index {
    /// Forgets a bucket; false if it did not exist. The caller checks it is empty.
    pub fn delete_bucket(&self, bucket: &str) -> Result<bool, MetaError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let existed = {
            let mut t = txn.open_table(BUCKETS).map_err(db_err)?;
            txn.open_table(BUCKET_CONFIG)
                .map_err(db_err)?
                .remove(bucket)
                .map_err(db_err)?;
            txn.open_table(BUCKET_LIFECYCLE)
                .map_err(db_err)?
                .remove(bucket)
                .map_err(db_err)?;
            let mut extra = txn.open_table(BUCKET_EXTRA).map_err(db_err)?;
            for name in BUCKET_EXTRAS {
                extra.remove((bucket, name)).map_err(db_err)?;
            }
            t.remove(bucket).map_err(db_err)?.is_some()
        };
        txn.commit().map_err(db_err)?;
        Ok(existed)
    }

    /// The configuration of `bucket` (unconfigured when none was ever written), None when
    /// there is no such bucket: one read of the index for every write. An error is the
    /// caller's to refuse on: a request that needs it is never served as unversioned.
    pub fn bucket_config(&self, bucket: &str) -> Result<Option<BucketConfig>, MetaError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        if txn
            .open_table(BUCKETS)
            .map_err(db_err)?
            .get(bucket)
            .map_err(db_err)?
            .is_none()
        {
            return Ok(None);
        }
        let t = txn.open_table(BUCKET_CONFIG).map_err(db_err)?;
        match t.get(bucket).map_err(db_err)? {
            Some(v) => decode(v.value()).map(Some),
            None => Ok(Some(unconfigured())),
        }
    }

    /// Sets the configuration of `bucket`, as its current own record says (None: forgets it,
    /// for a bucket deleted or whose record carries none).
    pub fn set_bucket_config(
        &self,
        bucket: &str,
        config: Option<&BucketConfig>,
    ) -> Result<(), MetaError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = txn.open_table(BUCKET_CONFIG).map_err(db_err)?;
            match config {
                Some(c) => {
                    t.insert(bucket, &encode(c)[..]).map_err(db_err)?;
                }
                None => {
                    t.remove(bucket).map_err(db_err)?;
                }
            }
        }
        txn.commit().map_err(db_err)
    }
}

impl Index {
    /// The lifecycle configuration of `bucket`, if it has one.
    pub fn bucket_lifecycle(&self, bucket: &str) -> Result<Option<Lifecycle>, MetaError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(BUCKET_LIFECYCLE).map_err(db_err)?;
        t.get(bucket)
            .map_err(db_err)?
            .map(|v| serde_json::from_slice(v.value()).map_err(|_| MetaError::Malformed))
            .transpose()
    }

    /// Every bucket's lifecycle configuration, in bucket order.
    pub fn lifecycles(&self) -> Result<Vec<(String, Lifecycle)>, MetaError> {
        use redb::ReadableTable as _;
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(BUCKET_LIFECYCLE).map_err(db_err)?;
        let mut out = Vec::new();
        for item in t.iter().map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            let lc = serde_json::from_slice(v.value()).map_err(|_| MetaError::Malformed)?;
            out.push((k.value().to_owned(), lc));
        }
        Ok(out)
    }

    /// The policy of `bucket`, if it has one (JSON, as it was put).
    pub fn bucket_policy(&self, bucket: &str) -> Result<Option<String>, MetaError> {
        self.bucket_extra(bucket, "policy")
    }

    /// The setting `name` (one of [`BUCKET_EXTRAS`]) of `bucket`, if it has it.
    pub fn bucket_extra(&self, bucket: &str, name: &str) -> Result<Option<String>, MetaError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(BUCKET_EXTRA).map_err(db_err)?;
        Ok(t.get((bucket, name))
            .map_err(db_err)?
            .map(|v| v.value().to_owned()))
    }

    /// Sets (None: forgets) the setting `name` of `bucket`, as its current own record says.
    pub fn set_bucket_extra(
        &self,
        bucket: &str,
        name: &str,
        value: Option<&str>,
    ) -> Result<(), MetaError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = txn.open_table(BUCKET_EXTRA).map_err(db_err)?;
            match value {
                Some(v) => {
                    t.insert((bucket, name), v).map_err(db_err)?;
                }
                None => {
                    t.remove((bucket, name)).map_err(db_err)?;
                }
            }
        }
        txn.commit().map_err(db_err)
    }

    /// Sets (None: forgets) the lifecycle configuration of `bucket`, as its current own record
    /// says.
    pub fn set_bucket_lifecycle(
        &self,
        bucket: &str,
        lifecycle: Option<&Lifecycle>,
    ) -> Result<(), MetaError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = txn.open_table(BUCKET_LIFECYCLE).map_err(db_err)?;
            match lifecycle {
                Some(lc) => {
                    let v = serde_json::to_vec(lc).map_err(|_| MetaError::Malformed)?;
                    t.insert(bucket, &v[..]).map_err(db_err)?;
                }
                None => {
                    t.remove(bucket).map_err(db_err)?;
                }
            }
        }
        txn.commit().map_err(db_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configuration_reads_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("index.redb")).unwrap();
        assert_eq!(index.bucket_config("b").unwrap(), None);
        assert!(index.create_bucket("b", 1).unwrap());
        assert_eq!(index.bucket_config("b").unwrap(), Some(unconfigured()));
        let locked = BucketConfig {
            versioning: Versioning::Enabled,
            object_lock: true,
            default_retention: Some(DefaultRetention {
                mode: LockMode::Compliance,
                period: 7,
                years: true,
            }),
        };
        for c in [
            locked,
            BucketConfig {
                versioning: Versioning::Suspended,
                ..unconfigured()
            },
        ] {
            index.set_bucket_config("b", Some(&c)).unwrap();
            assert_eq!(index.bucket_config("b").unwrap(), Some(c));
        }
        index.set_bucket_config("b", None).unwrap();
        assert_eq!(index.bucket_config("b").unwrap(), Some(unconfigured()));
        assert!(decode(&[1, 1, 3]).is_err());
        assert!(decode(&[3, 0]).is_err());
    }
}
