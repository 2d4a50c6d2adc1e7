//! Length-prefixed frames of core's wire messages on QUIC streams.

use quinn::{RecvStream, SendStream};

use crate::core::format::FormatError;
use crate::core::wire::{self, ErrorCode, MAX_FRAME, Message, WireError};

/// Errors of the transport.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// Could not connect.
    #[error("connect to {addr}: {reason}")]
    Connect {
        /// Address dialled.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The connection failed.
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// Writing to a stream failed.
    #[error("write: {0}")]
    Write(#[from] quinn::WriteError),
    /// Reading a frame from a stream failed.
    #[error("read: {0}")]
    Read(#[from] quinn::ReadExactError),
    /// Reading a whole stream failed.
    #[error("read: {0}")]
    ReadToEnd(#[from] quinn::ReadToEndError),
    /// The peer sent a frame we cannot decode.
    #[error("frame: {0}")]
    Frame(#[from] WireError),
    /// The peer answered with an error.
    #[error("remote {code:?}: {message}")]
    Remote {
        /// Kind.
        code: ErrorCode,
        /// Details.
        message: String,
    },
    /// The peer answered something that does not fit the request.
    #[error("protocol violation: {request} answered {answer}")]
    Unexpected {
        /// The request.
        request: &'static str,
        /// What came back (its kind, for the log).
        answer: String,
    },
    /// A shard header or geometry that does not encode or decode.
    #[error("shard header: {0}")]
    Format(#[from] FormatError),
    /// No client is configured for the node a placement names.
    #[error("no client for node {0}")]
    NoClient(u32),
    /// A shard upload ended before its header was sent (the write gave up).
    #[error("the write was abandoned")]
    Abandoned,
    /// The operation took too long.
    #[error("timed out")]
    Timeout,
}

impl NetError {
    /// Whether the peer answered, if only to say no (not here, refused, disk full): every other
    /// error is no answer (unreachable, timed out, the connection lost).
    pub fn is_answer(&self) -> bool {
        matches!(self, Self::Remote { .. })
    }

    /// Whether the peer said the disk a write was for is full.
    pub fn is_disk_full(&self) -> bool {
        matches!(
            self,
            Self::Remote {
                code: ErrorCode::DiskFull,
                ..
            }
        )
    }
}

/// Reads exactly `buf.len()` bytes.
pub async fn read_exact(recv: &mut RecvStream, buf: &mut [u8]) -> Result<(), NetError> {
    Ok(recv.read_exact(buf).await?)
}

/// Reads exactly `len` bytes onto the end of `buf`, chunk by chunk as quinn holds them (a
/// buffer with room for them is never zeroed first, nor grown).
pub async fn read_into(
    recv: &mut RecvStream,
    len: usize,
    buf: &mut Vec<u8>,
) -> Result<(), NetError> {
    let mut got = 0usize;
    while got < len {
        let chunk = recv
            .read_chunk(len - got, true)
            .await
            .map_err(quinn::ReadExactError::ReadError)?
            .ok_or(quinn::ReadExactError::FinishedEarly(got))?;
        got += chunk.bytes.len();
        buf.extend_from_slice(&chunk.bytes);
    }
    Ok(())
}

/// Reads one frame body (version + archive), refusing lengths beyond [`MAX_FRAME`].
pub async fn read_body(recv: &mut RecvStream) -> Result<Vec<u8>, NetError> {
    let mut len = [0u8; 4];
    read_exact(recv, &mut len).await?;
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(WireError::TooLarge(len).into());
    }
    let mut body = vec![0u8; len];
    read_exact(recv, &mut body).await?;
    Ok(body)
}

/// Reads and decodes one frame.
pub async fn read_frame<T: Message>(recv: &mut RecvStream) -> Result<T, NetError> {
    let body = read_body(recv).await?;
    Ok(wire::decode_body(&body)?)
}

/// Encodes and writes one frame.
pub async fn write_frame<T: Message>(send: &mut SendStream, msg: &T) -> Result<(), NetError> {
    let body = wire::encode_body(msg);
    let mut framed = Vec::with_capacity(4 + body.len());
    framed.extend_from_slice(&(body.len() as u32).to_le_bytes());
    framed.extend_from_slice(&body);
    send.write_all(&framed).await?;
    Ok(())
}
