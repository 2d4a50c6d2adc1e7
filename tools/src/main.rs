//! `exclave`: the admin CLI.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

mod init;
mod layout;

/// Administer an exclave cluster.
#[derive(Debug, Parser)]
#[command(name = "exclave", version, about)]
struct Cli {
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
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
        /// S3 port of the gateway.
        #[arg(long, default_value_t = 9000)]
        s3_port: u16,
        /// Data directories per node.
        #[arg(long, default_value_t = 1)]
        disks_per_node: u32,
    },
    /// Inspect and check cluster layouts.
    #[command(subcommand)]
    Layout(LayoutCommand),
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
            s3_port,
            disks_per_node,
        } => {
            let options = exclave::setup::InitOptions {
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
                node_ports: Vec::new(),
            };
            let done = exclave::setup::init(&options).context("exclave init")?;
            init::print(&options, &done, cli.json);
            Ok(ExitCode::SUCCESS)
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
