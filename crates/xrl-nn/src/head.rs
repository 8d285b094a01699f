//! The head: Q values, dueling V + A (Wang et al. 2016), or actor-critic logits + V; a two-stream head's value
//! reads its own copy of the torso's fully connected layers (probes `value_fc1`, …). Rainbow's options: a
//! distributional (C51) output, whose Q values are the distributions' means, and noisy layers (σ and noise beside
//! each `Linear`, which stays the mean).

use crate::noisy::Noise;
use crate::torso::{dense_forward, dense_stack};
use crate::{Atoms, HeadKind, Heads, NetSpec, Pass, Probe};
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

/// The fields are in the order the optimiser's state was saved in before the pieces were split out (its state is
/// kept per parameter in visiting order): the value stream, the outputs, then the value.
#[derive(Module, Debug)]
pub struct HeadModule {
    /// The value stream's own hidden layers (two-stream networks; empty otherwise).
    value_fc: Vec<Linear>,
    /// Q values, advantages or logits.
    out: Linear,
    /// State value (dueling and actor-critic).
    value: Option<Linear>,
    #[module(skip)]
    kind: HeadKind,
    /// Noisy nets: σ and the noise of `out` and of `value`.
    out_noise: Option<Noise>,
    value_noise: Option<Noise>,
    #[module(skip)]
    atoms: Option<Atoms>,
    #[module(skip)]
    actions: usize,
}

/// Q = V + A − mean_a(A), per sample.
pub fn dueling(value: Tensor<2>, advantage: Tensor<2>) -> Tensor<2> {
    let mean = advantage.clone().mean_dim(1);
    value + advantage - mean
}

impl HeadModule {
    /// `features`: the width of what the outputs read; `conv_features`: the convolutions' flattened width, which a
    /// two-stream value stream reads.
    pub fn new(spec: &NetSpec, features: usize, conv_features: usize, device: &Device) -> Self {
        let (value_fc, value_in) = if spec.streams {
            let widths = spec.torso.hidden_widths();
            let w = *widths.last().unwrap_or(&conv_features);
            (dense_stack(conv_features, &widths, device), w)
        } else {
            (vec![], features)
        };
        // A distributional head has one output per action and atom, and a value per atom.
        let per = spec.atoms.map_or(1, |a| a.n);
        let value = matches!(spec.head, HeadKind::Dueling | HeadKind::ActorCritic)
            .then(|| LinearConfig::new(value_in, per).init(device));
        let out = LinearConfig::new(features, spec.actions * per).init(device);
        // Sizes from the spec, not the layers: reading a lazily initialised parameter would draw it now, out of
        // the order the plain network draws its parameters in.
        let noise = |d_in: usize, d_out: usize, sigma0: f32| Noise::new(d_in, d_out, sigma0 as f64, device);
        HeadModule {
            out_noise: spec.noisy.map(|s| noise(features, spec.actions * per, s)),
            value_noise: spec.noisy.and_then(|s| value.as_ref().map(|_| noise(value_in, per, s))),
            value_fc,
            out,
            value,
            kind: spec.head,
            atoms: spec.atoms,
            actions: spec.actions,
        }
    }

    /// Fresh noise for the noisy layers.
    pub fn reset_noise(&mut self, rng: &mut impl rand::Rng) {
        for n in self.out_noise.iter_mut().chain(self.value_noise.iter_mut()) {
            n.reset(rng);
        }
    }

    /// The output and value layers on `x` (`value_x` for a two-stream value), with their noise when `noisy`.
    fn outputs(&self, x: Tensor<2>, value_x: Option<Tensor<2>>, noisy: bool) -> (Tensor<2>, Option<Tensor<2>>) {
        let layer = |l: &Linear, n: &Option<Noise>, x: Tensor<2>| match (noisy, n) {
            (true, Some(n)) => n.forward(l, x),
            _ => crate::fast::linear::linear(l, x),
        };
        let out = layer(&self.out, &self.out_noise, x.clone());
        let value = self.value.as_ref().map(|v| layer(v, &self.value_noise, value_x.unwrap_or(x)));
        (out, value)
    }

    /// Log-probabilities `[batch, actions, atoms]` of a distributional head (dueling: the value's logits plus
    /// the advantages' less their mean over actions, per atom, as Rainbow combines them before the softmax).
    pub fn log_distribution(&self, x: Tensor<2>, value_x: Option<Tensor<2>>, noisy: bool) -> Option<Tensor<3>> {
        let atoms = self.atoms?;
        let (out, value) = self.outputs(x, value_x, noisy);
        Some(self.log_probs(out, value, atoms))
    }

    fn log_probs(&self, out: Tensor<2>, value: Option<Tensor<2>>, atoms: Atoms) -> Tensor<3> {
        let [b, _] = out.dims();
        let a: Tensor<3> = out.reshape([b, self.actions, atoms.n]);
        let logits = match value {
            Some(v) => {
                let mean = a.clone().mean_dim(1);
                v.reshape([b, 1, atoms.n]) + a - mean
            }
            None => a,
        };
        burn::tensor::activation::log_softmax(logits, 2)
    }

    /// Q values `[batch, actions]` from log-probabilities: Σ_i z_i p_i.
    pub fn expected(&self, log_p: Tensor<3>, atoms: Atoms) -> Tensor<2> {
        let [b, n_actions, n] = log_p.dims();
        let z = Tensor::<1>::from_data(burn::tensor::TensorData::new(atoms.values(), [n]), &log_p.device());
        (log_p.exp() * z.reshape([1, 1, n])).sum_dim(2).reshape([b, n_actions])
    }

    /// CleanRL's `layer_init`: the value stream's layers orthogonal with `hidden_gain`, the outputs with
    /// `out_gain`, the value with gain 1; biases 0.
    pub(crate) fn orthogonal(&mut self, hidden_gain: f64, out_gain: f64, device: &Device) {
        use crate::torso::orthogonal_linears;
        orthogonal_linears(&mut self.value_fc, hidden_gain, device);
        orthogonal_linears(std::slice::from_mut(&mut self.out), out_gain, device);
        if let Some(v) = &mut self.value {
            orthogonal_linears(std::slice::from_mut(v), 1.0, device);
        }
    }

    pub fn out(&self) -> &Linear {
        &self.out
    }

    pub fn layer_names(&self) -> Vec<String> {
        let both = |n: String| [n.clone(), format!("{n}.relu")];
        (1..=self.value_fc.len()).flat_map(move |i| both(format!("value_fc{i}"))).collect()
    }

    /// The value stream from the convolutions' features (two-stream heads; `None` otherwise).
    pub fn value_stream(&self, conv_features: Tensor<2>, pass: &Pass, probe: &mut Option<Probe>) -> Option<Tensor<2>> {
        (!self.value_fc.is_empty()).then(|| dense_forward(&self.value_fc, "value_fc", conv_features, pass, probe))
    }

    /// The named outputs from the features (and, for two streams, the value stream's own features).
    pub fn forward(&self, x: Tensor<2>, value_x: Option<Tensor<2>>, noisy: bool) -> Heads {
        let (out, value) = self.outputs(x, value_x, noisy);
        let mut heads = Heads { q: None, advantage: None, value: None, logits: None, probe: None, state: None };
        if let Some(atoms) = self.atoms {
            // Q values only: a distributional head's value and advantages are logits per atom, not returns.
            heads.q = Some(self.expected(self.log_probs(out, value, atoms), atoms));
            return heads;
        }
        match self.kind {
            HeadKind::Q => heads.q = Some(out),
            HeadKind::Dueling => {
                let v = value.expect("dueling nets have a value head");
                heads.q = Some(dueling(v.clone(), out.clone()));
                heads.advantage = Some(out);
                heads.value = Some(v);
            }
            HeadKind::ActorCritic => {
                heads.logits = Some(out);
                heads.value = value;
            }
        }
        heads
    }
}

#[cfg(test)]
mod tests {
    use crate::{Atoms, HeadKind, Net, NetSpec, Pass, Torso, batch, device, to_vec};
    use rand::SeedableRng;

    fn obs(n: usize, len: usize) -> Vec<f32> {
        (0..n * len).map(|i| ((i * 37 % 11) as f32 / 11.0).round()).collect()
    }

    /// C51: each (row, action) is a distribution over the atoms, and Q is its mean under the atoms' values.
    #[test]
    fn a_distributional_head_yields_distributions_whose_means_are_its_q_values() {
        let device = device::for_tests();
        let atoms = Atoms { n: 5, v_min: -2.0, v_max: 2.0 };
        assert_eq!(atoms.values(), vec![-2.0, -1.0, 0.0, 1.0, 2.0]);
        for head in [HeadKind::Q, HeadKind::Dueling] {
            let spec = NetSpec { atoms: Some(atoms), ..NetSpec::new(vec![4, 10, 10], 3, Torso::MinatarConv, head) };
            device.seed(1);
            let net = Net::new(&spec, &device).unwrap();
            let x = obs(2, 400);
            let logp = to_vec(net.log_distribution(batch(&x, 400, &device), &Pass::default()).unwrap());
            let q = to_vec(net.scores(batch(&x, 400, &device)));
            assert_eq!((logp.len(), q.len()), (2 * 3 * 5, 2 * 3));
            for (row, p) in logp.chunks(5).enumerate() {
                let p: Vec<f32> = p.iter().map(|l| l.exp()).collect();
                assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{head:?} row {row}: {p:?}");
                let mean: f32 = p.iter().zip(atoms.values()).map(|(p, z)| p * z).sum();
                assert!((mean - q[row]).abs() < 1e-5, "{head:?} row {row}: {mean} vs {}", q[row]);
            }
        }
        let bad = NetSpec {
            atoms: Some(Atoms { n: 1, v_min: 0.0, v_max: 1.0 }),
            ..NetSpec::new(vec![4], 2, Torso::Mlp { hidden: vec![] }, HeadKind::Q)
        };
        assert!(Net::new(&bad, &device).unwrap_err().contains("at least 2 atoms"));
    }

    /// Noisy nets: without noise asked for, a noisy network is its plain twin exactly (the means); with fresh
    /// noise it differs, reproducibly from the noise's seed; a fresh network's noise is zero.
    #[test]
    fn noisy_layers_are_the_mean_unless_a_pass_asks_for_noise() {
        let device = device::for_tests();
        let plain = NetSpec::new(vec![4, 10, 10], 3, Torso::MinatarConv, HeadKind::Dueling);
        let noisy = NetSpec { noisy: Some(0.5), ..plain.clone() };
        let x = || batch(&obs(3, 400), 400, &device);
        // The plain twin takes the noisy network's means through a weights file (σ has no place in it).
        use burn::store::{ModuleSnapshot, SafetensorsStore};
        let mut b = Net::new(&noisy, &device).unwrap();
        let _ = b.scores(x());
        let mut store = SafetensorsStore::from_bytes(None);
        b.save_into(&mut store).unwrap();
        let mut a = Net::new(&plain, &device).unwrap();
        let mut store = SafetensorsStore::from_bytes(Some(store.get_bytes().unwrap())).allow_partial(true);
        a.load_from(&mut store).unwrap();
        let qa = to_vec(a.scores(x()));
        let on = Pass { noise: true, ..Pass::default() };
        assert_eq!(qa, to_vec(b.scores(x())));
        assert_eq!(qa, to_vec(b.forward(x(), &on).q.unwrap()), "zero noise before the first draw");
        b.reset_noise(&mut rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(9));
        let first = to_vec(b.forward(x(), &on).q.unwrap());
        assert!(first.iter().zip(&qa).any(|(x, y)| (x - y).abs() > 1e-3), "noise changes Q");
        assert_eq!(qa, to_vec(b.scores(x())), "the evaluation mode ignores the noise");
        b.reset_noise(&mut rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(9));
        assert_eq!(first, to_vec(b.forward(x(), &on).q.unwrap()), "the same seed, the same noise");
        // σ is a parameter (it learns): two per noisy layer beside the plain network's.
        use burn::module::Module;
        assert_eq!(b.num_params(), a.num_params() + (1024 * 3 + 3) + (1024 + 1));
    }
}
