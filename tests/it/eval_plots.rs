//! Report plots end to end: each plot is rendered to a real PNG in a temp folder, decoded
//! again, and checked for its documented size and for the colours it must contain; bad
//! input gives an error naming the file. Set `VIDAPTER_KEEP_PLOTS=<dir>` to keep the PNGs
//! for a look.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_json::json;
use vidapter::eval::plot::{
    CURVES_SIZE, bars_size, confusion_size, plot_bars, plot_confusion, plot_curves,
};
use vidapter::eval::{ConfusionMatrix, MetricsLog, curves_from_log, evaluate, read_log};

/// Darkest colour of the heatmap's map: a row whose clips all fall in one cell.
const DARK_BLUE: [u8; 3] = [8, 48, 107];
/// First two series / bar colours (Tableau 10 blue and orange).
const FIRST: [u8; 3] = [78, 121, 167];
const SECOND: [u8; 3] = [242, 142, 43];

/// Where a test's plots go: a temp folder, or `$VIDAPTER_KEEP_PLOTS` if set.
fn out_dir() -> (Option<vidapter::util::TempDir>, PathBuf) {
    match std::env::var_os("VIDAPTER_KEEP_PLOTS") {
        Some(dir) => {
            std::fs::create_dir_all(&dir).unwrap();
            (None, PathBuf::from(dir))
        }
        None => {
            let tmp = vidapter::util::tempdir().unwrap();
            let path = tmp.path().to_path_buf();
            (Some(tmp), path)
        }
    }
}

/// Decodes `path` and returns its size and the set of its colours.
fn decode(path: &Path) -> ((u32, u32), HashSet<[u8; 3]>) {
    let img = image::open(path)
        .unwrap_or_else(|e| panic!("{} does not decode: {e}", path.display()))
        .to_rgb8();
    let colours = img.pixels().map(|p| p.0).collect();
    (img.dimensions(), colours)
}

/// Text is drawn in black, anti-aliased: black and many greys appear.
fn has_text(colours: &HashSet<[u8; 3]>) -> bool {
    colours.contains(&[0, 0, 0])
        && colours
            .iter()
            .filter(|c| c[0] == c[1] && c[1] == c[2])
            .count()
            > 20
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn confusion_heatmap_has_documented_size_colours_and_text() {
    let (_keep, dir) = out_dir();
    // DFEW's 7 classes; "disgust" has no clip (its row stays white), "happy" is all right.
    let classes = names(&[
        "happy", "sad", "neutral", "angry", "surprise", "disgust", "fear",
    ]);
    let labels = [0, 0, 0, 1, 1, 2, 2, 2, 3, 4, 6, 6];
    let preds = [0, 0, 0, 1, 2, 2, 1, 2, 3, 6, 6, 4];
    let mut probs = vec![0.0f32; labels.len() * 7];
    for (i, &p) in preds.iter().enumerate() {
        probs[i * 7 + p] = 1.0;
    }
    let m = evaluate(&probs, 7, &labels).unwrap();
    let path = dir.join("confusion_dfew.png");
    let title = "FE-Adapter, DFEW fold 1 (test)";
    plot_confusion(&m.confusion, &classes, title, &path).unwrap();
    let (size, colours) = decode(&path);
    assert_eq!(size, confusion_size(&classes, title));
    assert!(colours.contains(&DARK_BLUE), "no fully-recalled row drawn");
    assert!(has_text(&colours), "no text drawn");
    assert!(colours.len() > 50, "only {} colours: blank?", colours.len());
}

#[test]
fn confusion_heatmap_of_many_classes_drops_text_but_renders() {
    let (_keep, dir) = out_dir();
    let k = 400;
    let classes: Vec<String> = (0..k)
        .map(|c| format!("kinetics class number {c}"))
        .collect();
    let mut cm = ConfusionMatrix::new(k);
    for c in 0..k {
        cm.add(c, c).unwrap();
        cm.add(c, (c * 7) % k).unwrap();
    }
    let path = dir.join("confusion_k400.png");
    plot_confusion(&cm, &classes, "400 classes", &path).unwrap();
    let (size, colours) = decode(&path);
    assert_eq!(size, confusion_size(&classes, "400 classes"));
    assert!(size.0 < 1200 && size.1 < 1200, "{size:?}");
    assert!(colours.contains(&DARK_BLUE));
}

#[test]
fn confusion_heatmap_with_long_names_and_mafw_classes() {
    let (_keep, dir) = out_dir();
    let classes = names(&[
        "anger",
        "disgust",
        "fear",
        "happiness",
        "neutral",
        "sadness",
        "surprise",
        "contempt",
        "anxiety",
        "helplessness",
        "disappointment and a name far too long to fit beside the grid",
    ]);
    let mut cm = ConfusionMatrix::new(11);
    for t in 0..11 {
        for p in 0..11 {
            for _ in 0..((t * 3 + p * 5) % 7 + if t == p { 40 } else { 0 }) {
                cm.add(t, p).unwrap();
            }
        }
    }
    let path = dir.join("confusion_mafw.png");
    plot_confusion(&cm, &classes, "MAFW, 11 classes", &path).unwrap();
    assert_eq!(
        decode(&path).0,
        confusion_size(&classes, "MAFW, 11 classes")
    );
}

#[test]
fn confusion_plot_rejects_wrong_name_count_naming_the_file() {
    let (_keep, dir) = out_dir();
    let path = dir.join("bad.png");
    let err = plot_confusion(&ConfusionMatrix::new(3), &names(&["a", "b"]), "t", &path)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bad.png") && err.contains("2 class names"),
        "{err}"
    );
    assert!(!path.exists());
}

#[test]
fn curves_from_a_metrics_log_render_every_series() {
    let (_keep, dir) = out_dir();
    let log_path = dir.join("metrics.jsonl");
    let _ = std::fs::remove_file(&log_path);
    let mut log = MetricsLog::open(&log_path).unwrap();
    for step in 0..200 {
        let s = step as f64;
        let loss = 2.0 * (-s / 60.0).exp() + 0.3 + 0.05 * (s * 0.7).sin();
        log.append(&json!({"step": step, "loss": loss, "lr": 4e-4 * (1.0 - s / 200.0)}))
            .unwrap();
        if step % 40 == 39 {
            log.append(&json!({"step": step, "val_loss": loss + 0.2}))
                .unwrap();
        }
    }
    drop(log);
    let records = read_log(&log_path).unwrap();
    let mut curves = curves_from_log(&records, "step", &["loss", "val_loss"]);
    // A diverged step must not break the plot.
    curves[0].1.push((200.0, f64::NAN));
    let path = dir.join("loss.png");
    plot_curves(
        "FE-Adapter on DFEW fold 1: loss",
        "step",
        "cross-entropy",
        &curves,
        &path,
    )
    .unwrap();
    let (size, colours) = decode(&path);
    assert_eq!(size, CURVES_SIZE);
    assert!(
        colours.contains(&FIRST) && colours.contains(&SECOND),
        "a series is missing"
    );
    assert!(has_text(&colours));

    let lr = curves_from_log(&records, "step", &["lr"]);
    plot_curves("learning rate", "step", "lr", &lr, dir.join("lr.png")).unwrap();
}

#[test]
fn curves_of_one_point_and_rising_accuracy_render() {
    let (_keep, dir) = out_dir();
    let series = vec![
        (
            "train".to_string(),
            vec![(1.0, 0.31), (2.0, 0.45), (3.0, 0.52), (4.0, 0.58)],
        ),
        ("val".to_string(), vec![(1.0, 0.35)]),
    ];
    let path = dir.join("accuracy.png");
    plot_curves("accuracy per epoch", "epoch", "UAR", &series, &path).unwrap();
    let (size, colours) = decode(&path);
    assert_eq!(size, CURVES_SIZE);
    assert!(
        colours.contains(&SECOND),
        "the one-point series has no marker"
    );
}

#[test]
fn curves_without_finite_or_plottable_points_are_an_error() {
    let (_keep, dir) = out_dir();
    let series = vec![
        ("loss".to_string(), vec![(0.0, f64::NAN)]),
        ("lr".into(), vec![]),
    ];
    let err = plot_curves("t", "x", "y", &series, dir.join("none.png"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("none.png") && err.contains("nothing to plot"),
        "{err}"
    );
    let huge = vec![("loss".to_string(), vec![(0.0, -1e308), (1.0, 1e308)])];
    let err = plot_curves("t", "x", "y", &huge, dir.join("huge.png"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("huge.png") && err.contains("too large"),
        "{err}"
    );
}

#[test]
fn bar_chart_has_documented_size_and_every_bar() {
    let (_keep, dir) = out_dir();
    let bars = vec![
        ("linear probe".to_string(), 38.2),
        ("ST-Adapter".to_string(), 58.9),
        ("FE-Adapter".to_string(), 61.5),
        ("full fine-tune".to_string(), 60.1),
    ];
    let path = dir.join("uar.png");
    plot_bars("UAR on DFEW (mean of 5 folds)", "UAR (%)", &bars, &path).unwrap();
    let (size, colours) = decode(&path);
    assert_eq!(size, bars_size(4));
    assert!(colours.contains(&FIRST) && colours.contains(&SECOND));
    assert!(has_text(&colours));
}

#[test]
fn bar_chart_with_long_names_wraps_or_turns_them() {
    let (_keep, dir) = out_dir();
    // Breakable names go on up to three lines under their bar.
    let bars = vec![
        ("FE-Adapter (CLIP ViT-B/16, 16 frames)".to_string(), 7.4),
        ("EVL (CLIP ViT-B/16, 16 frames)".to_string(), 11.9),
        ("full fine-tune (CLIP ViT-B/16)".to_string(), 31.2),
    ];
    let path = dir.join("memory.png");
    plot_bars("peak GPU memory per method", "GiB", &bars, &path).unwrap();
    assert_eq!(decode(&path).0, bars_size(3));
    // A name with no space to break at turns every name vertical; negative values hang.
    let bars = vec![
        ("fe_adapter_clip_vit_b16_16x4_dfew_fold1".to_string(), 0.8),
        ("baseline".to_string(), -0.3),
    ];
    let path = dir.join("delta.png");
    plot_bars("change in UAR", "Δ UAR", &bars, &path).unwrap();
    assert_eq!(decode(&path).0, bars_size(2));
}

#[test]
fn bar_chart_rejects_nan_huge_values_and_unwritable_paths() {
    let (_keep, dir) = out_dir();
    let err = plot_bars(
        "t",
        "y",
        &[("a".to_string(), f64::NAN)],
        dir.join("nan.png"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("nan.png") && err.contains("bar `a`"), "{err}");
    let huge = [("a".to_string(), 1e308), ("b".to_string(), -1e308)];
    let err = plot_bars("t", "y", &huge, dir.join("huge.png"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("huge.png") && err.contains("too large"),
        "{err}"
    );
    // A path under a regular file cannot be written.
    let file = dir.join("not_a_dir");
    std::fs::write(&file, "x").unwrap();
    let err = plot_bars("t", "y", &[("a".to_string(), 1.0)], file.join("x.png"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not_a_dir"), "{err}");
}
