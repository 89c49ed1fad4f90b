//! Aggregates whose state is not a fixed row of numbers (distinct keys, event lists).
//!
//! A family implements [`GroupStates`] once — a vector of per-group states with update, merge,
//! state and evaluate over batches — and gets both accumulator flavours from it: [`Grouped`]
//! for `GROUP BY` (DataFusion's vectorized `GroupsAccumulator`) and [`Single`] for ungrouped
//! aggregation and window frames (one group, evaluated without being consumed).

use datafusion::arrow::array::{ArrayRef, BooleanArray};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{Accumulator, EmitTo, GroupsAccumulator};

/// Per-group states of one aggregate.
pub trait GroupStates: Send + Sync + std::fmt::Debug + Sized + 'static {
    /// A container with no groups and the same configuration.
    fn empty(&self) -> Result<Self>;

    /// Makes room for `groups` groups (new ones start empty).
    fn resize(&mut self, groups: usize);

    /// Folds input rows into their groups. A row counts only when its inputs are non-NULL and
    /// `filter` (the `FILTER (WHERE …)` clause) selects it.
    fn update(&mut self, values: &[ArrayRef], group_indices: &[usize], filter: Option<&BooleanArray>) -> Result<()>;

    /// Merges partial states (rows of the columns [`GroupStates::state`] makes) into groups.
    fn merge(&mut self, states: &[ArrayRef], group_indices: &[usize]) -> Result<()>;

    /// The results of the first `groups` groups, which stay in place.
    fn evaluate(&self, groups: usize) -> Result<ArrayRef>;

    /// The state columns of the first `groups` groups, which stay in place.
    fn state(&self, groups: usize) -> Result<Vec<ArrayRef>>;

    /// Drops the first `groups` groups; the others are renumbered from 0.
    fn drop_first(&mut self, groups: usize);

    /// The number of groups.
    fn groups(&self) -> usize;

    /// Bytes held, for DataFusion's memory accounting.
    fn size(&self) -> usize;

    /// Each input row as a state of its own, for when DataFusion skips partial aggregation
    /// (group keys that barely repeat, such as users). The default goes through a container
    /// with a group per row; families on that path override it with a direct conversion.
    fn convert_to_state(&self, values: &[ArrayRef], filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        let rows = values.first().map_or(0, |a| a.len());
        let mut states = self.empty()?;
        states.resize(rows);
        states.update(values, &(0..rows).collect::<Vec<_>>(), filter)?;
        states.state(rows)
    }
}

/// The `GROUP BY` accumulator over any [`GroupStates`].
#[derive(Debug)]
pub struct Grouped<S>(pub S);

impl<S: GroupStates> Grouped<S> {
    fn emitted(&self, emit_to: EmitTo) -> usize {
        match emit_to {
            EmitTo::All => self.0.groups(),
            EmitTo::First(n) => n.min(self.0.groups()),
        }
    }
}

impl<S: GroupStates> GroupsAccumulator for Grouped<S> {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.0.resize(total_num_groups);
        self.0.update(values, group_indices, opt_filter)
    }

    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> Result<()> {
        self.0.resize(total_num_groups);
        self.0.merge(values, group_indices)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let n = self.emitted(emit_to);
        let result = self.0.evaluate(n)?;
        self.0.drop_first(n);
        Ok(result)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let n = self.emitted(emit_to);
        let state = self.0.state(n)?;
        self.0.drop_first(n);
        Ok(state)
    }

    /// Each input row as a state of its own, so DataFusion can skip partial aggregation when
    /// the group keys barely repeat.
    fn convert_to_state(&self, values: &[ArrayRef], opt_filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        self.0.convert_to_state(values, opt_filter)
    }

    fn size(&self) -> usize {
        self.0.size()
    }
}

/// The ungrouped (and window frame) accumulator over any [`GroupStates`]: one group.
#[derive(Debug)]
pub struct Single<S> {
    states: S,
    zeros: Vec<usize>,
}

impl<S: GroupStates> Single<S> {
    pub fn new(mut states: S) -> Self {
        states.resize(1);
        Self { states, zeros: Vec::new() }
    }

    fn zeros(&mut self, rows: usize) -> Vec<usize> {
        let mut zeros = std::mem::take(&mut self.zeros);
        zeros.resize(rows, 0);
        zeros
    }
}

impl<S: GroupStates> Accumulator for Single<S> {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let zeros = self.zeros(values.first().map_or(0, |a| a.len()));
        let result = self.states.update(values, &zeros, None);
        self.zeros = zeros;
        result
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let zeros = self.zeros(states.first().map_or(0, |a| a.len()));
        let result = self.states.merge(states, &zeros);
        self.zeros = zeros;
        result
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.states.state(1)?.iter().map(|a| ScalarValue::try_from_array(a, 0)).collect()
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        ScalarValue::try_from_array(&self.states.evaluate(1)?, 0)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.states.size() + self.zeros.capacity() * std::mem::size_of::<usize>()
    }
}
