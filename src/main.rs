//! `exclaved`: args -> config -> telemetry -> roles -> shutdown. Nothing else lives here.

use std::io::{IsTerminal, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use exclave::config::{DaemonConfig, read_daemon};
use exclave::core::ids::{DiskId, NodeId};
use exclave::net::{Identity, Role, endpoint};
use exclave::store::Store;
use tokio::sync::watch;

/// The exclave daemon: gateway and node roles.
#[derive(Debug, Parser)]
#[command(name = "exclaved", version, about)]
struct Args {
    /// Config file naming the roles to run.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a config file and its secrets and certificates, then exit.
    Check,
    /// Run a gateway and local sites in this process (set up on first start, reused after).
    Dev {
        /// The cluster's directory.
        #[arg(long, default_value = "./exclave-dev")]
        dir: PathBuf,
        /// S3 listen address (port 0 picks a free port, printed at start).
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: std::net::SocketAddr,
        /// Number of local sites (first start only).
        #[arg(long, default_value_t = 5)]
        sites: usize,
        /// Data shards per stripe (first start only).
        #[arg(long, default_value_t = 3)]
        k: usize,
        /// Parity shards per stripe (first start only).
        #[arg(long, default_value_t = 2)]
        m: usize,
        /// Serve S3 over TLS only, with a certificate from the cluster's own CA (the banner
        /// names the CA bundle clients pass). First start only.
        #[arg(long)]
        tls: bool,
    },
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("exclaved: cannot start the runtime: {e}");
            None
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Command::Dev {
        dir,
        listen,
        sites,
        k,
        m,
        tls,
    }) = args.command
    {
        let opts = exclave::ops::dev::DevOptions {
            dir,
            listen,
            sites,
            k,
            m,
            tls,
        };
        telemetry("info", None);
        let Some(rt) = runtime() else {
            return ExitCode::FAILURE;
        };
        return match rt.block_on(dev(opts)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("exclaved dev: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let Some(path) = args.config else {
        eprintln!("exclaved: give --config FILE (see `exclaved --help`)");
        return ExitCode::from(2);
    };
    let config = match read_daemon(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("exclaved: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry(&config.log.level, config.log.format.as_deref());
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    let check_only = matches!(args.command, Some(Command::Check));
    match runtime.block_on(run(config, check_only)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("exclaved: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr: `RUST_LOG` or `level`; JSON unless stderr is a terminal (or `format`
/// says). s3s's own logs are off at every level: at debug they print request headers,
/// signatures included, and at error every 404. Each request's outcome is logged by the
/// gateway instead (docs/operations.md, "Logs").
fn telemetry(level: &str, format: Option<&str>) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let filter = match "s3s=off".parse() {
        Ok(d) => filter.add_directive(d),
        Err(_) => filter,
    };
    let json = match format {
        Some("json") => true,
        Some("human") => false,
        _ => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn dev(o: exclave::ops::dev::DevOptions) -> anyhow::Result<()> {
    let cluster = exclave::ops::dev::prepare(&o)?;
    if let Some(n) = &cluster.notice {
        eprintln!("exclaved dev: {n}");
    }
    if cluster.created {
        tracing::info!(dir = %o.dir.display(), "set up a new dev cluster");
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    for path in &cluster.node_configs {
        let config = read_daemon(path)?;
        if let Some(t) = start_node(&config, false, stop_rx.clone()).await? {
            tasks.push(t);
        }
    }
    let config = read_daemon(&cluster.gateway_config)?;
    let (task, endpoint) = start_gateway(&config, Some(o.listen), stop_rx.clone()).await?;
    tasks.push(task);
    let admin = config.gateway.as_ref().and_then(|g| g.admin_listen);
    // For a person: a stdout whose reader went away is no reason to stop serving (println!
    // would panic on the broken pipe and take the whole cluster down).
    let _ = writeln!(
        std::io::stdout(),
        "{}",
        exclave::ops::dev::banner(endpoint, admin, &cluster, &o.dir, &cli_path())
    );
    serve_until_signal(stop_tx, stop_rx, tasks).await;
    Ok(())
}

/// The admin CLI built beside this binary, when it is there; else its name.
fn cli_path() -> PathBuf {
    std::env::current_exe()
        .ok()
        .map(|p| p.with_file_name("exclave"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("exclave"))
}

fn identity(config: &DaemonConfig) -> anyhow::Result<Identity> {
    let tls = &config.tls;
    Identity::load(&tls.ca_file, &tls.cert_file, &tls.key_file)
        .with_context(|| format!("loading the identity named in {}", config.path.display()))
}

type Task = tokio::task::JoinHandle<()>;

async fn start_node(
    config: &DaemonConfig,
    check_only: bool,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Option<Task>> {
    let Some(node) = &config.node else {
        return Ok(None);
    };
    let identity = identity(config)?;
    if identity.role() != Role::Node {
        bail!(
            "{}: the node role needs a node certificate, but {} is a {:?} certificate",
            config.path.display(),
            config.tls.cert_file.display(),
            identity.role()
        );
    }
    let disks: Vec<(DiskId, PathBuf)> = node
        .disks
        .iter()
        .map(|d| (DiskId(d.id), d.path.clone()))
        .collect();
    let (state_dir, cache) = (node.state_dir.clone(), node.db_cache_bytes);
    let store = tokio::task::spawn_blocking(move || Store::open(&state_dir, &disks, cache))
        .await?
        .with_context(|| format!("opening the node's storage ({})", config.path.display()))?;
    if check_only {
        println!(
            "node {} at {}: config, identity and disks are in order",
            node.id, node.site
        );
        return Ok(None);
    }
    let ep = endpoint::endpoint(node.listen, &identity, &config.transport, true)
        .with_context(|| format!("listening on {}", node.listen))?;
    let n = Arc::new(exclave::node::Node {
        id: NodeId(node.id),
        site: node.site.clone(),
        store: Arc::new(store),
        metrics: exclave::metrics::NodeMetrics::new(),
        cluster_record_file: node.cluster_record_file.clone(),
        workers: exclave::worker::Workers::default(),
    });
    let schedule = exclave::node::ScrubSchedule {
        interval: node.scrub_interval,
        bytes_per_sec: node.scrub_bytes_per_sec,
    };
    if let Some((addr, token_file)) = &node.admin {
        let addr = *addr;
        let token = exclave::admin::read_token(token_file)?;
        let listener = bind_tcp(addr)
            .with_context(|| format!("listening for the node admin API on {addr}"))?;
        tokio::spawn(exclave::node::serve_admin(
            n.clone(),
            token,
            listener,
            stop.clone(),
        ));
    }
    exclave::node::start_workers(&n, schedule, &stop);
    Ok(Some(tokio::spawn(exclave::node::serve(n, ep, stop))))
}

async fn start_gateway(
    config: &DaemonConfig,
    listen: Option<std::net::SocketAddr>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<(Task, std::net::SocketAddr)> {
    let identity = identity(config)?;
    if identity.role() != Role::Gateway {
        bail!(
            "{}: the gateway role needs a gateway certificate, but {} is a {:?} certificate",
            config.path.display(),
            config.tls.cert_file.display(),
            identity.role()
        );
    }
    let opened = exclave::gateway::Gateway::open(config, &identity).await?;
    let addr = listen.unwrap_or(opened.listen);
    let listener = bind_tcp(addr).with_context(|| format!("listening for S3 on {addr}"))?;
    let bound = listener.local_addr()?;
    tracing::info!(%bound, "S3 gateway listening");
    opened.gateway.start_workers(&stop);
    if let Some((addr, token)) = opened.admin.clone() {
        let admin =
            bind_tcp(addr).with_context(|| format!("listening for the admin API on {addr}"))?;
        tracing::info!(%addr, "admin API listening");
        tokio::spawn(exclave::gateway::serve_admin(
            opened.gateway.clone(),
            token.0,
            admin,
            stop.clone(),
        ));
    }
    if let Some(tls) = opened.front.tls.clone() {
        tracing::info!(cert = %tls.cert_file().display(), "S3 served over TLS");
        tokio::spawn(reload_on_hangup(tls, stop.clone()));
    }
    let state_lock = opened.state_lock;
    let serving =
        exclave::gateway::serve(opened.gateway, opened.keys, opened.front, listener, stop);
    let task = tokio::spawn(async move {
        // Held until the gateway stops serving: offline tools wait for it.
        let _state_lock = state_lock;
        serving.await;
    });
    Ok((task, bound))
}

/// A listening socket at `addr`: the one systemd (or a test) handed over for it, or a new one.
fn bind_tcp(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::from_std(exclave::sys::listen::tcp(addr)?)
}

async fn run(config: DaemonConfig, check_only: bool) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    if let Some(t) = start_node(&config, check_only, stop_rx.clone()).await? {
        tasks.push(t);
    }
    if config.gateway.is_some() {
        if check_only {
            let identity = identity(&config)?;
            let _ = exclave::gateway::Gateway::open(&config, &identity).await?;
            println!("gateway: config, keys, layout and identity are in order");
        } else {
            let (task, _) = start_gateway(&config, None, stop_rx.clone()).await?;
            tasks.push(task);
        }
    }
    if check_only {
        return Ok(());
    }

    serve_until_signal(stop_tx, stop_rx, tasks).await;
    Ok(())
}

/// The roles are serving: tell systemd, ping its watchdog, and on SIGTERM/SIGINT tell it we
/// stop, stop every task and wait for them.
async fn serve_until_signal(
    stop_tx: watch::Sender<bool>,
    stop_rx: watch::Receiver<bool>,
    tasks: Vec<Task>,
) {
    let notifier = exclave::notify::Notifier::from_env().map(Arc::new);
    if let Some(n) = &notifier {
        n.notify("READY=1");
        if let Some(every) = exclave::notify::Notifier::watchdog_interval() {
            tokio::spawn(exclave::notify::watchdog(n.clone(), every, stop_rx));
        }
    }
    shutdown_signal().await;
    tracing::info!("shutting down");
    if let Some(n) = &notifier {
        n.notify("STOPPING=1");
    }
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
}

/// On SIGHUP, reads the S3 endpoint's certificate and key again (connections stay open).
async fn reload_on_hangup(tls: Arc<exclave::gateway::S3Tls>, mut stop: watch::Receiver<bool>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "no SIGHUP handler: the S3 certificate is read at start only");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = hup.recv() => match tls.reload() {
                Ok(()) => tracing::info!(cert = %tls.cert_file().display(), "S3 certificate reloaded"),
                Err(e) => tracing::error!(error = %e, "S3 certificate not reloaded; the old one stays"),
            },
            _ = stop.changed() => return,
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
