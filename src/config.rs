//! Configuration files: raw TOML (serde, unknown keys rejected) turned into typed values.
//!
//! Parse, don't validate: everything past this module holds typed values that are already
//! known to be usable. Every option is documented in `docs/config.md`.

use std::path::Path;

use serde::Deserialize;

use crate::core::ids::{DiskId, NodeId, SiteId};
use crate::core::layout::{Disk, Layout, Node, Rule, Site};
use crate::core::stripe::Profile;

/// Errors reading a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// The file is not valid TOML for this kind of file (line, column and key in the message).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What toml said, with line and key.
        message: String,
    },
    /// A value is out of range.
    #[error("{path}: {key}: {message}")]
    Value {
        /// The file.
        path: String,
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// A layout file, as written by people.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLayout {
    /// Layout epoch.
    pub epoch: u64,
    /// Data shards per stripe.
    pub k: usize,
    /// Parity shards per stripe.
    pub m: usize,
    /// f: foreign sites that may be lost on top of home.
    #[serde(default = "default_survive")]
    pub survive_foreign_losses: usize,
    /// Sites.
    pub sites: Vec<RawSite>,
}

fn default_survive() -> usize {
    1
}

/// A site in a layout file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSite {
    /// Site id.
    pub id: u16,
    /// Name.
    pub name: String,
    /// Home site?
    #[serde(default)]
    pub home: bool,
    /// Nodes.
    pub nodes: Vec<RawNode>,
}

/// A node in a layout file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    /// Node id.
    pub id: u32,
    /// QUIC address of the node (`host:port`).
    pub addr: Option<String>,
    /// Disks.
    pub disks: Vec<RawDisk>,
}

/// A disk in a layout file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDisk {
    /// Disk id.
    pub id: u32,
    /// Capacity in bytes.
    pub capacity: u64,
}

/// Reads a layout file into a layout and the rule it must keep.
pub fn read_layout(path: &Path) -> Result<(Layout, Rule), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.display().to_string(),
        error,
    })?;
    parse_layout(&text, &path.display().to_string())
}

/// The QUIC address of every node in a layout file, by node id.
pub fn node_addresses(
    path: &Path,
) -> Result<std::collections::BTreeMap<u32, std::net::SocketAddr>, ConfigError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: origin.clone(),
        error,
    })?;
    let raw: RawLayout = toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: origin.clone(),
        message: e.to_string(),
    })?;
    let mut out = std::collections::BTreeMap::new();
    for site in &raw.sites {
        for n in &site.nodes {
            let Some(a) = &n.addr else { continue };
            let addr = a.parse().map_err(|_| ConfigError::Value {
                path: origin.clone(),
                key: format!("sites.nodes.addr (node {})", n.id),
                message: format!("{a:?} is not an ip:port address"),
            })?;
            out.insert(n.id, addr);
        }
    }
    Ok(out)
}

/// Parses layout TOML; `origin` names the file in errors.
pub fn parse_layout(text: &str, origin: &str) -> Result<(Layout, Rule), ConfigError> {
    let raw: RawLayout = toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: origin.to_string(),
        message: e.to_string(),
    })?;
    let profile = Profile::new(raw.k, raw.m).map_err(|e| ConfigError::Value {
        path: origin.to_string(),
        key: "k, m".into(),
        message: e.to_string(),
    })?;
    let layout = Layout {
        epoch: raw.epoch,
        profile,
        sites: raw
            .sites
            .into_iter()
            .map(|s| Site {
                id: SiteId(s.id),
                name: s.name,
                home: s.home,
                nodes: s
                    .nodes
                    .into_iter()
                    .map(|n| Node {
                        id: NodeId(n.id),
                        disks: n
                            .disks
                            .into_iter()
                            .map(|d| Disk {
                                id: DiskId(d.id),
                                capacity: d.capacity,
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect(),
    };
    Ok((
        layout,
        Rule {
            survive_foreign_losses: raw.survive_foreign_losses,
        },
    ))
}

/// An `exclaved` config file: the roles it names and their settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDaemon {
    /// The node role.
    pub node: Option<RawNodeRole>,
    /// The gateway role.
    pub gateway: Option<RawGatewayRole>,
    /// Certificates.
    pub tls: RawTls,
    /// QUIC transport.
    #[serde(default)]
    pub transport: RawTransport,
    /// Logging.
    #[serde(default)]
    pub log: RawLog,
}

/// `[node]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNodeRole {
    /// Node id (as in the layout).
    pub id: u32,
    /// Site name.
    pub site: String,
    /// QUIC listen address.
    pub listen: std::net::SocketAddr,
    /// Directory of the node's database.
    pub state_dir: std::path::PathBuf,
    /// Data directories.
    pub disks: Vec<RawDataDir>,
    /// Hours between full scrub passes (default 168, a week).
    pub scrub_interval_hours: Option<f64>,
    /// Scrub read rate, MiB/s (default 64).
    pub scrub_mib_per_sec: Option<u64>,
    /// The node's admin API (HTTP, bearer token): `GET /v1/status`, `POST /v1/scrub`.
    pub admin_listen: Option<std::net::SocketAddr>,
    /// The admin API's bearer token. A secret. Required with `admin_listen`.
    pub admin_token_file: Option<std::path::PathBuf>,
    /// The cluster record sealed under the master key (`exclave init` writes it), served to
    /// `exclave recover` at `GET /v1/cluster-record` on the admin port.
    pub cluster_record_file: Option<std::path::PathBuf>,
}

/// A data directory of a node.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDataDir {
    /// Disk id (as in the layout).
    pub id: u32,
    /// Directory (must carry its marker).
    pub path: std::path::PathBuf,
}

/// `[gateway]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGatewayRole {
    /// Gateway id (breaks version ties).
    pub id: u32,
    /// Site of the gateway.
    pub site: String,
    /// S3 listen address.
    pub s3_listen: std::net::SocketAddr,
    /// Admin API listen address.
    pub admin_listen: Option<std::net::SocketAddr>,
    /// Directory of the gateway's index and state.
    pub state_dir: std::path::PathBuf,
    /// The cluster layout file.
    pub layout_file: std::path::PathBuf,
    /// Generation of the master key.
    pub master_key_id: u32,
    /// The master key (64 hex digits). A secret.
    pub master_key_file: std::path::PathBuf,
    /// The manifest key (64 hex digits). A secret.
    pub manifest_key_file: std::path::PathBuf,
    /// S3 credentials (TOML: access_key_id, secret_access_key). A secret.
    pub s3_credentials_file: std::path::PathBuf,
    /// Admin API bearer token. A secret.
    pub admin_token_file: std::path::PathBuf,
    /// Objects smaller than this many bytes ride inside the manifest records (default
    /// 131072; 0 turns it off).
    pub inline_limit_bytes: Option<u64>,
    /// Shards durable at distinct sites before a write is acknowledged (k + 1 by default, at
    /// most k + m).
    pub write_quorum: Option<usize>,
    /// Seconds between passes over the repair backlog (default 10).
    pub repair_interval_secs: Option<u64>,
    /// Repair traffic (bytes read plus written) in MiB/s at most (default 64; 0: unlimited).
    pub repair_mib_per_sec: Option<u64>,
    /// The same while S3 requests are in flight (default 32; 0: unlimited).
    pub repair_busy_mib_per_sec: Option<u64>,
    /// Seconds between catalog checkpoints (default 300), made only when the index changed.
    pub checkpoint_interval_secs: Option<u64>,
    /// Earlier master keys (after `exclave keys rotate`), to open data keys not re-wrapped
    /// yet. Secrets.
    pub previous_master_key_files: Option<Vec<std::path::PathBuf>>,
    /// The region S3 clients sign for (default `us-east-1`). A request signed for another
    /// region is refused with `AuthorizationHeaderMalformed`, naming this one.
    pub s3_region: Option<String>,
    /// Seconds a request body may send nothing before the request fails with `RequestTimeout`
    /// and the connection closes (default 30, at least 1).
    pub s3_body_idle_timeout_secs: Option<u64>,
    /// PEM certificate chain the S3 endpoint serves over TLS (`exclave init` issues one from
    /// the cluster CA; an operator's own works too). Read at start and again on SIGHUP.
    pub s3_tls_cert_file: Option<std::path::PathBuf>,
    /// The private key of `s3_tls_cert_file` (PEM). A secret.
    pub s3_tls_key_file: Option<std::path::PathBuf>,
    /// Serve S3 as plain HTTP on an address other than loopback (default false): requests,
    /// signatures and registry data then cross the network in clear. Without TLS files the
    /// gateway refuses to start on such an address unless this is set.
    pub danger_plaintext_s3_off_loopback: Option<bool>,
    /// Earlier layouts (after `exclave layout apply`): keys last written under them are found
    /// where those layouts placed them.
    pub previous_layout_files: Option<Vec<std::path::PathBuf>>,
}

/// `[tls]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// Cluster CA certificate (PEM).
    pub ca_file: std::path::PathBuf,
    /// This process's certificate (PEM).
    pub cert_file: std::path::PathBuf,
    /// This process's private key (PEM). A secret.
    pub key_file: std::path::PathBuf,
}

/// `[transport]`: see `net::TransportSettings` for meanings and defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTransport {
    /// MTU from the first packet.
    pub initial_mtu: Option<u16>,
    /// Largest MTU path discovery may reach.
    pub mtu_upper_bound: Option<u16>,
    /// UDP socket buffers, bytes.
    pub udp_buffer_bytes: Option<usize>,
    /// Idle timeout, milliseconds.
    pub idle_timeout_ms: Option<u64>,
    /// Per-stream flow-control window, bytes.
    pub stream_window: Option<u32>,
    /// Per-connection flow-control window, bytes.
    pub connection_window: Option<u32>,
    /// Concurrent streams per peer.
    pub max_streams: Option<u32>,
}

/// `[log]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// `auto` (human on a terminal, JSON otherwise), `human` or `json`.
    pub format: Option<String>,
    /// Default level filter (`RUST_LOG` overrides).
    pub level: Option<String>,
}

/// A daemon config, parsed, with every relative path resolved against the file's directory.
#[derive(Debug)]
pub struct DaemonConfig {
    /// The file it came from.
    pub path: std::path::PathBuf,
    /// The raw values (paths resolved).
    pub raw: RawDaemon,
    /// Transport settings with defaults filled in.
    pub transport: crate::net::TransportSettings,
}

impl RawTransport {
    fn settings(&self, origin: &str) -> Result<crate::net::TransportSettings, ConfigError> {
        let d = crate::net::TransportSettings::default();
        let s = crate::net::TransportSettings {
            initial_mtu: self.initial_mtu.unwrap_or(d.initial_mtu),
            mtu_upper_bound: self.mtu_upper_bound.unwrap_or(d.mtu_upper_bound),
            udp_buffer_bytes: self.udp_buffer_bytes.unwrap_or(d.udp_buffer_bytes),
            idle_timeout: self
                .idle_timeout_ms
                .map_or(d.idle_timeout, std::time::Duration::from_millis),
            keep_alive: d.keep_alive,
            stream_window: self.stream_window.unwrap_or(d.stream_window),
            connection_window: self.connection_window.unwrap_or(d.connection_window),
            max_streams: self.max_streams.unwrap_or(d.max_streams),
        };
        let bad = |key: &str, message: &str| {
            Err(ConfigError::Value {
                path: origin.into(),
                key: format!("transport.{key}"),
                message: message.into(),
            })
        };
        if !(1200..=65_000).contains(&s.initial_mtu) {
            return bad("initial_mtu", "must be within 1200..=65000");
        }
        if s.mtu_upper_bound < s.initial_mtu {
            return bad("mtu_upper_bound", "must be at least initial_mtu");
        }
        if s.idle_timeout < std::time::Duration::from_secs(1) {
            return bad("idle_timeout_ms", "must be at least 1000");
        }
        if s.stream_window < 65_536 || s.connection_window < s.stream_window {
            return bad(
                "stream_window",
                "need 65536 <= stream_window <= connection_window",
            );
        }
        Ok(s)
    }
}

fn resolve(base: &Path, p: &mut std::path::PathBuf) {
    if p.is_relative() {
        *p = base.join(&*p);
    }
}

/// Reads an `exclaved` config file.
pub fn read_daemon(path: &Path) -> Result<DaemonConfig, ConfigError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: origin.clone(),
        error,
    })?;
    let mut raw: RawDaemon = toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: origin.clone(),
        message: e.to_string(),
    })?;
    if raw.node.is_none() && raw.gateway.is_none() {
        return Err(ConfigError::Value {
            path: origin,
            key: "node, gateway".into(),
            message: "the file names no role: add a [node] or a [gateway] section".into(),
        });
    }
    let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    resolve(&base, &mut raw.tls.ca_file);
    resolve(&base, &mut raw.tls.cert_file);
    resolve(&base, &mut raw.tls.key_file);
    if let Some(n) = &mut raw.node {
        resolve(&base, &mut n.state_dir);
        for d in &mut n.disks {
            resolve(&base, &mut d.path);
        }
        if let Some(t) = &mut n.cluster_record_file {
            resolve(&base, t);
        }
        if let Some(t) = &mut n.admin_token_file {
            resolve(&base, t);
        }
        if n.admin_listen.is_some() && n.admin_token_file.is_none() {
            return Err(ConfigError::Value {
                path: origin,
                key: "node.admin_token_file".into(),
                message: "admin_listen needs an admin_token_file".into(),
            });
        }
        if !crate::net::tls::valid_site_name(&n.site) {
            return Err(ConfigError::Value {
                path: origin,
                key: "node.site".into(),
                message: "lower-case letters, digits and '-' only".into(),
            });
        }
        if n.disks.is_empty() {
            return Err(ConfigError::Value {
                path: origin,
                key: "node.disks".into(),
                message: "a node needs at least one data directory".into(),
            });
        }
    }
    if let Some(g) = &mut raw.gateway {
        for p in [
            &mut g.state_dir,
            &mut g.layout_file,
            &mut g.master_key_file,
            &mut g.manifest_key_file,
            &mut g.s3_credentials_file,
            &mut g.admin_token_file,
        ] {
            resolve(&base, p);
        }
        for p in [&mut g.s3_tls_cert_file, &mut g.s3_tls_key_file]
            .into_iter()
            .flatten()
        {
            resolve(&base, p);
        }
        let bad = |key: &str, message: &str| ConfigError::Value {
            path: origin.clone(),
            key: format!("gateway.{key}"),
            message: message.into(),
        };
        if g.s3_tls_cert_file.is_some() != g.s3_tls_key_file.is_some() {
            return Err(bad(
                "s3_tls_cert_file",
                "s3_tls_cert_file and s3_tls_key_file go together",
            ));
        }
        if g.s3_tls_cert_file.is_none()
            && !g.s3_listen.ip().is_loopback()
            && g.danger_plaintext_s3_off_loopback != Some(true)
        {
            return Err(bad(
                "s3_listen",
                "S3 off loopback needs TLS: set s3_tls_cert_file and s3_tls_key_file (exclave \
                 init writes them), or danger_plaintext_s3_off_loopback = true to send \
                 requests and data in clear",
            ));
        }
        if g.s3_body_idle_timeout_secs == Some(0) {
            return Err(bad("s3_body_idle_timeout_secs", "must be at least 1"));
        }
        if let Some(r) = &g.s3_region
            && (r.is_empty()
                || !r
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
        {
            return Err(bad(
                "s3_region",
                "a region name: lower-case letters, digits and '-'",
            ));
        }
        for p in g
            .previous_master_key_files
            .iter_mut()
            .chain(g.previous_layout_files.iter_mut())
            .flatten()
        {
            resolve(&base, p);
        }
    }
    let transport = raw.transport.settings(&origin)?;
    Ok(DaemonConfig {
        path: path.to_path_buf(),
        raw,
        transport,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_refused_with_the_line() {
        let text = "epoch = 1\nk = 3\nm = 2\nsites = []\nflavour = 'x'\n";
        let err = parse_layout(text, "layout.toml").unwrap_err().to_string();
        assert!(
            err.contains("layout.toml") && err.contains("flavour") && err.contains("line 5"),
            "{err}"
        );
    }

    /// The keys `docs/config.md` documents under a `## \`[section]\`` heading.
    fn documented(section: &str) -> Vec<String> {
        let doc = include_str!("../docs/config.md");
        let heading = format!("## `[{section}]`");
        let start = doc.find(&heading).expect("section documented");
        let rest = &doc[start + heading.len()..];
        let end = rest.find("\n## ").unwrap_or(rest.len());
        let mut keys: Vec<String> = rest[..end]
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split_once('`').map(|(k, _)| k.to_string()))
            .collect();
        keys.sort();
        keys
    }

    /// The keys the config struct of `section` accepts, read from serde's own refusal of an
    /// unknown key ("expected one of ...").
    fn accepted(section: &str) -> Vec<String> {
        let text = format!("[{section}]\nnot_a_key_zz = 1\n");
        let err = toml::from_str::<RawDaemon>(&text).unwrap_err().to_string();
        let list = err
            .split("expected one of")
            .nth(1)
            .or_else(|| err.split("expected").nth(1))
            .unwrap_or_else(|| panic!("no field list in: {err}"));
        let mut keys: Vec<String> = list
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect();
        keys.sort();
        keys
    }

    #[test]
    fn every_config_key_is_documented_and_every_documented_key_exists() {
        for section in ["node", "gateway", "tls", "transport", "log"] {
            assert_eq!(
                accepted(section),
                documented(section),
                "[{section}]: the config struct (left) and docs/config.md (right) disagree"
            );
        }
    }

    #[test]
    fn a_bad_profile_names_the_keys() {
        let err = parse_layout("epoch = 1\nk = 0\nm = 2\nsites = []\n", "l.toml").unwrap_err();
        assert!(err.to_string().contains("k, m"), "{err}");
    }
}
