//! Helpers shared by the benches.

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
