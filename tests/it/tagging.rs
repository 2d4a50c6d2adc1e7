//! Issue 18, item 6: tags. Object tags from `x-amz-tagging` (PUT, CopyObject's tagging
//! directive, multipart), Put/Get/DeleteObjectTagging of the current version or one named
//! by id (the data, ETag and version stay), AWS's limits refused with InvalidTag, the tag
//! count on GET; bucket tags; all of it back after the gateway's index is rebuilt from the
//! sites. (Lifecycle tag filters: `lifecycle::rules_expire...`; policy tag conditions:
//! `tenants::bucket_policies...`.)

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Tag, Tagging, TaggingDirective};

use crate::support::*;

fn tagging<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> Tagging {
    let mut b = Tagging::builder();
    for (k, v) in pairs {
        b = b.tag_set(
            Tag::builder()
                .key(k.as_ref())
                .value(v.as_ref())
                .build()
                .unwrap(),
        );
    }
    b.build().unwrap()
}

async fn tags_of(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    version: Option<&str>,
) -> Vec<(String, String)> {
    let out = s3
        .get_object_tagging()
        .bucket(bucket)
        .key(key)
        .set_version_id(version.map(str::to_owned))
        .send()
        .await
        .unwrap();
    out.tag_set()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tags_are_kept_in_the_version_limited_as_aws_limits_them_and_come_back_from_the_sites() {
    within(600, async {
        let mut cluster = started_cluster("").await;
        let s3 = cluster.s3_client(1);
        s3.create_bucket().bucket("reg").send().await.unwrap();

        // PUT with x-amz-tagging; GET counts them.
        let first = s3
            .put_object()
            .bucket("reg")
            .key("deed")
            .tagging("class=restricted&office=land%20north&empty=")
            .body(ByteStream::from_static(b"parcel 7/12"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            tags_of(&s3, "reg", "deed", None).await,
            pairs(&[
                ("class", "restricted"),
                ("office", "land north"),
                ("empty", "")
            ])
        );
        let got = s3
            .get_object()
            .bucket("reg")
            .key("deed")
            .send()
            .await
            .unwrap();
        assert_eq!(got.tag_count(), Some(3));

        // Replaced: the data, ETag and modification time stay.
        s3.put_object_tagging()
            .bucket("reg")
            .key("deed")
            .tagging(tagging(&[("class", "public")]))
            .send()
            .await
            .unwrap();
        assert_eq!(
            tags_of(&s3, "reg", "deed", None).await,
            pairs(&[("class", "public")])
        );
        let head = s3
            .head_object()
            .bucket("reg")
            .key("deed")
            .send()
            .await
            .unwrap();
        assert_eq!(head.e_tag(), first.e_tag());
        assert_eq!(get(&s3, "reg", "deed").await, b"parcel 7/12");

        // What AWS refuses is refused, and the tags stay as they were.
        let eleven: Vec<(String, String)> =
            (0..11).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        let long_key = "k".repeat(129);
        let long_value = "v".repeat(257);
        let refused: Vec<(&str, Tagging)> = vec![
            ("eleven tags", tagging(&eleven)),
            ("a key of 129", tagging(&[(long_key.as_str(), "v")])),
            ("a value of 257", tagging(&[("k", long_value.as_str())])),
            ("an aws: key", tagging(&[("aws:created", "v")])),
            ("a key twice", tagging(&[("k", "1"), ("k", "2")])),
            ("a character S3 refuses", tagging(&[("k", "a;b")])),
            ("an empty key", tagging(&[("", "v")])),
        ];
        for (what, set) in refused {
            let e = s3
                .put_object_tagging()
                .bucket("reg")
                .key("deed")
                .tagging(set)
                .send()
                .await
                .unwrap_err();
            assert_eq!(code(&e), (400, "InvalidTag".into()), "{what}");
        }
        for header in ["a=%zz", "a=1&a=2", "aws:x=1"] {
            let e = s3
                .put_object()
                .bucket("reg")
                .key("refused")
                .tagging(header)
                .body(ByteStream::from_static(b"x"))
                .send()
                .await
                .unwrap_err();
            assert_eq!(code(&e).0, 400, "{header}");
            assert!(!exists(&s3, "reg", "refused").await, "{header}");
        }
        assert_eq!(
            tags_of(&s3, "reg", "deed", None).await,
            pairs(&[("class", "public")])
        );
        let ten: Vec<(String, String)> = eleven[..10].to_vec();
        let e = s3
            .put_object_tagging()
            .bucket("reg")
            .key("ten")
            .tagging(tagging(&[("k", "v")]))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), (404, "NoSuchKey".into()));
        put(&s3, "reg", "ten", b"t").await;
        s3.put_object_tagging()
            .bucket("reg")
            .key("ten")
            .tagging(tagging(&ten))
            .send()
            .await
            .unwrap();
        assert_eq!(tags_of(&s3, "reg", "ten", None).await, ten);

        // Copies: the source's tags by default, the request's with REPLACE.
        s3.copy_object()
            .bucket("reg")
            .key("copy")
            .copy_source("reg/deed")
            .send()
            .await
            .unwrap();
        assert_eq!(
            tags_of(&s3, "reg", "copy", None).await,
            pairs(&[("class", "public")])
        );
        s3.copy_object()
            .bucket("reg")
            .key("copy2")
            .copy_source("reg/deed")
            .tagging_directive(TaggingDirective::Replace)
            .tagging("class=copied")
            .send()
            .await
            .unwrap();
        assert_eq!(
            tags_of(&s3, "reg", "copy2", None).await,
            pairs(&[("class", "copied")])
        );

        // Multipart: the tags of CreateMultipartUpload.
        let up = s3
            .create_multipart_upload()
            .bucket("reg")
            .key("big")
            .tagging("class=scan")
            .send()
            .await
            .unwrap();
        let part = s3
            .upload_part()
            .bucket("reg")
            .key("big")
            .upload_id(up.upload_id().unwrap())
            .part_number(1)
            .body(ByteStream::from(vec![7u8; 100_000]))
            .send()
            .await
            .unwrap();
        s3.complete_multipart_upload()
            .bucket("reg")
            .key("big")
            .upload_id(up.upload_id().unwrap())
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
        assert_eq!(
            tags_of(&s3, "reg", "big", None).await,
            pairs(&[("class", "scan")])
        );

        // Deleted: none, and GET no longer counts any.
        s3.delete_object_tagging()
            .bucket("reg")
            .key("copy2")
            .send()
            .await
            .unwrap();
        assert!(tags_of(&s3, "reg", "copy2", None).await.is_empty());
        let got = s3
            .get_object()
            .bucket("reg")
            .key("copy2")
            .send()
            .await
            .unwrap();
        assert_eq!(got.tag_count(), None);

        // Versions: each has its own; a version named by id is tagged alone.
        s3.create_bucket().bucket("ver").send().await.unwrap();
        enable_versioning(&s3, "ver").await;
        let v1 = s3
            .put_object()
            .bucket("ver")
            .key("k")
            .tagging("v=1")
            .body(ByteStream::from_static(b"one"))
            .send()
            .await
            .unwrap();
        let v1 = v1.version_id().unwrap().to_owned();
        put(&s3, "ver", "k", b"two").await;
        let out = s3
            .put_object_tagging()
            .bucket("ver")
            .key("k")
            .version_id(&v1)
            .tagging(tagging(&[("v", "first")]))
            .send()
            .await
            .unwrap();
        assert_eq!(out.version_id(), Some(v1.as_str()));
        assert!(tags_of(&s3, "ver", "k", None).await.is_empty());
        assert_eq!(
            tags_of(&s3, "ver", "k", Some(&v1)).await,
            pairs(&[("v", "first")])
        );
        s3.delete_object()
            .bucket("ver")
            .key("k")
            .send()
            .await
            .unwrap();
        let e = s3
            .get_object_tagging()
            .bucket("ver")
            .key("k")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e).0, 404, "the current version is a delete marker");

        // Bucket tags.
        let e = s3
            .get_bucket_tagging()
            .bucket("reg")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), (404, "NoSuchTagSet".into()));
        s3.put_bucket_tagging()
            .bucket("reg")
            .tagging(tagging(&[("registry", "land"), ("agency", "cadastre")]))
            .send()
            .await
            .unwrap();
        let fifty_one: Vec<(String, String)> =
            (0..51).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        let e = s3
            .put_bucket_tagging()
            .bucket("ver")
            .tagging(tagging(&fifty_one))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), (400, "InvalidTag".into()));

        // Everything is at the sites: back with an index rebuilt from them.
        tokio::task::block_in_place(|| cluster.restart_gateway_without_index());
        let s3 = cluster.s3_client(1);
        assert_eq!(
            tags_of(&s3, "reg", "deed", None).await,
            pairs(&[("class", "public")])
        );
        assert_eq!(
            tags_of(&s3, "ver", "k", Some(&v1)).await,
            pairs(&[("v", "first")])
        );
        assert_eq!(
            tags_of(&s3, "reg", "big", None).await,
            pairs(&[("class", "scan")])
        );
        let bt = s3.get_bucket_tagging().bucket("reg").send().await.unwrap();
        let got: Vec<(String, String)> = bt
            .tag_set()
            .iter()
            .map(|t| (t.key().to_owned(), t.value().to_owned()))
            .collect();
        assert_eq!(got, pairs(&[("registry", "land"), ("agency", "cadastre")]));
        s3.delete_bucket_tagging()
            .bucket("reg")
            .send()
            .await
            .unwrap();
        let e = s3
            .get_bucket_tagging()
            .bucket("reg")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), (404, "NoSuchTagSet".into()));
    })
    .await;
}
