//! Spatial transforms: a clip of RGB8 frames to a normalised `[T, 3, S, S]` f32 tensor.
//!
//! Contract: takes `T ≥ 1` frames of one size (RGB8, row-major) and returns
//! `T * 3 * S * S` floats, channel-first per frame, `(x / 255 - mean) / std`. Every frame
//! of a clip gets the same crop and flip (a clip is one view of one moment of the scene).
//!
//! - Training: short side resized to `short_side` (256 by default), random resized crop
//!   (area fraction and aspect ratio drawn as torchvision's `RandomResizedCrop`, ten tries,
//!   then a centre crop), resized to `S`, horizontal flip with probability 1/2 unless the
//!   dataset forbids it (SSv2: its labels say "left to right").
//! - Testing: short side to `S`, then a centre crop (1 view) or three crops along the long
//!   side (3 views). The crop box is mapped back to the original frame and resized once,
//!   with a triangle (bilinear, area-aware when shrinking) filter.

use image::{RgbImage, imageops};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::decode::Frame;

/// Spatial settings of a run, resolved: every field set. The run config's `[spatial]`
/// table (`train::config::SpatialSection`) states the defaults and fills them in from the
/// backbone; this record is what the loader and the feature-cache key use, and it is
/// always written whole, so no field has a default here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpatialConfig {
    /// Output side `S` (the backbone's input size).
    pub size: usize,
    /// Training: short side before the random crop.
    pub short_side: usize,
    /// Training: range of the crop's area as a fraction of the resized frame.
    pub area: [f64; 2],
    /// Training: range of the crop's aspect ratio (width / height).
    pub ratio: [f64; 2],
    /// Training: random horizontal flip.
    pub flip: bool,
    /// Normalisation mean (RGB, 0..1 scale); normally the backbone's.
    pub mean: [f32; 3],
    /// Normalisation std (RGB); normally the backbone's.
    pub std: [f32; 3],
}

/// Which spatial view to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Random resized crop + flip (training).
    Train,
    /// Centre crop (1-view testing).
    Center,
    /// Crop `k` (0, 1, 2: start, centre, end of the long side) of three-crop testing.
    ThreeCrop(usize),
}

/// A crop box in original-frame pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Box2 {
    x: u32,
    y: u32,
    w: u32,
    h: u32,
}

fn crop_box(
    width: usize,
    height: usize,
    cfg: &SpatialConfig,
    view: View,
    rng: &mut impl Rng,
) -> Box2 {
    let (w, h) = (width as f64, height as f64);
    let side = w.min(h);
    let square = |x: f64, y: f64| Box2 {
        x: x as u32,
        y: y as u32,
        w: side as u32,
        h: side as u32,
    };
    match view {
        View::Center => square((w - side) / 2.0, (h - side) / 2.0),
        View::ThreeCrop(k) => {
            let t = (k.min(2)) as f64 / 2.0;
            if w >= h {
                square((w - side) * t, 0.0)
            } else {
                square(0.0, (h - side) * t)
            }
        }
        View::Train => {
            // Drawn in short-side-resized coordinates, then mapped back.
            let f = cfg.short_side as f64 / side;
            let (rw, rh) = (w * f, h * f);
            let area = rw * rh;
            let (lo, hi) = (cfg.ratio[0].ln(), cfg.ratio[1].ln());
            for _ in 0..10 {
                let target = area * rng.random_range(cfg.area[0]..=cfg.area[1]);
                let ratio = rng.random_range(lo..=hi).exp();
                let cw = (target * ratio).sqrt();
                let ch = (target / ratio).sqrt();
                if cw <= rw && ch <= rh && cw >= 1.0 && ch >= 1.0 {
                    let x = rng.random_range(0.0..=(rw - cw));
                    let y = rng.random_range(0.0..=(rh - ch));
                    return Box2 {
                        x: (x / f) as u32,
                        y: (y / f) as u32,
                        w: ((cw / f) as u32).clamp(1, width as u32),
                        h: ((ch / f) as u32).clamp(1, height as u32),
                    };
                }
            }
            square((w - side) / 2.0, (h - side) / 2.0)
        }
    }
}

/// Transforms one clip; see the module docs for the contract.
///
/// # Panics
/// If `frames` is empty or the frames differ in size (the decoder guarantees neither).
pub fn clip_to_tensor(
    frames: &[Frame],
    cfg: &SpatialConfig,
    view: View,
    rng: &mut impl Rng,
) -> Vec<f32> {
    assert!(!frames.is_empty(), "a clip has at least one frame");
    let (w, h) = (frames[0].width, frames[0].height);
    let b = crop_box(w, h, cfg, view, rng);
    let flip = view == View::Train && cfg.flip && rng.random_bool(0.5);
    let s = cfg.size;
    let plane = s * s;
    let mut out = vec![0f32; frames.len() * 3 * plane];
    let scale: [f32; 3] = std::array::from_fn(|c| 1.0 / (255.0 * cfg.std[c]));
    let shift: [f32; 3] = std::array::from_fn(|c| cfg.mean[c] / cfg.std[c]);
    for (t, frame) in frames.iter().enumerate() {
        assert_eq!(
            (frame.width, frame.height),
            (w, h),
            "frames of one clip share a size"
        );
        let img = RgbImage::from_raw(w as u32, h as u32, frame.data.clone())
            .expect("frame buffer is width * height * 3 bytes");
        let crop = imageops::crop_imm(&img, b.x, b.y, b.w, b.h).to_image();
        let resized = imageops::resize(&crop, s as u32, s as u32, imageops::FilterType::Triangle);
        let dst = &mut out[t * 3 * plane..(t + 1) * 3 * plane];
        for (i, px) in resized.pixels().enumerate() {
            let (y, x) = (i / s, i % s);
            let x = if flip { s - 1 - x } else { x };
            for c in 0..3 {
                dst[c * plane + y * s + x] = px[c] as f32 * scale[c] - shift[c];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn cfg(size: usize) -> SpatialConfig {
        SpatialConfig {
            size,
            short_side: 256,
            area: [0.08, 1.0],
            ratio: [3.0 / 4.0, 4.0 / 3.0],
            flip: true,
            mean: [0.5; 3],
            std: [0.5; 3],
        }
    }

    /// A frame whose red channel is the column index and green the row index.
    fn gradient(w: usize, h: usize) -> Frame {
        let mut data = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                data.extend([x as u8, y as u8, 128]);
            }
        }
        Frame {
            width: w,
            height: h,
            data,
        }
    }

    #[test]
    fn center_crop_of_same_size_square_is_identity_after_normalisation() {
        let f = gradient(8, 8);
        let out = clip_to_tensor(&[f], &cfg(8), View::Center, &mut StdRng::seed_from_u64(0));
        // red plane, row 0, column 3: (3/255 - 0.5) / 0.5
        assert!((out[3] - (3.0 / 255.0 - 0.5) / 0.5).abs() < 1e-6);
        // blue plane constant 128
        assert!((out[2 * 64 + 10] - (128.0 / 255.0 - 0.5) / 0.5).abs() < 1e-6);
    }

    #[test]
    fn three_crops_cover_start_centre_end_of_long_side() {
        let mut r = StdRng::seed_from_u64(0);
        let c = cfg(4);
        let boxes: Vec<Box2> = (0..3)
            .map(|k| crop_box(40, 20, &c, View::ThreeCrop(k), &mut r))
            .collect();
        assert_eq!(
            boxes.iter().map(|b| b.x).collect::<Vec<_>>(),
            vec![0, 10, 20]
        );
        assert!(boxes.iter().all(|b| b.w == 20 && b.h == 20 && b.y == 0));
    }

    #[test]
    fn random_crop_stays_inside_frame() {
        let mut r = StdRng::seed_from_u64(1);
        let c = cfg(16);
        for _ in 0..500 {
            let b = crop_box(320, 240, &c, View::Train, &mut r);
            assert!(
                b.x + b.w <= 320 && b.y + b.h <= 240 && b.w >= 1 && b.h >= 1,
                "{b:?}"
            );
        }
    }

    #[test]
    fn every_frame_of_a_clip_gets_the_same_crop_and_flip() {
        let frames = vec![gradient(64, 48), gradient(64, 48)];
        let out = clip_to_tensor(
            &frames,
            &cfg(16),
            View::Train,
            &mut StdRng::seed_from_u64(3),
        );
        let per = 3 * 16 * 16;
        assert_eq!(&out[..per], &out[per..]);
    }

    #[test]
    fn flip_off_never_mirrors() {
        let mut c = cfg(8);
        c.flip = false;
        c.area = [1.0, 1.0];
        c.ratio = [1.0, 1.0];
        c.short_side = 8;
        let f = gradient(8, 8);
        for seed in 0..20 {
            let out = clip_to_tensor(
                std::slice::from_ref(&f),
                &c,
                View::Train,
                &mut StdRng::seed_from_u64(seed),
            );
            assert!(out[0] < out[7], "red grows left to right unless flipped");
        }
    }

    #[test]
    fn flip_mirrors_about_half_the_time() {
        let mut c = cfg(8);
        c.area = [1.0, 1.0];
        c.ratio = [1.0, 1.0];
        c.short_side = 8;
        let f = gradient(8, 8);
        let mut r = StdRng::seed_from_u64(5);
        let flipped = (0..200)
            .filter(|_| {
                let out = clip_to_tensor(std::slice::from_ref(&f), &c, View::Train, &mut r);
                out[0] > out[7]
            })
            .count();
        assert!((60..140).contains(&flipped), "{flipped}");
    }
}
