//! The head: Q values, dueling V + A (Wang et al. 2016), or actor-critic logits + V; a two-stream head's value
//! reads its own copy of the torso's fully connected layers (probes `value_fc1`, …).

use crate::torso::{dense_forward, dense_stack};
use crate::{HeadKind, Heads, NetSpec, Pass, Probe};
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
        let value = matches!(spec.head, HeadKind::Dueling | HeadKind::ActorCritic)
            .then(|| LinearConfig::new(value_in, 1).init(device));
        HeadModule { value_fc, out: LinearConfig::new(features, spec.actions).init(device), value, kind: spec.head }
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
    pub fn forward(&self, x: Tensor<2>, value_x: Option<Tensor<2>>) -> Heads {
        let out = crate::fast::linear::linear(&self.out, x.clone());
        let value = self.value.as_ref().map(|v| crate::fast::linear::linear(v, value_x.unwrap_or(x)));
        let mut heads = Heads { q: None, advantage: None, value: None, logits: None, probe: None, state: None };
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
