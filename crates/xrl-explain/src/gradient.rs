//! Gradient saliency and its relatives: vanilla gradient (Simonyan et al. 2014), gradient × input, guided backprop
//! (Springenberg et al. 2015) and deconvnet (Zeiler & Fergus 2014) — the same backward pass with another ReLU rule.

use super::{Budget, Maps, Model, Rows, Target, gradients};
use xrl_nn::Pass;
use xrl_nn::relu::ReluMode;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GradientKind {
    Vanilla,
    TimesInput,
    Guided,
    Deconv,
}

#[derive(Clone, Copy, Debug)]
pub struct Gradient {
    pub kind: GradientKind,
    pub budget: Budget,
}

impl Gradient {
    pub fn new(kind: GradientKind) -> Self {
        Gradient { kind, budget: Budget::default() }
    }

    /// `inputs` are `n` flat samples of length `len`.
    pub(crate) fn maps(&self, model: &dyn Model, inputs: &[f32], len: usize, targets: &[Target]) -> Maps {
        let samples: Vec<usize> = (0..inputs.len() / len).collect();
        let mut maps = Vec::with_capacity(inputs.len());
        self.attribute_rows(model, Rows::Given(inputs), len, &samples, targets, &mut |_, m| maps.extend_from_slice(m));
        Maps { maps, delta: None }
    }

    /// The maps of `rows` (row r derived from input sample `sample_of[r]`), chunk by chunk:
    /// `sink(first_row, maps)`.
    pub(crate) fn attribute_rows(
        &self,
        model: &dyn Model,
        rows: Rows,
        len: usize,
        sample_of: &[usize],
        targets: &[Target],
        sink: &mut dyn FnMut(usize, &[f32]),
    ) {
        let relu = match self.kind {
            GradientKind::Guided => ReluMode::Guided,
            GradientKind::Deconv => ReluMode::Deconv,
            _ => ReluMode::Normal,
        };
        let pass = Pass { relu, ..Pass::default() };
        let times_input = self.kind == GradientKind::TimesInput;
        gradients(model, rows, len, sample_of, targets, &pass, self.budget, &mut |start, x, g| {
            if times_input {
                let m: Vec<f32> = g.iter().zip(x).map(|(g, x)| g * x).collect();
                sink(start, &m);
            } else {
                sink(start, g);
            }
        });
    }
}
