//! The access keys (`core::access::KeyRecord`, JSON), by access key id: a cache of their
//! records at the nodes, rebuilt from them with the rest of the index.

use redb::{ReadableDatabase as _, ReadableTable as _, TableDefinition};

use super::{Index, MetaError, db_err};

/// Access key id → its record (JSON).
pub(super) const ACCESS_KEYS: TableDefinition<'_, &str, &[u8]> =
    TableDefinition::new("access_keys");

impl Index {
    /// Sets (None: removes) the record of access key `id`.
    pub fn set_access_key(&self, id: &str, record: Option<&[u8]>) -> Result<(), MetaError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = txn.open_table(ACCESS_KEYS).map_err(db_err)?;
            match record {
                Some(r) => {
                    t.insert(id, r).map_err(db_err)?;
                }
                None => {
                    t.remove(id).map_err(db_err)?;
                }
            }
        }
        txn.commit().map_err(db_err)
    }

    /// Every access key's record, by id.
    pub fn access_keys(&self) -> Result<Vec<(String, Vec<u8>)>, MetaError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(ACCESS_KEYS).map_err(db_err)?;
        let mut out = Vec::new();
        for item in t.iter().map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            out.push((k.value().to_owned(), v.value().to_vec()));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_set_listed_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("index.redb")).unwrap();
        assert!(index.access_keys().unwrap().is_empty());
        index.set_access_key("B", Some(b"two")).unwrap();
        index.set_access_key("A", Some(b"one")).unwrap();
        index.set_access_key("A", Some(b"one'")).unwrap();
        assert_eq!(
            index.access_keys().unwrap(),
            vec![
                ("A".into(), b"one'".to_vec()),
                ("B".into(), b"two".to_vec())
            ]
        );
        index.set_access_key("A", None).unwrap();
        assert_eq!(index.access_keys().unwrap().len(), 1);
    }
}
