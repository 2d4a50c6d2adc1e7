//! `exclave drill`: a disaster recovery rehearsed against the live cluster. The gateway makes a
//! fresh catalog checkpoint; then a recovery runs as if home and one more site were gone (they
//! are not contacted), into a temporary directory, from the master key and the other sites
//! alone; the recovered catalog is checked against the checkpoint and every object is read
//! back. Nothing is written to the cluster, and the live gateway keeps serving.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use serde::Serialize;

use crate::admin::Admin;

/// What a drill found.
#[derive(Debug, Serialize)]
struct DrillReport {
    ignored_sites: Vec<String>,
    used_sites: Vec<String>,
    checkpoint: u64,
    catalog_matches: bool,
    objects: u64,
    read_back: u64,
    unreadable: Vec<String>,
    bytes: u64,
    recovered_percent: f64,
    seconds: f64,
    stale_sites: Vec<String>,
}

/// Runs a drill; true when everything was recovered.
pub(crate) fn run(
    config: &Path,
    ignore: Option<&str>,
    keep: Option<&Path>,
    json: bool,
) -> anyhow::Result<bool> {
    let started = Instant::now();
    let c = exclave::config::read_daemon(config)?;
    let Some(g) = &c.gateway else {
        bail!(
            "{}: no [gateway] section: give the gateway's config",
            config.display()
        );
    };
    let admin = Admin::from_config(config)?;
    let made = admin
        .call("POST", "/v1/checkpoint")
        .context("asking the gateway for a fresh catalog checkpoint")?;
    let checkpoint = made["seq"].as_u64().unwrap_or(0);

    let (layout, _) = exclave::config::read_layout(&g.layout_file)?;
    let addrs = exclave::config::node_addresses(&g.layout_file)?;
    let home = layout
        .sites
        .iter()
        .find(|s| s.home)
        .map(|s| s.name.clone())
        .context("the layout names no home site")?;
    let other = match ignore {
        Some(s) => {
            if !layout.sites.iter().any(|x| x.name == s && !x.home) {
                bail!("--ignore-site {s}: not a foreign site of the layout");
            }
            s.to_owned()
        }
        None => layout
            .sites
            .iter()
            .find(|s| !s.home)
            .map(|s| s.name.clone())
            .context("the layout has no foreign site")?,
    };
    let ignored = vec![home, other];
    let used: Vec<&exclave::core::layout::Site> = layout
        .sites
        .iter()
        .filter(|s| !ignored.contains(&s.name))
        .collect();
    let nodes = used
        .iter()
        .flat_map(|s| s.nodes.iter())
        .filter_map(|n| addrs.get(&n.id.0).copied())
        .collect();
    let master = crate::keys::master_key(Some(&g.master_key_file), g.master_key_id, &[])?;
    let (out, remove) = match keep {
        Some(p) => (p.to_path_buf(), false),
        None => (
            std::env::temp_dir().join(format!(
                "exclave-drill-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos())
            )),
            true,
        ),
    };
    let opts = exclave::ops::recover::live::LiveOptions {
        nodes,
        master,
        out: out.clone(),
        s3_listen: "127.0.0.1:0".parse()?,
        admin_listen: "127.0.0.1:0".parse()?,
        verify: true,
        // The drill's gateway is never started.
        s3_plain_http: true,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let bar = crate::recover::Bar::new(json);
    let result = runtime.block_on(exclave::ops::recover::live::recover(&opts, &|p| {
        bar.show(p);
    }));
    bar.done();
    if remove {
        remove_tree(&out);
    }
    let r = result?;
    let cp = r.checkpoint.as_ref();
    let report = DrillReport {
        ignored_sites: ignored,
        used_sites: used.iter().map(|s| s.name.clone()).collect(),
        checkpoint: cp.map_or(0, |c| c.seq),
        catalog_matches: cp.is_some_and(|c| c.matches && c.seq >= checkpoint),
        objects: r.objects,
        read_back: r.verified,
        unreadable: r.unreadable.clone(),
        bytes: r.bytes,
        recovered_percent: if r.objects == 0 {
            100.0
        } else {
            100.0 * r.verified as f64 / r.objects as f64
        },
        seconds: started.elapsed().as_secs_f64(),
        stale_sites: r.stale_sites.clone(),
    };
    let ok = report.catalog_matches && report.unreadable.is_empty() && r.verified == r.objects;
    if json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        outln!(
            "drill: home and one more site ignored ({}); recovered from {}",
            report.ignored_sites.join(", "),
            report.used_sites.join(", ")
        );
        outln!(
            "catalog checkpoint #{}: the recovered catalog {}",
            report.checkpoint,
            if report.catalog_matches {
                "matches it"
            } else {
                "DOES NOT MATCH it"
            }
        );
        outln!(
            "{:.1}% recovered: {} of {} objects read back whole ({} bytes), {} unreadable, in {:.1} s",
            report.recovered_percent,
            report.read_back,
            report.objects,
            report.bytes,
            report.unreadable.len(),
            report.seconds
        );
        for u in report.unreadable.iter().take(20) {
            outln!("  unreadable: {u}");
        }
        if !report.stale_sites.is_empty() {
            outln!("stale sites: {}", report.stale_sites.join(", "));
        }
    }
    Ok(ok)
}

/// Removes the drill's temporary directory (it holds a copy of the keys).
fn remove_tree(p: &Path) {
    if let Err(e) = std::fs::remove_dir_all(p) {
        eprintln!("warning: could not remove {}: {e}", p.display());
    }
}
