//! One test's isolated world on the real services of the machine: a fresh PostgreSQL database,
//! a Redis key prefix, its own SQS queues on a `moto_server` (a real SQS endpoint on loopback).
#![allow(dead_code, unused_imports)]

use flash_adapter_sqs::{SqsBus, SqsConfig};
use flash_lambda::{Function, Kind, LambdaConfig};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use flash_host_testkit::{PG, eventually, psql as psql_value};
use flash_host_testkit::{TestDatabase, world_vars};

pub struct World {
    pub vars: BTreeMap<String, String>,
    pub db: TestDatabase,
    pub sqs_endpoint: String,
}

impl World {
    /// A fresh world; `name` goes into the database name.
    pub async fn new(name: &str) -> World {
        let db = TestDatabase::create(&format!("lambda_{name}"));
        let pool = flash_adapter_postgres::lazy_pool(
            &db.url(),
            &flash_adapter_postgres::PoolSettings::default(),
        )
        .expect("pool");
        flash_adapter_postgres::migrate(&pool)
            .await
            .expect("migrations");
        pool.close().await;
        let sqs_endpoint = flash_testkit::moto::shared().endpoint.clone();
        let vars = world_vars(
            &db,
            [
                ("DATABASE_POOL_MAX", "5".into()),
                ("SQS_ENDPOINT_URL", sqs_endpoint.clone()),
                ("SQS_CREATE_QUEUES", "true".into()),
                ("BUS_MAX_ATTEMPTS", "3".into()),
            ],
        );
        World {
            vars,
            db,
            sqs_endpoint,
        }
    }

    pub fn set(&mut self, k: &str, v: &str) -> &mut Self {
        self.vars.insert(k.to_owned(), v.to_owned());
        self
    }

    pub fn request_queue(&self) -> &str {
        &self.vars["PAYMENT_REQUEST_QUEUE"]
    }

    pub fn result_queue(&self) -> &str {
        &self.vars["PAYMENT_RESULT_QUEUE"]
    }

    /// The functions' configuration from these variables, as a function would read it from its
    /// environment (every variable has the matching `--flag`), without touching this process's
    /// environment.
    pub fn config(&self) -> LambdaConfig {
        let args: Vec<String> = self
            .vars
            .iter()
            .filter(|(k, _)| k.as_str() != "RUST_LOG")
            .flat_map(|(k, v)| {
                [
                    format!("--{}", k.to_lowercase().replace('_', "-")),
                    v.clone(),
                ]
            })
            .collect();
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        flash_runtime::config::parse_args_ignoring_env(&refs).expect("valid test configuration")
    }

    /// A bus on the test SQS, as the functions see it.
    pub fn bus(&self) -> SqsBus {
        let config = SqsConfig::default()
            .with_endpoint(self.sqs_endpoint.clone())
            .with_max_attempts(self.vars["BUS_MAX_ATTEMPTS"].parse().unwrap())
            .with_wait(Duration::from_secs(1))
            .with_create_queues(true);
        SqsBus::local(config).expect("local SQS")
    }

    /// A function wired in this process on this world's services.
    pub fn function(&self, kind: Kind) -> Arc<Function> {
        Arc::new(
            Function::with_bus(kind, self.config(), self.bus(), Instant::now())
                .expect("function initialises"),
        )
    }
}

/// What Lambda's event source mapping does for an SQS-triggered function, on the test SQS:
/// receive up to ten messages, hand them to the function as one `SqsEvent`, delete those not
/// reported in `batchItemFailures`; the reported ones stay (their visibility is the function's).
pub struct EventSourceMapping {
    bus: SqsBus,
    pub queue: String,
}

impl EventSourceMapping {
    pub fn new(bus: SqsBus, queue: &str) -> Self {
        EventSourceMapping {
            bus,
            queue: queue.to_owned(),
        }
    }

    /// The event's `eventSourceARN` (moto's account and region).
    pub fn arn(&self) -> String {
        format!("arn:aws:sqs:us-east-1:123456789012:{}", self.queue)
    }

    /// One receive (long poll of `wait`); returns the event, or `None` when nothing came, along
    /// with the receipt handles by message id.
    pub async fn receive(
        &self,
        wait: Duration,
    ) -> Option<(serde_json::Value, BTreeMap<String, String>)> {
        use aws_sdk_sqs::types::MessageSystemAttributeName as Attr;
        let url = self.bus.queue_url(&self.queue).await.expect("queue URL");
        let out = self
            .bus
            .client()
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(wait.as_secs() as i32)
            .message_system_attribute_names(Attr::All)
            .message_attribute_names("All")
            .send()
            .await
            .expect("receive");
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return None;
        }
        let mut receipts = BTreeMap::new();
        let records: Vec<serde_json::Value> = messages
            .into_iter()
            .map(|m| {
                let id = m.message_id.clone().unwrap_or_default();
                receipts.insert(id.clone(), m.receipt_handle.clone().unwrap_or_default());
                let attributes: serde_json::Map<String, serde_json::Value> = m
                    .attributes
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k.as_str().to_owned(), serde_json::Value::String(v)))
                    .collect();
                let message_attributes: serde_json::Map<String, serde_json::Value> = m
                    .message_attributes
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| {
                        (
                            k,
                            serde_json::json!({
                                "stringValue": v.string_value,
                                "stringListValues": [],
                                "binaryListValues": [],
                                "dataType": v.data_type,
                            }),
                        )
                    })
                    .collect();
                serde_json::json!({
                    "messageId": id,
                    "receiptHandle": m.receipt_handle,
                    "body": m.body,
                    "attributes": attributes,
                    "messageAttributes": message_attributes,
                    "md5OfBody": m.md5_of_body,
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.arn(),
                    "awsRegion": "us-east-1",
                })
            })
            .collect();
        Some((serde_json::json!({ "Records": records }), receipts))
    }

    /// Deletes every received message the function did not report as failed; returns how many
    /// it reported.
    pub async fn settle(
        &self,
        receipts: &BTreeMap<String, String>,
        response: &serde_json::Value,
    ) -> usize {
        let failed: Vec<&str> = response["batchItemFailures"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| f["itemIdentifier"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        let url = self.bus.queue_url(&self.queue).await.expect("queue URL");
        for (id, receipt) in receipts {
            if !failed.contains(&id.as_str()) {
                self.bus
                    .client()
                    .delete_message()
                    .queue_url(&url)
                    .receipt_handle(receipt)
                    .send()
                    .await
                    .expect("delete");
            }
        }
        failed.len()
    }

    /// Messages waiting in `queue` (visible or not), per SQS.
    pub async fn depth(bus: &SqsBus, queue: &str) -> u64 {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let url = bus.queue_url(queue).await.expect("queue URL");
        let out = bus
            .client()
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("queue attributes");
        let attrs = out.attributes.unwrap_or_default();
        let n = |k: A| {
            attrs
                .get(&k)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        n(A::ApproximateNumberOfMessages) + n(A::ApproximateNumberOfMessagesNotVisible)
    }
}
