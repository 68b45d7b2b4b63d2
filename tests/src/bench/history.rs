//! What the server recorded: each run's start and close time and history length (`describe`),
//! and the event types of one history (`fetch_history`).

use std::{collections::BTreeMap, time::Duration, time::SystemTime};

use futures::StreamExt as _;
use temporalio_client::{
    Client, UntypedWorkflow, WorkflowDescribeOptions, WorkflowExecutionStatus,
    WorkflowFetchHistoryOptions,
};
use temporalio_common::protos::temporal::api::{
    enums::v1::EventType, history::v1::history_event::Attributes,
};

/// One closed run as `describe` shows it.
#[derive(Debug, Clone, Copy)]
pub struct Described {
    /// When the run was created.
    pub start: SystemTime,
    /// When it closed.
    pub close: SystemTime,
    /// Events in its history.
    pub history_length: usize,
    /// Whether it closed as Completed.
    pub completed: bool,
}

/// Describes every workflow of `ids` (16 at a time), waiting up to 30 s for each to close.
pub async fn describe_closed(client: &Client, ids: &[String]) -> anyhow::Result<Vec<Described>> {
    let results: Vec<anyhow::Result<Described>> = futures::stream::iter(ids)
        .map(|id| describe_one(client, id))
        .buffer_unordered(16)
        .collect()
        .await;
    results.into_iter().collect()
}

async fn describe_one(client: &Client, id: &str) -> anyhow::Result<Described> {
    let handle = client.get_workflow_handle::<UntypedWorkflow>(id.to_owned());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let d = handle
            .describe(WorkflowDescribeOptions::default())
            .await
            .map_err(|e| anyhow::anyhow!("describe {id}: {e}"))?;
        match (d.status(), d.start_time(), d.close_time()) {
            (WorkflowExecutionStatus::Running, _, _) | (_, _, None) | (_, None, _) => {
                anyhow::ensure!(
                    tokio::time::Instant::now() < deadline,
                    "{id} did not close within 30 s"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (status, Some(start), Some(close)) => {
                return Ok(Described {
                    start,
                    close,
                    history_length: d.history_length(),
                    completed: status == WorkflowExecutionStatus::Completed,
                });
            }
        }
    }
}

/// Event types of one workflow's history, in order of first appearance, with their counts.
#[derive(Debug, Clone, Default)]
pub struct EventBreakdown {
    /// `(type, count)`, e.g. `("ActivityTaskScheduled", 6)`.
    pub counts: Vec<(String, usize)>,
    /// `MarkerRecorded` events of local activities (`core_local_activity`).
    pub local_activities: usize,
}

impl EventBreakdown {
    /// How many events of `event_type` (e.g. `ActivityTaskScheduled`).
    pub fn count(&self, event_type: &str) -> usize {
        self.counts
            .iter()
            .find(|(t, _)| t == event_type)
            .map_or(0, |(_, n)| *n)
    }

    /// `Type=count` pairs separated by spaces.
    pub fn render(&self) -> String {
        self.counts
            .iter()
            .map(|(t, n)| format!("{t}={n}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Fetches one workflow's history and counts its events by type.
pub async fn event_breakdown(client: &Client, id: &str) -> anyhow::Result<EventBreakdown> {
    let events = client
        .get_workflow_handle::<UntypedWorkflow>(id.to_owned())
        .fetch_history(WorkflowFetchHistoryOptions::default())
        .into_events()
        .await
        .map_err(|e| anyhow::anyhow!("fetch history of {id}: {e}"))?;
    let mut order: Vec<String> = Vec::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut local_activities = 0;
    for event in &events {
        if let Some(Attributes::MarkerRecordedEventAttributes(marker)) = &event.attributes
            && marker.marker_name == "core_local_activity"
        {
            local_activities += 1;
        }
        let name = EventType::try_from(event.event_type)
            .map(|t| camel(t.as_str_name().trim_start_matches("EVENT_TYPE_")))
            .unwrap_or_else(|_| format!("Unknown{}", event.event_type));
        if !counts.contains_key(&name) {
            order.push(name.clone());
        }
        *counts.entry(name).or_default() += 1;
    }
    Ok(EventBreakdown {
        counts: order
            .into_iter()
            .map(|t| {
                let n = counts[&t];
                (t, n)
            })
            .collect(),
        local_activities,
    })
}

/// `ACTIVITY_TASK_SCHEDULED` → `ActivityTaskScheduled`.
fn camel(screaming: &str) -> String {
    screaming
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + &c.as_str().to_ascii_lowercase(),
                None => String::new(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn event_type_names_read_like_the_ui() {
        assert_eq!(
            super::camel("ACTIVITY_TASK_SCHEDULED"),
            "ActivityTaskScheduled"
        );
    }
}
