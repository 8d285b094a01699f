//! Integrated gradients (Sundararajan et al. 2017): `(x − b) ⊙ ∫₀¹ ∂T/∂x(b + α(x − b)) dα`, the integral by a
//! quadrature rule; the convergence delta `Σ attribution − (T(x) − T(b))` is reported per sample.

use super::local::FirstConv;
use super::{Budget, Maps, Model, Rows, Target, gradients, values};
use rayon::prelude::*;
use xrl_nn::Pass;

/// Quadrature rules of Captum's `IntegratedGradients(method=…)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    RiemannLeft,
    RiemannRight,
    RiemannMiddle,
    RiemannTrapezoid,
    GaussLegendre,
    /// Captum 0.8's `riemann_trapezoid`, kept for side-by-side comparisons: points `linspace(0, 1, m)` with step
    /// 1/m (halved at both ends), so its weights sum to (m − 1)/m rather than 1. [`Rule::RiemannTrapezoid`] uses
    /// 1/(m − 1) and integrates exactly what the trapezoid rule should.
    CaptumTrapezoid,
}

impl Rule {
    /// (α, weight) of `m` points on [0, 1].
    pub fn points(self, m: usize) -> Vec<(f64, f64)> {
        let m = m.max(1);
        let uniform = |f: &dyn Fn(usize) -> f64| (0..m).map(|k| (f(k), 1.0 / m as f64)).collect();
        match self {
            Rule::RiemannLeft => uniform(&|k| k as f64 / m as f64),
            Rule::RiemannRight => uniform(&|k| (k + 1) as f64 / m as f64),
            Rule::RiemannMiddle => uniform(&|k| (k as f64 + 0.5) / m as f64),
            Rule::RiemannTrapezoid if m == 1 => vec![(0.5, 1.0)],
            Rule::RiemannTrapezoid => (0..m)
                .map(|k| {
                    let w = 1.0 / (m - 1) as f64;
                    (k as f64 / (m - 1) as f64, if k == 0 || k == m - 1 { w / 2.0 } else { w })
                })
                .collect(),
            Rule::GaussLegendre => gauss_legendre(m).into_iter().map(|(x, w)| ((x + 1.0) / 2.0, w / 2.0)).collect(),
            Rule::CaptumTrapezoid if m == 1 => vec![(0.5, 1.0)],
            Rule::CaptumTrapezoid => (0..m)
                .map(|k| {
                    let w = 1.0 / m as f64;
                    (k as f64 / (m - 1) as f64, if k == 0 || k == m - 1 { w / 2.0 } else { w })
                })
                .collect(),
        }
    }
}

/// Nodes and weights of the m-point Gauss–Legendre rule on [−1, 1] (Newton's method on P_m).
fn gauss_legendre(m: usize) -> Vec<(f64, f64)> {
    let mut out = vec![];
    for i in 0..m {
        let mut x = (std::f64::consts::PI * (i as f64 + 0.75) / (m as f64 + 0.5)).cos();
        let mut dp = 1.0;
        for _ in 0..100 {
            // P_m(x) and its derivative by the three-term recurrence.
            let (mut p0, mut p1) = (1.0, x);
            for k in 2..=m {
                let p2 = ((2 * k - 1) as f64 * x * p1 - (k - 1) as f64 * p0) / k as f64;
                (p0, p1) = (p1, p2);
            }
            let pm = if m == 1 { x } else { p1 };
            let pm1 = if m == 1 { 1.0 } else { p0 };
            dp = m as f64 * (x * pm - pm1) / (x * x - 1.0);
            let dx = pm / dp;
            x -= dx;
            if dx.abs() < 1e-15 {
                break;
            }
        }
        out.push((x, 2.0 / ((1.0 - x * x) * dp * dp)));
    }
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// Integrated gradients (Sundararajan et al. 2017) from a baseline (zeros unless the call gives one), with
/// `steps` points of `rule` on the straight path.
#[derive(Clone, Debug)]
pub struct IntegratedGradients {
    pub steps: usize,
    pub rule: Rule,
    pub budget: Budget,
}

impl IntegratedGradients {
    /// Captum's defaults: 50 Gauss–Legendre points from a zero baseline.
    pub fn new() -> Self {
        IntegratedGradients { steps: 50, rule: Rule::GaussLegendre, budget: Budget::default() }
    }

    /// `baselines`: one per sample, flat like the inputs (zeros when `None`).
    pub(crate) fn maps(
        &self,
        model: &dyn Model,
        inputs: &[f32],
        len: usize,
        targets: &[Target],
        baselines: Option<&[f32]>,
    ) -> Maps {
        let n = inputs.len() / len;
        let base = baselines.map_or_else(|| vec![0.0; inputs.len()], <[f32]>::to_vec);
        let points = self.rule.points(self.steps);
        let m = points.len();
        let sample_of: Vec<usize> = (0..n * m).map(|r| r / m).collect();
        // Σ_k w_k · g_k per sample, the gradients g_k taken at `len`-long rows (path point k of sample i is row
        // i·m + k).
        let sum = |len: usize, rows: Rows, model: &dyn Model| {
            let mut sums = vec![0.0f32; n * len];
            gradients(model, rows, len, &sample_of, targets, &Pass::default(), self.budget, &mut |start, _, g| {
                for (k, g) in g.chunks(len).enumerate() {
                    let (i, w) = ((start + k) / m, points[(start + k) % m].1 as f32);
                    sums[i * len..(i + 1) * len].iter_mut().zip(g).for_each(|(a, g)| *a += w * g);
                }
            });
            sums
        };
        let mut maps = if let Some(first) = FirstConv::of(model) {
            // A convolutional network: path points start at the first convolution's output,
            // z(b + α(x − b)) = z(b) + α·z₀(x − b) (z₀: without the bias), and the summed gradients there go back
            // through it once per sample.
            let zl = first.out_len();
            let (mut zb, mut zd) = (vec![0.0f32; n * zl], vec![0.0f32; n * zl]);
            zb.par_chunks_mut(zl).zip(zd.par_chunks_mut(zl)).enumerate().for_each(|(i, (zb, zd))| {
                let (x, b) = (&inputs[i * len..(i + 1) * len], &base[i * len..(i + 1) * len]);
                let d: Vec<f32> = x.iter().zip(b).map(|(x, b)| x - b).collect();
                first.apply(b, true, zb);
                first.apply(&d, false, zd);
            });
            let fill = |r: usize, out: &mut [f32]| {
                let (i, alpha) = (r / m, points[r % m].0 as f32);
                let (zb, zd) = (&zb[i * zl..(i + 1) * zl], &zd[i * zl..(i + 1) * zl]);
                out.iter_mut().zip(zb).zip(zd).for_each(|((o, b), d)| *o = b + alpha * d);
            };
            first.input_gradients(&sum(zl, Rows::Made { count: n * m, fill: &fill }, &first))
        } else {
            let fill = |r: usize, out: &mut [f32]| {
                let (i, alpha) = (r / m, points[r % m].0 as f32);
                let (x, b) = (&inputs[i * len..(i + 1) * len], &base[i * len..(i + 1) * len]);
                for ((o, x), b) in out.iter_mut().zip(x).zip(b) {
                    *o = b + alpha * (x - b);
                }
            };
            sum(len, Rows::Made { count: n * m, fill: &fill }, model)
        };
        for j in 0..inputs.len() {
            maps[j] *= inputs[j] - base[j];
        }
        // Completeness: compare with the target at the input and at the baseline.
        let samples: Vec<usize> = (0..n).collect();
        let at_x = values(model, Rows::Given(inputs), len, &samples, targets, self.budget);
        let at_b = values(model, Rows::Given(&base), len, &samples, targets, self.budget);
        let delta = (0..n).map(|i| maps[i * len..(i + 1) * len].iter().sum::<f32>() - (at_x[i] - at_b[i])).collect();
        Maps { maps, delta: Some(delta) }
    }
}

impl Default for IntegratedGradients {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quadrature_rules_integrate_polynomials() {
        // ∫₀¹ α² dα = 1/3; Gauss–Legendre with 3 points is exact up to degree 5.
        for (rule, m, tol) in [
            (Rule::GaussLegendre, 3, 1e-12),
            (Rule::RiemannTrapezoid, 200, 1e-5),
            (Rule::RiemannMiddle, 200, 1e-5),
            (Rule::RiemannLeft, 2000, 1e-3),
            (Rule::RiemannRight, 2000, 1e-3),
        ] {
            let sum: f64 = rule.points(m).iter().map(|(a, w)| w * a * a).sum();
            assert!((sum - 1.0 / 3.0).abs() < tol, "{rule:?}: {sum}");
        }
        // Captum's trapezoid weights sum to (m − 1)/m; ours to 1.
        let sum = |rule: Rule| rule.points(10).iter().map(|(_, w)| w).sum::<f64>();
        assert!((sum(Rule::CaptumTrapezoid) - 0.9).abs() < 1e-12 && (sum(Rule::RiemannTrapezoid) - 1.0).abs() < 1e-12);
        let gl = gauss_legendre(2);
        assert!((gl[1].0 - 1.0 / 3f64.sqrt()).abs() < 1e-12 && (gl[0].1 - 1.0).abs() < 1e-12);
    }
}
