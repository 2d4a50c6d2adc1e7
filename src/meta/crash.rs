//! Crash at every point of the gateway's index: a bucket created, object versions applied
//! (written, overwritten, deleted), the repair backlog recorded, drained and given up on, a
//! multipart upload and its part recorded and dropped, withdrawals recorded, a checkpoint kept,
//! a write's intent recorded and then settled by the index taking its version;
//! the database on the simulated disk (`sys::sim`) crashing after each of its writes and
//! syncs in turn, left synced only, torn, or whole. Each time the index must open, and read
//! exactly as it did after the last acknowledged step, or (for the step the crash
//! interrupted) after that step: every step all or nothing, nothing acknowledged lost.

use std::path::Path;

use super::lost::LostRecord;
use super::tests::{entry, v};
use super::uploads::{PartRecord, UploadRecord};
use super::*;
use crate::core::ids::{NodeId, ObjectId};
use crate::core::ops::Pending;
use crate::sys::files::Files as _;
use crate::sys::sim::{SimFiles, Survives};

const DB: &str = "/gateway/index.redb";

const STEPS: usize = 15;

fn step(ix: &Index, i: usize) -> Result<(), MetaError> {
    let a = ObjectId([0xA; 32]);
    let b = ObjectId([0xB; 32]);
    match i {
        0 => ix.create_bucket("registry", 1).map(|_| ()),
        1 => ix
            .apply("registry", "parcel/a", &entry(2, false))
            .map(|_| ()),
        2 => ix.record_repair(&a, v(2), &[3, 4]),
        3 => ix.put_upload(
            "upload-1",
            &UploadRecord {
                bucket: "registry".into(),
                key: "deeds/big".into(),
                initiated_ms: 3,
                content_type: None,
                user_metadata: Vec::new(),
                headers: Vec::new(),
                checksum_algorithm: None,
                lock_mode: None,
                lock_until_ms: None,
                legal_hold: None,
            },
        ),
        4 => ix
            .put_part(
                "upload-1",
                1,
                &PartRecord {
                    size: 5 << 20,
                    etag: "part-etag".into(),
                    modified_ms: 4,
                    object_key: "upload-1/1".into(),
                    checksums: Vec::new(),
                },
            )
            .map(|_| ()),
        5 => ix
            .apply("registry", "parcel/a", &entry(3, false))
            .map(|_| ()),
        6 => ix
            .apply("registry", "parcel/b", &entry(4, false))
            .map(|_| ()),
        7 => ix
            .apply("registry", "parcel/a", &entry(5, true))
            .map(|_| ()),
        8 => {
            let mut p = Pending::new();
            p.insert((b, v(6)), [NodeId(2), NodeId(4)].into());
            ix.set_withdrawals(&p)
        }
        9 => ix.repair_done(&a, v(2)),
        10 => ix.give_up_repair(
            &b,
            v(4),
            &LostRecord {
                bucket: "registry".into(),
                key: "parcel/b".into(),
                shards: vec![0, 1, 2],
                good: 2,
                needed: 3,
                found_ms: 10,
            },
        ),
        11 => ix.delete_upload("upload-1"),
        12 => ix.meta_set("checkpoint", b"checkpoint 1"),
        // A write recorded before its manifests are sent, then taken (which settles it).
        13 => ix.intend("registry", "parcel/c", &ObjectId([0xC; 32]), v(7), v(7)),
        14 => ix
            .apply("registry", "parcel/c", &entry(7, false))
            .map(|_| ()),
        _ => unreachable!(),
    }
}

/// Everything the index answers, as text.
fn snapshot(ix: &Index) -> Result<String, MetaError> {
    Ok(format!(
        "buckets {:?}\na {:?}\nb {:?}\ncounts {:?}\nmax {:?}\nrepairs {:?}\nuploads {:?}\nparts {:?}\n\
         withdrawals {:?}\nunrebuildable {:?}\ncheckpoint {:?}\nc {:?}\nintents {:?}",
        ix.buckets()?,
        ix.get("registry", "parcel/a")?,
        ix.get("registry", "parcel/b")?,
        ix.counts()?,
        ix.max_order()?,
        ix.repairs()?,
        ix.uploads()?,
        ix.parts("upload-1")?,
        ix.withdrawals()?,
        ix.unrebuildable()?,
        ix.meta_get("checkpoint")?,
        ix.get("registry", "parcel/c")?,
        ix.intents()?,
    ))
}

fn open(fs: &SimFiles) -> Result<Index, MetaError> {
    Index::open_on(
        fs.database(Path::new(DB), DEFAULT_INDEX_CACHE)
            .map_err(db_err)?,
    )
}

/// A fresh index on a fresh disk, durable (its creation is not among the crash points).
fn fresh() -> (SimFiles, Index) {
    let fs = SimFiles::new();
    fs.create_dir_all(Path::new("/gateway")).unwrap();
    let ix = open(&fs).unwrap();
    fs.settle();
    (fs, ix)
}

/// Runs the steps, crashing after `crash_after` operations; returns the disk, how many steps
/// were acknowledged, and the operations counted.
fn run(crash_after: Option<u64>, snapshots: Option<&mut Vec<String>>) -> (SimFiles, usize, u64) {
    let (fs, ix) = fresh();
    let base = fs.ops();
    if let Some(n) = crash_after {
        fs.crash_after(n);
    }
    let mut snaps = snapshots;
    if let Some(s) = snaps.as_deref_mut() {
        s.push(snapshot(&ix).unwrap());
    }
    let mut acked = 0;
    for i in 0..STEPS {
        if step(&ix, i).is_err() {
            break;
        }
        acked += 1;
        if let Some(s) = snaps.as_deref_mut() {
            s.push(snapshot(&ix).unwrap());
        }
    }
    drop(ix);
    (fs.clone(), acked, fs.ops() - base)
}

#[test]
fn every_crash_point_of_the_gateway_index_leaves_it_as_after_a_whole_step() {
    let mut after = Vec::new();
    let (_, acked, total) = run(None, Some(&mut after));
    assert_eq!(acked, STEPS);
    // The steps change what the index answers (a check that could not fail would not).
    for w in after.windows(2) {
        assert_ne!(w[0], w[1], "a step changed nothing");
    }
    let mut checked = 0;
    let mut failures = Vec::new();
    for point in 0..=total {
        let (fs, acked, _) = run(Some(point), None);
        for how in Survives::ALL {
            let image = fs.after_crash(how);
            checked += 1;
            let got = open(&image).and_then(|ix| snapshot(&ix));
            let ok = match &got {
                Ok(s) => *s == after[acked] || after.get(acked + 1) == Some(s),
                Err(_) => false,
            };
            if !ok {
                failures.push(format!(
                    "crash after operation {point} of {total}, {how:?}, {acked} steps acknowledged: {}",
                    match got {
                        Ok(s) => format!("reads as\n{s}\nnot as after step {acked}:\n{}", after[acked]),
                        Err(e) => format!("does not open: {e}"),
                    }
                ));
            }
        }
    }
    eprintln!(
        "index crash points: {} operations x {} ways = {checked} checked, {} failed",
        total + 1,
        Survives::ALL.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
