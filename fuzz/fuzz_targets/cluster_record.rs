//! The sealed cluster record as a node serves it to `exclave recover`.
#![no_main]

use exclave::core::keys::MasterKey;
use exclave::core::record::ClusterRecord;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ClusterRecord::sealed_key_id(data);
    let _ = ClusterRecord::open(&MasterKey::from_bytes(1, [9; 32]), data);
});
