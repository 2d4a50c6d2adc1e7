//! Around every S3 request: a request id (the `x-amz-request-id` header, and a `s3{id=..}`
//! span on every log line the request causes), byte counts, and the metrics of the finished
//! request (operation, status, latency to the end of the response body).

use std::collections::BTreeSet;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use super::Gateway;
use super::guard::Gate;
use super::{MAX_XML_BODY, small_body};
use crate::metrics::RefusalLabels;

/// The S3 operation a request was dispatched to, filled in by the `S3` trait methods.
#[derive(Clone, Debug, Default)]
pub(crate) struct OpSlot(Arc<OnceLock<&'static str>>);

impl OpSlot {
    fn get(&self) -> &'static str {
        self.0.get().copied().unwrap_or("none")
    }
}

/// An operation's name as a `&'static str` (log and metric labels): `s3s` names its
/// operations from a fixed set, so each is kept once, for the life of the process.
pub(crate) fn op_name(name: &str) -> &'static str {
    static NAMES: std::sync::Mutex<BTreeSet<&'static str>> = std::sync::Mutex::new(BTreeSet::new());
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(n) = names.get(name) {
        return n;
    }
    let n: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(n);
    n
}

/// Names the operation of the request carrying `extensions`.
pub(crate) fn name_op(extensions: &http::Extensions, op: &'static str) {
    if let Some(slot) = extensions.get::<OpSlot>() {
        let _ = slot.0.set(op);
    }
}

/// Request ids: 16 hex digits, a per-process random half and a counter.
#[derive(Debug)]
pub(crate) struct RequestIds {
    salt: u32,
    next: AtomicU64,
}

impl RequestIds {
    pub(crate) fn new() -> Self {
        let mut salt = [0u8; 4];
        // A failed draw only makes ids less unique across restarts.
        let _ = aws_lc_rs::rand::fill(&mut salt);
        Self {
            salt: u32::from_le_bytes(salt),
            next: AtomicU64::new(1),
        }
    }

    pub(crate) fn next(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed) as u32;
        format!("{:08X}{n:08X}", self.salt)
    }
}

pin_project_lite::pin_project! {
    /// A response body that counts its data bytes and records the request when it ends or is
    /// dropped; polled inside the request's span.
    pub(crate) struct Counted<B> {
        #[pin]
        inner: B,
        bytes: Counter,
        // Entered while the response body is polled (outside the request's future).
        span: tracing::Span,
        finish: Option<Finish>,
        sent: u64,
    }
    impl<B> PinnedDrop for Counted<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(f) = this.finish.take() {
                // hyper stops polling once Content-Length bytes are out.
                let complete = f.expected.is_some_and(|n| *this.sent >= n);
                f.done(complete);
            }
        }
    }
}

/// One request in flight, counted in the gauge until dropped.
struct InFlight(Gauge);

impl InFlight {
    fn start(gauge: &Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// What is recorded when a response body ends.
pub(crate) struct Finish {
    _in_flight: InFlight,
    gateway: Arc<Gateway>,
    op: OpSlot,
    status: u16,
    started: Instant,
    span: tracing::Span,
    /// The body's exact length, when known.
    expected: Option<u64>,
}

impl Finish {
    fn done(self, complete: bool) {
        let op = self.op.get();
        let seconds = self.started.elapsed().as_secs_f64();
        self.gateway.metrics.record(op, self.status, seconds);
        let _enter = self.span.enter();
        let ms = (seconds * 1000.0).round() as u64;
        match self.status {
            500.. => tracing::warn!(op, status = self.status, ms, complete, "request failed"),
            _ => tracing::debug!(op, status = self.status, ms, complete, "request done"),
        }
    }
}

impl<B> Counted<B> {
    fn new(inner: B, bytes: Counter, span: tracing::Span, finish: Option<Finish>) -> Self {
        Self {
            inner,
            bytes,
            span,
            finish,
            sent: 0,
        }
    }
}

impl<B: Body<Data = Bytes>> Body for Counted<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let _enter = this.span.enter();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.bytes.inc_by(d.len() as u64);
                    *this.sent += d.len() as u64;
                }
            }
            Poll::Ready(None) => {
                if let Some(f) = this.finish.take() {
                    f.done(true);
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The connection a request came on: the peer's own address (never one a header names) and
/// whether it is TLS. Bucket policies' `aws:SourceIp` and `aws:SecureTransport`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Peer {
    pub(crate) addr: std::net::SocketAddr,
    pub(crate) secure: bool,
}

/// Serves one S3 request through `service` with an id, a span, counts and metrics; requests
/// the gate refuses never reach `service`.
pub(crate) async fn handle(
    gateway: Arc<Gateway>,
    ids: Arc<RequestIds>,
    gate: Arc<Gate>,
    service: s3s::service::S3Service,
    peer: Peer,
    req: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<Counted<s3s::Body>>, s3s::HttpError> {
    use tracing::Instrument as _;
    let started = Instant::now();
    let in_flight = InFlight::start(&gateway.metrics.in_flight);
    let id = ids.next();
    let span = tracing::info_span!("s3", id = %id);
    let op = OpSlot::default();
    let (mut parts, body) = req.into_parts();
    let sends_body = sends_body(&parts.headers);
    // A browser's preflight is never signed: answered from the bucket's CORS rules, before
    // the gate. An actual request from a browser gets the headers its origin is allowed.
    let preflight = parts.method == http::Method::OPTIONS;
    let cors = if preflight {
        None
    } else {
        gateway.cors_headers(&parts)
    };
    let resp = if preflight {
        let _ = op.0.set("PreflightRequest");
        let answer = match gateway.preflight(&parts) {
            Ok(headers) => {
                let mut resp = http::Response::new(s3s::Body::empty());
                *resp.headers_mut() = headers;
                Ok(resp)
            }
            Err(mut error) => {
                error.set_request_id(id.clone());
                error.to_http_response()
            }
        };
        answer.map_err(|e| s3s::HttpError::new(Box::new(e)))?
    } else {
        match admit(&gateway, &gate, &parts, body).await {
            Ok(body) => {
                dated_by_date_header(&mut parts.headers);
                mark_bad_range(&mut parts);
                parts.extensions.insert(op.clone());
                parts.extensions.insert(peer);
                let shape = shape(&parts);
                let req = http::Request::from_parts(parts, body);
                let resp = service.call(req).instrument(span.clone()).await?;
                if resp.status().is_client_error()
                    || resp.status() == http::StatusCode::NOT_IMPLEMENTED
                {
                    log_refusal(&span, &op, &shape, &resp);
                }
                if op.get() == "GetObjectAttributes" && resp.status().is_success() {
                    bare_etag(resp)
                } else {
                    resp
                }
            }
            Err((reason, mut error)) => {
                span.in_scope(|| {
                    tracing::info!(
                        reason,
                        request = %shape(&parts),
                        status = error.status_code().map_or(0, |s| s.as_u16()),
                        message = error.message().unwrap_or(""),
                        "request refused before its operation"
                    );
                });
                error.set_request_id(id.clone());
                error
                    .to_http_response()
                    .map_err(|e| s3s::HttpError::new(Box::new(e)))?
            }
        }
    };
    let (mut parts, mut body) = resp.into_parts();
    if let Some(cors) = cors {
        for (name, value) in &cors {
            parts.headers.append(name, value.clone());
        }
    }
    if let Ok(v) = http::HeaderValue::from_str(&id) {
        parts.headers.insert("x-amz-request-id", v);
    }
    if parts.status.is_client_error() || parts.status.is_server_error() {
        body = with_request_id(body, &id, &mut parts.headers);
    }
    if sends_body && (parts.status.is_client_error() || parts.status.is_server_error()) {
        // The request's body may be left unread (refused before it, or failed within it), and
        // then the server closes the connection after this answer. Said here, so the client
        // does not send its next request on a connection about to close (it would fail with
        // no answer, as AWS SDKs then report "IncompleteMessage").
        parts.headers.insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    let finish = Finish {
        _in_flight: in_flight,
        gateway: gateway.clone(),
        op,
        status: parts.status.as_u16(),
        started,
        span: span.clone(),
        expected: Body::size_hint(&body).exact(),
    };
    let body = Counted::new(body, gateway.metrics.sent.clone(), span, Some(finish));
    Ok(http::Response::from_parts(parts, body))
}

/// GetObjectAttributes answers its `<ETag>` without quotes (AWS's answer, unlike every other
/// XML ETag); `s3s` quotes every ETag it writes.
fn bare_etag(resp: http::Response<s3s::Body>) -> http::Response<s3s::Body> {
    let (mut parts, mut body) = resp.into_parts();
    let Some(bytes) = body.take_bytes() else {
        return http::Response::from_parts(parts, body);
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return http::Response::from_parts(parts, s3s::Body::from(bytes));
    };
    let out = text
        .replace("<ETag>\"", "<ETag>")
        .replace("\"</ETag>", "</ETag>");
    parts.headers.insert(
        http::header::CONTENT_LENGTH,
        http::HeaderValue::from(out.len()),
    );
    http::Response::from_parts(parts, s3s::Body::from(out))
}

/// An error answer's XML with the request's id in `<RequestId>`, as S3's carry it (clients
/// print it, and support asks for it); other bodies as they are.
fn with_request_id(mut body: s3s::Body, id: &str, headers: &mut http::HeaderMap) -> s3s::Body {
    let Some(bytes) = body.take_bytes() else {
        return body;
    };
    let text = match std::str::from_utf8(&bytes) {
        Ok(t) if t.ends_with("</Error>") && !t.contains("<RequestId>") => t,
        _ => return s3s::Body::from(bytes),
    };
    let out = format!(
        "{}<RequestId>{id}</RequestId></Error>",
        &text[..text.len() - "</Error>".len()]
    );
    headers.insert(
        http::header::CONTENT_LENGTH,
        http::HeaderValue::from(out.len()),
    );
    s3s::Body::from(out)
}

/// A `Range` that does not parse is ignored by S3 (the whole object is answered); `s3s` would
/// refuse it with 400 before the gateway sees the operation. Such a GET or HEAD is marked here
/// for the route that serves it again without the header once `s3s` has verified its signature
/// (`ranges.rs`), whether the signature covers the header or not.
fn mark_bad_range(parts: &mut http::request::Parts) {
    let get = parts.method == http::Method::GET || parts.method == http::Method::HEAD;
    if get
        && parts
            .headers
            .get(http::header::RANGE)
            .is_some_and(super::ranges::unparsable)
    {
        parts.extensions.insert(super::ranges::BadRange);
    }
}

/// SigV4 takes a header-signed request's time from `Date` when it has no `X-Amz-Date`; `s3s`
/// reads only the latter, so it is set from `Date` (the same instant, in SigV4's format: the
/// string to sign uses it). Only after the gate, which counts it as no header of the client's.
fn dated_by_date_header(headers: &mut http::HeaderMap) {
    let v4 = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256 "));
    if !v4 || headers.contains_key("x-amz-date") {
        return;
    }
    let Some(date) = headers
        .get(http::header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|d| s3s::dto::Timestamp::parse(s3s::dto::TimestampFormat::HttpDate, d).ok())
    else {
        return;
    };
    let mut iso = Vec::new();
    if date
        .format(s3s::dto::TimestampFormat::DateTime, &mut iso)
        .is_err()
    {
        return;
    }
    // 2026-11-29T01:45:31.000Z -> 20261129T014531Z
    let iso = String::from_utf8_lossy(&iso);
    let basic: String = iso
        .split('.')
        .next()
        .unwrap_or("")
        .trim_end_matches('Z')
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    if let Ok(v) = http::HeaderValue::from_str(&format!("{basic}Z")) {
        headers.insert("x-amz-date", v);
    }
}

/// Whether a request comes with a body: a non-zero `Content-Length`, or a transfer coding.
fn sends_body(headers: &http::HeaderMap) -> bool {
    headers.contains_key(http::header::TRANSFER_ENCODING)
        || headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

/// What a request asks, for the log of a refusal (the operation is chosen only after the
/// checks): its method, whether it names the service, a bucket or an object, and its query
/// parameters' names (`PUT object ?partNumber&uploadId`). Never a bucket or key name, nor a
/// parameter value (a signature, a credential).
fn shape(parts: &http::request::Parts) -> String {
    let path = parts.uri.path().trim_start_matches('/');
    let target = match path.split_once('/') {
        _ if path.is_empty() => "service",
        Some((_, key)) if !key.is_empty() => "object",
        _ => "bucket",
    };
    let names: Vec<&str> = parts
        .uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').map_or(p, |(k, _)| k))
        .filter(|k| k.len() <= 40)
        .collect();
    if names.is_empty() {
        format!("{} {target}", parts.method)
    } else {
        format!("{} {target} ?{}", parts.method, names.join("&"))
    }
}

/// The request's body for `s3s`, once the gate lets the request in and a small body (see
/// `small_body`) has arrived whole and matches its hashes; otherwise the refusal's label for the
/// log and the error the client gets.
async fn admit(
    gateway: &Gateway,
    gate: &Gate,
    parts: &http::request::Parts,
    body: hyper::body::Incoming,
) -> Result<s3s::Body, (&'static str, s3s::S3Error)> {
    match gate.screen(parts) {
        Ok(()) => {}
        Err(refusal) => {
            let reason = refusal.reason.label();
            gateway
                .metrics
                .refused
                .get_or_create(&RefusalLabels { reason })
                .inc();
            return Err((reason, refusal.error));
        }
    }
    if !small_body::is_small(parts) {
        // The body goes to s3s as hyper gave it; its payload is counted where the gateway
        // reads it (`body::BodyReader`): wrapping it here cost PUTs a third more CPU.
        return Ok(s3s::Body::from(body));
    }
    match small_body::read_checked(parts, body, MAX_XML_BODY, gateway.body_idle).await {
        Ok(bytes) => Ok(s3s::Body::from(bytes)),
        Err(r) => {
            if r.stalled {
                gateway.metrics.body_stalls.inc();
            }
            Err((
                if r.stalled {
                    "body_stalled"
                } else {
                    "body_mismatch"
                },
                r.error,
            ))
        }
    }
}

/// Logs why `s3s` refused a request (signature mismatch, unknown key, expired, a bad request):
/// the S3 error code from the response, never a secret or a signature.
fn log_refusal(span: &tracing::Span, op: &OpSlot, shape: &str, resp: &http::Response<s3s::Body>) {
    let body = resp.body().bytes().unwrap_or_default();
    let text = String::from_utf8_lossy(&body);
    let code = text
        .split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map_or("unknown", |(code, _)| code);
    let status = resp.status().as_u16();
    span.in_scope(|| {
        if matches!(status, 401 | 403) {
            tracing::info!(
                op = op.get(),
                request = shape,
                status,
                code,
                "request refused"
            );
        } else if status == 501 {
            tracing::info!(
                op = op.get(),
                request = shape,
                status,
                code,
                "operation not implemented"
            );
        } else {
            tracing::debug!(
                op = op.get(),
                request = shape,
                status,
                code,
                "request answered with a client error"
            );
        }
    });
}
