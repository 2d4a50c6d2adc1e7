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
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
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
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse_layout(&text, &path.display().to_string())
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

    #[test]
    fn a_bad_profile_names_the_keys() {
        let err = parse_layout("epoch = 1\nk = 0\nm = 2\nsites = []\n", "l.toml").unwrap_err();
        assert!(err.to_string().contains("k, m"), "{err}");
    }
}
