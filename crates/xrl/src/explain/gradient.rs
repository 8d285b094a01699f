//! Gradient saliency and its relatives: vanilla gradient (Simonyan et al. 2014), gradient × input, guided backprop
//! (Springenberg et al. 2015) and deconvnet (Zeiler & Fergus 2014) — the same backward pass with another ReLU rule.

use super::{Attribution, Budget, Model, Target, gradients};
use crate::nn::Pass;
use crate::relu::ReluMode;

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
    pub fn attribute(&self, model: &dyn Model, inputs: &[f32], len: usize, target: &Target) -> Attribution {
        let relu = match self.kind {
            GradientKind::Guided => ReluMode::Guided,
            GradientKind::Deconv => ReluMode::Deconv,
            _ => ReluMode::Normal,
        };
        let n = inputs.len() / len;
        let samples: Vec<usize> = (0..n).collect();
        let pass = Pass { relu, ..Pass::default() };
        let (mut g, _) = gradients(model, inputs, len, &samples, target, &pass, self.budget);
        if self.kind == GradientKind::TimesInput {
            g.iter_mut().zip(inputs).for_each(|(g, x)| *g *= x);
        }
        Attribution { maps: g, len, delta: None }
    }
}
