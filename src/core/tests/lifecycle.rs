//! The lifecycle rules: their checks, and what is due when.

use crate::core::lifecycle::*;

const DAY: u64 = DAY_MS;

fn object(created_ms: u64, size: u64) -> VersionView<'static> {
    VersionView {
        created_ms,
        size,
        delete_marker: false,
        tags: &[],
    }
}

fn marker(created_ms: u64) -> VersionView<'static> {
    VersionView {
        created_ms,
        size: 0,
        delete_marker: true,
        tags: &[],
    }
}

fn rule(f: impl FnOnce(&mut Rule)) -> Lifecycle {
    let mut r = Rule {
        enabled: true,
        ..Rule::default()
    };
    f(&mut r);
    Lifecycle { rules: vec![r] }
}

#[test]
fn a_current_version_expires_at_the_end_of_its_last_day() {
    let lc = rule(|r| r.expiration = Some(Expiration::Days(1)));
    // Written at 10:00 on day 3: expires at midnight starting day 5.
    let written = 3 * DAY + 10 * 3_600_000;
    let v = [object(written, 10)];
    assert!(lc.due("k", &v, 5 * DAY - 1, DAY).is_empty());
    assert_eq!(lc.due("k", &v, 5 * DAY, DAY), vec![Due::ExpireCurrent]);
    // A delete marker is not expired again.
    assert!(lc.due("k", &[marker(written)], 9 * DAY, DAY).is_empty());
}

#[test]
fn a_date_expires_every_matching_current_version_from_then_on() {
    let lc = rule(|r| {
        r.expiration = Some(Expiration::Date(10 * DAY));
        r.filter.prefix = Some("logs/".into());
    });
    let v = [object(DAY, 10)];
    assert!(lc.due("logs/a", &v, 10 * DAY - 1, DAY).is_empty());
    assert_eq!(
        lc.due("logs/a", &v, 10 * DAY, DAY),
        vec![Due::ExpireCurrent]
    );
    assert!(lc.due("land/a", &v, 11 * DAY, DAY).is_empty());
}

#[test]
fn noncurrent_versions_go_by_age_keeping_the_newest_ones_asked_for() {
    let lc = rule(|r| {
        r.noncurrent = Some(NoncurrentExpiration {
            days: 2,
            newer_versions: Some(1),
        });
    });
    // Newest first: current (day 10), then noncurrent since day 10, 8, 6.
    let v = [
        object(10 * DAY, 1),
        object(8 * DAY, 1),
        object(6 * DAY, 1),
        object(DAY, 1),
    ];
    // At day 11: none is noncurrent for 2 days but the last two (since day 8 and 6).
    assert_eq!(
        lc.due("k", &v, 11 * DAY, DAY),
        vec![Due::Remove(2), Due::Remove(3)]
    );
    // At day 12 the first noncurrent is old enough too, but it is the one kept.
    assert_eq!(
        lc.due("k", &v, 12 * DAY, DAY),
        vec![Due::Remove(2), Due::Remove(3)]
    );
    let all = rule(|r| {
        r.noncurrent = Some(NoncurrentExpiration {
            days: 2,
            newer_versions: None,
        });
    });
    assert_eq!(
        all.due("k", &v, 12 * DAY, DAY),
        vec![Due::Remove(1), Due::Remove(2), Due::Remove(3)]
    );
    // The current version is never a noncurrent one.
    assert!(all.due("k", &v[..1], 99 * DAY, DAY).is_empty());
}

#[test]
fn an_expired_delete_marker_goes_only_when_it_is_the_only_version() {
    let lc = rule(|r| r.expiration = Some(Expiration::ExpiredObjectDeleteMarker));
    assert_eq!(
        lc.due("k", &[marker(DAY)], 2 * DAY, DAY),
        vec![Due::Remove(0)]
    );
    assert!(
        lc.due("k", &[marker(DAY), object(0, 1)], 2 * DAY, DAY)
            .is_empty()
    );
    assert!(lc.due("k", &[object(0, 1)], 9 * DAY, DAY).is_empty());
}

#[test]
fn filters_by_size_and_tag_and_disabled_rules_do_nothing() {
    let lc = rule(|r| {
        r.expiration = Some(Expiration::Days(1));
        r.filter.size_greater_than = Some(100);
        r.filter.size_less_than = Some(1000);
    });
    let late = 10 * DAY;
    assert!(lc.due("k", &[object(0, 100)], late, DAY).is_empty());
    assert_eq!(
        lc.due("k", &[object(0, 101)], late, DAY),
        vec![Due::ExpireCurrent]
    );
    assert!(lc.due("k", &[object(0, 1000)], late, DAY).is_empty());
    let tagged = rule(|r| {
        r.expiration = Some(Expiration::Days(1));
        r.filter.tags = vec![("class".into(), "temp".into())];
    });
    assert!(tagged.due("k", &[object(0, 1)], late, DAY).is_empty());
    let tags = [("class".to_owned(), "temp".to_owned())];
    let v = VersionView {
        tags: &tags,
        ..object(0, 1)
    };
    assert_eq!(tagged.due("k", &[v], late, DAY), vec![Due::ExpireCurrent]);
    let mut off = lc;
    off.rules[0].enabled = false;
    assert!(off.due("k", &[object(0, 101)], late, DAY).is_empty());
}

#[test]
fn uploads_are_aborted_by_prefix_and_age() {
    let lc = rule(|r| {
        r.abort_upload_days = Some(3);
        r.filter.prefix = Some("tmp/".into());
    });
    assert!(!lc.abort_due("tmp/a", DAY, 4 * DAY - 1, DAY));
    assert!(lc.abort_due("tmp/a", DAY, 4 * DAY, DAY));
    assert!(!lc.abort_due("land/a", DAY, 40 * DAY, DAY));
    // A short debug day scales every period.
    assert!(lc.abort_due("tmp/a", 1_000, 4_000, 1_000));
}

#[test]
fn configurations_s3_refuses_are_refused() {
    let bad = [
        Lifecycle::default(),
        rule(|_| {}),
        rule(|r| r.expiration = Some(Expiration::Days(0))),
        rule(|r| r.expiration = Some(Expiration::Date(DAY + 1))),
        rule(|r| {
            r.expiration = Some(Expiration::ExpiredObjectDeleteMarker);
            r.filter.tags = vec![("a".into(), "b".into())];
        }),
        rule(|r| {
            r.noncurrent = Some(NoncurrentExpiration {
                days: 1,
                newer_versions: Some(101),
            });
        }),
        rule(|r| r.abort_upload_days = Some(0)),
        rule(|r| {
            r.abort_upload_days = Some(1);
            r.filter.tags = vec![("a".into(), "b".into())];
        }),
        rule(|r| {
            r.expiration = Some(Expiration::Days(1));
            r.filter.size_greater_than = Some(10);
            r.filter.size_less_than = Some(10);
        }),
        rule(|r| {
            r.expiration = Some(Expiration::Days(1));
            r.filter.tags = vec![("a".into(), "b".into()), ("a".into(), "c".into())];
        }),
    ];
    for lc in bad {
        assert!(lc.check().is_err(), "{lc:?} accepted");
    }
    let mut two = rule(|r| {
        r.id = Some("x".into());
        r.expiration = Some(Expiration::Days(1));
    });
    two.rules.push(two.rules[0].clone());
    assert!(matches!(two.check(), Err(Refusal::InvalidArgument(_))));
    two.rules[1].id = Some("y".into());
    assert_eq!(two.check(), Ok(()));
}
