//! `flash-migrate`: applies the PostgreSQL migrations (an Argo CD PreSync Job), then exits.
//! Migrations never run at pod boot or Lambda cold start.

use clap::Parser;
use flash_runtime::config::{TelemetryConfig, parse_from_env, parse_secret};
use secrecy::{ExposeSecret, SecretString};

#[derive(Debug, Parser)]
#[command(
    name = "flash-migrate",
    version,
    about = "Apply the Flash Tickets database migrations"
)]
struct Cli {
    /// PostgreSQL URL.
    #[arg(long = "database-url", env = "DATABASE_URL", value_name = "DATABASE_URL", value_parser = parse_secret)]
    database_url: SecretString,
    #[command(flatten)]
    telemetry: TelemetryConfig,
}

fn main() {
    let cli: Cli = parse_from_env();
    flash_runtime::telemetry::init(&cli.telemetry);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(async {
        let pool = flash_adapter_postgres::lazy_pool(
            cli.database_url.expose_secret(),
            &flash_adapter_postgres::PoolSettings::default(),
        )?;
        flash_adapter_postgres::migrate(&pool).await
    });
    match result {
        Ok(()) => println!("migrations applied"),
        Err(e) => {
            eprintln!("error: DATABASE_URL: {e}");
            std::process::exit(1);
        }
    }
}
