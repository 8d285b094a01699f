//! burn-flex buffers for xrl's own backend operations ([`crate::fast::conv`], [`crate::fast::linear`]): read a tensor's f32
//! values, hand new values over as a tensor, and gemm's product on plain slices.

use burn::tensor::{DType, Shape};
use burn_flex::FlexTensor;

/// Whether the CPU has AVX-512F, which xrl's own kernels (`conv`'s direct product, `linear`'s dot products) need;
/// without it they leave the work to gemm.
pub(crate) fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx512f");
    #[allow(unreachable_code)]
    false
}

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

/// `dst = (accumulate ? dst : 0) + lhs·rhs` for an `m×n` result with a `k`-long inner dimension; every matrix is
/// given as (values, row stride, column stride).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    (dst_rs, dst_cs): (usize, usize),
    accumulate: bool,
    lhs: &[f32],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[f32],
    (rhs_rs, rhs_cs): (usize, usize),
    parallel: bool,
) {
    // The last element each matrix is read or written at must lie inside its slice.
    let end = |rows: usize, cols: usize, rs: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs + 1;
    assert!(m > 0 && n > 0 && k > 0, "empty product");
    assert!(dst.len() >= end(m, n, dst_rs, dst_cs) && lhs.len() >= end(m, k, lhs_rs, lhs_cs));
    assert!(rhs.len() >= end(k, n, rhs_rs, rhs_cs));
    let parallelism = if parallel { gemm::Parallelism::Rayon(0) } else { gemm::Parallelism::None };
    // SAFETY: the asserts above keep every access inside the three slices; `dst` is borrowed mutably, so it does
    // not alias `lhs` or `rhs`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_cs as isize,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}
