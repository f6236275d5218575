//! Backbone parity: every hidden state of every fixture model equals transformers' within
//! relative error 1e-4 (‖out − ref‖ / ‖ref‖), in f32, from f32, f16 and bf16 files, single
//! and sharded, HF and OpenAI layouts, at the trained input size and at another size
//! (position embeddings resampled as transformers does). References come from
//! scripts/make_backbone_fixtures.py (versions in tests/fixtures/backbones/VERSIONS.txt).

use crate::common;

use crate::common::to_vec;

use burn::tensor::{Tensor, TensorData};
use vidapter::backbone::{Architecture, Backbone, Layout};

use crate::common::{fixture, read_f32, rel_err};

const TOL: f64 = 1e-4;

/// Runs `model` on the reference's pixels and checks every output; returns the worst error.
fn check(name: &str, case: &str) -> f64 {
    let device = common::device();
    let backbone = Backbone::load(fixture(name).to_str().unwrap(), &device).unwrap();
    let reference = fixture(name).join(format!("reference_{case}.safetensors"));
    let (shape, pixels) = read_f32(&reference, "pixel_values");
    let x = Tensor::<4>::from_data(TensorData::new(pixels, shape), &device);
    let levels: Vec<usize> = (0..=backbone.config.num_layers).collect();
    let out = backbone.model.forward(x, &levels);
    // Every output's error first, then the checks, so that a failure still prints them all.
    let mut errors = Vec::new();
    let mut report = |key: String, got: Vec<f32>| {
        let (_, want) = read_f32(&reference, &key);
        assert_eq!(got.len(), want.len(), "{name}/{case} {key}: element count");
        errors.push((key, rel_err(&got, &want)));
    };
    for (i, h) in out.levels {
        report(format!("hidden_states.{i}"), to_vec(h));
    }
    report("last_hidden_state".into(), to_vec(out.last_hidden_state));
    report("pooler_output".into(), to_vec(out.pooler_output));
    let (worst_key, worst) = errors
        .iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .cloned()
        .unwrap();
    eprintln!("{name}/{case}: worst relative error {worst:.2e} ({worst_key})");
    for (key, e) in &errors {
        assert!(
            *e <= TOL,
            "{name}/{case} {key}: relative error {e:.3e} > {TOL:e}"
        );
    }
    worst
}

#[test]
fn vit_matches_transformers() {
    check("vit", "default");
}

#[test]
fn vit_other_input_size_matches_interpolate_pos_encoding() {
    check("vit", "interp");
}

#[test]
fn clip_vision_f16_matches_transformers() {
    check("clip_vision_f16", "default");
}

#[test]
fn clip_other_input_size_matches_interpolate_pos_encoding() {
    check("clip_vision_f16", "interp");
}

#[test]
fn full_clip_model_sharded_checkpoint_loads_vision_tower() {
    check("clip_full_sharded", "default");
}

#[test]
fn dinov2_bf16_matches_transformers() {
    check("dinov2_bf16", "default");
}

#[test]
fn dinov2_non_square_input_interpolates_positions_like_transformers() {
    check("dinov2_bf16", "interp");
}

#[test]
fn dinov2_swiglu_matches_transformers() {
    check("dinov2_swiglu", "default");
}

#[test]
fn openai_layout_without_config_matches_transformers() {
    let device = common::device();
    let b = Backbone::load(fixture("openai_clip").to_str().unwrap(), &device).unwrap();
    assert_eq!(b.layout, Layout::OpenAiClip);
    assert_eq!(b.config.arch, Architecture::Clip);
    assert_eq!(b.config.num_heads, 2, "heads = width / 64");
    check("openai_clip", "default");
}

#[test]
fn asking_for_levels_changes_no_number() {
    let device = common::device();
    let b = Backbone::load(fixture("dinov2_bf16").to_str().unwrap(), &device).unwrap();
    let (shape, pixels) = read_f32(
        &fixture("dinov2_bf16").join("reference_default.safetensors"),
        "pixel_values",
    );
    let x = Tensor::<4>::from_data(TensorData::new(pixels, shape), &device);
    let plain = b.model.forward(x.clone(), &[]);
    let with = b.model.forward(x, &[3, 1, 0]);
    assert_eq!(
        with.levels.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        vec![3, 1, 0]
    );
    assert_eq!(
        to_vec(plain.last_hidden_state),
        to_vec(with.last_hidden_state)
    );
    assert_eq!(to_vec(plain.pooler_output), to_vec(with.pooler_output));
}

#[test]
fn loaded_backbone_is_frozen() {
    use burn::module::Module;
    let device = common::device().autodiff();
    let b = Backbone::load(fixture("vit").to_str().unwrap(), &device).unwrap();
    // num_params counts all; a frozen module exposes none as requiring grad.
    struct Count(usize);
    impl burn::module::ModuleVisitor for Count {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            if param.is_require_grad() {
                self.0 += 1;
            }
        }
    }
    let mut c = Count(0);
    b.model.visit(&mut c);
    assert_eq!(c.0, 0, "backbone parameters must not require gradients");
    assert!(b.model.num_params() > 0);
}

#[test]
fn vit_with_transformers5_state_dict_names_matches() {
    check("vit_v5_names", "default");
}

#[test]
fn dinov2_swiglu_with_split_gate_up_matches() {
    check("dinov2_swiglu_v5_names", "default");
}

#[test]
fn vit_saved_in_hf_layout_loads_back_identically() {
    use burn::tensor::{Tensor, TensorData};
    use vidapter::backbone::{Backbone, save_vit_hf};
    let device = common::device();
    let original = Backbone::load(common::fixture("vit").to_str().unwrap(), &device).unwrap();
    let dir = vidapter::util::tempdir().unwrap();
    save_vit_hf(&original.model, dir.path()).unwrap();
    let again = Backbone::load(dir.path().to_str().unwrap(), &device).unwrap();
    assert_eq!(again.config, original.config);
    let n = 2 * 3 * 32 * 32;
    let px: Vec<f32> = (0..n)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    let px = Tensor::<4>::from_data(TensorData::new(px, [2, 3, 32, 32]), &device);
    let a = original.model.forward(px.clone(), &[1, 3]);
    let b = again.model.forward(px, &[1, 3]);
    let v = |t: Tensor<3>| t.into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(v(a.last_hidden_state), v(b.last_hidden_state));
    for ((_, x), (_, y)) in a.levels.into_iter().zip(b.levels) {
        assert_eq!(v(x), v(y));
    }
}
