//! `flash`: the Flash Tickets command. `flash up` (what `cargo run --release` runs) starts the
//! whole system in one process on the embedded default: in-memory adapters, an in-process bus
//! and pay worker, the background tasks, and demo data.

use flash::up;

use clap::{CommandFactory, Parser, Subcommand};
use flash_runtime::config::parse_command_from_env;
use flash_runtime::shutdown::{Threads, run_main};
use std::ffi::OsString;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "flash",
    version,
    about = "Flash Tickets: a flash-sale ticketing back end",
    long_about = "Flash Tickets: a flash-sale ticketing back end.\n\nWithout a subcommand, `flash` runs `flash up`. Every option can also be set with the environment variable shown in brackets."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    up: up::UpConfig,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole system in one process on 127.0.0.1:8080 (the default).
    Up,
    /// Rehearse a sale against a running deployment and audit it (`flash rehearse --help`).
    Rehearse,
}

/// `flash rehearse …` runs the `flash-rehearse` binary beside this one (or on `PATH`) with the
/// remaining arguments: the rehearsal tool, its PostgreSQL and Socket.IO clients included, is not
/// linked into the server.
fn rehearse(args: impl IntoIterator<Item = OsString>) -> ! {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(REHEARSE_BIN)))
        .filter(|p| p.is_file());
    let program = beside.map_or_else(|| OsString::from(REHEARSE_BIN), PathBuf::into_os_string);
    match std::process::Command::new(&program).args(args).status() {
        Ok(status) => std::process::exit(status.code().unwrap_or(1)),
        Err(e) => {
            eprintln!(
                "error: cannot run {}: {e}; build it with `cargo build --release -p flash-rehearse`",
                program.to_string_lossy()
            );
            std::process::exit(127);
        }
    }
}

const REHEARSE_BIN: &str = "flash-rehearse";

fn main() {
    // `flash rehearse …` has its own options and none of `flash up`'s.
    if std::env::args_os().nth(1).is_some_and(|a| a == "rehearse") {
        rehearse(std::env::args_os().skip(2));
    }
    // `flash up --port 9000` and `flash --port 9000` both work; the embedded default promotes
    // often and pays fast so a walk-through takes seconds.
    let cmd = Cli::command()
        .mut_args(|a| a.global(true))
        .mut_arg("promotion_interval", |a| a.default_value("200"))
        .mut_arg("min_latency", |a| a.default_value("200"))
        .mut_arg("max_latency", |a| a.default_value("800"));
    let cli: Cli = parse_command_from_env(cmd);
    match cli.command.unwrap_or(Command::Up) {
        Command::Up => run_main(Threads::PerCore, up::run(cli.up)),
        Command::Rehearse => rehearse(std::iter::empty()),
    }
}
