//! Every version of every key the index knows, newest first within a key, as S3's
//! ListObjectVersions lists them; kept beside `objects` (the current version of each key) in
//! the same transactions (`put_entry`).
//!
//! A row's key is `object_key(bucket, "")`, the key's bytes with each 0x00 written as 0x00 0xff,
//! the terminator 0x00 0x00, then the version's commit order with every bit inverted: rows sort
//! by key as S3 lists keys, and within a key newest first. The null version of a key (one
//! written while its bucket's versioning was not Enabled) is one row: a newer null version
//! replaces it. A delete written while the bucket was unversioned is kept as a row (so that an
//! older null version does not come back when the index is rebuilt in another order) but is
//! listed by nobody.

use redb::{ReadableTable, Table, TableDefinition};

use super::{Entry, Index, MetaError, bucket_of, db_err, object_key, rollup, successor};
use crate::core::format::Versioning;
use crate::core::hlc::Version;

/// The rows (see the module's notes) → [`Entry`] encodings.
pub(super) const VERSIONS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("versions");

/// The row key of a key's versions, without the order: bucket, escaped key, terminator.
fn key_prefix(bucket: &str, key: &str) -> Vec<u8> {
    let mut k = object_key(bucket, "");
    escape_into(&mut k, key.as_bytes());
    k.extend_from_slice(&[0, 0]);
    k
}

fn escape_into(out: &mut Vec<u8>, key: &[u8]) {
    for &b in key {
        out.push(b);
        if b == 0 {
            out.push(0xff);
        }
    }
}

fn row_key(bucket: &str, key: &str, order: Version) -> Vec<u8> {
    let mut k = key_prefix(bucket, key);
    k.extend(order.to_bytes().iter().map(|b| !b));
    k
}

/// The key and order a row key names, given the length of its bucket's prefix.
fn parse_row(k: &[u8], base: usize) -> Result<(String, Version), MetaError> {
    let rest = k.get(base..).ok_or(MetaError::Malformed)?;
    let (escaped, order) = rest
        .split_at_checked(rest.len().saturating_sub(16))
        .ok_or(MetaError::Malformed)?;
    let mut key = Vec::with_capacity(escaped.len());
    let mut i = 0;
    loop {
        match (escaped.get(i), escaped.get(i + 1)) {
            (Some(0), Some(0)) if i + 2 == escaped.len() => break,
            (Some(0), Some(0xff)) => {
                key.push(0);
                i += 2;
            }
            (Some(&b), _) if b != 0 => {
                key.push(b);
                i += 1;
            }
            _ => return Err(MetaError::Malformed),
        }
    }
    let mut o = [0u8; 16];
    for (d, s) in o.iter_mut().zip(order) {
        *d = !s;
    }
    let key = String::from_utf8(key).map_err(|_| MetaError::Malformed)?;
    Ok((key, Version::from_bytes(o)))
}

/// Whether a version is listed: everything but a delete of an unversioned bucket and a
/// removed version.
fn listed(e: &Entry) -> bool {
    !(e.removed || e.deleted && e.written_under == Versioning::Unversioned)
}

/// The newest version of (bucket, key) that was not removed: its current one.
pub(super) fn newest(
    t: &Table<'_, &[u8], &[u8]>,
    bucket: &str,
    key: &str,
) -> Result<Option<Entry>, MetaError> {
    let prefix = key_prefix(bucket, key);
    let end = successor(&prefix).ok_or(MetaError::Malformed)?;
    for item in t.range::<&[u8]>(&prefix[..]..&end[..]).map_err(db_err)? {
        let (_, v) = item.map_err(db_err)?;
        let e = Entry::decode(v.value())?;
        if !e.removed {
            return Ok(Some(e));
        }
    }
    Ok(None)
}

/// Records version `e` of (bucket, key) among the key's versions. A null version replaces an
/// older null version of the key (removed or not), and is not recorded if a newer one is
/// there. A removed version stays removed: a copy from before its removal changes nothing.
pub(super) fn record(
    t: &mut Table<'_, &[u8], &[u8]>,
    bucket: &str,
    key: &str,
    e: &Entry,
) -> Result<(), MetaError> {
    let row = row_key(bucket, key, e.order);
    if !e.removed
        && let Some(old) = t.get(&row[..]).map_err(db_err)?
        && Entry::decode(old.value())?.removed
    {
        return Ok(());
    }
    if e.written_under != Versioning::Enabled {
        let prefix = key_prefix(bucket, key);
        let end = successor(&prefix).ok_or(MetaError::Malformed)?;
        let mut older = Vec::new();
        for item in t.range::<&[u8]>(&prefix[..]..&end[..]).map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            let old = Entry::decode(v.value())?;
            if old.written_under != Versioning::Enabled && old.version != e.version {
                if old.order > e.order {
                    return Ok(());
                }
                older.push(k.value().to_vec());
            }
        }
        for k in older {
            t.remove(&k[..]).map_err(db_err)?;
        }
    }
    t.insert(&row[..], &e.encode()[..]).map_err(db_err)?;
    Ok(())
}

/// Forgets version `e` of (bucket, key) (withdrawn: never acknowledged).
pub(super) fn forget(
    t: &mut Table<'_, &[u8], &[u8]>,
    bucket: &str,
    key: &str,
    e: &Entry,
) -> Result<(), MetaError> {
    t.remove(&row_key(bucket, key, e.order)[..])
        .map_err(db_err)?;
    Ok(())
}

/// What to list (ListObjectVersions parameters).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionQuery {
    /// Only keys starting with this.
    pub prefix: String,
    /// Roll keys up to the first occurrence of this after the prefix.
    pub delimiter: Option<String>,
    /// Start after this key (all its versions), or with `after_version` after that version
    /// of it.
    pub key_marker: Option<String>,
    /// With `key_marker`: start after this version of that key.
    pub after_version: Option<VersionMarker>,
    /// Most versions plus common prefixes returned.
    pub max_keys: usize,
}

/// A version as S3 names it: the key's null version, or one by its identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionMarker {
    /// The version written while versioning was not Enabled.
    Null,
    /// A version written while it was.
    Id(Version),
}

impl VersionMarker {
    /// How S3 names `version`, written while its bucket's versioning was `under`.
    pub fn new(under: Versioning, version: Version) -> Self {
        if under == Versioning::Enabled {
            Self::Id(version)
        } else {
            Self::Null
        }
    }

    /// How S3 names `e`.
    pub fn of(e: &Entry) -> Self {
        Self::new(e.written_under, e.version)
    }
}

/// A bucket's counts for `exclave status`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionCounts {
    /// The bucket.
    pub bucket: String,
    /// Versions listed (delete markers not counted).
    pub versions: u64,
    /// Delete markers listed.
    pub delete_markers: u64,
    /// Versions under a retention not passed or a legal hold.
    pub locked: u64,
}

/// One version in a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedVersion {
    /// Its key.
    pub key: String,
    /// The version.
    pub entry: Entry,
    /// It is the key's current version.
    pub latest: bool,
}

/// One page of ListObjectVersions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionPage {
    /// Versions (and delete markers), keys in order, each key's newest first.
    pub versions: Vec<ListedVersion>,
    /// Common prefixes, in order.
    pub common_prefixes: Vec<String>,
    /// More follow.
    pub truncated: bool,
    /// Where the next page starts: the last key (or common prefix) returned, and the last
    /// version of it returned (None after a common prefix).
    pub next: Option<(String, Option<VersionMarker>)>,
}

impl Index {
    /// The version of (bucket, key) that `marker` names, unless there is none or it was
    /// removed (a delete of an unversioned bucket is the end of its key, no version).
    pub fn version(
        &self,
        bucket: &str,
        key: &str,
        marker: VersionMarker,
    ) -> Result<Option<Entry>, MetaError> {
        use redb::ReadableDatabase as _;
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(VERSIONS).map_err(db_err)?;
        let prefix = key_prefix(bucket, key);
        let end = successor(&prefix).ok_or(MetaError::Malformed)?;
        for item in t.range::<&[u8]>(&prefix[..]..&end[..]).map_err(db_err)? {
            let (_, v) = item.map_err(db_err)?;
            let e = Entry::decode(v.value())?;
            if VersionMarker::of(&e) == marker {
                return Ok(listed(&e).then_some(e));
            }
        }
        Ok(None)
    }

    /// Calls `f` with every version the index keeps (bucket, key, entry), from one snapshot:
    /// what a catalog checkpoint covers. With `removed`, the versions removed by id too (heal
    /// carries their removed copies to the nodes that missed them).
    pub fn for_each_version(
        &self,
        removed: bool,
        mut f: impl FnMut(&str, &str, &Entry),
    ) -> Result<(), MetaError> {
        use redb::ReadableDatabase as _;
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(VERSIONS).map_err(db_err)?;
        for item in t.iter().map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            let e = Entry::decode(v.value())?;
            if e.removed && !removed {
                continue;
            }
            let bucket = bucket_of(k.value())?;
            let (key, _) = parse_row(k.value(), 2 + bucket.len())?;
            f(bucket, &key, &e);
        }
        Ok(())
    }

    /// Per bucket: the versions and the delete markers ListObjectVersions would list (the
    /// bucket's own record not counted), and the versions locked at `now_ms` (a retention not
    /// passed or a legal hold), from one snapshot.
    pub fn version_counts(&self, now_ms: u64) -> Result<Vec<VersionCounts>, MetaError> {
        use redb::ReadableDatabase as _;
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(VERSIONS).map_err(db_err)?;
        let mut out: Vec<VersionCounts> = Vec::new();
        for item in t.iter().map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            let bucket = bucket_of(k.value())?;
            let own_record = k.value().get(2 + bucket.len()..2 + bucket.len() + 2) == Some(&[0, 0]);
            let e = Entry::decode(v.value())?;
            if own_record || !listed(&e) {
                continue;
            }
            if out.last().is_none_or(|c| c.bucket != bucket) {
                out.push(VersionCounts {
                    bucket: bucket.to_owned(),
                    ..VersionCounts::default()
                });
            }
            if let Some(last) = out.last_mut() {
                if e.deleted {
                    last.delete_markers += 1;
                } else {
                    last.versions += 1;
                }
                if e.locked_until.is_some_and(|t| t > now_ms) {
                    last.locked += 1;
                }
            }
        }
        Ok(out)
    }

    /// One page of `bucket`'s versions, as S3's ListObjectVersions defines it. A version id
    /// marker that names no version of the key marker starts after the whole key.
    pub fn list_versions(&self, bucket: &str, q: &VersionQuery) -> Result<VersionPage, MetaError> {
        use redb::ReadableDatabase as _;
        let base = object_key(bucket, "").len();
        let mut with_prefix = object_key(bucket, "");
        escape_into(&mut with_prefix, q.prefix.as_bytes());
        let end = successor(&with_prefix);
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(VERSIONS).map_err(db_err)?;
        // Where to start: (position, inclusive).
        let mut pos = (with_prefix.clone(), true);
        // The key whose rows are being read (its first row is its newest version).
        let mut current_key: Option<String> = None;
        if let Some(marker) = &q.key_marker {
            let prefix = key_prefix(bucket, marker);
            let mut at = successor(&prefix).map(|s| (s, true));
            // A NextKeyMarker may be a common prefix: resume after everything under it.
            if q.after_version.is_none()
                && rollup(marker, &q.prefix, q.delimiter.as_deref()).as_deref() == Some(marker)
            {
                let mut under = object_key(bucket, "");
                escape_into(&mut under, marker.as_bytes());
                at = successor(&under).map(|s| (s, true));
            }
            if let Some(id) = q.after_version {
                let range = t
                    .range::<&[u8]>(
                        &prefix[..]..&at.as_ref().map_or(prefix.clone(), |a| a.0.clone())[..],
                    )
                    .map_err(db_err)?;
                for item in range {
                    let (k, v) = item.map_err(db_err)?;
                    if VersionMarker::of(&Entry::decode(v.value())?) == id {
                        at = Some((k.value().to_vec(), false));
                        current_key = Some(marker.clone());
                        break;
                    }
                }
            }
            match at {
                Some(a) if a.0 > pos.0 => pos = a,
                Some(_) => {}
                None => return Ok(VersionPage::default()),
            }
        }
        let mut page = VersionPage::default();
        if q.max_keys == 0 {
            return Ok(page);
        }
        'scan: loop {
            let range = match &end {
                Some(e) => t.range::<&[u8]>(&pos.0[..]..&e[..]),
                None => t.range::<&[u8]>(&pos.0[..]..),
            }
            .map_err(db_err)?;
            for item in range {
                let (k, v) = item.map_err(db_err)?;
                let kb = k.value();
                if !pos.1 && kb == &pos.0[..] {
                    continue;
                }
                let (key, _) = parse_row(kb, base)?;
                let entry = Entry::decode(v.value())?;
                if entry.removed {
                    continue;
                }
                // The first row of a key not removed is its newest version: current unless a
                // delete.
                let first = current_key.as_deref() != Some(key.as_str());
                if first {
                    current_key = Some(key.clone());
                }
                if key.is_empty() || !listed(&entry) {
                    continue;
                }
                let rolled = rollup(&key, &q.prefix, q.delimiter.as_deref());
                if page.versions.len() + page.common_prefixes.len() >= q.max_keys {
                    page.truncated = true;
                    break 'scan;
                }
                match rolled {
                    Some(cp) => {
                        let mut skip = object_key(bucket, "");
                        escape_into(&mut skip, cp.as_bytes());
                        page.common_prefixes.push(cp.clone());
                        page.next = Some((cp, None));
                        match successor(&skip) {
                            Some(next) => {
                                pos = (next, true);
                                continue 'scan;
                            }
                            None => break 'scan,
                        }
                    }
                    None => {
                        page.next = Some((key.clone(), Some(VersionMarker::of(&entry))));
                        page.versions.push(ListedVersion {
                            key,
                            latest: first,
                            entry,
                        });
                    }
                }
            }
            break;
        }
        if !page.truncated {
            page.next = None;
        }
        Ok(page)
    }
}
