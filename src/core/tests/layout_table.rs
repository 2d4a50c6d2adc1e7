//! Placement and `check` for 3, 5, 6 and 9 sites with profiles 2+1, 3+2, 4+2 and 6+3.

use std::collections::BTreeMap;

use super::TestRng;
use crate::core::ids::{DiskId, NodeId, ObjectId, SiteId};
use crate::core::layout::{Disk, Layout, LayoutError, Node, Rule, Site, check, place, plan};
use crate::core::stripe::Profile;

/// `sites` sites (the first one home), each with 2 nodes of 2 disks.
fn layout(sites: u16, k: usize, m: usize) -> Layout {
    let mut disk = 0;
    Layout {
        epoch: 1,
        profile: Profile::new(k, m).unwrap(),
        sites: (0..sites)
            .map(|s| Site {
                id: SiteId(s),
                name: if s == 0 {
                    "home".into()
                } else {
                    format!("site-{s}")
                },
                home: s == 0,
                nodes: (0..2)
                    .map(|n| Node {
                        id: NodeId(u32::from(s) * 10 + n),
                        disks: (0..2)
                            .map(|_| {
                                disk += 1;
                                Disk {
                                    id: DiskId(disk),
                                    capacity: 1 << 40,
                                }
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

const F1: Rule = Rule {
    survive_foreign_losses: 1,
};

/// (sites, k, m) -> Some((home share, foreign min, foreign max, survives home+, survives any,
/// blind coalition)) or None when refused under f = 1.
type Expect = Option<(usize, usize, usize, usize, usize, usize)>;

#[test]
fn the_check_table() {
    let table: [((u16, usize, usize), Expect); 16] = [
        ((3, 2, 1), None),
        ((3, 3, 2), None),
        ((3, 4, 2), None),
        ((3, 6, 3), None),
        ((5, 2, 1), Some((0, 0, 1, 1, 1, 1))),
        ((5, 3, 2), Some((1, 1, 1, 1, 2, 2))),
        ((5, 4, 2), Some((0, 1, 2, 1, 1, 1))),
        ((5, 6, 3), Some((1, 2, 2, 1, 1, 2))),
        ((6, 2, 1), Some((0, 0, 1, 1, 1, 1))),
        ((6, 3, 2), Some((1, 0, 1, 1, 2, 2))),
        ((6, 4, 2), Some((1, 1, 1, 1, 2, 3))),
        ((6, 6, 3), Some((1, 1, 2, 1, 1, 2))),
        ((9, 2, 1), Some((0, 0, 1, 1, 1, 1))),
        ((9, 3, 2), Some((1, 0, 1, 1, 2, 2))),
        ((9, 4, 2), Some((1, 0, 1, 1, 2, 3))),
        ((9, 6, 3), Some((2, 0, 1, 1, 2, 5))),
    ];
    for ((sites, k, m), expect) in table {
        let l = layout(sites, k, m);
        let got = check(&l, F1);
        match expect {
            None => {
                let err = got.unwrap_err();
                assert!(
                    matches!(err, LayoutError::BreaksSurvival { .. }),
                    "{sites} {k}+{m}: {err}"
                );
                assert!(err.to_string().contains("home site and 1 other"), "{err}");
            }
            Some((home, fmin, fmax, home_plus, any, blind)) => {
                let r = got.unwrap_or_else(|e| panic!("{sites} sites {k}+{m}: {e}"));
                let foreign: Vec<_> = r.shares.iter().filter(|s| !s.home).collect();
                let summary = (
                    r.shares[0].max,
                    foreign.iter().map(|s| s.min).min().unwrap(),
                    foreign.iter().map(|s| s.max).max().unwrap(),
                    r.survives_home_plus,
                    r.survives_any,
                    r.largest_blind_coalition,
                );
                assert_eq!(
                    summary,
                    (home, fmin, fmax, home_plus, any, blind),
                    "{sites} sites {k}+{m}\n{r}"
                );
                assert!(r.largest_blind_coalition_shards < k);
            }
        }
    }
}

#[test]
fn three_sites_pass_when_no_foreign_loss_is_required() {
    let r = check(
        &layout(3, 2, 1),
        Rule {
            survive_foreign_losses: 0,
        },
    )
    .unwrap();
    assert_eq!(r.survives_home_plus, 0);
    assert!(
        r.to_string()
            .contains("survives the loss of home plus any 0")
    );
}

#[test]
fn refusals_say_why() {
    // A foreign site may hold at most k - 1 shards, one per disk: 2 sites of 1 disk cannot
    // take a 3+2 stripe.
    let mut l = layout(2, 3, 2);
    for s in &mut l.sites {
        s.nodes.truncate(1);
        s.nodes[0].disks.truncate(1);
    }
    let err = check(
        &l,
        Rule {
            survive_foreign_losses: 0,
        },
    )
    .unwrap_err();
    assert!(matches!(err, LayoutError::CannotPlace { .. }), "{err}");
    assert!(err.to_string().contains("k - 1 = 2"), "{err}");

    let mut l = layout(5, 3, 2);
    l.sites[1].home = true;
    assert!(matches!(check(&l, F1), Err(LayoutError::Invalid(_))));
    let mut l = layout(5, 3, 2);
    l.sites[2].nodes[0].disks[0].id = l.sites[1].nodes[0].disks[0].id;
    assert!(matches!(check(&l, F1), Err(LayoutError::Invalid(_))));
}

#[test]
fn placement_keeps_the_rule_for_every_object_and_is_deterministic() {
    let mut rng = TestRng::new(42);
    for (sites, k, m) in [
        (5, 3, 2),
        (5, 4, 2),
        (6, 6, 3),
        (9, 6, 3),
        (9, 4, 2),
        (6, 2, 1),
    ] {
        let l = layout(sites, k, m);
        let p = plan(&l, F1).unwrap();
        let report = check(&l, F1).unwrap();
        let mut per_site_load: BTreeMap<SiteId, usize> = BTreeMap::new();
        for _ in 0..500 {
            let mut id = [0u8; 32];
            rng.fill(&mut id);
            let object = ObjectId(id);
            let shards = place(&l, &p, &object);
            assert_eq!(shards, place(&l, &p, &object));
            assert_eq!(shards.len(), k + m);
            let mut disks: Vec<_> = shards.iter().map(|s| s.disk).collect();
            disks.sort();
            disks.dedup();
            assert_eq!(disks.len(), k + m, "two shards on one disk");
            let mut counts: BTreeMap<SiteId, usize> = BTreeMap::new();
            for s in &shards {
                *counts.entry(s.site).or_default() += 1;
                *per_site_load.entry(s.site).or_default() += 1;
            }
            for share in &report.shares {
                let c = counts.get(&share.site).copied().unwrap_or(0);
                assert!((share.min..=share.max).contains(&c), "{share:?} got {c}");
                if !share.home {
                    assert!(c < k, "a foreign site holds {c} >= k shards");
                }
            }
            // Losing home and the largest foreign site leaves k.
            let home = counts.get(&SiteId(0)).copied().unwrap_or(0);
            let largest = counts
                .iter()
                .filter(|(s, _)| s.0 != 0)
                .map(|(_, &c)| c)
                .max()
                .unwrap();
            assert!(k + m - home - largest >= k);
        }
        // Load spreads over the foreign sites.
        let foreign: Vec<usize> = per_site_load
            .iter()
            .filter(|(s, _)| s.0 != 0)
            .map(|(_, &c)| c)
            .collect();
        let (lo, hi) = (foreign.iter().min().unwrap(), foreign.iter().max().unwrap());
        if *hi > 0 {
            assert!(
                *lo * 2 > *hi || *hi - *lo < 100,
                "{sites} {k}+{m}: {per_site_load:?}"
            );
        }
    }
}
