//! Branch-free element functions and row reductions shared by the kernels, written so that
//! the compiler vectorises them; each row function has an AVX2+FMA build chosen at run time
//! (`fma`, from [`super::has_fma`]).

/// Lanes of the partial sums in row reductions (float addition is not associative, so a
/// single running sum would keep the loop scalar).
const LANES: usize = 8;

/// `a * b + c`, fused where the CPU has FMA (`F`), else two roundings.
#[inline(always)]
pub(crate) fn madd<const F: bool>(a: f32, b: f32, c: f32) -> f32 {
    if F { a.mul_add(b, c) } else { a * b + c }
}

/// exp for arguments at most ~88: `2^n * e^r` with `n = round(x / ln 2)`, `|r| <= ln(2)/2`,
/// `e^r` by Cephes' `expf` polynomial; about 1.6e-38 below -87. Branch-free and without a
/// float-to-integer conversion (the rounding is the float adder's, by the 1.5 * 2^23 trick),
/// so that it vectorises.
#[inline(always)]
pub(crate) fn exp<const F: bool>(x: f32) -> f32 {
    // 1.5 * 2^23: adding it leaves round(v) in the low mantissa bits for |v| < 2^22.
    const SHIFTER: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let shifted = madd::<F>(x, std::f32::consts::LOG2_E, SHIFTER);
    let n = shifted - SHIFTER;
    // ln 2 in two parts, so that `n * ln 2` is exact enough.
    let r = madd::<F>(n, 2.121_944_4e-4, madd::<F>(n, -0.693_359_4, x));
    let mut p = madd::<F>(1.987_569_1e-4, r, 1.398_2e-3);
    for c in [8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5] {
        p = madd::<F>(p, r, c);
    }
    let er = madd::<F>(p, r * r, r + 1.0);
    // 2^n from n's two's-complement bits (wrapping: `n` is within [-126, 127] here).
    let bits = shifted.to_bits().wrapping_sub(SHIFTER.to_bits());
    er * f32::from_bits(bits.wrapping_add(127) << 23)
}

/// Softmax of `row` in place; returns its log-sum-exp (`-inf` for an all `-inf` row, which
/// becomes zeros).
pub(crate) fn softmax_row(row: &mut [f32], fma: bool) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if fma {
        // SAFETY: `fma` is true only when the CPU reports AVX2 and FMA.
        return unsafe { softmax_row_fma(row) };
    }
    let _ = fma;
    softmax_row_body::<false>(row)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn softmax_row_fma(row: &mut [f32]) -> f32 {
    softmax_row_body::<true>(row)
}

#[inline(always)]
fn softmax_row_body<const F: bool>(row: &mut [f32]) -> f32 {
    let mut m = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for c in &mut chunks {
        for l in 0..LANES {
            m[l] = m[l].max(c[l]);
        }
    }
    for &x in chunks.remainder() {
        m[0] = m[0].max(x);
    }
    let max = m.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    if max == f32::NEG_INFINITY {
        row.fill(0.0);
        return max;
    }
    let mut s = [0.0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for l in 0..LANES {
            let e = exp::<F>(c[l] - max);
            c[l] = e;
            s[l] += e;
        }
    }
    for x in chunks.into_remainder() {
        *x = exp::<F>(*x - max);
        s[0] += *x;
    }
    let sum: f32 = s.iter().sum();
    let inv = 1.0 / sum;
    for x in row.iter_mut() {
        *x *= inv;
    }
    max + sum.ln()
}

/// `row[j] = exp(row[j] - shift)`.
pub(crate) fn exp_shifted_row(row: &mut [f32], shift: f32, fma: bool) {
    #[cfg(target_arch = "x86_64")]
    if fma {
        // SAFETY: as in `softmax_row`.
        unsafe { exp_shifted_row_fma(row, shift) };
        return;
    }
    let _ = fma;
    for x in row {
        *x = exp::<false>(*x - shift);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn exp_shifted_row_fma(row: &mut [f32], shift: f32) {
    for x in row {
        *x = exp::<true>(*x - shift);
    }
}

/// The softmax's backward on one row: `dp[j] = scale * p[j] * (dp[j] - sum_i p[i] dp[i])`.
pub(crate) fn softmax_grad_row(dp: &mut [f32], p: &[f32], scale: f32, fma: bool) {
    #[cfg(target_arch = "x86_64")]
    if fma {
        // SAFETY: as in `softmax_row`.
        unsafe { softmax_grad_row_fma(dp, p, scale) };
        return;
    }
    let _ = fma;
    softmax_grad_row_body::<false>(dp, p, scale);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn softmax_grad_row_fma(dp: &mut [f32], p: &[f32], scale: f32) {
    softmax_grad_row_body::<true>(dp, p, scale);
}

#[inline(always)]
fn softmax_grad_row_body<const F: bool>(dp: &mut [f32], p: &[f32], scale: f32) {
    let mut s = [0.0f32; LANES];
    let (mut a, mut b) = (dp.chunks_exact(LANES), p.chunks_exact(LANES));
    for (x, y) in (&mut a).zip(&mut b) {
        for l in 0..LANES {
            s[l] = madd::<F>(x[l], y[l], s[l]);
        }
    }
    for (x, y) in a.remainder().iter().zip(b.remainder()) {
        s[0] = madd::<F>(*x, *y, s[0]);
    }
    let dot: f32 = s.iter().sum();
    for (d, p) in dp.iter_mut().zip(p) {
        *d = scale * p * (*d - dot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_match_their_scalar_definitions() {
        for fma in [false, super::super::has_fma()] {
            let mut row: Vec<f32> = (0..37)
                .map(|i| ((i * 7919) % 23) as f32 * 0.37 - 4.0)
                .collect();
            let orig = row.clone();
            let lse = softmax_row(&mut row, fma);
            let max = orig.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            let sum: f64 = orig.iter().map(|&x| ((x - max) as f64).exp()).sum();
            assert!((lse as f64 - (max as f64 + sum.ln())).abs() < 1e-5);
            for (p, x) in row.iter().zip(&orig) {
                let want = ((x - max) as f64).exp() / sum;
                assert!((*p as f64 - want).abs() < 1e-6, "{p} vs {want}");
            }
            let mut again = orig.clone();
            exp_shifted_row(&mut again, lse, fma);
            for (a, p) in again.iter().zip(&row) {
                assert!((a - p).abs() < 1e-6);
            }
            let mut dp: Vec<f32> = (0..37).map(|i| (i as f32 * 0.1).sin()).collect();
            let dot: f64 = dp
                .iter()
                .zip(&row)
                .map(|(a, b)| (*a as f64) * (*b as f64))
                .sum();
            let want: Vec<f64> = dp
                .iter()
                .zip(&row)
                .map(|(d, p)| 0.5 * *p as f64 * (*d as f64 - dot))
                .collect();
            softmax_grad_row(&mut dp, &row, 0.5, fma);
            for (g, w) in dp.iter().zip(want) {
                assert!((*g as f64 - w).abs() < 1e-6);
            }
            let mut masked = vec![f32::NEG_INFINITY; 5];
            assert_eq!(softmax_row(&mut masked, fma), f32::NEG_INFINITY);
            assert_eq!(masked, vec![0.0; 5]);
        }
    }
}
