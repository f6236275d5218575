//! `bench backbone`'s operator table: one ViT-B/16 block's operations, each timed alone on
//! the shapes the forward pass gives it (both sides the same list, in the same order; the
//! PyTorch side is in `scripts/bench_backbone_torch.py`). The block's sum times the number of
//! layers accounts for nearly all of the forward, so the table says where its time goes.

use std::time::Instant;

use burn::nn::{LayerNormConfig, LinearConfig};
use burn::tensor::{Device, Distribution, Tensor};
use serde::Serialize;

use crate::kernels::linear;

/// The block's operations in forward order (pre-norm ViT block, as `backbone::vit`).
pub const BLOCK_OPS: [&str; 11] = [
    "layer_norm (attention)",
    "qkv linear [C, 3C]",
    "attention (split, fused)",
    "merge heads (copy)",
    "out linear [C, C]",
    "residual add",
    "layer_norm (MLP)",
    "fc1 linear [C, 4C]",
    "gelu (erf)",
    "fc2 linear [4C, C]",
    "residual add (MLP)",
];

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct OpRow {
    /// The operation (see [`BLOCK_OPS`]).
    pub op: String,
    /// vidapter's median ms.
    pub vidapter_ms: f64,
    /// PyTorch's median ms, when it ran.
    pub pytorch_ms: Option<f64>,
    /// Floating-point operations of one call (matrix products only).
    pub flops: f64,
}

/// Medians of each operation of one block: `[frames, tokens, 768]` in, 12 heads, GELU MLP.
pub fn time_block(frames: usize, tokens: usize, iters: usize, device: &Device) -> Vec<Vec<f64>> {
    let (c, heads) = (768, 12);
    let ln1 = LayerNormConfig::new(c).init(device);
    let ln2 = LayerNormConfig::new(c).init(device);
    let qkv = LinearConfig::new(c, 3 * c).init(device);
    let out = LinearConfig::new(c, c).init(device);
    let fc1 = LinearConfig::new(c, 4 * c).init(device);
    let fc2 = LinearConfig::new(4 * c, c).init(device);
    let x = Tensor::<3>::random([frames, tokens, c], Distribution::Normal(0.0, 1.0), device);

    let mut samples = vec![Vec::new(); BLOCK_OPS.len()];
    let mut time = |i: usize, run: &mut dyn FnMut()| {
        for k in 0..iters + 1 {
            let t0 = Instant::now();
            run();
            let _ = device.sync();
            if k > 0 {
                samples[i].push(t0.elapsed().as_secs_f64() * 1000.0);
            }
        }
    };
    // Each operation's input is the previous one's output, computed once outside the timing.
    let xn = ln1.forward(x.clone());
    time(0, &mut || drop(ln1.forward(x.clone())));
    let packed = linear(&qkv, xn.clone());
    time(1, &mut || drop(linear(&qkv, xn.clone())));
    let attend = || crate::kernels::self_attention(packed.clone(), heads);
    time(2, &mut || drop(attend()));
    let mixed = attend();
    let merge = |t: Tensor<4>| t.swap_dims(1, 2).reshape([frames, tokens, c]);
    time(3, &mut || drop(merge(mixed.clone())));
    let merged = merge(mixed);
    time(4, &mut || drop(linear(&out, merged.clone())));
    let attended = linear(&out, merged);
    time(5, &mut || drop(x.clone() + attended.clone()));
    let x2 = x + attended;
    time(6, &mut || drop(ln2.forward(x2.clone())));
    let xn2 = ln2.forward(x2.clone());
    time(7, &mut || drop(linear(&fc1, xn2.clone())));
    let hidden = linear(&fc1, xn2);
    time(8, &mut || drop(crate::kernels::gelu(hidden.clone())));
    let act = crate::kernels::gelu(hidden);
    time(9, &mut || drop(linear(&fc2, act.clone())));
    let mlp = linear(&fc2, act);
    time(10, &mut || drop(x2.clone() + mlp.clone()));
    samples
}

/// Multiply-add flops of each operation (2 per multiply-add; zero for the rest).
pub fn block_flops(frames: usize, tokens: usize) -> Vec<f64> {
    let (m, c) = ((frames * tokens) as f64, 768.0);
    let attention = 2.0 * 2.0 * frames as f64 * (tokens * tokens) as f64 * c;
    let mut f = vec![0.0; BLOCK_OPS.len()];
    f[1] = 2.0 * m * c * 3.0 * c;
    f[2] = attention;
    f[4] = 2.0 * m * c * c;
    f[7] = 2.0 * m * c * 4.0 * c;
    f[9] = 2.0 * m * 4.0 * c * c;
    f
}

/// The table as printed: per operation both sides' ms, their ratio, vidapter's GFLOP/s for the
/// matrix products and its share of the block.
pub fn render(rows: &[OpRow], layers: usize) -> String {
    let total: f64 = rows.iter().map(|r| r.vidapter_ms).sum();
    let their_total: Option<f64> = rows.iter().map(|r| r.pytorch_ms).sum();
    let mut out = format!(
        "one block, op by op (median ms of each alone; x{layers} layers = the forward):\n{:<24} {:>9} {:>9} {:>6} {:>7} {:>6}\n",
        "op", "vidapter", "PyTorch", "ratio", "GFLOP/s", "share"
    );
    let cell = |v: Option<f64>, prec: usize| v.map_or("-".to_string(), |v| format!("{v:.prec$}"));
    for r in rows {
        let gflops = (r.flops > 0.0).then(|| r.flops / (r.vidapter_ms * 1e6));
        out.push_str(&format!(
            "{:<24} {:>9.2} {:>9} {:>6} {:>7} {:>5.1}%\n",
            r.op,
            r.vidapter_ms,
            cell(r.pytorch_ms, 2),
            cell(r.pytorch_ms.map(|p| r.vidapter_ms / p), 2),
            cell(gflops, 0),
            100.0 * r.vidapter_ms / total
        ));
    }
    out.push_str(&format!(
        "{:<24} {:>9.2} {:>9} {:>6}\n",
        "block",
        total,
        cell(their_total, 2),
        cell(their_total.map(|p| total / p), 2)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(op: &str, ours: f64, theirs: Option<f64>, flops: f64) -> OpRow {
        OpRow {
            op: op.into(),
            vidapter_ms: ours,
            pytorch_ms: theirs,
            flops,
        }
    }

    #[test]
    fn the_table_gives_ratios_throughput_and_shares() {
        let rows = [
            row("fc1 linear [C, 4C]", 30.0, Some(20.0), 3.0e9),
            row("gelu (erf)", 10.0, Some(5.0), 0.0),
        ];
        let text = render(&rows, 12);
        assert!(text.contains("x12 layers"), "{text}");
        assert!(
            text.contains("fc1 linear [C, 4C]           30.00     20.00   1.50     100  75.0%"),
            "{text}"
        );
        assert!(
            text.contains("gelu (erf)                   10.00      5.00   2.00       -  25.0%"),
            "{text}"
        );
        assert!(
            text.contains("block                        40.00     25.00   1.60"),
            "{text}"
        );
        // Without PyTorch: dashes, and no block ratio.
        let text = render(&[row("gelu (erf)", 10.0, None, 0.0)], 12);
        assert!(
            text.contains("block                        10.00         -      -"),
            "{text}"
        );
    }

    #[test]
    fn every_operation_is_timed_once_per_iteration() {
        let samples = time_block(1, 5, 2, &Device::flex());
        assert_eq!(samples.len(), BLOCK_OPS.len());
        assert!(
            samples
                .iter()
                .all(|s| s.len() == 2 && s.iter().all(|&ms| ms >= 0.0))
        );
        let flops = block_flops(8, 197);
        assert_eq!(flops[7], 2.0 * 1576.0 * 768.0 * 3072.0);
    }
}
