//! The classification loss: cross-entropy with label smoothing, as PyTorch's
//! `F.cross_entropy(logits, y, label_smoothing = eps)` computes it (mean over the batch).
//!
//! `loss = -mean_b sum_k q[b, k] * log_softmax(logits)[b, k]`, with
//! `q = (1 - eps) * onehot(y) + eps / K`.

use burn::tensor::{Tensor, TensorData, activation};

/// Cross-entropy of `logits` `[B, K]` against class indices `targets` (`B` of them), with
/// label smoothing `eps` in `[0, 1)`. Returns a one-element tensor.
///
/// # Panics
/// If `targets.len() != B` or a target is `>= K`: the loader and class map guarantee both.
pub fn cross_entropy(logits: Tensor<2>, targets: &[usize], eps: f64) -> Tensor<1> {
    let [b, k] = logits.dims();
    assert_eq!(targets.len(), b, "one target per logit row");
    let off = (eps / k as f64) as f32;
    let on = (1.0 - eps) as f32 + off;
    let mut q = vec![off; b * k];
    for (row, &t) in targets.iter().enumerate() {
        assert!(t < k, "target {t} outside the {k} classes of the head");
        q[row * k + t] = on;
    }
    let device = logits.device();
    let q = Tensor::<2>::from_data(TensorData::new(q, [b, k]), &device);
    let logp = activation::log_softmax(logits, 1);
    (logp * q).sum().neg() / b as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    fn value(t: Tensor<1>) -> f32 {
        t.into_data().try_to_vec::<f32>().unwrap()[0]
    }

    #[test]
    fn matches_hand_computed_cross_entropy() {
        let d = Device::flex();
        let logits = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 0.0, 0.0, 0.0], [2, 3]),
            &d,
        );
        // Row 0, target 2: log-sum-exp(1,2,3) - 3 = 0.407606; row 1, target 0: ln 3 = 1.098612.
        let plain = value(cross_entropy(logits.clone(), &[2, 0], 0.0));
        assert!(
            (plain - (0.407_606 + 1.098_612) / 2.0).abs() < 1e-5,
            "{plain}"
        );
        // With eps = 0.3 q = [0.1, 0.1, 0.8] and [0.8, 0.1, 0.1]: (0.707606 + 1.098612) / 2.
        let smooth = value(cross_entropy(logits, &[2, 0], 0.3));
        assert!((smooth - 0.903_109).abs() < 1e-5, "{smooth}");
    }
}
