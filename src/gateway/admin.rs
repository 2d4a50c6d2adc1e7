//! The gateway's admin API (HTTP/1.1, JSON, bearer token from `admin_token_file`): status of
//! sites and buckets, scrub on demand, heal, and the background workers. `exclave` (tools/)
//! is its client.
//!
//! - `GET  /v1/status`            sites (reachable, scrub state), repair backlog, buckets
//!   (objects whole / degraded / unreadable)
//! - `POST /v1/scrub`             start a full scrub pass at every reachable node
//! - `POST /v1/heal[?bucket=B]`   find objects of B (or all) with shards missing at their
//!   sites, add them to the repair backlog, run a repair pass; answers what it did
//! - `GET  /v1/workers`           repair backlog and each node's scrub state
//! - `POST /v1/checkpoint`         make a catalog checkpoint now (if the index changed)
//! - `GET  /metrics`               Prometheus (OpenMetrics) text, `crate::metrics`
//! - `/v1/keys`, `/v1/grants`, `/v1/buckets`: access keys and their grants (`access.rs`,
//!   docs/operations.md "Access keys and grants")

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::Gateway;
use crate::admin::{
    authorised, failed, metrics_reply, query_param, reply, serve, wants_openmetrics,
};
use crate::core::hlc::Version;
use crate::core::ids::{ObjectId, hex};
use crate::meta::{ListQuery, LostRecord, MetaError};
use crate::metrics::{GatewayState, SiteFacts};
use crate::sys::now_ms;

/// Index entries heal checks at the same time.
const HEAL_CONCURRENCY: usize = 16;

/// What heal found for one index entry.
#[derive(Debug, Default)]
struct HealOne {
    checked: bool,
    manifests_restored: u64,
    manifests_unverified: u64,
    shards_unverified: u64,
    /// Per piece (the version itself, or each of its parts) whose sites lack shards: which.
    absent: Vec<(ObjectId, Version, Vec<usize>)>,
}

impl Gateway {
    /// Per site, asked concurrently (3 s each): reachable, shards, disks, scrub state.
    async fn site_facts(&self) -> Vec<(u32, std::net::SocketAddr, SiteFacts)> {
        let asks = self.objects.node_ids().into_iter().filter_map(|node| {
            let c = self.objects.nodes().client(node).cloned()?;
            Some(async move {
                let limit = Duration::from_secs(3);
                let (scrub, usage) = tokio::join!(
                    tokio::time::timeout(limit, c.scrub_status()),
                    tokio::time::timeout(limit, c.node_status()),
                );
                let scrub = scrub.ok().and_then(Result::ok);
                let usage = usage.ok().and_then(Result::ok);
                if let Some(least) = usage
                    .as_ref()
                    .and_then(|u| u.1.iter().map(|d| d.free).min())
                {
                    c.note_free_space(least);
                }
                let facts = SiteFacts {
                    disk_full: Some(c.disk_full()),
                    site: c.site().to_owned(),
                    reachable: scrub.is_some() || usage.is_some(),
                    shards: usage.as_ref().map(|u| u.0),
                    disks: usage
                        .map(|u| u.1.iter().map(|d| (d.id, d.bytes, d.free)).collect())
                        .unwrap_or_default(),
                    scrub,
                };
                (node.0, c.addr(), facts)
            })
        });
        futures::future::join_all(asks).await
    }

    /// Per site: node, reachable, shards, disks, scrub state (its age judged on this gateway's
    /// clock).
    async fn sites_status(&self) -> Vec<Value> {
        self.site_facts()
            .await
            .into_iter()
            .map(|(node, addr, f)| {
                let mut v = json!({
                    "site": f.site, "node": node, "addr": addr.to_string(),
                    "reachable": f.reachable, "disk_full": f.disk_full == Some(true),
                });
                if let Some((last, in_progress, findings, quarantined)) = f.scrub {
                    v["scrub"] = json!({"last_complete_ms": last, "in_progress": in_progress,
                                        "findings": findings, "quarantined": quarantined});
                    match scrub_age(last, now_ms()) {
                        ScrubAge::Never => {}
                        ScrubAge::Ago(secs) => v["scrub"]["age_secs"] = secs.into(),
                        ScrubAge::Ahead(secs) => v["scrub"]["clock_ahead_secs"] = secs.into(),
                    }
                }
                if let Some(shards) = f.shards {
                    v["shards"] = shards.into();
                    let (used, free) = f.disks.iter().fold((0u64, 0u64), |(u, fr), d| {
                        (u + d.1.saturating_sub(d.2), fr + d.2)
                    });
                    if let Some(secs) = self.growth.note(node, now_ms(), used, free) {
                        v["full_in_secs"] = secs.into();
                    }
                    v["disks"] = f
                        .disks
                        .iter()
                        .map(|&(id, bytes, free)| {
                            json!({"id": id, "bytes": bytes, "free": free,
                                   "used": bytes.saturating_sub(free)})
                        })
                        .collect();
                }
                v
            })
            .collect()
    }

    /// The Prometheus exposition: traffic counted so far, state read now.
    async fn metrics(&self) -> Result<String, MetaError> {
        let _one = self.metrics.scrape.lock().await;
        let sites: Vec<SiteFacts> = self.site_facts().await.into_iter().map(|f| f.2).collect();
        let index = self.index.clone();
        let m = self.objects.profile().m();
        let (buckets, backlog, lost) = tokio::task::spawn_blocking(move || {
            Ok::<_, MetaError>((index.counts()?, index.repairs()?, index.unrebuildable()?))
        })
        .await
        .map_err(|e| MetaError::Db(e.to_string()))??;
        let state = GatewayState {
            buckets: buckets
                .into_iter()
                .filter(|(b, _, _)| !b.contains(super::buckets::HIDDEN))
                .collect(),
            degraded: backlog.iter().filter(|(_, _, s)| s.len() <= m).count() as u64,
            unreadable: (backlog.iter().filter(|(_, _, s)| s.len() > m).count() + lost.len())
                as u64,
            backlog: backlog.len() as u64,
            withdrawals: self.objects.withdrawals_pending() as u64,
            unrebuildable: lost.len() as u64,
            peers: self
                .objects
                .node_ids()
                .into_iter()
                .filter_map(|n| self.objects.nodes().client(n))
                .filter_map(|c| {
                    c.path_stats()
                        .map(|(rtt, sent, lost, mtu)| (c.site().to_owned(), rtt, sent, lost, mtu))
                })
                .collect(),
        };
        Ok(self.metrics.render(&state, &sites, &self.worker_reports()))
    }

    /// Every current (bucket, key) of `bucket` (or of all buckets).
    pub(crate) fn keys(&self, bucket: Option<&str>) -> Result<Vec<(String, String)>, MetaError> {
        let buckets: Vec<String> = match bucket {
            Some(b) => vec![b.to_owned()],
            None => self.index.buckets()?.into_iter().map(|(b, _)| b).collect(),
        };
        let mut out = Vec::new();
        for b in buckets {
            let mut token = None;
            loop {
                let page = self.index.list(
                    &b,
                    &ListQuery {
                        continuation: token.clone(),
                        max_keys: 1000,
                        ..ListQuery::default()
                    },
                )?;
                out.extend(page.contents.into_iter().map(|(k, _)| (b.clone(), k)));
                if !page.truncated {
                    break;
                }
                token = page.next_token;
            }
        }
        Ok(out)
    }

    /// Per site: what its ledger says was collected, and, from the collector's last pass,
    /// the bytes of live data and of garbage not collected yet.
    async fn add_gc_facts(&self, sites: &mut [Value]) {
        let last = self.collector.last();
        // Every site's ledger asked at once (3 s each), as `site_facts` asks the rest.
        let totals = futures::future::join_all(sites.iter().map(|s| {
            let client = s["node"].as_u64().and_then(|n| {
                self.objects
                    .nodes()
                    .client(crate::core::ids::NodeId(n as u32))
                    .cloned()
            });
            async move {
                let c = client?;
                tokio::time::timeout(Duration::from_secs(3), c.collect(Vec::new()))
                    .await
                    .ok()?
                    .ok()
            }
        }))
        .await;
        for (s, total) in sites.iter_mut().zip(totals) {
            let Some(node) = s["node"].as_u64() else {
                continue;
            };
            let mut gc = json!({});
            if let Some((_, total)) = total {
                gc["collected_bytes"] = total.bytes.into();
                gc["collected_versions"] = total.items.into();
            }
            if let Some(r) = last.as_ref().and_then(|r| {
                r.sites
                    .iter()
                    .find(|x| u64::from(x.node) == node)
                    .map(|x| (r, x))
            }) {
                gc["live_bytes"] = r.1.live_bytes.into();
                gc["waiting_bytes"] = r.1.waiting_bytes.into();
                gc["orphan_file_bytes"] = r.1.orphan_files.bytes.into();
                gc["pass_finished_ms"] = r.0.finished_ms.into();
            }
            s["gc"] = gc;
        }
    }

    /// Every site's files by what accounts for them (`exclave census`), asked at once, with
    /// the collector's last weighing of the shards: live, and garbage still waiting (by why).
    async fn census(&self) -> Value {
        const LISTED: u32 = 1000;
        let nodes = self.objects.node_ids();
        let answers = futures::future::join_all(nodes.iter().map(|node| {
            let client = self.objects.nodes().client(*node).cloned();
            async move {
                let c = client?;
                let site = c.site().to_owned();
                let census = tokio::time::timeout(Duration::from_secs(30), c.file_census(LISTED))
                    .await
                    .ok()
                    .and_then(Result::ok);
                Some((site, census))
            }
        }))
        .await;
        let last = self.collector.last();
        let mut sites = Vec::new();
        for (node, answer) in nodes.iter().zip(answers) {
            let Some((site, census)) = answer else {
                continue;
            };
            let mut v = json!({"node": node.0, "site": site, "answered": census.is_some()});
            if let Some(c) = census {
                let t = |t: crate::core::wire::CollectedTotals| json!({"files": t.items, "bytes": t.bytes});
                let total = c.shards.bytes
                    + c.unnamed.bytes
                    + c.quarantine.bytes
                    + c.tmp.bytes
                    + c.markers.bytes
                    + c.stray.bytes
                    + c.database_bytes;
                v["total_bytes"] = total.into();
                v["shards"] = t(c.shards);
                v["unnamed"] = t(c.unnamed);
                v["quarantine"] = t(c.quarantine);
                v["tmp"] = t(c.tmp);
                v["markers"] = t(c.markers);
                v["stray"] = t(c.stray);
                v["database_bytes"] = c.database_bytes.into();
                v["listed"] = c
                    .listed
                    .iter()
                    .map(|(path, bytes)| json!({"path": path, "bytes": bytes}))
                    .collect::<Vec<_>>()
                    .into();
            }
            if let Some(r) = last
                .as_ref()
                .and_then(|r| r.sites.iter().find(|x| x.node == node.0))
            {
                v["last_gc"] = json!({
                    "live_bytes": r.live_bytes,
                    "waiting_bytes": r.waiting_bytes,
                });
            }
            sites.push(v);
        }
        json!({
            "sites": sites,
            "last_gc_finished_ms": last.as_ref().map(|r| r.finished_ms),
            "waiting": last.as_ref().map(|r| serde_json::to_value(&r.waiting).unwrap_or_default()),
        })
    }

    async fn status(&self) -> Result<Value, MetaError> {
        let mut sites = self.sites_status().await;
        self.add_gc_facts(&mut sites).await;
        let backlog = self.index.repairs()?;
        let lost = self.index.unrebuildable()?;
        let m = self.objects.profile().m();
        let mut missing: BTreeMap<ObjectId, usize> =
            backlog.iter().map(|(o, _, s)| (*o, s.len())).collect();
        // A version given up on makes its key unreadable while it is the key's current one.
        for (object, version, rec) in &lost {
            if self
                .index
                .get(&rec.bucket, &rec.key)?
                .is_some_and(|e| e.version == *version && !e.deleted)
            {
                missing.insert(*object, usize::MAX);
            }
        }
        // Per bucket: whole, degraded, unreadable; versions, delete markers, locked.
        let mut buckets: BTreeMap<String, [u64; 6]> = BTreeMap::new();
        for (b, _) in self.index.buckets()? {
            buckets.insert(b, [0; 6]);
        }
        for (b, k) in self.keys(None)? {
            let id = self.objects.object_id(&b, &k);
            let e = buckets.entry(b).or_default();
            match missing.get(&id) {
                None => e[0] += 1,
                Some(&n) if n <= m => e[1] += 1,
                Some(_) => e[2] += 1,
            }
        }
        for c in self.index.version_counts(now_ms())? {
            if let Some(e) = buckets.get_mut(&c.bucket) {
                e[3] = c.versions;
                e[4] = c.delete_markers;
                e[5] = c.locked;
            }
        }
        Ok(json!({
            "sites": sites,
            "repair_backlog": backlog.len(),
            "unrebuildable": lost_json(&lost),
            "withdrawals_pending": self.objects.withdrawals_pending(),
            "buckets": buckets.into_iter().map(|(name, [whole, degraded, unreadable, versions, markers, locked])| json!({
                "name": name, "whole": whole, "degraded": degraded, "unreadable": unreadable,
                "versions": versions, "delete_markers": markers, "locked": locked,
            })).collect::<Vec<_>>(),
        }))
    }

    /// Every version the index keeps of `bucket` (or all), noncurrent ones, deletes, versions
    /// removed by id and bucket records included: (bucket, key, version).
    fn entries(&self, bucket: Option<&str>) -> Result<Vec<(String, String, Version)>, MetaError> {
        let mut out = Vec::new();
        self.index.for_each_version(true, |b, k, e| {
            if bucket.is_none_or(|want| want == b) {
                out.push((b.to_owned(), k.to_owned(), e.version));
            }
        })?;
        Ok(out)
    }

    /// One index entry for heal: asks its shards' sites whether they hold them, and its
    /// manifest nodes for the record. Copies the record where it is lacking now when every
    /// shard is there; otherwise the repair pass copies it after rebuilding the shards.
    async fn heal_one(&self, bucket: &str, key: &str, version: Version) -> HealOne {
        let mut out = HealOne::default();
        let object = self.objects.object_id(bucket, key);
        let found = match self.objects.find_manifest(object, version).await {
            Ok(found) => found,
            Err(e) => {
                tracing::debug!(bucket, error = %e, "manifest not found for heal");
                out.manifests_unverified = 1;
                return out;
            }
        };
        let m = &found.manifest;
        // A version removed by id needs its removed copy everywhere, not its shards.
        if m.body.meta().is_some() && !m.state.removed {
            // Bucket records and the parts of uploads in progress are checked too, but they
            // are not objects to the person reading the count.
            out.checked = !key.is_empty() && !bucket.contains(super::HIDDEN);
            for (object, version, census) in self.objects.shard_census(m).await {
                if !census.absent.is_empty() {
                    out.absent.push((object, version, census.absent));
                }
                out.shards_unverified += census.unanswered as u64;
            }
        }
        if out.absent.is_empty() {
            let copied = self.objects.copy_manifest(&found).await;
            out.manifests_restored = copied.written as u64;
            out.manifests_unverified = copied.unanswered as u64;
        }
        out
    }

    /// For every version the index keeps of `bucket` (or all: noncurrent versions too), [`HEAL_CONCURRENCY`]
    /// at a time: restores its manifest record at the nodes that should hold it and lack it,
    /// and records for repair the shards its sites say they lack; then runs a repair pass.
    pub async fn heal(&self, bucket: Option<&str>) -> Result<Value, MetaError> {
        use futures::StreamExt as _;
        // What repair gave up on is tried again: a site may have it back.
        self.index.retry_unrebuildable()?;
        let entries = self.entries(bucket)?;
        let mut checked = 0u64;
        let mut found = 0u64;
        let mut unverified = 0u64;
        let (mut manifests_restored, mut manifests_unverified) = (0u64, 0u64);
        let mut results = futures::stream::iter(entries)
            .map(|(b, k, version)| async move { self.heal_one(&b, &k, version).await })
            .buffer_unordered(HEAL_CONCURRENCY);
        while let Some(one) = results.next().await {
            manifests_restored += one.manifests_restored;
            manifests_unverified += one.manifests_unverified;
            unverified += one.shards_unverified;
            checked += u64::from(one.checked);
            if !one.absent.is_empty() {
                found += 1;
            }
            for (object, version, absent) in &one.absent {
                self.index.record_repair(object, *version, absent)?;
            }
        }
        let pass = self.repair_pass().await?;
        Ok(json!({
            "checked": checked, "found_degraded": found, "shards_unverified": unverified,
            "manifests_restored": manifests_restored + pass.manifests_restored as u64,
            "manifests_unverified": manifests_unverified,
            "repaired": pass.repaired, "pending": pass.pending,
            "withdrawals_pending": pass.withdrawals_pending,
            "bytes_read": pass.bytes_read, "bytes_written": pass.bytes_written,
            "not_versions": pass.not_versions, "superseded": pass.superseded,
            "disk_full_sites": self.disk_full_sites(),
            "unrebuildable": lost_json(&self.index.unrebuildable()?),
        }))
    }

    /// Sites whose last shard write failed for lack of space.
    fn disk_full_sites(&self) -> Vec<String> {
        self.objects
            .node_ids()
            .into_iter()
            .filter_map(|n| self.objects.nodes().client(n))
            .filter(|c| c.disk_full())
            .map(|c| c.site().to_owned())
            .collect()
    }

    async fn workers(&self) -> Result<Value, MetaError> {
        let backlog = self.index.repairs()?;
        Ok(json!({
            "workers": self.worker_reports(),
            "repair": {
                "backlog": backlog.len(),
                "interval_secs": self.repair.interval.as_secs(),
                "oldest": backlog.first().map(|(o, _, s)| json!({"object": hex(&o.0), "shards": s})),
            },
            "scrub": self.sites_status().await,
        }))
    }

    async fn admin(self: Arc<Self>, req: Request<Incoming>, token: &str) -> Response<Full<Bytes>> {
        if !authorised(&req, token) {
            return reply(
                StatusCode::UNAUTHORIZED,
                &json!({"error": "missing or wrong bearer token (see admin_token_file)"}),
            );
        }
        let bucket = query_param(&req, "bucket").map(str::to_owned);
        let dry_run = query_param(&req, "dry_run").is_some_and(|v| v == "1" || v == "true");
        let openmetrics = wants_openmetrics(&req);
        let (method, path) = (req.method().clone(), req.uri().path().to_owned());
        let params: BTreeMap<String, String> = ["name", "key", "bucket"]
            .into_iter()
            .chain(["read", "write", "owner", "bypass_governance"])
            .filter_map(|n| Some((n.to_owned(), query_param(&req, n)?.to_owned())))
            .collect();
        // Bodies are not used; drain what was sent (bounded).
        let _ = http_body_util::Limited::new(req.into_body(), 64 * 1024)
            .collect()
            .await;
        if path == "/v1/keys"
            || path.starts_with("/v1/keys/")
            || path == "/v1/grants"
            || path == "/v1/buckets"
            || path.starts_with("/v1/buckets/")
        {
            return self.access_route(&method, &path, &params).await;
        }
        let result = match (method, path.as_str()) {
            (Method::GET, "/metrics") => {
                return match self.metrics().await {
                    Ok(text) => metrics_reply(text, openmetrics),
                    Err(e) => failed(e),
                };
            }
            (Method::GET, "/v1/status") => self.status().await,
            (Method::GET, "/v1/workers") => self.workers().await,
            (Method::POST, "/v1/checkpoint") => match self.checkpoint().await {
                Ok(made) => Ok(serde_json::to_value(made).unwrap_or_default()),
                Err(e) => Err(MetaError::Db(format!("checkpoint: {e:#}"))),
            },
            (Method::POST, "/v1/heal") => self.heal(bucket.as_deref()).await,
            (Method::POST, "/v1/gc") => match self.collector.pass(dry_run).await {
                Ok(r) => Ok(serde_json::to_value(r).unwrap_or_default()),
                Err(e) => Err(MetaError::Db(format!("gc: {e:#}"))),
            },
            (Method::GET, "/v1/gc") => {
                Ok(serde_json::to_value(self.collector.last()).unwrap_or_default())
            }
            (Method::GET, "/v1/census") => Ok(self.census().await),
            (Method::POST, "/v1/lifecycle") => match self.lifecycle_pass().await {
                Ok(r) => Ok(serde_json::to_value(r).unwrap_or_default()),
                Err(e) => Err(MetaError::Db(format!("lifecycle: {e:#}"))),
            },
            (Method::GET, "/v1/lifecycle") => {
                Ok(serde_json::to_value(self.lifecycle.last()).unwrap_or_default())
            }
            (Method::POST, "/v1/scrub") => {
                let mut asked = Vec::new();
                for node in self.objects.node_ids() {
                    if let Some(c) = self.objects.nodes().client(node).cloned() {
                        let ok = matches!(
                            tokio::time::timeout(Duration::from_secs(3), c.scrub()).await,
                            Ok(Ok(()))
                        );
                        asked.push(json!({"site": c.site(), "node": node.0, "started": ok}));
                    }
                }
                Ok(json!({ "nodes": asked }))
            }
            _ => {
                return reply(
                    StatusCode::NOT_FOUND,
                    &json!({"error": "no such admin route", "routes": [
                        "GET /metrics", "GET /v1/status", "GET /v1/workers", "POST /v1/scrub", "POST /v1/heal[?bucket=B]", "POST /v1/checkpoint", "POST /v1/gc[?dry_run=1]", "GET /v1/gc", "POST /v1/lifecycle", "GET /v1/lifecycle", "GET /v1/census",
                        "POST /v1/keys?name=N", "GET /v1/keys", "GET /v1/keys/N", "DELETE /v1/keys/N",
                        "POST /v1/keys/N/rotate-secret",
                        "POST /v1/grants?key=N&bucket=B&read=1&write=1&owner=1&bypass_governance=1",
                        "DELETE /v1/grants?key=N&bucket=B[&read=1...]", "GET /v1/buckets",
                        "GET /v1/buckets/B"]}),
                );
            }
        };
        match result {
            Ok(v) => reply(StatusCode::OK, &v),
            Err(e) => failed(e),
        }
    }
}

impl Gateway {
    /// The access keys and grants (`access.rs`): `exclave key` and `exclave bucket`.
    async fn access_route(
        &self,
        method: &Method,
        path: &str,
        params: &BTreeMap<String, String>,
    ) -> Response<Full<Bytes>> {
        use super::access::{AccessError, rights_of};
        let param = |n: &str| params.get(n).cloned();
        let need = |n: &str| {
            param(n).ok_or_else(|| AccessError::Invalid(format!("the parameter {n} is missing")))
        };
        let rights = rights_of(param);
        let key_path = path.strip_prefix("/v1/keys/");
        let result = match (method.clone(), path) {
            (Method::POST, "/v1/keys") => match need("name") {
                Ok(name) => self.create_key(&name).await,
                Err(e) => Err(e),
            },
            (Method::GET, "/v1/keys") => Ok(self.list_keys()),
            (Method::POST, "/v1/grants") | (Method::DELETE, "/v1/grants") => {
                match (need("key"), need("bucket")) {
                    (Ok(key), Ok(bucket)) => {
                        self.grant(&key, &bucket, rights, method == Method::POST)
                            .await
                    }
                    (Err(e), _) | (_, Err(e)) => Err(e),
                }
            }
            (Method::GET, "/v1/buckets") => self.buckets_access(None),
            (Method::GET, p) if p.starts_with("/v1/buckets/") => {
                self.buckets_access(Some(&p["/v1/buckets/".len()..]))
            }
            (m, _) if key_path.is_some() => {
                let rest = key_path.unwrap_or_default();
                match (m, rest.strip_suffix("/rotate-secret")) {
                    (Method::POST, Some(name)) => self.rotate_key_secret(name).await,
                    (Method::GET, None) => self.key_info(rest),
                    (Method::DELETE, None) => self.delete_key(rest).await,
                    _ => Err(AccessError::Invalid(format!("no route {method} {path}"))),
                }
            }
            _ => Err(AccessError::Invalid(format!("no route {method} {path}"))),
        };
        match result {
            Ok(v) => reply(StatusCode::OK, &v),
            Err(e) => {
                let status = match &e {
                    AccessError::Invalid(_) => StatusCode::BAD_REQUEST,
                    AccessError::NoSuchKey(_) => StatusCode::NOT_FOUND,
                    AccessError::Exists(_) => StatusCode::CONFLICT,
                    AccessError::Write(_) => StatusCode::SERVICE_UNAVAILABLE,
                    AccessError::Meta(_) => StatusCode::INTERNAL_SERVER_ERROR,
                };
                reply(status, &json!({"error": e.to_string()}))
            }
        }
    }
}

/// The versions repair gave up on, for `status` and `heal`.
fn lost_json(lost: &[(ObjectId, Version, LostRecord)]) -> Value {
    lost.iter()
        .map(|(object, version, r)| {
            json!({
                "bucket": r.bucket, "key": r.key, "object": hex(&object.0),
                "version": hex(&version.to_bytes()), "good": r.good, "needed": r.needed,
                "shards": r.shards, "found_ms": r.found_ms,
            })
        })
        .collect()
}

/// Serves the admin API on `listener` until `stop` turns true.
pub async fn serve_admin(
    gateway: Arc<Gateway>,
    token: String,
    listener: TcpListener,
    stop: watch::Receiver<bool>,
) {
    serve(listener, stop, move |req| {
        let (gw, token) = (gateway.clone(), token.clone());
        async move { gw.admin(req, &token).await }
    })
    .await;
}

/// How old a site's last full scrub is, judged on the gateway's clock: a node whose clock runs
/// ahead stamps its passes in the future, and must not look freshly scrubbed forever.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ScrubAge {
    /// No pass has finished yet.
    Never,
    /// Finished this many seconds ago.
    Ago(u64),
    /// Stamped this many seconds in the future: the node's clock runs ahead.
    Ahead(u64),
}

/// Clocks a minute apart still agree.
const CLOCK_TOLERANCE_MS: u64 = 60_000;

pub(crate) fn scrub_age(last_complete_ms: u64, now_ms: u64) -> ScrubAge {
    if last_complete_ms == 0 {
        ScrubAge::Never
    } else if last_complete_ms > now_ms + CLOCK_TOLERANCE_MS {
        ScrubAge::Ahead((last_complete_ms - now_ms) / 1000)
    } else {
        ScrubAge::Ago(now_ms.saturating_sub(last_complete_ms) / 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::{ScrubAge, scrub_age};

    /// Issue 15, finding 5: a node whose clock runs a day ahead looked freshly scrubbed ("0 s
    /// ago") forever; its pass is now named as stamped in the future.
    #[test]
    fn a_scrub_stamped_in_the_future_is_flagged_not_taken_for_fresh() {
        let now = 1_800_000_000_000;
        let day = 86_400_000;
        assert_eq!(scrub_age(now + day, now), ScrubAge::Ahead(86_400));
        assert_eq!(scrub_age(now - 5_000, now), ScrubAge::Ago(5));
        assert_eq!(
            scrub_age(now + 30_000, now),
            ScrubAge::Ago(0),
            "within the tolerance"
        );
        assert_eq!(scrub_age(0, now), ScrubAge::Never);
    }
}
