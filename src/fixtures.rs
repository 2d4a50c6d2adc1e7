//! Writes the format fixtures that `core`'s tests read back (core itself never touches files).
//!
//! Run once when a format version is added:
//! `cargo test --lib fixtures -- --ignored`, then commit the new files.

use crate::core::tests::format_robustness::{manifest_key, sample_header, sample_manifest};

#[test]
#[ignore = "writes the format fixtures; run by hand when a format version is added"]
fn write_fixtures() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/core/tests/fixtures");
    let sealed = sample_manifest().seal(&manifest_key(), [5; 12]).unwrap();
    std::fs::write(format!("{dir}/manifest-v1.bin"), sealed).unwrap();
    std::fs::write(
        format!("{dir}/shard-header-v1.bin"),
        sample_header().encode().unwrap(),
    )
    .unwrap();
}
