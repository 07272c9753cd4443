//! Translation of driver errors into `StoreError`, done once at the adapter boundary.

use flash_core::StoreError;

/// Classifies a driver error; `what` names the operation for the log line of the host.
pub(crate) fn db(what: &str, e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) => {
            if d.is_unique_violation() {
                return StoreError::Conflict(format!("{what}: {}", d.message()));
            }
            match d.code().as_deref().map(sqlstate_class) {
                Some(SqlState::Unavailable) => StoreError::Unavailable(format!("{what}: {e}")),
                Some(SqlState::Other) | None => StoreError::Internal(format!("{what}: {e}")),
            }
        }
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(format!("{what}: {e}")),
        _ => StoreError::Internal(format!("{what}: {e}")),
    }
}

enum SqlState {
    Unavailable,
    Other,
}

/// Server-side conditions that go away by themselves: the server is starting, shutting down or
/// out of connections, the connection broke, or a transaction lost a deadlock or serialization
/// race (retrying it is the documented remedy).
fn sqlstate_class(code: &str) -> SqlState {
    match code {
        "40001" | "40P01" | "53300" | "57P01" | "57P02" | "57P03" | "57014" => {
            SqlState::Unavailable
        }
        c if c.starts_with("08") => SqlState::Unavailable,
        _ => SqlState::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_failures_are_unavailable() {
        assert!(matches!(
            db("x", sqlx::Error::PoolTimedOut),
            StoreError::Unavailable(_)
        ));
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(matches!(
            db("x", sqlx::Error::Io(io)),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            db("x", sqlx::Error::RowNotFound),
            StoreError::Internal(_)
        ));
    }

    #[test]
    fn transient_server_states_are_unavailable() {
        for code in ["40P01", "40001", "57P01", "08006", "53300"] {
            assert!(
                matches!(sqlstate_class(code), SqlState::Unavailable),
                "{code}"
            );
        }
        for code in ["23503", "22003", "42P01"] {
            assert!(matches!(sqlstate_class(code), SqlState::Other), "{code}");
        }
    }
}
