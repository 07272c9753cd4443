//! `flash-migrate`: applies the PostgreSQL migrations (an Argo CD PreSync Job), then exits.
//! Migrations never run at pod boot or Lambda cold start.

use clap::Parser;
use flash_runtime::config::{TelemetryConfig, parse_from_env, parse_secret};
use flash_runtime::shutdown::{Threads, run_main};
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
    run_main(Threads::One, async {
        let pool = flash_adapter_postgres::lazy_pool(
            cli.database_url.expose_secret(),
            &flash_adapter_postgres::PoolSettings::default(),
        )
        .map_err(|e| format!("DATABASE_URL: {e}"))?;
        flash_adapter_postgres::migrate(&pool)
            .await
            .map_err(|e| format!("DATABASE_URL: {e}"))?;
        println!("migrations applied");
        Ok::<(), String>(())
    });
}
