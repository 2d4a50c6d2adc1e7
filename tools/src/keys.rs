//! Key custody: the master key cut into Shamir shares (GF(256), the `blahaj` crate) for
//! officials in different places, and joined again from any `threshold` of them.
//!
//! A share file is text: which key it belongs to (key id and check value), the threshold, its
//! number, and the share bytes, with a checksum over all of it so that a mistyped or damaged
//! file is named, not used. Fewer shares than the threshold are refused before anything is
//! computed; the joined key is checked against the check value, so wrong shares (of another
//! key or another split) are refused too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use exclave::core::ids::hex;
use exclave::core::keys::MasterKey;
pub(crate) use exclave::ops::keys::ShareFile;

/// Cuts `master` into `shares` shares, any `threshold` of which restore it.
pub(crate) fn split(
    master: &MasterKey,
    threshold: u8,
    shares: u8,
) -> anyhow::Result<Vec<ShareFile>> {
    if threshold < 2 {
        bail!("--threshold must be at least 2 (one share alone would be the key)");
    }
    if shares < threshold {
        bail!("--shares ({shares}) must be at least --threshold ({threshold})");
    }
    let dealer = blahaj::Sharks(threshold).dealer(master.secret_bytes());
    Ok(dealer
        .take(usize::from(shares))
        .map(|s| ShareFile {
            key_id: master.id(),
            kcv: hex(&master.check_value()),
            threshold,
            shares,
            share: Vec::from(&s),
        })
        .collect())
}

/// Restores the master key from share files, or says why not.
pub(crate) fn join(files: &[ShareFile]) -> anyhow::Result<MasterKey> {
    let Some(first) = files.first() else {
        bail!("give the share files: --key-share FILE (repeat)");
    };
    for f in files {
        if (f.key_id, &f.kcv, f.threshold) != (first.key_id, &first.kcv, first.threshold) {
            bail!(
                "the shares belong to different keys or splits (master key {} check {} vs {} check {})",
                first.key_id,
                first.kcv,
                f.key_id,
                f.kcv
            );
        }
    }
    let mut distinct: BTreeMap<u8, &ShareFile> = BTreeMap::new();
    for f in files {
        distinct.insert(f.share[0], f);
    }
    if distinct.len() < usize::from(first.threshold) {
        bail!(
            "{} distinct share(s) of master key {} given; {} are needed. Fewer reveal nothing \
             about the key: ask more share holders",
            distinct.len(),
            first.key_id,
            first.threshold
        );
    }
    let shares: Vec<blahaj::Share> = distinct
        .values()
        .map(|f| blahaj::Share::try_from(f.share.as_slice()))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("a share does not decode: {e}"))?;
    let secret = blahaj::Sharks(first.threshold)
        .recover(&shares)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let bytes: [u8; 32] = secret
        .try_into()
        .map_err(|_| anyhow::anyhow!("the shares do not hold a 32-byte key"))?;
    let key = MasterKey::from_bytes(first.key_id, bytes);
    if hex(&key.check_value()) != first.kcv {
        bail!(
            "the joined key does not match its check value {}: a share is from another split \
             or was altered",
            first.kcv
        );
    }
    Ok(key)
}

/// Reads share files.
pub(crate) fn read_shares(paths: &[PathBuf]) -> anyhow::Result<Vec<ShareFile>> {
    let (shares, bad) = sort_shares(paths);
    for b in &bad {
        eprintln!("warning: a share left out: {b}");
    }
    if bad.is_empty()
        || shares.len()
            >= shares
                .first()
                .map_or(usize::MAX, |s| usize::from(s.threshold))
    {
        return Ok(shares);
    }
    bail!(
        "{} of the {} share files cannot be used, and the rest do not reach the threshold:\n  {}",
        bad.len(),
        paths.len(),
        bad.join("\n  ")
    )
}

/// The share files that read and check out, and why each of the others does not.
fn sort_shares(paths: &[PathBuf]) -> (Vec<ShareFile>, Vec<String>) {
    let mut shares = Vec::new();
    let mut bad = Vec::new();
    for p in paths {
        let read = std::fs::read_to_string(p)
            .with_context(|| format!("reading {}", p.display()))
            .and_then(|text| ShareFile::parse(p, &text));
        match read {
            Ok(s) => shares.push(s),
            Err(e) => bad.push(format!("{e:#}")),
        }
    }
    (shares, bad)
}

/// The master key from `--master-key-file` (with its id) or from `--key-share` files.
pub(crate) fn master_key(
    file: Option<&Path>,
    key_id: u32,
    shares: &[PathBuf],
) -> anyhow::Result<MasterKey> {
    match (file, shares.is_empty()) {
        (Some(f), true) => Ok(MasterKey::from_bytes(
            key_id,
            exclave::gateway::read_key_file(f)?,
        )),
        (None, false) => join(&read_shares(shares)?),
        (Some(_), false) => bail!("give either --master-key-file or --key-share, not both"),
        (None, true) => {
            bail!("give the master key: --master-key-file F, or --key-share F (repeat)")
        }
    }
}

/// Writes the share files into `out` (a new or empty directory), mode 0600.
pub(crate) fn write_shares(out: &Path, files: &[ShareFile]) -> anyhow::Result<Vec<PathBuf>> {
    if out.exists() && std::fs::read_dir(out)?.next().is_some() {
        bail!("{} is not empty: refusing to mix share sets", out.display());
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut paths = Vec::new();
    for f in files {
        let path = out.join(format!("master-key-{}.share-{}.txt", f.key_id, f.share[0]));
        exclave::sys::write_secret(&path, f.render().as_bytes())?;
        paths.push(path);
    }
    Ok(paths)
}

/// `exclave keys rotate`: runs the rotation with a progress bar and prints what it did.
pub(crate) fn rotate(config: &Path, json: bool) -> anyhow::Result<bool> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let bar = crate::recover::Bar::new(json);
    let result = runtime.block_on(exclave::ops::keys::rotate(config, &|p| bar.show(p)));
    bar.done();
    let r = result?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(r.complete);
    }
    outln!(
        "{:<10} {:>10} {:>9} {:>7}  note",
        "site",
        "re-wrapped",
        "already",
        "record"
    );
    for n in &r.nodes {
        outln!(
            "{:<10} {:>10} {:>9} {:>7}  {}",
            n.site,
            n.rewrapped,
            n.already,
            if n.record { "ok" } else { "-" },
            n.error.clone().unwrap_or_default()
        );
    }
    outln!(
        "master key {} (check value {}) is current: {}",
        r.key_id,
        r.check_value,
        r.key_file.display()
    );
    if r.complete {
        outln!(
            "every site is done. Start the gateway; split the new key (`exclave keys split`) and \
             have the old shares destroyed."
        );
    } else {
        outln!(
            "not every site is done: the old key stays listed in the config. Start the gateway \
             (it opens both), and run `exclave keys rotate` again once the sites above answer."
        );
    }
    Ok(r.complete)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_share_is_named_and_left_out_when_the_others_reach_the_threshold() {
        let master = MasterKey::from_bytes(1, [5; 32]);
        let dir = std::env::temp_dir().join(format!("exclave-shares-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let paths = write_shares(&dir, &split(&master, 3, 5).unwrap()).unwrap();
        let mut text = std::fs::read_to_string(&paths[1]).unwrap();
        text = text.replacen("share = ", "share = 00", 1);
        std::fs::write(&paths[1], text).unwrap();
        // Four given, one damaged: the three good ones restore the key.
        let shares = read_shares(&paths[..4]).unwrap();
        assert_eq!(shares.len(), 3);
        assert_eq!(join(&shares).unwrap().secret_bytes(), master.secret_bytes());
        // Three given, one damaged: refused, naming the damaged file.
        let e = read_shares(&paths[..3]).unwrap_err().to_string();
        assert!(e.contains(&paths[1].display().to_string()), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn key() -> MasterKey {
        MasterKey::from_bytes(3, [7u8; 32])
    }

    #[test]
    fn any_threshold_of_the_shares_restore_the_key_and_fewer_are_refused() {
        let shares = split(&key(), 3, 5).unwrap();
        assert_eq!(shares.len(), 5);
        // Every 3-subset (and the 4- and 5-subsets) restores the key.
        for mask in 0u32..32 {
            let pick: Vec<ShareFile> = (0..5)
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| shares[i].clone())
                .collect();
            let joined = join(&pick);
            if pick.len() >= 3 {
                let k = joined.unwrap();
                assert_eq!(k.secret_bytes(), key().secret_bytes());
                assert_eq!(k.id(), 3);
            } else {
                let e = joined.err().map(|e| e.to_string()).unwrap_or_default();
                assert!(pick.is_empty() || e.contains("are needed"), "{e}");
            }
        }
        // The same share twice counts once.
        let twice = vec![shares[0].clone(), shares[0].clone(), shares[1].clone()];
        assert!(join(&twice).unwrap_err().to_string().contains("2 distinct"));
    }

    #[test]
    fn files_round_trip_and_damage_or_foreign_shares_are_refused() {
        let shares = split(&key(), 2, 3).unwrap();
        let p = Path::new("s.txt");
        for s in &shares {
            assert_eq!(&ShareFile::parse(p, &s.render()).unwrap(), s);
        }
        // One changed digit in the share: the checksum names it.
        let text = shares[0].render();
        let i = text.find("share = ").unwrap() + 10;
        let mut damaged = text.into_bytes();
        damaged[i] = if damaged[i] == b'0' { b'1' } else { b'0' };
        let e = ShareFile::parse(p, std::str::from_utf8(&damaged).unwrap()).unwrap_err();
        assert!(e.to_string().contains("checksum"), "{e}");
        // A share of another split of the same key: the joined key fails its check value.
        let other = split(&key(), 2, 3).unwrap();
        let mixed = vec![shares[0].clone(), other[1].clone()];
        let e = join(&mixed).unwrap_err().to_string();
        assert!(e.contains("check value"), "{e}");
        // Threshold 1 is refused at split.
        assert!(split(&key(), 1, 3).is_err());
        assert!(split(&key(), 4, 3).is_err());
    }
}
