//! Settings of the SQS bus and the queue-name rules.

use std::time::Duration;

/// Deliveries of one message before it is dead-lettered (`BUS_MAX_ATTEMPTS`, SPEC §7).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// Long-poll wait of a receive (SQS's maximum).
pub const DEFAULT_WAIT: Duration = Duration::from_secs(20);
/// Visibility timeout of the queues this adapter creates.
pub const DEFAULT_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(30);

/// An unusable setting; the message names the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub reason: String,
}

/// Settings of the SQS bus. Credentials and region come from the AWS environment (the Lambda
/// role, `AWS_REGION`, `AWS_ACCESS_KEY_ID`…), read by `aws-config`.
#[derive(Debug, Clone)]
pub struct SqsConfig {
    /// Endpoint override (`SQS_ENDPOINT_URL`), for a local SQS such as moto; unset in AWS.
    pub endpoint_url: Option<String>,
    /// Deliveries of a message before a `Retry` dead-letters it instead (at least 1).
    pub max_attempts: u32,
    /// Long-poll wait of [`SqsConsumer`](crate::SqsConsumer) receives (at most 20 s).
    pub wait: Duration,
    /// Create missing queues with their dead-letter queue and redrive policy
    /// (`SQS_CREATE_QUEUES`; local runs). In AWS the SAM template owns the queues.
    pub create_queues: bool,
    /// Visibility timeout of created queues.
    pub visibility_timeout: Duration,
}

impl Default for SqsConfig {
    fn default() -> Self {
        SqsConfig {
            endpoint_url: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            wait: DEFAULT_WAIT,
            create_queues: false,
            visibility_timeout: DEFAULT_VISIBILITY_TIMEOUT,
        }
    }
}

impl SqsConfig {
    pub fn with_endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint_url = Some(url.into());
        self
    }

    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    pub fn with_wait(mut self, wait: Duration) -> Self {
        self.wait = wait.min(DEFAULT_WAIT);
        self
    }

    pub fn with_create_queues(mut self, create: bool) -> Self {
        self.create_queues = create;
        self
    }

    /// Checks what the SDK would only refuse at the first call.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.endpoint_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError {
                variable: "SQS_ENDPOINT_URL",
                reason: format!("'{url}' is not an http:// or https:// URL"),
            });
        }
        if self.max_attempts == 0 {
            return Err(ConfigError {
                variable: "BUS_MAX_ATTEMPTS",
                reason: "must be at least 1".into(),
            });
        }
        Ok(())
    }
}

/// Suffix of the dead-letter queues this adapter creates.
pub const DLQ_SUFFIX: &str = "-dlq";

/// The dead-letter queue this adapter creates for `queue`.
pub fn dlq_name(queue: &str) -> String {
    format!("{queue}{DLQ_SUFFIX}")
}

/// An SQS standard queue name that leaves room for the `-dlq` suffix: 1 to 76 characters of
/// `[A-Za-z0-9_-]` (SQS allows 80 and no dots, so RabbitMQ's `payments_request.dlq` style is out).
pub fn validate_queue_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 76 {
        return Err(format!(
            "SQS queue name '{name}' must be 1 to 76 characters (80 with '-dlq')"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "SQS queue name '{name}' may only contain letters, digits, '_' and '-'"
        ));
    }
    Ok(())
}

/// The queue name at the end of a queue ARN (`arn:aws:sqs:eu-west-1:123456789012:payments_request`).
pub fn queue_name_from_arn(arn: &str) -> Option<&str> {
    let name = arn.rsplit(':').next()?;
    (arn.starts_with("arn:") && !name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_follow_the_sqs_rules() {
        assert!(validate_queue_name("payments_request").is_ok());
        assert!(validate_queue_name("flash-prod-payments_result").is_ok());
        assert!(validate_queue_name("payments.request").is_err());
        assert!(validate_queue_name("").is_err());
        assert!(validate_queue_name(&"q".repeat(77)).is_err());
        assert_eq!(dlq_name("payments_request"), "payments_request-dlq");
    }

    #[test]
    fn queue_name_comes_from_the_end_of_the_arn() {
        assert_eq!(
            queue_name_from_arn("arn:aws:sqs:eu-west-1:123456789012:payments_request"),
            Some("payments_request")
        );
        assert_eq!(queue_name_from_arn("payments_request"), None);
        assert_eq!(queue_name_from_arn("arn:aws:sqs:eu-west-1:1:"), None);
    }

    #[test]
    fn bad_settings_name_their_variable() {
        let e = SqsConfig::default()
            .with_endpoint("localhost:5000")
            .validate()
            .unwrap_err();
        assert_eq!(e.variable, "SQS_ENDPOINT_URL");
        assert!(SqsConfig::default().validate().is_ok());
    }
}
