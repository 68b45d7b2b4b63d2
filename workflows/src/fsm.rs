//! The provider-asset FSM allowlist of the reference (`Rindle.Domain.ProviderAssetFSM`).
//!
//! Every write of `media_provider_assets.state` is checked here first and then done as a
//! compare-and-set, so no writer can skip an edge. There are no self-loops.

use rindle_proto::ProviderAssetState::{self, *};

/// A transition the allowlist forbids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid provider-asset transition {from} -> {to}")]
pub struct InvalidTransition {
    /// The state the row was in.
    pub from: ProviderAssetState,
    /// The state that was asked for.
    pub to: ProviderAssetState,
}

/// The states `from` may move to, in the reference's list order.
pub fn allowed_transitions(from: ProviderAssetState) -> &'static [ProviderAssetState] {
    match from {
        Pending => &[Uploading, Errored, Deleted],
        Uploading => &[Processing, Errored, Deleted],
        Processing => &[Ready, Errored],
        Ready => &[Errored, Deleted],
        Errored => &[Deleted, Processing],
        Deleted | Unspecified => &[],
    }
}

/// Checks one edge against the allowlist.
pub fn check(from: ProviderAssetState, to: ProviderAssetState) -> Result<(), InvalidTransition> {
    if allowed_transitions(from).contains(&to) {
        Ok(())
    } else {
        Err(InvalidTransition { from, to })
    }
}

/// How far along the provider lifecycle a state is; an event that would move a row
/// backwards (or to where it already is) is stale, not an error.
pub fn progress_rank(state: ProviderAssetState) -> u8 {
    match state {
        Unspecified => 0,
        Pending => 1,
        Uploading => 2,
        Processing => 3,
        Ready => 4,
        Errored => 5,
        Deleted => 6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [ProviderAssetState; 6] = [Pending, Uploading, Processing, Ready, Errored, Deleted];

    #[test]
    fn the_allowlist_is_exactly_the_references_table() {
        let allowed: Vec<(ProviderAssetState, ProviderAssetState)> = ALL
            .iter()
            .flat_map(|&f| ALL.iter().map(move |&t| (f, t)))
            .filter(|&(f, t)| check(f, t).is_ok())
            .collect();
        assert_eq!(
            allowed,
            vec![
                (Pending, Uploading),
                (Pending, Errored),
                (Pending, Deleted),
                (Uploading, Processing),
                (Uploading, Errored),
                (Uploading, Deleted),
                (Processing, Ready),
                (Processing, Errored),
                (Ready, Errored),
                (Ready, Deleted),
                (Errored, Processing),
                (Errored, Deleted),
            ]
        );
    }

    #[test]
    fn no_state_may_loop_to_itself() {
        for s in ALL {
            assert_eq!(check(s, s), Err(InvalidTransition { from: s, to: s }));
        }
    }

    #[test]
    fn the_error_names_both_states() {
        let e = check(Processing, Deleted).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid provider-asset transition processing -> deleted"
        );
    }
}
