//! Grad-CAM (Selvaraju et al. 2017) on any named layer, and guided Grad-CAM.
//!
//! For layer activations `A` (`[C, h, w]` per sample) and the target's gradients `G` at that layer, the channel
//! weights are the spatial means of the gradients, `α_c = mean_{h,w} G_c`, and the map is `Σ_c α_c A_c`, passed
//! through a ReLU unless `relu` is off (Captum's `LayerGradCam` default leaves it off; the paper applies it).
//! Guided Grad-CAM multiplies guided backprop's input map by the Grad-CAM map brought to input resolution by
//! nearest-neighbour upsampling (Captum's `GuidedGradCam`).

use super::{Budget, Gradient, GradientKind, Maps, Model, Target, target_value};
use xrl_nn::{Pass, to_vec};

#[derive(Clone, Debug)]
pub struct GradCam {
    /// A layer of [`xrl_nn::Net::layer_names`], e.g. `conv1`.
    pub layer: String,
    pub relu: bool,
    pub budget: Budget,
}

/// A Grad-CAM map at the layer's resolution.
#[derive(Clone, Debug, PartialEq)]
pub struct CamMaps {
    /// `[n, h, w]`.
    pub maps: Vec<f32>,
    pub h: usize,
    pub w: usize,
}

impl GradCam {
    pub fn new(layer: &str) -> Self {
        GradCam { layer: layer.into(), relu: true, budget: Budget::default() }
    }

    pub(crate) fn maps(&self, model: &dyn Model, inputs: &[f32], len: usize, targets: &[Target]) -> CamMaps {
        let device = model.device().autodiff();
        let n = inputs.len() / len;
        let (mut maps, mut dims) = (vec![], (1, 1));
        let step = self.budget.chunk_rows(len);
        for start in (0..n).step_by(step) {
            let end = (start + step).min(n);
            let x = xrl_nn::batch(&inputs[start * len..end * len], len, &device);
            let pass = Pass { probe: Some(self.layer.clone()), ..Pass::default() };
            let rows: Vec<usize> = (start..end).collect();
            let h = model.heads_for(x, &pass, &rows);
            let t = target_value(&h, targets, &rows);
            let probe = h.probe.unwrap_or_else(|| panic!("the model has no layer `{}`", self.layer));
            let leaf = probe.leaf.expect("probes on an autodiff device carry a leaf");
            let grad = leaf.grad(&t.sum().backward()).expect("the layer takes part in the target");
            let [b, c, hh, ww] = grad.dims();
            dims = (hh, ww);
            let alpha = grad.mean_dim(3).mean_dim(2); // [b, c, 1, 1]
            let cam = (probe.activation.inner() * alpha.inner()).sum_dim(1).reshape([b, hh * ww]);
            let cam = if self.relu { burn::tensor::activation::relu(cam) } else { cam };
            let _ = c;
            maps.extend(to_vec(cam));
        }
        CamMaps { maps, h: dims.0, w: dims.1 }
    }
}

/// Nearest-neighbour upsampling of an `[h, w]` map to `[hh, ww]` (PyTorch's `interpolate(mode="nearest")`:
/// source index `floor(i · h / hh)`).
pub fn upsample_nearest(map: &[f32], h: usize, w: usize, hh: usize, ww: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(hh * ww);
    for i in 0..hh {
        let si = (i * h / hh).min(h - 1);
        for j in 0..ww {
            let sj = (j * w / ww).min(w - 1);
            out.push(map[si * w + sj]);
        }
    }
    out
}

#[derive(Clone, Debug)]
pub struct GuidedGradCam {
    pub cam: GradCam,
}

impl GuidedGradCam {
    /// `shape` is the input's `[C, H, W]`.
    pub(crate) fn maps(&self, model: &dyn Model, inputs: &[f32], shape: [usize; 3], targets: &[Target]) -> Maps {
        let len = shape.iter().product();
        let cam = self.cam.maps(model, inputs, len, targets);
        let guided = Gradient { kind: GradientKind::Guided, budget: self.cam.budget }.maps(model, inputs, len, targets);
        let [c, hh, ww] = shape;
        let mut maps = guided.maps;
        for (i, sample) in maps.chunks_mut(len).enumerate() {
            let up = upsample_nearest(&cam.maps[i * cam.h * cam.w..(i + 1) * cam.h * cam.w], cam.h, cam.w, hh, ww);
            for ch in 0..c {
                for (v, u) in sample[ch * hh * ww..(ch + 1) * hh * ww].iter_mut().zip(&up) {
                    *v *= u;
                }
            }
        }
        Maps { maps, delta: None }
    }
}
