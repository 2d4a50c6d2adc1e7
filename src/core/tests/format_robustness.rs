//! Decoders of untrusted bytes: random input and bit-flipped valid encodings never panic, and
//! the bytes written by format versions 1 and 2 still read back.

use super::{TestRng, oid, version};
use crate::core::format::{
    BucketConfig, Checksum, ChecksumAlgorithm, DefaultRetention, FormatError, LockMode, Manifest,
    ManifestBody, ManifestEnvelope, ObjectMeta, Part, Retention, ShardHeader, VersionState,
    Versioning,
};
use crate::core::ids::{DiskId, NodeId, ShardIndex, SiteId};
use crate::core::keys::{DataKey, ManifestKey, MasterKey};
use crate::core::layout::ShardLocation;
use crate::core::stripe::BlockHash;

const CASES: usize = 100_000;

fn placement(n: u8) -> Vec<ShardLocation> {
    (0..n)
        .map(|i| ShardLocation {
            site: SiteId(u16::from(i)),
            node: NodeId(u32::from(i) * 10),
            disk: DiskId(u32::from(i) * 100),
        })
        .collect()
}

pub(crate) fn sample_manifest() -> Manifest {
    let mk = MasterKey::from_bytes(1, [0x11; 32]);
    let dek = DataKey::from_bytes([0x22; 32]);
    Manifest {
        bucket: "land-registry".into(),
        key: "parcels/0001.json".into(),
        object: oid(7),
        version: version(1_700_000_000_000),
        created_ms: 1_700_000_000_123,
        body: ManifestBody::Object(ObjectMeta {
            size: 1_000_000,
            content_type: Some("application/json".into()),
            user_metadata: vec![("owner".into(), "state".into())],
            headers: vec![("cache-control".into(), "no-cache".into())],
            etag: "9e107d9d372bb6826bd81d3542a419d6".into(),
            checksums: vec![Checksum {
                algorithm: ChecksumAlgorithm::Crc32c,
                value: vec![1, 2, 3, 4],
            }],
            dek: mk.wrap_data_key(&dek, &oid(7), version(1_700_000_000_000), [0x33; 12]),
            k: 3,
            m: 2,
            block_size: 256 * 1024,
            layout_epoch: 4,
            placement: placement(5),
            block_hashes: (0..10).map(|i| BlockHash([i; 32])).collect(),
            inline: false,
            parts: vec![Part {
                size: 1_000_000,
                etag: "abc".into(),
            }],
        }),
        order: version(1_700_000_000_000),
        state: VersionState::unversioned(version(1_700_000_000_000)),
    }
}

/// A format 2 manifest with every field of the version's state set.
pub(crate) fn sample_manifest_v2() -> Manifest {
    Manifest {
        order: version(1_700_000_009_000),
        state: VersionState {
            written_under: Versioning::Enabled,
            removed: true,
            retention: Some(Retention {
                mode: LockMode::Compliance,
                until_ms: 1_900_000_000_000,
            }),
            legal_hold: true,
            revised: version(1_700_000_009_500),
            bucket: Some(BucketConfig {
                versioning: Versioning::Suspended,
                object_lock: true,
                default_retention: Some(DefaultRetention {
                    mode: LockMode::Governance,
                    period: 7,
                    years: true,
                }),
            }),
        },
        ..sample_manifest()
    }
}

pub(crate) fn sample_header() -> ShardHeader {
    ShardHeader {
        object: oid(7),
        version: version(1_700_000_000_000),
        shard_index: ShardIndex(4),
        k: 3,
        m: 2,
        block_size: 256 * 1024,
        size: 1_000_000,
        layout_epoch: 4,
        placement: placement(5),
        crcs: vec![0xdead_beef, 0x0123_4567],
        block_hashes: (0..10).map(|i| BlockHash([i; 32])).collect(),
    }
}

pub(crate) fn manifest_key() -> ManifestKey {
    ManifestKey::from_bytes([0x44; 32])
}

#[test]
fn manifests_round_trip_and_refuse_another_key() {
    let m = sample_manifest();
    let sealed = m.seal(&manifest_key(), [5; 12]).unwrap();
    assert_eq!(Manifest::open(&manifest_key(), &sealed).unwrap(), m);
    let env = ManifestEnvelope::parse(&sealed).unwrap();
    assert_eq!((env.object, env.version), (m.object, m.version));
    assert_eq!(
        Manifest::open(&ManifestKey::from_bytes([0x45; 32]), &sealed),
        Err(FormatError::Unauthentic)
    );
    let tomb = Manifest {
        body: ManifestBody::Tombstone,
        ..m
    };
    let sealed = tomb.seal(&manifest_key(), [6; 12]).unwrap();
    assert_eq!(Manifest::open(&manifest_key(), &sealed).unwrap(), tomb);
    // Format 2 carries an order of its own, later than the version, and the version's state.
    let later = sample_manifest_v2();
    let sealed = later.seal(&manifest_key(), [7; 12]).unwrap();
    let env = ManifestEnvelope::parse(&sealed).unwrap();
    assert_eq!((env.format, env.order), (2, later.order));
    // Nodes can read the order; changing it there breaks the seal.
    let mut moved = sealed.clone();
    moved[70] ^= 1;
    assert_eq!(
        Manifest::open(&manifest_key(), &moved),
        Err(FormatError::Unauthentic)
    );
    assert_eq!(Manifest::open(&manifest_key(), &sealed).unwrap(), later);
}

#[test]
fn names_never_appear_in_a_sealed_manifest() {
    let sealed = sample_manifest().seal(&manifest_key(), [5; 12]).unwrap();
    for needle in [
        &b"land-registry"[..],
        b"parcels",
        b"application/json",
        b"owner",
    ] {
        assert!(!sealed.windows(needle.len()).any(|w| w == needle));
    }
}

#[test]
fn inconsistent_manifests_are_refused() {
    let mut m = sample_manifest();
    if let ManifestBody::Object(meta) = &mut m.body {
        meta.block_hashes.pop();
    }
    let archive = m.encode_archive().unwrap();
    assert!(matches!(
        Manifest::decode_archive(&archive),
        Err(FormatError::Inconsistent(_))
    ));
    let mut h = sample_header();
    h.shard_index = ShardIndex(5);
    assert!(matches!(
        ShardHeader::decode(&h.encode().unwrap()),
        Err(FormatError::Inconsistent(_))
    ));
}

#[test]
fn format_version_1_still_reads() {
    // Its order is its version (the sample's order equals its version).
    let sealed = include_bytes!("fixtures/manifest-v1.bin");
    let env = ManifestEnvelope::parse(sealed).unwrap();
    assert_eq!((env.format, env.order), (1, env.version));
    assert_eq!(
        Manifest::open(&manifest_key(), sealed).unwrap(),
        sample_manifest()
    );
    let header = include_bytes!("fixtures/shard-header-v1.bin");
    assert_eq!(ShardHeader::decode(header).unwrap(), sample_header());
}

#[test]
fn format_version_2_reads() {
    let sealed = include_bytes!("fixtures/manifest-v2.bin");
    assert_eq!(
        Manifest::open(&manifest_key(), sealed).unwrap(),
        sample_manifest_v2()
    );
}

#[test]
fn an_unknown_format_version_is_refused() {
    let mut sealed = sample_manifest().seal(&manifest_key(), [5; 12]).unwrap();
    sealed[4] = 3;
    assert_eq!(
        ManifestEnvelope::parse(&sealed),
        Err(FormatError::UnsupportedVersion(3))
    );
    let mut h = sample_header().encode().unwrap();
    h[4] = 9;
    assert_eq!(
        ShardHeader::decode(&h),
        Err(FormatError::UnsupportedVersion(9))
    );
}

/// Random bytes and random flips of valid encodings: every decoder returns, none panics.
fn hammer(valid: &[u8], prefix: &[u8], seed: u64, decode: impl Fn(&[u8]) -> bool) -> usize {
    let mut rng = TestRng::new(seed);
    let mut accepted = 0;
    for case in 0..CASES {
        let input = match case % 4 {
            // Pure noise.
            0 => rng.noise(2 * valid.len() + 1),
            // Noise behind a valid prefix, so it reaches the archive validator.
            1 => {
                let mut v = prefix.to_vec();
                v.extend(rng.noise(valid.len()));
                v
            }
            // A valid encoding with 1 to 8 bits flipped.
            2 => {
                let mut v = valid.to_vec();
                for _ in 0..=rng.index(8) {
                    let at = rng.index(v.len());
                    v[at] ^= 1 << rng.index(8);
                }
                v
            }
            // A valid encoding truncated or extended.
            _ => {
                let mut v = valid.to_vec();
                if rng.index(2) == 0 {
                    v.truncate(rng.index(v.len()));
                } else {
                    v.extend(rng.noise(64));
                    v.push(0);
                }
                v
            }
        };
        // Flips that cancel out leave the valid encoding: not hostile, not counted.
        if input != valid && decode(&input) {
            accepted += 1;
        }
    }
    accepted
}

#[test]
fn shard_header_decoder_survives_hostile_bytes() {
    let valid = sample_header().encode().unwrap();
    let accepted = hammer(&valid, &valid[..8], 1, |b| ShardHeader::decode(b).is_ok());
    // Flips inside hash bytes or CRCs decode fine (the values are data); most must not.
    assert!(accepted < CASES / 2, "{accepted}");
}

#[test]
fn manifest_archive_decoder_survives_hostile_bytes() {
    let valid = sample_manifest().encode_archive().unwrap();
    let accepted = hammer(&valid, &[], 2, |b| Manifest::decode_archive(b).is_ok());
    assert!(accepted < CASES / 2, "{accepted}");
}

#[test]
fn sealed_manifest_decoder_survives_hostile_bytes() {
    let key = manifest_key();
    let valid = sample_manifest().seal(&key, [5; 12]).unwrap();
    let accepted = hammer(&valid, &valid[..84], 3, |b| Manifest::open(&key, b).is_ok());
    // Nothing altered authenticates.
    assert_eq!(accepted, 0);
}

/// `sample_manifest` completed by reference from two parts of its own size.
fn sample_by_reference() -> Manifest {
    use crate::core::format::{PartRef, PartsBody};
    let base = sample_manifest();
    let ManifestBody::Object(meta) = &base.body else {
        unreachable!()
    };
    let part = |n: u8| PartRef {
        bucket: "land-registry\u{1}uploads".into(),
        key: format!("upload/{n}"),
        object: oid(40 + n),
        version: version(1_700_000_000_000 + u64::from(n)),
        meta: meta.clone(),
    };
    Manifest {
        body: ManifestBody::Parts(Box::new(PartsBody {
            whole: ObjectMeta {
                size: 2 * meta.size,
                etag: "0123456789abcdef0123456789abcdef-2".into(),
                placement: Vec::new(),
                block_hashes: Vec::new(),
                parts: vec![
                    Part {
                        size: meta.size,
                        etag: meta.etag.clone(),
                    };
                    2
                ],
                ..meta.clone()
            },
            parts: vec![part(1), part(2)],
        })),
        ..base
    }
}

#[test]
fn an_object_completed_by_reference_round_trips_and_inconsistent_ones_are_refused() {
    let m = sample_by_reference();
    let sealed = m.seal(&manifest_key(), [9; 12]).unwrap();
    // Format 2 still: only the body's variant is new.
    assert_eq!(ManifestEnvelope::parse(&sealed).unwrap().format, 2);
    let opened = Manifest::open(&manifest_key(), &sealed).unwrap();
    assert_eq!(opened, m);
    let pieces = opened.body.pieces(opened.object, opened.version);
    assert_eq!(pieces.len(), 2);
    assert_eq!(pieces[1].object, oid(42));
    assert_eq!(opened.body.meta().map(|w| w.size), Some(2_000_000));

    let refuse = |f: &dyn Fn(&mut crate::core::format::PartsBody)| {
        let mut bad = sample_by_reference();
        let ManifestBody::Parts(p) = &mut bad.body else {
            unreachable!()
        };
        f(p);
        let sealed = bad.seal(&manifest_key(), [9; 12]).unwrap();
        assert!(matches!(
            Manifest::open(&manifest_key(), &sealed),
            Err(FormatError::Inconsistent(_))
        ));
    };
    refuse(&|p| p.whole.size += 1);
    refuse(&|p| p.parts.clear());
    refuse(&|p| p.whole.placement = p.parts[0].meta.placement.clone());
    refuse(&|p| {
        p.parts[0].meta.block_hashes.pop();
    });
    refuse(&|p| {
        p.whole.parts.pop();
    });
}

#[test]
fn a_sealed_object_by_reference_survives_hostile_bytes() {
    let key = manifest_key();
    let valid = sample_by_reference().seal(&key, [9; 12]).unwrap();
    let archive = sample_by_reference().encode_archive().unwrap();
    hammer(&archive, &[], 11, |b| Manifest::decode_archive(b).is_ok());
    hammer(&valid, &valid[..84], 12, |b| {
        Manifest::open(&key, b).is_ok()
    });
}
