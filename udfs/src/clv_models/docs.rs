//! Documentation of the probabilistic CLV functions, shown by `\h` and the README reference.

use std::sync::LazyLock;

use datafusion::logical_expr::{DocSection, Documentation};

use super::fit::FitModel;
use super::scoring::Score;

const SECTION: DocSection = DocSection {
    include: true,
    label: "Probabilistic CLV",
    description: Some("BG/NBD and Gamma-Gamma models fitted and scored in SQL."),
};

const INVALID: &str = "Invalid customer summaries (negative or fractional frequency, recency greater than age, \
recency other than 0 with frequency 0, negative age or amount, NaN or infinity) fail the query unless \
`SET cxlake.invalid_input = 'skip'`, which leaves them out (scoring functions then return NULL).";

const MODEL_ARG: &str = "A BG/NBD model: the STRUCT bgnbd_fit returns, or any STRUCT with fields r, alpha, a, b \
(named_struct('r', 0.243, 'alpha', 4.414, 'a', 0.793, 'b', 2.426) scores with the published CDNOW estimates).";
const GG_MODEL_ARG: &str =
    "A Gamma-Gamma model: the STRUCT gamma_gamma_fit returns, or any STRUCT with fields p, q, gamma.";
const FREQUENCY: &str = "Repeat purchases x: a whole number ≥ 0 (rfm_summary(...)['frequency']).";
const RECENCY: &str = "Time of the last purchase since the first, t_x (0 when frequency is 0).";
const AGE: &str = "Time from the first purchase to the end of observation, T ≥ recency.";
const MONETARY: &str = "Mean spend of the repeat purchases, m_x ≥ 0.";

const PIPELINE_EXAMPLE: &str = "WITH rfm AS (SELECT customer_id, rfm_summary(order_ts, amount, DATE '2025-06-30', 'week') AS s FROM orders GROUP BY customer_id),\n     c AS (SELECT customer_id, s['frequency'] AS x, s['recency'] AS t_x, s['age'] AS t, s['monetary_value'] AS m FROM rfm),\n     bg AS (SELECT bgnbd_fit(x, t_x, t) AS model FROM c)\nSELECT customer_id, bgnbd_p_alive(model, x, t_x, t) AS p_alive FROM c CROSS JOIN bg;";

pub fn rfm_summary() -> &'static Documentation {
    static DOC: LazyLock<Documentation> = LazyLock::new(|| {
        Documentation::builder(
            SECTION,
            "A customer's order log summarized for the BG/NBD and Gamma-Gamma models. Returns STRUCT<frequency, recency, age, monetary_value> (DOUBLE each); group by customer. Orders after observation_end are ignored and the orders of one calendar period (a day, or a Monday-to-Sunday week with 'week') count as one purchase with their amounts summed. frequency = periods − 1; recency = last − first period and age = observation_end − first period, both in weeks (days / 7 with 'day'); monetary_value = mean amount of the repeat periods (the first excluded), 0 when there are none. Days are calendar days in the timestamp's own time zone (UTC when it has none). Rows with a NULL ts or amount do not count; a customer with no counting rows gives NULL. A negative, NaN or infinite amount fails the query unless `SET cxlake.invalid_input = 'skip'`.",
            "rfm_summary(ts, amount, observation_end [, unit])",
        )
        .with_argument("ts", "Order time: DATE or TIMESTAMP (any unit, any zone).")
        .with_argument("amount", "Order value ≥ 0, any numeric type.")
        .with_argument("observation_end", "The calibration end (DATE or TIMESTAMP; that day is included), the same for every row of a customer.")
        .with_argument("unit", "'day' (default) or 'week': the period whose orders count as one purchase.")
        .with_sql_example("SELECT customer_id, rfm_summary(order_ts, amount, DATE '1997-09-30') AS rfm FROM orders GROUP BY customer_id;\n-- orders on 1997-01-01, 01-18 and 08-02: frequency 2, recency 213 / 7 = 30.43, age 272 / 7 = 38.86")
        .with_related_udf("bgnbd_fit")
        .with_related_udf("gamma_gamma_fit")
        .build()
    });
    &DOC
}

pub fn fit(model: FitModel) -> &'static Documentation {
    static DOCS: LazyLock<Vec<Documentation>> = LazyLock::new(|| FitModel::ALL.iter().map(|m| build_fit(*m)).collect());
    &DOCS[FitModel::ALL.iter().position(|m| *m == model).unwrap_or(0)]
}

fn build_fit(model: FitModel) -> Documentation {
    let common = "The fit maximizes Σ weight · ln L by Nelder-Mead on the log-parameters, starting from 1 for every parameter and restarting until no improvement: the same data gives the same parameters on every run and every partitioning. customers counts the input rows used; converged is false (with the last estimate) when the optimizer stopped early — never an error. A group with no counting rows gives NULL.";
    match model {
        FitModel::BgNbd => Documentation::builder(
            SECTION,
            format!("Maximum-likelihood fit of the BG/NBD purchase model (Fader, Hardie & Lee 2005). Returns STRUCT<r, alpha, a, b, log_likelihood DOUBLE, customers BIGINT, converged BOOLEAN>, one customer per row; parameters and log-likelihood are in the data's own time unit. {common} {INVALID}"),
            "bgnbd_fit(frequency, recency, age [, weight])",
        )
        .with_argument("frequency", FREQUENCY)
        .with_argument("recency", RECENCY)
        .with_argument("age", AGE)
        .with_argument("weight", "Optional customers the row stands for (≥ 0, default 1), for pre-aggregated summaries.")
        .with_sql_example("SELECT bgnbd_fit(frequency, recency, t) AS model FROM cdnow_summary;\n-- CDNOW (weeks): r 0.2426, alpha 4.4135, a 0.7929, b 2.4258, log_likelihood -9582.43")
        .with_related_udf("bgnbd_p_alive")
        .with_related_udf("bgnbd_expected_purchases")
        .build(),
        FitModel::GammaGamma => Documentation::builder(
            SECTION,
            format!("Maximum-likelihood fit of the Gamma-Gamma spend model (Fader & Hardie 2013). Returns STRUCT<p, q, gamma, log_likelihood DOUBLE, customers BIGINT, converged BOOLEAN> over customers with frequency > 0 and monetary_value > 0 (others are left out, not invalid). {common} {INVALID}"),
            "gamma_gamma_fit(frequency, monetary_value [, weight])",
        )
        .with_argument("frequency", FREQUENCY)
        .with_argument("monetary_value", MONETARY)
        .with_argument("weight", "Optional customers the row stands for (≥ 0, default 1).")
        .with_sql_example("SELECT gamma_gamma_fit(frequency, monetary_value) AS model FROM cdnow_summary;\n-- CDNOW repeat buyers: p 6.25, q 3.74, gamma 15.45")
        .with_related_udf("gamma_gamma_expected_spend")
        .with_related_udf("customer_lifetime_value")
        .build(),
    }
}

pub fn score(score: Score) -> &'static Documentation {
    static DOCS: LazyLock<Vec<Documentation>> = LazyLock::new(|| Score::ALL.iter().map(|s| build_score(*s)).collect());
    &DOCS[Score::ALL.iter().position(|s| *s == score).unwrap_or(0)]
}

fn build_score(score: Score) -> Documentation {
    let nulls = "NULL when any argument is NULL.";
    let builder = |description: String| Documentation::builder(SECTION, description, score.signatures());
    match score {
        Score::PAlive => builder(format!("Probability that a customer is still active under a BG/NBD model: 1 / (1 + d · a/(b+x−1) · ((α+T)/(α+t_x))^(r+x)), d = 1 when x > 0; a customer without repeat purchases is alive with probability 1. {nulls} {INVALID}"))
            .with_argument("model", MODEL_ARG)
            .with_argument("frequency", FREQUENCY)
            .with_argument("recency", RECENCY)
            .with_argument("age", AGE)
            .with_sql_example(PIPELINE_EXAMPLE)
            .build(),
        Score::ExpectedPurchases => builder(format!("Expected purchases in the next t time units under a BG/NBD model, given the customer's history: (a+b+x−1)/(a−1) · [1 − ((α+T)/(α+T+t))^(r+x) · ₂F₁(r+x, b+x; a+b+x−1; t/(α+T+t))] divided by the P(alive) denominator. NULL when the ₂F₁ series does not converge. {nulls} {INVALID}"))
            .with_argument("model", MODEL_ARG)
            .with_argument("t", "The horizon, ≥ 0, in the RFM columns' unit (39 = 39 weeks).")
            .with_argument("frequency", FREQUENCY)
            .with_argument("recency", RECENCY)
            .with_argument("age", AGE)
            .with_sql_example("SELECT customer_id, bgnbd_expected_purchases(named_struct('r', 0.243, 'alpha', 4.414, 'a', 0.793, 'b', 2.426), 39, x, t_x, t) FROM cdnow;")
            .build(),
        Score::LogLikelihood => builder(format!("A customer's BG/NBD log-likelihood ln L(r, α, a, b | x, t_x, T); summed over the customers it is the fit's log_likelihood. {nulls} {INVALID}"))
            .with_argument("model", MODEL_ARG)
            .with_argument("frequency", FREQUENCY)
            .with_argument("recency", RECENCY)
            .with_argument("age", AGE)
            .with_sql_example("SELECT sum(bgnbd_log_likelihood(named_struct('r', 0.243, 'alpha', 4.414, 'a', 0.793, 'b', 2.426), x, t_x, t)) FROM cdnow;\n-- -9582.43 on CDNOW")
            .build(),
        Score::ExpectedSpend => builder(format!("Expected spend per transaction under a Gamma-Gamma model: p (γ + x m_x) / (p x + q − 1); a customer without repeat purchases gets the population mean γ p / (q − 1). NULL when q ≤ 1 (the mean is infinite). {nulls} {INVALID}"))
            .with_argument("model", GG_MODEL_ARG)
            .with_argument("frequency", FREQUENCY)
            .with_argument("monetary_value", MONETARY)
            .with_sql_example("SELECT gamma_gamma_expected_spend(named_struct('p', 6.25, 'q', 3.74, 'gamma', 15.44), 2, 22.35);\n-- 6.25 × (15.44 + 44.7) / (12.5 + 2.74) = 24.66")
            .build(),
        Score::LifetimeValue => builder(format!("Discounted customer lifetime value from a BG/NBD and a Gamma-Gamma model: Σ over months k = 1..months of E[spend] · (E[purchases by k·u] − E[purchases by (k−1)·u]) / (1 + monthly_discount)^k, with u = units_per_month. Defaults: 12 months, 0.01 monthly discount, 4.345 units per month (weekly RFM columns). NULL where either model has no answer. {nulls} {INVALID}"))
            .with_argument("bg_model", MODEL_ARG)
            .with_argument("gg_model", GG_MODEL_ARG)
            .with_argument("frequency", FREQUENCY)
            .with_argument("recency", RECENCY)
            .with_argument("age", AGE)
            .with_argument("monetary_value", MONETARY)
            .with_argument("months", "Optional horizon in whole months (default 12).")
            .with_argument("monthly_discount", "Optional discount rate per month (default 0.01).")
            .with_argument("units_per_month", "Optional RFM time units per month (default 4.345 weeks; 30 for days).")
            .with_sql_example("SELECT customer_id, customer_lifetime_value(bg.model, gg.model, x, t_x, t, m) AS clv_12m FROM c CROSS JOIN bg CROSS JOIN gg ORDER BY clv_12m DESC LIMIT 10;")
            .build(),
    }
}
