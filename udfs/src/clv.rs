//! Customer lifetime value the simple ways: basic CLV (a product of three numbers), historical
//! CLV (margin earned so far) and predictive CLV (monthly purchase rate × order value × lifespan).
//! The probabilistic models live in [`crate::clv_models`].

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, TimestampMicrosecondArray,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type, Int64Type, TimeUnit};
use datafusion::common::{exec_err, internal_err, plan_err, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    AggregateUDF, AggregateUDFImpl, ColumnarValue, DocSection, Documentation, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};

use crate::common::collect::{Collector, CollectorFactory};
use crate::common::fold::{counting_rows, fold_two};
use crate::common::kernel::{AccumulatorFactory, Kernel};
use crate::common::keys::{binary_list_field, binary_lists, check_key_type, KeyEncoder};
use crate::common::state::{MeanState, MetricState};
use crate::common::{
    args, columnar_result, fmt_f64, invalid_input_error, session_policy, InvalidInput, InvalidInputRule, PolicyAware,
};

const SECTION: DocSection = DocSection {
    include: true,
    label: "Customer lifetime value",
    description: Some("Basic, historical and predictive CLV."),
};

/// Days in an average Gregorian month (365.2425 / 12): predictive CLV's month.
pub const DAYS_PER_MONTH: f64 = 30.436875;

// ---- clv(avg_purchase_value, purchase_frequency, lifespan) ------------------------------------

const CLV_SIGNATURE: &str = "clv(avg_purchase_value, purchase_frequency, lifespan)";

/// Basic CLV as a scalar function.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BasicClv {
    signature: Signature,
}

impl Default for BasicClv {
    fn default() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for BasicClv {
    fn name(&self) -> &str {
        "clv"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, types: &[DataType]) -> Result<Vec<DataType>> {
        args::arity("clv", CLV_SIGNATURE, types, 3, 3)?;
        let names = ["avg_purchase_value", "purchase_frequency", "lifespan"];
        types.iter().zip(names).map(|(t, n)| args::float("clv", CLV_SIGNATURE, n, t)).collect()
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let policy = session_policy(&args.config_options);
        let scalar_result = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [value, frequency, lifespan] = [0, 1, 2].map(|i| arrays[i].as_primitive::<Float64Type>());
        let names = ["avg_purchase_value", "purchase_frequency", "lifespan"];
        let nulls = NullBuffer::union_many([value.nulls(), frequency.nulls(), lifespan.nulls()]);
        let mut out = Vec::with_capacity(value.len());
        for row in 0..value.len() {
            if nulls.as_ref().is_some_and(|n| n.is_null(row)) {
                out.push(None);
                continue;
            }
            let v = [value.value(row), frequency.value(row), lifespan.value(row)];
            match v.iter().position(|x| !(x.is_finite() && *x >= 0.0)) {
                None => out.push(Some(v[0] * v[1] * v[2])),
                Some(i) if policy == InvalidInput::Error => {
                    let detail = format!("{} {} is not a finite non-negative number", names[i], fmt_f64(v[i]));
                    return Err(invalid_input_error("clv", &detail));
                }
                Some(_) => out.push(None),
            }
        }
        columnar_result(Arc::new(Float64Array::from(out)), scalar_result)
    }

    fn documentation(&self) -> Option<&Documentation> {
        static DOC: LazyLock<Documentation> = LazyLock::new(|| {
            Documentation::builder(
                SECTION,
                "Basic customer lifetime value: avg_purchase_value × purchase_frequency × lifespan, as DOUBLE. The frequency and the lifespan must use the same time unit (purchases per year and years, or per month and months). NULL when any argument is NULL; a negative, NaN or infinite argument fails the query unless `SET cxlake.invalid_input = 'skip'`, which gives NULL.",
                CLV_SIGNATURE,
            )
            .with_argument("avg_purchase_value", "Mean value of one purchase, ≥ 0.")
            .with_argument("purchase_frequency", "Purchases per time unit, ≥ 0.")
            .with_argument("lifespan", "Customer lifespan in the same time unit, ≥ 0.")
            .with_sql_example("SELECT clv(50, 5, 3);\n-- 50 per purchase × 5 purchases a year × 3 years = 750")
            .with_related_udf("clv_predictive")
            .build()
        });
        Some(&DOC)
    }
}

// ---- clv_historical(amount, gross_margin) ------------------------------------------------------

const HISTORICAL_SIGNATURE: &str = "clv_historical(amount, gross_margin)";

/// Historical CLV: Σ amount × gross_margin.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HistoricalClv {
    policy: InvalidInput,
    signature: Signature,
}

impl Default for HistoricalClv {
    fn default() -> Self {
        Self { policy: InvalidInput::default(), signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl PolicyAware for HistoricalClv {
    fn policy(&self) -> InvalidInput {
        self.policy
    }

    fn with_policy(&self, policy: InvalidInput) -> Self {
        Self { policy, ..self.clone() }
    }
}

impl HistoricalClv {
    fn build<F: AccumulatorFactory>(&self, _args: &AccumulatorArgs, factory: F) -> Result<F::Output> {
        Ok(factory.build(HistoricalKernel, self.policy))
    }
}

impl AggregateUDFImpl for HistoricalClv {
    fn name(&self) -> &str {
        "clv_historical"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, types: &[DataType]) -> Result<Vec<DataType>> {
        args::arity("clv_historical", HISTORICAL_SIGNATURE, types, 2, 2)?;
        Ok(vec![
            args::float("clv_historical", HISTORICAL_SIGNATURE, "amount", &types[0])?,
            args::float("clv_historical", HISTORICAL_SIGNATURE, "gross_margin", &types[1])?,
        ])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    crate::common::kernel_accumulators!();

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(MeanState::fields(args.name))
    }

    fn documentation(&self) -> Option<&Documentation> {
        static DOC: LazyLock<Documentation> = LazyLock::new(|| {
            Documentation::builder(
                SECTION,
                "Historical customer lifetime value: the gross margin earned so far, Σ amount × gross_margin, as DOUBLE; group by customer for per-customer CLV. Refunds may be negative amounts. Rows with a NULL amount or margin do not count; a group with no counting rows gives NULL. A margin above 1 (give 35 % as 0.35), or a NaN or infinite value, fails the query unless `SET cxlake.invalid_input = 'skip'`, which ignores such rows. Works in sliding window frames (running CLV).",
                HISTORICAL_SIGNATURE,
            )
            .with_argument("amount", "Order revenue, any numeric type (negative for refunds).")
            .with_argument("gross_margin", "The order's gross margin as a fraction of revenue, at most 1 (0.35 = 35 %; negative for sales at a loss).")
            .with_sql_example("SELECT customer_id, clv_historical(amount, margin) AS clv FROM orders GROUP BY customer_id;\n-- orders of 100 at 0.3 and 50 at 0.4: 30 + 20 = 50")
            .with_related_udf("clv_predictive")
            .build()
        });
        Some(&DOC)
    }
}

fn historical_invalid(amount: f64, margin: f64) -> bool {
    !(amount.is_finite() && margin.is_finite() && margin <= 1.0)
}

#[derive(Debug)]
struct HistoricalKernel;

impl Kernel for HistoricalKernel {
    type State = MeanState;

    fn name(&self) -> &'static str {
        "clv_historical"
    }

    fn fold(
        &self,
        args: &[ArrayRef],
        filter: Option<&BooleanArray>,
        mut f: impl FnMut(usize, MeanState),
    ) -> Result<bool> {
        let mut invalid = false;
        let (amounts, margins) = (args[0].as_primitive::<Float64Type>(), args[1].as_primitive::<Float64Type>());
        fold_two(amounts, margins, filter, |row, amount, margin, counts| {
            let bad = historical_invalid(amount, margin);
            invalid |= counts & bad;
            let c = MeanState { sum: amount * margin, count: 1 };
            f(row, if counts & !bad { c } else { MeanState::default() });
        });
        Ok(invalid)
    }

    fn describe_invalid(&self, args: &[ArrayRef], filter: Option<&BooleanArray>) -> Result<String> {
        let (amounts, margins) = (args[0].as_primitive::<Float64Type>(), args[1].as_primitive::<Float64Type>());
        let mut found = None;
        fold_two(amounts, margins, filter, |_, a, m, counts| {
            if counts && found.is_none() && historical_invalid(a, m) {
                found = Some((a, m));
            }
        });
        let (a, m) = found.unwrap_or_default();
        Ok(if !a.is_finite() {
            format!("amount {} is not a finite number", fmt_f64(a))
        } else if m.is_finite() {
            format!("gross_margin {} is above 1: give margins as fractions of revenue (0.35 for 35 %)", fmt_f64(m))
        } else {
            format!("gross_margin {} is not a finite number", fmt_f64(m))
        })
    }

    fn evaluate(&self, states: &[MeanState]) -> Result<ArrayRef> {
        Ok(Arc::new(states.iter().map(|s| (s.count > 0).then_some(s.sum)).collect::<Float64Array>()))
    }
}

// ---- clv_predictive(customer_id, order_ts, amount, lifespan_months) ----------------------------

const PREDICTIVE_SIGNATURE: &str = "clv_predictive(customer_id, order_ts, amount, lifespan_months)";

/// Predictive CLV: average monthly transactions per customer × average order value × lifespan.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PredictiveClv {
    policy: InvalidInput,
    signature: Signature,
}

impl Default for PredictiveClv {
    fn default() -> Self {
        Self { policy: InvalidInput::default(), signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl PolicyAware for PredictiveClv {
    fn policy(&self) -> InvalidInput {
        self.policy
    }

    fn with_policy(&self, policy: InvalidInput) -> Self {
        Self { policy, ..self.clone() }
    }
}

impl PredictiveClv {
    fn build<F: CollectorFactory>(&self, args: &AccumulatorArgs, factory: F) -> Result<F::Output> {
        let keys = KeyEncoder::new(args.expr_fields[0].data_type())?;
        Ok(factory.build(PredictiveCollector { keys }, self.policy))
    }
}

/// Order times become microsecond timestamps (the zone kept: differences are zone-free).
fn order_ts_type(t: &DataType) -> Result<DataType> {
    match t {
        DataType::Timestamp(_, tz) => Ok(DataType::Timestamp(TimeUnit::Microsecond, tz.clone())),
        DataType::Date32 | DataType::Date64 | DataType::Null => Ok(DataType::Timestamp(TimeUnit::Microsecond, None)),
        DataType::Dictionary(_, value) => order_ts_type(value),
        other => plan_err!(
            "clv_predictive: order_ts must be a TIMESTAMP or DATE, not {other}. Accepted: {PREDICTIVE_SIGNATURE}"
        ),
    }
}

impl AggregateUDFImpl for PredictiveClv {
    fn name(&self) -> &str {
        "clv_predictive"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, types: &[DataType]) -> Result<Vec<DataType>> {
        let name = "clv_predictive";
        args::arity(name, PREDICTIVE_SIGNATURE, types, 4, 4)?;
        Ok(vec![
            check_key_type(name, PREDICTIVE_SIGNATURE, "customer_id", &types[0])?,
            order_ts_type(&types[1])?,
            args::float(name, PREDICTIVE_SIGNATURE, "amount", &types[2])?,
            args::float(name, PREDICTIVE_SIGNATURE, "lifespan_months", &types[3])?,
        ])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    crate::common::collect::collector_accumulators!();

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let f = |field: &str, t: DataType| Arc::new(Field::new(format!("{}[{field}]", args.name), t, true));
        Ok(vec![
            f("orders", DataType::Int64),
            f("revenue", DataType::Float64),
            f("first_order", DataType::Int64),
            f("last_order", DataType::Int64),
            f("lifespan_months", DataType::Float64),
            binary_list_field(args.name, "customers"),
        ])
    }

    fn documentation(&self) -> Option<&Documentation> {
        static DOC: LazyLock<Documentation> = LazyLock::new(|| {
            Documentation::builder(
                SECTION,
                "Predictive customer lifetime value: average monthly transactions per customer × average order value × lifespan_months, as DOUBLE. Over the counting rows: orders = rows, revenue = Σ amount, customers = distinct customer_id (exact, any type), months = max(1, (last − first order_ts) / 30.436875 days); average monthly transactions = orders / customers / months, average order value = revenue / orders. Rows with a NULL in any argument do not count; a group with no counting rows gives NULL. lifespan_months must be the same in every row of a group. A NaN or infinite amount, or a negative lifespan, fails the query unless `SET cxlake.invalid_input = 'skip'`, which ignores such rows; refunds may be negative amounts.",
                PREDICTIVE_SIGNATURE,
            )
            .with_argument("customer_id", "The customer, any type (integers, strings, structs).")
            .with_argument("order_ts", "Order time: TIMESTAMP (any unit, any zone) or DATE.")
            .with_argument("amount", "Order revenue, any numeric type.")
            .with_argument("lifespan_months", "Expected customer lifespan in months, ≥ 0, the same for the whole group.")
            .with_sql_example("SELECT segment, clv_predictive(customer_id, order_ts, amount, 36) FROM orders GROUP BY segment;\n-- 2 customers, 10 orders of 50 within a month: 10 / 2 / 1 × 50 × 3 = 750 with lifespan 3")
            .with_related_udf("clv")
            .with_related_udf("customer_lifetime_value")
            .build()
        });
        Some(&DOC)
    }
}

#[derive(Debug, Default)]
pub struct PredictiveGroup {
    orders: i64,
    revenue: f64,
    first: Option<i64>,
    last: Option<i64>,
    lifespan: Option<f64>,
    customers: HashSet<Box<[u8]>>,
}

impl PredictiveGroup {
    fn set_lifespan(&mut self, months: f64) -> Result<()> {
        match self.lifespan {
            Some(current) if current != months => exec_err!(
                "clv_predictive: lifespan_months must be the same for every row of a group, got {} and {}. \
                 Give one lifespan per group (a constant, or group by the column it comes from)",
                fmt_f64(current),
                fmt_f64(months)
            ),
            _ => {
                self.lifespan = Some(months);
                Ok(())
            }
        }
    }

    fn add_times(&mut self, first: i64, last: i64) {
        self.first = Some(self.first.map_or(first, |f| f.min(first)));
        self.last = Some(self.last.map_or(last, |l| l.max(last)));
    }
}

fn predictive_invalid(amount: f64, lifespan: f64) -> bool {
    !(amount.is_finite() && lifespan.is_finite() && lifespan >= 0.0)
}

#[derive(Debug)]
struct PredictiveCollector {
    /// Customer ids of any type as comparable bytes: equal ids give equal bytes in every
    /// partition, so the distinct sets merge by union.
    keys: KeyEncoder,
}

impl PredictiveCollector {
    fn columns(args: &[ArrayRef]) -> (&TimestampMicrosecondArray, &Float64Array, &Float64Array) {
        (args[1].as_primitive(), args[2].as_primitive(), args[3].as_primitive())
    }
}

impl Collector for PredictiveCollector {
    type Group = PredictiveGroup;

    fn name(&self) -> &'static str {
        "clv_predictive"
    }

    fn update(
        &self,
        args: &[ArrayRef],
        filter: Option<&BooleanArray>,
        group_of: &[usize],
        groups: &mut [PredictiveGroup],
    ) -> Result<bool> {
        let (times, amounts, lifespans) = Self::columns(args);
        let rows = counting_rows(
            &[args[0].logical_nulls().as_ref(), times.nulls(), amounts.nulls(), lifespans.nulls()],
            filter,
        );
        let keys = self.keys.encode(&args[0])?;
        let mut invalid = false;
        for row in 0..times.len() {
            if rows.as_ref().is_some_and(|r| r.is_null(row)) {
                continue;
            }
            let (amount, lifespan) = (amounts.value(row), lifespans.value(row));
            if predictive_invalid(amount, lifespan) {
                invalid = true;
                continue;
            }
            let group = &mut groups[group_of[row]];
            group.set_lifespan(lifespan)?;
            group.orders += 1;
            group.revenue += amount;
            let t = times.value(row);
            group.add_times(t, t);
            let key = keys.row(row);
            if !group.customers.contains(key.as_ref()) {
                group.customers.insert(key.as_ref().into());
            }
        }
        Ok(invalid)
    }

    fn describe_invalid(&self, args: &[ArrayRef], filter: Option<&BooleanArray>) -> Result<String> {
        let (times, amounts, lifespans) = Self::columns(args);
        let rows = counting_rows(
            &[args[0].logical_nulls().as_ref(), times.nulls(), amounts.nulls(), lifespans.nulls()],
            filter,
        );
        for row in 0..times.len() {
            let (a, l) = (amounts.value(row), lifespans.value(row));
            if rows.as_ref().is_none_or(|r| r.is_valid(row)) && predictive_invalid(a, l) {
                return Ok(if a.is_finite() {
                    format!("lifespan_months {} is not a finite non-negative number of months", fmt_f64(l))
                } else {
                    format!("amount {} is not a finite number", fmt_f64(a))
                });
            }
        }
        Ok("invalid row".to_string())
    }

    fn state(&self, groups: &[PredictiveGroup]) -> Result<Vec<ArrayRef>> {
        // Sorted, so that the state (and anything derived from it) does not depend on hashing.
        let customers = binary_lists(groups.iter().map(|g| {
            let mut sorted: Vec<&[u8]> = g.customers.iter().map(|k| k.as_ref()).collect();
            sorted.sort_unstable();
            Some(sorted)
        }));
        Ok(vec![
            Arc::new(Int64Array::from_iter_values(groups.iter().map(|g| g.orders))),
            Arc::new(Float64Array::from_iter_values(groups.iter().map(|g| g.revenue))),
            Arc::new(Int64Array::from_iter(groups.iter().map(|g| g.first))),
            Arc::new(Int64Array::from_iter(groups.iter().map(|g| g.last))),
            Arc::new(Float64Array::from_iter(groups.iter().map(|g| g.lifespan))),
            customers,
        ])
    }

    fn merge(&self, states: &[ArrayRef], group_of: &[usize], groups: &mut [PredictiveGroup]) -> Result<()> {
        if states.len() != 6 {
            return internal_err!("clv_predictive: expected 6 state columns, got {}", states.len());
        }
        let orders = states[0].as_primitive::<Int64Type>();
        let revenue = states[1].as_primitive::<Float64Type>();
        let (first, last) = (states[2].as_primitive::<Int64Type>(), states[3].as_primitive::<Int64Type>());
        let lifespan = states[4].as_primitive::<Float64Type>();
        let customers = states[5].as_list::<i32>();
        for (row, &g) in group_of.iter().enumerate() {
            let group = &mut groups[g];
            if lifespan.is_valid(row) {
                group.set_lifespan(lifespan.value(row))?;
            }
            group.orders += orders.value(row);
            group.revenue += revenue.value(row);
            if first.is_valid(row) {
                group.add_times(first.value(row), last.value(row));
            }
            let keys = customers.value(row);
            for key in keys.as_binary::<i32>().iter().flatten() {
                if !group.customers.contains(key) {
                    group.customers.insert(key.into());
                }
            }
        }
        Ok(())
    }

    fn evaluate(&self, groups: &[PredictiveGroup]) -> Result<ArrayRef> {
        let micros_per_month = DAYS_PER_MONTH * 86_400e6;
        Ok(Arc::new(
            groups
                .iter()
                .map(|g| {
                    let (first, last, lifespan) = (g.first?, g.last?, g.lifespan?);
                    (g.orders > 0).then(|| {
                        let months = ((last - first) as f64 / micros_per_month).max(1.0);
                        let monthly_transactions = g.orders as f64 / g.customers.len() as f64 / months;
                        let order_value = g.revenue / g.orders as f64;
                        monthly_transactions * order_value * lifespan
                    })
                })
                .collect::<Float64Array>(),
        ))
    }

    fn group_size(&self, group: &PredictiveGroup) -> usize {
        group.customers.iter().map(|k| k.len() + 24).sum()
    }
}

// ---- registry -----------------------------------------------------------------------------------

static AGGREGATES: LazyLock<Vec<Arc<AggregateUDF>>> = LazyLock::new(|| {
    vec![
        Arc::new(AggregateUDF::new_from_impl(HistoricalClv::default())),
        Arc::new(AggregateUDF::new_from_impl(PredictiveClv::default())),
    ]
});

/// `clv_historical` and `clv_predictive`.
pub fn all() -> Vec<Arc<AggregateUDF>> {
    AGGREGATES.clone()
}

/// `clv`.
pub fn scalars() -> Vec<Arc<ScalarUDF>> {
    vec![Arc::new(ScalarUDF::new_from_impl(BasicClv::default()))]
}

pub(crate) fn add_to_rule(rule: &mut InvalidInputRule) {
    rule.add::<HistoricalClv>("clv_historical");
    rule.add::<PredictiveClv>("clv_predictive");
}
