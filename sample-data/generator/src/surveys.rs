//! `survey_invitations.parquet` and `surveys.parquet`.
//!
//! Two kinds of invitation: transactional (sent after a ticket is resolved, the survey carries
//! the ticket_id) and relational (a periodic "how likely are you to recommend us" to every
//! active customer, ticket_id NULL). Every survey is the answer to one responded invitation.

use std::path::Path;

use crate::customers::Customer;
use crate::rng::Rng;
use crate::support::{Ticket, OUTAGE_START};
use crate::time::{self, date, DAY, HOUR, MINUTE, PERIOD_END, PERIOD_START};
use crate::write::{Result, Table};

pub const CHANNELS: [&str; 5] = ["email", "web", "app", "phone", "chat"];
const EMAIL: usize = 0;
const WEB: usize = 1;
const APP: usize = 2;
const PHONE: usize = 3;
const CHAT: usize = 4;
const PREFERRED_WEIGHTS: [f64; 5] = [0.40, 0.12, 0.30, 0.10, 0.08];

/// The app's redesigned release: app respondents are happier from here on.
const APP_RELEASE: i64 = date(2025, 5, 20);
/// Days between two relational surveys to the same customer (on average).
const RELATIONAL_EVERY_DAYS: i64 = 31;

struct Invitation {
    customer: usize,
    sent_at: i64,
    channel: usize,
    responded_at: Option<i64>,
    ticket: Option<usize>,
}

pub fn generate_and_write(
    dir: &Path,
    rng: &mut Rng,
    customers: &[Customer],
    tickets: &[Ticket],
) -> Result<(usize, usize)> {
    let mut invitations = Vec::new();

    // Transactional: after each resolved ticket.
    for (i, t) in tickets.iter().enumerate() {
        let Some(resolved_ns) = t.resolved_ns else {
            continue;
        };
        let sent_at = resolved_ns / 1_000_000 + (rng.lognormal(20.0, 0.8) * MINUTE as f64) as i64;
        if sent_at >= PERIOD_END {
            continue;
        }
        // Ticket channels map onto survey channels; social tickets get an email survey.
        let channel = match crate::support::CHANNELS[t.channel] {
            "chat" => CHAT,
            "phone" => PHONE,
            "web" => WEB,
            _ => EMAIL,
        };
        let mut p = [0.78, 0.80, 0.85, 0.85, 0.90][channel];
        if t.quality < -1.0 {
            p += 0.05; // unhappy customers like to tell you
        }
        let responded_at = respond(rng, channel, sent_at, p);
        invitations.push(Invitation { customer: t.customer, sent_at, channel, responded_at, ticket: Some(i) });
    }

    // Relational: roughly monthly to every active customer, sent in a daily batch.
    for (ci, c) in customers.iter().enumerate() {
        let preferred = rng.weighted_index(&PREFERRED_WEIGHTS);
        let mut t = PERIOD_START + rng.range_i64(0, RELATIONAL_EVERY_DAYS * DAY);
        while t < PERIOD_END {
            let day = t.div_euclid(DAY) * DAY;
            let sent_at = day + 14 * HOUR + rng.range_i64(0, 2 * HOUR);
            if sent_at < PERIOD_END && c.is_active_at(sent_at) {
                let channel = if rng.chance(0.8) { preferred } else { rng.weighted_index(&PREFERRED_WEIGHTS) };
                let p = [0.44, 0.50, 0.64, 0.36, 0.56][channel]
                    + if c.loyalty_member { 0.06 } else { 0.0 }
                    + 0.03 * c.happiness;
                let responded_at = respond(rng, channel, sent_at, p);
                invitations.push(Invitation { customer: ci, sent_at, channel, responded_at, ticket: None });
            }
            t += (RELATIONAL_EVERY_DAYS + rng.range_i64(-7, 8)) * DAY;
        }
    }
    invitations.sort_by_key(|v| (v.sent_at, v.customer));

    let mut inv = Table::new();
    inv.i64("invitation_id", (1..=invitations.len() as i64).collect())
        .i64("customer_id", invitations.iter().map(|v| customers[v.customer].id).collect())
        .ts_ms_utc("sent_at", invitations.iter().map(|v| Some(v.sent_at)).collect())
        .str("channel", invitations.iter().map(|v| CHANNELS[v.channel]).collect())
        .bool("responded", invitations.iter().map(|v| v.responded_at.is_some()).collect());
    let n_inv = inv.write(&dir.join("survey_invitations.parquet"))?;

    // Surveys: one per responded invitation, numbered in order of response.
    let mut responded: Vec<&Invitation> = invitations.iter().filter(|v| v.responded_at.is_some()).collect();
    responded.sort_by_key(|v| (v.responded_at, v.customer));
    let mut cols = SurveyColumns::default();
    for v in responded {
        survey(rng, customers, tickets, v, &mut cols);
    }
    let n = cols.customer_id.len();
    let mut s = Table::new();
    s.i64("survey_id", (1..=n as i64).collect())
        .i64("customer_id", cols.customer_id)
        .ts_ms_utc("responded_at", cols.responded_at)
        .str("channel", cols.channel)
        .str("region", cols.region)
        .opt_i32("score", cols.score)
        .opt_i32("satisfaction", cols.satisfaction)
        .opt_i32("effort", cols.effort)
        .opt_i64("ticket_id", cols.ticket_id);
    let n_surveys = s.write(&dir.join("surveys.parquet"))?;
    Ok((n_inv, n_surveys))
}

/// Whether and when an invitation is answered (never after the snapshot instant).
fn respond(rng: &mut Rng, channel: usize, sent_at: i64, p: f64) -> Option<i64> {
    if !rng.chance(p) {
        return None;
    }
    let (median_min, sigma) = match channel {
        EMAIL => (300.0, 1.3),
        WEB => (90.0, 1.2),
        APP => (40.0, 1.2),
        PHONE => (2.0, 0.6),
        _ => (1.0, 0.6),
    };
    let at = sent_at + ((rng.lognormal(median_min, sigma) * MINUTE as f64) as i64).max(5_000);
    (at < PERIOD_END).then_some(at)
}

#[derive(Default)]
struct SurveyColumns {
    customer_id: Vec<i64>,
    responded_at: Vec<Option<i64>>,
    channel: Vec<&'static str>,
    region: Vec<&'static str>,
    score: Vec<Option<i32>>,
    satisfaction: Vec<Option<i32>>,
    effort: Vec<Option<i32>>,
    ticket_id: Vec<Option<i64>>,
}

fn survey(rng: &mut Rng, customers: &[Customer], tickets: &[Ticket], v: &Invitation, cols: &mut SurveyColumns) {
    let c = &customers[v.customer];
    let at = v.responded_at.expect("responded invitation");
    let progress = (at - PERIOD_START) as f64 / (PERIOD_END - PERIOD_START) as f64;

    // Latent sentiment: the customer's disposition, how this channel's experience feels, the
    // ticket they just had (if any), product events, and noise.
    let mut latent = 0.55 * c.happiness + 0.2 * progress;
    latent += [-0.05, 0.0, 0.35, -0.35, 0.15][v.channel];
    latent += [-0.1, 0.0, 0.2][c.plan];
    if c.loyalty_member {
        latent += 0.15;
    }
    if v.channel == APP && at >= APP_RELEASE {
        latent += 0.25;
    }
    let mut effort_shift = 0.0;
    match v.ticket {
        Some(ti) => {
            let t = &tickets[ti];
            latent += 0.6 * t.quality - 0.1;
            effort_shift = 0.25 * (t.replies.len() as f64 - 1.0) - 0.35 * t.quality;
        }
        None => {
            if time::within(at, OUTAGE_START, OUTAGE_START + 14 * DAY) {
                latent -= 0.45;
            }
        }
    }
    latent += 0.75 * rng.normal();

    let nps = (7.9 + 1.85 * latent).round().clamp(0.0, 10.0) as i32;
    let csat_latent = 0.8 * latent + 0.5 * rng.normal();
    let csat = (3.95 + 0.85 * csat_latent).round().clamp(1.0, 5.0) as i32;
    let effort_latent = -0.6 * latent + 0.7 * rng.normal();
    let ces = (2.9 + 1.1 * effort_latent + effort_shift).round().clamp(1.0, 7.0) as i32;

    // Partial answers.
    cols.score.push((!rng.chance(0.03)).then_some(nps));
    cols.satisfaction.push((!rng.chance(0.05)).then_some(csat));
    cols.effort.push((!rng.chance(0.08)).then_some(ces));
    cols.customer_id.push(c.id);
    cols.responded_at.push(Some(at));
    cols.channel.push(CHANNELS[v.channel]);
    cols.region.push(crate::customers::REGIONS[c.region]);
    cols.ticket_id.push(v.ticket.map(Ticket::id));
}
