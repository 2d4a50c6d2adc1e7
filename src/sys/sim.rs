//! A file system in memory for the crash-point tests, in the way redb tests its own backend:
//! it records every write, fsync, rename, removal and directory fsync (the database's page
//! writes and syncs included), can crash after any of them, and then gives the image a power
//! cut would leave: what was synced, what was synced plus half of the last unsynced write (a
//! torn write), or everything written (a process kill: the kernel kept it).
//!
//! The model, as POSIX promises and no more: a file's bytes are durable once the file is
//! synced; a directory entry (created, renamed in or out, removed) once its directory is
//! synced; an entry whose parent directory entry is not durable does not survive.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use redb::{Database, StorageBackend};

use super::files::{FileWrite, Files};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Entry {
    Dir,
    File(usize),
}

#[derive(Clone, Debug, Default)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Debug, Default)]
struct State {
    inodes: Vec<Inode>,
    names: BTreeMap<PathBuf, Entry>,
    durable: BTreeMap<PathBuf, Entry>,
    ops: u64,
    crash_after: Option<u64>,
    crashed: bool,
    /// The last write not yet synced: (inode, offset, bytes).
    last_write: Option<(usize, u64, Vec<u8>)>,
    /// What each operation was, in order.
    log: Vec<String>,
    /// Directories whose file system is full: writes under them fail (not an operation).
    full: Vec<PathBuf>,
}

/// What survives a crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Survives {
    /// What was synced (a power cut).
    Synced,
    /// What was synced, and the first half of the last write if it was not (a torn write).
    Torn,
    /// Everything written (the process was killed; the kernel wrote it out).
    Everything,
}

impl Survives {
    pub const ALL: [Self; 3] = [Self::Synced, Self::Torn, Self::Everything];
}

/// The simulated file system (clones share it).
#[derive(Clone, Debug, Default)]
pub struct SimFiles(Arc<Mutex<State>>);

fn crash_error() -> io::Error {
    io::Error::other("simulated crash")
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, path.display().to_string())
}

/// Writes `data` into `d` at `offset`, growing it with zeros as needed.
fn put(d: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let end = offset as usize + data.len();
    if d.len() < end {
        d.resize(end, 0);
    }
    d[offset as usize..end].copy_from_slice(data);
}

impl State {
    /// Counts an operation that changes the disk; fails it (and every one after) at the crash
    /// point.
    fn op(&mut self, what: impl FnOnce() -> String) -> io::Result<()> {
        if self.crashed || self.crash_after == Some(self.ops) {
            self.crashed = true;
            return Err(crash_error());
        }
        self.ops += 1;
        self.log.push(what());
        Ok(())
    }

    /// Fails a write under a full directory, as the kernel does (ENOSPC).
    fn room(&self, path: &Path) -> io::Result<()> {
        if self.full.iter().any(|d| path.starts_with(d)) {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!("{}: no space left on device", path.display()),
            ));
        }
        Ok(())
    }

    fn dir_exists(&self, path: &Path) -> bool {
        path.parent().is_none() || self.names.get(path) == Some(&Entry::Dir)
    }

    fn write_at(&mut self, inode: usize, offset: u64, data: &[u8]) {
        put(&mut self.inodes[inode].data, offset, data);
        self.last_write = Some((inode, offset, data.to_vec()));
    }

    fn sync_inode(&mut self, inode: usize) {
        let i = &mut self.inodes[inode];
        i.durable = i.data.clone();
        if self.last_write.as_ref().is_some_and(|w| w.0 == inode) {
            self.last_write = None;
        }
    }
}

impl SimFiles {
    /// An empty file system.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes everything durable now (the state a finished setup leaves).
    pub fn settle(&self) {
        let mut s = self.state();
        s.durable = s.names.clone();
        for i in &mut s.inodes {
            i.durable = i.data.clone();
        }
        s.last_write = None;
    }

    /// Crash at the `n`th operation from now on counted (0: the next one fails).
    pub fn crash_after(&self, n: u64) {
        let mut s = self.state();
        s.crash_after = Some(s.ops + n);
    }

    /// Fills the file system under `dir`: writes there fail with "no space left" until
    /// [`Self::free`]. A crash image starts with room everywhere.
    pub fn fill(&self, dir: &Path) {
        self.state().full.push(dir.to_path_buf());
    }

    /// Makes room under `dir` again.
    pub fn free(&self, dir: &Path) {
        self.state().full.retain(|d| d != dir);
    }

    /// Operations counted so far.
    pub fn ops(&self) -> u64 {
        self.state().ops
    }

    /// The `i`th operation, described.
    pub fn describe(&self, i: u64) -> String {
        self.state()
            .log
            .get(i as usize)
            .cloned()
            .unwrap_or_default()
    }

    /// Whether the crash point was reached.
    pub fn has_crashed(&self) -> bool {
        self.state().crashed
    }

    /// The file system a restart finds after a crash now, as `how` says.
    pub fn after_crash(&self, how: Survives) -> Self {
        let s = self.state();
        let mut inodes: Vec<Inode> = s.inodes.clone();
        let names = match how {
            Survives::Everything => s.names.clone(),
            Survives::Synced | Survives::Torn => {
                for i in &mut inodes {
                    i.data = i.durable.clone();
                }
                if how == Survives::Torn
                    && let Some((inode, offset, data)) = &s.last_write
                {
                    put(
                        &mut inodes[*inode].data,
                        *offset,
                        &data[..data.len().div_ceil(2)],
                    );
                }
                // An entry survives only under a surviving directory.
                s.durable
                    .iter()
                    .filter(|(p, _)| {
                        p.ancestors()
                            .skip(1)
                            .all(|a| a.parent().is_none() || s.durable.get(a) == Some(&Entry::Dir))
                    })
                    .map(|(p, e)| (p.clone(), *e))
                    .collect()
            }
        };
        for i in &mut inodes {
            i.durable = i.data.clone();
        }
        Self(Arc::new(Mutex::new(State {
            inodes,
            durable: names.clone(),
            names,
            ..State::default()
        })))
    }

    /// The files under `dir` (recursively), with their lengths.
    pub fn files_under(&self, dir: &Path) -> Vec<(PathBuf, usize)> {
        let s = self.state();
        s.names
            .iter()
            .filter(|(p, _)| p.starts_with(dir))
            .filter_map(|(p, e)| match e {
                Entry::File(i) => Some((p.clone(), s.inodes[*i].data.len())),
                Entry::Dir => None,
            })
            .collect()
    }
}

#[derive(Debug)]
struct SimFile {
    fs: SimFiles,
    inode: usize,
    path: PathBuf,
}

impl FileWrite for SimFile {
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        let mut s = self.fs.state();
        s.room(&self.path)?;
        s.op(|| format!("write {} bytes to {}", data.len(), self.path.display()))?;
        let at = s.inodes[self.inode].data.len() as u64;
        s.write_at(self.inode, at, data);
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut s = self.fs.state();
        s.op(|| format!("fsync {}", self.path.display()))?;
        s.sync_inode(self.inode);
        Ok(())
    }
}

impl Files for SimFiles {
    fn create(&self, path: &Path, new: bool) -> io::Result<Box<dyn FileWrite>> {
        let mut s = self.state();
        if !s.dir_exists(path.parent().unwrap_or(Path::new("/"))) {
            return Err(not_found(path));
        }
        let existing = s.names.get(path).copied();
        if new && existing.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                path.display().to_string(),
            ));
        }
        s.room(path)?;
        s.op(|| format!("create {}", path.display()))?;
        let inode = match existing {
            Some(Entry::File(i)) => {
                s.inodes[i].data.clear();
                i
            }
            Some(Entry::Dir) => return Err(io::Error::other("is a directory")),
            None => {
                s.inodes.push(Inode::default());
                let i = s.inodes.len() - 1;
                s.names.insert(path.to_path_buf(), Entry::File(i));
                i
            }
        };
        Ok(Box::new(SimFile {
            fs: self.clone(),
            inode,
            path: path.to_path_buf(),
        }))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state();
        let missing: Vec<PathBuf> = path
            .ancestors()
            .filter(|a| a.parent().is_some() && !s.names.contains_key(*a))
            .map(Path::to_path_buf)
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        s.op(|| format!("mkdir -p {}", path.display()))?;
        for m in missing {
            s.names.insert(m, Entry::Dir);
        }
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state();
        if !s.dir_exists(path) {
            return Err(not_found(path));
        }
        s.op(|| format!("fsync directory {}", path.display()))?;
        let children = |m: &BTreeMap<PathBuf, Entry>| -> Vec<PathBuf> {
            m.keys()
                .filter(|p| p.parent() == Some(path))
                .cloned()
                .collect()
        };
        for p in children(&s.durable) {
            if !s.names.contains_key(&p) {
                s.durable.remove(&p);
            }
        }
        for p in children(&s.names) {
            let e = s.names[&p];
            s.durable.insert(p, e);
        }
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.state();
        if !s.names.contains_key(from) {
            return Err(not_found(from));
        }
        if !s.dir_exists(to.parent().unwrap_or(Path::new("/"))) {
            return Err(not_found(to));
        }
        s.op(|| format!("rename {} -> {}", from.display(), to.display()))?;
        let e = s.names.remove(from).unwrap_or(Entry::Dir);
        s.names.insert(to.to_path_buf(), e);
        Ok(())
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.state();
        let Some(Entry::File(i)) = s.names.get(from).copied() else {
            return Err(not_found(from));
        };
        if s.names.contains_key(to) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                to.display().to_string(),
            ));
        }
        if !s.dir_exists(to.parent().unwrap_or(Path::new("/"))) {
            return Err(not_found(to));
        }
        s.op(|| format!("link {} -> {}", from.display(), to.display()))?;
        s.names.insert(to.to_path_buf(), Entry::File(i));
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state();
        if !matches!(s.names.get(path), Some(Entry::File(_))) {
            return Err(not_found(path));
        }
        s.op(|| format!("remove {}", path.display()))?;
        s.names.remove(path);
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        let s = self.state();
        path.parent().is_none() || s.names.contains_key(path)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        let s = self.state();
        if !s.dir_exists(path) {
            return Err(not_found(path));
        }
        Ok(s.names
            .keys()
            .filter(|p| p.parent() == Some(path))
            .cloned()
            .collect())
    }

    fn stat(&self, path: &Path) -> io::Result<(u64, u64)> {
        // The simulated disk keeps no times: every file is as old as the epoch.
        let s = self.state();
        match s.names.get(path) {
            Some(Entry::File(i)) => Ok((s.inodes[*i].data.len() as u64, 0)),
            _ => Err(not_found(path)),
        }
    }

    fn read(&self, path: &Path) -> io::Result<Bytes> {
        let s = self.state();
        match s.names.get(path) {
            Some(Entry::File(i)) => Ok(Bytes::from(s.inodes[*i].data.clone())),
            _ => Err(not_found(path)),
        }
    }

    fn database(&self, path: &Path, cache_bytes: usize) -> Result<Database, redb::DatabaseError> {
        let inode = {
            let mut s = self.state();
            match s.names.get(path) {
                Some(Entry::File(i)) => *i,
                _ => {
                    // Created durable: the database is made at `exclave init`, before any
                    // write is acknowledged.
                    s.inodes.push(Inode::default());
                    let i = s.inodes.len() - 1;
                    s.names.insert(path.to_path_buf(), Entry::File(i));
                    s.durable.insert(path.to_path_buf(), Entry::File(i));
                    i
                }
            }
        };
        Database::builder()
            .set_cache_size(cache_bytes)
            .create_with_backend(SimDb {
                fs: self.clone(),
                inode,
                path: path.to_path_buf(),
            })
    }

    fn space(&self, path: &Path) -> io::Result<(u64, u64)> {
        let free = if self.state().room(path).is_ok() {
            1 << 39
        } else {
            0
        };
        Ok((1 << 40, free))
    }
}

/// The database file in the simulation.
#[derive(Debug)]
struct SimDb {
    fs: SimFiles,
    inode: usize,
    path: PathBuf,
}

impl StorageBackend for SimDb {
    fn len(&self) -> io::Result<u64> {
        Ok(self.fs.state().inodes[self.inode].data.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let s = self.fs.state();
        let d = &s.inodes[self.inode].data;
        let end = offset as usize + out.len();
        if end > d.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past the end",
            ));
        }
        out.copy_from_slice(&d[offset as usize..end]);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut s = self.fs.state();
        s.room(&self.path)?;
        s.op(|| format!("database: set length {len}"))?;
        s.inodes[self.inode].data.resize(len as usize, 0);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut s = self.fs.state();
        s.op(|| "database: fsync".to_string())?;
        s.sync_inode(self.inode);
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut s = self.fs.state();
        s.room(&self.path)?;
        s.op(|| format!("database: write {} bytes at {offset}", data.len()))?;
        s.write_at(self.inode, offset, data);
        Ok(())
    }
}
