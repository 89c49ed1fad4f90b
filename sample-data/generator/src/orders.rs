//! `orders.parquet`: purchase histories shaped like BG/NBD data.
//!
//! Each customer buys at a personal Poisson rate drawn from a gamma distribution while "alive",
//! and after every purchase drops out with a personal probability drawn from a beta
//! distribution (Fader, Hardie & Lee 2005). Order values follow a per-customer spend level
//! (gamma-gamma), independent of frequency. On top of that: a first order at signup, holiday
//! and phone-launch seasonality, and no orders long after a customer has churned for good.

use std::path::Path;

use crate::customers::{Customer, REGION_UTC_OFFSET};
use crate::rng::Rng;
use crate::time::{self, DAY, HISTORY_START, MINUTE, PERIOD_END};
use crate::write::{Result, Table};

pub const CHANNELS: [&str; 3] = ["web", "app", "store"];
pub const CATEGORIES: [&str; 3] = ["plan", "accessory", "device"];
const PLAN: usize = 0;
const ACCESSORY: usize = 1;
const DEVICE: usize = 2;

/// BG/NBD heterogeneity: purchase rate per day ~ Gamma(R, 1/ALPHA), dropout ~ Beta(A, B).
const R: f64 = 0.75;
const ALPHA_DAYS: f64 = 25.0;
const A: f64 = 0.9;
const B: f64 = 4.5;

struct Order {
    at: i64,
    customer: usize,
    cents: i128,
    margin: f64,
    channel: usize,
    category: usize,
}

/// Seasonal purchase intensity (max 1.7): the holiday season and the September phone launches.
fn season(ms: i64) -> f64 {
    let (_, m, d) = time::civil_from_days(ms.div_euclid(DAY));
    match (m, d) {
        (11, 20..) | (12, ..=24) => 1.7,
        (9, 10..) | (10, ..=10) => 1.35,
        (1, ..=15) => 0.8,
        _ => 1.0,
    }
}

pub fn generate_and_write(dir: &Path, rng: &mut Rng, customers: &[Customer]) -> Result<usize> {
    let mut orders = Vec::new();
    for (ci, c) in customers.iter().enumerate() {
        // Purchases per day while alive (capped at about one a week: no resellers here).
        let rate = rng.gamma(R, 1.0 / ALPHA_DAYS).min(0.15);
        let dropout = rng.beta(A, B);
        let spend = rng.gamma(4.0, 0.25);
        let until = c.churned_at().map_or(PERIOD_END, |e| (e + 30 * DAY).min(PERIOD_END));
        // First order at signup: a device bundle or a plan starter pack.
        let first_at = (c.signed_up_at + rng.range_i64(MINUTE, 20 * MINUTE)).min(PERIOD_END - 1);
        let first_category = if rng.chance(0.4) { DEVICE } else { PLAN };
        orders.push(order(rng, ci, first_at, first_category, spend));
        if rng.chance(dropout) {
            continue;
        }
        let mut t = first_at;
        loop {
            t += (rng.exponential(1.0 / (rate * 1.7)) * DAY as f64) as i64;
            if t >= until {
                break;
            }
            if rng.f64() * 1.7 >= season(t) {
                continue;
            }
            let at = time_of_day(rng, t, REGION_UTC_OFFSET[c.region]).clamp(first_at + MINUTE, until - 1);
            let (_, m, _) = time::civil_from_days(t.div_euclid(DAY));
            let mut weights = [0.33, 0.55, 0.12];
            match m {
                9 | 10 => weights[DEVICE] *= 2.2,
                11 | 12 => weights[ACCESSORY] *= 1.5,
                _ => {}
            }
            let category = rng.weighted_index(&weights);
            orders.push(order(rng, ci, at, category, spend));
            if rng.chance(dropout) {
                break;
            }
        }
    }
    orders.sort_by_key(|o| (o.at, o.customer));

    let mut t = Table::new();
    t.i64("order_id", (1..=orders.len() as i64).collect())
        .i64("customer_id", orders.iter().map(|o| customers[o.customer].id).collect())
        .ts_ms_utc("ordered_at", orders.iter().map(|o| Some(o.at)).collect())
        .decimal("amount", 12, 2, orders.iter().map(|o| o.cents).collect())
        .f64("gross_margin", orders.iter().map(|o| o.margin).collect())
        .str("channel", orders.iter().map(|o| CHANNELS[o.channel]).collect())
        .str("category", orders.iter().map(|o| CATEGORIES[o.category]).collect());
    t.write(&dir.join("orders.parquet"))
}

/// Moves an instant to a plausible local time of day on the same UTC day.
fn time_of_day(rng: &mut Rng, t: i64, offset: i64) -> i64 {
    let day = t.div_euclid(DAY) * DAY;
    loop {
        let c = day + rng.range_i64(0, DAY);
        if rng.f64() < time::diurnal(time::local_hour(c, offset)) {
            return c;
        }
    }
}

fn order(rng: &mut Rng, ci: usize, at: i64, category: usize, spend: f64) -> Order {
    let progress = (at - HISTORY_START) as f64 / (PERIOD_END - HISTORY_START) as f64;
    let (dollars, margin) = match category {
        ACCESSORY => ((rng.lognormal(29.0, 0.6) * spend).clamp(4.0, 399.0), rng.uniform(0.40, 0.60)),
        DEVICE => ((rng.lognormal(520.0, 0.45) * spend.sqrt()).clamp(99.0, 1_599.0), rng.uniform(0.15, 0.25)),
        _ => ((rng.lognormal(38.0, 0.35) * spend.sqrt()).clamp(10.0, 150.0), rng.uniform(0.35, 0.60)),
    };
    // Price points end in .99; devices in 9.99.
    let cents =
        if category == DEVICE { ((dollars / 10.0) as i128 * 10 + 9) * 100 + 99 } else { (dollars as i128) * 100 + 99 };
    // The app's share grows over time; devices are often bought in store.
    let mut weights = [0.52 - 0.14 * progress, 0.22 + 0.24 * progress, 0.26];
    if category == DEVICE {
        weights[2] *= 2.0;
    }
    Order {
        at,
        customer: ci,
        cents,
        margin: (margin * 1000.0).round() / 1000.0,
        channel: rng.weighted_index(&weights),
        category,
    }
}
