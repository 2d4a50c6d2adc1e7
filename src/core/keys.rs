//! Keys: the master key (key-encryption key), per-object data keys, the manifest key.
//!
//! Randomness is an argument: callers pass fresh random bytes for keys and nonces.
//! Every wrapped key names the master key that wrapped it (key id and key check value), so a
//! wrong master key is detected and refused, never used to produce garbage.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use crate::core::hlc::{Version, version_key};
use crate::core::ids::{NamingKey, ObjectId};
use rkyv::{Archive, Deserialize, Serialize};

/// Length of every symmetric key here (AES-256).
pub const KEY_LEN: usize = 32;
/// Length of an AES-GCM tag.
pub const TAG_LEN: usize = 16;
/// Length of a key check value.
pub const KCV_LEN: usize = 8;

/// Errors of key handling.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// The wrapped key was made under another master key.
    #[error(
        "wrong master key: the data was wrapped by master key {wrapped_id} (check value {wrapped_kcv}), \
         this is master key {given_id} (check value {given_kcv})"
    )]
    WrongMasterKey {
        /// Key id recorded in the wrapped key.
        wrapped_id: u32,
        /// Check value recorded in the wrapped key (hex).
        wrapped_kcv: String,
        /// Key id of the master key given.
        given_id: u32,
        /// Check value of the master key given (hex).
        given_kcv: String,
    },
    /// The wrapped key names the right master key but does not authenticate: tampered or
    /// bound to another object or version.
    #[error("wrapped key failed authentication (tampered, or moved from another object)")]
    Unauthentic,
}

/// The master key: wraps data keys and the manifest key. Never leaves the gateways.
#[derive(Clone)]
pub struct MasterKey {
    id: u32,
    bytes: [u8; KEY_LEN],
    kcv: [u8; KCV_LEN],
    aead: KeyAead,
}

impl MasterKey {
    /// A master key from its secret bytes, with the generation number `id` (1 for the first,
    /// +1 per rotation).
    pub fn from_bytes(id: u32, bytes: [u8; KEY_LEN]) -> Self {
        let d = blake3::derive_key("exclave 2026 master key check value v1", &bytes);
        let mut kcv = [0u8; KCV_LEN];
        kcv.copy_from_slice(&d[..KCV_LEN]);
        let wrap = blake3::derive_key("exclave 2026 master key wrapping v1", &bytes);
        Self {
            id,
            bytes,
            kcv,
            aead: KeyAead::new(&wrap),
        }
    }

    /// Generation number.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Key check value: identifies the key without revealing it.
    pub fn check_value(&self) -> [u8; KCV_LEN] {
        self.kcv
    }

    /// The secret bytes (for key splitting and for writing the key file).
    pub fn secret_bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    /// Refuses this key unless it has the expected key check value.
    pub fn verify(&self, expected_kcv: [u8; KCV_LEN]) -> Result<(), KeyError> {
        if self.kcv == expected_kcv {
            Ok(())
        } else {
            Err(self.mismatch(self.id, expected_kcv))
        }
    }

    /// Wraps a data key, bound to the object and version it encrypts.
    pub fn wrap_data_key(
        &self,
        dek: &DataKey,
        object: &ObjectId,
        version: Version,
        nonce: [u8; NONCE_LEN],
    ) -> WrappedKey {
        self.wrap(&dek.bytes, &dek_aad(object, version), nonce)
    }

    /// Unwraps a data key; fails on a wrong master key or a key moved from another object.
    pub fn unwrap_data_key(
        &self,
        wrapped: &WrappedKey,
        object: &ObjectId,
        version: Version,
    ) -> Result<DataKey, KeyError> {
        self.unwrap(wrapped, &dek_aad(object, version))
            .map(DataKey::from_bytes)
    }

    /// Wraps the manifest key (stored at every node, so recovery needs only the master key).
    pub fn wrap_manifest_key(&self, key: &ManifestKey, nonce: [u8; NONCE_LEN]) -> WrappedKey {
        self.wrap(&key.bytes, MANIFEST_KEY_AAD, nonce)
    }

    /// Unwraps the manifest key.
    pub fn unwrap_manifest_key(&self, wrapped: &WrappedKey) -> Result<ManifestKey, KeyError> {
        self.unwrap(wrapped, MANIFEST_KEY_AAD)
            .map(ManifestKey::from_bytes)
    }

    /// Seals a short secret (an S3 secret access key) under the master key, bound to `label`
    /// (its access key id). Layout: key id u32 LE, KCV, nonce, ciphertext, tag.
    pub fn seal_secret(&self, label: &str, secret: &[u8], nonce: [u8; NONCE_LEN]) -> Vec<u8> {
        let mut ct = secret.to_vec();
        let aad = wrap_aad(self.id, self.kcv, &secret_aad(label));
        let tag = self.aead.seal(nonce, &aad, &mut ct);
        let mut out = Vec::with_capacity(4 + KCV_LEN + NONCE_LEN + ct.len() + TAG_LEN);
        out.extend_from_slice(&self.id.to_le_bytes());
        out.extend_from_slice(&self.kcv);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out.extend_from_slice(&tag);
        out
    }

    /// Opens what [`Self::seal_secret`] made for `label`; fails on a wrong master key, another
    /// label or any changed byte.
    pub fn open_secret(&self, label: &str, sealed: &[u8]) -> Result<Vec<u8>, KeyError> {
        let head = 4 + KCV_LEN + NONCE_LEN;
        if sealed.len() < head + TAG_LEN {
            return Err(KeyError::Unauthentic);
        }
        let mut id = [0u8; 4];
        id.copy_from_slice(&sealed[..4]);
        let id = u32::from_le_bytes(id);
        let mut kcv = [0u8; KCV_LEN];
        kcv.copy_from_slice(&sealed[4..4 + KCV_LEN]);
        if id != self.id || kcv != self.kcv {
            return Err(self.mismatch(id, kcv));
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed[4 + KCV_LEN..head]);
        let mut buf = sealed[head..].to_vec();
        let aad = wrap_aad(id, kcv, &secret_aad(label));
        let plain = self
            .aead
            .open(nonce, &aad, &mut buf)
            .ok_or(KeyError::Unauthentic)?;
        Ok(plain.to_vec())
    }

    fn wrap(&self, secret: &[u8; KEY_LEN], aad: &[u8], nonce: [u8; NONCE_LEN]) -> WrappedKey {
        let mut ct = [0u8; KEY_LEN + TAG_LEN];
        ct[..KEY_LEN].copy_from_slice(secret);
        let full_aad = wrap_aad(self.id, self.kcv, aad);
        let tag = self.aead.seal(nonce, &full_aad, &mut ct[..KEY_LEN]);
        ct[KEY_LEN..].copy_from_slice(&tag);
        WrappedKey {
            key_id: self.id,
            kcv: self.kcv,
            nonce,
            ciphertext: ct,
        }
    }

    fn unwrap(&self, w: &WrappedKey, aad: &[u8]) -> Result<[u8; KEY_LEN], KeyError> {
        if w.kcv != self.kcv || w.key_id != self.id {
            return Err(self.mismatch(w.key_id, w.kcv));
        }
        let mut buf = w.ciphertext;
        let full_aad = wrap_aad(w.key_id, w.kcv, aad);
        let plain = self
            .aead
            .open(w.nonce, &full_aad, &mut buf)
            .ok_or(KeyError::Unauthentic)?;
        let mut out = [0u8; KEY_LEN];
        out.copy_from_slice(plain);
        Ok(out)
    }

    fn mismatch(&self, wrapped_id: u32, wrapped_kcv: [u8; KCV_LEN]) -> KeyError {
        KeyError::WrongMasterKey {
            wrapped_id,
            wrapped_kcv: crate::core::ids::hex(&wrapped_kcv),
            given_id: self.id,
            given_kcv: crate::core::ids::hex(&self.kcv),
        }
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MasterKey(id {}, kcv {})",
            self.id,
            crate::core::ids::hex(&self.kcv)
        )
    }
}

const MANIFEST_KEY_AAD: &[u8] = b"exclave manifest key v1";

fn dek_aad(object: &ObjectId, version: Version) -> Vec<u8> {
    let mut aad = Vec::with_capacity(14 + 32 + Version::LEN);
    aad.extend_from_slice(b"exclave dek v1");
    aad.extend_from_slice(&object.0);
    aad.extend_from_slice(&version.to_bytes());
    aad
}

fn wrap_aad(id: u32, kcv: [u8; KCV_LEN], purpose: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(4 + KCV_LEN + purpose.len());
    aad.extend_from_slice(&id.to_be_bytes());
    aad.extend_from_slice(&kcv);
    aad.extend_from_slice(purpose);
    aad
}

/// A key wrapped by a master key.
#[derive(Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct WrappedKey {
    /// Generation of the master key that wrapped it.
    pub key_id: u32,
    /// Check value of that master key.
    pub kcv: [u8; KCV_LEN],
    /// AES-GCM nonce.
    pub nonce: [u8; NONCE_LEN],
    /// The wrapped key followed by its tag.
    pub ciphertext: [u8; KEY_LEN + TAG_LEN],
}

/// A per-object data key (DEK): seals the object's stripes.
#[derive(Clone)]
pub struct DataKey {
    bytes: [u8; KEY_LEN],
    aead: KeyAead,
}

impl DataKey {
    /// A data key from fresh random bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self {
            bytes,
            aead: KeyAead::new(&bytes),
        }
    }

    pub(crate) fn aead(&self) -> &KeyAead {
        &self.aead
    }

    /// This key XOR `pad` (SSE-C: what is wrapped is the key masked with the customer's pad,
    /// and masking again unmasks it).
    pub fn masked(&self, pad: &[u8; KEY_LEN]) -> Self {
        let mut bytes = self.bytes;
        for (b, p) in bytes.iter_mut().zip(pad) {
            *b ^= p;
        }
        Self::from_bytes(bytes)
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(..)")
    }
}

/// The manifest key: seals manifests and derives the naming key for object ids.
#[derive(Clone)]
pub struct ManifestKey {
    bytes: [u8; KEY_LEN],
    seal: KeyAead,
    naming: NamingKey,
    withdrawal: [u8; 32],
}

impl ManifestKey {
    /// The manifest key from its secret bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        let seal = blake3::derive_key("exclave 2026 manifest sealing v1", &bytes);
        let naming = blake3::derive_key("exclave 2026 object naming v1", &bytes);
        let withdrawal = blake3::derive_key("exclave 2026 withdrawal proof v1", &bytes);
        Self {
            bytes,
            seal: KeyAead::new(&seal),
            naming: NamingKey(naming),
            withdrawal,
        }
    }

    /// The proof that the gateway holding this key withdrew (object, version), a write it never
    /// acknowledged. Nodes keep it with the withdrawal; a recovery or an index rebuilt from the
    /// nodes trusts a withdrawal only with a proof that holds, so no host can hide a version by
    /// claiming it withdrawn.
    pub fn withdrawal_proof(&self, object: &ObjectId, version: Version) -> [u8; 32] {
        *self.withdrawal_mac(object, version).as_bytes()
    }

    /// Whether `proof` is this key's proof of withdrawing (object, version) (compared in
    /// constant time).
    pub fn proves_withdrawal(&self, object: &ObjectId, version: Version, proof: &[u8; 32]) -> bool {
        self.withdrawal_mac(object, version) == blake3::Hash::from_bytes(*proof)
    }

    fn withdrawal_mac(&self, object: &ObjectId, version: Version) -> blake3::Hash {
        blake3::keyed_hash(&self.withdrawal, &version_key(object, version))
    }

    /// The secret bytes (for writing the key file).
    pub fn secret_bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    /// The key object ids are derived under.
    pub fn naming_key(&self) -> &NamingKey {
        &self.naming
    }

    /// The object id of `(bucket, key)`.
    pub fn object_id(&self, bucket: &str, key: &str) -> ObjectId {
        ObjectId::derive(&self.naming, bucket, key)
    }

    pub(crate) fn aead(&self) -> &KeyAead {
        &self.seal
    }
}

/// The key that signs catalog checkpoints (Ed25519), derived from the master key: whoever
/// holds the master key (or enough of its shares) can check a checkpoint, and no site can
/// forge one.
pub struct CheckpointKey {
    pair: aws_lc_rs::signature::Ed25519KeyPair,
}

impl CheckpointKey {
    /// The signing key of `master`.
    pub fn of(master: &MasterKey) -> Self {
        let seed = blake3::derive_key("exclave 2026 catalog checkpoint signing v1", &master.bytes);
        // A 32-byte seed is always a valid Ed25519 private key.
        let pair = aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(&seed)
            .unwrap_or_else(|_| unreachable!("32-byte seed"));
        Self { pair }
    }

    /// Signs `msg`.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        let mut out = [0u8; 64];
        out.copy_from_slice(self.pair.sign(msg).as_ref());
        out
    }

    /// Whether `sig` is this key's signature of `msg`.
    pub fn verify(&self, msg: &[u8], sig: &[u8; 64]) -> bool {
        use aws_lc_rs::signature::{ED25519, KeyPair as _, UnparsedPublicKey};
        UnparsedPublicKey::new(&ED25519, self.pair.public_key().as_ref())
            .verify(msg, sig)
            .is_ok()
    }
}

impl fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CheckpointKey(..)")
    }
}

impl fmt::Debug for ManifestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ManifestKey(..)")
    }
}

fn secret_aad(label: &str) -> Vec<u8> {
    let mut v = b"exclave access key v1\0".to_vec();
    v.extend_from_slice(label.as_bytes());
    v
}

/// AES-256-GCM with a ready key schedule.
#[derive(Clone)]
pub(crate) struct KeyAead(std::sync::Arc<LessSafeKey>);

impl KeyAead {
    fn new(key: &[u8; KEY_LEN]) -> Self {
        // A 32-byte key is always a valid AES-256 key.
        #[allow(clippy::expect_used)]
        let unbound = UnboundKey::new(&AES_256_GCM, key).expect("32-byte AES-256 key");
        Self(std::sync::Arc::new(LessSafeKey::new(unbound)))
    }

    /// Seals `in_out` in place, returns the tag.
    pub(crate) fn seal(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> [u8; TAG_LEN] {
        let tag = self.0.seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            in_out,
        );
        let mut out = [0u8; TAG_LEN];
        // Sealing fails only for inputs beyond AES-GCM's 64 GiB limit, which no stripe reaches.
        if let Ok(tag) = tag {
            out.copy_from_slice(tag.as_ref());
        }
        out
    }

    /// Opens `in_out` (ciphertext followed by tag) in place; `None` if it does not authenticate.
    pub(crate) fn open<'a>(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        in_out: &'a mut [u8],
    ) -> Option<&'a mut [u8]> {
        self.0
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), in_out)
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_withdrawal_proof_holds_only_for_its_version_and_key() {
        let key = ManifestKey::from_bytes([3; KEY_LEN]);
        let (object, version) = (ObjectId([9; 32]), Version::from_bytes([5; 16]));
        let proof = key.withdrawal_proof(&object, version);
        assert!(key.proves_withdrawal(&object, version, &proof));
        assert!(!key.proves_withdrawal(&object, Version::from_bytes([6; 16]), &proof));
        assert!(!key.proves_withdrawal(&ObjectId([8; 32]), version, &proof));
        let other = ManifestKey::from_bytes([4; KEY_LEN]);
        assert!(!other.proves_withdrawal(&object, version, &proof));
        let mut forged = proof;
        forged[0] ^= 1;
        assert!(!key.proves_withdrawal(&object, version, &forged));
    }

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_label() {
        let mk = MasterKey::from_bytes(1, [7; KEY_LEN]);
        let sealed = mk.seal_secret("AKID", b"s3cret", [1; NONCE_LEN]);
        assert_eq!(mk.open_secret("AKID", &sealed).unwrap(), b"s3cret");
        assert!(mk.open_secret("OTHER", &sealed).is_err());
        let other = MasterKey::from_bytes(1, [8; KEY_LEN]);
        assert!(matches!(
            other.open_secret("AKID", &sealed),
            Err(KeyError::WrongMasterKey { .. })
        ));
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(mk.open_secret("AKID", &bad).is_err(), "byte {i}");
        }
        assert!(mk.open_secret("AKID", &sealed[..10]).is_err());
    }
    use crate::core::ids::GatewayId;

    fn v(ms: u64) -> Version {
        Version {
            physical_ms: ms,
            logical: 0,
            gateway: GatewayId(1),
        }
    }

    #[test]
    fn data_keys_round_trip_and_are_bound_to_their_object() {
        let mk = MasterKey::from_bytes(1, [7; 32]);
        let dek = DataKey::from_bytes([9; 32]);
        let oid = ObjectId([1; 32]);
        let w = mk.wrap_data_key(&dek, &oid, v(5), [3; 12]);
        assert_eq!(
            mk.unwrap_data_key(&w, &oid, v(5)).map(|k| k.bytes),
            Ok([9; 32])
        );
        assert_eq!(
            mk.unwrap_data_key(&w, &ObjectId([2; 32]), v(5))
                .map(|k| k.bytes),
            Err(KeyError::Unauthentic)
        );
        assert_eq!(
            mk.unwrap_data_key(&w, &oid, v(6)).map(|k| k.bytes),
            Err(KeyError::Unauthentic)
        );
        let mut tampered = w;
        tampered.ciphertext[3] ^= 1;
        assert_eq!(
            mk.unwrap_data_key(&tampered, &oid, v(5)).map(|k| k.bytes),
            Err(KeyError::Unauthentic)
        );
    }

    #[test]
    fn a_wrong_master_key_is_detected_not_used() {
        let right = MasterKey::from_bytes(1, [7; 32]);
        let wrong = MasterKey::from_bytes(1, [8; 32]);
        let w = right.wrap_manifest_key(&ManifestKey::from_bytes([4; 32]), [0; 12]);
        let err = wrong.unwrap_manifest_key(&w).err();
        assert!(
            matches!(err, Some(KeyError::WrongMasterKey { .. })),
            "{err:?}"
        );
        assert!(wrong.verify(right.check_value()).is_err());
        assert!(right.verify(right.check_value()).is_ok());
        let msg = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("wrong master key"), "{msg}");
    }

    #[test]
    fn the_manifest_key_round_trips() {
        let mk = MasterKey::from_bytes(3, [1; 32]);
        let key = ManifestKey::from_bytes([5; 32]);
        let w = mk.wrap_manifest_key(&key, [9; 12]);
        let back = mk.unwrap_manifest_key(&w).map(|k| *k.secret_bytes());
        assert_eq!(back, Ok([5; 32]));
        assert_eq!(
            key.object_id("b", "k"),
            ManifestKey::from_bytes([5; 32]).object_id("b", "k")
        );
        assert_ne!(key.object_id("ab", "c"), key.object_id("a", "bc"));
    }
}
