//! `exclave recover`: runs a recovery (live) or an export (offline) with a progress bar, then
//! prints the report (a table, or `--json`).

use std::sync::Mutex;
use std::time::Duration;

use exclave::ops::recover::census::CheckpointReport;
use exclave::ops::recover::live::{LiveOptions, Progress, Report};
use exclave::ops::recover::offline::{ExportReport, OfflineOptions};

/// A progress bar (none with --json), and the phase it shows.
pub(crate) struct Bar {
    bar: Option<indicatif::ProgressBar>,
    phase: Mutex<String>,
}

impl Bar {
    pub(crate) fn new(json: bool) -> Self {
        let bar = (!json).then(|| {
            let b = indicatif::ProgressBar::new(0);
            b.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        Self {
            bar,
            phase: Mutex::new(String::new()),
        }
    }

    pub(crate) fn show(&self, p: Progress<'_>) {
        let Some(b) = &self.bar else { return };
        let mut phase = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        if *phase != p.phase {
            p.phase.clone_into(&mut phase);
            let message = match p.phase {
                "records" => "fetching the cluster record",
                "manifests" => "listing manifests, node by node",
                "verify" => "reading every object back",
                "export" => "decoding and writing every object",
                other => other,
            };
            b.set_message(message.to_owned());
        }
        b.set_length(p.total);
        b.set_position(p.done);
    }

    pub(crate) fn done(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// Runs a live recovery; true when every object was recovered readable, no node failed, the
/// catalog matches its checkpoint and no site is stale.
pub(crate) fn live(opts: &LiveOptions, json: bool) -> anyhow::Result<bool> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let bar = Bar::new(json);
    let report = runtime.block_on(exclave::ops::recover::live::recover(opts, &|p| bar.show(p)));
    bar.done();
    let r = report?;
    let ok = r.unreadable.is_empty()
        && r.nodes.iter().all(|n| n.error.is_none())
        && r.checkpoint.as_ref().is_none_or(|c| c.matches)
        && r.stale_sites.is_empty();
    if json {
        outln!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print_live(&r);
    }
    Ok(ok)
}

/// Runs an offline export; true when every object was exported, the catalog matches its
/// checkpoint and no site is stale.
pub(crate) fn offline(opts: &OfflineOptions, json: bool) -> anyhow::Result<bool> {
    let bar = Bar::new(json);
    let report = exclave::ops::recover::offline::export(opts, &|p| bar.show(p));
    bar.done();
    let r = report?;
    let ok = r.missing.is_empty()
        && r.unreadable.is_empty()
        && r.checkpoint.as_ref().is_none_or(|c| c.matches)
        && r.stale_sites.is_empty();
    if json {
        outln!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print_offline(&r);
    }
    Ok(ok)
}

fn print_checkpoint(c: Option<&CheckpointReport>, stale: &[String], lacking: &[String]) {
    match c {
        Some(c) => outln!(
            "checkpoint #{} (kept by {}): {} keys; the recovered catalog {} ({} keys as of it, \
             {} keys written after it)",
            c.seq,
            c.held_by.join(", "),
            c.leaves,
            if c.matches {
                "matches it"
            } else {
                "DOES NOT MATCH it"
            },
            c.recovered_leaves,
            c.keys_after
        ),
        None => outln!("no catalog checkpoint found: nothing to verify against"),
    }
    if !stale.is_empty() {
        outln!(
            "stale sites (their newest checkpoint is older: restored from an old copy, or down \
             since): {}. Newer versions from the other sites were used.",
            stale.join(", ")
        );
    }
    if !lacking.is_empty() {
        outln!(
            "sites lacking manifests the others gave (withheld, missed while down, or rolled \
             back; counts above): {}. They were outvoted: the others' copies were used.",
            lacking.join(", ")
        );
    }
}

fn print_live(r: &Report) {
    outln!(
        "{:<10} {:<22} {:>6} {:>6} {:>9} {:>7} {:>10} {:>10}  note",
        "site",
        "node",
        "record",
        "listed",
        "manifests",
        "lacking",
        "unopenable",
        "checkpoint"
    );
    for n in &r.nodes {
        outln!(
            "{:<10} {:<22} {:>6} {:>6} {:>9} {:>7} {:>10} {:>10}  {}",
            n.site,
            format!("{}@{}", n.node, n.addr),
            if n.record { "ok" } else { "-" },
            if n.listed { "yes" } else { "no" },
            n.manifests,
            n.lacking,
            n.unopenable,
            n.newest_checkpoint,
            n.error.clone().unwrap_or_default()
        );
    }
    if !r.sites_missing.is_empty() {
        outln!("sites not used: {}", r.sites_missing.join(", "));
    }
    print_checkpoint(r.checkpoint.as_ref(), &r.stale_sites, &r.lacking_sites);
    outln!(
        "recovered {} buckets, {} objects, {} bytes in {:.1} s",
        r.buckets,
        r.objects,
        r.bytes,
        r.seconds
    );
    if r.verified > 0 || !r.unreadable.is_empty() {
        outln!(
            "read back: {} whole, {} unreadable",
            r.verified,
            r.unreadable.len()
        );
        for u in r.unreadable.iter().take(20) {
            outln!("  unreadable: {u}");
        }
    }
    customer_keyed(&r.customer_keyed);
    outln!(
        "start the recovered gateway: exclaved --config {}",
        r.gateway_config.display()
    );
}

fn print_offline(r: &ExportReport) {
    outln!(
        "{:<10} {:<40} {:>9} {:>7} {:>10} {:>10}",
        "site",
        "directory",
        "manifests",
        "lacking",
        "unopenable",
        "checkpoint"
    );
    for d in &r.dirs {
        outln!(
            "{:<10} {:<40} {:>9} {:>7} {:>10} {:>10}",
            d.site,
            d.dir.display(),
            d.manifests,
            d.lacking,
            d.unopenable,
            d.newest_checkpoint
        );
    }
    print_checkpoint(r.checkpoint.as_ref(), &r.stale_sites, &r.lacking_sites);
    outln!(
        "exported {} of {} objects and {} of {} noncurrent versions, {} delete markers listed \
         ({} bytes; {} keys escaped, see manifest.jsonl) in {:.1} s",
        r.exported,
        r.objects,
        r.noncurrent_exported,
        r.noncurrent,
        r.delete_markers,
        r.bytes,
        r.escaped,
        r.seconds
    );
    for m in r.missing.iter().take(20) {
        outln!("  missing: {m}");
    }
    for u in r.unreadable.iter().take(20) {
        outln!("  unreadable: {u}");
    }
    customer_keyed(&r.customer_keyed);
}

/// Names the objects stored under their client's own key (SSE-C), which exclave cannot open.
fn customer_keyed(keyed: &[String]) {
    if keyed.is_empty() {
        return;
    }
    outln!(
        "{} objects are stored under their client's own key (SSE-C): recovered, unreadable \
         without that key, which exclave never keeps",
        keyed.len()
    );
    for k in keyed.iter().take(20) {
        outln!("  needs its customer key: {k}");
    }
}
