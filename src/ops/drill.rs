//! `exclave drill`: a disaster recovery rehearsed against the live cluster. The gateway has just
//! made a fresh catalog checkpoint (the caller asks it to); a recovery then runs as if home and
//! one more site were gone (they are not contacted), into a temporary directory, from the
//! master key and the other sites alone; the recovered catalog is checked against the
//! checkpoint and every object is read back. Nothing is written to the cluster, and the live
//! gateway keeps serving.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use serde::Serialize;

use crate::config::{node_addresses, read_layout};
use crate::core::keys::MasterKey;
use crate::ops::recover::live::{LiveOptions, Progress, recover};
use crate::sys::now_ms;

/// What a drill is asked to do.
#[derive(Debug)]
pub struct DrillOptions {
    /// The cluster's layout file (the gateway config's `layout_file`).
    pub layout_file: PathBuf,
    /// The master key (read from its file or joined from shares by the caller).
    pub master: MasterKey,
    /// The foreign site to ignore besides home (none: the first foreign site).
    pub ignore_site: Option<String>,
    /// Keep the recovered gateway directory here (none: a temporary directory, removed).
    pub keep: Option<PathBuf>,
    /// The sequence number of the checkpoint the gateway made for this drill.
    pub checkpoint: u64,
}

/// What a drill found.
#[derive(Debug, Serialize)]
pub struct DrillReport {
    /// Home and the other site ignored.
    pub ignored_sites: Vec<String>,
    /// The sites recovered from.
    pub used_sites: Vec<String>,
    /// The newest checkpoint the recovery found.
    pub checkpoint: u64,
    /// The recovered catalog matches a checkpoint at least as new as the drill's.
    pub catalog_matches: bool,
    /// Objects in the recovered catalog.
    pub objects: u64,
    /// Objects read back whole.
    pub read_back: u64,
    /// Objects that did not read back (bucket/key).
    pub unreadable: Vec<String>,
    /// Objects stored under their client's key (SSE-C): recovered, not read back.
    #[serde(default)]
    pub customer_keyed: Vec<String>,
    /// Bytes read back.
    pub bytes: u64,
    /// `read_back` of `objects`, in percent.
    pub recovered_percent: f64,
    /// Wall time.
    pub seconds: f64,
    /// Sites whose manifests lag the others.
    pub stale_sites: Vec<String>,
    /// The temporary directory (it holds a copy of the keys) when it could not be removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_removed: Option<PathBuf>,
}

impl DrillReport {
    /// Everything recovered: the catalog matches and every object read back.
    pub fn ok(&self) -> bool {
        self.catalog_matches
            && self.unreadable.is_empty()
            && self.read_back + self.customer_keyed.len() as u64 == self.objects
    }
}

/// Runs a drill, reporting progress as the recovery goes.
pub async fn drill(
    opts: &DrillOptions,
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> anyhow::Result<DrillReport> {
    let started = Instant::now();
    let (layout, _) = read_layout(&opts.layout_file)?;
    let addrs = node_addresses(&opts.layout_file)?;
    let home = layout
        .sites
        .iter()
        .find(|s| s.home)
        .map(|s| s.name.clone())
        .context("the layout names no home site")?;
    let other = match &opts.ignore_site {
        Some(s) => {
            if !layout.sites.iter().any(|x| &x.name == s && !x.home) {
                bail!("--ignore-site {s}: not a foreign site of the layout");
            }
            s.clone()
        }
        None => layout
            .sites
            .iter()
            .find(|s| !s.home)
            .map(|s| s.name.clone())
            .context("the layout has no foreign site")?,
    };
    let ignored = vec![home, other];
    let used: Vec<String> = layout
        .sites
        .iter()
        .filter(|s| !ignored.contains(&s.name))
        .map(|s| s.name.clone())
        .collect();
    let nodes = layout
        .sites
        .iter()
        .filter(|s| used.contains(&s.name))
        .flat_map(|s| s.nodes.iter())
        .filter_map(|n| addrs.get(&n.id.0).copied())
        .collect();
    let (out, remove) = match &opts.keep {
        Some(p) => (p.clone(), false),
        None => (
            std::env::temp_dir().join(format!("exclave-drill-{}-{}", std::process::id(), now_ms())),
            true,
        ),
    };
    let live = LiveOptions {
        nodes,
        master: opts.master.clone(),
        out: out.clone(),
        s3_listen: "127.0.0.1:0".parse()?,
        admin_listen: "127.0.0.1:0".parse()?,
        verify: true,
        // The drill's gateway is never started.
        s3_plain_http: true,
    };
    let result = recover(&live, progress).await;
    let not_removed = (remove && std::fs::remove_dir_all(&out).is_err()).then_some(out);
    let r = result?;
    let cp = r.checkpoint.as_ref();
    Ok(DrillReport {
        ignored_sites: ignored,
        used_sites: used,
        checkpoint: cp.map_or(0, |c| c.seq),
        catalog_matches: cp.is_some_and(|c| c.matches && c.seq >= opts.checkpoint),
        objects: r.objects,
        read_back: r.verified,
        unreadable: r.unreadable.clone(),
        customer_keyed: r.customer_keyed.clone(),
        bytes: r.bytes,
        recovered_percent: if r.objects == 0 {
            100.0
        } else {
            100.0 * r.verified as f64 / r.objects as f64
        },
        seconds: started.elapsed().as_secs_f64(),
        stale_sites: r.stale_sites.clone(),
        not_removed,
    })
}
