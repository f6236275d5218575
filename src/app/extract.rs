//! `vidapter extract --config`: a run config's feature cache of one split (the cache itself is
//! [`crate::train::cache`]); `vidapter extract --backbone --pixels`: a backbone's hidden
//! states on a pixel tensor ([`crate::backbone::extract`]).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::Device;

use crate::backbone::Backbone;
use crate::data::Entry;
use crate::data::config::Split;
use crate::error::{Error, Result};
use crate::methods::{self, Family};
use crate::train::cache::{
    CacheDtype, CacheKey, CacheViews, ExtractOptions, ExtractReport, extract,
};
use crate::train::config::RunConfig;

/// The readable entries of `split` of a run config's dataset (unreadable ones are logged and
/// skipped); an error naming the config when none is left.
pub(crate) fn split_entries(
    cfg: &RunConfig,
    config_path: &Path,
    split: Split,
    progress: bool,
) -> Result<Arc<Vec<Entry>>> {
    let ds = super::faces::load_split(cfg, split, progress)?;
    for p in &ds.problems {
        tracing::warn!("{split}: skipping {p}");
    }
    if ds.entries.is_empty() {
        return Err(Error::Input(format!(
            "{}: the {split} split has no readable entry",
            config_path.display()
        )));
    }
    Ok(Arc::new(ds.entries))
}

/// `vidapter extract --config`: the cache of `split` for the run `cfg` (read from
/// `config_path`) in `out`. The training split stores `views` augmented views per clip
/// (default 1) with the run's seed; validation and test store the run's test views
/// (`[eval]`), and `views` must then be unset.
///
/// # Errors
/// Config errors naming the field; those of [`extract`].
#[allow(clippy::too_many_arguments)]
pub fn extract_run(
    cfg: &RunConfig,
    config_path: &Path,
    split: Split,
    views: Option<usize>,
    dtype: CacheDtype,
    out: &Path,
    progress: bool,
    device: &Device,
) -> Result<ExtractReport> {
    use Split;
    let prep = super::experiment::prepare(cfg, config_path, device)?;
    let views = match (split, views) {
        (Split::Train, n) => CacheViews::Train {
            count: n.unwrap_or(1).max(1),
            seed: cfg.train.seed,
        },
        (_, None) => CacheViews::Test {
            temporal: cfg.eval.temporal_views,
            spatial: cfg.eval.spatial_views,
        },
        (_, Some(_)) => {
            return Err(Error::Input(format!(
                "--views sets augmented training views; the {split} split is stored with the test views of [eval] (temporal_views, spatial_views)"
            )));
        }
    };
    let entries = split_entries(cfg, config_path, split, progress)?;
    let model = prep.model(cfg, device);
    if model.levels_needed().is_empty() {
        return Err(Error::config(
            config_path,
            "method.kind",
            format!(
                "`{}` trains inside the backbone; a feature cache only serves {}",
                cfg.method.name(),
                methods::names_of(Some(Family::SideBranch), " and ")
            ),
        ));
    }
    let key = CacheKey::new(
        &prep.backbone_id,
        &model,
        &prep.spec,
        views,
        dtype,
        split.name(),
        &entries,
    )?;
    let opts = ExtractOptions {
        batch_size: cfg.train.batch_size.max(1),
        workers: cfg.train.workers.max(1),
        strict: cfg.train.strict,
        allow_damaged: cfg.train.allow_damaged,
        progress,
        ..Default::default()
    };
    extract(&model, &key, entries, &prep.spec, out, &opts, device)
}

/// What `extract --backbone --pixels` wrote.
#[derive(Debug, Clone)]
pub struct HiddenStates {
    /// The safetensors file.
    pub out: PathBuf,
    /// Blocks of the backbone (`hidden_states.0..=blocks`).
    pub blocks: usize,
}

impl fmt::Display for HiddenStates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "wrote {} (hidden_states.0..{}, last_hidden_state, pooler_output)",
            self.out.display(),
            self.blocks
        )
    }
}

/// `vidapter extract --backbone --pixels`: loads `backbone` and writes every hidden state of
/// it on the `pixel_values` of `pixels` to `out`, `batch` images per forward pass.
///
/// # Errors
/// Those of loading the backbone and of [`crate::backbone::extract::extract_pixels`].
pub fn hidden_states(
    backbone: &str,
    pixels: &Path,
    out: &Path,
    batch: usize,
    progress: bool,
    device: &Device,
) -> Result<HiddenStates> {
    let b = Backbone::load(backbone, device)?;
    crate::backbone::extract::extract_pixels(&b.model, pixels, out, batch, device, progress)?;
    Ok(HiddenStates {
        out: out.to_path_buf(),
        blocks: b.config.num_layers,
    })
}
