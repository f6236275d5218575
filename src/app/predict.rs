//! `vidapter predict`: classify videos with a checkpoint ([`super::experiment::predict_with`])
//! and write the predictions as JSON or CSV, with an error row for each input that could not
//! be read.

use std::path::{Path, PathBuf};

use burn::tensor::Device;

use super::experiment::{PredictOptions, Prediction, predict_with};
use crate::data::decode::DecodeOptions;
use crate::error::{Error, Result};

/// The predictions of one `predict` run, in input order.
#[derive(Debug, Clone)]
pub struct PredictReport {
    /// Class names, in the order of every row's probabilities.
    pub classes: Vec<String>,
    /// One per input.
    pub predictions: Vec<Prediction>,
}

impl PredictReport {
    /// `{"classes": [...], "predictions": [...]}`, pretty, with a trailing newline.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(&serde_json::json!({
            "classes": self.classes, "predictions": self.predictions,
        }))
        .expect("json")
            + "\n"
    }

    /// A header `path,window_start,window_end,top,<classes>`, then per input a row for the
    /// whole video (empty window) and one per timeline window; an unreadable input gets
    /// `path,,,error: <reason>,` (commas in the reason become semicolons).
    pub fn csv(&self) -> String {
        let mut t = format!(
            "path,window_start,window_end,top,{}\n",
            self.classes.join(",")
        );
        for p in &self.predictions {
            let path = p.path.display();
            if let Some(e) = &p.error {
                t.push_str(&format!("{path},,,error: {},\n", e.replace(',', ";")));
                continue;
            }
            let row = |start: String, end: String, top: &str, probs: &[f32]| {
                let probs: Vec<String> = probs.iter().map(|x| format!("{x:.6}")).collect();
                format!("{path},{start},{end},{top},{}\n", probs.join(","))
            };
            t.push_str(&row(String::new(), String::new(), &p.top, &p.probs));
            for w in &p.timeline {
                t.push_str(&row(
                    w.start.to_string(),
                    w.end.to_string(),
                    &w.top,
                    &w.probs,
                ));
            }
        }
        t
    }

    /// What the user should know about how inputs were read, `<path>: <warning>` each.
    pub fn warnings(&self) -> Vec<String> {
        self.predictions
            .iter()
            .flat_map(|p| {
                p.warnings
                    .iter()
                    .map(move |w| format!("{}: {w}", p.path.display()))
            })
            .collect()
    }

    /// Why the command fails once the predictions are written: inputs that could not be read.
    pub fn failure(&self) -> Option<String> {
        let bad = self
            .predictions
            .iter()
            .filter(|p| p.error.is_some())
            .count();
        (bad > 0).then(|| {
            format!(
                "{bad} of {} input(s) could not be read; see their `error` field",
                self.predictions.len()
            )
        })
    }
}

/// `--crop X,Y,W,H`: the four numbers of a crop box.
///
/// # Errors
/// Any other count of numbers.
pub fn crop_box(values: &[usize]) -> Result<[usize; 4]> {
    <[usize; 4]>::try_from(values).map_err(|_| {
        Error::Input(format!(
            "--crop takes four numbers X,Y,W,H (e.g. 120,40,224,224); got {} ({values:?})",
            values.len()
        ))
    })
}

/// Classifies `inputs` (videos or frame folders) with `checkpoint`; with `allow_damaged`, a
/// damaged input is classified from the frames that decode, with a warning.
///
/// # Errors
/// Those of [`predict_with`]; an unreadable input is an error row, not an error.
pub fn predict(
    checkpoint: &Path,
    inputs: &[PathBuf],
    opts: &PredictOptions,
    allow_damaged: bool,
    progress: bool,
    device: &Device,
) -> Result<PredictReport> {
    let decode = DecodeOptions {
        allow_damaged,
        ..Default::default()
    };
    let (predictions, classes) = predict_with(checkpoint, inputs, opts, &decode, progress, device)?;
    Ok(PredictReport {
        classes: classes.names,
        predictions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::experiment::WindowPrediction;

    fn report() -> PredictReport {
        PredictReport {
            classes: vec!["calm".into(), "angry".into()],
            predictions: vec![
                Prediction {
                    path: "a.mp4".into(),
                    top: "angry".into(),
                    probs: vec![0.25, 0.75],
                    timeline: vec![WindowPrediction {
                        start: 0,
                        end: 8,
                        start_s: Some(0.0),
                        top: "calm".into(),
                        probs: vec![0.6, 0.4],
                    }],
                    error: None,
                    warnings: vec!["damaged, used anyway".into()],
                },
                Prediction {
                    path: "b.mp4".into(),
                    top: String::new(),
                    probs: Vec::new(),
                    timeline: Vec::new(),
                    error: Some("b.mp4: not found, or gone".into()),
                    warnings: Vec::new(),
                },
            ],
        }
    }

    #[test]
    fn csv_has_a_row_per_video_and_window_and_an_error_row() {
        assert_eq!(
            report().csv(),
            "path,window_start,window_end,top,calm,angry\n\
             a.mp4,,,angry,0.250000,0.750000\n\
             a.mp4,0,8,calm,0.600000,0.400000\n\
             b.mp4,,,error: b.mp4: not found; or gone,\n"
        );
    }

    #[test]
    fn json_lists_classes_then_predictions() {
        let v: serde_json::Value = serde_json::from_str(&report().json()).unwrap();
        assert_eq!(v["classes"], serde_json::json!(["calm", "angry"]));
        assert_eq!(
            v["predictions"][0]["probs"],
            serde_json::json!([0.25, 0.75])
        );
        assert_eq!(v["predictions"][1]["error"], "b.mp4: not found, or gone");
        assert!(report().json().ends_with("}\n"));
    }

    #[test]
    fn warnings_name_the_input_and_errors_fail_the_command() {
        let r = report();
        assert_eq!(r.warnings(), ["a.mp4: damaged, used anyway"]);
        assert_eq!(
            r.failure().as_deref(),
            Some("1 of 2 input(s) could not be read; see their `error` field")
        );
        let ok = PredictReport {
            predictions: r.predictions[..1].to_vec(),
            ..r
        };
        assert_eq!(ok.failure(), None);
    }

    #[test]
    fn a_crop_box_takes_four_numbers() {
        assert_eq!(crop_box(&[1, 2, 3, 4]).unwrap(), [1, 2, 3, 4]);
        assert_eq!(
            crop_box(&[1, 2, 3]).unwrap_err().to_string(),
            "--crop takes four numbers X,Y,W,H (e.g. 120,40,224,224); got 3 ([1, 2, 3])"
        );
    }
}
