//! Noisy linear layers with factorised Gaussian noise (Fortunato et al. 2018, "Noisy Networks for Exploration"), the
//! exploration of Rainbow: each weight is `μ + σ ⊙ ε`, so the network learns how much noise to keep per weight
//! instead of following an ε-greedy schedule.
//!
//! Factorised noise draws `p + q` standard normals per layer instead of `p·q`: `ε_in` (one per input) and `ε_out`
//! (one per output), then `ε_w = f(ε_in) ⊗ f(ε_out)` and `ε_b = f(ε_out)` with `f(x) = sgn(x)·√|x|`.
//!
//! Layout: as burn's [`burn::nn::Linear`], weights are `[d_input, d_output]` and `y = x·W + b`, so `ε_w[i][j] =
//! f(ε_in[i])·f(ε_out[j])` (the paper's out × in matrix, transposed).
//!
//! The noise is not a parameter: it is held as two plain tensors, `f(ε_in)` and `f(ε_out)`. burn 0.22's derived
//! [`Module`] visits only [`Param`] fields, so plain tensors get no gradients, no optimiser state and no place in
//! the weights the project saves with burn's safetensors store (which collects through the same visitor), yet
//! move with the module between devices (`to_device`, `valid`). Keeping them as tensors uploads them once per
//! [`NoisyLinear::reset_noise`] rather than on every forward pass.

use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::{Device, Tensor, TensorData};
use rand::Rng;

/// How to build a [`NoisyLinear`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NoisyLinearConfig {
    pub d_input: usize,
    pub d_output: usize,
    /// σ0 of the paper's factorised initialisation, `σ = σ0/√d_input`; 0.5 there.
    pub sigma0: f64,
}

/// A linear layer whose weights and biases are `μ + σ ⊙ ε` (see the module documentation).
#[derive(Module, Debug)]
pub struct NoisyLinear {
    /// `[d_input, d_output]`, as burn's `Linear`.
    pub weight_mu: Param<Tensor<2>>,
    /// `[d_input, d_output]`.
    pub weight_sigma: Param<Tensor<2>>,
    /// `[d_output]`.
    pub bias_mu: Param<Tensor<1>>,
    /// `[d_output]`.
    pub bias_sigma: Param<Tensor<1>>,
    /// `f(ε_in)`, `[d_input]`: constant state, not a parameter (see the module documentation).
    noise_in: Tensor<1>,
    /// `f(ε_out)`, `[d_output]`: the bias noise, and the output factor of the weight noise.
    noise_out: Tensor<1>,
}

impl NoisyLinearConfig {
    /// A layer of `d_input` inputs and `d_output` outputs with the paper's σ0 = 0.5.
    pub fn new(d_input: usize, d_output: usize) -> Self {
        NoisyLinearConfig { d_input, d_output, sigma0: 0.5 }
    }

    pub fn with_sigma0(self, sigma0: f64) -> Self {
        NoisyLinearConfig { sigma0, ..self }
    }

    /// The paper's initialisation for factorised noise (Fortunato et al. 2018, section 3.2): μ ~ U(−1/√p, 1/√p)
    /// and σ = σ0/√p for weights and biases, p = `d_input`. μ is drawn by burn's initialiser (seeded through the
    /// device, as every other layer); the first noise comes from `rng`.
    pub fn init(&self, device: &Device, rng: &mut impl Rng) -> Result<NoisyLinear, String> {
        let NoisyLinearConfig { d_input, d_output, sigma0 } = *self;
        if d_input == 0 || d_output == 0 {
            return Err(format!(
                "a noisy linear layer needs at least one input and one output, not {d_input} × {d_output}"
            ));
        }
        if !sigma0.is_finite() || sigma0 < 0.0 {
            return Err(format!("the noisy layer's sigma0 must be a finite number ≥ 0, not {sigma0}"));
        }
        let bound = 1.0 / (d_input as f64).sqrt();
        let mu = Initializer::Uniform { min: -bound, max: bound };
        let sigma = Initializer::Constant { value: sigma0 * bound };
        let mut layer = NoisyLinear {
            weight_mu: mu.init([d_input, d_output], device),
            weight_sigma: sigma.init([d_input, d_output], device),
            bias_mu: mu.init([d_output], device),
            bias_sigma: sigma.init([d_output], device),
            noise_in: Tensor::zeros([d_input], device),
            noise_out: Tensor::zeros([d_output], device),
        };
        layer.reset_noise(rng);
        Ok(layer)
    }
}

/// `f(x) = sgn(x)·√|x|`, the paper's scaling of factorised noise.
fn scale(x: f64) -> f32 {
    (x.signum() * x.abs().sqrt()) as f32
}

/// `n` standard normals by Box–Muller (xrl-nn does not depend on `rand_distr`; two normals per pair of uniforms).
fn normals(n: usize, rng: &mut impl Rng) -> Vec<f64> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        // 1 − u lies in (0, 1], so the logarithm is finite.
        let r = (-2.0 * (1.0 - rng.random::<f64>()).ln()).sqrt();
        let theta = std::f64::consts::TAU * rng.random::<f64>();
        out.push(r * theta.cos());
        out.push(r * theta.sin());
    }
    out.truncate(n);
    out
}

impl NoisyLinear {
    pub fn d_input(&self) -> usize {
        self.weight_mu.dims()[0]
    }

    pub fn d_output(&self) -> usize {
        self.weight_mu.dims()[1]
    }

    /// Draws fresh noise `ε_in`, `ε_out` ~ N(0, 1) from `rng` (Rainbow draws once per training step, per network).
    pub fn reset_noise(&mut self, rng: &mut impl Rng) {
        let eps_in = normals(self.d_input(), rng);
        let eps_out = normals(self.d_output(), rng);
        self.store_noise(&eps_in, &eps_out);
    }

    /// Sets the noise to given draws `ε_in` (`d_input` values) and `ε_out` (`d_output` values), before `f`: for
    /// tests, and to replay noise recorded elsewhere.
    pub fn set_noise(&mut self, eps_in: &[f32], eps_out: &[f32]) -> Result<(), String> {
        let (d_in, d_out) = (self.d_input(), self.d_output());
        if eps_in.len() != d_in || eps_out.len() != d_out {
            return Err(format!(
                "noise for a {d_in} × {d_out} noisy layer needs {d_in} input and {d_out} output values, not {} and {}",
                eps_in.len(),
                eps_out.len()
            ));
        }
        if let Some(x) = eps_in.iter().chain(eps_out).find(|x| !x.is_finite()) {
            return Err(format!("the noisy layer's noise must be finite, not {x}"));
        }
        let widen = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
        self.store_noise(&widen(eps_in), &widen(eps_out));
        Ok(())
    }

    fn store_noise(&mut self, eps_in: &[f64], eps_out: &[f64]) {
        let device = self.weight_mu.val().device();
        let tensor = |eps: &[f64]| {
            let v: Vec<f32> = eps.iter().map(|&x| scale(x)).collect();
            let n = v.len();
            Tensor::<1>::from_data(TensorData::new(v, [n]), &device)
        };
        self.noise_in = tensor(eps_in);
        self.noise_out = tensor(eps_out);
    }

    /// The weight noise `ε_w = f(ε_in) ⊗ f(ε_out)`, `[d_input, d_output]` (the weights' layout).
    pub fn weight_noise(&self) -> Tensor<2> {
        let (d_in, d_out) = (self.d_input(), self.d_output());
        self.noise_in.clone().reshape([d_in, 1]) * self.noise_out.clone().reshape([1, d_out])
    }

    /// The bias noise `ε_b = f(ε_out)`, `[d_output]`.
    pub fn bias_noise(&self) -> Tensor<1> {
        self.noise_out.clone()
    }

    /// `[batch, d_input]` → `[batch, d_output]`. `noisy`: `y = x·(μ_w + σ_w ⊙ ε_w) + μ_b + σ_b ⊙ ε_b` (acting and
    /// training); otherwise the paper's evaluation mode without noise, `y = x·μ_w + μ_b`.
    pub fn forward(&self, x: Tensor<2>, noisy: bool) -> Tensor<2> {
        let (weight, bias) = if noisy {
            (
                self.weight_mu.val() + self.weight_sigma.val() * self.weight_noise(),
                self.bias_mu.val() + self.bias_sigma.val() * self.bias_noise(),
            )
        } else {
            (self.weight_mu.val(), self.bias_mu.val())
        };
        burn::tensor::module::linear(x, weight, Some(bias))
    }
}

/// The noisy part of a noisy layer whose means are an ordinary burn [`burn::nn::Linear`]: σ and the noise. A
/// network's head keeps its `Linear` (the mean, what every explanation and import reads, and the whole layer in
/// the deterministic evaluation mode) and adds this beside it, so a noisy network is the plain one plus σ.
#[derive(Module, Debug)]
pub struct Noise {
    /// `[d_input, d_output]`.
    pub weight_sigma: Param<Tensor<2>>,
    /// `[d_output]`.
    pub bias_sigma: Param<Tensor<1>>,
    /// `f(ε_in)`, `[d_input]`: constant state (see the module documentation).
    noise_in: Tensor<1>,
    /// `f(ε_out)`, `[d_output]`.
    noise_out: Tensor<1>,
}

impl Noise {
    /// σ = σ0/√d_input for every weight and bias (the paper's factorised initialisation) and zero noise until the
    /// first [`Noise::reset`] (so a fresh noisy network computes its mean).
    pub fn new(d_input: usize, d_output: usize, sigma0: f64, device: &Device) -> Self {
        let sigma = Initializer::Constant { value: sigma0 / (d_input.max(1) as f64).sqrt() };
        Noise {
            weight_sigma: sigma.init([d_input, d_output], device),
            bias_sigma: sigma.init([d_output], device),
            noise_in: Tensor::zeros([d_input], device),
            noise_out: Tensor::zeros([d_output], device),
        }
    }

    /// Fresh ε_in, ε_out ~ N(0, 1) from `rng`.
    pub fn reset(&mut self, rng: &mut impl Rng) {
        let [d_in, d_out] = self.weight_sigma.dims();
        let device = self.weight_sigma.val().device();
        let tensor = |eps: Vec<f64>| {
            let v: Vec<f32> = eps.into_iter().map(scale).collect();
            let n = v.len();
            Tensor::<1>::from_data(TensorData::new(v, [n]), &device)
        };
        self.noise_in = tensor(normals(d_in, rng));
        self.noise_out = tensor(normals(d_out, rng));
    }

    /// `x·(W + σ_w ⊙ ε_w) + b + σ_b ⊙ ε_b` for the mean layer `mean`.
    pub fn forward(&self, mean: &burn::nn::Linear, x: Tensor<2>) -> Tensor<2> {
        let [d_in, d_out] = self.weight_sigma.dims();
        let eps_w = self.noise_in.clone().reshape([d_in, 1]) * self.noise_out.clone().reshape([1, d_out]);
        let weight = mean.weight.val() + self.weight_sigma.val() * eps_w;
        let bias = self.bias_sigma.val() * self.noise_out.clone();
        let bias = match &mean.bias {
            Some(b) => b.val() + bias,
            None => bias,
        };
        burn::tensor::module::linear(x, weight, Some(bias))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_xoshiro::Xoshiro256PlusPlus;

    fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_into_vec_as::<f32>().expect("f32 data")
    }

    fn tensor<const D: usize>(v: &[f32], shape: [usize; D], device: &Device) -> Tensor<D> {
        Tensor::from_data(TensorData::new(v.to_vec(), shape), device)
    }

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= 1e-5, "{a:?} vs {b:?}");
        }
    }

    /// A 2 → 3 layer with hand-set parameters: μ_w = [[1, 2, 3], [4, 5, 6]], σ_w = [[0.1, 0.2, 0.3], [0.4, 0.5,
    /// 0.6]], μ_b = [0.5, −0.5, 1], σ_b = [1, 2, 3]; noise ε_in = [4, −1], ε_out = [0.25, −9, 1], so that f(ε_in) =
    /// [2, −1] and f(ε_out) = [0.5, −3, 1].
    fn hand_layer(device: &Device) -> NoisyLinear {
        let mut layer = NoisyLinear {
            weight_mu: Param::from_tensor(tensor(&[1., 2., 3., 4., 5., 6.], [2, 3], device)),
            weight_sigma: Param::from_tensor(tensor(&[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [2, 3], device)),
            bias_mu: Param::from_tensor(tensor(&[0.5, -0.5, 1.], [3], device)),
            bias_sigma: Param::from_tensor(tensor(&[1., 2., 3.], [3], device)),
            noise_in: Tensor::zeros([2], device),
            noise_out: Tensor::zeros([3], device),
        };
        layer.set_noise(&[4., -1.], &[0.25, -9., 1.]).unwrap();
        layer
    }

    /// ε_w is the outer product f(ε_in) ⊗ f(ε_out) in the weights' [in, out] layout, ε_b = f(ε_out).
    #[test]
    fn noise_is_the_outer_product_of_scaled_factors() {
        let layer = hand_layer(&crate::device::for_tests());
        assert_eq!(layer.weight_noise().dims(), [2, 3]);
        // Row i is f(ε_in[i]) = 2 or −1 times f(ε_out) = [0.5, −3, 1].
        close(&to_vec(layer.weight_noise()), &[1., -6., 2., -0.5, 3., -1.]);
        close(&to_vec(layer.bias_noise()), &[0.5, -3., 1.]);
        let mut layer = layer;
        assert!(layer.set_noise(&[1.], &[1., 2., 3.]).unwrap_err().contains("needs 2 input and 3 output"));
        assert!(layer.set_noise(&[1., f32::NAN], &[1., 2., 3.]).unwrap_err().contains("finite"));
    }

    /// Without noise: y = x·μ_w + μ_b. x = [[1, 1], [2, −1]]: row 1 = [5, 7, 9] + μ_b, row 2 = [−2, −1, 0] + μ_b.
    #[test]
    fn deterministic_mode_is_the_mean_layer() {
        let d = crate::device::for_tests();
        let layer = hand_layer(&d);
        let y = layer.forward(tensor(&[1., 1., 2., -1.], [2, 2], &d), false);
        close(&to_vec(y), &[5.5, 6.5, 10., -1.5, -1.5, 1.]);
    }

    /// With noise: W = μ_w + σ_w ⊙ ε_w = [[1.1, 0.8, 3.6], [3.8, 6.5, 5.4]], b = μ_b + σ_b ⊙ ε_b = [1, −6.5, 4].
    /// x = [1, 1]: [4.9, 7.3, 9] + b = [5.9, 0.8, 13]; x = [2, −1]: [−1.6, −4.9, 1.8] + b = [−0.6, −11.4, 5.8].
    #[test]
    fn noisy_mode_adds_scaled_noise() {
        let d = crate::device::for_tests();
        let layer = hand_layer(&d);
        let y = layer.forward(tensor(&[1., 1., 2., -1.], [2, 2], &d), true);
        close(&to_vec(y), &[5.9, 0.8, 13., -0.6, -11.4, 5.8]);
    }

    /// The paper's initialisation: μ within ±1/√p, σ = σ0/√p (p = 16 inputs: bound 0.25, σ = 0.125); bad configs
    /// are errors.
    #[test]
    fn init_follows_the_paper() {
        let d = crate::device::for_tests();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
        let layer = NoisyLinearConfig::new(16, 8).init(&d, &mut rng).unwrap();
        for mu in to_vec(layer.weight_mu.val()).into_iter().chain(to_vec(layer.bias_mu.val())) {
            assert!(mu.abs() <= 0.25, "{mu}");
        }
        for s in to_vec(layer.weight_sigma.val()).into_iter().chain(to_vec(layer.bias_sigma.val())) {
            assert_eq!(s, 0.125);
        }
        // Noise was drawn at init: not all zero.
        assert!(to_vec(layer.bias_noise()).iter().any(|&x| x != 0.0));
        assert!(NoisyLinearConfig::new(0, 3).init(&d, &mut rng).unwrap_err().contains("at least one input"));
        assert!(NoisyLinearConfig::new(2, 3).with_sigma0(-1.0).init(&d, &mut rng).unwrap_err().contains("sigma0"));
    }

    /// Same seed, same noise and output; another seed, another output; the mean layer ignores the noise.
    #[test]
    fn reset_noise_is_reproducible_from_the_seed() {
        let d = crate::device::for_tests();
        let mut layer = hand_layer(&d);
        let x = tensor(&[1., 1., 2., -1.], [2, 2], &d);
        let mut run = |seed: u64| {
            layer.reset_noise(&mut Xoshiro256PlusPlus::seed_from_u64(seed));
            (to_vec(layer.forward(x.clone(), true)), to_vec(layer.forward(x.clone(), false)))
        };
        let (a, mean_a) = run(7);
        let (b, mean_b) = run(7);
        let (c, mean_c) = run(8);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(mean_a, mean_b);
        assert_eq!(mean_a, mean_c);
    }

    /// Box–Muller draws look standard normal: mean ≈ 0 and variance ≈ 1 over 10^5 draws (standard errors 0.003 and
    /// 0.0045; bounds at about 5 of them).
    #[test]
    fn noise_draws_are_standard_normal() {
        let v = normals(100_001, &mut Xoshiro256PlusPlus::seed_from_u64(1));
        assert_eq!(v.len(), 100_001);
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
        assert!(mean.abs() < 0.015 && (var - 1.0).abs() < 0.025, "mean {mean}, variance {var}");
    }

    /// burn's safetensors store (the project's checkpoint format) saves the four parameters and nothing else, and
    /// loading them leaves the receiving layer's own noise in place.
    #[test]
    fn weights_save_and_load_without_the_noise() {
        use burn::store::{ModuleSnapshot, SafetensorsStore};
        let d = crate::device::for_tests();
        let layer = hand_layer(&d);
        let mut store = SafetensorsStore::from_bytes(None);
        layer.save_into(&mut store).unwrap();
        let bytes = store.get_bytes().unwrap();
        let mut fresh = NoisyLinearConfig::new(2, 3).init(&d, &mut Xoshiro256PlusPlus::seed_from_u64(3)).unwrap();
        let noise = to_vec(fresh.weight_noise());
        let result = fresh.load_from(&mut SafetensorsStore::from_bytes(Some(bytes))).unwrap();
        let mut names = result.applied.clone();
        names.sort();
        assert_eq!(names, ["bias_mu", "bias_sigma", "weight_mu", "weight_sigma"]);
        assert_eq!(to_vec(fresh.weight_mu.val()), to_vec(layer.weight_mu.val()));
        assert_eq!(to_vec(fresh.bias_sigma.val()), to_vec(layer.bias_sigma.val()));
        assert_eq!(to_vec(fresh.weight_noise()), noise);
    }

    /// Gradients of loss = Σ y for one input row x = [1, 3]: ∂/∂σ_w[i][j] = x_i·ε_w[i][j] = [[1·1, 1·−6, 1·2],
    /// [3·−0.5, 3·3, 3·−1]]; ∂/∂μ_w[i][j] = x_i; ∂/∂σ_b = ε_b; ∂/∂μ_b = 1. The noise takes none.
    #[test]
    fn gradients_reach_mu_and_sigma() {
        let d = crate::device::for_tests().autodiff();
        let layer = hand_layer(&d);
        let g = layer.forward(tensor(&[1., 3.], [1, 2], &d), true).sum().backward();
        close(&to_vec(layer.weight_sigma.val().grad(&g).unwrap()), &[1., -6., 2., -1.5, 9., -3.]);
        close(&to_vec(layer.weight_mu.val().grad(&g).unwrap()), &[1., 1., 1., 3., 3., 3.]);
        close(&to_vec(layer.bias_sigma.val().grad(&g).unwrap()), &[0.5, -3., 1.]);
        close(&to_vec(layer.bias_mu.val().grad(&g).unwrap()), &[1., 1., 1.]);
        assert!(layer.noise_in.grad(&g).is_none() && layer.noise_out.grad(&g).is_none());
        // The optimiser and the weight store see the four parameters only.
        assert_eq!(layer.num_params(), 2 * 6 + 2 * 3);
        // The copy off the autodiff device (acting) takes the noise along: x = [1, 1] as in `noisy_mode_adds_scaled_noise`.
        let plain = crate::device::for_tests();
        let y = layer.valid().forward(tensor(&[1., 1.], [1, 2], &plain), true);
        assert!(!y.is_autodiff());
        close(&to_vec(y), &[5.9, 0.8, 13.]);
    }
}
