//! Tags (`core::tags`): an object version's are in its sealed manifest (a change is a revised
//! copy, as a retention is; the version, its data and its ETag stay), a bucket's on the
//! bucket's own record. Both come back with the sites. The index keeps each version's tags
//! beside it, for lifecycle filters and `s3:ExistingObjectTag` policy conditions.

use s3s::dto::{
    DeleteBucketTaggingInput, DeleteBucketTaggingOutput, DeleteObjectTaggingInput,
    DeleteObjectTaggingOutput, GetBucketTaggingInput, GetBucketTaggingOutput,
    GetObjectTaggingInput, GetObjectTaggingOutput, PutBucketTaggingInput, PutBucketTaggingOutput,
    PutObjectTaggingInput, PutObjectTaggingOutput, Tag, Tagging,
};
use s3s::{S3Request, S3Response, S3Result};

use super::Gateway;
use super::error::S3Fault;
use super::versioning::answered_id;
use crate::core::tags::{self, MAX_BUCKET_TAGS, MAX_OBJECT_TAGS, Tags};

/// The tags of a request body's `<Tagging>`, checked against `max`.
fn tags_of(t: Tagging, max: usize) -> S3Result<Tags> {
    let tags: Tags = t
        .tag_set
        .into_iter()
        .map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default()))
        .collect();
    tags::check(&tags, max).map_err(|e| S3Fault::InvalidTag(e.0))?;
    Ok(tags)
}

fn tag_set(tags: Tags) -> Vec<Tag> {
    tags.into_iter()
        .map(|(k, v)| Tag {
            key: Some(k),
            value: Some(v),
        })
        .collect()
}

/// The tags an `x-amz-tagging` header asks for (none: no tags).
pub(crate) fn header_tags(h: Option<&String>) -> S3Result<Tags> {
    match h {
        None => Ok(Tags::new()),
        Some(h) => Ok(tags::parse_header(h).map_err(|e| S3Fault::InvalidTag(e.0))?),
    }
}

impl Gateway {
    pub(crate) async fn get_object_tagging_op(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        let i = req.input;
        self.require_bucket(&i.bucket)?;
        let (m, meta) = self
            .object_at(&i.bucket, &i.key, i.version_id.as_deref())
            .await?;
        Ok(S3Response::new(GetObjectTaggingOutput {
            tag_set: tag_set(tags::of(&meta)),
            version_id: answered_id(&m),
        }))
    }

    pub(crate) async fn put_object_tagging_op(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        let _writing = self.writing();
        let i = req.input;
        let tags = tags_of(i.tagging, MAX_OBJECT_TAGS)?;
        let version_id = self
            .retag(&i.bucket, &i.key, i.version_id.as_deref(), tags)
            .await?;
        Ok(S3Response::new(PutObjectTaggingOutput { version_id }))
    }

    pub(crate) async fn delete_object_tagging_op(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        let _writing = self.writing();
        let i = req.input;
        let version_id = self
            .retag(&i.bucket, &i.key, i.version_id.as_deref(), Tags::new())
            .await?;
        let mut resp = S3Response::new(DeleteObjectTaggingOutput { version_id });
        resp.status = Some(http::StatusCode::NO_CONTENT);
        Ok(resp)
    }

    /// Gives a version (the current one, or `id`) the tag set `tags` by a revised copy of its
    /// manifest; answers its version id as S3 names it.
    async fn retag(
        &self,
        bucket: &str,
        key: &str,
        id: Option<&str>,
        tags: Tags,
    ) -> S3Result<Option<String>> {
        self.require_bucket(bucket)?;
        let _held = self.key_guard(bucket, key).await;
        let (m, meta) = self.object_at(bucket, key, id).await?;
        if tags::of(&meta) != tags {
            self.revise_version(&m, move |m| {
                if let Some(meta) = m.body.meta_mut() {
                    tags::set(&mut meta.headers, &tags);
                }
            })
            .await?;
        }
        Ok(answered_id(&m))
    }

    pub(crate) fn get_bucket_tagging_op(
        &self,
        req: &S3Request<GetBucketTaggingInput>,
    ) -> S3Result<S3Response<GetBucketTaggingOutput>> {
        self.require_bucket(&req.input.bucket)?;
        let stored = self
            .index
            .bucket_extra(&req.input.bucket, "tagging")?
            .ok_or(S3Fault::NoSuchTagSet)?;
        Ok(S3Response::new(GetBucketTaggingOutput {
            tag_set: tag_set(tags::decode_stored(&stored)),
        }))
    }

    pub(crate) async fn put_bucket_tagging_op(
        &self,
        req: S3Request<PutBucketTaggingInput>,
    ) -> S3Result<S3Response<PutBucketTaggingOutput>> {
        let i = req.input;
        let tags = tags_of(i.tagging, MAX_BUCKET_TAGS)?;
        self.set_bucket_setting(
            &i.bucket,
            "tagging",
            Some(tags::encode(&tags)).filter(|t| !t.is_empty()),
        )
        .await?;
        let mut resp = S3Response::new(PutBucketTaggingOutput {});
        resp.status = Some(http::StatusCode::NO_CONTENT);
        Ok(resp)
    }

    pub(crate) async fn delete_bucket_tagging_op(
        &self,
        req: S3Request<DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
        self.set_bucket_setting(&req.input.bucket, "tagging", None)
            .await?;
        let mut resp = S3Response::new(DeleteBucketTaggingOutput {});
        resp.status = Some(http::StatusCode::NO_CONTENT);
        Ok(resp)
    }
}
