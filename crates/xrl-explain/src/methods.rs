//! The one calling convention ([`Method`]) for every method: the checks every call makes before any pass, each
//! method's own (image inputs, a layer the network has, a window that fits), then its algorithm (in its own file),
//! its maps wrapped as an [`Attribution`].

use crate::{
    Attribution, ExplainError, GradCam, Gradient, GradientKind, GuidedGradCam, Inputs, IntegratedGradients, Method,
    Model, Occlusion, Perturbation, Resolution, Score, SmoothGrad, SmoothKind, Target, attribution, check_call,
};
use std::time::Instant;
use xrl_nn::HeadKind;

fn image(inputs: &Inputs, method: &str) -> Result<[usize; 3], ExplainError> {
    inputs.image().ok_or_else(|| {
        ExplainError::Invalid(format!(
            "{method} needs image inputs [C, H, W]; these have shape {:?} (use grad, guided, ig or smoothgrad)",
            inputs.shape
        ))
    })
}

/// Baselines one per sample: a single baseline is repeated for every sample.
fn per_sample(baselines: Option<&[f32]>, inputs: &Inputs) -> Option<Vec<f32>> {
    baselines.map(|b| if b.len() == inputs.len() { b.repeat(inputs.count()) } else { b.to_vec() })
}

impl GradientKind {
    /// The registry name of the plain method (`grad`, `grad-x-input`, `guided`, `deconv`).
    pub fn name(self) -> &'static str {
        match self {
            GradientKind::Vanilla => "grad",
            GradientKind::TimesInput => "grad-x-input",
            GradientKind::Guided => "guided",
            GradientKind::Deconv => "deconv",
        }
    }
}

impl Method for Gradient {
    fn name(&self) -> String {
        self.kind.name().into()
    }

    fn attribute(
        &self,
        model: &dyn Model,
        inputs: &Inputs,
        targets: &[Target],
        baselines: Option<&[f32]>,
    ) -> Result<Attribution, ExplainError> {
        check_call(model, inputs, targets, baselines)?;
        let started = Instant::now();
        let m = self.maps(model, inputs.values, inputs.len(), targets);
        Ok(attribution(self.name(), m.maps, inputs.shape.to_vec(), Resolution::Input, None, started))
    }
}

impl GradCam {
    fn check_layer(&self, model: &dyn Model) -> Result<(), ExplainError> {
        match model.layers() {
            Some(layers) if !layers.contains(&self.layer) => Err(ExplainError::Invalid(format!(
                "gradcam:{}: the network has no layer `{}`; its layers are {}",
                self.layer,
                self.layer,
                layers.join(", ")
            ))),
            _ => Ok(()),
        }
    }
}

impl Method for GradCam {
    fn name(&self) -> String {
        format!("gradcam:{}", self.layer)
    }

    fn attribute(
        &self,
        model: &dyn Model,
        inputs: &Inputs,
        targets: &[Target],
        baselines: Option<&[f32]>,
    ) -> Result<Attribution, ExplainError> {
        check_call(model, inputs, targets, baselines)?;
        self.check_layer(model)?;
        let started = Instant::now();
        let c = self.maps(model, inputs.values, inputs.len(), targets);
        let layer = Resolution::Layer { layer: self.layer.clone() };
        Ok(attribution(self.name(), c.maps, vec![c.h, c.w], layer, None, started))
    }
}

impl Method for GuidedGradCam {
    fn name(&self) -> String {
        format!("guided-gradcam:{}", self.cam.layer)
    }

    fn attribute(
        &self,
        model: &dyn Model,
        inputs: &Inputs,
        targets: &[Target],
        baselines: Option<&[f32]>,
    ) -> Result<Attribution, ExplainError> {
        check_call(model, inputs, targets, baselines)?;
        self.cam.check_layer(model)?;
        let shape = image(inputs, "guided Grad-CAM")?;
        let started = Instant::now();
        let m = self.maps(model, inputs.values, shape, targets);
        Ok(attribution(self.name(), m.maps, inputs.shape.to_vec(), Resolution::Input, None, started))
    }
}

impl Method for IntegratedGradients {
    fn name(&self) -> String {
        "ig".into()
    }

    /// From `baselines` (one for all samples or one each), zeros when `None`.
    fn attribute(
        &self,
        model: &dyn Model,
        inputs: &Inputs,
        targets: &[Target],
        baselines: Option<&[f32]>,
    ) -> Result<Attribution, ExplainError> {
        check_call(model, inputs, targets, baselines)?;
        if self.steps == 0 {
            return Err(ExplainError::Invalid("integrated gradients need at least 1 step (--ig-steps)".into()));
        }
        let started = Instant::now();
        let base = per_sample(baselines, inputs);
        let m = self.maps(model, inputs.values, inputs.len(), targets, base.as_deref());
        Ok(attribution(self.name(), m.maps, inputs.shape.to_vec(), Resolution::Input, m.delta, started))
    }
}

impl Method for SmoothGrad {
    fn name(&self) -> String {
        let kind = match self.kind {
            SmoothKind::Mean => "smoothgrad",
            SmoothKind::Squared => "smoothgrad2",
            SmoothKind::Variance => "vargrad",
        };
        format!("{kind}:{}", self.base.kind.name())
    }

    fn attribute(
        &self,
        model: &dyn Model,
        inputs: &Inputs,
        targets: &[Target],
        baselines: Option<&[f32]>,
    ) -> Result<Attribution, ExplainError> {
        check_call(model, inputs, targets, baselines)?;
        if self.samples == 0 || !(self.sigma >= 0.0 && self.sigma.is_finite()) {
            return Err(ExplainError::Invalid(format!(
                "{}: needs at least 1 noise sample and a finite σ ≥ 0 (got {} samples, σ {})",
                self.name(),
                self.samples,
                self.sigma
            )));
        }
        let started = Instant::now();
        let m = self.maps(model, inputs.values, inputs.len(), targets);
        Ok(attribution(self.name(), m.maps, inputs.shape.to_vec(), Resolution::Input, None, started))
    }
}

impl Method for Occlusion {
    fn name(&self) -> String {
        "occlusion".into()
    }

    fn attribute(
        &self,
        model: &dyn Model,
        inputs: &Inputs,
        targets: &[Target],
        baselines: Option<&[f32]>,
    ) -> Result<Attribution, ExplainError> {
        check_call(model, inputs, targets, baselines)?;
        let shape = image(inputs, "occlusion")?;
        let [c, h, w] = shape;
        let [_, wh, ww] = self.window;
        if wh == 0 || ww == 0 || self.stride.contains(&0) {
            return Err(ExplainError::Invalid("occlusion: window and stride must be at least 1".into()));
        }
        if wh > h || ww > w {
            return Err(ExplainError::Invalid(format!(
                "occlusion: a {wh}×{ww} window is larger than the {h}×{w} frame; use --occlusion-window {} or less",
                h.min(w)
            )));
        }
        // A window wider than the channels (the registry's "all channels") covers them all.
        let occ = Occlusion {
            window: [self.window[0].min(c), wh, ww],
            stride: [self.stride[0].min(c), self.stride[1], self.stride[2]],
            ..self.clone()
        };
        let started = Instant::now();
        let m = occ.maps(model, inputs.values, shape, targets);
        Ok(attribution(self.name(), m.maps, inputs.shape.to_vec(), Resolution::Input, None, started))
    }
}

impl Method for Perturbation {
    fn name(&self) -> String {
        "perturbation".into()
    }

    /// Maps `[H, W]` at input resolution (bilinear between the grid points).
    fn attribute(
        &self,
        model: &dyn Model,
        inputs: &Inputs,
        targets: &[Target],
        baselines: Option<&[f32]>,
    ) -> Result<Attribution, ExplainError> {
        check_call(model, inputs, targets, baselines)?;
        let shape = image(inputs, "perturbation saliency")?;
        if let (Score::Critic, Some(spec)) = (&self.score, model.spec())
            && spec.head == HeadKind::Q
        {
            return Err(ExplainError::Invalid(
                "perturbation's value score needs a value head (dueling or actor-critic); this network has Q values \
                 only: use --perturbation-score policy or target"
                    .into(),
            ));
        }
        if self.stride == 0 || !(self.mask_sigma > 0.0 && self.blur_sigma > 0.0) {
            return Err(ExplainError::Invalid("perturbation: stride and both σ must be positive".into()));
        }
        let started = Instant::now();
        let p = self.maps(model, inputs.values, shape, targets);
        let grid = Resolution::Grid { stride: self.stride };
        Ok(attribution(self.name(), p.maps, vec![shape[1], shape[2]], grid, None, started))
    }
}
