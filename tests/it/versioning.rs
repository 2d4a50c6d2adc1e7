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

use crate::support::{Cluster, started_cluster, status, within};

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
            cluster.kill_gateway();
            std::fs::remove_file(cluster.root().join("gateway/state/index.redb")).unwrap();
            cluster.start_gateway();
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
