//! A deterministic Nelder-Mead minimizer for the model fits.
//!
//! The fits optimize the log of their (positive) parameters, so the search is unconstrained.
//! Nothing here depends on timing, threads or randomness: the same objective gives the same
//! parameters on every run and every machine.

/// The outcome of a minimization.
#[derive(Debug, Clone)]
pub struct Minimum {
    pub x: Vec<f64>,
    pub value: f64,
    pub converged: bool,
}

/// How hard [`minimize`] tries.
const MAX_EVALUATIONS: usize = 40_000;
const MAX_RESTARTS: usize = 8;
/// Converged when the simplex's values agree to this relative precision and its vertices to
/// this absolute precision (in log-parameters, so relative precision of the parameters).
const VALUE_TOLERANCE: f64 = 1e-13;
const POINT_TOLERANCE: f64 = 1e-9;

/// Minimizes `f` from `start`. Non-finite values count as +∞ (the search backs off from them).
///
/// Nelder-Mead restarts from its best vertex with a fresh simplex until a restart no longer
/// improves the value, which guards against the simplex collapsing before the minimum.
pub fn minimize(f: impl Fn(&[f64]) -> f64, start: &[f64]) -> Minimum {
    let f = |x: &[f64]| {
        let v = f(x);
        if v.is_nan() {
            f64::INFINITY
        } else {
            v
        }
    };
    let mut best = Minimum { x: start.to_vec(), value: f(start), converged: false };
    let mut evaluations = 0;
    for restart in 0..MAX_RESTARTS {
        let step = if restart == 0 { 0.5 } else { 0.05 };
        let run = nelder_mead(&f, &best.x, step, &mut evaluations);
        let improved = run.value < best.value - VALUE_TOLERANCE * best.value.abs().max(1.0);
        let settled = run.converged && (restart > 0 && !improved);
        best = if run.value <= best.value { run } else { Minimum { converged: run.converged, ..best } };
        if settled {
            best.converged = true;
            return best;
        }
        if evaluations >= MAX_EVALUATIONS {
            break;
        }
    }
    best.converged = false;
    best
}

fn nelder_mead(f: &impl Fn(&[f64]) -> f64, start: &[f64], step: f64, evaluations: &mut usize) -> Minimum {
    let n = start.len();
    let mut simplex: Vec<Vec<f64>> = vec![start.to_vec()];
    for i in 0..n {
        let mut v = start.to_vec();
        v[i] += step;
        simplex.push(v);
    }
    let mut values: Vec<f64> = simplex.iter().map(|v| f(v)).collect();
    *evaluations += n + 1;
    loop {
        // Order the vertices best first (stable, so ties keep their order).
        let mut order: Vec<usize> = (0..=n).collect();
        order.sort_by(|&i, &j| values[i].total_cmp(&values[j]));
        simplex = order.iter().map(|&i| simplex[i].clone()).collect();
        values = order.iter().map(|&i| values[i]).collect();

        let spread = (values[n] - values[0]).abs();
        let size =
            simplex[1..].iter().flat_map(|v| v.iter().zip(&simplex[0]).map(|(a, b)| (a - b).abs())).fold(0.0, f64::max);
        if spread <= VALUE_TOLERANCE * values[0].abs().max(1.0) && size <= POINT_TOLERANCE {
            return Minimum { x: simplex[0].clone(), value: values[0], converged: true };
        }
        if *evaluations >= MAX_EVALUATIONS {
            return Minimum { x: simplex[0].clone(), value: values[0], converged: false };
        }

        let centroid: Vec<f64> = (0..n).map(|d| simplex[..n].iter().map(|v| v[d]).sum::<f64>() / n as f64).collect();
        let towards =
            |t: f64| -> Vec<f64> { (0..n).map(|d| centroid[d] + t * (simplex[n][d] - centroid[d])).collect() };
        let reflected = towards(-1.0);
        let fr = f(&reflected);
        *evaluations += 1;
        if fr < values[0] {
            let expanded = towards(-2.0);
            let fe = f(&expanded);
            *evaluations += 1;
            if fe < fr {
                (simplex[n], values[n]) = (expanded, fe);
            } else {
                (simplex[n], values[n]) = (reflected, fr);
            }
        } else if fr < values[n - 1] {
            (simplex[n], values[n]) = (reflected, fr);
        } else {
            let (contracted, fc) = if fr < values[n] {
                let c = towards(-0.5);
                let fc = f(&c);
                (c, fc)
            } else {
                let c = towards(0.5);
                let fc = f(&c);
                (c, fc)
            };
            *evaluations += 1;
            if fc < values[n].min(fr) {
                (simplex[n], values[n]) = (contracted, fc);
            } else {
                // Shrink towards the best vertex.
                for i in 1..=n {
                    simplex[i] = (0..n).map(|d| simplex[0][d] + 0.5 * (simplex[i][d] - simplex[0][d])).collect();
                    values[i] = f(&simplex[i]);
                }
                *evaluations += n;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_rosenbrock_minimum() {
        let rosenbrock = |x: &[f64]| (1.0 - x[0]).powi(2) + 100.0 * (x[1] - x[0] * x[0]).powi(2);
        let m = minimize(rosenbrock, &[-1.2, 1.0]);
        assert!(m.converged);
        assert!((m.x[0] - 1.0).abs() < 1e-6 && (m.x[1] - 1.0).abs() < 1e-6, "{m:?}");
    }

    #[test]
    fn finds_a_shifted_quadratic_in_four_dimensions() {
        let target = [0.3, -1.2, 2.0, 0.7];
        let f = |x: &[f64]| x.iter().zip(&target).enumerate().map(|(i, (a, b))| (i + 1) as f64 * (a - b).powi(2)).sum();
        let m = minimize(f, &[0.0; 4]);
        assert!(m.converged);
        for (a, b) in m.x.iter().zip(&target) {
            assert!((a - b).abs() < 1e-6, "{m:?}");
        }
    }

    #[test]
    fn backs_off_from_non_finite_values() {
        // Undefined (NaN) for x < 0; the minimum at x = 2 is still found.
        let f = |x: &[f64]| if x[0] < 0.0 { f64::NAN } else { (x[0] - 2.0).powi(2) };
        let m = minimize(f, &[0.1]);
        assert!((m.x[0] - 2.0).abs() < 1e-6, "{m:?}");
    }
}
