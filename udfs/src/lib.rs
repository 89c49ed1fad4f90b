//! Customer-experience and product metric functions for DataFusion, one metric family per
//! module: [`survey`] (NPS, CSAT, CES, IQS), [`rates`], [`service`] (helpdesk durations),
//! [`customer_base`] (churn, retention), [`clv`] (basic, historical and predictive lifetime value),
//! [`clv_models`] (BG/NBD and Gamma-Gamma fitted and scored in SQL), [`web`] (sessions, pages per
//! session, session duration, stickiness) and [`funnel`] (ClickHouse-compatible funnels and
//! retention).
//!
//! Every function follows the cxlake function contract: NULL inputs do not count, an aggregate
//! over no counting rows is NULL, every integer/float/decimal input type is accepted, invalid
//! input fails with an error naming the function and the value unless the session sets
//! `cxlake.invalid_input = 'skip'`, and aggregates run through a `GroupsAccumulator`, merge
//! exactly across partitions and retract rows for sliding window frames.
//!
//! Register everything with [`register_all`]; build expressions in Rust with [`functions`]:
//!
//! ```
//! use datafusion::prelude::*;
//! let ctx = SessionContext::new();
//! cxlake_udfs::register_all(&ctx).unwrap();
//! let expr = cxlake_udfs::functions::nps(col("score"));
//! ```

pub mod clv;
pub mod clv_models;
pub mod common;
pub mod customer_base;
pub mod functions;
pub mod funnel;
pub mod grouping_plan;
pub mod list_element;
pub mod rates;
pub mod service;
pub mod sessions_plan;
pub mod survey;
pub mod web;
pub mod wire;

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::execution::FunctionRegistry;
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF, WindowUDF};
use datafusion::prelude::SessionContext;

use crate::common::single_phase::SinglePhaseCollecting;
use crate::grouping_plan::KeyedGrouping;
use crate::list_element::ListElementRewrite;
use crate::sessions_plan::OnePassSessions;

pub use common::{CxlakeOptions, InvalidInput};
pub use wire::{decode_aggregate, encode_aggregate_state};

/// Every cxlake aggregate function, with the default (`'error'`) invalid-input policy.
pub fn all_aggregates() -> Vec<Arc<AggregateUDF>> {
    [
        survey::all(),
        rates::all(),
        service::all(),
        customer_base::all(),
        clv::all(),
        clv_models::all(),
        web::all(),
        funnel::all(),
    ]
    .concat()
}

/// Every cxlake scalar function (model scoring and other per-row functions).
pub fn all_scalars() -> Vec<Arc<ScalarUDF>> {
    [clv::scalars(), clv_models::scalars()].concat()
}

/// Every cxlake window function (used with `OVER (...)`).
pub fn all_windows() -> Vec<Arc<WindowUDF>> {
    web::windows()
}

/// The analyzer rule that applies `cxlake.invalid_input` to every cxlake aggregate.
fn invalid_input_rule() -> common::InvalidInputRule {
    let mut rule = common::InvalidInputRule::default();
    survey::add_to_rule(&mut rule);
    rates::add_to_rule(&mut rule);
    service::add_to_rule(&mut rule);
    customer_base::add_to_rule(&mut rule);
    clv::add_to_rule(&mut rule);
    clv_models::add_to_rule(&mut rule);
    rule
}

/// Registers every cxlake function, the `cxlake.*` settings and the rule that applies them, and
/// puts cxlake's vectorized `array_element` ([`list_element`]) in place of DataFusion's.
///
/// Returns the names of functions that replaced an existing registration. Calling it again on
/// the same session re-registers the functions and leaves settings already made in place.
pub fn register_all(ctx: &SessionContext) -> Result<Vec<String>> {
    let state = ctx.state_ref();
    let mut state = state.write();
    let mut replaced = Vec::new();
    let mut aggregate_names = Vec::new();
    for udaf in all_aggregates() {
        aggregate_names.push(udaf.name().to_string());
        if let Some(old) = state.register_udaf(udaf)? {
            replaced.push(old.name().to_string());
        }
    }
    for udf in all_scalars() {
        if let Some(old) = state.register_udf(udf)? {
            replaced.push(old.name().to_string());
        }
    }
    for udwf in all_windows() {
        if let Some(old) = state.register_udwf(udwf)? {
            replaced.push(old.name().to_string());
        }
    }
    let options = state.config_mut().options_mut();
    if options.extensions.get::<CxlakeOptions>().is_none() {
        options.extensions.insert(CxlakeOptions::default());
    }
    if !state.analyzer().function_rewrites().iter().any(|r| r.name() == ListElementRewrite::NAME) {
        state.register_function_rewrite(Arc::new(ListElementRewrite))?;
    }
    let rule = invalid_input_rule();
    let has_rule = state.analyzer().rules.iter().any(|r| r.name() == datafusion::optimizer::AnalyzerRule::name(&rule));
    drop(state);
    if !has_rule {
        ctx.add_analyzer_rule(Arc::new(rule));
    }
    add_physical_rules(ctx, aggregate_names);
    Ok(replaced)
}

/// Adds cxlake's physical rules: [`SinglePhaseCollecting`] for the funnel functions right after
/// DataFusion has combined partial and final aggregates; [`OnePassSessions`] after every rule
/// that places or removes sorts, then [`KeyedGrouping`] once every rule that rewrites an
/// `AggregateExec` has run; all before the final sanity check, which verifies what they made.
/// `aggregates` names cxlake's aggregates (a plan names each by its canonical name). Idempotent.
fn add_physical_rules(ctx: &SessionContext, aggregates: Vec<String>) {
    let state = ctx.state_ref();
    let mut state = state.write();
    let mut rules = state.physical_optimizers().to_vec();
    if rules.iter().any(|r| r.name() == SinglePhaseCollecting::NAME) {
        return;
    }
    let at = rules.iter().position(|r| r.name() == "CombinePartialFinalAggregate").map_or(rules.len(), |i| i + 1);
    rules.insert(at, Arc::new(SinglePhaseCollecting::new(funnel::COLLECTING)));
    let at = rules.iter().position(|r| r.name() == "SanityCheckPlan").unwrap_or(rules.len());
    rules.insert(at, Arc::new(OnePassSessions));
    rules.insert(at + 1, Arc::new(KeyedGrouping::new(aggregates)));
    *state = SessionStateBuilder::new_from_existing(state.clone()).with_physical_optimizer_rules(rules).build();
}
