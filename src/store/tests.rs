//! The store's unit tests: shards, manifests, inline shards, quarantine.

use super::*;
use crate::core::format::{Manifest, ManifestBody, ManifestEnvelope, ShardHeader, VersionState};
use crate::core::hlc::Version;
use crate::core::ids::{GatewayId, ObjectId, ShardIndex, SiteId};
use crate::core::keys::ManifestKey;
use crate::core::layout::ShardLocation;
use crate::core::stripe::{BlockHash, Profile};
use crate::core::wire::Collectable;
use std::fs;

/// A small page cache: what the tests store fits.
const TEST_CACHE: usize = 8 << 20;

pub(super) fn header(crcs: Vec<u32>, size: u64) -> ShardHeader {
    ShardHeader {
        object: ObjectId([4; 32]),
        version: Version {
            physical_ms: 1,
            logical: 0,
            gateway: GatewayId(1),
        },
        shard_index: ShardIndex(0),
        k: 2,
        m: 1,
        block_size: 64,
        size,
        layout_epoch: 1,
        placement: vec![
            ShardLocation {
                site: SiteId(0),
                node: NodeId(1),
                disk: DiskId(1),
            };
            3
        ],
        crcs,
        block_hashes: vec![BlockHash([0; 32]); 3 * 2],
    }
}

/// The header of shard 0 of `object`, 150 bytes (`small_shard`), with the CRCs and hashes of
/// `bytes`, so scrub finds it whole.
fn checked_header(object: u8, bytes: &[u8]) -> ShardHeader {
    let mut h = header(
        vec![crc32fast::hash(&bytes[..64]), crc32fast::hash(&bytes[64..])],
        150,
    );
    h.object = ObjectId([object; 32]);
    // Shard 0's hashes: stripe-major, n = 3 per stripe.
    h.block_hashes[0] = BlockHash::of(&bytes[..64]);
    h.block_hashes[3] = BlockHash::of(&bytes[64..]);
    h
}

/// A delete record of the object and version `h` names.
fn tombstone_of(h: &ShardHeader) -> Manifest {
    Manifest {
        bucket: "b".into(),
        key: "k".into(),
        object: h.object,
        version: h.version,
        created_ms: 1,
        body: ManifestBody::Tombstone,
        order: h.version,
        state: VersionState::unversioned(h.version),
    }
}

/// A shard of 150 bytes with k = 2, B = 64: one full stripe and one short one; its bytes and
/// block CRCs.
fn small_shard() -> (Geometry, Vec<u8>, Vec<u32>) {
    let g = Geometry {
        profile: Profile::new(2, 1).unwrap(),
        block_size: 64,
        size: 150,
    };
    let data: Vec<u8> = (0..g.shard_len()).map(|i| i as u8).collect();
    let crcs = vec![crc32fast::hash(&data[..64]), crc32fast::hash(&data[64..])];
    (g, data, crcs)
}

/// A store on a fresh disk holding a small object's manifest with its inline shard: the
/// directory (removed when dropped), the store, the shard's header and bytes, the sealed
/// manifest.
fn with_inline_shard() -> (tempfile::TempDir, Store, ShardHeader, Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("d1");
    init_disk(&disk, NodeId(1), DiskId(1)).unwrap();
    let store = Store::open(&dir.path().join("state"), &[(DiskId(1), disk)], TEST_CACHE).unwrap();
    let (_, data, crcs) = small_shard();
    let h = header(crcs, 150);
    let sealed = tombstone_of(&h)
        .seal(&ManifestKey::from_bytes([3; 32]), [0; 12])
        .unwrap();
    store
        .put_manifest_inline(&sealed, &[(h.clone(), data.clone())])
        .unwrap();
    (dir, store, h, data, sealed)
}

#[test]
fn a_quarantined_shard_is_moved_aside_recorded_and_no_longer_served() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("d1");
    init_disk(&disk, NodeId(1), DiskId(1)).unwrap();
    let store = Store::open(
        &dir.path().join("state"),
        &[(DiskId(1), disk.clone())],
        TEST_CACHE,
    )
    .unwrap();
    // A stripe holds 112 bytes: 150 make one full stripe and one short one.
    let (g, data, crcs) = small_shard();
    assert_eq!(g.stripe_count(), 2);
    let h = header(crcs, 150);
    let key = ShardKey {
        object: h.object,
        version: h.version,
        shard: 0,
    };
    let mut w = store.begin_shard(DiskId(1), key, g).unwrap();
    w.write(&data).unwrap();
    w.finish(&store, &h).unwrap();
    assert!(matches!(
        store.read_blocks(&key, 0, 2).unwrap()[..],
        [BlockRead::Ok(_), BlockRead::Ok(_)]
    ));

    let moved = store
        .quarantine(&key, "scrub: CRC mismatch in stripe 1", 42)
        .unwrap();
    assert!(moved.starts_with(disk.join("quarantine")));
    assert_eq!(
        fs::read(&moved).unwrap(),
        data,
        "quarantine keeps the bytes"
    );
    assert_eq!(store.quarantined().unwrap(), 1);
    assert!(matches!(
        store.read_blocks(&key, 0, 1),
        Err(StoreError::NotFound)
    ));
}

#[test]
fn inline_shards_are_checked_stored_with_their_manifest_and_withdrawn_on_abort() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("d1");
    init_disk(&disk, NodeId(1), DiskId(1)).unwrap();
    let store = Store::open(&dir.path().join("state"), &[(DiskId(1), disk)], TEST_CACHE).unwrap();
    let (_, data, crcs) = small_shard();
    let h = header(crcs, 150);
    let manifest = tombstone_of(&h);
    let mk = ManifestKey::from_bytes([3; 32]);
    let sealed = manifest.seal(&mk, [0; 12]).unwrap();

    let mut bad = data.clone();
    bad[70] ^= 1;
    assert!(
        store
            .put_manifest_inline(&sealed, &[(h.clone(), bad)])
            .is_err()
    );
    let mut other = h.clone();
    other.object = ObjectId([5; 32]);
    assert!(
        store
            .put_manifest_inline(&sealed, &[(other, data.clone())])
            .is_err()
    );
    assert!(
        store
            .put_manifest_inline(&sealed, &[(h.clone(), data[..data.len() - 1].to_vec())])
            .is_err()
    );
    assert!(
        store.manifests(&h.object).unwrap().is_empty(),
        "a refused write stores nothing"
    );

    store
        .put_manifest_inline(&sealed, &[(h.clone(), data.clone())])
        .unwrap();
    assert_eq!(store.manifests(&h.object).unwrap(), vec![sealed.clone()]);
    let key = ShardKey {
        object: h.object,
        version: h.version,
        shard: 0,
    };
    match &store.read_blocks(&key, 1, 1).unwrap()[..] {
        [BlockRead::Ok(b)] => assert_eq!(&b[..], &data[64..]),
        other => panic!("{other:?}"),
    }
    store.abort_manifest(&h.object, h.version, None).unwrap();
    assert!(store.manifests(&h.object).unwrap().is_empty());
    // Once withdrawn, the version is refused if written again.
    assert!(matches!(
        store.put_manifest_inline(&sealed, &[(h.clone(), data)]),
        Err(StoreError::Withdrawn)
    ));
    assert!(store.manifests(&h.object).unwrap().is_empty());
}

#[test]
fn a_withdrawal_that_overtakes_its_write_makes_the_node_refuse_it() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("d1");
    init_disk(&disk, NodeId(1), DiskId(1)).unwrap();
    let store = Store::open(&dir.path().join("state"), &[(DiskId(1), disk)], TEST_CACHE).unwrap();
    let mk = ManifestKey::from_bytes([3; 32]);
    let m = |ms| Manifest {
        bucket: "b".into(),
        key: "k".into(),
        object: ObjectId([9; 32]),
        version: Version {
            physical_ms: ms,
            logical: 0,
            gateway: GatewayId(1),
        },
        created_ms: 1,
        body: ManifestBody::Tombstone,
        order: Version {
            physical_ms: ms,
            logical: 0,
            gateway: GatewayId(1),
        },
        state: VersionState::unversioned(Version {
            physical_ms: ms,
            logical: 0,
            gateway: GatewayId(1),
        }),
    };
    let (late, other) = (m(5), m(6));
    store
        .abort_manifest(&late.object, late.version, None)
        .unwrap();
    // Twice is the same as once.
    store
        .abort_manifest(&late.object, late.version, None)
        .unwrap();
    assert!(matches!(
        store.put_manifest(&late.seal(&mk, [0; 12]).unwrap()),
        Err(StoreError::Withdrawn)
    ));
    let sealed = other.seal(&mk, [0; 12]).unwrap();
    store.put_manifest(&sealed).unwrap();
    assert_eq!(store.manifests(&late.object).unwrap(), vec![sealed]);
}

#[test]
fn a_manifest_write_reports_a_newer_order_held_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("d1");
    init_disk(&disk, NodeId(1), DiskId(1)).unwrap();
    let store = Store::open(&dir.path().join("state"), &[(DiskId(1), disk)], TEST_CACHE).unwrap();
    let mk = ManifestKey::from_bytes([3; 32]);
    let at = |ms, gw| Version {
        physical_ms: ms,
        logical: 0,
        gateway: GatewayId(gw),
    };
    let m = |version, order, object| Manifest {
        bucket: "b".into(),
        key: "k".into(),
        object: ObjectId([object; 32]),
        version,
        created_ms: 1,
        body: ManifestBody::Tombstone,
        order,
        state: VersionState::unversioned(order),
    };
    let order = |rec: Option<Vec<u8>>| rec.map(|r| ManifestEnvelope::parse(&r).unwrap().order);
    let put = |m: &Manifest| order(store.put_manifest(&m.seal(&mk, [0; 12]).unwrap()).unwrap());
    assert_eq!(put(&m(at(5, 1), at(7, 1), 9)), None);
    // A later order from another gateway hears nothing (it is the newest); an earlier one
    // hears the newest record.
    assert_eq!(put(&m(at(6, 2), at(90, 2), 9)), None);
    assert_eq!(put(&m(at(8, 1), at(8, 1), 9)), Some(at(90, 2)));
    // The same version written again above it (stamped higher) is the newest.
    assert_eq!(put(&m(at(8, 1), at(91, 1), 9)), None);
    assert_eq!(put(&m(at(9, 1), at(92, 1), 9)), None);
    assert_eq!(put(&m(at(3, 1), at(3, 1), 9)), Some(at(92, 1)));
    // Another object has its own; a restarted node still knows.
    assert_eq!(put(&m(at(1, 1), at(1, 1), 4)), None);
    // An object's first record here gets no row of the newest; a write below it still hears
    // it, and the second record makes the row.
    let row = |o: u8| {
        let txn = store.db.begin_read().unwrap();
        let t = txn.open_table(NEWEST).unwrap();
        t.get(&[o; 32][..]).unwrap().is_some()
    };
    assert_eq!(put(&m(at(50, 1), at(50, 1), 5)), None);
    assert!(!row(5));
    assert_eq!(put(&m(at(2, 2), at(2, 2), 5)), Some(at(50, 1)));
    assert_eq!(put(&m(at(51, 1), at(51, 1), 5)), None);
    assert!(row(5));
    assert_eq!(put(&m(at(3, 2), at(3, 2), 5)), Some(at(51, 1)));
    drop(store);
    let disk = dir.path().join("d1");
    let store = Store::open(&dir.path().join("state"), &[(DiskId(1), disk)], TEST_CACHE).unwrap();
    let sealed = m(at(10, 1), at(10, 1), 9).seal(&mk, [0; 12]).unwrap();
    assert_eq!(order(store.put_manifest(&sealed).unwrap()), Some(at(92, 1)));
    // The record that had the newest order withdrawn: the newest of those left.
    store
        .abort_manifest(&ObjectId([9; 32]), at(9, 1), None)
        .unwrap();
    let sealed = m(at(11, 1), at(11, 1), 9).seal(&mk, [0; 12]).unwrap();
    assert_eq!(order(store.put_manifest(&sealed).unwrap()), Some(at(91, 1)));
    // Above every record left: the newest, and the table names it from now on.
    let sealed = m(at(12, 1), at(200, 1), 9).seal(&mk, [0; 12]).unwrap();
    assert_eq!(order(store.put_manifest(&sealed).unwrap()), None);
    let sealed = m(at(13, 1), at(13, 1), 9).seal(&mk, [0; 12]).unwrap();
    assert_eq!(
        order(store.put_manifest(&sealed).unwrap()),
        Some(at(200, 1))
    );
}

#[test]
fn concurrent_manifest_writes_share_commits_and_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("d1");
    init_disk(&disk, NodeId(1), DiskId(1)).unwrap();
    let store =
        Arc::new(Store::open(&dir.path().join("state"), &[(DiskId(1), disk)], TEST_CACHE).unwrap());
    let mk = ManifestKey::from_bytes([3; 32]);
    let (threads, each) = (16u64, 25u64);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (store, mk) = (store.clone(), mk.clone());
            std::thread::spawn(move || {
                for i in 0..each {
                    let m = Manifest {
                        bucket: "b".into(),
                        key: format!("{t}/{i}"),
                        object: ObjectId([t as u8; 32]),
                        version: Version {
                            physical_ms: i + 1,
                            logical: 0,
                            gateway: GatewayId(1),
                        },
                        created_ms: 1,
                        body: ManifestBody::Tombstone,
                        order: Version {
                            physical_ms: i + 1,
                            logical: 0,
                            gateway: GatewayId(1),
                        },
                        state: VersionState::unversioned(Version {
                            physical_ms: i + 1,
                            logical: 0,
                            gateway: GatewayId(1),
                        }),
                    };
                    store.put_manifest(&m.seal(&mk, [0; 12]).unwrap()).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    for t in 0..threads {
        assert_eq!(
            store.manifests(&ObjectId([t as u8; 32])).unwrap().len() as u64,
            each
        );
    }
    let commits = store.group.commits();
    assert!(
        commits < threads * each,
        "{commits} commits for {} writes",
        threads * each
    );
}

#[test]
fn a_disk_without_its_marker_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("d1");
    fs::create_dir_all(&disk).unwrap();
    let err = Store::open(&dir.path().join("state"), &[(DiskId(1), disk)], TEST_CACHE).unwrap_err();
    assert!(matches!(err, StoreError::NoMarker { .. }), "{err}");
}

#[test]
fn a_shard_whose_crcs_differ_from_its_header_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("d1");
    init_disk(&disk, NodeId(1), DiskId(1)).unwrap();
    let store = Store::open(
        &dir.path().join("state"),
        &[(DiskId(1), disk.clone())],
        TEST_CACHE,
    )
    .unwrap();
    let g = Geometry {
        profile: Profile::new(2, 1).unwrap(),
        block_size: 64,
        size: 150,
    };
    let h = header(vec![1, 2], 150);
    let key = ShardKey {
        object: h.object,
        version: h.version,
        shard: 0,
    };
    let mut w = store.begin_shard(DiskId(1), key, g).unwrap();
    w.write(&vec![0u8; g.shard_len() as usize]).unwrap();
    assert!(matches!(w.finish(&store, &h), Err(StoreError::BadShard(_))));
    assert!(matches!(store.header(&key), Err(StoreError::NotFound)));
    assert_eq!(fs::read_dir(disk.join("tmp")).unwrap().count(), 0);
}

/// Scrub works per block: a shard with one bad block keeps its file (its other blocks serve
/// reads and repair) and is recorded for repair; a shard whose every block is bad is
/// quarantined whole; a shard written again puts the copy it replaces in quarantine.
#[test]
fn scrub_keeps_a_shard_with_a_bad_block_and_quarantines_one_gone_bad_whole() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("d1");
    init_disk(&disk, NodeId(1), DiskId(1)).unwrap();
    let store = Store::open(&dir.path().join("state"), &[(DiskId(1), disk)], TEST_CACHE).unwrap();
    let g = Geometry {
        profile: Profile::new(2, 1).unwrap(),
        block_size: 64,
        size: 150,
    };
    let data: Vec<u8> = (0..g.shard_len()).map(|i| i as u8).collect();
    let write = |object: u8, bytes: &[u8]| {
        let h = checked_header(object, bytes);
        let key = ShardKey {
            object: h.object,
            version: h.version,
            shard: 0,
        };
        let mut w = store.begin_shard(DiskId(1), key, g).unwrap();
        w.write(bytes).unwrap();
        w.finish(&store, &h).unwrap();
        (key, store.shard_path(DiskId(1), &key).unwrap())
    };
    let (one_bad, one_path) = write(1, &data);
    let (all_bad, all_path) = write(2, &data);
    let mut rotten = fs::read(&one_path).unwrap();
    rotten[70] ^= 1;
    fs::write(&one_path, &rotten).unwrap();
    let zeros = vec![0u8; data.len()];
    fs::write(&all_path, &zeros).unwrap();

    let step = store.scrub_step(1 << 20, 1000).unwrap();
    assert!(step.finished);
    let bad: Vec<ShardKey> = step.bad.iter().map(|(k, _)| *k).collect();
    assert!(
        bad.contains(&one_bad) && bad.contains(&all_bad),
        "{:?}",
        step.bad
    );
    assert!(one_path.exists(), "a shard with one bad block is kept");
    assert!(store.header(&one_bad).is_ok());
    assert!(!all_path.exists(), "a shard gone bad whole is quarantined");
    assert_eq!(store.quarantined().unwrap(), 1);
    assert_eq!(store.scrub_state().unwrap().findings, 2);

    // Repair writes the shard again: the rotten copy goes to quarantine, the new one serves.
    let (_, path) = write(1, &data);
    assert_eq!(fs::read(&path).unwrap(), data);
    assert_eq!(store.quarantined().unwrap(), 2);
}

#[test]
fn collecting_a_version_deletes_its_shards_and_record_and_accounts_for_them() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("d1");
    init_disk(&disk, NodeId(1), DiskId(1)).unwrap();
    let store = Store::open(
        &dir.path().join("state"),
        &[(DiskId(1), disk.clone())],
        TEST_CACHE,
    )
    .unwrap();
    let (g, data, crcs) = small_shard();
    let mut keys = Vec::new();
    for shard in 0..2u8 {
        let mut h = header(crcs.clone(), 150);
        h.shard_index = ShardIndex(shard);
        let key = ShardKey {
            object: h.object,
            version: h.version,
            shard,
        };
        let mut w = store.begin_shard(DiskId(1), key, g).unwrap();
        w.write(&data).unwrap();
        w.finish(&store, &h).unwrap();
        keys.push(key);
    }
    let h = header(crcs, 150);
    let manifest = tombstone_of(&h);
    let sealed = manifest
        .seal(&ManifestKey::from_bytes([3; 32]), [0; 12])
        .unwrap();
    store.put_manifest(&sealed).unwrap();
    let listed = store.list_shards(None, 10).unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|s| s.len == g.shard_len()));
    assert_eq!(store.list_shards(Some(keys[0]), 10).unwrap().len(), 1);
    let files = |d: &Path| {
        fs::read_dir(d.join("shards"))
            .unwrap()
            .flat_map(|sub| fs::read_dir(sub.unwrap().path()).unwrap())
            .count()
    };
    assert_eq!(files(&disk), 2);

    // Shards only: the record stays.
    let item = Collectable {
        object: h.object,
        version: h.version,
        manifest: false,
        reason: 3,
    };
    let (now, total) = store.collect(&[item], 7).unwrap();
    assert_eq!((now.items, now.bytes), (1, 2 * g.shard_len()));
    assert_eq!(total, now);
    assert_eq!(files(&disk), 0);
    assert!(store.list_shards(None, 10).unwrap().is_empty());
    assert!(matches!(
        store.read_blocks(&keys[0], 0, 1),
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.manifests(&h.object).unwrap().len(), 1);
    // Then the record; a repeat finds nothing and records nothing.
    let item = Collectable {
        manifest: true,
        ..item
    };
    let (now, total) = store.collect(&[item], 8).unwrap();
    assert_eq!((now.items, now.bytes), (1, sealed.len() as u64));
    assert_eq!(total.items, 2);
    assert!(store.manifests(&h.object).unwrap().is_empty());
    let (now, total2) = store.collect(&[item], 9).unwrap();
    assert_eq!((now.items, total2), (0, total));
    // The totals survive a restart.
    drop(store);
    let store = Store::open(&dir.path().join("state"), &[(DiskId(1), disk)], TEST_CACHE).unwrap();
    assert_eq!(store.collected_totals().unwrap(), total);
}

#[test]
fn files_no_header_names_are_counted_and_only_old_shard_files_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("d1");
    init_disk(&disk, NodeId(1), DiskId(1)).unwrap();
    let store = Store::open(&dir.path().join("state"), &[(DiskId(1), disk)], TEST_CACHE).unwrap();
    let (g, data, crcs) = small_shard();
    let h = header(crcs, 150);
    let key = ShardKey {
        object: h.object,
        version: h.version,
        shard: 0,
    };
    let mut w = store.begin_shard(DiskId(1), key, g).unwrap();
    w.write(&data).unwrap();
    w.finish(&store, &h).unwrap();
    // A crash left a shard file without its header, and someone left a file of their own.
    let stray_key = ShardKey { shard: 1, ..key };
    let stray = store.shard_path(DiskId(1), &stray_key).unwrap();
    fs::write(&stray, &data).unwrap();
    let foreign = stray.with_file_name("notes.txt");
    fs::write(&foreign, b"mine").unwrap();
    let now = crate::sys::now_ms();
    let sizes = data.len() as u64 + 4;

    // Young: counted, not deleted.
    let (found, old) = store.sweep_files(now, 3_600_000, true).unwrap();
    assert_eq!((found.items, found.bytes, old.items), (2, sizes, 0));
    assert!(stray.exists());
    // A dry look at old ones deletes nothing.
    let (_, old) = store
        .sweep_files(now + 3_600_000, 3_600_000, false)
        .unwrap();
    assert_eq!((old.items, old.bytes), (1, data.len() as u64));
    assert!(stray.exists());
    // Old: the shard file goes into the ledger and away; the foreign file and the shard with
    // its header stay.
    let (_, deleted) = store.sweep_files(now + 3_600_000, 3_600_000, true).unwrap();
    assert_eq!((deleted.items, deleted.bytes), (1, data.len() as u64));
    assert!(!stray.exists() && foreign.exists());
    assert_eq!(store.collected_totals().unwrap(), deleted);
    assert!(matches!(
        store.read_blocks(&key, 0, 2).unwrap()[..],
        [BlockRead::Ok(_), BlockRead::Ok(_)]
    ));
}

#[test]
fn a_withdrawn_records_bytes_are_trimmed_to_its_key_which_still_refuses_the_write() {
    let (_dir, store, h, data, sealed) = with_inline_shard();
    store.abort_manifest(&h.object, h.version, None).unwrap();
    let age = 3_600_000;
    let young = h.version.physical_ms + 10;
    let old = h.version.physical_ms + age;
    // Younger than the age: nothing.
    assert_eq!(store.trim_withdrawn(young, age, true).unwrap().items, 0);
    // A dry run counts, and trims nothing.
    let would = store.trim_withdrawn(old, age, false).unwrap();
    assert_eq!((would.items, would.bytes), (1, sealed.len() as u64));
    let before = store.collected_totals().unwrap();
    let trimmed = store.trim_withdrawn(old, age, true).unwrap();
    assert_eq!((trimmed.items, trimmed.bytes), (1, sealed.len() as u64));
    let after = store.collected_totals().unwrap();
    assert_eq!(
        after.bytes - before.bytes,
        sealed.len() as u64,
        "in the ledger"
    );
    // Once trimmed, nothing more; and the key still refuses the write.
    assert_eq!(store.trim_withdrawn(old, age, true).unwrap().items, 0);
    assert!(matches!(
        store.put_manifest_inline(&sealed, &[(h, data)]),
        Err(StoreError::Withdrawn)
    ));
}

/// Rewrites a closed store's database as stores before inline rows kept it: each inline
/// shard's header row without its bytes, the bytes in `INLINE`, no format mark; and `stray`
/// bytes under a key no row names. Returns how many inline rows were rewritten.
pub(super) fn as_before_inline_rows(db: &Database, stray: Option<(ShardKey, &[u8])>) -> usize {
    use redb::ReadableTable as _;
    let txn = db.begin_write().unwrap();
    let mut n = 0;
    {
        let mut headers = txn.open_table(HEADERS).unwrap();
        let mut inline = txn.open_table(INLINE).unwrap();
        let rows: Vec<(Vec<u8>, Vec<u8>)> = headers
            .iter()
            .unwrap()
            .map(|r| {
                let (k, v) = r.unwrap();
                (k.value().to_vec(), v.value().to_vec())
            })
            .collect();
        for (k, v) in rows {
            let (disk, header, data) = split_row(&v).unwrap();
            let Some(data) = data else { continue };
            headers.insert(&k[..], &file_row(disk, header)[..]).unwrap();
            inline.insert(&k[..], data).unwrap();
            n += 1;
        }
        if let Some((k, data)) = stray {
            inline.insert(&k.to_bytes()[..], data).unwrap();
        }
    }
    txn.delete_table(STORE_FORMAT).unwrap();
    txn.commit().unwrap();
    n
}

#[test]
fn a_store_from_before_inline_rows_moves_their_bytes_in_at_its_first_start() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("d1");
    init_disk(&disk, NodeId(1), DiskId(1)).unwrap();
    let state = dir.path().join("state");
    let open = || Store::open(&state, &[(DiskId(1), disk.clone())], TEST_CACHE).unwrap();
    let (g, data, _) = small_shard();
    // A shard file (object 4) and two small objects' inline shards (objects 6 and 7).
    let store = open();
    let h = checked_header(4, &data);
    let file_key = ShardKey {
        object: h.object,
        version: h.version,
        shard: 0,
    };
    let mut w = store.begin_shard(DiskId(1), file_key, g).unwrap();
    w.write(&data).unwrap();
    w.finish(&store, &h).unwrap();
    let mk = ManifestKey::from_bytes([3; 32]);
    let mut inline_keys = Vec::new();
    for o in [6, 7] {
        let mut h = h.clone();
        h.object = ObjectId([o; 32]);
        let sealed = tombstone_of(&h).seal(&mk, [0; 12]).unwrap();
        store
            .put_manifest_inline(&sealed, &[(h.clone(), data.clone())])
            .unwrap();
        inline_keys.push(ShardKey {
            object: h.object,
            version: h.version,
            shard: 0,
        });
    }
    drop(store);
    let stray = ShardKey {
        object: ObjectId([9; 32]),
        ..file_key
    };
    let db = Database::open(state.join("node.redb")).unwrap();
    assert_eq!(as_before_inline_rows(&db, Some((stray, &data[..10]))), 2);
    drop(db);

    let store = open();
    for key in inline_keys.iter().chain([&file_key]) {
        let got: Vec<u8> = store
            .read_blocks(key, 0, 2)
            .unwrap()
            .into_iter()
            .flat_map(|b| match b {
                BlockRead::Ok(b) => b.to_vec(),
                BlockRead::Corrupt => panic!("{key:?} corrupt"),
            })
            .collect();
        assert_eq!(got, data, "{key:?}");
    }
    assert_eq!(store.list_shards(None, 10).unwrap().len(), 3);
    assert_eq!(store.usage().unwrap().0, 3);
    // Scrub finds every shard whole; the stray bytes are in the quarantine ledger.
    let step = store.scrub_step(u64::MAX, 1).unwrap();
    assert_eq!((step.shards, step.bad.len()), (3, 0), "{step:?}");
    assert_eq!(store.quarantined().unwrap(), 1);
    {
        let txn = store.db.begin_read().unwrap();
        assert!(txn.open_table(INLINE).is_err(), "the old table is gone");
    }
    // Moved once: the next start finds nothing to move, and collection frees an inline shard.
    drop(store);
    let store = open();
    assert_eq!(store.quarantined().unwrap(), 1);
    let (freed, _) = store
        .collect(
            &[Collectable {
                object: inline_keys[0].object,
                version: inline_keys[0].version,
                manifest: true,
                reason: crate::core::collect::CollectReason::Overwritten as u8,
            }],
            5,
        )
        .unwrap();
    assert_eq!(freed.items, 1);
    assert!(matches!(
        store.read_blocks(&inline_keys[0], 0, 1),
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.list_shards(None, 10).unwrap().len(), 2);
}

#[test]
fn a_corrupt_inline_row_is_quarantined_whole_with_its_bytes() {
    let (_dir, store, h, data, _) = with_inline_shard();
    let key = ShardKey {
        object: h.object,
        version: h.version,
        shard: 0,
    };
    use redb::ReadableTable as _;
    // One bit of the shard's bytes flipped in its row.
    let txn = store.db.begin_write().unwrap();
    let row = {
        let mut t = txn.open_table(HEADERS).unwrap();
        let mut row = t
            .get(&key.to_bytes()[..])
            .unwrap()
            .unwrap()
            .value()
            .to_vec();
        assert!(row.ends_with(&data), "the bytes are in the row");
        let at = row.len() - 3;
        row[at] ^= 4;
        t.insert(&key.to_bytes()[..], &row[..]).unwrap();
        row
    };
    txn.commit().unwrap();
    assert!(matches!(
        store.read_blocks(&key, 0, 2).unwrap()[..],
        [BlockRead::Ok(_), BlockRead::Corrupt]
    ));
    let step = store.scrub_step(u64::MAX, 7).unwrap();
    assert_eq!(step.bad.len(), 1, "{step:?}");
    assert!(matches!(
        store.read_blocks(&key, 0, 1),
        Err(StoreError::NotFound)
    ));
    // The ledger holds the row, bytes and all.
    let txn = store.db.begin_read().unwrap();
    let q = txn.open_table(QUARANTINE).unwrap();
    let (_, rec) = redb::ReadableTable::first(&q).unwrap().unwrap();
    let rec = rec.value();
    assert!(rec.starts_with(b"at_ms = 7\ninline = true\n"));
    assert!(rec.ends_with(&row), "the row, bytes and all");
    // Rows cut short or claiming a header longer than themselves are errors, not panics.
    for bad in [
        &[0xff; 3][..],
        &[0xff; 6],
        &[0xff, 0xff, 0xff, 0xff, 200, 0, 0, 0, 1, 2],
    ] {
        assert!(split_row(bad).is_err(), "{bad:?}");
        assert!(decode_row(bad).is_err(), "{bad:?}");
    }
    assert!(
        decode_row(&row[..row.len() - data.len() - 1]).is_err(),
        "a header cut short"
    );
}

#[test]
fn a_database_of_a_newer_format_is_refused_and_left_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("d1");
    init_disk(&disk, NodeId(1), DiskId(1)).unwrap();
    let state = dir.path().join("state");
    let open = || Store::open(&state, &[(DiskId(1), disk.clone())], TEST_CACHE);
    drop(open().unwrap());
    let db = Database::open(state.join("node.redb")).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(STORE_FORMAT)
        .unwrap()
        .insert("version", STORE_FORMAT_VERSION + 1)
        .unwrap();
    txn.commit().unwrap();
    drop(db);
    let err = open().unwrap_err().to_string();
    assert!(err.contains("newer than this build"), "{err}");
    let db = Database::open(state.join("node.redb")).unwrap();
    let txn = db.begin_read().unwrap();
    let t = txn.open_table(STORE_FORMAT).unwrap();
    assert_eq!(
        t.get("version").unwrap().unwrap().value(),
        STORE_FORMAT_VERSION + 1
    );
}
