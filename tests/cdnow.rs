//! The probabilistic CLV functions on the CDNOW data of the BG/NBD and Gamma-Gamma papers, as
//! shipped in the `lifetimes` package (installed by `scripts/test`), against the published
//! estimates and against `lifetimes` itself, run by the reference Python interpreter.
//!
//! - `rfm_summary` over the raw transaction log rebuilds the shipped RFM summary;
//! - `bgnbd_fit` gives r = 0.243, α = 4.414, a = 0.793, b = 2.426, ln L = −9582.4 (Fader, Hardie
//!   & Lee 2005) and `gamma_gamma_fit` p = 6.25, q = 3.74, γ = 15.44 (Fader & Hardie 2013), the
//!   same at 1 and 7 partitions;
//! - P(alive), expected purchases in 39 weeks, expected spend and 12-month CLV per customer
//!   agree with `lifetimes` within 1e-6 relative.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use cxlake::arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use cxlake::arrow::datatypes::{Field, Schema};
use cxlake::datafusion::datasource::MemTable;
use cxlake::Lake;
use cxlake_tests::{cells, run_reference_python};

/// The `lifetimes/datasets` directory of the reference venv.
fn datasets() -> PathBuf {
    let dir = run_reference_python("import os, lifetimes.datasets as d; print(os.path.dirname(d.__file__))", &[]);
    PathBuf::from(dir.trim())
}

/// Registers `columns` as table `name`, split into `partitions` partitions of interleaved rows,
/// so that aggregates really merge partial states.
fn register(lake: &Lake, name: &str, columns: Vec<(&str, ArrayRef)>, partitions: usize) {
    let schema = Arc::new(Schema::new(
        columns.iter().map(|(n, a)| Field::new(*n, a.data_type().clone(), true)).collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(schema.clone(), columns.into_iter().map(|(_, a)| a).collect()).unwrap();
    let rows = batch.num_rows();
    let chunk = rows.div_ceil(partitions);
    let parts: Vec<Vec<RecordBatch>> = (0..partitions)
        .map(|p| vec![batch.slice((p * chunk).min(rows), chunk.min(rows.saturating_sub(p * chunk)))])
        .collect();
    lake.context().register_table(name, Arc::new(MemTable::try_new(schema, parts).unwrap())).unwrap();
}

/// `CDNOW_sample.txt`: customer (1..2357), date (yyyymmdd, kept as text: the query parses it),
/// dollars.
fn transactions(dir: &std::path::Path) -> Vec<(i64, String, f64)> {
    let text = std::fs::read_to_string(dir.join("CDNOW_sample.txt")).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f[1].parse().unwrap(), f[2].to_string(), f[4].parse().unwrap())
        })
        .collect()
}

/// A CSV of numbers with a header, by column name.
fn csv(dir: &std::path::Path, file: &str) -> HashMap<String, Vec<f64>> {
    let text = std::fs::read_to_string(dir.join(file)).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(str::to_string).collect();
    let mut columns: HashMap<String, Vec<f64>> = header.iter().map(|h| (h.clone(), Vec::new())).collect();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        for (h, v) in header.iter().zip(line.split(',')) {
            columns.get_mut(h).unwrap().push(v.trim().parse().unwrap());
        }
    }
    columns
}

async fn cdnow_lake(partitions: usize) -> Lake {
    let dir = datasets();
    let lake = Lake::builder().target_partitions(partitions).build().await.unwrap();
    let tx = transactions(&dir);
    register(
        &lake,
        "cdnow_transactions",
        vec![
            ("customer", Arc::new(Int64Array::from_iter_values(tx.iter().map(|t| t.0))) as ArrayRef),
            ("yyyymmdd", Arc::new(StringArray::from_iter_values(tx.iter().map(|t| t.1.as_str())))),
            ("dollars", Arc::new(Float64Array::from_iter_values(tx.iter().map(|t| t.2)))),
        ],
        partitions,
    );
    let summary = csv(&dir, "cdnow_customers_summary_with_transactions.csv");
    let column = |n: &str| Arc::new(Float64Array::from(summary[n].clone())) as ArrayRef;
    register(
        &lake,
        "cdnow_summary",
        vec![
            ("id", column("ID")),
            ("x", column("x")),
            ("t_x", column("t_x")),
            ("t", column("T")),
            ("m", column("zbar")),
        ],
        partitions,
    );
    lake
}

/// Every cell as f64 (booleans as 0/1), NaN for NULL.
async fn numbers(lake: &Lake, sql: &str) -> Vec<Vec<f64>> {
    cells(lake, sql).await.into_iter().map(|row| row.into_iter().map(|c| c.unwrap_or(f64::NAN)).collect()).collect()
}

const FITS: &str = "SELECT b['r'], b['alpha'], b['a'], b['b'], b['log_likelihood'], b['customers'], b['converged'],
       g['p'], g['q'], g['gamma'], g['log_likelihood'], g['customers'], g['converged']
FROM (SELECT bgnbd_fit(x, t_x, t) AS b, gamma_gamma_fit(x, m) AS g FROM cdnow_summary)";

/// Within the printed precision of a published value, or 1e-3 relative, whichever is wider.
fn assert_published(what: &str, got: f64, published: f64, decimals: i32) {
    let tolerance = (0.5 * 10f64.powi(-decimals)).max(1e-3 * published.abs());
    assert!((got - published).abs() <= tolerance, "{what}: fitted {got}, published {published} (± {tolerance})");
}

#[tokio::test]
async fn rfm_summary_rebuilds_the_shipped_summary() {
    let lake = cdnow_lake(4).await;
    let rows = numbers(
        &lake,
        "SELECT customer, s['frequency'], s['recency'], s['age'], s['monetary_value'] FROM (
           SELECT customer, rfm_summary(to_date(yyyymmdd, '%Y%m%d'), dollars, DATE '1997-09-30') AS s
           FROM cdnow_transactions GROUP BY customer) ORDER BY customer",
    )
    .await;
    let shipped = csv(&datasets(), "cdnow_customers_summary_with_transactions.csv");
    assert_eq!(rows.len(), 2357, "customers");
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row[0], shipped["ID"][i], "customer order");
        assert_eq!(row[1], shipped["x"][i], "frequency of customer {}", row[0]);
        // The shipped summary is rounded to 2 decimals.
        for (got, name) in [(row[2], "t_x"), (row[3], "T"), (row[4], "zbar")] {
            let expected = shipped[name][i];
            assert!((got - expected).abs() <= 0.005 + 1e-9, "{name} of customer {}: {got} vs {expected}", row[0]);
        }
    }
}

#[tokio::test]
async fn fits_match_the_published_estimates_at_any_partitioning() {
    let one = numbers(&cdnow_lake(1).await, FITS).await;
    let seven = numbers(&cdnow_lake(7).await, FITS).await;
    // Bit for bit: the state is the same set of distinct summaries whatever the partitioning.
    assert_eq!(format!("{one:?}"), format!("{seven:?}"), "fits at 1 and 7 partitions");
    let f = &one[0];
    assert_published("r", f[0], 0.243, 3);
    assert_published("alpha", f[1], 4.414, 3);
    assert_published("a", f[2], 0.793, 3);
    assert_published("b", f[3], 2.426, 3);
    assert!((f[4] - -9582.4).abs() <= 0.05, "BG/NBD log-likelihood {}", f[4]);
    assert_eq!(f[5], 2357.0, "BG/NBD customers");
    // 946 of the 2357 customers made a repeat purchase.
    assert_published("p", f[7], 6.25, 2);
    assert_published("q", f[8], 3.74, 2);
    assert_published("gamma", f[9], 15.44, 2);
    assert_eq!(f[11], 946.0, "Gamma-Gamma customers");
}

/// Fits with `lifetimes`, then scores every customer with cxlake's parameters (so that the
/// comparison is of the scoring formulas, not of two optimizers' last digits) and prints
/// `id,p_alive,purchases_39,spend,clv` rows after a line with lifetimes' own parameters.
const REFERENCE: &str = r#"
import sys
import numpy as np
import pandas as pd
from lifetimes import BetaGeoFitter, GammaGammaFitter
from lifetimes.datasets import load_cdnow_summary_data_with_monetary_value
d = load_cdnow_summary_data_with_monetary_value()
bgf = BetaGeoFitter(penalizer_coef=0.0).fit(d["frequency"], d["recency"], d["T"])
repeat = d[(d["frequency"] > 0) & (d["monetary_value"] > 0)]
ggf = GammaGammaFitter(penalizer_coef=0.0).fit(repeat["frequency"], repeat["monetary_value"])
print(",".join(repr(float(v)) for v in list(bgf.params_) + list(ggf.params_)))
r, alpha, a, b, p, q, v = map(float, sys.argv[1:8])
bgf.params_ = pd.Series({"r": r, "alpha": alpha, "a": a, "b": b})
ggf.params_ = pd.Series({"p": p, "q": q, "v": v})
f, t_x, T, m = d["frequency"], d["recency"], d["T"], d["monetary_value"]
alive = bgf.conditional_probability_alive(f, t_x, T)
purchases = bgf.conditional_expected_number_of_purchases_up_to_time(39, f, t_x, T)
spend = ggf.conditional_expected_average_profit(f, m)
clv = ggf.customer_lifetime_value(bgf, f, t_x, T, m, time=12, discount_rate=0.01, freq="W")
columns = [np.asarray(c, dtype=float) for c in (alive, purchases, spend, clv)]
for i in range(len(d)):
    print(",".join([str(d.index[i])] + [repr(float(c[i])) for c in columns]))
"#;

#[tokio::test]
async fn scores_match_lifetimes_customer_by_customer() {
    let lake = cdnow_lake(3).await;
    let fit = &numbers(&lake, FITS).await[0];
    let params: Vec<String> = [0, 1, 2, 3, 7, 8, 9].iter().map(|&i| format!("{:?}", fit[i])).collect();
    let output = run_reference_python(REFERENCE, &params.iter().map(String::as_str).collect::<Vec<_>>());
    let mut lines = output.lines();

    // lifetimes' own optimum is the same maximum: parameters agree to the optimizers' precision.
    let theirs: Vec<f64> = lines.next().unwrap().split(',').map(|v| v.parse().unwrap()).collect();
    for (k, &i) in [0, 1, 2, 3, 7, 8, 9].iter().enumerate() {
        let rel = (fit[i] - theirs[k]).abs() / theirs[k].abs();
        assert!(rel < 1e-4, "parameter {k}: cxlake {} vs lifetimes {}", fit[i], theirs[k]);
    }

    let ours = numbers(
        &lake,
        "WITH bg AS (SELECT bgnbd_fit(x, t_x, t) AS model FROM cdnow_summary),
              gg AS (SELECT gamma_gamma_fit(x, m) AS model FROM cdnow_summary)
         SELECT id, bgnbd_p_alive(bg.model, x, t_x, t), bgnbd_expected_purchases(bg.model, 39, x, t_x, t),
                gamma_gamma_expected_spend(gg.model, x, m),
                customer_lifetime_value(bg.model, gg.model, x, t_x, t, m, 12, 0.01, 4.345)
         FROM cdnow_summary CROSS JOIN bg CROSS JOIN gg ORDER BY id",
    )
    .await;
    let reference: Vec<Vec<f64>> = lines.map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect();
    assert_eq!(ours.len(), 2357);
    assert_eq!(reference.len(), 2357);
    let names = ["id", "P(alive)", "expected purchases in 39 weeks", "expected spend", "12-month CLV"];
    for (o, r) in ours.iter().zip(&reference) {
        assert_eq!(o[0], r[0], "customer order");
        for k in 1..5 {
            let rel = (o[k] - r[k]).abs() / r[k].abs().max(1e-300);
            assert!(
                rel <= 1e-6,
                "customer {}: {} cxlake {} vs lifetimes {} (relative {rel:e})",
                o[0],
                names[k],
                o[k],
                r[k]
            );
        }
    }
}
