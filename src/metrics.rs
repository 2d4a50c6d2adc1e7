//! Prometheus metrics, served as OpenMetrics text at `GET /metrics` on the admin ports (the
//! same bearer token as the rest of the admin API). Names and meanings: docs/operations.md.
//!
//! Traffic (requests, bytes, latency) is counted as it happens; state (objects by health,
//! repair backlog, sites, disks, scrub) is read when scraped.

use std::sync::atomic::AtomicU64;

use crate::worker::Report;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// The content type of the OpenMetrics exposition (served when the scraper accepts it).
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of the classic Prometheus text format (served otherwise).
pub const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The classic Prometheus text format (0.0.4) of an OpenMetrics exposition, for scrapers and
/// tools that do not read OpenMetrics (`promtool check metrics`, older Prometheus): counter
/// families take their samples' `_total` name, and `# UNIT` and `# EOF` go.
pub fn text_format(openmetrics: &str) -> String {
    let mut counters = std::collections::HashSet::new();
    for l in openmetrics.lines() {
        if let Some(name) = l
            .strip_prefix("# TYPE ")
            .and_then(|r| r.strip_suffix(" counter"))
        {
            counters.insert(name);
        }
    }
    let mut out = String::with_capacity(openmetrics.len());
    for l in openmetrics.lines() {
        if l.starts_with("# UNIT ") || l == "# EOF" {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| l.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((p, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                if counters.contains(name) {
                    out.push_str(&format!("{p}{name}_total {tail}"));
                } else {
                    out.push_str(l);
                }
            }
            None => out.push_str(l),
        }
        out.push('\n');
    }
    out
}

/// An S3 request's operation and HTTP status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The S3 operation (`PutObject`), or `none` when the request was refused before one was
    /// chosen (authentication, an unsupported operation, a malformed request).
    pub op: &'static str,
    /// HTTP status code.
    pub status: u16,
}

/// What lifecycle did to a version or an upload.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LifecycleLabels {
    /// `expired` (a current version), `noncurrent_removed`, `marker_removed`,
    /// `upload_aborted`, `protected` (due but under object lock: left), `failed`.
    pub action: &'static str,
}

/// Why a request was refused before it reached an operation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// `anonymous`, `sigv2`, `unsigned_header`, `wrong_region`, ... (see `gateway::guard`).
    pub reason: &'static str,
}

/// An S3 operation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    /// The S3 operation.
    pub op: &'static str,
}

/// Objects in one health state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HealthLabels {
    /// `whole`, `degraded` (some shards missing, readable) or `unreadable`.
    pub health: &'static str,
}

/// One bucket.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BucketLabels {
    /// Bucket name.
    pub bucket: String,
}

/// One site (and its node).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SiteLabels {
    /// Site name.
    pub site: String,
}

/// One disk of one site.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DiskLabels {
    /// Site name.
    pub site: String,
    /// Disk id.
    pub disk: u32,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// A node's state as the gauges show it (the gateway reads it over QUIC, a node from its
/// store).
#[derive(Clone, Debug, Default)]
pub struct SiteFacts {
    /// Site name.
    pub site: String,
    /// The node answered.
    pub reachable: bool,
    /// Shards stored.
    pub shards: Option<u64>,
    /// (disk id, bytes, free bytes).
    pub disks: Vec<(u32, u64, u64)>,
    /// (last complete pass ms, in progress, findings, quarantined).
    pub scrub: Option<(u64, bool, u64, u64)>,
    /// The last shard write to the site failed for lack of space (as the gateway saw it; None
    /// where it is not judged, at a node).
    pub disk_full: Option<bool>,
}

/// Gauges about sites: reachability, disks, shards, scrub. Shared by both roles.
#[derive(Debug, Default)]
pub struct SiteGauges {
    up: Family<SiteLabels, Gauge>,
    shards: Family<SiteLabels, Gauge>,
    disk_size: Family<DiskLabels, Gauge>,
    disk_free: Family<DiskLabels, Gauge>,
    scrub_running: Family<SiteLabels, Gauge>,
    scrub_last: Family<SiteLabels, FloatGauge>,
    findings: Family<SiteLabels, Gauge>,
    quarantined: Family<SiteLabels, Gauge>,
    disk_full: Family<SiteLabels, Gauge>,
}

fn as_gauge(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl SiteGauges {
    fn register(&self, r: &mut Registry) {
        r.register(
            "exclave_site_up",
            "The site's node answered",
            self.up.clone(),
        );
        r.register(
            "exclave_site_shards",
            "Shards stored at the site",
            self.shards.clone(),
        );
        r.register_with_unit(
            "exclave_disk_size",
            "Size of the file system of a data directory",
            Unit::Bytes,
            self.disk_size.clone(),
        );
        r.register_with_unit(
            "exclave_disk_free",
            "Free space on the file system of a data directory",
            Unit::Bytes,
            self.disk_free.clone(),
        );
        r.register(
            "exclave_scrub_running",
            "A scrub pass is under way at the site",
            self.scrub_running.clone(),
        );
        r.register_with_unit(
            "exclave_scrub_last_complete_timestamp",
            "When the site's last full scrub pass finished (0: never)",
            Unit::Seconds,
            self.scrub_last.clone(),
        );
        r.register(
            "exclave_scrub_findings",
            "Bad shards found by scrub and not yet collected for repair",
            self.findings.clone(),
        );
        r.register(
            "exclave_quarantined_shards",
            "Entries in the site's quarantine ledger",
            self.quarantined.clone(),
        );
        r.register(
            "exclave_site_disk_full",
            "Gateway: the last shard write to the site failed for lack of space (1) or succeeded (0)",
            self.disk_full.clone(),
        );
    }

    /// Replaces every site gauge with `facts`.
    pub fn set(&self, facts: &[SiteFacts]) {
        for f in [
            &self.up,
            &self.shards,
            &self.scrub_running,
            &self.findings,
            &self.quarantined,
            &self.disk_full,
        ] {
            f.clear();
        }
        self.scrub_last.clear();
        self.disk_size.clear();
        self.disk_free.clear();
        for s in facts {
            let site = SiteLabels {
                site: s.site.clone(),
            };
            self.up.get_or_create(&site).set(i64::from(s.reachable));
            if let Some(full) = s.disk_full {
                self.disk_full.get_or_create(&site).set(i64::from(full));
            }
            if let Some(n) = s.shards {
                self.shards.get_or_create(&site).set(as_gauge(n));
            }
            for &(disk, size, free) in &s.disks {
                let l = DiskLabels {
                    site: s.site.clone(),
                    disk,
                };
                self.disk_size.get_or_create(&l).set(as_gauge(size));
                self.disk_free.get_or_create(&l).set(as_gauge(free));
            }
            if let Some((last_ms, running, findings, quarantined)) = s.scrub {
                self.scrub_running
                    .get_or_create(&site)
                    .set(i64::from(running));
                self.scrub_last
                    .get_or_create(&site)
                    .set(last_ms as f64 / 1000.0);
                self.findings.get_or_create(&site).set(as_gauge(findings));
                self.quarantined
                    .get_or_create(&site)
                    .set(as_gauge(quarantined));
            }
        }
    }
}

/// The gateway's metrics.
#[derive(Debug)]
pub struct GatewayMetrics {
    registry: Registry,
    /// S3 requests by operation and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Time from a request's arrival to the end of its response body.
    pub duration: Family<OpLabels, Histogram>,
    /// Object and part payload bytes received (after aws-chunked decoding).
    pub received: Counter,
    /// Response body bytes sent.
    pub sent: Counter,
    /// S3 requests refused at the gate (before `s3s` saw them), by reason.
    pub refused: Family<RefusalLabels, Counter>,
    /// Connections closed because a request body stopped arriving for longer than the body
    /// idle timeout.
    pub body_stalls: Counter,
    /// S3 requests arrived and not yet answered to the end of their body (repair slows down
    /// while there are any).
    pub in_flight: Gauge,
    /// What lifecycle did, by action.
    pub lifecycle: Family<LifecycleLabels, Counter>,
    /// Keys lifecycle has weighed.
    pub lifecycle_scanned: Counter,
    objects: Family<HealthLabels, Gauge>,
    bucket_objects: Family<BucketLabels, Gauge>,
    bucket_bytes: Family<BucketLabels, Gauge>,
    backlog: Gauge,
    withdrawals: Gauge,
    unrebuildable: Gauge,
    /// Site gauges (read over QUIC at scrape time).
    pub sites: SiteGauges,
    peer_rtt: Family<SiteLabels, FloatGauge>,
    peer_sent: Family<SiteLabels, Gauge>,
    peer_lost: Family<SiteLabels, Gauge>,
    peer_mtu: Family<SiteLabels, Gauge>,
    workers: WorkerGauges,
    /// One scrape refreshes the state gauges at a time.
    pub(crate) scrape: tokio::sync::Mutex<()>,
}

fn latency_histogram() -> Histogram {
    // 1 ms .. about 65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The state a scrape shows: objects by health, per bucket, repair backlog, peers.
#[derive(Debug, Default)]
pub struct GatewayState {
    /// Live objects per bucket: (bucket, objects, bytes).
    pub buckets: Vec<(String, u64, u64)>,
    /// Objects with shards missing, still readable.
    pub degraded: u64,
    /// Objects with more than m shards missing.
    pub unreadable: u64,
    /// Object versions waiting for repair.
    pub backlog: u64,
    /// Failed writes not yet withdrawn from every node.
    pub withdrawals: u64,
    /// Object versions repair gave up on (too few good blocks left at sites that all
    /// answered).
    pub unrebuildable: u64,
    /// Per node connection: (site, round-trip time, packets sent, packets lost), for
    /// connections that are open.
    pub peers: Vec<(String, std::time::Duration, u64, u64, u16)>,
}

impl GatewayMetrics {
    /// A fresh set, registered.
    pub fn new() -> Self {
        let mut m = Self {
            registry: Registry::default(),
            requests: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
            received: Counter::default(),
            in_flight: Gauge::default(),
            lifecycle: Family::default(),
            lifecycle_scanned: Counter::default(),
            refused: Family::default(),
            body_stalls: Counter::default(),
            sent: Counter::default(),
            objects: Family::default(),
            bucket_objects: Family::default(),
            bucket_bytes: Family::default(),
            backlog: Gauge::default(),
            withdrawals: Gauge::default(),
            unrebuildable: Gauge::default(),
            sites: SiteGauges::default(),
            peer_rtt: Family::default(),
            peer_sent: Family::default(),
            peer_lost: Family::default(),
            peer_mtu: Family::default(),
            workers: WorkerGauges::default(),
            scrape: tokio::sync::Mutex::new(()),
        };
        let r = &mut m.registry;
        m.workers.register(r);
        r.register(
            "exclave_s3_requests",
            "S3 requests by operation and HTTP status",
            m.requests.clone(),
        );
        r.register(
            "exclave_s3_requests_in_flight",
            "S3 requests being served",
            m.in_flight.clone(),
        );
        r.register_with_unit(
            "exclave_s3_request_duration",
            "S3 request latency, from arrival to the end of the response body",
            Unit::Seconds,
            m.duration.clone(),
        );
        r.register_with_unit(
            "exclave_s3_received",
            "S3 object and part payload bytes received (after aws-chunked decoding)",
            Unit::Bytes,
            m.received.clone(),
        );
        r.register_with_unit(
            "exclave_s3_sent",
            "S3 response body bytes sent",
            Unit::Bytes,
            m.sent.clone(),
        );
        r.register(
            "exclave_s3_refused",
            "S3 requests refused before they reached an operation (no or unusable SigV4 \
             authentication), by reason",
            m.refused.clone(),
        );
        r.register(
            "exclave_s3_body_stalls",
            "S3 request bodies that stopped arriving for longer than the idle timeout (the \
             connection is closed)",
            m.body_stalls.clone(),
        );
        r.register(
            "exclave_lifecycle_actions",
            "Versions and uploads lifecycle rules acted on, by action (protected: due but under \
             object lock, left)",
            m.lifecycle.clone(),
        );
        r.register(
            "exclave_lifecycle_keys_scanned",
            "Keys the lifecycle worker weighed against its buckets' rules",
            m.lifecycle_scanned.clone(),
        );
        r.register(
            "exclave_objects",
            "Current objects by health (from the repair backlog)",
            m.objects.clone(),
        );
        r.register(
            "exclave_bucket_objects",
            "Current objects per bucket",
            m.bucket_objects.clone(),
        );
        r.register_with_unit(
            "exclave_bucket_stored",
            "Plaintext bytes of the current objects per bucket",
            Unit::Bytes,
            m.bucket_bytes.clone(),
        );
        r.register(
            "exclave_repair_backlog",
            "Object versions with shards waiting to be rebuilt",
            m.backlog.clone(),
        );
        r.register(
            "exclave_withdrawals_pending",
            "Failed writes some node has not yet confirmed withdrawing",
            m.withdrawals.clone(),
        );
        r.register(
            "exclave_repair_unrebuildable",
            "Object versions repair gave up on: too few good blocks left at sites that all answered",
            m.unrebuildable.clone(),
        );
        m.sites.register(r);
        r.register_with_unit(
            "exclave_peer_rtt",
            "QUIC round-trip time to the site's node",
            Unit::Seconds,
            m.peer_rtt.clone(),
        );
        r.register(
            "exclave_peer_sent_packets",
            "QUIC packets sent to the site's node on the current connection",
            m.peer_sent.clone(),
        );
        r.register(
            "exclave_peer_lost_packets",
            "QUIC packets to the site's node lost on the current connection",
            m.peer_lost.clone(),
        );
        r.register_with_unit(
            "exclave_peer_mtu",
            "UDP payload size path MTU discovery reached to the site's node",
            Unit::Bytes,
            m.peer_mtu.clone(),
        );
        m
    }

    /// Records one finished S3 request.
    pub fn record(&self, op: &'static str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels { op, status })
            .inc();
        self.duration
            .get_or_create(&OpLabels { op })
            .observe(seconds);
    }

    /// Sets the state gauges and renders everything.
    pub fn render(&self, state: &GatewayState, sites: &[SiteFacts], workers: &[Report]) -> String {
        self.workers.set(workers);
        let total: u64 = state.buckets.iter().map(|b| b.1).sum();
        let whole = total.saturating_sub(state.degraded + state.unreadable);
        for (health, n) in [
            ("whole", whole),
            ("degraded", state.degraded),
            ("unreadable", state.unreadable),
        ] {
            self.objects
                .get_or_create(&HealthLabels { health })
                .set(as_gauge(n));
        }
        self.bucket_objects.clear();
        self.bucket_bytes.clear();
        for (bucket, n, bytes) in &state.buckets {
            let l = BucketLabels {
                bucket: bucket.clone(),
            };
            self.bucket_objects.get_or_create(&l).set(as_gauge(*n));
            self.bucket_bytes.get_or_create(&l).set(as_gauge(*bytes));
        }
        self.backlog.set(as_gauge(state.backlog));
        self.withdrawals.set(as_gauge(state.withdrawals));
        self.unrebuildable.set(as_gauge(state.unrebuildable));
        self.sites.set(sites);
        self.peer_rtt.clear();
        self.peer_sent.clear();
        self.peer_lost.clear();
        self.peer_mtu.clear();
        for (site, rtt, sent, lost, mtu) in &state.peers {
            let l = SiteLabels { site: site.clone() };
            self.peer_rtt.get_or_create(&l).set(rtt.as_secs_f64());
            self.peer_sent.get_or_create(&l).set(as_gauge(*sent));
            self.peer_lost.get_or_create(&l).set(as_gauge(*lost));
            self.peer_mtu.get_or_create(&l).set(i64::from(*mtu));
        }
        encode(&self.registry)
    }
}

/// Labels of a background worker's metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkerLabels {
    /// The worker's name (`crate::worker`).
    pub worker: String,
}

/// What the background workers did, read from their reports at scrape time.
#[derive(Debug, Default)]
pub struct WorkerGauges {
    rounds: Family<WorkerLabels, Counter>,
    failures: Family<WorkerLabels, Counter>,
    last_ok: Family<WorkerLabels, Gauge>,
    working: Family<WorkerLabels, Gauge>,
}

impl WorkerGauges {
    fn register(&self, r: &mut Registry) {
        r.register(
            "exclave_worker_rounds",
            "Rounds a background worker ran, by worker",
            self.rounds.clone(),
        );
        r.register(
            "exclave_worker_failures",
            "Rounds of a background worker that failed, by worker",
            self.failures.clone(),
        );
        r.register_with_unit(
            "exclave_worker_last_success_timestamp",
            "Unix time when a worker's last round that did not fail ended (0: none yet)",
            Unit::Seconds,
            self.last_ok.clone(),
        );
        r.register(
            "exclave_worker_working",
            "1 while a worker is in a round, else 0",
            self.working.clone(),
        );
    }

    /// Brings the families up to the workers' reports.
    pub fn set(&self, reports: &[Report]) {
        for w in reports {
            let l = WorkerLabels {
                worker: w.name.to_owned(),
            };
            let rounds = self.rounds.get_or_create(&l);
            rounds.inc_by(w.rounds.saturating_sub(rounds.get()));
            let failures = self.failures.get_or_create(&l);
            failures.inc_by(w.failures.saturating_sub(failures.get()));
            self.last_ok
                .get_or_create(&l)
                .set(as_gauge(w.last_ok_ms.unwrap_or(0) / 1000));
            self.working
                .get_or_create(&l)
                .set(i64::from(w.state == "working"));
        }
    }
}

/// A node's metrics: its own site gauges and scrub work.
#[derive(Debug)]
pub struct NodeMetrics {
    registry: Registry,
    sites: SiteGauges,
    scrubbed_shards: Counter,
    scrubbed_bytes: Counter,
    scrub_bad: Counter,
    workers: WorkerGauges,
    /// One scrape at a time.
    pub(crate) scrape: std::sync::Mutex<()>,
}

impl Default for NodeMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl NodeMetrics {
    /// A fresh set, registered.
    pub fn new() -> Self {
        let mut m = Self {
            registry: Registry::default(),
            sites: SiteGauges::default(),
            scrubbed_shards: Counter::default(),
            scrubbed_bytes: Counter::default(),
            scrub_bad: Counter::default(),
            workers: WorkerGauges::default(),
            scrape: std::sync::Mutex::new(()),
        };
        let r = &mut m.registry;
        m.sites.register(r);
        m.workers.register(r);
        r.register(
            "exclave_scrub_checked_shards",
            "Shards checked by scrub since the node started",
            m.scrubbed_shards.clone(),
        );
        r.register_with_unit(
            "exclave_scrub_checked",
            "Shard bytes checked by scrub since the node started",
            Unit::Bytes,
            m.scrubbed_bytes.clone(),
        );
        r.register(
            "exclave_scrub_bad_shards",
            "Bad shards found (and quarantined) by scrub since the node started",
            m.scrub_bad.clone(),
        );
        m
    }

    /// Counts one scrub step.
    pub fn scrubbed(&self, shards: u64, bytes: u64, bad: u64) {
        self.scrubbed_shards.inc_by(shards);
        self.scrubbed_bytes.inc_by(bytes);
        self.scrub_bad.inc_by(bad);
    }

    /// Sets the site and worker gauges and renders everything.
    pub fn render(&self, facts: &SiteFacts, workers: &[Report]) -> String {
        let _one = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        self.sites.set(std::slice::from_ref(facts));
        self.workers.set(workers);
        encode(&self.registry)
    }
}

fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}
