//! The S3 XML bodies the gateway accepts (DeleteObjects, CompleteMultipartUpload,
//! CreateBucket), through the same `s3s` deserializer the server uses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use s3s::dto::{CompletedMultipartUpload, CreateBucketConfiguration, Delete};
use s3s::xml::{Deserialize, Deserializer};

fn parse<'a, T: Deserialize<'a>>(data: &'a [u8]) {
    let mut d = Deserializer::new(data);
    if T::deserialize(&mut d).is_ok() {
        let _ = d.expect_eof();
    }
}

fuzz_target!(|data: &[u8]| {
    parse::<Delete>(data);
    parse::<CompletedMultipartUpload>(data);
    parse::<CreateBucketConfiguration>(data);
});
