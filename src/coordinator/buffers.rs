//! Buffers a read fills (each fetched block, each opened stripe) and gets back once they are
//! dropped (a stripe's once the client's connection has sent it), up to a bound. Allocating a
//! fresh one each time cost a large GET a fifth of its CPU here: the allocator gave the memory
//! back to the kernel, which faulted it in again, zeroed, for the next one.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

/// Free read buffers, at most `limit` bytes of them kept (the default keeps none).
#[derive(Debug, Default)]
pub struct BufferPool {
    free: Mutex<Free>,
    limit: usize,
}

#[derive(Debug, Default)]
struct Free {
    buffers: Vec<Vec<u8>>,
    bytes: usize,
}

impl BufferPool {
    /// A pool that keeps at most `limit` bytes of free buffers (0: keeps none).
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            ..Self::default()
        })
    }

    /// An empty buffer with room for `len` bytes: a kept one if one is large enough.
    pub fn take(&self, len: usize) -> Vec<u8> {
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        // A close fit: a stripe's buffer is not spent on one block while stripes wait.
        let fits = |b: &Vec<u8>| b.capacity() >= len && b.capacity() <= len.saturating_mul(2);
        if let Some(i) = free.buffers.iter().rposition(fits) {
            let buf = free.buffers.swap_remove(i);
            free.bytes -= buf.capacity();
            return buf;
        }
        drop(free);
        Vec::with_capacity(len)
    }

    /// Keeps `buf` for a later [`Self::take`], freeing the longest kept ones if the bound
    /// needs room: what was given back last is what the reads in flight ask for next (a pool
    /// full of one fetch's blocks would otherwise turn every stripe away).
    fn give(&self, mut buf: Vec<u8>) {
        let cap = buf.capacity();
        if cap == 0 || cap > self.limit {
            return;
        }
        buf.clear();
        let mut evicted = Vec::new();
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        let mut oldest = 0;
        while free.bytes + cap > self.limit && oldest < free.buffers.len() {
            free.bytes -= free.buffers[oldest].capacity();
            oldest += 1;
        }
        evicted.extend(free.buffers.drain(..oldest));
        free.bytes += cap;
        free.buffers.push(buf);
        drop(free);
        // Freed outside the lock: giving memory back to the kernel takes a system call.
        drop(evicted);
    }

    /// `buf` as shared bytes that come back to this pool when the last reference is dropped.
    pub fn share(self: &Arc<Self>, buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(Pooled {
            buf,
            pool: self.clone(),
        })
    }

    /// Bytes of free buffers kept now.
    pub fn kept(&self) -> usize {
        self.free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .bytes
    }
}

/// A buffer on loan from a pool.
struct Pooled {
    buf: Vec<u8>,
    pool: Arc<BufferPool>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.give(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_comes_back_when_its_last_slice_is_dropped_and_is_reused() {
        let pool = BufferPool::new(1 << 20);
        let mut buf = pool.take(1000);
        buf.extend_from_slice(&[7u8; 1000]);
        let ptr = buf.as_ptr();
        let bytes = pool.share(buf);
        let slice = bytes.slice(10..20);
        drop(bytes);
        assert_eq!(pool.kept(), 0, "a slice still holds the buffer");
        assert_eq!(&slice[..], &[7u8; 10]);
        drop(slice);
        assert!(pool.kept() >= 1000);
        let again = pool.take(500);
        assert_eq!(again.as_ptr(), ptr, "the kept buffer is handed out again");
        assert!(again.is_empty(), "a reused buffer starts empty");
        assert_eq!(pool.kept(), 0);
    }

    #[test]
    fn the_pool_keeps_no_more_than_its_bound() {
        let pool = BufferPool::new(2500);
        let shared: Vec<Bytes> = (0..4).map(|_| pool.share(pool.take(1000))).collect();
        drop(shared);
        assert!(pool.kept() <= 2500, "kept {}", pool.kept());
        assert!(pool.kept() >= 2000, "two buffers fit the bound");
        // A larger buffer given back makes room by freeing the longest kept.
        let mut big = pool.take(2000);
        big.extend_from_slice(&[1u8; 2000]);
        let big_ptr = big.as_ptr();
        drop(pool.share(big));
        assert!(pool.kept() <= 2500, "kept {}", pool.kept());
        let again = pool.take(1500);
        assert_eq!(again.as_ptr(), big_ptr, "the last given back is kept");
        // Too small a kept buffer is not handed out for a larger need.
        assert!(pool.take(1 << 16).capacity() >= 1 << 16);
        // A pool of bound 0 keeps nothing.
        let none = BufferPool::new(0);
        drop(none.share(none.take(100)));
        assert_eq!(none.kept(), 0);
    }
}
