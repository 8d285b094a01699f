//! A fully connected layer's product `x·W` (`x` `[m, k]`, `W` `[k, n]` row-major, as burn's `Linear` stores it)
//! whose backward computes the input gradient as `(W·gᵀ)ᵀ` rather than `g·Wᵀ`.
//!
//! Why: with a large weight and few rows, gemm handles `g·Wᵀ` by packing the whole transposed weight with strided
//! reads. For the Nature CNN's first fully connected layer (3136×512) that costs 1.9 ms at 8 rows and 2.4 ms at 32,
//! against 0.33 and 0.70 ms for the same product written as `(W·gᵀ)ᵀ` (`cargo run --release -p xrl-cli -- bench
//! nets` and `bench explain` measure the effect on whole steps; `docs/BENCHMARKS.md`). Smaller weights keep burn's
//! own matmul, which is faster for them. The weight gradient is `xᵀ·g` either way.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, binary};
use burn::backend::ops::FloatTensorOps;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension, tensor::FloatTensor};
use burn::nn::Linear;
use burn::tensor::Tensor;

/// Weights with at least this many entries take the `(W·gᵀ)ᵀ` backward (Nature's fc1 has 1.6M; MinAtar's 131k,
/// for which `g·Wᵀ` is faster: 0.12 vs 0.18 ms at 32 rows).
const BIG_WEIGHT: usize = 1 << 20;

#[backend_extension(Flex, Autodiff)]
pub trait BigWeightMatmul: Backend {
    /// `x·w`, with the input gradient computed as `(w·gᵀ)ᵀ`.
    fn big_weight_matmul(x: FloatTensor<Self>, w: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl BigWeightMatmul for Flex {
    fn big_weight_matmul(x: FloatTensor<Self>, w: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::float_matmul(x, w)
    }
}

#[derive(Debug)]
struct BigWeightBackward;

impl<B: Backend> Backward<B, 2> for BigWeightBackward {
    /// (x when the weight takes a gradient, w when the input does).
    type State = (Option<B::FloatTensorPrimitive>, Option<B::FloatTensorPrimitive>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (x, w) = ops.state;
        binary::<B, _, _>(
            ops.parents,
            ops.node,
            grads,
            |g| {
                let w = w.expect("the weight is kept when the input takes a gradient");
                B::float_transpose(B::float_matmul(w, B::float_transpose(g)))
            },
            |g| B::float_matmul(B::float_transpose(x.expect("the input is kept when the weight takes a gradient")), g),
        );
    }
}

impl<B: Backend, C: CheckpointStrategy> BigWeightMatmul for Autodiff<B, C> {
    fn big_weight_matmul(x: FloatTensor<Self>, w: FloatTensor<Self>) -> FloatTensor<Self> {
        let (x_tracked, w_tracked) = (x.is_tracked(), w.is_tracked());
        match BigWeightBackward.prepare::<C>([x.node(), w.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (x, w) = (x.into_primitive(), w.into_primitive());
                let state = (w_tracked.then(|| x.clone()), x_tracked.then(|| w.clone()));
                prep.finish(state, B::float_matmul(x, w))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::float_matmul(x.into_primitive(), w.into_primitive())),
        }
    }
}

/// `layer.forward(x)` for `[batch, in]` inputs, with the big-weight backward where it is faster.
pub fn linear(layer: &Linear, x: Tensor<2>) -> Tensor<2> {
    let w = layer.weight.val();
    if w.shape().num_elements() < BIG_WEIGHT {
        return layer.forward(x);
    }
    let out =
        Tensor::from_dispatch(<Dispatch as BigWeightMatmul>::big_weight_matmul(x.into_dispatch(), w.into_dispatch()));
    match &layer.bias {
        Some(b) => out + b.val().unsqueeze::<2>(),
        None => out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::LinearConfig;
    use burn::tensor::{Device, Distribution};

    /// Output and both gradients equal burn's own `Linear` (whose backward is `g·Wᵀ` and `xᵀ·g`).
    #[test]
    fn matches_burns_linear_forward_and_gradients() {
        let d = Device::flex().autodiff();
        d.seed(3);
        let layer = LinearConfig::new(2048, 600).init(&d);
        let x = Tensor::<2>::random([5, 2048], Distribution::Uniform(-1.0, 1.0), &d).require_grad();
        let g = Tensor::<2>::random([5, 600], Distribution::Uniform(-1.0, 1.0), &d);
        let ours = linear(&layer, x.clone());
        let theirs = layer.forward(x.clone());
        let (go, gt) = ((ours.clone() * g.clone()).sum().backward(), (theirs.clone() * g).sum().backward());
        let close = |a: Vec<f32>, b: Vec<f32>| {
            let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(a.iter().zip(&b).all(|(p, q)| (p - q).abs() <= 1e-5 * scale), "differ beyond 1e-5 of {scale}");
        };
        use crate::nn::to_vec as v;
        close(v(ours), v(theirs));
        close(v(x.grad(&go).unwrap()), v(x.grad(&gt).unwrap()));
        let w = layer.weight.val();
        close(v(w.grad(&go).unwrap()), v(w.grad(&gt).unwrap()));
        let b = layer.bias.as_ref().unwrap().val();
        close(v(b.grad(&go).unwrap()), v(b.grad(&gt).unwrap()));
    }
}
