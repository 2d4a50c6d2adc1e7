//! `exclave layout apply`: a new layout epoch that adds nodes, disks or sites, or gives a lost
//! node a new address (`--replace-node`). Nothing moves:
//! objects written under an earlier layout stay where it placed them and are found there (the
//! gateway keeps the earlier layouts, newest first, and looks a key up under the current one
//! first); new writes are placed under the new one, so new capacity fills with new data.
//!
//! Run with the gateway stopped. In order, so that a run cut short is safe to repeat:
//! 1. the new layout is checked against the current one (next epoch, same profile, every
//!    site, node and disk still there with the same ids and addresses) and the jurisdiction
//!    rule;
//! 2. each new node, and each node replaced (lost with its disks: after a disaster, the home
//!    node), gets a directory to ship to its host (certificate from the cluster CA in the
//!    cluster record, initialised empty data directories, `node.toml`, the CA certificate);
//!    a replaced node starts empty and `exclave heal` refills it;
//! 3. the cluster record, with the new layout and the earlier ones, is sealed and stored at
//!    every node and in each new node's directory;
//! 4. the current layout is kept as `layout-epoch-<n>.toml` and named in the gateway config's
//!    `previous_layout_files`; only then is the layout file replaced.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use serde::Serialize;

use crate::config::{node_addresses, parse_layout, read_daemon};
use crate::coordinator::NodeClient;
use crate::core::keys::MasterKey;
use crate::core::layout::{Layout, check};
use crate::core::record::FILE_NAME;
use crate::gateway::read_key_file;
use crate::net::pki::Ca;
use crate::ops::init::write_node_dir;
use crate::ops::keys::{gateway_endpoint, gateway_stopped, newest_record};
use crate::sys::{now_ms, random, write_atomic};

/// A node the new layout adds.
#[derive(Clone, Debug, Serialize)]
pub struct NewNode {
    /// Node id.
    pub node: u32,
    /// Its site.
    pub site: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The directory written for it: copy it to the node's host and start
    /// `exclaved --config DIR/node.toml` there.
    pub dir: PathBuf,
}

/// What `apply` did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Applied {
    /// The epoch now current.
    pub epoch: u64,
    /// Whether the layout was already current (a repeated run).
    pub already_current: bool,
    /// Nodes added, with their directories.
    pub new_nodes: Vec<NewNode>,
    /// Nodes replaced (same id, site and disks; empty, perhaps at a new address), with their
    /// directories.
    pub replaced_nodes: Vec<NewNode>,
    /// Nodes that stored the new cluster record.
    pub record_stored: Vec<u32>,
    /// Nodes that did not (unreachable): run `apply` again once they answer.
    pub record_missing: Vec<u32>,
    /// Where the earlier layout was kept.
    pub previous_layout_file: Option<PathBuf>,
}

/// Checks that `new` only adds to `cur`: next epoch, same profile, every site, node and disk
/// of `cur` still there under the same ids (and nodes at the same addresses, except those in
/// `replaced`).
pub fn check_growth(
    cur: &Layout,
    cur_addrs: &BTreeMap<u32, SocketAddr>,
    new: &Layout,
    new_addrs: &BTreeMap<u32, SocketAddr>,
    replaced: &[u32],
) -> Result<(), String> {
    if new.epoch != cur.epoch + 1 {
        return Err(format!(
            "the new layout's epoch is {}; it must be {} (the current one is {})",
            new.epoch,
            cur.epoch + 1,
            cur.epoch
        ));
    }
    if new.profile != cur.profile {
        return Err(format!(
            "the new layout changes the erasure profile ({}+{} to {}+{}): not supported",
            cur.profile.k(),
            cur.profile.m(),
            new.profile.k(),
            new.profile.m()
        ));
    }
    for site in &cur.sites {
        let Some(ns) = new.sites.iter().find(|s| s.id == site.id) else {
            return Err(format!(
                "site {} ({}) is missing from the new layout: removing a site is not supported",
                site.id.0, site.name
            ));
        };
        if ns.name != site.name || ns.home != site.home {
            return Err(format!(
                "site {} changes its name or home flag ({} to {})",
                site.id.0, site.name, ns.name
            ));
        }
        for node in &site.nodes {
            let Some(nn) = ns.nodes.iter().find(|n| n.id == node.id) else {
                return Err(format!(
                    "node {} of site {} is missing from the new layout: removing a node is not supported",
                    node.id.0, site.name
                ));
            };
            if cur_addrs.get(&node.id.0) != new_addrs.get(&node.id.0)
                && !replaced.contains(&node.id.0)
            {
                return Err(format!(
                    "node {} changes its address: only a node being replaced may \
                     (--replace-node {})",
                    node.id.0, node.id.0
                ));
            }
            for d in &node.disks {
                if !nn.disks.iter().any(|e| e.id == d.id) {
                    return Err(format!(
                        "disk {} of node {} is missing from the new layout: removing a disk is not supported",
                        d.id.0, node.id.0
                    ));
                }
            }
        }
    }
    for site in &new.sites {
        for node in &site.nodes {
            let moved = cur
                .sites
                .iter()
                .any(|s| s.id != site.id && s.nodes.iter().any(|n| n.id == node.id));
            if moved {
                return Err(format!("node {} moves to another site", node.id.0));
            }
        }
    }
    Ok(())
}

/// Applies the layout in `new_file` to the gateway `config` describes; new and replaced nodes'
/// directories go under `out`. `replace`: nodes of the current layout that are lost and get a
/// new, empty server (their address may change).
pub async fn apply(
    config: &Path,
    new_file: &Path,
    out: &Path,
    replace: &[u32],
) -> anyhow::Result<Applied> {
    let c = read_daemon(config)?;
    let Some(g) = &c.gateway else {
        bail!("{}: no [gateway] section", config.display());
    };
    let _stopped = gateway_stopped(g, "apply the layout").await?;
    let master = MasterKey::from_bytes(g.master_key_id, read_key_file(&g.master_key_file)?);
    let cur_text = std::fs::read_to_string(&g.layout_file)
        .with_context(|| format!("reading {}", g.layout_file.display()))?;
    let new_text = std::fs::read_to_string(new_file)
        .with_context(|| format!("reading {}", new_file.display()))?;
    let (cur, _) = parse_layout(&cur_text, &g.layout_file.display().to_string())?;
    let (new, rule) = parse_layout(&new_text, &new_file.display().to_string())?;
    let cur_addrs = node_addresses(&g.layout_file)?;
    let new_addrs = node_addresses(new_file)?;
    for id in replace {
        if !cur_addrs.contains_key(id) {
            bail!("--replace-node {id}: not a node of the current layout");
        }
    }
    let already_current = cur_text == new_text;
    if !already_current {
        check_growth(&cur, &cur_addrs, &new, &new_addrs, replace)
            .map_err(|e| anyhow::anyhow!(e))?;
        check(&new, rule).with_context(|| format!("the new layout {}", new_file.display()))?;
    }

    // The cluster record, from the nodes.
    let addresses: Vec<SocketAddr> = cur_addrs.values().copied().collect();
    let Some(mut record) = newest_record(&addresses, &[&master]).await else {
        bail!("no node gave a cluster record that opens with the master key");
    };
    if !already_current {
        if record.layout_toml != new_text {
            record.previous_layouts_toml.insert(0, cur_text.clone());
        }
        record.layout_toml = new_text.clone();
    } else if record.layout_toml != new_text {
        bail!("the layout is current at the gateway but not in the nodes' cluster record");
    }
    record.written_ms = now_ms();
    let mut nonce = [0u8; 12];
    random(&mut nonce);
    let sealed = record.seal(&master, nonce);

    let mut applied = Applied {
        epoch: new.epoch,
        already_current,
        ..Applied::default()
    };
    // Directories for the new nodes and the replaced ones.
    let ca = Ca::from_pem(&record.home, &record.ca_cert_pem, &record.ca_key_pem)?;
    for site in &new.sites {
        for node in &site.nodes {
            let replaced = replace.contains(&node.id.0);
            if cur_addrs.contains_key(&node.id.0) && !replaced {
                continue;
            }
            let addr = *new_addrs
                .get(&node.id.0)
                .ok_or_else(|| anyhow::anyhow!("node {} has no addr", node.id.0))?;
            let dir = out.join(format!("{}-node-{}", site.name, node.id.0));
            if !dir.join("node.toml").exists() {
                write_node_dir(&dir, &ca, &site.name, node, addr, "ca.pem")?;
                std::fs::write(dir.join("ca.pem"), &record.ca_cert_pem)?;
            }
            std::fs::write(dir.join(FILE_NAME), &sealed)?;
            let n = NewNode {
                node: node.id.0,
                site: site.name.clone(),
                addr,
                dir,
            };
            if replaced {
                applied.replaced_nodes.push(n);
            } else {
                applied.new_nodes.push(n);
            }
        }
    }

    // The record at every node already running (a replaced one is lost: its directory has it).
    let ep = gateway_endpoint(&c, g)?;
    for site in &cur.sites {
        for node in &site.nodes {
            let Some(addr) = cur_addrs.get(&node.id.0) else {
                continue;
            };
            if replace.contains(&node.id.0) {
                continue;
            }
            let client = Arc::new(NodeClient::new(ep.clone(), *addr, &site.name));
            let stored = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                client.put_cluster_record(sealed.clone()),
            )
            .await;
            if matches!(stored, Ok(Ok(()))) {
                applied.record_stored.push(node.id.0);
            } else {
                applied.record_missing.push(node.id.0);
            }
        }
    }
    ep.close(0u32.into(), b"layout applied");

    // The gateway: the earlier layout kept and named first, then the new one current.
    if !already_current {
        let kept = g
            .layout_file
            .with_file_name(format!("layout-epoch-{}.toml", cur.epoch));
        write_atomic(&kept, cur_text.as_bytes())?;
        let mut previous: Vec<PathBuf> = g.previous_layout_files.clone();
        if !previous.contains(&kept) {
            previous.insert(0, kept.clone());
        }
        rewrite_previous_layouts(config, &previous)?;
        write_atomic(&g.layout_file, new_text.as_bytes())?;
        applied.previous_layout_file = Some(kept);
    }
    Ok(applied)
}

/// Sets `previous_layout_files` in the `[gateway]` section of `config` (paths relative to the
/// config's directory where they can be).
fn rewrite_previous_layouts(config: &Path, files: &[PathBuf]) -> anyhow::Result<()> {
    let base = config.parent().unwrap_or(Path::new("."));
    let list: Vec<String> = files
        .iter()
        .map(|p| format!("\"{}\"", p.strip_prefix(base).unwrap_or(p).display()))
        .collect();
    let line = format!("previous_layout_files = [{}]", list.join(", "));
    let text = std::fs::read_to_string(config)?;
    let mut out = String::new();
    let mut written = false;
    for l in text.lines() {
        let key = l.split('=').next().unwrap_or("").trim();
        if key == "previous_layout_files" {
            continue;
        }
        out.push_str(l);
        out.push('\n');
        if key == "layout_file" && !written {
            out.push_str(&line);
            out.push('\n');
            written = true;
        }
    }
    if !written {
        bail!(
            "{}: no layout_file line to put previous_layout_files after",
            config.display()
        );
    }
    Ok(write_atomic(config, out.as_bytes())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = include_str!("../../examples/layout-5-sites.toml");

    fn layout(text: &str) -> Layout {
        parse_layout(text, "test").unwrap().0
    }

    fn growth(new: &str) -> Result<(), String> {
        let none = BTreeMap::new();
        check_growth(&layout(BASE), &none, &layout(new), &none, &[])
    }

    const SITE: &str = "\n[[sites]]\nid = 9\nname = \"embassy-new\"\n\
                        nodes = [{ id = 9, disks = [{ id = 90, capacity = 8_000_000_000_000 }] }]\n";

    #[test]
    fn a_layout_may_only_grow_by_one_epoch() {
        let next = BASE.replace("epoch = 1", "epoch = 2");
        assert_eq!(growth(&(next.clone() + SITE)), Ok(()));
        // More capacity on a disk is growth too.
        assert_eq!(
            growth(&next.replacen(
                "capacity = 8_000_000_000_000",
                "capacity = 9_000_000_000_000",
                1
            )),
            Ok(())
        );
        let refused = |text: String, why: &str| {
            let e = growth(&text).unwrap_err();
            assert!(e.contains(why), "{e}");
        };
        refused(BASE.to_owned() + SITE, "epoch is 1; it must be 2");
        refused(BASE.replace("epoch = 1", "epoch = 3"), "it must be 2");
        refused(next.replace("k = 3", "k = 2"), "erasure profile");
        refused(
            next.replace("name = \"embassy-a\"", "name = \"embassy-z\""),
            "changes its name",
        );
        refused(
            next.replace(
                "{ id = 2, disks = [{ id = 3,",
                "{ id = 7, disks = [{ id = 3,",
            ),
            "node 2 of site embassy-a is missing",
        );
        refused(
            next.replace(", { id = 4, capacity = 8_000_000_000_000 }", ""),
            "disk 4 of node 2 is missing",
        );
        let cut = next.find("[[sites]]\nid = 4").unwrap();
        refused(next[..cut].to_owned(), "removing a site is not supported");
    }

    #[test]
    fn only_a_replaced_node_may_change_its_address() {
        let next = layout(&BASE.replace("epoch = 1", "epoch = 2"));
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        let cur: BTreeMap<u32, SocketAddr> = (1..=5)
            .map(|i| (i, addr(&format!("10.0.{i}.7:7001"))))
            .collect();
        let mut moved = cur.clone();
        moved.insert(1, addr("192.0.2.9:7001"));
        let e = check_growth(&layout(BASE), &cur, &next, &moved, &[]).unwrap_err();
        assert!(e.contains("--replace-node 1"), "{e}");
        assert_eq!(
            check_growth(&layout(BASE), &cur, &next, &moved, &[1]),
            Ok(())
        );
        // Replacing node 2 does not let node 1 move.
        assert!(check_growth(&layout(BASE), &cur, &next, &moved, &[2]).is_err());
    }
}
