//! Listing against a model: every page sequence, however cut, equals the model's listing.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::core::format::Versioning;
use crate::core::ids::{GatewayId, NodeId, ObjectId};
use crate::core::ops::Pending;

pub(super) fn v(n: u64) -> Version {
    Version {
        physical_ms: n,
        logical: 0,
        gateway: GatewayId(1),
    }
}

pub(super) fn entry(n: u64, deleted: bool) -> Entry {
    Entry {
        version: v(n),
        order: v(n),
        size: n,
        etag: format!("e{n}"),
        modified_ms: n,
        deleted,
        written_under: Versioning::Unversioned,
        removed: false,
        locked_until: None,
        tags: String::new(),
    }
}

/// What S3 lists: keys (or their common prefixes) after `start_after`, with the prefix.
fn model(
    keys: &BTreeMap<String, bool>,
    prefix: &str,
    delimiter: Option<&str>,
) -> Vec<(bool, String)> {
    let mut out: Vec<(bool, String)> = Vec::new();
    for (k, deleted) in keys {
        if *deleted || !k.starts_with(prefix) {
            continue;
        }
        let item = match delimiter
            .filter(|d| !d.is_empty())
            .and_then(|d| k[prefix.len()..].find(d).map(|i| (d, i)))
        {
            Some((d, i)) => (true, k[..prefix.len() + i + d.len()].to_string()),
            None => (false, k.clone()),
        };
        if out.last() != Some(&item) {
            out.push(item);
        }
    }
    out
}

fn flatten(page: &ListPage) -> Vec<(bool, String)> {
    // Within a page, keys and prefixes interleave in key order.
    let mut all: Vec<(bool, String)> = page
        .contents
        .iter()
        .map(|(k, _)| (false, k.clone()))
        .chain(page.common_prefixes.iter().map(|p| (true, p.clone())))
        .collect();
    all.sort_by(|a, b| a.1.cmp(&b.1));
    all
}

fn key_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec!["a", "b", "/", "é", "z", "//"]),
        1..7,
    )
    .prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn pages_concatenate_to_the_model(
        keys in prop::collection::btree_map(key_strategy(), any::<bool>(), 0..40),
        prefix in prop::sample::select(vec!["", "a", "a/", "b", "é", "/"]),
        delimiter in prop::sample::select(vec![None, Some("/"), Some("a"), Some("//")]),
        page_size in 1usize..6,
        v1 in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("i.redb")).unwrap();
        for (n, (k, deleted)) in keys.iter().enumerate() {
            index.apply("bkt", k, &entry(n as u64 + 1, *deleted)).unwrap();
            // Another bucket's keys must never leak in.
            index.apply("bkt2", k, &entry(1, false)).unwrap();
        }
        let want = model(&keys, prefix, delimiter);
        let mut got = Vec::new();
        let mut q = ListQuery {
            prefix: prefix.into(),
            delimiter: delimiter.map(String::from),
            max_keys: page_size,
            ..ListQuery::default()
        };
        for _ in 0..100 {
            let page = index.list("bkt", &q).unwrap();
            prop_assert!(page.contents.len() + page.common_prefixes.len() <= page_size);
            got.extend(flatten(&page));
            if !page.truncated {
                break;
            }
            if v1 {
                q.start_after = page.next_marker.clone();
            } else {
                q.continuation = page.next_token.clone();
            }
        }
        prop_assert_eq!(got, want);
    }
}

#[test]
fn newest_version_wins_whatever_the_order() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(&dir.path().join("i.redb")).unwrap();
    assert!(index.apply("b", "k", &entry(5, false)).unwrap());
    assert!(!index.apply("b", "k", &entry(3, false)).unwrap());
    assert!(index.apply("b", "k", &entry(7, true)).unwrap());
    assert_eq!(index.get("b", "k").unwrap(), Some(entry(7, true)));
    let page = index
        .list(
            "b",
            &ListQuery {
                max_keys: 10,
                ..ListQuery::default()
            },
        )
        .unwrap();
    assert!(page.contents.is_empty(), "a deleted key is not listed");
}

#[test]
fn start_after_max_keys_zero_and_bad_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(&dir.path().join("i.redb")).unwrap();
    for (n, k) in ["a", "b", "c"].iter().enumerate() {
        index.apply("b", k, &entry(n as u64 + 1, false)).unwrap();
    }
    let q = ListQuery {
        start_after: Some("a".into()),
        max_keys: 10,
        ..ListQuery::default()
    };
    let keys: Vec<_> = index
        .list("b", &q)
        .unwrap()
        .contents
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, ["b", "c"]);
    let q = ListQuery {
        max_keys: 0,
        ..ListQuery::default()
    };
    assert_eq!(index.list("b", &q).unwrap(), ListPage::default());
    let q = ListQuery {
        continuation: Some("zz".into()),
        max_keys: 1,
        ..ListQuery::default()
    };
    assert!(matches!(index.list("b", &q), Err(MetaError::BadToken)));
    assert!(index.create_bucket("b", 1).unwrap());
    assert!(!index.create_bucket("b", 2).unwrap());
    assert_eq!(index.buckets().unwrap(), vec![("b".to_string(), 1)]);
}

#[test]
fn counts_follow_puts_overwrites_deletes_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.redb");
    let idx = Index::open(&path).unwrap();
    assert!(idx.apply("a", "", &entry(1, false)).unwrap());
    assert!(idx.apply("a", "x", &entry(10, false)).unwrap());
    assert!(idx.apply("a", "y", &entry(20, false)).unwrap());
    assert!(idx.apply("b", "x", &entry(5, false)).unwrap());
    // Overwrite with a bigger object; an older version changes nothing.
    assert!(idx.apply("a", "x", &entry(30, false)).unwrap());
    assert!(!idx.apply("a", "x", &entry(1, false)).unwrap());
    // Delete one; delete it again (a newer tombstone); a deleted key written again.
    assert!(idx.apply("a", "y", &entry(40, true)).unwrap());
    assert!(idx.apply("a", "y", &entry(41, true)).unwrap());
    assert!(idx.apply("b", "x", &entry(50, true)).unwrap());
    assert!(idx.apply("b", "z", &entry(60, true)).unwrap());
    let want = vec![("a".to_string(), 1, 30)];
    assert_eq!(idx.counts().unwrap(), want);
    assert_eq!(idx.max_order().unwrap(), Some(v(60)));
    drop(idx);
    assert_eq!(Index::open(&path).unwrap().counts().unwrap(), want);

    // An index written before the counts table existed is counted when opened.
    {
        let db = Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.delete_table(COUNTS).unwrap();
        txn.commit().unwrap();
    }
    assert_eq!(Index::open(&path).unwrap().counts().unwrap(), want);
}

#[test]
fn repairs_and_withdrawals_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.redb");
    let (a, b) = (ObjectId([1; 32]), ObjectId([2; 32]));
    let mut pending = Pending::new();
    pending.insert((a, v(7)), [NodeId(3), NodeId(70_000)].into());
    {
        let index = Index::open(&path).unwrap();
        index.record_repair(&b, v(9), &[4, 1]).unwrap();
        index.record_repair(&b, v(9), &[1, 2]).unwrap();
        index.set_withdrawals(&pending).unwrap();
    }
    let index = Index::open(&path).unwrap();
    assert_eq!(index.repairs().unwrap(), vec![(b, v(9), vec![1, 2, 4])]);
    assert_eq!(index.withdrawals().unwrap(), pending);
    index.repair_done(&b, v(9)).unwrap();
    index.set_withdrawals(&Default::default()).unwrap();
    assert!(index.repairs().unwrap().is_empty());
    assert!(index.withdrawals().unwrap().is_empty());
}

#[test]
fn a_version_given_up_on_leaves_the_backlog_and_returns_to_it_for_heal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.redb");
    let o = ObjectId([3; 32]);
    let rec = LostRecord {
        bucket: "land".into(),
        key: "parcel/17".into(),
        shards: vec![0, 2, 4],
        good: 2,
        needed: 3,
        found_ms: 42,
    };
    {
        let index = Index::open(&path).unwrap();
        index.record_repair(&o, v(5), &[0, 2, 4]).unwrap();
        index.give_up_repair(&o, v(5), &rec).unwrap();
        assert!(index.repairs().unwrap().is_empty(), "the backlog drains");
    }
    let index = Index::open(&path).unwrap();
    assert_eq!(index.unrebuildable().unwrap(), vec![(o, v(5), rec)]);
    // A newer finding for the same version merges with the shards given up on.
    index.record_repair(&o, v(5), &[1]).unwrap();
    assert_eq!(index.retry_unrebuildable().unwrap(), 1);
    assert!(index.unrebuildable().unwrap().is_empty());
    assert_eq!(index.repairs().unwrap(), vec![(o, v(5), vec![0, 1, 2, 4])]);
    assert_eq!(index.retry_unrebuildable().unwrap(), 0);
}

#[test]
fn a_write_is_settled_when_the_index_takes_its_version_and_replace_goes_back() {
    let dir = tempfile::tempdir().unwrap();
    let ix = Index::open(&dir.path().join("index.redb")).unwrap();
    let o = ObjectId([7; 32]);
    ix.intend("b", "k", &o, v(5), v(5)).unwrap();
    ix.intend("b", "other", &ObjectId([8; 32]), v(6), v(9))
        .unwrap();
    let all = ix.intents().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].order, v(9));
    assert_eq!(
        all[0],
        Intent {
            bucket: "b".into(),
            key: "k".into(),
            object: o,
            version: v(5),
            order: v(5),
        }
    );
    // Taking another version leaves it; taking its own settles it.
    ix.apply("b", "k", &entry(4, false)).unwrap();
    assert_eq!(ix.intents().unwrap().len(), 2);
    ix.apply("b", "k", &entry(5, false)).unwrap();
    assert_eq!(ix.intents().unwrap().len(), 1);
    ix.settle_intent("b", "other", v(6)).unwrap();
    assert!(ix.intents().unwrap().is_empty());
    // Back to an older version, or to none, with the counts kept.
    ix.replace("b", "k", Some(&entry(4, false))).unwrap();
    assert_eq!(ix.get("b", "k").unwrap(), Some(entry(4, false)));
    assert_eq!(ix.counts().unwrap(), vec![("b".to_owned(), 1, 4)]);
    ix.replace("b", "k", None).unwrap();
    assert_eq!(ix.get("b", "k").unwrap(), None);
    assert!(ix.counts().unwrap().is_empty());
}

#[test]
fn an_entry_keeps_its_tags_lock_and_etag_through_its_encoding() {
    let mut e = entry(7, false);
    e.tags = r#"[["class","sealed"],["office","land é"]]"#.into();
    e.locked_until = Some(99);
    assert_eq!(Entry::decode(&e.encode()).unwrap(), e);
    e.locked_until = None;
    assert_eq!(Entry::decode(&e.encode()).unwrap(), e);
    e.tags.clear();
    assert_eq!(Entry::decode(&e.encode()).unwrap(), e);
    // A length past the end is malformed, not a panic.
    let mut tagged = entry(7, false);
    tagged.tags = "[]x".into();
    let mut b = tagged.encode();
    b.truncate(50);
    assert!(Entry::decode(&b).is_err());
}

/// Versions taken by many tasks at once share durable commits, and each lands whole: its
/// intent cleared, its entry current, the bucket's count right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_versions_share_commits_and_each_lands_whole() {
    let dir = tempfile::tempdir().unwrap();
    let index = Arc::new(Index::open(&dir.path().join("index.redb")).unwrap());
    index.create_bucket("b", 1).unwrap();
    let writes = 64u64;
    let tasks: Vec<_> = (1..=writes)
        .map(|n| {
            let index = index.clone();
            tokio::spawn(async move {
                let key = format!("k{n}");
                let e = entry(n, false);
                index
                    .intend_async("b", &key, &ObjectId([n as u8; 32]), e.version, e.order)
                    .await
                    .unwrap();
                assert!(index.apply_async("b", &key, &e).await.unwrap());
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert!(index.intents().unwrap().is_empty());
    for n in 1..=writes {
        assert_eq!(
            index.get("b", &format!("k{n}")).unwrap(),
            Some(entry(n, false))
        );
    }
    let counts = index.counts().unwrap();
    assert_eq!(counts, vec![("b".to_string(), writes, (1..=writes).sum())]);
    let commits = index.group.commits();
    assert!(
        commits < 2 * writes,
        "{commits} commits for {} writes",
        2 * writes
    );
}
