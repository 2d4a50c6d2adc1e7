//! Around every S3 request: a request id (the `x-amz-request-id` header, and a `s3{id=..}`
//! span on every log line the request causes), byte counts, and the metrics of the finished
//! request (operation, status, latency to the end of the response body).

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

/// The S3 operation a request was dispatched to, filled in by the `S3` trait methods.
#[derive(Clone, Debug, Default)]
pub(crate) struct OpSlot(Arc<OnceLock<&'static str>>);

impl OpSlot {
    fn get(&self) -> &'static str {
        self.0.get().copied().unwrap_or("none")
    }
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
            401 | 403 => tracing::info!(op, status = self.status, ms, "request refused"),
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

/// Serves one S3 request through `service` with an id, a span, counts and metrics.
pub(crate) async fn handle(
    gateway: Arc<Gateway>,
    ids: Arc<RequestIds>,
    service: s3s::service::S3Service,
    req: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<Counted<s3s::Body>>, s3s::HttpError> {
    use tracing::Instrument as _;
    let started = Instant::now();
    let in_flight = InFlight::start(&gateway.metrics.in_flight);
    let id = ids.next();
    let span = tracing::info_span!("s3", id = %id);
    let op = OpSlot::default();
    let (mut parts, body) = req.into_parts();
    parts.extensions.insert(op.clone());
    // The request body goes to s3s as hyper gave it; its payload is counted where the gateway
    // reads it (`body::BodyReader`): wrapping it here cost PUTs a third more CPU.
    let req = http::Request::from_parts(parts, s3s::Body::from(body));
    let resp = service.call(req).instrument(span.clone()).await?;
    let (mut parts, body) = resp.into_parts();
    if let Ok(v) = http::HeaderValue::from_str(&id) {
        parts.headers.insert("x-amz-request-id", v);
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
