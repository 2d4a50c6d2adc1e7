//! Request bodies as `AsyncRead`, hashed on the way through for the S3 checksums the client
//! asked for; and object readers as response streams.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use s3s::checksum::ChecksumHasher;
use s3s::dto::StreamingBlob;
use tokio::io::{AsyncRead, AsyncWriteExt as _, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::coordinator::ObjectReader;
use crate::coordinator::object::ObjectError;

/// Why reading a request body failed, typed where it happens (the S3 error each becomes is
/// decided in `error.rs`).
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    /// Nothing came for longer than the idle timeout.
    #[error("the request body sent nothing for {0:?}")]
    Stalled(Duration),
    /// A chunk signature of an aws-chunked body did not verify.
    #[error("a chunk signature of the request body does not verify")]
    ChunkSignature,
    /// The body does not match its signed `x-amz-content-sha256`.
    #[error("the request body does not match its signed SHA-256")]
    Sha256Mismatch,
    /// The aws-chunked framing is malformed, or the body is not as long as announced.
    #[error("the request body is malformed: {0}")]
    Malformed(String),
    /// The client's connection failed.
    #[error("{0}")]
    Client(String),
}

impl BodyError {
    /// An error of the body stream `s3s` hands over. Its own types for these
    /// (`AwsChunkedStreamError`, `UploadStreamError`) are private to `s3s`, so they are told
    /// apart here, and only here, by the exact variant each prints (`Type: Variant`, the
    /// innermost last), for the `s3s` version `Cargo.toml` pins; `tests/it/s3.rs` sends each
    /// kind of bad body and checks the S3 error it gets.
    fn of_stream(e: &(dyn std::error::Error + Send + Sync + 'static)) -> Self {
        let text = e.to_string();
        let inner = text.rsplit("Underlying: ").next().unwrap_or(&text);
        match inner.split_once(": ") {
            Some(("AwsChunkedStreamError", "SignatureMismatch")) => Self::ChunkSignature,
            Some(("UploadStreamError", "Sha256Mismatch")) => Self::Sha256Mismatch,
            Some(("AwsChunkedStreamError" | "UploadStreamError", variant)) => {
                Self::Malformed(variant.to_owned())
            }
            _ => Self::Client(text),
        }
    }
}

/// How long a request body may send nothing, and the count of bodies that did.
#[derive(Debug, Clone)]
pub(crate) struct IdleLimit {
    pub(crate) idle: Duration,
    pub(crate) stalls: prometheus_client::metrics::counter::Counter,
}

/// A request body read as bytes, feeding a checksum hasher; a body that sends nothing for
/// longer than its idle limit ends in [`BodyError::Stalled`].
pub(crate) struct BodyReader {
    blob: Option<StreamingBlob>,
    pending: Bytes,
    pub(crate) hasher: ChecksumHasher,
    received: prometheus_client::metrics::counter::Counter,
    limit: IdleLimit,
    /// Armed when the reader starts waiting for the client (not while the gateway itself is
    /// slow to read: back-pressure from the sites is no fault of the client's).
    timer: Pin<Box<Sleep>>,
    waiting: bool,
}

impl BodyReader {
    /// `received` counts the payload bytes as they arrive (`exclave_s3_received_bytes_total`).
    pub(crate) fn new(
        blob: Option<StreamingBlob>,
        hasher: ChecksumHasher,
        received: prometheus_client::metrics::counter::Counter,
        limit: IdleLimit,
    ) -> Self {
        let timer = Box::pin(tokio::time::sleep(limit.idle));
        Self {
            blob,
            pending: Bytes::new(),
            hasher,
            received,
            limit,
            timer,
            waiting: false,
        }
    }
}

impl AsyncRead for BodyReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        while this.pending.is_empty() {
            let Some(blob) = this.blob.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            match Pin::new(blob).poll_next(cx) {
                Poll::Pending => {
                    if !this.waiting {
                        this.waiting = true;
                        this.timer.as_mut().reset(Instant::now() + this.limit.idle);
                    }
                    if this.timer.as_mut().poll(cx).is_ready() {
                        this.blob = None;
                        this.limit.stalls.inc();
                        return Poll::Ready(Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            BodyError::Stalled(this.limit.idle),
                        )));
                    }
                    return Poll::Pending;
                }
                Poll::Ready(None) => {
                    this.blob = None;
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Some(Err(e))) => {
                    this.blob = None;
                    return Poll::Ready(Err(std::io::Error::other(BodyError::of_stream(&*e))));
                }
                Poll::Ready(Some(Ok(b))) => {
                    this.waiting = false;
                    this.received.inc_by(b.len() as u64);
                    this.hasher.update(&b);
                    this.pending = b;
                }
            }
        }
        let n = this.pending.len().min(buf.remaining());
        buf.put_slice(&this.pending.split_to(n));
        Poll::Ready(Ok(()))
    }
}

/// An object reader as a response body stream.
pub(crate) async fn object_stream(mut reader: ObjectReader) -> Result<StreamingBlob, ObjectError> {
    // The first batch is read before the answer starts: an object that cannot be read at all
    // gets an error status, not a 200 with a short body.
    let first = reader.next().await.transpose()?;
    // After an error the stream ends: the client sees a short body, never bytes past a gap.
    let rest = futures::stream::unfold(Some(reader), |state| async move {
        let mut r = state?;
        match r.next().await {
            None => None,
            Some(Ok(b)) => Some((Ok::<Bytes, ObjectError>(b), Some(r))),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "object read failed mid-stream");
                Some((Err(e), None))
            }
        }
    });
    let s = futures::StreamExt::chain(
        futures::stream::iter(first.map(Ok::<Bytes, ObjectError>)),
        rest,
    );
    Ok(StreamingBlob::wrap(s))
}

/// A pipe fed by object readers in order: the read half, and the task feeding it.
pub(crate) fn pipe_from(
    readers: Vec<ObjectReader>,
) -> (
    tokio::io::DuplexStream,
    tokio::task::JoinHandle<Result<(), ObjectError>>,
) {
    let (rx, mut tx) = tokio::io::duplex(1 << 20);
    let feed = tokio::spawn(async move {
        for mut r in readers {
            while let Some(piece) = r.next().await {
                let piece: Bytes = piece?;
                // The reader side gone means the put failed; it reports why.
                if tx.write_all(&piece).await.is_err() {
                    return Ok(());
                }
            }
        }
        let _ = tx.shutdown().await;
        Ok(())
    });
    (rx, feed)
}
