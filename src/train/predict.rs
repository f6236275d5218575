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
    let model = model.valid();
    let k = model.classes();
    let mut probs = Vec::new();
    let mut labels = Vec::new();
    let mut ids = Vec::new();
    let mut epoch = loader::epoch(entries, spec, cfg, 0);
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
