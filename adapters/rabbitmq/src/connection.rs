//! Opening connections, publishing with a confirm, and translating lapin errors.

use crate::config::AmqpConfig;
use flash_core::StoreError;
use futures::{Stream, StreamExt};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::publisher_confirm::Confirmation;
use lapin::types::LongString;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ErrorKind, Event};
use std::time::Duration;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{debug, info, warn};

/// Bound on opening one connection (TCP, TLS, AMQP handshake): a broker that accepts sockets but
/// never answers must not hang a consumer forever.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens a connection named `name` (shown in the broker's connection list) whose I/O and
/// callbacks run on the current tokio runtime. Its events are logged until the returned guard is
/// dropped (with the connection's owner).
pub(crate) async fn open(
    config: &AmqpConfig,
    name: &str,
) -> Result<(Connection, DropGuard), StoreError> {
    let handle = tokio::runtime::Handle::try_current()
        .map_err(|_| StoreError::Internal("the RabbitMQ adapter needs a tokio runtime".into()))?;
    let properties = ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::default().with_handle(handle.clone()))
        .with_reactor(tokio_reactor_trait::Tokio::default().with_handle(handle.clone()))
        .with_connection_name(LongString::from(name));
    let connection = tokio::time::timeout(
        CONNECT_TIMEOUT,
        Connection::connect_uri(config.uri()?, properties),
    )
    .await
    .map_err(|_| {
        StoreError::Unavailable(format!(
            "RabbitMQ did not complete the connection within {CONNECT_TIMEOUT:?}"
        ))
    })?
    .map_err(|e| store_error("cannot connect to RabbitMQ", &e))?;
    let stop = CancellationToken::new();
    handle.spawn(log_events(
        name.to_owned(),
        connection.events_listener(),
        stop.clone(),
    ));
    Ok((connection, stop.drop_guard()))
}

/// Logs what happens to a connection that no operation would report: its loss (once; the next
/// operation reconnects) and the broker blocking publishers during a resource alarm.
async fn log_events(
    name: String,
    events: impl Stream<Item = Event> + Send + 'static,
    stop: CancellationToken,
) {
    let mut events = std::pin::pin!(events);
    loop {
        let event = tokio::select! {
            () = stop.cancelled() => return,
            event = events.next() => event,
        };
        // `Event` is non-exhaustive: anything new is only traced.
        match event {
            None => return,
            Some(Event::Error(e)) => {
                warn!(connection = %name, error = %e, "RabbitMQ connection lost")
            }
            Some(Event::ConnectionBlocked(reason)) => {
                warn!(connection = %name, reason = %reason, "RabbitMQ blocks publishing (resource alarm)");
            }
            Some(Event::ConnectionUnblocked) => {
                info!(connection = %name, "RabbitMQ unblocked publishing")
            }
            Some(other) => debug!(connection = %name, event = ?other, "RabbitMQ connection event"),
        }
    }
}

/// A channel in publisher-confirm mode.
pub(crate) async fn confirm_channel(connection: &Connection) -> Result<Channel, StoreError> {
    let channel = connection
        .create_channel()
        .await
        .map_err(|e| store_error("cannot open a channel", &e))?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| store_error("cannot enable publisher confirms", &e))?;
    Ok(channel)
}

/// What the broker said about one publish.
#[derive(Debug)]
pub(crate) enum Confirmed {
    /// Routed to a queue and taken responsibility for (persisted, for a durable queue).
    Ack,
    /// Unroutable: no queue of that name (returned because the publish is `mandatory`).
    Returned(String),
    /// The broker could not take the message (an internal error on its side).
    Nack,
}

/// Publishes persistently to `queue` through the default exchange and waits for this message's
/// confirm only, so concurrent callers keep many publishes in flight on one channel. `sent` runs
/// once the message has left for the broker.
pub(crate) async fn publish_confirmed(
    channel: &Channel,
    queue: &str,
    body: &[u8],
    properties: BasicProperties,
    sent: impl FnOnce(),
) -> lapin::Result<Confirmed> {
    let confirm = channel
        .basic_publish(
            "",
            queue,
            BasicPublishOptions {
                mandatory: true,
                immediate: false,
            },
            body,
            properties,
        )
        .await?;
    sent();
    Ok(match confirm.await? {
        Confirmation::Ack(None) => Confirmed::Ack,
        Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => {
            Confirmed::Returned(returned.reply_text.to_string())
        }
        // `NotRequested` only happens on a channel without confirms: never acknowledged.
        Confirmation::Nack(None) | Confirmation::NotRequested => Confirmed::Nack,
    })
}

fn soft_error(e: &lapin::Error) -> Option<&AMQPSoftError> {
    // lapin's `ErrorKind` is non-exhaustive; only protocol errors carry an AMQP reply code.
    if let ErrorKind::ProtocolError(amqp) = e.kind() {
        match amqp.kind() {
            AMQPErrorKind::Soft(soft) => Some(soft),
            AMQPErrorKind::Hard(_) => None,
        }
    } else {
        None
    }
}

/// `PRECONDITION_FAILED`: for a declaration, the queue exists with other arguments.
pub(crate) fn is_precondition_failed(e: &lapin::Error) -> bool {
    matches!(soft_error(e), Some(AMQPSoftError::PRECONDITIONFAILED))
}

/// `NOT_FOUND`: for a passive declaration, no such queue.
pub(crate) fn is_not_found(e: &lapin::Error) -> bool {
    matches!(soft_error(e), Some(AMQPSoftError::NOTFOUND))
}

/// Classifies a lapin error once, at the boundary. A lost or unusable connection (I/O, a closed
/// channel or connection, missed heartbeats, a forced close) is `Unavailable`; a refusal of what
/// was asked (access refused, precondition failed, not found) and anything lapin cannot recover
/// from is `Internal`, because retrying the same request would fail the same way.
pub(crate) fn store_error(what: &str, e: &lapin::Error) -> StoreError {
    let message = format!("{what}: {e}");
    if soft_error(e).is_some() || !e.can_be_recovered() {
        StoreError::Internal(message)
    } else {
        StoreError::Unavailable(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::protocol::{AMQPError, AMQPHardError};
    use std::sync::Arc;

    fn protocol(kind: AMQPErrorKind) -> lapin::Error {
        ErrorKind::ProtocolError(AMQPError::new(kind, "x".into())).into()
    }

    #[test]
    fn connection_trouble_is_unavailable_and_refusals_are_internal() {
        let io: lapin::Error = ErrorKind::IOError(Arc::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )))
        .into();
        assert!(matches!(store_error("x", &io), StoreError::Unavailable(_)));
        let forced = protocol(AMQPErrorKind::Hard(AMQPHardError::CONNECTIONFORCED));
        assert!(matches!(
            store_error("x", &forced),
            StoreError::Unavailable(_)
        ));
        let heartbeat: lapin::Error = ErrorKind::MissingHeartbeatError.into();
        assert!(matches!(
            store_error("x", &heartbeat),
            StoreError::Unavailable(_)
        ));

        let refused = protocol(AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED));
        assert!(matches!(
            store_error("x", &refused),
            StoreError::Internal(_)
        ));
        let precondition = protocol(AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED));
        assert!(is_precondition_failed(&precondition));
        assert!(!is_not_found(&precondition));
        assert!(is_not_found(&protocol(AMQPErrorKind::Soft(
            AMQPSoftError::NOTFOUND
        ))));
    }
}
