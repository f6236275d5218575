//! The `motion` dataset (Something-Something-like): one object over a textured background,
//! moving in a straight line or turning in place; the label is the direction.
//!
//! # Classes (label order)
//! `move_left, move_right, move_up, move_down, turn_clockwise, turn_counterclockwise`
//! (clockwise as seen on screen).
//!
//! # Why each pair looks alike frame by frame
//! A moving object travels a distance `d` at constant speed along a path whose *midpoint* `c`
//! is drawn from the same law for both directions of an axis; the positions a clip visits,
//! `c - d/2 + d t_k` (right) and `c + d/2 - d t_k` (left), are the same set in reverse order.
//! A turning object sweeps an angle `Θ` from a uniform random start angle, so clockwise and
//! counter-clockwise clips visit sets of orientations with the same law. Shape, size, colours,
//! background and noise are drawn independently of the class. So no single frame and no
//! order-free summary (e.g. the frame average, a smear along the path) tells `left` from
//! `right`, `up` from `down`, or `clockwise` from `counterclockwise`; it does tell the axis
//! (horizontal, vertical, turning), so a frame-average model tops out at 1/2 (50 % overall).
//! A horizontal flip turns `move_left` into `move_right` and clockwise into counter-clockwise:
//! this dataset must not be flipped (`flip = false` in its `dataset.toml`).
//!
//! # Drawing
//! The object is a rectangle, an ellipse or a triangle (random proportions, orientation, size
//! 9-14 % of the side from centre to tip) with a contrasting dot near one end, so that
//! turning is visible even for the shapes with a half-turn symmetry. Moves span 30-50 % of
//! the side; turns sweep 115-200 degrees, under 14 degrees per frame at 16 frames. The
//! background is a static random grating texture; per frame: pixel noise.

use super::draw::{
    Canvas, Pose, Rgb, Texture, luma, random_color, sd_box, sd_ellipse, sd_triangle,
};
use super::rng::Rng;

/// A direction of motion, i.e. a class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    /// Translation towards `-x`.
    Left,
    /// Translation towards `+x`.
    Right,
    /// Translation towards `-y` (up on screen).
    Up,
    /// Translation towards `+y`.
    Down,
    /// Rotation clockwise on screen.
    Clockwise,
    /// Rotation counter-clockwise on screen.
    CounterClockwise,
}

const CLASSES: [(Direction, &str); 6] = [
    (Direction::Left, "move_left"),
    (Direction::Right, "move_right"),
    (Direction::Up, "move_up"),
    (Direction::Down, "move_down"),
    (Direction::Clockwise, "turn_clockwise"),
    (Direction::CounterClockwise, "turn_counterclockwise"),
];

/// The classes, in label order.
pub(super) fn classes() -> Vec<(String, Direction)> {
    CLASSES.iter().map(|&(d, n)| (n.to_string(), d)).collect()
}

/// The object's outline, in its own units (tip at distance 1 from the centre at most).
#[derive(Debug, Clone, Copy)]
enum Shape {
    Rect { hv: f32 },
    Ellipse { b: f32 },
    Triangle { p: [(f32, f32); 3] },
}

impl Shape {
    fn sd(&self, u: f32, v: f32) -> f32 {
        match *self {
            Shape::Rect { hv } => sd_box(u, v, 0.95, hv),
            Shape::Ellipse { b } => sd_ellipse(u, v, 1.0, b),
            Shape::Triangle { p } => sd_triangle(u, v, p[0], p[1], p[2]),
        }
    }
}

/// One clip's object, background and path.
#[derive(Debug, Clone)]
struct Scene {
    size: usize,
    background: Texture,
    shape: Shape,
    color: Rgb,
    dot: Rgb,
    /// Dot centre along the shape's `u` axis.
    dot_u: f32,
    /// Pixels per object unit.
    scale: f32,
    /// Centre at time 0 and at time 1, pixels.
    from: (f32, f32),
    to: (f32, f32),
    /// Orientation at time 0 and at time 1, radians.
    angle_from: f32,
    angle_to: f32,
    noise: f32,
}

impl Scene {
    fn random(rng: &mut Rng, size: usize, direction: Direction) -> Self {
        let s = size as f32;
        let u = |rng: &mut Rng, lo: f32, hi: f32| rng.uniform(lo as f64, hi as f64) as f32;
        let base = random_color(rng, 50.0, 205.0);
        let background = Texture::random(rng, size, base, 22.0, 3);
        // An object colour at least 60 luma levels away from the background's mean.
        let mut color = random_color(rng, 0.0, 255.0);
        for _ in 0..32 {
            if (luma(color) - luma(base)).abs() >= 60.0 {
                break;
            }
            color = random_color(rng, 0.0, 255.0);
        }
        if (luma(color) - luma(base)).abs() < 60.0 {
            color = if luma(base) > 128.0 {
                [20.0; 3]
            } else {
                [235.0; 3]
            };
        }
        let dot = if luma(color) > 128.0 {
            random_color(rng, 0.0, 60.0)
        } else {
            random_color(rng, 195.0, 255.0)
        };
        let shape = match rng.below(3) {
            0 => Shape::Rect {
                hv: u(rng, 0.35, 0.6),
            },
            1 => Shape::Ellipse {
                b: u(rng, 0.4, 0.6),
            },
            _ => {
                let back = u(rng, -0.75, -0.55);
                let half = u(rng, 0.5, 0.75);
                Shape::Triangle {
                    p: [(1.0, 0.0), (back, half), (back, -half)],
                }
            }
        };
        let scale = s * u(rng, 0.09, 0.14);
        // Keep the whole object (radius `scale`) and a pixel of margin inside the frame.
        let margin = scale + 1.0;
        let angle0 = u(rng, 0.0, std::f32::consts::TAU);
        let (from, to, angle_from, angle_to) = match direction {
            Direction::Clockwise | Direction::CounterClockwise => {
                let c = (u(rng, margin, s - margin), u(rng, margin, s - margin));
                let sweep = u(rng, 2.0, 3.5);
                // Pose angles turn clockwise on screen as they grow.
                let sign = if direction == Direction::Clockwise {
                    1.0
                } else {
                    -1.0
                };
                (c, c, angle0, angle0 + sign * sweep)
            }
            _ => {
                let d = s * u(rng, 0.3, 0.5);
                let along = u(rng, margin + d / 2.0, s - margin - d / 2.0);
                let across = u(rng, margin, s - margin);
                let sign = match direction {
                    Direction::Right | Direction::Down => 1.0,
                    _ => -1.0,
                };
                let (a0, a1) = (along - sign * d / 2.0, along + sign * d / 2.0);
                if matches!(direction, Direction::Left | Direction::Right) {
                    ((a0, across), (a1, across), angle0, angle0)
                } else {
                    ((across, a0), (across, a1), angle0, angle0)
                }
            }
        };
        Scene {
            size,
            background,
            shape,
            color,
            dot,
            dot_u: u(rng, 0.45, 0.6),
            scale,
            from,
            to,
            angle_from,
            angle_to,
            noise: u(rng, 2.0, 4.5),
        }
    }

    /// RGB8 `[size, size, 3]` at time `t` in `[0, 1]`.
    fn render(&self, t: f32, rng: &mut Rng) -> Vec<u8> {
        let n = self.size;
        let mut canvas = Canvas::from_fn(n, n, |x, y| self.background.at(x, y));
        let lerp = |a: f32, b: f32| a + t * (b - a);
        let pose = Pose {
            cx: lerp(self.from.0, self.to.0),
            cy: lerp(self.from.1, self.to.1),
            scale: self.scale,
            angle: lerp(self.angle_from, self.angle_to),
        };
        let shape = self.shape;
        pose.paint(&mut canvas, (0.0, 0.0, 1.05), self.color, |u, v| {
            shape.sd(u, v)
        });
        let du = self.dot_u;
        pose.paint(&mut canvas, (du, 0.0, 0.25), self.dot, |u, v| {
            sd_ellipse(u - du, v, 0.18, 0.18)
        });
        canvas.add_noise(rng, self.noise);
        canvas.to_rgb8()
    }
}

/// Renders one video: `frames` frames of a random object moving in `direction`.
pub(super) fn render_video(
    rng: &mut Rng,
    size: usize,
    frames: usize,
    direction: Direction,
) -> Vec<Vec<u8>> {
    let scene = Scene::random(rng, size, direction);
    (0..frames)
        .map(|k| {
            let t = k as f32 / (frames - 1).max(1) as f32;
            scene.render(t, rng)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Centroid of the pixels that differ from the background-only rendering.
    fn centroid(frame: &[u8], empty: &[u8], size: usize) -> (f32, f32) {
        let (mut sx, mut sy, mut n) = (0.0, 0.0, 0.0);
        for y in 0..size {
            for x in 0..size {
                let i = (y * size + x) * 3;
                let d: i32 = (0..3)
                    .map(|c| (frame[i + c] as i32 - empty[i + c] as i32).abs())
                    .sum();
                if d > 60 {
                    sx += x as f32;
                    sy += y as f32;
                    n += 1.0;
                }
            }
        }
        (sx / n, sy / n)
    }

    #[test]
    fn translations_move_the_object_the_way_the_label_says() {
        let size = 64;
        for (direction, (dx, dy)) in [
            (Direction::Left, (-1.0, 0.0)),
            (Direction::Right, (1.0, 0.0)),
            (Direction::Up, (0.0, -1.0)),
            (Direction::Down, (0.0, 1.0)),
        ] {
            for seed in 0..5 {
                let scene = Scene::random(&mut Rng::new(seed), size, direction);
                let bg = Canvas::from_fn(size, size, |x, y| scene.background.at(x, y)).to_rgb8();
                let mut quiet = scene.clone();
                quiet.noise = 0.0;
                let a = centroid(&quiet.render(0.0, &mut Rng::new(0)), &bg, size);
                let b = centroid(&quiet.render(1.0, &mut Rng::new(0)), &bg, size);
                let (mx, my) = (b.0 - a.0, b.1 - a.1);
                // Moves of 30-50 % of 64 px: at least ~15 px along the axis, ~0 across.
                assert!(
                    mx * dx + my * dy > 14.0 && (mx * dy - my * dx).abs() < 3.0,
                    "{direction:?} seed {seed}: moved ({mx}, {my})"
                );
            }
        }
    }

    #[test]
    fn objects_stay_inside_the_frame() {
        let size = 32;
        for (_, direction) in classes() {
            for seed in 0..50 {
                let scene = Scene::random(&mut Rng::new(seed), size, direction);
                for p in [scene.from, scene.to] {
                    let r = scene.scale;
                    assert!(p.0 - r >= 0.0 && p.0 + r <= size as f32, "{p:?} r {r}");
                    assert!(p.1 - r >= 0.0 && p.1 + r <= size as f32, "{p:?} r {r}");
                }
            }
        }
    }

    #[test]
    fn turns_go_the_way_the_label_says() {
        for seed in 0..20 {
            let cw = Scene::random(&mut Rng::new(seed), 64, Direction::Clockwise);
            let ccw = Scene::random(&mut Rng::new(seed), 64, Direction::CounterClockwise);
            assert!(cw.angle_to - cw.angle_from > 2.0);
            assert!(ccw.angle_to - ccw.angle_from < -2.0);
            assert_eq!(cw.from, cw.to);
        }
        // Clockwise on screen: the dot, starting to the right of the centre, goes down.
        let mut scene = Scene::random(&mut Rng::new(1), 64, Direction::Clockwise);
        scene.angle_from = 0.0;
        scene.angle_to = std::f32::consts::FRAC_PI_2;
        let p = Pose {
            cx: scene.from.0,
            cy: scene.from.1,
            scale: scene.scale,
            angle: scene.angle_to,
        };
        let (_, y) = p.to_pixel(scene.dot_u, 0.0);
        assert!(y > scene.from.1 + 2.0);
    }
}
