//! `exclave`: the admin CLI.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

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
