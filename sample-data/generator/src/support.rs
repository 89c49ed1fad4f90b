//! `tickets.parquet`, `ticket_replies.parquet` and `qa_reviews.parquet`.
//!
//! Each ticket's conversation is simulated (first response, customer/agent exchanges, closing),
//! and its resolved time follows from it. A hidden per-ticket `quality` (fast first response,
//! fast resolution, a skilled agent, few back-and-forths) feeds the post-ticket survey and the QA
//! scores.

use std::path::Path;

use crate::customers::{Customer, REGION_UTC_OFFSET};
use crate::rng::{ln, pick_cumulative, Rng};
use crate::time::{self, date, DAY, HOUR, MINUTE, PERIOD_END, PERIOD_START, SECOND};
use crate::write::{Result, Table};

pub const N_TICKETS: usize = 12_000;
pub const N_AGENTS: usize = 60;
pub const FIRST_AGENT_ID: i64 = 1001;

pub const CHANNELS: [&str; 5] = ["email", "chat", "phone", "web", "social"];
const CHANNEL_WEIGHTS: [f64; 5] = [0.30, 0.26, 0.20, 0.14, 0.10];
pub const CHAT: usize = 1;
pub const PHONE: usize = 2;

pub const TYPES: [&str; 4] = ["question", "complaint", "billing", "technical"];
const TYPE_WEIGHTS: [f64; 4] = [0.36, 0.15, 0.22, 0.27];
pub const COMPLAINT: usize = 1;
const BILLING: usize = 2;
const TECHNICAL: usize = 3;

pub const PRIORITIES: [&str; 4] = ["low", "normal", "high", "urgent"];
/// Priority mix per ticket type.
const PRIORITY_WEIGHTS: [[f64; 4]; 4] =
    [[0.35, 0.55, 0.08, 0.02], [0.05, 0.42, 0.35, 0.18], [0.15, 0.55, 0.22, 0.08], [0.10, 0.50, 0.28, 0.12]];
/// How much faster (or slower) higher (lower) priorities are answered.
const PRIORITY_SPEED: [f64; 4] = [1.6, 1.0, 0.5, 0.22];

/// The network outage: technical tickets (and complaints) spike and queues are slow.
pub const OUTAGE_START: i64 = date(2025, 3, 11) + 8 * HOUR;
pub const OUTAGE_END: i64 = date(2025, 3, 14);
/// The billing-system migration: billing tickets double.
const BILLING_ISSUE_START: i64 = date(2025, 1, 6);
const BILLING_ISSUE_END: i64 = date(2025, 1, 25);

pub struct Agent {
    pub skill: f64,
    /// Multiplies the agent's response delays (below 1 = faster than average).
    pub speed: f64,
}

pub struct Reply {
    pub requested_at: i64,
    pub responded_at: Option<i64>,
    pub agent: usize,
}

pub struct Ticket {
    pub customer: usize,
    pub channel: usize,
    pub kind: usize,
    pub priority: usize,
    pub created_at: i64,
    pub queued_at: Option<i64>,
    pub answered_at_us: Option<i64>,
    pub first_response_ns: Option<i64>,
    pub resolved_ns: Option<i64>,
    pub agent: usize,
    /// Hidden experience quality: higher = faster, smoother, better handled.
    pub quality: f64,
    pub replies: Vec<Reply>,
}

impl Ticket {
    pub fn id(index: usize) -> i64 {
        index as i64 + 1
    }

    pub fn is_live(&self) -> bool {
        self.channel == CHAT || self.channel == PHONE
    }
}

fn type_multiplier(kind: usize, ms: i64) -> f64 {
    match kind {
        TECHNICAL if time::within(ms, OUTAGE_START, OUTAGE_END) => 4.0,
        TECHNICAL if time::within(ms, OUTAGE_END, OUTAGE_END + 4 * DAY) => 1.6,
        COMPLAINT if time::within(ms, OUTAGE_START, OUTAGE_END + 2 * DAY) => 2.5,
        BILLING if time::within(ms, BILLING_ISSUE_START, BILLING_ISSUE_END) => 2.2,
        _ => 1.0,
    }
}

/// Queue load at a given instant: multiplies waiting and response times.
fn load(ms: i64) -> f64 {
    if time::within(ms, OUTAGE_START, OUTAGE_END + DAY) {
        2.6
    } else if time::within(ms, BILLING_ISSUE_START, BILLING_ISSUE_END) {
        1.3
    } else {
        1.0
    }
}

pub fn generate(rng: &mut Rng, customers: &[Customer]) -> (Vec<Agent>, Vec<Ticket>) {
    let agents: Vec<Agent> = (0..N_AGENTS)
        .map(|_| {
            let skill = rng.normal();
            let speed = crate::rng::exp(-0.15 * skill + 0.25 * rng.normal());
            Agent { skill, speed }
        })
        .collect();

    // Customers are proposed in proportion to their active time in the period and their need
    // for support (unhappy and premium customers contact support more).
    let windows: Vec<Vec<(i64, i64)>> =
        customers.iter().map(|c| c.active_within(PERIOD_START, PERIOD_END - MINUTE)).collect();
    let mut cum = Vec::with_capacity(customers.len());
    let mut acc = 0.0;
    for (c, w) in customers.iter().zip(&windows) {
        let active: i64 = w.iter().map(|(s, e)| e - s).sum();
        let propensity = crate::rng::exp(-0.4 * c.happiness) * (1.0 + 0.15 * c.plan as f64);
        acc += active as f64 * propensity;
        cum.push(acc);
    }

    // Thinning: propose (customer, instant, type), accept by time-of-day, weekday and events.
    let mut raw: Vec<(i64, usize, usize)> = Vec::with_capacity(N_TICKETS);
    while raw.len() < N_TICKETS {
        let ci = pick_cumulative(rng, &cum);
        if windows[ci].is_empty() {
            continue;
        }
        let t = crate::customers::instant_within(rng, &windows[ci]);
        let kind = rng.weighted_index(&TYPE_WEIGHTS);
        let offset = REGION_UTC_OFFSET[customers[ci].region];
        let day = match time::weekday(t + offset * HOUR) {
            0 => 1.15,
            5 => 0.6,
            6 => 0.5,
            _ => 1.0,
        };
        let w = time::diurnal(time::local_hour(t, offset)) * day * type_multiplier(kind, t);
        if rng.f64() * 4.6 < w {
            raw.push((t, ci, kind));
        }
    }
    raw.sort_unstable();

    let mut tickets = Vec::with_capacity(N_TICKETS);
    for &(created_at, customer, kind) in &raw {
        let mut channel = rng.weighted_index(&CHANNEL_WEIGHTS);
        if kind == COMPLAINT && rng.chance(0.15) {
            channel = 4; // complaints go public on social media more often
        }
        let priority = rng.weighted_index(&PRIORITY_WEIGHTS[kind]);
        let agent = rng.below(N_AGENTS as u64) as usize;
        let mut t = Ticket {
            customer,
            channel,
            kind,
            priority,
            created_at,
            queued_at: None,
            answered_at_us: None,
            first_response_ns: None,
            resolved_ns: None,
            agent,
            quality: 0.0,
            replies: Vec::new(),
        };
        simulate(rng, &agents, &mut t);
        tickets.push(t);
    }
    (agents, tickets)
}

/// Fills in the ticket's timeline and conversation.
fn simulate(rng: &mut Rng, agents: &[Agent], t: &mut Ticket) {
    const NS_PER_MS: i64 = 1_000_000;
    let end_ns = PERIOD_END * NS_PER_MS;
    let agent = &agents[t.agent];
    let load = load(t.created_at);
    let offset = REGION_UTC_OFFSET[0]; // support works NA business hours as its main shift
    let off_hours = {
        let h = time::local_hour(t.created_at, offset);
        !(8.0..18.0).contains(&h) || time::weekday(t.created_at + offset * HOUR) >= 5
    };
    let live = t.is_live();

    // First response.
    let abandoned = rng.chance(0.037);
    let (first_ns, frt_ref_ms) = if live {
        let queued = t.created_at + (rng.lognormal(4.0, 0.6) * SECOND as f64) as i64 + 200;
        t.queued_at = Some(queued);
        let median_wait_s = if t.channel == CHAT { 70.0 } else { 200.0 };
        let wait_s = rng.lognormal(median_wait_s, 0.8)
            * load
            * PRIORITY_SPEED[t.priority].sqrt()
            * if off_hours { 1.4 } else { 1.0 };
        let answered_us = queued * 1_000 + (wait_s * 1e6) as i64;
        let greeting_ns = (rng.lognormal(6.0, 0.5) * 1e9) as i64;
        if !abandoned && answered_us < PERIOD_END * 1_000 {
            t.answered_at_us = Some(answered_us);
        }
        let first = answered_us * 1_000 + greeting_ns;
        (first, median_wait_s * 1_000.0)
    } else {
        let median_min = match t.channel {
            0 => 240.0,
            3 => 360.0,
            _ => 90.0,
        };
        let frt_min = (rng.lognormal(median_min, 0.9)
            * PRIORITY_SPEED[t.priority]
            * agent.speed
            * load
            * if off_hours { 1.8 } else { 1.0 })
        .max(1.0 + rng.f64());
        let first = t.created_at * NS_PER_MS + (frt_min * 60e9) as i64;
        (first, median_min * MINUTE as f64)
    };
    if abandoned || first_ns >= end_ns {
        // Never answered (yet): the customer may chase once.
        t.quality = -1.6 + 0.4 * rng.normal();
        t.replies.push(Reply { requested_at: t.created_at, responded_at: None, agent: t.agent });
        let chase = t.created_at + (rng.lognormal(20.0, 0.8) * HOUR as f64) as i64;
        if rng.chance(0.2) && chase < PERIOD_END {
            t.replies.push(Reply { requested_at: chase, responded_at: None, agent: t.agent });
        }
        return;
    }
    t.first_response_ns = Some(first_ns);
    t.replies.push(Reply {
        requested_at: t.created_at,
        responded_at: Some(first_ns.div_euclid(NS_PER_MS)),
        agent: t.agent,
    });

    // Back-and-forth exchanges; live conversations either finish in the session or move to
    // asynchronous follow-ups.
    let mean_exchanges = [0.8, 1.9, 1.3, 2.0][t.kind];
    let exchanges = rng.poisson(mean_exchanges);
    let in_session = live && rng.chance(0.7);
    let mut last_ns = first_ns;
    for _ in 0..exchanges {
        let last_ms = last_ns.div_euclid(NS_PER_MS);
        let (gap_ms, delay_ms) = if in_session {
            (rng.lognormal(40.0, 0.6) * SECOND as f64, rng.lognormal(35.0, 0.6) * SECOND as f64)
        } else {
            (rng.lognormal(3.0, 1.2) * HOUR as f64, rng.lognormal(2.5, 1.0) * HOUR as f64 * agent.speed * load)
        };
        let requested = last_ms + gap_ms as i64 + 1;
        let responded = requested + delay_ms.max(1_000.0) as i64;
        let agent_id = if rng.chance(0.88) { t.agent } else { rng.below(N_AGENTS as u64) as usize };
        t.replies.push(Reply { requested_at: requested, responded_at: Some(responded), agent: agent_id });
        last_ns = responded * NS_PER_MS + rng.below(NS_PER_MS as u64) as i64;
    }

    // Closing: most tickets are resolved a little after the last answer; some stay open, either
    // waiting on the customer or on the agent, who has not answered the customer's last message.
    let pending = rng.chance(0.06);
    if pending && rng.chance(0.4) {
        let requested = last_ns.div_euclid(NS_PER_MS) + (rng.lognormal(6.0, 1.0) * HOUR as f64) as i64;
        t.replies.push(Reply { requested_at: requested, responded_at: None, agent: t.agent });
    } else if !pending {
        let close_ns =
            if in_session { rng.lognormal(90.0, 0.5) * 1e9 } else { rng.lognormal(5.0, 1.0) * HOUR as f64 * 1e6 };
        let resolved = last_ns + (close_ns as i64).max(1_000_000_000);
        if resolved < end_ns {
            t.resolved_ns = Some(resolved);
        }
    }

    // Experience quality.
    let frt_ms = (first_ns - t.created_at * NS_PER_MS) as f64 / NS_PER_MS as f64;
    let z_frt = (ln(frt_ms / frt_ref_ms) / 1.0).clamp(-2.5, 2.5);
    let res_ref_h = [6.0, 30.0, 16.0, 24.0][t.kind];
    let res_end = t.resolved_ns.unwrap_or(end_ns.max(last_ns));
    let res_h = ((res_end - t.created_at * NS_PER_MS) as f64 / 3.6e12).max(0.01);
    let z_res = (ln(res_h / res_ref_h) / 1.2).clamp(-2.5, 2.5);
    let type_effect = [0.1, -0.45, -0.15, -0.05][t.kind];
    t.quality = -0.3 * z_frt - 0.55 * z_res + 0.3 * agent.skill - 0.08 * f64::from(exchanges) + type_effect
        - if t.resolved_ns.is_none() { 0.7 } else { 0.0 };

    // Nothing after the snapshot instant.
    t.replies.retain(|r| r.requested_at < PERIOD_END);
    for r in &mut t.replies {
        if r.responded_at.is_some_and(|x| x >= PERIOD_END) {
            r.responded_at = None;
        }
    }
}

pub fn write_tickets(dir: &Path, customers: &[Customer], tickets: &[Ticket]) -> Result<usize> {
    let mut t = Table::new();
    t.i64("ticket_id", (0..tickets.len()).map(Ticket::id).collect())
        .i64("customer_id", tickets.iter().map(|t| customers[t.customer].id).collect())
        .str("channel", tickets.iter().map(|t| CHANNELS[t.channel]).collect())
        .str("type", tickets.iter().map(|t| TYPES[t.kind]).collect())
        .str("priority", tickets.iter().map(|t| PRIORITIES[t.priority]).collect())
        .ts_ms_utc("created_at", tickets.iter().map(|t| Some(t.created_at)).collect())
        .ts_ms_utc("queued_at", tickets.iter().map(|t| t.queued_at).collect())
        .ts_us_utc("answered_at", tickets.iter().map(|t| t.answered_at_us).collect())
        .ts_ns_utc("first_response_at", tickets.iter().map(|t| t.first_response_ns).collect())
        .ts_ns_naive("resolved_at", tickets.iter().map(|t| t.resolved_ns).collect())
        .i64("agent_id", tickets.iter().map(|t| FIRST_AGENT_ID + t.agent as i64).collect());
    t.write(&dir.join("tickets.parquet"))
}

pub fn write_replies(dir: &Path, tickets: &[Ticket]) -> Result<usize> {
    let mut rows: Vec<(i64, i64, Option<i64>, i64)> = tickets
        .iter()
        .enumerate()
        .flat_map(|(i, t)| {
            t.replies
                .iter()
                .map(move |r| (r.requested_at, Ticket::id(i), r.responded_at, FIRST_AGENT_ID + r.agent as i64))
        })
        .collect();
    rows.sort_by_key(|r| (r.0, r.1));
    let mut t = Table::new();
    t.i64("reply_id", (1..=rows.len() as i64).collect())
        .i64("ticket_id", rows.iter().map(|r| r.1).collect())
        .ts_ms_utc("requested_at", rows.iter().map(|r| Some(r.0)).collect())
        .ts_ms_utc("responded_at", rows.iter().map(|r| r.2).collect())
        .i64("agent_id", rows.iter().map(|r| r.3).collect());
    t.write(&dir.join("ticket_replies.parquet"))
}

pub const QA_CRITERIA: [(&str, f64); 4] = [("accuracy", 0.4), ("tone", 0.2), ("resolution", 0.3), ("process", 0.1)];

pub fn write_qa_reviews(dir: &Path, rng: &mut Rng, agents: &[Agent], tickets: &[Ticket]) -> Result<usize> {
    // Which resolved tickets get reviewed, and when.
    let mut reviews: Vec<(i64, usize)> = Vec::new();
    for (i, t) in tickets.iter().enumerate() {
        let Some(resolved_ns) = t.resolved_ns else {
            continue;
        };
        let p = if t.kind == COMPLAINT {
            0.26
        } else if t.priority == 3 {
            0.2
        } else {
            0.105
        };
        if !rng.chance(p) {
            continue;
        }
        let reviewed = resolved_ns / 1_000_000 + ((rng.lognormal(3.0, 0.6) * DAY as f64) as i64).max(HOUR);
        if reviewed < PERIOD_END {
            reviews.push((reviewed, i));
        }
    }
    reviews.sort_unstable();

    let round1 = |x: f64| (x.clamp(0.0, 100.0) * 10.0).round() / 10.0;
    let (mut review_id, mut ticket_id, mut agent_id, mut criterion, mut score, mut weight, mut at) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for (n, &(reviewed, ti)) in reviews.iter().enumerate() {
        let t = &tickets[ti];
        let base = 80.0 + 7.0 * agents[t.agent].skill;
        let skip_process = rng.chance(0.06);
        for (c, &(name, w)) in QA_CRITERIA.iter().enumerate() {
            let s = match c {
                0 if rng.chance(0.02) => rng.uniform(0.0, 30.0), // critical error: auto-fail
                0 => base + 3.0 * t.quality + 9.0 * rng.normal(),
                1 => base + 5.0 + 2.0 * t.quality + 7.0 * rng.normal(),
                2 => base - 2.0 + 7.0 * t.quality + 10.0 * rng.normal(),
                _ => base + 6.0 + 8.0 * rng.normal(),
            };
            if c == 3 && skip_process {
                continue; // process not applicable to this ticket
            }
            review_id.push(n as i64 + 1);
            ticket_id.push(Ticket::id(ti));
            agent_id.push(FIRST_AGENT_ID + t.agent as i64);
            criterion.push(name);
            score.push(round1(s));
            weight.push(w);
            at.push(Some(reviewed));
        }
    }
    let mut t = Table::new();
    t.i64("review_id", review_id)
        .i64("ticket_id", ticket_id)
        .i64("agent_id", agent_id)
        .str("criterion", criterion)
        .f64("score", score)
        .f64("weight", weight)
        .ts_ms_utc("reviewed_at", at);
    t.write(&dir.join("qa_reviews.parquet"))
}
