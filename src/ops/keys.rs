//! Master key rotation (`exclave keys rotate`): a new master key, and every data key re-wrapped
//! under it in every manifest at every node (no shard is rewritten). Run with the gateway
//! stopped; it acts as the gateway (its identity and keys) towards the nodes.
//!
//! 1. The new key: `master-<id>.key` next to the current one (kept if a previous run made it).
//! 2. Per node, every manifest whose data key is wrapped under the old key is re-wrapped and
//!    written back (same version, same object; only the wrapped key changes).
//! 3. The S3 secrets are re-sealed, and the cluster record at every node.
//! 4. The gateway config names the new key as current. While a node was unreachable, the old
//!    key stays listed as previous, so what that node holds still opens; a later run finishes
//!    it (resumable: what is done is skipped) and drops the old key from the config.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use futures::StreamExt as _;
use serde::Serialize;

use crate::config::{DaemonConfig, GatewaySettings, node_addresses, read_daemon, read_layout};
use crate::coordinator::object::{Layouts, ObjectKeys, ObjectSettings};
use crate::coordinator::{NodeClient, Nodes, Objects};
use crate::core::format::ManifestBody;
use crate::core::hlc::Hlc;
use crate::core::ids::{GatewayId, NodeId, hex, unhex};
use crate::core::keys::{ManifestKey, MasterKey};
use crate::core::layout::plan;
use crate::core::record::ClusterRecord;
use crate::gateway::{read_key_file, reseal_credentials};
use crate::meta::Index;
use crate::net::Identity;
use crate::net::endpoint::endpoint;
use crate::ops::recover::live::{Progress, fetch_records};
use crate::sys::{now_ms, random, write_atomic, write_secret};

/// What one node got.
#[derive(Clone, Debug, Default, Serialize)]
pub struct NodeRotation {
    /// Node id.
    pub node: u32,
    /// Site.
    pub site: String,
    /// Manifests re-wrapped now.
    pub rewrapped: u64,
    /// Manifests already under the new key (an earlier run).
    pub already: u64,
    /// The cluster record was re-sealed there.
    pub record: bool,
    /// What failed, if anything: run again once it is fixed.
    pub error: Option<String>,
}

/// What a rotation did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Rotation {
    /// The new master key's generation and check value.
    pub key_id: u32,
    /// Its check value (hex).
    pub check_value: String,
    /// Its file.
    pub key_file: PathBuf,
    /// Per node.
    pub nodes: Vec<NodeRotation>,
    /// Every node is done: the old key can be retired (and its shares destroyed).
    pub complete: bool,
}

/// Manifest writes in flight per node during a rotation.
const WRITES_IN_FLIGHT: usize = 32;

/// Refuses to go on while the gateway of `g` runs (`doing`: what would be refused); returns
/// the lock on its state directory, which keeps a gateway from starting until it is dropped.
/// A gateway on this machine holds that lock while it serves; one that answers at its S3 or
/// admin address is taken to run as well. (Connecting proves nothing: under systemd's socket
/// activation the listening socket accepts while no gateway runs.)
pub(crate) async fn gateway_stopped(
    g: &GatewaySettings,
    doing: &str,
) -> anyhow::Result<std::fs::File> {
    std::fs::create_dir_all(&g.state_dir)
        .with_context(|| format!("creating {}", g.state_dir.display()))?;
    let lock_path = g.state_dir.join(crate::gateway::STATE_LOCK);
    let Some(lock) = crate::sys::try_lock(&lock_path)? else {
        bail!(
            "the gateway still runs ({} is held): stop it first (systemctl stop exclaved-gateway), then {doing}",
            lock_path.display()
        );
    };
    for addr in std::iter::once(g.s3_listen).chain(g.admin_listen) {
        if answers(addr).await {
            bail!(
                "the gateway still answers at {addr}: stop it first (systemctl stop exclaved-gateway), then {doing}"
            );
        }
    }
    Ok(lock)
}

/// Whether something serves at `addr`: it accepts a connection and answers a request line
/// (an HTTP reply, or a TLS endpoint closing on plain text) within two seconds.
async fn answers(addr: SocketAddr) -> bool {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let within = Duration::from_secs(2);
    let Ok(Ok(mut conn)) = tokio::time::timeout(within, tokio::net::TcpStream::connect(addr)).await
    else {
        return false;
    };
    if conn.write_all(b"GET / HTTP/1.0\r\n\r\n").await.is_err() {
        return false;
    }
    let mut byte = [0u8; 1];
    match tokio::time::timeout(within, conn.read(&mut byte)).await {
        Ok(Ok(_)) => true,
        // Reset by the peer: something is there and refused the request.
        Ok(Err(_)) => true,
        Err(_) => false,
    }
}

/// A QUIC endpoint with the identity of the gateway `c` describes (whose gateway section is
/// `g`), for a tool that acts as that gateway towards the nodes while it is stopped.
pub(crate) fn gateway_endpoint(
    c: &DaemonConfig,
    g: &GatewaySettings,
) -> anyhow::Result<quinn::Endpoint> {
    let identity = Identity::load(&c.tls.ca_file, &c.tls.cert_file, &c.tls.key_file)?;
    Ok(endpoint(
        SocketAddr::new(g.s3_listen.ip(), 0),
        &identity,
        &c.transport,
        false,
    )?)
}

/// The newest cluster record the nodes at `addresses` serve that opens with one of `keys`.
pub(crate) async fn newest_record(
    addresses: &[SocketAddr],
    keys: &[&MasterKey],
) -> Option<ClusterRecord> {
    fetch_records(addresses, keys)
        .await
        .0
        .map(|(record, _)| record)
}

/// Rotates the master key of the gateway `config` describes.
pub async fn rotate(
    config: &Path,
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> anyhow::Result<Rotation> {
    let c = read_daemon(config)?;
    let Some(g) = &c.gateway else {
        bail!("{}: no [gateway] section", config.display());
    };
    let _stopped = gateway_stopped(g, "rotate").await?;
    let current = MasterKey::from_bytes(g.master_key_id, read_key_file(&g.master_key_file)?);
    // A run that stopped after switching the config: the "current" key is already the new
    // one; the old is the first previous key.
    let new_file = g
        .master_key_file
        .with_file_name(format!("master-{}.key", g.master_key_id + 1));
    let (old, new, old_file) = if new_file.exists() {
        let bytes = read_key_file(&new_file)?;
        (
            current,
            MasterKey::from_bytes(g.master_key_id + 1, bytes),
            g.master_key_file.clone(),
        )
    } else if let Some(prev) = g.previous_master_key_files.first()
        && g.master_key_file.file_name().and_then(|n| n.to_str())
            == Some(&format!("master-{}.key", g.master_key_id))
    {
        let bytes = read_key_file(prev)?;
        (
            MasterKey::from_bytes(g.master_key_id - 1, bytes),
            current,
            prev.clone(),
        )
    } else {
        let mut bytes = [0u8; 32];
        random(&mut bytes);
        write_secret(&new_file, format!("{}\n", hex(&bytes)).as_bytes())?;
        (
            current,
            MasterKey::from_bytes(g.master_key_id + 1, bytes),
            g.master_key_file.clone(),
        )
    };
    let new_file = if new.id() == g.master_key_id {
        g.master_key_file.clone()
    } else {
        new_file
    };

    let (layout, rule) = read_layout(&g.layout_file)?;
    let plan = plan(&layout, rule)?;
    let addrs = node_addresses(&g.layout_file)?;
    let ep = gateway_endpoint(&c, g)?;
    let mut clients = BTreeMap::new();
    let mut sites = BTreeMap::new();
    for site in &layout.sites {
        for n in &site.nodes {
            let Some(addr) = addrs.get(&n.id.0) else {
                continue;
            };
            clients.insert(
                n.id,
                Arc::new(NodeClient::new(ep.clone(), *addr, &site.name)),
            );
            sites.insert(n.id.0, (site.name.clone(), *addr));
        }
    }
    let manifest_key = ManifestKey::from_bytes(read_key_file(&g.manifest_key_file)?);
    let objects = Objects::new(
        Nodes::new(clients),
        Layouts {
            layout,
            plan,
            history: Vec::new(),
        },
        ObjectKeys {
            master: old.clone(),
            previous: Vec::new(),
            manifest: manifest_key.clone(),
        },
        Hlc::new(GatewayId(g.id)),
        ObjectSettings::default(),
    )?;

    // The cluster record, re-sealed under the new key.
    let addresses: Vec<SocketAddr> = sites.values().map(|(_, a)| *a).collect();
    let Some(mut record) = newest_record(&addresses, &[&new, &old]).await else {
        bail!("no node gave a cluster record that opens with the old or the new key");
    };
    record.written_ms = now_ms();
    let creds = reseal_credentials(&g.s3_credentials_file, &old, &new)?;
    record.s3_credentials_toml = creds.clone();
    let mut nonce = [0u8; 12];
    random(&mut nonce);
    let sealed_record = record.seal(&new, nonce);

    let mut report = Rotation {
        key_id: new.id(),
        check_value: hex(&new.check_value()),
        key_file: new_file.clone(),
        ..Rotation::default()
    };
    let total = sites.len() as u64;
    for (i, (&id, (site, _))) in sites.iter().enumerate() {
        progress(Progress {
            phase: "rewrap",
            done: i as u64,
            total,
        });
        let mut nr = NodeRotation {
            node: id,
            site: site.clone(),
            ..NodeRotation::default()
        };
        let Some(client) = objects.nodes().client(NodeId(id)).cloned() else {
            continue;
        };
        rewrap_node(&objects, &client, &old, &new, &manifest_key, &mut nr).await;
        if nr.error.is_none() {
            match client.put_cluster_record(sealed_record.clone()).await {
                Ok(()) => nr.record = true,
                Err(e) => nr.error = Some(format!("storing the cluster record: {e}")),
            }
        }
        report.nodes.push(nr);
    }
    ep.close(0u32.into(), b"rotated");
    report.complete = report.nodes.iter().all(|n| n.error.is_none());

    // The gateway now uses the new key, and keeps the old one for what is not re-wrapped.
    write_atomic(&g.s3_credentials_file, creds.as_bytes())?;
    let text = std::fs::read_to_string(config)?;
    let rel = |p: &Path| {
        p.strip_prefix(config.parent().unwrap_or(Path::new(".")))
            .unwrap_or(p)
            .display()
            .to_string()
    };
    let mut out = String::new();
    for line in text.lines() {
        let key = line.split('=').next().unwrap_or("").trim();
        match key {
            "master_key_id" => out.push_str(&format!("master_key_id = {}\n", new.id())),
            "master_key_file" => {
                out.push_str(&format!("master_key_file = \"{}\"\n", rel(&new_file)));
                // Until every node is done, data keys under the old key must still open.
                if !report.complete {
                    out.push_str(&format!(
                        "previous_master_key_files = [\"{}\"]\n",
                        rel(&old_file)
                    ));
                }
            }
            "previous_master_key_files" => {}
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    std::fs::write(config, out).with_context(|| format!("updating {}", config.display()))?;
    // The next checkpoint is signed with the new key: make the gateway take one.
    let index = Index::open(&g.state_dir.join("index.redb"))?;
    // The access keys' secrets the index caches, as their records at the sites now are.
    crate::gateway::reseal_index_keys(&index, &old, &new)?;
    index.meta_set("checkpoint_max", b"")?;
    Ok(report)
}

/// One official's share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareFile {
    /// Generation of the master key it belongs to.
    pub key_id: u32,
    /// The master key's check value (hex).
    pub kcv: String,
    /// Shares needed to restore the key.
    pub threshold: u8,
    /// Shares made.
    pub shares: u8,
    /// The share: x then the y bytes.
    pub share: Vec<u8>,
}

impl ShareFile {
    fn body(&self) -> String {
        format!(
            "master_key_id = {}\nmaster_key_check = {}\nthreshold = {}\nshares = {}\nshare = {}\n",
            self.key_id,
            self.kcv,
            self.threshold,
            self.shares,
            hex(&self.share)
        )
    }

    fn checksum(body: &str) -> String {
        hex(&blake3::hash(body.as_bytes()).as_bytes()[..8])
    }

    /// The share file's text.
    pub fn render(&self) -> String {
        let body = self.body();
        format!(
            "# exclave master key share {} of {} (any {} of them restore the key).\n\
             # Keep it offline; `exclave keys join` or `exclave recover --key-share` read it.\n\
             {body}checksum = {}\n",
            self.share.first().copied().unwrap_or(0),
            self.shares,
            self.threshold,
            Self::checksum(&body)
        )
    }

    /// Reads a share file's text (`path` names it in errors); a damaged or mistyped file is
    /// refused by its checksum.
    pub fn parse(path: &Path, text: &str) -> anyhow::Result<Self> {
        let mut fields = BTreeMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                bail!("{}: not a share file (line {line:?})", path.display());
            };
            fields.insert(k.trim().to_owned(), v.trim().to_owned());
        }
        let get = |k: &str| {
            fields
                .get(k)
                .cloned()
                .with_context(|| format!("{}: no {k} (not a share file?)", path.display()))
        };
        let bad = |k: &str| anyhow::anyhow!("{}: {k} is malformed", path.display());
        let s = Self {
            key_id: get("master_key_id")?
                .parse()
                .map_err(|_| bad("master_key_id"))?,
            kcv: get("master_key_check")?,
            threshold: get("threshold")?.parse().map_err(|_| bad("threshold"))?,
            shares: get("shares")?.parse().map_err(|_| bad("shares"))?,
            share: unhex(&get("share")?).ok_or_else(|| bad("share"))?,
        };
        if Self::checksum(&s.body()) != get("checksum")? {
            bail!(
                "{}: the checksum does not match: the file was damaged or mistyped",
                path.display()
            );
        }
        if s.share.len() != 1 + 32 || s.share[0] == 0 {
            return Err(bad("share"));
        }
        Ok(s)
    }
}

/// Re-wraps, under `new`, the data key of every manifest `client`'s node holds that is still
/// under `old`, and writes each back there (the same version, sealed again); counts into `nr`.
/// A crash part-way leaves each manifest under the old key or the new, both of which the
/// gateway keeps (`docs/operations.md`); a run again finishes the rest.
pub(crate) async fn rewrap_node(
    objects: &Objects,
    client: &Arc<NodeClient>,
    old: &MasterKey,
    new: &MasterKey,
    manifest_key: &ManifestKey,
    nr: &mut NodeRotation,
) {
    let id = nr.node;
    match tokio::time::timeout(Duration::from_secs(600), objects.scan_node(NodeId(id))).await {
        Ok(Ok((manifests, _))) => {
            // Re-wrap here, then write back with a few requests in flight.
            let mut sealed = Vec::new();
            'manifests: for mut m in manifests {
                // A version's own data key, or each of its parts' (bound to the part's id and
                // version): every one re-wrapped.
                let (object, version) = (m.object, m.version);
                // An access key's record: its secret, sealed under the master key too.
                let resealed = match crate::gateway::reseal_key_record(&mut m, old, new) {
                    Ok(r) => r,
                    Err(e) => {
                        nr.error = Some(e);
                        break 'manifests;
                    }
                };
                let deks: Vec<(
                    &mut crate::core::keys::WrappedKey,
                    crate::core::ids::ObjectId,
                    crate::core::hlc::Version,
                )> = match &mut m.body {
                    ManifestBody::Object(meta) => vec![(&mut meta.dek, object, version)],
                    ManifestBody::Parts(p) => p
                        .parts
                        .iter_mut()
                        .map(|part| (&mut part.meta.dek, part.object, part.version))
                        .collect(),
                    ManifestBody::Tombstone => Vec::new(),
                };
                if deks.is_empty() {
                    continue;
                }
                if !resealed
                    && deks
                        .iter()
                        .all(|(w, _, _)| w.key_id == new.id() && w.kcv == new.check_value())
                {
                    nr.already += 1;
                    continue;
                }
                for (wrapped, object, version) in deks {
                    if wrapped.key_id == new.id() && wrapped.kcv == new.check_value() {
                        continue;
                    }
                    let dek = match old.unwrap_data_key(wrapped, &object, version) {
                        Ok(k) => k,
                        Err(e) => {
                            nr.error =
                                Some(format!("a data key does not open with the old key: {e}"));
                            break 'manifests;
                        }
                    };
                    let mut nonce = [0u8; 12];
                    random(&mut nonce);
                    *wrapped = new.wrap_data_key(&dek, &object, version, nonce);
                }
                if let ManifestBody::Parts(p) = &mut m.body {
                    p.whole.dek = p.parts[0].meta.dek.clone();
                }
                let mut nonce = [0u8; 12];
                random(&mut nonce);
                match m.seal(manifest_key, nonce) {
                    Ok(bytes) => sealed.push(bytes),
                    Err(e) => {
                        nr.error = Some(format!("sealing a re-wrapped manifest: {e}"));
                        return;
                    }
                }
            }
            let results: Vec<Result<_, String>> = futures::stream::iter(sealed)
                .map(|bytes| {
                    let client = client.clone();
                    async move { client.put_manifest(bytes).await.map_err(|e| e.to_string()) }
                })
                .buffer_unordered(WRITES_IN_FLIGHT)
                .collect()
                .await;
            nr.rewrapped = results.iter().filter(|r| r.is_ok()).count() as u64;
            if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
                nr.error
                    .get_or_insert_with(|| format!("writing a manifest back: {e}"));
            }
        }
        Ok(Err(e)) => nr.error = Some(format!("listing manifests: {e}")),
        Err(_) => nr.error = Some("listing manifests: timed out".into()),
    }
}
