//! The admin HTTP endpoints' plumbing (gateway and nodes): JSON replies, the bearer token
//! check, and a small HTTP/1.1 server loop.

use std::future::Future;
use std::sync::Arc;

use crate::metrics::{OPENMETRICS, TEXT_FORMAT, text_format};
use crate::sys::read_secret;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub(crate) fn reply(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

/// A 500 answer naming what failed.
pub(crate) fn failed(e: impl std::fmt::Display) -> Response<Full<Bytes>> {
    reply(
        StatusCode::INTERNAL_SERVER_ERROR,
        &serde_json::json!({"error": e.to_string()}),
    )
}

/// Whether the request's `Accept` header asks for OpenMetrics.
pub(crate) fn wants_openmetrics<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"))
}

/// A Prometheus exposition (`openmetrics` text from `crate::metrics`), as OpenMetrics if the
/// scraper asked for it and in the classic text format otherwise.
pub(crate) fn metrics_reply(openmetrics: String, as_openmetrics: bool) -> Response<Full<Bytes>> {
    let (body, content_type) = if as_openmetrics {
        (openmetrics, OPENMETRICS)
    } else {
        (text_format(&openmetrics), TEXT_FORMAT)
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    r
}

pub(crate) fn authorised(req: &Request<Incoming>, token: &str) -> bool {
    let Some(v) = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(given) = v.strip_prefix("Bearer ") else {
        return false;
    };
    // Constant-time comparison of equal-length tokens.
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

pub(crate) fn query_param<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    req.uri().query().and_then(|q| {
        q.split('&')
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    })
}

/// Serves `handler` on `listener` until `stop` turns true.
pub(crate) async fn serve<F, Fut>(
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
    handler: F,
) where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let handler = Arc::new(handler);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let handler = handler.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let handler = handler.clone();
                        async move { Ok::<_, std::convert::Infallible>(handler(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            _ = stop.changed() => return,
        }
    }
}

/// One request to an admin API (HTTP/1.1, no TLS), with a bearer token if given: the status
/// and the body. The client of both admin APIs: `exclave` (tools/), recovery, key rotation.
pub async fn request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    limit: std::time::Duration,
) -> anyhow::Result<(u16, Vec<u8>)> {
    use anyhow::Context as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let exchange = async {
        let mut s = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        .map_err(|_| anyhow::anyhow!("connecting to {addr}: timed out"))?
        .with_context(|| format!("connecting to {addr}"))?;
        let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
        s.write_all(
            format!(
                "{method} {path} HTTP/1.1\r\nhost: {addr}\r\n{auth}content-length: 0\r\n\
                 connection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await?;
        let mut buf = Vec::new();
        s.take(64 << 20).read_to_end(&mut buf).await?;
        anyhow::Ok(buf)
    };
    let buf = tokio::time::timeout(limit, exchange)
        .await
        .map_err(|_| anyhow::anyhow!("{addr}: no answer within {limit:?}"))??;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("{addr}: not an HTTP answer"))?;
    let head = String::from_utf8_lossy(&buf[..split]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("{addr}: not an HTTP answer"))?;
    let mut body = buf[split + 4..].to_vec();
    if let Some(len) = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())?
    }) {
        body.truncate(len);
    }
    Ok((status, body))
}

/// Reads an admin token file: trimmed, at least 16 characters.
pub fn read_token(path: &std::path::Path) -> anyhow::Result<String> {
    let raw = read_secret(path)?;
    let token = String::from_utf8(raw)
        .map_err(|_| anyhow::anyhow!("{}: not UTF-8", path.display()))?
        .trim()
        .to_owned();
    if token.len() < 16 {
        anyhow::bail!("{}: the admin token is too short", path.display());
    }
    Ok(token)
}
