//! [`VideoClassifier`]: a backbone, the method's trainable parts and a linear head, with one
//! forward pass from clips to logits.
//!
//! ```text
//! clips [B, T, 3, H, W] -> frames [B*T, 3, H, W]
//!   in-backbone: embed -> for each block i: (adapter before attn) -> attn half
//!                                          -> (adapter before MLP) -> MLP half
//!   side branch: the backbone's forward without autodiff (nothing of it is recorded)
//! -> clip feature [B, C]: pool = CLIP's post-LN of cls (pooler_output), ViT/DINOv2's final-LN cls
//!      linear probe:  mean_T(pool(cls_t))         (image features averaged over time)
//!      in-backbone:   pool(mean_T(cls_t))         (ST-Adapter's code: ln_post after the mean)
//!      M-adapter, EVL: the branch over the levels [`VideoClassifier::levels_needed`]
//!                      ([B, d] resp. [B, C]; see m_adapter.rs, evl.rs)
//! -> dropout -> fc [B, K]
//! ```
//!
//! Side-branch methods split at the levels: [`VideoClassifier::frozen_levels`] runs the frozen
//! backbone (no autodiff) and [`VideoClassifier::forward_from_levels`] runs what trains, so a
//! feature cache can store the levels once and train the branch for many epochs.

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::Linear;
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Bernoulli, Distribution, Normal};

use super::adapter::ConvAdapter;
use super::evl::Evl;
use super::m_adapter::MAdapter;
use super::{Family, METHODS, MethodConfig, Placement};
use crate::backbone::{Pooler, VisionTransformer};
use crate::error::{Error, Result};
use crate::kernels::linear;
use crate::util::same_context;

/// Where each block's adapters are (indices into the adapter lists).
#[derive(Debug, Clone, Default)]
struct Plan {
    before_attn: Vec<Option<usize>>,
    before_mlp: Vec<Option<usize>>,
    family: Option<Family>,
    dropout: f64,
}

/// A frozen image model adapted to video by one method.
#[derive(Module, Debug)]
pub struct VideoClassifier {
    backbone: VisionTransformer,
    attn_adapters: Vec<ConvAdapter>,
    mlp_adapters: Vec<ConvAdapter>,
    /// The M-adapter branch (method `m_adapter` only). Side branches with modules of their
    /// own each have a field named after the method: it starts their checkpoint paths.
    m_adapter: Option<MAdapter>,
    /// The EVL decoder (method `evl` only).
    evl: Option<Evl>,
    head: Linear,
    #[module(skip)]
    plan: Plan,
}

/// Whether a top-level field of [`VideoClassifier`] is a side branch: its name is the
/// branch's method's (`m_adapter`, `evl`), as checkpoint paths have it.
fn is_branch(field: &str) -> bool {
    METHODS
        .iter()
        .any(|m| m.family == Family::SideBranch && m.name == field)
}

/// Parameters of one top-level part of the model.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ParamRow {
    /// `backbone`, `attn_adapters.3`, `head`, ...
    pub module: String,
    /// Number of scalars.
    pub params: usize,
    /// Whether training updates them.
    pub trainable: bool,
}

impl VideoClassifier {
    /// Builds `method` around `backbone` with a `classes`-way head, every random initial
    /// value drawn from `seed`. `method` must have passed [`MethodConfig::validate_for`] (or
    /// [`MethodConfig::validate`] for methods that do not depend on the width).
    pub fn new(
        backbone: VisionTransformer,
        method: &MethodConfig,
        classes: usize,
        seed: u64,
        device: &Device,
    ) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let cfg = backbone.config().clone();
        let blocks = cfg.num_layers;
        let adapters = method.method().adapters(cfg.hidden_size);
        let mut plan = Plan {
            before_attn: vec![None; blocks],
            before_mlp: vec![None; blocks],
            family: Some(method.family()),
            dropout: method.dropout(),
        };
        let (mut attn_adapters, mut mlp_adapters) = (Vec::new(), Vec::new());
        if let Some((adapter, placement, set)) = adapters {
            let chosen = set
                .resolve(blocks)
                .unwrap_or_else(|e| panic!("method config not validated: blocks {e}"));
            for i in chosen {
                if matches!(placement, Placement::BeforeAttn | Placement::Both) {
                    plan.before_attn[i] = Some(attn_adapters.len());
                    attn_adapters.push(adapter.init(&mut rng, device));
                }
                if matches!(placement, Placement::BeforeMlp | Placement::Both) {
                    plan.before_mlp[i] = Some(mlp_adapters.len());
                    mlp_adapters.push(adapter.init(&mut rng, device));
                }
            }
        }
        let backbone = match method.method().backbone_lr_scale() {
            // Every weight a clip feature reads; ViT's tanh pooler is never read.
            Some(_) => backbone.set_require_grad(true).with_pooler_frozen(),
            None => backbone.no_grad(),
        };
        // Side branches draw their init before the head; other methods draw nothing here.
        let (m_adapter, evl) = match method {
            MethodConfig::MAdapter(c) => (
                Some(c.init(blocks, cfg.hidden_size, &mut rng, device)),
                None,
            ),
            MethodConfig::Evl(c) => (
                None,
                Some(c.init(
                    blocks,
                    cfg.hidden_size,
                    (cfg.grid(), cfg.grid()),
                    &mut rng,
                    device,
                )),
            ),
            _ => (None, None),
        };
        let feature_dim = m_adapter.as_ref().map_or(cfg.hidden_size, MAdapter::width);
        // Head: N(0, 0.02) weights, zero bias (methods.md).
        let normal = Normal::new(0.0f32, 0.02).expect("valid std");
        let w: Vec<f32> = (0..feature_dim * classes)
            .map(|_| normal.sample(&mut rng))
            .collect();
        let head = Linear {
            weight: Param::from_tensor(Tensor::from_data(
                TensorData::new(w, [feature_dim, classes]),
                device,
            )),
            bias: Some(Param::from_tensor(Tensor::zeros([classes], device))),
        };
        VideoClassifier {
            backbone,
            attn_adapters,
            mlp_adapters,
            m_adapter,
            evl,
            head,
            plan,
        }
    }

    /// The backbone inside.
    pub fn backbone(&self) -> &VisionTransformer {
        &self.backbone
    }

    /// Number of classes of the head.
    pub fn classes(&self) -> usize {
        self.head.weight.dims()[1]
    }

    /// Per-frame features before temporal pooling, from the last block's output.
    ///
    /// # Shapes
    /// - x: `[B*T, 1+N, C]` -> `[B*T, C]`
    fn frame_features(backbone: &VisionTransformer, x: Tensor<3>) -> Tensor<2> {
        let (last, pooled) = backbone.finish(x);
        match backbone.config().pooler {
            Pooler::ClsPostNorm => pooled,
            _ => {
                let [bt, _, c] = last.dims();
                last.slice_dim(1, 0..1).reshape([bt, c])
            }
        }
    }

    /// The backbone's last-block tokens for `frames`-frame clips, through the adapters.
    /// Only for in-backbone methods.
    ///
    /// # Shapes
    /// - pixels: `[B*T, 3, H, W]` -> `[B*T, 1+N, C]`
    fn tokens(&self, pixels: Tensor<4>, frames: usize) -> Tensor<3> {
        let mut x = self.backbone.embed(pixels); // [B*T, 1+N, C]
        for (i, block) in self.backbone.blocks().iter().enumerate() {
            if let Some(a) = self.plan.before_attn[i] {
                x = self.attn_adapters[a].forward(x, frames);
            }
            x = block.attn_residual(x);
            if let Some(a) = self.plan.before_mlp[i] {
                x = self.mlp_adapters[a].forward(x, frames);
            }
            x = block.mlp_residual(x);
        }
        x
    }

    /// The side branch's per-frame image features: the frozen backbone's pooled output,
    /// computed off autodiff (nothing of it is recorded) and entering the trainable part as
    /// a constant.
    ///
    /// # Shapes
    /// - pixels: `[B*T, 3, H, W]` -> `[B*T, C]`
    fn frozen_frame_features(&self, pixels: Tensor<4>) -> Tensor<2> {
        let backbone = self.backbone.valid();
        let mut x = backbone.embed(pixels.without_autodiff());
        for block in backbone.blocks() {
            x = block.forward(x);
        }
        same_context(Self::frame_features(&backbone, x), &self.head.weight.val())
    }

    /// Per-frame features `[B*T, C]`: the image model's pooled feature of every frame (through
    /// the adapters for in-backbone methods). At initialisation every method gives the image
    /// model's own features.
    pub fn frame_embeddings(&self, clips: Tensor<5>) -> Tensor<2> {
        let [b, t, ch, h, w] = clips.dims();
        let pixels = clips.reshape([b * t, ch, h, w]);
        match self.plan.family {
            Some(Family::SideBranch) => self.frozen_frame_features(pixels),
            _ => Self::frame_features(&self.backbone, self.tokens(pixels, t)),
        }
    }

    /// One feature per clip, as each method's reference defines it:
    /// - linear probe: `mean_T(pool(frame))`, the image features averaged over time;
    /// - in-backbone methods (ST-Adapter's code, methods.md for FE-Adapter):
    ///   `pool(mean_T(cls))`, the final norm (CLIP's `ln_post`) after the temporal mean;
    /// - M-adapter, EVL: the branch's feature (evaluation mode: no dropout).
    ///
    /// # Shapes
    /// - clips: `[B, T, 3, H, W]` -> `[B, C]` (`[B, d]` for M-adapter)
    pub fn clip_features(&self, clips: Tensor<5>) -> Tensor<2> {
        if self.has_branch() {
            return self.branch_features_of_clips(clips, None);
        }
        let [b, t, ch, h, w] = clips.dims();
        let pixels = clips.reshape([b * t, ch, h, w]);
        match self.plan.family {
            Some(Family::SideBranch) => {
                let f = self.frozen_frame_features(pixels); // [B*T, C]
                let c = f.dims()[1];
                f.reshape([b, t, c]).mean_dim(1).reshape([b, c])
            }
            _ => {
                let x = self.tokens(pixels, t); // [B*T, 1+N, C]
                let c = x.dims()[2];
                let cls = x.slice_dim(1, 0..1).reshape([b, t, c]).mean_dim(1); // [B, 1, C]
                Self::frame_features(&self.backbone, cls)
            }
        }
    }

    /// Logits for a batch of clips. `dropout_seed` switches the head's dropout on (training)
    /// with a mask drawn from that seed, so a resumed run draws the same masks.
    ///
    /// # Shapes
    /// - clips: `[B, T, 3, H, W]` -> `[B, K]`
    pub fn forward(&self, clips: Tensor<5>, dropout_seed: Option<u64>) -> Tensor<2> {
        let pooled = if self.has_branch() {
            self.branch_features_of_clips(clips, dropout_seed)
        } else {
            self.clip_features(clips)
        }; // [B, C]
        self.head_logits(pooled, dropout_seed)
    }

    /// Dropout (on when `dropout_seed` is given) and the linear head.
    ///
    /// # Shapes
    /// - pooled: `[B, C]` -> `[B, K]`
    fn head_logits(&self, pooled: Tensor<2>, dropout_seed: Option<u64>) -> Tensor<2> {
        let [b, c] = pooled.dims();
        let pooled = match dropout_seed {
            Some(seed) if self.plan.dropout > 0.0 => {
                let keep = 1.0 - self.plan.dropout;
                let dist = Bernoulli::new(keep).expect("dropout validated in [0, 1)");
                let mut rng = StdRng::seed_from_u64(seed);
                let mask: Vec<f32> = (0..b * c)
                    .map(|_| {
                        if dist.sample(&mut rng) {
                            1.0 / keep as f32
                        } else {
                            0.0
                        }
                    })
                    .collect();
                let device = pooled.device();
                pooled * Tensor::<2>::from_data(TensorData::new(mask, [b, c]), &device)
            }
            _ => pooled,
        };
        linear(&self.head, pooled)
    }

    /// Whether the method is a trainable branch over levels (M-adapter, EVL).
    fn has_branch(&self) -> bool {
        self.m_adapter.is_some() || self.evl.is_some()
    }

    /// The backbone levels a side-branch method reads (0 = embeddings, `i` = output of block
    /// `i`, as [`VisionTransformer::forward`] numbers them), ascending: the tensors a feature
    /// cache stores for [`VideoClassifier::forward_from_levels`]. M-adapter: its block set;
    /// EVL: the last `levels` blocks, and with its cross-attention the level entering the
    /// first of them; linear probe: the last block. Empty for in-backbone methods, which
    /// cannot run from stored levels.
    pub fn levels_needed(&self) -> Vec<usize> {
        if let Some(m) = &self.m_adapter {
            return m.blocks().iter().map(|b| b + 1).collect();
        }
        if let Some(e) = &self.evl {
            return e.levels_needed();
        }
        match self.plan.family {
            Some(Family::SideBranch) => vec![self.backbone.config().num_layers],
            _ => Vec::new(),
        }
    }

    /// The frozen backbone's [`VideoClassifier::levels_needed`] for a batch of clips, computed
    /// off autodiff: plain tensors that no graph records and no gradient reaches, whatever
    /// device the model is on.
    ///
    /// # Shapes
    /// - clips: `[B, T, 3, H, W]` -> one `[B*T, 1+N, C]` per level needed
    pub fn frozen_levels(&self, clips: Tensor<5>) -> Vec<Tensor<3>> {
        let [b, t, ch, h, w] = clips.dims();
        let pixels = clips.reshape([b * t, ch, h, w]).without_autodiff();
        let backbone = self.backbone.valid();
        backbone
            .forward(pixels, &self.levels_needed())
            .levels
            .into_iter()
            .map(|(_, x)| x)
            .collect()
    }

    /// Logits from precomputed levels (e.g. a feature cache), equal to
    /// [`VideoClassifier::forward`] on the clips they came from. `levels` are the tensors of
    /// [`VideoClassifier::levels_needed`] in that order, each `[B*T, 1+N, C]` for clips of
    /// `frames` frames; whatever graph they carry is cut, so they enter as constants.
    /// `dropout_seed` as in [`VideoClassifier::forward`].
    ///
    /// The patch grid is taken as square (`N = g*g`) where the method needs it (M-adapter's
    /// `grid_pool`, EVL's cross-attention); other methods do not read it.
    ///
    /// # Errors
    /// [`Error::Input`] for an in-backbone method, a wrong number of levels, or levels whose
    /// shapes disagree with each other, the backbone width or `frames`.
    ///
    /// # Shapes
    /// - levels: each `[B*T, 1+N, C]` -> `[B, K]`
    pub fn forward_from_levels(
        &self,
        levels: Vec<Tensor<3>>,
        frames: usize,
        dropout_seed: Option<u64>,
    ) -> Result<Tensor<2>> {
        let needed = self.levels_needed();
        if needed.is_empty() {
            return Err(Error::Input(
                "this model's method trains inside the backbone; it cannot run from precomputed levels".into(),
            ));
        }
        if levels.len() != needed.len() {
            return Err(Error::Input(format!(
                "got {} level tensors; the method reads levels {needed:?} (one tensor each, in that order)",
                levels.len()
            )));
        }
        let c = self.backbone.config().hidden_size;
        let [bt, l, _] = levels[0].dims();
        for (x, lv) in levels.iter().zip(&needed) {
            let dims = x.dims();
            if dims != [bt, l, c] {
                return Err(Error::Input(format!(
                    "level {lv} has shape {dims:?}; expected [{bt}, {l}, {c}] \
                     ([B*T, 1+N, C] with the backbone width C = {c}, the same for every level)"
                )));
            }
        }
        if frames == 0 || bt % frames != 0 || l < 2 {
            return Err(Error::Input(format!(
                "levels of shape [{bt}, {l}, {c}] do not hold clips of {frames} frames \
                 (expected [B*T, 1+N, C] with B*T a multiple of T = {frames} and N >= 1)"
            )));
        }
        let n = l - 1;
        let g = (n as f64).sqrt().round() as usize;
        let needs_grid = self.m_adapter.as_ref().is_some_and(|m| m.pools_tokens())
            || self.evl.as_ref().is_some_and(|e| e.reads_attention());
        if needs_grid && g * g != n {
            return Err(Error::Input(format!(
                "levels hold {n} patch tokens, not a square grid; this method (M-adapter's \
                 grid_pool, EVL's cross-attention) needs the grid"
            )));
        }
        // Methods that do not need the grid ignore it, so a non-square `n` may pass through.
        let pooled = self.branch_features(levels, frames, (g, n / g.max(1)), dropout_seed);
        Ok(self.head_logits(pooled, dropout_seed))
    }

    /// The branch's clip feature, the backbone run off autodiff.
    ///
    /// # Shapes
    /// - clips: `[B, T, 3, H, W]` -> `[B, d]`
    fn branch_features_of_clips(&self, clips: Tensor<5>, dropout_seed: Option<u64>) -> Tensor<2> {
        let [_, t, _, h, w] = clips.dims();
        let p = self.backbone.config().patch_size;
        let levels = self.frozen_levels(clips);
        self.branch_features(levels, t, (h / p, w / p), dropout_seed)
    }

    /// The side-branch clip feature from levels (the linear probe's included): the levels
    /// enter as constants (on the autodiff device when the model is).
    ///
    /// # Shapes
    /// - levels: each `[B*T, 1+N, C]` -> `[B, d]`
    fn branch_features(
        &self,
        levels: Vec<Tensor<3>>,
        frames: usize,
        grid: (usize, usize),
        dropout_seed: Option<u64>,
    ) -> Tensor<2> {
        let like = self.head.weight.val();
        let constant = |x: Tensor<3>| same_context(x, &like);
        if let Some(m) = &self.m_adapter {
            return m.forward(levels.into_iter().map(constant).collect(), frames, grid);
        }
        if let Some(e) = &self.evl {
            // With the cross-attention the levels are [input of the first block read, outputs
            // of the blocks read...]: block i's input is block i-1's output.
            let (attention, outputs) = if e.reads_attention() {
                let backbone = self.backbone.valid();
                let inputs = &levels[..levels.len() - 1];
                let attention = e
                    .blocks()
                    .into_iter()
                    .zip(inputs)
                    .map(|(b, x)| {
                        let (q, k) = backbone.blocks()[b].query_key(x.clone().without_autodiff());
                        (same_context(q, &like), same_context(k, &like))
                    })
                    .collect();
                (
                    attention,
                    levels.into_iter().skip(1).map(constant).collect(),
                )
            } else {
                (Vec::new(), levels.into_iter().map(constant).collect())
            };
            return e.forward(outputs, attention, frames, grid, dropout_seed);
        }
        // Linear probe: the pooled image feature of the last level, averaged over time.
        let last = levels
            .into_iter()
            .next_back()
            .expect("levels checked non-empty")
            .without_autodiff();
        let f = Self::frame_features(&self.backbone.valid(), last); // [B*T, C]
        let f = same_context(f, &like);
        let [bt, c] = f.dims();
        f.reshape([bt / frames, frames, c])
            .mean_dim(1)
            .reshape([bt / frames, c])
    }

    /// Parameter counts by part (`backbone`, each adapter, each side-branch level, `head`),
    /// with whether training updates them.
    pub fn param_rows(&self) -> Vec<ParamRow> {
        struct Rows {
            path: Vec<String>,
            rows: Vec<ParamRow>,
        }
        impl ModuleVisitor for Rows {
            fn enter_module(&mut self, name: &str, _: &str) {
                self.path.push(name.to_string());
            }
            fn exit_module(&mut self, _: &str, _: &str) {
                self.path.pop();
            }
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                // Top level, plus the index for adapter lists.
                let module = match self.path.as_slice() {
                    [m, i, ..] if m.ends_with("adapters") => format!("{m}.{i}"),
                    // Side branches: `m_adapter.levels.3`, `evl.levels.0`, `evl.query`.
                    [m, v, i, ..] if is_branch(m) && i.parse::<usize>().is_ok() => {
                        format!("{m}.{v}.{i}")
                    }
                    [m, v, ..] if is_branch(m) => format!("{m}.{v}"),
                    [m, ..] => m.clone(),
                    [] => String::new(),
                };
                let n = param.shape().num_elements();
                let trainable = param.val().is_require_grad();
                match self.rows.last_mut() {
                    Some(r) if r.module == module && r.trainable == trainable => r.params += n,
                    _ => self.rows.push(ParamRow {
                        module,
                        params: n,
                        trainable,
                    }),
                }
            }
        }
        // Trainability is what `train()` applies, so read it off a training view.
        let mut rows = Rows {
            path: Vec::new(),
            rows: Vec::new(),
        };
        self.clone().train().visit(&mut rows);
        rows.rows
    }

    /// `(trainable, total)` parameter counts.
    pub fn param_totals(&self) -> (usize, usize) {
        self.param_rows().iter().fold((0, 0), |(t, a), r| {
            (t + if r.trainable { r.params } else { 0 }, a + r.params)
        })
    }
}
