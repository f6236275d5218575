//! The synthetic data's random numbers: SplitMix64, written out here so that a seed gives the
//! same dataset whatever version of the `rand` crates the build resolves (their `StdRng` and
//! `SmallRng` are documented as not portable across versions).
//!
//! Every video draws from its own generator, derived from the run seed and the video's
//! identity (class, split, index) with [`Rng::derive`], so that the output does not depend on
//! the order in which worker threads pick up videos.

/// A small, fast, statistically sound generator (Steele, Lea & Flood, "Fast splittable
/// pseudorandom number generators", OOPSLA 2014); its state is a single counter.
#[derive(Debug, Clone)]
pub(super) struct Rng {
    state: u64,
}

/// SplitMix64's output function: a bijective mix of a 64-bit word.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

impl Rng {
    /// A generator seeded with `seed`.
    pub(super) fn new(seed: u64) -> Self {
        Rng { state: mix(seed) }
    }

    /// An independent generator for the item named by `parts` (e.g. class, split, index),
    /// a function of `seed` and `parts` only.
    pub(super) fn derive(seed: u64, parts: &[u64]) -> Self {
        let mut h = mix(seed ^ 0x5eed_5eed_5eed_5eed);
        for &p in parts {
            h = mix(h ^ mix(p.wrapping_add(GOLDEN)));
        }
        Rng::new(h)
    }

    /// The next 64 random bits.
    pub(super) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        mix(self.state)
    }

    /// Uniform in `[0, 1)`, 53 bits of precision.
    pub(super) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[lo, hi)`.
    pub(super) fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform integer in `0..n` (`n >= 1`); the modulo bias is below 2^-50 for the small `n`
    /// used here.
    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Standard normal (Box-Muller; one of the pair is discarded to keep the state simple).
    pub(super) fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit(); // (0, 1]: ln is finite
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_derived_streams_differ() {
        let a: Vec<u64> = (0..4).map(|_| Rng::new(7).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut x = Rng::derive(7, &[1, 2, 3]);
        let mut y = Rng::derive(7, &[1, 2, 4]);
        let mut z = Rng::derive(7, &[1, 2, 3]);
        let (x1, y1, z1) = (x.next_u64(), y.next_u64(), z.next_u64());
        assert_eq!(x1, z1);
        assert_ne!(x1, y1);
        assert_ne!(
            Rng::derive(7, &[0]).next_u64(),
            Rng::derive(8, &[0]).next_u64()
        );
    }

    #[test]
    fn uniform_and_normal_have_the_right_moments() {
        let mut r = Rng::new(42);
        let n = 200_000;
        let u: Vec<f64> = (0..n).map(|_| r.unit()).collect();
        assert!(u.iter().all(|&v| (0.0..1.0).contains(&v)));
        let mean = u.iter().sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.005, "mean {mean}");
        let g: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let gm = g.iter().sum::<f64>() / n as f64;
        let gv = g.iter().map(|v| (v - gm) * (v - gm)).sum::<f64>() / n as f64;
        assert!(gm.abs() < 0.01 && (gv - 1.0).abs() < 0.02, "{gm} {gv}");
        let counts = (0..60_000).fold([0usize; 3], |mut c, _| {
            c[r.below(3)] += 1;
            c
        });
        assert!(
            counts.iter().all(|&c| (19_000..21_000).contains(&c)),
            "{counts:?}"
        );
    }
}
