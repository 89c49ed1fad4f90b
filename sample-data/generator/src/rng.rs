//! A small, self-contained pseudo-random number generator and the distributions the generator
//! needs.
//!
//! Everything here is deterministic across runs, crate versions and platforms: the generator is
//! xoshiro256** seeded through splitmix64, and the only floating-point operations used are the
//! IEEE-754 basic operations (`+ - * /`, `sqrt`, rounding), which are correctly rounded everywhere.
//! `ln` and `exp` are implemented here with plain series instead of calling the platform's libm,
//! whose last-bit results may differ between systems.

use std::f64::consts::{LN_2, SQRT_2};

/// splitmix64 step: used to expand a 64-bit seed into xoshiro's 256-bit state.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xoshiro256** generator.
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator seeded from a fixed constant and a label, so that each table family has its
    /// own independent stream.
    pub fn new(seed: u64, label: &str) -> Self {
        // FNV-1a over the label, mixed into the seed.
        let mut h: u64 = 0xCBF2_9CE4_8422_2325;
        for b in label.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01B3);
        }
        let mut sm = seed ^ h;
        let mut s = [0u64; 4];
        for x in &mut s {
            *x = splitmix64(&mut sm);
        }
        Rng { s }
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }

    /// Uniform in (0, 1): safe to take the logarithm of.
    pub fn open01(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// Uniform integer in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0);
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform integer in [lo, hi).
    pub fn range_i64(&mut self, lo: i64, hi: i64) -> i64 {
        assert!(hi > lo);
        lo + self.below((hi - lo) as u64) as i64
    }

    /// Uniform real in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.f64()
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// Standard normal (Marsaglia's polar method: needs only `ln` and `sqrt`).
    pub fn normal(&mut self) -> f64 {
        loop {
            let u = 2.0 * self.f64() - 1.0;
            let v = 2.0 * self.f64() - 1.0;
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                return u * (-2.0 * ln(s) / s).sqrt();
            }
        }
    }

    /// Log-normal with the given median and log-scale standard deviation.
    pub fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        median * exp(sigma * self.normal())
    }

    /// Exponential with the given mean.
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * ln(self.open01())
    }

    /// Gamma(shape, scale) by Marsaglia and Tsang.
    pub fn gamma(&mut self, shape: f64, scale: f64) -> f64 {
        if shape < 1.0 {
            let u = self.open01();
            return self.gamma(shape + 1.0, scale) * exp(ln(u) / shape);
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = 1.0 + c * x;
            if v <= 0.0 {
                continue;
            }
            let v = v * v * v;
            let u = self.open01();
            if ln(u) < 0.5 * x * x + d - d * v + d * ln(v) {
                return d * v * scale;
            }
        }
    }

    /// Beta(a, b) from two gamma variates.
    pub fn beta(&mut self, a: f64, b: f64) -> f64 {
        let x = self.gamma(a, 1.0);
        let y = self.gamma(b, 1.0);
        x / (x + y)
    }

    /// Poisson by multiplication of uniforms (fine for the small means used here).
    pub fn poisson(&mut self, mean: f64) -> u32 {
        let limit = exp(-mean);
        let mut k = 0;
        let mut p = self.f64();
        while p > limit {
            k += 1;
            p *= self.f64();
        }
        k
    }

    /// Index drawn with probability proportional to `weights`.
    pub fn weighted_index(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.f64() * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }

    /// A value drawn from `(value, weight)` pairs.
    pub fn pick<T: Copy>(&mut self, items: &[(T, f64)]) -> T {
        let weights: Vec<f64> = items.iter().map(|(_, w)| *w).collect();
        items[self.weighted_index(&weights)].0
    }
}

/// Index into a cumulative-weights table (`cum[i]` = sum of weights 0..=i), drawn proportionally.
pub fn pick_cumulative(rng: &mut Rng, cum: &[f64]) -> usize {
    let total = *cum.last().expect("non-empty table");
    let x = rng.f64() * total;
    cum.partition_point(|c| *c <= x).min(cum.len() - 1)
}

/// Natural logarithm from basic operations only (deterministic on every platform).
pub fn ln(x: f64) -> f64 {
    assert!(x > 0.0 && x.is_finite(), "ln of {x}");
    let bits = x.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i64;
    if biased == 0 {
        // Subnormal: scale up by 2^54 first.
        return ln(x * 18_014_398_509_481_984.0) - 54.0 * LN_2;
    }
    let mut m = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52)); // in [1, 2)
    let mut e = biased - 1023;
    if m > SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    // ln(m) = 2 atanh(s), s = (m-1)/(m+1), |s| <= 0.1716.
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut term = s;
    let mut sum = 0.0;
    for k in 0..24 {
        sum += term / f64::from(2 * k + 1);
        term *= s2;
    }
    e as f64 * LN_2 + 2.0 * sum
}

/// Exponential function from basic operations only (deterministic on every platform).
pub fn exp(x: f64) -> f64 {
    if x > 709.0 {
        return f64::INFINITY;
    }
    if x < -745.0 {
        return 0.0;
    }
    let k = (x / LN_2).round();
    let r = x - k * LN_2;
    let mut term = 1.0;
    let mut sum = 1.0;
    for i in 1..=24 {
        term *= r / f64::from(i);
        sum += term;
    }
    let mut k = k as i64;
    // Multiply by 2^k in steps that stay in the normal range.
    while k > 1000 {
        sum *= f64::from_bits(((1023 + 1000) as u64) << 52);
        k -= 1000;
    }
    while k < -1000 {
        sum *= f64::from_bits(((1023 - 1000) as u64) << 52);
        k += 1000;
    }
    sum * f64::from_bits(((1023 + k) as u64) << 52)
}

/// Logistic function.
pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + exp(-x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn math_matches_std_closely() {
        for &x in &[1e-300, 1e-5, 0.3, 1.0, 2.0, 10.0, 12345.678] {
            assert!((ln(x) - x.ln()).abs() < 1e-12 * x.ln().abs().max(1.0));
        }
        for &x in &[-700.0, -20.0, -1.0, 0.0, 0.5, 3.0, 700.0] {
            let (a, b) = (exp(x), f64::exp(x));
            assert!(((a - b) / b).abs() < 1e-12, "{x}: {a} vs {b}");
        }
    }

    #[test]
    fn streams_are_fixed() {
        let mut r = Rng::new(1, "t");
        let a: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        let mut r = Rng::new(1, "t");
        let b: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        assert_eq!(a, b);
    }
}
