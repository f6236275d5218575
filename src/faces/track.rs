//! Tracking faces across frames, and smoothing their boxes and landmarks over time.
//!
//! [`Tracker`] links per-frame [`Detection`]s into tracks. Each live track predicts its
//! box at the new frame with a constant velocity (from its last two matched detections,
//! scaled by the frames elapsed, so detection every N frames works), and detections are
//! matched to tracks greedily, highest IoU between detection and predicted box first
//! (ties: lower track id, then earlier detection), pairs below [`TrackerConfig::iou`]
//! never matched. The prediction is what keeps two faces crossing each other apart: at
//! the crossing a face's detection overlaps its own predicted box more than the other
//! face's last box. Landmarks are not used for matching: once boxes overlap enough to
//! pass the IoU gate, landmark distance adds nothing a detector's landmark noise would not
//! blur. Unmatched detections start new tracks; ids count up from 0 in order of creation
//! (within a frame, in the order of the detections given), so a run is deterministic.
//!
//! [`Tracker::finish`] gives the [`Track`]s with enough detections, whose
//! [`Track::filled`] and [`Track::smoothed`] give one detection per frame for cropping
//! (offline: gaps interpolated, then a centred Gaussian over time). For live display,
//! where the future is unknown, [`OneEuro`] smooths causally.

use super::Detection;
use crate::error::{Error, Result};

/// Settings of the [`Tracker`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrackerConfig {
    /// Least IoU between a detection and a track's predicted box to match them; default 0.3.
    pub iou: f32,
    /// Frames a track survives without a match: a face missing for up to this many
    /// consecutive frames (frames where the detector did not run count too) keeps its id;
    /// default 12.
    pub max_miss: usize,
    /// Frames with a matched detection before a track is reported; default 3.
    pub min_hits: usize,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            iou: 0.3,
            max_miss: 12,
            min_hits: 3,
        }
    }
}

impl TrackerConfig {
    /// Checks every field; the error names the field, the value and what is allowed.
    pub fn validate(&self) -> Result<()> {
        if !(self.iou > 0.0 && self.iou <= 1.0) {
            return Err(Error::Input(format!(
                "face tracking: `iou` must be in (0, 1] (got {})",
                self.iou
            )));
        }
        if self.max_miss > 100_000 {
            return Err(Error::Input(format!(
                "face tracking: `max_miss` must be at most 100000 frames (got {})",
                self.max_miss
            )));
        }
        if self.min_hits == 0 {
            return Err(Error::Input(
                "face tracking: `min_hits` must be at least 1 (got 0)".into(),
            ));
        }
        Ok(())
    }
}

/// One face over time.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    /// Id, dense from 0 in order of first appearance (after [`Tracker::finish`]).
    pub id: u32,
    /// Frame of the first detection.
    pub first: usize,
    /// One entry per frame from `first` to the last matched frame, inclusive: the matched
    /// detection, or `None` where the face was missed or the detector did not run.
    pub detections: Vec<Option<Detection>>,
}

impl Track {
    /// Frame of the last detection.
    pub fn last(&self) -> usize {
        self.first + self.detections.len().saturating_sub(1)
    }

    /// Frames with a detection.
    pub fn hits(&self) -> usize {
        self.detections.iter().flatten().count()
    }

    /// Mean box area over the detections (0 for none).
    pub fn mean_area(&self) -> f32 {
        let hits = self.hits();
        if hits == 0 {
            return 0.0;
        }
        self.detections
            .iter()
            .flatten()
            .map(|d| d.area())
            .sum::<f32>()
            / hits as f32
    }

    /// One detection per frame from [`Track::first`] to [`Track::last`]: gaps linearly
    /// interpolated (box, landmarks and score) between the detections either side; a gap
    /// at either end (only in a hand-built track) repeats the nearest detection.
    pub fn filled(&self) -> Vec<Detection> {
        let known: Vec<(usize, Detection)> = self
            .detections
            .iter()
            .enumerate()
            .filter_map(|(i, d)| d.map(|d| (i, d)))
            .collect();
        if known.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(self.detections.len());
        let mut k = 0; // known[k] is the last detection at or before i.
        for i in 0..self.detections.len() {
            while k + 1 < known.len() && known[k + 1].0 <= i {
                k += 1;
            }
            let (a, da) = known[k];
            if a == i || i < a || k + 1 == known.len() {
                out.push(da);
                continue;
            }
            let (b, db) = known[k + 1];
            let t = (i - a) as f32 / (b - a) as f32;
            out.push(lerp(&da, &db, t));
        }
        out
    }

    /// [`Track::filled`], then each box and landmark coordinate averaged over time with a
    /// centred Gaussian of `sigma` frames (truncated at 3σ; near the ends the kernel is cut
    /// and renormalised), so crops do not jitter. Scores are not smoothed. `sigma <= 0` (or
    /// not finite) returns the filled track unchanged; a constant track stays exactly
    /// constant.
    pub fn smoothed(&self, sigma: f32) -> Vec<Detection> {
        let filled = self.filled();
        if !(sigma > 0.0 && sigma.is_finite()) || filled.len() < 2 {
            return filled;
        }
        let sigma = sigma as f64;
        let radius = ((3.0 * sigma).ceil() as usize).min(filled.len());
        let weights: Vec<f64> = (0..=radius)
            .map(|k| (-0.5 * (k as f64 / sigma).powi(2)).exp())
            .collect();
        let n = filled.len();
        (0..n)
            .map(|t| {
                let lo = t.saturating_sub(radius);
                let hi = (t + radius).min(n - 1);
                let total: f64 = (lo..=hi).map(|s| weights[s.abs_diff(t)]).sum();
                // Averages of differences from the value at t: a constant stays exact.
                let avg = |get: &dyn Fn(&Detection) -> f32| -> f32 {
                    let c = get(&filled[t]) as f64;
                    let sum: f64 = (lo..=hi)
                        .map(|s| weights[s.abs_diff(t)] * (get(&filled[s]) as f64 - c))
                        .sum();
                    (c + sum / total) as f32
                };
                let mut d = filled[t];
                for j in 0..4 {
                    d.bbox[j] = avg(&|x: &Detection| x.bbox[j]);
                }
                for p in 0..5 {
                    for j in 0..2 {
                        d.landmarks[p][j] = avg(&|x: &Detection| x.landmarks[p][j]);
                    }
                }
                d
            })
            .collect()
    }
}

/// `a + (b − a) t` for box, landmarks and score.
fn lerp(a: &Detection, b: &Detection, t: f32) -> Detection {
    let l = |x: f32, y: f32| x + (y - x) * t;
    Detection {
        bbox: std::array::from_fn(|j| l(a.bbox[j], b.bbox[j])),
        score: l(a.score, b.score),
        landmarks: std::array::from_fn(|p| {
            std::array::from_fn(|j| l(a.landmarks[p][j], b.landmarks[p][j]))
        }),
    }
}

/// The index in `tracks` of the main face, for single-label use: the track with the most
/// detections ([`Track::hits`]); among equals the larger mean box area
/// ([`Track::mean_area`], the face nearer the camera); then the lower id. `None` for no
/// tracks.
pub fn main_track(tracks: &[Track]) -> Option<usize> {
    (0..tracks.len()).min_by(|&i, &j| {
        let (a, b) = (&tracks[i], &tracks[j]);
        b.hits()
            .cmp(&a.hits())
            .then(b.mean_area().total_cmp(&a.mean_area()))
            .then(a.id.cmp(&b.id))
    })
}

/// A track being built.
#[derive(Debug, Clone)]
struct Live {
    track: Track,
    /// Hits so far.
    hits: usize,
    /// Frame of the last match.
    last: usize,
    /// Box velocity in pixels per frame, from the last two matches (0 after one).
    velocity: [f32; 4],
}

impl Live {
    fn last_detection(&self) -> Detection {
        self.track
            .detections
            .last()
            .copied()
            .flatten()
            .expect("a live track ends with its last match")
    }

    /// The box expected at `frame`.
    fn predicted(&self, frame: usize) -> Detection {
        let mut d = self.last_detection();
        let dt = frame.saturating_sub(self.last) as f32;
        for j in 0..4 {
            d.bbox[j] += self.velocity[j] * dt;
        }
        d
    }
}

/// Links detections across frames into tracks (see the module doc).
#[derive(Debug, Clone)]
pub struct Tracker {
    cfg: TrackerConfig,
    live: Vec<Live>,
    done: Vec<Live>,
    next_id: u32,
    frame: Option<usize>,
    /// Ids matched at the last update.
    matched_now: Vec<u32>,
}

impl Tracker {
    /// An empty tracker (`cfg` is used as given; [`TrackerConfig::validate`] it first).
    pub fn new(cfg: TrackerConfig) -> Self {
        Tracker {
            cfg,
            live: Vec::new(),
            done: Vec::new(),
            next_id: 0,
            frame: None,
            matched_now: Vec::new(),
        }
    }

    /// Adds the detections of `frame` (all faces the detector found there, possibly none).
    /// Frame indices must increase but may skip frames the detector did not run on; an
    /// update for a frame not after the previous one is ignored.
    pub fn update(&mut self, frame: usize, dets: &[Detection]) {
        if self.frame.is_some_and(|f| frame <= f) {
            return;
        }
        self.frame = Some(frame);
        // Retire tracks missing for more than max_miss frames.
        let max_miss = self.cfg.max_miss;
        let (keep, gone): (Vec<Live>, Vec<Live>) = std::mem::take(&mut self.live)
            .into_iter()
            .partition(|l| frame - l.last - 1 <= max_miss);
        self.live = keep;
        self.done.extend(gone);

        let valid = |d: &Detection| d.bbox.iter().all(|v| v.is_finite());
        let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
        for (ti, l) in self.live.iter().enumerate() {
            let p = l.predicted(frame);
            for (di, d) in dets.iter().enumerate() {
                if !valid(d) {
                    continue;
                }
                let iou = p.iou(d);
                if iou >= self.cfg.iou {
                    pairs.push((iou, ti, di));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        let mut track_used = vec![false; self.live.len()];
        let mut det_used = vec![false; dets.len()];
        self.matched_now.clear();
        for (_, ti, di) in pairs {
            if track_used[ti] || det_used[di] {
                continue;
            }
            track_used[ti] = true;
            det_used[di] = true;
            let l = &mut self.live[ti];
            let d = dets[di];
            let prev = l.last_detection();
            let dt = (frame - l.last) as f32;
            l.velocity = std::array::from_fn(|j| (d.bbox[j] - prev.bbox[j]) / dt);
            l.track
                .detections
                .extend(std::iter::repeat_n(None, frame - l.last - 1));
            l.track.detections.push(Some(d));
            l.last = frame;
            l.hits += 1;
            self.matched_now.push(l.track.id);
        }
        for (di, d) in dets.iter().enumerate() {
            if det_used[di] || !valid(d) {
                continue;
            }
            let id = self.next_id;
            self.next_id += 1;
            self.live.push(Live {
                track: Track {
                    id,
                    first: frame,
                    detections: vec![Some(*d)],
                },
                hits: 1,
                last: frame,
                velocity: [0.0; 4],
            });
            self.matched_now.push(id);
        }
    }

    /// The tracks alive at the last update that have at least
    /// [`TrackerConfig::min_hits`] detections, by id, each with the detection matched at
    /// that update, or its last one if it was missed there (so a box does not flicker when
    /// the detector misses a frame). Ids are the tracker's creation ids, which
    /// [`Tracker::finish`] renumbers.
    pub fn active(&self) -> Vec<(u32, Detection)> {
        let mut out: Vec<(u32, Detection)> = self
            .live
            .iter()
            .filter(|l| l.hits >= self.cfg.min_hits)
            .map(|l| (l.track.id, l.last_detection()))
            .collect();
        out.sort_by_key(|(id, _)| *id);
        out
    }

    /// Whether the track with creation id `id` was matched at the last update.
    pub fn matched(&self, id: u32) -> bool {
        self.matched_now.contains(&id)
    }

    /// All tracks with at least [`TrackerConfig::min_hits`] detections, in order of first
    /// appearance (then of creation), ids renumbered densely from 0 in that order.
    pub fn finish(self) -> Vec<Track> {
        let min_hits = self.cfg.min_hits;
        let mut all: Vec<Track> = self
            .done
            .into_iter()
            .chain(self.live)
            .filter(|l| l.hits >= min_hits)
            .map(|l| l.track)
            .collect();
        all.sort_by_key(|t| (t.first, t.id));
        for (i, t) in all.iter_mut().enumerate() {
            t.id = i as u32;
        }
        all
    }
}

/// A causal smoother of one face's detections for live display: a One-Euro filter
/// (Casiez et al., CHI 2012) on the box and landmarks, time in frames. Its cutoff
/// frequency rises with the face's speed, so a still face is smoothed hard (no jitter)
/// and a moving one follows with little lag. One cutoff is shared by all fourteen
/// coordinates, computed from the box centre's low-passed velocity in box sizes per frame, so the
/// landmarks move rigidly with the box and the filter does not depend on the face's size
/// in pixels. Scores pass through.
#[derive(Debug, Clone)]
pub struct OneEuro {
    /// Cutoff at rest, cycles per frame.
    pub min_cutoff: f32,
    /// Cutoff increase per unit of speed (box sizes per frame).
    pub beta: f32,
    /// Cutoff of the speed estimate, cycles per frame.
    pub d_cutoff: f32,
    /// Last output and the smoothed centre velocity (box sizes per frame).
    state: Option<(Detection, [f32; 2])>,
}

impl Default for OneEuro {
    /// At rest a cutoff of 0.04 cycles per frame (about 1 Hz at 25 fps); moving at 0.1 box
    /// sizes per frame raises it to 0.54.
    fn default() -> Self {
        OneEuro::new(0.04, 5.0)
    }
}

impl OneEuro {
    /// A filter with these settings (speed cutoff 0.05 cycles per frame) and no history.
    pub fn new(min_cutoff: f32, beta: f32) -> Self {
        OneEuro {
            min_cutoff,
            beta,
            d_cutoff: 0.05,
            state: None,
        }
    }

    /// Forgets the history (a new face, a scene cut).
    pub fn reset(&mut self) {
        self.state = None;
    }

    /// The smoothed detection for `d`, one frame after the previous call.
    pub fn smooth(&mut self, d: &Detection) -> Detection {
        self.smooth_dt(d, 1.0)
    }

    /// The smoothed detection for `d`, `dt` frames after the previous call (detection
    /// every N frames: `dt = N`). A non-finite detection is returned as it is and leaves
    /// the state alone.
    pub fn smooth_dt(&mut self, d: &Detection, dt: f32) -> Detection {
        let finite = d
            .bbox
            .iter()
            .chain(d.landmarks.iter().flatten())
            .all(|v| v.is_finite());
        if !finite {
            return *d;
        }
        let dt = if dt > 0.0 && dt.is_finite() { dt } else { 1.0 };
        let Some((prev, speed)) = self.state else {
            self.state = Some((*d, [0.0; 2]));
            return *d;
        };
        let alpha = |cutoff: f32| {
            let tau = 1.0 / (2.0 * std::f32::consts::PI * cutoff.max(1e-6));
            1.0 / (1.0 + tau / dt)
        };
        let centre = |x: &Detection| [(x.bbox[0] + x.bbox[2]) / 2.0, (x.bbox[1] + x.bbox[3]) / 2.0];
        let size = prev.area().sqrt().max(1.0);
        let (c0, c1) = (centre(&prev), centre(d));
        // The signed velocity is low-passed before its magnitude is taken, as in the
        // original filter: jitter that flips sign cancels instead of reading as speed.
        let a_d = alpha(self.d_cutoff);
        let speed: [f32; 2] =
            std::array::from_fn(|k| speed[k] + a_d * ((c1[k] - c0[k]) / size / dt - speed[k]));
        let a = alpha(self.min_cutoff + self.beta * speed[0].hypot(speed[1]));
        let f = |p: f32, x: f32| p + a * (x - p);
        let out = Detection {
            bbox: std::array::from_fn(|j| f(prev.bbox[j], d.bbox[j])),
            score: d.score,
            landmarks: std::array::from_fn(|p| {
                std::array::from_fn(|j| f(prev.landmarks[p][j], d.landmarks[p][j]))
            }),
        };
        self.state = Some((out, speed));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(cx: f32, cy: f32, side: f32) -> Detection {
        let h = side / 2.0;
        Detection {
            bbox: [cx - h, cy - h, cx + h, cy + h],
            score: 0.9,
            landmarks: [
                [cx - 0.3 * side, cy - 0.1 * side],
                [cx + 0.3 * side, cy - 0.1 * side],
                [cx, cy + 0.1 * side],
                [cx - 0.2 * side, cy + 0.3 * side],
                [cx + 0.2 * side, cy + 0.3 * side],
            ],
        }
    }

    fn cfg() -> TrackerConfig {
        TrackerConfig::default()
    }

    #[test]
    fn validate_names_the_field() {
        assert!(cfg().validate().is_ok());
        let e = TrackerConfig { iou: 0.0, ..cfg() }
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("`iou`"), "{e}");
        let e = TrackerConfig {
            min_hits: 0,
            ..cfg()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("`min_hits`"), "{e}");
    }

    #[test]
    fn empty_input_gives_no_tracks() {
        let mut t = Tracker::new(cfg());
        assert!(t.clone().finish().is_empty());
        for f in 0..10 {
            t.update(f, &[]);
        }
        assert!(t.active().is_empty());
        assert!(t.finish().is_empty());
        assert_eq!(main_track(&[]), None);
    }

    #[test]
    fn crossing_faces_keep_their_ids() {
        let mut t = Tracker::new(cfg());
        // A moves right, B left, on the same row; they cross at frame 20. The detector
        // lists them in x order, so the list order swaps at the crossing.
        for f in 0..40 {
            let a = face(20.0 + 4.0 * f as f32, 100.0, 40.0);
            let b = face(180.0 - 4.0 * f as f32, 100.0, 40.0);
            let mut dets = vec![a, b];
            dets.sort_by(|x, y| x.bbox[0].total_cmp(&y.bbox[0]));
            t.update(f, &dets);
        }
        let tracks = t.finish();
        assert_eq!(tracks.len(), 2);
        for (tr, dir) in tracks.iter().zip([1.0f32, -1.0]) {
            assert_eq!(tr.hits(), 40);
            let xs: Vec<f32> = tr.detections.iter().flatten().map(|d| d.bbox[0]).collect();
            assert!(xs.windows(2).all(|w| (w[1] - w[0]) * dir > 0.0), "{xs:?}");
        }
    }

    #[test]
    fn a_face_survives_max_miss_frames_and_not_more() {
        for (gap, tracks) in [(12usize, 1usize), (13, 2)] {
            let mut t = Tracker::new(cfg());
            let d = face(50.0, 50.0, 30.0);
            for f in 0..5 {
                t.update(f, &[d]);
            }
            for f in 5..5 + gap {
                t.update(f, &[]);
            }
            for f in 5 + gap..10 + gap {
                t.update(f, &[d]);
            }
            let got = t.finish();
            assert_eq!(got.len(), tracks, "gap {gap}");
            if tracks == 1 {
                assert_eq!(got[0].hits(), 10);
                assert_eq!(got[0].detections.len(), 10 + gap);
                assert!(got[0].detections[5..5 + gap].iter().all(Option::is_none));
            } else {
                assert_eq!((got[0].id, got[1].id), (0, 1));
                assert_eq!(got[1].first, 5 + gap);
            }
        }
    }

    #[test]
    fn sparse_detection_is_filled_by_interpolation() {
        let mut t = Tracker::new(cfg());
        for f in (0..30).step_by(3) {
            t.update(f, &[face(10.0 + 2.0 * f as f32, 50.0, 30.0)]);
        }
        let tracks = t.finish();
        assert_eq!(tracks.len(), 1);
        let tr = &tracks[0];
        assert_eq!((tr.first, tr.last(), tr.hits()), (0, 27, 10));
        let filled = tr.filled();
        assert_eq!(filled.len(), 28);
        for (f, d) in filled.iter().enumerate() {
            let want = face(10.0 + 2.0 * f as f32, 50.0, 30.0);
            for j in 0..4 {
                assert!((d.bbox[j] - want.bbox[j]).abs() < 1e-4, "frame {f}");
            }
            for p in 0..5 {
                for j in 0..2 {
                    assert!((d.landmarks[p][j] - want.landmarks[p][j]).abs() < 1e-4);
                }
            }
        }
    }

    #[test]
    fn smoothing_reduces_jitter_and_keeps_constants() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let still = face(100.0, 80.0, 50.0);
        let noisy: Vec<Option<Detection>> = (0..60)
            .map(|_| {
                let mut d = still;
                let (dx, dy) = (rng.random_range(-2.0..2.0), rng.random_range(-2.0..2.0));
                for j in 0..4 {
                    d.bbox[j] += if j % 2 == 0 { dx } else { dy };
                }
                Some(d)
            })
            .collect();
        let track = Track {
            id: 0,
            first: 0,
            detections: noisy,
        };
        let std = |v: &[Detection]| {
            let xs: Vec<f64> = v.iter().map(|d| d.bbox[0] as f64).collect();
            let m = xs.iter().sum::<f64>() / xs.len() as f64;
            (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / xs.len() as f64).sqrt()
        };
        let before = std(&track.filled());
        let after = std(&track.smoothed(3.0));
        assert!(after < before / 3.0, "{before} -> {after}");
        assert_eq!(track.smoothed(0.0), track.filled());

        let constant = Track {
            id: 0,
            first: 4,
            detections: vec![Some(still), None, Some(still), Some(still)],
        };
        assert_eq!(constant.smoothed(2.0), vec![still; 4]);
    }

    #[test]
    fn main_track_prefers_hits_then_area_then_id() {
        let mk = |id, n: usize, side: f32| Track {
            id,
            first: 0,
            detections: vec![Some(face(50.0, 50.0, side)); n],
        };
        assert_eq!(main_track(&[mk(0, 5, 10.0), mk(1, 8, 5.0)]), Some(1));
        assert_eq!(main_track(&[mk(0, 8, 10.0), mk(1, 8, 20.0)]), Some(1));
        assert_eq!(main_track(&[mk(1, 8, 10.0), mk(0, 8, 10.0)]), Some(1));
    }

    #[test]
    fn active_reports_confirmed_tracks_only() {
        let mut t = Tracker::new(cfg());
        let (a, b) = (face(50.0, 50.0, 30.0), face(200.0, 50.0, 30.0));
        t.update(0, &[a]);
        t.update(1, &[a]);
        assert!(t.active().is_empty());
        t.update(2, &[a, b]);
        assert_eq!(t.active(), vec![(0, a)]);
        t.update(3, &[b]);
        assert_eq!(t.active(), vec![(0, a)]);
        assert!(t.matched(1) && !t.matched(0));
        // Out-of-order updates are ignored.
        t.update(3, &[]);
        assert!(t.matched(1));
    }

    #[test]
    fn one_euro_keeps_still_faces_still_and_follows_moves() {
        let still = face(100.0, 80.0, 50.0);
        let mut f = OneEuro::default();
        for _ in 0..10 {
            assert_eq!(f.smooth(&still), still);
        }
        // Jitter is damped.
        let mut f = OneEuro::default();
        let mut out = Vec::new();
        for i in 0..40 {
            let mut d = still;
            let dx = if i % 2 == 0 { 2.0 } else { -2.0 };
            for j in 0..4 {
                d.bbox[j] += dx;
            }
            out.push(f.smooth(&d).bbox[0] - still.bbox[0]);
        }
        assert!(out[20..].iter().all(|v| v.abs() < 1.0), "{out:?}");
        // A jump is followed.
        let moved = face(160.0, 80.0, 50.0);
        let mut last = still;
        for _ in 0..30 {
            last = f.smooth(&moved);
        }
        assert!((last.bbox[0] - moved.bbox[0]).abs() < 1.0, "{last:?}");
    }
}
