//! aws-chunked request bodies (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`, with a CRC32 trailer, and
//! `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`, with signed chunks) as a hostile client sends them,
//! through the `s3s` service the gateway runs, in process. The harness signs each request head
//! with a known key so the body reaches the decoder; the body is the fuzzer's. Input: a mode
//! byte, two bytes of announced decoded length, then the body.
#![no_main]

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::{digest, hmac};
use futures::StreamExt as _;
use libfuzzer_sys::fuzz_target;
use s3s::dto::{PutObjectInput, PutObjectOutput};
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3Request, S3Response, S3Result};

const ACCESS: &str = "EXCFUZZ";
const SECRET: &str = "fuzz-secret-0123456789";

/// Reads every uploaded body to its end: what the gateway does with a PutObject.
#[derive(Debug)]
struct Sink;

#[async_trait::async_trait]
impl s3s::S3 for Sink {
    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        if let Some(mut body) = req.input.body {
            while let Some(piece) = body.next().await {
                if piece.is_err() {
                    break;
                }
            }
        }
        Ok(S3Response::new(PutObjectOutput::default()))
    }
}

fn runtime() -> &'static (tokio::runtime::Runtime, S3Service) {
    static RT: OnceLock<(tokio::runtime::Runtime, S3Service)> = OnceLock::new();
    RT.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let mut b = S3ServiceBuilder::new(Sink);
        b.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS, SECRET));
        (rt, b.build())
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn mac(key: &[u8], msg: &str) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), msg.as_bytes())
        .as_ref()
        .to_vec()
}

/// `YYYYMMDDTHHMMSSZ` now (UTC).
fn amz_date() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fuzz_target!(|data: &[u8]| {
    let [mode, a, b, body @ ..] = data else {
        return;
    };
    let decoded = u16::from_le_bytes([*a, *b]).to_string();
    let (payload, trailer) = if mode & 1 == 0 {
        ("STREAMING-UNSIGNED-PAYLOAD-TRAILER", Some("x-amz-checksum-crc32"))
    } else {
        ("STREAMING-AWS4-HMAC-SHA256-PAYLOAD", None)
    };
    let date = amz_date();
    let day = &date[..8];
    let host = "127.0.0.1:9000";
    let mut headers: Vec<(&str, &str)> = vec![
        ("content-encoding", "aws-chunked"),
        ("host", host),
        ("x-amz-content-sha256", payload),
        ("x-amz-date", &date),
        ("x-amz-decoded-content-length", &decoded),
    ];
    if let Some(t) = trailer {
        headers.push(("x-amz-trailer", t));
    }
    let signed: Vec<&str> = headers.iter().map(|(k, _)| *k).collect();
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let canonical = format!(
        "PUT\n/fuzz/object\n\n{canonical_headers}\n{}\n{payload}",
        signed.join(";")
    );
    let scope = format!("{day}/us-east-1/s3/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
        hex(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref())
    );
    let key = mac(&mac(&mac(&mac(format!("AWS4{SECRET}").as_bytes(), day), "us-east-1"), "s3"), "aws4_request");
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={ACCESS}/{scope}, SignedHeaders={}, Signature={}",
        signed.join(";"),
        hex(&mac(&key, &to_sign))
    );
    let mut req = http::Request::builder()
        .method("PUT")
        .uri("/fuzz/object")
        .header("authorization", auth)
        .header("content-length", body.len().to_string());
    for (k, v) in &headers {
        req = req.header(*k, *v);
    }
    let Ok(req) = req.body(s3s::Body::from(bytes::Bytes::copy_from_slice(body))) else {
        return;
    };
    let (rt, service) = runtime();
    let _ = rt.block_on(service.call(req));
});
