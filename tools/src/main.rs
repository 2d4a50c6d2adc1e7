//! `exclave`: the admin CLI.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// `println!` for what the CLI prints: when the reader went away (`exclave status | head`)
/// the command ends quietly, as Unix tools do, instead of panicking on the broken pipe.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            $crate::stdout_failed(&e);
        }
    }};
}

/// Standard output failed: a closed pipe ends the command quietly, anything else with an error.
fn stdout_failed(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("error: writing to standard output: {e}");
    std::process::exit(2);
}

mod access;
mod admin;
mod drill;
mod gc;
mod init;
mod keys;
mod layout;
mod recover;

/// Administer an exclave cluster.
#[derive(Debug, Parser)]
#[command(name = "exclave", version, about)]
struct Cli {
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// The gateway's config file (for status, scrub, heal, workers).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Set up a new cluster: CA, certificates, keys, credentials, data directories, configs.
    Init {
        /// Directory to write (must be new or empty).
        #[arg(long)]
        dir: PathBuf,
        /// Site names, comma-separated; the first is home.
        #[arg(long, value_delimiter = ',', required = true)]
        sites: Vec<String>,
        /// Data shards per stripe.
        #[arg(long)]
        k: usize,
        /// Parity shards per stripe.
        #[arg(long)]
        m: usize,
        /// Foreign sites that may be lost on top of home (f).
        #[arg(long, default_value_t = 1)]
        survive: usize,
        /// Address the nodes and the gateway bind to.
        #[arg(long, default_value = "127.0.0.1")]
        bind: std::net::IpAddr,
        /// Node i listens on base-port + i.
        #[arg(long, default_value_t = 7100)]
        base_port: u16,
        /// Each node's port, comma-separated, one per site in order (instead of --base-port).
        #[arg(long, value_delimiter = ',')]
        node_ports: Vec<u16>,
        /// S3 port of the gateway.
        #[arg(long, default_value_t = 9000)]
        s3_port: u16,
        /// Admin API port of the gateway (default: the S3 port + 1).
        #[arg(long)]
        admin_port: Option<u16>,
        /// Data directories per node.
        #[arg(long, default_value_t = 1)]
        disks_per_node: u32,
        /// A name clients reach the gateway's S3 endpoint by (DNS name or IP address; repeat).
        /// The cluster CA issues the endpoint's TLS certificate for these, localhost and the
        /// loopback and bind addresses.
        #[arg(long = "s3-name")]
        s3_names: Vec<String>,
        /// Serve S3 with this certificate chain (PEM) instead of one from the cluster CA.
        #[arg(long, requires = "s3_key", conflicts_with = "s3_plain_http")]
        s3_cert: Option<PathBuf>,
        /// The private key of --s3-cert (PEM).
        #[arg(long, requires = "s3_cert")]
        s3_key: Option<PathBuf>,
        /// Serve S3 as plain HTTP (only with a loopback --bind).
        #[arg(long)]
        s3_plain_http: bool,
    },
    /// Inspect and check cluster layouts.
    #[command(subcommand)]
    Layout(LayoutCommand),
    /// Sites (reachable, scrub), repair backlog, and per bucket: objects whole, degraded,
    /// unreadable. Exits 1 unless everything is whole and every site answers.
    Status,
    /// Start a full scrub pass at every site now.
    Scrub,
    /// Find objects with shards missing at their sites and rebuild them (keyless).
    Heal {
        /// Only this bucket.
        #[arg(long)]
        bucket: Option<String>,
        /// Repeat until every object is whole (or --timeout).
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
    /// Collect garbage now: the shards and records of overwritten, deleted and removed
    /// versions, upload parts, withdrawn writes and orphans, once their grace period passed.
    /// Prints what it removed by reason and per site.
    Gc {
        /// Only say what would go; delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Wait out the grace period of what is waiting for it, and collect that too.
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 1800)]
        timeout: u64,
    },
    /// Every site's files by what accounts for them: shards a header names, files no header
    /// names (listed), quarantine, writes in progress, markers, stray files (listed), the
    /// database; with the collector's last weighing of the shards. Exits 1 when a site does
    /// not answer or a file is accounted for by nothing.
    Census,
    /// Apply the buckets' lifecycle rules now (the `lifecycle` worker's pass): what expired,
    /// what was removed, which uploads were aborted, per bucket.
    Lifecycle,
    /// The background workers by name (repair, checkpoint; scrub at each site): state,
    /// rounds, failures, last success. Exits 1 when a worker's last round failed.
    Workers,
    /// Rebuild a gateway (config, identity, keys, index) from the surviving nodes and the
    /// master key (or key shares) alone. Resumable: run it again with the same --out.
    Recover {
        /// Live: the surviving nodes' addresses (host:port, comma-separated; their admin port
        /// is the same number over TCP). With --out.
        #[arg(long, value_delimiter = ',', required_unless_present = "from_dirs")]
        nodes: Vec<std::net::SocketAddr>,
        /// Offline: copies of the surviving nodes' directories (comma-separated). With
        /// --export.
        #[arg(long, value_delimiter = ',', conflicts_with = "nodes")]
        from_dirs: Vec<PathBuf>,
        /// The master key file (64 hex digits).
        #[arg(long)]
        master_key_file: Option<PathBuf>,
        /// A key share file (repeat, at least the threshold), instead of --master-key-file.
        #[arg(long = "key-share")]
        key_shares: Vec<PathBuf>,
        /// Live: the directory to write (new, or a previous run's to resume).
        #[arg(long, required_unless_present = "from_dirs")]
        out: Option<PathBuf>,
        /// Offline: the directory to export every object into (resumable).
        #[arg(long, required_unless_present = "nodes")]
        export: Option<PathBuf>,
        /// Where the recovered gateway serves S3.
        #[arg(long, default_value = "127.0.0.1:9000")]
        s3_listen: std::net::SocketAddr,
        /// Where the recovered gateway serves its admin API.
        #[arg(long, default_value = "127.0.0.1:9001")]
        admin_listen: std::net::SocketAddr,
        /// Skip reading every object back after the index is rebuilt (live).
        #[arg(long)]
        no_verify: bool,
        /// The recovered gateway serves S3 as plain HTTP (only on a loopback --s3-listen);
        /// otherwise over TLS with a certificate from the cluster CA.
        #[arg(long)]
        s3_plain_http: bool,
    },
    /// Rehearse a disaster against the live cluster: a fresh checkpoint, then a recovery that
    /// ignores home and one more site, into a temporary place, every object read back.
    Drill {
        /// The foreign site to ignore besides home (default: the first in the layout).
        #[arg(long)]
        ignore_site: Option<String>,
        /// Keep the recovered directory here instead of a temporary one.
        #[arg(long)]
        keep: Option<PathBuf>,
    },
    /// Master key custody: split into Shamir shares, join them again.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Data directories of a node (with --config NODE.toml).
    #[command(subcommand)]
    Disk(DiskCommand),
    /// S3 access keys for the registries' applications (each limited to the buckets it is
    /// given with `exclave bucket allow`).
    #[command(subcommand)]
    Key(KeyCommand),
    /// Buckets and who may use them: give a key rights in a bucket, take them away, list.
    #[command(subcommand)]
    Bucket(BucketCommand),
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Make an access key with no rights yet; prints its secret, this once.
    Create {
        /// A name for people (letters, digits, '.', '_', '-'), unique.
        #[arg(long)]
        name: String,
    },
    /// Every key made here, with its grants.
    List,
    /// One key and its grants.
    Info {
        #[arg(long)]
        name: String,
    },
    /// Delete a key: it stops working at once, requests already running included.
    Delete {
        #[arg(long)]
        name: String,
    },
    /// Give a key a new secret (the same access key id); the old secret stops working at once.
    RotateSecret {
        #[arg(long)]
        name: String,
    },
}

/// Rights in a bucket.
#[derive(Debug, clap::Args)]
struct RightsArgs {
    /// Read objects, their versions and settings; list the bucket.
    #[arg(long)]
    read: bool,
    /// Write and delete objects (multipart uploads included).
    #[arg(long)]
    write: bool,
    /// Create, delete and configure the bucket (implies read and write).
    #[arg(long)]
    owner: bool,
    /// Remove or shorten GOVERNANCE retention (x-amz-bypass-governance-retention).
    #[arg(long)]
    bypass_governance: bool,
}

impl RightsArgs {
    fn rights(&self) -> access::Rights {
        access::Rights {
            read: self.read,
            write: self.write,
            owner: self.owner,
            bypass_governance: self.bypass_governance,
        }
    }
}

#[derive(Debug, Subcommand)]
enum BucketCommand {
    /// Give a key rights in a bucket (which need not exist yet: --owner lets the key create it).
    Allow {
        /// The key's name.
        #[arg(long)]
        key: String,
        #[arg(long)]
        bucket: String,
        #[command(flatten)]
        rights: RightsArgs,
    },
    /// Take rights away from a key in a bucket (none named: all of them).
    Deny {
        /// The key's name.
        #[arg(long)]
        key: String,
        #[arg(long)]
        bucket: String,
        #[command(flatten)]
        rights: RightsArgs,
    },
    /// Every bucket, and every bucket a grant names, with the keys that may use it.
    List,
    /// One bucket and the keys that may use it.
    Info {
        #[arg(long)]
        bucket: String,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Cut the master key into Shamir shares, one file each, for officials in different
    /// places. The key comes from the gateway config (--config) or --master-key-file.
    Split {
        /// Shares needed to restore the key.
        #[arg(long)]
        threshold: u8,
        /// Shares to make (at most 255).
        #[arg(long)]
        shares: u8,
        /// A new or empty directory for the share files.
        #[arg(long)]
        out: PathBuf,
        /// The master key file (64 hex digits), instead of the gateway config's.
        #[arg(long)]
        master_key_file: Option<PathBuf>,
        /// The master key's generation, with --master-key-file.
        #[arg(long, default_value_t = 1)]
        key_id: u32,
    },
    /// Make a new master key and re-wrap every data key under it (manifests only, no shard
    /// rewritten). Stop the gateway first; run again if a site was unreachable.
    Rotate,
    /// Restore the master key from share files into a new key file (mode 0600).
    Join {
        /// A share file (repeat: at least the threshold).
        #[arg(long = "key-share", required = true)]
        key_shares: Vec<PathBuf>,
        /// The key file to write (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum DiskCommand {
    /// Prepare an empty data directory (a replaced disk) for the node whose config is given
    /// with --config: writes its marker. The node then starts, and `exclave heal` refills it.
    Init {
        /// The disk id, as the node config lists it.
        #[arg(long)]
        disk: u32,
    },
}

#[derive(Debug, Subcommand)]
enum LayoutCommand {
    /// Check a layout file against the jurisdiction rule: what it survives, who cannot read.
    Check {
        /// The layout file (TOML).
        #[arg(long)]
        file: PathBuf,
        /// Override the file's `survive_foreign_losses` (f).
        #[arg(long)]
        survive: Option<usize>,
    },
    /// Make a new layout current (the next epoch; it may add nodes, disks and sites, never
    /// remove them, and give a replaced node a new address). Run with the gateway stopped,
    /// `--config` naming its config. Nothing moves: new writes use the new layout, earlier
    /// objects are found where they are.
    Apply {
        /// The new layout file (TOML), epoch one past the current.
        #[arg(long)]
        file: PathBuf,
        /// Where to write each new (or replaced) node's directory, to copy to its host.
        #[arg(long)]
        out: PathBuf,
        /// A node of the current layout that is lost (its server and disks; after a disaster,
        /// the home node): a directory is written for an empty replacement, which may listen
        /// at a new address in the new layout. `exclave heal --wait` refills it. Repeat for
        /// several.
        #[arg(long = "replace-node", value_name = "NODE_ID")]
        replace: Vec<u32>,
    },
}

/// Writes the marker of disk `disk` of the node `config` describes, into an empty directory.
fn disk_init(config: &std::path::Path, disk: u32) -> anyhow::Result<PathBuf> {
    let c = exclave::config::read_daemon(config)?;
    let Some(node) = &c.node else {
        anyhow::bail!("{}: no [node] section", config.display());
    };
    let Some(d) = node.disks.iter().find(|d| d.id == disk) else {
        let ids: Vec<u32> = node.disks.iter().map(|d| d.id).collect();
        anyhow::bail!("{}: no disk {disk} (disks: {ids:?})", config.display());
    };
    if let Ok(mut entries) = std::fs::read_dir(&d.path)
        && entries.next().is_some()
    {
        anyhow::bail!(
            "{} is not empty: `disk init` only prepares an empty directory (exclave never \
             formats one that holds data)",
            d.path.display()
        );
    }
    std::fs::create_dir_all(&d.path).with_context(|| format!("creating {}", d.path.display()))?;
    exclave::store::init_disk(
        &d.path,
        exclave::core::ids::NodeId(node.id),
        exclave::core::ids::DiskId(d.id),
    )?;
    Ok(d.path.clone())
}

fn key_command(admin: &admin::Admin, k: &KeyCommand, json: bool) -> anyhow::Result<()> {
    match k {
        KeyCommand::Create { name } => access::key_create(admin, name, json),
        KeyCommand::List => access::key_list(admin, json),
        KeyCommand::Info { name } => access::key_info(admin, name, json),
        KeyCommand::Delete { name } => access::key_delete(admin, name, json),
        KeyCommand::RotateSecret { name } => access::key_rotate(admin, name, json),
    }
}

fn bucket_command(admin: &admin::Admin, b: &BucketCommand, json: bool) -> anyhow::Result<()> {
    match b {
        BucketCommand::Allow {
            key,
            bucket,
            rights,
        } => access::grant(admin, key, bucket, rights.rights(), true, json),
        BucketCommand::Deny {
            key,
            bucket,
            rights,
        } => access::grant(admin, key, bucket, rights.rights(), false, json),
        BucketCommand::List => access::bucket_list(admin, json),
        BucketCommand::Info { bucket } => access::bucket_info(admin, bucket, json),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Init {
            dir,
            sites,
            k,
            m,
            survive,
            bind,
            base_port,
            node_ports,
            s3_port,
            admin_port,
            disks_per_node,
            s3_names,
            s3_cert,
            s3_key,
            s3_plain_http,
        } => {
            let s3 = match (s3_plain_http, s3_cert, s3_key) {
                (true, _, _) => exclave::ops::init::S3Transport::PlainHttp,
                (false, Some(cert), Some(key)) => {
                    exclave::ops::init::S3Transport::OwnTls { cert, key }
                }
                _ => exclave::ops::init::S3Transport::Tls { names: s3_names },
            };
            let options = exclave::ops::init::InitOptions {
                dir,
                sites,
                k,
                m,
                survive_foreign_losses: survive,
                bind,
                base_port,
                s3_port,
                disks_per_node,
                disk_capacity: 1 << 40,
                node_ports,
                admin_port: admin_port.unwrap_or(0),
                s3,
            };
            let done = exclave::ops::init::init(&options).context("exclave init")?;
            init::print(&options, &done, cli.json);
            Ok(ExitCode::SUCCESS)
        }
        Command::Status
        | Command::Scrub
        | Command::Heal { .. }
        | Command::Gc { .. }
        | Command::Lifecycle
        | Command::Census
        | Command::Workers => {
            let Some(config) = &cli.config else {
                anyhow::bail!(
                    "give the gateway's config: exclave --config PATH/gateway/gateway.toml ..."
                );
            };
            let admin = admin::Admin::from_config(config)?;
            let ok = match &cli.command {
                Command::Status => admin::status(&admin, cli.json)?,
                Command::Scrub => admin::scrub(&admin, cli.json)?,
                Command::Heal {
                    bucket,
                    wait,
                    timeout,
                } => admin::heal(
                    &admin,
                    bucket.as_deref(),
                    *wait,
                    std::time::Duration::from_secs(*timeout),
                    cli.json,
                )?,
                Command::Gc {
                    dry_run,
                    wait,
                    timeout,
                } => gc::gc(
                    &admin,
                    *dry_run,
                    *wait,
                    std::time::Duration::from_secs(*timeout),
                    cli.json,
                )?,
                Command::Lifecycle => gc::lifecycle(&admin, cli.json)?,
                Command::Census => gc::census(&admin, cli.json)?,
                _ => admin::workers(&admin, cli.json)?,
            };
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Recover {
            nodes,
            from_dirs,
            master_key_file,
            key_shares,
            out,
            export,
            s3_listen,
            admin_listen,
            no_verify,
            s3_plain_http,
        } => {
            let master = keys::master_key(master_key_file.as_deref(), 1, &key_shares)?;
            let ok = if from_dirs.is_empty() {
                let Some(out) = out else {
                    anyhow::bail!("give --out DIR for the recovered gateway");
                };
                let opts = exclave::ops::recover::live::LiveOptions {
                    nodes,
                    master,
                    out,
                    s3_listen,
                    admin_listen,
                    verify: !no_verify,
                    s3_plain_http,
                };
                recover::live(&opts, cli.json)?
            } else {
                let Some(export) = export else {
                    anyhow::bail!("give --export DIR for the exported objects");
                };
                let opts = exclave::ops::recover::offline::OfflineOptions {
                    dirs: from_dirs,
                    master,
                    export,
                };
                recover::offline(&opts, cli.json)?
            };
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Key(_) | Command::Bucket(_) => {
            let Some(config) = &cli.config else {
                anyhow::bail!(
                    "give the gateway's config: exclave --config PATH/gateway/gateway.toml ..."
                );
            };
            let admin = admin::Admin::from_config(config)?;
            match &cli.command {
                Command::Key(k) => key_command(&admin, k, cli.json)?,
                Command::Bucket(b) => bucket_command(&admin, b, cli.json)?,
                _ => {}
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Drill { ignore_site, keep } => {
            let Some(config) = &cli.config else {
                anyhow::bail!(
                    "give the gateway's config: exclave --config PATH/gateway.toml drill"
                );
            };
            let ok = drill::run(config, ignore_site.as_deref(), keep.as_deref(), cli.json)?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Keys(KeysCommand::Split {
            threshold,
            shares,
            out,
            master_key_file,
            key_id,
        }) => {
            let master = match (&master_key_file, &cli.config) {
                (Some(f), _) => keys::master_key(Some(f), key_id, &[])?,
                (None, Some(config)) => {
                    let c = exclave::config::read_daemon(config)?;
                    let Some(g) = c.gateway else {
                        anyhow::bail!("{}: no [gateway] section", config.display());
                    };
                    keys::master_key(Some(&g.master_key_file), g.master_key_id, &[])?
                }
                (None, None) => anyhow::bail!(
                    "give the gateway config (--config gateway.toml) or --master-key-file"
                ),
            };
            let files = keys::split(&master, threshold, shares)?;
            let paths = keys::write_shares(&out, &files)?;
            if cli.json {
                outln!(
                    "{}",
                    serde_json::json!({"master_key_id": master.id(),
                        "check_value": exclave::core::ids::hex(&master.check_value()),
                        "threshold": threshold, "files": paths})
                );
            } else {
                outln!(
                    "master key {} (check value {}) cut into {shares} shares; any {threshold} \
                     restore it:",
                    master.id(),
                    exclave::core::ids::hex(&master.check_value())
                );
                for p in &paths {
                    outln!("  {}", p.display());
                }
                outln!("give each file to one official, and remove it from this machine.");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys(KeysCommand::Rotate) => {
            let Some(config) = &cli.config else {
                anyhow::bail!(
                    "give the gateway's config: exclave --config PATH/gateway.toml keys rotate"
                );
            };
            let complete = keys::rotate(config, cli.json)?;
            Ok(if complete {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Keys(KeysCommand::Join { key_shares, out }) => {
            let master = keys::master_key(None, 0, &key_shares)?;
            if out.exists() {
                anyhow::bail!("{} exists: refusing to overwrite a key file", out.display());
            }
            exclave::sys::write_secret(
                &out,
                format!("{}\n", exclave::core::ids::hex(master.secret_bytes())).as_bytes(),
            )?;
            let kcv = exclave::core::ids::hex(&master.check_value());
            if cli.json {
                outln!(
                    "{}",
                    serde_json::json!({"master_key_id": master.id(), "check_value": kcv, "file": out})
                );
            } else {
                outln!(
                    "master key {} restored (check value {kcv}) into {}",
                    master.id(),
                    out.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Disk(DiskCommand::Init { disk }) => {
            let Some(config) = &cli.config else {
                anyhow::bail!(
                    "give the node's config: exclave --config PATH/node.toml disk init ..."
                );
            };
            let path = disk_init(config, disk)?;
            if cli.json {
                outln!("{}", serde_json::json!({"disk": disk, "path": path}));
            } else {
                outln!(
                    "disk {disk} at {} is ready; start the node, then run `exclave heal` at the \
                     gateway to refill it",
                    path.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Layout(LayoutCommand::Apply { file, out, replace }) => {
            let Some(config) = &cli.config else {
                anyhow::bail!(
                    "give the gateway's config: exclave --config PATH/gateway.toml layout apply ..."
                );
            };
            let complete = layout::apply(config, &file, &out, &replace, cli.json)?;
            Ok(if complete {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Layout(LayoutCommand::Check { file, survive }) => {
            let (layout, mut rule) = exclave::config::read_layout(&file)
                .with_context(|| format!("reading the layout {}", file.display()))?;
            if let Some(f) = survive {
                rule.survive_foreign_losses = f;
            }
            Ok(layout::check(&layout, rule, cli.json))
        }
    }
}
