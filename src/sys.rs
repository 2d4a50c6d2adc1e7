//! Machine access that any layer but `core` may use: randomness, the wall clock, and files
//! written whole (atomically, or as secrets only the owner reads) or read as secrets (their
//! permissions checked); `files` (the narrow file interface a node's store writes through,
//! with `mmap`), `group` (group commit to a redb database), `listen` (listening sockets, bound or handed over by systemd) and, in tests, `sim` (that interface simulated, crashing at any point). It
//! imports nothing from the crate. `core` takes none of it: time and randomness are its
//! callers' arguments there.

pub mod files;
pub mod group;
pub mod listen;
mod mmap;
#[cfg(test)]
pub mod sim;

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// A file could not be read or written as asked.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Reading or writing failed.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A secret file can be read by others.
    #[error(
        "secret file {path} is readable by group or others (mode {mode:o}); run `chmod 600 {path}`"
    )]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FileError + '_ {
    move |error| FileError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// Fills `buf` from the system's secure random generator.
pub fn random(buf: &mut [u8]) {
    // aws-lc's generator does not fail on Linux; if it ever did, a zero key must not be used.
    if aws_lc_rs::rand::fill(buf).is_err() {
        std::process::abort();
    }
}

/// `n` random characters of `alphabet` (whose length divides 256, so each is equally likely).
pub fn random_text(n: usize, alphabet: &[u8]) -> String {
    debug_assert!(256 % alphabet.len() == 0);
    let mut b = vec![0u8; n];
    random(&mut b);
    b.iter()
        .map(|x| alphabet[usize::from(*x) % alphabet.len()] as char)
        .collect()
}

/// Milliseconds since the Unix epoch by the wall clock (0 before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Creates `path` (it must not exist) readable by the owner only, with `contents`, synced.
pub fn write_secret(path: &Path, contents: &[u8]) -> Result<(), FileError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    f.write_all(contents).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

/// Replaces `path` with `contents` whole or not at all: a temporary file beside it (owner-only,
/// synced), renamed over it, the directory synced.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), FileError> {
    let tmp = path.with_extension("writing");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(contents).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// An exclusive lock on `path` (created if missing, owner-only), held while the returned file
/// is open; `None` if another process holds it.
pub fn try_lock(path: &Path) -> Result<Option<File>, FileError> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    match f.try_lock() {
        Ok(()) => Ok(Some(f)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(io(path)(e)),
    }
}

/// Reads a secret file, refusing it if group or others may read it.
pub fn read_secret(path: &Path) -> Result<Vec<u8>, FileError> {
    let meta = std::fs::metadata(path).map_err(io(path))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(FileError::Exposed {
            path: path.to_path_buf(),
            mode,
        });
    }
    std::fs::read(path).map_err(io(path))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_lock_is_held_until_its_file_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.lock");
        let held = super::try_lock(&path).unwrap().expect("free");
        assert!(super::try_lock(&path).unwrap().is_none(), "taken twice");
        drop(held);
        assert!(super::try_lock(&path).unwrap().is_some(), "not released");
    }
}
