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
//! # Still images
//! For image pre-training (`peak_images`): one object at rest, class = where it is and which
//! way its long axis points, `r{row}_c{col}_axis{deg}`: the cell of a [`GRID`] x [`GRID`]
//! grid over the frame holding its centre, times its axis orientation modulo 180 degrees in
//! [`AXIS_BINS`] bins of 45 degrees centred on 0, 45, 90, 135 (`angle` measured as the pose's,
//! clockwise on screen), 36 classes. Why these labels: the video classes are told apart by
//! how position (moves) or orientation (turns) changes between frames, so a frozen image model
//! is useful to them only if its features encode both; a classifier trained on any label that
//! does not depend on them (shape, colour, an expression) is free to discard them, and then
//! even the frame average cannot reach the axis (measured: a face classifier's probe stayed at
//! 15 %). The axis is taken modulo 180 degrees because a rectangle or an ellipse looks the same
//! turned by half a turn and the contrasting dot is a pixel or two at the demo's 48 px; the
//! turn direction is still recoverable from it, since consecutive sampled frames differ by
//! far less than 90 degrees. Shape, size, colours, background and noise are drawn as for the
//! videos, independently of the label.
//!
//! # Drawing
//! The object is a rectangle, an ellipse or a triangle (random proportions, orientation, size
//! 16-22 % of the side from centre to tip) with a contrasting dot near one end, so that
//! turning is visible even for the shapes with a half-turn symmetry. Moves span 30-50 % of
//! the side; turns sweep 115-200 degrees, under 14 degrees per frame at 16 frames. The
//! background is a static random grating texture; per frame: pixel noise.

use super::draw::{
    Canvas, Pose, Rgb, Texture, luma, random_color, sd_box, sd_ellipse, sd_triangle,
};
use super::rng::Rng;

/// Amplitude of the background gratings (per grating, RGB levels).
const TEXTURE: f32 = 22.0;

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
        let background = Texture::random(rng, size, base, TEXTURE, 3);
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
        let scale = s * u(rng, 0.16, 0.22);
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

/// Rows (and columns) of the still images' position grid.
pub(super) const GRID: usize = 3;
/// Bins of the still images' axis orientation over half a turn.
pub(super) const AXIS_BINS: usize = 4;

/// One still-image class: the grid cell of the object's centre and its axis bin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StillClass {
    /// Grid row from the top, `0..GRID`.
    pub row: usize,
    /// Grid column from the left, `0..GRID`.
    pub col: usize,
    /// Axis bin, `0..AXIS_BINS`: orientation near `axis * 180 / AXIS_BINS` degrees.
    pub axis: usize,
}

/// The still-image classes in label order (row-major cells, then axis bins):
/// `r0_c0_axis000, r0_c0_axis045, ..., r2_c2_axis135`.
pub(super) fn image_classes() -> Vec<(String, StillClass)> {
    let mut out = Vec::with_capacity(GRID * GRID * AXIS_BINS);
    for row in 0..GRID {
        for col in 0..GRID {
            for axis in 0..AXIS_BINS {
                let deg = axis * 180 / AXIS_BINS;
                out.push((
                    format!("r{row}_c{col}_axis{deg:03}"),
                    StillClass { row, col, axis },
                ));
            }
        }
    }
    out
}

/// The scene of a still image of `class`: a random object at rest whose centre lies in the
/// class's grid cell and whose axis lies in the class's bin (either way round).
fn still_scene(rng: &mut Rng, size: usize, class: StillClass) -> Scene {
    let mut scene = Scene::random(rng, size, Direction::Clockwise);
    // Background contrast from none to the videos' full texture: the plain ones let a ViT
    // from scratch find the object at all (on full texture only, it stayed at chance), the
    // textured ones make it find it where the videos put it.
    let contrast = rng.uniform(0.0, 1.0) as f32;
    scene.background = scene.background.faded(contrast);
    let s = size as f32;
    let margin = scene.scale + 1.0;
    let cell = s / GRID as f32;
    let within = |rng: &mut Rng, k: usize| {
        let lo = (k as f32 * cell).max(margin);
        let hi = ((k + 1) as f32 * cell).min(s - margin);
        rng.uniform(lo as f64, hi as f64) as f32
    };
    let centre = (within(rng, class.col), within(rng, class.row));
    let bin = std::f32::consts::PI / AXIS_BINS as f32;
    let half_turns = rng.below(2) as f32 * std::f32::consts::PI;
    let angle = class.axis as f32 * bin + rng.uniform(-0.5, 0.5) as f32 * bin + half_turns;
    scene.from = centre;
    scene.to = centre;
    scene.angle_from = angle;
    scene.angle_to = angle;
    scene
}

/// Renders one still image (RGB8 `[size, size, 3]`) of image class `class`.
pub(super) fn render_still(rng: &mut Rng, size: usize, class: StillClass) -> Vec<u8> {
    still_scene(rng, size, class).render(0.0, rng)
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
    fn stills_put_the_object_in_its_cell_with_its_axis_in_its_bin() {
        let classes = image_classes();
        assert_eq!(classes.len(), 36);
        assert_eq!(classes[0].0, "r0_c0_axis000");
        assert_eq!(classes[7].0, "r0_c1_axis135");
        let size = 48;
        let cell = size as f32 / GRID as f32;
        for (name, class) in &classes {
            for seed in 0..10 {
                let scene = still_scene(&mut Rng::new(seed), size, *class);
                assert_eq!(scene.from, scene.to);
                assert_eq!(scene.angle_from, scene.angle_to);
                let (x, y) = scene.from;
                assert_eq!(
                    ((x / cell) as usize, (y / cell) as usize),
                    (class.col, class.row)
                );
                let r = scene.scale;
                assert!(x - r >= 0.0 && x + r <= size as f32, "{name}: x {x} r {r}");
                assert!(y - r >= 0.0 && y + r <= size as f32, "{name}: y {y} r {r}");
                // Axis modulo half a turn, nearest bin centre (wrapping 180 -> 0).
                let half = std::f32::consts::PI;
                let axis = scene.angle_from.rem_euclid(half) / (half / AXIS_BINS as f32);
                assert_eq!(
                    axis.round() as usize % AXIS_BINS,
                    class.axis,
                    "{name}: {axis}"
                );
                // The object shows: the still differs from its background where it stands.
                let img = scene.render(0.0, &mut Rng::new(0));
                let i = (y as usize * size + x as usize) * 3;
                let bg = scene.background.at(x, y);
                let d: f32 = (0..3).map(|c| (img[i + c] as f32 - bg[c]).abs()).sum();
                assert!(d > 40.0, "{name} seed {seed}: centre differs by {d}");
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
