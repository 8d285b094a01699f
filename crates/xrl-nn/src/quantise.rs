//! Quantised bottlenecks for Moore machine networks (Koul et al. 2019): activations that take three (or two)
//! values in the forward pass and pass gradients straight through the rounding in the backward pass, so that an
//! autoencoder with such a code layer can be trained by ordinary backpropagation.

use burn::tensor::Tensor;

/// The seed's `TernaryTanh`: forward round(1.5·tanh(x) + 0.5·tanh(−3x)) ∈ {−1, 0, 1}; backward the straight-through
/// estimator for the rounding and ordinary autodiff through the smooth staircase inside it, so
/// d/dx = 1.5·sech²(x) − 1.5·sech²(3x) (zero at 0, which keeps codes near 0 from flickering).
pub fn ternary<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    straight_through(ternary_surrogate(x))
}

/// The smooth staircase inside [`ternary`], 1.5·tanh(x) + 0.5·tanh(−3x), unrounded: what its straight-through
/// gradient differentiates.
pub fn ternary_surrogate<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.clone().tanh().mul_scalar(1.5) + x.mul_scalar(-3.0).tanh().mul_scalar(0.5)
}

/// The binary bottleneck: forward sign(tanh(x)) ∈ {−1, 1} (0 maps to 1), backward through tanh (sech²(x)) with
/// the straight-through estimator for the sign.
pub fn binary<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let t = x.tanh();
    let hard = t.clone().greater_equal_elem(0.0).float().mul_scalar(2.0).sub_scalar(1.0);
    t.clone() + (hard - t).detach()
}

/// `round(v)` in the forward pass, the identity's gradient in the backward one: v + (round(v) − v), the bracket
/// detached.
fn straight_through<const D: usize>(v: Tensor<D>) -> Tensor<D> {
    let rounded = v.clone().round();
    v.clone() + (rounded - v).detach()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{device::for_tests, to_vec};
    use burn::tensor::TensorData;

    fn values(v: &[f32], autodiff: bool) -> Tensor<1> {
        let d = for_tests();
        let d = if autodiff { d.autodiff() } else { d };
        let t = Tensor::<1>::from_data(TensorData::new(v.to_vec(), [v.len()]), &d);
        if autodiff { t.require_grad() } else { t }
    }

    #[test]
    fn ternary_takes_three_values_at_the_seeds_thresholds() {
        // 1.5·tanh(x) + 0.5·tanh(−3x) crosses ±0.5 near |x| = 0.7947: below it the code is 0.
        let x = [-3.0, -1.0, -0.8, -0.78, -0.2, 0.0, 0.2, 0.78, 0.8, 1.0, 3.0];
        let y = to_vec(ternary(values(&x, false)));
        assert_eq!(y, [-1.0, -1.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
        // The threshold, by hand: solve 1.5·tanh(x) − 0.5·tanh(3x) = 0.5.
        let f = |x: f64| 1.5 * x.tanh() - 0.5 * (3.0 * x).tanh() - 0.5;
        let (mut lo, mut hi) = (0.5, 2.0);
        for _ in 0..60 {
            let mid = (lo + hi) / 2.0;
            if f(mid) > 0.0 { hi = mid } else { lo = mid }
        }
        assert!((lo - 0.79468).abs() < 1e-4, "{lo}");
        let y = to_vec(ternary(values(&[lo as f32 - 1e-4, lo as f32 + 1e-4], false)));
        assert_eq!(y, [0.0, 1.0]);
    }

    #[test]
    fn ternary_passes_the_smooth_staircases_gradient_straight_through_the_rounding() {
        let x = [-2.0f32, -0.7, -0.3, 0.0, 0.3, 0.7, 2.0];
        let t = values(&x, true);
        let g = to_vec(t.grad(&ternary(t.clone()).sum().backward()).unwrap());
        let sech2 = |v: f32| 1.0 / v.cosh().powi(2);
        for (xi, gi) in x.iter().zip(&g) {
            let expected = 1.5 * sech2(*xi) - 1.5 * sech2(3.0 * xi);
            assert!((gi - expected).abs() < 1e-5, "x {xi}: {gi} vs {expected}");
        }
        assert_eq!(g[3], 0.0, "flat at zero");
    }

    #[test]
    fn binary_takes_two_values_and_the_gradient_of_tanh() {
        let x = [-1.5f32, -0.1, 0.0, 0.1, 1.5];
        assert_eq!(to_vec(binary(values(&x, false))), [-1.0, -1.0, 1.0, 1.0, 1.0]);
        let t = values(&x, true);
        let g = to_vec(t.grad(&binary(t.clone()).sum().backward()).unwrap());
        for (xi, gi) in x.iter().zip(&g) {
            assert!((gi - 1.0 / xi.cosh().powi(2)).abs() < 1e-5, "x {xi}: {gi}");
        }
    }
}
