//! Operations: Prometheus metrics scraped from a running cluster and checked by `promtool`,
//! request ids, and logs at TRACE searched for every secret the run used.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::operation::RequestId as _;
use aws_sdk_s3::primitives::ByteStream;

use crate::sigv4::{self, Signer};
use crate::support::{Cluster, Rng, run, started_cluster, started_cluster_logging, within};

/// GET `path` of an admin API with a bearer token: (status, body).
pub(crate) fn admin_get(addr: SocketAddr, path: &str, token: &str) -> (u16, String) {
    admin_get_accepting(addr, path, token, "*/*")
}

/// GET `path` with a bearer token and an `Accept` header: (status, body).
fn admin_get_accepting(addr: SocketAddr, path: &str, token: &str, accept: &str) -> (u16, String) {
    let (status, text) = sigv4::send(
        addr,
        "GET",
        path,
        &[
            ("host".into(), addr.to_string()),
            ("authorization".into(), format!("Bearer {token}")),
            ("accept".into(), accept.into()),
        ],
        b"",
    );
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// `promtool check metrics` on `text`: its exit status must be 0 and it must report nothing.
fn promtool_check(dir: &std::path::Path, name: &str, text: &str) {
    let found = Command::new("bash")
        .args(["-c", "command -v promtool"])
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "promtool is missing: install Debian's prometheus package (./check does)"
    );
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    let out = run(
        Command::new("bash")
            .arg("-c")
            .arg(format!("promtool check metrics < {}", file.display())),
        Duration::from_secs(30),
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics on {name} ({}): {said}\n--- exposition ---\n{text}",
        out.status
    );
}

/// The value of the sample named exactly `series` (name and labels as exposed).
pub(crate) fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn samples_named<'a>(text: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> {
    text.lines()
        .filter(move |l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_are_valid_prometheus_text_and_count_what_happened() {
    let cluster = started_cluster("").await;
    let work = tempfile::tempdir().unwrap();
    let s3 = cluster.s3_client(1);
    let body = |n: usize| ByteStream::from(Rng::new(n as u64).bytes(n));
    within(120, async {
        s3.create_bucket().bucket("metered").send().await.unwrap();
        let put = s3
            .put_object()
            .bucket("metered")
            .key("a")
            .body(body(1000))
            .send()
            .await
            .unwrap();
        let id = put.request_id().expect("x-amz-request-id");
        assert!(
            id.len() == 16 && id.chars().all(|c| c.is_ascii_hexdigit()),
            "request id {id:?}"
        );
        s3.put_object()
            .bucket("metered")
            .key("b")
            .body(body(300 << 10))
            .send()
            .await
            .unwrap();
        let got = s3
            .get_object()
            .bucket("metered")
            .key("a")
            .send()
            .await
            .unwrap();
        assert_eq!(got.body.collect().await.unwrap().into_bytes().len(), 1000);
        assert!(
            s3.get_object()
                .bucket("metered")
                .key("nothing")
                .send()
                .await
                .is_err()
        );
        s3.head_object()
            .bucket("metered")
            .key("b")
            .send()
            .await
            .unwrap();
    })
    .await;
    // Refused before any operation is chosen: unsigned.
    let addr = cluster.s3_addr();
    let (status, _) = sigv4::send(
        addr,
        "GET",
        "/metered/a",
        &[("host".into(), addr.to_string())],
        b"",
    );
    assert_eq!(status, 403);

    let (admin, token) = cluster.gateway_admin();
    let (status, _) = tokio::task::block_in_place(|| admin_get(admin, "/metrics", "wrong-token"));
    assert_eq!(status, 401, "metrics need the admin token");
    let (status, text) = tokio::task::block_in_place(|| admin_get(admin, "/metrics", &token));
    assert_eq!(status, 200, "{text}");
    tokio::task::block_in_place(|| promtool_check(work.path(), "gateway.prom", &text));
    // A scraper that asks for OpenMetrics gets it.
    let (status, om) = tokio::task::block_in_place(|| {
        admin_get_accepting(
            admin,
            "/metrics",
            &token,
            "application/openmetrics-text;version=1.0.0",
        )
    });
    assert_eq!(status, 200);
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(om.contains("# TYPE exclave_s3_requests counter"), "{om}");

    let req = |op: &str, status: u16| {
        sample(
            &text,
            &format!("exclave_s3_requests_total{{op=\"{op}\",status=\"{status}\"}}"),
        )
    };
    assert_eq!(req("CreateBucket", 200), Some(1.0), "{text}");
    assert_eq!(req("PutObject", 200), Some(2.0), "{text}");
    assert_eq!(req("GetObject", 200), Some(1.0), "{text}");
    assert_eq!(req("GetObject", 404), Some(1.0), "{text}");
    assert_eq!(req("HeadObject", 200), Some(1.0), "{text}");
    assert_eq!(req("none", 403), Some(1.0), "{text}");
    let count = sample(
        &text,
        "exclave_s3_request_duration_seconds_count{op=\"PutObject\"}",
    );
    assert_eq!(count, Some(2.0), "{text}");
    let received = sample(&text, "exclave_s3_received_bytes_total").unwrap();
    assert!(
        received >= (1000 + (300 << 10)) as f64,
        "received {received}"
    );
    let sent = sample(&text, "exclave_s3_sent_bytes_total").unwrap();
    assert!(sent >= 1000.0, "sent {sent}");
    assert_eq!(
        sample(&text, "exclave_objects{health=\"whole\"}"),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, "exclave_bucket_objects{bucket=\"metered\"}"),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, "exclave_bucket_stored_bytes{bucket=\"metered\"}"),
        Some((1000 + (300 << 10)) as f64)
    );
    assert_eq!(sample(&text, "exclave_repair_backlog"), Some(0.0));
    assert_eq!(sample(&text, "exclave_repair_unrebuildable"), Some(0.0));
    assert_eq!(sample(&text, "exclave_withdrawals_pending"), Some(0.0));
    // Every S3 request answered: none in flight (the scrape is on the admin port).
    assert_eq!(sample(&text, "exclave_s3_requests_in_flight"), Some(0.0));
    for site in &cluster.sites {
        let l = format!("{{site=\"{site}\"}}");
        assert_eq!(sample(&text, &format!("exclave_site_up{l}")), Some(1.0));
        let rtt = sample(&text, &format!("exclave_peer_rtt_seconds{l}")).unwrap();
        assert!(rtt > 0.0 && rtt < 1.0, "rtt {rtt} to {site}");
        assert!(sample(&text, &format!("exclave_site_shards{l}")).unwrap() >= 1.0);
    }
    assert_eq!(samples_named(&text, "exclave_disk_free_bytes").count(), 5);

    // A node's own exposition.
    let token = cluster.node_admin_token(0);
    let (status, text) =
        tokio::task::block_in_place(|| admin_get(cluster.node_addr(0), "/metrics", &token));
    assert_eq!(status, 200, "{text}");
    tokio::task::block_in_place(|| promtool_check(work.path(), "node.prom", &text));
    assert_eq!(sample(&text, "exclave_site_up{site=\"home\"}"), Some(1.0));
    assert!(sample(&text, "exclave_site_shards{site=\"home\"}").unwrap() >= 1.0);
    let disks: Vec<f64> = samples_named(&text, "exclave_disk_size_bytes")
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert!(
        !disks.is_empty() && disks.iter().all(|&b| b > 0.0),
        "{text}"
    );
    assert!(sample(&text, "exclave_scrub_checked_shards_total").is_some());
}

/// Collects every SigV4 signature the SDK sends.
#[derive(Debug, Clone, Default)]
struct Signatures(Arc<Mutex<Vec<String>>>);

impl aws_sdk_s3::config::Intercept for Signatures {
    fn name(&self) -> &'static str {
        "signatures"
    }

    fn read_before_transmit(
        &self,
        ctx: &aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _rc: &aws_sdk_s3::config::RuntimeComponents,
        _cfg: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        if let Some(auth) = ctx.request().headers().get("authorization")
            && let Some((_, sig)) = auth.split_once("Signature=")
        {
            self.0.lock().unwrap().push(sig.to_owned());
        }
        Ok(())
    }
}

/// Every file under `dir` whose name ends with `exclaved.log`, concatenated.
fn logs_under(dir: &std::path::Path) -> String {
    let mut out = String::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with("exclaved.log") {
                out.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
            }
        }
    }
    out
}

/// The base64 body of a PEM private key, as lines of 64 characters.
fn pem_lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 32)
        .map(str::to_owned)
        .collect()
}

/// Object names are for the gateway only: they are searched for in the logs too.
const MULTI: &str = "parcels/tallinn-kesklinn-0001.xml";
const UNWRITABLE: &str = "parcels/tartu-annelinn-0042.xml";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_secret_reaches_the_logs_at_trace() {
    let mut cluster: Cluster = started_cluster_logging("", "trace").await;
    let (access, secret) = cluster.credentials();
    let signatures = Signatures::default();
    let s3 = {
        use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(format!("http://{}", cluster.s3_addr()))
            .credentials_provider(Credentials::new(&access, &secret, None, None, "test"))
            .force_path_style(true)
            .interceptor(signatures.clone())
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    };
    let mut rng = Rng::new(7);
    let canary = b"LAND-REGISTRY-CANARY-5f1c0e".repeat(40);
    let ssec_key = {
        use base64_simd::STANDARD as B64;
        use md5::Digest as _;
        let raw: Vec<u8> = rng.bytes(32);
        (
            B64.encode_to_string(&raw),
            B64.encode_to_string(md5::Md5::digest(&raw)),
        )
    };
    let put_id = within(240, async {
        s3.create_bucket().bucket("traced").send().await.unwrap();
        for (key, data) in [
            ("small", canary.clone()),
            ("large", [canary.clone(), rng.bytes(1 << 20)].concat()),
        ] {
            s3.put_object()
                .bucket("traced")
                .key(key)
                .body(ByteStream::from(data.clone()))
                .send()
                .await
                .unwrap();
            let got = s3
                .get_object()
                .bucket("traced")
                .key(key)
                .send()
                .await
                .unwrap();
            assert_eq!(got.body.collect().await.unwrap().into_bytes(), data);
        }
        let up = s3
            .create_multipart_upload()
            .bucket("traced")
            .key(MULTI)
            .send()
            .await
            .unwrap();
        let id = up.upload_id().unwrap();
        let mut parts = Vec::new();
        for n in 1..=2 {
            let p = s3
                .upload_part()
                .bucket("traced")
                .key(MULTI)
                .upload_id(id)
                .part_number(n)
                .body(ByteStream::from(rng.bytes(5 << 20)))
                .send()
                .await
                .unwrap();
            parts.push(
                aws_sdk_s3::types::CompletedPart::builder()
                    .part_number(n)
                    .e_tag(p.e_tag().unwrap())
                    .build(),
            );
        }
        s3.complete_multipart_upload()
            .bucket("traced")
            .key(MULTI)
            .upload_id(id)
            .multipart_upload(
                aws_sdk_s3::types::CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .unwrap();
        // An object under a customer's key (SSE-C): the key must be in no log.
        s3.put_object()
            .bucket("traced")
            .key("sealed")
            .sse_customer_algorithm("AES256")
            .sse_customer_key(&ssec_key.0)
            .sse_customer_key_md5(&ssec_key.1)
            .body(ByteStream::from(canary.clone()))
            .send()
            .await
            .unwrap();
        let got = s3
            .get_object()
            .bucket("traced")
            .key("sealed")
            .sse_customer_algorithm("AES256")
            .sse_customer_key(&ssec_key.0)
            .sse_customer_key_md5(&ssec_key.1)
            .send()
            .await
            .unwrap();
        assert_eq!(got.body.collect().await.unwrap().into_bytes(), canary);
        s3.list_objects_v2().bucket("traced").send().await.unwrap();
        s3.delete_object()
            .bucket("traced")
            .key("small")
            .send()
            .await
            .unwrap();
        let put = s3
            .put_object()
            .bucket("traced")
            .key("traced")
            .body(ByteStream::from(rng.bytes(200 << 10)))
            .send()
            .await
            .unwrap();
        put.request_id().unwrap().to_owned()
    })
    .await;

    // Hand-signed requests: a good one, a forged one, a presigned URL.
    let addr = cluster.s3_addr();
    let host = addr.to_string();
    let signer = Signer::new(access.clone(), secret.clone());
    let date = sigv4::amz_date(0);
    let empty = sigv4::sha256_hex(b"");
    let good = signer.sign(&host, "GET", "/traced/large", &[], &[], &empty, &date);
    let (status, _) = tokio::task::block_in_place(|| {
        sigv4::send(addr, "GET", "/traced/large", &good.headers, b"")
    });
    assert_eq!(status, 200);
    let forger = Signer::new(access.clone(), "not-the-secret-at-all-0123456789abcdef");
    let forged = forger.sign(&host, "GET", "/traced/large", &[], &[], &empty, &date);
    let (status, _) = tokio::task::block_in_place(|| {
        sigv4::send(addr, "GET", "/traced/large", &forged.headers, b"")
    });
    assert_eq!(status, 403);
    // What the forger should have sent: must not be revealed either.
    let would_be = signer.sign(&host, "GET", "/traced/large", &[], &[], &empty, &date);
    let presigned = signer.presign(&host, "GET", "/traced/large", 300, &date);
    let (status, _) = tokio::task::block_in_place(|| {
        sigv4::send(
            addr,
            "GET",
            &presigned,
            &[("host".into(), host.clone())],
            b"",
        )
    });
    assert_eq!(status, 200);

    // The admin API with its token.
    let (admin, token) = cluster.gateway_admin();
    let (status, _) = tokio::task::block_in_place(|| admin_get(admin, "/v1/status", &token));
    assert_eq!(status, 200);
    let node_token = cluster.node_admin_token(1);
    let (status, _) =
        tokio::task::block_in_place(|| admin_get(cluster.node_addr(1), "/v1/status", &node_token));
    assert_eq!(status, 200);

    // Let the last lines reach the files.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut logs = logs_under(&cluster.root());
    assert!(
        logs.len() > 100_000 && logs.contains("TRACE"),
        "the run did not log at TRACE ({} bytes)",
        logs.len()
    );
    assert!(
        logs.lines().any(|l| l.contains(&put_id)),
        "no log line carries request {put_id}"
    );
    // A request that logs on its way: a PUT that cannot reach its quorum.
    let failed_id = {
        tokio::task::block_in_place(|| {
            for i in 2..5 {
                cluster.kill_node(i);
            }
        });
        let err = tokio::time::timeout(
            Duration::from_secs(60),
            s3.put_object()
                .bucket("traced")
                .key(UNWRITABLE)
                .body(ByteStream::from(rng.bytes(300 << 10)))
                .send(),
        )
        .await
        .unwrap()
        .expect_err("a PUT with 2 of 5 sites up");
        tokio::time::sleep(Duration::from_millis(500)).await;
        logs = logs_under(&cluster.root());
        err.request_id().unwrap().to_owned()
    };
    let warned: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("quorum not reached"))
        .collect();
    assert!(!warned.is_empty(), "the failed PUT logged nothing");
    assert!(
        warned.iter().all(|l| l.contains("\"name\":\"s3\"")),
        "a request's line without its id: {warned:?}"
    );
    assert!(
        warned.iter().any(|l| l.contains(&failed_id)),
        "request {failed_id} is not named: {warned:?}"
    );

    let mut secrets: Vec<(String, String)> = vec![
        ("S3 secret key".into(), secret.clone()),
        ("SSE-C customer key".into(), ssec_key.0.clone()),
        ("hand signature".into(), good.signature.clone()),
        ("forged signature".into(), forged.signature.clone()),
        ("expected signature".into(), would_be.signature.clone()),
        ("admin token".into(), token.clone()),
        ("node admin token".into(), node_token.clone()),
    ];
    let presigned_sig = presigned
        .split("X-Amz-Signature=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    secrets.push(("presigned signature".into(), presigned_sig));
    for s in signatures.0.lock().unwrap().iter() {
        secrets.push(("SDK signature".into(), s.clone()));
    }
    let gw = cluster.root().join("gateway");
    for file in ["master.key", "manifest.key"] {
        let text = std::fs::read_to_string(gw.join(file)).unwrap();
        secrets.push((file.into(), text.trim().to_owned()));
    }
    let sealed = std::fs::read_to_string(gw.join("s3-credentials.toml")).unwrap();
    for line in sealed.lines().filter(|l| l.starts_with("secret_sealed")) {
        let v = line.split('"').nth(1).unwrap().to_owned();
        secrets.push(("sealed S3 secret".into(), v));
    }
    for line in pem_lines(&gw.join("gateway.key")) {
        secrets.push(("gateway TLS key".into(), line));
    }
    for site in &cluster.sites {
        for line in pem_lines(&cluster.root().join("sites").join(site).join("node.key")) {
            secrets.push((format!("{site} TLS key"), line));
        }
    }
    secrets.push(("object name".into(), MULTI.into()));
    secrets.push(("object name".into(), UNWRITABLE.into()));
    secrets.push((
        "object bytes".into(),
        String::from_utf8(canary[..27].to_vec()).unwrap(),
    ));
    assert!(secrets.len() > 20, "{} secrets", secrets.len());
    let mut hits = Vec::new();
    for (what, s) in &secrets {
        assert!(s.len() >= 16, "{what} is too short to search for");
        if logs.contains(s.as_str()) {
            hits.push(what.clone());
        }
    }
    println!(
        "searched {} bytes of TRACE logs for {} secrets: {} hits",
        logs.len(),
        secrets.len(),
        hits.len()
    );
    assert!(hits.is_empty(), "secrets in the logs: {hits:?}");
}

#[test]
fn exclaved_dev_keeps_serving_when_nobody_reads_its_stdout() {
    /// Kills the process however the test ends.
    struct Reaped(std::process::Child);
    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let port = crate::support::Port::tcp();
    let addr = port.addr();
    let log = dir.path().join("dev.log");
    // READY=1 comes over sd_notify after the banner was written (or failed to be).
    let notify_path = dir.path().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut dev = Command::new(crate::support::bin("exclaved"));
    dev.args(["dev", "--dir"])
        .arg(dir.path().join("dev"))
        .args(["--listen", &addr.to_string()])
        .env("NOTIFY_SOCKET", &notify_path);
    let mut child = Reaped(
        crate::support::handing(&dev, &[&port])
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    // The reader goes away before the banner is written: the write meets a broken pipe.
    drop(child.0.stdout.take());
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).unwrap_or_else(|e| {
        panic!(
            "no READY=1 from exclaved dev ({e}): {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    assert_eq!(&buf[..n], b"READY=1");
    let exited = child.0.try_wait().unwrap();
    assert!(
        exited.is_none() && crate::support::serving(addr),
        "exclaved dev exited ({exited:?}): {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

/// Issue 20, item 7: `exclave ... | head` ends quietly when `head` goes away, as Unix tools do.
#[test]
fn exclave_ends_quietly_when_its_reader_goes_away() {
    use std::process::Stdio;
    let layout =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/layout-5-sites.toml");
    for _ in 0..5 {
        let mut child = Command::new(crate::support::bin("exclave"))
            .args(["layout", "check", "--file"])
            .arg(&layout)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before the command prints its first line.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{err}");
        assert!(out.status.success(), "{:?}: {err}", out.status);
    }
}

/// Issue 20, item 8: with too few sites for the write quorum known to be down, a write is
/// refused at once, with `Retry-After`, instead of after every upload timed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_whose_sites_are_known_down_is_refused_at_once_with_retry_after() {
    within(180, async {
        let mut cluster = started_cluster("").await;
        let s3 = cluster.s3_client(1);
        s3.create_bucket().bucket("quorum").send().await.unwrap();
        // 3+2 on five sites: a write needs four; two SIGKILLed leave three.
        for i in [1, 2] {
            cluster.kill_node(i);
        }
        let put = |key: &'static str| {
            let s3 = s3.clone();
            async move {
                s3.put_object()
                    .bucket("quorum")
                    .key(key)
                    .body(ByteStream::from(vec![1u8; 300_000]))
                    .send()
                    .await
                    .unwrap_err()
            }
        };
        // A write finds the sites gone (a silent connection, or a dial that fails); within
        // the next few, one is refused before its body is used.
        let mut refused = None;
        for key in ["w0", "w1", "w2", "w3"] {
            let err = put(key).await;
            let raw = err.raw_response().unwrap();
            assert_eq!(raw.status().as_u16(), 503);
            if raw.headers().get("retry-after") == Some("5") {
                refused = Some(err);
                break;
            }
        }
        let err = refused.expect("no write was refused at once with Retry-After");
        let raw = err.raw_response().unwrap();
        let text = String::from_utf8_lossy(raw.body().bytes().unwrap()).into_owned();
        assert!(text.contains("3 of the 4 sites"), "{text}");
    })
    .await;
}

/// Issue 20, item 8: `exclaved dev --sites 7` on an existing five-site directory says that the
/// option applies only to a new directory, instead of keeping the old layout silently.
#[test]
fn dev_says_when_its_layout_options_do_not_apply_to_an_existing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let options = |sites: usize| exclave::ops::dev::DevOptions {
        dir: dir.path().join("dev"),
        listen: "127.0.0.1:0".parse().unwrap(),
        sites,
        k: 3,
        m: 2,
        tls: false,
    };
    let first = exclave::ops::dev::prepare(&options(5)).unwrap();
    assert!(first.created && first.notice.is_none());
    let same = exclave::ops::dev::prepare(&options(5)).unwrap();
    assert!(!same.created && same.notice.is_none());
    let other = exclave::ops::dev::prepare(&options(7)).unwrap();
    let notice = other.notice.expect("no notice");
    assert!(
        notice.contains("5 sites at 3+2") && notice.contains("apply only to a new directory"),
        "{notice}"
    );
    assert_eq!(other.node_configs.len(), 5);
}

/// Issue 14: the background workers have names, and every place that shows them uses those
/// names: `exclave workers` (table and `--json`), the gateway's and a node's `/v1/workers`,
/// and the `exclave_worker_*` metrics; each counts its rounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_are_shown_by_name_with_their_rounds() {
    within(180, async {
        let cluster =
            started_cluster("repair_interval_secs = 1\ncheckpoint_interval_secs = 1").await;
        let s3 = cluster.s3_client(3);
        s3.create_bucket().bucket("named").send().await.unwrap();
        s3.put_object()
            .bucket("named")
            .key("deed")
            .body(ByteStream::from(vec![7u8; 5000]))
            .send()
            .await
            .unwrap();
        let cli = |args: &[&str]| cluster.exclave_cli(args, Duration::from_secs(60));
        // The repair and checkpoint workers run a round within a few seconds (the collector's
        // first waits its hour); the checkpoint says what it signed.
        let mut seen = serde_json::Value::Null;
        for _ in 0..60 {
            let out = cli(&["workers", "--json"]);
            assert!(out.status.success(), "{out:?}");
            seen = serde_json::from_slice(&out.stdout).unwrap();
            let rounds = |name: &str| {
                seen["workers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|w| w["name"] == name)
                    .and_then(|w| w["rounds"].as_u64())
            };
            if rounds("repair") >= Some(1) && rounds("checkpoint") >= Some(1) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let names: Vec<&str> = seen["workers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["repair", "checkpoint", "gc", "lifecycle"],
            "{seen:#}"
        );
        assert_eq!(seen["workers"][2]["failures"], 0, "{seen:#}");
        let checkpoint = &seen["workers"][1];
        assert!(checkpoint["rounds"].as_u64() >= Some(1), "{seen:#}");
        assert_eq!(checkpoint["failures"], 0, "{seen:#}");
        assert!(
            checkpoint["last_summary"]
                .as_str()
                .is_some_and(|s| s.starts_with("checkpoint ")),
            "{seen:#}"
        );

        let table = cli(&["workers"]);
        assert!(table.status.success());
        let text = String::from_utf8_lossy(&table.stdout);
        assert!(text.starts_with("WORKER"), "{text}");
        for name in ["repair ", "checkpoint ", "gc ", "lifecycle "] {
            assert!(text.lines().any(|l| l.starts_with(name)), "{text}");
        }

        let (admin, token) = cluster.gateway_admin();
        let (code, metrics) = admin_get(admin, "/metrics", &token);
        assert_eq!(code, 200);
        assert!(
            sample(
                &metrics,
                "exclave_worker_rounds_total{worker=\"checkpoint\"}"
            )
            .is_some_and(|n| n >= 1.0),
            "{metrics}"
        );

        // A node runs its scrub as a worker of that name.
        let node = cluster.node_addr(0);
        let (code, body) = admin_get(node, "/v1/workers", &cluster.node_admin_token(0));
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["workers"][0]["name"], "scrub", "{v:#}");
        assert!(v["workers"][0]["rounds"].as_u64() >= Some(1), "{v:#}");
    })
    .await;
}
