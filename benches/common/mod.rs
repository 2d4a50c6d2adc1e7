//! Helpers shared by the benches: the tests' cluster support (clusters of real processes are
//! set up by the same code that the tests use), sizes, deadlines and CPU accounting.
//!
//! Every bench runs whole at a tiny size when `EXCLAVE_BENCH_SMOKE` is set: `./check` runs each
//! that way (`cargo test --benches`), so a bench that cannot set itself up fails CI.

use std::time::Duration;

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
fn credential(text: &str, name: &str) -> String {
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
