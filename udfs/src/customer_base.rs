//! Customer-base metrics over (start, end, period start, period end): churn, retention, movement.

use std::sync::Arc;

use datafusion::logical_expr::AggregateUDF;

use crate::common::InvalidInputRule;

/// Every aggregate of this family.
pub fn all() -> Vec<Arc<AggregateUDF>> {
    Vec::new()
}

pub(crate) fn add_to_rule(_rule: &mut InvalidInputRule) {}

/// Expression builders for this family.
pub mod expr {}
