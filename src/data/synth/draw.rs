//! A tiny anti-aliased rasteriser for the synthetic datasets: an RGB canvas, shapes given as
//! signed distance functions (SDFs), and a similarity transform ([`Pose`]) from a shape's own
//! coordinates to pixels.
//!
//! Why SDFs: a shape's coverage of a pixel is `clamp(0.5 - d, 0, 1)` with `d` the signed
//! distance (pixels, negative inside) from the pixel centre, so edges are anti-aliased and a
//! shape that moves or bends by a fraction of a pixel changes the image by a fraction of a
//! pixel. Expression intensity and object motion are continuous quantities; quantising them
//! to whole pixels would add a staircase the models could latch on to.
//!
//! Conventions: pixel `(x, y)` has its centre at `(x + 0.5, y + 0.5)`, `y` grows downwards;
//! colours are linear `f32` in `0..=255` until [`Canvas::to_rgb8`] rounds them.

use super::rng::Rng;

/// An RGB colour, channels in `0..=255`.
pub(super) type Rgb = [f32; 3];

/// A `width x height` RGB image being painted.
#[derive(Debug, Clone)]
pub(super) struct Canvas {
    width: usize,
    height: usize,
    px: Vec<Rgb>,
}

impl Canvas {
    /// A canvas filled with `color`.
    #[cfg(test)]
    pub(super) fn new(width: usize, height: usize, color: Rgb) -> Self {
        Canvas {
            width,
            height,
            px: vec![color; width * height],
        }
    }

    /// A canvas whose pixel `(x, y)` is `f(x + 0.5, y + 0.5)`.
    pub(super) fn from_fn(width: usize, height: usize, f: impl Fn(f32, f32) -> Rgb) -> Self {
        let mut px = Vec::with_capacity(width * height);
        for y in 0..height {
            for x in 0..width {
                px.push(f(x as f32 + 0.5, y as f32 + 0.5));
            }
        }
        Canvas { width, height, px }
    }

    /// Paints `color` with coverage `clamp(0.5 - sd(x, y), 0, 1)` on the pixels whose centres
    /// lie in `bbox` (`[x0, y0, x1, y1]` in pixels; it must contain every point where `sd < 0.5`).
    pub(super) fn paint(&mut self, bbox: [f32; 4], color: Rgb, sd: impl Fn(f32, f32) -> f32) {
        let clampi = |v: f32, n: usize| (v.max(0.0) as usize).min(n);
        let (x0, x1) = (
            clampi(bbox[0].floor(), self.width),
            clampi(bbox[2].ceil(), self.width),
        );
        let (y0, y1) = (
            clampi(bbox[1].floor(), self.height),
            clampi(bbox[3].ceil(), self.height),
        );
        for y in y0..y1 {
            let row = y * self.width;
            for x in x0..x1 {
                let alpha = (0.5 - sd(x as f32 + 0.5, y as f32 + 0.5)).clamp(0.0, 1.0);
                if alpha > 0.0 {
                    let p = &mut self.px[row + x];
                    for c in 0..3 {
                        p[c] += alpha * (color[c] - p[c]);
                    }
                }
            }
        }
    }

    /// Adds independent Gaussian noise of standard deviation `sigma` to every channel.
    pub(super) fn add_noise(&mut self, rng: &mut Rng, sigma: f32) {
        for p in &mut self.px {
            for c in p.iter_mut() {
                *c += sigma * rng.normal() as f32;
            }
        }
    }

    /// RGB8 `[H, W, 3]`, rounded and clamped to `0..=255`.
    pub(super) fn to_rgb8(&self) -> Vec<u8> {
        self.px
            .iter()
            .flat_map(|p| p.map(|c| c.round().clamp(0.0, 255.0) as u8))
            .collect()
    }
}

/// A similarity transform: a shape's own coordinates `(u, v)` -> pixels. The shape is scaled
/// by `scale` pixels per unit, turned by `angle` radians (clockwise on screen, since `y` grows
/// downwards) and centred at `(cx, cy)`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pose {
    /// Centre, pixels.
    pub(super) cx: f32,
    /// Centre, pixels.
    pub(super) cy: f32,
    /// Pixels per unit of the shape's coordinates.
    pub(super) scale: f32,
    /// Rotation, radians.
    pub(super) angle: f32,
}

impl Pose {
    /// Shape coordinates of pixel point `(x, y)`.
    pub(super) fn to_local(self, x: f32, y: f32) -> (f32, f32) {
        let (s, c) = self.angle.sin_cos();
        let (dx, dy) = (x - self.cx, y - self.cy);
        (
            (c * dx + s * dy) / self.scale,
            (-s * dx + c * dy) / self.scale,
        )
    }

    /// Pixel point of shape coordinates `(u, v)`.
    pub(super) fn to_pixel(self, u: f32, v: f32) -> (f32, f32) {
        let (s, c) = self.angle.sin_cos();
        let (u, v) = (u * self.scale, v * self.scale);
        (self.cx + c * u - s * v, self.cy + s * u + c * v)
    }

    /// Pixel bounding box of the disc of radius `r` (shape units) around shape point `(u, v)`,
    /// with one pixel of margin for the anti-aliased edge.
    pub(super) fn bbox(&self, u: f32, v: f32, r: f32) -> [f32; 4] {
        let (x, y) = self.to_pixel(u, v);
        let rp = r * self.scale + 1.0;
        [x - rp, y - rp, x + rp, y + rp]
    }

    /// Paints the shape `sd` (signed distance in shape units) lying within radius `r` of shape
    /// point `(u, v)`.
    pub(super) fn paint(
        &self,
        canvas: &mut Canvas,
        (u, v, r): (f32, f32, f32),
        color: Rgb,
        sd: impl Fn(f32, f32) -> f32,
    ) {
        canvas.paint(self.bbox(u, v, r), color, |x, y| {
            let (lu, lv) = self.to_local(x, y);
            sd(lu, lv) * self.scale
        });
    }
}

/// Signed distance to an axis-aligned ellipse with semi-axes `a`, `b` centred at the origin.
///
/// The usual first-order approximation `k0 (k0 - 1) / k1` (exact on the axes and for
/// circles, within a few percent near the boundary elsewhere): only the band `|d| < 1 px`
/// matters for coverage, where it is accurate.
pub(super) fn sd_ellipse(u: f32, v: f32, a: f32, b: f32) -> f32 {
    let k0 = ((u / a).powi(2) + (v / b).powi(2)).sqrt();
    let k1 = ((u / (a * a)).powi(2) + (v / (b * b)).powi(2)).sqrt();
    if k1 == 0.0 {
        -a.min(b)
    } else {
        k0 * (k0 - 1.0) / k1
    }
}

/// Signed distance to the capsule of radius `r` around the segment `p`-`q` (a thick line with
/// round caps).
pub(super) fn sd_capsule(u: f32, v: f32, p: (f32, f32), q: (f32, f32), r: f32) -> f32 {
    let (du, dv) = (q.0 - p.0, q.1 - p.1);
    let (pu, pv) = (u - p.0, v - p.1);
    let len2 = du * du + dv * dv;
    let t = if len2 > 0.0 {
        ((pu * du + pv * dv) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    ((pu - t * du).powi(2) + (pv - t * dv).powi(2)).sqrt() - r
}

/// Signed distance to a thick polyline through `points` (radius `r`).
pub(super) fn sd_polyline(u: f32, v: f32, points: &[(f32, f32)], r: f32) -> f32 {
    points
        .windows(2)
        .map(|w| sd_capsule(u, v, w[0], w[1], r))
        .fold(f32::INFINITY, f32::min)
}

/// Signed distance to the axis-aligned box with half extents `hu`, `hv` centred at the origin.
pub(super) fn sd_box(u: f32, v: f32, hu: f32, hv: f32) -> f32 {
    let (du, dv) = (u.abs() - hu, v.abs() - hv);
    let outside = (du.max(0.0).powi(2) + dv.max(0.0).powi(2)).sqrt();
    outside + du.max(dv).min(0.0)
}

/// Signed distance to the triangle `a`, `b`, `c` (either winding).
pub(super) fn sd_triangle(u: f32, v: f32, a: (f32, f32), b: (f32, f32), c: (f32, f32)) -> f32 {
    let edges = [(a, b), (b, c), (c, a)];
    let mut dist2 = f32::INFINITY;
    let mut signs = [0f32; 3];
    for (i, &(p, q)) in edges.iter().enumerate() {
        let (eu, ev) = (q.0 - p.0, q.1 - p.1);
        let (wu, wv) = (u - p.0, v - p.1);
        let t = ((wu * eu + wv * ev) / (eu * eu + ev * ev)).clamp(0.0, 1.0);
        dist2 = dist2.min((wu - t * eu).powi(2) + (wv - t * ev).powi(2));
        signs[i] = eu * wv - ev * wu;
    }
    let inside = signs.iter().all(|&s| s >= 0.0) || signs.iter().all(|&s| s <= 0.0);
    if inside { -dist2.sqrt() } else { dist2.sqrt() }
}

/// `a + t (b - a)` per channel.
pub(super) fn mix(a: Rgb, b: Rgb, t: f32) -> Rgb {
    [
        a[0] + t * (b[0] - a[0]),
        a[1] + t * (b[1] - a[1]),
        a[2] + t * (b[2] - a[2]),
    ]
}

/// Rec. 601 luma of a colour, `0..=255`.
pub(super) fn luma(c: Rgb) -> f32 {
    0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]
}

/// A random colour with every channel in `lo..hi`.
pub(super) fn random_color(rng: &mut Rng, lo: f32, hi: f32) -> Rgb {
    [0, 1, 2].map(|_| rng.uniform(lo as f64, hi as f64) as f32)
}

/// A static random texture: `base` plus a few oriented sinusoidal gratings of random
/// frequency, phase and amplitude `amplitude` (summed), so that backgrounds differ per video
/// yet carry no information about the label.
#[derive(Debug, Clone)]
pub(super) struct Texture {
    base: Rgb,
    /// Per grating: direction (unit vector scaled by angular frequency), phase, RGB amplitude.
    gratings: Vec<(f32, f32, f32, Rgb)>,
}

impl Texture {
    /// A texture for a `size`-pixel square with `n` gratings.
    pub(super) fn random(rng: &mut Rng, size: usize, base: Rgb, amplitude: f32, n: usize) -> Self {
        let gratings = (0..n)
            .map(|_| {
                let theta = rng.uniform(0.0, std::f64::consts::PI) as f32;
                // 1.5 to 6 periods across the image.
                let periods = rng.uniform(1.5, 6.0) as f32;
                let omega = std::f32::consts::TAU * periods / size as f32;
                let phase = rng.uniform(0.0, std::f64::consts::TAU) as f32;
                let amp = [0, 1, 2].map(|_| amplitude * rng.uniform(0.3, 1.0) as f32);
                (omega * theta.cos(), omega * theta.sin(), phase, amp)
            })
            .collect();
        Texture { base, gratings }
    }

    /// The same texture with its gratings' amplitudes times `factor` (0: the plain base).
    pub(super) fn faded(&self, factor: f32) -> Self {
        let gratings = self
            .gratings
            .iter()
            .map(|&(fx, fy, phase, amp)| (fx, fy, phase, amp.map(|a| a * factor)))
            .collect();
        Texture {
            base: self.base,
            gratings,
        }
    }

    /// The texture's colour at pixel point `(x, y)`.
    pub(super) fn at(&self, x: f32, y: f32) -> Rgb {
        let mut c = self.base;
        for &(fx, fy, phase, amp) in &self.gratings {
            let s = (fx * x + fy * y + phase).sin();
            for k in 0..3 {
                c[k] += amp[k] * s;
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdfs_are_negative_inside_and_zero_on_the_boundary() {
        assert!((sd_ellipse(2.0, 0.0, 2.0, 1.0)).abs() < 1e-6);
        assert!((sd_ellipse(0.0, 1.0, 2.0, 1.0)).abs() < 1e-6);
        assert!((sd_ellipse(3.0, 0.0, 2.0, 1.0) - 1.0).abs() < 1e-6);
        assert!(sd_ellipse(0.0, 0.0, 2.0, 1.0) < 0.0);
        assert!((sd_capsule(0.5, 1.0, (0.0, 0.0), (1.0, 0.0), 0.25) - 0.75).abs() < 1e-6);
        assert!((sd_box(0.0, 2.0, 1.0, 0.5) - 1.5).abs() < 1e-6);
        assert!((sd_box(0.0, 0.0, 1.0, 0.5) + 0.5).abs() < 1e-6);
        let tri = |u, v| sd_triangle(u, v, (0.0, 0.0), (2.0, 0.0), (0.0, 2.0));
        assert!(tri(0.5, 0.5) < 0.0 && tri(2.0, 2.0) > 0.0);
        assert!((tri(1.0, -1.0) - 1.0).abs() < 1e-6);
        // The winding does not matter.
        let rev = sd_triangle(0.5, 0.5, (0.0, 2.0), (2.0, 0.0), (0.0, 0.0));
        assert!((rev - tri(0.5, 0.5)).abs() < 1e-6);
    }

    #[test]
    fn painting_covers_partially_at_edges() {
        let mut c = Canvas::new(8, 8, [0.0; 3]);
        // Half plane x < 4: pixels with centres 3.5 and 4.5 get coverage 1 and 0; x = 4.0
        // edge exactly between them.
        c.paint([0.0, 0.0, 8.0, 8.0], [200.0; 3], |x, _| x - 4.0);
        let rgb = c.to_rgb8();
        assert_eq!(rgb[3 * 3], 200);
        assert_eq!(rgb[4 * 3], 0);
        // An edge through a pixel centre covers it half.
        let mut c = Canvas::new(4, 1, [0.0; 3]);
        c.paint([0.0, 0.0, 4.0, 1.0], [100.0; 3], |x, _| x - 1.5);
        assert_eq!(c.to_rgb8()[3], 50);
    }

    #[test]
    fn pose_round_trips_and_turns_clockwise_on_screen() {
        let p = Pose {
            cx: 10.0,
            cy: 20.0,
            scale: 4.0,
            angle: std::f32::consts::FRAC_PI_2,
        };
        let (x, y) = p.to_pixel(1.0, 0.0);
        // +u points right before turning; a quarter turn clockwise (y down) points it down.
        assert!(
            (x - 10.0).abs() < 1e-5 && (y - 24.0).abs() < 1e-5,
            "{x} {y}"
        );
        let (u, v) = p.to_local(x, y);
        assert!((u - 1.0).abs() < 1e-5 && v.abs() < 1e-5);
    }
}
