//! `bgnbd_fit` and `gamma_gamma_fit`: maximum-likelihood fits as aggregates.
//!
//! The state is the set of distinct customer summaries with their summed weights — (x, t_x, T) for
//! BG/NBD, (x, m_x) for Gamma-Gamma — which merges exactly across partitions (a union with weights
//! added) and is small: real customer bases repeat the same summaries many times. `evaluate`
//! sorts the summaries, so the likelihood is summed in the same order whatever the partitioning,
//! and runs the optimizer once per group.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBuilder, Float64Array, Float64Builder, Int64Array, ListArray,
    StructArray,
};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Float64Type, Int64Type};
use datafusion::common::{internal_err, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{AggregateUDFImpl, Documentation, Signature, Volatility};

use super::bgnbd::{self, BgNbd};
use super::gamma_gamma::{self, GammaGamma};
use super::{check_customer, CustomerCheck};
use crate::common::collect::{Collector, CollectorFactory};
use crate::common::fold::counting_rows;
use crate::common::{args, fmt_f64, InvalidInput, PolicyAware};

/// The two fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FitModel {
    BgNbd,
    GammaGamma,
}

impl FitModel {
    pub const ALL: [FitModel; 2] = [Self::BgNbd, Self::GammaGamma];

    pub fn name(self) -> &'static str {
        match self {
            Self::BgNbd => "bgnbd_fit",
            Self::GammaGamma => "gamma_gamma_fit",
        }
    }

    fn signatures(self) -> &'static str {
        match self {
            Self::BgNbd => "bgnbd_fit(frequency, recency, age [, weight])",
            Self::GammaGamma => "gamma_gamma_fit(frequency, monetary_value [, weight])",
        }
    }

    /// The customer summary's columns (before the optional weight).
    fn dimensions(self) -> usize {
        match self {
            Self::BgNbd => 3,
            Self::GammaGamma => 2,
        }
    }

    fn parameters(self) -> &'static [&'static str] {
        match self {
            Self::BgNbd => &BgNbd::PARAMETERS,
            Self::GammaGamma => &GammaGamma::PARAMETERS,
        }
    }

    /// STRUCT<parameters..., log_likelihood DOUBLE, customers BIGINT, converged BOOLEAN>
    pub fn result_fields(self) -> Fields {
        let mut fields: Vec<Field> =
            self.parameters().iter().map(|p| Field::new(*p, DataType::Float64, true)).collect();
        fields.push(Field::new("log_likelihood", DataType::Float64, true));
        fields.push(Field::new("customers", DataType::Int64, true));
        fields.push(Field::new("converged", DataType::Boolean, true));
        fields.into()
    }

    /// Sorted weighted summaries → parameters, log-likelihood, converged.
    fn fit(self, points: &[([f64; 3], f64)]) -> (Vec<f64>, f64, bool) {
        match self {
            Self::BgNbd => {
                let (p, ll, ok) = bgnbd::fit(points);
                (vec![p.r, p.alpha, p.a, p.b], ll, ok)
            }
            Self::GammaGamma => {
                let points: Vec<([f64; 2], f64)> = points.iter().map(|&([x, m, _], w)| ([x, m], w)).collect();
                let (p, ll, ok) = gamma_gamma::fit(&points);
                (vec![p.p, p.q, p.gamma], ll, ok)
            }
        }
    }

    /// Whether a summary counts, is left out (Gamma-Gamma: no repeat purchase or no spend), or is
    /// invalid (with the reason).
    fn check(self, v: &[f64; 3]) -> CustomerCheck {
        match self {
            Self::BgNbd => check_customer(v[0], Some((v[1], v[2])), None),
            Self::GammaGamma => match check_customer(v[0], None, Some(v[1])) {
                CustomerCheck::Counts if v[0] == 0.0 || v[1] == 0.0 => CustomerCheck::LeftOut,
                other => other,
            },
        }
    }
}

/// A fit as a DataFusion aggregate, with its invalid-input policy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FitFunction {
    model: FitModel,
    policy: InvalidInput,
    signature: Signature,
}

impl FitFunction {
    pub fn new(model: FitModel) -> Self {
        Self { model, policy: InvalidInput::default(), signature: Signature::user_defined(Volatility::Immutable) }
    }

    fn build<F: CollectorFactory>(&self, _args: &AccumulatorArgs, factory: F) -> Result<F::Output> {
        Ok(factory.build(FitCollector { model: self.model }, self.policy))
    }
}

impl PolicyAware for FitFunction {
    fn policy(&self) -> InvalidInput {
        self.policy
    }

    fn with_policy(&self, policy: InvalidInput) -> Self {
        Self { policy, ..self.clone() }
    }
}

impl AggregateUDFImpl for FitFunction {
    fn name(&self) -> &str {
        self.model.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, types: &[DataType]) -> Result<Vec<DataType>> {
        let (name, sigs, n) = (self.model.name(), self.model.signatures(), self.model.dimensions());
        args::arity(name, sigs, types, n, n + 1)?;
        let names = ["frequency", if n == 3 { "recency" } else { "monetary_value" }, "age"];
        types
            .iter()
            .enumerate()
            .map(|(i, t)| args::float(name, sigs, if i < n { names[i] } else { "weight" }, t))
            .collect()
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(self.model.result_fields()))
    }

    crate::common::collect::collector_accumulators!();

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let list = DataType::List(Arc::new(Field::new_list_field(DataType::Float64, false)));
        let mut fields: Vec<FieldRef> = (0..self.model.dimensions() + 1)
            .map(|i| Arc::new(Field::new(format!("{}[summary{i}]", args.name), list.clone(), true)))
            .collect();
        fields.push(Arc::new(Field::new(format!("{}[customers]", args.name), DataType::Int64, true)));
        Ok(fields)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(super::docs::fit(self.model))
    }
}

/// A group of a fit: distinct summaries (as bit patterns, padded to three) and their weights.
#[derive(Debug, Default)]
pub struct FitGroup {
    weights: HashMap<[u64; 3], f64>,
    customers: i64,
}

/// +0.0 and −0.0 are one summary.
fn key(v: &[f64; 3]) -> [u64; 3] {
    v.map(|x| (x + 0.0).to_bits())
}

#[derive(Debug)]
struct FitCollector {
    model: FitModel,
}

impl FitCollector {
    /// Calls `f(row, summary, weight)` for every counting row.
    fn rows(
        &self,
        args: &[ArrayRef],
        filter: Option<&BooleanArray>,
        mut f: impl FnMut(usize, [f64; 3], f64) -> Result<()>,
    ) -> Result<()> {
        let n = self.model.dimensions();
        let columns: Vec<&Float64Array> = args.iter().map(|a| a.as_primitive::<Float64Type>()).collect();
        let rows = counting_rows(&columns.iter().map(|c| c.nulls()).collect::<Vec<_>>(), filter);
        let len = columns.first().map_or(0, |c| c.len());
        for row in 0..len {
            if rows.as_ref().is_some_and(|r| r.is_null(row)) {
                continue;
            }
            let mut v = [0.0; 3];
            for (d, c) in columns[..n].iter().enumerate() {
                v[d] = c.value(row);
            }
            let weight = columns.get(n).map_or(1.0, |w| w.value(row));
            f(row, v, weight)?;
        }
        Ok(())
    }

    fn describe(&self, v: &[f64; 3], weight: f64) -> Option<String> {
        if !(weight.is_finite() && weight >= 0.0) {
            return Some(format!("weight {} is not a finite non-negative number", fmt_f64(weight)));
        }
        match self.model.check(v) {
            CustomerCheck::Invalid(reason) => Some(reason),
            _ => None,
        }
    }
}

impl Collector for FitCollector {
    type Group = FitGroup;

    fn name(&self) -> &'static str {
        self.model.name()
    }

    fn update(
        &self,
        args: &[ArrayRef],
        filter: Option<&BooleanArray>,
        group_of: &[usize],
        groups: &mut [FitGroup],
    ) -> Result<bool> {
        let mut invalid = false;
        self.rows(args, filter, |row, v, weight| {
            if !(weight.is_finite() && weight >= 0.0) {
                invalid = true;
                return Ok(());
            }
            match self.model.check(&v) {
                CustomerCheck::Counts => {
                    let group = &mut groups[group_of[row]];
                    *group.weights.entry(key(&v)).or_insert(0.0) += weight;
                    group.customers += 1;
                }
                CustomerCheck::LeftOut => {}
                CustomerCheck::Invalid(_) => invalid = true,
            }
            Ok(())
        })?;
        Ok(invalid)
    }

    fn describe_invalid(&self, args: &[ArrayRef], filter: Option<&BooleanArray>) -> Result<String> {
        let mut found = None;
        self.rows(args, filter, |_, v, weight| {
            if found.is_none() {
                found = self.describe(&v, weight);
            }
            Ok(())
        })?;
        Ok(found.unwrap_or_else(|| "invalid customer summary".to_string()))
    }

    fn state(&self, groups: &[FitGroup]) -> Result<Vec<ArrayRef>> {
        let n = self.model.dimensions();
        let mut values: Vec<Vec<f64>> = vec![Vec::new(); n + 1];
        let mut offsets = vec![0i32];
        for g in groups {
            for (k, w) in &g.weights {
                for (d, column) in values[..n].iter_mut().enumerate() {
                    column.push(f64::from_bits(k[d]));
                }
                values[n].push(*w);
            }
            offsets.push(values[n].len() as i32);
        }
        let offsets = OffsetBuffer::new(offsets.into());
        let field = Arc::new(Field::new_list_field(DataType::Float64, false));
        let mut arrays: Vec<ArrayRef> = values
            .into_iter()
            .map(|v| {
                Arc::new(ListArray::new(field.clone(), offsets.clone(), Arc::new(Float64Array::from(v)), None))
                    as ArrayRef
            })
            .collect();
        arrays.push(Arc::new(Int64Array::from_iter_values(groups.iter().map(|g| g.customers))));
        Ok(arrays)
    }

    fn merge(&self, states: &[ArrayRef], group_of: &[usize], groups: &mut [FitGroup]) -> Result<()> {
        let n = self.model.dimensions();
        if states.len() != n + 2 {
            return internal_err!("{}: expected {} state columns, got {}", self.model.name(), n + 2, states.len());
        }
        let lists: Vec<&ListArray> = states[..=n].iter().map(|a| a.as_list::<i32>()).collect();
        let customers = states[n + 1].as_primitive::<Int64Type>();
        for (row, &g) in group_of.iter().enumerate() {
            if lists[0].is_null(row) {
                continue;
            }
            let group = &mut groups[g];
            let columns: Vec<ArrayRef> = lists.iter().map(|l| l.value(row)).collect();
            let columns: Vec<&Float64Array> = columns.iter().map(|c| c.as_primitive::<Float64Type>()).collect();
            for i in 0..columns[0].len() {
                let mut v = [0.0; 3];
                for d in 0..n {
                    v[d] = columns[d].value(i);
                }
                *group.weights.entry(key(&v)).or_insert(0.0) += columns[n].value(i);
            }
            group.customers += customers.value(row);
        }
        Ok(())
    }

    fn evaluate(&self, groups: &[FitGroup]) -> Result<ArrayRef> {
        let parameters = self.model.parameters().len();
        let mut values: Vec<Float64Builder> = (0..=parameters).map(|_| Float64Builder::new()).collect();
        let mut customers = Vec::with_capacity(groups.len());
        let mut converged = BooleanBuilder::new();
        let mut valid = Vec::with_capacity(groups.len());
        for g in groups {
            let mut points: Vec<([f64; 3], f64)> = g.weights.iter().map(|(k, w)| (k.map(f64::from_bits), *w)).collect();
            points.sort_by(|a, b| {
                a.0[0].total_cmp(&b.0[0]).then(a.0[1].total_cmp(&b.0[1])).then(a.0[2].total_cmp(&b.0[2]))
            });
            let fitted = (!points.is_empty()).then(|| self.model.fit(&points));
            let (params, ll, ok) = fitted.clone().unwrap_or((vec![0.0; parameters], 0.0, false));
            for (builder, v) in values.iter_mut().zip(params.iter().chain(std::iter::once(&ll))) {
                builder.append_value(*v);
            }
            customers.push(g.customers);
            converged.append_value(ok);
            valid.push(fitted.is_some());
        }
        // Fields are NULL where the struct is, so `fit['r']` of a group without rows is NULL.
        let valid = NullBuffer::from(valid);
        let mut columns: Vec<ArrayRef> = values
            .into_iter()
            .map(|mut b| Arc::new(Float64Array::new(b.finish().values().clone(), Some(valid.clone()))) as ArrayRef)
            .collect();
        columns.push(Arc::new(Int64Array::new(customers.into(), Some(valid.clone()))));
        let converged = converged.finish();
        columns.push(Arc::new(BooleanArray::new(converged.values().clone(), Some(valid.clone()))));
        Ok(Arc::new(StructArray::try_new(self.model.result_fields(), columns, Some(valid))?))
    }

    fn group_size(&self, group: &FitGroup) -> usize {
        group.weights.capacity() * (std::mem::size_of::<[u64; 3]>() + 16)
    }
}
