//! The special functions the models need, in log space where they overflow otherwise.

/// ln Γ(x) for x > 0.
#[inline]
pub fn ln_gamma(x: f64) -> f64 {
    libm::lgamma(x)
}

/// ln B(p, q) = ln Γ(p) + ln Γ(q) − ln Γ(p + q).
#[inline]
pub fn ln_beta(p: f64, q: f64) -> f64 {
    ln_gamma(p) + ln_gamma(q) - ln_gamma(p + q)
}

/// ln(e^a + e^b) without overflow; `-inf` terms drop out.
#[inline]
pub fn log_add_exp(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
    if lo == f64::NEG_INFINITY {
        hi
    } else {
        hi + (lo - hi).exp().ln_1p()
    }
}

/// The most series terms [`hyp2f1`] sums before it gives up.
const HYP2F1_MAX_TERMS: usize = 100_000;

/// The Gauss hypergeometric function ₂F₁(a, b; c; z) for 0 ≤ z < 1 by its power series, or
/// `None` when the series does not settle within [`HYP2F1_MAX_TERMS`] terms or leaves the range
/// of `f64`.
///
/// The models call it with a, b, c > 0 (or c > −1) and z = t / (α + T + t) < 1, where every term
/// is positive: the sum has no cancellation, so summing until a term no longer changes the sum
/// is accurate to a few units in the last place.
pub fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> Option<f64> {
    if !((0.0..1.0).contains(&z) && a.is_finite() && b.is_finite() && c.is_finite()) {
        return None;
    }
    let mut term = 1.0;
    let mut sum = 1.0;
    for k in 0..HYP2F1_MAX_TERMS {
        let k = k as f64;
        term *= (a + k) * (b + k) / ((c + k) * (k + 1.0)) * z;
        let next = sum + term;
        if !next.is_finite() {
            return None;
        }
        // Stop once terms are shrinking and no longer move the sum.
        if next == sum && (a + k + 1.0) * (b + k + 1.0) * z < (c + k + 1.0) * (k + 2.0) {
            return Some(sum);
        }
        sum = next;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_gamma_matches_factorials() {
        // Γ(n) = (n − 1)!
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-14);
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-14);
        // B(2, 3) = 1! 2! / 4! = 1/12
        assert!((ln_beta(2.0, 3.0) - (1.0f64 / 12.0).ln()).abs() < 1e-14);
    }

    #[test]
    fn hyp2f1_closed_forms() {
        // ₂F₁(1, 1; 2; z) = −ln(1 − z) / z
        for z in [0.0, 0.1, 0.5, 0.9] {
            let expected = if z == 0.0 { 1.0 } else { -(1.0f64 - z).ln() / z };
            let got = hyp2f1(1.0, 1.0, 2.0, z).unwrap();
            assert!((got - expected).abs() <= 1e-14 * expected, "z={z}: {got} vs {expected}");
        }
        // ₂F₁(a, b; b; z) = (1 − z)^−a
        let got = hyp2f1(2.5, 3.0, 3.0, 0.3).unwrap();
        let expected = 0.7f64.powf(-2.5);
        assert!((got - expected).abs() <= 1e-14 * expected);
    }

    #[test]
    fn hyp2f1_outside_the_disc_is_none() {
        assert_eq!(hyp2f1(1.0, 1.0, 2.0, 1.0), None);
        assert_eq!(hyp2f1(1.0, 1.0, 2.0, -0.1), None);
    }

    #[test]
    fn log_add_exp_is_stable() {
        assert_eq!(log_add_exp(f64::NEG_INFINITY, 3.0), 3.0);
        assert!((log_add_exp(1000.0, 1000.0) - (1000.0 + 2f64.ln())).abs() < 1e-12);
    }
}
