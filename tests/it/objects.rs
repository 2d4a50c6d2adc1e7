//! Whole objects through `coordinator::object`: the data path the S3 gateway stands on.

use std::collections::BTreeMap;
use std::time::Duration;

use exclave::coordinator::object::{
    Layouts, ObjectError, ObjectKeys, ObjectSettings, Objects, PutInput,
};
use exclave::coordinator::{Nodes, PutError};
use exclave::core::hlc::Hlc;
use exclave::core::ids::{GatewayId, NodeId};
use exclave::core::keys::{ManifestKey, MasterKey};
use exclave::core::layout;

use crate::nodes::started;
use crate::support::{Cluster, Rng, within};

/// A digest, so a mismatch does not print megabytes.
fn sha(b: &[u8]) -> blake3::Hash {
    blake3::hash(b)
}

fn key_file(path: &std::path::Path) -> [u8; 32] {
    let text = std::fs::read_to_string(path).unwrap();
    let hex = text.trim();
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

fn objects(
    cluster: &Cluster,
    clients: &[std::sync::Arc<exclave::coordinator::NodeClient>],
) -> std::sync::Arc<Objects> {
    objects_of(cluster, clients, Hlc::new(GatewayId(1)))
}

/// The objects of a gateway whose clock is `hlc`.
fn objects_of(
    cluster: &Cluster,
    clients: &[std::sync::Arc<exclave::coordinator::NodeClient>],
    hlc: Hlc,
) -> std::sync::Arc<Objects> {
    let root = cluster.root();
    let (layout, rule) = exclave::config::read_layout(&root.join("layout.toml")).unwrap();
    let plan = layout::plan(&layout, rule).unwrap();
    let map: BTreeMap<_, _> = clients
        .iter()
        .enumerate()
        .map(|(i, c)| (NodeId(i as u32 + 1), c.clone()))
        .collect();
    let mut nodes = Nodes::new(map);
    nodes.hedge_after = Duration::from_millis(200);
    let gw = root.join("gateway");
    std::sync::Arc::new(
        Objects::new(
            nodes,
            Layouts {
                layout,
                plan,
                history: Vec::new(),
            },
            ObjectKeys {
                master: MasterKey::from_bytes(1, key_file(&gw.join("master.key"))),
                previous: Vec::new(),
                manifest: ManifestKey::from_bytes(key_file(&gw.join("manifest.key"))),
            },
            hlc,
            ObjectSettings {
                block_size: 256 * 1024,
                ..ObjectSettings::default()
            },
        )
        .unwrap(),
    )
}

async fn get(
    o: &std::sync::Arc<Objects>,
    bucket: &str,
    key: &str,
    range: std::ops::Range<u64>,
) -> Option<Vec<u8>> {
    let m = o.head(bucket, key, None).await.unwrap()?;
    let mut r = o.reader(&m, range).unwrap();
    let mut out = Vec::new();
    while let Some(piece) = r.next().await {
        out.extend_from_slice(&piece.unwrap());
    }
    Some(out)
}

async fn put(o: &Objects, key: &str, data: &[u8]) -> Result<(), ObjectError> {
    let input = PutInput {
        bucket: "registry".into(),
        key: key.into(),
        size: data.len() as u64,
        ..PutInput::default()
    };
    let manifest = o.put(input, data).await?;
    // The ETag is the MD5 of the plaintext, as S3 clients expect of a single-part PUT.
    let exclave::core::format::ManifestBody::Object(meta) = &manifest.body else {
        panic!("tombstone")
    };
    use md5::Digest as _;
    assert_eq!(meta.etag, exclave::core::ids::hex(&md5::Md5::digest(data)));
    // A small object gets the smallest 64-byte-multiple block that holds it, not 256 KiB.
    let k = usize::from(meta.k);
    if data.len() + 16 <= k * 256 * 1024 {
        let b = meta.block_size as usize;
        assert!(
            b.is_multiple_of(64) && b * k >= data.len() + 16,
            "block {b} for {}",
            data.len()
        );
        assert!(
            b == 64 || (b - 64) * k < data.len() + 16,
            "block {b} for {}",
            data.len()
        );
    }
    Ok(())
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_round_trip_with_ranges_overwrites_and_sites_down() {
    within(180, async {
        let (mut cluster, clients) = started(5).await;
        let o = objects(&cluster, &clients);
        let mut rng = Rng::new(77);
        let sizes = [
            0usize,
            1,
            1024,
            128 * 1024 - 1,
            128 * 1024 + 1,
            5 * 1024 * 1024 + 1,
        ];
        let mut model = BTreeMap::new();
        for (i, &size) in sizes.iter().enumerate() {
            let data = rng.bytes(size);
            put(&o, &format!("parcel/{i}"), &data).await.unwrap();
            model.insert(format!("parcel/{i}"), data);
        }
        for (key, data) in &model {
            let got = get(&o, "registry", key, 0..u64::MAX).await.unwrap();
            assert_eq!(sha(&got), sha(data), "{key}");
        }
        // Ranges: first byte, last byte, across the stripe boundary (3 * 256 KiB - 16).
        let big = &model["parcel/5"];
        let cap = 3 * 256 * 1024 - 16;
        for r in [
            0..1,
            big.len() as u64 - 1..big.len() as u64,
            cap - 10..cap + 10,
            5..3_000_000,
        ] {
            let got = get(&o, "registry", "parcel/5", r.clone()).await.unwrap();
            assert_eq!(got, big[r.start as usize..r.end as usize]);
        }
        // An overwrite wins; an unknown key is absent.
        let newer = rng.bytes(70_000);
        put(&o, "parcel/2", &newer).await.unwrap();
        assert_eq!(
            get(&o, "registry", "parcel/2", 0..u64::MAX).await.unwrap(),
            newer
        );
        assert!(get(&o, "registry", "nothing", 0..1).await.is_none());

        // m = 2 sites down: every object still reads back; writes need k + 1 = 4 sites.
        cluster.kill_node(1);
        cluster.kill_node(3);
        for (key, data) in &model {
            if key == "parcel/2" {
                continue;
            }
            let got = get(&o, "registry", key, 0..u64::MAX).await.unwrap();
            assert_eq!(sha(&got), sha(data), "{key} with two sites down");
        }
        match put(&o, "parcel/refused", &rng.bytes(300_000)).await {
            Err(ObjectError::Put(PutError::NoQuorum { .. })) => {}
            other => panic!("write with 2 sites down: {other:?}"),
        }
        // The refused write left nothing visible.
        cluster.start_node(1);
        cluster.start_node(3);
        cluster.wait_ready(&clients).await;
        assert!(get(&o, "registry", "parcel/refused", 0..1).await.is_none());
    })
    .await;
}

/// Issue 16, finding 1, across gateways: a gateway whose clock runs an hour ahead writes a
/// key; then a gateway with a true clock, which never saw that write, writes it. Its commit
/// began after the first was acknowledged, so it must win, though its clock stamped an earlier
/// order: the nodes that take its manifest report the order they hold, and it is stamped
/// above that. So for an inline write after a large one, a large write after an inline one,
/// and a delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_committed_after_another_gateways_acknowledgement_wins_whatever_the_clocks() {
    within(180, async {
        let (cluster, clients) = started(5).await;
        let ahead = |gateway| {
            let mut hlc = Hlc::new(GatewayId(gateway));
            hlc.observe(exclave::core::hlc::Version {
                physical_ms: exclave::sys::now_ms() + 3_600_000,
                logical: 0,
                gateway: GatewayId(gateway),
            });
            objects_of(&cluster, &clients, hlc)
        };
        let fresh = |gateway| objects_of(&cluster, &clients, Hlc::new(GatewayId(gateway)));
        let mut rng = Rng::new(16);
        for (n, (first, second)) in [(3_000_000usize, 200usize), (300, 2_000_000)]
            .into_iter()
            .enumerate()
        {
            let key = format!("skew/{n}");
            let (a, b) = (rng.bytes(first), rng.bytes(second));
            put(&ahead(2), &key, &a).await.unwrap();
            put(&fresh(3 + n as u32), &key, &b).await.unwrap();
            for reader in [fresh(9), ahead(10)] {
                let got = get(&reader, "registry", &key, 0..second as u64).await;
                assert_eq!(got.map(|g| sha(&g)), Some(sha(&b)), "{key}");
            }
        }
        // A delete from a gateway with a true clock, after a write from one ahead.
        let data = rng.bytes(1000);
        put(&ahead(20), "skew/deleted", &data).await.unwrap();
        fresh(21)
            .delete("registry", "skew/deleted", Default::default())
            .await
            .unwrap();
        assert!(
            fresh(22)
                .head("registry", "skew/deleted", None)
                .await
                .unwrap()
                .is_some_and(|m| matches!(m.body, exclave::core::format::ManifestBody::Tombstone)),
            "the delete is the newest version"
        );
    })
    .await;
}
