//! Rates: the share of true flags, in percent (conversion, feedback response, referral, participation).

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
