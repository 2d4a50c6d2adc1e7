//! Catalog checkpoints as read back from a node (the signature is checked by the caller).
#![no_main]

use exclave::core::catalog::Checkpoint;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = Checkpoint::decode(data) {
        let _ = c.hash();
        assert_eq!(Checkpoint::decode(&c.encode()).ok(), Some(c));
    }
});
