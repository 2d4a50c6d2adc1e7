//! Helpers shared by the benches: the tests' cluster support (clusters of real processes are
//! set up by the same code that the tests use), sizes, deadlines and CPU accounting.
//!
//! Every bench runs whole at a tiny size when `EXCLAVE_BENCH_SMOKE` is set: `./check` runs each
//! that way (`cargo test --benches`), so a bench that cannot set itself up fails CI.

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;

#[allow(
    dead_code,
    unreachable_pub,
    missing_debug_implementations,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]
#[path = "../../tests/it/support.rs"]
pub(crate) mod support;

/// Whether this is a smoke run (tiny sizes, short deadlines).
#[allow(dead_code)]
pub(crate) fn smoke() -> bool {
    std::env::var_os("EXCLAVE_BENCH_SMOKE").is_some()
}

/// `full`, or `tiny` in a smoke run.
#[allow(dead_code)]
pub(crate) fn size<T>(full: T, tiny: T) -> T {
    if smoke() { tiny } else { full }
}

/// How long a bench's measured part may take before it fails (rather than hang).
#[allow(dead_code)]
pub(crate) fn deadline() -> Duration {
    Duration::from_secs(size(1800, 180))
}

/// `f`, failing the bench once it runs past its [`deadline`].
#[allow(dead_code)]
pub(crate) async fn bounded<T>(f: impl Future<Output = T>) -> T {
    support::within(deadline().as_secs(), f).await
}

/// utime + stime of a process, in seconds.
#[allow(dead_code)]
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|u| u.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// A value of an AWS shared-credentials file (`[default]` profile as `exclave init` writes it).
pub(crate) fn credential(text: &str, name: &str) -> String {
    text.lines()
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == name).then(|| v.trim().to_owned())
        })
        .unwrap_or_default()
}

/// An S3 client of `endpoint_url` with the `[default]` credentials in the cluster's
/// `credentials` file under `root` (as `exclave init` and `exclaved dev` write it).
#[allow(dead_code)]
pub(crate) fn s3_client(root: &std::path::Path, endpoint_url: &str) -> aws_sdk_s3::Client {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    let creds = std::fs::read_to_string(root.join("credentials")).unwrap_or_default();
    let field = |name: &str| credential(&creds, name);
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(endpoint_url)
            .credentials_provider(Credentials::new(
                field("aws_access_key_id"),
                field("aws_secret_access_key"),
                None,
                None,
                "bench",
            ))
            .force_path_style(true)
            .build(),
    )
}

/// `POST path` to an admin API; the whole HTTP answer.
#[allow(dead_code)]
pub(crate) fn admin_post(addr: SocketAddr, token: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(deadline())).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// [`load`] for `window`.
#[allow(dead_code)]
pub(crate) async fn load_for(s3: &aws_sdk_s3::Client, tag: &str, window: Duration) -> f64 {
    load(s3, tag, tokio::time::sleep(window)).await
}

/// Two clients PUT and GET 1 MiB objects under `tag/` in bucket `bench` until `until`
/// completes; returns MB/s of PUT + GET bytes.
#[allow(dead_code)]
pub(crate) async fn load(
    s3: &aws_sdk_s3::Client,
    tag: &str,
    until: impl Future<Output = ()>,
) -> f64 {
    let bytes = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..2 {
        let (s3, bytes, stop, tag) = (s3.clone(), bytes.clone(), stop.clone(), tag.to_owned());
        tasks.push(tokio::spawn(async move {
            let body = bytes::Bytes::from(vec![c as u8; 1 << 20]);
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let key = format!("{tag}/{c}/{}", i % 20);
                s3.put_object()
                    .bucket("bench")
                    .key(&key)
                    .body(ByteStream::from(body.clone()))
                    .send()
                    .await
                    .unwrap();
                let out = s3
                    .get_object()
                    .bucket("bench")
                    .key(&key)
                    .send()
                    .await
                    .unwrap();
                let got = out.body.collect().await.unwrap().into_bytes();
                bytes.fetch_add(2 * got.len() as u64, Ordering::SeqCst);
                i += 1;
            }
        }));
    }
    let t = Instant::now();
    until.await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    bytes.load(Ordering::SeqCst) as f64 / t.elapsed().as_secs_f64() / 1e6
}

/// MB/s of one bare quinn stream on loopback between the certificates of the dev cluster in
/// `root` (the gateway's and site 1's), with the transport settings `exclaved dev` writes
/// (`TransportSettings::loopback`): `size` bytes in 1 MiB writes. The baseline of a GET at
/// the speed of the wire.
#[allow(dead_code)]
pub(crate) async fn bare_quinn_mbps(root: &std::path::Path, size: usize) -> f64 {
    bare_stream_mbps(root, size, false).await
}

/// [`bare_quinn_mbps`] with the receiving end passing every chunk on, unchanged, to a
/// loopback TCP connection whose reader takes it into its own buffer: the two legs every
/// byte of a GET crosses (site to gateway over QUIC, gateway to client over TCP) and nothing
/// else, no storage, no crypto beyond QUIC's, no HTTP. The ceiling of a GET on this machine.
#[allow(dead_code)]
pub(crate) async fn bare_relay_mbps(root: &std::path::Path, size: usize) -> f64 {
    bare_stream_mbps(root, size, true).await
}

async fn bare_stream_mbps(root: &std::path::Path, size: usize, relay: bool) -> f64 {
    let gw = root.join("gateway");
    let client_id = exclave::net::Identity::load(
        &root.join("ca.pem"),
        &gw.join("gateway.pem"),
        &gw.join("gateway.key"),
    )
    .unwrap();
    let site = root.join("sites/site-1");
    let server_id = exclave::net::Identity::load(
        &root.join("ca.pem"),
        &site.join("node.pem"),
        &site.join("node.key"),
    )
    .unwrap();
    let server = exclave::net::endpoint::endpoint(
        "127.0.0.1:0".parse().unwrap(),
        &server_id,
        &exclave::net::TransportSettings::loopback(),
        true,
    )
    .unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(async move {
        if let Some(inc) = server.accept().await
            && let Ok(conn) = inc.await
            && let Ok((mut send, mut recv)) = conn.accept_bi().await
        {
            if relay {
                use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let to = listener.local_addr().unwrap();
                let reader = tokio::spawn(async move {
                    let (mut sock, _) = listener.accept().await.unwrap();
                    let mut buf = vec![0u8; 256 << 10];
                    while sock.read(&mut buf).await.is_ok_and(|n| n > 0) {}
                });
                let mut out = tokio::net::TcpStream::connect(to).await.unwrap();
                while let Ok(Some(c)) = recv.read_chunk(1 << 20, true).await {
                    out.write_all(&c.bytes).await.unwrap();
                }
                out.shutdown().await.unwrap();
                reader.await.unwrap();
            } else {
                while let Ok(Some(_)) = recv.read_chunk(1 << 20, false).await {}
            }
            let _ = send.write_all(b"ok").await;
            let _ = send.finish();
            let _ = conn.closed().await;
        }
    });
    let client = exclave::net::endpoint::endpoint(
        "127.0.0.1:0".parse().unwrap(),
        &client_id,
        &exclave::net::TransportSettings::loopback(),
        false,
    )
    .unwrap();
    let conn = client
        .connect(addr, "site-1.sites.exclave")
        .unwrap()
        .await
        .unwrap();
    let chunk = bytes::Bytes::from(vec![5u8; 1 << 20]);
    let t = Instant::now();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    for _ in 0..size >> 20 {
        send.write_chunk(chunk.clone()).await.unwrap();
    }
    send.finish().unwrap();
    let _ = recv.read_to_end(16).await;
    size as f64 / t.elapsed().as_secs_f64() / 1e6
}

/// `exclaved dev` in `root`, logging to `log` (which outlives a temporary root, for a failed
/// run), and the S3 endpoint its banner names.
#[allow(dead_code)]
pub(crate) fn start_dev(
    root: &std::path::Path,
    log: &std::path::Path,
) -> (std::process::Child, String) {
    use std::io::BufRead as _;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_exclaved"))
        .args([
            "dev",
            "--dir",
            root.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // The banner names the endpoint; it is read on a thread (kept reading, so the rest of the
    // banner never meets a closed pipe) and waited for with a deadline.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(url) = line.strip_prefix("exclave dev is serving S3 at ") {
                let _ = tx.send(url.trim().to_owned());
            }
        }
    });
    let url = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
    assert!(!url.is_empty(), "exclaved dev did not start");
    (child, url)
}

/// Stops `exclaved dev` as Ctrl-C would (SIGTERM), killing it after 30 s.
#[allow(dead_code)]
pub(crate) fn stop_dev(mut child: std::process::Child) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// MB/s of one core copying `size` bytes (the pages faulted in first), four times over.
#[allow(dead_code)]
pub(crate) fn memcpy_mbps(size: usize) -> f64 {
    let src = vec![7u8; size];
    let mut dst = vec![0u8; size];
    dst.copy_from_slice(&src);
    let t = Instant::now();
    for _ in 0..4 {
        dst.copy_from_slice(&src);
        std::hint::black_box(&dst);
    }
    4.0 * size as f64 / 1e6 / t.elapsed().as_secs_f64()
}
