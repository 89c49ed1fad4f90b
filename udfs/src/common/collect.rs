//! Aggregates whose state is a collection rather than a fixed row of numbers: distinct customers,
//! a customer's purchase periods, the distinct (x, t_x, T) of a model fit with their weights.
//!
//! A [`Collector`] says how rows enter a group's collection, how collections travel between
//! partial and final aggregation (as list columns) and what a collection evaluates to. The
//! accumulators here run any collector: [`CollectingGroupsAccumulator`] for `GROUP BY` (one
//! collection per group, updated in one pass per batch) and [`CollectingAccumulator`] for
//! ungrouped aggregation. Merging is exact by construction: collections are unions.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{Accumulator, EmitTo, GroupsAccumulator};

use super::{invalid_input_error, InvalidInput};

pub trait Collector: Send + Sync + std::fmt::Debug + 'static {
    type Group: Default + Send + Sync + std::fmt::Debug;

    /// The function name used in error messages.
    fn name(&self) -> &'static str;

    /// Adds every counting row (non-NULL inputs, selected by `filter`) to `groups[group_of[row]]`;
    /// invalid rows are left out. Returns whether any counting row was invalid.
    fn update(
        &self,
        args: &[ArrayRef],
        filter: Option<&BooleanArray>,
        group_of: &[usize],
        groups: &mut [Self::Group],
    ) -> Result<bool>;

    /// Describes the first invalid counting row, for the error message.
    fn describe_invalid(&self, args: &[ArrayRef], filter: Option<&BooleanArray>) -> Result<String>;

    /// The state columns of `groups`, one row per group.
    fn state(&self, groups: &[Self::Group]) -> Result<Vec<ArrayRef>>;

    /// Merges rows of state columns into `groups[group_of[row]]`.
    fn merge(&self, states: &[ArrayRef], group_of: &[usize], groups: &mut [Self::Group]) -> Result<()>;

    /// One result per group.
    fn evaluate(&self, groups: &[Self::Group]) -> Result<ArrayRef>;

    /// Heap bytes held by one group, for memory accounting.
    fn group_size(&self, group: &Self::Group) -> usize;
}

fn update_checked<C: Collector>(
    collector: &C,
    policy: InvalidInput,
    args: &[ArrayRef],
    filter: Option<&BooleanArray>,
    group_of: &[usize],
    groups: &mut [C::Group],
) -> Result<()> {
    if collector.update(args, filter, group_of, groups)? && policy == InvalidInput::Error {
        let detail = collector.describe_invalid(args, filter)?;
        return Err(invalid_input_error(collector.name(), &detail));
    }
    Ok(())
}

/// The `GROUP BY` accumulator of any collector.
#[derive(Debug)]
pub struct CollectingGroupsAccumulator<C: Collector> {
    collector: Arc<C>,
    policy: InvalidInput,
    groups: Vec<C::Group>,
}

impl<C: Collector> CollectingGroupsAccumulator<C> {
    pub fn new(collector: C, policy: InvalidInput) -> Self {
        Self { collector: Arc::new(collector), policy, groups: Vec::new() }
    }

    fn grow(&mut self, total_num_groups: usize) {
        if self.groups.len() < total_num_groups {
            self.groups.resize_with(total_num_groups, Default::default);
        }
    }
}

impl<C: Collector> GroupsAccumulator for CollectingGroupsAccumulator<C> {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.grow(total_num_groups);
        update_checked(self.collector.as_ref(), self.policy, values, opt_filter, group_indices, &mut self.groups)
    }

    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> Result<()> {
        self.grow(total_num_groups);
        self.collector.merge(values, group_indices, &mut self.groups)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        self.collector.evaluate(&emit_to.take_needed(&mut self.groups))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        self.collector.state(&emit_to.take_needed(&mut self.groups))
    }

    /// Each input row as a collection of its own, so DataFusion can skip partial aggregation
    /// when the group keys barely repeat (one customer per group, as in `rfm_summary`).
    fn convert_to_state(&self, values: &[ArrayRef], opt_filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        let rows = values.first().map_or(0, |a| a.len());
        let mut groups: Vec<C::Group> = (0..rows).map(|_| C::Group::default()).collect();
        let own: Vec<usize> = (0..rows).collect();
        update_checked(self.collector.as_ref(), self.policy, values, opt_filter, &own, &mut groups)?;
        self.collector.state(&groups)
    }

    fn size(&self) -> usize {
        self.groups.capacity() * std::mem::size_of::<C::Group>()
            + self.groups.iter().map(|g| self.collector.group_size(g)).sum::<usize>()
    }
}

/// The ungrouped accumulator of any collector: a single group.
#[derive(Debug)]
pub struct CollectingAccumulator<C: Collector> {
    collector: Arc<C>,
    policy: InvalidInput,
    group: [C::Group; 1],
    zeros: Vec<usize>,
}

impl<C: Collector> CollectingAccumulator<C> {
    pub fn new(collector: C, policy: InvalidInput) -> Self {
        Self { collector: Arc::new(collector), policy, group: Default::default(), zeros: Vec::new() }
    }

    /// Every row of a batch belongs to the one group.
    fn zeros(&mut self, rows: usize) -> Vec<usize> {
        let mut zeros = std::mem::take(&mut self.zeros);
        zeros.resize(rows, 0);
        zeros
    }
}

impl<C: Collector> Accumulator for CollectingAccumulator<C> {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let zeros = self.zeros(values.first().map_or(0, |a| a.len()));
        let result = update_checked(self.collector.as_ref(), self.policy, values, None, &zeros, &mut self.group);
        self.zeros = zeros;
        result
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let zeros = self.zeros(states.first().map_or(0, |a| a.len()));
        let result = self.collector.merge(states, &zeros, &mut self.group);
        self.zeros = zeros;
        result
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let arrays = self.collector.state(&self.group)?;
        arrays.iter().map(|a| ScalarValue::try_from_array(a, 0)).collect()
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        ScalarValue::try_from_array(&self.collector.evaluate(&self.group)?, 0)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.collector.group_size(&self.group[0]) + self.zeros.capacity() * 8
    }
}

/// Builds the accumulator flavour DataFusion asked for, whatever the collector.
pub trait CollectorFactory {
    type Output;
    fn build<C: Collector>(self, collector: C, policy: InvalidInput) -> Self::Output;
}

impl CollectorFactory for super::kernel::Ungrouped {
    type Output = Box<dyn Accumulator>;
    fn build<C: Collector>(self, collector: C, policy: InvalidInput) -> Self::Output {
        Box::new(CollectingAccumulator::new(collector, policy))
    }
}

impl CollectorFactory for super::kernel::Grouped {
    type Output = Box<dyn GroupsAccumulator>;
    fn build<C: Collector>(self, collector: C, policy: InvalidInput) -> Self::Output {
        Box::new(CollectingGroupsAccumulator::new(collector, policy))
    }
}

/// The accumulator methods of an `AggregateUDFImpl` whose `build(&args, factory)` builds an
/// ungrouped accumulator or a `GroupsAccumulator`: a [`Collector`]'s (no sliding-window support:
/// collections do not retract), and the first part of `kernel_accumulators!`.
macro_rules! collector_accumulators {
    () => {
        fn accumulator(
            &self,
            args: ::datafusion::logical_expr::function::AccumulatorArgs,
        ) -> ::datafusion::common::Result<Box<dyn ::datafusion::logical_expr::Accumulator>> {
            self.build(&args, $crate::common::kernel::Ungrouped)
        }

        fn groups_accumulator_supported(&self, _args: ::datafusion::logical_expr::function::AccumulatorArgs) -> bool {
            true
        }

        fn create_groups_accumulator(
            &self,
            args: ::datafusion::logical_expr::function::AccumulatorArgs,
        ) -> ::datafusion::common::Result<Box<dyn ::datafusion::logical_expr::GroupsAccumulator>> {
            self.build(&args, $crate::common::kernel::Grouped)
        }
    };
}
pub(crate) use collector_accumulators;
