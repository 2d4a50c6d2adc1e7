//! The coordinator's drivers: write quorum and hedged reads against real node processes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use exclave::coordinator::{Nodes, PutError, ShardTarget};
use exclave::core::ids::{DiskId, NodeId, SiteId};
use exclave::core::stripe::{Codec, Profile, StripeContext, encode_object};

use crate::nodes::{Encoded, encode, started};
use crate::support::{Rng, within};

fn targets() -> Vec<ShardTarget> {
    (0..5)
        .map(|i| ShardTarget {
            site: SiteId(i as u16),
            node: NodeId(i + 1),
            disk: DiskId(i + 1),
        })
        .collect()
}

fn nodes(clients: &[std::sync::Arc<exclave::coordinator::NodeClient>]) -> Nodes {
    let map: BTreeMap<_, _> = clients
        .iter()
        .enumerate()
        .map(|(i, c)| (NodeId(i as u32 + 1), c.clone()))
        .collect();
    let mut n = Nodes::new(map);
    n.hedge_after = Duration::from_millis(200);
    n
}

async fn put(nodes: &Nodes, e: &Encoded) -> Result<exclave::coordinator::PutReport, PutError> {
    let codec = Codec::new(e.geometry.profile);
    let stripes = encode_object(
        &codec,
        &e.key,
        e.object,
        e.version,
        e.geometry.block_size,
        &e.data,
    )
    .unwrap();
    let mut sink = exclave::coordinator::StripeSink::start(
        nodes,
        &targets(),
        e.object,
        e.version,
        e.geometry,
        4,
        Duration::from_secs(20),
    );
    for s in &stripes {
        sink.push(s).await?;
    }
    sink.finish(e.headers.clone()).await
}

async fn read_all(nodes: &Nodes, e: &Encoded) -> Vec<u8> {
    let n = e.geometry.stripe_count();
    let (stripes, bad) = nodes
        .read_range(
            &targets(),
            e.object,
            e.version,
            3,
            &e.headers[0].block_hashes,
            0,
            n,
        )
        .await
        .unwrap();
    assert!(bad.is_empty(), "{bad:?}");
    let codec = Codec::new(Profile::new(3, 2).unwrap());
    let mut out = Vec::new();
    for (s, offer) in stripes.iter().enumerate() {
        let s = s as u64;
        let ctx = StripeContext {
            object: e.object,
            version: e.version,
            index: s,
            last: s + 1 == n,
        };
        // read_range checked every block against its hash already.
        out.extend(
            codec
                .open_verified(&e.key, &ctx, e.geometry.stripe_len(s), offer)
                .unwrap()
                .plaintext,
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_need_k_plus_one_sites_and_reads_hedge_past_a_silent_node() {
    within(120, async {
        let (mut cluster, clients) = started(5).await;
        let nodes = nodes(&clients);
        let mut rng = Rng::new(21);

        let e = encode(&mut rng, 3_000_000, 262_144, 3, 2);
        assert_eq!(put(&nodes, &e).await.unwrap().missing, Vec::<usize>::new());
        assert_eq!(read_all(&nodes, &e).await, e.data);

        // One site down: k + 1 = 4 sites still make the quorum; its shard is left for repair.
        cluster.kill_node(4);
        let e1 = encode(&mut rng, 1_000_000, 262_144, 3, 2);
        assert_eq!(put(&nodes, &e1).await.unwrap().missing, vec![4]);
        assert_eq!(read_all(&nodes, &e1).await, e1.data);

        // Two down: the write is refused.
        cluster.kill_node(3);
        let e2 = encode(&mut rng, 1_000_000, 262_144, 3, 2);
        match put(&nodes, &e2).await {
            Err(PutError::NoQuorum {
                durable, needed, ..
            }) => assert_eq!((durable, needed), (3, 4)),
            other => panic!("{other:?}"),
        }

        // A data node that is alive but silent (SIGSTOP): the read hedges to parity after
        // 200 ms instead of waiting for the connection's idle timeout.
        cluster.start_node(3);
        cluster.start_node(4);
        cluster.wait_ready(&clients).await;
        cluster.signal_node(0, "STOP");
        let t = Instant::now();
        assert_eq!(read_all(&nodes, &e).await, e.data);
        let took = t.elapsed();
        cluster.signal_node(0, "CONT");
        assert!(took < Duration::from_millis(2000), "read took {took:?}");
        eprintln!("read past a silent data node took {took:?} (hedge after 200 ms)");
    })
    .await;
}
