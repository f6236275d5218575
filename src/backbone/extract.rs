//! `vidapter extract --pixels`: run a backbone on a tensor of images and write every hidden
//! state, as transformers' `output_hidden_states=True` names them. The interop and debugging
//! door: compare with any framework on the same weights and pixels.

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use indicatif::ProgressBar;

use crate::backbone::{VisionTransformer, WeightStore, write_f32};
use crate::error::{Error, Result};

/// Name of the input tensor.
pub const PIXELS_KEY: &str = "pixel_values";

/// Reads `pixel_values` `[N, 3, H, W]` from `path`, checked against `model`.
pub fn read_pixels(path: &Path, model: &VisionTransformer) -> Result<(Vec<f32>, [usize; 4])> {
    let mut store = WeightStore::open(path)?;
    let Some(shape) = store.shape(PIXELS_KEY).map(<[usize]>::to_vec) else {
        let found: Vec<String> = store
            .keys()
            .into_iter()
            .take(5)
            .map(|k| format!("`{k}`"))
            .collect();
        return Err(Error::Input(format!(
            "{}: no tensor named `{PIXELS_KEY}`; expected one f32 tensor `{PIXELS_KEY}` of shape [N, 3, H, W] (normalised pixels){}",
            path.display(),
            if found.is_empty() {
                String::new()
            } else {
                format!("; the file holds {}", found.join(", "))
            }
        )));
    };
    model
        .check_pixels(&shape)
        .map_err(|e| Error::Input(format!("{}: tensor `{PIXELS_KEY}`: {e}", path.display())))?;
    let values = store.take(PIXELS_KEY, &shape)?;
    Ok((values, [shape[0], shape[1], shape[2], shape[3]]))
}

/// Runs `model` on the pixels in `input` (in batches of `batch`) and writes
/// `hidden_states.{0..=L}`, `last_hidden_state` and `pooler_output` to `output`.
pub fn extract_pixels(
    model: &VisionTransformer,
    input: &Path,
    output: &Path,
    batch: usize,
    device: &Device,
    progress: bool,
) -> Result<()> {
    let (pixels, [n, c, h, w]) = read_pixels(input, model)?;
    let levels: Vec<usize> = (0..=model.blocks().len()).collect();
    let per_image = c * h * w;
    let mut outs: Vec<Vec<f32>> = vec![Vec::new(); levels.len() + 2];
    let mut shapes: Vec<Vec<usize>> = vec![Vec::new(); levels.len() + 2];
    let bar = if progress {
        let bar = crate::util::progress_bar(
            n as u64,
            "{msg} {bar:30} {pos}/{len} images  {per_sec}  ETA {eta}",
            true,
        );
        bar.set_message("extract");
        bar
    } else {
        ProgressBar::hidden()
    };
    let batch = batch.max(1);
    for start in (0..n).step_by(batch) {
        let b = batch.min(n - start);
        let chunk = pixels[start * per_image..(start + b) * per_image].to_vec();
        let x = Tensor::<4>::from_data(TensorData::new(chunk, [b, c, h, w]), device);
        let out = model.forward(x, &levels);
        let tensors = out
            .levels
            .into_iter()
            .map(|(_, t)| t)
            .chain([out.last_hidden_state])
            .map(|t| (t.dims().to_vec(), t.into_data()))
            .chain([(
                out.pooler_output.dims().to_vec(),
                out.pooler_output.into_data(),
            )]);
        for (slot, (dims, data)) in tensors.enumerate() {
            let values = data
                .try_into_vec::<f32>()
                .map_err(|e| Error::Input(format!("reading back model output: {e:?}")))?;
            outs[slot].extend(values);
            let mut full = dims;
            full[0] = n;
            shapes[slot] = full;
        }
        bar.inc(b as u64);
    }
    bar.finish_and_clear();
    let mut names: Vec<String> = levels
        .iter()
        .map(|i| format!("hidden_states.{i}"))
        .collect();
    names.push("last_hidden_state".into());
    names.push("pooler_output".into());
    let tensors: Vec<(String, Vec<usize>, Vec<f32>)> = names
        .into_iter()
        .zip(shapes)
        .zip(outs)
        .map(|((name, shape), values)| (name, shape, values))
        .collect();
    write_f32(output, &tensors)
}
