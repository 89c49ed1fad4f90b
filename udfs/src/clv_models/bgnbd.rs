//! The BG/NBD model of repeat purchasing (Fader, Hardie & Lee 2005, "Counting Your Customers the
//! Easy Way"): its per-customer likelihood, its maximum-likelihood fit and the quantities it
//! predicts (probability alive, expected purchases).

use super::optimize::minimize;
use super::special::{hyp2f1, ln_beta, ln_gamma, log_add_exp};

/// BG/NBD parameters: purchase rates are Gamma(r, α), dropout probabilities Beta(a, b).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BgNbd {
    pub r: f64,
    pub alpha: f64,
    pub a: f64,
    pub b: f64,
}

/// One customer's repeat purchases x, time of the last one t_x and age T.
#[derive(Debug, Clone, Copy)]
pub struct Rfm {
    pub x: f64,
    pub t_x: f64,
    pub age: f64,
}

impl BgNbd {
    pub const PARAMETERS: [&'static str; 4] = ["r", "alpha", "a", "b"];

    pub fn from_slice(p: &[f64]) -> Self {
        Self { r: p[0], alpha: p[1], a: p[2], b: p[3] }
    }

    /// The parameter that is not positive and finite, if any.
    pub fn invalid_parameter(&self) -> Option<(&'static str, f64)> {
        let values = [self.r, self.alpha, self.a, self.b];
        Self::PARAMETERS.into_iter().zip(values).find(|(_, v)| !(v.is_finite() && *v > 0.0))
    }

    /// ln L(r, α, a, b | x, t_x, T), in log space throughout.
    pub fn ln_likelihood(&self, c: Rfm) -> f64 {
        let Self { r, alpha, a, b } = *self;
        let ln_b_ab = ln_beta(a, b);
        let ln_a1 = ln_beta(a, b + c.x) - ln_b_ab - (r + c.x) * (alpha + c.age).ln();
        let ln_a2 = if c.x > 0.0 {
            ln_beta(a + 1.0, b + c.x - 1.0) - ln_b_ab - (r + c.x) * (alpha + c.t_x).ln()
        } else {
            f64::NEG_INFINITY
        };
        ln_gamma(r + c.x) - ln_gamma(r) + r * alpha.ln() + log_add_exp(ln_a1, ln_a2)
    }

    /// The denominator shared by P(alive) and the conditional expectation:
    /// 1 + d · a/(b+x−1) · ((α+T)/(α+t_x))^(r+x).
    fn alive_denominator(&self, c: Rfm) -> f64 {
        if c.x > 0.0 {
            let ln_ratio = (self.r + c.x) * ((self.alpha + c.age).ln() - (self.alpha + c.t_x).ln());
            1.0 + self.a / (self.b + c.x - 1.0) * ln_ratio.exp()
        } else {
            1.0
        }
    }

    /// P(alive | x, t_x, T).
    pub fn p_alive(&self, c: Rfm) -> f64 {
        1.0 / self.alive_denominator(c)
    }

    /// E[Y(t) | x, t_x, T]: expected purchases in the next `t` time units; `None` when ₂F₁ does
    /// not converge.
    pub fn expected_purchases(&self, t: f64, c: Rfm) -> Option<f64> {
        let Self { r, alpha, a, b } = *self;
        if t == 0.0 {
            return Some(0.0);
        }
        let (x, age) = (c.x, c.age);
        let z = t / (alpha + age + t);
        let f = hyp2f1(r + x, b + x, a + b + x - 1.0, z)?;
        let ln_ratio = (r + x) * ((alpha + age).ln() - (alpha + age + t).ln());
        let numerator = (a + b + x - 1.0) / (a - 1.0) * (1.0 - ln_ratio.exp() * f);
        Some(numerator / self.alive_denominator(c))
    }
}

/// Customers with the same x share the likelihood's gamma and beta terms, and customers share a
/// few distinct recencies and ages (whole days or weeks): per evaluation the fit computes the
/// gamma and beta terms once per distinct x and ln(α + t) once per distinct time, which leaves a
/// multiply-add and one log-sum-exp per distinct (x, t_x, T).
struct SameFrequency {
    x: f64,
    weight: f64,
    /// (index of t_x in the time table, index of T, weight)
    points: Vec<(u32, u32, f64)>,
}

/// The maximum-likelihood BG/NBD fit over weighted (x, t_x, T), sorted by the caller so that the
/// sums run in the same order whatever the partitioning. Returns the parameters, Σ weight · lnL
/// and whether the optimizer converged.
pub fn fit(points: &[([f64; 3], f64)]) -> (BgNbd, f64, bool) {
    let mut times: Vec<f64> = points.iter().flat_map(|(p, _)| [p[1], p[2]]).collect();
    times.sort_by(f64::total_cmp);
    times.dedup();
    let index = |t: f64| times.binary_search_by(|v| v.total_cmp(&t)).unwrap_or(0) as u32;
    let mut by_x: Vec<SameFrequency> = Vec::new();
    for &([x, t_x, age], w) in points {
        let point = (index(t_x), index(age), w);
        match by_x.last_mut() {
            Some(g) if g.x == x => {
                g.weight += w;
                g.points.push(point);
            }
            _ => by_x.push(SameFrequency { x, weight: w, points: vec![point] }),
        }
    }
    let negative_ln_likelihood = |log_params: &[f64]| -> f64 {
        let [r, alpha, a, b] = [log_params[0].exp(), log_params[1].exp(), log_params[2].exp(), log_params[3].exp()];
        let (ln_gamma_r, ln_alpha, ln_b_ab) = (ln_gamma(r), alpha.ln(), ln_beta(a, b));
        let ln_t: Vec<f64> = times.iter().map(|t| (alpha + t).ln()).collect();
        let mut total = 0.0;
        for g in &by_x {
            let x = g.x;
            let head = ln_gamma(r + x) - ln_gamma_r + r * ln_alpha;
            let c1 = ln_beta(a, b + x) - ln_b_ab;
            let c2 = if x > 0.0 { ln_beta(a + 1.0, b + x - 1.0) - ln_b_ab } else { f64::NEG_INFINITY };
            let mut sum = 0.0;
            for &(t_x, age, w) in &g.points {
                let ln_a1 = c1 - (r + x) * ln_t[age as usize];
                let ln_a2 = c2 - (r + x) * ln_t[t_x as usize];
                sum += w * log_add_exp(ln_a1, ln_a2);
            }
            total += g.weight * head + sum;
        }
        -total
    };
    let m = minimize(negative_ln_likelihood, &[0.0; 4]);
    let params = BgNbd::from_slice(&m.x.iter().map(|v| v.exp()).collect::<Vec<_>>());
    (params, -m.value, m.converged && m.value.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published CDNOW estimates (Fader, Hardie & Lee 2005).
    const PUBLISHED: BgNbd = BgNbd { r: 0.243, alpha: 4.414, a: 0.793, b: 2.426 };

    #[test]
    fn p_alive_without_repeat_purchases_is_one() {
        assert_eq!(PUBLISHED.p_alive(Rfm { x: 0.0, t_x: 0.0, age: 38.86 }), 1.0);
    }

    #[test]
    fn p_alive_by_hand() {
        // x = 2, t_x = 30.43, T = 38.86:
        // 1 / (1 + 0.793/(2.426+1) · ((4.414+38.86)/(4.414+30.43))^2.243)
        let expected = 1.0 / (1.0 + 0.793 / 3.426 * (43.274f64 / 34.844).powf(2.243));
        let got = PUBLISHED.p_alive(Rfm { x: 2.0, t_x: 30.43, age: 38.86 });
        assert!((got - expected).abs() < 1e-14, "{got} vs {expected}");
    }

    #[test]
    fn expected_purchases_of_a_new_customer_is_the_unconditional_formula() {
        // For x = 0, t_x = 0, T = 0, E[Y(t)] is the paper's E[X(t)]:
        // (a+b−1)/(a−1) · [1 − (α/(α+t))^r · ₂F₁(r, b; a+b−1; t/(α+t))].
        let p = PUBLISHED;
        let t = 39.0;
        let f = hyp2f1(p.r, p.b, p.a + p.b - 1.0, t / (p.alpha + t)).unwrap();
        let expected = (p.a + p.b - 1.0) / (p.a - 1.0) * (1.0 - (p.alpha / (p.alpha + t)).powf(p.r) * f);
        let got = p.expected_purchases(t, Rfm { x: 0.0, t_x: 0.0, age: 0.0 }).unwrap();
        assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
        assert_eq!(p.expected_purchases(0.0, Rfm { x: 3.0, t_x: 20.0, age: 30.0 }), Some(0.0));
    }

    #[test]
    fn ln_likelihood_of_a_one_time_buyer_by_hand() {
        // x = 0: lnΓ(r) − lnΓ(r) + r ln α + ln B(a, b)/B(a, b) − r ln(α + T) = r ln(α/(α+T))
        let p = PUBLISHED;
        let expected = p.r * (p.alpha / (p.alpha + 10.0)).ln();
        let got = p.ln_likelihood(Rfm { x: 0.0, t_x: 0.0, age: 10.0 });
        assert!((got - expected).abs() < 1e-14);
    }
}
