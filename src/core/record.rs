//! The cluster record: what a recovery site needs besides the master key and the nodes' data,
//! sealed under the master key and kept at every node (`cluster_record_file`). The nodes
//! cannot open it; `exclave recover` fetches it from them, opens it with the master key (or
//! the joined key shares) and builds a new gateway from it.

use serde::{Deserialize, Serialize};

use crate::core::keys::{KeyError, MasterKey};

/// What the seal binds the record to.
const LABEL: &str = "exclave cluster record v1";
/// The file name `exclave init` gives it in each site's directory.
pub const FILE_NAME: &str = "cluster.sealed";

/// The record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterRecord {
    /// Record format (1).
    pub format: u32,
    /// When it was written, ms since the epoch: the newest record wins.
    pub written_ms: u64,
    /// The home site (the CA's name).
    pub home: String,
    /// The layout file, as written.
    pub layout_toml: String,
    /// Earlier layouts (after `exclave layout apply`), newest first: objects written under
    /// them are found where they placed them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_layouts_toml: Vec<String>,
    /// The manifest key, 64 hex digits.
    pub manifest_key: String,
    /// The cluster CA's certificate (PEM).
    pub ca_cert_pem: String,
    /// The cluster CA's private key (PEM), to issue the recovery gateway's certificate.
    pub ca_key_pem: String,
    /// The gateway's S3 credentials file (its secrets are sealed under the master key too).
    pub s3_credentials_toml: String,
}

/// Why a record does not open.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Too short to be a sealed record.
    #[error("not a sealed cluster record")]
    Malformed,
    /// The master key is not the one that sealed it, or the bytes were changed.
    #[error("the cluster record does not open: {0}")]
    Key(#[from] KeyError),
    /// It opened but does not parse (a newer format?).
    #[error("the cluster record does not parse: {0}")]
    Parse(String),
}

impl ClusterRecord {
    /// Seals the record under `master` with a fresh `nonce`.
    pub fn seal(&self, master: &MasterKey, nonce: [u8; 12]) -> Vec<u8> {
        let json = serde_json::to_vec(self).unwrap_or_default();
        master.seal_secret(LABEL, &json, nonce)
    }

    /// The master key generation a sealed record names.
    pub fn sealed_key_id(sealed: &[u8]) -> Option<u32> {
        let id: [u8; 4] = sealed.get(..4)?.try_into().ok()?;
        Some(u32::from_le_bytes(id))
    }

    /// Opens a sealed record with `master` (its generation taken from the record).
    pub fn open(master: &MasterKey, sealed: &[u8]) -> Result<Self, RecordError> {
        let id = Self::sealed_key_id(sealed).ok_or(RecordError::Malformed)?;
        let key = MasterKey::from_bytes(id, *master.secret_bytes());
        let json = key.open_secret(LABEL, sealed)?;
        serde_json::from_slice(&json).map_err(|e| RecordError::Parse(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> ClusterRecord {
        ClusterRecord {
            format: 1,
            written_ms: 5,
            home: "home".into(),
            layout_toml: "k = 3".into(),
            previous_layouts_toml: Vec::new(),
            manifest_key: "00".repeat(32),
            ca_cert_pem: "cert".into(),
            ca_key_pem: "key".into(),
            s3_credentials_toml: "[[keys]]".into(),
        }
    }

    #[test]
    fn seals_and_opens_and_refuses_other_keys_and_changed_bytes() {
        let master = MasterKey::from_bytes(2, [9; 32]);
        let sealed = record().seal(&master, [1; 12]);
        assert_eq!(ClusterRecord::sealed_key_id(&sealed), Some(2));
        // The generation comes from the record: a key given with another id still opens it.
        let same = MasterKey::from_bytes(1, [9; 32]);
        assert_eq!(ClusterRecord::open(&same, &sealed).unwrap(), record());
        let other = MasterKey::from_bytes(2, [8; 32]);
        assert!(matches!(
            ClusterRecord::open(&other, &sealed),
            Err(RecordError::Key(_))
        ));
        let mut changed = sealed.clone();
        let last = changed.len() - 20;
        changed[last] ^= 1;
        assert!(ClusterRecord::open(&master, &changed).is_err());
        assert!(ClusterRecord::open(&master, &sealed[..10]).is_err());
    }
}
