//! Probabilistic customer lifetime value: the BG/NBD model of purchase counts and the
//! Gamma-Gamma model of spend (Fader, Hardie & Lee 2005; Fader & Hardie 2013), fitted by maximum
//! likelihood inside SQL and used to score every customer in the same query.
//!
//! - [`rfm`]: `rfm_summary`, an order log → (frequency, recency, age, monetary value);
//! - [`fit`]: `bgnbd_fit` and `gamma_gamma_fit`, the fits as aggregates;
//! - [`scoring`]: P(alive), expected purchases, per-customer likelihood, expected spend and CLV;
//! - [`bgnbd`], [`gamma_gamma`]: the models' formulas; [`special`] and [`optimize`] the numerics.
//!
//! Time is in the RFM columns' own unit (weeks from `rfm_summary`, as in the papers).

pub mod bgnbd;
mod docs;
pub mod fit;
pub mod gamma_gamma;
pub mod optimize;
pub mod rfm;
pub mod scoring;
pub mod special;

use std::sync::{Arc, LazyLock};

use datafusion::logical_expr::{AggregateUDF, ScalarUDF};

use crate::common::{fmt_f64, InvalidInputRule};

/// What a customer summary is to a model.
#[derive(Debug, Clone, PartialEq)]
pub enum CustomerCheck {
    Counts,
    /// Valid, but outside the model (Gamma-Gamma: no repeat purchase or no spend).
    LeftOut,
    Invalid(String),
}

/// Checks a customer summary: frequency a whole number ≥ 0; with `(recency, age)`: both ≥ 0,
/// recency ≤ age, recency 0 when frequency is 0; with `monetary_value`: ≥ 0. All finite.
pub fn check_customer(x: f64, recency_age: Option<(f64, f64)>, monetary: Option<f64>) -> CustomerCheck {
    let invalid = |s: String| CustomerCheck::Invalid(s);
    if !(x.is_finite() && x >= 0.0) {
        return invalid(format!("frequency {} is not a non-negative number of repeat purchases", fmt_f64(x)));
    }
    if x.fract() != 0.0 {
        return invalid(format!("frequency {} is not a whole number of repeat purchases", fmt_f64(x)));
    }
    if let Some((t_x, age)) = recency_age {
        if !(age.is_finite() && age >= 0.0) {
            return invalid(format!("age {} is not a finite non-negative time", fmt_f64(age)));
        }
        if !(t_x.is_finite() && t_x >= 0.0) {
            return invalid(format!("recency {} is not a finite non-negative time", fmt_f64(t_x)));
        }
        if t_x > age {
            return invalid(format!("recency {} is greater than age {}", fmt_f64(t_x), fmt_f64(age)));
        }
        if x == 0.0 && t_x != 0.0 {
            return invalid(format!(
                "recency {} with frequency 0 (a customer without repeat purchases has recency 0)",
                fmt_f64(t_x)
            ));
        }
    }
    if let Some(m) = monetary {
        if !(m.is_finite() && m >= 0.0) {
            return invalid(format!("monetary_value {} is not a finite non-negative amount", fmt_f64(m)));
        }
    }
    CustomerCheck::Counts
}

static AGGREGATES: LazyLock<Vec<Arc<AggregateUDF>>> = LazyLock::new(|| {
    let mut all = vec![Arc::new(AggregateUDF::new_from_impl(rfm::RfmFunction::default()))];
    all.extend(fit::FitModel::ALL.iter().map(|m| Arc::new(AggregateUDF::new_from_impl(fit::FitFunction::new(*m)))));
    all
});

/// The aggregates: `rfm_summary`, `bgnbd_fit`, `gamma_gamma_fit`.
pub fn all() -> Vec<Arc<AggregateUDF>> {
    AGGREGATES.clone()
}

/// The scoring functions.
pub fn scalars() -> Vec<Arc<ScalarUDF>> {
    scoring::Score::ALL.iter().map(|s| scoring::udf(*s)).collect()
}

pub(crate) fn add_to_rule(rule: &mut InvalidInputRule) {
    rule.add::<rfm::RfmFunction>(rfm::NAME);
    for model in fit::FitModel::ALL {
        rule.add::<fit::FitFunction>(model.name());
    }
}
