//! The write path: an object sealed, coded and uploaded under the write quorum (or, when
//! small, carried inside its manifest records), then made visible by its manifest.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::{Missed, ObjectError, Objects, random, to_targets};
use crate::coordinator::drive::{ShardTarget, StripeSink};
use crate::core::format::{
    Manifest, ManifestBody, ObjectMeta, PartsBody, ShardHeader, VersionState, Versioning,
};
use crate::core::hlc::Version;
use crate::core::ids::{NodeId, ObjectId, ShardIndex, hex};
use crate::core::keys::{DataKey, WrappedKey};
use crate::core::layout::{self, ShardLocation};
use crate::core::quorum::ManifestWrite;
use crate::core::ssec;
use crate::core::stripe::{BlockHash, EncodedStripe, Geometry, StripeContext, encode_object};
use crate::core::wire::InlineShard;
use crate::sys::now_ms;

/// What to store with an object.
#[derive(Clone, Debug, Default)]
pub struct PutInput {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// Exact body length.
    pub size: u64,
    /// Content-Type.
    pub content_type: Option<String>,
    /// User metadata.
    pub user_metadata: Vec<(String, String)>,
    /// Other stored headers (Cache-Control, Content-Disposition, ...), names lower-case.
    pub headers: Vec<(String, String)>,
    /// The version's state: the bucket's versioning now, the retention and legal hold it is
    /// written with, a bucket record's configuration (`revised` is set at commit).
    pub state: Option<VersionState>,
    /// SSE-C: the customer's key, which masks the data key before the master key wraps it;
    /// the staged record then carries the key's check value and a keyed ETag (and never a
    /// check value of another key, whatever `headers` held).
    pub customer_key: Option<ssec::CustomerKey>,
}

/// An object whose shards are durable (at the write quorum) but whose manifest is not written
/// yet: invisible until [`Objects::commit`]. The caller may check digests and fill in what the
/// manifest records before committing, or drop it (the shards are then orphans for collection).
#[derive(Debug)]
pub struct Staged {
    bucket: String,
    key: String,
    object: ObjectId,
    version: Version,
    /// The object's record, to check and to fill in (checksums, a multipart ETag, parts)
    /// before committing.
    pub meta: ObjectMeta,
    /// The plaintext's MD5 (hex), what Content-MD5 is checked against: the ETag too, but for
    /// an object under a customer's key, whose ETag is keyed (`core::ssec`).
    pub md5: String,
    targets: Vec<ShardTarget>,
    /// Shard indices that did not become durable (the write quorum was met without them):
    /// to be recorded for repair.
    pub missing: Vec<usize>,
    /// A small object's shards (header, blocks), sent with the manifest records at commit.
    inline: Option<Vec<(ShardHeader, Vec<u8>)>>,
    /// The version's state (unversioned when the input named none).
    state: Option<VersionState>,
}

/// What every staged object starts from: its id, version, key and placement.
struct Prelude {
    object: ObjectId,
    version: Version,
    dek: DataKey,
    wrapped: WrappedKey,
    block_size: u32,
    placement: Vec<ShardLocation>,
    targets: Vec<ShardTarget>,
}

/// A node's answer to an inline manifest write: durable or not (Some: with the record of the
/// object with the newest order it held before, if any), and the shard indices sent to it.
type InlineAnswer = (Option<Option<Vec<u8>>>, Vec<usize>);

/// Once a write has its quorum, how long the remaining sites may still answer before they are
/// counted as missed (and, for shards, recorded for repair).
const STRAGGLER_GRACE: Duration = Duration::from_millis(500);

impl Objects {
    /// Stores an object read from `body` (exactly `input.size` bytes) and commits it.
    pub async fn put(
        &self,
        input: PutInput,
        body: impl AsyncRead + Unpin,
    ) -> Result<Manifest, ObjectError> {
        let staged = self.stage(input, body).await?;
        self.commit(staged).await
    }

    /// Makes a staged object visible: writes its manifest to a manifest quorum.
    pub async fn commit(&self, staged: Staged) -> Result<Manifest, ObjectError> {
        self.commit_reporting(staged).await.map(|(m, _)| m)
    }

    /// As [`Self::commit`], also returning what the write went without (for repair). Reads pass
    /// over the version until its commit is over (`order.rs`).
    pub async fn commit_reporting(
        &self,
        staged: Staged,
    ) -> Result<(Manifest, Missed), ObjectError> {
        let mark = self.committing(staged.object, staged.version);
        let r = self.commit_marked(staged).await;
        mark.finish();
        r
    }

    async fn commit_marked(&self, staged: Staged) -> Result<(Manifest, Missed), ObjectError> {
        // The commit begins: stamped after the shards are durable, so it is later than every
        // acknowledgement this gateway gave before (version-order.md).
        let order = self.stamp();
        let mut manifest = Manifest {
            bucket: staged.bucket,
            key: staged.key,
            object: staged.object,
            version: staged.version,
            created_ms: now_ms(),
            body: ManifestBody::Object(staged.meta),
            order,
            state: VersionState {
                revised: order,
                ..staged
                    .state
                    .unwrap_or_else(|| VersionState::unversioned(order))
            },
        };
        self.intend(&manifest).await?;
        let (mut missed, newest) = match staged.inline {
            None => {
                let (all, newest) = self.write_manifest(&manifest, &staged.targets).await?;
                let missed = Missed {
                    manifest: !all,
                    shards: staged.missing,
                };
                (missed, newest)
            }
            Some(shards) => {
                self.write_inline(&manifest, &staged.targets, shards)
                    .await?
            }
        };
        if let Some(all) = self
            .order_above(&mut manifest, newest, &staged.targets)
            .await?
        {
            missed.manifest = !all;
        }
        Ok((manifest, missed))
    }

    /// Sends each node the manifest with its shards; needs a manifest quorum of nodes and
    /// write-quorum shards at distinct sites. Also returns what `write_manifest` returns of
    /// the orders the nodes held before.
    async fn write_inline(
        &self,
        manifest: &Manifest,
        targets: &[ShardTarget],
        shards: Vec<(ShardHeader, Vec<u8>)>,
    ) -> Result<(Missed, Option<Version>), ObjectError> {
        let sealed = manifest.seal(&self.manifest_key, random())?;
        let nodes = Self::manifest_nodes(targets);
        let all = nodes.len();
        let needed = self.manifest_quorum(all).write;
        let mut per_node: BTreeMap<NodeId, Vec<(usize, InlineShard)>> = BTreeMap::new();
        for (i, (h, data)) in shards.into_iter().enumerate() {
            let header = h.encode()?;
            per_node
                .entry(targets[i].node)
                .or_default()
                .push((i, InlineShard { header, data }));
        }
        let mut set = tokio::task::JoinSet::new();
        for n in nodes {
            let mine = per_node.remove(&n).unwrap_or_default();
            let (client, sealed) = (self.nodes.client(n).cloned(), sealed.clone());
            let timeout = self.write_timeout;
            set.spawn(async move {
                let indices: Vec<usize> = mine.iter().map(|(i, _)| *i).collect();
                let records = mine.into_iter().map(|(_, s)| s).collect();
                // Durable: Some(the node's newest record before it, if any).
                let stored = match client {
                    Some(c) => {
                        let put = c.put_manifest_inline(sealed, records);
                        match tokio::time::timeout(timeout, put).await {
                            Ok(r) => r.ok(),
                            Err(_) => {
                                c.note_unanswered();
                                None
                            }
                        }
                    }
                    None => None,
                };
                (stored, indices)
            });
        }
        let sites_needed = self.site_quorum(targets);
        let durable_of = |answers: &[InlineAnswer]| {
            let ok: Vec<&Vec<usize>> = answers
                .iter()
                .filter(|a| a.0.is_some())
                .map(|a| &a.1)
                .collect();
            let shards: Vec<usize> = ok.iter().flat_map(|v| v.iter().copied()).collect();
            (ok.len(), shards)
        };
        // The stragglers' shards (past the grace after the quorum) are recorded as missing.
        let answers = until_quorum(set, |answers| {
            let (nodes, shards) = durable_of(answers);
            let sites: BTreeSet<_> = shards.iter().map(|&i| targets[i].site).collect();
            nodes >= needed && sites.len() >= sites_needed
        })
        .await;
        let (durable_nodes, durable) = durable_of(&answers);
        let missing: Vec<usize> = (0..targets.len())
            .filter(|i| !durable.contains(i))
            .collect();
        let sites: BTreeSet<_> = durable.iter().map(|&i| targets[i].site).collect();
        if durable_nodes < needed || sites.len() < sites_needed {
            self.withdraw(manifest, targets).await;
            return Err(ObjectError::ManifestQuorum {
                durable: durable_nodes,
                needed,
            });
        }
        self.superseded(&manifest.object, manifest.version);
        let newest =
            self.reported_above(manifest, answers.into_iter().filter_map(|a| a.0.flatten()));
        let missed = Missed {
            shards: missing,
            manifest: durable_nodes < all,
        };
        Ok((missed, newest))
    }

    /// Writes a delete (a tombstone version) for (bucket, key) to a manifest quorum; also
    /// says whether some manifest node did not take it (for repair). Under a bucket's
    /// versioning Enabled or Suspended it is a delete marker.
    pub async fn delete(
        &self,
        bucket: &str,
        key: &str,
        under: Versioning,
    ) -> Result<(Manifest, Missed), ObjectError> {
        self.commit_without_shards(bucket, key, ManifestBody::Tombstone, |version| {
            VersionState::written(under, version)
        })
        .await
    }

    /// Commits a multipart object by reference (`ManifestBody::Parts`): a manifest naming the
    /// stored objects its parts are, written as a delete's is.
    pub async fn commit_parts(
        &self,
        bucket: &str,
        key: &str,
        body: PartsBody,
        state: Option<VersionState>,
    ) -> Result<(Manifest, Missed), ObjectError> {
        self.commit_without_shards(
            bucket,
            key,
            ManifestBody::Parts(Box::new(body)),
            |version| VersionState {
                revised: version,
                ..state.unwrap_or_else(|| VersionState::unversioned(version))
            },
        )
        .await
    }

    /// Writes a version that sends no shards of its own (a delete, an object by reference)
    /// to a manifest quorum of the key's placement, in the state `state(version)` gives it.
    /// Its commit begins as it is stamped (what it names is durable already); reads pass
    /// over it until its commit is over.
    async fn commit_without_shards(
        &self,
        bucket: &str,
        key: &str,
        body: ManifestBody,
        state: impl FnOnce(Version) -> VersionState,
    ) -> Result<(Manifest, Missed), ObjectError> {
        let object = self.manifest_key.object_id(bucket, key);
        let version = self.stamp();
        let mark = self.committing(object, version);
        let targets = self.targets(&object);
        let mut manifest = Manifest {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            object,
            version,
            created_ms: now_ms(),
            body,
            order: version,
            state: state(version),
        };
        let r = async {
            self.intend(&manifest).await?;
            let (mut all, newest) = self.write_manifest(&manifest, &targets).await?;
            if let Some(again) = self.order_above(&mut manifest, newest, &targets).await? {
                all = again;
            }
            Ok((
                manifest,
                Missed {
                    shards: Vec::new(),
                    manifest: !all,
                },
            ))
        }
        .await;
        mark.finish();
        r
    }

    /// Seals, codes and uploads an object read from `body` (exactly `input.size` bytes) under
    /// the write quorum, never more than a few stripes in memory; the manifest is not written.
    pub async fn stage(
        &self,
        input: PutInput,
        mut body: impl AsyncRead + Unpin,
    ) -> Result<Staged, ObjectError> {
        let p = self.prelude(&input);
        // Known down now: refused at once, not after every upload to them timed out.
        let needed = self.site_quorum(&p.targets);
        let reachable: BTreeSet<_> = p
            .targets
            .iter()
            .filter(|t| self.nodes.client(t.node).is_some_and(|c| !c.known_down()))
            .map(|t| t.site)
            .collect();
        if reachable.len() < needed {
            return Err(ObjectError::SitesDown {
                reachable: reachable.len(),
                needed,
            });
        }
        if input.size < self.inline_limit {
            return self.stage_inline(p, input, body).await;
        }
        let Prelude {
            object,
            version,
            ref dek,
            block_size,
            ref targets,
            ..
        } = p;
        let profile = self.layout.profile;
        let geometry = Geometry {
            profile,
            block_size,
            size: input.size,
        };
        let needed = self.site_quorum(targets);
        let mut sink = StripeSink::start(
            &self.nodes,
            targets,
            object,
            version,
            geometry,
            needed,
            self.write_timeout,
        );

        let n = geometry.stripe_count();
        let mut crcs: Vec<Vec<u32>> = vec![Vec::with_capacity(n as usize); profile.n()];
        let mut hashes = Vec::with_capacity(n as usize * profile.n());
        let mut read_total = 0u64;
        let (md5_tx, mut md5_rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        let md5_task = tokio::task::spawn_blocking(move || {
            use md5::Digest as _;
            let mut h = md5::Md5::new();
            while let Some(b) = md5_rx.blocking_recv() {
                h.update(&b);
            }
            hex(&h.finalize())
        });
        // One stripe is encoded on a blocking thread while the previous one is sent.
        let mut pending: Option<tokio::task::JoinHandle<Result<EncodedStripe, ObjectError>>> = None;
        for s in 0..n {
            let len = geometry.stripe_len(s);
            let mut buf = vec![0u8; len];
            body.read_exact(&mut buf)
                .await
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::UnexpectedEof => ObjectError::ShortBody {
                        got: read_total,
                        expected: input.size,
                    },
                    _ => ObjectError::Body(e),
                })?;
            read_total += len as u64;
            // The ETag's MD5 runs on its own thread over the same bytes, overlapped with sealing
            // and coding (which need their own copy: they seal in place).
            let plain = Bytes::from(buf);
            if md5_tx.send(plain.clone()).await.is_err() {
                return Err(ObjectError::Internal("the MD5 task ended".into()));
            }
            let mut buf = Vec::with_capacity(profile.k() * block_size as usize);
            buf.extend_from_slice(&plain);
            let (codec, key, bs) = (self.codec.clone(), dek.clone(), block_size);
            let ctx = StripeContext {
                object,
                version,
                index: s,
                last: s + 1 == n,
            };
            let next = tokio::task::spawn_blocking(move || {
                codec
                    .encode(&key, &ctx, buf, bs)
                    .map_err(|e| ObjectError::Internal(e.to_string()))
            });
            if let Some(prev) = pending.replace(next) {
                let stripe = prev
                    .await
                    .map_err(|e| ObjectError::Internal(e.to_string()))??;
                collect(&stripe, &mut crcs, &mut hashes);
                sink.push(&stripe).await?;
            }
        }
        if let Some(last) = pending {
            let stripe = last
                .await
                .map_err(|e| ObjectError::Internal(e.to_string()))??;
            collect(&stripe, &mut crcs, &mut hashes);
            sink.push(&stripe).await?;
        }
        drop(md5_tx);
        let etag = md5_task
            .await
            .map_err(|e| ObjectError::Internal(e.to_string()))?;
        let mut extra = [0u8; 1];
        if body.read(&mut extra).await? != 0 {
            return Err(ObjectError::ShortBody {
                got: input.size + 1,
                expected: input.size,
            });
        }

        let headers = self.shard_headers(&p, input.size, crcs, &hashes);
        let report = sink.finish(headers).await?;
        Ok(self.staged(p, input, etag, hashes, report.missing, None))
    }

    fn prelude(&self, input: &PutInput) -> Prelude {
        let object = self.manifest_key.object_id(&input.bucket, &input.key);
        let version = self.stamp();
        let dek = DataKey::from_bytes(random());
        let stored = match &input.customer_key {
            Some(ck) => dek.masked(&ck.pad(&object, version)),
            None => dek.clone(),
        };
        let wrapped = self
            .master
            .wrap_data_key(&stored, &object, version, random());
        let placement = layout::place(&self.layout, &self.plan, &object);
        let targets = to_targets(&placement);
        Prelude {
            object,
            version,
            dek,
            wrapped,
            block_size: self.block_size_for(input.size),
            placement,
            targets,
        }
    }

    fn shard_headers(
        &self,
        p: &Prelude,
        size: u64,
        mut crcs: Vec<Vec<u32>>,
        hashes: &[BlockHash],
    ) -> Vec<ShardHeader> {
        let profile = self.layout.profile;
        (0..profile.n())
            .map(|i| ShardHeader {
                object: p.object,
                version: p.version,
                shard_index: ShardIndex(i as u8),
                k: profile.k() as u8,
                m: profile.m() as u8,
                block_size: p.block_size,
                size,
                layout_epoch: self.layout.epoch,
                placement: p.placement.clone(),
                crcs: std::mem::take(&mut crcs[i]),
                block_hashes: hashes.to_vec(),
            })
            .collect()
    }

    fn staged(
        &self,
        p: Prelude,
        input: PutInput,
        etag: String,
        hashes: Vec<BlockHash>,
        missing: Vec<usize>,
        inline: Option<Vec<(ShardHeader, Vec<u8>)>>,
    ) -> Staged {
        let profile = self.layout.profile;
        // A masked data key and the check value of its key go together, or neither.
        let mut headers = input.headers;
        headers.retain(|(n, _)| n != ssec::STORED_HEADER);
        let md5 = etag;
        let etag = match &input.customer_key {
            Some(ck) => {
                headers.push((ssec::STORED_HEADER.to_owned(), ck.check()));
                ck.etag(&md5)
            }
            None => md5.clone(),
        };
        Staged {
            state: input.state,
            md5,
            bucket: input.bucket,
            key: input.key,
            object: p.object,
            version: p.version,
            missing,
            meta: ObjectMeta {
                size: input.size,
                content_type: input.content_type,
                user_metadata: input.user_metadata,
                headers,
                etag,
                checksums: Vec::new(),
                dek: p.wrapped,
                k: profile.k() as u8,
                m: profile.m() as u8,
                block_size: p.block_size,
                layout_epoch: self.layout.epoch,
                placement: p.placement,
                block_hashes: hashes,
                inline: inline.is_some(),
                parts: Vec::new(),
            },
            targets: p.targets,
            inline,
        }
    }

    /// A small object: read whole, sealed and coded in memory; its shards go out with the
    /// manifest records at commit, one round trip per site.
    async fn stage_inline(
        &self,
        p: Prelude,
        input: PutInput,
        mut body: impl AsyncRead + Unpin,
    ) -> Result<Staged, ObjectError> {
        let mut data = vec![0u8; input.size as usize];
        body.read_exact(&mut data)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => ObjectError::ShortBody {
                    got: 0,
                    expected: input.size,
                },
                _ => ObjectError::Body(e),
            })?;
        let mut extra = [0u8; 1];
        if body.read(&mut extra).await? != 0 {
            return Err(ObjectError::ShortBody {
                got: input.size + 1,
                expected: input.size,
            });
        }
        let etag = {
            use md5::Digest as _;
            hex(&md5::Md5::digest(&data))
        };
        let stripes = encode_object(
            &self.codec,
            &p.dek,
            p.object,
            p.version,
            p.block_size,
            &data,
        )
        .map_err(|e| ObjectError::Internal(e.to_string()))?;
        let n = self.layout.profile.n();
        let mut crcs: Vec<Vec<u32>> = vec![Vec::new(); n];
        let mut hashes = Vec::new();
        let mut blocks: Vec<Vec<u8>> = vec![Vec::new(); n];
        for stripe in &stripes {
            collect(stripe, &mut crcs, &mut hashes);
            for (i, b) in stripe.blocks.iter().enumerate() {
                blocks[i].extend_from_slice(b);
            }
        }
        let headers = self.shard_headers(&p, input.size, crcs, &hashes);
        let shards = headers.into_iter().zip(blocks).collect();
        Ok(self.staged(p, input, etag, hashes, Vec::new(), Some(shards)))
    }

    /// Writes a manifest record to a quorum of its nodes: whether every one of them took it,
    /// and the highest commit order above its own of the object's manifests those that took
    /// it held before (`reported_above`).
    pub(super) async fn write_manifest(
        &self,
        manifest: &Manifest,
        targets: &[ShardTarget],
    ) -> Result<(bool, Option<Version>), ObjectError> {
        match self.write_records(manifest, targets).await? {
            Ok(r) => Ok(r),
            Err((durable, needed)) => {
                self.withdraw(manifest, targets).await;
                Err(ObjectError::ManifestQuorum { durable, needed })
            }
        }
    }

    /// Writes `manifest`'s record to the manifest nodes of `targets`: whether every node took
    /// it and the order reported above it, or (durable, needed) when short of the quorum (the
    /// caller decides what to withdraw).
    pub(super) async fn write_records(
        &self,
        manifest: &Manifest,
        targets: &[ShardTarget],
    ) -> Result<Result<(bool, Option<Version>), (usize, usize)>, ObjectError> {
        let sealed = manifest.seal(&self.manifest_key, random())?;
        let nodes = Self::manifest_nodes(targets);
        let q = self.manifest_quorum(nodes.len());
        let mut set = tokio::task::JoinSet::new();
        for n in nodes {
            let (client, sealed) = (self.nodes.client(n).cloned(), sealed.clone());
            set.spawn(async move {
                match client {
                    Some(c) => c.put_manifest(sealed).await.ok(),
                    None => None,
                }
            });
        }
        let answers = until_quorum(set, |a| {
            a.iter().filter(|ok| ok.is_some()).count() >= q.write
        })
        .await;
        let mut write = ManifestWrite::new(q);
        for stored in &answers {
            if stored.is_some() {
                write.handle_durable();
            } else {
                write.handle_failed();
            }
        }
        Ok(write.finish().map(|all| {
            self.superseded(&manifest.object, manifest.version);
            let reported = answers.into_iter().flatten().flatten();
            (all, self.reported_above(manifest, reported))
        }))
    }
}

/// The answers of a write's tasks: all of them, or once `met` holds for those in hand, those
/// that come within [`STRAGGLER_GRACE`] more; the rest are aborted.
async fn until_quorum<T: Send + 'static>(
    mut set: tokio::task::JoinSet<T>,
    met: impl Fn(&[T]) -> bool,
) -> Vec<T> {
    let mut answers = Vec::with_capacity(set.len());
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let next = match deadline {
            None => set.join_next().await,
            Some(d) => match tokio::time::timeout_at(d, set.join_next()).await {
                Ok(n) => n,
                Err(_) => {
                    set.abort_all();
                    break;
                }
            },
        };
        let Some(r) = next else { break };
        if let Ok(a) = r {
            answers.push(a);
        }
        if deadline.is_none() && met(&answers) {
            deadline = Some(tokio::time::Instant::now() + STRAGGLER_GRACE);
        }
    }
    answers
}

fn collect(stripe: &EncodedStripe, crcs: &mut [Vec<u32>], hashes: &mut Vec<BlockHash>) {
    for (i, c) in stripe.crcs.iter().enumerate() {
        crcs[i].push(*c);
    }
    hashes.extend_from_slice(&stripe.hashes);
}
