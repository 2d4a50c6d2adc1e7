//! Issue 16: the order of a key's versions follows real time. Writes of different sizes to one
//! key overlap in the patterns a seed gives, each acknowledgement and each read is recorded,
//! and a model checks every read against them: a read never returns a version when another
//! was acknowledged before the read began and was certainly newer (its commit began after the
//! first was acknowledged); reads one after another never go back; all reads after the writes
//! agree, and keep agreeing after a gateway restart and through an index rebuilt from the
//! nodes.
//!
//! A write's commit begins only after its last byte has arrived, so the test holds each body's
//! last chunk back for a while and notes when it let go of it: a lower bound of the commit's
//! beginning that the client can see.

use std::collections::{BTreeMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

use crate::support::{Cluster, Rng, started_cluster, status, within};

const BUCKET: &str = "registry";
/// Rounds (one fresh key each).
const ROUNDS: usize = 12;
/// Writers per round.
const WRITERS: usize = 4;
/// Body sizes: inline, one small stripe, several stripes, past a 5 MiB part boundary.
const SIZES: [usize; 4] = [100, 40_000, 1_500_000, 5 * 1024 * 1024 + 1];

/// A body handed over chunk by chunk whose last chunk is held back for `hold`; `sent` records
/// when it was let go (the write's commit cannot begin earlier).
struct HeldBody {
    chunks: VecDeque<Bytes>,
    left: u64,
    hold: Option<Pin<Box<tokio::time::Sleep>>>,
    sent: Arc<Mutex<Option<Instant>>>,
}

impl http_body::Body for HeldBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if self.chunks.len() == 1 {
            if let Some(hold) = self.hold.as_mut() {
                if hold.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.hold = None;
            }
            *self.sent.lock().unwrap() = Some(Instant::now());
        }
        match self.chunks.pop_front() {
            Some(c) => {
                self.left -= c.len() as u64;
                Poll::Ready(Some(Ok(http_body::Frame::data(c))))
            }
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.left)
    }
}

/// The body of writer `w` of round `r`: its 16-byte name, then bytes of its own.
fn body(round: usize, w: usize, size: usize) -> Vec<u8> {
    let mut b = format!("round{round:04}-w{w:02}...").into_bytes();
    let mut rng = Rng::new((round * 100 + w) as u64);
    b.extend(rng.bytes(size - 16));
    b
}

/// One write as the client saw it.
#[derive(Clone, Copy, Debug)]
struct Write {
    /// When its last byte was handed over (its commit began later).
    body_end: Instant,
    /// When its 200 came.
    ack: Instant,
}

impl Write {
    /// Certainly older than `other`: acknowledged before `other`'s commit could begin.
    fn before(&self, other: &Self) -> bool {
        self.ack < other.body_end
    }
}

/// One read: when it began and ended, and which writer's version it returned (None: none).
#[derive(Clone, Copy, Debug)]
struct Read {
    start: Instant,
    end: Instant,
    got: Option<usize>,
}

async fn write(s3: Client, key: String, data: Vec<u8>, pause: Duration, hold: Duration) -> Write {
    tokio::time::sleep(pause).await;
    let sent = Arc::new(Mutex::new(None));
    let chunk = (data.len() / 4).max(1);
    let chunks: VecDeque<Bytes> = data.chunks(chunk).map(Bytes::copy_from_slice).collect();
    let b = HeldBody {
        left: data.len() as u64,
        chunks,
        hold: Some(Box::pin(tokio::time::sleep(hold))),
        sent: sent.clone(),
    };
    s3.put_object()
        .bucket(BUCKET)
        .key(&key)
        .content_length(data.len() as i64)
        .body(ByteStream::from_body_1_x(b))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT {key}: {e:?}"));
    let ack = Instant::now();
    let body_end = sent.lock().unwrap().expect("the body was sent whole");
    Write { body_end, ack }
}

/// Which writer of `round` wrote what a GET of `key` returns (None: no such key); the bytes
/// and the ETag are checked against that writer's body.
async fn read_once(s3: &Client, key: &str, round: usize, sizes: &[usize]) -> Option<usize> {
    let out = match s3.get_object().bucket(BUCKET).key(key).send().await {
        Ok(out) => out,
        Err(e) if status(&e) == 404 => return None,
        Err(e) => panic!("GET {key}: {e:?}"),
    };
    let etag = out.e_tag().unwrap_or_default().trim_matches('"').to_owned();
    let got = out.body.collect().await.unwrap().into_bytes();
    let name = std::str::from_utf8(&got[..16]).unwrap();
    let w: usize = name[11..13].parse().unwrap();
    assert_eq!(name, &format!("round{round:04}-w{w:02}..."), "{key}");
    let want = body(round, w, sizes[w]);
    assert!(got[..] == want[..], "{key}: the bytes of writer {w} differ");
    assert_eq!(etag, md5_hex(&want), "{key}: ETag of writer {w}");
    Some(w)
}

fn md5_hex(b: &[u8]) -> String {
    use md5::Digest as _;
    exclave::core::ids::hex(&md5::Md5::digest(b))
}

/// Checks one round's reads against its writes; returns the version every read after the
/// writes agreed on.
fn check_round(key: &str, writes: &[Write], reads: &[Read]) -> usize {
    for r in reads {
        match r.got {
            None => {
                // Nothing: only while no write had been acknowledged when it began.
                if let Some(w) = writes.iter().position(|w| w.ack < r.start) {
                    panic!("{key}: a read found nothing after writer {w} was acknowledged");
                }
            }
            Some(g) => {
                for (o, w) in writes.iter().enumerate() {
                    assert!(
                        !(writes[g].before(w) && w.ack < r.start),
                        "{key}: a read returned writer {g}'s version though writer {o}'s, \
                         certainly newer, was acknowledged before the read began: {writes:?}"
                    );
                }
            }
        }
    }
    // Reads one after another never go back to a certainly older version.
    for a in reads {
        for b in reads.iter().filter(|b| a.end < b.start) {
            if let (Some(x), Some(y)) = (a.got, b.got) {
                assert!(
                    !writes[y].before(&writes[x]),
                    "{key}: a read returned writer {y} after an earlier read returned writer \
                     {x}, which is certainly newer"
                );
            }
            assert!(
                !(a.got.is_some() && b.got.is_none()),
                "{key}: a version was read, then none"
            );
        }
    }
    let last = writes.iter().map(|w| w.ack).max().unwrap();
    let after: Vec<usize> = reads
        .iter()
        .filter(|r| r.start > last)
        .map(|r| r.got.expect("a version after every write"))
        .collect();
    assert!(!after.is_empty(), "{key}: no read after the writes");
    assert!(
        after.iter().all(|g| *g == after[0]),
        "{key}: reads after the writes disagree: {after:?}"
    );
    after[0]
}

/// GETs `key` until `stop`, and once more after it; each read recorded.
async fn reader(
    s3: Client,
    key: String,
    round: usize,
    sizes: Vec<usize>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Vec<Read> {
    let mut reads = Vec::new();
    loop {
        let done = stop.load(std::sync::atomic::Ordering::SeqCst);
        let start = Instant::now();
        let got = read_once(&s3, &key, round, &sizes).await;
        reads.push(Read {
            start,
            end: Instant::now(),
            got,
        });
        if done {
            return reads;
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
}

/// Checks that every round's key reads as agreed.
async fn reads_as_agreed(s3: &Client, agreed: &BTreeMap<String, (usize, usize, Vec<usize>)>) {
    for (key, (round, w, sizes)) in agreed {
        assert_eq!(
            read_once(s3, key, *round, sizes).await,
            Some(*w),
            "{key} after a restart"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_write_acknowledged_last_wins_against_a_model_of_real_time() {
    within(600, async {
        let mut cluster: Cluster = started_cluster("").await;
        let s3 = cluster.s3_client(1);
        s3.create_bucket().bucket(BUCKET).send().await.unwrap();
        let mut rng = Rng::new(0x16_0001);
        let mut agreed = BTreeMap::new();
        for round in 0..ROUNDS {
            let key = format!("deeds/parcel-{round}");
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            // Writer 0 is large and holds its last chunk longest: the others are acknowledged
            // while it is still sending, so its commit begins after theirs were acknowledged.
            let mut sizes = vec![SIZES[2 + rng.index(2)]];
            sizes.extend((1..WRITERS).map(|_| SIZES[rng.index(SIZES.len())]));
            let mut writers = tokio::task::JoinSet::new();
            for (w, size) in sizes.iter().enumerate() {
                let (pause, hold) = if w == 0 {
                    (0, 1_500 + rng.below(500))
                } else {
                    (rng.below(600), rng.below(400))
                };
                let data = body(round, w, *size);
                let fut = write(
                    s3.clone(),
                    key.clone(),
                    data,
                    Duration::from_millis(pause),
                    Duration::from_millis(hold),
                );
                writers.spawn(async move { (w, fut.await) });
            }
            let readers: Vec<_> = (0..2)
                .map(|_| {
                    let r = reader(s3.clone(), key.clone(), round, sizes.clone(), stop.clone());
                    tokio::spawn(r)
                })
                .collect();
            let mut writes = vec![None; WRITERS];
            while let Some(r) = writers.join_next().await {
                let (w, done) = r.unwrap();
                writes[w] = Some(done);
            }
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            let mut reads = Vec::new();
            for r in readers {
                reads.extend(r.await.unwrap());
            }
            let writes: Vec<Write> = writes.into_iter().map(Option::unwrap).collect();
            let winner = check_round(&key, &writes, &reads);
            agreed.insert(key, (round, winner, sizes));
        }

        // The order holds across a gateway restart, and through an index rebuilt from the
        // nodes.
        cluster = tokio::task::spawn_blocking(move || {
            cluster.kill_gateway();
            cluster.start_gateway();
            cluster
        })
        .await
        .unwrap();
        reads_as_agreed(&s3, &agreed).await;
        cluster = tokio::task::spawn_blocking(move || {
            cluster.restart_gateway_without_index();
            cluster
        })
        .await
        .unwrap();
        reads_as_agreed(&s3, &agreed).await;
        drop(cluster);
    })
    .await;
}

/// ListObjectVersions of a bucket whose versioning was never enabled: each live key once, as
/// its `null` version and the latest; a deleted key not at all; pages cut anywhere (by
/// key-marker and version-id-marker) join up; a delimiter rolls keys up; markers AWS refuses
/// are refused. GET and HEAD by version id serve the null version and refuse other ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_of_an_unversioned_bucket_list_as_null_versions_and_page() {
    within(120, async {
        let cluster: Cluster = started_cluster("").await;
        let s3 = cluster.s3_client(1);
        s3.create_bucket().bucket(BUCKET).send().await.unwrap();
        let keys = ["a", "b/1", "b/2", "c", "d"];
        for k in keys {
            s3.put_object()
                .bucket(BUCKET)
                .key(k)
                .body(ByteStream::from_static(b"first"))
                .send()
                .await
                .unwrap();
        }
        // An overwrite replaces the null version; a delete ends the key.
        s3.put_object()
            .bucket(BUCKET)
            .key("c")
            .body(ByteStream::from_static(b"second"))
            .send()
            .await
            .unwrap();
        s3.delete_object()
            .bucket(BUCKET)
            .key("d")
            .send()
            .await
            .unwrap();
        let want = ["a", "b/1", "b/2", "c"];

        for max in [1, 2, 1000] {
            let (mut got, mut key_marker, mut id_marker) = (Vec::new(), None, None);
            loop {
                let out = s3
                    .list_object_versions()
                    .bucket(BUCKET)
                    .max_keys(max)
                    .set_key_marker(key_marker.clone())
                    .set_version_id_marker(id_marker.clone())
                    .send()
                    .await
                    .unwrap();
                assert!(out.delete_markers().is_empty(), "{out:?}");
                for v in out.versions() {
                    assert_eq!(v.version_id(), Some("null"));
                    assert_eq!(v.is_latest(), Some(true));
                    got.push(v.key().unwrap().to_owned());
                }
                if out.is_truncated() != Some(true) {
                    break;
                }
                key_marker = out.next_key_marker().map(str::to_owned);
                id_marker = out.next_version_id_marker().map(str::to_owned);
            }
            assert_eq!(got, want, "pages of {max}");
        }
        let c = s3
            .list_object_versions()
            .bucket(BUCKET)
            .prefix("c")
            .send()
            .await
            .unwrap();
        assert_eq!(c.versions().len(), 1);
        assert_eq!(
            c.versions()[0].size(),
            Some(6),
            "the overwrite is the version"
        );

        let rolled = s3
            .list_object_versions()
            .bucket(BUCKET)
            .delimiter("/")
            .send()
            .await
            .unwrap();
        let prefixes: Vec<_> = rolled
            .common_prefixes()
            .iter()
            .filter_map(|p| p.prefix())
            .collect();
        assert_eq!(prefixes, ["b/"]);
        let listed: Vec<_> = rolled.versions().iter().filter_map(|v| v.key()).collect();
        assert_eq!(listed, ["a", "c"]);

        // `exclave status` counts them per bucket (the CLI's JSON).
        let v = cluster.status_json();
        let b = v["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == BUCKET)
            .unwrap();
        assert_eq!(
            (&b["versions"], &b["delete_markers"]),
            (&4.into(), &0.into()),
            "{v:#}"
        );

        // Versioning was never enabled: GetBucketVersioning says nothing, as S3 does.
        let v = s3
            .get_bucket_versioning()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap();
        assert_eq!(v.status(), None);
        let e = s3
            .get_bucket_versioning()
            .bucket("no-such-bucket")
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&e), 404);

        // Reads by version id: the null version is the current one; an id that names no
        // version is 404 NoSuchVersion, one that is no id at all 400.
        let got = s3
            .get_object()
            .bucket(BUCKET)
            .key("c")
            .version_id("null")
            .send()
            .await
            .unwrap();
        assert_eq!(got.version_id(), Some("null"));
        assert_eq!(
            &got.body.collect().await.unwrap().into_bytes()[..],
            b"second"
        );
        for (key, id, want) in [
            ("c", "00000000000000000000000000000000", 404),
            ("d", "null", 404),
            ("c", "not-a-version", 400),
        ] {
            let e = s3
                .get_object()
                .bucket(BUCKET)
                .key(key)
                .version_id(id)
                .send()
                .await
                .unwrap_err();
            assert_eq!(status(&e), want, "GET {key}?versionId={id}");
            let e = s3
                .head_object()
                .bucket(BUCKET)
                .key(key)
                .version_id(id)
                .send()
                .await
                .unwrap_err();
            assert_eq!(status(&e), want, "HEAD {key}?versionId={id}");
        }

        for (key_marker, id_marker) in [(Some("a"), "not-a-version"), (None, "null")] {
            let e = s3
                .list_object_versions()
                .bucket(BUCKET)
                .set_key_marker(key_marker.map(str::to_owned))
                .version_id_marker(id_marker)
                .send()
                .await
                .unwrap_err();
            assert_eq!(status(&e), 400, "{key_marker:?} {id_marker}");
        }
    })
    .await;
}
