//! `exclave gc`: one collection pass now (or, with `--wait`, passes until nothing waits for
//! its grace period), with what it removed by reason and per site; `exclave lifecycle`: one
//! pass of the lifecycle rules now, with what it did per bucket; `exclave census`: every site's
//! files by what accounts for them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::admin::{Admin, size, spinner};

/// Bytes of garbage the pass left for its grace period.
fn in_grace(v: &Value) -> u64 {
    v["waiting"]["grace"]["bytes"].as_u64().unwrap_or(0)
}

pub(crate) fn gc(
    admin: &Admin,
    dry_run: bool,
    wait: bool,
    timeout: Duration,
    json: bool,
) -> anyhow::Result<bool> {
    let path = if dry_run {
        "/v1/gc?dry_run=1"
    } else {
        "/v1/gc"
    };
    let bar = (!json).then(|| spinner("weighing what every site holds"));
    let started = Instant::now();
    // (versions, bytes) by reason, over every pass; per site, collected by the passes.
    let mut by_reason: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut per_site: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut passes = 0u32;
    let mut parts_buried = 0u64;
    let last = loop {
        let v = admin.call("POST", path)?;
        passes += 1;
        parts_buried += v["parts_buried"].as_u64().unwrap_or(0);
        for (reason, t) in v["by_reason"].as_object().into_iter().flatten() {
            let e = by_reason.entry(reason.clone()).or_default();
            e.0 += t["items"].as_u64().unwrap_or(0);
            e.1 += t["bytes"].as_u64().unwrap_or(0);
        }
        for s in v["sites"].as_array().into_iter().flatten() {
            let e = per_site
                .entry(s["site"].as_str().unwrap_or("?").to_owned())
                .or_default();
            e.0 += s["collected"]["items"].as_u64().unwrap_or(0);
            e.1 += s["collected"]["bytes"].as_u64().unwrap_or(0);
        }
        let freed: u64 = by_reason.values().map(|t| t.1).sum();
        let waiting = in_grace(&v);
        // Parts buried by this pass wait for their grace period from now on.
        let buried_now = v["parts_buried"].as_u64().unwrap_or(0) > 0;
        if !(wait && !dry_run && (waiting > 0 || buried_now)) || started.elapsed() >= timeout {
            break v;
        }
        let grace = v["grace_secs"].as_u64().unwrap_or(1).clamp(1, 30);
        if let Some(b) = &bar {
            b.set_message(format!(
                "pass {passes}: {} freed; {} in its grace period ({grace} s), waiting",
                size(freed),
                size(waiting)
            ));
        }
        std::thread::sleep(
            Duration::from_secs(grace).min(timeout.saturating_sub(started.elapsed())),
        );
    };
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let answered = last["sites"]
        .as_array()
        .is_some_and(|s| s.iter().all(|x| x["answered"] == true));
    let failed = last["failed"].as_u64().unwrap_or(0);
    if json {
        let mut out = last;
        out["passes"] = passes.into();
        out["total_parts_buried"] = parts_buried.into();
        out["total_by_reason"] = by_reason
            .iter()
            .map(|(r, (n, b))| (r.clone(), serde_json::json!({"items": n, "bytes": b})))
            .collect::<serde_json::Map<_, _>>()
            .into();
        outln!("{out:#}");
        return Ok(answered && failed == 0);
    }
    let verb = if dry_run { "would free" } else { "freed" };
    outln!(
        "{:<14} {:>10} {:>12}",
        "REASON",
        "VERSIONS",
        verb.to_uppercase()
    );
    for (reason, (n, b)) in &by_reason {
        outln!("{reason:<14} {n:>10} {:>12}", size(*b));
    }
    let (n, b) = by_reason
        .values()
        .fold((0, 0), |(n, b), t| (n + t.0, b + t.1));
    outln!("{:<14} {n:>10} {:>12}", "total", size(b));
    outln!("(VERSIONS counts a version once per site that held it)\n");
    outln!(
        "{:<16} {:>12} {:>18} {:>12} {:>16}",
        "SITE",
        "LIVE DATA",
        "AWAITING",
        verb.to_uppercase(),
        "COLLECTED EVER"
    );
    for s in last["sites"].as_array().into_iter().flatten() {
        let name = s["site"].as_str().unwrap_or("?");
        let now = per_site.get(name).copied().unwrap_or_default();
        outln!(
            "{:<16} {:>12} {:>18} {:>12} {:>16}{}",
            name,
            size(s["live_bytes"].as_u64().unwrap_or(0)),
            size(s["waiting_bytes"].as_u64().unwrap_or(0)),
            size(now.1),
            size(s["collected_total"]["bytes"].as_u64().unwrap_or(0)),
            if s["answered"] == true {
                ""
            } else {
                "  (did not answer: its garbage waits for the next pass)"
            }
        );
    }
    for (what, t) in last["waiting"].as_object().into_iter().flatten() {
        let why = match what.as_str() {
            "grace" => "in its grace period (reads in flight finish; `--wait` waits it out)",
            "quorum" => "buried by a write not yet at a write quorum of sites (heal spreads it)",
            "checkpoint" => "manifest records waiting for the next catalog checkpoint",
            "orphan-age" => "shards no manifest names, younger than gc_orphan_age_secs",
            _ => "",
        };
        outln!("waiting: {} {why}", size(t["bytes"].as_u64().unwrap_or(0)));
    }
    if parts_buried > 0 {
        outln!(
            "buried: {parts_buried} part(s) of multipart objects whose bytes went (collected as \
             upload-part after their grace period)"
        );
    }
    let protected = last["protected"].as_u64().unwrap_or(0);
    if protected > 0 {
        outln!("protected by object lock (never collected while locked): {protected} version(s)");
    }
    if failed > 0 {
        outln!(
            "{failed} collection(s) a site refused or did not answer: the next pass retries them"
        );
    }
    Ok(answered && failed == 0)
}

/// `exclave lifecycle`: a pass now; false when an action failed.
pub(crate) fn lifecycle(admin: &Admin, json: bool) -> anyhow::Result<bool> {
    let bar = (!json).then(|| spinner("weighing every key of the buckets with lifecycle rules"));
    let v = admin.call("POST", "/v1/lifecycle")?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let buckets = v["buckets"].as_array().cloned().unwrap_or_default();
    let failed: u64 = buckets
        .iter()
        .map(|b| b["failed"].as_u64().unwrap_or(0))
        .sum();
    if json {
        outln!("{v:#}");
        return Ok(failed == 0);
    }
    if buckets.is_empty() {
        outln!("no bucket has a lifecycle configuration");
        return Ok(true);
    }
    outln!(
        "{:<24} {:>9} {:>9} {:>11} {:>9} {:>9} {:>10} {:>7}",
        "BUCKET",
        "KEYS",
        "EXPIRED",
        "NONCURRENT",
        "MARKERS",
        "UPLOADS",
        "PROTECTED",
        "FAILED"
    );
    for b in &buckets {
        outln!(
            "{:<24} {:>9} {:>9} {:>11} {:>9} {:>9} {:>10} {:>7}",
            b["bucket"].as_str().unwrap_or("?"),
            b["keys"],
            b["expired"],
            b["noncurrent_removed"],
            b["markers_removed"],
            b["uploads_aborted"],
            b["protected"],
            b["failed"]
        );
    }
    outln!();
    outln!(
        "EXPIRED: current versions (a delete marker, or the key's end when unversioned); \
         NONCURRENT and MARKERS: removed for good (their bytes go with `exclave gc`); \
         PROTECTED: due but under object lock, left."
    );
    Ok(failed == 0)
}

/// `exclave census`: false when a site did not answer or some file is accounted for by nothing.
pub(crate) fn census(admin: &Admin, json: bool) -> anyhow::Result<bool> {
    let v = admin.call("GET", "/v1/census")?;
    let sites = v["sites"].as_array().cloned().unwrap_or_default();
    let bytes = |s: &Value, what: &str| s[what]["bytes"].as_u64().unwrap_or(0);
    let whole = sites
        .iter()
        .all(|s| s["answered"] == true && bytes(s, "unnamed") == 0 && bytes(s, "stray") == 0);
    if json {
        outln!("{v:#}");
        return Ok(whole);
    }
    outln!(
        "{:<16} {:>10} {:>10} {:>10} {:>10} {:>8} {:>8} {:>10} {:>10}",
        "SITE",
        "FILES",
        "SHARDS",
        "UNNAMED",
        "QUARANTINE",
        "TMP",
        "STRAY",
        "DATABASE",
        "KEPT (GC)"
    );
    for s in &sites {
        let site = s["site"].as_str().unwrap_or("?");
        if s["answered"] != true {
            outln!("{site:<16} NOT reachable");
            continue;
        }
        outln!(
            "{site:<16} {:>10} {:>10} {:>10} {:>10} {:>8} {:>8} {:>10} {:>10}",
            size(s["total_bytes"].as_u64().unwrap_or(0)),
            size(bytes(s, "shards")),
            size(bytes(s, "unnamed")),
            size(bytes(s, "quarantine")),
            size(bytes(s, "tmp")),
            size(bytes(s, "stray")),
            size(s["database_bytes"].as_u64().unwrap_or(0)),
            s["last_gc"]["live_bytes"]
                .as_u64()
                .map_or_else(|| "-".to_owned(), size),
        );
    }
    let mut listed = false;
    for s in &sites {
        for f in s["listed"].as_array().into_iter().flatten() {
            if !listed {
                outln!();
                outln!("accounted for by nothing (no shard header names it, or not exclave's):");
                listed = true;
            }
            outln!(
                "  {:<16} {:>10}  {}",
                s["site"].as_str().unwrap_or("?"),
                size(f["bytes"].as_u64().unwrap_or(0)),
                f["path"].as_str().unwrap_or("?")
            );
        }
    }
    outln!();
    outln!(
        "SHARDS are files a shard header names; the last `exclave gc` pass found KEPT (GC) bytes \
         of shards and manifest records kept by a version, and garbage waiting ({}). UNNAMED shard files older than \
         gc_orphan_age_secs are deleted by the collector; STRAY files are not exclave's.",
        v["waiting"]
            .as_object()
            .map(|w| {
                w.iter()
                    .map(|(why, t)| format!("{why}: {}", size(t["bytes"].as_u64().unwrap_or(0))))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "none".into())
    );
    Ok(whole)
}
