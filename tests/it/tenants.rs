//! Issue 18: access keys and grants through the CLI and aws-sdk-s3. A read-only key reads and
//! lists and does nothing else; grants are taken away; GOVERNANCE retention is bypassed only
//! with its own right; a deleted key stops at once, an upload already running included; a new
//! secret replaces the old; and keys and grants come back when the index is rebuilt from the
//! sites. (Every route and payload mode against a second key: `attacks.rs`; after a disaster:
//! `recovery.rs`.)

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ObjectLockLegalHoldStatus, ObjectLockMode, ObjectLockRetention};

use crate::sigv4::{Signer, amz_date, send_paused};
use crate::support::*;

fn cli_ok(cluster: &Cluster, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = cluster.exclave_cli(&all, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "exclave {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn denied<T, E: aws_sdk_s3::error::ProvideErrorMetadata>(
    what: &str,
    r: Result<T, aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>>,
) {
    match r {
        Ok(_) => panic!("{what} was allowed"),
        Err(e) => {
            let (status, c) = code(&e);
            assert_eq!(status, 403, "{what}: {c}");
            // A HEAD answer has no body to name the code.
            assert!(
                c == "AccessDenied" || c.is_empty() || c == "Forbidden",
                "{what}: {c}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_only_key_reads_and_lists_and_grants_are_kept_to_the_letter() {
    within(600, async {
        let cluster = started_cluster("").await;
        let root = cluster.s3_client(1);
        let (land_id, land_secret) = cluster.make_key("land-app");
        let (audit_id, audit_secret) = cluster.make_key("auditor");
        cluster.allow("land-app", "land", &["--owner"]);
        cluster.allow("auditor", "land", &["--read"]);
        let land = cluster.s3_client_as(&land_id, &land_secret);
        let audit = cluster.s3_client_as(&audit_id, &audit_secret);

        // The owner key creates its bucket; the read-only key may not create one, or another.
        denied(
            "auditor creates land",
            audit.create_bucket().bucket("land").send().await,
        )
        .await;
        land.create_bucket().bucket("land").send().await.unwrap();
        denied(
            "land-app creates another",
            land.create_bucket().bucket("other").send().await,
        )
        .await;
        root.create_bucket()
            .bucket("business")
            .send()
            .await
            .unwrap();
        put(&land, "land", "parcels/7-12", b"Jane Roe, 812 m2").await;
        put(&root, "business", "firms/1", b"ACME").await;

        // The read-only key reads, heads, lists (objects and versions) ...
        assert_eq!(
            get(&audit, "land", "parcels/7-12").await,
            b"Jane Roe, 812 m2"
        );
        audit
            .head_object()
            .bucket("land")
            .key("parcels/7-12")
            .send()
            .await
            .unwrap();
        let listed = audit.list_objects_v2().bucket("land").send().await.unwrap();
        assert_eq!(listed.contents().len(), 1);
        audit
            .list_object_versions()
            .bucket("land")
            .send()
            .await
            .unwrap();
        // ... sees only its bucket ...
        let names: Vec<String> = audit
            .list_buckets()
            .send()
            .await
            .unwrap()
            .buckets()
            .iter()
            .filter_map(|b| b.name().map(str::to_owned))
            .collect();
        assert_eq!(names, ["land"]);
        let all = root.list_buckets().send().await.unwrap().buckets().len();
        assert_eq!(all, 2, "the cluster's key sees every bucket");
        // ... and writes nothing, copies nowhere, configures nothing.
        let body = || ByteStream::from_static(b"forged");
        denied(
            "auditor put",
            audit
                .put_object()
                .bucket("land")
                .key("parcels/7-12")
                .body(body())
                .send()
                .await,
        )
        .await;
        denied(
            "auditor delete",
            audit
                .delete_object()
                .bucket("land")
                .key("parcels/7-12")
                .send()
                .await,
        )
        .await;
        denied(
            "auditor copy",
            audit
                .copy_object()
                .bucket("land")
                .key("copy")
                .copy_source("land/parcels/7-12")
                .send()
                .await,
        )
        .await;
        denied(
            "auditor multipart",
            audit
                .create_multipart_upload()
                .bucket("land")
                .key("mp")
                .send()
                .await,
        )
        .await;
        denied(
            "auditor versioning",
            audit
                .put_bucket_versioning()
                .bucket("land")
                .versioning_configuration(
                    aws_sdk_s3::types::VersioningConfiguration::builder()
                        .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                        .build(),
                )
                .send()
                .await,
        )
        .await;
        denied(
            "auditor delete bucket",
            audit.delete_bucket().bucket("land").send().await,
        )
        .await;
        // Neither key reaches the bucket it was not given.
        for (who, c) in [("auditor", &audit), ("land-app", &land)] {
            denied(
                &format!("{who} get business"),
                c.get_object()
                    .bucket("business")
                    .key("firms/1")
                    .send()
                    .await,
            )
            .await;
            denied(
                &format!("{who} list business"),
                c.list_objects_v2().bucket("business").send().await,
            )
            .await;
            denied(
                &format!("{who} head business"),
                c.head_bucket().bucket("business").send().await,
            )
            .await;
        }
        // Copying out of a bucket needs read there: land-app cannot pull business's record in.
        denied(
            "land-app copies from business",
            land.copy_object()
                .bucket("land")
                .key("stolen")
                .copy_source("business/firms/1")
                .send()
                .await,
        )
        .await;
        assert!(!exists(&root, "land", "stolen").await);

        // The tables and JSON say who may do what.
        let info = cli_ok(&cluster, &["bucket", "info", "--bucket", "land"]);
        let keys = info["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2, "{info}");
        let table = cluster.exclave_cli(&["bucket", "list"], Duration::from_secs(60));
        let table = String::from_utf8_lossy(&table.stdout).into_owned();
        assert!(
            table.contains("auditor (read)") && table.contains("land-app (owner)"),
            "{table}"
        );
        let key = cli_ok(&cluster, &["key", "info", "--name", "auditor"]);
        assert_eq!(key["access_key_id"], audit_id.as_str());
        assert!(
            key.get("secret_access_key").is_none(),
            "info shows no secret"
        );

        // Taking the read right away: the auditor reads no more; land-app keeps its rights.
        cli_ok(
            &cluster,
            &["bucket", "deny", "--key", "auditor", "--bucket", "land"],
        );
        denied(
            "auditor after deny",
            audit
                .get_object()
                .bucket("land")
                .key("parcels/7-12")
                .send()
                .await,
        )
        .await;
        assert_eq!(
            get(&land, "land", "parcels/7-12").await,
            b"Jane Roe, 812 m2"
        );
        // Taking the write right only (owner implies write: take owner too, give read back).
        cli_ok(
            &cluster,
            &[
                "bucket", "deny", "--key", "land-app", "--bucket", "land", "--owner",
            ],
        );
        cluster.allow("land-app", "land", &["--read"]);
        denied(
            "land-app put after deny",
            land.put_object()
                .bucket("land")
                .key("x")
                .body(body())
                .send()
                .await,
        )
        .await;
        assert_eq!(
            get(&land, "land", "parcels/7-12").await,
            b"Jane Roe, 812 m2"
        );

        // GOVERNANCE retention: a key with write may not bypass it without the right to.
        root.create_bucket()
            .bucket("sealed")
            .object_lock_enabled_for_bucket(true)
            .send()
            .await
            .unwrap();
        cluster.allow("land-app", "sealed", &["--write"]);
        let until = aws_sdk_s3::primitives::DateTime::from_secs(
            (std::time::SystemTime::now() + Duration::from_secs(3600))
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64,
        );
        let v = land
            .put_object()
            .bucket("sealed")
            .key("deed")
            .body(ByteStream::from_static(b"deed"))
            .object_lock_mode(ObjectLockMode::Governance)
            .object_lock_retain_until_date(until)
            .send()
            .await
            .unwrap()
            .version_id()
            .unwrap()
            .to_owned();
        let bypassing = || {
            land.delete_object()
                .bucket("sealed")
                .key("deed")
                .version_id(&v)
                .bypass_governance_retention(true)
        };
        denied("bypass without the right", bypassing().send().await).await;
        denied(
            "a legal hold needs owner",
            land.put_object_legal_hold()
                .bucket("sealed")
                .key("deed")
                .legal_hold(
                    aws_sdk_s3::types::ObjectLockLegalHold::builder()
                        .status(ObjectLockLegalHoldStatus::On)
                        .build(),
                )
                .send()
                .await,
        )
        .await;
        denied(
            "a shorter retention without the right",
            land.put_object_retention()
                .bucket("sealed")
                .key("deed")
                .version_id(&v)
                .bypass_governance_retention(true)
                .retention(
                    ObjectLockRetention::builder()
                        .mode(aws_sdk_s3::types::ObjectLockRetentionMode::Governance)
                        .retain_until_date(until)
                        .build(),
                )
                .send()
                .await,
        )
        .await;
        cluster.allow("land-app", "sealed", &["--bypass-governance"]);
        bypassing().send().await.unwrap();
        assert!(!exists(&root, "sealed", "deed").await);
    })
    .await;
}

/// A PUT of `len` bytes sent by hand with (`access`, `secret`): the head and half the body,
/// then `between` runs, then the rest. The answer's status and text.
fn put_interrupted(
    cluster: &Cluster,
    access: &str,
    secret: &str,
    path: &str,
    len: usize,
    between: impl FnOnce(),
) -> (u16, String) {
    let addr = cluster.s3_addr();
    let host = addr.to_string();
    let len_text = len.to_string();
    let signed = Signer::new(access, secret).sign(
        &host,
        "PUT",
        path,
        &[],
        &[("content-length", &len_text)],
        "UNSIGNED-PAYLOAD",
        &amz_date(0),
    );
    let body = vec![7u8; len];
    send_paused(addr, "PUT", path, &signed.headers, &body, len / 2, || {
        std::thread::sleep(Duration::from_millis(300));
        between();
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deleted_key_stops_at_once_mid_upload_and_a_new_secret_replaces_the_old() {
    within(600, async {
        let cluster = started_cluster("").await;
        let root = cluster.s3_client(1);
        let (id, old_secret) = cluster.make_key("registry-app");
        cluster.allow("registry-app", "registry", &["--owner"]);
        let app = cluster.s3_client_as(&id, &old_secret);
        app.create_bucket().bucket("registry").send().await.unwrap();
        put(&app, "registry", "a", b"one").await;

        // A new secret: the old one is refused at once, the new one works, the id is the same.
        let rotated = cli_ok(
            &cluster,
            &["key", "rotate-secret", "--name", "registry-app"],
        );
        assert_eq!(rotated["access_key_id"], id.as_str());
        let new_secret = rotated["secret_access_key"].as_str().unwrap().to_owned();
        assert_ne!(new_secret, old_secret);
        let old = app;
        let e = old
            .get_object()
            .bucket("registry")
            .key("a")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), (403, "SignatureDoesNotMatch".into()));
        let app = cluster.s3_client_as(&id, &new_secret);
        assert_eq!(get(&app, "registry", "a").await, b"one");

        // A grant withdrawn while an upload runs: the upload is refused, nothing is stored.
        let (status, text) = tokio::task::block_in_place(|| {
            put_interrupted(
                &cluster,
                &id,
                &new_secret,
                "/registry/halfway-1",
                4 << 20,
                || {
                    cli_ok(
                        &cluster,
                        &[
                            "bucket",
                            "deny",
                            "--key",
                            "registry-app",
                            "--bucket",
                            "registry",
                            "--owner",
                        ],
                    );
                },
            )
        });
        assert_eq!(status, 403, "{text}");
        assert!(text.contains("AccessDenied"), "{text}");
        assert!(!exists(&root, "registry", "halfway-1").await);
        cluster.allow("registry-app", "registry", &["--owner"]);
        put(&app, "registry", "b", b"two").await;

        // The key deleted while an upload runs: refused, nothing stored; then every request.
        let (status, text) = tokio::task::block_in_place(|| {
            put_interrupted(
                &cluster,
                &id,
                &new_secret,
                "/registry/halfway-2",
                4 << 20,
                || {
                    cli_ok(&cluster, &["key", "delete", "--name", "registry-app"]);
                },
            )
        });
        assert_eq!(status, 403, "{text}");
        assert!(!exists(&root, "registry", "halfway-2").await);
        let e = app
            .get_object()
            .bucket("registry")
            .key("a")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), (403, "InvalidAccessKeyId".into()));
        let listed = cli_ok(&cluster, &["key", "list"]);
        assert!(listed["keys"].as_array().unwrap().is_empty(), "{listed}");
        // The data stays the bucket's: the cluster's key reads it.
        assert_eq!(get(&root, "registry", "b").await, b"two");

        // Names are unique and plain; an unknown key is named as such.
        cluster.make_key("second");
        let again = cluster.exclave_cli(
            &["key", "create", "--name", "second"],
            Duration::from_secs(60),
        );
        assert!(!again.status.success());
        assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));
        let bad = cluster.exclave_cli(&["key", "create", "--name", "a b"], Duration::from_secs(60));
        assert!(!bad.status.success());
        let none = cluster.exclave_cli(
            &["key", "info", "--name", "nobody"],
            Duration::from_secs(60),
        );
        assert!(String::from_utf8_lossy(&none.stderr).contains("no access key named"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_and_grants_come_back_when_the_index_is_rebuilt_from_the_sites() {
    within(600, async {
        let mut cluster = started_cluster("").await;
        let root = cluster.s3_client(1);
        let (id, secret) = cluster.make_key("population-app");
        let (gone_id, gone_secret) = cluster.make_key("gone");
        cluster.allow("population-app", "population", &["--owner"]);
        cluster.exclave_cli(
            &["key", "delete", "--name", "gone"],
            Duration::from_secs(60),
        );
        root.create_bucket()
            .bucket("population")
            .send()
            .await
            .unwrap();
        root.create_bucket().bucket("other").send().await.unwrap();
        let app = cluster.s3_client_as(&id, &secret);
        put(&app, "population", "p/1", b"person").await;

        tokio::task::block_in_place(|| cluster.restart_gateway_without_index());
        let app = cluster.s3_client_as(&id, &secret);
        assert_eq!(get(&app, "population", "p/1").await, b"person");
        denied(
            "other after rebuild",
            app.get_object().bucket("other").key("x").send().await,
        )
        .await;
        let gone = cluster.s3_client_as(&gone_id, &gone_secret);
        let e = gone.list_buckets().send().await.unwrap_err();
        assert_eq!(
            code(&e),
            (403, "InvalidAccessKeyId".into()),
            "a deleted key came back"
        );
        let listed = cli_ok(&cluster, &["key", "list"]);
        assert_eq!(listed["keys"].as_array().unwrap().len(), 1, "{listed}");
    })
    .await;
}

/// Keys and grants are cluster state at the sites: after a master key rotation (which re-seals
/// their secrets) and the loss of the home site, `exclave recover` from the foreign sites with
/// the new master key alone brings back every key, with its secret and its grants.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_and_grants_come_back_after_a_key_rotation_and_a_disaster() {
    within(900, async {
        let mut cluster = started_cluster("").await;
        let root = cluster.s3_client(3);
        let (id, secret) = cluster.make_key("land-app");
        let (ro_id, ro_secret) = cluster.make_key("auditor");
        cluster.allow("land-app", "land", &["--owner"]);
        cluster.allow("auditor", "land", &["--read"]);
        root.create_bucket()
            .bucket("business")
            .send()
            .await
            .unwrap();
        let app = cluster.s3_client_as(&id, &secret);
        app.create_bucket().bucket("land").send().await.unwrap();
        put(&app, "land", "deed/1", b"parcel 7/12").await;

        // A master key rotation, gateway stopped; the keys work on under the new master key.
        tokio::task::block_in_place(|| cluster.kill_gateway());
        let rotated = cluster.exclave_cli(&["keys", "rotate", "--json"], Duration::from_secs(300));
        assert!(
            rotated.status.success(),
            "{}",
            String::from_utf8_lossy(&rotated.stderr)
        );
        tokio::task::block_in_place(|| cluster.start_gateway());
        let app = cluster.s3_client_as(&id, &secret);
        assert_eq!(get(&app, "land", "deed/1").await, b"parcel 7/12");

        // The disaster, recovered with the new master key only.
        let gw = cluster.root().join("gateway");
        std::fs::copy(gw.join("master-2.key"), gw.join("master.key")).unwrap();
        let work = tempfile::tempdir().unwrap();
        let (done, out, ports) =
            crate::recovery::lose_home_and_recover(&mut cluster, work.path(), false);
        assert!(done.status.success(), "{}", crate::recovery::text(&done));
        let _gateway = crate::recovery::start_recovered(&out, &ports);
        let addr = ports.s3.addr();
        let app = s3_client_attempts(addr, &id, &secret, 3);
        let auditor = s3_client_attempts(addr, &ro_id, &ro_secret, 3);
        assert_eq!(get(&app, "land", "deed/1").await, b"parcel 7/12");
        assert_eq!(get(&auditor, "land", "deed/1").await, b"parcel 7/12");
        put(&app, "land", "deed/2", b"parcel 7/13").await;
        denied(
            "the auditor writes after recovery",
            auditor
                .put_object()
                .bucket("land")
                .key("x")
                .body(ByteStream::from_static(b"x"))
                .send()
                .await,
        )
        .await;
        denied(
            "land-app reads business after recovery",
            app.list_objects_v2().bucket("business").send().await,
        )
        .await;
    })
    .await;
}

/// Issue 18, item 3: bucket policies. Allow statements give keys what their grants do not;
/// an explicit Deny refuses whoever asks (the cluster's own key too, except mending the
/// policy); conditions on the listing prefix, TLS, the connection's own address (never a
/// forwarded one) and the time; DeleteObjects judged key by key; refused policies named;
/// the policy back after the index is rebuilt from the sites; PublicAccessBlock always on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bucket_policies_allow_deny_and_condition_as_aws_does() {
    use aws_sdk_s3::types::{Delete, ObjectIdentifier, PublicAccessBlockConfiguration};
    within(600, async {
        let mut cluster = started_cluster("").await;
        let root = cluster.s3_client(1);
        let (app_id, app_secret) = cluster.make_key("land-app");
        let (aud_id, aud_secret) = cluster.make_key("auditor");
        cluster.allow("land-app", "land", &["--owner"]);
        root.create_bucket().bucket("land").send().await.unwrap();
        for k in ["public/a", "deeds/1", "other/2", "sealed/x"] {
            put(&root, "land", k, b"record").await;
        }
        let policy = format!(
            r#"{{
  "Version": "2012-10-17",
  "Statement": [
    {{"Sid": "AuditorReadsPublic", "Effect": "Allow",
      "Principal": {{"AWS": ["arn:aws:iam::000000000000:user/auditor"]}},
      "Action": "s3:GetObject", "Resource": "arn:aws:s3:::land/public/*"}},
    {{"Sid": "AuditorListsPublic", "Effect": "Allow", "Principal": {{"AWS": "{aud_id}"}},
      "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::land",
      "Condition": {{"StringLike": {{"s3:prefix": "public/*"}}}}}},
    {{"Sid": "DeedsStay", "Effect": "Deny", "Principal": "*",
      "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::land/deeds/*"}},
    {{"Sid": "SealedIsSealed", "Effect": "Deny", "Principal": "*",
      "Action": "s3:PutObject", "Resource": "arn:aws:s3:::land/sealed/*"}},
    {{"Sid": "OnlyFromTheRegistryNet", "Effect": "Deny", "Principal": {{"AWS": "auditor"}},
      "Action": "s3:*", "Resource": "arn:aws:s3:::land/*",
      "Condition": {{"NotIpAddress": {{"aws:SourceIp": ["127.0.0.0/8", "::1"]}}}}}},
    {{"Sid": "SealedTagsStayUnread", "Effect": "Deny", "Principal": {{"AWS": "auditor"}},
      "Action": "s3:GetObject", "Resource": "arn:aws:s3:::land/*",
      "Condition": {{"StringEquals": {{"s3:ExistingObjectTag/class": "sealed"}}}}}},
    {{"Sid": "NotBefore2001", "Effect": "Deny", "Principal": "*",
      "Action": "s3:GetObject", "Resource": "arn:aws:s3:::land/other/*",
      "Condition": {{"DateLessThan": {{"aws:CurrentTime": "2001-01-01T00:00:00Z"}}}}}}
  ]
}}"#
        );
        root.put_bucket_policy().bucket("land").policy(&policy).send().await.unwrap();
        let got = root.get_bucket_policy().bucket("land").send().await.unwrap();
        assert_eq!(got.policy(), Some(policy.as_str()), "read back as put");
        let status = root.get_bucket_policy_status().bucket("land").send().await.unwrap();
        assert_eq!(status.policy_status().and_then(|s| s.is_public()), Some(false));

        let app = cluster.s3_client_as(&app_id, &app_secret);
        let auditor = cluster.s3_client_as(&aud_id, &aud_secret);
        // The auditor has no grant: the policy's Allows are all it has.
        assert_eq!(get(&auditor, "land", "public/a").await, b"record");
        // A tag condition reads the object's tags as they are now.
        root.put_object().bucket("land").key("public/t").tagging("class=sealed").body(ByteStream::from_static(b"tagged")).send().await.unwrap();
        denied("auditor reads a sealed-tagged object", auditor.get_object().bucket("land").key("public/t").send().await).await;
        root.put_object_tagging()
            .bucket("land")
            .key("public/t")
            .tagging(
                aws_sdk_s3::types::Tagging::builder()
                    .tag_set(aws_sdk_s3::types::Tag::builder().key("class").value("open").build().unwrap())
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(get(&auditor, "land", "public/t").await, b"tagged");
        denied("auditor reads deeds", auditor.get_object().bucket("land").key("deeds/1").send().await).await;
        auditor.list_objects_v2().bucket("land").prefix("public/").send().await.unwrap();
        denied("auditor lists everything", auditor.list_objects_v2().bucket("land").send().await).await;
        denied("auditor writes", auditor.put_object().bucket("land").key("public/b").body(ByteStream::from_static(b"x")).send().await).await;
        // The date condition holds no more: other/ reads.
        assert_eq!(get(&app, "land", "other/2").await, b"record");
        // Deny wins over the owner's grant, and over the cluster's key.
        denied("owner deletes a deed", app.delete_object().bucket("land").key("deeds/1").send().await).await;
        denied("cluster key writes sealed", root.put_object().bucket("land").key("sealed/x").body(ByteStream::from_static(b"y")).send().await).await;
        assert_eq!(get(&root, "land", "sealed/x").await, b"record");
        // DeleteObjects: key by key.
        let out = app
            .delete_objects()
            .bucket("land")
            .delete(
                Delete::builder()
                    .objects(ObjectIdentifier::builder().key("deeds/1").build().unwrap())
                    .objects(ObjectIdentifier::builder().key("other/2").build().unwrap())
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(out.errors().len(), 1);
        assert_eq!(out.errors()[0].key(), Some("deeds/1"));
        assert_eq!(out.errors()[0].code(), Some("AccessDenied"));
        assert!(exists(&root, "land", "deeds/1").await && !exists(&root, "land", "other/2").await);
        // The address is the connection's own: a forwarded one changes nothing.
        let (status, text) = tokio::task::block_in_place(|| {
            let addr = cluster.s3_addr();
            let signed = Signer::new(aud_id.clone(), aud_secret.clone()).sign(
                &addr.to_string(),
                "GET",
                "/land/public/a",
                &[],
                &[("x-forwarded-for", "192.0.2.7")],
                &crate::sigv4::sha256_hex(b""),
                &amz_date(0),
            );
            crate::sigv4::send(addr, "GET", "/land/public/a", &signed.headers, b"")
        });
        assert_eq!(status, 200, "{text}");

        // Refused policies, each named MalformedPolicy; the policy in force unchanged.
        for bad in [
            "not json".to_owned(),
            policy.replace("arn:aws:s3:::land/public/*", "arn:aws:s3:::business/*"),
            policy.replace("user/auditor", "user/stranger"),
            policy.replace("s3:GetObject", "s3:Teleport"),
            policy.replace("aws:SourceIp", "aws:Referer"),
        ] {
            let e = root.put_bucket_policy().bucket("land").policy(&bad).send().await.unwrap_err();
            assert_eq!(code(&e), (400, "MalformedPolicy".into()), "{bad}");
        }
        // A key that is not the owner may not touch the policy.
        denied("auditor puts a policy", auditor.put_bucket_policy().bucket("land").policy(&policy).send().await).await;

        // Public access: blocked, always.
        let pab = root.get_public_access_block().bucket("land").send().await.unwrap();
        let c = pab.public_access_block_configuration().unwrap();
        assert_eq!(
            (c.block_public_acls(), c.block_public_policy(), c.ignore_public_acls(), c.restrict_public_buckets()),
            (Some(true), Some(true), Some(true), Some(true))
        );
        let all = |on: bool| {
            PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .block_public_policy(on)
                .ignore_public_acls(true)
                .restrict_public_buckets(true)
                .build()
        };
        root.put_public_access_block().bucket("land").public_access_block_configuration(all(true)).send().await.unwrap();
        let e = root.put_public_access_block().bucket("land").public_access_block_configuration(all(false)).send().await.unwrap_err();
        assert_eq!(code(&e).0, 400);
        let e = root.delete_public_access_block().bucket("land").send().await.unwrap_err();
        assert_eq!(code(&e).0, 400);

        // The policy is the bucket's, at the sites: back with a rebuilt index.
        tokio::task::block_in_place(|| cluster.restart_gateway_without_index());
        let root = cluster.s3_client(1);
        let got = root.get_bucket_policy().bucket("land").send().await.unwrap();
        assert_eq!(got.policy(), Some(policy.as_str()));
        let auditor = cluster.s3_client_as(&aud_id, &aud_secret);
        assert_eq!(get(&auditor, "land", "public/a").await, b"record");
        denied("deny after rebuild", root.put_object().bucket("land").key("sealed/x").body(ByteStream::from_static(b"z")).send().await).await;

        // Deleted: the Allows and Denies go with it.
        root.delete_bucket_policy().bucket("land").send().await.unwrap();
        let e = root.get_bucket_policy().bucket("land").send().await.unwrap_err();
        assert_eq!(code(&e), (404, "NoSuchBucketPolicy".into()));
        denied("auditor without the policy", auditor.get_object().bucket("land").key("public/a").send().await).await;
        put(&root, "land", "sealed/x", b"unsealed").await;

        // TLS: a policy that denies plain HTTP denies it here (this endpoint is plain HTTP).
        root.create_bucket().bucket("tls-only").send().await.unwrap();
        put(&root, "tls-only", "k", b"v").await;
        root.put_bucket_policy()
            .bucket("tls-only")
            .policy(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::tls-only","arn:aws:s3:::tls-only/*"],"Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}"#)
            .send()
            .await
            .unwrap();
        denied("plain HTTP under a TLS-only policy", root.get_object().bucket("tls-only").key("k").send().await).await;
        // ... and the cluster's key can still mend it.
        root.delete_bucket_policy().bucket("tls-only").send().await.unwrap();
        assert_eq!(get(&root, "tls-only", "k").await, b"v");
    })
    .await;
}
