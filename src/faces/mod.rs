//! Faces in raw video: detection (CenterFace through tract), tracking across frames,
//! alignment to a canonical five-point template, and drawing for annotated output.
//!
//! Coordinates everywhere are a frame's pixel coordinates as decoded (after autorotation):
//! x to the right, y down, origin at the top-left corner of the top-left pixel, so the
//! centre of pixel `(i, j)` is `(i + 0.5, j + 0.5)`.

pub mod detect;

use serde::{Deserialize, Serialize};

pub mod align;
pub mod draw;
pub mod track;

pub use align::{AlignConfig, align};
pub use track::{OneEuro, Track, Tracker, TrackerConfig, main_track};

/// One face found in one frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// Box `[x1, y1, x2, y2]` in pixels, `x1 <= x2`, `y1 <= y2`.
    pub bbox: [f32; 4],
    /// Detector confidence in `0..=1`.
    pub score: f32,
    /// Five landmarks `[x, y]`: the eye, eye, nose tip, mouth corner, mouth corner, each pair
    /// in the order the image shows them (left of the image first).
    pub landmarks: [[f32; 2]; 5],
}

impl Detection {
    /// Box width times height (0 for a degenerate box).
    pub fn area(&self) -> f32 {
        (self.bbox[2] - self.bbox[0]).max(0.0) * (self.bbox[3] - self.bbox[1]).max(0.0)
    }

    /// Intersection over union of the two boxes (0 when either is empty).
    pub fn iou(&self, other: &Detection) -> f32 {
        let [ax1, ay1, ax2, ay2] = self.bbox;
        let [bx1, by1, bx2, by2] = other.bbox;
        let w = (ax2.min(bx2) - ax1.max(bx1)).max(0.0);
        let h = (ay2.min(by2) - ay1.max(by1)).max(0.0);
        let inter = w * h;
        let union = self.area() + other.area() - inter;
        if union > 0.0 { inter / union } else { 0.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(bbox: [f32; 4]) -> Detection {
        Detection {
            bbox,
            score: 1.0,
            landmarks: [[0.0; 2]; 5],
        }
    }

    #[test]
    fn iou_of_half_overlapping_boxes() {
        let a = boxed([0.0, 0.0, 2.0, 2.0]);
        let b = boxed([1.0, 0.0, 3.0, 2.0]);
        assert!((a.iou(&b) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(a.iou(&a), 1.0);
        assert_eq!(a.iou(&boxed([5.0, 5.0, 6.0, 6.0])), 0.0);
        assert_eq!(boxed([1.0, 1.0, 1.0, 1.0]).iou(&a), 0.0);
    }
}
