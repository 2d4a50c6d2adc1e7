//! S3 request heads and bodies from a hostile client, through the checks every request meets
//! before `s3s` (the gate: authentication form, signed headers, scope, presigned lifetime,
//! bucket names; then a whole XML body's hashes). Input: a request line, header lines, a blank
//! line, the body.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(data.len());
    let (head, body) = data.split_at(split);
    let body = body.get(4..).unwrap_or(&[]);
    let Ok(head) = std::str::from_utf8(head) else {
        return;
    };
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").splitn(2, ' ');
    let (method, uri) = (first.next().unwrap_or("GET"), first.next().unwrap_or("/"));
    let mut req = http::Request::builder().method(method).uri(uri);
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            req = req.header(k.trim(), v.trim());
        }
    }
    if let Ok(req) = req.body(()) {
        let (parts, ()) = req.into_parts();
        let _ = exclave::gateway::screen_request("us-east-1", &parts, body);
    }
});
