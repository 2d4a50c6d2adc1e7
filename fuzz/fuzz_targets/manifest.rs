//! Sealed manifests as read back from a node: the cleartext envelope, the AEAD (with the
//! manifest key), and the archive inside (decoded directly too, as if the AEAD had passed).
#![no_main]

use exclave::core::format::{Manifest, ManifestEnvelope};
use exclave::core::keys::ManifestKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ManifestEnvelope::parse(data);
    let _ = Manifest::open(&ManifestKey::from_bytes([7; 32]), data);
    let _ = Manifest::decode_archive(data);
});
