//! Classification metrics over per-clip class probabilities, and the reduction of a clip's
//! test views to one prediction.
//!
//! Contract: scores are plain row-major `f32` slices, `[N, K]` for `N` clips and `K`
//! classes (`[N*V, K]`, entry-major, before [`aggregate_views`]); labels are class indices
//! `0..K`. A shape mismatch, label out of range or non-finite probability given to these
//! functions is an [`Error::Input`] naming the clip and the values, never a panic. All metrics are fractions
//! in `[0, 1]` (reports multiply by 100).
//!
//! Definitions (data.md "Metrics"), with the confusion matrix `M[true, pred]`:
//! - WAR (weighted average recall) = `trace(M) / sum(M)`, i.e. overall accuracy = top-1;
//! - UAR (unweighted average recall) = mean over classes of `M[c,c] / sum_j M[c,j]`, taken
//!   over the classes *present in the ground truth*: a class with no test clip has no recall,
//!   and counting it as 0 (or 1) would move UAR by a class the test set says nothing about.
//!   On a full test split every class is present and this is the DFER papers' UAR;
//! - mean class accuracy is mmaction2's `mean_class_accuracy`: the mean of recall over the
//!   classes that occur in the ground truth *or* the predictions, a predicted class with no
//!   test clip counting 0. It equals UAR whenever every predicted class is present, and is
//!   kept so that Kinetics/SSv2 numbers compare with mmaction2's;
//! - top-k: the true class is among the `k = min(5, K)` highest scores.
//!
//! Ties (equal scores) are broken by the lowest class index, in the prediction and in top-k:
//! a class ranks above every later class with the same score. This is what a stable
//! descending sort and `argmax` in NumPy/PyTorch do, so the numbers match the peers'.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Counts `M[true, pred]` of a `K`-class problem.
///
/// The counts are kept row-major (`counts[t * K + p]`) and private, so that the shape
/// always matches `classes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfusionMatrix {
    classes: usize,
    counts: Vec<u64>,
}

/// The JSON form of a [`ConfusionMatrix`]: class names and the rows `M[true][pred]`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfusionJson {
    classes: Vec<String>,
    matrix: Vec<Vec<u64>>,
}

impl ConfusionMatrix {
    /// An empty matrix for `classes` classes.
    pub fn new(classes: usize) -> Self {
        ConfusionMatrix {
            classes,
            counts: vec![0; classes * classes],
        }
    }

    /// Counts one clip of class `truth` predicted as `pred`.
    pub fn add(&mut self, truth: usize, pred: usize) -> Result<()> {
        if truth >= self.classes || pred >= self.classes {
            return Err(Error::Input(format!(
                "confusion matrix: (true {truth}, predicted {pred}) is outside the {} classes \
                 0..{}",
                self.classes, self.classes
            )));
        }
        self.counts[truth * self.classes + pred] += 1;
        Ok(())
    }

    /// Number of classes `K`.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// `M[truth, pred]`: clips of class `truth` predicted as `pred`.
    ///
    /// # Panics
    /// If either index is `>= K` (a bug in the caller, like slice indexing).
    pub fn get(&self, truth: usize, pred: usize) -> u64 {
        assert!(
            truth < self.classes && pred < self.classes,
            "M[{truth}, {pred}] asked of a {}-class confusion matrix",
            self.classes
        );
        self.counts[truth * self.classes + pred]
    }

    /// Row `truth` of the matrix: how the clips of that class were predicted, `[K]`.
    pub fn row(&self, truth: usize) -> &[u64] {
        &self.counts[truth * self.classes..(truth + 1) * self.classes]
    }

    /// Clips of class `c` in the ground truth (the row sum).
    pub fn support(&self, c: usize) -> u64 {
        self.row(c).iter().sum()
    }

    /// All clips counted (`sum(M)`).
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Correctly predicted clips (`trace(M)`).
    pub fn correct(&self) -> u64 {
        (0..self.classes).map(|c| self.get(c, c)).sum()
    }

    /// WAR = `trace(M) / sum(M)`; NaN for an empty matrix (no clip, so no accuracy: a 0
    /// would read as a real, terrible result).
    pub fn war(&self) -> f64 {
        self.correct() as f64 / self.total() as f64
    }

    /// Recall `M[c,c] / sum_j M[c,j]` of each class, `[K]`; `None` for a class with no clip
    /// in the ground truth.
    pub fn per_class_recall(&self) -> Vec<Option<f64>> {
        (0..self.classes)
            .map(|c| match self.support(c) {
                0 => None,
                n => Some(self.get(c, c) as f64 / n as f64),
            })
            .collect()
    }

    /// UAR: mean recall over the classes present in the ground truth (see the module doc
    /// for why absent classes are left out); NaN when no class is present.
    pub fn uar(&self) -> f64 {
        let present: Vec<f64> = self.per_class_recall().into_iter().flatten().collect();
        present.iter().sum::<f64>() / present.len() as f64
    }

    /// mmaction2's mean class accuracy: mean recall over the classes that occur in the
    /// ground truth or in the predictions, a class only predicted counting 0; NaN when
    /// the matrix is empty.
    pub fn mean_class_accuracy(&self) -> f64 {
        let recall = self.per_class_recall();
        let mut sum = 0.0;
        let mut seen = 0usize;
        for (c, r) in recall.iter().enumerate() {
            let predicted = (0..self.classes).any(|t| self.get(t, c) > 0);
            if r.is_some() || predicted {
                sum += r.unwrap_or(0.0);
                seen += 1;
            }
        }
        sum / seen as f64
    }

    /// The JSON form `{"classes": [names...], "matrix": [[M[0][0], ...], ...]}`, rows
    /// being the true class.
    pub fn to_json(&self, names: &[String]) -> Result<serde_json::Value> {
        if names.len() != self.classes {
            return Err(Error::Input(format!(
                "confusion matrix: {} class names given for {} classes",
                names.len(),
                self.classes
            )));
        }
        let json = ConfusionJson {
            classes: names.to_vec(),
            matrix: (0..self.classes).map(|t| self.row(t).to_vec()).collect(),
        };
        // A struct of strings and integers always serialises.
        Ok(serde_json::to_value(json).expect("confusion matrix serialises"))
    }

    /// Reads back [`ConfusionMatrix::to_json`]'s form: the matrix and the class names.
    /// `origin` names the file the value came from, for errors.
    pub fn from_json(
        value: &serde_json::Value,
        origin: &std::path::Path,
    ) -> Result<(ConfusionMatrix, Vec<String>)> {
        let json: ConfusionJson = serde_json::from_value(value.clone()).map_err(|e| {
            Error::format(
                origin,
                format!(
                    "confusion matrix: {e}; expected {{\"classes\": [names], \"matrix\": [[counts]]}}"
                ),
            )
        })?;
        let k = json.classes.len();
        if json.matrix.len() != k {
            return Err(Error::format(
                origin,
                format!(
                    "confusion matrix: {} rows for {k} class names; expected one row per class",
                    json.matrix.len()
                ),
            ));
        }
        let mut cm = ConfusionMatrix::new(k);
        for (t, row) in json.matrix.iter().enumerate() {
            if row.len() != k {
                return Err(Error::format(
                    origin,
                    format!(
                        "confusion matrix: row {t} (`{}`) has {} counts; expected {k}",
                        json.classes[t],
                        row.len()
                    ),
                ));
            }
            cm.counts[t * k..(t + 1) * k].copy_from_slice(row);
        }
        Ok((cm, json.classes))
    }
}

/// What an evaluation measured (all rates are fractions in `[0, 1]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Metrics {
    /// Clips evaluated (`N`).
    pub clips: usize,
    /// Unweighted average recall over the classes present in the ground truth.
    pub uar: f64,
    /// Weighted average recall (overall accuracy; equals `top1`).
    pub war: f64,
    /// Top-1 accuracy.
    pub top1: f64,
    /// Top-k accuracy with `k = top_k = min(5, K)`.
    pub top5: f64,
    /// The `k` used for [`Metrics::top5`]: `min(5, K)`.
    pub top_k: usize,
    /// mmaction2's mean class accuracy (see the module doc).
    pub mean_class_accuracy: f64,
    /// Recall of each class, `[K]`; `None` where the class has no clip.
    pub per_class: Vec<Option<f64>>,
    /// The confusion matrix `M[true, pred]`.
    pub confusion: ConfusionMatrix,
}

impl Metrics {
    /// The JSON report of these metrics, with per-class recall and the confusion matrix
    /// keyed by class name (`null` for a class with no clip).
    pub fn to_json(&self, names: &[String]) -> Result<serde_json::Value> {
        let confusion = self.confusion.to_json(names)?;
        let per_class: serde_json::Map<String, serde_json::Value> = names
            .iter()
            .zip(&self.per_class)
            .map(|(n, r)| (n.clone(), serde_json::json!(r)))
            .collect();
        Ok(serde_json::json!({
            "clips": self.clips,
            "uar": self.uar,
            "war": self.war,
            "top1": self.top1,
            "top5": self.top5,
            "top_k": self.top_k,
            "mean_class_accuracy": self.mean_class_accuracy,
            "per_class": per_class,
            "confusion": confusion,
        }))
    }
}

/// Checks that `data` holds whole rows of `classes` values and returns the row count.
fn rows_of(data: &[f32], classes: usize, what: &str) -> Result<usize> {
    if classes == 0 {
        return Err(Error::Input(format!(
            "{what}: 0 classes; expected at least 1"
        )));
    }
    if !data.len().is_multiple_of(classes) {
        return Err(Error::Input(format!(
            "{what}: {} values are not whole rows of {classes} classes",
            data.len()
        )));
    }
    Ok(data.len() / classes)
}

/// Position of `truth` when the row's classes are ranked by descending score, ties going
/// to the lower index: the number of classes that beat it. The row is finite.
fn rank_of(row: &[f32], truth: usize) -> usize {
    let s = row[truth];
    row.iter()
        .enumerate()
        .filter(|&(j, &v)| v > s || (v == s && j < truth))
        .count()
}

/// The predicted class of a finite row: the highest score, the lowest index among equals.
fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (j, &v) in row.iter().enumerate().skip(1) {
        if v > row[best] {
            best = j;
        }
    }
    best
}

/// Metrics of `N` clips from their class probabilities `probs` (`[N, K]`, row-major,
/// `K = classes`) and true classes `labels` (`[N]`, each `< K`).
///
/// Any score works in place of probabilities (only the ranking matters), but every value
/// must be finite: a NaN is what a diverged model outputs, and ranking it would report a
/// number for a model that computed none. `N = 0` is an error for the same reason.
pub fn evaluate(probs: &[f32], classes: usize, labels: &[usize]) -> Result<Metrics> {
    let n = rows_of(probs, classes, "evaluate")?;
    if n != labels.len() {
        return Err(Error::Input(format!(
            "evaluate: {n} rows of probabilities but {} labels",
            labels.len()
        )));
    }
    if n == 0 {
        return Err(Error::Input(
            "evaluate: no clips to evaluate; expected at least one".into(),
        ));
    }
    let k = classes.min(5);
    let mut confusion = ConfusionMatrix::new(classes);
    let mut top5_hits = 0usize;
    for (i, (row, &truth)) in probs.chunks_exact(classes).zip(labels).enumerate() {
        if truth >= classes {
            return Err(Error::Input(format!(
                "evaluate: clip {i} has label {truth}; expected a class in 0..{classes}"
            )));
        }
        if let Some(c) = row.iter().position(|v| !v.is_finite()) {
            return Err(Error::Input(format!(
                "evaluate: clip {i} has score {} for class {c}; every score must be finite \
                 (a NaN or infinite output usually means training diverged)",
                row[c]
            )));
        }
        confusion.add(truth, argmax(row))?;
        if rank_of(row, truth) < k {
            top5_hits += 1;
        }
    }
    let war = confusion.war();
    Ok(Metrics {
        clips: n,
        uar: confusion.uar(),
        war,
        top1: war,
        top5: top5_hits as f64 / n as f64,
        top_k: k,
        mean_class_accuracy: confusion.mean_class_accuracy(),
        per_class: confusion.per_class_recall(),
        confusion,
    })
}

/// How the views of one clip become one prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    /// Softmax each view's logits, then average the probabilities (data.md's choice, and
    /// mmaction2's `average_clips='prob'`): one overconfident view cannot outvote the rest
    /// by the size of its logits.
    #[default]
    Prob,
    /// Average the logits, then softmax (mmaction2's `average_clips='score'`).
    Score,
}

/// Softmax of each row of `scores` (`[N, K]`, row-major, `K = classes`), computed in `f64`
/// after subtracting the row's maximum so that large logits do not overflow. A row with a
/// NaN or infinite logit gives NaN probabilities (which [`evaluate`] then rejects).
pub fn softmax_rows(scores: &[f32], classes: usize) -> Result<Vec<f32>> {
    rows_of(scores, classes, "softmax")?;
    let mut out = Vec::with_capacity(scores.len());
    for row in scores.chunks_exact(classes) {
        if row.iter().any(|v| !v.is_finite()) {
            out.extend(std::iter::repeat_n(f32::NAN, classes));
            continue;
        }
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
        let exp: Vec<f64> = row.iter().map(|&v| (v as f64 - max).exp()).collect();
        let sum: f64 = exp.iter().sum();
        out.extend(exp.iter().map(|e| (e / sum) as f32));
    }
    Ok(out)
}

/// Reduces the `V` views of each clip to one probability row: `scores` are logits
/// `[N*V, K]`, entry-major (the `V` views of clip 0 first, as the loader yields them);
/// the result is probabilities `[N, K]`.
pub fn aggregate_views(
    scores: &[f32],
    views: usize,
    classes: usize,
    how: Aggregate,
) -> Result<Vec<f32>> {
    let rows = rows_of(scores, classes, "aggregate views")?;
    if views == 0 || !rows.is_multiple_of(views) {
        return Err(Error::Input(format!(
            "aggregate views: {rows} score rows are not whole groups of {views} views per clip"
        )));
    }
    let group = views * classes;
    let mut out = Vec::with_capacity(rows / views * classes);
    match how {
        Aggregate::Prob => {
            let probs = softmax_rows(scores, classes)?;
            for clip in probs.chunks_exact(group) {
                out.extend(mean_of_rows(clip, classes));
            }
        }
        Aggregate::Score => {
            for clip in scores.chunks_exact(group) {
                out.extend(softmax_rows(&mean_of_rows(clip, classes), classes)?);
            }
        }
    }
    Ok(out)
}

/// Mean of the rows of `rows` (`[V, K]`), in `f64`.
fn mean_of_rows(rows: &[f32], classes: usize) -> Vec<f32> {
    let v = (rows.len() / classes) as f64;
    (0..classes)
        .map(|c| {
            let sum: f64 = rows
                .iter()
                .skip(c)
                .step_by(classes)
                .map(|&x| x as f64)
                .sum();
            (sum / v) as f32
        })
        .collect()
}

/// Mean and sample standard deviation of UAR and WAR over the folds of a cross-validated
/// dataset (DFEW and MAFW report the mean of their 5 folds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldSummary {
    /// Number of folds.
    pub folds: usize,
    /// Mean UAR over folds.
    pub uar_mean: f64,
    /// Sample standard deviation (divisor `folds - 1`) of UAR; `None` for a single fold.
    pub uar_std: Option<f64>,
    /// Mean WAR over folds.
    pub war_mean: f64,
    /// Sample standard deviation of WAR; `None` for a single fold.
    pub war_std: Option<f64>,
}

impl FoldSummary {
    /// Summary of per-fold `(UAR, WAR)` pairs; at least one fold.
    pub fn new(uar_war: &[(f64, f64)]) -> Result<Self> {
        if uar_war.is_empty() {
            return Err(Error::Input(
                "fold summary: no folds; expected at least one".into(),
            ));
        }
        let uar: Vec<f64> = uar_war.iter().map(|p| p.0).collect();
        let war: Vec<f64> = uar_war.iter().map(|p| p.1).collect();
        let (uar_mean, uar_std) = mean_std(&uar);
        let (war_mean, war_std) = mean_std(&war);
        Ok(FoldSummary {
            folds: uar_war.len(),
            uar_mean,
            uar_std,
            war_mean,
            war_std,
        })
    }

    /// Summary of each fold's [`Metrics`].
    pub fn from_metrics(folds: &[Metrics]) -> Result<Self> {
        let pairs: Vec<(f64, f64)> = folds.iter().map(|m| (m.uar, m.war)).collect();
        FoldSummary::new(&pairs)
    }
}

/// Mean and sample standard deviation (`None` below two values) of a non-empty slice.
fn mean_std(x: &[f64]) -> (f64, Option<f64>) {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let std = (x.len() > 1)
        .then(|| (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
    (mean, std)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    /// One-hot-ish probability rows `[N, K]` that predict `preds`.
    fn rows_predicting(preds: &[usize], classes: usize) -> Vec<f32> {
        let mut out = vec![0.1 / classes as f32; preds.len() * classes];
        for (i, &p) in preds.iter().enumerate() {
            out[i * classes + p] = 0.9;
        }
        out
    }

    /// The worked 3-class example. Labels [0, 0, 0, 1, 1, 2], predictions
    /// [0, 0, 1, 1, 2, 2]:
    ///
    /// ```text
    ///            pred 0  pred 1  pred 2   recall
    /// true 0        2       1       0      2/3
    /// true 1        0       1       1      1/2
    /// true 2        0       0       1      1/1
    /// ```
    /// WAR = (2 + 1 + 1) / 6 = 2/3; UAR = (2/3 + 1/2 + 1) / 3 = 13/18 = 0.7222...
    /// Top-5 with K = 3 uses k = 3: every clip is a hit.
    #[test]
    fn three_class_example_matches_hand_computation() {
        let labels = [0, 0, 0, 1, 1, 2];
        let probs = rows_predicting(&[0, 0, 1, 1, 2, 2], 3);
        let m = evaluate(&probs, 3, &labels).unwrap();
        assert_eq!(m.clips, 6);
        assert_eq!(m.confusion.row(0), &[2, 1, 0]);
        assert_eq!(m.confusion.row(1), &[0, 1, 1]);
        assert_eq!(m.confusion.row(2), &[0, 0, 1]);
        assert_eq!(m.confusion.total(), 6);
        assert!(close(m.war, 4.0 / 6.0));
        assert!(close(m.top1, 4.0 / 6.0));
        assert!(close(m.uar, 13.0 / 18.0), "uar {}", m.uar);
        assert_eq!(m.per_class, vec![Some(2.0 / 3.0), Some(0.5), Some(1.0)]);
        assert!(close(m.mean_class_accuracy, 13.0 / 18.0));
        assert_eq!(m.top_k, 3);
        assert!(close(m.top5, 1.0));
    }

    /// Labels [0, 0, 1, 1], predictions [0, 2, 1, 1]; class 2 has no clip:
    ///
    /// ```text
    ///            pred 0  pred 1  pred 2   recall
    /// true 0        1       0       1      1/2
    /// true 1        0       2       0      2/2
    /// true 2        0       0       0      none
    /// ```
    /// UAR = (1/2 + 1) / 2 = 3/4 (class 2 left out, not counted as 0, which would give 1/2);
    /// WAR = 3/4; mean class accuracy (mmaction2) counts the predicted-but-absent class 2
    /// as 0: (1/2 + 1 + 0) / 3 = 1/2.
    #[test]
    fn uar_leaves_out_classes_absent_from_ground_truth() {
        let probs = rows_predicting(&[0, 2, 1, 1], 3);
        let m = evaluate(&probs, 3, &[0, 0, 1, 1]).unwrap();
        assert_eq!(m.per_class, vec![Some(0.5), Some(1.0), None]);
        assert!(close(m.uar, 0.75));
        assert!(close(m.war, 0.75));
        assert!(close(m.mean_class_accuracy, 0.5));
    }

    /// Labels [0, 1], predictions [0, 0]: class 2 is neither true nor predicted, so both
    /// UAR and mean class accuracy average classes 0 and 1: (1 + 0) / 2.
    #[test]
    fn class_never_seen_nor_predicted_counts_in_neither_average() {
        let probs = rows_predicting(&[0, 0], 3);
        let m = evaluate(&probs, 3, &[0, 1]).unwrap();
        assert!(close(m.uar, 0.5));
        assert!(close(m.mean_class_accuracy, 0.5));
    }

    #[test]
    fn ties_go_to_the_lowest_class_index() {
        // Row [0.4, 0.4, 0.2]: class 0 is predicted, so a clip of class 1 is a miss.
        let m = evaluate(&[0.4, 0.4, 0.2], 3, &[1]).unwrap();
        assert_eq!(m.confusion.get(1, 0), 1);
        assert!(close(m.top1, 0.0));
        // Six equal scores, k = 5: classes 0..=4 are the top five, class 5 is sixth.
        let flat = [1.0 / 6.0; 6];
        let hit = evaluate(&flat, 6, &[4]).unwrap();
        let miss = evaluate(&flat, 6, &[5]).unwrap();
        assert!(close(hit.top5, 1.0));
        assert!(close(miss.top5, 0.0));
    }

    /// K = 7: clip 0's true class 6 ranks 2nd (hit), clip 1's true class 0 ranks 6th
    /// (scores 0.1 < five others), a miss: top-5 = 1/2, top-1 = 0.
    #[test]
    fn top5_counts_true_class_among_five_best() {
        let probs = [
            0.5, 0.0, 0.0, 0.0, 0.0, 0.1, 0.4, //
            0.1, 0.2, 0.2, 0.2, 0.2, 0.2, 0.0,
        ];
        let m = evaluate(&probs, 7, &[6, 0]).unwrap();
        assert_eq!(m.top_k, 5);
        assert!(close(m.top5, 0.5));
        assert!(close(m.top1, 0.0));
    }

    #[test]
    fn top5_with_two_classes_uses_k_two() {
        let m = evaluate(&[0.9, 0.1, 0.8, 0.2], 2, &[1, 0]).unwrap();
        assert_eq!(m.top_k, 2);
        assert!(close(m.top5, 1.0));
        assert!(close(m.top1, 0.5));
    }

    #[test]
    fn evaluate_rejects_bad_shapes_labels_and_nan() {
        let err = evaluate(&[0.5, 0.5, 0.5], 2, &[0]).unwrap_err().to_string();
        assert!(
            err.contains("3 values") && err.contains("2 classes"),
            "{err}"
        );
        let err = evaluate(&[0.5, 0.5], 2, &[0, 1]).unwrap_err().to_string();
        assert!(err.contains("1 rows") && err.contains("2 labels"), "{err}");
        let err = evaluate(&[0.5, 0.5], 2, &[2]).unwrap_err().to_string();
        assert!(err.contains("clip 0 has label 2"), "{err}");
        let err = evaluate(&[0.5, 0.5, 0.1, f32::NAN], 2, &[0, 1])
            .unwrap_err()
            .to_string();
        assert!(err.contains("clip 1") && err.contains("class 1"), "{err}");
        let err = evaluate(&[], 2, &[]).unwrap_err().to_string();
        assert!(err.contains("no clips"), "{err}");
    }

    #[test]
    fn empty_matrix_has_no_accuracy() {
        let cm = ConfusionMatrix::new(3);
        assert!(cm.war().is_nan());
        assert!(cm.uar().is_nan());
        assert_eq!(cm.per_class_recall(), vec![None, None, None]);
    }

    #[test]
    fn confusion_add_rejects_out_of_range_classes() {
        let mut cm = ConfusionMatrix::new(2);
        let err = cm.add(0, 2).unwrap_err().to_string();
        assert!(err.contains("predicted 2") && err.contains("0..2"), "{err}");
        assert_eq!(cm.total(), 0);
    }

    #[test]
    fn confusion_json_names_classes_and_round_trips() {
        let mut cm = ConfusionMatrix::new(2);
        for (t, p) in [(0, 0), (0, 1), (1, 1), (1, 1)] {
            cm.add(t, p).unwrap();
        }
        let names = vec!["happy".to_string(), "sad".to_string()];
        let json = cm.to_json(&names).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"classes": ["happy", "sad"], "matrix": [[1, 1], [0, 2]]})
        );
        let origin = std::path::Path::new("report.json");
        let (back, back_names) = ConfusionMatrix::from_json(&json, origin).unwrap();
        assert_eq!(back, cm);
        assert_eq!(back_names, names);
        assert!(cm.to_json(&names[..1]).is_err());
        let ragged = serde_json::json!({"classes": ["a", "b"], "matrix": [[1, 1], [0]]});
        let err = ConfusionMatrix::from_json(&ragged, origin)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("report.json") && err.contains("row 1 (`b`)"),
            "{err}"
        );
    }

    #[test]
    fn metrics_json_has_null_recall_for_absent_class() {
        let m = evaluate(&rows_predicting(&[0, 1], 3), 3, &[0, 1]).unwrap();
        let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let json = m.to_json(&names).unwrap();
        assert_eq!(json["per_class"]["a"], 1.0);
        assert!(json["per_class"]["c"].is_null());
        assert_eq!(json["confusion"]["matrix"][1][1], 1);
        assert_eq!(json["clips"], 2);
    }

    #[test]
    fn softmax_rows_match_hand_values() {
        // [0, ln 3] -> [1/4, 3/4]; [1000, 1000] must not overflow -> [1/2, 1/2].
        let p = softmax_rows(&[0.0, 3f32.ln(), 1000.0, 1000.0], 2).unwrap();
        let want = [0.25, 0.75, 0.5, 0.5];
        for (a, b) in p.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{p:?}");
        }
        assert!(softmax_rows(&[0.0, f32::INFINITY], 2).unwrap()[0].is_nan());
    }

    /// One clip, two views of two classes: view 0 logits [0, ln 3] -> p = [1/4, 3/4],
    /// view 1 logits [0, 0] -> p = [1/2, 1/2].
    /// Prob: mean of probabilities = [3/8, 5/8].
    /// Score: mean logits [0, ln 3 / 2] -> softmax = [1/(1+√3), √3/(1+√3)]
    ///        = [0.3660254, 0.6339746].
    #[test]
    fn views_average_probabilities_or_logits_as_asked() {
        let logits = [0.0, 3f32.ln(), 0.0, 0.0];
        let prob = aggregate_views(&logits, 2, 2, Aggregate::Prob).unwrap();
        let score = aggregate_views(&logits, 2, 2, Aggregate::Score).unwrap();
        let s3 = 3f32.sqrt();
        for (got, want) in prob.iter().zip([0.375, 0.625]) {
            assert!((got - want).abs() < 1e-6, "{prob:?}");
        }
        for (got, want) in score.iter().zip([1.0 / (1.0 + s3), s3 / (1.0 + s3)]) {
            assert!((got - want).abs() < 1e-6, "{score:?}");
        }
        assert_eq!(Aggregate::default(), Aggregate::Prob);
    }

    #[test]
    fn views_are_grouped_entry_major() {
        // Two clips x two views x two classes: clip 0's views favour class 0, clip 1's class 1.
        let logits = [5.0, 0.0, 4.0, 0.0, 0.0, 5.0, 0.0, 4.0];
        let p = aggregate_views(&logits, 2, 2, Aggregate::Prob).unwrap();
        assert_eq!(p.len(), 4);
        assert!(p[0] > 0.9 && p[3] > 0.9, "{p:?}");
        let err = aggregate_views(&logits, 3, 2, Aggregate::Prob)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("4 score rows") && err.contains("3 views"),
            "{err}"
        );
        assert!(aggregate_views(&logits, 0, 2, Aggregate::Score).is_err());
    }

    #[test]
    fn aggregate_parses_from_config_names() {
        #[derive(Deserialize)]
        struct C {
            how: Aggregate,
        }
        let c: C = toml::from_str("how = \"score\"").unwrap();
        assert_eq!(c.how, Aggregate::Score);
    }

    /// UARs 0.5..0.9 step 0.1: mean 0.7, squared deviations 0.04 + 0.01 + 0 + 0.01 + 0.04
    /// = 0.1, sample variance 0.1 / 4 = 0.025, std = 0.1581139.
    #[test]
    fn fold_summary_uses_sample_std() {
        let folds = [(0.5, 0.6), (0.6, 0.6), (0.7, 0.6), (0.8, 0.6), (0.9, 0.6)];
        let s = FoldSummary::new(&folds).unwrap();
        assert_eq!(s.folds, 5);
        assert!(close(s.uar_mean, 0.7));
        assert!(close(s.uar_std.unwrap(), 0.025f64.sqrt()));
        assert!(close(s.war_mean, 0.6));
        assert!(close(s.war_std.unwrap(), 0.0));
        let one = FoldSummary::new(&[(0.5, 0.4)]).unwrap();
        assert_eq!(one.uar_std, None);
        assert!(FoldSummary::new(&[]).is_err());
    }
}
