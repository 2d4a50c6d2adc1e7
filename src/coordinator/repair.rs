//! Keyless repair: a missing or bad shard of an object version is rebuilt from k good ones and
//! written to its placement. Everything needed is in the cleartext shard headers (geometry,
//! placement, every block's hash): no data key, master key or manifest is touched, so any
//! holder of a gateway identity, or later a node, can run it.
//!
//! A manifest record a node lacks (missed while it was down, lost with its disk, withheld or
//! rolled back) is restored by copying the sealed record another node holds: it is checked to
//! open under the manifest key, and copied as it is.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;

use crate::coordinator::client::NodeClient;
use crate::coordinator::drive::{ReadError, ShardTarget};
use crate::coordinator::object::{ObjectError, Objects};
use crate::core::format::{Manifest, ManifestBody, ObjectMeta, ShardHeader};
use crate::core::hlc::Version;
use crate::core::ids::{NodeId, ObjectId, ShardIndex};
use crate::core::stripe::{BlockHash, Codec, Profile};
use crate::core::wire::{ErrorCode, ShardKey};
use crate::net::frame::NetError;

/// Stripes read and rebuilt per round.
const REPAIR_BATCH: u64 = 8;

/// What a repair did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Repaired {
    /// Shards written.
    pub shards: Vec<usize>,
    /// Bytes read from good shards.
    pub bytes_read: u64,
    /// Bytes written to the rebuilt shards.
    pub bytes_written: u64,
}

/// A version's manifest record as the nodes hold it.
#[derive(Clone, Debug)]
pub struct FoundManifest {
    /// The manifest, opened.
    pub manifest: Manifest,
    /// The sealed record it was opened from (copied as it is).
    sealed: Vec<u8>,
    /// Per node asked: whether it holds the best record of the version (false: none, or an
    /// older copy; None: it did not answer).
    holds: BTreeMap<NodeId, Option<bool>>,
}

/// What the sites of an object version's shards say they hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardCensus {
    /// Shards their nodes hold.
    pub present: usize,
    /// Shards their nodes answered they lack.
    pub absent: Vec<usize>,
    /// Shards whose nodes did not answer.
    pub unanswered: usize,
}

/// How long a node may take to say whether it holds a shard.
const SHARD_WAIT: Duration = Duration::from_secs(3);

/// Every manifest node's answer about one version's record.
#[derive(Clone, Debug)]
pub struct ManifestCensus {
    /// The record, if a node that answered holds one that opens.
    pub found: Option<FoundManifest>,
    /// Manifest nodes that gave no answer.
    pub unanswered: usize,
}

/// What copying a manifest record to the nodes that lack it did.
#[derive(Clone, Copy, Debug, Default)]
pub struct ManifestRestored {
    /// Nodes the record was copied to.
    pub written: usize,
    /// Nodes that should hold it and did not answer (or refused the copy): for a later pass.
    pub unanswered: usize,
}

/// How long a node gets to list or take a manifest record during restoration.
const MANIFEST_WAIT: Duration = Duration::from_secs(5);

/// A repair upload to `client` that failed: noted (a full disk marks the site), and said.
fn failed_write(client: &NodeClient, i: usize, e: &NetError) -> ObjectError {
    client.note_write(Some(e));
    if e.is_disk_full() {
        ObjectError::Internal(format!("shard {i}: disk full at site {}", client.site()))
    } else {
        ObjectError::Internal(format!("shard {i}: {e}"))
    }
}

fn same_object(a: &ShardHeader, b: &ShardHeader) -> bool {
    a.k == b.k
        && a.m == b.m
        && a.block_size == b.block_size
        && a.size == b.size
        && a.placement == b.placement
        && a.block_hashes == b.block_hashes
}

impl Objects {
    /// The headers the good shards of (object, version) carry, by shard index: asked of every
    /// shard holder under the current and the earlier layouts (the version was placed under
    /// one of them) except `skip`. Also how many holders gave no answer at all.
    async fn headers(
        &self,
        object: ObjectId,
        version: Version,
        skip: &[usize],
    ) -> (BTreeMap<usize, ShardHeader>, usize) {
        let mut asks = std::collections::BTreeSet::new();
        for targets in self.placements(&object) {
            for (i, t) in targets.iter().enumerate() {
                asks.insert((i, t.node));
            }
        }
        let mut set = tokio::task::JoinSet::new();
        for (i, node) in asks {
            if skip.contains(&i) {
                continue;
            }
            let client = self.nodes().client(node).cloned();
            let key = ShardKey {
                object,
                version,
                shard: i as u8,
            };
            set.spawn(async move {
                let h = match client {
                    Some(c) => c.shard_header(key).await,
                    None => Err(NetError::NoClient(node.0)),
                };
                (i, h)
            });
        }
        let mut out = BTreeMap::new();
        let mut unanswered = 0;
        while let Some(r) = set.join_next().await {
            match r {
                Ok((i, Ok(h)))
                    if h.object == object
                        && h.version == version
                        && usize::from(h.shard_index.0) == i =>
                {
                    out.insert(i, h);
                }
                // Another shard's header, or a no: an answer.
                Ok((_, Ok(_))) => {}
                Ok((_, Err(e))) if e.is_answer() => {}
                _ => unanswered += 1,
            }
        }
        (out, unanswered)
    }

    /// Asks every node any layout places `object` on for its records of `version`. The record
    /// kept is one that opens under the manifest key (a forged one is never spread; a rotated
    /// copy wins). Fails when no node that answered holds one.
    pub async fn find_manifest(
        &self,
        object: ObjectId,
        version: Version,
    ) -> Result<FoundManifest, ObjectError> {
        self.manifest_census(object, version)
            .await
            .found
            .ok_or_else(|| {
                ObjectError::Internal("no node that answered holds the manifest record".into())
            })
    }

    /// Every manifest node's answer about its records of (object, version): the record found,
    /// if any node holds one that opens, and how many nodes gave no answer.
    pub async fn manifest_census(&self, object: ObjectId, version: Version) -> ManifestCensus {
        let mut asks = std::collections::BTreeSet::new();
        for targets in self.placements_of(&object) {
            asks.extend(Self::manifest_nodes(&targets));
        }
        let mut set = tokio::task::JoinSet::new();
        for node in asks {
            let client = self.nodes().client(node).cloned();
            set.spawn(async move {
                let records = match client {
                    Some(c) => tokio::time::timeout(MANIFEST_WAIT, c.manifests(object))
                        .await
                        .ok()
                        .and_then(Result::ok),
                    None => None,
                };
                (node, records)
            });
        }
        // Per node: no answer, or the precedence of its copy (None: it has none).
        let mut held = BTreeMap::new();
        let mut best: Option<(Manifest, Vec<u8>)> = None;
        while let Some(r) = set.join_next().await {
            let Ok((node, records)) = r else { continue };
            let Some(records) = records else {
                held.insert(node, None);
                continue;
            };
            let mut mine = None;
            for rec in records {
                let Ok(m) = self.open_manifest(&rec) else {
                    continue;
                };
                if m.object != object || m.version != version {
                    continue;
                }
                mine = mine.max(Some(m.precedence()));
                if best
                    .as_ref()
                    .is_none_or(|(b, _)| m.precedence() > b.precedence())
                {
                    best = Some((m, rec));
                }
            }
            held.insert(node, Some(mine));
        }
        // A node holds the record when it holds the best copy: one with an older copy (it
        // missed a removal or a retention change) lacks it as much as one with none.
        let top = best.as_ref().map(|(m, _)| m.precedence());
        let holds: BTreeMap<NodeId, Option<bool>> = held
            .into_iter()
            .map(|(n, mine)| (n, mine.map(|p| p.is_some() && p == top)))
            .collect();
        let unanswered = holds.values().filter(|h| h.is_none()).count();
        ManifestCensus {
            found: best.map(|(manifest, sealed)| FoundManifest {
                manifest,
                sealed,
                holds,
            }),
            unanswered,
        }
    }

    /// Asks the node of each shard of each of `m`'s pieces (itself, or its parts; all at
    /// once) whether it holds it: a census per piece (object, version). Only "not here" counts
    /// as absent: an unreachable site is not rebuilt elsewhere (no repair storm when a site or
    /// a disk is away). A delete has no shards.
    pub async fn shard_census(&self, m: &Manifest) -> Vec<(ObjectId, Version, ShardCensus)> {
        let pieces = m.body.pieces(m.object, m.version);
        let censuses = pieces
            .iter()
            .map(|p| self.piece_census(p.object, p.version, p.meta));
        futures::future::join_all(censuses)
            .await
            .into_iter()
            .zip(&pieces)
            .map(|(c, p)| (p.object, p.version, c))
            .collect()
    }

    async fn piece_census(
        &self,
        object: ObjectId,
        version: Version,
        meta: &ObjectMeta,
    ) -> ShardCensus {
        let asks = meta.placement.iter().enumerate().map(|(i, loc)| {
            let key = ShardKey {
                object,
                version,
                shard: i as u8,
            };
            let client = self.nodes().client(loc.node).cloned();
            async move {
                let answer = match client {
                    Some(c) => tokio::time::timeout(SHARD_WAIT, c.shard_header(key))
                        .await
                        .ok(),
                    None => None,
                };
                (i, answer)
            }
        });
        let mut census = ShardCensus::default();
        for (i, answer) in futures::future::join_all(asks).await {
            match answer {
                Some(Ok(_)) => census.present += 1,
                Some(Err(NetError::Remote {
                    code: ErrorCode::NotFound,
                    ..
                })) => census.absent.push(i),
                _ => census.unanswered += 1,
            }
        }
        census
    }

    /// Copies `found`'s sealed record to every node that should hold it (its shards' nodes;
    /// for a delete, the current placement's) and answered without it.
    pub async fn copy_manifest(&self, found: &FoundManifest) -> ManifestRestored {
        let object = found.manifest.object;
        let should: std::collections::BTreeSet<NodeId> = match &found.manifest.body {
            ManifestBody::Object(meta) => meta.placement.iter().map(|l| l.node).collect(),
            ManifestBody::Tombstone | ManifestBody::Parts(_) => {
                Self::manifest_nodes(&self.targets(&object))
                    .into_iter()
                    .collect()
            }
        };
        let mut restored = ManifestRestored::default();
        let mut puts = tokio::task::JoinSet::new();
        for node in should {
            match found.holds.get(&node) {
                Some(Some(true)) => {}
                Some(Some(false)) => {
                    let client = self.nodes().client(node).cloned();
                    let sealed = found.sealed.clone();
                    puts.spawn(async move {
                        let Some(c) = client else { return false };
                        matches!(
                            tokio::time::timeout(MANIFEST_WAIT, c.put_manifest(sealed)).await,
                            Ok(Ok(_))
                        )
                    });
                }
                _ => restored.unanswered += 1,
            }
        }
        while let Some(r) = puts.join_next().await {
            if matches!(r, Ok(true)) {
                restored.written += 1;
            } else {
                restored.unanswered += 1;
            }
        }
        restored
    }

    /// Rebuilds shards `missing` of (object, version) from k good shards and writes each to
    /// its place. Uses only the shard headers: no key. `pace` says, before each batch, how
    /// many bytes per second (read plus written) the repair may move now (0: no limit).
    pub async fn repair(
        &self,
        object: ObjectId,
        version: Version,
        missing: &[usize],
        pace: &(dyn Fn() -> u64 + Sync),
    ) -> Result<Repaired, ObjectError> {
        let (mut headers, _) = self.headers(object, version, missing).await;
        if headers.is_empty() {
            // The shards being repaired may still describe the object (one with a bad block
            // keeps its header and its good blocks).
            let (all, unanswered) = self.headers(object, version, &[]).await;
            if all.is_empty() && unanswered == 0 {
                // Every holder answered, and none holds a shard: gone, not away.
                return Err(ObjectError::Read(ReadError::NotEnough {
                    good: 0,
                    needed: self.profile().k(),
                    first: 0,
                    end: 0,
                    errors: "no site holds a shard of it".into(),
                    bad: Vec::new(),
                    unanswered,
                }));
            }
            headers = all;
        }
        // The description most holders agree on (a lone lying host is outvoted; a forged
        // block is still caught by the manifest's hashes at read time).
        let mut best: Option<(&ShardHeader, usize)> = None;
        for h in headers.values() {
            let votes = headers.values().filter(|o| same_object(h, o)).count();
            if best.is_none_or(|(_, v)| votes > v) {
                best = Some((h, votes));
            }
        }
        let Some((template, _)) = best else {
            return Err(ObjectError::Internal(
                "no good shard header reachable".into(),
            ));
        };
        let template = template.clone();
        let profile = Profile::new(usize::from(template.k), usize::from(template.m))
            .map_err(|e| ObjectError::Internal(e.to_string()))?;
        let (k, n) = (profile.k(), profile.n());
        let geometry = template.geometry()?;
        if template.placement.len() != n || missing.iter().any(|&i| i >= n) {
            return Err(ObjectError::Internal(
                "placement does not fit the profile".into(),
            ));
        }
        let targets: Vec<ShardTarget> = template
            .placement
            .iter()
            .map(|l| ShardTarget {
                site: l.site,
                node: l.node,
                disk: l.disk,
            })
            .collect();
        let hashes: Vec<BlockHash> = template.block_hashes.clone();
        let codec = std::sync::Arc::new(Codec::new(profile));

        // One upload per missing shard, fed batch by batch.
        let mut uploads = Vec::with_capacity(missing.len());
        for &i in missing {
            let client = self
                .nodes()
                .client(targets[i].node)
                .cloned()
                .ok_or_else(|| ObjectError::Internal(format!("no client for shard {i}")))?;
            let key = ShardKey {
                object,
                version,
                shard: i as u8,
            };
            let up = client
                .begin_shard(key, targets[i].disk, geometry)
                .await
                .map_err(|e| failed_write(&client, i, &e))?;
            uploads.push((i, client, up, Vec::new()));
        }
        let mut done = Repaired::default();
        let stripes = geometry.stripe_count();
        let mut first = 0;
        while first < stripes {
            let batch_started = std::time::Instant::now();
            let moved_before = done.bytes_read + done.bytes_written;
            let count = REPAIR_BATCH.min(stripes - first);
            let (offers, _bad) = self
                .nodes()
                .read_range(&targets, object, version, k, &hashes, first, count)
                .await?;
            let (codec2, want) = (codec.clone(), missing.to_vec());
            let hashes2 = hashes.clone();
            let rebuilt: Vec<Vec<Bytes>> = tokio::task::spawn_blocking(move || {
                offers
                    .iter()
                    .enumerate()
                    .map(|(j, offer)| {
                        let s = first + j as u64;
                        let blocks = codec2
                            .rebuild(offer, &want)
                            .map_err(|e| ObjectError::Decode { stripe: s, error: e })?;
                        for (b, &i) in blocks.iter().zip(&want) {
                            if BlockHash::of(b) != hashes2[s as usize * n + i] {
                                return Err(ObjectError::Internal(format!(
                                    "stripe {s}: the rebuilt block of shard {i} does not match its hash"
                                )));
                            }
                        }
                        Ok(blocks)
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .await
            .map_err(|e| ObjectError::Internal(e.to_string()))??;
            for (j, blocks) in rebuilt.into_iter().enumerate() {
                let s = first + j as u64;
                done.bytes_read += (k * geometry.block_len(s)) as u64;
                for ((i, client, up, crcs), b) in uploads.iter_mut().zip(blocks) {
                    crcs.push(crc32fast::hash(&b));
                    done.bytes_written += b.len() as u64;
                    up.send(b).await.map_err(|e| failed_write(client, *i, &e))?;
                }
            }
            first += count;
            // Throttle: this batch's reads and writes at the rate allowed now, so foreground
            // traffic keeps most of the sites' bandwidth, disks and the gateway's cores.
            let rate = pace();
            if rate > 0 {
                let moved = done.bytes_read + done.bytes_written - moved_before;
                let due = Duration::from_secs_f64(moved as f64 / rate as f64);
                if let Some(rest) = due.checked_sub(batch_started.elapsed()) {
                    tokio::time::sleep(rest).await;
                }
            }
        }
        for (i, client, up, crcs) in uploads {
            let mut header = template.clone();
            header.shard_index = ShardIndex(i as u8);
            header.crcs = crcs;
            up.finish(&header)
                .await
                .map_err(|e| failed_write(&client, i, &e))?;
            client.note_write(None);
            done.shards.push(i);
        }
        Ok(done)
    }
}
