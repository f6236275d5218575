//! Predictions of a model over a list of entries with the test protocol's views: the
//! validation pass of training and `vidapter eval` both use it.

use std::sync::Arc;

use burn::module::Module;
use burn::tensor::Device;
use indicatif::ProgressBar;

use crate::data::loader::{self, ClipSpec, LoaderConfig};
use crate::data::{Entry, Problem};
use crate::error::{Error, Result};
use crate::methods::VideoClassifier;

/// What a model said about a list of entries.
#[derive(Debug, Clone)]
pub struct Predictions {
    /// `[N, K]` probabilities, views averaged as probabilities.
    pub probs: Vec<f32>,
    /// First label of each predicted entry.
    pub labels: Vec<usize>,
    /// Index of each predicted entry in the entry list.
    pub entries: Vec<usize>,
    /// Entries that could not be read (left out).
    pub problems: Vec<Problem>,
}

/// Softmax probabilities of `model` over `entries` with the test views of `cfg`.
pub fn predict_probs(
    model: &VideoClassifier,
    entries: Arc<Vec<Entry>>,
    spec: Arc<ClipSpec>,
    cfg: &LoaderConfig,
    device: &Device,
    bar: &ProgressBar,
) -> Result<Predictions> {
    let order = loader::epoch_order(entries.len(), cfg, 0);
    predict_order(model, entries, order, spec, cfg, device, bar)
}

/// [`predict_probs`] shared among the ranks of `group` (none: this process alone): rank `r`
/// predicts the entries `r, r + N, r + 2N, ...`, then every rank receives every rank's
/// probabilities, so all of them return what one process would (entries in list order, the
/// unreadable left out). An entry another rank could not read is listed as a problem that
/// names that rank, whose own log says why.
///
/// # Errors
/// Those of [`predict_probs`]; a peer that stopped.
pub fn predict_probs_shared(
    model: &VideoClassifier,
    entries: Arc<Vec<Entry>>,
    spec: Arc<ClipSpec>,
    cfg: &LoaderConfig,
    device: &Device,
    bar: &ProgressBar,
    group: Option<&crate::dist::Group>,
) -> Result<Predictions> {
    let Some(group) = group else {
        return predict_probs(model, entries, spec, cfg, device, bar);
    };
    let (rank, world, n) = (group.rank(), group.size(), entries.len());
    let order: Vec<usize> = (rank..n).step_by(world).collect();
    let own = predict_order(model, entries.clone(), order, spec, cfg, device, bar)?;
    let k = model.classes();
    // Per entry: status (1 predicted, 2 unreadable), label, K probabilities.
    let row = k + 2;
    let mut flat = vec![0f32; n * row];
    for (j, &i) in own.entries.iter().enumerate() {
        flat[i * row] = 1.0;
        flat[i * row + 1] = own.labels[j] as f32;
        flat[i * row + 2..(i + 1) * row].copy_from_slice(&own.probs[j * k..(j + 1) * k]);
    }
    for i in (rank..n).step_by(world) {
        if flat[i * row] == 0.0 {
            flat[i * row] = 2.0;
        }
    }
    group.all_reduce_sum(&mut flat, "the predictions")?;
    let mut out = Predictions {
        probs: Vec::with_capacity(n * k),
        labels: Vec::with_capacity(n),
        entries: Vec::with_capacity(n),
        problems: own.problems,
    };
    for i in 0..n {
        let r = &flat[i * row..(i + 1) * row];
        if r[0] == 1.0 {
            out.labels.push(r[1].round() as usize);
            out.entries.push(i);
            out.probs.extend_from_slice(&r[2..]);
        } else if i % world != rank {
            out.problems.push(Problem {
                path: entries[i].source.path().to_path_buf(),
                line: None,
                reason: format!(
                    "left out as unreadable by rank {} (its log says why)",
                    i % world
                ),
            });
        }
    }
    Ok(out)
}

/// [`predict_probs`] over the entries `order` (indices into `entries`).
fn predict_order(
    model: &VideoClassifier,
    entries: Arc<Vec<Entry>>,
    order: Vec<usize>,
    spec: Arc<ClipSpec>,
    cfg: &LoaderConfig,
    device: &Device,
    bar: &ProgressBar,
) -> Result<Predictions> {
    let model = model.valid();
    let k = model.classes();
    let mut probs = Vec::new();
    let mut labels = Vec::new();
    let mut ids = Vec::new();
    let mut epoch = loader::epoch_with_order(entries, order, spec, cfg, 0);
    for batch in epoch.by_ref() {
        let batch = batch.map_err(|p| Error::UnreadableClip(p.to_string()))?;
        if batch.entries.is_empty() {
            continue;
        }
        let logits = model
            .forward(batch.tensor(device), None)
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("f32");
        // [B*V, K] logits, views of an entry together -> [B, K] mean probabilities.
        probs.extend(crate::eval::aggregate_views(
            &logits,
            batch.views,
            k,
            crate::eval::Aggregate::Prob,
        )?);
        for (e, lab) in batch.labels.iter().enumerate() {
            labels.push(lab[0]);
            ids.push(batch.entries[e]);
        }
        bar.inc(batch.entries.len() as u64);
    }
    Ok(Predictions {
        probs,
        labels,
        entries: ids,
        problems: epoch.problems(),
    })
}
