//! Layout files (`layout.toml`): sites, nodes, disks and the erasure profile, as people write
//! them, checked into a `core::layout::Layout` and the rule it must survive.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

use super::ConfigError;
use crate::core::ids::{DiskId, NodeId, SiteId};
use crate::core::layout::{Disk, Layout, Node, Rule, Site};
use crate::core::stripe::Profile;

/// A layout file, as written by people.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLayout {
    /// Layout epoch.
    epoch: u64,
    /// Data shards per stripe.
    k: usize,
    /// Parity shards per stripe.
    m: usize,
    /// f: foreign sites that may be lost on top of home.
    #[serde(default = "default_survive")]
    survive_foreign_losses: usize,
    /// Sites.
    sites: Vec<RawSite>,
}

fn default_survive() -> usize {
    1
}

/// A site in a layout file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    /// Site id.
    id: u16,
    /// Name.
    name: String,
    /// Home site?
    #[serde(default)]
    home: bool,
    /// Nodes.
    nodes: Vec<RawNode>,
}

/// A node in a layout file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    /// Node id.
    id: u32,
    /// QUIC address of the node (`host:port`).
    addr: Option<String>,
    /// Disks.
    disks: Vec<RawDisk>,
}

/// A disk in a layout file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDisk {
    /// Disk id.
    id: u32,
    /// Capacity in bytes.
    capacity: u64,
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
pub fn node_addresses(path: &Path) -> Result<BTreeMap<u32, SocketAddr>, ConfigError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: origin.clone(),
        error,
    })?;
    let raw: RawLayout = toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: origin.clone(),
        message: e.to_string(),
    })?;
    let mut out = BTreeMap::new();
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
