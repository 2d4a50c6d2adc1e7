//! Listings: ListObjectsV2, ListObjects (V1) and ListObjectVersions (current versions only),
//! all over the index.

use s3s::dto::{
    CommonPrefix, DeleteMarkerEntry, ETag, ListObjectVersionsInput, ListObjectVersionsOutput,
    ListObjectsInput, ListObjectsOutput, ListObjectsV2Input, ListObjectsV2Output, Object,
    ObjectVersion,
};
use s3s::{S3Request, S3Response, S3Result};

use super::buckets::owner;
use super::error::S3Fault;
use super::{Gateway, timestamp};
use crate::core::hlc::Version;
use crate::core::ids::{hex, unhex};
use crate::meta::{Entry, ListPage, ListQuery, VersionMarker, VersionQuery};

fn max_keys(m: Option<i32>) -> S3Result<usize> {
    match m {
        None => Ok(1000),
        Some(n) if n < 0 => {
            Err(S3Fault::InvalidArgument("max-keys must be a non-negative integer".into()).into())
        }
        Some(n) => Ok((n as usize).min(1000)),
    }
}

/// `encoding-type=url`: keys and prefixes percent-encoded in the response.
struct Enc(bool);

impl Enc {
    fn new(e: Option<&s3s::dto::EncodingType>) -> S3Result<Self> {
        match e.map(s3s::dto::EncodingType::as_str) {
            None => Ok(Self(false)),
            Some(s) if s.eq_ignore_ascii_case("url") => Ok(Self(true)),
            Some(_) => Err(S3Fault::InvalidArgument(
                "Invalid Encoding Method specified in Request".into(),
            )
            .into()),
        }
    }

    fn s(&self, v: &str) -> String {
        if self.0 {
            // Like S3: everything but unreserved characters and '/' is escaped.
            urlencoding::encode(v).replace("%2F", "/")
        } else {
            v.to_owned()
        }
    }

    fn o(&self, v: Option<&String>) -> Option<String> {
        v.map(|v| self.s(v))
    }
}

fn object(enc: &Enc, key: &str, e: &Entry) -> Object {
    Object {
        key: Some(enc.s(key)),
        e_tag: Some(ETag::Strong(e.etag.clone())),
        size: Some(e.size as i64),
        last_modified: Some(timestamp(e.modified_ms)),
        storage_class: Some(s3s::dto::ObjectStorageClass::from_static("STANDARD")),
        ..Default::default()
    }
}

fn prefixes(enc: &Enc, page: &ListPage) -> Vec<CommonPrefix> {
    page.common_prefixes
        .iter()
        .map(|p| CommonPrefix {
            prefix: Some(enc.s(p)),
        })
        .collect()
}

impl Gateway {
    pub(crate) fn list_objects_v2_op(
        &self,
        req: &S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let i = &req.input;
        self.require_bucket(&i.bucket)?;
        let enc = Enc::new(i.encoding_type.as_ref())?;
        let max = max_keys(i.max_keys)?;
        let page = self.index.list(
            &i.bucket,
            &ListQuery {
                prefix: i.prefix.clone().unwrap_or_default(),
                delimiter: i.delimiter.clone().filter(|d| !d.is_empty()),
                start_after: i.start_after.clone(),
                continuation: i.continuation_token.clone(),
                max_keys: max,
            },
        )?;
        let fetch_owner = i.fetch_owner.unwrap_or(false);
        let contents: Vec<Object> = page
            .contents
            .iter()
            .map(|(k, e)| {
                let mut o = object(&enc, k, e);
                if fetch_owner {
                    o.owner = Some(owner());
                }
                o
            })
            .collect();
        let common = prefixes(&enc, &page);
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(i.bucket.clone()),
            prefix: Some(enc.s(i.prefix.as_deref().unwrap_or(""))),
            delimiter: enc.o(i.delimiter.as_ref().filter(|d| !d.is_empty())),
            max_keys: Some(max as i32),
            key_count: Some((contents.len() + common.len()) as i32),
            continuation_token: i.continuation_token.clone(),
            next_continuation_token: page.next_token.clone(),
            is_truncated: Some(page.truncated),
            start_after: enc.o(i.start_after.as_ref()),
            encoding_type: i.encoding_type.clone(),
            contents: Some(contents),
            common_prefixes: Some(common),
            ..Default::default()
        }))
    }

    pub(crate) fn list_objects_op(
        &self,
        req: &S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let i = &req.input;
        self.require_bucket(&i.bucket)?;
        let enc = Enc::new(i.encoding_type.as_ref())?;
        let max = max_keys(i.max_keys)?;
        let page = self.index.list(
            &i.bucket,
            &ListQuery {
                prefix: i.prefix.clone().unwrap_or_default(),
                delimiter: i.delimiter.clone().filter(|d| !d.is_empty()),
                start_after: i.marker.clone().filter(|m| !m.is_empty()),
                continuation: None,
                max_keys: max,
            },
        )?;
        let contents: Vec<Object> = page
            .contents
            .iter()
            .map(|(k, e)| {
                let mut o = object(&enc, k, e);
                o.owner = Some(owner());
                o
            })
            .collect();
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(i.bucket.clone()),
            // As S3 answers ListObjects (V1): its Prefix is never encoded (clients decode only
            // Delimiter, Marker, NextMarker, keys and common prefixes there).
            prefix: Some(i.prefix.clone().unwrap_or_default()),
            delimiter: enc.o(i.delimiter.as_ref().filter(|d| !d.is_empty())),
            marker: Some(enc.s(i.marker.as_deref().unwrap_or(""))),
            max_keys: Some(max as i32),
            is_truncated: Some(page.truncated),
            // S3 sends NextMarker only with a delimiter; we always send it when truncated, which
            // every client accepts and saves those that do not fall back to the last key.
            next_marker: if page.truncated {
                enc.o(page.next_marker.as_ref())
            } else {
                None
            },
            encoding_type: i.encoding_type.clone(),
            common_prefixes: Some(prefixes(&enc, &page)),
            contents: Some(contents),
            ..Default::default()
        }))
    }

    pub(crate) fn list_object_versions_op(
        &self,
        req: &S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let i = &req.input;
        self.require_bucket(&i.bucket)?;
        let enc = Enc::new(i.encoding_type.as_ref())?;
        let max = max_keys(i.max_keys)?;
        let key_marker = i.key_marker.clone().filter(|m| !m.is_empty());
        let after_version = match i.version_id_marker.as_deref().filter(|m| !m.is_empty()) {
            None => None,
            Some(_) if key_marker.is_none() => {
                return Err(S3Fault::InvalidArgument(
                    "A version-id marker cannot be specified without a key marker.".into(),
                )
                .into());
            }
            Some(id) => Some(parse_version_id(id)?),
        };
        let page = self.index.list_versions(
            &i.bucket,
            &VersionQuery {
                prefix: i.prefix.clone().unwrap_or_default(),
                delimiter: i.delimiter.clone().filter(|d| !d.is_empty()),
                key_marker,
                after_version,
                max_keys: max,
            },
        )?;
        let mut versions = Vec::new();
        let mut markers = Vec::new();
        for v in &page.versions {
            let id = version_id(VersionMarker::of(&v.entry));
            let modified = Some(timestamp(v.entry.modified_ms));
            if v.entry.deleted {
                markers.push(DeleteMarkerEntry {
                    key: Some(enc.s(&v.key)),
                    version_id: Some(id),
                    is_latest: Some(v.latest),
                    last_modified: modified,
                    owner: Some(owner()),
                });
            } else {
                versions.push(ObjectVersion {
                    key: Some(enc.s(&v.key)),
                    version_id: Some(id),
                    is_latest: Some(v.latest),
                    e_tag: Some(ETag::Strong(v.entry.etag.clone())),
                    size: Some(v.entry.size as i64),
                    last_modified: modified,
                    owner: Some(owner()),
                    storage_class: Some(s3s::dto::ObjectVersionStorageClass::from_static(
                        "STANDARD",
                    )),
                    ..Default::default()
                });
            }
        }
        let (next_key, next_version) = match &page.next {
            Some((k, v)) => (Some(enc.s(k)), v.map(version_id)),
            None => (None, None),
        };
        Ok(S3Response::new(ListObjectVersionsOutput {
            name: Some(i.bucket.clone()),
            prefix: Some(enc.s(i.prefix.as_deref().unwrap_or(""))),
            delimiter: enc.o(i.delimiter.as_ref().filter(|d| !d.is_empty())),
            key_marker: Some(enc.s(i.key_marker.as_deref().unwrap_or(""))),
            version_id_marker: Some(i.version_id_marker.clone().unwrap_or_default()),
            max_keys: Some(max as i32),
            is_truncated: Some(page.truncated),
            next_key_marker: next_key,
            next_version_id_marker: next_version,
            encoding_type: i.encoding_type.clone(),
            versions: Some(versions),
            delete_markers: Some(markers),
            common_prefixes: Some(
                page.common_prefixes
                    .iter()
                    .map(|p| CommonPrefix {
                        prefix: Some(enc.s(p)),
                    })
                    .collect(),
            ),
            ..Default::default()
        }))
    }
}

/// S3's name of a version: `null`, or the hex of its identity.
pub(crate) fn version_id(v: VersionMarker) -> String {
    match v {
        VersionMarker::Null => "null".into(),
        VersionMarker::Id(v) => hex(&v.to_bytes()),
    }
}

/// A version id a client sent, as [`version_id`] makes them; anything else is refused as AWS
/// refuses it.
pub(crate) fn parse_version_id(id: &str) -> S3Result<VersionMarker> {
    if id == "null" {
        return Ok(VersionMarker::Null);
    }
    unhex(id)
        .and_then(|b| <[u8; 16]>::try_from(b).ok())
        .map(|b| VersionMarker::Id(Version::from_bytes(b)))
        .ok_or_else(|| S3Fault::InvalidArgument("Invalid version id specified".into()).into())
}
