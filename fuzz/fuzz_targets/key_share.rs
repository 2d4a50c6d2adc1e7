//! Key share files as an official hands them in (typed, scanned, damaged).
#![no_main]

use exclave::ops::keys::ShareFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(s) = ShareFile::parse(std::path::Path::new("share.txt"), text)
    {
        assert_eq!(
            ShareFile::parse(std::path::Path::new("share.txt"), &s.render()).ok(),
            Some(s)
        );
    }
});
