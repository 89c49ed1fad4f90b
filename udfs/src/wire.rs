//! What a cxlake function instance carries beyond its name, as bytes that travel with a
//! serialized plan.
//!
//! Distributed engines (Ballista, through datafusion-proto) ship functions by name and rebuild
//! them from the receiving process's registry, which holds the default-policy instances. The
//! invalid-input policy an aggregate got from its session (see [`crate::common::policy`]) would be
//! lost on the way, so a plan codec asks [`encode_aggregate_state`] for bytes to send with the
//! name and rebuilds the instance with [`decode_aggregate`]. Scalar functions read the policy from
//! the session settings at execution, and constant arguments (modes, thresholds, windows) are
//! expressions of the plan, so both travel without help.

use std::sync::{Arc, LazyLock};

use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::AggregateUDF;

use crate::common::{InvalidInput, InvalidInputRule};

/// Versioned, so that a process of another cxlake version refuses state it cannot read instead
/// of misreading it.
const PREFIX: &str = "cxlake/1 invalid_input=";

fn rule() -> &'static InvalidInputRule {
    static RULE: LazyLock<InvalidInputRule> = LazyLock::new(crate::invalid_input_rule);
    &RULE
}

/// The bytes that carry `udaf`'s state, or `None` when its name is all it needs (it is not a
/// cxlake aggregate, or not one with an invalid-input policy).
pub fn encode_aggregate_state(udaf: &AggregateUDF) -> Option<Vec<u8>> {
    rule().policy_of(udaf).map(|policy| format!("{PREFIX}{policy}").into_bytes())
}

/// The cxlake aggregate `name` with the state [`encode_aggregate_state`] wrote for it.
pub fn decode_aggregate(name: &str, state: &[u8]) -> Result<Arc<AggregateUDF>> {
    let unreadable = || {
        DataFusionError::Plan(format!(
            "cannot rebuild the aggregate '{name}' from its serialized state {:?}: the plan was written by \
             another cxlake version; run the same cxlake version on the client, scheduler and executors",
            String::from_utf8_lossy(state)
        ))
    };
    let policy: InvalidInput = std::str::from_utf8(state)
        .ok()
        .and_then(|s| s.strip_prefix(PREFIX))
        .and_then(|p| p.parse().ok())
        .ok_or_else(unreadable)?;
    let default = crate::all_aggregates().into_iter().find(|f| f.name() == name).ok_or_else(|| {
        DataFusionError::Plan(format!(
            "the plan names the aggregate '{name}', which this cxlake build does not have; run the same \
             cxlake version on the client, scheduler and executors"
        ))
    })?;
    Ok(rule().switch(&default, policy).unwrap_or(default))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_survives_the_round_trip() {
        let nps = crate::all_aggregates().into_iter().find(|f| f.name() == "nps").unwrap();
        let skipping = rule().switch(&nps, InvalidInput::Skip).unwrap();
        let bytes = encode_aggregate_state(&skipping).unwrap();
        assert_eq!(bytes, b"cxlake/1 invalid_input=skip");
        let decoded = decode_aggregate("nps", &bytes).unwrap();
        assert_eq!(rule().policy_of(&decoded), Some(InvalidInput::Skip));
        let default = decode_aggregate("nps", &encode_aggregate_state(&nps).unwrap()).unwrap();
        assert_eq!(rule().policy_of(&default), Some(InvalidInput::Error));
    }

    #[test]
    fn stateless_and_foreign_state_are_told_apart() {
        let funnel = crate::all_aggregates().into_iter().find(|f| f.name() == "window_funnel").unwrap();
        assert_eq!(encode_aggregate_state(&funnel), None);
        let err = decode_aggregate("nps", b"cxlake/2 something").unwrap_err().to_string();
        assert!(err.contains("another cxlake version"), "{err}");
        let err = decode_aggregate("no_such", b"cxlake/1 invalid_input=skip").unwrap_err().to_string();
        assert!(err.contains("'no_such'"), "{err}");
    }
}
