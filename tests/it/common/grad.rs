//! Gradient checks shared by the method tests: random values for the parameters under test
//! (zero inits would make most gradients vanish and hide mistakes), random directions, and
//! the central difference of the loss along a direction.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::tensor::{Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};
use vidapter::methods::VideoClassifier;
use vidapter::train::loss::cross_entropy;

use super::to_vec;

/// Label smoothing of the loss the gradient checks differentiate.
pub const SMOOTHING: f64 = 0.1;

/// `model` with every parameter under a top-level module that `select` accepts drawn from
/// N(0, `std`), seeded by `seed`; the other parameters unchanged.
pub fn randomised(
    model: VideoClassifier,
    seed: u64,
    std: f32,
    select: fn(&str) -> bool,
) -> VideoClassifier {
    model.map(&mut Randomise {
        rng: StdRng::seed_from_u64(seed),
        normal: Normal::new(0.0, std).unwrap(),
        select,
        path: Vec::new(),
    })
}

struct Randomise {
    rng: StdRng,
    normal: Normal<f32>,
    select: fn(&str) -> bool,
    path: Vec<String>,
}

impl ModuleMapper for Randomise {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.into());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if !self.path.first().is_some_and(|m| (self.select)(m)) {
            return p;
        }
        let (normal, rng) = (self.normal, &mut self.rng);
        p.map(|t| {
            let shape = t.shape();
            let device = t.device();
            let data: Vec<f32> = (0..shape.num_elements())
                .map(|_| normal.sample(rng))
                .collect();
            Tensor::from_data(TensorData::new(data, shape), &device)
        })
    }
}

/// A direction of `len` N(0, 1) values.
pub fn direction(rng: &mut StdRng, len: usize) -> Vec<f32> {
    let normal = Normal::new(0.0f32, 1.0).unwrap();
    (0..len).map(|_| normal.sample(rng)).collect()
}

/// The directional derivative `g . d` in f64.
pub fn dot(g: &[f32], d: &[f32]) -> f64 {
    g.iter()
        .zip(d)
        .map(|(a, b)| (*a as f64) * (*b as f64))
        .sum()
}

/// The central difference `(L(p + eps d) - L(p - eps d)) / 2 eps` of the smoothed
/// cross-entropy of `model` on clips `x` against `y`, along `dir` (parameter id -> direction).
pub fn central_difference(
    model: &VideoClassifier,
    dir: &HashMap<ParamId, Vec<f32>>,
    eps: f32,
    x: &Tensor<5>,
    y: &[usize],
) -> f64 {
    let loss_at = |eps: f32| -> f64 {
        let m = model.clone().map(&mut Nudge { dir, eps });
        to_vec(cross_entropy(m.forward(x.clone(), None), y, SMOOTHING))[0] as f64
    };
    (loss_at(eps) - loss_at(-eps)) / (2.0 * eps as f64)
}

/// Adds `eps * dir[id]` to the parameters named in `dir`.
struct Nudge<'a> {
    dir: &'a HashMap<ParamId, Vec<f32>>,
    eps: f32,
}

impl ModuleMapper for Nudge<'_> {
    fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(d) = self.dir.get(&p.id) else {
            return p;
        };
        let (eps, d) = (self.eps, d.clone());
        p.map(|t| {
            let shape = t.shape();
            let device = t.device();
            t + Tensor::<D>::from_data(TensorData::new(d, shape), &device) * eps
        })
    }
}
