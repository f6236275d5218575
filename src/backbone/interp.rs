//! Position-embedding resampling, written as a linear map so that it runs on any device
//! and is differentiable: the `[g0*g0, C]` trained grid becomes the `[gh*gw, C]` grid of
//! the input by one matrix product with `kron(Wy, Wx)`, where `Wy` (`[gh, g0]`) and `Wx`
//! (`[gw, g0]`) are PyTorch's 1-D bicubic weights.
//!
//! The kernel is PyTorch's `F.interpolate(mode="bicubic", align_corners=False)`
//! (aten/src/ATen/native/UpSample.h): Keys' cubic with A = -0.75, four taps, indices
//! clamped at the border, scale = in / out. transformers 5.x uses exactly this for ViT, CLIP
//! (`interpolate_pos_encoding=True`) and DINOv2 (always; no antialiasing since 5.0).

/// Returns the `[gh*gw, g0h*g0w]` row-major matrix mapping a trained grid to a new one.
pub fn grid_matrix(from: (usize, usize), to: (usize, usize)) -> Vec<f32> {
    let wy = bicubic(from.0, to.0);
    let wx = bicubic(from.1, to.1);
    let (n_in, n_out) = (from.0 * from.1, to.0 * to.1);
    let mut m = vec![0f32; n_out * n_in];
    for oy in 0..to.0 {
        for ox in 0..to.1 {
            let row = (oy * to.1 + ox) * n_in;
            for iy in 0..from.0 {
                let a = wy[oy * from.0 + iy];
                if a == 0.0 {
                    continue;
                }
                for ix in 0..from.1 {
                    m[row + iy * from.1 + ix] = (a * wx[ox * from.1 + ix]) as f32;
                }
            }
        }
    }
    m
}

/// Returns the `[out, inp]` row-major weight matrix of the 1-D resampling.
fn bicubic(inp: usize, out: usize) -> Vec<f64> {
    const A: f64 = -0.75;
    let conv1 = |x: f64| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let conv2 = |x: f64| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    // area_pixel_compute_scale with align_corners=False and no explicit scale factor.
    let scale = inp as f64 / out as f64;
    let mut w = vec![0f64; out * inp];
    for o in 0..out {
        // area_pixel_compute_source_index(cubic=true): no clamp at 0.
        let real = scale * (o as f64 + 0.5) - 0.5;
        let base = real.floor();
        let t = real - base;
        let coeffs = [conv2(t + 1.0), conv1(t), conv1(1.0 - t), conv2(2.0 - t)];
        for (k, c) in coeffs.iter().enumerate() {
            let idx = (base as i64 - 1 + k as i64).clamp(0, inp as i64 - 1) as usize;
            w[o * inp + idx] += c;
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_size_is_identity() {
        let w = bicubic(5, 5);
        for o in 0..5 {
            for i in 0..5 {
                let expect = if o == i { 1.0 } else { 0.0 };
                assert!((w[o * 5 + i] - expect).abs() < 1e-12, "{o} {i}");
            }
        }
    }

    #[test]
    fn rows_sum_to_one() {
        for (i, o) in [(4, 7), (7, 4), (37, 16), (2, 9)] {
            let w = bicubic(i, o);
            for r in 0..o {
                let s: f64 = w[r * i..(r + 1) * i].iter().sum();
                assert!((s - 1.0).abs() < 1e-9, "{i}->{o} row {r}: {s}");
            }
        }
    }

    #[test]
    fn grid_matrix_is_kronecker_of_axes() {
        let m = grid_matrix((2, 3), (3, 2));
        let (wy, wx) = (bicubic(2, 3), bicubic(3, 2));
        for oy in 0..3 {
            for ox in 0..2 {
                for iy in 0..2 {
                    for ix in 0..3 {
                        let got = m[(oy * 2 + ox) * 6 + iy * 3 + ix] as f64;
                        let want = wy[oy * 2 + iy] * wx[ox * 3 + ix];
                        assert!((got - want).abs() < 1e-6);
                    }
                }
            }
        }
    }
}
