//! `exclave recover --nodes ...`: a new gateway (config, identity, keys, index) built from the
//! surviving nodes and the master key alone.
//!
//! 1. Fetch the sealed cluster record from every node given (`GET /v1/cluster-record` on its
//!    admin port, no token) and open it with the master key; the newest that opens wins.
//! 2. Write the recovery gateway's directory: the CA certificate, the layout, a new gateway
//!    certificate issued with the CA key from the record, the keys, the S3 credentials, a new
//!    admin token.
//! 3. List every manifest at every node given (QUIC, as the new gateway), open them with the
//!    manifest key, and apply them to a new index: the newest version of each key wins, so a
//!    site that withholds or rolls back is outvoted by the others. Per node, count the
//!    versions its placement says it should hold and it did not give (`lacking`).
//! 4. Fetch the catalog checkpoints every node keeps; take the newest whose signature holds
//!    (key derived from the master key), and check the recovered catalog as of that
//!    checkpoint against its Merkle root. A site whose newest checkpoint is older was restored
//!    from an old copy (or was down): it is named stale.
//! 5. Optionally read every current object back (decrypted and authenticated).
//! 6. Write `gateway.toml` and a report; `exclaved --config OUT/gateway/gateway.toml` serves.
//!
//! Resumable: a second run with the same `--out` keeps the identity, keys and index written
//! so far, lists the nodes again (applying a manifest twice changes nothing) and finishes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::census::{Census, CheckpointReport, Withdrawals};
use crate::admin::request;
use crate::config::{node_addresses, parse_layout, read_layout};
use crate::coordinator::object::{Layouts, ObjectKeys, ObjectSettings};
use crate::coordinator::{NodeClient, Nodes, Objects};
use crate::core::hlc::{Hlc, Version};
use crate::core::ids::{GatewayId, NodeId, hex, key_from_hex};
use crate::core::keys::{CheckpointKey, ManifestKey, MasterKey};
use crate::core::layout::plan;
use crate::core::record::ClusterRecord;
use crate::gateway::{
    DEFAULT_BODY_IDLE_SECS, Gateway, HIDDEN, Holders, RepairPace, Tuning, layout_history,
};
use crate::meta::Index;
use crate::net::endpoint::endpoint;
use crate::net::pki::Ca;
use crate::net::{Identity, Role, TransportSettings};
use crate::sys::{random, write_secret};

/// What to recover, and where to.
#[derive(Debug)]
pub struct LiveOptions {
    /// Addresses of the surviving nodes (QUIC, and their admin API on the same TCP port).
    pub nodes: Vec<SocketAddr>,
    /// The master key (from its file or joined from shares).
    pub master: MasterKey,
    /// The directory to write (new, or a previous run's to resume).
    pub out: PathBuf,
    /// Where the recovered gateway will serve S3.
    pub s3_listen: SocketAddr,
    /// Where it will serve its admin API.
    pub admin_listen: SocketAddr,
    /// Read every current object back.
    pub verify: bool,
    /// Serve S3 as plain HTTP (only on a loopback `s3_listen`); otherwise over TLS, with a
    /// certificate the cluster CA (from the cluster record) issues for the listen address.
    pub s3_plain_http: bool,
}

/// Progress of a long phase.
#[derive(Clone, Copy, Debug)]
pub struct Progress<'a> {
    /// The phase: `records`, `manifests`, `verify`.
    pub phase: &'a str,
    /// Done so far.
    pub done: u64,
    /// Out of (0: unknown).
    pub total: u64,
}

/// What one node gave.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeReport {
    /// The address given.
    pub addr: String,
    /// Its node id and site, from the layout.
    pub node: u32,
    /// Site name.
    pub site: String,
    /// Its cluster record opened.
    pub record: bool,
    /// Its manifests were listed.
    pub listed: bool,
    /// Manifest records it holds.
    pub manifests: u64,
    /// Records that did not open (forged or damaged).
    pub unopenable: u64,
    /// Manifests it should hold (by placement) that the others gave and it did not:
    /// missed while it was down, withheld, or lost to a rollback.
    pub lacking: u64,
    /// The newest checkpoint it keeps whose signature holds (0: none).
    pub newest_checkpoint: u64,
    /// Its withdrawals of failed writes.
    #[serde(flatten)]
    pub withdrawn: Withdrawals,
    /// What went wrong, if anything.
    pub error: Option<String>,
}

/// What a recovery did.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// The recovery gateway's config.
    pub gateway_config: PathBuf,
    /// Per node given.
    pub nodes: Vec<NodeReport>,
    /// Layout sites not given (lost, or ignored).
    pub sites_missing: Vec<String>,
    /// The checkpoint checked against, if any node kept one.
    pub checkpoint: Option<CheckpointReport>,
    /// Sites whose newest checkpoint is older than the newest: restored from an old copy (or
    /// down since). What they hold is outvoted by the others: newer versions win.
    pub stale_sites: Vec<String>,
    /// Sites lacking manifest versions that the others gave and their placement says they
    /// hold (withheld, missed while down, or lost to a rollback): outvoted, the others' copies
    /// were used. Counts per node in `nodes`.
    pub lacking_sites: Vec<String>,
    /// Buckets recovered.
    pub buckets: u64,
    /// Current objects recovered.
    pub objects: u64,
    /// Their plaintext bytes.
    pub bytes: u64,
    /// Objects read back whole (with `verify`).
    pub verified: u64,
    /// Objects that could not be read back, as `bucket/key: error` (with `verify`).
    pub unreadable: Vec<String>,
    /// Objects stored under a key of their client's (SSE-C), as `bucket/key` (with `verify`):
    /// recovered, not read back (exclave never keeps that key; their owner's opens them).
    #[serde(default)]
    pub customer_keyed: Vec<String>,
    /// Seconds the recovery took.
    pub seconds: f64,
}

/// The progress file of a resumable run.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    listed: Vec<u32>,
    nodes: Vec<NodeReport>,
}

const STATE_FILE: &str = "recovery-state.json";
/// Objects read back at the same time when verifying.
const VERIFY_CONCURRENCY: usize = 16;
/// How long a node gets to hand over its cluster record.
const RECORD_WAIT: Duration = Duration::from_secs(10);
/// The report file, next to the gateway directory.
pub const REPORT_FILE: &str = "recovery-report.json";

/// What each node answered for its cluster record.
type RecordAnswers = BTreeMap<SocketAddr, Result<(), String>>;

/// Fetches the cluster record from every node at once and opens it with the first of `keys`
/// that opens it: the newest that opens (with the master key generation that sealed it), and
/// per node whether it did.
pub(crate) async fn fetch_records(
    nodes: &[SocketAddr],
    keys: &[&MasterKey],
) -> (Option<(ClusterRecord, u32)>, RecordAnswers) {
    let mut best: Option<(ClusterRecord, u32)> = None;
    let mut per = BTreeMap::new();
    let asks = nodes.iter().map(|&a| async move {
        let got = match request(a, "GET", "/v1/cluster-record", None, RECORD_WAIT).await {
            Ok((200, body)) => {
                let mut opened = Err("no key given".to_owned());
                for key in keys {
                    opened = ClusterRecord::open(key, &body)
                        .map(|r| (r, ClusterRecord::sealed_key_id(&body).unwrap_or(0)))
                        .map_err(|e| e.to_string());
                    if opened.is_ok() {
                        break;
                    }
                }
                opened
            }
            Ok((status, body)) => Err(format!(
                "answered {status}: {}",
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(200)
                    .collect::<String>()
            )),
            Err(e) => Err(format!("{e:#}")),
        };
        (a, got)
    });
    for (a, got) in futures::future::join_all(asks).await {
        match got {
            Ok(r) => {
                if best
                    .as_ref()
                    .is_none_or(|b| b.0.written_ms < r.0.written_ms)
                {
                    best = Some(r);
                }
                per.insert(a, Ok(()));
            }
            Err(e) => {
                per.insert(a, Err(e));
            }
        }
    }
    (best, per)
}

fn write_new(path: &Path, contents: &[u8], secret: bool) -> anyhow::Result<()> {
    if path.exists() {
        return Ok(());
    }
    if secret {
        write_secret(path, contents)?;
    } else {
        std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The recovered gateway's S3 certificate, issued by the cluster CA for `localhost`, the
/// loopback addresses and `listen`'s address (kept if a previous run wrote it); returns the
/// `gateway.toml` lines that name it.
fn write_s3_tls(gw: &Path, record: &ClusterRecord, listen: SocketAddr) -> anyhow::Result<String> {
    if !gw.join("s3-tls.key").exists() {
        let ca = Ca::from_pem(&record.home, &record.ca_cert_pem, &record.ca_key_pem)?;
        let mut names = vec!["localhost".to_owned(), "127.0.0.1".into(), "::1".into()];
        if !listen.ip().is_unspecified() && !names.contains(&listen.ip().to_string()) {
            names.push(listen.ip().to_string());
        }
        let issued = ca.issue_s3_server(&names)?;
        std::fs::write(gw.join("s3-tls.pem"), &issued.cert_pem)?;
        write_secret(&gw.join("s3-tls.key"), issued.key_pem.as_bytes())?;
    }
    Ok("s3_tls_cert_file = \"s3-tls.pem\"\ns3_tls_key_file = \"s3-tls.key\"\n".into())
}

/// Writes what the recovery gateway needs (kept if a previous run wrote it).
fn write_gateway_files(
    out: &Path,
    record: &ClusterRecord,
    master: &MasterKey,
) -> anyhow::Result<()> {
    let gw = out.join("gateway");
    std::fs::create_dir_all(gw.join("state"))
        .with_context(|| format!("creating {}", gw.display()))?;
    write_new(&out.join("ca.pem"), record.ca_cert_pem.as_bytes(), false)?;
    write_new(
        &out.join("layout.toml"),
        record.layout_toml.as_bytes(),
        false,
    )?;
    for (i, text) in record.previous_layouts_toml.iter().enumerate() {
        write_new(
            &out.join(format!("layout-previous-{i}.toml")),
            text.as_bytes(),
            false,
        )?;
    }
    if !gw.join("gateway.key").exists() {
        let ca = Ca::from_pem(&record.home, &record.ca_cert_pem, &record.ca_key_pem)?;
        let issued = ca.issue(Role::Gateway, &record.home, 0)?;
        std::fs::write(gw.join("gateway.pem"), &issued.cert_pem)?;
        write_secret(&gw.join("gateway.key"), issued.key_pem.as_bytes())?;
    }
    write_new(
        &gw.join("master.key"),
        format!("{}\n", hex(master.secret_bytes())).as_bytes(),
        true,
    )?;
    write_new(
        &gw.join("manifest.key"),
        format!("{}\n", record.manifest_key).as_bytes(),
        true,
    )?;
    write_new(
        &gw.join("s3-credentials.toml"),
        record.s3_credentials_toml.as_bytes(),
        true,
    )?;
    let mut token = [0u8; 32];
    random(&mut token);
    write_new(
        &gw.join("admin.token"),
        format!("{}\n", hex(&token)).as_bytes(),
        true,
    )?;
    Ok(())
}

/// The object store a cluster record describes, over `nodes` (placement from its layout).
pub(super) fn objects_of(
    record: &ClusterRecord,
    master: &MasterKey,
    nodes: Nodes,
) -> anyhow::Result<Objects> {
    let (layout, rule) = parse_layout(&record.layout_toml, "the cluster record")?;
    let plan = plan(&layout, rule)?;
    let earlier: Vec<(String, String)> = record
        .previous_layouts_toml
        .iter()
        .map(|t| {
            (
                "an earlier layout in the cluster record".to_owned(),
                t.clone(),
            )
        })
        .collect();
    Ok(Objects::new(
        nodes,
        Layouts {
            layout,
            plan,
            history: layout_history(&earlier)?,
        },
        ObjectKeys {
            master: master.clone(),
            previous: Vec::new(),
            manifest: manifest_key(record)?,
        },
        Hlc::new(GatewayId(0)),
        ObjectSettings::default(),
    )?)
}

/// The manifest key a cluster record carries.
pub(super) fn manifest_key(record: &ClusterRecord) -> anyhow::Result<ManifestKey> {
    key_from_hex(&record.manifest_key)
        .map(ManifestKey::from_bytes)
        .ok_or_else(|| anyhow::anyhow!("the cluster record's manifest key is not 64 hex digits"))
}

/// Runs a recovery.
pub async fn recover(
    o: &LiveOptions,
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> anyhow::Result<Report> {
    let started = Instant::now();
    if o.nodes.is_empty() {
        bail!("give the surviving nodes: --nodes ADDR,ADDR,...");
    }
    progress(Progress {
        phase: "records",
        done: 0,
        total: o.nodes.len() as u64,
    });
    let (record, per_node) = fetch_records(&o.nodes, &[&o.master]).await;
    let Some(record) = record else {
        let why: Vec<String> = per_node
            .iter()
            .map(|(a, r)| format!("{a}: {}", r.as_ref().err().map_or("ok", String::as_str)))
            .collect();
        bail!(
            "no node gave a cluster record that opens with this master key ({}). Check the \
             addresses (the nodes' admin ports) and the key or key shares",
            why.join("; ")
        );
    };
    let (record, key_id) = record;
    // The generation that sealed the record is the current one.
    let master = MasterKey::from_bytes(key_id, *o.master.secret_bytes());
    if o.s3_plain_http && !o.s3_listen.ip().is_loopback() {
        anyhow::bail!(
            "plain-HTTP S3 on {} would send requests and data in clear: leave out \
             --s3-plain-http (TLS), or listen on a loopback address",
            o.s3_listen
        );
    }
    write_gateway_files(&o.out, &record, &master)?;
    let tls_lines = if o.s3_plain_http {
        String::new()
    } else {
        write_s3_tls(&o.out.join("gateway"), &record, o.s3_listen)?
    };

    let layout_path = o.out.join("layout.toml");
    let (layout, _) = read_layout(&layout_path)?;
    let addrs = node_addresses(&layout_path)?;
    let by_addr: BTreeMap<SocketAddr, u32> = addrs.iter().map(|(id, a)| (*a, *id)).collect();
    let site_of: BTreeMap<u32, String> = layout
        .sites
        .iter()
        .flat_map(|s| s.nodes.iter().map(|n| (n.id.0, s.name.clone())))
        .collect();
    let mut given: BTreeMap<u32, SocketAddr> = BTreeMap::new();
    for a in &o.nodes {
        let Some(&id) = by_addr.get(a) else {
            bail!(
                "{a} is not a node of the layout in the cluster record (nodes: {})",
                addrs
                    .iter()
                    .map(|(id, a)| format!("{id}@{a}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        };
        given.insert(id, *a);
    }

    let gw = o.out.join("gateway");
    let identity = Identity::load(
        &o.out.join("ca.pem"),
        &gw.join("gateway.pem"),
        &gw.join("gateway.key"),
    )?;
    let bind = SocketAddr::new(
        if o.nodes[0].is_ipv6() {
            std::net::Ipv6Addr::UNSPECIFIED.into()
        } else {
            std::net::Ipv4Addr::UNSPECIFIED.into()
        },
        0,
    );
    let ep = endpoint(bind, &identity, &TransportSettings::default(), false)?;
    // Clients only for the nodes given: the others are lost (or, in a drill, ignored).
    let clients: BTreeMap<NodeId, Arc<NodeClient>> = given
        .iter()
        .map(|(&id, &a)| {
            (
                NodeId(id),
                Arc::new(NodeClient::new(ep.clone(), a, &site_of[&id])),
            )
        })
        .collect();
    let objects = Arc::new(objects_of(&record, &master, Nodes::new(clients))?);
    let index = Arc::new(Index::open(&gw.join("state").join("index.redb"))?);
    // Recovery repairs at full speed: no client is served yet.
    let gateway = Gateway::assemble(
        objects.clone(),
        index.clone(),
        Tuning {
            repair_interval: Duration::from_secs(10),
            repair_pace: RepairPace { idle: 0, busy: 0 },
            checkpoint_interval: Duration::from_secs(300),
            body_idle: Duration::from_secs(DEFAULT_BODY_IDLE_SECS),
            collect: crate::gateway::CollectTuning::default(),
            lifecycle: (Duration::from_secs(3600), Duration::from_secs(86_400)),
        },
    );

    let state_path = o.out.join(STATE_FILE);
    let mut state: State = std::fs::read(&state_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mut max_gateway = 0u32;
    let total = given.len() as u64;
    let mut census = Census::default();
    let mut held = Holders::default();
    // The uploads in progress, from their records at the nodes.
    let mut hidden = crate::gateway::HiddenNewest::default();
    let ck = CheckpointKey::of(&master);
    state.listed.clear();
    // What the nodes withdrew, before any manifest is applied: a site rolled back to an old
    // copy of its disk may serve a failed write that the others withdrew.
    let withdrawn: BTreeMap<u32, Result<(usize, usize), String>> = gateway
        .learn_withdrawals(given.keys().map(|&id| NodeId(id)))
        .await
        .into_iter()
        .map(|(n, r)| (n.0, r))
        .collect();
    for (i, (&id, &addr)) in given.iter().enumerate() {
        progress(Progress {
            phase: "manifests",
            done: i as u64,
            total,
        });
        let mut nr = NodeReport {
            addr: addr.to_string(),
            node: id,
            site: site_of[&id].clone(),
            record: per_node.get(&addr).is_some_and(Result::is_ok),
            ..NodeReport::default()
        };
        if let Some(Err(e)) = per_node.get(&addr) {
            nr.error = Some(format!("cluster record: {e}"));
        }
        match withdrawn.get(&id) {
            Some(Ok((learned, refused))) => {
                (nr.withdrawn.withdrawals, nr.withdrawn.withdrawals_refused) =
                    (*learned as u64, *refused as u64);
            }
            Some(Err(e)) => nr.error = Some(format!("listing withdrawals: {e}")),
            None => {}
        }
        if let Some(c) = objects.nodes().client(NodeId(id))
            && let Ok(Ok(records)) =
                tokio::time::timeout(Duration::from_secs(30), c.checkpoints(16)).await
        {
            nr.newest_checkpoint = census.add_checkpoints(id, &records, &ck);
        }
        match tokio::time::timeout(Duration::from_secs(600), objects.scan_node(NodeId(id))).await {
            Ok(Ok((manifests, bad))) => {
                nr.listed = true;
                nr.manifests = manifests.len() as u64;
                nr.unopenable = bad as u64;
                for m in &manifests {
                    held.holds(m);
                    max_gateway = max_gateway.max(m.version.gateway.0);
                    if gateway.take_found(NodeId(id), m)? {
                        census.add_manifest(id, m);
                        hidden.offer(m);
                    } else {
                        nr.withdrawn.withdrawn_served += 1;
                    }
                }
                state.listed.push(id);
            }
            Ok(Err(e)) => nr.error = Some(format!("listing manifests: {e}")),
            Err(_) => nr.error = Some("listing manifests: timed out".into()),
        }
        if !nr.listed {
            held.unanswered(NodeId(id));
        }
        state.nodes.retain(|n| n.node != id);
        state.nodes.push(nr);
        std::fs::write(&state_path, serde_json::to_vec_pretty(&state)?)?;
    }
    // The failed writes still newer than every version of their objects stay skipped by the
    // recovered gateway's reads.
    gateway.keep_withdrawals()?;
    gateway.take_uploads(hidden.newest())?;
    gateway.take_access_keys(hidden.newest())?;
    // A version found at fewer nodes than a write needs (the sites not given counted as
    // holding it) was never acknowledged: taken if it can be read, else withdrawn.
    for site in &layout.sites {
        for n in &site.nodes {
            if !given.contains_key(&n.id.0) {
                held.unanswered(n.id);
            }
        }
    }
    gateway.settle_in_doubt(&held).await?;
    // What each listed node lacks: versions others gave whose placement names it.
    let lacking = census.lacking(&objects, &state.listed);
    for nr in &mut state.nodes {
        nr.lacking = lacking.get(&nr.node).copied().unwrap_or(0);
    }
    if state.listed.is_empty() {
        bail!(
            "no node could be listed: {}",
            state
                .nodes
                .iter()
                .map(|n| format!("{}: {}", n.addr, n.error.clone().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    if let Some(v) = index.max_order()? {
        max_gateway = max_gateway.max(v.gateway.0);
        objects.observe(v);
    }

    let (checkpoint, stale_sites) = census.verify(&site_of);
    let mut report = Report {
        checkpoint,
        stale_sites,
        lacking_sites: Census::lacking_sites(&lacking, &site_of),
        nodes: state.nodes.clone(),
        sites_missing: layout
            .sites
            .iter()
            .filter(|s| s.nodes.iter().all(|n| !given.contains_key(&n.id.0)))
            .map(|s| s.name.clone())
            .collect(),
        ..Report::default()
    };
    for (b, n, bytes) in index.counts()? {
        if b.contains(HIDDEN) {
            continue;
        }
        report.objects += n;
        report.bytes += bytes;
    }
    report.buckets = index.buckets()?.len() as u64;

    if o.verify {
        use futures::StreamExt as _;
        let keys = gateway.keys(None)?;
        let total = keys.len() as u64;
        let mut asks = Vec::with_capacity(keys.len());
        for (b, k) in keys {
            let known = index.get(&b, &k)?.map(|e| e.order);
            asks.push((b, k, known));
        }
        // Several objects at a time: a read is mostly waiting on the sites.
        let mut reads = futures::stream::iter(asks)
            .map(|(b, k, known)| {
                let objects = &objects;
                async move {
                    let r = read_whole(objects, &b, &k, known).await;
                    (b, k, r)
                }
            })
            .buffer_unordered(VERIFY_CONCURRENCY);
        let mut done = 0u64;
        while let Some((b, k, r)) = reads.next().await {
            match r {
                Ok(true) => report.verified += 1,
                Ok(false) => report.customer_keyed.push(format!("{b}/{k}")),
                Err(e) => report.unreadable.push(format!("{b}/{k}: {e}")),
            }
            done += 1;
            if done.is_multiple_of(50) {
                progress(Progress {
                    phase: "verify",
                    done,
                    total,
                });
            }
        }
        report.unreadable.sort();
        report.customer_keyed.sort();
    }

    // The recovered gateway stamps versions with an id of its own, past every one seen.
    let config = gw.join("gateway.toml");
    let text = format!(
        "# The recovery gateway written by `exclave recover`. Start: exclaved --config {path}\n\
         [gateway]\nid = {id}\nsite = \"{site}\"\ns3_listen = \"{s3}\"\nstate_dir = \"state\"\n\
         layout_file = \"../layout.toml\"\nmaster_key_id = {kid}\nmaster_key_file = \"master.key\"\n\
         manifest_key_file = \"manifest.key\"\ns3_credentials_file = \"s3-credentials.toml\"\n\
         admin_token_file = \"admin.token\"\nadmin_listen = \"{admin}\"\n{previous}{tls_lines}\n[tls]\nca_file = \"../ca.pem\"\n\
         cert_file = \"gateway.pem\"\nkey_file = \"gateway.key\"\n",
        previous = if record.previous_layouts_toml.is_empty() {
            String::new()
        } else {
            let files: Vec<String> = (0..record.previous_layouts_toml.len())
                .map(|i| format!("\"../layout-previous-{i}.toml\""))
                .collect();
            format!("previous_layout_files = [{}]\n", files.join(", "))
        },
        path = config.display(),
        id = max_gateway + 1,
        site = record.home,
        s3 = o.s3_listen,
        kid = master.id(),
        admin = o.admin_listen,
    );
    std::fs::write(&config, text)?;
    report.gateway_config = config;
    report.seconds = started.elapsed().as_secs_f64();
    std::fs::write(o.out.join(REPORT_FILE), serde_json::to_vec_pretty(&report)?)?;
    ep.close(0u32.into(), b"recovered");
    Ok(report)
}

/// Reads (bucket, key)'s current version (`known`, the recovered index's) whole: every
/// stripe decoded and authenticated. False: stored under its client's key (SSE-C), not read.
async fn read_whole(
    objects: &Arc<Objects>,
    bucket: &str,
    key: &str,
    known: Option<Version>,
) -> anyhow::Result<bool> {
    let Some(m) = objects.head(bucket, key, known).await? else {
        bail!("no manifest at a read quorum");
    };
    let Some(meta) = m.body.meta() else {
        return Ok(true);
    };
    if crate::core::ssec::stored_check(meta).is_some() {
        return Ok(false);
    }
    let mut r = objects.reader(&m, 0..meta.size)?;
    let mut n = 0u64;
    while let Some(chunk) = r.next().await {
        n += chunk?.len() as u64;
    }
    if n != meta.size {
        bail!("read {n} of {} bytes", meta.size);
    }
    Ok(true)
}
