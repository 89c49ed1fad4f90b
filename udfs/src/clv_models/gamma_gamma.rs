//! The Gamma-Gamma model of spend per transaction (Fader & Hardie 2013, "The Gamma-Gamma Model of
//! Monetary Value"): its likelihood, its maximum-likelihood fit and the expected spend.

use super::optimize::minimize;
use super::special::ln_gamma;

/// Gamma-Gamma parameters: spend per transaction is Gamma(p, ν), ν ~ Gamma(q, γ).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GammaGamma {
    pub p: f64,
    pub q: f64,
    pub gamma: f64,
}

impl GammaGamma {
    pub const PARAMETERS: [&'static str; 3] = ["p", "q", "gamma"];

    pub fn from_slice(v: &[f64]) -> Self {
        Self { p: v[0], q: v[1], gamma: v[2] }
    }

    pub fn invalid_parameter(&self) -> Option<(&'static str, f64)> {
        let values = [self.p, self.q, self.gamma];
        Self::PARAMETERS.into_iter().zip(values).find(|(_, v)| !(v.is_finite() && *v > 0.0))
    }

    /// ln f(m_x | p, q, γ, x) for a customer with x > 0 repeat purchases of mean value m_x > 0.
    pub fn ln_likelihood(&self, x: f64, m: f64) -> f64 {
        let Self { p, q, gamma } = *self;
        ln_gamma(p * x + q) - ln_gamma(p * x) - ln_gamma(q) + q * gamma.ln() + (p * x - 1.0) * m.ln() + p * x * x.ln()
            - (p * x + q) * (gamma + x * m).ln()
    }

    /// E[M | x, m_x] = p (γ + x m_x) / (p x + q − 1); `None` when q ≤ 1 (no finite mean).
    pub fn expected_spend(&self, x: f64, m: f64) -> Option<f64> {
        let Self { p, q, gamma } = *self;
        (q > 1.0).then(|| p * (gamma + x * m) / (p * x + q - 1.0))
    }
}

/// The maximum-likelihood fit over weighted (x, m_x) with x > 0 and m_x > 0, sorted by the
/// caller. Returns the parameters, Σ weight · ln f and whether the optimizer converged.
pub fn fit(points: &[([f64; 2], f64)]) -> (GammaGamma, f64, bool) {
    // Per point: x, ln x, m, ln m, weight.
    let data: Vec<[f64; 5]> = points.iter().map(|&([x, m], w)| [x, x.ln(), m, m.ln(), w]).collect();
    let negative_ln_likelihood = |log_params: &[f64]| -> f64 {
        let [p, q, gamma] = [log_params[0].exp(), log_params[1].exp(), log_params[2].exp()];
        let (ln_gamma_q, ln_g) = (ln_gamma(q), gamma.ln());
        let mut total = 0.0;
        let mut last_x = f64::NAN;
        let mut per_x = 0.0;
        for &[x, ln_x, m, ln_m, w] in &data {
            if x != last_x {
                per_x = ln_gamma(p * x + q) - ln_gamma(p * x) - ln_gamma_q + q * ln_g + p * x * ln_x;
                last_x = x;
            }
            total += w * (per_x + (p * x - 1.0) * ln_m - (p * x + q) * (gamma + x * m).ln());
        }
        -total
    };
    let m = minimize(negative_ln_likelihood, &[0.0; 3]);
    let params = GammaGamma::from_slice(&m.x.iter().map(|v| v.exp()).collect::<Vec<_>>());
    (params, -m.value, m.converged && m.value.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLISHED: GammaGamma = GammaGamma { p: 6.25, q: 3.74, gamma: 15.44 };

    #[test]
    fn expected_spend_by_hand() {
        // x = 2, m = 22.35: 6.25 (15.44 + 44.7) / (12.5 + 2.74)
        let got = PUBLISHED.expected_spend(2.0, 22.35).unwrap();
        assert!((got - 6.25 * 60.14 / 15.24).abs() < 1e-12);
        // x = 0: the population mean γ p / (q − 1)
        assert!((PUBLISHED.expected_spend(0.0, 0.0).unwrap() - 15.44 * 6.25 / 2.74).abs() < 1e-12);
        assert_eq!(GammaGamma { q: 1.0, ..PUBLISHED }.expected_spend(2.0, 10.0), None);
    }

    #[test]
    fn the_fit_recovers_the_maximum_of_a_one_point_family() {
        // Many customers with the same (x, m): the likelihood is maximized along a ridge, and
        // the fit must at least reach a value no other nearby point beats.
        let points = [([1.0, 10.0], 3.0), ([2.0, 20.0], 2.0), ([5.0, 12.0], 1.0), ([3.0, 8.0], 4.0)];
        let (g, ll, _) = fit(&points);
        let at = |g: GammaGamma| points.iter().map(|&([x, m], w)| w * g.ln_likelihood(x, m)).sum::<f64>();
        assert!((at(g) - ll).abs() < 1e-9);
        for scale in [0.99, 1.01] {
            assert!(at(GammaGamma { q: g.q * scale, ..g }) <= ll + 1e-9);
            assert!(at(GammaGamma { gamma: g.gamma * scale, ..g }) <= ll + 1e-9);
        }
    }
}
