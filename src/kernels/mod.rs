//! Hand-written CPU kernels where burn's general operations leave a measured gap: burn
//! backend extensions with a Flex (CPU) implementation, a hand-written backward under
//! autodiff, and burn's own operations on every other device.

pub mod adamw;
pub mod attention;
pub mod depthwise;
pub mod gelu;
pub mod linear;
mod simd;

pub use attention::{attention, self_attention};
pub use depthwise::{DepthwiseGeom, depthwise_conv3d};
pub use gelu::gelu;
pub use linear::linear;

use std::borrow::Cow;

use burn::backend::DispatchDevice;
use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, Tensor, TensorData};

/// Whether `t` is an f32 tensor on the Flex backend (with or without autodiff).
pub(crate) fn native<const D: usize>(t: &Tensor<D>) -> bool {
    t.dtype() == DType::F32 && matches!(t.device().inner().as_dispatch(), DispatchDevice::Flex(_))
}

/// Contiguous f32 values of a Flex tensor.
pub(crate) fn values(t: &FlexTensor) -> Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(
            t.to_contiguous()
                .as_slice::<f32>()
                .expect("a contiguous f32 tensor")
                .to_vec(),
        ),
    }
}

/// Whether `t`'s buffer holds exactly its f32 values, in order from its start (so that the
/// whole storage is the values: no view offset, stride or spare bytes).
pub(crate) fn holds_exactly(t: &FlexTensor) -> bool {
    let n = t.layout().num_elements();
    t.layout().contiguous_offsets() == Some((0, n)) && t.bytes().len() == n * 4
}

/// A contiguous Flex tensor of `values`.
pub(crate) fn tensor(values: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// `dst (m x n, row-major, contiguous) = [dst +] beta * lhs (m x k) @ rhs (k x n)` with the
/// `gemm` crate (the one burn's CPU backend uses); operands are `(pointer, row stride, column
/// stride)` in floats, `accumulate` adds to what `dst` holds instead of overwriting it.
///
/// # Safety
/// The pointers and strides must address `m x k` and `k x n` valid elements.
pub(crate) unsafe fn gemm_strided(
    dst: &mut [f32],
    accumulate: bool,
    [m, n, k]: [usize; 3],
    (lhs, lhs_rs, lhs_cs): (*const f32, isize, isize),
    (rhs, rhs_rs, rhs_cs): (*const f32, isize, isize),
    beta: f32,
    parallelism: gemm::Parallelism,
) {
    assert_eq!(
        dst.len(),
        m * n,
        "gemm output of {} for {m} x {n}",
        dst.len()
    );
    if dst.is_empty() {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst.fill(0.0);
        }
        return;
    }
    // SAFETY: the caller's contract for the operands; `dst` is exclusively borrowed and
    // `m * n` long, written with strides `(n, 1)`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs,
            lhs_cs,
            lhs_rs,
            rhs,
            rhs_cs,
            rhs_rs,
            1.0,
            beta,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// Whether the CPU has AVX2 and FMA (the kernels' vectorised paths).
pub(crate) fn has_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Asserts that `a` and `b` agree elementwise within `tol` times `b`'s largest magnitude.
#[cfg(test)]
pub(crate) fn assert_close<const D: usize>(a: Tensor<D>, b: Tensor<D>, tol: f32, what: &str) {
    let a = a.into_data().try_to_vec::<f32>().unwrap();
    let b = b.into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(a.len(), b.len(), "{what}: length");
    let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            (x - y).abs() <= tol * scale,
            "{what}[{i}]: {x} vs {y} (scale {scale})"
        );
    }
}
