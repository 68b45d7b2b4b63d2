//! Starting an ingest with job-level uniqueness (the reference's Oban `unique` options).
//!
//! The workflow id `{asset_id}:{profile}:{variant_name}` is the uniqueness key:
//! - while a run is open, a start returns it (`existing`);
//! - after a *completed* run, a start within the uniqueness period returns that run;
//! - after a failed, cancelled or terminated run, or after the period, a new run starts.

use std::time::{Duration, SystemTime};

use temporalio_client::{
    Client, UntypedWorkflow, WorkflowDescribeOptions, WorkflowExecutionStatus,
    WorkflowIdConflictPolicy, WorkflowIdReusePolicy, WorkflowStartOptions,
    errors::WorkflowStartError,
};

use rindle_proto::IngestInput;
use rindle_workflows::{
    IngestWorkflow,
    validate::{InvalidInput, validate, workflow_id_for},
};

/// What `enqueue` did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Enqueued {
    /// A new run started.
    Started {
        /// The workflow id.
        workflow_id: String,
        /// The new run.
        run_id: String,
    },
    /// An open run, or a run completed within the uniqueness period, stands for this ingest
    /// (the reference's `conflict?: true`).
    Existing {
        /// The workflow id.
        workflow_id: String,
        /// The run that stands.
        run_id: String,
        /// Its status (`running` or `completed`).
        status: String,
    },
}

/// Why an ingest could not be enqueued.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    /// The input can never be ingested.
    #[error("invalid ingest input: {0}")]
    InvalidInput(#[from] InvalidInput),
    /// Temporal refused or could not be reached.
    #[error("temporal: {0}")]
    Temporal(String),
}

/// Starts (or finds) the ingest of `input` on `task_queue`.
pub async fn enqueue(
    client: &Client,
    task_queue: &str,
    input: IngestInput,
    uniqueness_period: Duration,
) -> Result<Enqueued, EnqueueError> {
    let workflow_id = workflow_id_for(&input);
    validate(&input, &workflow_id)?;
    let first = start(
        client,
        task_queue,
        &input,
        WorkflowIdReusePolicy::AllowDuplicateFailedOnly,
    );
    if let Some(run_id) = first.await? {
        return Ok(Enqueued::Started {
            workflow_id,
            run_id,
        });
    }
    let latest = client
        .get_workflow_handle::<UntypedWorkflow>(workflow_id.clone())
        .describe(WorkflowDescribeOptions::default())
        .await
        .map_err(|e| EnqueueError::Temporal(e.to_string()))?;
    let existing = |status: &str| Enqueued::Existing {
        workflow_id: workflow_id.clone(),
        run_id: latest.run_id().to_owned(),
        status: status.to_owned(),
    };
    match latest.status() {
        WorkflowExecutionStatus::Running => Ok(existing("running")),
        WorkflowExecutionStatus::Completed => {
            let closed = latest.close_time().unwrap_or_else(SystemTime::now);
            let age = SystemTime::now().duration_since(closed).unwrap_or_default();
            if age < uniqueness_period {
                return Ok(existing("completed"));
            }
            match start(
                client,
                task_queue,
                &input,
                WorkflowIdReusePolicy::AllowDuplicate,
            )
            .await?
            {
                Some(run_id) => Ok(Enqueued::Started {
                    workflow_id,
                    run_id,
                }),
                None => Ok(existing("running")),
            }
        }
        // Failed, cancelled, terminated or timed out between our start and describe: retry once.
        _ => match start(
            client,
            task_queue,
            &input,
            WorkflowIdReusePolicy::AllowDuplicate,
        )
        .await?
        {
            Some(run_id) => Ok(Enqueued::Started {
                workflow_id,
                run_id,
            }),
            None => Ok(existing("running")),
        },
    }
}

/// Starts a run; `None` when the id is taken under `reuse`.
async fn start(
    client: &Client,
    task_queue: &str,
    input: &IngestInput,
    reuse: WorkflowIdReusePolicy,
) -> Result<Option<String>, EnqueueError> {
    let options = WorkflowStartOptions::new(task_queue, workflow_id_for(input))
        .id_reuse_policy(reuse)
        .id_conflict_policy(WorkflowIdConflictPolicy::Fail)
        .build();
    match client
        .start_workflow(IngestWorkflow::run, input.clone(), options)
        .await
    {
        Ok(handle) => Ok(Some(handle.info().run_id.clone().unwrap_or_default())),
        Err(WorkflowStartError::AlreadyStarted { .. }) => Ok(None),
        Err(e) => Err(EnqueueError::Temporal(e.to_string())),
    }
}
