//! `exclave key` and `exclave bucket`: access keys for the registries' applications, and
//! what each may do in which bucket (the gateway's `/v1/keys`, `/v1/grants`, `/v1/buckets`).

use serde_json::Value;

use crate::admin::Admin;

/// The rights a command names, as the admin API's parameters.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Rights {
    pub(crate) read: bool,
    pub(crate) write: bool,
    pub(crate) owner: bool,
    pub(crate) bypass_governance: bool,
}

impl Rights {
    fn query(self) -> String {
        [
            (self.read, "&read=1"),
            (self.write, "&write=1"),
            (self.owner, "&owner=1"),
            (self.bypass_governance, "&bypass_governance=1"),
        ]
        .into_iter()
        .filter_map(|(on, q)| on.then_some(q))
        .collect()
    }
}

fn rights(v: &Value) -> String {
    let r: Vec<&str> = v["rights"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if r.is_empty() {
        "-".into()
    } else {
        r.join(",")
    }
}

fn when(ms: &Value) -> String {
    match ms.as_u64() {
        Some(0) | None => "-".into(),
        Some(ms) => crate::admin::ago(ms),
    }
}

fn print_key(k: &Value) {
    outln!("name:           {}", k["name"].as_str().unwrap_or("?"));
    outln!(
        "access key id:  {}",
        k["access_key_id"].as_str().unwrap_or("?")
    );
    outln!("created:        {}", when(&k["created_ms"]));
    outln!("secret set:     {}", when(&k["rotated_ms"]));
    let grants = k["grants"].as_array().cloned().unwrap_or_default();
    if grants.is_empty() {
        outln!("grants:         none (`exclave bucket allow` gives some)");
    } else {
        outln!("{:<40} RIGHTS", "BUCKET");
        for g in &grants {
            outln!("{:<40} {}", g["bucket"].as_str().unwrap_or("?"), rights(g));
        }
    }
}

/// Prints a key with its new secret, once, and how a client uses it.
fn print_secret(k: &Value) {
    print_key(k);
    outln!(
        "secret:         {}",
        k["secret_access_key"].as_str().unwrap_or("?")
    );
    outln!();
    outln!(
        "The secret is shown this once and kept only sealed. For the application's \
         ~/.aws/credentials:"
    );
    outln!(
        "[{}]\naws_access_key_id = {}\naws_secret_access_key = {}",
        k["name"].as_str().unwrap_or("default"),
        k["access_key_id"].as_str().unwrap_or("?"),
        k["secret_access_key"].as_str().unwrap_or("?")
    );
}

fn show(v: &Value, json: bool, table: impl Fn(&Value)) {
    if json {
        outln!("{v}");
    } else {
        table(v);
    }
}

/// `exclave key create --name N`.
pub(crate) fn key_create(admin: &Admin, name: &str, json: bool) -> anyhow::Result<()> {
    let v = admin.call("POST", &format!("/v1/keys?name={name}"))?;
    show(&v, json, print_secret);
    Ok(())
}

/// `exclave key rotate-secret --name N`.
pub(crate) fn key_rotate(admin: &Admin, name: &str, json: bool) -> anyhow::Result<()> {
    let v = admin.call("POST", &format!("/v1/keys/{name}/rotate-secret"))?;
    show(&v, json, |v| {
        print_secret(v);
        outln!("The old secret no longer works.");
    });
    Ok(())
}

/// `exclave key list`.
pub(crate) fn key_list(admin: &Admin, json: bool) -> anyhow::Result<()> {
    let v = admin.call("GET", "/v1/keys")?;
    show(&v, json, |v| {
        let keys = v["keys"].as_array().cloned().unwrap_or_default();
        outln!(
            "{:<24} {:<22} {:<22} BUCKETS (RIGHTS)",
            "NAME",
            "ACCESS KEY ID",
            "CREATED"
        );
        for k in &keys {
            let grants: Vec<String> = k["grants"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|g| format!("{} ({})", g["bucket"].as_str().unwrap_or("?"), rights(g)))
                        .collect()
                })
                .unwrap_or_default();
            outln!(
                "{:<24} {:<22} {:<22} {}",
                k["name"].as_str().unwrap_or("?"),
                k["access_key_id"].as_str().unwrap_or("?"),
                when(&k["created_ms"]),
                if grants.is_empty() {
                    "-".into()
                } else {
                    grants.join(", ")
                }
            );
        }
        outln!(
            "({} key(s) made with `exclave key create`; the cluster's own key, in the gateway's \
             s3-credentials.toml, may do everything)",
            keys.len()
        );
    });
    Ok(())
}

/// `exclave key info --name N`.
pub(crate) fn key_info(admin: &Admin, name: &str, json: bool) -> anyhow::Result<()> {
    let v = admin.call("GET", &format!("/v1/keys/{name}"))?;
    show(&v, json, print_key);
    Ok(())
}

/// `exclave key delete --name N`.
pub(crate) fn key_delete(admin: &Admin, name: &str, json: bool) -> anyhow::Result<()> {
    let v = admin.call("DELETE", &format!("/v1/keys/{name}"))?;
    show(&v, json, |v| {
        outln!(
            "access key {} ({}) deleted: it no longer signs any request, running ones included",
            v["access_key_id"].as_str().unwrap_or("?"),
            name
        );
    });
    Ok(())
}

/// `exclave bucket allow` (`allow`) and `exclave bucket deny`.
pub(crate) fn grant(
    admin: &Admin,
    key: &str,
    bucket: &str,
    r: Rights,
    allow: bool,
    json: bool,
) -> anyhow::Result<()> {
    // Bucket names are lower-case letters, digits, '.' and '-'; the gateway checks the rest.
    if !bucket
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        anyhow::bail!("not a bucket name: {bucket:?}");
    }
    let method = if allow { "POST" } else { "DELETE" };
    let v = admin.call(
        method,
        &format!("/v1/grants?key={key}&bucket={bucket}{}", r.query()),
    )?;
    show(&v, json, |v| {
        outln!(
            "key {key} in bucket {bucket}: {}",
            match rights(v).as_str() {
                "-" => "no rights".to_owned(),
                r => r.to_owned(),
            }
        );
    });
    Ok(())
}

fn print_bucket(b: &Value) {
    let keys = b["keys"].as_array().cloned().unwrap_or_default();
    let mut who: Vec<String> = keys
        .iter()
        .map(|k| format!("{} ({})", k["key"].as_str().unwrap_or("?"), rights(k)))
        .collect();
    if who.is_empty() {
        who.push("-".into());
    }
    outln!(
        "{:<40} {:<7} {}",
        b["bucket"].as_str().unwrap_or("?"),
        if b["exists"].as_bool() == Some(true) {
            "yes"
        } else {
            "no"
        },
        who.join(", ")
    );
}

/// `exclave bucket list`.
pub(crate) fn bucket_list(admin: &Admin, json: bool) -> anyhow::Result<()> {
    let v = admin.call("GET", "/v1/buckets")?;
    show(&v, json, |v| {
        outln!("{:<40} {:<7} KEYS (RIGHTS)", "BUCKET", "EXISTS");
        for b in v["buckets"].as_array().cloned().unwrap_or_default() {
            print_bucket(&b);
        }
        outln!("(the cluster's own key may do everything in every bucket)");
    });
    Ok(())
}

/// `exclave bucket info --bucket B`.
pub(crate) fn bucket_info(admin: &Admin, bucket: &str, json: bool) -> anyhow::Result<()> {
    let v = admin.call("GET", &format!("/v1/buckets/{bucket}"))?;
    show(&v, json, |v| {
        outln!("{:<40} {:<7} KEYS (RIGHTS)", "BUCKET", "EXISTS");
        print_bucket(v);
    });
    Ok(())
}
