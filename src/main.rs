//! `exclaved`: args -> config -> telemetry -> roles -> shutdown. Nothing else lives here.

use std::process::ExitCode;

const USAGE: &str = "\
exclaved: the exclave daemon (gateway and node roles)

usage:
  exclaved --version
  exclaved --help

The gateway and node roles and `exclaved dev` are not in this build yet; see README.md.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--version" | "-V") => {
            println!("exclaved {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("--help" | "-h") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
