//! EVL's temporal cross-attention (`TemporalCrossAttention` in its `model.py`): for the
//! patch tokens of frame `t`, the frozen block's attention map from its queries to the keys
//! of frame `t-1` (and, separately, `t+1`), averaged over heads, mixes one learned `C`-vector
//! per relative patch offset.
//!
//! ```text
//! A_prev[t] = mean_h softmax_k(q[t] . k[t-1] / sqrt(c))          [B, T-1, N, N]
//! out[t, p] = sum_k A_prev[t, p, k] * w_prev[offset(p, k)]        [B, T, N, C]
//!           + the same with t+1 and w_next
//! offset(p, k) = (row_p - row_k, col_p - col_k)                   (2gh-1)*(2gw-1) rows
//! ```
//! Class-token rows, frame 0's "previous" and the last frame's "next" side are zero, as in
//! the code. Both tables start at zero, so the module starts silent.

use burn::module::{Module, Param};
use burn::tensor::{Device, IndexingUpdateOp, Int, Tensor, TensorData, activation};

/// EVL's temporal cross-attention (see the module docs).
#[derive(Module, Debug)]
pub(super) struct TemporalCrossAttention {
    /// `[(2gh-1)*(2gw-1), C]`: frame `t` attending to `t-1` (the code's `w1`).
    w_prev: Param<Tensor<2>>,
    /// `[(2gh-1)*(2gw-1), C]`: frame `t` attending to `t+1` (the code's `w2`).
    w_next: Param<Tensor<2>>,
    /// The trained patch grid `(gh, gw)` the tables cover.
    #[module(skip)]
    grid: (usize, usize),
}

/// `[N*N]` row of the offset table for every (query patch, key patch) pair of a `grid`,
/// offsets clamped to what a `trained` grid has.
fn offset_index(grid: (usize, usize), trained: (usize, usize)) -> Vec<i64> {
    let (gh, gw) = grid;
    let (th, tw) = (trained.0 as i64, trained.1 as i64);
    let n = gh * gw;
    let mut idx = Vec::with_capacity(n * n);
    for q in 0..n {
        let (qi, qj) = ((q / gw) as i64, (q % gw) as i64);
        for k in 0..n {
            let (ki, kj) = ((k / gw) as i64, (k % gw) as i64);
            let di = (qi - ki).clamp(1 - th, th - 1) + th - 1;
            let dj = (qj - kj).clamp(1 - tw, tw - 1) + tw - 1;
            idx.push(di * (2 * tw - 1) + dj);
        }
    }
    idx
}

impl TemporalCrossAttention {
    pub(super) fn zeros(grid: (usize, usize), dim: usize, device: &Device) -> Self {
        let offsets = (2 * grid.0 - 1) * (2 * grid.1 - 1);
        TemporalCrossAttention {
            w_prev: Param::from_tensor(Tensor::zeros([offsets, dim], device)),
            w_next: Param::from_tensor(Tensor::zeros([offsets, dim], device)),
            grid,
        }
    }

    /// One direction: `sum_k mean_h softmax_k(q . k / sqrt(c)) * w[offset]`.
    ///
    /// Computed without the `[N, N, C]` table `w[offset(p, k)]` (118 MiB at ViT-B/16's 14 x 14
    /// grid, kept for backward under autodiff): the attention weights are first summed per
    /// offset, `A'[p, o] = sum_{k: offset(p, k) = o} A[p, k]` (a scatter-add into `[N, O]`,
    /// `O = (2gh-1)(2gw-1)`), then `out = A' w`, one matrix product whose weight gradient is
    /// `A'ᵀ dout`.
    ///
    /// # Shapes
    /// - q, k: `[B, T', N, h, c]` (patch tokens), idx: `[N*N]` -> `[B, T', N, C]`
    fn half(q: Tensor<5>, k: Tensor<5>, w: Tensor<2>, idx: Tensor<1, Int>) -> Tensor<4> {
        let [b, t, n, h, c] = q.dims();
        let [offsets, dim] = w.dims();
        let q = q.reshape([b * t, n, h, c]).swap_dims(1, 2) / (c as f64).sqrt(); // [B*T', h, N, c]
        let k = k.reshape([b * t, n, h, c]).permute([0, 2, 3, 1]); // [B*T', h, c, N]
        let attn = activation::softmax(q.matmul(k), 3) // [B*T', h, Nq, Nk]
            .mean_dim(1)
            .reshape([b * t, n, n]); // [B*T', Nq, Nk]
        let idx = idx.reshape([1, n, n]).repeat_dim(0, b * t); // [B*T', Nq, Nk]
        let binned = Tensor::<3>::zeros([b * t, n, offsets], &attn.device()).scatter(
            2,
            idx,
            attn,
            IndexingUpdateOp::Add,
        ); // [B*T', Nq, O]
        binned
            .reshape([b * t * n, offsets])
            .matmul(w) // [B*T'*N, C]
            .reshape([b, t, n, dim])
    }

    /// # Shapes
    /// - q, k: `[B, T, 1+N, h, c]`, grid `(gh, gw)` with `N = gh*gw` -> `[B, T, 1+N, C]`
    pub(super) fn forward(&self, q: Tensor<5>, k: Tensor<5>, grid: (usize, usize)) -> Tensor<4> {
        let [b, t, l, _, _] = q.dims();
        let dim = self.w_prev.dims()[1];
        let device = q.device();
        if t < 2 {
            return Tensor::zeros([b, t, l, dim], &device);
        }
        let n = l - 1;
        let idx = offset_index(grid, self.grid);
        let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [n * n]), &device);
        let q = q.slice_dim(2, 1..l); // [B, T, N, h, c]
        let k = k.slice_dim(2, 1..l);
        let prev = Self::half(
            q.clone().slice_dim(1, 1..t),
            k.clone().slice_dim(1, 0..t - 1),
            self.w_prev.val(),
            idx.clone(),
        ); // [B, T-1, N, C] for frames 1..T
        let next = Self::half(
            q.slice_dim(1, 0..t - 1),
            k.slice_dim(1, 1..t),
            self.w_next.val(),
            idx,
        ); // [B, T-1, N, C] for frames 0..T-1
        let edge = Tensor::<4>::zeros([b, 1, n, dim], &device);
        let patches = Tensor::cat(vec![edge.clone(), prev], 1) + Tensor::cat(vec![next, edge], 1);
        let cls = Tensor::<4>::zeros([b, t, 1, dim], &device);
        Tensor::cat(vec![cls, patches], 2) // [B, T, 1+N, C]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use rand_distr::{Distribution, Normal};

    fn randn(n: usize, rng: &mut StdRng) -> Vec<f32> {
        let normal = Normal::new(0.0f32, 1.0).unwrap();
        (0..n).map(|_| normal.sample(rng)).collect()
    }

    /// EVL's `TemporalCrossAttention.forward` written out as loops over its einsums.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        q: &[f32],
        k: &[f32],
        w: [&[f32]; 2],
        (b, t, l, h, c): (usize, usize, usize, usize, usize),
        (gh, gw): (usize, usize),
        dim: usize,
    ) -> Vec<f32> {
        let at = |x: &[f32], n: usize, f: usize, p: usize, hh: usize, d: usize| {
            x[(((n * t + f) * l + p) * h + hh) * c + d]
        };
        let np = l - 1;
        let mut out = vec![0f32; b * t * l * dim];
        // (query frame, key frame, table) for `ret[:, 1:] += half(q[:, 1:], k[:, :-1], w1)`
        // and `ret[:, :-1] += half(q[:, :-1], k[:, 1:], w2)`.
        let pairs: Vec<(usize, usize, usize)> = (1..t)
            .map(|f| (f, f - 1, 0))
            .chain((0..t - 1).map(|f| (f, f + 1, 1)))
            .collect();
        for n in 0..b {
            for &(fq, fk, which) in &pairs {
                for pq in 0..np {
                    let mut attn = vec![0f32; np];
                    for hh in 0..h {
                        let logits: Vec<f32> = (0..np)
                            .map(|pk| {
                                (0..c)
                                    .map(|d| {
                                        at(q, n, fq, pq + 1, hh, d) / (c as f32).sqrt()
                                            * at(k, n, fk, pk + 1, hh, d)
                                    })
                                    .sum()
                            })
                            .collect();
                        let m = logits.iter().cloned().fold(f32::MIN, f32::max);
                        let z: f32 = logits.iter().map(|v| (v - m).exp()).sum();
                        for pk in 0..np {
                            attn[pk] += (logits[pk] - m).exp() / z / h as f32;
                        }
                    }
                    let (qi, qj) = (pq / gw, pq % gw);
                    for (pk, a) in attn.iter().enumerate() {
                        let (ki, kj) = (pk / gw, pk % gw);
                        let row = (qi + gh - 1 - ki) * (2 * gw - 1) + (qj + gw - 1 - kj);
                        for ch in 0..dim {
                            out[((n * t + fq) * l + pq + 1) * dim + ch] +=
                                a * w[which][row * dim + ch];
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn temporal_cross_attention_matches_the_reference_einsums() {
        let device = Device::flex();
        let mut rng = StdRng::seed_from_u64(3);
        let (b, t, h, c, dim, grid) = (2, 3, 2, 4, 5, (2, 3));
        let l = 1 + grid.0 * grid.1;
        let offsets = (2 * grid.0 - 1) * (2 * grid.1 - 1);
        let (q, k) = (
            randn(b * t * l * h * c, &mut rng),
            randn(b * t * l * h * c, &mut rng),
        );
        let (w1, w2) = (
            randn(offsets * dim, &mut rng),
            randn(offsets * dim, &mut rng),
        );
        let tca = TemporalCrossAttention {
            w_prev: Param::from_tensor(Tensor::from_data(
                TensorData::new(w1.clone(), [offsets, dim]),
                &device,
            )),
            w_next: Param::from_tensor(Tensor::from_data(
                TensorData::new(w2.clone(), [offsets, dim]),
                &device,
            )),
            grid,
        };
        let tensor = |v: &[f32]| {
            Tensor::<5>::from_data(TensorData::new(v.to_vec(), [b, t, l, h, c]), &device)
        };
        let got = tca
            .forward(tensor(&q), tensor(&k), grid)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let want = reference(&q, &k, [&w1, &w2], (b, t, l, h, c), grid, dim);
        let err = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(err < 1e-5, "max abs diff {err}");
        assert!(want.iter().any(|v| v.abs() > 0.1));
    }

    #[test]
    fn offsets_beyond_the_trained_grid_are_clamped() {
        // Trained 2x2 (offsets -1..=1 per axis, 9 rows); a 1x3 grid reaches column offset -2.
        let idx = offset_index((1, 3), (2, 2));
        // Query patch 0 (0, 0) against key patch 2 (0, 2): offset (0, -2) -> (0, -1) -> row 1*3 + 0.
        assert_eq!(idx[2], 3);
        // Same grid as trained: offset (0, 0) is the centre row.
        assert_eq!(offset_index((2, 2), (2, 2))[0], 4);
    }
}
