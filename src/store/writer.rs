//! Shard files being written: bytes to a temporary file, block CRCs computed on the way, then
//! fsync, rename into place and fsync of the directory before the header is committed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::core::format::ShardHeader;
use crate::core::ids::DiskId;
use crate::core::stripe::Geometry;
use crate::core::wire::ShardKey;

use super::{FileWrite, Files, Store, StoreError, io};
use crate::sys::now_ms;

/// A shard being written: bytes go to a temp file, block CRCs are computed on the way.
#[derive(Debug)]
pub struct ShardWriter {
    pub(super) file: Box<dyn FileWrite>,
    pub(super) files: Arc<dyn Files>,
    pub(super) tmp_path: PathBuf,
    pub(super) final_path: PathBuf,
    pub(super) key: ShardKey,
    pub(super) disk: DiskId,
    pub(super) geometry: Geometry,
    pub(super) written: u64,
    pub(super) crcs: Vec<u32>,
    pub(super) block: crc32fast::Hasher,
    pub(super) block_filled: usize,
}

impl ShardWriter {
    /// Bytes the shard must have in all.
    pub fn expected_len(&self) -> u64 {
        self.geometry.shard_len()
    }

    /// Appends bytes.
    pub fn write(&mut self, mut data: &[u8]) -> Result<(), StoreError> {
        if self.written + data.len() as u64 > self.expected_len() {
            return Err(StoreError::BadShard(
                "more bytes than the shard holds".into(),
            ));
        }
        self.file.write_all(data).map_err(io(&self.tmp_path))?;
        self.written += data.len() as u64;
        while !data.is_empty() {
            let s = self.crcs.len() as u64;
            let want = self.geometry.block_len(s) - self.block_filled;
            let take = want.min(data.len());
            self.block.update(&data[..take]);
            self.block_filled += take;
            data = &data[take..];
            if self.block_filled == self.geometry.block_len(s) {
                let h = std::mem::take(&mut self.block);
                self.crcs.push(h.finalize());
                self.block_filled = 0;
            }
        }
        Ok(())
    }

    /// Checks the header against what was written, makes the shard durable and commits it.
    pub fn finish(mut self, store: &Store, header: &ShardHeader) -> Result<(), StoreError> {
        let result = self.finish_inner(store, header);
        if result.is_err() {
            let _ = store.files.remove_file(&self.tmp_path);
        }
        result
    }

    fn finish_inner(&mut self, store: &Store, header: &ShardHeader) -> Result<(), StoreError> {
        let bad = |why: &str| Err(StoreError::BadShard(why.to_string()));
        if self.written != self.expected_len() {
            return bad("fewer bytes than the shard holds");
        }
        if header.object != self.key.object
            || header.version != self.key.version
            || header.shard_index.0 != self.key.shard
        {
            return bad("header names another shard");
        }
        if header.geometry()? != self.geometry {
            return bad("header geometry differs from the request");
        }
        if header.crcs != self.crcs {
            return bad("block CRCs differ from the header (corrupted in transit?)");
        }
        self.file.sync().map_err(io(&self.tmp_path))?;
        let files = &store.files;
        let dir = self.final_path.parent().unwrap_or(Path::new("."));
        if !files.exists(dir) {
            files.create_dir_all(dir).map_err(io(dir))?;
            // The new directory's own entry must be durable too.
            let parent = dir.parent().unwrap_or(Path::new("."));
            files.sync_dir(parent).map_err(io(parent))?;
        }
        // A shard written again (repair rewriting one with bad blocks, a retried upload): the
        // copy it replaces is kept in quarantine, not overwritten, so every byte stays
        // accounted for; the new copy is renamed over it, so one whole copy is always in place.
        let replaced = if files.exists(&self.final_path) && store.header(&self.key).is_ok() {
            Some(store.keep_aside(&self.key, "replaced by a new copy", now_ms())?)
        } else {
            None
        };
        files
            .rename(&self.tmp_path, &self.final_path)
            .map_err(io(&self.final_path))?;
        files.sync_dir(dir).map_err(io(dir))?;
        store.commit_header(self.disk, header, replaced)
    }

    /// Gives up on the shard (the peer went away): the temp file is removed.
    pub fn abort(self) {
        let _ = self.files.remove_file(&self.tmp_path);
    }
}
