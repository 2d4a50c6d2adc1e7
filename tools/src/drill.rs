//! `exclave drill`: the arguments and the table over `exclave::ops::drill`. The gateway is asked
//! for a fresh catalog checkpoint first; the drill then recovers from the foreign sites alone.

use std::path::Path;

use anyhow::{Context, bail};
use exclave::ops::drill::{DrillOptions, drill};

use crate::admin::Admin;

/// Runs a drill; true when everything was recovered.
pub(crate) fn run(
    config: &Path,
    ignore: Option<&str>,
    keep: Option<&Path>,
    json: bool,
) -> anyhow::Result<bool> {
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
    let opts = DrillOptions {
        layout_file: g.layout_file.clone(),
        master: crate::keys::master_key(Some(&g.master_key_file), g.master_key_id, &[])?,
        ignore_site: ignore.map(str::to_owned),
        keep: keep.map(Path::to_path_buf),
        checkpoint: made["seq"].as_u64().unwrap_or(0),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let bar = crate::recover::Bar::new(json);
    let result = runtime.block_on(drill(&opts, &|p| bar.show(p)));
    bar.done();
    let report = result?;
    if let Some(p) = &report.not_removed {
        eprintln!(
            "warning: could not remove {} (it holds a copy of the keys): remove it by hand",
            p.display()
        );
    }
    let ok = report.ok();
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
