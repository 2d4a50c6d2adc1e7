//! Configuration files: raw TOML (serde, unknown keys rejected) turned into typed values.
//!
//! Parse, don't validate: everything past this module holds typed values that are already
//! known to be usable. Every option is documented in `docs/config.md`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::coordinator::object::{DEFAULT_INLINE_LIMIT, DEFAULT_WRITE_TIMEOUT};

mod layout;

use crate::net::TransportSettings;
use crate::net::tls::valid_site_name;
pub use layout::{node_addresses, parse_layout, read_layout};

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

/// An `exclaved` config file: the roles it names and their settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    /// The node role.
    node: Option<RawNodeRole>,
    /// The gateway role.
    gateway: Option<RawGatewayRole>,
    /// Certificates.
    tls: RawTls,
    /// QUIC transport.
    #[serde(default)]
    transport: RawTransport,
    /// Logging.
    #[serde(default)]
    log: RawLog,
}

/// `[node]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNodeRole {
    /// Node id (as in the layout).
    id: u32,
    /// Site name.
    site: String,
    /// QUIC listen address.
    listen: SocketAddr,
    /// Directory of the node's database.
    state_dir: PathBuf,
    /// Data directories.
    disks: Vec<RawDataDir>,
    /// Hours between full scrub passes (default 168, a week).
    scrub_interval_hours: Option<f64>,
    /// Scrub read rate, MiB/s (default 64).
    scrub_mib_per_sec: Option<u64>,
    /// The node database's page cache, MiB (default 32): the node's memory does not grow with
    /// the number of shards it holds beyond it.
    db_cache_mib: Option<u64>,
    /// The node's admin API (HTTP, bearer token): `GET /v1/status`, `POST /v1/scrub`.
    admin_listen: Option<SocketAddr>,
    /// The admin API's bearer token. A secret. Required with `admin_listen`.
    admin_token_file: Option<PathBuf>,
    /// The cluster record sealed under the master key (`exclave init` writes it), served to
    /// `exclave recover` at `GET /v1/cluster-record` on the admin port.
    cluster_record_file: Option<PathBuf>,
}

/// A data directory of a node.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDataDir {
    /// Disk id (as in the layout).
    id: u32,
    /// Directory (must carry its marker).
    path: PathBuf,
}

/// `[gateway]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGatewayRole {
    /// Gateway id (breaks version ties).
    id: u32,
    /// Site of the gateway.
    site: String,
    /// S3 listen address.
    s3_listen: SocketAddr,
    /// Admin API listen address.
    admin_listen: Option<SocketAddr>,
    /// Directory of the gateway's index and state.
    state_dir: PathBuf,
    /// The cluster layout file.
    layout_file: PathBuf,
    /// Generation of the master key.
    master_key_id: u32,
    /// The master key (64 hex digits). A secret.
    master_key_file: PathBuf,
    /// The manifest key (64 hex digits). A secret.
    manifest_key_file: PathBuf,
    /// S3 credentials (TOML: access_key_id, secret_access_key). A secret.
    s3_credentials_file: PathBuf,
    /// Admin API bearer token. A secret.
    admin_token_file: PathBuf,
    /// Objects smaller than this many bytes ride inside the manifest records (default
    /// 131072; 0 turns it off).
    inline_limit_bytes: Option<u64>,
    /// The index database's page cache, MiB (default 64): the gateway's memory does not grow
    /// with the number of objects beyond it.
    index_cache_mib: Option<u64>,
    /// Free read buffers (fetched blocks, opened stripes) kept for the next reads, MiB
    /// (default 32; 0 keeps none).
    read_buffers_mib: Option<u64>,
    /// Shards durable at distinct sites before a write is acknowledged (k + 1 by default, at
    /// most k + m).
    write_quorum: Option<usize>,
    /// Seconds between passes over the repair backlog (default 10).
    repair_interval_secs: Option<u64>,
    /// Repair traffic (bytes read plus written) in MiB/s at most (default 64; 0: unlimited).
    repair_mib_per_sec: Option<u64>,
    /// The same while S3 requests are in flight (default 32; 0: unlimited).
    repair_busy_mib_per_sec: Option<u64>,
    /// Seconds between catalog checkpoints (default 300), made only when the index changed.
    checkpoint_interval_secs: Option<u64>,
    /// Seconds between garbage collection passes (default 3600).
    gc_interval_secs: Option<u64>,
    /// Seconds a deleted or replaced version stays readable before its bytes may be
    /// collected: reads in flight finish (default 900).
    gc_grace_secs: Option<u64>,
    /// Seconds after which shards no manifest names are collected as orphans (default 86400;
    /// a write in progress sends its shards before its manifest).
    gc_orphan_age_secs: Option<u64>,
    /// Seconds between lifecycle passes (default 3600).
    lifecycle_interval_secs: Option<u64>,
    /// Seconds in a lifecycle "day" (default 86400; shorter only to test rules, as Ceph's
    /// `rgw_lc_debug_interval`).
    lifecycle_day_secs: Option<u64>,
    /// Seconds a write's shard uploads and manifest records may take at one node before that
    /// node counts as missed (default 60, at least 1).
    write_timeout_secs: Option<u64>,
    /// Earlier master keys (after `exclave keys rotate`), to open data keys not re-wrapped
    /// yet. Secrets.
    previous_master_key_files: Option<Vec<PathBuf>>,
    /// The region S3 clients sign for (default `us-east-1`). A request signed for another
    /// region is refused with `AuthorizationHeaderMalformed`, naming this one.
    s3_region: Option<String>,
    /// Seconds a request body may send nothing before the request fails with `RequestTimeout`
    /// and the connection closes (default 30, at least 1).
    s3_body_idle_timeout_secs: Option<u64>,
    /// PEM certificate chain the S3 endpoint serves over TLS (`exclave init` issues one from
    /// the cluster CA; an operator's own works too). Read at start and again on SIGHUP.
    s3_tls_cert_file: Option<PathBuf>,
    /// The private key of `s3_tls_cert_file` (PEM). A secret.
    s3_tls_key_file: Option<PathBuf>,
    /// Serve S3 as plain HTTP on an address other than loopback (default false): requests,
    /// signatures and registry data then cross the network in clear. Without TLS files the
    /// gateway refuses to start on such an address unless this is set.
    danger_plaintext_s3_off_loopback: Option<bool>,
    /// Earlier layouts (after `exclave layout apply`): keys last written under them are found
    /// where those layouts placed them.
    previous_layout_files: Option<Vec<PathBuf>>,
}

/// `[tls]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    /// Cluster CA certificate (PEM).
    ca_file: PathBuf,
    /// This process's certificate (PEM).
    cert_file: PathBuf,
    /// This process's private key (PEM). A secret.
    key_file: PathBuf,
}

/// `[transport]`: see `net::TransportSettings` for meanings and defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTransport {
    /// MTU from the first packet.
    initial_mtu: Option<u16>,
    /// Largest MTU path discovery may reach.
    mtu_upper_bound: Option<u16>,
    /// UDP socket buffers, bytes.
    udp_buffer_bytes: Option<usize>,
    /// Idle timeout, milliseconds.
    idle_timeout_ms: Option<u64>,
    /// Per-stream flow-control window, bytes.
    stream_window: Option<u32>,
    /// Per-connection flow-control window, bytes.
    connection_window: Option<u32>,
    /// Concurrent streams per peer.
    max_streams: Option<u32>,
}

/// `[log]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    /// `auto` (human on a terminal, JSON otherwise), `human` or `json`.
    format: Option<String>,
    /// Default level filter (`RUST_LOG` overrides).
    level: Option<String>,
}

/// A daemon config, parsed once into typed values (defaults filled in, every relative path
/// resolved against the file's directory). Each part gets its settings from here at
/// construction; nothing past this module reads the TOML.
#[derive(Debug)]
pub struct DaemonConfig {
    /// The file it came from.
    pub path: PathBuf,
    /// The node role, if the file names one.
    pub node: Option<NodeSettings>,
    /// The gateway role, if the file names one.
    pub gateway: Option<GatewaySettings>,
    /// This process's certificates.
    pub tls: TlsFiles,
    /// Transport settings.
    pub transport: TransportSettings,
    /// Logging.
    pub log: LogSettings,
}

/// `[tls]`: the files of this process's identity.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// Cluster CA certificate (PEM).
    pub ca_file: PathBuf,
    /// This process's certificate (PEM).
    pub cert_file: PathBuf,
    /// This process's private key (PEM). A secret.
    pub key_file: PathBuf,
}

/// `[log]`.
#[derive(Clone, Debug)]
pub struct LogSettings {
    /// `auto`, `human` or `json` (none: `auto`).
    pub format: Option<String>,
    /// Default level filter (`RUST_LOG` overrides).
    pub level: String,
}

/// A data directory of a node.
#[derive(Clone, Debug)]
pub struct DataDir {
    /// Disk id (as in the layout).
    pub id: u32,
    /// Directory (must carry its marker).
    pub path: PathBuf,
}

/// `[node]`, typed.
#[derive(Clone, Debug)]
pub struct NodeSettings {
    /// Node id (as in the layout).
    pub id: u32,
    /// Site name (checked: a DNS label).
    pub site: String,
    /// QUIC listen address.
    pub listen: SocketAddr,
    /// Directory of the node's database.
    pub state_dir: PathBuf,
    /// Data directories (at least one).
    pub disks: Vec<DataDir>,
    /// Time between full scrub passes.
    pub scrub_interval: Duration,
    /// Scrub read rate, bytes/s (at least 1 MiB/s).
    pub scrub_bytes_per_sec: u64,
    /// The node database's page cache, bytes.
    pub db_cache_bytes: usize,
    /// The node's admin API: address and the file of its bearer token.
    pub admin: Option<(SocketAddr, PathBuf)>,
    /// The sealed cluster record served to `exclave recover`.
    pub cluster_record_file: Option<PathBuf>,
}

/// `[gateway]`, typed.
#[derive(Clone, Debug)]
pub struct GatewaySettings {
    /// Gateway id (breaks version ties).
    pub id: u32,
    /// Site of the gateway.
    pub site: String,
    /// S3 listen address.
    pub s3_listen: SocketAddr,
    /// Admin API listen address.
    pub admin_listen: Option<SocketAddr>,
    /// Directory of the gateway's index and state.
    pub state_dir: PathBuf,
    /// The cluster layout file.
    pub layout_file: PathBuf,
    /// Generation of the master key.
    pub master_key_id: u32,
    /// The master key. A secret.
    pub master_key_file: PathBuf,
    /// The manifest key. A secret.
    pub manifest_key_file: PathBuf,
    /// S3 credentials. A secret.
    pub s3_credentials_file: PathBuf,
    /// Admin API bearer token. A secret.
    pub admin_token_file: PathBuf,
    /// Objects smaller than this many bytes ride inside the manifest records (0: none).
    pub inline_limit_bytes: u64,
    /// The index database's page cache, bytes.
    pub index_cache_bytes: usize,
    /// Free read buffers kept, bytes.
    pub read_buffer_bytes: usize,
    /// Shards durable at distinct sites before a write is acknowledged (none: k + 1).
    pub write_quorum: Option<usize>,
    /// How long a write's uploads and manifest records may take at one node.
    pub write_timeout: Duration,
    /// Time between passes over the repair backlog.
    pub repair_interval: Duration,
    /// Repair traffic in bytes/s while no S3 request is in flight (0: unlimited).
    pub repair_bytes_per_sec: u64,
    /// The same while S3 requests are in flight.
    pub repair_busy_bytes_per_sec: u64,
    /// Time between catalog checkpoints.
    pub checkpoint_interval: Duration,
    /// Time between garbage collection passes.
    pub gc_interval: Duration,
    /// Time a deleted or replaced version stays readable.
    pub gc_grace: Duration,
    /// Age after which shards no manifest names are orphans.
    pub gc_orphan_age: Duration,
    /// Time between lifecycle passes.
    pub lifecycle_interval: Duration,
    /// The length of a lifecycle day.
    pub lifecycle_day: Duration,
    /// Earlier master keys. Secrets.
    pub previous_master_key_files: Vec<PathBuf>,
    /// The region S3 clients sign for.
    pub s3_region: String,
    /// How long a request body may send nothing.
    pub s3_body_idle_timeout: Duration,
    /// The S3 endpoint's certificate chain and key (PEM), when it serves TLS.
    pub s3_tls: Option<(PathBuf, PathBuf)>,
    /// Earlier layouts.
    pub previous_layout_files: Vec<PathBuf>,
}

/// The region S3 clients sign for unless `s3_region` says otherwise.
pub const DEFAULT_REGION: &str = "us-east-1";
/// Seconds a request body may send nothing, unless `s3_body_idle_timeout_secs` says otherwise.
pub const DEFAULT_BODY_IDLE_SECS: u64 = 30;

impl RawTransport {
    fn settings(&self, origin: &str) -> Result<TransportSettings, ConfigError> {
        let d = TransportSettings::default();
        let s = TransportSettings {
            initial_mtu: self.initial_mtu.unwrap_or(d.initial_mtu),
            mtu_upper_bound: self.mtu_upper_bound.unwrap_or(d.mtu_upper_bound),
            udp_buffer_bytes: self.udp_buffer_bytes.unwrap_or(d.udp_buffer_bytes),
            idle_timeout: self
                .idle_timeout_ms
                .map_or(d.idle_timeout, Duration::from_millis),
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
        let most = crate::net::endpoint::GSO_SAFE_MTU;
        if !(1200..=most).contains(&s.initial_mtu) {
            return bad(
                "initial_mtu",
                &format!(
                    "must be within 1200..={most} (larger packets break segmentation offload)"
                ),
            );
        }
        if !(s.initial_mtu..=most).contains(&s.mtu_upper_bound) {
            return bad(
                "mtu_upper_bound",
                &format!(
                    "must be within initial_mtu..={most} (quinn sends 10 packets in one UDP \
                     send of at most 65,507 bytes)"
                ),
            );
        }
        if s.idle_timeout < Duration::from_secs(1) {
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

fn resolve(base: &Path, p: &mut PathBuf) {
    if p.is_relative() {
        *p = base.join(&*p);
    }
}

/// Reads an `exclaved` config file.
pub fn read_daemon(path: &Path) -> Result<DaemonConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.display().to_string(),
        error,
    })?;
    parse_daemon(&text, path)
}

/// Parses the text of an `exclaved` config file that lives at `path` (relative paths in it are
/// resolved against its directory).
pub fn parse_daemon(text: &str, path: &Path) -> Result<DaemonConfig, ConfigError> {
    let origin = path.display().to_string();
    let raw: RawDaemon = toml::from_str(text).map_err(|e| ConfigError::Parse {
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
    let mut tls = TlsFiles {
        ca_file: raw.tls.ca_file,
        cert_file: raw.tls.cert_file,
        key_file: raw.tls.key_file,
    };
    resolve(&base, &mut tls.ca_file);
    resolve(&base, &mut tls.cert_file);
    resolve(&base, &mut tls.key_file);
    let node = raw
        .node
        .map(|n| node_settings(n, &base, &origin))
        .transpose()?;
    let gateway = raw
        .gateway
        .map(|g| gateway_settings(g, &base, &origin))
        .transpose()?;
    let transport = raw.transport.settings(&origin)?;
    Ok(DaemonConfig {
        path: path.to_path_buf(),
        node,
        gateway,
        tls,
        transport,
        log: LogSettings {
            format: raw.log.format,
            level: raw.log.level.unwrap_or_else(|| "info".to_owned()),
        },
    })
}

fn node_settings(n: RawNodeRole, base: &Path, origin: &str) -> Result<NodeSettings, ConfigError> {
    let bad = |key: &str, message: &str| ConfigError::Value {
        path: origin.to_owned(),
        key: format!("node.{key}"),
        message: message.into(),
    };
    if !valid_site_name(&n.site) {
        return Err(bad("site", "lower-case letters, digits and '-' only"));
    }
    if n.disks.is_empty() {
        return Err(bad("disks", "a node needs at least one data directory"));
    }
    let admin = match (n.admin_listen, n.admin_token_file) {
        (Some(addr), Some(mut token)) => {
            resolve(base, &mut token);
            Some((addr, token))
        }
        (Some(_), None) => {
            return Err(bad(
                "admin_token_file",
                "admin_listen needs an admin_token_file",
            ));
        }
        (None, _) => None,
    };
    let scrub_interval = match n.scrub_interval_hours {
        None => Duration::from_secs(168 * 3600),
        Some(h) => Duration::try_from_secs_f64((h * 3600.0).max(1.0))
            .map_err(|_| bad("scrub_interval_hours", "a number of hours, more than 0"))?,
    };
    let mut state_dir = n.state_dir;
    resolve(base, &mut state_dir);
    let mut cluster_record_file = n.cluster_record_file;
    if let Some(t) = &mut cluster_record_file {
        resolve(base, t);
    }
    Ok(NodeSettings {
        id: n.id,
        site: n.site,
        listen: n.listen,
        state_dir,
        disks: n
            .disks
            .into_iter()
            .map(|d| {
                let mut path = d.path;
                resolve(base, &mut path);
                DataDir { id: d.id, path }
            })
            .collect(),
        scrub_interval,
        scrub_bytes_per_sec: n.scrub_mib_per_sec.unwrap_or(64).max(1) << 20,
        db_cache_bytes: n
            .db_cache_mib
            .map_or(crate::store::DEFAULT_DB_CACHE, |m| (m as usize) << 20),
        admin,
        cluster_record_file,
    })
}

fn gateway_settings(
    g: RawGatewayRole,
    base: &Path,
    origin: &str,
) -> Result<GatewaySettings, ConfigError> {
    let bad = |key: &str, message: &str| ConfigError::Value {
        path: origin.to_owned(),
        key: format!("gateway.{key}"),
        message: message.into(),
    };
    let s3_tls = match (g.s3_tls_cert_file, g.s3_tls_key_file) {
        (Some(mut cert), Some(mut key)) => {
            resolve(base, &mut cert);
            resolve(base, &mut key);
            Some((cert, key))
        }
        (None, None) => None,
        _ => {
            return Err(bad(
                "s3_tls_cert_file",
                "s3_tls_cert_file and s3_tls_key_file go together",
            ));
        }
    };
    if s3_tls.is_none()
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
    if g.write_timeout_secs == Some(0) {
        return Err(bad("write_timeout_secs", "must be at least 1"));
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
    let paths = |list: Option<Vec<PathBuf>>| -> Vec<PathBuf> {
        let mut list = list.unwrap_or_default();
        for p in &mut list {
            resolve(base, p);
        }
        list
    };
    let mut s = GatewaySettings {
        id: g.id,
        site: g.site,
        s3_listen: g.s3_listen,
        admin_listen: g.admin_listen,
        state_dir: g.state_dir,
        layout_file: g.layout_file,
        master_key_id: g.master_key_id,
        master_key_file: g.master_key_file,
        manifest_key_file: g.manifest_key_file,
        s3_credentials_file: g.s3_credentials_file,
        admin_token_file: g.admin_token_file,
        inline_limit_bytes: g.inline_limit_bytes.unwrap_or(DEFAULT_INLINE_LIMIT),
        index_cache_bytes: g
            .index_cache_mib
            .map_or(crate::meta::DEFAULT_INDEX_CACHE, |m| (m as usize) << 20),
        read_buffer_bytes: g
            .read_buffers_mib
            .map_or(crate::coordinator::object::DEFAULT_READ_BUFFERS, |m| {
                (m as usize) << 20
            }),
        write_quorum: g.write_quorum,
        write_timeout: g
            .write_timeout_secs
            .map_or(DEFAULT_WRITE_TIMEOUT, Duration::from_secs),
        repair_interval: Duration::from_secs(g.repair_interval_secs.unwrap_or(10).max(1)),
        repair_bytes_per_sec: g.repair_mib_per_sec.unwrap_or(64) << 20,
        repair_busy_bytes_per_sec: g.repair_busy_mib_per_sec.unwrap_or(32) << 20,
        checkpoint_interval: Duration::from_secs(g.checkpoint_interval_secs.unwrap_or(300).max(1)),
        gc_interval: Duration::from_secs(g.gc_interval_secs.unwrap_or(3600).max(1)),
        gc_grace: Duration::from_secs(g.gc_grace_secs.unwrap_or(900)),
        gc_orphan_age: Duration::from_secs(
            g.gc_orphan_age_secs
                .unwrap_or(86_400)
                .max(g.gc_grace_secs.unwrap_or(900)),
        ),
        lifecycle_interval: Duration::from_secs(g.lifecycle_interval_secs.unwrap_or(3600).max(1)),
        lifecycle_day: Duration::from_secs(g.lifecycle_day_secs.unwrap_or(86_400).max(1)),
        previous_master_key_files: paths(g.previous_master_key_files),
        s3_region: g.s3_region.unwrap_or_else(|| DEFAULT_REGION.to_owned()),
        s3_body_idle_timeout: Duration::from_secs(
            g.s3_body_idle_timeout_secs
                .unwrap_or(DEFAULT_BODY_IDLE_SECS),
        ),
        s3_tls,
        previous_layout_files: paths(g.previous_layout_files),
    };
    for p in [
        &mut s.state_dir,
        &mut s.layout_file,
        &mut s.master_key_file,
        &mut s.manifest_key_file,
        &mut s.s3_credentials_file,
        &mut s.admin_token_file,
    ] {
        resolve(base, p);
    }
    Ok(s)
}

#[cfg(test)]
mod tests;
