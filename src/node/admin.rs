//! A node's own admin API (HTTP/1.1, JSON, bearer token): `GET /v1/cluster-record` (the
//! sealed record for recovery; no token), `GET /v1/status` (shards, disks,
//! scrub), `GET /v1/workers` (what each background worker did), `GET /metrics` (Prometheus text) and `POST /v1/scrub` (a full pass now). For a site's operators; the gateway reaches
//! the same facts over QUIC.

use std::sync::Arc;

use http::{Method, StatusCode};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::Node;
use crate::admin::{authorised, failed, metrics_reply, reply, serve, wants_openmetrics};
use crate::metrics::SiteFacts;
use crate::store::StoreError;

async fn cluster_record(node: &Node) -> http::Response<http_body_util::Full<bytes::Bytes>> {
    let Some(path) = node.cluster_record_file.clone() else {
        return reply(
            StatusCode::NOT_FOUND,
            &json!({"error": "this node keeps no cluster record (cluster_record_file)"}),
        );
    };
    match tokio::fs::read(&path).await {
        Ok(bytes) => {
            let mut r = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(bytes)));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/octet-stream"),
            );
            r
        }
        Err(e) => failed(format!("reading the cluster record: {e}")),
    }
}

/// Serves the node's admin API until `stop` turns true.
pub async fn serve_admin(
    node: Arc<Node>,
    token: String,
    listener: TcpListener,
    stop: watch::Receiver<bool>,
) {
    serve(listener, stop, move |req| {
        let (node, token) = (node.clone(), token.clone());
        async move {
            // The sealed cluster record needs no token: it opens only with the master key,
            // and whoever recovers has no token yet.
            if req.method() == Method::GET && req.uri().path() == "/v1/cluster-record" {
                return cluster_record(&node).await;
            }
            if !authorised(&req, &token) {
                return reply(
                    StatusCode::UNAUTHORIZED,
                    &json!({"error": "missing or wrong bearer token (see admin_token_file)"}),
                );
            }
            let store = node.store.clone();
            let openmetrics = wants_openmetrics(&req);
            let result = match (req.method().clone(), req.uri().path()) {
                (Method::GET, "/metrics") => {
                    let n = node.clone();
                    let text = tokio::task::spawn_blocking(move || {
                        let (shards, disks) = n.store.usage()?;
                        let s = n.store.scrub_state()?;
                        let facts = SiteFacts {
                            site: n.site.clone(),
                            reachable: true,
                            shards: Some(shards),
                            disks: disks.iter().map(|d| (d.id, d.bytes, d.free)).collect(),
                            scrub: Some((
                                s.last_complete_ms,
                                s.in_progress,
                                s.findings,
                                s.quarantined,
                            )),
                            disk_full: None,
                        };
                        Ok::<_, StoreError>(n.metrics.render(&facts, &n.workers.reports()))
                    })
                    .await;
                    return match text {
                        Ok(Ok(text)) => metrics_reply(text, openmetrics),
                        Ok(Err(e)) => failed(e),
                        Err(e) => failed(e),
                    };
                }
                (Method::GET, "/v1/status") => {
                    tokio::task::spawn_blocking(move || {
                        let (shards, disks) = store.usage()?;
                        let scrub = store.scrub_state()?;
                        Ok::<_, StoreError>(json!({
                            "shards": shards,
                            "manifests": store.manifest_count()?,
                            "disks": disks.iter().map(|d| json!({
                                "id": d.id, "bytes": d.bytes, "free": d.free,
                                "used": d.bytes.saturating_sub(d.free),
                            })).collect::<Vec<_>>(),
                            "scrub": {
                                "last_complete_ms": scrub.last_complete_ms,
                                "in_progress": scrub.in_progress,
                                "findings": scrub.findings,
                                "quarantined": scrub.quarantined,
                            },
                        }))
                    })
                    .await
                }
                (Method::GET, "/v1/workers") => {
                    Ok(Ok(json!({"workers": node.workers.reports()})))
                }
                (Method::POST, "/v1/scrub") => {
                    tokio::task::spawn_blocking(move || {
                        store.restart_scrub()?;
                        Ok(json!({"started": true}))
                    })
                    .await
                }
                _ => {
                    return reply(
                        StatusCode::NOT_FOUND,
                        &json!({"error": "no such admin route",
                                "routes": ["GET /metrics", "GET /v1/status", "GET /v1/workers", "POST /v1/scrub"]}),
                    );
                }
            };
            match result {
                Ok(Ok(mut v)) => {
                    v["node"] = node.id.0.into();
                    v["site"] = node.site.clone().into();
                    reply(StatusCode::OK, &v)
                }
                Ok(Err(e)) => failed(e),
                Err(e) => failed(e),
            }
        }
    })
    .await;
}
