//! `exclave init`: what was written and how to start it.

use exclave::ops::init::{InitOptions, Initialized};
use serde_json::json;

pub(crate) fn print(o: &InitOptions, done: &Initialized, as_json: bool) {
    let exclaved = "exclaved";
    if as_json {
        let v = json!({
            "dir": o.dir,
            "profile": { "k": o.k, "m": o.m },
            "nodes": done.node_configs.iter().zip(&o.sites).map(|(c, s)| json!({
                "site": s,
                "config": c,
                "command": format!("{exclaved} --config {}", c.display()),
            })).collect::<Vec<_>>(),
            "gateway": {
                "config": done.gateway_config,
                "command": format!("{exclaved} --config {}", done.gateway_config.display()),
            },
            "s3_endpoint": done.s3_endpoint,
            "s3_ca_bundle": done.s3_ca_bundle,
            "client_credentials": done.client_credentials,
            "s3_credentials_sealed": done.s3_credentials,
            "survives_home_plus": done.report.survives_home_plus,
            "largest_blind_coalition": done.report.largest_blind_coalition,
        });
        outln!("{v:#}");
        return;
    }
    outln!(
        "cluster written to {} (profile {}+{})\n",
        o.dir.display(),
        o.k,
        o.m
    );
    outln!("{}\n", done.report);
    outln!("start each node (one per site):");
    for c in &done.node_configs {
        outln!("  {exclaved} --config {}", c.display());
    }
    outln!(
        "\nthen the gateway:\n  {exclaved} --config {}",
        done.gateway_config.display()
    );
    outln!("\nS3 endpoint: {}", done.s3_endpoint);
    if let Some(ca) = &done.s3_ca_bundle {
        outln!(
            "  over TLS: clients trust the cluster CA {} (aws --ca-bundle, AWS_CA_BUNDLE)",
            ca.display()
        );
    }
    outln!(
        "S3 client credentials (AWS shared-credentials file, [default] profile): {}",
        done.client_credentials.display()
    );
    outln!(
        "keep {} offline: it issues certificates for this cluster",
        o.dir.join("ca.key").display()
    );
    outln!(
        "split the master key among officials before you rely on the cluster:\n  exclave \
         --config {} keys split --threshold 3 --shares 5 --out ./shares",
        done.gateway_config.display()
    );
}
