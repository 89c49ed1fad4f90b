//! `customers.parquet` and `subscriptions.parquet`.
//!
//! Every customer has hidden traits that the other tables read: a latent `happiness` (drives
//! NPS/CSAT, referrals, churn and how often they need support) and the intervals during which
//! they hold an active subscription (tickets, surveys and orders only happen while a customer is
//! a customer).

use std::path::Path;

use crate::rng::{exp, sigmoid, Rng};
use crate::time::{self, DAY, HISTORY_START, HOUR, MINUTE, MONTH, PERIOD_END};
use crate::write::{Result, Table};

pub const N_CUSTOMERS: usize = 5_000;

pub const REGIONS: [&str; 4] = ["NA", "EMEA", "APAC", "LATAM"];
const REGION_WEIGHTS: [f64; 4] = [0.38, 0.30, 0.20, 0.12];
/// A representative UTC offset per region, for time-of-day patterns.
pub const REGION_UTC_OFFSET: [i64; 4] = [-6, 1, 8, -4];

pub const PLANS: [&str; 3] = ["basic", "plus", "premium"];
const PLAN_WEIGHTS: [f64; 3] = [0.50, 0.32, 0.18];
/// List price per line and month, in cents, before the 2024-07-01 price rise.
const PLAN_PRICE_CENTS: [i128; 3] = [2_500, 4_500, 7_000];
/// Monthly churn hazard by plan for an average customer.
const PLAN_CHURN: [f64; 3] = [0.030, 0.021, 0.015];

pub struct Customer {
    pub id: i64,
    pub signed_up_at: i64,
    pub region: usize,
    /// Plan of the latest subscription.
    pub plan: usize,
    pub referred_by: Option<i64>,
    pub made_referral: bool,
    pub loyalty_member: bool,
    /// Latent satisfaction with the brand, standard normal.
    pub happiness: f64,
    /// Number of lines on the account (multiplies the subscription price).
    pub lines: i128,
    /// Subscription intervals [start, end) (end = PERIOD_END while still active).
    pub active: Vec<(i64, i64)>,
}

impl Customer {
    /// The parts of the active intervals that fall in [from, to).
    pub fn active_within(&self, from: i64, to: i64) -> Vec<(i64, i64)> {
        self.active
            .iter()
            .filter_map(|&(s, e)| {
                let (s, e) = (s.max(from), e.min(to));
                (e > s).then_some((s, e))
            })
            .collect()
    }

    pub fn is_active_at(&self, ms: i64) -> bool {
        self.active.iter().any(|&(s, e)| ms >= s && ms < e)
    }

    /// End of the last subscription if the customer has churned for good.
    pub fn churned_at(&self) -> Option<i64> {
        self.active.last().and_then(|&(_, e)| (e < PERIOD_END).then_some(e))
    }
}

/// Uniform instant inside a set of disjoint intervals.
pub fn instant_within(rng: &mut Rng, intervals: &[(i64, i64)]) -> i64 {
    let total: i64 = intervals.iter().map(|(s, e)| e - s).sum();
    let mut x = rng.range_i64(0, total);
    for &(s, e) in intervals {
        if x < e - s {
            return s + x;
        }
        x -= e - s;
    }
    unreachable!("offset within total length")
}

pub struct Subscription {
    pub customer: usize,
    pub plan: usize,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub mrr_cents: i128,
}

/// Relative signup intensity: the business grows over time, with peaks around the September
/// phone launches and the holiday season, and fewer signups at the weekend.
fn signup_intensity(ms: i64) -> f64 {
    let growth = 1.0 + 1.6 * (ms - HISTORY_START) as f64 / (PERIOD_END - HISTORY_START) as f64;
    let (_, m, d) = time::civil_from_days(ms.div_euclid(DAY));
    let season = match (m, d) {
        (9, 10..) | (10, ..=10) => 1.35,
        (11, 20..) | (12, ..=24) => 1.5,
        _ => 1.0,
    };
    let week = if time::weekday(ms) >= 5 { 0.8 } else { 1.0 };
    growth * season * week * time::diurnal(time::local_hour(ms, -2)).max(0.3)
}

pub fn generate(rng: &mut Rng) -> (Vec<Customer>, Vec<Subscription>) {
    // Signup instants by thinning a uniform proposal; ids follow signup order.
    let max_intensity = 2.6 * 1.5;
    let mut signups = Vec::with_capacity(N_CUSTOMERS);
    while signups.len() < N_CUSTOMERS {
        let t = rng.range_i64(HISTORY_START, PERIOD_END - HOUR);
        if rng.f64() * max_intensity < signup_intensity(t) {
            signups.push(t);
        }
    }
    signups.sort_unstable();

    let mut customers: Vec<Customer> = Vec::with_capacity(N_CUSTOMERS);
    for (i, &signed_up_at) in signups.iter().enumerate() {
        let id = i as i64 + 1;
        let mut happiness = rng.normal();
        // ~12% of customers were referred by an earlier customer; promoters refer more.
        let mut referred_by = None;
        let mut region = rng.weighted_index(&REGION_WEIGHTS);
        if i >= 50 && rng.chance(0.12) {
            let weights: Vec<f64> = customers.iter().map(|c| exp(1.2 * c.happiness)).collect();
            let referrer = &customers[rng.weighted_index(&weights)];
            referred_by = Some(referrer.id);
            if rng.chance(0.8) {
                region = referrer.region;
            }
            happiness = 0.8 * happiness + 0.35;
        }
        let plan = rng.weighted_index(&PLAN_WEIGHTS);
        let lines = rng.pick(&[(1, 0.70), (2, 0.18), (3, 0.08), (4, 0.04)]);
        let tenure_years = (PERIOD_END - signed_up_at) as f64 / (365.25 * DAY as f64);
        let loyalty_member = rng.chance(sigmoid(-1.6 + 0.5 * happiness + 0.5 * tenure_years + 0.45 * plan as f64));
        customers.push(Customer {
            id,
            signed_up_at,
            region,
            plan,
            referred_by,
            made_referral: false,
            loyalty_member,
            happiness,
            lines,
            active: Vec::new(),
        });
    }
    for i in 0..customers.len() {
        if let Some(r) = customers[i].referred_by {
            customers[(r - 1) as usize].made_referral = true;
        }
    }

    // Subscriptions: a chain per customer of plan changes, churn and occasional win-backs.
    let mut subs = Vec::new();
    for (ci, c) in customers.iter_mut().enumerate() {
        let mut plan = c.plan;
        let mut t = (c.signed_up_at + rng.range_i64(MINUTE, 30 * MINUTE)).min(PERIOD_END - 1);
        let churn_factor = exp(-0.45 * c.happiness) * if c.loyalty_member { 0.7 } else { 1.0 };
        loop {
            let hazard = PLAN_CHURN[plan] * churn_factor;
            let to_churn = (rng.exponential(1.0 / hazard) * MONTH as f64) as i64;
            let to_change = (rng.exponential(1.0 / 0.014) * MONTH as f64) as i64;
            let mrr_cents = mrr(rng, plan, c.lines, t);
            if t + to_churn.min(to_change) >= PERIOD_END {
                subs.push(Subscription { customer: ci, plan, started_at: t, ended_at: None, mrr_cents });
                c.active.push((t, PERIOD_END));
                break;
            }
            if to_change < to_churn {
                // Plan change: the old subscription ends and the new one starts the same instant.
                let end = t + to_change;
                subs.push(Subscription { customer: ci, plan, started_at: t, ended_at: Some(end), mrr_cents });
                c.active.push((t, end));
                plan = match plan {
                    0 => 1 + usize::from(rng.chance(0.25)),
                    1 => {
                        if rng.chance(0.65) {
                            2
                        } else {
                            0
                        }
                    }
                    _ => 1,
                };
                t = end;
                continue;
            }
            let end = t + to_churn;
            subs.push(Subscription { customer: ci, plan, started_at: t, ended_at: Some(end), mrr_cents });
            c.active.push((t, end));
            // ~20% come back after one to eight months, usually on the same plan.
            if rng.chance(0.2) {
                let back = end + rng.range_i64(MONTH, 8 * MONTH);
                if back < PERIOD_END {
                    t = back;
                    if rng.chance(0.35) {
                        plan = rng.weighted_index(&PLAN_WEIGHTS);
                    }
                    continue;
                }
            }
            break;
        }
        // Merge touching intervals (plan changes) so activity windows are contiguous.
        let mut merged: Vec<(i64, i64)> = Vec::new();
        for &(s, e) in &c.active {
            match merged.last_mut() {
                Some(last) if last.1 == s => last.1 = e,
                _ => merged.push((s, e)),
            }
        }
        c.active = merged;
        c.plan = plan;
    }
    subs.sort_by_key(|s| (s.started_at, s.customer));
    (customers, subs)
}

/// Monthly recurring revenue of a new subscription, in cents.
fn mrr(rng: &mut Rng, plan: usize, lines: i128, started_at: i64) -> i128 {
    let mut per_line = PLAN_PRICE_CENTS[plan];
    if started_at >= time::date(2024, 7, 1) {
        per_line += 200;
    }
    // Extra lines are discounted 25%.
    let mut cents = per_line + (lines - 1) * per_line * 3 / 4;
    if rng.chance(0.12) {
        cents = cents * 85 / 100; // promotional discount
    }
    cents - cents % 100 + 99 // price points end in .99
}

pub fn write_customers(dir: &Path, customers: &[Customer]) -> Result<usize> {
    let mut t = Table::new();
    t.i64("customer_id", customers.iter().map(|c| c.id).collect())
        .ts_ms_utc("signed_up_at", customers.iter().map(|c| Some(c.signed_up_at)).collect())
        .str("region", customers.iter().map(|c| REGIONS[c.region]).collect())
        .str("plan", customers.iter().map(|c| PLANS[c.plan]).collect())
        .opt_i64("referred_by", customers.iter().map(|c| c.referred_by).collect())
        .bool("made_referral", customers.iter().map(|c| c.made_referral).collect())
        .i32("loyalty_member", customers.iter().map(|c| i32::from(c.loyalty_member)).collect());
    t.write(&dir.join("customers.parquet"))
}

pub fn write_subscriptions(dir: &Path, customers: &[Customer], subs: &[Subscription]) -> Result<usize> {
    let mut t = Table::new();
    t.i64("subscription_id", (1..=subs.len() as i64).collect())
        .i64("customer_id", subs.iter().map(|s| customers[s.customer].id).collect())
        .str("plan", subs.iter().map(|s| PLANS[s.plan]).collect())
        .ts_ms_utc("started_at", subs.iter().map(|s| Some(s.started_at)).collect())
        .ts_ms_utc("ended_at", subs.iter().map(|s| s.ended_at).collect())
        .decimal("mrr", 10, 2, subs.iter().map(|s| s.mrr_cents).collect());
    t.write(&dir.join("subscriptions.parquet"))
}
