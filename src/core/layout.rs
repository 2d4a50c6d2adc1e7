//! The cluster layout, placement of a stripe's shards, and the jurisdiction rule.
//!
//! The rule (DESIGN.md, "Placement and the jurisdiction rule"):
//! 1. no single foreign site holds k or more shards of a stripe;
//! 2. after losing the home site plus `f` other sites, at least k shards remain;
//! 3. shards of one stripe never share a disk.
//!
//! Placement is per object (every stripe of an object uses the same placement, so shard i of
//! all stripes lives in one shard file) and deterministic for a given object and layout:
//! sites are ranked by a hash of (object, site), disks by weighted rendezvous hashing.
//!
//! How many shards each site gets is decided once per layout by [`plan`]: the home site gets
//! as many as it can while the rule still holds (local reads are cheap), the foreign sites
//! share the rest as evenly as their caps allow. Which foreign sites take the larger share
//! varies per object, so load spreads; the worst case over all objects is what [`check`]
//! reports.

use std::collections::BTreeSet;
use std::fmt;

use crate::core::ids::{DiskId, NodeId, ObjectId, SiteId};
use crate::core::stripe::Profile;
use rkyv::{Archive, Deserialize, Serialize};

/// The cluster layout at one epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Version of the layout; every manifest records the epoch it was placed under.
    pub epoch: u64,
    /// Erasure profile for new objects.
    pub profile: Profile,
    /// Sites, one per jurisdiction.
    pub sites: Vec<Site>,
}

/// A site: one jurisdiction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Site {
    /// Id, unique in the layout.
    pub id: SiteId,
    /// Human name ("home", "ee-tallinn").
    pub name: String,
    /// Whether this is the home site (at most one).
    pub home: bool,
    /// Nodes at the site.
    pub nodes: Vec<Node>,
}

/// A storage node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Id, unique in the layout.
    pub id: NodeId,
    /// Disks (data directories) of the node.
    pub disks: Vec<Disk>,
}

/// A disk with its capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Disk {
    /// Id, unique in the layout.
    pub id: DiskId,
    /// Capacity in bytes; placement weight.
    pub capacity: u64,
}

/// The configured jurisdiction rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// f: how many sites besides home may be lost while every stripe stays readable.
    pub survive_foreign_losses: usize,
}

/// Where one shard of a stripe lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Archive, Serialize, Deserialize)]
pub struct ShardLocation {
    /// Site.
    pub site: SiteId,
    /// Node.
    pub node: NodeId,
    /// Disk.
    pub disk: DiskId,
}

/// Why a layout is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    /// The layout itself is malformed.
    #[error("invalid layout: {0}")]
    Invalid(String),
    /// The shards of a stripe cannot be placed under rules 1 and 3.
    #[error("cannot place {n} shards of a {profile} stripe: {reason}")]
    CannotPlace {
        /// k + m.
        n: usize,
        /// Profile.
        profile: Profile,
        /// Why, in words.
        reason: String,
    },
    /// Rule 2 does not hold.
    #[error(
        "a {profile} stripe does not survive the loss of {lost}: in the best placement {remaining} \
         shards can remain, fewer than k = {k}; add sites or disks, or lower k"
    )]
    BreaksSurvival {
        /// Profile.
        profile: Profile,
        /// k.
        k: usize,
        /// What is lost, in words.
        lost: String,
        /// Shards that can remain in the worst case.
        remaining: usize,
    },
}

/// What [`check`] found for a layout that keeps the rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckReport {
    /// Profile checked.
    pub profile: Profile,
    /// Shards per stripe each site may hold, least and most, over all objects.
    pub shares: Vec<SiteShare>,
    /// Largest f: losing home plus any f other sites leaves at least k shards of every stripe.
    pub survives_home_plus: usize,
    /// Largest g: losing any g sites (home among them or not) leaves at least k shards.
    pub survives_any: usize,
    /// Largest number of foreign sites that together never hold k shards of a stripe.
    pub largest_blind_coalition: usize,
    /// Most shards of a stripe such a coalition holds.
    pub largest_blind_coalition_shards: usize,
}

/// One site's share of every stripe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteShare {
    /// Site id.
    pub site: SiteId,
    /// Site name.
    pub name: String,
    /// Home or foreign.
    pub home: bool,
    /// Fewest shards of a stripe at this site.
    pub min: usize,
    /// Most shards of a stripe at this site.
    pub max: usize,
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "profile {}: shards of one stripe per site", self.profile)?;
        for s in &self.shares {
            let role = if s.home { "home" } else { "foreign" };
            let share = if s.min == s.max {
                s.max.to_string()
            } else {
                format!("{}-{}", s.min, s.max)
            };
            writeln!(f, "  {:<20} {:<8} {}", s.name, role, share)?;
        }
        writeln!(
            f,
            "survives the loss of home plus any {} other site(s)",
            self.survives_home_plus
        )?;
        writeln!(f, "survives the loss of any {} site(s)", self.survives_any)?;
        write!(
            f,
            "any {} foreign site(s) together hold at most {} shard(s) of a stripe: fewer than k = {}, \
             they cannot reconstruct",
            self.largest_blind_coalition,
            self.largest_blind_coalition_shards,
            self.profile.k()
        )
    }
}

/// How many shards each site takes, decided once per layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    profile: Profile,
    /// Index (into `layout.sites`) of the home site and its fixed share.
    home: Option<(usize, usize)>,
    /// Indices of foreign sites and their caps.
    foreign: Vec<(usize, usize)>,
    /// Shards the foreign sites share.
    foreign_total: usize,
}

/// Shares of `total` over sites with `caps`, water-filled: every site gets `min(cap, t - 1)`
/// and `extra` of the sites with `cap >= t` get one more. Returns (t, extra).
fn water_level(caps: &[usize], total: usize) -> Option<(usize, usize)> {
    if caps.iter().sum::<usize>() < total {
        return None;
    }
    if total == 0 {
        return Some((1, 0));
    }
    let mut t = 1;
    while caps.iter().map(|&c| c.min(t)).sum::<usize>() < total {
        t += 1;
    }
    let base: usize = caps.iter().map(|&c| c.min(t - 1)).sum();
    Some((t, total - base))
}

/// The foreign shares sorted from largest to smallest (the worst case for losses).
fn worst_shares(caps: &[usize], total: usize) -> Vec<usize> {
    let Some((t, extra)) = water_level(caps, total) else {
        return Vec::new();
    };
    let mut shares: Vec<usize> = Vec::with_capacity(caps.len());
    let mut extras_left = extra;
    let mut eligible: Vec<usize> = Vec::new();
    for &c in caps {
        if c >= t {
            eligible.push(c);
        } else {
            shares.push(c);
        }
    }
    for _ in &eligible {
        if extras_left > 0 {
            shares.push(t);
            extras_left -= 1;
        } else {
            shares.push(t - 1);
        }
    }
    shares.sort_unstable_by(|a, b| b.cmp(a));
    shares
}

fn disks_of(site: &Site) -> usize {
    site.nodes
        .iter()
        .map(|n| n.disks.iter().filter(|d| d.capacity > 0).count())
        .sum()
}

fn validate(layout: &Layout) -> Result<(), LayoutError> {
    let invalid = |s: String| Err(LayoutError::Invalid(s));
    if layout.sites.is_empty() {
        return invalid("no sites".into());
    }
    if layout.sites.iter().filter(|s| s.home).count() > 1 {
        return invalid("more than one home site".into());
    }
    let mut sites = BTreeSet::new();
    let mut nodes = BTreeSet::new();
    let mut disks = BTreeSet::new();
    for s in &layout.sites {
        if !sites.insert(s.id) {
            return invalid(format!("site id {} appears twice", s.id.0));
        }
        for n in &s.nodes {
            if !nodes.insert(n.id) {
                return invalid(format!("node id {} appears twice", n.id.0));
            }
            for d in &n.disks {
                if !disks.insert(d.id) {
                    return invalid(format!("disk id {} appears twice", d.id.0));
                }
            }
        }
    }
    Ok(())
}

/// Decides each site's share of a stripe, or refuses the layout with the reason.
pub fn plan(layout: &Layout, rule: Rule) -> Result<Plan, LayoutError> {
    validate(layout)?;
    let profile = layout.profile;
    let (k, n) = (profile.k(), profile.n());
    let f = rule.survive_foreign_losses;
    let foreign: Vec<(usize, usize)> = layout
        .sites
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.home)
        .map(|(i, s)| (i, disks_of(s).min(k - 1)))
        .collect();
    let caps: Vec<usize> = foreign.iter().map(|&(_, c)| c).collect();
    let home = layout.sites.iter().position(|s| s.home);
    let home_cap = home.map_or(0, |i| disks_of(&layout.sites[i]).min(n));

    let cap_sum: usize = caps.iter().sum::<usize>() + home_cap;
    if cap_sum < n {
        return Err(LayoutError::CannotPlace {
            n,
            profile,
            reason: format!(
                "the sites can take only {cap_sum}: a foreign site takes at most k - 1 = {} \
                 (no host may hold k shards) and every site at most one per disk",
                k - 1
            ),
        });
    }

    let survivors = |h: usize, lost_foreign: usize| -> Option<usize> {
        let shares = worst_shares(&caps, n - h);
        if shares.is_empty() && n - h > 0 {
            return None;
        }
        let lost: usize = shares.iter().take(lost_foreign).sum();
        Some(n - h - lost)
    };
    // The home site takes as many shards as it can while rule 2 still holds.
    let mut best: Option<(usize, usize)> = None; // (h, remaining)
    for h in (0..=home_cap).rev() {
        if let Some(remaining) = survivors(h, f) {
            if remaining >= k {
                best = Some((h, remaining));
                break;
            }
            if best.is_none_or(|(_, r)| remaining > r) {
                best = Some((h, remaining));
            }
        }
    }
    let Some((h, remaining)) = best else {
        return Err(LayoutError::CannotPlace {
            n,
            profile,
            reason: "the foreign sites cannot take the shards the home site cannot".into(),
        });
    };
    if remaining < k {
        let lost = match home {
            Some(_) => format!("the home site and {f} other site(s)"),
            None => format!("{f} site(s)"),
        };
        return Err(LayoutError::BreaksSurvival {
            profile,
            k,
            lost,
            remaining,
        });
    }
    Ok(Plan {
        profile,
        home: home.map(|i| (i, h)),
        foreign,
        foreign_total: n - h,
    })
}

/// Checks `layout` against `rule`: what it survives and who cannot reconstruct, or why it is
/// refused.
pub fn check(layout: &Layout, rule: Rule) -> Result<CheckReport, LayoutError> {
    let plan = plan(layout, rule)?;
    let (k, n) = (plan.profile.k(), plan.profile.n());
    let caps: Vec<usize> = plan.foreign.iter().map(|&(_, c)| c).collect();
    let worst = worst_shares(&caps, plan.foreign_total);
    let h = plan.home.map_or(0, |(_, h)| h);

    let (t, extra) = water_level(&caps, plan.foreign_total).unwrap_or((1, 0));
    let eligible = caps.iter().filter(|&&c| c >= t).count();
    let mut shares = Vec::new();
    for (i, site) in layout.sites.iter().enumerate() {
        let (min, max) = if site.home {
            (h, h)
        } else {
            let cap = plan
                .foreign
                .iter()
                .find(|&&(j, _)| j == i)
                .map_or(0, |&(_, c)| c);
            if plan.foreign_total == 0 {
                (0, 0)
            } else if cap < t {
                (cap, cap)
            } else if extra == 0 {
                (t - 1, t - 1)
            } else if extra == eligible {
                (t, t)
            } else {
                (t - 1, t)
            }
        };
        shares.push(SiteShare {
            site: site.id,
            name: site.name.clone(),
            home: site.home,
            min,
            max,
        });
    }

    let mut survives_home_plus = 0;
    while survives_home_plus < worst.len()
        && n - h - worst.iter().take(survives_home_plus + 1).sum::<usize>() >= k
    {
        survives_home_plus += 1;
    }
    let mut all = worst.clone();
    all.push(h);
    all.sort_unstable_by(|a, b| b.cmp(a));
    let mut survives_any = 0;
    while survives_any < all.len() && n - all.iter().take(survives_any + 1).sum::<usize>() >= k {
        survives_any += 1;
    }
    let mut coalition = 0;
    let mut coalition_shards = 0;
    while coalition < worst.len() && coalition_shards + worst[coalition] < k {
        coalition_shards += worst[coalition];
        coalition += 1;
    }
    Ok(CheckReport {
        profile: plan.profile,
        shares,
        survives_home_plus,
        survives_any,
        largest_blind_coalition: coalition,
        largest_blind_coalition_shards: coalition_shards,
    })
}

/// Places the k + m shards of `object`'s stripes: `result[i]` is where shard i lives.
pub fn place(layout: &Layout, plan: &Plan, object: &ObjectId) -> Vec<ShardLocation> {
    // Rank foreign sites by a hash of (object, site): the first ones take the larger share.
    let mut foreign: Vec<(u64, usize, usize)> = plan
        .foreign
        .iter()
        .map(|&(i, cap)| {
            (
                score(object, b"site", u64::from(layout.sites[i].id.0)),
                i,
                cap,
            )
        })
        .collect();
    foreign.sort_unstable_by_key(|&(score, _, _)| std::cmp::Reverse(score));
    let caps: Vec<usize> = foreign.iter().map(|&(_, _, c)| c).collect();
    let (t, mut extra) = water_level(&caps, plan.foreign_total).unwrap_or((1, 0));

    // (site index, shard count), home last.
    let mut counts: Vec<(usize, usize)> = Vec::with_capacity(foreign.len() + 1);
    for &(_, i, cap) in &foreign {
        let mut c = cap.min(t - 1);
        if cap >= t && extra > 0 && plan.foreign_total > 0 {
            c += 1;
            extra -= 1;
        }
        counts.push((i, c));
    }
    if let Some((i, h)) = plan.home {
        counts.push((i, h));
    }

    // Disks per site, best first, spreading over nodes before doubling up on one.
    let mut picks: Vec<std::vec::IntoIter<ShardLocation>> = counts
        .iter()
        .map(|&(i, c)| pick_disks(&layout.sites[i], object, c).into_iter())
        .collect();

    // Deal shard indices round-robin over the sites in rank order, so data shards spread.
    let mut out = Vec::with_capacity(plan.profile.n());
    while out.len() < plan.profile.n() {
        let before = out.len();
        for p in &mut picks {
            if let Some(loc) = p.next() {
                out.push(loc);
            }
        }
        if out.len() == before {
            break; // unreachable with a valid plan: the counts sum to n
        }
    }
    out
}

fn pick_disks(site: &Site, object: &ObjectId, count: usize) -> Vec<ShardLocation> {
    let mut ranked: Vec<(f64, NodeId, DiskId)> = site
        .nodes
        .iter()
        .flat_map(|n| n.disks.iter().map(move |d| (n.id, *d)))
        .filter(|(_, d)| d.capacity > 0)
        .map(|(node, d)| {
            // Weighted rendezvous: -ln(u) / weight, smallest wins.
            let u = (score(object, b"disk", u64::from(d.id.0)) >> 11) as f64 + 1.0;
            let u = u / (1u64 << 53) as f64;
            (-u.ln() / d.capacity as f64, node, d.id)
        })
        .collect();
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.2.cmp(&b.2)));
    let mut chosen: Vec<ShardLocation> = Vec::with_capacity(count);
    let mut used_nodes = BTreeSet::new();
    for &(_, node, disk) in &ranked {
        if chosen.len() < count && used_nodes.insert(node) {
            chosen.push(ShardLocation {
                site: site.id,
                node,
                disk,
            });
        }
    }
    for &(_, node, disk) in &ranked {
        if chosen.len() < count && !chosen.iter().any(|c| c.disk == disk) {
            chosen.push(ShardLocation {
                site: site.id,
                node,
                disk,
            });
        }
    }
    chosen
}

fn score(object: &ObjectId, what: &[u8], id: u64) -> u64 {
    let mut h = blake3::Hasher::new();
    h.update(b"exclave placement v1");
    h.update(what);
    h.update(&object.0);
    h.update(&id.to_le_bytes());
    let out = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&out.as_bytes()[..8]);
    u64::from_le_bytes(b)
}
