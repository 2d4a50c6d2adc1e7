//! Listings: ListObjectsV2, ListObjects (V1) and ListObjectVersions (current versions only),
//! all over the index.

use s3s::dto::{
    CommonPrefix, ETag, ListObjectVersionsInput, ListObjectVersionsOutput, ListObjectsInput,
    ListObjectsOutput, ListObjectsV2Input, ListObjectsV2Output, Object, ObjectVersion,
};
use s3s::{S3Request, S3Response, S3Result};

use super::buckets::owner;
use super::error::S3Fault;
use super::{Gateway, timestamp};
use crate::meta::{Entry, ListPage, ListQuery};

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
                delimiter: i.delimiter.clone(),
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
            delimiter: enc.o(i.delimiter.as_ref()),
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
                delimiter: i.delimiter.clone(),
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
            prefix: Some(enc.s(i.prefix.as_deref().unwrap_or(""))),
            delimiter: enc.o(i.delimiter.as_ref()),
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
        let page = self.index.list(
            &i.bucket,
            &ListQuery {
                prefix: i.prefix.clone().unwrap_or_default(),
                delimiter: i.delimiter.clone(),
                start_after: i.key_marker.clone().filter(|m| !m.is_empty()),
                continuation: None,
                max_keys: max,
            },
        )?;
        let versions = page
            .contents
            .iter()
            .map(|(k, e)| ObjectVersion {
                key: Some(enc.s(k)),
                version_id: Some("null".into()),
                is_latest: Some(true),
                e_tag: Some(ETag::Strong(e.etag.clone())),
                size: Some(e.size as i64),
                last_modified: Some(timestamp(e.modified_ms)),
                owner: Some(owner()),
                storage_class: Some(s3s::dto::ObjectVersionStorageClass::from_static("STANDARD")),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListObjectVersionsOutput {
            name: Some(i.bucket.clone()),
            prefix: Some(enc.s(i.prefix.as_deref().unwrap_or(""))),
            delimiter: enc.o(i.delimiter.as_ref()),
            key_marker: enc.o(i.key_marker.as_ref()),
            version_id_marker: i.version_id_marker.clone(),
            max_keys: Some(max as i32),
            is_truncated: Some(page.truncated),
            next_key_marker: if page.truncated {
                enc.o(page.next_marker.as_ref())
            } else {
                None
            },
            next_version_id_marker: page.truncated.then(|| "null".to_owned()),
            encoding_type: i.encoding_type.clone(),
            versions: Some(versions),
            common_prefixes: Some(prefixes(&enc, &page)),
            ..Default::default()
        }))
    }
}
