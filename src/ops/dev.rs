//! `exclaved dev`: a whole cluster in one directory, set up on first start and reused after.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::config::read_layout;
use crate::ops::init::{InitError, InitOptions, S3Transport, init};

/// What `exclaved dev` runs.
#[derive(Clone, Debug)]
pub struct DevOptions {
    /// The cluster's directory.
    pub dir: PathBuf,
    /// S3 listen address.
    pub listen: SocketAddr,
    /// Number of local sites.
    pub sites: usize,
    /// Data shards.
    pub k: usize,
    /// Parity shards.
    pub m: usize,
    /// Serve S3 over TLS (certificate from the cluster CA).
    pub tls: bool,
}

/// The files of a dev cluster.
#[derive(Clone, Debug)]
pub struct DevCluster {
    /// Node configs, one per site.
    pub node_configs: Vec<PathBuf>,
    /// The gateway config.
    pub gateway_config: PathBuf,
    /// The AWS shared-credentials file for clients.
    pub credentials: PathBuf,
    /// Whether this start created it.
    pub created: bool,
    /// The CA bundle S3 clients pass, when S3 is served over TLS.
    pub ca_bundle: Option<PathBuf>,
    /// What the person starting it should know (options that do not apply to an existing
    /// directory).
    pub notice: Option<String>,
}

/// A port free for both UDP (a node's QUIC) and TCP (its admin API, same number), so a node
/// never fails to start because another program holds the TCP twin of its UDP port.
pub fn free_port_pair(ip: IpAddr) -> anyhow::Result<u16> {
    for _ in 0..200 {
        let udp =
            std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).context("finding a free port")?;
        let port = udp.local_addr()?.port();
        if std::net::TcpListener::bind(SocketAddr::new(ip, port)).is_ok() {
            return Ok(port);
        }
    }
    anyhow::bail!("no port on {ip} is free for both UDP and TCP")
}

/// Sets the cluster up in `o.dir` unless it is there already.
pub fn prepare(o: &DevOptions) -> anyhow::Result<DevCluster> {
    let gateway_config = o.dir.join("gateway").join("gateway.toml");
    let credentials = o.dir.join("credentials");
    let sites: Vec<String> = (1..=o.sites).map(|i| format!("site-{i}")).collect();
    let node_config = |s: &String| o.dir.join("sites").join(s).join("node.toml");
    if gateway_config.exists() {
        let node_configs: Vec<PathBuf> = std::fs::read_dir(o.dir.join("sites"))
            .with_context(|| format!("reading {}", o.dir.join("sites").display()))?
            .filter_map(Result::ok)
            .map(|e| e.path().join("node.toml"))
            .filter(|p| p.exists())
            .collect();
        let mut node_configs = node_configs;
        node_configs.sort();
        let text = std::fs::read_to_string(&gateway_config)
            .with_context(|| format!("reading {}", gateway_config.display()))?;
        let (layout, _) = read_layout(&o.dir.join("layout.toml"))?;
        let (k, m) = (layout.profile.k(), layout.profile.m());
        let notice = ((layout.sites.len(), k, m) != (o.sites, o.k, o.m)).then(|| {
            format!(
                "{} holds a cluster of {} sites at {k}+{m}; --sites, --k and --m apply only to \
                 a new directory, so it starts as it is (give another --dir for a new cluster)",
                o.dir.display(),
                layout.sites.len(),
            )
        });
        let has_tls = text.contains("s3_tls_cert_file");
        if has_tls != o.tls {
            anyhow::bail!(
                "{} was set up {} TLS; start it {} --tls, or give another --dir for a new cluster",
                o.dir.display(),
                if has_tls { "with" } else { "without" },
                if has_tls { "with" } else { "without" },
            );
        }
        return Ok(DevCluster {
            node_configs,
            gateway_config,
            credentials,
            created: false,
            ca_bundle: has_tls.then(|| o.dir.join("ca.pem")),
            notice,
        });
    }
    if o.sites == 0 || o.k == 0 || o.m == 0 {
        anyhow::bail!("--sites, --k and --m must be at least 1");
    }
    let ip = o.listen.ip();
    let admin_port = {
        let l =
            std::net::TcpListener::bind(SocketAddr::new(ip, 0)).context("finding a free port")?;
        l.local_addr()?.port()
    };
    let mut ports = Vec::new();
    for _ in 0..o.sites {
        ports.push(free_port_pair(ip)?);
    }
    // The most foreign site losses (besides home) the layout can survive, at least 0.
    let mut last_err = None;
    for f in (0..=o.m).rev() {
        let opts = InitOptions {
            dir: o.dir.clone(),
            sites: sites.clone(),
            k: o.k,
            m: o.m,
            survive_foreign_losses: f,
            bind: ip,
            base_port: 0,
            s3_port: o.listen.port(),
            disks_per_node: 1,
            disk_capacity: 1 << 40,
            node_ports: ports.clone(),
            admin_port,
            s3: if o.tls {
                S3Transport::Tls { names: Vec::new() }
            } else {
                S3Transport::PlainHttp
            },
        };
        match init(&opts) {
            Ok(done) => {
                dev_gateway_settings(&done.gateway_config)?;
                let node_configs: Vec<PathBuf> = sites.iter().map(node_config).collect();
                for c in node_configs.iter().chain([&done.gateway_config]) {
                    loopback_transport(c)?;
                }
                return Ok(DevCluster {
                    node_configs,
                    gateway_config: done.gateway_config,
                    credentials: done.client_credentials,
                    created: true,
                    ca_bundle: done.s3_ca_bundle,
                    notice: None,
                });
            }
            Err(InitError::Layout(e)) => last_err = Some(e.to_string()),
            Err(e) => return Err(e.into()),
        }
    }
    anyhow::bail!(
        "{} sites cannot hold a {}+{} profile under the jurisdiction rule: {}",
        o.sites,
        o.k,
        o.m,
        last_err.unwrap_or_default()
    )
}

/// What `exclaved dev` sets beyond `exclave init`'s defaults: deleted bytes come back within
/// seconds (a newcomer who deletes sees the space return after `exclave gc --wait`), where a
/// production gateway waits 15 minutes for reads in flight.
fn dev_gateway_settings(config: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(config)?;
    let text = text.replacen(
        "[gateway]\n",
        "[gateway]\n# exclaved dev: deleted bytes come back within seconds.\n\
         gc_grace_secs = 5\ngc_interval_secs = 60\n",
        1,
    );
    crate::sys::write_atomic(config, text.as_bytes())?;
    Ok(())
}

/// Every site of `exclaved dev` is on loopback, where a round trip takes microseconds: QUIC
/// keeps its links full with far smaller flow-control windows than the defaults (sized for
/// foreign sites, a long round trip away), and the large packets loopback carries are used
/// from the first one. Memory per upload falls with the windows (docs/operations.md, "Memory").
fn loopback_transport(config: &Path) -> anyhow::Result<()> {
    let t = crate::net::TransportSettings::loopback();
    let mut text = std::fs::read_to_string(config)?;
    text.push_str(&format!(
        "\n# exclaved dev: every site on loopback (a round trip of microseconds), so small\n\
         # flow-control windows keep the links full; a site abroad needs the defaults.\n\
         [transport]\ninitial_mtu = {mtu}\nstream_window = {stream}\nconnection_window = {conn}\n",
        mtu = t.initial_mtu,
        stream = t.stream_window,
        conn = t.connection_window,
    ));
    crate::sys::write_atomic(config, text.as_bytes())?;
    Ok(())
}

/// The lines `exclaved dev` prints once it serves.
pub fn banner(
    endpoint: SocketAddr,
    admin: Option<SocketAddr>,
    cluster: &DevCluster,
    dir: &Path,
    cli: &Path,
) -> String {
    // Absolute, so that every line works when pasted in any directory.
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let dir = &abs(dir);
    let metrics = admin.map_or(String::new(), |a| {
        format!(
            "\nmetrics: curl -H \"Authorization: Bearer $(cat {token})\" http://{a}/metrics",
            token = dir.join("gateway").join("admin.token").display()
        )
    });
    let (url, ca) = match &cluster.ca_bundle {
        Some(ca) => (
            format!("https://{endpoint}"),
            format!(
                "\nTLS: clients trust the cluster CA {ca} (aws --ca-bundle, AWS_CA_BUNDLE)",
                ca = abs(ca).display()
            ),
        ),
        None => (format!("http://{endpoint}"), String::new()),
    };
    let ca_env = cluster.ca_bundle.as_ref().map_or(String::new(), |ca| {
        format!(" AWS_CA_BUNDLE={}", abs(ca).display())
    });
    format!(
        "exclave dev is serving S3 at {url}{ca}\n\
         cluster directory: {dir}\n\
         credentials (AWS shared-credentials file, [default] profile): {creds}\n\
         try (in any directory):\n  \
         export AWS_SHARED_CREDENTIALS_FILE={creds} AWS_DEFAULT_REGION=us-east-1{ca_env}\n  \
         printf 'parcel,owner\\n7/12,Jane Roe\\n' > parcels.csv\n  \
         aws --endpoint-url {url} s3 mb s3://registry\n  \
         aws --endpoint-url {url} s3 cp parcels.csv s3://registry/\n  \
         aws --endpoint-url {url} s3 ls s3://registry/\n\
         health: {cli} --config {gw} status   (also: scrub, heal --wait, gc --wait, workers; --json)\n\
         stop with Ctrl-C (SIGINT) or SIGTERM; a second start reuses everything.{metrics}",
        gw = abs(&cluster.gateway_config).display(),
        dir = dir.display(),
        creds = abs(&cluster.credentials).display(),
        cli = cli.display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_port_is_free_for_both_udp_and_tcp() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..20 {
            let port = free_port_pair(ip).unwrap();
            let udp = std::net::UdpSocket::bind(SocketAddr::new(ip, port));
            let tcp = std::net::TcpListener::bind(SocketAddr::new(ip, port));
            assert!(udp.is_ok() && tcp.is_ok(), "port {port}");
        }
    }
}
