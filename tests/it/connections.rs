//! Issue 15, finding 7: the chaos tests' failed GET. A request refused before its body is read
//! leaves the body unread, and the server closes the connection after the answer. Without
//! `Connection: close` on that answer, a client pooling connections sends its next request on
//! the closing one, and that request fails with no answer at all (the AWS SDK reports
//! `IncompleteMessage` or a broken pipe): with retries off, a GET of an object that was there.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;

use crate::support::{Rng, put, started_cluster, within};

/// The answer to `request` sent on a fresh connection (the body may stop short), and whether
/// the server closed the connection after it.
fn answer(addr: std::net::SocketAddr, request: &[u8]) -> (String, bool) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed before an answer");
        got.extend_from_slice(&buf[..n]);
        if let Some(p) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&got[..head_end]).to_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    while got.len() < head_end + len {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    // After the answer: end of stream (closed), or nothing within a moment (kept open).
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let closed = matches!(s.read(&mut buf), Ok(0));
    (head, closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_answer_before_the_body_is_read_says_the_connection_closes() {
    within(120, async {
        let cluster = started_cluster("").await;
        let addr = cluster.s3_addr();
        // Unsigned, 10 MB announced, 1 KB sent: refused (403) before the body is read.
        let mut put = format!(
            "PUT /registry/deed HTTP/1.1\r\nhost: {addr}\r\ncontent-length: 10000000\r\n\r\n"
        )
        .into_bytes();
        put.extend_from_slice(&[7u8; 1024]);
        let (head, closed) = tokio::task::block_in_place(|| answer(addr, &put));
        assert!(head.starts_with("http/1.1 403"), "{head}");
        assert!(closed, "the connection stayed open with a body unread");
        assert!(
            head.contains("connection: close"),
            "closed without saying so:\n{head}"
        );

        // A refused request with no body keeps its connection, and says nothing of closing.
        let get = format!("GET /registry/deed HTTP/1.1\r\nhost: {addr}\r\n\r\n");
        let (head, closed) = tokio::task::block_in_place(|| answer(addr, get.as_bytes()));
        assert!(head.starts_with("http/1.1 403"), "{head}");
        assert!(!closed && !head.contains("connection: close"), "{head}");
    })
    .await;
}

/// Four tasks on one SDK client, retries off: two keep writing to a bucket that does not exist
/// (refused before the body), two keep reading an object that does. No read may fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refused_writes_never_break_the_reads_that_share_their_connections() {
    within(300, async {
        let cluster = started_cluster("").await;
        let s3 = cluster.s3_client(1);
        s3.create_bucket().bucket("registry").send().await.unwrap();
        put(&s3, "registry", "deed", b"a record").await;
        let failed = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for t in 0..4u64 {
            let (s3, failed) = (s3.clone(), failed.clone());
            tasks.push(tokio::spawn(async move {
                let body = Rng::new(t).bytes(1_500_000);
                for _ in 0..300 {
                    if t % 2 == 0 {
                        let r = s3
                            .put_object()
                            .bucket("no-such-bucket")
                            .key("deed")
                            .body(ByteStream::from(body.clone()))
                            .send()
                            .await;
                        assert!(r.is_err());
                        continue;
                    }
                    let r = s3.get_object().bucket("registry").key("deed").send().await;
                    let ok = match r {
                        Ok(o) => o.body.collect().await.is_ok(),
                        Err(e) => {
                            eprintln!("{:.400}", format!("{e:?}"));
                            false
                        }
                    };
                    if !ok {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(failed.load(Ordering::SeqCst), 0, "reads failed");
    })
    .await;
}
