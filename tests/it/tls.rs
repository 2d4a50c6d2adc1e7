//! S3 over TLS (issue 13, finding 4): the SDK trusting the cluster CA, a client that does not,
//! plain HTTP sent to the TLS port, a certificate replaced and reloaded on SIGHUP while a
//! connection stays open, and the config's refusal of plain HTTP off loopback.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::client::TlsStream;

use crate::sigv4::send;
use crate::support::{Cluster, within};

/// A TLS connection to `addr` trusting `ca_pem`; returns it and the certificate it was shown.
async fn connect(addr: SocketAddr, ca_pem: &[u8]) -> (TlsStream<tokio::net::TcpStream>, Vec<u8>) {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem).unwrap())
        .unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    let cert = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    (tls, cert)
}

/// One anonymous request on an open connection; returns the status (the connection stays
/// open: the body is read to its length).
async fn roundtrip(conn: &mut TlsStream<tokio::net::TcpStream>, host: &str) -> u16 {
    let req = format!("GET / HTTP/1.1\r\nhost: {host}\r\n\r\n");
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = conn.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the connection closed");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if body.len() >= len {
                return head.split_whitespace().nth(1).unwrap().parse().unwrap();
            }
        }
    }
}

async fn deed(s3: &aws_sdk_s3::Client) -> Vec<u8> {
    let got = s3
        .get_object()
        .bucket("tls")
        .key("deed")
        .send()
        .await
        .unwrap();
    got.body.collect().await.unwrap().into_bytes().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_over_tls_trusts_the_cluster_ca_and_reloads_its_certificate_on_sighup() {
    within(300, async {
        let mut cluster = tokio::task::spawn_blocking(|| {
            let mut c = Cluster::init_with(5, 3, 2, &[]);
            c.start_all();
            c.start_gateway();
            c
        })
        .await
        .unwrap();
        let root = cluster.root();
        let cfg = std::fs::read_to_string(root.join("gateway/gateway.toml")).unwrap();
        assert!(
            cfg.contains("s3_tls_cert_file"),
            "init did not turn TLS on: {cfg}"
        );
        let ca = std::fs::read(root.join("ca.pem")).unwrap();
        let addr = cluster.s3_addr();
        let host = addr.to_string();

        // The SDK, trusting the cluster CA: a bucket, an object, its bytes.
        let s3 = cluster.s3_client_tls(&ca);
        s3.create_bucket().bucket("tls").send().await.unwrap();
        let body = vec![7u8; 300_000];
        s3.put_object()
            .bucket("tls")
            .key("deed")
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
        assert_eq!(deed(&s3).await, body);

        // A client that trusts another CA does not get through; plain HTTP gets no S3 answer.
        let other = exclave::net::pki::Ca::new("other").unwrap();
        let stranger = cluster.s3_client_tls(other.issued().cert_pem.as_bytes());
        assert!(stranger.list_buckets().send().await.is_err());
        let (code, text) = tokio::task::block_in_place(|| {
            send(
                addr,
                "GET",
                "/tls/deed",
                &[("host".into(), host.clone())],
                b"",
            )
        });
        assert_eq!(code, 0, "plain HTTP was answered: {text}");

        // A connection opened before the reload.
        let (mut old, old_cert) = connect(addr, &ca).await;
        assert_eq!(roundtrip(&mut old, &host).await, 403);

        // A new certificate from the same CA, in place of the old files; SIGHUP.
        let ca_pem = std::fs::read_to_string(root.join("ca.pem")).unwrap();
        let ca_key = std::fs::read_to_string(root.join("ca.key")).unwrap();
        let issuer = exclave::net::pki::Ca::from_pem("home", &ca_pem, &ca_key).unwrap();
        let fresh = issuer
            .issue_s3_server(&["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        let gw = root.join("gateway");
        std::fs::write(gw.join("s3-tls.pem"), &fresh.cert_pem).unwrap();
        std::fs::write(gw.join("s3-tls.key"), &fresh.key_pem).unwrap();
        let fresh_der = CertificateDer::from_pem_slice(fresh.cert_pem.as_bytes())
            .unwrap()
            .to_vec();
        assert_ne!(fresh_der, old_cert);
        cluster.signal_gateway("HUP");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, shown) = connect(addr, &ca).await;
            if shown == fresh_der {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the new certificate was not served"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The old connection was not dropped, and the SDK goes on.
        assert_eq!(roundtrip(&mut old, &host).await, 403);
        assert_eq!(deed(&s3).await, body);

        // A broken certificate file on reload: the last good certificate stays.
        std::fs::write(gw.join("s3-tls.pem"), "not a certificate").unwrap();
        cluster.signal_gateway("HUP");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (_, shown) = connect(addr, &ca).await;
        assert_eq!(shown, fresh_der);
        let log = std::fs::read_to_string(gw.join("exclaved.log")).unwrap();
        assert!(log.contains("S3 certificate reloaded"), "{log}");
        assert!(log.contains("S3 certificate not reloaded"), "{log}");
    })
    .await;
}

#[test]
fn plain_http_off_loopback_is_refused_unless_the_operator_says_so() {
    let cluster = Cluster::init(5, 3, 2);
    let path = cluster.root().join("gateway/gateway.toml");
    let plain = std::fs::read_to_string(&path).unwrap();
    let port = cluster.s3_addr().port();
    // An address outside loopback (only parsed here, never bound).
    let off = plain.replace(
        &format!("s3_listen = \"127.0.0.1:{port}\""),
        "s3_listen = \"192.0.2.10:9000\"",
    );
    assert_ne!(off, plain);
    std::fs::write(&path, &off).unwrap();
    let err = exclave::config::read_daemon(&path).unwrap_err().to_string();
    assert!(
        err.contains("needs TLS") && err.contains("danger_plaintext_s3_off_loopback"),
        "{err}"
    );
    std::fs::write(
        &path,
        off.replace(
            "[gateway]\n",
            "[gateway]\ndanger_plaintext_s3_off_loopback = true\n",
        ),
    )
    .unwrap();
    exclave::config::read_daemon(&path).unwrap();
    // And `exclave init` will not write such a gateway.
    let out = crate::support::run(
        std::process::Command::new(crate::support::bin("exclave")).args([
            "init",
            "--dir",
            cluster.dir.path().join("other").to_str().unwrap(),
            "--sites",
            "a,b,c,d,e",
            "--k",
            "3",
            "--m",
            "2",
            "--bind",
            "192.0.2.10",
            "--s3-plain-http",
        ]),
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("in clear"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn init_serves_the_operators_own_certificate_instead_of_one_from_the_cluster_ca() {
    within(120, async {
        let own = tempfile::tempdir().unwrap();
        let operator_ca = exclave::net::pki::Ca::new("operator").unwrap();
        let issued = operator_ca.issue_s3_server(&["127.0.0.1".into()]).unwrap();
        let (cert, key) = (own.path().join("s3.pem"), own.path().join("s3.key"));
        std::fs::write(&cert, &issued.cert_pem).unwrap();
        std::fs::write(&key, &issued.key_pem).unwrap();
        let args = [
            "--s3-cert".to_owned(),
            cert.display().to_string(),
            "--s3-key".to_owned(),
            key.display().to_string(),
        ];
        let cluster = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut c = Cluster::init_with(5, 3, 2, &args);
            c.start_all();
            c.start_gateway();
            c
        })
        .await
        .unwrap();
        let s3 = cluster.s3_client_tls(operator_ca.issued().cert_pem.as_bytes());
        s3.create_bucket().bucket("own").send().await.unwrap();
        let cluster_ca = std::fs::read(cluster.root().join("ca.pem")).unwrap();
        let wrong = cluster.s3_client_tls(&cluster_ca);
        assert!(wrong.list_buckets().send().await.is_err());
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(cluster.root().join("gateway/s3-tls.key"))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o077, 0, "the copied key is readable by others");
    })
    .await;
}
