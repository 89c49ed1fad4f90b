//! `clickstream/day=YYYY-MM-DD/part-0.parquet`: June 2025 web/app analytics events.
//!
//! Visitors are customers (user_id = customer_id) or anonymous prospects (user_id from
//! 1,000,001). Each visit is a session of events a few seconds to minutes apart; a visitor's
//! sessions on a day are hours apart. Sessions walk a funnel page_view -> add_to_cart ->
//! checkout -> purchase that loses visitors at each step, with conversion depending on device
//! and traffic source, and a paid campaign in the week of June 16.

use std::fs;
use std::path::Path;

use crate::customers::{Customer, REGION_UTC_OFFSET};
use crate::rng::{pick_cumulative, Rng};
use crate::time::{self, date, DAY, HOUR};
use crate::write::{Result, Table};

const JUNE_START: i64 = date(2025, 6, 1);
const JUNE_END: i64 = date(2025, 7, 1);
const CAMPAIGN_START: i64 = date(2025, 6, 16);
const CAMPAIGN_END: i64 = date(2025, 6, 23);

pub const FIRST_PROSPECT_ID: i64 = 1_000_001;
const N_PROSPECTS: usize = 40_000;

const DEVICES: [&str; 3] = ["mobile", "desktop", "tablet"];
const DEVICE_WEIGHTS: [f64; 3] = [0.62, 0.30, 0.08];
const REFERRERS: [&str; 5] = ["organic", "paid", "email", "direct", "social"];
const PAID: usize = 1;
const EMAIL: usize = 2;
const DIRECT: usize = 3;

const HOME: &str = "/";
const PLANS: &str = "/plans";
const PREMIUM: &str = "/plans/premium";
const ACCESSORIES: &str = "/accessories";
const CART: &str = "/cart";
const CHECKOUT: &str = "/checkout";
const SUPPORT: &str = "/support";
const ACCOUNT: &str = "/account";

struct Visitor {
    id: i64,
    device: usize,
    utc_offset: i64,
    is_customer: bool,
    last_end: i64,
}

struct Event {
    ts_us: i64,
    user_id: i64,
    seq: u32,
    page: &'static str,
    event: &'static str,
    referrer: usize,
    device: usize,
}

pub fn generate_and_write(dir: &Path, rng: &mut Rng, customers: &[Customer]) -> Result<(usize, usize)> {
    // Visitor pools with heterogeneous visit propensities.
    let mut visitors = Vec::new();
    let mut cum_customers = Vec::new();
    let mut cum_prospects = Vec::new();
    let mut acc = 0.0;
    for c in customers {
        let active = if c.is_active_at(JUNE_START) { 1.0 } else { 0.15 };
        acc += rng.gamma(1.5, 1.0) * active;
        cum_customers.push(acc);
        visitors.push(Visitor {
            id: c.id,
            device: rng.weighted_index(&DEVICE_WEIGHTS),
            utc_offset: REGION_UTC_OFFSET[c.region],
            is_customer: true,
            last_end: 0,
        });
    }
    acc = 0.0;
    for i in 0..N_PROSPECTS {
        acc += rng.gamma(0.8, 1.0);
        cum_prospects.push(acc);
        visitors.push(Visitor {
            id: FIRST_PROSPECT_ID + i as i64,
            device: rng.weighted_index(&DEVICE_WEIGHTS),
            utc_offset: REGION_UTC_OFFSET[rng.weighted_index(&[0.38, 0.30, 0.20, 0.12])],
            is_customer: false,
            last_end: 0,
        });
    }

    let mut events = Vec::new();
    for day_index in 0..30 {
        let day = JUNE_START + day_index * DAY;
        let weekday = [0.96, 1.0, 1.0, 1.0, 1.02, 1.08, 1.05][time::weekday(day) as usize];
        let campaign = if time::within(day, CAMPAIGN_START, CAMPAIGN_END) { 1.18 } else { 1.0 };
        let trend = 1.0 + 0.08 * day_index as f64 / 30.0;
        let sessions = (1_110.0 * weekday * campaign * trend * (1.0 + 0.025 * rng.normal())) as usize;
        for _ in 0..sessions {
            let vi = if rng.chance(0.55) {
                pick_cumulative(rng, &cum_customers)
            } else {
                customers.len() + pick_cumulative(rng, &cum_prospects)
            };
            // A first visit at a plausible local hour, then maybe more visits hours apart.
            let mut start = loop {
                let s = day + rng.range_i64(0, DAY);
                if rng.f64() < time::diurnal(time::local_hour(s, visitors[vi].utc_offset)) {
                    break s;
                }
            };
            loop {
                let v = &visitors[vi];
                if start < v.last_end + HOUR {
                    start = v.last_end + HOUR + (rng.lognormal(2.0, 0.7) * HOUR as f64) as i64;
                }
                if start >= day + DAY {
                    break;
                }
                let end = session(rng, v, start, day, &mut events);
                visitors[vi].last_end = end;
                if !rng.chance(if visitors[vi].is_customer { 0.15 } else { 0.08 }) {
                    break;
                }
                start = end + HOUR + (rng.lognormal(2.0, 0.7) * HOUR as f64) as i64;
            }
        }
    }
    events.retain(|e| e.ts_us < JUNE_END * 1_000);
    events.sort_by_key(|e| (e.ts_us, e.user_id, e.seq));

    let root = dir.join("clickstream");
    fs::create_dir_all(&root)?;
    let mut next_id = 1i64;
    let mut files = 0;
    for day_index in 0..30 {
        let day = JUNE_START + day_index * DAY;
        let part: Vec<&Event> = events.iter().filter(|e| time::within(e.ts_us / 1_000, day, day + DAY)).collect();
        let ids: Vec<i64> = (next_id..next_id + part.len() as i64).collect();
        next_id += part.len() as i64;
        let mut t = Table::new();
        t.i64("event_id", ids)
            .i64("user_id", part.iter().map(|e| e.user_id).collect())
            .ts_us_utc("ts", part.iter().map(|e| Some(e.ts_us)).collect())
            .str("page", part.iter().map(|e| e.page).collect())
            .str("event", part.iter().map(|e| e.event).collect())
            .str("referrer", part.iter().map(|e| REFERRERS[e.referrer]).collect())
            .str("device", part.iter().map(|e| DEVICES[e.device]).collect())
            .bool("converted", part.iter().map(|e| e.event == "purchase").collect());
        let dir = root.join(format!("day={}", time::day_string(day)));
        fs::create_dir_all(&dir)?;
        t.write(&dir.join("part-0.parquet"))?;
        files += 1;
    }
    Ok((events.len(), files))
}

/// Simulates one session starting at `start` and returns the time of its last event (ms).
fn session(rng: &mut Rng, v: &Visitor, start: i64, day: i64, out: &mut Vec<Event>) -> i64 {
    let campaign = time::within(day, CAMPAIGN_START, CAMPAIGN_END);
    let mut ref_weights = [0.34, 0.20, 0.12, 0.22, 0.12];
    if campaign {
        ref_weights[PAID] *= 1.9;
    }
    if v.is_customer {
        ref_weights[EMAIL] *= 1.6;
        ref_weights[DIRECT] *= 1.5;
    }
    let referrer = rng.weighted_index(&ref_weights);
    let device = if rng.chance(0.9) { v.device } else { rng.weighted_index(&DEVICE_WEIGHTS) };

    // The page/event script.
    let mut script: Vec<(&'static str, &'static str)> = Vec::new();
    let landing = match referrer {
        PAID => rng.pick(&[(PREMIUM, 0.5), (PLANS, 0.35), (ACCESSORIES, 0.15)]),
        EMAIL => rng.pick(&[(ACCESSORIES, 0.45), (PLANS, 0.35), (ACCOUNT, 0.2)]),
        DIRECT if v.is_customer => rng.pick(&[(HOME, 0.4), (ACCOUNT, 0.35), (SUPPORT, 0.25)]),
        DIRECT => rng.pick(&[(HOME, 0.8), (PLANS, 0.2)]),
        4 => rng.pick(&[(PLANS, 0.4), (HOME, 0.3), (ACCESSORIES, 0.3)]),
        _ => rng.pick(&[(HOME, 0.45), (SUPPORT, 0.25), (PLANS, 0.2), (ACCESSORIES, 0.1)]),
    };
    script.push((landing, "page_view"));
    let mut page = landing;
    let mut browsed = 0;
    while browsed < 6 && rng.chance(0.55) {
        let next = rng.pick(&[
            (HOME, 0.10),
            (PLANS, 0.25),
            (PREMIUM, 0.20),
            (ACCESSORIES, 0.25),
            (SUPPORT, if v.is_customer { 0.15 } else { 0.05 }),
            (ACCOUNT, if v.is_customer { 0.12 } else { 0.04 }),
        ]);
        if next != page {
            script.push((next, "page_view"));
            page = next;
            browsed += 1;
        }
    }
    if !v.is_customer && rng.chance(0.07) {
        script.push((ACCOUNT, "page_view"));
        script.push((ACCOUNT, "signup"));
        page = ACCOUNT;
    }
    let mut p_cart = 0.17
        * [0.85, 1.3, 1.0][device]
        * [0.9, 1.2, 1.35, 1.1, 0.7][referrer]
        * if landing == SUPPORT { 0.4 } else { 1.0 };
    if campaign && referrer == PAID {
        p_cart *= 1.15;
    }
    if rng.chance(p_cart) {
        if page != PLANS && page != PREMIUM && page != ACCESSORIES {
            page = rng.pick(&[(PREMIUM, 0.4), (PLANS, 0.3), (ACCESSORIES, 0.3)]);
            script.push((page, "page_view"));
        }
        script.push((page, "add_to_cart"));
        if page != ACCESSORIES && rng.chance(0.3) {
            script.push((ACCESSORIES, "page_view"));
            if rng.chance(0.4) {
                script.push((ACCESSORIES, "add_to_cart"));
            }
        }
        script.push((CART, "page_view"));
        if rng.chance(0.55 * [0.9, 1.12, 1.0][device]) {
            script.push((CHECKOUT, "page_view"));
            script.push((CHECKOUT, "checkout"));
            if rng.chance([0.6, 0.76, 0.68][device]) {
                script.push((CHECKOUT, "purchase"));
                if rng.chance(0.3) {
                    script.push((ACCOUNT, "page_view"));
                }
            }
        }
    }

    // Timestamps (microseconds): page views some seconds to minutes apart, actions quicker.
    let mut ts = start * 1_000 + rng.range_i64(0, 1_000);
    for (seq, &(page, event)) in script.iter().enumerate() {
        if seq > 0 {
            let gap_s = match event {
                "add_to_cart" | "signup" => rng.lognormal(20.0, 0.7),
                "checkout" => rng.lognormal(25.0, 0.6),
                "purchase" => rng.lognormal(90.0, 0.6),
                _ => rng.lognormal(55.0, 0.9).clamp(2.0, 20.0 * 60.0),
            };
            ts += (gap_s * 1e6) as i64;
        }
        out.push(Event { ts_us: ts, user_id: v.id, seq: seq as u32, page, event, referrer, device });
    }
    ts / 1_000
}
