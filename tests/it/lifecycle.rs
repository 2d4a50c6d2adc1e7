//! Bucket lifecycle through aws-sdk-s3: configurations kept as written and refused as S3
//! refuses them, applied by `exclave lifecycle` (a day made 10 s long by
//! `lifecycle_day_secs`): current versions expired, noncurrent versions and lone delete markers
//! removed, old uploads aborted, a version under legal hold left; and the rules still there
//! after the gateway's index is rebuilt from the nodes.

use std::time::Duration;

use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, ExpirationStatus,
    LifecycleExpiration, LifecycleRule, LifecycleRuleAndOperator, LifecycleRuleFilter,
    NoncurrentVersionExpiration, ObjectLockLegalHoldStatus, Tag, Transition,
    TransitionStorageClass,
};

use crate::support::*;

/// Seconds in a lifecycle day here.
const DAY_SECS: u64 = 10;

fn rule(id: &str) -> aws_sdk_s3::types::builders::LifecycleRuleBuilder {
    LifecycleRule::builder()
        .id(id)
        .status(ExpirationStatus::Enabled)
}

fn prefix(p: &str) -> LifecycleRuleFilter {
    LifecycleRuleFilter::builder().prefix(p).build()
}

fn config(rules: Vec<LifecycleRule>) -> BucketLifecycleConfiguration {
    BucketLifecycleConfiguration::builder()
        .set_rules(Some(rules))
        .build()
        .unwrap()
}

async fn set(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    rules: Vec<LifecycleRule>,
) -> Result<(), (u16, String)> {
    s3.put_bucket_lifecycle_configuration()
        .bucket(bucket)
        .lifecycle_configuration(config(rules))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| code(&e))
}

/// The bucket's rules, or the status and code of the refusal.
async fn rules_of(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
) -> Result<Vec<LifecycleRule>, (u16, String)> {
    s3.get_bucket_lifecycle_configuration()
        .bucket(bucket)
        .send()
        .await
        .map(|out| out.rules().to_vec())
        .map_err(|e| code(&e))
}

/// `exclave lifecycle --json`: the pass's report.
fn pass(c: &Cluster) -> serde_json::Value {
    let out = c.exclave_cli(&["lifecycle", "--json"], Duration::from_secs(120));
    assert!(
        out.status.success(),
        "exclave lifecycle: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn of<'a>(report: &'a serde_json::Value, bucket: &str) -> &'a serde_json::Value {
    report["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["bucket"] == bucket)
        .unwrap_or_else(|| panic!("no {bucket} in {report:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_configuration_reads_back_as_written_and_what_s3_refuses_is_refused() {
    within(300, async {
        let cluster = started_cluster("").await;
        let s3 = cluster.s3_client(3);
        s3.create_bucket().bucket("land").send().await.unwrap();
        assert_eq!(
            rules_of(&s3, "land").await,
            Err((404, "NoSuchLifecycleConfiguration".into()))
        );

        let rules = vec![
            rule("logs")
                .filter(prefix("logs/"))
                .expiration(LifecycleExpiration::builder().days(30).build())
                .build()
                .unwrap(),
            rule("big-old")
                .filter(
                    LifecycleRuleFilter::builder()
                        .and(
                            LifecycleRuleAndOperator::builder()
                                .prefix("scans/")
                                .object_size_greater_than(1 << 20)
                                .tags(Tag::builder().key("class").value("draft").build().unwrap())
                                .build(),
                        )
                        .build(),
                )
                .noncurrent_version_expiration(
                    NoncurrentVersionExpiration::builder()
                        .noncurrent_days(7)
                        .newer_noncurrent_versions(3)
                        .build(),
                )
                .build()
                .unwrap(),
            rule("uploads")
                .status(ExpirationStatus::Disabled)
                .filter(LifecycleRuleFilter::builder().build())
                .abort_incomplete_multipart_upload(
                    AbortIncompleteMultipartUpload::builder()
                        .days_after_initiation(2)
                        .build(),
                )
                .expiration(
                    LifecycleExpiration::builder()
                        .expired_object_delete_marker(true)
                        .build(),
                )
                .build()
                .unwrap(),
        ];
        set(&s3, "land", rules.clone()).await.unwrap();
        assert_eq!(rules_of(&s3, "land").await, Ok(rules.clone()));

        // Refused as S3 refuses them, and the configuration stays as it was.
        let days0 = rule("x")
            .filter(prefix(""))
            .expiration(LifecycleExpiration::builder().days(0).build())
            .build()
            .unwrap();
        assert_eq!(
            set(&s3, "land", vec![days0]).await,
            Err((400, "InvalidArgument".into()))
        );
        let no_action = rule("x").filter(prefix("")).build().unwrap();
        assert_eq!(
            set(&s3, "land", vec![no_action]).await,
            Err((400, "InvalidRequest".into()))
        );
        let twice = rule("same")
            .filter(prefix(""))
            .expiration(LifecycleExpiration::builder().days(1).build())
            .build()
            .unwrap();
        assert_eq!(
            set(&s3, "land", vec![twice.clone(), twice]).await,
            Err((400, "InvalidArgument".into()))
        );
        let transition = rule("cold")
            .filter(prefix(""))
            .transitions(
                Transition::builder()
                    .days(30)
                    .storage_class(TransitionStorageClass::Glacier)
                    .build(),
            )
            .build()
            .unwrap();
        assert_eq!(
            set(&s3, "land", vec![transition]).await,
            Err((501, "NotImplemented".into()))
        );
        let both = rule("two")
            .filter(
                LifecycleRuleFilter::builder()
                    .prefix("a/")
                    .object_size_less_than(10)
                    .build(),
            )
            .expiration(LifecycleExpiration::builder().days(1).build())
            .build()
            .unwrap();
        assert_eq!(
            set(&s3, "land", vec![both]).await,
            Err((400, "MalformedXML".into()))
        );
        assert_eq!(rules_of(&s3, "land").await, Ok(rules.clone()));

        // Other configuration of the bucket keeps the rules; DELETE ends them.
        enable_versioning(&s3, "land").await;
        assert_eq!(rules_of(&s3, "land").await, Ok(rules.clone()));
        s3.delete_bucket_lifecycle()
            .bucket("land")
            .send()
            .await
            .unwrap();
        assert_eq!(
            rules_of(&s3, "land").await,
            Err((404, "NoSuchLifecycleConfiguration".into()))
        );
        assert_eq!(
            rules_of(&s3, "nowhere").await,
            Err((404, "NoSuchBucket".into()))
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rules_expire_remove_and_abort_what_is_due_and_never_a_held_version() {
    within(600, async {
        let options = "lifecycle_day_secs = 10\nlifecycle_interval_secs = 3600";
        let mut cluster = started_cluster(options).await;
        let s3 = cluster.s3_client(3);
        let mut rng = Rng::new(5);

        // Unversioned: logs/ expire after a day; uploads are aborted after a day.
        s3.create_bucket().bucket("tmp").send().await.unwrap();
        put(&s3, "tmp", "logs/a", &rng.bytes(1000)).await;
        put(&s3, "tmp", "keep/b", &rng.bytes(1000)).await;
        // Drafts expire by their tag: one tagged so when written, one tagged final since.
        for key in ["drafts/a", "drafts/b"] {
            s3.put_object()
                .bucket("tmp")
                .key(key)
                .tagging("class=draft&owner=land%20office")
                .body(rng.bytes(100).into())
                .send()
                .await
                .unwrap();
        }
        s3.put_object_tagging()
            .bucket("tmp")
            .key("drafts/b")
            .tagging(
                aws_sdk_s3::types::Tagging::builder()
                    .tag_set(Tag::builder().key("class").value("final").build().unwrap())
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        let upload = s3
            .create_multipart_upload()
            .bucket("tmp")
            .key("logs/up")
            .send()
            .await
            .unwrap();
        s3.upload_part()
            .bucket("tmp")
            .key("logs/up")
            .upload_id(upload.upload_id().unwrap())
            .part_number(1)
            .body(rng.bytes(1 << 20).into())
            .send()
            .await
            .unwrap();
        set(
            &s3,
            "tmp",
            vec![
                rule("logs")
                    .filter(prefix("logs/"))
                    .expiration(LifecycleExpiration::builder().days(1).build())
                    .build()
                    .unwrap(),
                rule("drafts")
                    .filter(
                        LifecycleRuleFilter::builder()
                            .tag(Tag::builder().key("class").value("draft").build().unwrap())
                            .build(),
                    )
                    .expiration(LifecycleExpiration::builder().days(1).build())
                    .build()
                    .unwrap(),
                rule("uploads")
                    .filter(prefix(""))
                    .abort_incomplete_multipart_upload(
                        AbortIncompleteMultipartUpload::builder()
                            .days_after_initiation(1)
                            .build(),
                    )
                    .build()
                    .unwrap(),
            ],
        )
        .await
        .unwrap();

        // Versioned with object lock: noncurrent versions go after a day, but one under a
        // legal hold stays; a delete marker left alone goes.
        s3.create_bucket()
            .bucket("reg")
            .object_lock_enabled_for_bucket(true)
            .send()
            .await
            .unwrap();
        let held = s3
            .put_object()
            .bucket("reg")
            .key("parcel")
            .body(rng.bytes(1000).into())
            .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
            .send()
            .await
            .unwrap();
        put(&s3, "reg", "parcel", &rng.bytes(1000)).await;
        let newest = rng.bytes(1000);
        put(&s3, "reg", "parcel", &newest).await;
        let gone = s3
            .put_object()
            .bucket("reg")
            .key("gone/x")
            .body(rng.bytes(10).into())
            .send()
            .await
            .unwrap();
        s3.delete_object()
            .bucket("reg")
            .key("gone/x")
            .send()
            .await
            .unwrap();
        s3.delete_object()
            .bucket("reg")
            .key("gone/x")
            .version_id(gone.version_id().unwrap())
            .send()
            .await
            .unwrap();
        set(
            &s3,
            "reg",
            vec![
                rule("noncurrent")
                    .filter(prefix(""))
                    .noncurrent_version_expiration(
                        NoncurrentVersionExpiration::builder()
                            .noncurrent_days(1)
                            .build(),
                    )
                    .build()
                    .unwrap(),
                rule("markers")
                    .filter(prefix("gone/"))
                    .expiration(
                        LifecycleExpiration::builder()
                            .expired_object_delete_marker(true)
                            .build(),
                    )
                    .build()
                    .unwrap(),
            ],
        )
        .await
        .unwrap();

        // Nothing is due yet (written less than a day ago, rounded up to a day's end), but
        // the lone delete marker.
        let first = pass(&cluster);
        assert_eq!(of(&first, "tmp")["expired"], 0, "{first:#}");
        assert_eq!(of(&first, "reg")["noncurrent_removed"], 0, "{first:#}");
        assert_eq!(of(&first, "reg")["markers_removed"], 1, "{first:#}");

        // The rules, and the upload in progress, survive the gateway's index: rebuilt from
        // the nodes; the upload is aborted by the first pass that finds it due.
        tokio::time::sleep(Duration::from_secs(2 * DAY_SECS + 1)).await;
        let report = tokio::task::block_in_place(|| {
            cluster.restart_gateway_without_index();
            pass(&cluster)
        });
        let s3 = cluster.s3_client(3);
        let tmp = of(&report, "tmp");
        // logs/a and drafts/a: the tags came back with the index, drafts/b's revised ones too.
        assert_eq!(tmp["expired"], 2, "{report:#}");
        assert_eq!(
            of(&first, "tmp")["uploads_aborted"].as_u64().unwrap()
                + tmp["uploads_aborted"].as_u64().unwrap(),
            1,
            "{first:#} {report:#}"
        );
        let reg = of(&report, "reg");
        assert_eq!(reg["noncurrent_removed"], 1, "{report:#}");
        assert_eq!(reg["protected"], 1, "{report:#}");
        assert_eq!(reg["failed"], 0, "{report:#}");
        assert!(!exists(&s3, "tmp", "logs/a").await);
        assert!(exists(&s3, "tmp", "keep/b").await);
        assert!(!exists(&s3, "tmp", "drafts/a").await);
        assert!(exists(&s3, "tmp", "drafts/b").await);
        let versions = s3
            .list_object_versions()
            .bucket("reg")
            .send()
            .await
            .unwrap();
        let ids: Vec<&str> = versions
            .versions()
            .iter()
            .filter_map(|v| v.version_id())
            .collect();
        assert_eq!(ids.len(), 2, "{versions:?}");
        assert!(ids.contains(&held.version_id().unwrap()));
        assert!(versions.delete_markers().is_empty(), "{versions:?}");
        assert_eq!(get(&s3, "reg", "parcel").await, newest);

        // An upload made now is aborted once a day has passed.
        let upload = s3
            .create_multipart_upload()
            .bucket("tmp")
            .key("logs/late")
            .send()
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(2 * DAY_SECS + 1)).await;
        let report = tokio::task::block_in_place(|| pass(&cluster));
        assert_eq!(of(&report, "tmp")["uploads_aborted"], 1, "{report:#}");
        let err = s3
            .list_parts()
            .bucket("tmp")
            .key("logs/late")
            .upload_id(upload.upload_id().unwrap())
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&err).1, "NoSuchUpload");

        // The worker shows itself, and the metrics count what it did.
        let out = tokio::task::block_in_place(|| {
            cluster.exclave_cli(&["workers", "--json"], Duration::from_secs(30))
        });
        let workers: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            workers["workers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|w| w["name"] == "lifecycle"),
            "{workers:#}"
        );
        let (admin, token) = cluster.gateway_admin();
        let (_, metrics) =
            tokio::task::block_in_place(|| crate::ops::admin_get(admin, "/metrics", &token));
        assert!(
            metrics.contains("exclave_lifecycle_actions_total{action=\"noncurrent_removed\"} 1"),
            "{metrics}"
        );
    })
    .await;
}
