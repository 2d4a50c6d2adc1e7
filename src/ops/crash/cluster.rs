//! A whole cluster in one process for the crash-point test: five nodes (one per site, 3 + 2)
//! and a gateway, their stores and index on one simulated disk (`sys::sim`), talking QUIC with
//! mutual TLS over loopback as in production. One disk for all of them means one count of
//! operations: "crash after operation n" cuts the power of every site and the gateway at once.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use quinn::Endpoint;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::coordinator::object::{Layouts, ObjectKeys, ObjectSettings, Objects};
use crate::coordinator::{NodeClient, Nodes};
use crate::core::hlc::Hlc;
use crate::core::ids::{DiskId, GatewayId, NodeId, SiteId};
use crate::core::keys::{ManifestKey, MasterKey};
use crate::core::layout::{Disk, Layout, Node as LayoutNode, Rule, Site, plan};
use crate::core::stripe::Profile;
use crate::gateway::{Gateway, RepairPace, Tuning};
use crate::meta::Index;
use crate::net::endpoint::endpoint;
use crate::net::pki::{Ca, Issued};
use crate::net::{Identity, Role, TransportSettings};
use crate::node::Node;
use crate::store::{Store, init_disk_on};
use crate::sys::files::Files as _;
use crate::sys::sim::SimFiles;

/// Sites, one node each; the first is home.
pub(super) const SITES: [&str; 5] = ["home", "site-b", "site-c", "site-d", "site-e"];
/// Shards durable at distinct sites before a write is acknowledged (k + 1).
pub(super) const WRITE_QUORUM: usize = 4;
/// Objects below this ride in the manifest records.
pub(super) const INLINE_LIMIT: u64 = 1024;
/// Small blocks: a "large" object of a few tens of kilobytes spans several stripes.
const BLOCK_SIZE: u32 = 4096;
const INDEX: &str = "/gateway/index.redb";

/// Node `i`'s data directory.
pub(super) fn data_dir(i: usize) -> PathBuf {
    PathBuf::from(format!("/node{}/data", i + 1))
}

/// Node `i`'s state directory (its database).
pub(super) fn state_dir(i: usize) -> PathBuf {
    PathBuf::from(format!("/node{}/state", i + 1))
}

/// The certificates and keys every start of the cluster uses.
pub(super) struct Secrets {
    nodes: Vec<Identity>,
    gateway: Identity,
    /// The master key before the rotation, and after it.
    pub(super) old: MasterKey,
    pub(super) new: MasterKey,
    pub(super) manifest: [u8; 32],
}

fn identity(ca: &Ca, issued: &Issued) -> Identity {
    let der = |pem: &str| CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    Identity::from_der(
        der(&ca.issued().cert_pem),
        der(&issued.cert_pem),
        PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

impl Secrets {
    pub(super) fn new() -> Self {
        let ca = Ca::new("crash test").unwrap();
        let nodes = SITES
            .iter()
            .enumerate()
            .map(|(i, site)| identity(&ca, &ca.issue(Role::Node, site, i as u32 + 1).unwrap()))
            .collect();
        let gateway = identity(&ca, &ca.issue(Role::Gateway, SITES[0], 1).unwrap());
        Self {
            nodes,
            gateway,
            old: MasterKey::from_bytes(1, [0x11; 32]),
            new: MasterKey::from_bytes(2, [0x22; 32]),
            manifest: [0x33; 32],
        }
    }

    pub(super) fn manifest_key(&self) -> ManifestKey {
        ManifestKey::from_bytes(self.manifest)
    }
}

fn layout() -> Layout {
    Layout {
        epoch: 1,
        profile: Profile::new(3, 2).unwrap(),
        sites: SITES
            .iter()
            .enumerate()
            .map(|(i, name)| Site {
                id: SiteId(i as u16),
                name: (*name).to_owned(),
                home: i == 0,
                nodes: vec![LayoutNode {
                    id: NodeId(i as u32 + 1),
                    disks: vec![Disk {
                        id: DiskId(i as u32 + 1),
                        capacity: 1 << 40,
                    }],
                }],
            })
            .collect(),
    }
}

/// A fresh cluster's disk, as `exclave init` leaves it: every node's data directory
/// initialised, durable.
pub(super) fn fresh_disk() -> SimFiles {
    let fs = SimFiles::new();
    for i in 0..SITES.len() {
        init_disk_on(
            &fs,
            &data_dir(i),
            NodeId(i as u32 + 1),
            DiskId(i as u32 + 1),
        )
        .unwrap();
        fs.create_dir_all(&state_dir(i)).unwrap();
    }
    fs.create_dir_all(Path::new("/gateway")).unwrap();
    fs.settle();
    fs
}

/// The running cluster.
pub(super) struct Cluster {
    pub(super) gateway: Arc<Gateway>,
    /// The node clients of the gateway (a rotation dials the nodes with them too).
    pub(super) clients: BTreeMap<NodeId, Arc<NodeClient>>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    endpoints: Vec<Endpoint>,
    nodes: Vec<Arc<Node>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for ep in &self.endpoints {
            ep.close(0u32.into(), b"test over");
        }
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Cluster {
    /// Stops the cluster and waits until no task holds a node's store any more, as a process
    /// that exits closes its database: the next start on the same disk is the only one.
    pub(super) async fn stop(mut self) {
        let nodes = std::mem::take(&mut self.nodes);
        drop(self);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        for n in nodes {
            while Arc::strong_count(&n) > 1 {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "node {} is still held 20 s after its cluster stopped",
                    n.id.0
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    }
}

fn objects(
    clients: &BTreeMap<NodeId, Arc<NodeClient>>,
    master: MasterKey,
    previous: Vec<[u8; 32]>,
    manifest: ManifestKey,
) -> Result<Objects, String> {
    let layout = layout();
    let plan = plan(
        &layout,
        Rule {
            survive_foreign_losses: 1,
        },
    )
    .map_err(|e| e.to_string())?;
    let mut nodes = Nodes::new(clients.clone());
    nodes.hedge_after = Duration::from_millis(100);
    Objects::new(
        nodes,
        Layouts {
            layout,
            plan,
            history: Vec::new(),
        },
        ObjectKeys {
            master,
            previous,
            manifest,
        },
        Hlc::new(GatewayId(1)),
        ObjectSettings {
            block_size: BLOCK_SIZE,
            write_quorum: Some(WRITE_QUORUM),
            inline_limit: INLINE_LIMIT,
            write_timeout: Duration::from_secs(10),
            ..ObjectSettings::default()
        },
    )
    .map_err(|e| e.to_string())
}

impl Cluster {
    /// Starts five nodes and a gateway on `fs`. `rotated`: the gateway runs as after the key
    /// rotation (the new master key, the old one kept); `fresh`: the gateway starts on a new
    /// index of its own (rebuilt from the nodes' manifests, as a recovery does), not on the one
    /// it keeps (which is rebuilt too while blank: at the first start).
    pub(super) async fn start(
        fs: &SimFiles,
        secrets: &Secrets,
        rotated: bool,
        fresh: bool,
    ) -> Result<Self, String> {
        let (stop, stopped) = watch::channel(false);
        let settings = TransportSettings::default();
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut tasks = Vec::new();
        let mut endpoints = Vec::new();
        let mut addrs = Vec::new();
        let mut nodes = Vec::new();
        for (i, site) in SITES.iter().enumerate() {
            let disks = [(DiskId(i as u32 + 1), data_dir(i))];
            let store = Store::open_on(
                Arc::new(fs.clone()),
                &state_dir(i),
                &disks,
                crate::store::DEFAULT_DB_CACHE,
            )
            .map_err(|e| format!("node {} does not open: {e}", i + 1))?;
            let ep = endpoint(loopback, &secrets.nodes[i], &settings, true)
                .map_err(|e| e.to_string())?;
            addrs.push(ep.local_addr().map_err(|e| e.to_string())?);
            endpoints.push(ep.clone());
            let node = Arc::new(Node {
                id: NodeId(i as u32 + 1),
                site: (*site).to_owned(),
                store: Arc::new(store),
                metrics: crate::metrics::NodeMetrics::new(),
                cluster_record_file: None,
                workers: crate::worker::Workers::default(),
            });
            nodes.push(node.clone());
            tasks.push(tokio::spawn(crate::node::serve(node, ep, stopped.clone())));
        }
        let ep =
            endpoint(loopback, &secrets.gateway, &settings, false).map_err(|e| e.to_string())?;
        endpoints.push(ep.clone());
        let clients: BTreeMap<NodeId, Arc<NodeClient>> = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| {
                (
                    NodeId(i as u32 + 1),
                    Arc::new(NodeClient::new(ep.clone(), *a, SITES[i])),
                )
            })
            .collect();
        let (master, previous) = if rotated {
            (secrets.new.clone(), vec![[0x11; 32]])
        } else {
            (secrets.old.clone(), Vec::new())
        };
        let objects = objects(&clients, master, previous, secrets.manifest_key())?;
        let index = if fresh {
            let path = Path::new("/gateway/rebuilt.redb");
            if fs.exists(path) {
                fs.remove_file(path).map_err(|e| e.to_string())?;
            }
            fs.database(path, crate::meta::DEFAULT_INDEX_CACHE)
        } else {
            fs.database(Path::new(INDEX), crate::meta::DEFAULT_INDEX_CACHE)
        }
        .map_err(|e| format!("the gateway's index does not open: {e}"))?;
        let index = Index::open_on(index).map_err(|e| format!("the gateway's index: {e}"))?;
        let tuning = Tuning {
            repair_interval: Duration::from_secs(3600),
            repair_pace: RepairPace {
                idle: 1 << 30,
                busy: 1 << 30,
            },
            checkpoint_interval: Duration::from_secs(3600),
            body_idle: Duration::from_secs(10),
            collect: crate::gateway::CollectTuning::default(),
            lifecycle: (Duration::from_secs(3600), Duration::from_secs(86_400)),
        };
        let gateway = Gateway::start_on(Arc::new(objects), Arc::new(index), tuning, fresh)
            .await
            .map_err(|e| format!("the gateway does not start: {e:#}"))?;
        Ok(Self {
            gateway,
            clients,
            stop,
            tasks,
            endpoints,
            nodes,
        })
    }

    /// An object store over this cluster's nodes as `exclave keys rotate` builds one: the old
    /// master key, no other.
    pub(super) fn rotation_objects(&self, secrets: &Secrets) -> Objects {
        objects(
            &self.clients,
            secrets.old.clone(),
            Vec::new(),
            secrets.manifest_key(),
        )
        .unwrap()
    }
}
