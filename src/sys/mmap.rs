//! The one place the crate maps files into memory.

use std::fs::File;

use bytes::Bytes;

/// Maps a shard file read-only and returns its bytes (zero-copy).
///
/// Shard files are immutable once renamed into place: the node never writes to them again and
/// only ever renames them (into quarantine). The caller checks the file length against the
/// header before using any block, and every block's CRC before returning it.
#[allow(unsafe_code)]
pub(crate) fn map(file: &File) -> std::io::Result<Bytes> {
    if file.metadata()?.len() == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: the mapping is read-only and the file is never modified in place by this
    // process (see above). Another process truncating it under us is outside the threat model
    // of a running node: a host that can do that can also kill the process.
    let map = unsafe { memmap2::Mmap::map(file)? };
    Ok(Bytes::from_owner(map))
}
