//! burn-flex buffers for xrl's own backend operations ([`crate::conv`], [`crate::linear`]): read a tensor's f32
//! values, and hand new values over as a tensor.

use burn::tensor::{DType, Shape};
use burn_flex::FlexTensor;

/// The tensor with its f32 values in row-major order from offset 0 (a copy only if it is a strided view).
pub(crate) fn contiguous(t: &FlexTensor) -> FlexTensor {
    assert_eq!(t.dtype(), DType::F32, "xrl's backend operations run in f32");
    if t.is_contiguous() && t.layout().start_offset() == 0 { t.clone() } else { t.to_contiguous() }
}

/// The tensor's shape as an array of its rank.
pub(crate) fn dims<const D: usize>(t: &FlexTensor) -> [usize; D] {
    t.layout().shape().as_slice().try_into().expect("a tensor of the rank the operation takes")
}

/// A tensor that takes `values` as its buffer. (`FlexTensor::empty` zeroes a byte vector and then copies it into a
/// 16-byte-aligned one: two passes over memory before the first value is written.)
pub(crate) fn owned(values: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::new(
        burn::tensor::Bytes::from_elems(values),
        burn_flex::Layout::contiguous(Shape::from(shape)),
        DType::F32,
    )
}
