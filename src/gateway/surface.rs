//! The bucket and object settings S3 clients ask about, answered as exclave works:
//! - ACLs as AWS has them since 2023 (ObjectOwnership `BucketOwnerEnforced`, ACLs disabled):
//!   GetBucketAcl and GetObjectAcl name the owner with FULL_CONTROL; PutBucketAcl and
//!   PutObjectAcl take `private` (or `bucket-owner-full-control`, or a policy granting the owner
//!   FULL_CONTROL and nobody else) and refuse any other grant with AccessControlListNotSupported;
//!   Get/PutBucketOwnershipControls say and take only `BucketOwnerEnforced`. Who may do what
//!   is the business of access keys and grants (`access.rs`), never of ACLs.
//! - Default encryption: every object is encrypted by exclave (AES-256-GCM under keys the
//!   master key wraps), which S3 calls SSE-S3 (`AES256`): GetBucketEncryption always says so,
//!   PutBucketEncryption takes `AES256` only (no KMS here), DeleteBucketEncryption leaves what
//!   S3 itself then applies: `AES256`.
//! - GetObjectAttributes: ETag, checksum, parts, storage class, size.

use s3s::dto::{
    AccessControlPolicy, BucketCannedACL, DeleteBucketEncryptionInput,
    DeleteBucketEncryptionOutput, DeleteBucketOwnershipControlsInput,
    DeleteBucketOwnershipControlsOutput, ETag, GetBucketAclInput, GetBucketAclOutput,
    GetBucketEncryptionInput, GetBucketEncryptionOutput, GetBucketOwnershipControlsInput,
    GetBucketOwnershipControlsOutput, GetObjectAclInput, GetObjectAclOutput,
    GetObjectAttributesInput, GetObjectAttributesOutput, GetObjectAttributesParts, Grant, Grantee,
    ObjectCannedACL, ObjectOwnership, ObjectPart, OwnershipControls, OwnershipControlsRule,
    Permission, PutBucketAclInput, PutBucketAclOutput, PutBucketEncryptionInput,
    PutBucketEncryptionOutput, PutBucketOwnershipControlsInput, PutBucketOwnershipControlsOutput,
    PutObjectAclInput, PutObjectAclOutput, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule, StorageClass,
};
use s3s::{S3Request, S3Response, S3Result};

use super::Gateway;
use super::buckets::owner;
use super::checksum::from_stored;
use super::error::S3Fault;
use super::versioning::answered_id;

pub(crate) use super::ssec::sse;

/// The one grant there is: the owner's FULL_CONTROL.
fn owner_grants() -> Vec<Grant> {
    let o = owner();
    vec![Grant {
        grantee: Some(Grantee {
            display_name: o.display_name,
            email_address: None,
            id: o.id,
            type_: s3s::dto::Type::from_static(s3s::dto::Type::CANONICAL_USER),
            uri: None,
        }),
        permission: Some(Permission::from_static(Permission::FULL_CONTROL)),
    }]
}

fn not_supported() -> S3Fault {
    S3Fault::AccessControlListNotSupported(
        "The bucket does not allow ACLs: exclave keeps none (ObjectOwnership \
         BucketOwnerEnforced); give access with `exclave bucket allow`"
            .into(),
    )
}

/// Ok when an ACL a client sends grants nothing but the owner's FULL_CONTROL.
fn only_owner(canned: Option<&str>, policy: Option<&AccessControlPolicy>) -> Result<(), S3Fault> {
    if let Some(c) = canned
        && !matches!(c, "private" | "bucket-owner-full-control")
    {
        return Err(not_supported());
    }
    let Some(p) = policy else {
        return Ok(());
    };
    let me = owner().id;
    if p.owner
        .as_ref()
        .is_some_and(|o| o.id.is_some() && o.id != me)
    {
        return Err(not_supported());
    }
    for g in p.grants.iter().flatten() {
        let to_owner = g.grantee.as_ref().is_some_and(|e| {
            e.type_.as_str() == s3s::dto::Type::CANONICAL_USER && e.id == me && e.uri.is_none()
        });
        let full = g
            .permission
            .as_ref()
            .is_some_and(|p| p.as_str() == Permission::FULL_CONTROL);
        if !(to_owner && full) {
            return Err(not_supported());
        }
    }
    Ok(())
}

impl Gateway {
    pub(crate) fn get_bucket_acl_op(
        &self,
        req: &S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        self.require_bucket(&req.input.bucket)?;
        Ok(S3Response::new(GetBucketAclOutput {
            grants: Some(owner_grants()),
            owner: Some(owner()),
        }))
    }

    pub(crate) fn put_bucket_acl_op(
        &self,
        req: &S3Request<PutBucketAclInput>,
    ) -> S3Result<S3Response<PutBucketAclOutput>> {
        let i = &req.input;
        self.require_bucket(&i.bucket)?;
        only_owner(
            i.acl.as_ref().map(BucketCannedACL::as_str),
            i.access_control_policy.as_ref(),
        )?;
        Ok(S3Response::new(PutBucketAclOutput {}))
    }

    pub(crate) async fn get_object_acl_op(
        &self,
        req: &S3Request<GetObjectAclInput>,
    ) -> S3Result<S3Response<GetObjectAclOutput>> {
        let i = &req.input;
        self.require_bucket(&i.bucket)?;
        self.object_at(&i.bucket, &i.key, i.version_id.as_deref())
            .await?;
        Ok(S3Response::new(GetObjectAclOutput {
            grants: Some(owner_grants()),
            owner: Some(owner()),
            request_charged: None,
        }))
    }

    pub(crate) async fn put_object_acl_op(
        &self,
        req: &S3Request<PutObjectAclInput>,
    ) -> S3Result<S3Response<PutObjectAclOutput>> {
        let i = &req.input;
        self.require_bucket(&i.bucket)?;
        self.object_at(&i.bucket, &i.key, i.version_id.as_deref())
            .await?;
        only_owner(
            i.acl.as_ref().map(ObjectCannedACL::as_str),
            i.access_control_policy.as_ref(),
        )?;
        Ok(S3Response::new(PutObjectAclOutput::default()))
    }

    pub(crate) fn get_bucket_ownership_controls_op(
        &self,
        req: &S3Request<GetBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
        self.require_bucket(&req.input.bucket)?;
        Ok(S3Response::new(GetBucketOwnershipControlsOutput {
            ownership_controls: Some(OwnershipControls {
                rules: vec![OwnershipControlsRule {
                    object_ownership: ObjectOwnership::from_static(
                        ObjectOwnership::BUCKET_OWNER_ENFORCED,
                    ),
                }],
            }),
        }))
    }

    pub(crate) fn put_bucket_ownership_controls_op(
        &self,
        req: &S3Request<PutBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<PutBucketOwnershipControlsOutput>> {
        let i = &req.input;
        self.require_bucket(&i.bucket)?;
        let rules = &i.ownership_controls.rules;
        if rules.is_empty()
            || rules
                .iter()
                .any(|r| r.object_ownership.as_str() != ObjectOwnership::BUCKET_OWNER_ENFORCED)
        {
            return Err(S3Fault::InvalidRequest(
                "exclave keeps no ACLs: the only object ownership is BucketOwnerEnforced".into(),
            )
            .into());
        }
        Ok(S3Response::new(PutBucketOwnershipControlsOutput {}))
    }

    pub(crate) fn delete_bucket_ownership_controls_op(
        &self,
        req: &S3Request<DeleteBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<DeleteBucketOwnershipControlsOutput>> {
        self.require_bucket(&req.input.bucket)?;
        // Without them S3 would let object writers own objects through ACLs; exclave has no
        // ACLs to turn on, so the controls stay, and the request says so.
        Err(S3Fault::InvalidRequest(
            "exclave keeps no ACLs: ObjectOwnership stays BucketOwnerEnforced, and cannot be deleted"
                .into(),
        )
        .into())
    }

    pub(crate) fn get_bucket_encryption_op(
        &self,
        req: &S3Request<GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
        self.require_bucket(&req.input.bucket)?;
        Ok(S3Response::new(GetBucketEncryptionOutput {
            server_side_encryption_configuration: Some(ServerSideEncryptionConfiguration {
                rules: vec![ServerSideEncryptionRule {
                    apply_server_side_encryption_by_default: Some(ServerSideEncryptionByDefault {
                        kms_master_key_id: None,
                        sse_algorithm: ServerSideEncryption::from_static(
                            ServerSideEncryption::AES256,
                        ),
                    }),
                    bucket_key_enabled: Some(false),
                }],
            }),
        }))
    }

    pub(crate) fn put_bucket_encryption_op(
        &self,
        req: &S3Request<PutBucketEncryptionInput>,
    ) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
        let i = &req.input;
        self.require_bucket(&i.bucket)?;
        let rules = &i.server_side_encryption_configuration.rules;
        if rules.is_empty() {
            return Err(S3Fault::MalformedXml("no encryption rule".into()).into());
        }
        for r in rules {
            let Some(by_default) = &r.apply_server_side_encryption_by_default else {
                return Err(S3Fault::MalformedXml(
                    "a rule without ApplyServerSideEncryptionByDefault".into(),
                )
                .into());
            };
            if by_default.sse_algorithm.as_str() != ServerSideEncryption::AES256
                || by_default.kms_master_key_id.is_some()
            {
                return Err(S3Fault::InvalidArgument(format!(
                    "exclave has no KMS: every object is encrypted with AES256 (SSE-S3) under \
                     exclave's own keys; {} is not available",
                    by_default.sse_algorithm.as_str()
                ))
                .into());
            }
        }
        Ok(S3Response::new(PutBucketEncryptionOutput {}))
    }

    pub(crate) fn delete_bucket_encryption_op(
        &self,
        req: &S3Request<DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
        // As at S3 since 2023: what remains is SSE-S3, which is what exclave does anyway.
        self.require_bucket(&req.input.bucket)?;
        Ok(S3Response::new(DeleteBucketEncryptionOutput {}))
    }

    pub(crate) async fn get_object_attributes_op(
        &self,
        req: &S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        let i = &req.input;
        self.require_bucket(&i.bucket)?;
        let ck = super::ssec::ssec_key!(i, &req.extensions)?;
        let (m, meta) = self
            .object_at(&i.bucket, &i.key, i.version_id.as_deref())
            .await?;
        super::ssec::may_open(&meta, ck.as_ref())?;
        let wants = |a: &str| i.object_attributes.iter().any(|x| x.as_str() == a);
        let mut out = GetObjectAttributesOutput {
            last_modified: Some(super::timestamp(m.created_ms)),
            version_id: answered_id(&m),
            ..Default::default()
        };
        if wants("ETag") {
            out.e_tag = Some(ETag::Strong(meta.etag.clone()));
        }
        if wants("ObjectSize") {
            out.object_size = Some(meta.size as i64);
        }
        if wants("StorageClass") {
            out.storage_class = Some(StorageClass::from_static(StorageClass::STANDARD));
        }
        if wants("Checksum") && !meta.checksums.is_empty() {
            let s = from_stored(&meta.checksums);
            out.checksum = Some(s3s::dto::Checksum {
                checksum_crc32: s.checksum_crc32,
                checksum_crc32c: s.checksum_crc32c,
                checksum_sha1: s.checksum_sha1,
                checksum_sha256: s.checksum_sha256,
                ..Default::default()
            });
        }
        if wants("ObjectParts") && !meta.parts.is_empty() {
            let marker = i.part_number_marker.unwrap_or(0).max(0) as usize;
            let max = i.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
            let parts: Vec<ObjectPart> = meta
                .parts
                .iter()
                .enumerate()
                .skip(marker)
                .take(max)
                .map(|(n, p)| ObjectPart {
                    part_number: Some(n as i32 + 1),
                    size: Some(p.size as i64),
                    ..Default::default()
                })
                .collect();
            let last = parts.last().and_then(|p| p.part_number).unwrap_or(0);
            out.object_parts = Some(GetObjectAttributesParts {
                is_truncated: Some((last as usize) < meta.parts.len()),
                max_parts: Some(max as i32),
                next_part_number_marker: Some(last),
                part_number_marker: Some(marker as i32),
                parts: Some(parts),
                total_parts_count: Some(meta.parts.len() as i32),
            });
        }
        Ok(S3Response::new(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_owners_full_control_is_taken() {
        assert!(only_owner(None, None).is_ok());
        assert!(only_owner(Some("private"), None).is_ok());
        assert!(only_owner(Some("bucket-owner-full-control"), None).is_ok());
        assert!(only_owner(Some("public-read"), None).is_err());
        let mine = AccessControlPolicy {
            grants: Some(owner_grants()),
            owner: Some(owner()),
        };
        assert!(only_owner(None, Some(&mine)).is_ok());
        let mut everyone = owner_grants();
        everyone.push(Grant {
            grantee: Some(Grantee {
                display_name: None,
                email_address: None,
                id: None,
                type_: s3s::dto::Type::from_static(s3s::dto::Type::GROUP),
                uri: Some("http://acs.amazonaws.com/groups/global/AllUsers".into()),
            }),
            permission: Some(Permission::from_static(Permission::READ)),
        });
        let public = AccessControlPolicy {
            grants: Some(everyone),
            owner: Some(owner()),
        };
        assert!(only_owner(None, Some(&public)).is_err());
        let mut read_only = owner_grants();
        read_only[0].permission = Some(Permission::from_static(Permission::READ));
        let weaker = AccessControlPolicy {
            grants: Some(read_only),
            owner: None,
        };
        assert!(only_owner(None, Some(&weaker)).is_err());
    }
}
