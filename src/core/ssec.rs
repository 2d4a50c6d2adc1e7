//! SSE-C: an object encrypted under a key its client keeps. The object's data key is stored
//! wrapped by the master key as always, but masked first with a pad only the customer's key
//! gives (BLAKE3, bound to the stored object and version): the master key alone, and so the
//! gateway's operator and `exclave recover`, cannot open it. What is stored of the customer's
//! key is a check value (to answer a wrong key 403 before reading), never the key; the ETag
//! is a keyed digest, not the plaintext's MD5 (as AWS's SSE-C ETags are not).

use base64_simd::STANDARD as B64;
use md5::Digest as _;

use super::format::ObjectMeta;
use super::hlc::Version;
use super::ids::{ObjectId, hex};

/// The stored header (`ObjectMeta::headers`, never served) with the key's check value.
pub const STORED_HEADER: &str = "x-exclave-sse-c";

/// A customer's key, as a request gave it (never stored, never logged).
#[derive(Clone)]
pub struct CustomerKey {
    bytes: [u8; 32],
    md5_b64: String,
}

impl std::fmt::Debug for CustomerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CustomerKey(..)")
    }
}

/// Why a request's SSE-C headers were refused (each S3's 400, in AWS's words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SsecError {
    /// No algorithm, or not AES256.
    Algorithm,
    /// No key, or not 32 bytes of base64.
    Key,
    /// No MD5 of the key, or not the key's.
    Md5,
}

impl SsecError {
    /// AWS's message.
    pub fn message(self) -> &'static str {
        match self {
            Self::Algorithm => {
                "Requests specifying Server Side Encryption with Customer provided keys must provide a valid encryption algorithm."
            }
            Self::Key => "The secret key was invalid for the specified algorithm.",
            Self::Md5 => {
                "The calculated MD5 hash of the key did not match the hash that was provided."
            }
        }
    }
}

/// The customer key of a request's three SSE-C headers; None when it sends none of them.
pub fn parse(
    algorithm: Option<&str>,
    key_b64: Option<&str>,
    md5_b64: Option<&str>,
) -> Result<Option<CustomerKey>, SsecError> {
    if algorithm.is_none() && key_b64.is_none() && md5_b64.is_none() {
        return Ok(None);
    }
    if algorithm != Some("AES256") {
        return Err(SsecError::Algorithm);
    }
    let raw = key_b64
        .and_then(|k| B64.decode_to_vec(k).ok())
        .ok_or(SsecError::Key)?;
    let bytes: [u8; 32] = raw.try_into().map_err(|_| SsecError::Key)?;
    let md5 = md5_b64
        .and_then(|m| B64.decode_to_vec(m).ok())
        .ok_or(SsecError::Md5)?;
    if md5.as_slice() != md5::Md5::digest(bytes).as_slice() {
        return Err(SsecError::Md5);
    }
    Ok(Some(CustomerKey {
        bytes,
        md5_b64: md5_b64.unwrap_or_default().to_owned(),
    }))
}

impl CustomerKey {
    /// The base64 MD5 of the key, as the request sent it (answered back).
    pub fn md5_b64(&self) -> &str {
        &self.md5_b64
    }

    /// The value stored to know the key again (hex; reveals nothing of a 256-bit key).
    pub fn check(&self) -> String {
        hex(&blake3::derive_key(
            "exclave 2026 sse-c key check v1",
            &self.bytes,
        ))
    }

    /// The pad the data key of the stored object (`object`, `version`) is masked with.
    pub fn pad(&self, object: &ObjectId, version: Version) -> [u8; 32] {
        let mut material = Vec::with_capacity(32 + 32 + 16);
        material.extend_from_slice(&self.bytes);
        material.extend_from_slice(&object.0);
        material.extend_from_slice(&version.to_bytes());
        blake3::derive_key("exclave 2026 sse-c data key pad v1", &material)
    }

    /// The ETag of an object (or part) whose plaintext MD5 is `md5_hex`: 32 hex digits, keyed
    /// by the customer's key.
    pub fn etag(&self, md5_hex: &str) -> String {
        let k = blake3::derive_key("exclave 2026 sse-c etag v1", &self.bytes);
        hex(&blake3::keyed_hash(&k, md5_hex.as_bytes()).as_bytes()[..16])
    }
}

/// The check value of the customer key an object (or part) was stored under; None: not SSE-C.
pub fn stored_check(meta: &ObjectMeta) -> Option<&str> {
    meta.headers
        .iter()
        .find(|(n, _)| n == STORED_HEADER)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(key: &[u8]) -> (String, String) {
        (
            B64.encode_to_string(key),
            B64.encode_to_string(md5::Md5::digest(key)),
        )
    }

    #[test]
    fn the_three_headers_are_checked_as_aws_checks_them() {
        let (k, m) = headers(&[7u8; 32]);
        let key = parse(Some("AES256"), Some(&k), Some(&m)).unwrap().unwrap();
        assert_eq!(key.md5_b64(), m);
        assert_eq!(format!("{key:?}"), "CustomerKey(..)");
        assert!(parse(None, None, None).unwrap().is_none());
        assert_eq!(
            parse(Some("aws:kms"), Some(&k), Some(&m)).unwrap_err(),
            SsecError::Algorithm
        );
        assert_eq!(
            parse(None, Some(&k), Some(&m)).unwrap_err(),
            SsecError::Algorithm
        );
        let (short, short_md5) = headers(&[7u8; 16]);
        assert_eq!(
            parse(Some("AES256"), Some(&short), Some(&short_md5)).unwrap_err(),
            SsecError::Key
        );
        let (_, other) = headers(&[8u8; 32]);
        assert_eq!(
            parse(Some("AES256"), Some(&k), Some(&other)).unwrap_err(),
            SsecError::Md5
        );
        assert_eq!(
            parse(Some("AES256"), Some(&k), None).unwrap_err(),
            SsecError::Md5
        );
    }

    #[test]
    fn pads_checks_and_etags_depend_on_the_key() {
        let (k1, m1) = headers(&[1u8; 32]);
        let (k2, m2) = headers(&[2u8; 32]);
        let a = parse(Some("AES256"), Some(&k1), Some(&m1))
            .unwrap()
            .unwrap();
        let b = parse(Some("AES256"), Some(&k2), Some(&m2))
            .unwrap()
            .unwrap();
        let o = ObjectId([3; 32]);
        let v = Version::from_bytes([4; 16]);
        assert_ne!(a.check(), b.check());
        assert_ne!(a.pad(&o, v), b.pad(&o, v));
        assert_ne!(a.pad(&o, v), a.pad(&ObjectId([5; 32]), v));
        assert_ne!(a.etag("00"), b.etag("00"));
        assert_eq!(a.etag("00").len(), 32);
    }
}
