//! The `expressions` dataset: drawn faces whose expression intensity follows a time course.
//!
//! # Classes (label order)
//! `smile_onset, smile_offset, smile_apex, smile_dip, frown_onset, frown_offset, frown_apex,
//! frown_dip`: an expression (smile or frown) times a time course of its intensity over the
//! clip's `T` frames:
//! - `onset`:  neutral -> expression;
//! - `offset`: expression -> neutral;
//! - `apex`:   neutral -> expression -> neutral;
//! - `dip`:    expression -> neutral -> expression.
//!
//! # Why the four courses of one expression look alike frame by frame
//! Every clip first draws one rising sequence of intensities,
//! `v_k = A clamp((k / (T - 1) - a) / (b - a), 0, 1)` for `k = 0..T`, with a random peak
//! `A ~ U[0.75, 1]`, start `a ~ U[0, J]` and end `1 - b ~ U[0, J]` ([`JITTER`]); the course
//! only decides the *order* in which the clip shows these `T` values:
//! - `onset`: `v_0, v_1, ..., v_{T-1}` (rising);
//! - `offset`: the same, reversed;
//! - `apex`: the even-indexed values rising, then the odd-indexed ones falling
//!   (`v_0, v_2, ..., v_3, v_1`): a rise and a fall at double speed;
//! - `dip`: `apex` rotated by `T / 2` frames (`..., v_3, v_1, v_0, v_2, ...`).
//!
//! So the four courses are permutations of the same multiset of intensities, whose law does
//! not depend on the class; everything else about a video (face, colours, head motion, noise)
//! is drawn independently of the class too. Hence a single frame, or any order-free summary
//! of the frames such as their average, carries exactly no information about which of the
//! four courses a clip follows (only about the expression: smile or frown). What separates
//! them is order: the first frame against the last (`onset` vs `offset`), the middle against
//! the ends (`apex` vs `dip`). A model without temporal modelling tops out at 1/4 per
//! expression, 25 % overall.
//!
//! # Still images
//! For image pre-training (`peak_images`): the same faces at an expression's peak
//! (`A ~ U[0.85, 1]`) or neutral (`i = 0`), classes `neutral, smile, frown`.
//!
//! # Drawing
//! Face coordinates: unit = half the head's height, origin at the head's centre, `v` down.
//! Head ellipse with hair, two eyes, two brows and a mouth drawn as a thick parabola. A smile
//! curves the mouth up at the corners, raises the brows a little and narrows the eyes; a
//! frown bends the mouth down and lowers the inner ends of the brows. Per video: skin tone,
//! hair, background texture, face position, size and tilt, feature geometry, and a small
//! smooth head motion (under 2 % of the image side) over the clip; per frame: pixel noise.

use super::draw::{
    Canvas, Pose, Rgb, Texture, mix, random_color, sd_capsule, sd_ellipse, sd_polyline,
};
use super::rng::Rng;

/// Largest random delay of a ramp's start (and advance of its end), as a fraction of the
/// ramp's span.
pub(super) const JITTER: f64 = 0.25;

/// A facial expression drawn by the generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expression {
    /// Mouth corners up, brows slightly raised, eyes narrowed.
    Smile,
    /// Mouth corners down, inner brows lowered.
    Frown,
}

/// How an expression's intensity evolves over a clip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Course {
    /// Neutral -> expression.
    Onset,
    /// Expression -> neutral.
    Offset,
    /// Neutral -> expression -> neutral.
    Apex,
    /// Expression -> neutral -> expression.
    Dip,
}

const EXPRESSIONS: [(Expression, &str); 2] =
    [(Expression::Smile, "smile"), (Expression::Frown, "frown")];
const COURSES: [(Course, &str); 4] = [
    (Course::Onset, "onset"),
    (Course::Offset, "offset"),
    (Course::Apex, "apex"),
    (Course::Dip, "dip"),
];

/// The video classes, in label order: `smile_onset, ..., frown_dip`.
pub(super) fn classes() -> Vec<(String, Expression, Course)> {
    EXPRESSIONS
        .iter()
        .flat_map(|&(e, en)| {
            COURSES
                .iter()
                .map(move |&(c, cn)| (format!("{en}_{cn}"), e, c))
        })
        .collect()
}

/// The still-image classes, in label order: `neutral, smile, frown`.
pub(super) fn image_classes() -> Vec<(String, Option<Expression>)> {
    std::iter::once(("neutral".to_string(), None))
        .chain(EXPRESSIONS.iter().map(|&(e, n)| (n.to_string(), Some(e))))
        .collect()
}

/// The random timing of one clip's intensity course (see the module docs).
#[derive(Debug, Clone, Copy)]
pub(super) struct Timing {
    /// Peak intensity `A`.
    amplitude: f64,
    /// Start `a` and end `b` of the rise, as fractions of the clip.
    rise: (f64, f64),
}

impl Timing {
    /// Draws a timing; its law is the same for every course (that is the point).
    pub(super) fn random(rng: &mut Rng) -> Self {
        let amplitude = rng.uniform(0.75, 1.0);
        let rise = (rng.uniform(0.0, JITTER), 1.0 - rng.uniform(0.0, JITTER));
        Timing { amplitude, rise }
    }

    /// The intensity of each of `frames` frames (`>= 2`), in `[0, A]`.
    pub(super) fn intensities(&self, course: Course, frames: usize) -> Vec<f64> {
        let (a, b) = self.rise;
        let rising: Vec<f64> = (0..frames)
            .map(|k| {
                let t = k as f64 / (frames - 1) as f64;
                self.amplitude * ((t - a) / (b - a)).clamp(0.0, 1.0)
            })
            .collect();
        let up_down = || -> Vec<f64> {
            let evens = rising.iter().step_by(2);
            let odds = rising.iter().skip(1).step_by(2).rev();
            evens.chain(odds).copied().collect()
        };
        match course {
            Course::Onset => rising.clone(),
            Course::Offset => rising.iter().rev().copied().collect(),
            Course::Apex => up_down(),
            Course::Dip => {
                let mut v = up_down();
                v.rotate_left(frames / 2);
                v
            }
        }
    }
}

/// Everything about one video's face that does not depend on the class.
#[derive(Debug, Clone)]
pub(super) struct Face {
    size: usize,
    background: Texture,
    skin: Rgb,
    hair: Rgb,
    /// Hair line, face units (`v` above which the head is hair).
    hairline: f32,
    /// Head semi-axes, face units.
    head: (f32, f32),
    /// Centre and pixels per unit at rest.
    pose: Pose,
    /// Head motion: per axis (amplitude px, cycles per clip, phase); tilt amplitude (rad).
    sway: [(f32, f32, f32); 3],
    eye_x: f32,
    eye_y: f32,
    eye_r: (f32, f32),
    brow_gap: f32,
    brow_half: f32,
    mouth_y: f32,
    mouth_w: f32,
    /// Standard deviation of per-frame pixel noise.
    noise: f32,
}

impl Face {
    /// A random face for a `size`-pixel square frame.
    pub(super) fn random(rng: &mut Rng, size: usize) -> Self {
        let s = size as f32;
        let u = |rng: &mut Rng, lo: f32, hi: f32| rng.uniform(lo as f64, hi as f64) as f32;
        let light = [238.0, 204.0, 176.0];
        let dark = [92.0, 58.0, 40.0];
        let mut skin = mix(light, dark, u(rng, 0.0, 1.0));
        for c in &mut skin {
            *c += u(rng, -10.0, 10.0);
        }
        let hair = mix(
            random_color(rng, 10.0, 60.0),
            [150.0, 110.0, 60.0],
            u(rng, 0.0, 0.6),
        );
        let backdrop = random_color(rng, 40.0, 215.0);
        let background = Texture::random(rng, size, backdrop, 14.0, 2);
        // Framed as DFER's aligned face crops (DFEW's clip_224x224): the face fills the frame,
        // brow to chin, forehead and hair cut off by the border; position jitter stays a small
        // fraction of the frame, as alignment leaves it. With the face at a third of
        // the frame on a textured background (as first written) a ViT trained from scratch on
        // a thousand stills never left chance, in transformers as in vidapter, while at this
        // framing it reaches ~85% (see the demo).
        const ZOOM: f32 = 1.6;
        let pose = Pose {
            cx: s * (0.5 + u(rng, -0.07, 0.07)),
            cy: s * (0.44 + u(rng, -0.05, 0.07)),
            scale: s * ZOOM * u(rng, 0.34, 0.41),
            angle: u(rng, -0.12, 0.12),
        };
        // Sway: a slow sinusoid per axis (under 2 % of the side) and for the tilt (under
        // 0.05 rad): (amplitude, cycles per clip, phase).
        let mut sway = [
            (0.018 * s, 0.0, 0.0),
            (0.018 * s, 0.0, 0.0),
            (0.05, 0.0, 0.0),
        ];
        for (amp, cycles, phase) in &mut sway {
            *amp *= u(rng, 0.0, 1.0);
            *cycles = u(rng, 0.3, 1.2);
            *phase = u(rng, 0.0, std::f32::consts::TAU);
        }
        Face {
            size,
            background,
            skin,
            hair,
            hairline: u(rng, -0.8, -0.55),
            head: (u(rng, 0.72, 0.84), 1.0),
            pose,
            sway,
            eye_x: u(rng, 0.27, 0.35),
            eye_y: u(rng, -0.22, -0.1),
            eye_r: (u(rng, 0.08, 0.11), u(rng, 0.06, 0.08)),
            brow_gap: u(rng, 0.16, 0.21),
            brow_half: u(rng, 0.12, 0.16),
            mouth_y: u(rng, 0.38, 0.5),
            mouth_w: u(rng, 0.25, 0.33),
            noise: u(rng, 2.0, 4.5),
        }
    }

    /// The head's pose at time `t` in `[0, 1]` (rest pose plus sway).
    fn pose_at(&self, t: f32) -> Pose {
        let wave = |(amp, cycles, phase): (f32, f32, f32)| {
            amp * (std::f32::consts::TAU * cycles * t + phase).sin()
        };
        Pose {
            cx: self.pose.cx + wave(self.sway[0]),
            cy: self.pose.cy + wave(self.sway[1]),
            scale: self.pose.scale,
            angle: self.pose.angle + wave(self.sway[2]),
        }
    }

    /// Draws the face at time `t` showing `expression` at `intensity` (0 = neutral), with
    /// fresh pixel noise from `rng`. Gives RGB8 `[size, size, 3]`.
    pub(super) fn render(
        &self,
        expression: Option<Expression>,
        intensity: f32,
        t: f32,
        rng: &mut Rng,
    ) -> Vec<u8> {
        let n = self.size;
        let mut canvas = Canvas::from_fn(n, n, |x, y| self.background.at(x, y));
        let pose = self.pose_at(t);
        let (ha, hb) = self.head;

        // Head, then hair: the part of a slightly larger ellipse above the hair line.
        pose.paint(&mut canvas, (0.0, 0.0, hb + 0.1), self.skin, |u, v| {
            sd_ellipse(u, v, ha, hb)
        });
        let hairline = self.hairline;
        pose.paint(&mut canvas, (0.0, 0.0, hb + 0.15), self.hair, |u, v| {
            sd_ellipse(u, v, ha + 0.05, hb + 0.05).max(v - hairline)
        });

        // What the expression changes, each term linear in the intensity.
        let i = intensity;
        let (smile, frown) = match expression {
            Some(Expression::Smile) => (i, 0.0),
            Some(Expression::Frown) => (0.0, i),
            None => (0.0, 0.0),
        };
        let feature = mix(self.skin, [25.0, 18.0, 15.0], 0.8);
        let lips = mix(self.skin, [90.0, 10.0, 20.0], 0.65);

        // Eyes: narrowed by a smile (cheeks push up), a little by a frown.
        let eye_b = self.eye_r.1 * (1.0 - 0.4 * smile - 0.2 * frown);
        for side in [-1.0f32, 1.0] {
            let (ex, ey) = (side * self.eye_x, self.eye_y);
            pose.paint(
                &mut canvas,
                (ex, ey, self.eye_r.0 + 0.02),
                feature,
                |u, v| sd_ellipse(u - ex, v - ey, self.eye_r.0, eye_b),
            );
        }

        // Brows: raised a little by a smile; a frown pulls the inner ends down.
        for side in [-1.0f32, 1.0] {
            let base = self.eye_y - self.brow_gap;
            let inner_x = side * (self.eye_x - self.brow_half);
            let outer_x = side * (self.eye_x + self.brow_half);
            let inner = (inner_x, base - 0.05 * smile + 0.16 * frown);
            let outer = (outer_x, base - 0.05 * smile - 0.03 * frown);
            let (cx, cy) = (side * self.eye_x, base);
            pose.paint(
                &mut canvas,
                (cx, cy, self.brow_half + 0.2),
                feature,
                |u, v| sd_capsule(u, v, inner, outer, 0.04),
            );
        }

        // Mouth: a parabola through the corners and the centre.
        let w = self.mouth_w * (1.0 + 0.15 * smile - 0.08 * frown);
        let corner_y = self.mouth_y - 0.07 * smile + 0.12 * frown;
        let centre_y = self.mouth_y + 0.12 * smile - 0.08 * frown;
        let points: Vec<(f32, f32)> = (0..=10)
            .map(|k| {
                let x = -1.0 + 0.2 * k as f32;
                (w * x, centre_y + (corner_y - centre_y) * x * x)
            })
            .collect();
        pose.paint(&mut canvas, (0.0, self.mouth_y, w + 0.25), lips, |u, v| {
            sd_polyline(u, v, &points, 0.055)
        });

        canvas.add_noise(rng, self.noise);
        canvas.to_rgb8()
    }
}

/// Renders one video: `frames` frames of a random face following `course` of `expression`.
pub(super) fn render_video(
    rng: &mut Rng,
    size: usize,
    frames: usize,
    expression: Expression,
    course: Course,
) -> Vec<Vec<u8>> {
    let face = Face::random(rng, size);
    let timing = Timing::random(rng);
    let intensities = timing.intensities(course, frames);
    intensities
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            let t = k as f32 / (frames - 1).max(1) as f32;
            face.render(Some(expression), i as f32, t, rng)
        })
        .collect()
}

/// Renders one still image: a random face showing `expression` at its peak, or neutral.
pub(super) fn render_still(rng: &mut Rng, size: usize, expression: Option<Expression>) -> Vec<u8> {
    let face = Face::random(rng, size);
    let i = if expression.is_some() {
        rng.uniform(0.85, 1.0) as f32
    } else {
        0.0
    };
    face.render(expression, i, 0.0, rng)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_courses_show_the_same_intensities_in_another_order() {
        let mut rng = Rng::new(11);
        for frames in [4, 5, 8, 16, 17] {
            for _ in 0..50 {
                let timing = Timing::random(&mut rng);
                let sorted = |c| {
                    let mut v = timing.intensities(c, frames);
                    v.sort_by(f64::total_cmp);
                    v
                };
                let reference = sorted(Course::Onset);
                assert_eq!(reference.len(), frames);
                for (c, _) in COURSES {
                    assert_eq!(sorted(c), reference, "{c:?}, {frames} frames");
                }
            }
        }
    }

    /// Mean over random timings of the intensity at each frame, in order.
    fn mean_course(course: Course, frames: usize, draws: usize) -> Vec<f64> {
        let mut rng = Rng::new(12);
        let mut acc = vec![0.0; frames];
        for _ in 0..draws {
            let v = Timing::random(&mut rng).intensities(course, frames);
            for (a, x) in acc.iter_mut().zip(v) {
                *a += x / draws as f64;
            }
        }
        acc
    }

    #[test]
    fn order_separates_the_courses_and_each_course_is_smooth() {
        let frames = 16;
        let mean = |c| mean_course(c, frames, 5_000);
        let (on, off, apex, dip) = (
            mean(Course::Onset),
            mean(Course::Offset),
            mean(Course::Apex),
            mean(Course::Dip),
        );
        let (last, mid) = (frames - 1, frames / 2);
        assert!(on[last] - on[0] > 0.8 && off[0] - off[last] > 0.8);
        assert!(apex[mid] - (apex[0] + apex[last]) / 2.0 > 0.7, "{apex:?}");
        assert!((dip[0] + dip[last]) / 2.0 - dip[mid] > 0.7, "{dip:?}");
        // No jumps: consecutive frames differ by at most two steps of the rise.
        let mut rng = Rng::new(13);
        for _ in 0..100 {
            let timing = Timing::random(&mut rng);
            for (c, _) in COURSES {
                let v = timing.intensities(c, frames);
                let step = v
                    .windows(2)
                    .map(|w| (w[1] - w[0]).abs())
                    .fold(0.0, f64::max);
                // The rise spans at least half the clip: at most 1 / (T/2 - 1) per frame,
                // twice that at apex/dip's double speed.
                assert!(
                    step <= 2.0 / (frames as f64 / 2.0 - 1.0) + 1e-9,
                    "{c:?} {v:?}"
                );
            }
        }
    }

    #[test]
    fn classes_are_expression_times_course_in_label_order() {
        let names: Vec<String> = classes().into_iter().map(|c| c.0).collect();
        assert_eq!(
            names,
            [
                "smile_onset",
                "smile_offset",
                "smile_apex",
                "smile_dip",
                "frown_onset",
                "frown_offset",
                "frown_apex",
                "frown_dip"
            ]
        );
        let images: Vec<String> = image_classes().into_iter().map(|c| c.0).collect();
        assert_eq!(images, ["neutral", "smile", "frown"]);
    }

    #[test]
    fn expression_changes_the_mouth_region_and_neutral_is_intensity_zero() {
        let size = 64;
        let face = Face::random(&mut Rng::new(3), size);
        // Same noise stream for each rendering, so that only the expression differs.
        let draw = |e, i| face.render(e, i, 0.0, &mut Rng::new(9));
        let neutral = draw(None, 0.0);
        assert_eq!(neutral, draw(Some(Expression::Smile), 0.0));
        assert_eq!(neutral, draw(Some(Expression::Frown), 0.0));
        let smile = draw(Some(Expression::Smile), 1.0);
        let frown = draw(Some(Expression::Frown), 1.0);
        let changed = |a: &[u8], b: &[u8]| {
            a.iter()
                .zip(b)
                .filter(|(x, y)| (**x as i32 - **y as i32).abs() > 30)
                .count()
                / 3
        };
        // Visible but local: tens of pixels of a 4096-pixel frame.
        for (name, img) in [("smile", &smile), ("frown", &frown)] {
            let n = changed(&neutral, img);
            assert!((15..600).contains(&n), "{name}: {n} pixels changed");
        }
        assert!(changed(&smile, &frown) > 15);
    }
}
