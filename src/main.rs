//! `exclaved`: args -> config -> telemetry -> roles -> shutdown. Nothing else lives here.

use std::io::IsTerminal;
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
}

fn main() -> ExitCode {
    let args = Args::parse();
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
    telemetry(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("exclaved: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
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

fn telemetry(config: &DaemonConfig) {
    let level = config
        .raw
        .log
        .level
        .clone()
        .unwrap_or_else(|| "info".into());
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let json = match config.raw.log.format.as_deref() {
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

async fn run(config: DaemonConfig, check_only: bool) -> anyhow::Result<()> {
    let tls = &config.raw.tls;
    let identity = Identity::load(&tls.ca_file, &tls.cert_file, &tls.key_file)
        .with_context(|| format!("loading the identity named in {}", config.path.display()))?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();

    if let Some(node) = &config.raw.node {
        if identity.role() != Role::Node {
            bail!(
                "{}: the node role needs a node certificate, but {} is a {:?} certificate",
                config.path.display(),
                tls.cert_file.display(),
                identity.role()
            );
        }
        let disks: Vec<(DiskId, PathBuf)> = node
            .disks
            .iter()
            .map(|d| (DiskId(d.id), d.path.clone()))
            .collect();
        let state_dir = node.state_dir.clone();
        let store = tokio::task::spawn_blocking(move || Store::open(&state_dir, &disks))
            .await?
            .with_context(|| format!("opening the node's storage ({})", config.path.display()))?;
        if check_only {
            println!(
                "node {} at {}: config, identity and disks are in order",
                node.id, node.site
            );
        } else {
            let ep = endpoint::endpoint(node.listen, &identity, &config.transport, true)
                .with_context(|| format!("listening on {}", node.listen))?;
            let n = Arc::new(exclave::node::Node {
                id: NodeId(node.id),
                site: node.site.clone(),
                store: Arc::new(store),
            });
            tasks.push(tokio::spawn(exclave::node::serve(n, ep, stop_rx.clone())));
        }
    }
    if config.raw.gateway.is_some() {
        bail!(
            "{}: the gateway role is not in this build yet (it arrives with the S3 gateway)",
            config.path.display()
        );
    }
    if check_only {
        return Ok(());
    }

    shutdown_signal().await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
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
