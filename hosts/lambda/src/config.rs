//! The functions' configuration: the legacy variables of the pods (same names, same defaults)
//! plus the SQS settings, from the function's environment.

use clap::{Args, Parser};
use flash_adapter_sqs::SqsConfig;
use flash_runtime::config::{
    parse_bool, parse_millis, parse_positive_millis, parse_positive_usize,
};
use flash_wiring::AppConfig;
use std::time::Duration;

/// Where the bus is. Credentials and region come from the function's role and `AWS_REGION`.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "SQS")]
pub struct SqsSettings {
    /// Endpoint of a local SQS (moto, ElasticMQ) for development; unset in AWS.
    #[arg(long, env)]
    pub sqs_endpoint_url: Option<String>,
    /// Create missing queues with a dead-letter queue and redrive policy (local runs; in AWS the
    /// SAM template owns the queues and the role may not create any).
    #[arg(long, env, default_value = "false", action = clap::ArgAction::Set, value_parser = parse_bool)]
    pub sqs_create_queues: bool,
    /// Records of one SQS batch handled at once (the batch size is the event source mapping's).
    #[arg(long, env, default_value = "10", value_parser = parse_positive_usize)]
    pub sqs_batch_concurrency: usize,
}

/// The scheduled function's pace: the schedule fires once a minute, so one invocation keeps
/// sweeping for a window to bound how late a hold expires or a payment times out.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Sweeper")]
pub struct SweepSettings {
    /// How long one scheduled invocation keeps sweeping (0: one pass).
    #[arg(long, env, default_value = "0", value_parser = parse_millis)]
    pub sweep_window_ms: Duration,
    /// Pause between two passes within the window.
    #[arg(long, env, default_value = "5000", value_parser = parse_positive_millis)]
    pub sweep_every_ms: Duration,
}

/// Every option of every function (each uses what it needs).
#[derive(Debug, Clone, Args)]
pub struct LambdaConfig {
    #[command(flatten)]
    pub app: AppConfig,
    #[command(flatten)]
    pub sqs: SqsSettings,
    #[command(flatten)]
    pub sweep: SweepSettings,
}

#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    config: LambdaConfig,
}

impl LambdaConfig {
    /// Parses the function's environment; a bad value ends the process (Lambda reports an init
    /// error) with a message naming the variable.
    pub fn from_env(binary: &'static str) -> LambdaConfig {
        let cmd = <Cli as clap::CommandFactory>::command()
            .name(binary)
            .about(format!("Flash Tickets Lambda function {binary}"));
        let cli: Cli = flash_runtime::config::parse_command_from_env(cmd);
        cli.config
    }

    /// The SQS bus settings.
    pub fn sqs_config(&self) -> SqsConfig {
        let mut c = SqsConfig::default()
            .with_max_attempts(self.app.settings.payments.bus_max_attempts)
            .with_create_queues(self.sqs.sqs_create_queues);
        c.endpoint_url = self.sqs.sqs_endpoint_url.clone();
        c
    }
}
