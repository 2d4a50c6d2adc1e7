//! Layout files and daemon config files, as an operator (or a copy gone wrong) writes them.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = exclave::config::parse_layout(text, "layout.toml");
        let _ = exclave::config::parse_daemon(text, std::path::Path::new("/etc/exclave/node.toml"));
    }
});
