//! Temporal sampling: which `T` frame indices of an `n`-frame clip a view uses.
//!
//! Contract: takes the number of frames that actually decode (`n ≥ 1`) and returns `T`
//! indices in `0..n`, in temporal order. Clips shorter than the span a view needs repeat
//! their last frame (never wrap around to the start, as some peer code does).
//!
//! - Segment (uniform) sampling, for SSv2 and the emotion sets: the clip is cut into `T`
//!   equal segments and one frame is taken per segment — at a random offset in training,
//!   at offset `(k + 0.5) / K` of the segment for test view `k` of `K`.
//! - Interval (dense) sampling, for Kinetics (8x16 is typical): `T` frames every `s`
//!   frames, from a random start in training, from `K` evenly spaced starts in testing
//!   (mmaction2's `SampleFrames` test offsets).

use rand::Rng;
use serde::{Deserialize, Serialize};

/// How frames are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Sampling {
    /// `T` equal segments, one frame from each.
    Segment {
        /// Frames per clip (`T`).
        frames: usize,
    },
    /// `T` frames every `interval` frames.
    Interval {
        /// Frames per clip (`T`).
        frames: usize,
        /// Stride between sampled frames (`s`).
        interval: usize,
    },
}

/// Training (random) or test view `view` of `views` (fixed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Random offsets from the caller's generator.
    Train,
    /// Fixed offsets: view `view` (0-based) of `views`.
    Test {
        /// This view.
        view: usize,
        /// Number of temporal views.
        views: usize,
    },
}

impl Sampling {
    /// Frames per clip.
    pub fn frames(&self) -> usize {
        match *self {
            Sampling::Segment { frames } | Sampling::Interval { frames, .. } => frames,
        }
    }

    /// The `T` indices into an `n`-frame clip for `mode`.
    pub fn indices(&self, n: usize, mode: Mode, rng: &mut impl Rng) -> Vec<usize> {
        assert!(n >= 1, "sampling needs at least one decoded frame");
        match *self {
            Sampling::Segment { frames } => segment(n, frames, mode, rng),
            Sampling::Interval { frames, interval } => {
                interval_sample(n, frames, interval.max(1), mode, rng)
            }
        }
    }
}

fn segment(n: usize, t: usize, mode: Mode, rng: &mut impl Rng) -> Vec<usize> {
    if n < t {
        // Too short for T distinct segments: every frame once, then the last repeated.
        return (0..t).map(|i| i.min(n - 1)).collect();
    }
    let seg = n as f64 / t as f64;
    (0..t)
        .map(|i| {
            let offset = match mode {
                Mode::Train => rng.random::<f64>(),
                Mode::Test { view, views } => (view as f64 + 0.5) / views.max(1) as f64,
            };
            (((i as f64 + offset) * seg) as usize).min(n - 1)
        })
        .collect()
}

fn interval_sample(n: usize, t: usize, s: usize, mode: Mode, rng: &mut impl Rng) -> Vec<usize> {
    let span = (t - 1) * s + 1;
    let start = match mode {
        Mode::Train if n > span => rng.random_range(0..=n - span),
        Mode::Train => 0,
        Mode::Test { view, views } => {
            let views = views.max(1);
            if n > span {
                // mmaction2 SampleFrames (test): K windows spread evenly, centred in their share.
                let avg = (n - span + 1) as f64 / views as f64;
                (avg * view as f64 + avg / 2.0) as usize
            } else {
                0
            }
        }
    };
    (0..t).map(|i| (start + i * s).min(n - 1)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn rng() -> StdRng {
        StdRng::seed_from_u64(7)
    }

    #[test]
    fn short_clip_repeats_last_frame() {
        let s = Sampling::Segment { frames: 8 };
        assert_eq!(
            s.indices(3, Mode::Train, &mut rng()),
            vec![0, 1, 2, 2, 2, 2, 2, 2]
        );
        let d = Sampling::Interval {
            frames: 4,
            interval: 4,
        };
        assert_eq!(
            d.indices(6, Mode::Test { view: 0, views: 1 }, &mut rng()),
            vec![0, 4, 5, 5]
        );
    }

    #[test]
    fn segment_train_takes_one_frame_per_segment() {
        let s = Sampling::Segment { frames: 4 };
        let mut r = rng();
        for _ in 0..100 {
            let idx = s.indices(40, Mode::Train, &mut r);
            for (i, &x) in idx.iter().enumerate() {
                assert!((i * 10..(i + 1) * 10).contains(&x), "{idx:?}");
            }
        }
    }

    #[test]
    fn segment_test_views_are_fixed_and_distinct() {
        let s = Sampling::Segment { frames: 4 };
        let a = s.indices(40, Mode::Test { view: 0, views: 2 }, &mut rng());
        let b = s.indices(
            40,
            Mode::Test { view: 1, views: 2 },
            &mut StdRng::seed_from_u64(99),
        );
        assert_eq!(a, vec![2, 12, 22, 32]);
        assert_eq!(b, vec![7, 17, 27, 37]);
    }

    #[test]
    fn interval_train_stays_inside_clip() {
        let s = Sampling::Interval {
            frames: 8,
            interval: 4,
        };
        let mut r = rng();
        for _ in 0..100 {
            let idx = s.indices(100, Mode::Train, &mut r);
            assert!(idx.windows(2).all(|w| w[1] == w[0] + 4), "{idx:?}");
            assert!(*idx.last().unwrap() < 100);
        }
    }

    #[test]
    fn interval_test_views_spread_over_the_clip() {
        let s = Sampling::Interval {
            frames: 2,
            interval: 10,
        };
        let starts: Vec<usize> = (0..3)
            .map(|v| s.indices(100, Mode::Test { view: v, views: 3 }, &mut rng())[0])
            .collect();
        // span 11; (100 - 11 + 1) / 3 = 30 per view, centred: 15, 45, 75.
        assert_eq!(starts, vec![15, 45, 75]);
    }

    #[test]
    fn same_seed_gives_same_indices() {
        let s = Sampling::Segment { frames: 8 };
        let a = s.indices(300, Mode::Train, &mut rng());
        let b = s.indices(300, Mode::Train, &mut rng());
        assert_eq!(a, b);
    }
}
