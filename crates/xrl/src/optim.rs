//! Adam and RMSProp with PyTorch's update rules, fused over each parameter's values.
//!
//! Why not burn's optimisers: measured on the MinAtar CNN (140k parameters), burn 0.22's Adam step took 0.73 ms
//! of a 2.4 ms DQN training step (SGD: 0.09 ms) — a dozen tensor operations per parameter, each dispatched and
//! allocated. Here each parameter is one pass over a slice. The state is kept per parameter in visiting order (not
//! by burn's random parameter ids), so it is saved in checkpoints and a resumed run continues exactly.

use crate::nn::Net;
use burn::module::{Module, ModuleMapper, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// The update rule and its constants (PyTorch's names and defaults).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Rule {
    /// `torch.optim.Adam` (β₁ 0.9, β₂ 0.999, ε 1e-8 by default).
    Adam { beta1: f32, beta2: f32, eps: f32 },
    /// `torch.optim.RMSprop` without momentum: `v ← αv + (1−α)g²`; centred subtracts the squared running mean of
    /// g; the step is `lr·g / (√v̂ + ε)`.
    RmsProp { alpha: f32, eps: f32, centered: bool },
}

impl Rule {
    pub fn adam() -> Self {
        Rule::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8 }
    }
}

/// Per-parameter state: Adam's (m, v) or RMSProp's (v, running mean of g).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Slot {
    a: Vec<f32>,
    b: Vec<f32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Optimizer {
    pub rule: Rule,
    pub lr: f64,
    /// Steps taken (Adam's bias correction).
    pub t: u64,
    slots: Vec<Slot>,
}

impl Optimizer {
    pub fn new(rule: Rule, lr: f64) -> Self {
        Optimizer { rule, lr, t: 0, slots: vec![] }
    }

    /// Applies one update to every parameter of `net` that has a gradient in `grads`.
    pub fn step(&mut self, net: Net, grads: GradientsParams) -> Net {
        self.t += 1;
        let mut mapper = Mapper { optim: self, grads, index: 0 };
        net.map(&mut mapper)
    }

    /// The state as bytes (for checkpoints): a JSON header line, then every slot's values as little-endian f32.
    pub fn to_bytes(&self) -> Vec<u8> {
        let lens: Vec<usize> = self.slots.iter().map(|s| s.a.len()).collect();
        let header = serde_json::json!({ "rule": self.rule, "lr": self.lr, "t": self.t, "lens": lens });
        let mut out = serde_json::to_vec(&header).expect("header serialises");
        out.push(b'\n');
        for s in &self.slots {
            for x in s.a.iter().chain(&s.b) {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        out
    }

    /// Reads the state written by [`Optimizer::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let nl = bytes.iter().position(|&b| b == b'\n').ok_or("not an optimizer state file")?;
        #[derive(Deserialize)]
        struct Header {
            rule: Rule,
            lr: f64,
            t: u64,
            lens: Vec<usize>,
        }
        let h: Header = serde_json::from_slice(&bytes[..nl]).map_err(|e| format!("bad optimizer header: {e}"))?;
        let mut floats = bytes[nl + 1..].chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")));
        if (bytes.len() - nl - 1) != 8 * h.lens.iter().sum::<usize>() {
            return Err("optimizer state is truncated or has trailing bytes".into());
        }
        let slots = h
            .lens
            .iter()
            .map(|&n| Slot { a: floats.by_ref().take(n).collect(), b: floats.by_ref().take(n).collect() })
            .collect();
        Ok(Optimizer { rule: h.rule, lr: h.lr, t: h.t, slots })
    }

    /// Updates `w` in place from its gradient `g` and the slot's state.
    fn update(&mut self, index: usize, w: &mut [f32], g: &[f32]) {
        if self.slots.len() <= index {
            self.slots.resize(index + 1, Slot::default());
        }
        let slot = &mut self.slots[index];
        if slot.a.len() != w.len() {
            *slot = Slot { a: vec![0.0; w.len()], b: vec![0.0; w.len()] };
        }
        let lr = self.lr as f32;
        let rule = self.rule;
        let t = self.t as i32;
        // Element by element, so pieces of a big parameter update on all threads with the same result.
        type Piece<'a> = (((&'a mut [f32], &'a [f32]), &'a mut [f32]), &'a mut [f32]);
        let piece = |(((w, g), a), b): Piece| match rule {
            Rule::Adam { beta1, beta2, eps } => {
                let c1 = 1.0 - beta1.powi(t);
                let inv_c2 = 1.0 / (1.0 - beta2.powi(t)).sqrt();
                let step = lr / c1;
                for (((w, &g), m), v) in w.iter_mut().zip(g).zip(a).zip(b) {
                    *m = beta1 * *m + (1.0 - beta1) * g;
                    *v = beta2 * *v + (1.0 - beta2) * g * g;
                    *w -= step * *m / (v.sqrt() * inv_c2 + eps);
                }
            }
            Rule::RmsProp { alpha, eps, centered } => {
                for (((w, &g), v), mean) in w.iter_mut().zip(g).zip(a).zip(b) {
                    *v = alpha * *v + (1.0 - alpha) * g * g;
                    let var = if centered {
                        *mean = alpha * *mean + (1.0 - alpha) * g;
                        *v - *mean * *mean
                    } else {
                        *v
                    };
                    *w -= lr * g / (var.sqrt() + eps);
                }
            }
        };
        use rayon::prelude::*;
        const PIECE: usize = 1 << 15;
        if w.len() <= PIECE {
            piece((((w, g), &mut slot.a[..]), &mut slot.b[..]));
        } else {
            w.par_chunks_mut(PIECE)
                .zip(g.par_chunks(PIECE))
                .zip(slot.a.par_chunks_mut(PIECE))
                .zip(slot.b.par_chunks_mut(PIECE))
                .for_each(piece);
        }
    }
}

struct Mapper<'a> {
    optim: &'a mut Optimizer,
    grads: GradientsParams,
    index: usize,
}

impl ModuleMapper for Mapper<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let index = self.index;
        self.index += 1;
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.grads.remove::<D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let (device, shape, require_grad) = (tensor.device(), tensor.shape(), tensor.is_require_grad());
        let mut w = crate::nn::to_vec(tensor.inner());
        let g = crate::nn::to_vec(grad);
        self.optim.update(index, &mut w, &g);
        let mut updated = Tensor::<D>::from_data(TensorData::new(w, shape), &device);
        if require_grad {
            updated = updated.require_grad();
        }
        Param::from_mapped_value(id, updated, mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three steps on one weight by hand, in f64, against the fused update.
    #[test]
    fn adam_and_rmsprop_follow_pytorch_by_hand() {
        let grads = [0.5f32, -1.0, 2.0];
        // Adam: lr 0.1, β₁ 0.9, β₂ 0.999, ε 1e-8.
        let mut o = Optimizer::new(Rule::adam(), 0.1);
        let mut w = [1.0f32];
        let (mut m, mut v, mut x) = (0.0f64, 0.0f64, 1.0f64);
        for (t, &g) in grads.iter().enumerate() {
            o.t += 1;
            o.update(0, &mut w, &[g]);
            let g = g as f64;
            m = 0.9 * m + 0.1 * g;
            v = 0.999 * v + 0.001 * g * g;
            let (mh, vh) = (m / (1.0 - 0.9f64.powi(t as i32 + 1)), v / (1.0 - 0.999f64.powi(t as i32 + 1)));
            x -= 0.1 * mh / (vh.sqrt() + 1e-8);
            assert!((w[0] as f64 - x).abs() < 1e-6, "Adam step {t}: {} vs {x}", w[0]);
        }
        // Centred RMSProp: lr 0.01, α 0.95, ε 0.01 (the MinAtar paper's setting).
        let mut o = Optimizer::new(Rule::RmsProp { alpha: 0.95, eps: 0.01, centered: true }, 0.01);
        let mut w = [1.0f32];
        let (mut v, mut mean, mut x) = (0.0f64, 0.0f64, 1.0f64);
        for (t, &g) in grads.iter().enumerate() {
            o.update(0, &mut w, &[g]);
            let g = g as f64;
            v = 0.95 * v + 0.05 * g * g;
            mean = 0.95 * mean + 0.05 * g;
            x -= 0.01 * g / ((v - mean * mean).sqrt() + 0.01);
            assert!((w[0] as f64 - x).abs() < 1e-6, "RMSProp step {t}: {} vs {x}", w[0]);
        }
    }

    /// On a network, one step moves exactly the parameters that have gradients, and keeps them trainable.
    #[test]
    fn steps_a_network_and_keeps_it_trainable() {
        use crate::nn::{HeadKind, NetSpec, Pass, Torso};
        let d = crate::nn::device::for_tests().autodiff();
        let spec = NetSpec::new(vec![3], 2, Torso::Mlp { hidden: vec![4] }, HeadKind::Q);
        let net = Net::new(&spec, &d).unwrap();
        let x = crate::nn::batch(&[1.0, -2.0, 0.5], 3, &d);
        let before = crate::nn::to_vec(net.scores(x.clone()));
        let mut o = Optimizer::new(Rule::adam(), 0.01);
        let mut net = net;
        for _ in 0..20 {
            let loss = net.forward(x.clone(), &Pass::default()).q.unwrap().slice([0..1, 0..1]).sum();
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = o.step(net, grads);
        }
        let after = crate::nn::to_vec(net.scores(x));
        assert!(after[0] < before[0] - 0.05, "minimising q[0]: {before:?} → {after:?}");
        assert_eq!(o.slots.len(), 4, "hidden and out layers, weight and bias each");
        let back = Optimizer::from_bytes(&o.to_bytes()).unwrap();
        assert_eq!(back, o);
        let bytes = o.to_bytes();
        assert!(Optimizer::from_bytes(&bytes[..bytes.len() - 2]).is_err());
    }
}
