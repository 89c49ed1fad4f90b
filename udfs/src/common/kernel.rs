//! A metric as a per-row kernel, and the generic accumulators that run any kernel.
//!
//! A kernel says what one counting row contributes to the state (a promoter, a satisfied answer,
//! a value to average) and whether the row is invalid. The accumulators here apply the invalid-
//! input policy, group the contributions (`GroupsAccumulator`, one pass per batch, no per-row
//! allocation), merge partial states, retract rows for sliding window frames, and call the
//! kernel once more to turn states into results. Metric families write kernels, not accumulators.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{Accumulator, EmitTo, GroupsAccumulator};

use super::state::MetricState;
use super::{invalid_input_error, InvalidInput};

pub trait Kernel: Send + Sync + 'static {
    type State: MetricState;

    /// The function name used in error messages.
    fn name(&self) -> &'static str;

    /// Calls `f(row, contribution)` for every counting row (non-NULL inputs, selected by
    /// `filter`). An invalid row contributes `State::default()`; returns whether any row was
    /// invalid, so that the caller can apply the policy.
    fn fold(&self, args: &[ArrayRef], filter: Option<&BooleanArray>, f: impl FnMut(usize, Self::State))
        -> Result<bool>;

    /// Describes the first invalid counting row, for the error message. Only called after
    /// `fold` reported one, so it may be slow.
    fn describe_invalid(&self, args: &[ArrayRef], filter: Option<&BooleanArray>) -> Result<String>;

    /// Turns states into results, one per state (NULL where no row counted).
    fn evaluate(&self, states: &[Self::State]) -> Result<ArrayRef>;
}

/// Folds a batch and applies the policy to the invalid rows it met.
fn fold_checked<K: Kernel>(
    kernel: &K,
    policy: InvalidInput,
    args: &[ArrayRef],
    filter: Option<&BooleanArray>,
    f: impl FnMut(usize, K::State),
) -> Result<()> {
    let had_invalid = kernel.fold(args, filter, f)?;
    if had_invalid && policy == InvalidInput::Error {
        let detail = kernel.describe_invalid(args, filter)?;
        return Err(invalid_input_error(kernel.name(), &detail));
    }
    Ok(())
}

/// The ungrouped and sliding-window accumulator of any kernel.
#[derive(Debug)]
pub struct KernelAccumulator<K: Kernel> {
    kernel: Arc<K>,
    policy: InvalidInput,
    state: K::State,
}

impl<K: Kernel> KernelAccumulator<K> {
    pub fn new(kernel: K, policy: InvalidInput) -> Self {
        Self { kernel: Arc::new(kernel), policy, state: K::State::default() }
    }
}

impl<K: Kernel + std::fmt::Debug> Accumulator for KernelAccumulator<K> {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let state = &mut self.state;
        fold_checked(self.kernel.as_ref(), self.policy, values, None, |_, c| *state += c)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        // Invalid rows contributed nothing when they entered the frame (or failed the query),
        // so skipping them again on the way out keeps the frame's state exact.
        let state = &mut self.state;
        self.kernel.fold(values, None, |_, c| *state -= c).map(|_| ())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let state = &mut self.state;
        K::State::fold_arrays(states, None, |_, s| *state += s)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(self.state.to_scalars())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let result = self.kernel.evaluate(std::slice::from_ref(&self.state))?;
        ScalarValue::try_from_array(&result, 0)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }
}

/// The `GROUP BY` accumulator of any kernel: one state per group in a flat vector.
pub struct KernelGroupsAccumulator<K: Kernel> {
    kernel: Arc<K>,
    policy: InvalidInput,
    states: Vec<K::State>,
}

impl<K: Kernel> KernelGroupsAccumulator<K> {
    pub fn new(kernel: K, policy: InvalidInput) -> Self {
        Self { kernel: Arc::new(kernel), policy, states: Vec::new() }
    }
}

impl<K: Kernel> GroupsAccumulator for KernelGroupsAccumulator<K> {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.states.resize(total_num_groups, K::State::default());
        let states = &mut self.states;
        fold_checked(self.kernel.as_ref(), self.policy, values, opt_filter, |row, c| states[group_indices[row]] += c)
    }

    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> Result<()> {
        self.states.resize(total_num_groups, K::State::default());
        let states = &mut self.states;
        K::State::fold_arrays(values, None, |row, s| states[group_indices[row]] += s)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        self.kernel.evaluate(&emit_to.take_needed(&mut self.states))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(K::State::to_arrays(&emit_to.take_needed(&mut self.states)))
    }

    /// Each input row as a state of its own, so DataFusion can skip partial aggregation when
    /// the group keys barely repeat.
    fn convert_to_state(&self, values: &[ArrayRef], opt_filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        let rows = values.first().map_or(0, |a| a.len());
        let mut states = vec![K::State::default(); rows];
        fold_checked(self.kernel.as_ref(), self.policy, values, opt_filter, |row, c| states[row] = c)?;
        Ok(K::State::to_arrays(&states))
    }

    fn size(&self) -> usize {
        self.states.capacity() * std::mem::size_of::<K::State>()
    }
}

/// Builds the accumulator flavour DataFusion asked for, whatever the kernel.
pub trait AccumulatorFactory {
    type Output;
    fn build<K: Kernel + std::fmt::Debug>(self, kernel: K, policy: InvalidInput) -> Self::Output;
}

/// Builds a [`KernelAccumulator`] (ungrouped aggregation and window frames).
pub struct Ungrouped;
impl AccumulatorFactory for Ungrouped {
    type Output = Box<dyn Accumulator>;
    fn build<K: Kernel + std::fmt::Debug>(self, kernel: K, policy: InvalidInput) -> Self::Output {
        Box::new(KernelAccumulator::new(kernel, policy))
    }
}

/// Builds a [`KernelGroupsAccumulator`].
pub struct Grouped;
impl AccumulatorFactory for Grouped {
    type Output = Box<dyn GroupsAccumulator>;
    fn build<K: Kernel + std::fmt::Debug>(self, kernel: K, policy: InvalidInput) -> Self::Output {
        Box::new(KernelGroupsAccumulator::new(kernel, policy))
    }
}
