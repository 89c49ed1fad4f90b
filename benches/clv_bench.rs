//! Probabilistic CLV at scale: `rfm_summary` over a synthetic order log (against the same summary
//! in plain SQL and the scan floor), then the BG/NBD and Gamma-Gamma fits over one summary row per
//! customer, which must recover the parameters the customers were drawn from.
//!
//! ```text
//! cargo run --release -p cxlake-benches --bin clv_bench -- --rows 1000000 [--partitions N] [--runs N]
//! ```
//! `--rows` is the number of customers.

mod harness;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cxlake::arrow::array::{ArrayRef, Float64Array, Int64Array, TimestampSecondArray};
use cxlake::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use cxlake::arrow::record_batch::RecordBatch;
use cxlake::datafusion::datasource::MemTable;
use cxlake::Lake;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use harness::{parse_options, run_cases, Case};

/// The parameters customers are drawn from (close to the CDNOW estimates; weeks).
const R: f64 = 0.25;
const ALPHA: f64 = 4.0;
const A: f64 = 0.8;
const B: f64 = 2.5;
/// Spend: per-customer mean scale ν ~ Gamma(Q, rate GAMMA), amounts ~ Gamma(P, rate ν).
const P: f64 = 6.0;
const Q: f64 = 4.0;
const GAMMA: f64 = 15.0;

/// 2025-01-01T00:00:00Z; first purchases in the first 12 weeks, observation to day 364.
const START: i64 = 1_735_689_600;
const END_DAY: f64 = 364.0;

/// Gamma(shape, rate) by Marsaglia and Tsang (shape < 1 boosted by U^(1/shape)).
fn gamma(rng: &mut SmallRng, shape: f64, rate: f64) -> f64 {
    if shape < 1.0 {
        let u: f64 = rng.random();
        return gamma(rng, shape + 1.0, rate) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let (x, u) = (normal(rng), rng.random::<f64>());
        let v = (1.0 + c * x).powi(3);
        if v > 0.0 && u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v / rate;
        }
    }
}

fn normal(rng: &mut SmallRng) -> f64 {
    let (u1, u2): (f64, f64) = (rng.random::<f64>().max(f64::MIN_POSITIVE), rng.random());
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// One row per purchase: customer, time (seconds), amount. BG/NBD: purchases at rate λ per week
/// while alive; after each repeat purchase the customer leaves with probability p. Also returns
/// each customer's exact summary in weeks (x, t_x, T, m), before any rounding to calendar days.
fn orders(customers: usize, partitions: usize) -> (MemTable, MemTable) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Int64, false),
        Field::new("ts", DataType::Timestamp(TimeUnit::Second, Some("UTC".into())), false),
        Field::new("amount", DataType::Float64, false),
    ]));
    let mut rng = SmallRng::seed_from_u64(1997);
    let mut parts: Vec<Vec<RecordBatch>> = vec![Vec::new(); partitions.max(1)];
    let (mut ids, mut times, mut amounts) = (Vec::new(), Vec::new(), Vec::new());
    let mut next = 0;
    let mut exact: [Vec<f64>; 4] = Default::default();
    for customer in 0..customers as i64 {
        let rate = gamma(&mut rng, R, ALPHA);
        let x = gamma(&mut rng, A, 1.0);
        let dropout = x / (x + gamma(&mut rng, B, 1.0));
        let scale = gamma(&mut rng, Q, GAMMA);
        let mut day = rng.random_range(0.0..84.0);
        let (first_day, mut last_day, mut repeats, mut repeat_spend) = (day, day, 0.0, 0.0);
        loop {
            let amount = (gamma(&mut rng, P, scale) * 100.0).round() / 100.0;
            ids.push(customer);
            times.push(START + (day * 86_400.0) as i64);
            amounts.push(amount);
            if day > first_day {
                (last_day, repeats, repeat_spend) = (day, repeats + 1.0, repeat_spend + amount);
                if rng.random_bool(dropout) {
                    break;
                }
            }
            let u: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
            day += -u.ln() / rate * 7.0;
            if day >= END_DAY + 1.0 {
                break;
            }
        }
        if ids.len() >= 65_536 || customer as usize + 1 == customers {
            let columns: Vec<ArrayRef> = vec![
                Arc::new(Int64Array::from(std::mem::take(&mut ids))),
                Arc::new(TimestampSecondArray::from(std::mem::take(&mut times)).with_timezone("UTC")),
                Arc::new(Float64Array::from(std::mem::take(&mut amounts))),
            ];
            parts[next].push(RecordBatch::try_new(Arc::clone(&schema), columns).expect("batch"));
            next = (next + 1) % parts.len();
        }
        let m = if repeats > 0.0 { repeat_spend / repeats } else { 0.0 };
        for (column, v) in
            exact.iter_mut().zip([repeats, (last_day - first_day) / 7.0, (END_DAY + 1.0 - first_day) / 7.0, m])
        {
            column.push(v);
        }
    }
    let names = ["x", "t_x", "t", "m"];
    let exact_schema =
        Arc::new(Schema::new(names.iter().map(|n| Field::new(*n, DataType::Float64, false)).collect::<Vec<_>>()));
    let columns: Vec<ArrayRef> = exact.into_iter().map(|c| Arc::new(Float64Array::from(c)) as ArrayRef).collect();
    let exact = RecordBatch::try_new(Arc::clone(&exact_schema), columns).expect("batch");
    let chunk = customers.div_ceil(partitions.max(1));
    let exact_parts: Vec<Vec<RecordBatch>> = (0..partitions.max(1))
        .map(|p| vec![exact.slice((p * chunk).min(customers), chunk.min(customers.saturating_sub(p * chunk)))])
        .collect();
    (MemTable::try_new(schema, parts).expect("table"), MemTable::try_new(exact_schema, exact_parts).expect("table"))
}

const RFM: &str = "rfm_summary(ts, amount, DATE '2025-12-31')";

fn median(mut times: Vec<Duration>) -> f64 {
    times.sort();
    times[times.len() / 2].as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() -> cxlake::Result<()> {
    let options = parse_options();
    let lake = Lake::builder().target_partitions(options.partitions).build().await?;
    let started = Instant::now();
    let (orders, exact) = orders(options.rows, options.partitions);
    lake.context().register_table("orders", Arc::new(orders))?;
    lake.context().register_table("exact_summaries", Arc::new(exact))?;
    let count = lake.query("SELECT count(*) FROM orders").await?;
    let orders = count[0].column(0).as_any().downcast_ref::<Int64Array>().expect("BIGINT").value(0);
    println!("{} customers, {orders} orders, drawn in {:.1} s\n", options.rows, started.elapsed().as_secs_f64());

    // The summary in plain SQL: one purchase per customer and day, then per customer.
    let plain = "WITH d AS (SELECT customer_id, CAST(ts AS DATE) AS day, sum(amount) AS amount FROM orders
                             WHERE CAST(ts AS DATE) <= DATE '2025-12-31' GROUP BY customer_id, CAST(ts AS DATE)),
                  f AS (SELECT customer_id, min(day) AS first_day FROM d GROUP BY customer_id),
                  s AS (SELECT d.customer_id, count(*) - 1 AS frequency,
                               (max(day) - min(day)) / 7.0 AS recency,
                               (DATE '2025-12-31' - min(day)) / 7.0 AS age,
                               coalesce(sum(CASE WHEN day > first_day THEN amount END) / nullif(count(*) - 1, 0), 0) AS m
                        FROM d JOIN f ON d.customer_id = f.customer_id GROUP BY d.customer_id)
                  SELECT sum(frequency), count(*) FROM s";
    let cases = [Case {
        metric: "RFM summary per customer",
        keys: "customer_id",
        queries: vec![
            (
                "cxlake",
                format!(
                    "SELECT sum(s['frequency']), count(*) FROM (SELECT {RFM} AS s FROM orders GROUP BY customer_id)"
                ),
            ),
            ("plain SQL", plain.to_string()),
            ("floor", "SELECT count(ts), sum(amount), count(DISTINCT customer_id) FROM orders".to_string()),
        ],
    }];
    run_cases(&lake, &options, &cases).await?;

    lake.execute(&format!(
        "CREATE TABLE summaries AS SELECT s['frequency'] AS x, s['recency'] AS t_x, s['age'] AS t, s['monetary_value'] AS m
         FROM (SELECT {RFM} AS s FROM orders GROUP BY customer_id)"
    ))
    .await?;
    println!(
        "\n| summaries | customers | Σ frequency | mean recency (weeks) | mean age (weeks) | mean monetary value |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for table in ["exact_summaries", "summaries"] {
        let sql = format!("SELECT count(*), sum(x), avg(t_x), avg(t), avg(m) FROM {table}");
        let batch = &lake.query(&sql).await?[0];
        let cast = |i: usize| -> f64 {
            let c = cxlake::arrow::compute::cast(batch.column(i), &DataType::Float64).expect("numeric");
            c.as_any().downcast_ref::<Float64Array>().expect("DOUBLE").value(0)
        };
        println!("| {table} | {} | {} | {:.3} | {:.3} | {:.3} |", cast(0), cast(1), cast(2), cast(3), cast(4));
    }

    // The fits over the exact summaries must recover the parameters; over the rfm_summary of the
    // order log (whole calendar days, same-day purchases merged) they show what rounding costs.
    let bgnbd = "SELECT f['r'], f['alpha'], f['a'], f['b'] FROM (SELECT bgnbd_fit(x, t_x, t) AS f FROM TABLE_NAME)";
    let gamma_gamma = "SELECT f['p'], f['q'], f['gamma'] FROM (SELECT gamma_gamma_fit(x, m) AS f FROM TABLE_NAME)";
    let fits = [
        ("bgnbd_fit, exact summaries", bgnbd.replace("TABLE_NAME", "exact_summaries"), vec![R, ALPHA, A, B], true),
        ("bgnbd_fit, rfm_summary by day", bgnbd.replace("TABLE_NAME", "summaries"), vec![R, ALPHA, A, B], false),
        (
            "gamma_gamma_fit, exact summaries",
            gamma_gamma.replace("TABLE_NAME", "exact_summaries"),
            vec![P, Q, GAMMA],
            true,
        ),
        (
            "gamma_gamma_fit, rfm_summary by day",
            gamma_gamma.replace("TABLE_NAME", "summaries"),
            vec![P, Q, GAMMA],
            false,
        ),
    ];
    println!(
        "\n| fit over {} customers | median ms | parameters (drawn from) | largest relative error |",
        options.rows
    );
    println!("|---|---:|---|---:|");
    for (name, sql, truth, must_recover) in fits {
        let sql = sql.as_str();
        let mut times = Vec::new();
        let mut last = Vec::new();
        for _ in 0..options.runs.clamp(1, 3) {
            let start = Instant::now();
            last = lake.query(sql).await?;
            times.push(start.elapsed());
        }
        let batch = &last[0];
        let fitted: Vec<f64> = (0..truth.len())
            .map(|i| batch.column(i).as_any().downcast_ref::<Float64Array>().expect("DOUBLE").value(0))
            .collect();
        let worst = fitted.iter().zip(&truth).map(|(f, t)| (f - t).abs() / t).fold(0.0, f64::max);
        let shown: Vec<String> = fitted.iter().zip(&truth).map(|(f, t)| format!("{f:.4} ({t})")).collect();
        println!("| {name} | {:.1} | {} | {:.2} % |", median(times), shown.join(", "), worst * 100.0);
        if must_recover {
            assert!(worst < 0.05, "{name} did not recover the parameters: {shown:?}");
        }
    }
    Ok(())
}
