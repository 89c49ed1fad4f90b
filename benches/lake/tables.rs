//! The four tables of the benchmark lake, one Parquet file per (table, day) job.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Int32Array, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::array::{DictionaryArray, TimestampMillisecondArray, UInt8Array};
use arrow::datatypes::{DataType, Field, Schema, UInt8Type};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::WriterProperties;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Days of surveys, tickets and events, from 2025-01-01.
pub const DAYS: usize = 90;
/// 2025-01-01T00:00:00Z in seconds.
const START: i64 = 1_735_689_600;
const DAY: i64 = 86_400;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Table {
    Surveys,
    Tickets,
    Customers,
    Events,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Surveys => "surveys",
            Table::Tickets => "tickets",
            Table::Customers => "customers",
            Table::Events => "events",
        }
    }
}

/// One file to write: `rows` rows of `table` for day (or customer file) `part`.
pub struct Job {
    pub table: Table,
    pub part: usize,
    pub rows: u64,
    /// The first id of this file's rows (ids are dense across files, 1-based).
    pub first_id: u64,
    /// Customers in the lake (surveys and tickets reference ids 1..=customers).
    pub customers: u64,
    /// Clickstream users (ids 1..=users).
    pub users: u64,
}

const SURVEY_CHANNELS: [&str; 5] = ["email", "web", "app", "phone", "chat"];
const SURVEY_CHANNEL_WEIGHTS: [f64; 5] = [0.35, 0.25, 0.20, 0.12, 0.08];
const REGIONS: [&str; 4] = ["north", "south", "east", "west"];
const REGION_WEIGHTS: [f64; 4] = [0.30, 0.25, 0.25, 0.20];
/// NPS answers 0..=10: skewed to the top, as published NPS distributions are.
const SCORE_WEIGHTS: [f64; 11] = [0.03, 0.02, 0.03, 0.04, 0.05, 0.08, 0.09, 0.14, 0.16, 0.17, 0.19];
const SATISFACTION_WEIGHTS: [f64; 5] = [0.06, 0.09, 0.20, 0.35, 0.30];
const EFFORT_WEIGHTS: [f64; 7] = [0.25, 0.25, 0.18, 0.12, 0.10, 0.06, 0.04];
const TICKET_CHANNELS: [&str; 5] = ["email", "chat", "phone", "web", "social"];
const TICKET_CHANNEL_WEIGHTS: [f64; 5] = [0.40, 0.25, 0.18, 0.12, 0.05];
const PRIORITIES: [&str; 4] = ["low", "normal", "high", "urgent"];
const PRIORITY_WEIGHTS: [f64; 4] = [0.30, 0.50, 0.15, 0.05];
const PLANS: [&str; 3] = ["basic", "plus", "premium"];
const PLAN_WEIGHTS: [f64; 3] = [0.5, 0.35, 0.15];
pub const EVENTS: [&str; 5] = ["page_view", "product_view", "add_to_cart", "checkout", "purchase"];

/// A seeded stream per (table, part): the output does not depend on which thread writes it.
fn rng(seed: u64, job: &Job) -> SmallRng {
    let mut z = seed ^ ((job.table as u64 + 1) << 56) ^ (job.part as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // splitmix64 finaliser, so neighbouring parts get unrelated streams.
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    SmallRng::seed_from_u64(z ^ (z >> 31))
}

fn pick<const N: usize>(rng: &mut SmallRng, weights: &[f64; N]) -> usize {
    let mut u: f64 = rng.random();
    for (i, w) in weights.iter().enumerate() {
        if u < *w {
            return i;
        }
        u -= w;
    }
    N - 1
}

/// Log-normal with the given median and shape (Box–Muller).
fn lognormal(rng: &mut SmallRng, median: f64, sigma: f64) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    median * (sigma * z).exp()
}

/// A string column as a dictionary of a few values, written to Parquet as plain strings with
/// dictionary pages (the schema says `Utf8`, as Spark's files do).
fn strings(values: &'static [&'static str], keys: Vec<u8>) -> ArrayRef {
    let dict =
        DictionaryArray::<UInt8Type>::try_new(UInt8Array::from(keys), Arc::new(StringArray::from(values.to_vec())))
            .expect("keys within the dictionary");
    arrow::compute::cast(&dict, &DataType::Utf8).expect("dictionary to strings")
}

fn ts_ms(values: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from(values).with_timezone("UTC"))
}

fn day_name(part: usize) -> String {
    let days = (START / DAY) as i32 + part as i32;
    let date = chrono::DateTime::from_timestamp(i64::from(days) * DAY, 0).expect("in range").date_naive();
    format!("day={date}")
}

pub fn write(out: &Path, seed: u64, job: &Job) -> Result<(), String> {
    let mut rng = rng(seed, job);
    let (batch, sorting) = match job.table {
        Table::Surveys => (surveys(&mut rng, job), None),
        Table::Tickets => (tickets(&mut rng, job), None),
        Table::Customers => (customers(&mut rng, job), None),
        Table::Events => (
            events(&mut rng, job),
            Some(vec![
                SortingColumn { column_idx: 0, descending: false, nulls_first: false },
                SortingColumn { column_idx: 1, descending: false, nulls_first: false },
            ]),
        ),
    };
    let (dir, file) = match job.table {
        Table::Customers => (out.join("customers"), format!("part-{}.parquet", job.part)),
        t => (out.join(t.name()).join(day_name(job.part)), "part-0.parquet".to_string()),
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    // Written under a temporary name and renamed, so an interrupted run leaves no file that looks whole.
    let tmp = dir.join(format!(".{file}.tmp"));
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(1024 * 1024))
        .set_sorting_columns(sorting)
        .build();
    let fail = |e: &dyn std::fmt::Display| format!("writing {}: {e}", tmp.display());
    let f = File::create(&tmp).map_err(|e| fail(&e))?;
    let mut writer = ArrowWriter::try_new(f, batch.schema(), Some(props)).map_err(|e| fail(&e))?;
    // In slices, as a streaming writer would, so row groups and pages come out as they would there.
    let mut offset = 0;
    while offset < batch.num_rows() {
        let len = (batch.num_rows() - offset).min(65_536);
        writer.write(&batch.slice(offset, len)).map_err(|e| fail(&e))?;
        offset += len;
    }
    writer.close().map_err(|e| fail(&e))?;
    std::fs::rename(&tmp, dir.join(&file)).map_err(|e| fail(&e))
}

fn batch(columns: Vec<(&str, bool, ArrayRef)>) -> RecordBatch {
    let fields: Vec<Field> = columns.iter().map(|(n, null, a)| Field::new(*n, a.data_type().clone(), *null)).collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns.into_iter().map(|(_, _, a)| a).collect())
        .expect("columns of one length")
}

fn ids(job: &Job) -> ArrayRef {
    Arc::new(Int64Array::from_iter_values((job.first_id..job.first_id + job.rows).map(|i| i as i64)))
}

/// Millisecond instants within the job's day, in order.
fn instants_ms(rng: &mut SmallRng, job: &Job) -> Vec<i64> {
    let day_start = (START + job.part as i64 * DAY) * 1000;
    let mut t: Vec<i64> = (0..job.rows).map(|_| day_start + rng.random_range(0..DAY * 1000)).collect();
    t.sort_unstable();
    t
}

fn maybe<T>(rng: &mut SmallRng, null_share: f64, value: T) -> Option<T> {
    (rng.random::<f64>() >= null_share).then_some(value)
}

fn surveys(rng: &mut SmallRng, job: &Job) -> RecordBatch {
    let n = job.rows as usize;
    let answered = instants_ms(rng, job);
    let mut customer = Vec::with_capacity(n);
    let (mut channel, mut region) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut score, mut satisfaction, mut effort) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        customer.push(rng.random_range(1..=job.customers as i64));
        let c = pick(rng, &SURVEY_CHANNEL_WEIGHTS);
        channel.push(c as u8);
        region.push(pick(rng, &REGION_WEIGHTS) as u8);
        // App and chat respondents lean happier: a share of them answer from the top box.
        let s =
            if c >= 2 && rng.random::<f64>() < 0.1 { 9 + rng.random_range(0..2) } else { pick(rng, &SCORE_WEIGHTS) };
        score.push(maybe(rng, 0.02, s as i32));
        let v = pick(rng, &SATISFACTION_WEIGHTS) as i32 + 1;
        satisfaction.push(maybe(rng, 0.02, v));
        let v = pick(rng, &EFFORT_WEIGHTS) as i32 + 1;
        effort.push(maybe(rng, 0.02, v));
    }
    batch(vec![
        ("survey_id", false, ids(job)),
        ("customer_id", false, Arc::new(Int64Array::from(customer))),
        ("answered_at", false, ts_ms(answered.into_iter().map(Some).collect())),
        ("channel", false, strings(&SURVEY_CHANNELS, channel)),
        ("region", false, strings(&REGIONS, region)),
        ("score", true, Arc::new(Int32Array::from(score))),
        ("satisfaction", true, Arc::new(Int32Array::from(satisfaction))),
        ("effort", true, Arc::new(Int32Array::from(effort))),
    ])
}

fn tickets(rng: &mut SmallRng, job: &Job) -> RecordBatch {
    let n = job.rows as usize;
    let created = instants_ms(rng, job);
    let mut customer = Vec::with_capacity(n);
    let (mut channel, mut priority) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut first_response, mut resolved, mut fcr) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    for &c in &created {
        customer.push(rng.random_range(1..=job.customers as i64));
        let ch = pick(rng, &TICKET_CHANNEL_WEIGHTS);
        channel.push(ch as u8);
        priority.push(pick(rng, &PRIORITY_WEIGHTS) as u8);
        // Median first reply: 2 minutes on chat and phone, 45 on the written channels.
        let median_ms = if ch == 1 || ch == 2 { 120_000.0 } else { 2_700_000.0 };
        let reply = c + lognormal(rng, median_ms, 1.0) as i64;
        let reply = maybe(rng, 0.04, reply);
        first_response.push(reply);
        let solved = reply.unwrap_or(c) + lognormal(rng, 8.0 * 3_600_000.0, 1.2) as i64;
        resolved.push(if reply.is_some() { maybe(rng, 0.08, solved) } else { None });
        let first_contact = rng.random::<f64>() < 0.7;
        fcr.push(maybe(rng, 0.01, first_contact));
    }
    batch(vec![
        ("ticket_id", false, ids(job)),
        ("customer_id", false, Arc::new(Int64Array::from(customer))),
        ("channel", false, strings(&TICKET_CHANNELS, channel)),
        ("priority", false, strings(&PRIORITIES, priority)),
        ("created_at", false, ts_ms(created.into_iter().map(Some).collect())),
        ("first_response_at", true, ts_ms(first_response)),
        ("resolved_at", true, ts_ms(resolved)),
        ("first_contact_resolution", true, Arc::new(BooleanArray::from(fcr))),
    ])
}

fn customers(rng: &mut SmallRng, job: &Job) -> RecordBatch {
    let n = job.rows as usize;
    // Signups from 2021-01-01 to the end of 2025; the lake is a snapshot at 2026-01-01.
    let (from, snapshot) = (1_609_459_200_000_i64, 1_767_225_600_000_i64);
    let (mut region, mut plan) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut signed_up, mut churned) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        region.push(pick(rng, &REGION_WEIGHTS) as u8);
        plan.push(pick(rng, &PLAN_WEIGHTS) as u8);
        let s = rng.random_range(from..snapshot);
        signed_up.push(Some(s));
        // Half the customers ever leave, after a tenure with a mean of about 20 months.
        let tenure_ms = -(1.0 - rng.random::<f64>()).ln() * 600.0 * 86_400_000.0;
        let end = s + tenure_ms as i64;
        churned.push((rng.random::<f64>() < 0.5 && end < snapshot).then_some(end));
    }
    batch(vec![
        ("customer_id", false, ids(job)),
        ("region", false, strings(&REGIONS, region)),
        ("plan", false, strings(&PLANS, plan)),
        ("signed_up_at", false, ts_ms(signed_up)),
        ("churned_at", true, ts_ms(churned)),
    ])
}

/// Sessions of one user: a page view, then steps deeper into the funnel or back to browsing,
/// about a minute and a half apart.
fn events(rng: &mut SmallRng, job: &Job) -> RecordBatch {
    let n = job.rows as usize;
    let day_start = START + job.part as i64 * DAY;
    let day_end = day_start + DAY - 1;
    let mut rows: Vec<(i64, i64, u8)> = Vec::with_capacity(n);
    while rows.len() < n {
        let user = rng.random_range(1..=job.users as i64);
        let mut t = day_start + rng.random_range(0..DAY);
        let mut step = 0u8;
        let length = 1 + (-(1.0 - rng.random::<f64>()).ln() * 4.0) as usize;
        for _ in 0..length.min(n - rows.len()) {
            rows.push((user, t.min(day_end), step));
            let u: f64 = rng.random();
            step = match step {
                0 => u8::from(u < 0.5),
                1 if u < 0.35 => 2,
                1 => u8::from(u < 0.7),
                2 if u < 0.5 => 3,
                3 if u < 0.7 => 4,
                _ => 0,
            };
            t += 1 + (-(1.0 - rng.random::<f64>()).ln() * 90.0) as i64;
        }
    }
    rows.sort_unstable();
    let user: Int64Array = rows.iter().map(|r| r.0).collect::<Vec<_>>().into();
    let ts =
        TimestampMicrosecondArray::from(rows.iter().map(|r| r.1 * 1_000_000).collect::<Vec<_>>()).with_timezone("UTC");
    let event = strings(&EVENTS, rows.iter().map(|r| r.2).collect());
    batch(vec![("user_id", false, Arc::new(user)), ("ts", false, Arc::new(ts)), ("event", false, event)])
}
