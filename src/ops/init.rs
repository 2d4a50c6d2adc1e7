//! Cluster set-up: the CA, certificates, keys, credentials, data directories and config files
//! that `exclave init` (and `exclaved dev`) write.
//!
//! Layout of the directory written:
//!
//! ```text
//! DIR/ca.pem  DIR/ca.key (0600: keep offline)  DIR/layout.toml
//! DIR/<site>/node.toml  node.pem  node.key (0600)  state/  data/disk-<id>/EXCLAVE-DISK
//! DIR/gateway/gateway.toml  gateway.pem  gateway.key  master.key  manifest.key
//!             s3-credentials.toml  admin.token   (secrets 0600)
//!             s3-tls.pem  s3-tls.key (0600)   the S3 endpoint's certificate (unless plain HTTP)
//! DIR/credentials   an AWS shared-credentials file for S3 clients (0600)
//! ```

use std::fmt::Write as _;
use std::fs;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::core::ids::{DiskId, NodeId, SiteId, hex};
use crate::core::keys::MasterKey;
use crate::core::layout::{self, Disk, Layout, Node, Rule, Site};
use crate::core::record::{ClusterRecord, FILE_NAME};
use crate::core::stripe::Profile;
use crate::net::pki::{Ca, PkiError};
use crate::net::tls::{Role, valid_site_name};
use crate::store::{StoreError, init_disk};
use crate::sys::{FileError, random};

/// How the gateway serves S3.
#[derive(Clone, Debug)]
pub enum S3Transport {
    /// Plain HTTP: only on a loopback address.
    PlainHttp,
    /// TLS with a certificate the cluster CA issues for `localhost`, the loopback addresses,
    /// the bind address and these extra names (DNS names or IP addresses).
    Tls {
        /// Names clients reach the gateway by.
        names: Vec<String>,
    },
    /// TLS with the operator's own certificate chain and key (PEM), copied into the gateway's
    /// directory.
    OwnTls {
        /// Certificate chain.
        cert: PathBuf,
        /// Private key.
        key: PathBuf,
    },
}

/// What to set up.
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// Directory to write (must not exist or be empty).
    pub dir: PathBuf,
    /// Site names; the first is home.
    pub sites: Vec<String>,
    /// Data shards per stripe.
    pub k: usize,
    /// Parity shards per stripe.
    pub m: usize,
    /// f: foreign sites that may be lost on top of home.
    pub survive_foreign_losses: usize,
    /// Address nodes and the gateway bind to.
    pub bind: IpAddr,
    /// Node i listens on `base_port + i`; the gateway's S3 on `s3_port`.
    pub base_port: u16,
    /// S3 port of the gateway.
    pub s3_port: u16,
    /// Data directories per node.
    pub disks_per_node: u32,
    /// Capacity recorded per disk (placement weight), bytes.
    pub disk_capacity: u64,
    /// Explicit node ports, one per site (overrides `base_port` when not empty).
    pub node_ports: Vec<u16>,
    /// Admin API port of the gateway (0: `s3_port + 1`).
    pub admin_port: u16,
    /// How S3 is served.
    pub s3: S3Transport,
}

/// Errors of set-up.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// Bad options.
    #[error("{0}")]
    Options(String),
    /// The layout breaks the jurisdiction rule.
    #[error(transparent)]
    Layout(#[from] layout::LayoutError),
    /// Certificates.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// A new file could not be written.
    #[error(transparent)]
    File(FileError),
    /// Files.
    #[error("{path}: {error}")]
    Io {
        /// Path.
        path: PathBuf,
        /// Error.
        error: std::io::Error,
    },
    /// Data directories.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What was written.
#[derive(Debug)]
pub struct Initialized {
    /// Node config files, one per site, in site order.
    pub node_configs: Vec<PathBuf>,
    /// The gateway config file.
    pub gateway_config: PathBuf,
    /// The gateway's S3 credentials file (secrets sealed under the master key).
    pub s3_credentials: PathBuf,
    /// An AWS shared-credentials file with a `[default]` profile for clients.
    pub client_credentials: PathBuf,
    /// The S3 endpoint URL clients use (`https://...` unless plain HTTP).
    pub s3_endpoint: String,
    /// The CA bundle S3 clients pass (`--ca-bundle`, `AWS_CA_BUNDLE`) when the cluster CA
    /// issued the endpoint's certificate.
    pub s3_ca_bundle: Option<PathBuf>,
    /// What the layout check reports.
    pub report: layout::CheckReport,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> InitError + '_ {
    move |error| InitError::Io {
        path: path.to_path_buf(),
        error,
    }
}

fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    random(&mut b);
    hex(&b)
}

/// Writes a new file readable by the owner only.
fn write_secret(path: &Path, contents: &[u8]) -> Result<(), InitError> {
    crate::sys::write_secret(path, contents).map_err(InitError::File)
}

fn write_file(path: &Path, contents: &str) -> Result<(), InitError> {
    fs::write(path, contents).map_err(io(path))
}

/// The layout `init` builds: one node per site, `disks_per_node` disks each.
fn build_layout(o: &InitOptions) -> Result<Layout, InitError> {
    let profile = Profile::new(o.k, o.m).map_err(|e| InitError::Options(e.to_string()))?;
    let mut disk = 0;
    let sites = o
        .sites
        .iter()
        .enumerate()
        .map(|(i, name)| Site {
            id: SiteId(i as u16),
            name: name.clone(),
            home: i == 0,
            nodes: vec![Node {
                id: NodeId(i as u32 + 1),
                disks: (0..o.disks_per_node)
                    .map(|_| {
                        disk += 1;
                        Disk {
                            id: DiskId(disk),
                            capacity: o.disk_capacity,
                        }
                    })
                    .collect(),
            }],
        })
        .collect();
    Ok(Layout {
        epoch: 1,
        profile,
        sites,
    })
}

/// Writes the directory of one node: its certificate (issued by `ca`), admin token, initialised
/// data directories and `node.toml` (which names the CA certificate as `ca_file`, relative to
/// `dir`). Returns the config's path.
pub fn write_node_dir(
    dir: &Path,
    ca: &Ca,
    site: &str,
    node: &Node,
    listen: SocketAddr,
    ca_file: &str,
) -> Result<PathBuf, InitError> {
    fs::create_dir_all(dir.join("state")).map_err(io(dir))?;
    let issued = ca.issue(Role::Node, site, node.id.0)?;
    write_file(&dir.join("node.pem"), &issued.cert_pem)?;
    write_secret(&dir.join("node.key"), issued.key_pem.as_bytes())?;
    write_secret(
        &dir.join("admin.token"),
        format!("{}\n", random_hex(32)).as_bytes(),
    )?;
    let mut disks = Vec::new();
    for d in &node.disks {
        let path = dir.join("data").join(format!("disk-{}", d.id.0));
        init_disk(&path, node.id, d.id)?;
        disks.push(format!(
            "{{ id = {}, path = \"data/disk-{}\" }}",
            d.id.0, d.id.0
        ));
    }
    let cfg = format!(
        "# Node {id} at site {site}. Start: exclaved --config {path}\n\
         [node]\nid = {id}\nsite = \"{site}\"\nlisten = \"{listen}\"\nstate_dir = \"state\"\n\
         disks = [{disks}]\n\
         # The node's admin API (TCP, same port number as the QUIC listener).\n\
         admin_listen = \"{listen}\"\nadmin_token_file = \"admin.token\"\n\
         # The cluster record, sealed under the master key, for `exclave recover`.\n\
         cluster_record_file = \"{record}\"\n\n[tls]\nca_file = \"{ca_file}\"\ncert_file = \"node.pem\"\n\
         key_file = \"node.key\"\n",
        id = node.id.0,
        path = dir.join("node.toml").display(),
        disks = disks.join(", "),
        record = FILE_NAME,
    );
    let path = dir.join("node.toml");
    write_file(&path, &cfg)?;
    Ok(path)
}

/// Sets up a cluster in `o.dir`.
pub fn init(o: &InitOptions) -> Result<Initialized, InitError> {
    if o.sites.is_empty() {
        return Err(InitError::Options("give at least one site".into()));
    }
    for s in &o.sites {
        if !valid_site_name(s) || s == "gateway" {
            return Err(InitError::Options(format!(
                "site name {s:?}: use lower-case letters, digits and '-' (and not \"gateway\")"
            )));
        }
    }
    let mut seen = o.sites.clone();
    seen.sort();
    seen.dedup();
    if seen.len() != o.sites.len() {
        return Err(InitError::Options("site names must differ".into()));
    }
    if matches!(o.s3, S3Transport::PlainHttp) && !o.bind.is_loopback() {
        return Err(InitError::Options(format!(
            "plain-HTTP S3 on {} would send requests and data in clear: serve TLS (the \
             default), or bind a loopback address",
            o.bind
        )));
    }
    let layout = build_layout(o)?;
    let rule = Rule {
        survive_foreign_losses: o.survive_foreign_losses,
    };
    let report = layout::check(&layout, rule)?;

    if o.dir.exists() && fs::read_dir(&o.dir).map_err(io(&o.dir))?.next().is_some() {
        return Err(InitError::Options(format!(
            "{} exists and is not empty: refusing to overwrite a cluster",
            o.dir.display()
        )));
    }
    fs::create_dir_all(&o.dir).map_err(io(&o.dir))?;
    let ca = Ca::new(&o.sites[0])?;
    write_file(&o.dir.join("ca.pem"), &ca.issued().cert_pem)?;
    write_secret(&o.dir.join("ca.key"), ca.issued().key_pem.as_bytes())?;

    // The layout file, with node addresses.
    let mut lt = format!(
        "# Cluster layout written by `exclave init`. Check it with `exclave layout check --file {}`.\n\
         epoch = {}\nk = {}\nm = {}\nsurvive_foreign_losses = {}\n",
        o.dir.join("layout.toml").display(),
        layout.epoch,
        o.k,
        o.m,
        o.survive_foreign_losses
    );
    if !o.node_ports.is_empty() && o.node_ports.len() != o.sites.len() {
        return Err(InitError::Options("give one node port per site".into()));
    }
    let addr = |i: usize| {
        let port = o
            .node_ports
            .get(i)
            .copied()
            .unwrap_or(o.base_port.wrapping_add(i as u16));
        SocketAddr::new(o.bind, port)
    };
    for (i, site) in layout.sites.iter().enumerate() {
        let _ = write!(
            lt,
            "\n[[sites]]\nid = {}\nname = \"{}\"\nhome = {}\n",
            site.id.0, site.name, site.home
        );
        for n in &site.nodes {
            let disks: Vec<String> = n
                .disks
                .iter()
                .map(|d| format!("{{ id = {}, capacity = {} }}", d.id.0, d.capacity))
                .collect();
            let _ = write!(
                lt,
                "[[sites.nodes]]\nid = {}\naddr = \"{}\"\ndisks = [{}]\n",
                n.id.0,
                addr(i),
                disks.join(", ")
            );
        }
    }
    write_file(&o.dir.join("layout.toml"), &lt)?;

    let mut node_configs = Vec::new();
    for (i, site) in layout.sites.iter().enumerate() {
        let dir = o.dir.join("sites").join(&site.name);
        node_configs.push(write_node_dir(
            &dir,
            &ca,
            &site.name,
            &site.nodes[0],
            addr(i),
            "../../ca.pem",
        )?);
    }

    let gw = o.dir.join("gateway");
    fs::create_dir_all(gw.join("state")).map_err(io(&gw))?;
    let issued = ca.issue(Role::Gateway, &o.sites[0], 1)?;
    write_file(&gw.join("gateway.pem"), &issued.cert_pem)?;
    write_secret(&gw.join("gateway.key"), issued.key_pem.as_bytes())?;
    let mut master = [0u8; 32];
    random(&mut master);
    write_secret(
        &gw.join("master.key"),
        format!("{}\n", hex(&master)).as_bytes(),
    )?;
    let master = MasterKey::from_bytes(1, master);
    let manifest_key = random_hex(32);
    write_secret(
        &gw.join("manifest.key"),
        format!("{manifest_key}\n").as_bytes(),
    )?;
    let (access, secret) = crate::gateway::new_key_pair("EXC");
    let creds = gw.join("s3-credentials.toml");
    let mut nonce = [0u8; 12];
    random(&mut nonce);
    let sealed = master.seal_secret(&access, secret.as_bytes(), nonce);
    let creds_text = format!(
        "# S3 access keys; each secret is sealed under the master key (generation {}).\n\
         [[keys]]\naccess_key_id = \"{access}\"\nsecret_sealed = \"{}\"\n",
        master.id(),
        hex(&sealed)
    );
    write_secret(&creds, creds_text.as_bytes())?;
    // Every site keeps what a recovery needs besides the master key, sealed under it.
    let record = ClusterRecord {
        format: 1,
        written_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        home: o.sites[0].clone(),
        layout_toml: lt.clone(),
        previous_layouts_toml: Vec::new(),
        manifest_key,
        ca_cert_pem: ca.issued().cert_pem.clone(),
        ca_key_pem: ca.issued().key_pem.clone(),
        s3_credentials_toml: creds_text,
    };
    for site in &layout.sites {
        let mut nonce = [0u8; 12];
        random(&mut nonce);
        let path = o.dir.join("sites").join(&site.name).join(FILE_NAME);
        fs::write(&path, record.seal(&master, nonce)).map_err(io(&path))?;
    }
    let client_credentials = o.dir.join("credentials");
    write_secret(
        &client_credentials,
        format!("[default]\naws_access_key_id = {access}\naws_secret_access_key = {secret}\n")
            .as_bytes(),
    )?;
    write_secret(
        &gw.join("admin.token"),
        format!("{}\n", random_hex(32)).as_bytes(),
    )?;
    let s3_addr = SocketAddr::new(o.bind, o.s3_port);
    let (tls_lines, s3_ca_bundle) = s3_tls_files(o, &ca, &gw)?;
    let s3_endpoint = format!(
        "{}://{s3_addr}",
        if tls_lines.is_empty() {
            "http"
        } else {
            "https"
        }
    );
    let gateway_config = gw.join("gateway.toml");
    let cfg = format!(
        "# The gateway. Start: exclaved --config {path}\n\
         [gateway]\nid = 1\nsite = \"{site}\"\ns3_listen = \"{s3}\"\nstate_dir = \"state\"\n\
         layout_file = \"../layout.toml\"\nmaster_key_id = 1\nmaster_key_file = \"master.key\"\n\
         manifest_key_file = \"manifest.key\"\ns3_credentials_file = \"s3-credentials.toml\"\n\
         admin_token_file = \"admin.token\"\nadmin_listen = \"{admin}\"\n{tls_lines}\n[tls]\nca_file = \"../ca.pem\"\n\
         cert_file = \"gateway.pem\"\nkey_file = \"gateway.key\"\n",
        path = gateway_config.display(),
        site = o.sites[0],
        s3 = s3_addr,
        admin = SocketAddr::new(
            o.bind,
            if o.admin_port == 0 {
                o.s3_port.wrapping_add(1)
            } else {
                o.admin_port
            }
        ),
    );
    write_file(&gateway_config, &cfg)?;
    Ok(Initialized {
        node_configs,
        gateway_config,
        s3_credentials: creds,
        client_credentials,
        s3_endpoint,
        s3_ca_bundle,
        report,
    })
}

/// The S3 endpoint's certificate and key in `gw`, as `o.s3` asks: the `gateway.toml` lines
/// that name them (empty for plain HTTP) and the CA bundle clients need, if ours.
fn s3_tls_files(
    o: &InitOptions,
    ca: &Ca,
    gw: &Path,
) -> Result<(String, Option<PathBuf>), InitError> {
    let (cert, key, bundle) = match &o.s3 {
        S3Transport::PlainHttp => return Ok((String::new(), None)),
        S3Transport::Tls { names } => {
            let mut all: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
            if !o.bind.is_unspecified() {
                all.push(o.bind.to_string());
            }
            for n in names {
                if !all.contains(n) {
                    all.push(n.clone());
                }
            }
            let issued = ca.issue_s3_server(&all)?;
            (
                issued.cert_pem.into_bytes(),
                issued.key_pem.into_bytes(),
                Some(o.dir.join("ca.pem")),
            )
        }
        S3Transport::OwnTls { cert, key } => (
            fs::read(cert).map_err(io(cert))?,
            fs::read(key).map_err(io(key))?,
            None,
        ),
    };
    fs::write(gw.join("s3-tls.pem"), cert).map_err(io(gw))?;
    write_secret(&gw.join("s3-tls.key"), &key)?;
    Ok((
        "# S3 over TLS; the certificate is read again on SIGHUP.\n\
         s3_tls_cert_file = \"s3-tls.pem\"\ns3_tls_key_file = \"s3-tls.key\"\n"
            .into(),
        bundle,
    ))
}
