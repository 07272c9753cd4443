//! Measures confirmed publishes per second through `AmqpBus` against `RABBITMQ_URL`.
//!
//! `cargo run --release -p flash-adapter-rabbitmq --example publish_rate -- [N] [IN_FLIGHT]`
//! publishes N persistent messages (default 10000) with at most IN_FLIGHT (default 1000) awaiting
//! their confirms, then the same count one at a time for comparison (capped at 1000), on a fresh
//! queue that is deleted afterwards.

use flash_adapter_rabbitmq::{AmqpBus, AmqpConfig};
use flash_core::messages::Envelope;
use flash_core::ports::Bus;
use futures::StreamExt;
use std::time::Instant;

fn envelope(i: usize) -> Envelope {
    let id = format!("rate-{i}");
    Envelope {
        body: format!(r#"{{"requestId":"{id}","paymentId":"p","orderId":"o","userId":"u","amount":1000,"method":"MOCK"}}"#)
            .into_bytes(),
        correlation_id: id.clone(),
        message_id: id,
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(Ok(10_000), |a| a.parse())?;
    let in_flight: usize = args.next().map_or(Ok(1_000), |a| a.parse())?;
    let bus = AmqpBus::new(AmqpConfig::from_env()?);
    let queue = format!("flash-publish-rate-{}", uuid::Uuid::new_v4().simple());
    bus.publish(&queue, envelope(usize::MAX)).await?;

    let started = Instant::now();
    let failures = futures::stream::iter(0..n)
        .map(|i| {
            let bus = &bus;
            let queue = &queue;
            async move { bus.publish(queue, envelope(i)).await }
        })
        .buffer_unordered(in_flight.max(1))
        .filter(|r| std::future::ready(r.is_err()))
        .count()
        .await;
    let elapsed = started.elapsed();
    println!(
        "pipelined: {n} publishes, {in_flight} in flight, {failures} failed, {elapsed:?}: {:.0} msg/s",
        n as f64 / elapsed.as_secs_f64()
    );

    let serial = n.min(1_000);
    let started = Instant::now();
    for i in 0..serial {
        bus.publish(&queue, envelope(i)).await?;
    }
    let elapsed = started.elapsed();
    println!(
        "one at a time: {serial} publishes, {elapsed:?}: {:.0} msg/s",
        serial as f64 / elapsed.as_secs_f64()
    );

    bus.delete_topology(&queue).await?;
    bus.close().await;
    Ok(())
}
