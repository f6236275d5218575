//! The adaptation methods on the tiny committed backbones: zero-initialised adapters leave
//! the image model unchanged, frozen weights get neither gradient nor optimiser state,
//! gradients through the frozen blocks agree with finite differences, and parameter counts
//! agree with the figures methods.md computes by hand.

use crate::common;

use crate::common::{backbone, clips, grad, to_vec};

use std::collections::HashMap;

use burn::module::Module;
use burn::tensor::Device;
use rand::SeedableRng;
use rand::rngs::StdRng;

use vidapter::backbone::{VisionTransformer, VitConfig};
use vidapter::methods::{
    FeAdapterConfig, FullFinetuneConfig, LinearProbeConfig, MethodConfig, Placement,
    StAdapterConfig, VideoClassifier,
};

fn fe(bottleneck: usize) -> MethodConfig {
    MethodConfig::FeAdapter(FeAdapterConfig {
        bottleneck,
        ..Default::default()
    })
}

fn st_both(bottleneck: usize) -> MethodConfig {
    MethodConfig::StAdapter(StAdapterConfig {
        bottleneck,
        placement: Placement::Both,
        ..Default::default()
    })
}

#[test]
fn zero_init_adapter_equals_image_model() {
    let device = Device::flex();
    for fixture in ["vit", "clip_vision_f16", "dinov2_bf16"] {
        let bb = backbone(fixture);
        let size = bb.config().image_size;
        let x = clips(2, 4, size, 1, &device);
        let probe = VideoClassifier::new(
            bb.clone(),
            &MethodConfig::LinearProbe(LinearProbeConfig { dropout: 0.0 }),
            3,
            0,
            &device,
        );
        let reference = to_vec(probe.frame_embeddings(x.clone()));
        let fe_cls = MethodConfig::FeAdapter(FeAdapterConfig {
            bottleneck: 8,
            adapt_cls: true,
            ..Default::default()
        });
        let st_cls = MethodConfig::StAdapter(StAdapterConfig {
            bottleneck: 8,
            adapt_cls: true,
            ..Default::default()
        });
        for method in [fe(8), st_both(8), fe_cls, st_cls] {
            let model = VideoClassifier::new(bb.clone(), &method, 3, 0, &device);
            let got = to_vec(model.frame_embeddings(x.clone()));
            let err = common::rel_err(&got, &reference);
            assert!(err < 1e-6, "{fixture} {}: rel err {err:e}", method.name());
        }
    }
}

#[test]
fn full_finetune_trains_exactly_the_weights_that_get_a_gradient() {
    // The ViT fixture has a dense + tanh pooler that no clip feature reads: it must not be
    // counted (or optimised) as trainable.
    let device = Device::flex();
    let bb = backbone("vit");
    let size = bb.config().image_size;
    let ad = device.clone().autodiff();
    let x = clips(2, 4, size, 2, &ad);
    let method = MethodConfig::FullFinetune(FullFinetuneConfig {
        dropout: 0.0,
        backbone_lr_scale: 1.0,
    });
    let model = VideoClassifier::new(bb, &method, 3, 0, &device).train();
    let grads = common::grads_by_path(&model, x, &[0, 2]);
    let mut pooler_seen = false;
    for (_, path, trainable) in common::params(&model) {
        pooler_seen |= path.contains("pooler");
        assert_eq!(
            trainable,
            grads.contains_key(&path),
            "{path}: trainable {trainable} but gradient present {}",
            grads.contains_key(&path)
        );
    }
    assert!(pooler_seen, "the fixture should have a pooler to test");
}

#[test]
fn frozen_weights_get_no_gradient() {
    let device = Device::flex();
    let bb = backbone("vit");
    let size = bb.config().image_size;
    let ad = device.clone().autodiff();
    let x = clips(2, 4, size, 2, &ad);
    for method in [
        fe(8),
        st_both(8),
        MethodConfig::LinearProbe(LinearProbeConfig { dropout: 0.0 }),
    ] {
        let model = VideoClassifier::new(bb.clone(), &method, 3, 0, &device).train();
        let grads = common::grads_by_path(&model, x.clone(), &[0, 2]);
        for (_, path, trainable) in common::params(&model) {
            let frozen = path.starts_with("backbone");
            assert_eq!(trainable, !frozen, "{}: {path}", method.name());
            assert_eq!(
                grads.contains_key(&path),
                !frozen,
                "{}: gradient presence of {path}",
                method.name()
            );
        }
    }
    // Full fine-tuning is the control: there the backbone does get gradients.
    let full = MethodConfig::FullFinetune(FullFinetuneConfig {
        dropout: 0.0,
        backbone_lr_scale: 0.1,
    });
    let model = VideoClassifier::new(bb, &full, 3, 0, &device).train();
    let grads = common::grads_by_path(&model, x, &[0, 2]);
    assert!(grads.keys().any(|k| k.starts_with("backbone.blocks.0")));
}

#[test]
fn gradient_through_frozen_blocks_matches_finite_differences() {
    let device = Device::flex();
    let bb = backbone("vit");
    let size = bb.config().image_size;
    let y = [1usize, 2];
    for method in [fe(6), st_both(6)] {
        let model = VideoClassifier::new(bb.clone(), &method, 3, 0, &device);
        // Random adapters: every path from the loss back to block 0 carries signal.
        let model = grad::randomised(model, 5, 0.2, |m| m.ends_with("adapters"));
        // Analytic directional derivative along a random direction on block 0's adapter.
        let trained = model.clone().train();
        let grads = common::grads_by_path(
            &trained,
            clips(2, 4, size, 3, &device.clone().autodiff()),
            &y,
        );
        let mut rng = StdRng::seed_from_u64(9);
        let mut dir = HashMap::new();
        let mut analytic = 0f64;
        for (id, path, _) in common::params(&trained) {
            if !path.starts_with("attn_adapters.0.") {
                continue;
            }
            let g = &grads[&path];
            let d = grad::direction(&mut rng, g.len());
            analytic += grad::dot(g, &d);
            dir.insert(id, d);
        }
        assert!(!dir.is_empty());
        let eps = 2e-3;
        let x = clips(2, 4, size, 3, &device);
        let numeric = grad::central_difference(&model, &dir, eps, &x, &y);
        let rel = (numeric - analytic).abs() / analytic.abs().max(1e-6);
        eprintln!(
            "{}: analytic {analytic:.6e} numeric {numeric:.6e} rel {rel:.2e}",
            method.name()
        );
        // f32 forward: central differences at eps = 1e-2 agree to ~1e-3 on this model.
        assert!(
            rel < 1e-2,
            "{}: analytic {analytic:.6e} vs numeric {numeric:.6e} (rel {rel:.2e})",
            method.name()
        );
        assert!(
            analytic.abs() > 1e-5,
            "direction carries no gradient: {analytic:e}"
        );
    }
}

#[test]
fn parameter_counts_match_methods_md() {
    // ViT-B/16 shapes, random weights: counts do not depend on values.
    let device = Device::flex();
    let cfg = VitConfig::vit_base_patch16_224();
    let bb = VisionTransformer::random(cfg, 0, &device);
    let total_backbone = bb.param_count();
    // methods.md: ST-Adapter adapter at C = 768, r = 384, kernel (3,1,1): 592,512 each, x12.
    let st = VideoClassifier::new(
        bb.clone(),
        &MethodConfig::StAdapter(StAdapterConfig::default()),
        400,
        0,
        &device,
    );
    let rows = st.param_rows();
    let adapters: Vec<_> = rows
        .iter()
        .filter(|r| r.module.starts_with("attn_adapters"))
        .collect();
    assert_eq!(adapters.len(), 12);
    assert!(adapters.iter().all(|r| r.params == 592_512 && r.trainable));
    let head = rows.iter().find(|r| r.module == "head").unwrap();
    assert_eq!(head.params, 768 * 400 + 400);
    let (trainable, total) = st.param_totals();
    assert_eq!(trainable, 12 * 592_512 + 768 * 400 + 400);
    assert_eq!(total, trainable + total_backbone);
    // FE-Adapter default: r = 384, three (3,3,3) branches + a 384 -> 3 gate: 624,387 each.
    let fe = VideoClassifier::new(
        bb,
        &MethodConfig::FeAdapter(FeAdapterConfig::default()),
        7,
        0,
        &device,
    );
    let rows = fe.param_rows();
    assert!(
        rows.iter()
            .filter(|r| r.module.starts_with("attn_adapters"))
            .all(|r| r.params == 624_387)
    );
    assert!(rows.iter().any(|r| r.module == "backbone" && !r.trainable));
}
