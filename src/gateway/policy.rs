//! Bucket policies (`core::policy`): Put/Get/DeleteBucketPolicy and GetBucketPolicyStatus; the
//! policy rides on the bucket's own record (`buckets.rs`, `x-exclave-policy`), so the sites
//! alone bring it back. The `Gatekeeper` applies it to every request. And PublicAccessBlock:
//! exclave never serves an anonymous request, so public access is blocked, always, and these
//! answers say so.

use s3s::dto::{
    DeleteBucketPolicyInput, DeleteBucketPolicyOutput, DeletePublicAccessBlockInput,
    DeletePublicAccessBlockOutput, GetBucketPolicyInput, GetBucketPolicyOutput,
    GetBucketPolicyStatusInput, GetBucketPolicyStatusOutput, GetPublicAccessBlockInput,
    GetPublicAccessBlockOutput, PolicyStatus, PublicAccessBlockConfiguration, PutBucketPolicyInput,
    PutBucketPolicyOutput, PutPublicAccessBlockInput, PutPublicAccessBlockOutput,
};
use s3s::{S3Request, S3Response, S3Result};

use super::Gateway;
use super::error::S3Fault;
use crate::core::policy::Policy;

fn blocked() -> PublicAccessBlockConfiguration {
    PublicAccessBlockConfiguration {
        block_public_acls: Some(true),
        block_public_policy: Some(true),
        ignore_public_acls: Some(true),
        restrict_public_buckets: Some(true),
    }
}

fn never_public() -> S3Fault {
    S3Fault::InvalidRequest(
        "exclave never serves anonymous requests: public access stays blocked (every setting \
         of the PublicAccessBlock is true, and cannot be turned off)"
            .into(),
    )
}

impl Gateway {
    pub(crate) async fn put_bucket_policy_op(
        &self,
        req: S3Request<PutBucketPolicyInput>,
    ) -> S3Result<S3Response<PutBucketPolicyOutput>> {
        let i = req.input;
        self.require_bucket(&i.bucket)?;
        Policy::parse(&i.policy, &i.bucket, |p| self.key_exists(p))
            .map_err(|e| S3Fault::MalformedPolicy(e.0))?;
        self.set_bucket_setting(&i.bucket, "policy", Some(i.policy))
            .await?;
        let mut resp = S3Response::new(PutBucketPolicyOutput {});
        resp.status = Some(http::StatusCode::NO_CONTENT);
        Ok(resp)
    }

    pub(crate) fn get_bucket_policy_op(
        &self,
        req: &S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        self.require_bucket(&req.input.bucket)?;
        let policy = self
            .index
            .bucket_policy(&req.input.bucket)?
            .ok_or(S3Fault::NoSuchBucketPolicy)?;
        Ok(S3Response::new(GetBucketPolicyOutput {
            policy: Some(policy),
        }))
    }

    pub(crate) async fn delete_bucket_policy_op(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        self.set_bucket_setting(&req.input.bucket, "policy", None)
            .await?;
        let mut resp = S3Response::new(DeleteBucketPolicyOutput {});
        resp.status = Some(http::StatusCode::NO_CONTENT);
        Ok(resp)
    }

    pub(crate) fn get_bucket_policy_status_op(
        &self,
        req: &S3Request<GetBucketPolicyStatusInput>,
    ) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
        self.require_bucket(&req.input.bucket)?;
        self.index
            .bucket_policy(&req.input.bucket)?
            .ok_or(S3Fault::NoSuchBucketPolicy)?;
        // Even `"Principal": "*"` means every access key: no request without one is served.
        Ok(S3Response::new(GetBucketPolicyStatusOutput {
            policy_status: Some(PolicyStatus {
                is_public: Some(false),
            }),
        }))
    }

    pub(crate) fn get_public_access_block_op(
        &self,
        req: &S3Request<GetPublicAccessBlockInput>,
    ) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
        self.require_bucket(&req.input.bucket)?;
        Ok(S3Response::new(GetPublicAccessBlockOutput {
            public_access_block_configuration: Some(blocked()),
        }))
    }

    pub(crate) fn put_public_access_block_op(
        &self,
        req: &S3Request<PutPublicAccessBlockInput>,
    ) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
        let i = &req.input;
        self.require_bucket(&i.bucket)?;
        let c = &i.public_access_block_configuration;
        let all = [
            c.block_public_acls,
            c.block_public_policy,
            c.ignore_public_acls,
            c.restrict_public_buckets,
        ];
        if all.iter().any(|s| *s != Some(true)) {
            return Err(never_public().into());
        }
        Ok(S3Response::new(PutPublicAccessBlockOutput {}))
    }

    pub(crate) fn delete_public_access_block_op(
        &self,
        req: &S3Request<DeletePublicAccessBlockInput>,
    ) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
        self.require_bucket(&req.input.bucket)?;
        Err(never_public().into())
    }
}
