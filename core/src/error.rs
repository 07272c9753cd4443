//! Error classification: every error is classified once, then rendered per transport.

/// What kind of failure an error is; transports map kinds, never individual errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request is malformed or breaks a business rule the caller can fix (400).
    Invalid,
    /// No or bad credentials (401).
    Unauthorized,
    /// Authenticated but not allowed (403).
    Forbidden,
    NotFound,
    /// The request conflicts with the current state (409 / 422).
    Conflict,
    /// Business refusal for lack of stock (400 in the legacy API).
    SoldOut,
    RateLimited,
    /// A dependency is down or timed out: retry later (503).
    Unavailable,
    /// A bug or an unexpected state (500); its text is never shown to clients.
    Internal,
}

/// Implemented by every handler error.
pub trait Classify {
    fn kind(&self) -> ErrorKind;
    /// A stable snake_case code for clients and metrics.
    fn code(&self) -> &'static str;
    /// The text shown to clients (legacy wording where one exists).
    fn public_message(&self) -> String;
    /// Field-level messages, rendered as the legacy `message` array.
    fn field_messages(&self) -> Option<Vec<String>> {
        None
    }
    /// For [`ErrorKind::RateLimited`]: how long to wait.
    fn retry_after_ms(&self) -> Option<u64> {
        None
    }
    /// Use 422 instead of 409 for a conflict (idempotency-key misuse).
    fn unprocessable(&self) -> bool {
        false
    }
}

/// Failures of a store or bus adapter, translated at the adapter boundary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was hit (for example a duplicate login name).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The backend is unreachable, overloaded or timed out.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Anything else: corrupt data, a bug.
    #[error("internal: {0}")]
    Internal(String),
}

impl StoreError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::Conflict(_) => ErrorKind::Conflict,
            StoreError::Unavailable(_) => ErrorKind::Unavailable,
            StoreError::Internal(_) => ErrorKind::Internal,
        }
    }
}
