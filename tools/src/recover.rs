//! `exclave recover`: runs the recovery with a progress bar, then prints the report (a table,
//! or `--json`).

use std::sync::Mutex;
use std::time::Duration;

use exclave::recovery::live::{LiveOptions, Progress, Report};

/// Runs a live recovery; true when every object was recovered readable and no node failed.
pub(crate) fn live(opts: &LiveOptions, json: bool) -> anyhow::Result<bool> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let bar = (!json).then(|| {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b.enable_steady_tick(Duration::from_millis(120));
        b
    });
    let shown = Mutex::new(String::new());
    let progress = |p: Progress<'_>| {
        if let Some(b) = &bar {
            let mut phase = shown.lock().unwrap_or_else(|e| e.into_inner());
            if *phase != p.phase {
                *phase = p.phase.to_owned();
                b.set_message(match p.phase {
                    "records" => "fetching the cluster record".to_owned(),
                    "manifests" => "listing manifests, node by node".to_owned(),
                    "verify" => "reading every object back".to_owned(),
                    other => other.to_owned(),
                });
            }
            b.set_length(p.total);
            b.set_position(p.done);
        }
    };
    let report = runtime.block_on(exclave::recovery::live::recover(opts, &progress));
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let report = report?;
    let ok = report.unreadable.is_empty()
        && report.nodes.iter().all(|n| n.error.is_none())
        && report.checkpoint.as_ref().is_none_or(|c| c.matches)
        && report.stale_sites.is_empty();
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(ok)
}

fn print_report(r: &Report) {
    println!(
        "{:<10} {:<22} {:>7} {:>7} {:>10} {:>11}  note",
        "site", "node", "record", "listed", "manifests", "unopenable"
    );
    for n in &r.nodes {
        println!(
            "{:<10} {:<22} {:>7} {:>7} {:>10} {:>11}  {}",
            n.site,
            format!("{}@{}", n.node, n.addr),
            if n.record { "ok" } else { "-" },
            if n.listed { "yes" } else { "no" },
            n.manifests,
            n.unopenable,
            n.error.clone().unwrap_or_default()
        );
    }
    if !r.sites_missing.is_empty() {
        println!("sites not used: {}", r.sites_missing.join(", "));
    }
    println!(
        "recovered {} buckets, {} objects, {} bytes in {:.1} s",
        r.buckets, r.objects, r.bytes, r.seconds
    );
    if r.verified > 0 || !r.unreadable.is_empty() {
        println!(
            "read back: {} whole, {} unreadable",
            r.verified,
            r.unreadable.len()
        );
        for u in r.unreadable.iter().take(20) {
            println!("  unreadable: {u}");
        }
    }
    println!(
        "start the recovered gateway: exclaved --config {}",
        r.gateway_config.display()
    );
}
