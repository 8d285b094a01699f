//! ReLU with the backward passes that saliency methods need, switched per call on the same network.
//!
//! * [`ReluMode::Normal`]: `dx = dy · [x > 0]`.
//! * [`ReluMode::Guided`] (Springenberg et al. 2015): `dx = relu(dy) · [x > 0]` — only positive gradient flows
//!   back through positive activations.
//! * [`ReluMode::Deconv`] (Zeiler & Fergus 2014): `dx = relu(dy)` — the forward mask is ignored.
//!
//! The forward pass is the plain ReLU in every mode; only autodiff's backward differs. It is a burn backend
//! extension with a hand-written backward for the autodiff backend, so guided backprop runs through the very
//! network being explained, never a modified copy of it.

// burn deprecates its NdArray backend in favour of Flex; xrl keeps it (feature `ndarray`) as the second CPU backend
// its tests run on, so naming it here is intended.
#![cfg_attr(feature = "ndarray", allow(deprecated))]

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::ops::ActivationOps;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension, tensor::FloatTensor};
use burn::tensor::Tensor;
use burn::tensor::activation::relu;

/// How a ReLU passes gradients back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReluMode {
    #[default]
    Normal,
    Guided,
    Deconv,
}

// Every backend a network may run on is listed: burn panics when an extension is called on a backend it does not
// list, and guided backprop and deconvnet must work wherever the network does (the Autodiff impl below is generic over
// the inner backend; each listed inner backend needs only the plain forward).
#[backend_extension(Flex, NdArray: cfg(feature = "ndarray"), Cube: cfg(feature = "cuda"), Autodiff)]
pub trait ReluBackward: Backend {
    /// ReLU whose backward is `relu(dy) · [x > 0]`.
    fn guided_relu(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// ReLU whose backward is `relu(dy)`.
    fn deconv_relu(x: FloatTensor<Self>) -> FloatTensor<Self>;
}

// Without autodiff there is no backward pass: both are the plain ReLU, on every listed backend.
macro_rules! plain_relu {
    ($($(#[$cfg:meta])* $backend:ty),*) => {$(
        $(#[$cfg])*
        impl ReluBackward for $backend {
            fn guided_relu(x: FloatTensor<Self>) -> FloatTensor<Self> {
                Self::relu(x)
            }
            fn deconv_relu(x: FloatTensor<Self>) -> FloatTensor<Self> {
                Self::relu(x)
            }
        }
    )*};
}

plain_relu!(
    Flex,
    #[cfg(feature = "ndarray")]
    burn::backend::NdArray,
    #[cfg(feature = "cuda")]
    burn::backend::Cube
);

#[derive(Debug)]
struct GuidedBackward;

impl<B: Backend> Backward<B, 1> for GuidedBackward {
    /// The forward output relu(x): positive exactly where x > 0.
    type State = B::FloatTensorPrimitive;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let output = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| B::relu_backward(output, B::relu(grad)));
    }
}

#[derive(Debug)]
struct DeconvBackward;

impl<B: Backend> Backward<B, 1> for DeconvBackward {
    type State = ();

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        unary::<B, _>(ops.parents, ops.node, grads, |grad| B::relu(grad));
    }
}

impl<B: Backend, C: CheckpointStrategy> ReluBackward for Autodiff<B, C> {
    fn guided_relu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match GuidedBackward.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let out = B::relu(x.into_primitive());
                prep.finish(out.clone(), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::relu(x.into_primitive())),
        }
    }

    fn deconv_relu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let prep = DeconvBackward.prepare::<C>([x.node()]).compute_bound();
        prep.stateless(B::relu(x.into_primitive()))
    }
}

/// ReLU with the given backward behaviour.
pub fn relu_with<const D: usize>(x: Tensor<D>, mode: ReluMode) -> Tensor<D> {
    match mode {
        ReluMode::Normal => relu(x),
        ReluMode::Guided => Tensor::from_dispatch(<Dispatch as ReluBackward>::guided_relu(x.into_dispatch())),
        ReluMode::Deconv => Tensor::from_dispatch(<Dispatch as ReluBackward>::deconv_relu(x.into_dispatch())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-computed case of shared/research/BACKEND.md: x = [−1, 2, 3, −4, 5], L = Σ w·relu(x) with
    /// w = [1, −1, 2, 3, −2].
    fn grad(mode: ReluMode) -> Vec<f32> {
        let d = crate::device::for_tests().autodiff();
        let x = Tensor::<1>::from_floats([-1.0, 2.0, 3.0, -4.0, 5.0], &d).require_grad();
        let w = Tensor::<1>::from_floats([1.0, -1.0, 2.0, 3.0, -2.0], &d);
        let loss = (relu_with(x.clone(), mode) * w).sum();
        crate::to_vec(x.grad(&loss.backward()).unwrap())
    }

    #[test]
    fn backward_of_each_mode_by_hand() {
        assert_eq!(grad(ReluMode::Normal), vec![0.0, -1.0, 2.0, 0.0, -2.0]);
        assert_eq!(grad(ReluMode::Guided), vec![0.0, 0.0, 2.0, 0.0, 0.0]);
        assert_eq!(grad(ReluMode::Deconv), vec![1.0, 0.0, 2.0, 3.0, 0.0]);
    }

    #[test]
    fn forward_is_the_plain_relu_in_every_mode() {
        let d = crate::device::for_tests();
        for mode in [ReluMode::Normal, ReluMode::Guided, ReluMode::Deconv] {
            let y = relu_with(Tensor::<2>::from_floats([[-1.0, 0.5], [2.0, -3.0]], &d), mode);
            assert_eq!(crate::to_vec(y), vec![0.0, 0.5, 2.0, 0.0]);
        }
    }
}
