//! The side-branch methods (M-adapter, EVL, and the linear probe's level path) on the tiny
//! committed backbones: the backbone is neither recorded nor given gradients, running from
//! precomputed levels equals the full forward, the branch's gradients agree with central
//! differences, parameter counts agree with hand-computed figures for ViT-B/16, and configs
//! are checked field by field.

use crate::common;

use crate::common::{backbone, clips, grad, to_vec};

use std::collections::HashMap;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;

use vidapter::backbone::{VisionTransformer, VitConfig};
use vidapter::methods::evl::ConvInit;
use vidapter::methods::m_adapter::{Fusion, TemporalOp, TokenPool};
use vidapter::methods::{
    BlockSet, EvlConfig, FeAdapterConfig, LinearProbeConfig, MAdapterConfig, MethodConfig,
    VideoClassifier,
};

/// M-adapter variants covering every ablation axis, sized for the tiny backbones (C = 32).
fn m_adapters() -> Vec<MethodConfig> {
    vec![
        // Defaults but the width: gated fusion, conv, mean pooling, all blocks.
        MethodConfig::MAdapter(MAdapterConfig {
            width: 8,
            ..Default::default()
        }),
        MethodConfig::MAdapter(MAdapterConfig {
            width: 8,
            fusion: Fusion::ConcatProj,
            temporal: TemporalOp::Attention,
            heads: Some(2),
            pool: TokenPool::Cls,
            grid_pool: 2,
            ..Default::default()
        }),
        MethodConfig::MAdapter(MAdapterConfig {
            width: 6,
            blocks: BlockSet::List(vec![0, 2]),
            fusion: Fusion::Sum,
            temporal: TemporalOp::Attention,
            frames: 4,
            ..Default::default()
        }),
    ]
}

/// EVL with its defaults on the last two blocks (T = 8 positions, resampled for 4-frame
/// clips); on every block (its cross-attention reads the embeddings as block 0's input) with
/// the clip length's table, zero-initialised convs and two heads; and with the temporal
/// modules switched off but the position table.
fn evls() -> Vec<MethodConfig> {
    vec![
        MethodConfig::Evl(EvlConfig {
            levels: 2,
            ..Default::default()
        }),
        MethodConfig::Evl(EvlConfig {
            levels: 3,
            heads: Some(2),
            qkv_dim: Some(16),
            mlp_factor: 2.0,
            frames: 4,
            conv_init: ConvInit::Zero,
            ..Default::default()
        }),
        MethodConfig::Evl(EvlConfig {
            levels: 1,
            temporal_conv: false,
            temporal_cross_attention: false,
            ..Default::default()
        }),
    ]
}

fn probe() -> MethodConfig {
    MethodConfig::LinearProbe(LinearProbeConfig { dropout: 0.3 })
}

fn is_branch(path: &str) -> bool {
    path.starts_with("m_adapter") || path.starts_with("evl")
}

/// The method with every branch parameter random: the zero inits (convs, gates, queries,
/// output projections, position tables) would otherwise make most paths vanish and hide
/// mistakes.
fn randomised(model: VideoClassifier, seed: u64) -> VideoClassifier {
    grad::randomised(model, seed, 0.3, is_branch)
}

#[test]
fn backbone_is_neither_recorded_nor_given_gradients() {
    let device = Device::flex();
    let ad = device.clone().autodiff();
    for fixture in ["vit", "clip_vision_f16"] {
        let bb = backbone(fixture);
        let size = bb.config().image_size;
        let x = clips(2, 4, size, 2, &ad);
        // The 2-block CLIP fixture cannot host the variants reading a third block.
        let methods = m_adapters()
            .into_iter()
            .chain(evls())
            .chain([probe()])
            .filter(|m| m.validate_for(bb.config()).is_ok());
        for method in methods {
            let model = VideoClassifier::new(bb.clone(), &method, 3, 0, &device).train();
            // The levels handed to the branch were computed off autodiff: nothing recorded them.
            let levels = model.frozen_levels(x.clone());
            assert_eq!(levels.len(), model.levels_needed().len());
            for l in &levels {
                assert!(
                    !l.is_autodiff(),
                    "{fixture} {}: level on autodiff",
                    method.name()
                );
                assert!(!l.is_tracked() && !l.is_require_grad());
            }
            let grads = common::grads_by_path(&model, x.clone(), &[0, 2]);
            for (_, path, trainable) in common::params(&model) {
                let frozen = path.starts_with("backbone");
                assert_eq!(trainable, !frozen, "{}: {path}", method.name());
                assert_eq!(
                    grads.contains_key(&path),
                    !frozen,
                    "{fixture} {}: gradient presence of {path}",
                    method.name()
                );
            }
            assert!(grads.keys().any(|k| is_branch(k)) || method == probe());
        }
    }
}

#[test]
fn forward_from_levels_equals_the_full_forward() {
    let device = Device::flex();
    let bb = backbone("vit");
    let size = bb.config().image_size;
    let (b, t) = (2, 4);
    let x = clips(b, t, size, 3, &device);
    for method in m_adapters().into_iter().chain(evls()).chain([probe()]) {
        let model = randomised(VideoClassifier::new(bb.clone(), &method, 5, 0, &device), 1);
        for seed in [None, Some(11)] {
            let full = to_vec(model.forward(x.clone(), seed));
            let levels = model.frozen_levels(x.clone());
            let from = to_vec(model.forward_from_levels(levels, t, seed).unwrap());
            assert_eq!(full.len(), b * 5);
            let err = common::rel_err(&from, &full);
            assert!(
                err < 1e-6,
                "{} (dropout {seed:?}): rel err {err:e}",
                method.name()
            );
        }
        // Dropout is live in training mode: another seed, other logits.
        if method.dropout() > 0.0 {
            let a = to_vec(model.forward(x.clone(), Some(1)));
            let c = to_vec(model.forward(x.clone(), Some(2)));
            assert_ne!(a, c, "{}: dropout seed ignored", method.name());
        }
    }
}

#[test]
fn forward_from_levels_names_what_is_wrong() {
    let device = Device::flex();
    let bb = backbone("vit");
    let size = bb.config().image_size;
    let x = clips(1, 2, size, 4, &device);
    let model = VideoClassifier::new(bb.clone(), &evls()[0], 3, 0, &device);
    // Blocks 1 and 2 (levels 2, 3) and, for the cross-attention, block 1's input (level 1).
    assert_eq!(model.levels_needed(), vec![1, 2, 3]);
    let levels = model.frozen_levels(x.clone());
    let err = |r: vidapter::Result<Tensor<2>>| r.unwrap_err().to_string();
    let e = err(model.forward_from_levels(levels[..2].to_vec(), 2, None));
    assert!(
        e.contains("got 2 level tensors") && e.contains("[1, 2, 3]"),
        "{e}"
    );
    let e = err(model.forward_from_levels(levels.clone(), 3, None));
    assert!(e.contains("3 frames"), "{e}");
    let narrow: Vec<Tensor<3>> = levels
        .iter()
        .map(|l| l.clone().slice_dim(2, 0..16))
        .collect();
    let e = err(model.forward_from_levels(narrow, 2, None));
    assert!(
        e.contains("level 1 has shape [2, 17, 16]") && e.contains("C = 32"),
        "{e}"
    );
    // 15 patch tokens are no square grid, which the cross-attention needs.
    let ragged: Vec<Tensor<3>> = levels
        .iter()
        .map(|l| l.clone().slice_dim(1, 0..16))
        .collect();
    let e = err(model.forward_from_levels(ragged, 2, None));
    assert!(e.contains("not a square grid"), "{e}");
    let fe = VideoClassifier::new(
        bb,
        &MethodConfig::FeAdapter(FeAdapterConfig {
            bottleneck: 4,
            ..Default::default()
        }),
        3,
        0,
        &device,
    );
    assert!(fe.levels_needed().is_empty());
    let e = err(fe.forward_from_levels(levels, 2, None));
    assert!(e.contains("inside the backbone"), "{e}");
}

#[test]
fn branch_gradient_matches_central_differences() {
    // One directional derivative per branch tensor (a random direction over all of them at
    // once would let a wrong gradient of a small tensor hide behind the large ones).
    let device = Device::flex();
    let bb = backbone("vit");
    let size = bb.config().image_size;
    let y = [1usize, 2];
    for method in m_adapters().into_iter().chain(evls()) {
        let model = randomised(VideoClassifier::new(bb.clone(), &method, 3, 0, &device), 5);
        let trained = model.clone().train();
        let grads = common::grads_by_path(
            &trained,
            clips(2, 4, size, 3, &device.clone().autodiff()),
            &y,
        );
        let mut rng = StdRng::seed_from_u64(9);
        let x = clips(2, 4, size, 3, &device);
        let (mut checked, mut strong) = (0, 0);
        for (id, path, _) in common::params(&trained) {
            if !is_branch(&path) {
                continue;
            }
            let g = grads
                .get(&path)
                .unwrap_or_else(|| panic!("{}: no gradient for {path}", method.name()));
            let d = grad::direction(&mut rng, g.len());
            let analytic = grad::dot(g, &d);
            let dir = HashMap::from([(id, d)]);
            let numeric = grad::central_difference(&model, &dir, 1e-2, &x, &y);
            let diff = (numeric - analytic).abs();
            eprintln!(
                "{} {path}: analytic {analytic:.6e} numeric {numeric:.6e} rel {:.2e}",
                method.name(),
                diff / analytic.abs().max(1e-12)
            );
            // The f32 loss (~1.1) moves in steps of its ulp, 1.2e-7, so the central difference
            // resolves derivatives to ~1.2e-7 / (2 eps) = 6e-6: the absolute term is 3 steps.
            assert!(
                diff < 1e-2 * analytic.abs() + 2e-5,
                "{} {path}: analytic {analytic:.6e} vs numeric {numeric:.6e}",
                method.name()
            );
            checked += 1;
            strong += usize::from(analytic.abs() > 1e-4);
        }
        assert!(checked > 5, "{}: only {checked} tensors", method.name());
        // Most directions carry a derivative well above that floor, so the check has teeth.
        assert!(
            strong * 4 > checked * 3,
            "{}: only {strong} of {checked} derivatives above 1e-4",
            method.name()
        );
    }
}

#[test]
fn zero_init_temporal_modules_start_as_identity() {
    // At init the conv and the attention's output projection are zero, so reversing the
    // frames changes nothing an order-blind mean can see; once they are trained it does.
    let device = Device::flex();
    let bb = backbone("vit");
    let size = bb.config().image_size;
    let x = clips(1, 4, size, 6, &device);
    let reversed = x.clone().flip([1]);
    for method in m_adapters() {
        let model = VideoClassifier::new(bb.clone(), &method, 3, 0, &device);
        let (a, b) = (
            to_vec(model.forward(x.clone(), None)),
            to_vec(model.forward(reversed.clone(), None)),
        );
        let err = common::rel_err(&a, &b);
        assert!(
            err < 1e-5,
            "{}: order changed the init output (rel {err:e})",
            method.name()
        );
        let model = randomised(model, 2);
        let (a, b) = (
            to_vec(model.forward(x.clone(), None)),
            to_vec(model.forward(reversed.clone(), None)),
        );
        assert!(
            common::rel_err(&a, &b) > 1e-4,
            "{}: trained branch ignores frame order",
            method.name()
        );
    }
}

/// Trainable parameters of `method` around a ViT-B/16 (random weights: counts do not depend
/// on values), by row.
fn vit_b_rows(method: &MethodConfig, classes: usize) -> Vec<vidapter::methods::ParamRow> {
    let device = Device::flex();
    let bb = VisionTransformer::random(VitConfig::vit_base_patch16_224(), 0, &device);
    method.validate_for(bb.config()).unwrap();
    VideoClassifier::new(bb, method, classes, 0, &device).param_rows()
}

fn row(rows: &[vidapter::methods::ParamRow], module: &str) -> usize {
    let r = rows
        .iter()
        .find(|r| r.module == module)
        .unwrap_or_else(|| panic!("no row {module} in {rows:?}"));
    assert!(r.trainable, "{module} is frozen");
    r.params
}

#[test]
fn parameter_counts_match_hand_computed_vit_b_figures() {
    // M-adapter, defaults (C = 768, d = 384, all 12 levels, gated fusion, temporal conv):
    //   LN_l(768)          2 * 768             =   1,536
    //   Proj_l 768 -> 384  768 * 384 + 384     = 295,296
    //   conv_l (k = 3)     384 * 3 + 384       =   1,536
    //   gate_l (levels 2..12 only)             =     384
    //   level 1: 298,368; levels 2..12: 298,752 each; final LN(384): 768
    //   branch: 298,368 + 11 * 298,752 + 768 = 3,585,408; head 384 * 400 + 400 = 154,000
    let m = MethodConfig::MAdapter(MAdapterConfig::default());
    let rows = vit_b_rows(&m, 400);
    assert_eq!(row(&rows, "m_adapter.levels.0"), 298_368);
    for i in 1..12 {
        assert_eq!(row(&rows, &format!("m_adapter.levels.{i}")), 298_752);
    }
    assert_eq!(row(&rows, "m_adapter.norm"), 768);
    assert_eq!(row(&rows, "head"), 154_000);
    let trainable: usize = rows.iter().filter(|r| r.trainable).map(|r| r.params).sum();
    assert_eq!(trainable, 3_585_408 + 154_000);
    // With temporal attention instead of the conv: LN(384) 768 + positions 8 * 384 = 3,072
    // + qkv 384 * 1152 + 1152 = 443,520 + out 384 * 384 + 384 = 147,840 = 595,200 per level,
    // so level 1 = 1,536 + 295,296 + 595,200 = 892,032; concat fusion adds
    // 768 * 384 + 384 = 295,296 per later level: 892,032 + 295,296 = 1,187,328.
    let m = MethodConfig::MAdapter(MAdapterConfig {
        temporal: TemporalOp::Attention,
        fusion: Fusion::ConcatProj,
        ..Default::default()
    });
    let rows = vit_b_rows(&m, 400);
    assert_eq!(row(&rows, "m_adapter.levels.0"), 892_032);
    assert_eq!(row(&rows, "m_adapter.levels.11"), 1_187_328);

    // EVL, defaults (last 4 levels, D = 768, 12 heads, MLP 3072, T = 8, 14x14 grid):
    //   conv (k = 3)       768 * 3 + 768       =     3,072
    //   positions          8 * 768             =     6,144
    //   cross-attention    2 * 27 * 27 * 768   = 1,119,744   (w1, w2: one row per offset)
    //   3 LayerNorms       3 * 2 * 768         =     4,608
    //   q, k, v, out       4 * (768*768 + 768) = 2,362,368
    //   fc1 768 -> 3072    768*3072 + 3072     = 2,362,368
    //   fc2 3072 -> 768    3072*768 + 768      = 2,360,064
    //   per level 8,218,368; x4 = 32,873,472; query 768; final LN 1,536
    //   branch: 32,875,776; head 768 * 400 + 400 = 307,600
    let e = MethodConfig::Evl(EvlConfig::default());
    let rows = vit_b_rows(&e, 400);
    for i in 0..4 {
        assert_eq!(row(&rows, &format!("evl.levels.{i}")), 8_218_368);
    }
    assert_eq!(row(&rows, "evl.query"), 768);
    assert_eq!(row(&rows, "evl.norm"), 1_536);
    assert_eq!(row(&rows, "head"), 307_600);
    let trainable: usize = rows.iter().filter(|r| r.trainable).map(|r| r.params).sum();
    assert_eq!(trainable, 32_875_776 + 307_600);
    assert!(rows.iter().any(|r| r.module == "backbone" && !r.trainable));
    // Without the cross-attention: 8,218,368 - 1,119,744 = 7,098,624 per level.
    let e = MethodConfig::Evl(EvlConfig {
        temporal_cross_attention: false,
        ..Default::default()
    });
    assert_eq!(row(&vit_b_rows(&e, 400), "evl.levels.3"), 7_098_624);
}

fn parse(toml: &str) -> Result<MethodConfig, String> {
    toml::from_str::<MethodConfig>(toml).map_err(|e| e.to_string())
}

#[test]
fn method_tables_parse_with_defaults_and_errors_name_the_field() {
    let vit_b = VitConfig::vit_base_patch16_224();
    assert_eq!(
        parse("kind = \"m_adapter\"").unwrap(),
        MethodConfig::MAdapter(MAdapterConfig::default())
    );
    assert_eq!(
        parse("kind = \"evl\"").unwrap(),
        MethodConfig::Evl(EvlConfig::default())
    );
    let m = parse(
        "kind = \"m_adapter\"\nblocks = \"last:6\"\nwidth = 256\nfusion = \"concat_proj\"\n\
         temporal = \"attention\"\npool = \"cls\"\ngrid_pool = 2",
    )
    .unwrap();
    assert_eq!(m.name(), "m_adapter");
    m.validate_for(&vit_b).unwrap();
    assert_eq!(m.family(), vidapter::methods::Family::SideBranch);

    // Unknown fields and values: serde names them.
    let e = parse("kind = \"evl\"\nlevel = 4").unwrap_err();
    assert!(e.contains("level"), "{e}");
    let e = parse("kind = \"m_adapter\"\nfusion = \"concat\"").unwrap_err();
    assert!(e.contains("concat_proj"), "{e}");
    let e = parse("kind = \"evl\"\nconv_init = \"xavier\"").unwrap_err();
    assert!(e.contains("zero"), "{e}");

    // Values out of range: validate names the field.
    let field = |toml: &str| parse(toml).unwrap().validate_for(&vit_b).unwrap_err();
    assert_eq!(field("kind = \"m_adapter\"\nwidth = 0").0, "width");
    assert_eq!(field("kind = \"m_adapter\"\ngrid_pool = 0").0, "grid_pool");
    assert_eq!(field("kind = \"m_adapter\"\nheads = 5").0, "heads");
    let (f, msg) = field("kind = \"m_adapter\"\nblocks = [3, 12]");
    assert_eq!(f, "blocks");
    assert!(msg.contains("0..=11"), "{msg}");
    assert_eq!(field("kind = \"m_adapter\"\ndropout = 1.0").0, "dropout");
    let (f, msg) = field("kind = \"evl\"\nlevels = 13");
    assert_eq!(f, "levels");
    assert!(msg.contains("1..=12"), "{msg}");
    // Heads are checked against the backbone's width, known only to validate_for.
    let evl = parse("kind = \"evl\"\nheads = 5").unwrap();
    assert!(evl.validate(12).is_ok());
    let (f, msg) = evl.validate_for(&vit_b).unwrap_err();
    assert_eq!(f, "heads");
    assert!(msg.contains("768"), "{msg}");
    assert_eq!(field("kind = \"evl\"\nmlp_dropout = 1.5").0, "mlp_dropout");
    assert_eq!(field("kind = \"evl\"\nmlp_factor = -1.0").0, "mlp_factor");
    assert_eq!(field("kind = \"evl\"\nframes = 0").0, "frames");
}
