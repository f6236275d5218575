//! `vidapter compare`: relative error, tensor by tensor, between two safetensors files;
//! the other half of the interop door opened by `extract`.

use std::path::Path;

use crate::backbone::WeightStore;
use crate::error::{Error, Result};

/// One row of the comparison.
#[derive(Debug, Clone)]
pub struct Row {
    /// Tensor name.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// `‖a − b‖ / ‖b‖` (b is the reference; `‖a − b‖` when `‖b‖ = 0`).
    pub rel_err: f64,
    /// `max |a − b|`.
    pub max_abs: f64,
}

/// `‖a − b‖₂ / ‖b‖₂` (the absolute norm of the difference when `b` is zero).
pub fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    let (mut num, mut den) = (0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        num += (*x as f64 - *y as f64).powi(2);
        den += (*y as f64).powi(2);
    }
    if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    }
}

/// Compares every tensor of `reference` that `candidate` also holds (shapes must agree).
/// Tensors present in only one file are listed by name in `only_in_one`.
pub fn compare(candidate: &Path, reference: &Path) -> Result<(Vec<Row>, Vec<String>)> {
    let mut a = WeightStore::open(candidate)?;
    let mut b = WeightStore::open(reference)?;
    let names_b: Vec<String> = b.keys().into_iter().map(String::from).collect();
    let names_a: Vec<String> = a.keys().into_iter().map(String::from).collect();
    let mut rows = Vec::new();
    let mut only = Vec::new();
    for name in &names_b {
        let Some(shape) = a.shape(name).map(<[usize]>::to_vec) else {
            only.push(format!("{name} (only in {})", reference.display()));
            continue;
        };
        let ref_shape = b.shape(name).expect("listed").to_vec();
        if shape != ref_shape {
            return Err(Error::Input(format!(
                "tensor `{name}` has shape {shape:?} in {} but {ref_shape:?} in {}",
                candidate.display(),
                reference.display()
            )));
        }
        let va = a.take(name, &shape)?;
        let vb = b.take(name, &shape)?;
        let max_abs = va
            .iter()
            .zip(&vb)
            .map(|(x, y)| (*x as f64 - *y as f64).abs())
            .fold(0.0, f64::max);
        rows.push(Row {
            name: name.clone(),
            shape,
            rel_err: rel_err(&va, &vb),
            max_abs,
        });
    }
    for name in names_a {
        if !names_b.contains(&name) {
            only.push(format!("{name} (only in {})", candidate.display()));
        }
    }
    Ok((rows, only))
}
