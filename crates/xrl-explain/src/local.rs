//! The network's convolutions as plain values, for methods that need less than a whole pass through them.
//!
//! * [`LocalConvs`]: forward passes of frames that differ from a known frame only inside a rectangle. Each layer
//!   recomputes the output positions whose windows read a changed value and copies the others from the known
//!   frame's activations. Perturbation saliency changes a blob of at most 41×41 pixels of an 84×84 frame per grid
//!   point (a Gaussian of σ = 5 cut at 4σ); through the Nature CNN that leaves 25% of conv1's positions to
//!   compute, 38% of conv2's and 61% of conv3's (averaged over the 289 points of a stride-5 grid, by geometry).
//! * [`FirstConv`]: the first convolution is linear in the input, z = W·(s·x) + b (s: the network's input scale).
//!   Integrated gradients and SmoothGrad's mean are weighted sums of input gradients, and an input gradient is
//!   s·Wᵀ times the gradient at z: they sum the gradients at z over path points or noise samples and take the
//!   convolution's backward once per sample. Integrated gradients' path points need no pass through it either:
//!   z(b + α(x − b)) = z(b) + α·W·s(x − b).
//!
//! Each recomputed position is the same sum of the same products as in the whole pass (gemm may group the sum
//! differently, so values can differ in the last bits); every other position is the whole pass's value.

use super::Model;
use burn::tensor::Tensor;
use rayon::prelude::*;
use xrl_nn::fast::conv::{Geometry, Rect, product_at, transposed};
use xrl_nn::{Heads, Net, Pass};

/// One convolution and its ReLU: the weight transposed for [`product_at`], and the bias.
struct Layer {
    g: Geometry,
    wt: Vec<f32>,
    bias: Vec<f32>,
}

impl Layer {
    /// Overwrites the output positions `rect` of `out` (NCHW) with relu(conv(input) + bias) there (without the
    /// ReLU, and without the bias, when told).
    fn apply(&self, input: &[f32], rect: Rect, out: &mut [f32], sc: &mut Scratch, (relu, bias): (bool, bool)) {
        let (p, (_, ow), cout) = (self.g.positions(), self.g.out_hw(), self.g.cout);
        sc.cols.resize(rect.len() * self.g.kk(), 0.0);
        sc.by_position.resize(rect.len() * cout, 0.0);
        product_at(&self.g, input, &self.wt, rect, &mut sc.cols, &mut sc.by_position);
        // Channel by channel, so that the writes run along the rectangle's rows.
        let (width, floor) = (rect.x1 - rect.x0, if relu { 0.0 } else { f32::NEG_INFINITY });
        for (co, (plane, b)) in out.chunks_exact_mut(p).zip(&self.bias).enumerate() {
            let b = if bias { *b } else { 0.0 };
            for (i, oy) in (rect.y0..rect.y1).enumerate() {
                let values = sc.by_position[i * width * cout + co..].iter().step_by(cout);
                let line = &mut plane[oy * ow + rect.x0..][..width];
                line.iter_mut().zip(values).for_each(|(o, v)| *o = (v + b).max(floor));
            }
        }
    }
}

/// A network's convolutions, ready for local passes; as a [`Model`], the rest of the network from the last
/// convolution's output ([`Net::forward_from_convs`]).
pub(crate) struct LocalConvs<'a> {
    net: &'a Net,
    layers: Vec<Layer>,
}

impl Model for LocalConvs<'_> {
    fn heads(&self, features: Tensor<2>, pass: &Pass) -> Heads {
        self.net.forward_from_convs(features, pass)
    }
}

/// A frame's activations after each convolution and its ReLU (NCHW), input side first.
pub(crate) struct Base {
    acts: Vec<Vec<f32>>,
}

impl Base {
    /// The last convolution's output: what the fully connected layers read.
    pub fn features(&self) -> &[f32] {
        self.acts.last().expect("at least one convolution")
    }
}

/// Per-thread buffers: the im2col rows and products of the recomputed positions, the intermediate activations,
/// the changed frame.
#[derive(Default)]
struct Scratch {
    cols: Vec<f32>,
    by_position: Vec<f32>,
    acts: Vec<Vec<f32>>,
    frame: Vec<f32>,
}

/// The model's network when it is a plain [`Net`] that sees one frame through convolutions, and its convolutions
/// as they come (each with its weight `[cout, c·k·k]`), the input scale folded into the first (W·(s·x) = (s·W)·x);
/// `None` for other models, MLPs, recurrent cores, DRQN stacks and networks off burn's Flex CPU backend (the
/// shortcuts compute on host memory; a GPU runs whole batched passes instead).
fn layers_of(model: &dyn Model) -> Option<(&Net, impl Iterator<Item = (Layer, Vec<f32>)> + '_)> {
    let net = model.as_net()?;
    let spec = net.spec();
    if !xrl_nn::fast::on_flex(&net.device())
        || spec.core.is_some()
        || spec.frames > 0
        || net.conv_geometries().is_empty()
    {
        return None;
    }
    let layers = net.conv_values().enumerate().map(|(i, (g, weight, bias))| {
        let scale = if i == 0 { spec.input_scale } else { 1.0 };
        let weight: Vec<f32> = weight.iter().map(|v| v * scale).collect();
        (Layer { wt: transposed(&weight, g.cout, g.kk()), g, bias }, weight)
    });
    Some((net, layers))
}

impl<'a> LocalConvs<'a> {
    /// For a model that is a plain convolutional [`Net`] seeing one frame (see [`layers_of`]).
    pub fn of(model: &'a dyn Model) -> Option<Self> {
        let (net, layers) = layers_of(model)?;
        Some(LocalConvs { net, layers: layers.map(|(layer, _)| layer).collect() })
    }

    /// The activations of each of the frames in `inputs` (`len` values each).
    pub fn bases(&self, inputs: &[f32], len: usize) -> Vec<Base> {
        inputs.par_chunks(len).map(|x| self.base(x)).collect()
    }

    /// Values per frame of the last convolution's output.
    pub fn feature_len(&self) -> usize {
        self.layers.last().map_or(0, |l| l.g.out_len())
    }

    /// The activations of a whole frame.
    pub fn base(&self, frame: &[f32]) -> Base {
        let mut acts: Vec<Vec<f32>> = vec![];
        Scratch::with(|sc| {
            for layer in &self.layers {
                let mut out = vec![0.0; layer.g.out_len()];
                layer.apply(acts.last().map_or(frame, |a| a), layer.g.all(), &mut out, sc, (true, true));
                acts.push(out);
            }
        });
        Base { acts }
    }

    /// The input pixels (all channels) that a pass for a frame changed inside `changed` reads: the windows of the
    /// first convolution's positions that `changed` reaches. Outside it, the changed frame may hold anything.
    pub fn reads(&self, changed: Rect) -> Rect {
        let g = &self.layers[0].g;
        let r = g.reached_by(changed);
        if r.is_empty() {
            return r;
        }
        Rect { y0: r.y0 * g.s, y1: (r.y1 - 1) * g.s + g.k, x0: r.x0 * g.s, x1: (r.x1 - 1) * g.s + g.k }
    }

    /// The last convolution's output for `frame` (`base`'s) changed inside `changed` (all channels) by `patch`,
    /// into `out`. `patch` writes the changed values into a copy of the frame that holds only what the first
    /// convolution reads of it ([`LocalConvs::reads`]).
    pub fn patched(&self, base: &Base, frame: &[f32], changed: Rect, patch: impl FnOnce(&mut [f32]), out: &mut [f32]) {
        let (g, read) = (&self.layers[0].g, self.reads(changed));
        Scratch::with(|sc| {
            let mut x = std::mem::take(&mut sc.frame);
            x.resize(frame.len(), 0.0);
            for plane in 0..g.c {
                for y in read.y0..read.y1 {
                    let at = (plane * g.h + y) * g.w;
                    x[at + read.x0..at + read.x1].copy_from_slice(&frame[at + read.x0..at + read.x1]);
                }
            }
            patch(&mut x);
            self.features_in(base, &x, changed, out, sc);
            sc.frame = x;
        })
    }

    /// The last convolution's output for `x` into `out`, where `x` equals `base`'s frame outside `changed` (all
    /// channels) and is read only inside [`LocalConvs::reads`]`(changed)`.
    #[cfg(test)]
    fn features(&self, base: &Base, x: &[f32], changed: Rect, out: &mut [f32]) {
        Scratch::with(|sc| self.features_in(base, x, changed, out, sc))
    }

    fn features_in(&self, base: &Base, x: &[f32], changed: Rect, out: &mut [f32], sc: &mut Scratch) {
        let n = self.layers.len();
        let mut acts = std::mem::take(&mut sc.acts);
        acts.resize_with(n - 1, Vec::new);
        let mut changed = changed;
        for (i, layer) in self.layers.iter().enumerate() {
            let reached = layer.g.reached_by(changed);
            let (before, after) = acts.split_at_mut(i);
            let input: &[f32] = if i == 0 { x } else { &before[i - 1] };
            if reached.is_empty() {
                // Nothing this layer reads has changed, nor anything after it.
                out.copy_from_slice(base.features());
                break;
            }
            let dst: &mut [f32] = if i + 1 == n {
                out.copy_from_slice(&base.acts[i]);
                &mut *out
            } else {
                let a = &mut after[0];
                a.clear();
                a.extend_from_slice(&base.acts[i]);
                a
            };
            layer.apply(input, reached, dst, sc, (true, true));
            changed = reached;
        }
        sc.acts = acts;
    }
}

impl Scratch {
    /// Runs `f` with this thread's buffers, kept between calls (taken out, not borrowed: see `xrl_nn::fast::conv`).
    fn with<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
        thread_local! {
            static KEPT: std::cell::Cell<Scratch> = std::cell::Cell::new(Scratch::default());
        }
        let mut sc = KEPT.take();
        let out = f(&mut sc);
        KEPT.set(sc);
        out
    }
}

/// A network's first convolution, scaled by its input scale, for methods that sum input gradients; as a
/// [`Model`], the rest of the network from that convolution's output before its ReLU
/// ([`Net::forward_from_first_conv`]).
pub(crate) struct FirstConv<'a> {
    net: &'a Net,
    layer: Layer,
    /// `s·W` as `[cout, c·k·k]`, for the backward.
    weight: Vec<f32>,
}

impl Model for FirstConv<'_> {
    fn heads(&self, z: Tensor<2>, pass: &Pass) -> Heads {
        self.net.forward_from_first_conv(z, pass)
    }
}

impl<'a> FirstConv<'a> {
    /// For a model that is a plain convolutional [`Net`] seeing one frame (see [`layers_of`]).
    pub fn of(model: &'a dyn Model) -> Option<Self> {
        let (net, mut layers) = layers_of(model)?;
        let (layer, weight) = layers.next()?;
        Some(FirstConv { net, layer, weight })
    }

    /// Values of one frame's output `[cout, oh, ow]`.
    pub fn out_len(&self) -> usize {
        self.layer.g.out_len()
    }

    /// z = W·s·x, plus the bias when told, of one frame into `z`.
    pub fn apply(&self, x: &[f32], bias: bool, z: &mut [f32]) {
        Scratch::with(|sc| self.layer.apply(x, self.layer.g.all(), z, sc, (false, bias)));
    }

    /// The input gradients s·Wᵀ·dz of frames whose gradients at z are `dz` (one after another).
    pub fn input_gradients(&self, dz: &[f32]) -> Vec<f32> {
        xrl_nn::fast::conv::input_gradient(&self.layer.g, &self.weight, dz)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution, Tensor};
    use xrl_nn::{HeadKind, NetSpec, Pass, Torso, to_vec};

    fn random(n: usize, d: &Device) -> Vec<f32> {
        to_vec(Tensor::<1>::random([n], Distribution::Uniform(0.0, 255.0), d))
    }

    /// A frame changed inside a rectangle: the local pass gives the last convolution's output of burn's whole
    /// forward pass (probed), for rectangles inside the frame, across its edges, of one pixel and of all of it —
    /// reading nothing outside what `reads` names (filled with a huge value there, which would show).
    #[test]
    fn local_passes_match_whole_passes_and_read_only_what_they_say() {
        let d = Device::flex();
        d.seed(3);
        let nature =
            NetSpec { input_scale: 1.0 / 255.0, ..NetSpec::new(vec![4, 84, 84], 6, Torso::NatureCnn, HeadKind::Q) };
        let minatar = NetSpec::new(vec![4, 10, 10], 3, Torso::MinatarCnn, HeadKind::ActorCritic);
        let rect = |y0, y1, x0, x1| Rect { y0, y1, x0, x1 };
        let cases = [
            (nature, vec![rect(20, 61, 30, 71), rect(0, 21, 64, 84), rect(83, 84, 0, 1), rect(0, 84, 0, 84)]),
            (minatar, vec![rect(2, 5, 3, 4), rect(0, 10, 9, 10), rect(0, 10, 0, 10)]),
        ];
        for (spec, rects) in cases {
            let net = Net::new(&spec, &d).unwrap();
            let local = LocalConvs::of(&net).expect("a convolutional network");
            let [c, h, w] = spec.obs_shape[..] else { unreachable!() };
            let frame = random(c * h * w, &d);
            let base = local.base(&frame);
            let last = format!("conv{}.relu", net.conv_geometries().len());
            let whole = |x: &[f32]| {
                let pass = Pass { probe: Some(last.clone()), ..Pass::default() };
                let t = Tensor::<1>::from_floats(x, &d).reshape([1, x.len()]);
                to_vec(net.forward(t, &pass).probe.unwrap().activation)
            };
            let close = |a: &[f32], b: &[f32], what: &str| {
                for (j, (a, b)) in a.iter().zip(b).enumerate() {
                    assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{what}, feature {j}: {a} vs {b}");
                }
            };
            close(base.features(), &whole(&frame), "base");
            for sq in rects {
                let mut x = frame.clone();
                let noise = random(x.len(), &d);
                for (ch, y, xx) in (0..c).flat_map(|ch| sq.positions().map(move |(y, xx)| (ch, y, xx))) {
                    x[(ch * h + y) * w + xx] = noise[(ch * h + y) * w + xx];
                }
                let want = whole(&x);
                let read = local.reads(sq);
                for (ch, y, xx) in (0..c).flat_map(|ch| (0..h).flat_map(move |y| (0..w).map(move |xx| (ch, y, xx)))) {
                    if !(read.y0..read.y1).contains(&y) || !(read.x0..read.x1).contains(&xx) {
                        x[(ch * h + y) * w + xx] = 1e30;
                    }
                }
                let mut out = vec![0.0; local.feature_len()];
                local.features(&base, &x, sq, &mut out);
                close(&out, &want, &format!("{sq:?}"));
            }
        }
    }
}
