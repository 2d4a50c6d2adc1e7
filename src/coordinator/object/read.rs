//! The read path: the newest manifest at a read quorum, then the object's stripes fetched
//! (hedged), checked, decoded and opened, a batch at a time.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;

use super::{ObjectError, Objects, to_targets};
use crate::coordinator::drive::{ReadError, ShardTarget};
use crate::core::format::{Manifest, ManifestEnvelope, ObjectMeta, Piece};
use crate::core::hlc::Version;
use crate::core::ids::{NodeId, ObjectId};
use crate::core::keys::{DataKey, KeyError};
use crate::core::quorum::ManifestRead;
use crate::core::ssec::{self, CustomerKey};
use crate::core::stripe::{Geometry, StripeContext};

/// Stripes fetched per read request.
const READ_BATCH: u64 = 8;

impl Objects {
    /// Every manifest record a node holds, opened (records that do not open are skipped and
    /// counted). For rebuilding the index and for recovery.
    pub async fn scan_node(&self, node: NodeId) -> Result<(Vec<Manifest>, usize), ObjectError> {
        let client = self
            .nodes
            .client(node)
            .cloned()
            .ok_or_else(|| ObjectError::Internal(format!("no client for node {}", node.0)))?;
        let (mut out, mut bad, mut after) = (Vec::new(), 0usize, None);
        loop {
            let page = client
                .list_manifests(after, 1000)
                .await
                .map_err(|e| ObjectError::Internal(format!("node {}: {e}", node.0)))?;
            let Some(last) = page.last() else { break };
            let env = ManifestEnvelope::parse(last)?;
            after = Some((env.object, env.version));
            for rec in &page {
                match Manifest::open(&self.manifest_key, rec) {
                    Ok(m) => out.push(m),
                    Err(_) => bad += 1,
                }
            }
        }
        Ok((out, bad))
    }

    /// The newest manifest of (bucket, key) found at a read quorum, if any (a tombstone is
    /// returned as such). Looked up under the current layout first: a read quorum there
    /// overlaps every write made since it took effect, so if it holds no version at all the
    /// key was last written under an earlier layout, which is asked next (newest first).
    ///
    /// `floor` is the order of the version the caller knows to be current (the gateway's
    /// index). While the newest found is older, the nodes beyond the read quorum are waited for too (a site that
    /// withholds manifests or was rolled back is outvoted by the others); if none of them holds
    /// it, the answer is [`ObjectError::Behind`], never the older version.
    pub async fn head(
        &self,
        bucket: &str,
        key: &str,
        floor: Option<Version>,
    ) -> Result<Option<Manifest>, ObjectError> {
        let object = self.manifest_key.object_id(bucket, key);
        let mut newest: Option<Manifest> = None;
        for targets in self.placements_of(&object) {
            if let Some(m) = self.head_at(object, &targets, floor, None).await?
                && newest
                    .as_ref()
                    .is_none_or(|n| m.precedence() > n.precedence())
            {
                newest = Some(m);
            }
            if newest.is_some() && newest.as_ref().map(|m| m.order) >= floor {
                break;
            }
        }
        if let Some(floor) = floor {
            let found = newest.as_ref().map(|m| m.order);
            if found < Some(floor) {
                return Err(ObjectError::Behind { found, floor });
            }
        }
        if let Some(m) = &newest {
            self.hlc
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .observe(m.order);
        }
        Ok(newest)
    }

    /// The newest manifest of `object` at a read quorum of the manifest nodes of `targets`
    /// (at all of those that answer while it is older than `floor`); with `only`, the best
    /// copy of that one version, unless it was removed.
    pub(super) async fn head_at(
        &self,
        object: ObjectId,
        targets: &[ShardTarget],
        floor: Option<Version>,
        only: Option<Version>,
    ) -> Result<Option<Manifest>, ObjectError> {
        let nodes = Self::manifest_nodes(targets);
        let mut read = ManifestRead::new(self.manifest_quorum(nodes.len()), floor);
        let mut set = tokio::task::JoinSet::new();
        for n in nodes {
            let client = self.nodes.client(n).cloned();
            set.spawn(async move {
                match client {
                    Some(c) => c.manifests(object).await.ok(),
                    None => None,
                }
            });
        }
        while let Some(r) = set.join_next().await {
            let Ok(Some(records)) = r else {
                read.handle_failed();
                continue;
            };
            // A record that does not open (forged, rolled back into another id) is ignored; a
            // failed write some node has not withdrawn yet is not a version, nor one whose
            // commit is under way (it becomes visible to every reader at once).
            read.handle_answer(records.iter().filter_map(|rec| {
                Manifest::open(&self.manifest_key, rec).ok().filter(|m| {
                    m.object == object
                        && only.is_none_or(|v| v == m.version)
                        && !self.withdrawing(&m.object, m.version)
                        && !self.uncommitted(&m.object, m.version)
                })
            }));
            // Any read quorum overlaps every write quorum: the newest acked version is here,
            // unless hosts withheld it (then the caller's floor says so, and the rest are asked).
            if read.done() {
                break;
            }
        }
        read.finish()
            .map_err(|(answered, needed)| ObjectError::ReadQuorum { answered, needed })
    }

    /// A reader of `range` (plaintext bytes) of the object `manifest` describes: of its
    /// pieces (itself, or its parts in order) that the range covers.
    pub fn reader(
        self: &Arc<Self>,
        manifest: &Manifest,
        range: Range<u64>,
    ) -> Result<ObjectReader, ObjectError> {
        self.reader_keyed(manifest, range, None)
    }

    /// [`Self::reader`] of an object that may be stored under a customer's key (SSE-C): each
    /// such piece is opened with `customer`, which must be the key it was stored under.
    pub fn reader_keyed(
        self: &Arc<Self>,
        manifest: &Manifest,
        range: Range<u64>,
        customer: Option<&CustomerKey>,
    ) -> Result<ObjectReader, ObjectError> {
        if manifest.body.meta().is_none() {
            return Err(ObjectError::Internal("a tombstone has no body".into()));
        }
        let mut pieces = VecDeque::new();
        let mut at = 0u64;
        for p in manifest.body.pieces(manifest.object, manifest.version) {
            let span = at..at + p.meta.size;
            at = span.end;
            let lo = range.start.max(span.start);
            let hi = range.end.min(span.end);
            if lo < hi {
                pieces.push_back(self.piece_reader(
                    &p,
                    lo - span.start..hi - span.start,
                    customer,
                )?);
            }
        }
        Ok(ObjectReader::new(pieces))
    }

    fn piece_reader(
        self: &Arc<Self>,
        p: &Piece<'_>,
        range: Range<u64>,
        customer: Option<&CustomerKey>,
    ) -> Result<PieceReader, ObjectError> {
        let meta = p.meta;
        let mut key = self.piece_key(meta, p.object, p.version)?;
        if let Some(check) = ssec::stored_check(meta) {
            // The gateway checked the request's key against the object's; a piece stored
            // under another key is not opened with a wrong one.
            match customer {
                Some(ck) if ck.check() == check => {
                    key = key.masked(&ck.pad(&p.object, p.version));
                }
                _ => return Err(ObjectError::Key(KeyError::Unauthentic)),
            }
        }
        let geometry = meta.geometry()?;
        let range = range.start.min(meta.size)..range.end.min(meta.size);
        let stripes = if meta.size == 0 || range.is_empty() {
            0..0
        } else {
            geometry.stripes_for(range.clone())
        };
        let targets = to_targets(&meta.placement);
        Ok(PieceReader {
            shared: Arc::new(PieceShared {
                objects: self.clone(),
                object: p.object,
                version: p.version,
                meta: meta.clone(),
                key,
                geometry,
                targets,
                range,
            }),
            next: stripes.start,
            end: stripes.end,
        })
    }
}

/// Streams an object's plaintext, stripe by stripe, fetched a batch of stripes at a time with
/// the next batch already on its way (one batch ahead: at most two batches of a stream are in
/// memory besides what the client has not taken yet).
#[derive(Debug)]
pub struct ObjectReader {
    pieces: VecDeque<PieceReader>,
    /// Plaintext opened and not handed out yet, one slice per stripe.
    ready: VecDeque<Bytes>,
    /// The batch fetched ahead.
    ahead: Option<tokio::task::JoinHandle<Result<Vec<Bytes>, ObjectError>>>,
}

impl ObjectReader {
    fn new(pieces: VecDeque<PieceReader>) -> Self {
        Self {
            pieces,
            ready: VecDeque::new(),
            ahead: None,
        }
    }

    /// The next batch's fetch, started; `None` past the end of the range.
    fn launch(&mut self) -> Option<tokio::task::JoinHandle<Result<Vec<Bytes>, ObjectError>>> {
        loop {
            let front = self.pieces.front_mut()?;
            match front.start() {
                Some(batch) => return Some(tokio::spawn(batch)),
                None => {
                    self.pieces.pop_front();
                }
            }
        }
    }

    /// The next piece of plaintext, or `None` at the end of the range.
    pub async fn next(&mut self) -> Option<Result<Bytes, ObjectError>> {
        loop {
            if let Some(b) = self.ready.pop_front() {
                return Some(Ok(b));
            }
            let batch = match self.ahead.take() {
                Some(b) => b,
                None => self.launch()?,
            };
            self.ahead = self.launch();
            match batch.await {
                Ok(Ok(pieces)) => self.ready.extend(pieces),
                Ok(Err(e)) => return Some(Err(e)),
                Err(e) => return Some(Err(ObjectError::Internal(format!("read task: {e}")))),
            }
        }
    }
}

impl Drop for ObjectReader {
    /// A reader given up (the client went away) stops the batch it fetched ahead.
    fn drop(&mut self) {
        if let Some(ahead) = self.ahead.take() {
            ahead.abort();
        }
    }
}

/// One stored object's stripes (a version's, or a part's).
#[derive(Debug)]
struct PieceReader {
    shared: Arc<PieceShared>,
    next: u64,
    end: u64,
}

/// What every batch of a piece needs.
#[derive(Debug)]
struct PieceShared {
    objects: Arc<Objects>,
    object: ObjectId,
    version: Version,
    meta: ObjectMeta,
    key: DataKey,
    geometry: Geometry,
    targets: Vec<ShardTarget>,
    range: Range<u64>,
}

impl PieceReader {
    /// The next batch of stripes, as a task to run; `None` when the piece is done.
    fn start(
        &mut self,
    ) -> Option<impl Future<Output = Result<Vec<Bytes>, ObjectError>> + Send + 'static> {
        if self.next >= self.end {
            return None;
        }
        let first = self.next;
        let count = READ_BATCH.min(self.end - first);
        self.next += count;
        let shared = self.shared.clone();
        Some(async move { shared.batch(first, count).await })
    }
}

impl PieceShared {
    /// Stripes `first..first + count`, opened: the plaintext of each within the range, a
    /// slice of the stripe's own buffer (no copy).
    async fn batch(&self, first: u64, count: u64) -> Result<Vec<Bytes>, ObjectError> {
        let k = self.geometry.profile.k();
        let read = self
            .objects
            .nodes
            .read_range(
                &self.targets,
                self.object,
                self.version,
                k,
                &self.meta.block_hashes,
                first,
                count,
            )
            .await;
        // Every bad block a read meets is reported for repair, a failed read's too.
        let bad = match &read {
            Ok((_, bad)) | Err(ReadError::NotEnough { bad, .. }) => bad.clone(),
        };
        if !bad.is_empty() {
            tracing::warn!(shards = ?bad, "a read met bad shards; reported for repair");
            self.objects
                .bad_reports
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((self.object, self.version, bad));
        }
        let (stripes, _) = read?;
        let (codec, key, geometry) = (self.objects.codec.clone(), self.key.clone(), self.geometry);
        let pool = self.objects.nodes.buffers.clone();
        let (object, version, range) = (self.object, self.version, self.range.clone());
        let total = geometry.stripe_count();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::with_capacity(stripes.len());
            for (j, offer) in stripes.iter().enumerate() {
                let s = first + j as u64;
                let ctx = StripeContext {
                    object,
                    version,
                    index: s,
                    last: s + 1 == total,
                };
                let buf = pool.take(geometry.block_len(s) * k);
                let opened = codec
                    .open_verified_into(&key, &ctx, geometry.stripe_len(s), offer, buf)
                    .map_err(|error| ObjectError::Decode { stripe: s, error })?;
                let sr = geometry.stripe_range(s);
                let lo = range.start.max(sr.start) - sr.start;
                let hi = range.end.min(sr.end) - sr.start;
                // The buffer comes back to the pool once the client has been sent the slice.
                out.push(pool.share(opened.plaintext).slice(lo as usize..hi as usize));
            }
            Ok(out)
        })
        .await
        .map_err(|e| ObjectError::Internal(e.to_string()))?
    }
}
