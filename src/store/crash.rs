//! Crash at every point: a node's store runs every kind of write it takes (a large shard, a
//! manifest, a small object's manifest with its inline shards, a withdrawal, a withdrawal that
//! overtakes its write, a repair rewriting a shard, a scrub quarantine, a catalog checkpoint)
//! on the simulated file system (`sim`), crashing after each of its operations in turn; for
//! each crash point and each way a crash can leave the disk (synced only, a torn last write,
//! everything), the store is opened again from what survived and checked:
//! - it opens, and its temp files are gone;
//! - every write acknowledged before the crash reads back whole;
//! - the write the crash interrupted is there whole or not at all (a manifest and its inline
//!   shards together); nothing later is there;
//! - a withdrawal acknowledged stays withdrawn (a late write of that version is refused);
//! - a shard moved aside is in the quarantine ledger, and its bytes in `quarantine/`;
//! - the store takes a new write and reads it back.

use std::path::PathBuf;
use std::sync::Arc;

use super::tests::{as_before_inline_rows, header};
use super::*;
use crate::core::catalog::Checkpoint;
use crate::core::format::{Manifest, ManifestBody, VersionState};
use crate::core::hlc::Version;
use crate::core::ids::{GatewayId, ObjectId};
use crate::core::keys::ManifestKey;
use crate::core::stripe::{BlockHash, Profile};
use crate::sys::sim::{SimFiles, Survives};

const DISK: DiskId = DiskId(1);

fn disk_root() -> PathBuf {
    PathBuf::from("/node/d1")
}

fn state_dir() -> PathBuf {
    PathBuf::from("/node/state")
}

fn version(n: u64) -> Version {
    Version {
        physical_ms: n,
        logical: 0,
        gateway: GatewayId(1),
    }
}

/// A shard of `object` (k = 2, m = 1, 64-byte blocks), its bytes and its header.
fn shard(object: u8, size: u64, seed: u8) -> (ShardKey, Geometry, Vec<u8>, ShardHeader) {
    let g = Geometry {
        profile: Profile::new(2, 1).unwrap(),
        block_size: 64,
        size,
    };
    let data: Vec<u8> = (0..g.shard_len())
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    let crcs = (0..g.stripe_count())
        .map(|s| {
            let at = g.block_offset(s) as usize;
            crc32fast::hash(&data[at..at + g.block_len(s)])
        })
        .collect();
    let mut h = header(crcs, size);
    h.object = ObjectId([object; 32]);
    h.block_hashes = vec![BlockHash([0; 32]); 3 * g.stripe_count() as usize];
    let key = ShardKey {
        object: h.object,
        version: h.version,
        shard: 0,
    };
    (key, g, data, h)
}

fn sealed(object: u8) -> Vec<u8> {
    Manifest {
        bucket: "registry".into(),
        key: format!("parcel-{object}"),
        object: ObjectId([object; 32]),
        version: version(1),
        created_ms: 1,
        body: ManifestBody::Tombstone,
        order: version(1),
        state: VersionState::unversioned(version(1)),
    }
    .seal(&ManifestKey::from_bytes([3; 32]), [object; 12])
    .unwrap()
}

fn write_shard(store: &Store, object: u8, size: u64, seed: u8) -> Result<(), StoreError> {
    let (key, g, data, h) = shard(object, size, seed);
    let mut w = store.begin_shard(DISK, key, g)?;
    let half = data.len() / 2;
    w.write(&data[..half])?;
    w.write(&data[half..])?;
    w.finish(store, &h)
}

/// Whether a shard reads back whole (`Some(true)`), is absent (`Some(false)`), or is there
/// but not whole (`None`).
fn shard_state(store: &Store, object: u8, size: u64, seed: u8) -> Option<bool> {
    let (key, g, data, _) = shard(object, size, seed);
    match store.read_blocks(&key, 0, g.stripe_count()) {
        Err(StoreError::NotFound) => Some(false),
        Ok(blocks) => {
            let mut got = Vec::new();
            for b in blocks {
                match b {
                    BlockRead::Ok(b) => got.extend_from_slice(&b),
                    BlockRead::Corrupt => return None,
                }
            }
            (got == data).then_some(true)
        }
        Err(_) => None,
    }
}

fn checkpoint() -> Vec<u8> {
    Checkpoint {
        seq: 1,
        created_ms: 1,
        cutoff: version(1),
        leaves: 1,
        root: [7; 32],
        prev: [0; 32],
        excluded: Vec::new(),
        signature: [9; 64],
    }
    .encode()
}

const LARGE: u64 = 700;
const STEPS: &[&str] = &[
    "large shard A",
    "manifest of A",
    "small object B: manifest and inline shard",
    "manifest of C",
    "withdraw C",
    "withdraw D before its write arrives",
    "repair rewrites shard A",
    "shard E",
    "scrub quarantines E",
    "catalog checkpoint",
];

/// Step `i` of the scenario.
fn step(store: &Store, i: usize) -> Result<(), StoreError> {
    match i {
        0 => write_shard(store, 0xA, LARGE, 1),
        1 => store.put_manifest(&sealed(0xA)).map(|_| ()),
        2 => {
            let (_, _, data, h) = shard(0xB, 100, 2);
            store
                .put_manifest_inline(&sealed(0xB), &[(h, data)])
                .map(|_| ())
        }
        3 => store.put_manifest(&sealed(0xC)).map(|_| ()),
        4 => store.abort_manifest(&ObjectId([0xC; 32]), version(1), Some([0xC; 32])),
        5 => store.abort_manifest(&ObjectId([0xD; 32]), version(1), None),
        6 => write_shard(store, 0xA, LARGE, 1),
        7 => write_shard(store, 0xE, LARGE, 3),
        8 => store
            .quarantine(&shard(0xE, LARGE, 3).0, "scrub: bad block", 5)
            .map(|_| ()),
        9 => store.put_checkpoint(&checkpoint()),
        _ => unreachable!(),
    }
}

/// A store on a fresh simulated disk, as `exclave init` and a first start leave it, durable
/// (its setup is not among the crash points).
fn fresh() -> (SimFiles, Store) {
    let fs = SimFiles::new();
    init_disk_on(&fs, &disk_root(), NodeId(1), DISK).unwrap();
    let store = Store::open_on(
        Arc::new(fs.clone()),
        &state_dir(),
        &[(DISK, disk_root())],
        DEFAULT_DB_CACHE,
    )
    .unwrap();
    fs.settle();
    (fs, store)
}

/// Runs the scenario, crashing after `crash_after` operations (None: no crash); returns the
/// file system and how many steps were acknowledged.
fn run(crash_after: Option<u64>) -> (SimFiles, usize, u64) {
    let (fs, store) = fresh();
    let base = fs.ops();
    if let Some(n) = crash_after {
        fs.crash_after(n);
    }
    let mut acked = 0;
    for i in 0..STEPS.len() {
        if step(&store, i).is_err() {
            break;
        }
        acked += 1;
    }
    drop(store);
    let ops = fs.ops() - base;
    (fs, acked, ops)
}

/// What a step's effect may be after the crash: done, maybe, or not yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum When {
    Done,
    Maybe,
    NotYet,
}

fn check(store: &Store, files: &SimFiles, acked: usize) -> Result<(), String> {
    let when = |i: usize| match i.cmp(&acked) {
        std::cmp::Ordering::Less => When::Done,
        std::cmp::Ordering::Equal => When::Maybe,
        std::cmp::Ordering::Greater => When::NotYet,
    };
    let expect = |what: &str, w: When, present: bool| -> Result<(), String> {
        match (w, present) {
            (When::Done, false) => Err(format!("{what}: acknowledged, but gone")),
            (When::NotYet, true) => Err(format!("{what}: there before it was written")),
            _ => Ok(()),
        }
    };
    let whole = |what: &str, s: Option<bool>| -> Result<bool, String> {
        s.ok_or_else(|| format!("{what}: there but not whole (half-visible)"))
    };

    // Temp files of interrupted writes are gone.
    let tmp = files.files_under(&disk_root().join("tmp"));
    if !tmp.is_empty() {
        return Err(format!("temp files left after the restart: {tmp:?}"));
    }
    // A: written (step 0), rewritten by repair (step 6): while it was acknowledged, it reads
    // back whole, rewrite or not.
    let a = whole("shard A", shard_state(store, 0xA, LARGE, 1))?;
    expect("shard A", when(0), a)?;
    let manifests = |o: u8| store.manifests(&ObjectId([o; 32])).unwrap();
    let m = manifests(0xA);
    expect("manifest of A", when(1), !m.is_empty())?;
    if !m.is_empty() && m != [sealed(0xA)] {
        return Err("manifest of A: other bytes".into());
    }
    // B: the manifest and its inline shard land together or not at all.
    let b = whole("inline shard B", shard_state(store, 0xB, 100, 2))?;
    let bm = !manifests(0xB).is_empty();
    if b != bm {
        return Err(format!(
            "small object B: manifest there {bm}, inline shard there {b}"
        ));
    }
    expect("small object B", when(2), b)?;
    // C: written, then withdrawn.
    let c = !manifests(0xC).is_empty();
    match (when(3), when(4)) {
        (When::Done, When::Done) if c => return Err("C: withdrawn, still served".into()),
        (When::Done, When::NotYet) if !c => return Err("C: acknowledged, but gone".into()),
        (When::NotYet, _) if c => return Err("C: there before it was written".into()),
        _ => {}
    }
    // C's withdrawal came with a proof: kept with it, in the same commit.
    let proven = store.list_withdrawn(None, 10).unwrap();
    let c_proven = proven
        .iter()
        .any(|w| w.object == ObjectId([0xC; 32]) && w.proof == [0xC; 32]);
    if proven.len() != usize::from(c_proven) {
        return Err(format!("withdrawal proofs: {proven:?}"));
    }
    // Interrupted (C itself was acknowledged before): withdrawn and proof kept, or neither.
    if when(4) == When::Maybe && c_proven != manifests(0xC).is_empty() {
        return Err(format!(
            "C: withdrawn {}, its proof kept {c_proven}: not one commit",
            manifests(0xC).is_empty()
        ));
    }
    expect("C's withdrawal proof", when(4), c_proven)?;
    // Acknowledged withdrawals hold against a late write.
    for (o, i) in [(0xC, 4), (0xD, 5)] {
        if when(i) == When::Done
            && !matches!(store.put_manifest(&sealed(o)), Err(StoreError::Withdrawn))
        {
            return Err(format!(
                "{:X}: withdrawn, and a late write of it was taken",
                o
            ));
        }
    }
    // E: written, then quarantined by scrub.
    let e = whole("shard E", shard_state(store, 0xE, LARGE, 3))?;
    match (when(7), when(8)) {
        (When::Done, When::NotYet) if !e => return Err("shard E: acknowledged, but gone".into()),
        (When::Done, When::Done) if e => return Err("shard E: quarantined, still served".into()),
        (When::NotYet, _) if e => return Err("shard E: there before it was written".into()),
        _ => {}
    }
    // Everything moved aside is accounted for: in the ledger, bytes in quarantine/.
    let ledger = store.quarantined().unwrap();
    let aside = files.files_under(&disk_root().join("quarantine")).len() as u64;
    let must = [6, 8].iter().filter(|&&i| when(i) == When::Done).count() as u64;
    if ledger < must {
        return Err(format!(
            "{must} shards moved aside by acknowledged steps, {ledger} in the ledger"
        ));
    }
    if aside < ledger {
        return Err(format!(
            "{ledger} in the quarantine ledger, {aside} files in quarantine/"
        ));
    }
    let cps = store.checkpoints(4).unwrap();
    expect("checkpoint", when(9), !cps.is_empty())?;
    if !cps.is_empty() && cps != [checkpoint()] {
        return Err("checkpoint: other bytes".into());
    }
    // The store goes on: a new shard is taken and reads back.
    write_shard(store, 0xF, LARGE, 4).map_err(|e| format!("a write after the restart: {e}"))?;
    if shard_state(store, 0xF, LARGE, 4) != Some(true) {
        return Err("a write after the restart does not read back".into());
    }
    Ok(())
}

/// Reopens the store on what a crash left.
fn reopen(files: &SimFiles) -> Result<Store, String> {
    Store::open_on(
        Arc::new(files.clone()),
        &state_dir(),
        &[(DISK, disk_root())],
        DEFAULT_DB_CACHE,
    )
    .map_err(|e| format!("the store does not open: {e}"))
}

#[test]
fn every_crash_point_of_every_node_write_leaves_a_store_that_opens_whole() {
    let (full, acked, total) = run(None);
    assert_eq!(acked, STEPS.len(), "the scenario runs without a crash");
    let base = fresh().0.ops();
    let mut checked = 0;
    let mut failures = Vec::new();
    for point in 0..=total {
        let (fs, acked, _) = run(Some(point));
        assert!(point == total || fs.has_crashed());
        for how in Survives::ALL {
            let image = fs.after_crash(how);
            let r = reopen(&image).and_then(|store| check(&store, &image, acked));
            checked += 1;
            if let Err(e) = r {
                failures.push(format!(
                    "crash after operation {point} of {total} ({}; next: {}), {how:?}, during \"{}\": {e}",
                    if point == 0 { "none".into() } else { full.describe(base + point - 1) },
                    full.describe(base + point),
                    STEPS.get(acked).unwrap_or(&"none"),
                ));
            }
        }
    }
    eprintln!(
        "crash points: {} operations x {} ways = {checked} checked, {} failed",
        total + 1,
        Survives::ALL.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The one-time move of inline shards' bytes into their rows (a store from before inline rows
/// opened by this build; five inline shards, moved two per commit in tests), crashed after each
/// of its operations: whatever survived opens, every shard and manifest reads back whole, the
/// move is done by then, and the store takes writes.
#[test]
fn every_crash_point_of_moving_inline_bytes_into_their_rows_loses_nothing() {
    // Shard A, its manifest, and small objects B and 0x20-0x23 with their inline shards, then
    // the database rewritten as the stores before kept it.
    const SMALL: [u8; 5] = [0xB, 0x20, 0x21, 0x22, 0x23];
    let (fs, store) = fresh();
    for i in 0..3 {
        step(&store, i).unwrap();
    }
    for o in &SMALL[1..] {
        let (_, _, data, h) = shard(*o, 100, *o);
        store
            .put_manifest_inline(&sealed(*o), &[(h, data)])
            .unwrap();
    }
    drop(store);
    let db = fs
        .database(&state_dir().join("node.redb"), DEFAULT_DB_CACHE)
        .unwrap();
    assert_eq!(as_before_inline_rows(&db, None), SMALL.len());
    drop(db);
    fs.settle();
    let old = fs.after_crash(Survives::Synced);

    let check = |store: &Store| -> Result<(), String> {
        if shard_state(store, 0xA, LARGE, 1) != Some(true) {
            return Err("shard A does not read back whole".into());
        }
        for o in SMALL {
            let seed = if o == 0xB { 2 } else { o };
            if shard_state(store, o, 100, seed) != Some(true) {
                return Err(format!("inline shard {o:X} does not read back whole"));
            }
        }
        for o in [0xA].into_iter().chain(SMALL) {
            if store.manifests(&ObjectId([o; 32])).unwrap() != [sealed(o)] {
                return Err(format!("manifest of {o:X} is not the one written"));
            }
        }
        if store.db.begin_read().unwrap().open_table(INLINE).is_ok() {
            return Err("the old table is still there after a start".into());
        }
        if store.quarantined().unwrap() != 0 {
            return Err("something was quarantined".into());
        }
        write_shard(store, 0xF, LARGE, 4).map_err(|e| format!("a write after: {e}"))?;
        if shard_state(store, 0xF, LARGE, 4) != Some(true) {
            return Err("a write after the move does not read back".into());
        }
        Ok(())
    };
    let total = {
        let image = old.after_crash(Survives::Everything);
        let store = reopen(&image).unwrap();
        check(&store).unwrap();
        drop(store);
        let image = old.after_crash(Survives::Everything);
        drop(reopen(&image).unwrap());
        image.ops()
    };
    let mut failures = Vec::new();
    for point in 0..=total {
        let run = old.after_crash(Survives::Everything);
        run.crash_after(point);
        drop(reopen(&run));
        assert!(point == total || run.has_crashed());
        for how in Survives::ALL {
            let image = run.after_crash(how);
            let r = reopen(&image).and_then(|store| check(&store));
            if let Err(e) = r {
                failures.push(format!(
                    "crash after operation {point} of {total}, {how:?}: {e}"
                ));
            }
        }
    }
    eprintln!(
        "crash points of the move: {} operations x {} ways, {} failed",
        total + 1,
        Survives::ALL.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
