//! Whether the workflow run that holds a claim is still running, asked of Temporal itself:
//! a claim held by a failed, cancelled, terminated or reset run is dead and can be taken over.

use temporalio_client::{WorkflowDescribeOptions, WorkflowExecutionInfo, WorkflowExecutionStatus};
use temporalio_sdk::activities::{ActivityContext, ActivityError};

use super::errors::failure;

/// Asks Temporal about claimant runs, through the activity's own client.
pub struct RunLiveness<'a> {
    ctx: &'a ActivityContext,
}

impl<'a> RunLiveness<'a> {
    /// Uses the client and namespace of the running activity.
    pub fn new(ctx: &'a ActivityContext) -> Self {
        Self { ctx }
    }

    /// True while `run_id` of `workflow_id` is running; false once it closed or is unknown.
    pub async fn is_running(&self, workflow_id: &str, run_id: &str) -> Result<bool, ActivityError> {
        let handle = WorkflowExecutionInfo::builder()
            .namespace(self.ctx.info().namespace.clone())
            .workflow_id(workflow_id)
            .run_id(run_id.to_owned())
            .build()
            .bind_untyped(self.ctx.client());
        match handle.describe(WorkflowDescribeOptions::default()).await {
            Ok(d) => Ok(d.status() == WorkflowExecutionStatus::Running),
            Err(e) if e.to_string().to_ascii_lowercase().contains("not found") => Ok(false),
            Err(e) => Err(failure(
                "TemporalUnavailable",
                format!("describe claimant run: {e}"),
                false,
                None,
            )),
        }
    }
}
