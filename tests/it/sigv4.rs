//! A small SigV4 signer and raw HTTP/1.1 client, so tests can forge what an SDK never sends:
//! wrong signatures, expired presigned URLs, bodies that differ from their signed hash,
//! tampered signed chunks.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use aws_lc_rs::{digest, hmac};

pub const REGION: &str = "us-east-1";

pub fn sha256_hex(b: &[u8]) -> String {
    exclave::core::ids::hex(digest::digest(&digest::SHA256, b).as_ref())
}

fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), msg)
        .as_ref()
        .to_vec()
}

/// `YYYYMMDDTHHMMSSZ` for `offset_secs` from now.
pub fn amz_date(offset_secs: i64) -> String {
    dates(offset_secs).0
}

/// The instant `offset_secs` from now as SigV4 writes it (`YYYYMMDDTHHMMSSZ`) and as an HTTP
/// date (`Sun, 29 Nov 2026 01:45:31 GMT`).
pub fn dates(offset_secs: i64) -> (String, String) {
    let t = time::OffsetDateTime::now_utc() + time::Duration::seconds(offset_secs);
    let amz = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let http = format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        &t.weekday().to_string()[..3],
        t.day(),
        &t.month().to_string()[..3],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    );
    (amz, http)
}

fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        let c = b as char;
        if c.is_ascii_alphanumeric() || "-_.~".contains(c) || (keep_slash && c == '/') {
            out.push(c);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub struct Signer {
    pub access: String,
    pub secret: String,
    /// The credential scope's region and service.
    pub region: String,
    pub service: String,
}

pub struct Signed {
    pub headers: Vec<(String, String)>,
    pub signature: String,
    pub date: String,
}

impl Signer {
    /// A signer for `us-east-1` and `s3`.
    pub fn new(access: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            access: access.into(),
            secret: secret.into(),
            region: REGION.into(),
            service: "s3".into(),
        }
    }

    /// The same keys, signing for another region and service.
    #[allow(dead_code)]
    pub fn scoped(&self, region: &str, service: &str) -> Self {
        Self {
            access: self.access.clone(),
            secret: self.secret.clone(),
            region: region.into(),
            service: service.into(),
        }
    }

    fn key(&self, day: &str) -> Vec<u8> {
        let k = hmac(format!("AWS4{}", self.secret).as_bytes(), day.as_bytes());
        let k = hmac(&k, self.region.as_bytes());
        let k = hmac(&k, self.service.as_bytes());
        hmac(&k, b"aws4_request")
    }

    fn scope(&self, day: &str) -> String {
        format!("{day}/{}/{}/aws4_request", self.region, self.service)
    }

    fn canonical(
        method: &str,
        path: &str,
        query: &[(String, String)],
        headers: &[(String, String)],
        payload: &str,
    ) -> (String, String) {
        let mut q: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
            .collect();
        q.sort();
        let q = q
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let mut h: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        h.sort();
        let signed = h
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join(";");
        let canon_h: String = h.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
        (
            format!(
                "{method}\n{}\n{q}\n{canon_h}\n{signed}\n{payload}",
                uri_encode(path, true)
            ),
            signed,
        )
    }

    /// Header-signed request: adds host, x-amz-date, x-amz-content-sha256 and Authorization.
    #[allow(clippy::too_many_arguments)]
    pub fn sign(
        &self,
        host: &str,
        method: &str,
        path: &str,
        query: &[(String, String)],
        extra: &[(&str, &str)],
        payload: &str,
        date: &str,
    ) -> Signed {
        let mut headers: Vec<(String, String)> = vec![
            ("host".into(), host.into()),
            ("x-amz-date".into(), date.into()),
            ("x-amz-content-sha256".into(), payload.into()),
        ];
        for (k, v) in extra {
            headers.push(((*k).into(), (*v).into()));
        }
        self.sign_headers(method, path, query, headers, payload, date)
    }

    /// Signs `headers` (the Authorization header added) for a request timed `date`.
    fn sign_headers(
        &self,
        method: &str,
        path: &str,
        query: &[(String, String)],
        mut headers: Vec<(String, String)>,
        payload: &str,
        date: &str,
    ) -> Signed {
        let (canon, signed) = Self::canonical(method, path, query, &headers, payload);
        let day = &date[..8];
        let sts = format!(
            "AWS4-HMAC-SHA256\n{date}\n{}\n{}",
            self.scope(day),
            sha256_hex(canon.as_bytes())
        );
        let signature = exclave::core::ids::hex(&hmac(&self.key(day), sts.as_bytes()));
        headers.push((
            "authorization".into(),
            format!(
                "AWS4-HMAC-SHA256 Credential={}/{},SignedHeaders={signed},Signature={signature}",
                self.access,
                self.scope(day)
            ),
        ));
        Signed {
            headers,
            signature,
            date: date.into(),
        }
    }

    /// Header-signed request timed by a `Date` header (RFC 1123) instead of `X-Amz-Date`, as
    /// SigV4 allows: adds host, date, x-amz-content-sha256 and Authorization.
    #[allow(dead_code)]
    pub fn sign_with_date_header(
        &self,
        host: &str,
        method: &str,
        path: &str,
        payload: &str,
        date: &str,
        http_date: &str,
    ) -> Signed {
        let headers: Vec<(String, String)> = vec![
            ("host".into(), host.into()),
            ("date".into(), http_date.into()),
            ("x-amz-content-sha256".into(), payload.into()),
        ];
        self.sign_headers(method, path, &[], headers, payload, date)
    }

    /// A presigned URL's path and query.
    pub fn presign(
        &self,
        host: &str,
        method: &str,
        path: &str,
        expires: u64,
        date: &str,
    ) -> String {
        self.presign_with(host, method, path, &[], &[], expires, date)
    }

    /// A presigned URL's path and query, with `query` parameters of the operation and `headers`
    /// (besides host) signed in.
    #[allow(clippy::too_many_arguments)]
    pub fn presign_with(
        &self,
        host: &str,
        method: &str,
        path: &str,
        query: &[(String, String)],
        headers: &[(&str, &str)],
        expires: u64,
        date: &str,
    ) -> String {
        let day = &date[..8];
        let mut all = vec![("host".to_string(), host.to_string())];
        for (k, v) in headers {
            all.push(((*k).to_ascii_lowercase(), (*v).to_string()));
        }
        let mut names: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
        names.sort_unstable();
        let mut q: Vec<(String, String)> = query.to_vec();
        q.extend([
            (
                "X-Amz-Algorithm".to_string(),
                "AWS4-HMAC-SHA256".to_string(),
            ),
            (
                "X-Amz-Credential".into(),
                format!("{}/{}", self.access, self.scope(day)),
            ),
            ("X-Amz-Date".into(), date.into()),
            ("X-Amz-Expires".into(), expires.to_string()),
            ("X-Amz-SignedHeaders".into(), names.join(";")),
        ]);
        let (canon, _) = Self::canonical(method, path, &q, &all, "UNSIGNED-PAYLOAD");
        let sts = format!(
            "AWS4-HMAC-SHA256\n{date}\n{}\n{}",
            self.scope(day),
            sha256_hex(canon.as_bytes())
        );
        let sig = exclave::core::ids::hex(&hmac(&self.key(day), sts.as_bytes()));
        q.push(("X-Amz-Signature".into(), sig));
        let q = q
            .iter()
            .map(|(k, v)| format!("{}={}", uri_encode(k, false), uri_encode(v, false)))
            .collect::<Vec<_>>()
            .join("&");
        format!("{}?{q}", uri_encode(path, true))
    }

    /// An aws-chunked body with signed chunks, chained from `seed`.
    pub fn chunked(&self, seed: &Signed, chunks: &[&[u8]]) -> Vec<u8> {
        let day = &seed.date[..8];
        let key = self.key(day);
        let mut prev = seed.signature.clone();
        let mut out = Vec::new();
        let empty = sha256_hex(b"");
        let mut all: Vec<&[u8]> = chunks.to_vec();
        all.push(b"");
        for c in all {
            let sts = format!(
                "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{prev}\n{empty}\n{}",
                seed.date,
                self.scope(day),
                sha256_hex(c)
            );
            let sig = exclave::core::ids::hex(&hmac(&key, sts.as_bytes()));
            out.extend_from_slice(format!("{:x};chunk-signature={sig}\r\n", c.len()).as_bytes());
            out.extend_from_slice(c);
            out.extend_from_slice(b"\r\n");
            prev = sig;
        }
        out
    }
}

/// Sends one HTTP/1.1 request and returns (status, body).
pub fn send(
    addr: SocketAddr,
    method: &str,
    path_and_query: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> (u16, String) {
    send_paused(
        addr,
        method,
        path_and_query,
        headers,
        body,
        body.len(),
        || {},
    )
}

/// [`send`], with `between` run once the head and the first `at` bytes of the body are sent.
pub fn send_paused(
    addr: SocketAddr,
    method: &str,
    path_and_query: &str,
    headers: &[(String, String)],
    body: &[u8],
    at: usize,
    between: impl FnOnce(),
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("{method} {path_and_query} HTTP/1.1\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    {
        req.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    req.push_str("connection: close\r\n\r\n");
    // A server that refuses the head (too large) may answer and close before the rest is
    // written: the write then fails, and the answer is still there to read.
    if s.write_all(req.as_bytes()).is_ok() && s.write_all(&body[..at]).is_ok() {
        between();
        let _ = s.write_all(&body[at..]);
    }
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}
