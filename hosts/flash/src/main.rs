//! `flash`: the Flash Tickets command. `flash up` (what `cargo run --release` runs) starts the
//! whole system in one process on the embedded default: in-memory adapters, an in-process bus
//! and pay worker, the background tasks, and demo data.

use flash::up;

use clap::{CommandFactory, Parser, Subcommand};
use flash_runtime::config::parse_command_from_env;

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

fn main() {
    // `flash rehearse …` has its own options and none of `flash up`'s.
    if std::env::args_os().nth(1).is_some_and(|a| a == "rehearse") {
        std::process::exit(flash_rehearse::main_with_args(std::env::args_os().skip(1)));
    }
    // `flash up --port 9000` and `flash --port 9000` both work; the embedded default promotes
    // often and pays fast so a walk-through takes seconds.
    let cmd = Cli::command()
        .mut_args(|a| a.global(true))
        .mut_arg("promotion_interval", |a| a.default_value("200"))
        .mut_arg("processing_min", |a| a.default_value("200"))
        .mut_arg("processing_max", |a| a.default_value("800"));
    let cli: Cli = parse_command_from_env(cmd);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = match cli.command.unwrap_or(Command::Up) {
        Command::Up => runtime.block_on(up::run(cli.up)),
        Command::Rehearse => std::process::exit(flash_rehearse::main_with_args(["rehearse"])),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
