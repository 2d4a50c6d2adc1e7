//! Issue 16: S3 versioning through aws-sdk-s3 against real processes. A versioned bucket keeps
//! every version of a key, a DELETE without an id writes a delete marker, one with an id
//! removes that version for good; reads and copies name versions by id; Suspended writes
//! replace the null version; and all of it comes back through an index rebuilt from the nodes.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier,
    VersioningConfiguration,
};

use crate::support::{Cluster, code, started_cluster, status, within};

const BUCKET: &str = "land-registry";

async fn set_versioning(s3: &Client, status: BucketVersioningStatus) {
    s3.put_bucket_versioning()
        .bucket(BUCKET)
        .versioning_configuration(VersioningConfiguration::builder().status(status).build())
        .send()
        .await
        .unwrap();
}

/// PUTs `body` as `key`; returns the version id answered.
async fn put(s3: &Client, key: &str, body: &'static [u8]) -> Option<String> {
    s3.put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from_static(body))
        .send()
        .await
        .unwrap()
        .version_id
}

/// The body of `key` (at `id`), or the failed call's status.
async fn get(s3: &Client, key: &str, id: Option<&str>) -> Result<(Vec<u8>, Option<String>), u16> {
    match s3
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .set_version_id(id.map(str::to_owned))
        .send()
        .await
    {
        Ok(out) => {
            let vid = out.version_id.clone();
            Ok((out.body.collect().await.unwrap().to_vec(), vid))
        }
        Err(e) => Err(status(&e)),
    }
}

/// Every version and delete marker of the bucket as (key, id, latest, is a marker), in the
/// order ListObjectVersions gives them within each kind.
async fn listing(s3: &Client) -> Vec<(String, String, bool, bool)> {
    let out = s3
        .list_object_versions()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    let mut all: Vec<(String, String, bool, bool)> = out
        .versions()
        .iter()
        .map(|v| {
            (
                v.key().unwrap().to_owned(),
                v.version_id().unwrap().to_owned(),
                v.is_latest().unwrap(),
                false,
            )
        })
        .collect();
    all.extend(out.delete_markers().iter().map(|m| {
        (
            m.key().unwrap().to_owned(),
            m.version_id().unwrap().to_owned(),
            m.is_latest().unwrap(),
            true,
        )
    }));
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_versioned_bucket_keeps_every_version_and_removes_one_only_by_id() {
    within(240, async {
        let mut cluster: Cluster = started_cluster("").await;
        let s3 = cluster.s3_client(1);
        s3.create_bucket().bucket(BUCKET).send().await.unwrap();
        // Unversioned writes answer no version id.
        assert_eq!(put(&s3, "before", b"unversioned").await, None);
        set_versioning(&s3, BucketVersioningStatus::Enabled).await;
        let v = s3
            .get_bucket_versioning()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap();
        assert_eq!(v.status(), Some(&BucketVersioningStatus::Enabled));
        // Never back to unversioned: a status S3 does not know is refused.
        let e = s3
            .put_bucket_versioning()
            .bucket(BUCKET)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::from("Disabled"))
                    .build(),
            )
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&e), 400);

        // Three versions of one key: two PUTs and a copy of the first by its id.
        let v1 = put(&s3, "deed", b"one").await.unwrap();
        let v2 = put(&s3, "deed", b"two").await.unwrap();
        assert_eq!(v1.len(), 32, "{v1}");
        assert_ne!(v1, v2);
        let copied = s3
            .copy_object()
            .bucket(BUCKET)
            .key("deed")
            .copy_source(format!("{BUCKET}/deed?versionId={v1}"))
            .send()
            .await
            .unwrap();
        assert_eq!(copied.copy_source_version_id(), Some(v1.as_str()));
        let v3 = copied.version_id().unwrap().to_owned();
        assert_eq!(
            get(&s3, "deed", None).await,
            Ok((b"one".to_vec(), Some(v3.clone())))
        );
        assert_eq!(get(&s3, "deed", Some(&v2)).await.unwrap().0, b"two");
        let head = s3
            .head_object()
            .bucket(BUCKET)
            .key("deed")
            .version_id(&v1)
            .send()
            .await
            .unwrap();
        assert_eq!(head.content_length(), Some(3));
        assert_eq!(head.version_id(), Some(v1.as_str()));
        // The version before versioning was enabled is the null version.
        assert_eq!(
            get(&s3, "before", Some("null")).await.unwrap().0,
            b"unversioned"
        );
        // Ids that name nothing: malformed 400, unknown 404.
        assert_eq!(get(&s3, "deed", Some("v1")).await, Err(400));
        assert_eq!(get(&s3, "deed", Some(&"0".repeat(32))).await, Err(404));
        assert_eq!(get(&s3, "deed", Some("null")).await, Err(404));

        // A DELETE without an id writes a delete marker; the versions stay.
        let d = s3
            .delete_object()
            .bucket(BUCKET)
            .key("deed")
            .send()
            .await
            .unwrap();
        assert_eq!(d.delete_marker(), Some(true));
        let marker = d.version_id().unwrap().to_owned();
        let e = s3
            .get_object()
            .bucket(BUCKET)
            .key("deed")
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&e), 404);
        let raw = e.raw_response().unwrap();
        assert_eq!(raw.headers().get("x-amz-delete-marker"), Some("true"));
        assert_eq!(get(&s3, "deed", Some(&marker)).await, Err(405));
        assert_eq!(get(&s3, "deed", Some(&v2)).await.unwrap().0, b"two");
        let listed = listing(&s3).await;
        let deed = |l: &[(String, String, bool, bool)]| -> Vec<(String, bool, bool)> {
            l.iter()
                .filter(|v| v.0 == "deed")
                .map(|v| (v.1.clone(), v.2, v.3))
                .collect()
        };
        assert_eq!(
            deed(&listed),
            [
                (v3.clone(), false, false),
                (v2.clone(), false, false),
                (v1.clone(), false, false),
                (marker.clone(), true, true),
            ]
        );
        // Nor can a bucket holding versions be deleted.
        let e = s3.delete_bucket().bucket(BUCKET).send().await.unwrap_err();
        assert_eq!(status(&e), 409);

        // Removing the marker by its id brings the key back; removing the newest version
        // makes the one before it current.
        let d = s3
            .delete_object()
            .bucket(BUCKET)
            .key("deed")
            .version_id(&marker)
            .send()
            .await
            .unwrap();
        assert_eq!(
            (d.delete_marker(), d.version_id()),
            (Some(true), Some(marker.as_str()))
        );
        assert_eq!(get(&s3, "deed", None).await.unwrap().0, b"one");
        s3.delete_object()
            .bucket(BUCKET)
            .key("deed")
            .version_id(&v3)
            .send()
            .await
            .unwrap();
        assert_eq!(
            get(&s3, "deed", None).await,
            Ok((b"two".to_vec(), Some(v2.clone())))
        );
        assert_eq!(get(&s3, "deed", Some(&v3)).await, Err(404));
        // A well-formed id that names nothing: deleted already, success as AWS answers.
        s3.delete_object()
            .bucket(BUCKET)
            .key("deed")
            .version_id(&v3)
            .send()
            .await
            .unwrap();

        // Suspended: writes replace the null version and keep the versioned ones.
        set_versioning(&s3, BucketVersioningStatus::Suspended).await;
        assert_eq!(put(&s3, "deed", b"null-1").await.as_deref(), Some("null"));
        assert_eq!(put(&s3, "deed", b"null-2").await.as_deref(), Some("null"));
        assert_eq!(get(&s3, "deed", Some("null")).await.unwrap().0, b"null-2");
        assert_eq!(
            deed(&listing(&s3).await),
            [
                ("null".to_owned(), true, false),
                (v2.clone(), false, false),
                (v1.clone(), false, false),
            ]
        );

        // A multipart upload completes into a new version; DeleteObjects removes by id.
        set_versioning(&s3, BucketVersioningStatus::Enabled).await;
        let up = s3
            .create_multipart_upload()
            .bucket(BUCKET)
            .key("deed")
            .send()
            .await
            .unwrap();
        let id = up.upload_id().unwrap();
        let part = s3
            .upload_part()
            .bucket(BUCKET)
            .key("deed")
            .upload_id(id)
            .part_number(1)
            .body(ByteStream::from_static(b"multipart"))
            .send()
            .await
            .unwrap();
        let done = s3
            .complete_multipart_upload()
            .bucket(BUCKET)
            .key("deed")
            .upload_id(id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .parts(
                        CompletedPart::builder()
                            .part_number(1)
                            .e_tag(part.e_tag().unwrap())
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let v4 = done.version_id().unwrap().to_owned();
        assert_eq!(get(&s3, "deed", Some(&v4)).await.unwrap().0, b"multipart");
        // UploadPartCopy from a version by id.
        let up = s3
            .create_multipart_upload()
            .bucket(BUCKET)
            .key("copy-of-two")
            .send()
            .await
            .unwrap();
        let id = up.upload_id().unwrap();
        let part = s3
            .upload_part_copy()
            .bucket(BUCKET)
            .key("copy-of-two")
            .upload_id(id)
            .part_number(1)
            .copy_source(format!("{BUCKET}/deed?versionId={v2}"))
            .send()
            .await
            .unwrap();
        s3.complete_multipart_upload()
            .bucket(BUCKET)
            .key("copy-of-two")
            .upload_id(id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .parts(
                        CompletedPart::builder()
                            .part_number(1)
                            .e_tag(part.copy_part_result().unwrap().e_tag().unwrap())
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let copy = s3
            .get_object()
            .bucket(BUCKET)
            .key("copy-of-two")
            .send()
            .await
            .unwrap();
        assert_eq!(copy.body.collect().await.unwrap().to_vec(), b"two");
        // Conditions apply to the version named, not the current one.
        let two_etag = {
            use md5::Digest as _;
            format!("\"{}\"", exclave::core::ids::hex(&md5::Md5::digest(b"two")))
        };
        let ok = s3
            .get_object()
            .bucket(BUCKET)
            .key("deed")
            .version_id(&v2)
            .if_match(&two_etag)
            .send()
            .await;
        assert!(ok.is_ok(), "{ok:?}");
        let e = s3
            .get_object()
            .bucket(BUCKET)
            .key("deed")
            .version_id(&v4)
            .if_match(&two_etag)
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&e), 412);
        let out = s3
            .delete_objects()
            .bucket(BUCKET)
            .delete(
                Delete::builder()
                    .objects(
                        ObjectIdentifier::builder()
                            .key("deed")
                            .version_id(&v1)
                            .build()
                            .unwrap(),
                    )
                    .objects(ObjectIdentifier::builder().key("other").build().unwrap())
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert!(out.errors().is_empty(), "{out:?}");
        let by_key = |k: &str| out.deleted().iter().find(|d| d.key() == Some(k)).unwrap();
        assert_eq!(by_key("deed").version_id(), Some(v1.as_str()));
        assert_eq!(by_key("other").delete_marker(), Some(true));
        assert!(by_key("other").delete_marker_version_id().is_some());
        let before = listing(&s3).await;
        assert_eq!(
            deed(&before),
            [
                (v4.clone(), true, false),
                ("null".to_owned(), false, false),
                (v2.clone(), false, false),
            ]
        );

        // All of it comes back through an index rebuilt from the nodes.
        cluster = tokio::task::spawn_blocking(move || {
            cluster.restart_gateway_without_index();
            cluster
        })
        .await
        .unwrap();
        assert_eq!(listing(&s3).await, before);
        let v = s3
            .get_bucket_versioning()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap();
        assert_eq!(v.status(), Some(&BucketVersioningStatus::Enabled));
        assert_eq!(get(&s3, "deed", None).await.unwrap().0, b"multipart");
        assert_eq!(get(&s3, "deed", Some("null")).await.unwrap().0, b"null-2");
        assert_eq!(get(&s3, "deed", Some(&v1)).await, Err(404));
        assert_eq!(get(&s3, "deed", Some(&v3)).await, Err(404));
        assert_eq!(get(&s3, "other", None).await, Err(404));
        drop(cluster);
    })
    .await;
}

/// DELETE of `key` at version `id`, bypassing GOVERNANCE or not: the status.
async fn delete_version(s3: &Client, bucket: &str, key: &str, id: &str, bypass: bool) -> u16 {
    match s3
        .delete_object()
        .bucket(bucket)
        .key(key)
        .version_id(id)
        .bypass_governance_retention(bypass)
        .send()
        .await
    {
        Ok(_) => 204,
        Err(e) => status(&e),
    }
}

/// Object lock: a bucket created with it is versioned for good; a COMPLIANCE version cannot
/// be removed, shortened or weakened by anyone, only extended; GOVERNANCE gives way to the
/// bypass header; a legal hold holds whatever the retention; a bucket's default retention
/// applies to writes that name none; lock parameters without a checksum or into a bucket
/// without object lock are refused; and all of it holds through an index rebuilt from the
/// nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_lock_refuses_every_early_removal_even_after_a_rebuild() {
    use aws_sdk_s3::primitives::DateTime;
    use aws_sdk_s3::types::{
        DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockLegalHold,
        ObjectLockLegalHoldStatus, ObjectLockMode, ObjectLockRetention, ObjectLockRetentionMode,
        ObjectLockRule,
    };
    const SEALED: &str = "sealed-registry";
    within(240, async {
        let mut cluster: Cluster = started_cluster("").await;
        let s3 = cluster.s3_client(1);
        s3.create_bucket()
            .bucket(SEALED)
            .object_lock_enabled_for_bucket(true)
            .send()
            .await
            .unwrap();
        let v = s3
            .get_bucket_versioning()
            .bucket(SEALED)
            .send()
            .await
            .unwrap();
        assert_eq!(v.status(), Some(&BucketVersioningStatus::Enabled));
        let e = s3
            .put_bucket_versioning()
            .bucket(SEALED)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Suspended)
                    .build(),
            )
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), (409, "InvalidBucketState".to_owned()));
        // A bucket without object lock has no configuration, and refuses lock parameters.
        s3.create_bucket().bucket(BUCKET).send().await.unwrap();
        let e = s3
            .get_object_lock_configuration()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e).0, 404);

        // A default retention: GOVERNANCE for a day.
        s3.put_object_lock_configuration()
            .bucket(SEALED)
            .object_lock_configuration(
                ObjectLockConfiguration::builder()
                    .object_lock_enabled(ObjectLockEnabled::Enabled)
                    .rule(
                        ObjectLockRule::builder()
                            .default_retention(
                                DefaultRetention::builder()
                                    .mode(ObjectLockRetentionMode::Governance)
                                    .days(1)
                                    .build(),
                            )
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let c = s3
            .get_object_lock_configuration()
            .bucket(SEALED)
            .send()
            .await
            .unwrap();
        let d = c
            .object_lock_configuration()
            .and_then(|c| c.rule())
            .and_then(|r| r.default_retention())
            .unwrap();
        assert_eq!(
            (d.mode(), d.days()),
            (Some(&ObjectLockRetentionMode::Governance), Some(1))
        );

        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let in_a_year = DateTime::from_secs(now + 365 * 86_400);
        let compliance = s3
            .put_object()
            .bucket(SEALED)
            .key("title/1")
            .body(ByteStream::from_static(b"parcel 1 belongs to A"))
            .object_lock_mode(ObjectLockMode::Compliance)
            .object_lock_retain_until_date(in_a_year)
            .send()
            .await
            .unwrap()
            .version_id
            .unwrap();
        let head = s3
            .head_object()
            .bucket(SEALED)
            .key("title/1")
            .send()
            .await
            .unwrap();
        assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Compliance));
        assert_eq!(
            head.object_lock_retain_until_date().map(|d| d.secs()),
            Some(now + 365 * 86_400)
        );

        // Checked before anything is stored: a date in the past, a mode without a date, a
        // bucket without object lock, and a write that carries no checksum.
        let past = s3
            .put_object()
            .bucket(SEALED)
            .key("title/x")
            .body(ByteStream::from_static(b"x"))
            .object_lock_mode(ObjectLockMode::Compliance)
            .object_lock_retain_until_date(DateTime::from_secs(now - 60))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&past).0, 400);
        let half = s3
            .put_object()
            .bucket(SEALED)
            .key("title/x")
            .body(ByteStream::from_static(b"x"))
            .object_lock_mode(ObjectLockMode::Compliance)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&half).0, 400);
        let unlocked = s3
            .put_object()
            .bucket(BUCKET)
            .key("title/x")
            .body(ByteStream::from_static(b"x"))
            .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&unlocked), (400, "InvalidRequest".to_owned()));
        let bare = Client::from_conf(
            s3.config()
                .to_builder()
                .request_checksum_calculation(
                    aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
                )
                .build(),
        );
        let e = bare
            .put_object()
            .bucket(SEALED)
            .key("title/x")
            .body(ByteStream::from_static(b"x"))
            .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), (400, "InvalidRequest".to_owned()));
        let e = s3
            .head_object()
            .bucket(SEALED)
            .key("title/x")
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&e), 404, "a refused write stored nothing");

        // COMPLIANCE: removed by nobody, bypass or not, one key or many; never shortened or
        // weakened; extended.
        assert_eq!(
            delete_version(&s3, SEALED, "title/1", &compliance, false).await,
            403
        );
        assert_eq!(
            delete_version(&s3, SEALED, "title/1", &compliance, true).await,
            403
        );
        let many = s3
            .delete_objects()
            .bucket(SEALED)
            .bypass_governance_retention(true)
            .delete(
                Delete::builder()
                    .objects(
                        ObjectIdentifier::builder()
                            .key("title/1")
                            .version_id(&compliance)
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(many.errors().len(), 1, "{many:?}");
        assert_eq!(many.errors()[0].code(), Some("AccessDenied"));
        let retention = |mode: ObjectLockRetentionMode, secs: i64| {
            ObjectLockRetention::builder()
                .mode(mode)
                .retain_until_date(DateTime::from_secs(secs))
                .build()
        };
        for (what, r) in [
            (
                "shortened",
                retention(ObjectLockRetentionMode::Compliance, now + 86_400),
            ),
            (
                "weakened",
                retention(ObjectLockRetentionMode::Governance, now + 2 * 365 * 86_400),
            ),
        ] {
            let e = s3
                .put_object_retention()
                .bucket(SEALED)
                .key("title/1")
                .version_id(&compliance)
                .bypass_governance_retention(true)
                .retention(r)
                .send()
                .await
                .expect_err(what);
            assert_eq!(code(&e), (403, "AccessDenied".to_owned()), "{what}");
        }
        let later = now + 2 * 365 * 86_400;
        s3.put_object_retention()
            .bucket(SEALED)
            .key("title/1")
            .version_id(&compliance)
            .retention(retention(ObjectLockRetentionMode::Compliance, later))
            .send()
            .await
            .unwrap();
        // A delete marker may be written over it; the version stays.
        s3.delete_object()
            .bucket(SEALED)
            .key("title/1")
            .send()
            .await
            .unwrap();

        // GOVERNANCE (the bucket's default) gives way to the bypass header only.
        let governed = s3
            .put_object()
            .bucket(SEALED)
            .key("title/2")
            .body(ByteStream::from_static(b"parcel 2 belongs to B"))
            .send()
            .await
            .unwrap()
            .version_id
            .unwrap();
        let r = s3
            .get_object_retention()
            .bucket(SEALED)
            .key("title/2")
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.retention().and_then(|r| r.mode()),
            Some(&ObjectLockRetentionMode::Governance)
        );
        assert_eq!(
            delete_version(&s3, SEALED, "title/2", &governed, false).await,
            403
        );
        assert_eq!(
            delete_version(&s3, SEALED, "title/2", &governed, true).await,
            204
        );

        // A legal hold holds whatever the retention, until it is released.
        let held = s3
            .put_object()
            .bucket(SEALED)
            .key("title/3")
            .body(ByteStream::from_static(b"parcel 3, in court"))
            .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
            .send()
            .await
            .unwrap()
            .version_id
            .unwrap();
        assert_eq!(
            delete_version(&s3, SEALED, "title/3", &held, true).await,
            403
        );

        // The same after the gateway's index is rebuilt from the nodes.
        cluster = tokio::task::spawn_blocking(move || {
            cluster.restart_gateway_without_index();
            cluster
        })
        .await
        .unwrap();
        assert_eq!(
            delete_version(&s3, SEALED, "title/1", &compliance, true).await,
            403
        );
        assert_eq!(
            delete_version(&s3, SEALED, "title/3", &held, true).await,
            403
        );
        // `exclave status` counts them: two versions, both locked, and a delete marker.
        let v = cluster.status_json();
        let b = v["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == SEALED)
            .unwrap();
        assert_eq!(
            (&b["versions"], &b["delete_markers"], &b["locked"]),
            (&2.into(), &1.into(), &2.into()),
            "{v:#}"
        );
        let r = s3
            .get_object_retention()
            .bucket(SEALED)
            .key("title/1")
            .version_id(&compliance)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.retention()
                .and_then(|r| r.retain_until_date())
                .map(|d| d.secs()),
            Some(later)
        );
        let hold = s3
            .get_object_legal_hold()
            .bucket(SEALED)
            .key("title/3")
            .version_id(&held)
            .send()
            .await
            .unwrap();
        assert_eq!(
            hold.legal_hold().and_then(|h| h.status()),
            Some(&ObjectLockLegalHoldStatus::On)
        );
        s3.put_object_legal_hold()
            .bucket(SEALED)
            .key("title/3")
            .version_id(&held)
            .legal_hold(
                ObjectLockLegalHold::builder()
                    .status(ObjectLockLegalHoldStatus::Off)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(
            delete_version(&s3, SEALED, "title/3", &held, true).await,
            204
        );
        let c = s3
            .get_object_lock_configuration()
            .bucket(SEALED)
            .send()
            .await
            .unwrap();
        assert!(
            c.object_lock_configuration()
                .and_then(|c| c.rule())
                .is_some()
        );
        drop(cluster);
    })
    .await;
}

/// Issue 16's recovery: home is lost (the gateway's directory deleted, the home node killed),
/// and `exclave recover` rebuilds a gateway from the four foreign sites and the master key. A
/// COMPLIANCE-locked version, a legal hold, a delete marker and three noncurrent versions all
/// come back, readable by id, and stay protected.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn locked_and_noncurrent_versions_come_back_through_recover_and_stay_protected() {
    use aws_sdk_s3::primitives::DateTime;
    use aws_sdk_s3::types::{ObjectLockLegalHoldStatus, ObjectLockMode};
    const SEALED: &str = "sealed-registry";
    within(600, async {
        let mut cluster: Cluster = started_cluster("").await;
        let s3 = cluster.s3_client(1);
        s3.create_bucket()
            .bucket(SEALED)
            .object_lock_enabled_for_bucket(true)
            .send()
            .await
            .unwrap();
        let mut titles = Vec::new();
        for body in [&b"owner: A"[..], b"owner: B", b"owner: C"] {
            let out = s3
                .put_object()
                .bucket(SEALED)
                .key("title/9")
                .body(ByteStream::from(body.to_vec()))
                .send()
                .await
                .unwrap();
            titles.push((out.version_id.unwrap(), body.to_vec()));
        }
        let until = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            + 30 * 86_400;
        let locked = s3
            .put_object()
            .bucket(SEALED)
            .key("title/9")
            .body(ByteStream::from_static(b"owner: D"))
            .object_lock_mode(ObjectLockMode::Compliance)
            .object_lock_retain_until_date(DateTime::from_secs(until))
            .send()
            .await
            .unwrap()
            .version_id
            .unwrap();
        let held = s3
            .put_object()
            .bucket(SEALED)
            .key("court/4")
            .body(ByteStream::from_static(b"in dispute"))
            .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
            .send()
            .await
            .unwrap()
            .version_id
            .unwrap();
        s3.put_object()
            .bucket(SEALED)
            .key("struck/1")
            .body(ByteStream::from_static(b"struck off"))
            .send()
            .await
            .unwrap();
        let marker = s3
            .delete_object()
            .bucket(SEALED)
            .key("struck/1")
            .send()
            .await
            .unwrap()
            .version_id
            .unwrap();
        let list = |s3: Client| async move {
            let out = s3
                .list_object_versions()
                .bucket(SEALED)
                .send()
                .await
                .unwrap();
            let mut all: Vec<(String, String, bool)> = out
                .versions()
                .iter()
                .map(|v| {
                    let (k, id) = (v.key().unwrap(), v.version_id().unwrap());
                    (k.to_owned(), id.to_owned(), v.is_latest().unwrap())
                })
                .collect();
            all.extend(out.delete_markers().iter().map(|m| {
                let (k, id) = (m.key().unwrap(), m.version_id().unwrap());
                (k.to_owned(), format!("marker {id}"), m.is_latest().unwrap())
            }));
            all
        };
        let before = list(s3.clone()).await;
        assert_eq!(before.len(), 7, "{before:?}");
        crate::recovery::checkpoint_now(&cluster);

        let work = tempfile::tempdir().unwrap();
        let (done, out, ports) =
            crate::recovery::lose_home_and_recover(&mut cluster, work.path(), false);
        assert!(done.status.success(), "{}", crate::recovery::text(&done));
        // The checkpoint covers every version kept: the bucket's record and the seven.
        let report: serde_json::Value = serde_json::from_slice(&done.stdout).unwrap();
        let c = &report["checkpoint"];
        assert_eq!(
            (c["matches"].as_bool(), c["leaves"].as_u64()),
            (Some(true), Some(8)),
            "{report:#}"
        );
        let _gateway = crate::recovery::start_recovered(&out, &ports);
        let s3 = cluster.s3_client_at(ports.s3.addr(), 3);

        assert_eq!(list(s3.clone()).await, before);
        for (id, body) in &titles {
            let got = s3
                .get_object()
                .bucket(SEALED)
                .key("title/9")
                .version_id(id)
                .send()
                .await
                .unwrap();
            assert_eq!(&got.body.collect().await.unwrap().to_vec(), body);
        }
        let head = s3
            .head_object()
            .bucket(SEALED)
            .key("title/9")
            .send()
            .await
            .unwrap();
        assert_eq!(head.version_id(), Some(locked.as_str()));
        assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Compliance));
        assert_eq!(
            head.object_lock_retain_until_date().map(|d| d.secs()),
            Some(until)
        );
        let e = s3
            .get_object()
            .bucket(SEALED)
            .key("struck/1")
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&e), 404, "the delete marker is current again");
        assert!(before.iter().any(|v| v.1 == format!("marker {marker}")));
        // Still protected: the recovered gateway refuses what home refused.
        assert_eq!(
            delete_version(&s3, SEALED, "title/9", &locked, true).await,
            403
        );
        assert_eq!(
            delete_version(&s3, SEALED, "court/4", &held, true).await,
            403
        );
        let v = s3
            .get_bucket_versioning()
            .bucket(SEALED)
            .send()
            .await
            .unwrap();
        assert_eq!(v.status(), Some(&BucketVersioningStatus::Enabled));
        // A noncurrent version without a lock may still be removed for good.
        assert_eq!(
            delete_version(&s3, SEALED, "title/9", &titles[0].0, false).await,
            204
        );
        drop(_gateway);

        // Offline, from copies of the four foreign sites' directories: every version kept is
        // exported with its id, retention and legal hold; the delete marker is listed.
        let copies = crate::recovery::copy_foreign_sites(&mut cluster, work.path());
        let export = work.path().join("export");
        let done = tokio::task::block_in_place(|| {
            crate::support::run(
                std::process::Command::new(crate::support::bin("exclave")).args([
                    "recover",
                    "--from-dirs",
                    &copies.join(","),
                    "--export",
                    export.to_str().unwrap(),
                    "--master-key-file",
                    work.path().join("master.key").to_str().unwrap(),
                    "--json",
                ]),
                std::time::Duration::from_secs(300),
            )
        });
        assert!(done.status.success(), "{}", crate::recovery::text(&done));
        let report: serde_json::Value = serde_json::from_slice(&done.stdout).unwrap();
        assert_eq!(
            (
                report["objects"].as_u64(),
                report["noncurrent_exported"].as_u64(),
                report["delete_markers"].as_u64()
            ),
            (Some(2), Some(3), Some(1)),
            "{report:#}"
        );
        let lines = std::fs::read_to_string(export.join("manifest.jsonl")).unwrap();
        let lines: Vec<serde_json::Value> = lines
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let line = |id: &str| {
            lines
                .iter()
                .find(|l| l["version_id"] == id)
                .unwrap_or_else(|| panic!("{id} not exported: {lines:#?}"))
        };
        for (id, body) in &titles[1..] {
            let l = line(id);
            assert_eq!(l["current"], false);
            let path = export.join(l["path"].as_str().unwrap());
            assert_eq!(&std::fs::read(path).unwrap(), body);
        }
        assert!(
            lines
                .iter()
                .all(|l| l["version_id"] != titles[0].0.as_str())
        );
        let l = line(&locked);
        assert_eq!(
            (&l["current"], &l["retention"]),
            (
                &true.into(),
                &serde_json::json!(["COMPLIANCE", until * 1000])
            )
        );
        assert_eq!(line(&held)["legal_hold"], true);
        let l = line(&marker);
        assert_eq!(
            (&l["delete_marker"], &l["current"]),
            (&true.into(), &true.into())
        );
        drop(cluster);
    })
    .await;
}

/// A site that withholds a noncurrent version is found: after a checkpoint, the hosts of all
/// four foreign sites drop the older record of the one key written twice in a versioned
/// bucket; the catalog `exclave recover` finds lacks one version of the checkpoint's, and it
/// exits 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_withheld_noncurrent_version_fails_the_checkpoint_check() {
    use std::time::Duration;
    const SEALED: &str = "sealed-registry";
    within(600, async {
        let mut cluster: Cluster = started_cluster("").await;
        let s3 = cluster.s3_client(3);
        // Lock at creation: versioned, with one record for the bucket.
        s3.create_bucket()
            .bucket(SEALED)
            .object_lock_enabled_for_bucket(true)
            .send()
            .await
            .unwrap();
        for (key, body) in [("deed", &b"A"[..]), ("deed", b"B"), ("other", b"C")] {
            s3.put_object()
                .bucket(SEALED)
                .key(key)
                .body(ByteStream::from(body.to_vec()))
                .send()
                .await
                .unwrap();
        }
        crate::recovery::checkpoint_now(&cluster);
        let dropped: usize = tokio::task::block_in_place(|| {
            (1..5)
                .map(|i| {
                    cluster.kill_node(i);
                    let n = crate::recovery::remove_manifests(&cluster, i, |keys| {
                        let mut per_object: std::collections::BTreeMap<&[u8], Vec<Vec<u8>>> =
                            std::collections::BTreeMap::new();
                        for k in keys {
                            per_object.entry(&k[..32]).or_default().push(k.clone());
                        }
                        let twice: Vec<_> = per_object
                            .into_values()
                            .filter(|ks| ks.len() == 2)
                            .collect();
                        assert_eq!(twice.len(), 1, "site {i}: one object has two versions");
                        // The older (its identity sorts first): the noncurrent version.
                        vec![twice[0].iter().min().unwrap().clone()]
                    });
                    cluster.start_node(i);
                    n as usize
                })
                .sum()
        });
        assert_eq!(dropped, 4);
        cluster
            .wait_for_status(
                Duration::from_secs(30),
                "sites back",
                crate::support::all_reachable,
            )
            .await;
        let work = tempfile::tempdir().unwrap();
        let (done, _, _) = crate::recovery::lose_home_and_recover(&mut cluster, work.path(), false);
        let report: serde_json::Value = serde_json::from_slice(&done.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", crate::recovery::text(&done)));
        assert_eq!(done.status.code(), Some(1), "{report:#}");
        let c = &report["checkpoint"];
        assert_eq!(c["matches"].as_bool(), Some(false), "{report:#}");
        assert_eq!(
            (c["leaves"].as_u64(), c["recovered_leaves"].as_u64()),
            (Some(4), Some(3)),
            "{report:#}"
        );
    })
    .await;
}

/// Heal rebuilds every version kept, not only the current ones: a site wiped after three
/// versions of a key were written (the middle one then removed by id) gets back the shards and
/// records of the two kept; with two other sites down, each still reads back by id, and the
/// removed one stays removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn heal_rebuilds_noncurrent_versions_on_a_wiped_site() {
    within(300, async {
        let mut cluster: Cluster = started_cluster("repair_interval_secs = 3600").await;
        let s3 = cluster.s3_client(3);
        s3.create_bucket().bucket(BUCKET).send().await.unwrap();
        set_versioning(&s3, BucketVersioningStatus::Enabled).await;
        let bodies: Vec<Vec<u8>> = (0..3u8)
            .map(|i| (0..300_000u32).map(|j| (j % 251) as u8 ^ i).collect())
            .collect();
        let mut ids = Vec::new();
        for b in &bodies {
            let out = s3
                .put_object()
                .bucket(BUCKET)
                .key("deed")
                .body(ByteStream::from(b.clone()))
                .send()
                .await
                .unwrap();
            ids.push(out.version_id.unwrap());
        }
        assert_eq!(
            delete_version(&s3, BUCKET, "deed", &ids[1], false).await,
            204
        );

        // Site 2 loses everything but its identity, and comes back empty.
        let wiped = 2;
        tokio::task::block_in_place(|| cluster.kill_node(wiped));
        let disk = cluster.wipe_site(wiped);
        let out = tokio::task::block_in_place(|| cluster.disk_init(wiped, disk));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        tokio::task::block_in_place(|| cluster.start_node(wiped));
        let (v, _) = tokio::task::block_in_place(|| cluster.heal_and_status());
        assert_eq!(v["checked"].as_u64(), Some(2), "two versions kept: {v:#}");

        tokio::task::block_in_place(|| {
            cluster.kill_node(0);
            cluster.kill_node(4);
        });
        for i in [0, 2] {
            let got = get(&s3, "deed", Some(&ids[i])).await;
            assert!(
                got.as_ref().is_ok_and(|g| g.0 == bodies[i]),
                "version {i}: {:?}",
                got.map(|g| g.0.len())
            );
        }
        assert_eq!(get(&s3, "deed", Some(&ids[1])).await, Err(404));
        drop(cluster);
    })
    .await;
}
