//! The torso: convolutions (none for an MLP) then fully connected layers, ReLU after each (Koul et al.'s torsos:
//! ELU or ReLU6 where their paper has them); every layer's output and its activation's are probes (`convN`,
//! `convN.relu`, `fcN`, `fcN.relu` whatever the activation).

use crate::relu::relu_with;
use crate::{NetSpec, Pass, Probe, Torso as TorsoKind};
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

#[derive(Module, Debug)]
pub struct TorsoModule {
    convs: Vec<Conv2d>,
    fc: Vec<Linear>,
    /// The fully connected layers' activations.
    #[module(skip)]
    acts: Vec<Activation>,
    /// The IFE extractor in place of the convolutions ([`TorsoKind::Ife`]).
    ife: Option<crate::ife::IfeModule>,
}

/// What follows a fully connected layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// ReLU, with the backward the pass asks for (guided, deconvnet).
    Relu,
    /// ELU (α = 1).
    Elu,
    /// min(ReLU, 6): the ReLU part with the pass's backward.
    Relu6,
}

impl Activation {
    fn apply(self, z: Tensor<2>, pass: &Pass) -> Tensor<2> {
        match self {
            Activation::Relu => relu_with(z, pass.relu),
            Activation::Elu => burn::tensor::activation::elu(z, 1.0),
            Activation::Relu6 => relu_with(z, pass.relu).clamp_max(6.0),
        }
    }
}

/// A stack of fully connected layers with ReLUs, named `{prefix}1`, `{prefix}2`, …: the torso's, or a two-stream
/// value head's own copy.
pub(crate) fn dense_stack(input: usize, widths: &[usize], device: &Device) -> Vec<Linear> {
    let mut flat = input;
    widths
        .iter()
        .map(|&w| {
            let layer = LinearConfig::new(flat, w).init(device);
            flat = w;
            layer
        })
        .collect()
}

/// Runs `layers` on `x` with their probes: a layer's output is `{prefix}N`, its ReLU's `{prefix}N.relu`
/// (probes of shape `[b, f, 1, 1]`).
pub(crate) fn dense_forward(
    layers: &[Linear],
    prefix: &str,
    x: Tensor<2>,
    pass: &Pass,
    probe: &mut Option<Probe>,
) -> Tensor<2> {
    dense_forward_with(layers, &[], prefix, x, pass, probe)
}

/// [`dense_forward`] with layer i followed by `acts[i]` (ReLU where `acts` is shorter).
pub(crate) fn dense_forward_with(
    layers: &[Linear],
    acts: &[Activation],
    prefix: &str,
    mut x: Tensor<2>,
    pass: &Pass,
    probe: &mut Option<Probe>,
) -> Tensor<2> {
    for (i, layer) in layers.iter().enumerate() {
        let name = format!("{prefix}{}", i + 1);
        let z = crate::fast::linear::linear(layer, x);
        let [b, f] = z.dims();
        let z = crate::tap(pass, probe, name.clone(), z.reshape([b, f, 1, 1])).reshape([b, f]);
        let a = acts.get(i).copied().unwrap_or(Activation::Relu).apply(z, pass).reshape([b, f, 1, 1]);
        x = crate::tap(pass, probe, format!("{name}.relu"), a).reshape([b, f]);
    }
    x
}

/// An unpadded, square-kernel convolution. On burn's Flex backend it goes through [`crate::fast::conv`] (a few
/// samples at a time in per-thread buffers, by im2col and gemm or, for 32 or 64 channels on AVX-512, straight from
/// the input; its own backward): burn's CPU convolution was the slowest part of a training step (MinAtar: 1.35 ms a
/// step with it, 0.73 with the first whole-batch replacement; docs/BENCHMARKS.md). Every other backend takes burn's
/// own `conv2d`, since xrl's products are a Flex extension and burn panics when an extension is called on a backend
/// it does not list.
pub fn conv_gemm(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let weight = conv.weight.val();
    let bias = conv.bias.as_ref().map(|b| b.val());
    if !crate::fast::on_flex(&x.device()) {
        use burn::tensor::ops::ConvOptions;
        let s = conv.stride[0];
        return burn::tensor::module::conv2d(x, weight, bias, ConvOptions::new([s, s], [0, 0], [1, 1], 1));
    }
    let bias = bias.unwrap_or_else(|| Tensor::zeros([weight.dims()[0]], &weight.device()));
    crate::fast::conv::conv2d(x, weight, bias, conv.stride[0])
}

impl TorsoKind {
    /// (out channels, kernel, stride) of each convolution.
    fn conv_layers(&self) -> Vec<(usize, usize, usize)> {
        match self {
            TorsoKind::Mlp { .. } | TorsoKind::MmnMlp | TorsoKind::Ife { .. } => vec![],
            TorsoKind::MinatarCnn | TorsoKind::MmnMinatarCnn | TorsoKind::MinatarConv => vec![(16, 3, 1)],
            TorsoKind::NatureCnn => vec![(32, 8, 4), (64, 4, 2), (64, 3, 1)],
        }
    }

    /// Widths of the fully connected layers.
    pub(crate) fn hidden_widths(&self) -> Vec<usize> {
        match self {
            TorsoKind::Mlp { hidden } => hidden.clone(),
            TorsoKind::MinatarCnn | TorsoKind::MmnMinatarCnn => vec![128],
            TorsoKind::NatureCnn => vec![512],
            TorsoKind::MinatarConv => vec![],
            TorsoKind::Ife { .. } => vec![256],
            TorsoKind::MmnMlp => vec![16, 8],
        }
    }

    /// The fully connected layers' activations.
    fn activations(&self) -> Vec<Activation> {
        match self {
            TorsoKind::MmnMlp => vec![Activation::Elu, Activation::Relu6],
            TorsoKind::MmnMinatarCnn => vec![Activation::Relu6],
            _ => vec![Activation::Relu; self.hidden_widths().len()],
        }
    }
}

impl TorsoModule {
    /// A fresh torso for `spec`'s frames (PyTorch's default initialisation); also returns the width of the
    /// convolutions' flattened output (the input's for an MLP), which a two-stream head reads.
    pub fn new(spec: &NetSpec, device: &Device) -> (Self, usize) {
        let mut convs = vec![];
        let mut flat = spec.frame_shape().iter().product::<usize>();
        if let [c, h, w] = spec.frame_shape()[..]
            && !spec.torso.conv_layers().is_empty()
        {
            let (mut c, mut h, mut w) = (c, h, w);
            for (out, k, s) in spec.torso.conv_layers() {
                convs.push(Conv2dConfig::new([c, out], [k, k]).with_stride([s, s]).init(device));
                (c, h, w) = (out, (h - k) / s + 1, (w - k) / s + 1);
            }
            flat = c * h * w;
        }
        let ife = match (&spec.torso, spec.frame_shape()) {
            (TorsoKind::Ife { m }, frame) => {
                let shape = crate::ife::IfeShape::for_frame(frame, *m).expect("validated with the spec");
                flat = shape.features();
                Some(crate::ife::IfeModule::new(shape, device))
            }
            _ => None,
        };
        let fc = dense_stack(flat, &spec.torso.hidden_widths(), device);
        (TorsoModule { convs, fc, acts: spec.torso.activations(), ife }, flat)
    }

    /// The features' width.
    pub fn out_len(&self, input: usize) -> usize {
        self.fc.last().map_or(input, |l| l.weight.dims()[1])
    }

    pub fn convs(&self) -> &[Conv2d] {
        &self.convs
    }

    /// The IFE extractor, for an IFE torso.
    pub fn ife(&self) -> Option<&crate::ife::IfeModule> {
        self.ife.as_ref()
    }

    /// Probe names, input side first.
    pub fn layer_names(&self) -> Vec<String> {
        let both = |n: String| [n.clone(), format!("{n}.relu")];
        let convs = (1..=self.convs.len()).flat_map(move |i| both(format!("conv{i}")));
        let ife = self.ife.as_ref().map(|_| crate::ife::IfeModule::layer_names()).unwrap_or_default();
        let fc = (1..=self.fc.len()).flat_map(move |i| both(format!("fc{i}")));
        convs.chain(ife).chain(fc).collect()
    }

    /// Frames `[rows, frame_len]` through the convolutions, flattened (unchanged for an MLP).
    pub fn conv_features(&self, x: Tensor<2>, frame: &[usize], pass: &Pass, probe: &mut Option<Probe>) -> Tensor<2> {
        if let Some(ife) = &self.ife {
            let rows = x.dims()[0];
            return ife.forward(x.reshape([rows, frame[0], frame[1], frame[2]]), pass, probe);
        }
        match self.convs.first() {
            None => x,
            Some(first) => {
                let rows = x.dims()[0];
                let z = conv_gemm(first, x.reshape([rows, frame[0], frame[1], frame[2]]));
                self.convs_from(z, pass, probe)
            }
        }
    }

    /// From the first convolution's output before its ReLU through the remaining convolutions, flattened.
    pub(crate) fn convs_from(&self, z: Tensor<4>, pass: &Pass, probe: &mut Option<Probe>) -> Tensor<2> {
        // Each convolution's output is `convN` (Captum's LayerGradCam on the Conv2d module), its ReLU's `convN.relu`.
        let mut tapped = |name: String, z: Tensor<4>| {
            let z = crate::tap(pass, probe, name.clone(), z);
            crate::tap(pass, probe, format!("{name}.relu"), relu_with(z, pass.relu))
        };
        let mut h = tapped("conv1".into(), z);
        for (i, conv) in self.convs.iter().enumerate().skip(1) {
            h = tapped(format!("conv{}", i + 1), conv_gemm(conv, h));
        }
        h.flatten(1, 3)
    }

    /// The fully connected layers on the convolutions' flattened output.
    pub fn dense(&self, x: Tensor<2>, pass: &Pass, probe: &mut Option<Probe>) -> Tensor<2> {
        dense_forward_with(&self.fc, &self.acts, "fc", x, pass, probe)
    }

    /// Every weight orthogonal with `gain`, every bias 0 (CleanRL's `layer_init`).
    pub(crate) fn orthogonal(&mut self, gain: f64, device: &Device) {
        for conv in &mut self.convs {
            conv.weight = orthogonal_param(conv.weight.dims(), gain, device);
            if let Some(b) = &mut conv.bias {
                *b = burn::nn::Initializer::Zeros.init(b.dims(), device);
            }
        }
        orthogonal_linears(&mut self.fc, gain, device);
    }

    /// Test access: the first fully connected layer.
    #[cfg(test)]
    pub(crate) fn fc(&self) -> &[Linear] {
        &self.fc
    }
}

/// An orthogonal weight of `dims` (flattened past the first axis, as PyTorch's `orthogonal_` and burn's
/// `Initializer::Orthogonal`): a standard normal draw from the device's generator, the Q of its QR with each column
/// multiplied by the sign of R's diagonal, scaled by `gain`. The QR runs on the host (nalgebra's Householder):
/// burn-linalg's QR of tensor ops took ~90 s for the IFE head's 4096 × 256 weights (an Atari PPO run's first
/// rollout: 122 s, now 30 s).
pub(crate) fn orthogonal_param<const D: usize>(
    dims: [usize; D],
    gain: f64,
    device: &Device,
) -> burn::module::Param<Tensor<D>> {
    let rows = dims[0];
    let cols: usize = dims[1..].iter().product();
    let draw: Tensor<2> = Tensor::random([rows, cols], burn::tensor::Distribution::Normal(0.0, 1.0), device);
    let values: Vec<f64> = draw.into_data().iter::<f32>().map(f64::from).collect();
    // Tall: QR of the draw; wide: of its transpose, Q transposed back.
    let (m, n) = if rows >= cols { (rows, cols) } else { (cols, rows) };
    let a = if rows >= cols {
        nalgebra::DMatrix::from_row_slice(m, n, &values)
    } else {
        nalgebra::DMatrix::from_column_slice(m, n, &values)
    };
    let qr = a.qr();
    let mut q = qr.q();
    let r = qr.r();
    for j in 0..n {
        let sign = r[(j, j)].signum();
        q.column_mut(j).scale_mut(sign * gain);
    }
    let q = if rows >= cols { q } else { q.transpose() };
    // Row-major [rows, cols].
    let out: Vec<f32> = (0..rows).flat_map(|i| (0..cols).map(move |j| (i, j))).map(|(i, j)| q[(i, j)] as f32).collect();
    let t: Tensor<1> = Tensor::from_data(burn::tensor::TensorData::new(out, [rows * cols]), device);
    burn::module::Param::from_tensor(t.reshape(dims))
}

/// Orthogonal weights and zero biases for each layer.
pub(crate) fn orthogonal_linears(layers: &mut [Linear], gain: f64, device: &Device) {
    for l in layers {
        l.weight = orthogonal_param(l.weight.dims(), gain, device);
        if let Some(b) = &mut l.bias {
            *b = burn::nn::Initializer::Zeros.init(b.dims(), device);
        }
    }
}
