//! `vidapter compare`: relative error, tensor by tensor, between two safetensors files;
//! the other half of the interop door opened by `extract`.

use std::fmt;
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

/// The `compare` command's report: every row, the tensors not compared, and the verdict
/// against a tolerance on the relative error.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// One row per tensor compared, in the reference's order.
    pub rows: Vec<Row>,
    /// Tensors in only one file, `name (only in FILE)`.
    pub not_compared: Vec<String>,
    /// The largest relative error that passes.
    pub tolerance: f64,
}

impl Comparison {
    /// [`compare`]s `candidate` with `reference`, to be judged against `tolerance`.
    ///
    /// # Errors
    /// Those of [`compare`]; files that share no tensor name (nothing to compare).
    pub fn of(candidate: &Path, reference: &Path, tolerance: f64) -> Result<Self> {
        let (rows, not_compared) = compare(candidate, reference)?;
        if rows.is_empty() {
            return Err(Error::Input(format!(
                "{} and {} share no tensor names; nothing to compare",
                candidate.display(),
                reference.display()
            )));
        }
        Ok(Comparison {
            rows,
            not_compared,
            tolerance,
        })
    }

    /// The largest relative error of any tensor (0 without rows).
    pub fn worst(&self) -> f64 {
        self.rows.iter().map(|r| r.rel_err).fold(0.0, f64::max)
    }

    /// Whether every tensor is within the tolerance.
    pub fn passes(&self) -> bool {
        self.worst() <= self.tolerance
    }
}

impl fmt::Display for Comparison {
    /// A table of the rows, the tensors not compared, then `PASS` or `FAIL` with the worst
    /// relative error.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<24} {:>18} {:>12} {:>12}",
            "tensor", "shape", "rel. error", "max |diff|"
        )?;
        for r in &self.rows {
            writeln!(
                f,
                "{:<24} {:>18} {:>12.3e} {:>12.3e}",
                r.name,
                format!("{:?}", r.shape),
                r.rel_err,
                r.max_abs
            )?;
        }
        for name in &self.not_compared {
            writeln!(f, "not compared: {name}")?;
        }
        writeln!(
            f,
            "{}: worst relative error {:.3e} (tolerance {:.1e})",
            if self.passes() { "PASS" } else { "FAIL" },
            self.worst(),
            self.tolerance
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comparison(tolerance: f64) -> Comparison {
        let row = |name: &str, rel_err: f64| Row {
            name: name.into(),
            shape: vec![2, 3],
            rel_err,
            max_abs: rel_err * 2.0,
        };
        Comparison {
            rows: vec![row("a", 1e-6), row("b", 3e-5)],
            not_compared: vec!["c (only in ref.safetensors)".into()],
            tolerance,
        }
    }

    #[test]
    fn the_table_ends_with_pass_or_fail_on_the_worst_error() {
        let pass = comparison(1e-4);
        assert!(pass.passes());
        assert_eq!(
            pass.to_string(),
            "tensor                                shape   rel. error   max |diff|\n\
             a                                    [2, 3]     1.000e-6     2.000e-6\n\
             b                                    [2, 3]     3.000e-5     6.000e-5\n\
             not compared: c (only in ref.safetensors)\n\
             PASS: worst relative error 3.000e-5 (tolerance 1.0e-4)\n"
        );
        let fail = comparison(1e-5);
        assert!(!fail.passes());
        assert!(
            fail.to_string()
                .ends_with("\nFAIL: worst relative error 3.000e-5 (tolerance 1.0e-5)\n")
        );
    }
}
