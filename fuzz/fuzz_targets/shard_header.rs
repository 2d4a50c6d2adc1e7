//! Cleartext shard headers as read back from a node's disk or sent by a peer for repair.
#![no_main]

use exclave::core::format::ShardHeader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = ShardHeader::decode(data)
        && let Ok(again) = h.encode()
    {
        assert_eq!(ShardHeader::decode(&again).ok(), Some(h));
    }
});
