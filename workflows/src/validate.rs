//! Input validation that needs nothing but the input and the workflow id. It runs first,
//! before any activity, so invalid input writes nothing and is never retried.
//! (Whether the profile is configured is checked by `prepare`, before its first write,
//! because workflow code cannot read the worker's configuration.)

use rindle_proto::IngestInput;

/// Longest `asset_id`, `profile` or `variant_name`, in bytes (Rindle's varchar(255)).
pub const MAX_PART_BYTES: usize = 255;

/// Why an ingest input is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidInput {
    /// `asset_id` does not parse as a UUID.
    #[error("asset_id {0:?} is not a UUID")]
    AssetIdNotUuid(String),
    /// A required part is empty.
    #[error("{0} is empty")]
    Empty(&'static str),
    /// A part contains `:`, which separates the parts of the workflow id.
    #[error("{0} contains ':'")]
    ContainsColon(&'static str),
    /// A part is longer than [`MAX_PART_BYTES`].
    #[error("{field} is {len} bytes, over the {MAX_PART_BYTES}-byte limit")]
    TooLong {
        /// Which part.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// The workflow id is not `{asset_id}:{profile}:{variant_name}`.
    #[error("workflow id {actual:?} must be {expected:?}")]
    WorkflowIdMismatch {
        /// What the input implies.
        expected: String,
        /// What the workflow was started with.
        actual: String,
    },
    /// The worker's configuration has no such profile.
    #[error("profile {0:?} is not configured on this worker")]
    UnknownProfile(String),
}

/// The workflow id an ingest of `input` must run under.
pub fn workflow_id_for(input: &IngestInput) -> String {
    format!(
        "{}:{}:{}",
        input.asset_id, input.profile, input.variant_name
    )
}

/// Checks everything about `input` that can be checked without I/O.
pub fn validate(input: &IngestInput, workflow_id: &str) -> Result<(), InvalidInput> {
    for (field, value) in [
        ("asset_id", &input.asset_id),
        ("profile", &input.profile),
        ("variant_name", &input.variant_name),
    ] {
        if value.is_empty() {
            return Err(InvalidInput::Empty(field));
        }
        if value.len() > MAX_PART_BYTES {
            return Err(InvalidInput::TooLong {
                field,
                len: value.len(),
            });
        }
        if value.contains(':') {
            return Err(InvalidInput::ContainsColon(field));
        }
    }
    if uuid::Uuid::try_parse(&input.asset_id).is_err() {
        return Err(InvalidInput::AssetIdNotUuid(input.asset_id.clone()));
    }
    let expected = workflow_id_for(input);
    if workflow_id != expected {
        return Err(InvalidInput::WorkflowIdMismatch {
            expected,
            actual: workflow_id.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> IngestInput {
        IngestInput {
            asset_id: "0b6c3a52-7f7e-4d55-9d0e-1f2a3b4c5d6e".into(),
            profile: "Elixir.MyApp.Profiles.Web".into(),
            variant_name: "web_720p".into(),
            expected_storage_key: "k".into(),
            expected_recipe_digest: "d".into(),
        }
    }

    #[test]
    fn a_reference_input_under_its_own_workflow_id_is_valid() {
        let i = input();
        assert_eq!(validate(&i, &workflow_id_for(&i)), Ok(()));
    }

    #[test]
    fn every_invalid_input_is_named() {
        let wid = |i: &IngestInput| workflow_id_for(i);
        let mut i = input();
        i.asset_id = "not-a-uuid".into();
        assert_eq!(
            validate(&i, &wid(&i)),
            Err(InvalidInput::AssetIdNotUuid("not-a-uuid".into()))
        );

        let mut i = input();
        i.profile.clear();
        assert_eq!(validate(&i, &wid(&i)), Err(InvalidInput::Empty("profile")));

        let mut i = input();
        i.variant_name = "a:b".into();
        assert_eq!(
            validate(&i, &wid(&i)),
            Err(InvalidInput::ContainsColon("variant_name"))
        );

        let mut i = input();
        i.variant_name = "v".repeat(256);
        assert_eq!(
            validate(&i, &wid(&i)),
            Err(InvalidInput::TooLong {
                field: "variant_name",
                len: 256
            })
        );

        let i = input();
        assert!(matches!(
            validate(&i, "something-else"),
            Err(InvalidInput::WorkflowIdMismatch { .. })
        ));
    }
}
