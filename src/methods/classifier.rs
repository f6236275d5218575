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
//! -> dropout -> fc [B, K]
//! ```

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::Linear;
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Bernoulli, Distribution, Normal};

use super::adapter::ConvAdapter;
use super::{Family, MethodConfig, Placement};
use crate::backbone::{Pooler, VisionTransformer};

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
    head: Linear,
    #[module(skip)]
    plan: Plan,
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
    /// value drawn from `seed`. `method` must have passed [`MethodConfig::validate`].
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
        let (adapter, placement, set) = match method {
            MethodConfig::FeAdapter(c) => {
                (Some(c.adapter(cfg.hidden_size)), c.placement, &c.blocks)
            }
            MethodConfig::StAdapter(c) => {
                (Some(c.adapter(cfg.hidden_size)), c.placement, &c.blocks)
            }
            _ => (None, Placement::BeforeAttn, &super::BlockSet::default()),
        };
        let mut plan = Plan {
            before_attn: vec![None; blocks],
            before_mlp: vec![None; blocks],
            family: Some(method.family()),
            dropout: method.dropout(),
        };
        let (mut attn_adapters, mut mlp_adapters) = (Vec::new(), Vec::new());
        if let Some(adapter) = adapter {
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
        let backbone = match method {
            MethodConfig::FullFinetune(_) => backbone.set_require_grad(true),
            _ => backbone.no_grad(),
        };
        // Head: N(0, 0.02) weights, zero bias (methods.md).
        let normal = Normal::new(0.0f32, 0.02).expect("valid std");
        let w: Vec<f32> = (0..cfg.hidden_size * classes)
            .map(|_| normal.sample(&mut rng))
            .collect();
        let head = Linear {
            weight: Param::from_tensor(Tensor::from_data(
                TensorData::new(w, [cfg.hidden_size, classes]),
                device,
            )),
            bias: Some(Param::from_tensor(Tensor::zeros([classes], device))),
        };
        VideoClassifier {
            backbone,
            attn_adapters,
            mlp_adapters,
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
        let f = Self::frame_features(&backbone, x);
        if self.head.weight.val().is_autodiff() {
            f.autodiff()
        } else {
            f
        }
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
    ///   `pool(mean_T(cls))`, the final norm (CLIP's `ln_post`) after the temporal mean.
    ///
    /// # Shapes
    /// - clips: `[B, T, 3, H, W]` -> `[B, C]`
    pub fn clip_features(&self, clips: Tensor<5>) -> Tensor<2> {
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
        let [b, _, _, _, _] = clips.dims();
        let pooled = self.clip_features(clips); // [B, C]
        let c = pooled.dims()[1];
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
        self.head.forward(pooled)
    }

    /// Parameter counts by top-level part (`backbone`, each adapter, `head`), with whether
    /// training updates them.
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
