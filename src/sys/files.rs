//! The narrow storage interface under a node's store: every write, fsync, rename and
//! directory fsync it makes goes through [`Files`], and its database's bytes through the
//! [`redb::StorageBackend`] that [`Files::database`] puts under it. The running node uses
//! [`RealFiles`] (the file system, shard files memory-mapped); the crash tests use a
//! simulation that records every operation and can crash after any of them (`sim`).

use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use redb::Database;

/// A file being written (created, then appended to, then synced).
pub trait FileWrite: Send + Debug {
    /// Appends `data`.
    fn write_all(&mut self, data: &[u8]) -> io::Result<()>;
    /// Makes what was written durable (fsync).
    fn sync(&mut self) -> io::Result<()>;
}

/// The file operations of a node's store.
pub trait Files: Send + Sync + Debug + 'static {
    /// Creates a file for writing: a new one (`new`, failing if it exists), or replacing one.
    fn create(&self, path: &Path, new: bool) -> io::Result<Box<dyn FileWrite>>;
    /// Creates a directory and its missing parents (not durable until their parents are
    /// synced).
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Makes a directory's entries durable (fsync of the directory).
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Renames a file (atomic; durable once both directories are synced).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Gives a file a second name (durable once the new name's directory is synced).
    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Whether a file or directory exists.
    fn exists(&self, path: &Path) -> bool;
    /// The entries of a directory.
    fn read_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>>;
    /// A file's length and when it was last modified (ms since the epoch).
    fn stat(&self, path: &Path) -> io::Result<(u64, u64)>;
    /// A whole file's bytes (memory-mapped where that is possible).
    fn read(&self, path: &Path) -> io::Result<Bytes>;
    /// Opens or creates the database at `path`, with a page cache of `cache_bytes`.
    fn database(&self, path: &Path, cache_bytes: usize) -> Result<Database, redb::DatabaseError>;
    /// (bytes in all, bytes free) of the file system holding `path`.
    fn space(&self, path: &Path) -> io::Result<(u64, u64)>;
}

/// The file system.
#[derive(Debug, Default)]
pub struct RealFiles;

#[derive(Debug)]
struct RealFile(File);

impl FileWrite for RealFile {
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.0.write_all(data)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.0.sync_all()
    }
}

impl Files for RealFiles {
    fn create(&self, path: &Path, new: bool) -> io::Result<Box<dyn FileWrite>> {
        let mut o = OpenOptions::new();
        o.write(true);
        if new {
            o.create_new(true);
        } else {
            o.create(true).truncate(true);
        }
        Ok(Box::new(RealFile(o.open(path)?)))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path).and_then(|d| d.sync_all())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::hard_link(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        fs::read_dir(path)?.map(|e| e.map(|e| e.path())).collect()
    }

    fn read(&self, path: &Path) -> io::Result<Bytes> {
        super::mmap::map(&File::open(path)?)
    }

    fn stat(&self, path: &Path) -> io::Result<(u64, u64)> {
        let m = fs::metadata(path)?;
        let modified = m
            .modified()?
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Ok((m.len(), modified))
    }

    fn database(&self, path: &Path, cache_bytes: usize) -> Result<Database, redb::DatabaseError> {
        // redb's default cache is 1 GiB per database, and it fills as the database grows.
        Database::builder().set_cache_size(cache_bytes).create(path)
    }

    fn space(&self, path: &Path) -> io::Result<(u64, u64)> {
        let st = rustix::fs::statvfs(path)?;
        Ok((
            st.f_blocks.saturating_mul(st.f_frsize),
            st.f_bavail.saturating_mul(st.f_frsize),
        ))
    }
}
