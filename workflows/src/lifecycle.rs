//! Pure decisions of the provider lifecycle after `processing`, shared by the workflow (for
//! signals and polls) and the webhook endpoint (for events whose ingest no longer runs).
//!
//! Duplicate, late and out-of-order events are harmless: an event that would keep the row
//! where it is, or move it back along the lifecycle, or that is older than the last applied
//! event, is acknowledged and ignored — never an FSM error.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rindle_proto::{ProviderAssetState, ProviderEvent};

use crate::fsm;

/// What Mux reports about an asset, by webhook type or by polling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderReport {
    /// `video.asset.created`, or status `preparing`.
    Preparing,
    /// `video.asset.ready`, or status `ready`.
    Ready,
    /// `video.asset.errored`, or status `errored`.
    Errored,
    /// `video.asset.deleted`, or a 404 when polling.
    Deleted,
    /// An event type we do not act on.
    Other,
}

impl ProviderReport {
    /// The report a Mux webhook type stands for.
    pub fn from_event_type(event_type: &str) -> Self {
        match event_type {
            "video.asset.created" => Self::Preparing,
            "video.asset.ready" => Self::Ready,
            "video.asset.errored" => Self::Errored,
            "video.asset.deleted" => Self::Deleted,
            _ => Self::Other,
        }
    }

    /// The row state the report moves the row to (`None`: no state change).
    pub fn target(self) -> Option<ProviderAssetState> {
        match self {
            Self::Ready => Some(ProviderAssetState::Ready),
            Self::Errored => Some(ProviderAssetState::Errored),
            Self::Deleted => Some(ProviderAssetState::Deleted),
            Self::Preparing | Self::Other => None,
        }
    }
}

/// Why an event was acknowledged without a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// The event changes nothing (`video.asset.created`, types we do not act on).
    NoStateChange,
    /// The row is already in (or past) the state the event asks for.
    AlreadyThere,
    /// Older than the last event applied to the row.
    OutOfOrder,
    /// The FSM has no such edge from the current state (e.g. `deleted → ready`).
    NotAllowed,
}

impl Ignored {
    /// Atom-like name for logs and telemetry.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoStateChange => "no_state_change",
            Self::AlreadyThere => "already_there",
            Self::OutOfOrder => "out_of_order",
            Self::NotAllowed => "not_allowed",
        }
    }
}

/// Apply a transition, or ignore the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Move the row `from` → `to`.
    Apply {
        /// The row's state now.
        from: ProviderAssetState,
        /// Where the event takes it.
        to: ProviderAssetState,
    },
    /// Acknowledge and do nothing.
    Ignore(Ignored),
}

/// Decides what a provider report does to a row in `current` whose last applied event
/// happened at `last_event_at`; `occurred_at` is this report's time (if known).
pub fn decide(
    current: ProviderAssetState,
    report: ProviderReport,
    last_event_at: Option<DateTime<Utc>>,
    occurred_at: Option<DateTime<Utc>>,
) -> Decision {
    let Some(to) = report.target() else {
        return Decision::Ignore(Ignored::NoStateChange);
    };
    if let (Some(last), Some(at)) = (last_event_at, occurred_at)
        && at < last
    {
        return Decision::Ignore(Ignored::OutOfOrder);
    }
    if fsm::progress_rank(to) <= fsm::progress_rank(current) {
        return Decision::Ignore(Ignored::AlreadyThere);
    }
    match fsm::check(current, to) {
        Ok(()) => Decision::Apply { from: current, to },
        Err(_) => Decision::Ignore(Ignored::NotAllowed),
    }
}

/// Parses an event's `occurred_at` (RFC 3339); unparseable → `None` (order unknown).
pub fn occurred_at(event: &ProviderEvent) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(&event.occurred_at)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The `last_sync_error` an `errored` report records.
pub fn errored_message(messages: &[String]) -> String {
    if messages.is_empty() {
        "mux reported the asset errored".to_owned()
    } else {
        format!("mux errored: {}", messages.join("; "))
    }
}

/// Outcome of one poll of Mux while the row is `processing`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollVerdict {
    /// Mux still prepares the asset and the threshold is not reached: keep waiting.
    KeepWaiting,
    /// Mux says the asset is past `preparing` (or gone): apply that report.
    Resolved(ProviderReport),
    /// Mux still says `preparing` past the stuck threshold: mark the row errored.
    Stuck,
}

/// Stuck is decided only from what Mux says, never from age alone.
pub fn poll_verdict(
    report: ProviderReport,
    age: Duration,
    stuck_threshold: Duration,
) -> PollVerdict {
    match report {
        ProviderReport::Preparing | ProviderReport::Other if age >= stuck_threshold => {
            PollVerdict::Stuck
        }
        ProviderReport::Preparing | ProviderReport::Other => PollVerdict::KeepWaiting,
        resolved => PollVerdict::Resolved(resolved),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProviderAssetState::*;

    fn t(s: &str) -> Option<DateTime<Utc>> {
        Some(DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc))
    }

    #[test]
    fn ready_moves_a_processing_row_and_duplicates_are_ignored() {
        assert_eq!(
            decide(Processing, ProviderReport::Ready, None, None),
            Decision::Apply {
                from: Processing,
                to: Ready
            }
        );
        assert_eq!(
            decide(Ready, ProviderReport::Ready, None, None),
            Decision::Ignore(Ignored::AlreadyThere)
        );
    }

    #[test]
    fn created_never_changes_state() {
        for s in [Uploading, Processing, Ready, Errored] {
            assert_eq!(
                decide(s, ProviderReport::Preparing, None, None),
                Decision::Ignore(Ignored::NoStateChange)
            );
        }
    }

    #[test]
    fn late_events_are_ignored() {
        assert_eq!(
            decide(
                Processing,
                ProviderReport::Errored,
                t("2026-01-01T00:00:10Z"),
                t("2026-01-01T00:00:05Z")
            ),
            Decision::Ignore(Ignored::OutOfOrder)
        );
        // `ready` arriving after `deleted`.
        assert_eq!(
            decide(Deleted, ProviderReport::Ready, None, None),
            Decision::Ignore(Ignored::AlreadyThere)
        );
    }

    #[test]
    fn edges_the_fsm_forbids_are_ignored_not_errors() {
        assert_eq!(
            decide(Processing, ProviderReport::Deleted, None, None),
            Decision::Ignore(Ignored::NotAllowed)
        );
        assert_eq!(
            decide(Ready, ProviderReport::Deleted, None, None),
            Decision::Apply {
                from: Ready,
                to: Deleted
            }
        );
    }

    #[test]
    fn stuck_only_when_mux_still_says_preparing() {
        let h2 = Duration::from_secs(7200);
        assert_eq!(
            poll_verdict(ProviderReport::Preparing, h2, h2),
            PollVerdict::Stuck
        );
        assert_eq!(
            poll_verdict(ProviderReport::Preparing, h2 / 2, h2),
            PollVerdict::KeepWaiting
        );
        assert_eq!(
            poll_verdict(ProviderReport::Ready, h2 * 3, h2),
            PollVerdict::Resolved(ProviderReport::Ready)
        );
    }
}
