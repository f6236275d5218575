//! Face alignment: a similarity transform (rotation, uniform scale, translation; never a
//! reflection) that carries a face's five landmarks onto a canonical template, and the warp
//! of the frame into a square crop with it.
//!
//! # Convention (matches insightface's `norm_crop`)
//!
//! This is the 5-point similarity alignment of insightface / RetinaFace pipelines, the
//! preprocessing that ArcFace-style face models and most DFER work (FER on aligned crops,
//! e.g. FE-Adapter-style training) use:
//!
//! - **Template.** insightface's `arcface_dst` for a 112×112 crop, (38.2946, 51.6963),
//!   (73.5318, 51.5014), (56.0252, 71.7366), (41.5493, 92.3655), (70.7299, 92.2041): left
//!   eye, right eye, nose tip, left and right mouth corner as the image shows them. For an
//!   output side `size` it is multiplied by `size / 112` (insightface's `estimate_norm` for
//!   sizes that are multiples of 112; its 128-based variant is not reproduced). With margin
//!   `m` every point `p` then becomes `c + (p − c) / (1 + m)`, `c = (size/2, size/2)`: the
//!   face shrinks about the crop's centre so that the tight ArcFace crop fills the central
//!   `1/(1+m)` of the side and `m/2` of it shows as context on each side. `m = 0` is
//!   exactly `norm_crop` at that size. See [`template`].
//! - **Estimate.** [`similarity`] is Umeyama's least-squares similarity (what skimage's
//!   `SimilarityTransform.estimate` computes, which insightface calls) from the landmarks
//!   *as given* to the template, in f64.
//! - **Warp.** [`align`] samples output pixel `(x, y)` at the *integer* coordinates
//!   `(x, y)` mapped through the inverse transform, and reads the frame with its pixel
//!   `(i, j)` at integer `(i, j)`; bilinear; taps outside the frame are black. That is
//!   `cv2.warpAffine(img, M, (size, size), borderValue=0)` (`INTER_LINEAR`,
//!   `BORDER_CONSTANT`) exactly as insightface calls it, so for the same landmark numbers
//!   our crop is insightface's crop. Note that this treats pixel centres as integers while
//!   [`super`] documents them at `i + 0.5`; the landmarks are deliberately *not* shifted
//!   by half a pixel, because models trained on insightface crops saw that same
//!   convention. cv2's fixed-point bilinear differs from ours by at most one grey level.
//!
//! `scripts/make_align_fixture.py` computes reference crops with skimage and cv2;
//! the tests check the matrices to 1e-4 and the pixels to ±1.

use crate::data::decode::Frame;
use crate::error::{Error, Result};

/// insightface's ArcFace template for a 112×112 crop (`arcface_dst` in `face_align.py`).
pub const ARCFACE_112: [[f32; 2]; 5] = [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
];

/// A 2×3 affine matrix `[[a, b, tx], [c, d, ty]]` mapping `(x, y)` to
/// `(a x + b y + tx, c x + d y + ty)`, as cv2 and skimage write it.
pub type Affine = [[f32; 3]; 2];

/// Settings of the aligned crop.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AlignConfig {
    /// Output side in pixels (square crop); default 224.
    pub size: usize,
    /// Extra context around the tight ArcFace crop, as a fraction of it (0 = exactly
    /// insightface's `norm_crop`); default 0.25.
    pub margin: f32,
}

impl Default for AlignConfig {
    fn default() -> Self {
        AlignConfig {
            size: 224,
            margin: 0.25,
        }
    }
}

impl AlignConfig {
    /// Largest accepted [`AlignConfig::size`].
    pub const MAX_SIZE: usize = 4096;

    /// Checks every field; the error names the field, the value and what is allowed.
    pub fn validate(&self) -> Result<()> {
        if !(1..=Self::MAX_SIZE).contains(&self.size) {
            return Err(Error::Input(format!(
                "face alignment: `size` must be from 1 to {} pixels (got {})",
                Self::MAX_SIZE,
                self.size
            )));
        }
        if !(0.0..=2.0).contains(&self.margin) {
            return Err(Error::Input(format!(
                "face alignment: `margin` must be from 0 to 2 (got {})",
                self.margin
            )));
        }
        Ok(())
    }
}

/// The five template points for `cfg` in output-pixel coordinates (see the module doc):
/// `c + (ARCFACE_112 · size/112 − c) / (1 + margin)` with `c = size / 2`.
pub fn template(cfg: &AlignConfig) -> [[f32; 2]; 5] {
    let size = cfg.size as f64;
    let ratio = size / 112.0;
    let c = size / 2.0;
    let shrink = 1.0 / (1.0 + cfg.margin as f64);
    ARCFACE_112.map(|[x, y]| {
        [
            (c + (x as f64 * ratio - c) * shrink) as f32,
            (c + (y as f64 * ratio - c) * shrink) as f32,
        ]
    })
}

/// The least-squares similarity transform (rotation, uniform scale, translation; never a
/// reflection) carrying `src` onto `dst`: Umeyama's estimate, computed in f64, equal to
/// skimage's `SimilarityTransform.estimate(src, dst)`. If the `src` points coincide (no
/// scale or rotation is defined) it is the translation of their mean onto `dst`'s mean.
pub fn similarity(src: &[[f32; 2]; 5], dst: &[[f32; 2]; 5]) -> Affine {
    let n = src.len() as f64;
    let mean = |p: &[[f32; 2]; 5]| {
        let (mut x, mut y) = (0.0, 0.0);
        for q in p {
            x += q[0] as f64;
            y += q[1] as f64;
        }
        (x / n, y / n)
    };
    let (sx, sy) = mean(src);
    let (dx, dy) = mean(dst);
    // Over rotations R(θ) and scales s, Σ|s R p − q|² (demeaned) is least at
    // s cos θ = Σ p·q / Σ|p|², s sin θ = Σ p×q / Σ|p|².
    let (mut dot, mut cross, mut norm) = (0.0, 0.0, 0.0);
    for (p, q) in src.iter().zip(dst) {
        let (px, py) = (p[0] as f64 - sx, p[1] as f64 - sy);
        let (qx, qy) = (q[0] as f64 - dx, q[1] as f64 - dy);
        dot += px * qx + py * qy;
        cross += px * qy - py * qx;
        norm += px * px + py * py;
    }
    let (a, b) = if norm > 1e-12 {
        (dot / norm, cross / norm)
    } else {
        (1.0, 0.0)
    };
    let tx = dx - (a * sx - b * sy);
    let ty = dy - (b * sx + a * sy);
    [
        [a as f32, -b as f32, tx as f32],
        [b as f32, a as f32, ty as f32],
    ]
}

/// The transform [`align`] applies for `landmarks` and `cfg`: frame coordinates to crop
/// coordinates (invert it to map a crop point back into the frame).
pub fn align_matrix(landmarks: &[[f32; 2]; 5], cfg: &AlignConfig) -> Affine {
    similarity(landmarks, &template(cfg))
}

/// The `cfg.size`² crop of `frame` whose face, with these five landmarks, sits on the
/// template (see the module doc for the exact convention). Never panics: a degenerate
/// transform or landmarks off the frame give black pixels.
pub fn align(frame: &Frame, landmarks: &[[f32; 2]; 5], cfg: &AlignConfig) -> Frame {
    warp_affine(frame, &align_matrix(landmarks, cfg), cfg.size, cfg.size)
}

/// `cv2.warpAffine(frame, m, (width, height), flags=INTER_LINEAR,
/// borderMode=BORDER_CONSTANT, borderValue=0)`: output pixel `(x, y)` is the frame
/// sampled bilinearly at `m⁻¹ (x, y)`, pixel centres at integer coordinates on both sides,
/// taps outside the frame black. A singular or non-finite `m` gives a black image.
pub fn warp_affine(frame: &Frame, m: &Affine, width: usize, height: usize) -> Frame {
    let mut out = Frame {
        width,
        height,
        data: vec![0; width * height * 3],
    };
    let [[a, b, tx], [c, d, ty]] = m.map(|r| r.map(|v| v as f64));
    let det = a * d - b * c;
    if !(det.is_finite() && det.abs() > 1e-12 && tx.is_finite() && ty.is_finite()) {
        return out;
    }
    // Inverse of [[a, b], [c, d]] and its translation.
    let (ia, ib, ic, id) = (d / det, -b / det, -c / det, a / det);
    let (itx, ity) = (-(ia * tx + ib * ty), -(ic * tx + id * ty));
    let (w, h) = (frame.width as i64, frame.height as i64);
    if w == 0 || h == 0 || frame.data.len() < frame.width * frame.height * 3 {
        return out;
    }
    let src = &frame.data;
    let tap = |x: i64, y: i64, ch: usize| -> f64 {
        if x < 0 || y < 0 || x >= w || y >= h {
            0.0
        } else {
            src[((y * w + x) * 3) as usize + ch] as f64
        }
    };
    for y in 0..height {
        for x in 0..width {
            let sx = ia * x as f64 + ib * y as f64 + itx;
            let sy = ic * x as f64 + id * y as f64 + ity;
            // Far outside (also guards the integer conversion): black.
            if !(sx > -2.0 && sy > -2.0 && sx < (w + 1) as f64 && sy < (h + 1) as f64) {
                continue;
            }
            let (x0, y0) = (sx.floor(), sy.floor());
            let (fx, fy) = (sx - x0, sy - y0);
            let (x0, y0) = (x0 as i64, y0 as i64);
            let o = (y * width + x) * 3;
            for ch in 0..3 {
                let top = tap(x0, y0, ch) * (1.0 - fx) + tap(x0 + 1, y0, ch) * fx;
                let bottom = tap(x0, y0 + 1, ch) * (1.0 - fx) + tap(x0 + 1, y0 + 1, ch) * fx;
                let v = top * (1.0 - fy) + bottom * fy;
                out.data[o + ch] = (v + 0.5).floor().clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(m: &Affine, p: [f32; 2]) -> [f32; 2] {
        [
            m[0][0] * p[0] + m[0][1] * p[1] + m[0][2],
            m[1][0] * p[0] + m[1][1] * p[1] + m[1][2],
        ]
    }

    #[test]
    fn recovers_a_known_similarity_exactly() {
        let (s, th, t) = (1.7f64, 0.4f64, [12.5f64, -3.25]);
        let truth = [
            [s * th.cos(), -s * th.sin(), t[0]],
            [s * th.sin(), s * th.cos(), t[1]],
        ];
        let truth32 = truth.map(|r| r.map(|v| v as f32));
        let src = [
            [10.0, 20.0],
            [40.0, 18.0],
            [25.0, 35.0],
            [14.0, 50.0],
            [38.0, 52.0],
        ];
        let dst = src.map(|p| apply(&truth32, p));
        let m = similarity(&src, &dst);
        for r in 0..2 {
            for c in 0..3 {
                assert!(
                    (m[r][c] as f64 - truth[r][c]).abs() < 1e-4,
                    "{m:?} vs {truth:?}"
                );
            }
        }
    }

    #[test]
    fn never_produces_a_reflection() {
        // dst is src mirrored: the best similarity is a rotation, det > 0.
        let src = [
            [10.0, 20.0],
            [40.0, 18.0],
            [25.0, 35.0],
            [14.0, 50.0],
            [38.0, 52.0],
        ];
        let dst = src.map(|[x, y]| [100.0 - x, y]);
        let m = similarity(&src, &dst);
        let det = m[0][0] * m[1][1] - m[0][1] * m[1][0];
        assert!(det > 0.0, "{m:?}");
        assert_eq!(m[0][0], m[1][1]);
        assert_eq!(m[0][1], -m[1][0]);
        // Coincident points: a translation, no NaN.
        let m = similarity(&[[3.0, 4.0]; 5], &dst);
        assert!(m.iter().flatten().all(|v| v.is_finite()));
        assert_eq!((m[0][0], m[0][1]), (1.0, 0.0));
    }

    #[test]
    fn template_is_arcface_at_zero_margin_and_shrinks_about_the_centre() {
        let t = template(&AlignConfig {
            size: 224,
            margin: 0.0,
        });
        for (p, q) in t.iter().zip(ARCFACE_112) {
            assert!((p[0] - 2.0 * q[0]).abs() < 1e-4 && (p[1] - 2.0 * q[1]).abs() < 1e-4);
        }
        let t1 = template(&AlignConfig {
            size: 224,
            margin: 1.0,
        });
        for (p, q) in t1.iter().zip(t) {
            assert!((p[0] - (112.0 + (q[0] - 112.0) / 2.0)).abs() < 1e-4);
            assert!((p[1] - (112.0 + (q[1] - 112.0) / 2.0)).abs() < 1e-4);
        }
    }

    #[test]
    fn validate_names_the_field() {
        assert!(AlignConfig::default().validate().is_ok());
        let e = AlignConfig {
            size: 0,
            margin: 0.0,
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("`size`"), "{e}");
        let e = AlignConfig {
            size: 112,
            margin: f32::NAN,
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("`margin`"), "{e}");
        assert!(
            AlignConfig {
                size: 5000,
                margin: 0.0
            }
            .validate()
            .is_err()
        );
    }

    fn pattern(width: usize, height: usize) -> Frame {
        let mut data = Vec::with_capacity(width * height * 3);
        for y in 0..height {
            for x in 0..width {
                data.extend([
                    (x * 255 / width) as u8,
                    (y * 255 / height) as u8,
                    ((x * 7 + y * 13) % 256) as u8,
                ]);
            }
        }
        Frame {
            width,
            height,
            data,
        }
    }

    #[test]
    fn landmarks_on_the_template_give_the_identity() {
        let cfg = AlignConfig {
            size: 112,
            margin: 0.25,
        };
        let frame = pattern(112, 112);
        let crop = align(&frame, &template(&cfg), &cfg);
        assert_eq!(crop.width, 112);
        assert_eq!(crop.data, frame.data);
    }

    #[test]
    fn degenerate_input_gives_black_not_a_panic() {
        let frame = pattern(16, 16);
        let cfg = AlignConfig {
            size: 8,
            margin: 0.0,
        };
        let crop = align(&frame, &[[f32::NAN; 2]; 5], &cfg);
        assert!(crop.data.iter().all(|&v| v == 0));
        let crop = align(&frame, &[[1e9, -1e9]; 5], &cfg);
        assert_eq!(crop.data.len(), 8 * 8 * 3);
        let empty = Frame {
            width: 0,
            height: 0,
            data: vec![],
        };
        assert!(
            align(&empty, &template(&cfg), &cfg)
                .data
                .iter()
                .all(|&v| v == 0)
        );
    }

    /// Reference crops from skimage + cv2 (`scripts/make_align_fixture.py`).
    #[test]
    fn matches_insightface_norm_crop() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/faces");
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("align_fixture.json")).unwrap())
                .unwrap();
        let image = image::open(dir.join(meta["image"].as_str().unwrap()))
            .unwrap()
            .to_rgb8();
        let frame = Frame {
            width: image.width() as usize,
            height: image.height() as usize,
            data: image.into_raw(),
        };
        let lm: Vec<Vec<f32>> = serde_json::from_value(meta["landmarks"].clone()).unwrap();
        let landmarks: [[f32; 2]; 5] = std::array::from_fn(|i| [lm[i][0], lm[i][1]]);
        let cases = meta["cases"].as_array().unwrap();
        assert!(cases.len() >= 2);
        for case in cases {
            let cfg = AlignConfig {
                size: case["size"].as_u64().unwrap() as usize,
                margin: case["margin"].as_f64().unwrap() as f32,
            };
            let want: Vec<Vec<f64>> = serde_json::from_value(case["matrix"].clone()).unwrap();
            let m = align_matrix(&landmarks, &cfg);
            let mut max_m = 0f64;
            for r in 0..2 {
                for c in 0..3 {
                    max_m = max_m.max((m[r][c] as f64 - want[r][c]).abs());
                }
            }
            let crop = align(&frame, &landmarks, &cfg);
            let expected = image::open(dir.join(case["crop"].as_str().unwrap()))
                .unwrap()
                .to_rgb8();
            assert_eq!(
                (expected.width() as usize, expected.height() as usize),
                (cfg.size, cfg.size)
            );
            let max_px = crop
                .data
                .iter()
                .zip(expected.as_raw())
                .map(|(&a, &b)| (a as i32 - b as i32).abs())
                .max()
                .unwrap();
            let off = crop
                .data
                .iter()
                .zip(expected.as_raw())
                .filter(|(a, b)| a != b)
                .count();
            eprintln!(
                "size {} margin {}: max matrix error {max_m:.2e}, max pixel difference {max_px}, \
                 {off} of {} values differ",
                cfg.size,
                cfg.margin,
                crop.data.len()
            );
            assert!(max_m < 1e-4, "matrix {m:?} vs {want:?}");
            assert!(max_px <= 1, "max pixel difference {max_px}");
        }
    }
}
