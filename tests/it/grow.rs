//! Growing a cluster: `exclave layout apply` adds a site with a node to a running 3+2 cluster.
//! Objects written before stay where they are and read back; new writes land at the new site
//! too; overwrites, deletes, heal, an index rebuilt from the nodes and a recovery drill all see
//! both epochs.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::sigv4::sha256_hex;
use crate::support::{Port, Rng, bin, handing, put_sized, serving, started_cluster, within};

const BUCKET: &str = "registry";

/// Kills the node process it holds when dropped (the test's own extra node).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn read_all(s3: &aws_sdk_s3::Client, model: &BTreeMap<String, Option<Vec<u8>>>) {
    for (key, want) in model {
        let r = s3.get_object().bucket(BUCKET).key(key).send().await;
        match (want, r) {
            (Some(body), Ok(o)) => {
                let got = o.body.collect().await.unwrap().into_bytes();
                assert_eq!(sha256_hex(&got), sha256_hex(body), "{key}");
            }
            (None, Err(e)) => {
                let code = e.raw_response().map(|r| r.status().as_u16());
                assert_eq!(code, Some(404), "{key}: {e:?}");
            }
            (Some(_), Err(e)) => panic!("{key}: {e:?}"),
            (None, Ok(_)) => panic!("{key}: deleted, yet served"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_site_added_by_a_new_layout_takes_new_writes_and_loses_nothing() {
    within(600, async {
        let mut cluster = started_cluster("repair_interval_secs = 1").await;
        let s3 = cluster.s3_client(3);
        s3.create_bucket().bucket(BUCKET).send().await.unwrap();
        let mut rng = Rng::new(61);
        let mut model: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
        let sizes = [1000usize, 300_000, 1_200_000];
        let written = put_sized(
            &s3,
            BUCKET,
            "before",
            (0..45).map(|i| sizes[i % 3]),
            &mut rng,
        )
        .await;
        model.extend(written.into_iter().map(|(k, v)| (k, Some(v))));

        // The new layout: the next epoch, and a sixth site with one node and one disk.
        let root = cluster.root();
        let current = std::fs::read_to_string(root.join("layout.toml")).unwrap();
        assert!(current.contains("epoch = 1\n"), "{current}");
        // Two new sites: under the new layout many keys' manifest nodes include both, so a
        // read quorum there may hold nothing and the key is found under the earlier layout.
        let (new_a, new_b) = (Port::node(), Port::node());
        let (port, port_b) = (new_a.port, new_b.port);
        let grown = current.replace("epoch = 1\n", "epoch = 2\n")
            + &format!(
                "\n[[sites]]\nid = 50\nname = \"site-new\"\nhome = false\n\
                 [[sites.nodes]]\nid = 100\naddr = \"127.0.0.1:{port}\"\n\
                 disks = [{{ id = 1000, capacity = 1099511627776 }}]\n\
                 \n[[sites]]\nid = 51\nname = \"site-new-b\"\nhome = false\n\
                 [[sites.nodes]]\nid = 101\naddr = \"127.0.0.1:{port_b}\"\n\
                 disks = [{{ id = 1001, capacity = 1099511627776 }}]\n"
            );
        let new_file = root.join("layout-2.toml");
        std::fs::write(&new_file, &grown).unwrap();
        let out = root.join("new-nodes");

        // Refused while the gateway runs, and for a layout that removes a site.
        let args = |f: &std::path::Path| {
            vec![
                "layout".to_owned(),
                "apply".into(),
                "--file".into(),
                f.display().to_string(),
                "--out".into(),
                out.display().to_string(),
                "--json".into(),
            ]
        };
        let run = |c: &crate::support::Cluster, a: Vec<String>| {
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            c.exclave_cli(&a, Duration::from_secs(120))
        };
        let refused = run(&cluster, args(&new_file));
        assert!(!refused.status.success());
        assert!(String::from_utf8_lossy(&refused.stderr).contains("stop it first"));
        // Nor does a second gateway start on the same state.
        let second = crate::support::run(
            Command::new(bin("exclaved"))
                .arg("--config")
                .arg(root.join("gateway/gateway.toml")),
            Duration::from_secs(60),
        );
        let err = String::from_utf8_lossy(&second.stderr);
        assert!(
            !second.status.success() && err.contains("gateway.lock"),
            "{err}"
        );
        cluster.kill_gateway();
        let shrunk = root.join("layout-shrunk.toml");
        let cut = grown.find("[[sites]]").unwrap();
        let second = grown[cut + 1..].find("[[sites]]").unwrap() + cut + 1;
        std::fs::write(&shrunk, format!("{}{}", &grown[..cut], &grown[second..])).unwrap();
        let refused = run(&cluster, args(&shrunk));
        assert!(!refused.status.success());
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("removing a site is not supported"),
            "{}",
            String::from_utf8_lossy(&refused.stderr)
        );

        let applied = run(&cluster, args(&new_file));
        assert!(
            applied.status.success(),
            "{}{}",
            String::from_utf8_lossy(&applied.stdout),
            String::from_utf8_lossy(&applied.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&applied.stdout).unwrap();
        assert_eq!(report["epoch"], 2, "{report:#}");
        assert_eq!(report["record_stored"].as_array().unwrap().len(), 5);
        let dirs: Vec<std::path::PathBuf> = report["new_nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| std::path::PathBuf::from(n["dir"].as_str().unwrap()))
            .collect();
        assert_eq!(dirs.len(), 2, "{report:#}");
        // Each new node takes the handed-over sockets bound to its own address.
        let _new_nodes: Vec<Killed> = dirs
            .iter()
            .map(|dir| {
                let mut node = Command::new(bin("exclaved"));
                node.arg("--config").arg(dir.join("node.toml"));
                Killed(
                    handing(&node, &[&new_a, &new_b])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .unwrap(),
                )
            })
            .collect();
        // A second run changes nothing, says so, and gives the new nodes the record too.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        for p in [&new_a, &new_b] {
            while !serving(p.addr()) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "a new node did not start"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let again = run(&cluster, args(&new_file));
        assert!(
            again.status.success(),
            "{}",
            String::from_utf8_lossy(&again.stdout)
        );
        let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
        assert_eq!(again["already_current"], true);
        assert_eq!(again["record_stored"].as_array().unwrap().len(), 7);
        cluster.start_gateway();

        // Everything written before reads back; new writes, overwrites and deletes.
        read_all(&s3, &model).await;
        let written = put_sized(
            &s3,
            BUCKET,
            "after",
            (0..45).map(|i| sizes[i % 3]),
            &mut rng,
        )
        .await;
        model.extend(written.into_iter().map(|(k, v)| (k, Some(v))));
        let written = put_sized(
            &s3,
            BUCKET,
            "before",
            (0..10).map(|i| sizes[i % 3]),
            &mut rng,
        )
        .await;
        model.extend(written.into_iter().map(|(k, v)| (k, Some(v))));
        for i in 10..15 {
            let key = format!("before-{i}");
            s3.delete_object()
                .bucket(BUCKET)
                .key(&key)
                .send()
                .await
                .unwrap();
            model.insert(key, None);
        }
        read_all(&s3, &model).await;

        // The new site holds shards of new objects; heal finds everything whole.
        let (_, status) = cluster.heal_and_status();
        let new_site = status["sites"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["site"] == "site-new")
            .unwrap_or_else(|| panic!("{status:#}"))
            .clone();
        assert_eq!(new_site["reachable"], true, "{status:#}");
        assert!(new_site["shards"].as_u64().unwrap() > 0, "{status:#}");

        // An index rebuilt from the nodes sees both epochs.
        cluster.kill_gateway();
        std::fs::remove_file(root.join("gateway/state/index.redb")).unwrap();
        cluster.start_gateway();
        read_all(&s3, &model).await;
        let listed = s3
            .list_objects_v2()
            .bucket(BUCKET)
            .max_keys(1000)
            .send()
            .await
            .unwrap();
        assert_eq!(
            listed.contents().len(),
            model.values().filter(|v| v.is_some()).count()
        );

        // A recovery drill (without home and one more site) recovers objects of both epochs.
        let drill = cluster.exclave_cli(&["drill", "--json"], Duration::from_secs(300));
        assert!(
            drill.status.success(),
            "{}{}",
            String::from_utf8_lossy(&drill.stdout),
            String::from_utf8_lossy(&drill.stderr)
        );
        let drill: serde_json::Value = serde_json::from_slice(&drill.stdout).unwrap();
        assert_eq!(
            drill["recovered_percent"].as_f64(),
            Some(100.0),
            "{drill:#}"
        );
        eprintln!("grow: drill {}", serde_json::to_string(&drill).unwrap());
    })
    .await;
}
