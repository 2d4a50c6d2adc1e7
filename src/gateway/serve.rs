//! HTTP/1.1 serving of the S3 service, with request limits and graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use s3s::config::{S3Config, StaticConfigProvider};
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::auth::Signers;
use super::guard::Gate;
use super::tls::S3Tls;
use super::{AccessKeys, Gatekeeper, Gateway, MAX_XML_BODY};

/// Largest request head (request line and headers), bytes. S3 allows 8 KiB of PUT headers;
/// presigned URLs and many signed headers need some room beyond that.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Most header fields in a request.
pub const MAX_HEADERS: usize = 100;

/// Longest a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How the S3 endpoint is reached: the region requests must be signed for, and TLS (none:
/// plain HTTP, which the config allows only on loopback unless told otherwise).
#[derive(Debug, Clone)]
pub struct Front {
    /// The region clients sign for.
    pub region: String,
    /// The endpoint's certificate, when S3 is served over TLS.
    pub tls: Option<Arc<S3Tls>>,
}

/// Serves S3 on `listener` until `stop` turns true, then lets requests in flight finish
/// (at most 30 s).
pub async fn serve(
    gateway: Arc<Gateway>,
    keys: AccessKeys,
    front: Front,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) {
    let mut builder = S3ServiceBuilder::new(S3Api(gateway.clone()));
    builder.set_access(Gatekeeper {
        cluster: keys.ids(),
        gateway: gateway.clone(),
    });
    builder.set_auth(Signers {
        cluster: keys,
        tenants: gateway.tenants(),
    });
    let mut config = S3Config::default();
    config.xml_max_body_size = MAX_XML_BODY;
    config.presigned_url_max_skew_time_secs = 900;
    builder.set_config(Arc::new(StaticConfigProvider::new(Arc::new(config))));
    let again = super::ranges::IgnoreBadRange::default();
    builder.set_route(again.clone());
    let service = builder.build();
    *again.service.lock().unwrap_or_else(|e| e.into_inner()) = Some(service.clone());
    let ids = Arc::new(super::traffic::RequestIds::new());
    let gate = Arc::new(Gate::new(front.region.clone()));
    let acceptor = front.tls.as_ref().map(|t| t.acceptor());

    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.max_buf_size(MAX_HEADER_BYTES.max(64 * 1024))
        .max_header_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS)
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        // A client that shuts its write side after the whole request still gets the answer.
        .half_close(true);
    let http = Arc::new(http);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let (gateway, ids, gate, service) =
                    (gateway.clone(), ids.clone(), gate.clone(), service.clone());
                let peer = super::traffic::Peer {
                    addr: peer,
                    secure: acceptor.is_some(),
                };
                let service = hyper::service::service_fn(move |req| {
                    super::traffic::handle(
                        gateway.clone(),
                        ids.clone(),
                        gate.clone(),
                        service.clone(),
                        peer,
                        req,
                    )
                });
                let (http, watcher, acceptor) = (http.clone(), graceful.watcher(), acceptor.clone());
                tokio::spawn(async move {
                    let done = match acceptor {
                        None => {
                            let conn = http.serve_connection(TokioIo::new(stream), service);
                            watcher.watch(conn).await
                        }
                        Some(acceptor) => {
                            let tls = match tokio::time::timeout(
                                HANDSHAKE_TIMEOUT,
                                acceptor.accept(stream),
                            )
                            .await
                            {
                                Ok(Ok(tls)) => tls,
                                Ok(Err(e)) => {
                                    tracing::debug!(error = %e, "TLS handshake failed");
                                    return;
                                }
                                Err(_) => {
                                    tracing::debug!("TLS handshake timed out");
                                    return;
                                }
                            };
                            let conn = http.serve_connection(TokioIo::new(tls), service);
                            watcher.watch(conn).await
                        }
                    };
                    if let Err(e) = done {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    // The route holds the service that holds the route: the loop is cut when serving ends.
    let _ = again.service.lock().map(|mut s| s.take());
    if tokio::time::timeout(Duration::from_secs(30), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still running after 30 s; stopping anyway");
    }
}

/// The `s3s` face of the gateway.
#[derive(Debug, Clone)]
pub(crate) struct S3Api(pub(crate) Arc<Gateway>);
