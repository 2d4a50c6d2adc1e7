//! Multipart uploads in progress: the upload's metadata and its parts. Part bodies are stored
//! in the cluster as hidden objects; this is the gateway's record of them.

use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

use super::{Index, MetaError, PARTS, UPLOADS, db_err};

/// An upload, as CreateMultipartUpload recorded it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRecord {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// Initiated, ms since the epoch.
    pub initiated_ms: u64,
    /// Content-Type.
    pub content_type: Option<String>,
    /// User metadata.
    pub user_metadata: Vec<(String, String)>,
    /// Other stored headers.
    pub headers: Vec<(String, String)>,
    /// Checksum algorithm the client asked for (S3 name), if any.
    pub checksum_algorithm: Option<String>,
    /// Object lock the upload asked for: mode (S3 name), retain-until (ms since the epoch),
    /// legal hold (S3 status). Applied at Complete.
    #[serde(default)]
    pub lock_mode: Option<String>,
    /// See `lock_mode`.
    #[serde(default)]
    pub lock_until_ms: Option<u64>,
    /// See `lock_mode`.
    #[serde(default)]
    pub legal_hold: Option<String>,
}

/// One uploaded part.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRecord {
    /// Size in bytes.
    pub size: u64,
    /// Hex MD5 of the part.
    pub etag: String,
    /// Uploaded, ms since the epoch.
    pub modified_ms: u64,
    /// The hidden object holding the part: its key in the upload's namespace.
    pub object_key: String,
    /// Checksums (S3 algorithm name, base64 value).
    pub checksums: Vec<(String, String)>,
}

fn part_key(upload: &str, part: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(upload.len() + 5);
    k.extend_from_slice(upload.as_bytes());
    k.push(0);
    k.extend_from_slice(&part.to_be_bytes());
    k
}

fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>, MetaError> {
    serde_json::to_vec(v).map_err(|_| MetaError::Malformed)
}

fn dec<T: for<'a> Deserialize<'a>>(b: &[u8]) -> Result<T, MetaError> {
    serde_json::from_slice(b).map_err(|_| MetaError::Malformed)
}

impl Index {
    /// Records a new upload.
    pub fn put_upload(&self, id: &str, rec: &UploadRecord) -> Result<(), MetaError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = txn.open_table(UPLOADS).map_err(db_err)?;
            t.insert(id, &enc(rec)?[..]).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }

    /// An upload, if it is in progress.
    pub fn upload(&self, id: &str) -> Result<Option<UploadRecord>, MetaError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(UPLOADS).map_err(db_err)?;
        let v = t.get(id).map_err(db_err)?;
        v.map(|v| dec(v.value())).transpose()
    }

    /// Every upload in progress, by id.
    pub fn uploads(&self) -> Result<Vec<(String, UploadRecord)>, MetaError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(UPLOADS).map_err(db_err)?;
        let mut out = Vec::new();
        for item in t.iter().map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            out.push((k.value().to_string(), dec(v.value())?));
        }
        Ok(out)
    }

    /// Records a part (replacing an earlier upload of the same number); returns the replaced
    /// record, whose hidden object the caller deletes.
    pub fn put_part(
        &self,
        id: &str,
        part: u32,
        rec: &PartRecord,
    ) -> Result<Option<PartRecord>, MetaError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let old = {
            let mut t = txn.open_table(PARTS).map_err(db_err)?;
            let old = t
                .insert(&part_key(id, part)[..], &enc(rec)?[..])
                .map_err(db_err)?;
            old.map(|o| dec(o.value())).transpose()?
        };
        txn.commit().map_err(db_err)?;
        Ok(old)
    }

    /// The parts of an upload, by number.
    pub fn parts(&self, id: &str) -> Result<Vec<(u32, PartRecord)>, MetaError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(PARTS).map_err(db_err)?;
        let lo = part_key(id, 0);
        let hi = part_key(id, u32::MAX);
        let mut out = Vec::new();
        for item in t.range::<&[u8]>(&lo[..]..=&hi[..]).map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            let kb = k.value();
            let mut n = [0u8; 4];
            n.copy_from_slice(&kb[kb.len() - 4..]);
            out.push((u32::from_be_bytes(n), dec(v.value())?));
        }
        Ok(out)
    }

    /// Forgets an upload and its parts.
    pub fn delete_upload(&self, id: &str) -> Result<(), MetaError> {
        let parts = self.parts(id)?;
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = txn.open_table(UPLOADS).map_err(db_err)?;
            t.remove(id).map_err(db_err)?;
            let mut p = txn.open_table(PARTS).map_err(db_err)?;
            for (n, _) in parts {
                p.remove(&part_key(id, n)[..]).map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)
    }
}
