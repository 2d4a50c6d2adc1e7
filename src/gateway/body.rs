//! Request bodies as `AsyncRead`, hashed on the way through for the S3 checksums the client
//! asked for; and object readers as response streams.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use s3s::checksum::ChecksumHasher;
use s3s::dto::StreamingBlob;
use tokio::io::{AsyncRead, ReadBuf};

use crate::coordinator::ObjectReader;
use crate::coordinator::object::ObjectError;

/// A request body read as bytes, feeding a checksum hasher.
pub(crate) struct BodyReader {
    blob: Option<StreamingBlob>,
    pending: Bytes,
    pub(crate) hasher: ChecksumHasher,
    received: prometheus_client::metrics::counter::Counter,
}

impl BodyReader {
    /// `received` counts the payload bytes as they arrive (`exclave_s3_received_bytes_total`).
    pub(crate) fn new(
        blob: Option<StreamingBlob>,
        hasher: ChecksumHasher,
        received: prometheus_client::metrics::counter::Counter,
    ) -> Self {
        Self {
            blob,
            pending: Bytes::new(),
            hasher,
            received,
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
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    this.blob = None;
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Some(Err(e))) => {
                    this.blob = None;
                    return Poll::Ready(Err(std::io::Error::other(e)));
                }
                Poll::Ready(Some(Ok(b))) => {
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
