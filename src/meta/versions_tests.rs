//! The versions table against a model: whatever order versions and removals are applied in
//! (as a rebuild from the nodes may), every page sequence of ListObjectVersions equals the
//! model's listing, and each key's current version is its newest not removed.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::tests::v;
use super::*;
use crate::core::format::Versioning;

/// One applied version: (key, order, written under, deleted).
type Op = (String, u64, Versioning, bool);

fn entry_of(id: u64, order: u64, under: Versioning, deleted: bool) -> Entry {
    Entry {
        version: v(id),
        order: v(order),
        size: id,
        etag: format!("e{id}"),
        modified_ms: order,
        deleted,
        written_under: under,
        removed: false,
        locked_until: None,
        tags: String::new(),
    }
}

/// The model: per key, its versions newest first (a newer null version replaces an older,
/// removed or not), the removed ones left out.
fn model(ops: &[(u64, Op)], removed: &[u64]) -> BTreeMap<String, Vec<Entry>> {
    let mut keys: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
    for (id, (key, order, under, deleted)) in ops {
        let mut e = entry_of(*id, *order, *under, *deleted);
        e.removed = removed.contains(id);
        let vs = keys.entry(key.clone()).or_default();
        if e.written_under != Versioning::Enabled {
            let null = |o: &Entry| o.written_under != Versioning::Enabled;
            if vs.iter().any(|o| null(o) && o.order > e.order) {
                continue;
            }
            vs.retain(|o| !null(o));
        }
        vs.push(e);
        vs.sort_by_key(|e| std::cmp::Reverse(e.order));
    }
    for vs in keys.values_mut() {
        vs.retain(|e| !e.removed);
    }
    keys
}

/// What ListObjectVersions shows of the model: (key or prefix, version, latest) in order.
fn listing(
    keys: &BTreeMap<String, Vec<Entry>>,
    prefix: &str,
    delimiter: Option<&str>,
) -> Vec<(String, Option<Version>, bool)> {
    let mut out: Vec<(String, Option<Version>, bool)> = Vec::new();
    for (k, vs) in keys {
        if k.is_empty() || !k.starts_with(prefix) {
            continue;
        }
        for (i, e) in vs.iter().enumerate() {
            if e.deleted && e.written_under == Versioning::Unversioned {
                continue;
            }
            match delimiter
                .filter(|d| !d.is_empty())
                .and_then(|d| k[prefix.len()..].find(d).map(|at| (d, at)))
            {
                Some((d, at)) => {
                    let cp = k[..prefix.len() + at + d.len()].to_string();
                    if out.last().is_none_or(|l| l.0 != cp || l.1.is_some()) {
                        out.push((cp, None, false));
                    }
                }
                None => out.push((k.clone(), Some(e.version), i == 0)),
            }
        }
    }
    out
}

fn op_strategy() -> impl Strategy<Value = Op> {
    (
        prop::sample::select(vec!["a", "a/b", "a/c", "b", "a\0", "é/x", ""]),
        1u64..60,
        prop::sample::select(vec![
            Versioning::Unversioned,
            Versioning::Enabled,
            Versioning::Suspended,
        ]),
        prop::bool::weighted(0.25),
    )
        .prop_map(|(k, o, u, d)| (k.to_string(), o, u, d))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn version_pages_concatenate_to_the_model(
        ops in prop::collection::vec(op_strategy(), 0..40),
        prefix in prop::sample::select(vec!["", "a", "a/", "é"]),
        delimiter in prop::sample::select(vec![None, Some("/")]),
        page_size in 1usize..5,
        removals in prop::collection::vec((0usize..40, 0usize..41), 0..6),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("i.redb")).unwrap();
        let mut seen: BTreeMap<(String, u64), ()> = BTreeMap::new();
        let mut applied = Vec::new();
        for (id, (key, order, under, deleted)) in ops.iter().enumerate() {
            // One order per version of a key (the clock never stamps one twice).
            if seen.insert((key.clone(), *order), ()).is_some() {
                continue;
            }
            applied.push((id as u64 + 1, (key.clone(), *order, *under, *deleted)));
        }
        // Each removal is a copy of a version marked removed, applied anywhere in the
        // sequence: before the version itself, as a rebuild may meet it.
        let mut removed: Vec<u64> = Vec::new();
        let mut events: Vec<(u64, Op, bool)> =
            applied.iter().map(|(id, op)| (*id, op.clone(), false)).collect();
        for (which, at) in removals {
            if let Some((id, op)) = applied.get(which) {
                removed.push(*id);
                events.insert(at.min(events.len()), (*id, op.clone(), true));
            }
        }
        for (id, (key, order, under, deleted), gone) in &events {
            let mut e = entry_of(*id, *order, *under, *deleted);
            e.removed = *gone;
            index.apply("bk", key, &e).unwrap();
        }
        let modelled = model(&applied, &removed);
        for (key, vs) in &modelled {
            let current = index.get("bk", key).unwrap().map(|e| e.version);
            prop_assert_eq!(current, vs.first().map(|e| e.version), "current of {:?}", key);
        }
        let want = listing(&modelled, prefix, delimiter);
        let mut got = Vec::new();
        let mut q = VersionQuery {
            prefix: prefix.to_string(),
            delimiter: delimiter.map(str::to_string),
            max_keys: page_size,
            ..VersionQuery::default()
        };
        for _ in 0..200 {
            let page = index.list_versions("bk", &q).unwrap();
            prop_assert!(page.versions.len() + page.common_prefixes.len() <= page_size);
            // Within a page, versions and prefixes interleave in key order.
            let mut items: Vec<(String, Option<Version>, bool)> = page
                .versions
                .iter()
                .map(|l| (l.key.clone(), Some(l.entry.version), l.latest))
                .chain(page.common_prefixes.iter().map(|p| (p.clone(), None, false)))
                .collect();
            items.sort_by(|a, b| a.0.cmp(&b.0));
            got.extend(items);
            match page.next {
                Some((key, after)) if page.truncated => {
                    q.key_marker = Some(key);
                    q.after_version = after;
                }
                _ => break,
            }
        }
        prop_assert_eq!(got, want);
    }
}

#[test]
fn a_withdrawn_version_leaves_the_listing_and_an_older_index_is_filled_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("i.redb");
    let index = Index::open(&path).unwrap();
    let keys = |index: &Index| -> Vec<(String, Version)> {
        index
            .list_versions(
                "bk",
                &VersionQuery {
                    max_keys: 100,
                    ..VersionQuery::default()
                },
            )
            .unwrap()
            .versions
            .into_iter()
            .map(|l| (l.key, l.entry.version))
            .collect()
    };
    index
        .apply("bk", "a", &entry_of(1, 1, Versioning::Unversioned, false))
        .unwrap();
    index
        .apply("bk", "b", &entry_of(2, 2, Versioning::Unversioned, false))
        .unwrap();
    index
        .apply("bk", "b", &entry_of(3, 3, Versioning::Unversioned, false))
        .unwrap();
    assert_eq!(keys(&index), vec![("a".into(), v(1)), ("b".into(), v(3))]);
    // b's current version withdrawn: back to none.
    index.replace("bk", "b", None).unwrap();
    assert_eq!(keys(&index), vec![("a".into(), v(1))]);
    // Counts: versions and delete markers listed, per bucket (an unversioned delete is none).
    index
        .apply(
            "bk",
            "m",
            &Entry {
                locked_until: Some(100),
                tags: String::new(),
                ..entry_of(7, 7, Versioning::Enabled, false)
            },
        )
        .unwrap();
    index
        .apply(
            "bk",
            "held",
            &Entry {
                locked_until: Some(u64::MAX),
                tags: String::new(),
                ..entry_of(12, 12, Versioning::Enabled, false)
            },
        )
        .unwrap();
    index
        .apply("bk", "m", &entry_of(8, 8, Versioning::Enabled, true))
        .unwrap();
    index
        .apply("bk", "u", &entry_of(9, 9, Versioning::Unversioned, true))
        .unwrap();
    index
        .apply("bk", "", &entry_of(10, 10, Versioning::Unversioned, false))
        .unwrap();
    index
        .apply(
            "other",
            "x",
            &entry_of(11, 11, Versioning::Unversioned, false),
        )
        .unwrap();
    let counts = |now| -> Vec<(String, u64, u64, u64)> {
        index
            .version_counts(now)
            .unwrap()
            .into_iter()
            .map(|c| (c.bucket, c.versions, c.delete_markers, c.locked))
            .collect()
    };
    // Locked: version 7 until 100, version 12 held.
    assert_eq!(
        counts(50),
        vec![("bk".to_owned(), 3, 1, 2), ("other".to_owned(), 1, 0, 0)]
    );
    assert_eq!(counts(100)[0], ("bk".to_owned(), 3, 1, 1));
    // An index from before the versions table: filled from the current entries at open (it
    // knew no others).
    index
        .apply("bk", "c", &entry_of(4, 4, Versioning::Unversioned, false))
        .unwrap();
    {
        use redb::ReadableDatabase as _;
        let txn = index.db.begin_write().unwrap();
        txn.delete_table(versions::VERSIONS).unwrap();
        txn.commit().unwrap();
        let r = index.db.begin_read().unwrap();
        assert!(r.open_table(versions::VERSIONS).is_err());
    }
    drop(index);
    let index = Index::open(&path).unwrap();
    assert_eq!(
        keys(&index),
        vec![
            ("a".into(), v(1)),
            ("c".into(), v(4)),
            ("held".into(), v(12)),
            ("m".into(), v(8))
        ]
    );
}
