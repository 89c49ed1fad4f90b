//! The `cxlake.invalid_input` session setting and how it reaches the aggregates.
//!
//! DataFusion hands session settings to scalar functions (`ScalarFunctionArgs::config_options`,
//! `with_updated_config` on `SET`) but not to aggregate accumulators: `AccumulatorArgs` carries no
//! configuration. So every cxlake aggregate carries its policy as a field, and an analyzer rule,
//! which DataFusion runs with the session's current `ConfigOptions` when it plans each statement,
//! swaps each cxlake aggregate in the plan for the instance with the session's policy. A `SET`
//! therefore takes effect from the next statement of the same session, in SQL, in window
//! functions and in DataFrame expressions built with the expression builders alike.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use datafusion::common::config::{ConfigEntry, ConfigExtension, ExtensionOptions};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DataFusionError, Result};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::expr::{AggregateFunction, WindowFunction};
use datafusion::logical_expr::{AggregateUDF, AggregateUDFImpl, Expr, LogicalPlan, WindowFunctionDefinition};
use datafusion::optimizer::AnalyzerRule;

/// What a metric does with a row whose input is outside its domain (an NPS score of 11,
/// a negative weight, NaN, an end before its start).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum InvalidInput {
    /// Fail the query with an error naming the function, the value and this setting.
    #[default]
    Error,
    /// Treat the row as non-counting, like a NULL.
    Skip,
}

impl FromStr for InvalidInput {
    type Err = DataFusionError;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "error" => Ok(Self::Error),
            "skip" => Ok(Self::Skip),
            other => Err(DataFusionError::Configuration(format!(
                "cxlake.invalid_input must be 'error' or 'skip', not '{other}'"
            ))),
        }
    }
}

impl fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Error => "error",
            Self::Skip => "skip",
        })
    }
}

/// Settings under `cxlake.*`, changed with `SET cxlake.<name> = <value>` and listed (with the
/// `cxlake.` prefix) by `SHOW ALL` and `information_schema.df_settings`.
#[derive(Debug, Clone, PartialEq)]
pub struct CxlakeOptions {
    /// What metric functions do with invalid input: 'error' (default) or 'skip'.
    pub invalid_input: InvalidInput,
    /// Whether a one-key `GROUP BY` of cxlake metrics runs through cxlake's own key tables
    /// (`grouping_plan.rs`); `false` leaves it to DataFusion's grouping, for comparison.
    pub keyed_grouping: bool,
}

impl Default for CxlakeOptions {
    fn default() -> Self {
        Self { invalid_input: InvalidInput::default(), keyed_grouping: true }
    }
}

const INVALID_INPUT_DOC: &str = "What cxlake metric functions do with invalid input (an NPS score of 11, a negative \
weight, NaN): 'error' (default) fails the query naming the function and the value; 'skip' ignores such rows like NULLs.";

const KEYED_GROUPING_DOC: &str = "Whether a GROUP BY of cxlake metrics by one string, integer, date or timestamp key \
uses cxlake's own key tables (true, default) or DataFusion's grouping (false).";

impl ExtensionOptions for CxlakeOptions {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(self.clone())
    }

    fn set(&mut self, key: &str, value: &str) -> Result<()> {
        match key {
            "invalid_input" => self.invalid_input = value.parse()?,
            "keyed_grouping" => {
                self.keyed_grouping = match value.to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(DataFusionError::Configuration(format!(
                            "cxlake.keyed_grouping must be true or false, not '{value}'"
                        )))
                    }
                }
            }
            other => {
                return Err(DataFusionError::Configuration(format!(
                    "unknown setting 'cxlake.{other}': cxlake's settings are cxlake.invalid_input and \
                     cxlake.keyed_grouping"
                )))
            }
        }
        Ok(())
    }

    fn entries(&self) -> Vec<ConfigEntry> {
        vec![
            ConfigEntry {
                key: format!("{}.invalid_input", Self::PREFIX),
                value: Some(self.invalid_input.to_string()),
                description: INVALID_INPUT_DOC,
            },
            ConfigEntry {
                key: format!("{}.keyed_grouping", Self::PREFIX),
                value: Some(self.keyed_grouping.to_string()),
                description: KEYED_GROUPING_DOC,
            },
        ]
    }
}

impl ConfigExtension for CxlakeOptions {
    const PREFIX: &'static str = "cxlake";
}

/// The policy in force for a session's configuration (the default when cxlake's settings
/// were never registered).
pub fn session_policy(config: &ConfigOptions) -> InvalidInput {
    config.extensions.get::<CxlakeOptions>().map(|o| o.invalid_input).unwrap_or_default()
}

/// An aggregate whose behaviour on invalid input is fixed when it is constructed.
pub trait PolicyAware: AggregateUDFImpl + Sized + 'static {
    fn policy(&self) -> InvalidInput;
    fn with_policy(&self, policy: InvalidInput) -> Self;
}

type Switch = Arc<dyn Fn(&AggregateUDF, InvalidInput) -> Option<Arc<AggregateUDF>> + Send + Sync>;
type Read = Arc<dyn Fn(&AggregateUDF) -> Option<InvalidInput> + Send + Sync>;

/// Analyzer rule that gives every cxlake aggregate in a plan the session's policy.
///
/// It also knows how to read an instance's policy, which is what a plan serializer needs to carry
/// the policy to another process (see [`crate::encode_aggregate_state`]).
#[derive(Default, Clone)]
pub struct InvalidInputRule {
    switches: HashMap<String, (Read, Switch)>,
}

impl fmt::Debug for InvalidInputRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InvalidInputRule").field("functions", &self.switches.len()).finish()
    }
}

impl InvalidInputRule {
    /// Makes the rule aware of one policy-aware aggregate implementation.
    pub fn add<T: PolicyAware>(&mut self, name: &str) {
        let read: Read = Arc::new(|udaf: &AggregateUDF| {
            let inner: &dyn Any = udaf.inner().as_ref();
            inner.downcast_ref::<T>().map(T::policy)
        });
        let switch: Switch = Arc::new(|udaf: &AggregateUDF, policy| {
            let inner: &dyn Any = udaf.inner().as_ref();
            let current = inner.downcast_ref::<T>()?;
            (current.policy() != policy).then(|| Arc::new(AggregateUDF::new_from_impl(current.with_policy(policy))))
        });
        self.switches.insert(name.to_string(), (read, switch));
    }

    /// The policy `udaf` carries, when it is one of the aggregates this rule knows.
    pub fn policy_of(&self, udaf: &AggregateUDF) -> Option<InvalidInput> {
        self.switches.get(udaf.name()).and_then(|(read, _)| read(udaf))
    }

    /// `udaf` with `policy`: a new instance when its policy differs, `None` when it already has
    /// that policy or is not one of the aggregates this rule knows.
    pub fn switch(&self, udaf: &AggregateUDF, policy: InvalidInput) -> Option<Arc<AggregateUDF>> {
        self.switches.get(udaf.name()).and_then(|(_, switch)| switch(udaf, policy))
    }

    fn rewrite_expr(&self, expr: Expr, policy: InvalidInput) -> Result<Transformed<Expr>> {
        expr.transform_up(|e| match e {
            Expr::AggregateFunction(AggregateFunction { func, params }) => match self.switch(&func, policy) {
                Some(func) => Ok(Transformed::yes(Expr::AggregateFunction(AggregateFunction { func, params }))),
                None => Ok(Transformed::no(Expr::AggregateFunction(AggregateFunction { func, params }))),
            },
            Expr::WindowFunction(window) => {
                let replaced = match &window.fun {
                    WindowFunctionDefinition::AggregateUDF(udaf) => self.switch(udaf, policy),
                    WindowFunctionDefinition::WindowUDF(_) => None,
                };
                match replaced {
                    Some(udaf) => {
                        let WindowFunction { params, .. } = *window;
                        Ok(Transformed::yes(Expr::WindowFunction(Box::new(WindowFunction {
                            fun: WindowFunctionDefinition::AggregateUDF(udaf),
                            params,
                        }))))
                    }
                    None => Ok(Transformed::no(Expr::WindowFunction(window))),
                }
            }
            other => Ok(Transformed::no(other)),
        })
    }
}

impl AnalyzerRule for InvalidInputRule {
    fn analyze(&self, plan: LogicalPlan, config: &ConfigOptions) -> Result<LogicalPlan> {
        let policy = session_policy(config);
        plan.transform_up_with_subqueries(|node| node.map_expressions(|e| self.rewrite_expr(e, policy))).map(|t| t.data)
    }

    fn name(&self) -> &str {
        "cxlake_invalid_input"
    }
}
