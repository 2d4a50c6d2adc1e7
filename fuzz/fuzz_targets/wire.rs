//! Node protocol frames as a hostile peer sends them: requests (what a node decodes), responses
//! and trailers (what a gateway decodes). Decoding returns an error or a message; a message
//! encodes and decodes to itself.
#![no_main]

use exclave::core::wire::{Request, Response, Trailer, decode_body, encode_body};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = decode_body::<Request>(data) {
        assert_eq!(decode_body::<Request>(&encode_body(&m)).ok(), Some(m));
    }
    if let Ok(m) = decode_body::<Response>(data) {
        assert_eq!(decode_body::<Response>(&encode_body(&m)).ok(), Some(m));
    }
    let _ = decode_body::<Trailer>(data);
});
