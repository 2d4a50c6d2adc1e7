//! The supported S3 operations, each handed to the gateway. Everything else is the `s3s`
//! default: 501 NotImplemented.

use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result};

use super::serve::S3Api;
use super::traffic::name_op;

#[async_trait::async_trait]
impl S3 for S3Api {
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        name_op(&req.extensions, "ListBuckets");
        self.0.list_buckets_op(&req)
    }
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        name_op(&req.extensions, "CreateBucket");
        self.0.create_bucket_op(req).await
    }
    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        name_op(&req.extensions, "HeadBucket");
        self.0.head_bucket_op(&req)
    }
    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        name_op(&req.extensions, "DeleteBucket");
        self.0.delete_bucket_op(req).await
    }
    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        name_op(&req.extensions, "GetBucketLocation");
        self.0.get_bucket_location_op(&req)
    }
    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        name_op(&req.extensions, "PutObject");
        self.0.put_object_op(req).await
    }
    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        name_op(&req.extensions, "GetObject");
        self.0.get_object_op(req).await
    }
    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        name_op(&req.extensions, "HeadObject");
        self.0.head_object_op(req).await
    }
    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        name_op(&req.extensions, "DeleteObject");
        self.0.delete_object_op(req).await
    }
    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        name_op(&req.extensions, "DeleteObjects");
        self.0.delete_objects_op(req).await
    }
    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        name_op(&req.extensions, "CopyObject");
        self.0.copy_object_op(req).await
    }
    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        name_op(&req.extensions, "ListObjectsV2");
        self.0.list_objects_v2_op(&req)
    }
    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        name_op(&req.extensions, "ListObjects");
        self.0.list_objects_op(&req)
    }
    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        name_op(&req.extensions, "ListObjectVersions");
        self.0.list_object_versions_op(&req)
    }
    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        name_op(&req.extensions, "GetBucketVersioning");
        self.0.get_bucket_versioning_op(&req)
    }
    async fn put_bucket_lifecycle_configuration(
        &self,
        req: S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
        name_op(&req.extensions, "PutBucketLifecycleConfiguration");
        self.0.put_bucket_lifecycle_configuration_op(req).await
    }
    async fn get_bucket_lifecycle_configuration(
        &self,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        name_op(&req.extensions, "GetBucketLifecycleConfiguration");
        self.0.get_bucket_lifecycle_configuration_op(&req)
    }
    async fn delete_bucket_lifecycle(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
        name_op(&req.extensions, "DeleteBucketLifecycle");
        self.0.delete_bucket_lifecycle_op(req).await
    }
    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        name_op(&req.extensions, "PutBucketVersioning");
        self.0.put_bucket_versioning_op(req).await
    }
    async fn get_object_lock_configuration(
        &self,
        req: S3Request<GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
        name_op(&req.extensions, "GetObjectLockConfiguration");
        self.0.get_object_lock_configuration_op(&req)
    }
    async fn put_object_lock_configuration(
        &self,
        req: S3Request<PutObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
        name_op(&req.extensions, "PutObjectLockConfiguration");
        self.0.put_object_lock_configuration_op(req).await
    }
    async fn get_object_retention(
        &self,
        req: S3Request<GetObjectRetentionInput>,
    ) -> S3Result<S3Response<GetObjectRetentionOutput>> {
        name_op(&req.extensions, "GetObjectRetention");
        self.0.get_object_retention_op(req).await
    }
    async fn put_object_retention(
        &self,
        req: S3Request<PutObjectRetentionInput>,
    ) -> S3Result<S3Response<PutObjectRetentionOutput>> {
        name_op(&req.extensions, "PutObjectRetention");
        self.0.put_object_retention_op(req).await
    }
    async fn get_object_legal_hold(
        &self,
        req: S3Request<GetObjectLegalHoldInput>,
    ) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
        name_op(&req.extensions, "GetObjectLegalHold");
        self.0.get_object_legal_hold_op(req).await
    }
    async fn put_object_legal_hold(
        &self,
        req: S3Request<PutObjectLegalHoldInput>,
    ) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
        name_op(&req.extensions, "PutObjectLegalHold");
        self.0.put_object_legal_hold_op(req).await
    }
    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        name_op(&req.extensions, "CreateMultipartUpload");
        self.0.create_multipart_upload_op(req).await
    }
    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        name_op(&req.extensions, "UploadPart");
        self.0.upload_part_op(req).await
    }
    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        name_op(&req.extensions, "UploadPartCopy");
        self.0.upload_part_copy_op(req).await
    }
    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        name_op(&req.extensions, "CompleteMultipartUpload");
        self.0.complete_multipart_upload_op(req).await
    }
    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        name_op(&req.extensions, "AbortMultipartUpload");
        self.0.abort_multipart_upload_op(req).await
    }
    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        name_op(&req.extensions, "ListParts");
        self.0.list_parts_op(&req)
    }
    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        name_op(&req.extensions, "ListMultipartUploads");
        self.0.list_multipart_uploads_op(&req)
    }
    async fn get_bucket_acl(
        &self,
        req: S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        name_op(&req.extensions, "GetBucketAcl");
        self.0.get_bucket_acl_op(&req)
    }
    async fn put_bucket_acl(
        &self,
        req: S3Request<PutBucketAclInput>,
    ) -> S3Result<S3Response<PutBucketAclOutput>> {
        name_op(&req.extensions, "PutBucketAcl");
        self.0.put_bucket_acl_op(&req)
    }
    async fn get_object_acl(
        &self,
        req: S3Request<GetObjectAclInput>,
    ) -> S3Result<S3Response<GetObjectAclOutput>> {
        name_op(&req.extensions, "GetObjectAcl");
        self.0.get_object_acl_op(&req).await
    }
    async fn put_object_acl(
        &self,
        req: S3Request<PutObjectAclInput>,
    ) -> S3Result<S3Response<PutObjectAclOutput>> {
        name_op(&req.extensions, "PutObjectAcl");
        self.0.put_object_acl_op(&req).await
    }
    async fn get_bucket_ownership_controls(
        &self,
        req: S3Request<GetBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
        name_op(&req.extensions, "GetBucketOwnershipControls");
        self.0.get_bucket_ownership_controls_op(&req)
    }
    async fn put_bucket_ownership_controls(
        &self,
        req: S3Request<PutBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<PutBucketOwnershipControlsOutput>> {
        name_op(&req.extensions, "PutBucketOwnershipControls");
        self.0.put_bucket_ownership_controls_op(&req)
    }
    async fn delete_bucket_ownership_controls(
        &self,
        req: S3Request<DeleteBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<DeleteBucketOwnershipControlsOutput>> {
        name_op(&req.extensions, "DeleteBucketOwnershipControls");
        self.0.delete_bucket_ownership_controls_op(&req)
    }
    async fn get_bucket_encryption(
        &self,
        req: S3Request<GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
        name_op(&req.extensions, "GetBucketEncryption");
        self.0.get_bucket_encryption_op(&req)
    }
    async fn put_bucket_encryption(
        &self,
        req: S3Request<PutBucketEncryptionInput>,
    ) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
        name_op(&req.extensions, "PutBucketEncryption");
        self.0.put_bucket_encryption_op(&req)
    }
    async fn delete_bucket_encryption(
        &self,
        req: S3Request<DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
        name_op(&req.extensions, "DeleteBucketEncryption");
        self.0.delete_bucket_encryption_op(&req)
    }
    async fn get_object_attributes(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        name_op(&req.extensions, "GetObjectAttributes");
        self.0.get_object_attributes_op(&req).await
    }
    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        name_op(&req.extensions, "GetObjectTagging");
        self.0.get_object_tagging_op(req).await
    }
    async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        name_op(&req.extensions, "PutObjectTagging");
        self.0.put_object_tagging_op(req).await
    }
    async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        name_op(&req.extensions, "DeleteObjectTagging");
        self.0.delete_object_tagging_op(req).await
    }
    async fn get_bucket_tagging(
        &self,
        req: S3Request<GetBucketTaggingInput>,
    ) -> S3Result<S3Response<GetBucketTaggingOutput>> {
        name_op(&req.extensions, "GetBucketTagging");
        self.0.get_bucket_tagging_op(&req)
    }
    async fn put_bucket_tagging(
        &self,
        req: S3Request<PutBucketTaggingInput>,
    ) -> S3Result<S3Response<PutBucketTaggingOutput>> {
        name_op(&req.extensions, "PutBucketTagging");
        self.0.put_bucket_tagging_op(req).await
    }
    async fn delete_bucket_tagging(
        &self,
        req: S3Request<DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
        name_op(&req.extensions, "DeleteBucketTagging");
        self.0.delete_bucket_tagging_op(req).await
    }
    async fn get_bucket_cors(
        &self,
        req: S3Request<GetBucketCorsInput>,
    ) -> S3Result<S3Response<GetBucketCorsOutput>> {
        name_op(&req.extensions, "GetBucketCors");
        self.0.get_bucket_cors_op(&req)
    }
    async fn put_bucket_cors(
        &self,
        req: S3Request<PutBucketCorsInput>,
    ) -> S3Result<S3Response<PutBucketCorsOutput>> {
        name_op(&req.extensions, "PutBucketCors");
        self.0.put_bucket_cors_op(req).await
    }
    async fn delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        name_op(&req.extensions, "DeleteBucketCors");
        self.0.delete_bucket_cors_op(req).await
    }
    async fn put_bucket_policy(
        &self,
        req: S3Request<PutBucketPolicyInput>,
    ) -> S3Result<S3Response<PutBucketPolicyOutput>> {
        name_op(&req.extensions, "PutBucketPolicy");
        self.0.put_bucket_policy_op(req).await
    }
    async fn get_bucket_policy(
        &self,
        req: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        name_op(&req.extensions, "GetBucketPolicy");
        self.0.get_bucket_policy_op(&req)
    }
    async fn delete_bucket_policy(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        name_op(&req.extensions, "DeleteBucketPolicy");
        self.0.delete_bucket_policy_op(req).await
    }
    async fn get_bucket_policy_status(
        &self,
        req: S3Request<GetBucketPolicyStatusInput>,
    ) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
        name_op(&req.extensions, "GetBucketPolicyStatus");
        self.0.get_bucket_policy_status_op(&req)
    }
    async fn get_public_access_block(
        &self,
        req: S3Request<GetPublicAccessBlockInput>,
    ) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
        name_op(&req.extensions, "GetPublicAccessBlock");
        self.0.get_public_access_block_op(&req)
    }
    async fn put_public_access_block(
        &self,
        req: S3Request<PutPublicAccessBlockInput>,
    ) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
        name_op(&req.extensions, "PutPublicAccessBlock");
        self.0.put_public_access_block_op(&req)
    }
    async fn delete_public_access_block(
        &self,
        req: S3Request<DeletePublicAccessBlockInput>,
    ) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
        name_op(&req.extensions, "DeletePublicAccessBlock");
        self.0.delete_public_access_block_op(&req)
    }
}
