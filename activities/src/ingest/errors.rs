//! One place that decides, for every error an activity can meet, whether Temporal retries it
//! and after how long. Messages never carry a signed URL, a secret or a raw provider id.

use std::time::Duration;

use temporalio_sdk::{ApplicationFailure, activities::ActivityError};

use rindle_workflows::activities::failure_types;

use crate::mux::MuxError;
use crate::storage::StorageError;
use crate::store::StoreError;

/// A typed, classified activity failure.
pub fn failure(
    type_name: &str,
    message: String,
    non_retryable: bool,
    delay: Option<Duration>,
) -> ActivityError {
    let builder = ApplicationFailure::builder(message)
        .type_name(type_name.to_owned())
        .non_retryable(non_retryable);
    let app = match delay {
        Some(d) => builder.next_retry_delay(d).build(),
        None => builder.build(),
    };
    ActivityError::application(app)
}

/// Input that can never succeed.
pub fn invalid_input(message: String) -> ActivityError {
    failure(failure_types::INVALID_INPUT, message, true, None)
}

/// Store errors: connectivity is retried, FSM violations are not.
pub fn from_store(e: StoreError) -> ActivityError {
    let retryable = e.is_retryable();
    let type_name = match &e {
        StoreError::InvalidTransition(_) => failure_types::INVALID_TRANSITION,
        _ if retryable => "StoreUnavailable",
        _ => "StoreError",
    };
    failure(type_name, e.to_string(), !retryable, None)
}

/// Storage signing errors: misconfiguration is final, the rest is retried.
pub fn from_storage(e: StorageError) -> ActivityError {
    let retryable = e.is_retryable();
    let type_name = if retryable {
        "StorageUnavailable"
    } else {
        failure_types::STORAGE_CONFIG
    };
    failure(type_name, e.to_string(), !retryable, None)
}

/// Mux errors by status: 429 waits for Retry-After, 5xx/408/transport retry, other 4xx are final.
pub fn from_mux(e: MuxError) -> ActivityError {
    failure(
        e.type_name(),
        e.to_string(),
        !e.is_retryable(),
        e.retry_after(),
    )
}
