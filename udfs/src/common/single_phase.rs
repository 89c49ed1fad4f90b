//! A physical rule that aggregates collecting functions in one phase instead of two.
//!
//! DataFusion splits a `GROUP BY` into a partial aggregate per input partition, a hash
//! repartition of the partial states, and a final aggregate. That pays when partial states are
//! smaller than the rows they fold (a sum is one number per group). The state of a collecting
//! aggregate such as `window_funnel` is every event of the group, so the partial phase only adds
//! work: a second hash table over the same keys, states built as lists, and lists merged again.
//! When every aggregate of a `GROUP BY` is collecting, this rule repartitions the input rows by
//! the group keys instead and aggregates each partition once (`SinglePartitioned`), which gives
//! the same groups and the same results.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::{ExecutionPlan, InputOrderMode, Partitioning};

/// Rewrites `FinalPartitioned ← Repartition(Hash) ← Partial` into
/// `SinglePartitioned ← Repartition(Hash of the input rows)` when every aggregate is one of
/// `collecting` (by name).
#[derive(Debug)]
pub struct SinglePhaseCollecting {
    collecting: &'static [&'static str],
}

impl SinglePhaseCollecting {
    pub const NAME: &'static str = "cxlake_single_phase_collecting";

    pub fn new(collecting: &'static [&'static str]) -> Self {
        Self { collecting }
    }

    fn rewrite(&self, plan: &Arc<dyn ExecutionPlan>) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(last) = plan.downcast_ref::<AggregateExec>() else { return Ok(None) };
        if *last.mode() != AggregateMode::FinalPartitioned {
            return Ok(None);
        }
        let Some(exchange) = last.input().downcast_ref::<RepartitionExec>() else { return Ok(None) };
        let Partitioning::Hash(_, partitions) = exchange.partitioning() else { return Ok(None) };
        let Some(partial) = exchange.input().downcast_ref::<AggregateExec>() else { return Ok(None) };
        let group_by = partial.group_expr();
        let applies = *partial.mode() == AggregateMode::Partial
            && !group_by.has_grouping_set()
            && !group_by.expr().is_empty()
            // Sorted input lets DataFusion stream groups out; keep that plan.
            && *partial.input_order_mode() == InputOrderMode::Linear
            && !partial.aggr_expr().is_empty()
            && partial.aggr_expr().iter().all(|a| self.collecting.contains(&a.fun().name()));
        if !applies {
            return Ok(None);
        }
        let keys = group_by.expr().iter().map(|(expr, _)| Arc::clone(expr)).collect();
        let rows = RepartitionExec::try_new(Arc::clone(partial.input()), Partitioning::Hash(keys, *partitions))?;
        let single = AggregateExec::try_new(
            AggregateMode::SinglePartitioned,
            group_by.clone(),
            partial.aggr_expr().to_vec(),
            partial.filter_expr().to_vec(),
            Arc::new(rows),
            partial.input_schema(),
        )?
        .with_limit_options(last.limit_options());
        // The same output columns, or the plan stays as it was.
        if single.schema().fields() != last.schema().fields() {
            return Ok(None);
        }
        Ok(Some(Arc::new(single)))
    }
}

impl PhysicalOptimizerRule for SinglePhaseCollecting {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_down(|plan| {
            Ok(match self.rewrite(&plan)? {
                Some(rewritten) => Transformed::yes(rewritten),
                None => Transformed::no(plan),
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        Self::NAME
    }

    fn schema_check(&self) -> bool {
        true
    }
}
