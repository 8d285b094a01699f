//! Each method behind the one calling convention ([`Method`]): its own checks (image inputs, a layer the network
//! has, a window that fits), then its algorithm (in its own file), its maps returned as [`Computed`].

use crate::{
    Call, Computed, ExplainError, GradCam, Gradient, GradientKind, GuidedGradCam, Inputs, IntegratedGradients, Method,
    Model, Occlusion, Perturbation, Resolution, Score, SmoothGrad, SmoothKind,
};
use xrl_nn::HeadKind;

fn image(inputs: &Inputs, method: &str) -> Result<[usize; 3], ExplainError> {
    inputs.image().ok_or_else(|| {
        ExplainError::Invalid(format!(
            "{method} needs image inputs [C, H, W]; these have shape {:?} (use grad, guided, ig or smoothgrad)",
            inputs.shape
        ))
    })
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

    fn compute(&self, c: &Call) -> Result<Computed, ExplainError> {
        Ok(Computed::at_input(self.maps(c.model, c.inputs.values, c.inputs.len(), c.targets).maps, c))
    }
}

/// A Grad-CAM layer must be one of the network's probes.
pub(crate) fn check_layer(layer: &str, layers: &[String]) -> Result<(), ExplainError> {
    if layers.iter().any(|l| l == layer) {
        return Ok(());
    }
    Err(ExplainError::Invalid(format!(
        "gradcam:{layer}: the network has no layer `{layer}`; its layers are {} (`convN` is a convolution's output, \
         `convN.relu` its ReLU's)",
        layers.join(", ")
    )))
}

impl GradCam {
    fn check_layer(&self, model: &dyn Model) -> Result<(), ExplainError> {
        model.layers().map_or(Ok(()), |layers| check_layer(&self.layer, &layers))
    }
}

impl Method for GradCam {
    fn name(&self) -> String {
        format!("gradcam:{}", self.layer)
    }

    /// Maps `[h, w]` at the layer's resolution.
    fn compute(&self, c: &Call) -> Result<Computed, ExplainError> {
        self.check_layer(c.model)?;
        let cam = self.maps(c.model, c.inputs.values, c.inputs.len(), c.targets);
        let resolution = Resolution::Layer { layer: self.layer.clone() };
        Ok(Computed { maps: cam.maps, shape: vec![cam.h, cam.w], resolution, delta: None })
    }
}

impl Method for GuidedGradCam {
    fn name(&self) -> String {
        format!("guided-gradcam:{}", self.cam.layer)
    }

    fn compute(&self, c: &Call) -> Result<Computed, ExplainError> {
        self.cam.check_layer(c.model)?;
        let shape = image(c.inputs, "guided Grad-CAM")?;
        Ok(Computed::at_input(self.maps(c.model, c.inputs.values, shape, c.targets).maps, c))
    }
}

impl Method for IntegratedGradients {
    fn name(&self) -> String {
        "ig".into()
    }

    /// From the call's baselines (one for all samples or one each), zeros when there are none.
    fn compute(&self, c: &Call) -> Result<Computed, ExplainError> {
        if self.steps == 0 {
            return Err(ExplainError::Invalid("integrated gradients need at least 1 step (--ig-steps)".into()));
        }
        let (inputs, len) = (c.inputs, c.inputs.len());
        let base = c.baselines.map(|b| if b.len() == len { b.repeat(inputs.count()) } else { b.to_vec() });
        let m = self.maps(c.model, inputs.values, len, c.targets, base.as_deref());
        Ok(Computed { delta: m.delta, ..Computed::at_input(m.maps, c) })
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

    fn compute(&self, c: &Call) -> Result<Computed, ExplainError> {
        self.check()?;
        Ok(Computed::at_input(self.maps(c.model, c.inputs.values, c.inputs.len(), c.targets).maps, c))
    }
}

impl SmoothGrad {
    pub(crate) fn check(&self) -> Result<(), ExplainError> {
        if self.samples == 0 || !(self.sigma >= 0.0 && self.sigma.is_finite()) {
            return Err(ExplainError::Invalid(format!(
                "{}: needs at least 1 noise sample and a finite σ ≥ 0 (got {} samples, σ {})",
                self.name(),
                self.samples,
                self.sigma
            )));
        }
        Ok(())
    }
}

impl Method for Occlusion {
    fn name(&self) -> String {
        "occlusion".into()
    }

    fn compute(&self, c: &Call) -> Result<Computed, ExplainError> {
        let shape = image(c.inputs, "occlusion")?;
        let [ch, h, w] = shape;
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
            window: [self.window[0].min(ch), wh, ww],
            stride: [self.stride[0].min(ch), self.stride[1], self.stride[2]],
            ..self.clone()
        };
        Ok(Computed::at_input(occ.maps(c.model, c.inputs.values, shape, c.targets).maps, c))
    }
}

impl Method for Perturbation {
    fn name(&self) -> String {
        "perturbation".into()
    }

    /// Maps `[H, W]` at input resolution (bilinear between the grid points).
    fn compute(&self, c: &Call) -> Result<Computed, ExplainError> {
        let shape = image(c.inputs, "perturbation saliency")?;
        if let (Score::Critic, Some(spec)) = (&self.score, c.model.spec())
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
        let p = self.maps(c.model, c.inputs.values, shape, c.targets);
        let resolution = Resolution::Grid { stride: self.stride };
        Ok(Computed { maps: p.maps, shape: vec![shape[1], shape[2]], resolution, delta: None })
    }
}
