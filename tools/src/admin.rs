//! The admin commands: a small HTTP/1.1 client of the gateway's admin API (loopback or a
//! private network; bearer token from the gateway config's `admin_token_file`), and the
//! tables people read.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

/// Where the admin API is and how to authenticate, from a gateway config file.
pub(crate) struct Admin {
    addr: SocketAddr,
    token: String,
}

impl Admin {
    pub(crate) fn from_config(path: &Path) -> anyhow::Result<Self> {
        let config = exclave::config::read_daemon(path)
            .with_context(|| format!("reading {}", path.display()))?;
        let Some(g) = config.gateway else {
            bail!(
                "{} has no [gateway] section: give the gateway's config (the admin API lives there)",
                path.display()
            );
        };
        let Some(addr) = g.admin_listen else {
            bail!(
                "{} sets no admin_listen: add e.g. admin_listen = \"127.0.0.1:9001\" under [gateway] and restart the gateway",
                path.display()
            );
        };
        let token = std::fs::read_to_string(&g.admin_token_file)
            .with_context(|| format!("reading the admin token {}", g.admin_token_file.display()))?
            .trim()
            .to_owned();
        Ok(Self { addr, token })
    }

    /// One request; the JSON answer.
    pub(crate) fn call(&self, method: &str, path: &str) -> anyhow::Result<Value> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (status, body) = runtime
            .block_on(exclave::admin::request(
                self.addr,
                method,
                path,
                Some(&self.token),
                Duration::from_secs(600),
            ))
            .with_context(|| {
                format!(
                    "calling the admin API at {} (is the gateway running?)",
                    self.addr
                )
            })?;
        let value: Value = serde_json::from_slice(&body)
            .with_context(|| format!("the admin API answered {status} with no JSON"))?;
        if status != 200 {
            bail!(
                "the admin API answered {status}: {}",
                value["error"].as_str().unwrap_or("no reason given")
            );
        }
        Ok(value)
    }
}

pub(crate) fn ago(ms: u64) -> String {
    if ms == 0 {
        return "never".into();
    }
    format!(
        "{} ago",
        span(exclave::sys::now_ms().saturating_sub(ms) / 1000)
    )
}

/// The age of a site's last scrub as the gateway judged it on its own clock.
fn scrub_age(s: &Value) -> String {
    let scrub = &s["scrub"];
    if let Some(ahead) = scrub["clock_ahead_secs"].as_u64() {
        return format!("CLOCK AHEAD {}", span(ahead));
    }
    match scrub["age_secs"].as_u64() {
        Some(secs) => format!("{} ago", span(secs)),
        None => "never".into(),
    }
}

/// A span of seconds for people: seconds, minutes or hours.
fn span(s: u64) -> String {
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        _ => format!("{} h", s / 3600),
    }
}

pub(crate) fn size(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// A spinner for a long operation, saying `msg`.
pub(crate) fn spinner(msg: &str) -> indicatif::ProgressBar {
    let b = indicatif::ProgressBar::new_spinner();
    b.enable_steady_tick(Duration::from_millis(120));
    b.set_message(msg.to_owned());
    b
}

/// `status`: sites and buckets.
pub(crate) fn status(admin: &Admin, json: bool) -> anyhow::Result<bool> {
    let v = admin.call("GET", "/v1/status")?;
    let healthy = v["sites"].as_array().is_some_and(|s| {
        s.iter().all(|x| {
            x["reachable"] == true
                && x["disk_full"] != true
                && x["scrub"]["clock_ahead_secs"].is_null()
        })
    }) && v["buckets"]
        .as_array()
        .is_some_and(|b| b.iter().all(|x| x["degraded"] == 0 && x["unreadable"] == 0))
        && v["unrebuildable"].as_array().is_none_or(Vec::is_empty);
    if json {
        outln!("{v:#}");
        return Ok(healthy);
    }
    outln!(
        "{:<16} {:>5}  {:<10} {:>11} {:>21} {:<14} {:>9} {:>11}",
        "SITE",
        "NODE",
        "REACHABLE",
        "SHARD FILES",
        "DISK USED / FREE",
        "LAST SCRUB",
        "FINDINGS",
        "QUARANTINED"
    );
    for s in v["sites"].as_array().into_iter().flatten() {
        let reachable = s["reachable"] == true;
        let (used, free) =
            s["disks"]
                .as_array()
                .into_iter()
                .flatten()
                .fold((0u64, 0u64), |(u, f), d| {
                    (
                        u + d["used"].as_u64().unwrap_or(0),
                        f + d["free"].as_u64().unwrap_or(0),
                    )
                });
        let or_dash = |v: String| if reachable { v } else { "-".into() };
        outln!(
            "{:<16} {:>5}  {:<10} {:>11} {:>21} {:<14} {:>9} {:>11}",
            s["site"].as_str().unwrap_or("?"),
            s["node"].to_string(),
            match (reachable, s["disk_full"] == true) {
                (true, false) => "yes",
                (true, true) => "DISK FULL",
                (false, _) => "NO",
            },
            or_dash(s["shards"].to_string()),
            or_dash(format!("{} / {}", size(used), size(free))),
            or_dash(scrub_age(s)),
            or_dash(s["scrub"]["findings"].to_string()),
            or_dash(s["scrub"]["quarantined"].to_string()),
        );
    }
    outln!(
        "(SHARD FILES: every shard file the site holds, those of deleted or overwritten versions \
         included; DISK USED / FREE: the filesystems of its data directories, other files \
         included)"
    );
    print_space(&v);
    outln!(
        "\nrepair backlog: {} object version(s)",
        v["repair_backlog"]
    );
    outln!(
        "failed writes still being withdrawn: {}\n",
        v["withdrawals_pending"]
    );
    print_lost(&v["unrebuildable"]);
    outln!(
        "{:<32} {:>10} {:>10} {:>11} {:>10} {:>15} {:>8}",
        "BUCKET",
        "WHOLE",
        "DEGRADED",
        "UNREADABLE",
        "VERSIONS",
        "DELETE MARKERS",
        "LOCKED"
    );
    for b in v["buckets"].as_array().into_iter().flatten() {
        outln!(
            "{:<32} {:>10} {:>10} {:>11} {:>10} {:>15} {:>8}",
            b["name"].as_str().unwrap_or("?"),
            // A JSON value ignores width and alignment: its text does not.
            b["whole"].to_string(),
            b["degraded"].to_string(),
            b["unreadable"].to_string(),
            b["versions"].to_string(),
            b["delete_markers"].to_string(),
            b["locked"].to_string()
        );
    }
    if !healthy {
        outln!(
            "\nnot everything is whole: `exclave --config FILE heal --wait` rebuilds what is missing once its sites answer"
        );
        let away = sites_where(&v, |s| s["reachable"] != true);
        let ahead = sites_where(&v, |s| !s["scrub"]["clock_ahead_secs"].is_null());
        if !ahead.is_empty() {
            outln!(
                "clock ahead of the gateway's: {} (its scrub passes are stamped in the future; set \
                 its clock right, with NTP)",
                ahead.join(", ")
            );
        }
        let full = sites_where(&v, |s| s["disk_full"] == true);
        if !full.is_empty() {
            outln!(
                "disk full at: {} (its last shard write failed for lack of space; writes go on \
                 without it). Free space or add a disk there, then `exclave heal --wait`",
                full.join(", ")
            );
        }
        if !away.is_empty() {
            outln!(
                "not reachable: {}. A node lost for good (its server and disks) is replaced with \
                 `exclave layout apply --replace-node ID` (docs/operations.md, \"Disaster recovery\", step 5)",
                away.join(", ")
            );
        }
    }
    Ok(healthy)
}

/// Per site: live data, garbage awaiting collection, collected so far.
fn print_space(v: &Value) {
    outln!(
        "\n{:<16} {:>12} {:>20} {:>13} {:>12} {:>9} {:>12}",
        "SITE",
        "LIVE DATA",
        "AWAITING COLLECTION",
        "ORPHAN FILES",
        "COLLECTED",
        "VERSIONS",
        "FULL IN"
    );
    let known = |x: &Value| x.as_u64().map_or("-".to_owned(), size);
    for s in v["sites"].as_array().into_iter().flatten() {
        let gc = &s["gc"];
        outln!(
            "{:<16} {:>12} {:>20} {:>13} {:>12} {:>9} {:>12}",
            s["site"].as_str().unwrap_or("?"),
            known(&gc["live_bytes"]),
            known(&gc["waiting_bytes"]),
            known(&gc["orphan_file_bytes"]),
            known(&gc["collected_bytes"]),
            gc["collected_versions"]
                .as_u64()
                .map_or("-".to_owned(), |n| n.to_string()),
            s["full_in_secs"].as_u64().map_or("-".to_owned(), span),
        );
    }
    outln!(
        "(LIVE DATA, AWAITING COLLECTION and ORPHAN FILES (files under shards/ no header names) as \
         the collector's last pass found them; COLLECTED: what the site's ledger says was deleted, \
         ever; FULL IN: when its disks are full at the rate they filled since the gateway started \
         watching, up to a day. `exclave gc` runs a pass now)"
    );
}

/// The names of the sites of a status answer for which `pick` holds.
fn sites_where(status: &Value, pick: impl Fn(&Value) -> bool) -> Vec<&str> {
    status["sites"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| pick(s))
        .filter_map(|s| s["site"].as_str())
        .collect()
}

/// The versions repair gave up on, named, if any.
fn print_lost(lost: &Value) {
    let Some(lost) = lost.as_array().filter(|l| !l.is_empty()) else {
        return;
    };
    outln!(
        "CANNOT BE REBUILT: {} object version(s); every site answered, and too few good blocks \
         are left (restore them from a copy kept elsewhere, or delete them):",
        lost.len()
    );
    for l in lost {
        outln!(
            "  {}/{}  version {}: {} good of the {} needed",
            l["bucket"].as_str().unwrap_or("?"),
            l["key"].as_str().unwrap_or("?"),
            l["version"].as_str().unwrap_or("?"),
            l["good"],
            l["needed"]
        );
    }
    outln!();
}

/// `heal`: find and rebuild missing shards; with `wait`, until everything is whole.
pub(crate) fn heal(
    admin: &Admin,
    bucket: Option<&str>,
    wait: bool,
    timeout: Duration,
    json: bool,
) -> anyhow::Result<bool> {
    let path = match bucket {
        Some(b) => format!("/v1/heal?bucket={b}"),
        None => "/v1/heal".into(),
    };
    let bar = (!json && wait).then(|| spinner(""));
    let started = Instant::now();
    let mut repaired_total = 0u64;
    let (mut read_total, mut written_total, mut manifests_total) = (0u64, 0u64, 0u64);
    let mut degraded_total = 0u64;
    loop {
        let v = admin.call("POST", &path)?;
        repaired_total += v["repaired"].as_u64().unwrap_or(0);
        read_total += v["bytes_read"].as_u64().unwrap_or(0);
        written_total += v["bytes_written"].as_u64().unwrap_or(0);
        manifests_total += v["manifests_restored"].as_u64().unwrap_or(0);
        let manifests_unverified = v["manifests_unverified"].as_u64().unwrap_or(0);
        let pending = v["pending"].as_u64().unwrap_or(0);
        let degraded = v["found_degraded"].as_u64().unwrap_or(0);
        if degraded_total == 0 {
            // The first pass finds them; later passes find what is still missing.
            degraded_total = degraded;
        }
        let unverified = v["shards_unverified"].as_u64().unwrap_or(0);
        // Sites whose disk is full, said after what waits for them.
        let full: Vec<&str> = v["disk_full_sites"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str())
            .collect();
        let full = if full.is_empty() {
            String::new()
        } else {
            format!(" (disk full at {})", full.join(", "))
        };
        let waiting = format!("{pending} waiting for their sites{full}");
        if let Some(b) = &bar {
            b.set_message(format!(
                "checked {} objects, {degraded} degraded, {repaired_total} repaired, {manifests_total} manifest copies restored, {waiting}, {unverified} shards and {manifests_unverified} manifest copies at unreachable sites",
                v["checked"]
            ));
        }
        let lost = v["unrebuildable"].as_array().map_or(0, Vec::len);
        // Whole only when every site answered for every shard and manifest.
        let done = degraded == 0
            && pending == 0
            && unverified == 0
            && manifests_unverified == 0
            && lost == 0;
        // Nothing left to wait for but what cannot be rebuilt: waiting longer changes nothing.
        let settled = lost > 0 && pending == 0 && unverified == 0 && manifests_unverified == 0;
        if wait && settled {
            if let Some(b) = &bar {
                b.finish_and_clear();
            }
            if json {
                outln!("{v:#}");
            } else {
                print_lost(&v["unrebuildable"]);
            }
            bail!(
                "not whole: {lost} object version(s) cannot be rebuilt (every site answered, and \
                 too few good blocks are left); nothing else is waiting for repair"
            );
        }
        if !wait || done {
            if let Some(b) = &bar {
                b.finish_and_clear();
            }
            if json {
                let mut out = v;
                out["total_repaired"] = repaired_total.into();
                out["total_bytes_read"] = read_total.into();
                out["total_bytes_written"] = written_total.into();
                out["total_manifests_restored"] = manifests_total.into();
                outln!("{out:#}");
            } else {
                outln!(
                    "checked {} objects: {degraded_total} degraded found, {repaired_total} repaired ({written_total} bytes written, {read_total} read), {manifests_total} manifest copies restored, {waiting}{}",
                    v["checked"],
                    if done { " — everything is whole" } else { "" }
                );
                print_lost(&v["unrebuildable"]);
            }
            return Ok(done);
        }
        if started.elapsed() > timeout {
            if let Some(b) = &bar {
                b.finish_and_clear();
            }
            bail!(
                "not whole after {timeout:?}: {degraded} degraded found in the last pass, {pending} object version(s) waiting for repair{full}, {unverified} shard(s) and {manifests_unverified} manifest copies at unreachable sites; check `exclave --config FILE status`"
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// `scrub`: start a pass everywhere.
pub(crate) fn scrub(admin: &Admin, json: bool) -> anyhow::Result<bool> {
    let v = admin.call("POST", "/v1/scrub")?;
    if json {
        outln!("{v:#}");
    } else {
        for n in v["nodes"].as_array().into_iter().flatten() {
            outln!(
                "{:<16} node {:>3}: {}",
                n["site"].as_str().unwrap_or("?"),
                n["node"].to_string(),
                if n["started"] == true {
                    "scrub started"
                } else {
                    "NOT reachable"
                }
            );
        }
    }
    Ok(v["nodes"]
        .as_array()
        .is_some_and(|n| n.iter().all(|x| x["started"] == true)))
}

/// When a round is due, from now.
fn due_in(ms: u64) -> String {
    format!(
        "in {}",
        span(ms.saturating_sub(exclave::sys::now_ms()).div_ceil(1000))
    )
}

/// `workers`: the gateway's workers by name, the repair backlog and each site's scrub. Exits
/// 1 when a worker's last round failed.
pub(crate) fn workers(admin: &Admin, json: bool) -> anyhow::Result<bool> {
    let v = admin.call("GET", "/v1/workers")?;
    let list = v["workers"].as_array().cloned().unwrap_or_default();
    let healthy = list.iter().all(|w| w["last_error"].is_null());
    if json {
        outln!("{v:#}");
        return Ok(healthy);
    }
    outln!(
        "{:<12} {:<8} {:>7} {:>7} {:<12} {:<10} LAST",
        "WORKER",
        "STATE",
        "ROUNDS",
        "FAILED",
        "LAST OK",
        "NEXT"
    );
    for w in &list {
        let last = match (
            w["last_error"].as_str(),
            w["progress"].as_str(),
            w["last_summary"].as_str(),
        ) {
            (Some(e), _, _) => format!("FAILED: {e}"),
            (None, Some(p), _) => format!("now: {p}"),
            (None, None, Some(s)) => s.to_owned(),
            (None, None, None) => "-".to_owned(),
        };
        outln!(
            "{:<12} {:<8} {:>7} {:>7} {:<12} {:<10} {last}",
            w["name"].as_str().unwrap_or("?"),
            w["state"].as_str().unwrap_or("?"),
            w["rounds"].as_u64().unwrap_or(0),
            w["failures"].as_u64().unwrap_or(0),
            ago(w["last_ok_ms"].as_u64().unwrap_or(0)),
            w["next_round_ms"]
                .as_u64()
                .map_or_else(|| "-".to_owned(), due_in),
        );
    }
    outln!();
    outln!(
        "repair: {} object version(s) in the backlog, a pass every {} s",
        v["repair"]["backlog"],
        v["repair"]["interval_secs"]
    );
    for s in v["scrub"].as_array().into_iter().flatten() {
        let line = if s["reachable"] == true {
            format!(
                "{}, last pass {}",
                if s["scrub"]["in_progress"] == true {
                    "running"
                } else {
                    "idle"
                },
                scrub_age(s)
            )
        } else {
            "NOT reachable".into()
        };
        outln!("scrub {:<16} {line}", s["site"].as_str().unwrap_or("?"));
    }
    Ok(healthy)
}
